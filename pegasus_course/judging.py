"""The judge's view: is an image a horse or a bird, how often are a row's ends one of each, how good is the judge.

The judge is a classifier (the ten-class CIFAR-10 network, or the two-class horse/bird one). Its two
logits for horse and bird, softmaxed against each other, give p(horse | horse or bird):
:func:`horse_probability`. An image is judged horse when p(horse) > 0.5 (0.5 exactly is bird), here and in
:mod:`pegasus_course.rows`. From it:

* :func:`ends_rate` (also called :func:`pegasus_rate`): the share of rows whose two ends are judged one
  horse and one bird. It looks at the ends only; what happens between them is
  :func:`pegasus_course.rows.judge_row`'s business.
* :func:`judge_accuracy`: how often the judge is right on real held-out horses and birds, with its
  interval; every rate above is only as good as this.
* :func:`top_candidates`: the seeds the judge calls horse or bird most confidently, for ends a learner
  can recognise.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .classifier import class_position, predict_proba
from .checks import check_class_labels, check_open_unit, check_positive_int, check_seeds
from .intervals import wilson_interval


def horse_probability(net: torch.nn.Module, images: torch.Tensor, first: str = "horse",
                      second: str = "bird") -> torch.Tensor:
    """p(first | first or second) for each image, (N,): the net's two logits softmaxed against each other,
    i.e. sigmoid(logit_first - logit_second), read from the log-softmax (which shifts every logit alike).

    Works for the two-class horse/bird classifier and for the ten-class network alike. Computed from the
    logits, not by renormalising two probabilities: when another class takes all the mass both underflow
    to 0 in float32, and the ratio of two zeros is no judgement (the logits still give one).
    """
    i, j = class_position(net.config.class_names, first), class_position(net.config.class_names, second)
    if i == j:
        raise ValueError(f"horse_probability: first and second are both {first!r}: name two classes, e.g. 'horse' and "
                         "'bird'.")
    log_probs = predict_proba(net, images, log=True)  # (N, K): the logits less one logsumexp per image
    return torch.sigmoid(log_probs[:, i] - log_probs[:, j])


def crosses(p_first_end: torch.Tensor, p_second_end: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per row: True when one end is judged ``first`` (p > threshold) and the other ``second``."""
    _check_ends(p_first_end, p_second_end, threshold, "crosses")
    a, b = p_first_end > threshold, p_second_end > threshold
    return a ^ b


def _check_ends(p_first_end, p_second_end, threshold: float, where: str) -> None:
    """Two (P,) tensors of probabilities in [0, 1], one per row, and a threshold strictly between 0 and 1."""
    ok = all(torch.is_tensor(p) and p.ndim == 1 for p in (p_first_end, p_second_end))
    if not ok or p_first_end.shape != p_second_end.shape or p_first_end.numel() == 0:
        raise ValueError(f"{where}: give one probability per row for each end: two (P,) tensors of one length, P >= 1.")
    for p in (p_first_end, p_second_end):
        if not bool((torch.isfinite(p) & (p >= 0) & (p <= 1)).all()):
            raise ValueError(f"{where}: probabilities must be finite and in [0, 1], got {p.tolist()[:6]}: judge finite "
                             "images (horse_probability).")
    check_open_unit(threshold, f"{where}: threshold", "0.5 splits horse from bird.")


def pegasus_rate(p_first_end: torch.Tensor, p_second_end: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of rows whose two ends are judged one of each: one end horse (p > threshold), the other bird.

    It measures the ends only (the seeds' samples, k = 0 and k = n + 1), never the images between them: a
    row counts even when its middle is a blur that is neither. The middle is measured by
    :func:`pegasus_course.rows.judge_row` (where the row crosses, how sharply, which images read as both).
    ``ends_rate`` is the same function under the name that says what it measures.
    """
    _check_ends(p_first_end, p_second_end, threshold, "pegasus_rate")
    return float(crosses(p_first_end, p_second_end, threshold).float().mean())


ends_rate = pegasus_rate  # the same function: the name says it measures the ends only


def judge_accuracy(judge: torch.nn.Module, images: torch.Tensor, labels, first: str = "horse",
                   second: str = "bird") -> tuple[float, float, float]:
    """(accuracy, lo, hi): how often ``judge`` tells ``first`` from ``second`` on labelled real images, with
    the 95% Wilson interval.

    ``labels`` are 0 for ``first`` and 1 for ``second`` (the order of
    ``load_dataset(..., classes=(first, second))``); the judge calls an image ``first`` when
    :func:`horse_probability` > 0.5 (0.5 exactly is ``second``, as everywhere). Why: every rate measured with the judge (ends, rows) is only as
    trustworthy as the judge itself; measure it on held-out images, never on its training images.
    """
    where = "judge_accuracy"
    if not torch.is_tensor(images) or images.ndim != 4:
        raise ValueError(f"{where}: images must be a tensor (N, 3, H, W), e.g. load_dataset(..., split='test').images, "
                         f"got {tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}.")
    labels = check_class_labels(labels, images.shape[0], (first, second), where)
    if images.shape[0] == 0:
        raise ValueError(f"{where}: no images: pass at least one labelled image (16 or more for a useful number).")
    said_first = horse_probability(judge, images, first, second).cpu() > 0.5
    right = int((said_first == (labels.cpu() == 0)).sum())
    n = images.shape[0]
    return (right / n, *wilson_interval(right, n))


def top_candidates(p_horse: Sequence[float], seeds: Sequence[int], n: int = 5,
                   threshold: float = 0.5) -> dict[str, list[tuple[int, float]]]:
    """The ``n`` seeds judged most confidently horse and most confidently bird, each with its p(horse).

    ``{"horse": [(seed, p), ...] highest p first, "bird": [(seed, p), ...] lowest p first}``. Only seeds
    judged that class count (p > threshold for horse, p <= threshold for bird), so a list is shorter than
    ``n`` when the seeds hold fewer of a class; ties keep the seeds' order. Why: a learner picks ends for
    a pegasus row from samples they can recognise themselves, and sees how sure the judge was.
    """
    where = "top_candidates"
    p = torch.as_tensor(p_horse, dtype=torch.float64).flatten() if not torch.is_tensor(p_horse) else \
        p_horse.detach().double().flatten().cpu()
    seeds = check_seeds(seeds, where, count=p.numel())
    if not bool((torch.isfinite(p) & (p >= 0) & (p <= 1)).all()):
        raise ValueError(f"{where}: every p(horse) must be finite and in [0, 1] (horse_probability gives them), got "
                         f"{[round(v, 4) for v in p.tolist()[:6]]}.")
    n = check_positive_int(n, f"{where}: n (seeds per class)")
    threshold = check_open_unit(threshold, f"{where}: threshold", "0.5 splits horse from bird.")
    ps = p.tolist()
    horses = sorted((i for i in range(len(ps)) if ps[i] > threshold), key=lambda i: -ps[i])
    birds = sorted((i for i in range(len(ps)) if ps[i] <= threshold), key=lambda i: ps[i])
    return {"horse": [(seeds[i], ps[i]) for i in horses[:n]], "bird": [(seeds[i], ps[i]) for i in birds[:n]]}
