"""`pegasus-course sample`: images from a checkpoint by annealed Langevin dynamics."""

from __future__ import annotations

import time
from pathlib import Path

from .common import (DEVICE_HELP, HelpFormatter, MAX_SEED, UsageError, bounded_int, check_coarser, classifier_path,
                     device_name,
                     guidance_scale, load_classifier_for, load_score, non_negative_int, num_scales, path_arg, steps_each,
                     value_or)
from .outputs import replacing, run_writing_images


def add_parser(sub):
    p = sub.add_parser("sample", help="sample images from a checkpoint with annealed Langevin dynamics",
                       formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course sample --n 64 --out outputs/samples          # the shipped model\n"
                               "  pegasus-course sample --checkpoint runs/mine/checkpoint.safetensors --class horse --n 16"))
    p.add_argument("--checkpoint", type=path_arg, default=None,
                   help="checkpoint file, or a folder of resume shards (default: the shipped model)")
    p.add_argument("--n", type=bounded_int(100_000, "samples; FID uses 50,000"), default=16, help="number of samples")
    p.add_argument("--seed", type=non_negative_int, default=0, help="sample i uses seed SEED + i")
    p.add_argument("--steps-each", type=steps_each, default=5, help="T, Langevin steps per noise level")
    p.add_argument("--num-scales", type=num_scales, default=None, help="use a coarser schedule of L levels (default: trained)")
    p.add_argument("--no-denoise", action="store_true", help="skip the final denoising step")
    p.add_argument("--live", action="store_true", help="use the live weights instead of the EMA")
    p.add_argument("--class", dest="cls", default=None, metavar="NAME",
                   help="ask for this class (horse or bird) with classifier guidance")
    p.add_argument("--classifier", type=path_arg, default=None,
                   help="noise-conditional classifier checkpoint for --class (default: the shipped one)")
    p.add_argument("--guidance-scale", type=guidance_scale, default=None,
                   help="classifier guidance scale for --class (default: 3)")
    p.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP)
    p.add_argument("--out", type=path_arg, default="outputs/samples", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the images of an earlier sample or pegasus run in --out (removed, and listed)")
    p.set_defaults(func=run)


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others (or contradicts them)."""
    if args.seed + args.n - 1 > MAX_SEED:
        raise UsageError(f"--seed {args.seed} with --n {args.n} goes beyond 2^63 - 1, the largest seed: lower --seed "
                         "or --n.")
    unused = [o for o, v in (("--classifier", args.classifier), ("--guidance-scale", args.guidance_scale))
              if v is not None]
    if unused and not args.cls:
        raise UsageError(f"{' and '.join(unused)} guide{'s' if len(unused) == 1 else ''} the samples towards --class, "
                         f"and no --class is given, so no guidance would be used: add --class horse (or bird), or "
                         f"drop {' and '.join(unused)}.")
    args.guidance_scale = value_or(args.guidance_scale, 3.0)
    if args.cls and args.guidance_scale == 0:
        raise UsageError(f"--guidance-scale 0 guides nothing, so --class {args.cls} would be ignored: give a positive "
                         "--guidance-scale (3 is the default), or drop --class to sample unguided.")
    if args.cls:
        classifier_path(args)  # there, before any sampling


def run(args) -> int:
    """Refuse another run's images in --out without --overwrite; sample with --out locked."""
    check_options(args)
    return run_writing_images(args, _run)


def _run(args, out: Path, stale: list[Path]) -> int:
    from ..generate import generate, schedule_from_meta
    from ..plotting import save_grid, save_images

    model, ckpt, path = load_score(args)
    check_coarser(args.num_scales, ckpt.meta, path)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, args.num_scales)
    print(f"sampling {args.n} images from {path} (step {ckpt.step}) on {next(model.parameters()).device}: "
          f"L={schedule.num_scales}, T={schedule.n_steps_each}")
    from ..device import describe_sampling_mode

    print(describe_sampling_mode(next(model.parameters()).device))
    guidance, classes = None, None
    if args.cls:
        from ..generate import Guidance

        guidance = Guidance(load_classifier_for(args, model, guiding=True), args.guidance_scale)
        guidance.index(args.cls)
        classes = [args.cls] * args.n
        print(f"classifier guidance towards {args.cls!r}, scale {args.guidance_scale:g}")
    t0 = time.perf_counter()
    imgs = generate(model, range(args.seed, args.seed + args.n), schedule, denoise=not args.no_denoise,
                    guidance=guidance, classes=classes, cache=False)  # a command computes afresh
    print(f"{args.n} samples took {time.perf_counter() - t0:.1f} s")
    with replacing(out, stale) as stage:  # the earlier images stay until these are written
        save_grid(imgs, stage / "grid.png", nrow=min(8, args.n))
        files = save_images(imgs, stage / "images", prefix="seed", numbers=range(args.seed, args.seed + args.n))
    print(f"wrote {out / 'grid.png'} and {len(files)} image{'s' if len(files) != 1 else ''} in {out / 'images'}")
    return 0
