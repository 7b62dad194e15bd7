"""C4 layers and networks: exact equivariance, export, initialisation, bad input."""

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import equivariance as eq
from equivariance.c4 import rotate

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


@pytest.mark.parametrize("train", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_batch_norm_group_pool_max_pool(train, size):
    bn = eq.C4BatchNorm2d(3).train(train)
    if not train:
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
    x = torch.randn(4, 12, size, size) * 3 + 1
    y = bn(x)
    for k in range(4):
        assert rel_err(bn(eq.rotate_regular(x, k)), eq.rotate_regular(y, k)) < 1e-5
    for mode in ("max", "mean"):
        pool = eq.C4GroupPool(mode)
        z = pool(y)
        assert z.shape == (4, 3, size, size)
        for k in range(4):
            assert rel_err(pool(eq.rotate_regular(y, k)), rotate(z, k)) < 1e-6
    mp = eq.C4MaxPool2d()
    m = mp(y)
    assert m.shape[-1] == math.ceil(size / 2)
    for k in range(4):
        assert torch.equal(mp(eq.rotate_regular(y, k)), eq.rotate_regular(m, k))


def test_batch_norm_shares_statistics_within_fields():
    bn = eq.C4BatchNorm2d(2)
    x = torch.randn(8, 8, 5, 5)
    x[:, 4:] = x[:, 4:] * 10 + 5
    y = bn(x)
    for f in range(2):
        field = y[:, 4 * f: 4 * f + 4]
        assert abs(field.mean().item()) < 1e-5
        assert abs(field.var(unbiased=False).item() - 1) < 1e-3
    assert bn.running_mean.shape == (2,)
    assert bn.running_mean[1] > bn.running_mean[0]


@pytest.mark.parametrize("cls", [eq.SimpleCNN, eq.EqCNN, eq.C4CNN])
def test_networks_output_shape(cls):
    net = cls(num_classes=7)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 7)
    net = cls(in_channels=3, widths=(2, 3, 4))
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(eq.SimpleCNN()) == count(eq.EqCNN())
    assert 8_000 <= count(eq.C4CNN()) <= 14_000


@pytest.mark.parametrize("cls", [eq.EqCNN, eq.C4CNN])
@pytest.mark.parametrize("train", MODES)
@pytest.mark.parametrize("size", [28, 17])
def test_networks_are_invariant(cls, train, size):
    net = cls().train(train)
    x = torch.randn(4, 1, size, size)
    errors = eq.check_equivariance(net, x, output="invariant")
    assert max(errors) < 1e-4
    # and by hand
    y = net(x)
    for k in range(4):
        assert rel_err(net(rotate(x, k)), y) < 1e-4


def test_c4cnn_trained_in_eval_mode_stays_invariant():
    net = eq.C4CNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        loss = net(torch.randn(8, 1, 28, 28)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    assert max(eq.check_equivariance(net, torch.randn(4, 1, 28, 28))) < 1e-4


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


def test_eval_cache_follows_parameter_updates():
    layer = eq.C4Conv2d(2, 2, 3).eval()
    x = torch.randn(1, 8, 7, 7)
    with torch.no_grad():
        y1 = layer(x)
        layer.weight.mul_(2)
        y2 = layer(x)
    torch.testing.assert_close(y2, 2 * y1)
    layer.load_state_dict({"weight": layer.weight * 0, "bias": layer.bias})
    with torch.no_grad():
        assert layer(x).abs().max() == 0


def test_gradients_match_exported_conv():
    layer = eq.C4Conv2d(2, 3, 3, padding=1).double()
    torch.autograd.gradcheck(lambda w: torch.nn.functional.conv2d(
        torch.ones(1, 8, 4, 4, dtype=torch.double),
        eq.c4._expand(w, layer._index)),
        (layer.weight.detach().clone().requires_grad_(),))


def test_initialisation_variance_and_speed():
    import time

    t = time.perf_counter()
    layer = eq.C4Conv2d(256, 256, 3)
    assert time.perf_counter() - t < 2.0  # escnn needs seconds for this layer
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
    assert w.shape == (8, 1, 3, 3)
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
    from equivariance.networks import soft_spatial_max

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
    from equivariance.networks import C4CNN_BN_MOMENTUM, C4CNN_FILTER_SCALE

    torch.manual_seed(0)
    net = eq.C4CNN()
    torch.manual_seed(0)
    plain_init = eq.C4LiftingConv2d(1, 8, 3, padding=1)
    assert torch.allclose(net.features[0].weight, C4CNN_FILTER_SCALE * plain_init.weight)
    norms = [m for m in net.features if isinstance(m, eq.C4BatchNorm2d)]
    assert len(norms) == 3 and all(m.momentum == C4CNN_BN_MOMENTUM for m in norms)


def test_spatial_summary_keeps_regular_fields():
    from equivariance.networks import spatial_summary

    h = torch.randn(2, 8, 7, 7)  # 2 regular fields
    out = spatial_summary(h)
    assert out.shape == (2, 16)
    assert torch.allclose(out[:, 8:], h.mean(dim=(-2, -1)))
    # turning the maps and shifting the orientations shifts the orientations of the summary
    turned = spatial_summary(eq.rotate_regular(h, 1))
    expected = torch.cat([torch.roll(out[:, :8].view(2, 2, 4), 1, dims=2).reshape(2, 8),
                          torch.roll(out[:, 8:].view(2, 2, 4), 1, dims=2).reshape(2, 8)], dim=1)
    assert torch.allclose(turned, expected, atol=1e-5)
