"""escnn classifiers: :class:`EscnnCNN` for any rotation order, with or without mirrors.

Imported by :mod:`equivariance.escnn_models` (which re-exports both classes), so it
only loads with escnn. Built like :class:`equivariance.C4CNN`, with its
pieces: filters at a tenth of their initial scale, batch-norm momentum 0.3, a
parity-aware stride-2 max pool, the soft spatial maximum and mean, and a head
invariant to the permutations of the regular representation, read from escnn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._registry import register
from .._sizes import check_fits
from .._validation import flag, is_whole_number, positive_int, positive_ints
from ..groups.layers import GroupInvariantLinear, GroupMaxPool2d
from ..models.group_cnn import (
    C4CNN_BN_MOMENTUM,
    C4CNN_FILTER_SCALE,
    C4CNN_WIDTHS,
    scale_filters_,
    spatial_summary,
)
from . import builders as em

__all__ = ["EscnnCNN", "EscnnC4CNN"]

def regular_permutations(gspace: Any) -> torch.Tensor:
    """``(|G|, |G|)``: row ``g`` is ``perm`` with ``new[h] = old[perm[h]]`` under escnn's
    regular representation of element ``g``."""
    rep = gspace.regular_repr
    rows = [np.argmax(np.asarray(rep(g)), axis=1) for g in gspace.fibergroup.elements]
    return torch.as_tensor(np.stack(rows), dtype=torch.long)


def default_widths(order: int) -> tuple[int, int, int]:
    """C4CNN's channel counts in regular fields of a group of ``order`` elements."""
    return tuple(max(1, round(w * 4 / order)) for w in C4CNN_WIDTHS)


def _check_size(N: Any, order: int, in_channels: int, widths: Sequence[int], k: int) -> None:
    """Refuse a group too large for this machine before escnn builds it: the
    expanded filters of the three convolutions (float32) must fit in memory."""
    channels = [in_channels] + [w * order for w in widths]
    nbytes = 4 * k * k * sum(a * b for a, b in zip(channels[:-1], channels[1:]))
    check_fits(nbytes, "N", N, f"the filters of its convolutions ({order} group elements)")


@register
class EscnnCNN(nn.Module):
    """escnn classifier invariant to ``N`` rotations, and to mirrors if ``flips``.

    R2Conv lifting to regular fields of C_N (``rot2dOnR2(N)``) or D_N
    (``flipRot2dOnR2(N)``), InnerBatchNorm (momentum 0.3), ReLU and a stride-2 max
    pool, twice more R2Conv, InnerBatchNorm and ReLU, then the soft maximum and mean
    over space and a linear head that takes the best over the group's permutations
    of each field. Exactly invariant to the elements that map the pixel grid onto
    itself (multiples of 90 degrees, and the mirrors with ``flips``); for the others
    (e.g. 45 degrees for ``N = 8``) invariant up to interpolation error.

    Args:
        N: number of rotations, a positive whole number.
        flips: also be invariant to mirrors (D_N instead of C_N), True or False.
        in_channels: channels of the input images (trivial fields).
        num_classes: number of output logits.
        widths: regular fields of the three convolutions; ``None`` keeps
            :class:`~equivariance.C4CNN`'s channel counts, ``(8, 12, 20)`` fields
            of 4 channels, for the group's order (e.g. ``(4, 6, 10)`` for C8 or D4).
        kernel_size: side of the square filters (odd; padding keeps the size).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    group_input = "rotate"
    group_output = "invariant"

    def __init__(self, N: int = 8, flips: bool = False, in_channels: int = 1,
                 num_classes: int = 10, widths: Sequence[int] | None = None,
                 kernel_size: int = 3):
        super().__init__()
        if not is_whole_number(N) or int(N) < 1:
            raise ValueError(f"`N` must be a positive whole number (the classifier needs a "
                             f"finite group: SO(2) and O(2) have no regular fields), got {N!r}")
        self.flips = flag(flips, "flips")
        self.in_channels = positive_int(in_channels, "in_channels")
        num_classes = positive_int(num_classes, "num_classes")
        k = positive_int(kernel_size, "kernel_size")
        if k % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, got {k}")
        order = int(N) * (2 if self.flips else 1)
        widths = default_widths(order) if widths is None else positive_ints(widths, "widths", 3)
        _check_size(N, order, self.in_channels, widths, k)  # before escnn builds the group
        gspace = (em.flip_rot2d_on_r2 if self.flips else em.rot2d_on_r2)(int(N))
        self.in_type = em.field_type(gspace, ["trivial"] * self.in_channels)
        types = [self.in_type] + [em.field_type(gspace, ["regular"] * w) for w in widths]
        self.blocks = nn.ModuleList(
            em.sequential(em.r2_conv(t_in, t_out, k, padding=k // 2),
                          em.inner_batch_norm(t_out, momentum=C4CNN_BN_MOMENTUM),
                          em.relu(t_out))
            for t_in, t_out in zip(types[:-1], types[1:])
        )
        # escnn's filters are a linear function of `weights`: scaling them scales the filters
        scale_filters_([block[0].weights for block in self.blocks], C4CNN_FILTER_SCALE)
        self.spatial_pool = GroupMaxPool2d()
        self.head = GroupInvariantLinear(regular_permutations(gspace), 2 * widths[-1],
                                         num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = em.geometric_tensor(x, self.in_type, name="x")
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < len(self.blocks) - 1:
                # pointwise max pooling commutes with the regular representation
                h = em.geometric_tensor(self.spatial_pool(h.tensor), h.type)
        # soft maximum and mean over space, then the permutation-invariant head
        return self.head(spatial_summary(h.tensor))


@register
class EscnnC4CNN(EscnnCNN):
    """escnn counterpart of :class:`equivariance.C4CNN`: :class:`EscnnCNN` with ``N = 4``.

    Args:
        in_channels: channels of the input images (trivial fields).
        num_classes: number of output logits.
        widths: regular fields of the three convolutions.
        kernel_size: side of the square filters (odd; padding keeps the size).

    Shape:
        ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 widths: Sequence[int] = C4CNN_WIDTHS, kernel_size: int = 3):
        super().__init__(4, False, in_channels, num_classes, widths, kernel_size)


