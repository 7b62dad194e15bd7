"""The layers of a group by role: its own twin classes for C4 and D4.

A network built for a group (:class:`~equivariance.GroupCNN`) asks here for its
lifting convolution, group convolution, batch norm, pooling and invariant head. C4
and D4 answer with their twin classes (:mod:`.c4`, :mod:`.d4`), so that a ``C4CNN``
prints and summarises as ``C4LiftingConv2d``, ``C4Conv2d``, ...; any other
:class:`~.group.GridGroup` gets the generic layers of :mod:`.layers` with the group
fixed. Either way the layers are the same code: the twins only fix the group.
"""

from __future__ import annotations

import functools
from typing import Callable

from . import c4, d4
from .group import GridGroup, get_group
from .layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupInvariantLinear,
    GroupLiftingConv2d,
    GroupMaxPool2d,
)

__all__ = ["twin_layers"]

ROLES = ("lifting", "conv", "batch_norm", "max_pool", "invariant_linear")

_TWINS = {
    "C4": (c4.C4LiftingConv2d, c4.C4Conv2d, c4.C4BatchNorm2d, c4.C4MaxPool2d,
           c4.C4InvariantLinear),
    # D4 has no head class of its own: the generic one with D4, as D4CNN always had
    "D4": (d4.D4LiftingConv2d, d4.D4Conv2d, d4.D4BatchNorm2d, d4.D4MaxPool2d, None),
}


def twin_layers(group: str | GridGroup) -> dict[str, Callable]:
    """Constructors of ``group``'s layers by role, without the group argument.

    Args:
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.

    Returns:
        ``{"lifting", "conv", "batch_norm", "max_pool", "invariant_linear"}`` to
        callables taking the arguments of the generic layers after ``group``.
    """
    g = get_group(group)
    generic = (functools.partial(GroupLiftingConv2d, g), functools.partial(GroupConv2d, g),
               functools.partial(GroupBatchNorm2d, g), GroupMaxPool2d,
               functools.partial(GroupInvariantLinear, g))
    own = _TWINS.get(g.name) if g in (get_group("C4"), get_group("D4")) else None
    chosen = generic if own is None else [o or gen for o, gen in zip(own, generic)]
    return dict(zip(ROLES, chosen))
