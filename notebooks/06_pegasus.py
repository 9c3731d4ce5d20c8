# %% [markdown]
# # 06 · Pegasus: interpolating between a horse and a bird
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/06_pegasus.ipynb)
#
# **Learning objectives**
# 1. See that a sample is fixed by its *noise tape*: the start $z_0$ and every $z_{ij}$ drawn on the way.
# 2. Write the interpolation yourself: mix two recorded tapes with the paper's eq. 4 and replay them
#    through the sampler; then draw the row between a horse and a bird with your function.
# 3. See why not simply blend the two images, or mix the noise linearly.
# 4. Make a batch of winged horses, explore a row interactively, and meet the method's limitation.
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
import json
import math
from dataclasses import replace

import torch

from pegasus_course import checkpoints, classifier, evaluation, exercises, plotting, sampling, workflow
from pegasus_course.generate import generate, model_score_fn, pegasus_batch, pegasus_k, pegasus_rows
from pegasus_course.interpolation import interpolate, linear_weights, mix_weights, spread_ks
from pegasus_course.sampling import SeededNoise, TapeNoise, num_score_evaluations, record_tape
from pegasus_course.widgets import InterpolationExplorer

course = workflow.setup(seed=0, classifiers=("horse-bird",))
model, schedule, clf, profile = course.model, course.schedule, course.classifiers["horse-bird"], course.profile
score = model_score_fn(model)
L, T, eps = schedule.num_scales, schedule.n_steps_each, schedule.step_lr()

# %% [markdown]
# ## 1. A batch of samples, each named by its seed
#
# Every random draw of sample $b$ is computed from (seed $b$, draw index) alone, so any sample can
# be reproduced from its seed, alone or inside any batch, without storing its noise. This batch is
# drawn once; the ends of every row below come from it.
#
# The seeds are not simply 0, 1, 2, …: the first six are three pairs picked from seeds whose samples are
# on record (`benchmarks/quality_figures.py` drew seeds 0-15 with the full schedule and let an independent
# ten-class network name each one horse or bird): one horse-bird pair, one horse-horse and one bird-bird,
# so that section 8 shows every kind of pair that random ends give.

# %% tags=["nbval-ignore-output"]
record = evaluation.load_quality_figures()  # recorded samples of seeds 0-15 and the judge's verdicts
demo = evaluation.pairs_of_each_kind(record.p_horse("ema"), record.seeds("ema"))  # [(seed, seed, kind), ...]
demo_seeds = [seed for a, b, _ in demo for seed in (a, b)]
seeds = (demo_seeds + [s for s in range(profile.n_samples + 6) if s not in demo_seeds])[: profile.n_samples]
course.expect(f"{len(seeds)} samples with the full schedule", len(seeds))
samples = generate(model, seeds, schedule).cpu()
fig = plotting.show_images(samples, nrow=min(8, len(seeds)), title=f"the batch: seeds {', '.join(map(str, seeds))}",
                           labels=[f"seed {s}" for s in seeds], scale=1.3)

# %% [markdown]
# ## 2. Choose a horse and a bird
#
# The course ships a small horse/bird classifier, trained with `pegasus-course train-classifier` on noisy
# horse and bird images (`checkpoints/README.md`; notebook 07 explains it and uses it to guide). Here it only
# reads the batch above and names its most confident horse and its most confident bird: those two
# seeds are the ends of the row below and of the explorer. Look at the batch yourself: if you see a
# better horse or bird, put its seed below instead and re-run the cells after it.

# %% tags=["nbval-ignore-output"]
horse_seed, bird_seed, how_ends = classifier.choose_horse_and_bird(clf, samples, seeds)
print(how_ends)
horse, bird = samples[seeds.index(horse_seed)], samples[seeds.index(bird_seed)]
fig = plotting.show_images(torch.stack([horse, bird]), nrow=2, title="the ends", scale=2.4,
                           labels=[f"horse: seed {horse_seed}", f"bird: seed {bird_seed}"])

