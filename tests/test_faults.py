"""Faults with real processes: the real ngspice killed or hung mid-sweep, a Dask worker process
lost mid-sweep, a checkpoint write that runs out of space. Faults are injected around the real
programs (a wrapper on PATH that execs the real ngspice and signals it, SIGKILL of a real
worker, a real tmpfs filled up), never by faking the simulator."""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time

import numpy as np
import pytest

from thermohw.cli import main
from thermohw.compile import compile_computer
from thermohw.cosim import CosimConfig, load_runs, prepare, run_cosim, run_seed, spice_job
from thermohw.errors import NoSpaceError, ThermohwError
from thermohw.target import Target

from conftest import random_computer

NGSPICE = shutil.which("ngspice")
needs_ngspice = pytest.mark.skipif(NGSPICE is None, reason="ngspice not installed (apt-get install -y ngspice)")

# Wrapper installed as "ngspice" ahead of the real one on PATH; it picks runs by their netlist
# title "thermohw cosim run K:". Run $FAULT_KILL_RUN / $FAULT_STOP_RUN: it execs the real ngspice
# and, once the real binary runs in that very process (/proc/PID/exe), sends it SIGKILL (killed
# mid-run) / SIGSTOP (hung). Run $FAULT_LOSE_RUN, the first time only: it records its parent (the
# worker process running the job) in $FAULT_LOG and waits until that parent is gone, so the test
# can kill the worker while the job runs. Other runs: the real ngspice, untouched.
WRAPPER = r"""#!/bin/sh
REAL="__REAL__"
for a; do net=$a; done
is_run() { [ -n "$1" ] && grep -q "^\* thermohw cosim run $1:" "$net"; }
sig=
is_run "$FAULT_KILL_RUN" && sig=KILL
is_run "$FAULT_STOP_RUN" && sig=STOP
if is_run "$FAULT_LOSE_RUN" && [ ! -e "$FAULT_LOG" ]; then
  echo "$PPID" > "$FAULT_LOG.tmp" && mv "$FAULT_LOG.tmp" "$FAULT_LOG"
  i=0
  while kill -0 "$PPID" 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
  exit 1
fi
if [ -n "$sig" ]; then
  ( i=0
    while [ "$(readlink /proc/$$/exe 2>/dev/null)" != "$REAL" ]; do i=$((i+1)); [ $i -gt 20000 ] && exit 0; done
    echo "$sig pid $$ exe $(readlink /proc/$$/exe)" >> "$FAULT_LOG"
    kill -"$sig" $$ ) </dev/null >/dev/null 2>&1 &
fi
exec "$REAL" "$@"
"""


