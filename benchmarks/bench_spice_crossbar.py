"""ngspice cost of crossbar chips (784 pixel rows x K hidden columns, all hidden pairs coupled)
and one whole run of the shipped MNIST chip netlist.

1. Random crossbar programs for K = 8 ... 48 (couplings of the shipped model's size), the RC
   netlist (``rc.netlist``, from x = 0) at a fixed noise interval NT = 1e-3 tau, run for 0.1 tau:
   seconds per 1000 noise samples against K. Eliminating a pixel node fills in the K x K block
   of its hidden nodes, so a factorisation costs ~784 K^2 (+ K^3/3): the fitted exponent for
   K >= 16 should be near 2.
2. ``ngspice -b -r out.raw netlists/mnist-chip.cir`` exactly as a designer runs it.

Limit: the budget of 10 minutes per run; ratio = 600 s / measured seconds of (2).
usage: python benchmarks/bench_spice_crossbar.py [--skip-full]
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from thermohw import Computer, Target
from thermohw.backends import rc
from thermohw.compile import CompileOptions, compile_computer
from thermohw.computer import connectivity_mask

ROOT = Path(__file__).resolve().parent.parent


def crossbar_program(k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 784 + k
    mask = connectivity_mask(784, k, "paper")
    J = rng.normal(0, 0.15, (n, n))
    J[784:, 784:] *= 6  # hidden pairs are the strong couplings in the trained model
    J = np.where(mask, (J + J.T) / 2, 0.0)
    t = Target.preset("rc-mnist-crossbar").replace(units=n, couplings={"min": -4.0, "max": 4.0, "bits": 8})
    return compile_computer(Computer(J=J, b=np.zeros(n), mask=mask, n_visible=784, image_shape=(28, 28)), t,
                            CompileOptions(t_f=0.1))


def ngspice_seconds(netlist: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "c.cir").write_text(netlist)
        t0 = time.perf_counter()
        subprocess.run(["ngspice", "-b", "-r", "o.raw", "c.cir"], cwd=d, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    rows = []
    for k in (8, 16, 24, 32, 48):
        p = crossbar_program(k)
        circ = p.artefact
        nt = 1e-3 * circ.tau
        n_samples = int(round(0.1 * circ.tau / nt))
        x0 = np.zeros(circ.n_units)
        sec = ngspice_seconds(rc.netlist(circ, t_stop=0.1 * circ.tau, nt=nt, seed=1, x0=x0))
        rows.append((k, 1000 * sec / n_samples))
        print(f"K = {k:3d}: {p.realised.n_couplings:6d} couplings, {sec:6.2f} s for {n_samples} noise samples "
              f"= {1000 * sec / n_samples:7.1f} s per 1000", flush=True)
    a = np.array([r for r in rows if r[0] >= 16])
    expo = float(np.polyfit(np.log(a[:, 0]), np.log(a[:, 1]), 1)[0])
    print(f"fitted exponent (K >= 16): {expo:.2f} (784 K^2 elimination: 2)")
    if "--skip-full" in sys.argv:
        print(f"ratio={expo / 2:.3f}")
        return
    net = (ROOT / "netlists" / "mnist-chip.cir").read_text()
    sec = ngspice_seconds(net)
    print(f"netlists/mnist-chip.cir, one whole generation run in plain ngspice: {sec:.1f} s (budget 600 s)")
    print(f"ratio={600.0 / sec:.2f}")


if __name__ == "__main__":
    main()
