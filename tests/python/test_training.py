"""Tests for equivariance.training (fit, evaluate, train_step)."""

import ast
import inspect
import math

import equivariance as eq
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from equivariance.modes import preserved_modes, training_targets
from equivariance.training import loop as T
from torch import nn


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
    # batch pass, then only the 16 rotated points
    assert calls == [32, 16, 32, 16]
    # same losses with and without reuse for a model without mode-dependent layers
    ha = eq.fit(
        small_cnn(),
        train[:64],
        epochs=1,
        batch_size=32,
        verbose=False,
        seed=0,
        regularizer=eq.EquivarianceRegularizer(
            small_cnn(), (1, 28, 28), [(eq.transforms.rot90(1), 0, 1)], n=16
        ),
    )
    assert len(ha.loss) == 2


def test_no_reuse_with_dropout_or_batchnorm(train):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
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
    with pytest.raises(ValueError, match=r"`rotations` must be .*quarter turns 0, 1, 2 or 3"):
        eq.evaluate(model, train[:10], rotations=[45])  # not 45 quarter turns
    with pytest.raises(ValueError, match="`rotations`"):
        eq.evaluate(model, train[:10], rotations=[4])


def test_seed_range_and_flags(train):
    with pytest.raises(
        ValueError, match=r"`seed` must be None or a whole number from 0 to 2\*\*64 - 1"
    ):
        eq.fit(small_cnn(), train[:8], seed=2**70, verbose=False)
    with pytest.raises(ValueError, match="`seed`"):
        eq.fit(small_cnn(), train[:8], seed=-1, verbose=False)
    # the largest seed works, and numpy flags and counts are what they say
    h = eq.fit(
        small_cnn(),
        train[:8],
        seed=2**64 - 1,
        epochs=np.int64(2),
        batch_size=np.int64(8),
        verbose=np.bool_(False),
        reuse_outputs=np.bool_(True),
    )
    assert len(h.loss) == 2
    for bad in ("False", 0, None):
        with pytest.raises(TypeError, match="`verbose` must be True or False"):
            eq.fit(small_cnn(), train[:8], verbose=bad)
    with pytest.raises(TypeError, match="`reuse_outputs`"):
        eq.fit(small_cnn(), train[:8], verbose=False, reuse_outputs="no")


def test_bad_callback_is_rejected_before_the_first_step(train):
    model = small_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TypeError, match="`callbacks` must be None or a list of callbacks"):
        eq.fit(model, train[:8], verbose=False, callbacks=[5])
    with pytest.raises(TypeError, match="`on_step_end` must be None or a function"):
        eq.lambda_callback(on_step_end=5)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- non-finite values ---------------------------------------------------------------------


def nan_data(train, n=16, where=5):
    x, y = train[:n].tensors
    x = x.clone()
    x[where, 0, 3, 3] = float("nan")
    return x, y


