"""Checkers for the course's exercises: the learner writes a key piece, the checker compares it with
the package's own on seeded random inputs of several shapes and says precisely what is wrong.

A checker never raises on a learner's mistake: it prints a short verdict and returns a
:class:`CheckResult`. A stub that raises ``NotImplementedError`` is "not attempted yet"; a function
that raises, returns ``None`` (a forgotten ``return``), a string, a list or a tensor of the wrong
shape gets a verdict that says so, and so does passing something that is not a function. The first
failing call gives a general hint; calling the checker again on a still-wrong answer names the
likely mistake (so the answer is not given away at the first try).

The reference solutions live in :mod:`pegasus_course.solutions` and stay out of sight until asked
for (in JupyterLab and on Colab alike): :func:`solution` loads one without showing it,
:func:`show_solution` prints it, and :func:`use` picks what a notebook's later cells run - the
learner's function when it passes its check, else the reference - and says which.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from dataclasses import dataclass
from typing import Callable

import torch

from . import interpolation, losses, sigmas as sig

_attempts: dict[str, int] = {}
_CALLS: dict[str, str] = {}  # exercise -> how the learner's function is called (for the messages)


@dataclass
class CheckResult:
    """What a checker found: ``status`` is ``"correct"``, ``"wrong"``, ``"error"`` or ``"not attempted"``."""

    exercise: str
    status: str
    message: str
    diagnosis: str | None = None  # the named mistake, when recognised (always filled, shown from the 2nd try)

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"[{self.exercise}] {self.status}: {self.message}"


def reset_attempts() -> None:
    """Forget earlier calls (the next wrong answer gets the general hint again)."""
    _attempts.clear()


def _close(a, b, rtol: float = 1e-4) -> bool:
    """Equal up to float32 rounding, judged relative to the size of ``b`` (steps range over 1e-13..1e2)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return False
    atol = 1e-6 * float(b.abs().max()) if b.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol))


class _BadAnswer(Exception):
    """A learner's answer that cannot be compared with the reference; the message says why."""


def _expected(want) -> str:
    shape = tuple(torch.as_tensor(want).shape)
    return "one number" if not shape else f"a tensor of shape {shape}"


def _as_answer(got, want) -> torch.Tensor:
    """``got`` as a float64 CPU tensor of ``want``'s shape, or :class:`_BadAnswer` saying what is wrong with it."""
    expected = _expected(want)
    if got is None:
        raise _BadAnswer(f"your function returned None (did you forget `return`?); expected {expected}")
    if isinstance(got, (str, bytes)):
        raise _BadAnswer(f"your function returned a string, {str(got)[:40]!r}; expected {expected}")
    if isinstance(got, (list, tuple)):
        raise _BadAnswer(f"your function returned a {type(got).__name__} of {len(got)} item{'' if len(got) == 1 else 's'}; "
                         f"expected {expected} "
                         "(torch.stack or torch.cat makes one tensor of a list of tensors)")
    try:
        t = torch.as_tensor(got).detach()
    except Exception:  # noqa: BLE001  anything torch cannot read as numbers
        raise _BadAnswer(f"your function returned a {type(got).__name__}; expected {expected}") from None
    if t.is_complex():
        raise _BadAnswer(f"your function returned complex numbers; expected {expected} of real numbers")
    t = t.to("cpu", torch.float64)
    want_shape = tuple(torch.as_tensor(want).shape)
    if tuple(t.shape) != want_shape:
        got_shape = tuple(t.shape)
        if not want_shape:
            raise _BadAnswer(f"your function returned a tensor of shape {got_shape}; expected one number "
                             "(shape ()): reduce it (e.g. .mean() over the batch)")
        raise _BadAnswer(f"your function returned shape {got_shape}; expected {expected}")
    if not bool(torch.isfinite(t).all()):
        bad = tuple(int(i) for i in torch.nonzero(~torch.isfinite(t))[0]) if t.ndim else ()
        where = f" at index {list(bad)}" if t.ndim else ""
        raise _BadAnswer(f"your function returned {float(t[bad]) if t.ndim else float(t)}{where}; expected finite "
                         "numbers")
    return t


def _checker(name: str, call: str):
    """Decorate a checker: a learner who passes something other than a function (None, the function's
    result, a tensor) gets a verdict instead of a traceback. ``call`` shows how the function is called."""
    _CALLS[name] = call

    def decorate(check):
        @functools.wraps(check)
        def wrapper(fn, verbose: bool = True) -> CheckResult:
            if not callable(fn):
                what = "None" if fn is None else f"a {type(fn).__name__}"
                result = CheckResult(name, "error", f"the checker needs your function itself, check_{name}(my_{name}) "
                                     f"(no parentheses after my_{name}); it got {what}. Your function is called as "
                                     f"my_{name}{call}.")
                if verbose:
                    print(result)
                return result
            return check(fn, verbose)
        return wrapper
    return decorate


