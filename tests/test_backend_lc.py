"""LC (RLC-cell) backend and the underdamped simulator.

(a) element formulas against hand-computed numbers; (b) compile -> to_computer round trip;
(c) the netlist runs in real ngspice and its vectors map back to units (deterministic
trajectory against the underdamped ODE, DC point = stationary point of V);
(d) equipartition of a lone linear LC cell under TRRANDOM noise in ngspice;
(e) the underdamped simulator: equipartition, and its overdamped limit against langevin.simulate;
(f) the checks flag the lc-spu preset (Q = 1, tau_s inconsistent with L and R).
"""
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from conftest import random_computer
from thermohw import Computer, Target, compile_computer, simulate
from thermohw.backends import lc
from thermohw.spice.ngspice import run_batch
from thermohw.underdamped import (linear_stationary, simulate_underdamped, slow_rate_error,
                                  step_coefficients)

K_B = 1.380649e-23
needs_ngspice = pytest.mark.skipif(__import__("shutil").which("ngspice") is None,
                                   reason="ngspice not installed (apt-get install ngspice)")


def lc_target(units=2, *, R=100.0, tau=2e-5, V_s=0.1, C=1e-9, L=1e-3, **physics):
    """Ideal components (no series, no trims): element values are exactly the formulas'."""
    ph = {"C_F": C, "L_H": L, "R_ohm": R, "V_s_V": V_s, "tau_s": tau, "noise": {"source": "injected"},
          **physics}
    if ph.get("V_s_V") is None:
        ph.pop("V_s_V")
    return Target.from_dict({"name": "lc-test", "kind": "lc", "units": units,
                             "topology": {"type": "all-to-all"},
                             "couplings": {"min": -1, "max": 1, "bits": 8},
                             "biases": {"min": -4, "max": 4, "bits": 8}, "physics": ph})


def checks(p):
    return {v["check"]: v for v in p.report["violations"]}


# ---- (a) element formulas ------------------------------------------------------------------
def test_elements_one_unit_by_hand():
    c = Computer(J=np.zeros((1, 1)), b=np.array([0.5]), mask=np.zeros((1, 1), bool), n_visible=0,
                 J2=1.0, J4=1.0, kT=0.1, mu=1.0)
    p = compile_computer(c, lc_target(1))
    e = p.artefact
    # tau = 2 mu J2 L/R = 2e-3/100; Phi_s = V_s tau; E = Phi_s^2/(2 L J2)
    assert e.tau == pytest.approx(2e-5, rel=1e-12)
    assert e.phi_s == pytest.approx(2e-6, rel=1e-12)
    assert e.E == pytest.approx(2e-9, rel=1e-12)
    assert e.a[0] == 0.0                                       # uniform J2: no trim element
    assert e.k3[0] == pytest.approx(5e14, rel=1e-9)            # 4 E J4/Phi_s^4 = 8e-9/1.6e-23
    assert e.I_b[0] == pytest.approx(-5e-4, rel=1e-9)          # -E b/Phi_s
    assert e.R[0] == pytest.approx(100.0, rel=1e-12)           # mu Phi_s^2/(tau E)
    assert e.s2[0] == pytest.approx(4e-12, rel=1e-9)           # 2 kT E/R
    assert e.mass[0] == pytest.approx(5e-3, rel=1e-9)          # C Phi_s^2/(E tau^2) = Q^2/2
    s = p.scales
    assert s["quality_factor"] == pytest.approx(0.1, rel=1e-12)  # 100 sqrt(1n/1m)
    assert s["energy_per_model_unit_J"] == pytest.approx(2e-9, rel=1e-12)
    assert s["T_eff_K"] == pytest.approx(0.1 * 2e-9 / K_B, rel=1e-12)
    assert s["inertial_time_s"] == pytest.approx(1e-7, rel=1e-12)      # R C
    assert s["relaxation_time_s"] == pytest.approx(1e-5, rel=1e-12)    # L/R
    assert s["inertial_over_relaxation"] == pytest.approx(0.01, rel=1e-9)  # = Q^2
    assert s["slow_rate_error"] == pytest.approx(0.01 + 2e-4, rel=1e-3)   # Q^2 + 2 Q^4
    # the elements at x = 1: quartic current 4 E J4/Phi_s = 4 mA from k3 L^3 i^3 with i = Phi_s/L
    i_l = e.phi_s / e.L[0]
    assert e.k3[0] * e.L[0] ** 3 * i_l ** 3 == pytest.approx(4e-3, rel=1e-9)
    net = lc.netlist(e, t_stop=1e-6, nt=1e-8, seed=4)
    for card in ("C0 u0 0 1n", "R0 u0 0 100", "L0 u0 m0 1m", "VL0 m0 0 DC 0",
                 "BQ0 u0 0 I=500k*i(VL0)*i(VL0)*i(VL0)", "IB0 0 u0 DC -500u",
                 f"IN0 0 u0 DC 0 TRRANDOM(2 10n 0 {lc.eng(math.sqrt(4e-12 / 1e-8))} 0)", ".options seed=4"):
        assert card in net, card
    assert "FT0" not in net
    # consistent tau, but the quartic stiffens the cell: Q <= 0.1 at x = 0, 0.1 sqrt(7) at |x| = 1
    v = checks(p)
    assert "time_unit" not in v
    assert v["overdamping"]["Q"] == pytest.approx(0.1, rel=1e-9)
    assert v["overdamping"]["Q_bound"] == pytest.approx(0.1 * math.sqrt(7), rel=1e-9)


