"""One training loop for the notebooks and the CLI: DSM over the noise schedule, Adam, EMA.

Reproducible by construction: the data order of epoch e comes from a distributed
sampler seeded with (seed, e), and the flips, noise levels and noise of step t from a
generator on the training device seeded with (seed, t, rank). Resuming at step t therefore
continues exactly as an uninterrupted run would, with no generator state to save.

One step is a function, ``step_fn(model, ema, optimizer, x, sigma, z, ema_decay) -> loss``, that gets
the step's batch and draws: :func:`training_step` by default, or a learner's own (notebook 04).

Precision comes from :func:`pegasus_course.device.training_precision` (bf16 on GPUs that have it natively,
fp16 with a gradient scaler on older CUDA GPUs, float32 on the CPU and MPS). Under fp16 the step needs
no change: the scale multiplies the gradient where the network's float32 output meets the loss (the same
gradients as scaling the loss), and the optimizer the step sees unscales them, skips the step when any
overflowed, and updates the scale. Skipped steps are counted, and the scaler's state is checkpointed.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from typing import Callable

import torch
import torch.distributed as dist

from .batches import EpochBatches, check_training_images, make_generator, seed_everything, step_draws, step_seed
from .device import Precision, autocast, make_scaler
from .distributed import setup_distributed, world as _world
from .losses import dsm_loss_given
from .sampling import stop_between_levels
from .train_state import (TrainConfig, TrainState, export_ema, new_state, resume_state, save_train_state,
                          state_tensors, train_precision)

__all__ = ["EpochBatches", "TrainConfig", "TrainState", "TrainingInterrupted", "check_training_images", "ema_update",
           "export_ema", "make_generator", "new_state", "resume_state", "save_train_state", "seed_everything",
           "setup_distributed", "state_tensors", "step_draws", "step_seed", "train", "train_precision",
           "training_step"]


# A logged loss this many times the recent median stops the run: the optimisation has diverged.
EXPLOSION_FACTOR = 1e3
# fp16: this many steps in a row skipped for overflowing gradients (the scale halved each time, 2^-40 of
# where it was) stop the run: every step overflows, so training no longer moves.
MAX_SKIPPED_IN_A_ROW = 40


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during :func:`train`: raised at the end of the step that was running (a
    preview sampling run stops between two noise levels), after a checkpoint of that step was written (when
    the run writes checkpoints). ``saved`` says where; ``signum`` is the signal (exit code 128 + signum)."""

    def __init__(self, step: int, saved: str = "", signum: int = signal.SIGINT):
        super().__init__(f"training interrupted at step {step}")
        self.step, self.saved, self.signum = step, saved, int(signum)


