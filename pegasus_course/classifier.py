"""A noise-conditional classifier p(y | x, sigma), and what it buys: chosen ends and classifier guidance.

The paper's first limitation: both ends of an interpolation are random samples, so a row
is often horse-to-horse or bird-to-bird. A classifier that knows the noise level fixes it
two ways:

* **selection** - sample a batch, classify the clean samples, and take the most confident
  horse and the most confident bird as the two ends (:func:`select_pairs`);
* **classifier guidance** (Song et al. 2021, sec. 5; Dhariwal & Nichol 2021) - Bayes' rule
  gives the score of the class-conditional density,
  grad log p_sigma(x | y) = grad log p_sigma(x) + grad log p(y | x, sigma),
  so adding ``scale * grad log p(y | x, sigma)`` to the network's score samples a requested
  class (:func:`guided_score_fn`). ``scale`` > 1 sharpens p(y | x)^scale: more typical, less varied.

The classifier reuses the score U-Net's parts (Fourier embedding of sigma, ResBlocks with
InstanceNorm++); with a single noise level it is a plain image classifier, which is how the
course builds the fixed ten-class network whose features measure sample quality
(:mod:`pegasus_course.evaluation`).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as tnn
import torch.nn.functional as F

from .checkpoints import DEFAULT_CHECKPOINT, register_config
from .nn import FourierEmbedding, InstanceNormPlusPlus, ResBlock
from .sampling import ScoreFn

KIND = "noise-conditional-classifier"
CHECKPOINT_DIR = DEFAULT_CHECKPOINT.parent
DEFAULT_CLASSIFIER = CHECKPOINT_DIR / "cifar10-horse-bird-classifier-32.safetensors"
DEFAULT_FEATURE_NET = CHECKPOINT_DIR / "cifar10-ten-class-32.safetensors"  # the ten-class judge (evaluation)


@dataclass(frozen=True)
class ClassifierConfig:
    """Sizes of a :class:`NoisyClassifier`; plain values only, so it round-trips through JSON."""

    image_size: int = 32
    in_channels: int = 3
    class_names: tuple[str, ...] = ("horse", "bird")
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    emb_dim: int = 128
    fourier_dim: int = 64
    fourier_scale: float = 16.0
    sigma_data: float = 0.5  # inputs are scaled by 1 / sqrt(sigma_data^2 + sigma^2)

    def __post_init__(self):
        import numbers

        from .checks import check_class_names

        object.__setattr__(self, "class_names", check_class_names(self.class_names, "ClassifierConfig"))
        mults = tuple(self.channel_mults)
        if any(isinstance(m, bool) or not isinstance(m, numbers.Integral) for m in mults):
            raise ValueError(f"ClassifierConfig: channel_mults must be positive whole numbers, got {mults}.")
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in mults))
        if len(self.class_names) < 2:
            raise ValueError(f"A classifier needs at least two classes, got {list(self.class_names)}: name two or more "
                             "(--classes horse bird).")
        for name in ("image_size", "in_channels", "base_channels", "emb_dim", "fourier_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ClassifierConfig: {name} must be a positive whole number, got {v!r}.")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"ClassifierConfig: channel_mults must be positive whole numbers, got {self.channel_mults}.")
        for name in ("fourier_scale", "sigma_data"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"ClassifierConfig: {name} must be a positive finite number, got {v!r}.")
        levels = len(self.channel_mults)
        if self.image_size % (2 ** (levels + 1)) != 0:
            raise ValueError(f"image_size={self.image_size} is not divisible by 2^{levels + 1}: {levels} poolings "
                             "must leave at least 2x2 pixels for InstanceNorm++.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["channel_mults"] = list(self.channel_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


register_config("classifier_config", ClassifierConfig.from_dict)  # checked whenever a checkpoint is read

class NoisyClassifier(tnn.Module):
    """logits(x, sigma): which class a noisy image x = x_clean + sigma z shows.

    conv_in -> [ResBlock -> 2x2 average pooling] per level -> InstanceNorm++, ELU, spatial mean
    (the *features*) -> linear head. sigma enters every ResBlock through the Fourier embedding,
    and the input is rescaled so that its variance stays near 1 at every noise level.
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = c = config
        chs = [c.base_channels * m for m in c.channel_mults]
        self.embed = FourierEmbedding(c.emb_dim, c.fourier_dim, c.fourier_scale)
        self.conv_in = tnn.Conv2d(c.in_channels, c.base_channels, 3, padding=1)
        blocks, prev = [], c.base_channels
        for ch in chs:
            blocks.append(ResBlock(prev, ch, c.emb_dim))
            prev = ch
        self.blocks = tnn.ModuleList(blocks)
        self.norm_out = InstanceNormPlusPlus(prev)
        self.head = tnn.Linear(prev, c.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The pooled activations before the head, (B, feature_dim)."""
        b = x.shape[0]
        if x.shape[1:] != (self.config.in_channels, self.config.image_size, self.config.image_size):
            raise ValueError(
                f"The classifier expects images of shape (B, {self.config.in_channels}, {self.config.image_size}, "
                f"{self.config.image_size}), got {tuple(x.shape)}."
            )
        if sigma.shape != (b,):
            raise ValueError(f"sigma must hold one value per image, shape ({b},), got {tuple(sigma.shape)}.")
        scale = torch.rsqrt(self.config.sigma_data**2 + sigma.float() ** 2)[:, None, None, None]
        emb = self.embed(sigma)
        h = self.conv_in((x - 0.5) * scale)
        for block in self.blocks:
            h = F.avg_pool2d(block(h, emb), 2)
        return F.elu(self.norm_out(h)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x, sigma))  # (B, num_classes)


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or other integer, 0-255) images to float in [0, 1]; float images pass through as float32."""
    if images.is_floating_point():
        return images.float()
    if images.dtype != torch.uint8 and images.numel() and not 0 <= int(images.min()) <= int(images.max()) <= 255:
        raise ValueError(f"as_float_images: integer images hold 0-255, got values {int(images.min())} to "
                         f"{int(images.max())}: scale them to 0-255 first.")
    return images.float() / 255.0


def check_clean_images(images: torch.Tensor, model: tnn.Module, where: str, in_unit_range: bool = True) -> None:
    """Images for a classifier: uint8, or floats of the classifier's shape, in [0, 1] when ``in_unit_range``
    (clean images; noisy ones leave that range)."""
    from .checks import check_image_batch, check_unit_images

    c = getattr(model, "config", None)
    channels, size = getattr(c, "in_channels", 3), getattr(c, "image_size", None)
    if torch.is_tensor(images) and images.dtype == torch.uint8:
        check_image_batch(images.float(), where, channels, size)
    elif in_unit_range:
        check_unit_images(images, where, channels, size)
    else:
        check_image_batch(images, where, channels, size)


def sigma_vector(sigma: float | torch.Tensor, batch: int, device: torch.device | str) -> torch.Tensor:
    """A (batch,) tensor of one noise level (or ``sigma`` itself if it already is one)."""
    if not (torch.is_tensor(sigma) and sigma.ndim):
        from .checks import check_sigma

        check_sigma(sigma, "sigma_vector", allow_zero=True)
    s = torch.as_tensor(sigma, dtype=torch.float32, device=device)
    return s.expand(batch).contiguous() if s.ndim == 0 else s


def noisy_classification_loss(model: tnn.Module, x: torch.Tensor, labels: torch.Tensor, sigmas: torch.Tensor,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy of the labels given x + sigma z, one sigma drawn uniformly from ``sigmas`` per image."""
    from .checks import check_labels

    labels = check_labels(labels, x.shape[0], "noisy_classification_loss")
    if sigmas.numel() == 0:
        raise ValueError("noisy_classification_loss: the schedule is empty: pass at least one noise level.")
    idx = torch.randint(0, sigmas.numel(), (x.shape[0],), device=x.device, generator=generator)
    sigma = sigmas.to(x.device)[idx]
    z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    return F.cross_entropy(model(x + sigma[:, None, None, None] * z, sigma), labels)


@dataclass
class ClassifierRun:
    """What :func:`train_classifier` returns: the loss per step and the wall time."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0


def train_classifier(model: tnn.Module, images: torch.Tensor, labels: torch.Tensor, sigmas: torch.Tensor, *,
                     steps: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                     progress: bool = True) -> ClassifierRun:
    """Train ``model`` on uint8 ``images`` (N, 3, H, W) with random flips and noise levels from ``sigmas``.

    Adam with a cosine-decayed learning rate; data order, flips, levels and noise are seeded
    by (seed, step), as in :func:`pegasus_course.training.train`.
    """
    import time

    from .sampling import progress_bar
    from .batches import EpochBatches, make_generator

    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}.")
    from .checks import check_class_labels, check_number, check_positive_int, check_seed, check_sigmas

    labels = check_class_labels(labels, images.shape[0], model.config.class_names, "train_classifier")
    if check_sigmas(sigmas, "train_classifier").numel() == 0:
        raise ValueError("train_classifier: the schedule is empty: pass at least one noise level.")
    steps = check_positive_int(steps, "train_classifier: steps")
    lr = check_number(lr, "train_classifier: lr (the learning rate)", positive=True)
    seed = check_seed(seed, "train_classifier")
    if check_positive_int(batch_size, "train_classifier: batch_size") > images.shape[0]:
        raise ValueError(f"train_classifier: a batch of {batch_size} needs at least as many images, and there are "
                         f"{images.shape[0]}: lower the batch size (--batch-size) to {images.shape[0]} or less.")
    device = next(model.parameters()).device
    data, targets, sigmas = images.to(device), labels.long().to(device), torch.as_tensor(sigmas).float().to(device)
    batches = EpochBatches(data.shape[0], batch_size, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t / steps, 1.0))))
    gen = make_generator(seed, device)
    run = ClassifierRun()
    model.train()
    t0 = time.perf_counter()
    bar = progress_bar(range(steps), progress=progress, desc="classifier", unit="step", dynamic_ncols=True)
    for step in bar:
        idx = batches(step).to(device)
        gen.manual_seed((seed * 1_000_003 + step) % 2**64)
        x = data[idx].float().div_(255.0)
        flips = (torch.rand(idx.numel(), device=device, generator=gen) < 0.5)[:, None, None, None]
        x = torch.where(flips, x.flip(-1), x)
        loss = noisy_classification_loss(model, x, targets[idx], sigmas, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run.losses.append(loss.item())
        if not math.isfinite(run.losses[-1]):
            raise FloatingPointError(f"The classifier's loss became {run.losses[-1]} at step {step + 1}: training "
                                     "stopped and nothing was written. Lower --lr.")
        if step % 25 == 0:
            bar.set_postfix(loss=f"{sum(run.losses[-25:]) / len(run.losses[-25:]):.3f}")
    run.seconds = time.perf_counter() - t0
    model.clean_sigma = float(sigmas.min())
    run.images_per_second = steps * batches.batch_size / max(run.seconds, 1e-9)
    model.eval()
    return run


@torch.no_grad()
def predict_proba(model: tnn.Module, images: torch.Tensor, sigma: float | torch.Tensor = 0.0,
                  batch_size: int = 512, log: bool = False) -> torch.Tensor:
    """Class probabilities (N, K) of float images in [0, 1] (or uint8) at noise level ``sigma``; with ``log``
    their logarithms (log-softmax of the logits: no underflow to 0, differences are the logits' differences).

    ``sigma`` 0 (clean images) is replaced by the classifier's smallest trained level if its
    checkpoint recorded one; a noise level of 0.01 is invisible at 8 bits anyway.
    """
    from .checks import check_positive_int, check_sigma, check_sigmas

    device = next(model.parameters()).device
    per_image = torch.is_tensor(sigma) and sigma.ndim == 1
    if per_image:  # one positive level per image
        if tuple(sigma.shape) != (len(images),):
            raise ValueError(f"predict_proba: sigma as a tensor holds one level per image, shape ({len(images)},), got "
                             f"{tuple(sigma.shape)}; pass a float for one level.")
        check_sigmas(sigma, "predict_proba")
    else:
        sigma = check_sigma(sigma, "predict_proba", allow_zero=True)
    batch_size = check_positive_int(batch_size, "predict_proba: batch_size")
    noisy = per_image or sigma > 0
    check_clean_images(images, model, "predict_proba", in_unit_range=not noisy)
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = as_float_images(images[start:start + batch_size]).to(device)
        if torch.is_tensor(sigma) and sigma.ndim == 1:  # one level per image
            s = sigma[start:start + batch_size].to(device)
        else:
            s = sigma_vector(max(float(sigma), clean_sigma(model)), x.shape[0], device)
        logits = model(x, s).float()
        out.append((logits.log_softmax(-1) if log else logits.softmax(-1)).cpu())
    return torch.cat(out)


def clean_sigma(model: tnn.Module) -> float:
    """The noise level that stands for 'clean' for this classifier (its smallest trained level)."""
    return float(getattr(model, "clean_sigma", 0.01))


@torch.no_grad()
def accuracy(model: tnn.Module, images: torch.Tensor, labels: torch.Tensor, sigma: float = 0.0,
             generator: torch.Generator | None = None) -> float:
    """Share of images classified correctly after adding N(0, sigma^2) noise (sigma 0: clean)."""
    from .checks import check_class_labels, check_sigma

    sigma = check_sigma(sigma, "accuracy", allow_zero=True)
    labels = check_class_labels(labels, images.shape[0], model.config.class_names, "accuracy")
    x = as_float_images(images)
    if sigma > 0:
        x = x + sigma * torch.randn(x.shape, generator=generator)
    probs = predict_proba(model, x, sigma)
    return float((probs.argmax(1) == labels.long().cpu()).float().mean())


def class_position(class_names: Sequence[str], name: str) -> int:
    """Where ``name`` stands in ``class_names``, or a ValueError listing the classes known."""
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of names such as {class_names.split()}, not the string "
                        f"{class_names!r}.")
    names = list(class_names)
    if name not in names:
        raise ValueError(f"The classifier knows the classes {names}, not {name!r}.")
    return names.index(name)


