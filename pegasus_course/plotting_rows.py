"""Figures of pegasus rows read along k: the judge's p(horse) and p(bird) at every interpolant."""

from __future__ import annotations

import math
from typing import Sequence

import torch


def plot_row_judgements(ks: Sequence[int], p_horse: torch.Tensor, p_bird: torch.Tensor,
                        labels: Sequence[str], crossings: Sequence[float | None] | None = None,
                        title: str = "the judge along each row"):
    """One panel per row: the judge's p(horse) and p(bird) (ten-class probabilities, not renormalised, so a
    k where both are low is neither animal) at each k, with 0.5 and the row's crossing (if any) marked.

    Args:
        ks: the interpolants judged (x axis), one per column of ``p_horse``.
        p_horse, p_bird: (rows, len(ks)) probabilities in [0, 1].
        labels: one title per row.
        crossings: per row, the k where the renormalised p(horse) passes 0.5 (falls through it in a row that
            starts as horse, rises through it in one that starts as bird), or None: ``judge_row(...).crossing``.
    """
    import matplotlib.pyplot as plt

    p_horse, p_bird = torch.as_tensor(p_horse, dtype=torch.float64), torch.as_tensor(p_bird, dtype=torch.float64)
    if p_horse.ndim == 1:
        p_horse, p_bird = p_horse[None], p_bird[None]
    ks = [float(k) for k in ks]
    rows = p_horse.shape[0]
    if p_horse.shape != p_bird.shape or p_horse.shape[1] != len(ks) or len(labels) != rows:
        raise ValueError(f"plot_row_judgements: give p_horse and p_bird of one shape (rows, len(ks)) = (rows, "
                         f"{len(ks)}) and one label per row; got {tuple(p_horse.shape)}, {tuple(p_bird.shape)} "
                         f"and {len(labels)} labels.")
    if crossings is not None and len(crossings) != rows:
        raise ValueError(f"plot_row_judgements: give one crossing (or None) per row, got {len(crossings)} for {rows}.")
    cols = min(rows, 2)
    lines = math.ceil(rows / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(5.2 * cols, 2.6 * lines), squeeze=False, sharey=True)
    for r in range(lines * cols):
        ax = axes[r // cols][r % cols]
        if r >= rows:
            ax.axis("off")
            continue
        ax.plot(ks, p_horse[r].tolist(), "o-", color="tab:brown", label="p(horse)")
        ax.plot(ks, p_bird[r].tolist(), "s--", color="tab:blue", label="p(bird)")
        ax.axhline(0.5, color="grey", lw=0.8)
        if crossings is not None and crossings[r] is not None:
            ax.axvline(float(crossings[r]), color="red", lw=1.2, ls=":", label=f"crossing k = {crossings[r]:.1f}")
        ax.set(title=labels[r], xlabel="k", ylim=(-0.03, 1.03))
        ax.legend(fontsize=7, loc="center left")
    axes[0][0].set_ylabel("judge's probability")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
