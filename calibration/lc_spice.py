"""Calibration beyond RC: an LC chip in ngspice with hidden mismatch (docs/calibration.md#lc).

    python calibration/lc_spice.py OUT [--runs 1024] [--iterations 3] [--chip-seed 1] [--workers 2]

An 8-unit all-to-all model (random couplings and biases, sd 0.3, J2 = J4 = 1, kT = 0.1; seed 2)
is compiled onto ``lc-overdamped-96`` with trim room (``--coupling-headroom 1.24
--bias-margin 1``, the 5x spreads below need it) and programmed into the SPICE virtual chip:
the compiled RLC netlist with the LC backend's own mismatch (``backends.lc.Mismatch``: C, L, R,
the quartic and coupling CCCS gains, series offsets, the noise amplitude) at 5x the preset's
spreads, every coupling direction its own element. Each measurement records ``--runs``
bias-step runs (amplitude 4) of 20 model time units, sampled every 0.005 with one TRRANDOM hold
per sample; the fit uses the continuous-time likelihood. The chip is corrected
``--iterations`` times and measured once more; ``OUT/report.json`` has the hidden truth before
and after (``virtual_truth``) and ``OUT/measurements`` checkpoints every fit (a rerun resumes).
About 10-16 minutes of ngspice per measurement on 2 cores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from thermohw import Computer
from thermohw.calibrate.devices import SpiceVirtualChip
from thermohw.calibrate.report import CalibrationSetup, run_calibration
from thermohw.compile import CompileOptions, compile_computer


def model() -> Computer:
    """8 dense units, couplings and biases N(0, 0.3) (seed 2); the tests' ``random_computer(4, 4,
    seed=2, connectivity='dense')``."""
    rng = np.random.default_rng(2)
    c = Computer.zeros(4, 4, connectivity="dense", J2=1.0, J4=1.0, kT=0.1, mu=1.0)
    J = rng.normal(0, 0.3, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    return c.replace(J=J, b=rng.normal(0, 0.3, c.n_units))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=1024)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--chip-seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    p = compile_computer(model(), "lc-overdamped-96", CompileOptions(coupling_headroom=1.24, bias_margin=1.0))
    p.save(a.out / "program")
    chip = SpiceVirtualChip(chip_seed=a.chip_seed, scale=5.0, workers=a.workers, nt_per_sample=1, runs_per_netlist=32)
    setup = CalibrationSetup(runs=a.runs, duration=20.0, sample_interval=0.005, amplitude=4.0,
                             iterations=a.iterations, seed=0, generate_runs=1000, chunk_runs=256)
    rep = run_calibration(p, chip, a.out, setup, progress=True)
    print("\n".join(rep.verdicts))


if __name__ == "__main__":
    main()
