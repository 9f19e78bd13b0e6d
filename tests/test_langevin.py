import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

from thermohw import Computer, DivergenceError, InputError, Protocol, generate, simulate
from thermohw.langevin import noising_field

from conftest import random_computer


def gaussian_computer(seed=3):
    """4 coupled linear units (J4 = 0), dense couplings, nonzero biases."""
    c = random_computer(2, 2, seed=seed, scale=0.4, connectivity="dense", J4=0.0)
    assert np.linalg.eigvalsh(c.J + np.diag(2 * c.J2))[0] > 0.5
    return c


def test_stationary_covariance_matches_lyapunov_solution():
    """J4 = 0: x' = M x - mu dt b + sigma xi with M = I - mu dt A, A = 2 diag(J2) + J.
    The Euler chain's exact stationary law is Gaussian with mean -A^-1 b and covariance
    solving Sigma = M Sigma M^T + 2 mu kT dt I (discrete Lyapunov; -> kT A^-1 as dt -> 0)."""
    c = gaussian_computer()
    dt, n_runs = 0.01, 20_000
    A = c.J + np.diag(2 * c.J2)
    mean = -np.linalg.solve(A, c.b)
    M = np.eye(c.n_units) - c.mu[0] * dt * A
    sigma = solve_discrete_lyapunov(M, 2 * c.mu[0] * c.kT[0] * dt * np.eye(c.n_units))
    # start at the mean with zero spread; after t = 5 the transient is e^(-2 lambda_min t) < 1e-4
    tr = simulate(c, np.tile(mean, (n_runs, 1)), n_steps=500, dt=dt, seed=11, stratonovich=False)
    x = tr.x_final
    # sampling error of a Gaussian covariance estimate: var(S_ij) = (S_ii S_jj + S_ij^2)/n
    S = np.cov(x.T)
    se = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma ** 2) / n_runs)
    z = (S - sigma) / se
    iu = np.triu_indices(c.n_units)
    assert np.max(np.abs(z[iu])) < 4.0, z  # 10 entries: family-wise false alarm < 1e-3
    zm = (x.mean(0) - mean) / np.sqrt(np.diag(sigma) / n_runs)
    assert np.max(np.abs(zm)) < 4.0
    # and the continuum solution kT A^-1 differs from the Euler one only at O(dt)
    cont = c.kT[0] * np.linalg.inv(A)
    assert np.max(np.abs(sigma - cont) / np.abs(cont).max()) < 2 * dt * np.linalg.eigvalsh(A)[-1]


def test_same_seed_identical_and_thread_count_irrelevant():
    c = random_computer(5, 5, seed=4)
    x0 = np.zeros((150, c.n_units))  # 3 noise blocks
    a = simulate(c, x0, n_steps=50, dt=1e-3, seed=9, threads=1)
    b = simulate(c, x0, n_steps=50, dt=1e-3, seed=9, threads=2)
    d = simulate(c, x0, n_steps=50, dt=1e-3, seed=10, threads=1)
    np.testing.assert_array_equal(a.x_final, b.x_final)
    np.testing.assert_array_equal(a.heat, b.heat)
    assert not np.allclose(a.x_final, d.x_final)


def test_heat_formulas_agree_to_discretisation_error():
    """V(x0) - V(xf) and the Stratonovich sum differ only through the trapezoid rule's error
    on the quartic term, -J4 (2 x dx^3 + dx^4) per step, which sums to O(dt)."""
    c = random_computer(4, 4, seed=5, scale=0.5)
    gaps = []
    for dt in (1e-3, 2.5e-4):
        tr = generate(c, 400, t_f=0.5, dt=dt, seed=1, t_eq=0.5)
        gaps.append(np.mean(np.abs(tr.heat - tr.heat_strat)))
        sd = np.std(tr.heat)
        assert gaps[-1] < 0.02 * sd, (gaps[-1], sd)
    assert gaps[0] / gaps[1] > 2.5, gaps  # first order: ratio 4 expected


def test_time_dependent_protocol_first_law():
    """With an imposed time-dependent bias, heat = W - dV must still equal the Stratonovich sum."""
    c = random_computer(3, 3, seed=6)
    h = np.linspace(-1, 1, c.n_units)
    p = Protocol(h, "linear_decay", t_off=0.3)
    tr = simulate(c, np.zeros((300, c.n_units)), n_steps=400, dt=1e-3, seed=2, protocol=p)
    assert np.all(tr.work != 0)
    gap = np.abs(tr.heat - tr.heat_strat)
    assert np.mean(gap) < 0.02 * np.std(tr.heat)
    # an envelope that ended at t_off: no work after it
    assert p.envelope(0.0) == 1.0 and p.envelope(0.15) == pytest.approx(0.5) and p.envelope(0.5) == 0.0


def test_recording_snapshots():
    c = random_computer(2, 2, seed=7)
    x0 = np.full((3, c.n_units), 0.2)
    tr = simulate(c, x0, n_steps=10, dt=1e-3, seed=0, record_every=4)
    np.testing.assert_allclose(tr.times, [0, 0.004, 0.008, 0.010])
    assert tr.x.shape == (4, 3, c.n_units)
    np.testing.assert_array_equal(tr.x[0], x0)
    np.testing.assert_array_equal(tr.x[-1], tr.x_final)


