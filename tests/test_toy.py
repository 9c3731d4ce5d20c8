import torch

from pegasus_course.toy import GaussianMixture, ToyScoreNet, two_gaussians


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
