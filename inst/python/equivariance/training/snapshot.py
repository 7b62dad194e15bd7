"""A copy of a model's weights and buffers that survives wrapping and unwrapping.

Early stopping keeps the best epoch's weights while the model is being trained, when
its batch norm layers may be wrapped for synchronisation (``SyncFieldBatchNorm``
adds a ``.bn`` to their state-dict keys) or the model sits inside
``DistributedDataParallel`` (``module.``); the weights are put back after the
wrapping is undone. A state dict is keyed by names, which the wrapping changes; this
copy is keyed by the modules that own the tensors, which it does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..modes import preserved_modes

__all__ = ["Snapshot"]


@dataclass
class Snapshot:
    """The parameters and buffers of every module of a model, copied.

    Attributes:
        entries: ``(module, kind, name, copy)`` with ``kind`` ``"_parameters"`` or
            ``"_buffers"``.
    """

    entries: list[tuple[nn.Module, str, str, torch.Tensor]]

    @classmethod
    def take(cls, model: nn.Module) -> Snapshot:
        """Copy every parameter and buffer of ``model`` (wrapped or not)."""
        entries = []
        for module in model.modules():
            for kind in ("_parameters", "_buffers"):
                for name, tensor in getattr(module, kind).items():
                    if tensor is not None:
                        entries.append((module, kind, name, tensor.detach().clone()))
        return cls(entries)

    def restore(self, model: nn.Module) -> None:
        """Copy the saved values back into the same modules' tensors.

        Done in training mode: modules that derive a cache from their weights on
        ``eval()`` (escnn's convolutions) rebuild it when the modes are put back.
        """
        with torch.no_grad(), preserved_modes(model, "train"):
            for module, kind, name, saved in self.entries:
                current = getattr(module, kind).get(name)
                if current is not None and current.shape == saved.shape:
                    current.copy_(saved)
                elif kind == "_buffers":
                    module._buffers[name] = saved.clone()
                else:
                    raise RuntimeError(f"the parameter {name!r} of a "
                                       f"{type(module).__name__} changed during training; "
                                       "the best weights cannot be put back")
