"""The one callback mechanism of :func:`~equivariance.fit`.

A callback is an object with any of the methods :meth:`Callback.on_train_begin`,
``on_epoch_begin``, ``on_step_end``, ``on_epoch_end`` and ``on_train_end`` (as in
keras and luz); each receives the :class:`TrainState` of the run. ``fit(callbacks=)``
takes callback objects and plain functions: a function is called after every epoch
with the epoch's figures (a dict, see :meth:`~equivariance.History.figures`) and
stops the training by returning ``False``. The progress display
(:mod:`.progress`), early stopping (:func:`early_stopping`, what ``patience=`` makes)
and the library of :mod:`.callback_library` (checkpoints, CSV log, learning-rate
schedules) are callbacks too.

Order: the progress display first, then the callbacks in the order given, then the
early stopping made by ``patience=``. Every callback sees every epoch, even when an
earlier one asked to stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._validation import check_arity, flag, nonnegative_real, positive_int
from .history import History
from .snapshot import Snapshot

__all__ = ["Callback", "EarlyStopping", "TrainState", "early_stopping", "lambda_callback"]


@dataclass
class TrainState:
    """What a callback sees of a :func:`~equivariance.fit` run.

    Attributes:
        model, optimizer: what is trained and how.
        history: the :class:`~equivariance.History` so far.
        epochs, steps: epochs asked for, steps per epoch.
        figure_names: the figures every epoch will have (``loss``, ``accuracy``,
            ``val_loss``, ...), known before the first epoch.
        epoch, step: the current epoch and step (from 1).
        loss, reg: the last step's loss and regularizer value.
        running_loss, running_reg: the means over the epoch's steps so far (``reg``
            ``None`` without a regularizer).
        seconds: seconds since the epoch began.
        main: whether this process reports and writes files (rank 0).
        stop: set to ``True`` to stop after the current epoch.
        failed: ``True`` in ``on_train_end`` when training stopped on an error.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    epochs: int
    steps: int
    figure_names: list[str] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    loss: float = math.nan
    reg: float = 0.0
    running_loss: float = math.nan
    running_reg: float | None = None
    seconds: float = 0.0
    main: bool = True
    stop: bool = False
    failed: bool = False

    @property
    def validated(self) -> bool:
        return "val_loss" in self.figure_names

    @property
    def figures(self) -> dict[str, Any]:
        """The last finished epoch's figures (see :meth:`History.figures`)."""
        return self.history.figures() if self.history.epoch_loss else {}


class Callback:
    """Base class of fit's callbacks: override the methods you need.

    ``on_step_end`` runs after every optimizer step, ``on_epoch_end`` after the
    epoch's validation (``state.figures`` holds its figures). Set ``state.stop = True``
    to stop after the current epoch. ``on_train_end`` also runs after an error
    (``state.failed``).
    """

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Before each epoch's first step."""

    def on_step_end(self, state: TrainState) -> None:
        """After each optimizer step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After each epoch and its validation."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last epoch, or after an error."""


def _stops(answer: Any) -> bool:
    return answer is False or (isinstance(answer, np.bool_) and not answer)


