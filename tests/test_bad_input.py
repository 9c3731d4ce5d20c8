"""Bad input, as a careful tester types it: every command line and library call either works or ends in one
clear message that names the fix, and no run, checkpoint or file is lost or silently changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pegasus_course import cli, data
from pegasus_course.checkpoints import FORMAT, CheckpointError, atomic_save, load_checkpoint, save_checkpoint
from tests.conftest import REPO, make_image_folder


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
    (["train", "--sigma-max", "-5"], "--sigma-max", "noise level from 1e-18 to 1e+18"),
    (["train", "--sigma-max", "1e39"], "--sigma-max", "float32 would overflow"),
    (["train", "--sigma-min", "1e-46"], "--sigma-min", "float32 would overflow or underflow"),
    (["train-classifier", "--sigma-max", "1e39"], "--sigma-max", "float32 would overflow"),
    (["train", "--num-scales", "100000000"], "--num-scales", "at most 10000"),
    (["sample", "--num-scales", "10001"], "--num-scales", "at most 10000"),
    (["train", "--seed", str(2**63)], "--seed", "beyond 2^63 - 1"),
    (["sample", "--seed", "99999999999999999999"], "--seed", "beyond 2^63 - 1"),
    (["pegasus", "--seeds", "1", str(2**64)], "--seeds", "beyond 2^63 - 1"),
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
    # counts and rates that would run for days, fill the memory or overflow float32 (probe of issue 24's fixes)
    (["sample", "--steps-each", "99999999999"], "--steps-each", "at most 10,000"),
    (["schedule", "--steps-each", "99999999999999999999"], "--steps-each", "at most 10,000"),
    (["doctor", "--steps-each", "100000"], "--steps-each", "at most 10,000"),
    (["sample", "--n", "99999999999"], "--n", "at most 100,000"),
    (["pegasus", "--n", "99999999999"], "--n", "at most 1,000"),
    (["pegasus", "--pairs", "99999999999"], "--pairs", "at most 1,000"),
    (["train", "--lr", "1e300"], "--lr", "at most 1e+06"),
    (["train-classifier", "--lr", "1e300"], "--lr", "at most 1e+06"),
    (["train", "--base-channels", "99999999999"], "--base-channels", "at most 1,024"),
    (["train", "--num-res-blocks", "100000"], "--num-res-blocks", "at most 16"),
    (["export", "a", "b", "--max-shard-mib", "1e-9"], "--max-shard-mib", "at least 0.01"),
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
    assert "removed the earlier run's checkpoint.safetensors, losses.json, 1 file in samples/" in out_text
    assert [p.name for p in (out / "samples").iterdir()] == ["step-0000003.png"]  # nothing of the old run remains


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
    argv = ["export", ck, tmp_path / "e.safetensors", "--resume-shards", shards, "--max-shard-mib", "0.05"]
    code, _, err = run(argv, capsys)  # another checkpoint's shards are not replaced without consent
    assert code == 2 and "already holds the shards" in err and "--overwrite" in err
    assert (shards / "part-99.safetensors").exists() and not (tmp_path / "e.safetensors").exists()
    code, _, _ = run(argv + ["--overwrite"], capsys)
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


# ---------------------------------------------------------------- no run replaced without consent


def test_train_classifier_and_export_replace_a_file_only_with_overwrite(folder, run_dir, tmp_path, capsys):
    from pegasus_course.classifier import load_classifier

    score = tmp_path / "score.safetensors"
    shutil.copy(run_dir / "checkpoint.safetensors", score)
    before = digest(score)
    argv = ["train-classifier", "--dataset", "folder", "--data-root", folder, "--profile", "ci", "--steps", "1",
            "--out", score, "--no-progress"]
    code, text, err = run(argv, capsys)
    assert code == 2 and "already exists (a score network's checkpoint (step 2))" in err and "--overwrite" in err
    assert digest(score) == before and "steps of batch" not in text
    other = tmp_path / "other.safetensors"
    shutil.copy(score, other)
    code, _, err = run(["export", run_dir / "checkpoint.safetensors", other], capsys)
    assert code == 2 and "--overwrite" in err and digest(other) == before
    assert run(["export", run_dir / "checkpoint.safetensors", other, "--overwrite"], capsys)[0] == 0
    assert not load_checkpoint(other).part("optim")  # the export replaced it, on consent
    assert run(argv + ["--overwrite"], capsys)[0] == 0
    assert load_classifier(score)[0].config.class_names == ("horse", "bird")


def test_resume_into_a_folder_of_another_run_needs_overwrite_and_then_nothing_of_it_remains(folder, run_dir, tmp_path,
                                                                                            capsys):
    a = copy_run(run_dir, tmp_path)  # another run: checkpoint, losses.json, samples/step-0000002.png
    (a / "colour.json").write_text("{}")
    b = tmp_path / "b.safetensors"
    shutil.copy(run_dir / "checkpoint.safetensors", b)
    before = digest(a / "checkpoint.safetensors")
    args = train_args(folder, a, "--steps", "3", "--resume", b)
    args[args.index("--num-scales"):args.index("--num-scales") + 2] = []
    code, _, err = run(args, capsys)
    assert code == 2 and f"another run's files, not those of --resume {b}" in err
    assert digest(a / "checkpoint.safetensors") == before and (a / "samples" / "step-0000002.png").is_file()
    code, text, _ = run(args + ["--overwrite"], capsys)
    assert code == 0 and ("--overwrite: removed the earlier run's checkpoint.safetensors, colour.json, losses.json, "
                          "1 file in samples/") in text
    assert [p.name for p in (a / "samples").iterdir()] == ["step-0000003.png"] and not (a / "colour.json").exists()
    assert load_checkpoint(a / "checkpoint.safetensors").step == 3


def test_another_runs_outputs_without_a_checkpoint_are_refused(folder, tmp_path, capsys):
    out = tmp_path / "r"
    (out / "samples").mkdir(parents=True)
    (out / "losses.json").write_text("[1.0]")
    (out / "samples" / "step-0000100.png").write_bytes(b"an old preview")
    code, text, err = run(train_args(folder, out, "--steps", "1"), capsys)
    assert code == 2 and "losses.json, 1 file in samples/" in err and "steps of batch" not in text
    assert (out / "losses.json").read_text() == "[1.0]" and not (out / ".lock").exists()


def test_images_of_another_run_are_not_mixed_in(run_dir, tmp_path, capsys):
    out = tmp_path / "s"
    common = ["--checkpoint", run_dir / "checkpoint.safetensors", "--steps-each", "1", "--device", "cpu", "--out", out]
    assert run(["sample", "--n", "3", *common], capsys)[0] == 0
    before = digest(out / "grid.png")
    for argv in (["sample", "--n", "1", *common], ["pegasus", "--seeds", "1", "2", "--n", "1", *common]):
        code, _, err = run(argv, capsys)
        assert code == 2 and "grid.png, 3 files in images/" in err and "--overwrite" in err, err
    assert digest(out / "grid.png") == before
    code, text, _ = run(["sample", "--n", "1", *common, "--overwrite"], capsys)
    assert code == 0 and "removed the earlier run's grid.png, 3 files in images/" in text
    assert [p.name for p in (out / "images").iterdir()] == ["seed-000.png"]


EMPTY_PATHS = [["train", "--out", ""], ["sample", "--out", " "], ["pegasus", "--out", ""],
               ["train-classifier", "--out", ""], ["export", "a.safetensors", ""],
               ["train", "--data-root", "", "--out", "r"], ["sample", "--checkpoint", "", "--out", "s"]]


@pytest.mark.parametrize("argv", EMPTY_PATHS, ids=[" ".join(a) for a in EMPTY_PATHS])
def test_an_empty_path_is_refused(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and "is empty (" in err and "give a path" in err
    assert not any(tmp_path.iterdir()), "an empty path wrote into the current folder"


def test_a_folder_another_command_writes_is_refused_and_a_stale_lock_is_taken_over(folder, run_dir, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    lock = out / ".lock"
    lock.write_text(f"{os.getppid()} {socket.gethostname()}")  # a process that is alive holds it
    export = ["export", run_dir / "checkpoint.safetensors", out / "e.safetensors"]
    for argv in (train_args(folder, out, "--steps", "1"), export):
        code, _, err = run(argv, capsys)
        assert code == 2 and "in use by another pegasus-course command" in err and f"pid {os.getppid()}" in err
    assert lock.is_file() and sorted(p.name for p in out.iterdir()) == [".lock"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(f"{gone.pid} {socket.gethostname()}")  # left by a command that was killed
    code, text, _ = run(train_args(folder, out, "--steps", "1"), capsys)
    assert code == 0 and f"removed a stale lock {lock} (pid {gone.pid} is no longer running)" in text
    assert not lock.exists() and load_checkpoint(out / "checkpoint.safetensors").step == 1


# ---------------------------------------------------------------- a checkpoint's own record, read like the command line


def test_a_folder_of_shards_beside_a_checkpoint_file_is_ambiguous_and_refused(run_dir, tmp_path, capsys):
    both = tmp_path / "both"
    save_checkpoint({"model.w": torch.zeros(40_000), "ema.w": torch.ones(40_000)}, {"step": 9}, both,
                    max_shard_bytes=100_000)
    shutil.copy(run_dir / "checkpoint.safetensors", both / "checkpoint.safetensors")
    with pytest.raises(CheckpointError, match="holds both resume shards .* and a checkpoint.safetensors"):
        load_checkpoint(both)
    code, _, err = run(["sample", "--checkpoint", both, "--n", "1", "--out", tmp_path / "s"], capsys)
    assert code == 2 and "not clear which one to read" in err and "Traceback" not in err


def test_a_checkpoint_without_a_schedule_names_the_fallback(run_dir, tmp_path, capsys):
    path = _broken_copy(run_dir, tmp_path, schedule=None)
    code, text, err = run(["sample", "--checkpoint", path, "--n", "1", "--steps-each", "1", "--num-scales", "3",
                           "--out", tmp_path / "s"], capsys)
    assert code == 0, err
    assert "records no sigma_max, sigma_min: using the paper's CIFAR-10 values (sigma_max = 50, sigma_min = 0.01)" \
        in text
    from pegasus_course.generate import schedule_from_meta

    said = []
    full = schedule_from_meta({"schedule": {"sigma_max": 5.0, "sigma_min": 0.1, "num_scales": 3}}, say=said.append)
    assert said == [] and full.num_scales == 3  # a complete record says nothing
    schedule_from_meta({}, say=said.append)
    assert len(said) == 1 and "num_scales = 232" in said[0]


def _other_classes_run(tmp_path, capsys):
    """A tiny run on cat and dog images: the record a resume must not silently replace with horses and birds."""
    root = tmp_path / "pets"
    make_image_folder(root, classes=("cat", "dog"), per_class=8)
    make_image_folder(root, classes=("horse", "bird"), per_class=8)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data-root", root, "--classes", "cat", "dog", "--profile", "ci",
            "--batch-size", "4", "--num-scales", "3", "--sample-every", "1000", "--out", out, "--no-progress",
            "--steps", "2"]
    assert run(argv, capsys)[0] == 0
    return root, out


def test_resume_without_data_options_continues_on_the_checkpoints_own_data(tmp_path, capsys, monkeypatch):
    root, out = _other_classes_run(tmp_path, capsys)
    assert load_checkpoint(out / "checkpoint.safetensors").meta["data"]["root"] == str(root.resolve())
    monkeypatch.delenv("PEGASUS_DATA_SOURCE", raising=False)  # the defaults would be CIFAR-10's horses and birds
    monkeypatch.delenv("PEGASUS_DATA_ROOT", raising=False)
    code, text, err = run(["train", "--profile", "ci", "--batch-size", "4", "--sample-every", "1000", "--out", out,
                           "--no-progress", "--steps", "3", "--resume"], capsys)
    assert code == 0, err
    assert "other data" not in text and "does not record" not in text
    assert f"resuming on the data {out / 'checkpoint.safetensors'} records: --dataset folder; --data-root " \
        f"{root.resolve()}; --classes cat dog" in text
    data_record = load_checkpoint(out / "checkpoint.safetensors").meta["data"]
    assert data_record["classes"] == ["cat", "dog"] and data_record["source"] == "folder"
    exported = tmp_path / "e.safetensors"  # a shipped file names no folder of the machine that trained it
    assert run(["export", out / "checkpoint.safetensors", exported], capsys)[0] == 0
    assert "root" not in load_checkpoint(exported).meta["data"]
    monkeypatch.setenv("PEGASUS_DATA_ROOT", str(tmp_path / "nowhere"))
    code, text, err = run(["train", "--profile", "ci", "--batch-size", "4", "--sample-every", "1000", "--out",
                           tmp_path / "again", "--no-progress", "--steps", "4", "--resume", exported], capsys)
    assert "does not record its --data-root (PEGASUS_DATA_ROOT, else the cache)" in text, text + err
    assert code == 2 and str(tmp_path / "nowhere") in err and "Traceback" not in err


def test_a_partial_schedule_record_resumes_with_the_fallback_named(folder, run_dir, tmp_path, capsys):
    ck = load_checkpoint(run_dir / "checkpoint.safetensors")
    path = _broken_copy(run_dir, tmp_path, schedule={k: v for k, v in ck.meta["schedule"].items()
                                                     if k != "num_scales"})
    code, text, err = run(train_args(folder, tmp_path / "r", "--steps", "3", "--resume", path), capsys)
    assert "Traceback" not in err and "records no num_scales: using the paper's CIFAR-10 value" in text, err
    assert code == 2 and "schedule" in err  # the network was trained on 3 levels; the fallback's 232 would differ


def test_resume_on_other_data_names_every_difference(tmp_path, capsys):
    root, out = _other_classes_run(tmp_path, capsys)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    code, text, err = run(["train", "--dataset", "folder", "--data-root", moved, "--classes", "horse", "bird",
                           "--profile", "ci", "--batch-size", "4", "--sample-every", "1000", "--out", out,
                           "--no-progress", "--steps", "3", "--resume"], capsys)
    assert code == 0, err
    assert f"--data-root {root.resolve()} -> {moved}" in text and "--classes cat dog -> horse bird" in text
    code, _, err = run(["train", "--image-size", "48", "--profile", "ci", "--batch-size", "4", "--out", out,
                        "--no-progress", "--steps", "4", "--resume"], capsys)
    assert code == 2 and "--image-size 48: the network of --resume" in err and "makes 32px images" in err, err


def test_resume_from_an_export_says_adam_restarts(folder, run_dir, tmp_path, capsys):
    exported = tmp_path / "ema.safetensors"
    assert run(["export", run_dir / "checkpoint.safetensors", exported], capsys)[0] == 0
    code, text, err = run(train_args(folder, tmp_path / "r", "--steps", "3", "--resume", exported), capsys)
    assert code == 0, err
    assert "holds no optimizer state" in text and "Adam's moments restart from zero" in text
    assert "the live weights start from the EMA weights" in text
    code, text, _ = run(train_args(folder, tmp_path / "r", "--steps", "4", "--resume"), capsys)
    assert code == 0 and "optimizer state" not in text  # its own checkpoint carries Adam's moments on


def test_a_non_finite_adam_state_says_resume_elsewhere_not_lower_lr(folder, run_dir, tmp_path, capsys):
    tensors = dict(load_checkpoint(run_dir / "checkpoint.safetensors").tensors)
    name = next(k for k in tensors if k.startswith("optim.") and k.endswith("exp_avg_sq"))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    path = _broken_copy(run_dir, tmp_path, tensors)
    code, _, err = run(train_args(folder, tmp_path / "r", "--steps", "3", "--resume", path), capsys)
    assert code == 2 and "Adam's state is not finite" in err and "export" in err and "--lr" not in err, err


# ---------------------------------------------------------------- stopping keeps the work


def test_sigterm_during_a_preview_stops_between_levels_with_a_checkpoint_and_the_resume_line(folder, tmp_path):
    out = tmp_path / "run"
    # The preview after step 1 samples 16 images over 10,000 noise levels: minutes, unless stopped between levels.
    argv = train_args(folder, out, "--steps", "4", "--sample-every", "1", "--num-scales", "10000")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pegasus_course.cli", *argv], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = []
        for line in proc.stdout:  # waits for the event itself, however busy the machine is
            seen.append(line)
            if "sampling a preview" in line:  # step 1 is done and its preview has begun
                break
        assert "step 1: sampling a preview of 16 images" in seen[-1], "".join(seen)
        proc.send_signal(signal.SIGTERM)
        text, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted at step 1" in text and f"--out {out} --resume" in text and "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.safetensors").step == 1
    assert not (out / "samples").exists() and not (out / ".lock").exists()  # the preview stopped, the lock went


def test_sigterm_outside_training_is_one_line_and_exit_143(run_dir, tmp_path, capsys, monkeypatch):
    from pegasus_course import generate

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(60_000):  # the handler raises at the next bytecode; poll rather than bet on one sleep
            time.sleep(0.001)
        raise AssertionError("SIGTERM was not handled within a minute")

    monkeypatch.setattr(generate, "sample_seeds", terminated)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["sample", "--checkpoint", run_dir / "checkpoint.safetensors", "--n", "1", "--out", tmp_path / "s"]
    code, _, err = run(argv, capsys)
    assert code == 143 and "interrupted (SIGTERM)" in err and not (tmp_path / "s" / ".lock").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only


def test_checkpoint_every_is_honoured_as_given(folder, tmp_path, capsys, monkeypatch):
    from pegasus_course import training

    saved = []
    real = training.save_train_state

    def recording(state, *a, **k):
        saved.append(state.step)
        return real(state, *a, **k)

    monkeypatch.setattr(training, "save_train_state", recording)
    code, _, _ = run(train_args(folder, tmp_path / "r", "--steps", "10", "--checkpoint-every", "3"), capsys)
    assert code == 0 and saved == [3, 6, 9, 10]  # every 3 steps as asked (not every host sync), then the last step


# ---------------------------------------------------------------- no picture silently wrong


def _broken_copy(run_dir, tmp_path, tensors=None, **meta_changes):
    ck = load_checkpoint(run_dir / "checkpoint.safetensors")
    meta = {k: v for k, v in ck.meta.items() if k != "format"}
    for key, value in meta_changes.items():
        meta[key] = {**meta[key], **value} if key == "model_config" and isinstance(value, dict) else value
    path = tmp_path / "broken.safetensors"
    # written as an edited file would be: save_checkpoint itself refuses metadata it could not read back
    atomic_save(tensors or ck.tensors, {"format": FORMAT, **meta}, path)
    return path


@pytest.mark.parametrize("kind,message", [("nan", "are not finite"), ("int32", "are not floating point")])
def test_weights_that_are_not_finite_or_not_float_are_refused(run_dir, tmp_path, capsys, kind, message):
    tensors = dict(load_checkpoint(run_dir / "checkpoint.safetensors").tensors)
    name = "ema.conv_out.weight"
    tensors[name] = (torch.full_like(tensors[name], float("nan")) if kind == "nan"
                     else (tensors[name] * 100).to(torch.int32))  # NaN wrote black images, int32 truncated ones
    path = _broken_copy(run_dir, tmp_path, tensors)
    for argv in (["sample", "--n", "1"], ["pegasus", "--seeds", "1", "2", "--n", "1"]):
        code, _, err = run([*argv, "--checkpoint", path, "--out", tmp_path / argv[0]], capsys)
        assert code == 2 and message in err and "conv_out.weight" in err and "Traceback" not in err
        assert not list((tmp_path / argv[0]).rglob("*.png"))


PEGASUS_ENDS = [(["--seeds", "1", "2", "--ends", "guidance"], "--ends chooses the ends with --auto"),
                (["--seeds", "1", "2", "--pairs", "3"], "--pairs chooses the ends with --auto"),
                (["--seeds", "1", "2", "--candidates", "8"], "--candidates chooses the ends"),
                (["--auto", "--ends", "random", "--candidates", "8"], "--candidates applies to --ends selection only")]


@pytest.mark.parametrize("extra,message", PEGASUS_ENDS, ids=[" ".join(e) for e, _ in PEGASUS_ENDS])
def test_pegasus_end_options_that_would_be_ignored_are_refused(run_dir, tmp_path, capsys, extra, message):
    code, _, err = run(["pegasus", "--checkpoint", run_dir / "checkpoint.safetensors", *extra, "--n", "1",
                        "--out", tmp_path / "p"], capsys)
    assert code == 2 and message in err and not (tmp_path / "p" / "rows.png").exists()


def test_pegasus_pairs_makes_that_many_rows(run_dir, tmp_path, capsys):
    code, text, _ = run(["pegasus", "--checkpoint", run_dir / "checkpoint.safetensors", "--auto", "--ends", "random",
                         "--pairs", "3", "--n", "1", "--steps-each", "1", "--out", tmp_path / "p"], capsys)
    assert code == 0 and "3 seeded random pairs" in text
    assert len(list((tmp_path / "p" / "images").glob("pegasus-k*.png"))) == 3


def test_grey_sixteen_bit_and_transparent_images_decode_to_the_right_colours(tmp_path, capsys):
    from PIL import Image

    root = make_image_folder(tmp_path / "d", classes=("horse", "bird"), per_class=2)
    bird = root / "train" / "bird"
    Image.fromarray(np.full((32, 32), 30000, np.uint16)).save(bird / "g16.png")  # 16-bit grey: was all white
    Image.fromarray(np.full((32, 32), 100, np.uint8)).save(bird / "grey.png")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0], rgba[:16, :, 3] = 255, 255  # red, opaque in the top half, transparent below
    Image.fromarray(rgba).save(bird / "rgba.png")
    ds = data.load_dataset("folder", root, classes=("bird",), train=False)  # 0000, 0001, g16, grey, rgba
    assert ds.images[2].unique().tolist() == [117]  # round(30000 / 257): 16 bits to 8
    assert ds.images[3].unique().tolist() == [100]
    assert ds.images[4][:, 0, 0].tolist() == [255, 0, 0] and ds.images[4][:, 31, 0].tolist() == [255, 255, 255]
    assert len(ds.notes) == 1 and all(part in ds.notes[0] for part in (
        "1 16-bit grey image (scaled to 8 bits)", "1 grey image", "1 transparent image (composited on white)"))
    assert data.load_dataset("folder", root, classes=("bird",)).notes == ds.notes  # the cache keeps the note
    code, text, _ = run(train_args(root, tmp_path / "r", "--steps", "1"), capsys)
    assert code == 0 and text.count("note: converted to 8-bit RGB") == 1
    assert text.index("converted to 8-bit RGB") < text.index("steps of batch")


def test_mixed_sizes_are_refused_with_the_sizes_found_or_resized_with_a_note(tmp_path, capsys, monkeypatch):
    from PIL import Image

    root = make_image_folder(tmp_path / "d", classes=("horse", "bird"), per_class=4)
    Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(root / "train" / "bird" / "big.png")
    decoded = []
    real = data._to_rgb
    monkeypatch.setattr(data, "_to_rgb", lambda im: decoded.append(im.size) or real(im))
    argv = ["train", "--dataset", "folder", "--data-root", root, "--profile", "ci", "--out", tmp_path / "r"]
    code, _, err = run(argv, capsys)
    sizes = "several sizes: 32x32 (8 images, e.g. horse/0000.png), 512x512 (1 image, e.g. bird/big.png)"
    assert code == 2 and sizes in err
    assert "--image-size 32, 48 or 64" in err and set(decoded) == {(32, 32)}  # the 512 px image was never decoded
    code, text, _ = run(train_args(root, tmp_path / "r2", "--steps", "1", "--image-size", "32"), capsys)
    assert code == 0 and "note: resized 1 of 9 images" in text and "9 images 32x32" in text
    assert load_checkpoint(tmp_path / "r2" / "checkpoint.safetensors").meta["data"]["image_size"] == 32


@pytest.mark.parametrize("size,message", [((40, 30), "are 40x30 (2 images, e.g. horse/0000.png) (not square)"),
                                          ((96, 96), "the course trains squares of 32, 48 or 64 px")])
def test_a_folder_of_odd_sizes_is_refused_or_cropped_and_resized(tmp_path, size, message):
    from PIL import Image

    root = tmp_path / "d"
    (root / "train" / "horse").mkdir(parents=True)
    for i in range(2):
        image = np.full((size[1], size[0], 3), 50 * i, np.uint8)  # (H, W, 3)
        Image.fromarray(image).save(root / "train" / "horse" / f"{i:04d}.png")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load_dataset("folder", root, classes=("horse",))
    ds = data.load_dataset("folder", root, classes=("horse",), image_size=48, train=False)
    assert ds.images.shape == (2, 3, 48, 48) and ds.images[1].unique().tolist() == [50]
    assert "resized 2 of 2" in ds.notes[-1]


def test_the_image_cache_notices_an_image_replaced_in_place(tmp_path):
    from PIL import Image

    root = make_image_folder(tmp_path / "d", classes=("horse",), per_class=2)
    first = data.load_dataset("folder", root, classes=("horse",), train=False)
    folder_stamp = (root / "train" / "horse").stat().st_mtime_ns
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(root / "train" / "horse" / "0000.png")  # same name, count
    os.utime(root / "train" / "horse", ns=(folder_stamp, folder_stamp))  # and the folder's time as before
    again = data.load_dataset("folder", root, classes=("horse",), train=False)
    assert again.images[0].unique().tolist() == [7] and torch.equal(again.images[1], first.images[1])


def test_train_classifier_refuses_a_batch_it_would_not_use_and_a_non_finite_loss(folder, tmp_path, capsys, monkeypatch):
    from pegasus_course import classifier

    out = tmp_path / "c.safetensors"
    argv = ["train-classifier", "--dataset", "folder", "--data-root", folder, "--profile", "ci", "--steps", "2",
            "--no-progress", "--out", out]
    code, _, err = run(argv + ["--batch-size", "64"], capsys)
    assert code == 2 and "--batch-size 64 is more than the 16 training images" in err and not out.exists()
    monkeypatch.setattr(classifier, "noisy_classification_loss",
                        lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    code, _, err = run(argv + ["--batch-size", "4"], capsys)
    assert code == 3 and "loss became nan at step 1" in err and not out.exists()


# ---------------------------------------------------------------- one clear line, never a traceback

MALFORMED = [({"model_config": {"base_channels": -4}}, "base_channels must be a positive whole number, got -4"),
             ({"model_config": {"base_channels": "wide"}}, "base_channels must be a positive whole number, got 'wide'"),
             ({"model_config": {"widht": 8}}, "unknown key(s) ['widht']"),
             ({"model_config": "64 channels"}, "model_config must be a mapping"),
             ({"step": "abc"}, "step must be a whole number"), ({"step": 3.5}, "step must be a whole number"),
             ({"format_version": "x"}, "format_version must be a whole number"),
             ({"schedule": [50, 0.01, 3]}, "schedule must be a mapping"),
             ({"schedule": {"sigma_max": "big", "sigma_min": 0.01, "num_scales": 3}}, "schedule.sigma_max must be"),
             ({"legs": "three"}, "legs must be a list"),
             # sizes held to the command line's limits: a recorded L of 10^8 is refused at once, not sampled
             ({"schedule": {"sigma_max": 5.0, "sigma_min": 0.1, "num_scales": 100_000_000}},
              "schedule.num_scales must be a whole number from 2 to 10,000, as on the command line"),
             ({"schedule": {"sigma_max": 1e30, "sigma_min": 0.1, "num_scales": 3}},
              "schedule.sigma_max must be a noise level from 1e-18 to 1e+18"),
             ({"model_config": {"base_channels": 100_000}}, "model_config.base_channels must be the network's base "
              "width, at most --base-channels' largest: a whole number up to 1,024"),
             ({"schedule": {"sigma_max": 0.01, "sigma_min": 50.0, "num_scales": 10}},
              "schedule must be sigma_max > sigma_min (the largest noise level first)"),
             ({"model_config": {"num_res_blocks": 64}}, "model_config.num_res_blocks must be ResBlocks per level"),
             ({"data": {"source": "folder", "classes": "cat dog", "image_size": 32}},
              "data.classes must be a list of class names"),
             # the model's and the data's image sizes agree
             ({"data": {"source": "folder", "classes": ["horse", "bird"], "image_size": 48}},
              "data.image_size must be the network's image size, 32 (model_config.image_size), got 48")]


@pytest.mark.parametrize("change,message", MALFORMED, ids=[str(c) for c, _ in MALFORMED])
def test_malformed_checkpoint_metadata_is_one_line(folder, run_dir, tmp_path, capsys, change, message):
    path = _broken_copy(run_dir, tmp_path, **change)
    for argv in (["sample", "--checkpoint", path, "--n", "1", "--out", tmp_path / "s"],
                 train_args(folder, tmp_path / "r", "--steps", "3", "--resume", path)):
        code, _, err = run(argv, capsys)
        assert code == 2 and "malformed" in err and message in err and "Traceback" not in err, err


def test_a_classifier_where_a_score_model_is_expected_and_the_reverse(folder, run_dir, tmp_path, capsys):
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier, save_classifier

    clf = save_classifier(NoisyClassifier(ClassifierConfig(image_size=32, base_channels=8)),
                          tmp_path / "clf.safetensors")
    ck = run_dir / "checkpoint.safetensors"
    cases = [(["sample", "--checkpoint", clf, "--n", "1"], "It is a classifier: give it where a classifier is asked"),
             (["sample", "--checkpoint", ck, "--class", "horse", "--classifier", ck, "--n", "1"],
              "is not a classifier checkpoint (it is a score network's: give it as --checkpoint)"),
             (["pegasus", "--checkpoint", ck, "--ends", "guidance", "--classifier", ck, "--pairs", "1", "--n", "1"],
              "is not a classifier checkpoint (it is a score network's: give it as --checkpoint)"),
             (["export", clf, tmp_path / "e.safetensors"], "is a classifier checkpoint: export keeps"),
             (train_args(folder, tmp_path / "r", "--steps", "3", "--resume", clf),
              "is not a score network's checkpoint")]
    for i, (argv, message) in enumerate(cases):
        if argv[0] in ("sample", "pegasus"):
            argv = [*argv, "--out", tmp_path / f"o{i}"]
        code, _, err = run(argv, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_a_full_disk_while_writing_keeps_the_last_checkpoint(folder, run_dir, tmp_path, capsys, monkeypatch):
    import safetensors.torch

    out = copy_run(run_dir, tmp_path)
    before = digest(out / "checkpoint.safetensors")

    def full(*a, **k):  # what safetensors raises when the disk fills (its own error type, not an OSError)
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    args = train_args(folder, out, "--steps", "4", "--resume", "--checkpoint-every", "1")
    args[args.index("--num-scales"):args.index("--num-scales") + 2] = []
    code, text, err = run(args, capsys)
    assert code == 2 and "No space left on device while writing" in err and "is kept" in err, err
    assert "could not write the decoded-image cache" in text  # the cache could not be written either: training went on
    assert digest(out / "checkpoint.safetensors") == before and not list(out.glob(".*.tmp"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs resource limits (POSIX)")
def test_a_file_size_limit_while_writing_is_one_line(run_dir, tmp_path):
    import resource

    def limit():  # 50 kB: the float16 export is about 200 kB
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    res = subprocess.run([sys.executable, "-m", "pegasus_course.cli", "export", str(run_dir / "checkpoint.safetensors"),
                          str(tmp_path / "e.safetensors")], cwd=REPO, capture_output=True, text=True, preexec_fn=limit)
    assert res.returncode == 2 and "File too large while writing" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not list(tmp_path.iterdir())


def test_an_unwritable_cache_is_skipped_and_training_goes_on(folder, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("PEGASUS_CACHE", str(blocker))
    code, text, _ = run(train_args(folder, tmp_path / "r", "--steps", "1"), capsys)
    assert code == 0 and "could not write the decoded-image cache" in text
    assert load_checkpoint(tmp_path / "r" / "checkpoint.safetensors").step == 1


def test_a_folder_in_place_of_the_checkpoint_file_is_refused(folder, tmp_path, capsys):
    out = tmp_path / "r"
    (out / "checkpoint.safetensors").mkdir(parents=True)
    code, text, err = run(train_args(folder, out, "--steps", "1"), capsys)
    assert code == 2 and "is a folder, not a checkpoint file" in err and "steps of batch" not in text


# ---------------------------------------------------------------- the package's public functions refuse bad input


def _tiny_model():
    from pegasus_course.nn import ScoreUNet, ScoreUNetConfig

    return ScoreUNet(ScoreUNetConfig.for_image_size(32, 8, num_res_blocks=1, attn_heads=2, attn_dim_head=8))


def _tiny_classifier():
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier

    return NoisyClassifier(ClassifierConfig(image_size=32, base_channels=8))


def _library_cases():
    from pegasus_course import (classifier, evaluation, generate, interpolation, losses, plotting, sampling, sigmas,
                                training)
    from pegasus_course.nn import ScoreUNetConfig

    levels = torch.tensor([1.0, 0.5])
    flat = lambda x, s: x.flatten(1).sum(1)  # noqa: E731 - one value per example: not a score
    return [
        ("dsm_loss: a score of another shape", lambda: losses.dsm_loss(flat, torch.randn(4, 3), levels),
         ValueError, r"score_fn returned \(4,\) for an input of shape \(4, 3\)"),
        ("sliced_score_matching_loss: a score of another shape",
         lambda: losses.sliced_score_matching_loss(lambda x, s: x[:, :1], torch.randn(4, 3), levels),
         ValueError, "score_fn returned"),
        ("annealed_langevin: a score of another shape",
         lambda: sampling.annealed_langevin(lambda x, s: x[:1], (2, 3), levels, 1, 0.1, progress=False),
         ValueError, r"score_fn returned \(1, 3\)"),
        ("langevin_step_size: ascending", lambda: sigmas.langevin_step_size(torch.tensor([0.1, 1.0]), 5),
         ValueError, "largest first"),
        ("langevin_step_size: NaN", lambda: sigmas.langevin_step_size(torch.tensor([1.0, float("nan")]), 5),
         ValueError, "positive and finite"),
        ("step_sizes: a negative level", lambda: sigmas.step_sizes(torch.tensor([1.0, -0.1]), 1e-5),
         ValueError, "positive and finite"),
        ("num_noise_scales: reversed", lambda: sigmas.num_noise_scales(0.01, 50.0, 3072),
         ValueError, "sigma_max > sigma_min"),
        ("geometric_sigmas: beyond float32", lambda: sigmas.geometric_sigmas(1e39, 0.01, 3), ValueError, "float32"),
        ("mix_weights: k NaN", lambda: interpolation.mix_weights(float("nan"), 15), ValueError, r"0..n \+ 1"),
        ("mix_noise: tapes of two shapes", lambda: interpolation.mix_noise(torch.zeros(2, 3), torch.zeros(1, 3), 1, 3),
         ValueError, "one shape"),
        ("ScoreUNetConfig: width 0", lambda: ScoreUNetConfig(base_channels=0), ValueError, "base_channels must be"),
        ("ScoreUNetConfig: heads -2", lambda: ScoreUNetConfig(attn_heads=-2), ValueError, "attn_heads must be"),
        ("ScoreUNetConfig: unknown key", lambda: ScoreUNetConfig.from_dict({**ScoreUNetConfig().to_dict(), "widht": 3}),
         ValueError, "unknown key"),
        ("TrainConfig: ema_decay 1", lambda: training.TrainConfig(steps=1, ema_decay=1.0), ValueError, "ema_decay"),
        ("TrainConfig: grad_clip -1", lambda: training.TrainConfig(steps=1, grad_clip=-1.0), ValueError, "grad_clip"),
        ("TrainConfig: steps 0", lambda: training.TrainConfig(steps=0), ValueError, "steps must be at least 1"),
        ("TrainConfig: batch 0", lambda: training.TrainConfig(steps=1, batch_size=0), ValueError, "batch_size"),
        ("ImageDataset: labels of another length",
         lambda: data.ImageDataset(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ("a",),
                                   False), ValueError, "do not match"),
        ("accuracy: labels of another length",
         lambda: classifier.accuracy(_tiny_classifier(), torch.rand(3, 3, 32, 32), torch.tensor([0, 1])),
         ValueError, "do not match"),
        ("train_classifier: labels of another length",
         lambda: classifier.train_classifier(_tiny_classifier(), torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
                                             torch.zeros(3, dtype=torch.long), levels, steps=1, batch_size=2),
         ValueError, "do not match"),
        ("generate: no seeds", lambda: generate.generate(_tiny_model(), [], generate.Schedule(5.0, 0.5, 3, 1)),
         ValueError, "no seeds given"),
        ("predict_proba: an empty batch",
         lambda: classifier.predict_proba(_tiny_classifier(), torch.rand(0, 3, 32, 32)),
         ValueError, "the batch is empty"),
        ("frechet_distance: NaN features",
         lambda: evaluation.frechet_distance(torch.full((4, 3), float("nan")), torch.rand(4, 3)),
         ValueError, "features contain NaN"),
        ("train: 0-255 floats", lambda: training.train(_tiny_model(), torch.rand(8, 3, 32, 32) * 255, levels,
                                                       training.TrainConfig(steps=1, batch_size=4), progress=False),
         TypeError, "expected uint8 images"),
        ("colour_stats: 0-255 floats", lambda: evaluation.colour_stats(torch.rand(2, 3, 8, 8) * 255),
         ValueError, r"expected images in \[0, 1\]"),
        ("SeededNoise: a seed beyond int64", lambda: sampling.SeededNoise([2**63]), ValueError, r"2\^63 - 1"),
        # a second probe (after issue 24): each of these crashed deep inside, or returned something silently wrong
        ("dsm_loss: an empty schedule", lambda: losses.dsm_loss(lambda x, s: -x, torch.randn(4, 3), torch.tensor([])),
         ValueError, "the schedule is empty"),
        ("dsm_loss: an empty batch", lambda: losses.dsm_loss(lambda x, s: -x, torch.randn(0, 3), levels),
         ValueError, "the batch is empty"),
        ("dsm_loss_by_level: no levels",
         lambda: losses.dsm_loss_by_level(lambda x, s: -x, torch.randn(4, 3), torch.tensor([])),
         ValueError, "the schedule is empty"),
        ("frechet_distance: 1-D features", lambda: evaluation.frechet_distance(torch.rand(4), torch.rand(4)),
         ValueError, r"\(N, F\)"),
        ("max_pairwise_distance: NaN images",
         lambda: sigmas.max_pairwise_distance(torch.full((3, 3, 4, 4), float("nan"))), ValueError, "NaN or infinite"),
        ("load_dataset: max_images -1 (would drop the last image)",
         lambda: data.load_dataset("folder", "no-such-folder", max_images=-1), ValueError, "max_images"),
        ("balanced_subset: 0 per class",
         lambda: data.balanced_subset(data.ImageDataset(torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
                                                        torch.zeros(2, dtype=torch.long), ("a",), False), 0),
         ValueError, "per_class must be at least 1"),
        ("generate: batch_size 0", lambda: generate.generate(_tiny_model(), [0], generate.Schedule(5.0, 0.5, 3, 1),
                                                             batch_size=0, progress=False),
         ValueError, "batch_size must be at least 1"),
        ("ema_update: decay 2", lambda: training.ema_update(_tiny_model(), _tiny_model(), 2.0), ValueError,
         r"decay must be in \[0, 1\]"),
        ("TrainConfig: lr 1e300 (Adam's step overflows)", lambda: training.TrainConfig(steps=1, lr=1e300), ValueError,
         "at most 1e6"),
        ("to_grid: NaN images (drawn black)", lambda: plotting.to_grid(torch.full((2, 3, 8, 8), float("nan"))),
         ValueError, "2 of 2 images hold NaN"),
        ("ClassifierConfig: one class", lambda: classifier.ClassifierConfig(class_names=("horse",)), ValueError,
         "--classes horse bird"),
    ]


LIBRARY = _library_cases()


@pytest.mark.parametrize("what,call,error,message", LIBRARY, ids=[case[0] for case in LIBRARY])
def test_public_functions_refuse_what_the_probe_found_them_to_accept(what, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_same_public_functions_accept_good_input():
    """The refusals above are not blanket ones: the good version of each input passes (hand-worked values)."""
    from pegasus_course import evaluation, interpolation, losses, sigmas

    assert losses.dsm_loss(lambda x, s: -x, torch.zeros(4, 3), torch.tensor([1.0])).item() == pytest.approx(0.0)
    assert torch.allclose(sigmas.step_sizes(torch.tensor([2.0, 1.0]), 0.5), torch.tensor([2.0, 0.5]))
    c, s = interpolation.mix_weights(8, 15)
    assert float(c) == pytest.approx(2**-0.5) and float(s) == pytest.approx(2**-0.5)
    same = torch.eye(3).repeat(2, 1)
    assert evaluation.frechet_distance(same, same) == pytest.approx(0, abs=1e-9)
    stats = evaluation.colour_stats(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert stats["mean"] == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------- a second probe of the command line (after issue 24)


@pytest.mark.parametrize("argv", [["sample", "--n", "2", "--class", "horse"],
                                  ["pegasus", "--auto", "--ends", "guidance", "--pairs", "1", "--n", "1"]],
                         ids=["sample", "pegasus"])
def test_a_guidance_scale_that_overflows_saves_no_picture(run_dir, tmp_path, capsys, argv):
    out = tmp_path / "o"
    code, _, err = run([*argv, "--checkpoint", run_dir / "checkpoint.safetensors", "--steps-each", "1",
                        "--num-scales", "2", "--guidance-scale", "1e308", "--out", out], capsys)
    assert code == 3 and "hold NaN or infinite values" in err and "--guidance-scale" in err, err
    assert not [p for p in out.rglob("*") if p.is_file()], "NaN samples were saved as black pictures"


def test_save_images_refuses_nan_before_making_its_folder(tmp_path):
    from pegasus_course.plotting import save_images

    with pytest.raises(ValueError, match="1 of 2 images hold NaN"):
        save_images(torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), float("nan"))]), tmp_path / "imgs")
    assert not (tmp_path / "imgs").exists()


def test_live_weights_of_an_exported_file_say_drop_live(run_dir, tmp_path, capsys):
    exported = tmp_path / "ema.safetensors"
    assert run(["export", run_dir / "checkpoint.safetensors", exported], capsys)[0] == 0
    code, _, err = run(["sample", "--checkpoint", exported, "--live", "--n", "1", "--out", tmp_path / "s"], capsys)
    assert code == 2 and "EMA weights only" in err and "drop --live" in err, err


def test_seeds_beyond_int64_name_the_options_to_lower(run_dir, tmp_path, capsys):
    ck = run_dir / "checkpoint.safetensors"
    code, _, err = run(["pegasus", "--checkpoint", ck, "--auto", "--ends", "random", "--seed", str(2**63 - 1),
                        "--out", tmp_path / "p"], capsys)
    assert code == 2 and "--seed" in err and "lower --seed" in err and "pegasus_batch" not in err, err
    code, _, err = run(["sample", "--checkpoint", ck, "--seed", str(2**63 - 2), "--n", "3", "--out", tmp_path / "s"],
                       capsys)
    assert code == 2 and "lower --seed or --n" in err, err


def test_a_sigma_min_above_the_data_spread_names_the_option(folder, capsys):
    code, _, err = run(["schedule", "--dataset", "folder", "--data-root", folder, "--sigma-min", "1000"], capsys)
    assert code == 2 and "lower sigma_L (--sigma-min" in err, err


def test_empty_environment_variables_count_as_unset(monkeypatch, tmp_path):
    """PEGASUS_DATA_ROOT= (or PEGASUS_CACHE=) would otherwise mean the current folder: read, cached into, listed."""
    monkeypatch.setenv("PEGASUS_CACHE", "")
    monkeypatch.setenv("PEGASUS_DATA_ROOT", "")
    monkeypatch.setenv("PEGASUS_DATA_SOURCE", "")
    spec = data.default_data()
    assert data.cache_dir() == Path.home() / ".cache" / "pegasus-course"
    assert spec.root == str(data.cache_dir() / "data") and spec.source == "cifar10"


def test_the_host_running_out_of_memory_is_one_line(capsys, monkeypatch):
    def out_of_memory(args):
        raise MemoryError()

    monkeypatch.setattr(cli.schedule, "run", out_of_memory)
    code, _, err = run(["schedule"], capsys)
    assert code == 4 and err.startswith("error: out of memory") and "Traceback" not in err


# ================================================================ issue 32: the command line's classes
# (paths, options that would be ignored, nothing replaced before its successor exists, a faithful export)

PATH_DESTS = {"out", "checkpoint", "classifier", "data_root", "resume", "resume_shards"}


def _subparsers():
    return cli.build_parser()._subparsers._group_actions[0].choices


def _path_options():
    """(subcommand, option as typed, dest) for every option or argument that takes a path."""
    return [(name, (a.option_strings or [a.dest])[-1], a.dest) for name, p in _subparsers().items()
            for a in p._actions if a.dest in PATH_DESTS]


@pytest.mark.parametrize("command,option,dest", _path_options(), ids=[f"{c} {o}" for c, o, _ in _path_options()])
def test_every_path_option_expands_the_home_folder_also_after_equals(command, option, dest, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    if option.startswith("--"):
        before = ["a.safetensors", "b.safetensors"] if command == "export" else []
        forms = [[*before, f"{option}=~/x"], [*before, option, "~/x"]]
    else:  # a positional path (a quoted "~/x" reaches the command as it is)
        forms = [{("export", "checkpoint"): ["~/x", "b.safetensors"], ("export", "out"): ["a.safetensors", "~/x"],
                  ("doctor", "checkpoint"): ["~/x"]}[command, dest]]
    for form in forms:
        value = getattr(cli.build_parser().parse_args([command, *form]), dest)
        assert Path(value) == tmp_path / "x", (form, value)


def test_out_equals_tilde_writes_into_the_home_folder_and_says_so(run_dir, tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    code, text, err = run(["sample", "--checkpoint", run_dir / "checkpoint.safetensors", "--n", "1", "--steps-each",
                           "1", "--num-scales", "2", "--out=~/x"], capsys)
    assert code == 0, err
    assert (home / "x" / "grid.png").is_file() and not (tmp_path / "~").exists()
    assert f"wrote {home / 'x' / 'grid.png'}" in text and "~/x" not in text


# ---------------------------------------------------------------- an option that would be ignored is refused

# (command line, the options the one-line message names, a words of its reason); --out o is added where there is one
IGNORED = [
    (["train", "--compile-mode", "max-autotune"], ["--compile-mode", "--compile"], "applies with --compile only"),
    (["train", "--dataset", "folder", "--download"], ["--download", "--dataset folder"], "images already on disk"),
    (["train", "--download"], ["--download", "--dataset folder (PEGASUS_DATA_SOURCE)"], "images already on disk"),
    (["train", "--schedule", "data", "--sigma-max", "20"], ["--schedule data", "--sigma-max"], "would be ignored"),
    (["train", "--schedule", "data", "--num-scales", "20"], ["--schedule data", "--num-scales"], "would be ignored"),
    (["train", "--sigma-max", "0.5", "--sigma-min", "1"], ["--sigma-max", "--sigma-min"], "must be above"),
    (["train", "--sigma-max", "1", "--sigma-min", "1"], ["--sigma-max", "--sigma-min"], "must be above"),
    (["train", "--resume", "--overwrite"], ["--overwrite", "--resume"], "continues that checkpoint"),
    (["train", "--resume", "o/checkpoint.safetensors", "--overwrite"], ["--overwrite", "--resume"], "continues"),
    (["train-classifier", "--clean", "--sigma-max", "20"], ["--sigma-max", "--clean"], "clean images only"),
    (["train-classifier", "--sigma-max", "0.5", "--sigma-min", "1"], ["--sigma-max", "--sigma-min"], "must be above"),
    (["train-classifier", "--dataset", "folder", "--download"], ["--download", "--dataset folder"], "on disk"),
    (["sample", "--guidance-scale", "5"], ["--guidance-scale", "--class"], "no guidance would be used"),
    (["sample", "--classifier", "c.safetensors"], ["--classifier", "--class"], "no guidance would be used"),
    (["sample", "--classifier", "c.safetensors", "--guidance-scale", "5"], ["--classifier and --guidance-scale",
                                                                          "--class"], "no guidance would be used"),
    (["sample", "--class", "horse", "--guidance-scale", "0"], ["--guidance-scale 0", "--class horse"],
     "guides nothing"),
    (["pegasus", "--ends", "guidance", "--guidance-scale", "0"], ["--guidance-scale 0", "--ends guidance"],
     "guides nothing"),
    (["pegasus", "--seeds", "1", "2", "--seed", "5"], ["--seed", "--seeds", "--auto"], "from seed 1 to seed 2"),
    (["pegasus", "--seeds", "1", "2", "--guidance-scale", "5"], ["--guidance-scale", "--seeds"], "with --auto"),
    (["pegasus", "--seeds", "1", "2", "--classifier", "c.safetensors"], ["--classifier", "--seeds"], "with --auto"),
    (["pegasus", "--ends", "random", "--guidance-scale", "5"], ["--guidance-scale", "--ends guidance"], "by random"),
    (["pegasus", "--ends", "selection", "--guidance-scale", "5"], ["--guidance-scale", "--ends guidance"],
     "by selection"),
    (["pegasus", "--ends", "random", "--classifier", "c.safetensors"], ["--classifier", "--ends selection"],
     "by random"),
    (["pegasus", "--ends", "guidance", "--candidates", "8"], ["--candidates", "--ends selection"], "by guidance"),
    (["export", "a.safetensors", "b.safetensors", "--max-shard-mib", "5"], ["--max-shard-mib", "--resume-shards"],
     "no --resume-shards is given"),
    (["schedule", "--dataset", "folder", "--download"], ["--download", "--dataset folder"], "images already on disk"),
    (["doctor", "--dataset", "folder", "--download"], ["--download", "--dataset folder"], "images already on disk"),
]

# Every other option is used whatever the others say (a value out of range is refused where parsed, above).
ALWAYS_USED = {
    "train": {"--data-root", "--classes", "--image-size", "--profile", "--steps", "--epochs", "--batch-size", "--lr",
              "--ema-decay", "--grad-clip", "--base-channels", "--num-res-blocks", "--out", "--seed", "--compile",
              "--channels-last", "--device", "--precision", "--no-bf16", "--max-minutes", "--sample-every",
              "--checkpoint-every", "--track-colour", "--no-progress"},
    "sample": {"--checkpoint", "--n", "--seed", "--steps-each", "--num-scales", "--no-denoise", "--live", "--class",
               "--device", "--out", "--overwrite"},
    "pegasus": {"--checkpoint", "--auto", "--n", "--steps-each", "--num-scales", "--device", "--out", "--overwrite",
                "--pairs"},
    "export": {"checkpoint", "out", "--weights", "--resume-shards", "--overwrite"},
    "train-classifier": {"--data-root", "--classes", "--image-size", "--profile", "--steps", "--batch-size", "--lr",
                         "--base-channels", "--seed", "--device", "--out", "--overwrite", "--no-progress"},
    "schedule": {"--dataset", "--data-root", "--classes", "--image-size", "--steps-each", "--sigma-min", "--exact",
                 "--json"},
    "doctor": {"checkpoint", "--dataset", "--data-root", "--classes", "--split", "--n-images", "--levels",
               "--steps-each", "--step-lr", "--live", "--seed", "--device", "--out", "--json", "--overwrite"},
}


def _options_of(command):
    return {(a.option_strings or [a.dest])[-1] for a in _subparsers()[command]._actions if a.dest != "help"}


def test_every_option_of_every_subcommand_is_in_the_tables():
    """A new option must be placed: refused where it would be ignored (IGNORED), or listed as always used."""
    refused = {}
    for argv, _, _ in IGNORED:
        refused.setdefault(argv[0], set()).update(a for a in argv[1:] if a in _options_of(argv[0]))
    assert set(ALWAYS_USED) == set(_subparsers())
    for command in _subparsers():
        assert _options_of(command) <= ALWAYS_USED[command] | refused.get(command, set()), command


@pytest.mark.parametrize("argv,names,why", IGNORED, ids=[" ".join(a) for a, _, _ in IGNORED])
def test_an_option_that_would_be_ignored_is_refused_in_one_line(argv, names, why, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PEGASUS_DATA_SOURCE", "folder")
    (tmp_path / "c.safetensors").write_bytes(b"")  # a classifier file that is there: refused for another reason
    out = ["--out", "o"] if "--out" in _options_of(argv[0]) else []
    code, text, err = run([*argv, *out], capsys)
    assert code == 2, (code, text, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and why in err, err
    assert all(name in err for name in names), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"], "a refused command line wrote files"


@pytest.fixture
def classifier_file(tmp_path):
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier, save_classifier

    return save_classifier(NoisyClassifier(ClassifierConfig(image_size=32, base_channels=8)),
                           tmp_path / "clf.safetensors")


VALID = [
    (["train"], {"compile_mode": "default"}),
    (["train", "--compile", "--compile-mode", "max-autotune", "--schedule", "data", "--sigma-min", "0.1", "--dataset",
      "cifar10", "--download", "--resume", "runs/other/checkpoint.safetensors", "--overwrite"],
     {"compile_mode": "max-autotune"}),
    (["train", "--resume", "--sigma-max", "20", "--sigma-min", "0.1", "--num-scales", "4"], {"sigma_max": 20.0}),
    (["train-classifier", "--clean", "--sigma-min", "0.1"], {"sigma_max": None}),
    (["train-classifier", "--sigma-max", "50", "--sigma-min", "0.01", "--dataset", "stl10", "--download"],
     {"sigma_max": 50.0}),
    (["sample"], {"guidance_scale": 3.0}),
    (["sample", "--class", "horse", "--classifier", "CLF", "--guidance-scale", "5"], {"guidance_scale": 5.0}),
    (["pegasus", "--seeds", "1", "2"], {"seed": 0, "pairs": 4, "guidance_scale": 3.0}),
    (["pegasus", "--ends", "guidance", "--guidance-scale", "5", "--classifier", "CLF", "--seed", "3", "--pairs", "2"],
     {"seed": 3, "pairs": 2, "guidance_scale": 5.0}),
    (["pegasus", "--ends", "selection", "--candidates", "8", "--classifier", "CLF"], {"candidates": 8}),
    (["pegasus", "--auto", "--classifier", "CLF", "--candidates", "8"], {"candidates": 8}),
    (["pegasus", "--ends", "random", "--seed", "4"], {"seed": 4}),
    (["export", "a", "b"], {"max_shard_mib": 15.0}),
    (["export", "a", "b", "--resume-shards", "d", "--max-shard-mib", "5"], {"max_shard_mib": 5.0}),
    (["schedule", "--dataset", "cifar10", "--download"], {"download": True}),
    (["doctor", "--dataset", "stl10", "--download", "--levels", "2"], {"levels": 2}),
]


@pytest.mark.parametrize("argv,expected", VALID, ids=[" ".join(a) for a, _ in VALID])
def test_the_same_options_in_a_valid_combination_pass(argv, expected, classifier_file, monkeypatch):
    """The refusals are not blanket ones: every subcommand's check passes a combination that uses each option."""
    monkeypatch.setenv("PEGASUS_DATA_SOURCE", "folder")
    args = cli.build_parser().parse_args([str(classifier_file) if a == "CLF" else a for a in argv])
    cli.COMMANDS[argv[0]].check_options(args)
    assert {k: getattr(args, k) for k in expected} == expected


