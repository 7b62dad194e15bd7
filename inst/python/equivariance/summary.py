"""A model's layers, their output shapes and parameter counts: :func:`summary`.

The layers listed are the modules that hold parameters of their own or have no
submodules (convolutions, norms, activations, pools), under their qualified names
(``features.0``). Output shapes come from one forward pass of a batch of one zero
image, run in eval mode without gradients (every module's mode is restored), when the
input shape is given or known: the ``input_shape`` that :func:`~equivariance.fit`
records on the models it trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._validation import shape_tuple
from .devices import model_device_dtype
from .modes import preserved_modes

__all__ = ["ModelSummary", "summary"]


@dataclass
class ModelSummary:
    """What :func:`summary` found.

    Attributes:
        name, kind, output_shape, params: one entry per layer: qualified name, class
            name, output shape without the batch dimension (``None`` when unknown) and
            the number of parameters it owns.
        total, trainable: parameters of the whole model (shared ones counted once),
            and those with ``requires_grad``.
        input_shape: the shape of one input, or ``None``.
    """

    name: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    output_shape: list[tuple[int, ...] | None] = field(default_factory=list)
    params: list[int] = field(default_factory=list)
    total: int = 0
    trainable: int = 0
    input_shape: tuple[int, ...] | None = None
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (what the R wrapper turns into a data frame)."""
        return {
            "layers": {
                "name": list(self.name), "kind": list(self.kind), "params": list(self.params),
                "output_shape": [None if s is None else list(s) for s in self.output_shape],
            },
            "total": self.total, "trainable": self.trainable, "model": self.model,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def __str__(self) -> str:
        shapes = ["?" if s is None else "(" + ", ".join(map(str, s)) + ")"
                  for s in self.output_shape]
        rows = [("layer", "type", "output shape", "params")] + [
            (n, k, s, f"{p:,}") for n, k, s, p in zip(self.name, self.kind, shapes, self.params)
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{self.model}" + (f", input {tuple(self.input_shape)}"
                                    if self.input_shape is not None else "")]
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))))
        lines.append(f"total parameters: {self.total:,} ({self.trainable:,} trainable)")
        return "\n".join(lines)

    __repr__ = __str__


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    found = []
    for name, module in model.named_modules():
        own = any(True for _ in module.parameters(recurse=False))
        if name and (own or not any(True for _ in module.children())):
            found.append((name, module))
    return found or [(type(model).__name__, model)]


def _shape(out: Any) -> tuple[int, ...] | None:
    tensor = getattr(out, "tensor", out)  # escnn's GeometricTensor wraps a tensor
    return tuple(tensor.shape[1:]) if isinstance(tensor, torch.Tensor) else None


def _output_shapes(model: nn.Module, layers: list[tuple[str, nn.Module]],
                   input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...] | None]:
    shapes: dict[str, tuple[int, ...] | None] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:  # None: output kept
            shapes.setdefault(name, _shape(output))
        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in layers]
    device, dtype = model_device_dtype(model)
    try:
        with preserved_modes(model, "eval"), torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"`input_shape` {input_shape} does not fit the model: {err}") from None
    finally:
        for h in hooks:
            h.remove()
    return shapes


def summary(model: nn.Module, input_shape: Any = None) -> ModelSummary:
    """The layers of a model with their output shapes and parameter counts.

    Args:
        model: any ``nn.Module``.
        input_shape: the shape of one input without the batch dimension, e.g.
            ``(1, 28, 28)``; ``None``: ``model.input_shape`` when set (by
            :func:`~equivariance.fit`), else no output shapes.

    Returns:
        A :class:`ModelSummary`; ``print()`` shows it as a table.

    Shape:
        output shapes are per input, ``(C', H', W')`` for a batch ``(N, C', H', W')``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is not None:
        input_shape = shape_tuple(input_shape, "input_shape")
    layers = _layers(model)
    shapes = _output_shapes(model, layers, input_shape) if input_shape is not None else {}
    params = list({id(p): p for p in model.parameters()}.values())
    return ModelSummary(
        name=[n for n, _ in layers],
        kind=[type(m).__name__ for _, m in layers],
        output_shape=[shapes.get(n) for n, _ in layers],
        params=[sum(p.numel() for p in m.parameters(recurse=False)) for _, m in layers],
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        input_shape=input_shape,
        model=type(model).__name__,
    )
