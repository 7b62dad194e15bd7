"""The equivariance regularizer and what it is built from.

- :mod:`.core`: :class:`EquivarianceRegularizer`, the loss term;
- :mod:`.specs`: parsing of its ``transforms`` and ``bounds``;
- :mod:`.distances`: the distances between outputs (``dist``);
- :mod:`.transforms`: transforms of images (quarter turns, flips, rotations, ...).

``equivariance.transforms`` and ``equivariance.distances`` name the last two.
"""

from __future__ import annotations

from . import distances, transforms
from .core import EquivarianceError, EquivarianceRegularizer
from .specs import TransformSpec, parse_bounds, parse_transform, parse_transforms

__all__ = ["EquivarianceRegularizer", "EquivarianceError"]
