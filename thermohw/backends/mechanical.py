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

Netlist: ``write`` also emits chip.cir, the force-current electrical analogue of the array
(velocity = node voltage, mass = capacitance, friction = conductance, springs = currents of
displacement nodes that integrate the velocity; the scales are in the comment block before
:func:`stiffness_bound`), with the co-simulation contract functions time_unit ...
spice_pwl_current (docs/design.md#backend-contract).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import pwl as pwl_files
from .common import adopt_program, generation_notes, generation_start
from .._version import __version__
from ..energy import K_B  # defined once for the package
from ..computer import Computer
from ..errors import InputError
from ..spice.netlist import comment_lines, eng, eng_unit, sanitize_comment
from . import _thermal as th
from ..io import atomic_write
from ..provenance import netlist_line as netlist_provenance
from ..spice.ngspice import NgspiceError
from ..underdamped import thermal_velocities
from .pwl import held_pwl

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
    def tau(self) -> float:
        """Seconds per model time unit (the name the netlist helpers of ``pwl`` use)."""
        return self.tau_s

    @property
    def force_scale_N(self) -> float:
        """F_s, newtons per ampere of the analogue netlist: eps / l0 (l0 = mean l), so that a
        current of 1 A is one model force unit (docs/design.md#mechanical)."""
        return self.energy_unit_J / float(np.mean(self.l))

    @property
    def s2(self) -> np.ndarray:
        """Two-sided white level of the analogue noise current, A^2/Hz: the thermal force
        noise 2 gamma k_B T (N^2/Hz) over F_s^2."""
        return 2.0 * self.gamma * K_B * self.temperature / self.force_scale_N ** 2

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


def underdamped_model(a: OscillatorArray, p=None) -> tuple[Computer, np.ndarray]:
    """(overdamped-limit Computer, model-unit masses): the oscillators' inertial dynamics are
    ``simulate_underdamped(computer, mass, ...)`` with its default friction 1/mu (as lc's)."""
    return to_computer(a, p), a.model_mass


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
                    "and tau_s together" + fix + " (preset mechanical-overdamped: the cantilever in a viscous liquid, x 200, Q = 0.05)",
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
    """oscillators.yaml (per-oscillator SI parameters), couplings.csv (kappa_ij) and chip.cir, the
    force-current analogue netlist (the generation protocol, or with ``netlist="free"`` a free run
    of one model time unit from rest at x = 0); with ``noise="pwl"`` also noise.inc and noise.npz
    (:mod:`thermohw.backends.pwl`; noise.npz keeps the positions, not the velocities)."""

    folder = Path(folder)
    a = p.artefact
    noise_files, inc, nt, _ = pwl_files.for_program(p, folder, prefix="IN", generation_grid=generation_grid,
                                                    noise_interval=noise_interval, free_run_tau=1.0)
    if p.options.netlist == "generate":
        txt = generation_netlist(p, noise=p.options.noise, noise_include=inc)
    else:
        txt = netlist(a, t_stop=a.tau_s, nt=nt, seed=int(p.options.netlist_seed), noise=p.options.noise,
                      x0=np.zeros(a.n_units), noise_include=inc,
                      title=f"thermohw mechanical oscillators: target {p.target.name}",
                      meta={"model": p.source.meta.get("digits", ""), "target": p.target.name})
    chip = atomic_write(folder / "chip.cir", lambda fh: fh.write(txt), mode="w")
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
    return [chip, *out, *noise_files]


# ---------------------------------------------------------------------------------------------
# the electromechanical-analogue netlist (force-current analogy) and the co-simulation contract
# ---------------------------------------------------------------------------------------------
# Force-current (mobility) analogy: force -> current, velocity -> node voltage, mass -> capacitance,
# friction -> conductance. The springs are nonlinear (Duffing) and coupled, so instead of
# inductors each oscillator gets a displacement node p<i> that integrates its velocity, and every
# spring force is a current controlled by displacements. Scales (they keep ngspice's absolute
# tolerances - 1 pA, 1 uV - far below the signals, which are O(1) in these units):
#
#     displacement  V(p<i>) = X_i / l_i                (= model x_i; 1 V = l = nm scale)
#     velocity      V(u<i>) = (dX_i/dt) tau / l_i      (= model dx/ds; 1 V = l/tau m/s)
#     force         I = F / F_s,  F_s = eps / l0       (1 A = one model force unit)
#     time          seconds (physical)
#
# so one analogue watt (V x A) is eps / tau physical watts, and the elements are
#
#     CM<i>  u<i> 0     m_i (l_i/tau) / F_s            mass            [F]
#     RD<i>  u<i> 0     F_s / (gamma_i l_i/tau)        friction        [ohm]
#     GK<i>  u<i> 0 p<i> 0    k_i l_i / F_s            linear spring   [S], drawn out of u<i>
#     BA<i>  u<i> 0     alpha_i l_i^3 / F_s V(p)^3     Duffing spring  [A/V^3]
#     IF<i>  0 u<i>     F_i / F_s                      bias force      [A], into u<i>
#     GC<i>_<j> u<i> 0 p<j> 0  kappa_ij l_j / F_s      coupling        [S]
#     IN<i>  0 u<i>     force noise 2 gamma_i k_B T_i / F_s^2 (A^2/Hz), sample-and-hold NT
#     CX<i>  p<i> 0     tau;  GX<i> 0 p<i> u<i> 0  1   integrator: dV(p)/dt = V(u)/tau
#
# KCL at u<i> is then Newton's law m X'' = -gamma X' - dU/dX + f_noise exactly; in model units
# it is m_model x'' = -x'/mu - dV/dx + sqrt(2 kT/mu) eta, what simulate_underdamped integrates.
NOISE_MODES = ("trrandom", "pwl", "none")
GENERATION_NT_FRACTION = 0.05   # NT x the fastest rate in compile's netlist (held-noise factor 0.9998)


def stiffness_bound(a: OscillatorArray) -> np.ndarray:
    """Per-unit bound (N/m) on the local stiffness for |x| <= 1: on-site linear + Duffing at
    |x| = 1 + the sum of |couplings| (Gershgorin), as lc.stiffness_bound."""
    K = np.abs(a.kappa) * (a.l[None, :] / a.l[:, None])
    np.fill_diagonal(K, 0.0)
    return np.maximum(a.k, 0.0) + 3.0 * a.alpha * a.l ** 2 + K.sum(axis=1)


def fastest_rate(a: OscillatorArray) -> float:
    """The fastest rate (1/s) the positions follow, from the roots of m s^2 + gamma s + k_b = 0
    with the stiffness bound k_b for |x| <= 1, per unit: an overdamped unit (real roots, Q_b < 1/2)
    counts its SLOW root 2 k_b / (gamma (1 + sqrt(1 - 4 Q_b^2))) ~ k_b/gamma; a unit that can
    ring counts its frequency sqrt(k_b/m). The velocity's own relaxation gamma/m is left out on
    purpose, as for LC (docs/design.md#lc): the velocity settles to (noise + force)/gamma within
    m/gamma, so a force held for NT >> m/gamma moves X by the model's Euler increment; resolving
    m/gamma would cost 1/Q^2 more intervals for velocity statistics the model does not have."""
    k = stiffness_bound(a)
    disc = a.gamma ** 2 - 4.0 * a.mass * k
    slow = 2.0 * k / (a.gamma + np.sqrt(np.maximum(disc, 0.0)))
    lam = np.where(disc >= 0, slow, np.sqrt(k / a.mass))
    return float(np.max(lam))


def time_unit(a: OscillatorArray) -> float:
    """Seconds per model time unit."""
    return float(a.tau_s)


def noise_interval(a: OscillatorArray, fraction: float = GENERATION_NT_FRACTION) -> float:
    """Noise hold interval NT (s) = fraction / :func:`fastest_rate`: NT << the positions' slow
    time (held-noise variance factor tanh(x/2)/(x/2), x = NT k/gamma) or << 1/omega0 when the
    units ring. The velocity variance of an overdamped unit is then below kT/m (factor
    tanh(y/2)/(y/2) at the hold instants, y = NT gamma/m); the positions' is not."""
    return float(fraction / fastest_rate(a))


def spice_start(p, a: OscillatorArray, x0: np.ndarray, seed) -> dict:
    """{"v0": (runs, N)} Maxwell velocities (model units dx/ds, variance kT_i / m_model,i) at the
    bath temperature: the oscillators have inertia whatever their Q. ``seed``: an int (stream
    [seed, 2], as the LC netlists), a SeedSequence or a Generator."""

    rng = np.random.SeedSequence([int(seed), 2]) if isinstance(seed, (int, np.integer)) else seed
    runs = np.atleast_2d(x0).shape[0]
    return {"v0": thermal_velocities(a.model_mass, K_B * a.temperature / a.energy_unit_J, runs, seed=rng)}


def _elements(a: OscillatorArray) -> dict:
    """Analogue element values (see the block comment above)."""
    fs, tau, l = a.force_scale_N, a.tau_s, a.l
    return {"C": a.mass * (l / tau) / fs, "G": a.gamma * (l / tau) / fs, "gk": a.k * l / fs,
            "ka": a.alpha * l ** 3 / fs, "ib": a.F / fs, "gc": a.kappa * l[None, :] / fs}


def netlist(a: OscillatorArray, *, t_stop: float, nt: float | None = None, seed: int = 1, noise: str = "trrandom",
            x0: np.ndarray | None = None, v0: np.ndarray | None = None, pwl: np.ndarray | None = None,
            title: str = "thermohw mechanical oscillators", meta: dict | None = None,
            notes: list[str] | None = None, noise_include: str | None = None) -> str:
    """ngspice netlist of the oscillator array (force-current analogue). ``noise``: "trrandom"
    (sample-and-hold Gaussian force, follows ``.options seed``), "pwl" (the given standard normals
    ``pwl`` (K, N) held NT each, or with ``noise_include`` the PWL sources in that file), "none".
    ``x0`` / ``v0``: start positions / model velocities (the one not given is 0), as ``.ic`` with
    UIC. Everything user-supplied goes in as one sanitised comment line."""
    n = a.n_units
    nt, pwl, start = _checked_netlist_inputs(a, t_stop=t_stop, nt=nt, seed=seed, noise=noise, x0=x0, v0=v0,
                                             pwl=pwl, noise_include=noise_include)
    el = _elements(a)
    lines = _header_lines(a, title, noise, nt, seed)
    lines += comment_lines(meta, notes)
    lines.append("")
    for i in range(n):
        lines += _oscillator_lines(a, el, i, noise, nt, pwl, noise_include)
    if noise == "pwl" and noise_include:
        lines.append(f".include {noise_include}")
    gc = np.where(a.coupled, el["gc"], 0.0)
    np.fill_diagonal(gc, 0.0)
    ii, jj = np.nonzero(gc)
    if len(ii):
        lines += ["", "* couplings: current kappa_ij X_j / F_s = GC V(p<j>) drawn out of u<i>"]
    for i, j in zip(ii.tolist(), jj.tolist()):
        lines.append(f"GC{i}_{j} u{i} 0 p{j} 0 {eng(gc[i, j])}")
    lines.append("")
    if noise == "trrandom":
        lines.append(f".options seed={int(seed)}")
    if start:
        x = start.get("x0", np.zeros(n))
        v = start.get("v0", np.zeros(n))
        lines.append(".ic " + " ".join(f"v(p{i})={eng(x[i])} v(u{i})={eng(v[i])}" for i in range(n)))
    lines.append(f".tran {eng(nt)} {eng(t_stop)} 0 {eng(nt)}{' uic' if start else ''}")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _checked_netlist_inputs(a: OscillatorArray, *, t_stop, nt, seed, noise, x0, v0, pwl, noise_include) -> tuple:
    """netlist's run inputs checked: (the noise interval, the pwl normals or None, the given start
    states {"x0", "v0"})."""
    n = a.n_units
    nt = noise_interval(a) if nt is None else float(nt)
    if not (math.isfinite(t_stop) and t_stop > 0 and math.isfinite(nt) and nt > 0):
        raise InputError("t_stop and the noise interval must be finite and > 0")
    if noise not in NOISE_MODES:
        raise InputError(f"noise = {noise!r}; use 'trrandom', 'pwl' or 'none'")
    if isinstance(seed, bool) or not 1 <= int(seed) <= 2147483647:
        raise InputError(f"seed = {seed}: ngspice accepts .options seed in 1..2147483647 and silently "
                         "ignores anything else (the run would not be reproducible)")
    if noise_include is not None and not re.fullmatch(r"[\w.-]+", noise_include):
        raise InputError(f"noise_include = {noise_include!r}: use a plain file name")
    if noise == "pwl" and not noise_include:
        pwl = np.asarray(pwl, dtype=np.float64) if pwl is not None else None
        if pwl is None or pwl.ndim != 2 or pwl.shape[1] != n or not np.all(np.isfinite(pwl)):
            raise InputError(f"pwl noise must be finite (K, {n}) standard normals")
    start = {}
    for name, arr in (("x0", x0), ("v0", v0)):
        if arr is not None:
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise InputError(f"{name} must be a finite array of shape ({n},)")
            start[name] = arr
    return nt, pwl, start


def _header_lines(a: OscillatorArray, title: str, noise: str, nt: float, seed: int) -> list[str]:
    """The netlist's comment header: what it is, its scales and elements, how to run it."""
    fs = a.force_scale_N
    return [f"* {sanitize_comment(title)}",
            "* generated by thermohw (mechanical oscillators, force-current analogue; thermohw/backends/mechanical.py)",
            netlist_provenance(),
            f"* source model sha256/16: {sanitize_comment((a.meta or {}).get('source_hash', ''))}",
            f"* scales: l = {float(np.mean(a.l))!r} m per V of p<i>; tau = {a.tau_s!r} s per model time unit; "
            f"eps = {a.energy_unit_J!r} J per model energy unit; F_s = eps/l = {fs!r} N per A",
            "* unit i: displacement X_i = l V(p<i>) (model x_i = V(p<i>)), velocity dX_i/dt = (l/tau) V(u<i>);"
            " force = F_s x current; power = (eps/tau) x V x A; time in seconds",
            "* elements: CM mass m (l/tau)/F_s, RD friction F_s/(gamma l/tau), GK spring k l/F_s, BA Duffing "
            "alpha l^3/F_s, IF bias force F/F_s, GC coupling kappa l/F_s, CX/GX integrator dV(p)/dt = V(u)/tau",
            f"* noise: {noise}, thermal force noise 2 gamma k_B T at T = {float(np.mean(a.temperature)):.6g} K, "
            f"held NT = {nt:.6g} s, seed {int(seed)}",
            "* run: ngspice -b -r out.raw THIS_FILE"]


def _oscillator_lines(a: OscillatorArray, el: dict, i: int, noise: str, nt: float, pwl, noise_include) -> list[str]:
    """Oscillator i's elements: mass, friction, spring, integrator, Duffing term, bias force, noise."""
    lines = [f"* oscillator {i}",
             f"CM{i} u{i} 0 {eng(el['C'][i])}",
             f"RD{i} u{i} 0 {eng(1.0 / el['G'][i])}",
             f"GK{i} u{i} 0 p{i} 0 {eng(el['gk'][i])}",
             f"CX{i} p{i} 0 {eng(a.tau_s)}",
             f"GX{i} 0 p{i} u{i} 0 1"]
    if el["ka"][i] != 0:   # never ^ or pow() in ngspice B sources: they drop the sign
        lines.append(f"BA{i} u{i} 0 I={eng(el['ka'][i])}*V(p{i})*V(p{i})*V(p{i})")
    if el["ib"][i] != 0:
        lines.append(f"IF{i} 0 u{i} DC {eng(el['ib'][i])}")
    if noise == "trrandom":
        na = math.sqrt(a.s2[i] / nt)       # white level s^2 = NA^2 NT
        lines.append(f"IN{i} 0 u{i} DC 0 TRRANDOM(2 {eng(nt)} 0 {eng(na)} 0)")
    elif noise == "pwl" and not noise_include:
        lines.append(f"IN{i} 0 u{i} PWL(" + held_pwl(math.sqrt(a.s2[i] / nt) * pwl[:, i], nt) + ")")
    return lines


def spice_netlist(a: OscillatorArray, *, t_stop: float, nt: float, seed: int, noise: str, x0: np.ndarray,
                  pwl: np.ndarray | None, title: str, **start) -> str:
    """The contract's generation-protocol netlist of one run (start: ``v0`` (N,) model velocities)."""
    extra = set(start) - {"v0"}
    if extra:
        raise InputError(f"unknown start entries {sorted(extra)} for a mechanical netlist (it takes v0)")
    return netlist(a, t_stop=t_stop, nt=nt, seed=seed, noise=noise, x0=x0, v0=start.get("v0"), pwl=pwl, title=title)


def _trace(raw, name: str) -> np.ndarray:
    return np.asarray(raw[name], dtype=np.float64)


def states(raw, a: OscillatorArray) -> dict:
    """Model-unit states on ngspice's own time points: ``t`` (s), ``s`` (model time), ``x`` (T, N)
    = V(p<i>) and ``u`` (T, N) = dx/ds = V(u<i>)."""
    t = _trace(raw, "time")
    n = a.n_units
    return {"t": t, "s": t / a.tau_s, "x": np.stack([_trace(raw, f"v(p{i})") for i in range(n)], axis=1),
            "u": np.stack([_trace(raw, f"v(u{i})") for i in range(n)], axis=1)}


def spice_readout(raw, a: OscillatorArray, grid_s: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x (model units) on ``grid_s`` (s), (len(grid_s), N): x_i = V(p<i>); ``x0`` supplies t = 0
    (ngspice 39 does not store t = 0 of a UIC run)."""

    st = states(raw, a)
    t, x = st["t"], st["x"]
    grid_s = np.asarray(grid_s, dtype=np.float64)
    if t[-1] < grid_s[-1] * (1 - 1e-9):
        raise NgspiceError(f"ngspice stopped at t = {t[-1]:.6g} s before the end {grid_s[-1]:.6g} s")
    if t[0] > 0:
        t = np.concatenate([[0.0], t])
        x = np.concatenate([np.asarray(x0, dtype=np.float64)[None, :], x])
    return np.stack([np.interp(grid_s, t, x[:, i]) for i in range(a.n_units)], axis=1)


def potential_J(a: OscillatorArray, X: np.ndarray) -> np.ndarray:
    """U(X) in joules for displacements X (..., N) in metres (kappa counted once per pair)."""
    X = np.asarray(X, dtype=np.float64)
    kap = np.where(a.coupled, a.kappa, 0.0)
    return (X ** 2 @ (a.k / 2) + X ** 4 @ (a.alpha / 4) - X @ a.F
            + 0.5 * np.einsum("...i,ij,...j->...", X, kap, X))


def spice_energy(raw, a: OscillatorArray) -> dict[str, float]:
    """Energy balance of a run in joules on ngspice's own time points (trapezoid): "dissipated_J"
    (friction, integral of gamma v^2 >= 0), "kinetic_delta_J" and "potential_delta_J" (their sum
    "stored_delta_J"), "noise_delivered_J" (first law: the thermal force's work = dissipated +
    stored change) and "heat_J" (given to the bath: dissipated - noise delivered = -stored change).
    The first and last stored points are ngspice's (its first point is one step after t = 0)."""
    st = states(raw, a)
    t = st["t"]
    v = st["u"] * (a.l / a.tau_s)                 # m/s
    X = st["x"] * a.l                             # m
    diss = float(np.trapezoid((v * v) @ a.gamma, t))
    kin = 0.5 * (v * v) @ a.mass
    pot = potential_J(a, X)
    e = {"dissipated_J": diss, "kinetic_delta_J": float(kin[-1] - kin[0]),
         "potential_delta_J": float(pot[-1] - pot[0])}
    e["stored_delta_J"] = e["kinetic_delta_J"] + e["potential_delta_J"]
    e["noise_delivered_J"] = e["dissipated_J"] + e["stored_delta_J"]
    e["heat_J"] = -e["stored_delta_J"]
    return e


def spice_pwl_current(a: OscillatorArray, nt: float, z: np.ndarray) -> np.ndarray:
    """The noise "pwl" injects for standard normals z, (K, N), as the currents whose product with
    the node voltages V(u<i>) is the noise force's PHYSICAL power in watts (what cosim's measured
    first law integrates): the injected analogue current sqrt(s2 / NT) z times eps/tau, the
    analogue's watts per volt-ampere. (The analogue currents themselves are the force over F_s;
    an analogue with 1 W per V A would need currents below ngspice's 1 pA tolerance.)"""
    z = np.asarray(z, dtype=np.float64)
    return np.sqrt(a.s2 / float(nt)) * z * (a.energy_unit_J / a.tau_s)


def generation_grid(p, nt_fraction: float = GENERATION_NT_FRACTION) -> tuple[float, float, int]:
    """(t_f, NT, K): K noise samples of NT seconds fill t_f model time units, NT within
    ``nt_fraction`` / the fastest rate."""
    a = p.artefact
    t_f = p.options.generation_time(p.source)
    k = max(1, math.ceil(t_f * a.tau_s / noise_interval(a, nt_fraction) - 1e-9))
    return t_f, t_f * a.tau_s / k, k


def generation_netlist(p, nt_fraction: float = GENERATION_NT_FRACTION, noise: str = "trrandom",
                       noise_include: str | None = None) -> str:
    """The paper's generation protocol on the oscillators: positions from the realised model's
    coupling-free equilibrium, Maxwell velocities at the bath temperature (both seeded by
    ``netlist_seed``), then the trained forces for t_f with the thermal force noise."""

    a = p.artefact
    t_f, x0 = generation_start(p)
    seed = int(p.options.netlist_seed)
    v0 = spice_start(p, a, x0[None], seed)["v0"][0]
    _, nt, _ = generation_grid(p, nt_fraction)
    return netlist(a, t_stop=t_f * a.tau_s, nt=nt, seed=seed, x0=x0, v0=v0, noise=noise, noise_include=noise_include,
                   title=f"thermohw mechanical oscillators: target {p.target.name}",
                   meta={"model": p.source.meta.get("digits", ""), "target": p.target.name},
                   notes=generation_notes(p, t_f, a.tau_s, "x_i = V(p<i>) (X_i = l x_i)"))


def describe(a: OscillatorArray) -> str:
    return (f"{a.n_units} oscillators: k = {eng_unit(a.k[0], 'N/m')}, m = {eng_unit(a.mass[0], 'kg')}, "
            f"gamma = {eng_unit(a.gamma[0], 'kg/s')}, l = {eng_unit(a.l[0], 'm')}, Q = {a.Q[0]:.3g} ({a.verdict})")
