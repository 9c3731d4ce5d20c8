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
from pegasus_course.colour_evidence import ChannelShift
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
    (d / "._a.bmp").write_bytes(b"\0\5\26\7 a macOS resource fork, not an image")  # hidden: skipped silently
    ds = data.load_dataset("folder", tmp_path / "d", classes=("horse",), train=False, use_cache=False)
    assert len(ds) == (4 if ".webp" in data.readable_suffixes() else 3)
    got = ds.images.permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got[0], arr) and np.array_equal(got[1], few) and np.array_equal(got[2], arr)
    assert ".webp" not in data.readable_suffixes() or np.array_equal(got[3], arr)
    skipped = [n for n in ds.notes if "skipped" in n]
    assert len(skipped) == 1 and all(part in skipped[0] for part in ("skipped 2 files", ".heic: 1", ".txt: 1"))
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


# ---------------------------------------------------------------- item 10: the doctor's verdicts need enough images


@pytest.fixture(scope="module")
def smooth_set():
    """Smooth 3x8x8 training and held-out images, their data schedule and the linear denoiser fitted to them (a
    healthy score: it explains as much of the noise as the doctor's own linear reference)."""
    import torch.nn.functional as F

    from pegasus_course.doctor import StationaryGaussianScore
    from pegasus_course.schedule_from_data import data_schedule

    def images(n, seed):
        g = torch.Generator().manual_seed(seed)
        base = F.interpolate(torch.rand(n, 3, 2, 2, generator=g), size=(8, 8), mode="bilinear", align_corners=False)
        return (0.15 + 0.7 * base + 0.05 * torch.rand(n, 3, 8, 8, generator=g)).clamp(0, 1)

    train = images(256, 0)
    return train, images(64, 1), data_schedule(train), StationaryGaussianScore(train)


def _judged(report):
    return {v.name: v.fired for v in report.verdicts}


@pytest.mark.parametrize("n_images,n_levels", [(2, 2), (4, 2), (7, 3), (4, 8)])
def test_too_few_images_make_the_averaged_verdicts_unreliable_not_failed(smooth_set, n_images, n_levels):
    from pegasus_course.doctor import MIN_IMAGES, examine

    train, held, ds, lin = smooth_set
    report = examine(lin, ds.schedule(), held[:n_images], train, n_levels=n_levels, data=ds)
    judged = _judged(report)
    unjudged = ("data in the wrong range", "small-sigma levels undertrained", "untrained or diverged weights")
    assert all(judged[name] is None for name in unjudged)  # an "ok" from so few images would be a guess
    assert all(judged[name] is False for name in ("sigma_1 too small for the data", "too few levels",
                                                  "step size off by more than 2x"))
    for v in report.verdicts:
        if v.fired is None:
            assert f"too few images: {n_images} < {MIN_IMAGES}" in v.measured and "--n-images" in v.measured
    assert report.healthy and "(3 not judged, marked [--]" in report.lines()[-1]
    assert "not a clean bill of health" in report.lines()[-1]


def test_the_same_verdicts_are_judged_with_enough_images(smooth_set):
    from pegasus_course.doctor import MIN_IMAGES, StationaryGaussianScore, examine

    train, held, ds, lin = smooth_set
    report = examine(lin, ds.schedule(), held[:MIN_IMAGES], train, n_levels=8, data=ds)
    assert all(v.fired is False for v in report.verdicts), report.lines()
    other_range = StationaryGaussianScore(2 * train - 1)  # a score learned on [-1, 1] images
    wrong = examine(other_range, ds.schedule(), held[:MIN_IMAGES], train, n_levels=8, data=ds)
    assert _judged(wrong)["data in the wrong range"] is True


@pytest.mark.parametrize("offsets,expected", [((0.0, 0.3), None), ((0.3, 0.3), True), ((0.0, 0.0), False),
                                              ((0.05, 0.1), False)])
def test_a_shift_is_judged_only_where_it_clears_its_noise(smooth_set, offsets, expected):
    """The denoised estimates' mean is judged against 0.15 only where it clears it by two standard errors: a score
    that moves half of the images' estimates by 0 and half by 0.3 (mean 0.15, spread 0.15) is neither passed nor
    failed; 0.3 for all fails, 0 or 0.05..0.1 passes."""
    from pegasus_course.doctor import examine

    train, held, ds, lin = smooth_set
    per_image = torch.tensor(list(offsets) * 32)
    cut = ds.sigma_L * (ds.sigma_1 / ds.sigma_L) ** (2 / 3)  # the largest third of the levels, where it is judged

    def shifted(x, s):
        b = per_image[:x.shape[0]].view(-1, 1, 1, 1) * (s >= cut).view(-1, 1, 1, 1)
        return lin(x, s) + b / s.view(-1, 1, 1, 1) ** 2  # Tweedie's estimate x + s^2 score moves by b
    report = examine(shifted, ds.schedule(), held, train, batch_size=64, data=ds)
    verdict = next(v for v in report.verdicts if v.name == "data in the wrong range")
    assert verdict.fired is expected, verdict.measured
    assert verdict.measured.startswith("unreliable: no level of the largest third") == (expected is None)


