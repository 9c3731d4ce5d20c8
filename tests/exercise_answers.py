"""Learners' answers to the exercises, written the ways learners write them (shared by the table tests).

Each builder returns a function with the exercise's signature; its switches plant one mistake, one contract
violation or one style of a correct answer. They are written independently of the checkers' own planted
answers, so a table of them tests that the checkers recognise what learners write, not what they planted.
"""

import math

import torch
import torch.nn.functional as F


def step(noise=lambda a: math.sqrt(2 * a), drift=1.0, after=None):
    """x + drift * alpha * score + noise(alpha) * z, the result passed through ``after``."""
    def my_langevin_step(x, score, alpha, z):
        out = x + drift * alpha * score + noise(alpha) * z
        return out if after is None else after(out)
    return my_langevin_step


def dsm(loss_of=None, z="randn", order="sigma first", clean=False, per_batch=False, sigma_shape=(-1,), after=None,
        no_grad=False):
    """A DSM loss: draws in ``order``, z from the generator or randn_like, the score at x~ (or the clean x),
    sigma passed as ``sigma.view(sigma_shape)``; ``loss_of(s, z, score)`` (s of shape (B, 1)) reduces it."""
    loss_of = loss_of or (lambda s, z_, sc: 0.5 * (s * sc + z_).pow(2).sum(1).mean())

    def my_dsm_loss(score_fn, x, levels, generator):
        def draw_sigma():
            idx = torch.randint(0, len(levels), (1 if per_batch else x.shape[0],), generator=generator)
            return levels[idx].expand(x.shape[0])

        def draw_z():
            return torch.randn_like(x) if z == "randn_like" else torch.randn(x.shape, generator=generator)

        if order == "sigma first":
            sigma, noise = draw_sigma(), draw_z()
        else:
            noise = draw_z()
            sigma = draw_sigma()
        s = sigma[:, None]
        with torch.set_grad_enabled(not no_grad):
            score = score_fn(x if clean else x + s * noise, sigma.reshape(sigma_shape))
            loss = loss_of(s, noise, score)
        return loss if after is None else after(loss)
    return my_dsm_loss


def search(ratio=lambda a, b: a / b, exponent=lambda L: 1 / (L - 1), target_of=lambda t: t, result=lambda L: L):
    """Count L up from 2 until technique 2's overlap reaches the target."""
    from pegasus_course import sigmas

    def my_num_levels(sigma_1, sigma_L, dim, target):
        L = 2
        while sigmas.technique2_overlap(ratio(sigma_1, sigma_L) ** exponent(L), dim) < target_of(target):
            L += 1
        return result(L)
    return my_num_levels


def recursion(start=lambda g: g**2, r_of=lambda e, s: 1 - e / s**2, square=True, noise=2.0, steps=lambda T: T,
              result=lambda v: v):
    """Iterate the variance of x_t = r x_(t-1) + sqrt(2 alpha) z, in units of sigma_i^2."""
    def my_variance_ratio(eps, sigma_L, gamma, T):
        r, v = r_of(eps, sigma_L), start(gamma)
        for _ in range(steps(T)):
            v = (r * r if square else r) * v + noise * eps / sigma_L**2
        return result(v)
    return my_variance_ratio


def inpp(norm=lambda x, eps: F.instance_norm(x, eps=eps), stat_dims=(2, 3), over=1, sign=1.0, paper=False,
         unbiased_means=False, after=None):
    """InstanceNorm++ with the normalisation ``norm`` and the channel means' m, s taken over axis ``over``."""
    def my_instance_norm_pp(x, gamma, alpha, beta, eps=1e-5):
        mu = x.mean(stat_dims, keepdim=True)
        m, s2 = mu.mean(over, keepdim=True), mu.var(over, keepdim=True, unbiased=unbiased_means)
        term = sign * alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)
        g, b = gamma.view(1, -1, 1, 1), beta.view(1, -1, 1, 1)
        out = g * norm(x, eps) + b + term if paper else g * (norm(x, eps) + term) + b
        return out if after is None else after(out)
    return my_instance_norm_pp


