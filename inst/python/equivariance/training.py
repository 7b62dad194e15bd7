"""Training and evaluation helpers: :func:`fit`, :func:`evaluate`, :func:`train_step`.

``fit`` is a plain Adam / cross-entropy loop over in-memory tensors with optional
equivariance regularization. When the regularizer is evaluated on the training batch
it reuses the batch's own forward pass (the model's outputs at those points) unless
the model has modules that compute a different function in training and in eval mode
(dropout, batch norm, ...): then the regularizer runs its own deterministic pass.

``evaluate`` measures accuracy on rotated copies of a data set (``torch.rot90`` on the
last two dimensions) and how far the model's logits move under each rotation.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.instancenorm import _InstanceNorm

from ._validation import is_whole_number, positive_int, positive_real
from .regularizer import EquivarianceRegularizer

__all__ = [
    "History",
    "fit",
    "evaluate",
    "train_step",
    "as_tensors",
    "mode_dependent_modules",
]


# -- data ----------------------------------------------------------------------------------


def as_tensors(data: Any, name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` from a :class:`~equivariance.data.FashionMNIST`, a
    ``TensorDataset``, a pair ``(images, labels)`` of tensors or arrays, or a dict with
    keys ``images``/``labels`` (or ``x``/``y``). Labels become ``int64``."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        x, y = data.images, data.labels
    elif isinstance(data, torch.utils.data.TensorDataset):
        if len(data.tensors) < 2:
            raise ValueError(f"`{name}` must hold images and labels, got one tensor")
        x, y = data.tensors[0], data.tensors[1]
    elif isinstance(data, dict):
        keys = ("images", "labels") if "images" in data else ("x", "y")
        if not all(k in data for k in keys):
            raise ValueError(f"`{name}` as a dict must have keys 'images' and 'labels'")
        x, y = data[keys[0]], data[keys[1]]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(
            f"`{name}` must be a FashionMNIST data set, a TensorDataset or a pair "
            f"(images, labels), got {type(data).__name__}"
        )
    try:
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}`: images and labels must be tensors or arrays ({err})") from None
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"`{name}`: images must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise ValueError(f"`{name}`: labels must be whole numbers")
    elif y.dtype == torch.bool:
        raise ValueError(f"`{name}`: labels must be whole numbers, got booleans")
    y = y.reshape(-1).long() if y.dim() == 2 and y.shape[1] == 1 else y.long()
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`{name}`: labels must be a vector with one label per image, got shape "
            f"{tuple(y.shape)} for {x.shape[0]} images"
        )
    if (y < 0).any():
        raise ValueError(f"`{name}`: labels must be class indices >= 0")
    return x, y


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.get_default_dtype()


# -- regularizer plumbing ------------------------------------------------------------------

_MODE_DEPENDENT = (_DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout, _BatchNorm)


def mode_dependent_modules(model: nn.Module) -> list[str]:
    """Names of the submodules whose output may differ between training and eval mode:
    dropout and batch norm layers, instance norms and any other module tracking running
    statistics, and escnn's dropout/batch-norm modules (recognized by class name)."""
    found = []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if (
            isinstance(m, _MODE_DEPENDENT)
            or (isinstance(m, _InstanceNorm) and m.track_running_stats)
            or getattr(m, "track_running_stats", False) is True
            or "Dropout" in kind
            or "BatchNorm" in kind
        ):
            found.append(name or kind)
    return found


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


def _reg_term(
    reg: Any,
    xb: torch.Tensor,
    logits: torch.Tensor,
    reuse: bool,
    points: str,
) -> torch.Tensor:
    """The regularizer's value for one training batch."""
    if not isinstance(reg, EquivarianceRegularizer):
        value = reg()
    elif points == "sample":
        value = reg()
    else:
        m = min(reg.n, xb.shape[0])
        if reuse:
            value = reg(xb[:m], outputs=logits[:m])
        else:
            value = reg(xb[:m])
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError("`regularizer` must return a scalar tensor")
    return value.reshape(())


