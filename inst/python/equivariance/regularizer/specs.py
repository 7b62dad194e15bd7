"""Parsing of the regularizer's arguments: transforms and bounds.

Every rule about what ``transforms`` and ``bounds`` accept lives here, once; the R
layer passes its values through and shows these messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .._validation import nonnegative_real

__all__: list[str] = []


@dataclass(frozen=True)
class TransformSpec:
    """One parsed transform: output map, input map, threshold and weight."""

    f_out: Callable
    f_in: Callable
    epsilon: float
    lambda_eq: float
    label: str


def _real(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    return nonnegative_real(value, name)


def _label(f: Callable, position: int) -> str:
    from .transforms import Transform  # the transforms module imports nothing from here

    if isinstance(f, Transform):
        return repr(f)
    name = getattr(f, "__name__", None)
    if (
        isinstance(name, str)
        and name.isidentifier()
        and name not in ("<lambda>", "python_function")
    ):
        return name
    return f"transform {position}"


def parse_transform(item: Any, index: int) -> TransformSpec:
    """Validate one transform ``(f_out, f_in, epsilon, lambda_eq)`` or ``(f, epsilon,
    lambda_eq)`` (``index`` counts from 0 and is used in messages)."""
    where = f"`transforms[{index}]`"
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
        raise TypeError(
            f"{where} must be a tuple (f_out, f_in, epsilon, lambda_eq) or "
            f"(f, epsilon, lambda_eq), got {type(item).__name__}"
        )
    if len(item) not in (3, 4):
        raise ValueError(
            f"{where} must have 3 elements (f, epsilon, lambda_eq) or 4 elements "
            f"(f_out, f_in, epsilon, lambda_eq), got {len(item)}"
        )
    funcs, (epsilon, lambda_eq) = item[:-2], item[-2:]
    for j, f in enumerate(funcs):
        if not callable(f):
            role = "f" if len(funcs) == 1 else ("f_out", "f_in")[j]
            raise TypeError(f"{where}: `{role}` must be callable, got {type(f).__name__}")
    # Plain names: the validators put the backticks around them.
    epsilon = _real(epsilon, f"transforms[{index}] epsilon")
    lambda_eq = _real(lambda_eq, f"transforms[{index}] lambda_eq")
    if len(funcs) == 1:
        label = _label(funcs[0], index + 1)
        return TransformSpec(funcs[0], funcs[0], epsilon, lambda_eq, label)
    f_out, f_in = funcs
    label = f"{_label(f_out, index + 1)} | {_label(f_in, index + 1)}"
    return TransformSpec(f_out, f_in, epsilon, lambda_eq, label)


def parse_transforms(transforms: Any) -> list[TransformSpec]:
    """Validate the whole list of transforms."""
    if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
        raise TypeError(
            "`transforms` must be a list of tuples (f_out, f_in, epsilon, lambda_eq) "
            f"or (f, epsilon, lambda_eq), got {type(transforms).__name__}"
        )
    if len(transforms) == 0:
        raise ValueError("`transforms` must contain at least one transform, got an empty list")
    if callable(transforms[0]) and not isinstance(transforms[0], Sequence):
        raise TypeError(
            "`transforms` must be a list of transform tuples; got a single tuple. "
            "Wrap it in a list: [(f, epsilon, lambda_eq)]"
        )
    return [parse_transform(t, i) for i, t in enumerate(transforms)]


def parse_bounds(bounds: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """Return bounds as a float64 tensor of shape ``shape + (2,)`` (lower, upper)."""
    try:
        if isinstance(bounds, torch.Tensor):
            b = bounds.detach().to("cpu", torch.float64)
        else:
            b = torch.as_tensor(np.array(bounds, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`bounds` must be numbers, e.g. [0, 1] or an array whose last dimension is 2: {err}"
        ) from None
    if b.dim() == 0 or b.shape[-1] != 2:
        raise ValueError(
            f"`bounds` must have a last dimension of 2 (lower, upper), got shape {tuple(b.shape)}"
        )
    try:
        b = torch.broadcast_to(b, shape + (2,)).clone()
    except RuntimeError:
        raise ValueError(
            f"`bounds` of shape {tuple(b.shape)} is not broadcastable to shape + (2,) = "
            f"{shape + (2,)}"
        ) from None
    bad = b[~torch.isfinite(b)]
    if bad.numel():
        raise ValueError(f"`bounds` must be finite numbers, got a bound of {bad[0].item()}")
    above = b[..., 0] > b[..., 1]
    if above.any():
        lower, upper = b[..., 0][above][0].item(), b[..., 1][above][0].item()
        raise ValueError(
            "`bounds`: a lower bound is above its upper bound, got lower "
            f"{lower:g} > upper {upper:g}"
        )
    return b
