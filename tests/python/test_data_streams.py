"""fit, evaluate, predict and rotation_benchmark on data read batch by batch (image
folders, any Dataset, IterableDataset or DataLoader); what a trained model knows of
its input; the command line on an image folder."""

from __future__ import annotations

import warnings

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance.__main__ import main
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset


def small_net(in_channels: int = 1, classes: int = 3, size: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * (size - 2) ** 2, classes))


@pytest.fixture
def folder(tmp_path):
    """A folder of 30 grey 8x8 PNGs in 3 classes."""
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (tmp_path / c).mkdir()
        for i in range(10):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / c / f"{i}.png")
    return tmp_path


class Pairs(Dataset):
    """A map-style data set of tensors (not a TensorDataset: read item by item)."""

    def __init__(self, x, y, broken=None):
        self.x, self.y, self.broken = x, y, broken

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        if self.broken == "image only":
            return self.x[i]
        return self.x[i], int(self.y[i])


class Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y.tolist()))


def _close(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.allclose(p, q, rtol=1e-5, atol=1e-6) for p, q in zip(a.parameters(),
                                                                           b.parameters()))


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_folder_trains_as_its_images_in_memory_with_validation_by_file(folder):
    ds = eq.image_folder(folder)
    x, y = ds.load()
    runs = []
    for data, workers in ((ds, 0), ((x, y), 0), (ds, 1)):
        m = small_net()
        h = eq.fit(m, data, epochs=2, batch_size=8, seed=2, validation_data=0.2, verbose=False,
                   num_workers=workers)
        runs.append((m, h))
    (a, ha), (b, hb), (c, hc) = runs
    # the same training to float rounding (a folder's batch is made in another layout)
    assert _close(a, b) and _same(a, c)
    assert ha.val_loss == pytest.approx(hb.val_loss, rel=1e-6) and ha.val_loss == hc.val_loss
    assert len(ha.loss) == 2 * 3  # 24 files in batches of 8
    assert a.class_names == ["a", "b", "c"] and not hasattr(b, "class_names")
    assert a.input_shape == (1, 8, 8) and a.input_range[0] >= 0 and a.input_range[1] <= 1


def test_any_map_style_dataset_iterable_or_dataloader_trains(folder):
    x, y = eq.image_folder(folder).load()
    a, b = small_net(), small_net()
    eq.fit(a, Pairs(x, y), epochs=1, batch_size=8, seed=1, verbose=False)
    eq.fit(b, (x, y), epochs=1, batch_size=8, seed=1, verbose=False)
    assert _same(a, b)
    m = small_net()
    h = eq.fit(m, Stream(x, y), epochs=2, batch_size=7, verbose=False)
    assert len(h.loss) == 2 * 5  # 30 images in batches of 7
    loader = DataLoader(Pairs(x, y), batch_size=10, shuffle=False)
    h = eq.fit(small_net(), loader, epochs=1, verbose=False)  # the loader's batches as given
    assert len(h.loss) == 3
    h = eq.fit(small_net(), loader, epochs=1, verbose=False, validation_data=loader)
    assert h.val_accuracy[0] >= 0


def test_evaluate_predict_and_benchmark_take_a_folder(folder):
    ds = eq.image_folder(folder)
    x, y = ds.load()
    m = small_net()
    eq.fit(m, ds, epochs=1, batch_size=10, verbose=False)
    for a, b in zip(eq.evaluate(m, ds, batch_size=7), eq.evaluate(m, (x, y), batch_size=7)):
        assert a["correct"] == b["correct"] and a["n"] == b["n"] == 30
        assert a["invariance_error"] == pytest.approx(b["invariance_error"], rel=1e-5)
    assert eq.evaluate(m, Stream(x, y), rotations=[0])[0]["n"] == 30
    assert torch.allclose(eq.predict(m, ds, batch_size=7), eq.predict(m, x), atol=1e-6)
    assert eq.predict(m, ds, type="class", names=True)[0] in ("a", "b", "c")
    result = eq.rotation_benchmark(["SimpleCNN"], epochs=1, batch_size=10, data=(ds, ds),
                                   verbose=False)
    assert result.rows[0]["model"] == "SimpleCNN" and result.settings["train_size"] == 30
    with pytest.raises(ValueError, match="`data` must be None .* or a pair"):
        eq.rotation_benchmark(["SimpleCNN"], data=ds, verbose=False)


def test_a_data_set_returning_something_else_than_pairs_is_named(folder):
    x, y = eq.image_folder(folder).load()
    with pytest.raises(ValueError, match=r"`data` must return \(image, label\) pairs, got Tensor"):
        eq.fit(small_net(), Pairs(x, y, broken="image only"), verbose=False)
    with pytest.raises(ValueError, match="`validation_data` as a fraction needs `data` with "
                                         "indices"):
        eq.fit(small_net(), Stream(x, y), validation_data=0.2, verbose=False)


