"""LC s-unit backend: RLC cells with injected current noise, in the manner of Normal
Computing's stochastic processing unit (Melanson et al., arXiv:2312.04836; docs/design.md#lc).

Cell i (node u<i>)
------------------
a capacitor C to ground, a damping resistor R to ground in parallel, an inductor L from the
node to ground (through a 0 V sense source VL<i> so its current can control other elements),
and current-controlled / behavioural current sources that complete the potential:

    trim CCCS      a_i I_L,i              drawn out of node i   (on-site J2 trim, either sign)
    quartic B      k3_i Phi_i^3           drawn out of node i   (Phi_i = L_i I_L,i)
    bias           I_b,i                  injected into node i
    coupling CCCS  K_ij Phi_j             drawn out of node i   (gain K_ij L_j on I_L,j)
    noise          white, <I I> = s_i^2 delta(t)   injected into node i

Which variable carries x
------------------------
The position is the inductor flux Phi_i = L_i I_L,i (equivalently the inductor current);
the node voltage is its velocity, v_i = dPhi_i/dt, and C is the mass. (The founding brief said
"node voltages are momenta"; strictly they are velocities - the canonical momenta are the
node charges C v, which differ once a capacitance *matrix* couples the cells.) Kirchhoff's
current law at node i is Newton's law:

    C_i dv_i/dt = -v_i/R_i - dU/dPhi_i + I_noise,i,     dPhi_i/dt = v_i,
    U(Phi) = sum_i [(1 + a_i) Phi_i^2/(2 L_i) + k3_i Phi_i^4/4 - I_b,i Phi_i]
             + sum_{i<j} K_ij Phi_i Phi_j.

Units: x = Phi/Phi_s, model time s = t/tau, U = E V(x). Then, with gamma_i = 1/mu_i,

    m_i x'' = -gamma_i x' - dV/dx_i + sqrt(2 gamma_i kT_i) eta(s),    m_i = C_i Phi_s^2/(E tau^2)

*if and only if* the elements are (mu, J2, J4, b, J, kT in model units)

    (1 + a_i)/L_i = 2 E J2_i / Phi_s^2       k3_i = 4 E J4_i / Phi_s^4
    I_b,i = -E b_i / Phi_s                    K_ij = E J_ij / Phi_s^2
    R_i = mu_i Phi_s^2 / (tau E)              s_i^2 = 2 kT_i E / R_i   (fluctuation-dissipation
                                                                       with the friction 1/R)

The overdamped limit. For a linear cell (spring 1/L, mass C, friction 1/R) the damping ratio
is zeta = (1/R)/(2 sqrt(C/L)) = 1/(2Q) with **Q = R sqrt(C/L)** - correct for this *parallel*
RLC (for a series RLC it would be sqrt(L/C)/R). In model units m = Q^2/(2 mu^2 J2), so
m mu (the inertial time, R C in seconds) over 1/(2 mu J2) (the relaxation time, L/R in
seconds) is exactly Q^2. For Q << 1/2 the inertial term is negligible: C dv/dt -> 0 gives
dPhi/dt = R(-dU/dPhi + I_noise), i.e.

    dx/ds = -mu_i dV/dx_i + sqrt(2 mu_i kT_i) eta,    mu_i = tau R_i E / Phi_s^2,

the computer's own equation. The slow relaxation rate of a linear cell is off by the factor
(1 - sqrt(1 - 4Q^2))/(2Q^2) = 1 + Q^2 + 2Q^4 + ...; for Q >= 1/2 the cell rings. The
*stationary* distribution of x is exp(-V/kT) for any Q (when kT is uniform): inertia changes
dynamics (relaxation, the finite-time generation protocol), not equilibrium statistics.
Q refers to the local stiffness: the quartic raises the curvature from 2 J2 at x = 0 to
2 J2 + 12 J4 at |x| = 1 (x7 for the paper's J2 = J4), and couplings add up to sum_j |J_ij|,
so ``check`` bounds Q over |x| <= 1 (Gershgorin) and flags it above Q_LIMIT = 0.1 (slow-rate
error ~Q^2 = 1 %). Conversely, the inertial time R C is 1/Q^2 times shorter than the
relaxation time, so a well-overdamped LC netlist is stiff: SPICE pays ~1/Q^2 steps per tau.
``to_computer`` returns the overdamped-limit Computer above; :func:`underdamped_model`
returns it with the masses for ``thermohw.underdamped.simulate_underdamped``.

Why couplings act on the flux: a coupling capacitor between nodes adds to the capacitance
(mass) matrix, C dv/dt -> C_matrix dv/dt, and disappears with the inertial term in the
overdamped limit (the SPU's capacitive coupling shapes the *voltage* covariance kT C^-1, not
the potential). A coupling that survives must be a term in U: here a current-controlled
current source sensing the neighbour's inductor current (a transconductor on the position
variable; either sign). Mutual inductance would also work (U = Phi^T L^-1 Phi / 2) but ties
the diagonal to the couplings and limits |M| < sqrt(L_i L_j).

Scale choices (from the target). The target gives C_F, L_H, R_ohm (or quality_factor),
V_s_V and tau_s - one number too many: in the overdamped limit the relaxation rate of a
linear cell is R/L, so the model time unit is fixed by the components,

    tau = 2 mu_ref J2_ref L / R        (mu_ref, J2_ref: means of the programmed model)

This backend trusts the components and uses that tau; ``check`` reports a violation when the
target's tau_s differs (lc-spu: L/R gives 2 us, tau_s says 10 us). The flux scale is
Phi_s = V_s tau, i.e. V_s is volts of node voltage per unit of model velocity dx/ds (for
thermal noise without V_s: k_B T = kT E fixes Phi_s). Then E = Phi_s^2/(2 L J2_ref): a lone
linear cell with J2 = J2_ref stores exactly Phi^2/(2L), k_B T_eff = kT E, heat Q_J = Q E.
With uniform mu, every cell gets the target's R; the J2 trims (10-bit diagonal codes) are the
CCCS gains a_i = J2_i/J2_ref - 1 on a common inductor L.

ngspice notes: the quartic B-source uses i(VL)*i(VL)*i(VL) (never ^ or pow(): they drop the
sign); the noise is TRRANDOM sample-and-hold (follows ``.options seed``, docs/design.md#noise) with
NA = s/sqrt(NT); initial states go on the elements (L IC=, C IC=) with UIC. Read noisy
statistics at the hold instants t = k NT (see :func:`held_noise_factors`). ngspice restarts
its step at every TRRANDOM breakpoint, so a run costs ~4-7 time points per NT.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import pwl as pwl_files
from .common import adopt_program, generation_notes, generation_start
from .mismatch import MismatchRecord, active_element_errors
from ..computer import Computer
from ..errors import InputError
from ..io import atomic_write
from ..provenance import netlist_line as netlist_provenance
from ..energy import K_B
from ..spice.netlist import comment_lines, eng, eng_unit, sanitize_comment, sanitize_name
from ..spice.ngspice import NgspiceError
from ..underdamped import slow_rate_error, thermal_velocities
from .pwl import held_pwl

Q_LIMIT = 0.1          # Q above this is "not << 1/2": the slow rate is off by ~Q^2 >= 1 %
TAU_RTOL = 0.01        # relative mismatch of the target's tau_s against 2 mu J2 L / R


@dataclass(frozen=True, eq=False)
class LCCircuit:
    """Element values of an LC s-unit chip, SI units, logical unit order."""

    C: np.ndarray          # (N,) F, node capacitance (the mass)
    L: np.ndarray          # (N,) H, cell inductor
    R: np.ndarray          # (N,) ohm, parallel damping resistor (friction 1/R)
    a: np.ndarray          # (N,) CCCS gain: a_i I_L,i drawn out of node i (J2 trim)
    k3: np.ndarray         # (N,) A/Wb^3, quartic current k3 Phi^3 drawn out of the node
    I_b: np.ndarray        # (N,) A, bias current into the node
    K: np.ndarray          # (N, N) A/Wb, current K_ij Phi_j drawn out of node i
    s2: np.ndarray         # (N,) A^2/Hz, two-sided white noise level of the injected current
    phi_s: float           # Wb per unit of x
    tau: float             # s per model time unit
    E: float               # J per model energy unit
    kT_model: np.ndarray   # (N,) model kT
    n_visible: int
    image_shape: tuple | None
    meta: dict

    @property
    def n_units(self) -> int:
        return self.C.shape[0]

    @property
    def V_s(self) -> float:
        """Volts of node voltage per unit of model velocity dx/ds."""
        return self.phi_s / self.tau

    @property
    def spring(self) -> np.ndarray:
        """Linear on-site stiffness (1 + a)/L, 1/H (A per Wb)."""
        return (1.0 + self.a) / self.L

    @property
    def mass(self) -> np.ndarray:
        """Model-unit masses m_i = C_i Phi_s^2 / (E tau^2)."""
        return self.C * self.phi_s ** 2 / (self.E * self.tau ** 2)

    def stiffness_bound(self) -> np.ndarray:
        """Per-cell bound on the local stiffness for |x| <= 1 (Gershgorin: on-site linear +
        quartic at |x| = 1 + sum of |couplings|), 1/H."""
        K = np.abs(self.K).copy()
        np.fill_diagonal(K, 0.0)
        return np.maximum(self.spring, 0.0) + 3 * self.k3 * self.phi_s ** 2 + K.sum(axis=1)

    def quality_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(Q at x = 0 from the on-site spring, Q bound over |x| <= 1 with quartic and couplings)."""
        q0 = self.R * np.sqrt(self.C * np.maximum(self.spring, 0.0))
        q1 = self.R * np.sqrt(self.C * self.stiffness_bound())
        return q0, q1