def _run(name: str, general_hint: str, cases, mistakes: dict[str, Callable | list[Callable]], learner: Callable,
         reference: Callable, verbose: bool = True, accepted: dict[str, Callable] | None = None,
         reference_label: str | None = None, explain: Callable | None = None,
         conventions: dict[str, Callable] | None = None, explain_error: Callable | None = None) -> CheckResult:
    """Compare ``learner`` with ``reference`` on each case; on a mismatch, look for a known mistake.

    ``accepted`` holds other correct answers (label -> function): matching one of them passes too, and the
    verdict says which one the learner wrote (``reference_label`` names the reference's own form).
    ``conventions`` holds answers that are right under another convention than the exercise's: they do not
    pass, and the verdict names the convention at once (it is not a mistake to be guessed).
    ``explain(got, want) -> str`` describes a mismatch better than the first values do;
    ``explain_error(exc) -> str | None`` adds a hint to an exception the learner's function raised.
    """
    result = None
    written: set[str] | None = None  # the forms (labels) that every case so far matched
    for i, args in enumerate(cases):
        try:
            got = learner(*args())
        except NotImplementedError:
            result = CheckResult(name, "not attempted", "the stub still raises NotImplementedError; fill it in.")
            break
        except _BadAnswer as bad:  # raised on the learner's behalf (a training step's returned loss)
            result = CheckResult(name, "wrong", f"case {i + 1}: {bad}")
            break
        except Exception as exc:  # noqa: BLE001  a learner's bug must not stop the notebook
            extra = explain_error(exc) if explain_error is not None else None
            if extra is None and isinstance(exc, TypeError):
                extra = f"it is called as my_{name}{_CALLS.get(name, '(...)')}"
            result = CheckResult(name, "error", f"your function raised {exc.__class__.__name__}: {exc}"
                                 + (f" ({extra})" if extra else ""))
            break
        want = reference(*args())
        try:
            got = _as_answer(got, want)
        except _BadAnswer as bad:
            result = CheckResult(name, "wrong", f"case {i + 1}: {bad}")
            break
        forms = {label for label, ok in (accepted or {}).items() if _close(got, ok(*args()))}
        if _close(got, want):
            forms.add(reference_label or "")
        if forms:  # a correct answer; in one case two forms can agree by chance, so keep those all cases share
            written = forms if written is None else (written & forms or written | forms)
            continue
        other = next((label for label, ok in (conventions or {}).items() if _close(got, ok(*args()))), None)
        if other is not None:
            result = CheckResult(name, "wrong", f"case {i + 1}: you wrote {other}", other)
            break
        diagnosis = next((label for label, wrong in mistakes.items()
                          if any(_close(got, w(*args())) for w in (wrong if isinstance(wrong, list) else [wrong]))),
                         None)
        first = f"case {i + 1}: {explain(got, want)}" if explain is not None else f"case {i + 1}: {_where(got, want)}"
        _attempts[name] = _attempts.get(name, 0) + 1
        hint = f"likely mistake: {diagnosis}" if (diagnosis and _attempts[name] > 1) else f"hint: {general_hint}"
        if not diagnosis and _attempts[name] > 1:
            hint = f"hint: {general_hint} (no common mistake matched; compare term by term with the formula)"
        result = CheckResult(name, "wrong", f"first mismatch in {first}. {hint}", diagnosis)
        break
    if result is None:
        _attempts.pop(name, None)
        forms = sorted(w for w in (written or set()) if w)
        note = f" You wrote: {'; '.join(forms)}." if forms and "" not in (written or set()) else ""
        result = CheckResult(name, "correct", f"matches the package on all {len(cases)} cases.{note}")
    if verbose:
        print(result)
    return result


# ----- the reference solutions, on demand, and the function the later cells run
def solution(name: str) -> Callable:
    """The reference solution of exercise ``name`` (e.g. ``"langevin_step"``), loaded without showing it."""
    from . import solutions

    fn = getattr(solutions, name, None) if name in solutions.__all__ else None
    if fn is None:
        raise ValueError(f"no exercise called {name!r}; the exercises are: {', '.join(solutions.__all__)}.")
    return fn


def solution_source(name: str) -> str:
    """The reference solution's source, written as the learner's ``my_<name>`` so it can be pasted over the stub."""
    source = inspect.getsource(solution(name))
    return re.sub(rf"^def {name}\(", f"def my_{name}(", source, count=1, flags=re.M)


def show_solution(name: str) -> None:
    """Print the reference solution of exercise ``name``: read it, or paste it over your stub."""
    print(solution_source(name), end="")


def use(mine, check: Callable[..., CheckResult], fallback: Callable) -> Callable:
    """What a notebook's later cells run: the learner's ``mine`` if ``check(mine)`` passes, else ``fallback``
    (the reference solution), with one printed line that says which. A wrong or unfinished exercise thus
    never stops Run All, and a solved one is what runs. The check runs silently and does not count as a
    try (the hints of the checker cell stay as they were)."""
    saved = dict(_attempts)
    try:
        result = check(mine, verbose=False)
    except Exception as exc:  # noqa: BLE001  whatever goes wrong, the notebook goes on with the reference
        name = getattr(check, "__name__", "check").removeprefix("check_")
        result = CheckResult(name, "error", f"the check raised {exc.__class__.__name__}: {exc}")
    finally:
        _attempts.clear()
        _attempts.update(saved)
    label = getattr(mine, "__name__", "function") if callable(mine) else "function"
    if result.passed:
        print(f"[{result.exercise}] using your {label}: it passes its check.")
        return mine
    if result.status == "not attempted":
        print(f"[{result.exercise}] using the reference solution: your {label} is still the stub. Write it, then "
              "re-run this cell to use yours.")
    else:
        print(f"[{result.exercise}] using the reference solution: your {label} does not pass its check "
              f"({result.status}). Fix it, then re-run this cell to use yours.")
    return fallback


def _first_mismatch(g: torch.Tensor, w: torch.Tensor) -> tuple[int, ...] | None:
    """Index of the first element where ``g`` and ``w`` differ by :func:`_close`'s tolerances, or None."""
    bad = ~torch.isclose(g, w, rtol=1e-4, atol=1e-6 * float(w.abs().max()))
    return tuple(int(i) for i in torch.nonzero(bad)[0]) if bool(bad.any()) else None


