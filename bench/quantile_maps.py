"""Benchmark of the quantile maps (GroupMap) against GroupNorm, a bare argsort and the
reference formula, all measured in the same run.

On x of shape (64, 64, 28, 28) with 8 groups it times, forward and forward+backward:
``nn.GroupNorm``; a bare ``argsort`` over the same groups (the floor of any exact
method); the reference formula (argsort + scatter of a linspace + Q on every element +
affine, as the ``groupmap`` project implements it); our exact mode; our sketch mode.
Timings are interleaved round by round and the minimum over rounds is kept, so that
load from other processes affects every method alike. It then measures the sketch
mode's Kolmogorov distance to the exact mode on Gaussian, uniform and Cauchy inputs
(two-sample distance between the outputs of each group, worst group reported) and
prints whether each target of issue 3 is met.

Usage: python bench/quantile_maps.py [--threads 1] [--rounds 7]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inst" / "python"))

from equivariance import GroupMap  # noqa: E402

SHAPE = (64, 64, 28, 28)
GROUPS = 8


class ReferenceFormula(nn.Module):
    """The reference implementation's computation: argsort, scatter of a linspace,
    Q (clamped Gaussian) on every element, per-channel affine. No input gradient."""

    def __init__(self, num_groups: int, num_channels: int) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.range_tensor = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        g = x.reshape(n, self.num_groups, -1)
        indices = g.argsort(dim=-1)
        if self.range_tensor is None or self.range_tensor.shape != g.shape:
            self.range_tensor = torch.linspace(0, 1, g.shape[-1])[None, None].repeat(
                n, self.num_groups, 1)
        q = self.range_tensor.scatter(dim=-1, index=indices, src=self.range_tensor)
        q = torch.clamp(q, min=1e-5, max=1 - 1e-5)
        y = math.sqrt(2) * torch.erfinv(2 * q - 1)
        y = y.view(n, c, -1) * self.weight[:, None] + self.bias[:, None]
        return y.view(x.shape)


def argsort_floor(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], GROUPS, -1).argsort(dim=-1)


def forward_only(fn, x):
    def run():
        with torch.no_grad():
            fn(x)
    return run


def forward_backward(fn, x):
    xg = x.clone().requires_grad_()

    def run():
        xg.grad = None
        out = fn(xg)
        if out.requires_grad:
            out.sum().backward()
    return run


def time_interleaved(cases: dict, rounds: int) -> dict:
    """Minimum wall time (s) of each case over ``rounds`` interleaved rounds."""
    for run in cases.values():  # warm-up (caches, allocator)
        run()
    best = {name: math.inf for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def kolmogorov(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two-sample Kolmogorov distance between the rows of ``a`` and ``b``."""
    a = a.double().sort(dim=-1).values
    b = b.double().sort(dim=-1).values
    both = torch.cat([a, b], dim=-1)
    fa = torch.searchsorted(a, both, right=True) / a.shape[-1]
    fb = torch.searchsorted(b, both, right=True) / b.shape[-1]
    return (fa - fb).abs().amax(dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: stable ratios on a shared machine)")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    x = torch.randn(SHAPE)
    methods = {
        "GroupNorm": nn.GroupNorm(GROUPS, SHAPE[1]),
        "argsort (floor)": argsort_floor,
        "reference formula": ReferenceFormula(GROUPS, SHAPE[1]),
        "GroupMap exact": GroupMap(GROUPS, SHAPE[1]),
        "GroupMap sketch": GroupMap(GROUPS, SHAPE[1], method="sketch"),
    }
    cases = {}
    for name, fn in methods.items():
        cases[(name, "fwd")] = forward_only(fn, x)
        cases[(name, "fwd+bwd")] = forward_backward(fn, x)
    t0 = time.perf_counter()
    best = time_interleaved(cases, args.rounds)

    print(f"Quantile maps benchmark: x {SHAPE}, {GROUPS} groups, float32, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"min over {args.rounds} interleaved rounds")
    print()
    gn = {mode: best[("GroupNorm", mode)] for mode in ("fwd", "fwd+bwd")}
    floor = {mode: best[("argsort (floor)", mode)] for mode in ("fwd", "fwd+bwd")}
    header = f"{'method':20s} {'mode':8s} {'ms':>9s} {'x GroupNorm':>12s} {'x argsort':>10s}"
    print(header)
    print("-" * len(header))
    for name in methods:
        for mode in ("fwd", "fwd+bwd"):
            t = best[(name, mode)]
            print(f"{name:20s} {mode:8s} {t * 1e3:9.1f} {t / gn[mode]:12.2f} "
                  f"{t / floor[mode]:10.2f}")
    print("(argsort and the reference give the input no gradient: their fwd+bwd is a "
          "forward plus, for the reference, the affine parameters' backward)")

    # accuracy of the sketch against the exact mode, per group
    exact = GroupMap(GROUPS, SHAPE[1], affine=False)
    sketch = GroupMap(GROUPS, SHAPE[1], affine=False, method="sketch")
    inputs = {
        "gaussian": torch.randn(SHAPE),
        "uniform": torch.rand(SHAPE),
        "cauchy": torch.distributions.Cauchy(0.0, 1.0).sample(SHAPE),
    }
    print()
    print(f"{'input':10s} {'KS max':>9s} {'KS mean':>9s}   (sketch vs exact, per group)")
    ks_max = {}
    with torch.no_grad():
        for name, data in inputs.items():
            rows = (SHAPE[0] * GROUPS, -1)
            ks = kolmogorov(sketch(data).reshape(rows), exact(data).reshape(rows))
            ks_max[name] = ks.max().item()
            print(f"{name:10s} {ks_max[name]:9.5f} {ks.mean().item():9.5f}")

    exact_f = best[("GroupMap exact", "fwd")]
    exact_fb = best[("GroupMap exact", "fwd+bwd")]
    ref_f = best[("reference formula", "fwd")]
    ref_fb = best[("reference formula", "fwd+bwd")]
    sketch_fb = best[("GroupMap sketch", "fwd+bwd")]
    checks = [
        ("exact fwd <= 1.2 x argsort floor", exact_f / floor["fwd"], 1.2),
        ("exact fwd <= reference formula fwd", exact_f / ref_f, 1.0),
        ("exact fwd+bwd <= reference formula fwd+bwd", exact_fb / ref_fb, 1.0),
        ("sketch fwd+bwd <= 5 x GroupNorm fwd+bwd", sketch_fb / gn["fwd+bwd"], 5.0),
    ] + [(f"sketch KS to exact <= 0.01 ({name})", value, 0.01) for name, value in ks_max.items()]
    print()
    print("Targets (issue 3):")
    for label, value, limit in checks:
        verdict = "met" if value <= limit else "NOT MET"
        print(f"  {label:46s} {value:8.3f}  {verdict}")
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
