"""check_equivariance: actions, auto detection, side effects, bad input."""

import equivariance as eq
import pytest
import torch
from equivariance.groups.c4 import rotate
from torch import nn


def test_reports_one_error_per_element():
    errors = eq.check_equivariance(eq.C4CNN(), torch.randn(2, 1, 28, 28))
    assert isinstance(errors, list) and len(errors) == 4
    assert errors[0] == 0
    assert max(errors) < 1e-4


def test_simple_cnn_is_clearly_not_invariant():
    errors = eq.check_equivariance(eq.SimpleCNN(), torch.randn(4, 1, 28, 28))
    assert min(errors[1:]) > 1e-3


def test_auto_reads_layer_declarations():
    x = torch.randn(2, 1, 11, 11)
    assert max(eq.check_equivariance(eq.C4LiftingConv2d(1, 2, 3), x)) < 1e-5
    seq = nn.Sequential(eq.C4LiftingConv2d(1, 2, 3), nn.ReLU(), eq.C4Conv2d(2, 2, 3), nn.ReLU())
    assert max(eq.check_equivariance(seq, x)) < 1e-5
    seq_pooled = nn.Sequential(seq, eq.C4GroupPool())
    assert max(eq.check_equivariance(seq_pooled, x)) < 1e-5
    xr = torch.randn(2, 8, 10, 10)
    assert max(eq.check_equivariance(eq.C4Conv2d(2, 3, 3), xr)) < 1e-5


def test_explicit_actions_and_callables():
    x = torch.randn(2, 1, 11, 11)
    layer = eq.C4LiftingConv2d(1, 2, 3)
    assert max(eq.check_equivariance(layer, x, output="regular", input="rotate")) < 1e-5
    # the wrong action is reported
    assert max(eq.check_equivariance(layer, x, output="rotate")) > 1e-2
    assert max(eq.check_equivariance(layer, x, output=eq.rotate_regular)) < 1e-5
    # a plain conv with a rotation-symmetric filter commutes with rotation
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]]))
    assert max(eq.check_equivariance(conv, x, output="rotate")) < 1e-5
    # any callable works, here a function of the image
    assert max(eq.check_equivariance(lambda t: t.sum((-2, -1)), x)) < 1e-5
    assert max(eq.check_equivariance(lambda t: t, x, output=lambda y, k: rotate(y, k))) == 0


def test_relative_to_output_scale():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten(), nn.Linear(81, 1))
    x = torch.randn(2, 1, 11, 11)
    small = eq.check_equivariance(net, x)
    with torch.no_grad():
        net[2].weight.mul_(1000)
        net[2].bias.mul_(1000)
    large = eq.check_equivariance(net, x)
    assert large == pytest.approx(small, rel=1e-3)


def test_no_side_effects_on_buffers_or_mode():
    net = eq.C4CNN().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    eq.check_equivariance(net, torch.randn(4, 1, 16, 16))
    assert net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_accepts_arrays():
    import numpy as np

    errors = eq.check_equivariance(eq.C4CNN(), np.random.rand(2, 1, 12, 12))
    assert max(errors) < 1e-4


@pytest.mark.parametrize("group", ["SO2", "C8", "D8", 4, None])
def test_only_c4_and_d4(group):
    with pytest.raises(ValueError, match="`group`"):
        eq.check_equivariance(eq.C4CNN(), torch.randn(1, 1, 8, 8), group=group)


def test_d4_reports_the_8_elements_in_order():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 13, 13)
    errors = eq.check_equivariance(eq.D4CNN(widths=(2, 2, 3)).train(), x, group="D4")
    assert isinstance(errors, list) and len(errors) == 8 and errors[0] == 0
    assert max(errors) < 1e-5  # float rounding only
    assert eq.check_equivariance(eq.D4CNN(), x, group="d4") == pytest.approx(errors, abs=1e-5)
    # C4 stays the default: the 4 rotations only
    assert len(eq.check_equivariance(eq.D4CNN(widths=(2, 2, 3)), x)) == 4
    # a D4 layer's output transforms as its regular representation under all 8
    layer = eq.D4LiftingConv2d(1, 2, 3)
    assert max(eq.check_equivariance(layer, x, group="D4")) < 1e-5
    assert max(eq.check_equivariance(layer, x, group="D4", output="regular")) < 1e-5
    assert max(eq.check_equivariance(layer, x, group="D4", output="rotate")) > 1e-2
    hidden = torch.randn(2, 16, 9, 9)
    assert max(eq.check_equivariance(eq.D4Conv2d(2, 3, 3), hidden, group="D4")) < 1e-5
    # a C4 network is not invariant to the mirrors: elements 4..7
    c4 = eq.check_equivariance(eq.C4CNN(), x, group="D4")
    assert max(c4[:4]) < 1e-4 and min(c4[4:]) > 1e-3


def test_simple_cnn_is_clearly_not_d4_invariant():
    torch.manual_seed(0)
    errors = eq.check_equivariance(eq.SimpleCNN(), torch.randn(4, 1, 28, 28), group="D4")
    assert len(errors) == 8 and min(errors[1:]) > 1e-3


def test_d4_bad_actions():
    x = torch.randn(1, 1, 9, 9)
    with pytest.raises(ValueError, match="`output`"):
        eq.check_equivariance(eq.D4CNN(), x, group="D4", output="spin")
    with pytest.raises(TypeError, match="`input`"):
        eq.check_equivariance(eq.D4CNN(), x, group="D4", input=3)


