"""Profiles: one switch, ``PEGASUS_PROFILE``, that picks sizes and never code paths.

``gpu`` is the paper's setting, ``cpu`` fits a laptop in minutes, ``ci`` runs the
whole course (training included) in seconds on 2 CPU cores. A profile is a
frozen dataclass of plain values; derive variants with ``dataclasses.replace``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "PEGASUS_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes used by the notebooks, the CLI and the benchmarks."""

    name: str
    description: str
    # data
    max_train_images: int | None  # None: the whole horse+bird training set
    # score network (see pegasus_course.nn.ScoreUNetConfig)
    base_channels: int
    channel_mults: tuple[int, int, int]
    num_res_blocks: int
    # noise schedule (NCSNv2 techniques 1 and 2; the paper's CIFAR-10 values)
    sigma_max: float
    sigma_min: float
    num_scales: int  # L
    n_steps_each: int  # T, Langevin steps per noise level
    # training
    batch_size: int
    train_steps: int  # the command line's default run
    notebook_train_steps: int  # notebook 04's live run (and a fallback model): minutes, not hours
    sample_every: int  # steps between preview grids during training
    # sampling and the pegasus
    n_samples: int
    n_interpolations: int  # N of eq. 4
    row_interpolants: int  # interpolants between the ends computed for notebook 06's rows (N: all of them)
    n_pairs: int  # random pairs in notebook 06's batch of winged horses
    # toy 2-D experiments (notebook 01)
    toy_train_steps: int
    toy_n_samples: int
    # beyond the paper (notebook 07): classifier, guidance, quality
    classifier_base_channels: int
    classifier_steps: int
    eval_samples: int  # samples for the pegasus rate, the Frechet distance and colour statistics
    guidance_scales: tuple[float, ...]
    # benchmarks and demos
    num_threads: int | None  # torch.set_num_threads; None leaves torch's default


PROFILES: dict[str, Profile] = {
    "gpu": Profile(
        name="gpu",
        description="the paper's setting on a CUDA GPU",
        max_train_images=None,
        base_channels=64,
        channel_mults=(1, 2, 2),
        num_res_blocks=2,
        sigma_max=50.0,
        sigma_min=0.01,
        num_scales=232,
        n_steps_each=5,
        batch_size=128,
        train_steps=100_000,
        notebook_train_steps=3_000,
        sample_every=5_000,
        n_samples=64,
        n_interpolations=15,
        row_interpolants=15,
        n_pairs=8,
        toy_train_steps=5_000,
        toy_n_samples=5_000,
        classifier_base_channels=32,
        classifier_steps=4000,
        eval_samples=256,
        guidance_scales=(0.0, 1.0, 3.0, 10.0),
        num_threads=None,
    ),
    "cpu": Profile(
        name="cpu",
        description="a laptop or Binder/Colab CPU: same code, smaller sizes",
        max_train_images=None,
        base_channels=32,
        channel_mults=(1, 2, 2),
        num_res_blocks=1,
        sigma_max=50.0,
        sigma_min=0.01,
        num_scales=232,
        n_steps_each=5,
        batch_size=32,
        train_steps=200,
        notebook_train_steps=200,
        sample_every=100,
        n_samples=6,
        n_interpolations=15,
        row_interpolants=2,
        n_pairs=3,
        toy_train_steps=2_000,
        toy_n_samples=2_000,
        classifier_base_channels=32,
        classifier_steps=600,
        eval_samples=8,
        guidance_scales=(0.0, 3.0),
        num_threads=None,
    ),
    "ci": Profile(
        name="ci",
        description="continuous integration: every notebook in seconds on 2 CPU cores",
        max_train_images=512,
        base_channels=8,
        channel_mults=(1, 2, 2),
        num_res_blocks=1,
        sigma_max=50.0,
        sigma_min=0.01,
        num_scales=12,
        n_steps_each=2,
        batch_size=16,
        train_steps=30,
        notebook_train_steps=30,
        sample_every=15,
        n_samples=8,
        n_interpolations=5,
        row_interpolants=2,
        n_pairs=2,
        toy_train_steps=200,
        toy_n_samples=500,
        classifier_base_channels=8,
        classifier_steps=20,
        eval_samples=4,
        guidance_scales=(0.0, 3.0),
        num_threads=1,
    ),
}


def default_profile_name() -> str:
    """``gpu`` when CUDA is available, ``cpu`` otherwise."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None) -> Profile:
    """Return the profile ``name``, or the one ``PEGASUS_PROFILE`` names, or the default.

    Args:
        name: ``"gpu"``, ``"cpu"`` or ``"ci"`` (case-insensitive); ``None`` reads the
            environment variable and falls back to :func:`default_profile_name`.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    source = "argument"
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip() or None
        source = f"environment variable {ENV_VAR}"
    if name is None:
        return PROFILES[default_profile_name()]
    key = name.strip().lower()
    if key not in PROFILES:
        valid = ", ".join(sorted(PROFILES))
        how = ("Pass e.g. --profile cpu on the command line (profile='cpu' in Python)" if source == "argument"
               else f"Set it with e.g. `export {ENV_VAR}=cpu`")
        raise ValueError(f"Unknown profile {name!r} (from the {source}). Valid profiles: {valid}. {how}.")
    return PROFILES[key]


def describe(profile: Profile) -> str:
    """One line naming the active profile and how to change it."""
    return (
        f"profile '{profile.name}' ({profile.description}); change it with "
        f"{ENV_VAR}=gpu|cpu|ci before starting Jupyter"
    )
