"""Co-simulation of an LC chip in the real ngspice through the backend contract (native L, C, R;
positions are inductor fluxes, velocities node voltages), on a 6-unit overdamped program."""
import json
import shutil
from types import ModuleType

import numpy as np
import pytest

from conftest import random_computer
from thermohw.backends import BACKENDS, lc
from thermohw.cli import main
from thermohw.compile import compile_computer
from thermohw.cosim import CosimConfig, load_runs, prepare, run_cosim
from thermohw.errors import InputError
from thermohw.target import Target

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None,
                                reason="ngspice not installed (apt-get install -y ngspice libngspice0)")


def small_program(seed=1):
    """6 cells of the lc-overdamped-96 design: Q = 0.025 at x = 0 (no limit violations)."""
    c = random_computer(4, 2, seed=seed, scale=0.3)
    p = compile_computer(c, Target.preset("lc-overdamped-96").replace(units=6))
    assert p.report["violations"] == []
    return p


def test_paired_noise_lc_spice_tracks_the_realised_overdamped_model(tmp_path):
    """The same numpy noise into ngspice (held PWL currents) and into the realised overdamped
    model (Euler, dt = NT). Measured: final states differ by 1.6 % of their spread. What remains
    is inertia: after every noise step the velocity settles within RC, so the flux lags the
    overdamped model by ~RC (RC/NT = 0.2 here); the Euler step's own O(dt) is 0.13 % (RC test).
    The bound 3 % is twice the measurement; unpaired noise would differ by ~140 %."""
    p = small_program()
    cfg = CosimConfig(runs=4, ideal_runs=50, t_f=0.5, noise="pwl", nt_fraction=0.02, seed=3)
    rep = run_cosim(p, cfg, tmp_path / "c", progress=False)
    pr = rep.paired
    assert pr.relative < 0.03, pr
    _, runs = load_runs(tmp_path / "c" / "spice_runs.npz")
    # the read-out starts exactly where cosim put the cells (inductor ICs, UIC)
    _, x0, _ = prepare(p, cfg)
    np.testing.assert_allclose(runs["x0"], x0, rtol=0, atol=1e-12)
    shuffled = runs["x_final"][::-1]
    assert np.sqrt(np.mean((shuffled - runs["x_final"]) ** 2)) > 5 * pr.rms_state_difference
    # first law with the injected noise power measured directly. Measured residual -1.1 % of the
    # dissipation: the dissipation v^2/R is dominated by the velocity's RC transients after each
    # noise step, which the trapezoid on ngspice's points over-counts slightly. Bound 2 %.
    res = runs["energy_first_law_residual"]
    assert np.max(np.abs(res)) < 0.02, res
    assert np.all(runs["energy_dissipated_J"] > 0)


def test_cli_lc_cosim_agrees_with_the_ideal_model(tmp_path, capsys):
    """End to end through the CLI on a saved program (trrandom noise, Maxwell start velocities):
    per-unit moments and heat agree with the realised ideal model (pooled t / Brown-Forsythe at
    alpha = 0.01, fixed seeds; weak at 6 runs - the paired test above is the sharp one), and the
    report gives heat in joules through the program's energy scale."""
    p = small_program(seed=2)
    p.save(tmp_path / "prog")
    code = main(["cosim", str(tmp_path / "prog"), "-o", str(tmp_path / "c"), "--runs", "6", "--ideal-runs", "200",
                 "--t-f", "0.5", "--seed", "1", "-q"])
    assert code == 0
    assert "6 SPICE runs" in capsys.readouterr().out
    rep = json.loads((tmp_path / "c" / "cosim.json").read_text())
    assert rep["unit_moments"]["agree"] and rep["heat"]["agree"], rep["verdicts"]
    es = rep["energy_scale"]
    assert es == p.energy_scale.to_dict() and es["kT_ref_J"] == pytest.approx(p.scales["kT_J"], rel=1e-12)
    h = rep["heat"]["spice"]
    assert h["joules"]["mean"] == pytest.approx(h["mean"] * es["kT_ref_J"], rel=1e-9)
    e = rep["electrical_energy_J"]
    assert e["dissipated_J"]["mean"] > 0
    # first law by construction; the stored part is the cells' kinetic plus potential energy
    assert e["noise_delivered_J"]["mean"] == pytest.approx(e["dissipated_J"]["mean"] + e["stored_delta_J"]["mean"],
                                                           rel=1e-9)


def test_lc_start_velocities_are_maxwell_at_the_cells_noise_level():
    """spice_start: velocities dx/ds with variance kT/m (m = C Phi_s^2/(E tau^2)). 4000 draws:
    the variance's relative sampling sd is sqrt(2/4000) = 2.2 %; bound 10 % (4.5 sd)."""
    p = small_program()
    circ = p.artefact
    v0 = lc.spice_start(p, circ, np.zeros((4000, circ.n_units)), np.random.SeedSequence(9))["v0"]
    np.testing.assert_allclose(v0.var(0) * circ.mass / p.realised.kT, 1.0, rtol=0.10)


def test_a_backend_without_the_contract_is_refused_in_one_line(monkeypatch):
    p = small_program()
    monkeypatch.setitem(BACKENDS, "lc", ModuleType("lc_without_the_contract"))
    with pytest.raises(InputError) as e:
        prepare(p, CosimConfig(runs=2, ideal_runs=2, t_f=0.1))
    msg = str(e.value)
    assert "\n" not in msg and "cannot be co-simulated" in msg and "spice_netlist" in msg
