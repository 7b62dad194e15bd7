"""Accuracy on rotated images: :func:`evaluate`.

The model runs in eval mode without gradients on copies of a data set turned by
quarter turns (``torch.rot90`` on the last two dimensions); besides the accuracy, it
measures how far the logits move under each rotation and what share of the images keeps
its class at every tested rotation (``agreement``). What :func:`~equivariance.fit`
measures on its validation data is :func:`.metrics.validation_figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._validation import flag, nonnegative_int, positive_int, quarter_turns
from ..data import adapters
from ..data.labels import check_label_range, class_names_of, onto_classes
from ..devices import (
    DeviceLike,
    as_model_input,
    model_device_dtype,
    model_in_channels,
    on_device,
    resolve_device,
)
from ..modes import preserved_modes
from ..prediction import model_class_names
from .inputs import forward

__all__ = ["agreement", "evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    rotations: Sequence[int] = (0, 1, 2, 3),
    batch_size: int = 1000,
    device: DeviceLike = "auto",
    mirror: bool = False,
    num_workers: int = 0,
) -> list[dict[str, Any]]:
    """Accuracy of a classifier on rotated copies of ``data``.

    The model runs in eval mode under ``torch.no_grad()`` (every module's mode is
    restored afterwards), in batches. Each image is rotated by ``k`` quarter turns
    counter-clockwise with ``torch.rot90(x, k, dims=(-2, -1))``. Images are converted
    to the model's device and dtype, batch by batch.

    Args:
        model: a classifier returning logits ``(N, num_classes)``.
        data: as in :func:`~equivariance.fit` (tensors, an image folder, any
            ``Dataset``, ``IterableDataset`` or ``DataLoader``, read batch by batch);
            its images must be finite. When both the data (a data set with class
            names, a dict with ``class_names``) and the model have class names, labels
            are matched to the model's classes by name.
        rotations: quarter turns, each 0, 1, 2 or 3 (for 0, 90, 180, 270 degrees).
        batch_size: images per forward pass.
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"``, ``"mps"``, a ``torch.device``, or ``None`` (where the
            model is); the model is moved there for the call and back afterwards.
        mirror: also test the images mirrored left to right, then turned by each of
            ``rotations`` (the other 4 elements of D4, ``flip_rot0`` to
            ``flip_rot270``); their rows follow the unmirrored ones.
        num_workers: background processes decoding streamed data's batches.

    Returns:
        One dict per rotation (and mirror): ``rotation`` (quarter turns), ``degrees``,
        ``mirrored`` (bool), ``accuracy`` (in [0, 1]), ``correct``, ``n``, and
        ``invariance_error``: the mean over images of ``|f(g x) - f(x)|`` divided by
        the mean of ``|f(x)|`` (Euclidean norms of the logits, ``x`` the image as it
        is; 0 for an exactly invariant model); ``agreement``, the same in every dict:
        the share (in [0, 1]) of images given the same class at every tested element
        (all of ``rotations``, and their mirrors with ``mirror``; 1 for an exactly
        invariant model; see :func:`agreement`).

    Shape:
        images ``(N, C, H, W)``; logits ``(N, num_classes)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    # labels of named classes (a factor, a data set with class names) count by name
    names, classes = class_names_of(data), model_class_names(model)
    ks = quarter_turns(rotations, "rotations")
    batch_size = positive_int(batch_size, "batch_size")
    batches = adapters.eval_batches(data, batch_size, "data",
                                    nonnegative_int(num_workers, "num_workers"),
                                    model_in_channels(model))
    elements = [(m, k) for m in ((False, True) if flag(mirror, "mirror") else (False,))
                for k in ks]
    with preserved_modes(model, "eval"), on_device(model, resolve_device(device)) as device:
        correct, diff, norm, n, agreeing = _scores(model, batches, elements, device,
                                                   (names, classes))
    if n == 0:
        raise ValueError("`data` holds no images")
    return [
        {
            "rotation": k,
            "degrees": 90 * k,
            "mirrored": m,
            "accuracy": correct[m, k] / n,
            "correct": correct[m, k],
            "n": n,
            "invariance_error": diff[m, k] / norm if norm > 0 else float("nan"),
            "agreement": agreeing / n,
        }
        for m, k in elements
    ]


def _scores(model: nn.Module, batches: Any, elements: list[tuple[bool, int]],
            device: torch.device, names: tuple[Any, Any]
            ) -> tuple[dict, dict, float, int, int]:
    """The correct counts and logit distances of every element (mirror, quarter turns),
    the sum of the upright logits' norms, the number of images and of those given the
    same class at every element, over ``batches`` (labels mapped from the data's class
    names ``names[0]`` onto the model's)."""
    dtype = model_device_dtype(model)[1]
    correct = {e: 0 for e in elements}
    diff = {e: 0.0 for e in elements}
    norm, n, agreeing = 0.0, 0, 0
    for xb, yb in batches:
        xb, yb = as_model_input(xb, device, dtype), yb.to(device=device)
        yb = onto_classes(yb, names[0], names[1], "data")
        n += xb.shape[0]
        upright = forward(model, xb, "data")
        # a label beyond the model's classes would count as wrong
        check_label_range(yb, upright.shape[1], "data")
        norm += float(upright.norm(dim=-1).sum())
        given = []  # the class given at each tested element
        for m, k in elements:
            xm = torch.flip(xb, dims=(-1,)) if m else xb  # mirror first, then turn
            out = upright if (k, m) == (0, False) else model(torch.rot90(xm, k, dims=(-2, -1)))
            given.append(out.argmax(dim=-1))
            correct[m, k] += int((given[-1] == yb).sum())
            diff[m, k] += float((out - upright).norm(dim=-1).sum())
        agreeing += same_class_count(given)
    return correct, diff, norm, n, agreeing


def same_class_count(classes: Sequence[torch.Tensor]) -> int:
    """How many images are given the same class by every one of ``classes``.

    Args:
        classes: one vector of predicted classes ``(N,)`` per transformation.

    Returns:
        The number of positions where all the vectors agree.
    """
    if not classes:
        return 0
    stacked = torch.stack(list(classes))
    return int((stacked == stacked[0]).all(dim=0).sum())


def agreement(classes: Sequence[Any]) -> float:
    """The share of images given the same class under every transformation.

    Args:
        classes: one vector of predicted classes per transformation (tensors or
            arrays of the same length ``N >= 1``).

    Returns:
        A fraction in [0, 1]; 1 when every vector is the same.

    Example:
        >>> agreement([torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 0])])
        0.75
    """
    tensors = [c if isinstance(c, torch.Tensor) else torch.as_tensor(c) for c in classes]
    if not tensors or tensors[0].numel() == 0 or any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError("`classes` must be one or more vectors of predicted classes of the "
                         "same length N >= 1")
    return same_class_count(tensors) / tensors[0].numel()