def test_elements_two_units_by_hand():
    J = np.array([[0.0, 0.3], [0.3, 0.0]])
    c = Computer(J=J, b=np.array([0.0, -0.2]), mask=J != 0, n_visible=1, J2=[1.0, 1.5], J4=0.5,
                 kT=0.1, mu=1.0)
    p = compile_computer(c, lc_target(2))
    e = p.artefact
    # J2_ref = 1.25: tau = 2.5e-5 (not the target's 2e-5), Phi_s = 2.5e-6, E = 2.5e-9
    assert e.tau == pytest.approx(2.5e-5, rel=1e-12)
    assert e.phi_s == pytest.approx(2.5e-6, rel=1e-12)
    assert e.E == pytest.approx(2.5e-9, rel=1e-12)
    np.testing.assert_allclose(e.a, [-0.2, 0.2], rtol=1e-12)            # J2/J2_ref - 1
    np.testing.assert_allclose(e.k3, [1.28e14, 1.28e14], rtol=1e-9)     # 4 E J4/Phi_s^4
    np.testing.assert_allclose(e.K, [[0, 120.0], [120.0, 0]], rtol=1e-9)  # E J/Phi_s^2, A/Wb
    np.testing.assert_allclose(e.I_b, [0.0, 2e-4], rtol=1e-9, atol=1e-18)
    np.testing.assert_allclose(e.R, [100.0, 100.0], rtol=1e-12)
    np.testing.assert_allclose(e.s2, [5e-12, 5e-12], rtol=1e-9)
    net = lc.netlist(e, t_stop=1e-6, nt=1e-8)
    for card in ("FT0 u0 0 VL0 -200m", "FT1 u1 0 VL1 200m", "FC0_1 u0 0 VL1 120m", "FC1_0 u1 0 VL0 120m",
                 "IB1 0 u1 DC 200u", "BQ1 u1 0 I=128k*i(VL1)*i(VL1)*i(VL1)"):
        assert card in net, card
    assert "IB0" not in net
    v = checks(p)
    assert v["time_unit"]["tau_s"] == pytest.approx(2.5e-5, rel=1e-12)
    assert "1.25x" in v["time_unit"]["message"]


