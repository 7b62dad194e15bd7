"""Finite groups acting on the pixel grid (C4, D4), their layers and checks.

- :mod:`.group`: group data (elements, names, Cayley table) and the actions, on
  images and on regular fields;
- :mod:`.expansion`: the one filter-expansion mechanism, for any such group;
- :mod:`.layers`: group layers taking the group as an argument;
- :mod:`.c4` and :mod:`.d4`: the same layers with the group fixed (thin twins);
- :mod:`.checks`: one :func:`check_equivariance` and :func:`feature_maps` for every
  group, reporting one error per element.

Importing this package imports neither escnn nor the classifiers (``models/``).
"""

from __future__ import annotations

from . import c4, checks, d4, expansion, group, layers
from .c4 import (
    C4BatchNorm2d,
    C4Conv2d,
    C4GroupPool,
    C4InvariantLinear,
    C4LiftingConv2d,
    C4MaxPool2d,
    rotate_regular,
)
from .checks import check_equivariance, check_equivariance_group, feature_maps
from .d4 import D4BatchNorm2d, D4Conv2d, D4GroupPool, D4LiftingConv2d, D4MaxPool2d
from .group import C4, D4, GridGroup, get_group, grid_transform, group_action, regular_transform
from .layers import (
    GroupBatchNorm2d,
    GroupConv2d,
    GroupInvariantLinear,
    GroupLiftingConv2d,
    GroupMaxPool2d,
    GroupPool,
)

__all__ = [
    "c4", "checks", "d4", "expansion", "group", "layers",
    "C4", "D4", "GridGroup", "get_group", "grid_transform", "regular_transform", "group_action",
    "GroupLiftingConv2d", "GroupConv2d", "GroupBatchNorm2d", "GroupPool", "GroupMaxPool2d",
    "GroupInvariantLinear",
    "C4LiftingConv2d", "C4Conv2d", "C4BatchNorm2d", "C4GroupPool", "C4MaxPool2d",
    "C4InvariantLinear", "rotate_regular",
    "D4LiftingConv2d", "D4Conv2d", "D4BatchNorm2d", "D4GroupPool", "D4MaxPool2d",
    "check_equivariance", "check_equivariance_group", "feature_maps",
]
