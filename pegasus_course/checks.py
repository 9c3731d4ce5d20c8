"""Input checks shared by the package's public functions: one clear message per common mistake.

Each check says what was expected and what to do. Value checks (positive, finite, in range)
read tensors on the host only when they already live there, so a check never forces a
GPU synchronisation inside a training or sampling loop.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch


def _on_host(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def check_sigmas(sigmas, where: str, *, descending: bool = False) -> torch.Tensor:
    """Noise levels as a 1-D tensor: positive and finite, and largest first if ``descending``.

    Raises ValueError naming ``where`` and the first offending value.
    """
    s = torch.as_tensor(sigmas)
    if not (s.is_floating_point()):
        s = s.to(torch.float64)
    if s.ndim > 1:
        raise ValueError(f"{where}: the noise levels must be a 1-D tensor (L,), got shape {tuple(s.shape)}.")
    if _on_host(s) and s.numel():
        bad = ~torch.isfinite(s) | (s <= 0)
        if bool(bad.any()):
            i = int(torch.nonzero(bad.flatten())[0])
            raise ValueError(f"{where}: every noise level must be positive and finite, but level {i} is "
                             f"{float(s.flatten()[i])!r}. Build the schedule with sigmas.geometric_sigmas.")
        if descending and s.ndim == 1 and s.numel() > 1 and bool((s[1:] > s[:-1]).any()):
            raise ValueError(f"{where}: the noise levels must come largest first (annealing goes from sigma_1 "
                             f"down to sigma_L), got {s[:3].tolist()}...; pass sigmas.flip(0).")
    return s


def check_image_batch(x: torch.Tensor, where: str, channels: int = 3, size: int | None = None) -> None:
    """A float batch (B, C, H, W): names the fix for uint8 input, NHWC layout and a wrong image size."""
    if not torch.is_tensor(x):
        raise TypeError(f"{where}: expected a torch.Tensor of images (B, {channels}, H, W), got {type(x).__name__}.")
    if x.dtype == torch.uint8 or not x.is_floating_point():
        raise TypeError(f"{where}: expected float images, got {x.dtype}. Convert 0-255 integers with "
                        "classifier.as_float_images(images) (it divides by 255).")
    if x.ndim != 4:
        raise ValueError(f"{where}: expected a batch of images (B, {channels}, H, W), got shape {tuple(x.shape)}"
                         + (" (add the batch axis: x[None])" if x.ndim == 3 else "") + ".")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty (0 images, shape {tuple(x.shape)}): pass at least one image.")
    if x.shape[1] != channels:
        hint = (" It looks like channels-last (NHWC): use x.permute(0, 3, 1, 2)." if x.shape[-1] == channels else "")
        raise ValueError(f"{where}: expected {channels} channels on axis 1 (B, C, H, W), got shape "
                         f"{tuple(x.shape)}.{hint}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"{where}: expected {size}x{size} images, got {x.shape[-2]}x{x.shape[-1]}. Resize them "
                         f"(data.load_dataset(..., image_size={size})) or use a model made for this size.")


def check_unit_images(x: torch.Tensor, where: str, channels: int = 3, size: int | None = None) -> None:
    """Images that must be floats in [0, 1] (what the samplers return and the classifiers were trained on)."""
    check_image_batch(x, where, channels, size)
    if _on_host(x) and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if hi > 1.5 or lo < -0.5:
            raise ValueError(f"{where}: expected images in [0, 1], got values from {lo:.3g} to {hi:.3g}. "
                             "Scale 0-255 images with classifier.as_float_images(images), or clamp(0, 1) samples.")


SAVE_SLACK = 0.1  # a sampler's overshoot past [0, 1] that saving clamps; farther out the images are in another range


def check_savable_images(images: torch.Tensor, where: str) -> torch.Tensor:
    """Images to write as pictures: floats in [0, 1] on the CPU from uint8 or float (B, C, H, W) images, whose
    overshoot up to ``SAVE_SLACK`` is clamped; 0-255 floats, [-1, 1] images and NaN, which clamping would save
    silently wrong, are refused with their fix."""
    if not torch.is_tensor(images):
        raise TypeError(f"{where}: expected a tensor of images (B, 3, H, W), got {type(images).__name__}.")
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    check_image_batch(images, where, channels=images.shape[1] if images.ndim == 4 and images.shape[1] in (1, 3) else 3)
    check_unit_range(images, where, slack=SAVE_SLACK)
    return images.float().clamp(0, 1)


def check_seeds(seeds, where: str, count: int | None = None) -> list[int]:
    """Seeds as a list of non-negative Python ints (NumPy integers accepted), ``count`` of them if given."""
    if torch.is_tensor(seeds):
        if seeds.is_floating_point():
            raise TypeError(f"{where}: seeds must be integers, got a {seeds.dtype} tensor.")
        seeds = seeds.flatten().tolist()
    elif isinstance(seeds, numbers.Integral):
        raise TypeError(f"{where}: pass a list of seeds, e.g. [{int(seeds)}] or range({int(seeds)}), not one int.")
    out = []
    for s in list(seeds):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"{where}: seeds must be integers, got {s!r} ({type(s).__name__}).")
        if int(s) < 0:
            raise ValueError(f"{where}: seeds must be non-negative, got {int(s)}.")
        if int(s) > MAX_SEED:
            raise ValueError(f"{where}: seeds must be at most 2^63 - 1 = {MAX_SEED} (they are int64), got {int(s)}.")
        out.append(int(s))
    if count is not None and len(out) != count:
        raise ValueError(f"{where}: expected {count} seed(s), got {len(out)}.")
    if not out:
        raise ValueError(f"{where}: no seeds given (an empty batch): pass at least one seed, e.g. range(4).")
    return out


MAX_SEED = 2**63 - 1  # seeds are stored as int64
MAX_LR = 1e6  # Adam's steps are about lr in size; far beyond this its step overflows float32

# Sizes the command line accepts, and so the sizes a checkpoint's metadata may record (checked when it is
# read: a recorded L of 10^8 is refused at once, not sampled for thousands of hours).
MAX_NUM_SCALES = 10_000  # L: the paper uses 232 (CIFAR-10); every level costs T network evaluations per sample
MAX_STEPS_EACH = 10_000  # T: the paper uses 5 (NCSNv1 100); every step is one network evaluation per level
MAX_WIDTH = 1024  # the network's base width; the paper's CIFAR-10 network uses 128
MAX_RES_BLOCKS = 16  # ResBlocks per level; the paper uses 2
MAX_IMAGE_SIZE = 512  # image side in pixels; the course trains at 32, 48 and 64


def check_score_shape(score: torch.Tensor, x: torch.Tensor, where: str) -> torch.Tensor:
    """A score_fn's output must have its input's shape (a score is a gradient of log p in x's space);
    broadcasting a (B,) or (C, H, W) output would give a silently wrong loss or sample. Reads shapes only."""
    if not torch.is_tensor(score) or tuple(score.shape) != tuple(x.shape):
        got = tuple(score.shape) if torch.is_tensor(score) else type(score).__name__
        raise ValueError(f"{where}: score_fn returned {got} for an input of shape {tuple(x.shape)}: a score has "
                         "its input's shape, one value per pixel (s(x, sigma) = grad_x log p_sigma(x)).")
    return score


def check_labels(labels, n: int, where: str) -> torch.Tensor:
    """Integer class labels, one per image: a (n,) tensor."""
    t = torch.as_tensor(labels)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"{where}: labels must be integer class indices, got {t.dtype}.")
    if tuple(t.shape) != (n,):
        raise ValueError(f"{where}: expected one label per image, shape ({n},), got {tuple(t.shape)}: the labels do "
                         "not match the images.")
    return t.long()


def check_class_names(classes, where: str) -> tuple[str, ...]:
    """Class names as a tuple: one string is one class ('horse bird' is named as a likely slip), at least one, each a
    non-empty string, none twice."""
    names = (classes,) if isinstance(classes, str) else tuple(classes)
    if not names:
        raise ValueError(f"{where}: no class names: name at least one, e.g. ('horse', 'bird') (--classes horse bird).")
    odd = [c for c in names if not isinstance(c, str) or not c.strip() or (isinstance(classes, str) and " " in c)]
    if odd:
        example = tuple(odd[0].split()) if isinstance(odd[0], str) and odd[0].strip() else ("horse", "bird")
        raise ValueError(f"{where}: class names must be non-empty strings without spaces, one per class, e.g. "
                         f"{example}; got {odd[0]!r} in {list(names)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: class names must be distinct, got {list(names)}: name each class once.")
    return names


def check_class_labels(labels, n: int, names: Sequence[str], where: str) -> torch.Tensor:
    """Integer labels, one per image, each a class index 0..len(names) - 1 (one beyond would count as wrong)."""
    labels = check_labels(labels, n, where)
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < len(names):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ValueError(f"{where}: labels are class indices 0..{len(names) - 1} ({', '.join(map(str, names))}), got "
                         f"{bad}: relabel them in the class order.")
    return labels


def check_positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (NumPy integers accepted) of at least ``minimum`` (and at most ``maximum`` if given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if int(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {int(value)}.")
    if maximum is not None and int(value) > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {int(value)}.")
    return int(value)


def check_seed(seed, where: str) -> int:
    """One seed: a non-negative Python or NumPy integer of at most 2^63 - 1 (seeds are int64)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{where}: a seed must be a whole number such as 0 or 1234, got {seed!r} "
                        f"({type(seed).__name__}).")
    return check_seeds([seed], where)[0]


