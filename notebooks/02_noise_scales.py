# %% [markdown]
# # 02 · Noise scales: how many, how large, how small
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/02_noise_scales.ipynb)
#
# **Learning objectives**
# 1. See what noise of each scale does to an image, from $\sigma = 0.01$ to $50$.
# 2. Compute the largest noise level $\sigma_1$ from the real horse and bird images (NCSNv2 technique 1).
# 3. See the *shells* in which noisy images live, and find by search how many levels $L$ make
#    neighbouring shells overlap (technique 2).
# 4. Know why the smallest level is $\sigma_L = 0.01$.
# 5. Derive the Langevin step $\epsilon$ for $T = 5$ steps per level (technique 4) and check it.
# 6. Understand why the course trains with the paper's $\sigma_1 = 50$, $L = 232$.
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

from pegasus_course import exercises, plotting, sampling, sigmas, workflow

profile, g = workflow.start(seed=0)

# %% [markdown]
# ## 1. What the noise levels look like
#
# The schedule runs from $\sigma_1 = 50$ down to $\sigma_L = 0.01$ (pixels in $[0, 1]$). One training image
# with noise $\sigma z$ added at five levels (shown clipped to $[0, 1]$, which hides how large the noise
# really is: the second line gives the size of the noise against the image's own):

# %% tags=["nbval-ignore-output"]
train_set = workflow.training_images(profile)
images = train_set.images.float() / 255  # (N, 3, 32, 32) in [0, 1]
image = images[0]
levels_shown = [0.0, 0.01, 0.1, 1.0, 10.0, 50.0]
z = torch.randn(image.shape, generator=g)
noisy = torch.stack([image + s * z for s in levels_shown])
fig = plotting.show_images(noisy, nrow=len(levels_shown), scale=1.5, labels=[f"sigma = {s:g}" for s in levels_shown],
                           title="one image, x + sigma z")
print("||sigma z|| / ||x||:", "  ".join(f"{s:g}: {s * z.norm() / image.norm():.2g}" for s in levels_shown[1:]))

# %% [markdown]
# At $\sigma = 0.01$ the change is about 2.5 grey levels of 255: invisible. At $\sigma = 1$ the animal is
# gone to the eye, but a network that has seen many such images can still tell where its colours
# were. From $\sigma = 10$ on the noise is tens to hundreds of times the image: sampling starts there,
# from what is practically pure noise.
#
# ## 2. Technique 1: $\sigma_1$ = the largest distance between two training images
#
# Langevin dynamics at the largest level must be able to travel between any two training
# images, so $\sigma_1$ should be about the largest pairwise Euclidean distance. With 10,000
# images that is 50 million pairs; `sigmas.max_pairwise_distance` computes it exactly in chunks
# (the `ci` profile uses a subset, so its number is smaller).

# %% tags=["nbval-ignore-output"]
sigma_1, (i, j) = sigmas.max_pairwise_distance(images, return_pair=True)
print(f"{len(images)} images: largest pairwise distance sigma_1 = {sigma_1:.1f}")
fig = plotting.show_images(images[[i, j]], nrow=2, title=f"the farthest pair: {sigma_1:.1f} apart", scale=1.5)

# %% [markdown]
# Pixels in $[0, 1]$ and $D = 3 \times 32 \times 32 = 3072$ dimensions give a largest possible
# distance of $\sqrt{3072} \approx 55$; the farthest real pair (nearly black against nearly
# white) comes close. The paper rounds this to $\sigma_1 = 50$.
#
# ## 3. Technique 2: the ratio between levels, hence $L$
#
# **Shells.** In $D = 3072$ dimensions, Gaussian noise $\sigma z$ has an almost fixed length:
# $\|\sigma z\| \approx \sigma\sqrt D$, with a standard deviation of only about $\sigma/\sqrt 2$. So the noisy images
# of level $i$ live in a thin shell of radius $\sigma_i \sqrt D$ around the data. Samples handed down from
# level $i$ to level $i + 1$ are a good start only if the two shells overlap. Below, the lengths of
# 5,000 noise draws at two neighbouring levels, for the paper's ratio $\gamma = \sigma_i / \sigma_{i+1}$ and for
# a 10 times coarser schedule:

# %% tags=["nbval-ignore-output"]
D = 3 * 32 * 32
draws = torch.randn(5000, D, generator=g).norm(dim=1)  # ||z|| of 5,000 draws
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
for ax, (name, num) in zip(axes, (("paper, L = 232", 232), ("coarse, L = 24", 24))):
    ratio = float(sigmas.geometric_sigmas(50.0, 0.01, num)[0] / sigmas.geometric_sigmas(50.0, 0.01, num)[1])
    ax.hist((draws / math.sqrt(D)).numpy(), bins=60, alpha=0.6, label="level i+1: ||sigma_(i+1) z||")
    ax.hist((ratio * draws / math.sqrt(D)).numpy(), bins=60, alpha=0.6, label="level i: ||sigma_i z||")
    ax.set(title=f"{name}: gamma = {ratio:.3f}", xlabel="length / (sigma_(i+1) sqrt(D))", yticks=[])
