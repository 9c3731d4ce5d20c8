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
    assert E.check_variance_ratio(lambda *a: 1 / 0, verbose=False).status == "error"


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


def test_num_levels_checker():
    def search(a, b, dim, target):
        L = 2
        while sigmas.technique2_overlap((a / b) ** (1 / (L - 1)), dim) < target:
            L += 1
        return L

    assert E.check_num_levels(search, verbose=False).passed
    assert search(50.0, 0.01, 3072, 0.5) == sigmas.num_noise_scales(50.0, 0.01, 3072)  # the closed form agrees
    _assert_caught(E.check_num_levels, lambda a, b, d, t: search(a, b, d, t) - 1, "one level too few")


def test_variance_ratio_checker():
    def loop(eps, s, gamma, T):
        r, v = 1 - eps / s**2, gamma**2
        for _ in range(T):
            v = r * r * v + 2 * eps / s**2
        return v

    assert E.check_variance_ratio(loop, verbose=False).passed
    closed = lambda e, s, g, t: sigmas.technique4_objective(e, g, s, t)  # noqa: E731
    assert E.check_variance_ratio(closed, verbose=False).passed
    _assert_caught(E.check_variance_ratio, lambda *a: E._variance_after(*a, noise=1.0), "2 alpha")
    _assert_caught(E.check_variance_ratio, lambda *a: E._variance_after(*a, square_r=False), "not squared")
    _assert_caught(E.check_variance_ratio, lambda *a: E._variance_after(*a, start_gamma=False), "gamma^2")
    _assert_caught(E.check_variance_ratio, lambda *a: E._variance_after(*a, scale_r=False), "r = 1 - eps")
    # a simulation of the one-point data set agrees with the recursion (the derivation of notebook 02)
    from pegasus_course import sampling

    g = torch.Generator().manual_seed(0)
    eps, s_L, s_i, gamma = 6.2e-6, 0.01, 2.0, 1.0376
    start = gamma * s_i * torch.randn(200_000, 1, generator=g, dtype=torch.float64)
    end = sampling.langevin(lambda x, s: -x / s_i**2, start, eps * s_i**2 / s_L**2, 5, s_i, generator=g)
    assert abs(float(end.var()) / s_i**2 - loop(eps, s_L, gamma, 5)) < 0.02


def test_unrecognised_mistake_still_reported():
    res = E.check_variance_ratio(lambda e, s, g, t: 0.0, verbose=False)
    again = E.check_variance_ratio(lambda e, s, g, t: 0.0, verbose=False)
    assert res.status == again.status == "wrong" and again.diagnosis is None and "first mismatch" in again.message


def test_printed_verdict(capsys):
    E.check_variance_ratio(lambda e, s, g, t: sigmas.technique4_objective(e, g, s, t))
    assert "[variance_ratio] correct" in capsys.readouterr().out


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


def _step(model, ema, opt, x, sigma, z, decay, ema_by="mul_add", loss_by="residual"):
    """A correct training step, written the ways a learner may write it."""
    s = sigma.view(-1, 1, 1, 1)
    if loss_by == "residual":
        loss = 0.5 * (s * model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1).mean()
    else:  # the package's loss on the same draws
        loss = losses.dsm_loss_given(model, x, sigma, z)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        if ema_by == "mul_add":
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        elif ema_by == "copy":
            for e, p in zip(ema.parameters(), model.parameters()):
                e.copy_(decay * e + (1 - decay) * p)
        else:
            for (name, e), p in zip(ema.named_parameters(), model.parameters()):
                e.data = decay * e.data + (1 - decay) * p.data
    return loss.item() if loss_by == "item" else loss


@pytest.mark.parametrize("ema_by", ["mul_add", "copy", "data"])
@pytest.mark.parametrize("loss_by", ["residual", "package"])
def test_training_step_checker_accepts_correct_steps(ema_by, loss_by):
    assert E.check_training_step(lambda *a: _step(*a, ema_by=ema_by, loss_by=loss_by), verbose=False).passed


@pytest.mark.parametrize("kind,words", [("no zero_grad", "never zeroed"), ("mean over dims", "mean over the pixels"),
                                        ("unweighted", "not weighted by sigma^2"), ("ema swapped", "EMA weights are swapped"),
                                        ("no ema", "EMA is not updated"), ("ema first", "before the optimizer step")])