def test_doctor_probes_no_more_levels_than_the_checkpoint_has(run_dir, folder, tmp_path, capsys):
    base = ["doctor", run_dir / "checkpoint.safetensors", "--dataset", "folder", "--data-root", folder,
            "--out", tmp_path / "d"]
    code, _, err = run([*base, "--levels", "5"], capsys)
    assert code == 2 and "--levels 5 is more than the 3 noise levels of" in err and "at most 3" in err, err
    assert not (tmp_path / "d").exists()
    code, _, err = run([*base, "--levels", "1"], capsys)  # both ends are probed: 1 would silently be 2
    assert code == 2 and "at least 2 (both ends of the schedule are probed)" in err


# ---------------------------------------------------------------- nothing is replaced before its successor exists


def _files(folder):
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def earlier_rows(run_dir, tmp_path, capsys):
    """An --out that holds the images of an earlier pegasus run."""
    out = tmp_path / "p"
    argv = ["pegasus", "--checkpoint", run_dir / "checkpoint.safetensors", "--seeds", "1", "2", "--n", "1",
            "--steps-each", "1", "--num-scales", "2", "--out", out]
    assert run(argv, capsys)[0] == 0
    return out


def test_pegasus_overwrite_checks_first_and_keeps_the_earlier_images_when_it_fails(run_dir, earlier_rows, tmp_path,
                                                                                   capsys, monkeypatch):
    from pegasus_course import classifier, generate, plotting

    out, before = earlier_rows, _files(earlier_rows)
    assert sorted(before) == ["images/pegasus-k1-000.png", "pegasus.png", "rows.png"]
    clf = tmp_path / "clf.safetensors"
    common = ["pegasus", "--checkpoint", run_dir / "checkpoint.safetensors", "--auto", "--pairs", "1", "--n", "1",
              "--steps-each", "1", "--num-scales", "2", "--out", out, "--overwrite"]
    code, _, err = run([*common, "--ends", "selection", "--classifier", clf], capsys)  # no classifier there
    assert code == 2 and f"No classifier at {clf}" in err and _files(out) == before, err
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier, save_classifier

    save_classifier(NoisyClassifier(ClassifierConfig(image_size=32, base_channels=8)), clf)
    all_horses = lambda model, images, **k: torch.tensor([[1.0, 0.0]] * len(images))  # noqa: E731
    monkeypatch.setattr(classifier, "predict_proba", all_horses)
    code, _, err = run([*common, "--ends", "selection", "--classifier", clf], capsys)  # no bird among the candidates
    assert code == 2 and "Sample more candidates" in err and _files(out) == before, err

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    for patched, name in ((generate, "pegasus_rows"), (plotting, "save_images")):  # while sampling, while writing
        with monkeypatch.context() as m:
            m.setattr(patched, name, interrupted)
            code, text, err = run([*common, "--ends", "random"], capsys)
        assert code == 130 and "interrupted (Ctrl-C)" in err and "removed" not in text, (name, err)
        assert _files(out) == before, name  # the earlier images are all there, nothing of the new run mixed in
        assert sorted(p.name for p in out.iterdir()) == ["images", "pegasus.png", "rows.png"]  # no staging, no lock
    code, text, _ = run([*common, "--ends", "random", "--seed", "7"], capsys)
    assert code == 0 and "--overwrite: removed the earlier run's pegasus.png, rows.png, 1 file in images/" in text
    after = _files(out)
    assert sorted(after) == sorted(before) and after["rows.png"] != before["rows.png"]  # seeds 7, 8 this time