def test_the_shipped_model_with_four_images_and_two_levels_is_not_failed(cifar_root, tmp_path, capsys):
    """The probe's case: `doctor --n-images 4 --levels 2` failed the shipped model for "data in the wrong range"."""
    import json

    from pegasus_course import cli

    code = cli.main(["doctor", "--dataset", "folder", "--data-root", str(cifar_root), "--n-images", "4", "--levels",
                     "2", "--device", "cpu", "--json", "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    res = json.loads(out)
    judged = {v["name"]: v["fired"] for v in res["verdicts"]}
    assert code == 0 and res["healthy"], out
    unjudged = ("data in the wrong range", "small-sigma levels undertrained", "untrained or diverged weights")
    assert all(judged[name] is None for name in unjudged)
    assert all(judged[name] is False for name in judged if name not in unjudged)
    assert "too few images: 4 < 8" in next(v["measured"] for v in res["verdicts"] if v["name"] ==
                                           "data in the wrong range")


@pytest.mark.parametrize("kwargs,error,message", [
    ({"n_levels": 1}, ValueError, "n_levels .* at least 2"),
    ({"n_levels": 2.5}, TypeError, "n_levels .* must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
    ({"n_tweedie": 0}, ValueError, "n_tweedie must be at least 1"),
    ({"seed": -1}, ValueError, "seeds must be non-negative"),
])
def test_examine_refuses_counts_it_cannot_use(smooth_set, kwargs, error, message):
    from pegasus_course.doctor import examine

    train, held, ds, lin = smooth_set
    with pytest.raises(error, match=message):
        examine(lin, ds.schedule(), held[:8], train, data=ds, **kwargs)


# ---------------------------------------------------------------- item 11: every public function checks its input


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """What the calls below need: a tiny score network and classifier, a schedule, a small image folder."""
    from pegasus_course.classifier import ClassifierConfig, NoisyClassifier
    from pegasus_course.generate import Schedule
    from pegasus_course.nn import ScoreUNet, ScoreUNetConfig

    torch.manual_seed(0)
    folder = make_image_folder(tmp_path_factory.mktemp("lib") / "d", classes=("horse", "bird"), per_class=3)
    return {"model": ScoreUNet(ScoreUNetConfig.for_image_size(32, 8, num_res_blocks=1, attn_heads=2,
                                                              attn_dim_head=8)).eval(),
            "clf": NoisyClassifier(ClassifierConfig(image_size=32, base_channels=8)).eval(),
            "schedule": Schedule(5.0, 0.5, 3, 1), "folder": folder, "out": tmp_path_factory.mktemp("out"),
            "x": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))}


def _explorer(c, n=3):
    from pegasus_course.widgets import InterpolationExplorer

    return InterpolationExplorer(c["model"], c["schedule"], [10, 11, 12], n=n, out_dir=c["out"] / "explorer")


SCORE = lambda x, s: -x  # noqa: E731 - the score of N(0, I)
LEVELS = torch.tensor([1.0, 0.5])
PROBS = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
ZERO_255 = torch.rand(2, 3, 8, 8) * 255
PLUS_MINUS_1 = torch.rand(2, 3, 8, 8) * 2 - 1
NAN_IMAGES = torch.stack([torch.zeros(3, 8, 8), torch.full((3, 8, 8), nan)])
SHIFT = ChannelShift((0.1, 0.0, -0.1), (0.05, 0.01, 0.02), 16)


def _bad_calls():
    """(what, call(ctx), exception, message): the probe's examples first, then what a fresh probe found."""
    from pegasus_course import (along_k, classifier, colour_evidence, evaluation, generate, interpolation, intervals,
                                losses, nn, plotting, plotting_quality, sampling, schedule_from_data, sigmas, toy,
                                widgets)

    labels = torch.tensor([0, 1])
    return [
        # the probe's examples (issue 32, item 11)
        ("ClassifierConfig: one string of names", lambda c: classifier.ClassifierConfig(class_names="horse bird"),
         ValueError, r"one per class, e\.g\. \('horse', 'bird'\)"),
        ("png_bytes: 0-255 floats", lambda c: widgets.png_bytes(ZERO_255[0]), ValueError, "Divide them by 255"),
        ("png_bytes: [-1, 1] images", lambda c: widgets.png_bytes(PLUS_MINUS_1[0]), ValueError,
         r"\(images \+ 1\) / 2"),
        ("png_bytes: NaN", lambda c: widgets.png_bytes(NAN_IMAGES[1]), ValueError, "1 of 1 image holds NaN"),
        ("save_images: 0-255 floats", lambda c: plotting.save_images(ZERO_255, c["out"] / "a"), ValueError,
         "Divide them by 255"),
        ("save_images: [-1, 1] images", lambda c: plotting.save_images(PLUS_MINUS_1, c["out"] / "b"), ValueError,
         r"\(images \+ 1\) / 2"),
        ("save_images: NaN", lambda c: plotting.save_images(NAN_IMAGES, c["out"] / "c"), ValueError,
         "1 of 2 images hold NaN"),
        ("save_grid: 0-255 floats", lambda c: plotting.save_grid(ZERO_255, c["out"] / "a.png"), ValueError,
         "Divide them by 255"),
        ("save_grid: [-1, 1] images", lambda c: plotting.save_grid(PLUS_MINUS_1, c["out"] / "b.png"), ValueError,
         r"\(images \+ 1\) / 2"),
        ("save_grid: NaN", lambda c: plotting.save_grid(NAN_IMAGES, c["out"] / "c.png"), ValueError,
         "1 of 2 images hold NaN"),
        ("predict_proba: sigma NaN", lambda c: classifier.predict_proba(c["clf"], c["x"], nan), ValueError,
         "sigma must be 0 or more and finite"),
        ("predict_proba: sigma -1", lambda c: classifier.predict_proba(c["clf"], c["x"], -1.0), ValueError,
         "sigma must be 0 or more and finite"),
        ("accuracy: sigma NaN (was 1.0)", lambda c: classifier.accuracy(c["clf"], c["x"], labels, nan), ValueError,
         "sigma must be 0 or more and finite"),
        ("accuracy: sigma -1", lambda c: classifier.accuracy(c["clf"], c["x"], labels, -1.0), ValueError,
         "sigma must be 0 or more and finite"),
        ("resize_uint8: float images", lambda c: data.resize_uint8(torch.rand(2, 3, 8, 8), 16), TypeError,
         r"expected uint8 images .* \(images \* 255\)\.round\(\)"),
        ("interpolate: ks=[2.5]", lambda c: interpolation.interpolate(SCORE, (1, 2), 3, LEVELS, 1, 0.1,
                                                                       image_shape=(1, 2, 2), ks=[2.5],
                                                                       progress=False),
         ValueError, r"k must be a whole number in 0..n \+ 1 = 0..4"),
        ("langevin: sigma -1", lambda c: sampling.langevin(SCORE, torch.zeros(1, 2), 0.1, 2, -1.0), ValueError,
         "sigma must be positive and finite"),
        ("langevin: sigma NaN", lambda c: sampling.langevin(SCORE, torch.zeros(1, 2), 0.1, 2, nan), ValueError,
         "sigma must be positive and finite"),
        ("tweedie: sigma -1", lambda c: sampling.tweedie(SCORE, torch.zeros(1, 2), -1.0), ValueError,
         "sigma must be positive and finite"),
        ("tweedie: sigma NaN", lambda c: sampling.tweedie(SCORE, torch.zeros(1, 2), nan), ValueError,
         "sigma must be positive and finite"),
        ("select_pairs: NaN probabilities", lambda c: classifier.select_pairs(torch.tensor([[nan, nan], [0.2, 0.8]]),
                                                                              ["horse", "bird"]),
         ValueError, r"finite and in \[0, 1\], but row 0"),
        ("select_pairs: 3 columns for 2 names", lambda c: classifier.select_pairs(torch.full((2, 3), 1 / 3),
                                                                                   ["horse", "bird"]),
         ValueError, r"one column per class \(2: \['horse', 'bird'\]\), shape \(B, 2\), got \(2, 3\)"),
        ("sliced_score_matching_loss: n_projections 0",
         lambda c: losses.sliced_score_matching_loss(SCORE, torch.randn(4, 3), LEVELS, n_projections=0),
         ValueError, "n_projections .* must be at least 1"),
        ("load_dataset: classes=[]", lambda c: data.load_dataset("folder", c["folder"], classes=[]), ValueError,
         r"no class names: name at least one"),
        ("load_dataset: max_images below the number of classes",
         lambda c: data.load_dataset("folder", c["folder"], classes=("horse", "bird"), max_images=1),
         ValueError, r"max_images=1 cannot keep one image of each of the 2 classes"),
        ("explorer.choose_ends(1.5, 2)", lambda c: _explorer(c).choose_ends(1.5, 2), TypeError,
         "a seed must be a whole number"),
        # found by a fresh probe
        ("explorer.choose_ends: a seed not among the candidates", lambda c: _explorer(c).choose_ends(10, 99),
         ValueError, r"seed 99 is not one of the candidates \[10, 11, 12\]"),
        ("explorer: n 2.5", lambda c: _explorer(c, n=2.5), TypeError, "n .* must be an integer"),
        ("explorer.show_k(2.5)", lambda c: _explorer(c).show_k(2.5), ValueError, "k must be a whole number"),
        ("explorer.click_candidate(-1) (was the last)", lambda c: _explorer(c).click_candidate(-1), ValueError,
         "index must be at least 0"),
        ("explorer.set_row: 0-255 images", lambda c: _explorer(c).set_row(torch.rand(5, 3, 32, 32) * 255),
         ValueError, "expected images in"),
        ("png_bytes: a batch", lambda c: widgets.png_bytes(torch.rand(1, 3, 8, 8)), ValueError, r"pass images\[i\]"),
        ("png_bytes: upscale 1.5", lambda c: widgets.png_bytes(torch.rand(3, 8, 8), 1.5), TypeError,
         "upscale must be an integer"),
        ("save_grid: nrow 0", lambda c: plotting.save_grid(torch.rand(2, 3, 8, 8), c["out"] / "n.png", nrow=0),
         ValueError, "nrow .* must be at least 1"),
        ("save_images: numbers 1.5", lambda c: plotting.save_images(torch.rand(1, 3, 8, 8), c["out"] / "d",
                                                                    numbers=[1.5]),
         ValueError, "numbers name the files"),
        ("save_images: one number twice", lambda c: plotting.save_images(torch.rand(2, 3, 8, 8), c["out"] / "e",
                                                                         numbers=[3, 3]),
         ValueError, "two images would get one file name"),
        ("show_rows: one row without its axis", lambda c: plotting.show_rows(torch.rand(3, 3, 8, 8)), ValueError,
         r"\(P, K, 3, H, W\)"),
        ("show_rows: highlight beyond the row", lambda c: plotting.show_rows(torch.rand(1, 3, 3, 8, 8), highlight=9),
         ValueError, r"highlight .* 0..2"),
        ("plot_lines: a series of another length", lambda c: plotting.plot_lines([1, 2, 3], {"a": [1, 2]}),
         ValueError, "has 2 values for 3 x values"),
        ("plot_curve: smooth -1", lambda c: plotting.plot_curve([1.0, 2.0], smooth=-1), ValueError,
         "smooth .* must be at least 0"),
        ("score_field: no levels", lambda c: plotting.score_field(SCORE, []), ValueError, "at least one noise level"),
        ("show_images: scale 0", lambda c: plotting.show_images(torch.rand(2, 3, 8, 8), scale=0), ValueError,
         "scale .* > 0"),
        ("accuracy: a label beyond the classes (was 0.0)",
         lambda c: classifier.accuracy(c["clf"], c["x"], torch.tensor([0, 5])), ValueError,
         r"labels are class indices 0..1 \(horse, bird\), got 5"),
        ("predict_proba: batch_size 0", lambda c: classifier.predict_proba(c["clf"], c["x"], batch_size=0),
         ValueError, "batch_size must be at least 1"),
        ("select_pairs: n_pairs 0 (was [])", lambda c: classifier.select_pairs(PROBS, ["horse", "bird"], 0),
         ValueError, "n_pairs must be at least 1"),
        ("select_pairs: one class twice", lambda c: classifier.select_pairs(PROBS, ["horse", "bird"], 1, "horse",
                                                                            "horse"),
         ValueError, "first and second are both 'horse'"),
        ("ClassifierConfig: a name twice", lambda c: classifier.ClassifierConfig(class_names=("horse", "horse")),
         ValueError, "distinct"),
        ("ClassifierConfig: channel_mults 1.5 (was 1)",
         lambda c: classifier.ClassifierConfig(channel_mults=(1.5, 2, 2)), ValueError, "channel_mults"),
        ("guided_score_fn: scale NaN", lambda c: classifier.guided_score_fn(SCORE, c["clf"], [0], nan), ValueError,
         "scale .* finite"),
        ("target_weights: class 5 of 2", lambda c: classifier.target_weights([5], 2), ValueError,
         r"whole numbers 0..1"),
        ("train_classifier: lr NaN", lambda c: classifier.train_classifier(
            c["clf"], (c["x"] * 255).to(torch.uint8), labels, LEVELS, steps=1, batch_size=2, lr=nan, progress=False),
         ValueError, r"lr \(the learning rate\) must be a finite number > 0"),
        ("as_float_images: int32 0-1000", lambda c: classifier.as_float_images(torch.full((1, 3, 2, 2), 1000)),
         ValueError, "integer images hold 0-255"),
        ("sigma_vector: NaN", lambda c: classifier.sigma_vector(nan, 2, "cpu"), ValueError, "finite"),
        ("choose_horse_and_bird: seed 1.5", lambda c: classifier.choose_horse_and_bird(c["clf"], c["x"], [1.5, 2]),
         TypeError, "seeds must be integers"),
        ("pegasus_rate: no rows (was NaN)", lambda c: evaluation.pegasus_rate(torch.rand(0), torch.rand(0)),
         ValueError, "P >= 1"),
        ("pegasus_rate: NaN p (was 1.0)", lambda c: evaluation.pegasus_rate(torch.tensor([nan]), torch.tensor([0.9])),
         ValueError, r"finite and in \[0, 1\]"),
        ("crosses: threshold 2", lambda c: evaluation.crosses(torch.rand(3), torch.rand(3), 2.0), ValueError,
         "strictly between 0 and 1"),
        ("pair_kind: p 2", lambda c: evaluation.pair_kind(2.0, 0.7), ValueError, r"finite and in \[0, 1\]"),
        ("horse_probability: one class twice (was 0.5)",
         lambda c: evaluation.horse_probability(c["clf"], c["x"], "horse", "horse"), ValueError, "both 'horse'"),
        ("colour_shift: a reference of two channels",
         lambda c: evaluation.colour_shift(c["x"], {"mean": [0.5, 0.5], "std": [0.2, 0.2]}), ValueError,
         "three 'mean' and three 'std'"),
        ("frechet_distance_from_stats: NaN covariance",
         lambda c: evaluation.frechet_distance_from_stats(torch.zeros(2), torch.full((2, 2), nan), torch.zeros(2),
                                                          torch.eye(2)), ValueError, "NaN or inf"),
        ("extract_features: batch_size 0", lambda c: evaluation.extract_features(c["clf"], c["x"], 0), ValueError,
         "batch_size must be at least 1"),
        ("Schedule: T 2.5", lambda c: generate.Schedule(5.0, 0.5, 3, 2.5), TypeError, "n_steps_each .* integer"),
        ("Schedule: L 1", lambda c: generate.Schedule(5.0, 0.5, 1, 1), ValueError, r"num_scales \(L\) must be at least 2"),
        ("Schedule: sigma_max NaN", lambda c: generate.Schedule(nan, 0.5, 3, 1), ValueError,
         "sigma_max must be a finite number > 0"),
        ("Schedule: sigma_max below sigma_min", lambda c: generate.Schedule(0.1, 0.5, 3, 1).step_lr(), ValueError,
         "sigma_max > sigma_min"),
        ("Guidance: scale NaN", lambda c: generate.Guidance(c["clf"], nan), ValueError, "scale .* finite"),
        ("pegasus_batch: no pairs (was an empty tensor)",
         lambda c: generate.pegasus_batch(c["model"], [], 3, [1], c["schedule"], progress=False), ValueError,
         "no pairs given"),
        ("pegasus_batch: ks=[2.5] (was k = 2)",
         lambda c: generate.pegasus_batch(c["model"], [(1, 2)], 3, [2.5], c["schedule"], progress=False),
         ValueError, "k must be a whole number"),
        ("pegasus_rows: n 2.5", lambda c: generate.pegasus_rows(c["model"], [(1, 2)], 2.5, c["schedule"],
                                                                progress=False),
         TypeError, "n .* must be an integer"),
        ("interpolant_targets: class 5 of 2", lambda c: generate.interpolant_targets([1], 3, 1, 5, 1, 2), ValueError,
         "class indices are 0..1"),
        ("mix_weights: k 2.5 (was a weight between interpolants)", lambda c: interpolation.mix_weights(2.5, 3),
         ValueError, "whole number"),
        ("spread_ks: count 0 (was [])", lambda c: interpolation.spread_ks(15, 0), ValueError, "count .* at least 1"),
        ("spread_ks: include beyond n", lambda c: interpolation.spread_ks(15, 3, include=20), ValueError,
         "include must be an interpolant 1..n = 1..15"),
        ("langevin: n_steps -1 (was x_init back)", lambda c: sampling.langevin(SCORE, torch.zeros(1, 2), 0.1, -1, 1.0),
         ValueError, "n_steps must be at least 0"),
        ("langevin: step -1", lambda c: sampling.langevin(SCORE, torch.zeros(1, 2), -0.1, 2, 1.0), ValueError,
         r"step_size \(alpha\) must be a finite number >= 0"),
        ("annealed_langevin: x_init of another shape",
         lambda c: sampling.annealed_langevin(SCORE, (1, 2), LEVELS, 1, 0.1, x_init=torch.zeros(3, 2),
                                              progress=False), ValueError, r"x_init has shape \(3, 2\)"),
        ("annealed_langevin: a negative shape", lambda c: sampling.annealed_langevin(SCORE, (-1, 2), LEVELS, 1, 0.1,
                                                                                     progress=False),
         ValueError, "shape must be positive whole numbers"),
        ("nearest_levels: target NaN (was level 0)", lambda c: sampling.nearest_levels(LEVELS, [nan]), ValueError,
         "Targets are noise levels"),
        ("record_tape: -1 draws (was {})", lambda c: sampling.record_tape(sampling.SeededNoise([1]), (1, 2), -1),
         ValueError, "num_draws .* at least 1"),
        ("dsm_loss_given: z of another shape", lambda c: losses.dsm_loss_given(SCORE, torch.randn(4, 3),
                                                                               torch.ones(4), torch.randn(4, 1)),
         ValueError, r"z must have x's shape \(4, 3\)"),
        ("dsm_loss_given: sigma -1", lambda c: losses.dsm_loss_given(SCORE, torch.randn(4, 3), torch.full((4,), -1.0),
                                                                     torch.randn(4, 3)),
         ValueError, "positive and finite"),
        ("technique2_overlap: gamma 0.5", lambda c: sigmas.technique2_overlap(0.5, 10), ValueError, ">= 1"),
        ("noise_scale_ratio: target 2 (was 1.0)", lambda c: sigmas.noise_scale_ratio(10, 2.0), ValueError,
         "strictly between 0 and 0.9973"),
        ("technique4_objective: eps -1", lambda c: sigmas.technique4_objective(-1, 1.1, 0.01, 5), ValueError,
         r"eps \(the base step size\) must be a finite number > 0"),
        ("two_gaussians: weight 2", lambda c: toy.two_gaussians(2.0), ValueError, "strictly between 0 and 1"),
        ("two_gaussians: std -1 (was sampled)", lambda c: toy.two_gaussians(0.2, 5.0, -1.0), ValueError,
         "stds positive"),
        ("GaussianMixture.score: sigma -1", lambda c: toy.two_gaussians().score(torch.zeros(2, 2), -1.0), ValueError,
         "sigma must be 0 or more"),
        ("GaussianMixture.sample: n 2.5", lambda c: toy.two_gaussians().sample(2.5), TypeError, "integer"),
        ("dsm_optimum: sigma 0 (was NaN)", lambda c: toy.dsm_optimum(torch.randn(5, 2), torch.randn(3, 2), 0.0),
         ValueError, "positive and finite"),
        ("ToyScoreNet: sigma -1 (was NaN)", lambda c: toy.ToyScoreNet()(torch.zeros(1, 2), torch.tensor([-1.0])),
         ValueError, "positive and finite"),
        ("level_similarity: sigma -1 (was NaN)",
         lambda c: nn.level_similarity(nn.FourierEmbedding(8, 4), torch.tensor([-1.0, 1.0])), ValueError,
         "positive and finite"),
        ("FourierEmbedding: emb_dim 0", lambda c: nn.FourierEmbedding(0), ValueError, "emb_dim must be at least 1"),
        ("largest_distance: exact='yes'", lambda c: schedule_from_data.largest_distance(torch.rand(3, 3, 2, 2),
                                                                                        exact="yes"),
         TypeError, "True, False or None"),
        ("ImageDataset: a label beyond the classes",
         lambda c: data.ImageDataset(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 2]), ("a", "b"),
                                     False), ValueError, r"class indices 0..1"),
        ("load_dataset: classes as one string of two", lambda c: data.load_dataset("folder", c["folder"],
                                                                                    classes="horse bird"),
         ValueError, r"e\.g\. \('horse', 'bird'\)"),
        ("load_dataset: split '..'", lambda c: data.load_dataset("folder", c["folder"], split=".."), ValueError,
         "name of one split"),
        ("load_dataset: image_size True", lambda c: data.load_dataset("folder", c["folder"], image_size=True),
         TypeError, "whole number of pixels"),
        ("class_balance_notes: ratio NaN", lambda c: data.class_balance_notes(
            data.load_dataset("folder", c["folder"]), nan), ValueError, "from 0 to 1"),
        # the review of the row-reading and colour code
        ("early_row: n 2.0 (was a TypeError from range)",
         lambda c: along_k.early_row(c["model"], (1, 2), 2.0, c["schedule"], 1.0), TypeError,
         r"early_row: n \(the number of interpolants\) must be an integer"),
        ("early_row: one seed for a pair", lambda c: along_k.early_row(c["model"], 5, 2, c["schedule"], 1.0),
         TypeError, "early_row: pair"),
        ("early_row: k beyond the row", lambda c: along_k.early_row(c["model"], (1, 2), 2, c["schedule"], 1.0,
                                                                     ks=[0, 4]), ValueError, r"0\.\.n \+ 1 = 0\.\.3"),
        ("shift_from: one number for the reference (was iterated)",
         lambda c: colour_evidence.shift_from(c["x"], 0.5), ValueError, r"three numbers, one per channel"),
        ("shift_from: two numbers", lambda c: colour_evidence.shift_from(c["x"], [0.5, 0.5]), ValueError,
         "three numbers"),
        ("shift_bound_from_stats: reference None",
         lambda c: colour_evidence.shift_bound_from_stats({"mean": [0.5] * 3, "std": [0.2] * 3}, 16, None),
         ValueError, "three numbers"),
        ("ChannelShift.interval: z NaN", lambda c: SHIFT.interval(0, nan), ValueError, r"z \(standard errors\)"),
        ("ChannelShift.interval: z -2", lambda c: SHIFT.interval(0, -2.0), ValueError, "> 0"),
        ("ChannelShift.interval: channel 3", lambda c: SHIFT.interval(3), ValueError, r"0 \(red\)"),
        ("ChannelShift.describe: z '2'", lambda c: SHIFT.describe("2"), TypeError, "must be a number"),
        ("crossing_band: p 1.2", lambda c: plotting_quality.crossing_band([0, 1], [0.9, 1.2]), ValueError,
         r"finite and in \[0, 1\]"),
        ("crossing_band: p NaN", lambda c: plotting_quality.crossing_band([0, 1], [0.9, nan]), ValueError,
         r"finite and in \[0, 1\]"),
        ("crossing_band: threshold 1", lambda c: plotting_quality.crossing_band([0, 1], [0.9, 0.1], 1.0),
         ValueError, "strictly between 0 and 1"),
        ("pair_kind: threshold NaN", lambda c: evaluation.pair_kind(0.9, 0.1, nan), ValueError,
         "strictly between 0 and 1"),
        ("pairs_of_each_kind: threshold 0", lambda c: evaluation.pairs_of_each_kind([0.9, 0.1], [1, 2], threshold=0),
         ValueError, "strictly between 0 and 1"),
        ("crosses: threshold 'half'", lambda c: evaluation.crosses(torch.tensor([0.9]), torch.tensor([0.1]), "half"),
         TypeError, "must be a number"),
        ("mean_se: z -1", lambda c: intervals.mean_se([1.0, 2.0], z=-1.0), ValueError, "z"),
    ]


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("what,call,error,message", BAD_CALLS, ids=[case[0] for case in BAD_CALLS])
def test_public_functions_refuse_bad_input_with_one_message(ctx, what, call, error, message):
    with pytest.raises(error, match=message) as info:
        call(ctx)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


