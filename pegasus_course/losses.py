"""Score matching losses: denoising (DSM, the paper's eq. 2) and sliced (SSM).

Both take any ``score_fn(x, sigma)`` with ``sigma`` of shape (B,), and draw one noise
level per example from the schedule, so every level is trained in every batch on average.
"""

from __future__ import annotations

import torch

from .checks import check_positive_int, check_score_shape, check_sigmas
from .sampling import ScoreFn

REDUCTIONS = ("mean", "sum", "none")


def _check_levels_and_batch(x: torch.Tensor, sigmas, where: str) -> None:
    """At least one noise level and one example: an empty schedule or batch has no loss (not NaN, not 0)."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{where}: x must be a float tensor of examples (B, ...), got "
                        f"{x.dtype if torch.is_tensor(x) else type(x).__name__}.")
    if check_sigmas(sigmas, where).numel() == 0:
        raise ValueError(f"{where}: the schedule is empty: pass at least one noise level (sigmas.geometric_sigmas).")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty (shape {tuple(x.shape)}): pass at least one example.")


def _per_example_sigmas(x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    idx = torch.randint(0, sigmas.numel(), (x.shape[0],), generator=generator, device=x.device)
    return sigmas.to(device=x.device, dtype=x.dtype)[idx]  # (B,)


def _bcast(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.view(-1, *([1] * (x.ndim - 1)))  # (B, 1, 1, 1) for images


def dsm_loss(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Denoising score matching, weighted by sigma^2 (paper eq. 2, NCSN's lambda(sigma) = sigma^2).

    mean over the batch of 1/2 || sigma s(x~, sigma) + (x~ - x) / sigma ||^2,
    with x~ = x + sigma z and one sigma drawn per example.

    Args:
        score_fn: (x, sigma) -> score of x's shape.
        x: clean data (B, ...).
        sigmas: the schedule (L,) to draw levels from.
        generator: source of the level indices and of z.
        reduction: ``"mean"`` over the batch (a scalar), ``"sum"`` over the batch, or ``"none"`` (one
            value per example). Each value is summed over the data's dimensions, never averaged.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"dsm_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    _check_levels_and_batch(x, sigmas, "dsm_loss")
    sigma = _per_example_sigmas(x, sigmas, generator)  # (B,)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return dsm_loss_given(score_fn, x, sigma, z, reduction)


def dsm_loss_given(score_fn: ScoreFn, x: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    """Eq. 2 for draws made elsewhere: ``sigma`` (B,) one level per example and ``z`` of x's shape.

    The training loop draws sigma and z on the device from step-seeded generators and passes them here,
    so a learner's training step and the package's see the very same draws.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"dsm_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    if not torch.is_tensor(sigma) or tuple(sigma.shape) != (x.shape[0],):
        got = tuple(sigma.shape) if torch.is_tensor(sigma) else type(sigma).__name__
        raise ValueError(f"dsm_loss_given: sigma must hold one noise level per example, shape ({x.shape[0]},), got "
                         f"{got}: use torch.full((x.shape[0],), s) for one level.")
    if not torch.is_tensor(z) or z.shape != x.shape:
        got = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"dsm_loss_given: z must have x's shape {tuple(x.shape)} (one draw per value), got {got}.")
    check_sigmas(sigma, "dsm_loss_given")  # values read on the host only: no GPU synchronisation per step
    s = _bcast(sigma, x)
    x_tilde = x + s * z
    # sigma * score + (x~ - x) / sigma = sigma * score + z: the sigma^2-weighted residual.
    residual = s * check_score_shape(score_fn(x_tilde, sigma), x_tilde, "dsm_loss") + z
    per_example = 0.5 * residual.pow(2).flatten(1).sum(1)  # (B,)
    if reduction == "mean":
        return per_example.mean()
    return per_example.sum() if reduction == "sum" else per_example


