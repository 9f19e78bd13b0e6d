"""The two ngspice engines (batch subprocess + raw reader; PySpice shared library) and the
executor (in-process, process pool, Dask), always against the real ngspice."""
import functools
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from thermohw.backends import rc
from thermohw.compile import compile_computer
from thermohw.errors import InputError
from thermohw.executor import Interrupted, JobResult, make_executor
from thermohw.spice import NgspiceError, find_ngspice, run_batch
from thermohw.spice import shared as shared_mod
from thermohw.spice.engines import ENGINES, engine_available, run
from thermohw.spice.shared import run_shared

from conftest import random_computer

HAVE_NGSPICE = shutil.which("ngspice") is not None
needs_ngspice = pytest.mark.skipif(not HAVE_NGSPICE, reason="ngspice not installed (apt-get install -y ngspice libngspice0)")
needs_shared = pytest.mark.skipif(not (HAVE_NGSPICE and engine_available("shared")),
                                  reason="PySpice or libngspice missing (pip install PySpice==1.5; "
                                         "apt-get install -y libngspice0)")

# I(t) ramps past what the tanh load can sink (1 A) at t = 0.5 us: no solution exists, ngspice
# cuts the step until "Timestep too small" (measured: fails at t = 4.9928e-07 every time).
FOLD = """* algebraic fold: the tanh load cannot sink more than 1 A
I1 0 b PWL(0 0 1u 2)
B1 b 0 I = tanh(V(b))
.tran 1n 1u
.end
"""
PARSE_ERROR = "* bad value\nR1 a 0 abc\nC1 a 0 1n\n.tran 1n 1u\n.end\n"
TINY = "* tiny rc\nR1 a 0 1k\nC1 a 0 1n\nI1 0 a DC 1m\n.tran 10n 2u\n.end\n"
# one TRRANDOM source, one sample interval longer than the run: an odd number of Gaussian draws
ODD_DRAWS = "* odd gaussian draws\nV1 1 0 DC 0 TRRANDOM(2 10 0 1 0)\nR1 1 0 1\n.tran 1 1\n.end\n"


@pytest.fixture(scope="module")
def circuits():
    """Two RC chips of different size (6 and 9 units) from the compiler."""
    a = compile_computer(random_computer(3, 3, seed=1), "rc-8bit-dense").artefact
    b = compile_computer(random_computer(4, 5, seed=2), "rc-8bit-dense").artefact
    return a, b


def deterministic(circ, x0_seed=0):
    x0 = np.random.default_rng(x0_seed).normal(0, 0.5, circ.n_units)
    return rc.netlist(circ, t_stop=3e-7, noise="none", x0=x0)


def noisy(circ, seed):
    return rc.netlist(circ, t_stop=1e-7, seed=seed, noise="trrandom")


def assert_same(a, b):
    assert a.names == b.names
    for n in a.names:
        assert a[n].dtype == np.float64 and b[n].dtype == np.float64
        np.testing.assert_array_equal(a[n], b[n], err_msg=n)


# ------------------------------------------------------------------------------------------
# engines
# ------------------------------------------------------------------------------------------
@needs_shared
def test_engines_agree_exactly_on_a_deterministic_rc_chip(circuits):
    net = deterministic(circuits[0])
    b, s = run_batch(net), run_shared(net)
    assert b.names == ("time",) + tuple(f"v(u{i})" for i in range(6))
    assert (s.title, s.plotname) == (b.title, b.plotname)
    # same time points and values to the last bit (same simulator, same arithmetic)
    assert_same(b, s)
    assert np.ptp(s["v(u0)"]) > 0  # the chip relaxes from x0: a real waveform, not zeros
    assert_same(run(net, engine="shared"), run(net, engine="batch"))  # the dispatcher


