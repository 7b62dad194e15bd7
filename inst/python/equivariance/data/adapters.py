"""Any data set as batches: what :func:`~equivariance.fit`, :func:`~equivariance.evaluate`
and :func:`~equivariance.predict` read.

Two kinds of data:

* **in memory** (:class:`InMemory`): a :class:`~equivariance.data.FashionMNIST`, a
  ``TensorDataset``, a pair or dict of tensors/arrays. Batches are slices of tensors.
* **streamed** (:class:`Stream`): any other map-style ``torch.utils.data.Dataset``
  returning ``(image, label)`` (an :class:`~equivariance.data.ImageDataset` of files,
  say), an ``IterableDataset``, or a ``DataLoader``, used as given. Batches are read
  one at a time by a ``DataLoader`` (``num_workers`` background processes decode
  them), so data larger than memory trains.

The order of a map-style data set's images is the in-memory order: every epoch one
permutation drawn by the training's generator, cut into global batches; under
``torchrun`` each rank reads only its shard of every global batch
(:class:`ShardSampler`, a distributed batch sampler), so K ranks train as one process
does, to floating-point rounding, whether the data are in memory or in files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from .._validation import check_finite, nonnegative_int
from ..devices import image_batch
from .arrays import as_tensors, holdout_index
from .folders import unit_interval

__all__ = ["is_stream"]


def is_stream(data: Any) -> bool:
    """True for data read batch by batch: a ``DataLoader``, an ``IterableDataset``, or a
    map-style ``Dataset`` that does not hold its images as one tensor (``images`` and
    ``labels`` attributes, or a ``TensorDataset``)."""
    if isinstance(data, (DataLoader, IterableDataset)):
        return True
    if isinstance(data, TensorDataset) or (hasattr(data, "images") and hasattr(data, "labels")):
        return False
    return isinstance(data, Dataset)


def _map_style(data: Any) -> bool:
    return isinstance(data, Dataset) and not isinstance(data, IterableDataset)


# -- one batch, checked -----------------------------------------------------------------------


def collate_pairs(items: list[Any], name: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a list of ``(image, label)`` items into a batch (a ``DataLoader``'s
    ``collate_fn``); anything else is a ValueError naming ``name``."""
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            got = (f"a {type(item).__name__} of length {len(item)}"
                   if isinstance(item, (tuple, list)) else type(item).__name__)
            raise ValueError(f"`{name}` must return (image, label) pairs, got {got}")
    try:
        images = torch.stack([torch.as_tensor(np.asarray(i[0]) if not isinstance(i[0], torch.Tensor)
                                              else i[0]) for i in items])
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must return images of one shape as tensors or arrays "
                         f"({err})") from None
    labels = [int(i[1]) if isinstance(i[1], (int, np.integer)) else i[1] for i in items]
    try:
        labels = torch.as_tensor(np.asarray([np.asarray(v).item() for v in labels]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must return one whole-number label per image ({err})") from None
    return images, labels


def checked_batch(batch: Any, name: str, where: str, in_channels: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``(images, labels)`` checked as :func:`as_tensors` checks data (and its
    channels against ``in_channels``); errors say ``where`` the batch was."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"`{name}` must give (images, labels) batches, got "
                         f"{type(batch).__name__} at {where}")
    try:
        x, y = as_tensors(tuple(batch), name)
        return image_batch(x, in_channels, name), y
    except (TypeError, ValueError) as err:
        raise type(err)(f"{err} (the batch at {where})") from None


def _worker_error(err: BaseException) -> BaseException:
    """A DataLoader worker's exception as raised in the worker: the loader re-raises it
    with the worker's traceback as its message; its last line is the message."""
    text = str(err)
    if "DataLoader worker" not in text or "Traceback" not in text:
        return err
    last = text.strip().splitlines()[-1]
    message = last.split(": ", 1)[1] if ": " in last else last
    return type(err)(message)


def _iterate(loader: Any) -> Iterator[Any]:
    """``iter(loader)``, with a worker's exception raised with its own message."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 - re-raised, with its own message
            raise _worker_error(err) from None
        yield batch


# -- the order of a map-style data set --------------------------------------------------------


class ShardSampler(torch.utils.data.Sampler):
    """The batch sampler of one epoch on one rank: this rank's positions of every global
    batch of ``order`` (every ``size``-th from ``rank``, see
    :meth:`~equivariance.training.parallel.distributed.Ranks.shard`)."""

    def __init__(self, shards: list[list[int]]) -> None:
        self.shards = shards

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.shards)

    def __len__(self) -> int:
        return len(self.shards)


class _Batches(Dataset):
    """A data set whose item ``[i, j, ...]`` is the batch of those positions of a data
    set with a ``batch`` method (an image folder): read as one batch, not item by item."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        raw = getattr(self.data, "raw_batch", None)  # uint8: 4 times less to send
        return raw(index) if raw is not None else self.data.batch(index)

    def __len__(self) -> int:
        return len(self.data)


def _as_is(batch: Any) -> Any:
    return batch


def batch_loader(data: Any, index_lists: Any, num_workers: int, name: str) -> Iterator[Any]:
    """The batches of a map-style data set at ``index_lists``, read by a ``DataLoader``
    (a worker's error raised with its own message)."""
    if not callable(getattr(data, "batch", None)):
        yield from _iterate(DataLoader(data, batch_sampler=index_lists, num_workers=num_workers,
                                       collate_fn=functools.partial(collate_pairs, name=name)))
        return
    # whole batches at once (image folders), 8-bit images made floats here, not in the
    # worker: a worker sending float batches grows (glibc keeps the freed blocks)
    loader = DataLoader(_Batches(data), sampler=index_lists, batch_size=None,
                        num_workers=num_workers, collate_fn=_as_is)
    for x, y in _iterate(loader):
        yield unit_interval(x), y


class _RankItems(IterableDataset):
    """Every ``size``-th item of an iterable data set, from ``rank``."""

    def __init__(self, data: IterableDataset, rank: int, size: int) -> None:
        self.data, self.rank, self.size = data, rank, size

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(self.data):
            if i % self.size == self.rank:
                yield item


# -- training data ----------------------------------------------------------------------------


@dataclass
class _Seen:
    """What the batches read so far looked like: one image's shape, the value range."""

    shape: tuple[int, ...] | None = None
    low: float = math.inf
    high: float = -math.inf

    def add(self, xb: torch.Tensor) -> None:
        if self.shape is None:
            self.shape = tuple(xb.shape[1:])
        if xb.numel() and xb.is_floating_point():
            self.low, self.high = min(self.low, float(xb.min())), max(self.high, float(xb.max()))

    @property
    def range(self) -> tuple[float, float] | None:
        return (self.low, self.high) if self.low <= self.high else None


@dataclass
class InMemory:
    """Images and labels held as two tensors."""

    x: torch.Tensor
    y: torch.Tensor
    seen: _Seen = field(default_factory=_Seen)

    def __post_init__(self) -> None:
        self.seen.add(self.x)

    def steps(self, batch_size: int) -> int:
        return math.ceil(self.x.shape[0] / batch_size)

    def batches(self, par: Any, batch_size: int, epoch: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, Any]]:
        """``(images, labels, share)`` of every step of an epoch, on this rank."""
        order = torch.randperm(self.x.shape[0], generator=par.order)
        for start in range(0, self.x.shape[0], batch_size):
            share = par.share(order[start:start + batch_size])
            if share is not None:  # None: fewer images left than ranks
                yield self.x[share.index], self.y[share.index], share


@dataclass
class Stream:
    """Data read batch by batch (see the module's notes)."""

    data: Any
    name: str = "data"
    num_workers: int = 0
    in_channels: int | None = None
    seen: _Seen = field(default_factory=_Seen)
    lookup: torch.Tensor | None = None  # the data's labels -> the model's classes, by name

    def steps(self, batch_size: int) -> int | None:
        """Steps per epoch on one process (``None``: an iterable without a length)."""
        if isinstance(self.data, DataLoader):
            try:
                return len(self.data)
            except TypeError:
                return None
        try:
            return math.ceil(len(self.data) / batch_size)
        except TypeError:
            return None

    def _loader(self, **kwargs: Any) -> DataLoader:
        return DataLoader(self.data if "dataset" not in kwargs else kwargs.pop("dataset"),
                          num_workers=self.num_workers,
                          collate_fn=functools.partial(collate_pairs, name=self.name), **kwargs)

    def batches(self, par: Any, batch_size: int, epoch: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, Any]]:
        """``(images, labels, share)`` of every step of an epoch, on this rank."""
        if isinstance(self.data, DataLoader):
            parts = ((b, None) for b in _iterate(self.data))
        elif _map_style(self.data):
            parts = self._map_batches(par, batch_size)
        else:
            parts = self._iterable_batches(par, batch_size)
        for step, (batch, share) in enumerate(parts, 1):
            where = f"epoch {epoch}, step {step}"
            xb, yb = self.relabel(*checked_batch(batch, self.name, where, self.in_channels), where)
            self.seen.add(xb)
            if share is None:  # a DataLoader's batch: all of it on this rank
                n = xb.shape[0]
                share = _share(par, n, n * par.ranks.size)
            yield xb, yb, share

    def relabel(self, xb: torch.Tensor, yb: torch.Tensor, where: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch with its labels mapped onto the model's classes (see :func:`_named`)."""
        if self.lookup is None:
            return xb, yb
        if yb.numel() and int(yb.max()) >= len(self.lookup):
            raise ValueError(f"`{self.name}` has {len(self.lookup)} class names but the batch at "
                             f"{where} holds label {int(yb.max())} (labels count from 0)")
        return xb, self.lookup[yb]

    def _map_batches(self, par: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
        order = torch.randperm(len(self.data), generator=par.order)
        shares = [s for s in (par.share(order[i:i + batch_size])
                              for i in range(0, order.shape[0], batch_size)) if s is not None]
        sampler = ShardSampler([s.index.tolist() for s in shares])
        return zip(batch_loader(self.data, sampler, self.num_workers, self.name), shares)

    def _iterable_batches(self, par: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
        ranks = par.ranks
        data = _RankItems(self.data, ranks.rank, ranks.size) if ranks.active else self.data
        for batch in _iterate(self._loader(dataset=data, batch_size=batch_size // ranks.size)):
            n = len(batch[1]) if isinstance(batch, (tuple, list)) and len(batch) == 2 else 0
            total, empty = _agree(ranks, n)
            if empty:  # a rank has run out: the epoch ends for all
                return
            yield batch, _share(par, n, total)
        if ranks.active:
            _agree(ranks, 0)  # the last meeting of the ranks still reading


def _share(par: Any, size: int, total: int) -> Any:
    from ..training.parallel.distributed import Share

    return Share(None, size, total, par.ranks, par.draws, par.exchange)


def _agree(ranks: Any, n: int) -> tuple[int, bool]:
    """The images of a global batch of an iterable, and whether a rank has none."""
    if not ranks.active:
        return n, n == 0
    import torch.distributed as dist

    t = torch.tensor([n, int(n == 0)], dtype=torch.int64)
    dist.all_reduce(t)
    return int(t[0]), bool(t[1])


def training_data(data: Any, validation_data: Any, seed: int | None, num_workers: Any
                  ) -> tuple[Stream, Any]:
    """A streamed training set and its validation data: ``None``, a :class:`Stream`,
    or ``validation_data`` as it is (in-memory data, for the caller to convert).

    A fraction holds out that share of a map-style data set's items (an image folder's
    files) with ``seed``, as :func:`~equivariance.data.holdout` does for tensors.
    """
    workers = nonnegative_int(num_workers, "num_workers")
    val: Any = validation_data
    if isinstance(validation_data, (bool, np.bool_, int, float, np.number)):
        if not _map_style(data):
            raise ValueError(
                "`validation_data` as a fraction needs `data` with indices (a map-style "
                f"Dataset such as an image folder), got a {type(data).__name__}: pass "
                "validation data instead")
        keep, held = holdout_index(len(data), validation_data, seed)
        data, val = _subset(data, keep), Stream(_subset(data, held), "validation_data", workers)
    elif validation_data is not None and is_stream(validation_data):
        val = Stream(validation_data, "validation_data", workers)
    return Stream(data, "data", workers), val


def _subset(data: Any, index: torch.Tensor) -> Any:
    if hasattr(data, "subset"):
        return data.subset(index)
    return torch.utils.data.Subset(data, index.tolist())


def eval_batches(data: Any, batch_size: int, name: str = "data", num_workers: int = 0,
                 in_channels: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, labels)`` batches of any data, in order (for evaluation); images are
    checked to be finite and to have ``in_channels`` channels."""
    if not is_stream(data):
        x, y = as_tensors(data, name, finite=True)
        x = image_batch(x, in_channels, name)
        for start in range(0, x.shape[0], batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    if isinstance(data, DataLoader):
        loader = data
    elif _map_style(data):
        order = ShardSampler([list(range(i, min(i + batch_size, len(data))))
                              for i in range(0, len(data), batch_size)])
        loader = batch_loader(data, order, num_workers, name)
    else:
        loader = Stream(data, name, num_workers)._loader(batch_size=batch_size)
    for step, batch in enumerate(_iterate(loader), 1):
        xb, yb = checked_batch(batch, name, f"batch {step}", in_channels)
        check_finite(xb, name)
        yield xb, yb


def stream_images(data: Any, batch_size: int, name: str = "x") -> Iterator[torch.Tensor]:
    """The images of a data set, batch by batch (its items ``(image, label)`` or images)."""
    def images(items: list[Any]) -> torch.Tensor:
        first = items[0]
        pairs = isinstance(first, (tuple, list)) and len(first) == 2
        return collate_pairs(items, name)[0] if pairs else collate_pairs(
            [(i, 0) for i in items], name)[0]

    if isinstance(data, DataLoader):
        for batch in _iterate(data):
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    yield from _iterate(DataLoader(data, batch_size=batch_size, collate_fn=images))
