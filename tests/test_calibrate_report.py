"""Calibration report (the workflow behind 'thermohw calibrate'): files, JSON content, replay of
the recorded measurement with an explicit intended program. Small and fast settings."""
import json

import numpy as np
import pytest

from thermohw import Computer, InputError
from thermohw.calibrate import IdealVirtualChip, ReplayDevice
from thermohw.calibrate.report import CalibrationSetup, discretisation_for, run_calibration
from thermohw.compile import CompileOptions, CompiledProgram, compile_computer
from thermohw.data import Digits


def image_program():
    """4 visible units shown as a 2x2 image + 4 hidden, dense couplings."""
    rng = np.random.default_rng(2)
    c = Computer.zeros(4, 4, connectivity="dense", image_shape=(2, 2))
    J = rng.normal(0, 0.4, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    return compile_computer(c.replace(J=J * 0.8 / np.abs(J).max(), b=rng.normal(0, 0.3, 8)), "rc-8bit-dense",
                            CompileOptions(range="full"))


FAST = CalibrationSetup(runs=128, duration=10.0, sample_interval=0.05, amplitude=3.0, iterations=2,
                        generate_runs=200, generate_dt=0.01, J4_trim_step=1 / 256)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("cal")
    p = image_program()
    digits = Digits(np.array([[1.0, -1, 1, -1], [1, 1, -1, -1]]), np.array([0, 1]), (2, 2), "test")
    rep = run_calibration(p, IdealVirtualChip(chip_seed=5, scale=5.0), out, FAST, digits=digits)
    return p, out, rep


def test_report_files_and_content(report):
    p, out, rep = report
    for f in ("report.json", "recording_initial.npz", "plots/fitted_vs_programmed.png", "plots/residuals.png",
              "plots/error_history.png", "plots/heat_before_after.png", "plots/digits_before_after.png", "plots/paired_differences.png",
              "corrected/report.json", "corrected/chip.cir"):
        assert (out / f).is_file(), f
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["schema"] == "thermohw.calibration/1" and on_disk["discretisation"] == "euler"
    assert on_disk["provenance"]["seeds"]["calibration"] == on_disk["setup"]["seed"]
    vt = on_disk["virtual_truth"]
    assert vt["errors_after"]["J"] < vt["errors_before"]["J"]
    assert set(on_disk["fits"]) == {"before", "after"}
    assert "J2[0]" in on_disk["fits"]["before"]["parameters"]
    g = on_disk["generation"]
    assert {"intended (realised)", "fitted before", "fitted after", "chip before (hidden truth)",
            "chip after (hidden truth)"} == set(g)
    assert "digits" in g["fitted after"] and "paired_difference" in g["fitted after"]["digits"]
    # heat in one energy unit (the intended kT); the chip's own noise level is one of its errors
    it, cb = g["intended (realised)"], g["chip before (hidden truth)"]
    assert it["heat_kT"] == it["heat_own_kT"]
    from thermohw.calibrate import IdealVirtualChip as Chip
    ch = Chip(chip_seed=5, scale=5.0)
    ch.program(p)
    ratio = p.realised.kT_ref / float(np.mean(ch.reveal().kT))
    assert cb["heat_own_kT"]["mean"] == pytest.approx(cb["heat_kT"]["mean"] * ratio, rel=1e-9)
    assert "paired_heat_difference_kT" in cb
    assert any(v.startswith("hidden truth: RMS coupling error") for v in on_disk["verdicts"])
    # the returned record is the file: to_dict() through JSON is report.json, key order included
    assert json.dumps(on_disk) == json.dumps(json.loads(json.dumps(rep.to_dict())))
    corrected = CompiledProgram.load(out / "corrected")
    assert corrected.report["calibration"]["out_of_range"] == []
    assert not np.array_equal(corrected.codes["J"], p.codes["J"])


def test_replay_of_the_recorded_measurement(report, tmp_path):
    """The saved first measurement replays (metadata says Euler steps: the fit matches the
    live one exactly), and the recommended correction is written."""
    p, out, rep = report
    dev = ReplayDevice(out / "recording_initial.npz")
    assert discretisation_for(dev) == "euler"
    r2 = run_calibration(p, dev, tmp_path / "replay", CalibrationSetup(generate_runs=0), intended=p)
    assert r2.correction["recommended"]
    a = r2.fits["measured"]["parameters"]
    b = rep.fits["before"]["parameters"]
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k]["value"] for k in a], [b[k]["value"] for k in a], rtol=1e-9, atol=1e-12)
    assert (tmp_path / "replay" / "corrected" / "codes.npz").is_file()
    on_disk = json.loads((tmp_path / "replay" / "report.json").read_text())  # the replay form of the record
    assert json.dumps(on_disk) == json.dumps(json.loads(json.dumps(r2.to_dict())))
    with pytest.raises(InputError, match="runs must be >= 2"):
        CalibrationSetup(runs=1)