class EpochFunction(Callback):
    """A plain function called after every epoch with its figures; ``False`` stops."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]):
        self.fn = fn

    def on_epoch_end(self, state: TrainState) -> None:
        if _stops(self.fn(dict(state.figures))):
            state.stop = True


class LambdaCallback(Callback):
    """A callback made of functions; see :func:`lambda_callback`."""

    def __init__(self, **functions: Callable[[dict[str, Any]], Any] | None):
        self.functions = functions

    def _call(self, name: str, state: TrainState, event: dict[str, Any]) -> None:
        fn = self.functions.get(name)
        if fn is not None and _stops(fn(event)):
            state.stop = True

    def on_train_begin(self, state: TrainState) -> None:
        self._call("on_train_begin", state, {"epochs": state.epochs, "steps": state.steps})

    def on_epoch_begin(self, state: TrainState) -> None:
        self._call("on_epoch_begin", state, {"epoch": state.epoch, "epochs": state.epochs})

    def on_step_end(self, state: TrainState) -> None:
        self._call("on_step_end", state, {"epoch": state.epoch, "step": state.step,
                                          "steps": state.steps, "loss": state.loss,
                                          "reg": state.reg})

    def on_epoch_end(self, state: TrainState) -> None:
        self._call("on_epoch_end", state, dict(state.figures))

    def on_train_end(self, state: TrainState) -> None:
        self._call("on_train_end", state, dict(state.figures))


def lambda_callback(on_train_begin: Callable | None = None,
                    on_epoch_begin: Callable | None = None,
                    on_step_end: Callable | None = None,
                    on_epoch_end: Callable | None = None,
                    on_train_end: Callable | None = None) -> Callback:
    """A callback from functions, each called with one dict; ``False`` from any of
    them stops the training after the current epoch.

    Args:
        on_train_begin: gets ``{"epochs", "steps"}``.
        on_epoch_begin: gets ``{"epoch", "epochs"}``.
        on_step_end: gets ``{"epoch", "step", "steps", "loss", "reg"}`` (the step's
            cross-entropy and regularizer value).
        on_epoch_end: gets the epoch's figures (:meth:`History.figures`).
        on_train_end: gets the last epoch's figures (empty after an error in epoch 1).

    Returns:
        A :class:`Callback` for ``fit(callbacks=)``.
    """
    functions = {"on_train_begin": on_train_begin, "on_epoch_begin": on_epoch_begin,
                 "on_step_end": on_step_end, "on_epoch_end": on_epoch_end,
                 "on_train_end": on_train_end}
    for name, fn in functions.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"`{name}` must be None or a function of one dict, got "
                            f"{type(fn).__name__}")
        if fn is not None:
            check_arity(fn, 1, name)
    return LambdaCallback(**functions)


# -- watching a figure -------------------------------------------------------------------


def check_mode(monitor: Any, mode: Any) -> tuple[str, str]:
    """``monitor`` (a figure's name) and ``mode`` (``"min"``, ``"max"``; ``"auto"``:
    ``"max"`` for accuracies, F1 and top-k, else ``"min"``) checked."""
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"`monitor` must be the name of a figure such as \"val_loss\", got "
                        f"{monitor!r}")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f'`mode` must be "auto", "min" or "max", got {mode!r}')
    if mode == "auto":
        base = monitor.removeprefix("val_")
        mode = "max" if ("accuracy" in base or "f1" in base or base.startswith("top_")) else "min"
    return monitor, mode


def check_monitor(monitor: str, state: TrainState, who: str) -> None:
    """An error before the first epoch when ``monitor`` will not be measured."""
    if monitor in state.figure_names:
        return
    if monitor.startswith("val_") and not state.validated:
        raise ValueError(f"{who} needs `validation_data` (data, or a fraction of `data` to "
                         f"hold out): it watches {monitor!r}")
    raise ValueError(f"{who}: `monitor` {monitor!r} is not a figure of this training; "
                     f"the figures are {', '.join(state.figure_names)}")


class Watch:
    """The best value of a figure so far."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best, self.best_epoch, self.wait = math.nan, None, 0

    def improved(self, state: TrainState) -> bool:
        """Record this epoch's value; ``True`` when it is the best so far (NaN never is)."""
        value = state.figures.get(self.monitor, math.nan)
        if math.isnan(value):
            better = False
        elif math.isnan(self.best):
            better = True
        elif self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
        else:
            self.wait += 1
        return better


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved for ``patience`` epochs and keeps the
    best weights; see :func:`early_stopping`."""

    def __init__(self, monitor: str = "val_loss", patience: int | None = None,
                 restore_best: bool = True, mode: str = "auto", min_delta: float = 0.0,
                 who: str = "`early_stopping`"):
        monitor, mode = check_mode(monitor, mode)
        self.watch = Watch(monitor, mode, min_delta)
        self.patience, self.restore_best, self.who = patience, restore_best, who
        self.state: Snapshot | None = None

    def on_train_begin(self, state: TrainState) -> None:
        check_monitor(self.watch.monitor, state, self.who)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.watch.improved(state) and self.restore_best:
            # by module, not by state-dict name: with workers the batch norms are
            # wrapped now and unwrapped when the weights are put back
            self.state = Snapshot.take(state.model)
        if self.patience is not None and self.watch.wait >= self.patience:
            state.stop = True

    def on_train_end(self, state: TrainState) -> None:
        if state.failed or self.watch.best_epoch is None:
            return
        h = state.history
        h.best_epoch, h.monitor = self.watch.best_epoch, self.watch.monitor
        if self.state is not None:
            self.state.restore(state.model)
            h.restored = True


def early_stopping(monitor: str = "val_loss", patience: int | None = 3,
                   restore_best: bool = True, mode: str = "auto",
                   min_delta: float = 0.0) -> EarlyStopping:
    """Stop training when a figure stops improving; put back the best weights.

    ``fit(patience=p)`` is the short form of ``callbacks=[early_stopping(patience=p)]``.

    Args:
        monitor: the figure watched: ``"val_loss"``, ``"val_accuracy"``, ``"loss"``,
            a metric's name, ...
        patience: epochs without improvement before stopping (``None``: never stop,
            only keep the best weights).
        restore_best: put the weights of the best epoch back at the end.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for accuracies, F1, top-k).
        min_delta: the least change that counts as an improvement.

    Returns:
        A :class:`Callback`; the history's ``best_epoch`` and ``restored`` say what it did.
    """
    patience = None if patience is None else positive_int(patience, "patience")
    return EarlyStopping(monitor, patience, flag(restore_best, "restore_best"), mode,
                         nonnegative_real(min_delta, "min_delta"))


def as_callbacks(callbacks: Any) -> list[Callback]:
    """``fit(callbacks=)`` checked: callback objects and plain (epoch) functions."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError("`callbacks` must be None or a list of callbacks (eq.checkpoint(), "
                        "eq.early_stopping(), ...) and functions of an epoch's figures, got "
                        f"{type(callbacks).__name__}")
    out: list[Callback] = []
    for c in callbacks:
        if isinstance(c, Callback):
            out.append(c)
        elif callable(c):
            out.append(EpochFunction(check_arity(c, 1, "callbacks")))
        else:
            raise TypeError("`callbacks` must be None or a list of callbacks (eq.checkpoint(), "
                            "eq.early_stopping(), ...) and functions of an epoch's figures, "
                            f"got an element of type {type(c).__name__}")
    return out


class CallbackList:
    """Calls every callback's method in order."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = callbacks

    def __getattr__(self, name: str) -> Callable[[TrainState], None]:
        if not name.startswith("on_"):
            raise AttributeError(name)

        def call(state: TrainState) -> None:
            for c in self.callbacks:
                getattr(c, name)(state)

        return call
