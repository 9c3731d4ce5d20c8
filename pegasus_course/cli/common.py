"""What every subcommand shares: option types refused where parsed, the usage error, output checks,
the device, the data source and loading a score model or classifier."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import torch

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


MAX_SEED = 2**63 - 1  # seeds are int64


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


MAX_LR = 1e6  # Adam's steps are about lr in size; far beyond this its step overflows float32


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


MAX_STEPS_EACH = 10_000  # T: the paper uses 5 (NCSNv1 100); every step is one network evaluation per level
steps_each = bounded_int(MAX_STEPS_EACH, "T, Langevin steps per level; the paper uses 5")
MAX_WIDTH = 1024
width = bounded_int(MAX_WIDTH, "the network's base width; the paper's CIFAR-10 network uses 128")
MAX_RES_BLOCKS = 16
res_blocks = bounded_int(MAX_RES_BLOCKS, "ResBlocks per level; the paper uses 2")


def ema_rate(text: str) -> float:
    return _number(text, float, "a number", lambda v: 0 <= v < 1, "in [0, 1) (0.999 is the paper's EMA rate)")


MAX_NUM_SCALES = 10_000  # the paper uses 232 (CIFAR-10); every level costs T network evaluations per sample


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


def load_classifier_for(args, model):
    from ..classifier import load_classifier

    path = classifier_path(args)
    from ..device import place_model

    clf, _ = load_classifier(path, device="cpu")
    clf = place_model(clf, next(model.parameters()).device)
    if clf.config.image_size != model.config.image_size:
        raise ValueError(f"The classifier {path} sees {clf.config.image_size}px images, the score model makes "
                         f"{model.config.image_size}px ones: train a classifier for this size.")
    return clf


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc)))


# ---------------------------------------------------------------- no run replaced without consent

LOCK_NAME = ".lock"


def _lock_holder(lock: Path) -> tuple[int, str] | None:
    try:
        pid, host = lock.read_text().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _clear_stale_lock(lock: Path, folder: Path, option: str) -> None:
    """Raise UsageError while a live command holds ``lock``; remove it, with a note, when it is stale."""
    held = f"{option} {folder} is in use by another pegasus-course command"
    fix = f"wait for it to end, or choose another {option}. If no command is writing there, delete {lock}."
    holder = _lock_holder(lock)
    if holder is None:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return  # released meanwhile
        if age < 10:  # created this instant, its pid not written yet
            raise UsageError(f"{held}: {fix}")
        reason = "it names no process"
    else:
        pid, host = holder
        if host != socket.gethostname() or (pid != os.getpid() and _alive(pid)):
            raise UsageError(f"{held} (pid {pid} on {host}): {fix}")
        reason = f"pid {pid} is no longer running"
    print(f"note: removed a stale lock {lock} ({reason})")
    lock.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: Path, option: str = "--out"):
    """Hold ``folder/.lock`` (made with O_EXCL, holding the pid and host) while a command writes into ``folder``,
    so a second command writing there at the same time is refused. A lock whose process is gone (killed before
    it could remove it) is stale and taken over with a note; the lock is removed when the command ends."""
    folder = Path(folder)
    lock = folder / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _clear_stale_lock(lock, folder, option)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        break
    else:
        raise UsageError(f"could not lock {option} {folder} ({lock} keeps coming back): choose another {option}.")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text() == me:
                lock.unlink()


# What `sample` and `pegasus` write into --out: another run's images there are refused, or removed with --overwrite,
# so a folder never mixes the images of two runs.
IMAGE_OUTPUTS = ("grid.png", "rows.png", "pegasus.png", "candidates.png", "images/seed-*.png",
                 "images/pegasus-k*-*.png")


def earlier_outputs(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The files under ``folder`` that match ``patterns`` (glob patterns relative to it): what an earlier run of
    a command left there."""
    folder = Path(folder)
    return sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})


def describe_files(folder: Path, files: list[Path]) -> str:
    """'checkpoint.safetensors, losses.json, 3 files in samples/': the files, by name or counted per subfolder."""
    names, per_dir = [], {}
    for f in files:
        rel = f.relative_to(folder)
        if len(rel.parts) == 1:
            names.append(rel.name)
        else:
            per_dir[rel.parts[0]] = per_dir.get(rel.parts[0], 0) + 1
    names += [f"{n} file{'s' if n > 1 else ''} in {d}/" for d, n in per_dir.items()]
    return ", ".join(names)


