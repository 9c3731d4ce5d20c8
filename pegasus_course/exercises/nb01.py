"""Notebook 01's exercises: one Langevin step, and the DSM loss (eq. 2).

Section 7 runs the learner's step inside an annealed sampler, ``x = step(x, score_fn(x, sigma), alpha, z)``
under ``torch.no_grad()``, so the step must give back a tensor of x's shape and dtype. Section 5 trains the
toy network with the learner's loss, ``loss(net, x, levels, generator)`` then ``loss.backward()``: the loss
must be a 0-dim tensor whose gradient reaches the network, and the network takes sigma of shape (B,).
"""

from __future__ import annotations

import math

import torch

from .. import losses
from .core import BadAnswer, Check, checker, describe, run, tensor_answer
from .scores import check_score_call

STEP_WHY = ("section 7's sampler feeds each step's result back into score_fn(x, sigma) and into your next step, "
            "as the x of the next iteration")
EQ3 = ("eq. 3's form, x + alpha/2 s + sqrt(alpha) z: the paper's Langevin step with its eps = alpha. Not wrong in "
       "itself, but the course (like NCSN's code) writes the same step as x + alpha s + sqrt(2 alpha) z, so the "
       "course's alpha is half the paper's eps (notebook 01's 'Reading the paper'); the samplers that run your step "
       "pass alpha in the course's sense. Write x + alpha * score + sqrt(2 * alpha) * z")


