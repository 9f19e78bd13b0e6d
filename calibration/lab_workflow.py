"""A lab's calibration workflow, end to end, with files in between (as on a real bench).

The bench is played by the SPICE virtual chip (the compiled RC netlist with hidden component
mismatch, run in ngspice); everything the calibration sees goes through oscilloscope-style CSV
captures (node volts, seconds), exactly as a lab's own captures would.

    round 0  program the compiled program, record bias-step traces  -> captures/round0/*.csv
             thermohw calibrate PROGRAM --device replay:captures/round0   -> cal0/ (report, corrected/)
    round 1  program cal0/corrected, record again                    -> captures/round1/*.csv
             thermohw calibrate cal0/corrected --device replay:captures/round1 --intended PROGRAM
                                                                     -> cal1/ (verification + next step)

    python calibration/lab_workflow.py --out /tmp/lab [--program FOLDER]

Without --program, a small 8-unit model is compiled onto the rc-8bit-dense preset (full range).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from thermohw.calibrate import ReplayDevice, design
from thermohw.calibrate.correct import parameter_errors
from thermohw.calibrate.report import CalibrationSetup, run_calibration
from thermohw.calibrate.devices import SpiceVirtualChip
from thermohw.compile import CompiledProgram, CompileOptions, compile_computer
from thermohw.computer import Computer


def small_model(seed: int = 1) -> Computer:
    rng = np.random.default_rng(seed)
    c = Computer.zeros(4, 4, connectivity="dense")
    J = rng.normal(0, 0.5, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    return c.replace(J=J * 0.8 / np.abs(J).max(), b=rng.normal(0, 0.3, c.n_units))


def record(chip: SpiceVirtualChip, program: CompiledProgram, folder: Path, setup: CalibrationSetup, seed: int,
           per_file: int = 8) -> None:
    """The bench: program, record bias-step runs, write one CSV (volts, seconds) per run set."""
    chip.program(program)
    proto = design.bias_steps(program.realised.n_units, setup.runs, setup.amplitude, seed)
    rec = chip.run(proto, setup.duration, setup.sample_interval, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(0, rec.n_runs, per_file):
        rec.select_runs(np.arange(k, min(k + per_file, rec.n_runs))).save_csv(folder / f"runs{k:03d}.csv", si=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--program", help="a 'thermohw compile' folder (rc target); default: a small demo model")
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mismatch-scale", type=float, default=3.0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.program:
        prog = CompiledProgram.load(a.program)
    else:
        prog = compile_computer(small_model(), "rc-8bit-dense", CompileOptions(range="full"))
        prog.save(out / "program")
    setup = CalibrationSetup(runs=a.runs, duration=a.duration, sample_interval=0.01, generate_runs=1000)
    chip = SpiceVirtualChip(chip_seed=11, scale=a.mismatch_scale, workers=a.workers, runs_per_netlist=8)
    t0 = time.time()

    print("round 0: record the uncorrected chip")
    record(chip, prog, out / "captures" / "round0", setup, seed=1)
    rep0 = run_calibration(prog, ReplayDevice(out / "captures" / "round0"), out / "cal0", setup)
    print("\n".join("  " + v for v in rep0.verdicts))
    corrected = CompiledProgram.load(out / "cal0" / "corrected")

    print("round 1: record the chip programmed with the correction")
    record(chip, corrected, out / "captures" / "round1", setup, seed=2)
    rep1 = run_calibration(corrected, ReplayDevice(out / "captures" / "round1"), out / "cal1", setup,
                           intended=prog)
    print("\n".join("  " + v for v in rep1.verdicts))

    # the bench's secret, for this demonstration only
    chip.program(prog)
    before = parameter_errors(chip.reveal(), prog.realised)
    chip.program(corrected)
    after = parameter_errors(chip.reveal(), prog.realised)
    print("hidden truth (virtual bench only): RMS error before -> after one correction: " +
          ", ".join(f"{k} {before[k]:.3g} -> {after[k]:.3g}" for k in ("J", "J_antisymmetric", "b", "J2", "J4", "kT", "mu")))
    print(f"done in {time.time() - t0:.0f} s; reports in {out}/cal0 and {out}/cal1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