axes[0].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# With the paper's ratio the two shells overlap; with the coarse one they do not touch: every sample
# handed down lands far outside the shell the next level was trained on. NCSNv2 turns "enough
# overlap" into a number, asked to be about 0.5, as a condition on $\gamma$ (with $\Phi$ the standard
# normal CDF; the paper's schedule scores 0.57 in section 4):
#
# $$\Phi\big(\sqrt{2D}(\gamma - 1) + 3\gamma\big) - \Phi\big(\sqrt{2D}(\gamma - 1) - 3\gamma\big) \approx 0.5 ,$$
#
# (`sigmas.technique2_overlap(gamma, D)`), and $L$ follows from $\sigma_1$, $\sigma_L$ and $\gamma$: $L$ levels
# from $\sigma_1$ to $\sigma_L$ have $L - 1$ ratios, $\gamma = (\sigma_1 / \sigma_L)^{1/(L-1)}$.
#
# ### Exercise: find $L$ by search
#
# Write `my_num_levels(sigma_1, sigma_L, dim, target)`: the smallest $L$ whose ratio gives an overlap
# of at least `target`. Count $L$ up from 2 and test each with `sigmas.technique2_overlap`.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on several schedules and targets and says what
# is wrong; run it again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_num_levels(sigma_1, sigma_L, dim, target):
    """The smallest number of geometric levels from sigma_1 to sigma_L whose overlap reaches target."""
    raise NotImplementedError("Exercise: search for L")

# %%
exercises.check_num_levels(my_num_levels);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_num_levels(sigma_1, sigma_L, dim, target):
    L = 2
    while sigmas.technique2_overlap((sigma_1 / sigma_L) ** (1 / (L - 1)), dim) < target:
        L += 1
    return L

# %%
assert exercises.check_num_levels(my_num_levels).passed

# %% [markdown]
# Your search, for three image sizes, beside the package's closed-form answer (which solves for $\gamma$
# first, by bisection):

# %%
# NBVAL_CHECK_OUTPUT
for size in (32, 48, 64):
    dim = 3 * size * size
    gamma = sigmas.noise_scale_ratio(dim)
    L = my_num_levels(50.0, 0.01, dim, 0.5)
    assert L == sigmas.num_noise_scales(50.0, 0.01, dim)
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
# ## 4. The paper's choice
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
# ## 5. Why $\sigma_L = 0.01$
#
# The samples leave the last level still carrying noise of about $\sigma_L$ (the final denoising
# step removes most of it, notebook 05). Pixels are stored with steps of $1/255 \approx 0.0039$, so
# $\sigma_L = 0.01$ is 2.5 quantisation steps: invisible, as section 1 showed. A smaller $\sigma_L$ buys
# nothing a viewer can see, and it costs levels: with technique 2's ratio every factor of 10 in
# $\sigma_L$ adds the same number of levels, and every level costs $T$ network evaluations per sample.

# %%
# NBVAL_CHECK_OUTPUT
for sigma_L in (0.1, 0.01, 0.001):
    L = sigmas.num_noise_scales(50.0, sigma_L, 3072)
    print(f"sigma_L = {sigma_L:<5g} ({sigma_L * 255:5.2f} grey levels): L = {L}, {5 * L + 1} evaluations per sample with T = 5")