def test_escnn_modules_with_the_group_of_their_gspace():
    from equivariance import escnn_models as em

    torch.manual_seed(0)
    d4 = em.flip_rot2d_on_r2(4)
    conv = em.r2_conv(em.field_type(d4, "trivial"), em.field_type(d4, "regular"), 3)
    x = torch.randn(2, 1, 9, 9)
    errors = eq.check_equivariance(conv, x, group="D4")
    assert len(errors) == 8 and max(errors) < 1e-4
    # escnn's element k is ours: our regular action agrees with escnn's transform
    assert max(eq.check_equivariance(conv, x, group="D4", output="regular")) < 1e-4
    with pytest.raises(ValueError, match="`group`"):
        eq.check_equivariance(conv, x)  # C4 by default, the module acts on D4
    c8 = em.rot2d_on_r2(8)
    conv8 = em.r2_conv(em.field_type(c8, "trivial"), em.field_type(c8, "regular"), 3)
    with pytest.raises(ValueError, match="C8"):
        eq.check_equivariance(conv8, x, group="D4")  # 8 elements too, another group


def test_bad_actions():
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="output"):
        eq.check_equivariance(eq.C4CNN(), x, output="spin")
    with pytest.raises(ValueError, match="input"):
        eq.check_equivariance(eq.C4CNN(), x, input="flip")
    with pytest.raises(TypeError, match="output"):
        eq.check_equivariance(eq.C4CNN(), x, output=3)
    with pytest.raises(ValueError, match="shape"):
        eq.check_equivariance(eq.C4LiftingConv2d(1, 1, 3), torch.randn(1, 1, 8, 9),
                              output="invariant")


def test_feature_maps_rotate_and_shift_with_the_input():
    torch.manual_seed(0)
    model = eq.C4CNN().train()
    x = torch.rand(2, 1, 28, 28)
    maps = eq.feature_maps(model, x, depth=3)  # lifting conv, batch norm, ReLU
    assert maps.shape == (2, 32, 28, 28) and model.training
    turned = eq.feature_maps(model, torch.rot90(x, 1, dims=(-2, -1)), depth=3)
    assert torch.allclose(turned, eq.rotate_regular(maps, 1), atol=1e-5)
    assert not torch.allclose(turned, torch.rot90(maps, 1, dims=(-2, -1)), atol=1e-3)
    plain = eq.feature_maps(torch.nn.Sequential(torch.nn.Identity()), x.numpy())
    assert torch.equal(plain, x)


@pytest.mark.parametrize(
    "model, x, depth, match",
    [
        ("eqcnn", (1, 1, 28, 28), 1, "model"),
        ("linear", (1, 1, 28, 28), 1, "model"),
        ("c4", (1, 1, 28, 28), 0, "depth"),
        ("c4", (1, 1, 28, 28), 99, "depth"),
        ("c4", (1, 1, 28, 28), 1.5, "depth"),
        ("c4", (1, 28, 28), 1, "x"),
    ],
)
def test_feature_maps_bad_input(model, x, depth, match):
    module = {"eqcnn": eq.EqCNN(), "linear": torch.nn.Linear(2, 2), "c4": eq.C4CNN()}[model]
    with pytest.raises((TypeError, ValueError), match=match):
        eq.feature_maps(module, torch.rand(*x), depth=depth)


def test_module_must_be_callable():
    with pytest.raises(
        TypeError, match="`module` must be a torch nn.Module, an escnn .* or a callable"
    ):
        eq.check_equivariance(5, torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_rejected(value):
    x = torch.rand(2, 1, 8, 8)
    x[1, 0, 2, 2] = value
    with pytest.raises(ValueError, match="`x` must hold finite numbers only"):
        eq.check_equivariance(eq.C4LiftingConv2d(1, 2, 3), x)
    with pytest.raises(ValueError, match="`x` must hold finite numbers only"):
        eq.feature_maps(eq.C4CNN(), x, depth=1)


def test_inputs_are_converted_to_the_module_dtype():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 9, 9)
    layer = eq.C4LiftingConv2d(1, 2, 3)
    for given in (x.double(), (x * 255).long(), x.numpy().astype("float64")):
        assert max(eq.check_equivariance(layer, given)) < 1e-5
    assert max(eq.check_equivariance(layer.double(), x)) < 1e-12  # float32 into float64
    # a function keeps float64 inputs in float64
    assert max(eq.check_equivariance(lambda t: t * 2, x.double(), output="rotate")) == 0


def test_feature_maps_restore_every_mode_and_take_numpy_depth():
    import numpy as np

    model = eq.SimpleCNN().train()
    frozen = next(m for m in model.features if isinstance(m, nn.Conv2d))
    frozen.eval()
    maps = eq.feature_maps(model, torch.rand(1, 1, 28, 28), depth=np.int64(1))
    assert maps.dim() == 4
    assert model.training and not frozen.training
    assert all(m.training for m in model.modules() if m is not frozen)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_checks_and_feature_maps_follow_a_double_model_on_its_device(device):
    torch.manual_seed(0)
    model = eq.C4CNN(widths=(2, 2, 2)).double().to(device)
    x = torch.rand(2, 1, 28, 28)  # float32 on the CPU, as R sends arrays
    maps = eq.feature_maps(model, x, depth=2)
    assert maps.dtype == torch.float64 and maps.device.type == device
    assert max(eq.check_equivariance(model, x.numpy().astype("float64"))) < 1e-12
    assert max(eq.check_equivariance(model.features[0], x)) < 1e-12
