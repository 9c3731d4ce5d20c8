import math

import pytest
import torch

from pegasus_course import exercises as E
from pegasus_course import interpolation, losses, sigmas


@pytest.fixture(autouse=True)
def _fresh():
    E.reset_attempts()


def _twice(check, fn):
    first = check(fn, verbose=False)
    second = check(fn, verbose=False)
    return first, second


def _assert_caught(check, fn, words):
    E.reset_attempts()
    first, second = _twice(check, fn)
    assert first.status == second.status == "wrong"
    assert "likely mistake" not in first.message  # the first try gets the general hint only
    assert "likely mistake" in second.message and words in second.message, second.message


def test_stub_is_not_attempted_and_errors_do_not_raise():
    def stub(*a):
        raise NotImplementedError("write me")

    assert E.check_dsm_loss(stub, verbose=False).status == "not attempted"
    assert E.check_mix_noise(lambda *a: 1 / 0, verbose=False).status == "error"


def test_dsm_loss_checker():
    assert E.check_dsm_loss(lambda f, x, s, g: losses.dsm_loss(f, x, s, generator=g), verbose=False).passed

    def parts(f, x, s, g):
        lv = s[torch.randint(0, len(s), (x.shape[0],), generator=g)][:, None]
        z = torch.randn(x.shape, generator=g)
        return lv, z, f(x + lv * z, lv[:, 0])

    def unweighted(*a):
        lv, z, sc = parts(*a)
        return 0.5 * (sc + z / lv).pow(2).sum(1).mean()

    def summed(*a):
        lv, z, sc = parts(*a)
        return 0.5 * (lv * sc + z).pow(2).sum(1).sum()

    def sign(*a):
        lv, z, sc = parts(*a)
        return 0.5 * (lv * sc - z).pow(2).sum(1).mean()

    _assert_caught(E.check_dsm_loss, unweighted, "sigma^2 weighting")
    _assert_caught(E.check_dsm_loss, summed, "summed over the batch")
    _assert_caught(E.check_dsm_loss, sign, "wrong sign")


def test_langevin_step_checker():
    assert E.check_langevin_step(lambda x, s, a, z: x + a * s + math.sqrt(2 * a) * z, verbose=False).passed
    _assert_caught(E.check_langevin_step, lambda x, s, a, z: x + a * s + math.sqrt(a) * z, "sqrt(alpha)")
    _assert_caught(E.check_langevin_step, lambda x, s, a, z: x + a * s - math.sqrt(2 * a) * z, "sign of the noise")
    _assert_caught(E.check_langevin_step, lambda x, s, a, z: x - a * s + math.sqrt(2 * a) * z, "against the score")


def test_geometric_sigmas_checker():
    assert E.check_geometric_sigmas(sigmas.geometric_sigmas, verbose=False).passed
    _assert_caught(E.check_geometric_sigmas, lambda a, b, n: torch.linspace(a, b, n), "linear spacing")
    _assert_caught(E.check_geometric_sigmas, lambda a, b, n: sigmas.geometric_sigmas(a, b, n).flip(0), "ascending")
    _assert_caught(E.check_geometric_sigmas,
                   lambda a, b, n: torch.exp(torch.linspace(math.log(a), math.log(b), n - 1)), "too few")


def test_step_size_checker():
    assert E.check_step_size(lambda s, e: e * (s / s[-1]) ** 2, verbose=False).passed
    _assert_caught(E.check_step_size, lambda s, e: e * s / s[-1], "not squared")
    _assert_caught(E.check_step_size, lambda s, e: e * (s / s[0]) ** 2, "sigma_1 instead of sigma_L")
    _assert_caught(E.check_step_size, lambda s, e: torch.full_like(s, e), "not scaled")


def test_mix_noise_checker():
    assert E.check_mix_noise(interpolation.mix_noise, verbose=False).passed
    ang = lambda k, n: k * math.pi / (2 * (n + 1))  # noqa: E731
    _assert_caught(E.check_mix_noise, lambda a, b, k, n: math.sin(ang(k, n)) * a + math.cos(ang(k, n)) * b,
                   "sin and cos swapped")
    _assert_caught(E.check_mix_noise, lambda a, b, k, n: (1 - k / (n + 1)) * a + k / (n + 1) * b, "linear weights")
    _assert_caught(E.check_mix_noise,
                   lambda a, b, k, n: math.cos(k * math.pi / (2 * n)) * a + math.sin(k * math.pi / (2 * n)) * b,
                   "2 N")


def test_unrecognised_mistake_still_reported():
    res = E.check_mix_noise(lambda a, b, k, n: a * 0, verbose=False)
    again = E.check_mix_noise(lambda a, b, k, n: a * 0, verbose=False)
    assert res.status == again.status == "wrong" and again.diagnosis is None and "first mismatch" in again.message


def test_printed_verdict(capsys):
    E.check_step_size(lambda s, e: e * (s / s[-1]) ** 2)
    assert "[step_size] correct" in capsys.readouterr().out


def test_instance_norm_pp_checker():
    from pegasus_course.nn import InstanceNormPlusPlus

    def package(x, gamma, alpha, beta):
        norm = InstanceNormPlusPlus(x.shape[1])
        with torch.no_grad():
            norm.gamma.copy_(gamma), norm.alpha.copy_(alpha), norm.beta.copy_(beta)
            return norm(x)

    assert E.check_instance_norm_pp(package, verbose=False).passed
    plain = lambda x, g, a, b: g.view(1, -1, 1, 1) * torch.nn.functional.instance_norm(x) + b.view(1, -1, 1, 1)  # noqa
    _assert_caught(E.check_instance_norm_pp, plain, "plain instance norm")
    _assert_caught(E.check_instance_norm_pp, lambda x, g, a, b: E._inpp(x, g, a, b, unbiased=True), "unbiased")
    late = lambda x, g, a, b: E._inpp(x, g, torch.zeros_like(a), b) + a.view(1, -1, 1, 1) * E._means_term(x)  # noqa
    _assert_caught(E.check_instance_norm_pp, late, "before adding")