# ---------------------------------------------------------------------------------------------
# scales and lowering
# ---------------------------------------------------------------------------------------------
def _ref(a: np.ndarray) -> float:
    """The reference value of a per-unit parameter: its mean (exactly the common value when
    all units agree, so that uniform models map to trim gains of exactly 0)."""
    a = np.asarray(a, dtype=np.float64)
    return float(a[0]) if np.all(a == a[0]) else float(np.mean(a))


def _units(p) -> tuple[float, float, float]:
    """(tau, phi_s, E) for a program: see the module docstring."""
    ph = p.target.physics
    c = p.programmed
    L, R = ph.L_H, ph.resistance_ohm
    J2r, mur = _ref(c.J2), _ref(c.mu)
    if J2r <= 0:
        raise InputError("the LC mapping needs a positive mean J2 (the common inductor realises it); "
                         f"this model has mean J2 = {J2r:g}")
    tau = 2 * mur * J2r * L / R
    if ph.V_s_V is not None:
        phi_s = ph.V_s_V * tau
        E = phi_s ** 2 / (2 * L * J2r)
    else:  # thermal noise: k_B T = kT E
        E = K_B * ph.noise.temperature_K / c.kT_ref
        phi_s = math.sqrt(2 * L * J2r * E)
    return tau, phi_s, E


_UNIT_KEYS = ("tau_s", "phi_s_Wb", "energy_per_model_unit_J", "J2_unit")