def weights_finite(*modules: torch.nn.Module) -> bool:
    """True when every parameter and buffer of every module is finite (one host sync)."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


@torch.no_grad()
def scores_finite(model: torch.nn.Module, images: torch.Tensor, sigmas: torch.Tensor) -> bool:
    """True when ``model`` gives finite scores for one training image at the largest and smallest level."""
    x = images[:1].float().div(255.0) if images.dtype == torch.uint8 else images[:1].float()
    levels = torch.stack([sigmas.max(), sigmas.min()]).to(x.device, torch.float32)
    was_training = model.training
    model.eval()
    try:
        out = model(x.expand(2, *x.shape[1:]) + levels.view(-1, *([1] * (x.ndim - 1))) * 0.5, levels)
    finally:
        model.train(was_training)
    return bool(torch.isfinite(out).all())


def check_losses(values: list[float], history: list[float], step: int, skipped: list[bool] | None = None) -> None:
    """Raise FloatingPointError for a non-finite loss, or one grown by orders of magnitude (diverged).

    ``skipped`` flags the fp16 steps the gradient scaler skipped: their weights did not move, so a non-finite
    loss there (an fp16 overflow) is not held against the run (:func:`check_skipped` watches those); a finite
    loss grown a thousandfold still is, skipped or not.
    """
    kept = [i for i in range(len(values)) if math.isfinite(values[i]) or not (skipped and skipped[i])]
    bad = [i for i in kept if not math.isfinite(values[i])]
    if bad:
        first = step - len(values) + bad[0] + 1
        raise FloatingPointError(
            f"The loss became {values[bad[0]]} at step {first}: training stopped and no checkpoint was "
            "written. Lower --lr, enable --grad-clip, or resume from the last checkpoint."
        )
    if not kept:
        return
    recent = [v for v in history[-100:] if math.isfinite(v)] or [values[kept[0]]]
    ref = sorted(recent)[len(recent) // 2]
    worst = max(kept, key=lambda i: values[i])
    if ref > 0 and values[worst] > EXPLOSION_FACTOR * ref:
        first = step - len(values) + worst + 1
        raise FloatingPointError(
            f"The loss jumped from about {ref:.4g} to {values[worst]:.4g} at step {first}: the optimisation "
            "diverged, so training stopped and no checkpoint was written. Lower --lr, enable --grad-clip, or "
            "resume from the last checkpoint."
        )


def check_skipped(skipped: list[bool], state: "TrainState") -> None:
    """Count the fp16 steps the scaler skipped (one flag per step, the last ``len(skipped)`` steps up to
    ``state.step``); raise FloatingPointError once MAX_SKIPPED_IN_A_ROW steps in a row were skipped."""
    for i, flag in enumerate(skipped):
        state.skipped_steps += int(flag)
        state.skipped_in_a_row = state.skipped_in_a_row + 1 if flag else 0
        if state.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            last = state.step - len(skipped) + i + 1
            raise FloatingPointError(
                f"The fp16 gradients overflowed at every step from step {last - state.skipped_in_a_row + 1} to "
                f"{last} (the gradient scaler skipped them all): training diverged and stopped, and no checkpoint "
                "was written. Train in float32 (--precision fp32), lower --lr, or resume from the last checkpoint.")


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter (NCSNv2 technique 5)."""
    if not 0 <= decay <= 1:  # outside [0, 1] the "average" runs away from the weights (NaN is refused too)
        raise ValueError(f"ema_update: decay must be in [0, 1] (0.999 is the paper's EMA rate), got {decay!r}.")
    with torch.no_grad():
        e = [p for p in ema.parameters()]
        m = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(e, m, 1.0 - decay)


StepFn = Callable[[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor, torch.Tensor,
                   float], torch.Tensor]


def training_step(model: torch.nn.Module, ema: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                  sigma: torch.Tensor, z: torch.Tensor, ema_decay: float, *, grad_clip: float | None = None
                  ) -> torch.Tensor:
    """One training step: eq. 2's loss on the given draws, backward, an Adam step, the EMA update.

    ``x`` is the (flipped) batch in [0, 1], ``sigma`` (B,) one level per image and ``z`` the noise;
    returns the loss, detached (reading its value is left to the caller: a host sync).
    """
    loss = dsm_loss_given(model, x, sigma, z)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    ema_update(ema, model, ema_decay)
    return loss.detach()


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient times ``scale`` backward (loss scaling for fp16, applied where the
    float32 loss meets the network, so the loss a step computes and returns stays unscaled)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scale,) = ctx.saved_tensors
        return grad * scale.to(grad.dtype), None


class _ScoreModel(torch.nn.Module):
    """The network as the step sees it: channels-last input and autocast where asked, float32 scores, and
    under fp16 the scaler's scale on the gradient. Its parameters are the network's, so an EMA update or
    gradient clipping over them is unchanged."""

    def __init__(self, net: torch.nn.Module, precision: Precision, channels_last: bool, scaler=None):
        super().__init__()
        self.net, self.precision, self.channels_last, self.scaler = net, precision, channels_last, scaler

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device.type, self.precision):
            out = self.net(x, sigma).float()
        if self.scaler is not None and torch.is_grad_enabled():
            out = _ScaleGrad.apply(out, self.scaler.scale(torch.ones((), device=out.device)))
        return out


