"""The course's workflow: what a notebook needs before it can teach, in one call.

"Load the shipped model or train one", "load or train a classifier" and the set-up every
sampling notebook repeats live here, and call the training functions directly (the command
line is a separate front end over the same functions). ``PEGASUS_MODEL`` picks the score model
the notebooks 05-07 use: ``shipped`` (the default: the checkpoint in ``checkpoints/``),
``notebook-04`` (the run notebook 04 wrote into ``runs/notebook-04/``) or a checkpoint's path.

The device and precision come from :mod:`pegasus_course.device` (``PEGASUS_DEVICE`` overrides); before a
long cell a notebook can say what it will cost on this machine: :func:`setup` measures a few evaluations
of the network (:func:`measure_network`) and :func:`expected_seconds` turns them into a time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import checkpoints, data as data_mod
from .device import choose_device, place_model, sampling_precision, training_precision
from .device import describe as describe_device
from .profiles import Profile, describe, get_profile
from .formatting import format_duration  # notebooks call it as workflow.format_duration

MODEL_ENV = "PEGASUS_MODEL"
MODEL_CHOICES = ("shipped", "notebook-04")
CLASSIFIER_RUNS = checkpoints.REPO_ROOT / "runs" / "notebook-07"


def default_device() -> torch.device:
    """The device the notebooks use: ``PEGASUS_DEVICE``, else CUDA, then Apple's MPS, then the CPU
    (:func:`pegasus_course.device.choose_device`)."""
    return choose_device()


def device_line(device: torch.device | None = None) -> str:
    """One line: the device, the precision training and sampling use there, and how to change the device."""
    device = choose_device(device)
    return (f"device {describe_device(device)}: training in {training_precision(device).describe()}, sampling in "
            f"{sampling_precision(device).describe()} (PEGASUS_DEVICE=cpu|cuda|mps to change)")


def start(seed: int = 0) -> tuple[Profile, torch.Generator]:
    """The set-up every notebook runs first: legible inline figures, seeded generators, the active
    profile (printed with how to change it), its thread count, and the device with its precision.
    Returns (profile, CPU generator)."""
    from .plotting import setup_plots
    from .training import seed_everything

    setup_plots()
    generator = seed_everything(seed)
    profile = get_profile()
    print(describe(profile))
    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    print(device_line())
    return profile, generator


# ----- what a long cell will cost on this machine -----
@dataclass(frozen=True)
class NetworkCost:
    """Seconds one evaluation of a network takes here, as ``fixed + per_image * batch`` (the fixed part
    dominates on a GPU, where a small batch is bound by kernel launches; the per-image part on a CPU),
    fitted to a short measurement at two batch sizes."""

    device: str
    precision: str
    fixed: float
    per_image: float
    measured_batch: int

    def evaluation(self, n_images: int) -> float:
        """Seconds of one evaluation of ``n_images`` images at once."""
        return self.fixed + self.per_image * n_images

    def seconds(self, n_images: int, evaluations: int, batch_size: int = 256) -> float:
        """Seconds of ``evaluations`` evaluations of ``n_images`` images, in batches of at most ``batch_size``
        (generate's and pegasus_batch's default): e.g. sampling, L * T + 1 evaluations."""
        full, rest = divmod(int(n_images), int(batch_size))
        per = full * self.evaluation(batch_size) + (self.evaluation(rest) if rest else 0.0)
        return int(evaluations) * per


_LAST_COST: list[NetworkCost] = []


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.no_grad()
def measure_network(model: torch.nn.Module, batch: int, repeats: int = 2, budget_s: float = 1.5) -> NetworkCost:
    """Time the network in the precision the package's samplers use (``sampling_precision``) on this
    machine: a warm-up evaluation of ``min(batch, 16)`` images and a second one, then up to ``repeats`` at
    that size and at 1 image in all (the best of each), as many as fit in ``budget_s``. When one evaluation takes a third of the budget (a
    slow CPU), the time is taken as proportional to the batch. The result is also what
    :func:`expected_seconds` uses from then on."""
    from .generate import model_score_fn

    device = next(model.parameters()).device
    config = model.config
    big = max(1, min(int(batch), 16))
    score = model_score_fn(model, precision="auto")

    def once(n: int) -> float:
        x = torch.rand(n, config.in_channels, config.image_size, config.image_size, device=device)
        sigma = torch.full((n,), 0.5, device=device)
        _sync(device)
        t0 = time.perf_counter()
        score(x, sigma)
        _sync(device)
        return time.perf_counter() - t0

    warm = once(big)  # carries one-off costs (kernel choice, allocation): timed again before it is trusted
    second = once(big) if warm < budget_s else warm
    t_big, spent = min(warm, second), warm + (second if warm < budget_s else 0.0)
    if t_big > budget_s / 3 or big == 1:
        fixed, per_image = 0.0, t_big / big
    else:
        repeats = max(1, min(int(repeats), int((budget_s - spent) / (1.2 * t_big))))
        t_big = min([t_big] + [once(big) for _ in range(repeats - 1)])
        t_one = min(once(1) for _ in range(repeats))
        per_image = max(0.0, (t_big - t_one) / (big - 1))
        fixed = max(0.0, t_big - per_image * big)
    cost = NetworkCost(device=str(device), precision=sampling_precision(device).name, fixed=fixed,
                       per_image=per_image, measured_batch=big)
    _LAST_COST[:] = [cost]
    return cost


def expected_seconds(n_images: int, evaluations: int, cost: NetworkCost | None = None) -> float:
    """Seconds that ``evaluations`` network evaluations of ``n_images`` images will take here, from ``cost``
    or the last :func:`measure_network` (which :func:`setup` runs)."""
    if cost is None:
        if not _LAST_COST:
            raise ValueError("No measurement yet: run workflow.setup() or workflow.measure_network(model, batch) "
                             "first.")
        cost = _LAST_COST[0]
    return cost.seconds(n_images, evaluations)


def sampling_cost_lines(cost: NetworkCost, profile: Profile, num_scales: int, n_steps_each: int) -> list[str]:
    """What sampling costs here with ``cost``: one evaluation, and the profile's batch of samples with the
    full schedule as a yardstick (each long cell then prints its own estimate, :meth:`Course.expect`)."""
    from .sampling import num_score_evaluations

    evals = num_score_evaluations(num_scales, n_steps_each)
    one = cost.evaluation(cost.measured_batch)
    return [f"one network evaluation of {cost.measured_batch} images ~ {format_duration(one)} on {cost.device} "
            f"({cost.precision}, measured just now) -> {profile.n_samples} samples with L = {num_scales}, "
            f"T = {n_steps_each} ({evals:,} evaluations) ~ {format_duration(cost.seconds(profile.n_samples, evals))}; "
            "each long cell prints its own estimate"]


def estimate_training(profile: Profile, device: torch.device | str | None = None, steps: int = 2,
                      say=print) -> float:
    """Seconds per training step of the profile's network and batch on this machine (``steps`` steps on random
    images after one warm-up step, or the warm-up step alone when it takes a second or more), printed with
    what notebook 04's live run will take. Returns the seconds."""
    from .nn import ScoreUNet, ScoreUNetConfig
    from .sigmas import geometric_sigmas
    from .training import TrainConfig, train

    device = choose_device(device)
    config = ScoreUNetConfig.for_image_size(32, profile.base_channels, num_res_blocks=profile.num_res_blocks)
    torch.manual_seed(0)
    model = place_model(ScoreUNet(config), device, say=say)
    device = next(model.parameters()).device
    batch = profile.batch_size
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
    sigmas = geometric_sigmas(profile.sigma_max, profile.sigma_min, profile.num_scales)
    t0 = time.perf_counter()
    state = train(model, images, sigmas, TrainConfig(steps=1, batch_size=batch, log_every=1), progress=False)
    _sync(device)
    per_step = time.perf_counter() - t0  # the warm-up step: the measurement itself when it is slow
    if per_step < 1.0:
        t0 = time.perf_counter()
        train(model, images, sigmas, TrainConfig(steps=1 + steps, batch_size=batch, log_every=steps), state=state,
              progress=False)
        _sync(device)
        per_step = (time.perf_counter() - t0) / steps
    say(f"training on {device} in {training_precision(device).describe()}: one step of batch {batch} ~ "
        f"{format_duration(per_step)} (measured just now) -> notebook 04's {profile.notebook_train_steps:,} steps ~ "
        f"{format_duration(per_step * profile.notebook_train_steps)}")
    return per_step


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

    spec = data_mod.default_data()
    ds = training_images(profile, spec=spec)
    schedule = Schedule(profile.sigma_max, profile.sigma_min, profile.num_scales, profile.n_steps_each)
    config = ScoreUNetConfig.for_image_size(ds.image_size, profile.base_channels, num_res_blocks=profile.num_res_blocks)
    torch.manual_seed(0)
    model = place_model(ScoreUNet(config), choose_device(device))
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
    device = choose_device(device)
    choice = model_choice(which)
    run = checkpoints.NOTEBOOK_RUN

    def load(path):  # on the CPU, then onto the device it can be trusted on (the MPS check)
        model, ckpt = checkpoints.load_score_model(path, device="cpu")
        return place_model(model, device), ckpt

    if choice == "notebook-04":
        if not run.is_file():
            raise FileNotFoundError(f"{MODEL_ENV}=notebook-04 but notebook 04 has not written its run yet ({run}): "
                                    f"run notebook 04 first, or unset {MODEL_ENV} to use the shipped model.")
        model, ckpt = load(run)
        return model, ckpt, f"loaded the model notebook 04 trained ({ckpt.step:,} steps; {MODEL_ENV}=notebook-04)"
    if choice != "shipped":
        model, ckpt = load(choice)
        return model, ckpt, f"loaded {Path(choice).name} ({ckpt.step:,} training steps; {MODEL_ENV})"
    shipped = checkpoints.DEFAULT_CHECKPOINT
    if shipped.is_file():
        model, ckpt = load(shipped)
        return model, ckpt, f"loaded the shipped model ({shipped.name}, {ckpt.step:,} training steps)"
    if run.is_file():
        model, ckpt = load(run)
        return model, ckpt, f"no shipped model in this checkout; loaded the one notebook 04 trained ({ckpt.step:,} steps)"
    print(f"no shipped model in this checkout: training a small one now ('{profile.name}' profile) into {run.parent}")
    train_score_model(profile, run, device=device, progress=True)
    model, ckpt = load(run)
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
    model = place_model(NoisyClassifier(config), choose_device(device), say=say)
    device = next(model.parameters()).device
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
                                   steps=profile.classifier_steps, batch_size=min(128, len(ds)), progress=progress)
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
        model, ckpt = load_classifier(shipped[kind], device="cpu")
        model = place_model(model, device)
        acc = ckpt.meta.get("training", {}).get("test_accuracy_clean")
        note = f", {acc:.1%} on held-out clean test images" if acc is not None else ""
        return model, f"loaded the shipped {kind} classifier ({shipped[kind].name}{note})"
    profile = profile or get_profile()
    out = CLASSIFIER_RUNS / f"{kind}.safetensors"
    if not out.is_file():
        print(f"no shipped {kind} classifier in this checkout: training one now ('{profile.name}' profile)")
        train_classifier_model(kind, profile, out)
    model, ckpt = load_classifier(out, device="cpu")
    model = place_model(model, device)
    return model, f"no shipped {kind} classifier, so trained one now ({ckpt.meta['training']['steps']} steps)"


