"""escnn builders: the walkthrough's building blocks for any rotation group.

This package (:mod:`equivariance.escnn_models`) is the only part of the core that
imports escnn, and it does so on first use of one of its functions, so
``import equivariance`` stays fast. The helpers take
plain Python values (whole numbers, representation names) and raise ValueError or
TypeError naming the argument, which is what the R wrappers rely on.

Conventions (checked by the tests): element ``k`` of ``rot2d_on_r2(4)`` acts on
images as ``torch.rot90(x, k, dims=(-2, -1))``, element ``4 m + k`` of
``flip_rot2d_on_r2(4)`` as a left-right mirror (if ``m``) followed by that rotation,
and the regular representations' channel orders are the ones used by
:mod:`equivariance.groups` (C4 and D4). The classifiers live in
:mod:`.networks`, the adapter for :func:`~equivariance.check_equivariance` in
:mod:`.checks`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._validation import is_whole_number, nonnegative_int, positive_int

__all__ = [
    "rot2d_on_r2",
    "flip_rot2d_on_r2",
    "representation",
    "field_type",
    "r2_conv",
    "geometric_tensor",
    "group_elements",
    "group_element",
    "representation_matrix",
    "inner_batch_norm",
    "iid_batch_norm",
    "relu",
    "norm_nonlinearity",
    "pointwise_avg_pool",
    "group_pooling",
    "norm_pool",
    "sequential",
    "forward",
    "walkthrough_model",
]


def _escnn() -> Any:
    """Import escnn (slow: about a second) with a helpful message if it is missing."""
    try:
        return importlib.import_module("escnn")
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the escnn helpers need the Python package 'escnn'; install it with "
            "`pip install escnn` (or install_equivariance() from R)"
        ) from err


def _enn() -> Any:
    return importlib.import_module("escnn.nn")


def _check_gspace(gspace: Any, name: str = "gspace") -> Any:
    if not (hasattr(gspace, "fibergroup") and hasattr(gspace, "irrep")):
        raise TypeError(f"`{name}` must be an escnn gspace such as rot2d_on_r2(4), got {gspace!r}")
    return gspace


def _check_field_type(value: Any, name: str) -> Any:
    if not (hasattr(value, "gspace") and hasattr(value, "representations")
            and hasattr(value, "size")):
        raise TypeError(f"`{name}` must be an escnn FieldType, got {value!r}")
    return value


# ------------------------------------------------------------ spaces, groups


def _group_order(N: Any) -> int:
    """``N``: a positive whole number, or -1 for all rotations."""
    if not is_whole_number(N) or not (int(N) == -1 or int(N) >= 1):
        raise ValueError(f"`N` must be a positive whole number or -1 (for SO(2)), got {N!r}")
    return int(N)


def rot2d_on_r2(N: int = 4, maximum_frequency: int = 6) -> Any:
    """The gspace of rotations of the plane: ``escnn.gspaces.rot2dOnR2``.

    Args:
        N: order of the cyclic group of rotations (4 gives C4, rotations by
            multiples of 90 degrees; 8 gives C8, multiples of 45 degrees), or -1 for
            all rotations, SO(2).
        maximum_frequency: highest irrep frequency kept for SO(2) (its irreps are
            ``"irrep_0"`` to ``"irrep_<maximum_frequency>"``).

    Returns:
        An escnn ``GSpace2D``; its ``fibergroup`` prints as ``C4`` for ``N = 4``.
    """
    N = _group_order(N)
    maximum_frequency = positive_int(maximum_frequency, "maximum_frequency")
    return _escnn().gspaces.rot2dOnR2(N=N, maximum_frequency=maximum_frequency)


def flip_rot2d_on_r2(N: int = 4, maximum_frequency: int = 6) -> Any:
    """The gspace of rotations and mirrors of the plane: ``escnn.gspaces.flipRot2dOnR2``.

    Args:
        N: number of rotations (4 gives D4, the 8 symmetries of the square; 1 gives
            the mirror alone), or -1 for all rotations and mirrors, O(2).
        maximum_frequency: highest irrep frequency kept for O(2).

    Returns:
        An escnn ``GSpace2D``; its ``fibergroup`` prints as ``D4`` for ``N = 4``.
        Element ``4 m + k`` of D4 mirrors left-right when ``m = 1``, then rotates
        by ``k`` quarter turns; its irreps are named ``"irrep_<j>,<k>"``.
    """
    N = _group_order(N)
    maximum_frequency = positive_int(maximum_frequency, "maximum_frequency")
    return _escnn().gspaces.flipRot2dOnR2(N=N, maximum_frequency=maximum_frequency)


def representation(gspace: Any, name: Any) -> Any:
    """A representation of ``gspace``'s group, by name or passed through.

    Args:
        gspace: an escnn gspace.
        name: ``"trivial"``, ``"regular"``, ``"irrep_<k>"`` or any key of
            ``gspace.representations``; an escnn ``Representation`` is returned as is.

    Returns:
        The escnn ``Representation``.
    """
    _check_gspace(gspace)
    if hasattr(name, "size") and hasattr(name, "group") and not isinstance(name, str):
        return name
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a representation name or object, got {name!r}")
    if name == "trivial":
        return gspace.trivial_repr
    if name == "regular":
        return gspace.regular_repr
    known = dict(gspace.representations)
    if name in known:
        return known[name]
    if name.startswith("irrep_"):
        # "irrep_3" (rotations) or "irrep_1,3" (with mirrors): built on demand
        indices = name[len("irrep_"):].split(",")
        if all(i.isdigit() for i in indices) and len(indices) <= 2:
            try:
                return gspace.irrep(*(int(i) for i in indices))
            except (ValueError, AssertionError, KeyError, IndexError, TypeError):
                pass
    choices = ", ".join(['"trivial"', '"regular"'] + [f'"{k}"' for k in known if k != "regular"])
    raise ValueError(
        f"unknown representation {name!r} for the group {gspace.fibergroup}; "
        f"known names: {choices}"
    )


def field_type(gspace: Any, reprs: str | Sequence[Any]) -> Any:
    """An escnn ``FieldType``: one field per entry of ``reprs``.

    Args:
        gspace: an escnn gspace.
        reprs: representation names (``"trivial"``, ``"regular"``, ``"irrep_1"``, ...)
            or escnn representations, in a list; a single name is one field.

    Returns:
        ``escnn.nn.FieldType(gspace, [...])``; its ``size`` is the number of channels.
    """
    _check_gspace(gspace)
    if isinstance(reprs, str) or hasattr(reprs, "size"):
        reprs = [reprs]
    try:
        items = list(reprs)
    except TypeError:
        raise TypeError(f"`reprs` must be a list of representation names, got {reprs!r}") from None
    if not items:
        raise ValueError("`reprs` must name at least one representation")
    resolved = []
    for item in items:
        try:
            resolved.append(representation(gspace, item))
        except (ValueError, TypeError) as err:
            raise type(err)(f"`reprs`: {err}") from None
    return _enn().FieldType(gspace, resolved)


def group_elements(gspace: Any) -> list:
    """The elements of a finite gspace group, in escnn's order.

    For ``rot2d_on_r2(N)`` element ``k`` is the rotation by ``k`` steps; for
    ``flip_rot2d_on_r2(N)`` elements ``0`` to ``N - 1`` are the rotations and ``N + k``
    is rotation ``k`` after a mirror (the order of :mod:`equivariance.groups` for D4).

    Args:
        gspace: an escnn gspace with a finite group (e.g. ``rot2d_on_r2(4)``).

    Returns:
        A list of escnn ``GroupElement`` (printed ``0[2pi/4]``, ``1[2pi/4]``, ...; with
        mirrors ``(+, 0[2pi/4])``, ..., ``(-, 3[2pi/4])``).
    """
    _check_gspace(gspace)
    group = gspace.fibergroup
    if group.order() < 1:
        raise ValueError(f"`gspace`: the group {group} has infinitely many elements")
    return list(group.elements)


def group_element(gspace: Any, element: Any) -> Any:
    """Element ``element`` (a whole number, taken modulo the order) or pass through."""
    _check_gspace(gspace)
    if hasattr(element, "group") and not is_whole_number(element):
        if element.group != gspace.fibergroup:
            raise ValueError(f"`element` belongs to {element.group}, not {gspace.fibergroup}")
        return element
    if not is_whole_number(element):
        raise ValueError(f"`element` must be a whole number or a group element, got {element!r}")
    elements = group_elements(gspace)
    return elements[int(element) % len(elements)]


def representation_matrix(gspace: Any, name: Any, element: Any) -> np.ndarray:
    """The matrix of ``element`` in the representation ``name``.

    Args:
        gspace: an escnn gspace, e.g. ``rot2d_on_r2(4)``.
        name: representation name (``"irrep_1"``, ``"regular"``, ...) or object.
        element: element index ``k`` (rotation by ``k`` steps) or a group element.

    Returns:
        A ``(size, size)`` float64 array, unrounded (e.g. ~6e-17 for cos(pi/2)).
    """
    rep = representation(gspace, name)
    g = group_element(gspace, element)
    return np.asarray(rep(g), dtype=np.float64)


# --------------------------------------------------------------- modules


def r2_conv(
    in_type: Any,
    out_type: Any,
    kernel_size: int,
    padding: int = 0,
    stride: int = 1,
    bias: bool = True,
    **kwargs: Any,
) -> Any:
    """``escnn.nn.R2Conv`` with validated whole-number arguments.

    Args:
        in_type, out_type: escnn FieldTypes on the same gspace.
        kernel_size: side of the square filter.
        padding: zero padding on every side.
        stride: convolution stride.
        bias: learn a bias for the trivial parts of the output.
        **kwargs: passed on to ``R2Conv`` (e.g. ``frequencies_cutoff``).

    Returns:
        The ``R2Conv`` module.
    """
    _check_field_type(in_type, "in_type")
    _check_field_type(out_type, "out_type")
    if in_type.gspace != out_type.gspace:
        raise ValueError("`in_type` and `out_type` must be defined on the same gspace")
    return _enn().R2Conv(
        in_type,
        out_type,
        kernel_size=positive_int(kernel_size, "kernel_size"),
        padding=nonnegative_int(padding, "padding"),
        stride=positive_int(stride, "stride"),
        bias=bool(bias),
        **kwargs,
    )


def _pointwise_type(in_type: Any, what: str) -> Any:
    """``in_type`` if all its fields allow pointwise operations (trivial, regular)."""
    _check_field_type(in_type, "in_type")
    for rep in in_type.representations:
        if "pointwise" not in rep.supported_nonlinearities:
            raise ValueError(
                f"`in_type`: {what} needs fields that allow pointwise operations (trivial "
                f"or regular), but {rep.name!r} does not; for irreps use {_NORM_ALTERNATIVE[what]}"
            )
    return in_type


_NORM_ALTERNATIVE = {
    "InnerBatchNorm": "iid_batch_norm()",
    "ReLU": "norm_nonlinearity()",
    "GroupPooling": "norm_pool()",
}


def inner_batch_norm(in_type: Any, **kwargs: Any) -> Any:
    """``escnn.nn.InnerBatchNorm``: batch norm shared within each field (trivial or
    regular fields)."""
    return _enn().InnerBatchNorm(_pointwise_type(in_type, "InnerBatchNorm"), **kwargs)


def iid_batch_norm(in_type: Any, **kwargs: Any) -> Any:
    """``escnn.nn.IIDBatchNorm2d``: batch norm for fields of any representation
    (irreps of SO(2) or O(2) included)."""
    return _enn().IIDBatchNorm2d(_check_field_type(in_type, "in_type"), **kwargs)


def relu(in_type: Any, inplace: bool = False) -> Any:
    """``escnn.nn.ReLU`` on fields that allow pointwise non-linearities."""
    return _enn().ReLU(_pointwise_type(in_type, "ReLU"), inplace=bool(inplace))


def norm_nonlinearity(in_type: Any, fn: str = "n_relu", bias: bool = True) -> Any:
    """``escnn.nn.NormNonLinearity``: scales each field by a function of its norm.

    Equivariant for any representation, so it is the non-linearity for the irreps
    of SO(2) and O(2).

    Args:
        in_type: escnn FieldType.
        fn: the function of the norm, ``"n_relu"``, ``"n_sigmoid"`` or ``"squash"``.
        bias: learn a bias added to the norm before the function.
    """
    if fn not in ("n_relu", "n_sigmoid", "squash"):
        raise ValueError(f"`fn` must be \"n_relu\", \"n_sigmoid\" or \"squash\", got {fn!r}")
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"`bias` must be True or False, got {bias!r}")
    return _enn().NormNonLinearity(_check_field_type(in_type, "in_type"), function=fn,
                                   bias=bool(bias))


def pointwise_avg_pool(in_type: Any, kernel_size: int, stride: Any = None, padding: int = 0) -> Any:
    """``escnn.nn.PointwiseAvgPool``: spatial average pooling of every channel.

    Args:
        in_type: escnn FieldType.
        kernel_size: side of the pooling window.
        stride: step (default: ``kernel_size``).
        padding: zero padding.
    """
    kernel_size = positive_int(kernel_size, "kernel_size")
    stride = kernel_size if stride is None else positive_int(stride, "stride")
    return _enn().PointwiseAvgPool(
        _check_field_type(in_type, "in_type"), kernel_size, stride=stride,
        padding=nonnegative_int(padding, "padding"),
    )


def group_pooling(in_type: Any) -> Any:
    """``escnn.nn.GroupPooling``: max over each regular field's channels, an invariant."""
    return _enn().GroupPooling(_pointwise_type(in_type, "GroupPooling"))


