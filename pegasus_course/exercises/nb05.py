"""Notebook 05's exercise: annealed Langevin dynamics (NCSN's Algorithm 1 with the final denoising step).

The next cells call the learner's sampler as ``sampler(score_fn, x0, sigmas, T, eps, noise)`` with the U-Net's
score (which refuses a Python float for sigma: it takes a tensor of shape (B,) of x's dtype, on x's device),
x0 and sigmas on the notebook's device, and a noise source: ``SeededNoise``, or ``TapeNoise`` replaying a
recorded tape, which is how section 1 compares the sampler with the package's and notebook 06 mixes two
tapes into a pegasus. The checker calls it the same way, with a score as strict as the U-Net.
"""

from __future__ import annotations

import math

import torch

from .. import sigmas as sig
from .core import BadAnswer, Check, checker, run, tensor_answer
from .scores import notebook_device, strict_gaussian_score

WHY = ("the sampling cells clamp and show the samples and compare them with the package's by torch.allclose, on "
       "x0's device and in its dtype")
EQ3 = ("eq. 3's form, x + alpha_i/2 s + sqrt(alpha_i) z: the paper's Langevin step, whose eps is twice the course's "
       "alpha. Not wrong in itself, but the course (like NCSN's code) writes the step as x + alpha_i s + sqrt(2 alpha_i) "
       "z with alpha_i = eps sigma_i^2 / sigma_L^2, and technique 4's eps, which the notebooks pass, is meant for that "
       "form (notebook 05's 'Reading the paper')")
RANDN = ("the noise drawn with torch.randn_like (or torch.randn), not from the noise source: draw every z_ij as "
         "noise(1 + i * T + j, x.shape, x.device, x.dtype). Replay needs the tape: section 1 replays a recorded tape "
         "through your sampler (sampling.TapeNoise) to compare it with the package's draw for draw, and notebook 06's "
         "pegasus mixes two samples' tapes draw by draw; a sample is reproducible from its seed only through its "
         "source")


class CountingNoise:
    """A noise source that refuses a call the sources of the next cells would refuse (TapeNoise needs the
    shape, device and dtype of the run) and counts its calls."""

    def __init__(self, inner, x0: torch.Tensor):
        self.inner, self.x0, self.calls = inner, x0, 0

    def __call__(self, index, shape, device, dtype):
        x0 = self.x0
        if tuple(shape) != tuple(x0.shape) or torch.device(device) != x0.device or dtype != x0.dtype:
            raise BadAnswer(f"your sampler called noise({index!r}, {tuple(shape)}, {device}, {dtype}): a noise source "
                            f"draws for the run's x, noise(index, x.shape, x.device, x.dtype), here ({tuple(x0.shape)}, "
                            f"{x0.device}, {x0.dtype}); a replayed tape (sampling.TapeNoise) holds draws of that shape")
        self.calls += 1
        return self.inner(index, shape, device, dtype)


def langevin_reference(score_fn, x0, sigmas, T, eps, noise, anneal="square", noise_kind="2alpha", denoise="last",
                       base="last", index_offset=1, score_sign=1.0, steps="T", drift=1.0):
    """Annealed Langevin written out, with switches that plant the common mistakes."""
    x = x0.clone()
    levels = [float(s) for s in sigmas]
    sig_l = levels[-1] if base == "last" else levels[0]
    for i, s in enumerate(levels):
        alpha = {"square": eps * (s / sig_l) ** 2, "none": eps, "linear": eps * s / sig_l}[anneal]
        scale = {"2alpha": math.sqrt(2 * alpha), "alpha": math.sqrt(alpha), "eps": math.sqrt(eps)}[noise_kind]
        sv = torch.full((x.shape[0],), s, dtype=x.dtype, device=x.device)
        js = {"T": range(T), "T-1": range(T - 1), "1..T-1": range(1, T)}[steps]
        for j in js:
            z = noise(index_offset + i * T + j, x.shape, x.device, x.dtype)
            x = x + drift * alpha * score_sign * score_fn(x, sv) + scale * z
    if denoise != "none":
        at, by = {"last": (levels[-1], levels[-1]), "first": (levels[0], levels[0]),
                  "first at last": (levels[0], levels[-1]), "last at first": (levels[-1], levels[0])}[denoise]
        x = x + by**2 * score_fn(x, torch.full((x.shape[0],), at, dtype=x.dtype, device=x.device))
    return x