def test_ema_update_checker():
    from pegasus_course.training import ema_update

    def package(e, t, d):
        a, b = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
        a.weight.data = e.clone()
        b.weight.data = t.clone()
        ema_update(a, b, d)
        return a.weight.data

    assert E.check_ema_update(package, verbose=False).passed
    _assert_caught(E.check_ema_update, lambda e, t, d: (1 - d) * e + d * t, "swapped")
    _assert_caught(E.check_ema_update, lambda e, t, d: t, "new weights instead")
    _assert_caught(E.check_ema_update, lambda e, t, d: d * e + t, "(1 - decay)")


def test_denoise_step_checker():
    from pegasus_course.sampling import iter_annealed_langevin

    def package(x, score, s):
        states = list(iter_annealed_langevin(lambda y, sig: score, x.shape, torch.tensor([s]), 0, 0.0, x_init=x,
                                             progress=False))
        return states[-1].x

    assert E.check_denoise_step(package, verbose=False).passed
    _assert_caught(E.check_denoise_step, lambda x, sc, s: x + s * sc, "sigma_L instead")
    _assert_caught(E.check_denoise_step, lambda x, sc, s: x - s**2 * sc, "against the score")
    _assert_caught(E.check_denoise_step, lambda x, sc, s: x, "no step")


def test_guided_score_checker():
    def right(score_fn, clf, x, sigma, y, scale):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp = clf(xg, sigma).log_softmax(-1)[torch.arange(x.shape[0]), y].sum()
            (gr,) = torch.autograd.grad(lp, xg)
        return score_fn(x, sigma) + scale * gr

    assert E.check_guided_score(right, verbose=False).passed

    def no_scale(f, c, x, s, y, w):
        return right(f, c, x, s, y, 1.0)

    def flipped(f, c, x, s, y, w):
        return 2 * f(x, s) - right(f, c, x, s, y, w)

    _assert_caught(E.check_guided_score, no_scale, "scale is missing")
    _assert_caught(E.check_guided_score, flipped, "sign flipped")


# ----- every correct answer passes, every common mistake is named (the learner's many ways of writing it)


def _dsm(order: str, z_kind: str, sigma_global: bool = False, reduce_dims=False, per_batch=False):
    """A learner's DSM loss: levels/z in ``order``, z from randn(generator) or randn_like (global RNG)."""
    def fn(score_fn, x, levels, generator):
        def sigma():
            n = 1 if per_batch else x.shape[0]
            idx = torch.randint(0, len(levels), (n,), generator=None if sigma_global else generator)
            return levels[idx].expand(x.shape[0])

        def noise():
            return torch.randn_like(x) if z_kind == "randn_like" else torch.randn(x.shape, generator=generator)

        if order == "sigma first":
            s = sigma()
            z = noise()
        else:
            z = noise()
            s = sigma()
        residual = s[:, None] * score_fn(x + s[:, None] * z, s) + z
        if reduce_dims:
            return 0.5 * torch.nn.functional.mse_loss(residual, torch.zeros_like(residual))
        return 0.5 * residual.pow(2).sum(1).mean()
    return fn


@pytest.mark.parametrize("order", ["sigma first", "z first"])
@pytest.mark.parametrize("z_kind", ["randn", "randn_like"])
@pytest.mark.parametrize("sigma_global", [False, True])
def test_dsm_checker_accepts_any_order_and_source_of_the_draws(order, z_kind, sigma_global):
    state = torch.random.get_rng_state()
    result = E.check_dsm_loss(_dsm(order, z_kind, sigma_global), verbose=False)
    assert result.passed, result.message
    assert torch.equal(torch.random.get_rng_state(), state), "the checker must leave the global RNG as it was"


@pytest.mark.parametrize("order", ["sigma first", "z first"])
def test_dsm_checker_names_a_mean_over_dimensions_and_one_sigma_per_batch(order):
    _assert_caught(E.check_dsm_loss, _dsm(order, "randn_like", reduce_dims=True), "averaged over the dimensions")
    _assert_caught(E.check_dsm_loss, _dsm(order, "randn", per_batch=True), "one sigma per batch")


def test_instance_norm_pp_checker_accepts_both_variances_of_the_channel_means_and_says_which():
    biased = E.check_instance_norm_pp(lambda x, g, a, b: E._inpp(x, g, a, b), verbose=False)
    assert biased.passed and "matches the package" in biased.message and "You wrote" not in biased.message
    unbiased = E.check_instance_norm_pp(lambda x, g, a, b: E._inpp(x, g, a, b, means_unbiased=True), verbose=False)
    assert unbiased.passed and "unbiased variance of the channel means" in unbiased.message
    # unbiased over H x W (instance norm's own variance) stays a mistake, whatever the means use
    _assert_caught(E.check_instance_norm_pp,
                   lambda x, g, a, b: E._inpp(x, g, a, b, unbiased=True, means_unbiased=False), "over H x W")


def test_guided_score_checker_names_a_mean_over_the_batch():
    def batch_mean(score_fn, classifier_fn, x, sigma, y, scale):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            log_p = classifier_fn(xg, sigma).log_softmax(-1)
            (grad,) = torch.autograd.grad(log_p[torch.arange(x.shape[0]), y].mean(), xg)
        return score_fn(x, sigma) + scale * grad

    _assert_caught(E.check_guided_score, batch_mean, ".mean() over the batch")
