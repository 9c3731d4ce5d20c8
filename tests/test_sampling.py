import math

import pytest
import torch

from pegasus_course import sampling, sigmas as S
from pegasus_course.toy import GaussianMixture, two_gaussians


def test_single_level_langevin_gets_mode_weights_wrong_and_annealed_right():
    gm = two_gaussians(0.2, 5.0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 2, generator=g) * 16 - 8
    plain = sampling.langevin(lambda x, s: gm.score(x, s), x0, 0.01, 1000, sigma=0.01, generator=g)
    w_plain = gm.mode_weights(plain)
    sig = S.geometric_sigmas(20.0, 0.5, 20)  # sigma_1 above the distance between the modes
    annealed = sampling.annealed_langevin(lambda x, s: gm.score(x, s), (4000, 2), sig, 100, 5e-3,
                                          generator=torch.Generator().manual_seed(1), progress=False)
    w_ann = gm.mode_weights(annealed)
    assert abs(float(w_ann[0]) - 0.2) < 0.04  # stated tolerance: 4 points of probability
    assert abs(float(w_plain[0]) - 0.2) > 0.1  # a single small sigma keeps the uniform start's split


def test_langevin_recovers_gaussian_mean_and_variance():
    gm = GaussianMixture(torch.tensor([1.0]), torch.tensor([[2.0, -1.0]]), torch.tensor([0.5]))
    sig = S.geometric_sigmas(5.0, 0.01, 30)
    x = sampling.annealed_langevin(lambda x, s: gm.score(x, s), (8000, 2), sig, 20, 2e-5,
                                   generator=torch.Generator().manual_seed(0), denoise=False, progress=False)
    assert torch.allclose(x.mean(0), torch.tensor([2.0, -1.0]), atol=0.03)
    assert torch.allclose(x.std(0), torch.tensor([0.5, 0.5]), atol=0.03)


def test_update_rule_by_hand():
    # score 0: x_T = sigma_1 z_0 + sum_i sqrt(2 alpha_i) z_i, denoising adds nothing.
    sig = torch.tensor([4.0, 2.0])
    rec = sampling.RecordingNoise(sampling.GeneratorNoise(torch.Generator().manual_seed(0)))
    x = sampling.annealed_langevin(lambda x, s: torch.zeros_like(x), (3, 2), sig, 2, 0.5, noise=rec, progress=False)
    alphas = [0.5 * 16 / 4, 0.5 * 4 / 4]
    expect = 4.0 * rec.tape[0]
    for i in range(2):
        for j in range(2):
            expect = expect + math.sqrt(2 * alphas[i]) * rec.tape[1 + 2 * i + j]
    assert torch.allclose(x, expect)
    assert sorted(rec.tape) == [0, 1, 2, 3, 4]


def test_denoising_step_uses_sigma_L_squared():
    sig = torch.tensor([1.0, 0.5])
    seen = []
    def score(x, s):
        seen.append(float(s[0]))
        return torch.ones_like(x)
    states = list(sampling.iter_annealed_langevin(score, (2, 1), sig, 1, 0.0, x_init=torch.zeros(2, 1),
                                                  progress=False))
    assert seen == [1.0, 0.5, 0.5]
    assert torch.allclose(states[-1].x - states[-2].x, torch.full((2, 1), 0.25))
    assert states[0].level == -1 and states[-1].level == 2
    assert sampling.num_score_evaluations(232, 5) == 1161


def test_seeded_runs_repeat_exactly_and_leave_global_rng_alone():
    gm = two_gaussians()
    sig = S.geometric_sigmas(5.0, 0.1, 5)
    before = torch.get_rng_state()
    run = lambda: sampling.annealed_langevin(lambda x, s: gm.score(x, s), (16, 2), sig, 3, 1e-3,  # noqa: E731
                                             generator=torch.Generator().manual_seed(7), progress=False)
    a, b = run(), run()
    assert torch.equal(a, b)
    assert torch.equal(before, torch.get_rng_state())


def test_seeded_noise_is_per_sample_and_gaussian():
    src = sampling.SeededNoise([5, 6, 7])
    batch = src(3, (3, 4, 8, 8), torch.device("cpu"), torch.float32)
    alone = sampling.SeededNoise([6])(3, (1, 4, 8, 8), torch.device("cpu"), torch.float32)
    assert torch.equal(batch[1:2], alone)
    assert not torch.equal(batch[0], batch[1])
    assert not torch.equal(src(4, (3, 4, 8, 8), torch.device("cpu"), torch.float32), batch)
    big = sampling.SeededNoise(range(64))(0, (64, 3072), torch.device("cpu"), torch.float32)
    assert abs(big.mean().item()) < 0.01 and abs(big.std().item() - 1) < 0.01
    assert abs(torch.corrcoef(big[:2])[0, 1].item()) < 0.06
    with pytest.raises(ValueError, match="seeds"):
        src(0, (2, 4), torch.device("cpu"), torch.float32)


