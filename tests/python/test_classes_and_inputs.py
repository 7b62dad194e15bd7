"""Labels matched to the model's classes by name, and inputs checked before the work."""

from __future__ import annotations

import equivariance as eq
import pytest
import torch
from equivariance.data.labels import check_label_range, class_names_of, onto_classes
from torch import nn

CLASSES = list(eq.CLASSES)


@pytest.fixture(scope="module")
def test_set():
    return eq.load_fashion_mnist("test", root="subset", limit=200)


def small_cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, classes))


def reversed_names(x, y):
    """The same data with its classes listed in reverse order."""
    return {"images": x, "labels": 9 - y, "class_names": CLASSES[::-1]}


# -- 1. class order --------------------------------------------------------------------------


def test_onto_classes_maps_by_name_and_refuses_unknown_names():
    y = torch.tensor([0, 1, 2, 1])
    assert onto_classes(y, ["b", "c", "a"], ["a", "b", "c"], "data").tolist() == [1, 2, 0, 2]
    assert onto_classes(y, None, ["a", "b", "c"], "data") is y
    assert onto_classes(y, ["a", "b", "c"], None, "data") is y
    with pytest.raises(ValueError, match=r"`validation_data` has classes the model does not "
                                         r"know: \['z'\]"):
        onto_classes(y, ["a", "b", "z"], ["a", "b", "c"], "validation_data")
    # a name no label uses may be unknown: it is never looked up
    assert onto_classes(torch.tensor([0]), ["a", "z"], ["b", "a"], "data").tolist() == [1]


def test_class_names_of_the_data_forms(test_set):
    assert class_names_of(test_set) == CLASSES
    assert class_names_of({"images": 1, "labels": 2, "class_names": ("a", "b")}) == ["a", "b"]
    assert class_names_of((torch.zeros(1), torch.zeros(1))) is None
    loader = torch.utils.data.DataLoader(test_set, batch_size=4)
    assert class_names_of(loader) == CLASSES


def test_evaluate_matches_classes_by_name(test_set):
    model = small_cnn()
    model.class_names = CLASSES
    x, y = test_set.tensors
    plain = eq.evaluate(model, (x, y), rotations=[0])[0]
    named = eq.evaluate(model, reversed_names(x, y), rotations=[0])[0]
    assert named["correct"] == plain["correct"]
    # without names on the model the labels are taken as they are: another count
    del model.class_names
    assert eq.evaluate(model, reversed_names(x, y), rotations=[0])[0]["correct"] != plain["correct"]
    model.class_names = [f"c{i}" for i in range(10)]
    with pytest.raises(ValueError, match="`data` has classes the model does not know"):
        eq.evaluate(model, test_set, rotations=[0])


def test_fit_matches_validation_classes_by_name(test_set):
    x, y = test_set.tensors
    model = small_cnn()
    h = eq.fit(model, (x, y), epochs=1, batch_size=50, class_names=CLASSES, seed=0,
               validation_data=reversed_names(x, y), verbose=False)
    true_accuracy = eq.evaluate(model, (x, y), rotations=[0])[0]["accuracy"]
    assert h.val_accuracy[-1] == pytest.approx(true_accuracy)
    with pytest.raises(ValueError, match="`validation_data` has classes the model does not know"):
        eq.fit(small_cnn(), (x, y), class_names=CLASSES, verbose=False, validation_data={
            "images": x, "labels": y, "class_names": CLASSES[:9] + ["Boots"]})


def test_fit_maps_training_labels_onto_a_named_model(test_set):
    x, y = test_set.tensors
    xb, yb = x[:16], y[:16]
    plain, named = small_cnn(), small_cnn()
    named.class_names = CLASSES  # e.g. a loaded model trained further
    eq.fit(plain, (xb, yb), batch_size=8, class_names=CLASSES, verbose=False, seed=0)
    eq.fit(named, reversed_names(xb, yb), batch_size=8, verbose=False, seed=0)
    assert named.class_names == CLASSES  # the model keeps its classes
    # the same training: the labels reached the loss as the model's classes
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), named.parameters()))


# -- 2. validation data checked up front -------------------------------------------------------