def scales(p) -> dict:
    ph = p.target.physics
    c = p.programmed
    if all(p.scales.get(k) for k in _UNIT_KEYS):
        # a re-lowered program (a calibration's correction) keeps the units it was compiled in:
        # the chip's L, R and flux scale do not move because a trim did
        tau, phi_s, E, J2u = (p.scales[k] for k in _UNIT_KEYS)
    else:
        tau, phi_s, E = _units(p)
        J2u = _ref(c.J2)
    L, C, R = ph.L_H, ph.C_F, ph.resistance_ohm
    Q = R * math.sqrt(C / L)
    kT_J = c.kT_ref * E
    mur, J2r = _ref(c.mu), _ref(c.J2)
    return {"C_F": C, "L_H": L, "R_ohm": R, "V_s_V": phi_s / tau, "phi_s_Wb": phi_s, "J2_unit": J2u,
            "I_s_A": phi_s / L, "tau_s": tau, "tau_s_target": ph.tau_s, "tau_ratio": tau / ph.tau_s,
            "mu_per_s": mur / tau,
            "energy_per_model_unit_J": E, "kT_J": kT_J, "T_eff_K": kT_J / K_B,
            "quality_factor": Q, "damping_ratio": 1 / (2 * Q), "f0_Hz": 1 / (2 * math.pi * math.sqrt(L * C)),
            "inertial_time_s": R * C, "relaxation_time_s": tau / (2 * mur * J2r),
            "inertial_over_relaxation": (R * C) / (tau / (2 * mur * J2r)),
            "slow_rate_error": float(slow_rate_error(Q)) if Q < 0.5 else None,  # None: the cell rings
            "mass_model": Q ** 2 / (2 * mur ** 2 * J2r),
            "noise_density_A2_per_Hz": 2 * kT_J / R,
            "noise_power_per_unit_W": kT_J / (R * C),
            "thermal_floor_fraction": ph.noise.temperature_K / (kT_J / K_B)}


def lower(p) -> LCCircuit:
    c = p.programmed
    ph = p.target.physics
    n = c.n_units
    if all(p.scales.get(k) for k in _UNIT_KEYS):
        tau, phi_s, E, J2u = (p.scales[k] for k in _UNIT_KEYS)
    else:
        tau, phi_s, E = _units(p)
        J2u = _ref(c.J2)
    L = np.full(n, ph.L_H)
    C = np.full(n, ph.C_F)
    # (1 + a)/L = 2 E J2/Phi_s^2 with E = Phi_s^2/(2 L J2_unit): a = J2/J2_unit - 1 (exactly 0 if
    # uniform: at compile J2_unit is the programmed J2's mean)
    a = c.J2 / J2u - 1.0
    k3 = 4 * E * c.J4 / phi_s ** 4
    I_b = -E * c.b / phi_s
    K = E * c.J / phi_s ** 2
    R = c.mu * phi_s ** 2 / (tau * E)
    s2 = 2 * c.kT * E / R
    return LCCircuit(C=C, L=L, R=R, a=a, k3=k3, I_b=I_b, K=K, s2=s2, phi_s=float(phi_s), tau=float(tau),
                     E=float(E), kT_model=c.kT.copy(), n_visible=c.n_visible, image_shape=c.image_shape,
                     meta={"source_hash": p.report.get("source_hash", "")})


def circuit_parameters(circ: LCCircuit) -> dict[str, np.ndarray]:
    """Model-unit parameters of an LC circuit in its overdamped limit (module docstring), the one
    place these formulas live: J2 = (1 + a) Phi_s^2/(2 L E), J4 = k3 Phi_s^4/(4E),
    b = -I_b Phi_s/E, K = K Phi_s^2/E (directed, zero diagonal), mu = tau R E/Phi_s^2,
    kT = s^2 R/(2E)."""
    ps2, E = circ.phi_s ** 2, circ.E
    K = circ.K * ps2 / E
    np.fill_diagonal(K, 0.0)
    return {"J2": circ.spring * ps2 / (2 * E), "J4": circ.k3 * ps2 ** 2 / (4 * E), "b": -circ.I_b * circ.phi_s / E,
            "mu": circ.tau * circ.R * E / ps2, "kT": circ.s2 * circ.R / (2 * E), "K": K}


def circuit_to_computer(circ: LCCircuit) -> Computer:
    """The overdamped-limit model an LC circuit implements (:func:`circuit_parameters`).
    Needs K symmetric (a gradient system)."""
    K = circ.K
    if not np.allclose(K, K.T, rtol=1e-12, atol=1e-30):
        raise InputError("the circuit's couplings are not symmetric (K_ij != K_ji): it does not implement "
                         "a Langevin computer with an energy; symmetrise and report the asymmetry")
    m = circuit_parameters(circ)
    J = m["K"]
    return Computer(J=J, b=m["b"], mask=J != 0, n_visible=circ.n_visible, J2=m["J2"], J4=m["J4"], mu=m["mu"],
                    kT=m["kT"], image_shape=circ.image_shape, meta={"realised_from": "lc", **circ.meta})


