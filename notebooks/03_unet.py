# %% [markdown]
# # 03 · The score network: a U-Net with NCSNv2's parts
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/03_unet.ipynb)
#
# **Learning objectives**
# 1. See how the noise level enters the network: random Fourier features of $\log\sigma$.
# 2. See what InstanceNorm++ restores that instance normalisation removes (colour).
# 3. Understand linear attention and why ReZero makes a new block start as the identity.
# 4. Assemble the U-Net of the paper's section 1.1 and check its output scales as $1/\sigma$.
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
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from pegasus_course import data, exercises, plotting, profiles
from pegasus_course.nn import (FourierEmbedding, InstanceNormPlusPlus, LinearAttention, ResBlock, ScoreUNet,
                               ScoreUNetConfig, compare_attention_cost, count_parameters, parameter_table,
                               stage_shapes)

profile, g = profiles.start(seed=0)
batch = data.default_data().load("train", max_images=512, train=False).images[:8].float() / 255
print("a real batch:", tuple(batch.shape))

# %% [markdown]
# ## 1. Fourier embedding of the noise level
#
# One network serves all 232 levels, so it must be told $\sigma$. Following score-based SDE
# models, we take $\log\sigma$, multiply it by fixed random frequencies $W \sim \mathcal N(0, 16^2)$
# and keep $\sin(2\pi W\log\sigma)$ and $\cos(2\pi W\log\sigma)$; a small MLP turns these into one
# embedding vector per image. Look for: nearby levels get similar features, far ones different.

# %%
emb = FourierEmbedding(emb_dim=256, fourier_dim=64)
levels = torch.logspace(-2, torch.log10(torch.tensor(50.0)), 232)
feats = emb.features(levels)  # (232, 64)
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.imshow(feats.T.numpy(), aspect="auto", cmap="RdBu")
ax.set(xlabel="level (small sigma -> large sigma)", ylabel="feature", title="fixed Fourier features of log sigma");

# %% [markdown]
# ## 2. InstanceNorm++
#
# Instance normalisation subtracts each channel's spatial mean $\mu_c$ and divides by its spread.
# For images that throws away the average colour: two pictures that differ only by a colour cast
# look identical afterwards. InstanceNorm++ adds back $\alpha_c(\mu_c - m)/s$, where $m$ and $s^2$
# are the mean and variance of the $\mu_c$ over channels, then scales by $\gamma_c$ and shifts by $\beta_c$.

# %%
tinted = (batch[:1] * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1))  # an orange-tinted copy
plain_in = F.instance_norm(torch.cat([batch[:1], tinted]))
norm_pp = InstanceNormPlusPlus(3)
with torch.no_grad():
    out_pp = norm_pp(torch.cat([batch[:1], tinted]))
print("instance norm, difference between original and tinted:", f"{(plain_in[0] - plain_in[1]).abs().max():.4f}")
print("InstanceNorm++, difference between original and tinted:", f"{(out_pp[0] - out_pp[1]).abs().max():.4f}")

# %% [markdown]
# ### Exercise: InstanceNorm++
#
# Write $\gamma_c\big((x - \mu_c)/\sigma_c + \alpha_c(\mu_c - m)/s\big) + \beta_c$, where $\mu_c, \sigma_c^2$ are channel $c$'s
# spatial mean and variance and $m, s^2$ the mean and variance of the $\mu_c$ over channels.
#
# Complete the function below (it raises `NotImplementedError` until you do), then run the checker
# cell: it compares your function with the package's on random inputs and says what is wrong; run it
# again on a wrong answer for a more precise hint.

# %% tags=["exercise"]
def my_instance_norm_pp(x, gamma, alpha, beta, eps=1e-5):
    """InstanceNorm++ of x (B, C, H, W) with per-channel gamma, alpha, beta (C,); population variances."""
    raise NotImplementedError("Exercise: write InstanceNorm++")

# %%
exercises.check_instance_norm_pp(my_instance_norm_pp);

# %% [markdown]
# The solution is in the collapsed cell below (click the bar to expand it); the cell after it runs
# the same checker on it.

# %% jupyter={"source_hidden": true} tags=["solution"]
def my_instance_norm_pp(x, gamma, alpha, beta, eps=1e-5):
    mu = x.mean((2, 3), keepdim=True)                                 # (B, C, 1, 1) channel means
    h = (x - mu) / torch.sqrt(x.var((2, 3), keepdim=True, unbiased=False) + eps)
    m, s2 = mu.mean(1, keepdim=True), mu.var(1, keepdim=True, unbiased=False)
    h = h + alpha.view(1, -1, 1, 1) * (mu - m) / torch.sqrt(s2 + eps)  # give the colour back
    return gamma.view(1, -1, 1, 1) * h + beta.view(1, -1, 1, 1)

