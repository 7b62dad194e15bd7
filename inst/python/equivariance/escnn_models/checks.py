"""The adapter that lets :func:`equivariance.check_equivariance` check escnn modules.

An escnn module takes and returns ``GeometricTensor``: the adapter wraps the input
in the module's ``in_type``, unwraps the output, and by default transforms both sides
as their field types say (escnn's ``GeometricTensor.transform``). escnn lists the
elements of ``rot2dOnR2(4)`` and ``flipRot2dOnR2(4)`` in the order of
:class:`~equivariance.groups.group.GridGroup`'s elements, so element ``k`` means the
same on both sides.

Imported by :mod:`equivariance.groups.checks` only when it meets an escnn module or
a ``GeometricTensor``; it imports the groups' data, never the checks back.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import torch

from .._validation import as_tensor, check_finite
from ..devices import as_model_input, find_device_dtype
from ..groups.group import ACTIONS, GridGroup, group_action
from . import builders as em

__all__ = ["check_parts"]

Action = Union[str, Callable[[torch.Tensor, int], torch.Tensor]]


def _is_geometric(x: Any) -> bool:
    return type(x).__name__ == "GeometricTensor" and hasattr(x, "type")


def _named(action: Action, side: str, group: GridGroup) -> Callable:
    if callable(action) and not isinstance(action, str):
        return action
    if not isinstance(action, str) or action not in ACTIONS:
        if not isinstance(action, str):
            raise TypeError(f"`{side}` must be a string or a function(x, k), got {action!r}")
        raise ValueError(f'`{side}` must be "auto", "invariant", "rotate", "regular" or a '
                         f"function(x, k), got {action!r}")
    return group_action(action, group)


def _input_tensor(x: Any, module: Any) -> torch.Tensor:
    if _is_geometric(x):
        return check_finite(x.tensor, "x")
    x = as_tensor(x, "x")
    found = find_device_dtype(module)
    if found is not None:
        return as_model_input(x, *found)
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def check_parts(module: Any, x: Any, group: GridGroup, output: Action = "auto",
                input: Action = "auto") -> tuple[Callable, torch.Tensor, Callable, Callable]:
    """What the check runs for an escnn module: ``(call, x, f_in, f_out)``.

    Args:
        module: an escnn ``EquivariantModule`` acting on ``group``.
        x: a ``GeometricTensor`` of ``module.in_type``, or a tensor (or array) to wrap.
        group: the group of the check; it must be the module's.
        output, input: ``"auto"`` (the module's field types), an action name or a
            function ``f(x, k)``.

    Returns:
        ``call`` on plain tensors, the input as a tensor, and the input and output
        actions ``f(x, k)`` on plain tensors.
    """
    in_type = getattr(module, "in_type", None)
    if in_type is None:
        raise TypeError("`module` must be an escnn EquivariantModule when `x` is a GeometricTensor")
    tensor = _input_tensor(x, module)
    em.geometric_tensor(x if _is_geometric(x) else tensor, in_type, name="x")
    elements = em.group_elements(in_type.gspace)
    fibergroup = in_type.gspace.fibergroup
    # the name tells C8 (8 elements) from D4 (8 elements too)
    if len(elements) != group.order or getattr(fibergroup, "name", None) != group.name:
        raise ValueError(
            f"`module` acts on {fibergroup}, not on `group` {group.name}: check it with the "
            "group of its gspace (only C4 and D4 are supported)"
        )

    def call(t: torch.Tensor) -> torch.Tensor:
        y = module(em.geometric_tensor(t, in_type, name="x"))
        return y.tensor if _is_geometric(y) else y

    def field_action(field_type: Any) -> Callable:
        def act(t: torch.Tensor, k: int) -> torch.Tensor:
            return em.geometric_tensor(t, field_type).transform(elements[k]).tensor
        return act

    f_in = field_action(in_type) if input == "auto" else _named(input, "input", group)
    f_out = field_action(module.out_type) if output == "auto" else _named(output, "output", group)
    return call, tensor, f_in, f_out
