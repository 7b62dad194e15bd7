"""Training: :func:`fit` and :func:`train_step`, built on one step function.

``fit`` is a plain Adam / cross-entropy loop over in-memory tensors with optional
equivariance regularization and augmentation, validation data, metrics
(:mod:`.metrics`) and callbacks (:mod:`.callbacks`: early stopping, the progress
display and the rest are callback objects), on the device asked for;
``train_step`` is one of its steps, for loops written by the caller (in R, for
instance). Both decide once how a step runs (:class:`_Recipe`: the regularizer,
whether it reuses the batch's forward pass, the loss, the augmentation, the model's
device and dtype) and then call :func:`_step`.

When the regularizer is evaluated on the training batch it reuses the batch's own
forward pass (the model's outputs at those points) unless the model has modules that
compute a different function in training and in eval mode (dropout, batch norm, ...):
then the regularizer runs its own deterministic pass.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import (
    class_names_list,
    flag,
    optional_callable,
    optional_flag,
    positive_int,
    positive_real,
)
from .._validation import seed as check_seed
from ..data import as_tensors
from ..devices import (
    DeviceLike,
    as_model_input,
    model_device_dtype,
    resolve_device,
    same_device,
)
from ..modes import mode_dependent_modules
from ..regularizer import EquivarianceRegularizer
from . import feed
from .callbacks import TrainState
from .epochs import Epochs, callback_list, figure_names
from .history import History
from .inputs import augmented, check_classes, forward, probe
from .metrics import Metric, metric_list, with_accuracy
from .parallel.distributed import Parallel, Share
from .parallel.faults import first_rank_with
from .unlabeled import UnlabeledPoints, reg_points_choice, unlabeled_points

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
    unlabeled: UnlabeledPoints | None = None  # reg_points == "unlabeled": where it draws

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
    classes: list[str] | None = None,
    data_name: str = "data",
    unlabeled: tuple[Any, Any, int | None] = (None, None, None),
) -> _Recipe:
    """How the steps run. ``classes``: the class names, if any; ``unlabeled``:
    ``fit``'s ``unlabeled_data``, the shape of one labelled image and the seed."""
    points = unlabeled_points(unlabeled[0], regularizer, model, unlabeled[1], unlabeled[2])
    reg_points = reg_points_choice(reg_points, points is not None)
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
        num_names=None if classes is None else len(classes),
        data_name=data_name,
        unlabeled=points,
    )


# -- one step ------------------------------------------------------------------------------


