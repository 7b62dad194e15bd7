"""C4CNN and D4CNN, one GroupCNN: the same parameters, keys and initial weights as before.

The numbers below were recorded from the two separate networks of version 0.1.0
(before they became subclasses of one ``GroupCNN``) under ``torch.manual_seed(0)``:
the state-dict layout, a position-weighted checksum of every entry, the parameter
count and the next random draw (the same random stream was consumed).
"""

from __future__ import annotations

import equivariance as eq
import pytest
import torch
from equivariance.models.group_cnn import GroupCNN

C4CNN_LAYOUT = {
    "features.0.weight": (8, 1, 3, 3),
    "features.0.bias": (8,),
    "features.1.weight": (8,),
    "features.1.bias": (8,),
    "features.1.running_mean": (8,),
    "features.1.running_var": (8,),
    "features.1.num_batches_tracked": (),
    "features.4.weight": (12, 8, 4, 3, 3),
    "features.4.bias": (12,),
    "features.5.weight": (12,),
    "features.5.bias": (12,),
    "features.5.running_mean": (12,),
    "features.5.running_var": (12,),
    "features.5.num_batches_tracked": (),
    "features.8.weight": (20, 12, 4, 3, 3),
    "features.8.bias": (20,),
    "features.9.weight": (20,),
    "features.9.bias": (20,),
    "features.9.running_mean": (20,),
    "features.9.running_var": (20,),
    "features.9.num_batches_tracked": (),
    "head.linear.weight": (10, 160),
    "head.linear.bias": (10,),
}
D4CNN_LAYOUT = {
    "features.0.weight": (8, 1, 3, 3),
    "features.0.bias": (8,),
    "features.1.weight": (8,),
    "features.1.bias": (8,),
    "features.1.running_mean": (8,),
    "features.1.running_var": (8,),
    "features.1.num_batches_tracked": (),
    "features.4.weight": (8, 8, 8, 3, 3),
    "features.4.bias": (8,),
    "features.5.weight": (8,),
    "features.5.bias": (8,),
    "features.5.running_mean": (8,),
    "features.5.running_var": (8,),
    "features.5.num_batches_tracked": (),
    "features.8.weight": (12, 8, 8, 3, 3),
    "features.8.bias": (12,),
    "features.9.weight": (12,),
    "features.9.bias": (12,),
    "features.9.running_mean": (12,),
    "features.9.running_var": (12,),
    "features.9.num_batches_tracked": (),
    "head.linear.weight": (10, 192),
    "head.linear.bias": (10,),
}

CASES = [
    (eq.C4CNN, {}, -13495.873871535543, 13898, 0.861588716506958),
    (eq.D4CNN, {}, 12699.27839748779, 13606, 0.7265395522117615),
    (eq.C4CNN, {"in_channels": 3, "num_classes": 5, "widths": (2, 3, 4), "kernel_size": 5},
     2105.078468153522, 2142, 0.3532646894454956),
    (eq.D4CNN, {"in_channels": 2, "num_classes": 4, "widths": (2, 2, 3), "kernel_size": 5},
     -2532.28386147664, 2317, 0.03685241937637329),
]


def checksum(state: dict) -> float:
    """Every entry weighted by its position and its tensor's rank in the state dict."""
    total = 0.0
    for i, v in enumerate(state.values()):
        flat = v.double().flatten()
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64)
        total += float((flat * weights).sum()) * (i + 1)
    return total


@pytest.mark.parametrize("cls, layout", [(eq.C4CNN, C4CNN_LAYOUT), (eq.D4CNN, D4CNN_LAYOUT)])
def test_default_state_dict_layout_is_unchanged(cls, layout):
    state = cls().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == layout
    assert list(state) == list(layout)


@pytest.mark.parametrize("cls, kwargs, expected, params, next_draw", CASES)
def test_initial_weights_are_unchanged(cls, kwargs, expected, params, next_draw):
    torch.manual_seed(0)
    model = cls(**kwargs)
    assert checksum(model.state_dict()) == pytest.approx(expected, rel=1e-9)
    assert sum(p.numel() for p in model.parameters()) == params
    assert float(torch.rand(1)) == pytest.approx(next_draw, rel=1e-7)


def test_c4cnn_and_d4cnn_are_group_cnns_of_their_group():
    assert isinstance(eq.C4CNN(), GroupCNN) and eq.C4CNN().group.name == "C4"
    assert isinstance(eq.D4CNN(), GroupCNN) and eq.D4CNN().group.name == "D4"
    torch.manual_seed(0)
    direct = GroupCNN("C4", widths=(8, 12, 20))
    torch.manual_seed(0)
    sub = eq.C4CNN()
    for (k1, v1), (k2, v2) in zip(direct.state_dict().items(), sub.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
