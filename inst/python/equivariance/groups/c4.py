"""C4 group-convolution layers in plain PyTorch ("let the kernel rotate").

The cyclic group C4 holds the rotations by 0, 90, 180 and 270 degrees. Element ``k``
acts on an image as ``torch.rot90(x, k, dims=(-2, -1))``, the same action as escnn's
``GeometricTensor.transform`` for ``gspaces.rot2dOnR2(N=4)``.

Channel layout: a *regular field* is 4 consecutive channels, one per orientation,
exactly as escnn's regular representation of C4. Field ``f`` of a tensor with
``4 * F`` channels occupies channels ``4f, 4f + 1, 4f + 2, 4f + 3``. Rotating the input
by element ``k`` rotates every feature map by ``k`` and moves orientation channel
``r`` to ``(r + k) % 4`` (see :func:`rotate_regular`), so tensors pass unchanged
between these layers and escnn's.

Implementation: these are the group layers of :mod:`equivariance.groups.layers` with
the group fixed to C4, so C4 and D4 share one filter expansion
(:mod:`equivariance.groups.expansion`). Each convolution stores one base filter per
(output field, input channel or field) and expands it into a full ``nn.Conv2d``
weight by stacking the 4 rotations of the filter (and, between regular fields, the
matching cyclic shift of the input orientations). The expansion is a single gather
through a precomputed index tensor, so a training step costs the same as a plain
convolution with the same channel counts; :meth:`export` returns that plain
convolution.

The expansion is recomputed on every forward pass, also without gradients. A cache
keyed on the parameters' version counters would serve stale filters after updates
that do not bump them (fused optimizers, writes through ``.data``), and the gather
costs little next to the convolution (``bench/c4.py`` measures both).
"""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np
import torch

from .._validation import is_whole_number
from .group import C4, check_regular, regular_transform
from .layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupLiftingConv2d,
    GroupMaxPool2d,
    GroupPool,
)

__all__ = [
    "C4LiftingConv2d",
    "C4Conv2d",
    "C4BatchNorm2d",
    "C4GroupPool",
    "C4MaxPool2d",
    "rotate_regular",
    "rotate",
]

ORDER = C4.order  # number of elements of C4: 4


# --------------------------------------------------------------------- actions


def _element(k: object) -> int:
    """The group element ``k`` (a whole number of quarter turns) modulo 4, or raise.

    ``1.5`` or ``True`` are refused: truncating them would silently turn another angle.
    """
    if is_whole_number(k):
        return int(k) % ORDER
    message = f"`k` must be a whole number of quarter turns, got {k!r}"
    if isinstance(k, numbers.Real) and not isinstance(k, (bool, np.bool_)):
        raise ValueError(message)
    raise TypeError(message)


