# %% [markdown]
# # 03 · The score network: a U-Net with NCSNv2's parts
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/03_unet.ipynb)
#
# <!-- time:start -->
# *Run All takes 6 s under the `cpu` profile on a 2-core CPU (measured 2026-12-03; 6 s on a re-run, which reuses the sample cache; peak memory 1.0 GB) and seconds under `gpu` on one H100 (estimate). Notebook 00 lists every notebook's times.*
# <!-- time:end -->
#
# **Learning objectives**
# 1. State the network's contract - what goes in, what comes out, what the output should be close
#    to - and check it on the shipped model.
# 2. See how the noise level enters the network: random Fourier features of $\log\sigma$, and what
#    training made of them.
# 3. See what InstanceNorm++ restores that instance normalisation removes (colour).
# 4. Read the forward passes that carry the key ideas; understand linear attention and why ReZero
#    makes a new block start as the identity.
# 5. Assemble the U-Net of the paper's section 1.1 and check that its scores scale like $\sqrt D/\sigma$.
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
import inspect

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from pegasus_course import checkpoints, data, exercises, losses, plotting, sigmas, workflow
from pegasus_course.nn import (FourierEmbedding, InstanceNormPlusPlus, LinearAttention, ResBlock, ScoreUNet,
                               ScoreUNetConfig, compare_attention_cost, count_parameters, level_similarity,
                               parameter_table, stage_shapes)

profile, g = workflow.start(seed=0)
batch = data.default_data().load("train", max_images=512, train=False).images[:8].float() / 255
print("a real batch:", tuple(batch.shape))
shipped, _ = checkpoints.load_score_model(checkpoints.DEFAULT_CHECKPOINT)  # the trained network, for comparisons
schedule = sigmas.geometric_sigmas(50.0, 0.01, 232)

# %% [markdown]
# ## 0. The contract
#
# Before the parts, what the whole must do. `ScoreUNet(x_tilde, sigma)`:
#
# * takes a batch of noisy images $\tilde x = x + \sigma z$, shape (B, 3, H, W), and **one $\sigma$ per image**,
#   shape (B,) - every image of a training batch has its own level;
# * returns a score of the **same shape** as $\tilde x$;
# * trained by DSM, its output approximates $\mathbb E[-z/\sigma \mid \tilde x]$ (notebook 01): it points back
#   to the clean image, with a length of at most about $\|z\|/\sigma \approx \sqrt D/\sigma$ (section 5 says why
#   it is shorter at small $\sigma$).
#
# The shipped model, on the real batch, at three of its 232 trained levels, the ones nearest to 10, 1
# and 0.1 (section 1 shows why it is asked only at those): cosine similarity 1 would be a perfect
# direction, and the norms should be close at large $\sigma$:

# %% tags=["nbval-ignore-output"]
z = torch.randn(batch.shape, generator=g)
trained_levels = [float(schedule[(schedule / t).log().abs().argmin()]) for t in (10.0, 1.0, 0.1)]
for s in trained_levels:
    sigma = torch.full((8,), s)
    with torch.no_grad():
        score = shipped(batch + s * z, sigma)
    cos = F.cosine_similarity(score.flatten(1), (-z / s).flatten(1)).mean()
    print(f"sigma = {s:6.4g}: output {tuple(score.shape)}; cos(score, -z/sigma) = {cos:.3f}; "
          f"|score| = {score.flatten(1).norm(dim=1).mean():8.1f} vs |z|/sigma = {(z / s).flatten(1).norm(dim=1).mean():8.1f}")

