"""Paired float32 vs float64 generation of a trained model: the same seed, so the same noise.

Each run is generated twice, with the state in float64 and in float32, from the same random
bits. Reported: per-run differences of the heat and of the digit scores (best |corr| with a
training digit, best - second-best margin), as mean +- standard error over runs, beside the
sampling error of each quantity itself (its s.d. / sqrt(runs)): float32 is safe when the paired
difference is far below that sampling error.

usage: python benchmarks/compare_dtype.py MODEL.npz [--digits DIGITS.npz] [--runs 1000] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from thermohw import Computer
from thermohw.data import Digits
from thermohw.langevin import generate
from thermohw.metrics import correlations
from thermohw.workflow import digits_file_beside


def scores(x_visible: np.ndarray, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.abs(correlations(x_visible, patterns))
    srt = np.sort(c, axis=1)
    return srt[:, -1], srt[:, -1] - srt[:, -2], np.argmax(c, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--digits", help="training digits .npz (default: the one beside the model)")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t-f", type=float, default=2.5)
    ap.add_argument("--dt", type=float, default=1e-3)
    a = ap.parse_args()
    c = Computer.load(a.model)
    d = Digits.load(a.digits or digits_file_beside(Path(a.model)))
    tr, sec = {}, {}
    for dtype in ("float64", "float32"):
        t = time.perf_counter()
        tr[dtype] = generate(c, a.runs, t_f=a.t_f, dt=a.dt, seed=a.seed, dtype=dtype)
        sec[dtype] = time.perf_counter() - t
    nv, n = c.n_visible, a.runs
    print(f"model {a.model}: N = {c.n_units} ({nv} + {c.n_hidden}); {n} paired runs, seed {a.seed}, "
          f"t_f = {a.t_f:g}, dt = {a.dt:g}; float64 {sec['float64']:.1f} s, float32 {sec['float32']:.1f} s")
    x64, x32 = tr["float64"].x_final, tr["float32"].x_final
    dx = np.abs(x32 - x64)
    print(f"final states: max |x32 - x64| = {dx.max():.3g}, rms {np.sqrt(np.mean(dx ** 2)):.3g} "
          f"(state s.d. {x64.std():.3g})")
    s64, s32 = scores(x64[:, :nv], d.patterns), scores(x32[:, :nv], d.patterns)
    rows = [("heat <Q> (first law), kT", tr["float64"].heat_kT, tr["float32"].heat_kT),
            ("heat <Q> (Stratonovich), kT", tr["float64"].heat_strat_kT, tr["float32"].heat_strat_kT),
            ("mean best |corr|", s64[0], s32[0]),
            ("mean margin (best - 2nd)", s64[1], s32[1])]
    for name, v64, v32 in rows:
        diff = v32 - v64
        print(f"{name}: float64 {v64.mean():.5g} +- {v64.std(ddof=1) / np.sqrt(n):.3g} (s.e.), "
              f"float32 {v32.mean():.5g}; paired difference {diff.mean():+.3g} +- {diff.std(ddof=1) / np.sqrt(n):.2g} "
              f"(s.e.), max |diff| {np.abs(diff).max():.3g}")
    same = float(np.mean(s64[2] == s32[2]))
    print(f"same best-matching digit in {same:.4f} of runs")


if __name__ == "__main__":
    main()
