"""The course's quality number: a Frechet distance between two image sets, with its bootstrap interval.

The idea behind FID (Heusel et al. 2017): fit a Gaussian to the features of each image set and compute
d^2 = |mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)).
FID uses an Inception network trained on ImageNet; its weights cannot be fetched offline, so the course
uses the pooled features of its own ten-class CIFAR-10 classifier
(``checkpoints/cifar10-ten-class-32.safetensors``). The number is comparable only between runs that use
this same network and the same number of images, never with published FIDs.
"""

from __future__ import annotations

import os

import torch

from .classifier import DEFAULT_FEATURE_NET, as_float_images
from .intervals import bootstrap_interval


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    f = features.double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"Need at least two feature vectors (N, F), got shape {tuple(features.shape)}.")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("gaussian_stats: the features contain NaN or inf: check the images (finite, in [0, 1]) and "
                         "the feature network's weights.")
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / (f.shape[0] - 1)


def _sqrtm_psd(c: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(c)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """d^2 between N(mu_a, cov_a) and N(mu_b, cov_b); Tr (C_a C_b)^(1/2) through a symmetric square root."""
    if not all(bool(torch.isfinite(t).all()) for t in (mu_a, cov_a, mu_b, cov_b)):
        raise ValueError("frechet_distance_from_stats: the means or covariances hold NaN or inf: compute them with "
                         "gaussian_stats from finite features.")
    s = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(s @ cov_b @ s).clamp_min(0).sqrt().sum()  # Tr (C_a C_b)^(1/2)
    d2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return float(d2.clamp_min(0))


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F)."""
    for f in (features_a, features_b):
        if f.ndim != 2:
            raise ValueError(f"frechet_distance: expected features of shape (N, F), one row per image, got shape "
                             f"{tuple(f.shape)}" + (": add the feature axis with f[:, None]" if f.ndim == 1 else "")
                             + ".")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"Feature sizes differ: {features_a.shape[1]} vs {features_b.shape[1]}.")
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


@torch.no_grad()
def extract_features(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Pooled features (N, F) of images (float in [0, 1] or uint8) from a classifier's ``features``."""
    from .classifier import check_clean_images, clean_sigma, sigma_vector

    from .checks import check_positive_int

    check_clean_images(images, net, "extract_features")
    batch_size = check_positive_int(batch_size, "extract_features: batch_size")
    device = next(net.parameters()).device
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = as_float_images(images[start:start + batch_size]).to(device)
        out.append(net.features(x, sigma_vector(clean_sigma(net), x.shape[0], device)).float().cpu())
    return torch.cat(out)


def feature_frechet_distance(net: torch.nn.Module, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """The course's quality number: Frechet distance in ``net``'s feature space (lower is closer)."""
    return frechet_distance(extract_features(net, images_a), extract_features(net, images_b))


def load_feature_net(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """The fixed ten-class CIFAR-10 classifier whose features the Frechet distance uses."""
    from .classifier import load_classifier

    return load_classifier(DEFAULT_FEATURE_NET if path is None else path, device=device)


def frechet_distance_interval(features_a: torch.Tensor, features_b: torch.Tensor, n_boot: int = 200,
                              level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, lo, hi): :func:`frechet_distance` of two feature sets (N_a, F), (N_b, F) and its
    percentile-bootstrap interval (each set's images drawn again with replacement, ``n_boot`` times).

    Why: a Frechet distance from a few dozen images moves a lot with the images drawn; the interval says
    whether two runs' distances differ by more than that. Resampled sets repeat images, which makes the
    distance larger on average: for two sets from one distribution the interval can lie above the
    estimate (the estimate of two identical sets is 0, the resampled distances are not).
    """
    frechet_distance(features_a, features_b)  # one clear message for bad features before any resampling
    return bootstrap_interval(frechet_distance, features_a, features_b, n_boot=n_boot, level=level, seed=seed)
