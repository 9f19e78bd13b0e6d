"""The Josephson backend's RCSJ netlist in the real ngspice (docs/design.md#josephson-netlist),
its golden read-back, the exact-inverse realised model, the truncation figures and the
physical mismatch model.

Small circuits (3-8 junctions), fixed seeds. What each tolerance comes from is stated beside it.
"""
import dataclasses
import json
import math
import re

import numpy as np
import pytest

from conftest import random_computer
from thermohw import Computer, Target, compile_computer
from thermohw.backends import josephson as jj
from thermohw.chipaware import Mismatch
from thermohw.compile import CompileOptions
from thermohw.spice.engines import engine_available, run

needs_ngspice = pytest.mark.skipif(not engine_available("batch"), reason="ngspice not installed")

_SUFFIX = {"T": 1e12, "G": 1e9, "Meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
           "a": 1e-18}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:Meg|[TGkmunpfa])?"
K_B = 1.380649e-23
PHI_R = 6.62607015e-34 / (2 * 1.602176634e-19) / (2 * math.pi)  # h / 2e / 2 pi, exact in the SI


def _v(tok: str) -> float:
    m = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(Meg|[TGkmunpfa])?", tok)
    assert m, f"not a SPICE number: {tok!r}"
    return float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1.0)


def _three():
    c = Computer.zeros(3, 0, connectivity="dense", kT=0.1)
    return c.replace(J=np.array([[0, .3, -.2], [.3, 0, .25], [-.2, .25, 0]]), b=np.array([.1, -.05, 0.0]))


def _grid(a, t_f, fraction):
    nt = jj.noise_interval(a, fraction)
    k = math.ceil(t_f * a.tau_s / nt)
    return k, t_f * a.tau_s / k


def _euler(h, x0, t_f, n, z=None):
    """Euler of the hardware model (z: (n, N) standard normals, or noiseless); states at the n+1 steps."""
    dt = t_f / n
    x, out = np.array(x0, float)[None], [np.array(x0, float)]
    for k in range(n):
        x = x - dt * h.mu * h.grad(x) + (0 if z is None else np.sqrt(2 * h.mu * h.kT * dt) * z[k])
        out.append(x[0])
    return np.array(out)


def _drift(h, x0, t_f, points):
    """The noiseless overdamped trajectory dx/ds = -mu dV/dx (RK45, rtol 1e-10) at ``points`` times."""
    from scipy.integrate import solve_ivp

    sol = solve_ivp(lambda t, x: -h.mu * h.grad(x), (0, t_f), x0, t_eval=np.linspace(0, t_f, points),
                    rtol=1e-10, atol=1e-12)
    return sol.y.T


# ---- dynamics in ngspice -----------------------------------------------------------------------
@needs_ngspice
def test_rcsj_drift_is_the_full_cosine_with_exact_inductances():
    """Noiseless, from a start far out (|x| up to 1.8, where x^6 matters): with C made 100x
    smaller (beta_C 4.5e-4) the netlist follows the overdamped hardware model (full cosine,
    exact Lmat^-1) to 1e-4 (measured 4e-5: inertia ~ beta_C and SPICE's integration error),
    while the x^4 first-order realised model is 0.03 away. At the preset's C the junctions'
    inertia (R C = 0.0019 tau) shows as a lag of ~6e-3."""
    p = compile_computer(_three(), "josephson-rfsquid")
    a, x0, t_f = p.artefact, np.array([1.8, -1.5, 0.6]), 0.3
    grid = np.linspace(0, t_f * a.tau_s, 7)
    want, real = (_drift(jj.HardwareModel(a, exact=e, cosine=e), x0, t_f, 7) for e in (True, False))
    for scale, tol in ((0.01, 1e-4), (1.0, 0.012)):
        art = dataclasses.replace(a, C=a.C * scale)
        k, nt = _grid(art, t_f, 0.05)
        raw = run(jj.spice_netlist(art, t_stop=t_f * a.tau_s, nt=nt, seed=1, noise="none", x0=x0, title="drift"))
        xs = jj.spice_readout(raw, art, grid, x0)
        assert np.abs(xs - want).max() < tol, scale
    assert np.abs(real - want).max() > 0.02  # the test can tell the models apart


