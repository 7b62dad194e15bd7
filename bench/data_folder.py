"""Training from an image folder: time against the same images in memory, and memory
against the folder's decoded size.

(a) Speed. Workload: Fashion-MNIST's 70,000 images (60,000 training + 10,000 test,
    Debian's dataset-fashion-mnist) written as 70,000 PNG files in one sub-folder per
    class, and one epoch of the rotation benchmark's SimpleCNN (Adam, batch 128) on
    them with ``num_workers = 1`` (one background process decodes the files). Baseline
    in the same run: the same epoch on the same 70,000 images held in memory as one
    tensor. Both run with one torch thread, in alternation (``--rounds``), and each
    keeps the median. Target: folder / memory <= 1.3.

(b) Memory. Workload: a folder of 128 x 128 RGB JPEGs (Fashion-MNIST images enlarged
    and tinted, 20,000 by default) whose decoded size, as float32 tensors, is about
    3.9 GB; one epoch of a small CNN on it (batch 64, ``num_workers = 1``) in a fresh
    process. Measured: the growth of the process's resident memory from just before
    ``fit`` to its peak (``VmRSS`` before, ``VmHWM`` after), and the peak of the
    decoding process. The decoded size divided by 4 is "the memory allowed"; target:
    growth < 300 MB, far below it.

The folders are written once and kept under ``--cache`` (default
``/tmp/equivariance-bench``); writing 70,000 PNGs takes a minute or two.

Run: python bench/data_folder.py [--part a|b|both] [--limit N] [--images N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

CORE = Path(__file__).resolve().parents[1] / "inst" / "python"
sys.path.insert(0, str(CORE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import equivariance as eq  # noqa: E402
from _timing import print_table  # noqa: E402


def _fashion_mnist(limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    train = eq.load_fashion_mnist("train")
    test = eq.load_fashion_mnist("test", warn=False)
    x, y = torch.cat([train.images, test.images]), torch.cat([train.labels, test.labels])
    return (x, y) if limit is None else (x[:limit], y[:limit])


def _cached_folder(path: Path, write) -> Path:
    done = path / ".complete"
    if not done.exists():
        start = time.perf_counter()
        write(path)
        done.write_text("ok")
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _epoch(data, workers: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = eq.benchmark_model("SimpleCNN")
    start = time.perf_counter()
    eq.fit(model, data, epochs=1, batch_size=128, seed=seed, verbose=False, device="cpu",
           num_workers=workers)
    return time.perf_counter() - start


def speed(cache: Path, limit: int | None, rounds: int) -> None:
    x, y = _fashion_mnist(limit)
    name = f"fashion-mnist-png-{x.shape[0]}"
    folder = _cached_folder(cache / name, lambda p: eq.write_image_folder(x, y, p, eq.CLASSES))
    start = time.perf_counter()
    ds = eq.image_folder(folder)
    listing = time.perf_counter() - start
    _epoch((x[:512], y[:512]), 0, 0)  # warm-up: the first epoch of a process is slower
    _epoch(ds.subset(range(512)), 1, 0)
    memory, files = [], []
    for r in range(rounds):  # alternating, so a slow phase of the machine hits both
        memory.append(_epoch((x, y), 0, r))
        files.append(_epoch(ds, 1, r))
    m, f = statistics.median(memory), statistics.median(files)
    print(f"\n(a) one epoch of SimpleCNN on {x.shape[0]:,} Fashion-MNIST images, batch 128, "
          f"1 torch thread, median of {rounds}")
    print_table([("in memory (baseline)", f"{m:.1f}", "1.00"),
                 ("PNG folder, num_workers=1", f"{f:.1f}", f"{f / m:.2f}")],
                ("data", "s/epoch", "ratio"))
    print(f"listing the folder (image_folder(), headers of {len(ds):,} files): {listing:.1f} s; "
          f"target: ratio <= 1.3", flush=True)


def _write_large(path: Path, n: int) -> None:
    x, y = _fashion_mnist(n)
    tint = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    for start in range(0, n, 1000):  # 1,000 at a time: the writer stays small too
        big = torch.nn.functional.interpolate(x[start:start + 1000], size=(128, 128),
                                              mode="bilinear", align_corners=False)
        part = path / f"part{start // 1000:03d}"
        eq.write_image_folder((big * tint).clamp(0, 1), y[start:start + 1000], part, eq.CLASSES,
                              ext="jpg")
    # one class folder per class: move the parts' files together
    for part in sorted(path.glob("part*")):
        for cls in part.iterdir():
            (path / cls.name).mkdir(exist_ok=True)
            for f in cls.iterdir():
                f.rename(path / cls.name / f"{part.name}-{f.name}")
            cls.rmdir()
        part.rmdir()


_CHILD = """
import json, resource, sys, torch
sys.path.insert(0, {core!r})
import equivariance as eq
torch.set_num_threads(1)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
ds = eq.image_folder({folder!r})
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                            torch.nn.Linear(8, 10))
before = status("VmRSS")
eq.fit(model, ds, epochs=1, batch_size=64, verbose=False, device="cpu", num_workers=1)
print(json.dumps({{"before": before, "peak": status("VmHWM"), "n": len(ds),
                   "shape": list(ds.input_shape),
                   "worker_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}}))
"""


def memory(cache: Path, images: int) -> None:
    folder = _cached_folder(cache / f"large-rgb-128-jpg-{images}",
                            lambda p: _write_large(p, images))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD.format(core=str(CORE), folder=str(folder))],
                         check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    r = json.loads(out.stdout.strip().splitlines()[-1])
    decoded = r["n"] * 4 * int(torch.tensor(r["shape"]).prod())
    growth = r["peak"] - r["before"]
    mb = 1024 ** 2
    print(f"\n(b) one epoch from a folder of {r['n']:,} RGB 128x128 JPEGs, batch 64, "
          f"num_workers=1 ({seconds:.0f} s)")
    print_table([("decoded size (float32)", f"{decoded / mb:,.0f}"),
                 ("memory allowed (decoded / 4)", f"{decoded / 4 / mb:,.0f}"),
                 ("process RSS before fit", f"{r['before'] / mb:,.0f}"),
                 ("peak RSS growth during the epoch", f"{growth / mb:,.0f}"),
                 ("decoding process, peak RSS", f"{r['worker_peak'] / mb:,.0f}")],
                ("", "MB"))
    print(f"peak RSS growth / allowed memory: {growth / (decoded / 4):.3f}; target: growth "
          "< 300 MB", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("a", "b", "both"), default="both")
    p.add_argument("--limit", type=int, default=None, help="(a): only the first N images")
    p.add_argument("--images", type=int, default=20000, help="(b): images in the folder")
    p.add_argument("--rounds", type=int, default=1, help="(a): epochs of each kind")
    p.add_argument("--cache", default=os.environ.get("EQUIVARIANCE_BENCH_CACHE",
                                                     "/tmp/equivariance-bench"))
    args = p.parse_args()
    torch.set_num_threads(1)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.part in ("a", "both"):
        speed(cache, args.limit, args.rounds)
    if args.part in ("b", "both"):
        memory(cache, args.images)


if __name__ == "__main__":
    main()
