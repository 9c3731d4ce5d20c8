"""The workflow layer: one set-up call for the notebooks, the fallbacks that train when nothing is shipped,
and the layering rule that nothing below the command line calls the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from conftest import REPO, make_image_folder
from pegasus_course import checkpoints, classifier, workflow

PACKAGE = REPO / "pegasus_course"


def _imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) for every `from X import name` in a source file (relative modules without dots)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out |= {((node.module or "").lstrip("."), a.name) for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {(a.name, "") for a in node.names}
    return out


def test_no_module_below_the_command_line_calls_it():
    # the command line is the package pegasus_course/cli; every module beside it must stay below it
    assert (PACKAGE / "cli" / "__init__.py").is_file()
    callers = [p.name for p in PACKAGE.glob("*.py")
               if any(m == "cli" or m.startswith("cli.") or (m == "" and n == "cli") for m, n in _imports(p))]
    assert callers == []


def test_profiles_import_nothing_from_training():
    assert not [m for m, _ in _imports(PACKAGE / "profiles.py") if m.endswith("training")]


def test_start_prints_the_profile_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv("PEGASUS_PROFILE", "ci")
    threads = torch.get_num_threads()
    try:
        profile, g = workflow.start(seed=5)
        assert profile.name == "ci" and "profile 'ci'" in capsys.readouterr().out
        assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(5)))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_model_choice_reads_the_environment(monkeypatch):
    monkeypatch.delenv(workflow.MODEL_ENV, raising=False)
    assert workflow.model_choice() == "shipped"
    monkeypatch.setenv(workflow.MODEL_ENV, "notebook-04")
    assert workflow.model_choice() == "notebook-04"
    assert workflow.model_choice("shipped") == "shipped"  # an argument wins
    monkeypatch.setenv(workflow.MODEL_ENV, "notebook-4")
    with pytest.raises(ValueError, match="shipped, notebook-04"):
        workflow.model_choice()


def test_notebook_04_model_missing_says_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "NOTEBOOK_RUN", tmp_path / "runs" / "notebook-04" / "checkpoint.safetensors")
    with pytest.raises(FileNotFoundError, match="run notebook 04 first"):
        workflow.load_or_train_model(which="notebook-04", device="cpu")


def test_training_images_keep_every_class(monkeypatch, tmp_path):
    from pegasus_course.profiles import get_profile

    root = make_image_folder(tmp_path / "data", classes=("horse", "bird"), per_class=6)
    monkeypatch.setenv("PEGASUS_DATA_SOURCE", "folder")
    monkeypatch.setenv("PEGASUS_DATA_ROOT", str(root))
    profile = get_profile("ci")
    ds = workflow.training_images(profile)
    assert sorted(torch.bincount(ds.labels).tolist()) == [6, 6]  # 12 images < the ci cut: all kept
    import dataclasses

    small = dataclasses.replace(profile, max_train_images=4)
    ds = workflow.training_images(small)
    assert torch.bincount(ds.labels).tolist() == [2, 2]


def test_fallbacks_train_when_nothing_is_shipped(monkeypatch, tmp_path, capsys):
    """Without shipped checkpoints, the model and the classifier are trained now (ci sizes), then reloaded."""
    import dataclasses

    from pegasus_course.profiles import get_profile

    root = make_image_folder(tmp_path / "data", classes=("horse", "bird"), per_class=8)
    make_image_folder(root, classes=("horse", "bird"), per_class=4, split="test")
    monkeypatch.setenv("PEGASUS_DATA_SOURCE", "folder")
    monkeypatch.setenv("PEGASUS_DATA_ROOT", str(root))
    monkeypatch.delenv(workflow.MODEL_ENV, raising=False)
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", tmp_path / "none.safetensors")
    monkeypatch.setattr(checkpoints, "NOTEBOOK_RUN", tmp_path / "runs" / "notebook-04" / "checkpoint.safetensors")
    monkeypatch.setattr(classifier, "DEFAULT_CLASSIFIER", tmp_path / "no-classifier.safetensors")
    monkeypatch.setattr(workflow, "CLASSIFIER_RUNS", tmp_path / "runs" / "notebook-07")
    profile = dataclasses.replace(get_profile("ci"), notebook_train_steps=3, classifier_steps=3, batch_size=4)
    model, ckpt, how = workflow.load_or_train_model(profile, device="cpu")
    assert "trained a small one now (3 steps" in how and ckpt.step == 3
    assert checkpoints.NOTEBOOK_RUN.is_file()
    model2, ckpt2, how2 = workflow.load_or_train_model(profile, device="cpu")  # second call: loads the run
    assert "notebook 04 trained" in how2
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    clf, how_clf = workflow.load_or_train_classifier("horse-bird", profile)
    assert "trained one now (3 steps)" in how_clf and clf.config.class_names == ("horse", "bird")
    assert (tmp_path / "runs" / "notebook-07" / "horse-bird.safetensors").is_file()
    with pytest.raises(ValueError, match="kind must be one of"):
        workflow.load_or_train_classifier("horse-or-bird", profile)


def test_setup_gives_the_sampling_notebooks_everything(monkeypatch, capsys):
    if not checkpoints.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("the shipped checkpoint is not in this checkout")
    monkeypatch.setenv("PEGASUS_PROFILE", "ci")
    monkeypatch.delenv(workflow.MODEL_ENV, raising=False)
    threads = torch.get_num_threads()
    try:
        course = workflow.setup(seed=0, classifiers=("horse-bird",))
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "loaded the shipped model" in out and "sampling with L = 12" in out
    assert course.schedule.num_scales == course.profile.num_scales == 12
    assert set(course.classifiers) == {"horse-bird"} and course.device.type in ("cpu", "cuda")
