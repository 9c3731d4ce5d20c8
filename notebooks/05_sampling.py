# %% [markdown]
# # 05 · Sampling: annealed Langevin dynamics, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/05_sampling.ipynb)
#
# <!-- time:start -->
# *Run All takes 3 min 44 s under the `cpu` profile on a 2-core CPU (measured 2026-12-03; 2 min 11 s on a re-run, which reuses the sample cache; peak memory 1.1 GB) and about 2 min under `gpu` on one H100 (estimate). Notebook 00 lists every notebook's times.*
# <!-- time:end -->
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

import torch

from pegasus_course import checkpoints, evaluation, exercises, plotting, sampling, shell_model, toy, workflow
from pegasus_course.generate import Schedule, generate, model_score_fn, schedule_from_meta
from pegasus_course.training_report import mean_2se
from pegasus_course.sampling import SeededNoise
from pegasus_course.sigmas import geometric_sigmas, technique4_objective

course = workflow.setup(seed=0)
model, schedule = course.model, course.schedule
score = model_score_fn(model)
L, T, eps = schedule.num_scales, schedule.n_steps_each, schedule.step_lr()
print(f"eps = {eps:.3e} (technique 4's value for this schedule)")


def outside_shell(levels, step_lr, steps):
    """Notebook 02's one-point model chained over the levels: how far outside its level's shell radius a
    state settles (0.06 = 6%), for base step step_lr and T = steps (technique4_objective is v_T)."""
    gamma, s_min = float(levels[0] / levels[1]), float(levels[-1])
    v = technique4_objective(step_lr, 1.0, s_min, steps)  # level 1 starts at sigma_1 z_0
    for _ in range(len(levels) - 1):
        v = technique4_objective(step_lr, gamma * math.sqrt(v), s_min, steps)
    return math.sqrt(v) - 1

# %% [markdown]
# The model was trained with the paper's schedule ($\sigma_1 = 50$, $\sigma_L = 0.01$, $L = 232$) and is
# sampled with it, $T = 5$ steps per level: 1,161 network evaluations per batch, at the cost per image and
# evaluation the set-up cell measured on this machine (printed above), so every sample below is drawn
# once and reused. (The `ci` profile uses every 21st of the 232 levels, 12 in all, only
# to run fast: its samples stay noisy, too few steps per level, as section 5's $T = 1$ row shows.)
#
# ## 1. Annealed Langevin dynamics, written by you
#
# NCSN's Algorithm 1, with NCSNv2's $\epsilon$ (technique 4) and final denoising step, from a batch $x_0 = \sigma_1 z_0$:
#
# * for each level $i = 1 \dots L$: the step $\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2$, then $T$ times
#   $x \leftarrow x + \alpha_i\, s_\theta(x, \sigma_i) + \sqrt{2\alpha_i}\, z_{ij}$;
# * then the final denoising step $x \leftarrow x + \sigma_L^2\, s_\theta(x, \sigma_L)$, without noise (section 3).
#
# Every Gaussian draw comes from a *noise source*: `noise(index, shape, device, dtype)` returns
# draw number `index` of the run's tape. Draw 0 is $z_0$ (already inside `x0`); $z_{ij}$ is draw
# `1 + i * T + j`, with $i = 0 \dots L-1$ and $j = 0 \dots T-1$ counted from 0 as in Python. Drawing through the source is what lets a run be replayed exactly (notebook 06
# replays mixed tapes). `score_fn(x, sigma)` takes one $\sigma$ per sample: `torch.full((B,), sigma_i)`.
#
# **The start.** NCSN's and NCSNv2's code start the chain from *uniform* noise in $[0, 1]$; the course
# starts from $x_0 = \sigma_1 z_0$, a Gaussian draw of the first level's own size. Two reasons. A sample of
# $p_{\sigma_1}$ is the data plus noise of scale $\sigma_1 = 50$, and beside noise of length $\sigma_1\sqrt D \approx 2{,}770$
# the data's own spread hardly matters: $\sigma_1 z_0$ is already (almost) a sample of the first level,
# on its shell, where uniform noise, of length about $\sqrt{D/3} \approx 32$, lies far inside it. And a
# Gaussian start is one more draw of the tape, which the course mixes like the others (notebook 06; the
# paper's eq. 4 lists only the $z_{ij}$).
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
# Stuck? The cell below loads the reference solution without showing it
# (`exercises.show_solution("annealed_langevin")` prints it). The toy below, the draw-for-draw comparison
# and section 4's step-size sweep run **your** `my_annealed_langevin` once it passes its check, the
# reference until then; the next cell says which. Sections 2 and 3 use the package's iterator
# `sampling.iter_annealed_langevin` instead, because they need the state at every level, and your function
# returns only the end (section 1 shows the two agree draw for draw); section 5 uses the package's
# `generate`, which samples many seeds in one batch.

