"""How sure a measured number is: intervals for a share (Wilson) and for any statistic (the bootstrap).

A notebook that says "13 of 32 rows cross" says little until it adds how far that share could move
with another 32 rows: 13/32 = 41%, with a 95% interval of about 26% to 58%. Two tools:

* :func:`wilson_interval` for a count of successes out of ``n`` (a rate, an accuracy). Unlike the
  textbook p +- z sqrt(p(1-p)/n) it stays inside [0, 1] and does not shrink to nothing at 0/n or n/n.
* :func:`mean_se` for a mean: mean +- z standard errors (z = 2: about 95% for a mean of many values).
* :func:`bootstrap_interval` for any statistic of one or more samples (a mean, a Frechet distance):
  draw each sample again with replacement, recompute, and read the spread of the recomputed values
  (the percentile bootstrap, Efron 1979).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable

import torch

from .checks import check_open_unit, check_positive_int, check_seed


def normal_quantile(level: float, where: str = "normal_quantile") -> float:
    """z with P(-z < Z < z) = ``level`` for a standard normal Z (1.96 for 0.95)."""
    level = check_open_unit(level, f"{where}: level", "Use e.g. 0.95 for a 95% interval.")
    return NormalDist().inv_cdf((1 + level) / 2)


def mean_se(values, z: float = 2.0, dim: int | None = None, where: str = "mean_se"):
    """(mean, z * standard error) of ``values``, the course's one way to put an interval on a mean.

    The standard error is the sample standard deviation (n - 1) over sqrt(n), with n >= 2 values. With
    ``dim`` None every value counts once and two floats come back; with ``dim`` the means and half-widths
    along that axis come back as float64 tensors. Hand check: [1, 3] gives (2, 2): sd sqrt(2), se 1, z 2.
    """
    from .checks import check_number

    z = check_number(z, f"{where}: z (standard errors)", minimum=0.0, hint="2 gives about 95%.")
    v = torch.as_tensor(values, dtype=torch.float64)
    v = v.flatten() if dim is None else v
    n = v.shape[0 if dim is None else dim] if v.ndim else 1
    if n < 2:
        raise ValueError(f"{where}: need at least 2 values for a standard error, got {n}.")
    mean, half = v.mean(0 if dim is None else dim), z * v.std(0 if dim is None else dim, unbiased=True) / math.sqrt(n)
    return (float(mean), float(half)) if dim is None else (mean, half)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (lo, hi) for a share ``successes / n`` at confidence ``level``.

    With p = successes / n and z = :func:`normal_quantile` (level):
    centre = (p + z^2 / 2n) / (1 + z^2 / n),
    half-width = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2).
    Why Wilson: it holds its level even for small n and at 0/n or n/n, where the textbook interval
    collapses to a single point. 13/32 gives about (0.26, 0.58).
    """
    n = check_positive_int(n, "wilson_interval: n (the number of trials)")
    successes = check_positive_int(successes, f"wilson_interval: successes (out of n = {n})", minimum=0, maximum=n)
    z = normal_quantile(level, "wilson_interval")
    p = successes / n
    shrink = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends (rounding aside)
    return lo, 1.0 if successes == n else min(1.0, centre + half)


def _as_statistic(value, where: str) -> float:
    """One finite number from what a statistic function returned (a float or a one-element tensor)."""
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise ValueError(f"{where}: stat_fn must return one number, got a tensor of shape {tuple(value.shape)}: "
                             "reduce it, e.g. x.mean().")
        value = value.item()
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: stat_fn must return one number, got {value!r:.80}.") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: stat_fn returned {x}: the statistic must be finite on every resample.")
    return x


def bootstrap_interval(stat_fn: Callable[..., float | torch.Tensor], *samples, n_boot: int = 200,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, lo, hi): ``stat_fn(*samples)`` and its percentile-bootstrap interval at ``level``.

    Each sample (a tensor or sequence, one item per row along its first axis) is drawn again with
    replacement, independently of the others, ``n_boot`` times; lo and hi are the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the recomputed statistic. The same ``seed`` gives the same interval.
    Why: most measured numbers (a mean, a distance between two image sets) have no simple formula for
    their uncertainty, and the bootstrap needs none. A statistic biased by repeated rows (a Frechet
    distance is) can give an interval that leaves out its own estimate: report both.
    """
    where = "bootstrap_interval"
    if not callable(stat_fn):
        raise TypeError(f"{where}: the first argument is the statistic, a function of the samples (e.g. "
                        f"lambda x: x.mean()), got {type(stat_fn).__name__}.")
    if not samples:
        raise ValueError(f"{where}: no samples: pass the statistic and then one or more samples, "
                         "bootstrap_interval(lambda x: x.mean(), x).")
    tensors = []
    for i, s in enumerate(samples):
        t = s if torch.is_tensor(s) else torch.as_tensor(s)
        if t.ndim == 0 or t.shape[0] < 2:
            raise ValueError(f"{where}: sample {i} needs at least two rows along its first axis to resample, got "
                             f"shape {tuple(t.shape)}.")
        tensors.append(t)
    n_boot = check_positive_int(n_boot, f"{where}: n_boot (the number of resamples)", minimum=10)
    level = check_open_unit(level, f"{where}: level", "Use e.g. 0.95 for a 95% interval.")
    seed = check_seed(seed, where)
    estimate = _as_statistic(stat_fn(*tensors), where)
    g = torch.Generator().manual_seed(seed)
    stats = []
    for _ in range(n_boot):
        draws = [t[torch.randint(len(t), (len(t),), generator=g).to(t.device)] for t in tensors]
        stats.append(_as_statistic(stat_fn(*draws), where))
    q = torch.tensor(stats, dtype=torch.float64).quantile(
        torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return estimate, float(q[0]), float(q[1])
