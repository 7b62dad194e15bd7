"""The epochs of one :func:`~equivariance.fit` call: steps, metrics, validation and
the callbacks' calls around them (:class:`Epochs`), and the callbacks ``fit`` runs
(:func:`callback_list`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .._validation import positive_int
from ..devices import as_model_input
from ..modes import preserved_modes
from . import feed
from .callbacks import CallbackList, EarlyStopping, TrainState, as_callbacks
from .history import History
from .metrics import Metric
from .parallel.distributed import Parallel
from .progress import ProgressBar, is_display


def callback_list(callbacks: Any, verbose: bool, patience: Any) -> CallbackList:
    """The display (unless one is given), the caller's callbacks, ``patience``'s."""
    given = as_callbacks(callbacks)
    shown = [ProgressBar()] if verbose and not any(is_display(c) for c in given) else []
    if patience is not None:
        given.append(EarlyStopping("val_loss", positive_int(patience, "patience"),
                                   who="`patience`"))
    return CallbackList(shown + given)


def figure_names(metrics: list[Metric], validated: bool) -> list[str]:
    names = ["loss", "reg"] + [m.name for m in metrics]
    if validated:
        names += ["val_loss"] + [f"val_{m.name}" for m in metrics]
    return names + ["lr", "seconds"]


@dataclass
class Epochs:
    """What one :func:`~equivariance.fit` call trains with, shared by its epochs."""

    source: Any  # the training batches: data.adapters.InMemory or Stream
    val: Any  # None, a pair of tensors or a data.adapters.Stream
    batch_size: int
    recipe: Any  # the loop's _Recipe
    par: Parallel
    metrics: list[Metric]
    callbacks: CallbackList
    state: TrainState
    step_fn: Callable[..., tuple[float, float]]  # the loop's _step
    net: nn.Module | None = None  # what a step calls: the model, or DDP around it

    def epoch(self, epoch: int) -> bool:
        """Train one epoch, then validate and call the callbacks; ``True``: stop."""
        state, history = self.state, self.state.history
        state.epoch, state.step, state.seconds = epoch, 0, 0.0
        self.callbacks.on_epoch_begin(state)
        lr = float(state.optimizer.param_groups[0]["lr"])
        start = time.perf_counter()
        sum_loss = sum_reg = 0.0
        for m in self.metrics:
            m.reset()
        batches = self.source.batches(self.par, self.batch_size, epoch)
        for step, (xb, yb, share) in enumerate(batches, 1):
            xb = as_model_input(xb, self.recipe.device, self.recipe.dtype)
            yb = yb.to(device=self.recipe.device)
            loss, reg = self.step_fn(self.net, state.optimizer, xb, yb,
                                     feed.step_recipe(self.recipe, self.source, epoch, step),
                                     f"epoch {epoch}, step {step}", share, self.metrics)
            history.add_step(epoch, loss, reg)
            sum_loss, sum_reg = sum_loss + loss, sum_reg + reg
            state.step, state.loss, state.reg = step, loss, reg
            state.running_loss = sum_loss / step
            state.running_reg = sum_reg / step if self.recipe.reg is not None else None
            state.seconds = time.perf_counter() - start
            self.callbacks.on_step_end(state)
        if state.step and self.source.steps(self.batch_size) is None:
            state.steps = state.step  # a stream without a length: its steps, now counted
        for m in self.metrics:
            m.sync(self.par.ranks)
        figures = {m.name: m.result() for m in self.metrics}
        if self.val is not None:
            figures.update(feed.validation(state.model, self.val, self.batch_size, self.metrics))
        history.end_epoch(self.par.ranks.slowest(time.perf_counter() - start), lr, figures)
        self.callbacks.on_epoch_end(state)
        return state.stop

    def run(self, sync_batchnorm: Any) -> History:
        """Every epoch between the callbacks' ``on_train_begin`` and ``on_train_end``."""
        state, model = self.state, self.state.model
        self.callbacks.on_train_begin(state)
        try:
            with self.par.wrap(model, sync_batchnorm) as self.net, preserved_modes(model, "train"):
                stopped = any(self.epoch(e) for e in range(1, state.epochs + 1))
        except BaseException:
            state.failed = True
            raise
        finally:
            self.callbacks.on_train_end(state)
        history = state.history
        history.stopped_early = stopped and len(history.epoch_loss) < state.epochs
        history.choose_best("val_loss")
        return history