# %% tags=["solution"]
solution_annealed_langevin = exercises.solution("annealed_langevin")  # loaded, not shown

# %%
sampler = exercises.use(my_annealed_langevin, exercises.check_annealed_langevin, solution_annealed_langevin)

# %% [markdown]
# **Your sampler on a problem with a known answer.** Notebook 01's mixture of two Gaussians has an
# exact score at every $\sigma$, and weights 0.2 and 0.8. Annealed from $\sigma = 20$ to $0.5$, your sampler
# must put a fifth of the points in the left mode:

# %% tags=["nbval-ignore-output"]
gm = toy.two_gaussians(weight=0.2, distance=5.0)
toy_sigmas = geometric_sigmas(20.0, 0.5, 20)
toy_noise = sampling.GeneratorNoise(torch.Generator().manual_seed(0))
x0 = float(toy_sigmas[0]) * toy_noise(0, (2000, 2), torch.device("cpu"), torch.float32)
toy_samples = sampler(gm.score, x0, toy_sigmas, 100, 5e-3, toy_noise)
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
yours = sampler(score, x0, short, 2, eps, sampling.TapeNoise(recorder.tape))
print(f"{len(recorder.tape)} draws recorded; largest difference from the package: {(yours - package_run).abs().max():.2e}")
assert torch.allclose(yours, package_run, atol=1e-4)

# %% [markdown]
# ## 2. From noise to an image
#
# Now the package's sampler with the full schedule, in the package's sampling precision (bf16 autocast on a
# CPU with native bf16, as the first cell says; float32 elsewhere), keeping the state at levels log-spaced from
# $\sigma = 5$ to $0.01$ (above 5 the states are noise at this scale). Under each state, its denoised
# estimate by **Tweedie's formula**, $\hat x = x + \sigma_i^2\, s_\theta(x, \sigma_i)$ (`sampling.tweedie`). It is notebook 01's
# Vincent identity read the other way round: the best network is $s^*(x) = \mathbb E[x_{\text{clean}} - x \mid x]/\sigma^2$, so
# $x + \sigma^2 s^*(x) = \mathbb E[x_{\text{clean}} \mid x]$, the average of all the clean images this state could be a
# noisy version of. Look for: from $\sigma \approx 1$ down, the estimates show layout and colours several levels
# before the states do, and the details come last; at the two largest levels shown the estimates are
# noise themselves (the table printed with the figure says why).

# %% tags=["nbval-ignore-output"]
seeds = list(range(4))
fast = model_score_fn(model, precision="auto")  # the package's sampling precision (the first cell says which)
course.expect("4 samples with the full schedule", len(seeds))
kept = sampling.nearest_levels(schedule.sigmas(), [5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01])
states = sampling.trajectory(sampling.iter_annealed_langevin(fast, (4, 3, 32, 32), schedule.sigmas(), T, eps,
                                                             noise=SeededNoise(seeds)),
                             kept + [L])
path = {s.level: s for s in states}
estimates = [sampling.tweedie(fast, path[i].x, path[i].sigma) for i in kept]
strip = []
for b in range(2):  # two samples, each as a pair of rows
    strip += [torch.stack([path[i].x[b] for i in kept]), torch.stack([e[b] for e in estimates])]
fig = plotting.show_rows(torch.stack(strip).clamp(0, 1), row_labels=["seed 0: x", "Tweedie", "seed 1: x", "Tweedie"],
                         col_labels=[f"{path[i].sigma:.2g}" for i in kept], title="states and denoised estimates at sigma =")