# ---------------------------------------------------------------------------------------------
# mismatch: what a built chip gets wrong, element by element (the calibration contract)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Mismatch(MismatchRecord):
    """Component mismatch of one physical LC chip (relative errors are fractions).

    c_rel (N,)    capacitor error, C_i -> C_i (1 + c_rel_i): the mass; moves only the inertial
                  time (Q), not the overdamped model.
    l_rel (N,)    inductor error, L_i -> L_i (1 + l_rel_i): the on-site spring, J2 -> J2/(1 + l).
    r_rel (N,)    damping-resistor error, R_i -> R_i (1 + r_rel_i): the friction, mu -> mu (1 + r);
                  the injected noise is a current, so kT = s^2 R/(2E) -> kT (1 + r) too.
    k3_rel (N,)   gain error of the quartic source: J4 -> J4 (1 + k3_rel).
    gain (N, N)   gain error of each coupling CCCS, K_ij -> K_ij (1 + gain_ij) (symmetric on a
                  reciprocal chip: one element per pair).
    offset_V (N,) DC offset voltage in series with the inductor (an amplifier's or a contact's
                  EMF): in equilibrium the node sits at v = V_os and the damping resistor draws
                  V_os/R, i.e. the bias current becomes I_b - V_os/R (b -> b + V_os Phi_s/(R E)).
    noise_rel (N,) error of the injected noise amplitude, s_i -> s_i (1 + noise_rel_i):
                  kT -> kT (1 + n)^2.
    """

    c_rel: Any
    l_rel: Any
    r_rel: Any
    k3_rel: Any
    gain: Any
    offset_V: Any
    noise_rel: Any
    seed: Any = None

    RELATIVE = ("c_rel", "l_rel", "r_rel", "k3_rel", "noise_rel")
    PER_UNIT = ("offset_V",)

    @classmethod
    def draw(cls, target, n_units: int, seed: int, *, reciprocal: bool = True,
             noise_common: float = 0.03, noise_unit: float = 0.01, scale: float = 1.0) -> "Mismatch":
        """Seeded draws from ``target.components``: c_rel, l_rel, r_rel uniform within the
        capacitor, inductor and resistor tolerances (catalogue bounds); k3_rel and gain
        N(0, gain_mismatch); offset_V N(0, offset_V); noise_rel a common N(0, noise_common) plus
        a per-unit N(0, noise_unit). ``scale`` multiplies every error."""
        comp = target.components
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6C63]))
        n, s = int(n_units), float(scale)
        c_rel = s * rng.uniform(-1, 1, n) * comp.cap_tolerance
        l_rel = s * rng.uniform(-1, 1, n) * comp.inductor_tolerance
        r_rel = s * rng.uniform(-1, 1, n) * comp.resistor_tolerance
        k3_rel, gain, offset, noise = active_element_errors(rng, n, s, comp, reciprocal, noise_common, noise_unit)
        return cls(c_rel, l_rel, r_rel, k3_rel, gain, offset, noise, seed=int(seed))

    def apply_to_circuit(self, circ: LCCircuit) -> LCCircuit:
        """The mismatched circuit (element values as built)."""
        self._check_units(circ)
        R = circ.R * (1.0 + self.r_rel)
        return dataclasses.replace(
            circ, C=circ.C * (1.0 + self.c_rel), L=circ.L * (1.0 + self.l_rel), R=R,
            k3=circ.k3 * (1.0 + self.k3_rel), I_b=circ.I_b - self.offset_V / R, K=circ.K * (1.0 + self.gain),
            s2=circ.s2 * (1.0 + self.noise_rel) ** 2, meta={**circ.meta, "mismatched": True})


def mismatched_parameters(bad: LCCircuit, nominal: LCCircuit) -> dict[str, np.ndarray]:
    """Model-unit parameters (J2, J4, b, mu, kT, directed K) the circuit ``bad`` implements in
    its overdamped limit, in the units of ``nominal``'s program (the mismatch moves elements,
    not the flux, time and energy scales, which ``bad`` carries unchanged)."""
    if (bad.phi_s, bad.tau, bad.E) != (nominal.phi_s, nominal.tau, nominal.E):
        raise InputError("the mismatched circuit is not in its nominal program's units (phi_s, tau, E differ)")
    return circuit_parameters(bad)


def mismatched_model(c: Computer, errors: Mismatch, target) -> Computer:
    """The model a chip with ``errors`` implements when programmed with ``c``, in model units
    without building its circuit: J2/(1 + l), J4 (1 + k3), J_ij (1 + gain_ij) (symmetric part),
    mu (1 + r), kT (1 + n)^2 (1 + r), and b + V_os/(V_s mu (1 + r)) (the series offset's V_os/R
    in model units: Phi_s/(R E) = 1/(V_s mu) with V_s = Phi_s/tau the target's; none without
    one). The same model as :func:`mismatched_parameters` of the mismatched circuit."""
    V_s = getattr(target.physics, "V_s_V", None)
    r = 1.0 + errors.r_rel
    db = errors.offset_V / (V_s * c.mu * r) if V_s else 0.0
    gain = 0.5 * (errors.gain + errors.gain.T)
    return c.replace(J=c.J * (1.0 + gain), b=c.b + db, J2=c.J2 / (1.0 + errors.l_rel), J4=c.J4 * (1.0 + errors.k3_rel),
                     mu=c.mu * r, kT=c.kT * (1.0 + errors.noise_rel) ** 2 * r)


def copies_circuit(circ: LCCircuit, I_extra: np.ndarray) -> LCCircuit:
    """``len(I_extra)`` uncoupled copies of ``circ`` in one circuit; copy r gets the extra bias
    currents I_extra[r] (A, into each node). Node r*N + i is unit i of copy r."""
    k, n = I_extra.shape
    if n != circ.n_units:
        raise InputError(f"I_extra has {n} units, the circuit {circ.n_units}")
    tile = lambda a: np.tile(np.asarray(a, dtype=np.float64), k)  # noqa: E731
    return dataclasses.replace(
        circ, C=tile(circ.C), L=tile(circ.L), R=tile(circ.R), a=tile(circ.a), k3=tile(circ.k3),
        I_b=(np.asarray(circ.I_b)[None, :] + I_extra).reshape(-1), K=np.kron(np.eye(k), circ.K),
        s2=tile(circ.s2), kT_model=tile(circ.kT_model), n_visible=0, image_shape=None)


def imposed_current(nominal: LCCircuit, h: np.ndarray) -> np.ndarray:
    """The current (A, into each node) that imposes the model bias h (runs, N): I_h = -E h/Phi_s,
    as the bias b is carried (an external source: it acts with the unit's true friction)."""
    return -nominal.E * np.asarray(h, dtype=np.float64) / nominal.phi_s


def to_computer(circ: LCCircuit, p=None) -> Computer:
    c = circuit_to_computer(circ)
    c = adopt_program(c, p)
    return c


def underdamped_model(circ: LCCircuit, p=None) -> tuple[Computer, np.ndarray]:
    """(overdamped-limit Computer, model-unit masses): the inertial dynamics of the chip are
    ``simulate_underdamped(computer, mass, ...)`` with the default friction 1/mu."""
    return to_computer(circ, p), circ.mass


