"""How sure a colour-shift claim can be: per-channel shifts with their standard errors.

A colour cast is a shift of a channel's mean. Measured on a handful of samples, the shift comes with
the spread of the images themselves: each image is one draw of its three channel means, so the shift of
a set is a mean over images, with a standard error. Comparing two sets drawn from the same seeds (live
against EMA weights) is a *paired* comparison: the difference is taken seed by seed, which removes the
scene each seed draws and keeps what the weights change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_channel_values, check_image_batch, check_number
from .intervals import mean_se

CHANNELS = ("red", "green", "blue")


def _check_z(z, where: str) -> float:
    """How many standard errors: a positive, finite number."""
    return check_number(z, f"{where}: z (standard errors)", positive=True, hint="2 gives about 95%.")


@dataclass(frozen=True)
class ChannelShift:
    """Per-channel mean shift of a set of images and its standard error (over ``n`` images)."""

    mean: tuple[float, float, float]
    se: tuple[float, float, float]
    n: int

    def interval(self, c: int, z: float = 2.0) -> tuple[float, float]:
        """``mean +- z s.e.`` for channel ``c`` (z = 2: about 95% for a mean of many images)."""
        z = _check_z(z, "ChannelShift.interval")
        if isinstance(c, bool) or c not in (0, 1, 2):
            raise ValueError(f"ChannelShift.interval: c is a channel, 0 (red), 1 (green) or 2 (blue), got {c!r}.")
        return self.mean[c] - z * self.se[c], self.mean[c] + z * self.se[c]

    def excludes_zero(self, c: int, z: float = 2.0) -> bool:
        """Whether channel ``c``'s shift is more than ``z`` standard errors from zero."""
        lo, hi = self.interval(c, z)
        return lo > 0 or hi < 0

    def describe(self, z: float = 2.0) -> str:
        """'red +0.031 +- 0.024, green ...': the shift of each channel with z standard errors."""
        z = _check_z(z, "ChannelShift.describe")
        return ", ".join(f"{name} {m:+.3f} +- {z * s:.3f}" for name, m, s in zip(CHANNELS, self.mean, self.se))


def channel_means(images: torch.Tensor) -> torch.Tensor:
    """(N, 3) mean of each float image's red, green and blue pixels."""
    check_image_batch(images, "channel_means")
    return images.float().mean(dim=(2, 3))


def _mean_and_se(values: torch.Tensor, where: str) -> ChannelShift:
    n = values.shape[0]
    if n < 2:
        raise ValueError(f"{where}: a standard error needs at least 2 images, got {n}: pass more samples.")
    mean, se = mean_se(values, z=1.0, dim=0, where=where)
    return ChannelShift(tuple(float(v) for v in mean), tuple(float(v) for v in se), n)


def shift_from(images: torch.Tensor, reference_mean) -> ChannelShift:
    """The images' per-channel mean minus ``reference_mean`` (three numbers, e.g. the training data's),
    with the standard error over the images. The reference is taken as exact: it comes from thousands of
    images, the samples from a few dozen."""
    ref = torch.as_tensor(check_channel_values(reference_mean, "shift_from"), dtype=torch.float32)
    return _mean_and_se(channel_means(images) - ref, "shift_from")


def paired_shift(images_a: torch.Tensor, images_b: torch.Tensor) -> ChannelShift:
    """The per-channel mean of ``images_a`` minus that of ``images_b``, image by image (the same seeds in the
    same order), with the standard error of the paired differences."""
    if images_a.shape != images_b.shape:
        raise ValueError(f"paired_shift: the sets differ in shape, {tuple(images_a.shape)} and {tuple(images_b.shape)}: "
                         "pass the same seeds, in the same order, from both weights.")
    return _mean_and_se(channel_means(images_a) - channel_means(images_b), "paired_shift")


def shift_bound_from_stats(stats: dict, n: int, reference_mean) -> ChannelShift:
    """A set's shift from ``reference_mean`` when only its pooled statistics are recorded
    (:func:`pegasus_course.evaluation.colour_stats` over all pixels of ``n`` images), not the images.

    The standard error is an upper bound: the variance of the images' channel means is at most the variance
    of all their pixels (the rest is the spread within each image), so s.e. <= std / sqrt(n - 1)."""
    from .checks import check_positive_int

    n = check_positive_int(n, "shift_bound_from_stats: n", minimum=2)
    if not (isinstance(stats, dict) and all(len(stats.get(k, ())) == 3 for k in ("mean", "std"))):
        raise ValueError("shift_bound_from_stats: stats must be colour_stats(images), a dict of three 'mean' and "
                         f"three 'std' values (red, green, blue), got {stats!r:.120}.")
    ref = check_channel_values(reference_mean, "shift_bound_from_stats")
    return ChannelShift(tuple(float(m) - r for m, r in zip(stats["mean"], ref)),
                        tuple(float(s) / (n - 1) ** 0.5 for s in stats["std"]), n)
