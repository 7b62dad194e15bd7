"""Plain-PyTorch replacements for the package's layers and models.

:func:`plain` walks a (copied, eval-mode) model and replaces every layer and model of
this package by ``torch.nn`` layers, or by small recipe modules whose ``forward`` holds
only torch calls. Tracing the result (:mod:`.graph`) inlines the recipes, so the
exported network holds ``torch.nn`` layers and torch function calls only.

The recipes keep the original computations, without the input checks: the same
convolutions (the group layers' own :meth:`export`), batch norm with its running
statistics (folded into the convolution before it by :mod:`.graph`), the
parity-aware stride-2 max pool, the soft spatial maximum and mean, and the invariant
head with the group's permutations folded into one linear layer.
"""

from __future__ import annotations

import sys
from typing import Callable

import torch
from torch import nn

from ..groups.layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupInvariantLinear,
    GroupLiftingConv2d,
    GroupMaxPool2d,
    GroupPool,
)
from ..models import EqCNN, GroupCNN, SimpleCNN
from ..models.group_cnn import C4CNN_POOL_TEMPERATURE
from ..quantile_maps.base import _QuantileMap
from ..training.parallel.sync_batchnorm import SyncFieldBatchNorm

__all__ = ["ExportError", "plain"]


class ExportError(TypeError):
    """A model holds a layer that cannot be written with plain ``torch.nn`` layers."""


# -- recipes: torch calls only, no checks (inlined by tracing) ---------------------------


class _ParityMaxPool(nn.Module):
    """:class:`GroupMaxPool2d`: a 2-wide window for an even side, 3-wide padded for odd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        return torch.max_pool2d(x, (2 + h % 2, 2 + w % 2), (2, 2), (h % 2, w % 2))


class _FieldPool(nn.Module):
    """:class:`GroupPool`: the maximum or mean of each field's ``order`` channels."""

    def __init__(self, order: int, mode: str):
        super().__init__()
        self.order, self.mode = order, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fields = x.unflatten(1, (-1, self.order))
        return fields.amax(dim=2) if self.mode == "max" else fields.mean(dim=2)


