"""equivariance: tools for neural networks that respect symmetries.

The public API is flat: every name in the ``__all__`` of the modules listed in
``_FLAT_MODULES`` is available as ``equivariance.<name>``, and ``__all__`` here is
built from theirs, so a new public name is declared once, in the module that owns
it. Transforms and distances stay in their namespaces (``equivariance.transforms
.rot90``, ``equivariance.distances.p_distance``): their short names would read
ambiguously at the top level.

Importing this package does not import escnn: :mod:`equivariance.escnn_models` loads
it on first access.
"""

from __future__ import annotations

import importlib

from . import (
    benchmark,
    c4,
    checks,
    data,
    distances,
    memory,
    networks,
    quantile_maps,
    regularizer,
    training,
    transforms,
)

__version__ = "0.1.0"

_FLAT_MODULES = (regularizer, quantile_maps, c4, networks, checks, data, training, benchmark, memory)

# `c4.rotate(x, k)` turns by quarter turns; at the top level `rotate(x, 45)` would read
# as degrees, so it stays `equivariance.c4.rotate` (degrees: `transforms.rotate`).
_NAMESPACED_ONLY = frozenset({"rotate"})

_MODULE_NAMES = [
    "benchmark",
    "c4",
    "checks",
    "data",
    "distances",
    "escnn_models",
    "memory",
    "networks",
    "quantile_maps",
    "regularizer",
    "training",
    "transforms",
]


def _flat_names() -> list[str]:
    names: dict[str, str] = {}
    for module in _FLAT_MODULES:
        for name in module.__all__:
            if name in _NAMESPACED_ONLY:
                continue
            owner = names.setdefault(name, module.__name__)
            if owner != module.__name__:
                raise ImportError(f"{name!r} is public in both {owner} and {module.__name__}")
            globals()[name] = getattr(module, name)
    return list(names)


__all__ = _flat_names() + _MODULE_NAMES


def __getattr__(name: str):
    """Import :mod:`equivariance.escnn_models` (and so escnn) on first access only."""
    if name == "escnn_models":
        return importlib.import_module(".escnn_models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
