"""Horse and bird images from CIFAR-10, STL-10 or any image folder, behind one function.

Images come out as float tensors in [0, 1] of shape (3, H, W) (no centring), labels
re-indexed 0..k-1 in the order the classes were asked for. Decoded images are kept
as one uint8 tensor, so training can move the whole set to the GPU and index it.

An image folder is read as it is when its images are squares of one size the course trains at
(``FOLDER_SIZES``); otherwise ``image_size`` resizes every image as it is decoded (non-square ones
cropped to their centre square first), or the folder is refused with the sizes found. JPEG, PNG, BMP,
GIF, WebP and TIFF files are read the way up their EXIF orientation says, in 8-bit RGB
(:mod:`pegasus_course.image_files`); what was converted, turned, resized or skipped is said once, in
``ImageDataset.notes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .image_files import (FOLDER_SIZES, IMAGE_SUFFIXES, folder_notes, oriented_size,  # noqa: F401
                          readable_suffixes, sizes_message, unreadable)
from .image_files import to_rgb as _to_rgb  # a name of its own here, so a test can watch what is decoded

SOURCES = ("cifar10", "stl10", "folder")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
CACHE_ENV = "PEGASUS_CACHE"
CACHE_VERSION = 3  # bumped when the decoded tensors change meaning (v2: RGB conversion, resize at decode; v3: EXIF
# orientation, BMP/GIF/WebP/TIFF read)


class ImageDataset(Dataset):
    """A set of images held as one uint8 tensor (N, 3, H, W) with integer labels.

    ``dataset[i]`` is ``(image, label)``: image float32 in [0, 1], shape (3, H, W),
    flipped left-right with probability 1/2 when ``flip`` is on (training). ``notes`` are lines
    saying what the loader converted or resized (shown once, before training).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], flip: bool,
                 notes: Sequence[str] = ()):
        from .checks import check_class_labels, check_class_names

        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.classes = check_class_names(classes, "ImageDataset")
        self.labels = check_class_labels(labels, images.shape[0], self.classes, "ImageDataset")
        self.flip = flip
        self.notes = tuple(notes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].float() / 255.0
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, int(self.labels[index])

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def __repr__(self) -> str:
        return (
            f"ImageDataset({len(self)} images of 3x{self.image_size}x{self.image_size}, "
            f"classes={list(self.classes)}, flip={self.flip})"
        )


def check_image_size(image_size: int) -> None:
    """Raise a clear error unless ``image_size`` is a positive multiple of 8 (the U-Net pools 3 times)."""
    import numbers

    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral):
        raise TypeError(f"image_size must be a whole number of pixels such as 32, 48 or 64, got {image_size!r}.")
    if image_size <= 0 or image_size % 8 != 0:
        raise ValueError(
            f"image_size={image_size!r} is not divisible by 8: the U-Net halves the size three times. "
            "Use 32 (CIFAR-10), 48 or 64 (STL-10)."
        )


def _select_classes(classes: Sequence[str], valid: Sequence[str], where: str) -> list[int]:
    from .checks import check_class_names

    classes = check_class_names(classes, where)
    unknown = [c for c in classes if c not in valid]
    if unknown:
        raise ValueError(f"Unknown class(es) {unknown} for {where}. Valid classes: {', '.join(valid)}.")
    return [list(valid).index(c) for c in classes]


def _relabel(images: torch.Tensor, labels: torch.Tensor, wanted: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the images whose label is in ``wanted`` and renumber labels 0..k-1 in that order."""
    lookup = torch.full((int(labels.max()) + 1 if labels.numel() else 1,), -1, dtype=torch.long)
    for new, old in enumerate(wanted):
        if old < lookup.numel():
            lookup[old] = new
    new_labels = lookup[labels]
    keep = new_labels >= 0
    return images[keep], new_labels[keep]


def resize_uint8(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize a uint8 batch (N, 3, H, W) to ``image_size`` with antialiasing, in chunks."""
    from .checks import check_positive_int

    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images).__name__
        raise TypeError(f"resize_uint8: expected uint8 images (N, C, H, W) in 0-255, got {got}. Convert float "
                        "images in [0, 1] with (images * 255).round().to(torch.uint8), or resize them with "
                        "torch.nn.functional.interpolate.")
    check_positive_int(image_size, "resize_uint8: image_size")
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    out = []
    for chunk in images.split(1024):
        y = F.interpolate(chunk.float(), size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, 3, image_size, image_size))


