"""Bad input to the package's public functions (issue 32, items 8, 10 and 11): image files of every kind PIL reads,
the doctor's verdicts on too few images or levels, and every public function refusing what would give a silently
wrong result or a confusing error, with one message that says what to change."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
import torch

from pegasus_course import data
from tests.conftest import make_image_folder

nan, inf = float("nan"), float("inf")


def _save(path, array, **kwargs):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _pattern(size=32, seed=0) -> np.ndarray:
    """An (H, W, 3) uint8 image whose every pixel differs from its mirror images: a turn shows in any pixel."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# ---------------------------------------------------------------- item 8: image files


@pytest.mark.parametrize("orientation,turn", [(1, lambda a: a), (3, lambda a: np.rot90(a, 2)),
                                              (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))])
def test_exif_orientation_is_honoured(tmp_path, orientation, turn):
    from PIL import Image

    arr = _pattern()
    exif = Image.Exif()
    exif[0x0112] = orientation
    _save(tmp_path / "d" / "train" / "horse" / "0000.png", arr, exif=exif.tobytes())
    ds = data.load_dataset("folder", tmp_path / "d", classes=("horse",), train=False, use_cache=False)
    assert np.array_equal(ds.images[0].permute(1, 2, 0).numpy(), turn(arr))  # what a photo viewer shows
    assert any("turned 1 image" in n and "EXIF orientation" in n for n in ds.notes) == (orientation != 1)


def test_a_turned_photo_is_sized_as_shown(tmp_path):
    """A 48x32 file whose EXIF says 'turn a quarter' is a 32x48 picture: refused as such, or cropped upright."""
    from PIL import Image

    arr = np.zeros((32, 48, 3), np.uint8)  # stored 48 wide, 32 high
    arr[:, :8] = 255  # a white band on the stored left: on top once turned clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(tmp_path / "d" / "train" / "horse" / "0000.png", arr, exif=exif.tobytes())
    with pytest.raises(ValueError, match=r"are 32x48 \(1 image"):
        data.load_dataset("folder", tmp_path / "d", classes=("horse",), use_cache=False)
    ds = data.load_dataset("folder", tmp_path / "d", classes=("horse",), image_size=32, train=False, use_cache=False)
    upright = np.rot90(arr, -1)[8:40]  # 32 wide, 48 high, turned; then its centre square
    assert np.array_equal(ds.images[0].permute(1, 2, 0).numpy(), upright)


def test_bmp_gif_webp_and_tiff_are_read_and_other_files_counted(tmp_path):
    from PIL import Image

    arr = _pattern()
    few = (arr // 64 * 64).astype(np.uint8)  # 64 colours: a GIF's palette holds them exactly
    d = tmp_path / "d" / "train" / "horse"
    _save(d / "a.bmp", arr)
    _save(d / "b.gif", few)
    _save(d / "c.tiff", arr)
    _save(d / "d.webp", arr, lossless=True)
    (d / "e.heic").write_bytes(b"not read here")
    (d / "notes.txt").write_text("a learner's notes")
    (d / ".DS_Store").write_bytes(b"\0")
    ds = data.load_dataset("folder", tmp_path / "d", classes=("horse",), train=False, use_cache=False)
    assert len(ds) == (4 if ".webp" in data.readable_suffixes() else 3)
    got = ds.images.permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got[0], arr) and np.array_equal(got[1], few) and np.array_equal(got[2], arr)
    assert ".webp" not in data.readable_suffixes() or np.array_equal(got[3], arr)
    skipped = [n for n in ds.notes if "skipped" in n]
    assert len(skipped) == 1 and "skipped 2 files" in skipped[0] and ".heic: 1" in skipped[0] and ".txt: 1" in skipped[0]
    assert "convert the others to PNG" in skipped[0]


def test_an_animated_gif_keeps_its_first_frame_with_a_note(tmp_path):
    from PIL import Image

    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (0, 255)]
    path = tmp_path / "d" / "train" / "horse" / "anim.gif"
    path.parent.mkdir(parents=True)
    frames[0].save(path, save_all=True, append_images=frames[1:])
    ds = data.load_dataset("folder", tmp_path / "d", classes=("horse",), train=False, use_cache=False)
    assert ds.images[0].unique().tolist() == [0]
    assert "1 animated or multi-page image (the first frame kept)" in ds.notes[0]


def _truncated(path):
    _save(path, _pattern())
    path.write_bytes(path.read_bytes()[:200])


def _garbage(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff not really a JPEG")


def _float_tiff(path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(path)


@pytest.mark.parametrize("name,make,why", [
    ("cut.png", _truncated, "truncated|broken|OSError|SyntaxError"),
    ("fake.jpg", _garbage, "UnidentifiedImageError"),
    ("float.tif", _float_tiff, "32-bit floating-point pixels; save it as an 8-bit image"),
])
def test_a_file_that_cannot_be_decoded_is_one_line_naming_it(tmp_path, name, make, why):
    root = make_image_folder(tmp_path / "d", classes=("horse",), per_class=2)
    make(root / "train" / "horse" / name)
    with pytest.raises(ValueError, match=why) as err:
        data.load_dataset("folder", root, classes=("horse",), use_cache=False)
    text = str(err.value)
    assert str(root / "train" / "horse" / name) in text and "remove or replace that file" in text
    assert "\n" not in text


def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path, monkeypatch):
    from PIL import Image

    root = make_image_folder(tmp_path / "d", classes=("horse",), per_class=1)
    _save(root / "train" / "horse" / "bomb.png", np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 32x32 passes, 64x64 = 4096 > 2 x 1500 is a bomb
    with pytest.raises(ValueError, match="too large to decode safely") as err:
        data.load_dataset("folder", root, classes=("horse",), use_cache=False)
    assert str(root / "train" / "horse" / "bomb.png") in str(err.value) and "decompression-bomb" in str(err.value)


def _rewrite_keeping_size_and_mtime(path, array):
    """Write ``array`` over ``path`` (a BMP: same size for any content) and restore its modification time, until
    the file's status-change time has moved on (the clock it reads ticks every few milliseconds)."""
    from PIL import Image

    before = path.stat()
    deadline = time.monotonic() + 30
    while True:
        Image.fromarray(array).save(path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        now = path.stat()
        if now.st_ctime_ns != before.st_ctime_ns or time.monotonic() > deadline:
            break
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert now.st_ctime_ns != before.st_ctime_ns


@pytest.mark.parametrize("how", ["in place", "moved over it"])
def test_the_cache_notices_a_file_replaced_by_one_of_the_same_size_and_mtime(tmp_path, monkeypatch, how):
    from PIL import Image

    monkeypatch.setenv("PEGASUS_CACHE", str(tmp_path / "cache"))
    path = _save(tmp_path / "d" / "train" / "horse" / "0000.bmp", np.full((32, 32, 3), 10, np.uint8))
    first = data.load_dataset("folder", tmp_path / "d", classes=("horse",), train=False)
    assert first.images.unique().tolist() == [10] and len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    if how == "in place":
        _rewrite_keeping_size_and_mtime(path, np.full((32, 32, 3), 200, np.uint8))
    else:
        st = path.stat()
        other = tmp_path / "other.bmp"
        Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(other)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, path)
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    again = data.load_dataset("folder", tmp_path / "d", classes=("horse",), train=False)
    assert again.images.unique().tolist() == [200]
