"""Tests of the quantile maps (GroupMap, LayerMap, InstanceMap)."""

import copy
import io
import math

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance import GroupMap, InstanceMap, LayerMap
from torch import nn


def midpoints(n, dtype=torch.float64):
    return (torch.arange(n, dtype=dtype) + 0.5) / n


def groups_sorted(y, num_groups):
    return y.detach().reshape(y.shape[0], num_groups, -1).sort(dim=-1).values


def reference_formula(x, num_groups, q_fn):
    """The reference implementation's formula: argsort, scatter a linspace, apply Q."""
    n, c = x.shape[:2]
    g = x.reshape(n, num_groups, -1)
    lin = torch.linspace(0, 1, g.shape[-1], dtype=x.dtype)[None, None].repeat(n, num_groups, 1)
    q = lin.scatter(-1, g.argsort(dim=-1), lin)
    return q_fn(q).reshape(x.shape)


def ref_gaussian(q):
    q = torch.clamp(q, 1e-5, 1 - 1e-5)
    return math.sqrt(2) * torch.erfinv(2 * q - 1)


def kolmogorov(a, b):
    a, b = a.double().sort(-1).values, b.double().sort(-1).values
    both = torch.cat([a, b], -1)
    fa = torch.searchsorted(a, both, right=True) / a.shape[-1]
    fb = torch.searchsorted(b, both, right=True) / b.shape[-1]
    return (fa - fb).abs().amax(-1)


# -- output distribution -----------------------------------------------------------------------

@pytest.mark.parametrize("name,fn", [
    ("gaussian", eq.gaussian), ("uniform", eq.uniform), ("cauchy", eq.cauchy),
    ("laplace", eq.laplace), ("logistic", eq.logistic), ("sparse", eq.sparse),
])
def test_sorted_outputs_equal_target_quantiles(name, fn):
    m = GroupMap(2, 6, target=name, affine=False)
    x = torch.randn(3, 6, 5, 4)
    got = groups_sorted(m(x), 2)
    want = fn(midpoints(3 * 20)).float()
    torch.testing.assert_close(got, want.expand_as(got))


def test_callable_and_distribution_targets():
    x = torch.randn(2, 4, 10)
    a = GroupMap(2, 4, target=lambda q: 2 * q - 1, affine=False)(x)
    torch.testing.assert_close(groups_sorted(a, 2)[0, 0], (2 * midpoints(20) - 1).float())
    d = torch.distributions.Normal(torch.tensor(3.0), torch.tensor(2.0))
    b = GroupMap(2, 4, target=d, affine=False)(x)
    c = GroupMap(2, 4, affine=False)(x)
    torch.testing.assert_close(b, 3 + 2 * c, atol=1e-5, rtol=1e-5)
    r = GroupMap(2, 4, target=eq.quantile_maps.numpy_target(lambda q: q * 10), affine=False)(x)
    torch.testing.assert_close(r, 10 * GroupMap(2, 4, target="uniform", affine=False)(x))


def test_monotone_and_ties():
    x = torch.randn(2, 4, 50)
    x[:, :, :10] = 0.5  # a run of ties in every group
    x[0, 0, 20] = 0.5
    y = GroupMap(2, 4, affine=False)(x)
    for b in range(2):
        for g in range(2):
            xs = x[b, 2 * g: 2 * g + 2].reshape(-1)
            ys = y[b, 2 * g: 2 * g + 2].reshape(-1)
            order = xs.argsort()
            assert torch.all(ys[order][1:] >= ys[order][:-1])
            tied = ys[xs == 0.5]
            assert torch.all(tied == tied[0])
    # the mean of the outputs is unchanged by the averaging of tied values
    torch.testing.assert_close(y.reshape(2, 2, -1).mean(-1), torch.zeros(2, 2), atol=1e-5, rtol=0)


def test_tie_free_groups_exact_despite_ties_elsewhere():
    x = torch.randn(4, 2, 30)
    x[1, 0, :5] = 1.0
    y = GroupMap(2, 2, affine=False)(x)
    want = eq.gaussian(midpoints(30)).float()
    torch.testing.assert_close(y[0, 0].sort().values, want)
    assert torch.unique(y[1, 0, :5]).numel() == 1


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 7), (2, 6, 5, 3), (2, 6, 3, 2, 4)])
def test_every_rank(shape):
    x = torch.randn(shape, requires_grad=True)
    for m in (GroupMap(3, 6), InstanceMap(6, affine=True), LayerMap(shape[1:])):
        y = m(x)
        assert y.shape == x.shape
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None
    g = groups_sorted(GroupMap(3, 6, affine=False)(x), 3)
    n = g.shape[-1]
    torch.testing.assert_close(g, eq.gaussian(midpoints(n)).float().expand_as(g))


