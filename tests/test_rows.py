"""A pegasus row judged along its whole length: crossing, band, undecided images, monotony, by hand."""


import pytest
import torch

from pegasus_course.checks import float32_tolerance
from pegasus_course.evaluation import RowJudgement, judge_row, row_probabilities

RAMP = [1 - k / 16 for k in range(17)]  # p = 1 - k/16, k = 0..16
SLOW_TURN = [round(0.95 - 0.1 * k, 10) for k in range(10)] + [round(0.05 + 0.019 * k, 10) for k in range(1, 11)]


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
    # the reviewer's row: falls 0.95 .. 0.05 in steps of 0.1 (crosses 0.5 at 4.5; below 0.9 at 0.5 and below 0.1 at
    # 8.5: band 8; 0.55 and 0.45 undecided), then climbs back to 0.24 in ten steps of 0.019, each under the
    # 0.02 slack, but 0.19 above the lowest point: it turns back
    (SLOW_TURN, None, 4.5, 8.0, [4, 5], False, "horse"),
    # p = 0.5 exactly is bird (as in crosses, pair_kind, crossing_band): this row starts bird and turns horse
    # between k = 0 and 1, at k = 0 where the line meets 0.5 (before: a horse end that never crossed)
    ([0.5, 0.6, 1.0], None, 0.0, None, [0, 1], True, "bird"),
    # a horse end that reaches 0.5 at k = 1 is bird there: the crossing is at k = 1, not at k = 2 (before)
    ([1.0, 0.5, 0.5, 0.0], None, 1.0, 2.8 - 0.2, [1, 2], True, "horse"),
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


from judges import FixedOdds  # noqa: E402  (tests/judges.py)


def test_row_probabilities_judges_every_image_of_every_row():
    want = torch.tensor([[0.9, 0.6, 0.2], [0.3, 0.5, 0.8]])
    rows = torch.ones(2, 3, 3, 4, 4)
    rows[:, :, 0, 0, 0], rows[:, :, 1, 0, 0] = want, 1 - want
    got = row_probabilities(FixedOdds(), rows)
    assert got.shape == (2, 3) and torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(row_probabilities(FixedOdds(), rows, "bird", "horse"), 1 - want, atol=1e-6)
    with pytest.raises(ValueError, match=r"rows\[None\]"):
        row_probabilities(FixedOdds(), rows[0])


@pytest.mark.parametrize("p", [[0.5, 0.6, 1.0], [1.0, 0.5, 0.5, 0.0], [0.2, 0.5, 0.9], [0.9, 0.5], RAMP, SLOW_TURN])
def test_one_rule_calls_an_image_horse_everywhere(p):
    """p(horse) = 0.5 exactly is bird for the row, its band, the ends and the pair kinds alike."""
    from pegasus_course.evaluation import crosses, pair_kind
    from pegasus_course.plotting_quality import crossing_band

    got, band = judge_row(p), crossing_band(range(len(p)), p)
    assert (got.crossing is None) == (band is None)
    if band is not None:
        assert band[0] <= got.crossing <= band[1]
    assert got.starts_as == pair_kind(p[0], p[0]).split("-")[0]
    assert (pair_kind(p[0], p[-1]) == "horse-bird") == bool(crosses(torch.tensor([p[0]]), torch.tensor([p[-1]]))[0])
