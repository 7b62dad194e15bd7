"""Tests for equivariance.training.metrics and the figures fit() records per epoch."""

import equivariance as eq
import pytest
import torch
import torch.nn.functional as F
from equivariance.modes import preserved_modes
from equivariance.training.metrics import confusion_metric, metric_list
from torch import nn

# 4 images, 3 classes; predictions 0, 1, 2, 0 for labels 0, 2, 2, 1
LOGITS = torch.tensor([[3.0, 2, 1], [1, 3, 2], [1, 2, 3], [3, 1, 2]])
LABELS = torch.tensor([0, 2, 2, 1])


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                         nn.Flatten(), nn.Linear(4 * 7 * 7, 10))


@pytest.fixture(scope="module")
def train():
    return eq.load_fashion_mnist("train", root="subset", limit=128)


@pytest.mark.parametrize("name, value", [
    ("accuracy", 0.5), ("top_1", 0.5), ("top_2", 0.75), ("top_3", 1.0),
    # per class recall 1, 0, 1/2
    ("balanced_accuracy", 0.5),
    # F1 per class: 2/3 (tp 1, 1 true, 2 predicted), 0, 2/3 (tp 1, 2 true, 1 predicted)
    ("macro_f1", 4 / 9),
])
def test_named_metrics_on_a_constructed_case(name, value):
    assert eq.metric_value(name, LOGITS, LABELS) == pytest.approx(value)
    # the same in two batches (running sums)
    (m,) = metric_list(name)
    m.update(LOGITS[:1], LABELS[:1])
    m.update(LOGITS[1:], LABELS[1:])
    assert m.result() == pytest.approx(value)


def test_classes_absent_everywhere_are_left_out():
    confusion = torch.tensor([[2, 0, 0], [0, 0, 0], [1, 0, 1]])
    assert confusion_metric(confusion, "balanced_accuracy") == pytest.approx(0.75)
    assert confusion_metric(confusion, "macro_f1") == pytest.approx((0.8 + 2 / 3) / 2)


def test_bad_metrics_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match='`metrics`: give top-k accuracy with its k, e.g. "top_3"'):
        metric_list("top_k")
    with pytest.raises(ValueError, match="`metrics`: unknown metric 'recall'"):
        metric_list(["accuracy", "recall"])
    with pytest.raises(ValueError, match="`metrics`: a function needs a name"):
        metric_list([lambda lo, la: 0])
    with pytest.raises(ValueError, match="names must be unique"):
        metric_list(["top_2", "top_2"])
    with pytest.raises(ValueError, match="'loss' is a figure"):
        metric_list({"loss": lambda lo, la: 0})
    with pytest.raises(TypeError, match="`metrics` must be None, a metric name"):
        metric_list(3)


def test_history_columns_without_validation_data(train):
    h = eq.fit(small_cnn(), train, epochs=2, batch_size=32, verbose=False,
               metrics=["top_3", "accuracy", "macro_f1"])  # accuracy is there anyway
    cols = list(h.as_dict()["epochs"])
    assert cols == ["epoch", "loss", "reg", "accuracy", "top_3", "macro_f1", "lr", "seconds"]
    assert not any(c.startswith("val_") for c in h.figures())
    assert h.best_epoch is None and "best epoch" not in repr(h)


def test_history_columns_with_validation_data(train):
    def mean_logit(logits, labels):
        return logits.mean()

    model = small_cnn()
    x, y = train[:32].tensors
    h = eq.fit(model, train, epochs=2, batch_size=32, verbose=False, validation_data=(x, y),
               metrics=["top_3", {"mean_logit": mean_logit}])
    assert list(h.as_dict()["epochs"]) == [
        "epoch", "loss", "reg", "accuracy", "top_3", "mean_logit", "val_loss", "val_accuracy",
        "val_top_3", "val_mean_logit", "lr", "seconds"]
    with torch.no_grad(), preserved_modes(model, "eval"):
        logits = model(x)
    assert h.metrics["val_mean_logit"][-1] == pytest.approx(float(logits.mean()), rel=1e-5)
    assert h.metrics["val_top_3"][-1] == eq.metric_value("top_3", logits, y)
    assert h.val_accuracy[-1] == eq.metric_value("accuracy", logits, y)
    assert h.val_loss[-1] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    # no early stopping: the best epoch is named, its weights were not restored
    assert h.best_epoch is not None and not h.restored and h.monitor == "val_loss"


def test_training_accuracy_is_that_of_the_steps_logits(train):
    # a learning rate of 0: the model the steps see is the one measured afterwards
    model = small_cnn()
    x, y = train.tensors
    h = eq.fit(model, (x, y), epochs=1, batch_size=50, verbose=False, metrics=["macro_f1"],
               optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    with torch.no_grad():
        logits = model(x)
    assert h.accuracy == [eq.metric_value("accuracy", logits, y)]
    assert h.metrics["macro_f1"][0] == pytest.approx(eq.metric_value("macro_f1", logits, y))


def test_history_repr_is_a_short_summary(train):
    h = eq.fit(small_cnn(), train, epochs=2, batch_size=8, verbose=False, validation_data=0.25)
    text = repr(h)
    assert text.startswith("History(2 epochs, 24 steps; last: loss ")
    assert "val_accuracy" in text and "best epoch" in text and len(text) < 300
    assert f"{h.loss[3]}" not in text
