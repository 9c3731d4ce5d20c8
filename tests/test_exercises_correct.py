"""Correct answers in many styles pass their checkers: the contracts refuse what breaks the next cell, never a
way of writing the right thing (randn_like or the generator, mse_loss(sum) / B, F.instance_norm with the means
term, lerp_ or _foreach EMAs, torch.func guidance, ...)."""

import functools
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import exercise_answers as A
from pegasus_course import exercises as E
from pegasus_course import losses, sampling, sigmas
from pegasus_course.nn import InstanceNormPlusPlus

LV, DSM, NL, VR, IN = (E.check_langevin_step, E.check_dsm_loss, E.check_num_levels, E.check_variance_ratio,
                       E.check_instance_norm_pp)
TS, AL, IP, GS = E.check_training_step, E.check_annealed_langevin, E.check_interpolate, E.check_guided_score


def _levels_closed_form(sigma_1, sigma_L, dim, target):
    gamma = sigmas.noise_scale_ratio(dim, target)  # the ratio that meets the target, then L from it
    L = max(2, math.ceil(1 + math.log(sigma_1 / sigma_L) / math.log(gamma)))
    while sigmas.technique2_overlap((sigma_1 / sigma_L) ** (1 / (L - 1)), dim) < target:  # float edge cases
        L += 1
    while L > 2 and sigmas.technique2_overlap((sigma_1 / sigma_L) ** (1 / (L - 2)), dim) >= target:
        L -= 1
    return L


def _levels_count(sigma_1, sigma_L, dim, target):
    for L in itertools.count(2):
        if sigmas.technique2_overlap(math.exp(math.log(sigma_1 / sigma_L) / (L - 1)), dim) >= target:
            return L


def _inpp_var_mean(x, gamma, alpha, beta, eps=1e-5):
    var, mu = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
    var_m, m = torch.var_mean(mu, dim=1, keepdim=True, unbiased=False)
    h = (x - mu) * torch.rsqrt(var + eps) + alpha[None, :, None, None] * (mu - m) * torch.rsqrt(var_m + eps)
    return gamma[None, :, None, None] * h + beta[None, :, None, None]


def _inpp_flat(x, gamma, alpha, beta, eps=1e-5):
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    mu, sd = flat.mean(-1), flat.std(-1, unbiased=False)  # std + eps instead of sqrt(var + eps): within float32
    means = (mu - mu.mean(1, keepdim=True)) / (mu.std(1, unbiased=False, keepdim=True) + eps)
    h = (flat - mu[..., None]) / (sd[..., None] + eps) + (alpha * means)[..., None]
    return (gamma[:, None] * h + beta[:, None]).reshape(x.shape)


@torch.no_grad()
def _inpp_module(x, gamma, alpha, beta, eps=1e-5):
    norm = InstanceNormPlusPlus(x.shape[1], eps)
    norm.gamma.copy_(gamma), norm.alpha.copy_(alpha), norm.beta.copy_(beta)
    return norm(x)


def _sampler_package(score_fn, x0, sigmas_, T, eps, noise):
    return sampling.annealed_langevin(score_fn, x0.shape, sigmas_, T, eps, noise=noise, x_init=x0, progress=False)


def _sampler_counter(score_fn, x0, sigmas_, T, eps, noise):
    x, k, sigma_L = x0.clone(), 1, sigmas_[-1]
    for s in sigmas_:  # 0-dim tensors
        alpha = eps * (s / sigma_L) ** 2
        for _ in range(T):
            x = x + alpha * score_fn(x, s.expand(x.shape[0])) + torch.sqrt(2 * alpha) * noise(k, x.shape, x.device,
                                                                                                   x.dtype)
            k += 1
    return x + sigma_L**2 * score_fn(x, x.new_full((x.shape[0],), float(sigma_L)))


def _sampler_with_step(score_fn, x0, sigmas_, T, eps, noise):  # notebook 01's step inside, on new_ones levels
    step = E.solution("langevin_step")
    x = x0
    for i, s in enumerate(sigmas_.tolist()):
        alpha = eps * s**2 / sigmas_[-1].item() ** 2
        for j in range(T):
            x = step(x, score_fn(x, x.new_ones(x.shape[0]) * s), alpha, noise(1 + i * T + j, x.shape, x.device, x.dtype))
    s_L = sigmas_[-1].item()
    return x + s_L**2 * score_fn(x, torch.ones_like(x[:, 0].flatten()) * s_L) if x.ndim == 2 else \
        x + s_L**2 * score_fn(x, x.new_full((x.shape[0],), s_L))


