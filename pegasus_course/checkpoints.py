"""Checkpoints: named tensors in safetensors files plus a JSON configuration.

Loading runs no code (safetensors holds tensors and strings only). A checkpoint is one
``.safetensors`` file, or a folder of ``part-NN.safetensors`` shards with the same
metadata (for size-limited transfers). Tensor names are prefixed: ``model.*`` (live
weights), ``ema.*`` (exponential moving average, used for sampling), ``optim.*`` (Adam's
moments), ``history.loss`` and, after fp16 training, ``scaler.*`` (the gradient scaler's scale and growth
count, and the steps it skipped). Files are written atomically: temporary file, fsync, rename.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .checks import MAX_IMAGE_SIZE, MAX_NUM_SCALES, MAX_RES_BLOCKS, MAX_WIDTH
from .sigmas import SIGMA_RANGE

FORMAT = "pegasus-course/score-checkpoint"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "cifar10-horse-bird-32.safetensors"
# The same run's live (optimised, not averaged) weights in float16: notebook 07 compares them with the EMA.
LIVE_CHECKPOINT = DEFAULT_CHECKPOINT.with_name("live-" + DEFAULT_CHECKPOINT.name)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, foreign, or for another configuration."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds, split by prefix."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}

    @property
    def model_config(self) -> dict:
        return self.meta["model_config"]

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def losses(self) -> list[float]:
        t = self.tensors.get("history.loss")
        return t.tolist() if t is not None else []


def atomic_save(tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
    """Write one safetensors file so that an interruption leaves any previous file intact."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    str_meta = {k: json.dumps(v) for k, v in meta.items()}
    try:
        try:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=str_meta)
        except OSError:
            raise
        except Exception as exc:  # safetensors reports a full disk or a file-size limit as its own error type
            raise _write_error(exc, path) from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # readable like any other file the user writes
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_error(exc: Exception, path: Path) -> OSError:
    """An OSError (errno, reason, file) for a failed write, so callers see a full disk as the OSError it is."""
    # safetensors words the OS error as "... (os error 27)" (newer) or "IoError(Os { code: 27, ... })" (0.4)
    found = re.search(r"os error (\d+)|Os \{ code: (\d+)", str(exc))
    if found:
        code = int(found.group(1) or found.group(2))
        return OSError(code, os.strerror(code), str(path))
    return OSError(f"could not write {path} ({exc.__class__.__name__}: {exc})")


def save_checkpoint(tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: str | os.PathLike,
                    max_shard_bytes: int | None = None) -> list[Path]:
    """Save ``tensors`` with ``meta``; with ``max_shard_bytes``, as a folder of shards under ``path``.

    Every shard carries the same ``checkpoint_id``, and shards of an earlier checkpoint left in the folder
    are removed once the new ones are written, so a folder never mixes two checkpoints unnoticed.
    """
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    path = Path(path).expanduser()
    check_meta(meta, path, writing=True)  # what load_checkpoint would refuse is never written
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}.")
    if max_shard_bytes is not None and path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file: shards need a folder (give another path).")
    if max_shard_bytes is None:
        atomic_save(tensors, meta, path)
        return [path]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        if nbytes > max_shard_bytes:  # split a big tensor along its first axis
            pieces = t.flatten().split(max(1, max_shard_bytes // t.element_size()))
            for i, piece in enumerate(pieces):
                shards[-1][f"{name}@{i}of{len(pieces)}@{'x'.join(map(str, t.shape))}"] = piece
                shards.append({})
            size = 0
            continue
        shards[-1][name] = t
        size += nbytes
    shards = [s for s in shards if s]
    written = []
    checkpoint_id = uuid.uuid4().hex
    for i, shard in enumerate(shards):
        out = path / f"part-{i:02d}.safetensors"
        atomic_save(shard, {**meta, "shard": f"{i}/{len(shards)}", "checkpoint_id": checkpoint_id}, out)
        written.append(out)
    for stale in set(path.glob("part-*.safetensors")) - set(written):
        stale.unlink()
    return written


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(
            f"{path} is truncated or not a safetensors file ({exc.__class__.__name__}: {exc}). "
            "Re-download or re-train it; a complete checkpoint was never half-written by the course."
        ) from exc
    try:
        meta = {k: json.loads(v) for k, v in raw_meta.items()}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} has metadata the course did not write: it is a foreign file.") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a pegasus-course checkpoint (its metadata has no "
            f"format={FORMAT!r}). Train one with `pegasus-course train` or use the shipped one."
        )
    check_meta(meta, path)
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer pegasus-course (format {meta['format_version']}).")
    return tensors, meta


