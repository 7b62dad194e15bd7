"""The training engine: :func:`fit`, :func:`train_step`, evaluation and the history.

``loop`` holds the training loop, ``evaluation`` the evaluation helpers, ``history``
the record of a run, ``metrics`` what is measured per epoch, ``callbacks`` the one
callback mechanism (with early stopping), ``callback_library`` the ready-made
callbacks (checkpoint, CSV log, learning-rate schedules), ``progress`` the display;
``parallel/`` is everything that makes ``fit`` data-parallel under ``torchrun``
(process group, gradient exchange, synchronised batch norm, local launch).
"""

from __future__ import annotations

from . import (
    callback_library,
    callbacks,
    epochs,
    evaluation,
    history,
    loop,
    metrics,
    parallel,
    progress,
)
from .callback_library import checkpoint, csv_logger, lr_schedule
from .callbacks import Callback, EarlyStopping, TrainState, early_stopping, lambda_callback
from .evaluation import evaluate
from .history import History
from .loop import fit, mode_dependent_modules, set_seed, train_step
from .metrics import METRIC_NAMES, metric_value
from .parallel import parallel_fit, parallel_rotation_benchmark
from .progress import progress_bar

__all__ = [
    "METRIC_NAMES",
    "Callback",
    "EarlyStopping",
    "History",
    "TrainState",
    "checkpoint",
    "csv_logger",
    "early_stopping",
    "lambda_callback",
    "lr_schedule",
    "metric_value",
    "progress_bar",
    "evaluate",
    "fit",
    "mode_dependent_modules",
    "parallel_fit",
    "parallel_rotation_benchmark",
    "set_seed",
    "train_step",
]
