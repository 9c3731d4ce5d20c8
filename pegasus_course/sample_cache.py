"""An on-disk cache of sampled images, so that running a notebook again (or the next one) reuses them.

A sample is a pure function of the network's weights, the schedule, the sampler's settings and its seed
(every sample's noise is drawn from its own seed, :class:`~pegasus_course.sampling.SeededNoise`), and an
interpolant of its pair of seeds and its k: so an image can be stored under a hash of all of these
(:func:`sample_key`, which adds a hash of the sampler's own source files) and read back instead of
sampled again. One small safetensors file per image lives
in ``<PEGASUS_CACHE>/samples``; past ``PEGASUS_CACHE_SAMPLES_MB`` (512 MB by default) the least recently
used files go first. ``PEGASUS_CACHE_SAMPLES=0`` turns the cache off (every image is computed).

An image sampled in another batch may differ from a fresh one by float32 rounding (other batch shapes run
other kernels): the cache gives back the image exactly as it was first computed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import os
import uuid
from pathlib import Path

import numpy as np
import torch

SAMPLES_ENV = "PEGASUS_CACHE_SAMPLES"
SAMPLES_MB_ENV = "PEGASUS_CACHE_SAMPLES_MB"
DEFAULT_MB = 512
KEY_VERSION = 1  # bumped when the samplers' images change meaning for the same settings
SUFFIX = ".safetensors"
STALE_TEMP_SECONDS = 3600  # a temporary file this old was left by a writer that died


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 of a network: its class, its config, train/eval mode and every state_dict entry (name, dtype,
    shape, bytes). About 15 ms for the course's 4.5 M parameters on a CPU, so it is computed afresh each
    call: no memo can miss an in-place change of the weights."""
    h = hashlib.sha256()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}|{getattr(model, 'config', None)!r}|"
             f"training={model.training}".encode())
    for name, t in model.state_dict().items():
        t = t.detach()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _canonical(value):
    """A JSON value that says exactly what ``value`` is: floats by their exact repr, tensors and NumPy arrays as
    float64 lists. Only true integers (``numbers.Integral``: Python and NumPy ints, bools) count as integers:
    a 0-d float array has ``__index__`` too, and must not be truncated to one."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):  # Python and NumPy integers
        return int(value)
    if isinstance(value, float):  # np.float64 too: keyed by the value, as the float it is
        if not math.isfinite(value):
            raise ValueError(f"sample_key: a field holds {value}: an image of it is not cacheable.")
        return {"float": repr(float(value))}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"sample_key: cannot key a NumPy array of {value.dtype}: pass numbers.")
        value = torch.as_tensor(np.array(value, dtype=np.float64))
    if torch.is_tensor(value):
        return {"tensor": [repr(float(v)) for v in value.detach().cpu().double().reshape(-1).tolist()],
                "shape": list(value.shape)}
    if isinstance(value, np.generic) and value.dtype.kind in "bf":  # NumPy bools and floats (float32, ...)
        return _canonical(value.item())
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, range)):
        return [_canonical(v) for v in value]
    raise TypeError(f"sample_key: cannot key a {type(value).__name__} ({value!r}): pass numbers, strings, "
                    "tensors, lists or dicts of them.")


# The modules whose code turns settings into images: an edit of any of them may change what a key means.
SAMPLER_MODULES = ("sampling", "interpolation", "generate", "classifier", "sigmas", "nn")


@functools.lru_cache(maxsize=1)
def sampler_code_hash() -> str:
    """sha256 of the source files of the modules that compute a sample (:data:`SAMPLER_MODULES`), read once
    per process: after an edit of the sampler an image stored before is a miss, never served as new."""
    h = hashlib.sha256()
    here = Path(__file__).parent  # the files are read, not imported: generate imports this module
    for name in SAMPLER_MODULES:
        h.update(f"|{name}|".encode())
        h.update((here / f"{name}.py").read_bytes())
    return h.hexdigest()


def sample_key(**fields) -> str:
    """A stable hash (hex) of everything that determines one image; any change of any field gives another.

    The fields are named by the caller (the weights' hash, the sigmas, T, eps, denoise, the seed or the
    pair and k and n, the guidance, the precision, the device type, the image shape ...); floats count by
    their exact value, so 0.1 and 0.1 + 1e-17 differ only if float64 tells them apart. Every key also holds
    :func:`sampler_code_hash`, so an edit of the sampler's code misses every image stored before it.
    """
    if not fields:
        raise ValueError("sample_key: no fields given: pass what determines the image (weights=..., seed=...).")
    if "code" in fields:
        raise ValueError("sample_key: 'code' is the sampler's own source hash: name your field otherwise.")
    text = json.dumps({"version": KEY_VERSION, "code": sampler_code_hash(),
                       **{k: _canonical(v) for k, v in fields.items()}}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _env_max_bytes() -> int:
    text = os.environ.get(SAMPLES_MB_ENV, "").strip()
    if not text:
        return DEFAULT_MB * 2**20
    try:
        mb = float(text)
    except ValueError:
        mb = float("nan")
    if not (math.isfinite(mb) and mb >= 0):
        raise ValueError(f"{SAMPLES_MB_ENV}={text!r}: give the sample cache's size in MB, e.g. "
                         f"{SAMPLES_MB_ENV}={DEFAULT_MB} (0 keeps nothing; {SAMPLES_ENV}=0 turns it off).")
    return int(mb * 2**20)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # gone already (another process), or not ours to remove
        pass


class SampleCache:
    """Images on disk, one safetensors file per key, at most ``max_bytes`` in all (oldest use goes first).

    ``root`` defaults to ``<PEGASUS_CACHE>/samples`` and ``max_bytes`` to ``PEGASUS_CACHE_SAMPLES_MB``
    (512 MB). Reading is never an error: a missing, damaged or foreign file is a miss (and a damaged one
    is removed). Writing goes through a temporary file in the same folder and ``os.replace``, so a reader,
    or another process writing the same key, only ever sees whole files; a cache that cannot be written
    is skipped (``failed`` says why).
    """

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None):
        if root is None:
            from .data import CACHE_ENV, cache_dir

            root = cache_dir() / "samples"
            where = f"${CACHE_ENV}/samples" if os.environ.get(CACHE_ENV) else None
        else:
            where = None
        self.root = Path(root)
        home = str(Path.home())
        # how messages name the folder: no one's home directory or machine path in a notebook's output
        self.where = where or (f"~{str(self.root)[len(home):]}" if str(self.root).startswith(home + os.sep)
                               else str(self.root))
        self.max_bytes = _env_max_bytes() if max_bytes is None else int(max_bytes)
        if self.max_bytes < 0:
            raise ValueError(f"SampleCache: max_bytes must be >= 0, got {max_bytes}.")
        self.failed: str | None = None  # why the last write failed, if it did

    def __repr__(self) -> str:
        return f"SampleCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    def path(self, key: str) -> Path:
        if not (isinstance(key, str) and key and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"SampleCache: a key is a hex string from sample_key(...), got {key!r}.")
        return self.root / f"{key}{SUFFIX}"

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> torch.Tensor | None:
        """The image stored under ``key`` (on the CPU), or None; a hit counts as a use for eviction.
        With ``shape``, a stored tensor of another shape is a miss too."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != key:
                    raise ValueError("written for another key")
                image = f.get_tensor("image")
            if image.dtype != torch.float32 or (shape is not None and tuple(image.shape) != tuple(shape)):
                raise ValueError("not an image of this shape")
        except FileNotFoundError:  # evicted by another process meanwhile
            return None
        except Exception:  # damaged or foreign: recomputed, never trusted
            _unlink(path)
            return None
        try:
            os.utime(path)  # least recently used goes first
        except OSError:
            pass
        return image

    def put(self, key: str, image: torch.Tensor, evict: bool = True) -> bool:
        """Store ``image`` under ``key`` (atomically); then, with ``evict``, trim the cache to its bound.
        False (and ``failed`` set) when it could not be written: the caller has its image anyway."""
        from safetensors.torch import save_file

        path = self.path(key)
        tmp = self.root / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            save_file({"image": image.detach().to("cpu", torch.float32).contiguous()}, str(tmp),
                      metadata={"key": key})
            os.replace(tmp, path)
        except Exception as exc:  # read-only, full or missing folder: no reason to stop sampling
            _unlink(tmp)
            self.failed = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            return False
        if evict:
            self.evict()
        return True

    def evict(self) -> int:
        """Remove the least recently used files until the cache holds at most ``max_bytes``; the bytes removed.
        Temporary files older than an hour (left by a writer that died) go too."""
        entries = []
        try:
            scan = list(os.scandir(self.root))
        except OSError:
            return 0
        import time

        now = time.time()
        for e in scan:
            try:
                st = e.stat()
            except OSError:
                continue
            if e.name.endswith(".tmp") and now - st.st_mtime > STALE_TEMP_SECONDS:
                _unlink(Path(e.path))
            elif e.name.endswith(SUFFIX):
                entries.append((st.st_mtime_ns, e.name, st.st_size, Path(e.path)))
        total = sum(size for _, _, size, _ in entries)
        removed = 0
        for _, _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            _unlink(path)
            total -= size
            removed += size
        return removed

    def size_bytes(self) -> int:
        """Bytes the cached images take now."""
        try:
            return sum(e.stat().st_size for e in os.scandir(self.root) if e.name.endswith(SUFFIX))
        except OSError:
            return 0


def cache_enabled() -> bool:
    """False when ``PEGASUS_CACHE_SAMPLES`` is 0/false/no/off, else True."""
    return os.environ.get(SAMPLES_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def default_cache(cache: bool | None) -> SampleCache | None:
    """The cache a sampler uses: None means "on unless ``PEGASUS_CACHE_SAMPLES=0``", False off, True on."""
    if cache is not None and not isinstance(cache, bool):
        raise TypeError(f"cache must be True, False or None (on unless {SAMPLES_ENV}=0), got {cache!r}.")
    if cache is False or (cache is None and not cache_enabled()):
        return None
    return SampleCache()
