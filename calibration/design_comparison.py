"""Which recording identifies a chip best? Cramer-Rao bounds of candidate designs, compared at
equal recorded time, before touching the chip (``thermohw.calibrate.design.predicted_errors``).

Designs (all runs start from rest; sample interval 0.01; same total recorded model time):
    free runs            no imposed bias: only the thermal fluctuations excite the units
    bias steps, A        every run its own random bias U(-A, A) on every unit
    pairwise, A          two runs per coupled pair: h_i = h_j = A and h_i = -h_j = A
    zero couplings + A   every coupling code zero, bias steps: the on-site parameters alone

The table is the RMS bound per parameter class (mobility fixed to the program's, so every
design is comparable; bias steps also identify mu - see 'thermohw calibrate --mobility bias')
and the worst condition number of a unit's scale-free information.

    python calibration/design_comparison.py [--program FOLDER] [--time 2560]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from thermohw.calibrate import design
from thermohw.compile import CompiledProgram, CompileOptions, compile_computer
from thermohw.computer import Computer


def small_program(seed: int = 1, scale: float = 0.3) -> CompiledProgram:
    """The 8-unit dense chip of error_vs_trajectories.py."""
    rng = np.random.default_rng(seed)
    c = Computer.zeros(4, 4, connectivity="dense")
    J = rng.normal(0, scale, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    return compile_computer(c.replace(J=J, b=rng.normal(0, scale, c.n_units)), "rc-8bit-dense",
                            CompileOptions(range="full"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--program", help="a 'thermohw compile' folder; default: an 8-unit dense demo chip")
    ap.add_argument("--time", type=float, default=2560.0, help="recorded model time per design (default 2560)")
    ap.add_argument("--duration", type=float, default=20.0, help="model time per run (default 20)")
    a = ap.parse_args(argv)
    p = CompiledProgram.load(a.program) if a.program else small_program()
    n = p.realised.n_units
    runs = max(2, int(round(a.time / a.duration)))
    mask = p.realised.mask
    pairs = int(np.count_nonzero(np.triu(mask, 1)))
    designs = [("free runs", p, design.free_runs(n, runs), mask)]
    for amp in (1.0, 2.0, 4.0):
        designs.append((f"bias steps, A = {amp:g}", p, design.bias_steps(n, runs, amp, seed=1), mask))
    for amp in (1.0, 2.0):
        rep = max(1, int(round(runs / (2 * pairs))))
        designs.append((f"pairwise, A = {amp:g} ({2 * pairs * rep} runs)", p,
                        design.pairwise(mask, amp, repeats=rep), mask))
    designs.append(("zero couplings + bias steps, A = 2", design.zero_couplings(p),
                    design.bias_steps(n, runs, 2.0, seed=1), np.zeros_like(mask)))
    print(f"{n} units, {pairs} couplings; {a.time:g} model time units per design ({a.duration:g} per run)\n")
    print("| design | J2 | J4 | b | K | kT | worst condition |")
    print("|---|---|---|---|---|---|---|")
    for name, prog, proto, m in designs:
        dur = max(1, round(a.time / proto.h.shape[0] / 0.01)) * 0.01     # whole sample intervals
        r = design.predicted_errors(prog, proto, dur, 0.01, mobility="nominal", mask=m, seed=2)
        rms = r["rms_by_kind"]
        cells = [f"{rms[k]:.4f}" if k in rms else "-" for k in ("J2", "J4", "b", "K", "kT")]
        print(f"| {name} | " + " | ".join(cells) + f" | {np.max(r['condition']):.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
