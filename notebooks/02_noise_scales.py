# %% [markdown]
# # 02 · Noise scales: how many, how large, how small
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/02_noise_scales.ipynb)
#
# <!-- time:start -->
# *Run All takes 6 s under the `cpu` profile on a 2-core CPU (measured 2026-12-03; 6 s on a re-run, which reuses the sample cache; peak memory 1.1 GB) and seconds under `gpu` on one H100 (estimate). Notebook 00 lists every notebook's times.*
# <!-- time:end -->
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

from pegasus_course import doctor, exercises, plotting, sampling, sigmas, workflow

profile, g = workflow.start(seed=0)

# %% [markdown]
# ## 1. What the noise levels look like
#
# The schedule runs from $\sigma_1 = 50$ down to $\sigma_L = 0.01$ (pixels in $[0, 1]$). One training image
# with noise $\sigma z$ added at five levels, the clean image on the left (shown clipped to $[0, 1]$, which
# hides how large the noise really is: the printed line gives the size of the noise against the image's own):

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
assert all(s * z.norm() > 10 * image.norm() for s in levels_shown if s >= 10)

# %% [markdown]
# At $\sigma = 0.01$ the change is about 2.5 grey levels of 255: invisible. At $\sigma = 1$ the animal is
# gone to the eye, but a network that has seen many such images can still tell where its colours
# were. From $\sigma = 10$ on the noise is more than ten times as long as the image (the ratios printed
# above; the cell checks it): sampling starts at $\sigma_1 = 50$, from what is practically pure noise.
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
fig = plotting.show_images(images[[i, j]], nrow=2, title=f"the farthest pair: {sigma_1:.1f} apart", scale=2.3)

# %% [markdown]
# Pixels in $[0, 1]$ and $D = 3 \times 32 \times 32 = 3072$ dimensions give a largest possible
# distance of $\sqrt{3072} \approx 55$; the farthest real pair (nearly black against nearly
# white) comes close. The paper does not compute it: it takes $\sigma_1 = 50$ (and $L = 232$) from NCSNv2's
# settings for the whole of CIFAR-10, and the rule gives nearly the same value for its horses and birds.
#
# ## 3. Technique 2: the ratio between levels, hence $L$
#
# **Shells.** In $D = 3072$ dimensions, Gaussian noise $\sigma z$ has an almost fixed length:
# $\|\sigma z\| \approx \sigma\sqrt D$, with a standard deviation of only about $\sigma/\sqrt 2$. So the noisy images
# of level $i$ live in a thin shell of radius $\sigma_i \sqrt D$ around the data, whose thickness (a standard
# deviation) is $1/\sqrt{2D} \approx 1.3\%$ of its radius (printed below). Samples handed down from
# level $i$ to level $i + 1$ are a good start only if the two shells overlap. Below, the lengths of
# 5,000 noise draws at two neighbouring levels, for the paper's ratio $\gamma = \sigma_i / \sigma_{i+1}$ and for
# a 10 times coarser schedule. The shaded band is level $i$'s shell, its mean $\pm 3$ standard deviations: the
# share of level $i+1$'s draws inside it (in each title) is the overlap defined below.

# %% tags=["nbval-ignore-output"]
D = 3 * 32 * 32
draws = torch.randn(5000, D, generator=g).norm(dim=1)  # ||z|| of 5,000 draws
ratios = {name: float(sigmas.geometric_sigmas(50.0, 0.01, num)[0] / sigmas.geometric_sigmas(50.0, 0.01, num)[1])
          for name, num in (("paper, L = 232", 232), ("coarse, L = 24", 24))}
fig = plotting.shell_overlap(draws, D, ratios)
print(f"relative thickness of a shell, std / mean of ||z||: {float(draws.std() / draws.mean()):.4f} "
      f"(1 / sqrt(2D) = {1 / math.sqrt(2 * D):.4f})")

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
# **What the number measures.** The length of a noise draw is close to Gaussian,
# $\|\sigma z\| \approx \mathcal N(\sigma\sqrt D,\ \sigma^2/2)$. Call level $i$'s shell the lengths within three
# standard deviations of its radius, $\sigma_i\sqrt D \pm 3\sigma_i/\sqrt 2$. The share of level $i + 1$'s noisy
# samples whose length falls inside that band is the expression above: standardise the band's two
# ends with level $i + 1$'s mean and standard deviation and they become $\sqrt{2D}(\gamma - 1) \pm 3\gamma$. So
# 0.5 asks that half of the next level's samples lie in the previous level's shell. Counted on the
# 5,000 draws above, for the paper's ratio:

