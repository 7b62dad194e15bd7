"""Tests for equivariance.summary: layers, output shapes, parameter counts."""

import equivariance as eq
import pytest
import torch
from torch import nn


def test_layers_shapes_and_counts_of_a_c4_network():
    model = eq.C4CNN(widths=(2, 2, 2))
    s = eq.summary(model, (1, 28, 28))
    assert s.total == sum(p.numel() for p in model.parameters()) == sum(s.params)
    assert s.name[0] == "features.0" and s.kind[0] == "C4LiftingConv2d"
    assert s.output_shape[0] == (8, 28, 28)  # 2 regular fields of 4 orientations
    assert s.output_shape[-1][-1] == 10
    text = str(s)
    assert "C4CNN, input (1, 28, 28)" in text and f"total parameters: {s.total:,}" in text
    assert s.as_dict()["layers"]["output_shape"][0] == [8, 28, 28]


def test_without_an_input_shape_no_forward_pass_and_frozen_parameters_counted():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    s = eq.summary(model)
    assert s.output_shape == [None, None, None] and s.params == [16, 0, 10]
    assert (s.total, s.trainable) == (26, 14)
    assert "?" in str(s)
    assert eq.summary(model, 3).output_shape == [(4,), (4,), (2,)]


def test_the_shape_fit_saw_is_known_and_modes_are_kept():
    train = eq.load_fashion_mnist("train", root="subset", limit=8)
    model = eq.SimpleCNN(widths=(2, 2, 2))
    eq.fit(model, train, verbose=False)
    model.train()
    s = eq.summary(model)
    assert s.input_shape == (1, 28, 28) and s.output_shape[0] == (2, 28, 28)
    assert model.training


def test_shared_parameters_once_and_a_double_model():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, lin).double()
    s = eq.summary(model, (2,))
    assert s.total == 6 and s.name == ["0"]  # one module, registered once


def test_bad_arguments():
    with pytest.raises(TypeError, match="`model` must be a torch nn.Module"):
        eq.summary("model")
    with pytest.raises(ValueError, match="`input_shape` must be a non-empty sequence"):
        eq.summary(nn.Linear(2, 2), (0, 2))
    with pytest.raises(ValueError, match=r"`input_shape` \(3,\) does not fit the model"):
        eq.summary(nn.Linear(2, 2), (3,))
    assert torch.is_grad_enabled()
