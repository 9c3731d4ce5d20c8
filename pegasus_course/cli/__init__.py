"""The ``pegasus-course`` command: train, sample, pegasus, export, train-classifier, schedule, doctor.

One module per subcommand (``add_parser`` and ``run``); ``common`` holds the option types, the checks and the
loading they share, and ``main`` turns every error a command line can meet into one line that says what to do.
Every subcommand prints where it wrote what; ``pegasus-course SUBCOMMAND --help`` lists every option with its
default and an example.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from pathlib import Path

from . import doctor, export, pegasus, sample, schedule, train, train_classifier
from .common import Terminated, UsageError, is_out_of_memory

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

COMMANDS = {"train": train, "sample": sample, "pegasus": pegasus, "export": export,
            "train-classifier": train_classifier, "schedule": schedule, "doctor": doctor}


# What an interrupted command leaves, said by the command itself (each writes its files only once they are complete).
INTERRUPTED = {
    "train": "nothing more was written; the checkpoint already in --out is kept: continue it with --resume",
    "sample": "nothing was written; the images already in --out are kept as they were",
    "pegasus": "nothing was written; the images already in --out are kept as they were",
    "export": "nothing was written; a file already at the output is kept as it was",
    "train-classifier": "nothing was written (the classifier is saved once trained); a file already at --out is kept",
    "schedule": "nothing was written",
    "doctor": "nothing was written; a report already in --out is kept as it was",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegasus-course",
        description="Score-based generative models that make winged horses: train a noise-conditional score "
        "network on horses and birds, sample with annealed Langevin dynamics, interpolate (eq. 4).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sub.required = True
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every error the command line can meet ends in one line that says what to do."""
    args = build_parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM (kill, a scheduler) stops like Ctrl-C
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
        left = INTERRUPTED[args.command]
        if args.command == "train" and not (Path(args.out).expanduser() / "checkpoint.safetensors").is_file():
            left = "nothing was written and --out holds no checkpoint: run the same command again to start"
        print(f"interrupted ({name}): {left}", file=sys.stderr)
        return code
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory (the host's): lower --batch-size (train), --n or --pairs (sample, pegasus)",
              file=sys.stderr)
        return 4
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            print(f"error: out of memory ({str(exc).splitlines()[0][:160]}): lower --batch-size (train) or --n "
                  "(sample), or use --device cpu", file=sys.stderr)
            return 4
        raise
    except BrokenPipeError:  # `pegasus-course schedule --json | head`: the reader has gone, which is no error
        try:  # point stdout at nothing, so the interpreter's last flush does not complain either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as exc:  # permissions, a full disk, a path that is not a folder
        if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
            print(f"error: {exc.strerror} while writing {exc.filename or 'a file'}: free some space (or raise the "
                  "file-size limit, `ulimit -f`) and run again; what was written before, such as the last "
                  "checkpoint, is kept (continue a training run with --resume)", file=sys.stderr)
            return 2
        print(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''} ({exc.__class__.__name__}); "
              "check the paths given to --out, --data-root and --checkpoint", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    raise Terminated()
