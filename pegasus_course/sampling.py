"""Langevin dynamics and annealed Langevin dynamics (NCSN Alg. 1), with replayable noise.

Every Gaussian draw of a run goes through a *noise source*: ``source(index, shape,
device, dtype) -> z``. Draw 0 is the start z_0, draw ``1 + i * T + j`` is z_ij
(level i, step j). Two sources are provided:

* :class:`GeneratorNoise` draws from a ``torch.Generator`` in order (a seed
  reproduces the whole batch bit for bit on the same device);
* :class:`SeededNoise` gives every sample its own seed and computes each draw from
  (seed, index, element) with a counter-based hash: any draw of any sample can be
  recomputed alone, on CPU or CUDA, without storing anything. The pegasus
  interpolation (eq. 4) mixes two samples' draws this way
  (see :mod:`pegasus_course.interpolation`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import torch

from .checks import (check_number, check_positive_int, check_score_shape, check_seeds, check_shape, check_sigma,
                     check_sigmas)

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_M32 = 0xFFFFFFFF


class NoiseSource(Protocol):
    def __call__(self, index: int, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        ...


class GeneratorNoise:
    """Draws z ~ N(0, I) in order from ``generator`` (or torch's global generator when None)."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, index, shape, device, dtype):
        return torch.randn(tuple(shape), generator=self.generator, device=device, dtype=dtype)


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (lowbias32) on int64 tensors holding values in [0, 2^32)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


class SeededNoise:
    """Per-sample, counter-based Gaussian noise: draw ``index`` of sample b depends on (seeds[b], index) only.

    A sample generated alone from seed s and the same sample generated inside any batch
    receive identical draws, which is what makes a sample reproducible from its seed and
    lets the interpolation replay two samples' noise tapes.
    """

    def __init__(self, seeds: Sequence[int] | torch.Tensor):
        self.seeds = torch.as_tensor(check_seeds(seeds, "SeededNoise"), dtype=torch.int64).reshape(-1)
        self._elem_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._seed_keys: dict[str, torch.Tensor] = {}  # device -> the seeds' hashed keys, the same for every draw

    def _seed_key(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._seed_keys:
            seeds = self.seeds.to(device)
            self._seed_keys[key] = _hash32(_hash32(seeds & _M32) ^ _hash32((seeds >> 32) + 0x9E3779B9))  # (B,)
        return self._seed_keys[key]

    def _element_keys(self, numel: int, device: torch.device):
        key = (numel, str(device))
        if key not in self._elem_cache:
            e = torch.arange(numel, dtype=torch.int64, device=device)
            self._elem_cache[key] = (_hash32(2 * e), _hash32(2 * e + 1))
        return self._elem_cache[key]

    def __call__(self, index, shape, device, dtype):
        shape = tuple(shape)
        if shape[0] != self.seeds.numel():
            raise ValueError(f"SeededNoise holds {self.seeds.numel()} seeds but the batch has {shape[0]} samples.")
        numel = math.prod(shape[1:])
        key = _hash32(self._seed_key(device) + (index * 0x632BE5AB & _M32))[:, None]  # (B, 1)
        e1, e2 = self._element_keys(numel, device)
        h1 = _hash32(key ^ e1)  # (B, N)
        h2 = _hash32(key ^ e2)
        u1 = ((h1 >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)  # (0, 1), 24 bits
        u2 = (h2 >> 8).to(torch.float32) * (1.0 / 16777216.0)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)  # Box-Muller
        return z.reshape(shape).to(dtype)


class RecordingNoise:
    """Wraps a source and keeps every draw (index -> tensor), to look at a noise tape."""

    def __init__(self, inner: NoiseSource):
        self.inner = inner
        self.tape: dict[int, torch.Tensor] = {}

    def __call__(self, index, shape, device, dtype):
        z = self.inner(index, shape, device, dtype)
        self.tape[index] = z.detach().clone()
        return z


def record_tape(noise: NoiseSource, shape: Sequence[int], num_draws: int, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> dict[int, torch.Tensor]:
    """A whole noise tape without running a sampler: draws 0 .. num_draws - 1 of ``noise`` for ``shape``.

    For a seeded source this is exactly what a sampling run of that shape would draw
    (``num_draws = num_score_evaluations(L, T, denoise=False) + 1``: z_0 and every z_ij)."""
    device = torch.device(device)
    shape = check_shape(shape, "record_tape")
    num_draws = check_positive_int(num_draws, "record_tape: num_draws (z_0 and every z_ij: L * T + 1)")
    return {i: noise(i, shape, device, dtype) for i in range(num_draws)}


class TapeNoise:
    """Replays a tape (index -> tensor): a noise source whose draws were computed beforehand, e.g. mixed."""

    def __init__(self, tape: dict[int, torch.Tensor]):
        self.tape = tape

    def __call__(self, index, shape, device, dtype):
        if not self.tape:
            raise KeyError("the tape is empty: record one with sampling.record_tape(noise, shape, num_draws).")
        if index not in self.tape:
            raise KeyError(f"the tape has no draw {index} (it holds draws {min(self.tape)}..{max(self.tape)}): "
                           "record it with the same L and T as the run that replays it.")
        z = self.tape[index]
        if tuple(z.shape) != tuple(shape):
            raise ValueError(f"draw {index} of the tape has shape {tuple(z.shape)} but the run asks for {tuple(shape)}.")
        return z.to(device=device, dtype=dtype)


def progress_disabled(progress: bool) -> bool:
    """True when a bar should be hidden: ``progress=False`` or ``TQDM_DISABLE`` set (tests, CI)."""
    return (not progress) or _env_flag("TQDM_DISABLE")


def _env_flag(name: str) -> bool:
    """An environment switch is on unless unset, empty, 0 or false."""
    import os

    return os.environ.get(name, "").lower() not in ("", "0", "false")


TEXT_PROGRESS_ENV = "PEGASUS_TEXT_PROGRESS"


def progress_bar(iterable=None, *, progress: bool = True, **kwargs):
    """A tqdm bar, hidden by :func:`progress_disabled`. In Jupyter it is the widget bar; with
    ``PEGASUS_TEXT_PROGRESS=1`` (set by tools/run_notebooks.sh) a text bar on stderr, so that a notebook
    regenerated for the repository keeps each finished bar (how long the cell took) in its saved output."""
    if text_progress():
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, disable=progress_disabled(progress), **kwargs)


def text_progress() -> bool:
    """True when ``PEGASUS_TEXT_PROGRESS`` asks for text bars that stay (a notebook regenerated for the
    repository); then a sampling run's bar is left finished, elsewhere it disappears when the run ends."""
    return _env_flag(TEXT_PROGRESS_ENV)


def with_progress(score_fn: ScoreFn, evaluations: int, desc: str = "network evaluations",
                  progress: bool = True) -> ScoreFn:
    """``score_fn`` with a progress bar of ``evaluations`` calls: a sampler that has no bar of its own (a
    learner's, in a notebook) shows how far it is. The bar closes at its last evaluation, and a further
    call starts a new one; ``score.close()`` closes a bar whose sampler made fewer calls than announced."""
    check_positive_int(evaluations, "with_progress: evaluations")
    bar = None

    def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total=evaluations, desc=desc, unit="eval", progress=progress)
        out = score_fn(x, sigma)
        bar.update(1)
        if bar.n >= evaluations:
            close()
        return out

    def close() -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None

    score.close = close
    return score


# Events set by a signal handler (training.train's Ctrl-C and SIGTERM): while one is registered, a sampling run
# started inside (a preview grid) stops between two noise levels instead of running to its end.
_STOP_EVENTS: list[threading.Event] = []


@contextlib.contextmanager
def stop_between_levels(event: threading.Event):
    """While inside, annealed Langevin raises KeyboardInterrupt at the next noise level once ``event`` is set."""
    _STOP_EVENTS.append(event)
    try:
        yield event
    finally:
        _STOP_EVENTS.remove(event)


def _check_stop() -> None:
    if any(e.is_set() for e in _STOP_EVENTS):  # host-side flags: no device sync
        raise KeyboardInterrupt("stopped between two noise levels")


def _as_source(generator: torch.Generator | None, noise: NoiseSource | None) -> NoiseSource:
    if noise is not None and generator is not None:
        raise ValueError("Pass either generator= or noise=, not both.")
    return noise if noise is not None else GeneratorNoise(generator)


@torch.no_grad()
def langevin(
    score_fn: ScoreFn,
    x_init: torch.Tensor,
    step_size: float,
    n_steps: int,
    sigma: float,
    *,
    generator: torch.Generator | None = None,
    noise: NoiseSource | None = None,
) -> torch.Tensor:
    """Plain Langevin dynamics at one noise level: x <- x + alpha s(x, sigma) + sqrt(2 alpha) z."""
    source = _as_source(generator, noise)
    if not torch.is_tensor(x_init) or x_init.ndim == 0 or x_init.shape[0] == 0:
        raise ValueError(f"langevin: x_init must be a batch of starting points (B, ...), got "
                         f"{tuple(x_init.shape) if torch.is_tensor(x_init) else type(x_init).__name__}.")
    sigma = check_sigma(sigma, "langevin")
    step_size = check_number(step_size, "langevin: step_size (alpha)", minimum=0.0)
    n_steps = check_positive_int(n_steps, "langevin: n_steps", minimum=0)
    x = x_init.clone()
    sigma_vec = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
    for t in range(n_steps):
        z = source(1 + t, x.shape, x.device, x.dtype)
        x = x + step_size * check_score_shape(score_fn(x, sigma_vec), x, "langevin") + math.sqrt(2.0 * step_size) * z
    return x


@dataclass
class LangevinState:
    """One state of an annealed Langevin run: after step ``step`` of level ``level``.

    ``level == -1`` is the start x_0; ``level == L`` with ``step == 0`` is the final
    denoising step's output.
    """

    level: int
    step: int
    sigma: float
    x: torch.Tensor


def num_score_evaluations(num_scales: int, n_steps_each: int, denoise: bool = True) -> int:
    """Network evaluations of one annealed Langevin run: L * T, plus one for the denoising step."""
    num_scales = check_positive_int(num_scales, "num_score_evaluations: num_scales (L)")
    n_steps_each = check_positive_int(n_steps_each, "num_score_evaluations: n_steps_each (T)", minimum=0)
    return num_scales * n_steps_each + int(denoise)


@torch.no_grad()
def iter_annealed_langevin(
    score_fn: ScoreFn,
    shape: Sequence[int],
    sigmas: torch.Tensor,
    n_steps_each: int,
    step_lr: float,
    *,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    noise: NoiseSource | None = None,
    x_init: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> Iterator[LangevinState]:
    """Annealed Langevin dynamics (NCSN Alg. 1 with NCSNv2's step rule), yielding every state.

    1. x_0 = sigma_1 z_0 (or ``x_init``).
    2. For each level i: alpha_i = eps sigma_i^2 / sigma_L^2 and, T times,
       x <- x + alpha_i s(x, sigma_i) + sqrt(2 alpha_i) z_ij   (the paper's eq. 3 with eps/2 -> alpha_i).
    3. Optionally the final denoising step x <- x + sigma_L^2 s(x, sigma_L), no noise.

    Args:
        score_fn: callable (x, sigma) -> score of x's shape, sigma of shape (B,).
        shape: (B, ...) of the samples.
        sigmas: descending noise levels, (L,).
        n_steps_each: T.
        step_lr: eps.
        denoise: apply the final denoising step.
        generator / noise: the only sources of randomness (see the module docstring).
        x_init: start here instead of sigma_1 z_0 (draw 0 is then not used).
        device: where to sample; defaults to x_init's, else sigmas' device.
        progress: show a tqdm progress bar over the levels.
    """
    source = _as_source(generator, noise)
    shape = check_shape(shape, "annealed Langevin")
    if x_init is not None and (not torch.is_tensor(x_init) or tuple(x_init.shape) != shape):
        got = tuple(x_init.shape) if torch.is_tensor(x_init) else type(x_init).__name__
        raise ValueError(f"annealed Langevin: x_init has shape {got} but shape is {shape}: pass shape=x_init.shape.")
    if device is None:
        device = x_init.device if x_init is not None else torch.as_tensor(sigmas).device
    device = torch.device(device)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).cpu()
    if sig.ndim != 1 or sig.numel() < 1:
        raise ValueError("sigmas must be a non-empty 1-D tensor, largest first.")
    check_sigmas(sig, "annealed Langevin", descending=True)
    check_positive_int(n_steps_each, "n_steps_each (T, Langevin steps per noise level)", minimum=0)
    try:
        eps = float(step_lr)
    except (TypeError, ValueError, RuntimeError):
        eps = math.nan
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"annealed Langevin: step_lr (eps) must be a finite number >= 0, got {step_lr!r}; "
                         "sigmas.langevin_step_size(sigmas, T) gives technique 4's value.")
    batch = shape[0]
    sigma_vecs = sig.to(dtype).to(device)[:, None].expand(-1, batch)  # (L, B), one host->device copy
    s_last = float(sig[-1])
    if x_init is not None:
        x = x_init.to(device=device, dtype=dtype)
    else:
        x = float(sig[0]) * source(0, shape, device, dtype)
    yield LangevinState(-1, 0, float(sig[0]), x)
    for i in progress_bar(range(sig.numel()), progress=progress, desc="annealed Langevin", unit="level",
                          leave=text_progress()):
        _check_stop()
        alpha = step_lr * (float(sig[i]) / s_last) ** 2
        noise_scale = math.sqrt(2.0 * alpha)
        for j in range(n_steps_each):
            z = source(1 + i * n_steps_each + j, shape, device, dtype)
            x = x + alpha * check_score_shape(score_fn(x, sigma_vecs[i]), x, "annealed Langevin") + noise_scale * z
            yield LangevinState(i, j, float(sig[i]), x)
    if denoise:
        x = x + s_last**2 * check_score_shape(score_fn(x, sigma_vecs[-1]), x, "annealed Langevin")
        yield LangevinState(sig.numel(), 0, s_last, x)