def test_training_step_checker_names_mistakes(kind, words):
    _assert_caught(E.check_training_step, E._mistake_step(kind), words)


def test_training_step_checker_says_which_part_differs():
    def no_step(model, ema, opt, x, sigma, z, decay):  # forgets optimizer.step(): weights never move
        s = sigma.view(-1, 1, 1, 1)
        loss = 0.5 * (s * model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        return loss

    res = E.check_training_step(no_step, verbose=False)
    assert res.status == "wrong" and "the loss differs (step 2" in res.message


def _langevin(score_fn, x0, sigmas, T, eps, noise, sqrt_of=2.0):
    x = x0
    for i, s in enumerate(sigmas):
        alpha = eps * (s / sigmas[-1]) ** 2
        sv = torch.full((x.shape[0],), float(s))
        for j in range(T):
            z = noise(1 + i * T + j, x.shape, x.device, x.dtype)
            x = x + alpha * score_fn(x, sv) + torch.sqrt(sqrt_of * alpha) * z
    return x + sigmas[-1] ** 2 * score_fn(x, torch.full((x.shape[0],), float(sigmas[-1])))


def test_annealed_langevin_checker():
    from pegasus_course import sampling

    assert E.check_annealed_langevin(_langevin, verbose=False).passed
    package = lambda f, x0, s, T, e, n: sampling.annealed_langevin(f, x0.shape, s, T, e, noise=n, x_init=x0,  # noqa
                                                                   progress=False)
    assert E.check_annealed_langevin(package, verbose=False).passed
    _assert_caught(E.check_annealed_langevin, lambda *a: _langevin(*a, sqrt_of=1.0), "sqrt(2 alpha_i)")
    _assert_caught(E.check_annealed_langevin, lambda *a: E._langevin_reference(*a, anneal=False), "no annealing")
    _assert_caught(E.check_annealed_langevin, lambda *a: E._langevin_reference(*a, denoise=False), "denoising step")
    _assert_caught(E.check_annealed_langevin, lambda *a: E._langevin_reference(*a, index_offset=0), "numbered from 0")
    _assert_caught(E.check_annealed_langevin, lambda *a: E._langevin_reference(*a, base="first"), "sigma_1")


def _interp(score_fn, tape1, tape2, n, ks, sigmas, T, eps, weights=interpolation.mix_weights):
    from pegasus_course import sampling

    mixed = {}
    for i in tape1:
        parts = []
        for k in ks:
            c, s = weights(k, n)
            parts.append(float(c) * tape1[i] + float(s) * tape2[i])
        mixed[i] = torch.cat(parts)
    return sampling.annealed_langevin(score_fn, (len(ks), *tape1[0].shape[1:]), sigmas, T, eps,
                                      noise=sampling.TapeNoise(mixed), progress=False)


def test_interpolate_checker():
    assert E.check_interpolate(_interp, verbose=False).passed
    linear = lambda k, n: (1 - k / (n + 1), k / (n + 1))  # noqa: E731
    _assert_caught(E.check_interpolate, lambda *a: _interp(*a, weights=linear), "linear weights")
    swapped = lambda k, n: tuple(reversed(interpolation.mix_weights(k, n)))  # noqa: E731
    _assert_caught(E.check_interpolate, lambda *a: _interp(*a, weights=swapped), "swapped")
    _assert_caught(E.check_interpolate, lambda *a: E._interp_reference(*a, mix_start=False), "z_0")


def test_interpolate_reference_is_the_package():
    """The checker's written-out eq. 4 replay equals interpolation.interpolate for the same seeds."""
    from pegasus_course import sampling

    score, levels = E._gaussian_score(0.3), sigmas.geometric_sigmas(3.0, 0.1, 4)
    tapes = [sampling.record_tape(sampling.SeededNoise([s]), (1, 2, 4, 4), 9) for s in (3, 8)]
    ours = E._interp_reference(score, tapes[0], tapes[1], 5, [0, 2, 6], levels, 2, 0.02)
    package = interpolation.interpolate(score, (3, 8), 5, levels, 2, 0.02, image_shape=(2, 4, 4), ks=[0, 2, 6],
                                        progress=False)
    assert torch.allclose(ours, package, atol=1e-6)


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
