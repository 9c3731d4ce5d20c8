"""Time to load the CIFAR-10 horse and bird training images from an image folder: first and cached.

    python benchmarks/data_loading.py PATH/TO/cifar10-jpg
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from pegasus_course import data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="image-folder root with train/horse and train/bird")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ[data.CACHE_ENV] = cache
        for label in ("first load (decoding JPEGs)", "second load (cached tensor)"):
            t0 = time.perf_counter()
            ds = data.load_dataset("folder", args.root, classes=("horse", "bird"))
            print(f"{label:30s} {time.perf_counter() - t0:6.2f} s  ({len(ds)} images)")


if __name__ == "__main__":
    main()
