"""Whole-network export: :func:`export_model`."""

from __future__ import annotations

import copy
from typing import Any

from torch import fx, nn

from .._validation import shape_tuple
from ..modes import preserved_modes
from ..prediction import model_class_names
from .graph import attach_metadata, check_plain, fold_batch_norms, trace
from .plain import fix_pools, plain

__all__ = ["export_model"]


def export_model(model: nn.Module, input_shape: Any = None) -> fx.GraphModule:
    """A plain PyTorch network computing what ``model`` computes in eval mode.

    The result holds only ``torch.nn`` layers and torch function calls (a
    ``torch.fx.GraphModule``): no class of this package, so it runs where only torch
    is installed, and ``torch.jit.script``, ``torch.export.export`` and
    ``torch.onnx.export`` accept it. The group convolutions are expanded once
    (:meth:`export` of each layer; escnn's ``export()`` for the escnn networks),
    batch-norm running statistics are folded into the convolution before them, and
    the invariant head's permutations into one linear layer. With an input shape the
    parity-aware max pools of the group networks become ``nn.MaxPool2d`` with the
    window they use at that size (what ONNX needs); images of another size whose sides
    have other parities at a pool are then pooled with that window, where the model
    would switch windows. What it no longer does: check its input (shape, type,
    size), or anything in training mode.

    ``model`` itself is not changed and keeps its modes.

    Args:
        model: one of the package's models (``SimpleCNN``, ``EqCNN``, ``C4CNN``,
            ``D4CNN``, ``EscnnCNN``, ``EscnnC4CNN``), or a module of your own made of
            ``torch.nn`` layers and the package's group layers whose ``forward``
            ``torch.fx`` can trace.
        input_shape: the shape of one input without the batch dimension, e.g.
            ``(1, 28, 28)``; ``None``: ``model.input_shape`` (set by ``fit``), if any.

    Returns:
        The network, in eval mode, on the model's device and dtype, with the
        attributes ``class_names`` (``model.class_names`` or ``None``) and
        ``input_shape``, also stored as the buffers ``meta_class_names`` and
        ``meta_input_shape`` (see :func:`read_metadata`).

    Raises:
        TypeError: ``model`` is not a torch module; it holds a layer the exporter does
            not know (:class:`ExportError`, naming the layer) or a quantile map (which
            has no plain form); its ``forward`` cannot be traced.
        ValueError: a bad ``input_shape`` or ``model.class_names``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        name = "model.input_shape"
    else:
        name = "input_shape"
    shape = None if input_shape is None else shape_tuple(input_shape, name)
    names = model_class_names(model)
    # copied in training mode: escnn's convolutions hold their expanded filter (not a
    # leaf tensor, which deepcopy refuses) in eval mode only; the modes are restored
    with preserved_modes(model):
        work = copy.deepcopy(model.train())
    module = plain(work.eval())
    if shape is not None:
        fix_pools(module, shape)
    gm = trace(module, f"Exported{type(model).__name__}")
    fold_batch_norms(gm)
    attach_metadata(gm, names, shape)
    check_plain(gm)
    return gm.eval()