# %% [markdown]
# At large $\sigma$ the score is almost exactly $-z/\sigma$ (the image is a small part of $\tilde x$). At
# small $\sigma$ the direction is less certain - the network cannot tell all of the noise from the
# image's fine texture - which is also where notebook 04 finds its loss highest. The rest of this
# notebook builds the network that meets this contract, part by part.
#
# ## 1. Fourier embedding of the noise level
#
# One network serves all 232 levels, so it must be told $\sigma$. Following score-based SDE
# models, we take $\log\sigma$, multiply it by fixed random frequencies $W \sim \mathcal N(0, 16^2)$
# and keep $\sin(2\pi W\log\sigma)$ and $\cos(2\pi W\log\sigma)$; a small MLP turns these into one
# embedding vector per image.

# %%
emb = FourierEmbedding(emb_dim=256, fourier_dim=64)
feats = emb.features(schedule)  # (232, 64)
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.imshow(feats.T.numpy(), aspect="auto", cmap="RdBu")
ax.set(xlabel="level (large sigma -> small sigma)", ylabel="feature", title="fixed Fourier features of log sigma");

# %% [markdown]
# Are neighbouring levels' features similar? Below, the cosine similarity of every pair of the 232
# levels: for the shipped model's fixed features (left), for the embedding its trained MLP makes of
# them (right), and, as a control, for the same features through an MLP of the same shape that was
# never trained (middle): is the smoothness the MLP's shape, or what training taught it? The diagonal (a
# level against itself, always 1) is greyed out; the band beside it, each level against the next, is
# drawn below the matrices as a curve.

# %% tags=["nbval-ignore-output"]
import copy

untrained_embed = copy.deepcopy(shipped.embed)  # the same fixed frequencies...
torch.manual_seed(0)
for layer in untrained_embed.mlp:
    if hasattr(layer, "reset_parameters"):
        layer.reset_parameters()  # ...through a freshly initialised MLP
matrices = {"raw Fourier features": level_similarity(shipped.embed, schedule, after_mlp=False),
            "after an untrained MLP": level_similarity(untrained_embed, schedule),
            "after the trained MLP": level_similarity(shipped.embed, schedule)}
fig = plotting.level_similarity_figure(matrices, schedule)
for title, m in matrices.items():
    print(f"{title:22s}: adjacent levels {torch.diagonal(m, 1).mean():.3f}, sigma = 50 vs 0.01 {m[0, -1]:.3f}")
assert torch.diagonal(matrices["after the trained MLP"], 1).mean() > 2 * torch.diagonal(matrices["after an untrained MLP"], 1).mean()

# %% [markdown]
# With frequencies of scale 16, adjacent levels (0.037 apart in $\log\sigma$) differ by several radians in
# most features: the raw features are nearly orthogonal for *all* pairs, a random code for each level
# rather than a smooth one. An untrained MLP keeps it that way: adjacent levels stay nearly as
# unrelated as in the raw features (middle). Only the trained MLP makes neighbouring levels similar (right;
# the adjacent-level similarities are printed above). The two ends stay fairly different, though less
# so than in the raw features, and most of the larger levels are about as similar to distant levels of
# that block as to their neighbours (the dark block, and the curve below it): the embedding changes mainly
# over the smallest levels, where the images differ most from level to level. The network
# therefore learned the smoothness it needs; a smaller scale would give smooth features from the start. The
# course keeps the scale of the score-SDE code it follows (changing it would mean retraining the
# shipped model), and shows what it does.
#
# **Between the levels.** Training draws $\sigma$ from the 232 levels only. With features this unrelated
# from one level to the next, a $\sigma$ *between* two levels gets a code the network never saw in
# training. The DSM loss of the shipped model on the real batch, at six values of $\sigma$ from one trained
# level to the next (the same $z$ throughout):

# %% tags=["nbval-ignore-output"]
k_near = int((schedule - 1.0).abs().argmin())  # the trained level nearest to sigma = 1, and the next one
between = torch.exp(torch.linspace(schedule[k_near].log().item(), schedule[k_near + 1].log().item(), 6))
between_loss = []
with torch.no_grad():
    for s in between.tolist():
        between_loss.append(float(losses.dsm_loss_given(shipped, batch, torch.full((8,), s), z)))
