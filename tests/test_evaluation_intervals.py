"""Intervals (Wilson, bootstrap, Frechet distance), the judge's accuracy and its top candidates, by hand."""


import pytest
import torch

from pegasus_course import evaluation
from pegasus_course.evaluation import (
    bootstrap_interval,
    ends_rate,
    frechet_distance,
    frechet_distance_interval,
    judge_accuracy,
    pegasus_rate,
    top_candidates,
    wilson_interval,
)


@pytest.mark.parametrize("successes, n, level, lo, hi", [
    (13, 32, 0.95, 0.2552, 0.5774),  # the 13/32: about 25% to 58%
    (13, 32, 0.90, 0.2762, 0.5509),  # z = 1.6449: narrower
    (5, 10, 0.95, 0.2366, 0.7634),   # p = 1/2: centred on 0.5
    (6, 8, 0.95, 0.4093, 0.9285),
    (128, 256, 0.95, 0.4392, 0.5608),
    (0, 10, 0.95, 0.0, 0.2775),      # 0/n: lo = 0, hi = z^2 / (n + z^2)
    (10, 10, 0.95, 0.7225, 1.0),     # n/n: lo = n / (n + z^2), hi = 1
    (1, 1, 0.95, 0.2065, 1.0),
])
def test_wilson_interval_by_hand(successes, n, level, lo, hi):
    """Hand values from p = s/n, z = Phi^-1((1 + level) / 2) (1.95996 for 0.95, 1.64485 for 0.90):
    centre = (p + z^2/2n) / (1 + z^2/n), half = z / (1 + z^2/n) * sqrt(p(1 - p)/n + z^2/4n^2),
    interval = centre -+ half. E.g. 13/32: centre = (0.40625 + 0.06002) / 1.12005 = 0.41630,
    half = 1.74988 * sqrt(0.0075378 + 0.0009379) = 0.16110, so (0.2552, 0.5774)."""
    got = wilson_interval(successes, n, level)
    assert got == pytest.approx((lo, hi), abs=6e-5)
    assert 0.0 <= got[0] <= successes / n <= got[1] <= 1.0


@pytest.mark.parametrize("args, error, match", [
    ((14, 13), ValueError, "at most 13"),
    ((-1, 10), ValueError, "at least 0"),
    ((3, 0), ValueError, "at least 1"),
    ((1.5, 10), TypeError, "integer"),
    ((3, 10, 1.0), ValueError, "strictly between 0 and 1"),
    ((3, 10, 95), ValueError, "strictly between 0 and 1"),
])
def test_wilson_interval_refuses_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        wilson_interval(*args)


@pytest.mark.parametrize("values, z, dim, mean, half", [
    ([1.0, 3.0], 2.0, None, 2.0, 2.0),  # sd sqrt(2), se sqrt(2)/sqrt(2) = 1
    ([1.0, 3.0], 1.0, None, 2.0, 1.0),
    ([0.0, 0.0, 0.0, 4.0], 2.0, None, 1.0, 2.0),  # sd 2, se 1
    ([[1.0, 3.0], [3.0, 5.0]], 2.0, 0, [2.0, 4.0], [2.0, 2.0]),  # per column
    ([[1.0, 3.0], [3.0, 7.0]], 1.0, 1, [2.0, 5.0], [1.0, 2.0]),  # per row
])
def test_mean_se_by_hand(values, z, dim, mean, half):
    from pegasus_course.intervals import mean_se

    m, h = mean_se(values, z=z, dim=dim)
    assert torch.as_tensor(m).tolist() == pytest.approx(mean) and torch.as_tensor(h).tolist() == pytest.approx(half)


def test_every_mean_with_an_interval_is_mean_se():
    """training_report's 2 SE, colour_evidence's and the doctor's 1 SE are one helper's."""
    from pegasus_course import colour_evidence, doctor, training_report
    from pegasus_course.intervals import mean_se

    v = [0.3, 0.9, 0.4, 1.7, 0.2]
    assert training_report.mean_2se(v) == pytest.approx(mean_se(v, z=2.0))
    assert doctor._mean_se(torch.tensor(v)) == pytest.approx(mean_se(v, z=1.0))
    assert doctor._mean_se(torch.tensor([0.3])) == (pytest.approx(0.3), float("inf"))  # one image: no verdict
    x = torch.zeros(2, 3, 2, 2)
    x[0, 0], x[1, 0] = 0.25, 0.75  # red channel means 0.25 and 0.75: shift 0.5 - 0.5 = 0, se 0.25
    shift = colour_evidence.shift_from(x, (0.5, 0.0, 0.0))
    assert shift.mean == pytest.approx((0.0, 0.0, 0.0)) and shift.se == pytest.approx((0.25, 0.0, 0.0))