@checker("langevin_step", "(x, score, alpha, z) -> x_new, a tensor of x's shape and dtype")
def check_langevin_step(fn) -> object:
    """Exercise: ``fn(x, score, alpha, z) -> x + alpha * score + sqrt(2 alpha) * z``, called as section 7's
    sampler calls it: float32 tensors, alpha a Python float, under ``torch.no_grad()``."""
    def case(shape, alpha, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            return (torch.randn(shape, generator=g), torch.randn(shape, generator=g), alpha,
                    torch.randn(shape, generator=g))
        return make

    def call(args):
        with torch.no_grad():
            return tensor_answer(fn(*args), args[0], STEP_WHY, "your step")

    mistakes = {
        "noise scaled by sqrt(alpha) instead of sqrt(2 alpha)": lambda x, s, a, z: x + a * s + math.sqrt(a) * z,
        "noise scaled by 2 alpha (or alpha) instead of its square root, sqrt(2 alpha)": [
            lambda x, s, a, z: x + a * s + 2 * a * z, lambda x, s, a, z: x + a * s + a * z],
        "wrong sign of the noise term": lambda x, s, a, z: x + a * s - math.sqrt(2 * a) * z,
        "the noise term is missing: without sqrt(2 alpha) z the chain climbs to a mode instead of sampling":
            lambda x, s, a, z: x + a * s,
        "half a step on the score, alpha/2 s, with the course's noise sqrt(2 alpha) z: eq. 3 halves its step because "
        "its eps is 2 alpha; with the course's alpha the step is alpha s":
            lambda x, s, a, z: x + a / 2 * s + math.sqrt(2 * a) * z,
        "moved against the score (x - alpha s): the score points uphill in log-density":
            lambda x, s, a, z: x - a * s + math.sqrt(2 * a) * z,
    }
    ref = lambda x, s, a, z: x + a * s + math.sqrt(2 * a) * z  # noqa: E731
    return run(Check("langevin_step", "the update is x + alpha * score + sqrt(2 * alpha) * z",
                     [case((4, 2), 0.1, 0), case((2, 3, 8, 8), 1e-3, 1), case((1, 5), 2.5, 2)], call, ref,
                     mistakes, conventions={EQ3: lambda x, s, a, z: x + a / 2 * s + math.sqrt(a) * z}))


# ----- the DSM loss
TOY = "the toy network that section 5 trains with your loss"
LOSS_WHY = "training calls loss.backward() on it, then loss.item() (section 5 trains the toy network with your loss)"


class ToyScore(torch.nn.Module):
    """A linear score s(x, sigma) = -(x W) / sigma^2 + b with parameters, as strict as the toy MLP: x (B, D)
    float32, sigma (B,) of x's dtype (the MLP concatenates log sigma as a column)."""

    def __init__(self, d: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(d, d, generator=g) * 0.3)
        self.b = torch.nn.Parameter(torch.full((d,), 0.1))

    def forward(self, x, sigma):
        check_score_call(x, sigma, TOY)
        return -(x @ self.w) / sigma[:, None] ** 2 + self.b


def loss_answer(loss, net: torch.nn.Module) -> torch.Tensor:
    """The loss's value once training can use it: a 0-dim tensor whose backward() reaches every parameter of
    ``net`` (the checker runs that backward); else a BadAnswer saying what training needs."""
    if not torch.is_tensor(loss):
        if isinstance(loss, (float, int)) and not isinstance(loss, bool):
            raise BadAnswer(f"your loss is a {type(loss).__name__} ({loss:.6g}): {LOSS_WHY}, so return the tensor "
                            "itself (no .item() or float())")
        raise BadAnswer(f"your function returned {describe(loss)}; expected the loss, a tensor of shape (): "
                        f"{LOSS_WHY}")
    if loss.ndim != 0:
        raise BadAnswer(f"your function returned a tensor of shape {tuple(loss.shape)}; expected the loss, one "
                        f"number (a tensor of shape ()): {LOSS_WHY}; take the mean over the batch")
    if not loss.is_floating_point():
        raise BadAnswer(f"your loss is a {str(loss.dtype)[6:]} tensor: {LOSS_WHY}, which needs float numbers")
    if not bool(torch.isfinite(loss.detach())):
        raise BadAnswer(f"your function returned {float(loss.detach())}; expected finite numbers")
    if loss.grad_fn is None and loss.requires_grad:
        raise BadAnswer(f"your loss is a tensor made anew (torch.tensor(...) or requires_grad_()), so its gradient "
                        f"does not reach the network's parameters: {LOSS_WHY}; return the loss computed from "
                        "score_fn(x + sigma z, sigma) itself")
    if loss.grad_fn is None:
        raise BadAnswer(f"your loss has no gradient (computed under torch.no_grad(), or detached): {LOSS_WHY}; "
                        "compute it with gradients on and return it as it is (no .detach(), .item() or torch.tensor())")
    net.zero_grad(set_to_none=True)
    try:
        loss.backward()
    except Exception as exc:  # noqa: BLE001
        raise BadAnswer(f"loss.backward() on your loss failed ({exc.__class__.__name__}: {exc}): {LOSS_WHY}") from None
    if any(p.grad is None for p in net.parameters()):
        raise BadAnswer(f"your loss's gradient does not reach the network's parameters: {LOSS_WHY}, so the loss must "
                        "be computed from score_fn(x + sigma z, sigma) (no .detach() on the score)")
    return loss.detach().to("cpu", torch.float64)


def _dsm_draws(score_fn, x, levels, g, sigma_first=True, sigma_from_gen=True, z_from_gen=True, per_batch=False,
               clean=False):
    """(sigma (B, 1), z, score) drawn as a learner may draw them: levels or z first, each from the generator or
    from torch's global one (torch.randn_like has no generator), one level per example or (a mistake) one per
    batch; the score at x~ = x + sigma z (or, a mistake, at the clean x)."""
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
    return s[:, None], z, score_fn(x if clean else x + s[:, None] * z, s)


def _draw_label(sf: bool, sg: bool, zg: bool) -> str:
    """How a learner drew the levels and z. When the two come from different generators their order does not
    change the numbers, so the label names no order then (a z-first answer is not called "levels first")."""
    sources = (f"levels from {'the generator' if sg else 'the global RNG'}, z from "
               f"{'the generator' if zg else 'the global RNG (randn_like)'}")
    if sg != zg:
        return f"{sources} (in either order: they come from different generators)"
    return f"{'levels' if sf else 'z'} first, {sources}"


# one entry per distinct way of drawing: with the levels and z from different generators, the order is moot
DRAW_ORDERS = {_draw_label(sf, sg, zg): dict(sigma_first=sf, sigma_from_gen=sg, z_from_gen=zg)
               for sf in (True, False) for sg in (True, False) for zg in (True, False) if sf or sg == zg}


@checker("dsm_loss", "(score_fn, x, levels, generator) -> the loss, a tensor of shape () with a gradient")
def check_dsm_loss(fn) -> object:
    """Exercise (notebook 01): ``fn(score_fn, x, levels, generator) -> loss``, the sigma^2-weighted DSM loss,
    called as section 5's training calls it: score_fn a network with parameters that takes sigma of shape (B,),
    then one ``loss.backward()``.

    Any way of drawing the levels and z is accepted: levels or z first, from ``generator`` or from torch's
    global generator (``torch.randn_like``). The checker replays each on the same random state, so a
    correct loss matches one of them exactly; the global state is restored afterwards.
    """
    def case(b, d, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(b, d, generator=g)
            torch.manual_seed(10_000 + seed)  # the same global state for the learner and every replay
            return ToyScore(d, seed), x, torch.tensor([3.0, 1.0, 0.2]), torch.Generator().manual_seed(seed + 1)
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
        return lambda score_fn, x, levels, g: formula(*_dsm_draws(score_fn, x, levels, g, **how)).detach()

    accepted = {label: drawn(correct, **how) for label, how in DRAW_ORDERS.items()}
    mistakes = {label: [drawn(f, **how) for how in DRAW_ORDERS.values()] for label, f in formulas.items()}
    mistakes["one sigma per batch: draw one level per example, torch.randint(0, L, (B,)), so every level is "
             "trained in every batch"] = [drawn(correct, per_batch=True, **how) for how in DRAW_ORDERS.values()]
    mistakes["the score taken at the clean x: the network sees the perturbed x~ = x + sigma z"] = [
        drawn(correct, clean=True, **how) for how in DRAW_ORDERS.values()]

    def call(args):
        return loss_answer(fn(*args), args[0])

    ref = lambda score_fn, x, levels, g: losses.dsm_loss(score_fn, x, levels, generator=g).detach()  # noqa: E731
    with torch.random.fork_rng(devices=[]):
        return run(Check("dsm_loss", "write the residual sigma * s(x~, sigma) + z and average 1/2 of its squared norm",
                         [case(5, 2, 0), case(16, 3, 1), case(1, 4, 2)], call, ref, mistakes, accepted=accepted))
