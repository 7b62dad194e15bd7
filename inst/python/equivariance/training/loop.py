"""Training: :func:`fit` and :func:`train_step`, built on one step function.

``fit`` is a plain Adam / cross-entropy loop over in-memory tensors with optional
equivariance regularization and augmentation, validation data, early stopping and
callbacks, on the device asked for; ``train_step`` is one of its steps, for
loops written by the caller (in R, for instance). Both decide once how a step runs
(:class:`_Recipe`: the regularizer, whether it reuses the batch's forward pass, the
loss, the augmentation, the model's device and dtype) and then call :func:`_step`.

When the regularizer is evaluated on the training batch it reuses the batch's own
forward pass (the model's outputs at those points) unless the model has modules that
compute a different function in training and in eval mode (dropout, batch norm, ...):
then the regularizer runs its own deterministic pass.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import (
    class_names_list, flag, function_list, optional_callable, optional_flag, positive_int,
    positive_real,
)
from .._validation import seed as check_seed
from ..data import as_tensors, holdout
from ..devices import (
    DeviceLike, as_model_input, image_batch, model_device_dtype, model_in_channels,
    resolve_device, same_device,
)
from .parallel.distributed import Parallel, Share
from .evaluation import evaluate, loss_and_accuracy
from .inputs import augmented, check_classes, forward, labelled_data, probe
from .history import EarlyStopping, History, Progress, ProgressFunction
from ..modes import mode_dependent_modules, preserved_modes
from ..regularizer import EquivarianceRegularizer

__all__ = ["fit", "mode_dependent_modules", "set_seed", "train_step"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_AUGMENT = (
    "None, a transform of equivariance.transforms (e.g. random_rot90()) or a function "
    "of a batch of images returning a batch of the same size"
)


# -- what a step does, decided once --------------------------------------------------------


@dataclass(frozen=True)
class _Recipe:
    """How every step of one :func:`fit` or :func:`train_step` call runs."""

    reg: Any  # None, an EquivarianceRegularizer or a callable returning a scalar
    reuse: bool  # pass the batch's logits to the regularizer
    reg_points: str
    loss_fn: LossFn
    augment: Callable[[torch.Tensor], Any] | None
    device: torch.device
    dtype: torch.dtype
    # (argument, smallest label, largest label) of every labelled data set, and the
    # number of class names: checked against the logits of the first step
    labels: tuple[tuple[str, int, int], ...] = ()
    num_names: int | None = None
    data_name: str = "data"  # the argument holding the images, for messages

    @property
    def default_loss(self) -> bool:
        """Cross-entropy, which needs logits ``(N, classes)``."""
        return self.loss_fn is F.cross_entropy


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    return model


def _regularizer(regularizer: Any) -> Any:
    if regularizer is None:
        return None
    py = getattr(regularizer, "py", None)  # an R wrapper passed as a Python object
    if isinstance(py, EquivarianceRegularizer):
        return py
    if not callable(regularizer):
        raise TypeError(
            "`regularizer` must be an EquivarianceRegularizer or a callable returning a "
            f"scalar tensor, got {type(regularizer).__name__}"
        )
    return regularizer


def _recipe(
    model: nn.Module,
    regularizer: Any,
    reg_points: str,
    reuse_outputs: Any,
    loss_fn: Any,
    augment: Any,
    labels: tuple[tuple[str, int, int], ...] = (),
    num_names: int | None = None,
    data_name: str = "data",
) -> _Recipe:
    if reg_points not in ("batch", "sample"):
        raise ValueError(f"`reg_points` must be \"batch\" or \"sample\", got {reg_points!r}")
    reg = _regularizer(regularizer)
    reuse = optional_flag(reuse_outputs, "reuse_outputs")
    if reuse is None:
        # training-mode outputs equal the regularizer's eval-mode ones only then
        reuse = not mode_dependent_modules(model)
    loss_fn = optional_callable(
        loss_fn, "loss_fn", "None or a function(logits, labels) returning a scalar tensor"
    )
    device, dtype = model_device_dtype(model)
    return _Recipe(
        reg=reg,
        reuse=reuse and isinstance(reg, EquivarianceRegularizer) and reg_points == "batch",
        reg_points=reg_points,
        loss_fn=F.cross_entropy if loss_fn is None else loss_fn,
        augment=optional_callable(augment, "augment", _AUGMENT),
        device=device,
        dtype=dtype,
        labels=labels,
        num_names=num_names,
        data_name=data_name,
    )


# -- one step ------------------------------------------------------------------------------


def _reg_term(recipe: _Recipe, xb: torch.Tensor, logits: torch.Tensor, share: Share
              ) -> tuple[torch.Tensor, float]:
    """The regularizer's value for one training batch, and its weight (see :class:`Share`)."""
    reg, weight = recipe.reg, 1.0
    if not isinstance(reg, EquivarianceRegularizer) or recipe.reg_points == "sample":
        value = reg()
    else:
        m, weight = share.points(reg.n)
        value = reg(xb[:m], outputs=logits[:m]) if recipe.reuse else reg(xb[:m])
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError("`regularizer` must return a scalar tensor")
    return value.reshape(()), weight


