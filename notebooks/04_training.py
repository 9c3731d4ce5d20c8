# %% [markdown]
# # 04 · Training the score network on horses and birds
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/04_training.ipynb)
#
# <!-- time:start -->
# *Run All takes 3 min 05 s under the `cpu` profile on a 2-core CPU (measured 2026-12-03; 1 min 48 s on a re-run, which reuses the sample cache; peak memory 1.6 GB) and about 6 min (3,000 steps of batch 128) under `gpu` on one H100 (estimate). Notebook 00 lists every notebook's times.*
# <!-- time:end -->
#
# **Learning objectives**
# 1. Write one whole training step (loss, backward, Adam, EMA), check it against the package, and
#    train with it.
# 2. Read a training run: the shipped model's loss history, and its loss at each noise level.
# 3. Run a short live training in the active profile and watch what a young network samples.
# 4. Know how to run the long version on a GPU from the command line, and how to resume it.
# 5. See what the exponential moving average (EMA) of the weights changes.
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
import torch

from pegasus_course import (checkpoints, data, exercises, losses, plotting, plotting_training, sampling, training,
                            training_report, workflow)
from pegasus_course.generate import Schedule, generate, model_score_fn
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig, count_parameters

profile, g = workflow.start(seed=0)
device = workflow.default_device()
print("device:", device)

# %% [markdown]
# ## 1. One training step, written out
#
# The paper trains with Adam (learning rate $10^{-4}$, standard betas) on batches of 128 CIFAR-10
# images with random horizontal flips. One step:
#
# 1. take a batch $x$ and draw one level $\sigma$ per image from the $L$ levels, and noise $z$;
# 2. compute the DSM loss of eq. 2 multiplied by $\sigma^2$ (NCSN's weighting $\lambda(\sigma) = \sigma^2$) on $\tilde x = x + \sigma z$:
#    $\frac{1}{2}\,\| \sigma\, s_\theta(\tilde x, \sigma) + z \|^2$, summed over the pixels and averaged over the batch;
# 3. backpropagate and take an Adam step;
# 4. update the exponential moving average (EMA) of the weights:
#    $\bar\theta \leftarrow 0.999\,\bar\theta + 0.001\,\theta$.
#
# Step 4 is not in the seed paper: it is **technique 5 of NCSNv2** (Song & Ermon, 2020), which found
# that sampling with the averaged weights gives better and steadier samples. The course uses it
# throughout, and the shipped model is sampled with its EMA (section 5 measures what it changes;
# notebook 07 builds on it).
#
# **Why these numbers.** The learning rate $10^{-4}$ is the seed paper's (and NCSN's): the seed paper
# says it chose it "as we found that larger learning rates caused greater fluctuations in the loss
# estimate (equation 2)". With Adam the learning rate is nearly a step *length*: each parameter moves by
# $\text{lr} \cdot \hat m / (\sqrt{\hat v} + \epsilon)$, and the ratio $\hat m / \sqrt{\hat v}$ is of order 1 (rarely
# much above it) whatever the size of the gradient, so one step moves a weight by at most about $10^{-4}$ (section 3
# measures it on the live run). The EMA's rate 0.999 is NCSNv2's: each update keeps 0.999 of the
# average, so a step's weight fades as $0.999^n$ and the average remembers about $1/(1 - 0.999) = 1{,}000$
# steps (section 5 prints how much of the start is left after $n$ steps).
#
# **Why $\sigma^2$.** Without a weight, the loss at level $\sigma$ is $\frac{1}{2}\| s_\theta + z/\sigma \|^2$, whose
# target $-z/\sigma$ has length about $\sqrt{D}/\sigma$: about 1.1 at $\sigma_1 = 50$ and about 5,500 at
# $\sigma_L = 0.01$. The smallest levels would then outweigh the largest by tens of millions ($(50/0.01)^2$ for a network that outputs zero). NCSN's rule is
# $\lambda(\sigma) \propto 1 / \mathbb E\|\nabla_{\tilde x} \log q_\sigma(\tilde x \mid x)\|^2 = 1/\mathbb E\|z/\sigma\|^2 = \sigma^2 / D$,
# i.e. $\lambda(\sigma) = \sigma^2$ up to a constant: it makes every level's loss of the same order
# (section 2 measures both, level by level).
#
# `training.train` draws step 1 on the training device from a generator seeded with (seed, step), so
# a run resumed at any step continues exactly; here is one step's batch and draws:

# %% tags=["nbval-ignore-output"]
train_set = workflow.training_images(profile)
schedule = Schedule(profile.sigma_max, profile.sigma_min, profile.num_scales, profile.n_steps_each)
levels = schedule.sigmas()
config = ScoreUNetConfig.for_image_size(32, profile.base_channels, num_res_blocks=profile.num_res_blocks)
model = ScoreUNet(config).to(device)
print(f"{len(train_set)} images ({', '.join(train_set.classes)}), L = {len(levels)} levels, "
      f"{count_parameters(model):,} parameters")

step_gen = training.make_generator(training.step_seed(0, 0), device)
batch = torch.arange(8, device=device)  # the first 8 images, for this demonstration
x, sigma, z = training.step_draws(train_set.images.to(device), levels.to(device), batch, step_gen)
print("x:", tuple(x.shape), "in [0, 1]; sigma:", tuple(sigma.shape), "one level per image; z:", tuple(z.shape))

# %% [markdown]
# Before the network has learned anything, what loss should we expect? A network that output zero
# would leave the residual $\sigma s + z = z$, whose squared norm is $D = 3 \cdot 32 \cdot 32 = 3072$ on
# average: a loss of $D/2 = 1536$. An untrained network does not output zero, so its loss is
# different (usually higher); the cell prints both for this batch.

# %% tags=["nbval-ignore-output"]
zero_net = lambda x, s: torch.zeros_like(x)  # noqa: E731
with torch.no_grad():
    untrained = losses.dsm_loss_given(model, x, sigma, z)
print(f"zero network: {losses.dsm_loss_given(zero_net, x, sigma, z).item():.1f} (D/2 = {x[0].numel() / 2:.0f} "
      f"on average); the untrained network: {untrained.item():.1f}")

# %% [markdown]
# ### Exercise: one whole training step
#
# Write steps 2-4 for the batch and draws you are given. `model(x_tilde, sigma)` returns the
# score; `ema` is a copy of the network whose parameters are the average; `optimizer` is Adam over
# `model.parameters()`. Return the loss (a tensor).
#
# What `model` is exactly: `training.train` hands the step the network inside a thin wrapper (it feeds
# the network channels-last input and mixed precision where asked). Its `parameters()` are the network's
# own, in the same order as `ema.parameters()`, so update the EMA parameter by parameter; its
# `state_dict()` keys carry a `net.` prefix that `ema`'s do not.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it trains a tiny network for three steps with `training.train` twice from one seed, once with
# the package's step and once with yours, and compares the losses, the weights and the EMA. Run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_training_step(model, ema, optimizer, x, sigma, z, ema_decay):
    """One step: the DSM loss (eq. 2) on x + sigma z, backward, optimizer step, EMA update; returns the loss."""
    raise NotImplementedError("Exercise: write the training step")

# %%
exercises.check_training_step(my_training_step);

# %% [markdown]
# Stuck? The cell below loads the reference solution without showing it
# (`exercises.show_solution("training_step")` prints it).

# %% tags=["solution"]
solution_training_step = exercises.solution("training_step")  # loaded, not shown

# %% [markdown]
# `training.train` runs this step in a loop and adds what a real run needs: mixed precision on a GPU
# (bf16, or fp16 with a gradient scaler where the GPU lacks bf16), a progress bar, a guard that stops on a non-finite or exploding loss, atomic checkpoints,
# Ctrl-C that saves, and - under `torchrun` - several GPUs. It takes a step as `step_fn`: the live
# run of section 3 trains with **your** `my_training_step` once it passes its check, with the
# reference until then, and says which.
#
# ## 2. Reading a long run: the shipped model
#
# The model the next notebooks sample was trained on an H100 for 14,275 steps; its checkpoint keeps the
# loss of every step. It was trained in four **legs** (`checkpoints/README.md`): four processes, one after
# the other, each continuing from the last one's weights but with Adam's moments started again from zero,
# two at batch 128 and two at batch 512. The figure plots the loss against the images seen (a step at
# batch 512 sees four times the images of one at 128) and marks where each leg began.