def sliced_score_matching_loss(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    n_projections: int = 1,
    generator: torch.Generator | None = None,
    variance_reduced: bool = False,
) -> torch.Tensor:
    """Sliced score matching on the perturbed data (Song et al. 2019), weighted by sigma^2.

    For random directions v: v^T (d s / d x) v + 1/2 (v^T s)^2, whose expectation equals
    the Fisher divergence up to a constant. ``variance_reduced`` replaces the second
    term by its expectation over Gaussian v, 1/2 ||s||^2 (SSM-VR). It needs a
    Jacobian-vector product per projection, hence its cost against DSM.

    Args:
        score_fn: (x, sigma) -> score.
        x: clean data (B, ...); it is perturbed with one sigma per example first.
        sigmas: the schedule (L,).
        n_projections: directions v per example.
        generator: source of levels, perturbation and directions.
        variance_reduced: use the SSM-VR form.
    """
    _check_levels_and_batch(x, sigmas, "sliced_score_matching_loss")
    n_projections = check_positive_int(n_projections, "sliced_score_matching_loss: n_projections (directions v per "
                                       "example)")
    sigma = _per_example_sigmas(x, sigmas, generator)
    s = _bcast(sigma, x)
    x_tilde = (x + s * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)).detach()
    x_rep = x_tilde.repeat_interleave(n_projections, 0).requires_grad_(True)  # (B*P, ...)
    sigma_rep = sigma.repeat_interleave(n_projections, 0)
    v = torch.randn(x_rep.shape, generator=generator, device=x.device, dtype=x.dtype)
    score = check_score_shape(score_fn(x_rep, sigma_rep), x_rep, "sliced_score_matching_loss")
    sv = (score * v).flatten(1).sum(1)  # (B*P,) = v^T s
    (grad_sv,) = torch.autograd.grad(sv.sum(), x_rep, create_graph=True)
    jvp = (grad_sv * v).flatten(1).sum(1)  # v^T (ds/dx) v
    if variance_reduced:
        second = 0.5 * score.pow(2).flatten(1).sum(1)
    else:
        second = 0.5 * sv.pow(2)
    weight = sigma_rep.pow(2)
    return (weight * (jvp + second)).mean()


@torch.no_grad()
@torch.no_grad()
def dsm_losses_per_image(score_fn: ScoreFn, x: torch.Tensor, levels: torch.Tensor,
                         generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Eq. 2's sigma^2-weighted loss of every image at every given level: (len(levels), B).

    The same draws z serve every level, so differences between levels are not noise between draws.
    Divide row i by sigma_i^2 for the unweighted loss 0.5 ||s + z / sigma_i||^2 (notebook 04), and
    average over the images (with 2 standard errors) for a level's loss and its uncertainty.
    ``progress`` shows a bar over the levels (one network evaluation each).
    """
    from .sampling import progress_bar

    levels = torch.as_tensor(levels, dtype=torch.float64) if not torch.is_tensor(levels) else levels
    _check_levels_and_batch(x, levels, "dsm_loss_by_level")
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    out = []
    for s in progress_bar(levels.tolist(), progress=progress, desc="loss by level", unit="level"):
        sigma = torch.full((x.shape[0],), float(s), device=x.device, dtype=x.dtype)
        out.append(dsm_loss_given(score_fn, x, sigma, z, reduction="none"))
    return torch.stack(out).cpu()


@torch.no_grad()
def dsm_loss_by_level(score_fn: ScoreFn, x: torch.Tensor, levels: torch.Tensor,
                      generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Eq. 2's loss at each given noise level separately (every image at that level): (len(levels),).

    The training loss mixes all levels in every batch; this says which levels the network has learned
    well. The same draws z are used at every level, so the curve's shape is not noise between levels.
    ``progress`` shows a bar over the levels (one network evaluation each).
    """
    return dsm_losses_per_image(score_fn, x, levels, generator, progress).mean(1)
