"""Class names of labelled data, and labels mapped onto a model's classes by name.

A model trained on named classes (``model.class_names``) gives class ``i`` the name
``class_names[i]``. Labelled data may carry names too: a Fashion-MNIST data set, an
image folder (its sub-folders), a dict with ``class_names``, an R factor (its levels).
When both have names, the data's labels are translated onto the model's classes by
name, so that a factor whose levels are in another order, or a test set listing its
classes differently, is scored against the right class: comparing indices alone gives
a wrong accuracy with no error. Integer labels without names are taken as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .._validation import labels_out_of_range

__all__ = ["class_names_of", "check_label_range", "onto_classes"]


def class_names_of(data: Any) -> list[str] | None:
    """The class names a labelled data set carries, or ``None``.

    Looks at a dict's ``"class_names"`` key, then at the attributes ``class_names`` and
    ``classes`` (torchvision's ``ImageFolder``), then at a ``DataLoader``'s data set.

    Args:
        data: any labelled data ``fit`` or ``evaluate`` accepts.

    Returns:
        The names, class ``i`` first at index ``i``, or ``None`` when the data has none.
    """
    if isinstance(data, dict):
        names = data.get("class_names")
    else:
        names = getattr(data, "class_names", None)
        if names is None:
            names = getattr(data, "classes", None)
        if names is None and isinstance(data, torch.utils.data.DataLoader):
            return class_names_of(data.dataset)
    if names is None or isinstance(names, str):
        return None
    try:
        return [str(n) for n in names]
    except TypeError:
        return None


def onto_classes(y: torch.Tensor, names: Sequence[str] | None,
                 classes: Sequence[str] | None, name: str) -> torch.Tensor:
    """Labels ``y`` of data whose class ``i`` is ``names[i]``, as indices of ``classes``.

    Args:
        y: labels from 0 (``int64``).
        names: the data's class names (``None``: the labels are taken as they are).
        classes: the model's class names (``None``: the labels are taken as they are).
        name: the argument's name, for messages.

    Returns:
        The labels as indices into ``classes`` (``y`` itself when nothing changes).

    Raises:
        ValueError: a label without a name, or a name that is not one of ``classes``.
    """
    if names is None or classes is None or list(names) == list(classes):
        return y
    if y.numel() and int(y.max()) >= len(names):
        raise ValueError(f"`{name}` has {len(names)} class names but a label "
                         f"{int(y.max())} (labels count from 0)")
    index = {c: i for i, c in enumerate(classes)}
    used = sorted({int(v) for v in y.unique().tolist()})
    unknown = [names[i] for i in used if names[i] not in index]
    if unknown:
        raise ValueError(
            f"`{name}` has classes the model does not know: {_quoted(unknown)}; the "
            f"model's classes are {_quoted(classes)} (labels are matched by name)"
        )
    table = torch.tensor([index.get(n, -1) for n in names], dtype=torch.long)
    return table.to(y.device)[y]


def check_label_range(y: torch.Tensor, num_classes: int, name: str) -> None:
    """Raise when a label is not a class of a model with ``num_classes`` outputs.

    Args:
        y: labels from 0.
        num_classes: the model's number of logits.
        name: the argument's name, for messages.

    Raises:
        ValueError: naming ``name``, the labels' range and the model's classes.
    """
    if not y.numel():
        return
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise ValueError(labels_out_of_range(name, num_classes, low, high))


def _quoted(names: Sequence[str]) -> str:
    shown = ", ".join(repr(str(n)) for n in list(names)[:10])
    return f"[{shown}{', ...' if len(names) > 10 else ''}]"
