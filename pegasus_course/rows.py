"""The pegasus judged along its whole row, not just at its ends.

A row k = 0 .. n + 1 runs from one end's sample to the other's (eq. 4's interpolation). The ends rate
(:func:`pegasus_course.judging.ends_rate`) asks only whether the ends are one horse and one bird. Here
the judge looks at every image of the row, and :func:`judge_row` reads four things off its p(horse):

* ``crossing``: the k where the judgement turns (p(horse) passes 0.5), read between two images by
  straight-line interpolation. Near the middle: the row is shared fairly; near an end: one class takes
  over most of the row.
* ``band_width``: how many steps of k the judgement takes to go from sure (0.9) to sure of the other
  class (0.1). Narrow: the row jumps from horse to bird; wide: a long stretch of in-between images,
  where a winged horse could live.
* ``both_classes``: the k whose image the judge cannot call (0.4 <= p <= 0.6): it reads as both, or
  neither. These are the pegasus candidates to look at.
* ``monotone``: whether the judgement moves one way only, or turns back along the row.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .checks import check_open_unit
from .judging import horse_probability

SURE = 0.9  # the band runs from p(horse) = SURE to 1 - SURE
UNDECIDED = (0.4, 0.6)  # p(horse) in this range: the judge cannot call the image either class
MONOTONE_SLACK = 0.02  # back by less than this from the furthest reached: the judge's wobble, not a turn


def row_probabilities(judge: torch.nn.Module, rows: torch.Tensor, first: str = "horse",
                      second: str = "bird") -> torch.Tensor:
    """p(first | first or second) (pairs, K) of every image of every row (pairs, K, 3, H, W), through
    :func:`~pegasus_course.judging.horse_probability` (the two classes' logits softmaxed against each other:
    their probabilities renormalised, without the underflow)."""
    if not torch.is_tensor(rows) or rows.ndim != 5 or 0 in rows.shape[:2]:
        got = tuple(rows.shape) if torch.is_tensor(rows) else type(rows).__name__
        raise ValueError(f"row_probabilities: rows must be a tensor (pairs, K, 3, H, W), e.g. what "
                         f"interpolation.interpolate returns for several pairs, got {got}"
                         + (": add the pairs axis with rows[None]" if torch.is_tensor(rows) and rows.ndim == 4 else "")
                         + ".")
    pairs, k = rows.shape[:2]
    return horse_probability(judge, rows.reshape(pairs * k, *rows.shape[2:]), first, second).reshape(pairs, k)


@dataclass
class RowJudgement:
    """What :func:`judge_row` reads off one row's p(horse); ``None`` where the row never gets there."""

    crossing: float | None  # the k where p(horse) passes 0.5 (interpolated), None if it never does
    band_width: float | None  # k from p = 0.9 to p = 0.1 (interpolated), None if it does not reach both
    both_classes: list = field(default_factory=list)  # the k with 0.4 <= p <= 0.6: read as both (or neither)
    monotone: bool = True  # the judgement moves one way only (turns back by less than MONOTONE_SLACK)
    starts_as: str = "horse"  # the first end's class (p > threshold: horse); the row is read from there

    def describe(self) -> str:
        """One line a learner can read."""
        other = "bird" if self.starts_as == "horse" else "horse"
        turn = (f"turns {other} at k = {self.crossing:.1f}" if self.crossing is not None
                else f"stays {self.starts_as} all along")
        band = (f", from sure to sure of the other in {self.band_width:.1f} steps" if self.band_width is not None
                else "")
        both = (f"; the judge cannot call k = {', '.join(f'{k:g}' for k in self.both_classes)}"
                if self.both_classes else "; every image is called one or the other")
        return f"starts {self.starts_as}, {turn}{band}{both}" + ("" if self.monotone else "; turns back on the way")


def _first_fall(ks: list, p: list[float], level: float, start: int = 1) -> tuple[float, int] | tuple[None, None]:
    """(k, i): the k where p first falls from >= level (image i - 1) to < level (image i), i >= ``start``,
    interpolated on a straight line between the two images; (None, None) if it never does."""
    for i in range(max(start, 1), len(p)):
        if p[i - 1] >= level > p[i]:
            return ks[i - 1] + (p[i - 1] - level) / (p[i - 1] - p[i]) * (ks[i] - ks[i - 1]), i
    return None, None