def refuse_or_clear(folder: Path, files: list[Path], overwrite: bool, option: str = "--out",
                    what: str = "an earlier run's files") -> list[Path]:
    """Outputs of an earlier run in ``folder``: refused without ``--overwrite`` (a UsageError naming them);
    with it, returned so that the caller removes them (:func:`remove_files`) once its own checks have passed."""
    if files and not overwrite:
        raise UsageError(f"{option} {folder} holds {what}: {describe_files(folder, files)}. Add --overwrite to "
                         f"remove them first (nothing of that run remains), or choose another {option}.")
    return files


def checkpoint_kind(path: Path) -> str:
    """'a score network's checkpoint (step 2000)', 'a classifier', ... read from the header only."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - not a safetensors file: still a file we would replace
        return "a file"
    if meta.get("kind") == '"noise-conditional-classifier"':
        return "a classifier checkpoint"
    if "model_config" in meta:
        return f"a score network's checkpoint (step {meta.get('step', '?')})"
    return "a checkpoint"


def refuse_existing_file(path: Path, overwrite: bool, option: str = "--out") -> None:
    """A command that writes one file does not replace one that is there without ``--overwrite``."""
    path = Path(path)
    if path.is_file() and not overwrite:
        raise UsageError(f"{option} {path} already exists ({checkpoint_kind(path)}): add --overwrite to replace it, or "
                         "give another file name.")


def remove_files(folder: Path, files: list[Path], say=print) -> None:
    """Remove an earlier run's files (``--overwrite``) and say which, so that nothing of it remains."""
    if not files:
        return
    for f in files:
        f.unlink(missing_ok=True)
    say(f"--overwrite: removed the earlier run's {describe_files(folder, files)} from {folder}")


@contextlib.contextmanager
def output_folder(path: Path, option: str = "--out"):
    """:func:`check_out_dir`, and should the command fail, the folders it created for it are removed again while
    empty, so a failed command leaves no empty --out behind (a folder that was there before stays)."""
    missing, above = [], Path(os.path.abspath(path))
    while not above.exists() and above != above.parent:
        missing.append(above)  # deepest first
        above = above.parent
    try:
        yield check_out_dir(Path(path), option)
    except BaseException:
        for folder in missing:
            try:
                folder.rmdir()
            except OSError:  # not empty (or not ours to remove): kept
                break
        raise


STAGING_PREFIX = ".pegasus-course-new-"


@contextlib.contextmanager
def replacing(out: Path, stale: list[Path], say=print):
    """Yield a folder inside ``out`` to write a command's files into; once the block ends without an error they are
    moved into ``out`` and the earlier run's files (``stale``, listed by :func:`refuse_or_clear`) are removed. An
    error, Ctrl-C or SIGTERM before then leaves the earlier files as they were, and the new ones are dropped.

    ``out`` must be locked (:func:`folder_lock`): a staging folder found there is one a killed command left."""
    out = Path(out)
    for left in out.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(left, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        yield stage
        written = sorted(p for p in stage.rglob("*") if p.is_file())
        for f in written:
            dest = out / f.relative_to(stage)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)
        replaced = {out / f.relative_to(stage) for f in written}
        for f in stale:
            if f not in replaced:
                f.unlink(missing_ok=True)
        if stale:
            say(f"--overwrite: removed the earlier run's {describe_files(out, stale)} from {out}")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def moved_out(stage: Path, out: Path, path: Path) -> Path:
    """Where a file written under ``stage`` lies once :func:`replacing` has moved it into ``out``."""
    return Path(out) / Path(path).relative_to(stage)


def run_writing_images(args, body) -> int:
    """What `sample` and `pegasus` share: check --out, refuse (or, with --overwrite, list for removal) the
    images of an earlier run there, and run ``body(args, out, stale)`` with --out locked; a failed run removes the
    --out it created."""
    with output_folder(Path(args.out)) as out:
        stale = refuse_or_clear(out, earlier_outputs(out, IMAGE_OUTPUTS), args.overwrite,
                                what="the images of an earlier run")
        with folder_lock(out):
            return body(args, out, stale)
