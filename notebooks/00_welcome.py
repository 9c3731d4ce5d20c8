# %% [markdown]
# # 00 · Welcome: winged horses from score-based models
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/00_welcome.ipynb)
#
# <!-- time:start -->
# *Run All takes 2 s under the `cpu` profile on a 2-core CPU (measured 2026-12-03; 2 s on a re-run, which reuses the sample cache; peak memory 0.7 GB) and seconds under `gpu` on one H100 (estimate). Notebook 00 lists every notebook's times.*
# <!-- time:end -->
#
# This course builds a **noise-conditional score network** (NCSN/NCSNv2) from its parts and uses
# it to draw *pegasi*: pictures half-way between a generated horse and a generated bird.
#
# **By the end of this notebook you will**
# 1. know what each notebook of the course teaches and in which order,
# 2. have checked your environment (PyTorch, GPU or CPU, the active *profile*),
# 3. know where the images come from, and have looked at real horses and birds.
#
# ## The course map
#
# | # | notebook | what you learn |
# |---|---|---|
# | 00 | welcome | this page: the environment and the data |
# | 01 | score matching | scores, Langevin dynamics, denoising vs sliced score matching on 2-D toys |
# | 02 | noise scales | why many noise levels; NCSNv2's rules for $\sigma_1$, $L$ and the step size $\epsilon$ |
# | 03 | the U-Net | Fourier noise embedding, InstanceNorm++, ELU ResNet blocks, linear attention with ReZero |
# | 04 | training | a training step you write and train with; loss curves; EMA, checkpoints |
# | 05 | sampling | annealed Langevin dynamics you write; Tweedie estimates, the denoising step, cost vs quality |
# | 06 | pegasus | eq. 4 you write on two noise tapes; why not blend the images; the interactive explorer |
# | 07 | beyond the paper | a guaranteed horse and bird at the ends, measured quality, colour shift |
# | 08 | your own images | the noise schedule computed from your folder; a doctor for a model that draws noise |
#
# What is a pegasus sample? A score model turns noise into an image by many small random steps.
# Record every random draw of two samples, a horse and a bird; mix the two recordings with
# weights $\cos\theta$ and $\sin\theta$ and replay: the result is a new sample "between" them.
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

# %% [markdown]
# ## Setup
#
# Everything the notebooks compute lives in the companion package `pegasus_course`; a notebook
# imports it, explains and plots. The **profile** chooses sizes: `gpu` is the paper's setting,
# `cpu` fits a laptop (a few minutes per notebook), `ci` runs the whole course in minutes for the tests
# (sizes so small that its samples stay noise). It is read from the environment
# variable `PEGASUS_PROFILE` (default: `gpu` when a CUDA GPU is present, else `cpu`).

# %% tags=["nbval-ignore-output"]
import torch

from pegasus_course import data, plotting, workflow

profile, g = workflow.start(seed=0)  # the profile, the device and its precision, seeded generators
print(f"torch {torch.__version__}")