def _where(got, want) -> str:
    """The first element that differs: a tensor's first value alone can agree (a row's first image)."""
    g, w = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    idx = _first_mismatch(g, w) if g.numel() > 1 else None
    if idx is None:
        return f"got {_summary(g)}, expected {_summary(w)}"
    return (f"at index {list(idx)} got {float(g[idx]):.5g}, expected {float(w[idx]):.5g} "
            f"(largest difference {float((g - w).abs().max()):.3g})")


def _summary(t) -> str:
    t = torch.as_tensor(t, dtype=torch.float64)
    return f"{float(t.flatten()[0]):.5g}" if t.numel() == 1 else f"a tensor with first value {float(t.flatten()[0]):.5g}"


# ----- 01: denoising score matching -----
def _dsm_draws(score_fn, x, levels, g, sigma_first=True, sigma_from_gen=True, z_from_gen=True, per_batch=False):
    """(sigma (B, 1), z, score at x~) drawn as a learner may draw them: levels or z first, each from the
    generator or from torch's global one (torch.randn_like has no generator), one level per example or
    (a mistake) one per batch."""
    def draw_sigma():
        n = 1 if per_batch else x.shape[0]
        return levels[torch.randint(0, len(levels), (n,), generator=g if sigma_from_gen else None)].expand(x.shape[0])

    def draw_z():
        return torch.randn(x.shape, generator=g) if z_from_gen else torch.randn_like(x)

    if sigma_first:
        s = draw_sigma()
        z = draw_z()
    else:
        z = draw_z()
        s = draw_sigma()
    return s[:, None], z, score_fn(x + s[:, None] * z, s)


def _draw_label(sf: bool, sg: bool, zg: bool) -> str:
    """How a learner drew the levels and z. When the two come from different generators their order does not
    change the numbers, so the label names no order then (a z-first answer is not called "levels first")."""
    sources = (f"levels from {'the generator' if sg else 'the global RNG'}, z from "
               f"{'the generator' if zg else 'the global RNG (randn_like)'}")
    if sg != zg:
        return f"{sources} (in either order: they come from different generators)"
    return f"{'levels' if sf else 'z'} first, {sources}"


# one entry per distinct way of drawing: with the levels and z from different generators, the order is moot
_DSM_DRAW_ORDERS = {_draw_label(sf, sg, zg): dict(sigma_first=sf, sigma_from_gen=sg, z_from_gen=zg)
                    for sf in (True, False) for sg in (True, False) for zg in (True, False) if sf or sg == zg}


