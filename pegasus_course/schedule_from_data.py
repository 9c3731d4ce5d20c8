"""The noise schedule computed from a set of images: NCSNv2's techniques 1, 2 and 4 in one call.

Notebook 02 computes them one at a time on the horse and bird images; :func:`data_schedule` does the same for
any image set (a learner's own folder), so that ``pegasus-course schedule`` and ``train --schedule data`` need
no more than the images:

* technique 1: sigma_1 = the largest Euclidean distance between two images (:func:`largest_distance`, exact
  for any set whose far images are few, else a stated interval);
* technique 2: L, the number of geometric levels from sigma_1 to sigma_L whose ratio gives an overlap of 0.5;
* technique 4: eps, the Langevin base step for T steps per level on that schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from . import sigmas as sig

PAPER_SIGMA_1 = 50.0  # NCSNv2 on CIFAR-10 (32x32, D = 3072)
PAPER_SIGMA_L = 0.01
PAPER_NUM_SCALES = 232
PAPER_N_STEPS_EACH = 5
PAPER_DIM = 3 * 32 * 32
EXACT_WORK = 3e11  # pairs x dimensions compared exactly by default: about 6 s on 2 CPU cores


def float_images(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float32: uint8 images divided by 255, float images as they are (finite)."""
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, C, H, W), got {tuple(images.shape)}.")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    x = images.float()
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError("The images hold NaN or infinite values: check how they were loaded.")
    return x


def as_unit_images(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float32 in [0, 1] from uint8 (0-255) or float images; refuses other ranges with what to do."""
    x = float_images(images)
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 1.0)
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"Images must be in [0, 1] (the course does not centre them), got values in [{lo:.3g}, "
                         f"{hi:.3g}]: divide 0-255 images by 255, map [-1, 1] images with (x + 1) / 2.")
    return x


def _sq_dist_to(x: torch.Tensor, v: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """||x_i - v||^2 for every row of x (N, D), in float64 accumulated from float32 chunks."""
    return torch.cat([(x[s:s + chunk] - v).pow(2).sum(1, dtype=torch.float64) for s in range(0, len(x), chunk)])


@dataclass(frozen=True)
class LargestDistance:
    """Technique 1's answer: the largest distance between two images, exact or within [value, upper]."""

    value: float  # the distance of a real pair: the maximum when exact, a lower bound otherwise
    upper: float  # an upper bound on the maximum (equal to value when exact)
    pair: tuple[int, int]  # the indices of the pair at distance ``value``
    exact: bool
    num_images: int
    compared: int  # images compared pair by pair after the triangle-inequality screen

    def describe(self) -> str:
        n_pairs = self.num_images * (self.num_images - 1) // 2
        if self.exact:
            return (f"exact: the largest of {n_pairs:,} distances (images #{self.pair[0]} and #{self.pair[1]}; "
                    f"{self.compared:,} images could reach it and were compared pair by pair)")
        return (f"bounded: {self.value:.2f} (images #{self.pair[0]} and #{self.pair[1]}) <= largest distance <= "
                f"{self.upper:.2f} (triangle inequality); {self.compared:,} images could reach it, too many to "
                "compare pair by pair (--exact does it anyway)")


@torch.no_grad()
def largest_distance(images: torch.Tensor, exact: bool | None = None, max_work: float = EXACT_WORK) -> LargestDistance:
    """The largest Euclidean distance between two of the images (NCSNv2 technique 1), exact when affordable.

    1. A lower bound from a real pair: from the image farthest from the mean, jump to the image farthest
       from it, and again, until the distance stops growing.
    2. The triangle inequality screens the rest: for any centre c, ||x_i - x_j|| <= ||x_i - c|| + ||x_j - c||,
       so only images with ||x_i - c|| + max_j ||x_j - c|| >= the lower bound can belong to a farther pair
       (for photos, a few hundred of tens of thousands).
    3. Those are compared pair by pair (``sigmas.max_pairwise_distance``): the result is exact. If they are
       too many (more than ``max_work`` pairs x dimensions) and ``exact`` is not True, the answer is the
       interval [lower bound, min over centres of the two largest ||x_i - c|| summed].

    Args:
        images: (N, C, H, W), uint8 or float (in [0, 1] for the course's images).
        exact: True compares every remaining pair whatever it costs; False never does; None decides by cost.
        max_work: the cost limit for ``exact=None``.
    """
    if exact not in (True, False, None):
        raise TypeError(f"largest_distance: exact is True, False or None (decide by cost), got {exact!r}.")
    x = float_images(images).flatten(1)  # (N, D)
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"Technique 1 needs at least two images to measure a distance, found {n}: add images to "
                         "the folder.")
    # 1. lower bound by repeated farthest-point jumps
    a = int(_sq_dist_to(x, x.mean(0)).argmax())
    best, pair = -1.0, (0, 0)
    for _ in range(8):
        d = _sq_dist_to(x, x[a])
        b = int(d.argmax())
        if float(d[b]) <= best:
            break
        best, pair, a = float(d[b]), (min(a, b), max(a, b)), b
    lower = math.sqrt(best)
    if lower == 0.0:
        raise ValueError(f"All {n} images are identical (largest distance 0): technique 1 needs images that differ.")
    # 2. screen with two centres: the mean image and the centre of the box holding the data
    centres = (x.mean(0), 0.5 * (x.min(0).values + x.max(0).values))
    keep = torch.ones(n, dtype=torch.bool)
    upper = math.inf
    for c in centres:
        r = _sq_dist_to(x, c).sqrt()  # (N,)
        top = r.topk(2).values
        upper = min(upper, float(top[0] + top[1]))
        keep &= r + top[0] >= lower - 1e-6 * lower - 1e-4  # margin for float rounding
    upper = max(upper, lower)
    idx = torch.nonzero(keep).flatten()
    compared = int(idx.numel())
    if exact is False or (exact is None and compared * compared * dim > max_work):
        return LargestDistance(lower, upper, pair, False, n, compared)
    # 3. exact over the images that could reach the lower bound (the lower bound's pair is among them)
    value, (i, j) = sig.max_pairwise_distance(x[idx], return_pair=True)  # float64: the same digits as notebook 02
    i, j = int(idx[i]), int(idx[j])
    return LargestDistance(value, value, (min(i, j), max(i, j)), True, n, compared)


