# %% [markdown]
# # 05 · Sampling: annealed Langevin dynamics, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/05_sampling.ipynb)
#
# **Learning objectives**
# 1. Write annealed Langevin dynamics yourself, check it on a toy whose answer is known, and sample
#    the course's model with it.
# 2. Watch a sample emerge from noise, level by level, with the denoised estimate (Tweedie) under each state.
# 3. See what the final denoising step changes.
# 4. Feel technique 4: the base step $\epsilon$ made 4x smaller or larger.
# 5. Trade quality against time: the number of steps per level $T$ and of levels $L$; count the
#    network evaluations - the paper's main limitation.
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
import time
from dataclasses import replace

import torch

from pegasus_course import exercises, plotting, sampling, toy, workflow
from pegasus_course.generate import model_score_fn
from pegasus_course.sampling import SeededNoise
from pegasus_course.sigmas import geometric_sigmas

course = workflow.setup(seed=0)
model, schedule = course.model, course.schedule
score = model_score_fn(model)
L, T, eps = schedule.num_scales, schedule.n_steps_each, schedule.step_lr()
print(f"eps = {eps:.3e} (technique 4's value for this schedule)")

# %% [markdown]
# The model was trained with the paper's schedule ($\sigma_1 = 50$, $\sigma_L = 0.01$, $L = 232$) and is
# sampled with it, $T = 5$ steps per level: 1,161 network evaluations per batch, about 15 ms per
# image per evaluation on a laptop CPU, so every sample below is drawn once and reused. (The `ci`
# profile uses a 12-level schedule only to run fast: its samples stay noisy, as section 5 shows.)
#
# ## 1. Annealed Langevin dynamics, written by you
#
# NCSN's Algorithm 1 with NCSNv2's step rule, for a batch $x_0 = \sigma_1 z_0$:
#
# * for each level $i = 1 \dots L$: the step $\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2$, then $T$ times
#   $x \leftarrow x + \alpha_i\, s_\theta(x, \sigma_i) + \sqrt{2\alpha_i}\, z_{ij}$;
# * then the final denoising step $x \leftarrow x + \sigma_L^2\, s_\theta(x, \sigma_L)$, without noise (section 3).
#
# Every Gaussian draw comes from a *noise source*: `noise(index, shape, device, dtype)` returns
# draw number `index` of the run's tape. Draw 0 is $z_0$ (already inside `x0`); $z_{ij}$ is draw
# `1 + i * T + j`. Drawing through the source is what lets a run be replayed exactly (notebook 06
# replays mixed tapes). `score_fn(x, sigma)` takes one $\sigma$ per sample: `torch.full((B,), sigma_i)`.
#
# > **Reading the paper.** Eq. 3 writes the step as $x + \frac{\epsilon}{2} \nabla \log p + \sqrt{\epsilon}\, z$.
# > The course (like NCSN's code) writes $x + \alpha\, s + \sqrt{2\alpha}\, z$: the same update with
# > $\epsilon_{\text{paper}} = 2\alpha$. And the paper's rule "$\epsilon = \sigma_i^2 / \sigma_L^2$" leaves out its
# > base step: it is $\alpha_i = \epsilon\, \sigma_i^2/\sigma_L^2$ with $\epsilon$ from technique 4.

# %% tags=["exercise"]
def my_annealed_langevin(score_fn, x0, sigmas, T, eps, noise):
    """Annealed Langevin dynamics from x0 over the levels `sigmas` (largest first), T steps each with base
    step eps, noise from the source `noise`; then the final denoising step. Returns the samples."""
    raise NotImplementedError("Exercise: write annealed Langevin dynamics")

# %%
exercises.check_annealed_langevin(my_annealed_langevin);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_annealed_langevin(score_fn, x0, sigmas, T, eps, noise):
    x = x0
    sigma_L = float(sigmas[-1])
    for i, sigma_i in enumerate(sigmas.tolist()):
        alpha = eps * sigma_i**2 / sigma_L**2
        sigma_vec = torch.full((x.shape[0],), sigma_i, device=x.device)
        for j in range(T):
            z = noise(1 + i * T + j, x.shape, x.device, x.dtype)
            x = x + alpha * score_fn(x, sigma_vec) + math.sqrt(2 * alpha) * z
    return x + sigma_L**2 * score_fn(x, torch.full((x.shape[0],), sigma_L, device=x.device))

# %%
assert exercises.check_annealed_langevin(my_annealed_langevin).passed

