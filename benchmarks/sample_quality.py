"""Sample quality of a score checkpoint: Frechet distance, pegasus rate with random and guaranteed ends,
and colour statistics. Prints a table; the figures in RESULTS.md come from here.

* Frechet distance in the features of the course's fixed ten-class CIFAR-10 network (not Inception:
  comparable only within the course, and only at the same number of images), next to the floor
  (two disjoint sets of real test images of the same size) and a ceiling (uniform noise).
  Each distance is recorded with its 95% bootstrap interval.
* Ends rate (first called the pegasus rate): the share of rows whose ends the ten-class judge calls one
  horse and one bird, for random pairs, for pairs chosen by selection, and for classifier-guided ends.
  Selection reuses its best ends when the samples hold fewer horses (or birds) than rows: the record
  says how many distinct ends it used.
* Colour: each set's per-channel shift from the training images' mean, with its standard error.

    python benchmarks/sample_quality.py --n 64                      # the shipped checkpoint, GPU if present
    python benchmarks/sample_quality.py --checkpoint runs/train/checkpoint.safetensors --n 16 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pegasus_course import checkpoints, classifier, colour_evidence, data, evaluation
from pegasus_course.generate import Guidance, generate, schedule_from_meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="score checkpoint (default: the shipped one)")
    ap.add_argument("--classifier", default=None, help="horse/bird classifier (default: the shipped one)")
    ap.add_argument("--judge", default=None, help="ten-class network (default: the shipped one)")
    ap.add_argument("--n", type=int, default=64, help="samples per set (even)")
    ap.add_argument("--guidance-scale", type=float, default=3.0)
    ap.add_argument("--steps-each", type=int, default=5)
    ap.add_argument("--num-scales", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--data-root", default=None, help="image folder with test/horse, test/bird (default: PEGASUS_DATA_ROOT)")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="also write the figures as JSON (notebook 07 shows benchmarks/sample_quality.json)")
    args = ap.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n = args.n - args.n % 2
    model, ckpt = checkpoints.load_score_model(args.checkpoint, device=device)
    clf, _ = classifier.load_classifier(args.classifier, device=device)
    judge, _ = evaluation.load_feature_net(args.judge, device=device)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, args.num_scales)
    spec = data.default_data()
    root = args.data_root or spec.root
    test = data.load_dataset(spec.source, root, split="test", classes=("horse", "bird"), train=False)
    train = data.load_dataset(spec.source, root, split="train", classes=("horse", "bird"))
    print(f"checkpoint step {ckpt.step}; {n} samples per set; L={schedule.num_scales}, T={schedule.n_steps_each}; "
          f"{device}")

    t0 = time.perf_counter()
    samples = generate(model, range(n), schedule, progress=False, cache=False)  # timed: never a disk read
    t_plain = time.perf_counter() - t0
    half = ["horse"] * (n // 2) + ["bird"] * (n // 2)
    t0 = time.perf_counter()
    guided = generate(model, range(10_000, 10_000 + n), schedule, progress=False, cache=False,
                      guidance=Guidance(clf, args.guidance_scale), classes=half)
    t_guided = time.perf_counter() - t0

    p = evaluation.horse_probability(judge, samples)
    rate_random = evaluation.pegasus_rate(p[0::2], p[1::2])
    probs = classifier.predict_proba(clf, samples)
    distinct = {"horse": 0, "bird": 0}
    try:
        chosen = classifier.select_pairs(probs, clf.config.class_names, n // 2)
        rate_sel = evaluation.pegasus_rate(p[[i for i, _ in chosen]], p[[j for _, j in chosen]])
        distinct = {"horse": len({i for i, _ in chosen}), "bird": len({j for _, j in chosen})}
    except ValueError as exc:
        print(f"selection impossible: {exc}")
        rate_sel = float("nan")
    pg = evaluation.horse_probability(judge, guided)
    rate_guided = evaluation.pegasus_rate(pg[: n // 2], pg[n // 2:])

    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(test), generator=g)
    real_a, real_b = test.images[perm[:n]], test.images[perm[n:2 * n]]
    noise = torch.rand((n, 3, 32, 32), generator=g)
    feats_b = evaluation.extract_features(judge, real_b)
    fd, fd_interval = {}, {}
    for name, imgs in (("real test images (floor)", real_a), ("samples", samples.cpu()),
                       (f"guided samples (w={args.guidance_scale:g})", guided.cpu()), ("uniform noise (ceiling)", noise)):
        fd[name], lo, hi = evaluation.frechet_distance_interval(evaluation.extract_features(judge, imgs), feats_b)
        fd_interval[name] = [lo, hi]
    ref = evaluation.colour_stats(train.images)
    col = evaluation.colour_stats(samples)
    shifts = {name: colour_evidence.shift_from(imgs.cpu().clamp(0, 1), ref["mean"])
              for name, imgs in (("samples", samples), ("guided samples", guided))}

    print(f"\nsampling: {n} samples {t_plain:.1f} s, {n} guided samples {t_guided:.1f} s "
          f"(guidance overhead {t_guided / t_plain - 1:+.0%})")
    print("\n| Frechet distance, ten-class features, vs held-out test images | value |\n|---|---|")
    for name, v in fd.items():
        print(f"| {name} | {v:.2f} [{fd_interval[name][0]:.2f}, {fd_interval[name][1]:.2f}] |")
    print("\n| ends | pegasus rate (judged by the ten-class network) |\n|---|---|")
    print(f"| random pairs | {rate_random:.0%} |\n| selection (best horse and bird of {n}; {distinct['horse']} distinct "
          f"horse and {distinct['bird']} distinct bird ends) | {rate_sel:.0%} |")
    print(f"| classifier guidance, w = {args.guidance_scale:g} | {rate_guided:.0%} |")
    print(f"\njudged horse: {(p > 0.5).float().mean():.0%} of random samples; guided: "
          f"{(pg[: n // 2] > 0.5).float().mean():.0%} of asked-for horses, {(pg[n // 2:] < 0.5).float().mean():.0%} "
          "of asked-for birds")
    print("\n| channel | data mean | sample mean | data std | sample std |\n|---|---|---|---|---|")
    for c, name in enumerate(evaluation.CHANNELS):
        print(f"| {name} | {ref['mean'][c]:.3f} | {col['mean'][c]:.3f} | {ref['std'][c]:.3f} | {col['std'][c]:.3f} |")
    if args.json:
        record = {
            "checkpoint_step": ckpt.step, "n": n, "device": str(device), "torch": torch.__version__,
            "num_scales": schedule.num_scales, "n_steps_each": schedule.n_steps_each,
            "guidance_scale": args.guidance_scale, "seconds": {"plain": t_plain, "guided": t_guided},
            "frechet_distance": fd, "frechet_interval": fd_interval,
            "selection_distinct_ends": distinct,
            "pegasus_rate": {"random pairs": rate_random, "selection": rate_sel, "guidance": rate_guided},
            "judged_horse": {"random samples": float((p > 0.5).float().mean()),
                             "guided horses": float((pg[: n // 2] > 0.5).float().mean()),
                             "guided birds (judged bird)": float((pg[n // 2:] < 0.5).float().mean())},
            "colour": {"data": {k: [float(x) for x in v] for k, v in ref.items()},
                       "samples": {k: [float(x) for x in v] for k, v in col.items()}},
            "colour_shift": {name: {"mean": list(sh.mean), "se": list(sh.se), "n": sh.n} for name, sh in shifts.items()},
            "p_horse": {"samples": [round(float(v), 4) for v in p], "guided": [round(float(v), 4) for v in pg]},
        }
        record.update(evaluation.run_provenance(started, device))  # the command, the machine, the wall time
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
