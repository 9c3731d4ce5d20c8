"""2-D toy data with exact scores, for notebook 01 and for testing samplers and losses.

A Gaussian mixture perturbed with N(0, sigma^2 I) is again a Gaussian mixture with
each component's variance increased by sigma^2, so its score is known exactly for
every noise level: that makes the toy problems a reference for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as tnn


@dataclass(frozen=True)
class GaussianMixture:
    """Isotropic Gaussian mixture: weights (K,), means (K, D), stds (K,)."""

    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator)
        return self.means[comp] + self.stds[comp, None] * z

    def _log_components(self, x: torch.Tensor, sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1)  # (B or 1, 1)
        var = self.stds.to(x)[None, :] ** 2 + sigma**2  # (B, K)
        diff = x[:, None, :] - self.means.to(x)[None]  # (B, K, D)
        log_p = (
            self.weights.to(x).log()[None]
            - 0.5 * diff.pow(2).sum(-1) / var
            - 0.5 * self.dim * torch.log(2 * torch.pi * var)
        )  # (B, K)
        return log_p, diff / var[..., None]

    def log_prob(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> torch.Tensor:
        """log p_sigma(x), the density of the data convolved with N(0, sigma^2 I); x (B, D)."""
        log_p, _ = self._log_components(x, sigma)
        return torch.logsumexp(log_p, dim=1)

    def component_logits(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> torch.Tensor:
        """log(w_k N(x; mu_k, (std_k^2 + sigma^2) I)), (B, K): the logits of the exact Bayes classifier
        p(k | x, sigma) of the noisy mixture (its softmax), e.g. to check classifier guidance on the toy."""
        return self._log_components(x, sigma)[0]

    def score(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Exact grad_x log p_sigma(x) for x (B, D) and sigma a float or (B,) tensor."""
        log_p, scaled_diff = self._log_components(x, sigma)
        resp = torch.softmax(log_p, dim=1)  # (B, K) posterior over components
        return -(resp[..., None] * scaled_diff).sum(1)  # (B, D)

    def mode_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Share of points nearest to each mean (how much mass samples put on each mode)."""
        nearest = torch.cdist(x, self.means.to(x)).argmin(1)
        return torch.bincount(nearest, minlength=self.weights.numel()).float() / x.shape[0]


@torch.no_grad()
def dsm_optimum(data: torch.Tensor, points: torch.Tensor, sigma: float) -> torch.Tensor:
    """The function that minimises the DSM loss at level ``sigma``, computed from data samples alone.

    At each point x~ the loss is minimised by E[-z / sigma | x~] = E[x - x~ | x~] / sigma^2, the posterior
    mean over which data point (and noise) produced x~: a weighted average over ``data`` (N, D) with
    weights proportional to N(x~; x_i, sigma^2 I). Vincent (2011) showed that this equals the score of
    p_sigma, which is why DSM learns the score of the noisy data. Returns (B, D) for ``points`` (B, D).
    """
    d2 = torch.cdist(points, data).pow(2)  # (B, N)
    w = torch.softmax(-d2 / (2 * sigma**2), dim=1)
    return (w @ data - points) / sigma**2


def two_gaussians(weight: float = 0.2, distance: float = 5.0, std: float = 1.0) -> GaussianMixture:
    """NCSN's demonstration: two well separated modes with weights ``weight`` and 1 - weight."""
    return GaussianMixture(
        weights=torch.tensor([weight, 1.0 - weight]),
        means=torch.tensor([[-distance, -distance], [distance, distance]]),
        stds=torch.tensor([std, std]),
    )


class ToyScoreNet(tnn.Module):
    """A small MLP s(x, sigma) for 2-D data, conditioned on log sigma, output divided by sigma."""

    def __init__(self, dim: int = 2, hidden: int = 128):
        super().__init__()
        self.net = tnn.Sequential(
            tnn.Linear(dim + 1, hidden), tnn.SiLU(),
            tnn.Linear(hidden, hidden), tnn.SiLU(),
            tnn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, sigma.log()[:, None]], dim=1)  # (B, D + 1)
        return self.net(h) / sigma[:, None]  # NCSNv2 technique 3


def train_toy_score(
    data: torch.Tensor,
    sigmas: torch.Tensor,
    loss: str | Callable = "dsm",
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[ToyScoreNet, list[float], float]:
    """Train a :class:`ToyScoreNet` with ``"dsm"`` or ``"ssm"`` (sliced) score matching.

    ``loss`` may also be a function ``(score_fn, x, sigmas, generator) -> scalar``, such as notebook 01's
    DSM exercise: it replaces the package's loss and is timed the same way.
    Returns (net, per-step losses, seconds per step), so the two losses can be timed side by side.
    """
    import time

    from .losses import dsm_loss, sliced_score_matching_loss

    if not callable(loss) and loss not in ("dsm", "ssm"):
        raise ValueError(f"loss must be 'dsm', 'ssm' or a function (score_fn, x, sigmas, generator), got {loss!r}")
    net = ToyScoreNet(dim=data.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
        x = data[idx]
        if callable(loss):
            value = loss(net, x, sigmas, generator)
        elif loss == "dsm":
            value = dsm_loss(net, x, sigmas, generator=generator)
        else:
            value = sliced_score_matching_loss(net, x, sigmas, generator=generator, variance_reduced=True)
        opt.zero_grad()
        value.backward()
        opt.step()
        history.append(value.item())
    return net.eval(), history, (time.perf_counter() - t0) / max(steps, 1)
