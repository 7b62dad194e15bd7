"""The regularized row's recipe: :func:`benchmark_regularizer`.

``"SimpleCNN+reg"`` of :func:`~equivariance.rotation_benchmark` trains the
benchmark's SimpleCNN on randomly turned images (like ``"SimpleCNN+aug"``) plus
this regularizer, which asks the class probabilities of a turned image to equal
those of the image as it is. With a label budget it is evaluated on the unlabeled
images instead of the labelled batch (``fit(..., unlabeled_data=...)``).

Its weight can grow linearly from 0 over the first ``warmup`` steps
(:class:`WarmedUpRegularizer`), the ramp-up of semi-supervised consistency
training: early predictions are poor targets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._validation import nonnegative_int, nonnegative_real, positive_int
from .regularizer import EquivarianceRegularizer
from .regularizer import transforms as T

__all__ = ["WarmedUpRegularizer", "benchmark_regularizer", "reg_recipe"]


class WarmedUpRegularizer(EquivarianceRegularizer):
    """An :class:`~equivariance.EquivarianceRegularizer` whose value is scaled by
    ``min(1, calls / warmup)``: 0 at first, its full weight after ``warmup`` calls
    with gradients (one per training step; calls under ``torch.no_grad()``, such as
    monitoring, neither count nor are scaled).

    Args:
        *args, **kwargs: as for :class:`~equivariance.EquivarianceRegularizer`.
        warmup: calls until the full weight (0: from the start).
    """

    def __init__(self, *args: Any, warmup: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.warmup = nonnegative_int(warmup, "warmup")
        self.calls = 0

    def __call__(self, x: Any = None, outputs: torch.Tensor | None = None) -> torch.Tensor:
        value = super().__call__(x, outputs=outputs)
        if not torch.is_grad_enabled() or self.warmup == 0:
            return value
        self.calls += 1
        return value * min(1.0, self.calls / self.warmup)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", warmup={self.warmup})"


def benchmark_regularizer(
    model: nn.Module,
    n: int = 64,
    num_funcs: int = 1,
    lambda_eq: float = 1.0,
    epsilon: float = 0.0,
    warmup: int = 0,
    dist: Any = "kl_logits",
) -> EquivarianceRegularizer:
    """The regularizer of ``"SimpleCNN+reg"``: invariance of the logits to rotations.

    Three transforms ``(identity, rot90(k), epsilon, lambda_eq)`` for ``k = 1, 2, 3``
    (the class probabilities of a turned image should equal those of the image as
    it is), with the distance ``"kl_logits"``: the symmetric Kullback-Leibler
    divergence between the two class distributions, so that both move towards each
    other (``"kl_logits_target"``, which pulls the turned image's output towards the
    upright one's held fixed, gave less agreement for the same accuracy);
    ``num_funcs`` of them are drawn at every step. :func:`~equivariance.fit`
    evaluates it at the first ``n`` images of each training batch, reusing the batch's
    own forward pass (or at ``n`` unlabeled images per step); the row also trains on
    randomly turned images, like ``"SimpleCNN+aug"``, so the regularizer's term is
    what the two rows differ by.

    Args:
        model: the classifier to regularize (28 x 28 grey images).
        n: points per evaluation (the first ``n`` images of a training batch).
        num_funcs: rotations drawn per step (without replacement, at most 3 distinct).
        lambda_eq: weight of the term.
        epsilon: error tolerated before the term is non-zero.
        warmup: training steps over which the weight grows linearly from 0 to
            ``lambda_eq`` (0: the full weight from the first step).
        dist: the distance (any ``dist`` of the regularizer).

    Returns:
        An :class:`~equivariance.EquivarianceRegularizer` (a
        :class:`WarmedUpRegularizer` when ``warmup > 0``).
    """
    lambda_eq = nonnegative_real(lambda_eq, "lambda_eq")
    epsilon = nonnegative_real(epsilon, "epsilon")
    warmup = nonnegative_int(warmup, "warmup")
    transforms = [(T.identity, T.rot90(k), epsilon, lambda_eq) for k in (1, 2, 3)]
    kwargs = {"dist": dist, "n": positive_int(n, "n"),
              "num_funcs": positive_int(num_funcs, "num_funcs")}
    if warmup:
        return WarmedUpRegularizer(model, (1, 28, 28), transforms, warmup=warmup, **kwargs)
    return EquivarianceRegularizer(model, (1, 28, 28), transforms, **kwargs)


def reg_recipe(reg_n: Any, reg_num_funcs: Any, reg_lambda: Any, reg_warmup: Any
               ) -> dict[str, Any]:
    """:func:`~equivariance.rotation_benchmark`'s regularizer settings, checked (the
    messages name its arguments), as keyword arguments of :func:`benchmark_regularizer`.

    Args:
        reg_n, reg_num_funcs, reg_lambda, reg_warmup: ``n``, ``num_funcs``,
            ``lambda_eq`` and ``warmup``.

    Returns:
        A dict of those four.
    """
    return {"n": positive_int(reg_n, "reg_n"),
            "num_funcs": positive_int(reg_num_funcs, "reg_num_funcs"),
            "lambda_eq": nonnegative_real(reg_lambda, "reg_lambda"),
            "warmup": nonnegative_int(reg_warmup, "reg_warmup")}
