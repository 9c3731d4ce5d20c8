"""The interpolation explorer of notebook 06: pick two ends, compute the row once, scrub through it.

All the logic sits in plain methods (:meth:`InterpolationExplorer.choose_ends`,
:meth:`compute`, :meth:`show_k`, :meth:`save_current`) that tests call without a
browser; :meth:`InterpolationExplorer.widget` wraps them in ipywidgets, which is
imported only there, so the package works where ipywidgets is missing.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import torch

from .generate import Schedule, generate, pegasus_rows
from .interpolation import mix_weights


def png_bytes(image: torch.Tensor, upscale: int = 4) -> bytes:
    """A (3, H, W) image in [0, 1] (or uint8) as PNG bytes, nearest-neighbour upscaled for display."""
    from PIL import Image

    from .checks import check_positive_int, check_savable_images

    if not torch.is_tensor(image) or image.ndim != 3:
        got = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"png_bytes: expected one image (3, H, W), got {got}" + (": pass images[i]" if
                                                                                  got and len(got) == 4 else "") + ".")
    upscale = check_positive_int(upscale, "png_bytes: upscale")
    arr = (check_savable_images(image[None], "png_bytes")[0] * 255).round().to(torch.uint8)
    arr = arr.repeat_interleave(upscale, 1).repeat_interleave(upscale, 2).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class InterpolationExplorer:
    """Interpolation rows between samples of a candidate batch, with eq. 4.

    Args:
        model: a trained ScoreUNet (its device is used).
        schedule: the sampling schedule.
        candidate_seeds: seeds of the batch the ends are picked from.
        n: N of eq. 4 (rows of N + 2 images).
        label: shown in the widget (profile and checkpoint in use).
        out_dir: where the save button writes.
    """

    def __init__(self, model: torch.nn.Module, schedule: Schedule, candidate_seeds: Sequence[int], n: int = 15,
                 label: str = "", out_dir: str | Path = "outputs/explorer"):
        from .checks import check_positive_int, check_seeds

        self.model, self.schedule, self.label = model, schedule, label
        self.n = check_positive_int(n, "InterpolationExplorer: n (N of eq. 4)")
        self.candidate_seeds = check_seeds(candidate_seeds, "InterpolationExplorer: candidate_seeds")
        if len(set(self.candidate_seeds)) < 2:
            raise ValueError(f"InterpolationExplorer: the two ends are picked among the candidates, so they need two "
                             f"different seeds at least, got {self.candidate_seeds}.")
        self.out_dir = Path(out_dir).expanduser()
        self.candidates: torch.Tensor | None = None
        self.ends: list[int] = self.candidate_seeds[:2]
        self.row: torch.Tensor | None = None
        self.row_ks: list[int] = []  # the interpolants the row holds (all of 0..N+1 after compute())
        self.k = 0
        self.busy = False
        self.status = "pick two ends, then compute the row"
        self._ui = None
        self._next_end = 0

    # ----- logic, no widgets -----
    def generate_candidates(self, progress: bool = False) -> torch.Tensor:
        """Sample the candidate batch (each image reproducible from its seed)."""
        self.candidates = generate(self.model, self.candidate_seeds, self.schedule, progress=progress).cpu()
        return self.candidates

    def choose_ends(self, seed1: int, seed2: int) -> None:
        """Set the two ends by seed, two different seeds of the candidates; the row must be computed again."""
        from .checks import check_seed

        seed1, seed2 = check_seed(seed1, "choose_ends"), check_seed(seed2, "choose_ends")
        if seed1 == seed2:
            raise ValueError("Pick two different samples for the two ends.")
        missing = [s for s in (seed1, seed2) if s not in self.candidate_seeds]
        if missing:
            raise ValueError(f"choose_ends: seed {missing[0]} is not one of the candidates {self.candidate_seeds}: "
                             "pick the ends among them (or make an explorer with that seed among its candidate_seeds).")
        self.ends = [seed1, seed2]
        self.row = None
        self.status = f"ends: seeds {seed1} and {seed2}; compute the row"
        self._refresh()

    def click_candidate(self, index: int) -> None:
        """Clicking a candidate sets the left end, the next click the right end, and so on."""
        from .checks import check_positive_int

        if check_positive_int(index, "click_candidate: index", minimum=0) >= len(self.candidate_seeds):
            raise ValueError(f"click_candidate: index must be 0..{len(self.candidate_seeds) - 1} (one of the "
                             f"{len(self.candidate_seeds)} candidates), got {index}.")
        ends = list(self.ends)
        ends[self._next_end] = self.candidate_seeds[index]
        self._next_end = 1 - self._next_end
        if ends[0] != ends[1]:
            self.choose_ends(*ends)

    def compute(self, progress: bool = False) -> torch.Tensor:
        """Run one batched sampling for the whole row k = 0..N+1 (eq. 4)."""
        self.busy = True
        self.status = f"computing the row between seeds {self.ends[0]} and {self.ends[1]}..."
        self._refresh()
        try:
            self.row = pegasus_rows(self.model, [tuple(self.ends)], self.n, self.schedule, progress=progress)[0].cpu()
            self.row_ks = list(range(self.n + 2))
        finally:
            self.busy = False
        self.status = f"row ready: drag k from 0 (seed {self.ends[0]}) to {self.n + 1} (seed {self.ends[1]})"
        self.show_k(self.k)
        return self.row

    def set_row(self, row: torch.Tensor, ks: Sequence[int] | None = None) -> None:
        """Use a row computed elsewhere for the current ends, with the same model and schedule: all N + 2
        interpolants, or only those in ``ks`` (both ends included; the slider then snaps to them)."""
        from .checks import check_k, check_savable_images, check_unit_images

        ks = list(range(self.n + 2)) if ks is None else list(ks)
        check_k(ks, self.n, "set_row: ks")
        ks = [int(k) for k in ks]
        size = getattr(getattr(self.model, "config", None), "image_size", None)
        check_unit_images(row, "set_row", size=size)  # what the row shows and saves: the model's samples in [0, 1]
        check_savable_images(row, "set_row")  # refused here, not later inside a slider's callback (png_bytes)
        if row.shape[0] != len(ks):
            raise ValueError(f"A row for N = {self.n} has {self.n + 2} images (or one per k in ks), got {row.shape[0]}.")
        if ks != sorted(set(ks)) or ks[0] != 0 or ks[-1] != self.n + 1:
            raise ValueError(f"ks must be increasing and hold both ends, 0 and {self.n + 1}; got {ks}.")
        self.row, self.row_ks = row.detach().cpu(), ks
        self.status = f"row ready: drag k from 0 (seed {self.ends[0]}) to {self.n + 1} (seed {self.ends[1]})"
        self.show_k(self.k)

    def current_image(self) -> torch.Tensor:
        if self.row is None:
            raise RuntimeError("Compute the row first (compute()).")
        return self.row[self.row_ks.index(self.k)]

    def show_k(self, k: int) -> torch.Tensor:
        """Select interpolant k (clamped to 0..N+1) and return it."""
        from .checks import check_k

        if isinstance(k, bool) or not math.isfinite(float(k)) or float(k) != int(k):  # 2.5, NaN: no interpolant
            check_k(k, self.n, "show_k")  # raises, naming the whole numbers k may take
        self.k = max(0, min(int(k), self.n + 1))
        if self.row is not None and self.k not in self.row_ks:  # a partial row: the nearest computed k
            self.k = min(self.row_ks, key=lambda j: (abs(j - self.k), j))
        self._refresh()
        return self.current_image() if self.row is not None else None

    def save_current(self) -> Path:
        """Write the current interpolant as a PNG and return its path."""
        from torchvision.utils import save_image

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"pegasus-{self.ends[0]}-{self.ends[1]}-k{self.k}-of-{self.n}.png"
        save_image(self.current_image(), str(path))
        self.status = f"saved {path}"
        self._refresh()
        return path

    # ----- widgets -----
    def widget(self):
        """The ipywidgets interface (built once). Needs ipywidgets >= 7.6."""
        if self._ui is not None:
            return self._ui
        try:
            import ipywidgets as w
        except ImportError as exc:
            raise ImportError("The explorer needs ipywidgets: pip install ipywidgets") from exc
        if self.candidates is None:
            self.generate_candidates()
        self._w = w
        thumbs = []
        for i, (seed, img) in enumerate(zip(self.candidate_seeds, self.candidates)):
            button = w.Button(description=f"seed {seed}", layout=w.Layout(width="88px"))
            button.on_click(lambda _b, i=i: self.click_candidate(i))
            thumbs.append(w.VBox([w.Image(value=png_bytes(img, 2), format="png"), button]))
        self.seed1 = w.Dropdown(options=self.candidate_seeds, value=self.ends[0], description="left end")
        self.seed2 = w.Dropdown(options=self.candidate_seeds, value=self.ends[1], description="right end")
        self.compute_button = w.Button(description="compute row", button_style="primary")
        self.slider = w.IntSlider(value=0, min=0, max=self.n + 1, description="k", continuous_update=True)
        self.save_button = w.Button(description="save image")
        self.image = w.Image(format="png", width=160, height=160)
        self.readout = w.HTML()
        self.status_label = w.HTML()

        def on_seed(_change):
            if self.seed1.value != self.seed2.value and [self.seed1.value, self.seed2.value] != self.ends:
                self.choose_ends(self.seed1.value, self.seed2.value)

        self.seed1.observe(on_seed, names="value")
        self.seed2.observe(on_seed, names="value")
        self.compute_button.on_click(lambda _b: self.compute())
        self.slider.observe(lambda change: self.show_k(change["new"]), names="value")
        self.save_button.on_click(lambda _b: self.save_current())
        header = w.HTML(f"<b>Interpolation explorer</b> - {self.label}")
        self._ui = w.VBox([header, w.HBox(thumbs, layout=w.Layout(flex_flow="row wrap")),
                           w.HBox([self.seed1, self.seed2, self.compute_button]),
                           w.HBox([self.image, w.VBox([self.slider, self.readout, self.save_button])]),
                           self.status_label])
        # CSS classes name the parts for styling and for the browser tests
        for part, name in ((self._ui, "explorer"), (self.slider, "slider"), (self.image, "image"),
                           (self.readout, "readout"), (self.save_button, "save"), (self.compute_button, "compute"),
                           (self.status_label, "status"), *((t, "thumb") for t in thumbs)):
            part.add_class(f"pegasus-{name}")
        self._refresh()
        return self._ui

    def _refresh(self) -> None:
        if self._ui is None and not hasattr(self, "slider"):
            return
        disabled = self.busy
        for c in (self.seed1, self.seed2, self.compute_button, self.slider, self.save_button):
            c.disabled = disabled
        self.save_button.disabled = disabled or self.row is None
        self.slider.disabled = disabled or self.row is None
        if self.seed1.value != self.ends[0]:
            self.seed1.value = self.ends[0]
        if self.seed2.value != self.ends[1]:
            self.seed2.value = self.ends[1]
        if self.slider.value != self.k:
            self.slider.value = self.k
        if self.row is not None:
            self.image.value = png_bytes(self.current_image())
        c, s = mix_weights(self.k, self.n)
        self.readout.value = (f"k = {self.k} of N = {self.n}: {float(c):.3f} x seed {self.ends[0]}'s noise "
                              f"+ {float(s):.3f} x seed {self.ends[1]}'s")
        if self.row is not None and len(self.row_ks) < self.n + 2:
            self.readout.value += (f"<br>computed: k = {', '.join(map(str, self.row_ks))}; press <i>compute row</i> "
                                   "for all")
        self.status_label.value = ("<b>busy</b>: " if self.busy else "") + self.status
