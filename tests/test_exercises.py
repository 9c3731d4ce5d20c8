import math

import numpy as np
import pytest
import torch

from pegasus_course import exercises as E
from pegasus_course import interpolation, losses, sigmas
from pegasus_course.exercises import nb03, nb06, scores, solutions


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


def test_training_step_checker_says_which_part_differs():
    def no_step(model, ema, opt, x, sigma, z, decay):  # forgets optimizer.step(): weights never move
        s = sigma.view(-1, 1, 1, 1)
        loss = 0.5 * (s * model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        return loss

    res = E.check_training_step(no_step, verbose=False)
    assert res.status == "wrong" and "the loss differs (step 2" in res.message


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


def test_interpolate_reference_is_the_package():
    """The checker's written-out eq. 4 replay equals interpolation.interpolate for the same seeds."""
    from pegasus_course import sampling

    score, levels = scores.gaussian_score(0.3), sigmas.geometric_sigmas(3.0, 0.1, 4)
    tapes = [sampling.record_tape(sampling.SeededNoise([s]), (1, 2, 4, 4), 9) for s in (3, 8)]
    ours = nb06.interp_reference(score, tapes[0], tapes[1], 5, [0, 2, 6], levels, 2, 0.02)
    package = interpolation.interpolate(score, (3, 8), 5, levels, 2, 0.02, image_shape=(2, 4, 4), ks=[0, 2, 6],
                                        progress=False)
    assert torch.allclose(ours, package, atol=1e-6)


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


def test_instance_norm_pp_checker_accepts_both_variances_of_the_channel_means_and_says_which():
    biased = E.check_instance_norm_pp(lambda x, g, a, b: nb03.inpp(x, g, a, b), verbose=False)
    assert biased.passed and "matches the package" in biased.message and "You wrote" not in biased.message
    unbiased = E.check_instance_norm_pp(lambda x, g, a, b: nb03.inpp(x, g, a, b, means_unbiased=True), verbose=False)
    assert unbiased.passed and "unbiased variance of the channel means" in unbiased.message
    # unbiased over H x W (instance norm's own variance) stays a mistake, whatever the means use
    _assert_caught(E.check_instance_norm_pp,
                   lambda x, g, a, b: nb03.inpp(x, g, a, b, unbiased=True, means_unbiased=False), "over H x W")


# ----- every checker survives every kind of bad answer (issue 24, item 6)

_CHECKERS = {  # checker -> the number of arguments its learner function takes
    E.check_dsm_loss: 4, E.check_langevin_step: 4, E.check_num_levels: 4, E.check_variance_ratio: 4,
    E.check_instance_norm_pp: 4, E.check_training_step: 7, E.check_annealed_langevin: 6, E.check_interpolate: 8,
    E.check_guided_score: 6}


def _raises(*args):
    raise ValueError("boom")


_BAD = {  # kind of bad answer -> (the learner's function, the status, words the verdict must contain)
    "returns None": (lambda *a: None, "wrong", "returned None (did you forget `return"),
    "returns a string": (lambda *a: "a loss", "wrong", "returned a string"),
    "returns a list": (lambda *a: [torch.zeros(2), torch.zeros(2)], "wrong", "returned a list of 2 items"),
    "returns the wrong shape": (lambda *a: torch.zeros(7, 3), "wrong", "shape (7, 3)"),
    "returns nan": (None, "wrong", "nan"),
    "raises": (_raises, "error", "ValueError: boom"),
    "returns an object": (lambda *a: object(), "wrong", "object of type object"),
    "returns a NumPy array": (lambda *a: np.zeros((7, 3)), "wrong", "NumPy array of shape (7, 3)"),
}


@pytest.mark.parametrize("kind", list(_BAD))
@pytest.mark.parametrize("check", list(_CHECKERS), ids=lambda c: c.__name__)
def test_every_checker_gives_a_verdict_for_every_bad_answer(check, kind, capsys):
    fn, status, words = _BAD[kind]
    if kind == "returns nan":  # the right shape, not finite
        name = check.__name__.removeprefix("check_")
        fn = lambda *a: E.solution(name)(*a) * float("nan")  # noqa: E731
    result = check(fn)  # verbose: the verdict is printed, never a traceback
    assert not result.passed and result.status == status, result
    assert words in result.message, result.message
    assert f"[{result.exercise}] {status}" in capsys.readouterr().out


@pytest.mark.parametrize("check", list(_CHECKERS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("thing", [None, "my_function", torch.zeros(3), [1, 2]], ids=["None", "str", "tensor", "list"])
def test_every_checker_says_it_needs_the_function_itself(check, thing):
    result = check(thing, verbose=False)
    assert result.status == "error" and not result.passed
    assert "needs your function itself" in result.message and f"called as my_{result.exercise}(" in result.message


@pytest.mark.parametrize("check", list(_CHECKERS), ids=lambda c: c.__name__)
def test_a_function_of_the_wrong_arity_is_told_how_it_is_called(check):
    result = check(lambda x: x, verbose=False)
    assert result.status == "error" and "TypeError" in result.message
    assert f"it is called as my_{result.exercise}(" in result.message


def test_training_step_none_is_not_correct_and_a_missing_return_is_named():
    assert E.check_training_step(None, verbose=False).status == "error"

    def no_return(model, ema, opt, x, sigma, z, decay):
        _step(model, ema, opt, x, sigma, z, decay)

    result = E.check_training_step(no_return, verbose=False)
    assert result.status == "wrong" and "did you forget `return loss`" in result.message

    def per_example(model, ema, opt, x, sigma, z, decay):
        _step(model, ema, opt, x, sigma, z, decay)
        return torch.zeros(x.shape[0])

    result = E.check_training_step(per_example, verbose=False)
    assert result.status == "wrong" and "shape (4,)" in result.message


def test_training_step_an_ema_over_state_dict_keys_is_told_what_model_is():
    def by_keys(model, ema, opt, x, sigma, z, decay):
        s = sigma.view(-1, 1, 1, 1)
        loss = 0.5 * (s * model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        live = model.state_dict()
        with torch.no_grad():
            for key, avg in ema.state_dict().items():
                avg.mul_(decay).add_(live[key], alpha=1 - decay)
        return loss

    result = E.check_training_step(by_keys, verbose=False)
    assert result.status == "error" and "KeyError" in result.message
    assert "zip(ema.parameters(), model.parameters())" in result.message and "'net.'" in result.message


def test_guided_score_without_enable_grad_is_told_why():
    def no_enable_grad(score_fn, clf, x, sigma, y, scale):
        xg = x.detach().requires_grad_(True)
        lp = clf(xg, sigma).log_softmax(-1)[torch.arange(x.shape[0]), y].sum()
        (grad,) = torch.autograd.grad(lp, xg)
        return score_fn(x, sigma) + scale * grad

    result = E.check_guided_score(no_enable_grad, verbose=False)
    assert result.status == "error" and "torch.enable_grad()" in result.message


# ----- the labels of correct answers, and conventions that are not mistakes (issue 25, item 5)

def test_dsm_label_names_no_order_when_the_draws_come_from_different_generators():
    z_first_global = E.check_dsm_loss(_dsm("z first", "randn_like"), verbose=False)
    assert z_first_global.passed and "levels first" not in z_first_global.message
    assert "in either order" in z_first_global.message
    z_first = E.check_dsm_loss(_dsm("z first", "randn"), verbose=False)
    assert z_first.passed and "You wrote: z first, levels from the generator, z from the generator." in z_first.message
    levels_first = E.check_dsm_loss(_dsm("sigma first", "randn"), verbose=False)
    assert levels_first.passed and "You wrote" not in levels_first.message  # the package's own form


def test_interpolate_names_ncsnv2s_linspace_convention_at_the_first_try():
    angle_n = lambda k, n: (math.cos(k * math.pi / (2 * n)), math.sin(k * math.pi / (2 * n)))  # noqa: E731
    result = E.check_interpolate(lambda *a: _interp(*a, weights=angle_n), verbose=False)
    assert result.status == "wrong" and "NCSNv2's code convention" in result.message
    assert "likely mistake" not in result.message and "linspace(0, pi / 2, N + 1)" in result.message


# ----- solutions on demand, and the function the notebooks run (issue 25, item 1)

@pytest.mark.parametrize("name", solutions.__all__)
def test_every_reference_solution_passes_its_checker_and_prints_as_the_learners_function(name, capsys):
    check = getattr(E, f"check_{name}")
    assert check(E.solution(name), verbose=False).passed
    E.show_solution(name)
    printed = capsys.readouterr().out
    assert printed.startswith(f"def my_{name}(") and printed == E.solution_source(name)
    namespace: dict = {}
    exec("import math, torch\nfrom pegasus_course import sampling, sigmas\n" + printed, namespace)  # pasteable
    assert check(namespace[f"my_{name}"], verbose=False).passed


def test_solution_of_an_unknown_exercise_lists_the_exercises():
    with pytest.raises(ValueError, match="langevin_step"):
        E.solution("langevin")


def test_use_runs_the_learners_function_when_it_passes_and_says_so(capsys):
    reference = E.solution("langevin_step")

    def my_langevin_step(x, score, alpha, z):
        return x + alpha * score + math.sqrt(2 * alpha) * z

    assert E.use(my_langevin_step, E.check_langevin_step, reference) is my_langevin_step
    assert capsys.readouterr().out == "[langevin_step] using your my_langevin_step: it passes its check.\n"

    def my_stub(x, score, alpha, z):
        raise NotImplementedError

    assert E.use(my_stub, E.check_langevin_step, reference) is reference
    assert "using the reference solution: your my_stub is still the stub" in capsys.readouterr().out
    assert E.use(None, E.check_langevin_step, reference) is reference
    assert "using the reference solution" in capsys.readouterr().out


def test_use_does_not_count_as_a_try():
    wrong = lambda x, s, a, z: x + a * s + math.sqrt(a) * z  # noqa: E731
    for _ in range(3):
        E.use(wrong, E.check_langevin_step, E.solution("langevin_step"))
    first = E.check_langevin_step(wrong, verbose=False)
    assert first.status == "wrong" and "likely mistake" not in first.message  # still the first try's general hint


# ----- the learner's functions plug into the package (notebooks 01 and 07)

def test_toy_training_takes_the_learners_dsm_loss():
    from pegasus_course import toy

    gm = toy.two_gaussians()
    data = gm.sample(500, generator=torch.Generator().manual_seed(0))
    levels = sigmas.geometric_sigmas(5.0, 0.5, 4)
    torch.manual_seed(0)
    _, package, _ = toy.train_toy_score(data, levels, "dsm", 5, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    _, mine, _ = toy.train_toy_score(data, levels, E.solution("dsm_loss"), 5, 32,
                                     generator=torch.Generator().manual_seed(1))
    assert mine == pytest.approx(package, rel=1e-5)
    with pytest.raises(ValueError, match="a function"):
        toy.train_toy_score(data, levels, "mse", 1)


def test_component_logits_are_the_bayes_classifier_and_guidance_gives_the_component_score():
    from pegasus_course import toy

    gm = toy.two_gaussians(weight=0.2, distance=5.0)
    x = torch.randn(6, 2) * 4
    sigma = torch.full((6,), 0.8)
    logits = gm.component_logits(x, sigma)
    # by hand: log w_k - |x - mu_k|^2 / (2 v) - log(2 pi v), v = 1 + sigma^2, D = 2
    v = 1 + 0.8**2
    by_hand = torch.stack([math.log(w) - (x - mu).pow(2).sum(1) / (2 * v) - math.log(2 * math.pi * v)
                           for w, mu in ((0.2, torch.tensor([-5.0, -5.0])), (0.8, torch.tensor([5.0, 5.0])))], 1)
    assert torch.allclose(logits, by_hand, atol=1e-5)
    for y in (0, 1):
        guided = E.solution("guided_score")(gm.score, gm.component_logits, x, sigma, torch.full((6,), y), 1.0)
        assert torch.allclose(guided, -(x - gm.means[y]) / v, atol=1e-4)  # Bayes' rule: the score of component y


def test_guidance_takes_the_learners_guided_score():
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier
    from pegasus_course.generate import Guidance

    torch.manual_seed(0)
    clf = NoisyClassifier(ClassifierConfig(image_size=8, base_channels=8, channel_mults=(1, 1), emb_dim=16,
                                           fourier_dim=8)).eval()
    score = lambda x, s: -x / (1 + s.view(-1, 1, 1, 1) ** 2)  # noqa: E731
    x, sigma, targets = torch.randn(3, 3, 8, 8), torch.tensor([0.5, 1.0, 2.0]), [0, 1, 1]
    package = Guidance(clf, 2.0).score_fn(score, targets)
    mine = Guidance(clf, 2.0, guided_score=E.solution("guided_score")).score_fn(score, targets)
    with torch.no_grad():  # as a sampler calls it
        assert torch.allclose(mine(x, sigma), package(x, sigma), atol=1e-5)
    with pytest.raises(ValueError, match="one class index per image"):
        Guidance(clf, 2.0, guided_score=E.solution("guided_score")).score_fn(score, torch.rand(3, 2))


@pytest.mark.parametrize("module,check,cases", [("nb05", E.check_annealed_langevin, 4), ("nb06", E.check_interpolate, 3),
                                                ("nb07", E.check_guided_score, 4)])
def test_the_sampling_checkers_add_a_case_on_the_notebooks_device(module, check, cases, monkeypatch):
    """On an accelerator the next cells pass tensors on it, so the checker adds a case there (run here on the
    CPU in the device case's place: the code path, not the device, is what a CPU-only test can check)."""
    import importlib

    monkeypatch.setattr(importlib.import_module(f"pegasus_course.exercises.{module}"), "notebook_device",
                        lambda: torch.device("cpu"))
    result = check(E.solution(check.__name__.removeprefix("check_")), verbose=False)
    assert result.passed and f"all {cases} cases" in result.message
