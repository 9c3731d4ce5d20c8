"""Sampling on the CPU at the machine's speed: the shipped U-Net's forward pass in each precision and layout,
against this machine's own matmul rates, and whether bf16 samples are alike float32's.

1. Speed. For each batch size (the notebooks' 1, 9, 16, 64 by default) and mode (eager fp32, channels-last
   fp32, torch.compile fp32, and where the CPU has native bf16: bf16 autocast, bf16 + channels-last, bf16
   with the weights cast once, compiled bf16), the forward pass's ms, images/s and GFLOP/s (FLOPs counted
   once by torch's FlopCounterMode), as a share of the fp32 and bf16 matmul rates measured in the same
   run. Modes alternate within each round and the fastest of ``--repeats`` rounds is kept (the machine is
   shared: the minimum is the least disturbed run). Compilation is timed and turned into a break-even
   number of forwards.
2. Quality (``--quality``). 64 samples (seeds 0-63, the same seeded noise tapes) in fp32 and in the
   fastest eager bf16 mode, with a coarse schedule (default L = 30, T = 5, to stay affordable): the
   Frechet distance of each set to held-out test images (as benchmarks/sample_quality.py) with a
   bootstrap interval, the distance between the two sets, the per-image RMS pixel difference, and three
   pegasus rows (N = 15) judged by the ten-class network in both modes. bf16 is "alike" when its distance
   lies in fp32's interval and every row's ends fall on the same side of 0.5.

    python benchmarks/cpu_sampling.py --json benchmarks/cpu_sampling.json
    python benchmarks/cpu_sampling.py --batches 9 --no-compile --no-quality   # a minute
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from pegasus_course import checkpoints, data, evaluation
from pegasus_course.device import Precision, autocast, cpu_native_bf16
from pegasus_course.generate import model_score_fn, schedule_from_meta
from pegasus_course.interpolation import interpolate, sample_seeds

BF16 = Precision("bf16", "benchmark")


native_bf16 = cpu_native_bf16  # the package's own probe: the benchmark asks what the samplers ask


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """The fastest of ``repeats`` n x n matmuls in ``dtype``, in GFLOP/s (2 n^3 FLOPs)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_flops(model: torch.nn.Module) -> float:
    """FLOPs of one image's forward pass (multiply and add counted apart), by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    size = model.config.image_size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, size, size), torch.ones(1))
    return float(counter.get_total_flops())


def make_modes(model: torch.nn.Module, bf16: bool, compile_: bool) -> dict:
    """name -> (score_fn(x, sigma) -> float32 score, precision, channels_last). Compiled modes are built lazily."""
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    modes = {"eager fp32": (model, None, False), "channels-last fp32": (cl, None, True)}
    if compile_:
        modes["compiled fp32"] = ("compile", None, False)
    if bf16:
        cast = copy.deepcopy(model).to(torch.bfloat16)
        modes.update({"bf16 autocast": (model, BF16, False), "bf16 + channels-last": (cl, BF16, True),
                      "bf16 weights pre-cast": (cast, BF16, False)})
        if compile_:
            modes["compiled bf16"] = ("compile", BF16, False)
    return modes


def _runner(net, precision, channels_last):
    """score_fn(x, sigma) -> float32 for a network in a layout and precision (bf16 weights take bf16 images)."""
    cast = next(net.parameters()).dtype == torch.bfloat16

    def run(x, sigma):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if cast:
            x = x.to(torch.bfloat16)
        with autocast("cpu", precision):
            return net(x, sigma).float()
    return run


@torch.no_grad()
def time_forwards(model, batches, modes, repeats, compile_batches, flops_img, rates, say=print) -> list[dict]:
    """Rows of the speed table, one per (batch, mode)."""
    rows = []
    size = model.config.image_size
    for batch in batches:
        x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        sigma = torch.logspace(1.5, -2, batch)
        ref = model(x, sigma).float()
        runs, compile_s = {}, {}
        for name, (net, prec, cl) in modes.items():
            if net == "compile":
                if batch not in compile_batches:
                    continue
                torch._dynamo.reset()
                compiled = torch.compile(copy.deepcopy(model), dynamic=False)
                fn = _runner(compiled, prec, cl)
                compile_s[name] = _timed(lambda: fn(x, sigma))  # the first call compiles
            else:
                fn = _runner(net, prec, cl)
                fn(x, sigma)  # warm-up (oneDNN picks its kernels)
            runs[name] = fn
        best = {name: float("inf") for name in runs}
        for _ in range(repeats):  # alternate the modes within each round; keep each one's fastest
            for name, fn in runs.items():
                best[name] = min(best[name], _timed(lambda: fn(x, sigma)))
        for name, fn in runs.items():
            out = fn(x, sigma)
            err = float((out - ref).norm() / ref.norm())
            s = best[name]
            gflops = flops_img * batch / s / 1e9
            row = {"batch": batch, "mode": name, "ms": 1e3 * s, "images_per_s": batch / s, "gflops": gflops,
                   "of_fp32_matmul": gflops / rates["fp32"], "rel_error": err,
                   "of_bf16_matmul": gflops / rates["bf16"] if rates.get("bf16") else None}
            if name in compile_s:
                row["compile_s"] = compile_s[name]
                eager = "bf16 autocast" if "bf16" in name else "eager fp32"
                gain = best.get(eager, float("nan")) - s
                row["break_even_forwards"] = compile_s[name] / gain if gain > 0 else None
            rows.append(row)
            say(f"| {batch} | {name} | {row['ms']:.1f} | {row['images_per_s']:.1f} | {gflops:.0f} | "
                f"{row['of_fp32_matmul']:.0%} | " + (f"{row['of_bf16_matmul']:.0%}" if row["of_bf16_matmul"] else "-")
                + f" | {err:.1e} | " + (f"{row['compile_s']:.0f} s, {row['break_even_forwards'] or float('inf'):.0f}"
                                        if "compile_s" in row else "-") + " |", flush=True)
    return rows


def bootstrap_fd(feat_a: torch.Tensor, feat_ref: torch.Tensor, draws: int = 200, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the Frechet distance: both sets resampled with replacement.
    (A local stand-in until the package has one of its own.)"""
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(draws):
        ia = torch.randint(0, len(feat_a), (len(feat_a),), generator=g)
        ib = torch.randint(0, len(feat_ref), (len(feat_ref),), generator=g)
        values.append(evaluation.frechet_distance(feat_a[ia], feat_ref[ib]))
    v = torch.tensor(values)
    lo, hi = torch.quantile(v, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=v.dtype)).tolist()
    return lo, hi


