"""Co-simulation harness against the real ngspice on small circuits (seconds each)."""
import json
import shutil

import numpy as np
import pytest

from thermohw import Computer
from thermohw.cli import main
from thermohw.compile import compile_computer
from thermohw.cosim import CosimConfig, load_runs, run_cosim
from thermohw.target import Target

from conftest import random_computer

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None,
                                reason="ngspice not installed (apt-get install -y ngspice libngspice0)")


def small_program(seed=1):
    c = random_computer(4, 2, seed=seed, scale=0.3)
    t = Target.preset("rc-8bit-dense").replace(units=16)
    return compile_computer(c, t)


def test_paired_noise_spice_equals_realised_ideal(tmp_path):
    """Same numpy noise into ngspice (held PWL currents) and into the realised ideal model
    (Euler, dt = NT): the final states agree to < 1 % of their spread; what remains is the
    Euler step error O(dt) and SPICE's own integration error, not the hardware mapping."""
    p = small_program()
    cfg = CosimConfig(runs=4, ideal_runs=50, t_f=0.5, noise="pwl", nt_fraction=0.02, seed=3)
    rep = run_cosim(p, cfg, tmp_path / "c", progress=False)
    pr = rep.paired
    assert pr.relative < 0.01, pr  # measured 0.13 % at nt_fraction 0.02, scaling with NT
    # and unpaired noise would differ by ~sqrt(2) x the spread: the pairing is real
    hdr, runs = load_runs(tmp_path / "c" / "spice_runs.npz")
    assert runs["x_final"].shape == (4, 6)
    # first law with the injected noise power measured directly: < 1 % of the dissipation
    assert np.max(np.abs(runs["energy_first_law_residual"])) < 0.01, runs["energy_first_law_residual"]
    shuffled = runs["x_final"][::-1]
    assert np.sqrt(np.mean((shuffled - runs["x_final"]) ** 2)) > 5 * pr.rms_state_difference


def test_trrandom_cosim_writes_report_and_heat_is_consistent(tmp_path):
    p = small_program(seed=2)
    cfg = CosimConfig(runs=4, ideal_runs=100, t_f=0.5, seed=1)
    rep = run_cosim(p, cfg, tmp_path / "c", progress=False)
    out = tmp_path / "c"
    for f in ("cosim.json", "spice_runs.npz", "ideal_float.npz", "ideal_realised.npz", "plots/heat.png",
              "plots/unit_moments.png"):
        assert (out / f).is_file(), f
    _, runs = load_runs(out / "spice_runs.npz")
    # model heat two ways on the SPICE trajectory: first law and Stratonovich sum agree
    assert np.max(np.abs(runs["heat"] - runs["heat_strat"])) < 0.02 * np.max(np.abs(runs["heat"])) + 0.01
    # electrical dissipation: resistors and cubic elements only dissipate
    assert np.all(runs["energy_resistive_J"] > 0)
    # SPICE agrees with the realised ideal model (fixed seeds; the statistical tests are weak at
    # 4 runs, the paired test above is the sharp one)
    assert rep.unit_moments.agree and rep.heat.agree, rep.verdicts
    assert rep.verdicts[0].startswith("per-unit means/variances: AGREE")
    on_disk = json.loads((out / "cosim.json").read_text())
    assert on_disk["spice_runs"] == 4
    assert on_disk["provenance"]["ngspice"].startswith("ngspice-") and on_disk["provenance"]["seeds"]["cosim"] == 1
    # the returned record is the file: to_dict() through JSON is cosim.json, key order included
    assert json.dumps(on_disk) == json.dumps(json.loads(json.dumps(rep.to_dict())))


