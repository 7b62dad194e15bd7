"""Writing images as an image folder, the layout :func:`~.folders.image_folder` reads.

Tests, benchmarks and the vignettes make their folders with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .arrays import as_tensors
from .folders import _pil

__all__ = ["write_image_folder"]


def write_image_folder(images: Any, labels: Any, root: str | os.PathLike,
                       classes: Sequence[str] | None = None, ext: str = "png") -> str:
    """Write images as files ``root/<class>/<index>.<ext>``, the layout
    :func:`image_folder` reads (8 bits per sample).

    Args:
        images: ``(N, C, H, W)`` or ``(N, H, W)`` values in ``[0, 1]`` (tensor or array),
            C 1 or 3.
        labels: ``N`` class indices from 0.
        root: the folder (made if needed).
        classes: folder names by label (``None``: ``"0"``, ``"1"``, ...); characters
            not allowed in file names (``/``) become ``-``.
        ext: ``"png"``, ``"jpg"``, ``"bmp"`` or ``"tif"``.

    Returns:
        The folder's path.
    """
    x, y = as_tensors((images, labels), "images")
    x = x.unsqueeze(1) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"`images` must be (N, C, H, W) with C 1 or 3, got {tuple(x.shape)}")
    if ext not in ("png", "jpg", "bmp", "tif"):
        raise ValueError(f'`ext` must be "png", "jpg", "bmp" or "tif", got {ext!r}')
    Image, folder = _pil(), Path(root).expanduser()
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, (image, label) in enumerate(zip(pixels, y.tolist())):
        name = str(label) if classes is None else str(classes[label]).replace("/", "-")
        (folder / name).mkdir(parents=True, exist_ok=True)
        options = {"png": {"compress_level": 1}, "jpg": {"quality": 95}}.get(ext, {})
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(
            folder / name / f"{i:06d}.{ext}", **options)
    return str(folder)
