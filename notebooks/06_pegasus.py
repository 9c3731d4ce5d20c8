# %% [markdown]
# # 06 · Pegasus: interpolating between a horse and a bird
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/06_pegasus.ipynb)
#
# **Learning objectives**
# 1. See that a sample is fixed by its *noise tape*: the start $z_0$ and every $z_{ij}$ drawn on the way.
# 2. Mix two tapes with the paper's eq. 4 and replay: the row between a horse and a bird.
# 3. Make a batch of winged horses, explore a row interactively, and meet the method's limitation.
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

from pegasus_course import checkpoints, classifier, exercises, plotting, profiles
from pegasus_course.generate import generate, pegasus_batch, pegasus_k, pegasus_rows, schedule_from_meta
from pegasus_course.interpolation import mix_weights
from pegasus_course.widgets import InterpolationExplorer

profile, g = profiles.start(seed=0)
model, ckpt, how = checkpoints.load_or_train(profile)
schedule = schedule_from_meta(ckpt.meta, n_steps_each=profile.n_steps_each, num_scales=profile.num_scales)
print(how, f"| sampling with L = {schedule.num_scales}, T = {schedule.n_steps_each}")

# %% [markdown]
# ## 1. A batch of samples, each named by its seed
#
# Every random draw of sample $b$ is computed from (seed $b$, draw index) alone, so any sample can
# be reproduced from its seed, alone or inside any batch, without storing its noise.

# %%
seeds = list(range(profile.n_samples))
samples = generate(model, seeds, schedule, progress=False).cpu()
fig = plotting.show_images(samples, nrow=8, title=f"seeds 0-{len(seeds) - 1} (row by row)", scale=0.8)

# %% [markdown]
# ## 2. Choose a horse and a bird
#
# The course ships a small horse/bird classifier (notebook 07 trains and explains it). Here it only
# reads the batch above and names its most confident horse and its most confident bird: those two
# seeds are the ends of the row below and of the explorer. Look at the batch yourself: if you see a
# better horse or bird, put its seed below instead and re-run the cells after it.

# %% tags=["nbval-ignore-output"]
clf, how_clf = classifier.load_or_train_classifier("horse-bird", profile)
horse_seed, bird_seed, how_ends = classifier.choose_horse_and_bird(clf, samples, seeds)
print(how_clf, how_ends, sep="\n")
fig = plotting.show_images(samples[[seeds.index(horse_seed), seeds.index(bird_seed)]], nrow=2,
                           labels=[f"horse: seed {horse_seed}", f"bird: seed {bird_seed}"], title="the ends", scale=1.5)

# %% [markdown]
# ## 3. The interpolation row (eq. 4)
#
# For $N$ interpolants, interpolant $k$ replays the sampler with every draw replaced by
#
# $$\cos\tfrac{k\pi}{2(N+1)}\, z^{(1)}_{ij} + \sin\tfrac{k\pi}{2(N+1)}\, z^{(2)}_{ij}.$$
#
# Because $\cos^2 + \sin^2 = 1$, each mix of two independent standard normal draws is again standard
# normal: every interpolant is a proper sample. $k = 0$ is sample 1, $k = N + 1$ sample 2. The paper
# shows $k = 9$ of $N = 15$ for CIFAR-10 (framed in red). The whole row is one batched sampling run.

# %%
# NBVAL_CHECK_OUTPUT
n = 15
k = pegasus_k(32)
c, s = mix_weights(k, n)
print(f"k = {k} of N = {n}: weights cos = {float(c):.4f}, sin = {float(s):.4f}, cos^2 + sin^2 = {float(c * c + s * s):.4f}")

# %% [markdown]
# ### Exercise: eq. 4
#
# Write $\cos\tfrac{k\pi}{2(N+1)}\, z_1 + \sin\tfrac{k\pi}{2(N+1)}\, z_2$.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_mix_noise(z1, z2, k, n):
    """Eq. 4: the noise of interpolant k of n, from the two samples' draws z1 and z2."""
    raise NotImplementedError("Exercise: write eq. 4")

# %%
exercises.check_mix_noise(my_mix_noise);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_mix_noise(z1, z2, k, n):
    theta = k * math.pi / (2 * (n + 1))
    return math.cos(theta) * z1 + math.sin(theta) * z2

# %%
assert exercises.check_mix_noise(my_mix_noise).passed

# %%
row = pegasus_rows(model, [(horse_seed, bird_seed)], n, schedule, progress=False).cpu()
fig = plotting.show_rows(row, highlight=k, title=f"from the horse, seed {horse_seed} (k = 0), to the bird, seed {bird_seed} (k = {n + 1})")

# %%
# the two ends reproduce the samples drawn on their own, to float precision
assert torch.allclose(row[0, 0], samples[seeds.index(horse_seed)], atol=1e-3)
assert torch.allclose(row[0, -1], samples[seeds.index(bird_seed)], atol=1e-3)

# %% [markdown]
# ## 4. A batch of winged horses
#
# The paper's figures are batches of $k = 9$ interpolants between random pairs. We compute only the
# interpolants we show (both ends and $k = 9$), which costs a third of the full rows.

# %%
pairs = [(2 * i, 2 * i + 1) for i in range(4)]
batch = pegasus_batch(model, pairs, n, [0, k, n + 1], schedule, progress=False).cpu()  # (pairs, 3, ...)
fig = plotting.show_images(batch[:, 1], nrow=4, title=f"k = {k} of N = {n} between random pairs", scale=1.0)

# %% [markdown]
# ## 5. The paper's limitation, shown honestly
#
# The ends are random samples, so a pair is horse-bird only part of the time; horse-horse and
# bird-bird pairs give a horse or a bird in the middle, not a pegasus. Each row below is
# (end 1, $k = 9$, end 2): judge for yourself how many rows join a horse to a bird. Notebook 07
# (beyond the paper) will fix this by asking a classifier for a horse and a bird.

# %%
fig = plotting.show_rows(batch, row_labels=[f"{a}-{b}" for a, b in pairs], highlight=1,
                         title="end 1 | middle | end 2, for each random pair")

# %% [markdown]
# ## 6. The interpolation explorer
#
# Pick the two ends from the batch (click "seed …" under a thumbnail: the first click sets the left
# end, the next the right one; or choose seeds in the drop-downs), press **compute row** (one
# batched run), then drag **k**: the picture changes instantly because the whole row is kept.
# **save image** writes the current interpolant to `outputs/explorer/`.
# Question to try: does the middle of the row look more like the end whose *colours* are stronger?
#
# Where widgets do not render (a static view of this notebook on GitHub), the row above is the
# same content as a static strip.

# %% tags=["nbval-ignore-output"]
explorer = InterpolationExplorer(model, schedule, candidate_seeds=seeds, n=n,
                                 label=f"profile {profile.name}; {how}")
explorer.candidates = samples  # already sampled above
explorer.choose_ends(horse_seed, bird_seed)
explorer.set_row(row[0])  # the row of section 3; the compute button samples a new one
explorer.show_k(k)
print(explorer.status)

# %% tags=["nbval-ignore-output"]
explorer.widget()
