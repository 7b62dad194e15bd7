"""Argument checks shared by the whole core.

Every public constructor validates its arguments here so that a user gets one kind
of message everywhere: the argument's name and what was expected.
"""

from __future__ import annotations

import contextvars
import inspect
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def is_whole_number(value: Any) -> bool:
    """True for Python/numpy integers and for floats holding a whole value (not bools)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Integral):
        return True
    if isinstance(value, numbers.Real):
        return float(value).is_integer()
    return False


def is_real_number(value: Any) -> bool:
    """True for a real number of any kind: Python's, numpy's scalars (``np.float32(0.25)``,
    ``np.int64(3)``), a 0-d numpy array or a one-element tensor of a real dtype; not
    for booleans.

    Every rule about numbers tests this, never ``isinstance(value, (int, float))``,
    which refuses numpy's scalars.
    """
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.dtype.kind in "iuf"
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dim() == 0:
        return not value.dtype.is_complex and value.dtype != torch.bool
    return False


def as_real(value: Any) -> float:
    """:func:`is_real_number` ``value`` as a Python float."""
    return float(value.item() if hasattr(value, "item") else value)


def positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` if it is a whole number >= 1, else raise."""
    if not is_whole_number(value) or int(value) < 1:
        raise ValueError(f"`{name}` must be a positive whole number, got {value!r}")
    return int(value)


def positive_ints(value: Any, name: str, length: int) -> tuple[int, ...]:
    """``length`` positive whole numbers (a network's widths), as a tuple of ``int``.

    Args:
        value: a sequence (list, tuple, array) of whole numbers; a string is refused.
        name: the argument's name, for messages.
        length: the number of entries required.

    Returns:
        The numbers as a tuple.
    """
    if isinstance(value, (str, bytes)):
        items = None
    else:
        try:
            items = tuple(value)
        except TypeError:
            items = None
    if items is None:
        raise TypeError(f"`{name}` must be a sequence of {length} positive whole numbers, "
                        f"got {value!r}")
    if len(items) != length:
        raise ValueError(f"`{name}` must have {length} entries, got {len(items)}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(items))


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
    if not is_real_number(value):
        raise TypeError(f"`{name}` must be a non-negative number, got {value!r}")
    value = as_real(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative finite number, got {value!r}")
    return value


def positive_real(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real > 0, else raise."""
    if not is_real_number(value):
        raise TypeError(f"`{name}` must be a positive number, got {value!r}")
    value = as_real(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    return value


def flag(value: Any, name: str) -> bool:
    """Return ``value`` as a bool if it is ``True``/``False`` (a numpy ``bool_`` too).

    Nothing else passes: the string ``"False"`` or the number 0 must not be taken as a
    flag (``bool("False")`` is ``True``).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}")
    return bool(value)


def optional_flag(value: Any, name: str) -> bool | None:
    """``None`` or :func:`flag`."""
    if value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be None, True or False, got {value!r}")
    return bool(value)


#: The seeds torch's generators take: whole numbers from 0 to 2**64 - 1.
SEED_MAX = 2**64 - 1


def seed(value: Any, name: str = "seed") -> int | None:
    """``None`` or a whole number in ``[0, SEED_MAX]``, as an ``int``."""
    if value is None:
        return None
    if not is_whole_number(value) or not 0 <= int(value) <= SEED_MAX:
        raise ValueError(
            f"`{name}` must be None or a whole number from 0 to 2**64 - 1 "
            f"(18446744073709551615), got {value!r}"
        )
    return int(value)


def optional_callable(value: Any, name: str, expected: str, arity: int | None = None) -> Any:
    """``None`` or a callable (of ``arity`` positional arguments when given);
    ``expected`` says what is accepted."""
    if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be {expected}, got {type(value).__name__}")
    return value if value is None or arity is None else check_arity(value, arity, name)


def function_list(value: Any, name: str, arity: int | None = None) -> list:
    """``None`` (no function), a function, or a list or tuple of functions, as a list;
    with ``arity``, each must accept that many positional arguments."""
    if value is None:
        return []
    items = [value] if callable(value) else value
    if not isinstance(items, (list, tuple)) or not all(callable(f) for f in items):
        raise TypeError(f"`{name}` must be None or a list of functions, got {value!r}")
    for f in items if arity is not None else ():
        check_arity(f, arity, name)
    return list(items)


def check_arity(f: Any, arity: int, name: str) -> Any:
    """``f`` if it can be called with ``arity`` positional arguments, else a TypeError
    naming ``name``, so that a function of the wrong shape fails before the work and
    not deep inside it. Callables whose signature cannot be read pass."""
    try:
        signature = inspect.signature(f)
    except (TypeError, ValueError):  # builtins, some wrappers: nothing to check
        return f
    try:
        signature.bind(*([None] * arity))
    except TypeError:
        taken = [p.name for p in signature.parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        raise TypeError(f"`{name}` must be a function of {arity} argument(s), got a function "
                        f"of ({', '.join(taken)})") from None
    return f


def class_names_list(value: Any, name: str = "class_names") -> list[str] | None:
    """``None`` or a non-empty sequence of distinct non-empty strings, as plain strings."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(n, str) and n for n in value) or len(set(value)) != len(value):
        raise ValueError(f"`{name}` must be None or a list of distinct non-empty strings, "
                         f"got {value!r}")
    return [str.__str__(n) for n in value]  # numpy's str_ is a subclass


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` if every element is finite (no NaN, no infinity), else raise."""
    if (x.is_floating_point() or x.is_complex()) and x.numel():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(
                f"`{name}` must hold finite numbers only, got {bad} NaN or infinite "
                f"value(s) among {x.numel()}"
            )
    return x


def as_tensor(value: Any, name: str, *, dims: int | None = None, min_dims: int = 1) -> torch.Tensor:
    """A tensor argument: converted from an array if needed, its shape and values checked.

    Args:
        value: a tensor, a numpy array or a (nested) sequence of numbers.
        name: the argument's name, for messages.
        dims: the exact number of dimensions required (``None``: at least ``min_dims``).
        min_dims: the least number of dimensions.

    Returns:
        A tensor of finite numbers (its dtype kept: the caller converts it to the
        model's, see :func:`equivariance.devices.as_model_input`).
    """
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"`{name}` must be a tensor or an array of numbers, got {type(value).__name__}"
            ) from None
    if dims is not None and value.dim() != dims:
        raise ValueError(f"`{name}` must have {dims} dimensions, got shape {tuple(value.shape)}")
    if value.dim() < min_dims:
        raise ValueError(
            f"`{name}` must have at least {min_dims} dimension(s), got shape {tuple(value.shape)}"
        )
    return check_finite(value, name)


def unit_interval(value: Any, name: str, allow_none: bool = False) -> float | None:
    """Return ``value`` as a float if it is a number in [0, 1] (or None when allowed)."""
    if value is None and allow_none:
        return None
    expected = "a number in [0, 1]" + (" or None" if allow_none else "")
    if not is_real_number(value):
        raise TypeError(f"`{name}` must be {expected}, got {value!r}")
    if not 0.0 <= as_real(value) <= 1.0:  # False for NaN too
        raise ValueError(f"`{name}` must be {expected}, got {value!r}")
    return as_real(value)


def quarter_turns(value: Any, name: str = "rotations") -> list[int]:
    """A whole number or a non-empty sequence of them, each 0, 1, 2 or 3 quarter turns.

    Degrees (90, 180, ...) and other numbers are rejected rather than reduced modulo
    4: ``[45]`` is not 45 quarter turns.
    """
    if is_whole_number(value):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, range)):
        raise TypeError(
            f"`{name}` must be a sequence of quarter turns 0, 1, 2 or 3 (for 0, 90, 180 "
            f"and 270 degrees), got {value!r}"
        )
    items = list(value)
    if not items or not all(is_whole_number(k) and 0 <= int(k) <= 3 for k in items):
        raise ValueError(
            f"`{name}` must be a non-empty sequence of quarter turns 0, 1, 2 or 3 (for 0, "
            f"90, 180 and 270 degrees), got {value!r}"
        )
    return [int(k) for k in items]


