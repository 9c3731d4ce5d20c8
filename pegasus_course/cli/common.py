"""What every subcommand shares: option types refused where parsed, the usage error, output checks,
the device, the data source and loading a score model or classifier."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

CKPT_NAME = "checkpoint.safetensors"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help; the examples at the end kept line by line as written."""

    def _fill_text(self, text, width, indent):
        if text.startswith("example"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)

# ---------------------------------------------------------------- option types: refused where parsed


def _number(text: str, kind, what: str, ok, expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is not {expected}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v > 0, "a positive whole number (at least 1)")


def non_negative_int(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 0, "a whole number of 0 or more")


def positive_float(text: str) -> float:
    return _number(text, float, "a number", lambda v: math.isfinite(v) and v > 0, "a positive finite number")


def non_negative_float(text: str) -> float:
    return _number(text, float, "a number", lambda v: math.isfinite(v) and v >= 0, "a finite number of 0 or more")


def finite_float(text: str) -> float:
    return _number(text, float, "a number", math.isfinite, "a finite number")


def ema_rate(text: str) -> float:
    return _number(text, float, "a number", lambda v: 0 <= v < 1, "in [0, 1) (0.999 is the paper's EMA rate)")


def num_scales(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: v >= 2, "at least 2 (L noise levels)")


def device_name(text: str) -> str:
    """cpu, cuda or cuda:N; says what to do when CUDA is asked for but absent (checked when parsed)."""
    name = text.strip().lower()
    if name == "gpu":
        name = "cuda"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu or cuda (cuda:N for the N-th GPU)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{text} asked for, but CUDA is not available here (torch {torch.__version__}): use --device cpu, or "
            "leave --device out to use the best device present")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text}: the course runs on cpu or cuda")
    return name


class UsageError(ValueError):
    """A command line that cannot be run as given; the message names the option to change."""


def check_out_dir(path: Path, option: str = "--out") -> Path:
    """Make sure the output folder can be written now, before any training or sampling."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a folder: choose another {option}.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {option} {path} ({exc.strerror or exc}): choose a writable "
                         f"{option}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path} is not writable: choose a writable {option}.")
    return path


def check_out_file(path: Path, option: str = "--out") -> Path:
    """Make sure an output file can be written now (its folder is created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file name, e.g. {path / 'model.safetensors'}.")
    check_out_dir(path.parent, f"the folder of {option}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} exists and is read-only: choose another {option}.")
    return path


def resolve_device(name: str | None) -> torch.device:
    return torch.device(name if name is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def data_source(args) -> tuple[str, str]:
    """Fill in ``args.dataset`` from the environment if not given; return (data root, training split)."""
    from ..data import default_data

    spec = default_data()
    args.dataset = args.dataset or spec.source
    return args.data_root or spec.root, ("train+test" if args.dataset == "stl10" else "train")


def value_or(given, default):
    """An option's value, or the default when it was not given (0 is a value, never 'not given')."""
    return default if given is None else given


def load_score(args):
    from ..checkpoints import find_default_checkpoint, load_score_model

    path = args.checkpoint or find_default_checkpoint()
    if path is None:
        raise FileNotFoundError("No checkpoint given and no shipped checkpoint in this checkout: pass --checkpoint "
                                "(train one with `pegasus-course train`).")
    model, ckpt = load_score_model(path, use_ema=not getattr(args, "live", False), device=resolve_device(args.device))
    return model, ckpt, Path(path)


def load_classifier_for(args, model):
    from ..classifier import DEFAULT_CLASSIFIER, load_classifier

    path = args.classifier or DEFAULT_CLASSIFIER
    if not Path(path).exists():
        raise UsageError(f"No classifier at {path}: train one with `pegasus-course train-classifier --out {path}`, "
                         "or leave --classifier out to use the shipped one.")
    clf, _ = load_classifier(path, device=next(model.parameters()).device)
    if clf.config.image_size != model.config.image_size:
        raise ValueError(f"The classifier {path} sees {clf.config.image_size}px images, the score model makes "
                         f"{model.config.image_size}px ones: train a classifier for this size.")
    return clf


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc)))
