"""Benchmark: D4Conv2d against escnn's R2Conv on flipRot2dOnR2(4) and a plain nn.Conv2d.

For 4 and 16 regular D4 fields (32 and 128 channels), batch 64, 28x28 images, 3x3
filters with padding 1, it times training (forward + backward, gradients for the
input and the parameters) and the construction of a 16-field layer in both
libraries. Times are minima over interleaved rounds (bench/c4.py's method, reused),
reported as ratios to baselines measured in the same run. Targets:

- training: D4Conv2d <= 1.05x the plain conv and <= 1.0x escnn's R2Conv;
- construction of a 16-field layer: at least 50x faster than escnn's.

Run: ``python bench/d4.py`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inst" / "python"))

import equivariance as eq  # noqa: E402
from c4 import _Wrapped, race, timed, train_step, verdict  # noqa: E402  (bench/c4.py)

FIELDS = (4, 16)
BATCH, SIZE, KERNEL = 64, 28, 3
TARGETS = {"train_vs_plain": 1.05, "train_vs_escnn": 1.0, "construction_speedup": 50.0}


def escnn_conv(fields: int) -> nn.Module:
    em = eq.escnn_models
    ft = em.field_type(em.flip_rot2d_on_r2(4), ["regular"] * fields)
    return em.r2_conv(ft, ft, KERNEL, padding=KERNEL // 2)


def bench_fields(fields: int) -> dict[str, float]:
    """Seconds per training step: plain conv, D4Conv2d, escnn R2Conv."""
    channels = 8 * fields
    torch.manual_seed(0)
    ours = eq.D4Conv2d(fields, fields, KERNEL, padding=KERNEL // 2)
    plain = nn.Conv2d(channels, channels, KERNEL, padding=KERNEL // 2)
    theirs = escnn_conv(fields)
    em = eq.escnn_models
    x = torch.randn(BATCH, channels, SIZE, SIZE, requires_grad=True)
    grad = torch.randn(BATCH, channels, SIZE, SIZE)

    def escnn_call(t: torch.Tensor) -> torch.Tensor:
        return theirs(em.geometric_tensor(t, theirs.in_type)).tensor

    rounds, reps = {4: (8, 6), 16: (4, 2)}[fields]
    return race(
        {
            "plain": train_step(plain, x, grad),
            "d4": train_step(ours, x, grad),
            "escnn": train_step(_Wrapped(theirs, escnn_call), x, grad),
        },
        rounds, reps,
    )


def bench_construction(fields: int = 16) -> tuple[float, float]:
    """Seconds to build a ``fields``->``fields`` 3x3 layer: (D4Conv2d, escnn R2Conv)."""
    escnn_conv(1)  # import escnn and build its basis caches outside the timing
    ours = min(timed(lambda: eq.D4Conv2d(fields, fields, KERNEL, padding=1)) for _ in range(5))
    theirs = min(timed(lambda: escnn_conv(fields)) for _ in range(2))
    return ours, theirs


def main() -> None:
    start = time.perf_counter()
    print(f"D4Conv2d vs escnn R2Conv (flipRot2dOnR2(4)) vs nn.Conv2d: batch {BATCH}, "
          f"{SIZE}x{SIZE}, kernel {KERNEL}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; train = forward + backward, minimum in ms\n")
    header = (f"{'fields':>6} {'chan':>5} | {'plain':>8} {'D4':>8} {'escnn':>8} | "
              f"{'D4/plain':>8} {'D4/escnn':>8}")
    print(header)
    print("-" * len(header))
    checks = []
    for fields in FIELDS:
        r = bench_fields(fields)
        tp, te = r["d4"] / r["plain"], r["d4"] / r["escnn"]
        print(f"{fields:>6} {8 * fields:>5} | {1e3 * r['plain']:>8.2f} {1e3 * r['d4']:>8.2f} "
              f"{1e3 * r['escnn']:>8.2f} | {tp:>8.3f} {te:>8.3f}", flush=True)
        checks += [
            (f"{fields:>2} fields: train D4/plain {tp:.3f} <= {TARGETS['train_vs_plain']}",
             tp <= TARGETS["train_vs_plain"]),
            (f"{fields:>2} fields: train D4/escnn {te:.3f} <= {TARGETS['train_vs_escnn']}",
             te <= TARGETS["train_vs_escnn"]),
        ]
    ours, theirs = bench_construction(16)
    speedup = theirs / ours
    print(f"\nconstruction of a 16-field 3x3 layer: D4Conv2d {1e3 * ours:.2f} ms, "
          f"escnn R2Conv {1e3 * theirs:.1f} ms, speed-up {speedup:.0f}x")
    target = TARGETS["construction_speedup"]
    checks.append((f"construction speed-up {speedup:.0f}x >= {target:.0f}x", speedup >= target))
    print("\ntargets:")
    for text, ok in checks:
        print(f"  [{verdict(ok):>7}] {text}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