def test_sample_overwrite_keeps_the_earlier_images_until_the_new_ones_are_written(run_dir, tmp_path, capsys,
                                                                                  monkeypatch):
    from pegasus_course import plotting

    out = tmp_path / "s"
    common = ["sample", "--checkpoint", run_dir / "checkpoint.safetensors", "--steps-each", "1", "--num-scales", "2",
              "--out", out]
    assert run([*common, "--n", "3"], capsys)[0] == 0
    before = _files(out)
    real = plotting.save_images

    def half_written(images, folder, **k):  # one image written, then SIGTERM
        real(images[:1], folder, **k | {"numbers": list(k["numbers"])[:1]})
        raise cli.common.Terminated()

    monkeypatch.setattr(plotting, "save_images", half_written)
    code, _, err = run([*common, "--n", "2", "--seed", "5", "--overwrite"], capsys)
    assert code == 143 and "interrupted (SIGTERM)" in err and _files(out) == before
    monkeypatch.setattr(plotting, "save_images", real)
    code, text, _ = run([*common, "--n", "2", "--seed", "5", "--overwrite"], capsys)
    assert code == 0 and f"wrote {out / 'grid.png'} and 2 images in {out / 'images'}" in text
    assert sorted(_files(out)) == ["grid.png", "images/seed-005.png", "images/seed-006.png"]


