"""Numerical equivariance checks for every :class:`~.group.GridGroup` (C4, D4).

:func:`check_equivariance` applies every element of the group to an input, runs the
module on the transformed input, applies the matching action to the untransformed
output, and reports how far apart the two are, one error per element in the group's
order (``rot0, rot90, rot180, rot270`` for C4, then ``flip_rot0 ... flip_rot270`` for
D4). It works for plain torch modules (this package's layers and networks, or any
other) and, through :mod:`equivariance.escnn_models.checks` (imported only then), for
escnn modules, whose inputs and outputs are wrapped in ``GeometricTensor``.

What a module acts on is read from its declaration, ``group_input`` and
``group_output`` (``"rotate"``, ``"regular"`` or ``"invariant"``), the one spelling
used by every layer and network of the package.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Union

import torch
from torch import nn

from .._validation import as_tensor, positive_int
from ..devices import as_model_input, find_device_dtype, model_device_dtype
from ..modes import preserved_modes
from .group import ACTIONS, GridGroup, get_group, group_action

__all__ = ["check_equivariance", "check_equivariance_group", "feature_maps"]

Action = Union[str, Callable[[torch.Tensor, int], torch.Tensor]]


def declared_action(module: Any, side: str, group: GridGroup) -> str | None:
    """The action a module declares on ``side`` (``"input"``/``"output"``), if any.

    A module declares ``group_input``/``group_output``; a ``nn.Sequential`` takes its
    first declaring child's input and its last declaring child's output (pointwise
    layers such as ReLU in between declare nothing and change nothing).
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
    if isinstance(module, nn.Sequential):
        children = list(module.children())
        for child in children if side == "input" else reversed(children):
            declared = declared_action(child, side, group)
            if declared is not None:
                return declared
    return None


def resolve_action(action: Action, module: Any, side: str,
                   group: GridGroup) -> Callable | None:
    """``f(x, element)`` for ``action``; ``None`` when ``"auto"`` finds no declaration."""
    if callable(action) and not isinstance(action, str):
        return action
    if not isinstance(action, str):
        raise TypeError(f"`{side}` must be a string or a function(x, k), got {action!r}")
    if action not in ACTIONS + ("auto",):
        raise ValueError(f'`{side}` must be "auto", "invariant", "rotate", "regular" or a '
                         f"function(x, k), got {action!r}")
    if action == "auto":
        action = declared_action(module, side, group)
        if action is None:
            return None
    return group_action(action, group)


def relative_error(actual: torch.Tensor, expected: torch.Tensor, scale: float) -> float:
    """``max |actual - expected| / scale`` (the plain maximum when ``scale`` is 0)."""
    if actual.shape != expected.shape:
        raise ValueError(
            f"the output of the transformed input has shape {tuple(actual.shape)} but the "
            f"transformed output has shape {tuple(expected.shape)}: is the output action right?"
        )
    diff = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    return diff / scale if scale > 0 else diff


def run_check(call: Callable, owner: Any, x: torch.Tensor, f_in: Callable,
              f_out: Callable | None, group: GridGroup) -> list[float]:
    """Errors of ``call`` for every element of ``group``; ``owner``'s buffers restored.

    ``f_out`` ``None`` means: invariant for outputs with fewer than 3 dimensions
    (logits, pooled features), else transformed on the grid.
    """
    saved = ({n: b.detach().clone() for n, b in owner.named_buffers()}
             if isinstance(owner, nn.Module) else {})

    def restore() -> None:
        with torch.no_grad():
            for n, b in owner.named_buffers():
                if n in saved:
                    b.copy_(saved[n])

    errors = []
    try:
        with torch.no_grad():
            y = call(x)
            if f_out is None:
                guess = "invariant" if isinstance(y, torch.Tensor) and y.dim() < 3 else "rotate"
                f_out = group_action(guess, group)
            scale = y.abs().max().item() if y.numel() else 0.0
            for e in range(group.order):
                if saved:
                    restore()  # the same running statistics for every element
                errors.append(relative_error(call(f_in(x, e)), f_out(y, e), scale))
    finally:
        if saved:
            restore()
    return errors


def _is_escnn(module: Any, x: Any) -> bool:
    # checked by attribute so that escnn is never imported here
    geometric = type(x).__name__ == "GeometricTensor" and hasattr(x, "type")
    return geometric or (hasattr(module, "in_type") and hasattr(module, "out_type") and any(
        cls.__module__.startswith("escnn") for cls in type(module).__mro__))


def as_check_input(x: Any, module: Any) -> torch.Tensor:
    """``x`` as a finite tensor on the module's device, in its dtype.

    A function or a module without parameters keeps floating inputs as they are
    (float64 stays float64); integers become torch's default dtype.
    """
    x = as_tensor(x, "x")
    found = find_device_dtype(module)
    if found is not None:
        return as_model_input(x, *found)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch.get_default_dtype())