# %%
assert exercises.check_instance_norm_pp(my_instance_norm_pp).passed

# %% [markdown]
# ## 3. ResNet blocks with ELU, and where $\sigma$ enters
#
# Each `ResBlock`: InstanceNorm++ → ELU → 3×3 conv, **plus the noise embedding**, InstanceNorm++ →
# ELU → 3×3 conv, plus a skip (1×1 conv when the channel count changes).

# %%
# NBVAL_CHECK_OUTPUT
block = ResBlock(3, 16, emb_dim=256)
h = block(batch, emb(torch.full((8,), 1.0)))
print("ResBlock:", tuple(batch.shape), "->", tuple(h.shape), f"with {count_parameters(block):,} parameters")

# %% [markdown]
# ## 4. Linear attention with ReZero
#
# Softmax attention compares every position with every other: $N^2$ scores for $N = H W$ positions.
# Linear attention softmaxes the queries over their features and the keys over the positions,
# sums keys times values into a small $d \times d$ *context*, and reads it with each query:
# cost $O(N d^2)$. A learned scalar that starts at 0 multiplies the branch (ReZero), so at
# initialisation the block passes its input through unchanged.

# %%
att = LinearAttention(16, heads=4, dim_head=8)
assert torch.equal(att(h), h), "ReZero: the block is the identity at initialisation"
print("ReZero scalar at init:", att.rezero.item())

# %% [markdown]
# The cost difference grows with the image: measured here at full resolution for 32, 48, 64 and 96
# pixel inputs (64 channels, batch of 4). Look for: linear grows like $N$, softmax like $N^2$.

# %% tags=["nbval-ignore-output"]
rows = compare_attention_cost((32, 48, 64, 96), channels=64, batch=2, repeats=1)
print("side  positions  linear ms  softmax ms")
for size, n, lin, quad in rows:
    print(f"{size:4d} {n:10d} {lin:10.1f} {quad:11.1f}")
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog([r[1] for r in rows], [r[2] for r in rows], "o-", label="linear attention")
ax.loglog([r[1] for r in rows], [r[3] for r in rows], "s-", label="softmax attention")
ax.set(xlabel="positions N = H W", ylabel="ms per call", title="attention cost")
ax.legend();

# %% [markdown]
# ## 5. The whole U-Net
#
# Three down levels (ResBlocks, then 2×2 average pooling, then linear attention), a middle
# (ResBlock, attention, ResBlock), three up levels (nearest-neighbour upsampling, ResBlocks over the
# concatenated skip connection, attention), and the output **divided by $\sigma$** (NCSNv2 technique 3),
# because the true score of noise of scale $\sigma$ has norm about $\sqrt D/\sigma$.
# Here is the configuration the course trains on a GPU (base 64 channels, 2 blocks per level):

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
config = ScoreUNetConfig.for_image_size(32, base_channels=64, num_res_blocks=2)
net = ScoreUNet(config)
for part, n in parameter_table(net).items():
    print(f"{part:10s} {n:>10,}")
print(f"{'total':10s} {count_parameters(net):>10,}")

# %% [markdown]
# The shapes after each stage, for the real batch of 8 images: the spatial size halves on the way
# down (32, 16, 8, 4), the channels grow, and the way up mirrors it back to a score of the input's shape.

# %%
# NBVAL_CHECK_OUTPUT
for stage, shape in stage_shapes(net, batch, torch.full((8,), 1.0)):
    print(f"{stage:15s} {shape}")

# %% [markdown]
# At initialisation the network's raw output has roughly the same size for every level, so the
# division makes the score's norm fall like $1/\sigma$, as the true score's does. Look for a line
# of slope $-1$ on the log-log plot.

# %%
small = ScoreUNet(ScoreUNetConfig.for_image_size(32, profile.base_channels, num_res_blocks=profile.num_res_blocks))
levels = torch.logspace(-2, torch.log10(torch.tensor(50.0)), 12)
with torch.no_grad():
    norms = [small(batch, torch.full((8,), float(s))).flatten(1).norm(dim=1).mean() for s in levels]
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog(levels, norms, "o-", label="network at initialisation")
ax.loglog(levels, [float(norms[0]) * float(levels[0]) / float(s) for s in levels], "--", label="1 / sigma")
ax.set(xlabel="sigma", ylabel="mean output norm")
ax.legend();

# %% [markdown]
# ## Summary
#
# The network takes a batch and one $\sigma$ per image and returns a score of the batch's shape.
# Notebook **04** trains it with denoising score matching on horses and birds.
