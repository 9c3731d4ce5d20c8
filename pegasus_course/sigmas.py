"""The noise schedule and NCSNv2's techniques 1, 2 and 4.

Symbols as in the papers: ``sigmas`` is descending, ``sigmas[0]`` is sigma_1 (the
largest) and ``sigmas[-1]`` is sigma_L (the smallest), ``L = len(sigmas)``;
``gamma = sigma_1 / sigma_2`` is the constant ratio of a geometric schedule;
``eps`` is the Langevin base step and ``alpha_i = eps * (sigma_i / sigma_L) ** 2``
the step used at level i; ``n_steps_each`` is T, the Langevin steps per level.
"""

from __future__ import annotations

import math

import torch


def geometric_sigmas(sigma_max: float, sigma_min: float, num_scales: int) -> torch.Tensor:
    """A geometric sequence sigma_1 = sigma_max > ... > sigma_L = sigma_min (float32, descending).

    Computed in float64 so that the ratio is constant to float32 precision.
    """
    if not (math.isfinite(sigma_max) and math.isfinite(sigma_min) and sigma_max > sigma_min > 0):
        raise ValueError(f"Need finite sigma_max > sigma_min > 0, got {sigma_max} and {sigma_min}.")
    from .checks import check_positive_int

    num_scales = check_positive_int(num_scales, "num_scales (L, the number of noise levels)", minimum=2)
    check_float32_level(sigma_max, "sigma_max")
    check_float32_level(sigma_min, "sigma_min")
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), num_scales, dtype=torch.float64)
    return logs.exp().float()


# Noise levels whose square still fits a float32 without overflow or underflow: the loss weights by sigma^2.
SIGMA_RANGE = (1e-18, 1e18)


def check_float32_level(value: float, name: str) -> float:
    """A noise level the float32 training and sampling can hold: sigma and sigma^2 neither overflow nor
    underflow (``SIGMA_RANGE``)."""
    lo, hi = SIGMA_RANGE
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name}={value!r} is outside {lo:g}..{hi:g}: float32 (which training and sampling use) "
                         "would overflow or underflow at it or its square. The paper uses 50 and 0.01.")
    return float(value)


def _checked_schedule(sigmas, where: str, minimum: int = 1) -> torch.Tensor:
    """A float64 copy of a schedule that is positive, finite, largest first and at least ``minimum`` long."""
    from .checks import check_sigmas

    s = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)  # read on the host: not inside a loop
    check_sigmas(s, where, descending=True)
    if s.ndim != 1 or s.numel() < minimum:
        raise ValueError(f"{where}: needs a 1-D schedule of at least {minimum} noise level(s), got shape "
                         f"{tuple(s.shape)}.")
    return s