@pytest.mark.parametrize("args, match", [(([1.0],), "at least 2"), (([1.0, 2.0], -1.0), "z"),
                                         (([1.0, 2.0], float("nan")), "z")])
def test_mean_se_refuses_bad_input(args, match):
    from pegasus_course.intervals import mean_se

    with pytest.raises(ValueError, match=match):
        mean_se(*args)


def test_bootstrap_of_a_mean_matches_its_standard_error():
    """The bootstrap spread of a mean of n draws is the sample's spread / sqrt(n) (population form), so the 95%
    interval is about mean -+ 1.96 * s / sqrt(n): for N(0, 1) draws and n = 400, -+ 0.098."""
    x = torch.randn(400, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    est, lo, hi = bootstrap_interval(lambda v: v.mean(), x, n_boot=2000, seed=1)
    half = 1.959964 * float(x.std(unbiased=False)) / 400 ** 0.5
    assert est == pytest.approx(float(x.mean()))
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(est, abs=0.02)
    assert half == pytest.approx(0.098, abs=0.01)  # N(0, 1): s is about 1


def test_bootstrap_is_deterministic_for_a_seed_and_resamples_each_sample():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(50, generator=g), torch.randn(80, generator=g) + 1.0
    diff = lambda u, v: u.mean() - v.mean()  # noqa: E731
    first, again, other = (bootstrap_interval(diff, a, b, seed=s) for s in (7, 7, 8))
    assert first == again and first[1:] != other[1:] and first[0] == other[0]
    est, lo, hi = first
    assert lo <= est <= hi and lo < hi
    # lists work too, and a narrower level gives a narrower interval
    _, lo90, hi90 = bootstrap_interval(lambda v: v.mean(), a.tolist(), level=0.9, seed=7)
    _, lo95, hi95 = bootstrap_interval(lambda v: v.mean(), a.tolist(), level=0.95, seed=7)
    assert lo95 <= lo90 < hi90 <= hi95


@pytest.mark.parametrize("call, error, match", [
    (lambda: bootstrap_interval(torch.randn(5)), TypeError, "statistic"),
    (lambda: bootstrap_interval(lambda x: x.mean()), ValueError, "no samples"),
    (lambda: bootstrap_interval(lambda x: x.mean(), torch.randn(1)), ValueError, "at least two rows"),
    (lambda: bootstrap_interval(lambda x: x, torch.randn(5)), ValueError, "one number"),
    (lambda: bootstrap_interval(lambda x: x.mean(), torch.randn(5), n_boot=3), ValueError, "at least 10"),
    (lambda: bootstrap_interval(lambda x: x.mean(), torch.randn(5), level=0), ValueError, "strictly between"),
    (lambda: bootstrap_interval(lambda x: x.mean(), torch.randn(5), seed=-1), ValueError, "non-negative"),
    (lambda: bootstrap_interval(lambda x: x.log().sum(), -torch.ones(5)), ValueError, "finite"),
])
def test_bootstrap_refuses_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_frechet_distance_interval_of_shifted_gaussians():
    """Features N(0, I) against N(mu, I): the covariances match, so d^2 = |mu|^2 = 1 + 1 = 2."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(2000, 4, generator=g, dtype=torch.float64)
    b = torch.randn(2000, 4, generator=g, dtype=torch.float64) + torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    est, lo, hi = frechet_distance_interval(a, b, n_boot=60, seed=0)
    assert est == pytest.approx(frechet_distance(a, b)) and est == pytest.approx(2.0, abs=0.1)
    assert lo < 2.0 < hi and hi - lo < 0.5
    assert frechet_distance_interval(a, b, n_boot=60, seed=0) == (est, lo, hi)


def test_frechet_distance_interval_of_one_set_with_itself_is_small():
    a = torch.randn(2000, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    est, lo, hi = frechet_distance_interval(a, a, n_boot=50)
    assert est == pytest.approx(0.0, abs=1e-8)
    assert 0.0 <= lo <= hi < 0.05  # resampled sets repeat rows: small, not zero (the interval lies above 0)
    with pytest.raises(ValueError, match="Feature sizes differ"):
        frechet_distance_interval(a, a[:, :3])


from judges import FixedOdds  # noqa: E402  (tests/judges.py)


def images_with_p_horse(p: list[float]) -> torch.Tensor:
    x = torch.ones(len(p), 3, 4, 4)
    x[:, 0, 0, 0], x[:, 1, 0, 0] = torch.tensor(p), 1 - torch.tensor(p)
    return x


def test_judge_accuracy_counts_right_calls_with_their_wilson_interval():
    # horses judged 0.8, 0.6, 0.3 (wrong), 0.9; birds judged 0.2, 0.1, 0.7 (wrong), 0.45: 6 of 8 right
    x = images_with_p_horse([0.8, 0.6, 0.3, 0.9, 0.2, 0.1, 0.7, 0.45])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    acc, lo, hi = judge_accuracy(FixedOdds(), x, labels)
    assert acc == 0.75 and (lo, hi) == pytest.approx((0.4093, 0.9285), abs=6e-5)
    # the other way round: the same images, 'bird' first, labels swapped
    assert judge_accuracy(FixedOdds(), x, 1 - labels, first="bird", second="horse")[0] == 0.75
    with pytest.raises(ValueError, match="one label per image"):
        judge_accuracy(FixedOdds(), x, labels[:5])
    with pytest.raises(ValueError, match="class indices 0..1"):
        judge_accuracy(FixedOdds(), x, labels + 1)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        judge_accuracy(FixedOdds(), x[0], labels[:1])


P = [0.9, 0.2, 0.99, 0.5, 0.7, 0.01, 0.5]
SEEDS = [10, 11, 12, 13, 14, 15, 16]


@pytest.mark.parametrize("n, horse, bird", [
    (1, [(12, 0.99)], [(15, 0.01)]),
    (2, [(12, 0.99), (10, 0.9)], [(15, 0.01), (11, 0.2)]),
    # 0.5 is not above the threshold: it counts as bird; ties keep the seeds' order
    (5, [(12, 0.99), (10, 0.9), (14, 0.7)], [(15, 0.01), (11, 0.2), (13, 0.5), (16, 0.5)]),
])
def test_top_candidates_by_hand(n, horse, bird):
    got = top_candidates(P, SEEDS, n)
    assert [s for s, _ in got["horse"]] == [s for s, _ in horse] and [s for s, _ in got["bird"]] == [s for s, _ in bird]
    assert [p for _, p in got["horse"] + got["bird"]] == pytest.approx([p for _, p in horse + bird])
    assert top_candidates(torch.tensor(P), SEEDS, n)["horse"][0][0] == horse[0][0]


@pytest.mark.parametrize("args, error, match", [
    ((P, SEEDS[:3]), ValueError, "expected 7 seed"),
    (([0.5, 1.5], [1, 2]), ValueError, r"in \[0, 1\]"),
    ((P, SEEDS, 0), ValueError, "at least 1"),
    ((P, SEEDS, 2, 1.0), ValueError, "strictly between"),
])
def test_top_candidates_refuses_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        top_candidates(*args)


def test_ends_rate_is_pegasus_rate_and_says_it_measures_the_ends_only():
    assert ends_rate is pegasus_rate is evaluation.ends_rate
    assert "ends only" in ends_rate.__doc__ and "judge_row" in ends_rate.__doc__
    assert ends_rate(torch.tensor([0.9, 0.9, 0.2, 0.1]), torch.tensor([0.1, 0.8, 0.7, 0.3])) == 0.5


def test_evaluation_still_offers_every_name_it_offered():
    from pegasus_course.evaluation import (  # noqa: F401  the names callers used before the split
        ColourTracker, QualityFigures, colour_shift, colour_stats, crosses, eight_bit, extract_features,
        feature_frechet_distance, figures_record, frechet_distance_from_stats, gaussian_stats, horse_probability,
        load_feature_net, load_quality_figures, pair_kind, pairs_of_each_kind, quality_summary, record_source,
        run_provenance, save_quality_figures)
    for name in ("CHANNELS", "DEFAULT_FEATURE_NET", "FIGURES_RECORD", "QUALITY_RECORD", "as_float_images",
                 "class_position", "predict_proba", "RowJudgement", "judge_row", "row_probabilities"):
        assert hasattr(evaluation, name), name
