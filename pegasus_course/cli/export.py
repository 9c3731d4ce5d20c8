"""`pegasus-course export`: the EMA (or live) weights of a checkpoint in float16, for sharing."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from .common import HelpFormatter, UsageError, _number, path_arg, value_or
from .outputs import check_out_file, checkpoint_kind, folder_lock, output_folder, refuse_existing_file


def add_parser(sub):
    p = sub.add_parser("export", help="keep only the EMA weights of a checkpoint, in float16, for sharing",
                       formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course export runs/mine/checkpoint.safetensors runs/mine/ema-fp16.safetensors"))
    p.add_argument("checkpoint", type=path_arg, help="training checkpoint (file or shard folder)")
    p.add_argument("out", type=path_arg, help="output .safetensors file")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="which weights to keep: the EMA (for sampling) or the live, optimised ones")
    p.add_argument("--resume-shards", type=path_arg, default=None, metavar="DIR",
                   help="also write live (float32) and EMA (float16) weights as shards of at most "
                   "--max-shard-mib each into DIR, enough for `train --resume DIR` (Adam restarts)")
    p.add_argument("--max-shard-mib", type=shard_mib, default=None,
                   help="largest shard size in MiB, with --resume-shards (default: 15)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (and the shards of another checkpoint in --resume-shards)")
    p.set_defaults(func=run)


def shard_mib(text: str) -> float:
    """--max-shard-mib: at least 0.01 MiB (10 KiB), checked before anything is written."""
    return _number(text, float, "a number", lambda v: math.isfinite(v) and v >= 0.01,
                   "a positive finite number of at least 0.01 (MiB; smaller shards would be thousands of files)")


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others."""
    if args.max_shard_mib is not None and args.resume_shards is None:
        raise UsageError(f"--max-shard-mib {args.max_shard_mib:g} sizes the shards of --resume-shards, and no "
                         "--resume-shards is given: add --resume-shards DIR, or drop --max-shard-mib.")
    args.max_shard_mib = value_or(args.max_shard_mib, 15.0)


def run(args) -> int:
    """Check the paths (no file replaced without --overwrite), then export with the output folders locked."""
    check_options(args)
    src, dst = Path(args.checkpoint), Path(args.out)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise UsageError(f"export would write over its input {src}: give another output file.")
    if args.resume_shards and Path(args.resume_shards).resolve() in (src.resolve(), dst.resolve()):
        raise UsageError(f"--resume-shards {args.resume_shards} is the input or the output: give another folder.")
    if src.is_file() and checkpoint_kind(src) == "a classifier checkpoint":
        raise UsageError(f"{src} is a classifier checkpoint: export keeps the weights of a score network's training "
                         "checkpoint (written by `pegasus-course train`).")
    with contextlib.ExitStack() as stack:  # a failed export leaves no empty folder behind
        stack.enter_context(output_folder(dst.parent, "the folder of the output"))
        check_out_file(dst, "the output")
        refuse_existing_file(dst, args.overwrite, "the output")
        if args.resume_shards:
            shards = stack.enter_context(output_folder(Path(args.resume_shards), "--resume-shards"))
            if any(shards.glob("part-*.safetensors")) and not args.overwrite:
                raise UsageError(f"--resume-shards {shards} already holds the shards of a checkpoint: add --overwrite "
                                 "to replace them (the old ones are removed once the new ones are written), or choose "
                                 "another folder.")
        stack.enter_context(folder_lock(dst.parent, "the folder of the output"))
        if args.resume_shards and Path(args.resume_shards).resolve() != dst.parent.resolve():
            stack.enter_context(folder_lock(Path(args.resume_shards), "--resume-shards"))
        return _export(args)


DTYPE_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


def size_text(nbytes: int) -> str:
    """1.2 MiB, 215 KiB: a file's size as a person reads it."""
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{max(1, round(nbytes / 2**10))} KiB"