def check(p) -> list[dict]:
    out = []
    circ = p.artefact
    if circ is None:
        return out
    q0, q1 = circ.quality_factors()
    qmax = float(max(np.max(q0), np.max(q1)))
    if qmax >= Q_LIMIT:
        if qmax >= 0.5:
            f0 = 1 / (2 * math.pi * math.sqrt(float(np.min(circ.L * circ.C))))
            what = (f"the cells are underdamped (Q >= 1/2: they ring near {f0:.4g} Hz) - the overdamped "
                    "model then describes equilibrium statistics only, not the dynamics")
        else:
            what = f"the overdamped relaxation rates are off by ~{100 * float(slow_rate_error(qmax)):.2g} %"
        # Q_bound = R sqrt(C k_max): R for Q_bound = Q_LIMIT (tau = 2 mu J2 L/R shortens with it)
        R_ok = Q_LIMIT / float(np.max(np.sqrt(circ.C * circ.stiffness_bound())))
        out.append({"check": "overdamping",
                    "message": f"quality factor Q = R sqrt(C/L) = {float(np.max(q0)):.3g} at x = 0 "
                               f"(up to {float(np.max(q1)):.3g} for |x| <= 1 with the quartic and couplings) "
                               f"is not << 1/2: {what}; lower R (R <= {R_ok:.3g} ohm keeps Q < {Q_LIMIT:g} for |x| <= 1; "
                               "tau = 2 mu J2 L/R shrinks with it) or compare against "
                               "thermohw.underdamped.simulate_underdamped",
                    "Q": float(np.max(q0)), "Q_bound": float(np.max(q1))})
    ph = p.target.physics
    ratio = circ.tau / ph.tau_s
    if abs(ratio - 1) > TAU_RTOL:
        mu_r = float(np.mean(circ.tau * circ.R * circ.E / circ.phi_s ** 2))
        J2_r = float(np.mean(circ.spring * circ.phi_s ** 2 / (2 * circ.E)))
        R_need = 2 * mu_r * J2_r * ph.L_H / ph.tau_s
        out.append({"check": "time_unit",
                    "message": f"target tau_s = {ph.tau_s:.4g} s, but its L and R make the model time unit "
                               f"2 mu J2 L/R = {circ.tau:.4g} s ({ratio:.3g}x); the realised model uses "
                               f"{circ.tau:.4g} s. For tau_s = {ph.tau_s:.4g} s use R = {R_need:.4g} ohm "
                               f"(Q = {R_need * math.sqrt(ph.C_F / ph.L_H):.3g}) or L = {ph.L_H / ratio:.4g} H",
                    "tau_s": circ.tau, "tau_s_target": ph.tau_s})
    nd = ph.noise.density_A2_per_Hz
    if nd is not None and np.max(circ.s2) > nd:
        out.append({"check": "noise", "message": f"needs noise density {np.max(circ.s2):.3g} A^2/Hz, "
                    f"the generator delivers at most {nd:.3g}"})
    return out


# ---------------------------------------------------------------------------------------------
# netlist
# ---------------------------------------------------------------------------------------------
def fastest_rate(circ: LCCircuit) -> float:
    """Largest local rate the positions follow, 1/s, with the stiffness bound k for |x| <= 1.

    If any cell can ring (Q = R sqrt(C k) >= 1/2): the largest of velocity relaxation 1/(RC),
    oscillation sqrt(k/C) and k R. If every cell is overdamped (Q < 1/2): the slow (position)
    rate 2 k R / (1 + sqrt(1 - 4 Q^2)) = k R (1 + Q^2 + ...). The fast rate 1/(RC) of such a
    cell is the velocity's: it settles to R (noise - force) within RC, so noise held for
    NT >> RC still moves the flux by exactly R I NT per interval, the increment the overdamped
    model's Euler step takes, and the held-noise error of the positions is O(NT k R) as for
    RC (docs/design.md#lc). Resolving RC instead would cost 1/Q^2 more intervals (10^3 at
    Q = 0.03) for velocity statistics that the model does not have."""
    k = circ.stiffness_bound()
    q = circ.R * np.sqrt(circ.C * np.maximum(k, 0.0))
    if np.all(q < 0.5):
        return float(np.max(2 * k * circ.R / (1 + np.sqrt(1 - 4 * q * q))))
    return float(np.max(np.maximum.reduce([1 / (circ.R * circ.C), np.sqrt(k / circ.C), k * circ.R])))


def noise_interval(circ: LCCircuit, fraction: float = 0.05) -> float:
    """Noise sample interval NT = fraction / fastest local rate (:func:`fastest_rate`).
    Sample-and-hold noise loses variance only at frequencies ~1/NT (a first-order unit keeps
    tanh(x/2)/(x/2) of it, x = NT rate: 0.9998 at 0.05), and the trapezoidal step NT keeps
    oscillation errors ~(w NT)^2/12."""
    return float(fraction / fastest_rate(circ))


def held_noise_factors(mass: float, gamma: float, stiffness: float, h: float) -> tuple[float, float]:
    """Variance factors (x, dx/ds) of a lone linear cell driven by sample-and-hold noise of
    interval h (model time units, white level kept at 2 gamma kT), *sampled at the hold
    instants*, relative to white noise: exact, from the discrete Lyapunov equation of the cell
    over one hold interval. Both are 1 - O(h^2) (lc-spu at h = 0.1: 0.9967, 0.9933). Averaged
    over all times instead, the velocity variance drops by O(h gamma/m) (0.933 there): compare
    SPICE statistics at the hold instants t = k NT."""
    from scipy.linalg import expm, solve_discrete_lyapunov

    A = np.array([[0.0, 1.0], [-stiffness / mass, -gamma / mass]])
    B = np.array([0.0, 1.0 / mass])
    Ph = expm(A * h)
    g = np.linalg.solve(A, (Ph - np.eye(2)) @ B)
    kT = 1.0
    P = solve_discrete_lyapunov(Ph, (2 * gamma * kT / h) * np.outer(g, g))
    return float(P[0, 0] / (kT / stiffness)), float(P[1, 1] / (kT / mass))


def probe_names(circ: LCCircuit) -> dict:
    """Raw-file vector names per unit: ``x`` (inductor current, position) and ``v`` (node
    voltage, velocity)."""
    n = circ.n_units
    return {"x": [f"i(vl{i})" for i in range(n)], "v": [f"v(u{i})" for i in range(n)]}