def test_layer_and_instance_grouping():
    x = torch.randn(3, 4, 5, 6)
    y = LayerMap((5, 6), elementwise_affine=False)(x)
    torch.testing.assert_close(y.reshape(12, 30).sort(-1).values,
                               eq.gaussian(midpoints(30)).float().expand(12, 30))
    y = InstanceMap(4)(x)
    torch.testing.assert_close(y.reshape(12, 30).sort(-1).values,
                               eq.gaussian(midpoints(30)).float().expand(12, 30))
    lm = LayerMap([4, 5, 6])
    assert lm.weight.shape == (4, 5, 6) and lm.bias.shape == (4, 5, 6)
    assert LayerMap(6, bias=False).bias is None


def test_float64_and_affine():
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    m = GroupMap(2, 4, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        m.bias.fill_(0.5)
    y = m(x)
    assert y.dtype == torch.float64
    base = GroupMap(2, 4, affine=False)(x)
    torch.testing.assert_close(y, base * m.weight.view(1, -1, 1) + 0.5)
    torch.testing.assert_close(groups_sorted(base, 2)[0, 0], eq.gaussian(midpoints(16)))


def test_linspace_mode_matches_reference_formula():
    x = torch.randn(3, 8, 6, 6)
    ours = GroupMap(4, 8, positions="linspace", grad="none", affine=False)(x)
    # the reference evaluates Q in float32 (erfinv near 1 - 1e-5 loses ~1e-4); we use float64
    torch.testing.assert_close(ours, reference_formula(x, 4, ref_gaussian), atol=1e-3, rtol=1e-4)
    ref64 = reference_formula(x.double(), 4, ref_gaussian).float()
    torch.testing.assert_close(ours, ref64, atol=1e-5, rtol=1e-5)
    ours = GroupMap(4, 8, target="uniform", positions="linspace", affine=False)(x)
    torch.testing.assert_close(ours, reference_formula(x, 4, lambda q: q))


# -- gradients ---------------------------------------------------------------------------------

def test_transport_gradient_is_about_one_over_sigma():
    sigma = 3.0
    x = (sigma * torch.randn(4, 8, 32, 32)).requires_grad_()
    GroupMap(2, 8, affine=False)(x).sum().backward()
    g = x.grad
    assert torch.isfinite(g).all() and (g > 0).all()
    assert abs(g.mean().item() * sigma - 1) < 0.05
    # central values: the derivative there is close to 1 / sigma element by element
    centre = x.detach().abs() < sigma
    assert abs(g[centre].median().item() * sigma - 1) < 0.1


def test_grad_none_blocks_input_but_not_affine():
    x = torch.randn(2, 4, 9, requires_grad=True)
    m = GroupMap(2, 4, grad="none")
    y = m(x)
    assert not GroupMap(2, 4, grad="none", affine=False)(x).requires_grad
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is None
    assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0


def test_gradients_with_ties_and_constant_groups_are_finite():
    x = torch.randn(2, 4, 50)
    x[0] = 1.0  # constant group(s)
    x[1, :, :30] = 0.0  # long run of ties
    x.requires_grad_()
    m = GroupMap(2, 4)
    (m(x) * torch.randn(2, 4, 50)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[1].abs().sum() > 0


def test_affine_gradients_match_autograd():
    x = torch.randn(3, 4, 20, requires_grad=True)
    m = GroupMap(2, 4)
    with torch.no_grad():
        m.weight.uniform_(0.5, 2)
        m.bias.normal_()
    w = torch.randn(3, 4, 20)
    (m(x) * w).sum().backward()
    base = GroupMap(2, 4, affine=False, grad="none")(x)
    torch.testing.assert_close(m.weight.grad, (w * base).sum((0, 2)))
    torch.testing.assert_close(m.bias.grad, w.sum((0, 2)))
    # the input gradient is the affine-free one scaled by the channel weight
    x2 = x.detach().clone().requires_grad_()
    (GroupMap(2, 4, affine=False)(x2) * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad * m.weight.detach().view(1, -1, 1))
    # a second backward through a retained graph gives the same gradients
    x3 = x.detach().clone().requires_grad_()
    out = (m(x3) * w).sum()
    g1 = torch.autograd.grad(out, x3, retain_graph=True)[0]
    g2 = torch.autograd.grad(out, x3)[0]
    torch.testing.assert_close(g1, g2)


def test_first_conv_learns_through_groupmap():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), GroupMap(2, 4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    before = net[0].weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, target = torch.randn(8, 1, 8, 8), torch.randint(0, 2, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), target).backward()
        assert net[0].weight.grad.abs().sum() > 0
        opt.step()
    assert not torch.allclose(before, net[0].weight)
    # with the reference behaviour the first layer receives nothing
    net[1].grad = "none"
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), target).backward()
    assert net[0].weight.grad is None or net[0].weight.grad.abs().sum() == 0


