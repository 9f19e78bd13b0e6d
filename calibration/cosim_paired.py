"""Paired comparison of co-simulations that share their noise seeds (same ``--seed``): the
per-run differences of heat and digit score from a reference co-simulation are far more
precise than the unpaired comparison of each with the ideal model.

    python calibration/cosim_paired.py PROGRAM REFERENCE_COSIM OTHER_COSIM [OTHER_COSIM ...]

e.g. after calibration/digits_96.sh OUT:
    python calibration/cosim_paired.py OUT/prog OUT/cosim-intended OUT/cal/cosim-before OUT/cal/cosim-after
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from thermohw.compile import CompiledProgram
from thermohw.cosim import load_runs
from thermohw.data import Digits
from thermohw.errors import InputError
from thermohw.metrics import digit_scores


def _ci(v: np.ndarray) -> tuple[float, float]:
    return float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("program", help="the compiled program the co-simulations compare against")
    ap.add_argument("cosims", nargs="+", help="cosim output folders; the first is the reference")
    a = ap.parse_args(argv)
    if len(a.cosims) < 2:
        raise InputError("give a reference cosim folder and at least one other")
    p = CompiledProgram.load(a.program)
    kT = p.realised.kT_ref
    dfile = Path(a.program) / "digits.npz"
    digits = Digits.load(dfile) if dfile.is_file() else None
    runs = {c: load_runs(Path(c) / "spice_runs.npz")[1] for c in a.cosims}
    common = sorted(set.intersection(*(set(r["index"].tolist()) for r in runs.values())))
    if len(common) < 2:
        raise InputError("the co-simulations share fewer than 2 run indices")
    idx = np.array(common)
    Q, C = {}, {}
    for c, r in runs.items():
        sel = np.searchsorted(r["index"], idx)
        Q[c] = r["heat"][sel] / kT
        if digits is not None:
            sc = digit_scores(r["x_final"][sel][:, :p.realised.n_visible], digits.patterns, digits.labels)
            C[c] = np.asarray(sc["per_sample"]["best_abs_corr"])
    ref = a.cosims[0]
    print(f"{len(idx)} runs paired by index; heat in the program's kT; reference {ref}")
    for c in a.cosims:
        line = f"{c}: <Q> {_ci(Q[c])[0]:.2f} ± {_ci(Q[c])[1]:.2f}"
        if C:
            line += f", best |corr| {_ci(C[c])[0]:.4f} ± {_ci(C[c])[1]:.4f}"
        if c != ref:
            m, s = _ci(Q[c] - Q[ref])
            line += f"; paired dQ {m:+.2f} ± {s:.2f} (t = {m / s:.2f})"
            if C:
                m, s = _ci(C[c] - C[ref])
                line += f", paired d|corr| {m:+.4f} ± {s:.4f} (t = {m / s:.2f})"
        print(line)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as e:
        print(f"cosim_paired: error: {e}", file=sys.stderr)
        sys.exit(1)