def _not_finite(where: str, loss: float, reg: float, xb: torch.Tensor, augmented: bool,
                ranks: Any = None) -> ValueError:
    bad = int((~torch.isfinite(xb)).sum())
    culprit, bad = (None, bad) if ranks is None else ranks.first_with(bad)  # see Ranks
    if bad:
        source = "`data` and `augment`" if augmented else "`data`"
        share = "the input batch" if culprit is None else f"rank {culprit}'s share of the input batch"
        cause = f"{share} held {bad} NaN or infinite value(s) (check {source})"
    elif not math.isfinite(reg):
        cause = "the input batch was finite; the regularizer's value is not"
    else:
        cause = "the input batch was finite: the training diverged (try a smaller `lr`)"
    err = ValueError(f"training stopped at {where}: the loss is not finite (loss {loss}, "
                     f"regularizer {reg}); {cause}. The parameters are those from before this step.")
    err.blame_rank = culprit  # the launcher names this rank
    return err


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    xb: torch.Tensor,
    yb: torch.Tensor,
    recipe: _Recipe,
    where: str,
    share: Share | None = None,
) -> tuple[float, float]:
    """Augment, forward, loss (+ regularizer), backward, ``optimizer.step()``.

    Raises a ValueError naming ``where`` (and leaves the parameters as they were)
    when the loss is not finite. ``share``: this rank's part of a global batch (the
    values returned are the global batch's, the same on every rank).

    Returns:
        The loss and the regularizer's value (0 without one), as floats.
    """
    if recipe.augment is not None:
        xb = augmented(recipe.augment, xb)
    optimizer.zero_grad(set_to_none=True)
    # the model's own errors name what it was given; cross-entropy needs (N, classes)
    logits = forward(model, xb, "augment" if recipe.augment is not None else recipe.data_name,
                     logits=recipe.default_loss)
    check_classes(recipe.labels, recipe.num_names, logits)
    loss = recipe.loss_fn(logits, yb)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("`loss_fn` must return a scalar tensor")
    share = Share.whole(xb.shape[0]) if share is None else share
    with share.shared_draws(recipe.device):
        r, w = _reg_term(recipe, xb, logits, share) if recipe.reg is not None else (None, 0.0)
    total = share.weighted(loss, r, w)
    share.post(loss, r, w)  # the loss reaches the other ranks with the gradients
    total.backward()
    loss_value, reg_value = share.means(float(loss.detach()),
                                        0.0 if r is None else float(r.detach()), w)
    # checked before the optimizer's step, so a NaN never reaches the parameters
    if not (math.isfinite(loss_value) and math.isfinite(reg_value)):
        optimizer.zero_grad(set_to_none=True)
        raise _not_finite(where, loss_value, reg_value, xb, recipe.augment is not None, share.ranks)
    optimizer.step()
    return loss_value, reg_value


# -- training ------------------------------------------------------------------------------