@pytest.fixture
def doctor_argv(run_dir, folder, tmp_path):
    return ["doctor", run_dir / "checkpoint.safetensors", "--dataset", "folder", "--data-root", folder, "--levels", "2",
            "--n-images", "4", "--device", "cpu", "--out", tmp_path / "d"]


def test_doctor_replaces_an_earlier_report_only_with_overwrite_and_takes_the_lock(doctor_argv, tmp_path, capsys,
                                                                                  monkeypatch):
    from pegasus_course import doctor

    out = tmp_path / "d"
    assert run(doctor_argv, capsys)[0] in (0, 1)
    (out / "doctor.txt").write_text("another model's report\n")
    before = _files(out)
    code, _, err = run(doctor_argv, capsys)
    assert code == 2 and "holds the report of an earlier doctor run: doctor.png, doctor.txt" in err
    assert "--overwrite" in err and _files(out) == before
    (out / ".lock").write_text(f"{os.getppid()} {socket.gethostname()}")  # a live command writes there
    code, _, err = run([*doctor_argv, "--overwrite"], capsys)
    assert code == 2 and "in use by another pegasus-course command" in err
    (out / ".lock").unlink()
    assert _files(out) == before

    def interrupted(*a, **k):
        raise cli.common.Terminated()

    with monkeypatch.context() as m:
        m.setattr(doctor.Report, "save", interrupted)
        assert run([*doctor_argv, "--overwrite"], capsys)[0] == 143
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == ["doctor.png", "doctor.txt"]
    code, text, err = run([*doctor_argv, "--overwrite", "--json"], capsys)
    assert code in (0, 1) and "removed the earlier run's doctor.png, doctor.txt" in err
    assert json.loads(text)["files"] == [str(out / "doctor.png"), str(out / "doctor.txt")]  # stdout: the JSON alone
    assert (out / "doctor.txt").read_text().startswith("pegasus-course doctor:")