# %% [markdown]
# ## 3. A sample is its noise tape
#
# Annealed Langevin dynamics is deterministic once its draws are fixed: $x_0 = \sigma_1 z_0$ and
# $z_{ij}$ for every level $i$ and step $j$. That list of draws is the sample's **tape**. For a seeded
# sample it can be recorded without running the network (`sampling.record_tape`), and replaying it
# (`sampling.TapeNoise`) gives the sample back. Two tapes are all eq. 4 needs.

# %% tags=["nbval-ignore-output"]
draws = num_score_evaluations(L, T, denoise=False) + 1  # z_0 and the L * T draws z_ij
tape_horse = record_tape(SeededNoise([horse_seed]), (1, 3, 32, 32), draws, device=course.device)
tape_bird = record_tape(SeededNoise([bird_seed]), (1, 3, 32, 32), draws, device=course.device)
print(f"a tape: {draws} draws of shape {tuple(tape_horse[0].shape)}, "
      f"{draws * tape_horse[0].numel() * 4 / 2**20:.1f} MiB in float32")

# %% [markdown]
# ## 4. Eq. 4: mixing two tapes
#
# For $N$ interpolants, interpolant $k$ replays the sampler with **every** draw replaced by
#
# $$\cos\tfrac{k\pi}{2(N+1)}\, z^{(1)} + \sin\tfrac{k\pi}{2(N+1)}\, z^{(2)}.$$
#
# Because $\cos^2 + \sin^2 = 1$, the mix of two independent standard normal draws is again standard
# normal: every interpolant is a proper sample. $k = 0$ is sample 1, $k = N + 1$ sample 2. The paper
# shows $k = 9$ of $N = 15$ for CIFAR-10.
#
# The mixed draw's variance splits as $\cos^2$ from sample 1 and $\sin^2$ from sample 2. At $k = 9$ of
# $N = 15$, sample 2 (here the bird) has the larger share:

# %%
# NBVAL_CHECK_OUTPUT
n = 15
k = pegasus_k(32)
c, s = mix_weights(k, n)
print(f"k = {k} of N = {n}: cos = {float(c):.4f}, sin = {float(s):.4f}; shares of the variance: "
      f"cos^2 = {float(c * c):.2f} from sample 1, sin^2 = {float(s * s):.2f} from sample 2")

# %% [markdown]
# > **Reading the paper.** The paper says that $N$ and $k$ give "a ratio of $k/N$ from $x_1$ and
# > $(N-k)/N$ from $x_2$". By its own eq. 4 it is the other way round: $k = 0$ is $x_1$ and the weight
# > of $z^{(2)}$ grows with $k$, so $k = 9$ takes the larger share (0.60) from $x_2$.
# >
# > The paper's eq. 4 names only the draws $z_{ij}$ of the levels; NCSNv2, whose interpolation the
# > paper follows, gives all interpolants one shared start $x_0$. The course mixes the start $z_0$
# > too. That way $k = 0$ and $k = N + 1$ are exactly the two samples drawn alone from their seeds
# > (with a shared start, at most one end could be), and every interpolant's start is itself a proper
# > draw $\sigma_1 z_0$ with $z_0 \sim N(0, I)$.
#
# ### Exercise: interpolate by replaying two mixed tapes
#
# Write `my_interpolate(score_fn, tape1, tape2, n, ks, sigmas, T, eps)`: for every $k$ in `ks`, mix
# every draw of the two tapes (draw 0, $z_0$, included) with eq. 4, then run annealed Langevin
# dynamics **once** for the whole batch of interpolants on the mixed tape. The tapes map draw index ->
# a tensor of shape (1, C, H, W); the mixed tape maps index -> (len(ks), C, H, W); replay it with
# `sampling.annealed_langevin(score_fn, shape, sigmas, T, eps, noise=sampling.TapeNoise(mixed), progress=False)`.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your rows with the package's `interpolate` on small problems and says what is
# wrong; run it again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_interpolate(score_fn, tape1, tape2, n, ks, sigmas, T, eps):
    """The interpolants ks (of n) between the samples of two noise tapes, by eq. 4: (len(ks), C, H, W)."""
    raise NotImplementedError("Exercise: mix the tapes with eq. 4 and replay them")

