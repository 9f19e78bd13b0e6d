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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stationary_covariance_matches_lyapunov_solution(dtype):
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
    tr = simulate(c, np.tile(mean, (n_runs, 1)), n_steps=500, dt=dt, seed=11, stratonovich=False, dtype=dtype)
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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_seed_identical_and_thread_count_irrelevant(dtype):
    c = random_computer(5, 5, seed=4)
    x0 = np.zeros((150, c.n_units))  # 3 noise blocks
    a = simulate(c, x0, n_steps=50, dt=1e-3, seed=9, threads=1, dtype=dtype)
    b = simulate(c, x0, n_steps=50, dt=1e-3, seed=9, threads=2, dtype=dtype)
    t = simulate(c, x0, n_steps=50, dt=1e-3, seed=9, threads=3, dtype=dtype)
    d = simulate(c, x0, n_steps=50, dt=1e-3, seed=10, threads=1, dtype=dtype)
    for other in (b, t):
        np.testing.assert_array_equal(a.x_final, other.x_final)
        np.testing.assert_array_equal(a.heat, other.heat)
        np.testing.assert_array_equal(a.heat_strat, other.heat_strat)
    assert a.dtype == dtype
    assert not np.allclose(a.x_final, d.x_final)
    # a run done in chunks of whole blocks (thermohw sample) reproduces the single run
    whole = generate(c, 150, t_f=0.02, dt=1e-3, seed=3, dtype=dtype)
    parts = [generate(c, k, t_f=0.02, dt=1e-3, seed=3, first_block=b0, dtype=dtype)
             for k, b0 in ((64, 0), (86, 1))]
    np.testing.assert_array_equal(whole.x_final, np.concatenate([p.x_final for p in parts]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_heat_formulas_agree_to_discretisation_error(dtype):
    """V(x0) - V(xf) and the Stratonovich sum differ only through the trapezoid rule's error
    on the quartic term, -J4 (2 x dx^3 + dx^4) per step, which sums to O(dt). (float32: the
    sum is accumulated in float64, so its rounding stays far below that error.)"""
    c = random_computer(4, 4, seed=5, scale=0.5)
    gaps = []
    for dt in (1e-3, 2.5e-4):
        tr = generate(c, 400, t_f=0.5, dt=dt, seed=1, t_eq=0.5, dtype=dtype)
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


# ---------------------------------------------------------------------------------------------
# the counter-based Gaussian noise (thermohw.gaussian) and the float32 path
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_gaussian_moments_tails_and_independence(dtype):
    """2.6 M normals from 2000 rows of 8 streams. Each check is a z-score against its exact
    sampling error under the null (standard normal, independent): mean 1/sqrt(n), variance
    sqrt(2/n), E z^3 sqrt(15/n), E z^4 - 3 sqrt(96/n); tail counts are binomial. |z| < 5 for
    each of the ~12 checks: family-wise false alarm < 1e-5."""
    from scipy import stats

    from thermohw.gaussian import fill_rows

    R, N = 2000, 1296
    rows = np.arange(R)
    z = fill_rows(np.empty((R, N), dtype), np.arange(8, dtype=np.uint64)[rows % 8] * np.uint64(7919),
                  rows // 8 % 64, 5, 64).astype(np.float64)
    v = z.ravel()
    n = v.size
    zs = {"mean": v.mean() * np.sqrt(n), "var": (v.var() - 1) / np.sqrt(2 / n),
          "m3": np.mean(v ** 3) / np.sqrt(15 / n), "m4": (np.mean(v ** 4) - 3) / np.sqrt(96 / n)}
    for a in (2.0, 3.0, 4.0, 4.5):
        p = 2 * stats.norm.sf(a)
        zs[f"P(|z|>{a})"] = (np.count_nonzero(np.abs(v) > a) - n * p) / np.sqrt(n * p * (1 - p))
    # the two halves of a row come from the same 64-bit words (Box-Muller pairs); neighbours in
    # a row, and the same unit in neighbouring rows/streams, from neighbouring counters or keys
    P = N // 2
    for name, a, b in (("pair", z[:, :P], z[:, P:]), ("next unit", z[:, :-1], z[:, 1:]),
                       ("next row", z[:-1], z[1:])):
        zs[name] = np.mean(a * b) * np.sqrt(a.size)
    bad = {k: round(float(x), 2) for k, x in zs.items() if not abs(x) < 5}
    assert not bad, bad
    # the whole distribution: Kolmogorov-Smirnov on 200 k values (p > 1e-4)
    assert stats.kstest(v[::13][:200_000], "norm").pvalue > 1e-4
    assert np.abs(v).max() < 6.8  # Box-Muller from 32-bit u1 cannot exceed sqrt(2 ln 2^33) = 6.76


def test_float32_and_float64_noise_are_the_same_bits():
    from thermohw.gaussian import fill_rows

    args = (np.array([3, 3], dtype=np.uint64), np.array([0, 1]), 7, 64)
    a = fill_rows(np.empty((2, 101)), *args)
    b = fill_rows(np.empty((2, 101), np.float32), *args)
    # float32 Box-Muller: u1 rounded to 24 bits, so |dz| <~ 1e-7 / r where r = |pair| is tiny
    assert np.max(np.abs(a - b)) < 1e-4 and np.median(np.abs(a - b)) < 1e-6
    assert not np.array_equal(a[0], a[1])


def test_float32_paired_with_float64_within_rounding():
    """Same seed, so same noise: the float32 state differs from the float64 one only by
    rounding. Each step adds errors of a few float32 ulps of the state, |e| <= 4 u X
    (u = 2^-24, X = max |x|), and the dynamics contract them by (1 - mu dt lam_min) per step
    (lam_min: smallest curvature of V, > 0 for this convex model), so |dx| <= 4 u X / (mu dt
    lam_min) however long the run. The first-law heat moves by grad V . dx <= |grad V|_1 max|dx|.
    Both bounds are worst cases (errors adding up with one sign): measured, the states differ
    by 1/50 of the bound; a float16 state would exceed it ~100x, other noise ~10^4 x."""
    c = random_computer(8, 8, seed=12, scale=0.2)
    lam = 2 * c.J2.min() + np.linalg.eigvalsh(c.J)[0]  # the quartic term only adds curvature
    assert lam > 0.5
    dt = 1e-2
    a = generate(c, 256, t_f=2.0, dt=dt, seed=4, dtype="float64")
    b = generate(c, 256, t_f=2.0, dt=dt, seed=4, dtype="float32")
    u, X = 2.0 ** -24, max(np.abs(a.x_final).max(), np.abs(a.x0).max())
    tol_x = 4 * u * X / (c.mu[0] * dt * lam)
    for name in ("x0", "x_final"):
        err = np.abs(getattr(a, name) - getattr(b, name)).max()
        assert 0 < err < tol_x, (name, err, tol_x)
    gradl1 = np.abs(c.grad(a.x_final)).sum(axis=1) + np.abs(c.grad(a.x0)).sum(axis=1)
    assert np.all(np.abs(a.heat - b.heat) <= gradl1 * tol_x)
    assert b.dtype == "float32" and a.dtype == "float64"


def test_structured_coupling_product_equals_dense():
    """The block products (visible-visible skipped when the mask has none) give x @ J."""
    from thermohw.langevin import _coupling_plan

    rng = np.random.default_rng(2)
    for conn in ("paper", "bipartite", "dense"):
        c = random_computer(7, 5, seed=3, connectivity=conn)
        plan = _coupling_plan(c, np.float64)
        x = rng.normal(size=(9, c.n_units))
        out = np.zeros_like(x)
        for i0, i1, o0, o1, Jb in plan:
            out[:, o0:o1] = x[:, i0:i1] @ Jb
        np.testing.assert_allclose(out, x @ c.J, rtol=1e-12, atol=1e-12)
        flops = sum((i1 - i0) * (o1 - o0) for i0, i1, o0, o1, _ in plan)
        assert flops == {"paper": 2 * 7 * 5 + 25, "bipartite": 2 * 7 * 5, "dense": 144}[conn]
    with pytest.raises(InputError, match="float32 or float64"):
        simulate(c, np.zeros((1, c.n_units)), n_steps=1, dt=1e-3, dtype="float16")


def test_sample_cli_dtype_is_chosen_and_recorded(tmp_path, capsys):
    """`thermohw sample --dtype` reaches the sampler and summary.json / samples.npz say which;
    the default is float32; a bad choice is one line."""
    import json

    from thermohw.cli import main
    from thermohw.langevin import Trajectory

    p = random_computer(4, 4, seed=1).save(tmp_path / "model.npz")
    args = ["sample", str(p), "-q", "--runs", "3", "--t-f", "0.01"]
    for extra, want in (([], "float32"), (["--dtype", "float64"], "float64")):
        out = tmp_path / want
        assert main([*args, "-o", str(out), *extra]) == 0
        assert json.loads((out / "summary.json").read_text())["dtype"] == want
        assert Trajectory.load(out / "samples.npz").dtype == want
    with pytest.raises(SystemExit):
        main([*args, "-o", str(tmp_path / "x"), "--dtype", "float16"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("thermohw sample: error: argument --dtype") and "\n" not in err
