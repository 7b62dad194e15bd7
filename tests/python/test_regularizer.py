"""Tests of the equivariance regularizer (issue 2)."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import equivariance as eq
from equivariance import EquivarianceError, EquivarianceRegularizer
from equivariance import transforms as T


def small_cnn(num_classes=10, dropout=0.0, bn=False):
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(4, num_classes))
    return nn.Sequential(*layers)


class CountingModel(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.batch_sizes = []

    def forward(self, x):
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        return self.inner(x)


class InvariantModel(nn.Module):
    """Exactly C4-invariant: averages a conv's output over the 4 rotations."""

    def __init__(self, dropout=0.0, bn=False):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3) if bn else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(3, 5)

    def forward(self, x):
        feats = sum(self.conv(torch.rot90(x, k, (-2, -1))).mean((-2, -1)) for k in range(4))
        feats = self.bn(feats[..., None, None])[..., 0, 0]
        return self.fc(self.drop(feats))


def direct_value(model, x, specs, dist):
    """The seed's formula, computed directly one transform at a time."""
    total = 0.0
    for f_out, f_in, eps, lam in specs:
        a = f_out(model(x))
        b = model(f_in(x))
        e = dist(a, b)
        total = total + lam * torch.relu(e - eps)
    return total


def l2_mean(a, b):
    return (a - b).flatten(1).norm(dim=1).mean()


# -- value -------------------------------------------------------------------------


def test_value_matches_direct_computation():
    model = small_cnn().eval()
    x = torch.rand(6, 1, 12, 12)
    specs = [(T.identity, T.rot90(1), 0.01, 2.0), (T.identity, T.hflip(), 0.0, 0.5)]
    reg = EquivarianceRegularizer(model, (1, 12, 12), specs, num_funcs=2)
    expected = direct_value(model, x, specs, l2_mean)
    assert torch.allclose(reg(x), expected, atol=1e-6)


def test_agrees_with_reference_formula_on_four_element_transforms():
    # The reference: mean over points of the flattened p-norm of the difference.
    model = small_cnn().eval()
    x = torch.rand(5, 1, 10, 10)
    for p in (1, 2, 3.5):
        specs = [(T.identity, T.rot90(2), 0.0, 1.0)]
        reg = EquivarianceRegularizer(model, (1, 10, 10), specs, dist=p)
        a, b = model(x), model(torch.rot90(x, 2, (-2, -1)))
        ref = torch.mean(torch.linalg.norm(a.reshape(5, -1) - b.reshape(5, -1), dim=-1, ord=float(p)))
        assert torch.allclose(reg(x), ref, atol=1e-6)


def test_epsilon_threshold_and_lambda_weight():
    model = small_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    e = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)]).errors(x)[0]
    above = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 3.0)])
    below = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), float(e) + 1, 3.0)])
    assert torch.allclose(above(x), 3 * e, atol=1e-6)
    assert below(x).item() == 0.0


def test_equivariant_map_has_zero_error():
    model = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 1, 0], [1, 4, 1], [0, 1, 0]]).view(1, 1, 3, 3))
    reg = EquivarianceRegularizer(model, (1, 9, 9), [(T.rot90(1), 0, 1), (T.vflip(), 0, 1)], n=4, num_funcs=2)
    assert reg().item() == pytest.approx(0.0, abs=1e-5)
    assert torch.all(reg.errors() < 1e-5)


# -- points and sampling --------------------------------------------------------------


def test_call_with_points_does_not_change_settings():
    model = small_cnn()
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.rot90(1), 0, 1)], n=3)
    reg(torch.rand(11, 1, 8, 8))
    reg(np.random.rand(7, 1, 8, 8))
    assert reg.n == 3
    assert reg.sample().shape == (3, 1, 8, 8)


def test_numpy_points_are_accepted_and_converted_to_model_dtype():
    model = small_cnn().double()
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.rot90(1), 0, 1)])
    x = np.random.rand(3, 1, 8, 8).astype(np.float32)
    value = reg(x)
    assert value.dtype == torch.float64


@pytest.mark.parametrize(
    "bounds",
    [
        [-2, 3],
        [[-1, 0]],
        np.array([[[[0.0, 0.5]]], [[[2.0, 3.0]]]]),  # per channel: shape (2, 1, 1, 2)
        torch.tensor([5.0, 6.0]),
    ],
)
def test_samples_lie_inside_bounds(bounds):
    reg = EquivarianceRegularizer(nn.Identity(), (2, 4, 4), [(T.rot90(1), 0, 1)], n=500, bounds=bounds)
    b = torch.broadcast_to(torch.as_tensor(np.asarray(bounds), dtype=torch.float32), (2, 4, 4, 2))
    s = reg.sample()
    assert s.shape == (500, 2, 4, 4)
    assert torch.all(s >= b[..., 0]) and torch.all(s <= b[..., 1])
    # uniform: spreads over the interval
    assert torch.all(s.amax(0) - s.amin(0) > 0.9 * (b[..., 1] - b[..., 0]))