# -- running statistics and eval mode ----------------------------------------------------------

def test_eval_mode_independent_of_batch_and_state_dict_round_trip():
    torch.manual_seed(2)
    m = GroupMap(2, 4, track_running_stats=True, momentum=None)
    for _ in range(20):
        m(2 * torch.randn(16, 4, 6, 6) + 1)
    assert int(m.num_batches_tracked) == 20
    assert {"running_quantiles", "num_batches_tracked"} <= set(m.state_dict())
    knots = m.running_quantiles
    assert knots.shape == (2, m.num_knots)
    torch.testing.assert_close(knots[:, knots.shape[1] // 2], torch.ones(2), atol=0.1, rtol=0)
    m.eval()
    x = 2 * torch.randn(5, 4, 6, 6) + 1
    a = m(x)
    b = m(torch.cat([x[:1], 100 * torch.randn(4, 4, 6, 6)]))
    torch.testing.assert_close(a[0], b[0])
    # outputs follow the target for data like the training data
    assert abs(a.mean().item()) < 0.15 and abs(a.std().item() - 1) < 0.15
    # monotone and finite, also far outside the knots
    xs = torch.linspace(-1e4, 1e4, 4001).view(1, 1, -1).expand(1, 4, -1).contiguous()
    ys = m(xs)
    assert torch.isfinite(ys).all() and torch.all(ys[0, 0, 1:] >= ys[0, 0, :-1])
    # gradient in eval mode is finite and positive
    xg = x.clone().requires_grad_()
    m(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and (xg.grad > 0).all()
    # state dict round trip
    m2 = GroupMap(2, 4, track_running_stats=True)
    m2.load_state_dict(m.state_dict())
    m2.eval()
    torch.testing.assert_close(m2(x), a)


def test_eval_without_running_stats_uses_the_batch():
    m = GroupMap(2, 4, affine=False).eval()
    x = torch.randn(3, 4, 10)
    torch.testing.assert_close(m(x), m.train()(x))
    assert m.running_quantiles is None


def test_running_stats_instance_layer_and_sketch():
    im = InstanceMap(3, track_running_stats=True)
    im(torch.randn(4, 3, 50) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1))
    assert im.running_quantiles.shape == (3, 65)
    lm = LayerMap((3, 50), track_running_stats=True, momentum=1.0)
    lm(torch.randn(4, 3, 50) * 5)
    assert lm.running_quantiles.shape == (1, 65)
    assert lm.running_quantiles[0, -1] > 5  # the 99th percentile of N(0, 25) data
    sk = GroupMap(1, 2, method="sketch", track_running_stats=True, momentum=1.0)
    ex = GroupMap(1, 2, track_running_stats=True, momentum=1.0)
    x = 3 * torch.randn(8, 2, 2000)
    sk(x)
    ex(x)
    torch.testing.assert_close(sk.running_quantiles, ex.running_quantiles, atol=0.1, rtol=0)


def test_custom_target_works_in_eval_mode_with_gradient():
    target = eq.quantile_maps.numpy_target(lambda q: np.log(q) - np.log1p(-q))
    m = GroupMap(1, 2, target=target, track_running_stats=True)
    m(torch.randn(8, 2, 30))
    m.eval()
    x = torch.randn(2, 2, 30, requires_grad=True)
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad > 0).all()


# -- sketch mode -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gaussian", "uniform", "cauchy"])
def test_sketch_accuracy(kind):
    shape = (4, 8, 48, 48)
    x = {"gaussian": torch.randn(shape), "uniform": torch.rand(shape),
         "cauchy": torch.distributions.Cauchy(0.0, 1.0).sample(shape)}[kind]
    exact = GroupMap(2, 8, affine=False)
    sketch = GroupMap(2, 8, affine=False, method="sketch")
    with torch.no_grad():
        a, b = sketch(x).reshape(8, -1), exact(x).reshape(8, -1)
    assert kolmogorov(a, b).max() <= 0.01
    # monotone within each group, equal inputs give equal outputs
    xs = x.reshape(8, -1)
    order = xs.argsort(-1)
    sa = a.gather(-1, order)
    assert torch.all(sa[:, 1:] >= sa[:, :-1])


def test_sketch_gradient_and_small_groups():
    x = (2 * torch.randn(2, 4, 64, 64)).requires_grad_()
    GroupMap(1, 4, affine=False, method="sketch")(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert abs(x.grad.mean().item() * 2 - 1) < 0.05
    # small groups fall back to the exact method
    y = torch.randn(2, 4, 10)
    torch.testing.assert_close(GroupMap(2, 4, method="sketch")(y), GroupMap(2, 4)(y))


def test_eps_noise_is_applied():
    x = torch.zeros(1, 2, 10)
    y = GroupMap(1, 2, eps=1e-3, affine=False)(x)
    assert torch.unique(y).numel() == 20
    assert torch.unique(GroupMap(1, 2, affine=False)(x)).numel() == 1


# -- modules -----------------------------------------------------------------------------------

def test_module_api():
    m = GroupMap(2, 4, device="cpu", dtype=torch.float64)
    assert m.weight.dtype == torch.float64
    text = repr(m)
    assert "GroupMap(2, 4" in text and "gaussian" in text
    assert "InstanceMap(3" in repr(InstanceMap(3))
    assert "(5, 6)" in repr(LayerMap((5, 6)))
    with torch.no_grad():
        m.weight.fill_(3)
    m.reset_parameters()
    assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert GroupMap(2, 4, affine=False).weight is None
    m.target = "uniform"
    y = m(torch.randn(1, 4, 5, dtype=torch.float64))
    assert 0 < y.min() and y.max() < 1


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: GroupMap(3, 8), "num_channels"),
    (lambda: GroupMap(0, 8), "num_groups"),
    (lambda: GroupMap(2, -4), "num_channels"),
    (lambda: GroupMap(2.5, 5), "num_groups"),
    (lambda: InstanceMap(0), "num_features"),
    (lambda: LayerMap([4, 0]), "normalized_shape"),
    (lambda: GroupMap(2, 4, target="gausian"), "target"),
    (lambda: GroupMap(2, 4, target=lambda q: -q), "target"),
    (lambda: GroupMap(2, 4, target=lambda q: q[:5]), "target"),
    (lambda: GroupMap(2, 4, target=lambda q: torch.log(q - 0.5)), "target"),
    (lambda: GroupMap(2, 4, method="fast"), "method"),
    (lambda: GroupMap(2, 4, positions="ends"), "positions"),
    (lambda: GroupMap(2, 4, grad="full"), "grad"),
    (lambda: GroupMap(2, 4, eps=-1), "eps"),
    (lambda: GroupMap(2, 4, momentum=2), "momentum"),
    (lambda: GroupMap(2, 4, num_knots=1), "num_knots"),
])
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_target_type():
    with pytest.raises(TypeError, match="target"):
        GroupMap(2, 4, target=3)


