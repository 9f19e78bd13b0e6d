"""Josephson backend: overdamped rf-SQUIDs at half a flux quantum (docs/design.md#josephson).

Each unit is an rf-SQUID: a loop of self-inductance L interrupted by a shunted junction of
critical current I_c (RCSJ: shunt R, capacitance C), with loop phase phi = 2 pi Phi / Phi0
(Phi the flux through the loop) and applied flux Phi_x = Phi0 phi_x / (2 pi). Units couple
through mutual inductances M_ij. Write Phi_r = Phi0 / (2 pi) (reduced flux quantum),
E_L = Phi_r^2 / L and E_J = Phi_r I_c, beta_L = E_J / E_L = 2 pi L I_c / Phi0.

Single SQUID. U = E_L (phi - phi_x)^2 / 2 - E_J cos(phi). Bias at phi_x = pi + delta and set
phi = pi + s x (s = phase scale, rad per unit of x). Since -cos(pi + a) = cos(a),

    U = E_L (s x - delta)^2 / 2 + E_J cos(s x)
      = const + E_L (1 - beta_L) s^2 x^2 / 2 + E_J s^4 x^4 / 24 - E_J s^6 x^6 / 720 + ...
        - E_L s delta x

(the x^6 term is negative: cos a = 1 - a^2/2 + a^4/24 - a^6/720 + a^8/40320 - ...). With one
model energy unit eps = k_B T / kT_ref joules (``_thermal``; eps J = J' k_BT with J' = J/kT):

    E_J   = 24 eps J4 / s^4                       I_c = E_J / Phi_r
    E_L   = E_J + 2 eps J2 / s^2                  L   = Phi_r^2 / E_L
    beta_L = E_J / E_L = 12 J4 / (J2 s^2 + 12 J4)       (so E_L = 2 J2' k_BT / ((1 - beta_L) s^2))
    delta = -b' k_BT / (E_L s)      for a lone SQUID (coupled ones: see "offsets" below)

The dropped x^6 term is the truncation error, -E_J s^6 x^6 / 720 = -J4' s^2 x^6 / 30 in kT
(-0.33 kT at |x| = 1, -0.0052 kT at |x| = 0.5 for J4' = 10, s = 1). ``to_computer`` maps back
to fourth order in x.

Mutual inductance (sign convention: M_ij > 0 when a positive circulating current in loop j
threads positive flux through loop i, e.g. stacked loops; side-by-side coplanar loops have
M < 0). The inductive energy of the coupled loops, as a function of the inductor branch
fluxes Phi_i - Phi_xi (the coordinates the junction phases fix), is

    U_ind = 1/2 (Phi - Phi_x)^T Lmat^{-1} (Phi - Phi_x),    Lmat = diag(L) + M,
    Lmat^{-1} = diag(1/L) - M_ij / (L_i L_j) + O(M^2),

so to first order in M/L the coupling energy of a pair is
-(M_ij / (L_i L_j)) (Phi_i - Phi_xi)(Phi_j - Phi_xj) = K_ij (phi_i - phi_xi)(phi_j - phi_xj)
with the phase stiffness K_ij = -Phi_r^2 M_ij / (L_i L_j) (and K_ii = E_L,i). (Written with
currents, 1/2 I^T Lmat I contains +M I_i I_j, but I = Lmat^{-1} (Phi - Phi_x) itself mixes the
loops; as a function of the branch fluxes psi the cross term is -M_ij psi_i psi_j / (L_i L_j).)
With phi - phi_x = s x - delta, the x_i x_j term is K_ij s_i s_j, hence

    K_ij = eps J_ij / (s_i s_j),   M_ij = -K_ij L_i L_j / Phi_r^2,   i.e.  M_ij / L = -J_ij' k_BT / (E_L s^2).

M > 0 gives J < 0 (ferromagnetic); J > 0 needs M < 0.

Offsets. The coupling multiplies *branch* fluxes phi - phi_x, so the pi's of phi = pi + s x
and phi_x = pi + delta cancel: there is no pi-sized offset. (A term written as K phi_i phi_j
would give spurious linear terms pi s K_ij x_i, pi/|delta| - hundreds of - times the real ones.) What does appear
is each neighbour's bias shift: K_ij (s_i x_i - delta_i)(s_j x_j - delta_j) contains
-K_ij s_i delta_j x_i. The linear term of x_i is therefore -s_i (K delta)_i, and the flux biases
that give exactly the intended b solve the linear system

    K delta = -eps b / s,   K = diag(E_L) + [K_ij]

(``lower`` solves it; the lone-SQUID formula delta = -eps b / (E_L s) is its zeroth order and
leaves an error -s_i sum_j K_ij delta_j / eps on b_i, about 1 % of b for the preset).

Hardware model and what it neglects. The "hardware" that ``to_computer`` inverts is the
inductive energy to first order in M (the sparse K above) and the junction energy to x^4. The
next order of Lmat^{-1}, K2 = K1 diag(1/E_L) K1 (K1 the off-diagonal part), renormalises
every E_L (J2 shift) and adds next-nearest-neighbour couplings that the coupling mask does not
contain; :func:`mutual_inductance_error` reports it (exactly, from the full inverse) in kT, and
``check`` flags it when it exceeds half an LSB of its parameter class.

Shunt resistor (RCSJ, derived here). Current balance at the junction: the shunt carries
Phi_r (dphi/dt) / R, its Johnson noise has two-sided density 2 k_B T / R. Multiplying by Phi_r,
in the overdamped limit (C -> 0)

    (Phi_r^2 / R) dphi/dt = -dU/dphi + sqrt(2 (Phi_r^2 / R) k_B T) eta(t),

the common rule with friction gamma = Phi_r^2 / R on coordinate phi = pi + s x, i.e. length
scale s. As for the mechanical backend (same algebra: t = tau t_m, U = eps V),
mu = tau eps / (gamma s^2), so

    R_i = mu_i Phi_r^2 s^2 / (tau eps) = Phi_r^2 s^2 mu_phys / (k_B T),   mu_phys = mu kT / tau.

Inertia and quantum limits. With C the equation gains Phi_r^2 C phi''. The inertial time
R C over the relaxation time Phi_r^2 / (R E_J) at curvature E_J is the Stewart-McCumber
parameter beta_C = 2 pi I_c R^2 C / Phi0 (= Q^2 of the mode): overdamped needs beta_C << 1
(flagged at >= 0.05; >= 1/4 means the mode rings). A classical Langevin model needs
hbar omega_p << k_B T, omega_p = sqrt(2 pi I_c / (Phi0 C)) (flagged when the quantum
correction to a harmonic variance, (hbar omega / k_B T)^2 / 12, exceeds 1 %: ratio > 0.35).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import adopt_program
from .._version import __version__
from ..energy import K_B  # defined once for the package
from ..computer import Computer
from ..errors import InputError
from ..spice.netlist import eng_unit
from . import _thermal as th
# the array record and the netlist live in their own modules; every name stays importable from
# here, and the backends registry finds the SPICE contract functions on this module
from .rfsquid import HBAR, PHI0, PHI_R, RFSquidArray, energy_J, mutual_inductance_error  # noqa: F401
from .josephson_spice import (  # noqa: F401
    GENERATION_NT_FRACTION, SPICE_OPTIONS, SPICE_STEPS_PER_INTERVAL, _phases, _write_netlist, exact_stiffness,
    fastest_rate, generation_grid, hardware_potential_J, inductance_matrix, noise_amplitude, noise_interval,
    spice_energy, spice_netlist, spice_pwl_current, spice_readout, spice_start, states, time_unit,
    voltage_per_velocity)

SCHEMA = "thermohw.josephson/1"
BETA_C_LIMIT = 0.05        # beta_C (= Q^2 of the junction mode) above this: not overdamped enough
BETA_C_RINGING = 0.25      # Q = 1/2
CLASSICAL_LIMIT = 0.35     # hbar omega_p / k_B T above this: > 1 % quantum correction
FAB_TOLERANCE = 0.01       # fabricated Ic_A / L_H vs the values the mapping needs
TRUNCATION_LIMIT_KT = 1.0  # beyond-x^4 energy at |x| = 2 above this (kT): reported by check


# ---------------------------------------------------------------------------------------------
def _solve(K: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        if K.shape[0] > 3000:
            from scipy.sparse import csr_matrix
            from scipy.sparse.linalg import spsolve

            return np.asarray(spsolve(csr_matrix(K), rhs))
        return np.linalg.solve(K, rhs)
    except np.linalg.LinAlgError:
        raise InputError("the phase-stiffness matrix K = diag(E_L) + couplings is singular: the "
                         "couplings are as strong as the loop inductances; reduce J or s") from None


def _build(p) -> RFSquidArray:
    c = p.programmed
    ph = p.target.physics
    n = c.n_units
    eps = th.energy_unit(c.kT, ph.temperature_K)       # J per model energy unit
    tau = float(ph.tau_s)
    s = np.full(n, float(ph.phase_scale))
    E_J = 24.0 * eps * c.J4 / s ** 4
    E_L = E_J + 2.0 * eps * c.J2 / s ** 2
    bad = np.nonzero(E_L <= 0)[0]
    if bad.size:
        raise InputError(f"units {bad[:5].tolist()} have J2 s^2 + 12 J4 <= 0, which needs a loop "
                         "inductance E_L <= 0 (no rf-SQUID has that); use a larger J4/J2 or a "
                         "smaller phase scale s")
    L = PHI_R ** 2 / E_L
    K = eps * c.J / np.outer(s, s)
    np.fill_diagonal(K, 0.0)
    M = -K * np.outer(L, L) / PHI_R ** 2
    np.fill_diagonal(K, E_L)
    delta = _solve(K, -eps * c.b / s)
    R = c.mu * PHI_R ** 2 * s ** 2 / (tau * eps)
    coupled = c.mask.copy()
    if getattr(ph, "inductance", "first-order") == "exact-design":
        # the network whose exact inverse is K, Lmat = Phi_r^2 K^-1: the chip then has the
        # programmed J2, J and b to all orders in M; K^-1 is dense, so every pair needs a coupler
        Lmat = PHI_R ** 2 * np.linalg.inv(K)
        Lmat = 0.5 * (Lmat + Lmat.T)
        L = np.diag(Lmat).copy()
        M = Lmat - np.diag(L)
        coupled = coupled | (M != 0)
    return RFSquidArray(I_c=E_J / PHI_R, L=L, C=np.full(n, float(ph.C_F)), R=R, delta_phi_x=delta, s=s, M=M,
                        coupled=coupled, temperature=th.bath_temperatures(c.kT, ph.temperature_K),
                        energy_unit_J=eps, tau_s=tau, n_visible=c.n_visible, image_shape=c.image_shape,
                        meta={"source_hash": p.report.get("source_hash", ""), "target": p.target.name})


def lower(p) -> RFSquidArray:
    """The rf-SQUID parameters (SI) for ``p.programmed`` on ``p.target``."""
    return _build(p)


def lone_squid_flux_shift(p) -> np.ndarray:
    """The founding brief's per-SQUID delta = -b' k_BT / (E_L s), which ignores the neighbours' bias
    shifts (kept for comparison: :func:`lower` folds them in exactly)."""
    a = p.artefact if p.artefact is not None else _build(p)
    return -a.energy_unit_J * p.programmed.b / (a.E_L * a.s)


def scales(p) -> dict:
    a = _build(p)
    c = p.programmed
    eps = a.energy_unit_J
    t1, t05 = a.truncation_error_kT(1.0), a.truncation_error_kT(0.5)
    return {"energy_per_model_unit_J": eps, "kT_J": c.kT_ref * eps, "T_eff_K": c.kT_ref * eps / K_B,
            "tau_s": a.tau_s, "mu_per_s": float(np.mean(c.mu)) / a.tau_s,
            "kT_mu_per_s": float(np.mean(c.mu * c.kT)) / a.tau_s,
            "phase_scale_rad": float(a.s[0]), "beta_L": float(np.mean(a.beta_L)),
            "E_L_J": float(np.mean(a.E_L)), "L_H": float(np.mean(a.L)), "I_c_A": float(np.mean(a.I_c)),
            "R_shunt_ohm": float(np.mean(a.R)), "C_F": float(a.C[0]), "beta_C_max": float(np.max(a.beta_C)),
            "hbar_omega_p_over_kT_max": float(np.max(a.hbar_omega_p_over_kT)),
            "truncation_error_kT_at_x1": float(t1[np.argmax(np.abs(t1))]),
            "truncation_error_kT_at_x0.5": float(t05[np.argmax(np.abs(t05))]),
            **{f"beyond_x4_kT_at_x{r['x']:g}": r["all_orders_kT"] for r in truncation_table(a)}}


INDUCTANCE_MODELS = ("first-order", "exact")


def to_computer(art: RFSquidArray, p=None, *, exact: bool | None = None) -> Computer:
    """The ideal model the SQUIDs implement, to fourth order in x and, by default, first order
    in M (the phase stiffness K of :attr:`RFSquidArray.K`):

        J2 = (K_ii - E_J) s^2 / (2 eps), J4 = E_J s^4 / (24 eps), J_ij = K_ij s_i s_j / eps,
        b = -s (K delta) / eps, mu = tau eps R / (Phi_r^2 s^2), kT = k_B T / eps.

    ``exact=True`` uses the exact inverse K = Phi_r^2 (diag(L) + M)^{-1} instead (the inductance
    network the netlist contains): every J2 and b shifts, and pairs the mask leaves uncoupled
    get couplings (they join the mask). Default: the target's ``physics.inductance`` when ``p``
    is given ("first-order"; "exact"; "exact-design", where ``lower`` chose Lmat = Phi_r^2 K^-1
    so that the exact model is the programmed one), else first order. The junctions' x^6 and
    higher terms are left out either way (:func:`truncation_table`)."""
    if exact is None:
        exact = p is not None and getattr(p.target.physics, "inductance", "first-order") in ("exact", "exact-design")
    eps, s = art.energy_unit_J, art.s
    K = exact_stiffness(art) if exact else art.K
    E_L, E_J = np.diag(K).copy(), art.E_J
    J = K * np.outer(s, s) / eps
    np.fill_diagonal(J, 0.0)
    mask = art.coupled
    if exact:
        # round-off of the inverse (~1e-15 relative) is not a coupling; second-order terms are ~1e-2
        J = np.where(np.abs(J) > 1e-9 * np.max(np.abs(J), initial=0.0), J, 0.0)
        mask = mask | (J != 0)
    c = Computer(J=J, b=-s * (K @ art.delta_phi_x) / eps, mask=mask, n_visible=art.n_visible,
                 J2=(E_L - E_J) * s ** 2 / (2.0 * eps), J4=E_J * s ** 4 / (24.0 * eps),
                 mu=art.tau_s * eps * art.R / (PHI_R ** 2 * s ** 2), kT=K_B * art.temperature / eps,
                 image_shape=art.image_shape, meta={"realised_from": "josephson",
                                                    "order": "x^4, exact M" if exact else "x^4, M^1",
                                                    **(art.meta or {})})
    c = adopt_program(c, p)
    return c


def truncation_table(art: RFSquidArray, xs=(1.0, 1.5, 2.0)) -> list[dict]:
    """What the x^4 model leaves out of one junction's cosine, per |x| in ``xs``, in kT (the
    worst unit): the x^6 term -E_J (s x)^6 / 720 and everything beyond x^4 (all orders).
    Normalised digits reach |x| ~ 2, where the series is far from converged at s = 1."""
    out = []
    for x in xs:
        t6, tall = art.truncation_error_kT(x), art.residual_kT(x)
        out.append({"x": float(x), "x6_kT": float(t6[np.argmax(np.abs(t6))]),
                    "all_orders_kT": float(tall[np.argmax(np.abs(tall))])})
    return out


def check(p) -> list[dict]:
    out = []
    a = p.artefact
    if a is None:
        return out
    bc = float(np.max(a.beta_C))
    if bc >= BETA_C_LIMIT:
        ring = bc >= BETA_C_RINGING
        what = ("the junction mode is UNDERDAMPED (beta_C >= 1/4)" if ring
                else "inertia shifts relaxation rates by ~beta_C")
        out.append({"check": "beta_C", "message": f"Stewart-McCumber beta_C = {bc:.3g} is not << 1 "
                    f"(limit {BETA_C_LIMIT}): {what}; lower C (now {eng_unit(float(np.max(a.C)), 'F')}) "
                    "or R (a larger tau_s lowers R)",
                    "beta_C": bc, "verdict": "underdamped" if ring else "weakly overdamped"})
    q = float(np.max(a.hbar_omega_p_over_kT))
    if q > CLASSICAL_LIMIT:
        out.append({"check": "classical", "message": f"hbar omega_p / k_B T = {q:.3g} > {CLASSICAL_LIMIT}: "
                    f"quantum corrections (~{100 * q * q / 12:.2g} % on variances, tunnelling) break the "
                    f"classical Langevin model at T = {np.min(a.temperature):.4g} K; raise T or C",
                    "hbar_omega_p_over_kT": q})
    if not th.uniform(a.temperature):
        out.append({"check": "temperature", "message": "the model's kT differs between units "
                    f"(shunt temperatures {np.min(a.temperature):.4g}..{np.max(a.temperature):.4g} K): "
                    "one cryostat cannot provide that; inject extra current noise on the hotter units",
                    "spread": th.rel_spread(a.temperature)})
    if a.n_units <= 4000 and np.any(a.M) and getattr(p.target.physics, "inductance", "") != "exact-design":
        err = mutual_inductance_error(a)
        kT = p.programmed.kT                       # model units: error_model = error_kT * kT
        e_j2 = float(np.max(np.abs(err["J2_kT"]) * kT))
        e_j = err["J_kT_max"] * float(np.max(kT))
        e_b = float(np.max(np.abs(err["b_kT"]) * kT))
        lsb_j, lsb_b = p.coupling_quant.step, p.bias_quant.step
        lsb_t = p.target.diagonal.step if p.target.diagonal is not None else lsb_j
        over = [f"{name} {e:.3g} > {lsb / 2:.3g}" for name, e, lsb in
                (("J2", e_j2, lsb_t), ("J", e_j, lsb_j), ("b", e_b, lsb_b)) if e > 0.5 * lsb]
        if over:
            out.append({"check": "mutual_inductance", "message": "second-order mutual-inductance terms, "
                        "dropped by the first-order hardware model, exceed half an LSB (model units: "
                        f"{', '.join(over)}); the couplings' error includes {err['uncoupled_J_kT_max']:.3g} kT "
                        "between units the mask does not couple. The J2 part can be trimmed out through L "
                        "(exact inverse inductance); the rest scales as s^2 J^2 / (24 J4 + 2 J2 s^2): a smaller "
                        "phase scale s reduces it (and the x^6 error) at the price of larger I_c and "
                        "hbar omega_p ~ 1/s^2", "J2": e_j2, "J": e_j, "b": e_b})
        if a.n_units <= 3000:
            lam = float(np.linalg.eigvalsh(a.K)[0])
            if lam <= 0:
                out.append({"check": "inductance", "message": "the phase-stiffness matrix K is not positive "
                            "definite: no passive inductance network realises these couplings", "min_eig_J": lam})
    tt = truncation_table(a)
    if abs(tt[-1]["all_orders_kT"]) > TRUNCATION_LIMIT_KT:
        # generated (normalised) digits reach |x| ~ 2: the x^4 model is not the chip out there
        out.append({"check": "truncation", "message": "the junctions' cosine beyond x^4, which the realised "
                    "model leaves out, is " + ", ".join(f"{r['all_orders_kT']:.3g} kT at |x| = {r['x']:g}" for r in tt)
                    + f" (x^6 term alone: {tt[-1]['x6_kT']:.3g} kT at |x| = 2; per unit, of its k_B T); normalised "
                    "digits reach |x| ~ 2 in generation. It scales as J4' s^2 x^6: a smaller phase scale s reduces it "
                    "(x s^2), at the price of larger I_c and hbar omega_p",
                    "table": tt})
    ph = p.target.physics
    for name, want, have in (("Ic_A", a.I_c, ph.Ic_A), ("L_H", a.L, ph.L_H)):
        if have is None:
            continue
        dev = float(np.max(np.abs(want / have - 1)))
        if dev > FAB_TOLERANCE:
            out.append({"check": "fabricated", "message": f"the mapping needs {name} = "
                        f"{np.min(want):.4g}..{np.max(want):.4g}, the target's fabricated value is {have:.4g} "
                        f"({100 * dev:.3g} % off): change the phase scale s or J2/J4, or fabricate to match",
                        "parameter": name, "relative_deviation": dev})
    return out


# ---------------------------------------------------------------------------------------------
def to_dict(a: RFSquidArray) -> dict:
    """The parameter set as plain data (SI units in the key names)."""
    t1, t05 = a.truncation_error_kT(1.0), a.truncation_error_kT(0.5)
    r1, r05 = a.residual_kT(1.0), a.residual_kT(0.5)
    E_J, E_L, beta_L, beta_C = a.E_J, a.E_L, a.beta_L, a.beta_C
    fb, q = a.flux_bias_Phi0, a.hbar_omega_p_over_kT
    sq = []
    for i in range(a.n_units):
        sq.append({"unit": i, "E_J_J": th.fl(E_J[i]), "I_c_A": th.fl(a.I_c[i]), "L_H": th.fl(a.L[i]),
                   "E_L_J": th.fl(E_L[i]), "C_F": th.fl(a.C[i]), "R_shunt_ohm": th.fl(a.R[i]),
                   "flux_bias_Phi0": th.fl(fb[i]), "flux_bias_shift_rad": th.fl(a.delta_phi_x[i]),
                   "phase_scale_rad": th.fl(a.s[i]), "beta_L": th.fl(beta_L[i]), "beta_C": th.fl(beta_C[i]),
                   "hbar_omega_p_over_kBT": th.fl(q[i]), "temperature_K": th.fl(a.temperature[i]),
                   "truncation_error_kT_at_x1": th.fl(t1[i]), "truncation_error_kT_at_x0.5": th.fl(t05[i]),
                   "residual_all_orders_kT_at_x1": th.fl(r1[i]),
                   "residual_all_orders_kT_at_x0.5": th.fl(r05[i])})
    ii, jj = np.nonzero(np.triu(a.coupled, 1))
    cp = [{"i": int(i), "j": int(j), "M_H": th.fl(a.M[i, j])} for i, j in zip(ii.tolist(), jj.tolist())]
    temp = th.fl(a.temperature[0]) if th.uniform(a.temperature) else [th.fl(t) for t in a.temperature]
    d = {"schema": SCHEMA, "target": (a.meta or {}).get("target", ""),
         "source_hash": (a.meta or {}).get("source_hash", ""), "temperature_K": temp,
         "energy_per_model_unit_J": th.fl(a.energy_unit_J), "tau_s": th.fl(a.tau_s),
         "n_units": a.n_units, "n_visible": a.n_visible, "squids": sq, "couplings": cp}
    if a.n_units <= 4000:
        err = mutual_inductance_error(a)
        d["mutual_inductance_second_order"] = {
            "J2_error_kT_max": th.fl(np.max(np.abs(err["J2_kT"]), initial=0.0)),
            "b_error_kT_max": th.fl(np.max(np.abs(err["b_kT"]), initial=0.0)),
            "J_error_kT_max": th.fl(err["J_kT_max"]), "uncoupled_J_error_kT_max": th.fl(err["uncoupled_J_kT_max"])}
    return d


def write(p, folder) -> list[Path]:
    """chip.cir (the RCSJ netlist of the generation protocol, or with ``netlist="free"`` one
    model time unit from x = 0; with ``noise="pwl"`` also noise.inc and noise.npz), rfsquids.yaml
    (per-SQUID SI parameters, couplings, truncation errors) and couplings.csv."""
    folder = Path(folder)
    a = p.artefact
    eps = a.energy_unit_J
    tt = truncation_table(a)
    head = [f"thermohw rf-SQUID array ({SCHEMA})",
            f"made by thermohw {__version__} (thermohw/backends/josephson.py) from target "
            f"{p.target.name!r}, source model sha256/16 {p.report.get('source_hash', '')}",
            "mapping (thermohw docs/design.md#josephson): phi = pi + s x, phi_x = pi + delta; E_J = 24 J4 eps/s^4, "
            "E_L = E_J + 2 J2 eps/s^2, K_ij = J_ij eps/(s_i s_j), M_ij = -K_ij L_i L_j/Phi_r^2, "
            "K delta = -b eps/s, R = mu Phi_r^2 s^2/(tau eps)",
            "sign: M_ij > 0 when positive current in loop j threads positive flux through loop i "
            "(gives J_ij < 0); to first order in M/L, fourth order in x",
            f"energy scale: one model energy unit eps = {eps:.6g} J; k_B T = {np.mean(a.kT_J):.6g} J "
            f"(T = {np.mean(a.temperature):.6g} K); tau = {a.tau_s:.6g} s per model time unit",
            f"beta_C max {np.max(a.beta_C):.3g} (overdamped needs << 1); hbar omega_p / k_B T max "
            f"{np.max(a.hbar_omega_p_over_kT):.3g} (classical needs << 1)",
            "left out of the x^4 model, per unit (x^6 term; all orders): "
            + "; ".join(f"{r['x6_kT']:.3g}; {r['all_orders_kT']:.3g} kT at |x| = {r['x']:g}" for r in tt)]
    out = _write_netlist(p, folder)
    out.append(th.write_text(folder / "rfsquids.yaml", th.yaml_text(head, to_dict(a))))
    rows = ["i,j,M_H,K_J_per_rad2"]
    K = a.K
    ii, jj = np.nonzero(np.triu(a.coupled, 1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        rows.append(f"{i},{j},{th.csv_float(a.M[i, j])},{th.csv_float(K[i, j])}")
    out.append(th.write_text(folder / "couplings.csv", "\n".join(rows) + "\n"))
    return out


def describe(a: RFSquidArray) -> str:
    tt = truncation_table(a)
    return (f"{a.n_units} rf-SQUIDs: I_c = {eng_unit(a.I_c[0], 'A')}, L = {eng_unit(a.L[0], 'H')}, "
            f"beta_L = {a.beta_L[0]:.3g}, R = {eng_unit(a.R[0], 'ohm')}, beta_C = {a.beta_C[0]:.3g}, "
            f"hbar omega_p/k_BT = {a.hbar_omega_p_over_kT[0]:.3g}; beyond x^4: "
            + ", ".join(f"{r['all_orders_kT']:.3g} kT at |x| = {r['x']:g}" for r in tt))


# ---------------------------------------------------------------------------------------------
# mismatch in physical terms (chipaware.Mismatch uses it for josephson targets)
# ---------------------------------------------------------------------------------------------
def j2_sensitivity(beta_L) -> np.ndarray:
    """dJ2/J2 per dI_c/I_c at fixed L, s and flux bias: J2 = (E_L - E_J) s^2 / (2 eps) and
    E_J = Phi_r I_c, so dJ2/J2 = -E_J/(E_L - E_J) dI_c/I_c = -beta_L/(1 - beta_L) dI_c/I_c
    (-12.0 at beta_L = 0.923: a 2 % I_c spread is a 24 % J2 spread). J4 moves by dI_c/I_c."""
    b = np.asarray(beta_L, dtype=np.float64)
    return -b / (1.0 - b)


@dataclass(frozen=True, eq=False)
class ChipErrors:
    """One rf-SQUID chip's fabrication errors, relative, in physical terms:

    ic_rel (N,)   critical-current spread dI_c/I_c: E_J = Phi_r I_c moves, so J4 moves by the same
                  fraction and J2 = (E_L - E_J) s^2/(2 eps) by -beta_L/(1 - beta_L) times it
                  (:func:`j2_sensitivity`); the loop inductance L (geometry) does not.
    m_rel (N, N)  symmetric coupler spread dM/M: J_ij moves by it, and each bias b_i =
                  -s_i (K delta)_i / eps by -s_i sum_j dK_ij delta_j / eps (the neighbours' flux
                  shifts reach unit i through the coupler).
    r_rel (N,)    shunt-resistor spread dR/R: mu moves by it (mu = tau eps R / (Phi_r^2 s^2)).
    The flux biases, the phase scale, the temperature and the inductances stay as programmed.
    :meth:`apply` maps a model through the backend's first-order formulas (``lower`` then
    ``to_computer`` with these errors, in model units: eps cancels)."""

    ic_rel: np.ndarray
    m_rel: np.ndarray
    r_rel: np.ndarray
    phase_scale: float

    def apply(self, c: Computer) -> Computer:
        s = float(self.phase_scale)
        ej = 24.0 * c.J4 / s ** 4                      # E_J / eps
        el = ej + 2.0 * c.J2 / s ** 2                  # E_L / eps (fixed: L is geometric)
        K = c.J / s ** 2                               # K_ij / eps, zero diagonal
        delta = np.linalg.solve(K + np.diag(el), -c.b / s)
        ej2 = ej * (1.0 + self.ic_rel)
        K2 = K * (1.0 + self.m_rel)
        return c.replace(J=K2 * s ** 2, b=-s * ((K2 + np.diag(el)) @ delta), J2=(el - ej2) * s ** 2 / 2.0,
                         J4=ej2 * s ** 4 / 24.0, mu=c.mu * (1.0 + self.r_rel))


def chip_errors(target, ic_rel: np.ndarray, m_rel: np.ndarray, r_rel: np.ndarray) -> ChipErrors:
    """:class:`ChipErrors` of ``target`` (its phase scale) from drawn relative errors."""
    return ChipErrors(ic_rel=np.asarray(ic_rel, float), m_rel=np.asarray(m_rel, float),
                      r_rel=np.asarray(r_rel, float), phase_scale=float(target.physics.phase_scale))


# ---------------------------------------------------------------------------------------------
# the hardware's own overdamped model: full cosine, exact inductance (model units)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class HardwareModel:
    """What the rf-SQUIDs implement in the overdamped limit, in model units (x = theta / s,
    energy / eps): V(x) = [1/2 psi^T K psi + sum_i E_J,i cos(s_i x_i)] / eps, psi = s x - delta,
    with K the exact inverse inductance (``exact=True``) or the first-order one, and the cosine
    in full (``cosine=True``) or cut at x^4; mu and kT as :func:`to_computer`. The netlist
    differs from it only by the junctions' inertia (beta_C) and SPICE's integration error."""

    art: RFSquidArray
    exact: bool = True
    cosine: bool = True

    def __post_init__(self) -> None:
        a = self.art
        K = exact_stiffness(a) if self.exact else a.K
        object.__setattr__(self, "_K", K / a.energy_unit_J)
        object.__setattr__(self, "_ej", a.E_J / a.energy_unit_J)
        ref = to_computer(a)
        object.__setattr__(self, "mu", ref.mu)
        object.__setattr__(self, "kT", ref.kT)

    def _junction(self, th_):
        if self.cosine:
            return np.cos(th_), -np.sin(th_)
        return 1 - th_ ** 2 / 2 + th_ ** 4 / 24, -th_ + th_ ** 3 / 6

    def energy(self, x: np.ndarray) -> np.ndarray:
        """V(x) - V(0) for states (..., N)."""
        a = self.art
        x = np.asarray(x, dtype=np.float64)

        def v(xx):
            psi = a.s * xx - a.delta_phi_x
            return 0.5 * np.einsum("...i,ij,...j->...", psi, self._K, psi) + self._junction(a.s * xx)[0] @ self._ej

        return v(x) - v(np.zeros(a.n_units))

    def grad(self, x: np.ndarray) -> np.ndarray:
        a = self.art
        x = np.asarray(x, dtype=np.float64)
        th_ = a.s * x
        return a.s * ((th_ - a.delta_phi_x) @ self._K + self._ej * self._junction(th_)[1])


def simulate_hardware(model: HardwareModel, x0: np.ndarray, *, n_steps: int, dt: float,
                      noise: np.ndarray | None = None, seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Euler-Maruyama of :class:`HardwareModel` from x0 (R, N) for ``n_steps`` of ``dt`` model
    time units; ``noise`` (n_steps, R, N) standard normals (else drawn with ``seed``).
    Returns (final states (R, N), heat V(x0) - V(x_f) per run in model energy units)."""
    x = np.array(x0, dtype=np.float64)
    rng = np.random.default_rng(seed)
    amp = np.sqrt(2.0 * model.mu * model.kT * dt)
    for k in range(int(n_steps)):
        z = noise[k] if noise is not None else rng.standard_normal(x.shape)
        x = x - dt * model.mu * model.grad(x) + amp * z
    return x, model.energy(x0) - model.energy(x)
