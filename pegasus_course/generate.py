"""From a trained score network to images: schedules, samples and pegasus rows from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from . import sigmas as sig
from .checks import check_k, check_positive_int, check_seeds
from .interpolation import interpolate, sample_seeds
from .sample_cache import SAMPLES_ENV, default_cache, sample_key, weights_hash


@dataclass(frozen=True)
class Schedule:
    """The noise levels and Langevin settings used to sample."""

    sigma_max: float = 50.0
    sigma_min: float = 0.01
    num_scales: int = 232
    n_steps_each: int = 5

    def __post_init__(self):  # their order is checked where the levels are made (sigmas()), after a caller's own check
        from .checks import check_number

        for name in ("sigma_max", "sigma_min"):
            object.__setattr__(self, name, check_number(getattr(self, name), f"Schedule: {name}", positive=True))
        object.__setattr__(self, "num_scales", check_positive_int(self.num_scales, "Schedule: num_scales (L)", 2))
        object.__setattr__(self, "n_steps_each", check_positive_int(self.n_steps_each, "Schedule: n_steps_each (T)"))

    def sigmas(self) -> torch.Tensor:
        return sig.geometric_sigmas(self.sigma_max, self.sigma_min, self.num_scales)

    def step_lr(self) -> float:
        """eps from NCSNv2 technique 4 for this schedule and T."""
        return sig.langevin_step_size(self.sigmas(), self.n_steps_each)

    def to_dict(self) -> dict:
        return {"sigma_max": self.sigma_max, "sigma_min": self.sigma_min, "num_scales": self.num_scales}


PAPER_SCHEDULE = {"sigma_max": 50.0, "sigma_min": 0.01, "num_scales": 232}  # CIFAR-10's, the fallback


def schedule_from_meta(meta: dict, n_steps_each: int = 5, num_scales: int | None = None,
                       say: Callable[[str], None] | None = print) -> Schedule:
    """The training schedule stored in a checkpoint, with T (and optionally a coarser L) for sampling.

    A checkpoint that records no schedule (or only part of one) was not written by `train`; the paper's
    CIFAR-10 values fill the gap, and ``say`` names that fallback (pass ``say=None`` to keep quiet).
    """
    s = meta.get("schedule") or {}
    missing = [k for k in PAPER_SCHEDULE if k not in s and not (k == "num_scales" and num_scales is not None)]
    if missing and say is not None:
        say(f"note: the checkpoint records no {', '.join(missing)}: using the paper's CIFAR-10 value"
            f"{'s' if len(missing) > 1 else ''} ({', '.join(f'{k} = {PAPER_SCHEDULE[k]:g}' for k in missing)}). If the "
            "network was trained on other noise levels its samples will be wrong: sample a checkpoint from `train`.")
    return Schedule(float(s.get("sigma_max", PAPER_SCHEDULE["sigma_max"])),
                    float(s.get("sigma_min", PAPER_SCHEDULE["sigma_min"])),
                    int(num_scales if num_scales is not None else s.get("num_scales", PAPER_SCHEDULE["num_scales"])),
                    n_steps_each)


def model_score_fn(model: torch.nn.Module, autocast_bf16: bool = False, precision: str | None = None):
    """Wrap a network as a score_fn(x, sigma) -> float32 score.

    Float32 unless asked: ``precision`` "bf16" or "fp16" autocasts on the input's device (checked by
    :func:`pegasus_course.device.sampling_precision`: no emulated bf16 on GPUs without it), "auto" takes
    the package samplers' choice; ``autocast_bf16=True`` is the older spelling of bf16 on CUDA.
    """
    from .device import autocast, sampling_precision

    chosen = {}

    def score_fn(x, sigma):
        if x.device.type not in chosen:
            asked = precision or ("bf16" if autocast_bf16 and x.device.type == "cuda" else "fp32")
            chosen[x.device.type] = sampling_precision(x.device, asked)
        with autocast(x.device.type, chosen[x.device.type]):
            return model(x, sigma).float()

    return score_fn


@dataclass(frozen=True)
class Guidance:
    """Classifier guidance for sampling: add ``scale`` * grad log p(class | x, sigma) to the score.

    ``guided_score``, when given, computes the guided score instead of the package: a function
    ``(score_fn, classifier, x, sigma, y, scale) -> score`` with one class index per image in ``y``, such
    as notebook 07's exercise. It is called under ``torch.no_grad()``, as every score function of a sampler.
    """

    classifier: torch.nn.Module
    scale: float = 3.0
    guided_score: Callable | None = None

    def __post_init__(self):
        from .checks import check_number

        check_number(self.scale, "Guidance: scale (the guidance scale)", hint="3 is the course's default.")

    def score_fn(self, score_fn, targets):
        from .classifier import guided_score_fn

        if self.guided_score is None:
            return guided_score_fn(score_fn, self.classifier, targets, self.scale)
        y = torch.as_tensor(targets)
        if y.ndim != 1:
            raise ValueError("Guidance(guided_score=...) takes one class index per image; the mixed targets of a "
                             "guided pegasus row need the package's guidance (guided_score=None).")
        fn, classifier, scale = self.guided_score, self.classifier, float(self.scale)
        return lambda x, sigma: fn(score_fn, classifier, x, sigma, y.to(x.device), scale)

    def index(self, name: str) -> int:
        from .classifier import class_index

        return class_index(self.classifier, name)


def sampling_score_fn(model: torch.nn.Module, batch: int, graphs: bool | None = None):
    """The model's score_fn for sampling batches of ``batch`` images, in the package's sampling precision
    (:func:`pegasus_course.device.sampling_precision`: bf16 autocast on a CPU with native bf16, else float32):
    a replayed CUDA graph on CUDA (``graphs=None`` means "on CUDA"; see
    :func:`~pegasus_course.sampling.cuda_graph_score_fn`), else eager."""
    from .sampling import cuda_graph_score_fn

    score = model_score_fn(model, precision="auto")
    device = next(model.parameters()).device
    if graphs is False or (graphs is None and device.type != "cuda"):
        return score
    size = model.config.image_size
    example = torch.zeros(batch, model.config.in_channels, size, size, device=device)
    return cuda_graph_score_fn(score, example, torch.ones(batch, device=device))


def _score_fns(model: torch.nn.Module, graphs: bool | None, guidance: Guidance | None):
    """``score_for(batch)``: the unguided sampling score_fn for a batch size, made (and graph-captured) once per
    size; with guidance, the plain eager score_fn that guidance wraps."""
    made: dict[int, object] = {}

    def score_for(batch: int):
        if guidance is not None:
            return model_score_fn(model, precision="auto")  # the precision the sample cache is keyed on
        if batch not in made:
            made[batch] = sampling_score_fn(model, batch, graphs)
        return made[batch]

    return score_for


@torch.no_grad()
def generate(model: torch.nn.Module, seeds, schedule: Schedule, *, denoise: bool = True, progress: bool = True,
             batch_size: int = 256, guidance: Guidance | None = None, classes: Sequence[str] | None = None,
             graphs: bool | None = None, cache: bool | None = None) -> torch.Tensor:
    """Samples for the given seeds (each reproducible alone), clamped to [0, 1], on the model's device.

    With ``guidance`` and ``classes`` (one class name per seed) each sample is guided towards its class.
    On CUDA the network is replayed as a CUDA graph (``graphs=False`` turns that off; guided sampling,
    which differentiates a classifier, is always eager). ``cache`` (None: on unless
    ``PEGASUS_CACHE_SAMPLES=0``) reads the samples computed before from the sample cache
    (:mod:`pegasus_course.sample_cache`) and stores the new ones; a ``Guidance(guided_score=...)`` of
    your own is never cached.
    """
    seeds = check_seeds(seeds, "generate")
    batch_size = check_positive_int(batch_size, "generate: batch_size")
    if guidance is not None and (classes is None or len(classes) != len(seeds)):
        raise ValueError("Guided sampling needs one class name per seed (classes=[...]).")
    store = _cache_for(guidance, cache)
    if store is None:
        return _generate_fresh(model, seeds, schedule, denoise, progress, batch_size, guidance, classes, graphs)
    size = model.config.image_size
    base = _key_fields(model, schedule, denoise, guidance)
    keys = [sample_key(**base, kind="sample", seed=s,
                       target=None if guidance is None else [classes[i], guidance.index(classes[i])])
            for i, s in enumerate(seeds)]
    found = [store.get(key, (3, size, size)) for key in keys]
    todo = [i for i, image in enumerate(found) if image is None]
    out = torch.empty(len(seeds), 3, size, size, device=next(model.parameters()).device)
    for i, image in enumerate(found):
        if image is not None:
            out[i] = image
    if todo:
        fresh = _generate_fresh(model, [seeds[i] for i in todo], schedule, denoise, progress, batch_size, guidance,
                                None if classes is None else [classes[i] for i in todo], graphs)
        out[todo] = fresh
        _store(store, [keys[i] for i in todo], fresh)
    _report(store, len(seeds) - len(todo), len(seeds), progress)
    return out


def _generate_fresh(model, seeds: list[int], schedule: Schedule, denoise: bool, progress: bool, batch_size: int,
                    guidance: Guidance | None, classes, graphs: bool | None) -> torch.Tensor:
    """:func:`generate`'s sampling itself, in batches of ``batch_size``, without the cache."""
    device = next(model.parameters()).device
    size = model.config.image_size
    out = []
    eps = schedule.step_lr()
    score_for = _score_fns(model, graphs, guidance)
    for start in range(0, len(seeds), batch_size):
        score = score_for(len(seeds[start:start + batch_size]))
        if guidance is not None:
            score = guidance.score_fn(score, [guidance.index(c) for c in classes[start:start + batch_size]])
        out.append(sample_seeds(score, seeds[start:start + batch_size], schedule.sigmas(),
                                schedule.n_steps_each, eps, image_shape=(3, size, size), denoise=denoise,
                                device=device, progress=progress))
    return _finite_samples(torch.cat(out), "generate", guidance).clamp(0, 1)