def _missing_root_message(source: str, root: Path) -> str:
    if source == "folder":
        return (
            f"No image folder at {root}. Expected <root>/<split>/<class>/*.jpg|png, for example "
            "an unpacked CIFAR-10-as-images copy. Point --data-root (PEGASUS_DATA_ROOT; `root` in Python) at "
            "that folder."
        )
    name = {"cifar10": "CIFAR-10", "stl10": "STL-10"}[source]
    return (
        f"{name} was not found under {root}. Add --download to fetch it with torchvision (needs internet; "
        f"download=True in Python), or point --data-root (PEGASUS_DATA_ROOT) at the folder that holds it. "
        "Without internet, use an image-folder copy: --dataset folder --data-root PATH "
        "(PEGASUS_DATA_SOURCE=folder)."
    )


def _download_failed(name: str, root: Path, exc: Exception) -> FileNotFoundError:
    return FileNotFoundError(
        f"Could not download {name} into {root} ({exc.__class__.__name__}: {exc}). --download needs internet; "
        "without it, use an image-folder copy: --dataset folder --data-root PATH (PEGASUS_DATA_SOURCE=folder)."
    )


def _load_cifar10(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    from torchvision.datasets import CIFAR10

    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 has splits 'train' and 'test', got {split!r}.")
    if not download and not (root / "cifar-10-batches-py").is_dir():
        raise FileNotFoundError(_missing_root_message("cifar10", root))
    try:
        ds = CIFAR10(str(root), train=(split == "train"), download=download)
    except (OSError, RuntimeError) as exc:  # no network, or a damaged archive
        raise _download_failed("CIFAR-10", root, exc) from exc
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    return images, torch.tensor(ds.targets, dtype=torch.long), tuple(ds.classes)


def _load_stl10(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    from torchvision.datasets import STL10

    parts = split.split("+")
    if not set(parts) <= {"train", "test"}:
        raise ValueError(f"STL-10 splits here are 'train', 'test' or 'train+test' (combined), got {split!r}.")
    if not download and not (root / "stl10_binary").is_dir():
        raise FileNotFoundError(_missing_root_message("stl10", root))
    images, labels = [], []
    for part in parts:
        try:
            ds = STL10(str(root), split=part, download=download)
        except (OSError, RuntimeError) as exc:
            raise _download_failed("STL-10", root, exc) from exc
        images.append(torch.from_numpy(ds.data))  # (N, 3, 96, 96) uint8
        labels.append(torch.from_numpy(ds.labels).long())  # torchvision maps 1..10 to 0..9
    return torch.cat(images), torch.cat(labels), STL10_CLASSES


def _crop_resize(x: torch.Tensor, image_size: int) -> tuple[torch.Tensor, bool, bool]:
    """(3, H, W) uint8 to (3, image_size, image_size): the centre square, then resized. Returns (image,
    cropped, resized)."""
    h, w = x.shape[-2:]
    side = min(h, w)
    cropped = h != w
    if cropped:
        top, left = (h - side) // 2, (w - side) // 2
        x = x[:, top:top + side, left:left + side]
    resized = side != image_size
    if resized:
        x = resize_uint8(x[None].contiguous(), image_size)[0]
    return x.contiguous(), cropped, resized


def _load_folder(root: Path, split: str, classes: Sequence[str], image_size: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], list[str]]:
    """Decode ``<root>/<split>/<class>/*`` as uint8 (N, 3, S, S). Returns (images, labels, class names, notes).

    Sizes are read from each file's header (turned by its EXIF orientation) before it is decoded: without
    ``image_size`` a folder whose images are not all one square size of ``FOLDER_SIZES`` is refused with the
    sizes found, and nothing after the first odd image is decoded (a 512 px photo among 32 px images cannot
    grow the set). Files of other kinds are skipped and counted in a note (hidden ones silently); a file that
    cannot be decoded (damaged, a decompression bomb) stops the load with one line naming it.
    """
    from PIL import Image, ImageOps

    split_dir = root / split
    if not split_dir.is_dir():
        if not root.is_dir():
            raise FileNotFoundError(_missing_root_message("folder", root))
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"No split folder {split_dir}. Splits found under {root}: {found or 'none'}.")
    valid = tuple(sorted(p.name for p in split_dir.iterdir() if p.is_dir()))
    wanted = _select_classes(classes, valid, f"the image folder {split_dir}")
    readable = readable_suffixes()
    images, labels = [], []
    sizes: Counter = Counter()
    example: dict = {}
    converted: Counter = Counter()
    skipped: Counter = Counter()
    cropped = resized = turned = 0
    from .sampling import progress_bar  # decoding a large folder the first time takes a while: say so

    bar = progress_bar(desc=f"decoding {split_dir} (once: cached after)", unit="image", leave=False)
    for label, index in enumerate(wanted):
        class_dir = split_dir / valid[index]
        files = []
        for p in sorted(class_dir.iterdir()):
            if p.name.startswith("."):  # hidden: .DS_Store, macOS's ._photo.jpg companions
                continue
            if p.suffix.lower() in readable:
                files.append(p)
            elif p.is_file():
                skipped[p.suffix.lower() or "(no suffix)"] += 1
        if not files:
            raise ValueError(f"The class folder {class_dir} holds no .jpg or .png images (nor {', '.join(readable[3:])}"
                             "): add images or leave the class out (--classes).")
        for path in files:
            try:
                with warnings.catch_warnings():  # Pillow's bomb warning (over 89 M pixels) is a refusal here
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    im = Image.open(path)
                with im:
                    size, orientation = oriented_size(im)
                    sizes[size] += 1  # (W, H), from the header: nothing decoded yet
                    example.setdefault(size, path)
                    if image_size is None and (len(sizes) > 1 or size[0] != size[1] or size[0] not in FOLDER_SIZES):
                        continue  # refused below, with every size found; nothing more is decoded
                    if im.mode == "F":
                        raise ValueError("32-bit floating-point pixels; save it as an 8-bit image")
                    frames = getattr(im, "n_frames", 1)
                    turned += orientation != 1
                    arr, how = _to_rgb(ImageOps.exif_transpose(im) if orientation != 1 else im)
            except Exception as exc:  # PIL's errors for damaged or hostile files are of many kinds
                raise unreadable(path, exc) from None
            if how:
                converted[how] += 1
            if frames > 1:
                converted["animated or multi-page"] += 1
            x = torch.from_numpy(arr).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
            if image_size is not None:
                x, was_cropped, was_resized = _crop_resize(x, image_size)
                cropped += was_cropped
                resized += was_resized
            images.append(x.contiguous())
            labels.append(label)
            bar.update(1)
    bar.close()
    if not sizes:
        raise FileNotFoundError(f"No .jpg or .png images (nor {', '.join(readable[3:])}) in the class folders of "
                                f"{split_dir}.")
    if image_size is None and len(images) != sum(sizes.values()):
        raise ValueError(sizes_message(split_dir, sizes, example))
    notes = folder_notes(split_dir, converted, turned, skipped, readable,
                         (resized, cropped, len(images), image_size, sizes))
    return torch.stack(images), torch.tensor(labels), tuple(valid[i] for i in wanted), notes