def states(raw, circ: LCCircuit) -> dict:
    """Model-unit states from an ngspice run of :func:`netlist`: ``t`` (s), ``s`` (model time),
    ``x`` (T, N) = L I_L / Phi_s and ``u`` (T, N) = dx/ds = v tau / Phi_s."""
    t = np.asarray(raw["time"])
    x = np.stack([circ.L[i] * _branch(raw, i) / circ.phi_s for i in range(circ.n_units)], axis=1)
    u = np.stack([raw[f"v(u{i})"] * circ.tau / circ.phi_s for i in range(circ.n_units)], axis=1)
    return {"t": t, "s": t / circ.tau, "x": x, "u": u}


def _branch(raw, i: int) -> np.ndarray:
    for name in (f"i(vl{i})", f"vl{i}#branch"):
        if name in raw.data:
            return raw.data[name]
    raise KeyError(f"raw file has no current of VL{i}; it has {list(raw.names)[:8]}...")


def netlist(circ: LCCircuit, *, t_stop: float, nt: float | None = None, seed: int = 1,
            noise: str = "trrandom", x0: np.ndarray | None = None, v0: np.ndarray | None = None,
            title: str = "thermohw lc chip", meta: dict | None = None, options: dict | None = None,
            notes: list[str] | None = None, noise_include: str | None = None,
            pwl: np.ndarray | None = None) -> str:
    """SPICE netlist text (ngspice). ``noise``: ``trrandom`` (Gaussian sample-and-hold, follows
    ``.options seed``), ``trnoise`` (ngspice 39 ignores its seed), or ``none``. ``x0`` / ``v0``:
    initial positions / model velocities (element ICs with UIC; the one not given is 0);
    without either the run starts from the DC operating point (v = 0, a stationary point
    of V). ``options``: extra ``.options`` (e.g. ``{"reltol": 1e-6}``). ``notes``: extra header
    comment lines. ``noise="pwl"`` with ``noise_include``: the held PWL sources IN<i> are in
    that file (written by :mod:`thermohw.backends.pwl`), pulled in with ``.include``; with
    ``pwl`` (K, N) standard normals instead: the same sources inline, each held NT."""
    n = circ.n_units
    nt = noise_interval(circ) if nt is None else float(nt)
    pwl = _checked_netlist_inputs(n, t_stop, nt, noise, noise_include, pwl, x0, v0)
    uic = x0 is not None or v0 is not None
    I0 = circ.phi_s * np.asarray(x0, float) / circ.L if x0 is not None else np.zeros(n)
    V0 = circ.V_s * np.asarray(v0, float) if v0 is not None else np.zeros(n)
    lines = [f"* {sanitize_comment(title)}",
             "* generated by thermohw (LC s-units: parallel RLC cells, thermohw/backends/lc.py); units SI",
             netlist_provenance(),
             f"* source model sha256/16: {sanitize_comment(circ.meta.get('source_hash', ''))}",
             f"* scales: Phi_s = {circ.phi_s:.6g} Wb per unit x; tau = {circ.tau:.6g} s per model time unit; "
             f"E = {circ.E:.6g} J per model energy unit",
             "* unit i: position x_i = L_i i(VL<i>) / Phi_s (inductor flux), velocity dx/ds = v(u<i>) tau / Phi_s",
             f"* noise: {noise}, sample interval NT = {nt:.6g} s, seed {int(seed)}",
             "* run: ngspice -b -r out.raw THIS_FILE"]
    lines += comment_lines(meta, notes)
    lines.append("")
    for i in range(n):
        lines += _cell_lines(circ, i, (V0[i], I0[i]) if uic else None, noise, nt, None if noise_include else pwl)
    if noise == "pwl" and noise_include:
        lines.append(f".include {noise_include}")
    lines += _coupling_lines(circ)
    lines.append("")
    opts = {"seed": int(seed)} if noise == "trrandom" else {}
    for k, v in (options or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"options[{k!r}] = {v!r}: only finite numbers are accepted")
        opts[sanitize_name(k)] = v
    if opts:
        lines.append(".options " + " ".join(f"{k}={v if isinstance(v, int) else eng(v)}" for k, v in opts.items()))
    lines.append(f".tran {eng(nt)} {eng(t_stop)} 0 {eng(nt)}{' uic' if uic else ''}")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _checked_netlist_inputs(n: int, t_stop: float, nt: float, noise: str, noise_include: str | None,
                            pwl, x0, v0) -> np.ndarray | None:
    """InputError for inputs :func:`netlist` cannot write; the pwl normals as an array."""
    if not (t_stop > 0 and nt > 0):
        raise InputError("t_stop and the noise interval must be > 0")
    if noise not in ("trrandom", "trnoise", "none") and not (noise == "pwl" and (noise_include or pwl is not None)):
        raise InputError(f"noise = {noise!r}; use 'trrandom', 'trnoise', 'none' or 'pwl' with noise_include "
                         "or pwl samples")
    if noise == "pwl" and not noise_include:
        pwl = np.asarray(pwl, dtype=np.float64)
        if pwl.ndim != 2 or pwl.shape[1] != n or not np.all(np.isfinite(pwl)):
            raise InputError(f"pwl noise must be (K, {n}) finite standard normals")
    if noise_include is not None and not re.fullmatch(r"[\w.-]+", noise_include):
        raise InputError(f"noise_include = {noise_include!r}: use a plain file name")
    for name, arr in (("x0", x0), ("v0", v0)):
        if arr is not None and np.shape(arr) != (n,):
            raise InputError(f"{name} must have shape ({n},)")
    return pwl