# %% [markdown]
# **Your sampler on a problem with a known answer.** Notebook 01's mixture of two Gaussians has an
# exact score at every $\sigma$, and weights 0.2 and 0.8. Annealed from $\sigma = 20$ to $0.5$, your sampler
# must put a fifth of the points in the left mode:

# %% tags=["nbval-ignore-output"]
gm = toy.two_gaussians(weight=0.2, distance=5.0)
toy_sigmas = geometric_sigmas(20.0, 0.5, 20)
toy_noise = sampling.GeneratorNoise(torch.Generator().manual_seed(0))
x0 = float(toy_sigmas[0]) * toy_noise(0, (2000, 2), torch.device("cpu"), torch.float32)
toy_samples = my_annealed_langevin(gm.score, x0, toy_sigmas, 100, 5e-3, toy_noise)
w_left, w_right = (float(w) for w in gm.mode_weights(toy_samples))
print(f"mode weights of 2,000 samples: {w_left:.2f} / {w_right:.2f} (true 0.20 / 0.80)")
assert abs(w_left - 0.2) < 0.05

# %% [markdown]
# **Your sampler against the package's, draw for draw.** Record the tape of a short package run with
# `sampling.RecordingNoise`, replay it through your function with `sampling.TapeNoise`: the
# course's network, the same draws, the same images.

# %% tags=["nbval-ignore-output"]
short = geometric_sigmas(schedule.sigma_max, schedule.sigma_min, 8)
recorder = sampling.RecordingNoise(SeededNoise(range(4)))
package_run = sampling.annealed_langevin(score, (4, 3, 32, 32), short, 2, eps, noise=recorder, progress=False)
x0 = float(short[0]) * recorder.tape[0]
yours = my_annealed_langevin(score, x0, short, 2, eps, sampling.TapeNoise(recorder.tape))
print(f"{len(recorder.tape)} draws recorded; largest difference from the package: {(yours - package_run).abs().max():.2e}")
assert torch.allclose(yours, package_run, atol=1e-4)

# %% [markdown]
# ## 2. From noise to an image
#
# Now the package's sampler with the full schedule, keeping the state at levels log-spaced from
# $\sigma = 5$ to $0.01$ (above 5 the states are noise at this scale). Under each state, its denoised
# estimate by **Tweedie's formula**, $\hat x = x + \sigma_i^2\, s_\theta(x, \sigma_i)$: the network's best guess of the
# clean image the state is a noisy version of (`sampling.tweedie`). Look for: the estimates settle
# colours and layout while the states are still noisy, and the details come last.

# %% tags=["nbval-ignore-output"]
seeds = list(range(4))
kept = sampling.nearest_levels(schedule.sigmas(), [5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01])
states = sampling.trajectory(sampling.iter_annealed_langevin(score, (4, 3, 32, 32), schedule.sigmas(), T, eps,
                                                             noise=SeededNoise(seeds), progress=False),
                             kept + [L])
path = {s.level: s for s in states}
estimates = [sampling.tweedie(score, path[i].x, path[i].sigma) for i in kept]
strip = []
for b in range(2):  # two samples, each as a pair of rows
    strip += [torch.stack([path[i].x[b] for i in kept]), torch.stack([e[b] for e in estimates])]
fig = plotting.show_rows(torch.stack(strip).clamp(0, 1), row_labels=["seed 0: x", "Tweedie", "seed 1: x", "Tweedie"],
                         col_labels=[f"{path[i].sigma:.2g}" for i in kept], title="states and denoised estimates at sigma =")

# %% [markdown]
# ## 3. The final denoising step
#
# After the last level the sample still carries noise of scale $\sigma_L$. One extra step,
# Tweedie's formula at $\sigma_L$, removes it. The run above kept the state before and after it;
# the third row is their difference, amplified 20 times around grey:

# %% tags=["nbval-ignore-output"]
before, after = path[kept[-1]].x, path[L].x
diff = 0.5 + 20 * (after - before)
fig = plotting.show_rows(torch.stack([before.clamp(0, 1), after.clamp(0, 1), diff.clamp(0, 1)]),
                         row_labels=["before", "after", "20 x difference"], title="the denoising step, seeds 0-3",
                         scale=1.3)
print(f"mean absolute change: {(after - before).abs().mean():.4f} (sigma_L = {schedule.sigma_min:g}); "
      f"largest: {(after - before).abs().max():.3f}")

