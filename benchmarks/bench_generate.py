"""Generation speed: 1000 trajectories x 2500 steps of the 784 + 512 paper computer.

Limit: the machine's dense matrix-multiply rate for the same dtype, measured in this run on
the same shapes. Counted work: 2 runs N^2 FLOPs per step (dense-equivalent coupling force).
ratio = achieved FLOP/s / matmul FLOP/s. Last line: ratio=<number>.

usage: python benchmarks/bench_generate.py [--runs 1000] [--steps 2500] [--model model.npz]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import matmul_rate, paper_computer  # noqa: E402

from thermohw import Computer, simulate  # noqa: E402
from thermohw.langevin import generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--model", help="trained model.npz (default: random couplings, paper connectivity)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    c = Computer.load(a.model) if a.model else paper_computer()
    R, N, K = a.runs, c.n_units, a.steps
    peak = matmul_rate(R, N)
    x0 = generate(c, R, t_f=0.1, dt=1e-3, seed=1, stratonovich=False).x0  # coupling-free equilibrium
    results = {}
    for strat in (False, True):
        t = time.perf_counter()
        simulate(c, x0, n_steps=K, dt=1e-3, seed=2, stratonovich=strat, threads=a.threads)
        results[strat] = time.perf_counter() - t
    t = time.perf_counter()
    simulate(c, x0, n_steps=K // 10, dt=1e-3, seed=2, threads=1)
    naive = (time.perf_counter() - t) * 10
    peak2 = matmul_rate(R, N)
    peak = max(peak, peak2)
    flops = 2.0 * R * N * N * K
    print(f"computer: N = {N} ({c.n_visible} + {c.n_hidden}), {c.n_couplings} couplings; runs = {R}, steps = {K}")
    print(f"machine matmul rate (float64, {R}x{N} @ {N}x{N}, all cores): {peak / 1e9:.1f} GFLOP/s")
    for strat, sec in results.items():
        print(f"generation{' + Stratonovich heat' if strat else ''}: {sec:.1f} s, "
              f"{R * N * K / sec:.3g} unit-steps/s, {flops / sec / 1e9:.1f} GFLOP/s, ratio {flops / sec / peak:.3f}")
    print(f"single-thread loop (extrapolated from {K // 10} steps): ratio {flops / naive / peak:.3f}")
    print(f"ratio={flops / results[True] / peak:.3f}")


if __name__ == "__main__":
    main()