def test_fit_stops_at_the_first_non_finite_loss(train):
    model = small_cnn()
    x, y = nan_data(train)
    with pytest.raises(
        ValueError, match=r"epoch 1, step [1-4]:.*input batch held 1 NaN or infinite"
    ):
        eq.fit(model, (x, y), batch_size=4, seed=0, verbose=False)
    # the step that met the NaN did not reach the parameters
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fit_names_a_non_finite_regularizer_with_finite_inputs(train):
    model = small_cnn()

    def reg():
        return next(model.parameters()).sum() * float("inf")

    with pytest.raises(
        ValueError, match=r"epoch 1, step 1:.*input batch was finite; the regularizer"
    ):
        eq.fit(model, train[:8], regularizer=reg, verbose=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_train_step_stops_before_the_update(train):
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = nan_data(train, n=8, where=0)
    with pytest.raises(ValueError, match="this step.*input batch held"):
        eq.train_step(model, opt, x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_evaluate_rejects_non_finite_images(train):
    x, y = train[:8].tensors
    for value in (float("nan"), float("inf")):
        bad = x.clone()
        bad[2, 0, 0, 0] = value
        with pytest.raises(ValueError, match="`data` must hold finite numbers only"):
            eq.evaluate(small_cnn(), (bad, y))


# -- dtypes --------------------------------------------------------------------------------


def test_float64_and_integer_images_are_converted_to_the_model_dtype(train):
    x, y = train[:8].tensors
    for images in (x.double(), (x * 255).to(torch.uint8), (x * 255).long()):
        h = eq.fit(small_cnn(), (images, y), batch_size=8, verbose=False)
        assert math.isfinite(h.loss[0])
        assert len(eq.evaluate(small_cnn(), (images, y), rotations=[0, 1])) == 2
    model = small_cnn().double()  # and float32 data into a float64 model
    eq.fit(model, (x, y), batch_size=8, verbose=False)
    assert eq.evaluate(model, (x, y))[0]["n"] == 8


# -- modes ---------------------------------------------------------------------------------


class Recorder(nn.Module):
    """Records its mode and its inputs at every forward pass."""

    def __init__(self):
        super().__init__()
        self.modes, self.inputs = [], []

    def forward(self, x):
        self.modes.append(self.training)
        self.inputs.append(x.detach().clone())
        return x


def bn_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        Recorder(),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )


def test_fit_keeps_a_frozen_batch_norm_frozen(train):
    model = bn_model()
    bn = model[1]
    bn.eval()  # frozen by the user inside a model in training mode
    stats = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    eq.fit(model, train[:16], batch_size=8, verbose=False)
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert int(bn.num_batches_tracked) == stats[2]
    assert model.training and not bn.training and model[2].training
    assert model[2].modes and all(model[2].modes)  # the other modules trained in training mode


def test_fit_trains_a_model_in_eval_mode_and_restores_it(train):
    model = bn_model().eval()
    eq.fit(model, train[:8], batch_size=8, verbose=False)
    assert model[2].modes == [True]  # trained as model.train() would
    assert not any(m.training for m in model.modules())  # every flag restored
    assert int(model[1].num_batches_tracked) == 1


class EvalCache(nn.Module):
    """Caches a value on eval() and drops it on train(), as escnn's R2Conv does."""

    def __init__(self):
        super().__init__()
        self.cache = None

    def train(self, mode=True):
        self.cache = None if mode else "cached"
        return super().train(mode)

    def forward(self, x):
        return x


def test_evaluate_restores_every_mode_through_train(train):
    model = nn.Sequential(EvalCache(), small_cnn())
    model[1][0].eval()
    eq.evaluate(model, train[:8], rotations=[0])
    assert model.training and model[0].training and not model[1][0].training
    assert model[0].cache is None  # restored by train(True), not by assigning the flag
    model.eval()
    eq.fit(model, train[:8], batch_size=8, verbose=False)
    assert model[0].cache == "cached" and not model[0].training


def test_preserved_modes_restores_after_an_error():
    model = bn_model()
    model[1].eval()
    with pytest.raises(RuntimeError, match="boom"), preserved_modes(model, "eval"):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [
        True,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
    ]
    targets = training_targets(model)
    assert targets[model[1]] is False and all(v for m, v in targets.items() if m is not model[1])
    with pytest.raises(ValueError, match="`mode`"), preserved_modes(model, "training"):
        pass


# -- augmentation --------------------------------------------------------------------------


def recording_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        Recorder(), nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 10)
    )


def test_augment_changes_what_the_model_sees(train):
    x, y = train[:8].tensors
    seen = []

    def turn(batch):
        seen.append(batch.clone())
        return torch.rot90(batch, 1, dims=(-2, -1))

    model = recording_cnn()
    eq.fit(model, (x, y), batch_size=8, augment=turn, seed=0, verbose=False)
    assert len(seen) == 1 and torch.equal(
        model[0].inputs[0], torch.rot90(seen[0], 1, dims=(-2, -1))
    )
    # the augmentation received the data's images, in the epoch's order
    assert sorted(seen[0].sum(dim=(1, 2, 3)).tolist()) == sorted(x.sum(dim=(1, 2, 3)).tolist())

    model = recording_cnn()
    eq.fit(model, (x, y), batch_size=8, augment=eq.transforms.random_rot90(), seed=1, verbose=False)
    got = model[0].inputs[0]
    plain = recording_cnn()
    eq.fit(plain, (x, y), batch_size=8, seed=1, verbose=False)
    upright = plain[0].inputs[0]  # same order: same seed
    turns = [
        next(k for k in range(4) if torch.equal(g, torch.rot90(u, k, dims=(-2, -1))))
        for g, u in zip(got, upright)
    ]
    assert len(set(turns)) > 1  # a quarter turn drawn per image


