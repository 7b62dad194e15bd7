"""Benchmark: data-parallel training of C4CNN, 1 process against 2 ranks, same run.

Images per second of ``fit(C4CNN)`` on 4096 Fashion-MNIST training images (the
shipped subset when the full set is absent), batch 128, epochs 2 and 3 timed (the
first one warms up):

- 1 process with 2 threads (``OMP_NUM_THREADS=2``);
- 2 ranks with 1 thread each, started by ``torchrun --nproc-per-node 2`` (gloo on the
  CPU; nccl and one GPU per rank where CUDA is available, unchanged), with batch norm
  synchronised (fit's default) and without.

The configurations run three times, alternating, and each reports the median of its
six timed epochs (a burst of load from other processes then hits all alike; on a
shared 2-core machine single runs vary by 20%). The ranks also report the time per
step spent in collectives: the synchronised batch norm's all-gathers, timed during
the training (waiting for the other rank included), and one exchange of the
gradients (C4CNN's ~14k parameters in one bucket, as fit's communication hook does
it), timed apart. Target: 2 ranks >= 0.9x the images per second of 1 process.

Run: ``python bench/distributed.py`` (about 4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "inst" / "python"
sys.path.insert(0, str(CORE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH, EPOCHS, LIMIT, ATTEMPTS = 128, 3, 4096, 3


def _gradient_exchange_seconds(numel: int, repeats: int = 30) -> float:
    """Median seconds of one exchange of ``numel`` gradients, as fit's communication
    hook makes it (an all-gather on the CPU, an all-reduce on CUDA)."""
    import torch
    import torch.distributed as dist

    cuda = dist.get_backend() != "gloo" and torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    t = torch.zeros(numel, device=device)
    rows = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    times = []
    for _ in range(repeats + 3):
        dist.barrier()
        start = time.perf_counter()
        if cuda:
            dist.all_reduce(t)
            torch.cuda.synchronize()
        else:
            dist.all_gather(rows, t)
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def run(out: str) -> None:
    """One configuration (1 process, or every rank under torchrun); rank 0 writes ``out``."""
    import equivariance as eq
    import equivariance.training.parallel.sync_batchnorm as sbn
    import torch

    train = eq.load_fashion_mnist("train", limit=LIMIT, warn=False)
    torch.manual_seed(0)
    model = eq.benchmark_model("C4CNN")
    sync = os.environ.get("EQUIVARIANCE_BENCH_SYNC_BN", "1") == "1"
    gather, spent = sbn._all_gather, [0.0]

    def timed(t):  # the synchronised batch norm's collectives, waiting included
        start = time.perf_counter()
        try:
            return gather(t)
        finally:
            spent[0] += time.perf_counter() - start

    sbn._all_gather = timed
    history = eq.fit(model, train, epochs=EPOCHS, batch_size=BATCH, seed=0, verbose=False,
                     sync_batchnorm=sync)
    steps = len(history.loss)
    result = {"rates": [len(train) / s for s in history.epoch_seconds[1:]],
              "threads": torch.get_num_threads(), "source": train.source,
              "batch_norm": spent[0] / steps}
    if eq.training.parallel.distributed.launched_by_torchrun():
        params = sum(p.numel() for p in model.parameters())
        result.update(gradients=_gradient_exchange_seconds(params), parameters=params)
    if eq.is_main_process():
        Path(out).write_text(json.dumps(result))


def _launch(ranks: int, threads: int, out: Path, sync: bool = True) -> dict:
    path = os.pathsep.join(p for p in (str(CORE), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=path,
               EQUIVARIANCE_BENCH_SYNC_BN="1" if sync else "0")
    script = [str(Path(__file__).resolve()), "--measure", str(out)]
    cmd = [sys.executable] + script if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={ranks}"] + script
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    from _timing import print_table

    # "2 ranks" synchronises batch norm (fit's default); the unsynchronised run shows
    # what that costs (each rank then normalises with its own half of the batch)
    runs = {"1 process": (1, 2, True), "1 process, 1 thread": (1, 1, True),
            "2 ranks": (2, 1, True), "2 ranks, no sync BN": (2, 1, False)}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(ATTEMPTS):
            for name, (ranks, threads, sync) in runs.items():
                r = _launch(ranks, threads, Path(tmp) / f"{ranks}-{threads}-{sync}-{attempt}.json",
                            sync)
                results.setdefault(name, r).setdefault("all", []).extend(r["rates"])
    rate = {name: statistics.median(r["all"]) for name, r in results.items()}
    one, two = results["1 process"], results["2 ranks"]
    print(f"C4CNN, batch {BATCH}, {LIMIT} {one['source']} Fashion-MNIST images; images/s: "
          f"median of {len(one['all'])} epochs ({ATTEMPTS} runs each, alternating)")
    rows = []
    for name, r in results.items():
        step = BATCH / rate[name]
        comm = (f"{1000 * r['batch_norm']:.1f} + {1000 * r['gradients']:.2f} ms "
                f"({100 * (r['batch_norm'] + r['gradients']) / step:.0f}% of a step)"
                if "gradients" in r else "-")
        rows.append((name, f"{r['threads']} each" if "gradients" in r else str(r["threads"]),
                     f"{rate[name]:.0f}", f"{rate[name] / rate['1 process']:.2f}x", comm))
    print_table(rows, ("run", "threads", "images/s", "vs 1 process",
                       "collectives per step: batch norm + gradients"))
    print(f"target: 2 ranks >= 0.90x 1 process; gradients exchanged: {two['parameters']:,} "
          "values per step")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        run(sys.argv[2])
    else:
        main()
