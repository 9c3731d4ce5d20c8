"""The doctor's page at a notebook's width: 1,050 px wide, no text under 9 pt, the text report wrapped to fit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from pegasus_course import doctor_figure as DF  # noqa: E402
from pegasus_course.doctor import StationaryGaussianScore, examine  # noqa: E402
from pegasus_course.schedule_from_data import data_schedule  # noqa: E402
from tests.test_schedule_doctor import smooth_images  # noqa: E402


@pytest.fixture(scope="module")
def report():
    train, held = smooth_images(256, seed=0), smooth_images(32, seed=1)
    ds = data_schedule(train)
    return examine(StationaryGaussianScore(train), ds.schedule(), held, train, data=ds, n_levels=4)


def test_text_width_hand_worked():
    # 9 pt monospace as drawn: 0.64 x 9 / 72 = 0.08 in a character; (10.2 - 0.3) / 0.08 = 123.75 characters
    assert DF.text_width() == 123
    assert DF.text_width(6.3) == 75  # (6.3 - 0.3) / 0.08


@pytest.mark.parametrize("line, width, expected", [
    ("short", 20, ["short"]),
    ("[ok]   one two three four", 14, ["[ok]   one two", "       three", "       four"]),  # under the text
    ("  a b c d", 5, ["  a b", "  c d"]),  # an indented line keeps its indent
    ("", 10, [""]),
])
def test_wrap_report_hand_worked(line, width, expected):
    assert DF.wrap_report([line], width) == expected


@pytest.mark.parametrize("text", [False, True])
def test_page_fits_the_notebook_and_is_legible(report, text):
    fig = report.figure(text=text)
    assert 500 <= fig.get_figwidth() * fig.dpi <= 1050
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]
    assert min(sizes) >= DF.MIN_FONT
    if text:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig).draw()
        (block,) = [t for t in fig.findobj(matplotlib.text.Text) if t.get_family() == ["monospace"]]
        assert max(len(line) for line in block.get_text().splitlines()) <= DF.text_width()
        assert block.get_window_extent().x1 <= fig.get_figwidth() * fig.dpi  # drawn, it fits the page
