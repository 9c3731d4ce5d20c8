"""Where the course runs and in what precision: one place decides, for the workflow, the CLI and the benchmarks.

Device (:func:`choose_device`): ``--device`` or ``PEGASUS_DEVICE`` when given, else CUDA, then Apple's
GPU (MPS), then the CPU.

Training precision (:func:`training_precision`): bf16 autocast on GPUs that have bf16 natively (CUDA
compute capability 8.0 or more: A100, H100, RTX 30xx and later); fp16 autocast with a gradient scaler on
older CUDA GPUs (T4 - Colab's free GPU -, V100, RTX 20xx), where ``torch.cuda.is_bf16_supported()`` answers
True through emulation but cuDNN has no bf16 convolutions; float32 on the CPU and MPS unless asked.

Sampling precision (:func:`sampling_precision`): float32, except on a CPU that computes bf16 natively
(avx512_bf16 or AMX, as oneDNN reports), where the package's samplers (``generate``, the pegasus rows) run
the network in bf16 autocast, measured faster there and alike in its samples (benchmarks/RESULTS.md, "CPU
sampling"); ``PEGASUS_CPU_BF16=0`` keeps float32. :func:`describe_sampling_mode` says which, in one line.

On MPS a network is checked once against the CPU before it is trusted (:func:`place_model`): any failure
or disagreement puts it on the CPU with one line saying so, never a silently wrong picture. Float64 never
goes to MPS (it has none): the eq. 4 weights and the noise schedule are computed on the CPU and cast.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable

import torch

DEVICE_ENV = "PEGASUS_DEVICE"
CPU_BF16_ENV = "PEGASUS_CPU_BF16"  # "0" keeps CPU sampling in float32 where bf16 would be chosen
# bf16 autocast against float32, the shipped network's forward pass at batch 9 (a pegasus row) on the CPU the
# figure was measured on: benchmarks/cpu_sampling.py, recorded in benchmarks/RESULTS.md ("CPU sampling").
MEASURED_CPU_BF16_SPEEDUP = 1.4
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere: the first CUDA GPUs with bf16 tensor cores and cuDNN bf16 convolutions
# An MPS output may differ from the CPU's by rounding (other kernels), never by more than this share of the
# largest score: known MPS faults give errors of order one.
MPS_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Precision:
    """How a network runs: ``name`` "bf16" or "fp16" (autocast to that dtype; fp16 needs a gradient scaler
    to train) or "fp32" (no autocast); ``reason`` says why it was chosen."""

    name: str
    reason: str = ""

    def __post_init__(self):
        if self.name not in PRECISIONS[1:]:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.name!r}.")

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]

    @property
    def autocast(self) -> bool:
        return self.name != "fp32"

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none."""
        return self.name == "fp16"

    def describe(self) -> str:
        return {"bf16": "bf16 autocast", "fp16": "fp16 autocast with a gradient scaler",
                "fp32": "float32"}[self.name]


def mps_available() -> bool:
    """True when torch can use Apple's GPU (Metal Performance Shaders)."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def parse_device(text: str, where: str = "--device") -> torch.device:
    """A device name (cpu, cuda, cuda:N, mps; gpu means the GPU present) checked against this machine.

    ``where`` names the setting in messages (``--device``, ``PEGASUS_DEVICE``, or "" for argparse, which
    names the option itself). Raises ValueError with one line that says what to use instead.
    """
    name = str(text).strip().lower()
    label = f"{where}={text}" if where == DEVICE_ENV else (f"{where} {text}" if where else repr(str(text)))
    use_cpu = f"set {DEVICE_ENV}=cpu" if where == DEVICE_ENV else "use --device cpu"
    if name == "gpu":
        name = "cuda" if torch.cuda.is_available() or not mps_available() else "mps"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{label} is not a device: use cpu or cuda (cuda:N for the N-th GPU), or mps on "
                         "Apple silicon") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{label}: the course runs on cpu or cuda (or mps on Apple silicon)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{label} asked for, but CUDA is not available here (torch {torch.__version__}): {use_cpu}, "
                         "or leave the device out to use the best one present")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{label}: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not mps_available():
        raise ValueError(f"{label} asked for, but Apple's GPU (MPS) is not available here: {use_cpu}, or leave "
                         "the device out to use the best one present")
    return dev


def choose_device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``name`` if given, else ``PEGASUS_DEVICE``, else CUDA, then MPS, then the CPU."""
    if isinstance(name, torch.device):
        return name
    if name is None or not str(name).strip() or str(name).strip().lower() == "auto":
        env = os.environ.get(DEVICE_ENV, "").strip()
        if env and env.lower() != "auto":
            return parse_device(env, DEVICE_ENV)
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    return parse_device(name)


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """(major, minor) compute capability of a CUDA device."""
    return tuple(torch.cuda.get_device_capability(device))