def test_bad_augment_is_named(train):
    with pytest.raises(TypeError, match="`augment` must be None, a transform"):
        eq.fit(small_cnn(), train[:8], augment=5, verbose=False)
    with pytest.raises(ValueError, match="`augment` must return a batch of 8 images"):
        eq.fit(small_cnn(), train[:8], batch_size=8, augment=lambda b: b[:2], verbose=False)


# -- one step function ---------------------------------------------------------------------


def test_fit_is_train_step_in_a_loop(train):
    x, y = train[:16].tensors
    a = small_cnn()
    h = eq.fit(a, (x, y), epochs=1, batch_size=8, lr=1e-2, seed=5, verbose=False)
    b = small_cnn()
    opt = torch.optim.Adam(b.parameters(), lr=1e-2)
    torch.manual_seed(5)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    losses = [eq.train_step(b, opt, x[idx], y[idx])["loss"] for idx in order.split(8)]
    assert losses == h.loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_fit_is_short():
    lines = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(ast.parse(inspect.getsource(T)))
        if isinstance(node, ast.FunctionDef)
    }
    assert lines["fit"] <= 80 and max(lines.values()) <= 80, lines


# -- own data, validation, early stopping, callbacks, devices --------------------


CUDA = [
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    )
]


def test_own_arrays_of_one_channel_and_class_names(train):
    x, y = train[:32].tensors
    model = small_cnn()
    h = eq.fit(
        model,
        (x[:, 0].numpy(), y.numpy()),
        batch_size=16,
        verbose=False,
        class_names=list(eq.CLASSES),
    )  # (N, H, W) arrays: one channel
    assert len(h.loss) == 2 and model.class_names == list(eq.CLASSES)
    assert model.input_shape == (1, 28, 28)
    assert eq.predict(model, x[:3], type="class", names=True)[0] in eq.CLASSES
    with pytest.raises(
        ValueError,
        match=r"`class_names` \(in R: the levels .*\) has 3 names but "
        r"the model returns 10 logits",
    ):
        eq.fit(small_cnn(), (x, y % 3), verbose=False, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="`class_names` must be None or a list of distinct"):
        eq.fit(small_cnn(), (x, y), verbose=False, class_names=["a", "a"])