# %% [markdown]
# To change the profile, set the variable before starting Jupyter, e.g.
# `PEGASUS_PROFILE=cpu jupyter lab`, or in the first cell with
# `os.environ["PEGASUS_PROFILE"] = "cpu"` before importing the package. Profiles change
# sizes (batch, steps, model width, number of noise levels), never the code that runs.
#
# ## Your device and how long things take
#
# The first cell of every notebook prints the device the course will use (a CUDA GPU, then Apple's
# GPU, `mps`, then the CPU; set `PEGASUS_DEVICE=cpu|cuda|mps` to choose) and the precision it trains in:
# bf16 on recent GPUs (A100, H100, RTX 30xx and later), fp16 with a gradient scaler on Colab's free T4
# and other older GPUs, float32 on a CPU or a Mac. Sampling is float32, except on a CPU with native bf16,
# where the package's samplers run in bf16 autocast (about 1.4x faster, samples measured alike float32's;
# `PEGASUS_CPU_BF16=0` keeps float32): the first cell says which. Notebooks 05-07 time a
# few passes of the network on *your* machine and print what their long cells will take before you
# start them. As a guide (the README's table "How long it takes" says how each figure was obtained):
#
# | | 2-core CPU (measured) | Colab T4 (estimate) | Apple M1 (estimate) |
# |---|---|---|---|
# | 64 samples, full schedule (1,161 network evaluations each) | about 26 min in float32, 11-14 min in bf16 | about 1.5 min | about 2.5 min |
# | one pegasus row of 9 images, full schedule | about 3 min in float32, about 1.5 min in bf16 | about 20 s | about 30 s |
#
# The T4 and M1 figures are estimates from the network's operation count and an assumed share of each
# chip's peak speed, not measurements.
#
# **Each notebook, start to end** (Run All, not counting the kernel's start):
#
# <!-- notebook-times:start -->
# | notebook | `cpu` profile, 2-core x86-64 CPU (**measured** 2026-12-03, torch 2.14.1): Run All, cold sample cache | re-run | peak memory | `gpu` profile, one H100 (**estimate**) |
# |---|---|---|---|---|
# | 00 welcome | 2 s | 2 s | 0.7 GB | seconds |
# | 01 score matching | 60 s | 24 s | 1.2 GB | under a minute |
# | 02 noise scales | 6 s | 6 s | 1.1 GB | seconds |
# | 03 the U-Net | 6 s | 6 s | 1.0 GB | seconds |
# | 04 training | 3 min 05 s | 1 min 48 s | 1.6 GB | about 6 min (3,000 steps of batch 128) |
# | 05 sampling | 3 min 44 s | 2 min 11 s | 1.1 GB | about 2 min |
# | 06 pegasus | 3 min 18 s | 56 s | 1.3 GB | about 2 min |
# | 07 beyond the paper | 2 min 51 s | 36 s | 1.4 GB | about 3 min |
# | 08 your own images | 15 s | 15 s | 1.2 GB | under a minute |
# <!-- notebook-times:end -->
#
# The CPU columns are `tools/run_notebooks.sh`'s own measurement of the run whose outputs you see
# (`notebooks/times.json`, from which this table, the README's and each notebook's first cell are written):
# Run All from a fresh kernel and an empty sample cache, then again with the images the first run cached,
# and the peak memory of the kernel. The GPU column is not measured: it scales the long cells by
# the H100 figures in `benchmarks/RESULTS.md` (about 20 ms for one network evaluation of up to 256 images,
# about 1,500 training images a second) and takes the short ones as on the CPU. Every cell that runs
# longer than about 20 seconds shows a progress bar; in notebooks 04-07, whose long cells run the network,
# it first prints its own estimate for your machine too.

# %% [markdown]
# ## Where the images come from
#
# The course trains on the **horse** and **bird** classes of CIFAR-10 (32×32) and STL-10
# (resized to 48×48 or 64×64). One function, `data.load_dataset`, reads three sources:
#
# * `"cifar10"` and `"stl10"` through torchvision; with `download=True` they are fetched from
#   the internet the first time;
# * `"folder"`: any `<root>/<split>/<class>/*.jpg|png` tree, for offline copies or your own photos.
#
# The notebooks read the source from `PEGASUS_DATA_SOURCE` (default `cifar10`) and the root from
# `PEGASUS_DATA_ROOT` (default: a cache folder in your home directory). One item of the data set,
# `train_set[i]`, is an image as a float tensor in $[0, 1]$ of shape $(3, H, W)$ and its label: 0 for
# horse, 1 for bird. The whole set is also kept as one tensor of bytes, `train_set.images`, of shape
# $(N, 3, H, W)$ with values 0-255; the notebooks divide it by 255 when they take many images at once.

# %%
spec = data.default_data()
train_set = spec.load("train", classes=("horse", "bird"))
print(train_set)

# %%
# NBVAL_CHECK_OUTPUT
labels = train_set.labels
print(f"{len(train_set)} training images: {int((labels == 0).sum())} horses, {int((labels == 1).sum())} birds")
x, y = train_set[0]
print("one image:", tuple(x.shape), x.dtype, f"in [{x.min():.0f}, {x.max():.0f}]", "label", y)
print("all images:", tuple(train_set.images.shape), train_set.images.dtype, "(values 0-255)")

# %% [markdown]
# ## Real horses and birds
#
# Look at how small these pictures are: 32×32 pixels. Our generated winged horses will be that
# small too. Notice the variety: whole animals and heads, grass and sky, many colours.

# %%
horses = train_set.images[labels == 0][:16].float() / 255
birds = train_set.images[labels == 1][:16].float() / 255
fig = plotting.show_images(torch.cat([horses, birds]), nrow=16, title="16 horses (top) and 16 birds (bottom)")

# %% [markdown]
# ## What next
#
# Notebook **01** starts from the beginning: what a *score* is, and how Langevin dynamics turns
# a score into samples. If you are on a CPU, every notebook still runs: the `cpu` profile keeps
# each notebook to a few minutes, and the course ships a model trained on a GPU, which notebooks
# 03-08 load (03 compares with it, 04 reads its training run, 05-07 sample it, 08 examines it).
