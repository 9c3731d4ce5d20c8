"""What every subcommand shares: option types refused where parsed, the usage error, the checks of options that
would be ignored, the device, the data source and loading a score model or classifier (the output folders and
files: :mod:`.outputs`)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

from ..checks import (MAX_LR, MAX_NUM_SCALES, MAX_RES_BLOCKS, MAX_SEED, MAX_STEPS_EACH,  # shared with the
                      MAX_WIDTH)  # library and the checkpoints' checks

CKPT_NAME = "checkpoint.safetensors"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help; the examples at the end kept line by line as written."""

    def _fill_text(self, text, width, indent):
        if text.startswith("example"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        """The default once: an option whose help says its default (or has none to say) gets no "(default: None)"."""
        if action.default is None or "default" in (action.help or "").lower():
            return action.help
        return super()._get_help_string(action)

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
    """A seed: a whole number from 0 to 2^63 - 1."""
    value = _number(text, int, "a whole number", lambda v: v >= 0, "a whole number of 0 or more")
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is beyond 2^63 - 1 = {MAX_SEED}, the largest seed (seeds are int64)")
    return value


def positive_float(text: str) -> float:
    return _number(text, float, "a number", lambda v: math.isfinite(v) and v > 0, "a positive finite number")


def non_negative_float(text: str) -> float:
    return _number(text, float, "a number", lambda v: math.isfinite(v) and v >= 0, "a finite number of 0 or more")


def finite_float(text: str) -> float:
    return _number(text, float, "a number", math.isfinite, "a finite number")


def guidance_scale(text: str) -> float:
    """Classifier guidance's w: a negative one would push samples away from the class they are guided towards."""
    return _number(text, float, "a number", lambda v: math.isfinite(v) and v >= 0,
                   "a finite number of 0 or more (a negative scale pushes away from the class; 3 is the default)")




def learning_rate(text: str) -> float:
    return _number(text, float, "a number", lambda v: math.isfinite(v) and 0 < v <= MAX_LR,
                   f"a positive finite number of at most {MAX_LR:g} (Adam's steps are about lr in size; the "
                   "paper uses 1e-4)")


def bounded_int(maximum: int, why: str):
    """A positive whole number of at most ``maximum`` (a count that would otherwise run for days or fill memory)."""
    def parse(text: str) -> int:
        return _number(text, int, "a whole number", lambda v: 1 <= v <= maximum,
                       f"a positive whole number of at most {maximum:,} ({why})")
    return parse


steps_each = bounded_int(MAX_STEPS_EACH, "T, Langevin steps per level; the paper uses 5")
width = bounded_int(MAX_WIDTH, "the network's base width; the paper's CIFAR-10 network uses 128")
res_blocks = bounded_int(MAX_RES_BLOCKS, "ResBlocks per level; the paper uses 2")


def ema_rate(text: str) -> float:
    return _number(text, float, "a number", lambda v: 0 <= v < 1, "in [0, 1) (0.999 is the paper's EMA rate)")


def num_scales(text: str) -> int:
    return _number(text, int, "a whole number", lambda v: 2 <= v <= MAX_NUM_SCALES,
                   f"at least 2 and at most {MAX_NUM_SCALES} (L noise levels; the paper uses 232)")


def sigma_level(text: str) -> float:
    """A noise level that float32 training and sampling can hold (``sigmas.SIGMA_RANGE``: sigma^2 must fit)."""
    from ..sigmas import SIGMA_RANGE

    lo, hi = SIGMA_RANGE
    return _number(text, float, "a number", lambda v: math.isfinite(v) and lo <= v <= hi,
                   f"a noise level from {lo:g} to {hi:g} (float32 would overflow or underflow beyond; the paper "
                   "uses 50 and 0.01)")


def device_name(text: str) -> str:
    """cpu, cuda, cuda:N or mps (gpu: the GPU present); says what to do when the device is absent (checked
    when parsed, by :func:`pegasus_course.device.parse_device`)."""
    from ..device import parse_device

    try:
        return str(parse_device(text, where=""))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


DEVICE_HELP = "cpu, cuda (cuda:N) or mps (default: PEGASUS_DEVICE, else cuda, then mps, then cpu)"


def precision_name(text: str) -> str:
    """auto, bf16, fp16 or fp32 (what --precision accepts)."""
    from ..device import PRECISIONS

    name = text.strip().lower()
    if name not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a precision: use one of {', '.join(PRECISIONS)} (auto: bf16 "
                                         "on GPUs that have it, fp16 on older CUDA GPUs, fp32 on the CPU and mps)")
    return name


def path_arg(text: str) -> Path:
    """Every path option and argument: ``~`` expanded (also after ``=``, which the shell leaves alone, so
    ``--out=~/x`` is the home folder's x), an empty path refused (it would mean the current folder or the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"the path is empty ({text!r}): give a path (an empty one would mean the "
                                         "current folder or the default)")
    return Path(os.path.expanduser(text))


class UsageError(ValueError):
    """A command line that cannot be run as given; the message names the option to change."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt (the command exits with 143)."""


def resolve_device(name: str | None) -> torch.device:
    """--device when given, else PEGASUS_DEVICE, else CUDA, then MPS, then the CPU."""
    from ..device import choose_device

    return choose_device(name)


def data_source(args) -> tuple[str, str]:
    """Fill in ``args.dataset`` from the environment if not given; return (data root, training split)."""
    from ..data import default_data

    spec = default_data()
    args.dataset = args.dataset or spec.source
    return args.data_root or spec.root, ("train+test" if args.dataset == "stl10" else "train")


def check_download(args) -> None:
    """--download fetches CIFAR-10 or STL-10: beside a folder of images (given, or PEGASUS_DATA_SOURCE's) it would be
    ignored, so it is refused."""
    if not args.download:
        return
    from ..data import default_data

    if (args.dataset or default_data().source) == "folder":
        source = "--dataset folder" if args.dataset else "--dataset folder (PEGASUS_DATA_SOURCE)"
        raise UsageError(f"--download fetches CIFAR-10 or STL-10, but {source} reads images already on disk: drop "
                         "--download (or choose --dataset cifar10 or stl10).")


def check_sigma_order(args) -> None:
    """--sigma-max at or below --sigma-min, both given: refused before any data is read."""
    if args.sigma_max is not None and args.sigma_min is not None and not args.sigma_max > args.sigma_min:
        raise UsageError(f"--sigma-max ({args.sigma_max:g}) must be above --sigma-min ({args.sigma_min:g}): the levels "
                         "run from the largest to the smallest.")


def value_or(given, default):
    """An option's value, or the default when it was not given (0 is a value, never 'not given')."""
    return default if given is None else given


def load_score(args):
    from ..checkpoints import find_default_checkpoint, load_score_model

    path = args.checkpoint or find_default_checkpoint()
    if path is None:
        raise FileNotFoundError("No checkpoint given and no shipped checkpoint in this checkout: pass --checkpoint "
                                "(train one with `pegasus-course train`).")
    from ..device import place_model

    model, ckpt = load_score_model(path, use_ema=not getattr(args, "live", False), device="cpu")
    return place_model(model, resolve_device(args.device)), ckpt, Path(path)


def classifier_path(args) -> Path:
    """--classifier, else the shipped classifier; refused (before any sampling) when there is no file."""
    from ..classifier import DEFAULT_CLASSIFIER

    path = Path(args.classifier or DEFAULT_CLASSIFIER)
    if not path.exists():
        raise UsageError(f"No classifier at {path}: train one with `pegasus-course train-classifier --out {path}`, "
                         "or leave --classifier out to use the shipped one.")
    return path


def check_coarser(num_scales: int | None, meta: dict, path) -> None:
    """--num-scales samples with a coarser schedule: more levels than the network was trained on would ask it
    about noise levels it never saw."""
    trained = (meta.get("schedule") or {}).get("num_scales")
    if num_scales is not None and trained is not None and num_scales > trained:
        raise UsageError(f"--num-scales {num_scales} is more than the {trained} noise levels {path} was trained on: "
                         f"a network is reliable only at its trained levels; give at most {trained} (fewer is coarser "
                         "and faster), or leave it out.")


def load_classifier_for(args, model, guiding: bool = False):
    """The classifier of --classifier (or the shipped one) on the model's device, for the model's image size;
    ``guiding``: it must have been trained on noisy images, since guidance asks it about every noise level."""
    from ..classifier import load_classifier
    from ..device import place_model

    path = classifier_path(args)
    clf, ckpt = load_classifier(path, device="cpu")
    levels = (ckpt.meta.get("schedule") or {}).get("num_levels")
    if guiding and levels == 1:
        raise UsageError(f"The classifier {path} was trained on clean images only (train-classifier --clean): it "
                         "cannot say which class a noisy image shows, so it cannot guide sampling. Train one on "
                         "noisy images (without --clean), or leave --classifier out to use the shipped one.")
    clf = place_model(clf, next(model.parameters()).device)
    if clf.config.image_size != model.config.image_size:
        raise ValueError(f"The classifier {path} sees {clf.config.image_size}px images, the score model makes "
                         f"{model.config.image_size}px ones: train a classifier for this size.")
    return clf


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc)))
