"""What :func:`~equivariance.fit` measured: :class:`History`.

The progress display lives in :mod:`.progress`, early stopping and the other
callbacks in :mod:`.callbacks`, the metrics in :mod:`.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["History"]


@dataclass(repr=False)
class History:
    """What :func:`~equivariance.fit` measured.

    Attributes:
        loss: cross-entropy of every step (the batch mean).
        reg: the regularizer's value at every step (0 without a regularizer).
        epoch: the epoch (from 1) of every step.
        epoch_loss, epoch_reg: means over each epoch's steps.
        epoch_seconds: wall-clock seconds of each epoch.
        accuracy: training accuracy of each epoch (of the training steps' logits).
        lr: the learning rate of each epoch (of the optimizer's first parameter group).
        val_loss, val_accuracy: cross-entropy and accuracy on the validation data after
            each epoch (empty without validation data).
        metrics: the other figures of ``metrics=`` by name, per epoch: ``"top_3"``,
            ``"val_top_3"``, ... (``val_`` ones only with validation data).
        best_epoch: the best epoch by ``monitor`` (``None`` without it).
        monitor: the figure that chose ``best_epoch`` (``"val_loss"`` unless early
            stopping watched another one).
        restored: whether the model holds ``best_epoch``'s weights (early stopping
            with ``restore_best``), rather than the last epoch's.
        stopped_early: whether training stopped before ``epochs`` (early stopping or
            a callback asking to stop).
        reused_outputs: whether the regularizer reused the batch's forward pass.
    """

    loss: list[float] = field(default_factory=list)
    reg: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_reg: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    monitor: str | None = None
    restored: bool = False
    stopped_early: bool = False
    reused_outputs: bool = False

    def add_step(self, epoch: int, loss: float, reg: float) -> None:
        """Record one step's cross-entropy and regularizer value."""
        self.loss.append(loss)
        self.reg.append(reg)
        self.epoch.append(epoch)

    def end_epoch(self, seconds: float, lr: float = math.nan,
                  figures: dict[str, float] | None = None) -> tuple[float, float]:
        """Close the current epoch; returns its mean loss and mean regularizer value.

        Args:
            seconds: the epoch's wall-clock time.
            lr: the learning rate it trained with.
            figures: its metrics, ``"accuracy"`` and ``val_`` ones included.
        """
        epoch, first = len(self.epoch_loss) + 1, len(self.epoch)
        while first > 0 and self.epoch[first - 1] == epoch:  # this epoch's steps are last
            first -= 1
        steps = max(1, len(self.epoch) - first)
        self.epoch_loss.append(sum(self.loss[first:]) / steps)
        self.epoch_reg.append(sum(self.reg[first:]) / steps)
        self.epoch_seconds.append(seconds)
        self.lr.append(lr)
        for name, value in (figures or {}).items():
            column = getattr(self, name) if name in ("accuracy", "val_loss", "val_accuracy") \
                else self.metrics.setdefault(name, [])
            column.append(value)
        return self.epoch_loss[-1], self.epoch_reg[-1]

    def columns(self) -> dict[str, list[float]]:
        """Every per-epoch figure by name, in the order of a table: ``loss``, ``reg``,
        ``accuracy``, the training metrics, ``val_loss``, ``val_accuracy``, the
        validation metrics, ``lr``, ``seconds`` (``val_`` ones only with validation
        data, figures not measured are absent)."""
        train = {k: v for k, v in self.metrics.items() if not k.startswith("val_")}
        val = {k: v for k, v in self.metrics.items() if k.startswith("val_")}
        out: dict[str, list[float]] = {"loss": self.epoch_loss, "reg": self.epoch_reg}
        if self.accuracy:
            out["accuracy"] = self.accuracy
        out.update(train)
        if self.val_loss:
            out["val_loss"] = self.val_loss
            out["val_accuracy"] = self.val_accuracy
        out.update(val)
        if self.lr:
            out["lr"] = self.lr
        out["seconds"] = self.epoch_seconds
        return out

    def figures(self) -> dict[str, Any]:
        """The last epoch's figures, as callbacks receive them: ``epoch`` and every
        column of :meth:`columns` (``loss``, ``reg``, ``accuracy``, the metrics,
        ``val_loss``, ``val_accuracy`` and the ``val_`` metrics with validation data,
        ``lr``, ``seconds``)."""
        figures: dict[str, Any] = {"epoch": len(self.epoch_loss)}
        figures.update({k: v[-1] for k, v in self.columns().items() if v})
        return figures

    def choose_best(self, monitor: str = "val_loss", mode: str = "min") -> None:
        """Set :attr:`best_epoch` by ``monitor`` when no callback did (weights not
        restored); nothing without that figure."""
        if self.best_epoch is not None:
            return
        values = self.columns().get(monitor)
        if not values or all(math.isnan(v) for v in values):
            return
        pick = np.nanargmax if mode == "max" else np.nanargmin
        self.best_epoch, self.monitor = int(pick(values)) + 1, monitor

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.epoch_seconds)) if self.epoch_seconds else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Plain lists, by step and by epoch (what the R wrapper turns into data frames)."""
        epochs = {"epoch": list(range(1, len(self.epoch_loss) + 1))}
        epochs.update({k: list(v) for k, v in self.columns().items()})
        return {
            "steps": {
                "step": list(range(1, len(self.loss) + 1)),
                "epoch": list(self.epoch),
                "loss": list(self.loss),
                "reg": list(self.reg),
            },
            "epochs": epochs,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "restored": self.restored,
            "stopped_early": self.stopped_early,
            "reused_outputs": self.reused_outputs,
        }

    def best_note(self) -> str:
        """``"best epoch 2 by val_loss (weights restored)"``, or ``""`` without one."""
        if self.best_epoch is None:
            return ""
        last = len(self.epoch_loss)
        if self.restored or self.best_epoch == last:
            kept = "weights restored" if self.restored else "the last epoch"
        else:
            kept = f"not restored: the model has epoch {last}'s weights"
        return f"best epoch {self.best_epoch} by {self.monitor} ({kept})"

    def __repr__(self) -> str:
        n = len(self.epoch_loss)
        head = f"History({n} epoch{'s' if n != 1 else ''}, {len(self.loss)} steps"
        if not n:
            return head + ")"
        last = self.figures()
        shown = ", ".join(f"{k} {_short(v)}" for k, v in last.items()
                          if k not in ("epoch", "seconds", "lr")
                          and not (k == "reg" and not any(self.epoch_reg)))
        notes = [x for x in (self.best_note(), "stopped early" if self.stopped_early else "")
                 if x]
        return f"{head}; last: {shown}" + "".join(f"; {x}" for x in notes) + ")"


def _short(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
