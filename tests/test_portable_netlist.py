"""Portable netlists (compile --noise pwl|none), run in the real ngspice, and the designer's
tools around them: readout's paired comparison and waveform plot, estimate, targets --show."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from thermohw.backends import pwl
from thermohw.cli import main
from thermohw.compile import CompiledProgram

from conftest import random_computer

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice not installed (apt-get install -y ngspice libngspice0)")


def _model(tmp_path, n_visible=4, n_hidden=2, seed=1):
    c = random_computer(n_visible, n_hidden, seed=seed, scale=0.3)
    return str(c.save(tmp_path / "model.npz"))


def _ngspice(folder, cwd):
    """Plain ngspice as a designer runs it, from another folder (the include must still be found)."""
    subprocess.run(["ngspice", "-b", "-r", str(cwd / "out.raw"), str(folder / "chip.cir")], cwd=cwd, check=True,
                   capture_output=True, timeout=120)
    return cwd / "out.raw"


@needs_ngspice
def test_pwl_netlist_runs_in_ngspice_and_matches_the_ideal_model_driven_by_its_noise(tmp_path, capsys):
    """compile --noise pwl -> plain ngspice -> readout: the run is paired with the realised ideal
    model driven by noise.npz from the written start state. What remains is the Euler error of
    the ideal run at dt = NT (O(NT); measured 0.5 % of the spread at compile's NT = 0.05 / the
    fastest rate, 0.13 % at 0.02 in benchmarks/README.md): bound 2 %. Control: the same run
    against the ideal model driven by *other* noise differs by the order of the spread, so the
    agreement is the pairing."""
    model = _model(tmp_path)
    prog = tmp_path / "prog"
    assert main(["compile", model, "--target", "rc-8bit-dense", "--t-f", "0.5", "--noise", "pwl", "-q",
                 "-o", str(prog)]) == 0
    assert capsys.readouterr().out == ""  # -q
    text = (prog / "chip.cir").read_text()
    inc = (prog / "noise.inc").read_text()
    assert ".include noise.inc" in text and "TRRANDOM" not in text and ".options seed" not in text
    assert "TRRANDOM" not in inc and len(re.findall(r"^In\d+ 0 u\d+ PWL\($", inc, re.M)) == 6
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    raw = _ngspice(prog, run_dir)
    assert main(["readout", str(prog), str(raw), "-o", str(tmp_path / "ro"), "--nodes", "0,3"]) == 0
    out = capsys.readouterr().out
    assert "paired with the realised ideal model" in out
    paired = json.loads((tmp_path / "ro" / "readout.json").read_text())["paired"]
    assert paired["noise_samples"] == 147
    assert paired["relative_max"] < 0.02, paired
    assert (tmp_path / "ro" / "plots" / "waveforms.png").is_file()
    # control: other noise, same start state and program
    p = CompiledProgram.load(prog)
    from thermohw.readout import states
    from thermohw.spice.ngspice import read_raw

    s, x = states(p, read_raw(raw))
    rec = pwl.load(prog / "noise.npz")
    other = pwl.compare(p, s, x, {**rec, "z": np.random.default_rng(5).standard_normal(rec["z"].shape)})
    assert other["relative_final"] > 10 * paired["relative_final"], (other, paired)


@needs_ngspice
def test_noiseless_netlist_follows_the_deterministic_drift(tmp_path):
    """--noise none: no noise source at all, and ngspice follows the realised model's drift from
    the written start state (the paired comparison with zero noise; same O(NT) bound)."""
    model = _model(tmp_path)
    prog = tmp_path / "prog"
    assert main(["compile", model, "--target", "rc-8bit-dense", "--t-f", "0.5", "--noise", "none", "-q",
                 "-o", str(prog)]) == 0
    text = (prog / "chip.cir").read_text()
    assert not re.search(r"TRRANDOM|TRNOISE|PWL|\.include", text) and not (prog / "noise.inc").exists()
    p = CompiledProgram.load(prog)
    from thermohw.backends import generation_start, rc
    from thermohw.readout import states
    from thermohw.spice.ngspice import read_raw

    s, x = states(p, read_raw(_ngspice(prog, tmp_path)))
    _, nt, k = rc.generation_grid(p)
    drift = pwl.compare(p, s, x, {"z": np.zeros((k, 6)), "x0": generation_start(p)[1], "nt_s": nt,
                                  "tau_s": p.artefact.tau})
    assert drift["relative_max"] < 0.02, drift
    # the drift moved the state: the comparison is not of a state with itself
    assert float(np.sqrt(np.mean((x[-1] - x[0]) ** 2))) > 10 * drift["rms_difference_max"]


@needs_ngspice
def test_lc_pwl_netlist_runs_in_ngspice(tmp_path):
    c = random_computer(3, 1, seed=4, scale=0.2)
    model = str(c.save(tmp_path / "m.npz"))
    prog = tmp_path / "lc"
    assert main(["compile", model, "--target", "lc-spu", "--t-f", "0.05", "--noise", "pwl", "-q",
                 "-o", str(prog)]) == 0
    assert ".include noise.inc" in (prog / "chip.cir").read_text()
    rec = pwl.load(prog / "noise.npz")
    from thermohw.backends import lc
    from thermohw.spice.ngspice import read_raw

    p = CompiledProgram.load(prog)
    raw = read_raw(_ngspice(prog, tmp_path))
    assert raw["time"][-1] == pytest.approx(0.05 * p.artefact.tau, rel=1e-9)
    # the injected current of unit 0 in the middle of sample k is amplitude z[k]: read it back from
    # KCL is not possible, so check the file states what the record holds
    first = (prog / "noise.inc").read_text().split("PWL(\n+ ")[1].split()
    assert float(first[1]) == pytest.approx(rec["amplitude_A"][0] * rec["z"][0, 0], rel=1e-8)
    assert lc.states(raw, p.artefact)["x"].shape[1] == 4


def test_noise_option_reaches_the_mechanical_netlist(tmp_path):
    """Every backend now writes a netlist (the refusal of --noise for parameter-set-only targets
    is gone); the mechanical one pulls the held force noise in from noise.inc."""
    model = _model(tmp_path)
    assert main(["compile", model, "--target", "mechanical-cantilever", "--noise", "pwl", "-q", "-o",
                 str(tmp_path / "m")]) == 0
    text = (tmp_path / "m" / "chip.cir").read_text()
    assert ".include noise.inc" in text and (tmp_path / "m" / "noise.npz").is_file()


def test_estimate_reports_time_energy_elements_and_ngspice_time(tmp_path, capsys):
    model = _model(tmp_path)
    prog = tmp_path / "prog"
    assert main(["compile", model, "--target", "rc-8bit-dense", "--t-f", "0.5", "-q", "-o", str(prog)]) == 0
    assert main(["estimate", str(prog), "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    p = CompiledProgram.load(prog)
    assert est["time_per_sample_s"] == pytest.approx(0.5 * p.artefact.tau)
    el = est["elements"]
    n, pairs = 6, p.realised.n_couplings
    # one s-unit subcircuit per unit: C, R, trim G, cubic B, bias I; plus a noise source per unit
    assert el["by_letter"]["C"] == el["by_letter"]["R"] == el["by_letter"]["B"] == n
    assert el["noise_sources"] == n and el["by_letter"]["I"] == 2 * n
    assert el["coupling_elements"] == 2 * pairs == np.count_nonzero(p.artefact.G)
    hk = est["energy"]["housekeeping"]["housekeeping"]
    assert hk["energy_per_sample_J"] == pytest.approx(p.scales["housekeeping_power_per_unit_W"] * n * 0.5 * p.artefact.tau)
    h = est["energy"]["model_heat"]
    assert est["energy"]["total_per_sample_J"] == pytest.approx(h["mean_J"] + hk["energy_per_sample_J"])
    assert "not modelled" in est["energy"]["bias_dacs_and_amplifiers"]
    ng = est["ngspice"]
    assert ng["samples"] == 147 and ng["seconds"] > 0 and "bench_spice_scaling.py" in ng["source"]
    assert main(["estimate", str(prog)]) == 0
    text = capsys.readouterr().out
    assert "time per sample: 500 ns" in text and "ngspice, one run:" in text and "not modelled" in text


def test_cost_law_reproduces_its_anchor():
    """The crossbar law is anchored on the shipped chip's measured run (111.6 s, 2812 samples)."""
    from thermohw.spice.cost import predict

    assert predict("bipartite", 808, 784, 2812)["seconds"] == pytest.approx(111.6)
    lo_hi = predict("degree-limited", 512, 500, 1000)
    assert lo_hi["seconds_low"] == pytest.approx(9.0) and lo_hi["seconds_high"] == pytest.approx(1170)


