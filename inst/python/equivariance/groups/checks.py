"""Numerical equivariance checks for any :class:`~.group.GridGroup` (C4, D4).

:func:`check_equivariance_group` applies every element of the group to an input,
runs the module on it, applies the matching action to the untransformed output, and
reports the relative distance for each element, by name.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from .group import GridGroup, get_group, grid_transform, regular_transform

__all__ = ["check_equivariance_group", "group_action"]

Action = Union[str, Callable[[torch.Tensor, int], torch.Tensor]]
ACTIONS = ("invariant", "rotate", "regular")


def group_action(action: str, group: Union[str, GridGroup] = "D4") -> Callable:
    """The named action ``f(x, element)`` of ``group`` on a tensor.

    Args:
        action: ``"invariant"`` (unchanged), ``"rotate"`` (maps transformed on the
            grid: rotated, and mirrored for the mirror elements) or ``"regular"``
            (maps transformed and each regular field's channels permuted).
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.

    Returns:
        A function of a tensor and an element index.
    """
    g = get_group(group)
    if action == "invariant":
        return lambda x, e: x
    if action == "rotate":
        return lambda x, e: grid_transform(x, e, g)
    if action == "regular":
        return lambda x, e: regular_transform(x, e, g)
    raise ValueError(f'`action` must be one of "invariant", "rotate", "regular", got {action!r}')


def _declared(module: Any, side: str, group: GridGroup) -> Optional[str]:
    """The action a module declares on ``side`` ("input"/"output"), if any.

    Group layers carry ``group_input``/``group_output``; the C4 layers
    ``c4_input``/``c4_output``, read only when checking C4. A ``nn.Sequential`` takes
    its first declaring child's input and its last declaring child's output.
    """
    declared = getattr(module, f"group_{side}", None)
    if declared is not None:
        own = getattr(module, "group", None)
        if declared == "regular" and isinstance(own, GridGroup) and own != group:
            raise ValueError(
                f"`group`: {type(module).__name__} acts on regular {own.name} fields; "
                f'check it with group = "{own.name}", got "{group.name}"'
            )
        return declared
    if group.name == "C4" and getattr(module, f"c4_{side}", None) is not None:
        return getattr(module, f"c4_{side}")
    if isinstance(module, nn.Sequential):
        children = list(module.children())
        for child in children if side == "input" else reversed(children):
            declared = _declared(child, side, group)
            if declared is not None:
                return declared
    return None


def _resolve(action: Action, module: Any, side: str, group: GridGroup) -> Optional[Callable]:
    """``f(x, e)`` for ``action``; ``None`` when ``"auto"`` finds no declaration."""
    if callable(action) and not isinstance(action, str):
        return action
    if not isinstance(action, str):
        raise TypeError(f"`{side}` must be a string or a function(x, element), got {action!r}")
    if action not in ACTIONS + ("auto",):
        raise ValueError(f'`{side}` must be "auto", "invariant", "rotate", "regular" or a '
                         f"function(x, element), got {action!r}")
    if action == "auto":
        action = _declared(module, side, group)
        if action is None:
            return None
    return group_action(action, group)


def _relative_error(actual: torch.Tensor, expected: torch.Tensor, scale: float) -> float:
    if actual.shape != expected.shape:
        raise ValueError(
            f"the output of the transformed input has shape {tuple(actual.shape)} but the "
            f"transformed output has shape {tuple(expected.shape)}: is `output` right?"
        )
    diff = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    return diff / scale if scale > 0 else diff


def check_equivariance_group(module: Callable, x: Any, group: Union[str, GridGroup] = "D4",
                             output: Action = "auto", input: Action = "auto") -> dict:
    """Error of ``module(g x)`` against ``g module(x)`` for every element ``g``.

    The error is ``max |module(g x) - g module(x)|`` divided by ``max |module(x)|``:
    0 for an exactly equivariant module, about 1e-7 from float32 rounding. Each
    element runs in its own forward pass in the module's current mode, without
    gradients; buffers (batch-norm running statistics) are restored after each pass.

    Args:
        module: a torch module or any callable on tensors.
        x: input batch (a tensor, or anything ``torch.as_tensor`` takes).
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.
        output: action on the output: ``"invariant"``, ``"rotate"``, ``"regular"``,
            a function ``f(y, element)``, or ``"auto"``: the module's declaration,
            else ``"invariant"`` for outputs with fewer than 3 dimensions and
            ``"rotate"`` otherwise.
        input: action on the input, the same choices (``"auto"``: the module's
            declaration, else ``"rotate"``).

    Returns:
        ``{element name: relative error}`` in the group's element order, e.g.
        ``rot0, rot90, rot180, rot270, flip_rot0, ..., flip_rot270`` for D4.
    """
    g = get_group(group)
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"`x` must be a tensor or an array, got {type(x).__name__}") from None
    if not callable(module):
        raise TypeError(f"`module` must be a torch module or a function, got {module!r}")
    f_in = _resolve(input, module, "input", g) or group_action("rotate", g)
    f_out = _resolve(output, module, "output", g)
    saved = ({n: b.detach().clone() for n, b in module.named_buffers()}
             if isinstance(module, nn.Module) else {})

    def restore() -> None:
        with torch.no_grad():
            for n, b in module.named_buffers():
                if n in saved:
                    b.copy_(saved[n])

    errors = {}
    try:
        with torch.no_grad():
            y = module(x)
            if f_out is None:
                f_out = group_action("invariant" if y.dim() < 3 else "rotate", g)
            scale = y.abs().max().item() if y.numel() else 0.0
            for e, name in enumerate(g.names):
                restore()  # the same running statistics for every element
                errors[name] = _relative_error(module(f_in(x, e)), f_out(y, e), scale)
    finally:
        restore()
    return errors
