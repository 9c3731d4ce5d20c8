"""Shared fixtures: the offline CIFAR-10 image folder (skipped with a reason when absent) and small fakes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "PEGASUS_TEST_DATA"


def cifar_folder() -> Path | None:
    """The image-folder copy of CIFAR-10 that PEGASUS_TEST_DATA points at (.ci/run sets it)."""
    candidates = [os.environ.get(DATA_ENV)]
    for c in candidates:
        if c and (Path(c) / "train" / "horse").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    root = cifar_folder()
    if root is None:
        pytest.skip(f"offline CIFAR-10 image folder not found: set {DATA_ENV} to a folder with train/horse, train/bird")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path_factory, monkeypatch):
    # Tests that read the real 10,000-image folder share one cache; all others get their own.
    shared = "cifar_root" in request.fixturenames
    name = "cache-shared" if shared else f"cache-{request.node.name[:40]}"
    monkeypatch.setenv("PEGASUS_CACHE", str(tmp_path_factory.getbasetemp() / name))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    # Every sample is computed: a test comparing two calls must not get the first one's images back
    # (tests/test_sample_cache.py turns the sample cache on where it tests it).
    monkeypatch.setenv("PEGASUS_CACHE_SAMPLES", "0")


@pytest.fixture
def tiny_config():
    from pegasus_course.nn import ScoreUNetConfig

    return ScoreUNetConfig.for_image_size(32, 8, num_res_blocks=1, attn_heads=2, attn_dim_head=8)


def make_image_folder(root: Path, classes=("horse", "bird", "cat"), per_class=3, size=32, split="train") -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in classes:
        d = root / split / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(arr).save(d / f"{i:04d}.png")
    return root