# Readers of the other configurations a checkpoint's metadata may hold, by key (each raises TypeError or
# ValueError for a malformed one). The module that defines such a model registers its reader
# (classifier.py: "classifier_config"), so the checkpoint format needs to know no model above the score network.
CONFIG_READERS: dict[str, Callable[[dict], object]] = {}


def register_config(key: str, read: Callable[[dict], object]) -> None:
    """Check ``meta[key]`` with ``read`` whenever a checkpoint is read (see :func:`check_meta`)."""
    CONFIG_READERS[key] = read


def _whole(v, minimum: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_meta(meta: dict, path: Path | str | None = None, writing: bool = False) -> None:
    """The metadata fields the course reads, checked once when a file is read (and before one is written, so
    nothing is saved that could not be read back), so a malformed or edited checkpoint ends in one
    :class:`CheckpointError` that names the field instead of failing later."""
    fix = ("Nothing was written: correct the metadata passed to save_checkpoint." if writing else
           "The file was edited or not written by the course: re-train or re-download it.")

    def bad(name: str, expected: str, value) -> CheckpointError:
        return CheckpointError(f"{path} {'would have' if writing else 'has'} malformed metadata: {name} must be "
                               f"{expected}, got {value!r}. {fix}")

    if "format_version" in meta and not _whole(meta["format_version"]):
        raise bad("format_version", "a whole number", meta["format_version"])
    if "step" in meta and not _whole(meta["step"]):
        raise bad("step", "a whole number of 0 or more", meta["step"])
    for name in (*_config_keys(), "train_config", "data", "training"):
        if name in meta and not isinstance(meta[name], dict):
            raise bad(name, "a mapping", meta[name])
    if "legs" in meta and not (isinstance(meta["legs"], list) and all(isinstance(g, dict) for g in meta["legs"])):
        raise bad("legs", "a list of mappings (one per training leg)", meta["legs"])
    data = meta.get("data")
    if isinstance(data, dict) and "classes" in data and not (
            isinstance(data["classes"], list) and data["classes"] and all(isinstance(c, str) for c in data["classes"])):
        raise bad("data.classes", "a list of class names, e.g. ['horse', 'bird']", data["classes"])
    if "clean_sigma" in meta and not _positive(meta["clean_sigma"]):
        raise bad("clean_sigma", "a positive finite number", meta["clean_sigma"])
    sched = meta.get("schedule")
    if sched is not None:
        if not isinstance(sched, dict):
            raise bad("schedule", "a mapping {sigma_max, sigma_min, num_scales}", sched)
        for name in ("sigma_max", "sigma_min"):
            if name in sched and not _positive(sched[name]):
                raise bad(f"schedule.{name}", "a positive finite number", sched[name])
        for name in ("sigma_max", "sigma_min"):
            if name in sched and not SIGMA_RANGE[0] <= sched[name] <= SIGMA_RANGE[1]:
                raise bad(f"schedule.{name}", f"a noise level from {SIGMA_RANGE[0]:g} to {SIGMA_RANGE[1]:g}, as on the "
                          "command line", sched[name])
        if "num_scales" in sched:
            if not _whole(sched["num_scales"], 2) or sched["num_scales"] > MAX_NUM_SCALES:
                raise bad("schedule.num_scales", f"a whole number from 2 to {MAX_NUM_SCALES:,}, as on the command line "
                          "(every level costs T network evaluations per sample)", sched["num_scales"])
        if "num_scales" in sched and not sched.get("sigma_max", 50.0) > sched.get("sigma_min", 0.01):
            # a score network's L levels run from sigma_max down to sigma_min (a classifier's one level has both)
            raise bad("schedule", "sigma_max > sigma_min (the largest noise level first)", sched)
        if "num_levels" in sched and not _whole(sched["num_levels"], 1):
            raise bad("schedule.num_levels", "a whole number of at least 1", sched["num_levels"])
    from .nn import ScoreUNetConfig

    for key, read in {"model_config": ScoreUNetConfig.from_dict, **CONFIG_READERS}.items():
        if key in meta:
            try:
                read(meta[key])
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path} {'would have' if writing else 'has'} a malformed {key} ({exc}) "
                                      f"{fix}") from None
    _check_sizes(meta, bad)


