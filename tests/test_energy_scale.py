"""The EnergyScale record: computed once in compile's lower pass, carried by the program, saved
with it, derived for program folders written before it existed, and validated."""
import json

import pytest

from conftest import random_computer
from thermohw import CompiledProgram, Target, compile_computer
from thermohw.energy import K_B, EnergyScale
from thermohw.errors import InputError


def lc_thermal_target():
    """Thermal noise, no V_s: the flux scale follows from k_B T = kT E, so the record's
    temperature must be the target's 300 K."""
    return Target.from_dict({"name": "lc-thermal", "kind": "lc", "units": 6, "topology": {"type": "all-to-all"},
                             "couplings": {"min": -1, "max": 1, "bits": 8}, "biases": {"min": -4, "max": 4, "bits": 8},
                             "physics": {"C_F": 1e-9, "L_H": 1e-3, "R_ohm": 25.0, "tau_s": 8e-5,
                                         "noise": {"source": "thermal", "temperature_K": 300.0}}})


@pytest.mark.parametrize("target", ["rc-8bit-dense", "lc"])
def test_lower_computes_the_record_and_the_program_keeps_it(tmp_path, target):
    t = lc_thermal_target() if target == "lc" else Target.preset(target).replace(units=6)
    p = compile_computer(random_computer(4, 2, seed=1), t)
    es = p.energy_scale
    assert isinstance(es, EnergyScale)
    assert es.kT_ref_J == p.scales["kT_J"] and es.kT_model == p.programmed.kT_ref
    assert es.joules_per_model_unit == pytest.approx(p.scales["energy_per_model_unit_J"], rel=1e-12)
    assert es.temperature_K == pytest.approx(p.scales["T_eff_K"], rel=1e-12)
    if target == "lc":
        assert es.temperature_K == pytest.approx(300.0, rel=1e-12)
    p.save(tmp_path / "prog")
    assert CompiledProgram.load(tmp_path / "prog").energy_scale == es
    # a folder compiled before the record existed: derived from its scales, the same record
    rep_file = tmp_path / "prog" / "report.json"
    rep = json.loads(rep_file.read_text())
    del rep["energy_scale"]
    rep_file.write_text(json.dumps(rep))
    assert CompiledProgram.load(tmp_path / "prog").energy_scale == es


def test_a_damaged_record_is_refused_in_one_line(tmp_path):
    p = compile_computer(random_computer(4, 2, seed=1), Target.preset("rc-8bit-dense").replace(units=6))
    p.save(tmp_path / "prog")
    rep_file = tmp_path / "prog" / "report.json"
    rep = json.loads(rep_file.read_text())
    rep["energy_scale"]["temperature_K"] *= 2     # no longer kT_ref_J / k_B
    rep_file.write_text(json.dumps(rep))
    with pytest.raises(InputError) as e:
        CompiledProgram.load(tmp_path / "prog")
    assert "\n" not in str(e.value) and "energy scale" in str(e.value)


@pytest.mark.parametrize("bad", [dict(kT_ref_J=-1.0), dict(kT_ref_J=float("nan")), dict(kT_model=0.0),
                                 dict(temperature_K=True)])
def test_record_validation(bad):
    good = dict(kT_ref_J=K_B * 300.0, temperature_K=300.0, kT_model=0.1)
    assert EnergyScale(**good).joules(2.0) == 2.0 * K_B * 300.0
    with pytest.raises(InputError):
        EnergyScale(**{**good, **bad})