def _check_optimizer(optimizer: Any, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if optimizer is None:
        return torch.optim.Adam(model.parameters(), lr=lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer


@dataclass
class _Loop:
    """What one :func:`fit` call trains with, shared by its epochs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor] | None
    batch_size: int
    recipe: _Recipe
    par: Parallel
    history: History
    progress: Progress | ProgressFunction
    callback: Callable[[int, int, float, float], Any] | None
    callbacks: list[Callable[[dict[str, Any]], Any]]
    watch: EarlyStopping
    net: nn.Module | None = None  # what a step calls: the model, or DDP around it

    def epoch(self, epoch: int) -> bool:
        """Train one epoch, then validate and call the callbacks; ``True``: stop."""
        start = time.perf_counter()
        order = torch.randperm(self.x.shape[0], generator=self.par.order)
        sum_loss = sum_reg = 0.0
        regularized = self.recipe.reg is not None
        for step in range(1, self.progress.steps + 1):
            share = self.par.share(order[(step - 1) * self.batch_size : step * self.batch_size])
            if share is None:  # fewer images left than ranks
                continue
            xb = as_model_input(self.x[share.index], self.recipe.device, self.recipe.dtype)
            yb = self.y[share.index].to(device=self.recipe.device)
            loss, reg = _step(self.net, self.optimizer, xb, yb, self.recipe,
                              f"epoch {epoch}, step {step}", share)
            self.history.add_step(epoch, loss, reg)
            sum_loss, sum_reg = sum_loss + loss, sum_reg + reg
            if self.callback is not None:
                self.callback(epoch, step, loss, reg)
            self.progress.step(epoch, step, sum_loss / step, sum_reg / step if regularized else None,
                               time.perf_counter() - start)
        stop = False
        if self.val is not None:
            val_loss, val_accuracy = loss_and_accuracy(self.model, *self.val, self.batch_size)
            self.history.val_loss.append(val_loss)
            self.history.val_accuracy.append(val_accuracy)
            stop = self.watch.update(epoch, val_loss)
        self.history.end_epoch(self.par.ranks.slowest(time.perf_counter() - start))
        figures = self.history.figures()
        self.progress.epoch_end(figures, regularized)
        # every callback sees the epoch, even when an earlier one asked to stop
        answers = [f(dict(figures)) for f in self.callbacks]
        return stop or any(a is False or (isinstance(a, np.bool_) and not a) for a in answers)


def _early_stopping(model: nn.Module, patience: Any, restore_best: Any, validated: bool
                    ) -> EarlyStopping:
    patience = None if patience is None else positive_int(patience, "patience")
    restore = optional_flag(restore_best, "restore_best")
    restore = patience is not None if restore is None else restore
    if (patience is not None or restore) and not validated:
        what = "`patience`" if patience is not None else "`restore_best = True`"
        raise ValueError(f"{what} needs `validation_data` (data, or a fraction of `data` to "
                         "hold out): early stopping watches the validation loss")
    return EarlyStopping(model, patience, restore)


def _on_device(model: nn.Module, device: DeviceLike) -> None:
    """Move ``model`` to ``device`` (where it stays after training)."""
    target = resolve_device(device)
    if target is not None and not same_device(target, model_device_dtype(model)[0]):
        model.to(target)


def _progress(verbose: bool, progress: Any, epochs: int, steps: int, every: Any
              ) -> Progress | ProgressFunction:
    every = None if every is None else positive_int(every, "progress_every")
    if verbose and progress is not None:
        return ProgressFunction(progress, epochs, steps)
    return Progress(verbose, epochs, steps, every)


def fit(
    model: nn.Module, data: Any, epochs: int = 1, batch_size: int = 128, lr: float = 1e-3,
    regularizer: Any = None, seed: int | None = None, *, validation_data: Any = None,
    patience: int | None = None, restore_best: bool | None = None, callbacks: Any = None,
    device: DeviceLike = "auto", class_names: list[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None, reg_points: str = "batch",
    reuse_outputs: bool | None = None, augment: Callable[[torch.Tensor], Any] | None = None,
    verbose: bool = True, progress: Callable[[dict[str, Any]], Any] | None = None,
    progress_every: int | None = None, callback: Callable[[int, int, float, float], Any] | None = None,
    distributed: bool | None = None, sync_batchnorm: bool = True,
) -> History:
    """Train a classifier with Adam and cross-entropy, optionally regularized.

    Trains in training mode (modules frozen with ``.eval()`` stay frozen; modes are
    restored afterwards); a loss that is not finite stops it, naming the epoch and step.

    Args:
        model: an ``nn.Module`` returning logits ``(N, num_classes)``; trained in place.
        data: a :class:`~equivariance.data.FashionMNIST`, a ``TensorDataset``, a dict or
            a pair ``(images, labels)``; labels are class indices from 0.
        epochs, batch_size, lr: passes over the data, images per step, Adam's rate.
        regularizer: an :class:`~equivariance.EquivarianceRegularizer` (added to the
            loss at every step) or any callable returning a scalar tensor.
        seed: ``None`` or a whole number from 0 to 2**64 - 1 seeding the shuffling, the
            validation split and torch's global generator (``None``: all follow torch's).
        validation_data: ``None``, data as ``data``, or a fraction in (0, 1) of ``data``
            held out (drawn with ``seed``); measured after every epoch.
        patience: stop when the validation loss has not improved for that many epochs.
        restore_best: put back the weights of the best validation loss at the end
            (default: ``True`` when ``patience`` is set).
        callbacks: functions called after every epoch with its figures (a dict, see
            :meth:`History.figures`); one returning ``False`` stops training.
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"``, ``"mps"``, a ``torch.device`` or ``None`` (where the
            model is); the model moves there and stays.
        class_names: names of the classes by label, kept as ``model.class_names``.
        optimizer: a ready ``torch.optim.Optimizer`` to use instead of Adam.
        reg_points: ``"batch"`` (the regularizer at each batch's first ``reg.n`` images)
            or ``"sample"`` (``n`` points drawn inside its bounds).
        reuse_outputs: give the batch's logits to the regularizer (default: when the
            model has no :func:`mode_dependent_modules`).
        augment: a transform (``transforms.random_rot90()``) or function applied to
            every training batch, before the model and the regularizer see it.
        verbose, progress: report progress (``False``: silent) on stdout, or to the
            function ``progress`` (see :class:`~equivariance.history.ProgressFunction`).
        progress_every: steps between progress lines when stdout is not a terminal.
        callback: called after every step as ``callback(epoch, step, loss, reg)``.
        distributed, sync_batchnorm: data-parallel under ``torchrun`` (``None``), always
            (``True``) or never; batch norm over all ranks (see :mod:`.distributed`).

    Returns:
        A :class:`History` (losses per step and epoch, validation figures, seconds).

    Shape:
        images ``(N, C, H, W)`` or ``(N, H, W)`` (one channel); labels ``(N,)``.
    """
    _check_model(model)
    epochs, batch_size = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size")
    lr, seed, verbose = positive_real(lr, "lr"), check_seed(seed, "seed"), flag(verbose, "verbose")
    callback = optional_callable(callback, "callback", "None or a function(e, step, loss, reg)", 4)
    progress = optional_callable(progress, "progress", "None or a function(event)")
    par = Parallel.start(distributed, batch_size, seed)  # one process, or this rank's view
    callbacks, names = function_list(callbacks, "callbacks", 1), class_names_list(class_names)
    d = labelled_data(model, data, validation_data, par.seed, names)
    watch = _early_stopping(model, patience, restore_best, d.val is not None)
    _on_device(model, device)
    recipe = _recipe(model, regularizer, reg_points, reuse_outputs, None, augment, d.labels,
                     None if d.classes is None else len(d.classes))
    probe(model, d.unseen_images(), recipe)
    report = _progress(verbose and par.ranks.main, progress, epochs,  # rank 0 reports
                       math.ceil(d.x.shape[0] / batch_size), progress_every)
    loop = _Loop(model, _check_optimizer(optimizer, model, lr), d.x, d.y, d.val, batch_size, recipe,
                 par, History(reused_outputs=recipe.reuse), report, callback, callbacks, watch)
    try:
        with par.wrap(model, sync_batchnorm) as loop.net, preserved_modes(model, "train"):
            stopped = any(loop.epoch(e) for e in range(1, epochs + 1))
    finally:
        loop.progress.end()
    return _finish(model, loop.history, watch, stopped and len(loop.history.epoch_loss) < epochs,
                   d.classes, tuple(d.x.shape[1:]))


def _finish(model: nn.Module, history: History, watch: EarlyStopping, stopped_early: bool,
            names: list[str] | None, input_shape: tuple[int, ...]) -> History:
    """Restore the best weights when asked; keep what the model was trained on."""
    history.stopped_early, history.best_epoch = stopped_early, watch.best_epoch
    watch.restore()
    if names is not None:
        model.class_names = names
    model.input_shape = input_shape  # what summary() shows output shapes for
    return history


def set_seed(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy and Python's ``random``.

    Args:
        seed: a whole number from 0 to 2**64 - 1.

    Example:
        >>> set_seed(1); a = torch.rand(2); set_seed(1); torch.equal(a, torch.rand(2))
        True
    """
    seed = check_seed(seed, "seed")
    if seed is None:
        raise ValueError("`seed` must be a whole number from 0 to 2**64 - 1, got None")
    torch.manual_seed(seed)  # seeds the CUDA generators too
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])  # numpy takes 32-bit words: none lost
    random.seed(seed)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Any,
    y: Any,
    regularizer: Any = None,
    *,
    loss_fn: LossFn | None = None,
    reg_points: str = "batch",
    reuse_outputs: bool | None = None,
    augment: Callable[[torch.Tensor], Any] | None = None,
) -> dict[str, float]:
    """One optimization step of :func:`fit`: forward, loss (+ regularizer), backward,
    ``optimizer.step()``, in the model's current mode.

    Returns plain floats, so a caller such as R holds no tensor (and no graph) afterwards.
    A loss that is not finite is a ValueError, raised before the optimizer's step.

    Args:
        model, optimizer: what to train and how.
        x, y: a batch of inputs and integer labels (tensors or arrays); the inputs are
            converted to the model's device and dtype.
        regularizer: as in :func:`fit`.
        loss_fn: ``loss_fn(logits, y)`` returning a scalar tensor; default cross-entropy.
        reg_points, reuse_outputs, augment: as in :func:`fit`.

    Returns:
        ``{"loss": ..., "reg": ..., "total": ...}``.

    Shape:
        x ``(N, ...)``, y ``(N,)``.
    """
    _check_model(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    xb, yb = as_tensors((x, y), "x, y")
    recipe = _recipe(model, regularizer, reg_points, reuse_outputs, loss_fn, augment,
                     data_name="x")
    xb = as_model_input(xb, recipe.device, recipe.dtype)
    loss, reg = _step(model, optimizer, xb, yb.to(device=recipe.device), recipe, "this step")
    return {"loss": loss, "reg": reg, "total": loss + reg}
