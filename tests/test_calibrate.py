"""Calibration stage 1: hidden errors, the ideal virtual chip, the ML fit (z-scores, Cramer-Rao
bound), replay from CSV/NPZ files and their error messages. Seconds; fixed seeds."""
import math

import numpy as np
import pytest

from thermohw import InputError, Protocol
from thermohw.calibrate import (ChipParameters, HiddenErrors, IdealVirtualChip, Recording, ReplayDevice, fit,
                                negative_log_likelihood, open_device)
from thermohw.calibrate import design
from thermohw.compile import CompileOptions, compile_computer
from thermohw.train import reverse_action

from conftest import random_computer

DT = 0.01        # sample interval (model time); the ideal chip integrates with the same step


@pytest.fixture(scope="module")
def program():
    """8 dense units on the 8-bit RC preset, full coupling range (headroom for trims)."""
    c = random_computer(4, 4, seed=1, connectivity="dense")
    return compile_computer(c, "rc-8bit-dense", CompileOptions(range="full"))


@pytest.fixture(scope="module")
def chip(program):
    """A poorly matched chip: 3x the preset's component spreads (6 % OTA gain sd, 3 % C and R,
    3 mV offsets) and a 9 % noise-level error, so the mismatch is many standard errors."""
    ch = IdealVirtualChip(chip_seed=7, scale=3.0)
    ch.program(program)
    return ch


