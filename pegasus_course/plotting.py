"""Figures for the notebooks: image grids, strips and curves, each returning a matplotlib Figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def setup_plots(dpi: int = 72) -> None:
    """Small, light inline figures so committed notebooks stay small."""
    import matplotlib as mpl

    mpl.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "figure.figsize": (6, 4), "image.interpolation": "nearest"})


def to_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile (B, 3, H, W) images in [0, 1] into one (3, H', W') image with torchvision's make_grid."""
    from torchvision.utils import make_grid

    from .checks import check_image_batch

    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    check_image_batch(images, "to_grid", channels=images.shape[1] if images.ndim == 4 else 3)
    # Noisy images (a trajectory) are clamped on purpose; all-non-negative values above 2 are 0-255 images.
    if images.numel() and float(images.min()) >= 0 and float(images.max()) > 2:
        raise ValueError(f"to_grid: expected images in [0, 1], got values up to {float(images.max()):.4g}: 0-255 "
                         "images? Scale them with classifier.as_float_images(images) (uint8) or images / 255.")
    return make_grid(images.float().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, labels: Sequence[str] | None = None,
                scale: float = 0.9):
    """One imshow of a tiled batch; ``labels`` (one per image) are written under the columns of the first row."""
    import matplotlib.pyplot as plt

    grid = to_grid(images, nrow)
    rows = (images.shape[0] + nrow - 1) // nrow
    cols = min(nrow, images.shape[0])
    fig, ax = plt.subplots(figsize=(max(2.0, scale * cols), max(1.2, scale * rows + (0.4 if title else 0))))
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if labels is not None:
        step = grid.shape[2] / cols
        for i, lab in enumerate(labels[:cols]):
            ax.text((i + 0.5) * step, grid.shape[1] + 2, lab, ha="center", va="top", fontsize=8)
    fig.tight_layout()
    return fig


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, upscale: int = 2) -> Path:
    """Save a tiled grid as PNG (nearest-neighbour upscaled so small images stay visible)."""
    from torchvision.utils import save_image

    grid = to_grid(images, nrow)
    if upscale > 1:
        grid = grid.repeat_interleave(upscale, 1).repeat_interleave(upscale, 2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path))
    return path


def save_images(images: torch.Tensor, folder: str | Path, prefix: str = "sample") -> list[Path]:
    """Save every image as its own PNG file; returns the paths."""
    from torchvision.utils import save_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images.detach().float().clamp(0, 1).cpu()):
        p = folder / f"{prefix}-{i:03d}.png"
        save_image(im, str(p))
        paths.append(p)
    return paths