def test_bad_inputs():
    m = GroupMap(2, 4)
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(2, 6, 5))
    with pytest.raises(ValueError, match="input"):
        m(torch.randn(4))
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerMap((5, 6))(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="num_features"):
        InstanceMap(3)(torch.randn(2, 4, 5))
    with pytest.raises(TypeError, match="input"):
        m(np.zeros((2, 4, 5)))
    with pytest.raises(TypeError, match="floating"):
        m(torch.zeros(2, 4, 5, dtype=torch.long))
    bad = torch.randn(2, 4, 100)  # groups of 200 > 4 * 16: the sketch path is used
    bad[1, 2, 3] = float("nan")
    for mod in (m, GroupMap(2, 4, method="sketch", sketch_bins=16),
                GroupMap(2, 4, track_running_stats=True).eval()):
        with pytest.raises(ValueError, match="NaN"):
            mod(bad)


def test_infinite_inputs_are_ranked():
    x = torch.randn(1, 2, 200)
    x[0, 0, 0] = float("inf")
    x[0, 1, 1] = -float("inf")
    for method in ("exact", "sketch"):
        y = GroupMap(1, 2, affine=False, method=method, sketch_bins=16)(x)
        assert torch.isfinite(y).all()
        assert y[0, 0, 0] == y.max() and y[0, 1, 1] == y.min()


