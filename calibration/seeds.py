"""Calibration over many chips: the experiment of docs/calibration.md on several chip seeds.

    python calibration/seeds.py PROG [--seeds 0 1 2 3 4 7] [--out OUT]

PROG is a compiled program (docs/calibration.md: the 64 + 32 bundled-digits model,
``thermohw compile model.npz --target rc-8bit-dense --bits 8 --bias-margin 0.4``). Each chip
is the fast ideal-Langevin twin (``--device virtual-ideal``) with 5x the preset's component
spreads and its own seed; each is measured (4096 bias-step runs, amplitude 4), corrected 4
times and measured again, as ``thermohw calibrate``. Then the intended model, the chip before
and the chip after correction (hidden truth) generate with the same noise seed, so their
per-sample heat and digit-score differences are paired. Prints one row per chip:

    seed, RMS coupling error before / after (hidden truth vs intended) and the reduction,
    paired <Q> difference from the intended model before / after, in intended kT and in % of
    the intended <Q>, each +- its standard error, paired digit-score difference after, and
    the number of out-of-range elements

and the median reduction. ``OUT/seed<k>/measurements`` checkpoints every fit (a rerun
resumes), ``OUT/seeds.json`` holds the table. ``--no-J4-trim`` / ``--no-mu-trim`` calibrate
as if the target lacked those trims (the chip's other trims then compensate in generation,
``CorrectionConfig.match_generation``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from thermohw.calibrate import IdealVirtualChip, design
from thermohw.calibrate.correct import CorrectionConfig, calibrate, parameter_errors
from thermohw.compile import CompiledProgram
from thermohw.data import Digits, reference_set
from thermohw.io import write_json
from thermohw.langevin import generate
from thermohw.metrics import digit_scores, mean_ci


def one_chip(prog: CompiledProgram, seed: int, args, out: Path, digits) -> dict:
    intended = prog.realised
    chip = IdealVirtualChip(chip_seed=seed, scale=args.mismatch_scale)
    truths = []
    cfg = CorrectionConfig(iterations=args.iterations, discretisation="euler", trim_J4=not args.no_J4_trim,
                           trim_mu=not args.no_mu_trim, match_generation=args.match_runs)
    t0 = time.perf_counter()
    res = calibrate(chip, prog, protocol=design.bias_steps(intended.n_units, args.runs, args.amplitude, 0),
                    duration=20.0, sample_interval=0.01, seed=0, config=cfg, intended=intended,
                    chunk_runs=256, on_iteration=lambda k, q, f, rec: truths.append(chip.reveal()),
                    checkpoint=out / f"seed{seed}" / "measurements")
    t_cal = time.perf_counter() - t0
    e0, e1 = parameter_errors(truths[0], intended), parameter_errors(truths[-1], intended)
    kw = dict(n_visible=intended.n_visible, image_shape=intended.image_shape, symmetrise=True)
    models = {"intended": intended, "before": truths[0].to_computer(**kw), "after": truths[-1].to_computer(**kw)}
    gens = {k: generate(c, args.generate_runs, dt=1e-3, seed=17, stratonovich=False) for k, c in models.items()}
    kT0 = intended.kT_ref
    heat = {k: g.heat / kT0 for k, g in gens.items()}
    q0 = float(np.mean(heat["intended"]))
    row = {"seed": seed, "J_before": e0["J"], "J_after": e1["J"], "reduction": e0["J"] / e1["J"],
           "errors_before": e0, "errors_after": e1, "Q_intended": mean_ci(heat["intended"]),
           "out_of_range": len(res.out_of_range), "out_of_range_elements": [o["element"] for o in res.out_of_range],
           "untrimmable": res.untrimmable, "seconds_calibration": t_cal,
           "seconds_total": time.perf_counter() - t0}
    for k in ("before", "after"):
        d = mean_ci(heat[k] - heat["intended"])
        row[f"dQ_{k}"] = {**d, "percent": 100 * d["mean"] / q0, "percent_sem": 100 * d["sem"] / q0}
    if digits is not None:
        nv = intended.n_visible
        ref = reference_set(digits)
        per = {k: np.asarray(digit_scores(g.x_final[:, :nv], digits.patterns, digits.labels, reference=ref)
                             ["per_sample"]["best_abs_corr"]) for k, g in gens.items()}
        for k in ("before", "after"):
            row[f"dcorr_{k}"] = mean_ci(per[k] - per["intended"])
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("program")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 7])
    ap.add_argument("--out", default="calib-seeds")
    ap.add_argument("--runs", type=int, default=4096)
    ap.add_argument("--amplitude", type=float, default=4.0)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--mismatch-scale", type=float, default=5.0)
    ap.add_argument("--generate-runs", type=int, default=4000)
    ap.add_argument("--match-runs", type=int, default=0,
                    help="paired generation runs per candidate when matching untrimmed errors (0: off)")
    ap.add_argument("--no-J4-trim", action="store_true")
    ap.add_argument("--no-mu-trim", action="store_true")
    args = ap.parse_args(argv)
    prog = CompiledProgram.load(args.program)
    out = Path(args.out)
    dfile = Path(args.program) / "digits.npz"
    digits = Digits.load(dfile) if dfile.is_file() else None
    rows = []
    hdr = (f"{'seed':>4} {'J before':>9} {'J after':>9} {'reduct':>7} {'dQ before [kT]':>16} {'%':>6} "
           f"{'dQ after [kT]':>16} {'% +- se':>13} {'dcorr after':>17} {'OOR':>4}")
    print(hdr, flush=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("seeds", "out")}
    for s in args.seeds:
        cache = out / f"seed{s}" / "row.json"
        r = None
        if cache.is_file():     # a chip already done with these settings: reuse its row
            old = json.loads(cache.read_text())
            r = old["row"] if old.get("settings") == settings else None
        if r is None:
            r = one_chip(prog, s, args, out, digits)
            write_json(cache, {"settings": settings, "row": r})
        rows.append(r)
        b, a = r["dQ_before"], r["dQ_after"]
        dc = r.get("dcorr_after", {"mean": float("nan"), "sem": float("nan")})
        print(f"{s:>4} {r['J_before']:9.5f} {r['J_after']:9.5f} {r['reduction']:6.1f}x "
              f"{b['mean']:+8.2f} ± {b['sem']:.2f} {b['percent']:+5.1f}% "
              f"{a['mean']:+8.3f} ± {a['sem']:.3f} {a['percent']:+5.2f}±{a['percent_sem']:.2f}% "
              f"{dc['mean']:+.4f} ± {dc['sem']:.4f} {r['out_of_range']:>4}   ({r['seconds_total']:.0f} s)",
              flush=True)
        write_json(out / "seeds.json", {"settings": vars(args), "rows": rows})
    red = statistics.median(r["reduction"] for r in rows)
    worst = max(abs(r["dQ_after"]["percent"]) for r in rows)
    print(f"median coupling-error reduction {red:.1f}x; worst |paired dQ after| {worst:.2f} % of <Q>")
    write_json(out / "seeds.json", {"settings": vars(args), "rows": rows, "median_reduction": red,
                                    "worst_abs_dQ_after_percent": worst})


if __name__ == "__main__":
    main()
