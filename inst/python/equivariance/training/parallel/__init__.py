"""Data-parallel training on ``torch.distributed``.

``distributed`` sets up the process group and splits each global batch between the
ranks, ``exchange`` averages the gradients (a DDP communication hook),
``sync_batchnorm`` makes batch norm use the statistics of all ranks, and ``launch``
starts local worker processes (``parallel_fit``, R's ``workers =``).
"""

from __future__ import annotations

from . import distributed, exchange, launch, sync_batchnorm
from .distributed import distributed_ranks, init_distributed, is_main_process, launched_by_torchrun
from .launch import parallel_fit, parallel_rotation_benchmark

__all__ = [
    "distributed_ranks",
    "init_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "parallel_fit",
    "parallel_rotation_benchmark",
]
