"""Distances between a transformed output and the output of a transformed input.

``resolve_distance(dist)`` turns the user's ``dist`` argument into a function
``d(a, b) -> per-sample tensor of shape (N,)``; the regularizer averages it over
samples. ``a`` is always ``f_out(model(v))`` and ``b`` is ``model(f_in(v))``.

Names and what they compute, per sample (``a`` and ``b`` flattened after the batch
dimension unless said otherwise):

* ``p`` (a number >= 1): the p-norm ``||a - b||_p`` (the reference's formula).
* ``'inf'`` (or ``float('inf')``): ``max |a - b|``.
* ``'cross_entropy'``: ``a`` and ``b`` are probabilities along dimension 1;
  ``H(a, b) = -sum_c a_c * log(max(b_c, tiny))``, with ``tiny`` the smallest
  normal number of the dtype, so ``b_c = 0`` gives a large finite penalty rather
  than ``log 0 -> 0`` (the reference's bug, which rewarded zero probabilities).
  Further dimensions after the class dimension are averaged.
* ``'cross_entropy_logits'``: ``a`` and ``b`` are logits along dimension 1;
  ``H(softmax(a), softmax(b)) = -sum_c softmax(a)_c * log_softmax(b)_c``, computed
  stably; further dimensions are averaged. (The reference computed an L2 distance
  between log-softmaxes instead of a cross-entropy.)
* a callable ``dist(a, b)`` returning a scalar or a per-sample vector of length N.

Both cross-entropies are minimal, not zero, when ``a == b``: their minimum is the
entropy of ``a``. Use them as a consistency loss, with ``epsilon`` if needed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["resolve_distance", "p_distance", "cross_entropy", "cross_entropy_logits"]


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def p_distance(p: float) -> DistanceFn:
    """Per-sample ``||a - b||_p`` over all non-batch dimensions."""

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(_flat(a - b), ord=p, dim=1)

    dist.__name__ = "inf_distance" if math.isinf(p) else f"p{p:g}_distance"
    return dist


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)


def _check_class_dim(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    if a.dim() < 2 or a.shape != b.shape:
        raise ValueError(
            f"dist={name!r} needs outputs of equal shape (N, C, ...), "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def cross_entropy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-sum_c a_c log(max(b_c, tiny))`` over the class dimension 1."""
    _check_class_dim(a, b, "cross_entropy")
    tiny = torch.finfo(b.dtype).tiny
    return _per_sample_mean(-(a * torch.log(b.clamp_min(tiny))).sum(dim=1))


def cross_entropy_logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-sum_c softmax(a)_c log_softmax(b)_c`` over the class dimension 1."""
    _check_class_dim(a, b, "cross_entropy_logits")
    return _per_sample_mean(-(F.softmax(a, dim=1) * F.log_softmax(b, dim=1)).sum(dim=1))


_NAMED = {
    "inf": p_distance(math.inf),
    "cross_entropy": cross_entropy,
    "cross_entropy_logits": cross_entropy_logits,
}


def _callable_distance(fn: Callable) -> DistanceFn:
    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        value = fn(a, b)
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=a.dtype, device=a.device)
        if value.dim() == 0:
            return value.reshape(1)
        if value.dim() == 1 and value.shape[0] == a.shape[0]:
            return value
        raise ValueError(
            "a callable `dist` must return a scalar or a per-sample vector of length "
            f"{a.shape[0]}, got shape {tuple(value.shape)}"
        )

    dist.__name__ = getattr(fn, "__name__", "custom_distance")
    return dist


def resolve_distance(dist: Any) -> DistanceFn:
    """Turn ``dist`` (p, ``'inf'``, a cross-entropy name or a callable) into a
    function ``(a, b) -> per-sample distances``.

    Raises:
        ValueError: unknown name, or p < 1 / not a number.
        TypeError: anything else.
    """
    if isinstance(dist, str):
        key = dist.lower()
        if key in _NAMED:
            return _NAMED[key]
        raise ValueError(
            f"`dist` must be a number p >= 1, 'inf', 'cross_entropy', "
            f"'cross_entropy_logits' or a callable, got {dist!r}"
        )
    if isinstance(dist, (bool, np.bool_)):
        raise TypeError(f"`dist` must be a number p >= 1, a name or a callable, got {dist!r}")
    if isinstance(dist, numbers.Real) or (isinstance(dist, np.ndarray) and dist.ndim == 0):
        p = float(dist)
        if math.isnan(p) or p < 1:
            raise ValueError(f"`dist` as a p-norm needs p >= 1, got {dist!r}")
        return p_distance(p)
    if callable(dist):
        return _callable_distance(dist)
    raise TypeError(
        f"`dist` must be a number p >= 1, 'inf', 'cross_entropy', "
        f"'cross_entropy_logits' or a callable, got {type(dist).__name__}"
    )
