"""Distances between a transformed output and the output of a transformed input.

``resolve_distance(dist)`` turns the user's ``dist`` argument into a function
``d(a, b) -> per-sample tensor of shape (N,)``; the regularizer averages it over
samples. ``a`` is always ``f_out(model(v))`` and ``b`` is ``model(f_in(v))``.

Every named distance is 0 exactly when ``a == b``, so a model is equivariant exactly
when the regularizer's term vanishes (with ``epsilon = 0``):

========================== ============= ==================================================
``dist``                   outputs       value per sample; 0 exactly when
========================== ============= ==================================================
a number ``p >= 1``        any           ``||a - b||_p``; 0 when ``a == b``
``'inf'``, ``math.inf``    any           ``max |a - b|``; 0 when ``a == b``
``'cross_entropy'``        probabilities ``||log a - log b||_2`` with a safe log (``p <= 0``
                           along dim 1   counts as the dtype's smallest normal number, never
                                         ``log 0 -> 0``); 0 when ``a == b``
``'cross_entropy_logits'`` logits along  ``||log_softmax(a) - log_softmax(b)||_2``, softmax
                           dim 1         along dim 1; 0 when ``softmax(a) == softmax(b)``
``'kl_logits'``            logits along  symmetric KL ``KL(p||q) + KL(q||p)``, ``p =
                           dim 1         softmax(a)``, ``q = softmax(b)``; 0 when ``p == q``
``'kl_logits_target'``     logits along  one-sided ``KL(p||q)`` with ``p = softmax(a)`` held fixed
                           dim 1         (no gradient through ``a``): ``model(f_in(v))`` is
                                         moved towards ``f_out(model(v))``; 0 when ``p == q``
``'js_logits'``            logits along  Jensen-Shannon ``(KL(p||m) + KL(q||m)) / 2``, ``m =
                           dim 1         (p + q) / 2``, at most ``log 2``; 0 when ``p == q``
a callable ``dist(a, b)``  any           its value: a scalar or one value per sample
========================== ============= ==================================================

The two ``cross_entropy`` names keep the reference package's (``equivariance-
regularizer`` 0.1.1) formulas on ``(N, C)`` outputs: the L2 norm of the difference of
logs over all non-batch entries, averaged over samples, except that a zero
probability no longer has log 0 (the reference replaced ``log 0`` by 0, which
rewarded zero probabilities). For outputs ``(N, C, ...)`` the softmax runs along the
class dimension 1 (the reference took it along the last one, the same dimension for
``(N, C)``) and the norm over all entries after the batch dimension; ``kl_logits``
and ``js_logits`` sum over the classes and average over the further positions.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "resolve_distance",
    "p_distance",
    "cross_entropy",
    "cross_entropy_logits",
    "kl_logits",
    "kl_logits_target",
    "js_logits",
    "DISTANCE_NAMES",
]

#: The names ``dist`` accepts (besides a number p >= 1 and a callable).
DISTANCE_NAMES = (
    "inf", "cross_entropy", "cross_entropy_logits", "kl_logits", "kl_logits_target", "js_logits"
)

_ACCEPTED = (
    "a number p >= 1, "
    + ", ".join(repr(name) for name in DISTANCE_NAMES)
    + " or a callable (a, b) -> scalar or per-sample vector"
)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


class PDistance:
    """Per-sample ``||a - b||_p`` over all non-batch dimensions.

    A module-level class, not a closure: a regularizer holding it can be pickled (and
    so sent to the worker processes of ``fit(workers = K)``).
    """

    def __init__(self, p: float) -> None:
        self.p = float(p)
        self.__name__ = "inf_distance" if math.isinf(self.p) else f"p{self.p:g}_distance"

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(_flat(a - b), ord=self.p, dim=1)

    def __repr__(self) -> str:
        return self.__name__


def p_distance(p: float) -> DistanceFn:
    """Per-sample ``||a - b||_p`` over all non-batch dimensions (a picklable function)."""
    return PDistance(p)


def _check_class_dim(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    if a.dim() < 2 or a.shape != b.shape:
        raise ValueError(
            f"`dist`={name!r} needs outputs of equal shape (N, C, ...), "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    # The smallest normal number, not 0: log 0 would be -inf (and the reference's
    # replacement of it by 0 made a zero probability look like a probability of 1).
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))


def cross_entropy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||log a - log b||_2`` for probabilities ``a``, ``b`` (safe log)."""
    _check_class_dim(a, b, "cross_entropy")
    return torch.linalg.vector_norm(_flat(_safe_log(a) - _safe_log(b)), dim=1)


def cross_entropy_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||log_softmax(a) - log_softmax(b)||_2``, softmax along dim 1."""
    _check_class_dim(a, b, "cross_entropy_logits")
    diff = F.log_softmax(a, dim=1) - F.log_softmax(b, dim=1)
    return torch.linalg.vector_norm(_flat(diff), dim=1)


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)


def kl_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample symmetric KL ``KL(p||q) + KL(q||p) = sum_c (p_c - q_c)(log p_c -
    log q_c)`` between ``p = softmax(a)`` and ``q = softmax(b)`` along dim 1."""
    _check_class_dim(a, b, "kl_logits")
    log_p, log_q = F.log_softmax(a, dim=1), F.log_softmax(b, dim=1)
    terms = (log_p.exp() - log_q.exp()) * (log_p - log_q)
    return _per_sample_mean(terms.sum(dim=1))


