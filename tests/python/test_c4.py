"""C4 layers and networks: exact equivariance, export, initialisation, bad input."""

import copy
import io
import math
import subprocess
import sys

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance.groups.c4 import rotate
from torch import nn

SIZES = [12, 13]  # even and odd
MODES = [True, False]  # train, eval


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_import_does_not_import_escnn():
    code = "import sys, equivariance; assert 'escnn' not in sys.modules"
    path = str(eq.__file__).rsplit("/equivariance/", 1)[0]
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": path})


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k", range(4))
def test_rotate_regular_matches_definition(size, k):
    x = torch.randn(2, 8, size, size + 1)
    y = eq.rotate_regular(x, k)
    for f in range(2):
        for r in range(4):
            expected = torch.rot90(x[:, 4 * f + (r - k) % 4], k, dims=(-2, -1))
            assert torch.equal(y[:, 4 * f + r], expected)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1)])
def test_lifting_conv_is_equivariant(size, stride, padding):
    # stride 2 is exact when (size + 2 * padding - kernel) is even: a 3x3 kernel on
    # odd sizes, a 4x4 one on even sizes
    kernel = 3 if stride == 1 or size % 2 else 4
    layer = eq.C4LiftingConv2d(3, 5, kernel, stride=stride, padding=padding)
    x = torch.randn(2, 3, size, size)
    y = layer(x)
    assert y.shape[1] == 20
    for k in range(4):
        assert rel_err(layer(rotate(x, k)), eq.rotate_regular(y, k)) < 1e-5


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kernel_size", [1, 3, 4, 5])
def test_group_conv_is_equivariant(size, kernel_size):
    layer = eq.C4Conv2d(3, 2, kernel_size, padding=kernel_size // 2)
    x = torch.randn(2, 12, size, size)
    y = layer(x)
    assert y.shape[1] == 8
    for k in range(4):
        assert rel_err(layer(eq.rotate_regular(x, k)), eq.rotate_regular(y, k)) < 1e-5


def test_rectangular_images():
    layer = nn.Sequential(eq.C4LiftingConv2d(1, 2, 3), eq.C4Conv2d(2, 2, 3, padding=1))
    x = torch.randn(2, 1, 10, 15)
    y = layer(x)
    for k in range(4):
        assert rel_err(layer(rotate(x, k)), eq.rotate_regular(y, k)) < 1e-5


# batch norm, group pool and max pool of C4 and D4: test_groups.py, parametrised by group


# SimpleCNN's and EqCNN's own layouts are tested in test_networks.py


@pytest.mark.parametrize("cls", [eq.SimpleCNN, eq.EqCNN, eq.C4CNN])
def test_networks_output_shape(cls):
    net = cls(num_classes=7)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 7)
    net = cls(in_channels=3, widths=(2, 3, 4))
    assert net(torch.randn(2, 3, 28, 28)).shape == (2, 10)


def test_c4cnn_any_size_and_parameter_count():
    net = eq.C4CNN(in_channels=3, widths=(2, 3, 4))
    assert net(torch.randn(2, 3, 5, 7)).shape == (2, 10)
    assert 8_000 <= sum(p.numel() for p in eq.C4CNN().parameters()) <= 14_000


@pytest.mark.parametrize("cls,size", [(eq.EqCNN, 28), (eq.EqCNN, 27)])
@pytest.mark.parametrize("train", MODES)
def test_eqcnn_is_invariant(cls, train, size):
    net = cls().train(train)
    x = torch.randn(4, 1, size, size)
    errors = eq.check_equivariance(net, x, output="invariant")
    assert max(errors) < 1e-4
    # and by hand
    y = net(x)
    for k in range(4):
        assert rel_err(net(rotate(x, k)), y) < 1e-4


# C4CNN's and D4CNN's invariance after training steps: test_groups.py


def test_simple_cnn_is_not_invariant():
    errors = eq.check_equivariance(eq.SimpleCNN(), torch.randn(4, 1, 28, 28))
    assert errors[0] == 0
    assert min(errors[1:]) > 1e-3


