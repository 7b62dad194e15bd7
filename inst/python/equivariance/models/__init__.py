"""Classifiers that need no escnn: the baselines and the group CNNs (C4, D4)."""

from __future__ import annotations

from . import group_networks, networks
from .group_networks import D4CNN
from .networks import C4CNN, C4InvariantLinear, EqCNN, SimpleCNN

__all__ = ["SimpleCNN", "EqCNN", "C4CNN", "C4InvariantLinear", "D4CNN"]
