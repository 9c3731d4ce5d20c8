"""`pegasus-course train`: DSM training of the score U-Net, with checkpoints, resume and previews."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import torch

from .common import (CKPT_NAME, DEVICE_HELP, HelpFormatter, UsageError, check_download, check_sigma_order, data_source,
                     device_name, ema_rate, learning_rate, non_negative_int, num_scales, path_arg, positive_float,
                     positive_int, precision_name, res_blocks, sigma_level, value_or, width)
from .outputs import (check_out_dir, earlier_outputs, folder_lock, output_folder, recover_set_aside, refuse_or_clear,
                      set_aside)


def add_parser(sub):
    p = sub.add_parser("train", help="train the score U-Net with DSM on horses and birds",
                       description="Train the score U-Net with denoising score matching (paper eq. 2). Sizes "
                       "default to the profile's; any option given overrides them. Works under "
                       "`torchrun --nproc_per_node N` (DistributedDataParallel).",
                       formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course train --dataset folder --data-root data/cifar10-jpg --profile cpu --out runs/mine\n"
                               "  pegasus-course train --out runs/mine --resume --steps 20000   # continue the same run"))
    p.add_argument("--dataset", choices=["cifar10", "stl10", "folder"], default=None,
                   help="image source (default: PEGASUS_DATA_SOURCE or cifar10)")
    p.add_argument("--data-root", type=path_arg, default=None,
                   help="where the data lives (default: PEGASUS_DATA_ROOT or the cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 / STL-10")
    p.add_argument("--classes", nargs="+", default=None,
                   help="class names to train on (default: horse bird; with --resume, the checkpoint's)")
    p.add_argument("--image-size", type=int, choices=[32, 48, 64], default=None,
                   help="image side (default: 32 for CIFAR-10, 48 for STL-10, native for folders)")
    p.add_argument("--profile", default=None, help="gpu | cpu | ci (default: PEGASUS_PROFILE or by device)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=positive_int, default=None, help="optimisation steps (default: the profile's)")
    g.add_argument("--epochs", type=positive_float, default=None, help="passes over the data instead of --steps")
    p.add_argument("--batch-size", type=positive_int, default=None, help="batch size (paper: 128 CIFAR-10, 64 STL-10)")
    p.add_argument("--lr", type=learning_rate, default=1e-4, help="Adam learning rate")
    p.add_argument("--ema-decay", type=ema_rate, default=0.999, help="EMA rate, in [0, 1)")
    p.add_argument("--grad-clip", type=positive_float, default=None, help="clip the gradient norm to this value")
    p.add_argument("--base-channels", type=width, default=None, help="U-Net width (default: the profile's)")
    p.add_argument("--num-res-blocks", type=res_blocks, default=None, help="ResBlocks per level (default: the profile's)")
    p.add_argument("--num-scales", type=num_scales, default=None, help="L, noise levels (default: the profile's)")
    p.add_argument("--sigma-max", type=sigma_level, default=None, help="sigma_1 (default: the profile's, 50)")
    p.add_argument("--sigma-min", type=sigma_level, default=None, help="sigma_L (default: the profile's, 0.01)")
    p.add_argument("--schedule", choices=["profile", "data"], default="profile",
                   help="profile: the profile's sigma_1 and L (the paper's 50 and 232 for CIFAR-10); data: sigma_1 "
                   "and L computed from the training images (NCSNv2 techniques 1 and 2, as `pegasus-course schedule` "
                   "prints them), written to the checkpoint")
    p.add_argument("--out", type=path_arg, default="runs/train",
                   help="output folder (checkpoint, losses, sample grids)")
    p.add_argument("--resume", type=resume_arg, nargs="?", const="auto", default=None,
                   help="continue from a checkpoint (no value, or auto: OUT/checkpoint.safetensors)")
    p.add_argument("--overwrite", action="store_true",
                   help="start from scratch in an --out that holds another run: its checkpoint, losses.json, "
                   "colour.json and sample grids are set aside when training starts, and removed (and listed) once "
                   "this run has written its checkpoint (put back if it writes none)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the initial weights, data order and noise")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune"), default=None,
                   help="torch.compile mode with --compile (default: default): reduce-overhead replays the step's "
                   "kernels as CUDA graphs")
    p.add_argument("--channels-last", action="store_true", help="use the channels_last memory format")
    p.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP + "; torchrun: each process's GPU")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--precision", type=precision_name, default="auto",
                      help="auto | bf16 | fp16 | fp32. auto: bf16 autocast on GPUs with native bf16 (compute "
                      "capability 8.0+), fp16 autocast with a gradient scaler on older CUDA GPUs (T4, V100), "
                      "fp32 on the CPU and mps")
    prec.add_argument("--no-bf16", action="store_true", help="the same as --precision fp32")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop cleanly with a checkpoint when this much time has passed")
    p.add_argument("--sample-every", type=positive_int, default=None, help="steps between EMA sample grids")
    p.add_argument("--checkpoint-every", type=positive_int, default=2000, help="steps between checkpoints")
    p.add_argument("--track-colour", action="store_true",
                   help="every --sample-every steps, record the per-channel colour statistics of 16 samples from "
                   "the EMA and the live weights, with and without the denoising step (OUT/colour.json)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


DATA_OPTIONS = {"dataset": ("source", "--dataset"), "data_root": ("root", "--data-root"),
                "classes": ("classes", "--classes"), "image_size": ("image_size", "--image-size")}


# What each data option falls back to when neither the command line nor the checkpoint's record gives it.
DATA_DEFAULTS = {"dataset": "PEGASUS_DATA_SOURCE, else cifar10", "data_root": "PEGASUS_DATA_ROOT, else the cache",
                 "classes": "horse bird"}


def _resume_data(args, prev, say) -> None:
    """With --resume, a data option not given is the checkpoint's own (its record in meta["data"]), and says so;
    one given that differs from the record is named, so a run never silently continues on other data."""
    record = prev.meta.get("data") or {}
    changed, reused, missing = [], [], []
    for attr, (key, flag) in DATA_OPTIONS.items():
        given, recorded = getattr(args, attr), record.get(key)
        shown = " ".join(recorded) if key == "classes" and recorded else recorded
        if given is None and key == "image_size":
            continue  # the images are read at their own size; the network's size check refuses another
        if given is None and recorded is not None:
            if key == "root" and not Path(recorded).is_dir():
                missing.append(f"{flag} (the recorded {recorded} is not a folder here: {DATA_DEFAULTS[attr]})")
                continue
            setattr(args, attr, list(recorded) if key == "classes" else recorded)
            reused.append(f"{flag} {shown}")
        elif given is not None and recorded is not None and not _same(key, given, recorded):
            changed.append(f"{flag} {shown} -> {' '.join(given) if key == 'classes' else given}")
        elif given is None:
            missing.append(f"{flag} ({DATA_DEFAULTS[attr]})")
    if reused:
        say(f"resuming on the data {prev.path} records: {'; '.join(reused)}")
    if changed:
        say(f"note: resuming on other data than {prev.path} records ({'; '.join(changed)}): the network continues "
            "from what it learnt on the recorded data; drop these options to continue on the checkpoint's own")
    if missing:
        say(f"note: {prev.path} does not record its {'; '.join(missing)}: the defaults are used; pass these options "
            "to choose the data")
    if args.download and (args.dataset or "") == "folder":  # known only now, from the record
        check_download(args)


def _same(key: str, given, recorded) -> bool:
    if key == "root":
        return Path(given).expanduser().resolve() == Path(recorded).expanduser().resolve()
    return (list(given) if key == "classes" else given) == recorded


def resume_arg(text: str) -> Path | str:
    """--resume's value: ``auto`` (OUT's own checkpoint, as with no value) or a path (``~`` expanded)."""
    return "auto" if text == "auto" else path_arg(text)


# The optimisation settings a resumed leg is compared with (any difference is named and recorded in its leg).
RESUMED_SETTINGS = ("batch_size", "lr", "seed", "grad_clip", "ema_decay")


def _resume_checks(prev, schedule, cfg, say, precision: str = "", profile: str = "") -> list[dict]:
    """Compare a resumed run with its checkpoint: refuse another schedule, note other settings.

    Returns the history of legs to store in the new checkpoint (one entry per run that wrote it).
    """
    from ..generate import schedule_from_meta

    old = schedule_from_meta(prev.meta, say=None).to_dict()  # a partial record filled as sampling fills it
    if prev.meta.get("schedule") and old != schedule.to_dict():
        raise UsageError(
            f"{prev.path} was trained with the schedule {old}, this run asks for {schedule.to_dict()}: a network "
            "conditioned on other noise levels cannot continue. Drop --sigma-max/--sigma-min/--num-scales/--schedule "
            "data (the checkpoint's schedule is used when resuming) or start a new run with another --out.")
    legs = list(prev.meta.get("legs") or [])
    if not legs and "train_config" in prev.meta:  # written before legs were recorded: keep what it knew
        tc = prev.meta["train_config"]
        legs = [{"start_step": None, "end_step": prev.step, "batch_size": tc.get("batch_size"), "lr": tc.get("lr"),
                 "seed": tc.get("seed"), "note": "last leg before legs were recorded"}]
    # the last leg's settings: its record, else the checkpoint's train_config (written by every leg)
    last = {**(prev.meta.get("train_config") or {}), **(legs[-1] if legs else {})}
    changed = [f"{name} {last.get(name)} -> {getattr(cfg, name)}" for name in RESUMED_SETTINGS
               if name in last and last.get(name) != getattr(cfg, name)]
    if "profile" in last and last["profile"] != profile:
        changed.append(f"profile {last['profile']} -> {profile}")
    if precision and last.get("precision", precision) != precision:
        changed.append(f"precision {last['precision']} -> {precision}")
    if changed:
        say(f"note: resuming with other settings than the checkpoint's last leg ({'; '.join(changed)}); recorded in "
            "the checkpoint's history of legs")
    return legs


# What a run writes into --out: another run's files there are refused, or removed with --overwrite.
RUN_OUTPUTS = (CKPT_NAME, "losses.json", "colour.json", "samples/step-*.png")


def _data_schedule(args, ds, sigma_min: float, n_steps_each: int, say):
    """--schedule data: sigma_1, L and eps from the training images (techniques 1, 2, 4), printed before training."""
    from ..schedule_from_data import data_schedule

    ds_sched = data_schedule(ds.images, sigma_min=sigma_min, n_steps_each=n_steps_each)
    bound = "exact" if ds_sched.distance.exact else f"a lower bound; at most {ds_sched.distance.upper:.2f}"
    say(f"schedule from the {len(ds)} training images (NCSNv2 techniques 1, 2, 4): sigma_1 = {ds_sched.sigma_1:.2f} "
        f"({bound}), sigma_L = {ds_sched.sigma_L:g}, L = {ds_sched.num_scales} (overlap {ds_sched.overlap:.2f}), "
        f"eps = {ds_sched.eps:.3g} for T = {ds_sched.n_steps_each}; {ds_sched.evaluations:,} network evaluations "
        "per sample")
    return ds_sched


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others (or contradicts them)."""
    check_download(args)
    check_sigma_order(args)
    if args.compile_mode is not None and not args.compile:
        raise UsageError(f"--compile-mode {args.compile_mode} is torch.compile's mode and applies with --compile only: "
                         "add --compile, or drop --compile-mode.")
    args.compile_mode = value_or(args.compile_mode, "default")
    if args.schedule == "data" and (args.sigma_max is not None or args.num_scales is not None):
        given = " and ".join(o for o, v in (("--sigma-max", args.sigma_max), ("--num-scales", args.num_scales))
                             if v is not None)
        raise UsageError(f"--schedule data computes sigma_1 and L from the images, so {given} would be ignored: drop "
                         f"{given}, or drop --schedule data to set them yourself.")
    own = Path(args.out) / CKPT_NAME
    if args.overwrite and args.resume is not None and (args.resume == "auto" or Path(args.resume).resolve() ==
                                                       own.resolve()):
        raise UsageError(f"--overwrite starts --out {args.out} afresh (its checkpoint removed), --resume continues "
                         "that checkpoint: drop --overwrite to continue it, or --resume to start again.")


