"""From a trained score network to images: schedules, samples and pegasus rows from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import sigmas as sig
from .interpolation import interpolate, sample_seeds


@dataclass(frozen=True)
class Schedule:
    """The noise levels and Langevin settings used to sample."""

    sigma_max: float = 50.0
    sigma_min: float = 0.01
    num_scales: int = 232
    n_steps_each: int = 5

    def sigmas(self) -> torch.Tensor:
        return sig.geometric_sigmas(self.sigma_max, self.sigma_min, self.num_scales)

    def step_lr(self) -> float:
        """eps from NCSNv2 technique 4 for this schedule and T."""
        return sig.langevin_step_size(self.sigmas(), self.n_steps_each)

    def to_dict(self) -> dict:
        return {"sigma_max": self.sigma_max, "sigma_min": self.sigma_min, "num_scales": self.num_scales}


def schedule_from_meta(meta: dict, n_steps_each: int = 5, num_scales: int | None = None) -> Schedule:
    """The training schedule stored in a checkpoint, with T (and optionally a coarser L) for sampling."""
    s = meta.get("schedule", {})
    return Schedule(float(s.get("sigma_max", 50.0)), float(s.get("sigma_min", 0.01)),
                    int(num_scales or s.get("num_scales", 232)), n_steps_each)


def model_score_fn(model: torch.nn.Module, autocast_bf16: bool = False):
    """Wrap a network as a score_fn(x, sigma) -> float32 score (bf16 autocast on CUDA if asked)."""

    def score_fn(x, sigma):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast_bf16 and x.device.type == "cuda"):
            return model(x, sigma).float()

    return score_fn


@torch.no_grad()
def generate(model: torch.nn.Module, seeds, schedule: Schedule, *, denoise: bool = True, progress: bool = True,
             batch_size: int = 256) -> torch.Tensor:
    """Samples for the given seeds (each reproducible alone), clamped to [0, 1], on the model's device."""
    device = next(model.parameters()).device
    size = model.config.image_size
    seeds = list(seeds)
    out = []
    eps = schedule.step_lr()
    for start in range(0, len(seeds), batch_size):
        out.append(sample_seeds(model_score_fn(model), seeds[start:start + batch_size], schedule.sigmas(),
                                schedule.n_steps_each, eps, image_shape=(3, size, size), denoise=denoise,
                                device=device, progress=progress))
    return torch.cat(out).clamp(0, 1)


def pegasus_rows(model: torch.nn.Module, pairs, n: int, schedule: Schedule, *, denoise: bool = True,
                 progress: bool = True) -> torch.Tensor:
    """Interpolation rows (pairs, n + 2, 3, H, W) between seeded ends (eq. 4), clamped to [0, 1]."""
    return pegasus_batch(model, pairs, n, range(n + 2), schedule, denoise=denoise, progress=progress)


def pegasus_k(image_size: int) -> int:
    """The paper's chosen interpolant: k = 9 of N = 15 for 32x32, k = 11 of 15 for STL-10 sizes."""
    return 9 if image_size <= 32 else 11


@torch.no_grad()
def pegasus_batch(model: torch.nn.Module, pairs, n: int, ks, schedule: Schedule, *, denoise: bool = True,
                  progress: bool = True) -> torch.Tensor:
    """Only the interpolants ``ks`` of each pair's row, (pairs, len(ks), 3, H, W): cheaper than whole rows."""
    size = model.config.image_size
    rows = interpolate(model_score_fn(model), [tuple(p) for p in pairs], n, schedule.sigmas(), schedule.n_steps_each,
                       schedule.step_lr(), image_shape=(3, size, size), denoise=denoise,
                       device=next(model.parameters()).device, progress=progress, ks=list(ks))
    return rows.clamp(0, 1)