# %% tags=["nbval-ignore-output"]
gamma_232 = float(sigmas.geometric_sigmas(50.0, 0.01, 232)[0] / sigmas.geometric_sigmas(50.0, 0.01, 232)[1])
band = (gamma_232 * (math.sqrt(D) - 3 / math.sqrt(2)), gamma_232 * (math.sqrt(D) + 3 / math.sqrt(2)))
counted = float(((draws >= band[0]) & (draws <= band[1])).float().mean())  # draws: ||z||, level i + 1 = 1
print(f"share of level i+1's draws inside level i's shell: {counted:.3f}; technique2_overlap: "
      f"{sigmas.technique2_overlap(gamma_232, D):.3f}")
assert abs(counted - sigmas.technique2_overlap(gamma_232, D)) < 0.03

# %% [markdown]
# **Why about 0.5?** NCSNv2 states the target without deriving it; read it as a compromise. A smaller overlap
# buys fewer levels, so fewer network evaluations per sample ($T$ per level). A larger one buys safer hand-overs:
# the last column below is the share of level $i$'s samples, the ones annealing hands down, whose length lies in
# level $i+1$'s shell, the region where that level was trained (`sigmas.handed_down_share`, the same count with
# the roles of the two levels swapped). What the rest meet is a score that no training sample ever taught
# (notebook 01, section 6). For $D = 3072$, $\sigma$ from 50 to 0.01, with each target's fewest levels:

# %%
# NBVAL_CHECK_OUTPUT
print("overlap asked  levels L  gamma   evaluations (T = 5)  handed down into the next shell")
for target in (0.05, 0.25, 0.5, 0.75, 0.9):
    L_t = sigmas.num_noise_scales(50.0, 0.01, D, target)
    gamma_t = (50.0 / 0.01) ** (1 / (L_t - 1))
    print(f"{target:13.2f}  {L_t:8d}  {gamma_t:.4f}  {5 * L_t + 1:19d}  {sigmas.handed_down_share(gamma_t, D):30.2f}")
fig = plotting.overlap_cost(D, 50.0, 0.01, {"the doctor's minimum": doctor.MIN_OVERLAP, "technique 2": 0.5,
                                             "the paper": sigmas.technique2_overlap(gamma_232, D)})

# %% [markdown]
# Below 0.5 the levels come cheap and the hand-overs get worse fast; above it each gain in overlap costs more
# and more levels, without bound as the overlap nears $\Phi(3) - \Phi(-3) \approx 0.997$, the overlap of two equal
# levels (the curve above; compare the rows 0.25, 0.5 and 0.9). The course's doctor (`pegasus-course doctor`,
# notebook 08) turns this into a check: it computes technique 2's overlap at a trained model's ratio
# $\gamma = \sigma_1/\sigma_2$ and reports **too few levels** when it is below `doctor.MIN_OVERLAP` = 0.25, half the
# 0.5 asked for, naming the fewest levels that reach 0.25 and technique 2's $L$ to retrain with. It is a
# threshold for a clear fault, not a second rule: between 0.25 and 0.5 the doctor stays silent.

# %% [markdown]
# **Why geometric.** The overlap depends on $\gamma$ and $D$ only, not on $\sigma$ itself. The same overlap
# between every pair of neighbours therefore means the same ratio everywhere: a geometric sequence,
# evenly spaced in $\log\sigma$. Equally spaced levels would instead crowd the large levels (232 levels
# from 50 down to 0.01 in equal steps: the first ratio is 50 / 49.78 = 1.004) and leave huge gaps between
# the small ones (the last ratio is 0.226 / 0.01, about 23, far beyond any overlap).
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
# Stuck? The cell below loads the reference solution without showing it
# (`exercises.show_solution("num_levels")` prints it).

# %% tags=["solution"]
solution_num_levels = exercises.solution("num_levels")  # loaded, not shown

# %% [markdown]
# Your search (once it passes its check; the reference until then), for three image sizes, beside the
# package's `sigmas.num_noise_scales`, which finds $\gamma$ first (by bisection on the overlap) and then
# $L = \lceil 1 + \log(\sigma_1/\sigma_L) / \log\gamma \rceil$ in one formula:

