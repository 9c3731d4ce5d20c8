import pytest
import torch
import torch.nn as tnn

from pegasus_course import sigmas as sig
from pegasus_course.checkpoints import CheckpointError, load_score_model, save_checkpoint
from pegasus_course.classifier import (
    ClassifierConfig,
    NoisyClassifier,
    accuracy,
    class_log_prob_grad,
    guided_score_fn,
    load_classifier,
    predict_proba,
    save_classifier,
    select_pairs,
    train_classifier,
)
from pegasus_course.generate import interpolant_targets
from pegasus_course.sampling import annealed_langevin
from pegasus_course.toy import GaussianMixture


class _Config:
    class_names = ("horse", "bird")
    num_classes = 2


class ConstantClassifier(tnn.Module):
    """Logits that ignore the image (a classifier that has learnt nothing about x)."""

    config = _Config()

    def __init__(self):
        super().__init__()
        self.bias = tnn.Parameter(torch.tensor([0.3, -1.2]))

    def forward(self, x, sigma):
        return self.bias.expand(x.shape[0], 2) + 0 * sigma[:, None]


MEANS = torch.tensor([[-4.0, 0.0], [4.0, 0.0]])


class ExactLinearClassifier(tnn.Module):
    """p(component | x, sigma) of the toy mixture below: with equal weights and equal variances
    1 + sigma^2, the log-odds are linear in x, (mu_1 - mu_0) . x / (1 + sigma^2)."""

    config = _Config()

    def forward(self, x, sigma):
        var = 1.0 + sigma**2
        logit1 = (x @ (MEANS[1] - MEANS[0])) / var
        return torch.stack([torch.zeros_like(logit1), logit1], dim=1)


def toy_mixture():
    return GaussianMixture(torch.tensor([0.5, 0.5]), MEANS.clone(), torch.tensor([1.0, 1.0]))


def test_guidance_with_an_input_blind_classifier_leaves_the_score_unchanged():
    gm = toy_mixture()
    x = torch.randn(6, 2)
    s = torch.full((6,), 0.7)
    guided = guided_score_fn(gm.score, ConstantClassifier(), torch.tensor([0, 1, 0, 1, 0, 1]), scale=5.0)
    assert torch.equal(guided(x, s), gm.score(x, s))
    assert torch.equal(class_log_prob_grad(ConstantClassifier(), x, s, torch.eye(2)[[0] * 6]), torch.zeros_like(x))


def test_guided_score_is_the_class_conditional_score():
    # Bayes: grad log p(x) + grad log p(y | x) = grad log p(x | y), the score of component y alone.
    gm = toy_mixture()
    x = torch.randn(8, 2) * 3
    sigma = torch.full((8,), 0.5)
    var = 1.0 + 0.25
    for y in (0, 1):
        guided = guided_score_fn(gm.score, ExactLinearClassifier(), torch.full((8,), y), scale=1.0)
        expected = -(x - MEANS[y]) / var
        assert torch.allclose(guided(x, sigma), expected, atol=1e-5)
    # scale 0 is the unconditional score
    assert torch.equal(guided_score_fn(gm.score, ExactLinearClassifier(), torch.zeros(8), 0.0)(x, sigma),
                       gm.score(x, sigma))


@pytest.mark.parametrize("target", [0, 1])
def test_guided_annealed_langevin_moves_samples_to_the_requested_class(target):
    gm = toy_mixture()
    sigmas = sig.geometric_sigmas(10.0, 0.1, 20)
    eps = sig.langevin_step_size(sigmas, 10)
    g = torch.Generator().manual_seed(3)
    plain = annealed_langevin(gm.score, (400, 2), sigmas, 10, eps, generator=g, progress=False)
    share_plain = float((plain[:, 0] > 0).float().mean())
    assert 0.35 < share_plain < 0.65  # both modes
    g = torch.Generator().manual_seed(3)
    guided = annealed_langevin(guided_score_fn(gm.score, ExactLinearClassifier(), torch.full((400,), target), 1.0),
                               (400, 2), sigmas, 10, eps, generator=g, progress=False)
    share = float((guided[:, 0] > 0).float().mean())
    assert (share > 0.97) if target == 1 else (share < 0.03)


