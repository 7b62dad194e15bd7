"""Images in files: :func:`image_folder` (one sub-folder per class) and
:func:`image_files` (files listed with their labels, e.g. in a CSV file).

Both return an :class:`ImageDataset`, a lazy map-style ``torch.utils.data.Dataset``:
only the file names and labels are held in memory, and ``ds[i]`` opens, decodes,
converts and (optionally) resizes one image when a batch needs it, so a folder
larger than memory trains. Decoding is Pillow's (PNG, JPEG, BMP and TIFF, 8 and 16
bits per sample); pixel values come out as float32 in ``[0, 1]`` (8-bit values
divided by 255, 16-bit ones by 65535).

When the data set is made, every file's header (not its pixels) is read: a file that
is not an image, a mix of channel counts without ``channels`` or a mix of sizes
without ``size`` is an error naming the file, before any training. A file whose
pixels cannot be decoded (a truncated file, say) is an :class:`ImageFileError`
naming it when a batch reaches it.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import not_regular
from .._validation import positive_int

__all__ = [
    "IMAGE_EXTENSIONS", "ImageDataset", "ImageFileError", "image_files", "image_folder",
]

#: The file endings read as images (case does not matter).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_KINDS = "PNG, JPEG, BMP or TIFF"
_GONE = "not found (deleted or moved since the data set was made?)"
# Pillow modes by the channels they give, and the 16-bit ones (scaled by 65535)
_GREY = frozenset({"1", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I"})
_COLOUR = frozenset({"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_DEEP = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


class ImageFileError(ValueError):
    """An image file that cannot be read or decoded; ``path`` names it.

    ``ImageFileError(path, reason)``; with one argument, the whole message (as a
    ``DataLoader`` re-raises a worker's error), and ``path`` is ``None``.
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        self.path = None if reason is None else str(path)
        super().__init__(str(path) if reason is None else f"image file {path}: {reason}")

    def __reduce__(self):  # pickled with its message (DataLoader workers send errors so)
        return (_image_file_error, (self.path, str(self)))


def _image_file_error(path: str | None, message: str) -> ImageFileError:
    err = ImageFileError(message)
    err.path = path
    return err


def _pil():
    from PIL import Image

    return Image


# -- arguments ------------------------------------------------------------------------------


def _size(size: Any) -> tuple[int, int] | None:
    """``None``, ``s`` (square) or ``(height, width)``."""
    if size is None:
        return None
    if isinstance(size, (list, tuple)) or (isinstance(size, np.ndarray) and size.ndim == 1):
        if len(size) != 2:
            raise ValueError("`size` must be None, a whole number or (height, width), got "
                             f"{size!r}")
        return positive_int(size[0], "size"), positive_int(size[1], "size")
    s = positive_int(size, "size")
    return s, s


def _channels(channels: Any) -> int | None:
    if channels is None:
        return None
    if isinstance(channels, (bool, np.bool_)) or not isinstance(channels, (int, float, np.number)) \
            or channels not in (1, 3):
        raise ValueError(f"`channels` must be None (the files' own), 1 (grey) or 3 (RGB), got "
                         f"{channels!r}")
    return int(channels)


def _folder(path: Any, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a folder path, got {type(path).__name__}")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"`{name}`: folder not found: {folder}")
    if not folder.is_dir():
        raise ValueError(f"`{name}` must be a folder, got the file {folder}")
    return folder


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


# -- one file -------------------------------------------------------------------------------


def _header(path: str) -> tuple[int, tuple[int, int]]:
    """The channels (1 or 3) and ``(height, width)`` of an image file, from its header."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            mode, (w, h) = img.mode, img.size
    except Exception as err:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise ImageFileError(path, f"not a readable {_KINDS} image ({type(err).__name__}: "
                                   f"{err})") from None
    if mode in _GREY:
        return 1, (h, w)
    if mode in _COLOUR:
        return 3, (h, w)
    raise ImageFileError(path, f"Pillow mode {mode!r} is not supported (grey or RGB, 8 or 16 bits)")


def decode(path: str, channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """One image file as a float32 tensor ``(channels, H, W)`` in ``[0, 1]``.

    Args:
        path: the file.
        channels: 1 (grey) or 3 (RGB); converted when the file has the other.
        size: ``(height, width)`` to resize to (bilinear), or ``None``.

    Raises:
        ImageFileError: the file cannot be opened or decoded (truncated, corrupt).
    """
    Image = _pil()
    try:
        with Image.open(path) as img:
            img.load()
            array = _pixels(img, channels, size)
    except ImageFileError:
        raise
    except FileNotFoundError:
        raise ImageFileError(path, _GONE) from None
    except Exception as err:  # noqa: BLE001
        raise ImageFileError(path, f"cannot be decoded, corrupt or truncated? "
                                   f"({type(err).__name__}: {err})") from None
    t = torch.from_numpy(array)
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def _pixels(img: Any, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """The pixels as float32 ``(H, W)`` (grey) or ``(H, W, 3)`` in [0, 1]."""
    Image = _pil()
    if img.mode in _DEEP:  # 16-bit grey: Pillow converts to 8 bits only, so numpy does
        a = np.asarray(img).astype(np.float32) / 65535.0
        if size is not None and (a.shape[0], a.shape[1]) != size:
            a = np.asarray(Image.fromarray(a, mode="F").resize(size[::-1], Image.BILINEAR))
        return np.repeat(a[:, :, None], 3, axis=2) if channels == 3 else a
    return _bytes(img, channels, size).astype(np.float32) / np.float32(255.0)


def _bytes(img: Any, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """The pixels of an 8-bit image as uint8 ``(H, W)`` or ``(H, W, 3)``, converted and
    resized by Pillow."""
    Image = _pil()
    target = "L" if channels == 1 else "RGB"
    if img.mode != target:
        if img.mode in ("P", "PA") or "A" in img.mode:
            img = img.convert("RGBA" if target == "RGB" else "LA")
        img = img.convert(target)
    if size is not None and (img.size[1], img.size[0]) != size:
        img = img.resize(size[::-1], Image.BILINEAR)
    return np.asarray(img)


# -- the data set ---------------------------------------------------------------------------


class ImageDataset(torch.utils.data.Dataset):
    """Labelled image files, decoded one at a time when indexed.

    ``ds[i]`` is ``(image, label)``: a float32 tensor ``(C, H, W)`` in ``[0, 1]`` and
    the class index (from 0). Made by :func:`image_folder` or :func:`image_files`.

    Attributes:
        files: the image files (absolute paths), in order.
        targets: their labels, class indices from 0.
        classes: the class names by label (``None`` for numbered classes).
        channels: channels of every image (1 or 3).
        size: ``(height, width)`` of every image.
        root: the folder the files were found in (or ``None``).
    """

    def __init__(self, files: Sequence[str], targets: Sequence[int], classes: list[str] | None,
                 channels: int, size: tuple[int, int], root: str | None = None) -> None:
        self.files, self.targets = list(files), [int(t) for t in targets]
        self.classes, self.channels, self.size, self.root = classes, channels, size, root

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, *self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return decode(self.files[index], self.channels, self.size), self.targets[index]

    def batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The images at positions ``index`` as one batch ``(N, C, H, W)`` and their
        labels, as ``ds[i]`` gives them (see :meth:`raw_batch`)."""
        return unit_interval(*self.raw_batch(index))

    def raw_batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of :meth:`batch` with 8-bit images left as ``uint8`` (0 to 255),
        decoded into one array: what a background process sends, 4 times smaller than
        floats (:func:`unit_interval` makes them floats in ``[0, 1]``). A batch holding
        a 16-bit image is float already."""
        (h, w), c = self.size, self.channels
        raw, deep = np.empty((len(index), h, w, c), dtype=np.uint8), {}
        Image = _pil()
        for i, j in enumerate(index):
            path = self.files[j]
            try:
                with Image.open(path) as img:
                    img.load()
                    if img.mode in _DEEP:
                        deep[i] = _pixels(img, c, self.size)
                    else:
                        raw[i] = _bytes(img, c, self.size).reshape(h, w, c)
            except FileNotFoundError:
                raise ImageFileError(path, _GONE) from None
            except Exception as err:  # noqa: BLE001
                raise ImageFileError(path, f"cannot be decoded, corrupt or truncated? "
                                           f"({type(err).__name__}: {err})") from None
        x = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()
        if deep:
            x = x.float().div_(255.0)
            for i, a in deep.items():
                x[i] = torch.from_numpy(a).reshape(h, w, c).permute(2, 0, 1)
        return x, torch.tensor([self.targets[j] for j in index], dtype=torch.int64)

    def subset(self, index: Any) -> ImageDataset:
        """The data set of the files at positions ``index`` (same classes, size, channels)."""
        index = [int(i) for i in (index.tolist() if hasattr(index, "tolist") else index)]
        return ImageDataset([self.files[i] for i in index], [self.targets[i] for i in index],
                            self.classes, self.channels, self.size, self.root)

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode every image: ``(images, labels)`` as tensors ``(N, C, H, W)`` and ``(N,)``
        (for data that fit in memory)."""
        if not self.files:
            return torch.zeros((0, *self.input_shape)), torch.zeros(0, dtype=torch.int64)
        return (torch.stack([self[i][0] for i in range(len(self))]),
                torch.tensor(self.targets, dtype=torch.int64))

    def class_counts(self) -> list[int]:
        """Images per class, by label."""
        n = len(self.classes) if self.classes is not None else max(self.targets, default=-1) + 1
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=n).tolist()

    def __repr__(self) -> str:
        c, (h, w) = self.channels, self.size
        classes = "" if self.classes is None else f", classes={len(self.classes)}"
        where = "" if self.root is None else f", root={self.root!r}"
        return f"ImageDataset(n={len(self)}, images=({c}, {h}, {w}){classes}{where})"


def unit_interval(x: torch.Tensor, y: Any = None) -> Any:
    """8-bit images (``uint8``) as float32 in ``[0, 1]``; others as they are. With
    ``y``, the pair ``(images, y)``."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    return x if y is None else (x, y)


def _layout(files: list[str], channels: int | None, size: tuple[int, int] | None
            ) -> tuple[int, tuple[int, int]]:
    """The channels and size of every image: given, or the files' own (all alike)."""
    first = None
    for path in files:
        c, hw = _header(path)
        if first is None:
            first = (path, c, hw)
            continue
        if channels is None and c != first[1]:
            raise ValueError(
                f"images with different channel counts: {first[0]} has {first[1]} and {path} "
                f"has {c}; pass `channels = 1` (grey) or `channels = 3` (RGB) to convert them")
        if size is None and hw != first[2]:
            raise ValueError(
                f"images of different sizes: {first[0]} is {first[2][0]}x{first[2][1]} and "
                f"{path} is {hw[0]}x{hw[1]} (height x width); pass `size` to resize them")
    assert first is not None
    return channels or first[1], size or first[2]


def image_folder(root: str | os.PathLike, size: Any = None, channels: int | None = None,
                 classes: Sequence[str] | None = None) -> ImageDataset:
    """A lazy data set of the images in ``root/<class>/...``, one sub-folder per class.

    Class names are the sub-folders' names, sorted (label 0 is the first); images may
    sit deeper inside a class folder. Names starting with ``.`` and files directly in
    ``root`` are ignored.

    Args:
        root: the folder.
        size: ``None`` (all images must have one size), a whole number (square) or
            ``(height, width)``: every image is resized to it (bilinear).
        channels: ``None`` (the files' own; a mix is an error), 1 (grey) or 3 (RGB).
        classes: the class names to use, in label order (a subset of the sub-folders,
            or all of them in another order); ``None``: every sub-folder, sorted.

    Returns:
        An :class:`ImageDataset`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no class sub-folder, a class folder without images, a file that
            is not a PNG, JPEG, BMP or TIFF image, mixed channels or sizes.
    """
    folder = _folder(root, "root")
    size, channels = _size(size), _channels(channels)
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        images = [f.name for f in folder.iterdir() if f.is_file() and _is_image_name(f.name)]
        hint = (f"; it holds {len(images)} image files directly: list them with their labels "
                "in image_files()") if images else ""
        raise ValueError(f"`root`: the folder {folder} has no class sub-folders (one folder "
                         f"of images per class){hint}")
    if classes is None:
        classes = found
    else:
        classes = [str(c) for c in classes]
        missing = [c for c in classes if c not in found]
        if missing or len(set(classes)) != len(classes) or not classes:
            raise ValueError(f"`classes` must be distinct names of sub-folders of {folder}, got "
                             f"{classes!r} (sub-folders: {found!r})")
    files, targets = [], []
    for label, name in enumerate(classes):
        mine = _class_files(folder / name)
        if not mine:
            raise ValueError(f"`root`: the class folder {folder / name} holds no images "
                             f"({_KINDS})")
        files += mine
        targets += [label] * len(mine)
    channels, size = _layout(files, channels, size)
    return ImageDataset(files, targets, list(classes), channels, size, os.path.abspath(folder))


def _class_files(folder: Path) -> list[str]:
    """The image files under one class folder, sorted; anything else is an error."""
    out = []
    for here, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = os.path.join(here, name)
            kind = not_regular(path)
            if kind is not None:  # a FIFO would make the reader wait forever
                raise ImageFileError(path, f"not a regular file but {kind}; move it out of "
                                           "the class folders")
            if not _is_image_name(name):
                raise ImageFileError(path, f"not an image file (expected {_KINDS}: "
                                           f"{', '.join(IMAGE_EXTENSIONS)}); move it out of "
                                           "the class folders")
            out.append(os.path.abspath(path))
    return out


def image_files(files: Any, labels: Any = None, root: str | os.PathLike | None = None,
                size: Any = None, channels: int | None = None,
                classes: Sequence[str] | None = None) -> ImageDataset:
    """A lazy data set of image files listed with their labels (a flat folder, say).

    Args:
        files: the files (paths, relative to ``root`` when given), or the path of a CSV
            file with a header and the columns ``file`` and ``label`` (relative paths
            then start at the CSV file's folder unless ``root`` is given).
        labels: one label per file: class indices from 0, or class names (strings);
            ``None`` when ``files`` is a CSV file.
        root: folder the file names are relative to.
        size, channels: as in :func:`image_folder`.
        classes: class names by label. With names as labels, the default is the names
            sorted; with class indices, ``None`` (numbered classes).

    Returns:
        An :class:`ImageDataset`.

    Raises:
        ValueError: files and labels of different lengths, no files, a missing file,
            bad labels, or any problem :func:`image_folder` reports.
    """
    base = None if root is None else _folder(root, "root")
    if isinstance(files, (str, os.PathLike)):
        if labels is not None:
            raise ValueError("`labels` must be None when `files` is a CSV file (its `label` "
                             "column holds them)")
        files, labels, csv_folder = _read_csv(Path(files).expanduser())
        base = base or csv_folder
    if isinstance(files, np.ndarray):
        files = files.tolist()
    if not isinstance(files, Sequence) or not files or not all(
            isinstance(f, (str, os.PathLike)) for f in files):
        raise ValueError("`files` must be a non-empty list of file paths or a CSV file's path")
    paths = [str(Path(base, f) if base is not None else Path(f).expanduser()) for f in files]
    targets, classes = _targets(labels, len(paths), classes)
    for path in paths:
        kind = not_regular(path)
        if kind is not None:  # a FIFO would make the reader wait forever
            raise ImageFileError(path, f"not a regular file but {kind}")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"`files`: image file not found: {path}")
        if not _is_image_name(path):
            raise ImageFileError(path, f"not an image file (expected {_KINDS})")
    channels, size = _layout(paths, _channels(channels), _size(size))
    return ImageDataset([os.path.abspath(p) for p in paths], targets, classes, channels, size,
                        None if base is None else str(base))


