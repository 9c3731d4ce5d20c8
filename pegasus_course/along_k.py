"""Reading a pegasus row along k: the mixed noise's spread, the committed rows, and the row early in sampling.

Why a row switches from one animal to the other over a few k instead of morphing: the sampler maps a tape
to an image continuously, but the first, large noise levels already fix the layout. :func:`early_row` runs
the interpolated tapes through those levels only and returns the denoised (Tweedie) estimate
x + sigma^2 s(x, sigma) there, the picture the rest of the sampling refines.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from .checks import check_k, check_positive_int, check_seeds, check_sigma
from .interpolation import MIXES


def mixed_std(z1: torch.Tensor, z2: torch.Tensor, n: int, mix: str = "eq4",
              ks: Sequence[int] | None = None) -> torch.Tensor:
    """The standard deviation of the mixed draws w1(k) z1 + w2(k) z2 for each k (default 0..n + 1), (K,), float64.

    ``z1`` and ``z2`` are two tapes' draws (any shape, one shape for both): independent standard normal
    draws give about 1 at every k with eq. 4's (cos, sin), and less in the middle with the linear (1 - t, t)."""
    if mix not in MIXES:
        raise ValueError(f"mixed_std: mix must be one of {sorted(MIXES)}, got {mix!r}.")
    if not (torch.is_tensor(z1) and torch.is_tensor(z2)) or z1.shape != z2.shape or z1.numel() < 2:
        raise ValueError("mixed_std: give two tensors of draws of one shape (at least 2 values each), e.g. two "
                         "recorded tapes' draws stacked with torch.stack(list(tape.values())).")
    n = check_positive_int(n, "mixed_std: n (the number of interpolants)")
    ks = list(range(n + 2)) if ks is None else list(ks)
    check_k(ks, n, "mixed_std")
    a, b = z1.double().flatten(), z2.double().flatten()
    out = []
    for k in ks:
        w1, w2 = MIXES[mix](k, n)
        out.append((w1 * a + w2 * b).std(unbiased=False))
    return torch.stack(out)


def tape_draws(tape: dict[int, torch.Tensor]) -> torch.Tensor:
    """All draws of a recorded tape (index -> tensor) stacked in index order: (draws, ...)."""
    if not isinstance(tape, dict) or not tape:
        raise ValueError("tape_draws: give a recorded tape, a non-empty dict index -> draw (sampling.record_tape).")
    return torch.stack([tape[i] for i in sorted(tape)])


def truncated_schedule(schedule, sigma: float):
    """The schedule's first levels, down to the first level at or below ``sigma``: the same levels and the same
    step sizes (NCSNv2's eps scales with the last level squared), so a run with it follows the full run's
    trajectory that far, and its final denoising step is Tweedie's estimate at that level. The levels are
    recomputed from the shorter geometric series, so they agree with the full run's to float32 rounding
    (about 1e-7 relative), not bit for bit; the trajectories agree to the same rounding."""
    sigma = check_sigma(sigma, "truncated_schedule: sigma")
    levels = schedule.sigmas()
    if sigma >= float(levels[0]) or sigma < float(levels[-1]):
        raise ValueError(f"truncated_schedule: sigma must lie in the schedule's range, below sigma_1 = "
                         f"{float(levels[0]):g} and at least sigma_L = {float(levels[-1]):g}, got {sigma:g}.")
    i = int(torch.nonzero(levels <= sigma)[0])
    return replace(schedule, sigma_min=float(levels[i]), num_scales=max(i + 1, 2))