final, D = path[L].x, path[L].x[0].numel()
print("sigma   |x - final| / (sigma sqrt(D))   excess noise per pixel   estimate's rms distance from the final sample")
for i, est in zip(kept, estimates):
    s = path[i].sigma
    off = float(((path[i].x - final).flatten(1).norm(dim=1) / (s * math.sqrt(D))).mean())
    rms = float((est - final).flatten(1).pow(2).mean(1).sqrt().mean())
    print(f"{s:5.3g}   {off:31.3f}   {max(off - 1, 0) * s:22.3f}   {rms:44.3f}")

# %% [markdown]
# **Why the first estimates are noise.** The second column measures how far each state lies from the
# sample it ends as, in units of its level's shell radius $\sigma_i\sqrt D$ (at large $\sigma$ the image part of
# that distance is negligible, so this is the state's noise). It is above 1 from $\sigma \approx 5$ down to the
# smallest levels: the states carry more noise than their level's own (below $\sigma \approx 0.5$ part of that
# distance is image still to change, so there the column overstates the noise; at $\sigma_L$ the last row
# is the denoising step's own move, below 1). Notebook 02's one-point model predicts an excess too (its
# figure for this schedule is printed in section 4); the trained network's states carry more than
# that. The network was trained on states *with* their level's noise, and Tweedie's formula takes out
# about one shell's worth, $\sigma_i\sqrt D$; the excess stays in the estimate, about (second column $- 1$)
# $\times\, \sigma_i$ per pixel (third column). At $\sigma \approx 5$ that is several times an image's own contrast (a
# pixel's standard deviation in the data is about 0.24), which clamping to $[0, 1]$ shows as saturated
# colour; the excess shrinks with $\sigma_i$, and a few levels further down the estimates show the picture.
#
# **Why so far out: two one-point models.** Technique 4 picks $\epsilon$ so that a level's $T$ steps bring a
# state that starts at the *previous* level's variance to this level's. But each level starts from its
# predecessor's excess, not from its exact variance, and with the exact one-point score $-x/\sigma^2$ the
# excess piles up to a fixed point a few percent out (notebook 02's model, `outside_shell`). The trained
# network pulls less than that off its shells: Tweedie's estimate takes out about one shell's worth, so its
# score has about the length $\sqrt D/\sigma$ wherever the state is, and a state further out is not pulled
# back harder. The cell simulates both in $D$ dimensions (`shell_model.shell_ratios`; 16 chains, data at one
# point, no network) and prints them beside the measured column at $\sigma \ge 0.5$, where the image part of
# the distance is small:

# %% tags=["nbval-ignore-output"]
model_ratio = {kind: shell_model.shell_ratios(schedule.sigmas(), eps, T, dim=D, score=kind)
               for kind in shell_model.SCORES}
print("sigma   measured (4 samples, +- 2 SE)   exact score -x/sigma^2   fixed-length score")
for i in kept:
    s = path[i].sigma
    if s >= 0.5:
        measured = mean_2se((path[i].x - final).flatten(1).norm(dim=1) / (s * math.sqrt(D)))
        print(f"{s:5.3g}   {measured[0]:12.3f} +- {measured[1]:.3f}   {model_ratio['exact'][i]:22.3f}   "
              f"{model_ratio['fixed-length'][i]:18.3f}")

# %% [markdown]
# The two models are two ways a network could behave: one pulls harder the further out a state is, the
# other not. Compare both with the measured column: the closer one is the better account of where the
# trained network's states sit, and a measured ratio above both says the network pulls even less than a
# fixed-length score there. The measured ratios come from 4 samples only (indicative: a ratio over 3,072
# pixels varies little from sample to sample, but 4 samples make a rough interval).
#
# ## 3. The final denoising step
#
# After the last level the sample still carries noise of scale $\sigma_L$. One extra step,
# Tweedie's formula at $\sigma_L$, removes most of it (the last row of section 2's table: the step moves
# the state by less than a full shell, as a network that explains about 70% of the noise at $\sigma_L$,
# notebook 04, would). The run above kept the state before and after it;
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
# The step changes each pixel by less than $\sigma_L$ on average (printed; taking out a whole noise
# of standard deviation $\sigma_L$ would change it by $0.8\,\sigma_L$): invisible side by
# side, and a fine, grainy pattern when amplified - the noise of the last level, which the sampler's own
# $\sqrt{2\alpha_L}\, z$ keeps adding until the end. It relies on the network at $\sigma_L$, the level notebook 04 found it
# knows least well (its loss is highest there); notebook 07 looks at the step's effect on colour.
#
# **Why keep so small a step?** A change of a hundredth of the pixel range is about 2.5 of the 256 grey
# levels an image is saved with, so the noise it removes survives saving. On samples we cannot say how
# much noise is left (there is no clean version), but on held-out images we can: add noise of $\sigma_L$
# to 64 test images, apply the same step, and measure the pixels' distance from the clean images before
# and after (one network evaluation per image):