def test_bad_images_and_labels_name_the_argument_and_the_shapes(train):
    x, y = train[:8].tensors
    with pytest.raises(
        ValueError,
        match=r"`data` must be images of shape \(N, 1, H, W\) or "
        r"\(N, H, W\), got shape \(8, 28, 28, 1\); channels last\?"
        r".*aperm\(x, c\(1, 4, 2, 3\)\)",
    ):
        eq.fit(eq.SimpleCNN(), (x.permute(0, 2, 3, 1), y), verbose=False)
    with pytest.raises(ValueError, match=r"`data` must be images .*got shape \(8, 2, 28, 28\)"):
        eq.fit(small_cnn(), (x.expand(8, 2, 28, 28), y), verbose=False)  # first Conv2d: 1
    with pytest.raises(ValueError, match=r"`data`: labels must be .*got shape \(7,\) for 8 images"):
        eq.fit(small_cnn(), (x, y[:7]), verbose=False)
    with pytest.raises(
        ValueError,
        match=r"`data`: labels must be class indices from 0 to 9 \(the "
        r"model returns 10 logits; in R, classes 1 to 10\), got labels from 1 to 10; "
        r"labels from 1\?",
    ):
        eq.fit(small_cnn(), (x, torch.tensor([1, 2, 3, 4, 5, 6, 7, 10])), verbose=False)
    with pytest.raises(ValueError, match="`data`: labels must be class indices from 0, got -1"):
        eq.fit(small_cnn(), (x, y - 1 - y), verbose=False)
    with pytest.raises(ValueError, match=r"`data`: labels must be whole numbers"):
        eq.fit(small_cnn(), (x, torch.full((8,), float("nan"))), verbose=False)
    with pytest.raises(
        ValueError,
        match=r"`validation_data`: labels must be class indices from "
        r"0 to 9 .*got labels from 0 to 12",
    ):
        eq.fit(small_cnn(), (x, y), verbose=False, validation_data=(x[:2], torch.tensor([0, 12])))
    model = small_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="got labels from 0 to 10"):
        eq.fit(model, (x, torch.tensor([0, 1, 2, 3, 4, 5, 6, 10])), verbose=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing learnt


def test_validation_fraction_is_held_out_with_the_seed(train):
    seen = []

    def record(m, i, o):
        seen.append(i[0].shape[0])

    model = small_cnn()
    model.register_forward_hook(record)
    h = eq.fit(
        model, train[:40], epochs=2, batch_size=32, seed=3, verbose=False, validation_data=0.25
    )
    assert seen == [30, 10, 30, 10]  # 30 training images, 10 held out, per epoch
    assert len(h.val_loss) == 2 and all(0 <= a <= 1 for a in h.val_accuracy)
    assert h.as_dict()["epochs"]["val_loss"] == h.val_loss
    again = eq.fit(
        small_cnn(),
        train[:40],
        epochs=2,
        batch_size=32,
        seed=3,
        verbose=False,
        validation_data=0.25,
    )
    assert again.val_loss == h.val_loss
    for bad in (0, 1, 1.5, True):
        with pytest.raises(ValueError, match="`validation_data` must be data .* or a fraction"):
            eq.fit(small_cnn(), train[:40], verbose=False, validation_data=bad)
    with pytest.raises(ValueError, match="`validation_data` = 0.01 holds out 0 of 40 images"):
        eq.fit(small_cnn(), train[:40], verbose=False, validation_data=0.01)


def test_validation_pair_is_measured_in_eval_mode_without_changing_the_model(train):
    x, y = train[:16].tensors
    model = bn_model()
    h = eq.fit(model, (x, y), epochs=1, batch_size=16, verbose=False, validation_data=(x, y))
    with torch.no_grad(), preserved_modes(model, "eval"):
        logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    assert h.val_loss[0] == pytest.approx(loss, rel=1e-5)
    assert h.val_accuracy[0] == (logits.argmax(1) == y).float().mean().item()
    assert model.training  # the mode the model came in


def test_early_stopping_stops_and_restores_the_best_weights(train):
    x, y = train[:20].tensors
    model = small_cnn()
    weights = []

    def keep(fig):
        weights.append([p.detach().clone() for p in model.parameters()])

    h = eq.fit(
        model,
        (x, y),
        epochs=30,
        batch_size=20,
        lr=0.5,
        verbose=False,
        seed=0,
        validation_data=(x, y[torch.randperm(20, generator=torch.Generator().manual_seed(0))]),
        patience=2,
        callbacks=[keep],
    )
    best = int(np.argmin(h.val_loss)) + 1
    assert h.stopped_early and len(h.val_loss) == best + 2 < 30
    assert h.best_epoch == best
    assert all(torch.equal(a, b) for a, b in zip(weights[best - 1], model.parameters()))
    assert h.restored and "weights restored" in repr(h)
    # restore_best=False keeps the last weights
    model = small_cnn()
    weights.clear()
    shuffled = y[torch.randperm(20, generator=torch.Generator().manual_seed(0))]
    h = eq.fit(
        model,
        (x, y),
        epochs=3,
        batch_size=20,
        lr=0.5,
        verbose=False,
        validation_data=(x, shuffled),
        callbacks=[keep, eq.early_stopping(patience=None, restore_best=False)],
    )
    assert all(torch.equal(a, b) for a, b in zip(weights[-1], model.parameters()))
    assert not h.restored and h.best_epoch == int(np.argmin(h.val_loss)) + 1


def test_early_stopping_needs_validation_data(train):
    with pytest.raises(ValueError, match="`patience` needs `validation_data`"):
        eq.fit(small_cnn(), train[:8], verbose=False, patience=2)
    with pytest.raises(ValueError, match="`early_stopping` needs `validation_data`"):
        eq.fit(small_cnn(), train[:8], verbose=False, callbacks=[eq.early_stopping()])
    with pytest.raises(ValueError, match="`patience` must be a positive whole number"):
        eq.fit(small_cnn(), train[:8], verbose=False, patience=0, validation_data=0.5)
    with pytest.raises(TypeError, match="`restore_best` must be True or False"):
        eq.early_stopping(restore_best="yes")


def test_callbacks_see_every_epoch_and_false_stops(train):
    figures = []
    h = eq.fit(
        small_cnn(),
        train[:16],
        epochs=5,
        batch_size=8,
        verbose=False,
        validation_data=0.5,
        seed=0,
        callbacks=[figures.append, lambda f: f["epoch"] < 2, lambda f: None],
    )
    assert len(h.epoch_loss) == 2 and h.stopped_early
    assert [f["epoch"] for f in figures] == [1, 2]
    assert set(figures[0]) == {
        "epoch",
        "loss",
        "reg",
        "accuracy",
        "seconds",
        "lr",
        "val_loss",
        "val_accuracy",
    }
    assert figures[1]["val_loss"] == h.val_loss[1] and figures[1]["loss"] == h.epoch_loss[1]
    # numpy's False stops too; other values do not
    h = eq.fit(
        small_cnn(), train[:8], epochs=3, verbose=False, callbacks=[lambda f: np.bool_(False)]
    )
    assert len(h.epoch_loss) == 1
    h = eq.fit(small_cnn(), train[:8], epochs=2, verbose=False, callbacks=lambda f: 0)
    assert len(h.epoch_loss) == 2 and not h.stopped_early and figures[0]["val_loss"] is not None
    with pytest.raises(TypeError, match="`callbacks` must be None or a list of callbacks"):
        eq.fit(small_cnn(), train[:8], verbose=False, callbacks=[print, 3])


def test_progress_events_receive_the_events(train):
    from equivariance.training.progress import ProgressEvents

    events = []
    eq.fit(
        small_cnn(),
        train[:16],
        epochs=2,
        batch_size=8,
        validation_data=(train[:4]),
        callbacks=[ProgressEvents(events.append)],
    )
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "step", "step", "epoch", "step", "step", "epoch", "end"]
    assert events[0] == {"event": "start", "epochs": 2, "steps": 2}
    assert events[2]["step"] == 2 and events[2]["reg"] is None and events[3]["val_accuracy"] >= 0
    with pytest.raises(TypeError, match="`fn` must be a function"):
        ProgressEvents("bar")


