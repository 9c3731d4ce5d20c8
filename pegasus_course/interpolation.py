"""Interpolating between two samples through their noise tapes (the paper's eq. 4).

A sample of annealed Langevin dynamics is fixed by its noise tape: the start z_0 and
every z_ij drawn on the way. Two tapes z(1), z(2) give the k-th of N interpolants by
using, at every draw, cos(k pi / (2(N+1))) z(1) + sin(k pi / (2(N+1))) z(2). Since
cos^2 + sin^2 = 1, the mix of two independent N(0, I) draws is again N(0, I), so each
interpolant is a valid sample; k = 0 gives sample 1 back and k = N + 1 sample 2.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

from .checks import check_k, check_positive_int, check_seeds
from .sampling import ScoreFn, SeededNoise, annealed_langevin


def mix_weights(k: int | torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of k pi / (2 (n + 1)), the weights of eq. 4, in float64 (0 <= k <= n + 1)."""
    check_k(k, n)
    theta = torch.as_tensor(k, dtype=torch.float64) * math.pi / (2 * (n + 1))
    return theta.cos(), theta.sin()


def spread_ks(n: int, count: int, include: int | None = None) -> list[int]:
    """``count`` interpolants between the ends (1..n), evenly spread, with ``include`` among them: the
    columns a row shows when computing all n costs too much (a CPU). ``count >= n`` gives all of 1..n."""
    n = check_positive_int(n, "spread_ks: n (the number of interpolants)")
    count = check_positive_int(count, "spread_ks: count (interpolants to show)")
    if include is not None and check_positive_int(include, "spread_ks: include") > n:
        raise ValueError(f"spread_ks: include must be an interpolant 1..n = 1..{n}, got {include}.")
    if count >= n:
        return list(range(1, n + 1))
    ks = [round((i + 1) * (n + 1) / (count + 1)) for i in range(count)]
    if include is not None and include not in ks:
        ks[min(range(count), key=lambda i: abs(ks[i] - include))] = include
    return sorted(set(ks))


