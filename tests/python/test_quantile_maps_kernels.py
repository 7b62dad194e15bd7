"""Tests of the quantile maps' kernels: the integer-key sort, the blocked sketch, and
finite outputs and gradients for every finite input."""

import math

import equivariance as eq
import pytest
import torch
from equivariance import GroupMap, LayerMap


def midpoints(n, dtype=torch.float64):
    return (torch.arange(n, dtype=dtype) + 0.5) / n


def kolmogorov(a, b):
    a, b = a.double().sort(-1).values, b.double().sort(-1).values
    both = torch.cat([a, b], -1)
    fa = torch.searchsorted(a, both, right=True) / a.shape[-1]
    fb = torch.searchsorted(b, both, right=True) / b.shape[-1]
    return (fa - fb).abs().amax(-1)


# -- integer-key sort (exact mode) and blocked sketch ----------------------------------------

def _tie_averaged_reference(x, num_groups):
    """Exact-mode output from a float sort: Q at the midpoints, ties given their mean."""
    rows = x.detach().double().reshape(x.shape[0] * num_groups, -1)
    n = rows.shape[1]
    q = eq.gaussian(midpoints(n))
    out = torch.empty_like(rows)
    for r in range(rows.shape[0]):
        values, inverse = torch.unique(rows[r], return_inverse=True)
        rank = torch.argsort(torch.argsort(rows[r], stable=True), stable=True)
        sums = torch.zeros(values.numel(), dtype=torch.float64).index_add_(0, inverse, q[rank])
        counts = torch.bincount(inverse, minlength=values.numel())
        out[r] = (sums / counts)[inverse]
    return out.reshape(x.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_keys_are_ordered_like_the_floats(dtype):
    qm = eq.quantile_maps.sorting
    special = torch.tensor([0.0, -0.0, 1e-40, -1e-40, float("inf"), -float("inf"), -3.5, 3.5,
                            torch.finfo(dtype).max, -torch.finfo(dtype).max,
                            torch.finfo(dtype).tiny, -torch.finfo(dtype).tiny], dtype=dtype)
    x = torch.cat([special, torch.randn(500, dtype=dtype) * 10.0 ** torch.randint(-5, 6, (500,))])
    keys = qm._float_keys(x)
    assert keys.dtype == (torch.int32 if dtype == torch.float32 else torch.int64)
    # same order and same ties as the floats (-0.0 == +0.0)
    order = torch.argsort(keys, stable=True)
    assert torch.all(x[order][1:] >= x[order][:-1])
    same = x.unsqueeze(0) == x.unsqueeze(1)
    assert torch.equal(same, keys.unsqueeze(0) == keys.unsqueeze(1))
    # the map is its own inverse (up to the sign of zero)
    back = qm._key_values(keys, dtype)
    assert torch.equal(back, x + 0.0)
    assert torch.equal(torch.signbit(back[:2]), torch.tensor([False, False]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_exact_mode_matches_a_float_sort(dtype):
    torch.manual_seed(3)
    x = (torch.randn(3, 6, 40) * 4).round() / 4  # negative values and many ties
    x[0, :3] = -x[0, :3].abs()  # an all-negative group
    x[1, 0, :5] = -0.0  # signed zeros: ties with +0.0
    x[1, 1, :5] = 0.0
    # equal values at the end of one group and the start of the next are not ties
    x[2, :3] = torch.linspace(-1, 1, 120).view(3, 40)
    x[2, 3:] = torch.linspace(1, 3, 120).view(3, 40)
    x = x.to(dtype)
    y = GroupMap(2, 6, affine=False, dtype=dtype)(x)
    want = _tie_averaged_reference(x, 2).to(dtype)
    tol = {torch.float16: 2e-3}.get(dtype, 1e-6)
    torch.testing.assert_close(y, want, atol=tol, rtol=tol)
    # -0.0 and +0.0 map to the same value
    assert torch.unique(y[1, :2, :5]).numel() == 1
    # the boundary values of neighbouring groups keep their own (untied) values
    assert y[2, 2, -1] == want[2, 2, -1] and y[2, 3, 0] == want[2, 3, 0]


def test_exact_gradient_matches_the_order_statistics_formula():
    torch.manual_seed(4)
    n = 3 * 50
    x = torch.randn(4, 6, 50, dtype=torch.float64, requires_grad=True)
    GroupMap(2, 6, affine=False, dtype=torch.float64)(x).sum().backward()
    h = round(math.sqrt(n))
    q = eq.gaussian(midpoints(n))
    j = torch.arange(n)
    hi, lo = (j + h).clamp(max=n - 1), (j - h).clamp(min=0)
    rows = x.detach().reshape(8, n)
    s, idx = rows.sort(dim=-1)
    slopes = (q[hi] - q[lo]) / (s[:, hi] - s[:, lo])
    want = torch.empty_like(rows).scatter_(-1, idx, slopes).reshape(x.shape)
    torch.testing.assert_close(x.grad, want)


def test_negative_nan_is_found():
    x = torch.randn(2, 4, 30)
    x[1, 1, 4] = -torch.tensor(float("nan"))  # sign bit set: sorts first, not last
    assert torch.signbit(x[1, 1, 4])
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ValueError, match="NaN"):
            GroupMap(2, 4, dtype=dtype)(x.to(dtype))


@pytest.fixture
def one_thread():
    """One torch thread, where exact mode sorts blocks of rows (see ``_one_sort``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_block_sorts_only_with_one_thread():
    sorting = eq.quantile_maps.sorting
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert sorting._one_sort(cpu) == sorting._CPU_RADIX_SORT
        torch.manual_seed(2)
        x = torch.randn(3, 4, 500)
        x[0, :2, :100] = 0.5  # ties
        xg = x.clone().requires_grad_()
        y_one = GroupMap(2, 4, affine=False)(xg)
        y_one.sum().backward()
        torch.set_num_threads(2)
        assert not sorting._one_sort(cpu)  # one sort per row
        xg2 = x.clone().requires_grad_()
        y_two = GroupMap(2, 4, affine=False)(xg2)
        y_two.sum().backward()
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(y_one, y_two)
    assert torch.isfinite(xg.grad).all() and torch.isfinite(xg2.grad).all()
    torch.testing.assert_close(xg.grad[1:], xg2.grad[1:])  # (no ties there)


# 1-D sorts of blocks of rows (block_keys keys per sort): one block (the default on
# these sizes), one row per block, and several blocks with a shorter last one
@pytest.mark.parametrize("block_keys", [2**16, 1, 400])
def test_block_sorts_and_row_sorts_agree(monkeypatch, one_thread, block_keys):
    torch.manual_seed(8)
    x = (torch.randn(5, 6, 50) * 8).round() / 8  # ties
    x[0, :, :3] = -0.0
    # long runs of ties (zero spreads in the slopes) in two rows only, one constant
    x[3, 0, :20] = 0.25
    x[4, 3:] = 1.0
    # the last value of a row equals the first of the next, in another block
    x[1, :3] = torch.linspace(-2, 0.5, 150).view(3, 50)
    x[1, 3:] = torch.linspace(0.5, 3, 150).view(3, 50)
    smooth = torch.randn(5, 6, 50)  # no ties: gradients must agree too
    sorting = eq.quantile_maps.sorting

    def run(data, dtype=torch.float32):
        xg = data.to(dtype).clone().requires_grad_()
        m = GroupMap(2, 6, affine=False, track_running_stats=True, dtype=dtype)
        y = m(xg)
        (y * torch.linspace(-1, 1, y.numel()).view(y.shape).to(dtype)).sum().backward()
        return y.detach(), xg.grad, m.running_quantiles.clone()

    monkeypatch.setattr(sorting, "_BLOCK_KEYS", block_keys)
    assert sorting._one_sort(x.device) == sorting._CPU_RADIX_SORT
    assert sorting._block_rows(10, 150, x.device) == {2**16: 10, 1: 1, 400: 3}[block_keys]
    flat_ties, flat_smooth, flat_half = run(x), run(smooth), run(x, torch.float16)
    monkeypatch.setattr(sorting, "_CPU_RADIX_SORT", False)  # one sort per row
    rows_ties, rows_smooth, rows_half = run(x), run(smooth), run(x, torch.float16)
    for flat, rows in [(flat_ties, rows_ties), (flat_smooth, rows_smooth),
                       (flat_half, rows_half)]:
        assert torch.equal(flat[0], rows[0])
        assert torch.equal(flat[2], rows[2])
        assert flat[1] is not None and torch.isfinite(flat[1]).all()
    # a constant group has zero transport slope (not dq / 0)
    assert torch.equal(flat_ties[1][4, 3:], torch.zeros(3, 50))
    # (tied elements may be ordered differently, and so get different slopes)
    torch.testing.assert_close(flat_smooth[1], rows_smooth[1])
    want = _tie_averaged_reference(x, 2).float()
    torch.testing.assert_close(flat_ties[0], want, atol=1e-6, rtol=1e-6)
    assert torch.isfinite(flat_ties[1]).all()
    # the boundary values of neighbouring rows keep their own (untied) values
    assert flat_ties[0][1, 2, -1] == want[1, 2, -1] and flat_ties[0][1, 3, 0] == want[1, 3, 0]


@pytest.mark.parametrize("block_keys", [2**16, 1, 400])
def test_nan_in_any_block_is_found(monkeypatch, one_thread, block_keys):
    monkeypatch.setattr(eq.quantile_maps.sorting, "_BLOCK_KEYS", block_keys)
    for row, sign in [(0, 1.0), (4, -1.0), (9, 1.0)]:  # first, middle and last block
        x = torch.randn(5, 6, 50)
        x.view(10, 150)[row, 77] = sign * float("nan")
        x.view(10, 150)[(row + 1) % 10, :2] = torch.tensor([float("inf"), -float("inf")])
        with pytest.raises(ValueError, match="NaN"):
            GroupMap(2, 6)(x)
        x.view(10, 150)[row, 77] = 0.0  # infinities alone are ordered values
        y = GroupMap(2, 6, affine=False)(x)
        assert torch.isfinite(y).all()
        r = (row + 1) % 10
        assert y.view(10, 150)[r, 0] == y.view(10, 150)[r].max()
        assert y.view(10, 150)[r, 1] == y.view(10, 150)[r].min()


def test_slopes_need_tie_handling_only_for_long_runs():
    sorting = eq.quantile_maps.sorting
    torch.manual_seed(9)
    n = 60
    h = round(math.sqrt(n))
    long_run = sorting._long_run(n, h)
    q = eq.gaussian(midpoints(n))
    j = torch.arange(n)
    dq = q[(j + h).clamp(max=n - 1)] - q[(j - h).clamp(min=0)]
    for start in [0, 5, n - long_run, n - long_run + 1]:
        for length in [2, long_run - 1, long_run]:
            s = torch.randn(3, n, dtype=torch.float64).sort(-1).values
            stop = min(n, start + length)
            s[1, start:stop] = s[1, start]
            s = s.sort(-1).values
            fast = sorting._sorted_slopes(s, q, dq, h, ties=False)
            safe = sorting._sorted_slopes(s, q, dq, h, ties=True)
            if stop - start < long_run:  # no zero spread: the fast formula is exact
                assert torch.equal(fast, safe)
            else:
                assert torch.isfinite(safe).all()
    assert sorting._long_run(5, 9) == 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sketch_blocks_give_the_same_result(monkeypatch, dtype):
    torch.manual_seed(5)
    x = torch.distributions.Cauchy(0.0, 2.0).sample((6, 4, 3000)) + torch.arange(4.0).view(1, 4, 1)
    x = x.to(dtype)
    w = torch.randn(6, 4, 3000, dtype=dtype)

    def run():
        torch.manual_seed(0)
        m = GroupMap(2, 4, method="sketch", track_running_stats=True, dtype=dtype)
        xg = x.clone().requires_grad_()
        y = m(xg)
        (y * w).sum().backward()
        return y.detach(), xg.grad, m.weight.grad, m.running_quantiles

    one = run()
    monkeypatch.setattr(eq.quantile_maps.sketch, "_BLOCK", 5000)  # 12 rows of 6000: 12 blocks
    many = run()
    for a, b in zip(one, many):
        assert torch.equal(a, b)


def test_sketch_retained_graph_and_constant_upstream_gradient():
    torch.manual_seed(6)
    x = (2 * torch.randn(2, 4, 64, 64)).requires_grad_()
    m = GroupMap(2, 4, method="sketch")
    with torch.no_grad():
        m.weight.uniform_(0.5, 2)
    out = m(x)
    g1 = torch.autograd.grad(out.sum(), x, retain_graph=True)[0]
    g2 = torch.autograd.grad(out.sum(), x)[0]
    torch.testing.assert_close(g1, g2)
    # a constant upstream gradient (out.sum()) and an explicit one give the same result
    x2 = x.detach().clone().requires_grad_()
    (m(x2) * torch.ones(2, 4, 64, 64)).sum().backward()
    torch.testing.assert_close(g1, x2.grad)
    assert torch.isfinite(g1).all() and g1.abs().sum() > 0


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "cauchy"])
def test_sketch_accuracy_with_per_group_location_and_scale(kind):
    torch.manual_seed(7)
    shape = (8, 8, 28, 28)  # groups of 6272, as in bench/quantile_maps.py
    x = {"gaussian": torch.randn(shape), "uniform": torch.rand(shape),
         "cauchy": torch.distributions.Cauchy(0.0, 1.0).sample(shape)}[kind]
    x = x * 10.0 ** torch.randint(-3, 4, (8, 1, 1, 1)) + torch.randn(8, 1, 1, 1) * 100
    with torch.no_grad():
        a = GroupMap(1, 8, affine=False, method="sketch")(x).reshape(8, -1)
        b = GroupMap(1, 8, affine=False)(x).reshape(8, -1)
    assert kolmogorov(a, b).max() <= 0.01


# -- finiteness -------------------------------------------------------------------

def _train_on(m, x, steps=3):
    m.train()
    for _ in range(steps):
        m(x)
    return m.eval()


@pytest.mark.parametrize("momentum", [None, 0.5])
def test_infinite_inputs_after_constant_training_stay_finite(momentum):
    m = _train_on(GroupMap(1, 2, affine=False, track_running_stats=True, momentum=momentum),
                  torch.full((4, 2, 10), 3.0))
    x = torch.tensor([[[float("inf"), -float("inf"), 3.0, 2.0, 4.0, 1e38, -1e38]] * 2],
                     requires_grad=True)
    y = m(x)
    assert torch.isfinite(y).all()
    # infinite inputs lie beyond every value: the map's largest and smallest outputs
    assert y[0, 0, 0] == y.max() and y[0, 0, 1] == y.min()
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0, 0, 0] == 0 and x.grad[0, 0, 1] == 0


def test_infinite_inputs_in_eval_mode_map_to_the_tail_ends():
    m = _train_on(GroupMap(1, 2, affine=False, track_running_stats=True), torch.randn(8, 2, 50))
    y = m(torch.tensor([[[float("inf"), -float("inf")]] * 2]))
    top = eq.gaussian(torch.tensor(1 - 1e-12, dtype=torch.float64)).float()
    torch.testing.assert_close(y[0, :, 0], top.expand(2))
    torch.testing.assert_close(y[0, :, 1], -top.expand(2))


@pytest.mark.parametrize("method", ["exact", "sketch"])
def test_transport_gradient_of_subnormal_spreads_is_finite(method):
    x = torch.tensor([[[0.0, 1e-40] * 40]], requires_grad=True)  # float32 subnormals
    x.data[0, 0, 1::2] += torch.arange(40) * 1e-44
    y = GroupMap(1, 1, method=method, sketch_bins=16)(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert x.grad.max() > 1e30  # steep, as the data are, but finite
    x2 = torch.tensor([[0.0, 1e-40]], requires_grad=True)
    LayerMap(2)(x2).sum().backward()
    assert torch.isfinite(x2.grad).all() and x2.grad.min() > 0


@pytest.mark.parametrize("method", ["exact", "sketch"])
def test_float16_inputs_with_tiny_spread_have_finite_gradients(method):
    torch.manual_seed(11)
    x = (torch.randn(2, 4, 100) * 1e-5).half().requires_grad_()
    m = GroupMap(2, 4, method=method, sketch_bins=16, dtype=torch.float16)
    y = m(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(m.weight.grad).all()
    # eval mode through running knots learnt on the same data
    m = GroupMap(2, 4, track_running_stats=True, momentum=None, dtype=torch.float16)
    _train_on(m, x.detach())
    x.grad = None
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["gaussian", "cauchy"])
def test_outputs_and_gradients_are_finite_for_extreme_finite_inputs(dtype, target):
    info = torch.finfo(dtype)
    special = torch.tensor([info.max, -info.max, info.tiny, -info.tiny, 0.0, 1.0, -1.0,
                            info.max / 2, info.eps], dtype=dtype)
    x = torch.cat([special, special * 0.5]).repeat(8).view(1, 2, -1)  # ties too
    for method, tracked in (("exact", False), ("sketch", False), ("exact", True)):
        m = GroupMap(1, 2, target=target, method=method, sketch_bins=16, dtype=dtype,
                     track_running_stats=tracked)
        if tracked:
            _train_on(m, x)
        xg = x.clone().requires_grad_()
        y = m(xg)
        y.sum().backward()
        assert torch.isfinite(y).all(), (method, tracked)
        assert torch.isfinite(xg.grad).all(), (method, tracked)


def test_huge_groups_in_float16_keep_a_finite_cauchy_table():
    m = GroupMap(1, 1, target="cauchy", affine=False, dtype=torch.float16)
    qvals, dq, _ = m._target_values(200_000, torch.float16, torch.device("cpu"))
    assert torch.isfinite(qvals).all() and torch.isfinite(dq).all()
    assert qvals[-1] == torch.finfo(torch.float16).max  # tan(...) = 127324 is beyond float16