@pytest.mark.parametrize("layer,channels", [
    (lambda: eq.C4LiftingConv2d(2, 3, 3, stride=2, padding=1), 2),
    (lambda: eq.C4Conv2d(2, 3, 5, padding=2, bias=False), 8),
])
def test_export_gives_same_output(layer, channels):
    layer = layer()
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.normal_()
    conv = layer.export()
    assert type(conv) is nn.Conv2d
    x = torch.randn(2, channels, 11, 11)
    torch.testing.assert_close(conv(x), layer(x))
    # the export is detached: training the layer does not change it
    before = conv.weight.clone()
    with torch.no_grad():
        layer.weight.add_(1)
    assert torch.equal(conv.weight, before)


def reference_lifting(layer: eq.C4LiftingConv2d, x: torch.Tensor) -> torch.Tensor:
    """The lifting convolution computed from its definition, from the current weight."""
    w = layer.weight.detach()
    weight = torch.stack([torch.rot90(w, r, dims=(-2, -1)) for r in range(4)], dim=1)
    bias = layer.bias.detach().repeat_interleave(4)
    return torch.nn.functional.conv2d(x, weight.flatten(0, 1), bias, padding=layer.padding)


def _fused_adam_step(layer):
    opt = torch.optim.Adam(layer.parameters(), lr=0.1, fused=True)
    layer.train()
    layer(torch.randn(2, 1, 6, 6)).square().sum().backward()
    opt.step()


def _ema_through_data(layer):
    target = torch.randn_like(layer.weight)
    layer.weight.data.mul_(0.5).add_(target, alpha=0.5)


def _load_through_data(layer):
    layer.weight.data.copy_(torch.randn_like(layer.weight))
    layer.bias.data.copy_(torch.randn_like(layer.bias))


@pytest.mark.parametrize("update", [
    _fused_adam_step,
    lambda layer: layer.weight.data.mul_(2),
    _ema_through_data,
    _load_through_data,
    lambda layer: layer.load_state_dict({"weight": layer.weight * 0, "bias": layer.bias}),
], ids=["adam_fused", "data_mul", "ema_data", "load_data", "load_state_dict"])
def test_no_grad_forward_uses_the_current_weights(update):
    # before: a cache keyed on weight._version served stale filters after updates
    # that do not bump the version counter
    torch.manual_seed(0)
    layer = eq.C4LiftingConv2d(1, 2, 3, padding=1).eval()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        before = layer(x)  # an eval pass, as a cache would have kept
    torch.testing.assert_close(before, reference_lifting(layer, x))
    update(layer)
    layer.eval()
    with torch.no_grad():
        after = layer(x)
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, reference_lifting(layer, x))
    torch.testing.assert_close(layer.export()(x), after)


def _pickled_size(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def test_pickled_conv_carries_no_scratch_buffers():
    layer = eq.C4Conv2d(16, 16, 3, padding=1).eval()
    x = torch.randn(1, 64, 5, 5)
    with torch.no_grad():
        y = layer(x)
    whole, weights = _pickled_size(layer), _pickled_size(layer.state_dict())
    # the expanded filter and its index are 4x the base filter each: not pickled
    assert whole < weights + 20_000, (whole, weights)
    buf = io.BytesIO()
    torch.save(layer, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(back(x), y)
    assert torch.equal(back._index, layer._index)
    assert "_index" not in back.state_dict()
    twin = copy.deepcopy(layer)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), y)


