"""Tests of the transforms: quarter turns, flips, translations, continuous rotations
and their flags."""

import math

import numpy as np
import pytest
import torch
from equivariance import EquivarianceRegularizer
from equivariance import transforms as T
from equivariance.regularizer import parse_transform
from torch import nn


def test_transforms_act_on_last_two_dimensions():
    x = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    assert torch.equal(T.rot90(1)(x), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(T.rot90(5)(x), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(T.hflip()(x), x.flip(-1))
    assert torch.equal(T.vflip()(x), x.flip(-2))
    assert torch.equal(T.translate(2, 1)(x), torch.roll(x, (1, 2), (-2, -1)))
    assert torch.equal(T.identity(x), x)
    logits = torch.rand(4, 10)
    for f in (T.rot90(1), T.rotate(30), T.random_rotate(30)):
        assert torch.equal(f(logits), logits)


def test_random_rot90_draws_each_rotation():
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


@pytest.mark.parametrize("value", ["False", "True", 0, 1, None, 1.0])
def test_per_sample_must_be_a_flag(value):
    for make in (T.random_rot90, lambda p: T.random_rotate(10, per_sample=p)):
        with pytest.raises(TypeError, match="`per_sample`") as err:
            make(value)
        assert repr(value) in str(err.value)


def test_numpy_bool_is_a_flag():
    assert T.random_rot90(np.bool_(False)).per_sample is False
    assert T.random_rotate(5, per_sample=np.bool_(True)).per_sample is True


# -- continuous rotations ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotate_90_equals_rot90_on_the_interior(dtype):
    x = torch.rand(3, 2, 9, 9, dtype=dtype)
    for degrees, k in ((90, 1), (180, 2), (270, 3), (-90, 3), (450, 1), (90.0, 1)):
        y = T.rotate(degrees)(x)
        expected = torch.rot90(x, k, (-2, -1))
        assert y.dtype == dtype and y.shape == x.shape
        assert (y - expected)[..., 1:-1, 1:-1].abs().max() < 1e-5, degrees
    # just off 90 degrees the interior still agrees to 1e-5
    y = T.rotate(90 + 1e-6)(x)
    assert (y - torch.rot90(x, 1, (-2, -1)))[..., 1:-1, 1:-1].abs().max() < 1e-5


def test_rotate_turns_counterclockwise_and_fills_with_zero():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2] = 1.0  # top middle
    assert T.rotate(90)(x)[0, 0, 2, 0] == pytest.approx(1.0)  # -> left middle, as rot90
    y = T.rotate(45)(x)[0, 0]
    assert y[:2, :2].sum() > 0.9 and y[:, 2:].abs().sum() == 0  # towards the upper left
    ones = torch.ones(1, 1, 8, 8)
    r = T.rotate(45)(ones)[0, 0]
    assert r[0, 0] == 0 and r[4, 4] == pytest.approx(1.0)  # corners come from outside
    assert torch.allclose(T.rotate(0)(x), x) and torch.allclose(T.rotate(360)(x), x, atol=1e-6)


def test_rotate_is_bilinear_and_keeps_shapes_devices_dtypes():
    # Bilinear resampling reproduces a linear ramp exactly wherever it samples inside
    # the image: the rotated ramp is the ramp at the rotated-back positions.
    h, w, theta = 5, 8, math.radians(17)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    ramp = lambda r, c: 0.3 * r - 0.7 * c + 2  # noqa: E731
    x = ramp(rows, cols).expand(2, 3, h, w)  # not square, (N, C, H, W)
    y = T.rotate(17)(x)
    assert y.shape == x.shape
    yr, xc = rows - (h - 1) / 2, cols - (w - 1) / 2
    src_r = math.cos(theta) * yr + math.sin(theta) * xc + (h - 1) / 2
    src_c = -math.sin(theta) * yr + math.cos(theta) * xc + (w - 1) / 2
    inside = (src_r >= 0) & (src_r <= h - 1) & (src_c >= 0) & (src_c <= w - 1)
    assert inside.sum() > 20
    assert torch.allclose(y[0, 1][inside], ramp(src_r, src_c)[inside], atol=1e-9)
    x3 = torch.rand(2, 7, 7)  # (N, H, W) too
    assert torch.allclose(T.rotate(90)(x3), torch.rot90(x3, 1, (-2, -1)), atol=1e-5)
    assert T.rotate(30)(torch.rand(2, 1, 5, 5).half()).dtype == torch.float16
    assert T.rotate(30)(torch.rand(0, 1, 5, 5)).shape == (0, 1, 5, 5)
    with pytest.raises(TypeError, match="floating-point"):
        T.rotate(30)(torch.ones(1, 1, 3, 3, dtype=torch.int64))


def test_rotate_passes_gradients():
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    T.rotate(33)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_random_rotate_draws_uniform_angles_per_sample_or_per_batch():
    x = torch.zeros(400, 1, 9, 9)
    x[:, 0, 4, 8] = 1.0  # right middle: the angle shows where the pixel goes
    y = T.random_rotate(60)(x)
    rows, cols = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    mass = y[:, 0].sum((-2, -1))
    r = (y[:, 0] * rows).sum((-2, -1)) / mass - 4
    c = (y[:, 0] * cols).sum((-2, -1)) / mass - 4
    angles = torch.rad2deg(torch.atan2(-r, c))  # counterclockwise is upwards
    assert angles.abs().max() < 62 and angles.min() < -50 and angles.max() > 50
    assert abs(angles.mean().item()) < 6  # centred on 0
    batch = T.random_rotate(60, per_sample=False)(torch.rand(1, 1, 9, 9).repeat(5, 1, 1, 1))
    assert all(torch.equal(batch[0], batch[i]) for i in range(5))
    assert torch.equal(T.random_rotate(0)(x[:3]), x[:3])


def test_random_rotate_is_reproducible_and_shares_the_draw_in_the_regularizer():
    x = torch.rand(6, 1, 8, 8)
    torch.manual_seed(3)
    a = T.random_rotate(30)(x)
    torch.manual_seed(3)
    assert torch.equal(a, T.random_rotate(30)(x))
    # An exactly rotation-equivariant image-to-image model: any difference
    # between the input's and the output's angles would show as a positive error.
    # A pointwise linear model commutes with bilinear resampling and with zero fill.
    model = nn.Conv2d(1, 3, 1, bias=False)
    for per_sample in (True, False):
        spec = [(T.random_rotate(45, per_sample), 0, 1)]
        reg = EquivarianceRegularizer(model, (1, 8, 8), spec, n=8)
        for _ in range(3):
            assert reg().item() == pytest.approx(0.0, abs=1e-6)
    # while a different angle on the output is seen
    other = EquivarianceRegularizer(model, (1, 8, 8), [(T.rotate(10), T.rotate(20), 0, 1)], n=8)
    assert other().item() > 1e-3


def test_rotations_are_accepted_wherever_transforms_are():
    for f in (T.rotate(30), T.random_rotate(15)):
        spec = parse_transform((f, 0.0, 1.0), 0)
        assert spec.f_in is f and spec.f_out is f and spec.label == repr(f)
        four = parse_transform((T.identity, f, 0.0, 1.0), 1)
        assert four.f_in is f
    assert repr(T.rotate(30)) == "rotate(degrees=30)"
    assert repr(T.random_rotate(15, False)) == "random_rotate(max_degrees=15, per_sample=False)"


@pytest.mark.parametrize(
    "make, value, exc",
    [
        (T.random_rotate, -1, ValueError),
        (T.random_rotate, -0.5, ValueError),
        (T.random_rotate, math.nan, ValueError),
        (T.random_rotate, math.inf, ValueError),
        (T.random_rotate, "30", TypeError),
        (T.random_rotate, True, TypeError),
        (T.random_rotate, np.bool_(True), TypeError),
        (T.random_rotate, None, TypeError),
        (T.random_rotate, [30], TypeError),
        (T.rotate, math.nan, ValueError),
        (T.rotate, math.inf, ValueError),
        (T.rotate, -math.inf, ValueError),
        (T.rotate, "90", TypeError),
        (T.rotate, False, TypeError),
    ],
)
def test_bad_angles_name_the_argument(make, value, exc):
    name = "max_degrees" if make is T.random_rotate else "degrees"
    with pytest.raises(exc, match=f"`{name}`") as err:
        make(value)
    assert repr(value) in str(err.value)


def test_numpy_and_negative_angles_are_numbers():
    assert T.rotate(np.float32(-45)).degrees == -45.0
    assert T.random_rotate(np.int64(10)).max_degrees == 10.0
