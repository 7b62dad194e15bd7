"""Tests for equivariance.training (fit, evaluate, train_step)."""

import pytest
import torch
from torch import nn

import equivariance as eq
from equivariance import training as T


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
        nn.Linear(4 * 7 * 7, 10),
    )


@pytest.fixture(scope="module")
def train():
    return eq.load_fashion_mnist("train", root="subset", limit=256)


def test_loss_decreases_and_history(train, capsys):
    model = small_cnn()
    h = eq.fit(model, train, epochs=4, batch_size=32, lr=1e-2, seed=1)
    assert len(h.loss) == 4 * 8 and h.epoch[:9] == [1] * 8 + [2]
    assert len(h.epoch_loss) == 4 and len(h.epoch_seconds) == 4
    assert h.epoch_loss[-1] < h.epoch_loss[0] - 0.1
    out = capsys.readouterr().out
    assert "epoch 1/4" in out and "ms/step" in out
    d = h.as_dict()
    assert d["steps"]["step"][-1] == 32 and d["epochs"]["seconds"] == h.epoch_seconds


def test_seed_reproducible_and_quiet(train, capsys):
    h1 = eq.fit(small_cnn(), train, epochs=1, batch_size=64, seed=3, verbose=False)
    h2 = eq.fit(small_cnn(), train, epochs=1, batch_size=64, seed=3, verbose=False)
    h3 = eq.fit(small_cnn(), train, epochs=1, batch_size=64, seed=4, verbose=False)
    assert h1.loss == h2.loss and h1.loss != h3.loss
    assert capsys.readouterr().out == ""


def test_regularizer_reuses_batch_forward(train):
    model = small_cnn()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    reg = eq.EquivarianceRegularizer(model, (1, 28, 28), [(eq.transforms.rot90(1), 0, 1)], n=16)
    h = eq.fit(model, train[:64], epochs=1, batch_size=32, regularizer=reg, seed=0, verbose=False)
    assert h.reused_outputs and all(r > 0 for r in h.reg)
    assert calls == [32, 16, 32, 16]  # batch pass, then only the 16 rotated points
    # same losses with and without reuse for a model without mode-dependent layers
    ha = eq.fit(small_cnn(), train[:64], epochs=1, batch_size=32, verbose=False, seed=0,
                regularizer=eq.EquivarianceRegularizer(small_cnn(), (1, 28, 28), [(eq.transforms.rot90(1), 0, 1)], n=16))
    assert len(ha.loss) == 2


def test_no_reuse_with_dropout_or_batchnorm(train):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    assert T.mode_dependent_modules(model) == ["1", "3"]
    reg = eq.EquivarianceRegularizer(model, (1, 28, 28), [(eq.transforms.rot90(1), 0, 1)], n=8)
    h = eq.fit(model, train[:32], epochs=1, batch_size=32, regularizer=reg, verbose=False)
    assert not h.reused_outputs
    assert model.training


def test_evaluate_rotations(train):
    model = small_cnn()
    model.eval()
    rows = eq.evaluate(model, train[:100], batch_size=30)
    assert [r["degrees"] for r in rows] == [0, 90, 180, 270]
    assert all(0 <= r["accuracy"] <= 1 and r["n"] == 100 for r in rows)
    assert rows[0]["invariance_error"] == 0
    c4 = eq.C4CNN()
    c4.train()
    rows = eq.evaluate(c4, train[:50], rotations=[0, 1, 2, 3])
    assert c4.training  # mode restored
    assert len({r["correct"] for r in rows}) == 1
    assert max(r["invariance_error"] for r in rows) < 1e-4


def test_train_step_returns_floats(train):
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = train[:64].tensors
    first = eq.train_step(model, opt, x, y)
    for _ in range(10):
        last = eq.train_step(model, opt, x, y)
    assert isinstance(last["loss"], float) and last["loss"] < first["loss"]
    reg = eq.EquivarianceRegularizer(model, (1, 28, 28), [(eq.transforms.rot90(2), 0, 1)], n=8)
    out = eq.train_step(model, opt, x, y, regularizer=reg)
    assert out["total"] == pytest.approx(out["loss"] + out["reg"], rel=1e-5)


def test_bad_arguments(train):
    model = small_cnn()
    for name, kwargs in [
        ("epochs", {"epochs": 0}),
        ("batch_size", {"batch_size": 2.5}),
        ("lr", {"lr": -1}),
        ("seed", {"seed": 1.5}),
        ("reg_points", {"reg_points": "everywhere"}),
        ("regularizer", {"regularizer": 3}),
    ]:
        with pytest.raises((ValueError, TypeError), match=name):
            eq.fit(model, train, verbose=False, **kwargs)
    with pytest.raises(TypeError, match="data"):
        eq.fit(model, "train")
    with pytest.raises(ValueError, match="data"):
        eq.fit(model, (torch.rand(4, 1, 28, 28), torch.tensor([0, 1])))
    with pytest.raises(TypeError, match="model"):
        eq.fit(lambda x: x, train)
    with pytest.raises(ValueError, match="rotations"):
        eq.evaluate(model, train[:10], rotations=[0, 90])
    with pytest.raises(ValueError, match="rotations"):
        eq.evaluate(model, train[:10], rotations=[])

