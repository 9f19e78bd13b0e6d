"""Parallel speed-up of SPICE runs: 6 runs (256 units, banded degree 8, t_f = 2.5) with 1 worker, then 2 worker processes.
Limit: the machine's core count (2 here); ratio = speed-up / cores. Last line: ratio=<number>.

usage: python benchmarks/bench_spice_parallel.py [--units 256] [--degree 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _spice import random_program  # noqa: E402

from thermohw.cosim import CosimConfig, prepare, spice_job  # noqa: E402
from thermohw.executor import make_executor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--degree", type=int, default=8)
    ap.add_argument("--runs", type=int, default=6)
    a = ap.parse_args()
    p = random_program(a.units, a.degree)
    specs, _, _ = prepare(p, CosimConfig(runs=a.runs, ideal_runs=2, t_f=2.5))
    times = {}
    for w in (1, 2):
        with make_executor(workers=w) as ex:
            t = time.perf_counter()
            res = ex.map(spice_job, specs, progress=False)
            times[w] = time.perf_counter() - t
        assert all(r.ok for r in res)
        print(f"{a.runs} runs, {w} worker(s): {times[w]:.1f} s")
    cores = len(os.sched_getaffinity(0))
    s = times[1] / times[2]
    print(f"speed-up 1 -> 2 workers: {s:.2f} on {cores} cores")
    print(f"ratio={s / min(2, cores):.3f}")


if __name__ == "__main__":
    main()