@pytest.mark.parametrize("device", ["cpu", "auto", None] + CUDA)
def test_fit_and_evaluate_on_a_device(train, device):
    model = small_cnn()
    eq.fit(model, train[:8], device=device, verbose=False)
    where = next(model.parameters()).device
    assert where.type == (
        "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    rows = eq.evaluate(model, train[:8], rotations=[0], device=device)
    assert rows[0]["n"] == 8 and next(model.parameters()).device == where


def test_cuda_without_cuda_says_so(train, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for call in (
        lambda: eq.fit(small_cnn(), train[:8], device="cuda", verbose=False),
        lambda: eq.evaluate(small_cnn(), train[:8], device="cuda"),
    ):
        with pytest.raises(
            ValueError, match="`device` is 'cuda' but CUDA is not available.*\"auto\""
        ):
            call()
    with pytest.raises(ValueError, match='`device` must be "auto", "cpu"'):
        eq.fit(small_cnn(), train[:8], device="gpu", verbose=False)


def test_set_seed_seeds_torch_numpy_and_random(train):
    import random

    eq.set_seed(2**40 + 7)
    a = (torch.rand(3), np.random.rand(3), random.random())
    eq.set_seed(2**40 + 7)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    weights = []
    for _ in range(2):
        eq.set_seed(11)
        model = eq.SimpleCNN(widths=(2, 2, 2))
        eq.fit(model, train[:16], batch_size=8, verbose=False)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(p, q) for p, q in zip(*weights))
    with pytest.raises(ValueError, match="`seed` must be a whole number"):
        eq.set_seed(None)
    with pytest.raises(ValueError, match="`seed`"):
        eq.set_seed(-1)