def _missing(tmp_path):
    return tmp_path / "missing.safetensors"


FAILING = [  # (command line writing under tmp/new/..., the folders it would create)
    ("train", lambda f, t: train_args(f, t / "new" / "a" / "run", "--steps", "1", "--classes", "horse", "zebra")),
    ("train-classifier", lambda f, t: ["train-classifier", "--dataset", "folder", "--data-root", f, "--profile", "ci",
                                       "--classes", "zebra", "horse", "--out", t / "new" / "a" / "c.safetensors"]),
    ("sample", lambda f, t: ["sample", "--checkpoint", _missing(t), "--out", t / "new" / "a"]),
    ("pegasus", lambda f, t: ["pegasus", "--checkpoint", _missing(t), "--seeds", "1", "2", "--out", t / "new" / "a"]),
    ("doctor", lambda f, t: ["doctor", _missing(t), "--out", t / "new" / "a"]),
    ("export", lambda f, t: ["export", _missing(t), t / "new" / "a" / "e.safetensors", "--resume-shards",
                             t / "new" / "shards"]),
]


@pytest.mark.parametrize("command,argv", FAILING, ids=[c for c, _ in FAILING])
def test_a_command_that_fails_leaves_no_empty_out_folder(command, argv, folder, tmp_path, capsys):
    code, _, err = run(argv(folder, tmp_path), capsys)
    assert code == 2 and "Traceback" not in err, err
    assert not (tmp_path / "new").exists(), f"{command} left {sorted(tmp_path.rglob('*'))}"
    (tmp_path / "new" / "a").mkdir(parents=True)  # a folder that was there before the command stays
    code, _, _ = run(argv(folder, tmp_path), capsys)
    assert code == 2 and (tmp_path / "new" / "a").is_dir()