def test_labels_out_of_range_in_a_stream_fail_at_their_batch(folder):
    x, y = eq.image_folder(folder).load()
    y = y.clone()
    y[17] = 5  # the third batch of 7 holds it; the model has 3 logits
    with pytest.raises(ValueError, match=r"`data`: the batch at epoch 1, step 3 holds label 5, "
                                         r"but the model returns 3 logits"):
        eq.fit(small_net(), Stream(x, y), batch_size=7, verbose=False)
    y[17] = -1
    with pytest.raises(ValueError, match=r"labels must be class indices from 0, got -1 \(the "
                                         r"batch at epoch 1, step 3\)"):
        eq.fit(small_net(), Stream(x, y), batch_size=7, verbose=False)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_file_stops_training_naming_it(folder, workers):
    ds = eq.image_folder(folder)
    bad = ds.files[13]
    with open(bad, "r+b") as fh:
        data = fh.read()
        fh.seek(0)
        fh.truncate()
        fh.write(data[:70])
    with pytest.raises(ValueError, match=f"image file {bad}: cannot be decoded"):
        eq.fit(small_net(), ds, batch_size=8, verbose=False, num_workers=workers)


def test_channels_of_a_folder_must_match_the_model(folder):
    with pytest.raises(ValueError, match=r"`data`: the images have 1 channel\(s\) but the model "
                                         r"takes 3: read them with channels = 3"):
        eq.fit(small_net(3), eq.image_folder(folder), verbose=False)
    m = small_net(3)
    eq.fit(m, eq.image_folder(folder, channels=3), epochs=1, verbose=False)
    assert m.input_shape == (3, 8, 8)


def test_a_trained_model_knows_its_input(folder, tmp_path):
    ds = eq.image_folder(folder)
    x, _ = ds.load()
    m = small_net()
    eq.fit(m, ds, epochs=1, verbose=False)
    path = eq.save_model(m, tmp_path / "m.pt", )
    loaded = eq.load_model(path, model=small_net())
    assert loaded.input_shape == (1, 8, 8) and loaded.input_range == m.input_range
    # another size: an error for a model that cannot take it
    with pytest.raises(ValueError, match=r"trained on images of 8x8 .* does not take images of "
                                         r"10x10: resize them"):
        eq.predict(loaded, torch.rand(2, 1, 10, 10))
    with pytest.raises(ValueError, match=r"`x` must be images of shape \(N, 1, H, W\)"):
        eq.predict(loaded, torch.rand(2, 3, 8, 8))
    # values far outside the training range: a warning
    with pytest.warns(UserWarning, match="far outside the range .*divide them by 255"):
        eq.predict(loaded, x * 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eq.predict(loaded, x * 1.05)  # close to the range: no warning


def test_a_model_that_takes_any_size_warns_once(folder):
    torch.manual_seed(0)  # fully convolutional: any size goes through
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(4, 3))
    eq.fit(m, eq.image_folder(folder), epochs=1, verbose=False)
    with pytest.warns(UserWarning, match="trained on images of 8x8 and is given images of 12x12"):
        eq.predict(m, torch.rand(2, 1, 12, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eq.predict(m, torch.rand(2, 1, 12, 12))  # once


def test_one_image_c_h_w_is_one_image_of_a_model_of_c_channels(folder):
    m = small_net(3)
    eq.fit(m, eq.image_folder(folder, channels=3), epochs=1, verbose=False)
    assert eq.predict(m, torch.rand(3, 8, 8)).shape == (1, 3)
    grey = small_net()
    assert eq.predict(grey, torch.rand(3, 8, 8)).shape == (3, 3)  # 3 grey images
    assert eq.predict(grey, torch.rand(8, 8)).shape == (1, 3)  # one grey image


def test_cli_fit_on_an_image_folder_keeps_the_class_names(folder, tmp_path, capsys):
    path = tmp_path / "model.pt"
    assert main(["fit", "--data", str(folder), "--model", "SimpleCNN", "--epochs", "2",
                 "--size", "12", "--channels", "3", "--validation", "0.2", "--patience", "1",
                 "--batch-size", "8", "--save", str(path), "--quiet"]) == 0
    model = eq.load_model(path)
    assert model.class_names == ["a", "b", "c"] and model.input_shape == (3, 12, 12)
    names = eq.predict(model, eq.image_folder(folder, size=12, channels=3), type="class",
                       names=True)
    assert set(names) <= {"a", "b", "c"} and len(names) == 30
    assert main(["fit", "--data", str(tmp_path / "nowhere"), "--quiet"]) == 1
    assert "`--data`: folder not found" in capsys.readouterr().err
    assert main(["fit", "--data", "subset", "--size", "3", "--quiet"]) == 1
    assert "`--size` and `--channels` apply to a folder of images" in capsys.readouterr().err