# -- training ------------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit` measured.

    Attributes:
        loss: cross-entropy of every step (the batch mean).
        reg: the regularizer's value at every step (0 without a regularizer).
        epoch: the epoch (from 1) of every step.
        epoch_loss, epoch_reg: means over each epoch's steps.
        epoch_seconds: wall-clock seconds of each epoch.
        reused_outputs: whether the regularizer reused the batch's forward pass.
    """

    loss: list[float] = field(default_factory=list)
    reg: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_reg: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    reused_outputs: bool = False

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.epoch_seconds)) if self.epoch_seconds else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Plain lists, by step and by epoch (what the R wrapper turns into data frames)."""
        return {
            "steps": {
                "step": list(range(1, len(self.loss) + 1)),
                "epoch": list(self.epoch),
                "loss": list(self.loss),
                "reg": list(self.reg),
            },
            "epochs": {
                "epoch": list(range(1, len(self.epoch_loss) + 1)),
                "loss": list(self.epoch_loss),
                "reg": list(self.epoch_reg),
                "seconds": list(self.epoch_seconds),
            },
            "reused_outputs": self.reused_outputs,
        }


class _Progress:
    """A textual progress line: rewritten in place on a terminal, a few lines per epoch
    otherwise (R consoles, notebooks, logs)."""

    def __init__(self, enabled: bool, epochs: int, steps: int, every: int | None):
        self.enabled = enabled
        self.epochs, self.steps = epochs, steps
        stream = sys.stdout
        try:
            self.tty = bool(stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        if every is None:
            every = max(1, math.ceil(steps / 4)) if not self.tty else 1
        self.every = every
        self.last = 0.0

    def _write(self, text: str, end: str) -> None:
        sys.stdout.write(text + end)
        sys.stdout.flush()

    def _line(self, epoch: int, step: int, loss: float, reg: float | None, seconds: float) -> str:
        width = 20
        done = int(width * step / self.steps)
        bar = "=" * done + (">" if done < width else "") + " " * (width - done - 1)
        text = (
            f"epoch {epoch}/{self.epochs} [{bar[:width]}] {step}/{self.steps} "
            f"loss {loss:.4f}"
        )
        if reg is not None:
            text += f" reg {reg:.4f}"
        return text + f" {seconds:.1f}s"

    def step(self, epoch: int, step: int, loss: float, reg: float | None, seconds: float) -> None:
        if not self.enabled or step == self.steps:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self.last >= 0.25:
                self.last = now
                self._write("\r" + self._line(epoch, step, loss, reg, seconds), "")
        elif step % self.every == 0:
            self._write(self._line(epoch, step, loss, reg, seconds), "\n")

    def epoch_end(self, epoch: int, loss: float, reg: float | None, seconds: float) -> None:
        if not self.enabled:
            return
        text = self._line(epoch, self.steps, loss, reg, seconds)
        text += f" ({1000 * seconds / self.steps:.0f} ms/step)"
        self._write(("\r" if self.tty else "") + text, "\n")


def _check_optimizer(optimizer: Any, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    if optimizer is None:
        return torch.optim.Adam(model.parameters(), lr=lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer


def fit(
    model: nn.Module,
    data: Any,
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    regularizer: Any = None,
    seed: int | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    reg_points: str = "batch",
    reuse_outputs: bool | None = None,
    verbose: bool = True,
    progress_every: int | None = None,
    callback: Callable[[int, int, float, float], Any] | None = None,
) -> History:
    """Train a classifier with Adam and cross-entropy, optionally regularized.

    Args:
        model: an ``nn.Module`` returning logits ``(N, num_classes)``; trained in place.
        data: a :class:`~equivariance.data.FashionMNIST`, a ``TensorDataset`` or a pair
            ``(images, labels)``.
        epochs: passes over the data.
        batch_size: images per step (the last batch of an epoch may be smaller).
        lr: Adam's learning rate (ignored when ``optimizer`` is given).
        regularizer: an :class:`~equivariance.EquivarianceRegularizer` (added to the
            loss at every step) or any callable returning a scalar tensor.
        seed: seeds the generator that shuffles the data and torch's global generator
            (the regularizer's draws, dropout). ``None``: both follow torch's global
            generator, so ``torch.manual_seed`` beforehand also gives reproducible runs.
        optimizer: a ready ``torch.optim.Optimizer`` to use instead of Adam.
        reg_points: ``"batch"`` evaluates the regularizer at the first ``reg.n`` images
            of each training batch (all of it if ``n`` is larger); ``"sample"`` lets it
            draw ``n`` points inside its bounds.
        reuse_outputs: pass the batch's logits to the regularizer instead of running the
            model on the untransformed points again. ``None`` (default): only when the
            model has no :func:`mode_dependent_modules` (then the outputs in training
            mode equal those the regularizer would compute in eval mode).
        verbose: print a progress line during each epoch and a summary after it.
        progress_every: steps between progress lines when stdout is not a terminal
            (default: four lines per epoch).
        callback: called after every step as ``callback(epoch, step, loss, reg)``.

    Returns:
        A :class:`History` (losses per step and per epoch, seconds per epoch).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    x, y = as_tensors(data, "data")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_real(lr, "lr")
    if seed is not None:
        if not is_whole_number(seed):
            raise ValueError(f"`seed` must be a whole number or None, got {seed!r}")
        seed = int(seed)
    if reg_points not in ("batch", "sample"):
        raise ValueError(f"`reg_points` must be \"batch\" or \"sample\", got {reg_points!r}")
    if progress_every is not None:
        progress_every = positive_int(progress_every, "progress_every")
    reg = _regularizer(regularizer)
    if reuse_outputs is None:
        reuse_outputs = not mode_dependent_modules(model)
    reuse = bool(reuse_outputs) and isinstance(reg, EquivarianceRegularizer) and reg_points == "batch"
    opt = _check_optimizer(optimizer, model, lr)

    if seed is not None:
        torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
    device, dtype = _model_device_dtype(model)

    n = x.shape[0]
    steps = math.ceil(n / batch_size)
    history = History(reused_outputs=reuse)
    progress = _Progress(bool(verbose), epochs, steps, progress_every)
    was_training = model.training
    model.train()
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            order = torch.randperm(n, generator=gen)
            sum_loss = sum_reg = 0.0
            for step in range(1, steps + 1):
                idx = order[(step - 1) * batch_size : step * batch_size]
                xb = x[idx].to(device=device, dtype=dtype)
                yb = y[idx].to(device=device)
                opt.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                if reg is not None:
                    r = _reg_term(reg, xb, logits, reuse, reg_points)
                    total = loss + r
                    reg_value = float(r.detach())
                else:
                    total, reg_value = loss, 0.0
                total.backward()
                opt.step()
                loss_value = float(loss.detach())
                del logits, loss, total
                history.loss.append(loss_value)
                history.reg.append(reg_value)
                history.epoch.append(epoch)
                sum_loss += loss_value
                sum_reg += reg_value
                if callback is not None:
                    callback(epoch, step, loss_value, reg_value)
                progress.step(
                    epoch, step, sum_loss / step, sum_reg / step if reg is not None else None,
                    time.perf_counter() - start,
                )
            seconds = time.perf_counter() - start
            history.epoch_loss.append(sum_loss / steps)
            history.epoch_reg.append(sum_reg / steps)
            history.epoch_seconds.append(seconds)
            progress.epoch_end(
                epoch, sum_loss / steps, sum_reg / steps if reg is not None else None, seconds
            )
    finally:
        model.train(was_training)
    return history


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Any,
    y: Any,
    regularizer: Any = None,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    reg_points: str = "batch",
    reuse_outputs: bool | None = None,
) -> dict[str, float]:
    """One optimization step: forward, loss (+ regularizer), backward, ``optimizer.step()``.

    Returns plain floats, so a caller such as R holds no tensor (and no graph) afterwards.

    Args:
        model, optimizer: what to train and how.
        x, y: a batch of inputs and integer labels (tensors or arrays).
        regularizer: as in :func:`fit`.
        loss_fn: ``loss_fn(logits, y)``; default cross-entropy.
        reg_points, reuse_outputs: as in :func:`fit`.

    Returns:
        ``{"loss": ..., "reg": ..., "total": ...}``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if reg_points not in ("batch", "sample"):
        raise ValueError(f"`reg_points` must be \"batch\" or \"sample\", got {reg_points!r}")
    xb, yb = as_tensors((x, y), "x, y")
    device, dtype = _model_device_dtype(model)
    xb, yb = xb.to(device=device, dtype=dtype), yb.to(device=device)
    reg = _regularizer(regularizer)
    if reuse_outputs is None:
        reuse_outputs = not mode_dependent_modules(model)
    optimizer.zero_grad(set_to_none=True)
    logits = model(xb)
    loss = F.cross_entropy(logits, yb) if loss_fn is None else loss_fn(logits, yb)
    if reg is not None:
        r = _reg_term(reg, xb, logits, bool(reuse_outputs), reg_points)
        total = loss + r
    else:
        r, total = None, loss
    total.backward()
    optimizer.step()
    return {
        "loss": float(loss.detach()),
        "reg": 0.0 if r is None else float(r.detach()),
        "total": float(total.detach()),
    }


# -- evaluation ----------------------------------------------------------------------------


def _rotations(rotations: Any) -> list[int]:
    if is_whole_number(rotations):
        rotations = [rotations]
    if isinstance(rotations, (str, bytes)) or not isinstance(rotations, (Sequence, np.ndarray, range)):
        raise TypeError(
            f"`rotations` must be a sequence of quarter turns such as (0, 1, 2, 3), got {rotations!r}"
        )
    items = list(rotations)
    if not items or not all(is_whole_number(k) for k in items):
        raise ValueError(
            f"`rotations` must be a non-empty sequence of whole numbers of quarter turns, got {rotations!r}"
        )
    items = [int(k) for k in items]
    if any(abs(k) >= 4 and k % 90 == 0 for k in items):
        raise ValueError(
            "`rotations` counts quarter turns (0, 1, 2, 3 for 0, 90, 180, 270 degrees), "
            f"got {items}"
        )
    return items


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    rotations: Sequence[int] = (0, 1, 2, 3),
    batch_size: int = 1000,
) -> list[dict[str, Any]]:
    """Accuracy of a classifier on rotated copies of ``data``.

    The model runs in eval mode under ``torch.no_grad()`` (its mode is restored), in
    batches. Each image is rotated by ``k`` quarter turns counter-clockwise with
    ``torch.rot90(x, k, dims=(-2, -1))``.

    Args:
        model: a classifier returning logits ``(N, num_classes)``.
        data: as in :func:`fit`.
        rotations: numbers of quarter turns.
        batch_size: images per forward pass.

    Returns:
        One dict per rotation: ``rotation`` (quarter turns), ``degrees``, ``accuracy``
        (in [0, 1]), ``correct``, ``n``, and ``invariance_error``: the mean over images
        of ``|f(rot x) - f(x)|`` divided by the mean of ``|f(x)|`` (Euclidean norms of
        the logits; 0 for an exactly invariant model).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    x, y = as_tensors(data, "data")
    ks = _rotations(rotations)
    batch_size = positive_int(batch_size, "batch_size")
    device, dtype = _model_device_dtype(model)
    was_training = model.training
    model.eval()
    correct = {k: 0 for k in ks}
    diff = {k: 0.0 for k in ks}
    norm = 0.0
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device=device, dtype=dtype)
            yb = y[start : start + batch_size].to(device=device)
            upright = model(xb)
            norm += float(upright.norm(dim=-1).sum())
            for k in ks:
                out = upright if k % 4 == 0 else model(torch.rot90(xb, k, dims=(-2, -1)))
                correct[k] += int((out.argmax(dim=-1) == yb).sum())
                diff[k] += float((out - upright).norm(dim=-1).sum())
    finally:
        model.train(was_training)
    n = x.shape[0]
    return [
        {
            "rotation": k,
            "degrees": 90 * k,
            "accuracy": correct[k] / n,
            "correct": correct[k],
            "n": n,
            "invariance_error": diff[k] / norm if norm > 0 else float("nan"),
        }
        for k in ks
    ]
