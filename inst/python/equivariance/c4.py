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

Implementation: each convolution stores one base filter per (output field, input
channel or field) and expands it into a full ``nn.Conv2d`` weight by stacking the 4
rotations of the filter (and, between regular fields, the matching cyclic shift of
the input orientations). The expansion is a single gather through a precomputed index
tensor, so a training step costs the same as a plain convolution with the same
channel counts; :meth:`export` returns that plain convolution.

The expansion is recomputed on every forward pass, also without gradients. A cache
keyed on the parameters' version counters would serve stale filters after updates
that do not bump them (fused optimizers, writes through ``.data``), and the gather
costs little next to the convolution (``bench/c4.py`` measures both).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import (flag, is_whole_number, nonnegative_int, nonnegative_real,
                          positive_int, unit_interval)

__all__ = [
    "C4LiftingConv2d",
    "C4Conv2d",
    "C4BatchNorm2d",
    "C4GroupPool",
    "C4MaxPool2d",
    "rotate_regular",
    "rotate",
]

ORDER = 4  # number of elements of C4


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
    _check_regular(x, "x")
    k = _element(k)
    n, c = x.shape[:2]
    fields = x.reshape(n, c // ORDER, ORDER, *x.shape[2:])
    # roll by k: new orientation r holds old orientation r - k
    fields = torch.roll(fields, shifts=k, dims=2)
    return rotate(fields.reshape(x.shape), k)


def _check_regular(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[1] % ORDER != 0:
        raise ValueError(
            f"`{name}` must hold regular C4 fields: a tensor (N, 4 * fields, ...), "
            f"got shape {tuple(x.shape)}"
        )


def _check_input(x: torch.Tensor, channels: int, layer: str, what: str) -> None:
    """Raise a ValueError naming the layer when ``x`` is not ``(N, channels, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer} expects a torch.Tensor input, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{layer} expects an input of shape (N, C, H, W), got shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer} expects an input with {channels} channels ({what}), "
            f"got {x.shape[1]} channels"
        )


# ------------------------------------------------------------ filter expansion


def _rotated_positions(k: int) -> torch.Tensor:
    """``(4, k * k)``: row ``r`` lists, for each position of a filter rotated by ``r``,
    the position in the unrotated ``k x k`` filter it comes from."""
    grid = torch.arange(k * k, dtype=torch.int32).view(k, k)
    return torch.stack([rotate(grid, r).reshape(-1) for r in range(ORDER)])


def _lifting_index(out_fields: int, in_channels: int, k: int) -> torch.Tensor:
    """Index of the expanded lifting filter into the flattened base filter.

    Base filter ``(O, C, k, k)``; expanded ``W[4o + r, c] = rot90(w[o, c], r)``.
    Built by broadcasting integer arithmetic (no per-layer rotations or copies), so
    it is instant even for wide layers.
    """
    kk = k * k
    o = torch.arange(out_fields, dtype=torch.int32).view(-1, 1, 1, 1) * (in_channels * kk)
    c = torch.arange(in_channels, dtype=torch.int32).view(1, 1, -1, 1) * kk
    pos = _rotated_positions(k).view(1, ORDER, 1, kk)
    return (o + c + pos).reshape(out_fields * ORDER, in_channels, k, k)


def _regular_index(out_fields: int, in_fields: int, k: int) -> torch.Tensor:
    """Index of the expanded regular->regular filter into the flattened base filter.

    Base filter ``(O, I, 4, k, k)``; expanded
    ``W[4o + r, 4i + s] = rot90(w[o, i, (s - r) % 4], r)``: output orientation ``r``
    sees the filter rotated by ``r`` and the input orientations shifted by ``r``.
    """
    kk = k * k
    o = torch.arange(out_fields, dtype=torch.int32).view(-1, 1, 1, 1, 1) * (in_fields * ORDER * kk)
    i = torch.arange(in_fields, dtype=torch.int32).view(1, 1, -1, 1, 1) * (ORDER * kk)
    r = torch.arange(ORDER, dtype=torch.int32).view(-1, 1)
    shift = ((r.view(1, -1) - r) % ORDER).view(1, ORDER, 1, ORDER, 1) * kk
    pos = _rotated_positions(k).view(1, ORDER, 1, 1, kk)
    # small tensors first: one allocation of the full index
    index = (o + i) + (shift + pos)
    return index.reshape(out_fields * ORDER, in_fields * ORDER, k, k)


def _expand(base: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``base.view(-1)[index]`` as one native ``index_select`` on the flat tensor.

    On CPU, ``index_select`` on a flat tensor is many times faster than advanced
    indexing, and its native backward accumulates the 4 copies of every base entry
    with one ``index_add_``; staying native (no Python autograd.Function) saves the
    Python call in every backward pass, which shows on small layers.
    """
    return base.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)


class _C4ConvBase(nn.Module):
    """Shared machinery: expansion, forward, export, pickling without the index."""

    #: how C4 acts on the input / output (used by :func:`check_equivariance`)
    c4_input = "regular"
    c4_output = "regular"

    in_channels: int
    out_fields: int
    kernel_size: int
    stride: int
    padding: int

    def _set_geometry(self, out_fields: int, kernel_size: int, stride: int, padding: int) -> None:
        """Validate and store the arguments both convolutions share."""
        self.out_fields = positive_int(out_fields, "out_fields")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        self.stride = positive_int(stride, "stride")
        self.padding = nonnegative_int(padding, "padding")

    def _setup(self, base_shape: tuple, fan_in: int, bias: bool) -> None:
        # He initialisation: each expanded output channel is a sum over `fan_in`
        # distinct base weights, exactly like a plain conv with that fan-in, so the
        # variance is computed in closed form (no basis to sample or orthogonalise).
        std = math.sqrt(2.0 / fan_in)
        self.weight = nn.Parameter(torch.randn(base_shape) * std)
        self.bias = nn.Parameter(torch.zeros(self.out_fields)) if flag(bias, "bias") else None
        # a buffer (not state) so that .to() and .cuda() move it with the weight
        self.register_buffer("_index", self._build_index(), persistent=False)

    def _build_index(self) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getstate__(self) -> dict:
        """The pickled state, without the expansion index (as large as the expanded
        filter, and a function of the geometry only): :meth:`__setstate__` rebuilds it."""
        state = super().__getstate__()
        buffers = state["_buffers"]
        state["_buffers"] = type(buffers)((k, v) for k, v in buffers.items() if k != "_index")
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.register_buffer("_index", self._build_index().to(self.weight.device),
                             persistent=False)

    def expanded(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The plain ``Conv2d`` weight and bias this layer applies.

        Computed from the current parameters on every call (see the module's
        docstring for why nothing is cached).

        Returns:
            ``(weight, bias)`` with weight of shape ``(4 * out_fields, in_channels,
            k, k)`` and bias ``(4 * out_fields,)`` or ``None``. Differentiable with
            respect to the base parameters.
        """
        weight = _expand(self.weight, self._index)
        # a field's bias is shared by its 4 orientations (invariant under shifts)
        bias = None if self.bias is None else self.bias.repeat_interleave(ORDER)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, type(self).__name__, self._input_description())
        weight, bias = self.expanded()
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def export(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the expanded filter, giving the same output.

        Returns:
            A new ``nn.Conv2d(in_channels, 4 * out_fields, kernel_size, stride,
            padding)`` on the same device and dtype, detached from this layer.
        """
        with torch.no_grad():
            weight, bias = self.expanded()
            conv = nn.Conv2d(
                self.in_channels,
                ORDER * self.out_fields,
                self.kernel_size,
                stride=self.stride,
                padding=self.padding,
                bias=bias is not None,
                device=weight.device,
                dtype=weight.dtype,
            )
            conv.weight.copy_(weight)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv

    def _input_description(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"{self._input_description()} -> {self.out_fields} regular fields, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}"
        )


class C4LiftingConv2d(_C4ConvBase):
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

    c4_input = "rotate"

    def __init__(
        self,
        in_channels: int,
        out_fields: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self._set_geometry(out_fields, kernel_size, stride, padding)
        k = self.kernel_size
        self._setup((self.out_fields, self.in_channels, k, k),
                    fan_in=self.in_channels * k * k, bias=bias)

    def _build_index(self) -> torch.Tensor:
        return _lifting_index(self.out_fields, self.in_channels, self.kernel_size)

    def _input_description(self) -> str:
        return f"in_channels={self.in_channels}"


class C4Conv2d(_C4ConvBase):
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

    def __init__(
        self,
        in_fields: int,
        out_fields: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_fields = positive_int(in_fields, "in_fields")
        self.in_channels = ORDER * self.in_fields
        self._set_geometry(out_fields, kernel_size, stride, padding)
        k = self.kernel_size
        self._setup((self.out_fields, self.in_fields, ORDER, k, k),
                    fan_in=self.in_channels * k * k, bias=bias)

    def _build_index(self) -> torch.Tensor:
        return _regular_index(self.out_fields, self.in_fields, self.kernel_size)

    def _input_description(self) -> str:
        return f"{self.in_fields} regular fields x 4 orientations"


# ------------------------------------------------------------- other layers


class C4BatchNorm2d(nn.BatchNorm2d):
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
        num_fields = positive_int(num_fields, "num_fields")
        # nn.BatchNorm2d takes any of these (momentum 5 gives a running variance of 41
        # for data of variance 9): check them here
        super().__init__(num_fields, eps=nonnegative_real(eps, "eps"),
                         momentum=unit_interval(momentum, "momentum", allow_none=True),
                         affine=flag(affine, "affine"),
                         track_running_stats=flag(track_running_stats, "track_running_stats"))
        self.num_fields = num_fields

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, ORDER * self.num_fields, "C4BatchNorm2d",
                     f"{self.num_fields} regular fields x 4 orientations")
        n, c, h, w = x.shape
        # (N, F, 4 * H, W): batch_norm then pools each field over its 4 orientations
        y = super().forward(x.reshape(n, self.num_fields, ORDER * h, w))
        return y.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"num_fields={self.num_fields}, " + super().extra_repr()


class C4GroupPool(nn.Module):
    """Pool each regular field over its 4 orientations: an invariant channel.

    Args:
        mode: ``"max"`` or ``"mean"``.

    Shape:
        ``(N, 4 * F, ...) -> (N, F, ...)``; the output only rotates (no shift).
    """

    c4_input = "regular"
    c4_output = "rotate"

    def __init__(self, mode: str = "max"):
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f'`mode` must be "max" or "mean", got {mode!r}')
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"C4GroupPool expects a torch.Tensor input, got {type(x).__name__}")
        if x.dim() < 2 or x.shape[1] % ORDER != 0:
            raise ValueError(
                "C4GroupPool expects regular fields: an input with a multiple of 4 "
                f"channels, got shape {tuple(x.shape)}"
            )
        fields = x.reshape(x.shape[0], x.shape[1] // ORDER, ORDER, *x.shape[2:])
        return fields.amax(dim=2) if self.mode == "max" else fields.mean(dim=2)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class C4MaxPool2d(nn.Module):
    """Max pooling with stride 2 that stays exactly C4-equivariant for any size.

    A 2x2 window with stride 2 tiles an even side symmetrically but drops the last
    row of an odd side, which breaks rotation equivariance. This layer picks, per
    side, a 2-wide window for an even length and a 3-wide window with padding 1 for
    an odd one: both tile the side symmetrically.

    Shape:
        ``(N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2))``.
    """

    c4_input = "regular"
    c4_output = "regular"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError("C4MaxPool2d expects a tensor of shape (N, C, H, W)")
        h, w = x.shape[-2:]
        kernel = (2 + h % 2, 2 + w % 2)
        padding = (h % 2, w % 2)
        return F.max_pool2d(x, kernel, stride=2, padding=padding)
