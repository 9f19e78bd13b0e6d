import numpy as np
import pytest

from thermohw import InputError, noising
from thermohw.data import Digits
from thermohw.train import TrainConfig, TrainState, new_state, path_gradient, reverse_action, train

from conftest import random_computer


def _path(c, seed=0, steps=40, runs=2):
    """A noising-like path (any path works for the gradient identity)."""
    pat = np.random.default_rng(seed).normal(size=(runs, c.n_visible))
    tr = noising(c, pat, t_f=steps * 1e-3, dt=1e-3, seed=seed, t_eq=0.01)
    return tr.x


def test_gradient_matches_central_finite_differences():
    """d(-ln P)/dJ_ij = sum_steps r_i x'_j + r_j x'_i and d/db_i = sum r_i (at the END point),
    against central differences of the reverse action in float64; relative error < 1e-6."""
    c = random_computer(3, 3, seed=1, scale=0.5)
    X = _path(c)
    dt = 1e-3
    gJ, gb, action = path_gradient(c, X, dt)
    assert action == pytest.approx(reverse_action(c, X, dt), rel=1e-12)
    eps = 1e-5  # the action is quadratic in the parameters: central differences are exact up to rounding
    ii, jj = np.nonzero(np.triu(c.mask, 1))
    for i, j in zip(ii, jj):
        E = np.zeros_like(c.J)
        E[i, j] = E[j, i] = eps
        fd = (reverse_action(c.replace(J=c.J + E), X, dt) - reverse_action(c.replace(J=c.J - E), X, dt)) / (2 * eps)
        assert gJ[i, j] == pytest.approx(fd, rel=1e-6, abs=1e-6 * np.abs(gJ).max())
    for i in range(c.n_units):
        e = np.zeros(c.n_units)
        e[i] = eps
        fd = (reverse_action(c.replace(b=c.b + e), X, dt) - reverse_action(c.replace(b=c.b - e), X, dt)) / (2 * eps)
        assert gb[i] == pytest.approx(fd, rel=1e-6, abs=1e-6 * np.abs(gb).max())
    # evaluating at the START point instead would be a different (wrong) gradient
    r0 = (-(X[1:] - X[:-1]) + c.mu * dt * c.grad(X[:-1])) / (2 * c.kT)
    wrong = np.einsum("kri,krj->ij", r0, X[:-1])
    assert not np.allclose(wrong + wrong.T, gJ, rtol=1e-3)


def test_gradient_is_chunk_independent(monkeypatch):
    import thermohw.train as T

    c = random_computer(3, 3, seed=2)
    X = _path(c, steps=50)
    full = path_gradient(c, X, 1e-3)
    monkeypatch.setattr(T, "_CHUNK_ELEMS", 7 * X.shape[1] * X.shape[2])
    chunked = path_gradient(c, X, 1e-3)
    np.testing.assert_allclose(chunked[0], full[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked[1], full[1], rtol=1e-12, atol=1e-14)


def _digits():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 4))
    return Digits((p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True), [0, 1], (2, 2), "test")


def _cfg(cycles, **kw):
    return TrainConfig(cycles=cycles, t_f=0.02, dt=1e-3, seed=3, checkpoint_every=1, **kw)


def test_training_updates_only_allowed_parameters_and_lowers_action():
    st = new_state(_digits(), TrainConfig(cycles=60, t_f=0.2, dt=1e-3, seed=3), n_hidden=3)
    out = train(st, progress=False)
    c = out.computer
    assert np.any(c.J != 0)
    assert np.all(c.J[~c.mask] == 0) and np.all(c.J[:4, :4] == 0)  # no visible-visible couplings
    assert np.all(c.b[:4] == 0) and np.any(c.b[4:] != 0)          # visible biases frozen
    assert out.cycle == 60 and out.losses.shape == (60,)
    # the trained computer explains 400 fresh noising trajectories better than the untrained one
    X = noising(c, np.repeat(_digits().patterns, 200, axis=0), t_f=0.2, dt=1e-3, seed=99).x
    gain = reverse_action(st.computer, X, 1e-3) - reverse_action(c, X, 1e-3)
    assert gain > 0.01 * X[0].size, gain  # > 0.01 per unit-trajectory


