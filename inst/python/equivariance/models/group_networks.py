"""D4CNN: a classifier exactly invariant to the 8 rotations and mirrors of the square.

Built like :class:`equivariance.networks.C4CNN`, with its pieces: the small initial
filters, the batch-norm momentum, the soft spatial maximum and mean
(:func:`~equivariance.networks.spatial_summary`) and an invariant head, here
:class:`~.layers.GroupInvariantLinear` over D4's permutations.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .._validation import positive_int
from .networks import (
    C4CNN_BN_MOMENTUM,
    C4CNN_FILTER_SCALE,
    scale_filters_,
    spatial_summary,
)
from ..groups.d4 import D4BatchNorm2d, D4Conv2d, D4LiftingConv2d, D4MaxPool2d
from ..groups.group import D4
from ..groups.layers import GroupInvariantLinear

__all__ = ["D4CNN"]


def three_widths(value: Any, name: str = "widths") -> tuple[int, int, int]:
    """Three positive whole numbers, one per convolution."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"`{name}` must be a sequence of 3 positive whole numbers, got {value!r}")
    if len(value) != 3:
        raise ValueError(f"`{name}` must have 3 entries, got {len(value)}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(value))


class D4CNN(nn.Module):
    """D4 group-convolution classifier, exactly invariant to rotations and mirrors.

    Lifting conv -> BN -> ReLU -> pool -> group conv -> BN -> ReLU -> pool -> group
    conv -> BN -> ReLU -> soft maximum and mean over space -> invariant head (the
    best over the 8 orders of each field's channels). Convolutions use ``padding =
    kernel_size // 2`` and :class:`~.d4.D4MaxPool2d`, so every map transforms
    exactly for odd and even sizes, and the logits are invariant to the 8 elements
    of D4 up to float rounding, in train and eval mode. The defaults have 13,606
    parameters; the short-training choices are C4CNN's (filters at a tenth of He's
    scale, batch-norm momentum 0.3, soft spatial maximum).

    Args:
        in_channels: channels of the input images.
        num_classes: number of output logits.
        widths: regular D4 fields of the three convolutions (8 channels each).
        kernel_size: side of the square filters (odd).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    group_input = "rotate"
    group_output = "invariant"

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 widths: Sequence[int] = (8, 8, 12), kernel_size: int = 3):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        f1, f2, f3 = three_widths(widths)
        k = positive_int(kernel_size, "kernel_size")
        if k % 2 == 0:
            # an even filter with symmetric padding shifts the grid by half a pixel
            raise ValueError(f"`kernel_size` must be odd for D4CNN, got {k}")
        p = k // 2

        def norm(fields: int) -> D4BatchNorm2d:
            return D4BatchNorm2d(fields, momentum=C4CNN_BN_MOMENTUM)

        self.features = nn.Sequential(
            D4LiftingConv2d(self.in_channels, f1, k, padding=p), norm(f1), nn.ReLU(),
            D4MaxPool2d(),
            D4Conv2d(f1, f2, k, padding=p), norm(f2), nn.ReLU(), D4MaxPool2d(),
            D4Conv2d(f2, f3, k, padding=p), norm(f3), nn.ReLU(),
        )
        convs = [m for m in self.features if isinstance(m, (D4LiftingConv2d, D4Conv2d))]
        scale_filters_([m.weight for m in convs], C4CNN_FILTER_SCALE)
        self.head = GroupInvariantLinear(D4, 2 * f3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"D4CNN expects a torch.Tensor input, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"D4CNN expects images of shape (N, {self.in_channels}, H, W), "
                             f"got shape {tuple(x.shape)}")
        # the spatial summary is invariant on the grid; the head to the permutations
        return self.head(spatial_summary(self.features(x)))