def _as_float(value, name: str) -> float:
    """A Python float from a real number, a NumPy scalar or a one-element tensor; TypeError otherwise."""
    if torch.is_tensor(value) and value.numel() == 1 and not value.is_complex():
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    return float(value)


def check_number(value, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 positive: bool = False, hint: str = "") -> float:
    """A finite real number, positive if asked, within [minimum, maximum] where given; returns it as a float.

    One message names the value, the range it must lie in and (``hint``) what to do."""
    x = _as_float(value, name)
    bounds = []
    if positive:
        bounds.append("> 0")
    if minimum is not None:
        bounds.append(f">= {minimum:g}")
    if maximum is not None:
        bounds.append(f"<= {maximum:g}")
    ok = (math.isfinite(x) and (not positive or x > 0) and (minimum is None or x >= minimum)
          and (maximum is None or x <= maximum))
    if not ok:
        want = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
        raise ValueError(f"{name} must be {want}, got {x!r}." + (f" {hint}" if hint else ""))
    return x


def check_open_unit(value, name: str, hint: str = "") -> float:
    """A finite number strictly between 0 and 1 (a confidence level, a threshold on a probability); returns it as a
    float. 0 and 1 are refused: an interval at level 1 is infinitely wide, a threshold of 0 or 1 splits nothing."""
    x = _as_float(value, name)
    if not (math.isfinite(x) and 0 < x < 1):
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {x!r}." + (f" {hint}" if hint else ""))
    return x