def train_step(loss_of=None, seen=lambda x, s, z: x + s * z, ema="mul_add", zero=True, ema_first=False, ret=None):
    """One training step: ``loss_of(s, z, score)`` on the model's score at ``seen``, Adam, the EMA ``ema``;
    ``ret(loss)`` is what it returns (default: the loss, detached)."""
    loss_of = loss_of or (lambda s, z, sc: 0.5 * (s * sc + z).pow(2).flatten(1).sum(1).mean())

    def update(avg_model, model, decay):
        with torch.no_grad():
            avg, new = list(avg_model.parameters()), list(model.parameters())
            if ema == "mul_add":
                for a, w in zip(avg, new):
                    a.mul_(decay).add_(w, alpha=1 - decay)
            elif ema == "lerp":
                for a, w in zip(avg, new):
                    a.lerp_(w, 1 - decay)
            elif ema == "foreach":
                torch._foreach_mul_(avg, decay)
                torch._foreach_add_(avg, new, alpha=1 - decay)
            elif ema == "copy":
                for a, w in zip(avg, new):
                    a.copy_(decay * a + (1 - decay) * w)
            elif ema == "swapped":
                for a, w in zip(avg, new):
                    a.mul_(1 - decay).add_(w, alpha=decay)

    def my_training_step(model, ema_model, optimizer, x, sigma, z, ema_decay):
        s = sigma.view(-1, 1, 1, 1)
        loss = loss_of(s, z, model(seen(x, s, z), sigma))
        if zero:
            optimizer.zero_grad()
        if ema_first:
            update(ema_model, model, ema_decay)
        loss.backward()
        optimizer.step()
        if ema is not None and not ema_first:
            update(ema_model, model, ema_decay)
        return loss.detach() if ret is None else ret(loss)
    return my_training_step


def sampler(alpha_of=lambda e, s, lv: e * (s / lv[-1]) ** 2, noise_scale=lambda a, e: math.sqrt(2 * a), drift=1.0,
            steps=range, first=1, denoise_at=-1, z_of=None, sigma_of=None, after=None):
    """Annealed Langevin: T steps per level from ``steps(T)``, z from the source at ``first + i * T + j`` (or
    ``z_of(x)``), then x + sigma^2 s(x, sigma) at level ``denoise_at`` (None: no denoising step)."""
    def my_annealed_langevin(score_fn, x0, sigmas, T, eps, noise):
        levels = [float(v) for v in sigmas]
        x = x0
        for i, s in enumerate(levels):
            alpha = alpha_of(eps, s, levels)
            sv = torch.full((x.shape[0],), s, device=x.device) if sigma_of is None else sigma_of(s, x)
            for j in steps(T):
                z = noise(first + i * T + j, x.shape, x.device, x.dtype) if z_of is None else z_of(x)
                x = x + drift * alpha * score_fn(x, sv) + noise_scale(alpha, eps) * z
        if denoise_at is not None:
            s = levels[denoise_at]
            x = x + s**2 * score_fn(x, torch.full((x.shape[0],), s, device=x.device))
        return x if after is None else after(x)
    return my_annealed_langevin


def interp(weights=lambda k, n: (math.cos(k * math.pi / (2 * (n + 1))), math.sin(k * math.pi / (2 * (n + 1)))),
           mix_start=True, after=None):
    """Mix every draw of the two tapes with ``weights(k, n)`` and replay the mixed tape once."""
    from pegasus_course import sampling

    def my_interpolate(score_fn, tape1, tape2, n, ks, sigmas, T, eps):
        mixed = {}
        for index in tape1:
            if index == 0 and not mix_start:
                mixed[index] = tape1[0].repeat(len(ks), 1, 1, 1)
                continue
            mixed[index] = torch.cat([weights(k, n)[0] * tape1[index] + weights(k, n)[1] * tape2[index] for k in ks])
        out = sampling.annealed_langevin(score_fn, (len(ks), *tape1[0].shape[1:]), sigmas, T, eps,
                                         noise=sampling.TapeNoise(mixed), progress=False)
        return out if after is None else after(out)
    return my_interpolate


def guided(log_p=lambda logits: logits.log_softmax(-1), reduce=torch.sum, combine=lambda sc, w, g: sc + w * g,
           after=None):
    """score + scale * grad of reduce(log_p(logits)[b, y_b])."""
    def my_guided_score(score_fn, classifier_fn, x, sigma, y, scale):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            picked = log_p(classifier_fn(xg, sigma))[torch.arange(x.shape[0], device=x.device), y]
            (grad,) = torch.autograd.grad(reduce(picked), xg)
        out = combine(score_fn(x, sigma), scale, grad)
        return out if after is None else after(out)
    return my_guided_score
