"""The progress display of :func:`~equivariance.fit`, a callback like any other.

:class:`ProgressBar` writes to stdout: on a terminal one bar per epoch, rewritten in
place, then a line with the epoch's figures; elsewhere (R consoles, notebooks, logs) a
few bar lines per epoch. The bar keeps its ETA within the width (80 columns when the
width is unknown): figures are dropped before it is. :class:`ProgressEvents` sends the
same events to a function instead (the R package drives a cli progress bar with it).
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from typing import Any, Callable

from .._validation import positive_int
from .callbacks import Callback, TrainState

__all__ = ["progress_bar"]

_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc", "balanced_accuracy": "bal_acc",
          "val_balanced_accuracy": "val_bal_acc"}


def format_eta(seconds: float) -> str:
    """``"42s"``, ``"3m05s"``, ``"1h02m"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fit_line(head: str, figures: list[str], width: int) -> str:
    """``head`` then as many of ``figures`` as fit in ``width`` columns, in order."""
    line = head
    for f in figures:
        if len(line) + 1 + len(f) > width:
            break
        line += " " + f
    return line


def figure_texts(figures: dict[str, Any], regularized: bool) -> list[str]:
    """``["loss 0.4312", "acc 0.851", ...]`` for an epoch's figures (not lr, seconds)."""
    out = []
    for name, value in figures.items():
        if name in ("epoch", "seconds", "lr") or (name == "reg" and not regularized):
            continue
        out.append(f"{_SHORT.get(name, name)} {value:.4g}")
    return out


class ProgressBar(Callback):
    """A text progress bar on stdout; see :func:`progress_bar`."""

    def __init__(self, every: int | None = None, width: int | None = None):
        self.every, self.width = every, width
        try:
            self.tty = bool(sys.stdout.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.last = 0.0

    def _columns(self) -> int:
        if self.width is not None:
            return self.width
        return shutil.get_terminal_size((80, 24)).columns if self.tty else 80

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def _bar(self, state: TrainState) -> str:
        steps, step = state.steps, state.step
        done = int(20 * step / steps)
        bar = ("=" * done + (">" if done < 20 else "")).ljust(20)[:20]
        eta = state.seconds / step * (steps - step) if step else 0.0
        head = (f"epoch {state.epoch}/{state.epochs} [{bar}] {step}/{steps} "
                f"ETA {format_eta(eta)} |")
        figures = [f"loss {state.running_loss:.4f}"]
        if state.running_reg is not None:
            figures.append(f"reg {state.running_reg:.4f}")
        return fit_line(head, figures, self._columns() - 1)

    def on_train_begin(self, state: TrainState) -> None:
        if self.every is None:
            self.every = 1 if self.tty else max(1, -(-state.steps // 4))

    def on_step_end(self, state: TrainState) -> None:
        if not state.main or state.step == state.steps:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self.last >= 0.25:
                self.last = now
                self._write("\r" + self._bar(state).ljust(self._columns() - 1))
        elif state.step % self.every == 0:
            self._write(self._bar(state) + "\n")

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.main:
            return
        figures = state.figures
        seconds = figures["seconds"]
        head = (f"epoch {state.epoch}/{state.epochs} {seconds:.1f}s "
                f"({1000 * seconds / state.steps:.0f} ms/step):")
        text = " ".join([head] + figure_texts(figures, state.running_reg is not None))
        # wrapped to the width; the bar's line is cleared by padding: nothing of it is
        # drawn again afterwards
        width = self._columns() - 1
        text = textwrap.fill(text, width, subsequent_indent="    ", break_long_words=False)
        self._write(("\r" + text.ljust(width) if self.tty else text) + "\n")


def progress_bar(every: int | None = None, width: int | None = None) -> Callback:
    """The progress display ``fit(verbose=True)`` adds, to pass with other settings.

    Args:
        every: steps between bar lines when stdout is not a terminal (default: four
            lines per epoch); on a terminal the bar is redrawn at most 4 times a second.
        width: columns the bar keeps within (default: the terminal's, else 80).

    Returns:
        A callback; ``fit`` adds no other display when one is among its callbacks.
    """
    every = None if every is None else positive_int(every, "every")
    width = None if width is None else positive_int(width, "width")
    return ProgressBar(every, width)


class ProgressEvents(Callback):
    """Progress reported to the caller's function ``fn(event)``, ``event`` a dict.

    ``{"event": "start", "epochs", "steps"}`` once; ``{"event": "step", "epoch",
    "step", "steps", "loss", "reg", "seconds"}`` after every step (``loss`` and ``reg``
    the epoch's running means, ``reg`` ``None`` without a regularizer, ``seconds``
    since the epoch began); ``{"event": "epoch", ...}`` with the epoch's figures (see
    :meth:`~equivariance.History.figures`) after every epoch; ``{"event": "end"}`` at
    the end, also when training stops on an error.
    """

    def __init__(self, fn: Callable[[dict[str, Any]], Any]):
        if not callable(fn):
            raise TypeError(f"`fn` must be a function of one dict, got {type(fn).__name__}")
        self.fn = fn

    def on_train_begin(self, state: TrainState) -> None:
        if state.main:
            self.fn({"event": "start", "epochs": state.epochs, "steps": state.steps})

    def on_step_end(self, state: TrainState) -> None:
        if state.main:
            self.fn({"event": "step", "epoch": state.epoch, "step": state.step,
                     "steps": state.steps, "loss": state.running_loss,
                     "reg": state.running_reg, "seconds": state.seconds})

    def on_epoch_end(self, state: TrainState) -> None:
        if state.main:
            figures = dict(state.figures)
            if state.running_reg is None:
                figures["reg"] = None
            self.fn({"event": "epoch", **figures})

    def on_train_end(self, state: TrainState) -> None:
        if state.main:
            self.fn({"event": "end"})


def is_display(callback: Callback) -> bool:
    """Whether ``callback`` shows progress (then ``fit`` adds no display of its own)."""
    return isinstance(callback, (ProgressBar, ProgressEvents))
