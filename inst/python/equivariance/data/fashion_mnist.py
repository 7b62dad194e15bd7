"""Fashion-MNIST from IDX files.

:func:`load_fashion_mnist` reads the four IDX files of Fashion-MNIST (gzipped or not)
into tensors: images of shape ``(N, 1, 28, 28)`` scaled to ``[0, 1]`` and ``int64``
labels. It looks for the files, in order, in

1. the folder given as ``root`` (``root="subset"`` picks the subset shipped with this
   package),
2. the folder named by the environment variable ``EQUIVARIANCE_FASHION_MNIST``,
3. ``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist``
   package installs them,
4. the shipped subset (2,000 training and 1,000 test images, 200 and 100 per class),
   with a warning saying so.

The subset is made by :func:`make_subset` (see ``equivariance/data/README``).
"""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import open_regular_file
from .._validation import positive_int

__all__ = [
    "CLASSES",
    "FashionMNIST",
    "SubsetWarning",
    "fashion_mnist_root",
    "load_fashion_mnist",
    "make_subset",
    "read_idx",
    "write_idx",
]

#: The ten Fashion-MNIST classes, by label.
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Environment variable naming a folder that holds the four IDX files.
ENV_VAR = "EQUIVARIANCE_FASHION_MNIST"
#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
#: The subset shipped inside this package.
SUBSET_ROOT = Path(__file__).resolve().parent

_SPLITS = {"train": "train", "test": "t10k"}
_IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class SubsetWarning(UserWarning):
    """Issued when the full data set is absent and the shipped subset is used."""


class FashionMNIST(torch.utils.data.Dataset):
    """Fashion-MNIST images and labels held in memory.

    A ``torch.utils.data.Dataset`` (``ds[i]`` is ``(image, label)``) that also unpacks
    as a pair: ``images, labels = ds.tensors``.

    Attributes:
        images: float32 tensor ``(N, 1, 28, 28)`` with values in ``[0, 1]``.
        labels: int64 tensor ``(N,)`` with values in ``0..9`` (see :data:`CLASSES`).
        split: ``"train"`` or ``"test"``.
        source: ``"full"`` (the files found in ``root``) or ``"subset"`` (the subset
            shipped with the package).
        root: the folder the files were read from.
    """

    classes = CLASSES

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        split: str = "train",
        source: str = "full",
        root: str | None = None,
    ) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"`images` and `labels` must have as many rows, got {images.shape[0]} "
                f"and {labels.shape[0]}"
            )
        self.images = images
        self.labels = labels
        self.split = split
        self.source = source
        self.root = root

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)``."""
        return self.images, self.labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: Any):
        if isinstance(index, (slice, Sequence, np.ndarray, torch.Tensor)) and not isinstance(
            index, (str, bytes)
        ):
            return self.subset(index)
        return self.images[index], self.labels[index]

    def subset(self, index: Any) -> FashionMNIST:
        """A new data set with the rows ``index`` (a slice, indices or a boolean mask)."""
        if not isinstance(index, slice):
            index = torch.as_tensor(np.asarray(index))
            if index.dtype != torch.bool:
                index = index.long()
        return FashionMNIST(self.images[index], self.labels[index], self.split, self.source,
                            self.root)

    def class_counts(self) -> list[int]:
        """Number of images of each class, by label."""
        return torch.bincount(self.labels, minlength=len(CLASSES)).tolist()

    def __repr__(self) -> str:
        where = "subset shipped with equivariance" if self.source == "subset" else self.root
        return (
            f"FashionMNIST(split={self.split!r}, n={len(self)}, "
            f"images={tuple(self.images.shape)}, source={where!r})"
        )


# -- IDX files ---------------------------------------------------------------------------


def _open(path: Path):
    with open_regular_file(path, "root") as fh:  # a FIFO would block the reader
        gzipped = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_exact(fh, size: int, path: Path, what: str) -> bytes:
    try:
        data = fh.read(size)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"corrupt IDX file {path}: cannot read {what} ({err})") from None
    if len(data) != size:
        raise ValueError(
            f"corrupt IDX file {path}: expected {size} bytes of {what}, found {len(data)} "
            "(truncated file?)"
        )
    return data


def read_idx(path: str | os.PathLike, magic: int, limit: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not) into a ``uint8`` array.

    Args:
        path: the file.
        magic: the expected magic number (``0x803`` for images, ``0x801`` for labels).
        limit: read only the first ``limit`` items.

    Returns:
        An array of shape ``(N, *dims)`` as stored in the file header.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a regular file (a FIFO, a folder), or the magic number, the
            header or the size is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"IDX file not found: {path}")
    with _open(path) as fh:
        head = _read_exact(fh, 4, path, "the magic number")
        found = int.from_bytes(head, "big")
        if found != magic:
            raise ValueError(
                f"corrupt IDX file {path}: magic number {found:#010x}, expected {magic:#010x}"
            )
        ndim = magic & 0xFF
        dims = np.frombuffer(_read_exact(fh, 4 * ndim, path, "the header"), dtype=">u4")
        dims = [int(d) for d in dims]
        n = dims[0] if limit is None else min(dims[0], limit)
        item = int(np.prod(dims[1:], dtype=np.int64)) if ndim > 1 else 1
        data = _read_exact(fh, n * item, path, f"{n} items")
        if limit is None or n == dims[0]:
            try:
                extra = fh.read(1)
            except (OSError, EOFError, gzip.BadGzipFile) as err:
                raise ValueError(f"corrupt IDX file {path}: {err}") from None
            if extra:
                raise ValueError(
                    f"corrupt IDX file {path}: more data than the header's {dims} announces"
                )
    return np.frombuffer(data, dtype=np.uint8).reshape([n] + dims[1:])


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a ``uint8`` array as a gzipped IDX file (reproducible bytes: no timestamp)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = (0x800 + array.ndim).to_bytes(4, "big") + np.asarray(
        array.shape, dtype=">u4"
    ).tobytes()
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh,
    ):
        fh.write(header + array.tobytes())


def _files(root: Path, split: str) -> tuple[Path, Path]:
    """The image and label files of ``split`` in ``root`` (gzipped preferred)."""
    prefix = _SPLITS[split]
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{prefix}-{kind}"
        candidates = [root / f"{name}.gz", root / name]
        path = next((p for p in candidates if p.is_file()), candidates[0])
        found.append(path)
    return found[0], found[1]


def _complete(root: Path) -> bool:
    return all(p.is_file() for split in _SPLITS for p in _files(root, split))


def fashion_mnist_root(root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Resolve where the data are read from; returns ``(folder, source)`` with
    ``source`` ``"full"`` or ``"subset"`` (see :func:`load_fashion_mnist`)."""
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f'`root` must be a folder path or "subset", got {type(root).__name__}')
        if str(root) == "subset":
            return SUBSET_ROOT, "subset"
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"`root`: folder not found: {path}")
        return path, "subset" if path.resolve() == SUBSET_ROOT else "full"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        if env == "subset":
            return SUBSET_ROOT, "subset"
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"the folder named by the environment variable {ENV_VAR} does not exist: {path}"
            )
        return path, "full"
    if _complete(DEBIAN_ROOT):
        return DEBIAN_ROOT, "full"
    return SUBSET_ROOT, "fallback"