def check_unit_values(values, where: str, what: str = "p(horse)",
                      hint: str = "horse_probability gives them.") -> list[float]:
    """A sequence (or 1-D tensor) of finite numbers in [0, 1], e.g. probabilities along a row; returns floats."""
    seq = values.detach().cpu().reshape(-1).tolist() if torch.is_tensor(values) else list(values)
    xs = [_as_float(v, f"{where}: {what}") for v in seq]
    if not all(math.isfinite(x) and 0 <= x <= 1 for x in xs):
        raise ValueError(f"{where}: every {what} must be finite and in [0, 1], got {[round(x, 4) for x in xs[:6]]}."
                         + (f" {hint}" if hint else ""))
    return xs


def check_channel_values(values, where: str, what: str = "reference_mean",
                         hint: str = "e.g. colour_stats(images)['mean'].") -> list[float]:
    """Three finite numbers, one per colour channel (red, green, blue), from a list, a tuple, a tensor or an array."""
    if torch.is_tensor(values):
        values = values.detach().cpu().flatten().tolist()
    try:
        seq = [] if isinstance(values, (str, bytes, dict)) else list(values)
    except TypeError:
        seq = []
    if len(seq) != 3:
        raise ValueError(f"{where}: {what} must be three numbers, one per channel (red, green, blue), got "
                         f"{values!r:.80}. {hint}")
    return [check_number(v, f"{where}: {what}") for v in seq]


def check_sigma(sigma, where: str, allow_zero: bool = False,
                hint: str = "Pick a level of the schedule, e.g. float(sigmas[i]).") -> float:
    """One noise level: positive and finite (0 allowed where it means clean images, ``allow_zero``)."""
    what = "a noise level" + (", 0 for clean images" if allow_zero else "")
    x = _as_float(sigma, f"{where}: sigma")
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{where}: sigma must be {'0 or more' if allow_zero else 'positive'} and finite ({what}), "
                         f"got {x!r}. {hint}")
    return x


def check_finite_images(x: torch.Tensor, where: str) -> None:
    """No NaN or infinite pixel (drawn black or white, a picture silently wrong): refused with the count of images.
    Reads the values only when they are on the host."""
    if not (_on_host(x) and x.numel() and x.is_floating_point()):
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n = x.shape[0] if x.ndim == 4 else 1
        bad = int((~finite.reshape(n, -1)).any(1).sum())
        raise ValueError(f"{where}: {bad} of {n} image{'s' if n > 1 else ''} hold{'s' if n == 1 else ''} NaN or "
                         "infinite values (they would be drawn black or white): find where they turned non-finite "
                         "(the sampler, its step size, the guidance scale).")