def run(args) -> int:
    """Train with --out locked (rank 0 under torchrun), so a second command writing there is refused."""
    check_options(args)
    with output_folder(Path(args.out)) as out:  # a failed run leaves no empty --out behind
        with folder_lock(out) if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext():
            with contextlib.ExitStack() as until_done:
                return _run(args, until_done)


def _run(args, until_done: contextlib.ExitStack) -> int:
    from .. import data as data_mod
    from ..checkpoints import load_checkpoint
    from ..generate import Schedule, generate, schedule_from_meta
    from ..nn import ScoreUNet, ScoreUNetConfig, count_parameters
    from ..plotting import save_grid
    from ..sampling import num_score_evaluations
    from ..profiles import get_profile
    from ..device import place_model, training_precision
    from ..training import TrainConfig, TrainingInterrupted, resume_state, setup_distributed, train, train_precision

    profile = get_profile(args.profile)
    out = check_out_dir(Path(args.out))
    ckpt_path = out / CKPT_NAME
    if int(os.environ.get("RANK", "0")) == 0:
        recover_set_aside(out)
    prev = None
    if args.resume:
        src = ckpt_path if args.resume == "auto" else Path(args.resume)
        if args.resume == "auto" and not ckpt_path.is_file():
            raise UsageError(f"--resume: no checkpoint in --out {out} to continue ({ckpt_path} is missing). Start a "
                             "new run without --resume, or pass --resume PATH to continue another checkpoint.")
        prev = load_checkpoint(src)
        recorded = prev.meta.get("profile")
        chosen = args.profile is not None or os.environ.get("PEGASUS_PROFILE")
        if not chosen and recorded and recorded != profile.name:  # its sizes, as its data and levels are kept
            profile = get_profile(recorded)
            print(f"resuming with the profile {prev.path} records, {recorded!r} (--profile chooses another)")
    elif ckpt_path.is_file() and not args.overwrite:
        raise UsageError(f"--out {out} already holds a checkpoint ({ckpt_path}). Add --resume to continue it, "
                         "--overwrite to start again from scratch (the old run's checkpoint, losses and sample grids "
                         "are removed once the new run writes its checkpoint), or choose another --out.")
    if ckpt_path.exists() and not ckpt_path.is_file():
        raise UsageError(f"{ckpt_path} is a folder, not a checkpoint file: move it away or choose another --out.")
    if prev is not None and "model_config" not in prev.meta:
        raise UsageError(f"--resume {prev.path} is not a score network's checkpoint (kind: "
                         f"{prev.meta.get('kind', 'unknown')}): resume from a checkpoint written by `train`.")
    recorded_size = (prev.meta.get("model_config") or {}).get("image_size") if prev is not None else None
    if args.image_size is not None and recorded_size is not None and args.image_size != recorded_size:
        raise UsageError(f"--image-size {args.image_size}: the network of --resume {prev.path} makes "
                         f"{recorded_size}px images; drop --image-size (or give {recorded_size}) to continue it.")
    continuing = prev is not None and Path(prev.path).resolve() == ckpt_path.resolve()
    stale = [] if continuing else refuse_or_clear(
        out, earlier_outputs(out, RUN_OUTPUTS), args.overwrite,
        what="another run's files" + (f", not those of --resume {prev.path}" if prev is not None else ""))
    rank, world, device = setup_distributed(args.device)
    say = print if rank == 0 else (lambda *a, **k: None)
    asked_precision = "fp32" if args.no_bf16 else args.precision
    try:  # refused before any data is read
        training_precision(device, asked_precision)
    except ValueError as exc:
        raise UsageError(f"--precision {asked_precision}: {exc}") from None
    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    if prev is not None:
        _resume_data(args, prev, say)
    args.classes = args.classes or ["horse", "bird"]
    root, split = data_source(args)
    ds = data_mod.load_dataset(args.dataset, root, split=split, classes=args.classes, image_size=args.image_size,
                               download=args.download, max_images=None)
    if profile.max_train_images:  # the quick profiles' cut keeps every class
        ds = data_mod.balanced_subset(ds, max(1, profile.max_train_images // len(ds.classes)))
    for line in data_mod.class_balance_notes(ds):
        say(line)
    size = ds.image_size
    batch = value_or(args.batch_size, 64 if args.dataset == "stl10" and profile.name == "gpu" else profile.batch_size)
    # a resumed run keeps its checkpoint's levels (a partial record filled, and said, as sampling does)
    old = schedule_from_meta(prev.meta, say=say).to_dict() if prev is not None else {}
    from_data = _data_schedule(args, ds, value_or(args.sigma_min, old.get("sigma_min", profile.sigma_min)),
                               profile.n_steps_each, say) if args.schedule == "data" else None
    schedule = from_data.schedule() if from_data is not None else Schedule(
        value_or(args.sigma_max, old.get("sigma_max", profile.sigma_max)),
        value_or(args.sigma_min, old.get("sigma_min", profile.sigma_min)),
        value_or(args.num_scales, old.get("num_scales", profile.num_scales)), profile.n_steps_each)
    if not schedule.sigma_max > schedule.sigma_min:
        raise UsageError(f"--sigma-max ({schedule.sigma_max:g}) must be above --sigma-min ({schedule.sigma_min:g}).")
    torch.manual_seed(args.seed)
    if prev is not None and "model_config" in prev.meta:
        config = ScoreUNetConfig.from_dict(prev.model_config)
        if args.base_channels is not None or args.num_res_blocks is not None:
            wanted = ScoreUNetConfig.for_image_size(size, value_or(args.base_channels, profile.base_channels),
                                                    num_res_blocks=value_or(args.num_res_blocks, profile.num_res_blocks))
            if wanted != config:
                raise UsageError(f"--base-channels/--num-res-blocks differ from the checkpoint's network "
                                 f"({config.base_channels} channels, {config.num_res_blocks} ResBlocks): drop them "
                                 "to continue, or start a new run with another --out.")
    else:
        config = ScoreUNetConfig.for_image_size(size, value_or(args.base_channels, profile.base_channels),
                                                num_res_blocks=value_or(args.num_res_blocks, profile.num_res_blocks))
    if config.image_size != size:
        raise UsageError(f"The checkpoint's network makes {config.image_size}px images but the data is {size}px: "
                         f"pass --image-size {config.image_size}.")
    model = place_model(ScoreUNet(config), device, say=say)
    device = next(model.parameters()).device
    per_epoch = (len(ds) // world) // batch
    if per_epoch == 0:
        raise UsageError(f"{len(ds)} images cannot fill one batch of {batch}{f' per process ({world})' if world > 1 else ''}: "
                         "lower --batch-size.")
    steps = args.steps if args.steps is not None else (
        max(1, int(round(args.epochs * per_epoch))) if args.epochs is not None else profile.train_steps)
    if args.track_colour and steps < value_or(args.sample_every, profile.sample_every):
        raise UsageError(f"--track-colour records the colours every --sample-every "
                         f"{value_or(args.sample_every, profile.sample_every)} steps, and this run ends at step {steps}, "
                         f"so it would record nothing: lower --sample-every to {steps} or less, or drop --track-colour.")
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=args.lr, ema_decay=args.ema_decay, grad_clip=args.grad_clip,
                      seed=args.seed, precision=asked_precision, compile=args.compile,
                      compile_mode=args.compile_mode,
                      channels_last=args.channels_last,
                      checkpoint_every=args.checkpoint_every, max_minutes=args.max_minutes,
                      log_every=min(25, max(1, steps // 4)))
    precision = train_precision(cfg, device)
    state = None
    legs: list[dict] = []
    if prev is not None:
        legs = _resume_checks(prev, schedule, cfg, say, precision.name, profile.name)
        state = resume_state(prev, model, cfg)
        say(f"resumed from {prev.path} at step {state.step}")
        if not prev.part("optim"):
            say(f"note: {prev.path} holds no optimizer state (an exported file keeps one set of weights): Adam's "
                "moments restart from zero, so the first steps move the weights as at the start of a run"
                + ("" if prev.part("model") else "; the live weights start from the EMA weights it holds"))
        if state.step >= steps:
            raise UsageError(f"the checkpoint is already at step {state.step} and --steps is {steps}: pass a larger "
                             "--steps (the total to reach, not the steps to add) to continue.")
    legs.append({"start_step": state.step if state is not None else 0, "batch_size": batch, "lr": args.lr,
                 "seed": args.seed, "grad_clip": cfg.grad_clip, "ema_decay": cfg.ema_decay, "world_size": world, "device": str(device.type), "precision": precision.name,
                 "profile": profile.name, "compile": args.compile_mode if args.compile else False})
    meta = {"schedule": schedule.to_dict(), "profile": profile.name, "legs": legs,
            "data": {"source": args.dataset, "classes": list(args.classes), "image_size": size,
                     "num_images": len(ds), "split": split,
                     # where the images were (a folder of one's own), for --resume; `export` leaves it out
                     **({"root": str(Path(root).expanduser().resolve())} if args.dataset == "folder" else {})}}
    if from_data is not None:  # how sigma_1 and L were computed, for `pegasus-course doctor` and the learner
        meta["data_schedule"] = from_data.to_dict()
    say(f"{profile.name} profile on {device} (x{world}), {precision.describe()} ({precision.reason}); {len(ds)} images "
        f"{size}x{size}; {count_parameters(model):,} parameters; L={schedule.num_scales}; {steps} steps of batch {batch}")
    if args.compile:  # the first step compiles the network: a minute or more without a bar moving
        say(f"torch.compile (mode {args.compile_mode}): the first step compiles the network first, a minute or "
            "more; Ctrl-C is taken at once, and stops after that step")
    sample_every = value_or(args.sample_every, profile.sample_every)
    preview = schedule  # annealed Langevin needs the full schedule: coarse ones leave the samples noisy

    tracker = None
    if args.track_colour and rank == 0:
        from ..evaluation import ColourTracker, colour_stats
        from ..generate import colour_probe

        tracker = ColourTracker(colour_stats(ds.images), colour_probe(preview, range(16)), sample_every)

    previewed = [(state.step if state is not None else 0) // sample_every if sample_every else 0]

    evaluations = num_score_evaluations(preview.num_scales, preview.n_steps_each)
    sampling = (f"16 images from the EMA weights over L = {preview.num_scales} levels x T = {preview.n_steps_each} "
                f"({evaluations:,} network evaluations)")

    def on_step(st):  # one preview per sample_every steps, at the first host sync past each multiple
        if rank == 0 and sample_every and st.step // sample_every > previewed[0] and st.step < cfg.steps:
            previewed[0] = st.step // sample_every
            say(f"step {st.step}: sampling a preview of {sampling}; Ctrl-C stops it between two levels", flush=True)
            imgs = generate(st.ema, range(16), preview, progress=False, cache=False)  # weights of one moment
            save_grid(imgs, out / "samples" / f"step-{st.step:07d}.png", nrow=8)
        if tracker is not None:
            tracker(st)
            tracker.save(out / "colour.json")

    if rank == 0:  # the earlier run's files stay until this run has written its checkpoint
        until_done.enter_context(set_aside(out, stale, RUN_OUTPUTS, ckpt_path, say))
    t0 = time.time()
    try:
        state = train(model, ds.images, schedule.sigmas(), cfg, state=state, on_step=on_step,
                      checkpoint_path=ckpt_path, meta=meta, progress=not args.no_progress)
    except TrainingInterrupted as stop:
        if ckpt_path.is_file():
            say(f"interrupted at step {stop.step}: {stop.saved or 'no checkpoint written'}; continue with "
                f"`pegasus-course train --out {out} --resume` and the same options")
        else:
            say(f"interrupted at step {stop.step}: {stop.saved or 'no checkpoint written'}; this run wrote no "
                "checkpoint, so run the same command again to start over"
                + (" (the earlier run's files are put back)" if stale else ""))
        return 128 + stop.signum  # 130 for Ctrl-C, 143 for SIGTERM
    if rank == 0:
        (out / "losses.json").write_text(json.dumps(state.losses))
        say(f"step {state.step}: sampling the final {sampling}", flush=True)
        final = generate(state.ema, range(16), preview, progress=not args.no_progress, cache=False)
        grid = save_grid(final, out / "samples" / f"step-{state.step:07d}.png", nrow=8)
        tail = state.losses[-100:]
        say(f"step {state.step}: mean loss of the last {len(tail)} steps {sum(tail) / max(len(tail), 1):.4f}; "
            f"{state.images_per_second:.0f} images/s; {time.time() - t0:.0f} s")
        if state.precision == "fp16":
            say(f"fp16: the gradient scaler skipped {state.skipped_steps} step(s) of the run for overflowing "
                "gradients (a few at the start are normal: the scale starts high and halves at each overflow)")
        if state.stop_reason:
            say(f"stopped early: {state.stop_reason}")
        say(f"wrote {ckpt_path} (resume with --resume), {out / 'losses.json'}, {grid}")
    return 0
