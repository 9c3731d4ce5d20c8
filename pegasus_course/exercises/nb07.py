"""Notebook 07's exercise: the guided score, s(x, sigma) + w grad_x log p(y | x, sigma).

The next cells call ``guide(score_fn, classifier_fn, x, sigma, y, scale)`` under ``torch.no_grad()``, as a
sampler calls a score function: x float32 (B, 2) or (B, 3, 32, 32) on the notebook's device, sigma a tensor
(B,), y one class index per image (a long tensor on x's device), scale a Python float. What it returns is
added to x by the sampler's next step: a tensor of x's shape and dtype, on x's device.
"""

from __future__ import annotations

import torch

from .core import Check, checker, run, tensor_answer
from .scores import check_score_call, notebook_device

WHY = "the sampler adds it to x in its next step, x + alpha * score + sqrt(2 alpha) z"
CLASSIFIER = "the noisy classifier that the guided cells pass as classifier_fn"


class ToyLinearClassifier(torch.nn.Module):
    """Three-class logits, linear in x and damped by the noise level: (x W + b) / (1 + sigma^2); as strict as
    the noisy classifier about sigma."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(2, 3, generator=g), requires_grad=False)
        self.b = torch.nn.Parameter(torch.randn(3, generator=g), requires_grad=False)

    def forward(self, x, sigma):
        check_score_call(x, sigma, CLASSIFIER)
        return (x @ self.w + self.b) / (1 + sigma[:, None] ** 2)


def classifier_grad(clf, x, sigma, y, what: str, axis: int = -1):
    """grad_x of a class's log-probability ("log"), probability ("prob") or logit ("logit"), summed over the
    batch; ``axis`` is the axis of the softmax (-1, the classes, is right)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = clf(xg, sigma)
        pick = torch.arange(x.shape[0], device=x.device)
        value = {"log": logits.log_softmax(axis)[pick, y], "prob": logits.softmax(axis)[pick, y],
                 "logit": logits[pick, y]}[what]
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return grad


def _mixture_score():
    from ..toy import GaussianMixture

    gm = GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-3.0, 0.0], [3.0, 1.0]]), torch.tensor([1.0, 0.5]))

    def score(x, sigma):
        check_score_call(x, sigma, "the score network that the guided cells pass as score_fn")
        return gm.score(x.cpu(), sigma.cpu()).to(x.device)
    return score


@checker("guided_score", "(score_fn, classifier_fn, x, sigma, y, scale) -> a score of x's shape and dtype")
def check_guided_score(fn) -> object:
    """Exercise (notebook 07): ``fn(score_fn, classifier_fn, x, sigma, y, scale)`` -> the guided score
    ``score_fn(x, sigma) + scale * grad_x log p(y | x, sigma)``, p the softmax of ``classifier_fn(x, sigma)``.

    ``fn`` is called under ``torch.no_grad()``, as a sampler calls a score function, so it must turn gradients
    back on itself (``with torch.enable_grad():``) to differentiate the classifier."""
    from ..classifier import class_log_prob_grad

    def case(batch, scale, seed, device=torch.device("cpu")):
        def make():
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(batch, 2, generator=g) * 3
            sigma = torch.rand(batch, generator=g) * 2 + 0.1
            y = torch.randint(0, 3, (batch,), generator=g)
            return (_mixture_score(), ToyLinearClassifier(seed).to(device), x.to(device), sigma.to(device),
                    y.to(device), scale)
        return make

    def reference(score_fn, clf, x, sigma, y, scale):
        weights = torch.nn.functional.one_hot(y, 3).float()
        return score_fn(x, sigma) + scale * class_log_prob_grad(clf, x, sigma, weights)

    G = classifier_grad
    mistakes = {
        "the guidance scale is missing (or applied to the score instead of the gradient)": [
            lambda f, c, x, s, y, w: f(x, s) + G(c, x, s, y, "log"),
            lambda f, c, x, s, y, w: w * f(x, s) + G(c, x, s, y, "log")],
        "gradient of p(y | x) instead of log p(y | x): Bayes' rule adds log-probabilities":
            lambda f, c, x, s, y, w: f(x, s) + w * G(c, x, s, y, "prob"),
        "gradient of the raw logit: the softmax normaliser's gradient is missing (use log_softmax)":
            lambda f, c, x, s, y, w: f(x, s) + w * G(c, x, s, y, "logit"),
        "sign flipped: guidance climbs log p(y | x), it adds the gradient":
            lambda f, c, x, s, y, w: f(x, s) - w * G(c, x, s, y, "log"),
        "a .mean() over the batch before autograd.grad divides every image's gradient by the batch size: take .sum() "
        "(each image's log-probability depends on its own x only)":
            lambda f, c, x, s, y, w: f(x, s) + w * G(c, x, s, y, "log") / x.shape[0],
        "log_softmax over the batch axis (dim 0): p(y | x) normalises over the classes, log_softmax(-1)":
            [lambda f, c, x, s, y, w: f(x, s) + w * G(c, x, s, y, "log", axis=0),
             lambda f, c, x, s, y, w: f(x, s) + w * G(c, x, s, y, "prob", axis=0)],
        "the score is left out: the guided score is score_fn(x, sigma) plus the scaled gradient, not the gradient "
        "alone": [lambda f, c, x, s, y, w: w * G(c, x, s, y, "log"), lambda f, c, x, s, y, w: G(c, x, s, y, "log")],
    }

    def call(args):
        with torch.no_grad():  # as a sampler calls a score function
            return tensor_answer(fn(*args), args[2], WHY, "your guided score")

    def explain_error(exc: Exception) -> str | None:
        if isinstance(exc, RuntimeError) and "grad" in str(exc):
            return ("samplers call a score function under torch.no_grad(), and so does this checker: compute the "
                    "gradient inside `with torch.enable_grad():`, on xg = x.detach().requires_grad_(True)")
        return None

    cases = [case(6, 3.0, 0), case(1, 0.5, 1), case(9, 10.0, 2)]
    device = notebook_device()
    if device is not None:  # the guided cells run on the notebook's device
        cases.append(case(5, 2.0, 3, device))
    return run(Check("guided_score", "differentiate log_softmax(logits)[b, y_b] with respect to x, scale it, add it",
                     cases, call, reference, mistakes, explain_error=explain_error,
                     unchanged={2: "x is the sampler's state: its next step reads it again"}))
