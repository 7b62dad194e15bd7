"""Everything that needs escnn: builders, classifiers and the adapter for checks.

- :mod:`.builders`: the walkthrough's building blocks (gspaces, field types,
  convolutions, batch norms, non-linearities, pooling, ``GeometricTensor``);
- :mod:`.networks`: the escnn classifiers :class:`EscnnCNN` and :class:`EscnnC4CNN`;
- :mod:`.checks`: what :func:`equivariance.check_equivariance` needs to check an
  escnn module (imported by it on demand).

``import equivariance`` does not import this package: ``equivariance.escnn_models``
loads it on first access, and escnn itself is imported on first use of a builder.
The modules import each other in one direction only (builders <- networks, builders
<- checks), and none of them imports the rest of the core's families back.
"""

from __future__ import annotations

from .builders import (
    field_type,
    flip_rot2d_on_r2,
    forward,
    geometric_tensor,
    group_element,
    group_elements,
    group_pooling,
    iid_batch_norm,
    inner_batch_norm,
    norm_nonlinearity,
    norm_pool,
    pointwise_avg_pool,
    r2_conv,
    relu,
    representation,
    representation_matrix,
    rot2d_on_r2,
    sequential,
    walkthrough_model,
)
from .networks import EscnnC4CNN, EscnnCNN

__all__ = [
    "rot2d_on_r2",
    "flip_rot2d_on_r2",
    "representation",
    "field_type",
    "r2_conv",
    "geometric_tensor",
    "group_elements",
    "group_element",
    "representation_matrix",
    "inner_batch_norm",
    "iid_batch_norm",
    "relu",
    "norm_nonlinearity",
    "pointwise_avg_pool",
    "group_pooling",
    "norm_pool",
    "sequential",
    "forward",
    "walkthrough_model",
    "EscnnCNN",
    "EscnnC4CNN",
]
