import math

import pytest
import torch

from pegasus_course import interpolation as I, sampling, sigmas as S
from pegasus_course.checks import float32_tolerance
from pegasus_course.toy import two_gaussians


def test_mix_noise_matches_eq4_by_hand():
    z1, z2 = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.equal(I.mix_noise(z1, z2, 0, 15), z1)
    assert torch.allclose(I.mix_noise(z1, z2, 16, 15), z2, atol=1e-6)
    theta = 9 * math.pi / 32
    assert torch.allclose(I.mix_noise(z1, z2, 9, 15), math.cos(theta) * z1 + math.sin(theta) * z2)
    # n = 1, k = 1: the midpoint 45 degrees, equal weights 1/sqrt(2)
    assert torch.allclose(I.mix_noise(z1, z2, 1, 1), (z1 + z2) / math.sqrt(2))
    ks = torch.tensor([0, 1, 2])
    batch = I.mix_noise(z1, z2, ks, 1)
    assert torch.allclose(batch[2], z2[2], atol=1e-6) and torch.equal(batch[0], z1[0])


def test_mix_noise_preserves_the_norm_on_average():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(2000, 64, generator=g), torch.randn(2000, 64, generator=g)
    for k in range(0, 17):
        m = I.mix_noise(z1, z2, k, 15)
        assert m.pow(2).mean().item() == pytest.approx(1.0, abs=0.02)


def test_interpolate_ends_reproduce_the_seeded_samples():
    gm = two_gaussians()
    score = lambda x, s: gm.score(x.flatten(1), s).view_as(x)  # noqa: E731
    sig = S.geometric_sigmas(10.0, 0.1, 6)
    row = I.interpolate(score, (11, 42), 4, sig, 3, 1e-3, image_shape=(2, 1, 1), progress=False)
    assert row.shape == (6, 2, 1, 1)
    ends = I.sample_seeds(score, [11, 42], sig, 3, 1e-3, image_shape=(2, 1, 1), progress=False)
    tol = float32_tolerance(10.0, 6 * 3 + 1)  # a batch of 6 vs one of 2: float32 rounding over 19 evaluations
    assert torch.allclose(row[0], ends[0], rtol=0, atol=tol)
    assert torch.allclose(row[-1], ends[1], rtol=0, atol=tol)
    assert not torch.allclose(row[2], ends[0], rtol=0, atol=100 * tol)


def test_interpolated_noise_rows_for_several_pairs():
    src = I.InterpolatedNoise([1, 2], [3, 4], n=2)
    z = src(5, (8, 3), torch.device("cpu"), torch.float32)
    one = lambda s: sampling.SeededNoise([s])(5, (1, 3), torch.device("cpu"), torch.float32)[0]  # noqa: E731
    assert torch.equal(z[0], one(1)) and torch.allclose(z[3], one(3), atol=1e-6)
    assert torch.equal(z[4], one(2)) and torch.allclose(z[7], one(4), atol=1e-6)
    assert torch.allclose(z[1], I.mix_noise(one(1), one(3), 1, 2))
    with pytest.raises(ValueError):
        I.InterpolatedNoise([1], [2, 3], n=2)


def test_pegasus_batch_matches_the_rows(tiny_config):
    from pegasus_course.generate import Schedule, pegasus_batch, pegasus_rows
    from pegasus_course.nn import ScoreUNet

    torch.manual_seed(0)
    model = ScoreUNet(tiny_config).eval()
    sched = Schedule(50.0, 0.01, 3, 1)
    rows = pegasus_rows(model, [(1, 2), (3, 4)], 4, sched, progress=False)
    picked = pegasus_batch(model, [(1, 2), (3, 4)], 4, [0, 3, 5], sched, progress=False)
    # another batch composition reorders the arithmetic: float32 rounding over 3 * 1 + 1 evaluations at sigma_1
    tol = float32_tolerance(sched.sigma_max, sched.num_scales * sched.n_steps_each + 1)
    assert torch.allclose(picked, rows[:, [0, 3, 5]], rtol=0, atol=tol)
    assert not torch.allclose(picked[:, 1], rows[:, 2], rtol=0, atol=100 * tol)


def test_spread_ks_and_linear_mix():
    from pegasus_course.interpolation import InterpolatedNoise, linear_weights, spread_ks

    assert spread_ks(15, 3, include=9) == [4, 9, 12]
    assert spread_ks(15, 15) == list(range(1, 16)) and spread_ks(5, 9) == [1, 2, 3, 4, 5]
    assert 9 in spread_ks(15, 4, include=9) and len(spread_ks(15, 4, include=9)) == 4
    a, b = linear_weights(8, 15)
    assert float(a) == float(b) == 0.5  # the middle: variance 0.5, half of a proper draw
    noise = InterpolatedNoise([1], [2], 15, ks=[0, 8, 16], mix="linear")
    z = noise(3, (3, 2, 4, 4), torch.device("cpu"), torch.float32)
    from pegasus_course.sampling import SeededNoise

    z1, z2 = (SeededNoise([s])(3, (1, 2, 4, 4), torch.device("cpu"), torch.float32) for s in (1, 2))
    assert torch.allclose(z[1], 0.5 * z1[0] + 0.5 * z2[0]) and torch.equal(z[0], z1[0]) and torch.equal(z[2], z2[0])
    with pytest.raises(ValueError, match="mix must be one of"):
        InterpolatedNoise([1], [2], 15, mix="cosine")
