"""Tests for fit()'s callbacks: the mechanism, the library, the progress display."""

import csv
import math

import equivariance as eq
import pytest
import torch
from equivariance.training.progress import ProgressBar, fit_line, format_eta
from torch import nn


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                         nn.Flatten(), nn.Linear(4 * 7 * 7, 10))


@pytest.fixture(scope="module")
def train():
    return eq.load_fashion_mnist("train", root="subset", limit=64)


class Recorder(eq.Callback):
    """Every call, and the optimizer's learning rate at every step."""

    def __init__(self):
        self.calls, self.lrs = [], []

    def on_train_begin(self, state):
        self.calls.append("train_begin")

    def on_epoch_begin(self, state):
        self.calls.append(f"epoch_begin {state.epoch}")

    def on_step_end(self, state):
        self.calls.append(f"step {state.epoch}.{state.step}")
        self.lrs.append(state.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, state):
        self.calls.append(f"epoch_end {state.figures['epoch']}")

    def on_train_end(self, state):
        self.calls.append(f"train_end failed={state.failed}")


def test_callback_objects_see_every_event_in_order(train):
    rec = Recorder()
    eq.fit(small_cnn(), train[:16], epochs=2, batch_size=8, verbose=False, callbacks=rec)
    assert rec.calls == ["train_begin", "epoch_begin 1", "step 1.1", "step 1.2", "epoch_end 1",
                         "epoch_begin 2", "step 2.1", "step 2.2", "epoch_end 2",
                         "train_end failed=False"]


def test_train_end_runs_after_an_error(train):
    rec = Recorder()
    x, y = train[:8].tensors
    x = x.clone()
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="not finite"):
        eq.fit(small_cnn(), (x, y), verbose=False, callbacks=[rec])
    assert rec.calls[-1] == "train_end failed=True"


def test_lambda_callback_functions_and_false_stops(train):
    steps, ends = [], []
    h = eq.fit(small_cnn(), train[:16], epochs=4, batch_size=8, verbose=False,
               callbacks=[eq.lambda_callback(on_step_end=steps.append,
                                             on_train_end=ends.append,
                                             on_epoch_end=lambda f: f["epoch"] < 2)])
    assert len(h.epoch_loss) == 2 and h.stopped_early
    assert [(s["epoch"], s["step"]) for s in steps] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert steps[3]["loss"] == h.loss[3] and steps[0]["reg"] == 0.0
    assert ends[0]["epoch"] == 2


def test_lr_schedule_function_changes_the_optimizer_rate(train):
    rec = Recorder()
    h = eq.fit(small_cnn(), train[:16], epochs=3, batch_size=8, verbose=False,
               callbacks=[eq.lr_schedule(lambda epoch: 0.1 / epoch), rec])
    assert h.lr == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert rec.lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.1 / 3, 0.1 / 3])
    with pytest.raises(ValueError, match="`lr_schedule`: the function must return a positive"):
        eq.fit(small_cnn(), train[:8], verbose=False, callbacks=[eq.lr_schedule(lambda e: -1)])


def test_lr_schedule_changes_the_training_itself(train):
    # the same run with the rate halved from epoch 2 on: epoch 1 equal, then different
    a = eq.fit(small_cnn(), train[:16], epochs=2, batch_size=8, verbose=False, seed=0)
    b = eq.fit(small_cnn(), train[:16], epochs=2, batch_size=8, verbose=False, seed=0,
               callbacks=[eq.lr_schedule(lambda e: 1e-3 if e == 1 else 1e-1)])
    assert a.loss[:3] == b.loss[:3] and a.loss[3] != b.loss[3]


