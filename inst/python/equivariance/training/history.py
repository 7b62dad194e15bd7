"""What :func:`~equivariance.fit` measured (:class:`History`), how it reports progress
(:class:`Progress` on a terminal, or the caller's function: R drives a cli progress bar
with it) and when it stops early (:class:`EarlyStopping`)."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from torch import nn

from .snapshot import Snapshot

__all__ = ["History"]


@dataclass
class History:
    """What :func:`~equivariance.fit` measured.

    Attributes:
        loss: cross-entropy of every step (the batch mean).
        reg: the regularizer's value at every step (0 without a regularizer).
        epoch: the epoch (from 1) of every step.
        epoch_loss, epoch_reg: means over each epoch's steps.
        epoch_seconds: wall-clock seconds of each epoch.
        val_loss, val_accuracy: cross-entropy and accuracy on the validation data after
            each epoch (empty without validation data).
        best_epoch: the epoch of the lowest validation loss (``None`` without
            validation data); its weights are the model's when they were restored.
        stopped_early: whether training stopped before ``epochs`` (early stopping or
            a callback returning ``False``).
        reused_outputs: whether the regularizer reused the batch's forward pass.
    """

    loss: list[float] = field(default_factory=list)
    reg: list[float] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_reg: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    reused_outputs: bool = False

    def add_step(self, epoch: int, loss: float, reg: float) -> None:
        """Record one step's cross-entropy and regularizer value."""
        self.loss.append(loss)
        self.reg.append(reg)
        self.epoch.append(epoch)

    def end_epoch(self, seconds: float) -> tuple[float, float]:
        """Close the current epoch; returns its mean loss and mean regularizer value."""
        epoch, first = len(self.epoch_loss) + 1, len(self.epoch)
        while first > 0 and self.epoch[first - 1] == epoch:  # this epoch's steps are last
            first -= 1
        steps = max(1, len(self.epoch) - first)
        self.epoch_loss.append(sum(self.loss[first:]) / steps)
        self.epoch_reg.append(sum(self.reg[first:]) / steps)
        self.epoch_seconds.append(seconds)
        return self.epoch_loss[-1], self.epoch_reg[-1]

    def figures(self) -> dict[str, Any]:
        """The last epoch's figures, as callbacks receive them: ``epoch``, ``loss``,
        ``reg``, ``seconds``, ``val_loss`` and ``val_accuracy`` (``None`` without
        validation data)."""
        val = bool(self.val_loss)
        return {
            "epoch": len(self.epoch_loss), "loss": self.epoch_loss[-1],
            "reg": self.epoch_reg[-1], "seconds": self.epoch_seconds[-1],
            "val_loss": self.val_loss[-1] if val else None,
            "val_accuracy": self.val_accuracy[-1] if val else None,
        }

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
                "val_loss": list(self.val_loss),
                "val_accuracy": list(self.val_accuracy),
            },
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "reused_outputs": self.reused_outputs,
        }


class Progress:
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

    def epoch_end(self, figures: dict[str, Any], regularized: bool) -> None:
        if not self.enabled:
            return
        seconds = figures["seconds"]
        text = self._line(figures["epoch"], self.steps, figures["loss"],
                          figures["reg"] if regularized else None, seconds)
        if figures["val_loss"] is not None:
            text += f" val_loss {figures['val_loss']:.4f} val_acc {figures['val_accuracy']:.3f}"
        text += f" ({1000 * seconds / self.steps:.0f} ms/step)"
        self._write(("\r" if self.tty else "") + text, "\n")

    def end(self) -> None:
        """Nothing to close on a terminal."""


class ProgressFunction:
    """Progress reported to the caller's function ``fn(event)``, ``event`` a dict.

    ``{"event": "start", "epochs", "steps"}`` once; ``{"event": "step", "epoch",
    "step", "steps", "loss", "reg", "seconds"}`` after every step (``loss`` and ``reg``
    the epoch's running means); ``{"event": "epoch", ...}`` with the epoch's figures
    (see :meth:`History.figures`) after every epoch; ``{"event": "end"}`` at the end,
    also when training stops on an error.
    """

    def __init__(self, fn: Callable[[dict[str, Any]], Any], epochs: int, steps: int):
        self.fn, self.steps = fn, steps
        fn({"event": "start", "epochs": epochs, "steps": steps})

    def step(self, epoch: int, step: int, loss: float, reg: float | None, seconds: float) -> None:
        self.fn({"event": "step", "epoch": epoch, "step": step, "steps": self.steps,
                 "loss": loss, "reg": reg, "seconds": seconds})

    def epoch_end(self, figures: dict[str, Any], regularized: bool) -> None:
        self.fn({"event": "epoch", **figures, "reg": figures["reg"] if regularized else None})

    def end(self) -> None:
        self.fn({"event": "end"})


class EarlyStopping:
    """Watches the validation loss: keeps the best weights, says when to stop.

    Args:
        model: the model being trained.
        patience: epochs without a lower validation loss before stopping (``None``:
            never stop).
        restore_best: keep a copy of the best weights (on the model's device) so
            :meth:`restore` can put them back.
    """

    def __init__(self, model: nn.Module, patience: int | None, restore_best: bool):
        self.model, self.patience, self.restore_best = model, patience, restore_best
        self.best, self.best_epoch, self.wait = math.inf, None, 0
        self.state: Snapshot | None = None

    def update(self, epoch: int, val_loss: float) -> bool:
        """Record an epoch's validation loss; ``True`` when training should stop."""
        if val_loss < self.best:  # False for NaN: a NaN loss is no improvement
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
            if self.restore_best:
                # by module, not by name: batch norms may be wrapped now (workers)
                self.state = Snapshot.take(self.model)
        else:
            self.wait += 1
        return self.patience is not None and self.wait >= self.patience

    def restore(self) -> None:
        """Put the best weights (and buffers) back, when they were kept."""
        if self.state is not None:
            self.state.restore(self.model)
