"""Reading one image file for the image-folder loader (:mod:`pegasus_course.data`): which files are read, which
way up, in which colours, and one line naming a file that cannot be decoded.

Files with the suffixes of ``IMAGE_SUFFIXES`` that this Pillow opens are read (JPEG, PNG, BMP, GIF, WebP, TIFF);
an EXIF orientation is honoured; grey, 16-bit, palette, CMYK and transparent images become 8-bit RGB.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FOLDER_SIZES = (32, 48, 64)  # square sides a folder is trained at as it is; others need image_size (resized)


def readable_suffixes() -> tuple[str, ...]:
    """The suffixes of ``IMAGE_SUFFIXES`` this Pillow can open (WebP needs Pillow built with it)."""
    from PIL import Image

    Image.init()
    known = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return tuple(s for s in IMAGE_SUFFIXES if s in known)


def oriented_size(im) -> tuple[tuple[int, int], int]:
    """((W, H) as the image is shown, its EXIF orientation 1..8): orientations 5 to 8 turn it a quarter, swapping
    the header's sides. Reads the header only."""
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # an unreadable EXIF block: the pixels as stored
        orientation = 1
    size = (im.size[1], im.size[0]) if orientation in (5, 6, 7, 8) else im.size
    return size, orientation if 1 <= orientation <= 8 else 1


def unreadable(path: Path, exc: Exception) -> ValueError:
    """One line naming a file that cannot be decoded, why, and what to do."""
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        why = (f"it is too large to decode safely (more than {Image.MAX_IMAGE_PIXELS or 0:,} pixels, Pillow's "
               "decompression-bomb limit; the course trains on images of 32 to 64 px)")
    elif isinstance(exc, MemoryError):
        why = "out of memory while decoding it"
    else:
        why = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else 'cannot decode'}"
    return ValueError(f"{path} is not a readable image ({why}): remove or replace that file.")


def to_rgb(im) -> tuple[np.ndarray, str | None]:
    """A PIL image as an 8-bit RGB array (H, W, 3), and what was converted (None for plain RGB or palette).

    PIL's ``convert("RGB")`` clips 16-bit grey to white, so those are scaled (65535 -> 255) here; transparent
    images are composited on white (their hidden colour under alpha 0 is arbitrary, often black).
    """
    from PIL import Image

    mode = im.mode
    if mode.startswith("I"):  # 16-bit grey PNG (I;16, I;16B, or I in older Pillow): 0..65535
        grey = np.clip(np.rint(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), "16-bit grey"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB")), "transparent"
    if mode == "RGB":
        return np.array(im), None
    how = {"L": "grey", "1": "black-and-white", "CMYK": "CMYK"}.get(mode)
    return np.array(im.convert("RGB")), how


def sizes_message(split_dir: Path, sizes: Counter, example: dict) -> str:
    found = ", ".join(f"{w}x{h} ({n} image{'s' if n > 1 else ''}, e.g. {example[(w, h)].relative_to(split_dir)})"
                      for (w, h), n in sizes.most_common())
    allowed = ", ".join(map(str, FOLDER_SIZES[:-1])) + f" or {FOLDER_SIZES[-1]}"
    fix = (f"Pass --image-size {allowed} to resize them all as they are read (image_size= in Python; non-square "
           "images are cropped to their centre square first)")
    if len(sizes) > 1:
        return f"The image folder {split_dir} holds images of several sizes: {found}. {fix}, or remove the odd ones."
    (w, h), = sizes
    shape = "not square" if w != h else f"the course trains squares of {allowed} px"
    return f"The images in {split_dir} are {found} ({shape}). {fix}."


def folder_notes(split_dir: Path, converted: Counter, turned: int, skipped: Counter, readable: tuple[str, ...],
                 sizing: tuple) -> list[str]:
    """The loader's notes on a split: what was converted, turned upright, resized or skipped (one line each).
    ``sizing`` is (resized, cropped, images, image_size, sizes found)."""
    resized, cropped, total, image_size, sizes = sizing
    notes = []
    if converted:
        detail = {"16-bit grey": " (scaled to 8 bits)", "transparent": " (composited on white)",
                  "animated or multi-page": " (the first frame kept)"}
        notes.append(f"note: converted to 8-bit RGB in {split_dir}: " + ", ".join(
            f"{n} {how} image{'s' if n > 1 else ''}{detail.get(how, '')}" for how, n in converted.most_common()))
    if turned:
        notes.append(f"note: turned {turned} image{'s' if turned > 1 else ''} in {split_dir} upright, as their EXIF "
                     "orientation asks")
    if resized or cropped:
        notes.append(f"note: resized {resized} of {total} images in {split_dir} to {image_size}x{image_size}"
                     + (f" ({cropped} non-square cropped to the centre square first)" if cropped else "")
                     + "; sizes found: " + ", ".join(f"{w}x{h}" for (w, h), _ in sizes.most_common()))
    if skipped:
        n = sum(skipped.values())
        notes.append(f"note: skipped {n} file{'s' if n > 1 else ''} in {split_dir} that {'are' if n > 1 else 'is'} "
                     "not an image this loader reads (" + ", ".join(f"{ext}: {k}" for ext, k in skipped.most_common())
                     + f"); it reads {', '.join(readable)}: convert the others to PNG to use them")
    return notes
