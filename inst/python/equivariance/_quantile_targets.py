"""Target distributions for the quantile maps, given by their quantile functions.

A target is a non-decreasing function ``Q`` on (0, 1): the quantile function (inverse
CDF) of the distribution the activations are mapped onto. It may be one of the names
in :data:`TARGETS`, a callable ``q -> x`` on tensors, a ``torch.distributions`` object
with ``icdf``, or (through :func:`numpy_target`) a function on numpy arrays such as an
R function. :func:`resolve_target` turns any of these into a :class:`Target` after
checking it on a probe grid.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "Target",
    "TARGETS",
    "cauchy",
    "gaussian",
    "laplace",
    "logistic",
    "numpy_target",
    "resolve_target",
    "sparse",
    "uniform",
]


def uniform(q: torch.Tensor) -> torch.Tensor:
    """Quantile function of the uniform distribution on [0, 1] (the identity).

    Args:
        q: probabilities in [0, 1].

    Returns:
        ``q`` itself. Shape: same as ``q``.
    """
    return q


def gaussian(q: torch.Tensor) -> torch.Tensor:
    """Quantile function of the standard normal distribution, ``sqrt(2) erfinv(2q - 1)``.

    Unlike the reference implementation it does not clamp ``q``: ``q = 0`` and ``q = 1``
    give infinite values (the layers never evaluate it there, except in
    ``positions="linspace"`` mode, which clamps as the reference does).

    Args:
        q: probabilities in [0, 1].

    Returns:
        Standard normal quantiles. Shape: same as ``q``.
    """
    return math.sqrt(2.0) * torch.erfinv(2.0 * q - 1.0)


def cauchy(q: torch.Tensor) -> torch.Tensor:
    """Quantile function of the standard Cauchy distribution, ``tan(pi (q - 1/2))``.

    Args:
        q: probabilities in (0, 1).

    Returns:
        Standard Cauchy quantiles. Shape: same as ``q``.
    """
    return torch.tan(math.pi * (q - 0.5))


def laplace(q: torch.Tensor) -> torch.Tensor:
    """Quantile function of the standard Laplace distribution (location 0, scale 1).

    Args:
        q: probabilities in (0, 1).

    Returns:
        Standard Laplace quantiles. Shape: same as ``q``.
    """
    centred = q - 0.5
    return -torch.sign(centred) * torch.log1p(-2.0 * centred.abs())


def logistic(q: torch.Tensor) -> torch.Tensor:
    """Quantile function of the standard logistic distribution, ``log(q / (1 - q))``.

    Args:
        q: probabilities in (0, 1).

    Returns:
        Standard logistic quantiles. Shape: same as ``q``.
    """
    return torch.logit(q)


def sparse(q: torch.Tensor, ninety_quantile: float = 0.05) -> torch.Tensor:
    """Quantile function of a sparse distribution on [0, 1], ``q ** k``.

    As in the reference, the integer exponent ``k = int(log(ninety_quantile) / log(0.9))``
    makes 90% of the mass lie below ``ninety_quantile`` (most outputs near 0, a few
    near 1). Use ``functools.partial(sparse, ninety_quantile=...)`` for other levels.

    Args:
        q: probabilities in [0, 1].
        ninety_quantile: the target's 0.9 quantile, in (0, 1).

    Returns:
        Quantiles in [0, 1]. Shape: same as ``q``.
    """
    if not 0.0 < float(ninety_quantile) < 1.0:
        raise ValueError(f"`ninety_quantile` must be in (0, 1), got {ninety_quantile!r}")
    exponent = max(1, int(math.log(ninety_quantile) / math.log(0.9)))
    return q**exponent


# name -> (quantile function, unbounded?). Unbounded targets are clamped to
# [1e-5, 1 - 1e-5] in "linspace" mode, as the reference does.
TARGETS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
    "uniform": (uniform, False),
    "gaussian": (gaussian, True),
    "normal": (gaussian, True),
    "cauchy": (cauchy, True),
    "laplace": (laplace, True),
    "logistic": (logistic, True),
    "sparse": (sparse, False),
}


class _FiniteDifferenceGrad(torch.autograd.Function):
    """Attach a central finite-difference derivative to values of a non-autograd Q."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, values: torch.Tensor, fn: Callable) -> torch.Tensor:
        ctx.save_for_backward(q)
        ctx.fn = fn
        return values.clone()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (q,) = ctx.saved_tensors
        q64 = q.detach().double()
        step = 1e-6
        lo = (q64 - step).clamp(min=1e-15)
        hi = (q64 + step).clamp(max=1.0 - 1e-15)
        with torch.no_grad():
            dq = (_call(ctx.fn, hi) - _call(ctx.fn, lo)) / (hi - lo)
        return grad_out * dq.to(grad_out.dtype), None, None


def _call(fn: Callable, q: torch.Tensor) -> torch.Tensor:
    """Call a quantile function and return a tensor like ``q`` (same shape and dtype)."""
    out = fn(q)
    if not torch.is_tensor(out):
        out = torch.as_tensor(np.asarray(out, dtype=np.float64))
    if out.numel() != q.numel():
        raise ValueError(
            "`target` must return one value per probability: "
            f"given {q.numel()} probabilities it returned {out.numel()} values"
        )
    return out.reshape(q.shape).to(device=q.device, dtype=q.dtype)