@torch.no_grad()
def quality(model, judge, modes, bf16_mode: str, n: int, num_scales: int, steps_each: int, pairs, rows_n: int,
            meta: dict, chunk: int = 16, say=print) -> dict:
    """fp32 against ``bf16_mode``: the same seeds, the same noise tapes, the same coarse schedule."""
    schedule = schedule_from_meta(meta, steps_each, num_scales, say=None)
    sig, eps, size = schedule.sigmas(), schedule.step_lr(), model.config.image_size
    fns = {"fp32": model_score_fn(model), "bf16": _runner(*modes[bf16_mode])}
    spec = data.default_data()
    test = data.load_dataset(spec.source, spec.root, split="test", classes=("horse", "bird"), train=False)
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    real_b = test.images[perm[n:2 * n]]  # sample_quality.py's reference set
    ref_feat = evaluation.extract_features(judge, real_b)
    out = {"mode": bf16_mode, "n": n, "num_scales": num_scales, "n_steps_each": steps_each,
           "threads": torch.get_num_threads(), "pairs": [list(p) for p in pairs], "rows_n": rows_n}
    samples, rows = {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        samples[name] = torch.cat([sample_seeds(fn, list(range(a, min(a + chunk, n))), sig, steps_each, eps,
                                                image_shape=(3, size, size), progress=False)
                                   for a in range(0, n, chunk)]).clamp(0, 1)  # seeded: chunks change no image
        t1 = time.perf_counter()
        rows[name] = torch.stack([interpolate(fn, pair, rows_n, sig, steps_each, eps, image_shape=(3, size, size),
                                              progress=False) for pair in pairs]).clamp(0, 1)
        t2 = time.perf_counter()
        feat = evaluation.extract_features(judge, samples[name])
        fd = evaluation.frechet_distance(feat, ref_feat)
        lo, hi = bootstrap_fd(feat, ref_feat)
        p = [[round(float(v), 3) for v in evaluation.horse_probability(judge, r)] for r in rows[name]]
        out[name] = {"fd": fd, "fd_interval": [lo, hi], "samples_s": t1 - t0, "rows_s": t2 - t1, "p_horse_rows": p}
        say(f"{name}: FD vs held-out {fd:.2f} (95% bootstrap {lo:.2f}-{hi:.2f}); {n} samples {t1 - t0:.0f} s, "
            f"{len(pairs)} rows {t2 - t1:.0f} s", flush=True)
    feats = {k: evaluation.extract_features(judge, v) for k, v in samples.items()}
    out["fd_between"] = evaluation.frechet_distance(feats["fp32"], feats["bf16"])
    rms = (samples["fp32"] - samples["bf16"]).pow(2).flatten(1).mean(1).sqrt()
    out["rms_pixel"] = {"mean": float(rms.mean()), "median": float(rms.median()), "max": float(rms.max())}
    agree = all((a[0] > 0.5) == (b[0] > 0.5) and (a[-1] > 0.5) == (b[-1] > 0.5)
                for a, b in zip(out["fp32"]["p_horse_rows"], out["bf16"]["p_horse_rows"]))
    lo, hi = out["fp32"]["fd_interval"]
    out["rows_agree"] = agree
    out["alike"] = bool(lo <= out["bf16"]["fd"] <= hi and agree)
    say(f"FD fp32 vs bf16 samples: {out['fd_between']:.2f}; per-image RMS pixel difference mean "
        f"{out['rms_pixel']['mean']:.4f}, median {out['rms_pixel']['median']:.4f}, max {out['rms_pixel']['max']:.4f}")
    for i, pair in enumerate(pairs):
        for name in fns:
            say(f"row {pair} {name:4s} p(horse): " + " ".join(f"{v:.2f}" for v in out[name]["p_horse_rows"][i]))
    say(f"verdict: bf16 ({bf16_mode}) is {'ALIKE' if out['alike'] else 'NOT alike'} fp32: its FD "
        f"{out['bf16']['fd']:.2f} {'lies' if lo <= out['bf16']['fd'] <= hi else 'does not lie'} in fp32's interval "
        f"{lo:.2f}-{hi:.2f}; row ends {'agree' if agree else 'disagree'} (coarse schedule L={num_scales}, "
        f"T={steps_each}, {n} images: a check of likeness, not the course's quality figures)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="score checkpoint (default: the shipped one)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 9, 16, 64])
    ap.add_argument("--repeats", type=int, default=5, help="rounds of timing; the fastest of each mode is kept")
    ap.add_argument("--compile-batches", type=int, nargs="*", default=[9, 64],
                    help="batch sizes torch.compile is timed at (about 45 s of compilation each, per precision)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--no-speed", action="store_true", help="the quality check only (needs --quality-mode); "
                    "with --json, the speed figures already in the file are kept")
    ap.add_argument("--quality-mode", default=None, help="the bf16 mode of the quality check (default: the "
                    "fastest eager bf16 mode at the largest batch)")
    ap.add_argument("--n", type=int, default=64, help="samples per set in the quality check")
    ap.add_argument("--num-scales", type=int, default=30, help="L of the quality check's coarse schedule")
    ap.add_argument("--steps-each", type=int, default=5, help="T of the quality check")
    ap.add_argument("--rows-n", type=int, default=15, help="N of the pegasus rows")
    ap.add_argument("--chunk", type=int, default=16, help="samples per batch in the quality check (the seeded "
                    "noise makes each sample the same in any batch)")
    ap.add_argument("--json", default=None, metavar="FILE")
    args = ap.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    model, ckpt = checkpoints.load_score_model(args.checkpoint, device="cpu")
    model.eval()
    bf16 = native_bf16()
    rates = {"fp32": matmul_gflops(torch.float32)}
    rates["bf16"] = matmul_gflops(torch.bfloat16) if bf16 else None
    flops_img = forward_flops(model)
    params = sum(p.numel() for p in model.parameters())
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}; native bf16: {bf16}")
    print(f"model: {params / 1e6:.2f} M parameters, {flops_img / 1e9:.2f} GFLOP per image forward")
    print(f"matmul 2048^2: fp32 {rates['fp32']:.0f} GFLOP/s" + (f", bf16 {rates['bf16']:.0f} GFLOP/s" if bf16 else ""))
    modes = make_modes(model, bf16, not args.no_compile)
    if args.no_speed and not args.quality_mode:
        ap.error("--no-speed needs --quality-mode (the bf16 mode to check), e.g. --quality-mode 'bf16 autocast'")
    if not args.no_speed:
        print(f"fastest of {args.repeats} alternating rounds per mode\n")
        print("| batch | mode | ms/forward | images/s | GFLOP/s | of fp32 matmul | of bf16 matmul | rel. error | "
              "compile, break-even forwards |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = [] if args.no_speed else time_forwards(model, args.batches, modes, args.repeats,
                                                  set(args.compile_batches), flops_img, rates)
    record = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "native_bf16": bf16,
              "parameters": params, "gflop_per_image": flops_img / 1e9, "checkpoint_step": ckpt.step}
    if not args.no_speed:
        record["speed"] = {"matmul_gflops": rates, "forward": rows}
    if bf16 and not args.no_quality:
        largest = max(args.batches)
        eager_bf16 = [r for r in rows if r["batch"] == largest and "bf16" in r["mode"] and "compiled" not in r["mode"]
                      and r["rel_error"] < 0.05]  # autocast's rounding, not a network computed in bf16 throughout
        pick = args.quality_mode or min(eager_bf16, key=lambda r: r["ms"])["mode"]
        print(f"\nquality check: fp32 against {pick}, seeds 0-{args.n - 1}, L={args.num_scales}, T={args.steps_each} "
              f"(coarse, to stay affordable), {3} pegasus rows with N={args.rows_n}", flush=True)
        judge, _ = evaluation.load_feature_net(device="cpu")
        record["quality"] = quality(model, judge, modes, pick, args.n, args.num_scales, args.steps_each,
                                    [(100, 101), (102, 103), (104, 105)], args.rows_n, ckpt.meta, args.chunk)
    if args.json:
        run = evaluation.run_provenance(started, "cpu")  # the command, the machine, the wall time
        for part in ("speed", "quality"):
            if part in record:
                record[part]["run"] = run
        path = Path(args.json)
        earlier = json.loads(path.read_text()) if path.exists() else {}
        for part in ("speed", "quality"):  # a part not run this time keeps the file's earlier figures
            if part not in record and part in earlier:
                record[part] = earlier[part]
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
