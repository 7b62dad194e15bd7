"""The public quantile maps: drop-in replacements for GroupNorm, InstanceNorm and
LayerNorm (see the package's docstring for the method)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._registry import register
from .._validation import flag, positive_int, shape_tuple
from .base import _QuantileMap

__all__ = ["GroupMap", "InstanceMap", "LayerMap"]


# What every map does with extreme inputs (appended to each class's docstring).
_VALUES_DOC = """
    Values:
        Every finite input gives a finite output and a finite gradient: a transport
        derivative too large for the input's dtype (values a few subnormal steps apart,
        float16 data of tiny spread) is clamped to the dtype's largest number, and so
        are target values beyond its range. Infinite inputs are ordered beyond every
        finite value: ``+inf`` gets the largest output the map gives (in eval mode with
        running statistics ``Q(1 - 1e-12)``, or ``Q`` at the top knot's level when all
        knots are equal, after training on constant data) and ``-inf`` the smallest,
        both finite, with zero gradient. NaN is an error."""

_SHARED_ARGS_DOC = """
        target: the target distribution: ``"gaussian"`` (default), ``"uniform"``
            (on [0, 1]), ``"cauchy"``, ``"laplace"``, ``"logistic"``, ``"sparse"``, a
            callable ``q -> x`` on tensors of probabilities in (0, 1) (checked on a probe
            grid: same shape out, finite, non-decreasing; NaN or infinite values met later
            are an error too), or a ``torch.distributions`` object with ``icdf``. A module
            whose target is a lambda, a local or an R function cannot be pickled whole
            (``torch.save(module)`` raises a TypeError): save its ``state_dict()``.
        eps: standard deviation of Gaussian noise added before ranking (as in the
            reference); 0 (default) adds none.
        method: ``"exact"`` (one sort per group) or ``"sketch"`` (histogram sketch: for
            groups larger than ``4 * sketch_bins`` elements the CDF is read from an exact
            count over ``sketch_bins`` cells, and the output is linear inside a cell; its
            Kolmogorov distance to the exact output is below 0.01 on Gaussian, uniform and
            Cauchy data, about 0.002 to 0.005 with the default 512 cells on groups of 6272
            values; smaller groups use the exact method).
        positions: plotting positions of the sorted outputs: ``"midpoint"`` (default,
            ``(i + 0.5) / n``, finite for unbounded targets) or ``"linspace"``
            (``i / (n - 1)``, the reference's, with ``Q`` clamped to [1e-5, 1 - 1e-5] for
            unbounded targets).
        grad: ``"transport"`` (default) back-propagates the derivative of the transport
            map with the batch's CDF held fixed, so earlier layers learn; ``"none"``
            gives the input no gradient (the reference's behaviour).
        track_running_stats: keep running quantile knots (buffers ``running_quantiles``
            and ``num_batches_tracked``) and use them in eval mode, so eval outputs do not
            depend on the rest of the batch. Without them eval mode uses the batch's
            statistics, as training mode does.
        momentum: weight of the current batch in the running knots; ``None`` for a
            cumulative average.
        num_knots: number of running quantile knots, at levels ``(k + 0.5) / num_knots``.
        sketch_bins: number of histogram cells per group in sketch mode.
        device, dtype: factory arguments for parameters and buffers."""


@register
class GroupMap(_QuantileMap):
    __doc__ = f"""Quantile-map replacement for ``nn.GroupNorm``.

    The channels are split into ``num_groups`` groups; within each sample and group the
    values are mapped onto the target distribution (exactly, in ``"exact"`` mode: the
    sorted outputs equal ``Q`` at the plotting positions, the map is monotone and tied
    inputs get equal outputs, the mean of ``Q`` over their positions). A per-channel
    affine ``weight`` / ``bias`` follows when ``affine=True``.

    Args:
        num_groups: number of groups the channels are divided into.
        num_channels: number of channels ``C`` expected in the input.{_SHARED_ARGS_DOC}
        affine: learn a per-channel ``weight`` (ones) and ``bias`` (zeros).

    Shape:
        - Input: ``(N, C, *)``
        - Output: same as the input.

    Raises:
        ValueError: ``num_channels`` not divisible by ``num_groups``, non-positive counts,
            an unknown or malformed target; in ``forward``, an input whose channel count
            differs or that contains NaN.
{_VALUES_DOC}
    """

    def __init__(self, num_groups: int, num_channels: int, target: Any = "gaussian",
                 affine: bool = True, eps: float = 0.0, method: str = "exact",
                 positions: str = "midpoint", grad: str = "transport",
                 track_running_stats: bool = False, momentum: float | None = 0.1,
                 num_knots: int = 65, sketch_bins: int = 512,
                 device: Any = None, dtype: Any = None) -> None:
        num_groups = positive_int(num_groups, "num_groups")
        num_channels = positive_int(num_channels, "num_channels")
        if num_channels % num_groups:
            raise ValueError(
                f"`num_channels` ({num_channels}) must be divisible by `num_groups` ({num_groups})"
            )
        super().__init__(target=target, eps=eps, method=method, positions=positions, grad=grad,
                         track_running_stats=track_running_stats, momentum=momentum,
                         num_knots=num_knots, sketch_bins=sketch_bins, num_stats=num_groups,
                         device=device, dtype=dtype)
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.affine = flag(affine, "affine")
        if self.affine:
            self.weight = nn.Parameter(torch.empty(num_channels, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.empty(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Affine weight to ones, bias to zeros, and running statistics reset."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        """Map ``input`` of shape ``(N, C, *)``; returns a tensor of the same shape."""
        return self._channel_forward(input, self.num_channels, "num_channels", self.num_groups)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, affine={self.affine}, "
                + self._common_repr())


@register
class InstanceMap(_QuantileMap):
    __doc__ = f"""Quantile-map replacement for ``nn.InstanceNorm1d/2d/3d``.

    Each channel of each sample is mapped onto the target distribution. With
    ``track_running_stats=True`` the running knots are kept per channel.

    Args:
        num_features: number of channels ``C`` expected in the input.{_SHARED_ARGS_DOC}
        affine: learn a per-channel ``weight`` and ``bias`` (default False, as in
            InstanceNorm).

    Shape:
        - Input: ``(N, C, *)``
        - Output: same as the input.
{_VALUES_DOC}
    """

    def __init__(self, num_features: int, target: Any = "gaussian", affine: bool = False,
                 eps: float = 0.0, method: str = "exact", positions: str = "midpoint",
                 grad: str = "transport", track_running_stats: bool = False,
                 momentum: float | None = 0.1, num_knots: int = 65, sketch_bins: int = 512,
                 device: Any = None, dtype: Any = None) -> None:
        num_features = positive_int(num_features, "num_features")
        super().__init__(target=target, eps=eps, method=method, positions=positions, grad=grad,
                         track_running_stats=track_running_stats, momentum=momentum,
                         num_knots=num_knots, sketch_bins=sketch_bins, num_stats=num_features,
                         device=device, dtype=dtype)
        self.num_features = num_features
        self.affine = flag(affine, "affine")
        if self.affine:
            self.weight = nn.Parameter(torch.empty(num_features, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.empty(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Affine weight to ones, bias to zeros, and running statistics reset."""
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        """Map ``input`` of shape ``(N, C, *)``; returns a tensor of the same shape."""
        return self._channel_forward(input, self.num_features, "num_features", self.num_features)

    def extra_repr(self) -> str:
        return f"{self.num_features}, affine={self.affine}, " + self._common_repr()


@register
class LayerMap(_QuantileMap):
    __doc__ = f"""Quantile-map replacement for ``nn.LayerNorm``.

    As in LayerNorm, the last ``len(normalized_shape)`` dimensions form one group per
    leading index (for ``(N, C, H, W)`` input and ``normalized_shape=(C, H, W)``, one
    group per sample), and the affine ``weight`` / ``bias`` are elementwise of shape
    ``normalized_shape``. With ``track_running_stats=True`` one set of running knots is
    shared by all groups.

    Args:
        normalized_shape: the trailing shape of the input (an int or a sequence).{_SHARED_ARGS_DOC}
        elementwise_affine: learn elementwise ``weight`` (ones) and ``bias`` (zeros).
        bias: with ``elementwise_affine``, also learn ``bias`` (as in LayerNorm).

    Shape:
        - Input: ``(*, *normalized_shape)``
        - Output: same as the input.
{_VALUES_DOC}
    """

    def __init__(self, normalized_shape: int | Sequence[int], target: Any = "gaussian",
                 elementwise_affine: bool = True, bias: bool = True, eps: float = 0.0,
                 method: str = "exact", positions: str = "midpoint", grad: str = "transport",
                 track_running_stats: bool = False, momentum: float | None = 0.1,
                 num_knots: int = 65, sketch_bins: int = 512,
                 device: Any = None, dtype: Any = None) -> None:
        normalized_shape = shape_tuple(normalized_shape, "normalized_shape")
        super().__init__(target=target, eps=eps, method=method, positions=positions, grad=grad,
                         track_running_stats=track_running_stats, momentum=momentum,
                         num_knots=num_knots, sketch_bins=sketch_bins, num_stats=1,
                         device=device, dtype=dtype)
        self.normalized_shape = normalized_shape
        self.elementwise_affine = flag(elementwise_affine, "elementwise_affine")
        bias = flag(bias, "bias")
        if self.elementwise_affine:
            self.weight = nn.Parameter(torch.empty(normalized_shape, device=device, dtype=dtype))
            if bias:
                self.bias = nn.Parameter(torch.empty(normalized_shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Elementwise weight to ones, bias to zeros, and running statistics reset."""
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        """Map ``input`` of shape ``(*, *normalized_shape)``; returns the same shape."""
        self._check_floating(input)
        k = len(self.normalized_shape)
        if input.dim() < k or tuple(input.shape[input.dim() - k:]) != self.normalized_shape:
            raise ValueError(
                f"`input` must end with normalized_shape={self.normalized_shape}, "
                f"got shape {tuple(input.shape)}"
            )
        if input.numel() == 0:
            return input.clone()
        n = math.prod(self.normalized_shape)
        y, slope = self._map(input.reshape(-1, 1, n))
        weight = None if self.weight is None else self.weight.view(1, n)
        bias = None if self.bias is None else self.bias.view(1, n)
        out = self._finish(input.reshape(-1, n), y.view(-1, n), slope, weight, bias)
        return out.view(input.shape)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, elementwise_affine={self.elementwise_affine}, "
                + self._common_repr())