# ---------------------------------------------------------------- export writes only what it can write faithfully

EXPORT_BAD = [  # (weights, tensor, its new value, what is added to the command line, the message)
    ("ema", lambda t: torch.full_like(t, float("nan")), [], "are not finite (ema.conv_out.weight holds NaN or inf)"),
    ("ema", lambda t: torch.full_like(t, float("-inf")), [], "are not finite (ema.conv_out.weight holds NaN or inf)"),
    ("ema", lambda t: torch.full_like(t, 1e5), [],
     "ema.conv_out.weight in {ck} holds values up to 1e+05, beyond float16's largest (65504)"),
    ("ema", lambda t: (t * 100).to(torch.int32), [], "are not floating point (ema.conv_out.weight is torch.int32)"),
    ("model", lambda t: torch.full_like(t, 7e4), ["--weights", "live"], "model.conv_out.weight in {ck} holds values up"),
    ("model", lambda t: torch.full_like(t, float("nan")), ["--resume-shards", "SHARDS"],  # the live float32 shards
     "are not finite (model.conv_out.weight holds NaN or inf)"),
]


@pytest.mark.parametrize("part,change,extra,message", EXPORT_BAD,
                         ids=[f"{p} {' '.join(e)} {m[:30]}" for p, _, e, m in EXPORT_BAD])
