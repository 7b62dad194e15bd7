"""Tests of the equivariance regularizer."""

import copy
import math

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance import EquivarianceError, EquivarianceRegularizer
from equivariance import transforms as T
from torch import nn


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
        ref = torch.mean(
            torch.linalg.norm(a.reshape(5, -1) - b.reshape(5, -1), dim=-1, ord=float(p))
        )
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
    reg = EquivarianceRegularizer(
        model, (1, 9, 9), [(T.rot90(1), 0, 1), (T.vflip(), 0, 1)], n=4, num_funcs=2
    )
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
    reg = EquivarianceRegularizer(
        nn.Identity(), (2, 4, 4), [(T.rot90(1), 0, 1)], n=500, bounds=bounds
    )
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
    reg = EquivarianceRegularizer(
        model, (1, 9, 9), [(T.rot90(1), 0, 1), (T.random_rot90(), 0, 1)], n=8, num_funcs=2
    )
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

    reg = EquivarianceRegularizer(
        Expand(), (1, 6, 6), [(T.random_rot90(per_sample=False), 0, 1)], n=4
    )
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


# -- torch's generator after a call --------------------------------


class NoisyModel(nn.Module):
    """Adds fresh noise in forward and records it; keeps the spatial shape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.draws = []

    def forward(self, x):
        noise = torch.rand(x.shape[0], 1, 1, 1)
        self.draws.append(noise)
        return self.conv(x) + noise


def test_generator_is_not_rewound_over_the_models_own_draws():
    model = NoisyModel()
    x = torch.rand(4, 1, 6, 6)
    reg = EquivarianceRegularizer(model, (1, 6, 6), [(T.random_rot90(), 0, 1)])
    reg(x)
    inside = model.draws[-1].flatten()
    after = torch.rand(inside.numel())
    # Before the fix the replay rewound the generator, so `after` repeated `inside`.
    assert not torch.equal(after, inside)


@pytest.mark.parametrize("three_elements", [True, False])
def test_generator_ends_where_a_plain_forward_pass_leaves_it(three_elements):
    model = NoisyModel()
    x = torch.rand(4, 1, 6, 6)
    f = T.random_rot90()
    spec = (f, 0, 1) if three_elements else (T.identity, f, 0, 1)
    reg = EquivarianceRegularizer(model, (1, 6, 6), [spec])
    torch.manual_seed(11)
    reg(x)
    after_reg = torch.rand(8)
    # The plain sequence: draw the transform, transform the input, one batched forward
    # pass; the replay of f's draw for the output must leave no trace.
    torch.manual_seed(11)
    torch.randperm(1)
    model(torch.cat([x, f(x)]))
    assert torch.equal(after_reg, torch.rand(8))


# -- non-finite points -----------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_points_are_an_error_naming_x(bad):
    reg = EquivarianceRegularizer(small_cnn(), (1, 8, 8), GOOD)
    x = torch.rand(3, 1, 8, 8)
    x[1, 0, 2, 5] = bad
    for call in (reg, reg.errors):
        with pytest.raises(ValueError, match="`x` must hold finite numbers") as err:
            call(x)
        assert "(1, 0, 2, 5)" in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(ValueError, match="`x`"):
        reg(x.numpy())


def test_messages_have_no_doubled_backticks():
    for item, name in (((T.rot90(1), -1, 1), "epsilon"), ((T.rot90(1), 0, -1), "lambda_eq")):
        with pytest.raises(ValueError) as err:
            EquivarianceRegularizer(small_cnn(), (1, 8, 8), [GOOD[0], item])
        message = str(err.value)
        assert "``" not in message and message.count("`") % 2 == 0
        assert message.startswith(f"`transforms[1] {name}` must be")


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
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(core)},
        check=True,
    )
    assert out.stdout.strip() == "False"