# %% [markdown]
# The step changes each pixel by about $\sigma_L$ on average: invisible side by side, and a fine,
# grainy pattern when amplified - the noise of the last level, which the sampler's own $\sqrt{2\alpha_L}\, z$
# keeps adding until the end. It relies on the network at $\sigma_L$, the level notebook 04 found it
# knows least well (its loss is highest there); notebook 07 looks at the step's effect on colour.
#
# ## 4. Technique 4, felt: the base step $\epsilon$
#
# Technique 4 picks $\epsilon$ so that at every level, after $T$ steps, the chain has forgotten where
# it started while its spread stays right (notebook 02 derives it). Same seeds, your sampler, the
# full schedule, $\epsilon$ 4x smaller and 4x larger. The middle row is the package's run above,
# which your function reproduces:

# %% tags=["nbval-ignore-output"]
sweep_seeds = seeds[:3]
sweep_noise = SeededNoise(sweep_seeds)
x0 = schedule.sigma_max * sweep_noise(0, (3, 3, 32, 32), course.device, torch.float32)
sweep, stamps = {}, {}
for factor in (0.25, 4.0):
    t0 = time.perf_counter()
    sweep[factor] = my_annealed_langevin(score, x0, schedule.sigmas().to(course.device), T, eps * factor, sweep_noise)
    stamps[factor] = time.perf_counter() - t0
sweep[1.0] = after[:3]
fig = plotting.show_rows(torch.stack([sweep[f] for f in (0.25, 1.0, 4.0)]).clamp(0, 1), scale=1.3,
                         row_labels=[f"eps x {f:g}" for f in (0.25, 1.0, 4.0)], title=f"seeds 0-2, L = {L}, T = {T}")
print("seconds per run of 3 samples with your sampler:", {f: round(t, 1) for f, t in stamps.items()})

# %%
mine = my_annealed_langevin(score, x0, schedule.sigmas().to(course.device), T, eps, sweep_noise) if L < 50 else None
if mine is not None:  # a cheap check under the ci profile: your sampler, the package's, the same images
    assert torch.allclose(mine, after[:3], atol=1e-3)

# %% [markdown]
# With a 4x smaller step the chain moves too little at each level: the noise it carries shrinks
# more slowly than the levels fall, and after all 232 levels the samples are still noise. With a
# 4x larger step each level takes out more noise than its $\sigma_i$ asks for: the samples arrive at
# images that are smoother, with less detail and contrast than the middle row. Technique 4's
# $\epsilon$ sits between the two failures, and it was chosen for $T = 5$: change $T$ and $\epsilon$ must
# change with it (notebook 02).
#
# ## 5. Steps per level and number of levels: quality against time
#
# Fewer levels and fewer steps are faster, but the chain then has less time to follow the shrinking
# noise. Same seeds, with technique 4's $\epsilon$ for each setting; the bottom row is the full schedule above.

# %% tags=["nbval-ignore-output"]
rows, names = [], []
for num_scales, steps_each in [(max(2, L // 4), T), (L, 1)]:
    s = replace(schedule, num_scales=num_scales, n_steps_each=steps_each)
    noise = SeededNoise(sweep_seeds)
    t0 = time.perf_counter()
    x0_s = s.sigma_max * noise(0, (3, 3, 32, 32), course.device, torch.float32)
    rows.append(my_annealed_langevin(score, x0_s, s.sigmas().to(course.device), steps_each, s.step_lr(), noise))
    names.append(f"L={num_scales}, T={steps_each}: {sampling.num_score_evaluations(num_scales, steps_each)} evals, "
                 f"{time.perf_counter() - t0:.1f} s")
rows.append(after[:3])
names.append(f"L={L}, T={T}: {sampling.num_score_evaluations(L, T)} evals (section 2)")
fig = plotting.show_rows(torch.stack(rows).clamp(0, 1), row_labels=[n.split(":")[0] for n in names], scale=1.3)
print("\n".join(names))

# %% [markdown]
# A 4x coarser schedule with $T = 5$ still lands on images, with more grain and blotches; one step
# per level leaves the samples noise: the noise left at each level piles up from level to level
# (this is also why the `ci` profile's 12 levels give noisy samples).
#
# ## 6. The cost of a sample
#
# The paper's setting needs one network evaluation per Langevin step, for every level, plus the
# denoising step:

# %%
# NBVAL_CHECK_OUTPUT
print("network evaluations with L = 232, T = 5:", sampling.num_score_evaluations(232, 5))

# %% [markdown]
# Over a thousand evaluations for one batch is the limitation the paper names: a GAN or a VAE
# needs one. On an H100 a batch of 64 32×32 samples with the full schedule takes about 25 s with
# the course's network (`benchmarks/RESULTS.md`); on a 2-core CPU, about 26 minutes.
#
# Next, notebook **06** records the noise tapes of two samples and mixes them: winged horses.
