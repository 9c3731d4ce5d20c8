"""Measuring samples: the course's measures in one place, and the records of measured figures.

* **Frechet distance** (the idea behind FID; :mod:`pegasus_course.frechet`): the distance between
  Gaussians fitted to the ten-class classifier's features of two image sets, with its bootstrap interval.
* **Ends rate** (first called the pegasus rate; :mod:`pegasus_course.judging`): the share of rows whose
  two ends are judged one horse and one bird. It measures the ends only.
* **The whole row** (:mod:`pegasus_course.rows`): the judge's p(horse) along a row, where it crosses,
  how sharply, and which images read as both.
* **Intervals** (:mod:`pegasus_course.intervals`): Wilson for a share, the bootstrap for anything else.
* **Colour shift**: per-channel mean and standard deviation of samples against the data,
  tracked during training by :class:`ColourTracker` (an ``on_step`` callback).

Every name of those modules is importable from here too (``evaluation.frechet_distance``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from .checks import check_open_unit
from .classifier import DEFAULT_FEATURE_NET, as_float_images, class_position, predict_proba
from .colour_evidence import CHANNELS  # noqa: F401 (importable from here too, as before)
from .frechet import (extract_features, feature_frechet_distance, frechet_distance, frechet_distance_from_stats,
                      frechet_distance_interval, gaussian_stats, load_feature_net)
from .intervals import bootstrap_interval, wilson_interval
from .judging import crosses, ends_rate, horse_probability, judge_accuracy, pegasus_rate, top_candidates
from .rows import RowJudgement, judge_row, row_probabilities



# ---------------------------------------------------------------- colour shift


def colour_stats(images: torch.Tensor, chunk: int = 1024) -> dict[str, list[float]]:
    """Per-channel mean and standard deviation over all pixels of images (N, 3, H, W) in [0, 1] (or uint8).

    Summed in float64 ``chunk`` images at a time: a data set's worth of float copies (10,000 CIFAR images:
    123 MB each) would otherwise push a notebook past a Binder machine's memory.
    """
    from .checks import check_image_batch, check_positive_int, check_unit_images

    if torch.is_tensor(images) and images.dtype == torch.uint8:
        check_image_batch(images[:1].float(), "colour_stats")  # the shape; uint8 values are always 0-255
    else:
        check_unit_images(images, "colour_stats")  # 0-255 floats would give statistics 255 times too large
    chunk = check_positive_int(chunk, "colour_stats: chunk")
    total, squares = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for part in images.split(chunk):
        x = as_float_images(part).double()
        total += x.sum((0, 2, 3)).cpu()
        squares += x.pow(2).sum((0, 2, 3)).cpu()
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    var = ((squares - n * mean**2) / max(n - 1, 1)).clamp_min(0)
    return {"mean": mean.tolist(), "std": var.sqrt().tolist()}


def colour_shift(samples: torch.Tensor, reference: dict[str, list[float]] | torch.Tensor) -> dict[str, list[float]]:
    """Sample statistics minus the data's, per channel: ``{"mean": [dR, dG, dB], "std": [...]}``."""
    ref = colour_stats(reference) if torch.is_tensor(reference) else reference
    if not (isinstance(ref, dict) and all(len(ref.get(k, ())) == 3 for k in ("mean", "std"))):
        raise ValueError("colour_shift: reference must be images or colour_stats(images), a dict of three 'mean' and "
                         f"three 'std' values (red, green, blue), got {ref!r:.120}.")
    got = colour_stats(samples)
    return {k: [g - r for g, r in zip(got[k], ref[k])] for k in ("mean", "std")}