# %%
exercises.check_interpolate(my_interpolate);

# %% [markdown]
# Stuck? The cell below loads the reference solution without showing it
# (`exercises.show_solution("interpolate")` prints it). The rows below are drawn with **your**
# `my_interpolate` once it passes its check, with the reference until then; the next cell says which.

# %% tags=["solution"]
solution_interpolate = exercises.solution("interpolate")  # loaded, not shown

# %%
interp = exercises.use(my_interpolate, exercises.check_interpolate, solution_interpolate)

# %% [markdown]
# **Your function against the package, with the course's network.** With a short schedule (8 levels,
# 2 steps each) your `my_interpolate` (or the reference until yours passes its check: the cell above
# says which) and the package's `pegasus_rows` give the same row for the same
# two seeds, and its ends are the two samples drawn alone from their seeds:

# %% tags=["nbval-ignore-output"]
short = replace(schedule, num_scales=8, n_steps_each=2)
short_draws = num_score_evaluations(8, 2, denoise=False) + 1
tapes = [record_tape(SeededNoise([seed]), (1, 3, 32, 32), short_draws, device=course.device)
         for seed in (horse_seed, bird_seed)]
yours = interp(score, *tapes, n, list(range(n + 2)), short.sigmas(), 2, short.step_lr()).clamp(0, 1)
package = pegasus_rows(model, [(horse_seed, bird_seed)], n, short, progress=False)[0]
alone = generate(model, [horse_seed, bird_seed], short, progress=False)  # the two ends, each drawn on its own
print(f"largest difference over the {n + 2} images: {(yours - package).abs().max():.2e}; ends against the "
      f"samples drawn alone: {max((yours[0] - alone[0]).abs().max(), (yours[-1] - alone[1]).abs().max()):.2e}")
assert torch.allclose(yours, package, atol=1e-4)
assert torch.allclose(yours[0], alone[0], atol=1e-4) and torch.allclose(yours[-1], alone[1], atol=1e-4)

# %% [markdown]
# ## 5. The row from the horse to the bird, with your function
#
# Now the full schedule. A row of all 15 interpolants costs 15 samples; under the `cpu` profile the
# notebook computes two, $k = 5$ and $k = 9$ (`profile.row_interpolants`), and takes the ends from section
# 1's batch (the same images: section 4 checked this on a short schedule, and the mechanism is the same).

# %% tags=["nbval-ignore-output"]
ks = spread_ks(n, profile.row_interpolants, include=k)
evals = num_score_evaluations(L, T)
course.expect(f"{len(ks)} interpolants with your my_interpolate", len(ks))
middle = interp(sampling.with_progress(score, evals, desc="your interpolation"), tape_horse, tape_bird, n, ks,
                schedule.sigmas(), T, eps).clamp(0, 1).cpu()
row_ks = [0, *ks, n + 1]
row = torch.cat([horse[None], middle, bird[None]])
fig = plotting.show_rows(row[None], highlight=row_ks.index(k), col_labels=[f"k = {j}" for j in row_ks],
                         title=f"from the horse (seed {horse_seed}) to the bird (seed {bird_seed}), N = {n}; "
                               f"k = {k} framed", scale=1.5)

# %% [markdown]
# **The full rows.** All 15 interpolants of a row cost 15 samples; where this machine cannot compute
# them in the time a notebook should take, the course shows the rows it committed: four rows of the
# shipped model, each from a horse (left) to a bird (right) that the horse/bird classifier picked among
# 16 samples, made with the command in the title (the cell prints what it would take here). Under the
# `gpu` profile the row above is computed in full.

