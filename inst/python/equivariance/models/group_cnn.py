"""One group-convolution classifier for every grid group; C4CNN and D4CNN fix the group.

:class:`GroupCNN` is exactly invariant to the elements of its group (C4: rotations
by multiples of 90 degrees; D4: those and the mirrors). :class:`C4CNN` and
:class:`D4CNN` are it with the group and the default widths fixed, with the same
parameters, state-dict keys and initial weights as when they were written apart
(``tests/python/test_group_cnn.py`` holds the record).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._registry import register
from .._validation import positive_int, positive_ints
from ..groups.group import GridGroup, get_group
from ..groups.layers import GroupConv2d, GroupLiftingConv2d
from ..groups.twins import twin_layers
from .baselines import check_image

__all__ = ["GroupCNN", "C4CNN", "D4CNN"]

#: The group CNNs' choices for a short training run (see :class:`GroupCNN`).
C4CNN_FILTER_SCALE = 0.1
C4CNN_BN_MOMENTUM = 0.3
C4CNN_POOL_TEMPERATURE = 2.0
#: C4CNN's widths (regular fields of 4 channels)
C4CNN_WIDTHS = (8, 12, 20)


def soft_spatial_max(h: torch.Tensor, temperature: float = C4CNN_POOL_TEMPERATURE) -> torch.Tensor:
    """A smooth maximum over the spatial positions: ``logsumexp(t * h) / t``.

    Like the maximum it ignores where a value sits, so it is invariant to rotations
    of the maps; unlike it, its gradient reaches every position, not only the
    largest one, which speeds up learning.

    Args:
        h: feature maps ``(N, C, H, W)``.
        temperature: ``t``; larger values come closer to the maximum.

    Returns:
        ``(N, C)``.
    """
    return torch.logsumexp(temperature * h.flatten(2), dim=2) / temperature


def spatial_summary(h: torch.Tensor) -> torch.Tensor:
    """The soft maximum and the mean of every channel over space, side by side.

    Both ignore where a value sits, so the result is invariant to rotations of the
    maps; the maximum says whether a pattern occurs, the mean how much of the image
    it covers. For regular fields the result is again regular fields (the soft
    maxima of all fields, then their means), ready for an invariant head.

    Args:
        h: feature maps ``(N, C, H, W)``.

    Returns:
        ``(N, 2 * C)``.
    """
    return torch.cat([soft_spatial_max(h), h.mean(dim=(-2, -1))], dim=1)


def scale_filters_(convs: Sequence[nn.Parameter], scale: float) -> None:
    """Multiply freshly initialised filters by ``scale`` in place (see :class:`GroupCNN`)."""
    with torch.no_grad():
        for weight in convs:
            weight.mul_(scale)


@register
class GroupCNN(nn.Module):
    """Group-convolution classifier, exactly invariant to the elements of its group.

    Lifting conv -> BN -> ReLU -> pool -> group conv -> BN -> ReLU -> pool -> group
    conv -> BN -> ReLU -> soft maximum and mean over space (:func:`spatial_summary`)
    -> a linear head invariant to the group's permutations of each field
    (:class:`~equivariance.groups.layers.GroupInvariantLinear`). All convolutions
    use ``padding = kernel_size // 2`` and the poolings are
    :class:`~equivariance.groups.layers.GroupMaxPool2d`, so every intermediate map
    transforms exactly (odd and even sizes alike) and the logits are invariant up to
    float rounding, in train and eval mode.

    Three choices make a short training run (2 epochs of Fashion-MNIST with Adam)
    count, about 2 points of accuracy together:

    - the filters start at a tenth of He's scale (:data:`C4CNN_FILTER_SCALE`): batch
      norm follows every convolution, so their scale does not change the output,
      and Adam's steps, of a fixed size, turn small filters faster;
    - batch norm keeps its running statistics with momentum 0.3
      (:data:`C4CNN_BN_MOMENTUM`) instead of 0.1, so the statistics used in eval mode
      follow the quickly changing filters;
    - the spatial pooling keeps a soft maximum, whose gradient reaches every
      position, and the mean of every channel.

    Args:
        group: ``"C4"``, ``"D4"`` or a :class:`~equivariance.groups.group.GridGroup`.
        in_channels: channels of the input images (trivial fields).
        num_classes: number of output logits.
        widths: regular fields of the three convolutions (``|G|`` channels each).
        kernel_size: side of the square filters (odd).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    group_input = "rotate"
    group_output = "invariant"

    def __init__(self, group: str | GridGroup = "C4", in_channels: int = 1,
                 num_classes: int = 10, widths: Sequence[int] = C4CNN_WIDTHS,
                 kernel_size: int = 3):
        super().__init__()
        self.group = get_group(group)
        self.in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        f1, f2, f3 = positive_ints(widths, "widths", 3)
        k = positive_int(kernel_size, "kernel_size")
        if k % 2 == 0:
            # an even filter with symmetric padding shifts the grid by half a pixel
            raise ValueError(f"`kernel_size` must be odd for {type(self).__name__}, got {k}")
        p = k // 2
        # the group's own layer classes (C4Conv2d, ... for C4), the same code
        layer = twin_layers(self.group)

        def norm(fields: int) -> nn.Module:
            return layer["batch_norm"](fields, momentum=C4CNN_BN_MOMENTUM)

        self.features = nn.Sequential(
            layer["lifting"](self.in_channels, f1, k, padding=p), norm(f1), nn.ReLU(),
            layer["max_pool"](),
            layer["conv"](f1, f2, k, padding=p), norm(f2), nn.ReLU(), layer["max_pool"](),
            layer["conv"](f2, f3, k, padding=p), norm(f3), nn.ReLU(),
        )
        convs = [m for m in self.features if isinstance(m, (GroupLiftingConv2d, GroupConv2d))]
        scale_filters_([m.weight for m in convs], C4CNN_FILTER_SCALE)
        self.head = layer["invariant_linear"](2 * f3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, type(self).__name__)
        # the spatial summary is invariant on the grid; the head to the permutations
        return self.head(spatial_summary(self.features(x)))


@register
class C4CNN(GroupCNN):
    """C4 group-convolution classifier, exactly invariant to 90-degree rotations.

    :class:`GroupCNN` with the group C4; the defaults have 13,898 parameters.

    Args:
        in_channels: channels of the input images (trivial fields).
        num_classes: number of output logits.
        widths: regular fields of the three convolutions (4 channels each).
        kernel_size: side of the square filters (odd).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 widths: Sequence[int] = C4CNN_WIDTHS, kernel_size: int = 3):
        super().__init__("C4", in_channels, num_classes, widths, kernel_size)


@register
class D4CNN(GroupCNN):
    """D4 group-convolution classifier, exactly invariant to rotations and mirrors.

    :class:`GroupCNN` with the group D4 (the 8 symmetries of the square; the head
    takes the best over the 8 orders of each field's channels); the defaults have
    13,606 parameters.

    Args:
        in_channels: channels of the input images.
        num_classes: number of output logits.
        widths: regular D4 fields of the three convolutions (8 channels each).
        kernel_size: side of the square filters (odd).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 widths: Sequence[int] = (8, 8, 12), kernel_size: int = 3):
        super().__init__("D4", in_channels, num_classes, widths, kernel_size)
