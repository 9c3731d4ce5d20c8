"""Figures for the notebooks: image grids, strips and curves, each returning a matplotlib Figure.

Legible by construction: figures are drawn at 100 dpi (:func:`setup_plots`), a thumbnail is an inch
(100 px) unless the row is too wide for ``MAX_FIG_WIDTH``, and then it shrinks, never below
``MIN_THUMB_PX``: past that a row wraps onto several lines (:func:`thumbnail_layout`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from .checks import (check_finite_images, check_image_batch, check_number, check_positive_int,
                     check_savable_images)
from .plotting_fields import scatter_2d, score_error_map, score_field  # noqa: F401  the 2-D toys' figures
from .plotting_noise import (level_similarity_figure, overlap_cost, score_length_ratio,  # noqa: F401  schedule and
                             shell_overlap)  # network figures (notebooks 02, 03)

DPI = 100  # figures' resolution: a 32-pixel image an inch wide is shown at about 3x
THUMB_INCHES = 1.0  # a thumbnail's default size
MIN_THUMB_PX = 48  # no image is drawn smaller: a wider row wraps onto more lines instead
MAX_FIG_WIDTH = 10.5  # inches: a notebook's output area at DPI (so the front end does not scale it down), and
# room for a 17-image pegasus row (N = 15) with row labels at MIN_THUMB_PX


def setup_plots(dpi: int = DPI, retina: bool = False) -> None:
    """Legible inline figures: ``dpi`` dots per inch, PNG output (``retina=True`` doubles the pixels where the
    front end supports it, at four times the bytes in a committed notebook)."""
    import matplotlib as mpl
    import matplotlib.pyplot  # noqa: F401 - the inline backend sets its own rcParams on import: set ours after

    mpl.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "figure.figsize": (6, 4),
                         "image.interpolation": "nearest"})
    if retina:
        try:
            from matplotlib_inline.backend_inline import set_matplotlib_formats
        except ImportError:  # not in Jupyter: nothing to set
            return
        set_matplotlib_formats("retina")


PAD = 2  # canvas pixels between images
PAD_SHARE = PAD / 32  # the padding's share of a cell beside a 32-pixel image (less beside larger ones)


def thumbnail_layout(n: int, scale: float = THUMB_INCHES, margin: float = 0.3, max_width: float = MAX_FIG_WIDTH,
                     dpi: float | None = None) -> tuple[int, int, float]:
    """(columns, lines, inches per image) for ``n`` images side by side in a figure ``max_width`` inches wide
    with ``margin`` inches beside them (labels): one line at ``scale`` inches an image when it fits, else shrunk
    to fit, but never under ``MIN_THUMB_PX`` at ``dpi`` (default: matplotlib's): past that, wrapped onto
    lines of (nearly) equal length. Each image's cell is ``1 + PAD_SHARE`` times its size (the padding)."""
    import matplotlib as mpl

    n = check_positive_int(n, "thumbnail_layout: n (images in a row; it needs at least one image)")
    scale = check_number(scale, "thumbnail_layout: scale (inches an image)", positive=True)
    dpi = float(dpi or mpl.rcParams["figure.dpi"])

    def fit(cols: int) -> float:  # the largest size at which ``cols`` cells (and the leading pad) fit
        return (max_width - margin) / (cols * (1 + PAD_SHARE) + PAD_SHARE)

    size = min(scale, fit(n))
    if size * dpi >= MIN_THUMB_PX:
        return n, 1, size
    cols = max(1, int(((max_width - margin) * dpi / MIN_THUMB_PX - PAD_SHARE) / (1 + PAD_SHARE)))
    lines = math.ceil(n / cols)
    cols = math.ceil(n / lines)
    return cols, lines, min(scale, fit(cols))


def _unit_images(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) float images in [0, 1] on the CPU; refuses 0-255 floats (uint8 is scaled)."""
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    check_image_batch(images, "to_grid", channels=images.shape[1] if images.ndim == 4 else 3)
    check_finite_images(images, "to_grid")
    # Noisy images (a trajectory) are clamped on purpose; all-non-negative values above 2 are 0-255 images.
    if images.numel() and float(images.min()) >= 0 and float(images.max()) > 2:
        raise ValueError(f"to_grid: expected images in [0, 1], got values up to {float(images.max()):.4g}: 0-255 "
                         "images? Scale them with classifier.as_float_images(images) (uint8) or images / 255.")
    return images.float().clamp(0, 1)


def to_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile (B, 3, H, W) images in [0, 1] into one (3, H', W') image with torchvision's make_grid."""
    from torchvision.utils import make_grid

    nrow = check_positive_int(nrow, "to_grid: nrow (images per row)")
    check_positive_int(padding, "to_grid: padding (pixels between images)", minimum=0)
    return make_grid(_unit_images(images), nrow=nrow, padding=padding, pad_value=1.0)


def _canvas(images: torch.Tensor, cells: Sequence[tuple[int, int]], cols: int, gaps: Sequence[int], pad: int = PAD
            ) -> tuple[torch.Tensor, list[int]]:
    """Images (N, C, H, W) placed at (line, column) ``cells`` on a white (C, H', W') canvas; line l is followed by
    ``gaps[l]`` extra pixels (room for labels). Returns the canvas and the top pixel of every line."""
    _, c, h, w = images.shape
    tops, y = [], pad
    for gap in gaps:
        tops.append(y)
        y += h + pad + gap
    canvas = torch.ones(c, y, pad + cols * (w + pad))
    for img, (line, col) in zip(images, cells):
        x = pad + col * (w + pad)
        canvas[:, tops[line]:tops[line] + h, x:x + w] = img
    return canvas, tops


def _image_figure(canvas: torch.Tensor, image_px: int, size: float, left: float, top: float, bottom: float = 0.1,
                  right: float = 0.15):
    """A figure showing ``canvas`` so that an image's ``image_px`` canvas pixels span ``size`` inches, with
    margins in inches (no tight_layout: the sizes are exact). Returns (figure, axes, canvas pixels per inch)."""
    import matplotlib.pyplot as plt

    per_inch = image_px / size
    w_in, h_in = canvas.shape[2] / per_inch, canvas.shape[1] / per_inch
    fig_w, fig_h = left + w_in + right, bottom + h_in + top
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((left / fig_w, bottom / fig_h, w_in / fig_w, h_in / fig_h))
    ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    return fig, ax, per_inch


LABEL_INCHES = 0.22  # room under a line of images for one line of 8-point labels
RIGHT_MARGIN = 0.15


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, labels: Sequence[str] | None = None,
                scale: float = THUMB_INCHES):
    """A batch as a grid of at most ``nrow`` columns, ``scale`` inches an image (fewer columns when they would
    not fit :data:`MAX_FIG_WIDTH` at :data:`MIN_THUMB_PX` or more); ``labels`` (one per image, or fewer: the
    first images) are written under their images."""
    nrow = check_positive_int(nrow, "show_images: nrow (images per row)")
    x = _unit_images(images)
    if labels is not None and len(labels) > len(x):
        raise ValueError(f"show_images: {len(labels)} labels for {len(x)} images: give one label per image (or fewer).")
    n, _, h, _ = x.shape
    cols, _, size = thumbnail_layout(min(nrow, n), scale, margin=2 * RIGHT_MARGIN)
    lines = math.ceil(n / cols)
    cells = [(i // cols, i % cols) for i in range(n)]
    labelled = set(range(min(len(labels), n))) if labels is not None else set()
    label_px = math.ceil(LABEL_INCHES * h / size)
    gaps = [label_px if any(i // cols == line for i in labelled) else 0 for line in range(lines)]
    canvas, tops = _canvas(x, cells, cols, gaps)
    fig, ax, _ = _image_figure(canvas, h, size, left=RIGHT_MARGIN, top=0.4 if title else 0.1)
    for i in sorted(labelled):
        line, col = cells[i]
        ax.text(PAD + col * (h + PAD) + h / 2, tops[line] + h + 1, labels[i], ha="center", va="top", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, upscale: int = 2) -> Path:
    """Save a tiled grid as PNG (nearest-neighbour upscaled so small images stay visible): images in [0, 1] (or
    uint8), as :func:`save_images` takes them."""
    from torchvision.utils import save_image

    upscale = check_positive_int(upscale, "save_grid: upscale")
    grid = to_grid(check_savable_images(images, "save_grid"), nrow)
    if upscale > 1:
        grid = grid.repeat_interleave(upscale, 1).repeat_interleave(upscale, 2)
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path))
    return path


def save_images(images: torch.Tensor, folder: str | Path, prefix: str = "sample",
                numbers: Sequence[int] | None = None) -> list[Path]:
    """Save every image as its own PNG file, ``PREFIX-NNN.png`` with NNN from ``numbers`` (e.g. each
    sample's seed, so a file can be drawn again) or the position; returns the paths. Images are floats in [0, 1]
    (a sampler's overshoot of up to ``checks.SAVE_SLACK`` is clamped) or uint8."""
    import numbers as _numbers

    from torchvision.utils import save_image

    images = check_savable_images(images, "save_images")  # before the folder is made
    numbers = list(range(len(images))) if numbers is None else list(numbers)
    if any(isinstance(n, bool) or not isinstance(n, _numbers.Integral) or n < 0 for n in numbers):
        raise ValueError(f"save_images: numbers name the files, so they must be whole numbers 0 or more (seeds), got "
                         f"{numbers[:8]}.")
    if len(numbers) != len(images):
        raise ValueError(f"save_images: {len(images)} images but {len(numbers)} numbers to name them by.")
    if len(set(numbers)) != len(numbers):
        raise ValueError("save_images: two images would get one file name: give each a different number.")
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, im in zip((int(n) for n in numbers), images):
        p = folder / f"{prefix}-{n:03d}.png"
        save_image(im, str(p))
        paths.append(p)
    return paths


def plot_curve(values: Sequence[float], title: str = "", xlabel: str = "step", ylabel: str = "loss",
               smooth: int = 0, logy: bool = False):
    """A line plot, optionally with a moving average over ``smooth`` points."""
    import matplotlib.pyplot as plt
    import numpy as np

    smooth = check_positive_int(smooth, "plot_curve: smooth (points averaged; 0: none)", minimum=0)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    v = np.asarray(values, dtype=float)
    ax.plot(np.arange(1, len(v) + 1), v, alpha=0.35 if smooth else 1.0, label="per step")
    if smooth and len(v) >= smooth:
        kernel = np.ones(smooth) / smooth
        ax.plot(np.arange(smooth, len(v) + 1), np.convolve(v, kernel, mode="valid"), label=f"mean of {smooth}")
        ax.legend()
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return fig


def show_rows(rows: torch.Tensor, row_labels: Sequence[str] | None = None, highlight: int | None = None,
              title: str | None = None, col_labels: Sequence[str] | None = None, scale: float = THUMB_INCHES):
    """Rows of images (P, K, 3, H, W), ``scale`` inches an image, shrunk to fit :data:`MAX_FIG_WIDTH` but never
    under :data:`MIN_THUMB_PX`: a longer row wraps onto several lines (:func:`thumbnail_layout`), its lines kept
    together. ``highlight`` frames image k of every row; ``col_labels`` (one per k) go under the last row."""
    if not torch.is_tensor(rows) or rows.ndim != 5:
        got = tuple(rows.shape) if torch.is_tensor(rows) else type(rows).__name__
        raise ValueError(f"show_rows: expected rows of images (P, K, 3, H, W), got {got}: one row is rows[None].")
    p, k = rows.shape[:2]
    if highlight is not None and not 0 <= highlight < k:
        raise ValueError(f"show_rows: highlight is the position of an image in a row, 0..{k - 1}, got {highlight}.")
    x = _unit_images(rows.flatten(0, 1))
    h = x.shape[2]
    left = 1.4 if row_labels else RIGHT_MARGIN
    cols, lines, size = thumbnail_layout(k, scale, margin=left + RIGHT_MARGIN)
    cells = [(r * lines + j // cols, j % cols) for r in range(p) for j in range(k)]
    label_px = math.ceil(LABEL_INCHES * h / size) if col_labels else 0
    between = h // 4 if lines > 1 else 0  # wrapped rows: a little space between one row's lines and the next's
    gaps = [label_px if line >= (p - 1) * lines else (between if line % lines == lines - 1 else 0)
            for line in range(p * lines)]
    canvas, tops = _canvas(x, cells, cols, gaps)
    fig, ax, _ = _image_figure(canvas, h, size, left=left, top=0.4 if title else 0.1)
    if highlight is not None:
        from matplotlib.patches import Rectangle

        for r in range(p):
            line, col = cells[r * k + highlight]
            ax.add_patch(Rectangle((PAD + col * (h + PAD) - 1.5, tops[line] - 1.5), h + 2, h + 2, fill=False,
                                   ec="red", lw=2))
    if row_labels:
        for r, lab in enumerate(row_labels[:p]):
            first, last = tops[r * lines], tops[r * lines + lines - 1] + h
            ax.text(-4, (first + last) / 2, lab, ha="right", va="center", fontsize=9)
    if col_labels:
        for j, lab in enumerate(col_labels[:k]):
            line, col = cells[(p - 1) * k + j]
            ax.text(PAD + col * (h + PAD) + h / 2, tops[line] + h + 1, lab, ha="center", va="top", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


# Curves that coincide stay visible: each later one is drawn thinner, dashed and with a smaller marker of
# another shape, so the one beneath shows around it.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_STYLES = ("-", "--", "-.", ":")


def plot_lines(x: Sequence[float], series: dict, title: str = "", xlabel: str = "", ylabel: str = "",
               logx: bool = False, ylim: tuple[float, float] | None = None, marker: str = "o"):
    """Several named curves over the same x, {label: values}; none hides another (see ``_MARKERS``)."""
    import matplotlib.pyplot as plt

    odd = [label for label, values in series.items() if len(values) != len(x)]
    if odd:
        raise ValueError(f"plot_lines: series {odd[0]!r} has {len(series[odd[0]])} values for {len(x)} x values: give "
                         "one value per x.")
    fig, ax = plt.subplots(figsize=(6, 3.2))
    n = len(series)
    for i, (label, values) in enumerate(series.items()):
        shape = marker if i == 0 or not marker else _MARKERS[i % len(_MARKERS)]
        ax.plot(list(x), [float(v) for v in values], marker=shape, label=label, ls=_STYLES[i % len(_STYLES)],
                lw=2.2 - 1.2 * i / max(n - 1, 1), ms=7 - 3 * i / max(n - 1, 1), zorder=2 + i)
    if logx:
        ax.set_xscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_colour_stats(reference: dict, entries: dict, title: str = "colour of samples against the data"):
    """Per-channel mean (bars) and standard deviation (error bars) of image sets, the data first.

    ``reference`` and each value of ``entries`` are :func:`pegasus_course.evaluation.colour_stats` dicts.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from matplotlib.patches import Patch

    sets = {"data": reference, **entries}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(sets)
    colours = ("tab:red", "tab:green", "tab:blue")
    hatches = ("", "//", "..", "xx", "\\\\", "oo", "--")
    for j, (name, st) in enumerate(sets.items()):
        xs = np.arange(3) + (j - (len(sets) - 1) / 2) * width
        ax.bar(xs, st["mean"], width, yerr=st["std"], color=colours, alpha=0.35 + 0.65 * (j == 0),
               edgecolor="black", hatch=hatches[j % len(hatches)], capsize=2)
    ax.legend([Patch(facecolor="lightgrey", edgecolor="black", hatch=hatches[j % len(hatches)]) for j in range(len(sets))],
              list(sets), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xticks(range(3), ["red", "green", "blue"])
    ax.set(title=title, ylabel="mean (bar) and std (line)", ylim=(0, 1))
    fig.tight_layout()
    return fig


def plot_colour_history(tracker, stat: str = "mean"):
    """A :class:`~pegasus_course.evaluation.ColourTracker`'s record: one panel per channel, the data dashed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8), sharey=True)
    combos = sorted({(h["weights"], h["variant"]) for h in tracker.history})
    n = len(combos)
    for c, ax in enumerate(axes):
        for i, (weights, variant) in enumerate(combos):
            steps, values = tracker.series(weights, variant, stat)
            ax.plot(steps, values[:, c], marker=_MARKERS[i % len(_MARKERS)], ls=_STYLES[i % len(_STYLES)],
                    lw=2.2 - 1.2 * i / max(n - 1, 1), ms=7 - 3 * i / max(n - 1, 1), zorder=2 + i,
                    label=f"{'EMA' if weights == 'ema' else 'live'}, {variant}")
        ax.axhline(tracker.reference[stat][c], color="black", ls="--", label="data")
        ax.set(title=("red", "green", "blue")[c], xlabel="training step")
    axes[0].set_ylabel(f"channel {stat}")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_png(path: str | Path, title: str | None = None, max_width: float = MAX_FIG_WIDTH):
    """A committed PNG (a sample grid, pegasus rows) at its own pixels where it fits ``max_width`` inches at the
    figure's dpi, else scaled down to fit; ``title`` above it. Raises FileNotFoundError naming the file."""
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the course (git checkout -- {path.name} in its "
                                "folder restores it).")
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    dpi = plt.rcParams["figure.dpi"]
    h, w = pixels.shape[:2]
    inches = min(w / dpi, max_width)
    top = 0.4 if title else 0.05
    fig = plt.figure(figsize=(inches + 0.1, inches * h / w + top + 0.05))
    ax = fig.add_axes((0.05 / (inches + 0.1), 0.05 / fig.get_figheight(), inches / (inches + 0.1),
                       inches * h / w / fig.get_figheight()))
    ax.imshow(pixels, interpolation="nearest")  # exact colours: a scaled-down grid stays sharp and its PNG small
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_quality(record: dict, title: str = "recorded quality of the shipped model"):
    """A ``benchmarks/sample_quality.py --json`` record in three panels: the Frechet distance of each set
    between its floor (real vs real) and ceiling (noise), on a log axis; the pegasus rate of each way of
    choosing the ends, against the 50% that random ends can reach at best; and the colour of the samples
    against the data (per-channel mean, with the standard deviation as a line). The record holds no
    intervals: :func:`~pegasus_course.plotting_quality.plot_quality_intervals` draws it without them."""
    from .plotting_quality import plot_quality_intervals

    return plot_quality_intervals(record["frechet_distance"], record["pegasus_rate"], None, record["n"], title,
                                  colour=record["colour"], rate_name="pegasus rate")