@dataclass(frozen=True)
class DataSchedule:
    """A noise schedule computed from images with NCSNv2's techniques 1, 2 and 4."""

    sigma_1: float  # technique 1: the largest pairwise distance
    sigma_L: float  # chosen, not computed (0.01: a few grey levels, notebook 02)
    num_scales: int  # technique 2: L
    n_steps_each: int  # T
    eps: float  # technique 4 for T
    gamma: float  # sigma_1 / sigma_2 of the geometric schedule
    overlap: float  # technique 2's overlap at that gamma (about 0.5)
    dim: int  # D = C x H x W
    image_shape: tuple[int, int, int]
    distance: LargestDistance

    @property
    def evaluations(self) -> int:
        """Network evaluations per sample: L x T Langevin steps and the final denoising step."""
        return self.num_scales * self.n_steps_each + 1

    def schedule(self):
        """The :class:`~pegasus_course.generate.Schedule` that training and sampling use."""
        from .generate import Schedule

        return Schedule(self.sigma_1, self.sigma_L, self.num_scales, self.n_steps_each)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["distance"]["pair"] = list(self.distance.pair)
        d["evaluations"] = self.evaluations
        return d


def data_schedule(images: torch.Tensor, sigma_min: float = PAPER_SIGMA_L, n_steps_each: int = PAPER_N_STEPS_EACH,
                  exact: bool | None = None, check_range: bool = True) -> DataSchedule:
    """sigma_1, L and eps computed from ``images`` (N, C, H, W) in [0, 1] or uint8 (techniques 1, 2, 4).

    Args:
        images: the training images, at the size the network will see them.
        sigma_min: sigma_L; not computed from the data (notebook 02, section 5).
        n_steps_each: T, Langevin steps per level, for technique 4.
        exact: passed to :func:`largest_distance`.
        check_range: refuse images outside [0, 1] (the doctor turns that check off to report it instead).
    """
    from .checks import check_positive_int

    n_steps_each = check_positive_int(n_steps_each, "n_steps_each (T, Langevin steps per level)")
    if not (math.isfinite(sigma_min) and sigma_min > 0):
        raise ValueError(f"sigma_min (sigma_L) must be a positive number, got {sigma_min}.")
    if check_range and images.dtype != torch.uint8:  # uint8 images are in range by construction
        as_unit_images(images)
    dist = largest_distance(images, exact=exact)
    dim = int(images[0].numel())
    if dist.value <= sigma_min:
        raise ValueError(f"The images are at most {dist.value:.3g} apart, not more than sigma_L = {sigma_min:g}, so "
                         "there is no room for a schedule from sigma_1 down to sigma_L: lower sigma_L (--sigma-min; "
                         "the paper uses 0.01), or, if the set is (nearly) one image repeated, add images that differ.")
    num_scales = sig.num_noise_scales(dist.value, sigma_min, dim)
    levels = sig.geometric_sigmas(dist.value, sigma_min, num_scales)
    gamma = (dist.value / sigma_min) ** (1.0 / (num_scales - 1))
    return DataSchedule(sigma_1=dist.value, sigma_L=float(sigma_min), num_scales=num_scales, n_steps_each=n_steps_each,
                        eps=sig.langevin_step_size(levels, n_steps_each), gamma=gamma,
                        overlap=sig.technique2_overlap(gamma, dim), dim=dim,
                        image_shape=tuple(int(s) for s in images.shape[1:]), distance=dist)


