"""C4 layers: the group layers of :mod:`.layers` with the group fixed to C4.

C4 holds the rotations by 0, 90, 180 and 270 degrees (elements ``rot0, rot90,
rot180, rot270``); element ``k`` acts on an image as ``torch.rot90(x, k, dims=(-2,
-1))``, the action of escnn's ``GeometricTensor.transform`` for
``gspaces.rot2dOnR2(N=4)``. A regular C4 field is 4 consecutive channels, one per
orientation, in the order of escnn's regular representation, so tensors pass
unchanged between these layers and escnn's. Rotating the input by element ``k``
rotates every feature map by ``k`` and moves orientation channel ``r`` to
``(r + k) % 4`` (:func:`rotate_regular`).

The twin of :mod:`.d4`: both share the filter expansion of :mod:`.expansion`, which
turns each base filter into a plain ``nn.Conv2d`` weight with one gather per forward
pass (``bench/c4.py`` measures it against a plain convolution). :func:`rotate` and
:func:`rotate_regular` take any whole number of quarter turns (modulo 4).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .._registry import register
from .._validation import is_whole_number
from .group import C4, check_regular, regular_transform
from .layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupInvariantLinear,
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
    "C4InvariantLinear",
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


@register
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

    def __init__(self, in_channels: int, out_fields: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__(C4, in_channels, out_fields, kernel_size, stride, padding, bias)


@register
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

    def __init__(self, in_fields: int, out_fields: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__(C4, in_fields, out_fields, kernel_size, stride, padding, bias)


# ------------------------------------------------------------- other layers


@register
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

    def __init__(self, num_fields: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        # the shared group layer with C4: it checks every argument (nn.BatchNorm2d
        # alone takes momentum 5 or a NaN eps)
        super().__init__(C4, num_fields, eps, momentum, affine, track_running_stats)


@register
class C4GroupPool(GroupPool):
    """Pool each regular field over its 4 orientations: an invariant channel.

    Args:
        mode: ``"max"`` or ``"mean"``.

    Shape:
        ``(N, 4 * F, ...) -> (N, F, ...)``; the output only rotates (no shift).
    """

    def __init__(self, mode: str = "max"):
        super().__init__(C4, mode)


@register
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


@register
class C4InvariantLinear(GroupInvariantLinear):
    """Linear head on regular C4 vectors, invariant to their cyclic shifts.

    ``max over k of Linear(shift_k(v))``: the linear map sees each field's 4
    orientations in all 4 cyclic orders and the logits keep the best. Rotating the
    input of an equivariant network shifts ``v`` and so only permutes the 4 terms:
    the output is exactly invariant, yet (unlike pooling the orientations first)
    it can use how the orientations of different fields relate. See
    :class:`~.layers.GroupInvariantLinear` (same state-dict keys, ``linear.weight``
    and ``linear.bias``).

    Args:
        in_fields: regular fields of the input vector (``4 * in_fields`` entries).
        out_features: number of outputs.

    Shape:
        ``(N, 4 * in_fields) -> (N, out_features)``.
    """

    def __init__(self, in_fields: int, out_features: int):
        super().__init__(C4, in_fields, out_features)
