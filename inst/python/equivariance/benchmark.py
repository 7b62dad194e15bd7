"""The rotated Fashion-MNIST benchmark: :func:`rotation_benchmark`.

It reproduces, on Fashion-MNIST, the table of the "regular equivariant CNN" article
(a plain CNN is accurate upright and lost when the test images are turned by 90
degrees; a C4 network with the same parameter budget is as accurate at every
rotation) and adds the equivariance regularizer and escnn to it. Every model is
trained with one recipe (Adam, cross-entropy, one learning rate, batch size and
seed) on the upright training images and tested on the test images turned by 0,
90, 180 and 270 degrees.

The built-in models, by name (:data:`MODEL_NAMES`):

- ``"SimpleCNN"``: the plain CNN baseline, widths chosen for about 14k parameters.
- ``"SimpleCNN+aug"``: the same network trained on randomly turned images (each
  training image turned by 0, 1, 2 or 3 quarter turns, drawn anew at every step):
  the baseline a user would try first.
- ``"SimpleCNN+reg"``: the same network, the same augmentation, and the
  equivariance regularizer asking its class probabilities to be invariant to the
  three non-trivial quarter turns of the training batch (see
  :func:`benchmark_regularizer`).
- ``"EqCNN"``: the article's design, the same filters shared by the 4 input rotations.
- ``"C4CNN"``: this package's C4 group-convolution network (plain PyTorch).
- ``"EscnnC4CNN"``: the same architecture built from escnn's ``R2Conv``.

Not in the default set (:data:`EXTRA_MODEL_NAMES`), for ``test="d4"``: ``"D4CNN"``
(rotations and mirrors, plain PyTorch), ``"EscnnC8CNN"`` (escnn, 45-degree turns) and
``"EscnnD4CNN"`` (escnn, rotations and mirrors).
"""

from __future__ import annotations

import csv as _csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ._files import output_path
from ._validation import (
    flag,
    optional_callable,
    positive_int,
    positive_real,
    quarter_turns,
)
from ._validation import seed as check_seed
from .benchmark_recipe import benchmark_regularizer, reg_recipe
from .data import as_tensors, is_stream, load_fashion_mnist
from .devices import DeviceLike, resolve_device
from .label_budget import check_labels, split_labels
from .models import C4CNN, D4CNN, EqCNN, SimpleCNN
from .regularizer import transforms as T
from .training.evaluation import evaluate
from .training.history import History
from .training.loop import fit
from .training.parallel.distributed import is_main_process
from .training.progress import ProgressEvents

__all__ = [
    "BENCHMARK_WIDTHS",
    "EXTRA_MODEL_NAMES",
    "MODEL_NAMES",
    "BenchmarkResult",
    "benchmark_model",
    "benchmark_regularizer",
    "rotation_benchmark",
]

#: The built-in models, in the order of the table.
MODEL_NAMES = ("SimpleCNN", "SimpleCNN+aug", "SimpleCNN+reg", "EqCNN", "C4CNN", "EscnnC4CNN")

#: Built-in rows asked for by name only: D4 and escnn's C8 and D4 (default widths).
EXTRA_MODEL_NAMES = ("D4CNN", "EscnnC8CNN", "EscnnD4CNN")

#: The built-in rows that train the benchmark's SimpleCNN with another recipe.
AUGMENTED = ("SimpleCNN+aug", "SimpleCNN+reg")
REGULARIZED = ("SimpleCNN+reg",)

#: Widths of the built-in models: channels of the plain CNNs, regular fields of the
#: C4 networks, chosen so that every model has at most about 14,000 parameters.
BENCHMARK_WIDTHS = {
    "SimpleCNN": (16, 32, 30),
    "EqCNN": (16, 32, 30),
    "C4CNN": (8, 12, 20),
}

#: Filters of the benchmark's plain CNNs: three 3x3 convolutions, then a global max
#: pool (wider than the article's networks, same budget as C4CNN). SimpleCNN keeps the
#: map's size; EqCNN, which runs every image in its 4 rotations, has no padding (28 ->
#: 26 -> 13 -> 11 -> 5 -> 3): half the time per epoch for the same accuracy.
BENCHMARK_LAYOUT = {"kernel_size": 3, "padding": "same"}
EQCNN_LAYOUT = {"kernel_size": 3, "padding": 0}