def _cell_lines(circ: LCCircuit, i: int, ic: tuple[float, float] | None, noise: str, nt: float,
                pwl: np.ndarray | None) -> list[str]:
    """Cell i: C (mass), R (friction), L through its sense source, the trim and quartic
    sources, the bias and the noise; ``ic``: (node volts, inductor amps) at t = 0 (UIC)."""
    ic_c = f" IC={eng(ic[0])}" if ic is not None else ""
    ic_l = f" IC={eng(ic[1])}" if ic is not None else ""
    lines = [f"* unit {i}",
             f"C{i} u{i} 0 {eng(circ.C[i])}{ic_c}",
             f"R{i} u{i} 0 {eng(circ.R[i])}",
             f"L{i} u{i} m{i} {eng(circ.L[i])}{ic_l}",
             f"VL{i} m{i} 0 DC 0"]
    if circ.a[i] != 0:
        lines.append(f"FT{i} u{i} 0 VL{i} {eng(circ.a[i])}")
    if circ.k3[i] != 0:
        c3 = eng(circ.k3[i] * circ.L[i] ** 3)
        lines.append(f"BQ{i} u{i} 0 I={c3}*i(VL{i})*i(VL{i})*i(VL{i})")
    if circ.I_b[i] != 0:
        lines.append(f"IB{i} 0 u{i} DC {eng(circ.I_b[i])}")
    if noise in ("trrandom", "trnoise"):
        na = math.sqrt(circ.s2[i] / nt)  # white level s^2 = NA^2 NT
        src = (f"TRRANDOM(2 {eng(nt)} 0 {eng(na)} 0)" if noise == "trrandom"
               else f"TRNOISE({eng(na)} {eng(nt)} 0 0)")
        lines.append(f"IN{i} 0 u{i} DC 0 {src}")
    elif noise == "pwl" and pwl is not None:
        lines.append(f"IN{i} 0 u{i} PWL(" + held_pwl(math.sqrt(circ.s2[i] / nt) * pwl[:, i], nt) + ")")
    return lines


def _coupling_lines(circ: LCCircuit) -> list[str]:
    n = circ.n_units
    ii, jj = np.nonzero(circ.K * (1 - np.eye(n)))
    lines = ["", "* couplings: current K_ij Phi_j = (K_ij L_j) i(VL<j>) drawn out of node i"] if len(ii) else []
    for i, j in zip(ii.tolist(), jj.tolist()):
        lines.append(f"FC{i}_{j} u{i} 0 VL{j} {eng(circ.K[i, j] * circ.L[j])}")
    return lines


# ---------------------------------------------------------------------------------------------
# the co-simulation contract (docs/design.md#backend-contract)
# ---------------------------------------------------------------------------------------------
def time_unit(circ: LCCircuit) -> float:
    """Seconds per model time unit (2 mu J2 L / R, fixed by the components)."""
    return float(circ.tau)


def spice_start(p, circ: LCCircuit, x0: np.ndarray, seed) -> dict:
    """{"v0": (runs, N)} Maxwell velocities dx/ds (variance kT_i / m_i) at the circuit's own
    noise level kT = s^2 R / (2E): with the coupling-free equilibrium positions, the cells'
    stationary state (velocities and positions are independent in equilibrium, for any Q)."""
    kT = circ.s2 * circ.R / (2 * circ.E)
    return {"v0": thermal_velocities(circ.mass, kT, np.shape(x0)[0], seed=seed)}


def spice_netlist(circ: LCCircuit, *, t_stop: float, nt: float, seed: int, noise: str, x0: np.ndarray,
                  pwl: np.ndarray | None, title: str, **start) -> str:
    """One generation run (:func:`netlist`) from positions ``x0`` and ``start["v0"]`` (model
    units); "pwl": the standard normals ``pwl`` (K, N) held NT each, inline."""
    v0 = start.pop("v0", None)
    if start:
        raise InputError(f"an LC run starts from positions and v0 only; got {', '.join(sorted(start))}")
    return netlist(circ, t_stop=t_stop, nt=nt, seed=seed, noise=noise, x0=x0, v0=v0, title=title,
                   pwl=pwl if noise == "pwl" else None)


