"""Metrics of a classifier's logits, measured by :func:`~equivariance.fit` per epoch.

A metric is named (``"accuracy"``, ``"top_3"`` for the top-3 accuracy (any ``k``
from 1: ``"top_<k>"``), ``"balanced_accuracy"``, ``"macro_f1"``) or a function
``fn(logits, labels) -> number``. Every metric is measured on the training epoch (the
logits of the training steps, in training mode, as they were computed) and on the
validation data after the epoch (eval mode), where its figure carries the ``val_``
prefix. The built-in metrics keep running sums (a confusion matrix, counts) on the
model's device; a function sees all of the epoch's logits and labels at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_arity
from ..devices import as_model_input, model_device_dtype
from ..modes import preserved_modes

__all__ = ["METRIC_NAMES", "metric_value"]

#: The named metrics; ``"top_<k>"`` stands for every ``k`` from 1 (``"top_3"``).
METRIC_NAMES = ("accuracy", "top_<k>", "balanced_accuracy", "macro_f1")

_EXPECTED = (
    'None, a metric name ("accuracy", "top_3" (top-k accuracy for any k >= 1: '
    '"top_<k>"), "balanced_accuracy", "macro_f1"), a function(logits, labels) returning a '
    "number, or a list of these (or a dict from names to functions)"
)
_TOP_K = re.compile(r"top_(\d+)$")


class Metric:
    """One metric's running state over an epoch (or over the validation data).

    Args:
        name: the figure's name in the history (without the ``val_`` prefix).
        fn: ``None`` for a built-in metric, else ``fn(logits, labels) -> number``.
    """

    def __init__(self, name: str, fn: Callable[[torch.Tensor, torch.Tensor], Any] | None = None):
        self.name, self.fn = name, fn
        match = _TOP_K.match(name)
        self.k = int(match.group(1)) if match else 1
        self.reset()

    def reset(self) -> None:
        """Forget what was seen (at the start of every epoch)."""
        self.correct = 0  # a 0-d tensor once updated: no transfer per step
        self.n = 0
        self.confusion: torch.Tensor | None = None
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``logits (N, C)``, ``labels (N,)``."""
        logits = logits.detach()
        if self.fn is not None:
            self.seen.append((logits, labels.detach()))
        elif self.name in ("balanced_accuracy", "macro_f1"):
            c = logits.shape[-1]
            if self.confusion is None:
                self.confusion = torch.zeros(c * c, dtype=torch.int64, device=logits.device)
            index = labels.to(torch.int64) * c + logits.argmax(dim=-1)
            self.confusion += torch.bincount(index, minlength=c * c)
        else:
            k = min(self.k, logits.shape[-1])
            top = logits.topk(k, dim=-1).indices
            self.correct = self.correct + (top == labels.unsqueeze(-1)).any(dim=-1).sum()
            self.n += labels.shape[0]

    def sync(self, ranks: Any) -> None:
        """Sum a built-in metric's counts over the ranks of a data-parallel training
        (a function metric keeps this rank's share of the epoch)."""
        if not getattr(ranks, "active", False) or self.fn is not None:
            return
        if self.confusion is not None:
            summed = ranks.total(*self.confusion.tolist())
            self.confusion = torch.tensor([round(v) for v in summed], dtype=torch.int64,
                                          device=self.confusion.device)
        else:
            correct, n = ranks.total(float(self.correct), float(self.n))
            self.correct, self.n = round(correct), round(n)

    def result(self) -> float:
        """The metric over everything seen since :meth:`reset` (NaN when nothing was)."""
        if self.fn is not None:
            if not self.seen:
                return float("nan")
            logits = torch.cat([s[0] for s in self.seen])
            labels = torch.cat([s[1] for s in self.seen])
            return _number(self.fn(logits, labels), self.name)
        if self.confusion is not None:
            c = math.isqrt(self.confusion.numel())
            return confusion_metric(self.confusion.reshape(c, c), self.name)
        return float(self.correct) / self.n if self.n else float("nan")


def confusion_metric(confusion: torch.Tensor, name: str) -> float:
    """Balanced accuracy or macro F1 from a confusion matrix (rows: true classes).

    Classes absent from both the labels and the predictions are left out of the mean.

    Args:
        confusion: ``(C, C)`` counts, ``confusion[i, j]`` images of class ``i``
            predicted as ``j``.
        name: ``"balanced_accuracy"`` or ``"macro_f1"``.

    Returns:
        The figure, in [0, 1].
    """
    m = confusion.double().cpu()
    tp, true, pred = m.diag(), m.sum(dim=1), m.sum(dim=0)
    if name == "balanced_accuracy":
        present = true > 0
        return float((tp[present] / true[present]).mean()) if present.any() else float("nan")
    present = (true + pred) > 0
    f1 = 2 * tp[present] / (true[present] + pred[present])
    return float(f1.mean()) if present.any() else float("nan")


