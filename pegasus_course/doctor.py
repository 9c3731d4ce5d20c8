"""A doctor for a score model that draws noise or mush: what is wrong, measured, and what to do.

:func:`examine` runs the diagnostics notebooks 03 and 04 show for the shipped model on any score model and
held-out images of its data, and turns them into :class:`Verdict` s, each with its threshold and its fix:

* per level, the share of the noise the network explains, 1 - loss / (D/2) (paper eq. 2; a network that outputs
  zero explains 0, a perfect one 1), beside the share a *linear* denoiser fitted to the training images explains
  on the very same noisy images (:class:`StationaryGaussianScore`, a Wiener filter): a trained network must do
  at least as well;
* |s| against sqrt(D) / sigma and the cosine of s with -z / sigma (notebook 03's contract);
* Tweedie's denoised estimates x~ + sigma^2 s at a few levels (notebook 05);
* the schedule against the data: sigma_1 against the largest pairwise distance (technique 1), the ratio's
  overlap (technique 2) and the step eps (technique 4) against those computed from the images.

:meth:`Report.save` writes the one-page report as a PNG and as text.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import sigmas as sig
from .intervals import mean_se
from .schedule_from_data import DataSchedule, data_schedule, float_images

# Thresholds of the verdicts (each is printed with its verdict).
UNTRAINED_SHARE = 0.5  # median share of the noise explained over the probed levels
SIGMA_1_RATIO = 0.8  # sigma_1 against the data's largest pairwise distance (technique 1 asks for about 1)
MIN_OVERLAP = 0.25  # technique 2's overlap at the schedule's ratio: half of the 0.5 it asks for
STEP_FACTOR = 2.0  # eps used against technique 4's eps for the data's schedule
LINEAR_MARGIN = 0.02  # share the network may fall below the linear denoiser at the small levels
MEAN_SHIFT = 0.15  # |mean of the denoised estimates at the largest levels - mean of the images|
RANGE_SLACK = 1e-3  # pixels outside [0, 1] by more than this are out of range
MIN_LEVELS = 2  # levels probed at least: sigma_1 and sigma_L
MIN_IMAGES = 8  # held-out images a verdict that averages over images needs (its standard error is estimated too)
CONFIDENCE = 2.0  # standard errors a mean must clear its threshold by to be judged either way


class StationaryGaussianScore:
    """The score of a stationary Gaussian fitted to images: the best linear denoiser (Wiener filter) under it.

    The mean image mu and, per spatial frequency f, the C x C covariance of the images' Fourier coefficients
    (the covariance of a distribution whose statistics do not depend on position) give
    s(x~, sigma) = -(Sigma + sigma^2 I)^-1 (x~ - mu), applied frequency by frequency in O(D log D).
    Its Tweedie estimate x~ + sigma^2 s is the Wiener filter. A network trained by DSM should explain at
    least as much of the noise: it can represent this filter, and more.
    """

    def __init__(self, images: torch.Tensor, chunk: int = 512):
        x = float_images(images)
        n, c, h, w = x.shape
        if n < 1:
            raise ValueError("StationaryGaussianScore: no images to fit: pass the training images (N, C, H, W).")
        self.mean = x.mean(0)  # (C, H, W)
        acc = torch.zeros(h, w, c, c, dtype=torch.complex128)
        for start in range(0, n, chunk):
            f = torch.fft.fft2(x[start:start + chunk] - self.mean, norm="ortho").to(torch.complex128)  # (b, C, H, W)
            acc += torch.einsum("bchw,bdhw->hwcd", f, f.conj())
        lam, vec = torch.linalg.eigh(acc / max(n - 1, 1))  # (H, W, C), (H, W, C, C): per-frequency eigenpairs
        self.eigenvalues = lam.real.clamp(min=0).float().permute(2, 0, 1)  # (C, H, W), D values in all
        self.vectors = vec.to(torch.complex64)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        mean, vec, lam = (t.to(x.device) for t in (self.mean, self.vectors, self.eigenvalues))
        f = torch.fft.fft2(x.float() - mean, norm="ortho")  # (B, C, H, W)
        coef = torch.einsum("hwck,bchw->bkhw", vec.conj(), f)  # the coefficients in each frequency's eigenbasis
        coef = coef / (lam[None] + sigma.float().view(-1, 1, 1, 1) ** 2)
        return -torch.fft.ifft2(torch.einsum("hwck,bkhw->bchw", vec, coef), norm="ortho").real.to(x.dtype)


@dataclass(frozen=True)
class Verdict:
    """One check: what it found, the threshold it compares against, and what to do when it fires."""

    name: str
    fired: bool | None  # None: not judged (an untrained network fails every check that needs a trained one)
    measured: str
    threshold: str
    fix: str

    def lines(self) -> list[str]:
        mark = {True: "[FAIL]", False: "[ok]  ", None: "[--]  "}[self.fired]
        out = [f"{mark} {self.name}: {self.measured}", f"       threshold: {self.threshold}"]
        if self.fired:
            out.append(f"       fix: {self.fix}")
        return out


@dataclass
class Report:
    """What :func:`examine` measured, the verdicts, and how to write them as one page."""

    title: str
    sigmas: list[float]  # the probed levels, descending
    share: list[float]  # the network's 1 - loss / (D/2) per level
    linear_share: list[float]  # the linear denoiser's, on the same noisy images
    norm_ratio: list[float]  # mean |s| / (sqrt(D) / sigma)
    cosine: list[float]  # mean cos(s, -z / sigma)
    tweedie_sigmas: list[float]
    clean: torch.Tensor  # (k, C, H, W)
    noisy: torch.Tensor  # (levels, k, C, H, W), clamped for display
    denoised: torch.Tensor  # (levels, k, C, H, W): Tweedie's estimates, clamped for display
    schedule: dict  # the model's schedule: sigma_1, sigma_L, L, T, gamma, overlap, eps used
    data: DataSchedule  # techniques 1, 2, 4 computed from the training images
    verdicts: list[Verdict]
    num_images: int
    num_train_images: int
    dim: int
    runtime_s: float
    device: str
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when no verdict fired (the command's exit code 0)."""
        return not any(v.fired for v in self.verdicts)

    @property
    def headline(self) -> str:
        """One line: healthy only when every verdict was judged and none fired."""
        if self.fired:
            return f"{len(self.fired)} verdict(s) fired: " + "; ".join(v.name for v in self.fired)
        return ("no verdict fired, but not every verdict could be judged: not a clean bill of health"
                if any(v.fired is None for v in self.verdicts) else "healthy: no verdict fired")

    @property
    def fired(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.fired]

    def lines(self) -> list[str]:
        s, d = self.schedule, self.data
        dist = d.distance
        out = [f"pegasus-course doctor: {self.title}",
               f"{self.num_images} held-out images {'x'.join(map(str, d.image_shape))} (D = {self.dim}), "
               f"{len(self.sigmas)} of the schedule's {s['num_scales']} levels; examined in {self.runtime_s:.0f} s "
               f"on {self.device}",
               *self.notes,
               "",
               f"schedule: sigma_1 = {s['sigma_1']:.4g}, sigma_L = {s['sigma_L']:g}, L = {s['num_scales']} (ratio "
               f"{s['gamma']:.4f}, overlap {s['overlap']:.2f}), T = {s['n_steps_each']}, eps = {s['eps']:.3g}",
               f"data ({self.num_train_images} training images): largest pairwise distance {dist.value:.2f}"
               + (" (exact)" if dist.exact else f" to {dist.upper:.2f} (bounds)")
               + f"; technique 2: L = {d.num_scales} (overlap {d.overlap:.2f}); technique 4: eps = {d.eps:.3g} "
               f"at T = {d.n_steps_each}",
               "",
               f"{'sigma':>9} {'explained':>10} {'linear':>7} {'ideal':>6} {'|s|/(sqrt(D)/sigma)':>20} "
               f"{'cos(s, -z/sigma)':>17}"]
        for row in zip(self.sigmas, self.share, self.linear_share, self.norm_ratio, self.cosine):
            out.append(f"{row[0]:9.4g} {row[1]:10.3f} {row[2]:7.3f} {1:6.0f} {row[3]:20.3f} {row[4]:17.3f}")
        out += ["", "verdicts:"]
        for v in self.verdicts:
            out += v.lines()
        out.append("")
        unjudged = [v.name for v in self.verdicts if v.fired is None]
        out.append(self.headline)
        if unjudged:
            out[-1] += f" ({len(unjudged)} not judged, marked [--]: {'; '.join(unjudged)})"
        return out

    def to_dict(self) -> dict:
        return {"title": self.title, "healthy": self.healthy, "sigmas": self.sigmas, "share": self.share,
                "linear_share": self.linear_share, "norm_ratio": self.norm_ratio, "cosine": self.cosine,
                "tweedie_sigmas": self.tweedie_sigmas, "schedule": self.schedule, "data": self.data.to_dict(),
                "verdicts": [v.__dict__ for v in self.verdicts], "num_images": self.num_images,
                "num_train_images": self.num_train_images, "dim": self.dim, "runtime_s": self.runtime_s,
                "device": self.device, "notes": self.notes}

    def figure(self, text: bool = True):
        """The one-page report (1,020 px wide, legible at a notebook's width): three curves against their
        ideal, Tweedie estimates and, with ``text``, the text report with the verdicts (a notebook prints that
        instead). Drawn by :func:`pegasus_course.doctor_figure.report_figure`."""
        from .doctor_figure import report_figure

        return report_figure(self, text)

    def save(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``out/doctor.png`` and ``out/doctor.txt``; returns their paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        png, txt = out / "doctor.png", out / "doctor.txt"
        self.figure().savefig(png)
        txt.write_text("\n".join(self.lines()) + "\n")
        return png, txt


def _as_score_fn(model) -> tuple[Callable, torch.device, bool]:
    """(score_fn, device, weights finite) for a network or any callable score_fn(x, sigma)."""
    if isinstance(model, torch.nn.Module):
        from .generate import model_score_fn

        params = list(model.parameters())
        finite = all(bool(torch.isfinite(p).all()) for p in params)
        device = params[0].device if params else torch.device("cpu")
        fn = model_score_fn(model)

        def score_fn(x, sigma):  # in eval mode, leaving the model's mode as it was
            was_training = model.training
            model.eval()
            try:
                return fn(x, sigma)
            finally:
                model.train(was_training)
        return score_fn, device, finite
    return model, torch.device("cpu"), True


@torch.no_grad()
def examine(model, schedule, images: torch.Tensor, train_images: torch.Tensor | None = None, *, n_levels: int = 8,
            step_lr: float | None = None, n_tweedie: int = 4, seed: int = 0, batch_size: int = 16,
            data: DataSchedule | None = None, title: str = "a score model") -> Report:
    """Examine a score model on held-out images and judge it (see the module's docstring).

    Args:
        model: a :class:`~pegasus_course.nn.ScoreUNet` (or any ``score_fn(x, sigma)``).
        schedule: the :class:`~pegasus_course.generate.Schedule` it was trained with (T = its n_steps_each).
        images: held-out images (N, C, H, W), uint8 or float; they should be in [0, 1].
        train_images: the training images, for technique 1 and the linear denoiser (default: ``images``).
        n_levels: levels probed, evenly spread over the schedule, both ends included.
        step_lr: the eps you sample with (default: technique 4 for the schedule, as `pegasus-course sample` does).
        n_tweedie: images shown denoised.
        seed: the noise z (the same z at every level, so the curves' shapes are not noise).
        batch_size: images per network call (16 is fastest on a CPU).
        data: techniques 1, 2, 4 already computed from ``train_images`` (computed here otherwise).
        title: the report's first line.
    """
    from .checks import check_positive_int, check_seed

    t0 = time.perf_counter()
    n_levels = check_positive_int(n_levels, f"examine: n_levels (--levels, at least {MIN_LEVELS}: sigma_1 and sigma_L)",
                                  minimum=MIN_LEVELS)
    n_tweedie = check_positive_int(n_tweedie, "examine: n_tweedie")
    batch_size = check_positive_int(batch_size, "examine: batch_size")
    seed = check_seed(seed, "examine")
    score_fn, device, weights_finite = _as_score_fn(model)
    x = float_images(images)
    train = x if train_images is None else float_images(train_images)
    if x.shape[0] < 1:
        raise ValueError("examine needs at least one held-out image.")
    if train.shape[1:] != x.shape[1:]:
        raise ValueError(f"The training images are {tuple(train.shape[1:])}, the held-out ones {tuple(x.shape[1:])}: "
                         "load both at the network's size.")
    size = getattr(getattr(model, "config", None), "image_size", None)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"The network makes {size}x{size} images, these are {x.shape[-2]}x{x.shape[-1]}: load them "
                         f"with image_size={size} (--image-size), or examine a network trained on them.")
    n, dim = x.shape[0], x[0].numel()
    lo, hi = float(x.min()), float(x.max())
    in_range = lo >= -RANGE_SLACK and hi <= 1 + RANGE_SLACK
    T = schedule.n_steps_each
    levels = schedule.sigmas()
    probe = levels[torch.linspace(0, len(levels) - 1, min(n_levels, len(levels))).round().long().unique()]
    # Tweedie's estimates at up to 4 levels of the lower two thirds (log scale): above, sigma^2 multiplies the
    # network's small error into noise, even for a good model (at sigma_1 = 50 a share of 0.999 leaves ~1.6/pixel).
    low = [i for i, v in enumerate(probe.tolist()) if v <= schedule.sigma_min * (schedule.sigma_max / schedule.sigma_min)
           ** (2 / 3) * (1 + 1e-6)] or [len(probe) - 1]
    shown = [low[int(j)] for j in torch.linspace(0, len(low) - 1, min(4, len(low))).round().long().unique()]
    if step_lr is not None and not (math.isfinite(step_lr) and step_lr > 0):
        raise ValueError(f"step_lr (eps) must be a positive number, got {step_lr}.")
    if data is None:
        data = data_schedule(train, sigma_min=schedule.sigma_min, n_steps_each=T, check_range=False)
    elif (data.sigma_L, data.n_steps_each) != (schedule.sigma_min, T):
        raise ValueError(f"data was computed for sigma_L = {data.sigma_L:g}, T = {data.n_steps_each}; the schedule has "
                         f"sigma_L = {schedule.sigma_min:g}, T = {T}: compute it with those (or leave data out).")
    linear = StationaryGaussianScore(train)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    k = min(n_tweedie, n)
    share, lin_share, ratio, cosine, nonfinite = [], [], [], [], 0
    noisy, denoised = [], []
    shift, gap = [], []  # per level, per image: mean of (Tweedie estimate - clean image); share - linear share
    for li, s in enumerate(probe.tolist()):
        parts: dict[str, list[torch.Tensor]] = {"share": [], "lin": [], "norm": [], "cos": [], "shift": []}
        for start in range(0, n, batch_size):
            xb, zb = x[start:start + batch_size], z[start:start + batch_size]
            sigma = torch.full((xb.shape[0],), s)
            x_tilde = xb + s * zb
            out = score_fn(x_tilde.to(device), sigma.to(device)).float().cpu()
            nonfinite += int((~torch.isfinite(out)).any(dim=(1, 2, 3)).sum())
            parts["share"].append(1 - (0.5 * (s * out + zb).pow(2).flatten(1).sum(1)) / (dim / 2))  # eq. 2, per image
            parts["lin"].append(1 - (0.5 * (s * linear(x_tilde, sigma) + zb).pow(2).flatten(1).sum(1)) / (dim / 2))
            parts["norm"].append(out.flatten(1).norm(dim=1))
            parts["cos"].append(torch.nn.functional.cosine_similarity(out.flatten(1), -zb.flatten(1), dim=1))
            est = x_tilde + s * s * out  # Tweedie
            if start == 0 and li in shown:
                noisy.append(x_tilde[:k].clamp(0, 1))
                denoised.append(est[:k].nan_to_num(0.5).clamp(0, 1))
            parts["shift"].append((est - xb).flatten(1).mean(1))
        per = {key: torch.cat(v).double() for key, v in parts.items()}
        share.append(float(per["share"].mean()))
        lin_share.append(float(per["lin"].mean()))
        ratio.append(float(per["norm"].mean()) / (math.sqrt(dim) / s))
        cosine.append(float(per["cos"].mean()))
        shift.append(per["shift"])
        gap.append(per["share"] - per["lin"])
    eps_used = step_lr if step_lr is not None else sig.langevin_step_size(levels, T)
    gamma = float(levels[0] / levels[1])
    sched = {"sigma_1": float(schedule.sigma_max), "sigma_L": float(schedule.sigma_min),
             "num_scales": int(schedule.num_scales), "n_steps_each": T, "gamma": gamma,
             "overlap": sig.technique2_overlap(gamma, dim), "eps": eps_used,
             "eps_from": "given" if step_lr is not None else "technique 4"}
    verdicts = _verdicts(probe.tolist(), share, lin_share, nonfinite, weights_finite, sched, data, dim,
                         (lo, hi, in_range), float(x.mean()), shift, gap, train_images is not None)
    return Report(title=title, sigmas=probe.tolist(), share=share, linear_share=lin_share, norm_ratio=ratio,
                  cosine=cosine, tweedie_sigmas=[float(probe[i]) for i in shown], clean=x[:k].clamp(0, 1),
                  noisy=torch.stack(noisy), denoised=torch.stack(denoised), schedule=sched, data=data,
                  verdicts=verdicts, num_images=n, num_train_images=train.shape[0], dim=dim,
                  runtime_s=time.perf_counter() - t0, device=str(device))