# ---- (b) round trip ------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["lc-spu", "ideal", "thermal"])
def test_round_trip(target):
    c = random_computer(3, 3, seed=3)
    if target == "lc-spu":
        t = Target.preset("lc-spu")
    elif target == "ideal":
        t = lc_target(6)
        c = c.replace(mu=[1.0, 0.8, 1.2, 1.0, 0.9, 1.1], J2=[1.0, 0.7, 1.3, 1.0, 1.1, 0.9],
                      kT=[0.1, 0.1, 0.12, 0.1, 0.09, 0.1])
    else:
        t = lc_target(6, V_s=None, noise={"source": "thermal", "temperature_K": 300.0})
    p = compile_computer(c, t)
    for r in (lc.to_computer(p.artefact, p), lc.to_computer(p.artefact), p.realised):
        prog = p.programmed
        for name in ("J", "b", "J2", "J4", "mu", "kT"):
            np.testing.assert_allclose(getattr(r, name), getattr(prog, name), rtol=1e-12, atol=1e-14,
                                       err_msg=name)
    assert np.array_equal(p.realised.mask, p.programmed.mask)
    if target == "thermal":   # k_B T = kT E
        assert p.scales["T_eff_K"] == pytest.approx(300.0, rel=1e-12)


# ---- (c) the netlist in ngspice -----------------------------------------------------------
@needs_ngspice
def test_netlist_runs_and_maps_units(tmp_path):
    c = random_computer(2, 2, seed=1)
    p = compile_computer(c, "lc-spu")
    circ = p.artefact
    comp, m = lc.underdamped_model(circ, p)
    # noisy run: every unit's position and velocity vectors are present; the seed reproduces
    raws = [run_batch(lc.netlist(circ, t_stop=5 * circ.tau, seed=s)) for s in (3, 3, 4)]
    names = lc.probe_names(circ)
    for name in names["x"] + names["v"]:
        assert name in raws[0].names
    xs = [lc.states(r, circ)["x"] for r in raws]
    assert xs[0].shape[1] == 4 and np.all(np.isfinite(xs[0]))
    np.testing.assert_array_equal(xs[0], xs[1])
    assert not np.array_equal(xs[0][-1], xs[2][-1])
    # noise-free run from (x0, v0): SPICE integrates m x'' = -gamma x' - dV/dx unit by unit
    x0, v0 = np.array([0.8, -0.6, 0.3, 1.0]), np.array([0.5, 0.0, -0.5, 0.2])
    T = 6.0
    raw = run_batch(lc.netlist(circ, t_stop=T * circ.tau, noise="none", x0=x0, v0=v0, nt=circ.tau / 400,
                               options={"reltol": 1e-6}))
    st = lc.states(raw, circ)
    g = 1.0 / comp.mu

    def rhs(s, y):
        return np.concatenate([y[4:], (-g * y[4:] - comp.grad(y[:4])) / m])

    sol = solve_ivp(rhs, (0, T), np.concatenate([x0, v0]), t_eval=st["s"], rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(sol.y[:4].T - st["x"])) < 1e-3
    assert np.max(np.abs(sol.y[4:].T - st["u"])) < 1e-3
    assert np.ptp(st["x"][:, 0]) > 0.5                       # it actually moved
    # no initial state: the DC operating point is a stationary point of V, at rest
    st = lc.states(run_batch(lc.netlist(circ, t_stop=circ.tau, noise="none", nt=circ.tau / 10)), circ)
    np.testing.assert_allclose(comp.grad(st["x"][0]), 0.0, atol=1e-6)
    np.testing.assert_allclose(st["u"][0], 0.0, atol=1e-9)
    # the designer's files
    files = lc.write(p, tmp_path)
    assert {f.name for f in files} == {"chip.cir", "units.csv", "couplings.csv"}
    assert len(lc.states(run_batch((tmp_path / "chip.cir").read_text()), circ)["t"]) > 10


