"""Data sources for training: Fashion-MNIST IDX files (full set or the shipped subset).

The shipped subset's IDX files live in this folder beside the code that reads them.
"""

from __future__ import annotations

from . import fashion_mnist
from .fashion_mnist import (
    CLASSES, ENV_VAR, FashionMNIST, SubsetWarning, as_tensors, fashion_mnist_root, holdout,
    load_fashion_mnist, make_subset, read_idx, write_idx,
)

__all__ = list(fashion_mnist.__all__)
