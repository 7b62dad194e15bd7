"""Argument checks shared by the whole core.

Every public constructor validates its arguments here so that a user gets one kind
of message everywhere: the argument's name and what was expected.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def is_whole_number(value: Any) -> bool:
    """True for Python/numpy integers and for floats holding a whole value (not bools)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Integral):
        return True
    if isinstance(value, numbers.Real):
        return float(value).is_integer()
    return False


def positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= 1, else raise."""
    if not is_whole_number(value) or int(value) < 1:
        raise ValueError(f"`{name}` must be a positive whole number, got {value!r}")
    return int(value)


def nonnegative_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= 0, else raise."""
    if not is_whole_number(value) or int(value) < 0:
        raise ValueError(f"`{name}` must be a non-negative whole number, got {value!r}")
    return int(value)


def shape_tuple(value: Any, name: str) -> tuple[int, ...]:
    """Return ``value`` as a tuple of positive ints (a single int is a 1-D shape)."""
    if is_whole_number(value):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of positive whole numbers, got {value!r}"
        ) from None
    if len(items) == 0 or not all(is_whole_number(v) and int(v) >= 1 for v in items):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of positive whole numbers, got {value!r}"
        )
    return tuple(int(v) for v in items)


def nonnegative_real(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real >= 0, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a non-negative number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative finite number, got {value!r}")
    return value


def positive_real(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real > 0, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return value
