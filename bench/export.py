"""Benchmark: inference of exported C4CNN and D4CNN, eager PyTorch and ONNX Runtime.

For each model (default widths, 28x28 images, batch 256, batch-norm statistics from a
few training-mode passes) it times, in one run and in alternation:

- ``original``: the model in eval mode without gradients (it expands its filters
  and checks its input at every call);
- ``exported``: :func:`equivariance.export_model`'s network in eager PyTorch (filters
  expanded once, batch norm folded into the convolutions);
- ``onnxruntime``: the file :func:`equivariance.save_onnx` wrote, in ONNX Runtime's
  CPU provider.

Both runtimes get the same number of threads (``--threads``, default 1: the
benchmark machine's cores are shared). Each time is the minimum over interleaved
rounds, reported as ratios measured in the same run. Targets: exported / original
<= 1.0, onnxruntime / exported <= 1.0.

Run: ``python bench/export.py [--threads N]`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inst" / "python"))

import equivariance as eq

BATCH, SHAPE = 256, (1, 28, 28)
TARGETS = {"exported / original": 1.0, "onnxruntime / exported": 1.0}


def race(candidates: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Minimum seconds per call of each candidate over interleaved rounds."""
    best = {name: float("inf") for name in candidates}
    for fn in candidates.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def bench(name: str, threads: int, rounds: int, folder: str) -> dict[str, float]:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = getattr(eq, name)()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(32, *SHAPE))
    model.eval()
    net = eq.export_model(model, input_shape=SHAPE)
    path = eq.save_onnx(net, f"{folder}/{name}.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = torch.rand(BATCH, *SHAPE)
    feed = {session.get_inputs()[0].name: x.numpy()}
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=0, atol=1e-5)
        return race({
            "original": lambda: model(x),
            "exported": lambda: net(x),
            "onnxruntime": lambda: session.run(None, feed),
        }, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in ("C4CNN", "D4CNN"):
            t = bench(name, args.threads, args.rounds, folder)
            ratios = {"exported / original": t["exported"] / t["original"],
                      "onnxruntime / exported": t["onnxruntime"] / t["exported"]}
            failed += [f"{name} {k}" for k, v in ratios.items() if v > TARGETS[k]]
            rows.append((name, f"{t['original'] * 1e3:.1f}", f"{t['exported'] * 1e3:.1f}",
                         f"{t['onnxruntime'] * 1e3:.1f}", f"{ratios['exported / original']:.2f}x",
                         f"{ratios['onnxruntime / exported']:.2f}x"))
    header = ("model", "original ms", "exported ms", "onnxruntime ms", "exported/original",
              "onnxruntime/exported")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(f"batch {BATCH}, {SHAPE[1]}x{SHAPE[2]} images, {args.threads} thread(s) per runtime; "
          f"targets: exported/original <= 1.0x, onnxruntime/exported <= 1.0x")
    print("all targets met" if not failed else "missed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
