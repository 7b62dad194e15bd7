"""The training engine: :func:`fit`, :func:`train_step`, evaluation and the history.

``loop`` holds the training loop, ``evaluation`` the evaluation helpers, ``history``
the record of a run and its progress display; ``parallel/`` is everything that makes
``fit`` data-parallel under ``torchrun`` (process group, gradient exchange,
synchronised batch norm, local launch).
"""

from __future__ import annotations

from . import evaluation, history, loop, parallel
from .evaluation import evaluate
from .history import History
from .loop import fit, mode_dependent_modules, set_seed, train_step
from .parallel import parallel_fit, parallel_rotation_benchmark

__all__ = [
    "History",
    "evaluate",
    "fit",
    "mode_dependent_modules",
    "parallel_fit",
    "parallel_rotation_benchmark",
    "set_seed",
    "train_step",
]
