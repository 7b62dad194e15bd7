r"""Quantile maps: normalization layers that match a whole target distribution.

``GroupMap``, ``LayerMap`` and ``InstanceMap`` are drop-in replacements for
``nn.GroupNorm``, ``nn.LayerNorm`` and ``nn.InstanceNorm*d``. Instead of matching the
mean and variance of each group of activations, they map the group onto a prescribed
distribution by 1-D optimal transport (the increasing rearrangement):

.. math::  y = Q(F(x)) \cdot \gamma + \beta

with :math:`F` the empirical CDF of the group and :math:`Q` the target's quantile
function. This is the formula of the reference implementation (the ``groupmap``
project) with three additions:

* **Gradients reach earlier layers.** The reference output depends on the input only
  through ranks, so autograd sees no path to the input. Here ``grad="transport"``
  (default) back-propagates the derivative of the transport map ``T = Q o F`` with the
  batch's ``F`` held fixed: ``T'(x) = Q'(F(x)) f(x)``, estimated from order statistics
  as ``(Q(p[i+h]) - Q(p[i-h])) / (x[(i+h)] - x[(i-h)])`` with a window ``h = sqrt(n)``
  (clipped at the ends) so that the estimate is smooth. For a large Gaussian group of
  standard deviation ``sigma`` and a Gaussian target it is close to ``1 / sigma``, what
  GroupNorm would give. Where the window holds only ties (zero spread) the group's
  overall slope ``(Q(p[n-1]) - Q(p[0])) / (max - min)`` is used, and a constant group
  gets zero gradient, so gradients are always finite. ``grad="none"`` reproduces the
  reference (no gradient to the input; ``weight`` and ``bias`` still learn).
* **Running statistics.** With ``track_running_stats=True`` training keeps, per group
  (GroupMap), channel (InstanceMap) or layer (LayerMap), a running estimate of the input
  quantile function at ``num_knots`` fixed levels (buffer ``running_quantiles``), updated
  with ``momentum`` like BatchNorm. In eval mode the input is then mapped through the
  piecewise-linear CDF through those knots (extended beyond the end knots by
  exponential tails, so that outputs follow the target's tails) and ``Q``, so a sample's
  output does not depend on the rest of the batch. Without running statistics, eval
  mode uses the batch's statistics exactly like training mode (the reference's
  behaviour).
* **Speed.** ``method="exact"`` does one sort per group and a scatter of ``Q`` values
  computed once per group size (the reference evaluates ``Q`` on every element).
  ``method="sketch"`` replaces the sort by a histogram sketch (see :class:`GroupMap`).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from ._quantile_targets import (
    Target,
    cauchy,
    gaussian,
    laplace,
    logistic,
    numpy_target,
    resolve_target,
    sparse,
    uniform,
)
from ._validation import nonnegative_real, positive_int, shape_tuple

__all__ = [
    "GroupMap",
    "InstanceMap",
    "LayerMap",
    "cauchy",
    "gaussian",
    "laplace",
    "logistic",
    "numpy_target",
    "sparse",
    "uniform",
]

_METHODS = ("exact", "sketch")
_POSITIONS = ("midpoint", "linspace")
_GRADS = ("transport", "none")
# The reference clamps unbounded quantile functions to [1e-5, 1 - 1e-5].
_LINSPACE_CLAMP = 1e-5
# Eval mode evaluates Q on F clamped away from 0 and 1 (in float64) to stay finite.
_EVAL_CLAMP = 1e-12
# Sketch mode: size of the strided pilot subsample that sets each group's scale.
_PILOT = 64
# Sketch mode: the gradient averages the map's slope over this many cells each side.
_SLOPE_CELLS = 2


def _choice(value: Any, choices: Sequence[str], name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        )
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False, got {value!r}")
    return value


def _momentum(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"`momentum` must be a number in [0, 1] or None, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------
# exact mode: one sort per group


def _tie_rows(s: torch.Tensor, qvals: torch.Tensor):
    """Rows of ``s`` (sorted) that hold ties, with their tie-averaged target values.

    Returns None when there are no ties. Otherwise ``(rows, values)`` where ``values``
    (len(rows), n) are the target values in sorted order with each run of equal inputs
    replaced by the run's mean, so that equal inputs map to equal outputs. The check is
    one comparison over the flat tensor; only rows with ties do more work.
    """
    R, n = s.shape
    flat = s.reshape(-1)
    pos = (flat[1:] == flat[:-1]).nonzero().squeeze(1)  # one pass; usually (almost) empty
    pos = pos[(pos + 1) % n != 0]  # comparisons across a row boundary do not count
    if pos.numel() == 0:
        return None
    rows = torch.unique(pos // n)
    sub = s[rows]
    k = sub.shape[0]
    new_run = torch.ones_like(sub, dtype=torch.bool)
    new_run[:, 1:] = sub[:, 1:] != sub[:, :-1]
    run = torch.cumsum(new_run.reshape(-1), 0) - 1  # run ids, unique across rows
    values = qvals.expand(k, n).reshape(-1)
    sums = torch.zeros(int(run[-1]) + 1, dtype=values.dtype, device=values.device)
    sums.index_add_(0, run, values)
    counts = torch.bincount(run, minlength=sums.numel()).to(values.dtype)
    return rows, (sums / counts)[run].view(k, n)


def _sorted_slopes(s: torch.Tensor, qvals: torch.Tensor, dq: torch.Tensor, h: int,
                   ties: bool) -> torch.Tensor:
    """d T / d x at each order statistic: (Q(p[j+h]) - Q(p[j-h])) / (s[j+h] - s[j-h]).

    ``dq`` holds the numerators (cached per group size). Indices are clipped to
    [0, n - 1]; without ties every denominator is positive.
    """
    rows, n = s.shape
    if n == 1:
        return torch.zeros_like(s)
    if n > 2 * h:
        spread = torch.empty_like(s)
        torch.sub(s[:, 2 * h:], s[:, : n - 2 * h], out=spread[:, h: n - h])
        torch.sub(s[:, h: 2 * h], s[:, :1], out=spread[:, :h])
        torch.sub(s[:, -1:], s[:, n - 2 * h: n - h], out=spread[:, n - h:])
    else:
        padded = torch.cat([s[:, :1].expand(rows, h), s, s[:, -1:].expand(rows, h)], dim=1)
        spread = padded[:, 2 * h:] - padded[:, :n]
    if not ties:
        return torch.div(dq, spread, out=spread)
    # zero spread inside a long run of ties: use the group's overall slope instead
    span = s[:, -1:] - s[:, :1]
    overall = torch.where(span > 0, (qvals[-1] - qvals[0]) / span, torch.zeros_like(span))
    return torch.where(spread > 0, dq / spread, overall)


class _Slope:
    """dT/dx for the elements of a mapped tensor, given lazily.

    Args:
        get: returns the slope tensor (shape of the map's rows).
        fresh: whether ``get`` builds a new tensor each call (then the backward pass
            may overwrite it) or returns a stored one.
    """

    def __init__(self, get, fresh: bool) -> None:
        self.get = get
        self.fresh = fresh


def _exact(x: torch.Tensor, qvals: torch.Tensor, dq: torch.Tensor, h: int,
           levels: Optional[torch.Tensor], positions: str, need_slope: bool):
    """Map each row of ``x`` (rows, n) onto the sorted target values ``qvals``.

    One sort per row gives the ranks; the target values (cached per n) are scattered
    to the elements' positions, with runs of ties given their mean.

    Returns:
        ``(y, slope or None, quantiles or None)``: the mapped rows, a :class:`_Slope`
        computing the transport derivative from the sorted values (only in the
        backward pass), and each row's quantiles at ``levels``.
    """
    s, idx = torch.sort(x, dim=-1)
    # NaN sorts last, so checking the last column finds any NaN in the group
    if bool(torch.isnan(s[:, -1]).any()):
        raise ValueError("`input` contains NaN; quantile maps need ordered values")
    tied = _tie_rows(s, qvals)
    quantiles = None if levels is None else _sorted_quantiles(s, levels, positions)
    # without a backward pass the sorted values are not needed any more: scatter the
    # target values into their buffer instead of allocating a new one
    y = torch.empty_like(x) if need_slope else s
    y.scatter_(-1, idx, qvals.expand_as(x))
    if tied is not None:
        rows, values = tied
        y[rows] = torch.empty_like(values).scatter_(-1, idx[rows], values)
    slope = None
    if need_slope:
        ties = tied is not None

        def get() -> torch.Tensor:
            sorted_slope = _sorted_slopes(s, qvals, dq, h, ties)
            return torch.empty_like(sorted_slope).scatter_(-1, idx, sorted_slope)

        slope = _Slope(get, fresh=True)
    return y, slope, quantiles


def _sorted_quantiles(s: torch.Tensor, levels: torch.Tensor, positions: str) -> torch.Tensor:
    """Quantiles of each sorted row at ``levels`` (linear between order statistics)."""
    n = s.shape[-1]
    if positions == "midpoint":
        at = levels * n - 0.5
    else:
        at = levels * (n - 1)
    at = at.clamp(0, n - 1)
    lo = at.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (at - lo).to(s.dtype)
    return torch.lerp(s[:, lo], s[:, hi], w)


# --------------------------------------------------------------------------------------
# sketch mode: a histogram in a squashed coordinate instead of a sort


def _scratch(workspace: Optional[dict], name: str, like: torch.Tensor,
             dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """An uninitialised buffer shaped like ``like``, reused from ``workspace`` if possible."""
    dtype = like.dtype if dtype is None else dtype
    if workspace is None or like.device.type != "cpu":
        return torch.empty(like.shape, dtype=dtype, device=like.device)
    buf = workspace.get(name)
    if buf is None or buf.shape != like.shape or buf.dtype != dtype:
        buf = workspace[name] = torch.empty(like.shape, dtype=dtype, device=like.device)
    return buf


def _sketch(x: torch.Tensor, target: Target, bins: int, need_slope: bool,
            workspace: Optional[dict] = None):
    """Piecewise-linear map of each row through an exact histogram (sketch mode).

    Each row is squashed into (0, 1) by ``u = (1 + z / (1 + |z|)) / 2`` with
    ``z = (x - median) / scale`` (median and quartiles of a strided pilot subsample of
    ``_PILOT`` values); this heavy-tailed squash spreads Gaussian, uniform and Cauchy
    data over (0, 1) without near-empty extremes. ``u`` is binned into ``bins`` equal
    cells, the cells are counted exactly (no sort), and the CDF at each cell edge
    (midpoint convention) is mapped through ``Q``. The output is linear in ``u`` inside
    a cell, so it is monotone and equal inputs give equal outputs; the error is bounded
    by the mass of one cell.

    Args:
        x: rows to map, shape (rows, n).
        target: the target quantile function.
        bins: number of cells.
        need_slope: also return dy/dx, the slope of the map averaged over
            ``2 * _SLOPE_CELLS + 1`` cells (see below).
        workspace: a dict in which scratch buffers are kept between calls (on CPU,
            where fresh large allocations are slow), or None.

    Returns:
        ``(y, slope or None, (edge_p, median, scale))``.
    """
    rows, n = x.shape
    dtype, device = x.dtype, x.device
    stride = max(1, n // _PILOT)
    pilot, _ = torch.sort(x[:, ::stride], dim=-1)
    m = pilot.shape[1]
    med = pilot[:, m // 2: m // 2 + 1]
    scale = pilot[:, (3 * m) // 4: (3 * m) // 4 + 1] - pilot[:, m // 4: m // 4 + 1]
    # heavy ties can make the quartiles equal: fall back to the range, then to 1
    scale = torch.where(scale > 0, scale, 0.5 * (pilot[:, -1:] - pilot[:, :1]))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    inv = 1.0 / scale
    # Few full-size buffers, reused in place: fresh large allocations cost page faults
    # that are a sizeable part of this mode's time on CPU.
    z = torch.addcmul(-med * inv, x, inv, out=_scratch(workspace, "z", x))
    t = torch.abs(z, out=_scratch(workspace, "t", x)).add_(1.0)
    # one cheap reduction finds NaN (and inf, which would make z / (1 + |z|) NaN)
    if not bool(torch.isfinite(t.sum())):
        if bool(torch.isnan(x).any()):
            raise ValueError("`input` contains NaN; quantile maps need ordered values")
        z.clamp_(-1e30, 1e30)
        torch.add(z.abs(), 1.0, out=t)
    half = 0.5 * bins
    # u * bins (into z's buffer), strictly below `bins` so that truncation gives a cell
    # in [0, bins - 1]
    ub = torch.addcdiv(torch.tensor(half, dtype=dtype, device=device), z, t,
                       value=half * (1.0 - 1e-6), out=z)
    # flat cell ids index both the counts and the (rows, bins + 1) edge tables
    width = bins + 1
    idx_dtype = torch.int32 if rows * width < 2**31 else torch.int64
    cell = _scratch(workspace, "cell", x, idx_dtype).copy_(ub)  # truncates: ub >= 0
    frac = ub.frac_().view(-1)
    cell += torch.arange(0, rows * width, width, dtype=idx_dtype, device=device).unsqueeze(1)
    cell = cell.view(-1)
    counts = torch.bincount(cell, minlength=rows * width).view(rows, width).to(dtype)
    below = torch.cumsum(counts, dim=1).sub_(counts)  # elements in cells left of the edge
    # CDF at a cell edge: halfway between the neighbouring plotting positions
    edge_p = below.div_(n).clamp_(0.5 / n, 1.0 - 0.5 / n)
    edge_y = target(edge_p)
    rise = torch.zeros_like(edge_y)
    rise[:, :bins] = edge_y[:, 1:] - edge_y[:, :-1]
    y = edge_y.view(-1).index_select(0, cell)
    slope = None
    if need_slope:
        # dT/dx as a secant over a window of 2 * _SLOPE_CELLS + 1 cells: the rise of the
        # map across the window over the window's width in x (cell edges in x are known:
        # x = median + scale * v / (1 - |v|) at v = 2 j / bins - 1). A window rather than
        # a single cell, because a cell's rise is proportional to its count and elements
        # sit more often in fuller cells, which would bias the gradient upwards by about
        # 1 / (elements per cell). Windows touching the infinite outer edges get 0.
        j = torch.arange(bins, device=device)
        hi = (j + _SLOPE_CELLS + 1).clamp(max=bins)
        lo = (j - _SLOPE_CELLS).clamp(min=0)
        v = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64, device=device)
        edge_z = (v / (1.0 - v.abs())).to(dtype)  # -inf and inf at the ends
        per_cell = torch.zeros_like(edge_y)
        per_cell[:, :bins] = (edge_y[:, hi] - edge_y[:, lo]) / (scale * (edge_z[hi] - edge_z[lo]))
        slope = per_cell.view(-1).index_select(0, cell).view(rows, n)
    y.addcmul_(frac, torch.index_select(rise.view(-1), 0, cell, out=t.view(-1)))
    y = y.view(rows, n)
    return y, slope, (edge_p, med, scale)


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``t`` summed over the dimensions that ``shape`` broadcasts."""
    return t.sum_to_size(shape) if t.shape != shape else t.clone()


class _Attach(torch.autograd.Function):
    """``y * weight + bias`` whose input gradient is ``slope * weight`` (the transport
    derivative), fused with the affine's own gradients so that the backward pass makes
    few full-size temporaries.

    ``x`` is only there to connect the graph; ``y`` (the map's output) and the slope
    are computed without autograd. ``weight`` and ``bias`` are None or views that
    broadcast against ``y``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: Optional[torch.Tensor],
                bias: Optional[torch.Tensor], y: torch.Tensor, slope: _Slope) -> torch.Tensor:
        ctx.slope, ctx.shape = slope, y.shape
        ctx.bias_shape = None if bias is None else bias.shape
        if weight is not None and not slope.fresh and ctx.needs_input_grad[0]:
            slope.get().view(y.shape).mul_(weight)  # fold the weight in once
        ctx.save_for_backward(y if ctx.needs_input_grad[1] else None, weight)
        if weight is None:
            return y if bias is None else y + bias
        return torch.addcmul(bias, y, weight) if bias is not None else y * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            slope = ctx.slope.get().view(ctx.shape)
            if ctx.slope.fresh:
                if weight is not None:
                    slope.mul_(weight)
                grad_x = slope.mul_(grad)
            else:
                grad_x = grad * slope
        if ctx.needs_input_grad[1]:
            if all(st == 0 for st in grad.stride()):  # e.g. out.sum().backward()
                grad_w = grad.reshape(-1)[0] * y.sum_to_size(weight.shape)
            else:
                grad_w = (grad * y).sum_to_size(weight.shape)
        if ctx.needs_input_grad[2]:
            grad_b = _sum_to(grad, ctx.bias_shape)
        return grad_x, grad_w, grad_b, None, None


def _sketch_quantiles(edge_p: torch.Tensor, med: torch.Tensor, scale: torch.Tensor,
                      levels: torch.Tensor) -> torch.Tensor:
    """Invert the sketch's piecewise-linear CDF at ``levels``: (rows, K) quantiles."""
    rows, edges = edge_p.shape
    bins = edges - 1
    lv = levels.to(edge_p.dtype).expand(rows, -1).contiguous()
    j = (torch.searchsorted(edge_p.contiguous(), lv, right=True) - 1).clamp(0, bins - 1)
    p0 = edge_p.gather(1, j)
    p1 = edge_p.gather(1, j + 1)
    frac = torch.where(p1 > p0, (lv - p0) / (p1 - p0).clamp_min(1e-30), torch.zeros_like(lv))
    v = (2.0 * (j + frac.clamp(0, 1)) / bins - 1.0).clamp(-1 + 1e-6, 1 - 1e-6)
    return med + scale * v / (1.0 - v.abs())


# --------------------------------------------------------------------------------------
# eval mode with running statistics


def _running_map(x: torch.Tensor, knots: torch.Tensor, levels: torch.Tensor,
                 target: Target) -> torch.Tensor:
    """Map ``x`` (A, S, n) through the running quantile knots ``knots`` (S, K).

    F is piecewise linear through (knot, level) pairs and has exponential tails beyond
    the end knots (continuous density), so ``Q(F)`` follows the target's tails. It is
    computed in float64 and clamped to [1e-12, 1 - 1e-12] so that outputs stay finite.
    """
    if bool(torch.isnan(x).any()):
        raise ValueError("`input` contains NaN; quantile maps need ordered values")
    A, S, n = x.shape
    K = knots.shape[-1]
    xd = x.double()
    kn = torch.cummax(knots.detach().double(), dim=-1).values
    lv = levels.double().to(x.device)
    grid = kn.unsqueeze(0).expand(A, S, K).contiguous()
    b = torch.searchsorted(grid, xd.detach())
    j = (b - 1).clamp(0, K - 2)
    x0, x1 = grid.gather(2, j), grid.gather(2, j + 1)
    p0, p1 = lv[j], lv[j + 1]
    width = x1 - x0
    dens = torch.where(width > 0, (p1 - p0) / torch.where(width > 0, width, 1.0),
                       torch.zeros_like(width))
    inner = p0 + (xd - x0) * dens
    # tails: F = p_first exp(rate (x - k_first)) below, 1 - (1 - p_last) exp(...) above
    first, last = kn[:, :1].unsqueeze(0), kn[:, -1:].unsqueeze(0)
    w_lo, w_hi = kn[:, 1:2] - kn[:, :1], kn[:, -1:] - kn[:, -2:-1]
    rate_lo = torch.where(w_lo > 0, (lv[1] - lv[0]) / torch.where(w_lo > 0, w_lo, 1.0) / lv[0],
                          torch.zeros_like(w_lo)).unsqueeze(0)
    rate_hi = torch.where(w_hi > 0, (lv[-1] - lv[-2]) / torch.where(w_hi > 0, w_hi, 1.0)
                          / (1 - lv[-1]), torch.zeros_like(w_hi)).unsqueeze(0)
    # exponents clamped to <= 0 so that the branch not taken never overflows (NaN grads)
    lower = lv[0] * torch.exp((rate_lo * (xd - first)).clamp(max=0))
    upper = 1 - (1 - lv[-1]) * torch.exp((-rate_hi * (xd - last)).clamp(max=0))
    F = torch.where(b == 0, lower, torch.where(b == K, upper, inner))
    y = target.with_grad(F.clamp(_EVAL_CLAMP, 1 - _EVAL_CLAMP))
    return y.to(x.dtype)


# --------------------------------------------------------------------------------------
# the modules


class _QuantileMap(nn.Module):
    """Shared machinery: subclasses say how to group the input and apply the affine."""

    running_quantiles: Optional[torch.Tensor]
    num_batches_tracked: Optional[torch.Tensor]

    def __init__(self, *, target: Any, eps: float, method: str, positions: str, grad: str,
                 track_running_stats: bool, momentum: Optional[float], num_knots: int,
                 sketch_bins: int, num_stats: int, device: Any, dtype: Any) -> None:
        super().__init__()
        self.target = target
        self.eps = nonnegative_real(eps, "eps")
        self.method = _choice(method, _METHODS, "method")
        self.positions = _choice(positions, _POSITIONS, "positions")
        self.grad = _choice(grad, _GRADS, "grad")
        self.track_running_stats = _flag(track_running_stats, "track_running_stats")
        self.momentum = _momentum(momentum)
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
            self.register_buffer("running_quantiles", torch.zeros(num_stats, self.num_knots, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_quantiles", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_running_stats()

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
    def _target_values(self, n: int, dtype: torch.dtype, device: torch.device):
        key = (n, dtype, device, self.positions)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
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
        hit = (q.to(device=device, dtype=dtype), dq.to(device=device, dtype=dtype), h)
        self._cache[key] = hit
        if len(self._cache) > 8:
            self._cache.popitem(last=False)
        return hit

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
        levels = self.knot_levels.to(x3.device)
        if self.method == "sketch" and n > 4 * self.sketch_bins:
            y, slope, tables = _sketch(rows, self._target, self.sketch_bins, need, self._workspace)
            if slope is not None:
                slope = _Slope(lambda stored=slope: stored, fresh=False)
            if update:
                with torch.no_grad():
                    self._update_running(_sketch_quantiles(*tables, levels).view(A, S, -1))
        else:
            qvals, dq, h = self._target_values(n, x3.dtype, x3.device)
            y, slope, q = _exact(rows, qvals, dq, h, levels if update else None,
                                 self.positions, need)
            if update:
                with torch.no_grad():
                    self._update_running(q.view(A, S, -1))
        return y.view(A, S, n), slope

    def _finish(self, x: torch.Tensor, y: torch.Tensor, slope: Optional[_Slope],
                weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]) -> torch.Tensor:
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
        return torch.addcmul(bias, y, weight, out=y)  # y is a fresh tensor: update in place

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
            parts.append(f"track_running_stats=True, momentum={self.momentum}, num_knots={self.num_knots}")
        return ", ".join(parts)


_SHARED_ARGS_DOC = """
        target: the target distribution: ``"gaussian"`` (default), ``"uniform"``
            (on [0, 1]), ``"cauchy"``, ``"laplace"``, ``"logistic"``, ``"sparse"``, a
            callable ``q -> x`` on tensors of probabilities in (0, 1) (checked on a probe
            grid: same shape out, finite, non-decreasing), or a ``torch.distributions``
            object with ``icdf``.
        eps: standard deviation of Gaussian noise added before ranking (as in the
            reference); 0 (default) adds none.
        method: ``"exact"`` (one sort per group) or ``"sketch"`` (histogram sketch: for
            groups larger than ``4 * sketch_bins`` elements the CDF is read from an exact
            count over ``sketch_bins`` cells, and the output is linear inside a cell; its
            Kolmogorov distance to the exact output is below 0.01 on Gaussian, uniform and
            Cauchy data; smaller groups use the exact method).
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
    """

    def __init__(self, num_groups: int, num_channels: int, target: Any = "gaussian",
                 affine: bool = True, eps: float = 0.0, method: str = "exact",
                 positions: str = "midpoint", grad: str = "transport",
                 track_running_stats: bool = False, momentum: Optional[float] = 0.1,
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
        self.affine = _flag(affine, "affine")
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
        self._check_floating(input)
        if input.dim() < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"`input` must have shape (N, {self.num_channels}, *) with "
                f"num_channels={self.num_channels} channels, got shape {tuple(input.shape)}"
            )
        N = input.shape[0]
        if input.numel() == 0:
            return input.clone()
        y, slope = self._map(input.reshape(N, self.num_groups, -1))
        shape = (N, self.num_channels, -1)
        weight = bias = None
        if self.affine:
            weight, bias = self.weight.view(1, -1, 1), self.bias.view(1, -1, 1)
        return self._finish(input.reshape(shape), y.view(shape), slope, weight, bias).view(input.shape)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, affine={self.affine}, "
                + self._common_repr())


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
    """

    def __init__(self, num_features: int, target: Any = "gaussian", affine: bool = False,
                 eps: float = 0.0, method: str = "exact", positions: str = "midpoint",
                 grad: str = "transport", track_running_stats: bool = False,
                 momentum: Optional[float] = 0.1, num_knots: int = 65, sketch_bins: int = 512,
                 device: Any = None, dtype: Any = None) -> None:
        num_features = positive_int(num_features, "num_features")
        super().__init__(target=target, eps=eps, method=method, positions=positions, grad=grad,
                         track_running_stats=track_running_stats, momentum=momentum,
                         num_knots=num_knots, sketch_bins=sketch_bins, num_stats=num_features,
                         device=device, dtype=dtype)
        self.num_features = num_features
        self.affine = _flag(affine, "affine")
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
        self._check_floating(input)
        if input.dim() < 2 or input.shape[1] != self.num_features:
            raise ValueError(
                f"`input` must have shape (N, {self.num_features}, *) with "
                f"num_features={self.num_features} channels, got shape {tuple(input.shape)}"
            )
        N = input.shape[0]
        if input.numel() == 0:
            return input.clone()
        y, slope = self._map(input.reshape(N, self.num_features, -1))
        shape = (N, self.num_features, -1)
        weight = bias = None
        if self.affine:
            weight, bias = self.weight.view(1, -1, 1), self.bias.view(1, -1, 1)
        return self._finish(input.reshape(shape), y.view(shape), slope, weight, bias).view(input.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, affine={self.affine}, " + self._common_repr()


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
    """

    def __init__(self, normalized_shape: Union[int, Sequence[int]], target: Any = "gaussian",
                 elementwise_affine: bool = True, bias: bool = True, eps: float = 0.0,
                 method: str = "exact", positions: str = "midpoint", grad: str = "transport",
                 track_running_stats: bool = False, momentum: Optional[float] = 0.1,
                 num_knots: int = 65, sketch_bins: int = 512,
                 device: Any = None, dtype: Any = None) -> None:
        normalized_shape = shape_tuple(normalized_shape, "normalized_shape")
        super().__init__(target=target, eps=eps, method=method, positions=positions, grad=grad,
                         track_running_stats=track_running_stats, momentum=momentum,
                         num_knots=num_knots, sketch_bins=sketch_bins, num_stats=1,
                         device=device, dtype=dtype)
        self.normalized_shape = normalized_shape
        self.elementwise_affine = _flag(elementwise_affine, "elementwise_affine")
        _flag(bias, "bias")
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
        return self._finish(input.reshape(-1, n), y.view(-1, n), slope, weight, bias).view(input.shape)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, elementwise_affine={self.elementwise_affine}, "
                + self._common_repr())
