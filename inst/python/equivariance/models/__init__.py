"""Classifiers that need no escnn: the baselines and one group CNN (C4, D4).

- :mod:`.baselines`: :class:`SimpleCNN` (a plain CNN) and :class:`EqCNN` (the
  article's rotation-stacking CNN);
- :mod:`.group_cnn`: :class:`GroupCNN` for any grid group, and :class:`C4CNN` and
  :class:`D4CNN`, the same network with the group fixed.

A new classifier goes in this folder when it needs no escnn (else in
``escnn_models/``); ``@register`` at its class makes ``save_model`` keep it.
"""

from __future__ import annotations

from . import baselines, group_cnn
from .baselines import EqCNN, SimpleCNN
from .group_cnn import C4CNN, D4CNN, GroupCNN

__all__ = ["SimpleCNN", "EqCNN", "GroupCNN", "C4CNN", "D4CNN", "baselines", "group_cnn"]
