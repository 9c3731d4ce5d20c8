# %% [markdown]
# # 08 · Your own images: a schedule computed from them, and a doctor for the model
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/pegasus-course/pegasus-course/blob/main/notebooks/08_your_own_images.ipynb)
#
# <!-- time:start -->
# *Run All takes 15 s under the `cpu` profile on a 2-core CPU (measured 2026-12-03; 15 s on a re-run, which reuses the sample cache; peak memory 1.2 GB) and under a minute under `gpu` on one H100 (estimate). Notebook 00 lists every notebook's times.*
# <!-- time:end -->
#
# Notebook 02 computed NCSNv2's noise schedule from the horse and bird images, and notebooks 03 and 04
# measured the shipped model level by level. This notebook does both for **a folder you choose**: the
# course's images by default, your own pictures once you point it at them. It ends with the tool to reach
# for when a model draws noise or mush.
#
# **Learning objectives**
# 1. Compute $\sigma_1$, $L$ and $\epsilon$ from a folder of images (techniques 1, 2 and 4) and train with them.
# 2. Read the doctor's one-page report on a score model: four measurements against their ideal.
# 3. Know which of its six verdicts points at which fix.
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
from IPython.display import display

from pegasus_course import checkpoints, data, doctor, plotting, schedule_from_data, sigmas, workflow
from pegasus_course.generate import schedule_from_meta
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig

profile, g = workflow.start(seed=0)

# %% [markdown]
# ## 1. Your folder
#
# A folder of images holds `train/<class>/*.jpg` or `*.png`, and for the doctor a `test/<class>/` beside it
# with images the model has not seen. Put its path in `MY_FOLDER` and its class names in `MY_CLASSES`.
# Left at `None`, the notebook uses the course's horses and birds (the folder `PEGASUS_DATA_ROOT` names, or
# CIFAR-10), cut to the profile's size. Squares of 32, 48 or 64 pixels are read as they are; grey and
# transparent images are converted to RGB, and the loader says so once.

# %%
MY_FOLDER = None  # for example "~/Pictures/pets", holding train/cat/*.jpg and train/dog/*.jpg
MY_CLASSES = ("horse", "bird")
MY_MODEL = None  # a checkpoint trained on MY_FOLDER (section 3); None: the shipped model

# %% tags=["nbval-ignore-output"]
if MY_FOLDER is None:
    train_set = workflow.training_images(profile, classes=MY_CLASSES)
    held_out = workflow.training_images(profile, split="test", classes=MY_CLASSES)
else:
    train_set = data.load_dataset("folder", MY_FOLDER, classes=MY_CLASSES)
    try:
        held_out = data.load_dataset("folder", MY_FOLDER, split="test", classes=MY_CLASSES)
    except FileNotFoundError:
        held_out = train_set
        print("no test/ folder: the doctor will look at training images, which flatters the model")
for line in data.class_balance_notes(train_set):
    print(line)
print(f"{len(train_set)} training images of {train_set.image_size}x{train_set.image_size} "
      f"({', '.join(train_set.classes)}); {len(held_out)} held out")
fig = plotting.show_images(train_set.images[:16], nrow=8, title="the first training images", scale=0.8)

# %% [markdown]
# ## 2. The schedule, computed from the folder
#
# `schedule_from_data.data_schedule` runs notebook 02's three techniques on the images:
#
# * **technique 1**: $\sigma_1$ is the largest distance between two images. Comparing every pair costs
#   $N^2$ distances, so the package first finds a far pair by jumping from image to farthest image, then
#   keeps only the images the triangle inequality allows to be farther apart (a few dozen of 10,000
#   photos) and compares those pair by pair: the answer is exact. When too many remain, it says so and
#   gives an interval instead;
# * **technique 2**: $L$, the number of geometric levels from $\sigma_1$ to $\sigma_L = 0.01$ whose neighbours
#   overlap by about half;
# * **technique 4**: $\epsilon$ for $T = 5$ Langevin steps per level.

# %% tags=["nbval-ignore-output"]
computed = schedule_from_data.data_schedule(train_set.images, n_steps_each=5)
print("technique 1,", computed.distance.describe())
print("\n".join(schedule_from_data.schedule_table(computed)))

# %% [markdown]
# On all 10,000 horse and bird training images this prints $\sigma_1 = 50.69$ (notebook 02: 50.7) and
# $L = 220$ (the $L$ notebook 02 found from $\sigma_1 = 50$); technique 4 then gives $\epsilon = 6.47 \times 10^{-6}$
# for this schedule, against $6.18 \times 10^{-6}$ for the paper's $L = 232$ (the `ci` profile keeps 512
# images, whose farthest pair is a little closer). The last line is the price of the schedule: every
# sample costs $L \times T + 1$ network evaluations.
#
# Larger images are farther apart, so they need a larger $\sigma_1$ and more levels. The largest distance
# two images can have is black against white, $\sqrt D$; the schedule it would call for, by image size:

# %%
# NBVAL_CHECK_OUTPUT
for size in (32, 48, 64):
    D = 3 * size * size
    facts = schedule_from_data.schedule_facts(D**0.5, 0.01, sigmas.num_noise_scales(D**0.5, 0.01, D), 5, D)
    print(f"{size}x{size}: sigma_1 up to {D**0.5:5.1f}, L = {facts['num_scales']}, eps = {facts['eps']:.3g}, "
          f"{facts['evaluations']:,} evaluations per sample")