# ----- one call for the sampling notebooks -----
@dataclass
class Course:
    """What notebooks 05-07 work with: the profile, a seeded generator, the score model, its checkpoint,
    the sampling schedule, the classifiers asked for (by kind), and what the network costs here
    (``cost``: ``course.expected_seconds(n_images, evaluations)`` before a long cell)."""

    profile: Profile
    generator: torch.Generator
    model: torch.nn.Module
    checkpoint: checkpoints.Checkpoint
    schedule: object
    how: str
    classifiers: dict = field(default_factory=dict)
    cost: NetworkCost | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def expected_seconds(self, n_images: int, evaluations: int) -> float:
        """Seconds ``evaluations`` evaluations of ``n_images`` images will take here (measured at set-up)."""
        return expected_seconds(n_images, evaluations, self.cost)

    def expect(self, what: str, n_images: int, evaluations: int | None = None, runs: int = 1,
               factor: float = 1.0, why: str = "guidance") -> float:
        """Print, before a long cell's work, what it computes and how long that should take here: ``runs``
        sampling runs of ``n_images`` images, each ``evaluations`` network evaluations (default: one run of
        the course's schedule), times ``factor`` for ``why`` (e.g. ~2 for classifier guidance, which
        differentiates a second network). The progress bar that follows shows the rest. Returns the
        expected seconds."""
        from .sampling import num_score_evaluations

        evals = evaluations if evaluations is not None else num_score_evaluations(
            self.schedule.num_scales, self.schedule.n_steps_each)
        return expect(what, n_images, evals, self.cost, runs=runs, factor=factor, why=why)


