"""Heat-counting conventions for the generation protocol (the heat gap, docs/heat-gap.md).

The published <Q> = 2.9e3 kT is ~2x ours. Training-side hypotheses (length, pixel scaling,
batch size, learning rate) need trained models; this script tests the *counting* side on one
trained model: which potential terms enter the heat, which discretisation of the heat sum, and
which start state generation begins from. It integrates the protocol with its own plain
float64 Euler-Maruyama loop (independent of thermohw.langevin, so it also cross-checks the
library's heat) and prints one row per convention: <Q> +- s.d. over runs, in kT, and the
digits' mean best |corr| where the convention changes the trajectory.

usage: python tools/heat_gap.py MODEL.npz [--digits DIGITS.npz] [--runs 200] [--seed 0] [-o OUT.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from thermohw.computer import Computer
from thermohw.data import Digits
from thermohw.io import atomic_write
from thermohw.metrics import digit_scores
from thermohw.workflow import digits_file_beside


def parts(c: Computer, x: np.ndarray) -> dict[str, np.ndarray]:
    """The potential's terms per run: on-site J2 x^2 + J4 x^4, bias b.x, couplings sum_{i<j}."""
    x2 = x * x
    return {"onsite": x2 @ c.J2 + (x2 * x2) @ c.J4, "bias": x @ c.b,
            "couplings": 0.5 * np.einsum("ri,ri->r", x @ c.J, x)}


def run(c: Computer, x0: np.ndarray, t: float, dt: float, rng: np.random.Generator) -> dict:
    """Euler-Maruyama for time t from x0 (runs, N); heat sums in three discretisations:
    pre-point (Ito), trapezoid (Stratonovich) and post-point, each -sum grad V . dx."""
    x = x0.copy()
    amp = np.sqrt(2.0 * c.mu * c.kT * dt)
    g = c.grad(x)
    q = {"ito": np.zeros(len(x)), "strat": np.zeros(len(x)), "post": np.zeros(len(x))}
    for _ in range(int(round(t / dt))):
        xn = x - c.mu * g * dt + amp * rng.standard_normal(x.shape)
        gn = c.grad(xn)
        dx = xn - x
        pre, post = np.einsum("ri,ri->r", g, dx), np.einsum("ri,ri->r", gn, dx)
        q["ito"] -= pre
        q["post"] -= post
        q["strat"] -= 0.5 * (pre + post)
        x, g = xn, gn
    return {"x": x, **q}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--digits", help="training digits (default: MODEL's NAME.digits.npz or digits.npz beside it)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t-f", type=float, default=2.5)
    ap.add_argument("--dt", type=float, default=1e-3)
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    c = Computer.load(a.model)
    dpath = Path(a.digits) if a.digits else digits_file_beside(a.model)
    d = Digits.load(dpath) if dpath else None
    kT = float(np.mean(c.kT))
    rng = np.random.default_rng(a.seed)
    N, R, nv = c.n_units, a.runs, c.n_visible
    free = c.coupling_free()

    def stats(q: np.ndarray) -> dict:
        q = np.asarray(q) / kT
        return {"mean_kT": float(q.mean()), "sd_kT": float(q.std(ddof=1)), "sem_kT": float(q.std(ddof=1) / np.sqrt(len(q)))}

    def digits_of(x: np.ndarray) -> float | None:
        return None if d is None else float(digit_scores(x[:, :nv], d.patterns, d.labels)["mean_best_abs_corr"])

    # the protocol as thermohw runs it: coupling-free equilibration from 0, then the trained model
    eq = run(free, np.zeros((R, N)), a.t_f, a.dt, rng)
    gen = run(c, eq["x"], a.t_f, a.dt, rng)
    p0, pf = parts(c, eq["x"]), parts(c, gen["x"])
    v0, vf = sum(p0.values()), sum(pf.values())
    rows = {}

    def row(name: str, q, x=None, note: str = "") -> None:
        rows[name] = {**stats(q), "mean_best_abs_corr": digits_of(x) if x is not None else None, "note": note}

    row("ours: V(x0) - V(x_f), full V, coupling-free start", v0 - vf, gen["x"],
        "thermohw sample's heat_kT")
    row("Stratonovich sum -sum grad V(mid) dx", gen["strat"], note="same physics, O(dt) apart")
    row("Ito (pre-point) sum -sum grad V(x_n) dx", gen["ito"],
        note="a discretisation artefact: + sum V'' (dx)^2 / 2 ~ mu kT t_f sum <V''>")
    row("post-point sum -sum grad V(x_n+1) dx", gen["post"])
    row("couplings counted per ordered pair (sum_{i != j})", v0 - vf + p0["couplings"] - pf["couplings"])
    row("without on-site terms (couplings + biases)", (v0 - p0["onsite"]) - (vf - pf["onsite"]))
    row("on-site terms only", p0["onsite"] - pf["onsite"])
    row("visible units' terms only (on-site + bias + their couplings)",
        _visible(c, eq["x"]) - _visible(c, gen["x"]))
    row("both phases from x = 0 (equilibration heat included)",
        (free.energy(np.zeros((1, N)))[0] - free.energy(eq["x"])) + (v0 - vf))
    z = run(c, np.zeros((R, N)), a.t_f, a.dt, rng)
    row("start x = 0 (no equilibration)", -c.energy(z["x"]) + c.energy(np.zeros((1, N)))[0], z["x"])
    g1 = rng.standard_normal((R, N))
    n1 = run(c, g1, a.t_f, a.dt, rng)
    row("start x ~ N(0, 1) per unit (a diffusion prior)", c.energy(g1) - c.energy(n1["x"]), n1["x"])
    out = {"model": str(a.model), "runs": R, "seed": a.seed, "t_f": a.t_f, "dt": a.dt, "kT": kT,
           "start_terms_kT": {k: float(v.mean() / kT) for k, v in p0.items()},
           "final_terms_kT": {k: float(v.mean() / kT) for k, v in pf.items()}, "conventions": rows}
    w = max(len(k) for k in rows)
    print(f"{'convention':<{w}}  <Q> kT      s.d.    best|corr|")
    for k, r in rows.items():
        dc = f"{r['mean_best_abs_corr']:.3f}" if r["mean_best_abs_corr"] is not None else "  -"
        print(f"{k:<{w}}  {r['mean_kT']:8.1f}  {r['sd_kT']:7.1f}  {dc}")
    print("terms at start (kT):", {k: round(v, 1) for k, v in out["start_terms_kT"].items()})
    print("terms at end   (kT):", {k: round(v, 1) for k, v in out["final_terms_kT"].items()})
    if a.out:
        atomic_write(a.out, lambda f: f.write(json.dumps(out, indent=1)), mode="w")


def _visible(c: Computer, x: np.ndarray) -> np.ndarray:
    """The terms of V that involve a visible unit: its on-site and bias terms and every coupling
    with a visible end (the paper's model has no visible-visible couplings)."""
    nv = c.n_visible
    xv = x[:, :nv]
    x2 = xv * xv
    cpl = np.einsum("ri,ri->r", xv @ c.J[:nv, nv:], x[:, nv:]) + 0.5 * np.einsum("ri,ri->r", xv @ c.J[:nv, :nv], xv)
    return x2 @ c.J2[:nv] + (x2 * x2) @ c.J4[:nv] + xv @ c.b[:nv] + cpl


if __name__ == "__main__":
    main()
