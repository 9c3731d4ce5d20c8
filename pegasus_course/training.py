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

import copy
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from .checkpoints import Checkpoint, CheckpointError, check_config, load_checkpoint, load_weights, save_checkpoint
from .device import Precision, autocast, make_scaler, training_precision
from .losses import dsm_loss_given
from .sampling import stop_between_levels


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (a CUDA tensor needs a CUDA generator) seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch's global generators (for notebooks) and return a CPU generator."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return make_generator(seed)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the paper's: Adam, lr 1e-4, standard betas, EMA 0.999)."""

    steps: int
    batch_size: int = 128
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    ema_decay: float = 0.999
    grad_clip: float | None = None
    seed: int = 0
    bf16: bool = True  # the older switch: False trains in float32 unless ``precision`` names another
    precision: str = "auto"  # auto | bf16 | fp16 | fp32; auto: device.training_precision's choice
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode; "reduce-overhead" replays CUDA graphs
    channels_last: bool = False
    log_every: int = 25  # steps between host syncs (loss check, progress bar, time limit)
    checkpoint_every: int = 2_000  # exact: the loop also syncs at every multiple of it
    max_minutes: float | None = None

    def __post_init__(self):
        _check_train_config(self)


@dataclass
class TrainState:
    """Everything the loop carries from step to step."""

    model: torch.nn.Module
    ema: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: int = 0
    losses: list[float] = field(default_factory=list)
    images_per_second: float = 0.0
    seconds: float = 0.0
    stop_reason: str = ""
    precision: str = "fp32"  # what the steps ran in: bf16, fp16 or fp32
    scaler: object | None = None  # the gradient scaler of fp16 training (torch.amp.GradScaler)
    skipped_steps: int = 0  # fp16 steps the scaler skipped because a gradient overflowed
    skipped_in_a_row: int = 0


def train_precision(cfg: TrainConfig, device: torch.device | str) -> Precision:
    """The precision ``cfg`` trains in on ``device`` (``bf16=False`` alone means float32)."""
    asked = cfg.precision if (cfg.bf16 or cfg.precision != "auto") else "fp32"
    return training_precision(device, asked)


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


def _check_train_config(cfg: "TrainConfig") -> None:
    """One clear line for a TrainConfig that cannot train: sizes of at least 1, rates in range."""
    from .checks import MAX_SEED, check_positive_int

    for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
        check_positive_int(getattr(cfg, name), f"TrainConfig.{name}")
    check_positive_int(cfg.seed, "TrainConfig.seed", minimum=0)
    if cfg.seed > MAX_SEED:
        raise ValueError(f"TrainConfig.seed must be at most 2^63 - 1, got {cfg.seed}.")

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    rules = {"lr": (lambda v: 0 < v <= 1e6, "a positive finite number of at most 1e6 (Adam's steps are about lr in "
                    "size; beyond, its step overflows float32)"), "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
             "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
             "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1) (0.999 is the paper's EMA rate)")}
    for name, (ok, expected) in rules.items():
        v = getattr(cfg, name)
        if not (number(v) and ok(v)):
            raise ValueError(f"TrainConfig.{name} must be {expected}, got {v!r}.")
    for name in ("grad_clip", "max_minutes"):
        v = getattr(cfg, name)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  and v > 0):
            raise ValueError(f"TrainConfig.{name} must be None (off) or a positive finite number, got {v!r}.")


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


def step_draws(data: torch.Tensor, sigmas: torch.Tensor, idx: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch and draws of one step, made on the data's device from ``generator`` (seeded by the caller
    for the step): flips, then one noise level per image, then z. Returns (x in [0, 1], sigma (B,), z)."""
    device = data.device
    flips = torch.rand(idx.numel(), generator=generator, device=device) < 0.5
    x = data[idx].float().div_(255.0)  # (B, 3, H, W) in [0, 1]
    x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    sigma = sigmas[torch.randint(0, sigmas.numel(), (idx.numel(),), generator=generator, device=device)]
    z = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return x, sigma.to(x.dtype), z


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of step ``step``'s draws on process ``rank``: a function of (seed, step, rank) only."""
    return ((seed * 1_000_003 + step) * 64 + rank) % 2**64  # any int64 seed: a generator takes 64 bits


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


