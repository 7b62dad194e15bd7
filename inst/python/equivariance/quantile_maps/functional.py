"""Functional pieces shared by the quantile maps' kernels and modules.

- :class:`_Slope`: the transport derivative of a map, computed lazily in the backward
  pass from the tensors a kernel saved;
- :class:`_Attach`: the autograd function that applies the affine and gives the input
  the transport gradient;
- :func:`_running_map`: eval mode through running quantile knots.

Finiteness: every slope a kernel computes is capped at the largest finite number of
its dtype (:func:`_cap`), so that a tiny spread between order statistics (subnormal or
float16 inputs) gives a very large but finite derivative, never ``inf`` (and never
``0 * inf = NaN`` downstream).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable

import torch

from .targets import Target

# Eval mode evaluates Q on F clamped away from 0 and 1 (in float64) to stay finite.
_EVAL_CLAMP = 1e-12


def _cap(t: torch.Tensor) -> torch.Tensor:
    """Clamp ``t`` in place into the finite range of its dtype (``inf`` to the largest
    finite value); NaN is left alone (the kernels never produce it)."""
    big = torch.finfo(t.dtype).max
    return t.clamp_(-big, big)


class _Slope:
    """dT/dx for the elements of a mapped tensor, computed in the backward pass.

    Args:
        fn: ``fn(*tensors)`` returns the slope tensor (shape of the map's rows).
        tensors: the tensors ``fn`` needs; they are saved for the backward pass (and
            freed after it).
        fresh: whether ``fn`` builds a new tensor each call (then the backward pass
            may overwrite it) or returns a stored one.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], tensors: Sequence[torch.Tensor],
                 fresh: bool) -> None:
        self.fn = fn
        self.tensors = tuple(tensors)
        self.fresh = fresh


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``t`` summed over the dimensions that ``shape`` broadcasts."""
    return t.sum_to_size(shape) if t.shape != shape else t.clone()


def _affine(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
            out: torch.Tensor | None = None) -> torch.Tensor:
    """``bias + y * weight`` (one fused multiply-add per element).

    Per-channel parameters of shape (1, C, 1) are first expanded to (1, C, L): PyTorch
    vectorizes a loop with at most one operand broadcast along the innermost dimension,
    and this one has two. The result is the same, about 1.5x faster.
    """
    if (y.dim() == 3 and y.shape[0] > 1 and y.shape[2] > 1 and weight.dim() == 3
            and weight.shape[2] == 1 and bias.shape == weight.shape):
        shape = (1, y.shape[1], y.shape[2])
        weight = weight.expand(shape).contiguous()
        bias = bias.expand(shape).contiguous()
    return torch.addcmul(bias, y, weight, out=out)


class _Attach(torch.autograd.Function):
    """``y * weight + bias`` whose input gradient is ``slope * weight`` (the transport
    derivative), fused with the affine's own gradients so that the backward pass makes
    few full-size temporaries.

    ``x`` is only there to connect the graph; ``y`` (the map's output) and the slope
    are computed without autograd. ``weight`` and ``bias`` are None or views that
    broadcast against ``y``. The slope's tensors are saved for the backward pass, so
    they are freed after it.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None,
                bias: torch.Tensor | None, y: torch.Tensor, slope: _Slope) -> torch.Tensor:
        ctx.slope_fn, ctx.fresh, ctx.shape = slope.fn, slope.fresh, y.shape
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.save_for_backward(y if ctx.needs_input_grad[1] else None, weight, *slope.tensors)
        if weight is None:
            return y if bias is None else y + bias
        return _affine(y, weight, bias) if bias is not None else y * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, weight, *parts = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        # one value broadcast everywhere (e.g. out.sum().backward()): a scalar factor
        g0 = grad.reshape(-1)[0] if all(st == 0 for st in grad.stride()) else None
        if ctx.needs_input_grad[0]:
            slope = ctx.slope_fn(*parts).view(ctx.shape)
            if g0 is not None:
                factor = g0 if weight is None else weight * g0
                grad_x = slope.mul_(factor) if ctx.fresh else slope * factor
            elif weight is None:
                grad_x = slope.mul_(grad) if ctx.fresh else grad * slope
            else:
                grad_x = (slope.mul_(weight) if ctx.fresh else slope * weight).mul_(grad)
        if ctx.needs_input_grad[1]:
            if g0 is not None:
                grad_w = g0 * y.sum_to_size(weight.shape)
            else:
                grad_w = (grad * y).sum_to_size(weight.shape)
        if ctx.needs_input_grad[2]:
            if g0 is not None:  # each bias element receives the same number of terms
                count = grad.numel() // math.prod(ctx.bias_shape)
                grad_b = (g0 * count).expand(ctx.bias_shape).contiguous()
            else:
                grad_b = _sum_to(grad, ctx.bias_shape)
        return grad_x, grad_w, grad_b, None, None


