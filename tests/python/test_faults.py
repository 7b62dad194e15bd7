"""Faults of single-process calls, by their real mechanism: numpy scalars as numbers,
FIFOs and other files that are not model files, sizes that cannot fit, output paths
that cannot be written, loading messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import equivariance as eq
from equivariance._validation import is_real_number, positive_real, unit_interval


def _data(n: int = 12):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


# -- item 11: numpy scalars are numbers ------------------------------------------------------


@pytest.mark.parametrize("value", [np.float32(0.25), np.float64(0.25), np.float16(0.25),
                                   np.array(0.25), torch.tensor(0.25)])
def test_numpy_scalars_are_numbers_everywhere(value):
    assert is_real_number(value)
    assert positive_real(value, "lr") == pytest.approx(0.25, rel=1e-3)
    assert unit_interval(value, "p") == pytest.approx(0.25, rel=1e-3)
    history = eq.fit(_net(), _data(), batch_size=np.int64(4), lr=np.float32(1e-2),
                     epochs=np.int32(1), validation_data=value, seed=np.uint8(1), verbose=False)
    assert len(history.val_loss) == 1
    assert not is_real_number(np.bool_(True)) and not is_real_number(np.array([0.25]))


def test_numpy_integers_as_layer_sizes_and_memory_levels():
    model = _net()
    model.in_channels = np.int64(1)  # what a user's own module may hold
    from equivariance.devices import model_in_channels
    from equivariance.memory import memory_grew

    assert model_in_channels(model) == 1 and type(model_in_channels(model)) is int
    memory_grew(np.float32(64))  # accepted, not "must be a non-negative number"