@torch.no_grad()
def max_pairwise_distance(images: torch.Tensor, chunk_size: int = 1024, return_pair: bool = False):
    """The largest Euclidean distance between two images of the set (NCSNv2 technique 1).

    Exact: distances are screened in float32 chunks (memory ~ chunk_size x N floats),
    then every pair within a small margin of the best is recomputed in float64.

    Args:
        images: (N, ...) tensor, for example (N, 3, H, W) in [0, 1].
        chunk_size: rows of the distance matrix computed at once.
        return_pair: also return the indices (i, j) of the farthest pair.
    """
    x = images.reshape(images.shape[0], -1).float()  # (N, D)
    n = x.shape[0]
    if n < 2:
        raise ValueError("max_pairwise_distance needs at least two images.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("max_pairwise_distance: the images hold NaN or infinite values: check how they were loaded.")
    sq = (x * x).sum(1)  # (N,)
    row_best = torch.empty(n)
    for start in range(0, n, chunk_size):
        block = x[start:start + chunk_size]  # (c, D)
        d2 = sq[start:start + chunk_size, None] + sq[None, :] - 2.0 * block @ x.T  # (c, N)
        row_best[start:start + block.shape[0]] = d2.max(1).values
    # Screening in float32 can misorder near-ties; re-check every row close to the best exactly.
    margin = 1e-4 * float(row_best.max()) + 1e-3
    best, pair = -1.0, (0, 0)
    flat = images.reshape(n, -1)
    for i in torch.nonzero(row_best >= row_best.max() - margin).flatten().tolist():
        xi = flat[i].double()
        d = torch.cat([(flat[c:c + chunk_size].double() - xi).pow(2).sum(1)  # exact, float64, a chunk at a time
                       for c in range(0, n, chunk_size)])  # (N,): memory ~ chunk_size x D doubles, not N x D
        j = int(d.argmax())
        if float(d[j]) > best:
            best, pair = float(d[j]), (min(i, j), max(i, j))
    dist = math.sqrt(best)
    return (dist, pair) if return_pair else dist


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def technique2_overlap(gamma: float, dim: int) -> float:
    """Phi(sqrt(2D)(gamma - 1) + 3 gamma) - Phi(sqrt(2D)(gamma - 1) - 3 gamma) (NCSNv2 technique 2).

    How much a perturbed distribution at one level overlaps the next one's typical set;
    the technique asks for about 0.5.
    """
    from .checks import check_number, check_positive_int

    gamma = check_number(gamma, "technique2_overlap: gamma (the ratio sigma_i / sigma_(i+1))", minimum=1.0)
    return _overlap(gamma, check_positive_int(dim, "technique2_overlap: dim (the data's dimension D)"))


def _overlap(gamma: float, dim: int) -> float:
    a = math.sqrt(2.0 * dim) * (gamma - 1.0)
    return _normal_cdf(a + 3.0 * gamma) - _normal_cdf(a - 3.0 * gamma)


def noise_scale_ratio(dim: int, target: float = 0.5) -> float:
    """The ratio gamma > 1 at which :func:`technique2_overlap` equals ``target`` (bisection)."""
    from .checks import check_positive_int

    dim = check_positive_int(dim, "noise_scale_ratio: dim (the data's dimension D)")
    top = _overlap(1.0, dim)  # equal levels overlap most: Phi(3) - Phi(-3)
    if not 0 < float(target) < top:  # NaN too
        raise ValueError(f"noise_scale_ratio: target (an overlap) must lie strictly between 0 and {top:.4f}, the "
                         f"overlap of two equal levels; got {target!r}. Technique 2 asks for 0.5.")
    lo, hi = 1.0, 2.0
    while _overlap(hi, dim) > target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _overlap(mid, dim) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def num_noise_scales(sigma_max: float, sigma_min: float, dim: int, target: float = 0.5) -> int:
    """Number of levels L of a geometric schedule whose ratio satisfies technique 2.

    The smallest L whose ratio (sigma_max / sigma_min) ** (1 / (L - 1)) is at most the
    ratio gamma that gives an overlap of ``target`` (technique 2: 0.5) for data of dimension ``dim``.
    """
    from .checks import check_positive_int

    if not (math.isfinite(sigma_max) and math.isfinite(sigma_min) and sigma_max > sigma_min > 0):
        raise ValueError(f"num_noise_scales: need finite sigma_max > sigma_min > 0, got {sigma_max} and {sigma_min}.")
    gamma = noise_scale_ratio(check_positive_int(dim, "num_noise_scales: dim (the data's dimension D)"), target)
    return int(math.ceil(1.0 + math.log(sigma_max / sigma_min) / math.log(gamma)))


def handed_down_share(gamma: float, dim: int) -> float:
    """The share of level i's noisy samples whose length lies within level i+1's shell, sigma_(i+1) sqrt(D) +- 3
    of its standard deviations sigma_(i+1) / sqrt(2): what annealing hands down, on ground the next level was
    trained on. Phi((sqrt(2D)(1 - gamma) + 3) / gamma) - Phi((sqrt(2D)(1 - gamma) - 3) / gamma), the mirror of
    :func:`technique2_overlap` (which counts level i+1's samples in level i's shell).
    """
    from .checks import check_number, check_positive_int

    gamma = check_number(gamma, "handed_down_share: gamma (the ratio sigma_i / sigma_(i+1))", minimum=1.0)
    dim = check_positive_int(dim, "handed_down_share: dim (the data's dimension D)")
    a = math.sqrt(2.0 * dim) * (1.0 - gamma)
    return _normal_cdf((a + 3.0) / gamma) - _normal_cdf((a - 3.0) / gamma)


def technique4_objective(eps: float, gamma: float, sigma_min: float, n_steps_each: int) -> float:
    """r^(2T) (gamma^2 - 2 eps / (s^2 - s^2 r^2)) + 2 eps / (s^2 - s^2 r^2), r = 1 - eps / s^2, s = sigma_L.

    NCSNv2 technique 4: the variance ratio that Langevin dynamics at one level reaches
    after T steps; the step size eps is chosen to bring it close to 1.
    """
    from .checks import check_number, check_positive_int

    sigma_min = check_number(sigma_min, "technique4_objective: sigma_min (sigma_L)", positive=True)
    gamma = check_number(gamma, "technique4_objective: gamma (the start's std over sigma_i)", positive=True)
    n_steps_each = check_positive_int(n_steps_each, "technique4_objective: n_steps_each (T)")
    eps = check_number(eps, "technique4_objective: eps (the base step size)", positive=True,
                       hint="sigmas.langevin_step_size gives technique 4's value.")
    if eps == 2 * sigma_min**2:  # r = -1: the closed form divides by 1 - r^2 = 0
        raise ValueError(f"technique4_objective: eps = 2 sigma_L^2 = {eps:.3g} exactly makes every step flip the state "
                         "(r = -1): take another eps.")
    return _variance_ratio(float(eps), gamma, sigma_min, n_steps_each)


def _variance_ratio(eps: float, gamma: float, sigma_min: float, n_steps_each: int) -> float:
    s2 = sigma_min**2
    r = 1.0 - eps / s2
    c = 2.0 * eps / (s2 - s2 * r * r)
    return r ** (2 * n_steps_each) * (gamma**2 - c) + c


def langevin_step_size(sigmas: torch.Tensor, n_steps_each: int) -> float:
    """The base step eps of annealed Langevin dynamics for T = ``n_steps_each`` (NCSNv2 technique 4).

    Minimises |objective - 1| over 0 < eps < sigma_L^2 by a log-spaced scan, then a
    golden-section refinement around the best grid point.
    """
    from .checks import check_positive_int

    sigmas = _checked_schedule(sigmas, "langevin_step_size", minimum=2)
    check_positive_int(n_steps_each, "langevin_step_size: n_steps_each (T)")
    gamma = float(sigmas[0] / sigmas[1])
    s_min = float(sigmas[-1])

    def loss(log_eps: float) -> float:
        return abs(_variance_ratio(math.exp(log_eps), gamma, s_min, n_steps_each) - 1.0)

    hi = math.log(s_min**2) - 1e-9
    grid = [hi - 30.0 + 30.0 * k / 3000 for k in range(3001)]
    k = min(range(len(grid)), key=lambda i: loss(grid[i]))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    phi = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(100):
        c, d = b - phi * (b - a), a + phi * (b - a)
        if loss(c) < loss(d):
            b = d
        else:
            a = c
    return math.exp(0.5 * (a + b))


def step_sizes(sigmas: torch.Tensor, eps: float) -> torch.Tensor:
    """alpha_i = eps * sigma_i^2 / sigma_L^2 for every level (annealed Langevin dynamics)."""
    device = torch.as_tensor(sigmas).device
    sigmas = _checked_schedule(sigmas, "step_sizes")
    try:
        e = float(eps)
    except (TypeError, ValueError, RuntimeError):
        e = math.nan
    if not (math.isfinite(e) and e >= 0):
        raise ValueError(f"step_sizes: eps must be a finite number >= 0, got {eps!r} (langevin_step_size gives it).")
    return (e * (sigmas / sigmas[-1]) ** 2).float().to(device)