def test_export_refuses_weights_it_cannot_write_faithfully(run_dir, tmp_path, capsys, part, change, extra, message):
    tensors = dict(load_checkpoint(run_dir / "checkpoint.safetensors").tensors)
    name = f"{part}.conv_out.weight"
    tensors[name] = change(tensors[name])
    ck = _broken_copy(run_dir, tmp_path, tensors)
    out = tmp_path / "new" / "e.safetensors"
    extra = [tmp_path / "new-shards" if a == "SHARDS" else a for a in extra]
    code, text, err = run(["export", ck, out, *extra], capsys)
    assert code == 2 and message.format(ck=ck) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "new").exists() and not (tmp_path / "new-shards").exists() and "wrote" not in text


def test_export_says_exactly_what_it_wrote(run_dir, tmp_path, capsys):
    ck = load_checkpoint(run_dir / "checkpoint.safetensors")
    for weights, prefix, label in (("ema", "ema", "EMA"), ("live", "model", "live")):
        out = tmp_path / f"{weights}.safetensors"
        code, text, _ = run(["export", run_dir / "checkpoint.safetensors", out, "--weights", weights], capsys)
        written = load_checkpoint(out)
        part = written.part(prefix)
        assert code == 0 and all(v.dtype == torch.float16 for v in part.values())
        assert len(part) == len(ck.part(prefix)) and not written.part("ema" if prefix == "model" else "model")
        values = sum(v.numel() for v in part.values())
        size = out.stat().st_size
        assert size < 2**20  # the tiny network: said in KiB
        assert text.strip() == (f"wrote {out} ({round(size / 1024)} KiB): {len(part):,} {label} weight tensors "
                                f"({values:,} values) in float16 and the loss history of 2 steps"), text
    shards = tmp_path / "shards"
    code, text, _ = run(["export", run_dir / "checkpoint.safetensors", tmp_path / "e2.safetensors", "--resume-shards",
                         shards, "--max-shard-mib", "0.05"], capsys)
    files = sorted(shards.glob("part-*.safetensors"))
    assert code == 0 and f"wrote {len(files)} shards in {shards}" in text and len(files) > 1
    assert (f"{len(ck.part('model')):,} live weight tensors in float32 and {len(ck.part('ema')):,} EMA ones in "
            "float16, no optimizer state") in text
    resumed = load_checkpoint(shards)
    assert all(v.dtype == torch.float32 for v in resumed.part("model").values()) and not resumed.part("optim")
    assert all(v.dtype == torch.float16 for v in resumed.part("ema").values())


def test_export_of_an_exported_file_writes_no_shards_it_could_not_resume(run_dir, tmp_path, capsys):
    exported = tmp_path / "ema.safetensors"
    assert run(["export", run_dir / "checkpoint.safetensors", exported], capsys)[0] == 0
    code, _, err = run(["export", exported, tmp_path / "again.safetensors", "--resume-shards", tmp_path / "s"], capsys)
    assert code == 2 and "holds no live weights" in err and not (tmp_path / "s").exists()
    assert not (tmp_path / "again.safetensors").exists()


