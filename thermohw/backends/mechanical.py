"""Mechanical-oscillator backend (docs/design.md#mechanical; micro-cantilevers as in Dago et al. 2021).

Each unit is one oscillator with displacement X_i = l x_i (l = length scale, m per unit of x),
modal mass m, friction gamma, a feedback-shaped potential and thermal noise at temperature T.

Units. One model energy unit is eps = k_B T / kT_ref joules (see ``_thermal``); the design
notes write the same numbers with "J2 in units of kT", J2' = J2 / kT, so eps J2 = J2' k_B T.
The oscillator energy is U = eps V(X / l):

    U = sum_i [ k_i X_i^2 / 2 + alpha_i X_i^4 / 4 - F_i X_i ] + sum_{i<j} kappa_ij X_i X_j

and matching term by term (model value J, its kT-unit form J'):

    stiffness       k_i       = 2 eps J2_i / l^2     = 2 J2' k_BT / l^2          [N/m]
    Duffing         alpha_i   = 4 eps J4_i / l^4     = 4 J4' k_BT / l^4          [N/m^3]
    bias force      F_i       = -eps b_i / l         = -b' k_BT / l              [N]
    coupling        kappa_ij  = eps J_ij / (l_i l_j) = J_ij' k_BT / l^2          [N/m]

(The bias force pushes along +X: its energy is -F X, so F = -dU/dX of the bias term.)

Sign of a passive spring. A spring of stiffness k_c > 0 between oscillators i and j stores
k_c (X_i - X_j)^2 / 2 = k_c X_i^2/2 + k_c X_j^2/2 - k_c X_i X_j, i.e. kappa_ij = -k_c <= 0
(J_ij <= 0) plus a stiffness k_c added to both on-site springs (J2 shift +|J_ij|/2 each).
kappa_ij > 0 (J_ij > 0) is what no spring can give: those couplings need active feedback
(``needs_feedback``). ``anchor_stiffness_if_springs`` is the on-site stiffness left for each
oscillator if every kappa < 0 were built as a spring (it must stay >= 0 ... or the anchor
itself needs feedback).

Friction (derived here; the founding brief stated only the result). The physical overdamped Langevin
equation, with white noise <eta(t) eta(t')> = delta(t - t'),

    gamma dX/dt = -dU/dX + sqrt(2 gamma k_B T) eta(t)

with X = l x, U = eps V, t = tau t_m (tau = tau_s, seconds per model time unit) and
eta(tau t_m) = eta_m(t_m) / sqrt(tau) becomes

    dx/dt_m = -(tau eps / (gamma l^2)) dV/dx + sqrt(2 tau k_B T / (gamma l^2)) eta_m(t_m).

The model is dx/dt_m = -mu dV/dx + sqrt(2 mu kT) eta_m. The drift gives
mu = tau eps / (gamma l^2); the noise gives mu kT = tau k_B T / (gamma l^2), the same
condition because eps kT = k_B T (fluctuation-dissipation holds automatically). Hence

    gamma_i = tau eps / (mu_i l^2)      [kg/s]

which is the founding brief's mu = k_BT / (gamma l^2) once its mu is read as the physical rate
mu kT / tau (1/s) - the preset's numbers (mu = 3.99e3 /s, tau = 25 us) follow that reading.

Inertia. The real oscillator is m X'' + gamma X' = -dU/dX + noise. Its quality factor

    f0 = sqrt(k/m) / (2 pi),   Q = sqrt(k m) / gamma = (k/gamma) / omega0 = 2 J2' mu_phys / omega0

is the overdamped relaxation rate over omega0. The overdamped model is exact only for
Q -> 0; the slow-mode rate of a linear unit is off by (1 - sqrt(1 - 4 Q^2)) / (2 Q^2) - 1 ~ Q^2,
and for Q >= 1/2 the unit rings. The stationary distribution is Boltzmann in U either way;
the finite-time dynamics (and so generation and heat) are not the model's. Verdict:
Q < 0.2 overdamped, 0.2 <= Q < 1/2 weakly overdamped, Q >= 1/2 underdamped.

Round trip: ``to_computer(lower(p), p)`` returns ``p.programmed`` to float rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.constants import k as K_B

from . import adopt_program
from .. import __version__
from ..computer import Computer
from ..errors import InputError
from ..spice.netlist import eng_unit
from . import _thermal as th

SCHEMA = "thermohw.mechanical/1"
Q_OVERDAMPED = 0.2   # below: inertial rate error < ~4 % (Q^2)
Q_CRITICAL = 0.5     # at and above: the unit rings (complex eigenvalues)


@dataclass(frozen=True, eq=False)
class OscillatorArray:
    """Physical parameters of a mechanical-oscillator array, SI units, logical unit order.

    k, alpha, mass, gamma, F, temperature, l : (N,) per oscillator
        stiffness [N/m], Duffing coefficient [N/m^3], mass [kg], friction [kg/s], bias force
        [N], bath temperature [K], length scale [m per unit of x].
    kappa : (N, N) coupling stiffness [N/m], symmetric, zero diagonal (energy kappa_ij X_i X_j
        per pair).
    coupled : (N, N) bool, the programmed couplers (a coupler may be programmed to 0).
    energy_unit_J : eps, joules per model energy unit (k_B T / kT_ref).
    tau_s : seconds per model time unit.
    """

    k: np.ndarray
    alpha: np.ndarray
    mass: np.ndarray
    gamma: np.ndarray
    F: np.ndarray
    temperature: np.ndarray
    l: np.ndarray
    kappa: np.ndarray
    coupled: np.ndarray
    energy_unit_J: float
    tau_s: float
    n_visible: int
    image_shape: tuple | None = None
    meta: dict | None = None

    def __post_init__(self) -> None:
        th.freeze_fields(self, "k", ("alpha", "mass", "gamma", "F", "temperature", "l"), ("kappa",),
                         ("mass", "gamma", "temperature", "l"), "stiffness per oscillator")
        if not (self.energy_unit_J > 0 and self.tau_s > 0):
            raise InputError("energy_unit_J and tau_s must be > 0")
        object.__setattr__(self, "meta", dict(self.meta or {}))

    # ---- derived quantities ------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.k.shape[0]

    @property
    def needs_feedback(self) -> np.ndarray:
        """(N, N) bool: couplers whose kappa > 0 (J_ij > 0), which no passive spring gives."""
        return self.coupled & (self.kappa > 0)

    @property
    def anchor_stiffness_if_springs(self) -> np.ndarray:
        """On-site stiffness left per oscillator if every kappa < 0 were a spring of
        stiffness -kappa (each spring adds its stiffness to both ends' on-site springs)."""
        return self.k - np.sum(np.where(self.kappa < 0, -self.kappa, 0.0), axis=1)

    @property
    def omega0(self) -> np.ndarray:
        """Small-oscillation angular frequency sqrt(k/m), rad/s (NaN where k <= 0)."""
        with np.errstate(invalid="ignore"):
            return np.where(self.k > 0, np.sqrt(np.abs(self.k) / self.mass), np.nan)

    @property
    def f0(self) -> np.ndarray:
        """sqrt(k/m) / (2 pi), Hz (NaN where k <= 0: no harmonic well at x = 0)."""
        return self.omega0 / (2 * math.pi)

    @property
    def Q(self) -> np.ndarray:
        """Quality factor sqrt(k m) / gamma (NaN where k <= 0). Overdamped needs Q << 1/2."""
        return self.omega0 * self.mass / self.gamma

    @property
    def relaxation_rate(self) -> np.ndarray:
        """Overdamped relaxation rate of the harmonic part, k / gamma, 1/s."""
        return self.k / self.gamma

    @property
    def verdict(self) -> str:
        return damping_verdict(self.Q)

    @property
    def model_mass(self) -> np.ndarray:
        """The mass in model units (energy time^2 / x^2), m l^2 / (tau^2 eps): with it,
        m X'' + gamma X' = -dU/dX reads m_model x'' + x'/mu = -dV/dx in model time, the
        equation ``thermohw.underdamped.simulate_underdamped`` integrates (gamma = 1/mu)."""
        return self.mass * self.l ** 2 / (self.tau_s ** 2 * self.energy_unit_J)


def damping_verdict(Q: np.ndarray) -> str:
    """'overdamped' (max Q < 0.2), 'weakly overdamped' (< 1/2), 'underdamped' (>= 1/2), or
    'undefined' when some unit has k <= 0 and the others do not settle it."""
    Q = np.asarray(Q, dtype=np.float64)
    fin = Q[np.isfinite(Q)]
    if fin.size and np.max(fin) >= Q_CRITICAL:
        return "underdamped"
    if fin.size < Q.size:
        return "undefined"
    q = float(np.max(fin)) if fin.size else 0.0
    return "overdamped" if q < Q_OVERDAMPED else "weakly overdamped"


# ---------------------------------------------------------------------------------------------
def _build(p) -> OscillatorArray:
    c = p.programmed
    ph = p.target.physics
    n = c.n_units
    eps = th.energy_unit(c.kT, ph.temperature_K)       # J per model energy unit
    tau = float(ph.tau_s)
    l = np.full(n, float(ph.length_scale_m))
    ll = np.outer(l, l)
    k = 2.0 * eps * c.J2 / l ** 2
    alpha = 4.0 * eps * c.J4 / l ** 4
    F = -eps * c.b / l
    kappa = eps * c.J / ll
    np.fill_diagonal(kappa, 0.0)
    gamma = tau * eps / (c.mu * l ** 2)
    return OscillatorArray(k=k, alpha=alpha, mass=np.full(n, float(ph.mass_kg)), gamma=gamma, F=F,
                           temperature=th.bath_temperatures(c.kT, ph.temperature_K), l=l, kappa=kappa,
                           coupled=c.mask.copy(), energy_unit_J=eps, tau_s=tau, n_visible=c.n_visible,
                           image_shape=c.image_shape,
                           meta={"source_hash": p.report.get("source_hash", ""), "target": p.target.name})


def lower(p) -> OscillatorArray:
    """The oscillator parameters (SI) for ``p.programmed`` on ``p.target``."""
    return _build(p)


def scales(p) -> dict:
    a = _build(p)
    c = p.programmed
    eps = a.energy_unit_J
    Q = a.Q
    fin = np.isfinite(Q)
    return {"energy_per_model_unit_J": eps, "kT_J": c.kT_ref * eps, "T_eff_K": c.kT_ref * eps / K_B,
            "tau_s": a.tau_s, "mu_per_s": float(np.mean(c.mu)) / a.tau_s,
            # the founding brief's "mu" for this backend (docs/design.md#mechanical): k_B T / (gamma l^2) = mu kT / tau, 1/s
            "kT_mu_per_s": float(np.mean(c.mu * c.kT)) / a.tau_s,
            "length_scale_m": float(a.l[0]), "mass_kg": float(a.mass[0]),
            "stiffness_N_per_m": float(np.mean(a.k)), "damping_kg_per_s": float(np.mean(a.gamma)),
            "f0_Hz": float(np.mean(a.f0[fin])) if fin.any() else float("nan"),
            "quality_factor_max": float(np.max(Q[fin])) if fin.any() else float("nan"),
            "couplings_needing_feedback": int(np.count_nonzero(np.triu(a.needs_feedback, 1)))}


def to_computer(art: OscillatorArray, p=None) -> Computer:
    """The ideal model the oscillators implement (inverse of :func:`lower`):

        J2 = k l^2 / (2 eps), J4 = alpha l^4 / (4 eps), b = -F l / eps,
        J_ij = kappa_ij l_i l_j / eps, mu = tau eps / (gamma l^2), kT = k_B T_i / eps.
    """
    eps, l = art.energy_unit_J, art.l
    J = art.kappa * np.outer(l, l) / eps
    np.fill_diagonal(J, 0.0)
    c = Computer(J=J, b=-art.F * l / eps, mask=art.coupled, n_visible=art.n_visible,
                 J2=art.k * l ** 2 / (2.0 * eps), J4=art.alpha * l ** 4 / (4.0 * eps),
                 mu=art.tau_s * eps / (art.gamma * l ** 2), kT=K_B * art.temperature / eps,
                 image_shape=art.image_shape, meta={"realised_from": "mechanical", **(art.meta or {})})
    c = adopt_program(c, p)
    return c


def check(p) -> list[dict]:
    out = []
    a = p.artefact
    if a is None:
        return out
    Q = a.Q
    verdict = a.verdict
    fin = np.isfinite(Q)
    qmax = float(np.max(Q[fin])) if fin.any() else float("nan")
    if verdict != "overdamped":
        if verdict == "underdamped":
            what = (f"Q = {qmax:.3g} >= 1/2: the oscillators are UNDERDAMPED and ring at "
                    f"f0 = {eng_unit(float(np.nanmax(a.f0)), 'Hz')}")
        elif verdict == "weakly overdamped":
            err = (1 - math.sqrt(1 - 4 * qmax ** 2)) / (2 * qmax ** 2) - 1
            what = (f"Q = {qmax:.3g} is below 1/2 but not << 1/2: inertia speeds the slow mode "
                    f"by {100 * err:.1f} %")
        else:
            what = (f"{int(np.count_nonzero(~fin))} unit(s) have k <= 0 (no harmonic well at x = 0), "
                    "so their Q is undefined; judge damping at the wells")
        fix = (f" (by x {qmax / Q_OVERDAMPED:.3g} for Q < {Q_OVERDAMPED})" if math.isfinite(qmax) else "")
        out.append({"check": "overdamped", "message": what + "; the stationary distribution is still "
                    "Boltzmann in U, but the dynamics (generation in finite time, heat) are not the "
                    "overdamped model's: run the underdamped simulator beside it, or raise gamma "
                    "and tau_s together" + fix,
                    "verdict": verdict, "quality_factor": qmax})
    if not th.uniform(a.temperature):
        out.append({"check": "temperature", "message": "the model's kT differs between units "
                    f"(bath temperatures {np.min(a.temperature):.4g}..{np.max(a.temperature):.4g} K): "
                    "one thermal bath cannot provide that; inject extra force noise on the hotter units",
                    "spread": th.rel_spread(a.temperature)})
    return out


# ---------------------------------------------------------------------------------------------
def to_dict(a: OscillatorArray) -> dict:
    """The parameter set as plain data (SI units in the key names)."""
    f0, Q = a.f0, a.Q
    ank = a.anchor_stiffness_if_springs
    osc = []
    for i in range(a.n_units):
        osc.append({"unit": i, "stiffness_N_per_m": th.fl(a.k[i]), "duffing_N_per_m3": th.fl(a.alpha[i]),
                    "mass_kg": th.fl(a.mass[i]), "damping_kg_per_s": th.fl(a.gamma[i]),
                    "bias_force_N": th.fl(a.F[i]), "temperature_K": th.fl(a.temperature[i]),
                    "length_scale_m": th.fl(a.l[i]), "f0_Hz": th.fl(f0[i]), "quality_factor": th.fl(Q[i]),
                    "model_mass": th.fl(a.model_mass[i]),
                    "anchor_stiffness_if_springs_N_per_m": th.fl(ank[i])})
    nf = int(np.count_nonzero(np.triu(a.needs_feedback, 1)))
    return {"schema": SCHEMA, "target": (a.meta or {}).get("target", ""),
            "source_hash": (a.meta or {}).get("source_hash", ""),
            "energy_per_model_unit_J": th.fl(a.energy_unit_J), "tau_s": th.fl(a.tau_s),
            "n_units": a.n_units, "n_visible": a.n_visible,
            "couplings": int(np.count_nonzero(np.triu(a.coupled, 1))), "couplings_needing_feedback": nf,
            "damping_verdict": a.verdict, "oscillators": osc}


def write(p, folder) -> list[Path]:
    """oscillators.yaml (per-oscillator SI parameters) and couplings.csv (kappa_ij)."""
    folder = Path(folder)
    a = p.artefact
    eps = a.energy_unit_J
    kT = float(np.mean(a.temperature)) * K_B
    fin = np.isfinite(a.Q)
    qtxt = f"{np.max(a.Q[fin]):.4g}" if fin.any() else "undefined"
    ftxt = eng_unit(float(np.mean(a.f0[fin])), "Hz") if fin.any() else "undefined"
    head = [f"thermohw mechanical oscillator array ({SCHEMA})",
            f"made by thermohw {__version__} (thermohw/backends/mechanical.py) from target "
            f"{p.target.name!r}, source model sha256/16 {p.report.get('source_hash', '')}",
            "mapping (thermohw docs/design.md#mechanical): X = l x; k = 2 J2 eps/l^2, alpha = 4 J4 eps/l^4, F = -b eps/l, "
            "kappa_ij = J_ij eps/l^2, gamma = tau eps/(mu l^2)",
            f"energy scale: one model energy unit eps = {eps:.6g} J; k_B T = {kT:.6g} J "
            f"(T = {np.mean(a.temperature):.6g} K) = E_kT; model kT = k_B T / eps",
            f"tau = {a.tau_s:.6g} s per model time unit",
            f"f0 = {ftxt} (mean), quality factor Q = sqrt(k m)/gamma = {qtxt} (max): {a.verdict}"
            + ("" if a.verdict == "overdamped" else " - the overdamped model needs Q << 1/2"),
            "coupling energy kappa_ij X_i X_j per pair: a passive spring gives kappa <= 0 only; "
            "kappa > 0 needs feedback (couplings.csv)"]
    out = [th.write_text(folder / "oscillators.yaml", th.yaml_text(head, to_dict(a)))]
    rows = ["i,j,kappa_N_per_m,needs_feedback"]
    ii, jj = np.nonzero(np.triu(a.coupled, 1))
    nf = a.needs_feedback
    for i, j in zip(ii.tolist(), jj.tolist()):
        rows.append(f"{i},{j},{th.csv_float(a.kappa[i, j])},{int(nf[i, j])}")
    out.append(th.write_text(folder / "couplings.csv", "\n".join(rows) + "\n"))
    return out


def describe(a: OscillatorArray) -> str:
    return (f"{a.n_units} oscillators: k = {eng_unit(a.k[0], 'N/m')}, m = {eng_unit(a.mass[0], 'kg')}, "
            f"gamma = {eng_unit(a.gamma[0], 'kg/s')}, l = {eng_unit(a.l[0], 'm')}, Q = {a.Q[0]:.3g} ({a.verdict})")
