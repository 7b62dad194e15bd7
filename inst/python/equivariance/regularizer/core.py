"""The equivariance regularizer.

``EquivarianceRegularizer(model, shape, transforms, ...)`` is a loss term

    sum over drawn transforms of  lambda_eq * max(0, E - epsilon),
    E = mean over points v of dist(f_out(model(v)), model(f_in(v))),

that pushes ``model`` towards equivariance (``f_out != identity``) or invariance
(``f_out`` the identity) with respect to the given transforms.

It keeps the interface of the reference package ``equivariance-regularizer`` 0.1.1
and fixes its defects: evaluation at given points no longer changes ``n``; the
3-element form ``(f, epsilon, lambda_eq)`` applies ``f`` to the input and to the
output (the reference concatenated inputs with outputs, which breaks for any model
whose output shape differs from its input shape); ``'cross_entropy'`` uses a safe log
instead of mapping ``log 0`` to 0; transforms are drawn with torch's generator; the
model is run once, batched, in a deterministic mode that leaves its buffers
untouched; and samples follow the model's device and dtype. Every named distance is 0
exactly when the outputs agree (see :mod:`equivariance.distances` for the table).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from .._validation import positive_int, shape_tuple
from ..devices import model_device_dtype
from ..modes import preserved_modes
from .distances import resolve_distance
from .specs import TransformSpec, parse_bounds, parse_transforms
from .transforms import identity

__all__ = ["EquivarianceRegularizer", "EquivarianceError"]

_MODES = ("eval", "train")


class _RngState:
    """Snapshot of torch's generators that a transform may draw from on ``device``."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu = torch.get_rng_state()
        self.accel = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.accel is not None:
            torch.cuda.set_rng_state(self.accel, self.device)


