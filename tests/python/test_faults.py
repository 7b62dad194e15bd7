"""Faults of single-process calls, by their real mechanism: numpy scalars as numbers,
FIFOs and other files that are not model files, sizes that cannot fit, output paths
that cannot be written, loading messages."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import equivariance as eq
import numpy as np
import pytest
import torch
from equivariance._validation import is_real_number, positive_real, unit_interval
from torch import nn

CORE = Path(__file__).resolve().parents[2] / "inst" / "python"
ENV = dict(os.environ, PYTHONPATH=str(CORE), OMP_NUM_THREADS="1")


def _data(n: int = 12):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


# -- item 11: numpy scalars are numbers ------------------------------------------------------


@pytest.mark.parametrize("value", [np.float32(0.25), np.float64(0.25), np.float16(0.25),
                                   np.array(0.25), torch.tensor(0.25)])
def test_numpy_scalars_are_numbers_everywhere(value):
    assert is_real_number(value)
    assert positive_real(value, "lr") == pytest.approx(0.25, rel=1e-3)
    assert unit_interval(value, "p") == pytest.approx(0.25, rel=1e-3)
    history = eq.fit(_net(), _data(), batch_size=np.int64(4), lr=np.float32(1e-2),
                     epochs=np.int32(1), validation_data=value, seed=np.uint8(1), verbose=False)
    assert len(history.val_loss) == 1
    assert not is_real_number(np.bool_(True)) and not is_real_number(np.array([0.25]))


def test_numpy_integers_as_layer_sizes_and_memory_levels():
    model = _net()
    model.in_channels = np.int64(1)  # what a user's own module may hold
    from equivariance.devices import model_in_channels
    from equivariance.memory import memory_grew

    assert model_in_channels(model) == 1 and type(model_in_channels(model)) is int
    memory_grew(np.float32(64))  # accepted, not "must be a non-negative number"


# -- item 7: files that are not regular files are refused, not waited on ---------------------


def test_load_model_refuses_a_fifo_and_devices_without_blocking(tmp_path):
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would wait forever
    with pytest.raises(ValueError, match=r"`path` must be a regular file, got a named pipe "
                                         r"\(FIFO\) .*model.pt'"):
        eq.load_model(fifo)
    with pytest.raises(ValueError, match="`path` must be a regular file, got a character device"):
        eq.load_model("/dev/zero")  # would never end
    link = tmp_path / "link.pt"
    link.symlink_to(fifo)  # a link is followed, and what it points at is checked
    with pytest.raises(ValueError, match="named pipe"):
        eq.load_model(link)
    with pytest.raises(ValueError, match="`path` must be a file to write, got a named pipe"):
        eq.save_model(_net(), fifo)


# -- item 8: sizes that cannot fit ---------------------------------------------------------


def test_models_too_large_for_the_machine_are_refused_naming_the_argument():
    from equivariance.escnn_models import EscnnCNN

    with pytest.raises(ValueError, match=r"`N` = 1099511627776 needs .* of memory for the "
                                         r"filters of its convolutions"):
        EscnnCNN(N=2**40)  # before escnn builds the group (which would hang)
    with pytest.raises(ValueError, match=r"`N` = 4611686018427387904 needs"):
        EscnnCNN(N=2**62, flips=True)
    with pytest.raises(ValueError, match=r"`widths` = \(1000000000000, 8, 8\) needs 36.0 TB of "
                                         r"memory for its weights and buffers, more than the"):
        eq.C4CNN(widths=(10**12, 8, 8))
    with pytest.raises(ValueError, match=r"`widths` = \(1000000, 1000000, 8\) needs 36.0 TB"):
        eq.SimpleCNN(widths=(10**6, 10**6, 8))
    with pytest.raises(ValueError, match=r"`num_channels` = 10000000000000 needs"):
        eq.GroupMap(2, 10**13)
    eq.C4CNN(widths=(2, 2, 2))  # and small ones are built as before


def test_an_allocation_the_guard_cannot_foresee_meets_the_address_space_cap(monkeypatch):
    import resource

    from equivariance._sizes import LIMIT_ENV, guarded_build

    monkeypatch.setenv(LIMIT_ENV, str(10**8))  # this build may take 100 MB (+ 1 GiB slack)
    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(ValueError, match=r"`width` = 28000 needs more memory for its weights "
                                         r"and buffers than the 100.0 MB .*one tensor alone "
                                         r"asked for 3.1 GB"):
        with guarded_build({"width": 28000, "depth": 2}):
            torch.ones(28000, 1).expand(28000, 28000).contiguous()  # not a factory call
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the cap is lifted afterwards


def test_a_crafted_model_file_cannot_make_the_loader_allocate(tmp_path, monkeypatch):
    from equivariance import persistence
    from equivariance._sizes import LIMIT_ENV

    contents = persistence._contents(eq.SimpleCNN(widths=(2, 2, 2)), None, None)
    contents["architecture"] = {"class": "SimpleCNN",
                                "arguments": {"widths": (10**12, 8, 8)}}
    contents["state_dict"] = {}
    path = tmp_path / "crafted.pt"
    torch.save(contents, path)
    assert path.stat().st_size < 4000
    with pytest.raises(ValueError, match=r"crafted.pt': cannot build a SimpleCNN from the "
                                         r"arguments in the model file: `widths` = "
                                         r"\(1000000000000, 8, 8\) needs 36.0 TB"):
        eq.load_model(path)
    # a file whose records unpack beyond the memory available is not read at all
    good = tmp_path / "good.pt"
    eq.save_model(eq.SimpleCNN(widths=(2, 2, 2)), good)
    monkeypatch.setenv(LIMIT_ENV, "1000")
    with pytest.raises(ValueError, match=r"good.pt' is not a model file this machine can load: "
                                         r"its contents unpack to .* KB, more than the 1.0 KB"):
        eq.load_model(good)


# -- item 15: output paths are checked before the work; stale temporaries are removed -------


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder in which even root cannot create a file: immutable (``chattr +i``)
    where the file system allows it, else ``/proc`` (no new files, for anyone)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                            check=False).returncode == 0 if shutil.which("chattr") else False
    if not locked and os.geteuid() != 0:
        folder.chmod(0o500)
        locked = True
    yield folder if locked else Path("/proc")
    if locked:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        folder.chmod(0o700)


def test_output_paths_are_checked_before_training(tmp_path, unwritable_folder, capsys):
    from equivariance.__main__ import main

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for bad, why in [(unwritable_folder / "m.pt", "cannot be written: no file can be created"),
                     (a_file / "m.pt", "must be in a folder"),
                     (tmp_path / "no" / "m.pt", "is in a folder that does not exist")]:
        with pytest.raises(ValueError, match=f"`path` .*{why}"):
            eq.save_model(_net(), bad)
        # the command line fails at once (no data is even read: --data names nothing)
        assert main(["fit", "--save", str(bad), "--data", str(tmp_path / "none")]) == 1
        err = capsys.readouterr().err
        assert "`--save`" in err and why in err, err
        assert main(["benchmark", "--csv", str(bad), "--data", str(tmp_path / "none")]) == 1
        err = capsys.readouterr().err
        assert "`--csv`" in err and why in err, err
        with pytest.raises(ValueError, match=f"`csv` .*{why}"):
            eq.rotation_benchmark(["SimpleCNN"], csv=bad, root=str(tmp_path / "none"))
        # every writer of the package: callbacks and the ONNX export check theirs at once
        for make in (eq.csv_logger, eq.checkpoint,
                     lambda p: eq.save_onnx(_net(), p, input_shape=(1, 8, 8))):
            with pytest.raises(ValueError, match=f"`path` .*{why}"):
                make(bad)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the probe is gone


KILLED_SAVE = """
import sys, time
from equivariance._files import atomic_writer
with atomic_writer(sys.argv[1]) as fh:
    fh.write(b"half a model")
    fh.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def _writer(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_a_killed_save_leaves_a_temporary_file_that_the_next_save_removes(tmp_path):
    killed, running = _writer(tmp_path / "a.pt"), _writer(tmp_path / "b.pt")
    try:
        killed.send_signal(signal.SIGKILL)  # no finally: its temporary file stays
        killed.wait()
        left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(left) == 2 and not (tmp_path / "a.pt").exists()
        eq.save_model(_net(), tmp_path / "c.pt")  # the next save to that folder
        kept = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        # the killed writer's file is gone; the running writer's file (locked) is kept
        assert len(kept) == 1 and kept[0].startswith(".b.pt.")
        assert isinstance(eq.load_model(tmp_path / "c.pt", model=_net()), nn.Module)
    finally:
        running.kill()
        running.wait()
        killed.wait()


# -- item 16: loading errors say what the file is not and what to do --------------------------


TORCH_ADVICE = ("weights_only", "file an issue", "add_safe_globals", "safe_globals",
                "torch.load", "torch.serialization", "allowlist")


class Mine:
    """A class of the test module: pickled by reference."""


def test_loading_errors_never_repeat_torchs_advice(tmp_path):
    cases = {
        "whole.pt": (lambda p: torch.save(nn.Linear(2, 2), p),
                     r"holds Python objects \(it refers to torch.nn.modules.linear.Linear\).*"
                     r"Save the model with save_model\(\)"),
        "obj.pt": (lambda p: torch.save({"a": Mine()}, p), "holds Python objects"),
        "array.npy": (lambda p: np.save(p, np.zeros(3)), "it is a NumPy array file"),
        "pickle.pkl": (lambda p: p.write_bytes(pickle.dumps(Mine)), "it is a Python pickle"),
        "empty.pt": (lambda p: p.write_bytes(b""), "it is empty"),
        "notes.txt": (lambda p: p.write_text("hello\n"), "it is a text file"),
        "picture.png": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50)),
                        "it is an image"),
    }
    for name, (write, expected) in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(ValueError) as err:
            eq.load_model(path)
        message = str(err.value)
        assert re.search(expected, message), message
        assert not any(a.lower() in message.lower() for a in TORCH_ADVICE), message
        assert "load_model() reads" in message or "save_model()" in message
    good = tmp_path / "good.pt"
    eq.save_model(_net(), good)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ValueError, match="damaged.pt' is damaged or truncated .*: save the "
                                         "model again"):
        eq.load_model(damaged)


def test_an_idx_file_that_is_a_fifo_is_refused(tmp_path):
    from equivariance.data.fashion_mnist import read_idx

    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="`root` must be a regular file, got a named pipe"):
        read_idx(fifo, 2051)


def test_image_folders_and_lists_refuse_fifos_without_reading_them(tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / label / "0.png")
    os.mkfifo(tmp_path / "a" / "1.png")  # an image name, but a pipe nobody writes to
    with pytest.raises(ValueError, match=r"1.png: not a regular file but a named pipe"):
        eq.image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"1.png: not a regular file but a named pipe"):
        eq.image_files([tmp_path / "a" / "1.png", tmp_path / "b" / "0.png"], [0, 1])
    os.mkfifo(tmp_path / "list.csv")
    with pytest.raises(ValueError, match=r"`files` .* got a named pipe"):
        eq.image_files(tmp_path / "list.csv")
