"""Tests of equivariance.predict and the device names (prediction.py)."""

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance import devices, prediction
from torch import nn

# the CUDA runs of the same tests exist only where CUDA does (no skipped tests elsewhere)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def small_cnn() -> nn.Module:
    return eq.SimpleCNN(widths=(2, 3, 4), kernel_size=3, padding="same")


def images(n=5, side=8):
    return torch.rand(n, 1, side, side)


def test_types_agree_with_the_model_in_eval_mode():
    model, x = small_cnn(), images()
    model.eval()
    with torch.no_grad():
        expected = model(x)
    logits = eq.predict(model, x, type="logits")
    prob = eq.predict(model, x, type="prob")
    cls = eq.predict(model, x, type="class")
    assert torch.equal(logits, expected)
    assert torch.allclose(prob, torch.softmax(expected, dim=1))
    assert torch.allclose(prob.sum(dim=1), torch.ones(5))
    assert cls.dtype == torch.int64 and torch.equal(cls, expected.argmax(dim=1))
    assert not logits.requires_grad and all(p.grad is None for p in model.parameters())


def test_the_default_type_is_prob():
    model, x = small_cnn(), images()
    assert torch.equal(eq.predict(model, x), eq.predict(model, x, type="prob"))


def test_three_dimensional_float64_and_integer_inputs_are_converted():
    model = small_cnn()
    x = torch.randint(0, 255, (4, 8, 8))
    expected = eq.predict(model, x.unsqueeze(1).float(), type="logits")
    assert torch.equal(eq.predict(model, x.numpy(), type="logits"), expected)
    assert torch.equal(eq.predict(model, x.double().numpy(), type="logits"), expected)
    assert eq.predict(model, x, type="logits").dtype == torch.float32


def test_a_float64_model_gets_float64_inputs():
    model = small_cnn().double()
    out = eq.predict(model, np.random.rand(3, 1, 8, 8).astype(np.float32), type="logits")
    assert out.dtype == torch.float64


def test_batches_give_the_result_of_one_pass():
    model, x = small_cnn(), images(7)
    whole = eq.predict(model, x, type="logits", batch_size=256)
    assert torch.allclose(eq.predict(model, x, type="logits", batch_size=2), whole, atol=1e-6)


def test_batch_norm_statistics_and_every_mode_are_left_as_they_were():
    model = eq.C4CNN(widths=(2, 2, 2))
    model.train()
    model.features[1].eval()  # a frozen batch norm inside a training model
    flags = [m.training for m in model.modules()]
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    eq.predict(model, images(side=9))
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())
    model.eval()
    eq.predict(model, images(side=9))
    assert not any(m.training for m in model.modules())


def test_modes_are_restored_when_the_model_fails():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))  # expects 8 x 8 images
    model.train()
    with pytest.raises(ValueError, match="the model cannot run on the images of `x`"):
        eq.predict(model, images(side=9))
    assert model.training and model[1].training


def test_an_empty_batch_gives_no_rows_but_the_classes():
    assert eq.predict(small_cnn(), images(0), type="prob").shape == (0, 10)
    assert eq.predict(small_cnn(), images(0), type="class").shape == (0,)


def test_class_names():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    model.class_names = ["cat", "dog", "emu"]
    x = images(side=8)
    idx = eq.predict(model, x, type="class")
    assert eq.predict(model, x, type="class", names=True) == [model.class_names[i] for i in idx]
    assert prediction.model_class_names(model) == ["cat", "dog", "emu"]
    model.class_names = ["cat", "dog"]
    with pytest.raises(ValueError, match="2 names but the model returns 3 logits"):
        eq.predict(model, x, type="prob")
    model.class_names = ["cat", "cat", "emu"]
    with pytest.raises(ValueError, match="`model.class_names` must be distinct"):
        eq.predict(model, x)
    del model.class_names
    with pytest.raises(ValueError, match="`names=True` needs"):
        eq.predict(model, x, type="class", names=True)


@pytest.mark.parametrize("bad", ["probs", None, 1])
def test_bad_type(bad):
    with pytest.raises(ValueError, match="`type` must be one of"):
        eq.predict(small_cnn(), images(), type=bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="`batch_size` must be a positive whole number"):
        eq.predict(small_cnn(), images(), batch_size=bad)