print("sigma:", "  ".join(f"{s:.4f}" for s in between.tolist()))
print("loss: ", "  ".join(f"{v:6.1f}" for v in between_loss), "  (the first and last are trained levels)")
assert max(between_loss[1:-1]) > 2 * max(between_loss[0], between_loss[-1])

# %% [markdown]
# At the two trained levels the loss is about the same. Between them it rises everywhere, up to several-fold
# next to the upper level and much less nearer the lower one (the printed row). The
# network is only trustworthy at its 232 levels, so the course's samplers ask it there and nowhere
# else (notebook 05's coarse schedule takes every eighth trained level). Drawing $\sigma$ from a
# continuous range in training, as score-SDE models do, or a smaller Fourier scale would remove the
# problem.

# %% [markdown]
# ## 2. InstanceNorm++
#
# Instance normalisation subtracts each channel's spatial mean $\mu_c$ and divides by its spread.
# For images that throws away the average colour: two pictures that differ only by a colour cast
# look identical afterwards. InstanceNorm++ adds back $\alpha_c(\mu_c - m)/s$, where $m$ and $s^2$
# are the mean and variance of the $\mu_c$ over channels, then scales by $\gamma_c$ and shifts by $\beta_c$.
# Write it first; the demonstration after the exercise runs your function.
#
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
# Stuck? The cell below loads the reference solution without showing it
# (`exercises.show_solution("instance_norm_pp")` prints it). The demonstration that follows runs **your**
# `my_instance_norm_pp` once it passes its check, the reference until then, and says which.

# %% tags=["solution"]
solution_instance_norm_pp = exercises.solution("instance_norm_pp")  # loaded, not shown

# %% [markdown]
# **What InstanceNorm++ keeps.** A real image and an orange-tinted copy, through plain instance
# normalisation and through your InstanceNorm++ at a new layer's parameters ($\gamma = 1$, $\alpha = 1$,
# $\beta = 0$), checked against the package's `InstanceNormPlusPlus`:

# %%
instance_norm_pp = exercises.use(my_instance_norm_pp, exercises.check_instance_norm_pp, solution_instance_norm_pp)
tinted = (batch[:1] * torch.tensor([1.0, 0.6, 0.3]).view(1, 3, 1, 1))  # an orange-tinted copy
pair = torch.cat([batch[:1], tinted])
plain_in = F.instance_norm(pair)
out_pp = instance_norm_pp(pair, torch.ones(3), torch.ones(3), torch.zeros(3))
with torch.no_grad():
    assert torch.allclose(out_pp, InstanceNormPlusPlus(3)(pair), atol=1e-5)
print("instance norm, difference between original and tinted:", f"{(plain_in[0] - plain_in[1]).abs().max():.4f}")
print("InstanceNorm++, difference between original and tinted:", f"{(out_pp[0] - out_pp[1]).abs().max():.4f}")
show = lambda h: (0.5 + 0.2 * h).clamp(0, 1)  # noqa: E731  normalised values (about -2.5..2.5) as pixels
fig = plotting.show_rows(torch.stack([pair, show(plain_in), show(out_pp)]),
                         row_labels=["input", "instance norm", "InstanceNorm++"], scale=1.7,
                         title="original (left) and tinted (right) copy")

# %% [markdown]
# Instance normalisation maps the original and the tinted copy to the same picture: the colour
# cast, which lives in the channel means, is gone. InstanceNorm++ (here at its initial
# $\alpha = 1$) keeps the difference between the channel means, so the tinted copy stays orange. For
# a score network that matters: the score must push a sample's colours, and it can only do so if it
# sees them.

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
# The block's forward pass, from the package: the embedding is projected to one value per channel
# and **added** to the feature map after the first convolution - that is the only place where
# $\sigma$ enters the convolutional path.

# %%
print(inspect.getsource(ResBlock.forward))