# The sizes of a recorded network, held to the command line's limits (key: (largest, what it is)).
SIZE_LIMITS = {"base_channels": (MAX_WIDTH, "the network's base width, at most --base-channels' largest"),
               "num_res_blocks": (MAX_RES_BLOCKS, "ResBlocks per level, at most --num-res-blocks' largest"),
               "image_size": (MAX_IMAGE_SIZE, "the image side in pixels, at most the largest the course reads")}


def _config_keys() -> tuple[str, ...]:
    """The metadata keys that hold a network's configuration: the score network's and those registered."""
    return ("model_config", *CONFIG_READERS)


def _check_sizes(meta: dict, bad) -> None:
    """The recorded network's sizes within the command line's limits, and the network's and the data's image
    sizes in agreement (a network for 32 px images trained on a record of 48 px data was edited)."""
    for key in _config_keys():
        for name, (largest, what) in SIZE_LIMITS.items():
            value = (meta.get(key) or {}).get(name)
            if value is not None and not (_whole(value, 1) and value <= largest):
                raise bad(f"{key}.{name}", f"{what}: a whole number up to {largest:,}", value)
    key = next((k for k in _config_keys() if isinstance(meta.get(k), dict) and "image_size" in meta[k]), None)
    model_size = meta[key]["image_size"] if key else None
    data_size = (meta.get("data") or {}).get("image_size")
    if model_size is not None and data_size is not None and model_size != data_size:
        raise bad("data.image_size", f"the network's image size, {model_size} ({key}.image_size)", data_size)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file or shard folder, without executing any code.

    Raises:
        FileNotFoundError: nothing at ``path``.
        CheckpointError: truncated, foreign, or an incomplete set of shards.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("part-*.safetensors"))
        if files and (path / "checkpoint.safetensors").is_file():
            raise CheckpointError(f"{path} holds both resume shards (part-*.safetensors) and a checkpoint.safetensors: "
                                  "it is not clear which one to read. Pass the file itself, or move one of them away.")
        if not files:
            inside = path / "checkpoint.safetensors"
            if inside.is_file():
                raise FileNotFoundError(f"{path} is a training run's folder: pass its checkpoint file, {inside}.")
            raise FileNotFoundError(f"{path} is a folder without part-*.safetensors shards: pass a checkpoint "
                                    "file (.safetensors) or a folder of resume shards.")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(
            f"No checkpoint at {path}. Train one with `pegasus-course train --out DIR` "
            "(it writes DIR/checkpoint.safetensors) or pass the shipped checkpoint."
        )
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    metas = []
    for f in files:
        t, m = _read_file(f)
        tensors.update(t)
        metas.append(m)
        meta = m
    if path.is_dir():
        _check_shards(path, files, metas)
        meta = {k: v for k, v in meta.items() if k not in ("shard", "checkpoint_id")}
    tensors = _join_pieces(tensors)
    return Checkpoint(tensors=tensors, meta=meta, path=path)


def _check_shards(path: Path, files: list[Path], metas: list[dict]) -> None:
    """Every shard of a folder must belong to one checkpoint: one id, one step, indices 0..n-1 once each."""
    ids = {m.get("checkpoint_id") for m in metas}
    steps = {m.get("step") for m in metas}
    if len(ids) > 1 or len(steps) > 1:
        detail = ", ".join(f"{f.name}: step {m.get('step')}" for f, m in zip(files, metas))
        raise CheckpointError(f"{path} mixes shards of different checkpoints ({detail}). Write the shards again "
                              "into an empty folder (`pegasus-course export ... --resume-shards DIR`).")
    try:
        index = [tuple(int(v) for v in str(m["shard"]).split("/")) for m in metas]
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: a part-*.safetensors file has no shard number; the folder is not a set of "
                              "shards written by the course.") from None
    total = {n for _, n in index}
    if len(total) != 1 or sorted(i for i, _ in index) != list(range(next(iter(total)))):
        expected = max(n for _, n in index)
        raise CheckpointError(f"{path} holds {len(files)} of {expected} shards: the checkpoint is incomplete.")


