"""Wrong answers x checkers: every common mistake is named with its label, every answer that would break the
notebook's next cell is refused with a message that says what that cell needs (issue: no plausible answer
breaks Run All)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import exercise_answers as A
from pegasus_course import exercises as E

LV, DSM, NL, VR, IN = (E.check_langevin_step, E.check_dsm_loss, E.check_num_levels, E.check_variance_ratio,
                       E.check_instance_norm_pp)
TS, AL, IP, GS = E.check_training_step, E.check_annealed_langevin, E.check_interpolate, E.check_guided_score
R = lambda s, z, sc: 0.5 * (s * sc + z).pow(2)  # noqa: E731  the per-coordinate loss of eq. 2
EQ4 = lambda k, n: (math.cos(k * math.pi / (2 * (n + 1))), math.sin(k * math.pi / (2 * (n + 1))))  # noqa: E731

# (checker, the learner's wrong answer, words of the label the checker must name); a label named at the first
# try (another convention, a noise source never called) is in AT_ONCE, the others from the second try.
WRONG = {
    # ----- notebook 01: one Langevin step
    "step/sqrt(alpha) noise": (LV, A.step(noise=math.sqrt), "sqrt(alpha) instead of sqrt(2 alpha)"),
    "step/2 alpha noise": (LV, A.step(noise=lambda a: 2 * a), "instead of its square root"),
    "step/alpha noise": (LV, A.step(noise=lambda a: a), "instead of its square root"),
    "step/noise sign": (LV, A.step(noise=lambda a: -math.sqrt(2 * a)), "wrong sign of the noise"),
    "step/no noise": (LV, A.step(noise=lambda a: 0.0), "noise term is missing"),
    "step/half drift": (LV, A.step(drift=0.5), "half a step on the score"),
    "step/against the score": (LV, A.step(drift=-1.0), "against the score"),
    "step/eq. 3": (LV, A.step(noise=math.sqrt, drift=0.5), "eq. 3's form"),
    "step/eq. 3 in torch": (LV, lambda x, s, a, z: x + 0.5 * a * s + torch.tensor(a).sqrt() * z, "eq. 3's form"),
    # ----- notebook 01: the DSM loss
    "dsm/unweighted": (DSM, A.dsm(lambda s, z, sc: 0.5 * (sc + z / s).pow(2).sum(1).mean()), "sigma^2 weighting"),
    "dsm/sum over the batch": (DSM, A.dsm(lambda s, z, sc: R(s, z, sc).sum()), "summed over the batch"),
    "dsm/no half": (DSM, A.dsm(lambda s, z, sc: (s * sc + z).pow(2).sum(1).mean()), "factor 1/2"),
    "dsm/no half, randn_like": (DSM, A.dsm(lambda s, z, sc: (s * sc + z).pow(2).sum(1).mean(), z="randn_like"),
                                "factor 1/2"),
    "dsm/sign": (DSM, A.dsm(lambda s, z, sc: 0.5 * (s * sc - z).pow(2).sum(1).mean()), "wrong sign"),
    "dsm/mse_loss": (DSM, A.dsm(lambda s, z, sc: 0.5 * F.mse_loss(s * sc, -z)), "averaged over the dimensions"),
    "dsm/one sigma per batch": (DSM, A.dsm(per_batch=True, order="z first"), "one sigma per batch"),
    "dsm/clean x": (DSM, A.dsm(clean=True), "the score taken at the clean x"),
    # ----- notebook 02: the number of levels
    "levels/ratio^(1/L)": (NL, A.search(exponent=lambda L: 1 / L), "one level too few"),
    "levels/last below": (NL, A.search(result=lambda L: L - 1), "one level too few"),
    "levels/L + 1": (NL, A.search(result=lambda L: L + 1), "one level too many"),
    "levels/inverted ratio": (NL, A.search(ratio=lambda a, b: b / a), "inverted ratio"),
    "levels/target ignored": (NL, A.search(target_of=lambda t: 0.5), "target is ignored"),
    # ----- notebook 02: the variance recursion
    "ratio/noise alpha": (VR, A.recursion(noise=1.0), "noise variance alpha"),
    "ratio/r not squared": (VR, A.recursion(square=False), "r not squared"),
    "ratio/start 1": (VR, A.recursion(start=lambda g: 1.0), "started at variance 1"),
    "ratio/start gamma": (VR, A.recursion(start=lambda g: g), "started at gamma instead of gamma^2"),
    "ratio/T + 1": (VR, A.recursion(steps=lambda T: T + 1), "T + 1 iterations"),
    "ratio/r = 1 - eps": (VR, A.recursion(r_of=lambda e, s: 1 - e), "r = 1 - eps:"),
    "ratio/r = 1 + eps": (VR, A.recursion(r_of=lambda e, s: 1 + e / s**2), "r = 1 + eps / sigma_L^2"),
    # ----- notebook 03: InstanceNorm++
    "inpp/plain": (IN, lambda x, g, a, b, eps=1e-5: g.view(1, -1, 1, 1) * F.instance_norm(x, eps=eps)
                   + b.view(1, -1, 1, 1), "plain instance norm"),
    "inpp/unbiased": (IN, A.inpp(norm=lambda x, eps: (x - x.mean((2, 3), keepdim=True))
                                 / (x.var((2, 3), keepdim=True) + eps).sqrt(), unbiased_means=True), "unbiased"),
    "inpp/batch statistics": (IN, A.inpp(norm=lambda x, eps: (x - x.mean((0, 2, 3), keepdim=True))
                                         / (x.var((0, 2, 3), keepdim=True, unbiased=False) + eps).sqrt()),
                              "statistics over the batch"),
    "inpp/batch_norm": (IN, A.inpp(norm=lambda x, eps: F.batch_norm(x, None, None, training=True, eps=eps)),
                        "statistics over the batch"),
    "inpp/m and s over the batch": (IN, A.inpp(over=0), "statistics over the batch"),
    "inpp/layer_norm": (IN, A.inpp(norm=lambda x, eps: F.layer_norm(x, x.shape[1:], eps=eps)), "C x H x W"),
    "inpp/group_norm(1)": (IN, A.inpp(norm=lambda x, eps: F.group_norm(x, 1, eps=eps)), "C x H x W"),
    "inpp/means sign": (IN, A.inpp(sign=-1.0), "wrong sign on the means term"),
    "inpp/paper's form": (IN, A.inpp(paper=True), "the paper's form"),
    # ----- notebook 04: one training step
    "train/sign": (TS, A.train_step(lambda s, z, sc: 0.5 * (s * sc - z).pow(2).flatten(1).sum(1).mean()),
                   "wrong sign"),
    "train/no half": (TS, A.train_step(lambda s, z, sc: (s * sc + z).pow(2).flatten(1).sum(1).mean()),
                      "factor 1/2"),
    "train/sum over the batch": (TS, A.train_step(lambda s, z, sc: 0.5 * F.mse_loss(s * sc, -z, reduction="sum")),
                                 "summed over the batch"),
    "train/mse_loss mean": (TS, A.train_step(lambda s, z, sc: 0.5 * F.mse_loss(s * sc, -z)), "mean over the pixels"),
    "train/clean x": (TS, A.train_step(seen=lambda x, s, z: x), "evaluated on the clean x"),
    "train/unweighted": (TS, A.train_step(lambda s, z, sc: 0.5 * (sc + z / s).pow(2).flatten(1).sum(1).mean()),
                         "not weighted by sigma^2"),
    "train/no zero_grad": (TS, A.train_step(zero=False), "never zeroed"),
    "train/ema swapped": (TS, A.train_step(ema="swapped"), "EMA weights are swapped"),
    "train/no ema": (TS, A.train_step(ema=None), "EMA is not updated"),
    "train/ema first": (TS, A.train_step(ema_first=True), "before the optimizer step"),
    # ----- notebook 05: annealed Langevin dynamics
    "sampler/sqrt(eps)": (AL, A.sampler(noise_scale=lambda a, e: math.sqrt(e)), "sqrt(2 alpha_i)"),
    "sampler/sqrt(alpha)": (AL, A.sampler(noise_scale=lambda a, e: math.sqrt(a)), "sqrt(2 alpha_i)"),
    "sampler/no annealing": (AL, A.sampler(alpha_of=lambda e, s, lv: e), "no annealing"),
    "sampler/ratio not squared": (AL, A.sampler(alpha_of=lambda e, s, lv: e * s / lv[-1]), "is squared"),
    "sampler/sigma_1 base": (AL, A.sampler(alpha_of=lambda e, s, lv: e * (s / lv[0]) ** 2), "sigma_i^2 / sigma_1^2"),
    "sampler/score sign": (AL, A.sampler(drift=-1.0), "the score's sign"),
    "sampler/T - 1 steps": (AL, A.sampler(steps=lambda T: range(T - 1)), "T - 1 steps per level"),
    "sampler/T - 1 steps from 1": (AL, A.sampler(steps=lambda T: range(1, T)), "T - 1 steps per level"),
    "sampler/no denoising": (AL, A.sampler(denoise_at=None), "denoising step x + sigma_L^2 s(x, sigma_L) is missing"),
    "sampler/denoising at sigma_1": (AL, A.sampler(denoise_at=0), "denoising step at sigma_1"),
    "sampler/draws from 0": (AL, A.sampler(first=0), "numbered from 0"),
    "sampler/randn_like": (AL, A.sampler(z_of=torch.randn_like), "torch.randn_like"),
    "sampler/randn": (AL, A.sampler(z_of=lambda x: torch.randn(x.shape)), "Replay needs the tape"),
    "sampler/eq. 3": (AL, A.sampler(drift=0.5, noise_scale=lambda a, e: math.sqrt(a)), "eq. 3's form"),
    # ----- notebook 06: eq. 4 replayed
    "interp/linear": (IP, A.interp(weights=lambda k, n: (1 - k / (n + 1), k / (n + 1))), "linear weights"),
    "interp/swapped": (IP, A.interp(weights=lambda k, n: EQ4(k, n)[::-1]), "swapped"),
    "interp/z_0 not mixed": (IP, A.interp(mix_start=False), "z_0 (draw 0) is not mixed"),
    "interp/angle N": (IP, A.interp(weights=lambda k, n: (math.cos(k * math.pi / (2 * n)),
                                                          math.sin(k * math.pi / (2 * n)))), "NCSNv2's code convention"),
    # ----- notebook 07: the guided score
    "guided/no scale": (GS, A.guided(combine=lambda sc, w, g: sc + g), "scale is missing"),
    "guided/scale on the score": (GS, A.guided(combine=lambda sc, w, g: w * sc + g), "scale is missing"),
    "guided/probability": (GS, A.guided(log_p=lambda lg: lg.softmax(-1)), "instead of log p(y | x)"),
    "guided/raw logit": (GS, A.guided(log_p=lambda lg: lg), "raw logit"),
    "guided/sign": (GS, A.guided(combine=lambda sc, w, g: sc - w * g), "sign flipped"),
    "guided/mean over the batch": (GS, A.guided(reduce=torch.mean), ".mean() over the batch"),
    "guided/log_softmax over the batch": (GS, A.guided(log_p=lambda lg: lg.log_softmax(0)), "over the batch axis"),
    "guided/F.log_softmax dim=0": (GS, A.guided(log_p=lambda lg: F.log_softmax(lg, dim=0)), "over the batch axis"),
    "guided/score left out": (GS, A.guided(combine=lambda sc, w, g: w * g), "score is left out"),
}
AT_ONCE = {"step/eq. 3", "step/eq. 3 in torch", "inpp/paper's form", "sampler/randn_like", "sampler/randn",
           "sampler/eq. 3", "interp/angle N"}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_wrong_answer_is_named_with_its_label(case):
    check, fn, words = WRONG[case]
    E.reset_attempts()
    first, second = check(fn, verbose=False), check(fn, verbose=False)
    assert first.status == second.status == "wrong", first
    if case in AT_ONCE:  # another convention, or seen in how the function ran: named at once, not guessed
        assert words in first.message and "likely mistake" not in first.message, first.message
    else:
        assert "likely mistake" not in first.message and "hint:" in first.message  # the general hint first
        assert "likely mistake" in second.message and words in second.message, second.message
    assert not E.use(fn, check, E.solution(check.__name__.removeprefix("check_"))) is fn


def test_the_table_is_large():
    assert len(WRONG) >= 68


# ----- contract violations: answers that would pass on values but break the next cell
def _np(t):
    return t.detach().cpu().numpy()


def _sigma_float(score_fn, x0, sigmas, T, eps, noise):  # the review's sampler: sigma_i a Python float
    return A.sampler(sigma_of=lambda s, x: s)(score_fn, x0, sigmas, T, eps, noise)


def _in_place_sampler(score_fn, x0, sigmas, T, eps, noise):  # x = x0, then x += ...: x0 is changed too
    x, sigma_L = x0, float(sigmas[-1])
    for i, s in enumerate(sigmas.tolist()):
        alpha, sv = eps * s**2 / sigma_L**2, torch.full((x.shape[0],), s)
        for j in range(T):
            x += alpha * score_fn(x, sv) + math.sqrt(2 * alpha) * noise(1 + i * T + j, x.shape, x.device, x.dtype)
    x += sigma_L**2 * score_fn(x, torch.full((x.shape[0],), sigma_L))
    return x


def _in_place_inpp(x, gamma, alpha, beta, eps=1e-5):
    mu = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), keepdim=True, unbiased=False)
    m, s2 = mu.mean(1, keepdim=True), mu.var(1, keepdim=True, unbiased=False)
    x -= mu
    x /= torch.sqrt(var + eps)
    x += alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)
    return gamma.view(1, -1, 1, 1) * x + beta.view(1, -1, 1, 1)


def _in_place_interp(score_fn, tape1, tape2, n, ks, sigmas, T, eps):  # writes the mixed draws into tape1 itself
    from pegasus_course import sampling

    angles = torch.tensor([k * math.pi / (2 * (n + 1)) for k in ks]).view(-1, 1, 1, 1)
    for i in tape1:
        tape1[i] = angles.cos() * tape1[i] + angles.sin() * tape2[i]
    return sampling.annealed_langevin(score_fn, (len(ks), *tape2[0].shape[1:]), sigmas, T, eps,
                                      noise=sampling.TapeNoise(tape1), progress=False)


def _one_sample_noise(score_fn, x0, sigmas, T, eps, noise):  # draws the shape of one sample, not of the batch
    return A.sampler()(score_fn, x0, sigmas, T, eps, lambda i, shape, d, t: noise(i, shape[1:], d, t))


CONTRACT = {  # (checker, answer, words the message must contain: what the next cell needs)
    "step/NumPy": (LV, A.step(after=_np), "score_fn(x, sigma)"),
    "step/np.sqrt on a NumPy z": (LV, lambda x, s, a, z: x.numpy() + a * s.numpy() + np.sqrt(2 * a) * z.numpy(),
                                  "not NumPy"),
    "step/float64": (LV, A.step(after=lambda t: t.double()), "float32"),
    "step/a list of rows": (LV, A.step(after=lambda t: list(t)), "torch.stack"),
    "step/summed": (LV, A.step(after=lambda t: t.sum(-1)), "feeds each step's result back"),
    "dsm/.item()": (DSM, A.dsm(after=lambda t: t.item()), "training calls loss.backward()"),
    "dsm/float()": (DSM, A.dsm(after=float), "no .item() or float()"),
    "dsm/no_grad": (DSM, A.dsm(no_grad=True), "torch.no_grad()"),
    "dsm/detach": (DSM, A.dsm(after=lambda t: t.detach()), "loss.backward()"),
    "dsm/rebuilt tensor": (DSM, A.dsm(after=lambda t: torch.tensor(t.item(), requires_grad=True)),
                           "does not reach the network's parameters"),
    "dsm/per example": (DSM, A.dsm(lambda s, z, sc: R(s, z, sc).sum(1)), "mean over the batch"),
    "dsm/NumPy": (DSM, A.dsm(after=lambda t: t.detach().numpy()), "loss.backward()"),
    "dsm/sigma (B, 1)": (DSM, A.dsm(sigma_shape=(-1, 1)), "the toy network that section 5 trains"),
    "dsm/sigma a float": (DSM, lambda f, x, lv, g: f(x, float(lv[0])).sum() * 0, "shape ("),
    "levels/float": (NL, A.search(result=float), "expected an int"),
    "levels/tensor": (NL, A.search(result=torch.tensor), "int(...)"),
    "levels/NumPy float": (NL, A.search(result=np.float64), "num_noise_scales"),
    "ratio/list": (VR, A.recursion(result=lambda v: [v]), "f'{v:.4f}'"),
    "ratio/shape (1,)": (VR, A.recursion(result=lambda v: torch.tensor([v])), "math.sqrt(v)"),
    "ratio/None": (VR, lambda e, s, g, t: None, "did you forget `return`"),
    "inpp/NumPy": (IN, A.inpp(after=_np), "InstanceNormPlusPlus by torch.allclose"),
    "inpp/float64": (IN, A.inpp(after=lambda t: t.double()), "x's dtype"),
    "inpp/no spatial axes": (IN, A.inpp(after=lambda t: t.mean((2, 3))), "shows it as images"),
    "train/None": (TS, A.train_step(ret=lambda loss: None), "torch.as_tensor(loss).reshape(())"),
    "train/per example": (TS, A.train_step(ret=lambda loss: loss.detach().repeat(4)),
                          "keeps each step's loss as one number"),
    "train/a dict": (TS, A.train_step(ret=lambda loss: {"loss": loss}), "training.train keeps"),
    "sampler/sigma a float": (AL, _sigma_float, "the U-Net"),
    "sampler/sigma a 0-dim tensor": (AL, A.sampler(sigma_of=lambda s, x: torch.tensor(s)), "shape ("),
    "sampler/sigma (B, 1)": (AL, A.sampler(sigma_of=lambda s, x: torch.full((x.shape[0], 1), s)), "one sigma per"),
    "sampler/sigma float64": (AL, A.sampler(sigma_of=lambda s, x: torch.full((x.shape[0],), s, dtype=torch.float64)),
                              "x's dtype"),
    "sampler/NumPy": (AL, A.sampler(after=_np), "torch.allclose"),
    "sampler/float64 samples": (AL, A.sampler(after=lambda t: t.double()), "float32"),
    "sampler/noise of one sample": (AL, _one_sample_noise, "noise(index, x.shape"),
    "sampler/x += on x0": (AL, _in_place_sampler, "section 4 starts three runs from one x0"),
    "inpp/x -= mu in place": (IN, _in_place_inpp, "InstanceNormPlusPlus afterwards"),
    "interp/mixed into tape1": (IP, _in_place_interp, "replay the same two tapes again"),
    "interp/a list": (IP, A.interp(after=lambda t: list(t)), "torch.cat"),
    "interp/float64": (IP, A.interp(after=lambda t: t.double()), "float32"),
    "interp/one row per k": (IP, A.interp(after=lambda t: t[:, None]), "clamp the row"),
    "guided/NumPy": (GS, A.guided(after=_np), "the sampler adds it to x"),
    "guided/float64": (GS, A.guided(after=lambda t: t.double()), "float32"),
    "guided/sigma a float": (GS, lambda f, c, x, s, y, w: A.guided()(f, lambda xx, ss: c(xx, float(ss[0])), x, s, y,
                                                                      w), "noisy classifier"),
}


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # a learner's float(loss)
@pytest.mark.parametrize("case", list(CONTRACT))
def test_an_answer_that_breaks_the_next_cell_is_refused_with_what_that_cell_needs(case, capsys):
    check, fn, words = CONTRACT[case]
    E.reset_attempts()
    result = check(fn, verbose=False)
    assert result.status == "wrong" and not result.passed, result
    assert words in result.message, result.message
    name = check.__name__.removeprefix("check_")
    assert E.use(fn, check, E.solution(name)) is E.solution(name)
    said = capsys.readouterr().out
    assert said.startswith(f"[{name}] using the reference solution: your ") and words in said, said


def test_the_contract_table_covers_every_exercise():
    assert {c[0] for c in CONTRACT.values()} == {LV, DSM, NL, VR, IN, TS, AL, IP, GS} and len(CONTRACT) >= 35


def test_the_three_holes_of_the_review_are_closed():
    """An .item() loss, a float sigma and a NumPy step all passed once and crashed the next cell."""
    item = E.check_dsm_loss(A.dsm(after=lambda t: t.item()), verbose=False)
    assert "your loss is a float" in item.message and "loss.backward()" in item.message and "return the tensor" \
        in item.message
    assert "torch.no_grad()" in E.check_dsm_loss(A.dsm(no_grad=True), verbose=False).message
    float_sigma = E.check_annealed_langevin(_sigma_float, verbose=False)
    assert "sigma a float" in float_sigma.message and "U-Net" in float_sigma.message
    step = E.check_langevin_step(A.step(after=_np), verbose=False)
    assert "NumPy array" in step.message and "score_fn(x, sigma)" in step.message
