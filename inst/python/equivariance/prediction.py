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

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import positive_int
from .data import adapters
from .devices import (
    DeviceLike,
    image_batch,
    model_device_dtype,
    model_in_channels,
    on_device,
    resolve_device,
)
from .modes import preserved_modes

__all__ = ["predict"]

TYPES = ("prob", "class", "logits")


# -- inputs and outputs ----------------------------------------------------------------------


def as_images(x: Any, in_channels: int | None = None, dtype: torch.dtype | None = None,
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
    if x.dim() == 3 and in_channels is not None and in_channels > 1 and x.shape[0] == in_channels:
        x = x.unsqueeze(0)  # one image (C, H, W) of a model of C channels
    elif x.dim() == 2 and in_channels in (None, 1):
        x = x.reshape(1, 1, *x.shape)  # one grey image (H, W)
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


def model_class_names(model: nn.Module) -> list[str] | None:
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


def _in_channels(model: nn.Module) -> int | None:
    """The channels the model was trained on (``input_shape``), else its first layer's."""
    shape = trained_shape(model)
    return shape[0] if shape is not None else model_in_channels(model)


def trained_shape(model: nn.Module) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of the images ``fit`` trained ``model`` on (``model.input_shape``),
    or ``None`` when it does not say."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, (tuple, list)) and len(shape) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in shape):
        return tuple(shape)
    return None


def input_record(model: nn.Module) -> dict:
    """What ``fit`` recorded about the model's input: one image's shape, the range of
    the training values (see :func:`~equivariance.predict`)."""
    out = {}
    shape, low_high = getattr(model, "input_shape", None), getattr(model, "input_range", None)
    if isinstance(shape, (tuple, list)) and all(isinstance(v, int) for v in shape):
        out["input_shape"] = [int(v) for v in shape]
    if isinstance(low_high, (tuple, list)) and len(low_high) == 2:
        out["input_range"] = [float(v) for v in low_high]
    return out


def restore_input(model: nn.Module, contents: dict) -> None:
    """Put back on a loaded model what :func:`input_record` saved."""
    shape, low_high = contents.get("input_shape"), contents.get("input_range")
    if isinstance(shape, list) and all(isinstance(v, int) for v in shape):
        model.input_shape = tuple(shape)
    if isinstance(low_high, list) and len(low_high) == 2:
        model.input_range = (float(low_high[0]), float(low_high[1]))


def _check_range(model: nn.Module, xb: torch.Tensor, name: str) -> bool:
    """Warn when ``xb``'s values lie far outside those ``model`` was trained on
    (``model.input_range``): beyond them by more than their width. Returns whether it
    warned."""
    trained = getattr(model, "input_range", None)
    if not isinstance(trained, (tuple, list)) or len(trained) != 2 or xb.numel() == 0:
        return False
    low, high = float(trained[0]), float(trained[1])
    width = max(high - low, 1e-6)
    lo, hi = float(xb.min()), float(xb.max())
    if lo >= low - width and hi <= high + width:
        return False
    hint = "; 0-255 images? divide them by 255" if hi > 2 * high + 50 and high <= 1.5 else ""
    warnings.warn(f"`{name}` has values from {lo:.4g} to {hi:.4g}, far outside the range "
                  f"the model was trained on ({low:.4g} to {high:.4g}){hint}", stacklevel=3)
    return True


def _size_mismatch(model: nn.Module, xb: torch.Tensor, name: str, err: Exception | None) -> None:
    """Images of another size than the training images: a ValueError when the model
    failed on them (``err``), else a warning, once per model; nothing for images of the
    training size."""
    shape = trained_shape(model)
    if shape is None or tuple(xb.shape[-2:]) == shape[1:]:
        return
    (h, w), (eh, ew) = tuple(xb.shape[-2:]), shape[1:]
    if err is not None:
        raise ValueError(f"`{name}`: the model was trained on images of {eh}x{ew} (height x "
                         f"width) and does not take images of {h}x{w}: resize them to {eh}x{ew} "
                         "(image_folder(..., size = ...) does)") from None
    if not getattr(model, "_warned_size", False):
        model._warned_size = True
        warnings.warn(f"`{name}`: the model was trained on images of {eh}x{ew} and is given "
                      f"images of {h}x{w}; it accepts them, but its accuracy on them is unknown",
                      stacklevel=3)


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
        _size_mismatch(model, xb, "x", err)  # another size than trained on: says so
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
) -> torch.Tensor | list[str]:
    """Class probabilities, classes or logits of a classifier for new images.

    Runs in eval mode and without gradients, ``batch_size`` images at a time, and
    leaves every module's training flag and the model's device as they were.

    Args:
        model: a torch module returning logits ``(N, num_classes)``.
        x: images ``(N, C, H, W)`` or ``(N, H, W)`` (one channel), one image
            ``(C, H, W)`` of a model of ``C > 1`` channels or one grey image
            ``(H, W)``, a tensor or an array; or a
            data set read batch by batch (an image folder, a ``Dataset`` of images or
            of ``(image, label)``, a ``DataLoader``). Converted to the model's dtype
            (and device) batch by batch. Images of another channel count than the
            model was trained on are an error; of another size, an error, or a warning
            (once) when the model takes them; values far outside the training range
            (``model.input_range``), a warning.
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
    dtype = model_device_dtype(model)[1]
    if adapters.is_stream(x):
        batches = (as_images(b, _in_channels(model), dtype)
                   for b in adapters.stream_images(x, batch_size))
    else:
        images = as_images(x, _in_channels(model), dtype)
        batches = (images[i:i + batch_size] for i in range(0, images.shape[0], batch_size)) \
            if images.shape[0] else iter([images])  # one pass for N = 0: the class count
    with preserved_modes(model, "eval"), on_device(model, target) as where, torch.no_grad():
        out, num_classes = _run(model, batches, type, where)
    if class_names is not None and type != "logits" and num_classes != len(class_names):
        raise ValueError(f"`model.class_names` has {len(class_names)} names but the model "
                         f"returns {num_classes} logits")
    if names:
        return [class_names[i] for i in out.tolist()]
    return out


def _run(model: nn.Module, batches: Any, type: str,  # noqa: A002
         device: torch.device) -> tuple[torch.Tensor, int]:
    """The batched forward passes: the results gathered on the CPU, and the number of
    logits per image."""
    parts, warned, num_classes = [], False, 0
    for i, xb in enumerate(batches):
        xb = xb.to(device)
        warned = warned or _check_range(model, xb, "x")
        logits = _forward(model, xb)
        if i == 0:
            _size_mismatch(model, xb, "x", None)
        num_classes = logits.shape[1]
        if type == "prob":
            logits = F.softmax(logits, dim=1)
        elif type == "class":
            logits = logits.argmax(dim=1)
        parts.append(logits.cpu())
    if not parts:
        raise ValueError("`x` holds no images")
    return torch.cat(parts), num_classes
