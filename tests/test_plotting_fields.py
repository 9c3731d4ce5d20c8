"""The toy's and the schedule's figures (plotting_fields, plotting_noise) draw what notebooks 01-03 say they do."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pegasus_course import plotting, plotting_fields, plotting_noise, toy  # noqa: E402


@pytest.fixture(autouse=True)
def _plots():
    plotting.setup_plots()
    yield
    plt.close("all")


def _wide_enough(fig) -> bool:
    return fig.get_size_inches()[0] * fig.dpi >= 500


def test_old_names_still_work():
    assert plotting.score_field is plotting_fields.score_field
    assert plotting.scatter_2d is plotting_fields.scatter_2d
    assert plotting.score_error_map is plotting_fields.score_error_map
    assert plotting.shell_overlap is plotting_noise.shell_overlap


def test_score_field_marks_modes_and_the_flip_line_where_the_score_flips():
    gm = toy.two_gaussians(0.2, 5.0)
    levels = [0.1, 10.0]
    flips = [toy.flip_point(gm, s) for s in levels]
    fig = plotting.score_field(gm.score, levels, density=gm.log_prob, modes=gm.means, flips=flips)
    assert _wide_enough(fig)
    first, second = fig.axes[0], fig.axes[1]
    assert "flip at x1 + x2 = -0.14" in first.get_title()  # (ln 4 / 10) (1 + 0.01) = 0.140, a little beyond
    assert "no flip" in second.get_title()
    dashed = [line for line in first.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    xs, ys = dashed[0].get_data()
    assert [x + y for x, y in zip(xs, ys)] == pytest.approx([float(flips[0].sum())] * 2, abs=1e-6)
    crosses = [line for line in first.get_lines() if line.get_marker() == "x"]
    assert crosses and list(crosses[0].get_xdata()) == pytest.approx([-5.0, 5.0])
    assert list(first.get_xticks()) == [-8, -4, 0, 4, 8] and len(first.collections) == 1  # ticks, one quiver


def test_score_field_refuses_flips_without_the_modes():
    gm = toy.two_gaussians(0.2, 5.0)
    with pytest.raises(ValueError, match="flips needs the two modes"):
        plotting.score_field(gm.score, [1.0], flips=[None])


def test_scatter_panels_keep_their_ticks():
    fig = plotting.scatter_2d({"a": torch.zeros(3, 2), "b": torch.ones(3, 2)})
    assert _wide_enough(fig)
    assert all(list(ax.get_xticks()) == [-8, -4, 0, 4, 8] for ax in fig.axes)


def test_shell_overlap_counts_the_draws_in_the_band_and_keeps_the_legend_below():
    # D = 2, gamma = 2: level i's band is 2 (sqrt 2 +- 3 / sqrt 2) / sqrt 2 = (-1, 5) in units of sqrt(D);
    # lengths / sqrt 2 = 0.5, 4, 6, 7: two of the four inside.
    lengths = math.sqrt(2) * torch.tensor([0.5, 4.0, 6.0, 7.0])
    fig = plotting.shell_overlap(lengths, 2, {"hand": 2.0})
    assert _wide_enough(fig)
    assert fig.axes[0].get_title().endswith("0.50")
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert legend.y1 <= min(ax.get_window_extent().y0 for ax in fig.axes)


def test_overlap_cost_marks_the_levels_each_overlap_needs():
    fig = plotting.overlap_cost(3072, 50.0, 0.01, {"technique 2": 0.5})
    assert _wide_enough(fig)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["technique 2: overlap 0.50, L = 220"]  # notebook 02's rule for CIFAR-10


def test_level_similarity_masks_the_diagonal_and_plots_the_band_beside_it():
    m = torch.tensor([[1.0, 0.2, 0.0], [0.2, 1.0, 0.7], [0.0, 0.7, 1.0]])
    fig = plotting.level_similarity_figure({"hand": m}, torch.tensor([4.0, 2.0, 1.0]))
    assert _wide_enough(fig)
    shown = fig.axes[0].images[0].get_array()
    assert all(bool(shown.mask[i, i]) for i in range(3)) and float(shown[0, 1]) == pytest.approx(0.2)
    line = fig.axes[-1].get_lines()[0]
    assert list(line.get_xdata()) == [4.0, 2.0] and list(line.get_ydata()) == pytest.approx([0.2, 0.7])


def test_score_length_ratio_says_how_much_shorter_at_the_smallest_sigma():
    fig = plotting.score_length_ratio([50.0, 1.0, 0.01], {"model": [1.0, 0.9, 0.81]}, annotate="model")
    assert _wide_enough(fig)
    assert [t.get_text() for t in fig.axes[0].texts] == ["19% shorter at sigma = 0.01"]