class Target:
    """A checked quantile function.

    Args:
        fn: the quantile function ``q -> x``.
        name: a short name for ``repr``.
        unbounded: whether ``Q(0)`` or ``Q(1)`` is infinite (clamped in linspace mode).
        autograd: whether ``fn`` is differentiable by autograd; otherwise a central
            finite difference supplies ``Q'`` where it is needed (eval mode with
            running statistics).
    """

    def __init__(self, fn: Callable, name: str, unbounded: bool, autograd: bool) -> None:
        self.fn = fn
        self.name = name
        self.unbounded = unbounded
        self.autograd = autograd

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """Evaluate ``Q(q)`` without gradient tracking. Shape: same as ``q``."""
        with torch.no_grad():
            return _call(self.fn, q)

    def with_grad(self, q: torch.Tensor) -> torch.Tensor:
        """Evaluate ``Q(q)`` so that gradients flow back to ``q``."""
        if not q.requires_grad:
            return self(q)
        if self.autograd:
            out = _call(self.fn, q)
            if out.requires_grad:
                return out
        return _FiniteDifferenceGrad.apply(q, self(q), self.fn)

    def __repr__(self) -> str:
        return self.name


class numpy_target:  # noqa: N801 (used like a function)
    """Wrap a quantile function on numpy arrays (for example an R function) as a target.

    The wrapped function receives a 1-D float64 numpy array of probabilities and must
    return as many values (array, list or vector). Its derivative, needed only in eval
    mode with running statistics, is taken by finite differences.

    Args:
        fn: the function ``q -> x`` on numpy arrays.
        name: a name for ``repr``.
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], name: str = "function") -> None:
        if not callable(fn):
            raise TypeError(f"`target` must be callable, got {fn!r}")
        self.fn = fn
        self.name = name

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        flat = q.detach().cpu().double().reshape(-1).numpy()
        # a copy: the function may return a read-only array (R vectors through reticulate)
        out = np.array(self.fn(flat), dtype=np.float64).reshape(-1)
        if out.size != flat.size:
            raise ValueError(
                "`target` must return one value per probability: "
                f"given {flat.size} probabilities it returned {out.size} values"
            )
        return torch.from_numpy(out).reshape(q.shape).to(device=q.device, dtype=q.dtype)

    def __repr__(self) -> str:
        return self.name


def _probe(fn: Callable, name: str) -> None:
    """Check ``fn`` on a grid inside (0, 1): right shape, finite, non-decreasing."""
    probe = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    try:
        out = fn(probe)
    except Exception as err:  # report the user's error with the argument's name
        raise ValueError(f"`target` failed on a probe of probabilities in (0, 1): {err}") from err
    if not torch.is_tensor(out):
        try:
            out = torch.as_tensor(np.asarray(out, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(
                f"`target` must return numbers (a tensor or array), got {type(out).__name__}"
            ) from None
    if out.numel() != probe.numel():
        raise ValueError(
            "`target` must return one value per probability (same shape as its input): "
            f"given shape {tuple(probe.shape)} it returned shape {tuple(out.shape)}"
        )
    out = out.detach().reshape(-1).double()
    if not torch.isfinite(out).all():
        raise ValueError(f"`target` ({name}) must be finite on (0, 1); a probe gave non-finite values")
    if (out[1:] < out[:-1] - 1e-9 * (1.0 + out[:-1].abs())).any():
        raise ValueError(
            f"`target` ({name}) must be a non-decreasing quantile function on (0, 1); "
            "a probe found it decreasing"
        )


def _is_unbounded(fn: Callable) -> bool:
    """Whether Q is infinite (or fails) at 0 or 1."""
    try:
        with np.errstate(all="ignore"):  # numpy targets may warn at 0 and 1
            ends = _call(fn, torch.tensor([0.0, 1.0], dtype=torch.float64))
    except Exception:  # noqa: BLE001 (a target undefined at the ends is unbounded there)
        return True
    return not bool(torch.isfinite(ends).all())


def resolve_target(target: Any) -> Target:
    """Turn a name, callable or distribution into a checked :class:`Target`.

    Args:
        target: one of ``"uniform"``, ``"gaussian"`` (alias ``"normal"``), ``"cauchy"``,
            ``"laplace"``, ``"logistic"``, ``"sparse"``; a callable ``q -> x`` on tensors
            in (0, 1); a ``torch.distributions`` object with ``icdf``; or a
            :class:`numpy_target`.

    Returns:
        A :class:`Target`.

    Raises:
        ValueError: unknown name, or a function that returns the wrong shape,
            non-finite or decreasing values on a probe grid.
        TypeError: anything else.
    """
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        key = target.lower()
        if key not in TARGETS:
            raise ValueError(
                f"`target` must be one of {', '.join(repr(k) for k in TARGETS)}, "
                f"a function q -> x or a torch distribution; got {target!r}"
            )
        fn, unbounded = TARGETS[key]
        return Target(fn, key, unbounded, autograd=True)
    if isinstance(target, torch.distributions.Distribution):
        if not hasattr(target, "icdf"):
            raise TypeError("`target` distribution must implement `icdf`")
        fn = target.icdf
        name = type(target).__name__
        autograd = True
    elif isinstance(target, numpy_target):
        fn, name, autograd = target, repr(target), False
    elif callable(target):
        fn = target
        name = getattr(target, "__name__", type(target).__name__)
        autograd = True
    else:
        raise TypeError(
            "`target` must be a name, a function q -> x or a torch distribution, "
            f"got {type(target).__name__}"
        )
    _probe(fn, name)
    return Target(fn, name, _is_unbounded(fn), autograd)