def schedule_facts(sigma_1: float, sigma_L: float, num_scales: int, n_steps_each: int, dim: int) -> dict:
    """gamma, technique 2's overlap, technique 4's eps and the evaluations per sample of a geometric schedule."""
    gamma = (sigma_1 / sigma_L) ** (1.0 / (num_scales - 1))
    eps = sig.langevin_step_size(sig.geometric_sigmas(sigma_1, sigma_L, num_scales), n_steps_each)
    return {"sigma_1": sigma_1, "sigma_L": sigma_L, "num_scales": num_scales, "n_steps_each": n_steps_each,
            "gamma": gamma, "overlap": sig.technique2_overlap(gamma, dim), "eps": eps,
            "evaluations": num_scales * n_steps_each + 1}


def paper_schedule(n_steps_each: int = PAPER_N_STEPS_EACH) -> dict:
    """The paper's CIFAR-10 schedule (sigma_1 = 50, sigma_L = 0.01, L = 232, D = 3072) at T = ``n_steps_each``."""
    return schedule_facts(PAPER_SIGMA_1, PAPER_SIGMA_L, PAPER_NUM_SCALES, n_steps_each, PAPER_DIM)


def schedule_table(ds: DataSchedule) -> list[str]:
    """The computed schedule beside the paper's CIFAR-10 values, as lines to print."""
    p = paper_schedule(ds.n_steps_each)
    rows = [
        ("", "from the data", "paper, CIFAR-10"),
        ("sigma_1 (technique 1)", f"{ds.sigma_1:.2f}" + ("" if ds.distance.exact else
                                                          f" (at most {ds.distance.upper:.2f})"), f"{p['sigma_1']:g}"),
        ("sigma_L (chosen)", f"{ds.sigma_L:g}", f"{p['sigma_L']:g}"),
        ("L (technique 2)", f"{ds.num_scales}", f"{p['num_scales']}"),
        ("  ratio gamma, overlap", f"{ds.gamma:.4f}, {ds.overlap:.2f}", f"{p['gamma']:.4f}, {p['overlap']:.2f}"),
        (f"eps for T = {ds.n_steps_each} (technique 4)", f"{ds.eps:.3g}", f"{p['eps']:.3g}"),
        ("evaluations per sample", f"{ds.evaluations:,} (L x T + 1)", f"{p['evaluations']:,}"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    return [f"{a:<{width}}{b:<24}{c}" for a, b, c in rows]
