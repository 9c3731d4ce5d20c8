"""`pegasus-course schedule`: sigma_1, L and eps computed from an image set (NCSNv2 techniques 1, 2, 4)."""

from __future__ import annotations

import json
import time

from .common import HelpFormatter, check_download, data_source, path_arg, sigma_level, steps_each


def add_parser(sub):
    p = sub.add_parser("schedule", help="compute the noise schedule (sigma_1, L, eps) from your images",
                       description="Compute the noise schedule from the training images with NCSNv2's techniques: "
                       "sigma_1 = the largest distance between two images (1), L from the overlap of neighbouring "
                       "levels (2), the Langevin step eps for T steps per level (4); the paper's CIFAR-10 values "
                       "are printed beside them. `pegasus-course train --schedule data` trains with it.",
                       formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course schedule --dataset folder --data-root my-photos --classes cats\n"
                               "  pegasus-course schedule --json > schedule.json     # PEGASUS_DATA_* data, for scripts"))
    p.add_argument("--dataset", choices=["cifar10", "stl10", "folder"], default=None,
                   help="image source (default: PEGASUS_DATA_SOURCE or cifar10)")
    p.add_argument("--data-root", type=path_arg, default=None,
                   help="where the data lives: for a folder, DIR/train/<class>/*.jpg|png (default: PEGASUS_DATA_ROOT)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 / STL-10")
    p.add_argument("--classes", nargs="+", default=["horse", "bird"], help="class names to use")
    p.add_argument("--image-size", type=int, choices=[32, 48, 64], default=None,
                   help="resize to this side first, as `train --image-size` does (default: the images' own size)")
    p.add_argument("--steps-each", type=steps_each, default=5, help="T, Langevin steps per level, for eps")
    p.add_argument("--sigma-min", type=sigma_level, default=0.01,
                   help="sigma_L, the smallest level (chosen, not computed: a few grey levels)")
    p.add_argument("--exact", action="store_true",
                   help="compare every pair that could be the farthest, however many (default: a stated bound "
                   "when that would take long)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(func=run)


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others."""
    check_download(args)


def run(args) -> int:
    from .. import data as data_mod
    from ..schedule_from_data import data_schedule, paper_schedule, schedule_table

    check_options(args)
    root, split = data_source(args)
    ds = data_mod.load_dataset(args.dataset, root, split=split, classes=args.classes, image_size=args.image_size,
                               download=args.download, train=False)
    notes = data_mod.class_balance_notes(ds)
    t0 = time.perf_counter()
    result = data_schedule(ds.images, sigma_min=args.sigma_min, n_steps_each=args.steps_each,
                           exact=True if args.exact else None)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({**result.to_dict(), "paper_cifar10": paper_schedule(args.steps_each),
                          "data": {"source": args.dataset, "root": str(root), "split": split,
                                   "classes": list(ds.classes), "num_images": len(ds)},
                          "notes": notes, "seconds": round(seconds, 2)}, indent=2))
        return 0
    for line in notes:
        print(line)
    size = "x".join(map(str, result.image_shape))
    print(f"{len(ds):,} images of {size} (D = {result.dim:,}; {', '.join(ds.classes)}) from {root} ({split}); "
          f"{seconds:.1f} s")
    print(f"technique 1, {result.distance.describe()}")
    for line in schedule_table(result):
        print(line)
    print(f"train with it: pegasus-course train --schedule data (the same options for the data), or "
          f"--sigma-max {result.sigma_1:.2f} --sigma-min {result.sigma_L:g} --num-scales {result.num_scales}")
    return 0
