"""Tests for equivariance.data (Fashion-MNIST loading and the shipped subset)."""

import gzip

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance.data import fashion_mnist as D


def test_subset_shapes_ranges_and_balance():
    train = eq.load_fashion_mnist("train", root="subset")
    test = eq.load_fashion_mnist("test", root="subset")
    assert train.images.shape == (2000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    assert float(train.images.max()) == 1.0
    assert train.class_counts() == [200] * 10 and test.class_counts() == [100] * 10
    assert train.source == "subset"
    images, labels = train.tensors
    assert images is train.images and labels is train.labels
    x0, y0 = train[0]
    assert x0.shape == (1, 28, 28) and int(y0) in range(10)
    assert len(train[:10]) == 10


def test_limit_and_bad_arguments():
    assert len(eq.load_fashion_mnist("test", root="subset", limit=7)) == 7
    with pytest.raises(ValueError, match="split"):
        eq.load_fashion_mnist("validation", root="subset")
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="limit"):
            eq.load_fashion_mnist("test", root="subset", limit=bad)
    with pytest.raises(FileNotFoundError, match="root"):
        eq.load_fashion_mnist("test", root="/nonexistent/folder")
    with pytest.raises(TypeError, match="root"):
        eq.load_fashion_mnist("test", root=3)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        eq.load_fashion_mnist("test", root=tmp_path)
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    D.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    D.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 3], dtype=np.uint8))
    ds = eq.load_fashion_mnist("test", root=tmp_path)
    assert torch.allclose(ds.images[:, 0] * 255, torch.as_tensor(images, dtype=torch.float32))
    assert ds.labels.tolist() == [1, 2, 3]
    # labels file with the images' magic number
    D.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", images)
    with pytest.raises(ValueError, match="magic number"):
        eq.load_fashion_mnist("test", root=tmp_path)
    # counts that disagree
    D.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        eq.load_fashion_mnist("test", root=tmp_path)
    # truncated data
    raw = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    D.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 3], dtype=np.uint8))
    with pytest.raises(ValueError, match="truncated"):
        eq.load_fashion_mnist("test", root=tmp_path)
    # not gzip, not IDX
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="corrupt"):
        eq.load_fashion_mnist("test", root=tmp_path)


def test_environment_variable_and_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=D.ENV_VAR):
        eq.load_fashion_mnist("test")
    monkeypatch.delenv(D.ENV_VAR)
    monkeypatch.setattr(D, "DEBIAN_ROOT", tmp_path)
    with pytest.warns(D.SubsetWarning, match="subset"):
        ds = eq.load_fashion_mnist("test", limit=5)
    assert ds.source == "subset" and len(ds) == 5


def test_subset_is_reproducible(tmp_path):
    kept = D.make_subset(D.SUBSET_ROOT, tmp_path, per_class={"test": 10})
    assert len(kept["test"]) == 100
    again = tmp_path / "again"
    D.make_subset(D.SUBSET_ROOT, again, per_class={"test": 10})
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (tmp_path / name).read_bytes() == (again / name).read_bytes()
    assert eq.load_fashion_mnist("test", root=tmp_path).class_counts() == [10] * 10


@pytest.mark.skipif(not D._complete(D.DEBIAN_ROOT), reason="dataset-fashion-mnist not installed")
def test_full_set():
    ds = eq.load_fashion_mnist("test", limit=50)
    assert ds.source == "full" and ds.images.shape == (50, 1, 28, 28)


def test_as_tensors_forms_and_finiteness():
    images = torch.rand(3, 1, 4, 4)
    labels = [0, 2, 1]
    for data in ((images, labels), {"images": images, "labels": labels},
                 {"x": images.numpy(), "y": np.array(labels)},
                 torch.utils.data.TensorDataset(images, torch.tensor(labels))):
        x, y = eq.as_tensors(data)
        assert torch.equal(x, images) and y.tolist() == labels and y.dtype == torch.int64
    assert eq.as_tensors(((images * 255).to(torch.uint8), labels))[0].dtype == torch.float32
    bad = images.clone()
    bad[1, 0, 0, 0] = float("inf")
    assert eq.as_tensors((bad, labels))[0].shape == (3, 1, 4, 4)  # fit checks per step
    with pytest.raises(ValueError,
                       match="`test` must hold finite numbers only, got 1 NaN or infinite"):
        eq.as_tensors((bad, labels), "test", finite=True)
    with pytest.raises(ValueError, match="`data`: labels must be whole numbers"):
        eq.as_tensors((images, [0.5, 1, 2]))
    with pytest.raises(TypeError, match="`data` must be"):
        eq.as_tensors("images")


def test_holdout_is_a_seeded_split_keeping_the_order():
    from equivariance.data import holdout

    x, y = torch.arange(20.0).reshape(20, 1), torch.arange(20)
    (xt, yt), (xv, yv) = holdout(x, y, 0.25, seed=1)
    assert len(yv) == 5 and len(yt) == 15
    assert sorted(yt.tolist() + yv.tolist()) == list(range(20))
    assert yv.tolist() == sorted(yv.tolist()) and torch.equal(xv[:, 0].long(), yv)
    assert torch.equal(holdout(x, y, 0.25, seed=1)[1][1], yv)
    assert not torch.equal(holdout(x, y, 0.25, seed=2)[1][1], yv)
    for bad in (0.0, 1.0, -0.5, "0.2", True):
        with pytest.raises(ValueError, match="`validation_data` must be data"):
            holdout(x, y, bad, seed=1)
