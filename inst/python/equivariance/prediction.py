"""Prediction with a trained classifier: :func:`predict`.

``predict`` runs a model the way inference should run: in eval mode, without
gradients, in batches, and leaves the model as it found it (every module's training
flag, its device). It accepts the same images as training does, ``(N, C, H, W)`` or
``(N, H, W)`` (one channel), as a tensor or an array, and converts them to the
model's dtype.

Devices are named as everywhere in the package (see
:func:`equivariance.devices.resolve_device`).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import positive_int
from .devices import (
    DeviceLike, image_batch, model_device_dtype, model_in_channels, on_device, resolve_device,
)
from .modes import preserved_modes

__all__ = ["predict"]

TYPES = ("prob", "class", "logits")


# -- inputs and outputs ----------------------------------------------------------------------


def as_images(x: Any, in_channels: Optional[int] = None, dtype: Optional[torch.dtype] = None,
              name: str = "x") -> torch.Tensor:
    """Images ``(N, C, H, W)`` from a tensor or array ``(N, C, H, W)`` or ``(N, H, W)``.

    Args:
        x: a tensor, numpy array or nested sequence of numbers.
        in_channels: the channels the model expects (checked when given).
        dtype: the floating dtype wanted (``None``: floating input keeps its own,
            integer input becomes torch's default).
        name: the argument's name, for error messages.

    Returns:
        A floating tensor of shape ``(N, C, H, W)``, on the device ``x`` was on.

    Raises:
        TypeError: booleans, complex numbers or non-numbers.
        ValueError: another number of dimensions or channels, or NaN/infinite values.
    """
    if not isinstance(x, torch.Tensor):
        try:
            array = np.asarray(x)
            # read-only arrays (from R, say) are copied: torch warns about sharing them
            x = torch.as_tensor(array if array.flags.writeable else array.copy())
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"`{name}` must be images as a tensor or a numeric array, got "
                            f"{type(x).__name__}") from None
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}")
    x = image_batch(x, in_channels, name)  # the shape rule fit() applies too
    if x.dim() != 4:
        raise ValueError(f"`{name}` must be images of shape (N, C, H, W) or (N, H, W), got "
                         f"shape {tuple(x.shape)}")
    bad = int((~torch.isfinite(x)).sum()) if x.is_floating_point() else 0
    if bad:
        raise ValueError(f"`{name}` must hold finite numbers, got {bad} NaN or infinite "
                         "value(s)")
    cast = x.to(dtype or (x.dtype if x.is_floating_point() else torch.get_default_dtype()))
    bad = int((~torch.isfinite(cast)).sum())
    if bad:  # finite before the cast: too large for a narrower dtype
        raise ValueError(f"`{name}` has {bad} value(s) too large for {cast.dtype}")
    return cast


def model_class_names(model: nn.Module) -> Optional[list[str]]:
    """The model's ``class_names`` (set by ``fit`` or ``load_model``), checked, or ``None``.

    Raises:
        ValueError: ``class_names`` is not a sequence of distinct non-empty strings.
    """
    names = getattr(model, "class_names", None)
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(
            isinstance(n, str) and n for n in names):
        raise ValueError(f"`model.class_names` must be a list of non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"`model.class_names` must be distinct, got {list(names)!r}")
    return [str.__str__(n) for n in names]  # plain strings (numpy's str_ is a subclass)


def _check_logits(out: Any, n: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != n:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"`model` must return logits of shape (N, num_classes) for N = {n} "
                         f"images, got {got}: predict() is for classifiers")
    return out


def _forward(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    """The model's logits for ``xb``; its failures named as failures on ``x``."""
    try:
        out = model(xb)
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        if xb.shape[0] == 0:
            raise ValueError(f"`x` holds no images (shape {tuple(xb.shape)}) and this model "
                             "cannot run on an empty batch") from err
        raise ValueError(f"the model cannot run on the images of `x` (a batch of shape "
                         f"{tuple(xb.shape)}): {err}") from err
    return _check_logits(out, xb.shape[0])


# -- predict -------------------------------------------------------------------------------


def predict(
    model: nn.Module,
    x: Any,
    type: str = "prob",  # noqa: A002 - the name keras and R users know
    batch_size: int = 256,
    device: DeviceLike = None,
    names: bool = False,
) -> Union[torch.Tensor, list[str]]:
    """Class probabilities, classes or logits of a classifier for new images.

    Runs in eval mode and without gradients, ``batch_size`` images at a time, and
    leaves every module's training flag and the model's device as they were.

    Args:
        model: a torch module returning logits ``(N, num_classes)``.
        x: images ``(N, C, H, W)`` or ``(N, H, W)`` (one channel), a tensor or an
            array; converted to the model's dtype (and device) batch by batch.
        type: ``"prob"`` (softmax over the classes), ``"class"`` (index of the
            largest logit, from 0) or ``"logits"`` (the model's output).
        batch_size: images per forward pass.
        device: ``None`` (where the model is), ``"auto"``, ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"``, ``"mps"`` or a ``torch.device``; the model is moved
            there for the call and back afterwards.
        names: with ``type="class"``, return the class names (``model.class_names``,
            set by ``fit`` on named labels or by ``load_model``) instead of indices.

    Returns:
        A tensor on the CPU: probabilities or logits ``(N, num_classes)``, or class
        indices ``(N,)`` (int64); with ``names=True``, a list of ``N`` class names.

    Shape:
        ``(N, C, H, W) -> (N, num_classes)`` (``"prob"``, ``"logits"``) or ``(N,)``.

    Raises:
        ValueError: a bad ``type``, ``batch_size``, ``device`` or ``x``; a model
            whose output or ``class_names`` do not fit.
        TypeError: ``model`` is not a torch module, or ``x`` not numbers.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {model.__class__.__name__}")
    if not isinstance(type, str) or type not in TYPES:
        raise ValueError(f"`type` must be one of \"prob\", \"class\" or \"logits\", got {type!r}")
    batch_size = positive_int(batch_size, "batch_size")
    if not isinstance(names, bool):
        raise TypeError(f"`names` must be True or False, got {names!r}")
    class_names = model_class_names(model)
    if names and (type != "class" or class_names is None):
        raise ValueError("`names=True` needs type=\"class\" and a model with `class_names` "
                         f"(got type={type!r}, class_names={class_names!r})")
    target = resolve_device(device)
    images = as_images(x, model_in_channels(model), model_device_dtype(model)[1])
    with preserved_modes(model, "eval"), on_device(model, target) as where, torch.no_grad():
        out, num_classes = _run(model, images, type, batch_size, where)
    if class_names is not None and type != "logits" and num_classes != len(class_names):
        raise ValueError(f"`model.class_names` has {len(class_names)} names but the model "
                         f"returns {num_classes} logits")
    if names:
        return [class_names[i] for i in out.tolist()]
    return out


def _run(model: nn.Module, images: torch.Tensor, type: str, batch_size: int,  # noqa: A002
         device: torch.device) -> tuple[torch.Tensor, int]:
    """The batched forward passes: the results gathered on the CPU, and the number of
    logits per image."""
    n = images.shape[0]
    # one pass even for N = 0, so the result has the model's number of classes
    starts = range(0, n, batch_size) if n else [0]
    parts = []
    for start in starts:
        xb = images[start:start + batch_size].to(device)
        logits = _forward(model, xb)
        num_classes = logits.shape[1]
        if type == "prob":
            logits = F.softmax(logits, dim=1)
        elif type == "class":
            logits = logits.argmax(dim=1)
        parts.append(logits.cpu())
    return torch.cat(parts), num_classes
