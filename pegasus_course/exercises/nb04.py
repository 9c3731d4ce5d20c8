"""Notebook 04's exercise: one whole training step.

Section 3's live run hands the learner's step to ``training.train`` as ``step_fn``: the loop calls it with the
network in the loop's thin wrapper, the EMA copy, the optimizer, the batch and its draws, and keeps what it
returns as the step's loss, ``torch.as_tensor(loss).reshape(())``. The checker runs exactly that loop.
"""

from __future__ import annotations

import torch

from .. import sigmas as sig
from .core import BadAnswer, Check, checker, close, describe, first_mismatch, run

LOSS_WHY = "training.train keeps each step's loss as one number, torch.as_tensor(loss).reshape(()), to log and guard it"


class TinyScoreNet(torch.nn.Module):
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


def fingerprint(step_fn, seed: int, steps: int = 3, decay: float = 0.8) -> torch.Tensor:
    """Run :func:`training.train` for a few steps with ``step_fn`` (None: the package's step) and return
    [losses, weights after the last step, EMA weights] as one vector."""
    from ..training import TrainConfig, train

    g = torch.Generator().manual_seed(1000 + seed)
    images = torch.randint(0, 256, (12, 3, 8, 8), generator=g, dtype=torch.uint8)
    model = TinyScoreNet(seed)
    cfg = TrainConfig(steps=steps, batch_size=4, lr=1e-2, ema_decay=decay, seed=seed, log_every=1, bf16=False)
    state = train(model, images, sig.geometric_sigmas(5.0, 0.1, 6), cfg, progress=False, step_fn=step_fn)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    return torch.cat([torch.tensor(state.losses), flat(state.model), flat(state.ema)])


class _StepRaised(Exception):
    """The learner's training step raised inside :func:`training.train`; ``exc`` is what it raised."""

    def __init__(self, exc: Exception):
        super().__init__(str(exc))
        self.exc = exc


