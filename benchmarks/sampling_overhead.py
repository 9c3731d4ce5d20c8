"""Overhead of the annealed Langevin sampler next to the network it calls.

Times a full annealed Langevin run (L levels x T steps + the denoising step) against
the same number of bare forward passes of the same network on the same batch, for the
generator-driven noise and for the per-sample seeded noise that the pegasus
interpolation replays. Overhead = sampler time / forward time - 1. On CUDA it also times the sampler with the network
replayed as a CUDA graph (what `generate` and the pegasus rows use there), checks that the graphed
run gives the eager run's images (bf16 tolerance), and prints 64 samples' wall time both ways.
The network runs in --precision: by default the one training picks on the device (bf16 on compute
capability 8.0+, fp16 on older CUDA GPUs, fp32 on the CPU and mps); the course samples in fp32.

    python benchmarks/sampling_overhead.py           # batch 64 at 32x32, full schedule
    python benchmarks/sampling_overhead.py --quick   # CPU: short schedule, small model
"""

from __future__ import annotations

import argparse
import time

import torch

from pegasus_course.device import choose_device, training_precision
from pegasus_course.generate import model_score_fn
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig
from pegasus_course.profiles import get_profile
from pegasus_course.sampling import (GeneratorNoise, SeededNoise, annealed_langevin, cuda_graph_score_fn,
                                    num_score_evaluations)
from pegasus_course.sigmas import geometric_sigmas, langevin_step_size


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--num-scales", type=int, default=None)
    ap.add_argument("--steps-each", type=int, default=None)
    ap.add_argument("--base-channels", type=int, default=None)
    ap.add_argument("--device", default=None, help="cpu, cuda or mps (default: the course's choice)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                    help="auto: the precision training uses on the device")
    args = ap.parse_args()
    device = choose_device(args.device)
    precision = training_precision(device).name if args.precision == "auto" else args.precision
    prof = get_profile("cpu" if args.quick else "gpu")
    L = args.num_scales or (10 if args.quick else 232)
    T = args.steps_each or (1 if args.quick else 5)
    config = ScoreUNetConfig.for_image_size(32, args.base_channels or prof.base_channels,
                                            num_res_blocks=prof.num_res_blocks)
    model = ScoreUNet(config).to(device).eval()
    score_fn = model_score_fn(model, precision=precision)
    sigmas = geometric_sigmas(50.0, 0.01, L)
    eps = langevin_step_size(sigmas, T)
    shape = (args.batch, 3, 32, 32)
    evals = num_score_evaluations(L, T, denoise=True)
    x = torch.rand(shape, device=device)
    sig = sigmas.to(device)
    score_fn(x, sig[:1].expand(args.batch))  # warm-up of the network
    for make in (GeneratorNoise(torch.Generator(device).manual_seed(0)), SeededNoise(range(args.batch))):
        annealed_langevin(score_fn, shape, sigmas[:2], 1, eps, noise=make, device=device, progress=False)  # and both sources
    _sync(device)
    t0 = time.perf_counter()
    for i in range(evals):
        score_fn(x, sig[min(i // T, L - 1)].expand(args.batch))
    _sync(device)
    bare = time.perf_counter() - t0
    name = torch.cuda.get_device_name() if device.type == "cuda" else device.type.upper()
    print(f"device: {name}, {precision}; batch {args.batch} at 32x32, base {config.base_channels}, L={L}, T={T}: "
          f"{evals} network evaluations")
    print(f"| noise source | bare forwards s | sampler s | overhead |")
    print("|---|---|---|---|")
    sources = {"torch.Generator": lambda: GeneratorNoise(torch.Generator(device).manual_seed(0)),
               "seeded per sample": lambda: SeededNoise(range(args.batch))}
    for label, make in sources.items():
        _sync(device)
        t0 = time.perf_counter()
        annealed_langevin(score_fn, shape, sigmas, T, eps, noise=make(), device=device, progress=False)
        _sync(device)
        full = time.perf_counter() - t0
        print(f"| {label} | {bare:.2f} | {full:.2f} | {100 * (full / bare - 1):+.1f}% |", flush=True)
    if device.type != "cuda":
        print("(no CUDA: the graphed sampler is CUDA-only; on the CPU generate() runs eagerly)")
        return
    graphed = cuda_graph_score_fn(score_fn, x, sig[:1].expand(args.batch).contiguous())
    runs = {}
    for label, fn in (("eager", score_fn), ("CUDA graph", graphed)):
        annealed_langevin(fn, shape, sigmas[:2], 1, eps, noise=SeededNoise(range(args.batch)), device=device,
                          progress=False)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        runs[label] = annealed_langevin(fn, shape, sigmas, T, eps, noise=SeededNoise(range(args.batch)),
                                        device=device, progress=False)
        _sync(device)
        dt = time.perf_counter() - t0
        print(f"| seeded, {label} network | {bare:.2f} | {dt:.2f} | {100 * (dt / bare - 1):+.1f}% |", flush=True)
    diff = (runs["eager"].clamp(0, 1) - runs["CUDA graph"].clamp(0, 1)).abs().max().item()
    print(f"largest pixel difference, graphed vs eager (same seeds): {diff:.2e}")


if __name__ == "__main__":
    main()