def norm_pool(in_type: Any) -> Any:
    """``escnn.nn.NormPool``: the norm of each field, an invariant for any representation."""
    return _enn().NormPool(_check_field_type(in_type, "in_type"))


def sequential(*modules: Any) -> Any:
    """``escnn.nn.SequentialModule`` of the given escnn modules."""
    if not modules:
        raise ValueError("`...` must hold at least one escnn module")
    return _enn().SequentialModule(*modules)


def geometric_tensor(x: Any, type: Any, name: str = "x") -> Any:
    """Wrap ``x`` as an escnn ``GeometricTensor`` of field type ``type``.

    Args:
        x: a tensor ``(N, type.size, H, W)``, or a ``GeometricTensor`` that must
            already have field type ``type``.
        type: an escnn FieldType.
        name: argument name used in error messages.

    Returns:
        The ``GeometricTensor``.
    """
    _check_field_type(type, "type")
    if type_name(x) == "GeometricTensor":
        if x.type != type:
            raise ValueError(
                f"`{name}` has field type {x.type} ({x.type.size} channels) but "
                f"{type} ({type.size} channels) is expected"
            )
        return x
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"`{name}` must be a tensor, got {x!r}") from None
    if x.dim() < 2 or x.shape[1] != type.size:
        raise ValueError(
            f"`{name}` must have {type.size} channels for field type {type} "
            f"(shape (N, {type.size}, H, W)), got shape {tuple(x.shape)}"
        )
    return _enn().GeometricTensor(x, type)


