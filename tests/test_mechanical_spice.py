"""The mechanical backend's force-current analogue netlist in the real ngspice (docs/design.md#mechanical):
Newton's law and the overdamped limit without noise, the stationary (Boltzmann, Maxwell) statistics
with the thermal force noise, the first law with given (pwl) noise, and golden-file reads of the
written netlist and parameter set back to realised.npz."""
import csv
import math
import re

import numpy as np
import pytest
import yaml
from scipy.integrate import solve_ivp

from conftest import random_computer
from test_backends_physical import mech_target, program, two_units
from thermohw import Computer, compile_computer
from thermohw.backends import lc, mechanical as me
from thermohw.errors import InputError
from thermohw.spice.engines import run

KB = 1.380649e-23
FIELDS = ("J", "b", "J2", "J4", "mu", "kT")
_SUFFIX = {"T": 1e12, "G": 1e9, "Meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
           "a": 1e-18}


def _v(tok: str) -> float:
    m = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(Meg|[TGkmunpfa])?", tok)
    assert m, f"not a SPICE number: {tok!r}"
    return float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1.0)


def with_q(c: Computer, q: float):
    """``c`` on the cantilever with the mass that gives quality factor q at x = 0 (Q = sqrt(k m)/gamma)."""
    a = program(c, mech_target()).artefact
    return program(c, mech_target(mass_kg=float((q * a.gamma[0]) ** 2 / a.k[0])))


def newton(c: Computer, mass: np.ndarray, x0, v0, s: np.ndarray) -> np.ndarray:
    """m x'' = -x'/mu - dV/dx in model units (the equation the netlist's KCL is), tightly integrated."""
    n = c.n_units
    f = lambda _, y: np.concatenate([y[n:], (-y[n:] / c.mu - c.grad(y[:n])) / mass])
    return solve_ivp(f, (0, s[-1]), np.concatenate([x0, v0]), t_eval=s, rtol=1e-10, atol=1e-12,
                     method="LSODA").y[:n].T


X0 = np.array([0.6, -0.5, 0.3, -0.2])
V0 = np.array([0.2, 0.0, -0.3, 0.1])


def test_noiseless_netlist_is_newtons_law_and_rings_when_underdamped():
    """4 coupled units at Q = 1, no noise: SPICE's displacement nodes follow the Newton ODE of the
    realised model with the array's masses (measured max error 8e-5; ngspice's reltol is 1e-3, so
    the bound 1e-3 of the unit-size motion), and differ from the overdamped drift by O(1)."""
    p = with_q(random_computer(2, 2, seed=3, scale=0.4), 1.0)
    a = p.artefact
    tf = 3.0
    nt = tf * a.tau_s / 300
    raw = run(me.spice_netlist(a, t_stop=tf * a.tau_s, nt=nt, seed=1, noise="none", x0=X0, pwl=None, title="t",
                               v0=V0))
    s = np.linspace(0, tf, 31)
    xs = me.spice_readout(raw, a, s * a.tau_s, X0)
    np.testing.assert_array_equal(xs[0], X0)
    ref = newton(p.realised, a.model_mass, X0, V0, s)
    assert np.max(np.abs(xs - ref)) < 1e-3
    over = solve_ivp(lambda _, x: -p.realised.mu * p.realised.grad(x), (0, tf), X0, t_eval=s, rtol=1e-10).y.T
    assert np.max(np.abs(xs - over)) > 0.1          # inertia: 0.25 measured


