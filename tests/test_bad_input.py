"""Bad input, as a careful tester types it: every command line and library call either works or ends in one
clear message that names the fix, and no run, checkpoint or file is lost or silently changed."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal

import numpy as np
import pytest
import torch

from pegasus_course import cli
from pegasus_course.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import make_image_folder


def run(argv, capsys):
    """cli.main as a shell would see it: (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refuses an option where it is parsed
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ---------------------------------------------------------------- options refused where parsed

BAD_OPTIONS = [
    (["train", "--steps", "0"], "--steps", "positive whole number"),
    (["train", "--steps", "-3"], "--steps", "positive whole number"),
    (["train", "--epochs", "0"], "--epochs", "positive finite number"),
    (["train", "--batch-size", "0"], "--batch-size", "positive whole number"),
    (["train", "--num-scales", "1"], "--num-scales", "at least 2"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every", "positive whole number"),
    (["train", "--sample-every", "-1"], "--sample-every", "positive whole number"),
    (["train", "--grad-clip", "-1"], "--grad-clip", "positive finite number"),
    (["train", "--ema-decay", "1"], "--ema-decay", "[0, 1)"),
    (["train", "--ema-decay", "-0.1"], "--ema-decay", "[0, 1)"),
    (["train", "--lr", "0"], "--lr", "positive finite number"),
    (["train", "--lr", "nan"], "--lr", "positive finite number"),
    (["train", "--max-minutes", "0"], "--max-minutes", "positive finite number"),
    (["train", "--sigma-max", "-5"], "--sigma-max", "positive finite number"),
    (["train", "--seed", "-1"], "--seed", "0 or more"),
    (["train", "--steps", "ten"], "--steps", "not a whole number"),
    (["sample", "--n", "0"], "--n", "positive whole number"),
    (["sample", "--steps-each", "0"], "--steps-each", "positive whole number"),
    (["sample", "--num-scales", "0"], "--num-scales", "at least 2"),
    (["sample", "--guidance-scale", "nan"], "--guidance-scale", "finite number"),
    (["sample", "--guidance-scale", "inf"], "--guidance-scale", "finite number"),
    (["sample", "--device", "tpu"], "--device", "use cpu or cuda"),
    (["pegasus", "--pairs", "0"], "--pairs", "positive whole number"),
    (["pegasus", "--n", "0"], "--n", "positive whole number"),
    (["pegasus", "--candidates", "0"], "--candidates", "positive whole number"),
    (["export", "a", "b", "--max-shard-mib", "0"], "--max-shard-mib", "positive finite number"),
    (["train-classifier", "--steps", "0"], "--steps", "positive whole number"),
    (["train-classifier", "--batch-size", "-2"], "--batch-size", "positive whole number"),
]


@pytest.mark.parametrize("argv,option,fix", BAD_OPTIONS, ids=[" ".join(a) for a, _, _ in BAD_OPTIONS])
def test_bad_option_values_are_refused_where_parsed(argv, option, fix, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2, (code, out, err)
    assert option in err and fix in err, err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "a refused command line wrote files"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "gpu", "cuda:0"])
def test_cuda_asked_for_without_cuda(name, capsys):
    code, _, err = run(["sample", "--device", name, "--n", "1"], capsys)
    assert code == 2 and "CUDA is not available" in err and "--device cpu" in err


# ---------------------------------------------------------------- runs on a tiny data folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input") / "data"
    make_image_folder(root, classes=("horse", "bird"), per_class=8)
    make_image_folder(root, classes=("horse", "bird"), per_class=4, split="test")
    return root


def train_args(folder, out, *extra):
    return [str(a) for a in ("train", "--dataset", "folder", "--data-root", folder, "--profile", "ci", "--batch-size",
                             "4", "--num-scales", "3", "--sample-every", "1000", "--out", out, "--no-progress", *extra)]


@pytest.fixture(scope="module")
def run_dir(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert cli.main(train_args(folder, out, "--steps", "2")) == 0
    return out


def copy_run(run_dir, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def test_train_into_a_folder_with_a_checkpoint_needs_resume_or_overwrite(folder, run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    before = digest(out / "checkpoint.safetensors")
    code, _, err = run(train_args(folder, out, "--steps", "3"), capsys)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert digest(out / "checkpoint.safetensors") == before
    code, out_text, _ = run(train_args(folder, out, "--steps", "3", "--overwrite"), capsys)
    assert code == 0 and load_checkpoint(out / "checkpoint.safetensors").step == 3


def test_resume_in_an_empty_folder_says_what_to_do(folder, tmp_path, capsys):
    code, _, err = run(train_args(folder, tmp_path / "new", "--steps", "2", "--resume"), capsys)
    assert code == 2 and "no checkpoint in --out" in err and "without --resume" in err


def test_resume_with_another_schedule_is_refused_and_other_settings_are_recorded(folder, run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    before = digest(out / "checkpoint.safetensors")
    code, _, err = run(train_args(folder, out, "--steps", "4", "--resume", "--num-scales", "5"), capsys)
    assert code == 2 and "schedule" in err and "--num-scales" in err
    assert digest(out / "checkpoint.safetensors") == before
    args = train_args(folder, out, "--steps", "4", "--resume", "--lr", "2e-4")
    args[args.index("--num-scales"):args.index("--num-scales") + 2] = []  # the checkpoint's schedule is used
    code, text, _ = run(args, capsys)
    assert code == 0 and "lr 0.0001 -> 0.0002" in text
    legs = load_checkpoint(out / "checkpoint.safetensors").meta["legs"]
    assert [leg["start_step"] for leg in legs] == [0, 2] and [leg["lr"] for leg in legs] == [1e-4, 2e-4]


def test_a_step_count_already_reached_is_refused(folder, run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    code, _, err = run(train_args(folder, out, "--steps", "2", "--resume"), capsys)
    assert code == 2 and "already at step 2" in err and "larger" in err


def test_ctrl_c_writes_a_checkpoint_at_the_step_and_says_how_to_resume(folder, tmp_path, capsys, monkeypatch):
    from pegasus_course import training

    calls = {"n": 0}
    real = training.dsm_loss_given

    def interrupting_loss(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
        return real(*a, **k)

    monkeypatch.setattr(training, "dsm_loss_given", interrupting_loss)
    out = tmp_path / "run"
    code, text, err = run(train_args(folder, out, "--steps", "50", "--checkpoint-every", "1000"), capsys)
    assert code == 130 and "interrupted at step 3" in text and f"--out {out} --resume" in text
    assert load_checkpoint(out / "checkpoint.safetensors").step == 3
    monkeypatch.setattr(training, "dsm_loss_given", real)
    args = train_args(folder, out, "--steps", "4", "--resume")
    args[args.index("--num-scales"):args.index("--num-scales") + 2] = []
    code, text, _ = run(args, capsys)
    assert code == 0 and "at step 3" in text


def test_interrupted_run_resumes_exactly(tmp_path, tiny_config):
    """Ctrl-C at step 3 then resume equals an uninterrupted run (same seeds, same data order)."""
    from pegasus_course import training
    from pegasus_course.nn import ScoreUNet

    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    sigmas = torch.tensor([5.0, 1.0, 0.1])
    cfg = training.TrainConfig(steps=5, batch_size=4, log_every=1, bf16=False)
    torch.manual_seed(0)
    full = training.train(ScoreUNet(tiny_config), images, sigmas, cfg, progress=False)

    def interrupt(state):
        if state.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    torch.manual_seed(0)
    path = tmp_path / "c.safetensors"
    with pytest.raises(training.TrainingInterrupted) as info:
        training.train(ScoreUNet(tiny_config), images, sigmas, cfg, on_step=interrupt, checkpoint_path=path,
                       progress=False)
    assert info.value.step == 3 and load_checkpoint(path).step == 3
    model = ScoreUNet(tiny_config)
    state = training.resume_state(path, model, cfg)
    resumed = training.train(model, images, sigmas, cfg, state=state, progress=False)
    assert resumed.losses == full.losses
    for a, b in zip(resumed.ema.parameters(), full.ema.parameters()):
        assert torch.equal(a, b)


def test_a_checkpoint_is_never_replaced_by_weights_with_non_finite_scores(tmp_path, tiny_config):
    from pegasus_course import training
    from pegasus_course.nn import ScoreUNet

    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    sigmas = torch.tensor([5.0, 1.0, 0.1])
    path = tmp_path / "c.safetensors"
    cfg = training.TrainConfig(steps=2, batch_size=4, log_every=1, checkpoint_every=1, bf16=False)
    training.train(ScoreUNet(tiny_config), images, sigmas, cfg, checkpoint_path=path, progress=False)
    before = digest(path)

    def poison(state):  # the weights explode between two checkpoints
        with torch.no_grad():
            next(state.model.parameters()).fill_(float("inf"))

    model = ScoreUNet(tiny_config)
    state = training.resume_state(path, model, cfg)
    more = training.TrainConfig(steps=4, batch_size=4, log_every=1, checkpoint_every=1, bf16=False)
    with pytest.raises(FloatingPointError, match="last checkpoint .* was kept"):
        training.train(model, images, sigmas, more, state=state, on_step=poison, checkpoint_path=path, progress=False)
    assert digest(path) == before


def test_a_diverging_loss_stops_the_run(tiny_config):
    from pegasus_course import training

    training.check_losses([2068.0, 2100.0], [], 2)  # ordinary values pass
    with pytest.raises(FloatingPointError, match="diverged.*--lr"):
        training.check_losses([2068.0, 7e11], [], 2)
    with pytest.raises(FloatingPointError, match="no checkpoint was written"):
        training.check_losses([1.0, float("nan")], [1.0] * 5, 10)


def test_large_learning_rate_on_the_command_line_keeps_the_last_good_checkpoint(folder, run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    before = digest(out / "checkpoint.safetensors")
    args = train_args(folder, out, "--steps", "40", "--resume", "--lr", "1e4", "--checkpoint-every", "1")
    args[args.index("--num-scales"):args.index("--num-scales") + 2] = []
    code, text, err = run(args, capsys)
    if code == 0:  # the tiny network survived this learning rate: then its checkpoint must be finite
        model = load_checkpoint(out / "checkpoint.safetensors")
        assert all(torch.isfinite(v).all() for v in model.tensors.values() if v.is_floating_point())
    else:
        assert code == 3 and "--lr" in err and "Traceback" not in err
        assert digest(out / "checkpoint.safetensors") == before


def test_a_temporary_file_left_by_a_killed_write_is_removed(folder, run_dir, tmp_path, capsys):
    out = copy_run(run_dir, tmp_path)
    stale = out / ".checkpoint.safetensors.99999.tmp"
    stale.write_bytes(b"half a checkpoint")
    args = train_args(folder, out, "--steps", "3", "--resume")
    args[args.index("--num-scales"):args.index("--num-scales") + 2] = []
    assert run(args, capsys)[0] == 0
    assert not stale.exists() and load_checkpoint(out / "checkpoint.safetensors").step == 3


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_output_paths_are_checked_before_any_work(folder, tmp_path, capsys, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "run"
    for argv in (train_args(folder, out, "--steps", "2"), ["sample", "--n", "1", "--out", out],
                 ["pegasus", "--seeds", "1", "2", "--out", out]):
        code, text, err = run(argv, capsys)
        assert code == 2 and "--out" in err and "Traceback" not in err, (argv, err)
        assert "images took" not in text and "step" not in text
    assert blocker.read_text() == "not a folder"


def test_export_refuses_to_write_over_its_input(run_dir, tmp_path, capsys):
    ck = tmp_path / "c.safetensors"
    shutil.copy(run_dir / "checkpoint.safetensors", ck)
    before = digest(ck)
    code, _, err = run(["export", ck, ck], capsys)
    assert code == 2 and "over its input" in err and digest(ck) == before


def test_resume_shards_replace_stale_ones_and_mixed_shards_are_refused(run_dir, tmp_path, capsys):
    ck = run_dir / "checkpoint.safetensors"
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-99.safetensors").write_bytes(b"an older checkpoint's shard")
    code, _, _ = run(["export", ck, tmp_path / "e.safetensors", "--resume-shards", shards, "--max-shard-mib", "0.05"],
                     capsys)
    assert code == 0 and not (shards / "part-99.safetensors").exists()
    assert load_checkpoint(shards).step == 2
    other = tmp_path / "other"
    tensors = {"model.w": torch.zeros(40_000), "ema.w": torch.ones(40_000)}
    save_checkpoint(tensors, {"step": 9}, other, max_shard_bytes=100_000)
    shutil.copy(other / "part-00.safetensors", shards / "part-00.safetensors")
    with pytest.raises(CheckpointError, match="mixes shards of different checkpoints"):
        load_checkpoint(shards)


def test_a_run_folder_as_checkpoint_names_the_file(run_dir, capsys):
    code, _, err = run(["sample", "--checkpoint", run_dir, "--n", "1"], capsys)
    assert code == 2 and str(run_dir / "checkpoint.safetensors") in err


def test_same_seed_twice_is_refused(run_dir, tmp_path, capsys):
    code, _, err = run(["pegasus", "--checkpoint", run_dir / "checkpoint.safetensors", "--seeds", "4", "4",
                        "--out", tmp_path / "p"], capsys)
    assert code == 2 and "different seeds" in err and not (tmp_path / "p").exists()


def test_sigma_max_must_be_above_sigma_min(folder, tmp_path, capsys):
    code, _, err = run(train_args(folder, tmp_path / "r", "--sigma-max", "0.01", "--sigma-min", "1"), capsys)
    assert code == 2 and "--sigma-max" in err and "above --sigma-min" in err


def test_data_problems_name_the_folder_or_file(tmp_path, capsys):
    root = make_image_folder(tmp_path / "d", classes=("horse", "bird"), per_class=4)
    (root / "train" / "cat").mkdir()
    code, _, err = run(["train", "--dataset", "folder", "--data-root", root, "--classes", "horse", "cat",
                        "--profile", "ci", "--out", tmp_path / "r"], capsys)
    assert code == 2 and str(root / "train" / "cat") in err and "--classes" in err
    (root / "train" / "bird" / "0001.png").write_bytes(b"\x89PNG but not really")
    code, _, err = run(["train", "--dataset", "folder", "--data-root", root, "--profile", "ci",
                        "--out", tmp_path / "r2"], capsys)
    assert code == 2 and "0001.png is not a readable image" in err and "remove or replace" in err


def test_a_rare_class_is_reported_before_training(tmp_path, capsys):
    root = make_image_folder(tmp_path / "d", classes=("horse",), per_class=12)
    make_image_folder(root, classes=("bird",), per_class=2)
    code, text, _ = run(["train", "--dataset", "folder", "--data-root", root, "--profile", "ci", "--steps", "1",
                         "--batch-size", "2", "--num-scales", "2", "--sample-every", "100", "--out", tmp_path / "r",
                         "--no-progress"], capsys)
    assert code == 0 and "class 'bird' has 2 images against 12" in text
    assert text.index("class 'bird'") < text.index("steps of batch")


def test_train_classifier_checks_the_test_split_first(tmp_path, capsys):
    root = make_image_folder(tmp_path / "d", classes=("horse", "bird"), per_class=4)
    make_image_folder(root, classes=("horse",), per_class=2, split="test")
    (root / "test" / "bird").mkdir()
    (root / "test" / "bird" / "x.txt").write_text("")  # a class folder with no image at all
    code, text, err = run(["train-classifier", "--dataset", "folder", "--data-root", root, "--profile", "ci",
                           "--steps", "2", "--out", tmp_path / "c.safetensors", "--no-progress"], capsys)
    assert code == 2 and "bird" in err and "steps of batch" not in text
    assert not (tmp_path / "c.safetensors").exists()


def test_download_without_internet_speaks_the_cli(tmp_path, capsys, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    code, _, err = run(["train", "--dataset", "cifar10", "--download", "--data-root", tmp_path, "--profile", "ci",
                        "--out", tmp_path / "r"], capsys)
    assert code == 2 and "--download needs internet" in err and "--dataset folder --data-root" in err


def test_missing_dataset_speaks_the_cli(tmp_path, capsys):
    code, _, err = run(["train", "--dataset", "cifar10", "--data-root", tmp_path, "--profile", "ci",
                        "--out", tmp_path / "r"], capsys)
    assert code == 2 and "--download" in err and "--data-root" in err and "download=True" in err


def test_out_of_memory_is_one_line(run_dir, tmp_path, capsys, monkeypatch):
    from pegasus_course import generate

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(generate, "sample_seeds", oom)
    code, _, err = run(["sample", "--checkpoint", run_dir / "checkpoint.safetensors", "--n", "2",
                        "--out", tmp_path / "s"], capsys)
    assert code == 4 and "out of memory" in err and "--n" in err and "Traceback" not in err


# ---------------------------------------------------------------- the package checks its inputs


def test_schedules_must_be_positive_finite_and_descending():
    from pegasus_course.sampling import annealed_langevin
    from pegasus_course.sigmas import geometric_sigmas

    for bad in [(float("inf"), 0.01, 10), (50.0, 0.0, 10), (0.01, 50.0, 10), (50.0, 0.01, 1)]:
        with pytest.raises(ValueError, match="sigma_max > sigma_min|at least 2"):
            geometric_sigmas(*bad)
    with pytest.raises(TypeError, match="integer"):
        geometric_sigmas(50.0, 0.01, 2.5)
    assert geometric_sigmas(50.0, 0.01, np.int64(3)).shape == (3,)
    score = lambda x, s: -x  # noqa: E731
    for sig, msg in [(torch.tensor([0.1, 1.0]), "largest first"), (torch.tensor([1.0, -0.1]), "positive and finite"),
                     (torch.tensor([1.0, float("nan")]), "positive and finite")]:
        with pytest.raises(ValueError, match=msg):
            annealed_langevin(score, (1, 2), sig, 1, 0.1, progress=False)
    with pytest.raises(ValueError, match="at least 0"):
        annealed_langevin(score, (1, 2), torch.tensor([1.0, 0.1]), -1, 0.1, progress=False)
    with pytest.raises(ValueError, match="step_lr"):
        annealed_langevin(score, (1, 2), torch.tensor([1.0, 0.1]), 1, -1.0, progress=False)


def test_the_unet_names_layout_dtype_and_sigma_mistakes(tiny_config):
    from pegasus_course.nn import ScoreUNet

    net = ScoreUNet(tiny_config)
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="permute"):
        net(x.permute(0, 2, 3, 1), torch.ones(2))
    with pytest.raises(TypeError, match="as_float_images"):
        net((x * 255).to(torch.uint8), torch.ones(2))
    with pytest.raises(TypeError, match="torch.full"):
        net(x, 0.5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive and finite"):
            net(x, torch.tensor([1.0, bad]))
    assert net(x, torch.tensor([1.0, 0.5])).shape == x.shape


def test_dsm_loss_reductions_do_what_they_say():
    from pegasus_course.losses import dsm_loss

    x = torch.randn(5, 3)
    score = lambda xt, s: -xt  # noqa: E731
    per = dsm_loss(score, x, torch.tensor([1.0, 0.5]), torch.Generator().manual_seed(0), reduction="none")
    total = dsm_loss(score, x, torch.tensor([1.0, 0.5]), torch.Generator().manual_seed(0), reduction="sum")
    mean = dsm_loss(score, x, torch.tensor([1.0, 0.5]), torch.Generator().manual_seed(0))
    assert per.shape == (5,) and torch.allclose(total, per.sum()) and torch.allclose(mean, per.mean())
    with pytest.raises(ValueError, match="reduction"):
        dsm_loss(score, x, torch.tensor([1.0]), reduction="max")
    with pytest.raises(ValueError, match="positive and finite"):
        dsm_loss(score, x, torch.tensor([1.0, -1.0]))


def test_seeds_and_eq4_indices_are_checked():
    from pegasus_course.interpolation import InterpolatedNoise, mix_weights
    from pegasus_course.sampling import SeededNoise

    assert SeededNoise(np.array([1, 2], dtype=np.int64)).seeds.tolist() == [1, 2]
    for bad, err in [([1.5], TypeError), ([-1], ValueError), (3, TypeError), (torch.tensor([0.5]), TypeError)]:
        with pytest.raises(err):
            SeededNoise(bad)
    with pytest.raises(ValueError, match="0..n \\+ 1"):
        mix_weights(17, 15)
    with pytest.raises(ValueError, match="at least 1"):
        mix_weights(0, 0)
    with pytest.raises(ValueError, match="different seeds"):
        InterpolatedNoise([3], [3], 5)


def test_images_for_classifiers_and_grids_must_be_in_unit_range():
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier, predict_proba
    from pegasus_course.plotting import to_grid

    clf = NoisyClassifier(ClassifierConfig(image_size=32, class_names=("horse", "bird"), base_channels=8))
    x = torch.rand(2, 3, 32, 32)
    assert predict_proba(clf, x).shape == (2, 2)
    assert torch.allclose(predict_proba(clf, (x * 255).round().to(torch.uint8)),
                          predict_proba(clf, (x * 255).round() / 255), atol=1e-5)
    with pytest.raises(ValueError, match="as_float_images"):
        predict_proba(clf, x * 255)
    with pytest.raises(ValueError, match="32x32"):
        predict_proba(clf, torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="as_float_images"):
        to_grid(x * 255)
    assert to_grid(x * 20 - 10).shape[0] == 3  # noisy images are clamped for display, not refused


def test_pegasus_rows_are_batched_without_changing_them(tiny_config):
    from pegasus_course.generate import Schedule, pegasus_batch
    from pegasus_course.nn import ScoreUNet

    torch.manual_seed(0)
    model = ScoreUNet(tiny_config).eval()
    sched = Schedule(5.0, 0.5, 3, 1)
    whole = pegasus_batch(model, [(1, 2), (3, 4)], 4, range(6), sched, progress=False)
    pieces = pegasus_batch(model, [(1, 2), (3, 4)], 4, range(6), sched, progress=False, batch_size=4)
    assert whole.shape == (2, 6, 3, 32, 32) and torch.allclose(whole, pieces, atol=1e-5)
