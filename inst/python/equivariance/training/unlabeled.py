"""Images without labels for the regularizer: ``fit(..., unlabeled_data=...)``.

The regularizer needs no labels: with ``unlabeled_data`` it is evaluated at every step
on a batch of ``reg.n`` of those images (``reg_points="unlabeled"``, the default when
``unlabeled_data`` is given), drawn in order from a shuffled pass over them (a fresh
shuffle when they run out, seeded by ``fit``'s ``seed``), independent of the labelled
batches. The labelled loss never sees them, and ``augment`` does not apply to them.
This is the setting of semi-supervised consistency training.

``unlabeled_data`` takes images in the forms ``fit`` accepts for images: a tensor or
array ``(N, C, H, W)`` or ``(N, H, W)``, a data set, or a pair ``(images, labels)``
(or a labelled data set), whose labels are ignored. The images must have the shape
of ``data``'s, hold at least one image and only finite values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._validation import check_finite
from ..data import as_tensors
from ..devices import as_model_input, image_batch, model_in_channels
from ..regularizer import EquivarianceRegularizer

__all__ = ["REG_POINTS", "UnlabeledPoints", "reg_points_choice", "unlabeled_points"]

#: Where :func:`~equivariance.fit` evaluates the regularizer.
REG_POINTS = ("batch", "sample", "unlabeled")

_FORMS = ("images (a tensor or array (N, C, H, W) or (N, H, W)), a data set or a pair "
          "(images, labels) whose labels are ignored")


def reg_points_choice(reg_points: Any, has_unlabeled: bool) -> str:
    """``reg_points`` checked; ``None`` is ``"unlabeled"`` with unlabeled data, else
    ``"batch"``.

    Args:
        reg_points: ``None``, ``"batch"``, ``"sample"`` or ``"unlabeled"``.
        has_unlabeled: whether ``unlabeled_data`` was given.

    Returns:
        The choice.
    """
    if reg_points is None:
        return "unlabeled" if has_unlabeled else "batch"
    if not isinstance(reg_points, str) or reg_points not in REG_POINTS:
        raise ValueError('`reg_points` must be "batch", "sample" or "unlabeled" (or None: '
                         '"unlabeled" when `unlabeled_data` is given, else "batch"), '
                         f"got {reg_points!r}")
    if reg_points == "unlabeled" and not has_unlabeled:
        raise ValueError('`reg_points = "unlabeled"` needs `unlabeled_data`: the images '
                         "(without labels) to evaluate the regularizer at")
    if reg_points != "unlabeled" and has_unlabeled:
        raise ValueError(f"`unlabeled_data` is only used with `reg_points = \"unlabeled\"` "
                         f"(the default when it is given), got `reg_points = {reg_points!r}`")
    return reg_points


def _images(data: Any) -> Any:
    """The images held by ``data``, whatever its form (labels dropped)."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return data
    if isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) == 1:
        return data.tensors[0]
    if isinstance(data, (tuple, list, dict)) or hasattr(data, "images") or \
            isinstance(data, torch.utils.data.TensorDataset):
        return as_tensors(data, "unlabeled_data")[0]
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        items = [data[i] for i in range(len(data))]
        items = [i[0] if isinstance(i, (tuple, list)) else i for i in items]
        return torch.stack([torch.as_tensor(np.asarray(i)) if not isinstance(i, torch.Tensor)
                            else i for i in items]) if items else torch.empty(0)
    raise TypeError(f"`unlabeled_data` must be {_FORMS}, got {type(data).__name__}")


def unlabeled_images(data: Any, in_channels: int | None, like: tuple[int, ...] | None
                     ) -> torch.Tensor:
    """``data``'s images as a checked ``(N, C, H, W)`` tensor.

    Args:
        data: images in any form :func:`~equivariance.fit` accepts for images; a pair
            ``(images, labels)`` or a labelled data set is accepted, its labels ignored.
        in_channels: the channels the model takes (``None``: unknown).
        like: the shape of one labelled image; the unlabeled ones must have it.

    Returns:
        The images, floating point.
    """
    try:
        x = _images(data)
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as err:
        if str(err).startswith("`unlabeled_data`"):
            raise
        raise TypeError(f"`unlabeled_data` must be {_FORMS} ({err})") from None
    if x.dim() == 0 or x.shape[0] == 0 or x.numel() == 0:
        raise ValueError("`unlabeled_data` must hold at least one image, got shape "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    x = image_batch(x, in_channels, "unlabeled_data")
    if like is not None and tuple(x.shape[1:]) != tuple(like):
        raise ValueError(f"`unlabeled_data` must be images of the shape of `data`'s, "
                         f"{tuple(like)}, got {tuple(x.shape[1:])}")
    return check_finite(x, "unlabeled_data")


class UnlabeledPoints:
    """Batches of unlabeled images, in order from shuffled passes over them.

    Args:
        images: the images ``(N, ...)``.
        seed: seeds the shuffling (``None``: torch's global generator).
    """

    def __init__(self, images: torch.Tensor, seed: int | None = None):
        self.images = images
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator()
            # another stream than the labelled batches' shuffling, which `seed` also seeds
            self.generator.manual_seed((seed * 0x9E3779B97F4A7C15 + 1) % 2**63)
        self._order = torch.empty(0, dtype=torch.long)
        self._at = 0

    def __len__(self) -> int:
        return self.images.shape[0]

    def draw(self, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The next ``n`` images (all of them when there are fewer), on ``device``.

        Args:
            n: how many.
            device, dtype: the model's.

        Returns:
            A batch ``(min(n, N), ...)``.
        """
        n = min(n, len(self))
        if self._at + n > self._order.numel():
            self._order = torch.randperm(len(self), generator=self.generator)
            self._at = 0
        index = self._order[self._at : self._at + n]
        self._at += n
        return as_model_input(self.images[index], device, dtype)


def unlabeled_points(data: Any, regularizer: Any, model: Any, like: tuple[int, ...] | None,
                     seed: int | None) -> UnlabeledPoints | None:
    """:class:`UnlabeledPoints` for ``fit``'s ``unlabeled_data`` (``None`` without it).

    Args:
        data: ``unlabeled_data``.
        regularizer: ``fit``'s ``regularizer``: an
            :class:`~equivariance.EquivarianceRegularizer` is needed.
        model: the model (its input channels, when it says).
        like: the shape of one labelled image (``None``: unknown, as for some streams);
            the unlabeled ones must have it.
        seed: ``fit``'s seed.

    Returns:
        The batches, or ``None``.
    """
    if data is None:
        return None
    reg = getattr(regularizer, "py", regularizer)
    if not isinstance(reg, EquivarianceRegularizer):
        raise TypeError("`unlabeled_data` needs `regularizer` to be an "
                         "EquivarianceRegularizer: the images are only used by it")
    return UnlabeledPoints(unlabeled_images(data, model_in_channels(model), like), seed)
