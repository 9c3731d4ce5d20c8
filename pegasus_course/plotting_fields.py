"""Figures of 2-D toys (notebook 01): score fields as arrows, where a learned score is wrong, point clouds.

Every panel keeps its axes and ticks (the toy's coordinates are read off them); :mod:`pegasus_course.plotting`
re-exports these functions under their old names.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

TICKS = (-8, -4, 0, 4, 8)


def _panels(n: int, width: float, height: float, max_cols: int):
    """A figure of ``n`` panels, at most ``max_cols`` a row, each ``width`` x ``height`` inches; flat axes list."""
    import matplotlib.pyplot as plt
    import numpy as np

    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    axes = list(np.asarray(axes).flatten())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _coordinates(ax, lim: float, first_column: bool = True) -> None:
    ticks = [t for t in TICKS if abs(t) <= lim]
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=ticks, yticks=ticks, xlabel="x1")
    if first_column:
        ax.set_ylabel("x2")


def score_field(score_fn: Callable, sigmas: Sequence[float], lim: float = 9.0, n: int = 17, density=None,
                modes: torch.Tensor | None = None, flips: Sequence[torch.Tensor | None] | None = None):
    """Arrows of a 2-D score field s(x, sigma), one panel per sigma (two a row), on the density when given.

    Arrows show the direction only (all one length, so none vanishes); their colour is |s| on one log scale
    shared by the panels. ``modes`` (K, 2) are marked with crosses; ``flips`` (one point or None per sigma, e.g.
    :func:`pegasus_course.toy.flip_point`) draw the line through the point at right angles to the axis from the
    first mode to the second, where the score flips from one mode to the other, with its x1 + x2 in the title.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    if not len(sigmas):
        raise ValueError("score_field: give at least one noise level (one panel each), e.g. sigmas=[0.5, 2.0].")
    if flips is not None and (len(flips) != len(sigmas) or modes is None or len(modes) != 2):
        raise ValueError(f"score_field: flips needs the two modes (modes=, 2 points) and one point or None per sigma "
                         f"({len(sigmas)}), got {len(flips)}.")
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        fields = [score_fn(pts, torch.full((pts.shape[0],), float(s))).detach().cpu() for s in sigmas]
    lengths = torch.cat([v.norm(dim=1) for v in fields])
    norm = LogNorm(vmin=max(float(lengths.min()), 1e-6), vmax=max(float(lengths.max()), 1e-5))
    fig, axes = _panels(len(sigmas), 4.3, 4.0, 2)
    arrow = 0.8 * (2 * lim / (n - 1))  # data units: most of the spacing between arrows
    for k, (ax, s, v) in enumerate(zip(axes, sigmas, fields)):
        if density is not None:
            fine = torch.linspace(-lim, lim, 160)
            fx, fy = torch.meshgrid(fine, fine, indexing="xy")
            lp = density(torch.stack([fx.flatten(), fy.flatten()], 1), float(s)).view(160, 160)
            ax.imshow(lp.exp().numpy(), extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys", alpha=0.5)
        length = v.norm(dim=1)
        unit = v / length.clamp_min(1e-12)[:, None]
        q = ax.quiver(pts[:, 0], pts[:, 1], unit[:, 0] * arrow, unit[:, 1] * arrow, length.clamp_min(1e-6),
                      cmap="viridis", norm=norm, angles="xy", scale_units="xy", scale=1.0, width=0.007)
        title = f"sigma = {s:g}"
        if modes is not None:
            ax.plot(modes[:, 0], modes[:, 1], "x", color="red", ms=10, mew=2.5, zorder=4)
        flip = flips[k] if flips is not None else None
        if flip is not None:
            axis = (modes[1] - modes[0]).double()
            across = torch.tensor([-float(axis[1]), float(axis[0])]) / float(axis.norm())
            ends = torch.stack([flip.double() - 2 * lim * across, flip.double() + 2 * lim * across])
            ax.plot(ends[:, 0], ends[:, 1], color="red", ls="--", lw=1.5, zorder=3)
            title += f": flip at x1 + x2 = {float(flip.sum()):.2f}"
        elif flips is not None:
            title += ": one mode, no flip"
        ax.set_title(title, fontsize=10)
        _coordinates(ax, lim, first_column=k % 2 == 0)
    fig.subplots_adjust(bottom=0.1 if len(axes) > 2 else 0.2, top=0.95 if len(axes) > 2 else 0.9, hspace=0.3)
    fig.colorbar(q, ax=axes, shrink=0.7, label="|score| (colour; arrows show the direction only)")
    handles = [Line2D([], [], marker="x", color="red", ls="", ms=8, mew=2, label="modes")] if modes is not None else []
    if flips is not None:
        handles.append(Line2D([], [], color="red", ls="--", label="flip line (score's component along the modes' "
                                                                 "axis changes sign)"))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    return fig


def score_error_map(score_fn: Callable, exact_fn: Callable, sigmas: Sequence[float], density=None, lim: float = 9.0,
                    n: int = 81):
    """Where a learned 2-D score is wrong: ||s_theta(x, sigma) - s(x, sigma)|| over the plane, one panel per
    sigma (log colour scale, shared), after a first panel with the data density when ``density`` is given."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    errors = []
    for s in sigmas:
        sig = torch.full((pts.shape[0],), float(s))
        with torch.no_grad():
            errors.append((score_fn(pts, sig) - exact_fn(pts, sig)).norm(dim=1).view(n, n).numpy())
    panels = len(sigmas) + (density is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.3 * panels, 3.3))
    axes = np.atleast_1d(axes)
    extent = (-lim, lim, -lim, lim)
    if density is not None:
        p = density(pts, 0.0).exp().view(n, n).numpy()
        axes[0].imshow(p, extent=extent, origin="lower", cmap="Greys")
        axes[0].set(title="data density")
    vmin = max(1e-3, min(float(e.min()) for e in errors))
    vmax = max(float(e.max()) for e in errors)
    for ax, s, e in zip(axes[panels - len(sigmas):], sigmas, errors):
        im = ax.imshow(e, extent=extent, origin="lower", cmap="magma", norm=LogNorm(vmin=vmin, vmax=vmax))
        ax.set(title=f"error at sigma = {s:g}")
    for k, ax in enumerate(axes):
        _coordinates(ax, lim, first_column=k == 0)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="|| learned - exact ||")
    return fig


def scatter_2d(panels: dict, lim: float = 9.0):
    """Side-by-side scatter plots of 2-D point sets, {title: (N, 2) tensor}, with the toy's coordinates."""
    if not panels:
        raise ValueError("scatter_2d: give at least one panel, {title: (N, 2) points}.")
    fig, axes = _panels(len(panels), 3.2, 3.3, 4)
    for k, (ax, (title, pts)) in enumerate(zip(axes, panels.items())):
        pts = pts.detach().cpu()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
        ax.set_title(title, fontsize=10)
        _coordinates(ax, lim, first_column=k == 0)
    fig.tight_layout()
    return fig