def expect(what: str, n_images: int, evaluations: int, cost: NetworkCost | None = None, runs: int = 1,
           factor: float = 1.0, why: str = "guidance") -> float:
    """Print what a long cell computes and how long it should take here: ``runs`` runs of ``evaluations``
    network evaluations of ``n_images`` images with ``cost`` (default: the last :func:`measure_network`),
    times ``factor`` for ``why``. Returns the expected seconds. :meth:`Course.expect` is this with the
    course's schedule and its set-up measurement."""
    cost = cost or (_LAST_COST[0] if _LAST_COST else None)
    if cost is None:
        raise ValueError("No measurement of the network yet: workflow.setup() or workflow.measure_network() "
                         "measures it.")
    one_run = cost.seconds(n_images, evaluations)
    seconds = runs * factor * one_run
    times = f"{runs} runs x " if runs > 1 else ""
    extra = f", x {factor:.1f} for {why}" if factor != 1 else ""
    print(f"{what}: {times}{n_images} image{'s' * (n_images != 1)} x {evaluations:,} network evaluations "
          f"(~{format_duration(one_run / evaluations)} each){extra} -> expected ~{format_duration(seconds)} here")
    return seconds


def setup(seed: int = 0, classifiers: tuple[str, ...] = (), which: str | None = None) -> Course:
    """:func:`start`, then the score model (:func:`load_or_train_model`), its sampling schedule in the
    profile's sizes and the classifiers asked for (on the model's device); prints where each came from,
    and what sampling will cost here, from a short measurement of the network (:func:`measure_network`)."""
    from .generate import schedule_from_meta

    profile, generator = start(seed)
    model, ckpt, how = load_or_train_model(profile, which=which)
    schedule = schedule_from_meta(ckpt.meta, n_steps_each=profile.n_steps_each, num_scales=profile.num_scales)
    print(how, f"| sampling with L = {schedule.num_scales}, T = {schedule.n_steps_each}")
    found = {}
    device = next(model.parameters()).device
    for kind in classifiers:
        found[kind], how_clf = load_or_train_classifier(kind, profile, device=device)
        print(how_clf)
    cost = measure_network(model, profile.n_samples)
    for line in sampling_cost_lines(cost, profile, schedule.num_scales, schedule.n_steps_each):
        print(line)
    return Course(profile, generator, model, ckpt, schedule, how, found, cost)