class EquivarianceRegularizer:
    """A loss term that pushes ``model`` towards equivariance.

    The value is ``sum_t lambda_t * max(0, E_t - epsilon_t)`` over ``num_funcs``
    transforms drawn from ``transforms``, where ``E_t`` is the mean over points ``v``
    of ``dist(f_out(model(v)), model(f_in(v)))``.

    Args:
        model: the ``nn.Module`` (or any callable on batched tensors) to regularize.
            It is referenced, not registered: the regularizer may be stored on the model
            itself and does not appear in its ``state_dict()`` or ``parameters()``.
        shape: input shape of one sample, without the batch dimension, e.g. ``(1, 28, 28)``.
        transforms: list of ``(f_out, f_in, epsilon, lambda_eq)`` or
            ``(f, epsilon, lambda_eq)``; in the 3-element form ``f`` is applied to input
            and output. ``f_out`` is always called with torch's generator in the state
            ``f_in`` saw, so a random transform makes the same draw on both sides;
            afterwards the generator is where the draws of ``f_in`` and of the model's
            forward pass left it, as after a plain forward pass.
        dist: how far ``a = f_out(model(v))`` is from ``b = model(f_in(v))``, per sample;
            every name is 0 exactly when the outputs agree (table in
            :mod:`equivariance.distances`):

            * a number ``p >= 1``: ``||a - b||_p``; ``'inf'``: ``max |a - b|``;
            * ``'cross_entropy'`` (probabilities): ``||log a - log b||_2``, safe log;
            * ``'cross_entropy_logits'`` (logits): ``||log_softmax(a) -
              log_softmax(b)||_2``, softmax along dim 1;
            * ``'kl_logits'``: symmetric KL between the softmaxes;
            * ``'js_logits'``: Jensen-Shannon divergence between the softmaxes;
            * a callable ``(a, b) -> scalar or (N,)`` (then averaged; NaN is an error).
        n: number of points sampled uniformly in ``bounds`` when called without points.
        num_funcs: transforms drawn per call with torch's generator, without replacement
            when ``num_funcs <= len(transforms)``, with replacement otherwise.
        bounds: ``[lower, upper]`` or anything broadcastable to ``shape + (2,)``.
        mode: ``'eval'`` (default) runs the model in eval mode: dropout is off and
            batch norm uses its running statistics. ``'train'`` keeps the model's own
            modes except that dropout layers are switched off, so batch norm normalizes
            with the statistics of the regularizer's batch. Either way every buffer is
            restored afterwards and every module's ``training`` flag is preserved.
        chunk_size: largest batch given to the model in one call (``None``: all points
            and all transformed points in one batched forward pass).

    Shape:
        ``reg(x)`` takes ``x`` of shape ``(N, *shape)`` (tensor or numpy array) and
        returns a 0-dimensional tensor that carries gradients to the model.
    """

    def __init__(
        self,
        model: nn.Module,
        shape: Sequence[int],
        transforms: Sequence[Sequence[Any]],
        dist: Any = 2,
        n: int = 1,
        num_funcs: int = 1,
        bounds: Any = (0, 1),
        *,
        mode: str = "eval",
        chunk_size: int | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError("`model` must be an nn.Module or a callable, got "
                            f"{type(model).__name__}")
        self._model = model
        self.shape = shape_tuple(shape, "shape")
        self.transforms = parse_transforms(transforms)
        self.dist = dist
        self._distance = resolve_distance(dist)
        self.n = positive_int(n, "n")
        self.num_funcs = positive_int(num_funcs, "num_funcs")
        self.bounds = parse_bounds(bounds, self.shape)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}")
        self.mode = mode
        self.chunk_size = None if chunk_size is None else positive_int(chunk_size, "chunk_size")

    # -- public API -----------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        """The regularized model (a plain reference)."""
        return self._model

    @property
    def labels(self) -> list[str]:
        """A readable name for every transform, in order."""
        return [t.label for t in self.transforms]

    def sample(self, n: int | None = None) -> torch.Tensor:
        """``n`` points (default ``self.n``) drawn uniformly inside ``bounds``, on the
        model's device and dtype."""
        n = self.n if n is None else positive_int(n, "n")
        device, dtype = model_device_dtype(self._model)
        bounds = self.bounds.to(device=device, dtype=dtype)
        u = torch.rand((n,) + self.shape, device=device, dtype=dtype)
        return bounds[..., 0] + u * (bounds[..., 1] - bounds[..., 0])

    def __call__(self, x: Any = None, outputs: torch.Tensor | None = None) -> torch.Tensor:
        """The regularization term at ``x`` (or at ``n`` fresh samples).

        Args:
            x: points of shape ``(N, *shape)``; ``None`` samples ``n`` points.
            outputs: optional ``model(x)`` already computed by the caller (for example
                the training step's own forward pass), reused instead of running the
                untransformed points again. Only pass it when the model computes the
                same function in the caller's mode as in the regularizer's ``mode``.
        """
        v = self._points(x)
        if outputs is not None:
            if x is None:
                raise ValueError("`outputs` can only be given together with the points `x`")
            if not isinstance(outputs, torch.Tensor) or outputs.shape[:1] != v.shape[:1]:
                raise ValueError(
                    "`outputs` must be the model's output tensor at `x`, with one row per point"
                )
        chosen = self._draw()
        errors = self._errors(v, [self.transforms[i] for i in chosen], outputs)
        total = errors.new_zeros(())
        for spec, err in zip((self.transforms[i] for i in chosen), errors):
            total = total + spec.lambda_eq * torch.relu(err - spec.epsilon)
        return total

    def errors(self, x: Any = None) -> torch.Tensor:
        """The raw error ``E`` of every transform, in order (no epsilon, no lambda, no
        gradient), at ``x`` or at ``n`` fresh samples. Returns a tensor of shape
        ``(len(transforms),)``."""
        with torch.no_grad():
            return self._errors(self._points(x), self.transforms).detach()

    def __repr__(self) -> str:
        return (
            f"EquivarianceRegularizer(model={type(self._model).__name__}, shape={self.shape}, "
            f"transforms=[{', '.join(self.labels)}], dist={self.dist!r}, n={self.n}, "
            f"num_funcs={self.num_funcs}, mode={self.mode!r})"
        )

    # -- internals ------------------------------------------------------------------

    def _points(self, x: Any) -> torch.Tensor:
        if x is None:
            return self.sample()
        device, dtype = model_device_dtype(self._model)
        if isinstance(x, torch.Tensor):
            v = x.to(device=device, dtype=dtype)
        else:
            try:
                v = torch.as_tensor(np.array(x), device=device, dtype=dtype)
            except (TypeError, ValueError) as err:
                raise TypeError(f"`x` must be a tensor or an array of numbers: {err}") from None
        if v.dim() != len(self.shape) + 1 or tuple(v.shape[1:]) != self.shape or v.shape[0] < 1:
            raise ValueError(
                f"`x` must have shape (N, {', '.join(map(str, self.shape))}) with N >= 1, "
                f"got {tuple(v.shape)}"
            )
        bad = ~torch.isfinite(v)
        if bad.any():
            # A NaN or Inf point would make the term NaN without saying why.
            count, first = int(bad.sum()), bad.nonzero()[0].tolist()
            raise ValueError(
                f"`x` must hold finite numbers, got {count} NaN or infinite value(s) "
                f"(the first at index {tuple(first)}: {v[tuple(first)].item()})"
            )
        return v

    def _draw(self) -> list[int]:
        count = len(self.transforms)
        if self.num_funcs <= count:
            return torch.randperm(count)[: self.num_funcs].tolist()
        return torch.randint(count, (self.num_funcs,)).tolist()

    def _errors(
        self,
        v: torch.Tensor,
        specs: Sequence[TransformSpec],
        y0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # Transform the inputs first, recording the generator's state before each
        # f_in so that f_out can replay the same random draw afterwards.
        states, inputs = [], [v]
        for spec in specs:
            states.append(_RngState(v.device))
            inputs.append(v if spec.f_in is identity else spec.f_in(v))
        outputs = self._forward(inputs, known=y0)
        # Taken after the forward pass: restoring it at the end undoes only the replays,
        # not the model's own draws (a model drawing noise must not see it again).
        after = _RngState(v.device)
        y0, dists = outputs[0], []
        for spec, state, y in zip(specs, states, outputs[1:]):
            state.restore()
            target = spec.f_out(y0)
            if not isinstance(target, torch.Tensor) or target.shape != y.shape:
                raise ValueError(
                    f"f_out of transform {spec.label!r} gave shape "
                    f"{tuple(getattr(target, 'shape', ()))} but the model's output on the "
                    f"transformed input has shape {tuple(y.shape)}"
                )
            dists.append(self._distance(target, y).mean())
        after.restore()
        return torch.stack(dists)

    def _forward(
        self, inputs: list[torch.Tensor], known: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Model outputs for every input tensor, with one batched pass per distinct
        input shape; an input identical to the first (identity) reuses its output, and
        so does every input when ``known`` (the output at ``inputs[0]``) is given."""
        groups: dict[tuple, list[int]] = {}
        outputs: list[Any] = [None] * len(inputs)
        if known is not None:
            outputs[0] = known
        for i, t in enumerate(inputs):
            if (i > 0 and t is inputs[0]) or (i == 0 and known is not None):
                continue
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"a transform returned {type(t).__name__}, expected a tensor")
            groups.setdefault(tuple(t.shape), []).append(i)
        with self._deterministic():
            for idx in groups.values():
                batch = torch.cat([inputs[i] for i in idx]) if len(idx) > 1 else inputs[idx[0]]
                out = self._run(batch)
                sizes = [inputs[i].shape[0] for i in idx]
                for i, o in zip(idx, out.split(sizes)):
                    outputs[i] = o
        return [outputs[0] if o is None else o for o in outputs]

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        if self.chunk_size is None or batch.shape[0] <= self.chunk_size:
            out = self._model(batch)
        else:
            out = torch.cat([self._model(c) for c in batch.split(self.chunk_size)])
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != batch.shape[0]:
            raise ValueError(
                "the model must return a tensor with one row per input sample, got "
                f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))} for a batch of "
                f"{batch.shape[0]}"
            )
        return out

    @contextlib.contextmanager
    def _deterministic(self) -> Iterator[None]:
        model = self._model
        if not isinstance(model, nn.Module):
            yield
            return
        # The forward passes run on private copies of every buffer, so running
        # statistics and counters cannot change, and the originals are never written
        # in place (which would break backward through eval-mode batch norm).
        swapped = []
        for m in model.modules():
            for name, buf in m._buffers.items():
                if buf is not None:
                    swapped.append((m, name, buf))
                    m._buffers[name] = buf.detach().clone()
        try:
            # preserved_modes switches and restores every flag through train(), which
            # some modules (escnn's R2Conv) need to keep their caches right.
            with preserved_modes(model, "eval" if self.mode == "eval" else None):
                if self.mode != "eval":
                    for m in model.modules():
                        if isinstance(m, (_DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)):
                            m.eval()
                yield
        finally:
            for m, name, buf in swapped:
                m._buffers[name] = buf


#: Alias kept from the reference package.
EquivarianceError = EquivarianceRegularizer
