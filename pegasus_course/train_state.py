"""What a training run carries and keeps: its settings (TrainConfig), its state (weights, EMA, Adam,
the fp16 gradient scaler, the loss history), and how that state is written, resumed and exported."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoints import Checkpoint, CheckpointError, check_config, load_checkpoint, load_weights, save_checkpoint
from .device import Precision, make_scaler, training_precision


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


def _check_train_config(cfg: "TrainConfig") -> None:
    """One clear line for a TrainConfig that cannot train: sizes of at least 1, rates in range."""
    from .checks import MAX_LR, MAX_SEED, check_positive_int

    for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
        check_positive_int(getattr(cfg, name), f"TrainConfig.{name}")
    check_positive_int(cfg.seed, "TrainConfig.seed", minimum=0)
    if cfg.seed > MAX_SEED:
        raise ValueError(f"TrainConfig.seed must be at most 2^63 - 1, got {cfg.seed}.")

    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    rules = {"lr": (lambda v: 0 < v <= MAX_LR, "a positive finite number of at most 1e6 (Adam's steps are about lr in "
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
    broken = sorted(k for k, v in optim.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:  # a lower learning rate would not help: the moments themselves are damaged
        raise CheckpointError(f"{ckpt.path}: Adam's state is not finite (optim.{broken[0]}"
                              f"{f' and {len(broken) - 1} more' if len(broken) > 1 else ''}): the file was damaged, or "
                              "written as the run diverged. Resume from an earlier checkpoint, or from an export of "
                              "this one (`pegasus-course export`), which keeps the weights and restarts Adam's moments.")
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
    if isinstance(meta.get("data"), dict):  # a shipped file names no folder of the machine that trained it
        meta["data"] = {k: v for k, v in meta["data"].items() if k != "root"}
    meta.update(extra_meta or {})
    save_checkpoint(tensors, meta, path_out)
    return Path(path_out)
