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
from ..devices import image_batch, model_device_dtype, model_in_channels
from ..modes import preserved_modes
from .fashion_mnist import as_tensors, holdout_index
from .labels import class_names_of, onto_classes

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
        return zip(_iterate(self._loader(batch_sampler=sampler)), shares)

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
    stream = Stream(data, name, num_workers)
    loader = data if isinstance(data, DataLoader) else stream._loader(batch_size=batch_size)
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


# -- what fit() needs besides the batches -----------------------------------------------------


@dataclass
class Prepared:
    """What :func:`~equivariance.fit` trains on (see :func:`prepare`)."""

    source: InMemory | Stream  # the training batches
    val: Any  # None, a pair of tensors or a Stream
    labels: tuple[tuple[str, int, int], ...]  # ranges of in-memory labels
    classes: list[str] | None  # the class names the model keeps
    unseen: list[tuple[str, torch.Tensor]]  # images to probe the model on first

    def unseen_images(self) -> list[tuple[str, torch.Tensor]]:
        return self.unseen


def prepare(model: Any, data: Any, validation_data: Any, seed: int | None,
            names: list[str] | None, num_workers: Any) -> Prepared:
    """The training and validation data of :func:`~equivariance.fit`, in memory
    (:func:`~equivariance.training.inputs.labelled_data`) or streamed; labels of named
    classes are matched to the model's classes by name, batch by batch for streams."""
    from ..prediction import model_class_names
    from ..training.inputs import labelled_data

    workers = nonnegative_int(num_workers, "num_workers")
    if not (is_stream(data) or is_stream(validation_data)):
        d = labelled_data(model, data, validation_data, seed, names)
        return Prepared(InMemory(d.x, d.y), d.val, d.labels, d.classes, d.unseen_images())
    in_channels = model_in_channels(model)
    if not is_stream(data):  # tensors to train on, a stream to validate on
        d = labelled_data(model, data, None, seed, names)
        val = _named(Stream(validation_data, "validation_data", workers, in_channels), d.classes)
        return Prepared(InMemory(d.x, d.y), val, d.labels, d.classes, _first(val))
    _check_channels(data, in_channels, "data")
    source, val = training_data(data, validation_data, seed, workers)
    source.in_channels = in_channels
    classes = model_class_names(model) or names or class_names_of(data)
    _named(source, classes, names)
    labels: tuple[tuple[str, int, int], ...] = ()
    if isinstance(val, Stream):
        _check_channels(val.data, in_channels, "validation_data")
        val.in_channels = in_channels
        _named(val, classes)
    elif val is not None:
        xv, yv = as_tensors(val, "validation_data", finite=True)
        yv = onto_classes(yv, class_names_of(val), classes, "validation_data")
        val = (image_batch(xv, in_channels, "validation_data"), yv)
        labels = (("validation_data", int(yv.min()), int(yv.max())),)
    unseen = [] if validation_data is None or not isinstance(val, (Stream, tuple)) or \
        isinstance(validation_data, (int, float)) else _first(val)
    return Prepared(source, val, labels, classes, unseen)


def _named(stream: Stream, classes: list[str] | None, names: list[str] | None = None) -> Stream:
    """Give ``stream`` the table that maps its labels onto ``classes`` by name (when
    its data's class names, or ``names``, differ from them)."""
    names = names or class_names_of(stream.data)
    if names is not None and classes is not None and list(names) != list(classes):
        stream.lookup = onto_classes(torch.arange(len(names)), names, classes, stream.name)
    return stream


def _first(val: Any) -> list[tuple[str, torch.Tensor]]:
    """The first validation image, for the model to be tried on before training."""
    if isinstance(val, tuple):
        return [("validation_data", val[0][:1])]
    if isinstance(val, Stream) and _map_style(val.data) and len(val.data):
        return [("validation_data", collate_pairs([val.data[0]], "validation_data")[0])]
    return []


def _check_channels(data: Any, in_channels: int | None, name: str) -> None:
    """An image folder of the wrong channel count fails before its first batch."""
    channels = getattr(data, "channels", None)
    if in_channels is None or not isinstance(channels, int) or channels == in_channels:
        return
    raise ValueError(
        f"`{name}`: the images have {channels} channel(s) but the model takes {in_channels}: "
        f"read them with channels = {in_channels} (image_folder(), image_files()) or build "
        f"the model with in_channels = {channels}")


@dataclass(frozen=True)
class _CheckedLoss:
    """The loss of one streamed batch, after its labels are checked against the logits:
    labels out of range fail at the batch that holds them, naming it."""

    loss_fn: Any
    name: str
    where: str

    @property
    def wrapped(self) -> Any:
        """The loss it checks for (so that cross-entropy is still known as such)."""
        return self.loss_fn

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_labels(logits, y, self.name, self.where)
        return self.loss_fn(logits, y)


def check_labels(logits: torch.Tensor, y: torch.Tensor, name: str, where: str) -> None:
    """A ValueError when a label of ``y`` has no logit."""
    c = logits.shape[-1] if logits.dim() == 2 else None
    if c is not None and y.numel() and int(y.max()) >= c:
        raise ValueError(
            f"`{name}`: the batch at {where} holds label {int(y.max())}, but the model returns "
            f"{c} logits: labels must be class indices from 0 to {c - 1} (in R, classes 1 to "
            f"{c} or a factor)")


def step_recipe(recipe: Any, source: Any, yb: torch.Tensor, epoch: int, step: int) -> Any:
    """The recipe of one training step: for streamed data, with the batch's labels
    checked against the logits before the loss."""
    if not isinstance(source, Stream):
        return recipe
    import dataclasses

    where = f"epoch {epoch}, step {step}"
    return dataclasses.replace(recipe, loss_fn=_CheckedLoss(recipe.loss_fn, source.name, where))


@torch.no_grad()
def stream_loss_and_accuracy(model: Any, stream: Stream, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on streamed validation data, in eval
    mode (as :func:`~equivariance.training.evaluation.loss_and_accuracy` for tensors)."""
    device, dtype = model_device_dtype(model)
    loss, correct, n = 0.0, 0, 0
    with preserved_modes(model, "eval"):
        for step, (xb, yb) in enumerate(eval_batches(stream.data, batch_size, stream.name,
                                                     stream.num_workers, stream.in_channels), 1):
            xb, yb = stream.relabel(xb, yb, f"batch {step}")
            xb, yb = xb.to(device=device, dtype=dtype), yb.to(device=device)
            logits = model(xb)
            check_labels(logits, yb, stream.name, f"batch {step}")
            loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == yb).sum())
            n += xb.shape[0]
    if n == 0:
        raise ValueError(f"`{stream.name}` gave no images")
    return loss / n, correct / n


def validate(model: Any, val: Any, batch_size: int) -> tuple[float, float]:
    """The validation loss and accuracy of ``model`` on in-memory or streamed data."""
    if isinstance(val, Stream):
        return stream_loss_and_accuracy(model, val, batch_size)
    from ..training.evaluation import loss_and_accuracy

    return loss_and_accuracy(model, *val, batch_size)


def record_input(model: Any, seen: _Seen) -> None:
    """Keep on the model the shape of one training image (``input_shape``, which
    :func:`~equivariance.summary` uses) and the range of the values it was trained on
    (``input_range``), which :func:`~equivariance.predict` compares new images with."""
    model.input_shape = seen.shape
    if seen.range is not None:
        model.input_range = seen.range