def test_flags_rates_and_elements_are_not_coerced():
    # before: bias="False" kept the bias, k=1.5 acted as 1, momentum 5 was accepted
    for cls, args in ((eq.C4LiftingConv2d, (1, 2, 3)), (eq.C4Conv2d, (1, 2, 3))):
        for bad in ("False", 0, None):
            with pytest.raises(TypeError, match="`bias`"):
                cls(*args, bias=bad)
        assert cls(*args, bias=np.bool_(False)).bias is None
    x = torch.randn(1, 4, 3, 3)
    for bad in (1.5, float("nan")):
        with pytest.raises(ValueError, match="`k` must be a whole number"):
            eq.rotate_regular(x, bad)
        with pytest.raises(ValueError, match="`k` must be a whole number"):
            rotate(x, bad)
    for bad in ("1", True, None):
        with pytest.raises(TypeError, match="`k`"):
            eq.rotate_regular(x, bad)
    assert torch.equal(eq.rotate_regular(x, np.int64(5)), eq.rotate_regular(x, 1))
    assert torch.equal(eq.rotate_regular(x, 2.0), eq.rotate_regular(x, 2))
    for bad in (5.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="`momentum` must be a number in \\[0, 1\\]"):
            eq.C4BatchNorm2d(2, momentum=bad)
    with pytest.raises(TypeError, match="`momentum`"):
        eq.C4BatchNorm2d(2, momentum="0.1")
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="`eps`"):
            eq.C4BatchNorm2d(2, eps=bad)
    with pytest.raises(TypeError, match="`affine`"):
        eq.C4BatchNorm2d(2, affine="False")
    with pytest.raises(TypeError, match="`track_running_stats`"):
        eq.C4BatchNorm2d(2, track_running_stats=1)
    bn = eq.C4BatchNorm2d(np.int64(2), momentum=None, affine=np.bool_(False))
    assert bn.momentum is None and bn.weight is None and bn.num_fields == 2
    conv = eq.C4Conv2d(np.int64(2), np.int64(3), np.int64(3), stride=np.int64(1),
                       padding=np.int64(1), bias=np.bool_(True))
    assert conv.kernel_size == 3 and type(conv.padding) is int and conv.bias is not None


def test_running_variance_follows_the_data_with_full_momentum():
    bn = eq.C4BatchNorm2d(1, momentum=1.0)
    x = 3.0 * torch.randn(64, 4, 8, 8)
    bn(x)
    n = x.numel()
    assert bn.running_var.item() == pytest.approx(x.var().item() * n / (n - 1), rel=1e-4)


@pytest.mark.parametrize("cls", [eq.C4CNN, eq.C4InvariantLinear])
@pytest.mark.parametrize("train", MODES)
def test_empty_batch(cls, train):
    # before: C4CNN failed on an empty batch with a reshape error
    if cls is eq.C4CNN:
        net, x, out = cls(), torch.zeros(0, 1, 28, 28), (0, 10)
    else:
        net, x, out = cls(3, 5), torch.zeros(0, 12), (0, 5)
    assert net.train(train)(x).shape == out
    layers = (eq.C4LiftingConv2d(1, 2, 3), eq.C4Conv2d(2, 2, 3), eq.C4BatchNorm2d(2).train(train))
    inputs = (torch.zeros(0, 1, 5, 5), torch.zeros(0, 8, 5, 5), torch.zeros(0, 8, 5, 5))
    for layer, x in zip(layers, inputs):
        assert layer(x).shape[0] == 0


def test_gradients_match_exported_conv():
    layer = eq.C4Conv2d(2, 3, 3, padding=1).double()
    torch.autograd.gradcheck(lambda w: torch.nn.functional.conv2d(
        torch.ones(1, 8, 4, 4, dtype=torch.double),
        eq.groups.expansion.expand(w, layer._index)),
        (layer.weight.detach().clone().requires_grad_(),))


def test_initialisation_variance_and_expansion_index():
    layer = eq.C4Conv2d(256, 256, 3)
    # construction builds one integer gather index (escnn computes a basis instead)
    assert layer._index.dtype == torch.int32 and layer._index.shape == (1024, 1024, 3, 3)
    fan_in = 4 * 256 * 9
    assert abs(layer.weight.std().item() / math.sqrt(2 / fan_in) - 1) < 0.02
    assert layer.bias.abs().max() == 0
    # output variance of a He-initialised layer on unit inputs ~ 2
    small = eq.C4Conv2d(16, 16, 3)
    y = small(torch.randn(8, 64, 12, 12))
    assert 1.5 < y.var().item() < 2.5