def test_lr_schedule_cosine_and_plateau(train):
    h = eq.fit(small_cnn(), train[:16], epochs=4, batch_size=8, lr=0.01, verbose=False,
               callbacks=[eq.lr_schedule("cosine")])
    assert h.lr == pytest.approx([0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    # a figure that never improves after epoch 1: the rate falls after epochs 2 and 3
    h = eq.fit(small_cnn(), train[:16], epochs=4, batch_size=8, lr=0.01, verbose=False,
               metrics={"flat": lambda logits, labels: 1.0},
               callbacks=[eq.lr_schedule("plateau", monitor="flat", patience=1, factor=0.5)])
    assert h.lr == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    with pytest.raises(ValueError, match='`schedule` must be "plateau", "cosine" or a function'):
        eq.lr_schedule("step")
    with pytest.raises(ValueError, match=r"`factor` must be in \(0, 1\)"):
        eq.lr_schedule("plateau", factor=2)


def test_checkpoint_saves_when_the_figure_improves(train, tmp_path):
    x, y = train[:16].tensors
    weights = []
    model = small_cnn()
    cp = eq.checkpoint(tmp_path / "best.pt")
    h = eq.fit(model, (x, y), epochs=4, batch_size=8, lr=0.05, verbose=False,
               validation_data=train[16:48], callbacks=[
                   lambda f: weights.append({k: v.clone() for k, v in model.state_dict().items()}),
                   cp])
    best = [e for e in range(1, 5) if h.val_loss[e - 1] == min(h.val_loss[:e])]
    assert cp.saved == best
    loaded = eq.load_model(tmp_path / "best.pt", model=small_cnn(1))
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, weights[best[-1] - 1][k])
    # one file per improvement, on the training loss
    cp = eq.checkpoint(str(tmp_path / "model-{epoch}.pt"), monitor="loss")
    eq.fit(small_cnn(), (x, y), epochs=2, batch_size=8, verbose=False, callbacks=[cp])
    assert sorted(p.name for p in tmp_path.glob("model-*.pt")) == [
        f"model-{e}.pt" for e in cp.saved]


def test_checkpoint_and_early_stopping_check_their_monitor_first(train, tmp_path):
    with pytest.raises(ValueError, match="`checkpoint` needs `validation_data`"):
        eq.fit(small_cnn(), train[:8], verbose=False, callbacks=[eq.checkpoint(tmp_path / "m.pt")])
    with pytest.raises(ValueError, match="`monitor` 'val_top_3' is not a figure"):
        eq.fit(small_cnn(), train[:8], verbose=False, validation_data=0.5,
               callbacks=[eq.early_stopping("val_top_3")])
    with pytest.raises(ValueError, match="`path` is in a folder that does not exist"):
        eq.checkpoint(tmp_path / "nowhere" / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_early_stopping_on_a_maximised_figure(train):
    h = eq.fit(small_cnn(), train[:16], epochs=3, batch_size=8, verbose=False,
               validation_data=train[16:32],
               callbacks=[eq.early_stopping("val_accuracy", patience=None)])
    assert h.monitor == "val_accuracy" and h.restored
    assert h.val_accuracy[h.best_epoch - 1] == max(h.val_accuracy)


def test_csv_logger_writes_a_row_per_epoch(train, tmp_path):
    path = tmp_path / "log.csv"
    h = eq.fit(small_cnn(), train[:16], epochs=3, batch_size=8, verbose=False,
               validation_data=0.5, metrics=["top_2"], callbacks=[eq.csv_logger(path)])
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["epoch", "loss", "reg", "accuracy", "top_2", "val_loss",
                             "val_accuracy", "val_top_2", "lr", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_top_2"]) for r in rows] == pytest.approx(h.metrics["val_top_2"])


def test_progress_bar_keeps_its_eta_within_80_columns(train, capsys):
    many = ["top_2", "top_3", "balanced_accuracy", "macro_f1"]
    eq.fit(small_cnn(), train, epochs=2, batch_size=4, validation_data=0.25, metrics=many,
           callbacks=[eq.progress_bar(every=1, width=80)])
    lines = capsys.readouterr().out.splitlines()
    bars = [line for line in lines if "[" in line]
    assert len(bars) == 2 * 11  # 12 steps an epoch, the last one is the epoch's line
    assert all(len(b) < 80 and " ETA " in b for b in bars)
    # the epoch's line is wrapped to the width, its figures all there
    end = lines.index(next(x for x in lines if x.startswith("epoch 2/2 ") and "loss" in x
                           and "[" not in x))
    assert all(len(x) < 80 for x in lines[end:])
    assert "val_macro_f1" in " ".join(lines[end:]) and lines[end + 1].startswith("    ")
    # a regularizer's figure is the first dropped when the width is short
    assert fit_line("epoch 1/9 [..] 3/9 ETA 2s |", ["loss 0.1234", "reg 0.1"], 40) == \
        "epoch 1/9 [..] 3/9 ETA 2s | loss 0.1234"
    assert [format_eta(s) for s in (4.4, 65, 3720)] == ["4s", "1m05s", "1h02m"]


def test_fit_adds_no_bar_when_a_display_is_given(train, capsys):
    eq.fit(small_cnn(), train[:8], callbacks=[ProgressBar(every=1, width=60)])
    out = capsys.readouterr().out
    assert out.count("epoch 1/1 ") == 1  # one epoch line: not two displays


def test_a_failed_training_leaves_the_class_names_as_they_were(train):
    model = small_cnn()
    x, y = train[:8].tensors
    x = x.clone()
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="not finite"):
        eq.fit(model, (x, y), verbose=False, class_names=[f"c{i}" for i in range(10)])
    assert not hasattr(model, "class_names") and not hasattr(model, "input_shape")