def test_select_pairs_takes_the_most_confident_horse_and_bird():
    probs = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.95, 0.05], [0.3, 0.7], [0.2, 0.8]])  # horse, bird
    assert select_pairs(probs, ("horse", "bird")) == [(2, 1)]
    assert select_pairs(probs, ("horse", "bird"), n_pairs=3) == [(2, 1), (0, 4), (2, 3)]
    # class order in the classifier does not matter
    assert select_pairs(probs.flip(1), ("bird", "horse")) == [(2, 1)]


def test_select_pairs_says_what_to_do_without_a_bird():
    probs = torch.tensor([[0.6, 0.4], [0.9, 0.1]])
    with pytest.raises(ValueError, match=r"None of the 2 candidate samples is classified as bird.*guidance"):
        select_pairs(probs, ("horse", "bird"))
    with pytest.raises(ValueError, match="not 'zebra'"):
        select_pairs(probs, ("horse", "bird"), first="zebra")


def test_interpolant_targets_follow_eq4_weights():
    w = interpolant_targets(range(7), 5, num_pairs=2, first=0, second=1, num_classes=3)
    assert w.shape == (14, 3)
    assert torch.allclose(w[0], torch.tensor([1.0, 0, 0])) and torch.allclose(w[6], torch.tensor([0, 1.0, 0]), atol=1e-7)
    assert torch.allclose(w.sum(1), torch.ones(14)) and torch.equal(w[:7], w[7:])
    assert torch.allclose(w[3], torch.tensor([0.5, 0.5, 0.0]))  # the middle of the row asks for both alike


def tiny_classifier(size=16, names=("horse", "bird")):
    torch.manual_seed(0)
    return NoisyClassifier(ClassifierConfig(image_size=size, class_names=names, base_channels=8, emb_dim=16))


def test_classifier_shapes_and_clear_errors():
    clf = tiny_classifier()
    x = torch.rand(5, 3, 16, 16)
    assert clf(x, torch.full((5,), 0.3)).shape == (5, 2)
    assert clf.features(x, torch.full((5,), 0.3)).shape == (5, clf.feature_dim)
    with pytest.raises(ValueError, match="expects images of shape"):
        clf(torch.rand(5, 3, 32, 32), torch.ones(5))
    with pytest.raises(ValueError, match="one value per image"):
        clf(x, torch.ones(3))
    with pytest.raises(ValueError, match="at least two classes"):
        ClassifierConfig(class_names=("horse",))


def test_training_separates_dark_from_bright_images():
    g = torch.Generator().manual_seed(0)
    dark = (torch.rand(64, 3, 16, 16, generator=g) * 100).to(torch.uint8)
    bright = (155 + torch.rand(64, 3, 16, 16, generator=g) * 100).to(torch.uint8)
    images, labels = torch.cat([dark, bright]), torch.tensor([0] * 64 + [1] * 64)
    clf = tiny_classifier()
    assert accuracy(clf, images, labels) < 0.9  # untrained
    run = train_classifier(clf, images, labels, sig.geometric_sigmas(1.0, 0.01, 5), steps=60, batch_size=32,
                           lr=3e-3, progress=False)
    assert len(run.losses) == 60 and sum(run.losses[-10:]) < sum(run.losses[:10])
    assert accuracy(clf, images, labels) == 1.0
    assert clf.clean_sigma == pytest.approx(0.01)


def test_classifier_checkpoint_round_trip_and_kind_checks(tmp_path):
    clf = tiny_classifier(names=("cat", "dog", "horse"))
    clf.clean_sigma = 0.02
    path = save_classifier(clf, tmp_path / "clf.safetensors", {"note": "test"})
    loaded, ckpt = load_classifier(path)
    x = torch.rand(4, 3, 16, 16)
    assert loaded.config == clf.config and loaded.clean_sigma == 0.02 and ckpt.meta["note"] == "test"
    assert torch.allclose(predict_proba(loaded, x), predict_proba(clf, x))
    with pytest.raises(CheckpointError, match="not a score network"):
        load_score_model(path)
    save_checkpoint({"model.w": torch.zeros(1)}, {"model_config": {}}, tmp_path / "score.safetensors")
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_classifier(tmp_path / "score.safetensors")