def cache_dir() -> Path:
    """Where decoded image tensors are cached (``PEGASUS_CACHE`` or ~/.cache/pegasus-course)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pegasus-course")  # empty: unset


def _folder_cache_key(root: Path, split: str, classes: Sequence[str], image_size: int | None = None) -> str:
    """A key that changes when any image file of the chosen classes is added, removed or replaced (name, size,
    modification time, inode and status-change time of every file: a file rewritten in place with its size and
    modification time restored still changes its ctime, and one moved over it brings another inode), or when
    the classes, the target size or the cache format change."""
    split_dir = root / split
    stamp = [f"v{CACHE_VERSION}", str(split_dir.resolve()), f"size={image_size}", *classes]
    for c in classes:
        d = split_dir / c
        if d.is_dir():
            with os.scandir(d) as entries:
                for e in sorted(entries, key=lambda e: e.name):
                    st = e.stat()
                    stamp.append(f"{c}/{e.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}")
    return hashlib.sha1("|".join(stamp).encode()).hexdigest()[:16]


def _load_folder_cached(root: Path, split: str, classes: Sequence[str], use_cache: bool,
                        image_size: int | None = None):
    """:func:`_load_folder` through the decoded-image cache; a cache that cannot be read or written is
    skipped with a note (training goes on, decoding again next time)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    if not use_cache:
        return _load_folder(root, split, classes, image_size)
    path = cache_dir() / f"folder-{_folder_cache_key(root, split, classes, image_size)}.safetensors"
    try:
        if path.is_file():
            with safe_open(str(path), framework="pt") as f:
                notes = json.loads((f.metadata() or {}).get("notes", "[]"))
                return f.get_tensor("images"), f.get_tensor("labels"), tuple(classes), list(notes)
    except Exception:  # a damaged cache is rebuilt, never trusted
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
    images, labels, names, notes = _load_folder(root, split, classes, image_size)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"images": images.contiguous(), "labels": labels}, str(tmp), metadata={"notes": json.dumps(notes)})
        os.replace(tmp, path)
    except Exception as exc:  # read-only, full or missing cache: no reason to stop, we decode again next time
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
        notes = [*notes, f"note: could not write the decoded-image cache in {path.parent} ({reason}); going on "
                         f"without it (set {CACHE_ENV} to a writable folder to load faster next time)"]
    return images, labels, names, notes


