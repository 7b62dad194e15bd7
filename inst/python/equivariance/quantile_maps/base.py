"""The machinery the three quantile maps share: arguments, target tables, running
statistics, the map itself and the affine."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Callable

import torch
from torch import nn

from .._validation import flag, nonnegative_real, positive_int, unit_interval
from .functional import _affine, _Attach, _cap, _identity, _running_map, _Slope
from .sketch import _sketch, _sketch_quantiles
from .sorting import _exact
from .targets import Target, gaussian, resolve_target

_METHODS = ("exact", "sketch")
_POSITIONS = ("midpoint", "linspace")
_GRADS = ("transport", "none")
# The reference clamps unbounded quantile functions to [1e-5, 1 - 1e-5].
_LINSPACE_CLAMP = 1e-5
# Target tables kept per module (sizes, dtypes, devices), least recently used first out.
_CACHE_SIZE = 8


def _choice(value: Any, choices: Sequence[str], name: str) -> str:
    """``value`` if it is one of the strings ``choices``, else a ValueError naming it."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        )
    return value


class _QuantileMap(nn.Module):
    """Shared machinery: subclasses say how to group the input and apply the affine."""

    running_quantiles: torch.Tensor | None
    num_batches_tracked: torch.Tensor | None

    def __init__(self, *, target: Any, eps: float, method: str, positions: str, grad: str,
                 track_running_stats: bool, momentum: float | None, num_knots: int,
                 sketch_bins: int, num_stats: int, device: Any, dtype: Any) -> None:
        super().__init__()
        self.target = target
        self.eps = nonnegative_real(eps, "eps")
        self.method = _choice(method, _METHODS, "method")
        self.positions = _choice(positions, _POSITIONS, "positions")
        self.grad = _choice(grad, _GRADS, "grad")
        self.track_running_stats = flag(track_running_stats, "track_running_stats")
        self.momentum = unit_interval(momentum, "momentum", allow_none=True)
        self.num_knots = positive_int(num_knots, "num_knots")
        if self.num_knots < 3:
            raise ValueError(f"`num_knots` must be at least 3, got {num_knots!r}")
        self.sketch_bins = positive_int(sketch_bins, "sketch_bins")
        if self.sketch_bins < 16:
            raise ValueError(f"`sketch_bins` must be at least 16, got {sketch_bins!r}")
        self._cache: OrderedDict = OrderedDict()
        self._workspace: dict = {}  # sketch mode's scratch buffers (not state)
        factory = {"device": device, "dtype": dtype}
        if self.track_running_stats:
            knots = torch.zeros(num_stats, self.num_knots, **factory)
            self.register_buffer("running_quantiles", knots)
            count = torch.tensor(0, dtype=torch.long, device=device)
            self.register_buffer("num_batches_tracked", count)
        else:
            self.register_buffer("running_quantiles", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_running_stats()

    # -- pickling --------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """The pickled state, without the scratch buffers and cached target tables
        (rebuilt on the next forward pass). A target that cannot be pickled (a lambda,
        an R function) raises a TypeError saying to save the ``state_dict()`` instead."""
        state = super().__getstate__()
        state["_cache"] = OrderedDict()
        state["_workspace"] = {}
        return state

    # -- target ------------------------------------------------------------------------
    @property
    def target(self) -> Target:
        """The checked target quantile function (setting it clears the cached values)."""
        return self._target

    @target.setter
    def target(self, value: Any) -> None:
        self._target = resolve_target(value)
        self._cache = OrderedDict()

    # -- running statistics --------------------------------------------------------------
    @property
    def knot_levels(self) -> torch.Tensor:
        """Probabilities of the running quantile knots: (k + 0.5) / num_knots."""
        return (torch.arange(self.num_knots, dtype=torch.float64) + 0.5) / self.num_knots

    def reset_running_stats(self) -> None:
        """Running knots to the standard normal quantiles (like BatchNorm's 0 / 1)."""
        if self.track_running_stats:
            with torch.no_grad():
                self.running_quantiles.copy_(gaussian(self.knot_levels).expand_as(self.running_quantiles))
                self.num_batches_tracked.zero_()

    def _update_running(self, batch_q: torch.Tensor) -> None:
        """Blend the batch's mean quantile function (A, S, K) into the running knots."""
        self.num_batches_tracked.add_(1)
        m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        # the mean of quantile functions is the 1-D Wasserstein barycenter
        mean = batch_q.mean(dim=0).to(self.running_quantiles.dtype)
        self.running_quantiles.lerp_(mean, m)

    # -- target values at the plotting positions, cached per size ---------------------------
    def _cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        """``build()``, kept in a small least-recently-built cache under ``key``."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = build()
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return hit

    def _target_values(self, n: int, dtype: torch.dtype, device: torch.device):
        """``(Q at the n plotting positions, their differences h apart, h)``, in ``dtype``
        (Q computed in float64, values beyond ``dtype``'s range clamped into it)."""

        def build():
            if self.positions == "midpoint":
                p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
            else:
                p = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
                if self._target.unbounded:
                    p = p.clamp(_LINSPACE_CLAMP, 1 - _LINSPACE_CLAMP)
            q = self._target(p)
            h = max(1, min(n - 1, int(round(math.sqrt(n)))))
            j = torch.arange(n)
            dq = q[(j + h).clamp(max=n - 1)] - q[(j - h).clamp(min=0)]
            return (_cap(q.to(device=device, dtype=dtype)),
                    _cap(dq.to(device=device, dtype=dtype)), h)

        return self._cached((n, dtype, device, self.positions), build)

    def _sketch_table(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Sketch mode's ``Q`` at the CDF of a cell edge with k of n elements below it,
        ``clamp(k / n, 0.5 / n, 1 - 0.5 / n)``, for k = 0..n (cached per size).

        The levels are computed in float64: in float32, ``1 - 0.5 / n`` rounds to 1
        (where unbounded targets are infinite) for groups above 2**24 elements.
        """

        def build():
            p = torch.arange(n + 1, dtype=torch.float64).div_(n).clamp_(0.5 / n, 1.0 - 0.5 / n)
            return _cap(self._target(p).to(device=device, dtype=dtype))

        return self._cached(("sketch", n, dtype, device), build)

    # -- the map ------------------------------------------------------------------------------
    def _map(self, x3: torch.Tensor):
        """Map each group of ``x3`` (A, S, n) to the target.

        Returns:
            ``(y, slope)``: ``y`` of shape (A, S, n), and a :class:`_Slope` when the
            transport gradient must be attached (None when no gradient reaches the
            input, or when ``y`` already carries its autograd graph).
        """
        A, S, n = x3.shape
        xin = x3 if self.grad == "transport" else x3.detach()
        if self.track_running_stats and not self.training:
            return _running_map(xin, self.running_quantiles, self.knot_levels, self._target), None
        need = self.grad == "transport" and torch.is_grad_enabled() and x3.requires_grad
        rows = xin.detach().reshape(A * S, n)
        if self.eps > 0:
            rows = rows + self.eps * torch.randn_like(rows)
        update = self.track_running_stats and self.training
        if self.method == "sketch" and n > 4 * self.sketch_bins:
            y, slope, q = self._map_sketch(rows, need, update)
        else:
            y, slope, q = self._map_exact(rows, need, update)
        if update:
            with torch.no_grad():
                self._update_running(q.view(A, S, -1))
        return y.view(A, S, n), slope

    def _map_sketch(self, rows: torch.Tensor, need: bool, update: bool):
        """Sketch mode on ``rows`` (rows, n): ``(y, slope or None, quantiles or None)``,
        the quantiles at the knot levels only when ``update``."""
        n = rows.shape[1]
        table = self._sketch_table(n, rows.dtype, rows.device)
        y, slope, (below, med, scale) = _sketch(rows, table, self.sketch_bins, need,
                                                self._workspace)
        if slope is not None:
            slope = _Slope(_identity, (slope,), fresh=False)
        q = None
        if update:
            with torch.no_grad():
                edge_p = below.to(rows.dtype).div_(n).clamp_(0.5 / n, 1.0 - 0.5 / n)
                q = _sketch_quantiles(edge_p, med, scale, self.knot_levels.to(rows.device))
        return y, slope, q

    def _map_exact(self, rows: torch.Tensor, need: bool, update: bool):
        """Exact mode on ``rows`` (rows, n), returning as :meth:`_map_sketch`."""
        qvals, dq, h = self._target_values(rows.shape[1], rows.dtype, rows.device)
        levels = self.knot_levels.to(rows.device) if update else None
        return _exact(rows, qvals, dq, h, levels, self.positions, need)

    def _finish(self, x: torch.Tensor, y: torch.Tensor, slope: _Slope | None,
                weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
        """Apply the affine and attach the transport gradient.

        ``x`` and ``y`` have the same (viewed) shape; ``weight`` and ``bias`` are None
        or views broadcasting against it.
        """
        if slope is not None:
            return _Attach.apply(x, weight, bias, y, slope)
        if weight is None:
            return y if bias is None else y + bias
        tracking = torch.is_grad_enabled() and (
            y.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
        if bias is None:
            return y * weight if tracking else y.mul_(weight)
        if tracking:
            return torch.addcmul(bias, y, weight)
        return _affine(y, weight, bias, out=y)  # y is a fresh tensor: update in place

    def _channel_forward(self, input: torch.Tensor, channels: int, name: str,
                         groups: int) -> torch.Tensor:  # noqa: A002
        """Shared forward of GroupMap and InstanceMap: ``(N, C, *)`` in ``groups``
        groups of consecutive channels, with a per-channel affine."""
        self._check_floating(input)
        if input.dim() < 2 or input.shape[1] != channels:
            raise ValueError(
                f"`input` must have shape (N, {channels}, *) with "
                f"{name}={channels} channels, got shape {tuple(input.shape)}"
            )
        N = input.shape[0]
        if input.numel() == 0:
            return input.clone()
        y, slope = self._map(input.reshape(N, groups, -1))
        shape = (N, channels, -1)
        weight = bias = None
        if self.affine:
            weight, bias = self.weight.view(1, -1, 1), self.bias.view(1, -1, 1)
        out = self._finish(input.reshape(shape), y.view(shape), slope, weight, bias)
        return out.view(input.shape)

    def _check_floating(self, x: Any) -> None:
        if not torch.is_tensor(x):
            raise TypeError(f"`input` must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"`input` must be a floating-point tensor, got dtype {x.dtype}")

    def _common_repr(self) -> str:
        parts = [f"target={self._target!r}", f"method={self.method!r}"]
        if self.positions != "midpoint":
            parts.append(f"positions={self.positions!r}")
        if self.grad != "transport":
            parts.append(f"grad={self.grad!r}")
        if self.eps:
            parts.append(f"eps={self.eps}")
        if self.track_running_stats:
            parts.append(f"track_running_stats=True, momentum={self.momentum}, "
                         f"num_knots={self.num_knots}")
        return ", ".join(parts)


