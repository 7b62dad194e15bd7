"""The command line: ``python -m equivariance {benchmark,fit} ...``.

Both commands run unchanged under ``torchrun --nproc-per-node K -m equivariance ...``:
:func:`~equivariance.fit` then trains data-parallel (see
:mod:`equivariance.distributed`), and only rank 0 prints and writes files.

Examples::

    python -m equivariance benchmark --models SimpleCNN C4CNN --epochs 2 --csv table.csv
    python -m equivariance fit --model C4CNN --epochs 5 --save c4cnn.pt
    python -m equivariance fit --data shapes/train --size 64 --validation 0.2 --patience 2 \
        --save shapes.pt
    torchrun --nproc-per-node 2 -m equivariance fit --model C4CNN --epochs 5 --save c4cnn.pt
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _common(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--epochs", type=int, default=epochs, help="passes over the training data "
                   "(default %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch, divided among "
                   "the ranks under torchrun (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default "
                   "%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the "
                   "shuffling (default %(default)s)")
    p.add_argument("--data", metavar="DIR", default=None, help="folder of Fashion-MNIST IDX "
                   "files, or 'subset' for the subset shipped with the package (default: "
                   "$EQUIVARIANCE_FASHION_MNIST, else /usr/share/datasets/fashion-mnist, "
                   "else the subset); for fit, also a folder of images with one sub-folder "
                   "per class")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training "
                   "images")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:<index> or mps "
                   "(default auto: CUDA when available; under torchrun each rank its own GPU)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m equivariance",
        description="Train and benchmark rotation-equivariant networks on Fashion-MNIST. "
                    "Runs unchanged under `torchrun --nproc-per-node K -m equivariance ...` "
                    "(data-parallel: --batch-size stays the global batch).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{benchmark,fit}")
    bench = sub.add_parser(
        "benchmark", help="train models on upright images, test them on rotated ones",
        description="The rotated Fashion-MNIST benchmark: train every model on upright "
                    "images and report its accuracy on the test images turned by 0, 90, "
                    "180 and 270 degrees.")
    bench.add_argument("--models", nargs="+", metavar="MODEL", default=None,
                       help="SimpleCNN, SimpleCNN+aug, SimpleCNN+reg, EqCNN, C4CNN, EscnnC4CNN "
                            "(default: these), D4CNN, EscnnC8CNN, EscnnD4CNN")
    _common(bench, epochs=2)
    bench.add_argument("--test", choices=("c4", "d4"), default="c4", help="c4: test on the "
                       "images turned by 0, 90, 180 and 270 degrees; d4: also on their "
                       "mirror images (default c4)")
    bench.add_argument("--test-limit", type=int, default=None, help="use only the first N "
                       "test images")
    bench.add_argument("--labels", type=int, default=None, metavar="N", help="train on a "
                       "class-balanced subset of N labelled images (the regularized row "
                       "also gets the others without labels; default: all labelled)")
    bench.add_argument("--csv", metavar="PATH", default=None, help="write the table as CSV")
    bench.add_argument("--png", metavar="PATH", default=None, help="draw accuracy by "
                       "rotation (needs matplotlib; from R: plot() of the result)")
    fit = sub.add_parser(
        "fit", help="train one model and save it",
        description="Train one built-in model on Fashion-MNIST or on a folder of images "
                    "(one sub-folder per class) and save it with save_model, with its "
                    "class names (load it with load_model in Python or R).")
    fit.add_argument("--model", default="C4CNN", help="SimpleCNN, EqCNN, C4CNN, D4CNN, "
                     "EscnnC4CNN, EscnnC8CNN or EscnnD4CNN (default %(default)s)")
    _common(fit, epochs=1)
    fit.add_argument("--size", type=int, nargs="+", metavar="N", default=None,
                     help="with an image folder: resize every image to N x N (or H W)")
    fit.add_argument("--channels", type=int, choices=(1, 3), default=None,
                     help="with an image folder: convert the images to 1 (grey) or 3 (RGB) "
                          "channels (default: the files' own)")
    fit.add_argument("--validation", type=float, metavar="FRACTION", default=None,
                     help="hold out this fraction of the training images (by file) and "
                          "measure the validation loss after every epoch")
    fit.add_argument("--patience", type=int, default=None, help="stop after N epochs "
                     "without a lower validation loss and keep the best weights (needs "
                     "--validation)")
    fit.add_argument("--num-workers", type=int, default=0, help="background processes "
                     "decoding image files (default %(default)s)")
    fit.add_argument("--save", metavar="PATH", default=None, help="where to save the model")
    fit.add_argument("--no-sync-batchnorm", dest="sync_batchnorm", action="store_false",
                     help="under torchrun, normalise with each rank's own batch statistics")
    worker = sub.add_parser("worker", add_help=False)  # parallel_fit's ranks: not for users
    worker.add_argument("folder")
    return parser


def _png(result: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in result.evaluations.items():
        ax.plot([r["degrees"] for r in rows], [100 * r["accuracy"] for r in rows], "o-",
                label=label)
    ax.set_xlabel("rotation of the test images (degrees)")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _check_outputs(args: argparse.Namespace, *options: str) -> None:
    """Every output path given is writable (checked before any work), named as the
    option that gave it."""
    from ._files import output_path

    for option in options:
        value = getattr(args, option)
        if value is not None:
            setattr(args, option, output_path(value, f"--{option}"))


def _benchmark(args: argparse.Namespace) -> None:
    import equivariance as eq

    if args.png is not None and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("`--png` needs matplotlib, which is not installed (pip install "
                         "matplotlib); or write --csv and plot it, e.g. from R")
    _check_outputs(args, "csv", "png")  # before the training, not after it
    result = eq.rotation_benchmark(
        args.models, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, root=args.data, limit=args.limit, test_limit=args.test_limit,
        test=args.test, csv=args.csv, verbose=not args.quiet, device=args.device,
        labels=args.labels)
    if args.png is not None and eq.is_main_process():
        _png(result, args.png)


def _fit(args: argparse.Namespace) -> None:
    import torch

    import equivariance as eq

    _check_outputs(args, "save")  # a bad path fails before the training, not after it
    train, names = _training_data(args)
    channels, classes = _shape_of(train)
    torch.manual_seed(args.seed)
    model = eq.benchmark_model(args.model, channels, classes)
    eq.fit(model, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
           seed=args.seed, device=args.device, verbose=not args.quiet,
           sync_batchnorm=args.sync_batchnorm, validation_data=args.validation,
           patience=args.patience, class_names=names, num_workers=args.num_workers)
    if args.save is not None and eq.is_main_process():
        path = eq.save_model(model, args.save)
        if not args.quiet:
            print(f"saved {args.model} to {path}", flush=True)


def _is_idx_folder(path: str) -> bool:
    return path == "subset" or any("idx3-ubyte" in name for name in os.listdir(path))


def _training_data(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The training data of ``fit``: Fashion-MNIST's IDX files or an image folder, and
    the class names."""
    import equivariance as eq

    folder = args.data
    if folder is not None and folder != "subset" and not os.path.isdir(folder):
        raise FileNotFoundError(f"`--data`: folder not found: {folder}")
    if folder is None or _is_idx_folder(folder):
        if args.size is not None or args.channels is not None:
            raise ValueError("`--size` and `--channels` apply to a folder of images, not to "
                             "Fashion-MNIST's IDX files")
        return eq.load_fashion_mnist("train", root=folder, limit=args.limit), list(eq.CLASSES)
    size = args.size
    if size is not None and len(size) not in (1, 2):
        raise ValueError(f"`--size` takes N (square) or H W, got {len(size)} numbers")
    data = eq.image_folder(folder, size=None if size is None else tuple(size) if len(size) == 2
                           else size[0], channels=args.channels)
    if args.limit is not None:
        data = data.subset(range(min(args.limit, len(data))))
    return data, list(data.classes)


def _shape_of(data: Any) -> tuple[int, int]:
    """The channels and classes of the training data (for the built-in model)."""
    if hasattr(data, "input_shape"):
        return data.input_shape[0], len(data.classes)
    return 1, len(data.classes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 1 after a user error)."""
    args = _parser().parse_args(argv)
    if args.command == "worker":
        from .training.parallel.launch import worker_main

        worker_main(args.folder)
        return 0
    try:
        (_benchmark if args.command == "benchmark" else _fit)(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"python -m equivariance {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
