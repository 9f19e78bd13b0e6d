"""Dense float training then compile-and-prune, against topology-aware training, on sparse
targets: coupling count, generated-digit quality and <Q> of each realised model.

usage: python examples/chipaware_compare.py --dense runs/dense/model.npz \
           --aware rc-paper-kings=runs/ta-kings/model.npz --aware rc-paper-local16=runs/ta-local16/model.npz \
           -o runs/chipaware [--runs 300]

Both models of a row must have had the same number of training cycles and the same seed.
Writes compare.json and compare.md into OUT.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from thermohw import CompileOptions, Computer, Target, compile_computer, generate
from thermohw.data import Digits
from thermohw.io import atomic_write, write_json
from thermohw.metrics import digit_scores, heat_stats


def score(c: Computer, digits: Digits, runs: int, seed: int) -> dict:
    tr = generate(c, runs, seed=seed, stratonovich=False)
    sc = digit_scores(tr.x_final[:, :c.n_visible], digits.patterns, digits.labels)
    h = heat_stats(tr.heat_kT)
    return {"couplings": int(np.count_nonzero(np.triu(c.J, 1))), "mean_best_abs_corr": sc["mean_best_abs_corr"],
            "sem_best_abs_corr": sc["sem_best_abs_corr"], "fraction_recognised": sc["fraction_recognised"],
            "modes": [(m["label"], m["upright"] + m["inverted"]) for m in sc["modes"]],
            "heat_mean_kT": h["mean_kT"], "heat_sem_kT": h["sem_kT"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", required=True)
    ap.add_argument("--aware", action="append", required=True, help="TARGET=MODEL.npz")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    dense = Computer.load(a.dense)
    digits = Digits.load(Path(a.dense).with_name("digits.npz"))
    rows = []
    for spec in a.aware:
        name, path = spec.split("=", 1)
        t = Target.preset(name) if not name.endswith((".yaml", ".yml")) else Target.from_yaml(name)
        aware = Computer.load(path)
        pd = compile_computer(dense, t, CompileOptions(prune="prune"))
        pa = compile_computer(aware, t, CompileOptions(prune="refuse"))
        for how, p in (("dense float -> compile-and-prune", pd), ("topology-aware training", pa)):
            r = {"target": name, "model": how, "pruned": p.report["placement"]["couplings_pruned"],
                 **score(p.realised, digits, a.runs, a.seed)}
            rows.append(r)
            print(r, flush=True)
    write_json(Path(a.out) / "compare.json", {"dense": a.dense, "runs": a.runs, "rows": rows})
    lines = ["| target | model | couplings realised | pruned at compile | mean best abs corr | recognised | modes | <Q> [kT] |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['model']} | {r['couplings']} | {r['pruned']} | "
                     f"{r['mean_best_abs_corr']:.3f} ± {r['sem_best_abs_corr']:.3f} | {100 * r['fraction_recognised']:.0f} % | "
                     f"{', '.join(f'{l}:{n}' for l, n in r['modes'])} | {r['heat_mean_kT']:.0f} ± {r['heat_sem_kT']:.0f} |")
    atomic_write(Path(a.out) / "compare.md", lambda fh: fh.write("\n".join(lines) + "\n"), mode="w")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