# -- targets returning NaN, flags and rates ------------------------------------------

def test_target_returning_nan_is_an_error_naming_target():
    with pytest.raises(ValueError, match="`target`.*finite"):
        GroupMap(2, 4, target=lambda q: q * float("nan"))
    # finite on the probe grid, NaN near 0: found when first used
    odd = GroupMap(1, 1, target=lambda q: torch.where(q < 1e-3, float("nan"), q))
    with pytest.raises(ValueError, match="`target`.*NaN or infinite"):
        odd(torch.randn(1, 1, 1000))
    # an R NA is a logical vector: it must not read as 1
    with pytest.raises(ValueError, match="`target` must return numbers, got logical"):
        GroupMap(2, 4, target=eq.quantile_maps.numpy_target(lambda q: np.full(q.shape, True)))
    with pytest.raises(ValueError, match="`target` must return numbers, got logical"):
        GroupMap(2, 4, target=lambda q: q > 0.5)
    nan_later = eq.quantile_maps.numpy_target(lambda q: np.where(q < 1e-3, np.nan, q))
    with pytest.raises(ValueError, match="`target`"):
        GroupMap(1, 1, target=nan_later)(torch.randn(1, 1, 1000))


@pytest.mark.parametrize("kwargs,match,error", [
    ({"momentum": 5.0}, "`momentum` must be a number in \\[0, 1\\]", ValueError),
    ({"momentum": -0.5}, "`momentum`", ValueError),
    ({"momentum": float("nan")}, "`momentum`", ValueError),
    ({"momentum": "0.1"}, "`momentum`", TypeError),
    ({"eps": float("nan")}, "`eps`", ValueError),
    ({"affine": "False"}, "`affine` must be True or False", TypeError),
    ({"track_running_stats": 1}, "`track_running_stats`", TypeError),
])
def test_rates_and_flags_are_not_coerced(kwargs, match, error):
    with pytest.raises(error, match=match):
        GroupMap(2, 4, **kwargs)


def test_numpy_flags_and_counts_are_accepted():
    m = GroupMap(np.int64(2), np.int64(4), affine=np.bool_(False),
                 track_running_stats=np.bool_(True), num_knots=np.int64(5),
                 momentum=np.float64(0.5))
    assert m.affine is False and m.track_running_stats is True and m.num_knots == 5
    lm = LayerMap(np.int64(6), elementwise_affine=np.bool_(True), bias=np.bool_(False))
    assert lm.bias is None and lm.weight.shape == (6,)
    assert InstanceMap(np.int32(3), affine=np.bool_(True)).weight.shape == (3,)


# -- pickling ----------------------------------------------------------------------

def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_pickled_map_carries_no_workspace_and_round_trips():
    torch.manual_seed(12)
    m = GroupMap(2, 8, method="sketch", sketch_bins=16, track_running_stats=True)
    x = torch.randn(4, 8, 32, 32)
    m(x)  # fills the sketch workspace and the target tables
    assert m._workspace and m._cache
    m.eval()
    with torch.no_grad():
        want = m(x)
    whole, weights = len(_saved(m)), len(_saved(m.state_dict()))
    assert whole < weights + 20_000, (whole, weights)
    back = torch.load(io.BytesIO(_saved(m)), weights_only=False)
    assert not back._workspace and not back._cache
    with torch.no_grad():
        torch.testing.assert_close(back(x), want)
    back.train()(x)  # the workspace is rebuilt on use
    assert back._workspace


def test_pickling_a_map_with_a_lambda_target_says_to_save_the_state_dict():
    for target in (lambda q: 2 * q, eq.quantile_maps.numpy_target(lambda q: q * 3)):
        m = GroupMap(2, 4, target=target)
        with pytest.raises(TypeError, match="`target`.*cannot be saved.*state_dict"):
            _saved(m)
        # copies in memory do not pickle: they still work, sharing the function
        twin = copy.deepcopy(m)
        x = torch.randn(2, 4, 5)
        torch.testing.assert_close(twin(x), m(x))
    # named targets and distributions are saved with the module
    for target in ("cauchy", torch.distributions.Normal(0.0, 2.0)):
        m = GroupMap(2, 4, target=target)
        back = torch.load(io.BytesIO(_saved(m)), weights_only=False)
        x = torch.randn(2, 4, 5)
        torch.testing.assert_close(back(x), m(x))
