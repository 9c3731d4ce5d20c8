import subprocess
import sys

import pytest
import torch

from pegasus_course import cli
from pegasus_course.checkpoints import load_checkpoint
from tests.conftest import make_image_folder


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_is_complete():
    for sub in ("", "train", "sample", "pegasus", "export", "train-classifier"):
        res = subprocess.run([sys.executable, "-m", "pegasus_course.cli", *([sub] if sub else []), "--help"],
                             capture_output=True, text=True)
        assert res.returncode == 0 and "usage: pegasus-course" in res.stdout
    text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--dataset", "--image-size", "--data-root", "--profile", "--steps", "--epochs", "--batch-size",
                 "--out", "--resume", "--seed", "--compile", "--max-minutes"):
        assert flag in text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    root = make_image_folder(tmp / "data", classes=("horse", "bird"), per_class=10)
    out = tmp / "run"
    code = cli.main(["train", "--dataset", "folder", "--data-root", str(root), "--profile", "ci", "--steps", "4",
                     "--batch-size", "4", "--num-scales", "3", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_writes_what_it_reports(trained, capsys):
    ckpt = load_checkpoint(trained / "checkpoint.safetensors")
    assert ckpt.step == 4 and ckpt.meta["schedule"]["num_scales"] == 3 and ckpt.part("optim")
    assert (trained / "losses.json").is_file() and list((trained / "samples").glob("*.png"))


def test_train_resume_continues(trained, capsys, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    code, out, _ = run(["train", "--dataset", "folder", "--data-root", str(trained.parent / "data"), "--profile", "ci",
                        "--steps", "6", "--batch-size", "4", "--num-scales", "3", "--out", str(run_dir), "--resume",
                        "--no-progress"], capsys)
    assert code == 0 and "resumed from" in out and "at step 4" in out
    assert load_checkpoint(run_dir / "checkpoint.safetensors").step == 6


def test_sample_and_pegasus_write_reported_files(trained, capsys, tmp_path):
    ck = str(trained / "checkpoint.safetensors")
    code, out, _ = run(["sample", "--checkpoint", ck, "--n", "3", "--steps-each", "1", "--device", "cpu",
                        "--out", str(tmp_path / "s")], capsys)
    assert code == 0 and str(tmp_path / "s" / "grid.png") in out
    assert (tmp_path / "s" / "grid.png").is_file() and len(list((tmp_path / "s" / "images").glob("*.png"))) == 3
    code, out, _ = run(["pegasus", "--checkpoint", ck, "--seeds", "1", "2", "--n", "3", "--steps-each", "1",
                        "--device", "cpu", "--out", str(tmp_path / "p")], capsys)
    assert code == 0 and str(tmp_path / "p" / "rows.png") in out and (tmp_path / "p" / "pegasus.png").is_file()
    code, out, _ = run(["export", ck, str(tmp_path / "e.safetensors"), "--resume-shards", str(tmp_path / "r")], capsys)
    e = load_checkpoint(tmp_path / "e.safetensors")
    assert code == 0 and not e.part("optim") and not e.part("model")
    assert all(v.dtype == torch.float16 for k, v in e.part("ema").items() if v.is_floating_point())
    assert load_checkpoint(tmp_path / "r").part("model")


def test_bad_checkpoint_paths_give_clear_errors(capsys, tmp_path):
    code, _, err = run(["sample", "--checkpoint", str(tmp_path / "missing.safetensors")], capsys)
    assert code == 2 and "No checkpoint at" in err
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    code, _, err = run(["pegasus", "--checkpoint", str(tmp_path / "junk.safetensors"), "--seeds", "1", "2"], capsys)
    assert code == 2 and "truncated or not a safetensors file" in err


def test_unknown_profile_is_reported(capsys, tmp_path):
    code, _, err = run(["train", "--profile", "tpu", "--out", str(tmp_path)], capsys)
    assert code == 2 and "Valid profiles" in err


def test_train_classifier_and_pegasus_ends(trained, capsys, tmp_path):
    data = trained.parent / "data"
    make_image_folder(data, classes=("horse", "bird"), per_class=4, split="test")
    clf = tmp_path / "clf.safetensors"
    code, out, _ = run(["train-classifier", "--dataset", "folder", "--data-root", str(data), "--profile", "ci",
                        "--steps", "3", "--batch-size", "8", "--out", str(clf), "--no-progress"], capsys)
    assert code == 0 and "held-out accuracy on 8 clean test images" in out and str(clf) in out
    from pegasus_course.classifier import load_classifier

    model, ckpt = load_classifier(clf)
    assert model.config.class_names == ("horse", "bird") and ckpt.meta["training"]["steps"] == 3
    ck = str(trained / "checkpoint.safetensors")
    common = ["pegasus", "--checkpoint", ck, "--n", "2", "--steps-each", "1", "--device", "cpu", "--pairs", "1",
              "--classifier", str(clf)]
    code, out, _ = run(common + ["--ends", "guidance", "--out", str(tmp_path / "g")], capsys)
    assert code == 0 and "--ends guidance" in out and (tmp_path / "g" / "rows.png").is_file()
    code, out, _ = run(common[:-2] + ["--ends", "random", "--out", str(tmp_path / "r")], capsys)  # no classifier
    assert code == 0 and "seeded random pairs" in out
    code, out, err = run(common + ["--ends", "selection", "--candidates", "6", "--out", str(tmp_path / "s")], capsys)
    if code == 0:  # the six candidates held both classes: the chosen seeds are printed and the row is written
        assert "sampling 6 candidates" in out and "horse seed" in out and (tmp_path / "s" / "rows.png").is_file()
    else:  # they did not: the message says what to do
        assert code == 2 and "Sample more candidates" in err
    code, out, _ = run(["sample", "--checkpoint", ck, "--n", "2", "--steps-each", "1", "--device", "cpu",
                        "--class", "bird", "--classifier", str(clf), "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "guidance towards 'bird'" in out
    code, _, err = run(["sample", "--checkpoint", ck, "--n", "1", "--class", "zebra", "--classifier", str(clf),
                        "--out", str(tmp_path / "z")], capsys)
    assert code == 2 and "not 'zebra'" in err
