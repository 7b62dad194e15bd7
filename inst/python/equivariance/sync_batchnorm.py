"""Synchronised batch norm for data-parallel training: :class:`SyncFieldBatchNorm`.

PyTorch's ``nn.SyncBatchNorm`` runs on GPUs only and knows nothing of regular fields.
This one runs wherever ``torch.distributed`` does (gloo on the CPU, nccl on CUDA), and
reduces the statistics the wrapped layer computes: one per channel for
``nn.BatchNorm*``, one per regular field for :class:`~equivariance.C4BatchNorm2d` and
:class:`~equivariance.GroupBatchNorm2d` (D4), so the group layers stay equivariant.
:func:`sync_batchnorm` swaps them into a model for the duration of a training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["SyncFieldBatchNorm", "sync_batchnorm"]


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if _world_size() > 1:
        dist.all_reduce(t)
    return t


class _SyncedNorm(torch.autograd.Function):
    """``(v - mean) / sqrt(var + eps)`` over ``(N, F, rest)`` with the statistics of
    every rank, and its gradient, written out: two all-reduces forward (the sums, then
    the squared deviations) and one backward, on tensors of size ``F``; the big tensors
    see a few passes instead of an autograd graph of elementwise ops."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, eps: float) -> tuple[torch.Tensor, ...]:
        f = v.shape[1]
        totals = _all_reduce(torch.cat([v.sum((0, 2)), v.new_tensor([v.shape[0] * v.shape[2]])]))
        n = totals[f]
        mean = totals[:f] / n
        centered = v - mean[None, :, None]
        var = _all_reduce(centered.pow(2).sum((0, 2))) / n
        invstd = torch.rsqrt(var + eps)
        xhat = centered.mul_(invstd[None, :, None])
        ctx.save_for_backward(xhat, invstd, n)
        ctx.mark_non_differentiable(mean, var, n)
        return xhat, mean, var, n

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor, None]:
        xhat, invstd, n = ctx.saved_tensors
        f = grad.shape[1]
        # The sums run over every rank's batch: each rank's loss depends on the
        # statistics, hence on every rank's inputs (as in torch's SyncBatchNorm).
        sums = _all_reduce(torch.cat([grad.sum((0, 2)), (grad * xhat).sum((0, 2))]))
        mean_grad, mean_grad_xhat = sums[:f] / n, sums[f:] / n
        dv = grad - mean_grad[None, :, None] - xhat * mean_grad_xhat[None, :, None]
        return dv.mul_(invstd[None, :, None]), None


def _synced_batch_norm(x: torch.Tensor, bn: _BatchNorm) -> torch.Tensor:
    """``bn``'s batch-statistics branch, with the statistics of every rank's batch.

    Each of ``bn``'s ``num_features`` statistics covers a consecutive group of channels
    (one channel for ``nn.BatchNorm2d``, a whole regular field for the C4 and D4 layers)
    and every position: the input is viewed as ``(N, F, rest)``. Mean first, then the
    mean squared deviation from it (two sums, more accurate than one pass); see
    :class:`_SyncedNorm`.
    """
    f = bn.num_features
    if x.dim() < 2 or x.shape[1] % f:
        raise ValueError(f"{type(bn).__name__} expects {f} features (or fields of channels) "
                         f"along dimension 1, got input of shape {tuple(x.shape)}")
    v = x.reshape(x.shape[0], f, -1)
    xhat, mean, var, n = _SyncedNorm.apply(v, bn.eps)
    # a new tensor either way: xhat is saved for backward and must not be changed in place
    y = torch.addcmul(bn.bias[None, :, None], xhat, bn.weight[None, :, None]) if bn.affine else xhat.clone()
    if bn.training and bn.track_running_stats:
        _update_running_stats(bn, mean, var, float(n))
    return y.reshape(x.shape)


@torch.no_grad()
def _update_running_stats(bn: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
    """What ``F.batch_norm`` does to the running statistics (unbiased variance)."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            factor = 1.0 / float(bn.num_batches_tracked)
    unbiased = var * (n / (n - 1)) if n > 1 else var
    bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
    bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.dtype), alpha=factor)


class SyncFieldBatchNorm(nn.Module):
    """A batch norm layer whose batch statistics are those of all ranks together.

    Wraps (and shares the parameters and buffers of) an ``nn.BatchNorm1d/2d/3d``,
    ``nn.SyncBatchNorm``, :class:`~equivariance.C4BatchNorm2d` or a
    :class:`~equivariance.GroupBatchNorm2d` such as ``D4BatchNorm2d``. Statistics stay
    per feature, and for the group layers per regular field (pooled over the field's
    channels), so a C4 or D4 network keeps its equivariance. Works on the CPU (gloo)
    and on CUDA (nccl). In eval mode with running statistics, or outside a distributed
    job, it is the wrapped layer.

    Args:
        bn: the batch norm layer to synchronise.

    Shape:
        as the wrapped layer.
    """

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        if not isinstance(bn, _BatchNorm):
            raise TypeError(f"`bn` must be a batch norm layer, got {type(bn).__name__}")
        self.bn = bn
        self.training = bn.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        batch_stats = bn.training or bn.running_mean is None
        if not batch_stats or _world_size() == 1:
            return bn(x)
        return _synced_batch_norm(x, bn)


def _syncable(module: nn.Module) -> bool:
    from .c4 import C4BatchNorm2d
    from .groups.layers import GroupBatchNorm2d

    plain = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    if type(module) in plain or isinstance(module, (C4BatchNorm2d, GroupBatchNorm2d)):
        return True
    if isinstance(module, _BatchNorm):
        raise ValueError(
            f"`sync_batchnorm`: cannot synchronise the batch norm layer "
            f"{type(module).__name__} (its statistics are not those of nn.BatchNorm, "
            "C4BatchNorm2d or GroupBatchNorm2d); use sync_batchnorm = False"
        )
    return False


@contextlib.contextmanager
def sync_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """Swap every batch norm layer inside ``model`` for a :class:`SyncFieldBatchNorm`
    around it, for the duration of the block; the original layers (which hold the
    trained parameters and statistics) are put back afterwards.

    Args:
        model: the model, changed in place during the block.

    Yields:
        ``model``.
    """
    swaps = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if _syncable(child)]
    for parent, name, child in swaps:
        setattr(parent, name, SyncFieldBatchNorm(child))
    try:
        yield model
    finally:
        for parent, name, child in swaps:
            setattr(parent, name, child)