@needs_shared
def test_seeded_trrandom_is_identical_across_engines_and_repeats(circuits):
    """ngspice 39's gauss0 caches the second value of each Box-Muller pair across runs; the
    shared engine drains it before each run, so the same seed gives the same noise in both
    engines, in any order -- also right after a run that drew an odd number of Gaussians
    (without the drain the repeat differed: measured)."""
    net7 = noisy(circuits[0], 7)
    b1, b2 = run_batch(net7), run_batch(net7)
    assert_same(b1, b2)
    s1 = run_shared(net7)
    run_shared(ODD_DRAWS)
    s2 = run_shared(net7)
    run_shared(noisy(circuits[1], 3))
    s3 = run_shared(net7)
    for s in (s1, s2, s3):
        assert_same(b1, s)
    other = run_shared(noisy(circuits[0], 8))
    assert not np.array_equal(other["v(u0)"], s1["v(u0)"])  # the seed matters
    assert np.std(s1["v(u0)"]) > 0


@needs_shared
def test_unseeded_netlists_get_fresh_noise_in_the_shared_engine(circuits):
    """Like separate batch processes, unseeded TRRANDOM runs differ (the engine must not
    replay the seed it used to probe the Gaussian cache)."""
    net = noisy(circuits[0], 1).replace(".options seed=1\n", "")
    assert ".options seed" not in net
    a, b = run_shared(net), run_shared(net)
    assert not np.array_equal(a["v(u0)"], b["v(u0)"])


@needs_shared
def test_repeated_shared_runs_do_not_mix_vectors(circuits):
    a, b = circuits
    first = run_shared(deterministic(a))
    other = run_shared(deterministic(b, 1))
    again = run_shared(deterministic(a))
    assert first.names == ("time",) + tuple(f"v(u{i})" for i in range(6))
    assert other.names == ("time",) + tuple(f"v(u{i})" for i in range(9))
    assert_same(first, again)
    assert not np.array_equal(first["v(u0)"][:10], other["v(u0)"][:10])


@needs_shared
def test_shared_engine_names_match_batch_for_branches_subcircuits_and_digit_nodes():
    net = """* names
.subckt cell n params: r=1k
R1 n m {r}
C1 m 0 1u
.ends cell
Vs src 0 DC 1
Rs src 1 1k
X1 1 cell r=2k
L1 1 aa 1m
Ra aa 0 1k
B1 bb 0 V=V(1)*2
Rb bb 0 1k
.tran 10u 100u
.end
"""
    b, s = run_batch(net), run_shared(net)
    assert b.names == ("time", "v(src)", "v(1)", "v(x1.m)", "v(aa)", "v(bb)", "i(b1)", "i(l1)", "i(vs)")
    assert_same(b, s)


@needs_shared
def test_shared_engine_is_thread_safe(circuits):
    nets = [deterministic(circuits[i % 2], i % 2) for i in range(8)]
    serial = [run_shared(n) for n in nets]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run_shared, nets))
    for x, y in zip(serial, parallel):
        assert_same(x, y)


@needs_ngspice
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_timestep_too_small_is_an_ngspice_error(engine):
    if engine == "shared" and not engine_available("shared"):
        pytest.skip("shared engine unavailable")
    with pytest.raises(NgspiceError, match=r"(?i)timestep too small.*node \"b\""):
        run(FOLD, engine=engine)
    assert run(TINY, engine=engine)["v(a)"][-1] == pytest.approx(1.0, rel=1e-3)  # the engine survives


@needs_ngspice
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_parse_error_is_an_ngspice_error(engine):
    if engine == "shared" and not engine_available("shared"):
        pytest.skip("shared engine unavailable")
    with pytest.raises(NgspiceError, match=r"(?i)error on line 2") as info:
        run(PARSE_ERROR, engine=engine)
    if engine == "shared":  # the shared engine also names the offending line and the reason
        assert "unknown parameter (abc)" in str(info.value)
    assert run(TINY, engine=engine).names == ("time", "v(a)")


@needs_shared
def test_shared_timeout_halts_the_run_and_the_engine_recovers():
    slow = "* slow\n" + "".join(f"C{i} u{i} 0 1n\nR{i} u{i} 0 1k\nIn{i} 0 u{i} DC 0 TRRANDOM(2 1n 0 1m 0)\n"
                                for i in range(40)) + ".options seed=3\n.tran 1n 1m 0 1n\n.end\n"
    # the full run would take minutes: returning at all means the timeout halted it
    with pytest.raises(NgspiceError, match="did not finish within 0.2 s"):
        run_shared(slow, timeout=0.2)
    r = run_shared(TINY, timeout=10)
    assert_same(r, run_shared(TINY))


