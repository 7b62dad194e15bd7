"""Models and layers that :func:`~equivariance.save_model` saves with their architecture.

A class joins by the :func:`register` decorator at its definition::

    @register
    class C4CNN(GroupCNN):
        ...

It is registered under its public name (the class name, e.g. ``"C4CNN"``), which is
what a model file records: moving a class to another module changes nothing for the
files saved before. Its instances remember the arguments they were built with
(checked by the constructor, then recorded as plain values), so a file can rebuild
them. Files written by earlier versions named the module path
(``"equivariance.networks.C4CNN"``); :func:`lookup` reads them by the class name.

Families that are slow to import (escnn's, :data:`DEFERRED_PACKAGES`) register their
classes when they are imported; :func:`lookup` imports them when a file names a class
not registered yet. Nothing here imports the rest of the package.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import numbers
from typing import Any, Callable

import torch

from ._sizes import guarded_init

__all__ = ["register", "lookup", "public_name", "recorded", "encode", "decode"]

#: public name -> class
REGISTRY: dict[str, type] = {}

#: packages whose classes register when imported, imported by :func:`lookup` on demand
DEFERRED_PACKAGES = ("equivariance.escnn_models",)

#: instance attribute holding ``(class, {name: value})`` or ``(class, reason)``
RECORD = "_equivariance_init"

_PACKAGE = __name__.split(".")[0]


def register(cls: type | None = None, *, name: str | None = None) -> type | Callable:
    """Class decorator: save instances of ``cls`` with their architecture.

    ``cls.__init__`` is wrapped so that an instance of exactly ``cls`` keeps, after the
    constructor ran, the arguments it was called with; a subclass has arguments of
    its own and is saved with its weights only unless it is registered too. A later
    registration under the same name replaces the earlier one (a module imported
    again, or moved), except that a class outside this package cannot take the name
    of one of the package's own.

    Args:
        cls: the ``nn.Module`` subclass (when used as ``@register``).
        name: the public name to record in files; the class name by default.

    Returns:
        ``cls`` itself (or a decorator, when called with ``name`` only).
    """
    def decorate(klass: type) -> type:
        key = name or klass.__name__
        previous = REGISTRY.get(key)
        if (previous is not None and previous.__module__.startswith(_PACKAGE + ".")
                and not klass.__module__.startswith(_PACKAGE + ".")):
            raise ValueError(f"`name`: {key!r} is the name of equivariance's own {key}; "
                             "register this class under another name")
        REGISTRY[key] = klass
        if getattr(klass.__init__, "_equivariance_records", None) is not klass:
            klass.__init__ = _recording_init(klass, klass.__init__)
        return klass

    return decorate if cls is None else decorate(cls)


def public_name(cls: type) -> str | None:
    """The name ``cls`` is registered under, or ``None`` if it is not registered."""
    for key, klass in REGISTRY.items():
        if klass is cls:
            return key
    return None


def recorded(model: Any) -> tuple | None:
    """``(class, arguments)`` or ``(class, reason they could not be recorded)``, if any."""
    return getattr(model, RECORD, None)


def lookup(name: Any) -> type:
    """The registered class a model file names: a public name or an old module path.

    Args:
        name: ``"C4CNN"``, or ``"equivariance.networks.C4CNN"`` from an older file.

    Returns:
        The class.

    Raises:
        ValueError: no registered class has that name.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"malformed class name {name!r} in the model file")
    key = name.rsplit(".", 1)[-1]
    if key not in REGISTRY:
        for package in DEFERRED_PACKAGES:
            try:
                importlib.import_module(package)
            except ImportError:  # pragma: no cover - escnn missing
                continue
    if key not in REGISTRY:
        raise ValueError(f"the model file names class {name!r}, which this version of "
                         "equivariance cannot build")
    return REGISTRY[key]


def _recording_init(cls: type, init: Callable) -> Callable:
    signature = inspect.signature(init)
    build = guarded_init(init, signature)  # sizes that cannot fit are refused (see _sizes)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        if type(self) is cls:
            object.__setattr__(self, RECORD, _record(cls, signature, self, args, kwargs))

    __init__._equivariance_records = cls  # type: ignore[attr-defined]
    return __init__


def _record(cls: type, signature: inspect.Signature, self: Any, args: tuple,
            kwargs: dict) -> tuple:
    bound = signature.bind(self, *args, **kwargs)
    bound.apply_defaults()  # explicit values: a later change of a default cannot alter the model
    arguments = dict(list(bound.arguments.items())[1:])  # without self
    try:
        return (cls, {key: encode(value, key) for key, value in arguments.items()})
    except Unrecordable as why:
        return (cls, str(why))


class Unrecordable(Exception):
    """A constructor argument that a model file cannot hold."""


def encode(value: Any, where: str) -> Any:
    """A constructor argument as plain values that ``torch.load(weights_only=True)`` reads.

    Numbers, strings, ``None`` and lists, tuples and string-keyed dicts of them are
    kept; dtypes become ``{"__dtype__": name}``; devices become ``None`` (a model is
    built on the CPU and moved after loading). Anything else (a function, a
    distribution object) cannot be recorded.

    Args:
        value: the argument.
        where: its name, for the message of :class:`Unrecordable`.

    Returns:
        The plain value.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    # subclasses (enums, numpy scalars, torch's version string) as the plain type: the
    # safe loader refuses any other class
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain.__str__(value) if plain is str else plain(value)
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).replace("torch.", "")}
    if isinstance(value, torch.device):
        return None
    if isinstance(value, (list, tuple)):
        items = [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if hasattr(value, "__index__") and not hasattr(value, "shape"):
        return int(value.__index__())  # numpy integers
    if isinstance(value, numbers.Real) and not hasattr(value, "shape"):
        return float(value)  # numpy floats
    kind = "function" if callable(value) else type(value).__name__
    raise Unrecordable(f"argument {where} is a {kind}, which a model file cannot hold")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`.

    Args:
        value: a plain value read from a model file.

    Returns:
        The argument (dtypes restored).
    """
    if isinstance(value, dict):
        if set(value) == {"__dtype__"}:
            dtype = getattr(torch, str(value["__dtype__"]), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"unknown dtype {value['__dtype__']!r} in the model file")
            return dtype
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(decode(v) for v in value)
    return value