def test_default_learning_rate_is_paper_value():
    assert TrainConfig().lr == pytest.approx(1e-3 / 2.5)
    assert TrainConfig(batch=4).lr == pytest.approx(4e-4 / 2)
    with pytest.raises(InputError):
        TrainConfig(t_f=0.0025, dt=1e-3)  # not a whole number of steps


def test_interrupted_run_resumes_exactly(tmp_path):
    """Ctrl-C after cycle 4 keeps a checkpoint; resuming gives bit-identical parameters to an
    uninterrupted run (the random stream is part of the checkpoint)."""
    ck = tmp_path / "ck.npz"
    straight = train(new_state(_digits(), _cfg(8, batch=2), n_hidden=3), progress=False)

    def interrupt(s):
        if s.cycle == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(new_state(_digits(), _cfg(8, batch=2), n_hidden=3), checkpoint=ck, progress=False,
              on_cycle=interrupt)
    saved = TrainState.load(ck)
    assert saved.cycle == 4
    resumed = train(saved, checkpoint=ck, progress=False)
    np.testing.assert_array_equal(resumed.computer.J, straight.computer.J)
    np.testing.assert_array_equal(resumed.computer.b, straight.computer.b)
    np.testing.assert_array_equal(resumed.losses, straight.losses)
    assert TrainState.load(ck).cycle == 8


def test_paper_hidden_targets_are_the_paper_field_bit_for_bit():
    from thermohw.data import load_training_digits
    from thermohw.langevin import noising_field
    from thermohw.train import TrainConfig, imposed_field, new_state

    d = load_training_digits(digits=(0, 3, 7))
    st = new_state(d, TrainConfig(), n_hidden=70)
    pick = np.array([2, 0, 1])
    np.testing.assert_array_equal(imposed_field(st.computer, d, pick, st.config),
                                  noising_field(d.patterns[pick], 134, 64, 2.0))


def test_class_units_code_and_validation():
    from thermohw.data import load_training_digits
    from thermohw.train import TrainConfig, hidden_targets, imposed_field, new_state

    d = load_training_digits(digits=(7, 0, 3))          # labels in any order: classes sorted 0, 3, 7
    h = hidden_targets("classes", 10.0, d, np.array([0, 1, 2]), 6)
    # unit j is a class unit of sorted label j mod 3; +A for its label, -A/2 otherwise
    want = np.array([[-5, -5, 10, -5, -5, 10],           # image 0 is a 7 (class 2)
                     [10, -5, -5, 10, -5, -5],           # a 0 (class 0)
                     [-5, 10, -5, -5, 10, -5]], float)
    np.testing.assert_array_equal(h, want)
    assert np.allclose(h.sum(axis=0), 0.0)              # zero-sum over the classes
    cfg = TrainConfig(hidden_targets="classes", hidden_amplitude=10.0)
    st = new_state(d, cfg, n_hidden=6)
    f = imposed_field(st.computer, d, np.array([1]), cfg)
    np.testing.assert_array_equal(f[0, :64], -2.0 * d.patterns[1])
    np.testing.assert_array_equal(f[0, 64:], -2.0 * want[1])
    # every label needs the same number of class units: 7 for 3 labels is refused at set-up
    with pytest.raises(InputError, match="multiple of 3"):
        new_state(d, cfg, n_hidden=7)
    for bad in (dict(hidden_targets="labels"), dict(hidden_amplitude=0.0), dict(hidden_amplitude=float("inf")),
                dict(cycles=10, average_from=10)):
        with pytest.raises(InputError):
            TrainConfig(**bad)