# %% [markdown]
# ## 4. Linear attention with ReZero
#
# Softmax attention compares every position with every other: $N^2$ scores for $N = H W$ positions.
# Linear attention softmaxes the queries over their features and the keys over the positions,
# sums keys times values into a small $d \times d$ *context*, and reads it with each query:
# cost $O(N d^2)$. A learned scalar that starts at 0 multiplies the branch (ReZero), so at
# initialisation the block passes its input through unchanged.
#
# **Why ReZero.** A freshly initialised attention branch adds a random mixture of every position to
# every position: at full strength it would scramble the feature maps of a network that must first
# learn the plain $1/\sigma$-scaled, image-shaped score. With ReZero the network starts as a purely
# convolutional U-Net, and each attention branch is turned up only as far as training finds it useful;
# the paper adds it "to speed up model convergence". The shipped model's scalars, after training:

# %%
att = LinearAttention(16, heads=4, dim_head=8)
assert torch.equal(att(h), h), "ReZero: the block is the identity at initialisation"
print("ReZero scalar at init:", att.rezero.item())
trained = {name: round(m.rezero.item(), 2) for name, m in shipped.named_modules() if isinstance(m, LinearAttention)}
print("the shipped model's ReZero scalars:", trained)

# %% [markdown]
# The attention itself, from the package: note the two softmaxes (queries over their features, keys
# over the positions) and the $d \times d$ context `k @ v^T`, which is where the $N^2$ cost disappears:

# %%
print(inspect.getsource(LinearAttention.attend))
print(inspect.getsource(LinearAttention.forward))

# %% [markdown]
# The cost difference grows with the image: measured here at full resolution for 16, 24, 32 and 48
# pixel inputs (64 channels, batch of 2). Look for: linear grows roughly like $N$, softmax roughly like $N^2$
# (one timing each, so expect some noise). Memory grows the same way: softmax holds an $N \times N$ matrix
# per head and image, 4 bytes a number, so at 96 pixels ($N$ = 9,216) one such matrix is 340 MB, and a
# batch of them no longer fits a Binder machine's 2 GB.

# %% tags=["nbval-ignore-output"]
rows = compare_attention_cost((16, 24, 32, 48), channels=64, batch=2, repeats=1)
print("side  positions  linear ms  softmax ms")
for size, n, lin, quad in rows:
    print(f"{size:4d} {n:10d} {lin:10.1f} {quad:11.1f}")
fig, ax = plt.subplots(figsize=(6.5, 3.5))
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
#
# **Why this shape.** A score is one value per pixel, so the network must return an image-shaped
# output, and what it must know changes with $\sigma$: at large $\sigma$ the score is about the layout of the
# whole picture, at small $\sigma$ about the texture at each pixel. The way down gives both: each 2×2
# average pooling halves the resolution, so the same 3×3 convolutions see a neighbourhood twice as wide
# (at the 4×4 middle, the whole image). Pooling by the *average* has no weights and treats noise evenly,
# the mean of four pixels, where a maximum would pick out noise peaks. The way up brings the result back
# to full size, and the **skip connections** hand each up level the features of the same resolution
# from the way down, so the fine detail does not have to squeeze through the 4×4 middle (they also give
# the gradients a short path). **ELU** is smooth and keeps negative values, where ReLU has a kink and a
# flat zero half; NCSN chose it with InstanceNorm++, and the paper keeps both rather than DDPM's
# GroupNorm and Swish because they trained faster for similar samples.
#
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
# The forward pass that does all this (after its input checks): the embedding is computed once and
# given to every ResBlock; the skips are saved on the way down and concatenated on the way up; the
# last line is technique 3.

# %%
source = inspect.getsource(ScoreUNet.forward)
print(source[source.index("        emb = self.embed(sigma)"):])

