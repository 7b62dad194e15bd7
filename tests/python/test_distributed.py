"""Data-parallel training: 2 ranks (gloo, loopback) train like 1 process.

The 2-rank runs start their own processes with torchrun: one run for all the training
cases of distributed_cases.py, and parallel_fit() for the launcher and its faults.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import distributed_cases as cases
import equivariance as eq
import pytest
import torch
from equivariance.__main__ import main
from equivariance.training.parallel import distributed as par
from equivariance.training.parallel.distributed import (
    Ranks,
    Share,
    distributed_ranks,
    training_generators,
)
from equivariance.training.parallel.sync_batchnorm import SyncFieldBatchNorm, sync_batchnorm
from torch import nn

HERE = Path(__file__).resolve().parent
CORE = HERE.parents[1] / "inst" / "python"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CORE), str(HERE)]))


def _relative(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).norm() / b[k].double().norm().clamp_min(1e-12))
               for k in b if b[k].is_floating_point())


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node=2", str(HERE / "distributed_cases.py"), str(out)],
                   env=ENV, check=True, capture_output=True, timeout=300)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def _one_process(name: str):
    model, args = cases.case(name)
    history = eq.fit(model, args.pop("data"), distributed=False, **args)
    return model, history


# -- the correctness target -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "regularized", "map_dataset"])
def test_two_ranks_give_the_weights_of_one_process(ranks, name):
    model, history = _one_process("plain" if name == "map_dataset" else name)
    assert len(history.loss) == 20
    for r in ranks:
        assert _relative(r[name]["state"], model.state_dict()) < 1e-5
        assert r[name]["history"]["steps"]["loss"] == pytest.approx(history.loss, rel=1e-5)
        assert r[name]["history"]["steps"]["reg"] == pytest.approx(history.reg, rel=1e-5, abs=1e-7)
        # the training accuracy counts the images of every rank
        assert r[name]["history"]["epochs"]["accuracy"] == pytest.approx(history.accuracy)
    # one History, the same on every rank
    assert ranks[0][name]["history"] == ranks[1][name]["history"]
    if name == "regularized":
        assert sum(v > 0 for v in history.reg) >= 10  # a draw of 0 quarter turns gives 0


def test_each_rank_reads_only_its_share_of_a_map_style_data_set(ranks):
    reads = [r["map_dataset"]["reads"] for r in ranks]
    n, epochs = cases.data()[0].shape[0], 4
    # every image once per epoch, on one rank: 37 = 19 + 18 per epoch
    assert sorted(reads[0] + reads[1]) == sorted(list(range(n)) * epochs)
    assert len(reads[0]) == 19 * epochs and len(reads[1]) == 18 * epochs


def test_the_loss_travels_with_the_gradients(ranks):
    # every step's loss reached the other rank inside the gradient exchange
    assert [r["loss_collectives"] for r in ranks] == [0, 0]


def test_c4_with_sync_batchnorm_stays_invariant_and_normalises_the_global_batch(ranks):
    r0, r1 = (r["c4_sync_bn"] for r in ranks)
    assert r0["invariance"] < 1e-5 and r1["invariance"] < 1e-5
    # the original batch norm layers are back, with the same statistics on both ranks
    assert "C4BatchNorm2d" in r0["modules"] and "SyncFieldBatchNorm" not in r0["modules"]
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    # batch statistics of the global batch: the losses are those of one process
    _, history = _one_process("c4_sync_bn")
    assert r0["history"]["steps"]["loss"] == pytest.approx(history.loss, rel=1e-5)
    assert r0["history"]["steps"]["reg"] == pytest.approx(history.reg, rel=1e-4, abs=1e-6)


def test_batch_size_must_divide_among_the_ranks(ranks):
    for r in ranks:
        assert "`batch_size` (7)" in r["odd_batch"] and "ranks (2)" in r["odd_batch"]


# -- pieces, in one process ----------------------------------------------------------------


def test_shards_are_disjoint_and_weights_average_to_the_batch_mean():
    index = torch.tensor([5, 1, 4, 0, 3])
    parts = [Ranks(r, 2).shard(index) for r in (0, 1)]
    assert parts[0].tolist() == [5, 4, 3] and parts[1].tolist() == [1, 0]
    assert Ranks(1, 2).shard(index[:1]) is None  # fewer images than ranks
    assert [Ranks(r, 2).weight(len(p), 5) for r, p in enumerate(parts)] == [1.2, 0.8]
    assert Ranks(0, 2).weight(4, 8) == 1.0 and Ranks().weight(5, 5) == 1.0
    # the regularizer's first 3 points: 2 on rank 0, 1 on rank 1; none: one point, weight 0
    share = Share(parts[1], 2, 5, Ranks(1, 2))
    assert Share(parts[0], 3, 5, Ranks(0, 2)).points(3) == (2, 2 * 2 / 3)
    assert share.points(3) == (1, 2 / 3) and share.points(1) == (1, 0.0)
    assert Share.whole(8).points(100) == (8, 1.0)


def test_distributed_argument_outside_a_job():
    assert distributed_ranks(None) == Ranks() and distributed_ranks(False) == Ranks()
    with pytest.raises(ValueError, match="`distributed` is True but this process was not "
                                         "started by torchrun"):
        distributed_ranks(True)
    with pytest.raises((TypeError, ValueError), match="`distributed`"):
        distributed_ranks("yes")
    with pytest.raises(ValueError, match="`distributed`"):
        eq.fit(cases.small_net(), cases.data(8), distributed=True, verbose=False)


JOB = """
import atexit, json, os, sys
import torch.distributed as dist
import distributed_cases as cases, equivariance as eq
out = sys.argv[1]
def report():  # registered before fit's own exit hook, so it runs after it
    with open(os.path.join(out, "exit" + os.environ["RANK"] + ".json"), "w") as f:
        json.dump({"initialized": dist.is_initialized(),
                   "cores": sorted(os.sched_getaffinity(0))}, f)
