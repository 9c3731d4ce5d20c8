"""`pegasus-course schedule` (techniques 1, 2, 4 from images), `train --schedule data` and `pegasus-course doctor`."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from pegasus_course import cli, sigmas, training
from pegasus_course.checkpoints import load_checkpoint
from pegasus_course.doctor import StationaryGaussianScore, examine
from pegasus_course.generate import Schedule
from pegasus_course.nn import ScoreUNet
from pegasus_course.schedule_from_data import data_schedule, largest_distance
from tests.conftest import make_image_folder


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def save_png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.numpy()).save(path)


def black_white_folder(root, size=32, n_mid=6):
    """horse: one black image and mid-grey noise; bird: one white image and mid-grey noise. The farthest pair is
    black against white, sqrt(3 * size^2) apart; any two others are closer."""
    g = torch.Generator().manual_seed(1)
    for cls, value in (("horse", 0), ("bird", 255)):
        save_png(root / "train" / cls / "0000.png", torch.full((size, size, 3), value, dtype=torch.uint8))
        for i in range(1, n_mid):
            save_png(root / "train" / cls / f"{i:04d}.png",
                     torch.randint(64, 192, (size, size, 3), generator=g, dtype=torch.uint8))
    return root


def smooth_images(n, size=8, seed=0):
    """Images in [0, 1] with structure a linear denoiser can use: 2x2 colour blobs, upsampled, plus fine noise."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, 2, 2, generator=g), size=(size, size), mode="bilinear", align_corners=False)
    return (0.15 + 0.7 * base + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


# ---------------------------------------------------------------- technique 1


def test_largest_distance_exact_on_a_known_set():
    x = torch.randint(64, 192, (40, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    x[7], x[23] = 0, 255
    d = largest_distance(x)
    assert d.exact and d.pair == (7, 23) and d.value == pytest.approx(math.sqrt(3 * 8 * 8), rel=1e-12)
    assert d.compared < 40  # the triangle inequality left only the images that could be farther apart


@pytest.mark.parametrize("seed", [0, 1])
def test_largest_distance_exact_and_bounded_against_every_pair(seed):
    g = torch.Generator().manual_seed(seed)
    # points on a sphere around the grey centre: every one as far from it, so the screen keeps them all
    z = torch.randn(60, 3 * 4 * 4, generator=g, dtype=torch.float64)
    x = (0.5 + 0.3 * z / z.norm(dim=1, keepdim=True)).float().view(60, 3, 4, 4)
    brute = float(torch.cdist(x.flatten(1).double(), x.flatten(1).double()).max())
    exact = largest_distance(x)
    assert exact.exact and exact.value == pytest.approx(brute, rel=1e-12)
    bound = largest_distance(x, exact=False)
    i, j = bound.pair
    assert not bound.exact and bound.value <= brute * (1 + 1e-9) and bound.upper >= brute * (1 - 1e-9)
    assert bound.value == pytest.approx(float((x[i].double() - x[j].double()).norm()), rel=1e-6)  # a real pair
    assert "bounded" in bound.describe() and "exact" in exact.describe()


def test_data_schedule_refuses_too_few_or_identical_images():
    with pytest.raises(ValueError, match="at least two images"):
        data_schedule(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="identical"):
        data_schedule(torch.full((5, 3, 8, 8), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data_schedule(torch.rand(5, 3, 8, 8) * 255)


# ---------------------------------------------------------------- `pegasus-course schedule`


def test_schedule_on_a_folder_whose_farthest_pair_is_known(tmp_path, capsys):
    root = black_white_folder(tmp_path / "data")
    code, out, err = run(["schedule", "--dataset", "folder", "--data-root", str(root), "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    D = 3 * 32 * 32
    assert res["dim"] == D and res["distance"]["exact"] and res["distance"]["num_images"] == 12
    assert res["sigma_1"] == pytest.approx(math.sqrt(D), rel=1e-12)  # black against white: 55.43
    L = res["num_scales"]  # technique 2: the smallest L whose ratio gives an overlap of at least 0.5
    ratio = lambda n: (math.sqrt(D) / 0.01) ** (1 / (n - 1))  # noqa: E731
    assert sigmas.technique2_overlap(ratio(L), D) >= 0.5 > sigmas.technique2_overlap(ratio(L - 1), D)
    assert res["overlap"] == pytest.approx(sigmas.technique2_overlap(ratio(L), D))
    # technique 4: eps brings the variance after T = 5 steps closest to 1 (it need not reach 1)
    miss = lambda e: abs(sigmas.technique4_objective(e, ratio(L), 0.01, 5) - 1)  # noqa: E731
    assert miss(res["eps"]) < min(miss(res["eps"] * 1.02), miss(res["eps"] / 1.02)) < 0.1
    assert res["evaluations"] == 5 * L + 1 and res["paper_cifar10"]["num_scales"] == 232
    code, out, _ = run(["schedule", "--dataset", "folder", "--data-root", str(root), "--steps-each", "3"], capsys)
    assert code == 0 and "55.43" in out and "paper, CIFAR-10" in out and f"{3 * L + 1:,}" in out
    assert "exact: the largest of 66 distances" in out


def test_schedule_on_the_course_images_agrees_with_notebook_02(cifar_root, capsys):
    code, out, err = run(["schedule", "--dataset", "folder", "--data-root", str(cifar_root), "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["distance"]["num_images"] == 10_000 and res["distance"]["exact"]
    assert f"{res['sigma_1']:.2f}" == "50.69" and res["num_scales"] == 220
    assert f"{res['eps']:.3g}" == "6.47e-06" and f"{res['paper_cifar10']['eps']:.3g}" == "6.18e-06"


def _one_line_error(code, err):
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_bad_folders_get_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "train" / "horse").mkdir(parents=True)
    (empty / "train" / "bird").mkdir(parents=True)
    code, _, err = run(["schedule", "--dataset", "folder", "--data-root", str(empty)], capsys)
    _one_line_error(code, err)
    assert "no .jpg or .png images" in err
    one = make_image_folder(tmp_path / "one", classes=("horse",), per_class=1)
    code, _, err = run(["schedule", "--dataset", "folder", "--data-root", str(one), "--classes", "horse"], capsys)
    _one_line_error(code, err)
    assert "at least two images" in err and "found 1" in err
    mixed = make_image_folder(tmp_path / "mixed", classes=("horse",), per_class=2)
    make_image_folder(tmp_path / "mixed", classes=("bird",), per_class=2, size=48)
    code, _, err = run(["schedule", "--dataset", "folder", "--data-root", str(mixed)], capsys)
    _one_line_error(code, err)
    assert "32x32" in err and "48x48" in err and "--image-size" in err
    code, out, _ = run(["schedule", "--dataset", "folder", "--data-root", str(mixed), "--image-size", "32"], capsys)
    assert code == 0 and "resized" in out  # said once, before the numbers


# ---------------------------------------------------------------- `train --schedule data`


def test_train_with_the_data_schedule(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", classes=("horse", "bird"), per_class=4)
    base = ["train", "--dataset", "folder", "--data-root", str(root), "--profile", "ci", "--steps", "2",
            "--batch-size", "4", "--sigma-min", "5", "--no-progress"]  # sigma_L = 5: few levels, a quick run
    code, _, err = run([*base, "--schedule", "data", "--num-scales", "10", "--out", str(tmp_path / "bad")], capsys)
    _one_line_error(code, err)
    assert "--schedule data" in err
    code, out, err = run([*base, "--schedule", "data", "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    from pegasus_course.data import load_dataset

    expected = data_schedule(load_dataset("folder", root, classes=("horse", "bird")).images, sigma_min=5.0,
                             n_steps_each=2)  # the ci profile's T
    first = out.splitlines().index(next(line for line in out.splitlines() if line.startswith("schedule from the 8")))
    assert first < min(i for i, line in enumerate(out.splitlines()) if "profile on" in line)  # before training
    assert f"sigma_1 = {expected.sigma_1:.2f}" in out and f"L = {expected.num_scales}" in out
    meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors").meta
    assert meta["schedule"] == {"sigma_max": expected.sigma_1, "sigma_min": 5.0, "num_scales": expected.num_scales}
    assert meta["data_schedule"]["eps"] == pytest.approx(expected.eps) and meta["data_schedule"]["distance"]["exact"]


# ---------------------------------------------------------------- the doctor's verdicts


@pytest.fixture(scope="module")
def smooth():
    """Training and held-out images of 3x8x8, their data schedule and the linear denoiser fitted to them."""
    train, held = smooth_images(256, seed=0), smooth_images(32, seed=1)
    ds = data_schedule(train)
    return train, held, ds, StationaryGaussianScore(train)


def fired(report):
    return {v.name for v in report.verdicts if v.fired}


def test_linear_denoiser_is_exact_on_a_one_image_set():
    x0 = smooth_images(1)
    lin = StationaryGaussianScore(x0.repeat(4, 1, 1, 1))  # no spread: the score points at x0 from everywhere
    x = x0 + 0.3 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.3])
    assert torch.allclose(x + 0.09 * lin(x, sigma), x0, atol=1e-5)  # Tweedie's estimate is x0


def test_doctor_is_silent_on_a_healthy_score(smooth):
    train, held, ds, lin = smooth
    report = examine(lin, ds.schedule(), held, train, data=ds)
    assert report.healthy and fired(report) == set()
    assert all(v.fired is False for v in report.verdicts) and len(report.verdicts) == 6
    assert report.share == pytest.approx(report.linear_share, abs=1e-5)  # the same function on the same draws
    assert report.share[0] > 0.99 and report.cosine[0] > 0.99 and report.norm_ratio[0] == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize("defect, expected", [
    ("sigma_1 / 2", {"sigma_1 too small for the data"}),
    ("L / 3", {"too few levels"}),
    ("eps x 3", {"step size off by more than 2x"}),
    ("eps / 3", {"step size off by more than 2x"}),
    ("eps x 1.5", set()),
    ("small levels at 60%", {"small-sigma levels undertrained"}),
    ("trained on [-1, 1]", {"data in the wrong range"}),
])
def test_each_planted_defect_fires_its_verdict(smooth, defect, expected):
    train, held, ds, lin = smooth
    schedule, score, step_lr = ds.schedule(), lin, None
    if defect == "sigma_1 / 2":
        s1 = ds.sigma_1 / 2
        schedule = Schedule(s1, 0.01, sigmas.num_noise_scales(s1, 0.01, ds.dim), 5)
    elif defect == "L / 3":
        schedule = Schedule(ds.sigma_1, 0.01, ds.num_scales // 3, 5)
    elif defect.startswith("eps"):
        step_lr = ds.eps * {"eps x 3": 3, "eps / 3": 1 / 3, "eps x 1.5": 1.5}[defect]
    elif defect == "small levels at 60%":
        cut = 0.01 * (ds.sigma_1 / 0.01) ** (1 / 3)
        score = lambda x, s: torch.where((s <= cut).view(-1, 1, 1, 1), 0.6 * lin(x, s), lin(x, s))  # noqa: E731
    else:
        score = StationaryGaussianScore(2 * train - 1)
    report = examine(score, schedule, held, train, step_lr=step_lr, data=ds)
    assert fired(report) == expected
    assert report.healthy == (not expected) and all(v.fix and v.threshold for v in report.verdicts)


def test_images_out_of_range_are_named(smooth):
    train, held, ds, lin = smooth
    report = examine(lambda x, s: lin(x / 255, s) / 255, ds.schedule(), held * 255, train * 255)
    assert "data in the wrong range" in fired(report)
    assert f"{float(held.max()) * 255:.3g}]" in next(v.measured for v in report.verdicts if v.name == "data in the wrong range")


def test_fresh_and_diverged_networks_are_untrained(tiny_config):
    torch.manual_seed(0)
    net = ScoreUNet(tiny_config).eval()
    held = smooth_images(8, size=32)
    schedule = Schedule(50.0, 0.01, 232, 5)
    report = examine(net, schedule, held, smooth_images(32, size=32, seed=2), n_levels=4)
    assert "untrained or diverged weights" in fired(report)
    judged = {v.name: v.fired for v in report.verdicts}
    assert judged["small-sigma levels undertrained"] is None and judged["data in the wrong range"] is None
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] = float("nan")
    report = examine(net, schedule, held, smooth_images(32, size=32, seed=2), n_levels=2)
    verdict = report.verdicts[0]
    assert verdict.fired and "non-finite" in verdict.measured and "lower --lr" in verdict.fix


def test_a_network_trained_with_sigma_1_of_1_on_the_course_images(cifar_root, tiny_config):
    from pegasus_course.data import load_dataset

    train = load_dataset("folder", cifar_root, classes=("horse", "bird")).images[::40]  # 250 images
    held = load_dataset("folder", cifar_root, split="test", classes=("horse", "bird")).images[:8]
    for sigma_1, expected in ((1.0, {"sigma_1 too small for the data"}), (50.0, {"untrained or diverged weights"})):
        schedule = Schedule(sigma_1, 0.01, 20, 5)
        torch.manual_seed(0)
        state = training.train(ScoreUNet(tiny_config), train, schedule.sigmas(),
                               training.TrainConfig(steps=4, batch_size=8, log_every=2), progress=False)
        report = examine(state.model, schedule, held, train, n_levels=3)
        assert expected <= fired(report), report.lines()
        assert not report.healthy


# ---------------------------------------------------------------- `pegasus-course doctor`


def test_doctor_command_on_a_model_trained_a_few_steps(tmp_path, tiny_config, capsys):
    from PIL import Image

    root = make_image_folder(tmp_path / "data", classes=("horse", "bird"), per_class=6)
    make_image_folder(root, classes=("horse", "bird"), per_class=2, split="test")
    from pegasus_course.data import load_dataset

    ck = tmp_path / "run" / "checkpoint.safetensors"
    training.train(ScoreUNet(tiny_config), load_dataset("folder", root).images, Schedule().sigmas(),
                   training.TrainConfig(steps=2, batch_size=4, log_every=1), checkpoint_path=ck, progress=False,
                   meta={"schedule": Schedule().to_dict(), "data": {"classes": ["horse", "bird"]}})
    code, out, err = run(["doctor", str(ck), "--dataset", "folder", "--data-root", str(root), "--levels", "3",
                          "--device", "cpu", "--out", str(tmp_path / "report")], capsys)
    assert code == 1, err
    assert "[FAIL] untrained or diverged weights" in out and "fix: train it" in out
    assert "4 held-out images" in out and "examined in" in out
    with Image.open(tmp_path / "report" / "doctor.png") as im:
        assert im.size[0] >= 500
    assert "[FAIL] untrained" in (tmp_path / "report" / "doctor.txt").read_text()
    code, out, _ = run(["doctor", str(ck), "--dataset", "folder", "--data-root", str(root), "--levels", "2",
                        "--device", "cpu", "--out", str(tmp_path / "report"), "--json", "--overwrite"], capsys)
    res = json.loads(out)
    assert code == 1 and not res["healthy"] and res["verdicts"][0]["fired"] and len(res["sigmas"]) == 2


def test_doctor_command_passes_the_shipped_model(cifar_root, tmp_path, capsys):
    code, out, err = run(["doctor", "--dataset", "folder", "--data-root", str(cifar_root), "--n-images", "12",
                          "--levels", "5", "--device", "cpu", "--out", str(tmp_path / "report")], capsys)
    assert code == 0, out + err
    assert "healthy: no verdict fired" in out and "[FAIL]" not in out
    assert "largest pairwise distance 50.69 (exact)" in out


def test_help_shows_an_example():
    for name in ("schedule", "doctor"):
        text = cli.build_parser()._subparsers._group_actions[0].choices[name].format_help()
        assert f"example:\n  pegasus-course {name}" in text
