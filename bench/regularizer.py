"""Regularizer cost: this package against the reference package, same workload.

Workload: a small CNN on 1x28x28 inputs, n = 64 points, four transforms,
num_funcs = 4; time of reg() + backward. Baseline in the same run: a plain training
step (forward, cross-entropy, backward, Adam step) on a batch of 128.

The reference package `equivariance-regularizer==0.1.1` runs 2 x num_funcs forward
passes of n points; this package runs one batched pass of (1 + num_funcs) x n.
Target: this package <= 0.6x the reference's time. One more row prices continuous
rotations: the same workload with four `random_rotate(180)` transforms (bilinear
resampling) instead of quarter turns and a flip.

Run: make bench   (installs the reference package into the venv first)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inst" / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import equivariance as eq  # noqa: E402
from _timing import interleaved_medians, print_table  # noqa: E402
from equivariance import transforms as T  # noqa: E402

try:
    from equivariance_regularizer import EquivarianceRegularizer as Reference
except ImportError:  # pragma: no cover - depends on the bench set-up
    sys.exit("install the reference first: pip install --no-deps equivariance-regularizer==0.1.1")


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.SiLU(), nn.AdaptiveMaxPool2d(1),
        nn.Flatten(), nn.Linear(16, 10),
    )


def main() -> None:
    torch.manual_seed(0)
    model = small_cnn()
    shape, n, num_funcs = (1, 28, 28), 64, 4
    rotations = [lambda x, k=k: torch.rot90(x, k, (-2, -1)) for k in (1, 2, 3)]
    ref_transforms = [(lambda y: y, f, 0.0, 1.0) for f in rotations]
    ref_transforms.append((lambda y: y, lambda x: torch.flip(x, (-1,)), 0.0, 1.0))
    ours_transforms = [(T.identity, T.rot90(k), 0.0, 1.0) for k in (1, 2, 3)]
    ours_transforms.append((T.identity, T.hflip(), 0.0, 1.0))

    ours = eq.EquivarianceRegularizer(model, shape, ours_transforms, n=n, num_funcs=num_funcs)
    rotating = eq.EquivarianceRegularizer(
        model, shape, [(T.identity, T.random_rotate(180), 0.0, 1.0)] * 4, n=n, num_funcs=num_funcs
    )
    ref = Reference(model, shape, ref_transforms, n=n, num_funcs=num_funcs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xb, yb = torch.rand(128, *shape), torch.randint(0, 10, (128,))

    def train_step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()

    def run(reg):
        def step():
            model.zero_grad()
            reg().backward()
        return step

    times = interleaved_medians(
        {"train step (batch 128)": train_step, "reference reg()+backward": run(ref),
         "equivariance reg()+backward": run(ours),
         "equivariance, random_rotate(180)": run(rotating)},
        repeats=40,
    )
    base = times["train step (batch 128)"]
    ref_t = times["reference reg()+backward"]
    rows = [
        (name, f"{t * 1e3:.2f}", f"{t / base:.2f}x", f"{t / ref_t:.2f}x")
        for name, t in times.items()
    ]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; n={n}, "
          f"num_funcs={num_funcs}, four transforms, input {shape}")
    print_table(rows, ("workload", "ms (median)", "vs train step", "vs reference"))
    ratio = times["equivariance reg()+backward"] / ref_t
    print(f"\nequivariance / reference = {ratio:.2f}x (target <= 0.60x): "
          f"{'MET' if ratio <= 0.6 else 'NOT MET'}")


if __name__ == "__main__":
    main()