def rotate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate the feature maps of ``x`` by element ``k`` of C4 (``k`` quarter turns).

    Args:
        x: tensor whose last two dimensions are height and width.
        k: group element, any whole number (taken modulo 4).

    Returns:
        ``torch.rot90(x, k, dims=(-2, -1))``.

    Raises:
        ValueError, TypeError: ``k`` is not a whole number.
    """
    return torch.rot90(x, _element(k), dims=(-2, -1))


def rotate_regular(x: torch.Tensor, k: int) -> torch.Tensor:
    """Apply element ``k`` of C4 to a tensor of regular fields.

    Every feature map is rotated by ``k`` quarter turns and, within each field, the
    channel of orientation ``r`` moves to orientation ``(r + k) % 4``: the action of
    escnn's regular representation.

    Args:
        x: tensor of shape ``(N, 4 * F, H, W)``.
        k: group element, any whole number (taken modulo 4).

    Returns:
        The transformed tensor, same shape as ``x`` except that ``H`` and ``W`` swap
        for odd ``k``.

    Shape:
        ``(N, 4F, H, W) -> (N, 4F, H, W)`` (or ``W, H``).

    Raises:
        ValueError, TypeError: ``x`` does not hold regular fields, ``k`` is not whole.
    """
    check_regular(x, C4, "x")
    # modulo 4 first: C4's element index accepts 0 to 3 only, rotate_regular any turn
    # (within a field, orientation r moves to r + k: new r holds old r - k)
    return regular_transform(x, _element(k), C4)


# ------------------------------------------------------------ convolutions


class C4LiftingConv2d(GroupLiftingConv2d):
    """Lifting convolution: images (trivial channels) to regular C4 fields.

    Output field ``o``, orientation ``r`` is the input correlated with the base filter
    of ``o`` rotated by ``r`` quarter turns. Rotating the input by element ``k``
    rotates the output and shifts each field's orientations by ``k``
    (:func:`rotate_regular`); exact as long as the sampling grid is symmetric, i.e.
    ``(H + 2 * padding - kernel_size) % stride == 0`` (always true for ``stride=1``).

    Args:
        in_channels: number of input channels (each a rotation-invariant image).
        out_fields: number of regular output fields (4 channels each).
        kernel_size: side of the square filter.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn one bias per output field (shared by its 4 orientations);
            ``True`` or ``False``.

    Shape:
        ``(N, in_channels, H, W) -> (N, 4 * out_fields, H', W')`` with
        ``H' = (H + 2 * padding - kernel_size) // stride + 1``.
    """

    #: how C4 acts on the input / output (read by :func:`check_equivariance`)
    c4_input = "rotate"
    c4_output = "regular"

    def __init__(
        self,
        in_channels: int,
        out_fields: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__(C4, in_channels, out_fields, kernel_size, stride, padding, bias)


class C4Conv2d(GroupConv2d):
    """Group convolution between regular C4 fields.

    Output orientation ``r`` of field ``o`` correlates input field ``i``, orientation
    ``s`` with the base filter ``w[o, i, (s - r) % 4]`` rotated by ``r``. Rotating the
    input regular fields by element ``k`` (:func:`rotate_regular`) does the same to
    the output; exact when ``(H + 2 * padding - kernel_size) % stride == 0``.

    Args:
        in_fields: number of regular input fields (``4 * in_fields`` channels).
        out_fields: number of regular output fields (``4 * out_fields`` channels).
        kernel_size: side of the square filter.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn one bias per output field (shared by its 4 orientations);
            ``True`` or ``False``.

    Shape:
        ``(N, 4 * in_fields, H, W) -> (N, 4 * out_fields, H', W')``.
    """

    c4_input = "regular"
    c4_output = "regular"

    def __init__(
        self,
        in_fields: int,
        out_fields: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__(C4, in_fields, out_fields, kernel_size, stride, padding, bias)

    def _input_description(self) -> str:
        return f"{self.in_fields} regular fields x 4 orientations"


# ------------------------------------------------------------- other layers


class C4BatchNorm2d(GroupBatchNorm2d):
    """Batch normalisation of regular C4 fields (escnn's ``InnerBatchNorm``).

    The mean, variance, scale and shift of a field are shared by its 4 orientation
    channels, so normalisation commutes with the rotations and cyclic shifts of C4.

    Args:
        num_fields: number of regular fields (``4 * num_fields`` channels).
        eps: added to the variance, a finite number >= 0.
        momentum: weight of the batch in the running statistics, a number in [0, 1],
            or ``None`` for a cumulative average.
        affine, track_running_stats: ``True`` or ``False``, as in ``nn.BatchNorm2d``.

    Shape:
        ``(N, 4 * num_fields, H, W) -> (N, 4 * num_fields, H, W)``.
    """

    c4_input = "regular"
    c4_output = "regular"

    def __init__(
        self,
        num_fields: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        # the shared group layer with C4: it checks every argument (nn.BatchNorm2d
        # alone takes momentum 5 or a NaN eps)
        super().__init__(C4, num_fields, eps, momentum, affine, track_running_stats)


class C4GroupPool(GroupPool):
    """Pool each regular field over its 4 orientations: an invariant channel.

    Args:
        mode: ``"max"`` or ``"mean"``.

    Shape:
        ``(N, 4 * F, ...) -> (N, F, ...)``; the output only rotates (no shift).
    """

    c4_input = "regular"
    c4_output = "rotate"

    def __init__(self, mode: str = "max"):
        super().__init__(C4, mode)


class C4MaxPool2d(GroupMaxPool2d):
    """Max pooling with stride 2 that stays exactly C4-equivariant for any size.

    A 2x2 window with stride 2 tiles an even side symmetrically but drops the last
    row of an odd side, which breaks rotation equivariance. This layer (the shared
    :class:`~equivariance.groups.layers.GroupMaxPool2d`) picks, per side, a 2-wide
    window for an even length and a 3-wide window with padding 1 for an odd one:
    both tile the side symmetrically.

    Shape:
        ``(N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2))``.
    """

    c4_input = "regular"
    c4_output = "regular"
