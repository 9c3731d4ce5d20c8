"""Images for notebook 07's recorded figures: guidance at several scales and EMA against live weights.

Notebook 07 cannot sample with the full schedule under the ``cpu`` profile in the time a learner waits,
so this script samples once and records the images (uint8, safetensors) beside what was measured on
them, with the command, the machine and the wall time:

* the EMA and the live weights of the shipped run, the same seeds (0-15 by default), full schedule;
* classifier guidance at w = 0, 1, 3, 10: the same 4 asked-for horses and 4 asked-for birds at every scale
  (seeds 10000-10003 and 10032-10035, the first of each class in ``sample_quality.py``'s guided set);
* the ten-class judge's p(horse) of every image, so that notebooks can choose demonstration pairs
  (horse-horse, bird-bird, horse-bird) from seeds whose class is on record.

    python benchmarks/quality_figures.py                       # writes benchmarks/quality_figures.{json,safetensors}
    python benchmarks/quality_figures.py --seeds 4 --per-class 1 --num-scales 12 --steps-each 1 --out runs/q  # a smoke test

Read the record with ``pegasus_course.evaluation.load_quality_figures()``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from pegasus_course import checkpoints, classifier, evaluation
from pegasus_course.generate import Guidance, generate, schedule_from_meta
from pegasus_course.formatting import format_duration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=16, help="EMA and live samples, seeds 0..SEEDS-1 (default 16)")
    ap.add_argument("--per-class", type=int, default=4, help="asked-for horses (and birds) per guidance scale")
    ap.add_argument("--scales", default="0,1,3,10", help="guidance scales, comma-separated (default 0,1,3,10)")
    ap.add_argument("--steps-each", type=int, default=5)
    ap.add_argument("--num-scales", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default="benchmarks/quality_figures",
                    help="writes OUT.json and OUT.safetensors (default benchmarks/quality_figures)")
    args = ap.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ema, ckpt = checkpoints.load_score_model(None, device=device)
    live = checkpoints.load_score_model(checkpoints.LIVE_CHECKPOINT, use_ema=False, device=device)[0]
    clf, _ = classifier.load_classifier(None, device=device)
    judge, _ = evaluation.load_feature_net(None, device=device)
    schedule = schedule_from_meta(ckpt.meta, args.steps_each, args.num_scales)
    scales = [float(w) for w in args.scales.split(",")]
    seeds = list(range(args.seeds))
    k = args.per_class
    guided_seeds = [10_000 + i for i in range(k)] + [10_032 + i for i in range(k)]
    classes = ["horse"] * k + ["bird"] * k
    print(f"checkpoint step {ckpt.step}; L = {schedule.num_scales}, T = {schedule.n_steps_each}; {device}; "
          f"{len(seeds)} EMA + {len(seeds)} live samples, {len(guided_seeds)} per guidance scale {scales}")

    images, seconds = {}, {}
    t0 = time.perf_counter()
    # cache=False: every call is timed, and a re-run must not record disk reads
    plain = generate(ema, seeds + (guided_seeds if 0.0 in scales else []), schedule, cache=False).cpu()
    seconds["ema"] = time.perf_counter() - t0
    images["ema"] = plain[: len(seeds)]
    if 0.0 in scales:
        images["guided w=0"] = plain[len(seeds):]
    t0 = time.perf_counter()
    images["live"] = generate(live, seeds, schedule, cache=False).cpu()
    seconds["live"] = time.perf_counter() - t0
    for w in scales:
        if w == 0.0:
            continue
        t0 = time.perf_counter()
        images[f"guided w={w:g}"] = generate(ema, guided_seeds, schedule, guidance=Guidance(clf, w),
                                             cache=False,
                                             classes=classes).cpu()
        seconds[f"guided w={w:g}"] = time.perf_counter() - t0

    record = evaluation.figures_record(
        images, judge=judge, seeds={"ema": seeds, "live": seeds, **{name: guided_seeds for name in images
                                                                      if name.startswith("guided")}},
        classes={name: classes for name in images if name.startswith("guided")},
        meta={"checkpoint_step": ckpt.step, "num_scales": schedule.num_scales,
              "n_steps_each": schedule.n_steps_each, "guidance_scales": scales, "seconds": seconds},
        started=started, device=device)
    json_path, tensor_path = evaluation.save_quality_figures(record, images, args.out)
    print(f"wrote {json_path} and {tensor_path} in {format_duration(record['wall_seconds'])}")
    for name, p in record["p_horse"].items():
        print(f"  {name:12s} judged horse: {sum(x > 0.5 for x in p)} of {len(p)}")


if __name__ == "__main__":
    main()
