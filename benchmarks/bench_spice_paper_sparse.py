"""One SPICE generation run (t_f = 2.5) of a paper-size computer (784 visible + hidden) compiled
onto a sparse target, against the 10-minute-per-run limit. ratio = 600 s / wall time (>= 1
means within the limit). Last line: ratio=<number>.

usage: python benchmarks/bench_spice_paper_sparse.py [MODEL.npz] [--target rc-kings] [--rows 36 --cols 36]
Without MODEL, a random 784 + hidden computer with the paper's connectivity is used. The
default target is the king's-graph lattice resized to rows x cols sites: a planar, local
graph. (A random degree-16 graph on 1296 units is as slow as a dense one in ngspice: its
sparse LU fills in; see benchmarks/README.md.)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import paper_computer  # noqa: E402
from _spice import time_run  # noqa: E402

from thermohw import Computer, Target, compile_computer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--target", default="rc-kings")
    ap.add_argument("--rows", type=int, default=36)
    ap.add_argument("--cols", type=int, default=36)
    ap.add_argument("--t-f", type=float, default=2.5)
    a = ap.parse_args()
    c = Computer.load(a.model) if a.model else paper_computer()
    t = Target.preset(a.target)
    if t.topology.type == "kings":
        t = t.replace(units=a.rows * a.cols, topology={"type": "kings", "rows": a.rows, "cols": a.cols})
    else:
        t = t.replace(units=max(t.units, c.n_units))
    t0 = time.perf_counter()
    p = compile_computer(c, t)
    print(f"compiled {c.n_units} units onto {a.target}: {p.realised.n_couplings} couplings kept of "
          f"{c.n_couplings} ({time.perf_counter() - t0:.1f} s)")
    sec, k = time_run(p, t_f=a.t_f)
    print(f"one SPICE run of t_f = {a.t_f}: {sec:.1f} s, {k} noise samples, {1000 * sec / k:.2f} s per 1000 samples")
    print(f"ratio={600.0 / sec:.3f}")


if __name__ == "__main__":
    main()
