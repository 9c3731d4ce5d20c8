"""The course's workflow: what a notebook needs before it can teach, in one call.

"Load the shipped model or train one", "load or train a classifier" and the set-up every
sampling notebook repeats live here, and call the training functions directly (the command
line is a separate front end over the same functions). ``PEGASUS_MODEL`` picks the score model
the notebooks 05-07 use: ``shipped`` (the default: the checkpoint in ``checkpoints/``),
``notebook-04`` (the run notebook 04 wrote into ``runs/notebook-04/``) or a checkpoint's path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoints, data as data_mod
from .profiles import Profile, describe, get_profile

MODEL_ENV = "PEGASUS_MODEL"
MODEL_CHOICES = ("shipped", "notebook-04")
CLASSIFIER_RUNS = checkpoints.REPO_ROOT / "runs" / "notebook-07"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def start(seed: int = 0) -> tuple[Profile, torch.Generator]:
    """The set-up every notebook runs first: small inline figures, seeded generators, the active
    profile (printed with how to change it) and its thread count. Returns (profile, CPU generator)."""
    from .plotting import setup_plots
    from .training import seed_everything

    setup_plots()
    generator = seed_everything(seed)
    profile = get_profile()
    print(describe(profile))
    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    return profile, generator


def training_images(profile: Profile, split: str = "train", classes=("horse", "bird"),
                    spec: data_mod.DataSpec | None = None) -> data_mod.ImageDataset:
    """The training images of the active data source, cut to the profile's size with every class kept
    (the quick profiles' first N images would otherwise be one class)."""
    ds = (spec or data_mod.default_data()).load(split, classes=tuple(classes))
    if profile.max_train_images:
        ds = data_mod.balanced_subset(ds, max(1, profile.max_train_images // len(ds.classes)))
    return ds


# ----- the score model -----
def train_score_model(profile: Profile, out: str | os.PathLike, device: torch.device | str | None = None,
                      steps: int | None = None, progress: bool = False):
    """Train a score network with the profile's sizes and write a resumable checkpoint to ``out``.

    Returns the :class:`~pegasus_course.training.TrainState`."""
    from .generate import Schedule
    from .nn import ScoreUNet, ScoreUNetConfig
    from .training import TrainConfig, train

    device = torch.device(device) if device is not None else default_device()
    spec = data_mod.default_data()
    ds = training_images(profile, spec=spec)
    schedule = Schedule(profile.sigma_max, profile.sigma_min, profile.num_scales, profile.n_steps_each)
    config = ScoreUNetConfig.for_image_size(ds.image_size, profile.base_channels, num_res_blocks=profile.num_res_blocks)
    torch.manual_seed(0)
    model = ScoreUNet(config).to(device)
    steps = steps or profile.notebook_train_steps
    cfg = TrainConfig(steps=steps, batch_size=min(profile.batch_size, len(ds)), seed=0,
                      log_every=max(1, min(25, steps // 4)))
    meta = {"schedule": schedule.to_dict(), "profile": profile.name,
            "data": {"source": spec.source, "classes": list(ds.classes), "image_size": ds.image_size,
                     "num_images": len(ds), "split": "train"}}
    return train(model, ds.images, schedule.sigmas(), cfg, checkpoint_path=out, meta=meta, progress=progress)


def model_choice(which: str | None = None) -> str:
    """The score model asked for: ``which``, else ``PEGASUS_MODEL``, else ``shipped``."""
    choice = (which or os.environ.get(MODEL_ENV, "") or "shipped").strip()
    if choice not in MODEL_CHOICES and not Path(choice).suffix == ".safetensors" and not Path(choice).is_dir():
        raise ValueError(f"{MODEL_ENV}={choice!r} is not a model: use one of {', '.join(MODEL_CHOICES)} or the path "
                         "of a checkpoint (.safetensors file or a sharded checkpoint's folder).")
    return choice


def load_or_train_model(profile: Profile | None = None, device: torch.device | str | None = None,
                        which: str | None = None):
    """The score model the sampling notebooks use, with a sentence saying where it came from.

    ``shipped`` (default): the checkpoint in ``checkpoints/``, or - in a checkout without it - the run
    notebook 04 wrote, or a small model trained now in the active profile. ``notebook-04``: notebook 04's
    run (an error says to run notebook 04 when it is missing). A path: that checkpoint.
    Returns (model, checkpoint, how).
    """
    profile = profile or get_profile()
    device = torch.device(device) if device is not None else default_device()
    choice = model_choice(which)
    run = checkpoints.NOTEBOOK_RUN
    if choice == "notebook-04":
        if not run.is_file():
            raise FileNotFoundError(f"{MODEL_ENV}=notebook-04 but notebook 04 has not written its run yet ({run}): "
                                    f"run notebook 04 first, or unset {MODEL_ENV} to use the shipped model.")
        model, ckpt = checkpoints.load_score_model(run, device=device)
        return model, ckpt, f"loaded the model notebook 04 trained ({ckpt.step:,} steps; {MODEL_ENV}=notebook-04)"
    if choice != "shipped":
        model, ckpt = checkpoints.load_score_model(choice, device=device)
        return model, ckpt, f"loaded {Path(choice).name} ({ckpt.step:,} training steps; {MODEL_ENV})"
    shipped = checkpoints.DEFAULT_CHECKPOINT
    if shipped.is_file():
        model, ckpt = checkpoints.load_score_model(shipped, device=device)
        return model, ckpt, f"loaded the shipped model ({shipped.name}, {ckpt.step:,} training steps)"
    if run.is_file():
        model, ckpt = checkpoints.load_score_model(run, device=device)
        return model, ckpt, f"no shipped model in this checkout; loaded the one notebook 04 trained ({ckpt.step:,} steps)"
    print(f"no shipped model in this checkout: training a small one now ('{profile.name}' profile) into {run.parent}")
    train_score_model(profile, run, device=device, progress=True)
    model, ckpt = checkpoints.load_score_model(run, device=device)
    return model, ckpt, f"no checkpoint found, so trained a small one now ({ckpt.step:,} steps, '{profile.name}' profile)"


# ----- classifiers -----
def fit_classifier(ds: data_mod.ImageDataset, sigmas: torch.Tensor, *, test: data_mod.ImageDataset | None = None,
                   clean: bool = False, base_channels: int = 32, steps: int = 1000, batch_size: int = 128,
                   lr: float = 2e-3, seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
                   say=print):
    """Train a (noise-conditional unless ``clean``) classifier on ``ds`` and measure it on ``test``.

    Returns (model on the CPU, result dict for the checkpoint's metadata)."""
    from .classifier import ClassifierConfig, NoisyClassifier, accuracy, train_classifier
    from .nn import count_parameters

    torch.manual_seed(seed)
    classes = list(ds.classes)
    config = ClassifierConfig(image_size=ds.image_size, class_names=tuple(classes), base_channels=base_channels)
    model = NoisyClassifier(config).to(device)
    levels = "clean images" if clean else f"noise levels {float(sigmas.max()):g} .. {float(sigmas.min()):g}"
    say(f"{len(ds)} images of {classes}; {count_parameters(model):,} parameters; {levels}; {steps} steps of "
        f"batch {batch_size} on {device}")
    run = train_classifier(model, ds.images, ds.labels, sigmas, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                           progress=progress)
    result = {"steps": steps, "seconds": round(run.seconds, 1),
              "final_loss": sum(run.losses[-50:]) / len(run.losses[-50:])}
    model.cpu()
    if test is not None:
        gen = torch.Generator().manual_seed(0)
        result["test_images"] = len(test)
        result["test_accuracy_clean"] = accuracy(model, test.images, test.labels)
        if not clean:
            for s in (0.1, 0.5, 1.0):
                result[f"test_accuracy_sigma_{s:g}"] = accuracy(model, test.images, test.labels, s, gen)
        say(f"held-out accuracy on {len(test)} clean test images: {result['test_accuracy_clean']:.1%}"
            + ("" if clean else "; at sigma 0.1 / 0.5 / 1: " + " / ".join(
                f"{result[f'test_accuracy_sigma_{s:g}']:.1%}" for s in (0.1, 0.5, 1.0))))
    result["images_per_second"] = round(run.images_per_second, 1)
    return model, result


def classifier_meta(profile: Profile, result: dict, sigmas: torch.Tensor, ds: data_mod.ImageDataset,
                    source: str) -> dict:
    """The metadata a classifier checkpoint carries (profile, training record, noise levels, data)."""
    return {"profile": profile.name, "training": result,
            "schedule": {"sigma_max": float(sigmas.max()), "sigma_min": float(sigmas.min()),
                         "num_levels": sigmas.numel()},
            "data": {"source": source, "classes": list(ds.classes), "image_size": ds.image_size, "num_images": len(ds)}}


def train_classifier_model(kind: str, profile: Profile, out: str | os.PathLike, progress: bool = False) -> Path:
    """Train the ``horse-bird`` (noise-conditional) or ``ten-class`` (clean) classifier in the profile's sizes."""
    from .classifier import save_classifier
    from .sigmas import geometric_sigmas

    spec = data_mod.default_data()
    clean = kind == "ten-class"
    classes = data_mod.CIFAR10_CLASSES if clean and spec.source == "cifar10" else (
        data_mod.folder_classes(spec.root, "train") if clean else ("horse", "bird"))
    ds = training_images(profile, classes=classes, spec=spec)
    try:
        test = spec.load("test", classes=tuple(classes), train=False)
    except FileNotFoundError:
        test = None
    sigmas = torch.tensor([profile.sigma_min]) if clean else geometric_sigmas(profile.sigma_max, profile.sigma_min,
                                                                              profile.num_scales)
    model, result = fit_classifier(ds, sigmas, test=test, clean=clean, base_channels=profile.classifier_base_channels,
                                   steps=profile.classifier_steps, progress=progress)
    return save_classifier(model, out, classifier_meta(profile, result, sigmas, ds, spec.source))


def load_or_train_classifier(kind: str = "horse-bird", profile: Profile | None = None,
                             device: torch.device | str = "cpu"):
    """The classifier notebooks 06-07 use, and a sentence saying where it came from.

    ``kind`` is ``"horse-bird"`` (noise-conditional, for selection and guidance) or ``"ten-class"`` (clean
    CIFAR-10, whose features measure quality). The shipped checkpoint when present, else one trained now
    in the active profile (into runs/notebook-07/).
    """
    from .classifier import DEFAULT_CLASSIFIER, DEFAULT_FEATURE_NET, load_classifier

    shipped = {"horse-bird": DEFAULT_CLASSIFIER, "ten-class": DEFAULT_FEATURE_NET}
    if kind not in shipped:
        raise ValueError(f"kind must be one of {sorted(shipped)}, got {kind!r}.")
    if shipped[kind].is_file():
        model, ckpt = load_classifier(shipped[kind], device=device)
        acc = ckpt.meta.get("training", {}).get("test_accuracy_clean")
        note = f", {acc:.1%} on held-out clean test images" if acc is not None else ""
        return model, f"loaded the shipped {kind} classifier ({shipped[kind].name}{note})"
    profile = profile or get_profile()
    out = CLASSIFIER_RUNS / f"{kind}.safetensors"
    if not out.is_file():
        print(f"no shipped {kind} classifier in this checkout: training one now ('{profile.name}' profile)")
        train_classifier_model(kind, profile, out)
    model, ckpt = load_classifier(out, device=device)
    return model, f"no shipped {kind} classifier, so trained one now ({ckpt.meta['training']['steps']} steps)"


# ----- one call for the sampling notebooks -----
@dataclass
class Course:
    """What notebooks 05-07 work with: the profile, a seeded generator, the score model, its checkpoint,
    the sampling schedule, and the classifiers asked for (by kind)."""

    profile: Profile
    generator: torch.Generator
    model: torch.nn.Module
    checkpoint: checkpoints.Checkpoint
    schedule: object
    how: str
    classifiers: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def setup(seed: int = 0, classifiers: tuple[str, ...] = (), which: str | None = None) -> Course:
    """:func:`start`, then the score model (:func:`load_or_train_model`), its sampling schedule in the
    profile's sizes and the classifiers asked for; prints where each came from."""
    from .generate import schedule_from_meta

    profile, generator = start(seed)
    model, ckpt, how = load_or_train_model(profile, which=which)
    schedule = schedule_from_meta(ckpt.meta, n_steps_each=profile.n_steps_each, num_scales=profile.num_scales)
    print(how, f"| sampling with L = {schedule.num_scales}, T = {schedule.n_steps_each}")
    found = {}
    for kind in classifiers:
        found[kind], how_clf = load_or_train_classifier(kind, profile)
        print(how_clf)
    return Course(profile, generator, model, ckpt, schedule, how, found)
