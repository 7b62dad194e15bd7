"""D4 layers: the group layers of :mod:`.layers` with the group fixed to D4.

D4 holds the 8 symmetries of the square: the rotations by multiples of 90 degrees
and the same after a left-right mirror (p4m in Cohen & Welling's G-CNN paper). A
regular D4 field is 8 consecutive channels in the order of escnn's regular
representation of ``gspaces.flipRot2dOnR2(N=4)``: ``rot0, rot90, rot180, rot270,
flip_rot0, flip_rot90, flip_rot180, flip_rot270`` (see :mod:`.group`), so tensors
pass unchanged between these layers and escnn's.
"""

from __future__ import annotations

from .._registry import register
from .group import D4
from .layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupLiftingConv2d,
    GroupMaxPool2d,
    GroupPool,
)

__all__ = ["D4LiftingConv2d", "D4Conv2d", "D4BatchNorm2d", "D4GroupPool", "D4MaxPool2d"]


@register
class D4LiftingConv2d(GroupLiftingConv2d):
    """Lifting convolution from images to regular D4 fields (8 channels each).

    Output field ``o``, element ``r`` is the input correlated with the base filter of
    ``o`` mirrored and rotated as ``r``; rotating or mirroring the input transforms
    the output as regular D4 fields. See :class:`~.layers.GroupLiftingConv2d`.

    Args:
        in_channels: number of input channels.
        out_fields: number of regular output fields (``8 * out_fields`` channels).
        kernel_size: side of the square filter.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn one bias per output field.

    Shape:
        ``(N, in_channels, H, W) -> (N, 8 * out_fields, H', W')``.
    """

    def __init__(self, in_channels: int, out_fields: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__(D4, in_channels, out_fields, kernel_size, stride, padding, bias)


@register
class D4Conv2d(GroupConv2d):
    """Group convolution between regular D4 fields. See :class:`~.layers.GroupConv2d`.

    Args:
        in_fields: number of regular input fields (``8 * in_fields`` channels).
        out_fields: number of regular output fields (``8 * out_fields`` channels).
        kernel_size: side of the square filter.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn one bias per output field.

    Shape:
        ``(N, 8 * in_fields, H, W) -> (N, 8 * out_fields, H', W')``.
    """

    def __init__(self, in_fields: int, out_fields: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__(D4, in_fields, out_fields, kernel_size, stride, padding, bias)


@register
class D4BatchNorm2d(GroupBatchNorm2d):
    """Batch normalisation of regular D4 fields, statistics shared by a field's 8 channels.

    Args:
        num_fields: number of regular fields (``8 * num_fields`` channels).
        eps, momentum, affine, track_running_stats: see
            :class:`~.layers.GroupBatchNorm2d`.

    Shape:
        ``(N, 8 * num_fields, H, W) -> (N, 8 * num_fields, H, W)``.
    """

    def __init__(self, num_fields: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(D4, num_fields, eps, momentum, affine, track_running_stats)


@register
class D4GroupPool(GroupPool):
    """Pool each regular D4 field over its 8 channels (``"max"`` or ``"mean"``).

    Shape:
        ``(N, 8 * F, ...) -> (N, F, ...)``; the output is only rotated and mirrored.
    """

    def __init__(self, mode: str = "max"):
        super().__init__(D4, mode)


@register
class D4MaxPool2d(GroupMaxPool2d):
    """Stride-2 max pooling that commutes with rotations and mirrors for any size.

    Shape:
        ``(N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2))``.
    """
