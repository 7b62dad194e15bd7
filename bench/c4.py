"""Benchmark: C4Conv2d against escnn's R2Conv and a plain nn.Conv2d, same run.

For 4, 16 and 32 regular fields (16, 64, 128 channels), batch 64, 28x28 images,
3x3 filters with padding 1, it times

- training: forward + backward (gradients for the input and the parameters);
- evaluation: forward without gradients, also for ``C4Conv2d.export()``; C4Conv2d
  expands its filter again in every call (no cache that could serve stale weights),
  so the eval column C4/plain shows what that gather costs;

and the construction of a 64-field layer in both libraries. Every time is the
minimum over interleaved rounds (the candidates alternate, so a burst of load from
other processes hits all of them alike), and is reported as a ratio to a baseline
measured in the same run. Targets:

- training: C4Conv2d <= 1.0x escnn R2Conv and <= 1.05x the plain conv;
- evaluation: the exported conv <= 1.02x the plain conv;
- construction: C4Conv2d at least 50x faster than escnn R2Conv.

Run: ``python bench/c4.py`` (about 2 to 4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inst" / "python"))

import equivariance as eq  # noqa: E402

FIELDS = (4, 16, 32)
BATCH, SIZE, KERNEL = 64, 28, 3
TARGETS = {"train_vs_plain": 1.05, "train_vs_escnn": 1.0, "export_vs_plain": 1.02,
           "construction_speedup": 50.0}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def race(candidates: dict[str, Callable[[], object]], rounds: int, reps: int) -> dict[str, float]:
    """Minimum time per call of each candidate over interleaved rounds (seconds)."""
    best = {name: float("inf") for name in candidates}
    for fn in candidates.values():  # warm-up: allocator, caches, escnn's first call
        fn()
    for _ in range(rounds):
        for name, fn in candidates.items():
            for _ in range(reps):
                best[name] = min(best[name], timed(fn))
    return best


def escnn_conv(fields: int) -> nn.Module:
    em = eq.escnn_models
    gspace = em.rot2d_on_r2(4)
    ft = em.field_type(gspace, ["regular"] * fields)
    return em.r2_conv(ft, ft, KERNEL, padding=KERNEL // 2)


def train_step(module: Callable, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    params = [p for p in module.parameters()] if isinstance(module, nn.Module) else []

    def step() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        module(x).backward(grad)

    return step


def bench_fields(fields: int) -> dict[str, float]:
    channels = 4 * fields
    torch.manual_seed(0)
    ours = eq.C4Conv2d(fields, fields, KERNEL, padding=KERNEL // 2)
    plain = nn.Conv2d(channels, channels, KERNEL, padding=KERNEL // 2)
    theirs = escnn_conv(fields)
    em = eq.escnn_models
    x = torch.randn(BATCH, channels, SIZE, SIZE, requires_grad=True)
    grad = torch.randn(BATCH, channels, SIZE, SIZE)
    gt_type = theirs.in_type

    def escnn_call(t: torch.Tensor) -> torch.Tensor:
        return theirs(em.geometric_tensor(t, gt_type)).tensor

    escnn_call.parameters = theirs.parameters  # type: ignore[attr-defined]
    # rounds/reps scaled so that every width costs about the same wall time
    rounds, reps = {4: (8, 10), 16: (5, 3), 32: (4, 2)}[fields]

    for m in (ours, plain, theirs):
        m.train()
    train = race(
        {
            "plain": train_step(plain, x, grad),
            "c4": train_step(ours, x, grad),
            "escnn": train_step(_Wrapped(theirs, escnn_call), x, grad),
        },
        rounds, reps,
    )

    for m in (ours, plain, theirs):
        m.eval()
    exported = ours.export().eval()
    xe = x.detach()
    with torch.no_grad():
        torch.testing.assert_close(exported(xe), ours(xe))
        evals = race(
            {
                "plain": lambda: plain(xe),
                "c4": lambda: ours(xe),
                "export": lambda: exported(xe),
                "escnn": lambda: escnn_call(xe),
            },
            rounds, 2 * reps,
        )
    return {f"train_{k}": v for k, v in train.items()} | {f"eval_{k}": v for k, v in evals.items()}


class _Wrapped(nn.Module):
    """escnn module seen as a plain-tensor module (GeometricTensor in and out)."""

    def __init__(self, module: nn.Module, call: Callable):
        super().__init__()
        self.inner = module
        self.call = call

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.call(t)


def bench_construction(fields: int = 64) -> tuple[float, float]:
    """Seconds to build a ``fields``->``fields`` 3x3 layer: (C4Conv2d, escnn R2Conv)."""
    eq.escnn_models.rot2d_on_r2(4)  # import escnn outside the timing
    escnn_conv(1)  # and build escnn's basis caches for a fair, warm comparison
    ours = min(timed(lambda: eq.C4Conv2d(fields, fields, KERNEL, padding=1)) for _ in range(5))
    theirs = min(timed(lambda: escnn_conv(fields)) for _ in range(2))
    return ours, theirs


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    start = time.perf_counter()
    print(f"C4Conv2d vs escnn R2Conv vs nn.Conv2d: batch {BATCH}, {SIZE}x{SIZE}, "
          f"kernel {KERNEL}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("times are the minimum per call in ms; ratios are to the baseline of the same run\n")
    header = (f"{'fields':>6} {'chan':>5} | {'train ms: plain':>15} {'C4':>8} {'escnn':>8} | "
              f"{'C4/plain':>8} {'C4/escnn':>8} | {'eval ms: plain':>14} {'C4':>7} {'export':>7} "
              f"{'escnn':>7} | {'C4/plain':>8} {'exp/plain':>9} {'C4/escnn':>8}")
    print(header)
    print("-" * len(header))
    checks = []
    for fields in FIELDS:
        r = bench_fields(fields)
        ms = {k: 1e3 * v for k, v in r.items()}
        tp = r["train_c4"] / r["train_plain"]
        te = r["train_c4"] / r["train_escnn"]
        ep = r["eval_c4"] / r["eval_plain"]
        xp = r["eval_export"] / r["eval_plain"]
        ee = r["eval_c4"] / r["eval_escnn"]
        print(f"{fields:>6} {4 * fields:>5} | {ms['train_plain']:>15.2f} {ms['train_c4']:>8.2f} "
              f"{ms['train_escnn']:>8.2f} | {tp:>8.3f} {te:>8.3f} | {ms['eval_plain']:>14.2f} "
              f"{ms['eval_c4']:>7.2f} {ms['eval_export']:>7.2f} {ms['eval_escnn']:>7.2f} | "
              f"{ep:>8.3f} {xp:>9.3f} {ee:>8.3f}", flush=True)
        checks += [
            (f"{fields:>2} fields: train C4/plain {tp:.3f} <= {TARGETS['train_vs_plain']}",
             tp <= TARGETS["train_vs_plain"]),
            (f"{fields:>2} fields: train C4/escnn {te:.3f} <= {TARGETS['train_vs_escnn']}",
             te <= TARGETS["train_vs_escnn"]),
            (f"{fields:>2} fields: eval export/plain {xp:.3f} <= {TARGETS['export_vs_plain']}",
             xp <= TARGETS["export_vs_plain"]),
        ]
    ours, theirs = bench_construction(64)
    speedup = theirs / ours
    print(f"\nconstruction of a 64-field 3x3 layer: C4Conv2d {1e3 * ours:.2f} ms, "
          f"escnn R2Conv {1e3 * theirs:.1f} ms, speed-up {speedup:.0f}x")
    limit = TARGETS["construction_speedup"]
    checks.append((f"construction speed-up {speedup:.0f}x >= {limit:.0f}x",
                   speedup >= TARGETS["construction_speedup"]))
    print("\ntargets:")
    for text, ok in checks:
        print(f"  [{verdict(ok):>7}] {text}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