def test_cli_calibrate(tmp_path, capsys):
    """thermohw compile -> thermohw calibrate --device virtual-ideal, then replay of the saved
    measurement; a bad device or file is one line on stderr and exit 1."""
    from thermohw.cli import main

    p = image_program()
    p.save(tmp_path / "prog")
    args = ["calibrate", str(tmp_path / "prog"), "-o", str(tmp_path / "cal"), "--runs", "64", "--duration", "10",
            "--sample-interval", "0.05", "--amplitude", "3", "--iterations", "1", "--mismatch-scale", "5",
            "--generate-runs", "0"]
    assert main(args + ["--device", "virtual-ideal"]) == 0
    out = capsys.readouterr().out
    assert "hidden truth: RMS coupling error" in out and "corrected program ->" in out
    rec = tmp_path / "cal" / "recording_initial.npz"
    assert main(["calibrate", str(tmp_path / "prog"), "--device", f"replay:{rec}", "-o", str(tmp_path / "r"),
                 "--generate-runs", "0", "--intended", str(tmp_path / "prog")]) == 0
    assert json.loads((tmp_path / "r" / "report.json").read_text())["correction"]["recommended"]
    assert main(args + ["--device", "replay:" + str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.csv: no such file" in err[0]
    assert main(args + ["--device", "fpga"]) == 1
    assert "unknown device 'fpga'" in capsys.readouterr().err


@pytest.mark.skipif(__import__("shutil").which("ngspice") is None, reason="ngspice not installed")
def test_cli_calibrate_verifies_in_ngspice(tmp_path, capsys):
    """--verify-spice: the chip's mismatched netlist, as programmed and as corrected, runs the
    generation in ngspice; both cosim reports are written and summarised."""
    from thermohw.cli import main

    p = image_program()
    p.save(tmp_path / "prog")
    assert main(["calibrate", str(tmp_path / "prog"), "-o", str(tmp_path / "cal"), "--device", "virtual-ideal",
                 "--runs", "64", "--duration", "10", "--sample-interval", "0.05", "--amplitude", "3",
                 "--iterations", "1", "--mismatch-scale", "5", "--generate-runs", "0", "--verify-spice", "3",
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "ngspice, chip before correction: <Q>" in out and "ngspice, chip after correction" in out
    rep = json.loads((tmp_path / "cal" / "report.json").read_text())
    for k in ("before", "after"):
        cos = json.loads((tmp_path / "cal" / f"cosim-{k}" / "cosim.json").read_text())
        assert cos["spice_runs"] == 3 and cos["chip"]["label"].endswith(f"{k} correction")
        assert rep["spice_verification"][k]["heat_kT"]["n"] == 3
    assert main(["calibrate", str(tmp_path / "prog"), "-o", str(tmp_path / "x"), "--device", "virtual-ideal",
                 "--verify-spice", "1"]) == 1
    assert "verify_runs" in capsys.readouterr().err


def test_interrupted_calibration_resumes_from_its_measurements(tmp_path):
    """A calibration stopped in its second measurement resumes there: the first measurement's
    fit comes from out/measurements, and the report equals an uninterrupted run's."""
    class Flaky(IdealVirtualChip):
        def __init__(self, stop_at=None, **kw):
            super().__init__(**kw)
            self.calls, self.stop_at = 0, stop_at

        def run(self, *a, **kw):
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt
            return super().run(*a, **kw)

    p = image_program()
    setup = CalibrationSetup(runs=32, duration=5.0, sample_interval=0.05, amplitude=3.0, iterations=2,
                             generate_runs=0, chunk_runs=16)
    with pytest.raises(KeyboardInterrupt):
        run_calibration(p, Flaky(stop_at=3, chip_seed=5, scale=5.0), tmp_path / "a", setup)   # in measurement 1
    assert sorted(f.name for f in (tmp_path / "a" / "measurements").iterdir()) == ["measurement0.npz"]
    dev = Flaky(chip_seed=5, scale=5.0)
    resumed = run_calibration(p, dev, tmp_path / "a", setup)
    assert dev.calls == 2 * 2                          # measurements 1 and 2, two chunks each
    full = run_calibration(p, IdealVirtualChip(chip_seed=5, scale=5.0), tmp_path / "b", setup)
    for k in ("history", "virtual_truth", "correction"):
        assert getattr(resumed, k) == getattr(full, k), k
    # a different setup does not reuse the checkpoint
    dev2 = Flaky(chip_seed=5, scale=5.0)
    run_calibration(p, dev2, tmp_path / "a", CalibrationSetup(**{**setup.__dict__, "seed": 1}))
    assert dev2.calls == 3 * 2
