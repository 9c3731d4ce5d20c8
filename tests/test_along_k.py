import math

import pytest
import torch

from pegasus_course import along_k as rows, sampling
from pegasus_course.generate import Schedule
from pegasus_course.plotting import save_grid

# two orthogonal, zero-mean draws of mean square 1: every mix w1 z1 + w2 z2 has std sqrt(w1^2 + w2^2) exactly
Z1 = torch.tensor([1.0, -1.0, 1.0, -1.0])
Z2 = torch.tensor([1.0, 1.0, -1.0, -1.0])


@pytest.mark.parametrize("mix, k, n, expected", [
    ("eq4", 0, 15, 1.0),
    ("eq4", 9, 15, 1.0),
    ("eq4", 1, 1, 1.0),
    ("linear", 0, 15, 1.0),
    ("linear", 1, 1, math.sqrt(0.5)),  # t = 1/2: sqrt(1/4 + 1/4)
    ("linear", 8, 15, math.sqrt(0.5)),  # t = 8/16
    ("linear", 4, 15, math.sqrt(0.75**2 + 0.25**2)),  # t = 1/4
])
def test_mixed_std_by_hand(mix, k, n, expected):
    got = rows.mixed_std(Z1, Z2, n, mix=mix, ks=[k])
    assert got.shape == (1,) and float(got[0]) == pytest.approx(expected, abs=1e-12)


def test_mixed_std_default_is_the_whole_row():
    got = rows.mixed_std(Z1, Z2, 3, mix="linear")
    assert got.shape == (5,)
    assert float(got[0]) == pytest.approx(1.0) and float(got[-1]) == pytest.approx(1.0)
    assert float(got.min()) == pytest.approx(math.sqrt(0.5))


@pytest.mark.parametrize("bad", [dict(mix="cubic"), dict(ks=[17]), dict(z2=torch.zeros(3))])
def test_mixed_std_refuses_bad_input(bad):
    z2 = bad.pop("z2", Z2)
    with pytest.raises(ValueError):
        rows.mixed_std(Z1, z2, 15, **bad)


def test_tape_draws_stacks_in_index_order():
    tape = {1: torch.ones(2), 0: torch.zeros(2), 2: torch.full((2,), 2.0)}
    assert torch.equal(rows.tape_draws(tape)[:, 0], torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError):
        rows.tape_draws({})


def test_truncated_schedule_keeps_the_levels_and_the_step_sizes():
    full = Schedule(50.0, 0.01, 232, 5)
    short = rows.truncated_schedule(full, 5.0)
    sig, ss = full.sigmas(), short.sigmas()
    i = ss.numel() - 1
    assert float(sig[i]) <= 5.0 < float(sig[i - 1])  # the first level at or below 5
    assert torch.allclose(ss, sig[: i + 1], rtol=1e-5, atol=0)  # float32 levels
    # alpha_i = eps sigma_i^2 / sigma_L^2 is the same in both runs
    alpha_full = full.step_lr() * (float(sig[0]) / float(sig[-1])) ** 2
    alpha_short = short.step_lr() * (float(ss[0]) / float(ss[-1])) ** 2
    assert alpha_short == pytest.approx(alpha_full, rel=1e-6)


@pytest.mark.parametrize("sigma", [50.0, 60.0, 0.005])
def test_truncated_schedule_refuses_levels_outside(sigma):
    with pytest.raises(ValueError, match="range"):
        rows.truncated_schedule(Schedule(50.0, 0.01, 232, 5), sigma)


def test_truncated_run_follows_the_full_run():
    """The full run's state at the cut level equals the truncated run's last state before its denoising step."""
    score = lambda x, s: -x / (1 + s.view(-1, 1, 1, 1) ** 2)  # noqa: E731  the score of N(0, 1) blurred by sigma
    full = Schedule(10.0, 0.1, 12, 2)
    short = rows.truncated_schedule(full, 1.0)
    cut = short.num_scales - 1
    noise = sampling.SeededNoise([3, 4])
    states = sampling.iter_annealed_langevin(score, (2, 1, 2, 2), full.sigmas(), 2, full.step_lr(), denoise=False,
                                             noise=noise, progress=False)
    at_cut = [s.x for s in states if s.level == cut and s.step == 1][0]
    x = sampling.annealed_langevin(score, (2, 1, 2, 2), short.sigmas(), 2, short.step_lr(), denoise=False,
                                   noise=noise, progress=False)
    assert torch.allclose(x, at_cut, atol=1e-5)