def linear_weights(k: int | torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - t, t) with t = k / (n + 1): the naive mix, for comparison with eq. 4. Its mixed noise has
    variance (1 - t)^2 + t^2 < 1 between the ends (0.5 in the middle): too little noise for the sampler."""
    check_k(k, n)
    t = torch.as_tensor(k, dtype=torch.float64) / (n + 1)
    return 1 - t, t


MIXES = {"eq4": mix_weights, "linear": linear_weights}


def mix_noise(z1: torch.Tensor, z2: torch.Tensor, k: int | torch.Tensor, n: int) -> torch.Tensor:
    """Eq. 4: cos(k pi / (2(n+1))) z1 + sin(k pi / (2(n+1))) z2.

    ``k`` may be an int or a tensor of ks broadcast against the leading axis of z1/z2.
    """
    if not (torch.is_tensor(z1) and torch.is_tensor(z2)) or z1.shape != z2.shape:
        shapes = [tuple(z.shape) if torch.is_tensor(z) else type(z).__name__ for z in (z1, z2)]
        raise ValueError(f"mix_noise: the two tapes' draws must have one shape, got {shapes[0]} and {shapes[1]}: "
                         "record both tapes with the same sample shape (and the same L and T).")
    c, s = mix_weights(k, n)  # float64 on the CPU: cast there, then moved (MPS has no float64)
    if c.ndim:
        c = c.view(-1, *([1] * (z1.ndim - 1)))
        s = s.view(-1, *([1] * (z1.ndim - 1)))
    return c.to(z1.dtype).to(z1.device) * z1 + s.to(z1.dtype).to(z1.device) * z2


class InterpolatedNoise:
    """A noise source for a batch of interpolation rows: rows[p] goes from seeds1[p] to seeds2[p].

    The batch holds ``len(seeds1) * (n + 2)`` samples, row by row, k = 0 .. n + 1 in each row.
    Every draw is the eq. 4 mix of the two end samples' own seeded draws.
    """

    def __init__(self, seeds1: Sequence[int], seeds2: Sequence[int], n: int, ks: Sequence[int] | None = None,
                 mix: str = "eq4"):
        seeds1, seeds2 = check_seeds(seeds1, "InterpolatedNoise"), check_seeds(seeds2, "InterpolatedNoise")
        if len(seeds1) != len(seeds2):
            raise ValueError("seeds1 and seeds2 must have the same length (one pair per row).")
        same = [a for a, b in zip(seeds1, seeds2) if a == b]
        if same:
            raise ValueError(f"Both ends of a row have seed {same[0]}: eq. 4 mixes two independent noise tapes, and a "
                             "tape mixed with itself is scaled by cos + sin (up to 1.41), not a sample. Pick two "
                             "different seeds.")
        self.n = check_positive_int(n, "InterpolatedNoise: n (the number of interpolants)")
        ks = list(ks) if ks is not None else list(range(n + 2))
        if not ks:
            raise ValueError(f"InterpolatedNoise: ks is empty: pass the interpolants to compute, from 0..n + 1 = "
                             f"0..{n + 1} (None: all of them).")
        check_k(ks, n, "InterpolatedNoise")
        self.ks = torch.as_tensor(ks, dtype=torch.float64).to(torch.int64)
        self.ends1, self.ends2 = SeededNoise(seeds1), SeededNoise(seeds2)
        self.pairs = len(seeds1)
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {sorted(MIXES)}, got {mix!r}.")
        c, s = MIXES[mix](self.ks, n)
        self._c, self._s = c.float(), s.float()  # computed in float64 on the CPU, kept in float32 for any device

    @property
    def batch_size(self) -> int:
        return self.pairs * self.ks.numel()

    def __call__(self, index, shape, device, dtype):
        per = self.ks.numel()
        end_shape = (self.pairs, *shape[1:])
        z1 = self.ends1(index, end_shape, device, dtype).repeat_interleave(per, 0)  # (P * K, ...)
        z2 = self.ends2(index, end_shape, device, dtype).repeat_interleave(per, 0)
        view = (-1, *([1] * (len(shape) - 1)))
        c = self._c.to(device, dtype).repeat(self.pairs).view(view)
        s = self._s.to(device, dtype).repeat(self.pairs).view(view)
        return c * z1 + s * z2


def interpolate(
    score_fn: ScoreFn,
    seeds: tuple[int, int] | Sequence[tuple[int, int]],
    n: int,
    sigmas: torch.Tensor,
    n_steps_each: int,
    step_lr: float,
    *,
    image_shape: Sequence[int] = (3, 32, 32),
    denoise: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
    ks: Sequence[int] | None = None,
    mix: str = "eq4",
) -> torch.Tensor:
    """The whole row (k = 0 .. n + 1) between two seeded samples, in one batched sampling run.

    Args:
        score_fn: (x, sigma) -> score.
        seeds: the two end samples' seeds, or a list of pairs for several rows.
        n: N of eq. 4 (the row holds n + 2 images, both ends included).
        sigmas, n_steps_each, step_lr, denoise: as for :func:`annealed_langevin`.
        image_shape: (C, H, W) of one sample.
        ks: only these interpolants of each row (default: all, k = 0 .. n + 1).
        mix: ``"eq4"`` (the paper's cos/sin weights) or ``"linear"`` (the naive (1 - t, t), for comparison).

    Returns:
        (K, C, H, W) for one pair, or (pairs, K, C, H, W) for a list of pairs, K = len(ks) (n + 2 by default).
    """
    check_positive_int(n, "interpolate: n (the number of interpolants)")
    if ks is not None:
        check_k(list(ks), n, "interpolate: ks")
    single = len(seeds) == 2 and all(isinstance(s, numbers.Integral) for s in seeds)
    pairs = [tuple(seeds)] if single else [tuple(p) for p in seeds]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"seeds must be one pair (seed1, seed2) or a list of pairs, got {seeds!r}.")
    noise = InterpolatedNoise([p[0] for p in pairs], [p[1] for p in pairs], n, ks=ks, mix=mix)
    x = annealed_langevin(
        score_fn, (noise.batch_size, *image_shape), sigmas, n_steps_each, step_lr,
        denoise=denoise, noise=noise, device=device, progress=progress,
    )
    x = x.reshape(len(pairs), noise.ks.numel(), *image_shape)
    return x[0] if single else x


def sample_seeds(
    score_fn: ScoreFn,
    seeds: Sequence[int],
    sigmas: torch.Tensor,
    n_steps_each: int,
    step_lr: float,
    *,
    image_shape: Sequence[int] = (3, 32, 32),
    denoise: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """One sample per seed, each reproducible from its seed alone: (len(seeds), C, H, W)."""
    return annealed_langevin(
        score_fn, (len(seeds), *image_shape), sigmas, n_steps_each, step_lr,
        denoise=denoise, noise=SeededNoise(seeds), device=device, progress=progress,
    )