def metric_value(name: str, logits: Any, labels: Any) -> float:
    """A named metric of ``logits`` against ``labels`` (what :func:`fit` records).

    Args:
        name: ``"accuracy"``, ``"top_<k>"`` (e.g. ``"top_3"``), ``"balanced_accuracy"``
            or ``"macro_f1"``.
        logits: ``(N, C)`` scores (tensor or array).
        labels: ``(N,)`` class indices from 0.

    Returns:
        The figure as a float.

    Example:
        >>> metric_value("accuracy", torch.tensor([[2., 1.], [0., 1.]]), torch.tensor([0, 0]))
        0.5
    """
    (metric,) = metric_list(name)
    metric.update(torch.as_tensor(logits), torch.as_tensor(labels))
    return metric.result()


def _number(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().cpu())
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise ValueError(f"`metrics`: the function {name!r} must return one number, got "
                     f"{type(value).__name__}")


def _named(name: str) -> Metric:
    if name == "top_k":
        raise ValueError('`metrics`: give top-k accuracy with its k, e.g. "top_3"')
    match = _TOP_K.match(name)
    if name in ("accuracy", "balanced_accuracy", "macro_f1") or (
            match and int(match.group(1)) >= 1):
        return Metric(name)
    raise ValueError(f"`metrics`: unknown metric {name!r}; expected {_EXPECTED}")


def _function_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier() or name == "<lambda>":
        raise ValueError("`metrics`: a function needs a name (the history's column): pass "
                         "a dict {'name': function} (in R: a named list)")
    return name


def metric_list(metrics: Any) -> list[Metric]:
    """``metrics`` of :func:`fit` checked, as :class:`Metric` objects (names unique).

    Args:
        metrics: see :mod:`equivariance.training.metrics`.

    Returns:
        The metrics, in order (``"accuracy"`` is not added here).
    """
    if metrics is None:
        return []
    if isinstance(metrics, (str, Mapping)) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"`metrics` must be {_EXPECTED}, got {type(metrics).__name__}")
    out: list[Metric] = []
    for m in metrics:
        if isinstance(m, str):
            out.append(_named(m))
        elif isinstance(m, Mapping):
            for name, fn in m.items():
                if not isinstance(name, str) or not name.isidentifier() or not callable(fn):
                    raise TypeError(f"`metrics`: a dict must map names to functions, got "
                                    f"{name!r}: {type(fn).__name__}")
                out.append(Metric(name, check_arity(fn, 2, "metrics")))
        elif callable(m):
            out.append(Metric(_function_name(m), check_arity(m, 2, "metrics")))
        else:
            raise TypeError(f"`metrics` must be {_EXPECTED}, got an element of type "
                            f"{type(m).__name__}")
    names = [m.name for m in out]
    for reserved in ("loss", "reg", "lr", "seconds", "epoch"):
        if reserved in names:
            raise ValueError(f"`metrics`: {reserved!r} is a figure fit() records already")
    if len(set(names)) != len(names):
        raise ValueError(f"`metrics`: names must be unique, got {names}")
    return out


def with_accuracy(metrics: list[Metric]) -> list[Metric]:
    """``metrics`` with ``"accuracy"`` first (the history always records it)."""
    return [Metric("accuracy")] + [m for m in metrics if m.name != "accuracy"]


@torch.no_grad()
def validation_figures(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                       metrics: list[Metric]) -> dict[str, float]:
    """The mean cross-entropy and every metric of ``model`` on ``(x, y)``, in eval mode.

    Args:
        model: a classifier returning logits.
        x, y: images (on any device) and labels from 0.
        batch_size: images per forward pass.
        metrics: as from :func:`metric_list` (reset here).

    Returns:
        ``{"val_loss": ..., "val_<metric>": ...}``.
    """
    device, dtype = model_device_dtype(model)
    loss = torch.zeros((), device=device, dtype=torch.float64)
    for m in metrics:
        m.reset()
    with preserved_modes(model, "eval"):
        for start in range(0, x.shape[0], batch_size):
            xb = as_model_input(x[start:start + batch_size], device, dtype)
            yb = y[start:start + batch_size].to(device=device)
            logits = model(xb)
            loss += F.cross_entropy(logits, yb, reduction="sum").double()
            for m in metrics:
                m.update(logits, yb)
    out = {"val_loss": float(loss) / x.shape[0]}
    out.update({f"val_{m.name}": m.result() for m in metrics})
    return out
