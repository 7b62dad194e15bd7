"""Finite groups acting on the pixel grid (C4, D4) and their layers.

- :mod:`.group`: group data (elements, names, Cayley table) and the two actions,
  on images and on regular fields;
- :mod:`.expansion`: the one filter-expansion mechanism, for any such group;
- :mod:`.layers`: group layers taking the group as an argument;
- :mod:`.d4`: the D4 layers; :mod:`.networks`: the D4CNN classifier;
- :mod:`.checks`: equivariance checks reporting one error per element.

Importing this package imports neither escnn nor :mod:`equivariance.networks`
(``groups.networks`` is imported by the top-level package), so modules such as
:mod:`equivariance.c4` can build on :mod:`.expansion` without import cycles.
"""

from __future__ import annotations

from . import checks, d4, expansion, group, layers
from .group import C4, D4, GridGroup, get_group

__all__ = ["checks", "d4", "expansion", "group", "layers", "C4", "D4", "GridGroup", "get_group"]
