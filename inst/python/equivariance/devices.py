"""Where a model computes (device) and in which floating type (dtype).

Devices are named the same way everywhere in the package: ``"auto"`` (CUDA when
available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"`` or a
``torch.device``; :func:`resolve_device` turns such a name into a device or a clear
error, without touching the GPU.

One rule for the whole package, so that data, sampled points and inputs given by the
user all reach a model as it expects them: a float64 or integer batch given to a
float32 model is converted instead of failing inside the first layer with torch's
dtype error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Union

import torch
from torch import nn

from ._validation import is_whole_number

__all__ = [
    "as_model_input", "find_device_dtype", "image_batch", "model_device_dtype",
    "model_in_channels", "on_device", "resolve_device",
]

DEVICE_NAMES = '"auto", "cpu", "cuda", "cuda:<index>" or "mps"'

DeviceLike = Union[str, torch.device, None]


def find_device_dtype(model: Any) -> tuple[torch.device, torch.dtype] | None:
    """The device and dtype of a model's first parameter, else of its first floating
    buffer; ``None`` when it has neither (or is a plain function).

    Args:
        model: an ``nn.Module`` or any callable.

    Returns:
        ``(device, dtype)`` or ``None``.
    """
    if isinstance(model, nn.Module):
        for t in model.parameters():
            return t.device, t.dtype
        for t in model.buffers():
            if t.is_floating_point():
                return t.device, t.dtype
    return None


def model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    """What a model computes with: :func:`find_device_dtype`, or the CPU and torch's
    default dtype for a model with neither parameters nor floating buffers.

    Args:
        model: an ``nn.Module`` or any callable.

    Returns:
        ``(device, dtype)``.
    """
    found = find_device_dtype(model)
    return found if found is not None else (torch.device("cpu"), torch.get_default_dtype())


def as_model_input(x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``x`` on ``device``, its values in ``dtype`` (a no-op when already so).

    Integer, boolean and floating inputs all become ``dtype``: pixel values keep their
    meaning; complex inputs are left to the model.

    Args:
        x: a batch of inputs.
        device, dtype: what the model computes with (see :func:`model_device_dtype`).

    Returns:
        The converted tensor.

    Shape:
        Unchanged.
    """
    if x.is_complex():
        return x.to(device=device)
    return x.to(device=device, dtype=dtype)


# -- images a model takes ---------------------------------------------------------------------


def model_in_channels(model: Any) -> int | None:
    """The channels a model takes: its ``in_channels``, else its first layer's that has
    one (a ``Conv2d``, a C4 lifting convolution); ``None`` when nothing says."""
    for module in model.modules() if isinstance(model, torch.nn.Module) else ():
        c = getattr(module, "in_channels", None)
        if is_whole_number(c):  # numpy's integers too
            return int(c)
    return None


def image_batch(x: torch.Tensor, in_channels: int | None, name: str) -> torch.Tensor:
    """``x`` as images ``(N, C, H, W)``: ``(N, H, W)`` gains a channel, and the shape is
    checked when ``in_channels`` is known (naming channels-last arrays as such).

    Shape:
        ``(N, H, W)`` or ``(N, C, H, W)`` -> ``(N, C, H, W)``; other shapes pass when
        ``in_channels`` is ``None`` (a model of vectors, say).
    """
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if in_channels is None or (x.dim() == 4 and x.shape[1] == in_channels):
        return x
    expected = f"(N, {in_channels}, H, W)" + (" or (N, H, W)" if in_channels == 1 else "")
    hint = ""
    if x.dim() == 4 and x.shape[-1] == in_channels:
        hint = ("; channels last? reorder to (N, C, H, W) with x.permute(0, 3, 1, 2) in "
                "Python or aperm(x, c(1, 4, 2, 3)) in R")
    raise ValueError(f"`{name}` must be images of shape {expected}, got shape "
                     f"{tuple(x.shape)}{hint}")


# -- named devices ---------------------------------------------------------------------------


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: DeviceLike, name: str = "device") -> torch.device | None:
    """The ``torch.device`` a device name stands for, checked to exist here.

    Args:
        device: ``None`` (returned as is: the caller keeps the model's device),
            ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"``, ``"mps"``, or a ``torch.device``.
        name: the argument's name, for error messages.

    Returns:
        A ``torch.device``, or ``None`` for ``None``.

    Raises:
        TypeError: ``device`` is not a string or ``torch.device``.
        ValueError: an unknown name, or a device this machine does not have (the
            message suggests ``"auto"``).
    """
    if device is None:
        return None
    if isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(device)
        except RuntimeError:
            raise ValueError(f"`{name}` must be {DEVICE_NAMES}, got {device!r}") from None
    if not isinstance(device, torch.device):
        raise TypeError(f"`{name}` must be {DEVICE_NAMES} or a torch.device, got "
                        f"{type(device).__name__}")
    if device.type == "cuda":
        _check_cuda(device, name)
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"`{name}` is \"mps\" but MPS (Apple GPU) is not available here; "
                         "use device=\"auto\" to run on the best device available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"`{name}` must be {DEVICE_NAMES}, got {str(device)!r}")
    return device


def _check_cuda(device: torch.device, name: str) -> None:
    if not torch.cuda.is_available():
        raise ValueError(
            f"`{name}` is {str(device)!r} but CUDA is not available (torch "
            f"{torch.__version__}, no usable NVIDIA GPU); use device=\"auto\" to run on "
            "the GPU when there is one and on the CPU otherwise"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"`{name}` is {str(device)!r} but this machine has {count} CUDA "
                         f"device(s), numbered from 0")


@contextlib.contextmanager
def on_device(model: nn.Module, device: torch.device | None) -> Iterator[torch.device]:
    """Run a block with ``model`` on ``device`` (``None``: where it is), then move it back."""
    home = model_device_dtype(model)[0]
    if device is None or same_device(device, home):
        yield home
        return
    model.to(device)
    try:
        yield device
    finally:
        model.to(home)


def same_device(device: torch.device, home: torch.device) -> bool:
    """Whether a model on ``home`` already is on ``device``."""
    # "cuda" without an index means the current CUDA device: any cuda model is there
    return device.type == home.type and (device.index is None or device.index == home.index)
