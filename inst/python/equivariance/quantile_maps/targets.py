"""Target distributions for the quantile maps, given by their quantile functions.

A target is a non-decreasing function ``Q`` on (0, 1): the quantile function (inverse
CDF) of the distribution the activations are mapped onto. It may be one of the names
in :data:`TARGETS`, a callable ``q -> x`` on tensors, a ``torch.distributions`` object
with ``icdf``, or (through :func:`numpy_target`) a function on numpy arrays such as an
R function. :func:`resolve_target` turns any of these into a :class:`Target` after
checking it on a probe grid; every later evaluation is checked again for non-finite
values, so a target that returns NaN (an R ``NA``) is an error, not a silent output.

A :class:`Target` pickles with its function, which works for named functions and
distributions; a lambda, a local function or an R function cannot be pickled, and
pickling a module that holds one raises a ``TypeError`` that says to save the
module's ``state_dict()`` instead.
"""

from __future__ import annotations

import math
import pickle
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


def _numbers(out: Any) -> Any:
    """Refuse logical results: an R ``NA`` arrives as ``True``, which would read as 1."""
    if torch.is_tensor(out):
        logical = out.dtype == torch.bool
    else:
        try:
            logical = np.asarray(out).dtype.kind == "b"
        except (TypeError, ValueError):  # not an array: the caller's conversion says so
            logical = False
    if logical:
        raise ValueError(
            "`target` must return numbers, got logical values (an R NA is logical: "
            "a quantile function must give a number for every probability in (0, 1))"
        )
    return out


def _call(fn: Callable, q: torch.Tensor) -> torch.Tensor:
    """Call a quantile function and return a tensor like ``q`` (same shape and dtype)."""
    out = _numbers(fn(q))
    if not torch.is_tensor(out):
        out = torch.as_tensor(np.asarray(out, dtype=np.float64))
    if out.numel() != q.numel():
        raise ValueError(
            "`target` must return one value per probability: "
            f"given {q.numel()} probabilities it returned {out.numel()} values"
        )
    return out.reshape(q.shape).to(device=q.device, dtype=q.dtype)


def _finite(out: torch.Tensor, q: torch.Tensor, name: str) -> torch.Tensor:
    """``out`` if every value is finite, else a ValueError naming ``target``."""
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        at = q.detach().reshape(-1)[bad.reshape(-1)][:3].tolist()
        raise ValueError(
            f"`target` ({name}) must return finite numbers on (0, 1), got NaN or "
            f"infinite values at probabilities {at}"
        )
    return out


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
        """Evaluate ``Q(q)`` without gradient tracking. Shape: same as ``q``.

        Raises:
            ValueError: ``Q`` returned NaN or infinite values (``q`` must lie in (0, 1)).
        """
        with torch.no_grad():
            return _finite(_call(self.fn, q), q, self.name)

    def with_grad(self, q: torch.Tensor) -> torch.Tensor:
        """Evaluate ``Q(q)`` so that gradients flow back to ``q`` (checked as ``__call__``)."""
        if not q.requires_grad:
            return self(q)
        if self.autograd:
            out = _call(self.fn, q)
            if out.requires_grad:
                return _finite(out, q, self.name)
        return _FiniteDifferenceGrad.apply(q, self(q), self.fn)

    def __reduce__(self) -> tuple:
        """Pickle with the function, or say why it cannot be saved (a lambda, an R function)."""
        try:
            pickle.dumps(self.fn)
        except Exception as err:  # noqa: BLE001 (pickle raises several kinds)
            raise TypeError(
                f"`target` ({self.name}) cannot be saved with the module: its function "
                f"cannot be pickled ({type(err).__name__}: {err}); a lambda, a local "
                "function or an R function never can. Save the weights with "
                "`torch.save(module.state_dict(), path)` and load them into a module "
                "built with the same target (`load_state_dict`)."
            ) from None
        return (Target, (self.fn, self.name, self.unbounded, self.autograd))

    def __copy__(self) -> Target:
        return self  # immutable: copies share it, as they would share a function

    def __deepcopy__(self, memo: dict) -> Target:
        return self

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
        """Call the function on ``q`` as a float64 numpy array. Shape: same as ``q``."""
        flat = q.detach().cpu().double().reshape(-1).numpy()
        # a copy: the function may return a read-only array (R vectors through reticulate)
        out = np.array(_numbers(self.fn(flat)), dtype=np.float64).reshape(-1)
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
        out = _numbers(fn(probe))
    except Exception as err:  # report the user's error with the argument's name
        if str(err).startswith("`target`"):  # already says what is wrong
            raise
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
        raise ValueError(
            f"`target` ({name}) must be finite on (0, 1); a probe gave non-finite values"
        )
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
