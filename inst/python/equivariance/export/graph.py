"""The exported network: tracing, batch-norm folding, metadata and the final check.

The plain module of :mod:`.plain` is traced by ``torch.fx``: the recipes' ``forward``
become torch calls in one generated ``forward``, and the ``torch.nn`` layers stay
submodules. The result is a :class:`torch.fx.GraphModule`, a class of torch: it is
scriptable by ``torch.jit.script``, exportable by ``torch.export.export`` and
picklable without this package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import fx, nn

__all__ = ["attach_metadata", "check_plain", "fold_batch_norms", "read_metadata", "trace"]


def trace(module: nn.Module, class_name: str) -> fx.GraphModule:
    """Trace ``module`` (torch.nn layers stay leaves, every other forward is inlined).

    Raises:
        TypeError: the forward of a module cannot be traced (data-dependent control
            flow, checks on the input's type).
    """
    try:
        graph = fx.Tracer().trace(module)
    except Exception as err:
        raise TypeError(
            f"`model` could not be traced into a plain network by torch.fx: {err}. A forward "
            "of your own must not branch on the input's values or check its type") from err
    for node in graph.nodes:
        node.type = None  # annotations would name torch.Tensor in a way TorchScript rejects
    return fx.GraphModule(module, graph, class_name=class_name)


def _fused(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``norm`` into ``conv`` in place (computed in float64)."""
    with torch.no_grad():
        w = conv.weight.double()
        b = conv.bias.double() if conv.bias is not None else torch.zeros_like(norm.running_mean,
                                                                                 dtype=torch.float64)
        scale = (norm.running_var.double() + norm.eps).rsqrt()
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        conv.weight.copy_(w * scale.reshape(-1, 1, 1, 1))
        bias = (b * scale + shift).to(conv.weight.dtype)
        if conv.bias is None:
            conv.bias = nn.Parameter(bias)
        else:
            conv.bias.copy_(bias)


def fold_batch_norms(gm: fx.GraphModule) -> int:
    """Fold every eval-mode ``BatchNorm2d`` with running statistics into the ``Conv2d``
    whose output it alone reads. Returns the number folded."""
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(modules[node.target]) is not nn.BatchNorm2d:
            continue
        norm, src = modules[node.target], node.args[0]
        if norm.training or norm.running_mean is None or calls[node.target] != 1:
            continue
        if not (isinstance(src, fx.Node) and src.op == "call_module"
                and type(modules[src.target]) is nn.Conv2d and len(src.users) == 1
                and calls[src.target] == 1):
            continue
        _fused(modules[src.target], norm)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


def attach_metadata(gm: fx.GraphModule, class_names: Sequence[str] | None,
                    input_shape: Sequence[int] | None) -> None:
    """``class_names`` and ``input_shape`` as attributes (kept by pickling and
    TorchScript) and as the buffers ``meta_class_names`` (UTF-8 JSON) and
    ``meta_input_shape`` (kept by ``state_dict`` and ``torch.export``)."""
    gm.class_names = None if class_names is None else list(class_names)
    gm.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
    text = json.dumps(gm.class_names).encode("utf-8")
    tensor = next(iter(gm.state_dict().values()), None)
    device = None if tensor is None else tensor.device  # the network's device
    gm.register_buffer("meta_class_names",
                       torch.tensor(list(text), dtype=torch.uint8, device=device))
    gm.register_buffer("meta_input_shape",
                       torch.tensor(list(gm.input_shape or ()), dtype=torch.long, device=device))


def read_metadata(module: nn.Module) -> dict:
    """``{"class_names", "input_shape"}`` from an exported network's buffers, e.g. of
    ``torch.export.load(path).module()`` (the same code works without this package).

    Args:
        module: an exported network or the module of its ``torch.export`` program.

    Returns:
        A dict with ``class_names`` (list of str or None) and ``input_shape`` (tuple or None).
    """
    names = json.loads(bytes(module.meta_class_names.tolist()).decode("utf-8"))
    shape = tuple(module.meta_input_shape.tolist()) or None
    return {"class_names": names, "input_shape": shape}


def check_plain(gm: fx.GraphModule) -> None:
    """Raise unless every submodule is a torch class and no call leaves torch."""
    for name, m in gm.named_modules():
        if name and not type(m).__module__.startswith("torch.nn."):
            raise RuntimeError(f"export left the module `{name}` ({type(m).__qualname__})")
    for node in gm.graph.nodes:
        owner = getattr(node.target, "__module__", None) or ""
        if node.op == "call_function" and owner.startswith(("equivariance", "escnn")):
            raise RuntimeError(f"export left a call to {owner}.{node.target.__name__}")