class _ScaledOptimizer:
    """The optimizer as the step sees it under fp16: ``step()`` unscales the gradients, skips the update when
    any overflowed (torch's GradScaler), clips them if asked and updates the scale; the rest is the optimizer's.
    Each step's "skipped" flag stays on the device until the next host sync (:meth:`take`)."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler, params=(), grad_clip: float | None = None):
        self.optimizer, self.scaler, self.grad_clip = optimizer, scaler, grad_clip
        self.params = list(params)
        device = optimizer.param_groups[0]["params"][0].device
        self._one = torch.ones((), device=device)
        self._skipped: list[torch.Tensor] = []

    def step(self, closure=None):
        if closure is not None:
            raise ValueError("fp16 training takes optimizer.step() without a closure.")
        before = self.scaler.scale(self._one)  # the scale this step's gradients carry, on the device
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._skipped.append(self.scaler.scale(self._one) < before)  # the scale drops exactly on a skip

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def take(self) -> torch.Tensor:
        """Whether the scaler skipped the step just taken (a bool tensor on the device); clears the record."""
        flag = torch.stack(self._skipped).any() if self._skipped else torch.zeros((), dtype=torch.bool,
                                                                                   device=self._one.device)
        self._skipped.clear()
        return flag

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


def train(
    model: torch.nn.Module,
    images: torch.Tensor,
    sigmas: torch.Tensor,
    cfg: TrainConfig,
    *,
    state: TrainState | None = None,
    on_step: Callable[[TrainState], None] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    meta: dict | None = None,
    progress: bool = True,
    step_fn: StepFn | None = None,
) -> TrainState:
    """Train ``model`` with DSM (paper eq. 2) on uint8 ``images`` (N, 3, H, W) until ``cfg.steps``.

    Under ``torchrun`` (an initialised process group) the model is wrapped in
    DistributedDataParallel and each process takes its shard of every epoch; only rank 0
    writes checkpoints and shows progress. ``on_step(state)`` runs on every rank after each
    host sync (every ``cfg.log_every`` steps). A non-finite loss, a loss grown a thousandfold over
    the recent median, or weights that give non-finite scores stop training with a FloatingPointError
    naming the step, and the last checkpoint is kept. Ctrl-C (SIGINT) finishes the running step,
    writes a checkpoint there and raises :class:`TrainingInterrupted`.

    Precision: :func:`train_precision` (``cfg.precision``). Under fp16 the step sees an optimizer whose
    ``step()`` goes through the gradient scaler; steps skipped for overflowing gradients are counted in
    ``state.skipped_steps`` (not held against the loss guard), and MAX_SKIPPED_IN_A_ROW in a row stop the run.

    ``step_fn`` replaces :func:`training_step` (same arguments; it must not clip gradients itself, and
    ``cfg.grad_clip`` applies to the default step only).
    """
    from .sampling import progress_bar

    check_training_images(images)
    device = next(model.parameters()).device
    rank, world = _world()
    state = state or new_state(model, cfg)
    precision = train_precision(cfg, device)
    state.precision = precision.name
    if not precision.needs_scaler:
        state.scaler = None
    elif state.scaler is None:
        state.scaler = make_scaler(device, precision)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                         else None)
    if cfg.compile:
        net = torch.compile(net, mode=None if cfg.compile_mode == "default" else cfg.compile_mode)
    data = images.to(device)
    sigmas = sigmas.to(device)
    batches = EpochBatches(data.shape[0], cfg.batch_size, cfg.seed, rank, world, device=device)
    noise_gen = make_generator(0, device)
    score_model = _ScoreModel(net, precision, channels_last=cfg.channels_last, scaler=state.scaler)
    optimizer = state.optimizer
    if state.scaler is not None:  # the default step's clipping happens between unscaling and the update
        optimizer = _ScaledOptimizer(state.optimizer, state.scaler, model.parameters(),
                                     cfg.grad_clip if step_fn is None else None)
    if step_fn is None:
        clip = cfg.grad_clip if state.scaler is None else None

        def step_fn(m, ema, opt, x, sigma, z, decay):
            return training_step(m, ema, opt, x, sigma, z, decay, grad_clip=clip)

    pending: list[torch.Tensor] = []
    pending_skips: list[torch.Tensor] = []
    start_step, t0 = state.step, time.perf_counter()
    bar = progress_bar(total=cfg.steps, initial=state.step, desc="training", unit="step",
                       progress=progress and rank == 0, dynamic_ncols=True)
    interrupted = threading.Event()

    def save(path) -> None:
        """Write a checkpoint only of weights that give finite scores: a good checkpoint is never replaced."""
        if not (weights_finite(state.model, state.ema) and scores_finite(state.ema, data[:1], sigmas)
                and scores_finite(model, data[:1], sigmas)):
            raise FloatingPointError(
                f"The weights gave non-finite scores at step {state.step}: training stopped and the last checkpoint "
                f"({path}) was kept. Lower --lr, enable --grad-clip, or resume from that checkpoint.")
        save_train_state(state, path, cfg, meta)

    def run_steps() -> bool:
        """Train until cfg.steps, the time limit or Ctrl-C; True when interrupted."""
        while state.step < cfg.steps:
            noise_gen.manual_seed(step_seed(cfg.seed, state.step, rank))
            x, sigma, z = step_draws(data, sigmas, batches(state.step), noise_gen)
            loss = step_fn(score_model, state.ema, optimizer, x, sigma, z, cfg.ema_decay)
            pending.append(torch.as_tensor(loss).detach().reshape(()))
            if state.scaler is not None:
                pending_skips.append(optimizer.take())
            state.step += 1
            # One process alone stops at once; several agree at the next host sync, so they stop at one step.
            stop_now = interrupted.is_set() and world == 1
            at_checkpoint = bool(checkpoint_path) and state.step % cfg.checkpoint_every == 0  # honoured exactly
            if state.step % cfg.log_every == 0 or at_checkpoint or state.step == cfg.steps or stop_now:
                values = torch.stack(pending).float().cpu().tolist()
                skipped = torch.stack(pending_skips).cpu().tolist() if pending_skips else None
                check_losses(values, state.losses, state.step, skipped)
                if skipped is not None:
                    check_skipped(skipped, state)
                state.losses.extend(values)
                pending.clear()
                pending_skips.clear()
                state.seconds = time.perf_counter() - t0
                done = state.step - start_step
                state.images_per_second = done * cfg.batch_size * world / max(state.seconds, 1e-9)
                bar.update(len(values))
                shown = [v for v, s in zip(values, skipped or [False] * len(values)) if not s] or values
                bar.set_postfix(loss=f"{sum(shown) / len(shown):.4g}", img_s=f"{state.images_per_second:.0f}",
                                **({"skipped": state.skipped_steps} if state.scaler is not None else {}))
                if on_step is not None:
                    try:
                        on_step(state)
                    except KeyboardInterrupt as stop:  # a preview's sampling run stopped between two levels
                        if isinstance(stop, TrainingInterrupted) or not interrupted.is_set():
                            raise
                out_of_time = cfg.max_minutes is not None and state.seconds > 60 * cfg.max_minutes
                stop_now = stop_now or (interrupted.is_set() and world == 1)  # Ctrl-C during on_step (previews)
                if world > 1:
                    flags = torch.tensor([float(out_of_time), float(interrupted.is_set())], device=device)
                    dist.all_reduce(flags)
                    out_of_time, stop_now = bool(flags[0].item() > 0), bool(flags[1].item() > 0)
                if stop_now:
                    return True
                if checkpoint_path and rank == 0 and (at_checkpoint or out_of_time):
                    save(checkpoint_path)
                if out_of_time:
                    state.stop_reason = f"time limit of {cfg.max_minutes} minutes reached at step {state.step}"
                    return False
        return False

    stopped_by: list[int] = []

    def on_signal(signum, _frame) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if interrupted.is_set():  # a second signal: stop at once, mid-step (the last checkpoint is kept)
            raise TrainingInterrupted(state.step, "stopped at once by a second signal, so no checkpoint was "
                                      "written for it (an earlier one, if any, is kept)", signum)
        stopped_by.append(signum)
        interrupted.set()
        if rank == 0:  # said at once: the running step may take a while (torch.compile compiles in the first)
            print(f"\n{name}: stopping after the running step, then writing a checkpoint; press Ctrl-C again to "
                  "stop at once without one", file=sys.stderr, flush=True)

    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C or SIGTERM lets the running step finish (a preview stops between two noise levels), so the
        # checkpoint written below is at an exact step boundary.
        previous_handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    model.train()
    try:
        with stop_between_levels(interrupted):
            was_interrupted = run_steps()
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        bar.close()
        model.eval()
    if was_interrupted:
        saved = ""
        if checkpoint_path and rank == 0:
            save(checkpoint_path)
            saved = f"wrote {checkpoint_path}"
        raise TrainingInterrupted(state.step, saved, stopped_by[0] if stopped_by else signal.SIGINT)
    if checkpoint_path and rank == 0 and not state.stop_reason:
        save(checkpoint_path)
    return state