atexit.register(report)
eq.fit(cases.small_net(), cases.data(8), batch_size=8, epochs=1, verbose=False)
"""


def test_ranks_run_on_their_own_cores_and_leave_the_group_at_exit(tmp_path):
    # a gloo group left to the interpreter's teardown aborts the process about one
    # exit in three: two jobs, each rank's group destroyed before it exits
    script = tmp_path / "job.py"
    script.write_text(JOB)
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              "--nproc-per-node=2", str(script), str(tmp_path)], env=ENV,
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0 and "terminate called" not in out.stderr, out.stderr[-3000:]
        exits = [json.loads((tmp_path / f"exit{r}.json").read_text()) for r in (0, 1)]
        assert [e["initialized"] for e in exits] == [False, False]
        if os.cpu_count() >= 2 and len(os.sched_getaffinity(0)) == os.cpu_count():
            half = os.cpu_count() // 2
            assert exits[0]["cores"] == list(range(half))
            assert exits[1]["cores"] == list(range(half, 2 * half))


def test_a_rank_already_bound_or_alone_keeps_its_cores(monkeypatch):
    calls = []
    monkeypatch.setattr(par.os, "sched_setaffinity", lambda pid, cores: calls.append(cores))
    monkeypatch.setattr(par.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(par.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    assert par._bind_to_own_cores() == [4, 5] and calls == [[4, 5]]
    monkeypatch.setattr(par.os, "sched_getaffinity", lambda pid: {0, 1, 2})  # taskset
    assert par._bind_to_own_cores() is None
    monkeypatch.setattr(par.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert par._bind_to_own_cores() is None
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")  # more ranks than cores
    assert par._bind_to_own_cores() is None
    monkeypatch.delenv("LOCAL_RANK")
    assert par._bind_to_own_cores() is None
    assert len(calls) == 1


def test_generators_are_seeded_and_rank_streams_differ():
    a = training_generators(Ranks(0, 2), 7)
    first = torch.rand(3)
    b = training_generators(Ranks(1, 2), 7)
    other = torch.rand(3)
    assert not torch.equal(first, other)  # augmentation and dropout differ between ranks
    for g, h in zip(a, b):  # the data order and the regularizer's draws do not
        assert torch.equal(torch.randperm(10, generator=g), torch.randperm(10, generator=h))


def test_sync_batchnorm_swaps_and_restores_layers_and_refuses_unknown_ones():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), eq.C4BatchNorm2d(2), nn.BatchNorm2d(8),
                          eq.D4BatchNorm2d(1))
    originals = list(model)
    with sync_batchnorm(model):
        assert [type(m).__name__ for m in model] == ["Conv2d"] + ["SyncFieldBatchNorm"] * 3
        assert model[1].bn is originals[1] and model[1].training
        x = torch.randn(4, 8, 5, 5)
        # outside a job the layer is the wrapped one
        assert torch.equal(model[2](x), originals[2](x))
    assert list(model) == originals

    class OwnNorm(nn.BatchNorm2d):
        pass

    with pytest.raises(ValueError, match="`sync_batchnorm`: cannot synchronise .* OwnNorm"), \
            sync_batchnorm(nn.Sequential(OwnNorm(3))):
        pass
    with pytest.raises(TypeError, match="`bn`"):
        SyncFieldBatchNorm(nn.Conv2d(1, 1, 1))


# -- the launcher and its faults -----------------------------------------------------------


def test_callbacks_and_metrics_reach_the_ranks_and_rank_0_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])
    x, y = cases.data(16)
    h = eq.parallel_fit(cases.small_net(), (x, y), workers=2, batch_size=8, epochs=2,
                        verbose=False, validation_data=(x[:8], y[:8]), metrics=["top_2"],
                        callbacks=[eq.csv_logger(tmp_path / "log.csv"),
                                   eq.checkpoint(tmp_path / "best.pt", monitor="loss")])
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,reg,accuracy,top_2,val_loss") and len(rows) == 3
    assert len(h.metrics["val_top_2"]) == 2 and (tmp_path / "best.pt").exists()


def test_a_failing_rank_stops_all_and_is_named(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])
    with pytest.raises(ValueError, match=r"rank 1 of 2: bad shard on rank 1, on purpose"):
        eq.parallel_fit(cases.small_net(), cases.data(8), workers=2, batch_size=8,
                        augment=cases.FailOnRank(1), verbose=False, timeout=60)


def test_launcher_arguments():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ValueError, match=f"`port` {port} is already in use"):
            eq.parallel_fit(cases.small_net(), cases.data(8), workers=2, port=port)
    with pytest.raises(ValueError, match="`workers`"):
        eq.parallel_fit(cases.small_net(), cases.data(8), workers=0)
    with pytest.raises(ValueError, match="`augment` cannot be sent to the worker processes"):
        eq.parallel_fit(cases.small_net(), cases.data(8), workers=2, augment=lambda x: x)
    with pytest.raises(ValueError, match="`optimizer` cannot be used with workers > 1"):
        model = cases.small_net()
        eq.parallel_fit(model, cases.data(8), optimizer=torch.optim.SGD(model.parameters(), 0.1))


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("command, option", [("benchmark", "--models"), ("fit", "--save")])
def test_cli_help(command, option, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert option in out and "--epochs" in out and "--device" in out


def test_cli_errors_name_the_option(capsys, tmp_path):
    assert main(["fit", "--save", str(tmp_path / "missing" / "m.pt"), "--data", "subset"]) == 1
    assert "`--save`" in capsys.readouterr().err
    if importlib_missing("matplotlib"):
        assert main(["benchmark", "--png", str(tmp_path / "a.png")]) == 1
        assert "`--png` needs matplotlib" in capsys.readouterr().err


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def test_cli_fit_one_step_saves_a_model(tmp_path):
    path = tmp_path / "c4.pt"
    out = subprocess.run(
        [sys.executable, "-m", "equivariance", "fit", "--model", "C4CNN", "--epochs", "1",
         "--limit", "8", "--batch-size", "8", "--data", "subset", "--device", "cpu",
         "--save", str(path)], env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert f"saved C4CNN to {path}" in out.stdout and "epoch 1/1" in out.stdout
    model = eq.load_model(path)
    assert isinstance(model, eq.C4CNN)


def test_synced_norm_on_one_rank_is_batch_norm_with_its_exact_gradient():
    from equivariance.training.parallel.sync_batchnorm import _SyncedNorm

    torch.manual_seed(0)
    # a large mean: the statistics must not cancel (no sum of squares)
    v = (torch.randn(4, 3, 10, dtype=torch.float64) * 2 + 50).requires_grad_()
    weight = torch.randn(3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    y, mean, var, n = _SyncedNorm.apply(v, weight, bias, 1e-5)
    expected = torch.nn.functional.batch_norm(v, None, None, weight, bias, training=True, eps=1e-5)
    assert torch.allclose(y, expected, atol=1e-12)
    assert torch.allclose(mean, v.mean((0, 2)))
    assert torch.allclose(var, v.var((0, 2), unbiased=False))
    assert n.item() == 40
    assert torch.autograd.gradcheck(lambda *a: _SyncedNorm.apply(*a, 1e-5)[0], (v, weight, bias))
    # the backward is written out: a second derivative is an error, not a wrong number
    g = torch.autograd.grad(
        _SyncedNorm.apply(v, weight, bias, 1e-5)[0].pow(2).sum(), v, create_graph=True
    )[0]
    with pytest.raises(RuntimeError):
        g.sum().backward()
