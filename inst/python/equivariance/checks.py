"""Numerical equivariance checks for C4 (rotations by multiples of 90 degrees) and D4.

:func:`check_equivariance` applies every element ``k`` of the group to an input, runs the
module on the transformed input, applies the matching action to the untransformed
output, and reports how far apart the two are. It works for plain torch modules
(this package's C4 layers and networks, or any other) and for escnn modules, whose
inputs and outputs are wrapped in and unwrapped from ``GeometricTensor``.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
from torch import nn

from ._validation import as_tensor, check_finite, positive_int
from .groups.c4 import ORDER, rotate, rotate_regular
from .devices import as_model_input, find_device_dtype, model_device_dtype
from .groups.checks import check_equivariance_group, group_action
from .groups.group import GridGroup, get_group
from .modes import preserved_modes
from .models.networks import EqCNN

__all__ = ["check_equivariance", "feature_maps", "group_actions"]

Action = Union[str, Callable[[torch.Tensor, int], torch.Tensor]]

#: names accepted for ``input`` and ``output`` besides ``"auto"`` and callables
ACTIONS = ("invariant", "rotate", "regular")


def _invariant(x: torch.Tensor, k: int) -> torch.Tensor:
    return x


def group_actions() -> dict:
    """The named actions of C4 element ``k`` on a tensor.

    Returns:
        ``{"invariant": f, "rotate": f, "regular": f}`` with ``f(x, k)``: unchanged,
        feature maps rotated by ``k`` quarter turns, or rotated and each regular
        field's orientations cyclically shifted by ``k``.
    """
    return {"invariant": _invariant, "rotate": rotate, "regular": rotate_regular}


def _is_escnn_module(module) -> bool:
    # checked by attribute so that escnn is never imported here
    return hasattr(module, "in_type") and hasattr(module, "out_type") and any(
        cls.__module__.startswith("escnn") for cls in type(module).__mro__
    )


def _resolve(action: Action, module, side: str, name: str) -> Callable:
    """Turn ``action`` into ``f(x, k)``; ``"auto"`` reads the module's declaration."""
    if callable(action) and not isinstance(action, str):
        return action
    if not isinstance(action, str):
        raise TypeError(f"`{name}` must be a string or a function(x, k), got {action!r}")
    if action == "auto":
        declared = _declared(module, side)
        action = declared if declared is not None else "rotate"
    actions = group_actions()
    if action not in actions:
        raise ValueError(
            f'`{name}` must be "auto", "invariant", "rotate", "regular" or a '
            f"function(x, k), got {action!r}"
        )
    return actions[action]


def _declared(module, side: str):
    """The action a module declares on its ``side`` ("input"/"output"), if any.

    This package's layers carry ``c4_input``/``c4_output``; a ``nn.Sequential`` takes
    its first declaring child's input and its last declaring child's output
    (pointwise layers such as ReLU in between declare nothing and change nothing).
    """
    declared = getattr(module, f"c4_{side}", None)
    if declared is not None or not isinstance(module, nn.Sequential):
        return declared
    children = list(module.children())
    for child in children if side == "input" else reversed(children):
        declared = _declared(child, side)
        if declared is not None:
            return declared
    return None


def _snapshot(module: nn.Module) -> dict:
    """Copies of the module's buffers (BatchNorm running statistics, counters)."""
    return {name: buf.detach().clone() for name, buf in module.named_buffers()}


def _restore(module: nn.Module, saved: dict) -> None:
    with torch.no_grad():
        for name, buf in module.named_buffers():
            if name in saved:
                buf.copy_(saved[name])


def _relative_error(actual: torch.Tensor, expected: torch.Tensor, scale: float) -> float:
    if actual.shape != expected.shape:
        raise ValueError(
            f"the output of the transformed input has shape {tuple(actual.shape)} but the "
            f"transformed output has shape {tuple(expected.shape)}: is the output action right?"
        )
    diff = (actual.double() - expected.double()).abs().max().item()
    return diff / scale if scale > 0 else diff