def _join_pieces(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    pieces: dict[str, list] = {}
    out = {}
    for k, v in tensors.items():
        if "@" in k:
            name, idx, shape = k.split("@")
            i, n = idx.split("of")
            pieces.setdefault(name, [None] * int(n))[int(i)] = v
            pieces[name + "#shape"] = [int(s) for s in shape.split("x") if s]
        else:
            out[k] = v
    for name, parts in pieces.items():
        if name.endswith("#shape"):
            continue
        if any(p is None for p in parts):
            raise CheckpointError(f"Tensor {name} is missing pieces: the checkpoint is incomplete.")
        out[name] = torch.cat(parts).reshape(pieces[name + "#shape"])
    return out


def check_config(expected: dict, found: dict, path: Path | None = None) -> None:
    """Raise :class:`CheckpointError` naming each field where two model configurations differ."""
    diffs = [f"{k}: model has {expected.get(k)!r}, checkpoint has {found.get(k)!r}"
             for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]
    if diffs:
        where = f" {path}" if path else ""
        raise CheckpointError(
            f"Checkpoint{where} was trained with another model configuration: " + "; ".join(diffs)
            + ". Build the model from the checkpoint's own config (load_score_model does this)."
        )


def load_score_model(path: str | os.PathLike | None = None, use_ema: bool = True, device: str | torch.device = "cpu",
                     expected_config=None):
    """Build a :class:`~pegasus_course.nn.ScoreUNet` from a checkpoint's config and load its weights (float32).

    Args:
        path: checkpoint file or shard folder; ``None`` is the course's shipped model.
        use_ema: the EMA weights (better samples) rather than the live ones.
        expected_config: if given, a ScoreUNetConfig the checkpoint must match.
    """
    from .nn import ScoreUNet, ScoreUNetConfig

    ckpt = load_checkpoint(DEFAULT_CHECKPOINT if path is None else path)
    if "model_config" not in ckpt.meta:
        kind = ckpt.meta.get("kind", "unknown")
        hint = (" It is a classifier: give it where a classifier is asked for (--classifier)."
                if kind == "noise-conditional-classifier" else "")
        raise CheckpointError(
            f"{ckpt.path} is a pegasus-course checkpoint but not a score network's (kind: {kind}).{hint} Pass a "
            "checkpoint written by `pegasus-course train`."
        )
    config = ScoreUNetConfig.from_dict(ckpt.model_config)
    if expected_config is not None:
        check_config(expected_config.to_dict(), config.to_dict(), ckpt.path)
    prefix = "ema" if use_ema and ckpt.part("ema") else "model"
    weights = ckpt.part(prefix)
    if not weights:
        if ckpt.part("ema"):  # --live on an exported file, which keeps the EMA weights only
            raise CheckpointError(f"{ckpt.path} holds the EMA weights only (an exported file), no live ones: drop "
                                  "--live (use_ema=True), or pass the training checkpoint.")
        raise CheckpointError(f"{ckpt.path} holds no {prefix}.* weights: pass a checkpoint written by "
                              "`pegasus-course train` or `export`.")
    model = ScoreUNet(config)
    load_weights(model, weights, ckpt.path)
    return model.to(device).eval().requires_grad_(False), ckpt  # for sampling: no autograd graph over 1,161 steps


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Path | None = None) -> None:
    """Load a state dict (any float dtype) into ``model``, with a clear message on a mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if wrong:
            details.append(f"shape differs for {wrong[:3]}")
        raise CheckpointError(f"Weights in {path or 'checkpoint'} do not fit this model: " + "; ".join(details))
    not_float = [k for k, v in weights.items() if own[k].is_floating_point() and not v.is_floating_point()]
    if not_float:
        raise CheckpointError(f"Weights in {path or 'checkpoint'} are not floating point ({not_float[0]} is "
                              f"{weights[not_float[0]].dtype}): a network's weights are floats, so the file was not "
                              "written by the course's training. Re-train or re-download it.")
    not_finite = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not_finite:
        raise CheckpointError(f"Weights in {path or 'checkpoint'} are not finite ({not_finite[0]} holds NaN or inf): "
                              "the run diverged before this file was written, or it is damaged. Use an earlier "
                              "checkpoint or re-train.")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in weights.items()})


def find_default_checkpoint() -> Path | None:
    """The shipped checkpoint if it is present in this checkout."""
    return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None


REPO_ROOT = DEFAULT_CHECKPOINT.parent.parent
NOTEBOOK_RUN = REPO_ROOT / "runs" / "notebook-04" / "checkpoint.safetensors"