def test_trajectory_save_load(tmp_path):
    c = random_computer(2, 2, seed=8)
    tr = generate(c, 5, t_f=0.01, dt=1e-3, seed=0, record_every=5)
    p = tr.save(tmp_path / "t.npz")
    z = np.load(p, allow_pickle=False)
    assert z["x_final"].shape == (5, 4) and z["heat_kT"].shape == (5,)
    from thermohw import Trajectory

    back = Trajectory.load(p)
    np.testing.assert_array_equal(back.x, tr.x)
    np.testing.assert_array_equal(back.heat_kT, tr.heat_kT)


def test_divergence_is_reported_with_the_fix():
    c = random_computer(2, 2, seed=1)
    with pytest.raises(DivergenceError, match=r"use dt <"):
        simulate(c, np.zeros((1, 4)), n_steps=10, dt=2.0, seed=0)
    # start beyond the quartic Euler escape radius sqrt((2/(mu dt) - 2 J2)/(4 J4)) = 22.3: it runs away
    with pytest.raises(DivergenceError, match="reduce dt"):
        simulate(c, np.full((2, 4), 30.0), n_steps=100, dt=1e-3, seed=0)
    with pytest.raises(InputError, match="x0 has"):
        simulate(c, np.zeros((2, 5)), n_steps=1, dt=1e-3)


def test_noising_field_projects_pattern_onto_hidden_units():
    p = np.array([1.0, -2.0, 3.0])
    h = noising_field(p, 7, 3)
    np.testing.assert_array_equal(h, -2 * np.array([1, -2, 3, 1, -2, 3, 1.0]))
    with pytest.raises(InputError):
        noising_field(np.ones(4), 7, 3)


def test_generation_starts_from_coupling_free_equilibrium():
    """Phase 1 equilibrates the coupling-free computer: x0 must follow the single-unit
    Boltzmann law p(x) ~ exp(-(J2 x^2 + J4 x^4)/kT); compare its second moment."""
    c = random_computer(4, 4, seed=2)
    tr = generate(c, 2000, t_f=0.001, dt=1e-3, seed=3, t_eq=2.5)
    xs = np.linspace(-3, 3, 20001)
    w = np.exp(-(xs ** 2 + xs ** 4) / 0.1)
    m2 = np.sum(xs ** 2 * w) / np.sum(w)
    m4 = np.sum(xs ** 4 * w) / np.sum(w)
    est = np.mean(tr.x0 ** 2)
    se = np.sqrt((m4 - m2 ** 2) / tr.x0.size)  # units independent
    assert abs(est - m2) < 4 * se + 1e-3 * m2, (est, m2, se)


def test_seed_sequence_objects_are_reusable_and_inputs_validated():
    c = random_computer(2, 2, seed=3)
    ss = np.random.SeedSequence(42)
    a = simulate(c, np.zeros((3, 4)), n_steps=20, dt=1e-3, seed=ss)
    b = simulate(c, np.zeros((3, 4)), n_steps=20, dt=1e-3, seed=ss)
    np.testing.assert_array_equal(a.x_final, b.x_final)
    # an int seed and its SeedSequence are the same streams
    d = simulate(c, np.zeros((3, 4)), n_steps=20, dt=1e-3, seed=42)
    np.testing.assert_array_equal(a.x_final, d.x_final)
    g1, g2 = generate(c, 3, t_f=0.01, dt=1e-3, seed=ss), generate(c, 3, t_f=0.01, dt=1e-3, seed=ss)
    np.testing.assert_array_equal(g1.x_final, g2.x_final)
    for kw, msg in ((dict(n_steps=10.7), "whole number"), (dict(n_steps=5, record_every=-3), "record_every"),
                    (dict(n_steps=5, dt=np.array([1e-3, 2e-3])), "dt")):
        kw.setdefault("dt", 1e-3)
        with pytest.raises(InputError, match=msg):
            simulate(c, np.zeros((1, 4)), **kw)


def test_sparse_coupling_product_matches_dense():
    """A lattice-like computer (1 % of J nonzero) takes the CSR path by default; it must give
    the dense path's trajectory to rounding."""
    rng = np.random.default_rng(5)
    n = 300
    J = np.zeros((n, n))
    for i in range(n - 1):
        J[i, i + 1] = J[i + 1, i] = rng.normal(0, 0.3)
    c = Computer(J=J, b=rng.normal(0, 0.1, n), mask=J != 0, n_visible=0)
    x0 = rng.normal(0, 0.2, (70, n))
    a = simulate(c, x0, n_steps=200, dt=1e-3, seed=1)                 # sparse by default
    b = simulate(c, x0, n_steps=200, dt=1e-3, seed=1, sparse=False)
    np.testing.assert_allclose(a.x_final, b.x_final, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.heat_strat, b.heat_strat, rtol=1e-9, atol=1e-12)
