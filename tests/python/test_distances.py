"""Tests of the distances between outputs."""

import math

import numpy as np
import pytest
import torch
from equivariance import EquivarianceRegularizer
from equivariance import distances as D
from equivariance import transforms as T
from torch import nn
from torch.nn import functional as F


def small_cnn(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, num_classes),
    )


class FlipInvariant(nn.Module):
    """f(x) = g(x + hflip(x)): exactly invariant to horizontal flips."""

    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, x):
        return self.g(x + x.flip(-1))


ROT = [(T.identity, T.rot90(1), 0, 1)]


def rotated_pair(model, x):
    return model(x), model(torch.rot90(x, 1, (-2, -1)))


# -- the reference package's formulas (equivariance-regularizer 0.1.1), written out --


def reference_cross_entropy_logits(a, b):
    n = a.shape[0]
    la = F.log_softmax(a, dim=-1).reshape(n, -1)
    lb = F.log_softmax(b, dim=-1).reshape(n, -1)
    return torch.mean(torch.linalg.norm(la - lb, dim=-1))


def reference_cross_entropy(a, b):
    n = a.shape[0]

    def log0(t):
        return torch.nan_to_num(torch.log(t.reshape(n, -1)), nan=0.0, posinf=0.0, neginf=0.0)

    return torch.mean(torch.linalg.norm(log0(a) - log0(b), dim=-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_logits_agrees_with_the_reference(dtype):
    model = small_cnn().to(dtype).eval()
    x = torch.rand(5, 1, 8, 8, dtype=dtype)
    a, b = rotated_pair(model, x)
    reg = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist="cross_entropy_logits")
    assert abs(reg(x).item() - reference_cross_entropy_logits(a, b).item()) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_agrees_with_the_reference_on_positive_probabilities(dtype):
    model = nn.Sequential(small_cnn(), nn.Softmax(dim=1)).to(dtype).eval()
    x = torch.rand(5, 1, 8, 8, dtype=dtype)
    a, b = rotated_pair(model, x)
    assert (a > 0).all() and (b > 0).all()
    reg = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist="cross_entropy")
    assert abs(reg(x).item() - reference_cross_entropy(a, b).item()) < 1e-5


def test_cross_entropy_does_not_map_log_zero_to_zero():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    # The reference sees no difference at all between these opposite predictions.
    assert reference_cross_entropy(a, b).item() == 0.0
    d = D.cross_entropy(a, b)
    assert torch.isfinite(d).all() and d.item() > 50
    assert D.cross_entropy(a, a).item() == 0.0


def test_kl_and_js_match_their_definitions():
    a, b = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    p, q = a.softmax(1), b.softmax(1)
    kl = lambda u, v: (u * (u / v).log()).sum(1)  # noqa: E731
    m = (p + q) / 2
    assert torch.allclose(D.kl_logits(a, b), kl(p, q) + kl(q, p), atol=1e-12)
    assert torch.allclose(D.js_logits(a, b), (kl(p, m) + kl(q, m)) / 2, atol=1e-12)
    # (N, C, H, W): summed over classes, averaged over the positions
    a4, b4 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    per_pos = D.kl_logits(a4.movedim(1, -1).reshape(-1, 3), b4.movedim(1, -1).reshape(-1, 3))
    assert torch.allclose(D.kl_logits(a4, b4), per_pos.view(2, 16).mean(1), atol=1e-5)


def test_divergences_are_exactly_zero_on_equal_outputs_and_stay_finite():
    a = torch.randn(4, 7) * 30
    for fn in (D.kl_logits, D.kl_logits_target, D.js_logits, D.cross_entropy_logits):
        assert torch.equal(fn(a, a.clone()), torch.zeros(4)), fn.__name__
    # Far apart: JS reaches log 2 and neither value nor gradient overflows.
    a = torch.tensor([[200.0, -200.0]], requires_grad=True)
    b = torch.tensor([[-200.0, 200.0]])
    js = D.js_logits(a, b)
    assert js.item() == pytest.approx(math.log(2), abs=1e-6)
    js.sum().backward()
    assert torch.isfinite(a.grad).all()
    assert torch.isfinite(D.kl_logits(a, b)).all()