def test_overdamped_netlist_follows_the_models_own_drift():
    """At Q = 0.05 the same array follows the overdamped drift dx/ds = -mu dV/dx: the difference
    is the initial velocity's coast m mu |v0| plus the slow-rate error ~Q_b^2 of the motion, with
    Q_b the quality factor at the Gershgorin stiffness bound for |x| <= 1 (measured 0.0021 against
    the bound 0.012); and SPICE is Newton's law to 1e-4 (ngspice's reltol 1e-3 with steps up to NT;
    measured 1.6e-5)."""
    p = with_q(random_computer(2, 2, seed=3, scale=0.4), 0.05)
    a = p.artefact
    assert a.verdict == "overdamped"
    tf = 1.0
    nt = me.noise_interval(a, 0.05)
    k = math.ceil(tf * a.tau_s / nt)
    raw = run(me.spice_netlist(a, t_stop=tf * a.tau_s, nt=tf * a.tau_s / k, seed=1, noise="none", x0=X0,
                               pwl=None, title="t", v0=V0))
    s = np.linspace(0, tf, 21)
    xs = me.spice_readout(raw, a, s * a.tau_s, X0)
    assert np.max(np.abs(xs - newton(p.realised, a.model_mass, X0, V0, s))) < 1e-4
    c = p.realised
    over = solve_ivp(lambda _, x: -c.mu * c.grad(x), (0, tf), X0, t_eval=s, rtol=1e-10).y.T
    q_b = float(np.max(np.sqrt(me.stiffness_bound(a) * a.mass) / a.gamma))
    bound = float(np.max(a.model_mass * c.mu * np.abs(V0))) + q_b ** 2 * float(np.max(np.abs(over - X0)))
    assert np.max(np.abs(xs - over)) < bound


def test_overdamped_netlist_driven_by_given_noise_is_the_models_euler_chain():
    """Q = 0.05, pwl noise z held NT = dt = 0.005 tau: SPICE against the realised model's Euler
    chain driven by the same z (cosim's paired mode). Force held for NT = 4 m/gamma moves X by the
    Euler increment, delayed by the inertial time m/gamma, so the states differ by ~ m mu x the
    noise velocity sqrt(2 mu kT/dt) = 0.0079 rms (measured 0.0080); bound 1.5x that, which is
    6 % of the final spread (0.13)."""
    from thermohw.langevin import simulate

    p = with_q(random_computer(2, 2, seed=3, scale=0.4), 0.05)
    a, c = p.artefact, p.realised
    K, dt = 200, 0.005
    nt = dt * a.tau_s
    z = np.random.default_rng(0).standard_normal((K, 4))
    raw = run(me.spice_netlist(a, t_stop=K * nt, nt=nt, seed=1, noise="pwl", x0=X0, pwl=z, title="t",
                               v0=np.zeros(4)))
    xs = me.spice_readout(raw, a, np.arange(K + 1) * nt, X0)
    xi = simulate(c, X0[None], n_steps=K, dt=dt, noise=z[:, None, :], record_every=1, stratonovich=False,
                  threads=1).x[:, 0, :]
    lag = float(np.max(a.model_mass * c.mu * np.sqrt(2 * c.mu * c.kT / dt)))
    assert np.sqrt(np.mean((xs - xi) ** 2)) < 1.5 * lag


