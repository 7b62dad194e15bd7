"""Ready-made callbacks for :func:`~equivariance.fit`: :func:`checkpoint`,
:func:`csv_logger` and :func:`lr_schedule` (early stopping is
:func:`~equivariance.training.callbacks.early_stopping`).

Files are written by the process that reports (rank 0 of a data-parallel training);
paths are checked before the first epoch, so a bad folder fails before any training.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from typing import Any, Callable

import numpy as np
import torch

from .._files import output_path
from .._validation import check_arity, nonnegative_real, positive_int, positive_real
from .callbacks import Callback, TrainState, Watch, check_mode, check_monitor

__all__ = ["checkpoint", "csv_logger", "lr_schedule"]


def _file(path: Any, name: str) -> str:
    """``path`` checked as every output path is, before the training (see
    :func:`equivariance._files.output_path`); a ``{epoch}`` in it as epoch 1."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a file path, got {type(path).__name__}")
    path = os.path.expanduser(os.fspath(path))
    try:
        output_path(path.format(epoch=1), name)
    except (KeyError, IndexError, ValueError):
        output_path(path, name)  # braces checked by checkpoint()
    return path


class Checkpoint(Callback):
    """Saves the model whenever the monitored figure improves; see :func:`checkpoint`."""

    def __init__(self, path: str, monitor: str, mode: str):
        self.path = path
        self.watch = Watch(*check_mode(monitor, mode))
        self.saved: list[int] = []  # the epochs saved

    def on_train_begin(self, state: TrainState) -> None:
        check_monitor(self.watch.monitor, state, "`checkpoint`")

    def on_epoch_end(self, state: TrainState) -> None:
        if self.watch.improved(state) and state.main:
            from ..persistence import save_model

            save_model(state.model, self.path.format(epoch=state.epoch))
            self.saved.append(state.epoch)


def checkpoint(path: str | os.PathLike, monitor: str = "val_loss",
               mode: str = "auto") -> Callback:
    """Save the model with :func:`~equivariance.save_model` whenever ``monitor`` improves.

    Args:
        path: the file (replaced at every improvement); ``"{epoch}"`` in it is
            replaced by the epoch, to keep one file per improvement.
        monitor: the figure watched (``"val_loss"`` needs validation data; ``"loss"``,
            ``"accuracy"`` or a metric's name work without).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for accuracies, F1, top-k).

    Returns:
        A callback; its ``saved`` lists the epochs it saved.
    """
    path = _file(path, "path")
    try:
        path.format(epoch=1)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"`path`: only {{epoch}} may appear in braces, got {path!r}") from err
    return Checkpoint(path, monitor, mode)


class CSVLogger(Callback):
    """Writes every epoch's figures as a CSV row; see :func:`csv_logger`."""

    def __init__(self, path: str):
        self.path = path
        self.names: list[str] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.names = None

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.main:
            return
        figures = state.figures
        first = self.names is None
        if first:
            self.names = list(figures)
        with open(self.path, "w" if first else "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.names, extrasaction="ignore")
            if first:
                writer.writeheader()
            writer.writerow(figures)


def csv_logger(path: str | os.PathLike) -> Callback:
    """Write each epoch's figures (:meth:`~equivariance.History.figures`) to a CSV file.

    The file is replaced at the first epoch and a row appended after each epoch, so it
    holds the epochs done so far, also when the training stops on an error.

    Args:
        path: the CSV file.

    Returns:
        A callback.
    """
    return CSVLogger(_file(path, "path"))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class LRSchedule(Callback):
    """Changes the optimizer's learning rate between epochs; see :func:`lr_schedule`."""

    def __init__(self, schedule: Any, monitor: str | None, factor: float, patience: int,
                 min_lr: float):
        self.schedule, self.monitor = schedule, monitor
        self.factor, self.patience, self.min_lr = factor, patience, min_lr
        self.base: list[float] = []
        self.watch: Watch | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.base = [g["lr"] for g in state.optimizer.param_groups]
        if self.schedule == "plateau":
            monitor = self.monitor or ("val_loss" if state.validated else "loss")
            check_monitor(monitor, state, "`lr_schedule(\"plateau\")`")
            self.watch = Watch(*check_mode(monitor, "auto"))

    def on_epoch_begin(self, state: TrainState) -> None:
        e = state.epoch
        if self.schedule == "cosine":  # from the base rate at epoch 1 to min_lr after the last
            for group, base in zip(state.optimizer.param_groups, self.base):
                t = (e - 1) / state.epochs
                group["lr"] = self.min_lr + (base - self.min_lr) * (1 + math.cos(math.pi * t)) / 2
        elif callable(self.schedule):
            value = self.schedule(e)
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.reshape(()).item()
            if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"`lr_schedule`: the function must return a positive "
                                 f"learning rate, got {value!r} for epoch {e}")
            _set_lr(state.optimizer, float(value))

    def on_epoch_end(self, state: TrainState) -> None:
        if self.watch is None or self.watch.improved(state) or self.watch.wait < self.patience:
            return
        self.watch.wait = 0  # wait another `patience` epochs before the next reduction
        for group in state.optimizer.param_groups:
            group["lr"] = max(self.min_lr, group["lr"] * self.factor)


def lr_schedule(schedule: str | Callable[[int], float], monitor: str | None = None,
                factor: float = 0.1, patience: int = 2, min_lr: float = 0.0) -> Callback:
    """Change the learning rate between epochs (the history's ``lr`` records it).

    Args:
        schedule: ``"plateau"``: multiply the rate by ``factor`` when ``monitor`` has
            not improved for ``patience`` epochs; ``"cosine"``: from the optimizer's
            rate at epoch 1 down along half a cosine towards ``min_lr`` after the last
            epoch; or a function of the epoch (from 1) returning the rate of that epoch.
        monitor: for ``"plateau"``: the figure watched (default ``"val_loss"`` with
            validation data, else ``"loss"``).
        factor: for ``"plateau"``: the factor in (0, 1).
        patience: for ``"plateau"``: epochs without improvement before a reduction.
        min_lr: the lowest rate of ``"plateau"`` and ``"cosine"``.

    Returns:
        A callback.
    """
    if not (schedule in ("plateau", "cosine") if isinstance(schedule, str) else callable(schedule)):
        raise ValueError('`schedule` must be "plateau", "cosine" or a function of the epoch '
                         f"returning a learning rate, got {schedule!r}")
    if callable(schedule):
        check_arity(schedule, 1, "schedule")
    factor = positive_real(factor, "factor")
    if factor >= 1:
        raise ValueError(f"`factor` must be in (0, 1), got {factor}")
    min_lr = nonnegative_real(min_lr, "min_lr")
    if monitor is not None:
        check_mode(monitor, "auto")
    return LRSchedule(schedule, monitor, factor, positive_int(patience, "patience"), min_lr)