class _FieldBatchNorm(nn.Module):
    """:class:`GroupBatchNorm2d` without running statistics: batch statistics per field."""

    def __init__(self, norm: nn.BatchNorm2d, order: int):
        super().__init__()
        self.norm, self.order = norm, order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        y = self.norm(x.reshape(n, c // self.order, self.order * h, w))
        return y.reshape(n, c, h, w)


class _InvariantHead(nn.Module):
    """:class:`GroupInvariantLinear` as one linear layer: output ``o * |G| + g`` is the
    linear map applied to the input permuted by element ``g``; the maximum over ``g``."""

    def __init__(self, linear: nn.Linear, order: int):
        super().__init__()
        self.linear, self.order = linear, order
        self.classes = linear.out_features // order

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.linear(v).unflatten(1, (self.classes, self.order)).amax(dim=2)


def _summary(h: torch.Tensor) -> torch.Tensor:
    """The soft spatial maximum and mean of every channel (``spatial_summary``)."""
    t = C4CNN_POOL_TEMPERATURE
    return torch.cat([torch.logsumexp(t * h.flatten(2), dim=2) / t, h.mean(dim=(-2, -1))], dim=1)


class _SpatialMaxNet(nn.Module):
    """:class:`SimpleCNN`: features, maximum over the positions, linear head."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.amax(self.features(x), dim=(-2, -1)))


class _RotationsNet(_SpatialMaxNet):
    """:class:`EqCNN`: the 4 rotations in the batch, 2-D features, max over rotations."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        turns = [x, torch.rot90(x, 1, (2, 3)), torch.rot90(x, 2, (2, 3)), torch.rot90(x, 3, (2, 3))]
        per_rotation = torch.amax(self.features(torch.cat(turns, dim=0)), dim=(-2, -1))
        return self.head(per_rotation.reshape(4, n, per_rotation.shape[1]).amax(dim=0))


class _GroupNet(_SpatialMaxNet):
    """:class:`GroupCNN` (C4CNN, D4CNN): features, soft maximum and mean, invariant head."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_summary(self.features(x)))


class _EscnnNet(nn.Module):
    """``EscnnCNN``: blocks exported by escnn, the max pool between them, summary, head."""

    def __init__(self, blocks: nn.ModuleList, head: nn.Module):
        super().__init__()
        self.blocks, self.pool, self.head = blocks, _ParityMaxPool(), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < len(self.blocks) - 1:
                h = self.pool(h)
        return self.head(_summary(h))


# -- layers ---------------------------------------------------------------------------


def _batch_norm(m: GroupBatchNorm2d, path: str) -> nn.Module:
    order = m.group.order
    if not m.track_running_stats or m.running_mean is None:
        factory = {"device": m.weight.device, "dtype": m.weight.dtype} if m.affine else {}
        norm = nn.BatchNorm2d(m.num_fields, m.eps, m.momentum, m.affine,
                              track_running_stats=False, **factory)
        if m.affine:
            norm.load_state_dict(m.state_dict())
        return _FieldBatchNorm(norm, order)
    # eval mode: a per-channel affine map; a field's statistics serve its |G| channels
    factory = {"device": m.running_mean.device, "dtype": m.running_mean.dtype}
    norm = nn.BatchNorm2d(m.num_fields * order, m.eps, affine=m.affine, **factory)
    with torch.no_grad():
        norm.running_mean.copy_(m.running_mean.repeat_interleave(order))
        norm.running_var.copy_(m.running_var.repeat_interleave(order))
        if m.affine:
            norm.weight.copy_(m.weight.repeat_interleave(order))
            norm.bias.copy_(m.bias.repeat_interleave(order))
    return norm.eval()


def _invariant_head(m: GroupInvariantLinear, path: str) -> nn.Module:
    g, lin = m.order, m.linear
    out, width = lin.out_features, lin.in_features
    perms = m._perms.cpu()
    # term g multiplies weight column f * G + h with v[f * G + perm[g, h]]: in the big
    # layer, block g holds weight column j at column columns[g, j]
    columns = (torch.arange(width // g).unsqueeze(1) * g).unsqueeze(0) + perms.unsqueeze(1)
    columns = columns.reshape(g, width)
    big = nn.Linear(width, out * g, bias=lin.bias is not None,
                    device=lin.weight.device, dtype=lin.weight.dtype)
    with torch.no_grad():
        weight = torch.zeros(g, out, width, device=lin.weight.device, dtype=lin.weight.dtype)
        for e in range(g):
            weight[e][:, columns[e].to(lin.weight.device)] = lin.weight
        big.weight.copy_(weight.permute(1, 0, 2).reshape(out * g, width))
        if lin.bias is not None:
            big.bias.copy_(lin.bias.repeat_interleave(g))
    return _InvariantHead(big, g)


def _quantile_map(m: nn.Module, path: str) -> None:
    how = ("it normalizes each sample through its own sorted values"
           if not getattr(m, "track_running_stats", False) else
           "in eval mode it maps x to Q(F(x)), F the CDF through its running quantiles and "
           "Q the target's quantile function, any Python callable evaluated in float64")
    raise ExportError(
        f"`model` holds the quantile map {_where(path)} ({type(m).__name__}), which cannot be "
        f"exported: {how}; torch.nn layers and ONNX operators have no exact form of it. "
        "Keep such a model in this package (save_model / load_model), or train one with "
        "a batch, group or layer norm for deployment")


# -- models ------------------------------------------------------------------------------


def _simple_cnn(m: SimpleCNN, path: str) -> nn.Module:
    return _SpatialMaxNet(plain(m.features, _join(path, "features")), m.head)


def _eq_cnn(m: EqCNN, path: str) -> nn.Module:
    layers = []
    for layer in m.features:
        if isinstance(layer, nn.Conv3d):  # (1, k, k) kernels: a 2-D convolution per rotation
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size[1:],
                             padding=layer.padding[1:], bias=layer.bias is not None,
                             device=layer.weight.device, dtype=layer.weight.dtype)
            with torch.no_grad():
                conv.weight.copy_(layer.weight.squeeze(2))
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias)
            layer = conv
        elif isinstance(layer, nn.MaxPool3d):
            layer = nn.MaxPool2d(layer.kernel_size[1:])
        layers.append(layer)
    return _RotationsNet(nn.Sequential(*layers), m.head)


def _group_cnn(m: nn.Module, path: str) -> nn.Module:
    return _GroupNet(plain(m.features, _join(path, "features")), plain(m.head, _join(path, "head")))


def _escnn_cnn(m: nn.Module, path: str) -> nn.Module:
    # escnn's own export: R2Conv -> Conv2d, InnerBatchNorm -> BatchNorm2d, ReLU -> ReLU
    blocks = nn.ModuleList(block.export() for block in m.blocks)
    return _EscnnNet(blocks, plain(m.head, _join(path, "head")))


def _converters() -> list[tuple[type, Callable[[nn.Module, str], nn.Module]]]:
    """``(class, converter)``, first match wins. A module converts only when its
    ``forward`` is the class's: a subclass with a forward of its own is traced as written."""
    table = [
        (SimpleCNN, _simple_cnn),
        (EqCNN, _eq_cnn),
        (GroupCNN, _group_cnn),  # C4CNN, D4CNN
    ]
    escnn_networks = sys.modules.get("equivariance.escnn_models.networks")
    if escnn_networks is not None:  # only loaded (with escnn) if a model came from it
        table.append((escnn_networks.EscnnCNN, _escnn_cnn))
    return table + [
        (GroupLiftingConv2d, lambda m, p: m.export()),
        (GroupConv2d, lambda m, p: m.export()),
        (GroupBatchNorm2d, _batch_norm),
        (GroupPool, lambda m, p: _FieldPool(m.group.order, m.mode)),
        (GroupMaxPool2d, lambda m, p: _ParityMaxPool()),
        (GroupInvariantLinear, _invariant_head),
        (SyncFieldBatchNorm, lambda m, p: plain(m.bn, _join(p, "bn"))),
    ]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _where(path: str) -> str:
    return f"`{path}`" if path else "itself"


def _foreign(module: nn.Module) -> str | None:
    """The package (``equivariance`` or ``escnn``) a module's class comes from, or None."""
    top = type(module).__module__.split(".")[0]
    return top if top in ("equivariance", "escnn") else None


def plain(module: nn.Module, path: str = "") -> nn.Module:
    """Replace the package's layers and models in ``module`` by plain equivalents.

    Args:
        module: an eval-mode copy of the model (changed in place).
        path: the module's name in the model (``""`` for the model itself).

    Returns:
        ``module`` or its replacement.

    Raises:
        ExportError: a layer of this package or escnn that has no plain form here.
    """
    if isinstance(module, _QuantileMap):
        _quantile_map(module, path)
    for cls, convert in _converters():
        if isinstance(module, cls) and type(module).forward is cls.forward:
            return convert(module, path)
    owner = _foreign(module)
    if owner is not None:
        hint = ("escnn modules take GeometricTensors: export them with escnn's own export()"
                if owner == "escnn" else "the exporter knows the package's models and group "
                "layers, and torch.nn layers")
        raise ExportError(
            f"`model` holds a layer the exporter does not know: {_where(path)} "
            f"({type(module).__module__}.{type(module).__qualname__}); {hint}")
    for name, child in list(module.named_children()):
        module._modules[name] = plain(child, _join(path, name))
    return module


def fix_pools(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Replace every parity-aware pool by an ``nn.MaxPool2d`` with the window it uses
    for inputs of ``input_shape`` (found by one forward pass on zeros).

    A fixed window is what ONNX's MaxPool (and TorchScript-based exporters) need. A pool
    that sees sides of different parities (a shared module) stays as it is.

    Returns:
        The number of pools replaced.

    Raises:
        ValueError: ``input_shape`` does not fit the model.
    """
    pools = {name: m for name, m in module.named_modules() if isinstance(m, _ParityMaxPool)}
    seen: dict[str, set] = {name: set() for name in pools}
    hooks = [m.register_forward_pre_hook(
        lambda _m, args, name=name: seen[name].add((args[0].shape[-2] % 2, args[0].shape[-1] % 2)))
        for name, m in pools.items()]
    param = next(module.parameters(), None)
    factory = {} if param is None else {"device": param.device, "dtype": param.dtype}
    try:
        with torch.no_grad():
            module(torch.zeros((1, *input_shape), **factory))
    except Exception as err:  # noqa: BLE001 (any failure means the shape does not fit)
        raise ValueError(f"`input_shape` {tuple(input_shape)} does not fit the model: "
                         f"{err}") from None
    finally:
        for hook in hooks:
            hook.remove()
    replaced = 0
    for name, parities in seen.items():
        if len(parities) != 1:
            continue
        (ph, pw), = parities
        parent, _, child = name.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        owner._modules[child] = nn.MaxPool2d((2 + ph, 2 + pw), stride=2, padding=(ph, pw))
        replaced += 1
    return replaced