def _read_csv(path: Path) -> tuple[list[str], list[str], Path]:
    kind = not_regular(path)
    if kind is not None:
        raise ValueError(f"`files` must be a list of paths or a CSV file, got {kind}: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"`files`: CSV file not found: {path}")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise ValueError(f"`files`: the CSV file {path} must have a header with the columns "
                         "`file` and `label` and at least one row")
    return [r["file"] for r in rows], [r["label"] for r in rows], path.parent


def _targets(labels: Any, n: int, classes: Sequence[str] | None
             ) -> tuple[list[int], list[str] | None]:
    """Class indices from labels given as indices from 0 or as names."""
    if labels is None:
        raise ValueError("`labels` must give one label per file")
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        labels = labels.tolist()
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"`labels` must have one label per file: {n} files, {len(labels)} labels")
    if all(isinstance(v, str) for v in labels):
        names = sorted(set(labels)) if classes is None else [str(c) for c in classes]
        lookup = {c: i for i, c in enumerate(names)}
        unknown = [v for v in labels if v not in lookup]
        if unknown:
            raise ValueError(f"`labels`: {unknown[0]!r} is not one of `classes` {names!r}")
        return [lookup[v] for v in labels], names
    ok = all(isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer())
             for v in labels) and not any(isinstance(v, (bool, np.bool_)) for v in labels)
    if not ok or min(labels) < 0:
        raise ValueError("`labels` must be class indices from 0 or class names (strings), got "
                         f"{labels[:5]!r}{'...' if n > 5 else ''}")
    targets = [int(v) for v in labels]
    names = None if classes is None else [str(c) for c in classes]
    if names is not None and max(targets) >= len(names):
        raise ValueError(f"`labels`: label {max(targets)} but only {len(names)} `classes`")
    return targets, names
