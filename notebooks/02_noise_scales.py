# %% [markdown]
# # 02 · Noise scales: how many, how large, how small
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/02_noise_scales.ipynb)
#
# **Learning objectives**
# 1. Compute the largest noise level $\sigma_1$ from the real horse and bird images (NCSNv2 technique 1).
# 2. Compute how many levels $L$ a geometric schedule needs for 32, 48 and 64 pixel images (technique 2).
# 3. Compute the Langevin step $\epsilon$ for $T = 5$ steps per level (technique 4).
# 4. Understand why the course trains with the paper's $\sigma_1 = 50$, $L = 232$.
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

import matplotlib.pyplot as plt
import torch

from pegasus_course import data, exercises, plotting, profiles, sigmas

profile, g = profiles.start(seed=0)

# %% [markdown]
# ## 1. Technique 1: $\sigma_1$ = the largest distance between two training images
#
# Langevin dynamics at the largest level must be able to travel between any two training
# images, so $\sigma_1$ should be about the largest pairwise Euclidean distance. With 10,000
# images that is 50 million pairs; `sigmas.max_pairwise_distance` computes it exactly in chunks
# (the `ci` profile uses a subset, so its number is smaller).

# %% tags=["nbval-ignore-output"]
train_set = data.default_data().load("train", max_images=profile.max_train_images)
images = train_set.images.float() / 255  # (N, 3, 32, 32) in [0, 1]
sigma_1, (i, j) = sigmas.max_pairwise_distance(images, return_pair=True)
print(f"{len(images)} images: largest pairwise distance sigma_1 = {sigma_1:.1f}")
fig = plotting.show_images(images[[i, j]], nrow=2, title=f"the farthest pair: {sigma_1:.1f} apart", scale=1.5)

# %% [markdown]
# Pixels in $[0, 1]$ and $D = 3 \times 32 \times 32 = 3072$ dimensions give a largest possible
# distance of $\sqrt{3072} \approx 55$; the farthest real pair (nearly black against nearly
# white) comes close. The paper rounds this to $\sigma_1 = 50$.
#
# ## 2. Technique 2: the ratio between levels, hence $L$
#
# Consecutive levels must overlap so that samples from one level are a good start for the next.
# For a geometric schedule with ratio $\gamma = \sigma_{i}/\sigma_{i+1}$, NCSNv2 asks that
#
# $$\Phi\big(\sqrt{2D}(\gamma - 1) + 3\gamma\big) - \Phi\big(\sqrt{2D}(\gamma - 1) - 3\gamma\big) \approx 0.5 ,$$
#
# and $L$ follows from $\sigma_1$, $\sigma_L$ and $\gamma$.

# %%
# NBVAL_CHECK_OUTPUT
for size in (32, 48, 64):
    dim = 3 * size * size
    gamma = sigmas.noise_scale_ratio(dim)
    L = sigmas.num_noise_scales(50.0, 0.01, dim)
    print(f"{size}x{size}: D = {dim:5d}, gamma = {gamma:.4f}, L = {L}")

# %%
gammas = torch.linspace(1.0, 1.12, 200)
fig, ax = plt.subplots(figsize=(6, 3))
for size in (32, 48, 64):
    ax.plot(gammas, [sigmas.technique2_overlap(float(gm), 3 * size * size) for gm in gammas], label=f"{size}x{size}")
ax.axhline(0.5, color="grey", ls="--")
ax.set(xlabel="ratio gamma", ylabel="overlap", title="technique 2: pick gamma where the overlap is 0.5")
ax.legend();

# %% [markdown]
# ## 3. The paper's choice
#
# For CIFAR-10 ($D = 3072$, $\sigma_1 = 50$, $\sigma_L = 0.01$) the rule gives a little over 200
# levels; the paper uses $L = 232$, a slightly *smaller* ratio. More levels only mean more
# overlap between neighbours (safer, a bit slower to sample); fewer than the rule's would leave
# gaps. So the difference is harmless, and the course trains with the paper's 232 so that its
# results can be compared with the paper's.

# %%
# NBVAL_CHECK_OUTPUT
paper = sigmas.geometric_sigmas(50.0, 0.01, 232)
rule_L = sigmas.num_noise_scales(50.0, 0.01, 3072)
rule = sigmas.geometric_sigmas(50.0, 0.01, rule_L)
for name, s in (("paper", paper), ("technique 2", rule)):
    gamma = float(s[0] / s[1])
    print(f"{name:12s} L = {len(s)}, gamma = {gamma:.5f}, overlap = {sigmas.technique2_overlap(gamma, 3072):.3f}")

# %% [markdown]
# ### Exercise: the geometric schedule
#
# Write $\sigma_i = \sigma_1 (\sigma_L/\sigma_1)^{(i-1)/(L-1)}$ for $i = 1..L$, largest first.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_geometric_sigmas(sigma_max, sigma_min, num_scales):
    """num_scales levels from sigma_max down to sigma_min with a constant ratio (a 1-D tensor)."""
    raise NotImplementedError("Exercise: write the geometric schedule")

# %%
exercises.check_geometric_sigmas(my_geometric_sigmas);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_geometric_sigmas(sigma_max, sigma_min, num_scales):
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num_scales))

# %%
assert exercises.check_geometric_sigmas(my_geometric_sigmas).passed

# %% [markdown]
# ## 4. Technique 4: the step size $\epsilon$ for $T$ steps per level
#
# Annealed Langevin dynamics uses $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ at level $i$. With
# $r = 1 - \epsilon/\sigma_L^2$, NCSNv2 picks the $\epsilon$ that brings
# $r^{2T}\big(\gamma^2 - \tfrac{2\epsilon}{\sigma_L^2 - \sigma_L^2 r^2}\big) + \tfrac{2\epsilon}{\sigma_L^2 - \sigma_L^2 r^2}$
# closest to 1.

# %%
# NBVAL_CHECK_OUTPUT
for T in (1, 3, 5, 10):
    print(f"T = {T:2d}: eps = {sigmas.langevin_step_size(paper, T):.3e}")

# %%
eps = sigmas.langevin_step_size(paper, 5)
alphas = sigmas.step_sizes(paper, eps)
fig, ax = plt.subplots(1, 2, figsize=(8, 3))
ax[0].semilogy(paper.numpy(), ".", ms=3)
ax[0].set(title="sigma_i (L = 232, geometric)", xlabel="level i")
ax[1].semilogy(alphas.numpy(), ".", ms=3, color="tab:orange")
ax[1].set(title="step alpha_i = eps sigma_i^2 / sigma_L^2", xlabel="level i")
fig.tight_layout()

# %% [markdown]
# ### Exercise: the step size of each level
#
# Write $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ for a tensor of descending $\sigma_i$.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_step_sizes(sigmas, eps):
    """The Langevin step alpha_i of every level, for descending sigmas and base step eps."""
    raise NotImplementedError("Exercise: write the step sizes")

# %%
exercises.check_step_size(my_step_sizes);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_step_sizes(sigmas, eps):
    return eps * (sigmas / sigmas[-1]) ** 2

# %%
assert exercises.check_step_size(my_step_sizes).passed

# %% [markdown]
# ## Summary
#
# | quantity | rule | value for CIFAR-10 horses and birds |
# |---|---|---|
# | $\sigma_1$ | technique 1 | the largest pairwise distance (printed above), paper: 50 |
# | $L$ | technique 2 | a little over 200, paper: 232 |
# | $\epsilon$ for $T = 5$ | technique 4 | $\approx 6.2 \times 10^{-6}$ |
#
# Next, notebook **03** builds the network that learns $s_\theta(x, \sigma)$ for all 232 levels at once.
