"""RC s-unit backend (docs/design.md#rc): one node per unit, node voltage v_i = V_s x_i on
a grounded capacitor C. With mu the physical mobility (1/s) = model mu / tau:

    ground conductance   g   = 2 mu C J2            (E-series resistor + trim transconductor)
    cubic current        k3  = 4 mu C J4 / V_s^2    (i = k3 v^3, behavioural source)
    bias current         I_b = -mu C V_s b          (into the node)
    coupling             G_ij = mu C J_ij           (VCCS drawing G_ij v_j out of node i)
    noise current        s^2 = 2 mu kT C^2 V_s^2    (two-sided white level, A^2/Hz)

so that C dv/dt = -mu C V_s dV/dx + noise. One model energy unit is E = C V_s^2/(2 J2) J,
k_B T_eff = kT E, and heat converts as Q_J = Q E. Real circuits also burn a housekeeping
power ~ mu C V_s^2 per unit in their resistors and transconductors, far above E |Q|.
"""
from __future__ import annotations

import math
import re
import dataclasses
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
from ..spice.netlist import comment_lines, eng, eng_unit, sanitize_comment
from ..spice.engines import node_voltages
from ..target import E_SERIES, snap_to_series
from ..energy import K_B
from .pwl import held_pwl as _held_pwl