def install_wrapper(folder):
    folder.mkdir()
    w = folder / "ngspice"
    w.write_text(WRAPPER.replace("__REAL__", os.path.realpath(NGSPICE)))
    w.chmod(w.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def small_program(seed=5):
    c = random_computer(3, 2, seed=seed, scale=0.3)
    return compile_computer(c, Target.preset("rc-8bit-dense").replace(units=16))


def same_runs(a: dict, b: dict) -> None:
    """Every stored quantity of every run equal, bit for bit (run times aside)."""
    assert sorted(a) == sorted(b)
    for k in a:
        if k != "seconds":
            assert np.array_equal(a[k], b[k]), k


@needs_ngspice
def test_killed_and_hung_ngspice_runs_are_reported_and_resume_completes_them(tmp_path, monkeypatch, capsys):
    """Run 1's ngspice is SIGKILLed, run 2's is SIGSTOPped (hangs until --spice-timeout 3 s kills
    it): the other runs finish, cosim exits 1 naming the failed runs and their seeds in one line,
    cosim.json lists them; a bare --resume runs just those two, and the final spice_runs equal,
    bit for bit, the same runs done cleanly."""
    kill_run, stop_run = 1, 2
    p = small_program()
    p.save(tmp_path / "prog")
    out = tmp_path / "c"
    args = ["cosim", str(tmp_path / "prog"), "-o", str(out), "--runs", "4", "--ideal-runs", "50",
            "--t-f", "0.3", "--seed", "2", "-q"]
    wrap = install_wrapper(tmp_path / "bin")
    path0 = os.environ["PATH"]
    log = tmp_path / "faults.log"
    monkeypatch.setenv("FAULT_LOG", str(log))
    monkeypatch.setenv("FAULT_KILL_RUN", str(kill_run))
    monkeypatch.setenv("FAULT_STOP_RUN", str(stop_run))
    monkeypatch.setenv("PATH", f"{wrap}:{path0}")
    t0 = time.perf_counter()
    code = main(args + ["--spice-timeout", "3"])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, err
    assert len(err) == 1 and err[0].startswith("thermohw cosim: error: 2 of 4 SPICE runs failed"), err
    cfg = CosimConfig(runs=4, ideal_runs=50, t_f=0.3, seed=2)
    for run, what in ((kill_run, "was killed by SIGKILL"), (stop_run, "did not finish within 3 s")):
        assert f"run {run} (seed {run_seed(cfg, run)}): NgspiceError: ngspice {what}" in err[0], err
    assert "--resume" in err[0]
    # the faults hit the real ngspice binary, once each
    hits = log.read_text().splitlines()
    assert sorted(h.split()[0] for h in hits) == ["KILL", "STOP"], hits
    assert all(h.endswith(os.path.realpath(NGSPICE)) for h in hits), hits
    assert 3 <= took < 60, took  # the hung run costs its timeout, not the sweep
    rep = json.loads((out / "cosim.json").read_text())
    assert rep["spice_runs"] == 2 and rep["complete"] is False and rep["missing_runs"] == [kill_run, stop_run]
    assert ([(f["run"], f["seed"]) for f in rep["spice_failures"]]
            == [(r, run_seed(cfg, r)) for r in (kill_run, stop_run)])
    assert rep["spice_timeout_s"] == 3 and rep["resumed_runs"] == 0
    # no stopped or orphaned ngspice left behind
    assert not subprocess.run(["pgrep", "-f", f"{tmp_path}"], capture_output=True).stdout.strip()

    monkeypatch.setenv("PATH", path0)  # the fault is gone
    assert main(args) == 1  # a rerun without --resume would overwrite the saved runs: refused
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds 2 saved SPICE runs" in err[0] and "--resume" in err[0] and "-o" in err[0]
    assert main(args[:4] + ["--resume", "--t-f", "0.5", "-q"]) == 1  # a resume cannot change a run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--t-f = 0.5 differs from the saved sweep's 0.3" in err[0], err
    assert main(args[:4] + ["--resume", "-q"]) == 0  # bare: the saved settings
    rep = json.loads((out / "cosim.json").read_text())
    assert (rep["spice_runs"], rep["resumed_runs"], rep["new_runs"], rep["complete"]) == (4, 2, 2, True)
    assert rep["spice_failures"] == [] and rep["missing_runs"] == [] and rep["config"]["t_f"] == 0.3
    # equal to the same sweep run cleanly (its SPICE runs, same seeds per run index)
    specs, _, _ = prepare(p, cfg)
    clean = [spice_job(s) for s in specs]
    clean_file = tmp_path / "clean.npz"
    from thermohw.cosim import _save_runs

    _save_runs(clean_file, clean, {})
    same_runs(load_runs(out / "spice_runs.npz")[1], load_runs(clean_file)[1])


@needs_ngspice
def test_dask_worker_lost_mid_sweep_its_run_is_resubmitted(tmp_path, monkeypatch):
    """Two Dask worker processes on loopback; the worker running run 1 is SIGKILLed while its job
    runs. The scheduler reruns the job elsewhere and the sweep completes with all 4 runs, run 1
    equal to a clean run of it."""
    distributed = pytest.importorskip("distributed", reason="pip install 'thermohw[dask]'")
    wrap = install_wrapper(tmp_path / "bin")
    log = tmp_path / "worker.pid"
    (tmp_path / "tmp").mkdir()
    path0 = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{wrap}:{path0}")
    monkeypatch.setenv("FAULT_LOSE_RUN", "1")
    monkeypatch.setenv("FAULT_LOG", str(log))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # what the killed worker leaves, stays here
    p = small_program()
    killed = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())

        def killer():
            t = time.time()
            while not log.exists() and time.time() - t < 60:
                time.sleep(0.02)
            if log.exists():
                pid = int(log.read_text())
                killed["pid"], killed["was_worker"] = pid, pid in worker_pids
                os.kill(pid, signal.SIGKILL)

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        cfg = CosimConfig(runs=4, ideal_runs=50, t_f=0.3, seed=2, scheduler=cluster.scheduler_address,
                          spice_timeout=60)
        t0 = time.perf_counter()
        rep = run_cosim(p, cfg, tmp_path / "c", progress=False)
        took = time.perf_counter() - t0
        th.join(5)
    assert killed.get("was_worker"), killed  # a real worker process died while running run 1
    assert rep.sweep.complete and rep.spice_runs == 4 and rep.sweep.spice_failures == (), rep.sweep.spice_failures
    _, runs = load_runs(tmp_path / "c" / "spice_runs.npz")
    monkeypatch.setenv("PATH", path0)
    specs, _, _ = prepare(p, cfg)
    assert np.array_equal(runs["x_final"][1], spice_job(specs[1])["x_final"])
    assert took < 120, took


