"""What :func:`~equivariance.fit` takes from its data, besides the batches of
:mod:`~equivariance.data.adapters`: :func:`prepare` (training and validation data, in memory or
streamed, with labels matched to the model's classes by name), the per-batch check of
streamed labels against the model's logits (:func:`step_recipe`), validation on
streamed data, and what a trained model keeps of its input (:func:`record_input`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import nonnegative_int
from ..data.adapters import (
    InMemory,
    Stream,
    _map_style,
    _Seen,
    collate_pairs,
    eval_batches,
    is_stream,
    training_data,
)
from ..data.arrays import as_tensors
from ..data.labels import class_names_of, onto_classes
from ..devices import image_batch, model_device_dtype, model_in_channels
from ..modes import preserved_modes

__all__: list[str] = []



@dataclass
class Prepared:
    """What :func:`~equivariance.fit` trains on (see :func:`prepare`)."""

    source: InMemory | Stream  # the training batches
    val: Any  # None, a pair of tensors or a Stream
    labels: tuple[tuple[str, int, int], ...]  # ranges of in-memory labels
    classes: list[str] | None  # the class names the model keeps
    unseen: list[tuple[str, torch.Tensor]]  # images to probe the model on first

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One image's shape, when known before training."""
        if isinstance(self.source, InMemory):
            return tuple(self.source.x.shape[1:])
        shape = getattr(self.source.data, "input_shape", None)
        return tuple(shape) if shape is not None else None

    def unseen_images(self) -> list[tuple[str, torch.Tensor]]:
        return self.unseen


def prepare(model: Any, data: Any, validation_data: Any, seed: int | None,
            names: list[str] | None, num_workers: Any) -> Prepared:
    """The training and validation data of :func:`~equivariance.fit`, in memory
    (:func:`~equivariance.training.inputs.labelled_data`) or streamed; labels of named
    classes are matched to the model's classes by name, batch by batch for streams."""
    from ..prediction import model_class_names
    from .inputs import labelled_data

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


def step_recipe(recipe: Any, source: Any, epoch: int, step: int) -> Any:
    """The recipe of one training step: for streamed data, with the batch's labels
    checked against the logits before the loss."""
    if not isinstance(source, Stream):
        return recipe
    where = f"epoch {epoch}, step {step}"
    return dataclasses.replace(recipe, loss_fn=_CheckedLoss(recipe.loss_fn, source.name, where))


@torch.no_grad()
def stream_validation(model: Any, stream: Stream, batch_size: int, metrics: list[Any]
                      ) -> dict[str, float]:
    """The mean cross-entropy and every metric of ``model`` on streamed validation data,
    in eval mode (as :func:`~equivariance.training.metrics.validation_figures` for
    tensors)."""
    device, dtype = model_device_dtype(model)
    loss, n = 0.0, 0
    for m in metrics:
        m.reset()
    with preserved_modes(model, "eval"):
        for step, (xb, yb) in enumerate(eval_batches(stream.data, batch_size, stream.name,
                                                     stream.num_workers, stream.in_channels), 1):
            xb, yb = stream.relabel(xb, yb, f"batch {step}")
            xb, yb = xb.to(device=device, dtype=dtype), yb.to(device=device)
            logits = model(xb)
            check_labels(logits, yb, stream.name, f"batch {step}")
            loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
            n += xb.shape[0]
            for m in metrics:
                m.update(logits, yb)
    if n == 0:
        raise ValueError(f"`{stream.name}` gave no images")
    return {"val_loss": loss / n, **{f"val_{m.name}": m.result() for m in metrics}}


def validation(model: Any, val: Any, batch_size: int, metrics: list[Any]) -> dict[str, float]:
    """The validation figures of ``model`` on in-memory or streamed data."""
    if isinstance(val, Stream):
        return stream_validation(model, val, batch_size, metrics)
    from .metrics import validation_figures

    return validation_figures(model, *val, batch_size, metrics)


def record_input(model: Any, seen: _Seen) -> None:
    """Keep on the model the shape of one training image (``input_shape``, which
    :func:`~equivariance.summary` uses) and the range of the values it was trained on
    (``input_range``), which :func:`~equivariance.predict` compares new images with."""
    model.input_shape = seen.shape
    if seen.range is not None:
        model.input_range = seen.range