def kl_logits_target(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(p||q) = sum_c p_c (log p_c - log q_c)`` with ``p = softmax(a)``
    as a fixed target (no gradient flows into ``a``) and ``q = softmax(b)``, along dim 1.

    The consistency loss of semi-supervised learning: the output at the transformed
    input is pulled towards the (transformed) output at the original input, which is
    not pulled back; 0 exactly when ``p == q``.
    """
    _check_class_dim(a, b, "kl_logits_target")
    log_p, log_q = F.log_softmax(a.detach(), dim=1), F.log_softmax(b, dim=1)
    return _per_sample_mean((log_p.exp() * (log_p - log_q)).sum(dim=1))


def _log_ratio_to_mean(d: torch.Tensor) -> torch.Tensor:
    """``log(2 / (1 + exp(d)))``, i.e. ``log(p / m)`` with ``d = log q - log p`` and
    ``m = (p + q) / 2``. Exactly 0 at ``d = 0``, finite for every finite ``d``."""
    neg = d.clamp(max=0)
    pos = d.clamp(min=0)
    # Each branch only sees the half-line where it cannot overflow, so neither its
    # value nor its gradient is inf/NaN where `where` discards it.
    small = -torch.log1p(torch.expm1(neg) / 2)
    large = math.log(2) - pos - torch.log1p(torch.exp(-pos))
    return torch.where(d <= 0, small, large)


def js_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample Jensen-Shannon divergence ``(KL(p||m) + KL(q||m)) / 2`` between
    ``p = softmax(a)`` and ``q = softmax(b)`` along dim 1, ``m = (p + q) / 2``."""
    _check_class_dim(a, b, "js_logits")
    log_p, log_q = F.log_softmax(a, dim=1), F.log_softmax(b, dim=1)
    d = log_q - log_p
    terms = log_p.exp() * _log_ratio_to_mean(d) + log_q.exp() * _log_ratio_to_mean(-d)
    # Rounding can leave a value of order -1e-8 where it is mathematically >= 0.
    return _per_sample_mean(0.5 * terms.sum(dim=1)).clamp_min(0)


_NAMED = {
    "inf": p_distance(math.inf),
    "cross_entropy": cross_entropy,
    "cross_entropy_logits": cross_entropy_logits,
    "kl_logits": kl_logits,
    "kl_logits_target": kl_logits_target,
    "js_logits": js_logits,
}


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        shown = value.detach().cpu().reshape(-1)[:4].tolist()
        more = ", ..." if value.numel() > 4 else ""
        return f"a tensor of shape {tuple(value.shape)} holding {shown}{more}"
    return repr(value)


class CheckedDistance:
    """A user's distance function whose values are checked at every call (numbers, not
    NaN, a scalar or one per sample). Picklable whenever the function itself is."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "custom_distance")

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        value = self.fn(a, b)
        # A bool is not a distance (an R function returning NA arrives as True and
        # would silently count as a distance of 1).
        is_bool = (
            isinstance(value, (bool, np.bool_))
            or (isinstance(value, torch.Tensor) and value.dtype == torch.bool)
            or (isinstance(value, np.ndarray) and value.dtype == np.bool_)
        )
        if is_bool or isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"a callable `dist` must return numbers, got {_describe(value)}")
        if not isinstance(value, torch.Tensor):
            try:
                value = torch.as_tensor(value, dtype=a.dtype, device=a.device)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(
                    f"a callable `dist` must return numbers, got {_describe(value)}"
                ) from None
        if torch.isnan(value).any():
            raise ValueError(
                f"a callable `dist` must return numbers that are not NaN (nor NA in R), "
                f"got {_describe(value)}"
            )
        if value.dim() == 0:
            return value.reshape(1)
        if value.dim() == 1 and value.shape[0] == a.shape[0]:
            return value
        raise ValueError(
            "a callable `dist` must return a scalar or a per-sample vector of length "
            f"{a.shape[0]}, got shape {tuple(value.shape)}"
        )


def _callable_distance(fn: Callable) -> DistanceFn:
    return CheckedDistance(fn)


def resolve_distance(dist: Any) -> DistanceFn:
    """Turn ``dist`` (p, one of :data:`DISTANCE_NAMES` or a callable) into a function
    ``(a, b) -> per-sample distances``.

    Raises:
        ValueError: unknown name, or p < 1 / NaN.
        TypeError: anything else.
    """
    if isinstance(dist, str):
        key = dist.lower()
        if key in _NAMED:
            return _NAMED[key]
        raise ValueError(f"`dist` must be {_ACCEPTED}, got {dist!r}")
    if isinstance(dist, (bool, np.bool_)):
        raise TypeError(f"`dist` must be {_ACCEPTED}, got {dist!r}")
    if isinstance(dist, numbers.Real) or (isinstance(dist, np.ndarray) and dist.ndim == 0):
        p = float(dist)
        if math.isnan(p) or p < 1:
            raise ValueError(f"`dist` as a p-norm needs p >= 1, got {dist!r}")
        return p_distance(p)
    if callable(dist):
        return _callable_distance(dist)
    raise TypeError(f"`dist` must be {_ACCEPTED}, got {type(dist).__name__}")
