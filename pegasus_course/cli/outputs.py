"""The output folders and files of the subcommands: checked before any work, locked while written, no earlier
run's files replaced without --overwrite nor before the new ones exist, and no empty folder left by a failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from .common import UsageError


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
    with it, returned so that the caller removes them once its own files are written (:func:`replacing`,
    :func:`set_aside`)."""
    if files and not overwrite:
        raise UsageError(f"{option} {folder} holds {what}: {describe_files(folder, files)}. Add --overwrite to "
                         f"replace them (they are removed once the new files are written, and nothing of that run "
                         f"remains), or choose another {option}.")
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


@contextlib.contextmanager
def output_folder(path: Path, option: str = "--out"):
    """:func:`check_out_dir`, and the folders it created for it are removed again when the command ends with them
    still empty, so a failed or interrupted command leaves no empty --out behind (a folder that was there before
    stays)."""
    missing, above = [], Path(os.path.abspath(path))
    while not above.exists() and above != above.parent:
        missing.append(above)  # deepest first
        above = above.parent
    try:
        yield check_out_dir(Path(path), option)
    finally:
        for folder in missing:
            try:
                folder.rmdir()
            except OSError:  # not empty (or not ours to remove): kept
                break


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


ASIDE_PREFIX = ".pegasus-course-earlier-"


@contextlib.contextmanager
def set_aside(out: Path, stale: list[Path], patterns: tuple[str, ...], successor: Path, say=print):
    """While a new run writes into ``out``, keep an earlier run's files (``stale``) in a hidden folder of ``out``, so
    the two are never mixed; when the block ends they are removed if ``successor`` (the new run's checkpoint) now
    exists, else put back in place, and what the new run wrote of ``patterns`` (previews) is removed."""
    out = Path(out)
    if not stale:
        yield
        return
    aside = Path(tempfile.mkdtemp(prefix=ASIDE_PREFIX, dir=out))
    for f in stale:
        dest = aside / f.relative_to(out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dest)
    try:
        yield
    finally:
        if Path(successor).is_file():
            shutil.rmtree(aside, ignore_errors=True)
            say(f"--overwrite: removed the earlier run's {describe_files(out, stale)} from {out}")
        else:
            for f in earlier_outputs(out, patterns):
                f.unlink(missing_ok=True)
            for f in stale:
                os.replace(aside / f.relative_to(out), f)
            shutil.rmtree(aside, ignore_errors=True)
            say(f"--overwrite: this run wrote no checkpoint, so the earlier run's {describe_files(out, stale)} are "
                f"back in {out}")


def recover_set_aside(out: Path, say=print) -> None:
    """Put back an earlier run's files that a killed ``--overwrite`` run left in a hidden folder of ``out``
    (:func:`set_aside` had no chance to decide): a file the killed run wrote in their place wins, as it would
    have. ``out`` must be locked."""
    for aside in sorted(Path(out).glob(ASIDE_PREFIX + "*")):
        back = []
        for f in sorted(p for p in aside.rglob("*") if p.is_file()):
            dest = Path(out) / f.relative_to(aside)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
                back.append(dest)
        shutil.rmtree(aside, ignore_errors=True)
        if back:
            say(f"note: an --overwrite run was stopped before it wrote a checkpoint; the earlier run's "
                f"{describe_files(Path(out), back)} are back in {out}")


def run_writing_images(args, body) -> int:
    """What `sample` and `pegasus` share: check --out, refuse (or, with --overwrite, list for removal) the
    images of an earlier run there, and run ``body(args, out, stale)`` with --out locked; a failed run removes the
    --out it created."""
    with output_folder(Path(args.out)) as out:
        stale = refuse_or_clear(out, earlier_outputs(out, IMAGE_OUTPUTS), args.overwrite,
                                what="the images of an earlier run")
        with folder_lock(out):
            return body(args, out, stale)