def _cache_for(guidance: Guidance | None, cache: bool | None):
    """The sample cache to consult, or None: guidance through a learner's own ``guided_score`` never is."""
    if guidance is not None and guidance.guided_score is not None:
        return None
    return default_cache(cache)


def _key_fields(model: torch.nn.Module, schedule: Schedule, denoise: bool, guidance: Guidance | None) -> dict:
    """What every image of one call shares in its cache key: weights, levels, T, eps, the precision the
    score function resolves to, the device type, the image shape and the guidance."""
    from .device import sampling_precision

    device = next(model.parameters()).device
    size = model.config.image_size
    fields = {"weights": weights_hash(model), "sigmas": schedule.sigmas(), "T": schedule.n_steps_each,
              "eps": float(schedule.step_lr()), "denoise": bool(denoise), "device": device.type,
              "precision": sampling_precision(device, None).name, "shape": [3, size, size],
              "torch": torch.__version__, "guidance": None}
    if guidance is not None:
        fields["guidance"] = {"scale": float(guidance.scale), "classifier": weights_hash(guidance.classifier)}
    return fields


def _store(store, keys: list[str], images: torch.Tensor) -> None:
    for key, image in zip(keys, images):
        store.put(key, image, evict=False)
    store.evict()


def _report(store, loaded: int, total: int, progress: bool) -> None:
    """The one line that says the cache was used, where it lives and how to turn it off."""
    if progress:
        computed = f", computed {total - loaded}" if loaded < total else ""
        failed = f" (could not store them: {store.failed})" if store.failed and loaded < total else ""
        print(f"sample cache: loaded {loaded} of {total} images from {store.where}{computed}{failed} "
              f"({SAMPLES_ENV}=0 recomputes)")