# %% [markdown]
# The noise $z/\sigma$ has norm about $\sqrt D/\sigma$. At initialisation the network's raw output has roughly
# the same size for every level, so the division already makes its norm fall like $1/\sigma$ - the right
# slope, at the wrong height. How long should a trained score be? The best network outputs
# $s^* = \mathbb E[-z/\sigma \mid \tilde x]$ (notebook 01), and an average is never longer than what it averages:
# $\mathbb E\|s^*\|^2 \le \mathbb E\|z\|^2/\sigma^2 = D/\sigma^2$, with equality only where the noise can be told
# apart from the image completely. At large $\sigma$ it can (the image is a small part of $\tilde x$); at
# small $\sigma$ part of the noise looks like the image's own texture, and the best score is shorter. The
# gap is twice the DSM loss of the best network: $\mathbb E\|\sigma s^* + z\|^2 = D - \sigma^2\,\mathbb E\|s^*\|^2$. So for
# the best network the squared ratio would be the share of the noise explained, which notebook 04 measures
# level by level on test images; for a real network, and with the ratio of mean norms taken below, the two
# agree only roughly. The shipped model on the noisy real images, as the ratio $|s|\,\sigma/\sqrt D$ (1 is the
# length of $-z/\sigma$; on a log-log plot of $|s|$ itself the curves would lie on top of each other):

# %% tags=["nbval-ignore-output"]
small = ScoreUNet(ScoreUNetConfig.for_image_size(32, profile.base_channels, num_res_blocks=profile.num_res_blocks))
probe = schedule[torch.linspace(0, 231, 12).round().long()]
D = batch[0].numel()
with torch.no_grad():
    norm_init = [small(batch + float(s) * z, torch.full((8,), float(s))).flatten(1).norm(dim=1).mean() for s in probe]
    norm_shipped = [shipped(batch + float(s) * z, torch.full((8,), float(s))).flatten(1).norm(dim=1).mean() for s in probe]
ratio = torch.tensor([float(n) * float(s) / D**0.5 for n, s in zip(norm_shipped, probe)])
ratio_init = [float(n) * float(s) / D**0.5 for n, s in zip(norm_init, probe)]
fig = plotting.score_length_ratio(probe, {"network at initialisation": ratio_init, "shipped model": ratio},
                                  annotate="shipped model")
print(f"shipped |score| / (sqrt(D)/sigma): {ratio[0]:.2f} at sigma = {probe[0]:.3g}, {ratio[-1]:.2f} at sigma = "
      f"{probe[-1]:.3g}; from {ratio.min():.2f} to {ratio.max():.2f} over the schedule; at initialisation from "
      f"{min(ratio_init):.2f} to {max(ratio_init):.2f}")
assert ratio.max() < 1.05 and ratio[0] > 0.95 and ratio[-1] < ratio[0]

# %% [markdown]
# On $\sqrt D/\sigma$ at the largest levels, below it at the smallest (the figure says by how much at
# $\sigma = 0.01$), as the bound says: a shorter score at small $\sigma$ is what the best possible network would
# give too, since part of the noise cannot be told from the image. The untrained network's ratio changes
# little over the schedule (its range is printed) while $1/\sigma$ changes 5,000-fold: the division by $\sigma$
# gives the score its slope from the start, and training sets its height.

# %% [markdown]
# ## Summary
#
# The network takes a batch and one $\sigma$ per image and returns a score of the batch's shape, close
# to $-z/\sigma$ in direction once trained, about $\sqrt D/\sigma$ long at large $\sigma$ and shorter at small $\sigma$,
# where part of the noise cannot be told from the image. $\sigma$ enters twice: through the
# embedding added in every ResBlock, and through the final division (technique 3). InstanceNorm++
# keeps colour, linear attention keeps the cost linear in the number of pixels, ReZero lets the
# attention blocks start as the identity, and the U-Net's pooling and skips give it both the whole
# picture and the pixel-level detail. Notebook **04** trains it with denoising score matching on
# horses and birds.