# ---------------------------------------------------------------- an interruption is told about by its own command


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_an_interrupted_command_says_what_it_leaves_not_what_train_does(command, capsys, monkeypatch, tmp_path):
    def stopped(args):
        raise cli.common.Terminated()

    monkeypatch.setattr(cli.COMMANDS[command], "run", stopped)
    monkeypatch.chdir(tmp_path)  # train's default --out, runs/train, holds a checkpoint: the advice is --resume
    save_checkpoint({"model.w": torch.ones(1)}, {"step": 1}, tmp_path / "runs" / "train" / "checkpoint.safetensors")
    argv = [command, *(["a.safetensors", "b.safetensors"] if command == "export" else [])]
    code, _, err = run(argv, capsys)
    assert code == 143 and err.startswith("interrupted (SIGTERM): nothing") and len(err.strip().splitlines()) == 1
    assert ("--resume" in err) == (command == "train") and "`train`" not in err, err


def test_train_overwrite_puts_the_earlier_run_back_when_the_new_one_writes_no_checkpoint(folder, run_dir, tmp_path,
                                                                                        capsys, monkeypatch):
    from pegasus_course import training

    out = copy_run(run_dir, tmp_path)
    before = _files(out)
    real = training.dsm_loss_given
    monkeypatch.setattr(training, "dsm_loss_given", lambda *a, **k: real(*a, **k) * float("nan"))
    code, text, err = run(train_args(folder, out, "--steps", "3", "--sample-every", "1",
                                     "--overwrite"), capsys)
    assert code == 3 and "no checkpoint was written" in err, err
    assert "this run wrote no checkpoint, so the earlier run's checkpoint.safetensors, losses.json, 1 file in " \
           "samples/ are back in" in text
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoint.safetensors", "losses.json", "samples"])  # no hidden folder, no lock, no preview of the new run
    monkeypatch.setattr(training, "dsm_loss_given", real)
    code, text, _ = run(train_args(folder, out, "--steps", "3", "--overwrite"), capsys)
    assert code == 0 and "--overwrite: removed the earlier run's checkpoint.safetensors" in text
    assert load_checkpoint(out / "checkpoint.safetensors").step == 3 and sorted(p.name for p in out.iterdir()) == \
        ["checkpoint.safetensors", "losses.json", "samples"]


def test_track_colour_that_would_record_nothing_is_refused(folder, tmp_path, capsys):
    out = tmp_path / "r"
    code, text, err = run(train_args(folder, out, "--steps", "2", "--track-colour"), capsys)  # --sample-every 1000
    assert code == 2 and "--track-colour records the colours every --sample-every 1000 steps" in err, err
    assert "lower --sample-every to 2 or less" in err and not out.exists() and "steps of batch" not in text
    code, _, _ = run(train_args(folder, out, "--steps", "2", "--track-colour", "--sample-every", "2"), capsys)
    history = json.loads((out / "colour.json").read_text())["history"]
    assert code == 0 and {h["step"] for h in history} == {2}


def test_files_a_killed_overwrite_run_set_aside_are_put_back(tmp_path):
    from pegasus_course.cli.outputs import ASIDE_PREFIX, recover_set_aside

    out = tmp_path / "run"
    aside = out / f"{ASIDE_PREFIX}abc"
    (aside / "samples").mkdir(parents=True)
    (aside / "checkpoint.safetensors").write_text("the earlier run's")
    (aside / "samples" / "step-0000002.png").write_text("its grid")
    (aside / "losses.json").write_text("set aside")
    (out / "losses.json").write_text("written by the killed run")  # written in its place: kept
    said = []
    recover_set_aside(out, said.append)
    assert (out / "checkpoint.safetensors").read_text() == "the earlier run's"
    assert (out / "samples" / "step-0000002.png").read_text() == "its grid"
    assert (out / "losses.json").read_text() == "written by the killed run" and not aside.exists()
    assert len(said) == 1 and "checkpoint.safetensors, 1 file in samples/ are back in" in said[0]


# ---------------------------------------------------------------- a fourth probe (after issue 32's fixes)


def test_resume_names_every_changed_setting_and_keeps_the_recorded_profile(folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    first = train_args(folder, out, "--steps", "2", "--grad-clip", "1", "--ema-decay", "0.9")
    assert run(first, capsys)[0] == 0
    legs = load_checkpoint(out / "checkpoint.safetensors").meta["legs"]
    assert legs[0]["grad_clip"] == 1 and legs[0]["ema_decay"] == 0.9
    monkeypatch.delenv("PEGASUS_PROFILE", raising=False)
    again = [a for a in train_args(folder, out, "--steps", "3", "--resume") if a not in ("--profile", "ci")]
    again[again.index("--num-scales"):again.index("--num-scales") + 2] = []
    code, text, err = run(again, capsys)
    assert code == 0, err
    assert "resuming with the profile" in text and "'ci'" in text  # its sizes, not the machine's default profile
    assert "grad_clip 1.0 -> None" in text and "ema_decay 0.9 -> 0.999" in text


def test_a_negative_guidance_scale_is_refused_where_parsed(run_dir, tmp_path, capsys):
    for argv in (["sample", "--class", "horse"], ["pegasus", "--auto", "--ends", "guidance"]):
        code, _, err = run([*argv, "--guidance-scale=-3", "--checkpoint", run_dir / "checkpoint.safetensors",
                            "--out", tmp_path / argv[0]], capsys)
        assert code == 2 and "a negative scale pushes away from the class" in err, err


def test_an_interrupted_first_run_does_not_advise_resume(folder, tmp_path, capsys, monkeypatch):
    from pegasus_course import data as data_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_mod, "load_dataset", interrupted)  # Ctrl-C while the images load
    code, _, err = run(train_args(folder, tmp_path / "new", "--steps", "2"), capsys)
    assert code == 130 and "--out holds no checkpoint: run the same command again" in err and "--resume" not in err


def test_the_doctor_is_not_healthy_when_a_verdict_could_not_be_judged():
    from pegasus_course.doctor import Report, Verdict

    def headline(*fired):
        report = Report.__new__(Report)
        report.verdicts = [Verdict(f"v{i}", f, "m", "t", "x") for i, f in enumerate(fired)]
        return report.headline

    assert headline(False, False) == "healthy: no verdict fired"
    assert headline(False, None).startswith("no verdict fired, but not every verdict could be judged")
    assert headline(True, None) == "1 verdict(s) fired: v0"


def test_the_library_expands_home_and_never_writes_what_it_could_not_read(tmp_path, monkeypatch):
    from pegasus_course import plotting

    monkeypatch.setenv("HOME", str(tmp_path))
    save_checkpoint({"model.w": torch.ones(2)}, {"step": 1}, "~/c.safetensors")
    assert load_checkpoint("~/c.safetensors").step == 1 and (tmp_path / "c.safetensors").is_file()
    assert plotting.save_grid(torch.rand(2, 3, 8, 8), "~/g.png") == tmp_path / "g.png"
    with pytest.raises(CheckpointError, match="would have malformed metadata: schedule.num_scales"):
        save_checkpoint({"model.w": torch.ones(2)}, {"schedule": {"sigma_max": 5.0, "sigma_min": 0.1,
                                                                  "num_scales": 10**8}}, tmp_path / "big.safetensors")
    assert not (tmp_path / "big.safetensors").exists()


@pytest.mark.parametrize("call,message", [
    (lambda: __import__("pegasus_course.batches", fromlist=["x"]).EpochBatches(10, 0, 0), "batch_size must be at least 1"),
    (lambda: __import__("pegasus_course.plotting", fromlist=["x"]).to_grid(torch.rand(2, 3, 8, 8), padding=-1),
     "padding"),
], ids=["EpochBatches batch 0", "to_grid padding -1"])
def test_sizes_are_checked_before_torch_sees_them(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_classifier_trained_clean_cannot_guide(run_dir, tmp_path, capsys):
    from pegasus_course.evaluation import DEFAULT_FEATURE_NET  # the judge: trained on clean images only

    code, _, err = run(["sample", "--class", "horse", "--classifier", DEFAULT_FEATURE_NET, "--checkpoint",
                        run_dir / "checkpoint.safetensors", "--n", "1", "--out", tmp_path / "s"], capsys)
    assert code == 2 and "trained on clean images only" in err and "cannot guide" in err, err
    assert not (tmp_path / "s").exists()


def test_more_levels_than_trained_are_refused(run_dir, tmp_path, capsys):
    for argv in (["sample", "--n", "1"], ["pegasus", "--seeds", "1", "2", "--n", "1"]):
        code, _, err = run([*argv, "--num-scales", "5", "--checkpoint", run_dir / "checkpoint.safetensors",
                            "--out", tmp_path / argv[0]], capsys)
        assert code == 2 and "--num-scales 5 is more than the 3 noise levels" in err, err


def test_an_image_past_pillows_bomb_warning_is_one_line_naming_it(tmp_path):
    from PIL import Image

    make_image_folder(tmp_path, classes=("horse", "bird"), per_class=2)
    big = tmp_path / "train" / "bird" / "huge.png"
    Image.new("1", (9500, 9500)).save(big)  # 90 M pixels: over Pillow's warning limit, under its error limit
    with pytest.raises(ValueError, match=r"huge.png is not a readable image \(it is too large to decode safely"):
        data.load_dataset("folder", tmp_path, image_size=32, use_cache=False)


def test_the_doctor_examines_the_data_a_run_records(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PEGASUS_DATA_ROOT", str(tmp_path / "nowhere"))  # the defaults would find nothing
    code, text, err = run(["doctor", run_dir / "checkpoint.safetensors", "--levels", "2", "--n-images", "4",
                           "--device", "cpu", "--out", tmp_path / "d"], capsys)
    assert "examining on the data" in text and "--dataset folder" in text, text + err
    assert code in (0, 1) and (tmp_path / "d" / "doctor.txt").is_file(), err
