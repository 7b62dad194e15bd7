"""Faults of multi-process training, by their real mechanism: a killed caller, a killed
or hung rank, a NaN in one rank's shard; and what must travel to the ranks (early
stopping with synchronised batch norm, the regularizer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import distributed_cases as cases
import equivariance as eq
import pytest
import torch

HERE = Path(__file__).resolve().parent
CORE = HERE.parents[1] / "inst" / "python"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CORE), str(HERE)]), OMP_NUM_THREADS="1")

CALLER = """
import sys
import distributed_cases as cases
import equivariance as eq
eq.parallel_fit(cases.small_net(), cases.data(16), workers=2, batch_size=2, epochs=1000,
                augment=cases.Slow(sys.argv[1]), verbose=False, timeout=600)
"""


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _caller_of(folder: Path) -> int | None:
    """The pid of the caller that made a job folder (``None``: not known, or gone)."""
    from equivariance.training.parallel.faults import CALLER_FILE

    try:
        return int((folder / CALLER_FILE).read_text().split(":")[0])
    except (OSError, ValueError):
        return None


def _wait(condition, seconds: float) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` have passed (a deadline against
    hanging the suite, not a timing measurement)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_killing_the_caller_ends_torchrun_and_every_rank(tmp_path):
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(tmp_path)], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        files = [tmp_path / "rank0", tmp_path / "rank1"]
        assert _wait(lambda: all(f.exists() for f in files), 240), "the ranks never started"
        pids = [int(v) for f in files for v in f.read_text().split()]  # ranks and torchrun
        assert all(_running(p) for p in pids)
        caller.send_signal(signal.SIGKILL)  # no finally, no atexit: only the watchers act
        caller.wait()
        assert _wait(lambda: not any(_running(p) for p in pids), 30), \
            f"orphans left: {[p for p in pids if _running(p)]}"
        # its job folder is gone, or goes when the next job starts
        from equivariance.training.parallel.faults import clean_stale_job_folders

        clean_stale_job_folders(tempfile.gettempdir())
        assert not any(_caller_of(f) == caller.pid
                       for f in Path(tempfile.gettempdir()).glob("equivariance-workers-*"))
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()


def test_the_rank_that_fails_first_is_named(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])
    kw = {"workers": 2, "batch_size": 8, "verbose": False}
    # a NaN in rank 1's shard: every rank stops, the message blames rank 1's images
    with pytest.raises(ValueError, match=r"^rank 1 of 2: .*rank 1's share of the input batch "
                                         r"held 1 NaN"):
        eq.parallel_fit(cases.small_net(), cases.data(8), augment=cases.NanOnRank(1),
                        timeout=60, **kw)
    # rank 1 killed: rank 0's "Connection reset by peer" is its echo
    with pytest.raises(RuntimeError, match=r"^rank 1 of 2 ended without raising an error "
                                           r"\(killed by signal 9 \(SIGKILL\)\)"):
        eq.parallel_fit(cases.small_net(), cases.data(8), augment=cases.KillRank(1),
                        timeout=60, **kw)


def test_a_hung_rank_and_a_short_timeout_are_named(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])
    kw = {"workers": 2, "batch_size": 8, "verbose": False}
    with pytest.raises(RuntimeError, match=r"^rank 1 of 2 did not reach the other ranks within "
                                           r"`timeout` = 3 seconds: it was still busy in "
                                           r"__call__ \(distributed_cases.py"):
        eq.parallel_fit(cases.small_net(), cases.data(8), augment=cases.FailOnRank(1, hang=120),
                        timeout=3, **kw)
    with pytest.raises(RuntimeError, match=r"did not all meet within `timeout` = 0.01 seconds"):
        eq.parallel_fit(cases.small_net(), cases.data(8), timeout=0.01, **kw)


def test_early_stopping_and_the_regularizer_with_workers_on_a_batch_norm_model(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])

    def run(**kw):
        torch.manual_seed(0)
        model = eq.C4CNN(1, 3, widths=(2, 2, 3))  # batch norm, synchronised by default
        # the default distance (p = 2) must travel to the ranks
        reg = eq.EquivarianceRegularizer(model, (1, 12, 12),
                                         [(eq.transforms.rot90(1), 0, 0.1)], n=4)
        history = eq.parallel_fit(model, cases.data(40), epochs=3, batch_size=8, lr=0.05, seed=2,
                      regularizer=reg, validation_data=0.2, patience=1,
                      verbose=False, device="cpu", **kw)
        return model, history

    model, history = run(workers=2, timeout=120)
    assert history.best_epoch is not None
    # the best epoch's weights are back: the validation loss is that epoch's
    from equivariance.data import holdout
    from equivariance.training.metrics import validation_figures

    _, (xv, yv) = holdout(*cases.data(40), 0.2, 2)
    loss = validation_figures(model, xv, yv, 8, [])["val_loss"]
    assert loss == pytest.approx(history.val_loss[history.best_epoch - 1], rel=1e-5)
    assert [type(m).__name__ for m in model.modules()].count("SyncFieldBatchNorm") == 0