# %% tags=["nbval-ignore-output"]
rows_png = checkpoints.DEFAULT_CHECKPOINT.with_name("pegasus_rows.png")
fig = plotting.show_png(rows_png, title="committed: 4 rows, k = 0..16 left to right (N = 15), ends chosen by the "
                                        "classifier among seeds 0-15 (`pegasus-course pegasus --auto --pairs 4`)")
full_rows = course.expected_seconds(16 + 4 * (n + 2), num_score_evaluations(232, 5))
print(f"`pegasus-course pegasus --auto --pairs 4` (16 candidates, then 4 rows of {n + 2} images, L = 232, T = 5) "
      f"on this machine: ~{workflow.format_duration(full_rows)}")

# %% [markdown]
# ## 6. Why not just blend the two images?
#
# Two simpler ideas, at the same $k$, beside eq. 4:
#
# * **pixel cross-fade**: $(1 - t)\, x_1 + t\, x_2$ of the two finished images, $t = k / (N + 1)$;
# * **linear noise mixing**: the tapes mixed with $(1 - t, t)$ instead of $(\cos, \sin)$ and replayed.
#
# The cross-fade is a double exposure: both animals at once, faded, not one new animal. Linear
# mixing has the right ends but shrinks the noise in between: the mixed draws have variance
# $(1 - t)^2 + t^2$, half of what the sampler expects in the middle of the row:

# %%
# NBVAL_CHECK_OUTPUT
for j in ks:
    a, b = linear_weights(j, n)
    c, s = mix_weights(j, n)
    print(f"k = {j:2d}: variance of the mixed draws, linear {float(a * a + b * b):.3f}, eq. 4 {float(c * c + s * s):.3f}")

# %% tags=["nbval-ignore-output"]
t = torch.tensor([j / (n + 1) for j in row_ks]).view(-1, 1, 1, 1)
crossfade = (1 - t) * horse + t * bird
course.expect(f"{len(ks)} interpolants, linear mix", len(ks))
linear = interpolate(score, (horse_seed, bird_seed), n, schedule.sigmas(), T, eps, ks=ks, mix="linear",
                     device=course.device).clamp(0, 1).cpu()
linear_row = torch.cat([horse[None], linear, bird[None]])
fig = plotting.show_rows(torch.stack([crossfade, linear_row, row]), highlight=row_ks.index(k),
                         row_labels=["pixel cross-fade", "linear noise mix", "eq. 4"],
                         col_labels=[f"k = {j}" for j in row_ks], scale=1.5)
print("pixel standard deviation per image (how much contrast is left):")
for name, r in (("cross-fade", crossfade), ("linear mix", linear_row), ("eq. 4", row)):
    print(f"  {name:10s}", " ".join(f"{float(img.std()):.3f}" for img in r))

# %% [markdown]
# Compare the rows column by column, with the contrast figures printed under them (the pixel
# standard deviation of each image; one pair, so read them as an illustration, not a measurement).
# The cross-fade is two pictures at partial strength (weights $1 - t$ and $t$), and loses contrast towards
# the middle. The linear mix starts each interpolant from a smaller $x_0$ and injects less noise at every
# step than the step sizes assume, and its interpolants lose their detail: in the committed run (cpu
# profile) its $k = 9$ image is a nearly uniform field with one dark blob, its $k = 5$ image a blurred
# shape. Their pixel spread is close to the cross-fade's (printed), but it comes from a few smooth blobs,
# not from texture. Eq. 4 keeps every interpolant a proper sample, an image the model could have drawn on
# its own: it keeps the most contrast of the three rows in both middle columns, and it differs from the
# cross-fade in kind too, one scene rather than two overlaid ones: judge that from the pictures.
#
# ## 7. A batch of winged horses
#
# The paper's figures are batches of $k = 9$ interpolants between random pairs. The pairs here are
# neighbours in section 1's batch, so their ends are already drawn; only the $k = 9$ images are computed.
# The first three are section 1's recorded pairs (horse-bird, horse-horse, bird-bird).

