"""Input checks shared by the package's public functions: one clear message per common mistake.

Each check says what was expected and what to do. Value checks (positive, finite, in range)
read tensors on the host only when they already live there, so a check never forces a
GPU synchronisation inside a training or sampling loop.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch


def _on_host(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def check_sigmas(sigmas, where: str, *, descending: bool = False) -> torch.Tensor:
    """Noise levels as a 1-D tensor: positive and finite, and largest first if ``descending``.

    Raises ValueError naming ``where`` and the first offending value.
    """
    s = torch.as_tensor(sigmas)
    if not (s.is_floating_point()):
        s = s.to(torch.float64)
    if s.ndim > 1:
        raise ValueError(f"{where}: the noise levels must be a 1-D tensor (L,), got shape {tuple(s.shape)}.")
    if _on_host(s) and s.numel():
        bad = ~torch.isfinite(s) | (s <= 0)
        if bool(bad.any()):
            i = int(torch.nonzero(bad.flatten())[0])
            raise ValueError(f"{where}: every noise level must be positive and finite, but level {i} is "
                             f"{float(s.flatten()[i])!r}. Build the schedule with sigmas.geometric_sigmas.")
        if descending and s.ndim == 1 and s.numel() > 1 and bool((s[1:] > s[:-1]).any()):
            raise ValueError(f"{where}: the noise levels must come largest first (annealing goes from sigma_1 "
                             f"down to sigma_L), got {s[:3].tolist()}...; pass sigmas.flip(0).")
    return s


def check_image_batch(x: torch.Tensor, where: str, channels: int = 3, size: int | None = None) -> None:
    """A float batch (B, C, H, W): names the fix for uint8 input, NHWC layout and a wrong image size."""
    if not torch.is_tensor(x):
        raise TypeError(f"{where}: expected a torch.Tensor of images (B, {channels}, H, W), got {type(x).__name__}.")
    if x.dtype == torch.uint8 or not x.is_floating_point():
        raise TypeError(f"{where}: expected float images, got {x.dtype}. Convert 0-255 integers with "
                        "classifier.as_float_images(images) (it divides by 255).")
    if x.ndim != 4:
        raise ValueError(f"{where}: expected a batch of images (B, {channels}, H, W), got shape {tuple(x.shape)}"
                         + (" (add the batch axis: x[None])" if x.ndim == 3 else "") + ".")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty (0 images, shape {tuple(x.shape)}): pass at least one image.")
    if x.shape[1] != channels:
        hint = (f" It looks like channels-last (NHWC): use x.permute(0, 3, 1, 2)." if x.shape[-1] == channels else "")
        raise ValueError(f"{where}: expected {channels} channels on axis 1 (B, C, H, W), got shape "
                         f"{tuple(x.shape)}.{hint}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{where}: expected {size}x{size} images, got {x.shape[-2]}x{x.shape[-1]}. Resize them "
                         f"(data.load_dataset(..., image_size={size})) or use a model made for this size.")


def check_unit_images(x: torch.Tensor, where: str, channels: int = 3, size: int | None = None) -> None:
    """Images that must be floats in [0, 1] (what the samplers return and the classifiers were trained on)."""
    check_image_batch(x, where, channels, size)
    if _on_host(x) and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if hi > 1.5 or lo < -0.5:
            raise ValueError(f"{where}: expected images in [0, 1], got values from {lo:.3g} to {hi:.3g}. "
                             "Scale 0-255 images with classifier.as_float_images(images), or clamp(0, 1) samples.")


def check_seeds(seeds, where: str, count: int | None = None) -> list[int]:
    """Seeds as a list of non-negative Python ints (NumPy integers accepted), ``count`` of them if given."""
    if torch.is_tensor(seeds):
        if seeds.is_floating_point():
            raise TypeError(f"{where}: seeds must be integers, got a {seeds.dtype} tensor.")
        seeds = seeds.flatten().tolist()
    elif isinstance(seeds, numbers.Integral):
        raise TypeError(f"{where}: pass a list of seeds, e.g. [{int(seeds)}] or range({int(seeds)}), not one int.")
    out = []
    for s in list(seeds):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"{where}: seeds must be integers, got {s!r} ({type(s).__name__}).")
        if int(s) < 0:
            raise ValueError(f"{where}: seeds must be non-negative, got {int(s)}.")
        if int(s) > MAX_SEED:
            raise ValueError(f"{where}: seeds must be at most 2^63 - 1 = {MAX_SEED} (they are int64), got {int(s)}.")
        out.append(int(s))
    if count is not None and len(out) != count:
        raise ValueError(f"{where}: expected {count} seed(s), got {len(out)}.")
    if not out:
        raise ValueError(f"{where}: no seeds given (an empty batch): pass at least one seed, e.g. range(4).")
    return out


MAX_SEED = 2**63 - 1  # seeds are stored as int64

# Sizes the command line accepts, and so the sizes a checkpoint's metadata may record (checked when it is
# read: a recorded L of 10^8 is refused at once, not sampled for thousands of hours).
MAX_NUM_SCALES = 10_000  # L: the paper uses 232 (CIFAR-10); every level costs T network evaluations per sample
MAX_STEPS_EACH = 10_000  # T: the paper uses 5 (NCSNv1 100); every step is one network evaluation per level
MAX_WIDTH = 1024  # the network's base width; the paper's CIFAR-10 network uses 128
MAX_RES_BLOCKS = 16  # ResBlocks per level; the paper uses 2
MAX_IMAGE_SIZE = 512  # image side in pixels; the course trains at 32, 48 and 64


def check_score_shape(score: torch.Tensor, x: torch.Tensor, where: str) -> torch.Tensor:
    """A score_fn's output must have its input's shape (a score is a gradient of log p in x's space);
    broadcasting a (B,) or (C, H, W) output would give a silently wrong loss or sample. Reads shapes only."""
    if not torch.is_tensor(score) or tuple(score.shape) != tuple(x.shape):
        got = tuple(score.shape) if torch.is_tensor(score) else type(score).__name__
        raise ValueError(f"{where}: score_fn returned {got} for an input of shape {tuple(x.shape)}: a score has "
                         "its input's shape, one value per pixel (s(x, sigma) = grad_x log p_sigma(x)).")
    return score


def check_labels(labels, n: int, where: str) -> torch.Tensor:
    """Integer class labels, one per image: a (n,) tensor."""
    t = torch.as_tensor(labels)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{where}: labels must be integer class indices, got {t.dtype}.")
    if tuple(t.shape) != (n,):
        raise ValueError(f"{where}: expected one label per image, shape ({n},), got {tuple(t.shape)}: the labels do "
                         "not match the images.")
    return t.long()


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """An integer (NumPy integers accepted) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if int(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {int(value)}.")
    return int(value)


def check_k(k, n: int, where: str = "mix_weights") -> None:
    """Eq. 4's interpolant index: 0 <= k <= n + 1 for n >= 1 interpolants."""
    check_positive_int(n, f"{where}: n (the number of interpolants)")
    ks: Sequence = torch.as_tensor(k).flatten().tolist()
    bad = [v for v in ks if not math.isfinite(v) or v < 0 or v > n + 1]
    if bad:
        raise ValueError(f"{where}: k must lie in 0..n + 1 = 0..{n + 1} (0 and n + 1 are the two ends), got {bad[0]}.")


FLOAT32_EPS = float(torch.finfo(torch.float32).eps)  # 2^-23 = 1.19e-7: one float32 rounding, relative


def float32_tolerance(scale: float, evaluations: int = 1, roundings: int = 64) -> float:
    """How far two float32 computations of one quantity may drift apart when only the order of their
    arithmetic differs: another batch shape, the other SIMD kernel family (AVX-512 vs AVX2), another
    thread count. Each reordered reduction can move a result by about one rounding, ``FLOAT32_EPS`` times
    the magnitude it works at (``scale``: the largest value in play, e.g. sigma_1 for a sampler that starts
    at sigma_1 z). ``roundings`` such reductions may differ per evaluation of the network or score (64: the
    chain of convolutions, norms and attention sums of the course's U-Net, rounded up), and the
    errors of ``evaluations`` chained evaluations (a Langevin chain feeds each step to the next) add up at
    most linearly. Results that differ by more than this are computed differently, not just rounded
    differently.
    """
    if not (scale > 0 and evaluations >= 1 and roundings >= 1):
        raise ValueError("float32_tolerance: scale must be positive, evaluations and roundings at least 1.")
    return FLOAT32_EPS * float(scale) * int(roundings) * int(evaluations)
