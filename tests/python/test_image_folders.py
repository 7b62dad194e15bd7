"""Image folders and image files: formats, conversion, laziness and every bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance.data.folders import ImageFileError
from PIL import Image


def _write(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def _grey(seed: int, h: int = 8, w: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def make_folder(root: Path, classes=("b_square", "a_circle"), per_class: int = 3,
                h: int = 8, w: int = 8, ext: str = "png") -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _write(root / name / f"{i}.{ext}", _grey(10 * c + i, h, w))
    return root


def test_classes_come_from_sorted_sub_folders_and_images_are_in_0_1(tmp_path):
    make_folder(tmp_path)
    ds = eq.image_folder(tmp_path)
    assert ds.classes == ["a_circle", "b_square"]
    assert len(ds) == 6 and ds.targets == [0, 0, 0, 1, 1, 1]
    assert ds.input_shape == (1, 8, 8)
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (1, 8, 8) and y == 0
    # the file's own bytes, divided by 255
    assert torch.equal(x[0], torch.from_numpy(_grey(10 * 1 + 0)).float() / 255)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert ds.class_counts() == [3, 3]


def test_it_is_lazy_a_file_spoilt_after_the_listing_fails_when_read_naming_it(tmp_path):
    make_folder(tmp_path)
    ds = eq.image_folder(tmp_path)
    bad = Path(ds.files[4])
    bad.write_bytes(bad.read_bytes()[:60])  # header kept, pixels cut off
    assert ds[0][0].shape == (1, 8, 8)  # the other files still read
    with pytest.raises(ImageFileError, match=f"image file {bad}.*corrupt or truncated"):
        ds[4]


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"),
                                     ("tif", "TIFF")])
def test_formats_8_bit_grey_and_rgb(tmp_path, ext, fmt):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    _write(tmp_path / "c" / f"x.{ext}", rgb, fmt)
    ds = eq.image_folder(tmp_path)
    x = ds[0][0]
    assert ds.channels == 3 and x.shape == (3, 6, 5)
    if fmt != "JPEG":  # lossless: the exact bytes
        assert torch.equal(x, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    grey = eq.image_folder(tmp_path, channels=1)[0][0]
    assert grey.shape == (1, 6, 5)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    if fmt != "JPEG":
        assert np.allclose(grey[0].numpy(), expected)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_images_are_scaled_by_65535(tmp_path, ext):
    a = (np.arange(48).reshape(6, 8) * 1365).astype(np.uint16)
    _write(tmp_path / "c" / f"x.{ext}", a)
    ds = eq.image_folder(tmp_path)
    x = ds[0][0]
    assert ds.channels == 1 and x.shape == (1, 6, 8)
    assert torch.allclose(x[0], torch.from_numpy(a.astype(np.float32) / 65535))
    assert float(x.max()) == pytest.approx(47 * 1365 / 65535)  # not cut to 8 bits
    rgb = eq.image_folder(tmp_path, channels=3, size=(3, 4))[0][0]
    assert rgb.shape == (3, 3, 4) and torch.equal(rgb[0], rgb[2])


def test_mixed_channels_are_refused_naming_the_files_unless_channels_given(tmp_path):
    _write(tmp_path / "a" / "grey.png", _grey(0))
    _write(tmp_path / "b" / "colour.png", np.stack([_grey(1)] * 3, axis=-1))
    with pytest.raises(ValueError, match=r"different channel counts: .*grey\.png has 1 and "
                                         r".*colour\.png has 3; pass `channels = 1`"):
        eq.image_folder(tmp_path)
    assert eq.image_folder(tmp_path, channels=3)[0][0].shape == (3, 8, 8)
    assert eq.image_folder(tmp_path, channels=1)[1][0].shape == (1, 8, 8)
    with pytest.raises(ValueError, match="`channels` must be None .*, 1 .* or 3"):
        eq.image_folder(tmp_path, channels=2)


def test_mixed_sizes_are_refused_naming_the_files_unless_size_given(tmp_path):
    _write(tmp_path / "a" / "small.png", _grey(0, 8, 8))
    _write(tmp_path / "a" / "wide.png", _grey(1, 8, 12))
    with pytest.raises(ValueError, match=r"different sizes: .*small\.png is 8x8 and .*wide\.png "
                                         r"is 8x12.*pass `size`"):
        eq.image_folder(tmp_path)
    ds = eq.image_folder(tmp_path, size=6)
    assert ds.input_shape == (1, 6, 6) and ds[1][0].shape == (1, 6, 6)
    assert eq.image_folder(tmp_path, size=(4, 10))[0][0].shape == (1, 4, 10)
    with pytest.raises(ValueError, match="`size`"):
        eq.image_folder(tmp_path, size=(1, 2, 3))


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="`root`: folder not found"):
        eq.image_folder(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no class sub-folders"):
        eq.image_folder(empty)
    flat = tmp_path / "flat"
    _write(flat / "x.png", _grey(0))
    with pytest.raises(ValueError, match="holds 1 image files directly.*image_files"):
        eq.image_folder(flat)
    no_images = make_folder(tmp_path / "no_images")
    (no_images / "c_empty").mkdir()
    with pytest.raises(ValueError, match="class folder .*c_empty holds no images"):
        eq.image_folder(no_images)


def test_non_image_and_corrupt_files_are_named(tmp_path):
    root = make_folder(tmp_path / "notes")
    (root / "a_circle" / "notes.txt").write_text("hello")
    with pytest.raises(ImageFileError, match=r"notes\.txt: not an image file"):
        eq.image_folder(root)
    root = make_folder(tmp_path / "corrupt")
    (root / "b_square" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageFileError, match=r"broken\.png: not a readable PNG"):
        eq.image_folder(root)
    # hidden files (.DS_Store) are ignored
    root = make_folder(tmp_path / "hidden")
    (root / "a_circle" / ".DS_Store").write_bytes(b"\0")
    assert len(eq.image_folder(root)) == 6


def test_image_files_from_lists_and_from_a_csv_file(tmp_path):
    files = [_write(tmp_path / f"{i}.png", _grey(i)).name for i in range(4)]
    ds = eq.image_files(files, ["dog", "cat", "dog", "cat"], root=tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.targets == [1, 0, 1, 0]
    assert torch.equal(ds[2][0][0], torch.from_numpy(_grey(2)).float() / 255)
    numbered = eq.image_files([str(tmp_path / f) for f in files], [0, 2, 1, 0])
    assert numbered.classes is None and numbered.targets == [0, 2, 1, 0]
    with open(tmp_path / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label"])
        w.writerows([[f, "cat" if i % 2 else "dog"] for i, f in enumerate(files)])
    from_csv = eq.image_files(str(tmp_path / "index.csv"))
    assert from_csv.targets == ds.targets and from_csv.classes == ds.classes


def test_image_files_bad_input(tmp_path):
    files = [str(_write(tmp_path / f"{i}.png", _grey(i))) for i in range(2)]
    with pytest.raises(ValueError, match="one label per file: 2 files, 1 labels"):
        eq.image_files(files, [0])
    with pytest.raises(FileNotFoundError, match="image file not found: .*missing.png"):
        eq.image_files(files + [str(tmp_path / "missing.png")], [0, 1, 0])
    with pytest.raises(ValueError, match="`labels` must be class indices from 0"):
        eq.image_files(files, [-1, 0])
    with pytest.raises(ValueError, match="`files` must be a non-empty list"):
        eq.image_files([], [])
    (tmp_path / "bad.csv").write_text("name,class\na.png,1\n")
    with pytest.raises(ValueError, match="columns `file` and `label`"):
        eq.image_files(str(tmp_path / "bad.csv"))


def test_subset_and_load_keep_the_files_order(tmp_path):
    ds = eq.image_folder(make_folder(tmp_path))
    part = ds.subset([5, 0])
    assert part.files == [ds.files[5], ds.files[0]] and part.targets == [1, 0]
    x, y = part.load()
    assert x.shape == (2, 1, 8, 8) and y.tolist() == [1, 0]
    assert torch.equal(x[0], ds[5][0])


def test_write_image_folder_round_trips_8_bit_images(tmp_path):
    x = torch.randint(0, 256, (5, 3, 4, 6)).float() / 255
    y = torch.tensor([1, 0, 1, 1, 0])
    eq.write_image_folder(x, y, tmp_path, classes=["t-shirt/top", "bag"])
    ds = eq.image_folder(tmp_path)
    assert ds.classes == ["bag", "t-shirt-top"] and ds.input_shape == (3, 4, 6)
    back, labels = ds.load()
    # the files in class order: labels 0 (bag: images 0, 2, 3), then 1
    assert torch.equal(back, x[[0, 2, 3, 1, 4]]) and labels.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="`images` must be"):
        eq.write_image_folder(torch.rand(2, 2, 4, 4), [0, 1], tmp_path)


def test_a_file_deleted_after_the_listing_is_named_as_missing(tmp_path):
    ds = eq.image_folder(make_folder(tmp_path))
    Path(ds.files[1]).unlink()
    with pytest.raises(ImageFileError, match=f"{ds.files[1]}: not found"):
        ds[1]
    with pytest.raises(ImageFileError, match="not found"):
        ds.batch([0, 1])