def spice_readout(raw, circ: LCCircuit, grid_s: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x = L i(VL<i>) / Phi_s on ``grid_s`` (len(grid_s), N); ``x0`` supplies t = 0 (ngspice 39
    does not store t = 0 of a UIC run)."""
    st = states(raw, circ)
    t, x = st["t"], st["x"]
    grid_s = np.asarray(grid_s, dtype=np.float64)
    if t[-1] < grid_s[-1] * (1 - 1e-9):
        raise NgspiceError(f"ngspice stopped at t = {t[-1]:.6g} s before the end {grid_s[-1]:.6g} s "
                           "without an error message")
    if t[0] > 0:
        t = np.concatenate([[0.0], t])
        x = np.concatenate([np.asarray(x0, dtype=np.float64)[None, :], x])
    return np.stack([np.interp(grid_s, t, x[:, i]) for i in range(circ.n_units)], axis=1)


def potential_J(circ: LCCircuit, phi: np.ndarray) -> np.ndarray:
    """U(Phi) in joules (module docstring) for fluxes phi (..., N) in Wb: the inductors with
    their trims, the quartic elements, the biases and the couplings (symmetric part, each pair
    once). These elements store or return energy as functions of the flux alone."""
    K = 0.5 * (circ.K + circ.K.T)
    K = K - np.diag(np.diag(K))
    return (phi ** 2 @ (circ.spring / 2) + phi ** 4 @ (circ.k3 / 4) - phi @ circ.I_b
            + 0.5 * np.einsum("...i,ij,...j->...", phi, K, phi))


def spice_energy(raw, circ: LCCircuit) -> dict[str, float]:
    """Energy balance of a run in joules on ngspice's own time points (trapezoid):
    dissipated_J (the damping resistors, integral of v^2/R >= 0), capacitor_delta_J (kinetic,
    C v^2/2) and potential_delta_J (U(Phi)), their sum stored_delta_J, and noise_delivered_J
    by the first law (KCL times v: v I_noise = d(C v^2/2)/dt + v^2/R + dU/dt). The first and
    last points are ngspice's (its first point is one step after t = 0)."""
    t = np.asarray(raw["time"])
    v = np.stack([raw[f"v(u{i})"] for i in range(circ.n_units)], axis=1)            # volts
    phi = np.stack([circ.L[i] * _branch(raw, i) for i in range(circ.n_units)], axis=1)  # Wb
    e = {"dissipated_J": float(np.trapezoid((v * v) @ (1.0 / circ.R), t))}
    e["capacitor_delta_J"] = float(0.5 * np.sum(circ.C * (v[-1] ** 2 - v[0] ** 2)))
    pot = potential_J(circ, phi[[0, -1]])
    e["potential_delta_J"] = float(pot[1] - pot[0])
    e["stored_delta_J"] = e["capacitor_delta_J"] + e["potential_delta_J"]
    e["noise_delivered_J"] = e["dissipated_J"] + e["stored_delta_J"]
    return e


def spice_pwl_current(circ: LCCircuit, nt: float, z: np.ndarray) -> np.ndarray:
    """The currents (K, N), amperes into node u<i>, that "pwl" injects for standard normals z:
    sqrt(s^2 / NT) z, the white level s^2 held NT."""
    return np.sqrt(circ.s2 / float(nt)) * np.asarray(z, dtype=np.float64)


def generation_grid(p, nt_fraction: float = 0.05) -> tuple[float, float, int]:
    """(t_f, NT, K) of a program's generation-protocol netlist: K noise samples of NT seconds
    fill t_f model time units exactly, NT within ``nt_fraction`` / the fastest local rate."""
    circ = p.artefact
    t_f = p.options.generation_time(p.source)
    k = max(1, math.ceil(t_f * circ.tau / noise_interval(circ, nt_fraction) - 1e-9))  # NT <= the bound
    return t_f, t_f * circ.tau / k, k


def generation_netlist(p, nt_fraction: float = 0.05, dt: float = 1e-3, noise: str = "trrandom",
                       noise_include: str | None = None) -> str:
    """The paper's generation protocol for a compiled LC program: positions from the realised
    model's coupling-free equilibrium (the stationary distribution for any Q), velocities
    Maxwell-distributed at each cell's mass and kT, both seeded by ``netlist_seed`` and written
    as element initial conditions; then the trained dynamics for t_f with seeded TRRANDOM noise."""
    circ = p.artefact
    t_f, x0 = generation_start(p, dt)
    seed = int(p.options.netlist_seed)
    v0 = thermal_velocities(circ.mass, p.realised.kT, 1, seed=np.random.SeedSequence([seed, 2]))[0]
    _, nt, _ = generation_grid(p, nt_fraction)
    return netlist(circ, t_stop=t_f * circ.tau, nt=nt, seed=seed, x0=x0, v0=v0, noise=noise,
                   noise_include=noise_include, title=f"thermohw lc chip: target {p.target.name}",
                   meta={"model": p.source.meta.get("digits", ""), "target": p.target.name},
                   notes=generation_notes(p, t_f, circ.tau, "x_i = L_i i(VL<i>) / Phi_s"))


def write(p, folder) -> list[Path]:
    """chip.cir (the generation protocol, or with ``netlist="free"`` a free run of 5 model time
    units from x = 0, at rest), units.csv, couplings.csv; with ``noise="pwl"`` also noise.inc and
    noise.npz (:mod:`thermohw.backends.pwl`; noise.npz keeps the positions, not the velocities)."""

    folder = Path(folder)
    circ = p.artefact
    noise, seed = p.options.noise, int(p.options.netlist_seed)
    out, inc, nt, _ = pwl_files.for_program(p, folder, prefix="IN", generation_grid=generation_grid,
                                            noise_interval=noise_interval, free_run_tau=5.0)
    if p.options.netlist == "generate":
        txt = generation_netlist(p, noise=noise, noise_include=inc)
    else:
        txt = netlist(circ, t_stop=5 * circ.tau, nt=nt, seed=seed, x0=np.zeros(circ.n_units), noise=noise,
                      noise_include=inc, title=f"thermohw lc chip: target {p.target.name}",
                      meta={"model": p.source.meta.get("digits", ""), "target": p.target.name})
    out.insert(0, atomic_write(folder / "chip.cir", lambda fh: fh.write(txt), mode="w"))
    rows = ["unit,C_F,L_H,R_ohm,trim_gain,k3_A_per_Wb3,I_b_A,noise_s2_A2_per_Hz"]
    for i in range(circ.n_units):
        rows.append(f"{i},{circ.C[i]:.6e},{circ.L[i]:.6e},{circ.R[i]:.6e},{circ.a[i]:.6e},{circ.k3[i]:.6e},"
                    f"{circ.I_b[i]:.6e},{circ.s2[i]:.6e}")
    out.append(atomic_write(folder / "units.csv", lambda fh: fh.write("\n".join(rows) + "\n"), mode="w"))
    ii, jj = np.nonzero(np.triu(circ.K, 1))
    rows = ["i,j,K_A_per_Wb,cccs_gain_ij,cccs_gain_ji"] + [
        f"{i},{j},{circ.K[i, j]:.6e},{circ.K[i, j] * circ.L[j]:.6e},{circ.K[j, i] * circ.L[i]:.6e}"
        for i, j in zip(ii.tolist(), jj.tolist())]
    out.append(atomic_write(folder / "couplings.csv", lambda fh: fh.write("\n".join(rows) + "\n"), mode="w"))
    return out


def describe(circ: LCCircuit) -> str:
    q0, _ = circ.quality_factors()
    return (f"{circ.n_units} LC cells: C = {eng_unit(circ.C[0], 'F')}, L = {eng_unit(circ.L[0], 'H')}, "
            f"R = {eng_unit(circ.R[0], 'Ohm')}, Q = {float(np.max(q0)):.3g}, tau = {eng_unit(circ.tau, 's')}, "
            f"noise s = {eng_unit(math.sqrt(circ.s2[0]), 'A/rtHz')}")