def plot_curve(values: Sequence[float], title: str = "", xlabel: str = "step", ylabel: str = "loss",
               smooth: int = 0, logy: bool = False):
    """A line plot, optionally with a moving average over ``smooth`` points."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.2))
    v = np.asarray(values, dtype=float)
    ax.plot(np.arange(1, len(v) + 1), v, alpha=0.35 if smooth else 1.0, label="per step")
    if smooth and len(v) >= smooth:
        kernel = np.ones(smooth) / smooth
        ax.plot(np.arange(smooth, len(v) + 1), np.convolve(v, kernel, mode="valid"), label=f"mean of {smooth}")
        ax.legend()
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return fig


def score_field(score_fn, sigmas: Sequence[float], lim: float = 9.0, n: int = 21, density=None):
    """Quiver plots of a 2-D score field s(x, sigma), one panel per sigma (log-density shaded if given)."""
    import matplotlib.pyplot as plt

    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    fig, axes = plt.subplots(1, len(sigmas), figsize=(2.6 * len(sigmas), 2.8))
    axes = [axes] if len(sigmas) == 1 else axes
    for ax, s in zip(axes, sigmas):
        sig = torch.full((pts.shape[0],), float(s))
        with torch.no_grad():
            v = score_fn(pts, sig)
        if density is not None:
            fine = torch.linspace(-lim, lim, 120)
            fx, fy = torch.meshgrid(fine, fine, indexing="xy")
            lp = density(torch.stack([fx.flatten(), fy.flatten()], 1), float(s)).view(120, 120)
            ax.imshow(lp.exp().numpy(), extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys")
        norm = v.norm(dim=1, keepdim=True).clamp_min(1e-8)
        u = v / norm * norm.log1p()  # log-scaled lengths: small and large scores both visible
        ax.quiver(pts[:, 0], pts[:, 1], u[:, 0], u[:, 1], color="tab:blue", angles="xy")
        ax.set(title=f"sigma = {s:g}", xticks=[], yticks=[], aspect="equal")
    fig.tight_layout()
    return fig


def score_error_map(score_fn, exact_fn, sigmas: Sequence[float], density=None, lim: float = 9.0, n: int = 81):
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
        axes[0].set(title="data density", xticks=[], yticks=[])
    vmin = max(1e-3, min(float(e.min()) for e in errors))
    vmax = max(float(e.max()) for e in errors)
    for ax, s, e in zip(axes[panels - len(sigmas):], sigmas, errors):
        im = ax.imshow(e, extent=extent, origin="lower", cmap="magma", norm=LogNorm(vmin=vmin, vmax=vmax))
        ax.set(title=f"error at sigma = {s:g}", xticks=[], yticks=[])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="|| learned - exact ||")
    return fig


def scatter_2d(panels: dict, lim: float = 9.0):
    """Side-by-side scatter plots of 2-D point sets, {title: (N, 2) tensor}."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 2.9))
    axes = [axes] if len(panels) == 1 else axes
    for ax, (title, pts) in zip(axes, panels.items()):
        pts = pts.detach().cpu()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
        ax.set(title=title, xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def show_rows(rows: torch.Tensor, row_labels: Sequence[str] | None = None, highlight: int | None = None,
              title: str | None = None, col_labels: Sequence[str] | None = None, scale: float = 0.9):
    """Rows of images (P, K, 3, H, W) as one image, ``scale`` inches per image (at most 13 inches wide);
    ``highlight`` frames column k; ``col_labels`` are written under the last row."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    p, k = rows.shape[:2]
    grid = to_grid(rows.flatten(0, 1), nrow=k)
    width = min(13.0, scale * k + (1.4 if row_labels else 0.3))
    per = (width - (1.4 if row_labels else 0.3)) / k
    fig, ax = plt.subplots(figsize=(width, per * p + (0.5 if title else 0.1) + (0.3 if col_labels else 0)))
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    cell = grid.shape[2] / k
    if highlight is not None:
        ax.add_patch(Rectangle((highlight * cell, 0), cell, grid.shape[1], fill=False, ec="red", lw=2))
    if row_labels:
        for i, lab in enumerate(row_labels):
            ax.text(-4, (i + 0.5) * grid.shape[1] / p, lab, ha="right", va="center", fontsize=9)
    if col_labels:
        for i, lab in enumerate(col_labels[:k]):
            ax.text((i + 0.5) * cell, grid.shape[1] + 2, lab, ha="center", va="top", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_lines(x: Sequence[float], series: dict, title: str = "", xlabel: str = "", ylabel: str = "",
               logx: bool = False, ylim: tuple[float, float] | None = None, marker: str = "o"):
    """Several named curves over the same x, {label: values}."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, values in series.items():
        ax.plot(list(x), [float(v) for v in values], marker=marker, label=label)
    if logx:
        ax.set_xscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_colour_stats(reference: dict, entries: dict, title: str = "colour of samples against the data"):
    """Per-channel mean (bars) and standard deviation (error bars) of image sets, the data first.

    ``reference`` and each value of ``entries`` are :func:`pegasus_course.evaluation.colour_stats` dicts.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    sets = {"data": reference, **entries}
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / len(sets)
    colours = ("tab:red", "tab:green", "tab:blue")
    for j, (name, st) in enumerate(sets.items()):
        xs = np.arange(3) + (j - (len(sets) - 1) / 2) * width
        ax.bar(xs, st["mean"], width, yerr=st["std"], color=colours, alpha=0.35 + 0.65 * (j == 0),
               edgecolor="black", capsize=2)
        for xv, m in zip(xs, st["mean"]):
            ax.text(xv, 0.02, name, rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(3), ["red", "green", "blue"])
    ax.set(title=title, ylabel="mean (bar) and std (line)", ylim=(0, 1))
    fig.tight_layout()
    return fig


def plot_colour_history(tracker, stat: str = "mean"):
    """A :class:`~pegasus_course.evaluation.ColourTracker`'s record: one panel per channel, the data dashed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8), sharey=True)
    combos = sorted({(h["weights"], h["variant"]) for h in tracker.history})
    for c, ax in enumerate(axes):
        for weights, variant in combos:
            steps, values = tracker.series(weights, variant, stat)
            ax.plot(steps, values[:, c], marker="o", label=f"{'EMA' if weights == 'ema' else 'live'}, {variant}")
        ax.axhline(tracker.reference[stat][c], color="black", ls="--", label="data")
        ax.set(title=("red", "green", "blue")[c], xlabel="training step")
    axes[0].set_ylabel(f"channel {stat}")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig
