"""Reading a training run: its legs, the images it has seen, Adam's step sizes and the EMA's memory.

Notebook 04 explains the shipped run's loss curve with these: the run was trained in legs, each a new
process whose Adam moments start again from zero (a short burst of large steps, visible as a spike),
and whose batch size may differ (a larger batch averages the loss over more images, so the curve gets
quieter and shifts). Numbers with an interval use :func:`mean_2se` (a mean +- 2 standard errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .checks import check_number, check_positive_int
from .intervals import mean_se


@dataclass(frozen=True)
class Leg:
    """One training process of a run: steps ``start`` -> ``end`` (exclusive of ``start``) at ``batch`` images."""

    start: int
    end: int
    batch: int


# The shipped model's legs, as recorded in checkpoints/README.md (the training logs of each leg are in
# benchmarks/logs/h100-leg*.txt): every leg restarted Adam's moments.
SHIPPED_LEGS = (Leg(0, 3_675, 128), Leg(3_675, 5_875, 128), Leg(5_875, 11_475, 512), Leg(11_475, 14_275, 512))


def check_legs(legs: Sequence[Leg], steps: int | None = None) -> tuple[Leg, ...]:
    """The legs in order, each starting where the last ended, from step 0 (and ending at ``steps`` if given)."""
    legs = tuple(legs)
    if not legs:
        raise ValueError("check_legs: give at least one Leg(start, end, batch).")
    at = 0
    for leg in legs:
        if leg.start != at or leg.end <= leg.start:
            raise ValueError(f"check_legs: legs must follow each other from step 0 without gaps, got {leg} after "
                             f"step {at}: use Leg({at}, end > {at}, batch).")
        check_positive_int(leg.batch, f"check_legs: the batch size of {leg}")
        at = leg.end
    if steps is not None and at != steps:
        raise ValueError(f"check_legs: the legs end at step {at} but the loss history has {steps} steps: give the "
                         "legs of this very run.")
    return legs


def images_seen(legs: Sequence[Leg]) -> torch.Tensor:
    """Images seen after each step 1..end of the last leg (float64): the x axis that compares legs of other batches."""
    legs = check_legs(legs)
    per_step = torch.cat([torch.full((leg.end - leg.start,), float(leg.batch), dtype=torch.float64) for leg in legs])
    return per_step.cumsum(0)


def mean_2se(values) -> tuple[float, float]:
    """(mean, 2 standard errors) of ``values`` (at least 2): an estimate and its approximate 95% half-width.
    :func:`pegasus_course.intervals.mean_se` with z = 2, under the name the notebooks use."""
    return mean_se(values, z=2.0, where="mean_2se")


def around_boundaries(losses, legs: Sequence[Leg], width: int = 100) -> list[dict]:
    """For each boundary between legs: the mean loss (+- 2 SE) of the ``width`` steps before it and of the first
    ``width`` steps after it, and the largest single loss on each side (a spike stands out from the before's)."""
    v = torch.as_tensor(list(losses), dtype=torch.float64)
    legs = check_legs(legs, steps=len(v))
    width = check_positive_int(width, "around_boundaries: width (steps on each side)", minimum=2)
    out = []
    for leg in legs[1:]:
        b = leg.start
        before, after = v[max(0, b - width):b], v[b:b + width]
        out.append({"step": b, "batch_before": next(x.batch for x in legs if x.end == b), "batch_after": leg.batch,
                    "before": mean_2se(before), "after": mean_2se(after), "max_before": float(before.max()),
                    "max_after": float(after.max())})
    return out


def adam_last_update(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """|change| of every parameter at Adam's last step (flattened, float32), rebuilt from its moments.

    torch's Adam (no weight decay, no amsgrad) moves a parameter by lr * m_hat / (sqrt(v_hat) + eps), with
    m_hat = m / (1 - beta1^t) and v_hat = v / (1 - beta2^t), from the moments m, v it stores after the
    step. The ratio m_hat / sqrt(v_hat) is at most about 1 whatever the gradient's scale, so a step moves
    each parameter by about lr or less: the learning rate is a step length per parameter.
    """
    opt = getattr(optimizer, "optimizer", optimizer)  # training.train may wrap it (a gradient scaler)
    sizes = []
    for group in opt.param_groups:
        beta1, beta2 = group["betas"]
        if group.get("weight_decay", 0) or group.get("amsgrad", False):
            raise ValueError("adam_last_update: only plain Adam (no weight decay, no amsgrad) is rebuilt here.")
        for p in group["params"]:
            state = opt.state.get(p, {})
            if "exp_avg" not in state:
                continue
            t = float(state["step"])
            m_hat = state["exp_avg"].float() / (1 - beta1 ** t)
            v_hat = state["exp_avg_sq"].float() / (1 - beta2 ** t)
            sizes.append((group["lr"] * m_hat / (v_hat.sqrt() + group["eps"])).abs().flatten().cpu())
    if not sizes:
        raise ValueError("adam_last_update: the optimizer has taken no step yet: train first.")
    return torch.cat(sizes)


def ema_start_weight(decay: float, steps: int) -> float:
    """Weight the EMA still gives its starting weights after ``steps`` updates: decay ** steps."""
    decay = check_number(decay, "ema_start_weight: decay", minimum=0.0, maximum=1.0)
    steps = check_positive_int(steps, "ema_start_weight: steps", minimum=0)
    return decay ** steps


def ema_window_weight(decay: float, last: int) -> float:
    """Share of an old EMA's weight held by the ``last`` most recent steps: 1 - decay ** last (0.63 for
    decay 0.999 and the last 1,000: the EMA's memory is about 1 / (1 - decay) steps)."""
    return 1.0 - ema_start_weight(decay, last)
