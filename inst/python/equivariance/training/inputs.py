"""Checks of what reaches the model in training: data, augmented batches, outputs.

Every failure names the argument that caused it (``data``, ``validation_data``,
``augment``, ``model``) and what was expected, before any training happens where that
is possible: :func:`probe` runs the model once on one image of each data set, so that
images too small for the model, or a model whose output is not ``(N, classes)``, fail
at once and not after a whole epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import is_real_number, labels_out_of_range
from ..data import as_tensors, holdout
from ..data.labels import class_names_of, onto_classes
from ..devices import as_model_input, image_batch, model_in_channels
from ..modes import preserved_modes
from ..prediction import model_class_names

__all__: list[str] = []

#: errors a model's forward pass raises on input it cannot take
FORWARD_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)


def logits_of(out: Any, n: int, name: str) -> torch.Tensor:
    """``out`` if it is logits ``(n, classes)``, else a ValueError naming ``name``."""
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == n:
        return out
    got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
    raise ValueError(f"`model` must return logits of shape (N, num_classes) for the "
                     f"{n} image(s) of `{name}`, got {got} (a classifier ends in a "
                     "flattened linear layer or a global pooling)")


def forward(model: nn.Module, xb: torch.Tensor, name: str, logits: bool = True) -> Any:
    """``model(xb)``, with a failure of the model reported as one on ``name``'s images
    and, with ``logits``, an output that is not ``(N, classes)`` as an error too."""
    try:
        out = model(xb)
    except FORWARD_ERRORS as err:
        raise ValueError(f"the model cannot run on the images of `{name}` (a batch of "
                         f"shape {tuple(xb.shape)}): {err}") from err
    return logits_of(out, xb.shape[0], name) if logits else out


@torch.no_grad()
def probe(model: nn.Module, images: list[tuple[str, torch.Tensor]], recipe: Any) -> None:
    """Run ``model`` once, in eval mode, on the first image of each of ``images``.

    Args:
        model: the classifier (its modes and buffers are left as they were).
        images: ``(argument, images)`` of the data sets to try.
        recipe: the training's ``_Recipe``: the labels' ranges (``labels``), the number
            of class names (``num_names``), the model's ``device`` and ``dtype``.

    Raises:
        ValueError: naming the argument whose images the model cannot take, a model
            whose output is not ``(N, classes)``, or labels beyond its classes.
    """
    with preserved_modes(model, "eval"):
        for name, x in images:
            out = forward(model, as_model_input(x[:1], recipe.device, recipe.dtype), name)
            check_classes(recipe.labels, recipe.num_names, out)


def augmented(augment: Callable[[torch.Tensor], Any], xb: torch.Tensor) -> torch.Tensor:
    """``augment(xb)``, checked: a batch of as many images with as many channels."""
    out = augment(xb)
    if isinstance(out, np.ndarray):  # e.g. an R function returning an R array
        # R's arrays reach numpy read-only; torch warns on (and must not write to) those
        out = torch.as_tensor(out if out.flags.writeable else out.copy())
    if (not isinstance(out, torch.Tensor) or out.dim() != xb.dim()
            or out.shape[:2] != xb.shape[:2]):
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"`augment` must return a batch of {xb.shape[0]} images with {xb.shape[1]} "
            f"channel(s), shape ({xb.shape[0]}, {xb.shape[1]}, H, W), for a batch of shape "
            f"{tuple(xb.shape)}, got {got}"
        )
    return as_model_input(out, xb.device, xb.dtype)


def check_classes(labels: tuple[tuple[str, int, int], ...], num_names: int | None,
                  logits: torch.Tensor) -> None:
    """Labels beyond the model's logits fail here with their argument's name, not as
    cross-entropy's "Target 10 is out of bounds"."""
    c = logits.shape[-1] if logits.dim() == 2 else None
    if c is None:
        return
    for name, low, high in labels:
        if high >= c:
            raise ValueError(labels_out_of_range(name, c, low, high))
    if num_names is not None and num_names != c:
        raise ValueError(f"`class_names` (in R: the levels of the factor of labels) has "
                         f"{num_names} names but the model returns {c} logits")


@dataclass(frozen=True)
class LabelledData:
    """What :func:`labelled_data` found: images, labels, ranges and class names."""

    x: torch.Tensor
    y: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor] | None
    labels: tuple[tuple[str, int, int], ...]
    classes: list[str] | None

    held_out: bool  # the validation images are a part of `data`

    def unseen_images(self) -> list[tuple[str, torch.Tensor]]:
        """``(argument, images)`` of validation images the first training step does not
        try: the model is probed on them before training (see :func:`probe`)."""
        return [] if self.val is None or self.held_out else [("validation_data", self.val[0])]


def labelled_data(model: nn.Module, data: Any, validation_data: Any, seed: int | None,
          names: list[str] | None) -> LabelledData:
    """The training images and labels, the validation pair (``None`` without validation
    data), the labels' ranges (see :class:`_Recipe`) and the class names to keep.

    Labels of data with class names (``names``, or names the data carries) are mapped
    onto the model's classes by name when the model has class names already; the
    validation labels onto the training classes. Validation images are checked up
    front like the model's input (finite, the right channels)."""
    in_channels = model_in_channels(model)
    x, y = as_tensors(data, "data")
    x, val = image_batch(x, in_channels, "data"), None
    names = class_names_of(data) if names is None else names
    classes = model_class_names(model) or names
    y = onto_classes(y, names, classes, "data")
    fraction = isinstance(validation_data, (bool, np.bool_)) or is_real_number(validation_data)
    if fraction:
        (x, y), val = holdout(x, y, validation_data, seed)
    elif validation_data is not None:
        xv, yv = as_tensors(validation_data, "validation_data", finite=True)
        yv = onto_classes(yv, class_names_of(validation_data), classes, "validation_data")
        val = (image_batch(xv, in_channels, "validation_data"), yv)
    labels = [("data", int(y.min()), int(y.max()))]
    if val is not None:
        labels.append(("validation_data", int(val[1].min()), int(val[1].max())))
    return LabelledData(x, y, val, tuple(labels), classes, fraction)