def _check_asked(asked: str | None) -> str:
    name = "auto" if asked is None else str(asked).strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {asked!r}.")
    return name


def _refuse_emulated_bf16(device: torch.device, what: str) -> None:
    """bf16 asked for on a CUDA GPU without it natively: refused with what to use instead."""
    if device.type == "cuda":
        cap = cuda_capability(device)
        if cap < NATIVE_BF16_CAPABILITY:
            raise ValueError(
                f"{what} bf16 needs a GPU of compute capability 8.0 or more; this one ({torch.cuda.get_device_name(device)}) "
                f"has {cap[0]}.{cap[1]}, where cuDNN has no bf16 convolutions: use fp16 (or auto, which picks it).")


def training_precision(device: torch.device | str, asked: str | None = None) -> Precision:
    """The precision to train in on ``device``: ``asked`` (bf16, fp16, fp32) or, for None/"auto", bf16 on a
    GPU with native bf16 (compute capability >= 8.0), fp16 with a gradient scaler on older CUDA GPUs,
    float32 on the CPU and MPS."""
    device = torch.device(device)
    name = _check_asked(asked)
    if name == "bf16":
        _refuse_emulated_bf16(device, "training in")
    if name != "auto":
        return Precision(name, "asked for")
    if device.type != "cuda":
        return Precision("fp32", f"the default on {device.type}")
    cap = cuda_capability(device)
    if cap >= NATIVE_BF16_CAPABILITY:
        return Precision("bf16", f"compute capability {cap[0]}.{cap[1]}: native bf16")
    return Precision("fp16", f"compute capability {cap[0]}.{cap[1]}: no native bf16 below 8.0")


def cpu_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (oneDNN sees avx512_bf16 or AMX); False where torch cannot tell."""
    mkldnn = getattr(torch.backends, "mkldnn", None)
    if mkldnn is None or not mkldnn.is_available():
        return False
    probe = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # noqa: BLE001 - a torch build whose probe fails: no native bf16 claimed
        return False


def cpu_fast_precision() -> str | None:
    """"bf16" when the CPU has native bf16 and ``PEGASUS_CPU_BF16`` is not "0"; None (float32) otherwise."""
    if os.environ.get(CPU_BF16_ENV, "").strip() == "0":
        return None
    return "bf16" if cpu_native_bf16() else None


def sampling_precision(device: torch.device | str, asked: str | None = None) -> Precision:
    """The precision the package's samplers run the network in: ``asked``, or for None/"auto" bf16 autocast on
    a CPU with native bf16 (:func:`cpu_fast_precision`), float32 elsewhere (a long Langevin chain adds up
    every rounding, and float32 is what the GPUs' figures were measured in)."""
    device = torch.device(device)
    name = _check_asked(asked)
    if name == "bf16":
        _refuse_emulated_bf16(device, "sampling in")
    if name != "auto":
        return Precision(name, "asked for")
    if device.type == "cpu" and cpu_fast_precision() == "bf16":
        return Precision("bf16", f"native bf16 on this CPU ({CPU_BF16_ENV}=0 for float32)")
    return Precision("fp32", "the default for sampling")


def describe_sampling_mode(device: torch.device | str) -> str:
    """One line for a notebook: the precision the samplers use on ``device``, why, and how to change it."""
    device = torch.device(device)
    p = sampling_precision(device)
    if p.name == "bf16":
        return (f"sampling in bf16 autocast on this CPU (native bf16; {MEASURED_CPU_BF16_SPEEDUP:g}x faster than "
                f"float32 on the CPU of benchmarks/RESULTS.md); {CPU_BF16_ENV}=0 for float32")
    if device.type != "cpu":
        return f"sampling in float32 on {device.type}"
    why = (f"{CPU_BF16_ENV}=0" if os.environ.get(CPU_BF16_ENV, "").strip() == "0" and cpu_native_bf16()
           else "this CPU has no native bf16")
    return f"sampling in float32 on this CPU ({why})"


def autocast(device_type: str, precision: Precision | None):
    """Autocast to the precision's dtype on ``device_type``, or nothing for float32."""
    if precision is None or not precision.autocast:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=precision.dtype)