def test_targets_show_prints_the_preset_file_with_its_comments(capsys):
    from importlib import resources

    assert main(["targets", "--show", "rc-mnist-crossbar"]) == 0
    out = capsys.readouterr().out
    assert out == (resources.files("thermohw") / "presets" / "rc-mnist-crossbar.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s*#", out, re.M)
    assert main(["targets", "--show", "rc-mnist-crosbar"]) == 1
    assert "did you mean 'rc-mnist-crossbar'" in capsys.readouterr().err


def test_compile_counts_the_files_it_really_writes(tmp_path, capsys):
    model = _model(tmp_path)
    shutil.copy(tmp_path / "model.npz", tmp_path / "digits.npz")  # any file: compile copies it beside
    prog = tmp_path / "prog"
    assert main(["compile", model, "--target", "rc-8bit-dense", "--noise", "pwl", "-o", str(prog)]) == 0
    n = int(re.search(r"wrote (\d+) files", capsys.readouterr().out).group(1))
    names = {f.name for f in prog.iterdir()}
    assert {"digits.npz", "noise.inc", "noise.npz", "manifest.json"} <= names and n == len(names)


def test_compile_help_points_at_the_targets_command(capsys):
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    out = capsys.readouterr().out
    assert "--list-targets" not in out and "thermohw targets" in out and "--noise" in out


def test_readout_nodes_need_an_output_folder_and_valid_units(tmp_path, capsys):
    model = _model(tmp_path)
    prog = tmp_path / "prog"
    assert main(["compile", model, "--target", "rc-8bit-dense", "--t-f", "0.5", "-q", "-o", str(prog)]) == 0
    (tmp_path / "x.raw").write_text("")
    for extra, msg in ((["--nodes", "1"], "give -o DIR"), (["--nodes", "9", "-o", str(tmp_path / "r")], "units 0..5")):
        assert main(["readout", str(prog), str(tmp_path / "x.raw"), *extra]) == 1
        assert msg in capsys.readouterr().err