def test_samples_follow_model_dtype_and_parameterless_model():
    reg = EquivarianceRegularizer(nn.ReLU(), (3, 5, 5), [(T.hflip(), 0, 1)], n=2)
    assert reg.sample().dtype == torch.get_default_dtype()
    assert reg().item() == pytest.approx(0.0, abs=1e-7)
    model64 = small_cnn().double()
    reg64 = EquivarianceRegularizer(model64, (1, 6, 6), [(T.rot90(1), 0, 1)], n=2)
    assert reg64.sample().dtype == torch.float64
    assert reg64().dtype == torch.float64


def test_float64_value_matches_direct_computation():
    model = small_cnn().double().eval()
    x = torch.rand(4, 1, 7, 7, dtype=torch.float64)
    specs = [(T.identity, T.rot90(3), 0.0, 1.0)]
    reg = EquivarianceRegularizer(model, (1, 7, 7), specs)
    assert torch.allclose(reg(x), direct_value(model, x, specs, l2_mean), atol=1e-12)


# -- three-element transforms and random draws ------------------------------------------


def test_three_element_transform_on_a_classifier_means_invariance():
    model = InvariantModel().eval()
    reg = EquivarianceRegularizer(model, (1, 9, 9), [(T.rot90(1), 0, 1), (T.random_rot90(), 0, 1)], n=8, num_funcs=2)
    assert reg().item() == pytest.approx(0.0, abs=1e-5)
    plain = small_cnn()
    assert EquivarianceRegularizer(plain, (1, 9, 9), [(T.rot90(1), 0, 1)], n=8)().item() > 1e-4


def test_random_transform_makes_the_same_draw_on_input_and_output():
    # An image-to-image model that is exactly rotation equivariant (pointwise):
    # any mismatch between the input and output draws would show as an error.
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Tanh())
    reg = EquivarianceRegularizer(model, (1, 6, 6), [(T.random_rot90(), 0, 1)], n=16)
    for _ in range(5):
        assert reg().item() == pytest.approx(0.0, abs=1e-6)


def test_random_draw_is_shared_whatever_the_shapes():
    # Output of a different shape (1 -> 3 channels, 6x6 -> 6x6 crops): a draw of one
    # rotation per call must be applied to both.
    class Expand(nn.Module):
        def forward(self, x):
            return x.repeat(1, 3, 1, 1)[..., 1:5, 1:5]

    reg = EquivarianceRegularizer(Expand(), (1, 6, 6), [(T.random_rot90(per_sample=False), 0, 1)], n=4)
    for _ in range(5):
        assert reg().item() == pytest.approx(0.0, abs=1e-6)


def test_reproducible_under_manual_seed():
    model = small_cnn()
    specs = [(T.rot90(k), 0, 1.0 + k) for k in range(4)] + [(T.random_rot90(), 0, 1)]
    reg = EquivarianceRegularizer(model, (1, 8, 8), specs, n=5, num_funcs=2)
    torch.manual_seed(123)
    a = reg()
    torch.manual_seed(123)
    b = reg()
    assert a.item() == b.item()


def test_draw_without_replacement_uses_each_transform_once():
    model = small_cnn().eval()
    x = torch.rand(3, 1, 8, 8)
    specs = [(T.identity, T.rot90(k), 0, 1) for k in (1, 2, 3)]
    reg = EquivarianceRegularizer(model, (1, 8, 8), specs, num_funcs=3)
    expected = direct_value(model, x, specs, l2_mean)
    for seed in range(5):
        torch.manual_seed(seed)
        assert torch.allclose(reg(x), expected, atol=1e-6)


def test_draw_with_replacement_when_more_funcs_than_transforms():
    model = small_cnn().eval()
    x = torch.rand(3, 1, 8, 8)
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)], num_funcs=3)
    single = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)])
    assert torch.allclose(reg(x), 3 * single(x), atol=1e-6)


# -- distances -------------------------------------------------------------------


def test_inf_distance_and_numpy_p():
    model = small_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    a, b = model(x), model(torch.rot90(x, 1, (-2, -1)))
    expected = (a - b).abs().amax(1).mean()
    for dist in ("inf", math.inf):
        reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)], dist=dist)
        assert torch.allclose(reg(x), expected, atol=1e-6)
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)], dist=np.int64(1))
    assert torch.allclose(reg(x), (a - b).abs().sum(1).mean(), atol=1e-6)


