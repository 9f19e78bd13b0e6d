"""Training throughput: cycles/s for the 784 + 512 paper computer (t_f = 2.5, dt = 1e-3, batch 1).

Each cycle: a 2 x 2500-step coupling-free noising trajectory, then the path gradient, whose
work is two products over the 2500 recorded steps: forces (K x N) @ (N x N) and the
coupling gradient (N x K) @ (K x N), 4 K N^2 FLOPs as dense products. Limit: the machine's
float64 matrix-multiply rate on those shapes, measured in this run (best of 7). The trainer
skips the visible-visible blocks the paper's model does not have (63 % of the dense FLOPs), so
two ratios are printed: against the dense-equivalent FLOPs (the last line, comparable with
earlier versions) and against the FLOPs actually done. Quick generation scores are off
(score_every = 0): this times training alone. Last line: ratio=<number>.

usage: python benchmarks/bench_train.py [--cycles 20] [--batch 1] [--dense]
  --dense: dense gradient products (no block skipping), to separate the two speed-ups
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
import thermohw.train as T  # noqa: E402
from thermohw.train import TrainConfig, new_state, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dense", action="store_true", help="dense gradient products")
    a = ap.parse_args()
    if a.dense:
        T._BLOCK_PRODUCTS = False
    rng = np.random.default_rng(0)
    p = rng.normal(size=(3, 784))
    d = Digits((p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True), [0, 1, 2], (28, 28), "random")
    st = new_state(d, TrainConfig(cycles=1, batch=a.batch, score_every=0), n_hidden=512)
    st = train(st, progress=False)  # warm-up
    c = st.computer
    N, Nv, K = c.n_units, c.n_visible, 2500 * a.batch
    peak = matmul_rate(K, N)
    cfg = TrainConfig(cycles=a.cycles, batch=a.batch, score_every=0)
    st = new_state(d, cfg, n_hidden=512)
    t = time.perf_counter()
    train(st, progress=False)
    sec = time.perf_counter() - t
    peak = max(peak, matmul_rate(K, N))  # the roofline is the best rate seen, before or after
    flops = 4.0 * K * N * N * a.cycles
    blocked = T._blocks_apply(c, c.mask)
    done = 4.0 * K * (N - Nv) * (N + Nv) * a.cycles if blocked else flops
    g = T.cycles_per_group(N, cfg, a.cycles)
    print(f"computer: N = {N}, batch = {a.batch}, {a.cycles} cycles of {K} recorded steps; noising drawn "
          f"{-(-a.cycles // -(-a.cycles // g))} cycles at a time; gradient products "
          + ("skip the empty visible-visible block" if blocked else "dense"))
    print(f"machine matmul rate (float64, {K}x{N} @ {N}x{N}): {peak / 1e9:.1f} GFLOP/s")
    print(f"training: {a.cycles / sec:.2f} cycles/s ({sec / a.cycles:.3f} s/cycle), "
          f"{flops / sec / 1e9:.1f} dense-equivalent GFLOP/s, {done / sec / 1e9:.1f} GFLOP/s done")
    print(f"ratio_flops_done={done / sec / peak:.3f}")
    print(f"ratio={flops / sec / peak:.3f}")


if __name__ == "__main__":
    main()