@dataclass
class ColourTracker:
    """A training-loop callback (``train(..., on_step=tracker)``) that records the colour of samples.

    Every ``every`` steps it calls ``sample_fn(model)`` for the EMA and the live weights; the
    function returns ``{variant: images}`` (for example with and without the final denoising
    step, :func:`pegasus_course.generate.colour_probe`), and each variant's per-channel
    statistics are stored in ``history`` next to the data's in ``reference``.
    """

    reference: dict[str, list[float]]
    sample_fn: Callable[[torch.nn.Module], dict[str, torch.Tensor]]
    every: int
    weights: Sequence[str] = ("ema", "model")
    history: list[dict] = field(default_factory=list)

    def __call__(self, state) -> None:
        if self.every > 0 and state.step // self.every != self._last_slot():
            self.record(state)

    def record(self, state) -> None:
        """Sample and store the statistics now (also useful once after training ends)."""
        for which in self.weights:
            for variant, images in self.sample_fn(getattr(state, which)).items():
                self.history.append({"step": state.step, "weights": which, "variant": variant, **colour_stats(images)})

    def _last_slot(self) -> int:
        return self.history[-1]["step"] // self.every if self.history else 0

    def series(self, weights: str, variant: str, stat: str = "mean") -> tuple[list[int], torch.Tensor]:
        """Steps and a (steps, 3) tensor of one statistic for one kind of weights and one variant."""
        if stat not in ("mean", "std"):
            raise ValueError(f"ColourTracker.series: stat is 'mean' or 'std', got {stat!r}.")
        rows = [h for h in self.history if h["weights"] == weights and h["variant"] == variant]
        if self.history and not rows:
            kinds = sorted({(h["weights"], h["variant"]) for h in self.history})
            raise ValueError(f"ColourTracker.series: nothing recorded for {(weights, variant)}; recorded: {kinds}.")
        return [h["step"] for h in rows], torch.tensor([h[stat] for h in rows]).reshape(-1, 3)

    def save(self, path: str | os.PathLike) -> Path:
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"reference": self.reference, "history": self.history}, indent=1))
        return path


# The figures `benchmarks/sample_quality.py --json` measured for the shipped model (64 samples per set).
QUALITY_RECORD = DEFAULT_FEATURE_NET.parent.parent / "benchmarks" / "sample_quality.json"