def test_read_grid_png_gives_back_the_saved_images(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(2 * 3, 3, 8, 8, generator=g) * 255).round() / 255  # 8-bit values survive a PNG
    path = save_grid(images, tmp_path / "grid.png", nrow=3, upscale=2)
    back = rows.read_grid_png(path, 2, 3, size=8)
    assert back.shape == (2, 3, 3, 8, 8)
    assert torch.allclose(back.flatten(0, 1), images, atol=1e-6)


def test_read_grid_png_refuses_a_wrong_layout(tmp_path):
    path = save_grid(torch.rand(6, 3, 8, 8), tmp_path / "grid.png", nrow=3)
    with pytest.raises(ValueError, match="grid"):
        rows.read_grid_png(path, 2, 4, size=8)


def test_end_share_by_hand():
    # ends 0 and 1 everywhere; a middle image at 0.25 everywhere is 0.25 from the first end, 0.75 from the last
    row = torch.stack([torch.zeros(3, 2, 2), torch.full((3, 2, 2), 0.25), torch.ones(3, 2, 2)])
    assert torch.allclose(rows.end_share(row), torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64))
    # an image equal to the last end, whatever lies between
    row = torch.stack([torch.zeros(1, 1, 2), torch.tensor([[[1.0, 3.0]]]), torch.tensor([[[1.0, 3.0]]])])
    assert float(rows.end_share(row)[1]) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 4), torch.zeros(1, 3, 2, 2), torch.zeros(3, 3, 2, 2)])
def test_end_share_refuses_bad_rows(bad):
    with pytest.raises(ValueError, match="end_share"):
        rows.end_share(bad)


def test_class_probabilities_keeps_the_rows_shape_and_picks_the_named_classes():
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier, predict_proba

    torch.manual_seed(0)
    net = NoisyClassifier(ClassifierConfig(image_size=16, class_names=("cat", "horse", "bird"), base_channels=8,
                                           emb_dim=16)).eval()
    images = torch.rand(2, 3, 3, 16, 16)  # 2 rows of 3 images
    got = rows.class_probabilities(net, images, names=("bird", "horse"))
    assert got.shape == (2, 3, 2)
    every = predict_proba(net, images.flatten(0, 1))  # (6, 3): cat, horse, bird
    assert torch.allclose(got.flatten(0, 1), every[:, [2, 1]], atol=1e-6)
    with pytest.raises(ValueError, match="class_probabilities"):
        rows.class_probabilities(net, torch.rand(3, 16, 16))


def test_early_row_is_the_row_sampled_down_to_the_cut_level():
    """early_row = pegasus_batch run with the full schedule's first levels, down to the first at or below sigma,
    built here by hand from the levels; its images are Tweedie's estimate there, in [0, 1]."""
    from pegasus_course.checks import float32_tolerance
    from pegasus_course.generate import pegasus_batch
    from pegasus_course.nn import ScoreUNet, ScoreUNetConfig

    torch.manual_seed(0)
    model = ScoreUNet(ScoreUNetConfig.for_image_size(16, 8, num_res_blocks=1, attn_heads=2, attn_dim_head=8)).eval()
    full = Schedule(5.0, 0.05, 8, 1)  # levels 5, 2.59, 1.34, 0.69, ... (ratio 0.518)
    levels = full.sigmas()
    i = int(torch.nonzero(levels <= 1.0)[0])  # the first level at or below 1: 0.69, index 3
    assert i == 3
    by_hand = Schedule(5.0, float(levels[i]), i + 1, 1)
    got = rows.early_row(model, (3, 4), 2, full, 1.0, progress=False)
    want = pegasus_batch(model, [(3, 4)], 2, [0, 1, 2, 3], by_hand, denoise=True, progress=False)[0]
    assert got.shape == (4, 3, 16, 16) and 0.0 <= float(got.min()) and float(got.max()) <= 1.0
    assert torch.allclose(got, want, atol=float32_tolerance(5.0, evaluations=(i + 1) + 1), rtol=0)
    some = rows.early_row(model, (3, 4), 2, full, 1.0, ks=[0, 3], progress=False)  # the ends only
    assert torch.allclose(some, want[[0, 3]], atol=float32_tolerance(5.0, evaluations=(i + 1) + 1), rtol=0)