# --------------------------------------------------------------------------------------
# eval mode with running statistics


# Eval mode clamps inputs into +-_HUGE (in float64) first, so that +-inf become values
# beyond every knot: no inf - inf or 0 * inf in any branch (NaN), and zero gradient.
_HUGE = 1e300


class _Widen(torch.autograd.Function):
    """``x.double()`` whose gradient is clamped into ``x``'s finite range on the way back
    (the float64 derivative of a steep map would overflow ``x``'s dtype)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.dtype = x.dtype
        return x.double()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        big = torch.finfo(ctx.dtype).max
        return grad.clamp(-big, big).to(ctx.dtype)


def _knot_cdf(xd: torch.Tensor, kn: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """The CDF through the knots ``kn`` (S, K) at levels ``lv`` (K,), at ``xd`` (A, S, n).

    Piecewise linear between the knots, with exponential tails beyond the end knots
    (continuous density). Every rate and density is capped to a finite value (knots a
    subnormal apart), and exponents are clamped to <= 0, so that no branch, taken or
    not, holds inf or NaN (``torch.where`` would pass NaN to the gradients).
    """
    A, S, _ = xd.shape
    K = kn.shape[-1]
    grid = kn.unsqueeze(0).expand(A, S, K).contiguous()
    b = torch.searchsorted(grid, xd.detach())
    j = (b - 1).clamp(0, K - 2)
    x0, x1 = grid.gather(2, j), grid.gather(2, j + 1)
    p0, p1 = lv[j], lv[j + 1]
    width = x1 - x0
    dens = _cap(torch.where(width > 0, (p1 - p0) / torch.where(width > 0, width, 1.0),
                            torch.zeros_like(width)))
    inner = p0 + (xd - x0) * dens
    # tails: F = p_first exp(rate (x - k_first)) below, 1 - (1 - p_last) exp(...) above
    first, last = kn[:, :1].unsqueeze(0), kn[:, -1:].unsqueeze(0)
    w_lo, w_hi = kn[:, 1:2] - kn[:, :1], kn[:, -1:] - kn[:, -2:-1]
    rate_lo = torch.where(w_lo > 0, (lv[1] - lv[0]) / torch.where(w_lo > 0, w_lo, 1.0) / lv[0],
                          torch.zeros_like(w_lo)).unsqueeze(0)
    rate_hi = torch.where(w_hi > 0, (lv[-1] - lv[-2]) / torch.where(w_hi > 0, w_hi, 1.0)
                          / (1 - lv[-1]), torch.zeros_like(w_hi)).unsqueeze(0)
    lower = lv[0] * torch.exp((_cap(rate_lo) * (xd - first)).clamp(max=0))
    upper = 1 - (1 - lv[-1]) * torch.exp((-_cap(rate_hi) * (xd - last)).clamp(max=0))
    return torch.where(b == 0, lower, torch.where(b == K, upper, inner))


def _running_map(x: torch.Tensor, knots: torch.Tensor, levels: torch.Tensor,
                 target: Target) -> torch.Tensor:
    """Map ``x`` (A, S, n) through the running quantile knots ``knots`` (S, K).

    ``F`` is :func:`_knot_cdf`, so ``Q(F)`` follows the target's tails. It is computed
    in float64 and clamped to [1e-12, 1 - 1e-12], and the output is clamped into the
    finite range of ``x``'s dtype, so that every finite input gives a finite output and
    a finite gradient. Infinite inputs lie beyond every knot: ``+inf`` maps to
    ``Q(1 - 1e-12)``, ``-inf`` to ``Q(1e-12)``, with zero gradient.
    """
    if bool(torch.isnan(x).any()):
        raise ValueError("`input` contains NaN; quantile maps need ordered values")
    widen = x.requires_grad and x.dtype != torch.float64
    xd = _Widen.apply(x) if widen else x.double()
    xd = xd.clamp(-_HUGE, _HUGE)
    kn = torch.cummax(knots.detach().double(), dim=-1).values
    F = _knot_cdf(xd, kn, levels.double().to(x.device))
    y = target.with_grad(F.clamp(_EVAL_CLAMP, 1 - _EVAL_CLAMP))
    big = torch.finfo(x.dtype).max
    return y.clamp(-big, big).to(x.dtype)
