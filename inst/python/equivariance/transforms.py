"""Geometric transforms for the equivariance regularizer.

Every transform acts on the last two dimensions (height, width) of a batched tensor
``(N, ..., H, W)``. A tensor with fewer than three dimensions, such as a classifier's
``(N, num_classes)`` logits, has no spatial dimensions and is returned unchanged, so
the 3-element form ``(f, epsilon, lambda_eq)`` asks a classifier to be *invariant*
and an image-to-image model to be *equivariant* with the same transform.

Random transforms draw from torch's global generator, so ``torch.manual_seed`` makes
them reproducible; the regularizer replays the generator so that input and output
see the same draw.
"""

from __future__ import annotations

import torch

from ._validation import is_whole_number

__all__ = [
    "Transform",
    "identity",
    "rot90",
    "hflip",
    "vflip",
    "random_rot90",
    "translate",
]


def _has_spatial_dims(x: torch.Tensor) -> bool:
    return x.dim() >= 3


def _whole(value, name: str) -> int:
    if not is_whole_number(value):
        raise ValueError(f"`{name}` must be a whole number, got {value!r}")
    return int(value)


class Transform:
    """A named, picklable transform; subclasses implement :meth:`apply`."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self!r} expects a torch.Tensor, got {type(x).__name__}")
        if not _has_spatial_dims(x):
            return x
        return self.apply(x)

    def apply(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class _Identity(Transform):
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __repr__(self) -> str:
        return "identity"


#: The identity transform (leaves every tensor unchanged).
identity = _Identity()


class _Rot90(Transform):
    def __init__(self, k: int):
        self.k = _whole(k, "k") % 4

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(x, self.k, dims=(-2, -1))

    def __repr__(self) -> str:
        return f"rot90(k={self.k})"


def rot90(k: int = 1) -> Transform:
    """Rotation by ``k`` quarter turns, counterclockwise (``torch.rot90`` on the
    last two dimensions, from height towards width).

    Args:
        k: number of quarter turns; any whole number (taken modulo 4).

    Returns:
        A callable transform.
    """
    return _Rot90(k)


class _Flip(Transform):
    def __init__(self, dim: int, name: str):
        self.dim = dim
        self.name = name

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=(self.dim,))

    def __repr__(self) -> str:
        return f"{self.name}()"


def hflip() -> Transform:
    """Horizontal flip: mirrors the width (last) dimension."""
    return _Flip(-1, "hflip")


def vflip() -> Transform:
    """Vertical flip: mirrors the height (second to last) dimension."""
    return _Flip(-2, "vflip")


class _Translate(Transform):
    def __init__(self, dx: int, dy: int):
        self.dx = _whole(dx, "dx")
        self.dy = _whole(dy, "dy")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=(self.dy, self.dx), dims=(-2, -1))

    def __repr__(self) -> str:
        return f"translate(dx={self.dx}, dy={self.dy})"


def translate(dx: int = 1, dy: int = 0) -> Transform:
    """Cyclic translation: ``dx`` pixels along the width, ``dy`` along the height
    (pixels leaving one side come back on the other, so the map is a bijection).

    Args:
        dx: shift along the last dimension (positive moves right).
        dy: shift along the second to last dimension (positive moves down).
    """
    return _Translate(dx, dy)


class _RandomRot90(Transform):
    def __init__(self, per_sample: bool):
        self.per_sample = bool(per_sample)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_sample:
            k = int(torch.randint(0, 4, ()).item())
            return torch.rot90(x, k, dims=(-2, -1))
        ks = torch.randint(0, 4, (x.shape[0],))
        if x.shape[-1] != x.shape[-2] and bool((ks % 2 == 1).any()):
            raise ValueError(
                "random_rot90(per_sample=True) needs square images when it draws odd "
                f"rotations, got spatial shape {tuple(x.shape[-2:])}"
            )
        out = torch.empty_like(x)
        for k in range(4):
            idx = (ks == k).nonzero(as_tuple=True)[0].to(x.device)
            if idx.numel():
                out[idx] = torch.rot90(x[idx], k, dims=(-2, -1))
        return out

    def __repr__(self) -> str:
        return f"random_rot90(per_sample={self.per_sample})"


def random_rot90(per_sample: bool = True) -> Transform:
    """A random rotation by 0, 1, 2 or 3 quarter turns, drawn with torch's generator.

    Args:
        per_sample: draw one rotation per sample (default) or one for the batch.
    """
    return _RandomRot90(per_sample)