def test_scheduler_address_is_checked_before_connecting(tmp_path, capsys):
    """'not a url' used to give a traceback and a 60 s hang at exit: now one line, at once; an
    address of the right form where nothing listens fails within the connect timeout."""
    pytest.importorskip("distributed")
    from thermohw.executor import DaskExecutor, check_scheduler_address

    for bad in ("not a url", "http://h:1", "tcp://h", "tcp://h:0", "tcp://:8786", "", "tcp://h:99999"):
        with pytest.raises(ThermohwError, match="scheduler address"):
            check_scheduler_address(bad)
    for good in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://node-3.lab:8786", "tcp://[::1]:8786"):
        assert check_scheduler_address(good) == good
    # a hang (the old failure: 60 s at exit) trips the subprocess timeout; no speed is asserted
    code = subprocess.run(["python", "-m", "thermohw", "cosim", str(tmp_path), "-o", str(tmp_path / "c"),
                           "--scheduler", "not a url"], capture_output=True, text=True, timeout=45)
    assert code.returncode == 1
    lines = code.stderr.strip().splitlines()
    assert len(lines) == 1 and "not an address" in lines[0] and "tcp://HOST:PORT" in lines[0], code.stderr
    import socket

    def bounded(fn, guard=60.0):
        """Run fn in a thread; a hang guard (60x the expected seconds), not a speed test. The
        messages below tell which path failed: the handshake bound, or the refusal at once."""
        box = {}

        def run():
            try:
                fn()
            except BaseException as e:  # handed to the test thread
                box["error"] = e
        th = threading.Thread(target=run, daemon=True)
        th.start()
        th.join(guard)
        assert not th.is_alive(), "hung: the connection attempt was not bounded"
        return box.get("error")

    with socket.socket() as srv:  # a port that listens but never speaks Dask
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        srv.listen(4)
        err = bounded(lambda: DaskExecutor(f"tcp://127.0.0.1:{port}", timeout=1))
        assert isinstance(err, ThermohwError) and re.search("no Dask scheduler answers at .*127.0.0.1", str(err))
    # closed now: refused at once ("refused", not the 30 s connect timeout's message)
    err = bounded(lambda: DaskExecutor(f"tcp://127.0.0.1:{port}", timeout=30))
    assert isinstance(err, ThermohwError) and re.search("cannot reach the Dask scheduler .*refused", str(err))


# ---------------------------------------------------------------------------------------------
# a checkpoint write that runs out of space
# ---------------------------------------------------------------------------------------------
def _mount_tmpfs(where, size: str):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; run the suite as root to test a full disk")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here ({r.stderr.strip()})")


def _train_state(cycles: int):
    from thermohw.data import Digits
    from thermohw.train import TrainConfig, new_state

    rng = np.random.default_rng(0)
    pats = np.where(rng.random((3, 16)) < 0.5, -1.0, 1.0)
    d = Digits(pats, np.array([0, 1, 2]), (4, 4), "test patterns")
    return new_state(d, TrainConfig(cycles=cycles, t_f=0.2, dt=2e-3, checkpoint_every=1, seed=4), n_hidden=4)


def test_checkpoint_write_out_of_space_keeps_the_previous_checkpoint(tmp_path):
    """Training checkpoints every cycle into a real tmpfs; after cycle 1 the disk fills up (another
    process writes a filler), so cycle 2's checkpoint write fails with ENOSPC. The error is one
    NoSpaceError line naming the file, 'no space' and the fix; no temporary file is left; the
    cycle-1 checkpoint is intact, and once space is freed, resuming from it ends bit-identical to
    an uninterrupted run."""
    from thermohw.train import TrainState, train

    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    _mount_tmpfs(mnt, "1m")
    try:
        ck = mnt / "checkpoint.npz"
        filler = mnt / "filler"

        def fill_disk(state):
            if state.cycle == 1:
                with open(filler, "wb", buffering=0) as fh:  # unbuffered: every byte that fits is written
                    try:
                        while True:
                            fh.write(b"\0" * 4096)
                    except OSError:
                        pass

        with pytest.raises(NoSpaceError) as info:
            train(_train_state(3), checkpoint=ck, progress=False, on_cycle=fill_disk)
        msg = str(info.value)
        assert "\n" not in msg and "no space left" in msg and str(ck) in msg and "free space" in msg, msg
        assert isinstance(info.value, ThermohwError) and isinstance(info.value, OSError)
        assert sorted(f.name for f in mnt.iterdir()) == ["checkpoint.npz", "filler"]  # no half-written file
        st = TrainState.load(ck)
        assert st.cycle == 1
        filler.unlink()  # space freed: resume
        done = train(st, checkpoint=ck, progress=False)
        assert done.cycle == 3 and TrainState.load(ck).cycle == 3
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    clean = train(_train_state(3), checkpoint=tmp_path / "clean.npz", progress=False)
    assert np.array_equal(done.computer.J, clean.computer.J) and np.array_equal(done.losses, clean.losses)
