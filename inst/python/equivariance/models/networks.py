"""Image classifiers compared in the rotated Fashion-MNIST benchmark.

- :class:`SimpleCNN`: a plain CNN, the baseline of the "regular equivariant CNN"
  article (convolutions 1-8-16-16 with SiLU and max pooling, then Linear 16-10;
  13,978 parameters).
- :class:`EqCNN`: that article's equivariant design: the input stacked in its 4
  rotations, Conv3d layers with ``(1, k, k)`` kernels shared across them, and a max
  over the rotations at the end (7,834 parameters).
- :class:`C4CNN`: a true C4 group-convolution network (lifting conv, group convs,
  batch norm, orientation pooling), exactly invariant to 90-degree rotations.

All take ``(N, in_channels, H, W)`` images and return ``(N, num_classes)`` logits.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .._validation import is_whole_number, nonnegative_int, positive_int
from ..groups.c4 import C4BatchNorm2d, C4Conv2d, C4LiftingConv2d, C4MaxPool2d, rotate
from ..groups.group import C4
from ..groups.layers import GroupInvariantLinear

__all__ = ["SimpleCNN", "EqCNN", "C4CNN", "C4InvariantLinear"]


def _widths(value: Sequence[int], name: str, length: int) -> tuple[int, ...]:
    """Validate a tuple of ``length`` positive widths."""
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a sequence of {length} positive whole numbers, "
                        f"got {value!r}") from None
    if len(items) != length:
        raise ValueError(f"`{name}` must have {length} entries, got {len(items)}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(items))


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


def _check_image(x: torch.Tensor, channels: int, name: str) -> None:
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
        c1, c2, c3 = _widths(widths, "widths", 3)
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
        _check_image(x, self.in_channels, "SimpleCNN")
        _check_side(x, self, "SimpleCNN")
        h = self.features(x)
        return self.head(torch.amax(h, dim=(-2, -1)))


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
        c1, c2, c3 = _widths(widths, "widths", 3)
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
        _check_image(x, self.in_channels, "EqCNN")
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


class C4InvariantLinear(GroupInvariantLinear):
    """Linear head on regular C4 vectors, invariant to their cyclic shifts.

    ``max over k of Linear(shift_k(v))``: the linear map sees each field's 4
    orientations in all 4 cyclic orders and the logits keep the best. Rotating the
    input of an equivariant network shifts ``v`` and so only permutes the 4 terms:
    the output is exactly invariant, yet (unlike pooling the orientations first)
    it can use how the orientations of different fields relate. This is
    :class:`~equivariance.groups.layers.GroupInvariantLinear` for C4 (same
    state-dict keys, ``linear.weight`` and ``linear.bias``).

    Args:
        in_fields: regular fields of the input vector (``4 * in_fields`` entries).
        out_features: number of outputs.

    Shape:
        ``(N, 4 * in_fields) -> (N, out_features)``.
    """

    c4_input = "regular"
    c4_output = "invariant"

    def __init__(self, in_fields: int, out_features: int):
        super().__init__(C4, in_fields, out_features)


#: C4CNN's choices for a short training run (see :class:`C4CNN`).
C4CNN_FILTER_SCALE = 0.1
C4CNN_BN_MOMENTUM = 0.3
C4CNN_POOL_TEMPERATURE = 2.0


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
    maxima of all fields, then their means), ready for :class:`C4InvariantLinear`.

    Args:
        h: feature maps ``(N, C, H, W)``.

    Returns:
        ``(N, 2 * C)``.
    """
    return torch.cat([soft_spatial_max(h), h.mean(dim=(-2, -1))], dim=1)


def scale_filters_(convs: Sequence[nn.Parameter], scale: float) -> None:
    """Multiply freshly initialised filters by ``scale`` in place (see :class:`C4CNN`)."""
    with torch.no_grad():
        for weight in convs:
            weight.mul_(scale)


class C4CNN(nn.Module):
    """C4 group-convolution classifier, exactly invariant to 90-degree rotations.

    Lifting conv -> BN -> ReLU -> pool -> group conv -> BN -> ReLU -> pool -> group
    conv -> BN -> ReLU -> soft maximum and mean over space (:func:`spatial_summary`)
    -> :class:`C4InvariantLinear`. All convolutions use ``padding = kernel_size // 2``
    and the poolings are :class:`C4MaxPool2d`, so every intermediate map is rotated
    exactly (odd and even sizes alike) and the logits are invariant up to float
    rounding, in train and eval mode. The defaults have 13,898 parameters.

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
        in_channels: channels of the input images (trivial fields).
        num_classes: number of output logits.
        widths: regular fields of the three convolutions (4 channels each).
        kernel_size: side of the square filters (odd).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (8, 12, 20),
        kernel_size: int = 3,
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        f1, f2, f3 = _widths(widths, "widths", 3)
        k = positive_int(kernel_size, "kernel_size")
        if k % 2 == 0:
            # an even filter with symmetric padding shifts the grid by half a pixel
            raise ValueError(f"`kernel_size` must be odd for C4CNN, got {k}")
        p = k // 2

        def norm(fields: int) -> C4BatchNorm2d:
            return C4BatchNorm2d(fields, momentum=C4CNN_BN_MOMENTUM)

        self.features = nn.Sequential(
            C4LiftingConv2d(self.in_channels, f1, k, padding=p), norm(f1),
            nn.ReLU(), C4MaxPool2d(),
            C4Conv2d(f1, f2, k, padding=p), norm(f2), nn.ReLU(), C4MaxPool2d(),
            C4Conv2d(f2, f3, k, padding=p), norm(f3), nn.ReLU(),
        )
        convs = [m for m in self.features if isinstance(m, (C4LiftingConv2d, C4Conv2d))]
        scale_filters_([m.weight for m in convs], C4CNN_FILTER_SCALE)
        self.head = C4InvariantLinear(2 * f3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.in_channels, "C4CNN")
        h = self.features(x)
        # the pooling is invariant to rotation; the head to the orientation shift
        return self.head(spatial_summary(h))