def check_loss(loss) -> None:
    """The loss a training step returns must be one number (a tensor of shape () or (1,), or a float): what
    training.train can keep; else a BadAnswer that says what the loop needs."""
    if loss is None:
        raise BadAnswer(f"your step returned None (did you forget `return loss`?); expected the loss, one number: "
                        f"{LOSS_WHY}")
    if isinstance(loss, (str, bytes, list, tuple, dict)):
        raise BadAnswer(f"your step returned {describe(loss)}; expected the loss, one number: {LOSS_WHY}")
    try:
        t = torch.as_tensor(loss)
    except Exception:  # noqa: BLE001
        raise BadAnswer(f"your step returned {describe(loss)}; expected the loss, one number: {LOSS_WHY}") from None
    if t.numel() != 1:
        raise BadAnswer(f"your step returned {describe(loss)}; expected the loss, one number (the "
                        f"mean over the batch): {LOSS_WHY}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise BadAnswer(f"your step returned a loss of {float(t)}; expected the loss, a finite number: {LOSS_WHY}")


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
        check_loss(loss)
        return loss
    return step


def learner_fingerprint(fn, seed: int) -> torch.Tensor:
    """:func:`fingerprint` of the learner's step: what the step raised is re-raised as its own; the loop
    stopping on the step's results (a non-finite or exploding loss) becomes a verdict."""
    try:
        return fingerprint(_watched(fn), seed)
    except _StepRaised as raised:
        raise raised.exc from None
    except (BadAnswer, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise BadAnswer(f"training with your step stopped: {exc.__class__.__name__}: {exc}") from None


def explain_step_error(exc: Exception) -> str | None:
    if isinstance(exc, KeyError):
        return ("`model` is the network as training.train hands it to the step: a thin wrapper (channels-last input "
                "and mixed precision where asked) whose parameters are the network's, in the same order as ema's, but "
                "whose state_dict() keys start with 'net.'; update the EMA over the parameters, "
                "zip(ema.parameters(), model.parameters())")
    return None


def explain_fingerprint(steps: int, n_weights: int):
    def explain(got, want):
        parts = [("the loss", slice(0, steps)), ("the weights after the Adam steps", slice(steps, steps + n_weights)),
                 ("the EMA weights", slice(steps + n_weights, None))]
        for name, sl in parts:
            if not close(got[sl], want[sl]):
                if name == "the loss":
                    (i,) = first_mismatch(got[sl], want[sl])
                    return (f"{name} differs (step {i + 1}: got {float(got[i]):.5g}, expected {float(want[i]):.5g}); "
                            "the other parts follow from it")
                return f"the losses match, {name} differ"
        return "a small difference"
    return explain


def mistake_step(kind: str):
    """A learner-style training step with one named mistake planted (for the checker's diagnosis); ``"none"``
    plants none."""
    def step(model, ema, optimizer, x, sigma, z, decay):
        s = sigma.view(-1, 1, 1, 1)
        seen = x if kind == "clean x" else x + s * z
        residual = s * model(seen, sigma) + (-z if kind == "sign" else z)
        if kind == "unweighted":
            residual = model(seen, sigma) + z / s
        per = (1.0 if kind == "no half" else 0.5) * residual.pow(2).flatten(1)
        if kind == "mean over dims":
            loss = per.mean(1).mean()
        else:
            loss = per.sum(1).sum() if kind == "sum over batch" else per.sum(1).mean()
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
                elif kind not in ("no ema", "ema first"):
                    e.mul_(decay).add_(p, alpha=1 - decay)
        return loss.detach()
    return step


MISTAKES = {  # kind planted by mistake_step -> what the verdict says
    "no zero_grad": "the gradients are never zeroed (optimizer.zero_grad()), so each step adds the previous steps' "
                    "gradients",
    "mean over dims": "a mean over the pixels as well (F.mse_loss or .mean()): eq. 2 sums over the dimensions and "
                      "averages over the batch",
    "sum over batch": "the loss summed over the batch: eq. 2 averages over the batch (.mean() after summing each "
                      "image's squares)",
    "no half": "missing the factor 1/2 of eq. 2",
    "sign": "wrong sign: the target score is -z / sigma, so the residual is sigma * s(x~, sigma) + z",
    "clean x": "the model evaluated on the clean x: it must see the perturbed x~ = x + sigma z",
    "unweighted": "the loss is not weighted by sigma^2: use sigma * score + z (eq. 2 with lambda = sigma^2)",
    "ema swapped": "the EMA weights are swapped: keep ema_decay of the average and take (1 - ema_decay) of the new "
                   "weights",
    "no ema": "the EMA is not updated (step 4)",
    "ema first": "the EMA is updated before the optimizer step, so it averages the previous weights",
}


@checker("training_step", "(model, ema, optimizer, x, sigma, z, ema_decay) -> the loss")
def check_training_step(fn) -> object:
    """Exercise (notebook 04): ``fn(model, ema, optimizer, x, sigma, z, ema_decay) -> loss``, one whole step.

    The checker trains a tiny network for three steps with ``training.train`` twice from the same seed,
    once with the package's step and once with ``fn``, and compares the losses, the weights and the EMA.
    ``model`` is what ``training.train`` gives a step: the network in a thin wrapper (channels-last input,
    mixed precision where asked) whose ``parameters()`` are the network's, in ``ema.parameters()``'s order;
    its ``state_dict()`` keys carry a ``net.`` prefix, so an EMA is written over the parameters.
    """
    n_weights = sum(p.numel() for p in TinyScoreNet(0).parameters())
    mistakes = {label: (lambda s, kind=kind: fingerprint(mistake_step(kind), s)) for kind, label in MISTAKES.items()}
    return run(Check("training_step", "loss (eq. 2) -> zero_grad, backward, optimizer.step() -> EMA of the new weights",
                     [lambda: (0,), lambda: (1,)], lambda args: learner_fingerprint(fn, *args),
                     lambda s: fingerprint(None, s), mistakes, explain=explain_fingerprint(3, n_weights),
                     explain_error=explain_step_error))
