"""`pegasus-course train-classifier`: the noise-conditional classifier or the clean feature network."""

from __future__ import annotations

from pathlib import Path

import torch

from .common import (DEVICE_HELP, HelpFormatter, UsageError, check_download, check_sigma_order, data_source,
                     device_name, learning_rate, non_negative_int, path_arg, positive_int, resolve_device, sigma_level,
                     value_or, width)
from .outputs import check_out_file, folder_lock, output_folder, refuse_existing_file


def add_parser(sub):
    p = sub.add_parser("train-classifier", help="train the noise-conditional horse/bird classifier (or the "
                       "ten-class feature network with --classes all --clean)",
                       description="Train a classifier p(y | x, sigma) on images perturbed at the schedule's noise "
                       "levels (for selection and classifier guidance), or on clean images with --clean (the fixed "
                       "network whose features the Frechet distance uses). Prints the clean accuracy on the "
                       "held-out test split.", formatter_class=HelpFormatter,
                       epilog=("example:\n"
                               "  pegasus-course train-classifier --dataset folder --data-root data/cifar10-jpg --out runs/clf/classifier.safetensors"))
    p.add_argument("--dataset", choices=["cifar10", "stl10", "folder"], default=None,
                   help="image source (default: PEGASUS_DATA_SOURCE or cifar10)")
    p.add_argument("--data-root", type=path_arg, default=None,
                   help="where the data lives (default: PEGASUS_DATA_ROOT or the cache)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 / STL-10")
    p.add_argument("--classes", nargs="+", default=["horse", "bird"],
                   help="class names, or `all` for every class of the source")
    p.add_argument("--image-size", type=int, choices=[32, 48, 64], default=None, help="image side")
    p.add_argument("--clean", action="store_true", help="train on clean images only (sigma = sigma_min)")
    p.add_argument("--profile", default=None, help="gpu | cpu | ci (default: PEGASUS_PROFILE or by device)")
    p.add_argument("--steps", type=positive_int, default=None, help="optimisation steps (default: the profile's)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="batch size (default: 128, or every training image when there are fewer)")
    p.add_argument("--lr", type=learning_rate, default=2e-3, help="Adam learning rate (cosine-decayed to 0)")
    p.add_argument("--base-channels", type=width, default=None, help="width (default: the profile's)")
    p.add_argument("--sigma-max", type=sigma_level, default=None, help="largest noise level (default: the profile's, 50)")
    p.add_argument("--sigma-min", type=sigma_level, default=None, help="smallest noise level (default: the profile's, 0.01)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights, data order and noise")
    p.add_argument("--device", type=device_name, default=None, help=DEVICE_HELP)
    p.add_argument("--out", type=path_arg, default="runs/classifier/classifier.safetensors",
                   help="checkpoint file to write")
    p.add_argument("--overwrite", action="store_true", help="replace the file at --out if there is one")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def check_options(args) -> None:
    """Refuse, before any work, an option that would be ignored beside the others (or contradicts them)."""
    check_download(args)
    if args.clean and args.sigma_max is not None:
        raise UsageError(f"--sigma-max {args.sigma_max:g} sets the largest noise level, but --clean trains on clean "
                         "images only (at --sigma-min): drop --sigma-max, or --clean.")
    check_sigma_order(args)


def run(args) -> int:
    """Refuse to replace an existing file without --overwrite; train with --out's folder locked."""
    check_options(args)
    with output_folder(Path(args.out).parent, "the folder of --out"):  # a failed run leaves no empty folder behind
        out_path = check_out_file(Path(args.out))
        refuse_existing_file(out_path, args.overwrite)
        with folder_lock(out_path.parent, "the folder of --out"):
            return _run(args)


def _run(args) -> int:
    from .. import data as data_mod
    from ..classifier import save_classifier
    from ..profiles import get_profile
    from ..sigmas import geometric_sigmas
    from ..workflow import classifier_meta, fit_classifier

    profile = get_profile(args.profile)
    out_path = check_out_file(Path(args.out))
    if profile.num_threads:
        torch.set_num_threads(profile.num_threads)
    device = resolve_device(args.device)
    root, split = data_source(args)
    classes = list(args.classes)
    if classes == ["all"]:
        classes = list(data_mod.CIFAR10_CLASSES if args.dataset == "cifar10" else data_mod.STL10_CLASSES
                       if args.dataset == "stl10" else data_mod.folder_classes(root, "train"))
    ds = data_mod.load_dataset(args.dataset, root, split=split, classes=classes, image_size=args.image_size,
                               download=args.download)
    if profile.max_train_images:
        ds = data_mod.balanced_subset(ds, max(1, profile.max_train_images // len(classes)))
    for line in data_mod.class_balance_notes(ds):
        print(line)
    batch_size = value_or(args.batch_size, min(128, len(ds)))
    if batch_size > len(ds):
        raise UsageError(f"--batch-size {batch_size} is more than the {len(ds)} training images, so no batch could be "
                         f"that size: lower --batch-size to {len(ds)} or less.")
    test = None
    test_split = "test" if args.dataset != "stl10" else None
    if test_split is not None:  # checked before training, so a missing class does not waste the run
        try:
            test = data_mod.load_dataset(args.dataset, root, split=test_split, classes=classes,
                                         image_size=args.image_size, download=args.download, train=False)
        except FileNotFoundError as exc:
            print(f"note: no held-out test split, so no test accuracy: {exc}")
        else:
            counts = torch.bincount(test.labels, minlength=len(classes)).tolist()
            missing = [c for c, n in zip(classes, counts) if n == 0]
            if missing:
                raise UsageError(f"The test split has no images of {missing}: the held-out accuracy would be "
                                 "meaningless. Add test images of every class (or leave the class out with --classes).")
    sigma_max = value_or(args.sigma_max, profile.sigma_max)
    sigma_min = value_or(args.sigma_min, profile.sigma_min)
    if not args.clean and not sigma_max > sigma_min:
        raise UsageError(f"--sigma-max ({sigma_max:g}) must be above --sigma-min ({sigma_min:g}).")
    sigmas = (torch.tensor([sigma_min]) if args.clean
              else geometric_sigmas(sigma_max, sigma_min, profile.num_scales))
    model, result = fit_classifier(ds, sigmas, test=test, clean=args.clean,
                                   base_channels=value_or(args.base_channels, profile.classifier_base_channels),
                                   steps=value_or(args.steps, profile.classifier_steps), batch_size=batch_size,
                                   lr=args.lr, seed=args.seed, device=device, progress=not args.no_progress)
    meta = classifier_meta(profile, result, sigmas, ds, args.dataset)
    path = save_classifier(model, out_path, meta)
    print(f"wrote {path} ({result['seconds']:.0f} s, {result['images_per_second']:.0f} images/s, final loss "
          f"{result['final_loss']:.3f})")
    return 0
