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
import sys

# Transforms and distances live in the regularizer's family but are public under
# their short module names too (`equivariance.transforms.rot90`); registering the
# aliases first lets the other modules import them as `from . import transforms`.
from .regularizer import distances, transforms

sys.modules[f"{__name__}.transforms"] = transforms
sys.modules[f"{__name__}.distances"] = distances

from . import (  # noqa: E402  (after the aliases above)
    benchmark,
    checks,
    data,
    groups,
    memory,
    models,
    persistence,
    prediction,
    quantile_maps,
    regularizer,
    summary,
    training,
)
from .groups import c4  # noqa: E402
from .training import parallel  # noqa: E402

__version__ = "0.1.0"

_FLAT_MODULES = (
    regularizer, quantile_maps, c4, models.networks, checks, data.fashion_mnist, data.folders,
    training.loop, training.evaluation, training.history, benchmark, memory,
    prediction, persistence, summary, parallel.distributed, parallel.launch,
    groups.group, groups.layers, groups.d4, models.group_networks, groups.checks,
)

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
    "groups",
    "memory",
    "models",
    "persistence",
    "prediction",
    "quantile_maps",
    "regularizer",
    "summary",
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
