"""RMS parameter error of the fit against the number of recorded trajectories (must-show 1).

An 8-unit dense chip (8-bit RC preset) with hidden mismatch at 3x the preset's component
spreads is recorded under bias steps (amplitude 1, 10 model time units per run, sample
interval 0.01, ideal virtual chip: the Euler likelihood is exact). For each number of runs the
fit is repeated on independent recordings; the table gives, per parameter class, the RMS of
(fit - hidden truth), the RMS Cramer-Rao bound, and the z-score mean / sd over all parameters.

    python calibration/error_vs_trajectories.py [--repeats 8] [--out table.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from thermohw.calibrate import IdealVirtualChip, design, fit
from thermohw.compile import CompileOptions, compile_computer
from thermohw.computer import Computer


def small_program(seed: int = 1, scale: float = 0.3):
    rng = np.random.default_rng(seed)
    c = Computer.zeros(4, 4, connectivity="dense")
    J = rng.normal(0, scale, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    c = c.replace(J=J, b=rng.normal(0, scale, c.n_units))
    return compile_computer(c, "rc-8bit-dense", CompileOptions(range="full"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--runs", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--mobility", choices=["bias", "nominal"], default="bias")
    ap.add_argument("--out", help="write the table as JSON here")
    a = ap.parse_args(argv)
    p = small_program()
    chip = IdealVirtualChip(chip_seed=7, scale=3.0)
    chip.program(p)
    truth = chip.reveal()
    kinds = ["J2", "J4", "b", "K", "mu", "kT"] if a.mobility == "bias" else ["J2", "J4", "b", "K", "kT"]
    rows = []
    t0 = time.time()
    for R in a.runs:
        err2 = {k: [] for k in kinds}
        crb2 = {k: [] for k in kinds}
        zs = []
        for r in range(a.repeats):
            rec = chip.run(design.bias_steps(8, R, 1.0, seed=1000 * R + r), a.duration, 0.01, seed=7000 * R + r)
            f = fit(rec, mask=p.realised.mask, mobility=a.mobility,
                    mu=p.realised.mu if a.mobility == "nominal" else None)
            e = f.value - f.truth_vector(truth)
            c = f.cramer_rao(truth)
            names = np.array([n.split("[")[0] for n in f.names])
            for k in kinds:
                err2[k].append(e[names == k] ** 2)
                crb2[k].append(c[names == k] ** 2)
            zs.append(e / f.se)
        z = np.concatenate(zs)
        row = {"runs": R, "transitions": R * int(round(a.duration / 0.01)), "z_mean": float(z.mean()),
               "z_sd": float(z.std())}
        for k in kinds:
            row[f"rms_{k}"] = math.sqrt(float(np.mean(np.concatenate(err2[k]))))
            row[f"crb_{k}"] = math.sqrt(float(np.mean(np.concatenate(crb2[k]))))
        rows.append(row)
    head = "| runs | " + " | ".join(f"{k} err (CRB)" for k in kinds) + " | z mean | z sd |"
    print(head)
    print("|" + "---|" * (len(kinds) + 3))
    for row in rows:
        print(f"| {row['runs']} | " + " | ".join(f"{row['rms_' + k]:.4f} ({row['crb_' + k]:.4f})" for k in kinds)
              + f" | {row['z_mean']:+.3f} | {row['z_sd']:.3f} |")
    print(f"({a.repeats} recordings per row, {time.time() - t0:.0f} s)", file=sys.stderr)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"setup": vars(a), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