# %% [markdown]
# The same computation is a command, and training can use its result instead of the profile's
# $\sigma_1 = 50$, $L = 232$ (the computed values are printed before the first step and written into the
# checkpoint):
#
# ```bash
# pegasus-course schedule --dataset folder --data-root ~/Pictures/pets --classes cat dog
# pegasus-course train --dataset folder --data-root ~/Pictures/pets --classes cat dog --schedule data --out runs/pets
# ```
#
# ## 3. The doctor
#
# "My samples are just noise" has many causes: a network that never learned, a schedule that does not fit
# the data, a step size off, levels not trained long enough, pixels in another range. `doctor.examine`
# measures what notebooks 03 and 04 measured for the shipped model, on any model and held-out images of
# its data, and judges each cause against a threshold. Here: the shipped model (or `MY_MODEL`) on 48
# held-out images and 6 of its levels.

# %% tags=["nbval-ignore-output"]
model, ckpt, how = workflow.load_or_train_model(profile, which=MY_MODEL)
pick = torch.randperm(len(held_out), generator=g)[:48]
report = doctor.examine(model, schedule_from_meta(ckpt.meta), held_out.images[pick], train_set.images,
                        n_levels=6, title=how)
print(f"{how}; examined in {report.runtime_s:.0f} s")
display(report.figure(text=False))

# %% [markdown]
# **Reading the curves** (left to right, from the largest $\sigma$ to the smallest, as the sampler runs):
#
# * **share of the noise explained**, $1 - \text{loss} / (D/2)$: 0 for a network that outputs zero, 1 for
#   the ideal. The dashed line is a *linear* denoiser (a Wiener filter) fitted to the training images'
#   mean and spectrum, on the very same noisy images. At large $\sigma$ both explain nearly everything; at
#   small $\sigma$ a trained network must stay above the linear one (notebook 04: noise of scale 0.01 is
#   hard to tell from the image's texture, so nobody reaches 1 there).
# * $|s| / (\sqrt D / \sigma)$: the length of the score against that of $-z/\sigma$, ideal 1 (notebook 03). Below 1 at small
#   $\sigma$ means the network hedges where it is unsure.
# * $\cos(s, -z/\sigma)$: the direction, ideal 1.
# * **Tweedie's estimates** $\tilde x + \sigma^2 s$ (notebook 05) in the lower two thirds of the levels: blurry shapes, then
#   the image itself. (Higher up, $\sigma^2$ multiplies the network's small error into noise even for a good
#   model: at $\sigma = 50$ a share of 0.999 leaves an error of about 1.6 per pixel.) Noise or colour blobs in
#   these rows are a network that has not learned.
#
# The text report repeats the numbers and ends with the verdicts:

# %% tags=["nbval-ignore-output"]
print("\n".join(report.lines()))
png, txt = report.save(checkpoints.REPO_ROOT / "outputs" / "doctor")
print(f"wrote {png.relative_to(checkpoints.REPO_ROOT)} and {txt.relative_to(checkpoints.REPO_ROOT)}")

# %% [markdown]
# Every verdict prints what it measured and its threshold; one that fires adds its fix:
#
# | verdict | fires when | fix |
# |---|---|---|
# | untrained or diverged weights | the median share over the levels is below 0.5, or a weight or output is not finite | train (longer); after a short run look at the live weights, the EMA still holds the random start; a loss that rose: lower `--lr`, add `--grad-clip 1` |
# | $\sigma_1$ too small for the data | $\sigma_1$ is below 0.8 times the largest distance between two training images | `train --schedule data` (technique 1) |
# | too few levels | technique 2's overlap at the schedule's ratio is below 0.25, half the 0.5 asked | more levels: `--num-scales`, or `--schedule data` |
# | step size off by more than 2x | the $\epsilon$ you sample with is over 2x from technique 4's for the data's schedule | sample with the data's $\epsilon$ |
# | small-$\sigma$ levels undertrained | in the smallest third of the levels the network explains less than the linear denoiser (less 0.02) | train longer (`--resume --steps MORE`) |
# | data in the wrong range | pixels outside $[0, 1]$, or at the large levels the estimates' mean is more than 0.15 off the images' | keep pixels in $[0, 1]$ when training and sampling |
#
# The command does the same and writes `doctor.png` (this figure with the text) and `doctor.txt`; it
# exits with 0 when no verdict fires:
#
# ```bash
# pegasus-course doctor runs/pets/checkpoint.safetensors --dataset folder --data-root ~/Pictures/pets
# ```
#
# ## 4. A sick model
#
# What the doctor says about a network that has never been trained (the profile's width, a few held-out
# images and levels):

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
fresh = ScoreUNet(ScoreUNetConfig.for_image_size(train_set.image_size, profile.base_channels,
                                                 num_res_blocks=profile.num_res_blocks))
sick = doctor.examine(fresh, schedule_from_meta(ckpt.meta), held_out.images[pick[:16]], train_set.images,
                      n_levels=4, data=report.data, title="a network that has never been trained")
for verdict in sick.verdicts:
    print("\n".join(verdict.lines()))

# %% [markdown]
# Its share of the noise is below zero at every level (it adds noise of its own), so the first verdict
# fires; the checks that need a trained network say "not judged" rather than pile up more failures.
# The schedule checks still run: they depend on the data and the schedule, not on the weights.
#
# ## Summary
#
# * `data_schedule` (the command `pegasus-course schedule`) computes $\sigma_1$, $L$ and $\epsilon$ from any folder;
#   `train --schedule data` trains with them.
# * `doctor.examine` (the command `pegasus-course doctor`) compares a model with the ideal and with a linear
#   denoiser level by level, checks its schedule against the data, and names what to fix.
# * Replace `MY_FOLDER` (and, once trained, `MY_MODEL`) with yours and run the notebook again.