def check_equivariance(module: Callable, x: Any, group: str | GridGroup = "C4",
                       output: Action = "auto", input: Action = "auto") -> list[float]:
    """Error of ``module(g x)`` against ``g module(x)`` for every element ``g`` of a group.

    C4's elements are the rotations ``rot0, rot90, rot180, rot270`` (``torch.rot90``
    by 0 to 3 quarter turns); D4 adds ``flip_rot0, ..., flip_rot270``, the same
    rotations after a left-right mirror (escnn's order for ``flipRot2dOnR2(4)``, see
    :mod:`equivariance.groups.group`). The error is ``max |module(g x) - g module(x)|``
    divided by ``max |module(x)|``: 0 for an exactly equivariant module, about 1e-7
    from float32 rounding, and of order 0.1 to 1 for a module that ignores rotations.

    Each element is evaluated in a separate forward pass, in the module's current
    mode (train or eval), without gradients; buffers such as batch-norm running
    statistics are restored afterwards, so the check has no side effects.

    Args:
        module: any callable on tensors (a torch module), or an escnn
            ``EquivariantModule``; escnn inputs are wrapped in ``GeometricTensor`` of
            ``module.in_type`` and outputs unwrapped.
        x: input batch of finite numbers, a tensor (or array), or an escnn
            ``GeometricTensor`` whose type must be ``module.in_type``; a tensor is
            converted to the module's device and dtype (its first parameter's).
        group: ``"C4"`` (the default) or ``"D4"`` (case-insensitive), or a
            :class:`~equivariance.groups.group.GridGroup`. An escnn module must act
            on the same group (escnn's ``rot2dOnR2(4)`` or ``flipRot2dOnR2(4)``).
        output: action on the output: ``"invariant"`` (unchanged, e.g. logits),
            ``"rotate"`` (feature maps rotate, and mirror for D4), ``"regular"``
            (maps transform and each regular field's ``|G|`` channels permute as the
            regular representation), a function ``f(y, k)`` of the element index
            ``k`` (0 to ``|G| - 1``), or ``"auto"``: the module's declaration
            (``group_output``; escnn modules use their ``out_type``), otherwise
            ``"invariant"`` for outputs without spatial dimensions and ``"rotate"``.
        input: action on the input, the same choices (``"auto"``: the module's
            ``group_input`` or escnn's ``in_type``, otherwise ``"rotate"``).

    Returns:
        A list of ``|G|`` floats, the relative error for each element in the group's
        order, whose names are ``get_group(group).names``. A list rather than a dict,
        so ``max(errors)`` is the largest error for every group
        (:func:`check_equivariance_group` gives them by name).
    """
    if not callable(module):
        raise TypeError(
            "`module` must be a torch nn.Module, an escnn EquivariantModule or a callable "
            f"on tensors, got {type(module).__name__}"
        )
    g = get_group(group)
    if _is_escnn(module, x):
        adapter = importlib.import_module("equivariance.escnn_models.checks")
        call, x, f_in, f_out = adapter.check_parts(module, x, g, output=output, input=input)
        return run_check(call, module, x, f_in, f_out, g)
    x = as_check_input(x, module)
    f_in = resolve_action(input, module, "input", g) or group_action("rotate", g)
    f_out = resolve_action(output, module, "output", g)
    return run_check(module, module, x, f_in, f_out, g)


def check_equivariance_group(module: Callable, x: Any, group: str | GridGroup = "D4",
                             output: Action = "auto", input: Action = "auto") -> dict:
    """:func:`check_equivariance` with the errors by element name (D4 by default).

    Args:
        module, x, output, input: as for :func:`check_equivariance`.
        group: ``"C4"``, ``"D4"`` (the default) or a :class:`GridGroup`.

    Returns:
        ``{element name: relative error}`` in the group's element order, e.g.
        ``rot0, rot90, rot180, rot270, flip_rot0, ..., flip_rot270`` for D4.
    """
    g = get_group(group)
    return dict(zip(g.names, check_equivariance(module, x, g, output=output, input=input)))


def feature_maps(model: nn.Module, x: Any, depth: int = 1) -> torch.Tensor:
    """The feature maps of ``x`` after the first ``depth`` layers of ``model``.

    To look at equivariance with one's own eyes: the maps of a turned image are the
    maps of the upright image, turned, with each regular field's channels permuted.
    Runs in eval mode without gradients; every module's mode is restored.

    Args:
        model: an ``nn.Sequential``, or a model whose ``features`` attribute is one
            applied to the images (:class:`~equivariance.SimpleCNN`,
            :class:`~equivariance.C4CNN`, :class:`~equivariance.D4CNN`).
        x: images ``(N, C, H, W)`` (a tensor or an array).
        depth: how many layers of the sequence to run (from 1).

    Returns:
        The tensor after layer ``depth``, ``(N, C', H', W')``.
    """
    layers = model if isinstance(model, nn.Sequential) else getattr(model, "features", None)
    # a model may say that its `features` do not take the images (EqCNN's run on
    # the 4 stacked rotations)
    if not isinstance(layers, nn.Sequential) or not getattr(model, "features_take_images", True):
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