@dataclass(frozen=True, eq=False)
class RCCircuit:
    """Element values of an RC s-unit chip, SI units, logical unit order."""

    C: np.ndarray          # (N,) F
    R: np.ndarray          # (N,) ohm, ground resistor (E-series snapped), inf if none
    g_trim: np.ndarray     # (N,) S, trim transconductance to ground (>= 0 when a resistor is used)
    k3: np.ndarray         # (N,) A/V^3
    I_b: np.ndarray        # (N,) A, into the node
    G: np.ndarray          # (N, N) S, G[i, j]: current G v_j drawn out of node i
    s2: np.ndarray         # (N,) A^2/Hz two-sided white noise level
    V_s: float             # V per unit of x
    mu: np.ndarray         # (N,) 1/s, the physical mobility used to derive the elements
    tau: float            # s per model time unit
    kT_model: np.ndarray   # (N,) model kT (for the realised model)
    n_visible: int
    image_shape: tuple | None
    meta: dict

    @property
    def n_units(self) -> int:
        return self.C.shape[0]

    @property
    def gauge(self) -> float:
        """a = mu_i C_i (F/s), common to every unit of a compiled circuit (``lower``): the scale
        that turns element values into model units (J = G / a, ...). A mismatched copy of the
        circuit keeps the *nominal* circuit's gauge - pass it explicitly."""
        return float(self.mu[0]) * float(self.C[0])

    @property
    def g(self) -> np.ndarray:
        """Total ground conductance per node, S."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.R + self.g_trim


def _v_s(p) -> float:
    ph = p.target.physics
    if ph.V_s_V is not None:
        return float(ph.V_s_V)
    # thermal noise: k_B T = kT * C V_s^2 / (2 J2) fixes V_s
    c = p.programmed
    return math.sqrt(2 * float(np.mean(c.J2)) * K_B * ph.noise.temperature_K / (c.kT_ref * ph.C_F))


def scales(p) -> dict:
    ph = p.target.physics
    c = p.programmed
    V_s = _v_s(p)
    E = ph.C_F * V_s ** 2 / (2 * float(np.mean(c.J2)))
    mu = float(np.mean(c.mu)) / ph.tau_s
    return {"C_F": ph.C_F, "V_s_V": V_s, "tau_s": ph.tau_s, "mu_per_s": mu,
            "energy_per_model_unit_J": E, "kT_J": c.kT_ref * E, "T_eff_K": c.kT_ref * E / K_B,
            "housekeeping_power_per_unit_W": mu * ph.C_F * V_s ** 2,
            "noise_density_A2_per_Hz": 2 * mu * c.kT_ref * ph.C_F ** 2 * V_s ** 2}


def lower(p) -> RCCircuit:
    c = p.programmed
    ph = p.target.physics
    n = c.n_units
    V_s = p.scales.get("V_s_V") or _v_s(p)
    mu = c.mu / ph.tau_s
    # a per-unit mobility is a per-unit capacitance: mu_i C_i = a for every unit, so all
    # element values share one scale a and the couplings stay symmetric (G = a J)
    a = float(np.mean(mu)) * ph.C_F
    C = a / mu
    g = 2 * mu * C * c.J2
    series = p.target.components.resistor_series if p.target.components else None
    if series is None:
        R, g_trim = 1.0 / g, np.zeros(n)
    elif p.target.diagonal is not None:
        # resistor one series step weaker than needed, trim transconductor makes up the rest
        # (the trim code already set J2 exactly: the realised g is the trimmed one)
        R = snap_to_series(1.0 / g, series)
        R = np.where(1.0 / R > g, _next_up(R, series), R)
        g_trim = g - 1.0 / R
    else:
        R, g_trim = snap_to_series(1.0 / g, series), np.zeros(n)
    k3 = 4 * mu * C * c.J4 / V_s ** 2
    I_b = -mu * C * V_s * c.b
    G = (mu * C)[:, None] * c.J
    s2 = 2 * mu * c.kT * C ** 2 * V_s ** 2
    return RCCircuit(C=C, R=np.asarray(R, float), g_trim=g_trim, k3=k3, I_b=I_b, G=G, s2=s2, V_s=float(V_s),
                     mu=mu, tau=ph.tau_s, kT_model=c.kT.copy(), n_visible=c.n_visible,
                     image_shape=c.image_shape, meta={"source_hash": p.report.get("source_hash", "")})


def _next_up(R: np.ndarray, series: str) -> np.ndarray:
    """The next larger series value above each R (R already on the series)."""
    vals = np.asarray(E_SERIES[series])
    dec = np.floor(np.log10(R) + 1e-9)
    m = R / 10 ** dec
    k = np.searchsorted(vals, m * (1 + 1e-9), side="right")
    nxt = np.where(k < len(vals), vals[np.minimum(k, len(vals) - 1)] * 10 ** dec, vals[0] * 10 ** (dec + 1))
    return nxt


def circuit_parameters(circ: RCCircuit, gauge: float | None = None) -> dict[str, np.ndarray]:
    """Model-unit parameters of a circuit in the gauge a = mu0 C0 (default ``circ.gauge``):
    mu_i = a tau / C_i, J2 = g/(2a), J4 = k3 V_s^2/(4a), b = -I_b/(V_s a), K = G/a (directed,
    zero diagonal) and kT_i = s_i^2 / (2 a C_i V_s^2). The one place these formulas live."""
    a = circ.gauge if gauge is None else float(gauge)
    V_s = float(circ.V_s)
    C = np.asarray(circ.C, dtype=np.float64)
    K = np.array(circ.G, dtype=np.float64) / a
    np.fill_diagonal(K, 0.0)
    return {"J2": circ.g / (2 * a), "J4": circ.k3 * V_s ** 2 / (4 * a), "b": -circ.I_b / (V_s * a),
            "mu": a * circ.tau / C, "kT": circ.s2 / (2 * a * C * V_s ** 2), "K": K}


def circuit_to_computer(circ: RCCircuit, *, gauge: float | None = None) -> Computer:
    """The ideal model an RC circuit implements. x_i = v_i / V_s and the model's energy unit
    is set by the gauge a = mu0 C0 (reference mobility 1/s x capacitance F; default
    ``circ.gauge``, the value every unit of a compiled circuit shares):

        dx_i/dt = -(1/(C_i V_s)) [g_i V_s x_i + k3_i V_s^3 x_i^3 - I_b,i + sum_j G_ij V_s x_j] + noise
    is the Langevin equation with mu_i = mu0 C0 / C_i (model units: times tau), J2 = g/(2 mu0 C0),
    J4 = k3 V_s^2/(4 mu0 C0), b = -I_b/(V_s mu0 C0), J_ij = G_ij/(mu0 C0) and
    kT_i = s_i^2 / (2 mu_i C_i^2 V_s^2). Needs G symmetric (a mismatched chip is not a
    gradient system: symmetrise first and report the asymmetry)."""
    G = circ.G
    if not np.allclose(G, G.T, rtol=1e-12, atol=1e-30):
        raise InputError("the circuit's couplings are not symmetric (G_ij != G_ji): it does not implement "
                         "a Langevin computer with an energy; symmetrise and report the asymmetry")
    m = circuit_parameters(circ, gauge)
    J = m["K"]
    return Computer(J=J, b=m["b"], mask=J != 0, n_visible=circ.n_visible, J2=m["J2"], J4=m["J4"], mu=m["mu"],
                    kT=m["kT"], image_shape=circ.image_shape, meta={"realised_from": "rc", **circ.meta})


# ---------------------------------------------------------------------------------------------
# mismatch: what a built chip gets wrong, element by element (the calibration contract)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Mismatch(MismatchRecord):
    """Component mismatch of one physical RC chip (relative errors are fractions).

    c_rel (N,)    capacitor error, C_i -> C (1 + c_rel_i): changes mu_i and kT_i.
    g_rel (N,)    ground-conductance error (resistor tolerance), g_i -> g_i (1 + g_rel_i): J2.
    k3_rel (N,)   gain error of the cubic element, k3_i -> k3_i (1 + k3_rel_i): J4.
    gain (N, N)   gain error of each coupling transconductor, G_ij -> G_ij (1 + gain_ij). A
                  reciprocal chip (one element per pair) has gain symmetric.
    offset_V (N,) input-referred offset of unit i's on-site transconductance, volts: an extra
                  current g_i V_os drawn out of the node, i.e. b_i -> b_i + 2 J2_i V_os / V_s.
    noise_rel (N,) error of the injected noise amplitude, s_i -> s_i (1 + noise_rel_i): kT_i.

    In model units (gauge of the nominal program): mu_i -> mu_i / (1 + c), kT_i -> kT_i
    (1 + n)^2 / (1 + c), J2 -> J2 (1 + g), J4 -> J4 (1 + k3), K_ij -> J_ij (1 + gain_ij).
    """

    c_rel: Any
    g_rel: Any
    k3_rel: Any
    gain: Any
    offset_V: Any
    noise_rel: Any
    seed: Any = None

    RELATIVE = ("c_rel", "g_rel", "k3_rel", "noise_rel")
    PER_UNIT = ("offset_V",)

    @classmethod
    def draw(cls, target, n_units: int, seed: int, *, reciprocal: bool = True,
             noise_common: float = 0.03, noise_unit: float = 0.01, scale: float = 1.0) -> "Mismatch":
        """Seeded draws from the target's component figures (``target.components``):
        c_rel ~ U(+-cap_tolerance), g_rel ~ U(+-resistor_tolerance) (catalogue tolerances are
        bounds), k3_rel and gain ~ N(0, gain_mismatch), offset_V ~ N(0, offset_V), noise_rel =
        a common N(0, noise_common) plus a per-unit N(0, noise_unit) (the target does not
        describe the noise generator's accuracy). ``reciprocal``: one coupling element per pair
        (gain symmetric) - else each direction has its own. ``scale`` multiplies every error."""
        comp = target.components
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6361]))
        n = int(n_units)
        s = float(scale)
        c_rel = s * rng.uniform(-1, 1, n) * comp.cap_tolerance
        g_rel = s * rng.uniform(-1, 1, n) * comp.resistor_tolerance
        k3_rel, gain, offset, noise = active_element_errors(rng, n, s, comp, reciprocal, noise_common, noise_unit)
        return cls(c_rel, g_rel, k3_rel, gain, offset, noise, seed=int(seed))

    def apply_to_circuit(self, circ: RCCircuit) -> RCCircuit:
        """The mismatched circuit (element values as built)."""
        self._check_units(circ)
        g_fac = 1.0 + self.g_rel
        R = np.asarray(circ.R, dtype=np.float64) / g_fac
        g_trim = circ.g_trim * g_fac
        g_new = circ.g * g_fac
        return dataclasses.replace(
            circ, C=circ.C * (1.0 + self.c_rel), R=R, g_trim=g_trim, k3=circ.k3 * (1.0 + self.k3_rel),
            I_b=circ.I_b - g_new * self.offset_V, G=circ.G * (1.0 + self.gain),
            s2=circ.s2 * (1.0 + self.noise_rel) ** 2, meta={**circ.meta, "mismatched": True})


def mismatched_parameters(bad: RCCircuit, nominal: RCCircuit) -> dict[str, np.ndarray]:
    """Model-unit parameters (J2, J4, b, mu, kT and directed K) that the circuit ``bad``
    implements, in the units of the program ``nominal`` was compiled from (its gauge mu0 C0:
    the mismatch changes C_i, not the units the program is written in)."""
    return circuit_parameters(bad, nominal.gauge)


def mismatched_model(c: Computer, errors: Mismatch, target) -> Computer:
    """The model a chip with ``errors`` implements when programmed with ``c``, in model units
    without building its circuit (chip-aware training draws a chip every cycle): mu/(1 + c),
    kT (1 + n)^2/(1 + c), J2 (1 + g), J4 (1 + k3), J_ij (1 + gain_ij) (symmetric part), and
    b + 2 J2 (1 + g) V_os/V_s (offsets need the target's V_s; a thermal-noise target without
    one gets none). The same model as :func:`mismatched_parameters` of the mismatched circuit
    (tests/test_calibrate_lc.py holds them together)."""
    V_s = getattr(target.physics, "V_s_V", None)
    g = 1.0 + errors.g_rel
    one_c = 1.0 + errors.c_rel
    db = 2.0 * c.J2 * g * errors.offset_V / V_s if V_s else 0.0
    gain = 0.5 * (errors.gain + errors.gain.T)
    return c.replace(J=c.J * (1.0 + gain), b=c.b + db, J2=c.J2 * g, J4=c.J4 * (1.0 + errors.k3_rel),
                     mu=c.mu / one_c, kT=c.kT * (1.0 + errors.noise_rel) ** 2 / one_c)


def copies_circuit(circ: RCCircuit, I_extra: np.ndarray) -> RCCircuit:
    """``len(I_extra)`` uncoupled copies of ``circ`` in one circuit; copy r gets the extra
    bias currents I_extra[r] (A, into each node). Node r*N + i is unit i of copy r."""
    k, n = I_extra.shape
    if n != circ.n_units:
        raise InputError(f"I_extra has {n} units, the circuit {circ.n_units}")
    tile = lambda a: np.tile(np.asarray(a, dtype=np.float64), k)  # noqa: E731
    return dataclasses.replace(
        circ, C=tile(circ.C), R=tile(circ.R), g_trim=tile(circ.g_trim), k3=tile(circ.k3),
        I_b=(np.asarray(circ.I_b)[None, :] + I_extra).reshape(-1), G=np.kron(np.eye(k), circ.G),
        s2=tile(circ.s2), mu=tile(circ.mu), kT_model=tile(circ.kT_model), n_visible=0, image_shape=None)


def imposed_current(nominal: RCCircuit, h: np.ndarray) -> np.ndarray:
    """The current (A, into each node) that imposes the model bias h (runs, N) exactly: an
    external source acts with the unit's true mobility, drift -mu_i (dV/dx_i + h_i), so
    I_h = -mu0 C0 V_s h in the nominal program's gauge."""
    return -nominal.gauge * nominal.V_s * np.asarray(h, dtype=np.float64)


def to_computer(circ: RCCircuit, p=None) -> Computer:
    c = circuit_to_computer(circ)
    c = adopt_program(c, p)
    return c


def check(p) -> list[dict]:
    out = []
    circ = p.artefact
    if circ is None:
        return out
    if np.any(circ.g_trim < -1e-18):
        out.append({"check": "trim", "message": "negative trim conductance needed (resistor too small)"})
    # bandwidth: the fastest local relaxation rate must stay below the transconductors' reach
    lam = (circ.g + np.sum(np.abs(circ.G), axis=1)) / circ.C
    out_rate = float(np.max(lam))
    noise = p.target.physics.noise
    if noise.source == "thermal" and p.target.physics.V_s_V is not None:
        t_eff = p.scales.get("T_eff_K", 0.0)
        if abs(t_eff / noise.temperature_K - 1) > 0.01:
            out.append({"check": "temperature", "message": f"thermal noise at {noise.temperature_K:g} K but V_s_V = "
                        f"{p.target.physics.V_s_V:g} V makes the model's bath T_eff = {t_eff:.4g} K: the resistors' "
                        "Johnson noise would not be the model's noise; drop V_s_V (it is then derived) or use "
                        "injected noise"})
    nd = noise.density_A2_per_Hz
    if nd is not None and np.max(circ.s2) > nd:
        out.append({"check": "noise", "message": f"needs noise density {np.max(circ.s2):.3g} A^2/Hz, "
                    f"the generator delivers at most {nd:.3g}"})
    if out_rate * p.target.physics.tau_s > 100:
        out.append({"check": "bandwidth", "message": f"fastest local rate {out_rate:.3g} 1/s is "
                    f"{out_rate * p.target.physics.tau_s:.0f}x the unit rate 1/tau: simulation and hardware get stiff"})
    return out


# ---------------------------------------------------------------------------------------------
# netlist
# ---------------------------------------------------------------------------------------------
def fastest_rate(circ: RCCircuit) -> float:
    """The fastest relaxation rate (1/s) of the circuit linearised anywhere in |x| <= 1: the
    spectral norm of C^-1/2 (diag(g + 3 k3 V_s^2) + G) C^-1/2 (exact for symmetric couplings,
    a bound otherwise). It replaced the row-sum (Gershgorin) bound, which counts every coupling
    of a unit at full strength: on the shipped rc-mnist-crossbar chip 104 per tau against a
    spectral 56. |x| <= 1 is a convention: generated pixels reach |x| ~ 1.75, where the on-site
    rate is 39 instead of 14 per tau; at NT = 0.05 / rate the held-noise variance factor of such
    a unit is still 0.9996. Above 4000 units the row-sum bound is used."""
    d = circ.g + 3 * circ.k3 * circ.V_s ** 2
    G = np.array(circ.G, dtype=np.float64)
    np.fill_diagonal(G, 0.0)
    if circ.n_units > 4000:
        return float(np.max((d + np.sum(np.abs(G), axis=1)) / circ.C))
    s = 1.0 / np.sqrt(circ.C)
    A = (G + np.diag(d)) * s[:, None] * s[None, :]
    return float(np.linalg.norm(A, 2))


def noise_interval(circ: RCCircuit, fraction: float = 0.01) -> float:
    """Noise sample interval NT = fraction x the fastest local time constant
    (:func:`fastest_rate`; docs/design.md#noise-interval)."""
    return float(fraction / fastest_rate(circ))


def held_noise_variance_factor(nt_over_tau: float) -> float:
    """Stationary variance of a first-order unit (time constant tau) driven by sample-and-hold
    white noise of interval NT and level NA^2 NT, relative to true white noise, sampled at the
    hold instants: tanh(x/2)/(x/2) with x = NT/tau (exact for the linear unit)."""
    x = float(nt_over_tau)
    return 1.0 if x == 0 else math.tanh(x / 2) / (x / 2)


def netlist(circ: RCCircuit, *, t_stop: float, nt: float | None = None, seed: int = 1,
            noise: str = "trrandom", x0: np.ndarray | None = None, title: str = "thermohw rc chip",
            meta: dict | None = None, pwl: np.ndarray | None = None, notes: list[str] | None = None,
            noise_include: str | None = None) -> str:
    """SPICE netlist text (ngspice). ``noise``: ``trrandom`` (Gaussian sample-and-hold, follows
    ``.options seed``), ``trnoise`` (ngspice 39 ignores its seed: not reproducible), ``pwl``
    (the given standard normals ``pwl`` (K, N), held for NT each: the same noise can drive an
    ideal simulation), or ``none``. ``x0``: initial state in model units (``.ic``, with UIC).
    ``notes``: extra header comment lines. ``noise_include``: with ``pwl``, a file name the
    PWL sources are in (written by :mod:`thermohw.backends.pwl`): ``.include`` it instead."""
    n = circ.n_units
    nt = noise_interval(circ) if nt is None else float(nt)
    if not 1 <= int(seed) <= 2147483647:
        raise InputError(f"seed = {seed}: ngspice accepts .options seed in 1..2147483647 and silently "
                         "ignores anything else (the run would not be reproducible)")
    if not (t_stop > 0 and nt > 0):
        raise InputError("t_stop and the noise interval must be > 0")
    if noise not in ("trrandom", "trnoise", "pwl", "none"):
        raise InputError(f"noise = {noise!r}; use 'trrandom', 'trnoise', 'pwl' or 'none'")
    if noise_include is not None and not re.fullmatch(r"[\w.-]+", noise_include):
        raise InputError(f"noise_include = {noise_include!r}: use a plain file name")
    if noise == "pwl" and not noise_include:
        pwl = np.asarray(pwl, dtype=np.float64)
        if pwl.ndim != 2 or pwl.shape[1] != n:
            raise InputError(f"pwl noise must be (K, {n}) standard normals")
    lines = [f"* {sanitize_comment(title)}",
             "* generated by thermohw (RC s-units, thermohw/backends/rc.py); units SI",
             netlist_provenance(),
             f"* source model sha256/16: {sanitize_comment(circ.meta.get('source_hash', ''))}",
             f"* scales: V_s = {circ.V_s:.6g} V per unit x; tau = {circ.tau:.6g} s per model time unit",
             "* node u<i> carries unit i: x_i = v(u<i>) / V_s",
             f"* noise: {noise}, sample interval NT = {nt:.6g} s, seed {int(seed)}",
             "* run: ngspice -b -r out.raw THIS_FILE"]
    lines += comment_lines(meta, notes)
    lines += ["", ".subckt sunit n params: c=1p r=1e12 gt=0 k3=0 ib=0 na=0",
              "C1 n 0 {c}",
              "R1 n 0 {r}",
              "Gt n 0 n 0 {gt}",
              "B3 n 0 I={k3}*V(n)*V(n)*V(n)",
              "Ib 0 n DC {ib}",
              ".ends sunit", ""]
    for i in range(n):
        r = circ.R[i] if np.isfinite(circ.R[i]) else 1e15
        lines.append(f"X{i} u{i} sunit params: c={eng(circ.C[i])} r={eng(r)} gt={eng(circ.g_trim[i])} "
                     f"k3={eng(circ.k3[i])} ib={eng(circ.I_b[i])}")
    # noise sources at top level (one per unit, so each draws its own stream)
    if noise == "pwl" and noise_include:  # the same PWL sources, kept in a file beside the netlist
        lines.append(f".include {noise_include}")
    elif noise != "none":
        for i in range(n):
            na = math.sqrt(circ.s2[i] / nt)  # white level s^2 = NA^2 NT
            if noise == "trrandom":
                lines.append(f"In{i} 0 u{i} DC 0 TRRANDOM(2 {eng(nt)} 0 {eng(na)} 0)")
            elif noise == "pwl":
                lines.append(f"In{i} 0 u{i} PWL(" + _held_pwl(na * pwl[:, i], nt) + ")")
            else:
                lines.append(f"In{i} 0 u{i} DC 0 TRNOISE({eng(na)} {eng(nt)} 0 0)")
    ii, jj = np.nonzero(circ.G)
    for i, j in zip(ii.tolist(), jj.tolist()):
        lines.append(f"G{i}_{j} u{i} 0 u{j} 0 {eng(circ.G[i, j])}")
    opts = f".options seed={int(seed)}" if noise == "trrandom" else ""
    if opts:
        lines.append(opts)
    uic = ""
    if x0 is not None:
        x0 = np.asarray(x0, float)
        if x0.shape != (n,):
            raise InputError(f"x0 must have shape ({n},)")
        lines.append(".ic " + " ".join(f"v(u{i})={eng(circ.V_s * x0[i])}" for i in range(n)))
        uic = " uic"
    lines.append(f".tran {eng(nt)} {eng(t_stop)} 0 {eng(nt)}{uic}")
    lines.append(".end")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the co-simulation contract (docs/design.md#backend-contract): thin wrappers over the above
# ---------------------------------------------------------------------------------------------
def states(raw, circ: RCCircuit) -> dict:
    """Model-unit states from an ngspice run of :func:`netlist`: ``t`` (s), ``s`` (model time)
    and ``x`` (T, N) = v / V_s, on ngspice's own time points."""
    t = np.asarray(raw["time"])
    x = np.stack([raw[f"v(u{i})"] for i in range(circ.n_units)], axis=1) / circ.V_s
    return {"t": t, "s": t / circ.tau, "x": x}


def time_unit(circ: RCCircuit) -> float:
    """Seconds per model time unit."""
    return float(circ.tau)


def spice_start(p, circ: RCCircuit, x0: np.ndarray, seed) -> dict:
    """Nothing beyond the positions: an overdamped unit's state is its node voltage."""
    return {}


def spice_netlist(circ: RCCircuit, *, t_stop: float, nt: float, seed: int, noise: str, x0: np.ndarray,
                  pwl: np.ndarray | None, title: str, **start) -> str:
    """One generation run (:func:`netlist`) from ``x0`` (N,), model units."""
    if start:
        raise InputError(f"an RC run starts from its positions only; got {', '.join(sorted(start))}")
    return netlist(circ, t_stop=t_stop, nt=nt, seed=seed, noise=noise, x0=x0, pwl=pwl, title=title)


def spice_readout(raw, circ: RCCircuit, grid_s: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x = v(u<i>) / V_s on ``grid_s`` (len(grid_s), N); ``x0`` supplies t = 0."""
    return node_voltages(raw, circ.n_units, grid_s, v0=circ.V_s * np.asarray(x0)) / circ.V_s


def spice_energy(raw, circ: RCCircuit) -> dict[str, float]:
    """Electrical energy of a run in joules, integrated on ngspice's own time points (trapezoid):
    resistive_J (resistors, trims, cubic elements; >= 0), couplings_J (transconductors, signed),
    bias_J, capacitor_delta_J, and noise_delivered_J by the first law (what the elements take
    plus what the capacitors store). dissipated_J = resistive_J and stored_delta_J =
    capacitor_delta_J name them as the contract does. The model's energy V is not stored in
    any element here (its 'potential' is a current-vs-voltage law)."""
    t = raw["time"]
    v = np.stack([raw[f"v(u{i})"] for i in range(circ.n_units)], axis=1)  # volts
    p_res = (v * v) @ circ.g + (v ** 4) @ circ.k3          # resistors, trims, cubic elements >= 0
    p_cpl = np.einsum("ti,ij,tj->t", v, circ.G, v)          # coupling transconductors (signed)
    p_bias = -(v @ circ.I_b)                                # bias current sources absorb -v I_b
    e = {k: float(np.trapezoid(p, t)) for k, p in (("resistive_J", p_res), ("couplings_J", p_cpl),
                                                    ("bias_J", p_bias))}
    e["capacitor_delta_J"] = float(0.5 * np.sum(circ.C * (v[-1] ** 2 - v[0] ** 2)))
    e["noise_delivered_J"] = e["resistive_J"] + e["couplings_J"] + e["bias_J"] + e["capacitor_delta_J"]
    e["dissipated_J"] = e["resistive_J"]
    e["stored_delta_J"] = e["capacitor_delta_J"]
    return e


def spice_pwl_current(circ: RCCircuit, nt: float, z: np.ndarray) -> np.ndarray:
    """The currents (K, N), amperes into node u<i>, that "pwl" injects for standard normals z."""
    return np.sqrt(circ.s2 / nt) * z


GENERATION_NT_FRACTION = 0.05  # NT x fastest rate in compile's netlist: held-noise variance factor 0.9998


def generation_grid(p, nt_fraction: float = GENERATION_NT_FRACTION) -> tuple[float, float, int]:
    """(t_f, NT, K) of a program's generation-protocol netlist: K noise samples of NT seconds
    fill t_f model time units exactly, NT within ``nt_fraction`` x the fastest local time."""
    circ = p.artefact
    t_f = p.options.generation_time(p.source)
    k = max(1, math.ceil(t_f * circ.tau / noise_interval(circ, nt_fraction) - 1e-9))  # NT <= the bound
    return t_f, t_f * circ.tau / k, k


def generation_netlist(p, nt_fraction: float = GENERATION_NT_FRACTION, dt: float = 1e-3, noise: str = "trrandom",
                       pwl: np.ndarray | None = None, noise_include: str | None = None) -> str:
    """The netlist of the paper's generation protocol for a compiled RC program: the start state
    drawn from the realised model's coupling-free equilibrium (``.ic``), then the trained
    dynamics for t_f, with seeded TRRANDOM noise (``p.options``: ``netlist_seed``, ``t_f``).
    ``noise="pwl"`` with ``pwl`` (K, N) standard normals (K from :func:`generation_grid`) drives
    it with given noise instead, for paired comparisons with the ideal model (or, with
    ``noise_include``, the PWL sources in that file); ``noise="none"``: noiseless drift."""

    circ = p.artefact
    t_f, nt, _ = generation_grid(p, nt_fraction)
    _, x0 = generation_start(p, dt)
    return netlist(circ, t_stop=t_f * circ.tau, nt=nt, seed=int(p.options.netlist_seed), x0=x0, noise=noise, pwl=pwl,
                   noise_include=noise_include, title=f"thermohw rc chip: target {p.target.name}",
                   meta={"model": p.source.meta.get("digits", ""), "target": p.target.name},
                   notes=generation_notes(p, t_f, circ.tau, "x_i = v(u<i>) / V_s"))


def write(p, folder) -> list[Path]:
    """chip.cir (the generation protocol, or with ``netlist="free"`` a one-model-time-unit free
    run from x = 0), units.csv and couplings.csv; with ``noise="pwl"`` also noise.inc and
    noise.npz (:mod:`thermohw.backends.pwl`)."""

    folder = Path(folder)
    circ = p.artefact
    noise, seed = p.options.noise, int(p.options.netlist_seed)
    out, inc, nt, _ = pwl_files.for_program(p, folder, prefix="In", generation_grid=generation_grid,
                                            noise_interval=noise_interval, free_run_tau=1.0)
    if p.options.netlist == "generate":
        txt = generation_netlist(p, noise=noise, noise_include=inc)
    else:
        txt = netlist(circ, t_stop=circ.tau, nt=nt, seed=seed, noise=noise, noise_include=inc,
                      title=f"thermohw rc chip: target {p.target.name}",
                      meta={"model": p.source.meta.get("digits", ""), "target": p.target.name})
    out.insert(0, atomic_write(folder / "chip.cir", lambda fh: fh.write(txt), mode="w"))
    rows = ["unit,C_F,R_ohm,g_trim_S,k3_A_per_V3,I_b_A,noise_s2_A2_per_Hz"]
    for i in range(circ.n_units):
        rows.append(f"{i},{circ.C[i]:.6e},{circ.R[i]:.6e},{circ.g_trim[i]:.6e},{circ.k3[i]:.6e},"
                    f"{circ.I_b[i]:.6e},{circ.s2[i]:.6e}")
    out.append(atomic_write(folder / "units.csv", lambda fh: fh.write("\n".join(rows) + "\n"), mode="w"))
    ii, jj = np.nonzero(np.triu(circ.G, 1))
    rows = ["i,j,G_S"] + [f"{i},{j},{circ.G[i, j]:.6e}" for i, j in zip(ii.tolist(), jj.tolist())]
    out.append(atomic_write(folder / "couplings.csv", lambda fh: fh.write("\n".join(rows) + "\n"), mode="w"))
    return out


def describe(circ: RCCircuit) -> str:
    return (f"{circ.n_units} RC units: C = {eng_unit(circ.C[0], 'F')}, g = {eng_unit(circ.g[0], 'S')}, "
            f"V_s = {eng_unit(circ.V_s, 'V')}, noise s = {eng_unit(math.sqrt(circ.s2[0]), 'A/rtHz')}")
