"""Training time per epoch of the rotation benchmark's models, as ratios.

Workload: the models of `rotation_benchmark()` (equivariance.benchmark.MODEL_NAMES)
trained with its recipe (Adam, lr 1e-3, batch 128) for one epoch on the first
12,800 Fashion-MNIST training images (100 steps). Baseline in the same run: the
plain SimpleCNN. The models run in turn, three rounds, and each keeps the median of
its three epochs, so a slow phase of the machine hits them all alike.

Target: the regularized SimpleCNN at most 1.7x the plain SimpleCNN's
time per epoch. When the reference package equivariance-regularizer 0.1.1 is
installed (make bench installs it), the same regularizer built with it is timed
too, evaluated at n = 64 fresh points like the reference does.

Run: make bench
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inst" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import equivariance as eq  # noqa: E402
from _timing import print_table  # noqa: E402
from equivariance import benchmark as B  # noqa: E402
from equivariance import transforms as T  # noqa: E402

try:
    from equivariance_regularizer import EquivarianceRegularizer as Reference
except ImportError:  # pragma: no cover - depends on the bench set-up
    Reference = None

ROUNDS = 3
LIMIT = 12800


def reference_regularizer(model):
    transforms = [(T.identity, T.rot90(k), 0.0, 0.5) for k in (1, 2, 3)]
    return Reference(model, (1, 28, 28), transforms, dist=2, n=64, num_funcs=1)


def main() -> None:
    train = eq.load_fashion_mnist("train", limit=LIMIT)
    setups = {name: name for name in B.MODEL_NAMES}
    if Reference is not None:
        setups["SimpleCNN+reference reg"] = "SimpleCNN"
    samples: dict[str, list[float]] = {k: [] for k in setups}
    for _ in range(ROUNDS):
        for label, name in setups.items():
            torch.manual_seed(0)
            model = B.benchmark_model(name)
            if label == "SimpleCNN+reg":
                reg = B.benchmark_regularizer(model)
            elif label == "SimpleCNN+reference reg":
                reg = reference_regularizer(model)
            else:
                reg = None
            history = eq.fit(model, train, epochs=1, batch_size=128, lr=1e-3,
                             regularizer=reg, seed=0, verbose=False)
            samples[label].append(history.epoch_seconds[0])
    medians = {k: statistics.median(v) for k, v in samples.items()}
    base = medians["SimpleCNN"]
    targets = {"SimpleCNN+reg": "<= 1.7x"}
    rows = [
        (label, f"{1000 * t / (LIMIT // 128):.1f}", f"{t / base:.2f}x", targets.get(label, ""))
        for label, t in medians.items()
    ]
    print(f"Training time per epoch, {LIMIT} images, batch 128, median of {ROUNDS} rounds "
          f"({train.source} data set)")
    print_table(rows, ("model", "ms/step", "vs SimpleCNN", "target"))


if __name__ == "__main__":
    main()