def check_unit_range(x: torch.Tensor, where: str, slack: float = 0.0) -> None:
    """Float images finite and within [-slack, 1 + slack]: 0-255 and [-1, 1] images and NaN are named, each with
    its fix. Reads the values only when they are on the host (no GPU synchronisation)."""
    if not (_on_host(x) and x.numel() and x.is_floating_point()):
        return
    check_finite_images(x, where)
    lo, hi = float(x.min()), float(x.max())
    if lo >= -slack and hi <= 1 + slack:
        return
    if hi > 2:
        fix = ("0-255 images? Divide them by 255 (classifier.as_float_images(images) does it for uint8), or pass "
               "the uint8 tensor itself")
    elif lo < -0.5:
        fix = "[-1, 1] images? Map them to [0, 1] with (images + 1) / 2"
    else:
        fix = "clamp samples first: images.clamp(0, 1)"
    raise ValueError(f"{where}: expected images in [0, 1], got values from {lo:.3g} to {hi:.3g}. {fix}.")


def check_k(k, n: int, where: str = "mix_weights") -> None:
    """Eq. 4's interpolant index: a whole number 0 <= k <= n + 1 for n >= 1 interpolants (one k or several)."""
    check_positive_int(n, f"{where}: n (the number of interpolants)")
    if isinstance(k, bool) or (torch.is_tensor(k) and k.dtype == torch.bool):
        raise TypeError(f"{where}: k must be a whole number in 0..n + 1 = 0..{n + 1}, got {k!r}.")
    try:
        ks: Sequence = torch.as_tensor(k).flatten().tolist()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{where}: k must be a whole number in 0..n + 1 = 0..{n + 1} (or a list of them), "
                        f"got {k!r}.") from None
    bad = [v for v in ks if isinstance(v, bool) or not math.isfinite(v) or v < 0 or v > n + 1 or v != int(v)]
    if bad:
        raise ValueError(f"{where}: k must be a whole number in 0..n + 1 = 0..{n + 1} (0 and n + 1 are the two ends), "
                         f"got {bad[0]}.")


def check_shape(shape, where: str) -> tuple[int, ...]:
    """A sample shape (B, ...): positive whole numbers, at least the batch axis."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: shape must be a tuple such as (B, 3, 32, 32), got {shape!r}.") from None
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise ValueError(f"{where}: shape must be positive whole numbers (B, ...), e.g. (4, 3, 32, 32), got {shape!r}.")
    return tuple(int(d) for d in dims)


def check_probabilities(probs, where: str, class_names: Sequence[str] | None = None) -> torch.Tensor:
    """Class probabilities (B, K), one row per image and one column per class name, finite and in [0, 1]."""
    if not torch.is_tensor(probs):
        raise TypeError(f"{where}: probs must be a tensor (B, K) of class probabilities (classifier.predict_proba "
                        f"gives it), got {type(probs).__name__}.")
    k = len(class_names) if class_names is not None else None
    if probs.ndim != 2 or probs.shape[0] == 0 or (k is not None and probs.shape[1] != k):
        raise ValueError(f"{where}: probs must have one row per image and one column per class"
                         + (f" ({k}: {list(class_names)})" if k is not None else "") + f", shape (B, {k or 'K'}), "
                         f"got {tuple(probs.shape)}: pass the probabilities and the class names of one classifier.")
    if _on_host(probs):
        bad = ~torch.isfinite(probs) | (probs < 0) | (probs > 1)
        if bool(bad.any()):
            row = int(torch.nonzero(bad.any(1))[0])
            raise ValueError(f"{where}: probabilities must be finite and in [0, 1], but row {row} is "
                             f"{[round(v, 4) for v in probs[row].tolist()]}: classify finite images in [0, 1] "
                             "(logits need .softmax(-1)).")
    return probs


FLOAT32_EPS = float(torch.finfo(torch.float32).eps)  # 2^-23 = 1.19e-7: one float32 rounding, relative


def float32_tolerance(scale: float, evaluations: int = 1, roundings: int = 64) -> float:
    """How far two float32 computations of one quantity may drift apart when only the order of their
    arithmetic differs: another batch shape, the other SIMD kernel family (AVX-512 vs AVX2), another
    thread count. Each reordered reduction can move a result by about one rounding, ``FLOAT32_EPS`` times
    the magnitude it works at (``scale``: the largest value in play, e.g. sigma_1 for a sampler that starts
    at sigma_1 z). ``roundings`` such reductions may differ per evaluation of the network or score (64: the
    chain of convolutions, norms and attention sums of the course's U-Net, rounded up), and the
    errors of ``evaluations`` chained evaluations (a Langevin chain feeds each step to the next) add up at
    most linearly. Results that differ by more than this are computed differently, not just rounded
    differently.
    """
    if not (scale > 0 and evaluations >= 1 and roundings >= 1):
        raise ValueError("float32_tolerance: scale must be positive, evaluations and roundings at least 1.")
    return FLOAT32_EPS * float(scale) * int(roundings) * int(evaluations)
