"""RC backend against the real ngspice: netlists parse and run, the stationary
statistics match the realised model, the seeded noise is reproducible."""
import math

import numpy as np
import pytest

from thermohw import Computer
from thermohw.backends import rc
from thermohw.compile import compile_computer
from thermohw.spice import find_ngspice, run_batch
from thermohw.target import Target

from conftest import random_computer

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("ngspice") is None,
    reason="ngspice not installed (apt-get install -y ngspice libngspice0)")


def ideal_rc_target(units=64):
    """The rc preset with ideal resistors (no E-series) so element values are exact."""
    t = Target.preset("rc-8bit-dense")
    return t.replace(units=units, components={"resistor_series": None}, diagonal=None)


def copies(c: Computer, k: int) -> Computer:
    """k uncoupled copies of a computer in one (block-diagonal) computer: k x the samples per run."""
    n = c.n_units
    J = np.kron(np.eye(k), c.J)
    return Computer(J=J, b=np.tile(c.b, k), mask=J != 0, n_visible=0, J2=np.tile(c.J2, k), J4=np.tile(c.J4, k),
                    mu=np.tile(c.mu, k), kT=np.tile(c.kT, k))


def sample_grid(raw, circ, n_units, t0, dt):
    """Node voltages resampled at t0, t0 + dt, ... (ngspice's time points are adaptive)."""
    t = raw["time"]
    grid = np.arange(t0, t[-1], dt)
    return np.stack([np.interp(grid, t, raw[f"v(u{i})"]) for i in range(n_units)], axis=1) / circ.V_s


def test_netlist_runs_and_nodes_map_to_units():
    c = random_computer(3, 3, seed=1)
    p = compile_computer(c, "rc-8bit-dense")
    raw = run_batch(rc.netlist(p.artefact, t_stop=2e-7, seed=3))
    assert raw.names == ("time",) + tuple(f"v(u{i})" for i in range(6))
    assert raw["time"][-1] == pytest.approx(2e-7)


def test_lone_linear_unit_variance_matches_s2_over_2gC():
    """16 uncoupled linear units (J4 = 0, J2 = 1, kT = 0.1): var(v) -> s^2/(2 g C) times the
    sample-and-hold factor tanh(x/2)/(x/2), x = NT/tau. Run length 2400 tau per unit with 16
    units: the relative standard error of the variance (from the spread of the 16 independent
    units) is ~0.8 %, so the 3 % band is > 3.5 sigma."""
    lone = Computer(J=np.zeros((1, 1)), b=np.zeros(1), mask=np.zeros((1, 1), bool), n_visible=0, J2=1.0, J4=0.0)
    c = copies(lone, 16)
    p = compile_computer(c, ideal_rc_target())
    circ = p.artefact
    g, C, s2 = circ.g[0], circ.C[0], circ.s2[0]
    tau = C / g
    nt = tau / 20
    raw = run_batch(rc.netlist(circ, t_stop=2400 * tau, nt=nt, seed=5))
    x = sample_grid(raw, circ, 16, t0=20 * tau, dt=nt) * circ.V_s  # volts, at the hold instants
    expected = s2 / (2 * g * C) * rc.held_noise_variance_factor(nt / tau)
    v = x.var(axis=0)  # one estimate per independent unit
    est = v.mean()
    se = v.std(ddof=1) / math.sqrt(v.size)
    assert se / expected < 0.01, "the test lost its statistical power"
    assert abs(est / expected - 1) < 0.03, (est, expected, se)
    assert abs(est - expected) < 4 * se + 0.002 * expected
    # the model-unit statement of the same fact: var(x) = kT / (2 J2) (continuum limit)
    assert est / circ.V_s ** 2 == pytest.approx(0.1 / 2 * rc.held_noise_variance_factor(nt / tau), rel=0.03)


def test_coupled_three_unit_covariance_matches_gaussian_solution():
    """3 coupled linear units, 16 uncoupled copies in one netlist: the ngspice covariance of x
    equals kT A^-1 (A = 2 diag J2 + J of the *realised* model) within sampling error. The
    copies are exactly independent, so the spread of their 16 estimates gives an honest
    standard error (t-distribution with 15 dof: |t| < 4.5 has false-alarm rate ~5e-4)."""
    J = np.array([[0, 0.5, -0.3], [0.5, 0, 0.4], [-0.3, 0.4, 0]])
    base = Computer(J=J, b=np.array([0.05, -0.1, 0.0]), mask=J != 0, n_visible=0, J2=1.0, J4=0.0)
    k = 16
    p = compile_computer(copies(base, k), ideal_rc_target())
    real = p.realised
    A = real.J[:3, :3] + np.diag(2 * real.J2[:3])
    sigma = real.kT[0] * np.linalg.inv(A)
    mean = -np.linalg.solve(A, real.b[:3])
    circ = p.artefact
    tau = circ.C[0] / circ.g[0]
    nt = tau / 40  # held-noise variance factor 0.99995: negligible here
    raw = run_batch(rc.netlist(circ, t_stop=800 * tau, nt=nt, seed=7))
    xs = sample_grid(raw, circ, 3 * k, t0=30 * tau, dt=nt).reshape(-1, k, 3)
    covs = np.array([np.cov(xs[:, i].T) for i in range(k)])
    S, se = covs.mean(0), covs.std(0, ddof=1) / math.sqrt(k)
    t = (S - sigma) / se
    assert np.max(np.abs(t)) < 4.5, (S, sigma, t)
    means = xs.mean(axis=0)
    tm = (means.mean(0) - mean) / (means.std(0, ddof=1) / math.sqrt(k))
    assert np.max(np.abs(tm)) < 4.5, tm
    # power: the diagonal is known to ~1.5 %, so a 10 % temperature error would be caught
    assert np.max(se.diagonal() / sigma.diagonal()) < 0.025


def test_seeded_noise_is_reproducible():
    c = random_computer(2, 2, seed=2)
    p = compile_computer(c, "rc-8bit-dense")
    net = lambda s: rc.netlist(p.artefact, t_stop=1e-7, seed=s)
    a, b, d = run_batch(net(11)), run_batch(net(11)), run_batch(net(12))
    np.testing.assert_array_equal(a["v(u0)"], b["v(u0)"])
    assert not np.array_equal(a["v(u0)"][: len(d["v(u0)"])], d["v(u0)"][: len(a["v(u0)"])])
