# %% [markdown]
# # 05 · Sampling: annealed Langevin dynamics, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/05_sampling.ipynb)
#
# **Learning objectives**
# 1. Watch a sample emerge from noise, level by level.
# 2. See what the final denoising step does.
# 3. Trade quality against time: the number of steps per level $T$ and of levels $L$.
# 4. Count the network evaluations - the paper's main limitation.
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
from dataclasses import replace
import time

import torch

from pegasus_course import checkpoints, exercises, plotting, profiles, sampling
from pegasus_course.generate import generate, model_score_fn, schedule_from_meta
from pegasus_course.sampling import SeededNoise

profile, g = profiles.start(seed=0)
model, ckpt, how = checkpoints.load_or_train(profile)
print(how)

# %% [markdown]
# The model was trained with the paper's schedule ($\sigma_1 = 50$, $\sigma_L = 0.01$, $L = 232$) and is
# sampled with it, $T = 5$ steps per level: 1,161 network evaluations per batch, a few seconds on a GPU
# and a few minutes for a handful of images on a CPU. (The `ci` profile uses a 12-level schedule
# only to run fast: its samples stay noisy, as section 3 explains.) The step size $\epsilon$
# comes from technique 4.

# %% tags=["nbval-ignore-output"]
schedule = schedule_from_meta(ckpt.meta, n_steps_each=profile.n_steps_each, num_scales=profile.num_scales)
print(f"sampling schedule: L = {schedule.num_scales}, T = {schedule.n_steps_each}, eps = {schedule.step_lr():.3e}")

# %% [markdown]
# ## 1. From noise to an image
#
# Start at $x_0 = \sigma_1 z_0$, pure noise of scale 50; at each level take $T$ steps
# $x \leftarrow x + \alpha_i s_\theta(x, \sigma_i) + \sqrt{2\alpha_i}\,z$. `iter_annealed_langevin`
# yields every state; we keep the last one of a few levels. Look for: the colours settle first,
# then the large shapes, the details last.

# %%
L = schedule.num_scales
keep = sorted({-1, L // 8, L // 4, L // 2, 3 * L // 4, L - 1, L})
states = sampling.trajectory(
    sampling.iter_annealed_langevin(model_score_fn(model), (8, 3, 32, 32), schedule.sigmas(), schedule.n_steps_each,
                                    schedule.step_lr(), noise=SeededNoise(range(8)), progress=False), keep)
strip = torch.stack([s.x.clamp(0, 1) for s in states], 1)  # (6, levels, 3, 32, 32)
labels = ["start" if s.level < 0 else ("denoised" if s.level == L else f"sigma={s.sigma:.2g}") for s in states]
fig = plotting.show_rows(strip, title="each row one sample; columns: " + " | ".join(labels))

# %% [markdown]
# ## 2. The final denoising step
#
# After the last level the sample still carries noise of scale $\sigma_L$. One extra step
# $x \leftarrow x + \sigma_L^2\, s_\theta(x, \sigma_L)$, without noise, removes it (Tweedie's formula).
# The run above kept the state before and after that step:

# %% tags=["nbval-ignore-output"]
without, with_d = states[-2].x.clamp(0, 1), states[-1].x.clamp(0, 1)
fig = plotting.show_images(torch.cat([without, with_d]), nrow=8,
                           title="without (top) and with (bottom) the denoising step", scale=0.8)
print(f"mean absolute change made by the denoising step: {(with_d - without).abs().mean():.5f}")

# %% [markdown]
# The change is small: noise of scale $\sigma_L = 0.01$ is about 1% of the pixel range. For a young
# model it can be nearly zero, because it has not yet learned to see noise that faint.

# %% [markdown]
# ### Exercise: the denoising step
#
# Write $x \leftarrow x + \sigma_L^2\, s_\theta(x, \sigma_L)$ (no noise).
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_denoise_step(x, score, sigma_L):
    """The final denoising step from x, given the score at x for the smallest level sigma_L."""
    raise NotImplementedError("Exercise: write the denoising step")

# %%
exercises.check_denoise_step(my_denoise_step);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_denoise_step(x, score, sigma_L):
    return x + sigma_L**2 * score

# %%
assert exercises.check_denoise_step(my_denoise_step).passed

# %% [markdown]
# ## 3. Steps per level and number of levels: quality against time
#
# Fewer levels and fewer steps are faster, but the chain then has less time to follow the shrinking
# noise. A 4x coarser schedule with $T = 5$ still lands on images; one step per level does not: the
# noise left over at each level piles up from level to level and the samples stay noise (this is
# also why the `ci` profile's 12 levels give noisy samples). Same seeds, each row a different
# setting; the time is for this batch of 4 on this machine.

# %% tags=["nbval-ignore-output"]
settings = [(max(2, L // 4), schedule.n_steps_each), (L, 1), (L, schedule.n_steps_each)]
rows, names = [], []
for num_scales, T in settings:
    s = replace(schedule, num_scales=num_scales, n_steps_each=T)
    t0 = time.perf_counter()
    rows.append(generate(model, range(4), s, progress=False).cpu())
    names.append(f"L={num_scales}, T={T}: {sampling.num_score_evaluations(num_scales, T)} evals, "
                 f"{time.perf_counter() - t0:.1f} s")
fig = plotting.show_rows(torch.stack(rows), row_labels=[n.split(":")[0] for n in names])
print("\n".join(names))

# %% [markdown]
# ## 4. The cost of a sample
#
# The paper's setting needs one network evaluation per Langevin step, for every level, plus the
# denoising step:

# %%
# NBVAL_CHECK_OUTPUT
print("network evaluations with L = 232, T = 5:", sampling.num_score_evaluations(232, 5))

# %% [markdown]
# Over a thousand evaluations for one batch is the limitation the paper names: a GAN or a VAE
# needs one. On an H100 a batch of 64 32×32 samples with the full schedule takes about 25 s with
# the course's network (see `benchmarks/RESULTS.md`).
#
# Next, notebook **06** records the noise of two samples and mixes it: winged horses.
