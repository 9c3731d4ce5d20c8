"""Notebook 03's exercise: InstanceNorm++.

The next cell runs the learner's function on a batch of images, ``instance_norm_pp(pair, gamma, alpha, beta)``
with float32 images (B, 3, H, W) and parameters of shape (3,), compares the result with the package's
``InstanceNormPlusPlus`` by ``torch.allclose`` and shows it: a tensor of x's shape and dtype.
"""

from __future__ import annotations

import torch

from .core import Check, checker, run, tensor_answer

WHY = ("the next cell compares it with the package's InstanceNormPlusPlus by torch.allclose, which needs x's dtype, "
       "and shows it as images")


def inpp(x, gamma, alpha, beta, eps=1e-5, unbiased=False, with_means=True, means_unbiased=None, norm_dims=(2, 3),
         means_dim=1, means_sign=1.0):
    """InstanceNorm++ written out; ``unbiased`` for the per-channel variances over H x W, ``means_unbiased``
    (default: the same) for the variance of the channel means; the other switches plant mistakes: the axes
    of the normalising statistics, the axis of m and s, the sign of the means term."""
    means_unbiased = unbiased if means_unbiased is None else means_unbiased
    mu = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
    h = (x - x.mean(norm_dims, keepdim=True)) / torch.sqrt(x.var(norm_dims, keepdim=True, unbiased=unbiased) + eps)
    if with_means:
        m = mu.mean(means_dim, keepdim=True)
        s2 = mu.var(means_dim, keepdim=True, unbiased=means_unbiased)
        h = h + means_sign * alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)
    return gamma.view(1, -1, 1, 1) * h + beta.view(1, -1, 1, 1)


def means_term(x, eps=1e-5):
    """(mu_c - m) / s, the term InstanceNorm++ adds back (before alpha)."""
    mu = x.mean((2, 3), keepdim=True)
    return (mu - mu.mean(1, keepdim=True)) / torch.sqrt(mu.var(1, keepdim=True, unbiased=False) + eps)


@torch.no_grad()
def package_inpp(x, gamma, alpha, beta):
    """The package's InstanceNorm++ with the given parameters (the checker's reference)."""
    from ..nn import InstanceNormPlusPlus

    norm = InstanceNormPlusPlus(x.shape[1])
    norm.gamma.copy_(gamma)
    norm.alpha.copy_(alpha)
    norm.beta.copy_(beta)
    return norm(x)


PAPER = ("the paper's form, gamma_c (x - mu_c) / sigma_c + beta_c + alpha_c (mu_c - m) / s (NCSN's appendix), where "
         "gamma and beta do not touch the means term. Not a mistake: the exercise follows NCSN's code and the package, "
         "gamma_c ((x - mu_c) / sigma_c + alpha_c (mu_c - m) / s) + beta_c, where gamma scales the means term too. The "
         "two agree at a new layer's gamma = 1 (the next cell's), not after training; move the means term inside "
         "gamma's bracket to write the code's form")


@checker("instance_norm_pp", "(x, gamma, alpha, beta) -> a tensor of x's shape and dtype")
def check_instance_norm_pp(fn) -> object:
    """Exercise (notebook 03): ``fn(x, gamma, alpha, beta) -> InstanceNorm++(x)`` for x (B, C, H, W) float32 and
    parameters (C,), eps = 1e-5, as the next cell calls it."""
    def case(shape, seed):
        def make():
            g = torch.Generator().manual_seed(seed)
            c = shape[1]
            x = torch.randn(shape, generator=g) * 2 + torch.arange(float(c)).view(1, c, 1, 1)
            return x, torch.rand(c, generator=g) + 0.5, torch.randn(c, generator=g), torch.randn(c, generator=g)
        return make

    def call(args):
        return tensor_answer(fn(*args), args[0], WHY, "your InstanceNorm++")

    mistakes = {
        "plain instance norm: the alpha * (mu_c - m) / s term that restores the colour is missing":
            lambda x, g, a, b: inpp(x, g, a, b, with_means=False),
        "unbiased variances over H x W: normalise each channel with its population variance (unbiased=False), as "
        "instance norm does": [lambda x, g, a, b: inpp(x, g, a, b, unbiased=True),
                               lambda x, g, a, b: inpp(x, g, a, b, unbiased=True, means_unbiased=False)],
        "statistics over the batch (axes 0, 2, 3, as batch norm takes them): each image's channel is normalised "
        "with its own mean and variance over H and W, axes (2, 3)": [
            lambda x, g, a, b: inpp(x, g, a, b, norm_dims=(0, 2, 3)),
            lambda x, g, a, b: inpp(x, g, a, b, means_dim=0),
            lambda x, g, a, b: inpp(x, g, a, b, norm_dims=(0, 2, 3), means_dim=0)],
        "statistics over C x H x W (axes 1, 2, 3, as layer norm takes them): each channel is normalised with its own "
        "mean and variance over H and W, axes (2, 3)": lambda x, g, a, b: inpp(x, g, a, b, norm_dims=(1, 2, 3)),
        "the wrong sign on the means term: it adds alpha_c (mu_c - m) / s, the channel's mean above the average of "
        "the channel means": lambda x, g, a, b: inpp(x, g, a, b, means_sign=-1.0),
    }
    accepted = {"the unbiased variance of the channel means (torch.var's default, as ermongroup/ncsnv2's code "
                "does); the paper's formula and the package use the biased one, which also passes":
                    lambda x, g, a, b: inpp(x, g, a, b, means_unbiased=True)}
    conventions = {PAPER: lambda x, g, a, b: inpp(x, g, torch.zeros_like(a), b) + a.view(1, -1, 1, 1) * means_term(x)}
    return run(Check("instance_norm_pp", "normalise each channel over H and W, then add alpha_c (mu_c - m) / s",
                     [case((2, 3, 5, 6), 0), case((1, 4, 8, 8), 1), case((3, 2, 4, 4), 2)], call, package_inpp,
                     mistakes, conventions, accepted,
                     unchanged={0: "the next cell passes the same images to the package's InstanceNormPlusPlus "
                                   "afterwards and shows them"}))
