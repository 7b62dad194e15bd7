"""Labelled images held in memory: ``(images, labels)`` from any in-memory form, and a
validation split drawn with a seed.

Every data source ends here when it is not streamed: a Fashion-MNIST data set, a
``TensorDataset``, a pair of tensors or arrays, a dict (R's data come as one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._validation import as_real, check_finite, is_real_number

__all__ = ["as_tensors", "holdout", "holdout_index"]


# -- any labelled data set as two tensors -------------------------------------------------


def _pair(data: Any, name: str) -> tuple[Any, Any]:
    """The images and labels held by ``data``, whatever its form."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels
    if isinstance(data, torch.utils.data.TensorDataset):
        if len(data.tensors) < 2:
            raise ValueError(f"`{name}` must hold images and labels, got one tensor")
        return data.tensors[0], data.tensors[1]
    if isinstance(data, dict):
        keys = ("images", "labels") if "images" in data else ("x", "y")
        if not all(k in data for k in keys):
            raise ValueError(f"`{name}` as a dict must have keys 'images' and 'labels'")
        return data[keys[0]], data[keys[1]]
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise TypeError(
        f"`{name}` must be a FashionMNIST data set, a TensorDataset or a pair "
        f"(images, labels), got {type(data).__name__}"
    )


def _labels(y: torch.Tensor, n: int, name: str) -> torch.Tensor:
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise ValueError(f"`{name}`: labels must be whole numbers")
    elif y.dtype == torch.bool:
        raise ValueError(f"`{name}`: labels must be whole numbers, got booleans")
    y = y.reshape(-1).long() if y.dim() == 2 and y.shape[1] == 1 else y.long()
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(
            f"`{name}`: labels must be a vector with one label per image, got shape "
            f"{tuple(y.shape)} for {n} images"
        )
    if n and int(y.min()) < 0:
        raise ValueError(f"`{name}`: labels must be class indices from 0, got {int(y.min())}")
    return y


def as_tensors(
    data: Any, name: str = "data", *, finite: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` from any labelled data set.

    Args:
        data: a :class:`FashionMNIST`, a ``TensorDataset``, a pair ``(images, labels)``
            of tensors or arrays, or a dict with keys ``images``/``labels`` (or
            ``x``/``y``).
        name: the argument's name, for messages.
        finite: reject images holding NaN or infinite values.

    Returns:
        The images (floating point; integer images become torch's default dtype) and
        the labels as ``int64`` class indices.

    Shape:
        images ``(N, ...)`` with ``N >= 1``; labels ``(N,)`` (``(N, 1)`` is flattened).
    """
    x, y = _pair(data, name)
    try:
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}`: images and labels must be tensors or arrays ({err})") from None
    if x.is_complex():  # a cast to real would silently drop the imaginary part
        raise TypeError(f"`{name}`: images must hold real numbers, got complex ({x.dtype})")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(
            f"`{name}`: images must have shape (N, ...) with N >= 1, got {tuple(x.shape)}"
        )
    if finite:
        check_finite(x, name)
    return x, _labels(y, x.shape[0], name)


# -- a validation split ----------------------------------------------------------------------


def holdout(
    x: torch.Tensor, y: torch.Tensor, fraction: Any, seed: int | None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split off a random ``fraction`` of the rows as validation data.

    Args:
        x, y: images and labels.
        fraction: a number in (0, 1); the held-out count is ``round(fraction * N)``,
            at least 1 and leaving at least 1 training row.
        seed: seeds the draw (``None``: torch's global generator).

    Returns:
        ``((x_train, y_train), (x_val, y_val))``, each keeping the data's order.
    """
    keep, val = holdout_index(x.shape[0], fraction, seed)
    return (x[keep], y[keep]), (x[val], y[val])


def holdout_index(n: int, fraction: Any, seed: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows kept for training and those held out by :func:`holdout`, each sorted.

    Args:
        n: the number of rows (images, or files of an image folder).
        fraction, seed: as in :func:`holdout`.

    Returns:
        ``(kept, held_out)``: two int64 tensors of row indices.
    """
    if not is_real_number(fraction) or not 0 < as_real(fraction) < 1:
        raise ValueError(
            "`validation_data` must be data (a pair (images, labels) or a data "
            f"set) or a fraction in (0, 1) of `data` to hold out, got {fraction!r}"
        )
    fraction = as_real(fraction)
    k = int(round(fraction * n))
    if not 1 <= k < n:
        raise ValueError(
            f"`validation_data` = {fraction!r} holds out {k} of {n} images; it "
            "must leave at least one image for validation and one for training"
        )
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
    val = torch.randperm(n, generator=gen)[:k].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val
