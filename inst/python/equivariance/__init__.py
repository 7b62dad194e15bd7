"""equivariance: tools for neural networks that respect symmetries.

The public API is re-exported here. Importing this package does not import escnn:
the escnn helpers live in :mod:`equivariance.escnn_models` and load it on first use.
"""

from . import distances, transforms
from .regularizer import EquivarianceError, EquivarianceRegularizer

__version__ = "0.1.0"

__all__ = [
    "EquivarianceRegularizer",
    "EquivarianceError",
    "distances",
    "transforms",
]

# -- quantile maps (issue 3) --

# -- C4 networks and checks (issue 4) --

# -- data and training (issue 5) --
