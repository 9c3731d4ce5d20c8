"""Training throughput of the score U-Net: images/second, peak memory, FLOPs, share of peak.

For the default 32, 48 and 64 pixel configurations at the paper's batch sizes (128 for
32x32, 64 for STL-10 sizes), on the device the course would use (``pegasus_course.device``:
PEGASUS_DEVICE or --device, else cuda, mps, cpu): float32 vs the precision training chooses there
(bf16 on compute capability 8.0+, fp16 with a gradient scaler on older CUDA GPUs), eager vs
torch.compile. Runs the course's own training loop on random images. Prints a table; figures go to
benchmarks/RESULTS.md by hand, with the device named.

    python benchmarks/train_throughput.py            # full
    python benchmarks/train_throughput.py --quick    # CPU: one size, a few steps (< 2 minutes)
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from pegasus_course.device import choose_device, describe, training_precision
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig, count_parameters
from pegasus_course.profiles import get_profile
from pegasus_course.sigmas import geometric_sigmas
from pegasus_course.training import TrainConfig, new_state, train

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def train_flops_per_image(config: ScoreUNetConfig, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = ScoreUNet(config).to(device)
    x = torch.rand(2, 3, config.image_size, config.image_size, device=device)
    sigma = torch.full((2,), 1.0, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x, sigma).square().mean().backward()
    return counter.get_total_flops() / 2


def run(config: ScoreUNetConfig, batch: int, device: torch.device, precision: str, compiled: bool, warmup: int,
        steps: int, mode: str = "default") -> tuple[float, float]:
    """(images/second, peak memory in MiB) of the course's training loop in ``precision`` (bf16, fp16, fp32)."""
    torch.manual_seed(0)
    model = ScoreUNet(config).to(device)
    n = batch * (warmup + steps)
    images = torch.randint(0, 256, (n, 3, config.image_size, config.image_size), dtype=torch.uint8)
    sigmas = geometric_sigmas(50.0, 0.01, 232)
    cfg = TrainConfig(steps=warmup, batch_size=batch, precision=precision, compile=compiled, compile_mode=mode,
                      log_every=max(warmup, 1), channels_last=False)
    state = new_state(model, cfg)
    state = train(model, images, sigmas, cfg, state=state, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    cfg2 = TrainConfig(steps=warmup + steps, batch_size=batch, precision=precision, compile=compiled,
                       compile_mode=mode, log_every=steps)
    train(model, images, sigmas, cfg2, state=state, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
        mem = torch.cuda.max_memory_allocated() / 2**20
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS
    return steps * batch / (time.perf_counter() - t0), mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="32x32 only, few steps (CPU smoke run)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="image sizes (default 32 48 64)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per setting")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per setting (compile happens here)")
    ap.add_argument("--base-channels", type=int, default=None, help="U-Net width (default: the gpu profile's)")
    ap.add_argument("--num-res-blocks", type=int, default=None)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--batches", type=int, nargs="+", default=None,
                    help="batch sizes to sweep at 32x32 (default: 128; on CUDA 128 256 512 1024)")
    ap.add_argument("--device", default=None, help="cpu, cuda or mps (default: the course's choice)")
    args = ap.parse_args()

    device = choose_device(args.device)
    cuda = device.type == "cuda"
    auto = training_precision(device)  # what `pegasus-course train` uses here
    prof = get_profile("gpu")
    sizes = args.sizes or ([32] if args.quick else [32, 48, 64])
    steps = args.steps or (2 if args.quick else (30 if cuda else 3))
    warmup = args.warmup or (1 if args.quick else (10 if cuda else 1))
    name = torch.cuda.get_device_name() if cuda else (
        "Apple GPU (mps)" if device.type == "mps" else
        f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads")
    peak = peak_tflops(name) if cuda else None
    print(f"device: {name}; torch {torch.__version__}; {describe(device, auto)} ({auto.reason})")
    header = f"| size | batch | params | GFLOP/img (train) | precision | mode | images/s | peak MiB | TFLOP/s |"
    if peak:
        header += " % of bf16 peak |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size, batch in [(s, b) for s in sizes for b in (
            (args.batches or ([128, 256, 512, 1024] if cuda and not args.quick else [128])) if s == 32 else [64])]:
        config = ScoreUNetConfig.for_image_size(size, args.base_channels or prof.base_channels,
                                                num_res_blocks=args.num_res_blocks or prof.num_res_blocks)
        flops = train_flops_per_image(config, device)
        params = count_parameters(ScoreUNet(config))
        settings = [("fp32", False, "default")]
        if auto.name != "fp32":
            settings += [(auto.name, False, "default")]
        if not args.no_compile and not args.quick:
            settings += [(auto.name, True, "default")]
            if cuda:  # torch.compile's CUDA-graph mode: the step's kernels replayed in one launch
                settings += [(auto.name, True, "reduce-overhead")]
        for precision, compiled, mode in settings:
            ips, mem = run(config, batch, device, precision, compiled, warmup, steps, mode)
            tflops = ips * flops / 1e12
            label = "eager" if not compiled else ("compiled" if mode == "default" else "graphed (reduce-overhead)")
            row = (f"| {size} | {batch} | {params / 1e6:.2f} M | {flops / 1e9:.2f} | {precision} | "
                   f"{label} | {ips:,.0f} | {mem:,.0f} | {tflops:.1f} |")
            if peak:
                row += f" {100 * tflops / peak:.1f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
