"""Score functions for the checkers that are as strict as the course's networks.

The notebooks pass the learner's samplers and losses real networks: the U-Net refuses a Python float for
sigma, the toy MLP needs sigma of shape (B,). A checker that handed them a lenient score would pass an
answer that the next cell then crashes on, so the checkers' scores refuse what the networks refuse, with a
message that says which network the next cell passes and what it takes.
"""

from __future__ import annotations

from typing import Callable

import torch

from .core import BadAnswer, describe


def check_score_call(x, sigma, who: str, dtype: torch.dtype = torch.float32) -> None:
    """Refuse a call ``score_fn(x, sigma)`` that ``who`` (the network the next cells pass) would refuse: x a
    tensor of ``dtype``, sigma a tensor of shape (B,) of x's dtype on x's device."""
    if not torch.is_tensor(x):
        raise BadAnswer(f"your function called score_fn(x, sigma) with x {describe(x)}: {who} takes x as a tensor")
    b = x.shape[0] if x.ndim else 1
    fix = f"torch.full(({b},), sigma_i, dtype=x.dtype, device=x.device)"
    if x.dtype != dtype:
        raise BadAnswer(f"your function called score_fn(x, sigma) with x of dtype {str(x.dtype)[6:]}: {who} works in "
                        f"{str(dtype)[6:]}, the dtype of the x it was given; keep x's dtype")
    if not torch.is_tensor(sigma):
        raise BadAnswer(f"your function called score_fn(x, sigma) with sigma {describe(sigma)}: {who} takes one "
                        f"sigma per sample, a tensor of shape ({b},) of x's dtype on x's device: {fix}")
    if tuple(sigma.shape) != (b,):
        raise BadAnswer(f"your function called score_fn(x, sigma) with sigma of shape {tuple(sigma.shape)}: {who} "
                        f"takes one sigma per sample, shape ({b},): {fix}")
    if sigma.dtype != x.dtype:
        raise BadAnswer(f"your function called score_fn(x, sigma) with sigma of dtype {str(sigma.dtype)[6:]}: {who} "
                        f"takes sigma of x's dtype, {str(x.dtype)[6:]}: {fix}")
    if sigma.device != x.device:
        raise BadAnswer(f"your function called score_fn(x, sigma) with sigma on {sigma.device} and x on {x.device}: "
                        f"{who} takes both on one device: {fix}")


class StrictScore:
    """``score(x, sigma)`` behind :func:`check_score_call`; counts its calls."""

    def __init__(self, score: Callable, who: str):
        self.score, self.who, self.calls = score, who, 0

    def __call__(self, x, sigma):
        check_score_call(x, sigma, self.who)
        self.calls += 1
        return self.score(x, sigma)


def gaussian_score(mu: float) -> Callable:
    """The exact score of N(mu, (1 + sigma^2) I): data N(mu, I) perturbed by noise of scale sigma."""
    def score(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if s.ndim == 1 and s.numel() == x.shape[0]:
            s = s.view(-1, *([1] * (x.ndim - 1)))
        return -(x - mu) / (1 + s**2)
    return score


UNET = "the U-Net that the sampling cells pass as score_fn"


def strict_gaussian_score(mu: float, who: str = UNET) -> StrictScore:
    """:func:`gaussian_score` as strict as ``who``."""
    return StrictScore(gaussian_score(mu), who)


def notebook_device() -> torch.device | None:
    """The accelerator the notebooks run their networks on (CUDA, MPS), or None on a CPU-only machine: the
    checkers of the sampling exercises add a case there, since the next cells pass tensors on it."""
    try:
        from ..device import choose_device

        device = choose_device()
    except Exception:  # noqa: BLE001  an unusable device setting is the notebook's to report, not the checker's
        return None
    return None if device.type == "cpu" else device
