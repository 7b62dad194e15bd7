"""Group-convolution layers for any :class:`~equivariance.groups.group.GridGroup`.

Each layer takes its group as first argument (``"C4"``, ``"D4"`` or a
:class:`GridGroup`); :mod:`equivariance.groups.c4` and :mod:`equivariance.groups.d4`
fix it to C4 and D4. Channel layout:
a regular field is ``|G|`` consecutive channels in the group's element order (escnn's
regular representation), see :mod:`equivariance.groups.group`.

The convolutions store base filters and expand them (:mod:`.expansion`) in every
forward pass: one ``index_select`` of the (small) weight, so a result never comes
from stale weights, whatever updated them in place.
"""

from __future__ import annotations

import math
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from .._registry import register
from .._validation import flag, nonnegative_int, nonnegative_real, positive_int, unit_interval
from .expansion import expand, lifting_index, regular_index
from .group import GridGroup, check_regular, get_group

__all__ = [
    "GroupLiftingConv2d",
    "GroupConv2d",
    "GroupBatchNorm2d",
    "GroupPool",
    "GroupMaxPool2d",
    "GroupInvariantLinear",
]

GroupLike = Union[str, GridGroup]


def check_input(x: Any, channels: int, layer: str, what: str) -> None:
    """Raise naming the layer unless ``x`` is a tensor ``(N, channels, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer} expects a torch.Tensor input, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{layer} expects an input of shape (N, C, H, W), got shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{layer} expects an input with {channels} channels ({what}), got {x.shape[1]} channels"
        )


class _GroupConvBase(nn.Module):
    """Shared machinery of the two convolutions: setup, expansion, forward, export."""

    group_output = "regular"

    def _set_geometry(self, group: GroupLike, out_fields: int, kernel_size: int,
                      stride: int, padding: int) -> None:
        self.group = get_group(group)
        self.out_fields = positive_int(out_fields, "out_fields")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        self.stride = positive_int(stride, "stride")
        self.padding = nonnegative_int(padding, "padding")

    def _setup(self, base_shape: tuple, fan_in: int, bias: Any) -> None:
        # He initialisation: an expanded output channel sums `fan_in` distinct base
        # weights, like a plain conv with that fan-in
        bias = flag(bias, "bias")
        self.weight = nn.Parameter(torch.randn(base_shape) * math.sqrt(2.0 / fan_in))
        self.bias = nn.Parameter(torch.zeros(self.out_fields)) if bias else None
        # a buffer so that .to() moves it with the weight; not saved (see __getstate__)
        self.register_buffer("_index", self._build_index(), persistent=False)

    def _build_index(self) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getstate__(self) -> dict:
        """The pickled state without the expansion index (as large as the expanded
        filter and a function of the geometry only): :meth:`__setstate__` rebuilds it."""
        state = super().__getstate__()
        buffers = state["_buffers"]
        state["_buffers"] = type(buffers)((k, v) for k, v in buffers.items() if k != "_index")
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.register_buffer("_index", self._build_index().to(self.weight.device),
                             persistent=False)

    def expanded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The plain ``Conv2d`` weight and bias this layer applies.

        Returns:
            ``(weight, bias)``: weight ``(|G| * out_fields, in_channels, k, k)``, bias
            ``(|G| * out_fields,)`` or ``None``; differentiable in the base parameters.
        """
        weight = expand(self.weight, self._index)
        # a field's bias is shared by its |G| channels (invariant under permutations)
        bias = None if self.bias is None else self.bias.repeat_interleave(self.group.order)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, type(self).__name__, self._input_description())
        weight, bias = self.expanded()
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    def export(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the expanded filter, giving the same output.

        Returns:
            A new ``nn.Conv2d(in_channels, |G| * out_fields, kernel_size, stride,
            padding)`` on the same device and dtype, detached from this layer.
        """
        with torch.no_grad():
            weight, bias = self.expanded()
            conv = nn.Conv2d(self.in_channels, weight.shape[0], self.kernel_size,
                             stride=self.stride, padding=self.padding, bias=bias is not None,
                             device=weight.device, dtype=weight.dtype)
            conv.weight.copy_(weight)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv

    def _input_description(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"group={self.group.name}, {self._input_description()} -> {self.out_fields} "
            f"regular fields, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}"
        )


@register
class GroupLiftingConv2d(_GroupConvBase):
    """Lifting convolution: images (trivial channels) to regular fields of a group.

    Output field ``o``, element ``r`` is the input correlated with the base filter of
    ``o`` transformed by ``r``. Transforming the input by ``g`` transforms the output
    as regular fields (:func:`~equivariance.groups.group.regular_transform`); exact
    when ``(H + 2 * padding - kernel_size) % stride == 0`` (always for ``stride=1``).

    Args:
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.
        in_channels: number of input channels (each an invariant image).
        out_fields: number of regular output fields (``|G|`` channels each).
        kernel_size: side of the square filter.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn one bias per output field (shared by its ``|G|`` channels).

    Shape:
        ``(N, in_channels, H, W) -> (N, |G| * out_fields, H', W')`` with
        ``H' = (H + 2 * padding - kernel_size) // stride + 1``.
    """

    group_input = "rotate"

    def __init__(self, group: GroupLike, in_channels: int, out_fields: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self._set_geometry(group, out_fields, kernel_size, stride, padding)
        k = self.kernel_size
        self._setup((self.out_fields, self.in_channels, k, k),
                    fan_in=self.in_channels * k * k, bias=bias)

    def _build_index(self) -> torch.Tensor:
        return lifting_index(self.group, self.out_fields, self.in_channels, self.kernel_size)

    def _input_description(self) -> str:
        return f"in_channels={self.in_channels}"


@register
class GroupConv2d(_GroupConvBase):
    """Group convolution between regular fields of a group.

    Output element ``r`` of field ``o`` correlates input field ``i``, element ``s``
    with the base filter ``w[o, i, r^-1 s]`` transformed by ``r``. Transforming the
    input regular fields by ``g`` does the same to the output; exact when
    ``(H + 2 * padding - kernel_size) % stride == 0``.

    Args:
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.
        in_fields: number of regular input fields (``|G| * in_fields`` channels).
        out_fields: number of regular output fields.
        kernel_size: side of the square filter.
        stride: convolution stride.
        padding: zero padding on every side.
        bias: learn one bias per output field (shared by its ``|G|`` channels).

    Shape:
        ``(N, |G| * in_fields, H, W) -> (N, |G| * out_fields, H', W')``.
    """

    group_input = "regular"

    def __init__(self, group: GroupLike, in_fields: int, out_fields: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.in_fields = positive_int(in_fields, "in_fields")
        self._set_geometry(group, out_fields, kernel_size, stride, padding)
        n, k = self.group.order, self.kernel_size
        self.in_channels = n * self.in_fields
        self._setup((self.out_fields, self.in_fields, n, k, k),
                    fan_in=self.in_channels * k * k, bias=bias)

    def _build_index(self) -> torch.Tensor:
        return regular_index(self.group, self.out_fields, self.in_fields, self.kernel_size)

    def _input_description(self) -> str:
        return f"{self.in_fields} regular fields x {self.group.order} channels"


@register
class GroupBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation of regular fields (escnn's ``InnerBatchNorm``).

    The mean, variance, scale and shift of a field are shared by its ``|G|`` channels,
    so normalisation commutes with the group's action.

    Args:
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.
        num_fields: number of regular fields (``|G| * num_fields`` channels).
        eps: added to the variance, a finite number >= 0.
        momentum: weight of the newest batch in the running statistics, in [0, 1],
            or ``None`` for a cumulative average.
        affine, track_running_stats: as in ``nn.BatchNorm2d`` (True or False).

    Shape:
        ``(N, |G| * num_fields, H, W) -> (N, |G| * num_fields, H, W)``.
    """

    group_input = "regular"
    group_output = "regular"

    def __init__(self, group: GroupLike, num_fields: int, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        group = get_group(group)
        num_fields = positive_int(num_fields, "num_fields")
        super().__init__(num_fields, eps=nonnegative_real(eps, "eps"),
                         momentum=unit_interval(momentum, "momentum", allow_none=True),
                         affine=flag(affine, "affine"),
                         track_running_stats=flag(track_running_stats, "track_running_stats"))
        self.group = group
        self.num_fields = num_fields

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_el = self.group.order
        check_input(x, n_el * self.num_fields, type(self).__name__,
                    f"{self.num_fields} regular fields x {n_el} channels")
        n, c, h, w = x.shape
        # (N, F, |G| * H, W): batch_norm then pools each field over its channels
        y = super().forward(x.reshape(n, self.num_fields, n_el * h, w))
        return y.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"group={self.group.name}, num_fields={self.num_fields}, " + super().extra_repr()


@register
class GroupPool(nn.Module):
    """Pool each regular field over its ``|G|`` channels: an invariant channel.

    Args:
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.
        mode: ``"max"`` or ``"mean"``.

    Shape:
        ``(N, |G| * F, ...) -> (N, F, ...)``; the output only moves on the grid.
    """

    group_input = "regular"
    group_output = "rotate"

    def __init__(self, group: GroupLike, mode: str = "max"):
        super().__init__()
        self.group = get_group(group)
        if mode not in ("max", "mean"):
            raise ValueError(f'`mode` must be "max" or "mean", got {mode!r}')
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_regular(x, self.group, "x")
        n = self.group.order
        fields = x.reshape(x.shape[0], x.shape[1] // n, n, *x.shape[2:])
        return fields.amax(dim=2) if self.mode == "max" else fields.mean(dim=2)

    def extra_repr(self) -> str:
        return f"group={self.group.name}, mode={self.mode!r}"


@register
class GroupMaxPool2d(nn.Module):
    """Max pooling with stride 2 that commutes with every symmetry of the grid.

    A 2x2 window with stride 2 tiles an even side symmetrically but drops the last
    row of an odd side, which breaks the symmetry. This layer takes, per side, a
    2-wide window for an even length and a 3-wide window with padding 1 for an odd
    one: both tile the side symmetrically, so rotations and mirrors commute with it.

    Shape:
        ``(N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2))``.
    """

    group_input = "regular"
    group_output = "regular"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"{type(self).__name__} expects a tensor of shape (N, C, H, W)")
        h, w = x.shape[-2:]
        return F.max_pool2d(x, (2 + h % 2, 2 + w % 2), stride=2, padding=(h % 2, w % 2))


@register
class GroupInvariantLinear(nn.Module):
    """Linear head on regular vectors, invariant to the group's permutations.

    ``max over g of Linear(rho(g) v)``: the linear map sees each field's channels in
    all ``|G|`` orders of the regular representation and the logits keep the best.
    Transforming the input of an equivariant network applies some ``rho(g0)`` to
    ``v``, which only permutes the ``|G|`` terms: the output is exactly invariant,
    yet it can use how the channels of different fields relate.

    Args:
        permutations: a :class:`GridGroup` or group name, or a ``(|G|, |G|)`` tensor
            of whole numbers whose row ``g`` is the permutation of ``g``
            (``new[h] = old[perm[h]]``), e.g. read from escnn's ``regular_repr``.
        in_fields: regular fields of the input vector (``|G| * in_fields`` entries).
        out_features: number of outputs.

    Shape:
        ``(N, |G| * in_fields) -> (N, out_features)``.
    """

    group_input = "regular"
    group_output = "invariant"

    def __init__(self, permutations: GroupLike | torch.Tensor, in_fields: int,
                 out_features: int):
        super().__init__()
        if isinstance(permutations, torch.Tensor):
            perms = permutations
            ok = (perms.dim() == 2 and perms.shape[0] == perms.shape[1]
                  and not perms.is_floating_point() and perms.dtype != torch.bool)
            # each row must hold 0..|G|-1 exactly once
            ok = ok and bool((perms.sort(dim=1).values == torch.arange(perms.shape[0])).all())
            if not ok:
                raise ValueError("`permutations` must be a (|G|, |G|) integer tensor whose rows "
                                 f"are permutations of 0..|G|-1, got {perms!r}")
            perms = perms.long()
        else:
            perms = get_group(permutations, "permutations").regular_permutations()
        self.order = int(perms.shape[0])
        self.register_buffer("_perms", perms, persistent=False)
        self.in_fields = positive_int(in_fields, "in_fields")
        self.linear = nn.Linear(self.order * self.in_fields,
                                positive_int(out_features, "out_features"))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        n, g = v.shape[0], self.order
        fields = v.reshape(n, self.in_fields, g)
        # (N, F, |G| elements, |G| channels) -> (|G|, N, F * |G|)
        orders = fields[:, :, self._perms].permute(2, 0, 1, 3)
        # explicit sizes: a -1 is ambiguous for an empty batch
        return self.linear(orders.reshape(g, n, self.in_fields * g)).amax(dim=0)