def test_generator_and_noise_are_exclusive():
    with pytest.raises(ValueError, match="either"):
        sampling.annealed_langevin(lambda x, s: x, (1, 1), torch.tensor([1.0, 0.5]), 1, 0.1,
                                   generator=torch.Generator(), noise=sampling.SeededNoise([1]), progress=False)


def test_a_recorded_tape_replays_the_run_exactly():
    from pegasus_course.sampling import RecordingNoise, SeededNoise, TapeNoise, annealed_langevin, record_tape

    score = lambda x, s: -x / (1 + s.view(-1, 1) ** 2)  # noqa: E731  N(0, I) perturbed
    levels = torch.tensor([3.0, 1.0, 0.3])
    rec = RecordingNoise(SeededNoise([5, 6]))
    run = annealed_langevin(score, (2, 4), levels, 2, 0.01, noise=rec, progress=False)
    assert sorted(rec.tape) == list(range(7))  # z_0 and 3 levels x 2 steps
    tape = record_tape(SeededNoise([5, 6]), (2, 4), 7)  # the same draws, without running
    assert all(torch.equal(tape[i], rec.tape[i]) for i in range(7))
    again = annealed_langevin(score, (2, 4), levels, 2, 0.01, noise=TapeNoise(tape), progress=False)
    assert torch.equal(run, again)
    with pytest.raises(KeyError, match="no draw 7"):
        annealed_langevin(score, (2, 4), levels, 3, 0.01, noise=TapeNoise(tape), progress=False)
    with pytest.raises(ValueError, match="shape"):
        annealed_langevin(score, (3, 4), levels, 2, 0.01, noise=TapeNoise(tape), progress=False)


def test_nearest_levels_and_tweedie():
    from pegasus_course.sampling import nearest_levels, tweedie
    from pegasus_course.sigmas import geometric_sigmas

    levels = geometric_sigmas(50.0, 0.01, 232)
    picked = nearest_levels(levels, [5, 1, 0.01, 0.0100001])
    assert picked == sorted(picked) and len(picked) == 3 and picked[-1] == 231
    assert abs(float(levels[picked[0]]) - 5) < 0.2
    # a point mass at m perturbed by sigma: the score is -(x - m) / sigma^2 and Tweedie gives m back exactly
    m = torch.tensor([[0.3, -0.7]])
    x = torch.tensor([[2.0, 1.0]])
    est = tweedie(lambda y, s: -(y - m) / s.view(-1, 1) ** 2, x, 0.5)
    assert torch.allclose(est, m)


def test_graphed_sampling_is_the_eager_path_off_cuda_and_gives_the_same_images(tiny_config):
    from pegasus_course.generate import Schedule, generate, pegasus_rows
    from pegasus_course.nn import ScoreUNet
    from pegasus_course.sampling import cuda_graph_score_fn

    torch.manual_seed(0)
    model = ScoreUNet(tiny_config).eval().requires_grad_(False)
    fn = lambda x, s: model(x, s)  # noqa: E731
    assert cuda_graph_score_fn(fn, torch.zeros(2, 3, 32, 32), torch.ones(2)) is fn  # the CPU has no graphs
    sched = Schedule(50.0, 0.01, 3, 1)
    assert torch.equal(generate(model, [4, 5, 6], sched, progress=False, graphs=True),
                       generate(model, [4, 5, 6], sched, progress=False, graphs=False))
    assert torch.equal(pegasus_rows(model, [(1, 2)], 3, sched, progress=False, graphs=True),
                       pegasus_rows(model, [(1, 2)], 3, sched, progress=False, graphs=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_graphed_sampling_matches_eager_on_cuda(tiny_config):  # pragma: no cover - GPU machines only
    from pegasus_course.generate import Schedule, generate
    from pegasus_course.nn import ScoreUNet

    torch.manual_seed(0)
    model = ScoreUNet(tiny_config).cuda().eval().requires_grad_(False)
    sched = Schedule(50.0, 0.01, 6, 2)
    eager = generate(model, range(5), sched, progress=False, graphs=False)
    graphed = generate(model, range(5), sched, progress=False, graphs=True)
    assert (eager - graphed).abs().max() < 1e-3
