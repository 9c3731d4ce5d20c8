"""`pegasus-course doctor`: why a score model draws noise or mush, measured on held-out images, with fixes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import (DEVICE_HELP, HelpFormatter, UsageError, _number, check_download, data_source, device_name,
                     load_score, non_negative_int, path_arg, positive_float, positive_int, steps_each)
from .outputs import earlier_outputs, folder_lock, output_folder, refuse_or_clear, replacing


def add_parser(sub):
    p = sub.add_parser("doctor", help="examine a score model and say what is wrong with it, and what to do",
                       description="Examine a score model on held-out images of its data: the share of the noise "
                       "it explains per level against a linear denoiser and the ideal, |s| against sqrt(D)/sigma, "
                       "the cosine with -z/sigma, Tweedie estimates, and its schedule against techniques 1, 2 and "
                       "4 computed from the training images. Writes a one-page report (PNG and text) that ends "
                       "with verdicts, each with its threshold and its fix. Exit code 0 when no verdict fires, 1 "
                       "when one does.",
                       formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course doctor                                   # the shipped model\n"
                               "  pegasus-course doctor runs/mine/checkpoint.safetensors --dataset folder "
                               "--data-root my-photos"))
    p.add_argument("checkpoint", type=path_arg, nargs="?", default=None,
                   help="checkpoint to examine (default: the shipped model)")
    p.add_argument("--dataset", choices=["cifar10", "stl10", "folder"], default=None,
                   help="image source (default: PEGASUS_DATA_SOURCE or cifar10)")
    p.add_argument("--data-root", type=path_arg, default=None,
                   help="where the data lives (default: PEGASUS_DATA_ROOT or the cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 / STL-10")
    p.add_argument("--classes", nargs="+", default=None, help="class names (default: those the checkpoint was "
                   "trained on)")
    p.add_argument("--split", default="test",
                   help="the held-out split (a folder without it: the training images, with a note)")
    p.add_argument("--n-images", type=positive_int, default=128, help="held-out images examined")
    p.add_argument("--levels", type=probe_levels, default=8,
                   help="noise levels probed, spread over the schedule (both ends included)")
    p.add_argument("--steps-each", type=steps_each, default=5, help="T, Langevin steps per level you sample with")
    p.add_argument("--step-lr", type=positive_float, default=None, metavar="EPS",
                   help="the eps you sample with (default: technique 4 for the checkpoint's schedule, as `sample`)")
    p.add_argument("--live", action="store_true", help="examine the live weights instead of the EMA")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the held-out choice and the noise")
    p.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP)
    p.add_argument("--out", type=path_arg, default="outputs/doctor", help="output folder (doctor.png, doctor.txt)")
    p.add_argument("--json", action="store_true", help="print the measurements and verdicts as JSON")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report of an earlier doctor run in --out (removed once the new one is written)")
    p.set_defaults(func=run)


def probe_levels(text: str) -> int:
    """--levels: at least 2, as both ends of the schedule are probed."""
    return _number(text, int, "a whole number", lambda v: v >= 2,
                   "at least 2 (both ends of the schedule are probed)")


REPORT = ("doctor.png", "doctor.txt")


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others."""
    check_download(args)


def _loss_note(losses: list[float]) -> str | None:
    """One line on the training loss history a checkpoint keeps (a rising tail means divergence)."""
    if len(losses) < 2:
        return None
    w = max(1, min(100, len(losses) // 10))
    windows = [sum(losses[i:i + w]) / w for i in range(0, len(losses) - w + 1, w)]
    return (f"training loss (means of {w} steps): first {windows[0]:.1f}, lowest {min(windows):.1f}, last "
            f"{windows[-1]:.1f} (a network that outputs zero: D/2)")


def run(args) -> int:
    """Refuse an earlier report in --out without --overwrite; examine with --out locked."""
    check_options(args)
    with output_folder(Path(args.out)) as out:
        stale = refuse_or_clear(out, earlier_outputs(out, REPORT), args.overwrite,
                                what="the report of an earlier doctor run")
        with folder_lock(out):
            return _run(args, out, stale)


def _run(args, out: Path, stale: list[Path]) -> int:
    import torch

    from .. import data as data_mod
    from ..doctor import examine
    from ..generate import schedule_from_meta

    out_stream = sys.stderr if args.json else sys.stdout  # --json: stdout holds the JSON alone

    def say(line: str) -> None:
        print(line, file=out_stream, flush=True)

    model, ckpt, path = load_score(args)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, say=say)
    if args.levels > schedule.num_scales:
        raise UsageError(f"--levels {args.levels} is more than the {schedule.num_scales} noise levels of {path}: "
                         f"give at most {schedule.num_scales}.")
    size = model.config.image_size
    classes = args.classes or (ckpt.meta.get("data") or {}).get("classes") or ["horse", "bird"]
    record = ckpt.meta.get("data") or {}
    if args.dataset is None and args.data_root is None and record.get("root") and Path(record["root"]).is_dir():
        args.dataset, args.data_root = record.get("source", "folder"), Path(record["root"])  # the images it learnt
        say(f"examining on the data {path} records: --dataset {args.dataset} --data-root {args.data_root}")
    root, train_split = data_source(args)
    load = dict(classes=classes, image_size=size, download=args.download, train=False)
    train = data_mod.load_dataset(args.dataset, root, split=train_split, **load)
    notes = list(train.notes)
    try:
        held = data_mod.load_dataset(args.dataset, root, split=args.split, **load)
    except FileNotFoundError:
        if args.dataset != "folder":
            raise
        held = train
        notes.append(f"note: no {args.split!r} split under {root}: examining training images, which the network has "
                     "seen (its shares may look better than on new images)")
    if args.split in train_split.split("+"):
        notes.append(f"note: the {args.split!r} images are training images here: the shares may look better than on "
                     "new images")
    pick = torch.randperm(len(held), generator=torch.Generator().manual_seed(args.seed))[:args.n_images]
    weights = "live" if args.live else "EMA"
    say(f"examining {path} (step {ckpt.step:,}, {weights} weights) on {len(pick)} held-out images and "  # before
        f"{args.levels} levels; {len(train):,} training images for techniques 1, 2, 4 ...")  # the work starts
    report = examine(model, schedule, held.images[pick], train.images, n_levels=args.levels, step_lr=args.step_lr,
                     seed=args.seed, title=f"{path} (step {ckpt.step:,}, {weights} weights)")
    report.notes = notes + [n for n in [_loss_note(ckpt.losses)] if n]
    with replacing(out, stale, say) as stage:  # the earlier report stays until this one is written
        report.save(stage)
    png, txt = (out / name for name in REPORT)
    if args.json:
        print(json.dumps({**report.to_dict(), "files": [str(png), str(txt)]}, indent=2))
    else:
        print("\n".join(report.lines()))
        print(f"wrote {png} and {txt}")
    return 0 if report.healthy else 1