def judged_first(p: Sequence[float], threshold: float = 0.5) -> list[bool]:
    """Each image's class: True (``first``, horse) where p > threshold, False (bird) otherwise, so that
    p = 0.5 exactly is bird: the one rule the judge's every reading uses (ends, rows, bands, accuracy)."""
    return [float(v) > threshold for v in p]


def class_changes(p: Sequence[float], threshold: float = 0.5) -> list[int]:
    """The i where image i's class (:func:`judged_first`) differs from image i - 1's, in order."""
    side = judged_first(p, threshold)
    return [i for i in range(1, len(side)) if side[i] != side[i - 1]]


def _check_ks(ks, count: int) -> list:
    """The row's k values: ``count`` finite numbers, strictly increasing."""
    values = ks.tolist() if torch.is_tensor(ks) else list(ks)
    if len(values) != count or not all(isinstance(k, numbers.Real) and not isinstance(k, bool)
                                       and math.isfinite(k) for k in values):
        raise ValueError(f"judge_row: ks must be {count} finite numbers, one k per image of the row, got "
                         f"{values[:6]!r}.")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"judge_row: ks must increase along the row, got {values[:8]!r}: sort the row by k.")
    return values


def judge_row(p_first_end_along_k: Sequence[float] | torch.Tensor, ks: Sequence[float] | torch.Tensor | None = None,
              threshold: float = 0.5) -> RowJudgement:
    """Read one row's p(horse) along k (from the first end to the second) as a :class:`RowJudgement`.

    ``ks`` are the row's k values (default 0, 1, ..., K - 1). The row is read from its first end: when
    that end is judged bird (p <= threshold) the same measures apply to p(bird) = 1 - p(horse), so
    ``crossing`` is where p(horse) rises through the threshold and ``band_width`` runs from 0.1 to 0.9.
    An image is horse when p > threshold (:func:`judged_first`); ``crossing`` is the first change of class,
    placed where the straight line between its two images meets the threshold.
    The band runs from where p first falls below 0.9 to where it next falls below 0.1: a row never that
    sure of both classes has none (``band_width`` None).
    Hand check: p = 1 - k/16 for k = 0..16 crosses at k = 8 and has a band of 14.4 - 1.6 = 12.8.
    """
    p = torch.as_tensor(p_first_end_along_k, dtype=torch.float64) if not torch.is_tensor(p_first_end_along_k) \
        else p_first_end_along_k.detach().double().cpu()
    if p.ndim != 1 or p.numel() < 2:
        raise ValueError(f"judge_row: give one row's p(horse), one per image along k (K >= 2), got shape "
                         f"{tuple(p.shape)}" + (": judge one row at a time, probs[i]" if p.ndim == 2 else "") + ".")
    if not bool((torch.isfinite(p) & (p >= 0) & (p <= 1)).all()):
        raise ValueError(f"judge_row: p(horse) must be finite and in [0, 1] (row_probabilities gives it), got "
                         f"{[round(v, 4) for v in p.tolist()[:6]]}.")
    threshold = check_open_unit(threshold, "judge_row: threshold", "0.5 splits horse from bird.")
    ks = list(range(p.numel())) if ks is None else _check_ks(ks, p.numel())
    values = p.tolist()
    starts_as = "horse" if judged_first(values[:1], threshold)[0] else "bird"
    q = values if starts_as == "horse" else [1 - v for v in values]  # the first end's class, falling
    changes = class_changes(values, threshold)
    crossing = None
    if changes:
        i = changes[0]  # the two images differ in class, so their p differ: the line meets the threshold
        crossing = ks[i - 1] + (values[i - 1] - threshold) / (values[i - 1] - values[i]) * (ks[i] - ks[i - 1])
    enter, i = _first_fall(ks, q, SURE)
    leave, _ = _first_fall(ks, q, 1 - SURE, start=i) if i is not None else (None, None)
    band = leave - enter if leave is not None else None
    both = [k for k, v in zip(ks, values) if UNDECIDED[0] <= v <= UNDECIDED[1]]
    # against the running extreme, not the step before: a slow climb back in steps under the slack is a turn
    monotone = (all(q[i] <= min(q[:i]) + MONOTONE_SLACK for i in range(1, len(q)))
                or all(q[i] >= max(q[:i]) - MONOTONE_SLACK for i in range(1, len(q))))
    return RowJudgement(crossing, band, both, monotone, starts_as)
