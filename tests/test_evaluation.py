import math
from types import SimpleNamespace

import pytest
import torch

from pegasus_course.classifier import ClassifierConfig, NoisyClassifier
from pegasus_course.evaluation import (
    ColourTracker,
    colour_shift,
    colour_stats,
    crosses,
    extract_features,
    feature_frechet_distance,
    frechet_distance,
    frechet_distance_from_stats,
    horse_probability,
    pegasus_rate,
)
from pegasus_course.generate import Schedule, colour_probe
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_grows_with_a_controlled_shift():
    # A pure shift by delta in every one of F dimensions leaves the covariance alone: d^2 = F delta^2.
    f = torch.randn(2000, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    values = [frechet_distance(f, f + d) for d in (0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    for d, v in zip((0.25, 0.5, 1.0, 2.0), values):
        assert v == pytest.approx(8 * d**2, rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    # For commuting covariances: d^2 = |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2.
    mu_a, mu_b = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    va, vb = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 4.0, 1.0], dtype=torch.float64)
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance_from_stats(mu_a, torch.diag(va), mu_b, torch.diag(vb)) == pytest.approx(expected)
    # and a rotation of both Gaussians changes nothing
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    rotated = frechet_distance_from_stats(q @ mu_a, q @ torch.diag(va) @ q.T, q @ mu_b, q @ torch.diag(vb) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="Feature sizes differ"):
        frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match="at least two"):
        frechet_distance(torch.randn(1, 3), torch.randn(10, 3))


def tiny_net(names):
    torch.manual_seed(0)
    return NoisyClassifier(ClassifierConfig(image_size=16, class_names=names, base_channels=8, emb_dim=16)).eval()


def test_feature_distance_in_a_network_feature_space():
    net = tiny_net(("a", "b", "c"))
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 3, 16, 16, generator=g)
    assert extract_features(net, real).shape == (64, net.feature_dim)
    same = feature_frechet_distance(net, real, real)
    darker = feature_frechet_distance(net, real, real * 0.5)
    assert same == pytest.approx(0.0, abs=1e-6) and darker > 1e-3


from judges import FixedOdds  # noqa: E402  (tests/judges.py)


def test_horse_probability_ignores_the_other_classes():
    x = torch.ones(2, 3, 4, 4)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = 0.8, 0.2  # odds horse:bird = 4:1
    x[1, 0, 0, 0], x[1, 1, 0, 0] = 0.1, 0.9
    p = horse_probability(FixedOdds(), x)
    assert torch.allclose(p, torch.tensor([0.8, 0.1]), atol=1e-6)


class FixedLogits(torch.nn.Module):
    """A three-class 'network' whose logits (airplane, bird, horse) are the first pixel's three channels."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(class_names=("airplane", "bird", "horse"), num_classes=3)
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        return x[:, :, 0, 0] * 1000 + 0 * self.p  # channels in [0, 1] -> logits 0 .. 1000


@pytest.mark.parametrize("logits, p", [
    ((0.2, 0.0, 0.0), 0.5),  # horse and bird both 200 below airplane: float32 softmax gives them 0 each
    ((0.2, 0.0, 0.001), 1 / (1 + math.exp(-1))),  # horse one logit above bird: sigmoid(1) = 0.7311
    ((0.0, 0.001, 0.0), 1 / (1 + math.exp(1))),  # bird one above horse, no third class in play: 0.2689
])
def test_horse_probability_softmaxes_the_two_logits(logits, p):
    x = torch.zeros(1, 3, 4, 4)
    x[0, :, 0, 0] = torch.tensor(logits, dtype=torch.float64).float()
    got = float(horse_probability(FixedLogits(), x)[0])
    lo = x[0, :, 0, 0].double() * 1000  # the logits as float32 made them
    assert got == pytest.approx(float(torch.sigmoid(lo[2] - lo[1])), abs=1e-6)
    assert got == pytest.approx(p, abs=1e-3)


def test_pegasus_rate_counts_rows_with_one_end_of_each_class():
    first = torch.tensor([0.9, 0.9, 0.2, 0.1])
    second = torch.tensor([0.1, 0.8, 0.7, 0.3])
    assert crosses(first, second).tolist() == [True, False, True, False]
    assert pegasus_rate(first, second) == 0.5
    with pytest.raises(ValueError):
        pegasus_rate(first, second[:2])


def test_colour_stats_and_shift_by_hand():
    x = torch.zeros(2, 3, 2, 2)
    x[:, 0] = 1.0  # red everywhere
    x[0, 1] = 1.0  # green in one image only
    st = colour_stats(x)
    assert st["mean"] == pytest.approx([1.0, 0.5, 0.0])
    assert st["std"] == pytest.approx([0.0, (8 * 0.25 / 7) ** 0.5, 0.0])
    assert colour_stats((x * 255).to(torch.uint8))["mean"] == pytest.approx([1.0, 0.5, 0.0])
    shift = colour_shift(x * 0.5, x)
    assert shift["mean"] == pytest.approx([-0.5, -0.25, 0.0])


def test_colour_tracker_records_on_schedule_with_a_real_probe():
    torch.manual_seed(0)
    model = ScoreUNet(ScoreUNetConfig.for_image_size(16, 8, num_res_blocks=1))
    probe = colour_probe(Schedule(5.0, 0.1, 3, 1), seeds=[0, 1])
    tracker = ColourTracker(colour_stats(torch.rand(4, 3, 16, 16)), probe, every=10)
    for step in (5, 10, 15, 20, 25):
        tracker(SimpleNamespace(step=step, ema=model, model=model))
    steps = sorted({h["step"] for h in tracker.history})
    assert steps == [10, 20]
    assert {(h["weights"], h["variant"]) for h in tracker.history} == {
        (w, v) for w in ("ema", "model") for v in ("without denoising", "denoised")}
    s, means = tracker.series("ema", "denoised")
    assert s == [10, 20] and means.shape == (2, 3)
    out = probe(model)
    assert not torch.equal(out["denoised"], out["without denoising"])  # the denoising step moved the samples


def test_colour_stats_in_chunks_agrees_with_the_whole_set():
    """Summed a chunk at a time (memory), the statistics are those of all pixels at once, uint8 included."""
    x = torch.rand(37, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    whole = x.transpose(0, 1).reshape(3, -1).double()
    for chunk in (1, 8, 100):
        st = colour_stats(x, chunk=chunk)
        assert st["mean"] == pytest.approx(whole.mean(1).tolist(), rel=1e-6)
        assert st["std"] == pytest.approx(whole.std(1).tolist(), rel=1e-6)
    u8 = (x * 255).round().to(torch.uint8)
    assert colour_stats(u8, chunk=5)["std"] == pytest.approx((u8.double() / 255).transpose(0, 1).reshape(3, -1)
                                                             .std(1).tolist(), rel=1e-6)  # float32 pixels
