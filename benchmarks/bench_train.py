"""Training throughput: cycles/s for the 784 + 512 paper computer (t_f = 2.5, dt = 1e-3, batch 1).

Each cycle: a 2 x 2500-step coupling-free noising trajectory, then the path gradient, whose
work is two products over the 2500 recorded steps: forces (K x N) @ (N x N) and the
coupling gradient (N x K) @ (K x N), 4 K N^2 FLOPs. Limit: the machine's float64
matrix-multiply rate on those shapes, measured in this run. Last line: ratio=<number>.

usage: python benchmarks/bench_train.py [--cycles 10] [--batch 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import matmul_rate  # noqa: E402

from thermohw.data import Digits  # noqa: E402
from thermohw.train import TrainConfig, new_state, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    p = rng.normal(size=(3, 784))
    d = Digits((p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True), [0, 1, 2], (28, 28), "random")
    st = new_state(d, TrainConfig(cycles=1, batch=a.batch), n_hidden=512)
    st = train(st, progress=False)  # warm-up
    N, K = st.computer.n_units, 2500 * a.batch
    peak = matmul_rate(K, N)
    st = new_state(d, TrainConfig(cycles=a.cycles, batch=a.batch), n_hidden=512)
    t = time.perf_counter()
    train(st, progress=False)
    sec = time.perf_counter() - t
    flops = 4.0 * K * N * N * a.cycles
    print(f"computer: N = {N}, batch = {a.batch}, {a.cycles} cycles of {K} recorded steps")
    print(f"machine matmul rate (float64, {K}x{N} @ {N}x{N}): {peak / 1e9:.1f} GFLOP/s")
    print(f"training: {a.cycles / sec:.2f} cycles/s ({sec / a.cycles:.3f} s/cycle), "
          f"{flops / sec / 1e9:.1f} GFLOP/s in the gradient products")
    print(f"ratio={flops / sec / peak:.3f}")


if __name__ == "__main__":
    main()
