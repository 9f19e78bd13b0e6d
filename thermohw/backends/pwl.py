"""Portable noise for the RC and LC netlists (``thermohw compile --noise pwl``).

TRRANDOM is ngspice's own source; LTspice, Xyce and HSPICE lack it. Every SPICE has the
piecewise-linear source, so the noise is drawn by numpy, held for NT per sample (as TRRANDOM
holds it) and written as one ``PWL`` current source per unit into ``noise.inc``, which the
netlist pulls in with ``.include``. (ngspice 39 reads PWL points only inline, manual 4.1.4;
a file-reading PWL is a LTspice/Xyce extension, so the inline form in an include file is the
one all four simulators accept.) ``noise.npz`` keeps the same standard normals and the start
state, so the realised ideal model can be driven by exactly the noise the netlist gets: a
paired comparison (:func:`paired_ideal`), as ``cosim --noise pwl`` does run by run.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import atomic_write, load_record, save_record
from .common import generation_start
from ..langevin import simulate

NOISE_MODES = ("trrandom", "pwl", "none")
NOISE_INCLUDE = "noise.inc"
NOISE_RECORD = "noise.npz"
NOISE_SCHEMA = "thermohw.noise/1"
PAIRS_PER_LINE = 6  # '+' continuation lines keep the file readable; every SPICE merges them


def held_pwl(values: np.ndarray, nt: float) -> str:
    """PWL points holding values[k] over [k NT, (k+1) NT): a step 0.1 % of NT wide at each edge."""
    k = np.arange(len(values))
    eps = 1e-3 * nt
    t = np.empty(2 * len(values))
    y = np.empty_like(t)
    t[0::2], t[1::2] = k * nt, (k + 1) * nt - eps
    y[0::2] = y[1::2] = values
    return " ".join(f"{a:.9g} {b:.9g}" for a, b in zip(t, y))


def draw(seed: int, k: int, n: int) -> np.ndarray:
    """(K, N) standard normals of a compiled netlist's noise, from its netlist seed (stream 3:
    the start state and the LC velocities use the others)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 3])).standard_normal((k, n))


def source_lines(prefix: str, amplitude: np.ndarray, nt: float, z: np.ndarray) -> list[str]:
    """``<prefix><i> 0 u<i> PWL(...)``: current amplitude_i z[k, i] (A) into node u<i> over
    [k NT, (k+1) NT), wrapped onto continuation lines."""
    out = []
    for i, a in enumerate(np.asarray(amplitude, dtype=np.float64)):
        pts = held_pwl(a * z[:, i], nt).split(" ")
        step = 2 * PAIRS_PER_LINE
        out.append(f"{prefix}{i} 0 u{i} PWL(")
        out += ["+ " + " ".join(pts[j:j + step]) for j in range(0, len(pts), step)]
        out.append("+ )")
    return out


def write_files(folder: str | Path, *, prefix: str, amplitude: np.ndarray, nt: float, z: np.ndarray,
                x0: np.ndarray | None, tau: float, seed: int) -> list[Path]:
    """noise.inc (the sources) and noise.npz (the same standard normals, NT, the start state)."""
    folder = Path(folder)
    amplitude = np.asarray(amplitude, dtype=np.float64)
    head = [f"* thermohw held noise: {z.shape[1]} current sources, {z.shape[0]} samples of NT = {nt:.9g} s "
            f"(drawn with seed {int(seed)}); included by chip.cir",
            f"* source {prefix}<i> injects amplitude_i z[k, i] A into u<i> over [k NT, (k+1) NT); z is in {NOISE_RECORD}"]
    text = "\n".join(head + source_lines(prefix, amplitude, nt, z)) + "\n"
    out = [atomic_write(folder / NOISE_INCLUDE, lambda fh: fh.write(text), mode="w")]
    arrays = {"z": np.asarray(z, dtype=np.float64), "amplitude_A": amplitude}
    if x0 is not None:
        arrays["x0"] = np.asarray(x0, dtype=np.float64)
    out.append(save_record(folder / NOISE_RECORD, NOISE_SCHEMA,
                           {"nt_s": float(nt), "tau_s": float(tau), "seed": int(seed), "prefix": prefix,
                            "note": "z: (K, N) standard normals held for nt_s each; current of source i = "
                                    "amplitude_A[i] * z[k, i]; x0: the start state, model units"},
                           arrays))
    return out