def test_parameters_are_shared_across_orientations():
    layer = eq.C4LiftingConv2d(1, 2, 3)
    assert layer.weight.shape == (2, 1, 3, 3)
    assert layer.bias.shape == (2,)
    w, b = layer.expanded()
    assert w.shape == (8, 1, 3, 3) and b.shape == (8,)
    for r in range(4):
        assert torch.equal(w[r], torch.rot90(layer.weight[0], r, dims=(-2, -1)))
    reg = eq.C4Conv2d(2, 3, 3)
    assert reg.weight.shape == (3, 2, 4, 3, 3)
    assert sum(p.numel() for p in reg.parameters()) == 3 * 2 * 4 * 9 + 3


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", None, True])
def test_bad_counts(bad):
    with pytest.raises((ValueError, TypeError), match="kernel_size"):
        eq.C4Conv2d(2, 2, bad)
    with pytest.raises((ValueError, TypeError), match="out_fields"):
        eq.C4LiftingConv2d(1, bad, 3)
    with pytest.raises((ValueError, TypeError), match="num_fields"):
        eq.C4BatchNorm2d(bad)
    with pytest.raises((ValueError, TypeError), match="widths"):
        eq.C4CNN(widths=(8, bad, 16))


def test_whole_floats_are_accepted():
    layer = eq.C4Conv2d(2.0, 3.0, 3.0)
    assert layer.kernel_size == 3 and isinstance(layer.kernel_size, int)


def test_wrong_input_channels():
    with pytest.raises(ValueError, match="8 channels"):
        eq.C4Conv2d(2, 2, 3)(torch.randn(1, 7, 9, 9))
    with pytest.raises(ValueError, match="1 channels"):
        eq.C4LiftingConv2d(1, 2, 3)(torch.randn(1, 3, 9, 9))
    with pytest.raises(ValueError, match="12 channels"):
        eq.C4BatchNorm2d(3)(torch.randn(2, 8, 5, 5))
    with pytest.raises(ValueError, match="multiple of 4"):
        eq.C4GroupPool()(torch.randn(2, 6, 5, 5))
    with pytest.raises(ValueError, match="shape"):
        eq.C4CNN()(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match="square"):
        eq.EqCNN()(torch.randn(2, 1, 28, 20))
    with pytest.raises(ValueError, match="mode"):
        eq.C4GroupPool("median")


def test_soft_spatial_max_is_a_smooth_maximum():
    from equivariance.models.group_cnn import soft_spatial_max

    h = torch.randn(3, 5, 7, 7, requires_grad=True)
    hard = h.amax(dim=(-2, -1))
    soft = soft_spatial_max(h)
    assert soft.shape == (3, 5)
    # above the maximum by at most log(positions) / temperature
    assert torch.all(soft >= hard) and torch.all(soft <= hard + math.log(49) / 2)
    assert torch.allclose(soft_spatial_max(h, temperature=1e3), hard, atol=1e-2)
    # invariant to rotating the maps, and every position gets a gradient
    assert torch.allclose(soft_spatial_max(torch.rot90(h, 1, dims=(-2, -1))), soft, atol=1e-6)
    soft.sum().backward()
    assert bool((h.grad > 0).all())


def test_c4cnn_starts_with_small_filters_and_fast_running_statistics():
    from equivariance.models.group_cnn import C4CNN_BN_MOMENTUM, C4CNN_FILTER_SCALE

    torch.manual_seed(0)
    net = eq.C4CNN()
    torch.manual_seed(0)
    plain_init = eq.C4LiftingConv2d(1, 8, 3, padding=1)
    assert torch.allclose(net.features[0].weight, C4CNN_FILTER_SCALE * plain_init.weight)
    norms = [m for m in net.features if isinstance(m, eq.C4BatchNorm2d)]
    assert len(norms) == 3 and all(m.momentum == C4CNN_BN_MOMENTUM for m in norms)


def test_spatial_summary_keeps_regular_fields():
    from equivariance.models.group_cnn import spatial_summary

    h = torch.randn(2, 8, 7, 7)  # 2 regular fields
    out = spatial_summary(h)
    assert out.shape == (2, 16)
    assert torch.allclose(out[:, 8:], h.mean(dim=(-2, -1)))
    # turning the maps and shifting the orientations shifts the orientations of the summary
    turned = spatial_summary(eq.rotate_regular(h, 1))
    expected = torch.cat([torch.roll(out[:, :8].view(2, 2, 4), 1, dims=2).reshape(2, 8),
                          torch.roll(out[:, 8:].view(2, 2, 4), 1, dims=2).reshape(2, 8)], dim=1)
    assert torch.allclose(turned, expected, atol=1e-5)