def load_fashion_mnist(
    split: str = "train",
    root: str | os.PathLike | None = None,
    limit: int | None = None,
    *,
    warn: bool = True,
) -> FashionMNIST:
    """Load a split of Fashion-MNIST as tensors.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
            ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (gzipped or
            not), or ``"subset"`` for the subset shipped with the package. ``None``: the
            folder named by ``$EQUIVARIANCE_FASHION_MNIST``, else Debian's
            ``/usr/share/datasets/fashion-mnist``, else the shipped subset (with a
            :class:`SubsetWarning`).
        limit: keep only the first ``limit`` images of the file.
        warn: issue the :class:`SubsetWarning` when falling back to the subset.

    Returns:
        A :class:`FashionMNIST` data set; ``images, labels = ds.tensors``.

    Shape:
        images ``(N, 1, 28, 28)`` float32 in ``[0, 1]``; labels ``(N,)`` int64 in ``0..9``.

    Raises:
        ValueError: bad ``split`` or ``limit``; a corrupt file (wrong magic number,
            header or size; image and label counts that differ).
        FileNotFoundError: ``root`` or one of the files is missing.
    """
    if not isinstance(split, str) or split not in _SPLITS:
        raise ValueError(f'`split` must be "train" or "test", got {split!r}')
    if limit is not None:
        limit = positive_int(limit, "limit")
    folder, source = fashion_mnist_root(root)
    if source == "fallback":
        source = "subset"
        if warn:
            warnings.warn(
                f"Fashion-MNIST was not found in {DEBIAN_ROOT} (install the Debian package "
                f"dataset-fashion-mnist, or set {ENV_VAR} to a folder holding the IDX files); "
                "using the small subset shipped with equivariance "
                "(2,000 training and 1,000 test images).",
                SubsetWarning,
                stacklevel=2,
            )
    image_file, label_file = _files(folder, split)
    for path in (image_file, label_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"Fashion-MNIST file not found: {path} (expected the IDX files "
                f"{image_file.name} and {label_file.name} in {folder})"
            )
    images = read_idx(image_file, _IMAGE_MAGIC, limit)
    labels = read_idx(label_file, _LABEL_MAGIC, limit)
    if images.shape[1:] != (28, 28):
        raise ValueError(
            f"corrupt IDX file {image_file}: images of size {images.shape[1:]}, expected 28x28"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"corrupt data in {folder}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= len(CLASSES):
        raise ValueError(f"corrupt IDX file {label_file}: label {int(labels.max())} is not in 0..9")
    x = torch.from_numpy(images.copy()).unsqueeze(1).to(torch.float32).div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return FashionMNIST(x, y, split=split, source=source, root=str(folder))


def make_subset(
    source: str | os.PathLike = DEBIAN_ROOT,
    dest: str | os.PathLike = SUBSET_ROOT,
    per_class: dict[str, int] | None = None,
) -> dict[str, list[int]]:
    """Write the class-balanced subset shipped with the package.

    For each split, keeps the first ``per_class[split]`` images of every class in file
    order (200 per class for ``train``, 100 for ``test``), in file order, and writes them
    as gzipped IDX files with the standard names into ``dest``. Deterministic: the same
    source gives the same bytes.

    Returns:
        The indices kept in each source file, by split.
    """
    per_class = {"train": 200, "test": 100} if per_class is None else per_class
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    kept = {}
    for split, count in per_class.items():
        count = positive_int(count, f"per_class[{split!r}]")
        image_file, label_file = _files(source, split)
        images = read_idx(image_file, _IMAGE_MAGIC)
        labels = read_idx(label_file, _LABEL_MAGIC)
        index = np.sort(
            np.concatenate([np.flatnonzero(labels == c)[:count] for c in range(len(CLASSES))])
        )
        prefix = _SPLITS[split]
        write_idx(dest / f"{prefix}-images-idx3-ubyte.gz", images[index])
        write_idx(dest / f"{prefix}-labels-idx1-ubyte.gz", labels[index])
        kept[split] = index.tolist()
    return kept
