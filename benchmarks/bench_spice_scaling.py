"""ngspice cost per run against unit count, dense and sparse (degree-limited) couplings.

Sparse graphs: 'degree d' = a banded circulant (each unit coupled to its d nearest ring
neighbours: little sparse-LU fill-in, like a lattice), 'random d' = a random d-regular graph
(an expander: the LU fills in and the cost approaches dense).
Each run: t_f = 0.25 model time units of the RC netlist (one G element per coupling,
TRRANDOM noise at NT = 0.02 / fastest local rate), reported per 1000 noise samples.
Limit: a dense circuit matrix is refactored every step, so dense cost should grow as N^3
(docs/design.md#spice-cost); ratio = fitted dense exponent / 3. Last line: ratio=<number>.

usage: python benchmarks/bench_spice_scaling.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _spice import random_program, time_run  # noqa: E402


def main() -> None:
    rows = []
    for kind, sizes, degree, graph in (("dense", (16, 32, 64, 96, 128, 192), None, ""),
                                       ("degree 8", (64, 128, 256, 512, 1024), 8, "ring"),
                                       ("degree 16", (128, 256, 512), 16, "ring"),
                                       ("random 16", (128, 256, 512), 16, "random")):
        for n in sizes:
            p = random_program(n, degree, graph=graph)
            sec, k = time_run(p, t_f=0.25)
            rows.append((kind, n, p.realised.n_couplings, sec, k, 1000 * sec / k))
            print(f"{kind:9s} N = {n:4d}  couplings = {p.realised.n_couplings:6d}  {sec:7.2f} s for {k} noise "
                  f"samples  = {1000 * sec / k:7.3f} s per 1000 samples", flush=True)
    d = np.array([(n, s) for kind, n, _, _, _, s in rows if kind == "dense"])
    e_dense = np.polyfit(np.log(d[:, 0]), np.log(d[:, 1]), 1)[0]
    s8 = np.array([(n, s) for kind, n, _, _, _, s in rows if kind == "degree 8"])
    e_sparse = np.polyfit(np.log(s8[:, 0]), np.log(s8[:, 1]), 1)[0]
    big = d[d[:, 0] >= 64]
    e_big = np.polyfit(np.log(big[:, 0]), np.log(big[:, 1]), 1)[0]
    print(f"fitted exponent: dense {e_dense:.2f} over all N, {e_big:.2f} for N >= 64; banded degree-8 {e_sparse:.2f} "
          "(time per sample ~ N^exponent)")
    e_dense = e_big
    print(f"ratio={e_dense / 3:.3f}")


if __name__ == "__main__":
    main()
