"""RCSJ netlist of an rf-SQUID array and the co-simulation contract for it (time_unit,
noise_interval, spice_start, spice_netlist, spice_readout, spice_energy, spice_pwl_current;
docs/design.md#backend-contract), plus compile's generation netlist (chip.cir). All of it is
importable from :mod:`thermohw.backends.josephson`, which the backends registry uses."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from . import pwl as pwl_files
from .common import generation_notes, generation_start
from .pwl import source_lines as pwl_source_lines
from .rfsquid import PHI_R, RFSquidArray
from ..errors import InputError
from ..io import atomic_write
from ..provenance import netlist_line as netlist_provenance
from ..spice.netlist import comment_lines, eng, sanitize_comment
from ..spice.ngspice import NgspiceError


# ---------------------------------------------------------------------------------------------
# RCSJ netlist and the co-simulation contract (docs/design.md#josephson-netlist)
# ---------------------------------------------------------------------------------------------
# ngspice's default tolerances are for volts and milliamps; here junction voltages are uV
# (Phi_r dphi/dt), capacitor charges 1e-17 C and phases O(1) rad, so the absolute floors go
# far below the signals and the relative tolerance is tightened (tests/test_josephson_spice.py
# checks the integration against the ideal model with these settings).
# ngspice resolves the junctions' R C dynamics inside each noise interval: ~16 time points per
# interval on the 96-unit RCSJ netlist (measured), so its runs take ~16x an RC netlist of the
# same size; cosim's default per-run timeout scales by this.
SPICE_STEPS_PER_INTERVAL = 16.0
SPICE_OPTIONS = {"reltol": 1e-5, "abstol": 1e-15, "vntol": 1e-12, "chgtol": 1e-24}


def inductance_matrix(art: RFSquidArray) -> np.ndarray:
    """Lmat = diag(L) + M, H (the loop currents' flux linkages are Lmat I)."""
    return art.M + np.diag(art.L)


def exact_stiffness(art: RFSquidArray) -> np.ndarray:
    """The phase-stiffness matrix of the inductance network to all orders in M:
    K_exact = Phi_r^2 Lmat^{-1}, J/rad^2 (symmetrised against round-off)."""
    Lmat = inductance_matrix(art)
    try:
        K = PHI_R ** 2 * np.linalg.inv(Lmat)
    except np.linalg.LinAlgError:
        raise InputError("the inductance matrix diag(L) + M is singular: the mutual inductances are as "
                         "large as the loops' own; reduce J or the phase scale s") from None
    return 0.5 * (K + K.T)


def time_unit(art: RFSquidArray) -> float:
    """Seconds per model time unit."""
    return float(art.tau_s)


def fastest_rate(art: RFSquidArray) -> float:
    """The fastest overdamped phase-relaxation rate, 1/s: R (E_L + E_J + sum_j |K_ij|) / Phi_r^2,
    the curvature bound over all phases (-E_J cos phi adds at most E_J) times the mobility
    R / Phi_r^2 of the RCSJ junction."""
    K = exact_stiffness(art)
    off = np.abs(K - np.diag(np.diag(K))).sum(axis=1)
    return float(np.max(art.R * (np.diag(K) + art.E_J + off) / PHI_R ** 2))


def noise_interval(art: RFSquidArray, fraction: float = 0.02) -> float:
    """The noise hold interval NT, s: ``fraction`` x the fastest phase-relaxation time
    (:func:`fastest_rate`). The junction's inertial time R C is shorter still (by beta_C), but
    the held noise need not resolve it: the phase responds only below its relaxation rate,
    where a held source of level NA^2 NT is white; what R C filters is the junction voltage,
    which nobody reads (its variance, and with it the shunt's electrical dissipation, is
    lower than a white source would give: a housekeeping figure, not the model's heat)."""
    if not 0 < fraction <= 1:
        raise InputError(f"fraction = {fraction}: the noise interval is a fraction in (0, 1] of the fastest time")
    return float(fraction / fastest_rate(art))


def voltage_per_velocity(art: RFSquidArray) -> np.ndarray:
    """Junction volts per unit of model velocity dx/ds: V = Phi_r dphi/dt = Phi_r s (dx/ds) / tau."""
    return PHI_R * art.s / art.tau_s


def spice_start(p, art: RFSquidArray, x0: np.ndarray, seed) -> dict:
    """{"v0": (runs, N)}: Maxwell junction voltages (variance k_B T / C, the capacitor's
    equipartition) as model velocities dx/ds; the junction mode is overdamped, so this only
    removes an R C-long transient, but it is the equilibrium start."""
    runs = np.shape(x0)[0]
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((runs, art.n_units)) * np.sqrt(art.kT_J / art.C)
    return {"v0": V / voltage_per_velocity(art)}


def noise_amplitude(art: RFSquidArray, nt: float) -> np.ndarray:
    """Held-noise current NA (A) of each shunt: white level 2 k_B T / R (two-sided) = NA^2 NT,
    at the physical temperature."""
    return np.sqrt(2.0 * art.kT_J / (art.R * float(nt)))


def spice_pwl_current(art: RFSquidArray, nt: float, z: np.ndarray) -> np.ndarray:
    """The shunts' noise currents (K, N), A, that "pwl" mode injects for standard normals z."""
    return noise_amplitude(art, nt) * np.asarray(z, dtype=np.float64)


def spice_netlist(art: RFSquidArray, *, t_stop: float, nt: float, seed: int, noise: str, x0: np.ndarray,
                  pwl: np.ndarray | None = None, title: str = "thermohw rf-SQUID chip", v0: np.ndarray | None = None,
                  meta: dict | None = None, notes: list[str] | None = None,
                  noise_include: str | None = None) -> str:
    """RCSJ netlist (ngspice) of the rf-SQUID array for one run from x0 (N,) model units.

    Unit i: junction node u<i> (voltage V_i = Phi_r dphi_i/dt) with the junction capacitance
    C<i>, the shunt R<i> and its Johnson noise In<i> (2 k_B T / R at the physical temperature),
    the supercurrent BJ<i> = I_c sin(phi_i) = -I_c sin(theta_i) (the full cosine potential),
    and the loop inductor L<i> to ground; K<i>_<j> couple the loops with k = M_ij / sqrt(L_i L_j)
    (the exact inductance matrix). Phase node p<i>: v(p<i>) = theta_i = phi_i - pi (1 V = 1 rad),
    the integral of the junction voltage: GP<i> copies V_i / R_i onto CP<i> = Phi_r / R_i, so
    dtheta/dt = V_i / Phi_r with integrator currents the size of the shunt's own.
    Flux bias. The loop inductors carry Lmat^{-1} Phi_r theta (their flux is counted from half a
    flux quantum; the pi of phi and of phi_x = pi + delta cancel in the loop). The bias shift
    delta is the constant current IX<i> = (Lmat^{-1} Phi_r delta)_i into u<i> (its Norton
    equivalent), so the loops carry Lmat^{-1} (Phi - Phi_x) exactly.
    ``v0``: initial model velocities (junction voltages, :func:`spice_start`), default 0.
    ``noise_include``: with "pwl", the file (plain name) holding the In<i> sources instead of
    ``pwl`` (compile's noise.inc)."""
    n = art.n_units
    x0, pwl, V0 = _checked_run_inputs(art, t_stop=t_stop, nt=nt, seed=seed, noise=noise, x0=x0, pwl=pwl, v0=v0,
                                      noise_include=noise_include)
    theta0, I0, Ix = _loop_start(art, x0)
    lines = _header_lines(art, title, noise, nt, seed)
    lines += comment_lines(meta, notes)
    lines.append("")
    na = noise_amplitude(art, nt)
    for i in range(n):
        lines += _unit_lines(art, i, V0[i], I0[i], Ix[i], theta0[i], noise, nt, na[i])
    if noise == "pwl":
        lines += [f".include {noise_include}"] if noise_include else pwl_source_lines("In", na, nt, pwl)
    ii, jj = np.nonzero(np.triu(art.M, 1))
    if len(ii):
        lines += ["", "* mutual inductances: k_ij = M_ij / sqrt(L_i L_j) (dots on the u<i> ends)"]
    for i, j in zip(ii.tolist(), jj.tolist()):
        lines.append(f"K{i}_{j} L{i} L{j} {art.M[i, j] / math.sqrt(art.L[i] * art.L[j]):.12g}")
    lines.append("")
    opts = {**SPICE_OPTIONS, **({"seed": int(seed)} if noise == "trrandom" else {})}
    lines.append(".options " + " ".join(f"{k}={v if isinstance(v, int) else eng(v)}" for k, v in opts.items()))
    lines.append(".save time " + " ".join(f"v(u{i}) v(p{i})" for i in range(n)))
    lines.append(f".tran {eng(nt)} {eng(t_stop)} 0 {eng(nt)} uic")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _checked_run_inputs(art: RFSquidArray, *, t_stop, nt, seed, noise, x0, pwl, v0, noise_include) -> tuple:
    """spice_netlist's run inputs checked: (x0, the pwl normals or None, start junction voltages V0)."""
    n = art.n_units
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.shape != (n,) or not np.all(np.isfinite(x0)):
        raise InputError(f"x0 must be {n} finite start positions (model units)")
    if not 1 <= int(seed) <= 2147483647:
        raise InputError(f"seed = {seed}: ngspice accepts .options seed in 1..2147483647 and silently "
                         "ignores anything else (the run would not be reproducible)")
    if not (t_stop > 0 and nt > 0):
        raise InputError("t_stop and the noise interval must be > 0")
    if noise not in ("trrandom", "pwl", "none"):
        raise InputError(f"noise = {noise!r}; use 'trrandom', 'pwl' (given standard normals) or 'none'")
    if noise_include is not None and not (noise == "pwl" and re.fullmatch(r"[\w.-]+", noise_include)):
        raise InputError(f"noise_include = {noise_include!r}: a plain file name, with noise 'pwl' only")
    if noise == "pwl" and noise_include is None:
        pwl = np.asarray(pwl, dtype=np.float64) if pwl is not None else None
        if pwl is None or pwl.ndim != 2 or pwl.shape[1] != n or not np.all(np.isfinite(pwl)):
            raise InputError(f"noise 'pwl' needs (K, {n}) finite standard normals")
    V0 = np.zeros(n) if v0 is None else np.asarray(v0, dtype=np.float64) * voltage_per_velocity(art)
    if V0.shape != (n,) or not np.all(np.isfinite(V0)):
        raise InputError(f"v0 must be {n} finite start velocities (model units)")
    return x0, pwl, V0


def _loop_start(art: RFSquidArray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start phases theta0, loop inductor currents Lmat^-1 Phi_r theta0, flux-bias Norton currents)."""
    Lmat = inductance_matrix(art)
    try:
        np.linalg.cholesky(Lmat)
    except np.linalg.LinAlgError:
        raise InputError("the inductance matrix diag(L) + M is not positive definite: no passive "
                         "inductance network has it; reduce the couplings J or the phase scale s") from None
    G = np.linalg.inv(Lmat)
    theta0 = art.s * x0
    return theta0, G @ (PHI_R * theta0), G @ (PHI_R * art.delta_phi_x)


def _header_lines(art: RFSquidArray, title: str, noise: str, nt: float, seed: int) -> list[str]:
    """The netlist's comment header: what it is, its scales, how to run it."""
    return [f"* {sanitize_comment(title)}",
            "* generated by thermohw (rf-SQUID array, RCSJ junctions, thermohw/backends/josephson.py); units SI",
            netlist_provenance(),
            f"* source model sha256/16: {sanitize_comment((art.meta or {}).get('source_hash', ''))}",
            f"* scales: tau = {art.tau_s:.6g} s per model time unit; one model energy unit = "
            f"{art.energy_unit_J:.6g} J; T = {np.mean(art.temperature):.6g} K",
            "* unit i: x_i = v(p<i>) / s_i (phase node: theta = phi - pi, 1 V = 1 rad); s = "
            + ("%.6g" % art.s[0] if np.all(art.s == art.s[0]) else "per unit (rfsquids.yaml)"),
            "* junction node u<i>: V = Phi_r dphi/dt; loop inductors count flux from half a flux quantum,",
            "* IX<i> is the flux-bias shift delta as its Norton current (Lmat^-1 Phi_r delta)_i",
            f"* noise: {noise}, sample interval NT = {nt:.6g} s, seed {int(seed)} (shunt Johnson noise "
            "2 k_B T / R at the physical temperature)",
            "* run: ngspice -b -r out.raw THIS_FILE"]


def _unit_lines(art: RFSquidArray, i: int, V0: float, I0: float, Ix: float, theta0: float, noise: str, nt: float,
                na: float) -> list[str]:
    """Unit i's RCSJ elements: C, R, the junction's supercurrent, the loop inductor, the flux-bias
    current, the phase integrator and (trrandom) the shunt noise source."""
    lines = [f"* unit {i}: I_c = {art.I_c[i]:.6g} A, phi_x = pi + {art.delta_phi_x[i]:.6g} rad",
             f"C{i} u{i} 0 {eng(art.C[i])} IC={eng(V0)}",
             f"R{i} u{i} 0 {eng(art.R[i])}",
             f"BJ{i} u{i} 0 I=-{eng(art.I_c[i])}*sin(v(p{i}))",
             f"L{i} u{i} 0 {eng(art.L[i])} IC={eng(I0)}"]
    if Ix != 0:
        lines.append(f"IX{i} 0 u{i} DC {eng(Ix)}")
    lines += [f"GP{i} 0 p{i} u{i} 0 {eng(1.0 / art.R[i])}",
              f"CP{i} p{i} 0 {eng(PHI_R / art.R[i])} IC={eng(theta0)}"]
    if noise == "trrandom":
        lines.append(f"In{i} 0 u{i} DC 0 TRRANDOM(2 {eng(nt)} 0 {eng(na)} 0)")
    return lines


def _phases(raw, art: RFSquidArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, theta (T, N), V (T, N)) on ngspice's own time points."""
    t = np.asarray(raw["time"], dtype=np.float64)
    th_ = np.stack([np.asarray(raw[f"v(p{i})"], dtype=np.float64) for i in range(art.n_units)], axis=1)
    V = np.stack([np.asarray(raw[f"v(u{i})"], dtype=np.float64) for i in range(art.n_units)], axis=1)
    return t, th_, V


def spice_readout(raw, art: RFSquidArray, grid_s: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x = theta / s (model units) on ``grid_s`` (seconds), (len(grid_s), N); x0 supplies t = 0
    (ngspice 39 does not store t = 0 of a UIC run)."""

    t, th_, _ = _phases(raw, art)
    grid_s = np.asarray(grid_s, dtype=np.float64)
    if t[-1] < grid_s[-1] * (1 - 1e-9):
        raise NgspiceError(f"ngspice stopped at t = {t[-1]:.6g} s before the end {grid_s[-1]:.6g} s")
    x = th_ / art.s
    if t[0] > 0:
        t = np.concatenate([[0.0], t])
        x = np.concatenate([np.asarray(x0, dtype=np.float64)[None], x])
    return np.stack([np.interp(grid_s, t, x[:, i]) for i in range(art.n_units)], axis=1)


def hardware_potential_J(art: RFSquidArray, theta: np.ndarray) -> np.ndarray:
    """The array's potential energy (J) at phases theta = phi - pi (..., N), exact: the
    inductance network 1/2 psi^T Lmat^{-1} psi, psi = Phi_r (theta - delta), plus the
    junctions' -E_J cos(phi) = E_J cos(theta)."""
    K = exact_stiffness(art)
    psi = np.asarray(theta, dtype=np.float64) - art.delta_phi_x
    return 0.5 * np.einsum("...i,ij,...j->...", psi, K, psi) + np.cos(theta) @ art.E_J


def spice_energy(raw, art: RFSquidArray) -> dict[str, float]:
    """Energy balance of one run in joules, on ngspice's own time points (trapezoid):
    ``dissipated_J`` in the shunts (V^2 / R >= 0), ``stored_delta_J`` the change of the stored
    energy (capacitors 1/2 C V^2 + the potential of :func:`hardware_potential_J`: inductors and
    junctions), ``potential_delta_J`` its potential part (minus the hardware's heat in the
    overdamped picture) and ``noise_delivered_J`` = dissipated + stored (first law). Counted from
    ngspice's first stored point (ngspice 39 does not store t = 0 of a UIC run; the first step
    is ~1e-4 of NT)."""
    t, th_, V = _phases(raw, art)
    diss = float(np.trapezoid((V * V) @ (1.0 / art.R), t))
    pot = hardware_potential_J(art, th_[[0, -1]])
    cap = 0.5 * (V[[0, -1]] ** 2) @ art.C
    e = {"dissipated_J": diss, "potential_delta_J": float(pot[1] - pot[0]),
         "capacitor_delta_J": float(cap[1] - cap[0])}
    e["stored_delta_J"] = e["potential_delta_J"] + e["capacitor_delta_J"]
    e["noise_delivered_J"] = e["dissipated_J"] + e["stored_delta_J"]
    return e


# ---------------------------------------------------------------------------------------------
# the generation-protocol netlist (compile's chip.cir)
# ---------------------------------------------------------------------------------------------
GENERATION_NT_FRACTION = 0.05  # NT x fastest phase-relaxation rate: held-noise variance factor 0.9998


def generation_grid(p, nt_fraction: float = GENERATION_NT_FRACTION) -> tuple[float, float, int]:
    """(t_f, NT, K): K noise samples of NT seconds fill t_f model time units exactly."""
    a = p.artefact
    t_f = p.options.generation_time(p.source)
    k = max(1, math.ceil(t_f * a.tau_s / noise_interval(a, nt_fraction) - 1e-9))
    return t_f, t_f * a.tau_s / k, k


def _write_netlist(p, folder: Path) -> list[Path]:
    """chip.cir and, for ``noise="pwl"``, noise.inc / noise.npz (:mod:`thermohw.backends.pwl`)."""

    a = p.artefact
    noise, seed = p.options.noise, int(p.options.netlist_seed)
    meta = {"model": p.source.meta.get("digits", ""), "target": p.target.name}
    title = f"thermohw rf-SQUID chip: target {p.target.name}"
    if p.options.netlist == "generate":
        t_f, nt, k = generation_grid(p)
        x0 = generation_start(p)[1]
        v0 = spice_start(p, a, x0[None], np.random.SeedSequence([seed, 2]))["v0"][0]
        notes = generation_notes(p, t_f, a.tau_s, "x_i = v(p<i>) / s_i")
    else:
        nt = noise_interval(a, GENERATION_NT_FRACTION)
        k = math.ceil(a.tau_s / nt - 1e-9)
        nt, x0, v0, notes = a.tau_s / k, np.zeros(a.n_units), None, ["free run: one model time unit from x = 0"]
    out: list[Path] = []
    inc = None
    if noise == "pwl":
        out += pwl_files.write_files(folder, prefix="In", amplitude=noise_amplitude(a, nt), nt=nt,
                                     z=pwl_files.draw(seed, k, a.n_units), x0=x0, tau=a.tau_s, seed=seed)
        inc = pwl_files.NOISE_INCLUDE
    txt = spice_netlist(a, t_stop=k * nt, nt=nt, seed=seed, noise=noise, x0=x0, v0=v0, title=title,
                        meta=meta, notes=notes, noise_include=inc)
    out.insert(0, atomic_write(folder / "chip.cir", lambda fh: fh.write(txt), mode="w"))
    return out


def states(raw, art: RFSquidArray) -> dict:
    """Model-unit states of an ngspice run of :func:`spice_netlist` on ngspice's own time points:
    ``t`` (s), ``s`` (model time) and ``x`` (T, N) = v(p<i>) / s_i (``thermohw readout``)."""
    t, th_, _ = _phases(raw, art)
    return {"t": t, "s": t / art.tau_s, "x": th_ / art.s}
