"""equivariance: tools for neural networks that respect symmetries.

The public API is flat: the names in ``__all__`` below, written out, are the
user-facing ones, each importable from its family too (``equivariance.groups``,
``equivariance.models``, ``equivariance.training``, ...). Transforms and distances stay
in their namespaces (``equivariance.transforms.rot90``,
``equivariance.distances.p_distance``): their short names would read ambiguously at
the top level; so does ``equivariance.c4.rotate`` (quarter turns, not degrees).

A few helpers that the R layer and the tests reach through the package
(``read_idx``, ``as_tensors``, the memory helpers, ...) are importable here but are
not part of ``__all__``.

Importing this package does not import escnn: :mod:`equivariance.escnn_models` loads
it on first access.
"""

from __future__ import annotations

import importlib
import sys

# Transforms and distances live in the regularizer's family but are public under
# their short module names too (`equivariance.transforms.rot90`); registering the
# aliases first lets the other modules import them as `from . import transforms`.
from .regularizer import distances, transforms

sys.modules[f"{__name__}.transforms"] = transforms
sys.modules[f"{__name__}.distances"] = distances

# imports after the aliases above; plumbing re-exported on purpose:
# ruff: noqa: E402, F401
from . import (
    benchmark,
    data,
    export,
    groups,
    memory,
    models,
    persistence,
    prediction,
    quantile_maps,
    regularizer,
    training,
)
from .benchmark import (
    BENCHMARK_WIDTHS,
    EXTRA_MODEL_NAMES,
    MODEL_NAMES,
    BenchmarkResult,
    benchmark_model,
    benchmark_regularizer,
    rotation_benchmark,
)
from .data import (
    CLASSES,
    FashionMNIST,
    SubsetWarning,
    as_tensors,
    fashion_mnist_root,
    holdout,
    load_fashion_mnist,
    make_subset,
    read_idx,
    write_idx,
)
from .data.folders import (
    ImageDataset,
    ImageFileError,
    image_files,
    image_folder,
)
from .data.writing import write_image_folder
from .export import ExportError, export_model, read_metadata, save_onnx
from .groups import c4, d4
from .groups.c4 import (
    C4BatchNorm2d,
    C4Conv2d,
    C4GroupPool,
    C4InvariantLinear,
    C4LiftingConv2d,
    C4MaxPool2d,
    rotate_regular,
)
from .groups.checks import check_equivariance, check_equivariance_group, feature_maps
from .groups.d4 import D4BatchNorm2d, D4Conv2d, D4GroupPool, D4LiftingConv2d, D4MaxPool2d
from .groups.group import (
    GridGroup,
    get_group,
    grid_transform,
    group_action,
    regular_transform,
)
from .groups.layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupInvariantLinear,
    GroupLiftingConv2d,
    GroupMaxPool2d,
    GroupPool,
)
from .memory import (
    memory_grew,
    release_free_memory,
    release_memory_after_steps,
    reset_memory_floor,
)
from .models import C4CNN, D4CNN, EqCNN, GroupCNN, SimpleCNN
from .persistence import load_model, save_model
from .prediction import predict
from .quantile_maps import (
    GroupMap,
    InstanceMap,
    LayerMap,
    cauchy,
    gaussian,
    laplace,
    logistic,
    numpy_target,
    sparse,
    uniform,
)
from .regularizer import EquivarianceError, EquivarianceRegularizer
from .summary import ModelSummary, summary
from .training import History, evaluate, fit, mode_dependent_modules, parallel, set_seed, train_step
from .training.callback_library import checkpoint, csv_logger, lr_schedule
from .training.callbacks import Callback, TrainState, early_stopping, lambda_callback
from .training.metrics import metric_value
from .training.parallel import (
    distributed_ranks,
    init_distributed,
    is_main_process,
    launched_by_torchrun,
    parallel_fit,
    parallel_rotation_benchmark,
)
from .training.progress import progress_bar

#: The one version number of the R and Python packages (DESCRIPTION's, checked by
#: tests/python/test_api.py).
__version__ = "0.1.0"

__all__ = [
    # the equivariance regularizer
    "EquivarianceRegularizer",
    "EquivarianceError",
    # quantile maps and their targets
    "GroupMap",
    "InstanceMap",
    "LayerMap",
    "cauchy",
    "gaussian",
    "laplace",
    "logistic",
    "numpy_target",
    "sparse",
    "uniform",
    # groups on the pixel grid, their layers and checks
    "GridGroup",
    "get_group",
    "grid_transform",
    "regular_transform",
    "group_action",
    "GroupLiftingConv2d",
    "GroupConv2d",
    "GroupBatchNorm2d",
    "GroupPool",
    "GroupMaxPool2d",
    "GroupInvariantLinear",
    "C4LiftingConv2d",
    "C4Conv2d",
    "C4BatchNorm2d",
    "C4GroupPool",
    "C4MaxPool2d",
    "C4InvariantLinear",
    "rotate_regular",
    "D4LiftingConv2d",
    "D4Conv2d",
    "D4BatchNorm2d",
    "D4GroupPool",
    "D4MaxPool2d",
    "check_equivariance",
    "check_equivariance_group",
    "feature_maps",
    # classifiers
    "SimpleCNN",
    "EqCNN",
    "GroupCNN",
    "C4CNN",
    "D4CNN",
    # data
    "FashionMNIST",
    "SubsetWarning",
    "fashion_mnist_root",
    "load_fashion_mnist",
    "holdout",
    "image_folder",
    "image_files",
    "write_image_folder",
    "ImageDataset",
    "ImageFileError",
    # training, evaluation, prediction, saving
    "fit",
    "train_step",
    "set_seed",
    "evaluate",
    "History",
    # metrics and callbacks of fit
    "metric_value",
    "Callback",
    "TrainState",
    "checkpoint",
    "csv_logger",
    "early_stopping",
    "lambda_callback",
    "lr_schedule",
    "progress_bar",
    "predict",
    "save_model",
    "load_model",
    "summary",
    # deploying: a plain torch network, ONNX
    "export_model",
    "save_onnx",
    "read_metadata",
    "ExportError",
    "ModelSummary",
    # data-parallel training
    "distributed_ranks",
    "init_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "parallel_fit",
    "parallel_rotation_benchmark",
    # the rotated Fashion-MNIST benchmark
    "BenchmarkResult",
    "benchmark_model",
    "benchmark_regularizer",
    "rotation_benchmark",
    # families and namespaces
    "c4",
    "d4",
    "data",
    "distances",
    "escnn_models",
    "export",
    "groups",
    "models",
    "quantile_maps",
    "regularizer",
    "training",
    "transforms",
]


def __getattr__(name: str):
    """Import :mod:`equivariance.escnn_models` (and so escnn) on first access only."""
    if name == "escnn_models":
        return importlib.import_module(".escnn_models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