def test_validation_data_is_checked_before_training(test_set):
    x, y = test_set.tensors
    model = small_cnn()
    before = [p.clone() for p in model.parameters()]
    bad = x[:10].clone()
    bad[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="`validation_data` must hold finite numbers only, "
                                         "got 1 NaN"):
        eq.fit(model, (x, y), validation_data=(bad, y[:10]), verbose=False)
    lenet = nn.Sequential(nn.Conv2d(1, 4, 5), nn.MaxPool2d(2), nn.Conv2d(4, 4, 5),
                          nn.Flatten(), nn.LazyLinear(10))
    lenet(x[:1])
    with pytest.raises(ValueError, match=r"cannot run on the images of `validation_data` \(a "
                                         r"batch of shape \(1, 1, 6, 6\)\)"):
        eq.fit(lenet, (x, y), validation_data=(x[:10, :, :6, :6], y[:10]), verbose=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- 3. labels out of range in evaluation -------------------------------------------------------


def test_evaluate_refuses_labels_beyond_the_model(test_set):
    x, y = test_set.tensors
    with pytest.raises(ValueError, match=r"`data`: labels must be class indices from 0 to 4 .*"
                                         r"got labels from 0 to 9"):
        eq.evaluate(small_cnn(classes=5), (x, y), rotations=[0])
    with pytest.raises(ValueError, match="from 0 to 9"):
        check_label_range(torch.tensor([0, 10]), 10, "data")


# -- 4. predict on a model that is not a classifier ----------------------------------------------


def test_predict_refuses_a_model_whose_output_is_not_n_by_classes():
    with pytest.raises(ValueError, match=r"logits of shape \(N, num_classes\) for N = 2 images, "
                                         r"got shape \(2, 3, 8, 8\)"):
        eq.predict(nn.Conv2d(1, 3, 3, padding=1), torch.rand(2, 1, 8, 8))


# -- 5. complex images --------------------------------------------------------------------------


def test_complex_images_are_refused():
    x = torch.rand(4, 1, 8, 8, dtype=torch.complex64)
    with pytest.raises(TypeError, match="`data`: images must hold real numbers, got complex"):
        eq.fit(small_cnn(), (x, torch.zeros(4, dtype=torch.long)), verbose=False)
    with pytest.raises(TypeError, match="`data`: images must hold real numbers"):
        eq.evaluate(small_cnn(), (x, torch.zeros(4, dtype=torch.long)))


# -- 17. the model's own shape errors name the argument ------------------------------------------


@pytest.mark.parametrize("augment, message", [
    (lambda b: b.repeat(1, 3, 1, 1), r"`augment` must return a batch of 8 images with 1 "
                                     r"channel\(s\).*got shape \(8, 3, 28, 28\)"),
    (lambda b: b.flatten(1), r"`augment` must return .*got shape \(8, 784\)"),
    (lambda b: b[:, :, :4, :4], r"cannot run on the images of `augment` \(a batch of shape "
                                r"\(8, 1, 4, 4\)\)"),
])
def test_bad_augment_output_names_augment(test_set, augment, message):
    x, y = test_set.tensors
    lenet = nn.Sequential(nn.Conv2d(1, 4, 5), nn.Conv2d(4, 4, 5), nn.Flatten(),
                          nn.Linear(4 * 20 * 20, 10))
    with pytest.raises(ValueError, match=message):
        eq.fit(lenet, (x[:8], y[:8]), batch_size=8, augment=augment, verbose=False)


@pytest.mark.parametrize("head, got", [
    (nn.Identity(), r"\(8, 4, 28, 28\)"), (nn.Flatten(0), r"\(25088,\)")])
def test_fit_names_a_model_output_of_the_wrong_shape(test_set, head, got):
    x, y = test_set.tensors
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), head)
    message = (r"`model` must return logits of shape \(N, num_classes\) for the 8 "
               rf"image\(s\) of `data`, got shape {got}")
    with pytest.raises(ValueError, match=message):
        eq.fit(model, (x[:8], y[:8]), batch_size=8, verbose=False)


def test_predict_gives_the_channels_last_hint_for_a_sequential():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(ValueError, match=r"channels last\?.*aperm"):
        eq.predict(model, torch.rand(2, 8, 8, 3))


def test_callbacks_of_the_wrong_arity_fail_before_training(test_set):
    x, y = test_set.tensors
    with pytest.raises(
        TypeError,
        match=r"`callbacks` must be a function of 1 argument\(s\), "
        r"got a function of \(\)",
    ):
        eq.fit(small_cnn(), (x[:8], y[:8]), callbacks=[lambda: None], verbose=False)
    with pytest.raises(
        TypeError,
        match=r"`on_step_end` must be a function of 1 argument\(s\), "
        r"got a function of \(epoch, step\)",
    ):
        eq.lambda_callback(on_step_end=lambda epoch, step: None)
    with pytest.raises(TypeError, match=r"`metrics` must be a function of 2 argument\(s\)"):
        eq.fit(small_cnn(), (x[:8], y[:8]), metrics={"m": lambda logits: 0}, verbose=False)


def test_predict_on_an_empty_batch_names_x():
    class NoEmpty(nn.Module):  # as escnn's modules, which cannot take 0 images
        def forward(self, x):
            if x.shape[0] == 0:
                raise RuntimeError("cannot reshape tensor of 0 elements")
            return x.flatten(1)[:, :3]

    with pytest.raises(ValueError, match=r"`x` holds no images \(shape \(0, 1, 4, 4\)\)"):
        eq.predict(NoEmpty(), torch.rand(0, 1, 4, 4))
    assert eq.predict(small_cnn(), torch.rand(0, 1, 8, 8)).shape == (0, 10)