def test_save_functions_refuse_before_writing_anything(ctx, tmp_path):
    from pegasus_course import plotting

    for bad in (ZERO_255, PLUS_MINUS_1, NAN_IMAGES):
        with pytest.raises(ValueError):
            plotting.save_images(bad, tmp_path / "images")
        with pytest.raises(ValueError):
            plotting.save_grid(bad, tmp_path / "grid" / "g.png")
    assert not list(tmp_path.iterdir())


def _png_pixels(blob: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


def _good_calls():
    """(what, call(ctx), check(result)): inputs just inside the limits still work, with hand-worked results."""
    from pegasus_course import (classifier, colour_evidence, evaluation, generate, interpolation, losses, plotting,
                                plotting_quality, sampling, sigmas, toy, widgets)

    grey = torch.full((3, 2, 2), 128, dtype=torch.uint8)
    overshoot = torch.tensor([-0.05, 0.5, 1.05]).view(3, 1, 1).expand(3, 2, 2)  # a sampler's overshoot: clamped
    return [
        ("ClassifierConfig: a list of names", lambda c: classifier.ClassifierConfig(class_names=["horse", "bird"]),
         lambda cfg: cfg.class_names == ("horse", "bird") and cfg.num_classes == 2),
        ("png_bytes: uint8 is scaled, not clamped", lambda c: widgets.png_bytes(grey, upscale=2),
         lambda b: _png_pixels(b).shape == (4, 4, 3) and (_png_pixels(b) == 128).all()),
        ("png_bytes: a sampler's overshoot is clamped", lambda c: widgets.png_bytes(overshoot, upscale=1),
         lambda b: _png_pixels(b)[0, 0].tolist() == [0, 128, 255]),
        ("save_images: uint8 (was drawn white)", lambda c: plotting.save_images(grey[None], c["out"] / "u8"),
         lambda paths: (_png_pixels(paths[0].read_bytes()) == 128).all()),
        ("save_images: seeds name the files", lambda c: plotting.save_images(torch.rand(2, 3, 4, 4), c["out"] / "s",
                                                                             numbers=np.array([7, 1234])),
         lambda paths: [p.name for p in paths] == ["sample-007.png", "sample-1234.png"]),
        ("predict_proba: sigma 0 is clean", lambda c: classifier.predict_proba(c["clf"], c["x"], 0.0),
         lambda p: p.shape == (2, 2) and torch.allclose(p.sum(1), torch.ones(2))),
        ("predict_proba: one level per image", lambda c: classifier.predict_proba(c["clf"], c["x"] + 0.1 *
                                                                                  torch.randn(2, 3, 32, 32),
                                                                                  torch.tensor([0.1, 0.2])),
         lambda p: p.shape == (2, 2)),
        ("accuracy: sigma 0, labels as predicted", lambda c: classifier.accuracy(
            c["clf"], c["x"], classifier.predict_proba(c["clf"], c["x"]).argmax(1)), lambda a: a == 1.0),
        ("resize_uint8: a flat image stays flat", lambda c: data.resize_uint8(grey[None].repeat(2, 1, 1, 1), 8),
         lambda y: y.shape == (2, 3, 8, 8) and y.unique().tolist() == [128]),
        ("mix_weights: k 2.0 is interpolant 2", lambda c: interpolation.mix_weights(2.0, 3),
         lambda cs: float(cs[0]) == pytest.approx(math.cos(math.pi / 4))),
        ("mix_weights: NumPy k and n", lambda c: interpolation.mix_weights(np.int64(4), np.int64(3)),
         lambda cs: float(cs[0]) == pytest.approx(0, abs=1e-12) and float(cs[1]) == pytest.approx(1)),
        ("interpolate: ks=[0, 4] are the two ends", lambda c: interpolation.interpolate(
            SCORE, (1, 2), 3, LEVELS, 1, 0.1, image_shape=(1, 2, 2), ks=[0, 4], progress=False),
         lambda row: torch.allclose(row, torch.cat([interpolation.sample_seeds(
             SCORE, [s], LEVELS, 1, 0.1, image_shape=(1, 2, 2), progress=False) for s in (1, 2)]), atol=1e-6)),
        ("spread_ks: include replaces the nearest", lambda c: interpolation.spread_ks(15, 3, include=9),
         lambda ks: ks == [4, 9, 12]),
        ("langevin: step 0 leaves x_init", lambda c: sampling.langevin(SCORE, torch.ones(2, 2), 0.0, 3, 1.0),
         lambda x: torch.equal(x, torch.ones(2, 2))),
        ("langevin: no steps", lambda c: sampling.langevin(SCORE, torch.ones(1, 2), 0.1, 0, 0.5),
         lambda x: torch.equal(x, torch.ones(1, 2))),
        ("tweedie: x + sigma^2 (-x / sigma^2) = 0", lambda c: sampling.tweedie(lambda x, s: -x / 0.25, torch.ones(3, 2),
                                                                              0.5),
         lambda x: torch.allclose(x, torch.zeros(3, 2))),
        ("nearest_levels: log-nearest", lambda c: sampling.nearest_levels(torch.tensor([10.0, 1.0, 0.1]), [3.0, 0.2]),
         lambda idx: idx == [1, 2]),
        ("select_pairs: most confident first", lambda c: classifier.select_pairs(PROBS, ["horse", "bird"], 2),
         lambda pairs: pairs == [(0, 1), (2, 1)]),
        ("sliced_score_matching_loss: 2 projections", lambda c: losses.sliced_score_matching_loss(
            SCORE, torch.randn(4, 3), LEVELS, n_projections=2), lambda v: bool(torch.isfinite(v))),
        ("dsm_loss_given: the exact score of a point mass", lambda c: losses.dsm_loss_given(
            lambda xt, s: -(xt - 1.0) / s[:, None] ** 2, torch.ones(4, 3), torch.full((4,), 0.5), torch.randn(4, 3)),
         lambda v: float(v) == pytest.approx(0, abs=1e-10)),
        ("dsm_loss_by_level: a list of levels", lambda c: losses.dsm_loss_by_level(
            lambda xt, s: -(xt - 1.0) / s[:, None] ** 2, torch.ones(4, 3), [1.0, 0.5]),
         lambda v: torch.allclose(v, torch.zeros(2), atol=1e-6)),
        ("load_dataset: max_images keeps every class (was all horses)",
         lambda c: data.load_dataset("folder", c["folder"], classes=("horse", "bird"), max_images=3, train=False),
         lambda ds: ds.labels.tolist() == [0, 0, 1] and ds.classes == ("horse", "bird")),
        ("load_dataset: max_images of each class, in order",
         lambda c: data.load_dataset("folder", c["folder"], classes=("bird", "horse"), max_images=4, train=False),
         lambda ds: ds.labels.tolist() == [0, 0, 1, 1]),
        ("explorer.choose_ends: NumPy seeds of the candidates", lambda c: (lambda e: (
            e.choose_ends(np.int64(12), 10), e.ends)[1])(_explorer(c)), lambda ends: ends == [12, 10]),
        ("pegasus_rate: hand-worked", lambda c: evaluation.pegasus_rate(torch.tensor([0.9, 0.2, 0.7, 0.4]),
                                                                        torch.tensor([0.1, 0.3, 0.8, 0.6])),
         lambda r: r == 0.5),
        ("pair_kind: either order", lambda c: [evaluation.pair_kind(0.2, 0.9), evaluation.pair_kind(1.0, 0.0)],
         lambda kinds: kinds == ["horse-bird", "horse-bird"]),
        ("Schedule: NumPy counts", lambda c: generate.Schedule(5.0, 0.5, np.int64(3), np.int64(2)),
         lambda s: (s.num_scales, s.n_steps_each) == (3, 2) and type(s.num_scales) is int),
        ("Guidance: scale 0 gives the score back", lambda c: generate.Guidance(c["clf"], 0.0).score_fn(SCORE, [0])(
            torch.ones(1, 3, 32, 32), torch.ones(1)), lambda s: torch.equal(s, -torch.ones(1, 3, 32, 32))),
        ("technique2_overlap: equal levels", lambda c: sigmas.technique2_overlap(1.0, 3072),
         lambda v: v == pytest.approx(math.erf(3 / math.sqrt(2)))),
        ("technique4_objective: eps -> 0 keeps gamma^2", lambda c: sigmas.technique4_objective(1e-12, 1.1, 0.01, 5),
         lambda v: v == pytest.approx(1.21, rel=1e-6)),
        ("GaussianMixture.score at sigma 0", lambda c: toy.GaussianMixture(
            torch.tensor([1.0]), torch.tensor([[1.0, 2.0]]), torch.tensor([0.5])).score(torch.zeros(1, 2)),
         lambda s: torch.allclose(s, torch.tensor([[4.0, 8.0]]))),
        ("crossing_band: 0.5 exactly is bird", lambda c: plotting_quality.crossing_band([0, 4, 8], [0.9, 0.5, 0.1]),
         lambda band: band == (0.0, 4.0)),
        ("crossing_band: a tensor of float32 p",
         lambda c: plotting_quality.crossing_band([0, 1], torch.tensor([0.9, 0.1])), lambda band: band == (0.0, 1.0)),
        ("ChannelShift.interval: z 1", lambda c: SHIFT.interval(0, 1), lambda lh: lh == pytest.approx((0.05, 0.15))),
        ("shift_from: a tensor reference", lambda c: colour_evidence.shift_from(
            torch.full((2, 3, 2, 2), 0.5), torch.tensor([0.5, 0.25, 0.0])),
         lambda sh: sh.mean == pytest.approx((0.0, 0.25, 0.5)) and sh.se == (0.0, 0.0, 0.0)),
    ]


GOOD_CALLS = _good_calls()


@pytest.mark.parametrize("what,call,check", GOOD_CALLS, ids=[case[0] for case in GOOD_CALLS])
def test_the_same_functions_accept_input_just_inside_the_limits(ctx, what, call, check):
    assert check(call(ctx))
