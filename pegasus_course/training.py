"""One training loop for the notebooks and the CLI: DSM over the noise schedule, Adam, EMA.

Reproducible by construction: the data order of epoch e comes from a distributed
sampler seeded with (seed, e), and the flips, noise levels and noise of step t from a
generator on the training device seeded with (seed, t, rank). Resuming at step t therefore
continues exactly as an uninterrupted run would, with no generator state to save.

One step is a function, ``step_fn(model, ema, optimizer, x, sigma, z, ema_decay) -> loss``, that gets
the step's batch and draws: :func:`training_step` by default, or a learner's own (notebook 04).
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
from .losses import dsm_loss_given
from .sampling import progress_disabled


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
    bf16: bool = True  # bf16 autocast, used on CUDA only
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode; "reduce-overhead" replays CUDA graphs
    channels_last: bool = False
    log_every: int = 25  # steps between host syncs (loss check, progress bar, time limit)
    checkpoint_every: int = 2_000
    max_minutes: float | None = None


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


# A logged loss this many times the recent median stops the run: the optimisation has diverged.
EXPLOSION_FACTOR = 1e3


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during :func:`train`: raised at the end of the step that was running, after a
    checkpoint of that step was written (when the run writes checkpoints). ``saved`` says where."""

    def __init__(self, step: int, saved: str = ""):
        super().__init__(f"training interrupted at step {step}")
        self.step, self.saved = step, saved


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


def check_losses(values: list[float], history: list[float], step: int) -> None:
    """Raise FloatingPointError for a non-finite loss, or one grown by orders of magnitude (diverged)."""
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        first = step - len(values) + bad[0] + 1
        raise FloatingPointError(
            f"The loss became {values[bad[0]]} at step {first}: training stopped and no checkpoint was "
            "written. Lower --lr, enable --grad-clip, or resume from the last checkpoint."
        )
    recent = (history[-100:] or values[:1])
    ref = sorted(recent)[len(recent) // 2]
    worst = max(range(len(values)), key=lambda i: values[i])
    if ref > 0 and values[worst] > EXPLOSION_FACTOR * ref:
        first = step - len(values) + worst + 1
        raise FloatingPointError(
            f"The loss jumped from about {ref:.4g} to {values[worst]:.4g} at step {first}: the optimisation "
            "diverged, so training stopped and no checkpoint was written. Lower --lr, enable --grad-clip, or "
            "resume from the last checkpoint."
        )


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter (NCSNv2 technique 5)."""
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
    return (seed * 1_000_003 + step) * 64 + rank


class _ScoreModel(torch.nn.Module):
    """The network as the step sees it: channels-last input and bf16 autocast where asked, float32 scores.
    Its parameters are the network's, so an EMA update or gradient clipping over them is unchanged."""

    def __init__(self, net: torch.nn.Module, bf16: bool, channels_last: bool):
        super().__init__()
        self.net, self.bf16, self.channels_last = net, bf16, channels_last

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            return self.net(x, sigma).float()


def new_state(model: torch.nn.Module, cfg: TrainConfig) -> TrainState:
    on_cuda = next(model.parameters()).device.type == "cuda"
    # The fused kernel does Adam's whole update in a few launches on CUDA; the CPU keeps the default.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True if on_cuda else None)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    return TrainState(model=model, ema=ema, optimizer=opt)


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

    ``step_fn`` replaces :func:`training_step` (same arguments; it must not clip gradients itself, and
    ``cfg.grad_clip`` applies to the default step only).
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    rank, world = _world()
    state = state or new_state(model, cfg)
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
    score_model = _ScoreModel(net, bf16=cfg.bf16 and device.type == "cuda", channels_last=cfg.channels_last)
    if step_fn is None:
        def step_fn(m, ema, opt, x, sigma, z, decay):
            return training_step(m, ema, opt, x, sigma, z, decay, grad_clip=cfg.grad_clip)

    pending: list[torch.Tensor] = []
    start_step, t0 = state.step, time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=state.step, desc="training", unit="step",
               disable=progress_disabled(progress) or rank != 0, dynamic_ncols=True)
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
            loss = step_fn(score_model, state.ema, state.optimizer, x, sigma, z, cfg.ema_decay)
            pending.append(torch.as_tensor(loss).detach().reshape(()))
            state.step += 1
            # One process alone stops at once; several agree at the next host sync, so they stop at one step.
            stop_now = interrupted.is_set() and world == 1
            if state.step % cfg.log_every == 0 or state.step == cfg.steps or stop_now:
                values = torch.stack(pending).float().cpu().tolist()
                check_losses(values, state.losses, state.step)
                state.losses.extend(values)
                pending.clear()
                state.seconds = time.perf_counter() - t0
                done = state.step - start_step
                state.images_per_second = done * cfg.batch_size * world / max(state.seconds, 1e-9)
                bar.update(len(values))
                bar.set_postfix(loss=f"{sum(values) / len(values):.4g}", img_s=f"{state.images_per_second:.0f}")
                if on_step is not None:
                    on_step(state)
                out_of_time = cfg.max_minutes is not None and state.seconds > 60 * cfg.max_minutes
                stop_now = stop_now or (interrupted.is_set() and world == 1)  # Ctrl-C during on_step (previews)
                if world > 1:
                    flags = torch.tensor([float(out_of_time), float(interrupted.is_set())], device=device)
                    dist.all_reduce(flags)
                    out_of_time, stop_now = bool(flags[0].item() > 0), bool(flags[1].item() > 0)
                if stop_now:
                    return True
                if checkpoint_path and rank == 0 and (state.step % cfg.checkpoint_every < cfg.log_every or out_of_time):
                    save(checkpoint_path)
                if out_of_time:
                    state.stop_reason = f"time limit of {cfg.max_minutes} minutes reached at step {state.step}"
                    return False
        return False

    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C lets the running step finish, so the checkpoint written below is at an exact step boundary.
        previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    model.train()
    try:
        was_interrupted = run_steps()
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        bar.close()
        model.eval()
    if was_interrupted:
        saved = ""
        if checkpoint_path and rank == 0:
            save(checkpoint_path)
            saved = f"wrote {checkpoint_path}"
        raise TrainingInterrupted(state.step, saved)
    if checkpoint_path and rank == 0 and not state.stop_reason:
        save(checkpoint_path)
    return state


def state_tensors(state: TrainState) -> dict[str, torch.Tensor]:
    """All tensors of a training state, named by prefix (model, ema, optim, history)."""
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in state.ema.state_dict().items()})
    for i, s in state.optimizer.state_dict()["state"].items():
        for k, v in s.items():
            tensors[f"optim.{i}.{k}"] = torch.as_tensor(v)
    tensors["history.loss"] = torch.tensor(state.losses, dtype=torch.float32)
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

    A checkpoint without optimizer moments (an exported one) restarts Adam's moments.
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


def setup_distributed() -> tuple[int, int, torch.device]:
    """Initialise the process group under ``torchrun`` (NCCL on GPUs, gloo on CPU).

    Returns (rank, world_size, device); without torchrun's variables, (0, 1, best device).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")
