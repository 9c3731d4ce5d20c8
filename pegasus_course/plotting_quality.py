"""Figures for measured quality (notebook 07): every number drawn with its interval.

* :func:`plot_row_judgement`: p(horse) along a row, as points only (no line claims a crossing between two
  measured interpolants), with the band where the crossing must lie shaded.
* :func:`plot_colour_shifts`: each set's per-channel shift from the data's mean, +- 2 standard errors, on
  an axis scaled to the shifts (a 0-1 axis hides a cast of 0.05).
* :func:`plot_quality_intervals`: Frechet distances, ends rates and colour shifts side by side, each with
  its interval.
"""

from __future__ import annotations

from typing import Sequence

from .checks import check_number, check_open_unit, check_unit_values
from .colour_evidence import CHANNELS, ChannelShift
from .rows import class_changes

CHANNEL_COLOURS = ("tab:red", "tab:green", "tab:blue")
_MARKERS = ("o", "s", "^", "D", "v")


def crossing_band(ks: Sequence[float], p: Sequence[float], threshold: float = 0.5) -> tuple[float, float] | None:
    """The stretch of k where a row's judged class changes: from the last measured k before the first change
    to the first measured k after the last one (so a row that changes back and forth gets one wide band);
    None when every measured k is in the same class. The class is :func:`~pegasus_course.rows.judged_first`'s
    (horse when p > threshold), the rule :func:`~pegasus_course.rows.judge_row` reads its crossing with."""
    p = check_unit_values(p, "crossing_band")
    ks = [check_number(k, "crossing_band: k") for k in ks]
    if len(ks) != len(p):
        raise ValueError(f"crossing_band: {len(ks)} values of k but {len(p)} probabilities: give one per k.")
    threshold = check_open_unit(threshold, "crossing_band: threshold", "0.5 splits horse from bird.")
    changes = class_changes(p, threshold)
    if not changes:
        return None
    return ks[changes[0] - 1], ks[changes[-1]]


def plot_row_judgement(ks: Sequence[float], series: dict, title: str = "", band_from: str | None = None):
    """p(horse) of each measured interpolant, {label: values over ks}, as points joined by no line, the 0.5
    line dashed, and the band where ``band_from``'s (default: the first series') verdict changes shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (label, values) in enumerate(series.items()):
        ax.plot(list(ks), [float(v) for v in values], ls="none", marker=_MARKERS[i % len(_MARKERS)],
                ms=8 - 2 * i, label=label, zorder=3 + i)
    ax.axhline(0.5, color="black", ls=":", lw=1)
    key = band_from or next(iter(series))
    band = crossing_band(ks, series[key])
    if band:
        ax.axvspan(*band, color="tab:orange", alpha=0.15, lw=0, label=f"{key}: its verdict changes in here")
    ax.set(title=title, xlabel="k (computed interpolants only)", ylabel="p(horse)", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(series) + 1, borderaxespad=0)
    fig.tight_layout()
    return fig


def _shift_panel(ax, shifts: dict, z: float = 2.0) -> None:
    """Each set on the x axis, its three channel shifts as coloured points with +- z s.e. bars."""
    for j, (name, sh) in enumerate(shifts.items()):
        for c in range(3):
            ax.errorbar(j + (c - 1) * 0.18, sh.mean[c], yerr=z * sh.se[c], fmt=_MARKERS[c], color=CHANNEL_COLOURS[c],
                        ms=6, capsize=3, label=CHANNELS[c] if j == 0 else None)
    ax.axhline(0.0, color="black", ls="--", lw=1)
    ax.set_xticks(range(len(shifts)), [f"{name}\n({sh.n} images)" for name, sh in shifts.items()], fontsize=8)
    ax.set_xlim(-0.6, len(shifts) - 0.4)
    ax.set_ylabel(f"channel mean minus the data's\n(+- {z:g} standard errors)", fontsize=9)
    ax.legend(fontsize=8, title="channel", title_fontsize=8, loc="best")


def plot_colour_shifts(shifts: dict, title: str = "colour shift of samples from the data's mean", z: float = 2.0):
    """{set name: :class:`~pegasus_course.colour_evidence.ChannelShift`}: each set's per-channel shift from the
    data's mean with +- ``z`` standard errors; 0 (dashed) is the data. The y axis fits the shifts."""
    import matplotlib.pyplot as plt

    bad = [name for name, sh in shifts.items() if not isinstance(sh, ChannelShift)]
    if bad:
        raise TypeError(f"plot_colour_shifts: {bad[0]!r} is not a ChannelShift: make one with "
                        "colour_evidence.shift_from(images, reference_mean).")
    fig, ax = plt.subplots(figsize=(max(5.5, 1.8 * len(shifts) + 1.5), 3.4))
    _shift_panel(ax, shifts, z)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _interval(value) -> tuple[float, float | None, float | None]:
    """(value, lo, hi) from a number or a (value, lo, hi) triple; lo and hi None when not known."""
    if isinstance(value, (tuple, list)):
        v, lo, hi = value
        return float(v), (None if lo is None else float(lo)), (None if hi is None else float(hi))
    return float(value), None, None


