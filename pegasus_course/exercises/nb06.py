"""Notebook 06's exercise: eq. 4, replayed from two recorded noise tapes.

The next cells call ``interp(score_fn, tape1, tape2, n, ks, sigmas, T, eps)`` with the U-Net's score, tapes
recorded on the notebook's device (index -> (1, C, H, W)) and ``ks`` a list; they clamp the rows, compare them
with the package's ``pegasus_rows`` by ``torch.allclose`` and put them between the two ends with ``torch.cat``:
the answer must be a tensor (len(ks), C, H, W) of the tapes' dtype, on their device.
"""

from __future__ import annotations

import math

import torch

from .. import interpolation, sigmas as sig
from .core import Check, checker, run, tensor_answer
from .scores import notebook_device, strict_gaussian_score

WHY = ("the next cells clamp the row, compare it with the package's pegasus_rows by torch.allclose and put it between "
       "the two ends with torch.cat")
ANGLE_N = ("the angle k pi / (2 N): NCSNv2's code convention, torch.linspace(0, pi / 2, N + 1) over a row whose ends are "
           "k = 0 and k = N. Not a mistake in itself, but this exercise follows the paper's eq. 4, k pi / (2 (N + 1)), "
           "whose ends are k = 0 and k = N + 1, as the course's rows do (k = 9 of N = 15 is then the paper's pegasus)")


def interp_reference(score_fn, tape1, tape2, n, ks, sigmas, T, eps, weights="eq4", mix_start=True):
    """Eq. 4's mixed tape replayed by the package's sampler; switches plant the common mistakes."""
    from ..sampling import TapeNoise, annealed_langevin

    def w(k):
        if weights in interpolation.MIXES:  # "eq4" (the reference) and "linear"
            return tuple(float(v) for v in interpolation.MIXES[weights](k, n))
        c, s = (float(v) for v in interpolation.mix_weights(k, n))
        if weights == "swapped":
            return s, c
        return math.cos(k * math.pi / (2 * n)), math.sin(k * math.pi / (2 * n))  # "angle N"

    pairs = [w(k) for k in ks]
    mixed = {}
    for i in tape1:
        if i == 0 and not mix_start:
            mixed[i] = torch.cat([tape1[0]] * len(ks))
        else:
            mixed[i] = torch.cat([c * tape1[i] + s * tape2[i] for c, s in pairs])
    shape = (len(ks), *tape1[0].shape[1:])
    return annealed_langevin(getattr(score_fn, "score", score_fn), shape, sigmas, T, eps, noise=TapeNoise(mixed),
                             progress=False, device=tape1[0].device)


@checker("interpolate", "(score_fn, tape1, tape2, n, ks, sigmas, T, eps) -> (len(ks), C, H, W)")
def check_interpolate(fn) -> object:
    """Exercise (notebook 06): ``fn(score_fn, tape1, tape2, n, ks, sigmas, T, eps) -> (len(ks), ...)`` samples,
    the interpolants ks of eq. 4 replayed from two recorded tapes; compared with ``interpolation.interpolate``.
    ``score_fn`` is as strict as the U-Net; a case runs on the notebook's device when it has an accelerator."""
    from ..sampling import SeededNoise, num_score_evaluations, record_tape

    def case(image_shape, seeds, n, ks, sigmas, T, eps, mu, device=torch.device("cpu")):
        def make():
            draws = num_score_evaluations(len(sigmas), T, denoise=False) + 1
            tapes = [record_tape(SeededNoise([s]), (1, *image_shape), draws, device=device) for s in seeds]
            return strict_gaussian_score(mu), tapes[0], tapes[1], n, list(ks), sigmas, T, eps  # sigmas on the CPU
        return make

    def call(args):
        with torch.no_grad():  # as the sampling cells run
            shape = (len(args[4]), *args[1][0].shape[1:])
            return tensor_answer(fn(*args), shape, WHY, "your function", args[1][0].dtype, args[1][0].device)

    R = interp_reference
    mistakes = {
        "linear weights (1 - k/(N+1), k/(N+1)): the mixed noise is then too small in the middle of the row; eq. 4's "
        "cos and sin keep cos^2 + sin^2 = 1": lambda *a: R(*a, weights="linear"),
        "sin and cos swapped (k = 0 must give sample 1 back)": lambda *a: R(*a, weights="swapped"),
        "the start z_0 (draw 0) is not mixed: every draw of the tape, z_0 included, is mixed with eq. 4 (NCSNv2's "
        "code gives a row one shared start; the course mixes z_0 too, so both ends are the samples drawn alone)":
            lambda *a: R(*a, mix_start=False),
    }
    cases = [case((2, 4, 4), (3, 8), 5, [0, 2, 6], sig.geometric_sigmas(3.0, 0.1, 4), 2, 0.02, 0.5),
             case((1, 3, 2), (0, 1), 15, [9, 1, 16], sig.geometric_sigmas(2.0, 0.2, 3), 3, 0.05, -1.0)]
    device = notebook_device()
    if device is not None:  # the next cells record the tapes and run the score on the notebook's device
        cases.append(case((3, 8, 8), (4, 9), 3, [1, 3], sig.geometric_sigmas(2.0, 0.2, 3), 2, 0.05, 0.2, device))
    return run(Check("interpolate", "for each k, mix every draw of the two tapes (z_0 included) with cos and sin of "
                     "k pi / (2 (N + 1)); replay the mixed tape with the sampler (sampling.TapeNoise)", cases, call,
                     R, mistakes, {ANGLE_N: lambda *a: R(*a, weights="angle N")},
                     unchanged={i: "the next cells replay the same two tapes again (the short row of section 4, the "
                                   "full row of section 5)" for i in (1, 2)}))
