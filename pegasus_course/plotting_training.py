"""Figures for reading a training run (notebook 04): the loss over images seen with the run's legs marked,
and the loss at each noise level with and without NCSN's sigma^2 weighting. Each returns a Figure."""

from __future__ import annotations

from typing import Sequence

import torch

from .checks import check_positive_int
from .intervals import mean_se
from .training_report import Leg, check_legs, images_seen


def plot_loss_legs(losses: Sequence[float], legs: Sequence[Leg], smooth: int = 200, title: str = ""):
    """The loss per step against the images seen (millions), log y, with a ``smooth``-step moving average and
    a dashed line where each leg began (Adam's moments restarted there; the batch size is written on it)."""
    import matplotlib.pyplot as plt
    import numpy as np

    v = np.asarray(list(losses), dtype=float)
    legs = check_legs(legs, steps=len(v))
    smooth = check_positive_int(smooth, "plot_loss_legs: smooth (steps averaged)")
    seen = images_seen(legs).numpy() / 1e6
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(seen, v, alpha=0.3, lw=0.6, label="per step")
    if len(v) >= smooth:
        ax.plot(seen[smooth - 1:], np.convolve(v, np.ones(smooth) / smooth, mode="valid"), lw=1.6,
                label=f"mean of {smooth} steps")
    top = float(v.max())
    for i, leg in enumerate(legs):
        x0 = seen[leg.start - 1] if leg.start else 0.0
        if leg.start:
            ax.axvline(x0, color="k", ls="--", lw=0.9)
        ax.text(x0, top, f" leg {i + 1}\n batch {leg.batch}\n from step {leg.start:,}", va="top", ha="left",
                fontsize=7)
    ax.set_yscale("log")
    ax.set(title=title, xlabel="images seen (millions)", ylabel="loss")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def plot_level_losses(sigmas: Sequence[float], series: dict, title: str = "", ylabel: str = "loss"):
    """Per-level losses on log-log axes, {label: (levels, images) tensor}: each curve the mean over the images,
    with bars of +- 2 standard errors."""
    import matplotlib.pyplot as plt

    x = [float(s) for s in sigmas]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (label, per_image) in enumerate(series.items()):
        v = torch.as_tensor(per_image, dtype=torch.float64)
        if v.ndim != 2 or v.shape[0] != len(x) or v.shape[1] < 2:
            raise ValueError(f"plot_level_losses: series {label!r} must be (levels, images) with {len(x)} levels and "
                             f"at least 2 images, got {tuple(v.shape)}.")
        mean, se2 = mean_se(v, z=2.0, dim=1, where="plot_level_losses")
        ax.errorbar(x, mean.tolist(), yerr=se2.tolist(), marker="os^D"[i % 4], ms=4, capsize=2, label=label,
                    ls="-" if i == 0 else "--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(title=title, xlabel="sigma (log axis)", ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
