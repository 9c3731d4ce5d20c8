"""Reference solutions of the course's exercises, kept out of the notebooks until a learner asks.

A notebook loads one with ``exercises.solution("langevin_step")`` (nothing is shown) and prints it with
``exercises.show_solution("langevin_step")``, which writes it as ``my_langevin_step`` so it can be pasted
over the stub. Each function is written as a learner would write it in its notebook, with the names that
notebook imports (``math``, ``torch``, ``sigmas``, ``sampling``); the checkers beside them (one module per
notebook) compare the learner's function with the package, not with these. Nothing imports this module but
:func:`pegasus_course.exercises.solution`.
"""

from __future__ import annotations

import math

import torch

from .. import sampling, sigmas

__all__ = ["langevin_step", "dsm_loss", "num_levels", "variance_ratio", "instance_norm_pp", "training_step",
           "annealed_langevin", "interpolate", "guided_score"]


# ----- notebook 01
def langevin_step(x, score, alpha, z):
    return x + alpha * score + math.sqrt(2 * alpha) * z


def dsm_loss(score_fn, x, levels, generator):
    sigma = levels[torch.randint(0, len(levels), (x.shape[0],), generator=generator)]  # one level per example
    z = torch.randn(x.shape, generator=generator)
    residual = sigma[:, None] * score_fn(x + sigma[:, None] * z, sigma) + z  # sigma * s(x~) - (-z)
    return 0.5 * residual.pow(2).sum(1).mean()  # sum over the dimensions, mean over the batch


# ----- notebook 02
def num_levels(sigma_1, sigma_L, dim, target):
    L = 2
    while sigmas.technique2_overlap((sigma_1 / sigma_L) ** (1 / (L - 1)), dim) < target:
        L += 1  # L levels have L - 1 ratios between them
    return L


def variance_ratio(eps, sigma_L, gamma, T):
    r = 1 - eps / sigma_L**2  # x_t = r x_(t-1) + sqrt(2 alpha_i) z_t, the same r at every level
    v = gamma**2  # the previous level's variance, in units of sigma_i^2
    for _ in range(T):
        v = r**2 * v + 2 * eps / sigma_L**2
    return v


# ----- notebook 03
def instance_norm_pp(x, gamma, alpha, beta, eps=1e-5):
    mu = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1) channel means
    h = (x - mu) / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=False) + eps)
    m, s2 = mu.mean(1, keepdim=True), mu.var(1, keepdim=True, unbiased=False)
    h = h + alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)  # give the colour back
    return gamma.view(1, -1, 1, 1) * h + beta.view(1, -1, 1, 1)


# ----- notebook 04
def training_step(model, ema, optimizer, x, sigma, z, ema_decay):
    s = sigma.view(-1, 1, 1, 1)
    loss = 0.5 * (s * model(x + s * z, sigma) + z).pow(2).flatten(1).sum(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # the EMA of the new weights, parameter by parameter
        for avg, w in zip(ema.parameters(), model.parameters()):
            avg.mul_(ema_decay).add_(w, alpha=1 - ema_decay)
    return loss.detach()


# ----- notebook 05
def annealed_langevin(score_fn, x0, sigmas, T, eps, noise):
    x = x0
    sigma_L = float(sigmas[-1])
    for i, sigma_i in enumerate(sigmas.tolist()):
        alpha = eps * sigma_i**2 / sigma_L**2
        sigma_vec = torch.full((x.shape[0],), sigma_i, device=x.device)
        for j in range(T):
            z = noise(1 + i * T + j, x.shape, x.device, x.dtype)
            x = x + alpha * score_fn(x, sigma_vec) + math.sqrt(2 * alpha) * z
    return x + sigma_L**2 * score_fn(x, torch.full((x.shape[0],), sigma_L, device=x.device))


# ----- notebook 06
def interpolate(score_fn, tape1, tape2, n, ks, sigmas, T, eps):
    angles = torch.tensor([k * math.pi / (2 * (n + 1)) for k in ks]).view(-1, 1, 1, 1)
    mixed = {}
    for index in tape1:  # every draw, z_0 included
        z1, z2 = tape1[index], tape2[index]
        mixed[index] = angles.cos().to(z1) * z1 + angles.sin().to(z1) * z2
    shape = (len(ks), *tape1[0].shape[1:])
    return sampling.annealed_langevin(score_fn, shape, sigmas, T, eps, noise=sampling.TapeNoise(mixed),
                                      progress=False)


# ----- notebook 07
def guided_score(score_fn, classifier_fn, x, sigma, y, scale):
    with torch.enable_grad():  # samplers run under torch.no_grad()
        xg = x.detach().requires_grad_(True)
        log_p = classifier_fn(xg, sigma).log_softmax(-1)
        (grad,) = torch.autograd.grad(log_p[torch.arange(x.shape[0]), y].sum(), xg)
    return score_fn(x, sigma) + scale * grad
