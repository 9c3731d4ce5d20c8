# %% [markdown]
# # 04 · Training the score network on horses and birds
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/04_training.ipynb)
#
# **Learning objectives**
# 1. Write one training step of denoising score matching and check it against the package.
# 2. Run a short live training in the active profile and watch the loss and the samples.
# 3. Know how to run the long version on a GPU from the command line, and how to resume it.
# 4. See what the exponential moving average (EMA) of the weights changes.
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

from pegasus_course import checkpoints, data, exercises, losses, plotting, profiles, training
from pegasus_course.generate import Schedule, generate
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig, count_parameters

plotting.setup_plots()
g = training.seed_everything(0)
profile = profiles.get_profile()
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(profiles.describe(profile), "| device:", device)
if profile.num_threads:
    torch.set_num_threads(profile.num_threads)

# %% [markdown]
# ## 1. One training step, written out
#
# The paper trains with Adam (learning rate $10^{-4}$, standard betas), batches of 128 CIFAR-10
# images, random horizontal flips and an EMA of the weights with rate 0.999. One step:
#
# 1. draw one level $\sigma$ per image from the 232, and noise $z$;
# 2. compute the $\sigma^2$-weighted DSM loss (eq. 2) of the network on $x + \sigma z$;
# 3. backpropagate, take an Adam step;
# 4. update the EMA: $\bar\theta \leftarrow 0.999\,\bar\theta + 0.001\,\theta$.

# %% tags=["nbval-ignore-output"]
train_set = data.default_data().load("train", max_images=profile.max_train_images)
schedule = Schedule(profile.sigma_max, profile.sigma_min, profile.num_scales, profile.n_steps_each)
levels = schedule.sigmas()
config = ScoreUNetConfig.for_image_size(32, profile.base_channels, num_res_blocks=profile.num_res_blocks)
model = ScoreUNet(config).to(device)
print(f"{len(train_set)} images, L = {len(levels)} levels, {count_parameters(model):,} parameters")

x = (train_set.images[:8].float() / 255).to(device)
step_gen = torch.Generator(device).manual_seed(1)
sigma = levels.to(device)[torch.randint(0, len(levels), (8,), generator=step_gen, device=device)]  # step 1
z = torch.randn(x.shape, generator=step_gen, device=device)
residual = sigma.view(-1, 1, 1, 1) * model(x + sigma.view(-1, 1, 1, 1) * z, sigma) + z          # step 2
by_hand = 0.5 * residual.pow(2).flatten(1).sum(1).mean()
package = losses.dsm_loss(model, x, levels.to(device), generator=torch.Generator(device).manual_seed(1))
assert torch.allclose(by_hand, package), (by_hand, package)
print(f"DSM loss of the untrained network on 8 images: {package.item():.1f}")

# %% [markdown]
# ### Exercise: the EMA update
#
# Write $\bar\theta \leftarrow \text{decay}\cdot\bar\theta + (1 - \text{decay})\,\theta$ for one weight tensor.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_ema_update(ema, theta, decay):
    """The new moving average of a weight tensor, given the old average and the current weights."""
    raise NotImplementedError("Exercise: write the EMA update")

# %%
exercises.check_ema_update(my_ema_update);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_ema_update(ema, theta, decay):
    return decay * ema + (1 - decay) * theta

# %%
assert exercises.check_ema_update(my_ema_update).passed

# %% [markdown]
# An untrained network scores about $D/2 = 1536$ per image (it predicts nothing, so the
# residual is just $z$). `training.train` runs steps 1-4 in a loop, with bf16 mixed precision on
# CUDA, data order and noise derived from the seed (so a resumed run continues exactly), a
# progress bar, a NaN guard, and - under `torchrun` - several GPUs.
#
# ## 2. A short live run
#
# The active profile decides how long: seconds under `ci`, a few minutes under `cpu`, longer on a
# GPU. Every `sample_every` steps we draw 8 images from the EMA weights with the profile's schedule.

# %% tags=["nbval-ignore-output"]
cfg = training.TrainConfig(steps=profile.train_steps, batch_size=profile.batch_size, seed=0,
                           log_every=max(1, min(25, profile.train_steps // 10)))
snapshots = {}

def on_step(state):
    if state.step % profile.sample_every < cfg.log_every or state.step == cfg.steps:
        snapshots[state.step] = generate(state.ema, range(8), schedule, progress=False).cpu()

state = training.train(model, train_set.images, levels, cfg, on_step=on_step,
                       checkpoint_path=checkpoints.NOTEBOOK_RUN,
                       meta={"schedule": schedule.to_dict(), "profile": profile.name,
                             "data": {"source": data.default_data().source, "image_size": 32}})
print(f"{state.step} steps, {state.images_per_second:.0f} images/s; checkpoint: runs/notebook-04/")

# %%
fig = plotting.plot_curve(state.losses, title="DSM loss per step", smooth=min(20, len(state.losses)), logy=True)

# %% [markdown]
# The loss falls fast at first (the network learns the $1/\sigma$ scale and the average image) and
# slowly afterwards. Below, EMA samples at the preview steps, top row first: early ones are
# coloured noise; structure appears as training goes on. A few hundred CPU steps are far from the
# paper's 5,000 epochs: the sampling notebooks use the model trained on a GPU.

# %%
steps = sorted(snapshots)
fig = plotting.show_images(torch.cat([snapshots[s] for s in steps]), nrow=8,
                           title="EMA samples at steps " + ", ".join(map(str, steps)), scale=0.7)

# %% [markdown]
# ## 3. Live weights vs EMA weights
#
# The EMA averages the last ~1,000 steps of weights. It smooths out the noise of single Adam steps,
# which NCSNv2 found gives markedly better and more stable samples (technique 5). Same seeds, same
# schedule, two sets of weights:

# %%
live = generate(state.model, range(8), schedule, progress=False).cpu()
ema = generate(state.ema, range(8), schedule, progress=False).cpu()
fig = plotting.show_images(torch.cat([live, ema]), nrow=8, title="live weights (top) vs EMA (bottom)", scale=0.7)

# %% [markdown]
# After few steps the EMA still remembers the early weights, so it can look *worse* than the live
# weights; after thousands of steps it is better. The shipped model was sampled with its EMA.
#
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
# pegasus-course train --dataset stl10 --download --image-size 48 --out runs/stl48
# ```
#
# Checkpoints are safetensors files written atomically (a killed run never leaves a half-written
# file) and hold the live weights, the EMA, Adam's moments, the loss history and the configuration.

# %% tags=["nbval-ignore-output"]
ckpt = checkpoints.load_checkpoint(checkpoints.NOTEBOOK_RUN)
print(f"step {ckpt.step}; tensors: {sorted({k.split('.')[0] for k in ckpt.tensors})}")
print("model config:", ckpt.model_config)
