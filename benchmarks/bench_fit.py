"""Calibration fit throughput: sufficient statistics of one recorded chunk (256 bias-step runs x
2000 steps of the 96-unit digit chip, the chunk of docs/calibration.md).

The work is the Gram matrix of the regressors Z = [x, x^3, 1] (F = 2N + 1 columns) over every
recorded step, Z^T Z (symmetric: n F^2 FLOPs) and Z^T y (2 n F N FLOPs), n = steps x runs. Limit:
the machine's float64 matrix-multiply rate, all cores, measured in this run on a product of the
same shape. Last line: ratio=<number>.

usage: python benchmarks/bench_fit.py [--runs 256] [--units 96] [--steps 2000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import matmul_rate  # noqa: E402

from thermohw.calibrate import Recording, Statistics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=256)
    ap.add_argument("--units", type=int, default=96)
    ap.add_argument("--steps", type=int, default=2000)
    a = ap.parse_args()
    T, R, N = a.steps + 1, a.runs, a.units
    rng = np.random.default_rng(0)
    # a random-walk stand-in for a recording: the cost does not depend on the values
    x = np.cumsum(rng.standard_normal((T, R, N)) * 0.1, axis=0)
    rec = Recording(np.arange(T) * 0.01, x, 0.01, rng.uniform(-4, 4, (R, N)))
    F = 2 * N + 1
    n = (T - 1) * R
    peak = matmul_rate(4096, F)
    Statistics.of(rec.select_runs(np.arange(8)))          # warm-up
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        Statistics.of(rec)
        best = min(best, time.perf_counter() - t)
    flops = n * F * F + 2.0 * n * F * N
    print(f"chunk: {R} runs x {T - 1} steps x {N} units ({x.nbytes / 1e9:.2f} GB); regressors F = {F}")
    print(f"machine matmul rate (float64, 4096x{F} @ {F}x{F}, all cores): {peak / 1e9:.1f} GFLOP/s")
    print(f"Statistics.of: {best:.2f} s, {n / best / 1e6:.1f} M steps/s, {flops / best / 1e9:.1f} GFLOP/s")
    print(f"ratio={flops / best / peak:.3f}")


if __name__ == "__main__":
    main()
