"""Legible figures: 100 dpi, thumbnails of an inch, and wide rows wrapped so no image is drawn under 48 px."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pegasus_course import plotting as P  # noqa: E402


@pytest.fixture(autouse=True)
def _plots():
    P.setup_plots()
    yield
    plt.close("all")


def _images(n, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _drawn_image_px(fig) -> float:
    """Screen pixels one 32-pixel image spans in the figure's only axes (the canvas is shown at equal aspect)."""
    fig.canvas.draw()
    ax = fig.axes[0]
    canvas_w = ax.images[0].get_array().shape[1]
    return ax.get_window_extent().width * 32 / canvas_w


def test_setup_plots_draws_at_100_dpi():
    assert matplotlib.rcParams["figure.dpi"] == 100 and matplotlib.rcParams["savefig.dpi"] == 100


def test_thumbnail_layout_hand_worked_cases():
    # 8 images, 0.3 in of margins: one line at an inch each (8 x 1.0625 + 0.0625 = 8.56 in <= 10.5)
    assert P.thumbnail_layout(8, 1.0, margin=0.3, dpi=100) == (8, 1, 1.0)
    # a pegasus row, N = 15, with row labels (1.55 in): 8.95 / (17 x 1.0625 + 0.0625) = 0.494 in = 49 px
    cols, lines, size = P.thumbnail_layout(17, 1.5, margin=1.55, dpi=100)
    assert (cols, lines) == (17, 1) and size == pytest.approx(8.95 / 18.125)
    # 07's guided rows under the gpu profile, 64 wide: 13 px in one line, so wrapped. At most
    # floor((895 / 48 - 0.0625) / 1.0625) = 17 a line, so 4 lines, evened out to 16 each, 0.525 in = 52 px
    cols, lines, size = P.thumbnail_layout(64, 1.3, margin=1.55, dpi=100)
    assert (cols, lines) == (16, 4) and size == pytest.approx(8.95 / 17.0625)
    assert size * 100 >= P.MIN_THUMB_PX
    with pytest.raises(ValueError, match="at least one image"):
        P.thumbnail_layout(0)


def test_wide_rows_wrap_and_no_image_falls_under_48_px():
    rows = torch.stack([_images(64, 0), _images(64, 1)])
    fig = P.show_rows(rows, row_labels=["w = 0", "w = 3"], title="guided", scale=1.3, highlight=5)
    assert fig.get_size_inches()[0] <= P.MAX_FIG_WIDTH + 1e-9
    assert _drawn_image_px(fig) >= P.MIN_THUMB_PX
    # 2 rows x 4 lines of 16; 8 px between the two rows' blocks: 2 + 8 x 34 + 8 high, 2 + 16 x 34 wide
    assert fig.axes[0].images[0].get_array().shape[:2] == (282, 546)
    frames = fig.axes[0].patches  # image 5 of each row: line 0 (and 4), column 5
    assert len(frames) == 2 and [f.get_xy() for f in frames] == [(2 + 5 * 34 - 1.5, 2 - 1.5),
                                                                 (2 + 5 * 34 - 1.5, 2 + 4 * 34 + 8 - 1.5)]


def test_a_pegasus_row_stays_one_line_with_its_labels():
    fig = P.show_rows(_images(17)[None], highlight=9, col_labels=[f"k = {k}" for k in range(17)], scale=1.5)
    assert fig.axes[0].images[0].get_array().shape[1] == 2 + 17 * 34  # one line of 17
    assert _drawn_image_px(fig) >= P.MIN_THUMB_PX
    assert [t.get_text() for t in fig.axes[0].texts] == [f"k = {k}" for k in range(17)]


def test_thumbnails_are_an_inch_and_every_image_gets_its_label():
    fig = P.show_images(_images(20), nrow=8, labels=[f"seed {i}" for i in range(20)], title="seeds")
    assert _drawn_image_px(fig) == pytest.approx(100, abs=1)  # an inch at 100 dpi
    assert fig.get_size_inches()[0] * 100 >= 500  # the committed figure is at least 500 px wide
    assert len(fig.axes[0].texts) == 20
    tall = P.show_images(_images(32), nrow=32)  # too many columns for the width: fewer columns, not tiny images
    assert _drawn_image_px(tall) >= P.MIN_THUMB_PX


def test_colour_stats_name_the_sets_in_a_legend_not_inside_the_bars():
    ref = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}
    fig = P.plot_colour_stats(ref, {"EMA": ref, "live": ref})
    ax = fig.axes[0]
    assert len(ax.texts) == 0 and [t.get_text() for t in ax.get_legend().get_texts()] == ["data", "EMA", "live"]


def test_save_images_names_each_file_by_its_seed(tmp_path):
    from pegasus_course.plotting import save_images

    imgs = torch.rand(3, 3, 8, 8)
    paths = save_images(imgs, tmp_path / "a", prefix="seed", numbers=range(5, 8))
    assert [p.name for p in paths] == ["seed-005.png", "seed-006.png", "seed-007.png"]
    assert [p.name for p in save_images(imgs[:2], tmp_path / "b")] == ["sample-000.png", "sample-001.png"]
    with pytest.raises(ValueError, match="3 images but 2 numbers"):
        save_images(imgs, tmp_path / "c", numbers=[1, 2])


def test_plot_row_judgements_draws_one_line_per_class_in_each_row_panel():
    from pegasus_course.plotting_rows import plot_row_judgements

    ks = [0, 1, 2, 3]
    p_horse = torch.tensor([[0.9, 0.7, 0.3, 0.1], [0.2, 0.3, 0.6, 0.8], [0.5, 0.5, 0.5, 0.5]])
    fig = plot_row_judgements(ks, p_horse, 1 - p_horse, ["a", "b", "c"], crossings=[1.5, None, None])
    assert fig.get_figwidth() * fig.dpi >= 500
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["a", "b", "c"]  # two columns: the fourth place is left empty
    for r, ax in enumerate(panels):
        labelled = [line.get_label() for line in ax.lines if not line.get_label().startswith("_")]
        assert labelled.count("p(horse)") == 1 and labelled.count("p(bird)") == 1
        (horse,) = [line for line in ax.lines if line.get_label() == "p(horse)"]
        assert list(horse.get_ydata()) == pytest.approx(p_horse[r].tolist())
        assert any(lab.startswith("crossing k = 1.5") for lab in labelled) == (r == 0)
    plt.close(fig)
    with pytest.raises(ValueError, match="one label per row"):
        plot_row_judgements(ks, p_horse, 1 - p_horse, ["a", "b"])
