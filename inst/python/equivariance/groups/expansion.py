"""Filter expansion: one base filter, its copies transformed by every group element.

A group convolution stores one base filter per (output field, input channel or
field) and applies the plain ``nn.Conv2d`` whose weight holds, for output element
``r``, the base filter transformed by ``r`` on the grid (and, between regular fields,
with its input elements permuted). That weight is a gather of the base filter
through an integer index built here once per layer, for any :class:`GridGroup`:

- lifting (trivial -> regular): ``W[|G| o + r, c] = T_r w[o, c]``;
- group conv (regular -> regular):
  ``W[|G| o + r, |G| i + s] = T_r w[o, i, r^-1 s]``,

where ``T_r`` is :func:`~equivariance.groups.group.grid_transform`. Transforming the
input by ``g`` then transforms the output by ``g`` (output channel ``h`` moves to
``g h``): correlation commutes with a grid symmetry applied to image and filter.
"""

from __future__ import annotations

import torch

from .group import GridGroup, grid_transform

__all__ = ["filter_positions", "lifting_index", "regular_index", "expand"]


def filter_positions(group: GridGroup, k: int) -> torch.Tensor:
    """``(|G|, k * k)``: row ``r`` lists, for each position of a ``k x k`` filter
    transformed by element ``r``, the position of the base filter it comes from."""
    grid = torch.arange(k * k, dtype=torch.int32).view(k, k)
    return torch.stack([grid_transform(grid, r, group).reshape(-1) for r in range(group.order)])


def lifting_index(group: GridGroup, out_fields: int, in_channels: int, k: int) -> torch.Tensor:
    """Index of the expanded lifting filter into the flattened base filter.

    Base filter ``(O, C, k, k)``; expanded ``(|G| O, C, k, k)`` with
    ``W[|G| o + r, c] = T_r w[o, c]``. Broadcast integer arithmetic only, so it is
    instant for wide layers.
    """
    kk, n = k * k, group.order
    o = torch.arange(out_fields, dtype=torch.int32).view(-1, 1, 1, 1) * (in_channels * kk)
    c = torch.arange(in_channels, dtype=torch.int32).view(1, 1, -1, 1) * kk
    pos = filter_positions(group, k).view(1, n, 1, kk)
    return (o + c + pos).reshape(out_fields * n, in_channels, k, k)


def regular_index(group: GridGroup, out_fields: int, in_fields: int, k: int) -> torch.Tensor:
    """Index of the expanded regular -> regular filter into the flattened base filter.

    Base filter ``(O, I, |G|, k, k)``; expanded ``(|G| O, |G| I, k, k)`` with
    ``W[|G| o + r, |G| i + s] = T_r w[o, i, r^-1 s]``: output element ``r`` sees
    the filter transformed by ``r`` and the input elements permuted by ``r^-1``.
    """
    kk, n = k * k, group.order
    o = torch.arange(out_fields, dtype=torch.int32).view(-1, 1, 1, 1, 1) * (in_fields * n * kk)
    i = torch.arange(in_fields, dtype=torch.int32).view(1, 1, -1, 1, 1) * (n * kk)
    # source element r^-1 s of the base filter, for output r and input s
    source = group.cayley[group.inverse].to(torch.int32)
    shift = source.view(1, n, 1, n, 1) * kk
    pos = filter_positions(group, k).view(1, n, 1, 1, kk)
    # small tensors first: one allocation of the full index
    index = (o + i) + (shift + pos)
    return index.reshape(out_fields * n, in_fields * n, k, k)


def expand(base: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``base.view(-1)[index]`` as one native ``index_select`` on the flat tensor.

    Native ops only: the backward pass accumulates the ``|G|`` copies of every base
    entry with one ``index_add_``, without a Python autograd function.

    Args:
        base: the base filter.
        index: an index from :func:`lifting_index` or :func:`regular_index`.

    Returns:
        The expanded filter, of ``index``'s shape, differentiable in ``base``.
    """
    return base.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape)
