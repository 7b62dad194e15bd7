"""The baselines of the rotated Fashion-MNIST benchmark: a plain CNN and the article's
rotation-stacking CNN (the group CNNs are in :mod:`.group_cnn`).

- :class:`SimpleCNN`: a plain CNN, the baseline of the "regular equivariant CNN"
  article (convolutions 1-8-16-16 with SiLU and max pooling, then Linear 16-10;
  13,978 parameters).
- :class:`EqCNN`: that article's equivariant design: the input stacked in its 4
  rotations, Conv3d layers with ``(1, k, k)`` kernels shared across them, and a max
  over the rotations at the end (7,834 parameters).

All take ``(N, in_channels, H, W)`` images and return ``(N, num_classes)`` logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from .._registry import register
from .._validation import is_whole_number, nonnegative_int, positive_int, positive_ints
from ..groups.c4 import rotate

__all__ = ["SimpleCNN", "EqCNN"]


def _three(value: Any, name: str, check: Callable[[Any, str], int], what: str) -> tuple[int, ...]:
    """One whole number for all three convolutions, or three of them."""
    if is_whole_number(value):
        return (check(value, name),) * 3
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"`{name}` must be {what} or a sequence of three, got {value!r}")
    if len(value) != 3:
        raise ValueError(f"`{name}` must have 3 entries, got {len(value)}")
    return tuple(check(v, f"{name}[{i}]") for i, v in enumerate(value))


def _conv_layout(kernel_size: Any, padding: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(kernel sizes, paddings)`` of the three convolutions, validated."""
    ks = _three(kernel_size, "kernel_size", positive_int, "a positive whole number")
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"`padding` must be \"same\", a non-negative whole number or "
                             f"three of them, got {padding!r}")
        return ks, tuple(k // 2 for k in ks)  # odd filters keep the map's size
    pads = _three(padding, "padding", nonnegative_int,
                  "\"same\", a non-negative whole number")
    return ks, pads


def _final_side(side: int, ks: Sequence[int], pads: Sequence[int]) -> int:
    """Side of the last feature map for an input side (conv, pool 2, conv, pool 2, conv)."""
    for i, (k, p) in enumerate(zip(ks, pads)):
        side = side + 2 * p - k + 1
        if side < 1:
            return 0
        if i < 2:
            side //= 2
    return side


def _min_side(ks: Sequence[int], pads: Sequence[int]) -> int:
    """The smallest input side that leaves a last feature map of at least 1 x 1."""
    side = 1
    while _final_side(side, ks, pads) < 1:
        side += 1
    return side


def check_image(x: torch.Tensor, channels: int, name: str) -> None:
    """Raise naming the model unless ``x`` is a tensor ``(N, channels, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor input, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} expects images of shape (N, {channels}, H, W), got shape {tuple(x.shape)}"
        )


def _check_side(x: torch.Tensor, net: nn.Module, name: str) -> None:
    """A clear error, instead of torch's, for images too small for the filters."""
    if min(x.shape[-2:]) < net.min_side:
        raise ValueError(
            f"{name} with kernel_size {net.kernel_size} and padding {net.padding} needs "
            f"images of at least {net.min_side} x {net.min_side} pixels, got "
            f"{x.shape[-2]} x {x.shape[-1]}"
        )


@register
class SimpleCNN(nn.Module):
    """Plain CNN baseline of the "regular equivariant CNN" article.

    Conv(in, c1) -> SiLU -> MaxPool(2) -> Conv(c1, c2) -> SiLU -> MaxPool(2) ->
    Conv(c2, c3) -> SiLU -> max over the remaining positions -> Linear(c3,
    num_classes). The defaults are the article's network layer for layer: 3x3
    filters with padding 1, then a 7x7 filter without padding that covers the whole
    7 x 7 map of a 28 x 28 image (13,978 parameters). Not rotation invariant: the
    baseline the equivariant models are compared with. ``kernel_size=3,
    padding="same"`` gives three 3x3 filters that keep the size and a global max
    pool (the benchmark's wider variant, see
    :data:`~equivariance.benchmark.BENCHMARK_WIDTHS`).

    Args:
        in_channels: channels of the input images.
        num_classes: number of output logits.
        widths: output channels of the three convolutions.
        kernel_size: side of the square filters, one for all three or one each.
        padding: zero padding of each convolution, one for all three, one each, or
            ``"same"`` (``kernel_size // 2``, which keeps the size of odd filters).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``, with ``H, W`` at least
        :attr:`min_side` (28 for the defaults); ``N = 0`` gives ``(0, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (8, 16, 16),
        kernel_size: int | Sequence[int] = (3, 3, 7),
        padding: int | str | Sequence[int] = (1, 1, 0),
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        c1, c2, c3 = positive_ints(widths, "widths", 3)
        self.kernel_size, self.padding = _conv_layout(kernel_size, padding)
        self.min_side = _min_side(self.kernel_size, self.padding)
        (k1, k2, k3), (p1, p2, p3) = self.kernel_size, self.padding
        self.features = nn.Sequential(
            nn.Conv2d(self.in_channels, c1, k1, padding=p1), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, k2, padding=p2), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, k3, padding=p3), nn.SiLU(),
        )
        self.head = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, "SimpleCNN")
        _check_side(x, self, "SimpleCNN")
        h = self.features(x)
        return self.head(torch.amax(h, dim=(-2, -1)))


@register
class EqCNN(nn.Module):
    """The article's rotation-invariant CNN: shared filters over the 4 input rotations.

    The input is stacked in its 4 rotations along a depth axis, ``(N, C, 4, H, W)``;
    Conv3d layers with ``(1, k, k)`` kernels apply the same 2-D filters (Conv ->
    SiLU -> MaxPool(2), twice, then Conv -> SiLU) to each rotation, and after a max
    over the remaining positions a max over the 4 rotations gives features that are
    exactly invariant: rotating the input only permutes the rotations. The defaults
    are the article's network: no padding (28 -> 26 -> 13 -> 11 -> 5), 3x3 filters,
    then a 5x5 one that leaves 1 x 1, and a Linear(16, 10) (7,834 parameters).
    Needs square images (the 4 rotations must stack).

    Args:
        in_channels: channels of the input images.
        num_classes: number of output logits.
        widths: output channels of the three convolutions.
        kernel_size: side of the square filters, one for all three or one each.
        padding: zero padding of each convolution, one for all three, one each, or
            ``"same"`` (``kernel_size // 2``).

    Shape:
        ``(N, in_channels, H, H) -> (N, num_classes)``, with ``H`` at least
        :attr:`min_side` (26 for the defaults); ``N = 0`` gives ``(0, num_classes)``.
    """

    #: its ``features`` run on the 4 stacked rotations: no feature_maps() of images
    features_take_images = False

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (8, 16, 16),
        kernel_size: int | Sequence[int] = (3, 3, 5),
        padding: int | str | Sequence[int] = 0,
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        c1, c2, c3 = positive_ints(widths, "widths", 3)
        self.kernel_size, self.padding = _conv_layout(kernel_size, padding)
        self.min_side = _min_side(self.kernel_size, self.padding)
        pool = (1, 2, 2)

        def conv(cin: int, cout: int, i: int) -> nn.Conv3d:
            k, p = self.kernel_size[i], self.padding[i]
            return nn.Conv3d(cin, cout, (1, k, k), padding=(0, p, p))

        self.features = nn.Sequential(
            conv(self.in_channels, c1, 0), nn.SiLU(), nn.MaxPool3d(pool),
            conv(c1, c2, 1), nn.SiLU(), nn.MaxPool3d(pool),
            conv(c2, c3, 2), nn.SiLU(),
        )
        self.head = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, "EqCNN")
        if x.shape[-2] != x.shape[-1]:
            raise ValueError(f"EqCNN needs square images, got {tuple(x.shape[-2:])}")
        _check_side(x, self, "EqCNN")
        n = x.shape[0]
        stacked = torch.cat([rotate(x, k) for k in range(4)], dim=0)  # (4N, C, H, W)
        per_rotation = torch.amax(self._features_2d(stacked), dim=(-2, -1))  # (4N, c3)
        # explicit sizes: a -1 is ambiguous for an empty batch
        return self.head(per_rotation.reshape(4, n, per_rotation.shape[1]).amax(dim=0))

    def _features_2d(self, h: torch.Tensor) -> torch.Tensor:
        # A (1, k, k) Conv3d filters each rotation on its own, so running its weight
        # as a Conv2d over the rotations folded into the batch computes the same
        # features several times faster on CPU (no 3-D convolution kernels).
        for m in self.features:
            if isinstance(m, nn.Conv3d):
                h = F.conv2d(h, m.weight.squeeze(2), m.bias, padding=m.padding[1:])
            elif isinstance(m, nn.MaxPool3d):
                h = F.max_pool2d(h, m.kernel_size[1:])
            else:
                h = m(h)
        return h