def quality_summary(path: str | os.PathLike | None = None) -> str:
    """A readable table of a recorded ``sample_quality.py --json`` run (the shipped model's by default).

    Notebooks print it beside their own small live run, so a learner sees figures from enough samples
    to mean something. Says where the record is missing instead of raising.
    """
    import json

    path = Path(path) if path is not None else QUALITY_RECORD
    if not path.is_file():
        return (f"no recorded quality figures at {path}: run `python benchmarks/sample_quality.py --n 64 "
                f"--json {path}` to make them")
    r = json.loads(path.read_text())
    lines = [record_source(r),
             f"checkpoint step {r['checkpoint_step']:,}, {r['n']} samples per set, L = {r['num_scales']}, "
             f"T = {r['n_steps_each']}, on {r['device']}",
             "Frechet distance (ten-class features, vs held-out test images):"]
    lines += [f"  {name:34s} {v:8.2f}" for name, v in r["frechet_distance"].items()]
    lines.append(f"pegasus rate (judged by the ten-class network), {r['n'] // 2} rows each:")
    lines += [f"  {name:34s} {v:8.0%}" for name, v in r["pegasus_rate"].items()]
    lines.append("judged horse: " + ", ".join(f"{v:.0%} of {k}" for k, v in r["judged_horse"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- recorded figures (notebook 07)

FIGURES_RECORD = QUALITY_RECORD.with_name("quality_figures")


def _repo_relative(arg: str, repo: Path) -> str:
    """A command-line argument as a reader can reuse it: a path inside the repository relative to it, any
    other absolute path by its name alone (a record never names a folder of the machine it was made on)."""
    if not arg.startswith(("/", "~")) and not (len(arg) > 2 and arg[1] == ":" and arg[2] in "\\/"):
        return arg
    path = Path(arg).expanduser()
    try:
        return path.resolve().relative_to(repo).as_posix()
    except ValueError:
        return path.name


def run_provenance(started: float | None = None, device: str | torch.device | None = None) -> dict:
    """The command that is running, the machine it runs on (its GPU only when ``device`` is a CUDA device)
    and (from ``started``, a ``time.perf_counter()``) its wall time: written beside every recorded figure,
    so that a reader knows how to reproduce it and how long it took where."""
    import datetime
    import platform
    import sys
    import time

    repo = Path(__file__).resolve().parent.parent
    argv = [a for a in sys.argv if a] or ["python"]
    command = ["python", *(_repo_relative(a, repo) for a in argv)]
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.device(device) if device is not None else None
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None
    record = {"command": " ".join(command),
              "machine": {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "gpu": gpu, "device": str(device) if device is not None else None,
                          "system": platform.system(), "python": platform.python_version(),
                          "torch": torch.__version__},
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    if started is not None:
        record["wall_seconds"] = time.perf_counter() - started
    return record


def eight_bit(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] rounded to the 256 levels a PNG or a uint8 record keeps (still float)."""
    return (images.clamp(0, 1) * 255).round() / 255


def figures_record(images: dict[str, torch.Tensor], judge: torch.nn.Module, seeds: dict[str, Sequence[int]],
                   classes: dict[str, Sequence[str]], meta: dict, started: float | None = None,
                   device: str | torch.device | None = None) -> dict:
    """What ``benchmarks/quality_figures.py`` records beside its images: per set, the seeds (and asked-for
    classes), the judge's p(horse) of each image and the colour statistics, both of the images as stored
    (8-bit); plus ``meta`` and :func:`run_provenance`."""
    record = dict(meta)
    record["sets"] = list(images)
    record["seeds"] = {name: [int(s) for s in seeds[name]] for name in images}
    record["classes"] = {name: list(c) for name, c in classes.items()}
    kept = {name: eight_bit(imgs) for name, imgs in images.items()}  # judged as stored, so a reader can check
    record["p_horse"] = {name: [round(float(p), 4) for p in horse_probability(judge, imgs)] for name, imgs in kept.items()}
    record["colour"] = {name: colour_stats(imgs) for name, imgs in kept.items()}
    record.update(run_provenance(started, device))
    return record


def save_quality_figures(record: dict, images: dict[str, torch.Tensor], out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``OUT.json`` (the record) and ``OUT.safetensors`` (the images as uint8), each atomically."""
    import json

    from .checkpoints import atomic_save

    out = Path(out)
    json_path, tensor_path = out.with_suffix(".json"), out.with_suffix(".safetensors")
    atomic_save({name: (eight_bit(imgs) * 255).round().to(torch.uint8) for name, imgs in images.items()}, {},
                tensor_path)
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, json_path)
    return json_path, tensor_path


@dataclass
class QualityFigures:
    """A recorded ``benchmarks/quality_figures.py`` run: ``images[name]`` (N, 3, H, W) floats in [0, 1] and
    the record (seeds, p_horse, colour, command, machine, wall_seconds)."""

    images: dict[str, torch.Tensor]
    record: dict

    def seeds(self, name: str) -> list[int]:
        return list(self.record["seeds"][name])

    def p_horse(self, name: str) -> torch.Tensor:
        return torch.tensor(self.record["p_horse"][name])

    def guidance_cost(self) -> float:
        """How many times an unguided sample's time a guided one took in the recorded run (per image; the
        classifier's gradient at every step), 2.0 where the record lacks the timings."""
        sec, sizes = self.record.get("seconds", {}), {name: len(imgs) for name, imgs in self.images.items()}
        guided = [name for name in sec if name.startswith("guided") and name in sizes]
        if "live" not in sec or "live" not in sizes or not guided:
            return 2.0
        per_guided = sum(sec[name] for name in guided) / sum(sizes[name] for name in guided)
        return per_guided / (sec["live"] / sizes["live"])

    @property
    def source(self) -> str:
        """One line that says how the figures were made: command, machine, wall time."""
        return record_source(self.record)


def record_source(record: dict) -> str:
    """How a recorded figure was made, in one line: the command, the machine, the wall time and the date (from
    :func:`run_provenance`'s fields; says so where a record lacks them)."""
    from .formatting import format_duration

    if "command" not in record:
        return "recorded without its command or machine (an older record): re-run the benchmark to add them"
    m = record.get("machine", {})
    where = m.get("gpu") or f"{m.get('cpu', 'a CPU')}, {m.get('cores', '?')} cores"
    parts = [f"recorded by `{record['command']}` on {where} (torch {m.get('torch', '?')})"]
    if "wall_seconds" in record:
        parts.append(f"{format_duration(record['wall_seconds'])} wall time")
    if record.get("date"):
        parts.append(str(record["date"]))
    line = ", ".join(parts)
    return f"{line} ({record['provenance']})" if record.get("provenance") else line


def load_quality_figures(path: str | os.PathLike | None = None) -> QualityFigures:
    """Read ``benchmarks/quality_figures.{json,safetensors}`` (or ``path`` without its suffix)."""
    import json

    from safetensors.torch import load_file

    base = Path(path) if path is not None else FIGURES_RECORD
    json_path, tensor_path = base.with_suffix(".json"), base.with_suffix(".safetensors")
    for p in (json_path, tensor_path):
        if not p.is_file():
            raise FileNotFoundError(f"No recorded figures at {p}: run `python benchmarks/quality_figures.py` "
                                    "(its wall time on a 2-core CPU is in RESULTS.md) to make them.")
    record = json.loads(json_path.read_text())
    tensors = load_file(str(tensor_path))
    missing = [name for name in record["sets"] if name not in tensors]
    if missing:
        raise ValueError(f"{tensor_path} lacks the image sets {missing} that {json_path} names: the two files come "
                         "from different runs; make them again with `python benchmarks/quality_figures.py`.")
    return QualityFigures({name: tensors[name].float() / 255 for name in record["sets"]}, record)


def pair_kind(p_first: float, p_second: float, threshold: float = 0.5) -> str:
    """'horse-bird' when the two ends' p(horse) fall on either side of ``threshold`` (either order),
    else 'horse-horse' or 'bird-bird'. An end is horse when p > threshold (exactly the threshold: bird)."""
    if not all(math.isfinite(float(p)) and 0 <= float(p) <= 1 for p in (p_first, p_second)):
        raise ValueError(f"pair_kind: p(horse) must be finite and in [0, 1], got {float(p_first)} and "
                         f"{float(p_second)}.")
    threshold = check_open_unit(threshold, "pair_kind: threshold", "0.5 splits horse from bird.")
    a, b = float(p_first) > threshold, float(p_second) > threshold
    return "horse-bird" if a != b else ("horse-horse" if a else "bird-bird")


def pairs_of_each_kind(p_horse: Sequence[float], seeds: Sequence[int],
                       kinds: Sequence[str] = ("horse-bird", "horse-horse", "bird-bird"),
                       threshold: float = 0.5) -> list[tuple[int, int, str]]:
    """One pair of seeds for each kind in ``kinds``, from seeds whose judged p(horse) is on record: the
    most clear-cut samples first, never a seed twice. Demonstrations of random ends use it to show every
    kind of pair a random draw can give. Raises ValueError when the seeds hold too few of a class."""
    if len(p_horse) != len(seeds):
        raise ValueError(f"pairs_of_each_kind: {len(p_horse)} probabilities for {len(seeds)} seeds; give one each.")
    if not all(math.isfinite(float(p)) and 0 <= float(p) <= 1 for p in p_horse):
        raise ValueError("pairs_of_each_kind: every p(horse) must be in [0, 1], not NaN or infinite: judge finite "
                         "images.")
    threshold = check_open_unit(threshold, "pairs_of_each_kind: threshold", "0.5 splits horse from bird.")
    ends = []
    for kind in kinds:
        parts = str(kind).split("-")
        if len(parts) != 2 or not set(parts) <= {"horse", "bird"}:
            raise ValueError(f"Unknown kind of pair {kind!r}: use horse-bird, horse-horse or bird-bird.")
        ends += parts
    order = sorted(range(len(seeds)), key=lambda i: -abs(float(p_horse[i]) - threshold))
    pools = {"horse": [seeds[i] for i in order if float(p_horse[i]) > threshold],
             "bird": [seeds[i] for i in order if float(p_horse[i]) <= threshold]}
    for cls in ("horse", "bird"):
        if ends.count(cls) > len(pools[cls]):
            raise ValueError(f"pairs_of_each_kind: {', '.join(kinds)} need {ends.count(cls)} seeds judged {cls}, and "
                             f"{len(pools[cls])} of the {len(seeds)} are: record more seeds.")
    chosen = []
    for kind in kinds:
        first, second = kind.split("-")
        chosen.append((pools[first].pop(0), pools[second].pop(0), kind))
    return chosen