def check_faithful(ckpt, prefix: str, cast=None) -> None:
    """Refuse the ``prefix.*`` weights of ``ckpt`` that export could not write as they are: not floating point,
    NaN or inf, or (with ``cast``, e.g. float16) values beyond what ``cast`` holds, which would become inf."""
    import torch

    for name, t in ckpt.part(prefix).items():
        full = f"{prefix}.{name}"
        if not t.is_floating_point():
            raise UsageError(f"Weights in {ckpt.path} are not floating point ({full} is {t.dtype}): export writes a "
                             "network's float weights only, so the file was not written by the course's training. "
                             "Re-train or re-download it.")
        if not bool(torch.isfinite(t).all()):
            raise UsageError(f"Weights in {ckpt.path} are not finite ({full} holds NaN or inf): the run diverged "
                             "before this file was written, or it is damaged. Export an earlier checkpoint or "
                             "re-train.")
        if cast is not None and not bool(torch.isfinite(t.to(cast)).all()):
            name_of = str(cast).removeprefix("torch.")
            raise UsageError(f"{full} in {ckpt.path} holds values up to {t.abs().max().item():.3g}, beyond {name_of}'s "
                             f"largest ({torch.finfo(cast).max:g}), which the {name_of} export would turn into inf: "
                             "sample from the checkpoint itself (it keeps float32), or export an earlier one.")


def describe_written(path: Path) -> str:
    """What a written safetensors file holds, read back from its header: '123 EMA weight tensors (45,678 values) in
    float16 and the loss history of 2,000 steps'."""
    from safetensors import safe_open

    parts: dict[str, list] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            piece = f.get_slice(key)
            shape = piece.get_shape()
            entry = parts.setdefault(key.split(".")[0], [0, 0, set()])
            entry[0] += 1
            entry[1] += math.prod(shape) if shape else 1
            entry[2].add(DTYPE_NAMES.get(piece.get_dtype(), piece.get_dtype()))
    said = [f"{n:,} {'EMA' if part == 'ema' else 'live'} weight tensors ({values:,} values) in {', '.join(sorted(d))}"
            for part, (n, values, d) in parts.items() if part in ("ema", "model")]
    steps = parts.get("history", [0, 0])[1]
    return " and ".join(said + ([f"the loss history of {steps:,} steps"] if steps else ["no loss history"]))


def _export(args) -> int:
    import torch

    from ..checkpoints import load_checkpoint, save_checkpoint
    from ..training import export_ema

    ckpt = load_checkpoint(args.checkpoint)  # checked before anything is written
    check_faithful(ckpt, "ema" if args.weights == "ema" else "model", torch.float16)
    if args.resume_shards:
        if not ckpt.part("model"):
            raise UsageError(f"{ckpt.path} holds no live weights (an exported file keeps one set), so its shards could "
                             "not be resumed: give --resume-shards a training checkpoint, or drop --resume-shards.")
        check_faithful(ckpt, "model")
        check_faithful(ckpt, "ema", torch.float16)
    out = export_ema(args.checkpoint, args.out, weights=args.weights)
    print(f"wrote {out} ({size_text(out.stat().st_size)}): {describe_written(out)}")
    if args.resume_shards:
        tensors = {k: v for k, v in ckpt.tensors.items() if k.startswith(("model.", "history."))}
        tensors.update({k: v.half() for k, v in ckpt.tensors.items() if k.startswith("ema.")})
        meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version")}
        files = save_checkpoint(tensors, meta, args.resume_shards, max_shard_bytes=int(args.max_shard_mib * 2**20))
        n_live, n_ema = len(ckpt.part("model")), len(ckpt.part("ema"))
        print(f"wrote {len(files)} shards in {args.resume_shards} ({size_text(sum(f.stat().st_size for f in files))}): "
              f"{n_live:,} live weight tensors in float32 and {n_ema:,} EMA ones in float16, no optimizer state "
              f"(resume with --resume {args.resume_shards}; Adam restarts)")
    return 0
