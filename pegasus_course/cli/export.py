"""`pegasus-course export`: the EMA (or live) weights of a checkpoint in float16, for sharing."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from .common import HelpFormatter, UsageError, _number, check_out_file, output_folder
from .common import checkpoint_kind, folder_lock, path_arg, refuse_existing_file, value_or


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


def _export(args) -> int:
    from ..training import export_ema

    out = export_ema(args.checkpoint, args.out, weights=args.weights)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {args.weights.upper() if args.weights == 'ema' else 'live'} "
          "weights in float16)")
    if args.resume_shards:
        from ..checkpoints import load_checkpoint, save_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        tensors = {k: v for k, v in ckpt.tensors.items() if k.startswith(("model.", "history."))}
        tensors.update({k: v.half() if v.is_floating_point() else v for k, v in ckpt.tensors.items()
                        if k.startswith("ema.")})
        meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version")}
        files = save_checkpoint(tensors, meta, args.resume_shards, max_shard_bytes=int(args.max_shard_mib * 2**20))
        print(f"wrote {len(files)} shards in {args.resume_shards} (resume with --resume {args.resume_shards})")
    return 0