# %% tags=["nbval-ignore-output"]
real = workflow.training_images(course.profile, split="test")
x_real = real.images[torch.randperm(len(real), generator=course.generator)[:64]].float().div(255).to(course.device)
s_L = schedule.sigma_min
noisy = x_real + s_L * torch.randn(x_real.shape, generator=course.generator).to(course.device)
denoised = sampling.tweedie(score, noisy, s_L)
rms = {name: (v - x_real).flatten(1).pow(2).mean(1).sqrt() for name, v in (("before", noisy), ("after", denoised))}
for name, v in rms.items():
    m, e = mean_2se(v)
    print(f"{name:6s} the denoising step: rms distance from the clean image {m:.4f} +- {e:.4f} per pixel "
          f"({m * 255:.2f} of 255 grey levels), {len(v)} test images")
m, e = mean_2se(rms["after"] / rms["before"])
print(f"noise left after the step: {m:.0%} +- {e:.0%} of it")

# %% [markdown]
# The step takes out part of the last level's noise (the share left is printed, with its interval over
# the 64 images); its square is comparable with the share of the noise notebook 04 found unexplained at
# $\sigma_L$ (1 minus the share explained there). NCSNv2
# adds the step for exactly this reason: the last level's noise is small but, on its own measure of
# quality (FID), not negligible.
#
# ## 4. Technique 4, felt: the base step $\epsilon$
#
# Technique 4 picks $\epsilon$ so that, in notebook 02's one-point model, the variance after $T$ steps at a
# level comes as close as it can to the level's own. It matches the variance only: it does not make the
# chain forget where it started. Each step keeps a fraction $r = 1 - \epsilon/\sigma_L^2$ of the state's distance
# from the data point, so after $T = 5$ steps $r^T$ of the start is still there (printed below). Seed 0,
# your sampler, the full schedule, $\epsilon$ 4x smaller and 4x larger (one seed, to keep this cell near a
# minute on a CPU: it shows what this one sample does). The middle image is the package's run of
# section 2 (in the package's sampling precision); the two outer ones are your sampler in float32:

# %% tags=["nbval-ignore-output"]
print(f"r^T = (1 - eps / sigma_L^2)^T = {(1 - eps / schedule.sigma_min**2) ** T:.2f} of the start remains after "
      f"a level's T = {T} steps")
sweep_seeds = seeds[:1]
sweep_noise = SeededNoise(sweep_seeds)
x0 = schedule.sigma_max * sweep_noise(0, (len(sweep_seeds), 3, 32, 32), course.device, torch.float32)
evals = sampling.num_score_evaluations(L, T)
course.expect("your sampler, eps x 0.25 and x 4", len(sweep_seeds), runs=2)
bar_score = sampling.with_progress(score, 2 * evals, desc="your sampler")  # your function has no bar of its own
sweep, stamps = {}, {}
for factor in (0.25, 4.0):
    t0 = time.perf_counter()
    sweep[factor] = sampler(bar_score, x0, schedule.sigmas().to(course.device), T, eps * factor, sweep_noise)
    stamps[factor] = time.perf_counter() - t0
sweep[1.0] = after[:len(sweep_seeds)]
fig = plotting.show_rows(torch.stack([sweep[f][0] for f in (0.25, 1.0, 4.0)])[None].clamp(0, 1), scale=1.6,
                         col_labels=[f"eps x {f:g}" for f in (0.25, 1.0, 4.0)], title=f"seed {sweep_seeds[0]}, L = {L}, T = {T}")
ms = 1000 * stamps[4.0] / (len(sweep_seeds) * sampling.num_score_evaluations(L, T))
print(f"seconds per run of {len(sweep_seeds)} samples:", {f: round(t, 1) for f, t in stamps.items()},
      f"= {ms:.1f} ms per image per network evaluation")
