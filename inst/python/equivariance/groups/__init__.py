"""Finite groups acting on the pixel grid (C4, D4) and their layers.

- :mod:`.group`: group data (elements, names, Cayley table) and the two actions,
  on images and on regular fields;
- :mod:`.expansion`: the one filter-expansion mechanism, for any such group;
- :mod:`.layers`: group layers taking the group as an argument;
- :mod:`.c4` and :mod:`.d4`: the C4 and D4 layers;
- :mod:`.checks`: equivariance checks reporting one error per element.

Importing this package imports neither escnn nor the classifiers (``models/``).
"""

from __future__ import annotations

from . import c4, checks, d4, expansion, group, layers
from .group import C4, D4, GridGroup, get_group

__all__ = ["c4", "checks", "d4", "expansion", "group", "layers", "C4", "D4", "GridGroup", "get_group"]
