"""Figures of the noise schedule and of how the network sees it (notebooks 02 and 03).

Shells of noisy samples and the band that defines technique 2's overlap, what an overlap costs in levels,
how similar the network's embeddings of the levels are, and the score's length against sqrt(D) / sigma.
:mod:`pegasus_course.plotting` re-exports these functions.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from . import sigmas as sig


def shell_overlap(lengths: torch.Tensor, dim: int, ratios: dict):
    """Histograms of noise lengths at two neighbouring levels, one panel per {name: gamma}.

    ``lengths`` are ||z|| of standard normal draws in ``dim`` dimensions: level i+1's samples have lengths
    ``lengths`` (in units of sigma_(i+1)), level i's ``gamma * lengths``. The shaded band is level i's shell,
    gamma (sqrt(D) +- 3 / sqrt(2)): the share of level i+1's draws inside it, counted and written in the title,
    is technique 2's overlap. The legend sits below the panels, off the data.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not ratios:
        raise ValueError("shell_overlap: give at least one ratio, {name: gamma}.")
    root = math.sqrt(dim)
    x = (lengths.detach().cpu().double() / root).numpy()
    fig, axes = plt.subplots(1, len(ratios), figsize=(5 * len(ratios), 3.4), squeeze=False)
    for ax, (name, gamma) in zip(axes[0], ratios.items()):
        low, high = gamma * (root - 3 / math.sqrt(2)) / root, gamma * (root + 3 / math.sqrt(2)) / root
        share = float(((x >= low) & (x <= high)).mean())
        bins = np.linspace(min(x.min(), low), max(gamma * x.max(), high), 90)
        ax.axvspan(low, high, color="tab:orange", alpha=0.15, hatch="//", ec="tab:orange",
                   label="level i's shell: its mean +- 3 std")
        ax.hist(x, bins=bins, alpha=0.65, color="tab:blue", label="level i+1: ||sigma_(i+1) z||")
        ax.hist(gamma * x, bins=bins, alpha=0.65, color="tab:orange", label="level i: ||sigma_i z||")
        ax.set(xlabel="length / (sigma_(i+1) sqrt(D))", yticks=[])
        ax.set_title(f"{name}: gamma = {gamma:.3f}\nlevel i+1's draws inside level i's shell: {share:.2f}", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def overlap_cost(dim: int, sigma_1: float, sigma_L: float, marks: dict, n_steps_each: int = 5):
    """The levels L (and network evaluations per sample, T L + 1) a geometric schedule from ``sigma_1`` to
    ``sigma_L`` needs to reach each overlap of technique 2, with ``marks`` ({label: overlap}) pointed out."""
    import matplotlib.pyplot as plt

    top = sig.technique2_overlap(1.0, dim)  # equal levels: the most any ratio reaches
    targets = [0.02 + (0.97 * top - 0.02) * k / 120 for k in range(121)]
    levels = [sig.num_noise_scales(sigma_1, sigma_L, dim, t) for t in targets]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(targets, levels, color="black")
    for (label, overlap), colour in zip(marks.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple")):
        n = sig.num_noise_scales(sigma_1, sigma_L, dim, overlap)
        ax.plot([overlap], [n], "o", color=colour, label=f"{label}: overlap {overlap:.2f}, L = {n}")
        ax.axvline(overlap, color=colour, ls=":", lw=1)
    ax.set(xlabel="technique 2's overlap asked for", ylabel="levels L",
           title=f"D = {dim}, sigma from {sigma_1:g} to {sigma_L:g}: levels needed for an overlap")
    second = ax.secondary_yaxis("right", functions=(lambda L: n_steps_each * L + 1,
                                                    lambda e: (e - 1) / n_steps_each))
    second.set_ylabel(f"network evaluations (T = {n_steps_each})")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _sigma_ticks(sigmas: torch.Tensor, values: Sequence[float] = (50.0, 10.0, 1.0, 0.1, 0.01)) -> tuple[list, list]:
    """Level indices nearest to ``values`` and their sigma, as tick positions and labels."""
    pos = [int((sigmas.log() - math.log(v)).abs().argmin()) for v in values]
    return pos, [f"{float(sigmas[p]):.2g}" for p in pos]


def level_similarity_figure(matrices: dict, sigmas: torch.Tensor):
    """Cosine similarity matrices of the levels' embeddings, {title: (L, L)}, in a row, their diagonal (always 1)
    greyed out and the axes labelled with sigma; below them, each matrix's adjacent-level similarity
    m[i, i+1] against sigma_i, the values the matrices' diagonal band holds."""
    import matplotlib.pyplot as plt

    if not matrices:
        raise ValueError("level_similarity_figure: give at least one matrix, {title: (L, L)}.")
    n = len(matrices)
    fig = plt.figure(figsize=(10.5, 6.4))
    grid = fig.add_gridspec(2, n, height_ratios=(1.25, 1), hspace=0.35, wspace=0.3, top=0.95, bottom=0.09)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
    pos, labels = _sigma_ticks(sigmas)
    axes = [fig.add_subplot(grid[0, k]) for k in range(n)]
    for k, (ax, (title, m)) in enumerate(zip(axes, matrices.items())):
        shown = m.detach().cpu().double().clone()
        shown.fill_diagonal_(float("nan"))
        im = ax.imshow(shown.numpy(), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_xticks(pos, labels)
        ax.set_yticks(pos, labels if k == 0 else [])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("sigma")
        if k == 0:
            ax.set_ylabel("sigma")
    fig.colorbar(im, ax=axes, shrink=0.9, label="cosine similarity")
    line = fig.add_subplot(grid[1, :])
    s = sigmas.detach().cpu().double()
    for i, (title, m) in enumerate(matrices.items()):
        line.plot(s[:-1].numpy(), torch.diagonal(m.detach().cpu().double(), 1).numpy(), lw=1.5, label=title,
                  ls=("-", "--", "-.", ":")[i % 4])
    line.set_xscale("log")
    line.invert_xaxis()
    line.set(xlabel="sigma_i (largest on the left)", ylabel="cos(level i, level i+1)", ylim=(-0.3, 1.05),
             title="adjacent levels: the band beside the diagonal")
    line.legend(fontsize=8, loc="center right")
    return fig


def score_length_ratio(sigmas: Sequence[float], ratios: dict, annotate: str | None = None):
    """|s| sigma / sqrt(D) against sigma for each {label: values}; 1 is the length of -z / sigma. The series
    ``annotate`` is labelled at its smallest sigma with how much shorter than sqrt(D) / sigma it is there."""
    import matplotlib.pyplot as plt

    x = [float(s) for s in sigmas]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for i, (label, values) in enumerate(ratios.items()):
        ax.plot(x, [float(v) for v in values], ("o-", "s-", "^-", "D-")[i % 4], label=label)
    ax.axhline(1.0, color="black", ls="--", lw=1, label="|z| / sigma = sqrt(D) / sigma")
    if annotate is not None:
        values = [float(v) for v in ratios[annotate]]
        k = min(range(len(x)), key=lambda j: x[j])
        ax.annotate(f"{1 - values[k]:.0%} shorter at sigma = {x[k]:g}", (x[k], values[k]), xytext=(0.25, 0.18),
                    textcoords="axes fraction", arrowprops={"arrowstyle": "->"}, fontsize=9)
    ax.set_xscale("log")
    ax.set(xlabel="sigma", ylabel="|score| sigma / sqrt(D)", ylim=(0, 1.15),
           title="the score's length against sqrt(D) / sigma")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