def test_missing_ngspice_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ngspice anywhere
    with pytest.raises(NgspiceError, match="apt-get install"):
        find_ngspice()
    with pytest.raises(NgspiceError, match="apt-get install"):
        run(TINY, engine="batch")
    assert not engine_available("batch")


def test_missing_shared_library_says_how_to_install(monkeypatch):
    monkeypatch.setattr(shared_mod, "_candidates", lambda: ["libngspice-not-here.so.0"])
    with pytest.raises(NgspiceError, match="apt-get install.*libngspice0"):
        shared_mod.library_path()


def test_unknown_engine_is_an_input_error():
    with pytest.raises(InputError, match="batch"):
        run(TINY, engine="spectre")


# ------------------------------------------------------------------------------------------
# executor
# ------------------------------------------------------------------------------------------
def square_or_fail(x):
    """A module-level job (picklable for spawned workers): item 3 fails."""
    if x == 3:
        raise ValueError("item 3 is bad")
    return x * x


def test_executor_in_process_keeps_order_and_captures_failures():
    with make_executor(workers=1) as ex:
        res = ex.map(square_or_fail, range(6), progress=False)
    assert [r.index for r in res] == list(range(6))
    assert [r.ok for r in res] == [True, True, True, False, True, True]
    assert [r.value for r in res if r.ok] == [0, 1, 4, 16, 25]
    assert res[3].error.startswith("ValueError: item 3 is bad")
    assert all(isinstance(r, JobResult) and r.seconds >= 0 for r in res)


@needs_ngspice
def test_executor_process_pool_runs_spice_and_survives_a_convergence_failure():
    nets = [TINY, FOLD, TINY, PARSE_ERROR, TINY]
    engines = ["batch"] + (["shared"] if engine_available("shared") else [])
    with make_executor(workers=2) as ex:
        for engine in engines:
            res = ex.map(functools.partial(run, engine=engine), nets, progress=False, desc=engine)
            assert [r.index for r in res] == list(range(5))
            assert [r.ok for r in res] == [True, False, True, False, True]
            assert "NgspiceError" in res[1].error and "imestep too small" in res[1].error
            assert "NgspiceError" in res[3].error
            assert_same(res[0].value, run_batch(TINY))
        res = ex.map(square_or_fail, range(6), progress=False)  # the pool is reused
        assert [r.ok for r in res] == [True, True, True, False, True, True]


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupt_keeps_the_finished_results(workers):
    seen = []

    def on_result(r):
        seen.append(r)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with make_executor(workers=workers) as ex:
        with pytest.raises(Interrupted) as info:
            ex.map(square_or_fail, [0, 1, 2, 4, 5, 6, 7, 8, 9, 10] * 3, progress=False, on_result=on_result)
    e = info.value
    assert isinstance(e, KeyboardInterrupt)
    got = {r.index: r for r in e.results}
    assert {r.index for r in seen} <= set(got)  # everything handed to on_result is kept
    assert len(got) >= 2 and all(r.ok for r in got.values())
    assert all(r.value == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10][r.index % 10] ** 2 for r in got.values())
    assert e.pending and set(e.pending).isdisjoint(got) and len(e.pending) + len(got) == 30
    if workers == 1:
        assert sorted(got) == [0, 1]


def test_executor_rejects_bad_worker_counts():
    for w in (0, -2, 1.5):
        with pytest.raises(InputError):
            make_executor(workers=w)


@needs_ngspice
def test_dask_local_cluster_on_loopback_runs_spice_jobs():
    distributed = pytest.importorskip("distributed", reason="pip install 'thermohw[dask]'")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        assert addr.startswith("tcp://127.0.0.1:")
        with make_executor(workers=3, scheduler=addr) as ex:
            assert ex.workers == 1
            res = ex.map(functools.partial(run, engine="batch"), [TINY, FOLD, TINY], progress=False)
            fails = ex.map(square_or_fail, range(5), progress=False)
    assert [r.index for r in res] == [0, 1, 2] and [r.ok for r in res] == [True, False, True]
    assert "imestep too small" in res[1].error
    assert_same(res[0].value, run_batch(TINY))
    assert [r.ok for r in fails] == [True, True, True, False, True] and fails[4].value == 16