@_checker("dsm_loss", "(score_fn, x, levels, generator) -> a scalar loss")
def check_dsm_loss(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 01): ``fn(score_fn, x, sigmas, generator) -> scalar``, the sigma^2-weighted DSM loss.

    Any way of drawing the levels and z is accepted: levels or z first, from ``generator`` or from torch's
    global generator (``torch.randn_like``). The checker replays each on the same random state, so a
    correct loss matches one of them exactly; the global state is restored afterwards.
    """
    def case(b, d, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(b, d, generator=g)
            w = torch.randn(d, d, generator=g) * 0.3
            torch.manual_seed(10_000 + seed)  # the same global state for the learner and every replay
            return (lambda x_, s_: -(x_ @ w) / s_[:, None] ** 2 + 0.1), x, torch.tensor([3.0, 1.0, 0.2]), \
                torch.Generator().manual_seed(seed + 1)
        return make

    formulas = {
        "missing sigma^2 weighting: multiply the residual by sigma (sigma * s + z, not s + z / sigma)":
            lambda s, z, sc: (0.5 * (sc + z / s).pow(2).sum(1)).mean(),
        "summed over the batch instead of taking the mean": lambda s, z, sc: (0.5 * (s * sc + z).pow(2).sum(1)).sum(),
        "missing the factor 1/2": lambda s, z, sc: ((s * sc + z).pow(2).sum(1)).mean(),
        "wrong sign: the target score is -(x~ - x) / sigma^2 = -z / sigma, so the residual is sigma * s + z":
            lambda s, z, sc: (0.5 * (s * sc - z).pow(2).sum(1)).mean(),
        "averaged over the dimensions too (F.mse_loss or .mean() over everything): sum the squares over the D "
        "dimensions of each example, then take the mean over the batch": lambda s, z, sc: 0.5 * (s * sc + z).pow(2).mean(),
    }
    correct = lambda s, z, sc: (0.5 * (s * sc + z).pow(2).sum(1)).mean()  # noqa: E731

    def drawn(formula, **how):
        return lambda score_fn, x, levels, g: formula(*_dsm_draws(score_fn, x, levels, g, **how))

    accepted = {label: drawn(correct, **how) for label, how in _DSM_DRAW_ORDERS.items()}
    mistakes = {label: [drawn(f, **how) for how in _DSM_DRAW_ORDERS.values()] for label, f in formulas.items()}
    mistakes["one sigma per batch: draw one level per example, torch.randint(0, L, (B,)), so every level is "
             "trained in every batch"] = [drawn(correct, per_batch=True, **how) for how in _DSM_DRAW_ORDERS.values()]
    ref = lambda score_fn, x, levels, g: losses.dsm_loss(score_fn, x, levels, generator=g)  # noqa: E731
    with torch.random.fork_rng(devices=[]):
        return _run("dsm_loss", "write the residual sigma * s(x~, sigma) + z and average 1/2 of its squared norm",
                    [case(5, 2, 0), case(16, 3, 1), case(1, 4, 2)], mistakes, fn, ref, verbose, accepted=accepted)


# ----- 01 / 05: one Langevin step -----
@_checker("langevin_step", "(x, score, alpha, z) -> x_new")
def check_langevin_step(fn, verbose: bool = True) -> CheckResult:
    """Exercise: ``fn(x, score, alpha, z) -> x_new = x + alpha * score + sqrt(2 alpha) * z``."""
    def case(shape, alpha, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            return torch.randn(shape, generator=g), torch.randn(shape, generator=g), alpha, torch.randn(shape, generator=g)
        return make

    mistakes = {"noise scaled by sqrt(alpha) instead of sqrt(2 alpha)": lambda x, s, a, z: x + a * s + math.sqrt(a) * z,
                "wrong sign of the noise term": lambda x, s, a, z: x + a * s - math.sqrt(2 * a) * z,
                "step of alpha / 2 on the score (that is eq. 3 with eps = alpha, whose noise is sqrt(alpha) z)":
                    lambda x, s, a, z: x + a / 2 * s + math.sqrt(2 * a) * z,
                "moved against the score (x - alpha s): the score points uphill in log-density":
                    lambda x, s, a, z: x - a * s + math.sqrt(2 * a) * z}
    ref = lambda x, s, a, z: x + a * s + math.sqrt(2 * a) * z  # noqa: E731
    return _run("langevin_step", "the update is x + alpha * score + sqrt(2 * alpha) * z",
                [case((4, 2), 0.1, 0), case((2, 3, 8, 8), 1e-3, 1), case((1, 5), 2.5, 2)], mistakes, fn, ref, verbose)


# ----- 02: the noise schedule -----
def _levels_for(sigma_1, sigma_L, dim, target, exponent_offset=1, one_less=False):
    """The smallest L whose geometric ratio (sigma_1 / sigma_L)^(1 / (L - 1)) gives an overlap >= target
    (technique 2), found by counting up; switches plant the common mistakes."""
    L = 2
    while True:
        gamma = (sigma_1 / sigma_L) ** (1.0 / (L - exponent_offset))
        overlap = sig.technique2_overlap(gamma, dim)
        if overlap >= target:
            return L - 1 if one_less else L
        L += 1


@_checker("num_levels", "(sigma_1, sigma_L, dim, target) -> L")
def check_num_levels(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 02): ``fn(sigma_1, sigma_L, dim, target) -> L``, the smallest number of levels whose
    geometric ratio meets technique 2's overlap ``target`` (search over L with ``sigmas.technique2_overlap``)."""
    cases = [lambda: (50.0, 0.01, 3072, 0.5), lambda: (50.0, 0.01, 3072, 0.9), lambda: (20.0, 0.1, 100, 0.5),
             lambda: (1.0, 0.1, 12288, 0.3)]
    mistakes = {"one level too few: L levels have L - 1 ratios between them, so gamma = (sigma_1 / sigma_L) ** "
                "(1 / (L - 1)), and the answer is the first L whose overlap reaches the target, not the last one below "
                "it": [lambda *a: _levels_for(*a, exponent_offset=0), lambda *a: _levels_for(*a, one_less=True)]}
    return _run("num_levels", "count L up from 2; for each, gamma = (sigma_1 / sigma_L) ** (1 / (L - 1)); stop at "
                "the first L whose technique2_overlap(gamma, dim) reaches the target", cases, mistakes, fn,
                _levels_for, verbose)


def _variance_after(eps, sigma_L, gamma, T, noise=2.0, start_gamma=True, square_r=True, scale_r=True):
    r = 1.0 - (eps / sigma_L**2 if scale_r else eps)
    v = gamma**2 if start_gamma else 1.0
    for _ in range(T):
        v = (r * r if square_r else r) * v + noise * eps / sigma_L**2
    return v