def annealed_langevin(
    score_fn: ScoreFn,
    shape: Sequence[int],
    sigmas: torch.Tensor,
    n_steps_each: int,
    step_lr: float,
    *,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    noise: NoiseSource | None = None,
    x_init: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> torch.Tensor:
    """Run :func:`iter_annealed_langevin` to the end and return the final samples."""
    state = None
    for state in iter_annealed_langevin(
        score_fn, shape, sigmas, n_steps_each, step_lr, denoise=denoise, generator=generator, noise=noise,
        x_init=x_init, device=device, dtype=dtype, progress=progress,
    ):
        pass
    return state.x


def trajectory(states: Iterator[LangevinState], levels: Sequence[int]) -> list[LangevinState]:
    """Keep the last state of each level in ``levels`` (and the start, level -1, if asked), cloned to CPU."""
    wanted, last = set(levels), {}
    for s in states:
        if s.level in wanted:
            last[s.level] = LangevinState(s.level, s.step, s.sigma, s.x.detach().cpu().clone())
    return [last[k] for k in levels if k in last]


def nearest_levels(sigmas: torch.Tensor, targets: Sequence[float]) -> list[int]:
    """Indices of the levels closest (in log sigma) to each target, without repeats, in schedule order."""
    log_s = check_sigmas(torch.as_tensor(sigmas, dtype=torch.float64), "nearest_levels").log()
    targets = [check_sigma(t, "nearest_levels: each target", hint="Targets are noise levels such as 0.5.")
               for t in targets]
    if not targets or log_s.ndim != 1 or not log_s.numel():
        raise ValueError("nearest_levels: give a non-empty schedule and at least one target noise level.")
    picks = {int((log_s - math.log(t)).abs().argmin()) for t in targets}
    return sorted(picks)


@torch.no_grad()
def tweedie(score_fn: ScoreFn, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tweedie's formula: the denoised estimate E[x_clean | x] = x + sigma^2 s(x, sigma) of a state at level sigma.

    The final denoising step is this formula at sigma_L; at larger sigma it shows what the state "means"."""
    sigma = check_sigma(sigma, "tweedie")
    sig = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
    return x + float(sigma) ** 2 * check_score_shape(score_fn(x, sig), x, "tweedie")


def cuda_graph_score_fn(score_fn: ScoreFn, example_x: torch.Tensor, example_sigma: torch.Tensor,
                        warmup: int = 3, check: bool = True) -> ScoreFn:
    """``score_fn`` for one fixed batch shape, captured once as a CUDA graph and replayed at every call.

    A network this small is bound by kernel launches, not arithmetic: one replay launches the whole
    forward pass at once. Each call copies ``x`` and ``sigma`` into the graph's static inputs and returns
    its static output (valid until the next call: use it at once, as the samplers do). The capture is
    checked against an eager call on the example; any failure or mismatch falls back to ``score_fn``
    with a warning, so sampling never depends on graphs. Returns ``score_fn`` itself off CUDA.
    """
    import warnings

    if example_x.device.type != "cuda":
        return score_fn
    try:
        static_x, static_sigma = example_x.detach().clone(), example_sigma.detach().clone()
        side = torch.cuda.Stream(device=example_x.device)
        side.wait_stream(torch.cuda.current_stream(example_x.device))
        with torch.cuda.stream(side):
            for _ in range(warmup):  # cuDNN/cuBLAS choose their kernels before capture
                score_fn(static_x, static_sigma)
        torch.cuda.current_stream(example_x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = score_fn(static_x, static_sigma)

        def graphed(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            if x.shape != static_x.shape:
                return score_fn(x, sigma)  # another shape (a last, smaller chunk): eager
            static_x.copy_(x)
            static_sigma.copy_(sigma)
            graph.replay()
            return static_out

        if check:
            eager = score_fn(example_x, example_sigma).clone()
            replayed = graphed(example_x, example_sigma).clone()
            if not torch.allclose(eager, replayed, rtol=1e-3, atol=1e-3 * float(eager.abs().max())):
                raise RuntimeError("the replayed graph does not reproduce the eager scores")
        return graphed
    except Exception as exc:  # noqa: BLE001 - any capture problem: sample eagerly, as before
        warnings.warn(f"CUDA graph capture of the score network failed ({exc}); sampling eagerly.", stacklevel=2)
        return score_fn
