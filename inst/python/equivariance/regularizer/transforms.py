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

import math
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import flag, is_whole_number, nonnegative_real

__all__ = [
    "Transform",
    "identity",
    "rot90",
    "hflip",
    "vflip",
    "random_rot90",
    "translate",
    "rotate",
    "random_rotate",
]


def _has_spatial_dims(x: torch.Tensor) -> bool:
    return x.dim() >= 3


def _whole(value, name: str) -> int:
    if not is_whole_number(value):
        raise ValueError(f"`{name}` must be a whole number, got {value!r}")
    return int(value)


def _finite_real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    return float(value)


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
        self.per_sample = flag(per_sample, "per_sample")

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
        per_sample: draw one rotation per sample (default) or one for the batch;
            ``True`` or ``False`` (a numpy ``bool_`` too).
    """
    return _RandomRot90(per_sample)



# -- continuous rotations ---------------------------------------------------------------


def _cos_sin(degrees: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angles in degrees, exact at multiples of 90 degrees (so that
    ``rotate(90)`` samples exactly the pixels ``torch.rot90`` moves)."""
    quarter = torch.round(degrees / 90)
    exact = (degrees == quarter * 90).to(degrees.dtype)
    rad = torch.deg2rad(degrees)
    k = torch.remainder(quarter, 4)
    cos_q = torch.where(k == 0, 1.0, torch.where(k == 2, -1.0, 0.0)).to(degrees.dtype)
    sin_q = torch.where(k == 1, 1.0, torch.where(k == 3, -1.0, 0.0)).to(degrees.dtype)
    cos = exact * cos_q + (1 - exact) * torch.cos(rad)
    sin = exact * sin_q + (1 - exact) * torch.sin(rad)
    return cos, sin


def _rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (N, ..., H, W) counterclockwise by ``degrees`` (a 0-d tensor for the
    whole batch or one angle per sample), bilinear, zero outside the image."""
    if not x.is_floating_point():
        raise TypeError(f"rotate needs a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        return x.clone()
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    n, (h, w) = x.shape[0], x.shape[-2:]
    per_sample = degrees.dim() == 1
    images = work.reshape(n if per_sample else 1, -1, h, w)
    angles = degrees.to(device=x.device, dtype=work.dtype).reshape(-1, 1, 1)
    cos, sin = _cos_sin(angles)
    # Output pixel (i, j), relative to the centre, samples the input at the position
    # rotated back; for 90 degrees this is torch.rot90's out[i, j] = x[j, W - 1 - i].
    ys = torch.arange(h, device=x.device, dtype=work.dtype) - (h - 1) / 2
    xs = torch.arange(w, device=x.device, dtype=work.dtype) - (w - 1) / 2
    yy, xx = ys.view(1, h, 1), xs.view(1, 1, w)
    src_row = cos * yy + sin * xx + (h - 1) / 2
    src_col = -sin * yy + cos * xx + (w - 1) / 2
    # grid_sample's normalised coordinates with align_corners=False map pixel p to
    # (2p + 1) / size - 1 for any size, so zero fill starts exactly outside the image.
    grid = torch.stack(((2 * src_col + 1) / w - 1, (2 * src_row + 1) / h - 1), dim=-1)
    grid = grid.expand(images.shape[0], h, w, 2)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(x.shape).to(x.dtype)


class _Rotate(Transform):
    def __init__(self, degrees: float):
        self.degrees = _finite_real(degrees, "degrees")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        turns = self.degrees / 90
        if turns.is_integer():
            k = int(turns) % 4
            # Whole quarter turns move pixels exactly: no resampling rounding. A
            # quarter turn of a non-square image keeps its shape, so it resamples.
            if k % 2 == 0 or x.shape[-1] == x.shape[-2]:
                return torch.rot90(x, k, dims=(-2, -1))
        return _rotate(x, torch.tensor(self.degrees, dtype=torch.float64))

    def __repr__(self) -> str:
        return f"rotate(degrees={self.degrees:g})"


def rotate(degrees: float) -> Transform:
    """Rotation by ``degrees`` counterclockwise (the direction of ``torch.rot90`` with
    ``k = 1``), about the image centre, by bilinear resampling with zero fill.

    ``rotate(90)`` equals ``rot90(1)`` on square images (up to float rounding); other
    angles move the corners out of the image and fill the uncovered pixels with 0.

    Args:
        degrees: the angle, any finite number.

    Returns:
        A callable transform on floating-point tensors ``(N, ..., H, W)``.
    """
    return _Rotate(degrees)


class _RandomRotate(Transform):
    def __init__(self, max_degrees: float, per_sample: bool):
        self.max_degrees = nonnegative_real(max_degrees, "max_degrees")
        self.per_sample = flag(per_sample, "per_sample")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        # Drawn on the CPU generator whatever x's device, and as many numbers as
        # samples: the draw depends only on the batch size, so the regularizer's
        # replay gives the output exactly the input's angles.
        u = torch.rand((x.shape[0],) if self.per_sample else (), dtype=torch.float64)
        if self.max_degrees == 0:
            return x
        return _rotate(x, (2 * u - 1) * self.max_degrees)

    def __repr__(self) -> str:
        return f"random_rotate(max_degrees={self.max_degrees:g}, per_sample={self.per_sample})"


def random_rotate(max_degrees: float, per_sample: bool = True) -> Transform:
    """A random rotation by an angle drawn uniformly in ``[-max_degrees, max_degrees]``
    with torch's generator (counterclockwise for positive angles, bilinear, zero fill).

    In the regularizer's 3-element form ``(f, epsilon, lambda_eq)`` the input and the
    output are rotated by the same angles.

    Args:
        max_degrees: the largest angle, a non-negative finite number.
        per_sample: draw one angle per sample (default) or one for the batch;
            ``True`` or ``False`` (a numpy ``bool_`` too).

    Returns:
        A callable transform on floating-point tensors ``(N, ..., H, W)``.
    """
    return _RandomRotate(max_degrees, per_sample)