def check_equivariance(
    module: Callable,
    x,
    group: Union[str, GridGroup] = "C4",
    output: Action = "auto",
    input: Action = "auto",
) -> list[float]:
    """Error of ``module(g . x)`` against ``g . module(x)`` for every element of a group.

    For C4, element ``k`` is the rotation by ``k * 90`` degrees (``torch.rot90`` with
    ``k``); D4 adds the same rotations after a left-right mirror (elements ``rot0,
    rot90, rot180, rot270, flip_rot0, ..., flip_rot270``, escnn's order for
    ``flipRot2dOnR2(4)``, see :mod:`equivariance.groups.group`). The error is
    ``max |module(g_k x) - g_k module(x)|`` divided by ``max |module(x)|``: 0 for an
    exactly equivariant module, about 1e-7 from float32 rounding, and of order 0.1
    to 1 for a module that ignores rotations.

    Each element is evaluated in a separate forward pass, in the module's current
    mode (train or eval), without gradients; buffers such as BatchNorm running
    statistics are restored afterwards, so the check has no side effects.

    Args:
        module: any callable on tensors (a torch module), or an escnn
            ``EquivariantModule``; escnn inputs are wrapped in ``GeometricTensor`` of
            ``module.in_type`` and outputs unwrapped.
        x: input batch of finite numbers, a tensor (or array), or an escnn
            ``GeometricTensor`` whose type must be ``module.in_type``; a tensor is
            converted to the module's device and dtype (its first parameter's).
        group: ``"C4"`` (the default) or ``"D4"`` (case-insensitive), or a
            :class:`~equivariance.groups.group.GridGroup`; anything else is a
            ValueError. An escnn module must act on the same group (escnn's
            ``rot2dOnR2(4)`` or ``flipRot2dOnR2(4)``).
        output: action on the output: ``"invariant"`` (unchanged, e.g. logits),
            ``"rotate"`` (feature maps rotate, and mirror for D4), ``"regular"``
            (maps transform and each regular field's ``|G|`` channels permute as
            the regular representation), a function ``f(y, k)`` of the element
            index ``k``, or ``"auto"``:
            the module's own declaration (this package's layers say ``"regular"``
            or ``"rotate"``; escnn modules use their ``out_type``), otherwise
            ``"invariant"`` for outputs without spatial dimensions and ``"rotate"``.
        input: action on the input, the same choices (``"auto"``: ``"rotate"``
            unless the module declares regular input, or escnn's ``in_type``).

    Returns:
        A list of ``|G|`` floats, the relative error for each element in the group's
        order: elements 0 to 3 for C4; for D4 the 8 elements named by
        ``get_group("D4").names``. A list rather than a dict, so ``max(errors)``
        is the largest error for every group.
    """
    if not callable(module):
        raise TypeError(
            "`module` must be a torch nn.Module, an escnn EquivariantModule or a callable "
            f"on tensors, got {type(module).__name__}"
        )
    g = get_group(group)
    if _is_escnn_module(module) or _is_geometric(x):
        return _check_escnn(module, x, output, input, g)
    x = _as_input(x, module)
    if g.name != "C4":
        # one mechanism for every grid group; C4 keeps its own (older) path below
        errors = check_equivariance_group(module, x, g, output=output, input=input)
        return list(errors.values())
    f_in = _resolve(input, module, "input", "input")
    auto_output = isinstance(output, str) and output == "auto"
    f_out = _resolve(output, module, "output", "output")
    guess = auto_output and _declared(module, "output") is None
    return _run(module, module, x, f_in, f_out, guess)


def _as_input(x, module) -> torch.Tensor:
    """``x`` as a finite tensor on the module's device, in its dtype.

    A function or a module without parameters keeps floating inputs as they are
    (float64 stays float64); integers become torch's default dtype.
    """
    x = as_tensor(x, "x")
    found = find_device_dtype(module)
    if found is not None:
        return as_model_input(x, *found)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch.get_default_dtype())


def _is_geometric(x) -> bool:
    return type(x).__name__ == "GeometricTensor" and hasattr(x, "type")


def _run(call, owner, x, f_in, f_out, guess_output: bool, order: int = ORDER) -> list[float]:
    """Errors of ``call`` for the ``order`` elements; ``owner``'s buffers are restored."""
    is_module = isinstance(owner, nn.Module)
    saved = _snapshot(owner) if is_module else {}
    try:
        with torch.no_grad():
            y = call(x)
            if guess_output and isinstance(y, torch.Tensor) and y.dim() < 3:
                f_out = _invariant  # logits or pooled features: no spatial dims
            scale = y.abs().max().item() if y.numel() else 0.0
            errors = []
            for k in range(order):
                if is_module:
                    _restore(owner, saved)  # same running statistics for every k
                actual = call(f_in(x, k))
                errors.append(_relative_error(actual, f_out(y, k), scale))
    finally:
        if is_module:
            _restore(owner, saved)
    return errors