def _finite_samples(x: torch.Tensor, where: str, guidance: Guidance | None) -> torch.Tensor:
    """``x`` when every sample is finite; else a FloatingPointError, so that no NaN image is saved as black."""
    bad = ~torch.isfinite(x.reshape(-1, *x.shape[-3:]).flatten(1)).all(1)
    if bool(bad.any()):
        cause = (f"the guidance scale {guidance.scale:g} overflows float32: lower it (--guidance-scale; 3 is the "
                 "default)" if guidance is not None else "the network's scores overflowed: examine the checkpoint "
                 "with `pegasus-course doctor`")
        raise FloatingPointError(f"{where}: {int(bad.sum())} of {len(bad)} samples hold NaN or infinite values "
                                 f"({cause}); nothing is saved from them.")
    return x


def colour_probe(schedule: Schedule, seeds: Sequence[int]):
    """A ``sample_fn`` for :class:`~pegasus_course.evaluation.ColourTracker`: one sampling run per call,
    returning the samples before and after the final denoising step (both clamped to [0, 1])."""
    from .sampling import SeededNoise, iter_annealed_langevin

    seeds = list(seeds)

    @torch.no_grad()
    def sample_fn(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        was_training = model.training
        model.eval()
        size = model.config.image_size
        last = None
        for state in iter_annealed_langevin(model_score_fn(model), (len(seeds), 3, size, size), schedule.sigmas(),
                                            schedule.n_steps_each, schedule.step_lr(), denoise=True,
                                            noise=SeededNoise(seeds), device=next(model.parameters()).device,
                                            progress=False):
            if state.level == schedule.num_scales:
                denoised = state.x
            else:
                last = state.x
        model.train(was_training)
        return {"without denoising": last.clamp(0, 1).cpu(), "denoised": denoised.clamp(0, 1).cpu()}

    return sample_fn


def pegasus_rows(model: torch.nn.Module, pairs, n: int, schedule: Schedule, *, denoise: bool = True,
                 progress: bool = True, guidance: Guidance | None = None,
                 ends: tuple[str, str] = ("horse", "bird"), batch_size: int = 256, graphs: bool | None = None,
                 cache: bool | None = None) -> torch.Tensor:
    """Interpolation rows (pairs, n + 2, 3, H, W) between seeded ends (eq. 4), clamped to [0, 1].

    With ``guidance`` the first end is guided towards ``ends[0]`` and the last towards ``ends[1]``;
    see :func:`pegasus_batch` (and its ``cache``).
    """
    n = check_positive_int(n, "pegasus_rows: n (N of eq. 4)")
    return pegasus_batch(model, pairs, n, range(n + 2), schedule, denoise=denoise, progress=progress,
                         guidance=guidance, ends=ends, batch_size=batch_size, graphs=graphs, cache=cache)


def pegasus_k(image_size: int) -> int:
    """The paper's chosen interpolant: k = 9 of N = 15 for 32x32, k = 11 of 15 for STL-10 sizes."""
    check_positive_int(image_size, "pegasus_k: image_size")
    return 9 if image_size <= 32 else 11


def interpolant_targets(ks, n: int, num_pairs: int, first: int, second: int, num_classes: int) -> torch.Tensor:
    """Guidance weights (pairs * len(ks), K) for interpolation rows: interpolant k asks for ``first``
    with weight cos^2 and for ``second`` with weight sin^2 of k pi / (2(n + 1)), the squares of eq. 4's
    weights, so k = 0 is guided exactly like a lone ``first`` sample and k = n + 1 like a ``second``."""
    from .interpolation import mix_weights

    c, s = mix_weights(torch.as_tensor(list(ks)), n)
    bad = [c_ for c_ in (first, second) if not 0 <= c_ < num_classes]
    if bad:
        raise ValueError(f"interpolant_targets: class indices are 0..{num_classes - 1}, got {bad[0]}: use "
                         "classifier.class_index(model, name).")
    w = torch.zeros(len(c), num_classes, dtype=torch.float64)
    w[:, first] += c**2
    w[:, second] += s**2
    return w.float().repeat(num_pairs, 1)


@torch.no_grad()
def pegasus_batch(model: torch.nn.Module, pairs, n: int, ks, schedule: Schedule, *, denoise: bool = True,
                  progress: bool = True, guidance: Guidance | None = None,
                  ends: tuple[str, str] = ("horse", "bird"), batch_size: int = 256, graphs: bool | None = None,
                  cache: bool | None = None, mix: str = "eq4") -> torch.Tensor:
    """Only the interpolants ``ks`` of each pair's row, (pairs, len(ks), 3, H, W): cheaper than whole rows.

    ``mix`` is how the two tapes are mixed (``interpolation.MIXES``): eq. 4's, or ``"linear"`` for comparison.

    With ``guidance``, interpolant k is guided towards ``ends[0]`` and ``ends[1]`` with the weights
    of :func:`interpolant_targets`: the row starts at a guided horse and ends at a guided bird.
    At most ``batch_size`` images go through the network at once (whole rows when they fit, else
    pieces of a row), so memory does not grow with N or the number of pairs; every interpolant's
    noise depends on its pair's seeds and its k only, so the split does not change the images.
    ``cache`` as for :func:`generate`: each (pair, k) found in the sample cache is read, not sampled.
    """
    size = model.config.image_size
    pairs = [tuple(check_seeds(p, "pegasus_batch: each pair", count=2)) for p in pairs]
    ks = list(ks)
    if not pairs or not ks:
        raise ValueError(f"pegasus_batch: no {'pairs' if not pairs else 'interpolants (ks)'} given: pass at least one "
                         "pair of seeds and one k (0..n + 1).")
    check_k(ks, n, "pegasus_batch")
    batch_size = check_positive_int(batch_size, "batch_size")
    from .interpolation import MIXES

    if mix not in MIXES:
        raise ValueError(f"pegasus_batch: mix {mix!r} is not one of {', '.join(MIXES)} (eq4 is the paper's).")
    store = _cache_for(guidance, cache)
    if store is None:
        return _pegasus_fresh(model, pairs, n, ks, schedule, denoise, progress, guidance, ends, batch_size, graphs,
                              mix)
    base = _key_fields(model, schedule, denoise, guidance)
    if guidance is not None:
        base["ends"] = [[e, guidance.index(e)] for e in ends]
    keys = [[sample_key(**base, kind="pegasus", pair=list(p), k=int(k), n=int(n), mix=mix) for k in ks]
            for p in pairs]
    out = torch.empty(len(pairs), len(ks), 3, size, size, device=next(model.parameters()).device)
    missing: dict[tuple[int, ...], list[int]] = {}  # the ks (positions) a pair lacks -> those pairs
    for a, row in enumerate(keys):
        lacks = []
        for b, key in enumerate(row):
            image = store.get(key, (3, size, size))
            if image is None:
                lacks.append(b)
            else:
                out[a, b] = image
        if lacks:
            missing.setdefault(tuple(lacks), []).append(a)
    for lacks, rows in missing.items():  # pairs lacking the same ks are sampled together, batched as ever
        fresh = _pegasus_fresh(model, [pairs[a] for a in rows], n, [ks[b] for b in lacks], schedule, denoise,
                               progress, guidance, ends, batch_size, graphs, mix)
        for i, a in enumerate(rows):
            out[a, list(lacks)] = fresh[i]
        _store(store, [keys[a][b] for a in rows for b in lacks], fresh.flatten(0, 1))
    computed = sum(len(lacks) * len(rows) for lacks, rows in missing.items())
    _report(store, out.shape[0] * out.shape[1] - computed, out.shape[0] * out.shape[1], progress)
    return out


def _pegasus_fresh(model, pairs: list[tuple[int, int]], n: int, ks: list[int], schedule: Schedule, denoise: bool,
                   progress: bool, guidance: Guidance | None, ends: tuple[str, str], batch_size: int,
                   graphs: bool | None, mix: str = "eq4") -> torch.Tensor:
    """:func:`pegasus_batch`'s sampling itself, in batches of at most ``batch_size`` images, without the cache."""
    size = model.config.image_size
    device = next(model.parameters()).device
    out = torch.empty(len(pairs), len(ks), 3, size, size, device=device)
    rows_per = max(1, batch_size // max(len(ks), 1))
    k_per = min(len(ks), batch_size)
    score_for = _score_fns(model, graphs, guidance)
    for a in range(0, len(pairs), rows_per):
        chunk = pairs[a:a + rows_per]
        for b in range(0, len(ks), k_per):
            kc = ks[b:b + k_per]
            score = score_for(len(chunk) * len(kc))
            if guidance is not None:
                k = guidance.classifier.config.num_classes
                score = guidance.score_fn(score, interpolant_targets(kc, n, len(chunk), guidance.index(ends[0]),
                                                                     guidance.index(ends[1]), k))
            out[a:a + len(chunk), b:b + len(kc)] = interpolate(
                score, chunk, n, schedule.sigmas(), schedule.n_steps_each, schedule.step_lr(),
                image_shape=(3, size, size), denoise=denoise, device=device, progress=progress, ks=kc, mix=mix)
    return _finite_samples(out, "pegasus_batch", guidance).clamp(0, 1)