def test_cross_entropy_on_probabilities_is_a_real_cross_entropy():
    model = nn.Sequential(small_cnn(), nn.Softmax(dim=1)).eval()
    x = torch.rand(4, 1, 8, 8)
    p, q = model(x), model(torch.rot90(x, 1, (-2, -1)))
    expected = (-(p * q.log()).sum(1)).mean()
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)], dist="cross_entropy")
    assert torch.allclose(reg(x), expected, atol=1e-5)


def test_cross_entropy_does_not_map_log_zero_to_zero():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])  # total disagreement: must be a large penalty
    d = eq.distances.cross_entropy(a, b)
    assert torch.isfinite(d).all() and d.item() > 50
    assert eq.distances.cross_entropy(a, a).item() == pytest.approx(0.0, abs=1e-6)


def test_cross_entropy_logits_matches_soft_target_cross_entropy():
    model = small_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    a, b = model(x), model(torch.rot90(x, 1, (-2, -1)))
    expected = nn.functional.cross_entropy(b, a.softmax(1))
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.identity, T.rot90(1), 0, 1)], dist="cross_entropy_logits")
    assert torch.allclose(reg(x), expected, atol=1e-5)


def test_callable_distance_scalar_or_per_sample():
    model = small_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    spec = [(T.identity, T.rot90(1), 0, 1)]
    per_sample = EquivarianceRegularizer(model, (1, 8, 8), spec, dist=lambda a, b: (a - b).abs().sum(1))
    scalar = EquivarianceRegularizer(model, (1, 8, 8), spec, dist=lambda a, b: (a - b).abs().sum(1).mean())
    assert torch.allclose(per_sample(x), scalar(x), atol=1e-6)
    bad = EquivarianceRegularizer(model, (1, 8, 8), spec, dist=lambda a, b: (a - b))
    with pytest.raises(ValueError, match="per-sample"):
        bad(x)


# -- side effects and cost -------------------------------------------------------------


def test_batchnorm_statistics_and_training_flag_untouched():
    model = small_cnn(bn=True)
    model.train()
    model[1].eval()  # a submodule with its own mode must keep it
    before = copy.deepcopy(model.state_dict())
    for mode in ("eval", "train"):
        reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.rot90(1), 0, 1)], n=4, mode=mode)
        reg().backward()
        reg.errors()
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert model.training and not model[1].training and model[0].training


def test_dropout_does_not_make_invariant_model_look_non_invariant():
    model = InvariantModel(dropout=0.5, bn=True).train()
    for mode in ("eval", "train"):
        reg = EquivarianceRegularizer(model, (1, 9, 9), [(T.rot90(1), 0, 1)], n=8, mode=mode)
        assert reg().item() == pytest.approx(0.0, abs=1e-5)
    assert model.training


def test_one_forward_pass_per_call():
    model = CountingModel(small_cnn())
    specs = [(T.rot90(k), 0, 1) for k in (1, 2, 3)] + [(T.identity, T.hflip(), 0, 1)]
    reg = EquivarianceRegularizer(model, (1, 8, 8), specs, n=5, num_funcs=4)
    reg()
    assert model.calls == 1 and model.batch_sizes == [25]
    reg.errors()
    assert model.calls == 2
    chunked = EquivarianceRegularizer(model, (1, 8, 8), specs, n=5, num_funcs=4, chunk_size=10)
    model.batch_sizes.clear()
    chunked()
    assert model.batch_sizes == [10, 10, 5]


def test_outputs_given_by_caller_are_reused():
    model = CountingModel(small_cnn().eval())
    x = torch.rand(4, 1, 8, 8)
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.rot90(1), 0, 1)])
    expected = reg(x)
    y = model(x)
    model.batch_sizes.clear()
    assert torch.allclose(reg(x, outputs=y), expected, atol=1e-6)
    assert model.batch_sizes == [4]


def test_stored_on_its_model_without_duplication():
    model = small_cnn()
    n_params = len(list(model.parameters()))
    keys = set(model.state_dict())
    model.reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.rot90(1), 0, 1)])
    assert len(list(model.parameters())) == n_params
    assert set(model.state_dict()) == keys
    assert not isinstance(model.reg, nn.Module)
    repr(model)  # no recursion
    clone = copy.deepcopy(model)
    assert clone.reg.model is clone
    model.reg().backward()
    assert model[0].weight.grad is not None