def test_stationary_statistics_are_boltzmann_and_maxwell():
    """2 coupled units (J2 = 1, 0.8; J4 = 0.25; b = +-0.1; J12 = -0.3; kT = 0.1) at Q = 1, one
    trrandom run of 600 tau: position moments against the Boltzmann distribution exp(-V/kT)
    (quadrature), velocity variances against kT/m times the exact held-noise factor of the linear
    unit sampled at the hold instants (lc.held_noise_factors; 0.994 here). Tolerance: 4 standard
    errors from 20 batch means of 29.5 tau each (batches >> the ~1 tau correlation time)."""
    c = two_units(J2=[1.0, 0.8], J4=[0.25, 0.25], b=[0.1, -0.1], J12=-0.3, mu=[1.0, 1.0])
    p = with_q(c, 1.0)
    a = p.artefact
    T = 600.0
    k = math.ceil(T * a.tau_s / me.noise_interval(a, 0.1))
    k -= k % 8
    nt = T * a.tau_s / k
    raw = run(me.spice_netlist(a, t_stop=T * a.tau_s, nt=nt, seed=11, noise="trrandom", x0=np.zeros(2), pwl=None,
                               title="t", v0=np.zeros(2)))
    st = me.states(raw, a)
    grid = np.arange(k // 60, k + 1, 8) * nt               # hold instants, after 10 tau of relaxation
    x = np.stack([np.interp(grid, st["t"], st["x"][:, i]) for i in range(2)], axis=1)
    u = np.stack([np.interp(grid, st["t"], st["u"][:, i]) for i in range(2)], axis=1)
    g = np.linspace(-2.5, 2.5, 801)
    XY = np.stack([a.ravel() for a in np.meshgrid(g, g, indexing="ij")], axis=1)
    V = c.energy(XY)
    w = np.exp(-(V - V.min()) / 0.1)
    w /= w.sum()
    h = nt / a.tau_s
    fac = [lc.held_noise_factors(a.model_mass[i], 1 / c.mu[i], 2 * c.J2[i], h)[1] for i in range(2)]
    checks = {"<x0>": (x[:, 0], XY[:, 0] @ w), "<x1>": (x[:, 1], XY[:, 1] @ w),
              "<x0^2>": (x[:, 0] ** 2, XY[:, 0] ** 2 @ w), "<x1^2>": (x[:, 1] ** 2, XY[:, 1] ** 2 @ w),
              "<x0 x1>": (x[:, 0] * x[:, 1], (XY[:, 0] * XY[:, 1]) @ w),
              "<u0^2>": (u[:, 0] ** 2, fac[0] * 0.1 / a.model_mass[0]),
              "<u1^2>": (u[:, 1] ** 2, fac[1] * 0.1 / a.model_mass[1])}
    for name, (obs, exact) in checks.items():
        b = obs[: len(obs) // 20 * 20].reshape(20, -1).mean(axis=1)
        se = b.std(ddof=1) / math.sqrt(20)
        assert abs(obs.mean() - exact) < 4 * se, (name, obs.mean(), exact, se)


def test_pwl_noise_first_law_and_energy_units():
    """Given standard normals, held NT each: the measured work of the noise force,
    int V(u) I dt with I = spice_pwl_current (power-scaled: eps/tau x the injected analogue current),
    equals the first-law value
    dissipated + stored change of spice_energy to 1 % of the dissipation (trapezoid on ngspice's
    own points, as cosim's RC check); the thermal force noise carries 2 gamma k_B T."""
    p = with_q(random_computer(2, 2, seed=4, scale=0.3), 0.5)
    a = p.artefact
    z = np.random.default_rng(7).standard_normal((200, 4))
    nt = 2.0 * a.tau_s / 200
    raw = run(me.spice_netlist(a, t_stop=2.0 * a.tau_s, nt=nt, seed=1, noise="pwl", x0=X0, pwl=z, title="t", v0=V0))
    e = me.spice_energy(raw, a)
    cur = me.spice_pwl_current(a, nt, z)
    np.testing.assert_allclose((cur * a.tau_s / a.energy_unit_J) ** 2 * nt / z ** 2, np.broadcast_to(a.s2, z.shape),
                               rtol=1e-12)
    np.testing.assert_allclose(a.s2 * a.force_scale_N ** 2, 2 * a.gamma * KB * a.temperature, rtol=1e-12)
    st = me.states(raw, a)
    t = st["t"]
    kk = np.minimum((t / nt * (1 + 1e-12)).astype(np.int64), 199)
    measured = np.trapezoid(np.einsum("ti,ti->t", st["u"], cur[kk]), t)
    assert e["dissipated_J"] > 0 and e["stored_delta_J"] == pytest.approx(e["kinetic_delta_J"] + e["potential_delta_J"])
    assert abs(measured - e["noise_delivered_J"]) < 0.01 * e["dissipated_J"]
    assert e["heat_J"] == pytest.approx(-e["stored_delta_J"])


def test_netlist_refuses_bad_input_and_keeps_text_in_comments():
    a = program(random_computer(1, 1, seed=0), mech_target()).artefact
    kw = dict(t_stop=a.tau_s, nt=a.tau_s / 10, x0=np.zeros(2), pwl=None)
    txt = me.spice_netlist(a, seed=3, noise="none", title="x\n.control\nshell rm -rf /", **kw)
    assert not any(ln.lower().startswith((".control", "shell")) for ln in txt.splitlines())
    for bad, msg in ((dict(seed=0, noise="trrandom"), "seed"), (dict(seed=1, noise="trnoise"), "noise"),
                     (dict(seed=1, noise="pwl"), "pwl noise"), (dict(seed=1, noise="none", w0=1), "unknown start")):
        with pytest.raises(InputError, match=msg):
            me.spice_netlist(a, title="t", **kw, **bad)
    with pytest.raises(InputError, match="plain file name"):
        me.netlist(a, t_stop=a.tau_s, noise="pwl", noise_include="../x.inc")


# ---------------------------------------------------------------------------------------------
# golden files (hls4ml style): what compile wrote, read back to the model, equals realised.npz
# ---------------------------------------------------------------------------------------------
def _read_netlist(text: str) -> dict:
    """The model a chip.cir implements, from its element values and header scales only (the inverse
    of docs/design.md#mechanical: k = GK F_s/l, alpha = BA F_s/l^3, F = IF F_s, kappa = GC F_s/l,
    gamma = F_s tau/(RD l), m = CM F_s tau/l, k_B T = NA^2 NT F_s^2/(2 gamma))."""
    head = next(ln for ln in text.splitlines() if ln.startswith("* scales:"))
    l, tau, eps, fs = [float(v) for v in re.findall(r"= ([-+\d.e]+) ", head + " ")][:4]
    el: dict = {}
    for ln in text.splitlines():
        tok = ln.split()
        if not tok or tok[0][0] in "*.":
            continue
        name = tok[0]
        if name.startswith("BA"):
            el[name] = _v(tok[3].split("=")[1].split("*")[0])
        elif name.startswith("IN"):
            args = ln.split("TRRANDOM(")[1].rstrip(")").split()
            el[name] = (_v(args[1]), _v(args[3]))
        elif name.startswith("IF"):
            el[name] = _v(tok[4])
        else:
            el[name] = _v(tok[-1])
    n = sum(1 for k in el if k.startswith("CM"))
    kap = np.zeros((n, n))
    for k_, v in el.items():
        if k_.startswith("GC"):
            i, j = map(int, k_[2:].split("_"))
            kap[i, j] = v * fs / l
    k = np.array([el[f"GK{i}"] for i in range(n)]) * fs / l
    alpha = np.array([el.get(f"BA{i}", 0.0) for i in range(n)]) * fs / l ** 3
    F = np.array([el.get(f"IF{i}", 0.0) for i in range(n)]) * fs
    gamma = fs * tau / (np.array([el[f"RD{i}"] for i in range(n)]) * l)
    mass = np.array([el[f"CM{i}"] for i in range(n)]) * fs * tau / l
    nt = np.array([el[f"IN{i}"][0] for i in range(n)])
    kBT = np.array([el[f"IN{i}"][1] for i in range(n)]) ** 2 * nt * fs ** 2 / (2 * gamma)
    return {"J": kap * l * l / eps, "b": -F * l / eps, "J2": k * l ** 2 / (2 * eps), "J4": alpha * l ** 4 / (4 * eps),
            "mu": tau * eps / (gamma * l ** 2), "kT": kBT / eps, "mass_kg": mass}


def _read_parameter_set(folder) -> dict:
    """The model oscillators.yaml + couplings.csv describe (the same inverse, from SI values)."""
    d = yaml.safe_load((folder / "oscillators.yaml").read_text())
    eps, tau = d["energy_per_model_unit_J"], d["tau_s"]
    o = {k: np.array([r[k] for r in d["oscillators"]]) for k in d["oscillators"][0]}
    l = o["length_scale_m"]
    n = len(l)
    J = np.zeros((n, n))
    with open(folder / "couplings.csv") as fh:
        for r in csv.DictReader(fh):
            i, j = int(r["i"]), int(r["j"])
            J[i, j] = J[j, i] = float(r["kappa_N_per_m"]) * l[i] * l[j] / eps
    return {"J": J, "b": -o["bias_force_N"] * l / eps, "J2": o["stiffness_N_per_m"] * l ** 2 / (2 * eps),
            "J4": o["duffing_N_per_m3"] * l ** 4 / (4 * eps), "mu": tau * eps / (o["damping_kg_per_s"] * l ** 2),
            "kT": KB * o["temperature_K"] / eps, "mass_kg": o["mass_kg"]}


@pytest.mark.parametrize("target", ["mechanical-cantilever", "mechanical-overdamped"])
def test_golden_netlist_and_parameter_set_read_back_to_realised(tmp_path, target):
    """Per-unit J2 (the trims) and random couplings/biases; netlist values carry 12 significant
    digits (spice.netlist.eng), hence rtol 1e-9; the YAML/CSV carry repr() floats (rtol 1e-12)."""
    c = random_computer(4, 2, seed=5, scale=0.3).replace(J2=np.array([0.8, 1.0, 1.2, 0.9, 1.1, 1.0]))
    p = compile_computer(c, target)
    p.save(tmp_path)
    real = Computer.load(tmp_path / "realised.npz")
    text = (tmp_path / "chip.cir").read_text()
    assert ".options seed=1" in text and " uic" in text.splitlines()[-2]
    for read, rtol in ((_read_netlist(text), 1e-9), (_read_parameter_set(tmp_path), 1e-12)):
        for f in FIELDS:
            want = np.where(real.mask, real.J, 0.0) if f == "J" else getattr(real, f)
            np.testing.assert_allclose(read[f], want, rtol=rtol, atol=rtol * float(np.max(np.abs(want))), err_msg=f)
        np.testing.assert_allclose(read["mass_kg"], p.target.physics.mass_kg, rtol=rtol)
    # the start state written as .ic is the generation protocol's (positions; velocities Maxwell)
    from thermohw.backends import generation_start

    ic = dict(re.findall(r"v\((\w+)\)=(\S+)", next(ln for ln in text.splitlines() if ln.startswith(".ic"))))
    x0 = generation_start(p)[1]
    np.testing.assert_allclose([_v(ic[f"p{i}"]) for i in range(6)], x0, rtol=1e-9)


def test_compile_writes_a_pwl_netlist_that_runs(tmp_path):
    """--noise pwl: noise.inc holds the held sources IN<i> into u<i>; ngspice runs the netlist."""
    from thermohw.backends import pwl
    from thermohw.compile import CompileOptions

    c = random_computer(2, 2, seed=1)
    p = compile_computer(c, "mechanical-cantilever", CompileOptions(noise="pwl", t_f=0.5))
    p.save(tmp_path)
    rec = pwl.load(tmp_path / "noise.npz")
    text = (tmp_path / "chip.cir").read_text()
    assert ".include noise.inc" in text and "TRRANDOM" not in text
    # the engine runs the text in a temporary folder: inline the include there
    inlined = text.replace(".include noise.inc", (tmp_path / "noise.inc").read_text())
    raw = run(inlined)
    a = p.artefact
    assert raw["time"][-1] == pytest.approx(0.5 * a.tau_s, rel=1e-9)
    np.testing.assert_allclose(rec["amplitude_A"], np.sqrt(a.s2 / rec["nt_s"]), rtol=1e-12)
    assert me.states(raw, a)["x"].shape[1] == 4