print("notebook 02's one-point model: the states settle outside their shell's radius by",
      {f: f"{outside_shell(schedule.sigmas(), eps * f, T):.0%}" for f in (0.25, 1.0, 4.0)},
      f"(a shell is {1 / math.sqrt(2 * D):.1%} thick)")

# %%
mine = sampler(fast, x0, schedule.sigmas().to(course.device), T, eps, sweep_noise) if L < 50 else None
if mine is not None:  # a cheap check under the ci profile: your sampler, the package's, the same images
    assert torch.allclose(mine, after[:len(sweep_seeds)], atol=1e-3)

# %% [markdown]
# With a 4x smaller step the chain moves too little at each level: it keeps too much of each start, and
# the excess piles up from level to level. Notebook 02's one-point model puts the states about a third
# outside their shell's radius (printed above), for a shell about 1.3% thick. The network was trained
# only on its shells, and notebook 01 showed what a learned score is worth where no noisy sample ever
# landed: the sampler never finds its way back, and after all the levels this sample is still noise.
#
# With a 4x larger step, look at the row against the middle one (one seed only shows what *this*
# sample does, not a rule): where it is smoother, with less detail and contrast, that is not
# because each level takes out more noise: the one-point model leaves slightly *more* than with $\epsilon$
# (printed above; notebook 02 shows why a larger step overshoots). What changes is the size of each
# move. By Tweedie's formula the score is $(\hat x - x)/\sigma_i^2$, so a step's drift is
# $\alpha_i\, s = \frac{\epsilon}{\sigma_L^2}(\hat x - x)$: it moves the state a fraction $\epsilon/\sigma_L^2$ of the way to its denoised
# estimate $\hat x$, an average of the images the state could become, and blurry. With technique 4's $\epsilon$
# that fraction is about 6%; with $4\epsilon$, a quarter, so every step leans much harder on that blurry
# average, which would fit a smoother row. Technique 4's $\epsilon$ sits between the two failures, and it
# was chosen for $T = 5$: change $T$ and $\epsilon$ must change with it (notebook 02).
#
# ## 5. Steps per level: quality against time
#
# Fewer levels and fewer steps are faster, but the chain then has less time to follow the shrinking
# noise. Why $T = 5$? Here is what $T = 1$, 3 and 10 give instead, on 16 seeds, each with technique 4's
# $\epsilon$ for its $T$, on a coarse schedule to keep this to a minute or two: every eighth *trained* level
# (notebook 03: the network is reliable only at the levels it was trained on). The package's `generate`
# samples them, all 16 seeds in one batch. Quality is measured as notebook 07 does, by the Frechet
# distance in the features of the course's ten-class network to 256 held-out horse and bird images, with
# its bootstrap interval; 16 *other* held-out images give the floor a perfect sampler would reach with
# 16 samples (a Frechet distance from 16 images is large even for real ones). The seconds printed for
# each $T$ are what its sampling costs on this machine, its evaluations times the network's cost measured
# at set-up, not a stopwatch: a second run of this cell reads its images from the sample cache, and would
# time a disk read.