@pytest.mark.parametrize("dist", [1, 2, 3.5, "inf", math.inf, *D.DISTANCE_NAMES])
def test_every_named_distance_is_zero_for_an_invariant_model(dist):
    # g sees pixel positions, so that g itself is clearly not flip invariant.
    g = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    if dist == "cross_entropy":
        g.append(nn.Softmax(dim=1))
    shape, spec = (1, 8, 8), [(T.hflip(), 0, 1)]
    invariant = EquivarianceRegularizer(FlipInvariant(g), shape, spec, dist=dist, n=6)
    plain = EquivarianceRegularizer(g, shape, spec, dist=dist, n=6)
    assert invariant().item() == pytest.approx(0.0, abs=1e-6)
    assert plain().item() > 1e-4


def test_logit_distances_ignore_a_constant_shift_along_dim_1():
    a = torch.randn(3, 4, 2, 2)
    b = a + torch.randn(3, 1, 2, 2)  # same softmax along dim 1 at every position
    for name in ("cross_entropy_logits", "kl_logits", "kl_logits_target", "js_logits"):
        assert D.resolve_distance(name)(a, b).abs().max() < 1e-5, name
        assert D.resolve_distance(name)(a, b.flip(1)).min() > 1e-3, name


def test_unknown_name_lists_every_accepted_name():
    with pytest.raises(ValueError, match="`dist`") as err:
        D.resolve_distance("hamming")
    message = str(err.value)
    for name in D.DISTANCE_NAMES:
        assert repr(name) in message
    assert "'hamming'" in message and "p >= 1" in message and "callable" in message


def test_inf_distance_and_numpy_p():
    model = small_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    a, b = rotated_pair(model, x)
    expected = (a - b).abs().amax(1).mean()
    for dist in ("inf", math.inf):
        reg = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist=dist)
        assert torch.allclose(reg(x), expected, atol=1e-6)
    reg = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist=np.int64(1))
    assert torch.allclose(reg(x), (a - b).abs().sum(1).mean(), atol=1e-6)


def test_callable_distance_scalar_or_per_sample():
    model = small_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    def l1(a, b):
        return (a - b).abs().sum(1)

    per_sample = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist=l1)
    scalar = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist=lambda a, b: l1(a, b).mean())
    assert torch.allclose(per_sample(x), scalar(x), atol=1e-6)
    bad = EquivarianceRegularizer(model, (1, 8, 8), ROT, dist=lambda a, b: (a - b))
    with pytest.raises(ValueError, match="per-sample"):
        bad(x)


@pytest.mark.parametrize(
    "returned, exc, shown",
    [
        (lambda a, b: torch.tensor(float("nan")), ValueError, "NaN"),
        (lambda a, b: (a - b).abs().sum(1) * float("nan"), ValueError, "NaN"),
        (lambda a, b: float("nan"), ValueError, "NaN"),
        (lambda a, b: True, TypeError, "True"),  # how an R function's NA arrives
        (lambda a, b: np.bool_(True), TypeError, "True"),
        (lambda a, b: torch.ones(a.shape[0], dtype=torch.bool), TypeError, "bool|True"),
        (lambda a, b: "far", TypeError, "far"),
        (lambda a, b: None, TypeError, "None"),
    ],
)
def test_callable_returning_nan_or_a_non_number_is_an_error(returned, exc, shown):
    reg = EquivarianceRegularizer(small_cnn(), (1, 8, 8), ROT, dist=returned, n=3)
    with pytest.raises(exc, match="`dist`") as err:
        reg()
    assert any(s in str(err.value) for s in shown.split("|"))


def test_named_distance_needs_a_class_dimension():
    with pytest.raises(ValueError, match="`dist`='kl_logits'"):
        D.kl_logits(torch.rand(3), torch.rand(3))


def test_kl_to_target_is_one_sided_kl_and_moves_only_the_second_output():
    a = torch.randn(5, 4, requires_grad=True)
    b = torch.randn(5, 4, requires_grad=True)
    p, q = torch.softmax(a, 1), torch.softmax(b, 1)
    expected = (p * (p.log() - q.log())).sum(1)
    value = D.kl_logits_target(a, b)
    assert torch.allclose(value, expected, atol=1e-6)
    value.sum().backward()
    assert a.grad is None  # the target is held fixed
    assert b.grad is not None and b.grad.abs().sum() > 0