def _reg_term(recipe: _Recipe, xb: torch.Tensor, logits: torch.Tensor, share: Share
              ) -> tuple[torch.Tensor, float]:
    """The regularizer's value for one training batch, and its weight (see :class:`Share`)."""
    reg, weight = recipe.reg, 1.0
    if recipe.unlabeled is not None:  # every rank draws the same points: weight 1
        value = reg(recipe.unlabeled.draw(reg.n, recipe.device, recipe.dtype))
    elif not isinstance(reg, EquivarianceRegularizer) or recipe.reg_points == "sample":
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
    culprit, bad = (None, bad) if ranks is None else first_rank_with(ranks, bad)
    if bad:
        source = "`data` and `augment`" if augmented else "`data`"
        share = ("the input batch" if culprit is None
                 else f"rank {culprit}'s share of the input batch")
        cause = f"{share} held {bad} NaN or infinite value(s) (check {source})"
    elif not math.isfinite(reg):
        cause = "the input batch was finite; the regularizer's value is not"
    else:
        cause = "the input batch was finite: the training diverged (try a smaller `lr`)"
    err = ValueError(f"training stopped at {where}: the loss is not finite (loss {loss}, "
                     f"regularizer {reg}); {cause}. The parameters are those from before "
                     "this step.")
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
    metrics: list[Metric] = (),
) -> tuple[float, float]:
    """Augment, forward, loss (+ regularizer), backward, ``optimizer.step()``.

    Raises a ValueError naming ``where`` (and leaves the parameters as they were)
    when the loss is not finite. ``share``: this rank's part of a global batch (the
    values returned are the global batch's, the same on every rank). ``metrics`` see
    the step's logits (training mode, before the optimizer's step).

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
    for m in metrics:
        m.update(logits, yb)
    return loss_value, reg_value


# -- training ------------------------------------------------------------------------------


def _check_optimizer(optimizer: Any, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if optimizer is None:
        return torch.optim.Adam(model.parameters(), lr=lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("`optimizer` must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    return optimizer


def _on_device(model: nn.Module, device: DeviceLike) -> None:
    """Move ``model`` to ``device`` (where it stays after training)."""
    target = resolve_device(device)
    if target is not None and not same_device(target, model_device_dtype(model)[0]):
        model.to(target)


def fit(
    model: nn.Module, data: Any, epochs: int = 1, batch_size: int = 128, lr: float = 1e-3,
    regularizer: Any = None, seed: int | None = None, *, validation_data: Any = None,
    metrics: Any = None, callbacks: Any = None, patience: int | None = None,
    augment: Callable[[torch.Tensor], Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None, device: DeviceLike = "auto",
    class_names: list[str] | None = None, verbose: bool = True, reg_points: str | None = None,
    reuse_outputs: bool | None = None, distributed: bool | None = None,
    sync_batchnorm: bool = True, num_workers: int = 0, unlabeled_data: Any = None) -> History:
    """Train a classifier with Adam and cross-entropy, optionally regularized.

    Trains in training mode (modules frozen with ``.eval()`` stay frozen; modes are
    restored afterwards); a loss that is not finite stops it, naming the epoch and step.

    Args:
        model: an ``nn.Module`` returning logits ``(N, num_classes)``; trained in place.
        data: a :class:`~equivariance.data.FashionMNIST`, a ``TensorDataset``, a dict or
            a pair ``(images, labels)``, or data read batch by batch by ``num_workers``
            processes (see :mod:`~equivariance.data.adapters`); labels from 0.
        epochs, batch_size, lr: passes over the data, images per step, Adam's rate.
        regularizer: an :class:`~equivariance.EquivarianceRegularizer` (added to the
            loss at every step) or any callable returning a scalar tensor.
        seed: ``None`` or a whole number from 0 to 2**64 - 1 seeding the shuffling, the
            validation split and torch's global generator (``None``: all follow torch's).
        validation_data: ``None``, data as ``data``, or a fraction in (0, 1) of ``data``
            held out (drawn with ``seed``); measured after every epoch.
        metrics: figures recorded per epoch besides the loss and the accuracy (always
            recorded): names (``"accuracy"``, ``"top_3"`` for top-k accuracy with any
            k, ``"balanced_accuracy"``, ``"macro_f1"``) or functions ``fn(logits,
            labels) -> number`` in a dict ``{name: fn}`` (see :mod:`.metrics`); each on
            the training epoch and, with validation data, as ``val_<name>``.
        callbacks: callback objects (:func:`checkpoint`, :func:`csv_logger`,
            :func:`lr_schedule`, :func:`early_stopping`, :func:`lambda_callback`, ...)
            and functions of an epoch's figures, ``False`` stopping (:mod:`.callbacks`).
        patience: short for ``callbacks=[early_stopping(patience=patience)]``: stop when
            the validation loss has not improved for that many epochs and put back the
            best epoch's weights.
        augment: a transform (``transforms.random_rot90()``) or function applied to
            every training batch, before the model and the regularizer see it.
        optimizer: a ready ``torch.optim.Optimizer`` to use instead of Adam.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda[:<index>]"``,
            ``"mps"``, a ``torch.device``, ``None`` (where the model is); it moves there.
        class_names: names of the classes by label, kept as ``model.class_names``.
        verbose: show a progress bar (:func:`progress_bar`) unless ``callbacks`` holds
            a display; ``False``: silent.
        reg_points: ``"batch"`` (each batch's first ``reg.n`` images), ``"sample"`` (drawn in
            its bounds), ``"unlabeled"`` (``unlabeled_data``; default when given).
        reuse_outputs: give the batch's logits to the regularizer (default: when the
            model has no :func:`mode_dependent_modules`).
        distributed, sync_batchnorm: data-parallel under ``torchrun`` (``None``), always
            (``True``) or never; batch norm over all ranks (see :mod:`.parallel`).
        unlabeled_data: images (a pair's labels are ignored) the regularizer is evaluated
            on, ``reg.n`` per step; the loss never sees them (see :mod:`.unlabeled`).

    Returns:
        A :class:`History` (losses per step, figures per epoch, best epoch, seconds).

    Shape:
        images ``(N, C, H, W)`` or ``(N, H, W)`` (one channel); labels ``(N,)``.
    """
    _check_model(model)
    epochs, batch_size = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size")
    lr, seed, verbose = positive_real(lr, "lr"), check_seed(seed, "seed"), flag(verbose, "verbose")
    metric_objects = with_accuracy(metric_list(metrics))
    par = Parallel.start(distributed, batch_size, seed)  # one process, or this rank's view
    calls, names = callback_list(callbacks, verbose, patience), class_names_list(class_names)
    d = feed.prepare(model, data, validation_data, par.seed, names, num_workers)
    _on_device(model, device)
    recipe = _recipe(model, regularizer, reg_points, reuse_outputs, None, augment, d.labels,
                     d.classes, unlabeled=(unlabeled_data, d.input_shape, par.seed))
    probe(model, d.unseen_images(), recipe)
    state = TrainState(model, _check_optimizer(optimizer, model, lr),
                       History(reused_outputs=recipe.reuse), epochs,
                       d.source.steps(batch_size) or 1,
                       figure_names(metric_objects, d.val is not None), main=par.ranks.main)
    with _trained_on(model, d.classes, d.input_shape):
        history = Epochs(d.source, d.val, batch_size, recipe, par, metric_objects, calls, state,
                         _step).run(sync_batchnorm)
    feed.record_input(model, d.source.seen)  # the input's shape and range, for predict()
    return history


_TRAINED_ON = ("class_names", "input_shape")


@contextlib.contextmanager
def _trained_on(model: nn.Module, classes: list[str] | None, input_shape: tuple[int, ...]
                ) -> Iterator[None]:
    """Keep what ``model`` is trained on (class names; the input shape, for which
    summary() shows output shapes) from the first epoch on, so checkpoints save it;
    the previous values come back when the training fails."""
    before = {k: getattr(model, k) for k in _TRAINED_ON if hasattr(model, k)}
    if classes is not None:
        model.class_names = classes
    model.input_shape = input_shape
    try:
        yield
    except BaseException:
        for k in _TRAINED_ON:
            if k in before:
                setattr(model, k, before[k])
            elif hasattr(model, k):
                delattr(model, k)
        raise


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
        raise TypeError("`optimizer` must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    xb, yb = as_tensors((x, y), "x, y")
    recipe = _recipe(model, regularizer, reg_points, reuse_outputs, loss_fn, augment,
                     data_name="x")
    xb = as_model_input(xb, recipe.device, recipe.dtype)
    loss, reg = _step(model, optimizer, xb, yb.to(device=recipe.device), recipe, "this step")
    return {"loss": loss, "reg": reg, "total": loss + reg}