def _mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-image values and its standard error, 1 SE (infinite for one image): the doctor compares the
    mean with its thresholds at ``CONFIDENCE`` of them."""
    return mean_se(values, z=1.0, where="doctor") if values.numel() > 1 else (float(values.mean()), math.inf)


def _too_few(n: int) -> str:
    return (f"unreliable (too few images: {n} < {MIN_IMAGES}): an average over so few held-out images cannot support "
            "a verdict; examine more (--n-images, n_images in Python)")


def _verdicts(probe, share, lin_share, nonfinite, weights_finite, sched, data: DataSchedule, dim, rng,
              data_mean, shift, gap, own_train: bool) -> list[Verdict]:
    """The six checks of the report, in the order a learner should act on them. A check that averages over the
    held-out images judges only with ``MIN_IMAGES`` of them or more, and only where its mean clears the threshold
    by ``CONFIDENCE`` standard errors; otherwise it says it is unreliable and what to raise."""
    import statistics

    out = []
    n = shift[0].numel()
    finite_shares = [v for v in share if math.isfinite(v)]
    median = statistics.median(finite_shares) if finite_shares else float("nan")
    broken = not weights_finite or nonfinite > 0 or not math.isfinite(median)
    # non-finite outputs, or a share below the threshold, fire from any number of images (an untrained network
    # explains about nothing); an "ok" is an average over the images and needs MIN_IMAGES of them
    untrained = True if broken or median < UNTRAINED_SHARE else (None if n < MIN_IMAGES else False)
    what = (f"median share of the noise explained {median:.2f} over {len(probe)} levels (from {min(share):.2f} to "
            f"{max(share):.2f})" if not broken else
            f"{'non-finite weights; ' if not weights_finite else ''}{nonfinite} non-finite outputs")
    if untrained is None:
        what = f"{_too_few(n)}; {what}"
    out.append(Verdict(
        "untrained or diverged weights", untrained, what,
        f"median share >= {UNTRAINED_SHARE} and every weight and output finite (a network that outputs zero "
        "explains 0, a trained one over 0.9 at most levels)",
        "train it, or longer (`pegasus-course train`); after a short run the EMA weights still hold mostly the "
        "random start, so look at the live weights (--live); if the training loss rose or turned NaN, lower --lr "
        "or add --grad-clip 1"))
    dist = data.distance
    ratio = sched["sigma_1"] / dist.value
    small_sigma_1 = True if ratio < SIGMA_1_RATIO else (False if own_train else None)  # more images lie farther apart
    out.append(Verdict(
        "sigma_1 too small for the data", small_sigma_1,
        ("" if own_train else "unreliable when not fired (measured on the held-out images only: pass the training "
         "images, train_images=): ")
        + f"sigma_1 = {sched['sigma_1']:.4g}, the training images' largest pairwise distance is {dist.value:.2f}"
        + ("" if dist.exact else f" or more (at most {dist.upper:.2f})") + f" (ratio {ratio:.2f})",
        f"sigma_1 >= {SIGMA_1_RATIO} x the largest distance = {SIGMA_1_RATIO * dist.value:.2f} (technique 1: "
        "about equal)",
        f"retrain with `pegasus-course train --schedule data` (sigma_1 = {data.sigma_1:.2f}, L = {data.num_scales}) "
        "or --sigma-max; sampling starts from noise of scale sigma_1, and Langevin dynamics cannot move between "
        "images that lie farther apart than that"))
    span = sched["sigma_1"] > sched["sigma_L"]
    needed = sig.num_noise_scales(sched["sigma_1"], sched["sigma_L"], dim) if span else 2  # overlap 0.5
    least = (int(math.ceil(1.0 + math.log(sched["sigma_1"] / sched["sigma_L"])  # overlap MIN_OVERLAP
                           / math.log(sig.noise_scale_ratio(dim, MIN_OVERLAP)))) if span else 2)
    out.append(Verdict(
        "too few levels", sched["overlap"] < MIN_OVERLAP,
        f"L = {sched['num_scales']}: ratio gamma = {sched['gamma']:.4f}, technique 2's overlap {sched['overlap']:.2f}",
        f"overlap >= {MIN_OVERLAP}, half of the 0.5 technique 2 asks for (from sigma_1 = {sched['sigma_1']:.4g} to "
        f"sigma_L = {sched['sigma_L']:g} that is L >= {least} levels; technique 2 itself asks for {needed})",
        f"retrain with --num-scales {needed} (or --schedule data): with too few levels the samples handed from one "
        "level to the next land outside the region the next level was trained on"))
    step = sched["eps"] / data.eps
    out.append(Verdict(
        "step size off by more than 2x", not (1 / STEP_FACTOR <= step <= STEP_FACTOR),
        f"eps = {sched['eps']:.3g} ({sched['eps_from']}, T = {sched['n_steps_each']}) against {data.eps:.3g} for "
        f"the data's schedule (ratio {step:.2f})",
        f"eps within {STEP_FACTOR:g}x of technique 4's for the data's schedule",
        f"sample with eps = {data.eps:.3g} on the data's schedule (retrain with --schedule data); too large a step "
        "overshoots into noise, too small a one leaves the samples at the previous level's noise"))
    lo, hi, in_range = rng
    # At large sigma the image hardly shows through the noise, so the denoised estimates fall back on the mean
    # of the data the network learned: a network trained on another range pulls them there. One level is
    # noisy (sigma^2 multiplies the network's error), so the check asks for half of the largest third.
    large = [i for i, s in enumerate(probe)
             if s >= sched["sigma_L"] * (sched["sigma_1"] / sched["sigma_L"]) ** (2 / 3) * (1 - 1e-6)] or [0]
    est = {i: _mean_se(shift[i]) for i in large}
    off = [i for i in large if abs(est[i][0]) - CONFIDENCE * est[i][1] > MEAN_SHIFT]
    fine = [i for i in large if abs(est[i][0]) + CONFIDENCE * est[i][1] <= MEAN_SHIFT]
    if not in_range:
        wrong_range, what = True, f"the images' pixels lie in [{lo:.3g}, {hi:.3g}]"
    elif untrained:
        wrong_range, what = None, f"images in [{lo:.2f}, {hi:.2f}]; the model's range not judged: it is untrained"
    elif n < MIN_IMAGES:
        wrong_range, what = None, f"images in [{lo:.2f}, {hi:.2f}]; the model's range {_too_few(n)}"
    else:
        decided = len(off) + len(fine)
        wrong_range = 2 * len(off) > decided if decided else None
        what = ((f"unreliable: no level of the largest third measured to within {MEAN_SHIFT} with {n} images; "
                 "examine more images (--n-images) or levels (--levels). " if not decided else "")
                + f"images in [{lo:.2f}, {hi:.2f}] with mean {data_mean:.3f}; the model's denoised estimates average "
                + ", ".join(f"{data_mean + est[i][0]:.3f} +- {CONFIDENCE * est[i][1]:.3f} at sigma = {probe[i]:.3g}"
                            for i in large))
    range_verdict = Verdict(
        "data in the wrong range", wrong_range, what,
        f"pixels in [0, 1], and the denoised estimates within {MEAN_SHIFT} of the images' mean at half or more of the "
        "levels in the largest third (there a network falls back on the mean of the data it learned), judged from "
        f"{MIN_IMAGES} images or more where the mean clears {MEAN_SHIFT} by {CONFIDENCE:g} standard errors",
        "the course keeps pixels in [0, 1], not centred: divide 0-255 images by 255, map [-1, 1] images with "
        "(x + 1) / 2, and train and sample in the same range")
    small = [i for i, s in enumerate(probe)
             if s <= sched["sigma_L"] * (sched["sigma_1"] / sched["sigma_L"]) ** (1 / 3) * (1 + 1e-6)]
    gaps = {i: _mean_se(gap[i]) for i in small}
    worst, wi = min((gaps[i][0], i) for i in small) if small else (0.0, 0)
    below = [i for i in small if gaps[i][0] + CONFIDENCE * gaps[i][1] < -LINEAR_MARGIN]
    above = [i for i in small if gaps[i][0] - CONFIDENCE * gaps[i][1] >= -LINEAR_MARGIN]
    cut = probe[small[0]] if small else float("nan")
    if untrained or wrong_range:
        under, what = None, f"not judged: {'the network is untrained' if untrained else 'the data is in the wrong range'}"
    elif n < MIN_IMAGES:
        under, what = None, _too_few(n)
    else:
        under = True if below else (False if len(above) == len(small) else None)
        what = ((f"unreliable: at sigma = {probe[wi]:.3g} the gap to the linear denoiser is {worst:.3f} +- "
                 f"{CONFIDENCE * gaps[wi][1]:.3f} with {n} images, too close to -{LINEAR_MARGIN} to tell; examine "
                 "more images (--n-images). " if under is None else "")
                + f"at sigma <= {cut:.3g} the network explains {min(share[i] for i in small):.3f} to "
                f"{max(share[i] for i in small):.3f} of the noise, a linear denoiser "
                f"{min(lin_share[i] for i in small):.3f} to {max(lin_share[i] for i in small):.3f} (worst: sigma = "
                f"{probe[wi]:.3g}, {share[wi]:.3f} vs {lin_share[wi]:.3f})")
    out.append(Verdict(
        "small-sigma levels undertrained", under, what,
        f"at least the linear denoiser's share, less {LINEAR_MARGIN}, at every level in the smallest third of the "
        f"schedule (log scale), judged from {MIN_IMAGES} images or more by {CONFIDENCE:g} standard errors",
        "train longer (`pegasus-course train --out RUN --resume --steps MORE`): the small levels are learned last, "
        "and the samples' last steps and final denoising step run on them"))
    out.append(range_verdict)
    return out
