import math

import pytest
import torch

from pegasus_course import sigmas as S


def test_geometric_endpoints_length_ratio():
    s = S.geometric_sigmas(50.0, 0.01, 232)
    assert s.shape == (232,) and s.dtype == torch.float32
    assert float(s[0]) == pytest.approx(50.0, rel=1e-6) and float(s[-1]) == pytest.approx(0.01, rel=1e-6)
    ratios = (s[:-1].double() / s[1:].double())
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)
    assert float(ratios[0]) == pytest.approx((50 / 0.01) ** (1 / 231), rel=1e-6)
    assert bool((s[1:] < s[:-1]).all())
    with pytest.raises(ValueError):
        S.geometric_sigmas(0.01, 50.0, 10)


def test_max_pairwise_distance_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 3, 4, 4, generator=g)
    brute = torch.cdist(x.flatten(1).double(), x.flatten(1).double()).max().item()
    d, (i, j) = S.max_pairwise_distance(x, chunk_size=37, return_pair=True)
    assert d == pytest.approx(brute, rel=1e-12)
    assert (x[i] - x[j]).double().norm().item() == pytest.approx(brute, rel=1e-12)


def test_max_pairwise_distance_hand_case():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert S.max_pairwise_distance(x) == pytest.approx(5.0)


def test_num_noise_scales_satisfies_technique2():
    for dim in (3072, 3 * 48 * 48, 3 * 64 * 64):
        L = S.num_noise_scales(50.0, 0.01, dim)
        gamma_L = (50.0 / 0.01) ** (1 / (L - 1))
        gamma_fewer = (50.0 / 0.01) ** (1 / (L - 2))
        assert S.technique2_overlap(gamma_L, dim) >= 0.5 > S.technique2_overlap(gamma_fewer, dim)
    assert 200 < S.num_noise_scales(50.0, 0.01, 3072) < 232  # "a little over 200"; the paper picks 232


def test_step_size_brings_objective_near_one():
    s = S.geometric_sigmas(50.0, 0.01, 232)
    eps = S.langevin_step_size(s, 5)
    gamma = float(s[0] / s[1])
    best = abs(S.technique4_objective(eps, gamma, 0.01, 5) - 1)
    for factor in (0.9, 1.1, 0.5, 2.0):
        assert best <= abs(S.technique4_objective(eps * factor, gamma, 0.01, 5) - 1) + 1e-12
    assert eps == pytest.approx(6.2e-6, rel=0.03)  # NCSNv2's CIFAR-10 value


def test_step_sizes_scale_with_sigma_squared():
    s = torch.tensor([4.0, 2.0, 1.0])
    assert torch.allclose(S.step_sizes(s, 0.1), torch.tensor([1.6, 0.4, 0.1]))


@pytest.mark.parametrize("target", [0.1, 0.25, 0.5, 0.9])
def test_num_noise_scales_for_other_overlaps_is_the_fewest_that_reach_them(target):
    n = S.num_noise_scales(50.0, 0.01, 3072, target)
    gamma_of = lambda L: (50.0 / 0.01) ** (1 / (L - 1))  # noqa: E731
    assert S.technique2_overlap(gamma_of(n), 3072) >= target - 1e-9
    assert S.technique2_overlap(gamma_of(n - 1), 3072) < target
    if target == 0.5:
        assert n == S.num_noise_scales(50.0, 0.01, 3072) == 220


@pytest.mark.parametrize("gamma, dim, expected", [
    (1.0, 3072, math.erf(3 / math.sqrt(2))),  # equal levels: Phi(3) - Phi(-3) = 0.9973
    (2.0, 2, 0.5 * (math.erf(0.5 / math.sqrt(2)) - math.erf(-2.5 / math.sqrt(2)))),  # Phi(0.5) - Phi(-2.5)
])
def test_handed_down_share_hand_worked(gamma, dim, expected):
    assert S.handed_down_share(gamma, dim) == pytest.approx(expected, abs=1e-12)


def test_handed_down_share_counts_draws():
    d, gamma = 3072, 1.0376
    lengths = gamma * torch.randn(20_000, d, generator=torch.Generator().manual_seed(0)).norm(dim=1)
    inside = ((lengths - math.sqrt(d)).abs() <= 3 / math.sqrt(2)).float().mean()
    assert float(inside) == pytest.approx(S.handed_down_share(gamma, d), abs=0.015)


def test_handed_down_share_refuses_a_ratio_below_one():
    with pytest.raises(ValueError, match="gamma"):
        S.handed_down_share(0.9, 3072)


def test_max_pairwise_distance_exact_pass_works_a_chunk_at_a_time(monkeypatch):
    """The float64 re-check never copies the whole set to float64 (10,000 CIFAR images: 246 MB)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(120, 3, 4, 4, generator=g)
    seen = []
    real_double = torch.Tensor.double

    def spy(self):
        seen.append(self.shape[0] if self.ndim > 1 else 1)  # images in the copy
        return real_double(self)

    monkeypatch.setattr(torch.Tensor, "double", spy)
    d = S.max_pairwise_distance(x, chunk_size=16)
    monkeypatch.undo()
    assert d == pytest.approx(torch.cdist(x.flatten(1).double(), x.flatten(1).double()).max().item(), rel=1e-12)
    assert max(seen) <= 16, f"a float64 copy of {max(seen)} images"
