"""Notebook 02's exercises: the number of levels by search (technique 2), and the variance after T Langevin
steps at one level (technique 4's recursion).

The next cells call both with Python numbers: ``L = num_levels(50.0, 0.01, dim, 0.5)`` is compared with
``sigmas.num_noise_scales`` and printed, so it must be an int; ``variance_ratio(eps, sigma_L, gamma, T)`` is
printed with ``:.4f``, searched over with ``min`` and fed back through ``math.sqrt``, so it must be one number.
"""

from __future__ import annotations

from .. import sigmas as sig
from .core import Check, checker, number_answer, run

LEVELS_WHY = ("L counts noise levels, a schedule's length (geometric_sigmas takes an int): the next cell compares it "
              "with sigmas.num_noise_scales and prints it")
RATIO_WHY = ("the next cells print it with f'{v:.4f}', search eps with min(...) over it and chain it from level to "
             "level through math.sqrt(v)")


def levels_for(sigma_1, sigma_L, dim, target, exponent_offset=1, one_less=False, one_more=False, inverted=False,
               fixed_target=None):
    """The smallest L whose geometric ratio (sigma_1 / sigma_L)^(1 / (L - 1)) gives an overlap >= target
    (technique 2), found by counting up; switches plant the common mistakes."""
    target = target if fixed_target is None else fixed_target
    ratio = sigma_L / sigma_1 if inverted else sigma_1 / sigma_L
    L = 2
    while True:
        gamma = ratio ** (1.0 / (L - exponent_offset)) if L > exponent_offset else ratio
        if sig.technique2_overlap(gamma, dim) >= target:
            return L - 1 if one_less else L + 1 if one_more else L
        L += 1


@checker("num_levels", "(sigma_1, sigma_L, dim, target) -> L, an int")
def check_num_levels(fn) -> object:
    """Exercise (notebook 02): ``fn(sigma_1, sigma_L, dim, target) -> L``, the smallest number of levels whose
    geometric ratio meets technique 2's overlap ``target`` (search over L with ``sigmas.technique2_overlap``),
    called with Python numbers as the next cell calls it."""
    cases = [lambda: (50.0, 0.01, 3072, 0.5), lambda: (50.0, 0.01, 3072, 0.9), lambda: (20.0, 0.1, 100, 0.5),
             lambda: (1.0, 0.1, 12288, 0.3), lambda: (10.0, 0.5, 10, 0.7)]
    mistakes = {
        "one level too few: L levels have L - 1 ratios between them, so gamma = (sigma_1 / sigma_L) ** (1 / (L - 1)), "
        "and the answer is the first L whose overlap reaches the target, not the last one below it":
            [lambda *a: levels_for(*a, exponent_offset=0), lambda *a: levels_for(*a, one_less=True)],
        "one level too many (L + 1): return the first L whose overlap reaches the target; L levels have L - 1 "
        "ratios, not L - 2": [lambda *a: levels_for(*a, one_more=True), lambda *a: levels_for(*a, exponent_offset=2)],
        "the inverted ratio sigma_L / sigma_1: gamma is the ratio of neighbouring levels, larger than 1, "
        "(sigma_1 / sigma_L) ** (1 / (L - 1))": lambda *a: levels_for(*a, inverted=True),
        "the target is ignored (the search always asks for an overlap of 0.5): compare the overlap with `target`":
            lambda *a: levels_for(*a, fixed_target=0.5),
    }

    def call(args):
        return number_answer(fn(*args), LEVELS_WHY, integer=True)

    return run(Check("num_levels", "count L up from 2; for each, gamma = (sigma_1 / sigma_L) ** (1 / (L - 1)); stop "
                     "at the first L whose technique2_overlap(gamma, dim) reaches the target", cases, call, levels_for,
                     mistakes))


def variance_after(eps, sigma_L, gamma, T, noise=2.0, start="gamma^2", square_r=True, scale_r=True, r_sign=-1,
                   extra_steps=0):
    """Iterate v_t = r^2 v_(t-1) + 2 eps / sigma_L^2 from v_0 = gamma^2, r = 1 - eps / sigma_L^2; switches plant
    the common mistakes."""
    r = 1.0 + r_sign * (eps / sigma_L**2 if scale_r else eps)
    v = {"gamma^2": gamma**2, "gamma": gamma, "1": 1.0}[start]
    for _ in range(T + extra_steps):
        v = (r * r if square_r else r) * v + noise * eps / sigma_L**2
    return v


@checker("variance_ratio", "(eps, sigma_L, gamma, T) -> v_T, one number")
def check_variance_ratio(fn) -> object:
    """Exercise (notebook 02): ``fn(eps, sigma_L, gamma, T) -> Var[x_T] / sigma_i^2`` for Langevin dynamics at one
    level on the one-point data set, started from the previous level's variance; compared with the closed form
    ``sigmas.technique4_objective``. Called with Python numbers, as the next cells call it."""
    cases = [lambda: (6.2e-6, 0.01, 1.0376, 5), lambda: (2e-5, 0.01, 1.1, 1), lambda: (1e-3, 0.1, 1.5, 10),
             lambda: (0.5, 1.0, 1.2, 3)]
    V = variance_after
    mistakes = {
        "noise variance alpha instead of 2 alpha per step (the noise is sqrt(2 alpha) z)": lambda *a: V(*a, noise=1.0),
        "r not squared: x_t = r x_(t-1) + ... multiplies the variance by r^2": lambda *a: V(*a, square_r=False),
        "started at variance 1: the chain starts from the previous level, variance gamma^2 sigma_i^2":
            lambda *a: V(*a, start="1"),
        "started at gamma instead of gamma^2: the previous level's variance is gamma^2 sigma_i^2 (gamma is a ratio "
        "of standard deviations)": lambda *a: V(*a, start="gamma"),
        "T + 1 iterations: the chain takes T steps, so the recursion runs T times from v_0 (range(T), not "
        "range(T + 1))": lambda *a: V(*a, extra_steps=1),
        "r = 1 - eps: with alpha_i = eps sigma_i^2 / sigma_L^2 and score -x / sigma_i^2, r = 1 - eps / sigma_L^2":
            lambda *a: V(*a, scale_r=False),
        "r = 1 + eps / sigma_L^2: the score -x / sigma_i^2 pulls x back to 0, so r = 1 - alpha_i / sigma_i^2 = "
        "1 - eps / sigma_L^2": lambda *a: V(*a, r_sign=1),
    }

    def call(args):
        return number_answer(fn(*args), RATIO_WHY)

    return run(Check("variance_ratio", "write x_t = r x_(t-1) + sqrt(2 alpha) z as a recursion for the variance and "
                     "iterate it T times from gamma^2 (in units of sigma_i^2)", cases, call,
                     lambda e, s, g, t: sig.technique4_objective(e, g, s, t), mistakes))