def _check_escnn(module, x, output: Action, input: Action, group: GridGroup) -> list[float]:
    """escnn modules: GeometricTensor in and out; actions from the field types.

    escnn lists the elements of ``rot2dOnR2(4)`` and ``flipRot2dOnR2(4)`` in the order
    of ``group``'s elements, so element ``k`` means the same on both sides.
    """
    from . import escnn_models  # imports escnn, only on this path

    in_type = getattr(module, "in_type", None)
    if in_type is None:
        raise TypeError("`module` must be an escnn EquivariantModule when `x` is a GeometricTensor")
    if _is_geometric(x):
        check_finite(x.tensor, "x")
    else:
        x = _as_input(x, module)
    gt = escnn_models.geometric_tensor(x, in_type, name="x")
    group_elements = escnn_models.group_elements(in_type.gspace)
    fibergroup = in_type.gspace.fibergroup
    # the name tells C8 (8 elements) from D4 (8 elements too)
    if len(group_elements) != group.order or getattr(fibergroup, "name", None) != group.name:
        raise ValueError(
            f"`module` acts on {fibergroup}, not on `group` {group.name}: check it with the "
            "group of its gspace (only C4 and D4 are supported)"
        )

    def unwrap(y):
        return y.tensor if _is_geometric(y) else y

    def wrap_module(t):
        return unwrap(module(escnn_models.geometric_tensor(t, in_type, name="x")))

    def escnn_action(field_type):
        def act(t, k):
            return escnn_models.geometric_tensor(t, field_type).transform(group_elements[k]).tensor
        return act

    def named(action: Action, side: str) -> Callable:
        if group.name == "C4" or (callable(action) and not isinstance(action, str)):
            return _resolve(action, module, side, side)
        if not isinstance(action, str):
            raise TypeError(f"`{side}` must be a string or a function(x, k), got {action!r}")
        try:
            return group_action(action, group)
        except ValueError:
            raise ValueError(f'`{side}` must be "auto", "invariant", "rotate", "regular" or a '
                             f"function(x, k), got {action!r}") from None

    f_in = escnn_action(in_type) if input == "auto" else named(input, "input")
    f_out = escnn_action(module.out_type) if output == "auto" else named(output, "output")
    return _run(wrap_module, module, gt.tensor, f_in, f_out, False, group.order)


def feature_maps(model: nn.Module, x, depth: int = 1) -> torch.Tensor:
    """The feature maps of ``x`` after the first ``depth`` layers of ``model``.

    To look at equivariance with one's own eyes: the maps of a turned image are the
    maps of the upright image, turned, with each regular field's 4 orientation
    channels cyclically shifted. Runs in eval mode without gradients; every module's
    mode is restored.

    Args:
        model: an ``nn.Sequential``, or a model whose ``features`` attribute is one
            (:class:`~equivariance.SimpleCNN`, :class:`~equivariance.C4CNN`).
        x: images ``(N, C, H, W)`` (a tensor or an array).
        depth: how many layers of the sequence to run (from 1).

    Returns:
        The tensor after layer ``depth``, ``(N, C', H', W')``.
    """
    layers = model if isinstance(model, nn.Sequential) else getattr(model, "features", None)
    # EqCNN's features run on the 4 stacked rotations, not on the images
    if not isinstance(layers, nn.Sequential) or isinstance(model, EqCNN):
        raise TypeError(
            "`model` must be an nn.Sequential or a model whose `features` is one, applied "
            f"to the images directly (SimpleCNN, C4CNN), got {type(model).__name__}"
        )
    depth = positive_int(depth, "depth")
    if depth > len(layers):
        raise ValueError(
            f"`depth` must be a whole number from 1 to {len(layers)} (the model's layers), "
            f"got {depth!r}"
        )
    x = as_model_input(as_tensor(x, "x", dims=4), *model_device_dtype(model))
    with preserved_modes(model, "eval"), torch.no_grad():
        return layers[:depth](x)