@_checker("variance_ratio", "(eps, sigma_L, gamma, T) -> v_T")
def check_variance_ratio(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 02): ``fn(eps, sigma_L, gamma, T) -> Var[x_T] / sigma_i^2`` for Langevin dynamics at one
    level on the one-point data set, started from the previous level's variance; compared with the closed form
    ``sigmas.technique4_objective``."""
    cases = [lambda: (6.2e-6, 0.01, 1.0376, 5), lambda: (2e-5, 0.01, 1.1, 1), lambda: (1e-3, 0.1, 1.5, 10),
             lambda: (0.5, 1.0, 1.2, 3)]
    mistakes = {"noise variance alpha instead of 2 alpha per step (the noise is sqrt(2 alpha) z)":
                    lambda *a: _variance_after(*a, noise=1.0),
                "r not squared: x_t = r x_(t-1) + ... multiplies the variance by r^2":
                    lambda *a: _variance_after(*a, square_r=False),
                "started at variance 1: the chain starts from the previous level, variance gamma^2 sigma_i^2":
                    lambda *a: _variance_after(*a, start_gamma=False),
                "r = 1 - eps: with alpha_i = eps sigma_i^2 / sigma_L^2 and score -x / sigma_i^2, r = 1 - eps / sigma_L^2":
                    lambda *a: _variance_after(*a, scale_r=False)}
    return _run("variance_ratio", "write x_t = r x_(t-1) + sqrt(2 alpha) z as a recursion for the variance and "
                "iterate it T times from gamma^2 (in units of sigma_i^2)", cases, mistakes, fn,
                lambda e, s, g, t: sig.technique4_objective(e, g, s, t), verbose)


# ----- 03: InstanceNorm++ -----
def _inpp(x, gamma, alpha, beta, eps=1e-5, unbiased=False, with_means=True, means_unbiased=None):
    """InstanceNorm++ written out; ``unbiased`` for the per-channel variances over H x W, ``means_unbiased``
    (default: the same) for the variance of the channel means."""
    means_unbiased = unbiased if means_unbiased is None else means_unbiased
    mu = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
    var = x.var((2, 3), keepdim=True, unbiased=unbiased)
    h = (x - mu) / torch.sqrt(var + eps)
    if with_means:
        m = mu.mean(1, keepdim=True)
        s2 = mu.var(1, keepdim=True, unbiased=means_unbiased)
        h = h + alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)
    return gamma.view(1, -1, 1, 1) * h + beta.view(1, -1, 1, 1)


@_checker("instance_norm_pp", "(x, gamma, alpha, beta) -> a tensor of x's shape")
def check_instance_norm_pp(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 03): ``fn(x, gamma, alpha, beta) -> InstanceNorm++(x)`` for x (B, C, H, W), eps = 1e-5."""
    def case(shape, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            c = shape[1]
            x = torch.randn(shape, generator=g) * 2 + torch.arange(float(c)).view(1, c, 1, 1)
            return x, torch.rand(c, generator=g) + 0.5, torch.randn(c, generator=g), torch.randn(c, generator=g)
        return make

    mistakes = {"plain instance norm: the alpha * (mu_c - m) / s term that restores the colour is missing":
                    lambda x, g, a, b: _inpp(x, g, a, b, with_means=False),
                "unbiased variances over H x W: normalise each channel with its population variance "
                "(unbiased=False), as instance norm does":
                    [lambda x, g, a, b: _inpp(x, g, a, b, unbiased=True),
                     lambda x, g, a, b: _inpp(x, g, a, b, unbiased=True, means_unbiased=False)],
                "gamma and beta applied before adding the means term":
                    lambda x, g, a, b: _inpp(x, g, torch.zeros_like(a), b)
                    + a.view(1, -1, 1, 1) * _means_term(x)}
    accepted = {"the unbiased variance of the channel means (torch.var's default, as ermongroup/ncsnv2's code "
                "does); the paper's formula and the package use the biased one, which also passes":
                    lambda x, g, a, b: _inpp(x, g, a, b, means_unbiased=True)}
    return _run("instance_norm_pp", "normalise each channel over H and W, then add alpha_c (mu_c - m) / s",
                [case((2, 3, 5, 6), 0), case((1, 4, 8, 8), 1), case((3, 2, 4, 4), 2)], mistakes, fn, _package_inpp,
                verbose, accepted=accepted)


@torch.no_grad()
def _package_inpp(x, gamma, alpha, beta):
    """The package's InstanceNorm++ with the given parameters (the checker's reference)."""
    from .nn import InstanceNormPlusPlus

    norm = InstanceNormPlusPlus(x.shape[1])
    norm.gamma.copy_(gamma)
    norm.alpha.copy_(alpha)
    norm.beta.copy_(beta)
    return norm(x)


def _means_term(x, eps=1e-5):
    mu = x.mean((2, 3), keepdim=True)
    return (mu - mu.mean(1, keepdim=True)) / torch.sqrt(mu.var(1, keepdim=True, unbiased=False) + eps)


# ----- 04: one whole training step -----
class _TinyScoreNet(torch.nn.Module):
    """A two-convolution score network for 8x8 images: small enough to train a few steps in milliseconds."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(6, 3, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x, sigma):
        return self.conv2(torch.nn.functional.silu(self.conv1(x))) / sigma.view(-1, 1, 1, 1)


def _fingerprint(step_fn, seed: int, steps: int = 3, decay: float = 0.8) -> torch.Tensor:
    """Run :func:`training.train` for a few steps with ``step_fn`` (None: the package's step) and return
    [losses, weights after the last step, EMA weights] as one vector."""
    from .training import TrainConfig, train

    g = torch.Generator().manual_seed(1000 + seed)
    images = torch.randint(0, 256, (12, 3, 8, 8), generator=g, dtype=torch.uint8)
    model = _TinyScoreNet(seed)
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-2, ema_decay=decay, seed=seed, log_every=1, bf16=False)
    state = train(model, images, sig.geometric_sigmas(5.0, 0.1, 6), cfg, progress=False, step_fn=step_fn)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    return torch.cat([torch.tensor(state.losses), flat(state.model), flat(state.ema)])


class _StepRaised(Exception):
    """The learner's training step raised inside :func:`training.train`; ``exc`` is what it raised."""

    def __init__(self, exc: Exception):
        super().__init__(str(exc))
        self.exc = exc


def _check_loss(loss) -> None:
    """The loss a training step returns must be one number (a tensor of shape () or (1,), or a float)."""
    want = "expected the loss, one number (the mean over the batch)"
    if loss is None:
        raise _BadAnswer(f"your step returned None (did you forget `return loss`?); {want}")
    if isinstance(loss, (str, bytes)):
        raise _BadAnswer(f"your step returned a string, {str(loss)[:40]!r}; {want}")
    if isinstance(loss, (list, tuple, dict)):
        raise _BadAnswer(f"your step returned a {type(loss).__name__} of {len(loss)} item"
                         f"{'' if len(loss) == 1 else 's'}; {want}")
    try:
        t = torch.as_tensor(loss)
    except Exception:  # noqa: BLE001
        raise _BadAnswer(f"your step returned a {type(loss).__name__}; {want}") from None
    if t.numel() != 1:
        raise _BadAnswer(f"your step returned a tensor of shape {tuple(t.shape)}; {want}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise _BadAnswer(f"your step returned a loss of {float(t)}; {want}, finite")


def _watched(fn):
    """The learner's step as :func:`training.train` calls it, with its exceptions told apart from the loop's
    and its returned loss checked."""
    def step(model, ema, optimizer, x, sigma, z, decay):
        try:
            loss = fn(model, ema, optimizer, x, sigma, z, decay)
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _StepRaised(exc) from exc
        _check_loss(loss)
        return loss
    return step


def _learner_fingerprint(fn, seed: int) -> torch.Tensor:
    """:func:`_fingerprint` of the learner's step: what the step raised is re-raised as its own; the loop
    stopping on the step's results (a non-finite or exploding loss) becomes a verdict."""
    try:
        return _fingerprint(_watched(fn), seed)
    except _StepRaised as raised:
        raise raised.exc from None
    except (_BadAnswer, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise _BadAnswer(f"training with your step stopped: {exc.__class__.__name__}: {exc}") from None


def _explain_step_error(exc: Exception) -> str | None:
    if isinstance(exc, KeyError):
        return ("`model` is the network as training.train hands it to the step: a thin wrapper (channels-last input "
                "and mixed precision where asked) whose parameters are the network's, in the same order as ema's, but "
                "whose state_dict() keys start with 'net.'; update the EMA over the parameters, "
                "zip(ema.parameters(), model.parameters())")
    return None


def _explain_fingerprint(steps: int, n_weights: int):
    def explain(got, want):
        got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
        parts = [("the loss", slice(0, steps)), ("the weights after the Adam steps", slice(steps, steps + n_weights)),
                 ("the EMA weights", slice(steps + n_weights, None))]
        for name, sl in parts:
            if not _close(got[sl], want[sl]):
                if name == "the loss":
                    (i,) = _first_mismatch(got[sl], want[sl])
                    return (f"{name} differs (step {i + 1}: got {float(got[i]):.5g}, expected {float(want[i]):.5g}); "
                            "the other parts follow from it")
                return f"the losses match, {name} differ"
        return "a small difference"
    return explain


def _mistake_step(kind: str):
    """A learner-style training step with one named mistake planted (for the checker's diagnosis); ``"none"``
    plants none."""
    def step(model, ema, optimizer, x, sigma, z, decay):
        s = sigma.view(-1, 1, 1, 1)
        residual = s * model(x + s * z, sigma) + z
        if kind == "unweighted":
            residual = model(x + s * z, sigma) + z / s
        per = 0.5 * residual.pow(2).flatten(1)
        loss = per.mean(1).mean() if kind == "mean over dims" else per.sum(1).mean()
        if kind != "no zero_grad":
            optimizer.zero_grad()
        if kind == "ema first":
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.mul_(decay).add_(p, alpha=1 - decay)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                if kind == "ema swapped":
                    e.mul_(1 - decay).add_(p, alpha=decay)
                elif kind in ("no ema", "ema first"):
                    pass
                else:
                    e.mul_(decay).add_(p, alpha=1 - decay)
        return loss.detach()
    return step


@_checker("training_step", "(model, ema, optimizer, x, sigma, z, ema_decay) -> the loss")
def check_training_step(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 04): ``fn(model, ema, optimizer, x, sigma, z, ema_decay) -> loss``, one whole step.

    The checker trains a tiny network for three steps with ``training.train`` twice from the same seed,
    once with the package's step and once with ``fn``, and compares the losses, the weights and the EMA.
    ``model`` is what ``training.train`` gives a step: the network in a thin wrapper (channels-last input,
    mixed precision where asked) whose ``parameters()`` are the network's, in ``ema.parameters()``'s order;
    its ``state_dict()`` keys carry a ``net.`` prefix, so an EMA is written over the parameters.
    """
    n_weights = sum(p.numel() for p in _TinyScoreNet(0).parameters())
    mistakes = {
        "the gradients are never zeroed (optimizer.zero_grad()), so each step adds the previous steps' gradients":
            lambda s: _fingerprint(_mistake_step("no zero_grad"), s),
        "a mean over the pixels as well (F.mse_loss or .mean()): eq. 2 sums over the dimensions and averages over "
        "the batch": lambda s: _fingerprint(_mistake_step("mean over dims"), s),
        "the loss is not weighted by sigma^2: use sigma * score + z (eq. 2 with lambda = sigma^2)":
            lambda s: _fingerprint(_mistake_step("unweighted"), s),
        "the EMA weights are swapped: keep ema_decay of the average and take (1 - ema_decay) of the new weights":
            lambda s: _fingerprint(_mistake_step("ema swapped"), s),
        "the EMA is not updated (step 4)": lambda s: _fingerprint(_mistake_step("no ema"), s),
        "the EMA is updated before the optimizer step, so it averages the previous weights":
            lambda s: _fingerprint(_mistake_step("ema first"), s),
    }
    return _run("training_step", "loss (eq. 2) -> zero_grad, backward, optimizer.step() -> EMA of the new weights",
                [lambda: (0,), lambda: (1,)], mistakes, lambda s: _learner_fingerprint(fn, s),
                lambda s: _fingerprint(None, s), verbose, explain=_explain_fingerprint(3, n_weights),
                explain_error=_explain_step_error)


# ----- 05: annealed Langevin dynamics -----
def _gaussian_score(mu: float):
    """The exact score of N(mu, (1 + sigma^2) I): data N(mu, I) perturbed by noise of scale sigma."""
    def score(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype)
        if s.ndim == 1 and s.numel() == x.shape[0]:
            s = s.view(-1, *([1] * (x.ndim - 1)))
        return -(x - mu) / (1 + s**2)
    return score


def _langevin_reference(score_fn, x0, sigmas, T, eps, noise, anneal=True, noise_kind="2alpha", denoise=True,
                        base="last", index_offset=1):
    """Annealed Langevin written out, with switches that plant the common mistakes."""
    x = x0.clone()
    sig_l = sigmas[-1] if base == "last" else sigmas[0]
    for i, s in enumerate(sigmas):
        alpha = eps * (s / sig_l) ** 2 if anneal else eps
        scale = {"2alpha": math.sqrt(2 * alpha), "alpha": math.sqrt(alpha), "eps": math.sqrt(eps)}[noise_kind]
        sv = torch.full((x.shape[0],), float(s), dtype=x.dtype)
        for j in range(T):
            z = noise(index_offset + i * T + j, x.shape, x.device, x.dtype)
            x = x + alpha * score_fn(x, sv) + scale * z
    if denoise:
        x = x + float(sigmas[-1]) ** 2 * score_fn(x, torch.full((x.shape[0],), float(sigmas[-1]), dtype=x.dtype))
    return x


@_checker("annealed_langevin", "(score_fn, x0, sigmas, T, eps, noise) -> samples of x0's shape")
def check_annealed_langevin(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 05): ``fn(score_fn, x0, sigmas, T, eps, noise) -> samples`` (NCSN Alg. 1 with the
    final denoising step), compared with ``sampling.annealed_langevin`` on the same noise tape."""
    from .sampling import SeededNoise, annealed_langevin

    def case(shape, sigmas, T, eps, mu, seed):
        def make():
            noise = SeededNoise(range(seed, seed + shape[0]))
            x0 = float(sigmas[0]) * noise(0, shape, torch.device("cpu"), torch.float32)
            return _gaussian_score(mu), x0, sigmas, T, eps, noise
        return make

    def reference(score_fn, x0, sigmas, T, eps, noise):
        return annealed_langevin(score_fn, x0.shape, sigmas, T, eps, noise=noise, x_init=x0, progress=False)

    R = _langevin_reference
    mistakes = {
        "noise scaled by sqrt(eps) (or sqrt(alpha_i)) instead of sqrt(2 alpha_i)": [
            lambda *a: R(*a, noise_kind="eps"), lambda *a: R(*a, noise_kind="alpha")],
        "no annealing of the step: alpha_i = eps * sigma_i^2 / sigma_L^2 grows with the level's noise":
            lambda *a: R(*a, anneal=False),
        "step scaled by sigma_i^2 / sigma_1^2 instead of sigma_i^2 / sigma_L^2 (sigma_L is the smallest, sigmas[-1])":
            lambda *a: R(*a, base="first"),
        "the final denoising step x + sigma_L^2 s(x, sigma_L) is missing": lambda *a: R(*a, denoise=False),
        "the draws are numbered from 0: draw 0 is z_0 (already in x0), z_ij is noise(1 + i * T + j, ...)":
            lambda *a: R(*a, index_offset=0),
    }
    cases = [case((4, 2), sig.geometric_sigmas(4.0, 0.1, 5), 3, 0.01, 1.0, 0),
             case((2, 3, 4, 4), sig.geometric_sigmas(2.0, 0.2, 3), 2, 0.05, -0.5, 7),
             case((3, 5), sig.geometric_sigmas(1.0, 0.5, 2), 4, 0.02, 0.0, 11)]
    return _run("annealed_langevin", "for each level i: alpha_i = eps * (sigma_i / sigma_L)^2, T steps of x + alpha_i s "
                "+ sqrt(2 alpha_i) z_ij; then one denoising step", cases, mistakes, fn, reference, verbose)


# ----- 06: eq. 4 on two recorded tapes -----
def _interp_reference(score_fn, tape1, tape2, n, ks, sigmas, T, eps, weights="eq4", mix_start=True):
    from .sampling import TapeNoise, annealed_langevin

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
    return annealed_langevin(score_fn, (len(ks), *tape1[0].shape[1:]), sigmas, T, eps, noise=TapeNoise(mixed),
                             progress=False)


@_checker("interpolate", "(score_fn, tape1, tape2, n, ks, sigmas, T, eps) -> (len(ks), C, H, W)")
def check_interpolate(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 06): ``fn(score_fn, tape1, tape2, n, ks, sigmas, T, eps) -> (len(ks), ...)`` samples,
    the interpolants ks of eq. 4 replayed from two recorded tapes; compared with ``interpolation.interpolate``."""
    from .sampling import SeededNoise, num_score_evaluations, record_tape

    def case(image_shape, seeds, n, ks, sigmas, T, eps, mu):
        def make():
            draws = num_score_evaluations(len(sigmas), T, denoise=False) + 1
            tapes = [record_tape(SeededNoise([s]), (1, *image_shape), draws) for s in seeds]
            return _gaussian_score(mu), tapes[0], tapes[1], n, list(ks), sigmas, T, eps
        return make

    def reference(score_fn, tape1, tape2, n, ks, sigmas, T, eps):
        return _interp_reference(score_fn, tape1, tape2, n, ks, sigmas, T, eps)

    R = _interp_reference
    mistakes = {
        "linear weights (1 - k/(N+1), k/(N+1)): the mixed noise is then too small in the middle of the row; eq. 4's "
        "cos and sin keep cos^2 + sin^2 = 1": lambda *a: R(*a, weights="linear"),
        "sin and cos swapped (k = 0 must give sample 1 back)": lambda *a: R(*a, weights="swapped"),
        "the start z_0 (draw 0) is not mixed: every draw of the tape, z_0 included, is mixed with eq. 4 (NCSNv2's "
        "code gives a row one shared start; the course mixes z_0 too, so both ends are the samples drawn alone)":
            lambda *a: R(*a, mix_start=False),
    }
    conventions = {
        "the angle k pi / (2 N): NCSNv2's code convention, torch.linspace(0, pi / 2, N + 1) over a row whose ends are "
        "k = 0 and k = N. Not a mistake in itself, but this exercise follows the paper's eq. 4, k pi / (2 (N + 1)), "
        "whose ends are k = 0 and k = N + 1, as the course's rows do (k = 9 of N = 15 is then the paper's pegasus)":
            lambda *a: R(*a, weights="angle N"),
    }
    cases = [case((2, 4, 4), (3, 8), 5, [0, 2, 6], sig.geometric_sigmas(3.0, 0.1, 4), 2, 0.02, 0.5),
             case((1, 3, 2), (0, 1), 15, [9, 1, 16], sig.geometric_sigmas(2.0, 0.2, 3), 3, 0.05, -1.0)]

    return _run("interpolate", "for each k, mix every draw of the two tapes (z_0 included) with cos and sin of "
                "k pi / (2 (N + 1)); replay the mixed tape with the sampler (sampling.TapeNoise)", cases, mistakes,
                fn, reference, verbose, conventions=conventions)


# ----- 07: classifier guidance -----
class _ToyLinearClassifier(torch.nn.Module):
    """Three-class logits, linear in x and damped by the noise level: (x W + b) / (1 + sigma^2)."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(2, 3, generator=g), requires_grad=False)
        self.b = torch.nn.Parameter(torch.randn(3, generator=g), requires_grad=False)

    def forward(self, x, sigma):
        return (x @ self.w + self.b) / (1 + sigma[:, None] ** 2)


def _classifier_grad(clf, x, sigma, y, what: str):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = clf(xg, sigma)
        pick = torch.arange(x.shape[0])
        value = {"log": logits.log_softmax(-1)[pick, y], "prob": logits.softmax(-1)[pick, y],
                 "logit": logits[pick, y]}[what]
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return grad


@_checker("guided_score", "(score_fn, classifier_fn, x, sigma, y, scale) -> a score of x's shape")
def check_guided_score(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 07): ``fn(score_fn, classifier_fn, x, sigma, y, scale)`` -> the guided score
    ``score_fn(x, sigma) + scale * grad_x log p(y | x, sigma)``, p the softmax of ``classifier_fn(x, sigma)``.

    ``fn`` is called under ``torch.no_grad()``, as a sampler calls a score function, so it must turn gradients
    back on itself (``with torch.enable_grad():``) to differentiate the classifier."""
    from .classifier import class_log_prob_grad
    from .toy import GaussianMixture

    gm = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-3.0, 0.0], [3.0, 1.0]]), torch.tensor([1.0, 0.5]))

    def case(batch, scale, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(batch, 2, generator=g) * 3
            sigma = torch.rand(batch, generator=g) * 2 + 0.1
            y = torch.randint(0, 3, (batch,), generator=g)
            return gm.score, _ToyLinearClassifier(seed), x, sigma, y, scale
        return make

    def reference(score_fn, clf, x, sigma, y, scale):
        weights = torch.nn.functional.one_hot(y, 3).float()
        return score_fn(x, sigma) + scale * class_log_prob_grad(clf, x, sigma, weights)

    mistakes = {"the guidance scale is missing (or applied to the score instead of the gradient)":
                    lambda f, c, x, s, y, w: f(x, s) + _classifier_grad(c, x, s, y, "log"),
                "gradient of p(y | x) instead of log p(y | x): Bayes' rule adds log-probabilities":
                    lambda f, c, x, s, y, w: f(x, s) + w * _classifier_grad(c, x, s, y, "prob"),
                "gradient of the raw logit: the softmax normaliser's gradient is missing (use log_softmax)":
                    lambda f, c, x, s, y, w: f(x, s) + w * _classifier_grad(c, x, s, y, "logit"),
                "sign flipped: guidance climbs log p(y | x), it adds the gradient":
                    lambda f, c, x, s, y, w: f(x, s) - w * _classifier_grad(c, x, s, y, "log"),
                "a .mean() over the batch before autograd.grad divides every image's gradient by the batch size: "
                "take .sum() (each image's log-probability depends on its own x only)":
                    lambda f, c, x, s, y, w: f(x, s) + w * _classifier_grad(c, x, s, y, "log") / x.shape[0]}
    def as_a_sampler_calls_it(*args):
        with torch.no_grad():
            return fn(*args)

    def explain_error(exc: Exception) -> str | None:
        if isinstance(exc, RuntimeError) and "grad" in str(exc):
            return ("samplers call a score function under torch.no_grad(), and so does this checker: compute the "
                    "gradient inside `with torch.enable_grad():`, on xg = x.detach().requires_grad_(True)")
        return None

    return _run("guided_score", "differentiate log_softmax(logits)[b, y_b] with respect to x, scale it, add it",
                [case(6, 3.0, 0), case(1, 0.5, 1), case(9, 10.0, 2)], mistakes, as_a_sampler_calls_it, reference,
                verbose, explain_error=explain_error)
