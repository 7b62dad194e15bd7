"""SimpleCNN and EqCNN: the article's networks by default, the benchmark's by option."""

import equivariance as eq
import pytest
import torch
from equivariance import benchmark as B
from equivariance.groups.c4 import rotate


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_parameter_counts_are_the_articles():
    assert count(eq.SimpleCNN()) == 13_978
    assert count(eq.EqCNN()) == 7_834


def test_benchmark_variants_keep_their_layout_and_budget():
    # three 3x3 filters; the SimpleCNNs keep the size, EqCNN (4 rotations) has no padding
    for name in ("SimpleCNN", "SimpleCNN+aug", "SimpleCNN+reg", "EqCNN"):
        model = B.benchmark_model(name)
        assert count(model) == 13_780
        padding = (0, 0, 0) if name == "EqCNN" else (1, 1, 1)
        assert model.kernel_size == (3, 3, 3) and model.padding == padding


def test_simple_cnn_layers_are_the_articles():
    model = eq.SimpleCNN()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(8, 1, 3, 3), (16, 8, 3, 3), (16, 16, 7, 7)]
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (0, 0)]
    assert [type(m).__name__ for m in model.features] == [
        "Conv2d", "SiLU", "MaxPool2d", "Conv2d", "SiLU", "MaxPool2d", "Conv2d", "SiLU",
    ]
    assert tuple(model.head.weight.shape) == (10, 16)
    shapes = []
    h = torch.randn(2, 1, 28, 28)
    for m in model.features:
        h = m(h)
        if not isinstance(m, torch.nn.SiLU):
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(8, 28, 28), (8, 14, 14), (16, 14, 14), (16, 7, 7), (16, 1, 1)]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_eq_cnn_layers_are_the_articles():
    model = eq.EqCNN()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv3d)]
    assert [tuple(c.weight.shape) for c in convs] == [
        (8, 1, 1, 3, 3), (16, 8, 1, 3, 3), (16, 16, 1, 5, 5),
    ]
    assert all(c.padding == (0, 0, 0) for c in convs)
    assert tuple(model.head.weight.shape) == (10, 16)
    # the maps of each rotation: 28 -> 26 -> 13 -> 11 -> 5 -> 1
    sides = []
    h = torch.randn(4, 1, 28, 28)
    for m in model.features:
        if isinstance(m, torch.nn.Conv3d):
            h = torch.nn.functional.conv2d(h, m.weight.squeeze(2), m.bias, padding=m.padding[1:])
            sides.append(h.shape[-1])
        elif isinstance(m, torch.nn.MaxPool3d):
            h = torch.nn.functional.max_pool2d(h, 2)
            sides.append(h.shape[-1])
    assert sides == [26, 13, 11, 5, 1]
    assert model._features_2d(torch.randn(4, 1, 28, 28)).shape == (4, 16, 1, 1)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("size", [28, 31])
def test_eq_cnn_is_invariant_to_quarter_turns(train, size):
    torch.manual_seed(0)
    model = eq.EqCNN().train(train)
    x = torch.randn(3, 1, size, size)
    y = model(x)
    for k in (1, 2, 3):
        # the 4 rotations are only permuted: equal up to float rounding
        torch.testing.assert_close(model(rotate(x, k)), y, rtol=0, atol=1e-6)


def test_simple_cnn_is_not_invariant():
    torch.manual_seed(0)
    model = eq.SimpleCNN()
    x = torch.randn(3, 1, 28, 28)
    assert (model(rotate(x, 1)) - model(x)).abs().max() > 1e-3


@pytest.mark.parametrize("build", [
    lambda: eq.SimpleCNN(num_classes=7), lambda: eq.EqCNN(num_classes=7),
    lambda: eq.C4CNN(num_classes=7), lambda: B.benchmark_model("EqCNN", num_classes=7),
])
@pytest.mark.parametrize("train", [True, False])
def test_empty_batch_gives_empty_logits(build, train):
    model = build().train(train)
    out = model(torch.zeros(0, 1, 28, 28))
    assert out.shape == (0, 7) and out.dtype == torch.float32


def test_layout_options():
    model = eq.SimpleCNN(in_channels=3, widths=(2, 3, 4), kernel_size=3, padding="same")
    assert model.kernel_size == (3, 3, 3) and model.padding == (1, 1, 1)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    model = eq.EqCNN(kernel_size=(5, 3, 3), padding=(2, 1, 1))
    assert model.kernel_size == (5, 3, 3) and model.padding == (2, 1, 1)
    assert model(torch.randn(2, 1, 12, 12)).shape == (2, 10)
    # numpy whole numbers are whole numbers
    np = pytest.importorskip("numpy")
    assert eq.SimpleCNN(kernel_size=np.int64(3), padding=np.int64(1)).padding == (1, 1, 1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kernel_size": 0}, "`kernel_size` must be a positive whole number, got 0"),
        (
            {"kernel_size": 1.5},
            "`kernel_size` must be a positive whole number or a sequence of three, got 1.5",
        ),
        ({"kernel_size": (3, 3)}, "`kernel_size` must have 3 entries, got 2"),
        ({"kernel_size": (3, 3, -1)}, r"`kernel_size\[2\]` must be a positive whole number"),
        ({"padding": "valid"}, '`padding` must be "same", a non-negative whole number or three'),
        ({"padding": -1}, "`padding` must be a non-negative whole number, got -1"),
        ({"padding": True}, "`padding` must be"),
        ({"kernel_size": "3"}, "`kernel_size` must be a positive whole number or a sequence"),
    ],
)
@pytest.mark.parametrize("cls", [eq.SimpleCNN, eq.EqCNN])
def test_bad_layouts_are_rejected(cls, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls,side", [(eq.SimpleCNN, 28), (eq.EqCNN, 26)])
def test_too_small_images_get_a_clear_error(cls, side):
    model = cls()
    assert model.min_side == side
    assert model(torch.randn(1, 1, side, side)).shape == (1, 10)
    with pytest.raises(ValueError, match=f"at least {side} x {side} pixels, got 16 x 16"):
        model(torch.randn(1, 1, 16, 16))
