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

    def __post_init__(self):
        w, m, sd = (torch.as_tensor(t) for t in (self.weights, self.means, self.stds))
        k = w.shape[0] if w.ndim == 1 else -1
        if w.ndim != 1 or m.ndim != 2 or tuple(sd.shape) != (k,) or m.shape[0] != k or k < 1:
            raise ValueError(f"GaussianMixture: expected weights (K,), means (K, D) and stds (K,), got shapes "
                             f"{tuple(w.shape)}, {tuple(m.shape)} and {tuple(sd.shape)}.")
        if not (bool(torch.isfinite(w).all()) and bool((w >= 0).all()) and float(w.sum()) > 0):
            raise ValueError(f"GaussianMixture: weights must be finite, 0 or more and not all 0, got {w.tolist()}.")
        if not (bool(torch.isfinite(m).all()) and bool(torch.isfinite(sd).all()) and bool((sd > 0).all())):
            raise ValueError(f"GaussianMixture: means must be finite and stds positive and finite, got stds "
                             f"{sd.tolist()}.")
        for name, t in (("weights", w), ("means", m), ("stds", sd)):
            object.__setattr__(self, name, t)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        from .checks import check_positive_int

        n = check_positive_int(n, "GaussianMixture.sample: n")
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator)
        return self.means[comp] + self.stds[comp, None] * z

    def _log_components(self, x: torch.Tensor, sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"GaussianMixture: expected points (B, {self.dim}), got shape {tuple(x.shape)}.")
        if not torch.is_tensor(sigma):  # a tensor (B,) comes from a sampler, checked there
            from .checks import check_sigma

            check_sigma(sigma, "GaussianMixture", allow_zero=True, hint="0 is the data itself.")
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
    from .checks import check_sigma

    sigma = check_sigma(sigma, "dsm_optimum")
    d2 = torch.cdist(points, data).pow(2)  # (B, N)
    w = torch.softmax(-d2 / (2 * sigma**2), dim=1)
    return (w @ data - points) / sigma**2


@torch.no_grad()
def flip_point(mixture: GaussianMixture, sigma: float, n_grid: int = 20_001) -> torch.Tensor | None:
    """Where, on the segment from the first mean to the second, the score of p_sigma stops pointing to the
    first mode and starts pointing to the second: the zero of its component along the means' axis that
    crosses from negative to positive (float64, shape (D,)). None where there is no such point (the modes have
    merged into one at this sigma). Two-component mixtures only; a grid scan, then bisection.
    """
    from .checks import check_positive_int, check_sigma

    if mixture.weights.numel() != 2:
        raise ValueError(f"flip_point: needs a two-component mixture (two modes), got {mixture.weights.numel()}.")
    sigma = check_sigma(sigma, "flip_point", allow_zero=True, hint="0 is the data itself.")
    n_grid = check_positive_int(n_grid, "flip_point: n_grid (points scanned between the means)", minimum=3)
    start, end = mixture.means[0].double(), mixture.means[1].double()
    axis = end - start

    def along(t: torch.Tensor) -> torch.Tensor:  # the score's component along the axis at start + t axis
        return mixture.score(start + t[:, None] * axis, sigma) @ axis

    t = torch.linspace(0.0, 1.0, n_grid, dtype=torch.float64)
    c = along(t)
    up = torch.nonzero((c[:-1] < 0) & (c[1:] >= 0)).flatten()
    if not len(up):
        return None
    lo, hi = t[int(up[0])].clone(), t[int(up[0]) + 1].clone()
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(along(mid.reshape(1))[0]) < 0:
            lo = mid
        else:
            hi = mid
    return start + (lo + hi) / 2 * axis


def two_gaussians(weight: float = 0.2, distance: float = 5.0, std: float = 1.0) -> GaussianMixture:
    """NCSN's demonstration: two well separated modes with weights ``weight`` and 1 - weight."""
    if not 0 < float(weight) < 1:  # NaN too
        raise ValueError(f"two_gaussians: weight is the first mode's share, strictly between 0 and 1, got {weight!r}.")
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
        from .checks import check_sigmas

        if not torch.is_tensor(sigma) or tuple(sigma.shape) != (x.shape[0],):
            raise ValueError(f"ToyScoreNet: sigma must hold one level per point, shape ({x.shape[0]},), got "
                             f"{tuple(sigma.shape) if torch.is_tensor(sigma) else type(sigma).__name__}.")
        check_sigmas(sigma, "ToyScoreNet")  # log sigma: positive levels only (read on the host only)
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
    progress: bool = False,
) -> tuple[ToyScoreNet, list[float], float]:
    """Train a :class:`ToyScoreNet` with ``"dsm"`` or ``"ssm"`` (sliced) score matching.

    ``loss`` may also be a function ``(score_fn, x, sigmas, generator) -> scalar``, such as notebook 01's
    DSM exercise: it replaces the package's loss and is timed the same way.
    Returns (net, per-step losses, seconds per step), so the two losses can be timed side by side.
    ``progress`` shows a bar over the steps.
    """
    import time

    from .losses import dsm_loss, sliced_score_matching_loss
    from .sampling import progress_bar

    from .checks import check_number, check_positive_int

    if not callable(loss) and loss not in ("dsm", "ssm"):
        raise ValueError(f"loss must be 'dsm', 'ssm' or a function (score_fn, x, sigmas, generator), got {loss!r}")
    if not torch.is_tensor(data) or data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"train_toy_score: data must be points (N, D), N >= 1, got "
                         f"{tuple(data.shape) if torch.is_tensor(data) else type(data).__name__}.")
    steps = check_positive_int(steps, "train_toy_score: steps")
    batch_size = check_positive_int(batch_size, "train_toy_score: batch_size")
    lr = check_number(lr, "train_toy_score: lr (the learning rate)", positive=True)
    net = ToyScoreNet(dim=data.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    t0 = time.perf_counter()
    name = "your loss" if callable(loss) else loss.upper()
    for _ in progress_bar(range(steps), progress=progress, desc=f"{name} training", unit="step"):
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