# %%
# NBVAL_CHECK_OUTPUT
num_levels = exercises.use(my_num_levels, exercises.check_num_levels, solution_num_levels)
for size in (32, 48, 64):
    dim = 3 * size * size
    gamma = sigmas.noise_scale_ratio(dim)
    L = num_levels(50.0, 0.01, dim, 0.5)
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
# For CIFAR-10 ($D = 3072$, $\sigma_1 = 50$, $\sigma_L = 0.01$) the rule gives 220 levels
# (printed above); the paper uses $L = 232$, a slightly *smaller* ratio. More levels only mean more
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
# 4. After $T$ steps the variance should be back at the level's own, $v_T = 1$, so that the next level
#    starts as this one did. It cannot get there exactly (see below): NCSNv2 asks for $v_T$ "as close
#    to 1 as possible", and $\epsilon$ is chosen for that.
#
# > **Reading the paper.** The paper states the rule as "$\epsilon = \sigma_i^2/\sigma_L^2$". That ratio is only the
# > growth factor of the step: the step at level $i$ is $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$ with the base step
# > $\epsilon$ derived here ($6.2 \times 10^{-6}$ for $T = 5$). Read literally, the rule would give a step of 1 at the
# > last level - far too large for pixels in $[0, 1]$. (Its eq. 3 also halves the step, $\frac{\epsilon}{2}$: see notebook 01.)
#
# Summing the geometric series of step 2 gives the closed form NCSNv2 prints,
# $r^{2T}\big(\gamma^2 - c\big) + c$ with $c = \tfrac{2\epsilon}{\sigma_L^2 (1 - r^2)}$ (`sigmas.technique4_objective`).
#
# **Why 1 is out of reach.** Write the closed form as $v_T = r^{2T}\gamma^2 + (1 - r^{2T})\, c$: a weighted
# average of the start, $\gamma^2 > 1$, and of $c$, the variance the chain would settle at after many
# steps. With $r = 1 - \epsilon/\sigma_L^2$, $c = 1/\big(1 - \tfrac{\epsilon}{2\sigma_L^2}\big) > 1$: a Langevin chain with a
# finite step overshoots its target's variance. An average of two numbers above 1 is above 1, for
# every $\epsilon$. A small $\epsilon$ keeps $c$ near 1 but hardly moves away from $\gamma^2$; a large one forgets
# $\gamma^2$ but raises $c$. The best $\epsilon$ balances the two (the scan below prints the $v_T$ it reaches).
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
# Stuck? The cell below loads the reference solution without showing it
# (`exercises.show_solution("variance_ratio")` prints it). The rest of this section runs **your**
# `my_variance_ratio` once it passes its check, the reference until then, and says which.

# %% tags=["solution"]
solution_variance_ratio = exercises.solution("variance_ratio")  # loaded, not shown

# %% [markdown]
# **The derivation, checked by simulation.** Run the package's Langevin sampler with the exact score
# on 200,000 one-dimensional points started with variance $\gamma^2\sigma_i^2$, and measure the variance
# after $T = 5$ steps, at the paper's $\epsilon$:

# %%
variance_ratio = exercises.use(my_variance_ratio, exercises.check_variance_ratio, solution_variance_ratio)

# %% tags=["nbval-ignore-output"]
gamma_paper = float(paper[0] / paper[1])
eps5 = sigmas.langevin_step_size(paper, 5)
sigma_i = float(paper[100])
alpha = eps5 * sigma_i**2 / float(paper[-1]) ** 2
start = gamma_paper * sigma_i * torch.randn(200_000, 1, generator=g, dtype=torch.float64)
end = sampling.langevin(lambda x, s: -x / sigma_i**2, start, alpha, 5, sigma_i, generator=g)
print(f"simulated Var / sigma_i^2 = {float(end.var()) / sigma_i**2:.4f}; the recursion: "
      f"{variance_ratio(eps5, float(paper[-1]), gamma_paper, 5):.4f}")
assert abs(float(end.var()) / sigma_i**2 - variance_ratio(eps5, float(paper[-1]), gamma_paper, 5)) < 0.02

# %% [markdown]
# **Your $\epsilon$.** Scan $\epsilon$ on a fine log grid and keep the one whose $v_T$ is closest to 1, with the
# recursion above; the package's `sigmas.langevin_step_size` refines the same search. Beside each
# $\epsilon$, the $v_T$ it reaches: the closest to 1 there is, and still above it.