def test_cli_cosim_and_parallel_workers(tmp_path, capsys):
    p = small_program(seed=4)
    p.save(tmp_path / "prog")
    code = main(["cosim", str(tmp_path / "prog"), "-o", str(tmp_path / "c"), "--runs", "4", "--ideal-runs", "50",
                 "--t-f", "0.3", "--workers", "2", "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "per-unit means/variances" in out and "4 SPICE runs" in out


def test_cli_cosim_bad_program_folder(tmp_path, capsys):
    assert main(["cosim", str(tmp_path), "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compiled program" in err[0]


def test_mismatched_chip_cosim_follows_the_chip_not_the_program(tmp_path):
    """A fabricated chip (5x the preset's component spreads) in paired-noise mode: SPICE tracks
    the chip's own model to < 1 % of the spread - the mismatched netlist is what the chip model
    says - while the program's realised model, driven by the same noise, ends far away."""
    from thermohw.calibrate import HiddenErrors
    from thermohw.calibrate.devices import chip_under_test
    from thermohw.langevin import simulate

    p = small_program()
    chip = chip_under_test(p, HiddenErrors.draw(p.target, p.realised.n_units, 3, scale=5.0), label="chip 3")
    cfg = CosimConfig(runs=4, ideal_runs=50, t_f=0.5, noise="pwl", nt_fraction=0.02, seed=3)
    rep = run_cosim(p, cfg, tmp_path / "c", progress=False, chip=chip)
    assert rep.chip["label"] == "chip 3" and rep.verdicts[0].startswith("SPICE ran: chip 3")
    assert rep.paired.relative < 0.01, rep.paired
    _, runs = load_runs(tmp_path / "c" / "spice_runs.npz")
    from thermohw.cosim import prepare

    _, x0, noise = prepare(p, cfg, chip)
    k = noise.shape[0]
    prog = simulate(p.realised, x0, n_steps=k, dt=cfg.t_f / k, noise=noise, stratonovich=False)
    d_prog = np.sqrt(np.mean((runs["x_final"] - prog.x_final) ** 2))
    assert d_prog > 5 * rep.paired.rms_state_difference, (d_prog, rep.paired)
    # with a chip and paired noise too (the chip sits where the dict report had it)
    on_disk = json.loads((tmp_path / "c" / "cosim.json").read_text())
    assert json.dumps(on_disk) == json.dumps(json.loads(json.dumps(rep.to_dict())))


def test_cli_cosim_interrupted_then_resumed_equals_an_uninterrupted_sweep(tmp_path):
    """A real SIGINT to a running `thermohw cosim` (30 runs, so a loaded machine
    cannot finish the sweep between the poll and the signal): exit 130 with the --resume hint, the
    finished runs saved. A plain rerun into that folder is refused (it would overwrite them); a
    bare --resume runs only the missing runs, and the final runs equal, bit for bit, those of
    an uninterrupted sweep (same seed per run index)."""
    import signal
    import subprocess
    import sys
    import time

    from thermohw.cosim import prepare, spice_job

    p = small_program(seed=6)
    p.save(tmp_path / "prog")
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "thermohw", "cosim", str(tmp_path / "prog"), "-o", str(out), "--runs", "30",
           "--ideal-runs", "30", "--t-f", "0.3", "--seed", "5", "-q"]
    # a shell that starts jobs in the background hands them SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the child Ctrl-C's default disposition back
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        if (out / "spice_runs.npz").exists() and load_runs(out / "spice_runs.npz")[1]["index"].size >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    saved = load_runs(out / "spice_runs.npz")[1]["index"]
    assert 2 <= saved.size < 30, saved  # interrupted mid-sweep
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "--resume" in r.stderr, r.stderr
    assert np.array_equal(load_runs(out / "spice_runs.npz")[1]["index"], saved)  # nothing overwritten
    r = subprocess.run(cmd[:7] + ["--resume", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "cosim.json").read_text())
    assert (rep["spice_runs"], rep["resumed_runs"], rep["complete"]) == (30, saved.size, True)
    specs, _, _ = prepare(p, CosimConfig(runs=30, ideal_runs=30, t_f=0.3, seed=5))
    _, runs = load_runs(out / "spice_runs.npz")
    for s in specs:
        clean = spice_job(s)
        for k in ("x_final", "x0", "snap", "heat", "heat_strat"):
            assert np.array_equal(runs[k][s["index"]], clean[k]), (s["index"], k)


def test_mean_test_is_pooled_and_keeps_its_false_alarm_rate_with_few_spice_runs():
    """With 2 SPICE runs Welch's t leans on a variance from one degree of freedom; the pooled
    test is exact when both samples share one distribution (the null hypothesis). 4000 trials of
    2 vs 200 draws from one normal: at alpha = 0.01, 40 false alarms are expected, s.d. 6.3, so
    the pooled count must lie within 40 +- 4 s.d.; Welch's is far above it (why cosim pools)."""
    from scipy import stats

    from thermohw.cosim import _mean_test, unit_moments_test

    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(4000, 2)), rng.normal(size=(4000, 200))
    pooled = stats.ttest_ind(a, b, axis=1, equal_var=True).pvalue
    welch = stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    assert 40 - 4 * 6.3 < np.sum(pooled < 0.01) < 40 + 4 * 6.3
    assert np.sum(welch < 0.01) > 40 + 8 * 6.3
    r = _mean_test(a[0], b[0])
    assert r["method"].startswith("Student") and r["p"] == stats.ttest_ind(a[0], b[0], equal_var=True).pvalue
    # the per-unit test on the same draws (units = trials): rejections within the binomial allowance
    um = unit_moments_test(a[:1000].T, b[:1000].T)  # 2 SPICE runs, 200 ideal, 1000 units
    assert um.mean_rejections <= um.allowed_by_chance