# %%
shipped, shipped_ckpt = checkpoints.load_score_model(checkpoints.DEFAULT_CHECKPOINT, device=device)
legs = training_report.SHIPPED_LEGS
fig = plotting_training.plot_loss_legs(shipped_ckpt.losses, legs, smooth=200,
                                       title=f"the shipped model's DSM loss per step ({shipped_ckpt.step:,} steps)")
print("mean loss (+- 2 SE) of the 100 steps before and after each leg began, and the largest single step of each:")
for b in training_report.around_boundaries(shipped_ckpt.losses, legs, width=100):
    print(f"step {b['step']:6,} (batch {b['batch_before']} -> {b['batch_after']}): {b['before'][0]:6.1f} +- "
          f"{b['before'][1]:4.1f} -> {b['after'][0]:6.1f} +- {b['after'][1]:4.1f}; largest {b['max_before']:6.1f} -> "
          f"{b['max_after']:6.1f}")

# %% [markdown]
# The loss drops by an order of magnitude in the first few hundred steps and creeps down after. Where a
# leg begins, Adam's moments start again: its first steps have $\hat v$ estimated from a handful of gradients,
# and the table shows what that did at each boundary: a spike shows as a largest step after the boundary
# well above the largest of the 100 steps before it, a lasting change as means whose intervals do not overlap.
# At batch 512 the per-step loss averages four times as many images, so its spread shrinks. The loss
# stays noisy because every batch draws other noise levels, and the loss differs greatly by level.
# Averaged over all levels, the loss hides *where* the network is good. Measure it one level at a
# time, on held-out test images (every image at the same level, the same $z$ at every level):

# %% tags=["nbval-ignore-output"]
test_set = workflow.training_images(profile, split="test")
x_test = test_set.images[torch.randperm(len(test_set), generator=g)[:32]].float().div(255).to(device)
probe = levels[torch.linspace(0, len(levels) - 1, min(24, len(levels))).round().long().unique()]  # ends included
workflow.expect("the loss at each level", len(x_test), len(probe), workflow.measure_network(shipped, len(x_test)))
per_image = losses.dsm_losses_per_image(model_score_fn(shipped), x_test, probe.to(device),
                                        torch.Generator(device).manual_seed(0), progress=True)  # (levels, images)
by_level = per_image.mean(1)
D = x_test[0].numel()
fig = plotting.plot_lines(probe.tolist(), {"shipped model": 1 - by_level / (D / 2), "zero network": [0.0] * len(probe)},
                          title="share of the noise explained per level, 32 held-out images", xlabel="sigma (log axis)",
                          ylabel="1 - loss / (D/2)", logx=True, marker=".", ylim=(-0.05, 1.05))
print(f"share of the noise the network explains, 1 - loss / (D/2): sigma = {probe[0]:.3g}: "
      f"{1 - by_level[0] / (D / 2):.3f}; sigma = {probe[-1]:.3g}: {1 - by_level[-1] / (D / 2):.3f}")

# %% [markdown]
# At large $\sigma$ the network predicts the noise almost perfectly (the image is a small
# perturbation of a big noise). At small $\sigma$ it explains far less of it: noise of scale 0.01 is
# about the size of the image's own fine texture, so telling one from the other is hard, and this
# model's weakest levels are the last ones of the sampler. The share there cannot reach 1 even
# for a perfect network (the noise cannot be told from the image's texture), so the curve says where the
# model is *least sure*, not how far it is from the optimum. Notebook 05 meets this again in the final denoising step.
#
# **The weighting, measured.** The same losses without NCSN's $\sigma^2$: divide each level's weighted
# loss by $\sigma^2$ (no new network evaluation). The unweighted target $z/\sigma$ has length about $\sqrt D/\sigma$:

