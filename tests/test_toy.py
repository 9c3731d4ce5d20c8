import math

import pytest
import torch

from pegasus_course.toy import GaussianMixture, ToyScoreNet, flip_point, two_gaussians


def test_mixture_score_matches_autograd_for_batched_sigmas():
    gm = two_gaussians(0.2, 3.0)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 4
    sigma = torch.linspace(0.01, 5.0, 50)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(gm.log_prob(x, sigma).sum(), x)
    assert torch.allclose(gm.score(x.detach(), sigma), grad, atol=1e-5)


def test_single_gaussian_score_closed_form():
    gm = GaussianMixture(torch.tensor([1.0]), torch.tensor([[1.0, 2.0]]), torch.tensor([0.5]))
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    s = gm.score(x, 1.0)
    assert torch.allclose(s, -(x - torch.tensor([1.0, 2.0])) / 1.25)


def test_samples_have_the_mode_weights():
    gm = two_gaussians(0.2, 5.0)
    x = gm.sample(20_000, generator=torch.Generator().manual_seed(0))
    w = gm.mode_weights(x)
    assert abs(float(w[0]) - 0.2) < 0.01


def test_toy_net_divides_by_sigma():
    net = ToyScoreNet()
    x = torch.randn(4, 2)
    out = net(x, torch.full((4,), 2.0))
    assert out.shape == (4, 2)


def test_flip_point_of_equal_weights_is_the_midpoint():
    point = flip_point(two_gaussians(0.5, 5.0), 0.1)
    assert torch.allclose(point, torch.zeros(2, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 4.0])
def test_flip_point_solves_the_hand_derived_equation(sigma):
    # Means +-(d, d), weights 0.2 / 0.8, variance v = 1 + sigma^2: on the diagonal x = (t, t) the score is
    # -(x - (r2 - r1) m) / v with r2 - r1 = tanh(logit / 2), logit = ln 4 + 4 t d / v, so it vanishes where
    # t = d tanh((ln 4 + 4 t d / v) / 2); the flip is the root between the modes' own zeros.
    d, v = 5.0, 1.0 + sigma**2
    point = flip_point(two_gaussians(0.2, d), sigma)
    t = float(point[0])
    assert float(point[1]) == pytest.approx(t)
    assert t == pytest.approx(d * math.tanh((math.log(4.0) + 4 * t * d / v) / 2), abs=1e-6)
    assert t < -v * math.log(4.0) / (4 * d) < 0  # beyond the line of equal posteriors, towards the 0.2 mode


def test_flip_point_is_none_once_the_modes_merge():
    assert flip_point(two_gaussians(0.2, 5.0), 10.0) is None  # v = 101: one mode, no flip


@pytest.mark.parametrize("sigma", [0.1, 1.0])
def test_score_at_the_origin_points_to_the_heavier_mode(sigma):
    # at 0 the posteriors are the weights: score = (0.8 - 0.2) (5, 5) / (1 + sigma^2)
    expected = torch.full((1, 2), 0.6 * 5.0 / (1 + sigma**2))
    assert torch.allclose(two_gaussians(0.2, 5.0).score(torch.zeros(1, 2), sigma), expected, atol=1e-5)


def test_flip_point_needs_two_modes():
    three = GaussianMixture(torch.ones(3), torch.zeros(3, 2), torch.ones(3))
    with pytest.raises(ValueError, match="two-component mixture"):
        flip_point(three, 1.0)