def load_dataset(
    source: str,
    root: str | os.PathLike,
    split: str = "train",
    classes: Sequence[str] = ("horse", "bird"),
    image_size: int | None = None,
    train: bool = True,
    download: bool = False,
    max_images: int | None = None,
    use_cache: bool = True,
) -> ImageDataset:
    """Load the chosen classes of one image source as a Dataset of ``(image, label)``.

    Args:
        source: ``"cifar10"`` or ``"stl10"`` (through torchvision) or ``"folder"``
            (``<root>/<split>/<class>/*.jpg|png``, for offline copies or your own photos).
        root: where the data lives (or is downloaded to).
        split: ``"train"`` or ``"test"``; for STL-10 also ``"train+test"`` (the paper combines them).
        classes: class names, default horse and bird; labels become 0..k-1 in this order.
        image_size: resize to this side (divisible by 8); ``None`` keeps the native size
            (STL-10 defaults to 48, the paper's speed-up).
        train: random horizontal flips on access when True.
        download: let torchvision fetch CIFAR-10 / STL-10 (needs internet).
        max_images: keep at most this many, for quick profiles: the first images of each class, split as evenly
            as the classes' counts allow, in their original order.
        use_cache: cache decoded image folders as a uint8 tensor, so the next load takes a second.
    """
    from .checks import check_class_names, check_positive_int

    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}. Valid sources: {', '.join(SOURCES)}.")
    names = classes = check_class_names(classes, "load_dataset")
    _check_split(split)
    if image_size is not None:
        check_image_size(image_size)
    if max_images is not None:
        max_images = check_positive_int(max_images, "load_dataset: max_images (None keeps them all)")
    root = Path(root).expanduser()
    notes: list[str] = []
    if source == "cifar10":
        wanted = _select_classes(classes, CIFAR10_CLASSES, "CIFAR-10")
        images, labels, _ = _load_cifar10(root, split, download)
        images, labels = _relabel(images, labels, wanted)
    elif source == "stl10":
        wanted = _select_classes(classes, STL10_CLASSES, "STL-10")
        images, labels, _ = _load_stl10(root, split, download)
        images, labels = _relabel(images, labels, wanted)
        image_size = image_size or 48
    else:
        images, labels, _, notes = _load_folder_cached(root, split, classes, use_cache, image_size)
    if max_images is not None:
        keep = _first_of_each_class(labels, len(names), max_images, names)
        images, labels = images[keep], labels[keep]
    if image_size is not None:
        images = resize_uint8(images, image_size)
    elif images.shape[-1] % 8 != 0:
        check_image_size(int(images.shape[-1]))
    return ImageDataset(images.contiguous(), labels, names, flip=train, notes=notes)


def _check_split(split: str) -> None:
    """A split is one folder name ('train', 'test'; 'train+test' for STL-10), never a path out of the root."""
    if not isinstance(split, str) or not split or split in (".", "..") or "/" in split or "\\" in split:
        raise ValueError(f"split must be the name of one split such as 'train' or 'test', got {split!r}.")