# %% tags=["nbval-ignore-output"]
unweighted = per_image / probe.double().pow(2)[:, None]
fig = plotting_training.plot_level_losses(probe.tolist(), {"weighted, 0.5 ||sigma s + z||^2": per_image,
                                                           "unweighted, 0.5 ||s + z / sigma||^2": unweighted},
                                          title=f"loss per level, {len(x_test)} held-out images (+- 2 SE)")
print("sigma     |z / sigma| (sqrt(D)/sigma)   unweighted loss (+- 2 SE)     weighted loss (+- 2 SE)")
for i in torch.linspace(0, len(probe) - 1, min(5, len(probe))).round().long().unique().tolist():
    u, w = training_report.mean_2se(unweighted[i]), training_report.mean_2se(per_image[i])
    print(f"{probe[i]:7.3g}   {D ** 0.5 / probe[i]:26.1f}   {u[0]:13.4g} +- {u[1]:<9.2g}   {w[0]:11.4g} +- {w[1]:.2g}")
spread = (unweighted.mean(1).max() / unweighted.mean(1).min(), by_level.max() / by_level.min())
print(f"largest / smallest level's loss: unweighted {spread[0]:.3g}, weighted {spread[1]:.3g}")

# %% [markdown]
# Unweighted, the few smallest levels would make almost all of the loss (the last line: their loss is
# many orders of magnitude above the largest levels'), and the gradient would train little else. With
# $\lambda(\sigma) = \sigma^2$ every level's loss lies between 0 and about $D/2$ (a network that output zero),
# and the spread between levels is what the network has or has not learned.
#
# ## 3. A short live run, with your training step
#
# The active profile decides how long (`notebook_train_steps`): seconds under `ci`, a few minutes
# under `cpu`, a few thousand steps on a GPU (the full run is a command, section 4). The previews
# sample with the **live** weights: after a few hundred steps the EMA still averages in the first,
# random weights, and its samples would be coloured noise (section 5). To keep the previews cheap they
# use every seventh of the trained levels ($T$ as the profile's; only trained levels, notebook 03): a
# seventh of the full schedule's evaluations, for a network this young.

