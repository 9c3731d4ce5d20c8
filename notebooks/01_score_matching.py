# %% [markdown]
# # 01 · Score matching and Langevin dynamics, on 2-D toys
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/01_score_matching.ipynb)
#
# **Learning objectives**
# 1. Read a *score* $\nabla_x \log p(x)$ as a vector field that points towards likely data.
# 2. See why Langevin dynamics with one small noise level gets the *weights* of separated modes
#    wrong, and how annealing over many noise levels fixes it (the NCSN paper's demonstration).
# 3. Train a small score network with **denoising** and with **sliced** score matching, and time them.
#
# **Symbols** (the same names are used in the code)
#
# | symbol | code | meaning |
# |---|---|---|
# | $s_\theta(x, \sigma)$ | `score_fn(x, sigma)` | the model's estimate of $\nabla_x \log p_\sigma(x)$ |
# | $\sigma_1 > \dots > \sigma_L$ | `sigmas` (descending) | noise levels; $p_\sigma$ = data convolved with $\mathcal N(0, \sigma^2 I)$ |
# | $\tilde x = x + \sigma z$ | `x_tilde` | a perturbed data point, $z \sim \mathcal N(0, I)$ |
# | $\epsilon$ | `step_lr` | the Langevin base step |
# | $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ | `alpha` | the step used at level $i$ |
# | $T$ | `n_steps_each` | Langevin steps per level |
# %%
# On Google Colab, fetch the course and install it; elsewhere this cell does nothing.
import os, subprocess, sys
if "google.colab" in sys.modules:
    if not os.path.isdir("/content/pegasus-course"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/pegasus-course/pegasus-course",
                        "/content/pegasus-course"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/pegasus-course"], check=True)
    sys.path.insert(0, "/content/pegasus-course")
    os.chdir("/content/pegasus-course/notebooks")

# %% tags=["nbval-ignore-output"]
import math

import torch

from pegasus_course import exercises, losses, plotting, profiles, sampling, sigmas, toy

profile, g = profiles.start(seed=0)

# %% [markdown]
# ## 1. A toy distribution whose score we know exactly
#
# A mixture of two Gaussians, weights 0.2 and 0.8, far apart. Adding Gaussian noise of scale
# $\sigma$ to a Gaussian mixture gives another Gaussian mixture (each variance grows by
# $\sigma^2$), so the score of every perturbed density $p_\sigma$ is known in closed form.
# Look for: at small $\sigma$ the arrows point to the nearest mode and vanish in between;
# at large $\sigma$ the field is smooth and points to the centre of everything.

# %%
gm = toy.two_gaussians(weight=0.2, distance=5.0)
fig = plotting.score_field(gm.score, [0.1, 1.0, 4.0, 10.0], density=gm.log_prob)

# %% [markdown]
# ## 2. Langevin dynamics: one noise level vs annealing
#
# Langevin dynamics draws samples with only the score:
# $x \leftarrow x + \alpha\, s(x, \sigma) + \sqrt{2\alpha}\, z$. With the exact score at one small
# $\sigma$, points started uniformly roll into the nearest mode and stay there, so the two modes
# end up weighted by how much of the start area drained into each - not 0.2 and 0.8.
# **Annealed** Langevin dynamics starts at a large $\sigma$, where the modes are connected, and
# lowers it step by step (NCSN, Algorithm 1).

# %%
x0 = torch.rand(4000, 2, generator=g) * 16 - 8
single = sampling.langevin(gm.score, x0, step_size=0.01, n_steps=1000, sigma=0.01, generator=g)
sched = sigmas.geometric_sigmas(20.0, 0.5, 20)
annealed = sampling.annealed_langevin(gm.score, (4000, 2), sched, n_steps_each=100, step_lr=5e-3, generator=g,
                                      progress=False)
w_single, w_annealed = gm.mode_weights(single), gm.mode_weights(annealed)
print(f"true weights         0.20 / 0.80")
print(f"Langevin, one sigma  {w_single[0]:.2f} / {w_single[1]:.2f}")
print(f"annealed Langevin    {w_annealed[0]:.2f} / {w_annealed[1]:.2f}")
fig = plotting.scatter_2d({"data": gm.sample(4000, generator=g), "Langevin, one small sigma": single,
                           "annealed Langevin": annealed})

# %%
assert abs(float(w_annealed[0]) - 0.2) < 0.05, "annealed Langevin should recover the 0.2 / 0.8 weights"
assert abs(float(w_single[0]) - 0.2) > 0.1, "a single small sigma should get the weights wrong"

# %% [markdown]
# ### Exercise: one Langevin step
#
# Write $x \leftarrow x + \alpha\, s(x) + \sqrt{2\alpha}\, z$.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_langevin_step(x, score, alpha, z):
    """One Langevin step with step size alpha, the score at x, and standard normal noise z."""
    raise NotImplementedError("Exercise: write one Langevin step")

# %%
exercises.check_langevin_step(my_langevin_step);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_langevin_step(x, score, alpha, z):
    return x + alpha * score + math.sqrt(2 * alpha) * z

# %%
assert exercises.check_langevin_step(my_langevin_step).passed

# %% [markdown]
# ## 3. Learning the score: denoising vs sliced score matching
#
# We rarely know the score. **Denoising score matching** (DSM, the paper's eq. 2) trains
# $s_\theta$ to point from a perturbed point back to where it came from:
#
# $$\ell(\theta) = \tfrac12\, \mathbb E \big\| \sigma\, s_\theta(x + \sigma z, \sigma) + z \big\|^2,$$
#
# weighted by $\sigma^2$ so every level counts alike, one $\sigma$ drawn per example.
# **Sliced score matching** (SSM) needs no noise model but a Jacobian-vector product per random
# direction $v$: $v^\top \nabla_x s_\theta\, v + \tfrac12 (v^\top s_\theta)^2$.
# Write DSM yourself first.

# %% [markdown]
# ### Exercise: the DSM loss (eq. 2)
#
# Write the $\sigma^2$-weighted denoising score matching loss
# $\tfrac12\,\mathbb E\,\|\sigma\, s(x + \sigma z, \sigma) + z\|^2$ for 2-D points $x$ of shape $(B, D)$.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_dsm_loss(score_fn, x, levels, generator):
    """1/2 * mean over the batch of || sigma * score_fn(x + sigma z, sigma) + z ||^2 (x of shape (B, D)).

    Draw the levels first, sigma = levels[torch.randint(0, len(levels), (B,), generator=generator)],
    then z = torch.randn(x.shape, generator=generator), as the package does.
    """
    raise NotImplementedError("Exercise: write the DSM loss")

# %%
exercises.check_dsm_loss(my_dsm_loss);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_dsm_loss(score_fn, x, levels, generator):
    sigma = levels[torch.randint(0, len(levels), (x.shape[0],), generator=generator)]  # one level per example
    z = torch.randn(x.shape, generator=generator)
    residual = sigma[:, None] * score_fn(x + sigma[:, None] * z, sigma) + z
    return 0.5 * residual.pow(2).sum(1).mean()

# %%
assert exercises.check_dsm_loss(my_dsm_loss).passed

# %% [markdown]
# Now train the same small MLP both ways on samples of the mixture. The paper says DSM is about
# four times faster than SSM; rather than assume it, measure the seconds per step on this machine.

# %% tags=["nbval-ignore-output"]
toy_sigmas = sigmas.geometric_sigmas(20.0, 0.5, 10)
train_data = gm.sample(10_000, generator=g)
net_dsm, loss_dsm, sec_dsm = toy.train_toy_score(train_data, toy_sigmas, "dsm", profile.toy_train_steps,
                                                 generator=torch.Generator().manual_seed(2))
net_ssm, loss_ssm, sec_ssm = toy.train_toy_score(train_data, toy_sigmas, "ssm", profile.toy_train_steps,
                                                 generator=torch.Generator().manual_seed(2))
print(f"DSM {1000 * sec_dsm:.2f} ms/step, SSM {1000 * sec_ssm:.2f} ms/step: SSM is {sec_ssm / sec_dsm:.1f}x slower")

# %%
fig = plotting.plot_curve(loss_dsm, title="DSM training loss (toy)", smooth=50)

# %% [markdown]
# Both trained networks sample the mixture with annealed Langevin dynamics; compare the mode
# weights with the truth (0.2 / 0.8). With the `ci` profile the networks train only briefly.

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    s_dsm = sampling.annealed_langevin(net_dsm, (profile.toy_n_samples, 2), toy_sigmas, 50, 5e-3, generator=g,
                                       progress=False)
    s_ssm = sampling.annealed_langevin(net_ssm, (profile.toy_n_samples, 2), toy_sigmas, 50, 5e-3, generator=g,
                                       progress=False)
print("mode weights, DSM-trained:", [round(float(w), 2) for w in gm.mode_weights(s_dsm)])
print("mode weights, SSM-trained:", [round(float(w), 2) for w in gm.mode_weights(s_ssm)])
fig = plotting.scatter_2d({"DSM-trained net": s_dsm, "SSM-trained net": s_ssm})

# %% [markdown]
# ## Summary
#
# * A score field is all Langevin dynamics needs; one small $\sigma$ is not enough for separated modes.
# * Annealing from large to small $\sigma$ recovers the mode weights.
# * DSM learns the score from noisy copies of the data, cheaply; it is what we train images with.
#
# Next, notebook **02** asks how many levels, how large and how small, for real images.
