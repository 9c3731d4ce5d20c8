"""Checkers for the course's exercises: the learner writes a key piece, the checker compares it with
the package's own on seeded random inputs of several shapes and says precisely what is wrong.

A checker never raises on a wrong answer: it prints a short verdict and returns a
:class:`CheckResult`. A stub that raises ``NotImplementedError`` is "not attempted yet". The first
failing call gives a general hint; calling the checker again on a still-wrong answer names the
likely mistake (so the answer is not given away at the first try).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from . import interpolation, losses, sigmas as sig

_attempts: dict[str, int] = {}


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


def _run(name: str, general_hint: str, cases, mistakes: dict[str, Callable | list[Callable]], learner: Callable,
         reference: Callable, verbose: bool = True, accepted: dict[str, Callable] | None = None,
         reference_label: str | None = None) -> CheckResult:
    """Compare ``learner`` with ``reference`` on each case; on a mismatch, look for a known mistake.

    ``accepted`` holds other correct answers (label -> function): matching one of them passes too, and the
    verdict says which one the learner wrote (``reference_label`` names the reference's own form).
    """
    result = None
    written: list[str] = []
    for i, args in enumerate(cases):
        try:
            got = learner(*args())
        except NotImplementedError:
            result = CheckResult(name, "not attempted", "the stub still raises NotImplementedError; fill it in.")
            break
        except Exception as exc:  # a learner's bug must not stop the notebook
            result = CheckResult(name, "error", f"your function raised {exc.__class__.__name__}: {exc}")
            break
        want = reference(*args())
        if _close(got, want):
            written.append(reference_label or "")
            continue
        variant = next((label for label, ok in (accepted or {}).items() if _close(got, ok(*args()))), None)
        if variant is not None:
            written.append(variant)
            continue
        diagnosis = next((label for label, wrong in mistakes.items()
                          if any(_close(got, w(*args())) for w in (wrong if isinstance(wrong, list) else [wrong]))),
                         None)
        shape = f"shapes {tuple(torch.as_tensor(got).shape)} vs expected {tuple(torch.as_tensor(want).shape)}"
        first = (f"case {i + 1}: {shape}" if torch.as_tensor(got).shape != torch.as_tensor(want).shape
                 else f"case {i + 1}: got {_summary(got)}, expected {_summary(want)}")
        _attempts[name] = _attempts.get(name, 0) + 1
        hint = f"likely mistake: {diagnosis}" if (diagnosis and _attempts[name] > 1) else f"hint: {general_hint}"
        if not diagnosis and _attempts[name] > 1:
            hint = f"hint: {general_hint} (no common mistake matched; compare term by term with the formula)"
        result = CheckResult(name, "wrong", f"first mismatch in {first}. {hint}", diagnosis)
        break
    if result is None:
        _attempts.pop(name, None)
        forms = sorted({w for w in written if w})
        note = f" You wrote: {'; '.join(forms)}." if forms else ""
        result = CheckResult(name, "correct", f"matches the package on all {len(cases)} cases.{note}")
    if verbose:
        print(result)
    return result


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


_DSM_DRAW_ORDERS = {
    f"{'levels' if sf else 'z'} first, levels from {'the generator' if sg else 'the global RNG'}, z from "
    f"{'the generator' if zg else 'the global RNG (randn_like)'}": dict(sigma_first=sf, sigma_from_gen=sg, z_from_gen=zg)
    for sf in (True, False) for sg in (True, False) for zg in (True, False)}


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
def check_geometric_sigmas(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 02): ``fn(sigma_max, sigma_min, num_scales) -> descending geometric sequence``."""
    cases = [lambda: (50.0, 0.01, 232), lambda: (1.0, 0.1, 5), lambda: (20.0, 0.5, 2)]
    mistakes = {"ascending order: sigmas[0] must be the largest, sigma_1":
                    lambda a, b, n: sig.geometric_sigmas(a, b, n).flip(0),
                "linear spacing: a geometric sequence is linear in log(sigma)":
                    lambda a, b, n: torch.linspace(a, b, n),
                "one level too few (the L levels include both ends)":
                    lambda a, b, n: torch.exp(torch.linspace(math.log(a), math.log(b), n - 1)),
                "one level too many": lambda a, b, n: torch.exp(torch.linspace(math.log(a), math.log(b), n + 1))}
    return _run("geometric_sigmas", "space the levels evenly in log(sigma), largest first", cases, mistakes, fn,
                sig.geometric_sigmas, verbose)


def check_step_size(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 02): ``fn(sigmas, eps) -> alpha`` with alpha_i = eps * sigma_i^2 / sigma_L^2."""
    cases = [lambda: (sig.geometric_sigmas(50.0, 0.01, 232), 6.2e-6), lambda: (torch.tensor([4.0, 2.0, 1.0]), 0.1),
             lambda: (torch.tensor([1.0, 0.5]), 2e-3)]
    mistakes = {"step size not squared: use (sigma_i / sigma_L) ** 2": lambda s, e: e * s / s[-1],
                "scaled by sigma_1 instead of sigma_L (the smallest level, s[-1])": lambda s, e: e * (s / s[0]) ** 2,
                "step size not scaled by sigma_i^2 / sigma_L^2 at all": lambda s, e: torch.full_like(s, e),
                "inverted ratio: sigma_L^2 / sigma_i^2": lambda s, e: e * (s[-1] / s) ** 2}
    return _run("step_size", "each level's step grows with its noise level", cases, mistakes, fn,
                lambda s, e: sig.step_sizes(s, e), verbose)


# ----- 06: eq. 4 -----
def check_mix_noise(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 06): ``fn(z1, z2, k, n) -> cos(k pi / (2(n+1))) z1 + sin(k pi / (2(n+1))) z2``."""
    def case(shape, k, n, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            return torch.randn(shape, generator=g), torch.randn(shape, generator=g), k, n
        return make

    def angle(k, n):
        return k * math.pi / (2 * (n + 1))

    mistakes = {"sin and cos swapped (k = 0 must give z1 back)":
                    lambda a, b, k, n: math.sin(angle(k, n)) * a + math.cos(angle(k, n)) * b,
                "angle k pi / (2 N) instead of k pi / (2 (N + 1))":
                    lambda a, b, k, n: math.cos(k * math.pi / (2 * n)) * a + math.sin(k * math.pi / (2 * n)) * b,
                "linear weights (1 - t, t): they shrink the noise's norm in the middle; eq. 4 keeps it":
                    lambda a, b, k, n: (1 - k / (n + 1)) * a + k / (n + 1) * b}
    return _run("mix_noise", "check both ends: k = 0 must return z1 and k = N + 1 must return z2",
                [case((3, 4), 9, 15, 0), case((2, 3, 8, 8), 1, 3, 1), case((5,), 4, 7, 2)], mistakes, fn,
                interpolation.mix_noise, verbose)


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


# ----- 04: the EMA update -----
def check_ema_update(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 04): ``fn(ema, theta, decay) -> decay * ema + (1 - decay) * theta`` (tensors)."""
    def case(shape, decay, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            return torch.randn(shape, generator=g), torch.randn(shape, generator=g), decay
        return make

    mistakes = {"weights swapped: the EMA keeps `decay` of its old value and takes (1 - decay) of the new weights":
                    lambda e, t, d: (1 - d) * e + d * t,
                "returned the new weights instead of the average": lambda e, t, d: t.clone(),
                "missing the (1 - decay) factor on the new weights": lambda e, t, d: d * e + t}
    return _run("ema_update", "the average moves a small step (1 - decay) from its old value towards the new weights",
                [case((5,), 0.999, 0), case((3, 4), 0.9, 1), case((2, 2, 3), 0.5, 2)], mistakes, fn,
                lambda e, t, d: d * e + (1 - d) * t, verbose)


# ----- 05: the final denoising step -----
def check_denoise_step(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 05): ``fn(x, score, sigma_L) -> x + sigma_L ** 2 * score`` (no noise)."""
    def case(shape, s, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            return torch.randn(shape, generator=g), torch.randn(shape, generator=g) * 50, s
        return make

    mistakes = {"sigma_L instead of sigma_L ** 2": lambda x, sc, s: x + s * sc,
                "moved against the score": lambda x, sc, s: x - s**2 * sc,
                "no step at all: the denoising step moves x by sigma_L^2 times the score": lambda x, sc, s: x.clone()}
    return _run("denoise_step", "Tweedie: the posterior mean is x + sigma^2 times the score at sigma",
                [case((2, 3, 4, 4), 0.01, 0), case((5, 2), 0.3, 1), case((1, 3), 1.0, 2)], mistakes, fn,
                lambda x, sc, s: x + s**2 * sc, verbose)


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


def check_guided_score(fn, verbose: bool = True) -> CheckResult:
    """Exercise (notebook 07): ``fn(score_fn, classifier_fn, x, sigma, y, scale)`` -> the guided score
    ``score_fn(x, sigma) + scale * grad_x log p(y | x, sigma)``, p the softmax of ``classifier_fn(x, sigma)``."""
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
    return _run("guided_score", "differentiate log_softmax(logits)[b, y_b] with respect to x, scale it, add it",
                [case(6, 3.0, 0), case(1, 0.5, 1), case(9, 10.0, 2)], mistakes, fn, reference, verbose)