def _first_of_each_class(labels: torch.Tensor, k: int, max_images: int, names: Sequence[str]) -> torch.Tensor:
    """Indices of at most ``max_images`` images, the first of each class, split as evenly as the classes' counts
    allow, in their original order: cutting the first N of a folder (sorted by class) would keep only the first
    class while ``classes`` still lists the others."""
    counts = torch.bincount(labels, minlength=k).tolist()
    if max_images >= sum(counts):
        return torch.arange(labels.numel())
    present = [c for c in range(k) if counts[c]]
    if max_images < len(present):
        raise ValueError(f"max_images={max_images} cannot keep one image of each of the {len(present)} classes "
                         f"{[names[c] for c in present]}: raise it to {len(present)} or more, or ask for fewer "
                         "classes.")
    quota, left, room = [0] * k, max_images, present
    while left and room:
        share = max(1, left // len(room))
        for c in room:
            take = min(share, counts[c] - quota[c], left)
            quota[c] += take
            left -= take
        room = [c for c in room if quota[c] < counts[c]]
    keep = torch.cat([torch.nonzero(labels == c).flatten()[:quota[c]] for c in range(k)])
    return keep.sort().values


def folder_classes(root: str | os.PathLike, split: str = "train") -> list[str]:
    """The class folder names under ``<root>/<split>``, sorted (what ``classes=all`` means for a folder)."""
    _check_split(split)
    split_dir = Path(root).expanduser() / split
    if not split_dir.is_dir():
        raise FileNotFoundError(_missing_root_message("folder", Path(root)))
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir())


def class_balance_notes(ds: ImageDataset, ratio: float = 0.25) -> list[str]:
    """Lines to show before training: what the loader converted or resized (``ds.notes``), and a class with
    no images (an error) or far fewer than the largest class."""
    if not 0 <= float(ratio) <= 1:  # NaN too
        raise ValueError(f"class_balance_notes: ratio is a share of the largest class, from 0 to 1, got {ratio!r}.")
    counts = torch.bincount(ds.labels, minlength=len(ds.classes)).tolist()
    most = max(counts) if counts else 0
    notes = list(getattr(ds, "notes", ()))
    for name, n in zip(ds.classes, counts):
        if n == 0:
            raise ValueError(f"The class {name!r} has no images in this data: check the class folder or --classes.")
        if n < ratio * most:
            notes.append(f"note: class {name!r} has {n} images against {most} for the largest class, so the model "
                         "will rarely see it; add images or balance the classes")
    return notes


def balanced_subset(ds: ImageDataset, per_class: int) -> ImageDataset:
    """The first ``per_class`` images of every class (a quick profile's cut that keeps every class)."""
    from .checks import check_positive_int

    per_class = check_positive_int(per_class, "balanced_subset: per_class")
    keep = torch.cat([torch.nonzero(ds.labels == c).flatten()[:per_class] for c in range(len(ds.classes))])
    keep = keep.sort().values
    return ImageDataset(ds.images[keep].contiguous(), ds.labels[keep], ds.classes, ds.flip, ds.notes)


@dataclass(frozen=True)
class DataSpec:
    """Where the course reads its images from: set by environment variables, with sensible defaults."""

    source: str
    root: str
    download: bool

    def load(self, split: str = "train", **kwargs) -> ImageDataset:
        return load_dataset(self.source, self.root, split=split, download=self.download, **kwargs)


def default_data() -> DataSpec:
    """The data the notebooks use: ``PEGASUS_DATA_SOURCE`` (default ``cifar10``),
    ``PEGASUS_DATA_ROOT`` (default ``~/.cache/pegasus-course/data``) and
    ``PEGASUS_DOWNLOAD`` (default ``1`` for the torchvision sources)."""
    source = os.environ.get("PEGASUS_DATA_SOURCE") or "cifar10"  # set but empty counts as unset, not as "here"
    root = os.environ.get("PEGASUS_DATA_ROOT") or str(cache_dir() / "data")
    download = os.environ.get("PEGASUS_DOWNLOAD", "1" if source != "folder" else "0") not in ("0", "", "false")
    return DataSpec(source=source, root=root, download=download and source != "folder")