def type_name(x: Any) -> str:
    return type(x).__name__


def forward(module: Any, x: Any) -> Any:
    """Run an escnn module on ``x``, checking (or giving) its field type first.

    Args:
        module: an escnn ``EquivariantModule``.
        x: a ``GeometricTensor`` of ``module.in_type`` or a plain tensor to wrap.

    Returns:
        The module's output ``GeometricTensor``.
    """
    in_type = getattr(module, "in_type", None)
    if in_type is None:
        raise TypeError(f"`module` must be an escnn EquivariantModule, got {type_name(module)}")
    return module(geometric_tensor(x, in_type, name="x"))


def walkthrough_model(
    gspace: Any = None,
    hidden_fields: int = 4,
    out_fields: int = 1,
    kernel_size: int = 3,
) -> Any:
    """The walkthrough's network: three R2Conv with InnerBatchNorm and ReLU between.

    trivial -> ``hidden_fields`` regular -> ``hidden_fields`` regular ->
    ``out_fields`` regular, no padding: a 17x17 input gives 11x11 with kernel 3.

    Args:
        gspace: an escnn gspace (default ``rot2d_on_r2(4)``).
        hidden_fields: regular fields of the two hidden layers.
        out_fields: regular fields of the output.
        kernel_size: side of every filter.

    Returns:
        An escnn ``SequentialModule`` (train mode; call ``.eval()`` as the
        walkthrough does).
    """
    gspace = rot2d_on_r2(4) if gspace is None else _check_gspace(gspace)
    hidden_fields = positive_int(hidden_fields, "hidden_fields")
    out_fields = positive_int(out_fields, "out_fields")
    kernel_size = positive_int(kernel_size, "kernel_size")
    t0 = field_type(gspace, ["trivial"])
    t1 = field_type(gspace, ["regular"] * hidden_fields)
    t2 = field_type(gspace, ["regular"] * out_fields)
    return sequential(
        r2_conv(t0, t1, kernel_size), inner_batch_norm(t1), relu(t1),
        r2_conv(t1, t1, kernel_size), inner_batch_norm(t1), relu(t1),
        r2_conv(t1, t2, kernel_size),
    )
