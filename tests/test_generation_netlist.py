"""The generation-protocol netlists that `compile` writes (RC and LC), run in the real ngspice."""
import json
import re
import shutil

import numpy as np
import pytest

from thermohw.backends import generation_start, lc, rc
from thermohw.compile import CompileOptions, compile_computer
from thermohw.langevin import simulate
from thermohw.spice.engines import node_voltages, run as run_spice
from thermohw.target import Target

from conftest import random_computer

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None,
                                reason="ngspice not installed (apt-get install -y ngspice libngspice0)")


def rc_program(options=None, seed=1):
    c = random_computer(4, 2, seed=seed, scale=0.3)
    return compile_computer(c, Target.preset("rc-8bit-dense").replace(units=16), options or CompileOptions())


def ic_values(text: str) -> dict[str, float]:
    line = next(ln for ln in text.splitlines() if ln.startswith(".ic "))
    from thermohw.spice.netlist import eng  # noqa: F401  (the writer's format: engineering suffixes)

    units = {"T": 1e12, "G": 1e9, "Meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12,
             "f": 1e-15, "a": 1e-18}
    out = {}
    for node, val in re.findall(r"v\((u\d+)\)=(\S+)", line):
        m = re.fullmatch(r"([-+0-9.eE]+)(Meg|[TGkmunpfa])?", val)
        out[node] = float(m.group(1)) * units.get(m.group(2) or "", 1.0)
    return out


def test_compile_writes_the_generation_protocol_and_it_starts_from_the_written_state(tmp_path):
    p = rc_program(CompileOptions(netlist_seed=7, t_f=0.5))
    p.save(tmp_path)
    text = (tmp_path / "chip.cir").read_text()
    assert "generation protocol" in text and "seed 7" in text and ".options seed=7" in text
    assert "--netlist-seed" in text  # how to draw another start state
    t_f, x0 = generation_start(p)
    assert t_f == 0.5
    circ = p.artefact
    ic = ic_values(text)
    assert len(ic) == circ.n_units
    np.testing.assert_allclose([ic[f"u{i}"] for i in range(circ.n_units)], circ.V_s * x0, rtol=1e-9)
    # the start state is a draw from the coupling-free equilibrium: not all zero, O(sqrt(kT/2J2))
    assert 0.05 < float(np.std(x0)) < 1.0
    raw = run_spice(text, engine="batch")
    # ngspice 39 does not store t = 0 of a UIC run: its first point is after one tiny step
    # (~1e-5 tau), over which noise moves x by ~sqrt(2 mu kT 1e-5) = 1.4e-3 at most a few times
    assert raw["time"][0] < 1e-4 * circ.tau
    v_first = np.array([raw[f"v(u{i})"][0] for i in range(circ.n_units)])
    np.testing.assert_allclose(v_first / circ.V_s, x0, atol=5e-3)  # ngspice starts there (x0 spread ~0.2)
    assert raw["time"][-1] == pytest.approx(0.5 * circ.tau, rel=1e-9)
    # another netlist seed: another start state
    _, x1 = generation_start(rc_program(CompileOptions(netlist_seed=8, t_f=0.5)))
    assert not np.allclose(x0, x1)


def test_generation_netlist_with_shared_noise_reproduces_the_ideal_generation():
    """Paired: the same numpy noise drives the generation netlist (held PWL currents) and the
    realised ideal model (Euler, dt = NT) from the same written start state; they end within
    1 % of the spread of the generated states (what remains is O(NT) integration error)."""
    p = rc_program(CompileOptions(t_f=0.5))
    circ = p.artefact
    t_f, nt, k = rc.generation_grid(p)
    _, x0 = generation_start(p)
    rng = np.random.default_rng(11)
    finals_spice, finals_ideal = [], []
    for r in range(3):
        z = rng.standard_normal((k, circ.n_units))
        raw = run_spice(rc.generation_netlist(p, noise="pwl", pwl=z), engine="batch")
        xs = node_voltages(raw, circ.n_units, np.array([0.0, t_f * circ.tau])) / circ.V_s
        tr = simulate(p.realised, x0[None], n_steps=k, dt=nt / circ.tau, noise=z[:, None, :])
        finals_spice.append(xs[-1])
        finals_ideal.append(tr.x_final[0])
    fs, fi = np.array(finals_spice), np.array(finals_ideal)
    spread = float(np.std(fi))
    diff = float(np.sqrt(np.mean((fs - fi) ** 2)))
    assert diff < 0.01 * spread, (diff, spread)
    # unpaired runs differ by the full spread: the agreement is the pairing, not chance
    assert float(np.sqrt(np.mean((fs - np.roll(fi, 1, axis=0)) ** 2))) > 20 * diff


def test_free_run_netlist_is_still_available(tmp_path):
    p = rc_program(CompileOptions(netlist="free"))
    p.save(tmp_path)
    text = (tmp_path / "chip.cir").read_text()
    assert "generation protocol" not in text and ".ic " not in text
    tran = next(ln for ln in text.splitlines() if ln.startswith(".tran "))
    assert tran.split()[2] == "1u" and "uic" not in tran  # one model time unit (tau = 1 us) from the DC point
    assert len(re.findall(r"^G\d+_\d+ ", text, re.M)) == np.count_nonzero(p.artefact.G)  # every coupling


