"""Data sources for training: Fashion-MNIST IDX files (full set or the shipped subset),
image files (:mod:`.folders`) and any torch data set read batch by batch
(:mod:`.adapters`).

The shipped subset's IDX files live in this folder beside the code that reads them.
"""

from __future__ import annotations

from . import adapters, arrays, fashion_mnist, folders, writing
from .adapters import is_stream
from .arrays import as_tensors, holdout, holdout_index
from .fashion_mnist import (
    CLASSES,
    ENV_VAR,
    FashionMNIST,
    SubsetWarning,
    fashion_mnist_root,
    load_fashion_mnist,
    make_subset,
    read_idx,
    write_idx,
)
from .folders import (
    IMAGE_EXTENSIONS,
    ImageDataset,
    ImageFileError,
    image_files,
    image_folder,
)
from .writing import write_image_folder

__all__ = (list(arrays.__all__) + list(fashion_mnist.__all__) + list(folders.__all__)
           + list(writing.__all__) + list(adapters.__all__))
