"""The ``pegasus-course`` command: train, sample, pegasus, export.

Every subcommand prints where it wrote what. ``pegasus-course SUBCOMMAND --help``
lists every option with its default.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

CKPT_NAME = "checkpoint.safetensors"


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


def _check_out_dir(path: Path, option: str = "--out") -> Path:
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


def _check_out_file(path: Path, option: str = "--out") -> Path:
    """Make sure an output file can be written now (its folder is created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file name, e.g. {path / 'model.safetensors'}.")
    _check_out_dir(path.parent, f"the folder of {option}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} exists and is read-only: choose another {option}.")
    return path


def _add_train(sub):
    p = sub.add_parser("train", help="train the score U-Net with DSM on horses and birds",
                       description="Train the score U-Net with denoising score matching (paper eq. 2). Sizes "
                       "default to the profile's; any option given overrides them. Works under "
                       "`torchrun --nproc_per_node N` (DistributedDataParallel).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["cifar10", "stl10", "folder"], default=None,
                   help="image source (default: PEGASUS_DATA_SOURCE or cifar10)")
    p.add_argument("--data-root", default=None, help="where the data lives (default: PEGASUS_DATA_ROOT or the cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 / STL-10")
    p.add_argument("--classes", nargs="+", default=["horse", "bird"], help="class names to train on")
    p.add_argument("--image-size", type=int, choices=[32, 48, 64], default=None,
                   help="image side (default: 32 for CIFAR-10, 48 for STL-10, native for folders)")
    p.add_argument("--profile", default=None, help="gpu | cpu | ci (default: PEGASUS_PROFILE or by device)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=positive_int, default=None, help="optimisation steps (default: the profile's)")
    g.add_argument("--epochs", type=positive_float, default=None, help="passes over the data instead of --steps")
    p.add_argument("--batch-size", type=positive_int, default=None, help="batch size (paper: 128 CIFAR-10, 64 STL-10)")
    p.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    p.add_argument("--ema-decay", type=ema_rate, default=0.999, help="EMA rate, in [0, 1)")
    p.add_argument("--grad-clip", type=positive_float, default=None, help="clip the gradient norm to this value")
    p.add_argument("--base-channels", type=positive_int, default=None, help="U-Net width (default: the profile's)")
    p.add_argument("--num-res-blocks", type=positive_int, default=None, help="ResBlocks per level (default: the profile's)")
    p.add_argument("--num-scales", type=num_scales, default=None, help="L, noise levels (default: the profile's)")
    p.add_argument("--sigma-max", type=positive_float, default=None, help="sigma_1 (default: the profile's, 50)")
    p.add_argument("--sigma-min", type=positive_float, default=None, help="sigma_L (default: the profile's, 0.01)")
    p.add_argument("--out", default="runs/train", help="output folder (checkpoint, losses, sample grids)")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from a checkpoint (no value: OUT/checkpoint.safetensors)")
    p.add_argument("--overwrite", action="store_true",
                   help="start from scratch in an --out that already holds a checkpoint (replaced at the first new one)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the initial weights, data order and noise")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune"), default="default",
                   help="torch.compile mode with --compile: reduce-overhead replays the step's kernels as CUDA graphs")
    p.add_argument("--channels-last", action="store_true", help="use the channels_last memory format")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 on CUDA instead of bf16 autocast")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop cleanly with a checkpoint when this much time has passed")
    p.add_argument("--sample-every", type=positive_int, default=None, help="steps between EMA sample grids")
    p.add_argument("--checkpoint-every", type=positive_int, default=2000, help="steps between checkpoints")
    p.add_argument("--track-colour", action="store_true",
                   help="every --sample-every steps, record the per-channel colour statistics of 16 samples from "
                   "the EMA and the live weights, with and without the denoising step (OUT/colour.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train)


def _add_sample(sub):
    p = sub.add_parser("sample", help="sample images from a checkpoint with annealed Langevin dynamics",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="checkpoint file or folder (default: the shipped model)")
    p.add_argument("--n", type=positive_int, default=16, help="number of samples")
    p.add_argument("--seed", type=non_negative_int, default=0, help="sample i uses seed SEED + i")
    p.add_argument("--steps-each", type=positive_int, default=5, help="T, Langevin steps per noise level")
    p.add_argument("--num-scales", type=num_scales, default=None, help="use a coarser schedule of L levels (default: trained)")
    p.add_argument("--no-denoise", action="store_true", help="skip the final denoising step")
    p.add_argument("--live", action="store_true", help="use the live weights instead of the EMA")
    p.add_argument("--class", dest="cls", default=None, metavar="NAME",
                   help="ask for this class (horse or bird) with classifier guidance")
    p.add_argument("--classifier", default=None, help="noise-conditional classifier checkpoint (default: the shipped one)")
    p.add_argument("--guidance-scale", type=finite_float, default=3.0, help="classifier guidance scale for --class")
    p.add_argument("--device", type=device_name, default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", default="outputs/samples", help="output folder")
    p.set_defaults(func=cmd_sample)


def _add_pegasus(sub):
    p = sub.add_parser("pegasus", help="interpolate between two samples (eq. 4) to make winged horses",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="checkpoint file or folder (default: the shipped model)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", type=non_negative_int, nargs=2, metavar=("SEED1", "SEED2"), help="the two end samples' seeds")
    g.add_argument("--auto", action="store_true", help="choose the ends automatically (the default), see --ends")
    p.add_argument("--ends", choices=["selection", "guidance", "random"], default=None,
                   help="how --auto chooses the ends: `selection` samples --candidates images and takes the most "
                   "confident horse and bird; `guidance` asks for a horse and a bird with classifier guidance; "
                   "`random` takes seeded random pairs (may be horse-horse). Default: selection when a classifier "
                   "is available, else random")
    p.add_argument("--pairs", type=positive_int, default=4, help="rows to make with --auto")
    p.add_argument("--candidates", type=positive_int, default=None, help="samples to choose from with --ends selection "
                   "(default: 4 per row, at least 8)")
    p.add_argument("--classifier", default=None, help="noise-conditional classifier checkpoint (default: the shipped one)")
    p.add_argument("--guidance-scale", type=finite_float, default=3.0, help="classifier guidance scale for --ends guidance")
    p.add_argument("--seed", type=non_negative_int, default=0, help="first seed used by --auto")
    p.add_argument("--n", type=positive_int, default=15, help="N of eq. 4: each row has N + 2 images")
    p.add_argument("--steps-each", type=positive_int, default=5, help="T, Langevin steps per noise level")
    p.add_argument("--num-scales", type=num_scales, default=None, help="use a coarser schedule of L levels (default: trained)")
    p.add_argument("--device", type=device_name, default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", default="outputs/pegasus", help="output folder")
    p.set_defaults(func=cmd_pegasus)


def _add_export(sub):
    p = sub.add_parser("export", help="keep only the EMA weights of a checkpoint, in float16, for sharing",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="training checkpoint (file or shard folder)")
    p.add_argument("out", help="output .safetensors file")
    p.add_argument("--weights", choices=["ema", "live"], default="ema",
                   help="which weights to keep: the EMA (for sampling) or the live, optimised ones")
    p.add_argument("--resume-shards", default=None, metavar="DIR",
                   help="also write live (float32) and EMA (float16) weights as shards of at most "
                   "--max-shard-mib each into DIR, enough for `train --resume DIR` (Adam restarts)")
    p.add_argument("--max-shard-mib", type=positive_float, default=15.0, help="largest shard size in MiB")
    p.set_defaults(func=cmd_export)


def _add_train_classifier(sub):
    p = sub.add_parser("train-classifier", help="train the noise-conditional horse/bird classifier (or the "
                       "ten-class feature network with --classes all --clean)",
                       description="Train a classifier p(y | x, sigma) on images perturbed at the schedule's noise "
                       "levels (for selection and classifier guidance), or on clean images with --clean (the fixed "
                       "network whose features the Frechet distance uses). Prints the clean accuracy on the "
                       "held-out test split.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=["cifar10", "stl10", "folder"], default=None,
                   help="image source (default: PEGASUS_DATA_SOURCE or cifar10)")
    p.add_argument("--data-root", default=None, help="where the data lives (default: PEGASUS_DATA_ROOT or the cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 / STL-10")
    p.add_argument("--classes", nargs="+", default=["horse", "bird"],
                   help="class names, or `all` for every class of the source")
    p.add_argument("--image-size", type=int, choices=[32, 48, 64], default=None, help="image side")
    p.add_argument("--clean", action="store_true", help="train on clean images only (sigma = sigma_min)")
    p.add_argument("--profile", default=None, help="gpu | cpu | ci (default: PEGASUS_PROFILE or by device)")
    p.add_argument("--steps", type=positive_int, default=None, help="optimisation steps (default: the profile's)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="batch size")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate (cosine-decayed to 0)")
    p.add_argument("--base-channels", type=positive_int, default=None, help="width (default: the profile's)")
    p.add_argument("--sigma-max", type=positive_float, default=None, help="largest noise level (default: the profile's, 50)")
    p.add_argument("--sigma-min", type=positive_float, default=None, help="smallest noise level (default: the profile's, 0.01)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights, data order and noise")
    p.add_argument("--device", type=device_name, default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", default="runs/classifier/classifier.safetensors", help="checkpoint file to write")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_train_classifier)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegasus-course",
        description="Score-based generative models that make winged horses: train a noise-conditional score "
        "network on horses and birds, sample with annealed Langevin dynamics, interpolate (eq. 4).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,pegasus,export,train-classifier}")
    sub.required = True
    _add_train(sub)
    _add_sample(sub)
    _add_pegasus(sub)
    _add_export(sub)
    _add_train_classifier(sub)
    return parser


def _device(name: str | None) -> torch.device:
    return torch.device(name if name is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def _data_source(args) -> tuple[str, str]:
    """Fill in ``args.dataset`` from the environment if not given; return (data root, training split)."""
    from .data import default_data

    spec = default_data()
    args.dataset = args.dataset or spec.source
    return args.data_root or spec.root, ("train+test" if args.dataset == "stl10" else "train")


def _value(given, default):
    """An option's value, or the default when it was not given (0 is a value, never 'not given')."""
    return default if given is None else given


def _resume_checks(prev, schedule, cfg, say) -> list[dict]:
    """Compare a resumed run with its checkpoint: refuse another schedule, note other settings.

    Returns the history of legs to store in the new checkpoint (one entry per run that wrote it).
    """
    old = prev.meta.get("schedule")
    if old and {k: old[k] for k in ("sigma_max", "sigma_min", "num_scales")} != schedule.to_dict():
        raise UsageError(
            f"{prev.path} was trained with the schedule {old}, this run asks for {schedule.to_dict()}: a network "
            "conditioned on other noise levels cannot continue. Drop --sigma-max/--sigma-min/--num-scales (the "
            "checkpoint's schedule is used when resuming) or start a new run with another --out.")
    legs = list(prev.meta.get("legs") or [])
    if not legs and "train_config" in prev.meta:  # written before legs were recorded: keep what it knew
        tc = prev.meta["train_config"]
        legs = [{"start_step": None, "end_step": prev.step, "batch_size": tc.get("batch_size"), "lr": tc.get("lr"),
                 "seed": tc.get("seed"), "note": "last leg before legs were recorded"}]
    last = legs[-1] if legs else {}
    changed = [f"{name} {last.get(name)} -> {getattr(cfg, name)}" for name in ("batch_size", "lr", "seed")
               if name in last and last.get(name) != getattr(cfg, name)]
    if changed:
        say(f"note: resuming with other settings than the checkpoint's last leg ({'; '.join(changed)}); recorded in "
            "the checkpoint's history of legs")
    return legs


def cmd_train(args) -> int:
    from . import data as data_mod
    from .checkpoints import load_checkpoint
    from .generate import Schedule, generate
    from .nn import ScoreUNet, ScoreUNetConfig, count_parameters
    from .plotting import save_grid
    from .profiles import get_profile
    from .training import TrainConfig, TrainingInterrupted, resume_state, setup_distributed, train

    profile = get_profile(args.profile)
    out = _check_out_dir(Path(args.out))
    ckpt_path = out / CKPT_NAME
    prev = None
    if args.resume:
        src = ckpt_path if args.resume == "auto" else Path(args.resume)
        if args.resume == "auto" and not ckpt_path.is_file():
            raise UsageError(f"--resume: no checkpoint in --out {out} to continue ({ckpt_path} is missing). Start a "
                             "new run without --resume, or pass --resume PATH to continue another checkpoint.")
        prev = load_checkpoint(src)
    elif ckpt_path.is_file() and not args.overwrite:
        raise UsageError(f"--out {out} already holds a checkpoint ({ckpt_path}). Add --resume to continue it, "
                         "--overwrite to start again from scratch (it is replaced at the first new checkpoint), or "
                         "choose another --out.")
    rank, world, device = setup_distributed()
    say = print if rank == 0 else (lambda *a, **k: None)
    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    root, split = _data_source(args)
    ds = data_mod.load_dataset(args.dataset, root, split=split, classes=args.classes, image_size=args.image_size,
                               download=args.download, max_images=None)
    if profile.max_train_images:  # the quick profiles' cut keeps every class
        ds = data_mod.balanced_subset(ds, max(1, profile.max_train_images // len(ds.classes)))
    for line in data_mod.class_balance_notes(ds):
        say(line)
    size = ds.image_size
    batch = _value(args.batch_size, 64 if args.dataset == "stl10" and profile.name == "gpu" else profile.batch_size)
    old = (prev.meta.get("schedule") or {}) if prev is not None else {}
    schedule = Schedule(_value(args.sigma_max, old.get("sigma_max", profile.sigma_max)),
                        _value(args.sigma_min, old.get("sigma_min", profile.sigma_min)),
                        _value(args.num_scales, old.get("num_scales", profile.num_scales)), profile.n_steps_each)
    if not schedule.sigma_max > schedule.sigma_min:
        raise UsageError(f"--sigma-max ({schedule.sigma_max:g}) must be above --sigma-min ({schedule.sigma_min:g}).")
    torch.manual_seed(args.seed)
    if prev is not None and "model_config" in prev.meta:
        config = ScoreUNetConfig.from_dict(prev.model_config)
        if args.base_channels is not None or args.num_res_blocks is not None:
            wanted = ScoreUNetConfig.for_image_size(size, _value(args.base_channels, profile.base_channels),
                                                    num_res_blocks=_value(args.num_res_blocks, profile.num_res_blocks))
            if wanted != config:
                raise UsageError(f"--base-channels/--num-res-blocks differ from the checkpoint's network "
                                 f"({config.base_channels} channels, {config.num_res_blocks} ResBlocks): drop them "
                                 "to continue, or start a new run with another --out.")
    else:
        config = ScoreUNetConfig.for_image_size(size, _value(args.base_channels, profile.base_channels),
                                                num_res_blocks=_value(args.num_res_blocks, profile.num_res_blocks))
    if config.image_size != size:
        raise UsageError(f"The checkpoint's network makes {config.image_size}px images but the data is {size}px: "
                         f"pass --image-size {config.image_size}.")
    model = ScoreUNet(config).to(device)
    per_epoch = (len(ds) // world) // batch
    if per_epoch == 0:
        raise UsageError(f"{len(ds)} images cannot fill one batch of {batch}{f' per process ({world})' if world > 1 else ''}: "
                         "lower --batch-size.")
    steps = args.steps if args.steps is not None else (
        max(1, int(round(args.epochs * per_epoch))) if args.epochs is not None else profile.train_steps)
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=args.lr, ema_decay=args.ema_decay, grad_clip=args.grad_clip,
                      seed=args.seed, bf16=not args.no_bf16, compile=args.compile, compile_mode=args.compile_mode,
                      channels_last=args.channels_last,
                      checkpoint_every=args.checkpoint_every, max_minutes=args.max_minutes,
                      log_every=min(25, max(1, steps // 4)))
    state = None
    legs: list[dict] = []
    if prev is not None:
        legs = _resume_checks(prev, schedule, cfg, say)
        state = resume_state(prev, model, cfg)
        say(f"resumed from {prev.path} at step {state.step}")
        if state.step >= steps:
            raise UsageError(f"the checkpoint is already at step {state.step} and --steps is {steps}: pass a larger "
                             "--steps (the total to reach, not the steps to add) to continue.")
    legs.append({"start_step": state.step if state is not None else 0, "batch_size": batch, "lr": args.lr,
                 "seed": args.seed, "world_size": world, "device": str(device.type),
                 "profile": profile.name, "compile": args.compile_mode if args.compile else False})
    meta = {"schedule": schedule.to_dict(), "profile": profile.name, "legs": legs,
            "data": {"source": args.dataset, "classes": list(args.classes), "image_size": size,
                     "num_images": len(ds), "split": split}}
    say(f"{profile.name} profile on {device} (x{world}); {len(ds)} images {size}x{size}; "
        f"{count_parameters(model):,} parameters; L={schedule.num_scales}; {steps} steps of batch {batch}")
    sample_every = _value(args.sample_every, profile.sample_every)
    preview = schedule  # annealed Langevin needs the full schedule: coarse ones leave the samples noisy

    tracker = None
    if args.track_colour and rank == 0:
        from .evaluation import ColourTracker, colour_stats
        from .generate import colour_probe

        tracker = ColourTracker(colour_stats(ds.images), colour_probe(preview, range(16)), sample_every)

    def on_step(st):
        if rank == 0 and sample_every and st.step % sample_every < cfg.log_every and st.step < cfg.steps:
            imgs = generate(st.ema, range(16), preview, progress=False)
            save_grid(imgs, out / "samples" / f"step-{st.step:07d}.png", nrow=8)
        if tracker is not None:
            tracker(st)
            tracker.save(out / "colour.json")

    t0 = time.time()
    try:
        state = train(model, ds.images, schedule.sigmas(), cfg, state=state, on_step=on_step,
                      checkpoint_path=ckpt_path, meta=meta, progress=not args.no_progress)
    except TrainingInterrupted as stop:
        say(f"interrupted at step {stop.step}: {stop.saved or 'no checkpoint written'}; continue with "
            f"`pegasus-course train --out {out} --resume` and the same options")
        return 130
    if rank == 0:
        (out / "losses.json").write_text(json.dumps(state.losses))
        final = generate(state.ema, range(16), preview, progress=False)
        grid = save_grid(final, out / "samples" / f"step-{state.step:07d}.png", nrow=8)
        tail = state.losses[-100:]
        say(f"step {state.step}: mean loss of the last {len(tail)} steps {sum(tail) / max(len(tail), 1):.4f}; "
            f"{state.images_per_second:.0f} images/s; {time.time() - t0:.0f} s")
        if state.stop_reason:
            say(f"stopped early: {state.stop_reason}")
        say(f"wrote {ckpt_path} (resume with --resume), {out / 'losses.json'}, {grid}")
    return 0


def _load(args):
    from .checkpoints import find_default_checkpoint, load_score_model

    path = args.checkpoint or find_default_checkpoint()
    if path is None:
        raise FileNotFoundError("No checkpoint given and no shipped checkpoint in this checkout: pass --checkpoint "
                                "(train one with `pegasus-course train`).")
    model, ckpt = load_score_model(path, use_ema=not getattr(args, "live", False), device=_device(args.device))
    return model, ckpt, Path(path)


def cmd_sample(args) -> int:
    from .generate import generate, schedule_from_meta
    from .plotting import save_grid, save_images

    out = _check_out_dir(Path(args.out))
    model, ckpt, path = _load(args)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, args.num_scales)
    print(f"sampling {args.n} images from {path} (step {ckpt.step}) on {next(model.parameters()).device}: "
          f"L={schedule.num_scales}, T={schedule.n_steps_each}")
    guidance, classes = None, None
    if args.cls:
        from .generate import Guidance

        guidance = Guidance(_load_classifier(args, model), args.guidance_scale)
        guidance.index(args.cls)
        classes = [args.cls] * args.n
        print(f"classifier guidance towards {args.cls!r}, scale {args.guidance_scale:g}")
    t0 = time.perf_counter()
    imgs = generate(model, range(args.seed, args.seed + args.n), schedule, denoise=not args.no_denoise,
                    guidance=guidance, classes=classes)
    print(f"{args.n} samples took {time.perf_counter() - t0:.1f} s")
    grid = save_grid(imgs, out / "grid.png", nrow=min(8, args.n))
    files = save_images(imgs, out / "images", prefix="seed")
    print(f"wrote {grid} and {len(files)} images in {out / 'images'}")
    return 0


def _load_classifier(args, model):
    from .classifier import DEFAULT_CLASSIFIER, load_classifier

    path = args.classifier or DEFAULT_CLASSIFIER
    if not Path(path).exists():
        raise UsageError(f"No classifier at {path}: train one with `pegasus-course train-classifier --out {path}`, "
                         "or leave --classifier out to use the shipped one.")
    clf, _ = load_classifier(path, device=next(model.parameters()).device)
    if clf.config.image_size != model.config.image_size:
        raise ValueError(f"The classifier {path} sees {clf.config.image_size}px images, the score model makes "
                         f"{model.config.image_size}px ones: train a classifier for this size.")
    return clf


def _choose_ends(args, model, schedule):
    """The --auto ends: (pairs of seeds, guidance or None, a sentence saying how they were chosen, the candidate
    samples that selection chose from or None)."""
    from .classifier import DEFAULT_CLASSIFIER, class_index, predict_proba, select_pairs
    from .generate import Guidance, generate

    ends = args.ends
    have_classifier = args.classifier is not None or DEFAULT_CLASSIFIER.is_file()
    if ends is None:
        ends = "selection" if have_classifier else "random"
        if not have_classifier:
            print("no classifier checkpoint, so the ends are random pairs (train one with "
                  "`pegasus-course train-classifier` to guarantee a horse and a bird)")
    seeds = [(args.seed + 2 * i, args.seed + 2 * i + 1) for i in range(args.pairs)]
    if ends == "random":
        return (seeds, None, f"--ends random: {len(seeds)} seeded random pairs (ends may be horse-horse or bird-bird)",
                None)
    clf = _load_classifier(args, model)
    if ends == "guidance":
        return seeds, Guidance(clf, args.guidance_scale), (
            f"--ends guidance: each row asks for a horse at k = 0 and a bird at k = N + 1 (classifier guidance, "
            f"scale {args.guidance_scale:g})"), None
    n_cand = _value(args.candidates, max(8, 4 * args.pairs))
    cand = list(range(args.seed, args.seed + n_cand))
    print(f"--ends selection: sampling {n_cand} candidates (seeds {cand[0]}..{cand[-1]}) to choose the ends from")
    candidates = generate(model, cand, schedule)
    probs = predict_proba(clf, candidates)
    chosen = select_pairs(probs, clf.config.class_names, args.pairs, "horse", "bird")
    h, b = class_index(clf, "horse"), class_index(clf, "bird")
    detail = ", ".join(f"horse seed {cand[i]} (p={probs[i, h]:.2f}) -> bird seed {cand[j]} (p={probs[j, b]:.2f})"
                       for i, j in chosen)
    return [(cand[i], cand[j]) for i, j in chosen], None, f"--ends selection: {detail}", candidates


def cmd_pegasus(args) -> int:
    from .generate import pegasus_k, pegasus_rows, schedule_from_meta
    from .plotting import save_grid, save_images

    if args.seeds and args.seeds[0] == args.seeds[1]:
        raise UsageError(f"--seeds {args.seeds[0]} {args.seeds[1]}: the two ends must be different samples (eq. 4 "
                         "mixes two independent noise tapes); pick two different seeds.")
    out = _check_out_dir(Path(args.out))
    model, ckpt, path = _load(args)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, args.num_scales)
    guidance, candidates = None, None
    if args.seeds:
        pairs = [tuple(args.seeds)]
        how = f"seeds {args.seeds[0]} and {args.seeds[1]}"
    else:
        pairs, guidance, how, candidates = _choose_ends(args, model, schedule)
        if candidates is not None:
            cand_grid = save_grid(candidates, out / "candidates.png", nrow=8)
            print(f"wrote {cand_grid} (the candidates, seeds {args.seed} onwards, row by row)")
    print(f"pegasus rows from {path} (step {ckpt.step}), {how}; N={args.n}, L={schedule.num_scales}, "
          f"T={schedule.n_steps_each}")
    t0 = time.perf_counter()
    rows = pegasus_rows(model, pairs, args.n, schedule, guidance=guidance)  # (P, N + 2, 3, H, W)
    print(f"{rows.shape[0] * rows.shape[1]} images took {time.perf_counter() - t0:.1f} s")
    grid = save_grid(rows.flatten(0, 1), out / "rows.png", nrow=args.n + 2)
    k = min(pegasus_k(model.config.image_size), args.n)
    chosen = save_grid(rows[:, k], out / "pegasus.png", nrow=min(8, len(pairs)))
    files = save_images(rows[:, k], out / "images", prefix=f"pegasus-k{k}")
    print(f"wrote {grid} (whole rows, k = 0..{args.n + 1}), {chosen} (k = {k} of N = {args.n}) and "
          f"{len(files)} images in {out / 'images'}")
    return 0


def cmd_export(args) -> int:
    from .training import export_ema

    src, dst = Path(args.checkpoint), Path(args.out)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise UsageError(f"export would write over its input {src}: give another output file.")
    if args.resume_shards and Path(args.resume_shards).resolve() in (src.resolve(), dst.resolve()):
        raise UsageError(f"--resume-shards {args.resume_shards} is the input or the output: give another folder.")
    _check_out_file(dst, "the output")
    if args.resume_shards:
        _check_out_dir(Path(args.resume_shards), "--resume-shards")
    out = export_ema(args.checkpoint, args.out, weights=args.weights)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {args.weights.upper() if args.weights == 'ema' else 'live'} "
          "weights in float16)")
    if args.resume_shards:
        from .checkpoints import load_checkpoint, save_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        tensors = {k: v for k, v in ckpt.tensors.items() if k.startswith(("model.", "history."))}
        tensors.update({k: v.half() if v.is_floating_point() else v for k, v in ckpt.tensors.items()
                        if k.startswith("ema.")})
        meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version")}
        files = save_checkpoint(tensors, meta, args.resume_shards, max_shard_bytes=int(args.max_shard_mib * 2**20))
        print(f"wrote {len(files)} shards in {args.resume_shards} (resume with --resume {args.resume_shards})")
    return 0


def cmd_train_classifier(args) -> int:
    from . import data as data_mod
    from .classifier import save_classifier
    from .profiles import get_profile
    from .sigmas import geometric_sigmas
    from .workflow import classifier_meta, fit_classifier

    profile = get_profile(args.profile)
    out_path = _check_out_file(Path(args.out))
    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    device = _device(args.device)
    root, split = _data_source(args)
    classes = list(args.classes)
    if classes == ["all"]:
        classes = list(data_mod.CIFAR10_CLASSES if args.dataset == "cifar10" else data_mod.STL10_CLASSES
                       if args.dataset == "stl10" else data_mod.folder_classes(root, "train"))
    ds = data_mod.load_dataset(args.dataset, root, split=split, classes=classes, image_size=args.image_size,
                               download=args.download)
    if profile.max_train_images:
        ds = data_mod.balanced_subset(ds, max(1, profile.max_train_images // len(classes)))
    for line in data_mod.class_balance_notes(ds):
        print(line)
    test = None
    test_split = "test" if args.dataset != "stl10" else None
    if test_split is not None:  # checked before training, so a missing class does not waste the run
        try:
            test = data_mod.load_dataset(args.dataset, root, split=test_split, classes=classes,
                                         image_size=args.image_size, download=args.download, train=False)
        except FileNotFoundError as exc:
            print(f"note: no held-out test split, so no test accuracy: {exc}")
        else:
            counts = torch.bincount(test.labels, minlength=len(classes)).tolist()
            missing = [c for c, n in zip(classes, counts) if n == 0]
            if missing:
                raise UsageError(f"The test split has no images of {missing}: the held-out accuracy would be "
                                 "meaningless. Add test images of every class (or leave the class out with --classes).")
    sigma_max = _value(args.sigma_max, profile.sigma_max)
    sigma_min = _value(args.sigma_min, profile.sigma_min)
    if not args.clean and not sigma_max > sigma_min:
        raise UsageError(f"--sigma-max ({sigma_max:g}) must be above --sigma-min ({sigma_min:g}).")
    sigmas = (torch.tensor([sigma_min]) if args.clean
              else geometric_sigmas(sigma_max, sigma_min, profile.num_scales))
    model, result = fit_classifier(ds, sigmas, test=test, clean=args.clean,
                                   base_channels=_value(args.base_channels, profile.classifier_base_channels),
                                   steps=_value(args.steps, profile.classifier_steps), batch_size=args.batch_size,
                                   lr=args.lr, seed=args.seed, device=device, progress=not args.no_progress)
    meta = classifier_meta(profile, result, sigmas, ds, args.dataset)
    path = save_classifier(model, out_path, meta)
    print(f"wrote {path} ({result['seconds']:.0f} s, {result['images_per_second']:.0f} images/s, final loss "
          f"{result['final_loss']:.3f})")
    return 0


def _is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc)))


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every error the command line can meet ends in one line that says what to do."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): nothing more was written; `train` keeps its last checkpoint and continues with "
              "--resume", file=sys.stderr)
        return 130
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if _is_out_of_memory(exc):
            print(f"error: out of memory ({str(exc).splitlines()[0][:160]}): lower --batch-size (train) or --n "
                  "(sample), or use --device cpu", file=sys.stderr)
            return 4
        raise
    except OSError as exc:  # permissions, a full disk, a path that is not a folder
        print(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''} ({exc.__class__.__name__}); "
              "check the paths given to --out, --data-root and --checkpoint", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