def test_node_voltages_supplies_the_start_of_a_uic_run():
    """ngspice 39 stores a UIC run from its first step on; the written start voltages fill t = 0."""
    from thermohw.spice.ngspice import RawData

    raw = RawData("t", "tran", ("time", "v(u0)"), {"time": np.array([1e-9, 2e-9]), "v(u0)": np.array([0.3, 0.5])})
    grid = np.array([0.0, 1e-9, 2e-9])
    np.testing.assert_allclose(node_voltages(raw, 1, grid)[:, 0], [0.3, 0.3, 0.5])        # held back (old)
    np.testing.assert_allclose(node_voltages(raw, 1, grid, v0=[0.1])[:, 0], [0.1, 0.3, 0.5])


def test_options_are_validated():
    from thermohw.errors import InputError

    for bad in (dict(netlist="bogus"), dict(netlist_seed=0), dict(netlist_seed=2 ** 31), dict(t_f=-1.0),
                dict(t_f=float("nan"))):
        with pytest.raises(InputError):
            CompileOptions(**bad)


def test_lc_generation_netlist_starts_from_equilibrium_positions_and_thermal_velocities():
    c = random_computer(3, 1, seed=4, scale=0.2)
    t = Target.preset("lc-spu").replace(units=4)
    p = compile_computer(c, t, CompileOptions(t_f=0.05, netlist_seed=3))
    text = lc.generation_netlist(p)
    assert "generation protocol" in text and ".options seed=3" in text
    circ = p.artefact
    _, x0 = generation_start(p)
    raw = run_spice(text, engine="batch")
    st = lc.states(raw, circ)
    assert st["s"][0] < 1e-4  # first stored point: one tiny step after the written state
    np.testing.assert_allclose(st["x"][0], x0, atol=1e-3)
    from thermohw.underdamped import thermal_velocities

    v0 = thermal_velocities(circ.mass, p.realised.kT, 1, seed=np.random.SeedSequence([3, 2]))[0]
    np.testing.assert_allclose(st["u"][0], v0, rtol=0.05)  # Maxwell velocities as written
    assert st["s"][-1] == pytest.approx(0.05, rel=1e-9)


def test_cli_readout_scores_a_plain_ngspice_run_of_the_compiled_netlist(tmp_path, capsys):
    """The designer's path: compile -> ngspice -b -r out.raw chip.cir -> thermohw readout."""
    import subprocess

    from thermohw.cli import main

    assert main(["train", "-q", "-o", str(tmp_path / "m"), "--digits", "0,1,7", "--hidden", "8",
                 "--cycles", "20"]) == 0
    assert main(["compile", str(tmp_path / "m" / "model.npz"), "--target", "rc-8bit-dense", "--t-f", "0.5",
                 "-o", str(tmp_path / "chip")]) == 0
    subprocess.run(["ngspice", "-b", "-r", "out.raw", "chip.cir"], cwd=tmp_path / "chip", check=True,
                   capture_output=True)
    capsys.readouterr()
    assert main(["readout", str(tmp_path / "chip"), str(tmp_path / "chip" / "out.raw"),
                 "-o", str(tmp_path / "ro")]) == 0
    text = capsys.readouterr().out
    assert "t = 0.5 model time units" in text and "best |corr|" in text and "k-NN says" in text
    rep = json.loads((tmp_path / "ro" / "readout.json").read_text())
    assert len(rep["x_final"]) == 72 and rep["digit"]["label"] in (0, 1, 7)
    assert rep["provenance"]["seeds"] == {"netlist": 1} and rep["provenance"]["command"][:2] == ["thermohw", "readout"]
    assert (tmp_path / "ro" / "plots" / "generated.png").is_file() and (tmp_path / "ro" / "plots" / "run.png").is_file()
    # a file that is not a raw file, and a raw file of another circuit: one clear error each
    (tmp_path / "bad.raw").write_text("not a raw file\n")
    assert main(["readout", str(tmp_path / "chip"), str(tmp_path / "bad.raw")]) == 1
    assert "not a readable ngspice raw file" in capsys.readouterr().err
    other = rc_program(CompileOptions(t_f=0.05))
    (tmp_path / "other.cir").write_text(rc.generation_netlist(other))
    subprocess.run(["ngspice", "-b", "-r", "other.raw", "other.cir"], cwd=tmp_path, check=True, capture_output=True)
    assert main(["readout", str(tmp_path / "chip"), str(tmp_path / "other.raw")]) == 1
    assert "6 unit nodes" in capsys.readouterr().err
    # the digits kept with a shipped model: NAME.digits.npz beside NAME.npz wins over digits.npz
    from thermohw.workflow import digits_file_beside

    import shutil as sh
    sh.copy(tmp_path / "m" / "digits.npz", tmp_path / "m" / "model.digits.npz")
    assert digits_file_beside(tmp_path / "m" / "model.npz") == tmp_path / "m" / "model.digits.npz"
    assert digits_file_beside(tmp_path / "chip" / "nothing.npz") == tmp_path / "chip" / "digits.npz"
    assert digits_file_beside(tmp_path / "nowhere" / "x.npz") is None
