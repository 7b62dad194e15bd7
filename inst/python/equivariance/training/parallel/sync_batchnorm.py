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
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["SyncFieldBatchNorm", "sync_batchnorm"]


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_gather(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t``, stacked in rank order: ``(ranks, *t.shape)``.

    For the few numbers per feature that batch norm exchanges, an all-gather is
    cheaper than an all-reduce on gloo, and the sum of the gathered rows, taken in rank
    order, is the same on every rank (see :mod:`equivariance.exchange`, which averages
    small gradient buckets the same way).
    """
    ranks = _world_size()
    if ranks == 1:
        return t[None]
    rows = [torch.empty_like(t) for _ in range(ranks)]
    dist.all_gather(rows, t.contiguous())
    return torch.stack(rows)


def _global_moments(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance per feature of ``v`` ``(N, F, L)`` over every rank's
    batch, and the global count, in one collective.

    Each rank computes its own moments exactly (torch's two-pass batch-norm statistics
    kernel, ``batch_norm_update_stats``, several times faster than ``var_mean`` over
    two dimensions); the ranks exchange ``(count, mean, variance)`` and combine them
    with the parallel-variance formula: no sum of squares, so no cancellation when the
    mean is large.
    """
    f = v.shape[1]
    mean, var = torch.batch_norm_update_stats(v, None, None, 0.0)
    rows = _all_gather(torch.cat([mean.new_tensor([v.shape[0] * v.shape[2]]), mean, var]))
    counts, means, variances = rows[:, :1], rows[:, 1:f + 1], rows[:, f + 1:]
    n = counts.sum()
    mean = (counts * means).sum(0) / n
    var = (counts * (variances + (means - mean).square())).sum(0) / n
    return mean, var, n


class _SyncedNorm(torch.autograd.Function):
    """``weight * (v - mean) / sqrt(var + eps) + bias`` over ``v`` ``(N, F, L)`` with the
    statistics of every rank, and its exact gradient: one collective forward (the
    ranks' moments) and one backward (two sums per feature), on tensors of size ``F``.

    The passes over the big tensors are torch's fused batch-norm kernels (with the
    global statistics given as "running" ones), not a graph of elementwise ops; the
    backward is written out, so it is differentiable once.
    """

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                eps: float) -> tuple[torch.Tensor, ...]:
        mean, var, n = _global_moments(v)
        y = torch.ops.aten.native_batch_norm(v, weight, bias, mean, var, False, 0.0, eps)[0]
        ctx.save_for_backward(v, weight, mean, var, n)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var, n)
        return y, mean, var, n

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        v, weight, mean, var, n = ctx.saved_tensors
        f = v.shape[1]
        grad = grad.contiguous()
        # this rank's sum(grad) and sum(grad * xhat): the gradients of bias and weight
        _, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad, v, weight, mean, var, None, None, False, ctx.eps, [False, True, True])
        # The statistics depend on every rank's inputs, so each rank's input gradient
        # takes the sums over every rank's batch (as in torch's SyncBatchNorm).
        sums = _all_gather(torch.cat([grad_bias, grad_weight])).sum(0)
        mean_grad, mean_grad_xhat = sums[:f] / n, sums[f:] / n
        invstd = torch.rsqrt(var + ctx.eps)
        scale = weight * invstd
        # grad_v = scale * (grad - mean_grad - xhat * mean_grad_xhat), xhat = (v - mean)
        # * invstd, is scale * grad + slope * v + offset per feature: the batch-norm
        # kernel computes slope * v + offset in one pass (statistics 0 and 1, eps 0),
        # and an in-place addcmul adds scale * grad
        slope = -scale * invstd * mean_grad_xhat
        offset = -scale * mean_grad - slope * mean
        grad_v = torch.ops.aten.native_batch_norm(
            v, slope, offset, torch.zeros_like(mean), torch.ones_like(var), False, 0.0, 0.0)[0]
        grad_v.addcmul_(grad, scale[None, :, None])
        return grad_v, grad_weight, grad_bias, None


def _synced_batch_norm(x: torch.Tensor, bn: _BatchNorm) -> torch.Tensor:
    """``bn``'s batch-statistics branch, with the statistics of every rank's batch.

    Each of ``bn``'s ``num_features`` statistics covers a consecutive group of channels
    (one channel for ``nn.BatchNorm2d``, a whole regular field for the C4 and D4 layers)
    and every position: the input is viewed as ``(N, F, rest)``; see
    :class:`_SyncedNorm`.
    """
    f = bn.num_features
    if x.dim() < 2 or x.shape[1] % f:
        raise ValueError(f"{type(bn).__name__} expects {f} features (or fields of channels) "
                         f"along dimension 1, got input of shape {tuple(x.shape)}")
    v = x.reshape(x.shape[0], f, -1)
    if bn.affine:
        weight, bias = bn.weight, bn.bias
    else:  # constants: no gradient is asked of them
        weight, bias = v.new_ones(f), v.new_zeros(f)
    y, mean, var, n = _SyncedNorm.apply(v, weight, bias, bn.eps)
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
    from ...groups.c4 import C4BatchNorm2d
    from ...groups.layers import GroupBatchNorm2d

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