@checker("annealed_langevin", "(score_fn, x0, sigmas, T, eps, noise) -> samples of x0's shape")
def check_annealed_langevin(fn) -> object:
    """Exercise (notebook 05): ``fn(score_fn, x0, sigmas, T, eps, noise) -> samples`` (NCSN Alg. 1 with the
    final denoising step), compared with ``sampling.annealed_langevin`` on the same noise tape. ``score_fn``
    is as strict as the U-Net; a case runs on the notebook's device when it has an accelerator."""
    from ..sampling import SeededNoise, annealed_langevin

    def case(shape, sigmas, T, eps, mu, seed, device=torch.device("cpu")):
        def make():
            noise = SeededNoise(range(seed, seed + shape[0]))
            x0 = float(sigmas[0]) * noise(0, shape, device, torch.float32)
            return strict_gaussian_score(mu), x0, sigmas.to(device), T, eps, CountingNoise(noise, x0)
        return make

    def call(args):
        with torch.no_grad():  # the sampling cells run the sampler without gradients
            return tensor_answer(fn(*args), args[1], WHY, "your sampler")

    def reference(score_fn, x0, sigmas, T, eps, noise):
        return annealed_langevin(score_fn.score, x0.shape, sigmas, T, eps, noise=noise.inner, x_init=x0,
                                 progress=False)

    def structural(args):
        return RANDN if args[5].calls == 0 else None

    R = langevin_reference
    mistakes = {
        "noise scaled by sqrt(eps) (or sqrt(alpha_i)) instead of sqrt(2 alpha_i)": [
            lambda *a: R(*a, noise_kind="eps"), lambda *a: R(*a, noise_kind="alpha")],
        "no annealing of the step: alpha_i = eps * sigma_i^2 / sigma_L^2 grows with the level's noise":
            lambda *a: R(*a, anneal="none"),
        "alpha_i = eps * sigma_i / sigma_L: the ratio is squared, alpha_i = eps * (sigma_i / sigma_L)^2":
            lambda *a: R(*a, anneal="linear"),
        "step scaled by sigma_i^2 / sigma_1^2 instead of sigma_i^2 / sigma_L^2 (sigma_L is the smallest, sigmas[-1])":
            lambda *a: R(*a, base="first"),
        "the score's sign: the step moves along the score, x + alpha_i s(x, sigma_i), uphill in log-density":
            lambda *a: R(*a, score_sign=-1.0),
        "T - 1 steps per level: each level takes T steps, j = 0 .. T - 1 (range(T)), drawing z_ij = noise(1 + i * T "
        "+ j, ...)": [lambda *a: R(*a, steps="T-1"), lambda *a: R(*a, steps="1..T-1")],
        "the final denoising step x + sigma_L^2 s(x, sigma_L) is missing": lambda *a: R(*a, denoise="none"),
        "the denoising step at sigma_1 (sigmas[0], the largest level): it is x + sigma_L^2 s(x, sigma_L) with "
        "sigma_L = sigmas[-1], the smallest": [lambda *a, d=d: R(*a, denoise=d) for d in
                                               ("first", "first at last", "last at first")],
        "the draws are numbered from 0: draw 0 is z_0 (already in x0), z_ij is noise(1 + i * T + j, ...)":
            lambda *a: R(*a, index_offset=0),
    }
    conventions = {EQ3: lambda *a: R(*a, noise_kind="alpha", drift=0.5)}
    cases = [case((4, 2), sig.geometric_sigmas(4.0, 0.1, 5), 3, 0.01, 1.0, 0),
             case((2, 3, 4, 4), sig.geometric_sigmas(2.0, 0.2, 3), 2, 0.05, -0.5, 7),
             case((3, 5), sig.geometric_sigmas(1.0, 0.5, 2), 4, 0.02, 0.0, 11)]
    device = notebook_device()
    if device is not None:  # the sampling cells pass x0, sigmas and the noise on the notebook's device
        cases.append(case((2, 3, 4, 4), sig.geometric_sigmas(2.0, 0.2, 3), 2, 0.05, 0.3, 5, device))
    return run(Check("annealed_langevin", "for each level i: alpha_i = eps * (sigma_i / sigma_L)^2, T steps of x + "
                     "alpha_i s + sqrt(2 alpha_i) z_ij; then one denoising step", cases, call, reference, mistakes,
                     conventions, structural=structural,
                     unchanged={1: "section 4 starts three runs from one x0 (eps x 0.25, x 4, and the check against "
                                   "the package), so each run must leave x0 as it was"}))