# %% tags=["nbval-ignore-output"]
full = schedule.sigmas()
n_coarse = max(2, L // 8)
every = (L - 1) // (n_coarse - 1)  # every 8th trained level, ending at sigma_L (notebook 03: only trained levels)
coarse = full[(L - 1) - every * torch.arange(n_coarse - 1, -1, -1)]
t_seeds, t_values = list(range(16)), (1, 3, 5, 10)
plans = {t: Schedule(float(coarse[0]), float(coarse[-1]), len(coarse), t) for t in t_values}
evals = {t: sampling.num_score_evaluations(len(coarse), t) for t in t_values}
course.expect(f"16 samples for each T at L = {len(coarse)}", len(t_seeds), evaluations=sum(evals.values()))
by_t = {t: generate(model, t_seeds, plan).cpu() for t, plan in plans.items()}  # a re-run reads the sample cache
seconds = {t: course.expected_seconds(len(t_seeds), evals[t]) for t in t_values}  # each T's cost here, not a disk read
fig = plotting.show_rows(torch.stack([by_t[t][:8] for t in t_values]), row_labels=[f"T = {t}" for t in t_values],
                         scale=1.0, title=f"seeds 0-7 of 16, L = {len(coarse)} (every {every}th trained level)")
judge = evaluation.load_feature_net(device="cpu")[0]  # (network, its checkpoint)
order = torch.randperm(len(real), generator=torch.Generator().manual_seed(1))
ref = evaluation.extract_features(judge, real.images[order[:256]].float().div(255))
floor = evaluation.frechet_distance_interval(evaluation.extract_features(judge, real.images[order[256:272]].float()
                                                                        .div(255)), ref)
print(f"Frechet distance to {len(ref)} held-out images (95% bootstrap interval):")
print(f"16 other held-out images (the floor): {floor[0]:6.1f} ({floor[1]:.1f} to {floor[2]:.1f})")
for t in t_values:
    fd = evaluation.frechet_distance_interval(evaluation.extract_features(judge, by_t[t]), ref)
    shell = outside_shell(coarse, plans[t].step_lr(), t)
    print(f"T = {t:2d}: {evals[t]:5,} evaluations, ~{seconds[t]:5.1f} s here: {fd[0]:6.1f} ({fd[1]:.1f} to {fd[2]:.1f}); "
          f"one-point model: {shell:.0%} outside the shells")

# %% [markdown]
# Read the rows and the printed distances together. One step per level leaves the states far outside
# their shells in the one-point model (printed), where the network was never trained, the same failure as
# section 4's 4x smaller step. From there, each step more per level costs another pass over all the
# levels: $T = 10$ costs about twice $T = 5$'s evaluations, and $T = 3$ about 60% of them. Where two
# settings' intervals overlap, 16 samples cannot tell them apart. A bootstrap redraws each set with
# repeats, which raises a distance, so an interval can lie wholly above its own estimate (the floor's may):
# compare intervals with intervals. If $T = 5$'s interval lies below $T = 3$'s and overlaps $T = 10$'s (and
# the floor's), the extra steps of $T = 10$ buy nothing 16 samples can measure, while fewer steps fail
# outright: the printed lines say whether that is so here. Note that the one-point model only ranks the
# settings: it does not say at which share outside the shells the network stops producing images. $T = 5$ is NCSNv2's choice. (The `ci` profile samples with very few levels and $T = 2$: its samples stay noise.)
#
# ## 6. A full batch from the shipped model
#
# The samples above are a handful, from a few seeds. Below, 64 samples of the shipped model, seeds
# 0-63, with the full schedule (L = 232, T = 5) and the denoising step. They are **the committed grid**
# `checkpoints/samples.png`, made on an H100 with `pegasus-course sample --n 64` (about 25 s there);
# the cell prints what the same command would take on this machine, from the cost measured at set-up.
# Look for the share of horses and birds (about two in five are horses, notebook 07 measures it),
# the backgrounds, which are often sharper than the animals, and samples that are neither.

# %% tags=["nbval-ignore-output"]
grid = checkpoints.DEFAULT_CHECKPOINT.with_name("samples.png")
fig = plotting.show_png(grid, title="committed: 64 samples of the shipped model, seeds 0-63 "
                                    "(`pegasus-course sample --n 64`, H100)")
trained = schedule_from_meta(course.checkpoint.meta, 5)  # the command samples with every trained level, T = 5
here = course.expected_seconds(64, sampling.num_score_evaluations(trained.num_scales, 5))
print(f"`pegasus-course sample --n 64` on this machine: ~{workflow.format_duration(here)} "
      f"(L = {trained.num_scales}, T = 5; from the network's cost measured at set-up)")

# %% [markdown]
# ## 7. The cost of a sample
#
# The paper's setting needs one network evaluation per Langevin step, for every level, plus the
# denoising step:

# %%
# NBVAL_CHECK_OUTPUT
print("network evaluations with L = 232, T = 5:", sampling.num_score_evaluations(232, 5))

# %% [markdown]
# Over a thousand evaluations for one batch is the limitation the paper names: a GAN or a VAE
# needs one. On an H100 a batch of 64 32×32 samples with the full schedule takes about 25 s with
# the course's network (`benchmarks/RESULTS.md`); on this machine, what section 6 printed.
#
# Next, notebook **06** records the noise tapes of two samples and mixes them: winged horses.