def for_program(p, folder, *, prefix: str, generation_grid, noise_interval, free_run_tau: float):
    """What a backend's ``write`` needs of the noise: its interval NT and start state x0 (the
    generation protocol's, or None for a free run of ``free_run_tau`` time constants), and with
    ``p.options.noise == "pwl"`` the written noise files. Returns (files, include or None, nt, x0).
    ``generation_grid`` / ``noise_interval`` are the backend's own (RC and LC differ there)."""

    circ, seed = p.artefact, int(p.options.netlist_seed)
    if p.options.netlist == "generate":
        _, nt, k = generation_grid(p)
        x0 = generation_start(p)[1]
    else:
        nt, x0 = noise_interval(circ), None
        k = math.ceil(free_run_tau * circ.tau / nt - 1e-9)
    if p.options.noise != "pwl":
        return [], None, nt, x0
    files = write_files(folder, prefix=prefix, amplitude=np.sqrt(circ.s2 / nt), nt=nt,
                        z=draw(seed, k, circ.n_units), x0=x0, tau=circ.tau, seed=seed)
    return files, NOISE_INCLUDE, nt, x0


def load(path: str | Path) -> dict:
    """A noise.npz as {"nt_s", "tau_s", "seed", "z", "amplitude_A", "x0" (or None)}."""
    h, a = load_record(path, NOISE_SCHEMA)
    z = a.get("z")
    if z is None or z.ndim != 2 or not np.all(np.isfinite(z)):
        raise InputError(f"{path}: no finite (K, N) noise array z; compile the program again with --noise pwl")
    return {"nt_s": float(h["nt_s"]), "tau_s": float(h["tau_s"]), "seed": int(h["seed"]), "z": z,
            "amplitude_A": a.get("amplitude_A"), "x0": a.get("x0")}


def paired_ideal(p, noise: dict) -> tuple[np.ndarray, np.ndarray]:
    """(model times (K+1,), states (K+1, N)) of the realised ideal model (RC) driven by the
    netlist's own noise from its written start state: Euler steps of dt = NT, one per held
    sample, which is the process the netlist integrates exactly (differences are O(NT))."""

    if p.target.kind != "rc":
        raise InputError(f"the paired ideal run needs an rc program (overdamped); {p.target.name!r} is "
                         f"{p.target.kind!r}")
    z, x0 = noise["z"], noise["x0"]
    n = p.realised.n_units
    if z.shape[1] != n or x0 is None or x0.shape != (n,):
        raise InputError(f"the noise file is for {z.shape[1]} units (start state "
                         f"{'missing' if x0 is None else x0.shape}), the program has {n}: compile again")
    dt = noise["nt_s"] / noise["tau_s"]
    tr = simulate(p.realised, x0[None], n_steps=z.shape[0], dt=dt, noise=z[:, None, :], record_every=1,
                  stratonovich=False, threads=1)
    return tr.times, tr.x[:, 0, :]


def compare(p, s: np.ndarray, x: np.ndarray, noise: dict) -> dict:
    """Paired comparison of a SPICE run (model times ``s``, states ``x``) with the ideal model
    driven by the same noise: rms state difference at the final time and the largest rms over
    the hold instants, each also relative to the spread (s.d.) of the ideal final state."""
    s_i, x_i = paired_ideal(p, noise)
    if s[-1] < s_i[-1] * (1 - 1e-9):
        raise InputError(f"the SPICE run ends at {s[-1]:.6g} model time units, the noise at {s_i[-1]:.6g}: "
                         "it is a run of another netlist")
    xs = np.stack([np.interp(s_i, s, x[:, j]) for j in range(x.shape[1])], axis=1)
    xs[0] = x_i[0]  # ngspice 39 does not store t = 0 of a UIC run; the start is the written .ic
    d = np.sqrt(np.mean((xs - x_i) ** 2, axis=1))
    spread = float(np.std(x_i[-1]))
    return {"noise_samples": int(len(s_i) - 1), "nt_model_units": float(s_i[1] - s_i[0]),
            "rms_difference_final": float(d[-1]), "rms_difference_max": float(np.max(d)),
            "ideal_final_spread": spread,
            "relative_final": float(d[-1] / spread) if spread > 0 else math.nan,
            "relative_max": float(np.max(d) / spread) if spread > 0 else math.nan}
