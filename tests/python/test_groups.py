"""Finite groups on the pixel grid (C4, D4): group data, filter expansion, the layers and
networks of both groups (one suite parametrised by the group where C4 and D4 share code)."""

import copy
import pickle

import equivariance as eq
import pytest
import torch
from equivariance.groups import C4, D4, expansion
from equivariance.groups.group import grid_transform, regular_transform
from torch import nn

SIZES = [8, 9]  # even and odd
MODES = [True, False]  # train, eval
D4_NAMES = ["rot0", "rot90", "rot180", "rot270",
            "flip_rot0", "flip_rot90", "flip_rot180", "flip_rot270"]


def worst(errors: dict) -> float:
    return max(errors.values())


@pytest.mark.parametrize("group", [C4, D4])
def test_cayley_table_is_the_composition_of_the_actions(group):
    x = torch.randn(2, 3, 5, 6)
    for a in range(group.order):
        for b in range(group.order):
            ab = int(group.cayley[a, b])
            assert torch.equal(grid_transform(grid_transform(x, b, group), a, group),
                               grid_transform(x, ab, group))
        inv = int(group.inverse[a])
        assert torch.equal(grid_transform(grid_transform(x, a, group), inv, group), x)


def test_d4_elements_and_names():
    assert D4.order == 8 and C4.order == 4
    assert list(D4.names) == D4_NAMES
    assert D4.elements[5] == (1, 1)  # flip_rot90: mirror left-right, then a quarter turn
    x = torch.arange(6.0).view(1, 1, 2, 3)
    expected = torch.rot90(torch.flip(x, (-1,)), 1, dims=(-2, -1))
    assert torch.equal(grid_transform(x, "flip_rot90"), expected)
    assert eq.get_group("d4") is D4 and eq.get_group(C4) is C4


@pytest.mark.parametrize("group", [C4, D4])
def test_regular_transform_moves_channel_h_to_gh(group):
    n = group.order
    x = torch.randn(2, 2 * n, 5, 4)
    for g in range(n):
        y = regular_transform(x, g, group)
        for f in range(2):
            for h in range(n):
                gh = int(group.cayley[g, h])
                assert torch.equal(y[:, n * f + gh], grid_transform(x[:, n * f + h], g, group))
        # an action: applying b then a is applying a b
        for a in range(n):
            ab = int(group.cayley[a, g])
            assert torch.equal(regular_transform(y, a, group), regular_transform(x, ab, group))


@pytest.mark.parametrize("k", [1, 3, 4])
def test_generic_c4_expansion_is_c4_modules_expansion(k):
    """The C4 instance of the shared mechanism expands filters exactly as c4.py does."""
    lift = eq.C4LiftingConv2d(3, 2, k)
    conv = eq.C4Conv2d(3, 2, k)
    with torch.no_grad():
        ours_lift = expansion.expand(lift.weight, expansion.lifting_index(C4, 2, 3, k))
        ours_conv = expansion.expand(conv.weight, expansion.regular_index(C4, 2, 3, k))
        assert torch.equal(ours_lift, lift.expanded()[0])
        assert torch.equal(ours_conv, conv.expanded()[0])
        generic = eq.GroupConv2d("C4", 3, 2, k, padding=1)
        generic.weight.copy_(conv.weight)
        generic.bias.copy_(conv.bias)
        conv.padding = 1
        x = torch.randn(2, 12, 7, 7)
        assert torch.equal(generic(x), conv(x))


# stride 2 is exact when (size + 2 * padding - kernel_size) is even
@pytest.mark.parametrize("size,kernel_size,stride,padding", [
    (8, 3, 1, 0), (9, 3, 1, 1), (8, 4, 1, 2), (9, 1, 1, 0), (9, 3, 2, 1), (8, 4, 2, 1),
])
def test_d4_convolutions_are_equivariant(size, kernel_size, stride, padding):
    lift = eq.D4LiftingConv2d(2, 3, kernel_size, stride=stride, padding=padding)
    conv = eq.D4Conv2d(3, 2, kernel_size, stride=stride, padding=padding)
    x = torch.randn(2, 2, size, size)
    assert lift(x).shape[1] == 24
    errors = eq.check_equivariance_group(lift, x)
    assert list(errors) == D4_NAMES
    assert worst(errors) < 1e-5
    h = torch.randn(2, 24, size, size)
    assert conv(h).shape[1] == 16
    assert worst(eq.check_equivariance_group(conv, h)) < 1e-5


