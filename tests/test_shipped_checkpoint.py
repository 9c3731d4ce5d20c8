import pytest
import torch

from pegasus_course.checkpoints import DEFAULT_CHECKPOINT, load_score_model
from pegasus_course.generate import schedule_from_meta
from pegasus_course.nn import ScoreUNetConfig
from pegasus_course.sampling import annealed_langevin


def test_shipped_checkpoint_loads_and_samples():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    assert DEFAULT_CHECKPOINT.stat().st_size <= 15 * 2**20
    model, ckpt = load_score_model(DEFAULT_CHECKPOINT)
    assert model.config == ScoreUNetConfig.from_dict(ckpt.model_config)
    assert model.config.image_size == 32
    assert not ckpt.part("optim") and ckpt.step > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    sched = schedule_from_meta(ckpt.meta)
    assert (sched.sigma_max, sched.sigma_min, sched.num_scales) == (50.0, 0.01, 232)
    x = annealed_langevin(lambda x, s: model(x, s), (2, 3, 32, 32), sched.sigmas()[-3:], 1, 6.2e-6,
                          generator=torch.Generator().manual_seed(0), progress=False)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()


@pytest.mark.parametrize("kind", ["horse-bird", "ten-class"])
def test_shipped_classifiers_load_and_tell_horses_from_birds(kind, cifar_root):
    from pegasus_course.classifier import DEFAULT_CLASSIFIER, load_classifier
    from pegasus_course.data import load_dataset
    from pegasus_course.evaluation import DEFAULT_FEATURE_NET, horse_probability

    path = DEFAULT_CLASSIFIER if kind == "horse-bird" else DEFAULT_FEATURE_NET
    if not path.is_file():
        pytest.skip(f"no shipped {kind} classifier in this checkout")
    model, ckpt = load_classifier(path)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    names = ("horse", "bird") if kind == "horse-bird" else ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                             "frog", "horse", "ship", "truck")
    assert model.config.class_names == names and ckpt.meta["training"]["test_accuracy_clean"] > 0.6
    test = load_dataset("folder", cifar_root, split="test", classes=("horse", "bird"), train=False)
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:300]
    p_horse = horse_probability(model, test.images[pick])
    accuracy = float(((p_horse > 0.5) == (test.labels[pick] == 0)).float().mean())
    assert accuracy > 0.8, f"the shipped {kind} classifier tells horse from bird in only {accuracy:.0%} of test images"


def test_shipped_checkpoint_is_described_where_learners_look():
    """The JSON beside the weights, checkpoints/README.md and the notebooks that load it name its step."""
    import json

    from pegasus_course.checkpoints import LIVE_CHECKPOINT, load_checkpoint

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    readable = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    assert readable["step"] == ckpt.step and readable["model_config"] == ckpt.model_config
    assert len(ckpt.losses) == ckpt.step, "the loss of every step ships with the weights"
    assert f"{ckpt.step:,}" in (DEFAULT_CHECKPOINT.parent / "README.md").read_text()
    if LIVE_CHECKPOINT.is_file():
        live = load_checkpoint(LIVE_CHECKPOINT)
        assert live.step == ckpt.step and live.part("model") and not live.part("ema")
        assert LIVE_CHECKPOINT.stat().st_size <= 9 * 2**20
    notebooks = DEFAULT_CHECKPOINT.parent.parent / "notebooks"
    for name in ("05_sampling", "06_pegasus", "07_beyond_the_paper"):
        text = (notebooks / f"{name}.ipynb").read_text()
        assert f"{ckpt.step:,} training steps" in text, f"{name}'s committed outputs come from another model"
