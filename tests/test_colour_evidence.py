"""Colour-shift evidence and its figures: shifts with standard errors, worked by hand on constant images."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pegasus_course import plotting as P  # noqa: E402
from pegasus_course import plotting_quality as Q  # noqa: E402
from pegasus_course.colour_evidence import (ChannelShift, channel_means, paired_shift, shift_bound_from_stats,  # noqa: E402
                                            shift_from)


@pytest.fixture(autouse=True)
def _plots():
    P.setup_plots()
    yield
    plt.close("all")


def flat(*rgb_per_image):
    """Images whose every pixel of a channel holds one value: their channel means are those values."""
    return torch.tensor(rgb_per_image, dtype=torch.float32)[:, :, None, None].expand(-1, 3, 4, 4).clone()


def test_channel_means_of_flat_images():
    assert torch.allclose(channel_means(flat((0.2, 0.5, 0.9), (0.0, 1.0, 0.25))),
                          torch.tensor([[0.2, 0.5, 0.9], [0.0, 1.0, 0.25]]))


def test_shift_from_hand_worked():
    # red: 0.2 and 0.4 against 0.25 -> shifts -0.05, +0.15: mean 0.05, sample std 0.1 * sqrt(2), s.e. 0.1
    # green: 0.5 and 0.5 against 0.5 -> 0, s.e. 0; blue: 0.1 and 0.3 against 0.0 -> 0.2, s.e. 0.1
    sh = shift_from(flat((0.2, 0.5, 0.1), (0.4, 0.5, 0.3)), [0.25, 0.5, 0.0])
    assert sh.n == 2
    assert sh.mean == pytest.approx((0.05, 0.0, 0.2), abs=1e-6)
    assert sh.se == pytest.approx((0.1, 0.0, 0.1), abs=1e-6)
    assert sh.interval(2, z=1.5) == pytest.approx((0.05, 0.35), abs=1e-6)
    assert [sh.excludes_zero(c, z=1.5) for c in range(3)] == [False, False, True]
    assert sh.describe() == "red +0.050 +- 0.200, green +0.000 +- 0.000, blue +0.200 +- 0.200"


def test_paired_shift_takes_differences_seed_by_seed():
    # differences 0.1 and 0.3 in every channel: mean 0.2, s.e. 0.1 (an unpaired comparison would see the
    # 0.2 spread of b's scenes as well)
    a = flat((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    b = flat((0.4, 0.4, 0.4), (0.2, 0.2, 0.2))
    sh = paired_shift(a, b)
    assert sh.mean == pytest.approx((0.2,) * 3, abs=1e-6) and sh.se == pytest.approx((0.1,) * 3, abs=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: shift_from(flat((0.1, 0.1, 0.1)), [0, 0, 0]), "at least 2 images"),
    (lambda: shift_from(flat((0.1, 0.1, 0.1), (0.2, 0.2, 0.2)), [0, 0]), "one per channel"),
    (lambda: paired_shift(flat((0.1, 0.1, 0.1)), flat((0.1, 0.1, 0.1), (0.2, 0.2, 0.2))), "same seeds"),
    (lambda: channel_means(torch.zeros(2, 3, 4, 4, dtype=torch.uint8)), "float images"),
])
def test_bad_input_says_what_to_do(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("ks, p, band", [
    ([0, 5, 9, 16], [0.94, 0.97, 0.02, 0.0], (5.0, 9.0)),  # one change, between the measured k = 5 and k = 9
    ([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.6], None),  # horse all along: no crossing measured
    ([0, 1, 2, 3], [0.9, 0.2, 0.8, 0.1], (0.0, 3.0)),  # back and forth: one band over every change
    ([0, 4, 8], [0.1, 0.5, 0.9], (4.0, 8.0)),  # 0.5 itself counts as bird (not above the threshold)
])
def test_crossing_band_hand_worked(ks, p, band):
    assert Q.crossing_band(ks, p) == band


def test_crossing_band_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="one per k"):
        Q.crossing_band([0, 1], [0.5])


def test_row_judgement_draws_points_without_lines_and_shades_the_band():
    fig = Q.plot_row_judgement([0, 5, 9, 16], {"judge": [0.94, 0.97, 0.02, 0.0], "other": [1, 1, 0, 0]})
    ax = fig.axes[0]
    assert all(line.get_linestyle() == "None" for line in ax.lines if len(line.get_xdata()) == 4)
    spans = [p for p in ax.patches if p.get_label().startswith("judge:")]
    assert len(spans) == 1
    assert fig.get_figwidth() * fig.dpi >= 500


def test_quality_figure_draws_intervals_and_a_shift_axis_that_fits():
    sh = ChannelShift((0.07, 0.07, 0.09), (0.01, 0.01, 0.01), 16)
    # the floor's bootstrap interval lies above its estimate (resampling repeats images): still drawn
    fig = Q.plot_quality_intervals({"floor": (3.3, 4.9, 9.2), "samples": 5.0}, {"random": (0.41, 0.25, 0.58)},
                                   {"live": sh}, n=64)
    assert len(fig.axes) == 3 and fig.get_figwidth() * fig.dpi >= 500
    (segment,) = fig.axes[0].collections
    assert segment.get_segments()[0][:, 0].tolist() == [4.9, 9.2]
    lo, hi = fig.axes[2].get_ylim()
    assert lo <= 0 and hi < 0.5  # the axis shows shifts of a few hundredths, not the 0-1 range
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["red", "green", "blue"]
    with pytest.raises(TypeError, match="ChannelShift"):
        Q.plot_colour_shifts({"live": (0.1, 0.1, 0.1)})


def test_shift_bound_from_pooled_stats_hand_worked():
    # mean 0.6/0.5/0.4 against 0.5: shifts +0.1, 0, -0.1; pixel std 0.2 over 5 images: s.e. at most 0.2 / 2
    sh = shift_bound_from_stats({"mean": [0.6, 0.5, 0.4], "std": [0.2, 0.2, 0.2]}, 5, [0.5, 0.5, 0.5])
    assert sh.mean == pytest.approx((0.1, 0.0, -0.1)) and sh.se == pytest.approx((0.1, 0.1, 0.1)) and sh.n == 5


def test_shift_bound_is_at_least_the_measured_standard_error():
    from pegasus_course.evaluation import colour_stats

    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * torch.rand(16, 1, 1, 1)
    measured = shift_from(images, [0.5, 0.5, 0.5])
    bound = shift_bound_from_stats(colour_stats(images), 16, [0.5, 0.5, 0.5])
    assert bound.mean == pytest.approx(measured.mean, abs=1e-5)
    assert all(b >= m for b, m in zip(bound.se, measured.se))


@pytest.mark.parametrize("stats, n, ref, message", [
    ({"mean": [0.5] * 3}, 4, [0.5] * 3, "three 'std'"),
    ({"mean": [0.5] * 3, "std": [0.1] * 3}, 1, [0.5] * 3, "n"),
    ({"mean": [0.5] * 3, "std": [0.1] * 3}, 4, [0.5] * 2, "one per channel"),
])
def test_shift_bound_bad_input(stats, n, ref, message):
    with pytest.raises(ValueError, match=message):
        shift_bound_from_stats(stats, n, ref)


def test_notebook_07s_figures_from_the_committed_records():
    """What notebook 07 draws from the records: rates with Wilson intervals, the 64 samples' colour bound,
    and the live and EMA samples of the same 16 seeds, paired."""
    import json

    from pegasus_course import evaluation

    quality = json.loads(evaluation.QUALITY_RECORD.read_text())
    rows = quality["n"] // 2
    rates = {k: (r, *evaluation.wilson_interval(round(r * rows), rows)) for k, r in quality["pegasus_rate"].items()}
    assert all(lo <= r <= hi for r, lo, hi in rates.values())
    bound = shift_bound_from_stats(quality["colour"]["samples"], quality["n"], quality["colour"]["data"]["mean"])
    fig = Q.plot_quality_intervals(quality["frechet_distance"], rates, {"EMA samples": bound}, quality["n"])
    assert len(fig.axes) == 3
    figs = evaluation.load_quality_figures()
    paired = paired_shift(figs.images["live"], figs.images["ema"])
    assert paired.n == len(figs.seeds("live")) >= 16


def test_accuracy_by_sigma_draws_each_level_with_its_wilson_interval():
    from pegasus_course.intervals import wilson_interval

    fig = Q.plot_accuracy_by_sigma([0.0, 1.0, 50.0], [0.9, 0.75, 0.5], 32)
    (bars,) = [c for c in fig.axes[0].collections if len(c.get_segments()) == 3]
    lo, hi = wilson_interval(24, 32)  # 0.75 of 32 images
    assert bars.get_segments()[1][:, 1] == pytest.approx([lo, hi])
    assert bars.get_segments()[0][0, 0] == pytest.approx(0.01)  # sigma = 0 at 0.01 on the log axis
    with pytest.raises(ValueError, match="one per level"):
        Q.plot_accuracy_by_sigma([0.0, 1.0], [0.9], 32)


def test_the_channel_names_are_defined_once():
    from pegasus_course import colour_evidence, evaluation, plotting_quality

    assert evaluation.CHANNELS is colour_evidence.CHANNELS is plotting_quality.CHANNELS