def test_gradient_reaches_the_model():
    model = small_cnn()
    reg = EquivarianceRegularizer(model, (1, 8, 8), [(T.rot90(1), 0, 1)], n=4)
    reg().backward()
    assert model[0].weight.grad.abs().sum() > 0


def test_errors_reports_every_transform_without_gradient():
    model = small_cnn()
    specs = [(T.identity, T.rot90(1), 0.5, 3.0), (T.hflip(), 0, 1), (T.identity, T.identity, 0, 1)]
    reg = EquivarianceRegularizer(model, (1, 8, 8), specs, num_funcs=1)
    errs = reg.errors(torch.rand(3, 1, 8, 8))
    assert errs.shape == (3,) and not errs.requires_grad
    assert errs[2].item() == 0.0 and errs[0].item() > 0
    assert reg.labels == ["identity | rot90(k=1)", "hflip()", "identity | identity"]


def test_alias():
    assert EquivarianceError is EquivarianceRegularizer


# -- transforms -------------------------------------------------------------------------


def test_transforms_act_on_last_two_dimensions():
    x = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    assert torch.equal(T.rot90(1)(x), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(T.rot90(5)(x), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(T.hflip()(x), x.flip(-1))
    assert torch.equal(T.vflip()(x), x.flip(-2))
    assert torch.equal(T.translate(2, 1)(x), torch.roll(x, (1, 2), (-2, -1)))
    assert torch.equal(T.identity(x), x)
    logits = torch.rand(4, 10)
    assert torch.equal(T.rot90(1)(logits), logits)


def test_random_rot90_draws_each_rotation():
    torch.manual_seed(0)
    x = torch.rand(200, 1, 5, 5)
    y = T.random_rot90()(x)
    seen = set()
    for i in range(200):
        for k in range(4):
            if torch.equal(y[i], torch.rot90(x[i], k, (-2, -1))):
                seen.add(k)
                break
        else:
            pytest.fail("not a rotation")
    assert seen == {0, 1, 2, 3}


# -- bad input ------------------------------------------------------------------------


GOOD = [(T.rot90(1), 0, 1)]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n=0), ValueError, "`n`"),
        (dict(n=2.5), ValueError, "`n`"),
        (dict(num_funcs=-1), ValueError, "`num_funcs`"),
        (dict(num_funcs=True), ValueError, "`num_funcs`"),
        (dict(shape=(1, 0, 8)), ValueError, "`shape`"),
        (dict(shape=(1, 2.5)), ValueError, "`shape`"),
        (dict(bounds=[1, 0]), ValueError, "`bounds`"),
        (dict(bounds=[0, 1, 2]), ValueError, "`bounds`"),
        (dict(bounds=np.zeros((3, 2))), ValueError, "`bounds`"),
        (dict(bounds="a"), (TypeError, ValueError), "`bounds`"),
        (dict(dist="hamming"), ValueError, "`dist`"),
        (dict(dist=0.5), ValueError, "`dist`"),
        (dict(dist=[1]), TypeError, "`dist`"),
        (dict(transforms=[]), ValueError, "`transforms`"),
        (dict(transforms=[(T.rot90(1), 0)]), ValueError, r"`transforms\[0\]`"),
        (dict(transforms=[(T.rot90(1), T.rot90(1), T.rot90(1), 0, 1)]), ValueError, "transforms"),
        (dict(transforms=[(3, 0, 1)]), TypeError, "`f`"),
        (dict(transforms=[(T.identity, "x", 0, 1)]), TypeError, "`f_in`"),
        (dict(transforms=[(T.rot90(1), -0.1, 1)]), ValueError, "epsilon"),
        (dict(transforms=[(T.rot90(1), 0, -2)]), ValueError, "lambda_eq"),
        (dict(transforms=(T.rot90(1), 0, 1)), TypeError, "`transforms`"),
        (dict(mode="fast"), ValueError, "`mode`"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(model=small_cnn(), shape=(1, 8, 8), transforms=GOOD)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        EquivarianceRegularizer(**args)


def test_bad_points():
    reg = EquivarianceRegularizer(small_cnn(), (1, 8, 8), GOOD)
    with pytest.raises(ValueError, match="`x`"):
        reg(torch.rand(3, 1, 7, 7))
    with pytest.raises(ValueError, match="`x`"):
        reg(torch.rand(1, 8, 8))


def test_importing_the_core_does_not_import_escnn():
    import subprocess
    import sys
    from pathlib import Path

    core = Path(eq.__file__).resolve().parents[1]
    code = "import sys, equivariance; print('escnn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(core)}, check=True)
    assert out.stdout.strip() == "False"
