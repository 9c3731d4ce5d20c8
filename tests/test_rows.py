"""A pegasus row judged along its whole length: crossing, band, undecided images, monotony, by hand."""

from types import SimpleNamespace

import pytest
import torch

from pegasus_course.checks import float32_tolerance
from pegasus_course.evaluation import RowJudgement, judge_row, row_probabilities

RAMP = [1 - k / 16 for k in range(17)]  # p = 1 - k/16, k = 0..16


@pytest.mark.parametrize("p, ks, crossing, band, both, monotone, starts_as", [
    # a step between k = 2 and 3: 1 -> 0 crosses 0.5 at 2.5, 0.9 at 2.1 and 0.1 at 2.9: band 0.8
    ([1, 1, 1, 0, 0, 0], None, 2.5, 0.8, [], True, "horse"),
    # the ramp: p = 0.5 at k = 8; below 0.9 from k = 1.6, below 0.1 from k = 14.4: band 12.8;
    # 0.4 <= 1 - k/16 <= 0.6 for k in 6.4..9.6: k = 7, 8, 9
    (RAMP, None, 8.0, 12.8, [7, 8, 9], True, "horse"),
    # the same ramp at half the spacing of k: everything halves
    (RAMP, [k / 2 for k in range(17)], 4.0, 6.4, [3.5, 4.0, 4.5], True, "horse"),
    # the ramp read from its bird end: p(bird) falls where p(horse) rises, same numbers
    (RAMP[::-1], None, 8.0, 12.8, [7, 8, 9], True, "bird"),
    # never crosses: dips to 0.7 and comes back (below 0.9 from k = 1.0, never below 0.1)
    ([0.95, 0.9, 0.8, 0.7, 0.8, 0.9, 0.97], None, None, None, [], False, "horse"),
    # crosses, turns back, crosses again: first crossing 0.5/0.7 = 0.714; below 0.9 at 0.1/0.7 = 0.143,
    # below 0.1 first at 2 + 0.6/0.7 = 2.857: band 19/7 = 2.714
    ([1.0, 0.3, 0.7, 0.0], None, 5 / 7, 19 / 7, [], False, "horse"),
    # the judge cannot call the middle: 0.55 and 0.45 are both "both"
    ([0.8, 0.55, 0.45, 0.2], None, 1.5, None, [1, 2], True, "horse"),
    # a wobble of 0.01 back up is the judge's noise, not a turn: crosses 0.5 on 0.61 -> 0 at 2 + 0.11/0.61,
    # below 0.9 at 0.1/0.4 = 0.25, below 0.1 at 2 + 0.51/0.61; only 0.6 lies in 0.4..0.6
    ([1.0, 0.6, 0.61, 0.0], None, 2 + 0.11 / 0.61, 2 + 0.51 / 0.61 - 0.25, [1], True, "horse"),
])
def test_judge_row_by_hand(p, ks, crossing, band, both, monotone, starts_as):
    got = judge_row(p, ks)
    assert isinstance(got, RowJudgement)
    assert (got.crossing is None) == (crossing is None) and (got.band_width is None) == (band is None)
    if crossing is not None:
        assert got.crossing == pytest.approx(crossing, abs=1e-9)
    if band is not None:
        assert got.band_width == pytest.approx(band, abs=1e-9)
    assert got.both_classes == pytest.approx(both) and got.monotone is monotone and got.starts_as == starts_as
    assert judge_row(torch.tensor(p, dtype=torch.float64), ks) == got  # a tensor reads the same as a list
    if crossing is not None:  # float32 probabilities (a judge's output) move the crossing by float32 roundings
        assert judge_row(torch.tensor(p), ks).crossing == pytest.approx(crossing, abs=float32_tolerance(16.0))
    assert starts_as in got.describe()


def test_judge_row_threshold_moves_the_crossing():
    assert judge_row(RAMP, threshold=0.25).crossing == pytest.approx(12.0)  # 1 - k/16 = 0.25 at k = 12
    assert judge_row(RAMP, threshold=0.75).crossing == pytest.approx(4.0)


@pytest.mark.parametrize("p, ks, threshold, error, match", [
    ([[1.0, 0.0], [1.0, 0.0]], None, 0.5, ValueError, "one row at a time"),
    ([1.0], None, 0.5, ValueError, "K >= 2"),
    ([1.0, 1.2], None, 0.5, ValueError, r"in \[0, 1\]"),
    ([1.0, float("nan")], None, 0.5, ValueError, r"in \[0, 1\]"),
    ([1.0, 0.0], [0, 1, 2], 0.5, ValueError, "2 finite numbers"),
    ([1.0, 0.5, 0.0], [0, 2, 1], 0.5, ValueError, "increase"),
    ([1.0, 0.0], None, 1.0, ValueError, "strictly between"),
])
def test_judge_row_refuses_bad_input(p, ks, threshold, error, match):
    with pytest.raises(error, match=match):
        judge_row(p, ks, threshold)


class FixedOdds(torch.nn.Module):
    """A judge whose horse:bird odds are the image's first two pixels (red / green)."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(class_names=("bird", "horse"), num_classes=2)
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        logit_horse = x[:, 0, 0, 0].log() - x[:, 1, 0, 0].log()
        return torch.stack([torch.zeros_like(logit_horse), logit_horse], 1) + 0 * self.p


def test_row_probabilities_judges_every_image_of_every_row():
    want = torch.tensor([[0.9, 0.6, 0.2], [0.3, 0.5, 0.8]])
    rows = torch.ones(2, 3, 3, 4, 4)
    rows[:, :, 0, 0, 0], rows[:, :, 1, 0, 0] = want, 1 - want
    got = row_probabilities(FixedOdds(), rows)
    assert got.shape == (2, 3) and torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(row_probabilities(FixedOdds(), rows, "bird", "horse"), 1 - want, atol=1e-6)
    with pytest.raises(ValueError, match=r"rows\[None\]"):
        row_probabilities(FixedOdds(), rows[0])