# ---- (d) equipartition in ngspice ---------------------------------------------------------
@needs_ngspice
def test_spice_lc_cell_equipartition():
    """32 uncoupled linear cells (J4 = 0) of the lc-spu design, driven by TRRANDOM noise.

    Prediction: var(x) = kT/(2 J2) (J2 after the 10-bit trim), var(dx/ds) = kT/m.
    Tolerance: sampling error from batch means. Each cell's record (after 10 tau of burn-in)
    is cut into blocks of 25 tau - far longer than the correlation time of x^2 (~1 tau at
    Q = 1: decay rate gamma/(2m) = 1/tau) - so the ~900 block means of x^2 are nearly
    independent; SE = their s.d./sqrt(count), and we allow 4 SE. States are read at the hold
    instants t = k NT, where the sample-and-hold source lowers the variances only by
    1 - O(NT^2) (at NT = 0.1 tau: 0.33 % for x, 0.67 % for v, lc.held_noise_factors) - that
    known bias is added to the allowance. (Averaged over all times the velocity variance would
    drop by ~7 %: the held noise lacks the high frequencies the velocity responds to.)
    """
    n, T, h = 32, 750.0, 0.1
    t = Target.preset("lc-spu").replace(units=n)
    p = compile_computer(Computer.zeros(n, 0, J2=1.0, J4=0.0, kT=0.1), t)
    circ = p.artefact
    kT, J2, m = 0.1, float(p.realised.J2[0]), float(circ.mass[0])
    raw = run_batch(lc.netlist(circ, t_stop=T * circ.tau, seed=2, nt=h * circ.tau))
    st = lc.states(raw, circ)
    grid = np.arange(math.ceil(10 / h), math.floor(st["s"][-1] / h)) * h
    fx, fv = lc.held_noise_factors(m, 1.0, 2 * J2, h)
    for key, target, f in (("x", kT / (2 * J2), fx), ("u", kT / m, fv)):
        y = np.stack([np.interp(grid, st["s"], st[key][:, i]) for i in range(n)], axis=1)
        nb = int((grid[-1] - grid[0]) // 25)
        L = len(grid) // nb
        blocks = (y[:nb * L] ** 2).reshape(nb, L, n).mean(axis=1).ravel()
        est, se = blocks.mean(), blocks.std(ddof=1) / math.sqrt(blocks.size)
        assert se < 0.015 * target, (key, se / target)        # the test has power
        assert abs(est - target) < 4 * se + abs(1 - f) * target, (key, est / target - 1, se / target)


# ---- (e) the underdamped simulator --------------------------------------------------------
def test_underdamped_equipartition_linear_unit():
    """m = 0.5 (Q = 1), gamma = 1, V = x^2, kT = 0.1. Each of 4000 runs is time-averaged over
    20 time units after 5 of burn-in (from x = 0, thermal v); runs are independent, so the
    spread of the per-run averages gives the SE. The scheme's own O(dt) bias is known exactly
    (linear_stationary: +0.4 % at dt = 4e-3) and is added to the allowance."""
    c = Computer.zeros(1, 0, J2=1.0, J4=0.0, kT=0.1)
    R, dt, m = 4000, 4e-3, 0.5
    tr = simulate_underdamped(c, m, np.zeros((R, 1)), n_steps=round(25 / dt), dt=dt, seed=7, record_every=25)
    keep = tr.times >= 5
    vx, vv = linear_stationary(m, 1.0, 2.0, 0.1, dt)
    assert vx / 0.05 - 1 == pytest.approx(2.0 * dt / 2, rel=0.05)     # bias ~ k dt/(2 gamma)
    for y, exact, scheme in ((tr.x[keep, :, 0], 0.05, vx), (tr.v[keep, :, 0], 0.1 / m, vv)):
        per_run = (y ** 2).mean(axis=0)
        est, se = per_run.mean(), per_run.std(ddof=1) / math.sqrt(R)
        assert se < 0.01 * exact
        assert abs(est - scheme) < 4 * se
        assert abs(est - exact) < 4 * se + abs(scheme - exact)


def test_underdamped_step_tends_to_euler_maruyama():
    """At fixed dt, m -> 0 turns the step into x' = x - mu dt dV/dx + sqrt(2 mu kT dt) xi."""
    dt, g, kT = 1e-3, 2.0, 0.1
    k = step_coefficients(np.array([1e-12]), np.array([g]), np.array([kT]), dt)
    assert k["xF"][0] == pytest.approx(dt / g, rel=1e-8)
    assert math.hypot(k["lxv"][0], k["sx"][0]) == pytest.approx(math.sqrt(2 * kT * dt / g), rel=1e-8)
    assert k["xv"][0] == pytest.approx(1e-12 / g, rel=1e-8)
    # and small u: the series branches agree with the closed forms
    for u in (0.009, 0.011, 0.099, 0.101):
        a = step_coefficients(np.array([1.0]), np.array([u / dt]), np.array([kT]), dt)
        assert a["xF"][0] == pytest.approx((u + math.expm1(-u)) / (u / dt) ** 2, rel=1e-9)
        assert a["sx"][0] ** 2 == pytest.approx(kT * (2 * u - 4 * math.tanh(u / 2)) / (u / dt) ** 2, rel=1e-7)


def _compare(tu, to, R):
    """z-scores of the differences of mean and variance of x(t) between two batches."""
    xu, xo = tu.x[1:], to.x[1:]
    dm = xu.mean(1) - xo.mean(1)
    se_m = np.sqrt((xu.var(1) + xo.var(1)) / R)

    def var_se(x):  # SE of a sample variance, from the fourth central moment
        d = x - x.mean(1, keepdims=True)
        return np.sqrt(((d ** 4).mean(1) - (d ** 2).mean(1) ** 2) / R)

    dv = xu.var(1) - xo.var(1)
    se_v = np.sqrt(var_se(xu) ** 2 + var_se(xo) ** 2)
    return np.abs(dm / se_m).max(), np.abs(dv / se_v).max()


def test_underdamped_overdamped_limit_matches_langevin():
    """Two coupled quartic units relaxing from x0 = (1, -0.5): with Q = 0.02 (m = Q^2/2,
    inertial time 2e-4 << dt) the underdamped mean and variance of x(t) at 10 times agree with
    langevin.simulate's within 4.5 SE (20 comparisons); with Q = 1 they do not (the comparison
    has power)."""
    J = np.array([[0.0, 0.4], [0.4, 0.0]])
    c = Computer(J=J, b=np.array([0.2, -0.1]), mask=J != 0, n_visible=2, J2=1.0, J4=1.0, kT=0.1)
    R = 3000
    x0 = np.tile([1.0, -0.5], (R, 1))
    to = simulate(c, x0, n_steps=1000, dt=1e-3, seed=12, record_every=100)
    tu = simulate_underdamped(c, 0.02 ** 2 / 2, x0, n_steps=1000, dt=1e-3, seed=11, record_every=100)
    zm, zv = _compare(tu, to, R)
    assert zm < 4.5 and zv < 4.5, (zm, zv)
    tq = simulate_underdamped(c, 0.5, x0, n_steps=1000, dt=1e-3, seed=11, record_every=100)
    assert _compare(tq, to, R)[0] > 10


# ---- (f) checks ----------------------------------------------------------------------------
def test_checks_flag_lc_spu():
    p = compile_computer(random_computer(3, 3, seed=2), "lc-spu")
    v = checks(p)
    assert v["overdamping"]["Q"] == pytest.approx(1.0, rel=1e-3)   # R sqrt(C/L) = 1k sqrt(1n/1m)
    assert "underdamped" in v["overdamping"]["message"]
    assert p.scales["quality_factor"] == pytest.approx(1.0, rel=1e-12)
    assert p.scales["slow_rate_error"] is None                     # rings: no overdamped rate
    # L/R = 1 us makes the time unit 2 mu J2 L/R ~ 2 us, not the declared 10 us
    assert v["time_unit"]["tau_s"] == pytest.approx(2e-6, rel=2e-3)
    assert v["time_unit"]["tau_s_target"] == 1e-5
    assert p.scales["tau_s"] == p.artefact.tau


def test_checks_pass_for_a_consistent_overdamped_design():
    # Q = 0.02 (R = 20 ohm), tau_s = 2 L/R = 1e-4: even the quartic-stiffened bound stays < 0.1
    p = compile_computer(random_computer(2, 2, seed=2), lc_target(4, R=20.0, tau=1e-4))
    assert "overdamping" not in checks(p) and "time_unit" not in checks(p)
    assert p.scales["quality_factor"] == pytest.approx(0.02, rel=1e-12)
    assert float(slow_rate_error(0.02)) == pytest.approx(4e-4, rel=2e-3)
