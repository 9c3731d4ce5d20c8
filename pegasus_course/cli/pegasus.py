"""`pegasus-course pegasus`: rows of winged horses interpolated between two samples (eq. 4)."""

from __future__ import annotations

import time
from pathlib import Path

from .common import (DEVICE_HELP, HelpFormatter, MAX_SEED, UsageError, bounded_int, check_coarser, classifier_path,
                     device_name,
                     guidance_scale, load_classifier_for, load_score, non_negative_int, num_scales, path_arg, steps_each,
                     value_or)
from .outputs import replacing, run_writing_images


def add_parser(sub):
    p = sub.add_parser("pegasus", help="interpolate between two samples (eq. 4) to make winged horses",
                       formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course pegasus --seeds 8 3 --n 7 --out outputs/first-pegasus\n"
                               "  pegasus-course pegasus --auto --ends guidance --pairs 4"))
    p.add_argument("--checkpoint", type=path_arg, default=None,
                   help="checkpoint file, or a folder of resume shards (default: the shipped model)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", type=non_negative_int, nargs=2, metavar=("SEED1", "SEED2"), help="the two end samples' seeds")
    g.add_argument("--auto", action="store_true", help="choose the ends automatically (the default), see --ends")
    p.add_argument("--ends", choices=["selection", "guidance", "random"], default=None,
                   help="how --auto chooses the ends: `selection` samples --candidates images and takes the most "
                   "confident horse and bird; `guidance` asks for a horse and a bird with classifier guidance; "
                   "`random` takes seeded random pairs (may be horse-horse). Default: selection when a classifier "
                   "is available, else random")
    p.add_argument("--pairs", type=bounded_int(1000, "rows"), default=None,
                   help="rows to make with --auto (default: 4)")
    p.add_argument("--candidates", type=bounded_int(100_000, "samples to choose from"), default=None,
                   help="samples to choose from with --ends selection "
                   "(default: 4 per row, at least 8)")
    p.add_argument("--classifier", type=path_arg, default=None,
                   help="noise-conditional classifier checkpoint for --ends selection or guidance (default: the "
                   "shipped one)")
    p.add_argument("--guidance-scale", type=guidance_scale, default=None,
                   help="classifier guidance scale for --ends guidance (default: 3)")
    p.add_argument("--seed", type=non_negative_int, default=None, help="first seed used by --auto (default: 0)")
    p.add_argument("--n", type=bounded_int(1000, "N + 2 images a row; the paper uses 15"), default=15,
                   help="N of eq. 4: each row has N + 2 images")
    p.add_argument("--steps-each", type=steps_each, default=5, help="T, Langevin steps per noise level")
    p.add_argument("--num-scales", type=num_scales, default=None, help="use a coarser schedule of L levels (default: trained)")
    p.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP)
    p.add_argument("--out", type=path_arg, default="outputs/pegasus", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the images of an earlier pegasus or sample run in --out (removed, and listed)")
    p.set_defaults(func=run)


def _choose_ends(args, model, schedule):
    """The --auto ends: (pairs of seeds, guidance or None, a sentence saying how they were chosen, the candidate
    samples that selection chose from or None)."""
    from ..classifier import class_index, predict_proba, select_pairs
    from ..generate import Guidance, generate

    ends = _ends(args)
    if args.ends is None and ends == "random":
        print("no classifier checkpoint, so the ends are random pairs (train one with "
              "`pegasus-course train-classifier` to guarantee a horse and a bird)")
    seeds = [(args.seed + 2 * i, args.seed + 2 * i + 1) for i in range(args.pairs)]
    if ends == "random":
        return (seeds, None, f"--ends random: {len(seeds)} seeded random pairs (ends may be horse-horse or bird-bird)",
                None)
    clf = load_classifier_for(args, model, guiding=ends == "guidance")
    if ends == "guidance":
        return seeds, Guidance(clf, args.guidance_scale), (
            f"--ends guidance: each row asks for a horse at k = 0 and a bird at k = N + 1 (classifier guidance, "
            f"scale {args.guidance_scale:g})"), None
    n_cand = value_or(args.candidates, max(8, 4 * args.pairs))
    cand = list(range(args.seed, args.seed + n_cand))
    print(f"--ends selection: sampling {n_cand} candidates (seeds {cand[0]}..{cand[-1]}) to choose the ends from")
    candidates = generate(model, cand, schedule, cache=False)  # a command computes afresh
    probs = predict_proba(clf, candidates)
    chosen = select_pairs(probs, clf.config.class_names, args.pairs, "horse", "bird")
    if len(set(chosen)) < len(chosen):  # too few horses or birds among the candidates: the best ones are reused
        print(f"note: the {n_cand} candidates give only {len(set(chosen))} different horse-bird pairs for --pairs "
              f"{args.pairs}, so some rows repeat; raise --candidates for as many different rows")
    h, b = class_index(clf, "horse"), class_index(clf, "bird")
    detail = ", ".join(f"horse seed {cand[i]} (p={probs[i, h]:.2f}) -> bird seed {cand[j]} (p={probs[j, b]:.2f})"
                       for i, j in chosen)
    return [(cand[i], cand[j]) for i, j in chosen], None, f"--ends selection: {detail}", candidates


def _ends(args) -> str:
    """How --auto chooses the ends: --ends, else selection when a classifier is there, else random."""
    from ..classifier import DEFAULT_CLASSIFIER

    if args.ends is not None:
        return args.ends
    return "selection" if args.classifier is not None or DEFAULT_CLASSIFIER.is_file() else "random"


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others (or contradicts them)."""
    if args.seeds and args.seeds[0] == args.seeds[1]:
        raise UsageError(f"--seeds {args.seeds[0]} {args.seeds[1]}: the two ends must be different samples (eq. 4 "
                         "mixes two independent noise tapes); pick two different seeds.")
    auto_only = [o for o, v in (("--ends", args.ends), ("--pairs", args.pairs), ("--candidates", args.candidates),
                                ("--seed", args.seed), ("--classifier", args.classifier),
                                ("--guidance-scale", args.guidance_scale)) if v is not None]
    if args.seeds and auto_only:
        named = " and ".join(auto_only)
        raise UsageError(f"{named} choose{'s' if len(auto_only) == 1 else ''} the ends with --auto; with --seeds the "
                         f"one row goes from seed {args.seeds[0]} to seed {args.seeds[1]}: drop {named}, or --seeds.")
    if not args.seeds:
        ends = _ends(args)
        why = f"the ends here are chosen by {ends}" + (" (no classifier checkpoint)" if args.ends is None else "")
        for option, value, applies in (("--candidates", args.candidates, ("selection",)),
                                       ("--guidance-scale", args.guidance_scale, ("guidance",)),
                                       ("--classifier", args.classifier, ("selection", "guidance"))):
            if value is not None and ends not in applies:
                raise UsageError(f"{option} applies to --ends {' and '.join(applies)} only; {why}: drop {option}"
                                 f"{', or add --ends guidance' if applies == ('guidance',) else ''}.")
        if ends == "guidance" and args.guidance_scale == 0:
            raise UsageError("--guidance-scale 0 guides nothing, so --ends guidance would ask for no horse and no "
                             "bird: give a positive --guidance-scale (3 is the default), or use --ends random.")
        if ends in ("selection", "guidance"):
            classifier_path(args)  # there, before any sampling
    args.pairs = value_or(args.pairs, 4)
    args.seed = value_or(args.seed, 0)
    args.guidance_scale = value_or(args.guidance_scale, 3.0)
    last = args.seed + max(2 * args.pairs, value_or(args.candidates, max(8, 4 * args.pairs))) - 1
    if not args.seeds and last > MAX_SEED:
        raise UsageError(f"--seed {args.seed} with --pairs {args.pairs} uses seeds up to {last}, beyond 2^63 - 1, the "
                         "largest seed: lower --seed.")


def run(args) -> int:
    """Check the options that choose the ends, refuse another run's images in --out without --overwrite, and
    make the rows with --out locked."""
    check_options(args)
    return run_writing_images(args, _run)


def _run(args, out: Path, stale: list[Path]) -> int:
    from ..generate import pegasus_k, pegasus_rows, schedule_from_meta
    from ..plotting import save_grid, save_images

    model, ckpt, path = load_score(args)
    check_coarser(args.num_scales, ckpt.meta, path)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, args.num_scales)
    guidance, candidates = None, None
    if args.seeds:
        pairs = [tuple(args.seeds)]
        how = f"seeds {args.seeds[0]} and {args.seeds[1]}"
    else:
        pairs, guidance, how, candidates = _choose_ends(args, model, schedule)
    print(f"pegasus rows from {path} (step {ckpt.step}), {how}; N={args.n}, L={schedule.num_scales}, "
          f"T={schedule.n_steps_each}")
    from ..device import describe_sampling_mode

    print(describe_sampling_mode(next(model.parameters()).device))
    t0 = time.perf_counter()
    rows = pegasus_rows(model, pairs, args.n, schedule, guidance=guidance, cache=False)  # (P, N + 2, 3, H, W)
    print(f"{rows.shape[0] * rows.shape[1]} images took {time.perf_counter() - t0:.1f} s")
    k = min(pegasus_k(model.config.image_size), args.n)
    with replacing(out, stale) as stage:  # the earlier images stay until these are written
        if candidates is not None:
            save_grid(candidates, stage / "candidates.png", nrow=8)
        save_grid(rows.flatten(0, 1), stage / "rows.png", nrow=args.n + 2)
        save_grid(rows[:, k], stage / "pegasus.png", nrow=min(8, len(pairs)))
        files = save_images(rows[:, k], stage / "images", prefix=f"pegasus-k{k}")
    if candidates is not None:
        print(f"wrote {out / 'candidates.png'} (the candidates, seeds {args.seed} onwards, row by row)")
    print(f"wrote {out / 'rows.png'} (whole rows, k = 0..{args.n + 1}), {out / 'pegasus.png'} (k = {k} of N = "
          f"{args.n}) and {len(files)} image{'s' if len(files) != 1 else ''} in {out / 'images'}")
    return 0