def make_scaler(device: torch.device | str, precision: Precision):
    """A gradient scaler for fp16 training on ``device`` (None when the precision needs none)."""
    if not precision.needs_scaler:
        return None
    device = torch.device(device)
    scaler_cls = getattr(torch.amp, "GradScaler", None)
    if scaler_cls is not None:
        return scaler_cls(device.type)
    if device.type == "cuda":  # torch < 2.3
        return torch.cuda.amp.GradScaler()
    raise ValueError(f"fp16 training on {device.type} needs torch >= 2.3 (this is {torch.__version__}): train in "
                     "fp32 (--precision fp32).")


def describe(device: torch.device, precision: Precision | None = None) -> str:
    """E.g. 'cuda (Tesla T4, compute capability 7.5), training in fp16 autocast with a gradient scaler'."""
    device = torch.device(device)
    if device.type == "cuda":
        cap = cuda_capability(device)
        where = f"cuda ({torch.cuda.get_device_name(device)}, compute capability {cap[0]}.{cap[1]})"
    elif device.type == "mps":
        where = "mps (Apple GPU)"
    else:
        where = f"cpu ({torch.get_num_threads()} threads)"
    return where if precision is None else f"{where}, training in {precision.describe()}"


# ----- the first-use check on MPS -----
_VERDICTS: dict[tuple, str] = {}  # (device type, model kind) -> "" when trusted, else why not


def _example(model: torch.nn.Module, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of images in [0, 1] and noise levels, on the CPU, for the model's image size."""
    config = getattr(model, "config", None)
    size = int(getattr(config, "image_size", 32))
    channels = int(getattr(config, "in_channels", 3))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, channels, size, size, generator=g)
    sigma = torch.logspace(0, -1.3, batch)  # 1 .. 0.05: a large and a small level
    return x, sigma


def _move(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    return model.to(device)


def _evaluate_on(model: torch.nn.Module, device: torch.device, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The model's output for (x, sigma) computed on ``device`` (the model is already there), brought to the CPU."""
    return model(x.to(device), sigma.to(device)).float().cpu()


def _noise_on(device: torch.device) -> torch.Tensor:
    """A seeded noise draw (what the samplers and eq. 4 replay) computed on ``device``, on the CPU."""
    from .sampling import SeededNoise

    return SeededNoise([0, 1])(1, (2, 3, 8, 8), device, torch.float32).cpu()


@torch.no_grad()
def place_model(model: torch.nn.Module, device: torch.device | str | None = None,
                say: Callable[[str], None] = print) -> torch.nn.Module:
    """Move ``model`` to ``device`` (default: :func:`choose_device`) and return it, on the device it can be trusted on.

    CUDA and the CPU are taken as they are. On MPS, the first time a kind of model goes there, its output on
    one batch (and one seeded noise draw) is compared with the CPU's; a failure, or a difference above
    ``MPS_TOLERANCE`` of the largest value, puts the model on the CPU with one line saying so (later models of
    that kind follow the verdict).
    """
    device = choose_device(device)
    if device.type != "mps":
        return model.to(device)
    config = getattr(model, "config", None)
    key = (device.type, type(model).__name__, repr(config))
    if key not in _VERDICTS:
        model.cpu()
        was_training = model.training
        model.eval()
        x, sigma = _example(model)
        try:
            ref, ref_noise = model(x, sigma).float(), _noise_on(torch.device("cpu"))
            _move(model, device)
            out, noise = _evaluate_on(model, device, x, sigma), _noise_on(device)
            worst = max(float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)
                        for a, b in ((out, ref), (noise, ref_noise)))  # relative to the largest value
            if not worst <= MPS_TOLERANCE:  # NaN included
                _VERDICTS[key] = (f"gave other results than the CPU on a test batch (largest difference {worst:.2g} "
                                  f"of the largest value, allowed {MPS_TOLERANCE:g})")
            else:
                _VERDICTS[key] = ""
        except Exception as exc:  # noqa: BLE001 - any MPS failure: the CPU gives the right picture
            _VERDICTS[key] = f"failed ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        finally:
            model.train(was_training)
    if _VERDICTS[key]:
        say(f"Apple GPU (mps) {_VERDICTS[key]}: running {type(model).__name__} on the CPU instead")
        return model.cpu()
    return _move(model, device)


def reset_checks() -> None:
    """Forget the MPS verdicts (tests, or after updating torch in a running kernel)."""
    _VERDICTS.clear()