def plot_quality_intervals(distances: dict, rates: dict, shifts: dict | None, n: int,
                           title: str = "recorded quality of the shipped model", colour: dict | None = None,
                           rate_name: str = "ends rate"):
    """Three panels: Frechet distances {name: d or (d, lo, hi)} on a log axis (bootstrap bars where known);
    ends rates {name: rate or (rate, lo, hi)} (Wilson intervals where known) against the 50% random ends reach
    at best; colour shifts {name: ChannelShift} from the data's mean with +- 2 s.e. With ``shifts`` None the
    third panel draws ``colour`` instead, a record's {"data": {"mean", "std"}, "samples": {...}}: each
    channel's mean (bar) and standard deviation (line), samples against the data."""
    import matplotlib.pyplot as plt

    if shifts is None and colour is None:
        raise ValueError("plot_quality_intervals: give the colour shifts (ChannelShift per set) or a record's colour.")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.25, 1, 1.1]})
    _distance_panel(axes[0], distances, n)
    _rate_panel(axes[1], rates, n, rate_name)
    if shifts is not None:
        _shift_panel(axes[2], shifts)
        axes[2].set_title("colour: shift from the data's mean", fontsize=9)
    else:
        _colour_panel(axes[2], colour, n)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _distance_panel(ax, distances: dict, n: int) -> None:
    """Frechet distances as horizontal bars on a log axis, floor green and ceiling grey, intervals as segments."""
    names = list(distances)
    vals = [_interval(distances[k]) for k in names]
    colours = ["tab:green" if "floor" in k else "tab:grey" if "ceiling" in k else "tab:blue" for k in names]
    ax.barh(range(len(names)), [v for v, _, _ in vals], color=colours, edgecolor="black")
    for i, (v, lo, hi) in enumerate(vals):
        if lo is not None:  # drawn as a segment: a bootstrap interval may lie wholly above the estimate
            ax.hlines(i, lo, hi, color="black", lw=1.5, zorder=3)
            ax.plot([lo, hi], [i, i], "|", color="black", ms=9, zorder=3)
        ax.text((hi or v) * 1.08, i, f"{v:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else " (no interval)"),
                va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(min(1.0, min(v for v, _, _ in vals) / 2), max(hi or v for v, _, hi in vals) * 8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(f"Frechet distance, {n} images a set (lower is better)", fontsize=9)
    any_interval = any(lo is not None for _, lo, _ in vals)
    ax.set_xlabel("distance (log axis)" + (", 95% bootstrap interval" if any_interval else ""), fontsize=8)


def _rate_panel(ax, rates: dict, n: int, rate_name: str) -> None:
    """Rates as bars in %, with their intervals where known, against the 50% random ends can reach."""
    rv = [_interval(rates[k]) for k in rates]
    known = all(lo is not None for _, lo, _ in rv)
    yerr = [[100 * (v - lo) for v, lo, _ in rv], [100 * (hi - v) for v, _, hi in rv]] if known else None
    ax.bar(range(len(rv)), [100 * v for v, _, _ in rv], color=["tab:orange", "tab:blue", "tab:purple"][: len(rv)],
           edgecolor="black", yerr=yerr, capsize=4)
    for i, (v, lo, hi) in enumerate(rv):
        ax.text(i, 100 * (hi if hi is not None else v) + 2, f"{v:.0%}", ha="center", fontsize=8)
    ax.axhline(50, color="black", ls="--", lw=1, label="best possible with random ends")
    ax.set_xticks(range(len(rv)), list(rates), fontsize=8)
    ax.set(ylim=(0, 110), ylabel="% of rows with a horse and a bird end")
    ax.set_title(f"{rate_name}, {n // 2} rows each" + (" (95% Wilson interval)" if known else ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _colour_panel(ax, colour: dict, n: int) -> None:
    """A record's per-channel colour, data against samples: mean as a bar, standard deviation as a line."""
    for j, (name, hatch) in enumerate((("data", ""), ("samples", "//"))):
        st = colour[name]
        ax.bar([c + (j - 0.5) * 0.38 for c in range(3)], st["mean"], 0.38, color=CHANNEL_COLOURS,
               alpha=1.0 if j == 0 else 0.45, edgecolor="black", hatch=hatch, yerr=st["std"], capsize=3,
               label=f"{name}" + (f" ({n})" if name == "samples" else " (training images)"))
    ax.set_xticks(range(3), list(CHANNELS))
    ax.set(ylim=(0, 1), ylabel="mean (bar) and std (line)")
    ax.set_title("colour: samples against the data", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def plot_accuracy_by_sigma(levels: Sequence[float], accuracy: Sequence[float], n: int, label: str = "classifier",
                           title: str = ""):
    """Accuracy on ``n`` held-out images at each noise level, each with its 95% Wilson interval as a bar, the
    coin toss (0.5) dashed; sigma = 0 is drawn at 0.01 on the log axis."""
    import matplotlib.pyplot as plt

    from .intervals import wilson_interval

    if len(levels) != len(accuracy):
        raise ValueError(f"plot_accuracy_by_sigma: {len(levels)} levels but {len(accuracy)} accuracies: one per level.")
    x = [max(float(s), 0.01) for s in levels]
    acc = [float(a) for a in accuracy]
    bounds = [wilson_interval(round(a * n), n) for a in acc]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.errorbar(x, acc, yerr=[[a - lo for a, (lo, _) in zip(acc, bounds)], [hi - a for a, (_, hi) in zip(acc, bounds)]],
                fmt="o-", capsize=3, label=f"{label} (95% Wilson interval)")
    ax.axhline(0.5, color="black", ls="--", lw=1, label="coin toss")
    ax.set_xscale("log")
    ax.set(title=title or f"held-out accuracy ({n} test images)", xlabel="sigma (0 drawn at 0.01)",
           ylabel="accuracy", ylim=(0.3, 1.0))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
