"""Batches and seeds of training: which images a step sees and the draws it makes, as functions of
(seed, step, rank) alone, so a resumed run continues exactly as an uninterrupted one would."""

from __future__ import annotations

import numbers

import torch
from torch.utils.data import DistributedSampler

from .checks import check_positive_int


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (a CUDA tensor needs a CUDA generator) seeded with ``seed``, a whole
    number in 0..2^64 - 1 (what a generator holds; :func:`step_seed` uses all 64 bits)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"make_generator: the seed must be a whole number (e.g. 0), got {seed!r}.")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"make_generator: the seed must be from 0 to 2^64 - 1, got {int(seed)}.")
    return torch.Generator(device=device).manual_seed(int(seed))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch's global generators (for notebooks) and return a CPU generator."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return make_generator(seed)


class EpochBatches:
    """Batch indices for any step: shard ``rank`` of a seeded permutation per epoch (DistributedSampler)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 device: torch.device | str = "cpu"):
        self.sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batch_size = check_positive_int(batch_size, "EpochBatches: batch_size")
        self.device = torch.device(device)
        self.steps_per_epoch = len(self.sampler) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n} images cannot fill a batch of {batch_size} per process; lower the batch size.")
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            # one host-to-device copy per epoch, not one per step
            self._epoch, self._order = epoch, torch.tensor(list(iter(self.sampler))).to(self.device)
        return self._order[k * self.batch_size:(k + 1) * self.batch_size]


def step_draws(data: torch.Tensor, sigmas: torch.Tensor, idx: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch and draws of one step, made on the data's device from ``generator`` (seeded by the caller
    for the step): flips, then one noise level per image, then z. Returns (x in [0, 1], sigma (B,), z)."""
    device = data.device
    flips = torch.rand(idx.numel(), generator=generator, device=device) < 0.5
    x = data[idx].float().div_(255.0)  # (B, 3, H, W) in [0, 1]
    x = torch.where(flips[:, None, None, None], x.flip(-1), x)
    sigma = sigmas[torch.randint(0, sigmas.numel(), (idx.numel(),), generator=generator, device=device)]
    z = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return x, sigma.to(x.dtype), z


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of step ``step``'s draws on process ``rank``: a function of (seed, step, rank) only."""
    return ((seed * 1_000_003 + step) * 64 + rank) % 2**64  # any int64 seed: a generator takes 64 bits


def check_training_images(images: torch.Tensor) -> None:
    """What :func:`train` takes: uint8 images (N, C, H, W) in 0-255, as ``data.load_dataset`` gives them
    (``ds.images``). Float images are refused with the conversion, since the loop divides by 255 itself."""
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"train: expected a non-empty uint8 batch of images (N, 3, H, W), got {shape}.")
    if images.dtype != torch.uint8:
        raise TypeError(f"train: expected uint8 images in 0-255 (the dataset's ds.images), got {images.dtype}: the "
                        "loop divides by 255 itself. Convert [0, 1] floats with (x * 255).round().to(torch.uint8), "
                        "0-255 floats with x.round().clamp(0, 255).to(torch.uint8).")