def _interp_stacked(score_fn, tape1, tape2, n, ks, sigmas_, T, eps):
    angles = torch.tensor(ks, dtype=torch.float32, device=tape1[0].device) * math.pi / (2 * (n + 1))
    c, s = angles.cos().view(-1, 1, 1, 1), angles.sin().view(-1, 1, 1, 1)
    mixed = {i: c * tape1[i] + s * tape2[i] for i in tape1}  # (1, ...) broadcast to (len(ks), ...)
    return sampling.annealed_langevin(score_fn, (len(ks), *tape1[0].shape[1:]), sigmas_, T, eps,
                                      noise=sampling.TapeNoise(mixed), progress=False)


def _interp_per_k(score_fn, tape1, tape2, n, ks, sigmas_, T, eps):  # a loop over k, each replayed alone, then cat
    from pegasus_course.interpolation import mix_weights

    rows = []
    for k in ks:
        c, s = (float(v) for v in mix_weights(k, n))
        tape = sampling.TapeNoise({i: c * tape1[i] + s * tape2[i] for i in tape1})
        rows.append(sampling.annealed_langevin(score_fn, tape1[0].shape, sigmas_, T, eps, noise=tape, progress=False))
    return torch.cat(rows)


def _guided_func(score_fn, classifier_fn, x, sigma, y, scale):
    def log_p(xx):
        return classifier_fn(xx, sigma).log_softmax(-1).gather(1, y[:, None]).sum()
    return score_fn(x, sigma) + scale * torch.func.grad(log_p)(x)


def _guided_backward(score_fn, classifier_fn, x, sigma, y, scale):
    with torch.enable_grad():
        xg = x.clone().requires_grad_()
        (-F.cross_entropy(classifier_fn(xg, sigma), y, reduction="sum")).backward()
    return score_fn(x, sigma) + scale * xg.grad


def _guided_nll(score_fn, classifier_fn, x, sigma, y, scale):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        loss = F.nll_loss(F.log_softmax(classifier_fn(xg, sigma), dim=1), y, reduction="sum")
        grad = -torch.autograd.grad(loss, xg)[0]
    return torch.add(score_fn(x, sigma), grad, alpha=scale)


def _guided_one_hot(score_fn, classifier_fn, x, sigma, y, scale):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = classifier_fn(xg, sigma)
        picked = (F.one_hot(y, logits.shape[-1]) * (logits - logits.logsumexp(-1, keepdim=True))).sum()
        (grad,) = torch.autograd.grad(picked, [xg])
    return score_fn(x, sigma) + scale * grad


def _ratio_closed(eps, sigma_L, gamma, T):
    return sigmas.technique4_objective(eps, gamma, sigma_L, T)


def _ratio_reduce(eps, sigma_L, gamma, T):
    r2 = (1 - eps / sigma_L**2) ** 2
    return functools.reduce(lambda v, _: r2 * v + 2 * eps / sigma_L**2, range(T), gamma**2)


def _ratio_tensor(eps, sigma_L, gamma, T):
    v, r = torch.tensor(gamma, dtype=torch.float64) ** 2, 1 - eps / sigma_L**2
    for _ in range(T):
        v = r**2 * v + 2 * eps / sigma_L**2
    return v


def _ratio_geometric(eps, sigma_L, gamma, T):  # the geometric series summed by hand
    r2, c = (1 - eps / sigma_L**2) ** 2, 2 * eps / sigma_L**2
    return r2**T * gamma**2 + c * sum(r2**t for t in range(T))