def test_class_unit_training_resumes_exactly(tmp_path):
    """A class-unit run interrupted by its checkpoint and resumed equals the uninterrupted run,
    and the settings come back from the checkpoint."""
    from thermohw.data import load_training_digits
    from thermohw.train import TrainConfig, TrainState, new_state, train

    d = load_training_digits(digits=(0, 1))
    cfg = TrainConfig(cycles=6, hidden_targets="classes", hidden_amplitude=4.0, checkpoint_every=3)
    full = train(new_state(d, cfg, n_hidden=4), progress=False)
    ck = tmp_path / "ck.npz"
    half = TrainConfig(**{**cfg.__dict__, "cycles": 3})
    train(new_state(d, half, n_hidden=4), checkpoint=ck, progress=False)
    st = TrainState.load(ck)
    assert st.config.hidden_targets == "classes" and st.config.hidden_amplitude == 4.0
    st = TrainState(st.computer, st.digits, cfg, st.cycle, st.rng_state, st.losses, st.seconds, st.chip)
    resumed = train(st, progress=False)
    np.testing.assert_array_equal(resumed.computer.J, full.computer.J)
    np.testing.assert_array_equal(resumed.computer.b, full.computer.b)


def test_tail_average_is_the_mean_of_the_iterates_and_resumes_exactly(tmp_path):
    from thermohw.data import load_training_digits
    from thermohw.train import TrainConfig, TrainState, new_state, train

    d = load_training_digits(digits=(0, 1))
    cfg = TrainConfig(cycles=7, average_from=3, checkpoint_every=2)
    seen = []
    full = train(new_state(d, cfg, n_hidden=3), progress=False, on_cycle=lambda s: seen.append(s.computer))
    assert full.avg_count == 4
    np.testing.assert_allclose(full.averaged().J, np.mean([c.J for c in seen[3:]], axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(full.averaged().b, np.mean([c.b for c in seen[3:]], axis=0), rtol=1e-12, atol=1e-15)
    ck = tmp_path / "ck.npz"
    train(new_state(d, TrainConfig(**{**cfg.__dict__, "cycles": 5}), n_hidden=3), checkpoint=ck, progress=False)
    st = TrainState.load(ck)
    assert st.avg_count == 2
    st = TrainState(st.computer, st.digits, cfg, st.cycle, st.rng_state, st.losses, st.seconds, st.chip,
                    st.avg_J, st.avg_b, st.avg_count)
    resumed = train(st, progress=False)
    np.testing.assert_array_equal(resumed.averaged().J, full.averaged().J)
    with pytest.raises(InputError):
        TrainConfig(average_from=-1)


# ---- noising drawn across cycles, blocked gradient products (issue 14) ----------------------
def _units():
    """Paper connectivity, per-unit on-site parameters, mobilities and temperatures."""
    from thermohw import Computer

    rng = np.random.default_rng(7)
    c = Computer.zeros(4, 4, J2=rng.uniform(0.5, 1.5, 8), J4=rng.uniform(0.5, 1.5, 8))
    return c.replace(mu=rng.uniform(0.5, 2.0, 8), kT=rng.uniform(0.05, 0.2, 8))


def test_noising_cycles_is_the_noising_protocol_driven_by_the_same_noise():
    """Each cycle's trajectories are langevin.simulate's noising protocol (t_eq under the fixed
    field, then t_f with it decaying) driven by the cycle's own stream: its images picked first,
    then its noise in step order. Agreement to rounding (the on-site drift is fused into one
    multiply); and a cycle's trajectories do not depend on which cycles are drawn beside it, nor
    on the thread count (bit for bit)."""
    from thermohw.langevin import Protocol, simulate
    from thermohw.train import cycle_rng, imposed_field, noising_cycles

    c, d = _units(), _digits()
    cfg = TrainConfig(cycles=5, batch=2, t_f=0.03, t_eq=0.02, dt=1e-3, seed=11, hidden_targets="classes",
                      hidden_amplitude=2.0)
    n_eq, K = 20, 30
    got = noising_cycles(c, d, cfg, 1, 3, threads=2)
    assert got.shape == (3, K + 1, 2, 8)
    for i, cyc in enumerate((1, 2, 3)):
        rng = cycle_rng(cfg, cyc)
        h = imposed_field(c, d, rng.integers(0, 2, size=2), cfg)
        xi = rng.standard_normal((n_eq + K, 2, 8))
        free = c.coupling_free()
        eq = simulate(free, np.zeros((2, 8)), n_steps=n_eq, dt=1e-3, protocol=Protocol(h), noise=xi[:n_eq],
                      stratonovich=False)
        ref = simulate(free, eq.x_final, n_steps=K, dt=1e-3, protocol=Protocol(h, "linear_decay", 0.75 * 0.03),
                       noise=xi[n_eq:], record_every=1, stratonovich=False)
        np.testing.assert_allclose(got[i], ref.x, rtol=0, atol=1e-13)
    alone = noising_cycles(c, d, cfg, 2, 1, threads=1)
    np.testing.assert_array_equal(alone[0], got[1])


def test_fast_gradient_equals_path_gradient():
    """The trainer's gradient (lanes of step chunks on threads; visible-visible block skipped
    when the model has none) equals the reference path_gradient to rounding, for any thread
    count, and the skipped block is exactly zero."""
    from thermohw.train import fast_path_gradient

    c = _units()
    rng = np.random.default_rng(3)
    J = rng.normal(0, 0.3, c.J.shape)
    c = c.replace(J=np.where(c.mask, (J + J.T) / 2, 0.0), b=np.where(c.bias_trainable, rng.normal(size=8), 0.0))
    X = noising(c, rng.normal(size=(3, 4)), t_f=0.05, dt=1e-3, seed=1, t_eq=0.01).x
    gJ, gb, act = path_gradient(c, X, 1e-3)
    for skip in (False, True):
        for threads in (1, 2):
            fJ, fb, fact = fast_path_gradient(c, X, 1e-3, skip_visible=skip, threads=threads)
            np.testing.assert_allclose(np.where(c.mask, fJ, 0), np.where(c.mask, gJ, 0), rtol=0,
                                       atol=1e-12 * np.abs(gJ).max())
            np.testing.assert_allclose(fb, gb, rtol=0, atol=1e-12 * np.abs(gb).max())
            assert fact == pytest.approx(act, rel=1e-12)
            if skip:
                assert not fJ[:4, :4].any()
    with pytest.raises(InputError, match="visible-visible"):
        dense = ~np.eye(8, dtype=bool)
        fast_path_gradient(c.replace(mask=dense, J=np.where(dense, 0.01, 0.0)), X, 1e-3, skip_visible=True)


def test_training_does_not_depend_on_the_cycle_group_size(monkeypatch):
    """How many cycles' trajectories are drawn side by side comes from the free memory; the
    trained model must not depend on it (nor on the threads drawing them)."""
    import thermohw.train as T

    cfg = _cfg(7, batch=2)
    grouped = train(new_state(_digits(), cfg, n_hidden=3), progress=False)
    assert T.cycles_per_group(7, cfg, 7) == 7
    monkeypatch.setattr(T, "_GROUP_MAX", 1)
    single = train(new_state(_digits(), cfg, n_hidden=3), progress=False)
    np.testing.assert_array_equal(single.computer.J, grouped.computer.J)
    np.testing.assert_array_equal(single.losses, grouped.losses)
    monkeypatch.setattr(T, "_GROUP_BYTES", 3 * T.cycle_bytes(7, cfg))
    assert T.cycles_per_group(7, cfg, 7) == 1      # _GROUP_MAX still 1
    monkeypatch.setattr(T, "_GROUP_MAX", 32)
    assert T.cycles_per_group(7, cfg, 7) == 3      # the memory budget decides
    assert T.cycles_per_group(7, cfg, 2) == 2      # never beyond the cycles left


def test_checkpoint_records_the_stream_layout_and_an_older_checkpoint_resumes(tmp_path):
    """Checkpoints say which random-stream layout wrote them. One written before the per-cycle
    streams (rng_state: a single generator's state) resumes on the per-cycle streams from its
    cycle on: the same model as resuming the same parameters from a current checkpoint."""
    import dataclasses

    from thermohw.train import NOISE_STREAM

    ck = tmp_path / "ck.npz"
    train(new_state(_digits(), _cfg(3), n_hidden=3), checkpoint=ck, progress=False)
    st = TrainState.load(ck)
    assert st.rng_state == {"stream": NOISE_STREAM}
    more = dataclasses.replace(st, config=_cfg(6))
    old = dataclasses.replace(more, rng_state=np.random.default_rng(3).bit_generator.state)
    a, b = train(more, progress=False), train(old, progress=False)
    np.testing.assert_array_equal(a.computer.J, b.computer.J)
    assert b.rng_state == {"stream": NOISE_STREAM}