def output_file(value: Any, name: str) -> str:
    """``value`` as a file path to write (``~`` expanded), checked before any work.

    Raises:
        TypeError: not a string or path.
        ValueError: a folder, a file in a folder that does not exist, or where no file
            can be created (read-only, immutable, not a folder): see
            :func:`equivariance._files.output_path`.
    """
    from ._files import output_path  # one rule for every output path

    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise TypeError(f"`{name}` must be a file path (a string), got {value!r}")
    return output_path(value, name)


#: Where the caller counts class labels from: 0 for Python callers, 1 while the R
#: layer calls the core (its ``call_py()`` sets it for the duration of the call),
#: so that a message about labels counts them as its reader does.
#: The environment variable that hands it on to worker processes (``"1"``: from 1).
LABEL_BASE_ENV = "EQUIVARIANCE_LABEL_BASE"
LABEL_BASE: contextvars.ContextVar[int] = contextvars.ContextVar(
    "label_base", default=1 if os.environ.get(LABEL_BASE_ENV) == "1" else 0)


def caller_label(label: int) -> int:
    """The 0-based class ``label`` as the caller counts it (from 1 for R callers)."""
    return int(label) + LABEL_BASE.get()


def labels_out_of_range(name: str, classes: int, low: int, high: int) -> str:
    """The message for 0-based labels ``low..high`` beyond a model's ``classes`` logits.

    Args:
        name: the argument that holds the labels.
        classes: the number of logits the model returns.
        low, high: the smallest and largest label given, counted from 0.

    Returns:
        The message, in the caller's count (from 1 for R callers).
    """
    if LABEL_BASE.get() == 1:
        return (f"`{name}`: labels must be classes 1 to {classes} (the model returns "
                f"{classes} logits), got labels from {low + 1} to {high + 1}")
    hint = ("; labels from 1? In Python classes count from 0 (subtract 1); in R "
            "fit_model() takes labels from 1 or a factor") if low >= 1 and high == classes else ""
    return (f"`{name}`: labels must be class indices from 0 to {classes - 1} (the model "
            f"returns {classes} logits; in R, classes 1 to {classes}), got labels from "
            f"{low} to {high}{hint}")
