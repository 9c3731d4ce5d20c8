import pickle

import numpy as np
import pytest
import torch

from pegasus_course import data
from tests.conftest import make_image_folder


# ---------- CIFAR-10 through torchvision, on pickled batches written here ----------
def write_fake_cifar(root, n_per_batch=20):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [i % 10 for i in range(n_per_batch)]
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        x[:, 0] = labels  # first red pixel encodes the label so the mapping can be checked
        with open(base / name, "wb") as f:
            pickle.dump({"data": x, "labels": labels}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(data.CIFAR10_CLASSES)}, f)
    return root


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # files are ours, md5s are not
    return write_fake_cifar(tmp_path)


def test_cifar10_selects_and_relabels(fake_cifar):
    ds = data.load_dataset("cifar10", fake_cifar, classes=("horse", "bird"), train=False)
    assert len(ds) == 5 * 2 * 2  # 5 batches x 2 per class x 2 classes
    for i in range(len(ds)):
        x, y = ds[i]
        original = round(float(x[0, 0, 0]) * 255)
        assert (y, original) in {(0, 7), (1, 2)}  # horse=7 -> 0, bird=2 -> 1
    assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 32, 32)
    test = data.load_dataset("cifar10", fake_cifar, split="test", classes=("bird",))
    assert len(test) == 2 and set(test.labels.tolist()) == {0}


def test_cifar10_resize_and_range(fake_cifar):
    ds = data.load_dataset("cifar10", fake_cifar, image_size=48)
    x, _ = ds[0]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_cifar10_missing_root_says_how(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_dataset("cifar10", tmp_path / "nowhere")


# ---------- STL-10 through torchvision, on its binary layout written here ----------
def write_fake_stl(root, n=12):
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        labels = np.array([(i % 10) + 1 for i in range(n)], dtype=np.uint8)  # 1..10, bird=2, horse=7
        imgs = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        imgs[:, 0, 0, 0] = labels  # column-major on disk: write the transpose torchvision undoes
        imgs.transpose(0, 1, 3, 2).tofile(base / f"{split}_X.bin")
        labels.tofile(base / f"{split}_y.bin")
    (base / "class_names.txt").write_text("\n".join(data.STL10_CLASSES))
    return root


@pytest.fixture
def fake_stl(tmp_path, monkeypatch):
    from torchvision.datasets import STL10

    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)
    return write_fake_stl(tmp_path)


def test_stl10_combined_resized_relabelled(fake_stl):
    train = data.load_dataset("stl10", fake_stl, split="train", train=False, image_size=None)
    both = data.load_dataset("stl10", fake_stl, split="train+test", image_size=64)
    assert len(both) == 2 * len(train) > 0
    assert train.images.shape[-1] == 48  # default: the paper's 48x48
    assert both.images.shape[1:] == (3, 64, 64)
    raw = data.load_dataset("stl10", fake_stl, split="train", classes=("horse", "bird"), image_size=96)
    for img, y in zip(raw.images, raw.labels):
        assert (int(y), int(img[0, 0, 0])) in {(0, 7), (1, 2)}


def test_stl10_bad_split(fake_stl):
    with pytest.raises(ValueError, match="train\\+test"):
        data.load_dataset("stl10", fake_stl, split="unlabeled")


# ---------- image folders ----------
def test_folder_source_classes_in_order(tmp_path):
    root = make_image_folder(tmp_path, classes=("horse", "bird", "cat"), per_class=3)
    ds = data.load_dataset("folder", root, classes=("bird", "horse"), train=False)
    assert len(ds) == 6 and ds.classes == ("bird", "horse")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    from PIL import Image

    first_bird = torch.from_numpy(np.array(Image.open(root / "train" / "bird" / "0000.png"))).permute(2, 0, 1)
    assert torch.equal(ds.images[0], first_bird)


def test_folder_errors(tmp_path):
    root = make_image_folder(tmp_path, classes=("horse", "bird"))
    with pytest.raises(ValueError, match=r"Unknown class.*'unicorn'.*Valid classes: bird, horse"):
        data.load_dataset("folder", root, classes=("horse", "unicorn"))
    with pytest.raises(FileNotFoundError, match="No image folder"):
        data.load_dataset("folder", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="Splits found"):
        data.load_dataset("folder", root, split="test")
    with pytest.raises(ValueError, match="not divisible by 8"):
        data.load_dataset("folder", root, image_size=30)
    with pytest.raises(ValueError, match="Unknown class"):
        data.load_dataset("cifar10", root, classes=("pegasus",))
    with pytest.raises(ValueError, match="Valid sources"):
        data.load_dataset("imagenet", root)


def test_flips_only_when_training(tmp_path):
    root = make_image_folder(tmp_path, classes=("horse",), per_class=1)
    ds = data.load_dataset("folder", root, classes=("horse",), train=True)
    img = ds.images[0].float() / 255
    torch.manual_seed(0)
    seen = {bool(torch.equal(ds[0][0], img)) for _ in range(40)}
    assert seen == {True, False}  # both the original and the mirror image appear
    x = ds[0][0]
    assert torch.equal(x, img) or torch.equal(x.flip(-1), img)
    evaluation = data.load_dataset("folder", root, classes=("horse",), train=False)
    assert all(torch.equal(evaluation[0][0], img) for _ in range(10))


def test_folder_cache_reused(tmp_path):
    root = make_image_folder(tmp_path, classes=("horse", "bird"), per_class=2)
    a = data.load_dataset("folder", root)
    cached = list(data.cache_dir().glob("folder-*.safetensors"))
    assert len(cached) == 1
    b = data.load_dataset("folder", root)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.mark.data
def test_real_cifar_folder_then_served_from_the_cache(cifar_root, monkeypatch):
    ds = data.load_dataset("folder", cifar_root, classes=("horse", "bird"))
    assert len(ds) == 10_000 and ds.images.shape[1:] == (3, 32, 32)
    assert ds.labels.bincount().tolist() == [5000, 5000]

    def no_decoding(*args, **kwargs):
        raise AssertionError("the second load must come from the cache, not from decoding 10,000 JPEGs")

    monkeypatch.setattr(data, "_load_folder", no_decoding)  # timings: benchmarks/data_loading.py
    again = data.load_dataset("folder", cifar_root, classes=("horse", "bird"))
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)
