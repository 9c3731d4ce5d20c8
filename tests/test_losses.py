import pytest
import torch

from pegasus_course import losses
from pegasus_course.toy import GaussianMixture


def test_dsm_zero_for_exact_score_of_point_mass():
    x0 = torch.tensor([[1.0, -2.0, 0.5]]).repeat(64, 1)

    def score(x_tilde, sigma):  # grad log N(x~; x0, sigma^2 I)
        return -(x_tilde - x0) / sigma[:, None] ** 2

    loss = losses.dsm_loss(score, x0, torch.tensor([10.0, 1.0, 0.1]), generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(0.0, abs=1e-8)


def test_dsm_hand_computed_value():
    # score = 0: residual = z, loss = 1/2 E ||z||^2 = D / 2, with the drawn z.
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(5, 4)
    per = losses.dsm_loss(lambda x, s: torch.zeros_like(x), x, torch.tensor([2.0]), generator=g, reduction="none")
    g2 = torch.Generator().manual_seed(3)
    torch.randint(0, 1, (5,), generator=g2)  # replay the level draw, then z
    z = torch.randn((5, 4), generator=g2)
    assert torch.allclose(per, 0.5 * z.pow(2).sum(1))


def _gaussian():
    return GaussianMixture(torch.tensor([1.0]), torch.tensor([[0.5, -1.0]]), torch.tensor([0.7]))


def test_dsm_and_ssm_agree_in_expectation_on_a_gaussian():
    # For any score s: DSM = J(s) + C_dsm and SSM = J(s) + C_ssm, where J is the Fisher divergence.
    # With a Gaussian and sigma fixed both constants are known: compare loss(s) - loss(s_exact).
    gm = _gaussian()
    sig = torch.tensor([0.5])
    x = gm.sample(40_000, generator=torch.Generator().manual_seed(0))
    exact = lambda x, s: gm.score(x, s)  # noqa: E731
    wrong = lambda x, s: gm.score(x, s) * 0.5 + 0.3  # noqa: E731
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    d_dsm = losses.dsm_loss(wrong, x, sig, g()) - losses.dsm_loss(exact, x, sig, g())
    d_ssm = (losses.sliced_score_matching_loss(wrong, x, sig, generator=g())
             - losses.sliced_score_matching_loss(exact, x, sig, generator=g()))
    d_vr = (losses.sliced_score_matching_loss(wrong, x, sig, generator=g(), variance_reduced=True)
            - losses.sliced_score_matching_loss(exact, x, sig, generator=g(), variance_reduced=True))
    # analytic: 1/2 sigma^2 E||wrong - exact||^2 over the perturbed data
    xt = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    fisher = 0.5 * 0.25 * (wrong(xt, sig) - exact(xt, sig)).pow(2).sum(1).mean()
    assert d_dsm.item() == pytest.approx(fisher.item(), rel=0.05)
    assert d_ssm.item() == pytest.approx(fisher.item(), rel=0.1)
    assert d_vr.item() == pytest.approx(fisher.item(), rel=0.05)


def test_exact_score_minimises_dsm():
    gm = _gaussian()
    x = gm.sample(4096, generator=torch.Generator().manual_seed(0))
    sig = torch.tensor([1.0, 0.3])
    base = losses.dsm_loss(lambda x, s: gm.score(x, s), x, sig, torch.Generator().manual_seed(2))
    for scale in (0.8, 1.2):
        other = losses.dsm_loss(lambda x, s: scale * gm.score(x, s), x, sig, torch.Generator().manual_seed(2))
        assert other > base


def test_dsm_loss_by_level_hand_values():
    """A zero network leaves the residual z at every level: each level's loss is mean(||z||^2) / 2."""
    from pegasus_course.losses import dsm_loss_by_level, dsm_loss_given

    x = torch.zeros(4, 3)
    levels = torch.tensor([2.0, 1.0, 0.5])
    got = dsm_loss_by_level(lambda y, s: torch.zeros_like(y), x, levels, torch.Generator().manual_seed(0))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got, torch.full((3,), 0.5 * float(z.pow(2).sum(1).mean())))
    # the exact score of a point mass at 0 makes every level's loss zero
    exact = dsm_loss_by_level(lambda y, s: -y / s.view(-1, 1) ** 2, x, levels)
    assert torch.allclose(exact, torch.zeros(3), atol=1e-6)
    sigma = torch.tensor([2.0, 1.0, 1.0, 0.5])
    assert torch.allclose(dsm_loss_given(lambda y, s: -y / s.view(-1, 1) ** 2, x, sigma, z), torch.tensor(0.0), atol=1e-6)


def test_dsm_losses_per_image_of_the_exact_score_is_zero_and_of_zero_is_half_z_squared():
    from pegasus_course.losses import dsm_loss_by_level, dsm_losses_per_image

    x = torch.rand(5, 3, 4, 4)
    levels = torch.tensor([2.0, 0.5, 0.1])
    oracle = lambda xt, s: -(xt - x) / s.view(-1, 1, 1, 1) ** 2  # noqa: E731 - knows the clean x: residual 0
    assert dsm_losses_per_image(oracle, x, levels, torch.Generator().manual_seed(0)).abs().max() < 1e-4
    zero = lambda xt, s: torch.zeros_like(xt)  # noqa: E731 - residual z at every level: 0.5 ||z||^2
    per_image = dsm_losses_per_image(zero, x, levels, torch.Generator().manual_seed(0))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert per_image.shape == (3, 5)
    assert torch.allclose(per_image, (0.5 * z.pow(2).flatten(1).sum(1)).expand(3, 5), atol=1e-5)
    assert torch.allclose(dsm_loss_by_level(zero, x, levels, torch.Generator().manual_seed(0)), per_image.mean(1))


def test_dsm_losses_per_image_keeps_no_graph():
    """The per-level losses are numbers to plot, not a graph: a network's activations at every level would
    otherwise stay in memory for as long as the result lives (notebook 04 held a gigabyte that way)."""
    from pegasus_course.losses import dsm_losses_per_image

    net = torch.nn.Conv2d(3, 3, 1)
    out = dsm_losses_per_image(lambda xt, s: net(xt), torch.rand(4, 3, 4, 4), torch.tensor([1.0, 0.1]),
                               torch.Generator().manual_seed(0))
    assert not out.requires_grad and out.grad_fn is None
