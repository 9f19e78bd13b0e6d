"""Bit-width sweep: compile a trained model onto a dense RC target at 2..8 coupling bits and
generate digits with each *realised* model (the exact ideal model the quantised chip runs).

usage: python examples/bitwidth_sweep.py runs/paper/model.npz -o runs/sweep [--runs 300] [--bits 2 3 4 5 6 7 8]
       python examples/bitwidth_sweep.py --replot runs/sweep/sweep.json -o OUT [--format svg]   (redraw only)

Every bit width uses the same generation seed (common random numbers), so differences
between rows are mostly the quantisation, not sampling noise. Writes sweep.json, sweep.md
and sweep.png into OUT.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from thermohw import CompileOptions, Computer, Target, compile_computer, generate
from thermohw.data import Digits
from thermohw.io import atomic_write, write_json
from thermohw.metrics import digit_scores, heat_stats
from thermohw import plots


def row(name, c, src, digits, runs, seed, J_err=None):
    t = time.perf_counter()
    tr = generate(c, runs, seed=seed, stratonovich=False)
    sc = digit_scores(tr.x_final[:, :c.n_visible], digits.patterns, digits.labels)
    h = heat_stats(tr.heat_kT)
    iu = np.triu_indices(c.n_units, 1)
    m = src.mask[iu]
    err = c.J[iu][m] - src.J[iu][m]
    return {"config": name, "coupling_rms_error": float(np.sqrt(np.mean(err ** 2))),
            "coupling_rms_relative": float(np.sqrt(np.mean(err ** 2)) / np.sqrt(np.mean(src.J[iu][m] ** 2))),
            "mean_best_abs_corr": sc["mean_best_abs_corr"], "sem_best_abs_corr": sc["sem_best_abs_corr"],
            "modes": [(mo["label"], mo["upright"] + mo["inverted"]) for mo in sc["modes"]],
            "all_modes": sc["all_modes_present"], "heat_mean_kT": h["mean_kT"], "heat_sem_kT": h["sem_kT"],
            "heat_sd_kT": h["sd_kT"], "seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--replot", metavar="SWEEP.json", help="redraw sweep.png from a sweep.json, no generation")
    ap.add_argument("--format", choices=plots.FORMATS, default="png", help="plot file format (default png)")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--digits", help="digits.npz (default: beside the model)")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    a = ap.parse_args()
    plots.set_format(a.format)
    if a.replot:
        import json

        sweep = json.loads(Path(a.replot).read_text())
        print(plots.bitwidth_sweep(sweep["rows"], Path(a.out) / "sweep.png", n=sweep.get("runs")))
        return
    if not a.model:
        ap.error("give MODEL (or --replot SWEEP.json)")
    src = Computer.load(a.model)
    digits = Digits.load(a.digits or Path(a.model).with_name("digits.npz"))
    target = Target.preset("rc-8bit-dense").replace(units=src.n_units, name="rc-dense-sweep")
    out = Path(a.out)
    rows = [row("float", src, src, digits, a.runs, a.seed)]
    print(rows[-1])
    for b in a.bits:
        p = compile_computer(src, target, CompileOptions(bits=b))
        r = row(f"{b} bits", p.realised, src, digits, a.runs, a.seed)
        r["lsb"] = p.report["quantise"]["coupling_lsb"]
        r["rounded_to_zero"] = p.report["quantise"]["couplings_rounded_to_zero"]
        rows.append(r)
        print(r)
    write_json(out / "sweep.json", {"model": a.model, "runs": a.runs, "seed": a.seed, "rows": rows})
    lines = ["| couplings | coupling RMS error (rel.) | zeroed | mean best abs corr | modes | <Q> [kT] |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['coupling_rms_error']:.2e} ({100 * r['coupling_rms_relative']:.1f} %) | "
                     f"{r.get('rounded_to_zero', 0)} | {r['mean_best_abs_corr']:.3f} ± {r['sem_best_abs_corr']:.3f} | "
                     f"{', '.join(f'{l}:{n}' for l, n in r['modes'])} | {r['heat_mean_kT']:.0f} ± {r['heat_sem_kT']:.0f} |")
    atomic_write(out / "sweep.md", lambda fh: fh.write("\n".join(lines) + "\n"), mode="w")
    plots.bitwidth_sweep(rows, out / "sweep.png", n=a.runs)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