def test_bad_names_and_model():
    with pytest.raises(TypeError, match="`names` must be True or False"):
        eq.predict(small_cnn(), images(), type="class", names="yes")
    with pytest.raises(TypeError, match="`model` must be a torch nn.Module"):
        eq.predict(lambda x: x, images())


def test_non_finite_and_too_large_inputs_name_x():
    x = images()
    x[0, 0, 1, 1] = float("nan")
    x[1, 0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="`x` must hold finite numbers, got 2 NaN"):
        eq.predict(small_cnn(), x)
    big = np.full((1, 1, 8, 8), 1e300)
    with pytest.raises(ValueError, match="`x` has 64 value.s. too large for torch.float32"):
        eq.predict(small_cnn(), big)


def test_shapes_are_checked_with_a_hint_for_channels_last():
    model = small_cnn()
    with pytest.raises(ValueError, match=r"`x` must be images of shape \(N, 1, H, W\) or "
                                         r"\(N, H, W\), got shape \(64,\)"):
        eq.predict(model, torch.rand(64))
    rgb = eq.SimpleCNN(in_channels=3, widths=(2, 2, 2), padding="same")
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 8, 3\); channels last\? .*aperm"):
        eq.predict(rgb, torch.rand(2, 8, 8, 3))
    with pytest.raises(ValueError, match=r"`x` must be images of shape \(N, 3, H, W\), got"):
        eq.predict(rgb, torch.rand(2, 8, 8))


def test_non_numbers_are_type_errors():
    with pytest.raises(TypeError, match="`x` must hold real numbers, got dtype torch.bool"):
        eq.predict(small_cnn(), torch.zeros(2, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="`x` must be images as a tensor or a numeric array"):
        eq.predict(small_cnn(), np.array([["a"]], dtype=object))


def test_a_model_that_does_not_return_logits():
    model = nn.Sequential(nn.Flatten(0))
    with pytest.raises(ValueError, match=r"`model` must return logits of shape \(N, num_classes\)"):
        eq.predict(model, images())


# -- devices ------------------------------------------------------------------------------


def test_device_names(monkeypatch):
    assert prediction.resolve_device(None) is None
    assert prediction.resolve_device("cpu") == torch.device("cpu")
    assert prediction.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert prediction.resolve_device("auto") == torch.device("cpu")
    # the CUDA branch, checked without a GPU: nothing is allocated on it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert prediction.resolve_device("auto") == torch.device("cuda")
    assert prediction.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"`device` is 'cuda:2' but this machine has 2 CUDA"):
        prediction.resolve_device("cuda:2")


def test_missing_devices_are_clear_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match="`device` is 'cuda' but CUDA is not available.*\"auto\""):
        eq.predict(small_cnn(), images(), device="cuda")
    with pytest.raises(ValueError, match="`map_location` is 'cuda:0' but CUDA is not available"):
        prediction.resolve_device("cuda:0", "map_location")
    with pytest.raises(ValueError, match="`device` is \"mps\" but MPS"):
        prediction.resolve_device("mps")
    with pytest.raises(ValueError, match="`device` must be \"auto\", \"cpu\""):
        prediction.resolve_device("gpu")
    with pytest.raises(ValueError, match="`device` must be"):
        prediction.resolve_device("meta")
    with pytest.raises(TypeError, match="`device` must be .* or a torch.device, got int"):
        prediction.resolve_device(0)


@pytest.mark.parametrize("device", DEVICES)
def test_predict_on_a_device_leaves_the_model_where_it_was(device):
    model, x = small_cnn(), images()
    expected = eq.predict(model, x, type="logits")
    out = eq.predict(model, x, type="logits", device=device)
    assert out.device == torch.device("cpu")
    assert torch.allclose(out, expected, atol=1e-5)
    assert all(p.device == torch.device("cpu") for p in model.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_predict_follows_a_model_on_a_device(device):
    model, x = small_cnn(), images()
    expected = eq.predict(model, x, type="logits")
    model.to(device)
    assert torch.allclose(eq.predict(model, x, type="logits"), expected, atol=1e-5)
    assert all(p.device.type == device for p in model.parameters())
