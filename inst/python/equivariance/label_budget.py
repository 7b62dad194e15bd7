"""A label budget: train on a few labelled images, the rest left without labels.

:func:`~equivariance.rotation_benchmark` with ``labels=1000`` keeps a class-balanced
subset of the training images with their labels (:func:`balanced_subset`) and gives
the rest, without labels, to the regularized row (``fit(..., unlabeled_data=...)``).
So that ``epochs`` means the same number of steps as with all the labels, the subset
is repeated to the size of the whole training set (:func:`repeated`): an epoch keeps
the length of a full-data epoch, its batches cycling through the labelled images.
"""

from __future__ import annotations

from typing import Any

import torch

from ._validation import is_whole_number
from .data import as_tensors

__all__ = ["balanced_subset", "check_labels", "repeated", "split_labels"]


def check_labels(labels: Any, train_size: int, num_classes: int) -> int | None:
    """``labels`` (the number of labelled training images) checked.

    Args:
        labels: ``None`` (every image keeps its label) or a whole number from
            ``num_classes`` to ``train_size``.
        train_size: images in the training set.
        num_classes: classes in it (one labelled image per class at least).

    Returns:
        ``labels`` as an ``int``, or ``None``.
    """
    if labels is None:
        return None
    if isinstance(labels, bool) or not is_whole_number(labels):
        raise ValueError(f"`labels` must be a whole number of labelled training images (or "
                         f"None for all), got {labels!r}")
    n = int(labels)
    if not num_classes <= n <= train_size:
        raise ValueError(f"`labels` must be from {num_classes} (one image per class) to "
                         f"{train_size:,} (the training set), got {n:,}")
    return n


def balanced_subset(labels: torch.Tensor, size: int, seed: int | None = None) -> torch.Tensor:
    """Indices of a class-balanced random subset of ``size`` images.

    Every class present gets ``size // C`` images (``C`` classes); the ``size % C``
    left over go to classes drawn at random, one each. A class with too few images
    gives all it has, the others fill in. Drawn with ``seed`` (``None``: torch's
    global generator).

    Args:
        labels: the class of every image, ``(N,)``.
        size: how many images, at most ``N``.
        seed: seeds the draw.

    Returns:
        ``size`` distinct indices into ``labels``, sorted.
    """
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
    labels = torch.as_tensor(labels).reshape(-1)
    if not 0 <= size <= labels.numel():
        raise ValueError(f"`labels` must be at most the {labels.numel():,} training images, "
                         f"got {size:,}")
    classes = torch.unique(labels)
    pools = [torch.nonzero(labels == c).flatten() for c in classes]
    pools = [p[torch.randperm(p.numel(), generator=gen)] for p in pools]
    quota = torch.full((len(pools),), size // len(pools), dtype=torch.long)
    quota[torch.randperm(len(pools), generator=gen)[: size % len(pools)]] += 1
    available = torch.tensor([p.numel() for p in pools])
    quota = torch.minimum(quota, available)
    while int(quota.sum()) < size:  # small classes: the others give one more each
        room = torch.nonzero(quota < available).flatten()
        extra = room[torch.randperm(room.numel(), generator=gen)][: size - int(quota.sum())]
        quota[extra] += 1
    chosen = torch.cat([p[: int(q)] for p, q in zip(pools, quota)])
    return chosen.sort().values


def repeated(index: torch.Tensor, length: int, seed: int | None = None) -> torch.Tensor:
    """``index`` repeated, each pass in a fresh random order, cut to ``length``.

    Args:
        index: the indices of the labelled images.
        length: how many entries (the size of the full training set).
        seed: seeds the orders.

    Returns:
        ``length`` indices: every labelled image as often as the others, within one.
    """
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
    passes = -(-length // index.numel())
    order = [index[torch.randperm(index.numel(), generator=gen)] for _ in range(passes)]
    return torch.cat(order)[:length]


def split_labels(train: Any, labels: int | None, seed: int | None) -> tuple[Any, Any]:
    """The labelled training data and the unlabeled images of a label budget.

    Args:
        train: the training data (in memory: images and labels).
        labels: the budget (``None``: every image labelled, nothing unlabeled).
        seed: seeds the subset and the orders.

    Returns:
        ``(train, None)`` without a budget; else ``((x, y), unlabeled)``: the balanced
        subset repeated to the training set's size (an epoch keeps its number of steps)
        and the other images, without labels.
    """
    if labels is None:
        return train, None
    x, y = as_tensors(train, "data")
    chosen = balanced_subset(y, labels, seed)
    rest = torch.ones(x.shape[0], dtype=torch.bool)
    rest[chosen] = False
    order = repeated(chosen, x.shape[0], seed)
    return (x[order], y[order]), x[rest]