def test_rectangular_images_and_sequential_declarations():
    net = nn.Sequential(eq.D4LiftingConv2d(1, 2, 3), nn.ReLU(), eq.D4Conv2d(2, 2, 3, padding=1))
    x = torch.randn(2, 1, 7, 10)
    assert worst(eq.check_equivariance_group(net, x)) < 1e-5
    # the declarations are read: a wrong output action is detected
    assert worst(eq.check_equivariance_group(net, x, output="rotate")) > 1e-2


def twin(group: str, kind: str):
    """The group's own layer class, e.g. ``twin("C4", "BatchNorm2d")`` is C4BatchNorm2d."""
    return getattr(eq, f"{group}{kind}")


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("train", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_batch_norm_group_pool_max_pool(group, train, size):
    n = eq.get_group(group).order
    bn = twin(group, "BatchNorm2d")(2).train(train)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    x = torch.randn(3, 2 * n, size, size) * 3 + 1
    assert worst(eq.check_equivariance_group(bn, x, group)) < 1e-5
    y = bn(x)
    for e in range(n):  # and by hand
        torch.testing.assert_close(bn(regular_transform(x, e, group)),
                                   regular_transform(y, e, group), rtol=1e-5, atol=1e-5)
    for mode in ("max", "mean"):
        pool = twin(group, "GroupPool")(mode)
        assert pool(x).shape == (3, 2, size, size)
        assert worst(eq.check_equivariance_group(pool, x, group)) < 1e-6
        for e in range(n):
            torch.testing.assert_close(pool(regular_transform(y, e, group)),
                                       grid_transform(pool(y), e, group))
    mp = twin(group, "MaxPool2d")()
    assert mp(x).shape[-1] == (size + 1) // 2
    assert worst(eq.check_equivariance_group(mp, x, group)) == 0


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_batch_norm_shares_statistics_within_fields(group):
    n = eq.get_group(group).order
    bn = twin(group, "BatchNorm2d")(2)
    x = torch.randn(4, 2 * n, 5, 5)
    x[:, n:] = x[:, n:] * 10 + 5
    y = bn(x)
    for f in range(2):
        field = y[:, n * f: n * f + n]
        assert abs(field.mean().item()) < 1e-5
        assert abs(field.var(unbiased=False).item() - 1) < 1e-3
    assert bn.running_mean.shape == (2,) and bn.running_mean[1] > bn.running_mean[0]


@pytest.mark.parametrize("cls", [eq.C4CNN, eq.D4CNN])
@pytest.mark.parametrize("train", MODES)
@pytest.mark.parametrize("size", [10, 13, 28])
def test_group_cnns_are_invariant_to_every_element(cls, train, size):
    net = cls().train(train)
    group = net.group
    x = torch.randn(2, 1, size, size)
    assert net(x).shape == (2, 10)
    errors = eq.check_equivariance_group(net, x, group)
    assert list(errors) == list(group.names) and worst(errors) < 1e-5
    y = net(x)
    for e in range(group.order):  # and by hand
        torch.testing.assert_close(net(grid_transform(x, e, group)), y, rtol=1e-4, atol=1e-5)
    # the C4 check agrees on the rotations
    assert max(eq.check_equivariance(net, x)) < 1e-5


@pytest.mark.parametrize("cls, count", [(eq.C4CNN, 13_898), (eq.D4CNN, 13_606)])
def test_group_cnns_size_and_training_step_stay_invariant(cls, count):
    assert sum(p.numel() for p in cls().parameters()) == count
    net = cls(in_channels=3, num_classes=4, widths=(1, 1, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x = torch.randn(4, 3, 9, 9)
    for _ in range(2):
        loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    assert worst(eq.check_equivariance_group(net, x, net.group)) < 1e-5


def test_export_and_no_stale_weights():
    layer = eq.D4Conv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 16, 6, 6)
    conv = layer.export()
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (24, 16, 3, 3)
    torch.testing.assert_close(conv(x), layer(x))
    with torch.no_grad():
        before = layer(x)
        weight, bias = layer.expanded()
        layer.weight.data.mul_(2)  # an in-place update that bumps no version counter
        after = layer(x)
    expected = nn.functional.conv2d(x, 2 * weight, bias, padding=1)
    torch.testing.assert_close(after, expected)
    assert (after - before).abs().max() > 1e-3


def test_gradients_reach_the_base_filter():
    layer = eq.D4LiftingConv2d(1, 2, 3)
    layer(torch.randn(2, 1, 5, 5)).square().sum().backward()
    assert layer.weight.grad.shape == (2, 1, 3, 3) and layer.weight.grad.abs().sum() > 0


def test_pickle_rebuilds_the_index_and_construction_builds_a_gather_index():
    layer = eq.D4Conv2d(2, 2, 3)
    x = torch.randn(1, 16, 5, 5)
    clone = pickle.loads(pickle.dumps(layer))
    assert torch.equal(clone(x), layer(x))
    assert torch.equal(copy.deepcopy(layer)(x), layer(x))
    # a gather index into the base filter, no basis to compute
    index = eq.D4Conv2d(16, 16, 3)._index
    assert index.dtype == torch.int32 and index.shape == (128, 128, 3, 3)
    assert int(index.min()) == 0 and int(index.max()) == 16 * 16 * 8 * 9 - 1


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_invariant_linear(group):
    g = eq.get_group(group)
    head = eq.GroupInvariantLinear(g, 3, 5)
    v = torch.randn(4, 3 * g.order)
    y = head(v)
    for e in range(g.order):
        perm = g.regular_permutation(e)
        moved = v.view(4, 3, g.order)[:, :, perm].reshape(4, -1)
        torch.testing.assert_close(head(moved), y)
    same = eq.GroupInvariantLinear(g.regular_permutations(), 3, 5)
    same.load_state_dict(head.state_dict())
    assert torch.equal(same(v), y)


def test_c4_layers_under_the_generic_check():
    x = torch.randn(2, 8, 7, 7)
    assert worst(eq.check_equivariance_group(eq.C4Conv2d(2, 2, 3), x, group="C4")) < 1e-5
    net = eq.C4CNN(widths=(1, 1, 2))
    assert worst(eq.check_equivariance_group(net, torch.randn(2, 1, 9, 9), "C4")) < 1e-5
    # a plain convolution is not equivariant: every element but the identity shows it
    errors = eq.check_equivariance_group(nn.Conv2d(1, 2, 3), torch.randn(2, 1, 9, 9))
    assert errors["rot0"] == 0 and min(list(errors.values())[1:]) > 1e-2


def test_bad_input():
    with pytest.raises(ValueError, match="`group`.*\"D4\""):
        eq.get_group("C8")
    with pytest.raises(ValueError, match="`group`"):
        eq.check_equivariance_group(eq.D4CNN(), torch.randn(1, 1, 9, 9), group="O2")
    with pytest.raises(ValueError, match="`group`.*D4"):
        eq.check_equivariance_group(eq.D4Conv2d(1, 1, 3), torch.randn(1, 8, 5, 5), group="C4")
    with pytest.raises(ValueError, match="`output`"):
        eq.check_equivariance_group(eq.D4CNN(), torch.randn(1, 1, 9, 9), output="spin")
    for element in (1.5, 8, -1, True, "rot45"):
        with pytest.raises(ValueError, match="`element`"):
            D4.element_index(element)
    with pytest.raises(ValueError, match="`x`.*multiple of 8"):
        regular_transform(torch.randn(1, 12, 3, 3), 1)
    with pytest.raises(ValueError, match="64 channels"):
        eq.D4Conv2d(8, 2, 3)(torch.randn(1, 60, 5, 5))
    with pytest.raises(ValueError, match="`x`.*multiple of 8"):
        eq.D4GroupPool()(torch.randn(1, 12, 3, 3))
    with pytest.raises(TypeError, match="`bias`"):
        eq.D4LiftingConv2d(1, 2, 3, bias="False")
    with pytest.raises(ValueError, match="`out_fields`"):
        eq.D4LiftingConv2d(1, 0, 3)
    with pytest.raises(ValueError, match="`in_fields`"):
        eq.D4Conv2d(1.5, 2, 3)
    with pytest.raises(ValueError, match="`momentum`"):
        eq.D4BatchNorm2d(2, momentum=5.0)
    with pytest.raises(ValueError, match="`eps`"):
        eq.D4BatchNorm2d(2, eps=float("nan"))
    with pytest.raises(ValueError, match="`mode`"):
        eq.D4GroupPool("median")
    with pytest.raises(ValueError, match="`kernel_size`.*odd"):
        eq.D4CNN(kernel_size=4)
    with pytest.raises(ValueError, match="`widths`"):
        eq.D4CNN(widths=(4, 4))
    with pytest.raises(ValueError, match=r"`widths\[1\]`"):
        eq.D4CNN(widths=(4, 0, 4))
    with pytest.raises(ValueError, match="D4CNN"):
        eq.D4CNN()(torch.randn(1, 3, 9, 9))
    with pytest.raises(ValueError, match="`permutations`"):
        eq.GroupInvariantLinear(torch.zeros(4, 4, dtype=torch.long), 1, 1)
    with pytest.raises(ValueError, match="`permutations`.*integer"):
        eq.GroupInvariantLinear(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 1, 1)