def benchmark_model(name: str, in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """A freshly initialised built-in model of the benchmark, by name.

    Args:
        name: one of :data:`MODEL_NAMES` or :data:`EXTRA_MODEL_NAMES`
            (``"SimpleCNN+aug"`` and ``"SimpleCNN+reg"``
            give a ``SimpleCNN``; :func:`rotation_benchmark` adds the augmentation and
            the regularizer).
        in_channels, num_classes: passed to the model.

    Returns:
        The ``nn.Module``.
    """
    _check_model_name(name)
    if name in ("SimpleCNN", "SimpleCNN+aug", "SimpleCNN+reg"):
        return SimpleCNN(in_channels, num_classes, widths=BENCHMARK_WIDTHS["SimpleCNN"],
                         **BENCHMARK_LAYOUT)
    if name == "EqCNN":
        return EqCNN(in_channels, num_classes, widths=BENCHMARK_WIDTHS["EqCNN"],
                     **EQCNN_LAYOUT)
    if name == "C4CNN":
        return C4CNN(in_channels, num_classes, widths=BENCHMARK_WIDTHS["C4CNN"])
    if name == "D4CNN":
        return D4CNN(in_channels, num_classes)  # default widths: 13,606 parameters
    from .escnn_models import EscnnC4CNN, EscnnCNN  # the escnn rows; imports escnn

    if name == "EscnnC8CNN":
        return EscnnCNN(8, in_channels=in_channels, num_classes=num_classes)
    if name == "EscnnD4CNN":
        return EscnnCNN(4, flips=True, in_channels=in_channels, num_classes=num_classes)
    return EscnnC4CNN(in_channels, num_classes, widths=BENCHMARK_WIDTHS["C4CNN"])


def _check_model_name(name: str) -> None:
    if name not in MODEL_NAMES + EXTRA_MODEL_NAMES:
        raise ValueError(f"`models`: unknown model {name!r}; the built-in models are "
                         f"{', '.join(repr(m) for m in MODEL_NAMES + EXTRA_MODEL_NAMES)}")


def _element_label(evaluation: dict[str, Any]) -> str:
    """``"90"`` for a turn by 90 degrees, ``"flip_90"`` for the mirror image turned."""
    return f"{'flip_' if evaluation.get('mirrored') else ''}{evaluation['degrees']}"


@dataclass
class BenchmarkResult:
    """What :func:`rotation_benchmark` measured.

    Attributes:
        rows: one dict per model, in order: ``model``, ``parameters``,
            ``seconds_per_epoch``, ``accuracy_<degrees>`` for every rotation (in
            [0, 1]; with ``test="d4"`` then ``accuracy_flip_<degrees>`` for the
            mirrored images), ``invariance_error`` (the mean over the tested
            elements other than the identity of :func:`~equivariance.evaluate`'s
            relative change of the logits) and ``agreement`` (the share of test images,
            in [0, 1], given the same class at every tested element: 1 for an exactly
            invariant model).
        evaluations: the per-rotation dicts of :func:`~equivariance.evaluate`, by model.
        histories: the training :class:`~equivariance.History` of every model.
        models: the trained models, by name.
        settings: the recipe and the data used (``epochs``, ``batch_size``, ``lr``,
            ``seed``, ``train_size``, ``test_size``, ``source``, ``num_classes``,
            ``labels``: the number of labelled training images, ``None`` for all).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    evaluations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    histories: dict[str, History] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def add(
        self, label: str, model: nn.Module, history: History, evaluation: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Add a trained and evaluated model's row; returns the row."""
        row: dict[str, Any] = {
            "model": label,
            "parameters": _count_parameters(model),
            "seconds_per_epoch": history.seconds_per_epoch,
        }
        for e in evaluation:
            row[f"accuracy_{_element_label(e)}"] = e["accuracy"]
        turned = [e["invariance_error"] for e in evaluation
                  if e["rotation"] != 0 or e.get("mirrored")]
        row["invariance_error"] = sum(turned) / len(turned) if turned else 0.0
        row["agreement"] = evaluation[0]["agreement"] if evaluation else 1.0
        self.rows.append(row)
        self.evaluations[label] = evaluation
        self.histories[label] = history
        self.models[label] = model
        return row

    @property
    def columns(self) -> list[str]:
        """The table's column names, in order."""
        return list(self.rows[0].keys()) if self.rows else []

    def to_csv(self, path: str | os.PathLike) -> str:
        """Write the table as CSV (accuracies in [0, 1]); returns the path."""
        path = _csv_path(path, "path")
        with open(path, "w", newline="") as fh:
            writer = _csv.DictWriter(fh, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def format(self) -> str:
        """The table as aligned text, accuracies in percent."""
        degrees = [_element_label(e) for e in next(iter(self.evaluations.values()), [])]
        head = (["model", "params", "s/epoch"] + [f"acc@{d}" for d in degrees]
                + ["inv.err", "agree%"])
        lines = [head]
        for row in self.rows:
            lines.append(
                [row["model"], f"{row['parameters']:,}", f"{row['seconds_per_epoch']:.1f}"]
                + [f"{100 * row[f'accuracy_{d}']:.1f}" for d in degrees]
                + [f"{row['invariance_error']:.2g}", f"{100 * row['agreement']:.1f}"]
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        def aligned(line: list[str]) -> str:
            cells = zip(line, widths)
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))

        return "\n".join(aligned(line) for line in lines)

    def __str__(self) -> str:
        return self.format()


def _csv_path(path: Any, name: str = "csv") -> str:
    """``path`` as a string, checked before any work: a file can be written there
    (see :func:`equivariance._files.output_path`)."""
    return output_path(path, name)


def _model_specs(models: Any, in_channels: int = 1, num_classes: int = 10
                 ) -> list[tuple[str, Callable[[], nn.Module], str | None]]:
    """``(label, build, built-in name or None)`` for every requested model; built-in
    models take ``in_channels`` and give ``num_classes`` logits."""
    if models is None:
        models = MODEL_NAMES
    if isinstance(models, str):
        models = [models]
    specs: list[tuple[str, Callable[[], nn.Module], str | None]] = []
    if isinstance(models, Mapping):
        items = list(models.items())
    elif isinstance(models, Sequence):
        items = [(m, m) for m in models]
    else:
        raise TypeError(
            "`models` must be a sequence of built-in model names or a mapping from labels "
            f"to models, got {type(models).__name__}"
        )
    if not items:
        raise ValueError("`models` must name at least one model")
    for label, value in items:
        if not isinstance(label, str) or not label:
            raise TypeError(f"`models`: every model needs a non-empty name, got {label!r}")
        if isinstance(value, str):
            _check_model_name(value)
            specs.append((label, lambda v=value: benchmark_model(v, in_channels, num_classes),
                          value))
        elif isinstance(value, nn.Module):
            specs.append((label, lambda v=value: v, None))
        elif callable(value):
            specs.append((label, value, None))
        else:
            raise TypeError(
                f"`models[{label!r}]` must be a built-in model name, an nn.Module or a function "
                f"returning one, got {type(value).__name__}"
            )
    labels = [s[0] for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"`models`: names must be unique, got {labels}")
    return specs


def _check_test(test: Any) -> str:
    """``test`` checked: ``"c4"`` or ``"d4"``."""
    if isinstance(test, str) and test in ("c4", "d4"):
        return test
    raise ValueError('`test` must be "c4" (the rotations) or "d4" (the rotations and the '
                     f"rotations of the mirrored images), got {test!r}")


def _build(label: str, build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """The model of one row, initialised after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    model = build()
    if not isinstance(model, nn.Module):
        raise TypeError(f"`models[{label!r}]` must give an nn.Module, got {type(model).__name__}")
    return model


def _count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _train_and_test(result: BenchmarkResult, label: str, model: nn.Module, builtin: str | None,
                    reg: Any, train: Any, test: Any, ks: list[int], recipe: dict[str, Any]) -> None:
    """Train one model by :func:`~equivariance.fit` and add its evaluation to ``result``.

    ``train``: the labelled data and the unlabeled images (``None``, or used by the
    regularized row only).
    """
    (train, unlabeled), epochs, verbose = train, recipe["epochs"], recipe["verbose"]
    unlabeled, progress = unlabeled if reg is not None else None, recipe["progress"]
    # a random quarter turn per image, drawn anew at every step
    augment = T.random_rot90(per_sample=True) if builtin in AUGMENTED else None
    index, count = len(result.rows) + 1, recipe["count"]
    if progress is not None:
        progress({"event": "model", "model": label, "index": index, "models": count})
    elif verbose:
        print(f"== model {index}/{count} {label}: {_count_parameters(model):,} parameters, "
              f"{epochs} epoch(s) on {_size(train) or 'streamed'} images"
              f"{_budget(recipe, unlabeled)}", flush=True)
    history = fit(model, train, epochs=epochs, batch_size=recipe["batch_size"], lr=recipe["lr"],
                  regularizer=reg, augment=augment, seed=recipe["seed"],
                  verbose=verbose and progress is None, device=recipe["device"],
                  callbacks=None if progress is None else [ProgressEvents(progress)],
                  unlabeled_data=unlabeled)
    row = result.add(label, model, history, evaluate(model, test, rotations=ks,
                                                      device=recipe["device"],
                                                      mirror=recipe["mirror"]))
    if verbose and progress is None:
        accs = ", ".join(f"{_element_label(e)}: {100 * e['accuracy']:.1f}%"
                         for e in result.evaluations[label])
        print(f"   accuracy {accs}; invariance error {row['invariance_error']:.2g}", flush=True)


def _budget(recipe: dict[str, Any], unlabeled: Any) -> str:
    """`` (1,000 labelled, 59,000 unlabeled)`` for the progress line, or nothing."""
    if recipe["labels"] is None:
        return ""
    rest = "" if unlabeled is None else f", {unlabeled.shape[0]:,} unlabeled"
    return f" ({recipe['labels']:,} labelled{rest})"


def _settings(train: Any, test: Any, epochs: int, batch_size: int, lr: float, seed: int,
              labels: Any = None) -> dict[str, Any]:
    """The recipe and the data of a run (``BenchmarkResult.settings``); ``labels``
    checked against the training set (in memory, with a known size)."""
    size, classes = _size(train), _classes_of(train)
    if labels is not None and (size is None or classes is None or is_stream(train)):
        raise ValueError("`labels` needs training data held in memory (images and labels), "
                         "not a stream")
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
            "train_size": size, "test_size": _size(test),
            "source": getattr(train, "source", "data"), "num_classes": classes,
            "labels": None if labels is None else check_labels(labels, size, classes)}


def _benchmark_sets(data: Any, root: Any, limit: int | None, test_limit: int | None,
                    warn: bool) -> tuple[Any, Any, int, int]:
    """``(train, test, in_channels, num_classes)`` of :func:`rotation_benchmark`:
    Fashion-MNIST (one warning at most when the shipped subset stands in for the full
    data set), or ``data``, a pair (or a dict with ``train`` and ``test``)."""
    if data is None:
        return (load_fashion_mnist("train", root=root, limit=limit, warn=warn),
                load_fashion_mnist("test", root=root, limit=test_limit, warn=False), 1, 10)
    if isinstance(data, dict) and {"train", "test"} <= set(data):
        data = (data["train"], data["test"])
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("`data` must be None (Fashion-MNIST) or a pair (train, test) of data "
                         f"sets, got {type(data).__name__}")
    train = data[0]
    shape, classes = getattr(train, "input_shape", None), getattr(train, "classes", None)
    if shape is not None and isinstance(classes, (list, tuple)):
        return data[0], data[1], int(shape[0]), len(classes)
    if is_stream(train):
        raise ValueError("`data`: built-in models need the channels and classes of the "
                         "images: give an image folder, tensors, or models as nn.Modules")
    x, y = as_tensors(train, "data")
    return data[0], data[1], (1 if x.dim() == 3 else int(x.shape[1])), int(y.max()) + 1


def _size(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


def _classes_of(train: Any) -> int | None:
    if hasattr(train, "tensors"):
        return int(train.tensors[1].max()) + 1
    classes = getattr(train, "classes", None)
    return len(classes) if isinstance(classes, (list, tuple)) else None


def _check_recipe(epochs: Any, batch_size: Any, lr: Any, seed: Any
                  ) -> tuple[int, int, float, int]:
    """The training recipe shared by all models, checked."""
    seed = check_seed(seed, "seed")
    if seed is None:
        raise ValueError("`seed` must be a whole number from 0 to 2**64 - 1, got None")
    return (positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size"),
            positive_real(lr, "lr"), seed)


def rotation_benchmark(
    models: Any = None, epochs: int = 2, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
    *, root: str | None = None, limit: int | None = None, test_limit: int | None = None,
    rotations: Sequence[int] = (0, 1, 2, 3), reg_n: int = 64, reg_num_funcs: int = 1,
    reg_lambda: float = 1.0, reg_warmup: int = 0, csv: str | os.PathLike | None = None,
    verbose: bool = True,
    warn: bool = True, device: DeviceLike = "auto", test: str = "c4",
    progress: Callable[[dict[str, Any]], Any] | None = None, table: bool = True, data: Any = None,
    labels: int | None = None,
) -> BenchmarkResult:
    """Train models on upright Fashion-MNIST and test them on rotated copies.

    Every model is initialised after ``torch.manual_seed(seed)`` and trained by
    :func:`~equivariance.fit` with Adam, cross-entropy, ``lr``, ``batch_size`` and
    ``seed``; then :func:`~equivariance.evaluate` measures its accuracy on the test
    images turned by each of ``rotations`` and how much its logits move.
    Under ``torchrun`` the models train data-parallel; rank 0 prints and writes ``csv``.

    Args:
        models: ``None`` for all of :data:`MODEL_NAMES`, a sequence of those names, or
            a mapping from labels to built-in names, ``nn.Module`` s (trained in place)
            or functions returning a fresh ``nn.Module``.
        epochs, batch_size, lr, seed: the training recipe shared by all models.
        root: where the Fashion-MNIST files are (see
            :func:`~equivariance.load_fashion_mnist`; ``"subset"`` uses the subset
            shipped with the package).
        limit, test_limit: use only the first ``limit`` training and ``test_limit``
            test images.
        rotations: quarter turns to test (0, 1, 2, 3 for 0 to 270 degrees).
        reg_n, reg_num_funcs, reg_lambda, reg_warmup: the regularizer of
            ``"SimpleCNN+reg"`` (see :func:`benchmark_regularizer`).
        csv: if given, the table is written there as CSV.
        verbose: print training progress and each model's result (``"model k/n"``),
            then the table (unless ``table=False``).
        warn: issue a :class:`~equivariance.data.SubsetWarning` when the full data set
            is absent and the subset shipped with the package is used.
        device: where every model trains and is tested: ``"auto"`` (CUDA when
            available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"``.
        test: ``"c4"``: the images turned by ``rotations``; ``"d4"``: also the mirrored
            images turned by ``rotations`` (columns ``accuracy_flip_0``, ...).
        progress: ``None`` or a function receiving the progress as events instead of
            the text (``{"event": "model", "model", "index", "models"}``, then those
            of :class:`~equivariance.training.progress.ProgressEvents`).
        table: with ``verbose``, print the table at the end.
        data: ``None`` (Fashion-MNIST, see ``root``), or ``(train, test)`` of data ``fit``
            takes (image folders, say); built-in models fit their channels and classes.
        labels: ``None`` (all labelled) or a label budget (a balanced subset drawn with ``seed``);
            the regularized row gets the rest as ``unlabeled_data`` (:mod:`.label_budget`).

    Returns:
        A :class:`BenchmarkResult`; ``str(result)`` is the table.
    """
    epochs, batch_size, lr, seed = _check_recipe(epochs, batch_size, lr, seed)
    # checked here, so that the messages name these arguments, not the loader's `limit`
    limit = None if limit is None else positive_int(limit, "limit")
    test_limit = None if test_limit is None else positive_int(test_limit, "test_limit")
    # `test` names the data set further down: keep the choice as a flag
    ks, mirror = quarter_turns(rotations, "rotations"), _check_test(test) == "d4"
    reg_settings = reg_recipe(reg_n, reg_num_funcs, reg_lambda, reg_warmup)
    main = is_main_process()  # under torchrun: rank 0 prints and writes
    verbose, warn = flag(verbose, "verbose") and main, flag(warn, "warn") and main
    progress = optional_callable(progress, "progress", "None or a function of one dict")
    csv = None if csv is None else _csv_path(csv)  # before the training, not after it
    device = resolve_device(device)  # before the training: a missing GPU fails at once

    train, test, channels, classes = _benchmark_sets(data, root, limit, test_limit, warn)
    specs = _model_specs(models, channels, classes)
    result = BenchmarkResult(settings=_settings(train, test, epochs, batch_size, lr, seed, labels))
    recipe = {**result.settings, "verbose": verbose, "device": device, "mirror": mirror,
              "progress": progress if main else None, "count": len(specs)}
    train = split_labels(train, recipe["labels"], seed)
    for label, build, builtin in specs:
        model = _build(label, build, seed)
        reg = benchmark_regularizer(model, **reg_settings) if builtin in REGULARIZED else None
        _train_and_test(result, label, model, builtin, reg, train, test, ks, recipe)
    if csv is not None and main:
        result.to_csv(csv)
    if verbose and flag(table, "table"):
        print(result.format(), flush=True)
    return result