def class_index(model: tnn.Module, name: str) -> int:
    """The output index of class ``name`` in a classifier."""
    return class_position(model.config.class_names, name)


def class_log_prob_grad(classifier: tnn.Module, x: torch.Tensor, sigma: torch.Tensor,
                        weights: torch.Tensor) -> torch.Tensor:
    """grad_x of sum_y weights[b, y] log p(y | x_b, sigma_b), per image: (B, ...) like x.

    One-hot ``weights`` give grad_x log p(y | x, sigma) for the requested class; soft weights
    give the gradient of a mixed target (used between the two ends of a guided pegasus row).
    A classifier whose output does not depend on x gives zeros.
    """
    with torch.enable_grad():
        xg = x.detach().float().requires_grad_(True)
        log_p = classifier(xg, sigma).float().log_softmax(-1)  # (B, K)
        objective = (weights.to(log_p) * log_p).sum()
        (grad,) = torch.autograd.grad(objective, xg, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.to(x.dtype)


def target_weights(targets: torch.Tensor | Sequence[int], num_classes: int) -> torch.Tensor:
    """(B, K) weights from class indices (B,) (one-hot) or pass (B, K) weights through."""
    t = torch.as_tensor(targets)
    if t.ndim == 1:
        whole = not t.is_floating_point() or bool((t == t.round()).all())  # NaN is not
        if not whole or (t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes)):
            raise ValueError(f"targets as class indices must be whole numbers 0..{num_classes - 1}, got "
                             f"{t.tolist()[:8]}: use classifier.class_index(model, name) for a class name.")
        return F.one_hot(t.long(), num_classes).float()
    if t.ndim == 2 and t.shape[1] == num_classes:
        return t.float()
    raise ValueError(f"targets must be class indices (B,) or weights (B, {num_classes}), got {tuple(t.shape)}.")