@needs_ngspice
def test_pwl_noise_run_is_the_hardware_model_driven_by_the_same_noise():
    """Paired: the netlist with given standard normals against Euler of the hardware model at
    dt = NT with the same normals. At C/100 the difference is the O(NT) Euler error (measured
    0.2 % of the spread; bound 2 %). The first law closes with the injected currents measured
    (|residual| < 2 % of the dissipation at the preset's C; measured 0.5 %)."""
    p = compile_computer(_three(), "josephson-rfsquid")
    a, x0, t_f = p.artefact, np.array([0.3, -0.5, 0.6]), 0.5
    k, nt = _grid(a, t_f, 0.05)
    z = np.random.default_rng(3).standard_normal((k, 3))
    want = _euler(jj.HardwareModel(a), x0, t_f, k, z)
    grid = np.linspace(0, t_f * a.tau_s, k + 1)
    art = dataclasses.replace(a, C=a.C * 0.01)
    raw = run(jj.spice_netlist(art, t_stop=t_f * a.tau_s, nt=nt, seed=1, noise="pwl", pwl=z, x0=x0, title="pwl"))
    xs = jj.spice_readout(raw, art, grid, x0)
    spread = np.std(want[k // 2:])
    assert np.sqrt(np.mean((xs[-1] - want[-1]) ** 2)) < 0.02 * spread
    raw = run(jj.spice_netlist(a, t_stop=t_f * a.tau_s, nt=nt, seed=1, noise="pwl", pwl=z, x0=x0, title="pwl"))
    e = jj.spice_energy(raw, a)
    t = raw["time"]
    V = np.stack([raw[f"v(u{i})"] for i in range(3)], axis=1)
    cur = jj.spice_pwl_current(a, nt, z)[np.minimum((t / nt).astype(int), k - 1)]
    measured = np.trapezoid(np.einsum("ti,ti->t", V, cur), t)
    assert e["dissipated_J"] > 0
    assert abs(measured - e["noise_delivered_J"]) < 0.02 * e["dissipated_J"]


@needs_ngspice
def test_trrandom_noise_gives_the_boltzmann_variance_at_the_physical_temperature():
    """8 lone junctions (J = 0, b = 0), one seeded TRRANDOM run of 20 tau: the time average of
    x^2 after 1 tau equals the Boltzmann variance of the full-cosine well at the shunts'
    temperature. Error from 20 batch means (each ~2 relaxation times); measured within 1.3 s.e.;
    bound 4 s.e. (a one- vs two-sided density error, 2x in variance, fails)."""
    n, t_f = 8, 20.0
    p = compile_computer(Computer.zeros(n, 0, connectivity="dense", kT=0.1), "josephson-rfsquid")
    a = p.artefact
    # NT = 0.5 / the rate bound (50 / tau, which counts E_J at phi = pi); the wells' own rate near
    # x ~ 0.2 is ~2.5 / tau, so NT x rate ~ 0.025 and the held-noise variance factor is 0.9999
    k, nt = _grid(a, t_f, 0.5)
    raw = run(jj.spice_netlist(a, t_stop=t_f * a.tau_s, nt=nt, seed=12, noise="trrandom", x0=np.zeros(n),
                               title="stat"))
    x = jj.spice_readout(raw, a, np.linspace(0, t_f * a.tau_s, k + 1), np.zeros(n))[k // 20:]
    h = jj.HardwareModel(a)
    u = np.linspace(-4, 4, 20001)
    w = np.exp(-(h.energy(np.outer(u, np.eye(n)[0])) / h.kT[0]))
    exact = np.sum(u * u * w) / np.sum(w)
    batches = np.array([b.mean() for b in np.array_split(x ** 2, 20)])
    se = batches.std(ddof=1) / math.sqrt(20)
    assert abs(batches.mean() - exact) < 4 * se, (batches.mean(), exact, se)
    assert se < 0.1 * exact


def test_hardware_model_cut_to_x4_and_first_order_is_the_realised_model():
    p = compile_computer(_three(), "josephson-rfsquid")
    h = jj.HardwareModel(p.artefact, exact=False, cosine=False)
    x = np.random.default_rng(0).normal(size=(5, 3))
    r = p.realised
    np.testing.assert_allclose(h.energy(x), r.energy(x) - r.energy(np.zeros(3)), atol=1e-12)
    np.testing.assert_allclose(h.grad(x), r.grad(x), atol=1e-12)


# ---- golden: the netlist read back to the model ---------------------------------------------------
def _read_netlist(text: str, rep: dict, n: int, exact: bool) -> dict:
    """The model the chip.cir elements implement, from the text and report.json's scales only:
    E_J = Phi_r I_c, K = Phi_r^2 Lmat^-1 (exact) or diag(Phi_r^2/L) - Phi_r^2 M/(L L^T) (first
    order), delta = Lmat IX / Phi_r, then J2 = (K_ii - E_J) s^2/(2 eps), J4 = E_J s^4/(24 eps),
    J = K s^2/eps, b = -s K delta/eps, mu = tau eps R/(Phi_r s)^2, kT from the noise level
    2 k_B T/R = NA^2 NT."""
    sc = rep["scales"]
    eps, tau, s = sc["energy_per_model_unit_J"], sc["tau_s"], sc["phase_scale_rad"]
    el = {}
    for m in re.finditer(rf"^(C|R|L|IX|BJ|CP|GP)(\d+) (.*)$", text, re.M):
        el[(m.group(1), int(m.group(2)))] = m.group(3)
    R = np.array([_v(el["R", i].split()[2]) for i in range(n)])
    L = np.array([_v(el["L", i].split()[2]) for i in range(n)])
    Ic = np.array([_v(re.fullmatch(rf"u{i} 0 I=-({_NUM})\*sin\(v\(p{i}\)\)", el["BJ", i]).group(1)) for i in range(n)])
    IX = np.array([_v(el["IX", i].split()[3]) if ("IX", i) in el else 0.0 for i in range(n)])
    Lmat = np.diag(L)
    for m in re.finditer(rf"^K(\d+)_(\d+) L\1 L\2 ({_NUM})$", text, re.M):
        i, j = int(m.group(1)), int(m.group(2))
        Lmat[i, j] = Lmat[j, i] = _v(m.group(3)) * math.sqrt(L[i] * L[j])
    nt, na = np.zeros(n), np.zeros(n)
    for m in re.finditer(rf"^In(\d+) 0 u\d+ DC 0 TRRANDOM\(2 ({_NUM}) 0 ({_NUM}) 0\)$", text, re.M):
        nt[int(m.group(1))], na[int(m.group(1))] = _v(m.group(2)), _v(m.group(3))
    # integrator: GP copies V/R onto CP = Phi_r/R, i.e. dtheta/dt = V/Phi_r
    gp = np.array([_v(el["GP", i].split()[4]) for i in range(n)])
    cp = np.array([_v(el["CP", i].split()[2]) for i in range(n)])
    np.testing.assert_allclose(cp / gp, PHI_R, rtol=1e-9)
    EJ = PHI_R * Ic
    if exact:
        K = PHI_R ** 2 * np.linalg.inv(Lmat)
    else:
        M = Lmat - np.diag(L)
        K = -PHI_R ** 2 * M / np.outer(L, L) + np.diag(PHI_R ** 2 / L)
    delta = Lmat @ IX / PHI_R
    J = K * s * s / eps
    np.fill_diagonal(J, 0.0)
    T = na ** 2 * nt * R / (2 * K_B)
    return {"J2": (np.diag(K) - EJ) * s * s / (2 * eps), "J4": EJ * s ** 4 / (24 * eps), "J": J,
            "b": -s * (K @ delta) / eps, "mu": tau * eps * R / (PHI_R * s) ** 2, "kT": K_B * T / eps}


@pytest.mark.parametrize("inductance", ["first-order", "exact", "exact-design"])
def test_netlist_reads_back_to_realised_npz(tmp_path, inductance):
    """Golden (hls4ml style): chip.cir element values -> model == realised.npz elementwise, to the
    12 significant digits the netlist is written with (1e-9 relative). First order: the realised
    model is the first-order inverse of the very Lmat the netlist holds; exact: the exact inverse
    (and then visible-visible pairs, which the mask leaves uncoupled, carry couplings);
    exact-design: L and M from Phi_r^2 K^-1, so the exact inverse is the programmed model."""
    t = Target.preset("josephson-rfsquid").replace(units=6)
    t = Target.from_dict({**t.to_dict(), "physics": {**t.to_dict()["physics"], "inductance": inductance}})
    c = random_computer(4, 2, seed=5, scale=0.3).replace(J2=np.array([0.8, 1.0, 1.2, 0.9, 1.1, 1.0]))
    p = compile_computer(c, t)
    p.save(tmp_path)
    rep = json.loads((tmp_path / "report.json").read_text())
    realised = Computer.load(tmp_path / "realised.npz")
    got = _read_netlist((tmp_path / "chip.cir").read_text(), rep, 6, inductance != "first-order")
    for k in ("J2", "J4", "b", "mu", "kT", "J"):
        want = getattr(realised, k)
        np.testing.assert_allclose(got[k], want, rtol=1e-9, atol=1e-9 * np.max(np.abs(want)), err_msg=k)
    uncoupled = ~c.mask & ~np.eye(6, dtype=bool)
    assert (np.abs(realised.J[uncoupled]).max() > 1e-4) == (inductance == "exact")
    if inductance == "exact-design":
        for k in ("J2", "J4", "b", "J"):
            np.testing.assert_allclose(getattr(realised, k), getattr(p.programmed, k), rtol=1e-12, atol=1e-13)


def test_exact_inverse_option_and_truncation_figures():
    """The realised model with physics.inductance = exact is to_computer(exact=True); the preset's
    truncation at |x| = 1, 1.5, 2 (J4' = 10 kT, s = 1): x^6 term -J4' s^2 x^6 / 30 =
    -0.333, -3.80, -21.3 kT; all orders beyond x^4 -0.327, -3.65, -19.9 kT."""
    p = compile_computer(_three(), "josephson-rfsquid")
    t = Target.from_dict({**p.target.to_dict(), "physics": {**p.target.to_dict()["physics"], "inductance": "exact"}})
    pe = compile_computer(_three(), t)
    ref = jj.to_computer(p.artefact, exact=True)
    for k in ("J", "b", "J2", "J4", "mu", "kT"):
        np.testing.assert_allclose(getattr(pe.realised, k), getattr(ref, k), rtol=1e-12, atol=1e-15)
    assert not np.allclose(pe.realised.J2, p.realised.J2, rtol=1e-4)
    tt = jj.truncation_table(p.artefact)
    np.testing.assert_allclose([r["x6_kT"] for r in tt], [-1 / 3, -3.796875, -21.333333], rtol=1e-6)
    np.testing.assert_allclose([r["all_orders_kT"] for r in tt], [-0.32745, -3.64807, -19.87524], rtol=1e-4)
    assert "-19.9 kT at |x| = 2" in jj.describe(p.artefact)


def test_netlist_refuses_bad_input():
    p = compile_computer(_three(), "josephson-rfsquid")
    a = p.artefact
    kw = dict(t_stop=1e-10, nt=1e-12, seed=1, x0=np.zeros(3), title="x\n.control\nshell rm -rf /")
    text = jj.spice_netlist(a, noise="none", **kw)
    assert ".control" not in text.replace("* x .control", "")  # the title stays a comment
    with pytest.raises(Exception, match="noise_include"):
        jj.spice_netlist(a, noise="pwl", noise_include="../x.inc", **kw)
    with pytest.raises(Exception, match="standard normals"):
        jj.spice_netlist(a, noise="pwl", pwl=np.zeros((4, 2)), **kw)
    with pytest.raises(Exception, match="seed"):
        jj.spice_netlist(a, noise="trrandom", **{**kw, "seed": 0})


# ---- mismatch ----------------------------------------------------------------------------------
def test_mismatch_j2_sensitivity_matches_the_backend():
    """Finite difference of the backend's own lower/to_computer under dI_c/I_c = 1e-6 against the
    analytic -beta_L/(1 - beta_L) (-12.0 at beta_L = 0.923); chipaware's josephson Mismatch equals
    the backend with the drawn I_c, M and R errors applied to the artefact."""
    t = Target.preset("josephson-rfsquid")
    p = compile_computer(_three(), t)
    a = p.artefact
    h = 1e-6
    r0 = jj.to_computer(a)
    r1 = jj.to_computer(dataclasses.replace(a, I_c=a.I_c * (1 + np.array([h, 0, 0]))))
    np.testing.assert_allclose((r1.J2[0] - r0.J2[0]) / r0.J2[0] / h, jj.j2_sensitivity(a.beta_L[0]), rtol=1e-4)
    np.testing.assert_allclose(jj.j2_sensitivity(a.beta_L[0]), -12.0, rtol=0.01)
    np.testing.assert_allclose((r1.J4[0] - r0.J4[0]) / r0.J4[0] / h, 1.0, rtol=1e-4)
    assert r1.J2[1] == r0.J2[1]
    m = Mismatch.draw(t, 3, 3, 7)
    got = m.apply(p.programmed)
    e = m.errors   # josephson.ChipErrors: I_c, coupler and shunt errors
    art = dataclasses.replace(a, I_c=a.I_c * (1 + e.ic_rel), M=a.M * (1 + e.m_rel), R=a.R * (1 + e.r_rel))
    want = jj.to_computer(art)
    for k in ("J", "b", "J2", "J4", "mu", "kT"):
        np.testing.assert_allclose(getattr(got, k), getattr(want, k), rtol=1e-10, atol=1e-13, err_msg=k)
    # 2 % I_c spread: J2 moves ~12x as much as J4
    dj2 = got.J2 / p.programmed.J2 - 1
    np.testing.assert_allclose(dj2, jj.j2_sensitivity(a.beta_L) * e.ic_rel, rtol=1e-9)
