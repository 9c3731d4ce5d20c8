"""How far outside its level's shell a Langevin state settles: the one-point model, simulated.

Notebook 02's one-point model (all data at one point) has the exact score -x / sigma^2: a state twice as
far out is pulled back twice as hard. A trained network behaves differently off its shells: trained
only on states at the shell's radius sigma sqrt(D), its score has about the length sqrt(D) / sigma
wherever the state is (Tweedie's formula then takes out about one shell's worth of noise, notebook 05).
Simulating both in D dimensions says how much of a measured excess each explains.
"""

from __future__ import annotations

import math

import torch

from .checks import check_number, check_positive_int, check_seed
from .sigmas import _checked_schedule

SCORES = ("exact", "fixed-length")


@torch.no_grad()
def shell_ratios(sigmas, eps: float, n_steps_each: int, dim: int = 3 * 32 * 32, score: str = "exact",
                 chains: int = 16, seed: int = 0) -> torch.Tensor:
    """Mean ||x|| / (sigma_i sqrt(dim)) after each level's T steps, (L,), for one-point data at 0.

    Annealed Langevin dynamics from x0 = sigma_1 z with steps alpha_i = eps sigma_i^2 / sigma_L^2 and
    ``score`` "exact" (-x / sigma^2) or "fixed-length" (-x / ||x|| * sqrt(dim) / sigma: the right
    direction, a shell's length whatever the radius). 1 is on the shell; 1.06 is 6% outside it.
    """
    sigmas = _checked_schedule(sigmas, "shell_ratios", minimum=2).double()
    if score not in SCORES:
        raise ValueError(f"shell_ratios: score must be one of {SCORES}, got {score!r}.")
    eps = check_number(eps, "shell_ratios: eps (the base step)", positive=True)
    n_steps_each = check_positive_int(n_steps_each, "shell_ratios: n_steps_each (T)")
    dim = check_positive_int(dim, "shell_ratios: dim (D)")
    chains = check_positive_int(chains, "shell_ratios: chains")
    g = torch.Generator().manual_seed(check_seed(seed, "shell_ratios"))
    x = float(sigmas[0]) * torch.randn(chains, dim, generator=g, dtype=torch.float64)
    s_min, out = float(sigmas[-1]), []
    for s in sigmas.tolist():
        alpha = eps * s * s / (s_min * s_min)
        for _ in range(n_steps_each):
            if score == "exact":
                drift = -x / (s * s)
            else:
                drift = -x / x.norm(dim=1, keepdim=True) * (math.sqrt(dim) / s)
            x = x + alpha * drift + math.sqrt(2 * alpha) * torch.randn(x.shape, generator=g, dtype=torch.float64)
        out.append(float((x.norm(dim=1) / (s * math.sqrt(dim))).mean()))
    return torch.tensor(out, dtype=torch.float64)