# %% tags=["nbval-ignore-output"]
def every_seventh(trained):
    """Every seventh trained level, down to sigma_L, as a schedule with the profile's T."""
    every = max(1, (len(trained) - 1) // max(1, profile.num_scales // 7))
    kept = trained[(len(trained) - 1) % every::every]
    return Schedule(float(kept[0]), float(kept[-1]), len(kept), profile.n_steps_each)


steps = profile.notebook_train_steps
cfg = training.TrainConfig(steps=steps, batch_size=min(profile.batch_size, len(train_set)), seed=0,
                           log_every=max(1, min(25, steps // 10)))
preview_at = sorted({max(1, steps // 2), steps})
preview_schedule = every_seventh(levels)
snapshots = {}
workflow.estimate_training(profile, device)  # prints what the steps will take here, measured now
evals = sampling.num_score_evaluations(preview_schedule.num_scales, preview_schedule.n_steps_each)
workflow.expect(f"... and the previews (L = {preview_schedule.num_scales})", 4, evals,
                workflow.measure_network(model, 4), runs=len(preview_at))

def on_step(state):  # runs every log_every steps
    if len(snapshots) < len(preview_at) and state.step >= preview_at[len(snapshots)]:
        snapshots[state.step] = generate(state.model, range(4), preview_schedule, progress=False).cpu()

step_fn = exercises.use(my_training_step, exercises.check_training_step, solution_training_step)
state = training.train(model, train_set.images, levels, cfg, on_step=on_step, step_fn=step_fn,
                       checkpoint_path=checkpoints.NOTEBOOK_RUN,
                       meta={"schedule": schedule.to_dict(), "profile": profile.name,
                             "data": {"source": data.default_data().source, "classes": list(train_set.classes),
                                      "image_size": 32}})
print(f"{state.step} steps with {'your step' if step_fn is my_training_step else 'the reference step'}, "
      f"{state.images_per_second:.0f} images/s; checkpoint: runs/notebook-04/")
moved = training_report.adam_last_update(state.optimizer)  # rebuilt from Adam's moments
print(f"Adam's last step moved the {moved.numel():,} weights by {moved.mean():.2e} on average (lr = {cfg.lr:g}); "
      f"median {moved.median():.2e}; {(moved <= cfg.lr).double().mean():.1%} of them by at most lr, "
      f"{(moved <= 2 * cfg.lr).double().mean():.1%} by at most 2 lr")

# %%
fig = plotting.plot_curve(state.losses, title="DSM loss per step (this run)", smooth=min(20, len(state.losses)), logy=True)

# %% [markdown]
# The loss falls fast at first (the network learns the right height for $\sigma s \approx -z$, the $1/\sigma$
# slope being built in, and the average image) and
# slowly afterwards, as in the shipped run's first steps. Below, samples of the live weights at the
# preview steps (each row one step, every seventh level). Under `cpu` (200 steps) both previews are
# still noise; blurry colour blobs need more steps (the `gpu` profile's few thousand). A few hundred steps are far from the
# shipped model's 14,275 (5,875 at batch 128, then 8,400 at batch 512: 5.05 million images).

# %%
shown = sorted(snapshots)
fig = plotting.show_rows(torch.stack([snapshots[s] for s in shown]), row_labels=[f"step {s}" for s in shown],
                         title="live-weight samples during this run, seeds 0-3", scale=1.3)

# %% [markdown]
# ## 4. The long run, from the command line
#
# The same loop is the command `pegasus-course train`:
#
# ```bash
# pegasus-course train --dataset cifar10 --download --image-size 32 --profile gpu \
#     --batch-size 128 --max-minutes 60 --compile --out runs/cifar32
# # several GPUs:
# torchrun --nproc_per_node 4 -m pegasus_course.cli train --dataset cifar10 --out runs/cifar32
# # continue later, exactly where it stopped:
# pegasus-course train --dataset cifar10 --out runs/cifar32 --resume
# # STL-10 at 48x48, train and test combined, batch 64:
# pegasus-course train --dataset stl10 --download --image-size 48 --batch-size 64 --out runs/stl48
# ```
#
# Checkpoints are safetensors files written atomically (a killed run never leaves a half-written
# file) and hold the live weights, the EMA, Adam's moments, the loss history and the configuration.
# This notebook's run is in `runs/notebook-04/`: start Jupyter with `PEGASUS_MODEL=notebook-04` and
# notebooks 05-07 sample **your** model instead of the shipped one.

# %% tags=["nbval-ignore-output"]
ckpt = checkpoints.load_checkpoint(checkpoints.NOTEBOOK_RUN)
print(f"step {ckpt.step}; tensors: {sorted({k.split('.')[0] for k in ckpt.tensors})}")
print("model config:", ckpt.model_config)

# %% [markdown]
# ## 5. Live weights vs EMA weights
#
# The EMA with rate 0.999 averages roughly the last 1,000 steps. After a long run that smooths out
# the noise of single Adam steps; after a short one it still carries the random initial weights
# with weight $0.999^{\text{steps}}$ (printed for a few run lengths). Same seeds, same schedule, two sets of
# weights (the live row is the last preview above):

# %% tags=["nbval-ignore-output"]
live = snapshots[max(snapshots)]
ema = generate(state.ema, range(len(live)), preview_schedule, progress=False).cpu()
fig = plotting.show_rows(torch.stack([live, ema]), row_labels=["live", "EMA"],
                         title=f"after {state.step} steps: live weights vs EMA", scale=1.3)
decay = cfg.ema_decay
for n in sorted({state.step, 1_000, 3_000, shipped_ckpt.step}):
    print(f"after {n:6,} steps the EMA still gives the start weight {decay}^{n} = "
          f"{training_report.ema_start_weight(decay, n):.3g}")
print(f"the last 1,000 steps hold {training_report.ema_window_weight(decay, 1_000):.0%} of an old EMA's weight, "
      f"the last 3,000 {training_report.ema_window_weight(decay, 3_000):.0%}")

# %% [markdown]
# After a few hundred steps the EMA is still mostly the random start (the first line printed); the live
# weights of so short a run draw noise too, so the pair cannot be told apart yet. After thousands of steps the start's weight is negligible. Is the
# EMA then the better one? The shipped run kept both sets of weights at its last step, 14,275: the same 16
# seeds through each, and their colours against the training data's. To keep this to a minute or so on a
# laptop CPU, both are sampled with every seventh of the shipped model's 232 trained levels (34, with
# $T = 5$: 171 network evaluations instead of 1,161; only trained levels, notebook 03), so the samples
# are rougher than the full schedule's, alike for both.

# %% tags=["nbval-ignore-output"]
from pegasus_course import evaluation
from pegasus_course.generate import schedule_from_meta

shipped_live = checkpoints.load_score_model(checkpoints.LIVE_CHECKPOINT, use_ema=False, device=device)[0]  # float16 file
coarse_schedule = every_seventh(schedule_from_meta(shipped_ckpt.meta).sigmas())  # 34 of the 232 under cpu
ema_seeds = list(range(16))
coarse_evals = sampling.num_score_evaluations(coarse_schedule.num_scales, coarse_schedule.n_steps_each)
workflow.expect("EMA and live samples", len(ema_seeds), coarse_evals, workflow.measure_network(shipped, len(ema_seeds)),
                runs=2)
pair = {name: generate(weights, ema_seeds, coarse_schedule).cpu()
        for name, weights in (("EMA", shipped), ("live", shipped_live))}
halves = [pair[name][h * 8:(h + 1) * 8] for h in range(2) for name in ("EMA", "live")]
fig = plotting.show_rows(torch.stack(halves), row_labels=["EMA 0-7", "live 0-7", "EMA 8-15", "live 8-15"], scale=1.0,
                         title=f"the shipped run at step {shipped_ckpt.step:,}: L = {coarse_schedule.num_scales}, "
                               f"T = {coarse_schedule.n_steps_each}")
data_mean = torch.tensor(evaluation.colour_stats(train_set.images)["mean"], dtype=torch.float64)
shift = {name: x.double().mean(dim=(2, 3)) - data_mean for name, x in pair.items()}  # (16, 3) per-image shift
print(f"channel mean minus the data's, mean over {len(ema_seeds)} images +- 2 SE:")
print("channel          EMA                 live")
further = []
for c, channel in enumerate(("red", "green", "blue")):
    (e, de), (v, dv) = (training_report.mean_2se(shift[name][:, c]) for name in ("EMA", "live"))
    print(f"{channel:7s} {e:+.3f} +- {de:.3f}     {v:+.3f} +- {dv:.3f}")
    if abs(v) - dv > abs(e) + de:
        further.append(channel)
print("channels where the live samples' colour lies further from the data's than the EMA's, beyond both "
      f"intervals: {', '.join(further) or 'none'}")

# %% [markdown]
# Same seeds, nearly the same weights: the two rows of each pair share their layout. Any difference you
# see is in the colours. The table gives, per channel, how far the samples' mean colour lies from the
# training data's, with its interval over the 16 images; the last line names the channels where the live
# weights are further off than the EMA by more than both intervals. Where it names none, 16 samples do
# not show a colour shift here (notebook 07 measures the difference seed by seed, which is sharper).
#
# **What the papers say, and what is the course's guess.** The seed paper reports the symptom: "The
# model also experiences colour shift when trained for long periods of time" (its section 3). NCSNv2
# reports that without the EMA the samples' quality swings from checkpoint to checkpoint and samples
# sometimes shift in colour, and that the EMA (its technique 5) removes both; it says what fixes it, not
# why it happens. The course's **hypothesis** is this: the live weights are where Adam left them at the
# last step, and with a fixed learning rate every step moves each weight by up to about lr, a step that
# does not shrink to zero (section 3 measured it on its short run), so the live weights never settle; the EMA averages the last thousand or so steps, and the wandering
# with them. A global colour is a few numbers the whole image depends on, so a small wander shows there
# first (notebook 07 tests this further). Either way, the course samples with the EMA, as NCSNv2 does.