# %% [markdown]
# ## 6. Technique 4: the step size $\epsilon$ for $T$ steps per level, derived
#
# Annealed Langevin dynamics uses $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ at level $i$. How large should the
# base step $\epsilon$ be? NCSNv2 answers on a data set with one point, at 0, where everything is exact:
#
# 1. $p_{\sigma_i}$ is $\mathcal N(0, \sigma_i^2 I)$, with score $-x/\sigma_i^2$. One Langevin step is
#    $x_t = x_{t-1} - \alpha_i x_{t-1}/\sigma_i^2 + \sqrt{2\alpha_i}\, z_t = r\, x_{t-1} + \sqrt{2\alpha_i}\, z_t$ with
#    $r = 1 - \alpha_i/\sigma_i^2 = 1 - \epsilon/\sigma_L^2$, the same at every level (that is why $\alpha_i \propto \sigma_i^2$).
# 2. Per coordinate, the variance follows $v_t = r^2 v_{t-1} + 2\alpha_i$.
# 3. The chain arrives from the previous level with $v_0 = \sigma_{i-1}^2 = \gamma^2 \sigma_i^2$. In units of $\sigma_i^2$:
#    $v_0 = \gamma^2$, and each step adds $2\alpha_i/\sigma_i^2 = 2\epsilon/\sigma_L^2$.
# 4. After $T$ steps the variance should be the level's own, $v_T = 1$: choose $\epsilon$ to make it so.
#
# > **Reading the paper.** The paper states the rule as "$\epsilon = \sigma_i^2/\sigma_L^2$". That ratio is only the
# > growth factor of the step: the step at level $i$ is $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ with the base step
# > $\epsilon$ derived here ($6.2 \times 10^{-6}$ for $T = 5$). Read literally, the rule would give a step of 1 at the
# > last level - far too large for pixels in $[0, 1]$. (Its eq. 3 also halves the step, $\frac{\epsilon}{2}$: see notebook 01.)
#
# Summing the geometric series of step 2 gives the closed form NCSNv2 prints,
# $r^{2T}\big(\gamma^2 - c\big) + c$ with $c = \tfrac{2\epsilon}{\sigma_L^2 (1 - r^2)}$ (`sigmas.technique4_objective`).
#
# ### Exercise: the variance after $T$ steps
#
# Write `my_variance_ratio(eps, sigma_L, gamma, T)`: $v_T$ in units of $\sigma_i^2$, by iterating step 2's
# recursion $T$ times from $v_0 = \gamma^2$ (steps 1-3 above; no closed form needed). The checker compares it
# with the closed form.

# %% tags=["exercise"]
def my_variance_ratio(eps, sigma_L, gamma, T):
    """Var[x_T] / sigma_i^2 after T Langevin steps at one level on the one-point data set."""
    raise NotImplementedError("Exercise: iterate the variance recursion")

# %%
exercises.check_variance_ratio(my_variance_ratio);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_variance_ratio(eps, sigma_L, gamma, T):
    r = 1 - eps / sigma_L**2
    v = gamma**2
    for _ in range(T):
        v = r**2 * v + 2 * eps / sigma_L**2
    return v

# %%
assert exercises.check_variance_ratio(my_variance_ratio).passed

# %% [markdown]
# **The derivation, checked by simulation.** Run the package's Langevin sampler with the exact score
# on 200,000 one-dimensional points started with variance $\gamma^2\sigma_i^2$, and measure the variance
# after $T = 5$ steps, at the paper's $\epsilon$:

# %% tags=["nbval-ignore-output"]
gamma_paper = float(paper[0] / paper[1])
eps5 = sigmas.langevin_step_size(paper, 5)
sigma_i = float(paper[100])
alpha = eps5 * sigma_i**2 / float(paper[-1]) ** 2
start = gamma_paper * sigma_i * torch.randn(200_000, 1, generator=g, dtype=torch.float64)
end = sampling.langevin(lambda x, s: -x / sigma_i**2, start, alpha, 5, sigma_i, generator=g)
print(f"simulated Var / sigma_i^2 = {float(end.var()) / sigma_i**2:.4f}; your recursion: "
      f"{my_variance_ratio(eps5, float(paper[-1]), gamma_paper, 5):.4f}")
assert abs(float(end.var()) / sigma_i**2 - my_variance_ratio(eps5, float(paper[-1]), gamma_paper, 5)) < 0.02

# %% [markdown]
# **Your $\epsilon$.** Scan $\epsilon$ on a fine log grid and keep the one whose $v_T$ is closest to 1, using
# your function; the package's `sigmas.langevin_step_size` refines the same search:

# %%
# NBVAL_CHECK_OUTPUT
sigma_L = float(paper[-1])
for T in (1, 3, 5, 10):
    grid = torch.logspace(math.log10(sigma_L**2) - 6, math.log10(sigma_L**2), 3000, dtype=torch.float64).tolist()
    mine = min(grid, key=lambda e: abs(my_variance_ratio(e, sigma_L, gamma_paper, T) - 1))
    package = sigmas.langevin_step_size(paper, T)
    print(f"T = {T:2d}: your eps = {mine:.3e}, package eps = {package:.3e}")
    assert abs(mine / package - 1) < 0.01

# %% [markdown]
# The larger $T$, the smaller $\epsilon$: more steps at a level need smaller ones to end at the same
# variance. Across the schedule the steps grow with $\sigma_i^2$:

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
# ## Summary
#
# | quantity | rule | value for CIFAR-10 horses and birds |
# |---|---|---|
# | $\sigma_1$ | technique 1 | the largest pairwise distance (printed above), paper: 50 |
# | $L$ | technique 2: neighbouring shells overlap by about half | 220 by the rule, paper: 232 |
# | $\sigma_L$ | invisible noise, a few grey levels | 0.01 |
# | $\epsilon$ for $T = 5$ | technique 4: the variance after $T$ steps is the level's own | $\approx 6.2 \times 10^{-6}$ |
#
# Next, notebook **03** builds the network that learns $s_\theta(x, \sigma)$ for all 232 levels at once.
