"""The doctor's one-page report as a figure, legible at a notebook's width.

Drawn at the course's 100 dpi and :data:`WIDTH_INCHES` wide (the notebook's output area, so the front end
never scales it down), with no text under :data:`MIN_FONT` points: titles that would not fit a panel are
split over two lines, and the text report is wrapped to the characters that fit the page
(:func:`wrap_report`).
"""

from __future__ import annotations

import math
import textwrap

import torch

WIDTH_INCHES = 10.2  # inside the notebook's output area at 100 dpi (plotting.MAX_FIG_WIDTH, 10.5), with room for the
# inline backend's tight bounding box
DPI = 100
MIN_FONT = 9  # points: the smallest text on the page
TEXT_FONT = 9  # the monospace text report
_CHAR_INCHES = 0.64 * TEXT_FONT / 72  # one monospace character's width as drawn (8 px at 9 pt and 100 dpi)


def text_width(width_inches: float = WIDTH_INCHES, margin: float = 0.3) -> int:
    """How many monospace characters of :data:`TEXT_FONT` points fit a line of the page."""
    return int((width_inches - margin) / _CHAR_INCHES)


def wrap_report(lines: list[str], width: int) -> list[str]:
    """Lines of at most ``width`` characters; a continued line keeps its indent, and a verdict's
    ('[ok]   ...') continues under its text, not under its tag."""
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + (7 if line.startswith("[") else 0))
        out += textwrap.wrap(line, width, subsequent_indent=indent) or [""]
    return out


def _curves(axes, report) -> None:
    s = report.sigmas
    lo = max(-0.5, min([*report.share, *report.linear_share, 0.0]) - 0.05)
    axes[0].plot(s, [max(v, lo) if math.isfinite(v) else lo for v in report.share], "o-", label="this network")
    axes[0].plot(s, report.linear_share, "s--", label="linear denoiser\n(Wiener)")
    axes[0].axhline(1.0, color="k", ls=":", label="ideal")
    axes[0].axhline(0.0, color="grey", lw=0.8)
    axes[0].set_ylim(lo, 1.05)
    axes[0].set_title("share of the noise explained\n1 - loss / (D/2), ideal 1", fontsize=10)
    axes[0].legend(fontsize=MIN_FONT, loc="lower left")
    ratio = [v if math.isfinite(v) and v > 0 else float("nan") for v in report.norm_ratio]
    axes[1].plot(s, ratio, "o-")
    axes[1].axhline(1.0, color="k", ls=":")
    finite = [v for v in ratio if math.isfinite(v)]
    if finite and max(finite + [1.0]) / min(finite + [1.0]) > 10:
        axes[1].set_yscale("log")
    axes[1].set_title("score length\n|s| / (sqrt(D) / sigma), ideal 1", fontsize=10)
    axes[2].plot(s, report.cosine, "o-")
    axes[2].axhline(1.0, color="k", ls=":")
    axes[2].set_ylim(min([-0.05, *[c - 0.05 for c in report.cosine if math.isfinite(c)]]), 1.05)
    axes[2].set_title("score direction\ncos(s, -z / sigma), ideal 1", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("sigma (large to small,\nas the sampler runs)", fontsize=MIN_FONT)
        ax.tick_params(labelsize=MIN_FONT)
        ax.invert_xaxis()


def _estimates(panels, report) -> None:
    from .plotting import to_grid

    labels = ["clean"] + [f"sigma = {t:.3g}" for t in report.tweedie_sigmas]
    for ax, shown, title in ((panels[0], report.noisy, "noisy x~ = x + sigma z\n(clamped to [0, 1])"),
                             (panels[1], report.denoised, "Tweedie's estimate\nx~ + sigma^2 s(x~, sigma)")):
        img = to_grid(torch.cat([report.clean, *shown]), nrow=report.clean.shape[0], padding=2)
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_yticks([(i + 0.5) * img.shape[1] / len(labels) for i in range(len(labels))], labels, fontsize=MIN_FONT)
        ax.set_xticks([])
        ax.tick_params(length=0)
        ax.set_title(title, fontsize=10)


def report_figure(report, text: bool = True):
    """The one-page report of a :class:`pegasus_course.doctor.Report`: three curves against their ideal,
    the noisy images and Tweedie's estimates, and with ``text`` the text report with the verdicts (a
    notebook prints that instead)."""
    from matplotlib.figure import Figure

    lines = wrap_report(report.lines(), text_width()) if text else []
    text_height = 0.3 + 1.35 * TEXT_FONT / 72 * len(lines) if text else 0.01  # inches
    fig = Figure(figsize=(WIDTH_INCHES, 8.2 + text_height), dpi=DPI, layout="constrained")
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[3.4, 4.8, text_height])
    fired = report.fired
    unsure = not fired and any(v.fired is None for v in report.verdicts)
    headline = report.headline if not fired else "fired: " + "; ".join(v.name for v in fired)
    fig.suptitle("\n".join(textwrap.wrap(headline, 80)), color="tab:red" if fired else
                 "tab:orange" if unsure else "tab:green", fontsize=12, fontweight="bold")
    _curves(top.subplots(1, 3), report)
    _estimates(middle.subplots(1, 2), report)
    middle.suptitle("denoised estimates should look like the clean images (blurrier at large sigma)", fontsize=10)
    if text:
        ax = bottom.subplots()
        ax.axis("off")
        ax.text(0, 1, "\n".join(lines), family="monospace", fontsize=TEXT_FONT, va="top", transform=ax.transAxes)
    return fig