def guided_score_fn(score_fn: ScoreFn, classifier: tnn.Module, targets: torch.Tensor | Sequence[int],
                    scale: float) -> ScoreFn:
    """Classifier guidance: s(x, sigma) + scale * grad_x log p(y | x, sigma) for each image's target y.

    Args:
        score_fn: the unconditional score (x, sigma) -> tensor.
        classifier: a noise-conditional classifier, (x, sigma) -> logits.
        targets: class index per image (B,), or class weights (B, K) for a soft target.
        scale: guidance scale; 0 gives ``score_fn`` back unchanged, 1 is Bayes' rule exactly.
    """
    from .checks import check_number

    k = classifier.config.num_classes if hasattr(classifier, "config") else None
    weights = target_weights(targets, k) if k is not None else torch.as_tensor(targets).float()
    scale = check_number(scale, "guided_score_fn: scale (the guidance scale)", hint="3 is the course's default.")

    def guided(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        score = score_fn(x, sigma)
        if scale == 0.0:
            return score
        if weights.shape[0] != x.shape[0]:
            raise ValueError(f"Guidance targets are given for {weights.shape[0]} images, the batch has {x.shape[0]}.")
        return score + scale * class_log_prob_grad(classifier, x, sigma, weights.to(x.device))

    return guided


def select_pairs(probs: torch.Tensor, class_names: Sequence[str], n_pairs: int = 1, first: str = "horse",
                 second: str = "bird") -> list[tuple[int, int]]:
    """Pick ends for ``n_pairs`` rows from a classified batch: the most confident ``first`` and ``second``.

    Args:
        probs: (B, K) class probabilities of the candidate samples.
        class_names: the K class names, in the classifier's order.
    Returns:
        ``[(i_first, i_second), ...]``: indices into the batch, most confident pair first; when the batch
        holds fewer candidates of a class than ``n_pairs``, its best ones are reused.
    Raises:
        ValueError: when no candidate is classified as ``first`` or none as ``second``, saying what to do.
    """
    from .checks import check_positive_int, check_probabilities

    a, b = class_position(class_names, first), class_position(class_names, second)
    names = list(class_names)
    check_probabilities(probs, "select_pairs", names)
    n_pairs = check_positive_int(n_pairs, "select_pairs: n_pairs")
    if a == b:
        raise ValueError(f"select_pairs: first and second are both {first!r}: a pegasus row joins two classes, e.g. "
                         "first='horse', second='bird'.")
    predicted = probs.argmax(1)
    ranked = {}
    for name, c in ((first, a), (second, b)):
        members = torch.nonzero(predicted == c).flatten()
        if members.numel() == 0:
            counts = {names[j]: int((predicted == j).sum()) for j in range(len(names))}
            raise ValueError(
                f"None of the {probs.shape[0]} candidate samples is classified as {name} (counts: {counts}). "
                "Sample more candidates, or ask for the class with classifier guidance."
            )
        order = probs[members, c].argsort(descending=True)
        ranked[name] = members[order].tolist()
    firsts, seconds = ranked[first], ranked[second]
    return [(firsts[i % len(firsts)], seconds[i % len(seconds)]) for i in range(n_pairs)]


def choose_horse_and_bird(model: NoisyClassifier, samples: torch.Tensor, seeds: Sequence[int]
                          ) -> tuple[int, int, str]:
    """The seeds of the most confident horse and the most confident bird of a sampled batch, and a sentence.

    The ends a notebook's row and explorer start from. When the batch holds no sample classified as one of
    the two, the sentence says so and the seed with the highest probability of that class is used instead.
    """
    from .checks import check_seeds

    seeds = check_seeds(seeds, "choose_horse_and_bird")
    if len(seeds) != samples.shape[0]:
        raise ValueError(f"Got {samples.shape[0]} samples but {len(seeds)} seeds: pass one seed per sample.")
    probs = predict_proba(model, samples)
    h, b = class_index(model, "horse"), class_index(model, "bird")
    try:
        ((i, j),) = select_pairs(probs, model.config.class_names, 1, "horse", "bird")
        how = "chosen by the horse/bird classifier: the most confident horse and the most confident bird"
    except ValueError as err:
        i, j = int(probs[:, h].argmax()), int(probs[:, b].argmax())
        how = f"{err} Using the most horse-like and the most bird-like sample instead"
    return seeds[i], seeds[j], (f"{how}: horse seed {seeds[i]} (p(horse) = {probs[i, h]:.2f}), "
                                f"bird seed {seeds[j]} (p(bird) = {probs[j, b]:.2f})")


# ---------------------------------------------------------------- checkpoints


def save_classifier(model: NoisyClassifier, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write the classifier's weights (float32) and config to a safetensors checkpoint, atomically."""
    from .checkpoints import save_checkpoint

    info = dict(meta or {})
    info.update(kind=KIND, classifier_config=model.config.to_dict(), clean_sigma=clean_sigma(model))
    tensors = {f"classifier.{k}": v for k, v in model.state_dict().items()}
    return save_checkpoint(tensors, info, path)[0]


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """Build a :class:`NoisyClassifier` from a checkpoint (no code runs); returns (model, checkpoint).

    ``path`` None is the course's shipped horse/bird classifier.
    """
    from .checkpoints import CheckpointError, load_checkpoint, load_weights

    ckpt = load_checkpoint(DEFAULT_CLASSIFIER if path is None else path)
    if ckpt.meta.get("kind") != KIND:
        what = " (it is a score network's: give it as --checkpoint)" if "model_config" in ckpt.meta else ""
        raise CheckpointError(
            f"{ckpt.path} is not a classifier checkpoint{what}. Give a classifier written by "
            "`pegasus-course train-classifier`, or leave --classifier out to use the shipped one."
        )
    model = NoisyClassifier(ClassifierConfig.from_dict(ckpt.meta["classifier_config"]))
    load_weights(model, ckpt.part("classifier"), ckpt.path)
    model.clean_sigma = float(ckpt.meta.get("clean_sigma", 0.01))
    return model.to(device).eval().requires_grad_(False), ckpt


def accuracy_by_sigma(model: tnn.Module, images: torch.Tensor, labels: torch.Tensor, sigmas: Sequence[float],
                      seed: int = 0) -> list[float]:
    """Held-out accuracy at each noise level: how much a noisy image still tells about its class."""
    from .checks import check_seed

    gen = torch.Generator().manual_seed(check_seed(seed, "accuracy_by_sigma"))
    return [accuracy(model, images, labels, float(s), gen) for s in sigmas]