def early_row(model: torch.nn.Module, pair: tuple[int, int], n: int, schedule, sigma: float,
              ks: Sequence[int] | None = None, progress: bool = True) -> torch.Tensor:
    """Tweedie's denoised estimate along a row, (K, 3, H, W) clamped to [0, 1], after the full schedule's levels
    down to ``sigma`` only: the layout the interpolants have when most of the noise is still to be removed."""
    from .generate import pegasus_batch

    n = check_positive_int(n, "early_row: n (the number of interpolants)")
    pair = tuple(check_seeds(pair, "early_row: pair (the two ends' seeds)", count=2))
    short = truncated_schedule(schedule, sigma)
    if ks is None:
        ks = list(range(n + 2))
    check_k(ks, n, "early_row: ks")
    ks = [int(k) for k in torch.as_tensor(ks).flatten().tolist()]
    return pegasus_batch(model, [pair], n, ks, short, denoise=True, progress=progress)[0]


def read_grid_png(path: str | Path, rows: int, cols: int, size: int = 32, padding: int = 2) -> torch.Tensor:
    """The images of a grid PNG written by :func:`pegasus_course.plotting.save_grid` (``rows`` x ``cols`` images
    of ``size`` pixels, ``padding`` between them, upscaled by a whole factor): (rows, cols, 3, size, size)."""
    import numpy as np
    from PIL import Image

    rows = check_positive_int(rows, "read_grid_png: rows")
    cols = check_positive_int(cols, "read_grid_png: cols")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_grid_png: no image at {path}.")
    with Image.open(path) as im:
        pixels = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255
    cell = size + padding
    width, height = cols * cell + padding, rows * cell + padding
    up = pixels.shape[2] // width
    if up < 1 or pixels.shape[2] != up * width or pixels.shape[1] != up * height:
        raise ValueError(f"read_grid_png: {path.name} is {pixels.shape[2]}x{pixels.shape[1]} pixels, not a whole "
                         f"multiple of a {cols}x{rows} grid of {size}-pixel images with padding {padding} "
                         f"({width}x{height}): give the grid's rows, cols and image size.")
    small = pixels[:, ::up, ::up]
    out = torch.empty(rows, cols, 3, size, size)
    for r in range(rows):
        for c in range(cols):
            y, x = padding + r * cell, padding + c * cell
            out[r, c] = small[:, y:y + size, x:x + size]
    return out


def class_probabilities(net: torch.nn.Module, images: torch.Tensor,
                        names: Sequence[str] = ("horse", "bird")) -> torch.Tensor:
    """The net's probabilities of the classes ``names`` for images (..., 3, H, W), not renormalised: (..., len(names)).

    With the ten-class judge, p(horse) and p(bird) both low means the image reads as neither animal."""
    from .classifier import class_position, predict_proba

    if not torch.is_tensor(images) or images.ndim < 4:
        raise ValueError("class_probabilities: give images (..., 3, H, W), e.g. rows (pairs, K, 3, H, W).")
    cols = [class_position(net.config.class_names, name) for name in names]
    probs = predict_proba(net, images.reshape(-1, *images.shape[-3:]))[:, cols]
    return probs.reshape(*images.shape[:-3], len(cols))


def end_share(row: torch.Tensor) -> torch.Tensor:
    """Where each image of a row (K, C, H, W) stands between the row's two ends, in pixels: d0 / (d0 + d1) with
    d0, d1 its root-mean-square distance to the first and to the last image; 0 at the first end, 1 at the last.

    A row that morphs climbs steadily; a row that switches jumps. Judge-free, so it also reads blurry
    early estimates (:func:`early_row`) that a classifier of clean images would misread."""
    if not torch.is_tensor(row) or row.ndim != 4 or row.shape[0] < 2:
        got = tuple(row.shape) if torch.is_tensor(row) else type(row).__name__
        raise ValueError(f"end_share: give one row of images (K, C, H, W) with K >= 2, got {got}: one row of "
                         "rows (pairs, K, C, H, W) is rows[i].")
    x = row.double().flatten(1)
    d0 = (x - x[0]).pow(2).mean(1).sqrt()
    d1 = (x - x[-1]).pow(2).mean(1).sqrt()
    if float((d0 + d1).min()) == 0:
        raise ValueError("end_share: the row's two ends are the same image, so no image stands between them.")
    return d0 / (d0 + d1)