def test_hidden_errors_map_components_to_model_parameters(program):
    """Element-level mismatch, converted back to model units, follows the documented formulas;
    no errors reproduce the realised model exactly."""
    circ, real = program.artefact, program.realised
    none = HiddenErrors.none(8).chip_parameters(circ, mask=real.mask)
    for k in ("J2", "J4", "b", "mu", "kT"):
        np.testing.assert_allclose(getattr(none, k), getattr(real, k), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(none.K, real.J, rtol=1e-12, atol=1e-15)

    e = HiddenErrors.draw(program.target, 8, seed=3)
    t = e.chip_parameters(circ, mask=real.mask)
    V_s = circ.V_s
    np.testing.assert_allclose(t.mu, real.mu / (1 + e.c_rel), rtol=1e-12)
    np.testing.assert_allclose(t.kT, real.kT * (1 + e.noise_rel) ** 2 / (1 + e.c_rel), rtol=1e-12)
    np.testing.assert_allclose(t.J2, real.J2 * (1 + e.g_rel), rtol=1e-12)
    np.testing.assert_allclose(t.J4, real.J4 * (1 + e.k3_rel), rtol=1e-12)
    np.testing.assert_allclose(t.K, real.J * (1 + e.gain), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.b, real.b + 2 * t.J2 * e.offset_V / V_s, rtol=1e-12, atol=1e-15)
    assert t.reciprocal                    # one element per pair by default


def test_error_free_chips_reproduce_a_program_with_per_unit_mobilities():
    """Per-unit mu (C_i = a / mu_i): both virtual chips express the circuit in the program's
    gauge a = mu_i C_i, so a perfect chip is exactly the realised model (a gauge taken from the
    mean mobility once doubled mu and halved J2 here)."""
    from thermohw.calibrate.devices import SpiceVirtualChip

    c = random_computer(3, 3, seed=2, connectivity="dense")
    c = c.replace(mu=np.linspace(0.5, 1.5, c.n_units))
    p = compile_computer(c, "rc-8bit-dense", CompileOptions(range="full"))
    real = p.realised
    for ch in (IdealVirtualChip(HiddenErrors.none(6)), SpiceVirtualChip(HiddenErrors.none(6))):
        ch.program(p)
        t = ch.reveal()
        for k in ("J2", "J4", "b", "mu", "kT"):
            np.testing.assert_allclose(getattr(t, k), getattr(real, k), rtol=1e-12, atol=1e-15, err_msg=k)
        np.testing.assert_allclose(t.K, real.J, rtol=1e-12, atol=1e-15)


def test_hidden_errors_are_seeded_and_follow_the_target(program):
    comp = program.target.components
    a, b = HiddenErrors.draw(program.target, 8, 5), HiddenErrors.draw(program.target, 8, 5)
    np.testing.assert_array_equal(a.gain, b.gain)
    assert not np.array_equal(a.gain, HiddenErrors.draw(program.target, 8, 6).gain)
    assert np.all(np.abs(a.c_rel) <= comp.cap_tolerance) and np.all(np.abs(a.g_rel) <= comp.resistor_tolerance)
    d = HiddenErrors.draw(program.target, 8, 5, reciprocal=False)
    assert not d.reciprocal and a.reciprocal
    with pytest.raises(InputError, match="reverse a coupling"):
        HiddenErrors(np.zeros(2), np.zeros(2), np.zeros(2), -2 * np.ones((2, 2)), np.zeros(2), np.zeros(2))


def test_fit_uses_the_training_likelihood(chip, program):
    """The fitted objective is train.reverse_action of the time-reversed recording, and the
    least-squares solution minimises it over the drift parameters."""
    rec = chip.run(None, 10.0, DT, seed=1, runs=16)
    truth = chip.reveal()
    nll = negative_log_likelihood(rec, truth)
    assert nll == pytest.approx(reverse_action(truth.to_computer(), rec.x[::-1], DT), rel=1e-12)
    f = fit(rec, mask=program.realised.mask, mu=program.realised.mu)
    best = f.params
    base = negative_log_likelihood(rec, best)
    rng = np.random.default_rng(0)
    for _ in range(5):
        d = np.triu(rng.normal(0, 0.01, (8, 8)), 1)
        worse = best.replace(K=np.where(best.mask, best.K + d + d.T, 0.0), J2=best.J2 + rng.normal(0, 0.01, 8),
                             b=best.b + rng.normal(0, 0.01, 8))
        assert negative_log_likelihood(rec, worse) > base


def _zscore_bands(fits):
    """4-sigma bands for the mean and the variance of all z-scores. z's of one unit's block
    are correlated (correlation C_b from the fitted covariance); blocks are independent, so
    var(mean z) = sum_b 1'C_b 1 / n^2 and var(mean z^2) = sum_b 2 tr(C_b^2) / n^2."""
    s1 = s2 = 0.0
    n = 0
    for f in fits:
        for cov in f.cov:
            d = np.sqrt(np.diag(cov))
            C = cov / np.outer(d, d)
            s1 += C.sum()
            s2 += 2 * np.sum(C * C)
            n += C.shape[0]
    return 4 * math.sqrt(s1) / n, 4 * math.sqrt(s2) / n


@pytest.mark.parametrize("mobility", ["bias", "nominal"])
def test_fit_recovers_hidden_parameters_at_the_cramer_rao_bound(chip, program, mobility):
    """8-unit dense chip with hidden mismatch, 6 independent recordings of 32 bias-step runs
    (1.3e5 steps each): z-scores of all parameters have mean ~0 and sd ~1 within the derived
    sampling bands, every standard error is within 1.5x of the Cramer-Rao bound, and the actual
    errors scatter at the bound (RMS of error/CRB ~ 1: the fit is efficient).
    Record length matters: the regression on a dynamic (autoregressive) design has an O(1/n)
    finite-sample bias - measured ~0.25 se on mu at 3e4 steps, ~0.1 se at 3e5 - and in the
    'bias' mode kT's standard error scales with the fitted mu (se/CRB ~ (1 +- cv_mu)^2), so
    short records give a noisier se/CRB ratio."""
    truth = chip.reveal()
    fits, z, ratio, eff = [], [], [], []
    for s in range(6):
        proto = design.bias_steps(8, 32, amplitude=1.0, seed=100 + s)
        rec = chip.run(proto, 40.0, DT, seed=200 + s)
        f = fit(rec, mask=program.realised.mask, mobility=mobility,
                mu=program.realised.mu if mobility == "nominal" else None)
        crb = f.cramer_rao(truth)
        fits.append(f)
        z.append(f.zscores(truth))
        ratio.append(f.se / crb)
        eff.append((f.value - f.truth_vector(truth)) / crb)
    z, ratio, eff = np.concatenate(z), np.concatenate(ratio), np.concatenate(eff)
    band_mean, band_var = _zscore_bands(fits)
    assert band_mean < 0.2 and band_var < 0.4, "the test lost its power"
    assert abs(z.mean()) < band_mean, (z.mean(), band_mean)
    assert abs(np.mean(z * z) - 1) < band_var, (np.mean(z * z), band_var)
    assert np.max(np.abs(z)) < 5.0                     # <600 draws: P(max |z| > 5) < 4e-4
    assert 1 / 1.5 < ratio.min() and ratio.max() < 1.5
    # RMS of error/CRB over ~550 parameters: 1 +- 0.04 (sd of an RMS of ~N(0,1) values,
    # inflated for correlation); 0.15 leaves room for the O(1/n) finite-sample bias
    assert abs(math.sqrt(np.mean(eff ** 2)) - 1) < 0.15
    # power: the same z-scores against the *programmed* parameters are far from N(0, 1) -
    # the fit sees the hidden mismatch
    prog = ChipParameters.from_computer(program.realised)
    z_prog = np.concatenate([f.zscores(prog) for f in fits])
    assert np.mean(z_prog ** 2) > 1 + 3 * band_var


def test_bias_mode_fits_the_mobility_and_nominal_mode_the_equivalent_rows(chip, program):
    """'bias': mu_i is the fitted coefficient of the known imposed bias (C mismatch shows up
    there); 'nominal': the same motion expressed with the program's mu (rows scaled)."""
    truth = chip.reveal()
    rec = chip.run(design.bias_steps(8, 32, seed=1), 40.0, DT, seed=3)
    fb = fit(rec, mask=program.realised.mask, mobility="bias")
    fn = fit(rec, mask=program.realised.mask, mobility="nominal", mu=program.realised.mu)
    zmu = (fb.estimate["mu"] - truth.mu) / fb.stderr["mu"]
    assert np.max(np.abs(zmu)) < 4.5
    # drift coefficients agree between the gauges (same regression): mu_b J2_b = mu_n J2_n
    np.testing.assert_allclose(fb.estimate["mu"] * fb.estimate["J2"], fn.mu * fn.estimate["J2"], rtol=1e-9)
    np.testing.assert_allclose(fb.estimate["mu"] * fb.estimate["kT"], fn.mu * fn.estimate["kT"], rtol=1e-9)
    with pytest.raises(InputError, match="bias_steps"):
        fit(chip.run(None, 2.0, DT, seed=1, runs=2), mobility="bias")


@pytest.mark.parametrize("discretisation", ["euler", "continuous"])
def test_pooled_statistics_give_the_fit_of_the_concatenated_recording(chip, program, discretisation):
    """Fitting chunks of runs by adding their sufficient statistics (bounded memory) is the same
    estimate as fitting all runs at once: equal to rounding (1e-9 relative)."""
    from thermohw.calibrate import Statistics

    proto = design.bias_steps(8, 24, seed=4)
    parts = [chip.run(Protocol(proto.h[k:k + 8]), 5.0, DT, seed=30 + k) for k in (0, 8, 16)]
    mask, kw = program.realised.mask, dict(mobility="bias", discretisation=discretisation)
    whole = fit(Recording.concat(parts), mask=mask, **kw)
    for pooled in (fit(parts, mask=mask, **kw),
                   *([fit(sum((Statistics.of(r) for r in parts[1:]), Statistics.of(parts[0])), mask=mask, **kw)]
                     if discretisation == "euler" else [])):
        np.testing.assert_allclose(pooled.value, whole.value, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(pooled.se, whole.se, rtol=1e-9)
        assert pooled.n_transitions == whole.n_transitions
    if discretisation == "continuous":
        with pytest.raises(InputError, match="needs the recordings"):
            fit(Statistics.of(parts[0]), mask=mask, **kw)
    with pytest.raises(InputError, match="sample intervals"):
        Statistics.of(parts[0]) + Statistics.of(parts[1].decimate(2))


def test_statistics_do_not_depend_on_the_thread_count(chip, monkeypatch):
    """Time blocks are summed in block order whatever the number of threads: bit-identical."""
    import os

    import importlib

    from thermohw.calibrate import Statistics

    fit_module = importlib.import_module("thermohw.calibrate.fit")   # the package exports the function
    rec = chip.run(design.bias_steps(8, 16, seed=2), 30.0, DT, seed=5)
    monkeypatch.setattr(fit_module, "_CHUNK", 16 * 17 * 50)     # 50 steps per block: 60 blocks
    got = []
    for n in (1, 2, 5):
        monkeypatch.setattr(os, "cpu_count", lambda n=n: n)
        got.append(Statistics.of(rec))
    for g in got[1:]:
        np.testing.assert_array_equal(g.ZZ, got[0].ZZ)
        np.testing.assert_array_equal(g.ZY, got[0].ZY)


def test_fit_detects_non_reciprocal_couplings(program):
    """Directed gain errors +-30 % on every pair: the rows' separate estimates see it (chi^2
    of the asymmetry z's far above its 28 dof), and the rows match the directed truth."""
    n = 8
    g = np.triu(np.full((n, n), 0.3), 1)
    e = HiddenErrors(np.zeros(n), np.zeros(n), np.zeros(n), g - g.T, np.zeros(n), np.zeros(n))
    ch = IdealVirtualChip(e)
    ch.program(program)
    truth = ch.reveal()
    assert not truth.reciprocal
    rec = ch.run(design.bias_steps(n, 16, seed=2), 40.0, DT, seed=4)
    f = fit(rec, mask=program.realised.mask, mobility="bias")
    z = f.zscores(truth)
    assert np.max(np.abs(z)) < 4.5
    iu = np.triu_indices(n, 1)
    chi2 = float(np.sum(f.asymmetry_z[iu] ** 2))
    assert chi2 > 28 + 5 * math.sqrt(2 * 28), chi2          # 5 sigma above a reciprocal chip
    # and the same test on the reciprocal chip stays within its chi^2(28) spread
    ch2 = IdealVirtualChip(chip_seed=7, scale=3.0)
    ch2.program(program)
    f2 = fit(ch2.run(design.bias_steps(n, 16, seed=2), 40.0, DT, seed=4), mask=program.realised.mask, mobility="bias")
    assert float(np.sum(f2.asymmetry_z[iu] ** 2)) < 28 + 4 * math.sqrt(2 * 28)


def test_cramer_rao_bound_scales_with_recorded_trajectories(chip, program):
    """RMS error and CRB of the couplings fall as 1/sqrt(runs)."""
    truth = chip.reveal()
    crb = {}
    for runs in (16, 64):
        rec = chip.run(design.bias_steps(8, runs, seed=runs), 10.0, DT, seed=runs)
        f = fit(rec, mask=program.realised.mask, mobility="bias")
        k = np.array([nm.startswith("K") for nm in f.names])
        crb[runs] = math.sqrt(np.mean(f.cramer_rao(truth)[k] ** 2))
    assert crb[16] / crb[64] == pytest.approx(2.0, rel=0.1)


def test_predicted_errors_rank_designs(program):
    """Bias steps pin down the on-site terms better than free runs of the same length."""
    free = design.predicted_errors(program, design.free_runs(8, 16), 10.0, DT)
    steps = design.predicted_errors(program, design.bias_steps(8, 16), 10.0, DT)
    assert steps["rms_by_kind"]["J4"] < free["rms_by_kind"]["J4"]
    pw = design.pairwise(program.realised.mask, 0.5)
    assert pw.h.shape == (2 * 28, 8)
    # a zero-coupling program isolates the on-site terms: 5 parameters per unit, well conditioned
    z = design.zero_couplings(program)
    assert not np.any(z.realised.J) and not np.any(z.artefact.G)
    onsite = design.predicted_errors(z, design.bias_steps(8, 16), 10.0, DT, mobility="bias",
                                     mask=np.zeros((8, 8), bool))
    assert len(onsite["names"]) == 8 * 5 and np.max(onsite["condition"]) < 1e3


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recording(chip):
    return chip.run(design.bias_steps(8, 6, seed=9), 5.0, DT, seed=11)


def test_replay_round_trip_gives_the_identical_fit(recording, program, tmp_path):
    """Recorded traces written to NPZ and CSV (model units: 17 digits, exact) and to an
    oscilloscope-style CSV in volts and seconds, read back by the replay device and fitted,
    give the same fit. 'Same' is to 1e-12: the traces come back bit-identical, but OpenBLAS's
    summation order in the Gram products can depend on the arrays' memory alignment, which
    moves the last bit or two (1e-15 relative)."""
    ref = fit(recording, mask=program.realised.mask, mobility="bias")
    files = {"npz": recording.save(tmp_path / "rec.npz"), "csv": recording.save(tmp_path / "rec.csv"),
             "si": recording.save_csv(tmp_path / "si.csv", si=True)}
    for kind, path in files.items():
        dev = open_device(f"replay:{path}")
        dev.program(program)
        rec = dev.run(None, None, None, None)
        assert rec.x.shape == recording.x.shape
        f = fit(rec, mask=program.realised.mask, mobility="bias")
        if kind == "si":     # volts / V_s and seconds / tau: a rounding in the last digit
            np.testing.assert_allclose(f.value, ref.value, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(f.se, ref.se, rtol=1e-9)
        else:
            np.testing.assert_array_equal(rec.x, recording.x)
            np.testing.assert_array_equal(rec.bias, recording.bias)
            np.testing.assert_allclose(f.value, ref.value, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(f.se, ref.se, rtol=1e-12)
    text = files["si"].read_text().splitlines()
    assert text[:5] == ["# thermohw.recording/1", f"# sample_interval: {DT * 1e-6!r}", "# time_unit: s",
                        "# x_unit: V", "# V_s_V: 0.1"]
    assert text[6] == "run,time," + ",".join(f"x{i}" for i in range(8)) + "," + ",".join(f"h{i}" for i in range(8))


def test_replay_plain_npz_folder_decimate_and_truncate(recording, program, tmp_path):
    """A lab's plain NPZ (volts, seconds; one file per run set), a folder of files joined run
    by run, decimation to a longer interval and truncation."""
    half = recording.n_runs // 2
    for k, sel in enumerate((slice(0, half), slice(half, None))):
        np.savez(tmp_path / f"part{k}.npz", x=recording.x[:, sel] * 0.1, time=recording.times * 1e-6,
                 sample_interval=DT * 1e-6, bias=recording.bias[sel], time_unit="s", x_unit="V",
                 V_s_V=0.1, tau_s=1e-6)
    dev = ReplayDevice(tmp_path)
    dev.program(program)
    rec = dev.run(None, 2.0, 2 * DT)
    np.testing.assert_allclose(rec.x, recording.x[:201:2], rtol=1e-12, atol=1e-15)
    assert rec.sample_interval == pytest.approx(2 * DT) and rec.n_samples == 101
    with pytest.raises(InputError, match="whole multiple"):
        dev.run(None, None, 1.5 * DT)
    with pytest.raises(InputError, match="exceeds"):
        dev.run(None, 99.0, None)
    with pytest.raises(InputError, match="differs from the biases"):
        dev.run(Protocol(np.zeros((6, 8))))


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def _csv(rows=3, n=2, dt=0.01, head=None):
    head = head if head is not None else ["# thermohw.recording/1", f"# sample_interval: {dt}"]
    lines = head + ["run,time," + ",".join(f"x{i}" for i in range(n))]
    for r in range(2):
        for k in range(rows):
            lines.append(f"{r},{k * dt},{0.1 * k},{-0.1 * k}")
    return lines


@pytest.mark.parametrize("edit, message", [
    (lambda L: [ln.replace(",x1", "") if ln.startswith("run") else ln.rsplit(",", 1)[0] if ln[0].isdigit() else ln
                for ln in L], None),   # a 1-unit file is fine (control)
    (lambda L: [ln.replace("run,", "") if ln.startswith("run") else ln.split(",", 1)[1] if ln[0].isdigit() else ln
                for ln in L], "missing column\\(s\\) run"),
    (lambda L: [ln.replace("x0", "y0") for ln in L], "missing column\\(s\\) x0"),
    (lambda L: [ln for ln in L if "sample_interval" not in ln], "sample_interval: ...' is missing"),
    (lambda L: L[:4] + [L[4].replace("0.01,", "0.013,")] + L[5:], "non-uniform time base"),
    (lambda L: L[:5] + [L[5].replace("0.2,", "nan,")] + L[6:], "NaN or inf in column x0 at line 6"),
    (lambda L: L[:-1], "different numbers of samples"),
    (lambda L: L[:4] + [L[4].replace("0.1,", "abc,")] + L[5:], "non-numeric field"),
    (lambda L: L[:3] + [L[4], L[3]] + L[5:], "not increasing in run 0"),
    (lambda L: L[:2] + ["# x_unit: V"] + L[2:], "V_s_V .* is missing"),
    (lambda L: L[:2] + ["# time_unit: ms"] + L[2:], "time_unit 'ms' is not supported"),
])
def test_bad_csv_files_give_clear_errors(tmp_path, edit, message):
    path = _write(tmp_path / "bad.csv", edit(_csv()))
    if message is None:
        assert Recording.load(path).n_units == 1
        return
    with pytest.raises(InputError, match=message) as e:
        ReplayDevice(path)
    assert str(path) in str(e.value)


def test_bad_bias_columns_and_npz_files(tmp_path, program):
    L = _csv()
    L[2] += ",h0,h1"
    body = [ln + (",0.5,0" if ln[0] == "0" else ",0.1,0") for ln in L[3:]]
    assert Recording.load(_write(tmp_path / "ok.csv", L[:3] + body)).bias.tolist() == [[0.5, 0], [0.1, 0]]
    body[1] = body[1].replace(",0.5,0", ",0.7,0")
    with pytest.raises(InputError, match="split the trace at each bias step"):
        Recording.load(_write(tmp_path / "step.csv", L[:3] + body))
    np.savez(tmp_path / "a.npz", x=np.zeros((5, 2)))
    with pytest.raises(InputError, match="missing array\\(s\\) time, sample_interval"):
        Recording.load(tmp_path / "a.npz")
    x = np.zeros((5, 1, 2))
    x[2, 0, 1] = np.nan
    np.savez(tmp_path / "b.npz", x=x, time=np.arange(5) * 0.1, sample_interval=0.1)
    with pytest.raises(InputError, match="NaN or inf \\(first at sample 2, run 0, unit 1\\)"):
        Recording.load(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 2)), time=np.array([0, 0.1, 0.2, 0.4, 0.5]), sample_interval=0.1)
    with pytest.raises(InputError, match="non-uniform time base"):
        Recording.load(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable"):
        Recording.load(tmp_path / "d.npz")
    with pytest.raises(InputError, match="unknown recording format"):
        Recording.load(_write(tmp_path / "e.txt", ["x"]))
    np.savez(tmp_path / "f.npz", x=np.zeros((5, 3)), time=np.arange(5) * 0.1, sample_interval=0.1)
    dev = ReplayDevice(tmp_path / "f.npz")
    with pytest.raises(InputError, match="3 units but the program has 8"):
        dev.program(program)


def test_device_usage_errors(program):
    ch = IdealVirtualChip(chip_seed=1)
    with pytest.raises(InputError, match="program\\(\\) it"):
        ch.run(None, 1.0, DT, seed=0)
    ch.program(program)
    with pytest.raises(InputError, match="constant imposed biases"):
        ch.run(Protocol(np.ones(8), "linear_decay", 1.0), 1.0, DT, seed=0)
    with pytest.raises(InputError, match="not a positive whole number"):
        ch.run(None, 1.0, 0.3, seed=0)
    with pytest.raises(InputError, match="unknown device"):
        open_device("virtual-fpga")
    rec = ch.run(Protocol(np.ones(8)), 1.0, DT, seed=0, runs=3)
    assert rec.x.shape == (101, 3, 8) and rec.units["V_s_V"] == 0.1
    f = fit(rec, mask=program.realised.mask, mu=program.realised.mu)
    assert any("same in every run" in n for n in f.notes)