# %%
# NBVAL_CHECK_OUTPUT
sigma_L = float(paper[-1])
for T in (1, 3, 5, 10):
    grid = torch.logspace(math.log10(sigma_L**2) - 6, math.log10(sigma_L**2), 3000, dtype=torch.float64).tolist()
    mine = min(grid, key=lambda e: abs(variance_ratio(e, sigma_L, gamma_paper, T) - 1))
    package = sigmas.langevin_step_size(paper, T)
    reached = variance_ratio(package, sigma_L, gamma_paper, T)
    print(f"T = {T:2d}: your eps = {mine:.3e}, package eps = {package:.3e}, v_T = {reached:.4f}")
    assert abs(mine / package - 1) < 0.01
    assert 1 < reached < min(variance_ratio(e, sigma_L, gamma_paper, T) for e in grid) + 1e-6  # the best, not 1

# %% [markdown]
# The larger $T$, the smaller $\epsilon$: more steps at a level need smaller ones to end as close as they
# can to the level's own variance.
#
# **From level to level.** Step 3 assumed that the chain arrives with the previous level's own variance,
# $\gamma^2\sigma_i^2$. It arrives with what the previous level left, $v_T$ in that level's units, so $\gamma^2 v_T$ in
# this one's. Chain the recursion over the 232 levels, starting from $x_0 = \sigma_1 z_0$ (variance exactly
# $\sigma_1^2$: $v = 1$ at level 1), and the ratio settles at a fixed point that every later level keeps.
# For technique 4's $\epsilon$, a quarter of it, four times it, and $T = 1$ with its own $\epsilon$; beside it, how
# far outside the shell's radius $\sigma_i\sqrt D$ the states then are, against the shell's thickness:

# %%
# NBVAL_CHECK_OUTPUT
thickness = 1 / math.sqrt(2 * D)  # a shell's standard deviation over its radius
settings = {"eps, T = 5": (eps5, 5), "eps / 4, T = 5": (eps5 / 4, 5), "4 eps, T = 5": (4 * eps5, 5),
            "T = 1, its own eps": (sigmas.langevin_step_size(paper, 1), 1)}
settled = {}
for name, (e, steps) in settings.items():
    v = variance_ratio(e, sigma_L, 1.0, steps)  # level 1 starts at variance sigma_1^2
    for _ in range(len(paper) - 1):
        v = variance_ratio(e, sigma_L, gamma_paper * math.sqrt(v), steps)  # arrives with gamma^2 v
    settled[name] = v
    print(f"{name:18s}: Var / sigma_i^2 settles at {v:.3f}; the states lie {math.sqrt(v) - 1:4.0%} outside the "
          f"shell's radius, a shell {thickness:.1%} thick")
assert min(settled, key=settled.get) == "eps, T = 5"
assert settled["4 eps, T = 5"] > settled["eps, T = 5"] and min(settled["eps / 4, T = 5"], settled["T = 1, its own eps"]) > 1.5

# %% [markdown]
# Technique 4's $\epsilon$ leaves the smallest excess of the four, but not none: in this one-point model the
# states settle a few percent outside the shell's radius: several shell thicknesses. A quarter of $\epsilon$
# forgets too little of each start: the excess piles up from level to level until the states lie a
# third or more outside the radius, and one step per level does the same. Four times $\epsilon$ forgets the start faster but settles
# *higher* than $\epsilon$, not lower: its own overshoot $c$ grows with the step. Notebook 05 samples the
# trained network with these settings and shows what such states become: a network is trained only on
# its shells, and notebook 01 showed what a learned score is worth where no noisy sample ever landed.
#
# Across the schedule the steps grow with $\sigma_i^2$:

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
# | $\sigma_1$ | technique 1 | the largest pairwise distance (printed above); the paper takes NCSNv2's CIFAR-10 value, 50 |
# | $L$ | technique 2: neighbouring shells overlap by about half | 220 by the rule, paper: 232 |
# | $\sigma_L$ | invisible noise, a few grey levels | 0.01 |
# | $\epsilon$ for $T = 5$ | technique 4: the variance after $T$ steps as close to the level's own as it gets (a little above it: 1 is out of reach) | $\approx 6.2 \times 10^{-6}$ |
#
# For your own pictures, `pegasus-course schedule --dataset folder --data-root DIR` computes $\sigma_1$, $L$
# and $\epsilon$ from any folder ($\sigma_L$ stays 0.01), and `pegasus-course train --schedule data` trains with them (notebook **08**).
#
# Next, notebook **03** builds the network that learns $s_\theta(x, \sigma)$ for all 232 levels at once.