# %% tags=["nbval-ignore-output"]
pairs = [(seeds[2 * i], seeds[2 * i + 1]) for i in range(min(profile.n_pairs, len(seeds) // 2))]
course.expect(f"the k = {k} interpolant of {len(pairs)} pairs", len(pairs))
mids = pegasus_batch(model, pairs, n, [k], schedule)[:, 0].cpu()
batch = torch.stack([torch.stack([samples[seeds.index(a)], m, samples[seeds.index(b)]]) for (a, b), m in zip(pairs, mids)])
fig = plotting.show_rows(batch, row_labels=[f"seeds {a}-{b}" for a, b in pairs], highlight=1,
                         col_labels=["end 1", f"k = {k}", "end 2"], title="pairs of section 1's batch", scale=1.5)

# %% [markdown]
# ## 8. The paper's limitation: random ends
#
# The ends are random samples, so a pair is horse-bird only part of the time; horse-horse and
# bird-bird pairs give a horse or a bird in the middle, not a pegasus. Section 7's first three pairs show
# one of each kind: they were picked for that from the record (section 1), where the independent ten-class
# judge of notebook 07 named each sample. With 64 samples, `benchmarks/sample_quality.py` measured how often
# a *random* pair is horse-bird, judged by that network: the figure printed below. Below, for each pair,
# the judge's recorded verdict and the horse/bird classifier's reading of this batch (either can be wrong
# on a blurry 32x32 sample - judge the pictures yourself):

# %% tags=["nbval-ignore-output"]
probs = classifier.predict_proba(clf, samples)[:, 0]  # p(horse) of every sample in the batch
judged = dict(zip(record.seeds("ema"), record.p_horse("ema").tolist()))  # the judge's recorded p(horse)


for a, b in pairs:
    pa, pb = float(probs[seeds.index(a)]), float(probs[seeds.index(b)])
    on_record = f"judge (recorded): {evaluation.pair_kind(judged[a], judged[b])}; " if a in judged and b in judged else ""
    print(f"seeds {a:2d}-{b:2d}: {on_record}classifier: p(horse) = {pa:.2f} and {pb:.2f} -> {evaluation.pair_kind(pa, pb)}")
rate = json.loads(evaluation.QUALITY_RECORD.read_text())["pegasus_rate"]["random pairs"]
print(f"measured on 32 random pairs: {rate:.0%} horse-bird; at that rate {len(pairs)} random pairs all come out "
      f"horse-bird {rate ** len(pairs):.0%} of the time, none {(1 - rate) ** len(pairs):.0%}.")

# %% [markdown]
# Both readings are a forced choice between horse and bird, and they can disagree with your eyes, and
# with each other, on a 32x32 sample: look at the batch in section 1 before trusting a "horse-bird" above
# (a p(horse) near 0.5 is a coin flip). Notebook 07 (beyond the paper) fixes the limitation by asking
# the classifier for a horse and a bird, and measures the result with the independent judge.
#
# ## 9. The interpolation explorer
#
# Pick the two ends from the batch (click "seed …" under a thumbnail: the first click sets the left
# end, the next the right one; or choose seeds in the drop-downs), press **compute row** (one
# batched run of all $N + 2$ images; minutes on a CPU), then drag **k**: the picture changes at once
# because the whole row is kept. It starts with the row of section 5 (only its computed $k$; the
# slider snaps to them until you compute the full row). **save image** writes the current
# interpolant to `outputs/explorer/`. Question to try: does the middle of the row look more like the
# end whose *colours* are stronger?
#
# Where widgets do not render (a static view of this notebook on GitHub), the row of section 5 is
# the same content as a static strip.

# %% tags=["nbval-ignore-output"]
explorer = InterpolationExplorer(model, schedule, candidate_seeds=seeds, n=n, label=f"profile {profile.name}; {course.how}")
explorer.candidates = samples  # already sampled above
explorer.choose_ends(horse_seed, bird_seed)
explorer.set_row(row, ks=row_ks)
explorer.show_k(k)
print(explorer.status)

# %% tags=["nbval-ignore-output"]
explorer.widget()