def new_state(model: torch.nn.Module, cfg: TrainConfig) -> TrainState:
    """A fresh state for ``model`` (on its device): Adam, the EMA copy, and a gradient scaler under fp16."""
    device = next(model.parameters()).device
    # The fused kernel does Adam's whole update in a few launches on CUDA; the CPU keeps the default.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                           fused=True if device.type == "cuda" else None)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    precision = train_precision(cfg, device)
    return TrainState(model=model, ema=ema, optimizer=opt, precision=precision.name,
                      scaler=make_scaler(device, precision))


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochBatches:
    """Batch indices for any step: shard ``rank`` of a seeded permutation per epoch (DistributedSampler)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 device: torch.device | str = "cpu"):
        self.sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.steps_per_epoch = len(self.sampler) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n} images cannot fill a batch of {batch_size} per process; lower the batch size.")
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            # one host-to-device copy per epoch, not one per step
            self._epoch, self._order = epoch, torch.tensor(list(iter(self.sampler))).to(self.device)
        return self._order[k * self.batch_size:(k + 1) * self.batch_size]


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
                    except KeyboardInterrupt:  # a preview's sampling run stopped between two levels
                        if not interrupted.is_set():
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
        stopped_by.append(signum)
        interrupted.set()

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


def check_training_images(images: torch.Tensor) -> None:
    """What :func:`train` takes: uint8 images (N, C, H, W) in 0-255, as ``data.load_dataset`` gives them
    (``ds.images``). Float images are refused with the conversion, since the loop divides by 255 itself."""
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"train: expected a non-empty uint8 batch of images (N, 3, H, W), got {shape}.")
    if images.dtype != torch.uint8:
        raise TypeError(f"train: expected uint8 images in 0-255 (the dataset's ds.images), got {images.dtype}: the "
                        "loop divides by 255 itself. Convert [0, 1] floats with (x * 255).round().to(torch.uint8), "
                        "0-255 floats with x.round().clamp(0, 255).to(torch.uint8).")


def state_tensors(state: TrainState) -> dict[str, torch.Tensor]:
    """All tensors of a training state, named by prefix (model, ema, optim, history; scaler under fp16)."""
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in state.ema.state_dict().items()})
    for i, s in state.optimizer.state_dict()["state"].items():
        for k, v in s.items():
            tensors[f"optim.{i}.{k}"] = torch.as_tensor(v)
    tensors["history.loss"] = torch.tensor(state.losses, dtype=torch.float32)
    if state.scaler is not None and state.scaler.state_dict():
        sd = state.scaler.state_dict()
        tensors["scaler.scale"] = torch.tensor(float(sd["scale"]), dtype=torch.float64)
        tensors["scaler.growth_tracker"] = torch.tensor(int(sd["_growth_tracker"]), dtype=torch.int64)
        tensors["scaler.skipped_in_a_row"] = torch.tensor(state.skipped_in_a_row, dtype=torch.int64)
    if state.skipped_steps:
        tensors["scaler.skipped_steps"] = torch.tensor(state.skipped_steps, dtype=torch.int64)
    return tensors


def save_train_state(state: TrainState, path: str | os.PathLike, cfg: TrainConfig, meta: dict | None = None,
                     max_shard_bytes: int | None = None) -> list[Path]:
    """Write a resumable checkpoint (atomically) with the model configuration and training settings."""
    info = dict(meta or {})
    info.update(step=state.step, seed=cfg.seed, train_config=asdict(cfg))
    if hasattr(state.model, "config"):
        info["model_config"] = state.model.config.to_dict()
    return save_checkpoint(state_tensors(state), info, path, max_shard_bytes=max_shard_bytes)


def resume_state(path: str | os.PathLike | Checkpoint, model: torch.nn.Module, cfg: TrainConfig) -> TrainState:
    """Load a checkpoint (a path, or one already read) into ``model`` and return the state to continue from.

    A checkpoint without optimizer moments (an exported one) restarts Adam's moments. Under fp16 the
    gradient scaler continues from the checkpoint's scale and growth count (a fresh one after a leg in
    another precision), so an fp16 run resumes as it would have continued.
    Raises CheckpointError when the checkpoint was written for another model configuration.
    """
    ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path)
    if hasattr(model, "config") and "model_config" in ckpt.meta:
        check_config(model.config.to_dict(), ckpt.model_config, ckpt.path)
    load_weights(model, ckpt.part("model") or ckpt.part("ema"), ckpt.path)
    state = new_state(model, cfg)
    load_weights(state.ema, ckpt.part("ema") or ckpt.part("model"), ckpt.path)
    optim = ckpt.part("optim")
    if optim:
        sd = state.optimizer.state_dict()
        per_param: dict[int, dict] = {}
        for key, v in optim.items():
            i, name = key.split(".", 1)
            per_param.setdefault(int(i), {})[name] = v.to(next(model.parameters()).device) if name != "step" else v
        if len(per_param) != len(sd["param_groups"][0]["params"]):
            raise CheckpointError(f"{ckpt.path}: optimizer state does not match the model's parameters.")
        sd["state"] = per_param
        state.optimizer.load_state_dict(sd)
    state.step = ckpt.step
    state.losses = ckpt.losses
    scaler_part = ckpt.part("scaler")
    state.skipped_steps = int(scaler_part.get("skipped_steps", torch.tensor(0)))
    if state.scaler is not None and "scale" in scaler_part:
        sd = state.scaler.state_dict()
        sd.update(scale=float(scaler_part["scale"]), _growth_tracker=int(scaler_part["growth_tracker"]))
        state.scaler.load_state_dict(sd)
        state.skipped_in_a_row = int(scaler_part.get("skipped_in_a_row", torch.tensor(0)))
    return state


def export_ema(path_in: str | os.PathLike, path_out: str | os.PathLike, dtype: torch.dtype = torch.float16,
               extra_meta: dict | None = None, weights: str = "ema") -> Path:
    """Keep only one set of weights of a checkpoint, in ``dtype``, with its loss history (for shipping).

    ``weights="ema"`` (the default) keeps the EMA weights that sampling uses; ``"live"`` keeps the optimised
    weights as ``model.*`` (notebook 07 compares the two). No optimizer state is kept.
    """
    if weights not in ("ema", "live"):
        raise ValueError(f"weights must be 'ema' or 'live', got {weights!r}.")
    ckpt = load_checkpoint(path_in)
    prefix = "ema" if weights == "ema" else "model"
    part = ckpt.part(prefix)
    if not part:
        raise CheckpointError(f"{ckpt.path} holds no {prefix}.* weights to export (an exported file keeps only one "
                              "set: export from the training checkpoint or its resume shards).")
    tensors = {f"{prefix}.{k}": v.to(dtype) if v.is_floating_point() else v for k, v in part.items()}
    tensors["history.loss"] = ckpt.tensors.get("history.loss", torch.zeros(0))
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version")}
    meta.update(extra_meta or {})
    save_checkpoint(tensors, meta, path_out)
    return Path(path_out)


def setup_distributed(device: str | torch.device | None = None) -> tuple[int, int, torch.device]:
    """Initialise the process group under ``torchrun`` (NCCL on GPUs, gloo on CPU).

    Returns (rank, world_size, device); without torchrun's variables, (0, 1, ``device`` or the best one:
    :func:`pegasus_course.device.choose_device`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1 and not dist.is_initialized():
        from .device import choose_device

        return 0, 1, choose_device(device)
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")