RIGHT = {
    # ----- notebook 01: the step
    "step/math.sqrt": (LV, A.step()),
    "step/** 0.5": (LV, A.step(noise=lambda a: (2 * a) ** 0.5)),
    "step/np.sqrt scalar": (LV, A.step(noise=lambda a: np.sqrt(2 * a))),
    "step/torch.sqrt": (LV, lambda x, s, a, z: x + a * s + torch.sqrt(torch.tensor(2.0 * a)) * z),
    "step/torch.add": (LV, lambda x, s, a, z: torch.add(x + a * s, z, alpha=math.sqrt(2 * a))),
    "step/in place": (LV, lambda x, s, a, z: x.add_(s, alpha=a).add_(z, alpha=math.sqrt(2 * a))),
    "step/addcmul": (LV, lambda x, s, a, z: torch.addcmul(x + a * s, z, torch.tensor(math.sqrt(2 * a)))),
    # ----- notebook 01: the DSM loss
    "dsm/generator": (DSM, A.dsm()),
    "dsm/randn_like": (DSM, A.dsm(z="randn_like")),
    "dsm/z first": (DSM, A.dsm(order="z first")),
    "dsm/z first, randn_like": (DSM, A.dsm(order="z first", z="randn_like")),
    "dsm/mse_loss(sum) / B": (DSM, A.dsm(lambda s, z, sc: 0.5 * F.mse_loss(s * sc, -z, reduction="sum") / sc.shape[0])),
    "dsm/vector_norm": (DSM, A.dsm(lambda s, z, sc: torch.linalg.vector_norm(s * sc + z, dim=1).pow(2).mean() / 2)),
    "dsm/einsum": (DSM, A.dsm(lambda s, z, sc: 0.5 * torch.einsum("bd,bd->b", s * sc + z, s * sc + z).mean())),
    "dsm/the package": (DSM, lambda f, x, lv, g: losses.dsm_loss(f, x, lv, generator=g)),
    "dsm/sum then divide": (DSM, A.dsm(lambda s, z, sc: (s * sc + z).square().sum() / (2 * len(sc)))),
    # ----- notebook 02: the number of levels
    "levels/while": (NL, A.search()),
    "levels/itertools.count, exp-log": (NL, _levels_count),
    "levels/closed form, checked": (NL, _levels_closed_form),
    "levels/np.int64": (NL, A.search(result=np.int64)),
    "levels/range": (NL, lambda a, b, d, t: next(L for L in range(2, 100_000)
                                                  if sigmas.technique2_overlap((a / b) ** (1 / (L - 1)), d) >= t)),
    # ----- notebook 02: the variance recursion
    "ratio/loop": (VR, A.recursion()),
    "ratio/closed form": (VR, _ratio_closed),
    "ratio/reduce": (VR, _ratio_reduce),
    "ratio/0-dim float64 tensor": (VR, _ratio_tensor),
    "ratio/geometric series": (VR, _ratio_geometric),
    "ratio/np.float64": (VR, A.recursion(result=np.float64)),
    # ----- notebook 03: InstanceNorm++
    "inpp/F.instance_norm + means term": (IN, A.inpp()),
    "inpp/by hand": (IN, A.inpp(norm=lambda x, eps: (x - x.mean((2, 3), keepdim=True))
                                / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=False) + eps))),
    "inpp/var_mean, rsqrt": (IN, _inpp_var_mean),
    "inpp/flattened, std": (IN, _inpp_flat),
    "inpp/the package's module": (IN, _inpp_module),
    "inpp/unbiased variance of the means": (IN, A.inpp(unbiased_means=True)),
    # ----- notebook 04: the training step
    "train/mul_ add_": (TS, A.train_step()),
    "train/lerp_": (TS, A.train_step(ema="lerp")),
    "train/_foreach": (TS, A.train_step(ema="foreach")),
    "train/copy_": (TS, A.train_step(ema="copy")),
    "train/mse_loss(sum) / B": (TS, A.train_step(lambda s, z, sc: 0.5 * F.mse_loss(s * sc, -z, reduction="sum")
                                                 / sc.shape[0])),
    "train/the package's loss": (TS, lambda m, e, o, x, s, z, d: A.train_step(
        lambda s_, z_, sc: losses.dsm_loss_given(m, x, s, z))(m, e, o, x, s, z, d)),
    "train/returns loss.item()": (TS, A.train_step(ret=lambda loss: loss.item())),
    "train/returns the loss with its graph": (TS, A.train_step(ret=lambda loss: loss)),
    # ----- notebook 05: the sampler
    "sampler/floats": (AL, A.sampler()),
    "sampler/the package": (AL, _sampler_package),
    "sampler/0-dim levels, a counter": (AL, _sampler_counter),
    "sampler/the step of notebook 01": (AL, _sampler_with_step),
    "sampler/the reference": (AL, E.solution("annealed_langevin")),
    # ----- notebook 06: eq. 4 replayed
    "interp/cos and sin": (IP, A.interp()),
    "interp/broadcast angles": (IP, _interp_stacked),
    "interp/one replay per k": (IP, _interp_per_k),
    # ----- notebook 07: the guided score
    "guided/autograd.grad": (GS, A.guided()),
    "guided/torch.func.grad": (GS, _guided_func),
    "guided/cross_entropy backward": (GS, _guided_backward),
    "guided/nll_loss": (GS, _guided_nll),
    "guided/one-hot logsumexp": (GS, _guided_one_hot),
    "guided/gather": (GS, A.guided(log_p=lambda lg: F.log_softmax(lg, dim=1))),
}


@pytest.mark.parametrize("case", list(RIGHT))
def test_a_correct_answer_passes_in_any_style(case, capsys):
    check, fn = RIGHT[case]
    state = torch.random.get_rng_state()
    result = check(fn, verbose=False)
    assert result.passed, result
    assert torch.equal(torch.random.get_rng_state(), state), "a checker must leave the global RNG as it was"
    assert E.use(fn, check, E.solution(check.__name__.removeprefix("check_"))) is fn
    assert "using your " in capsys.readouterr().out


def test_the_table_has_at_least_the_reviews_44_styles():
    assert len(RIGHT) >= 44 and {c for c, _ in RIGHT.values()} == {LV, DSM, NL, VR, IN, TS, AL, IP, GS}
