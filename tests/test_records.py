"""The report records (cosim_report, calibrate.report_record) refuse bad input on construction,
with InputError naming the field; no ngspice or chips needed (the files they write are checked
against to_dict() in test_cosim.py and test_calibrate_report.py)."""
import dataclasses
import json

import numpy as np
import pytest

from thermohw.cosim import unit_moments_test
from thermohw.cosim_report import CosimReport, CosimSweep, HeatComparison, PairedComparison
from thermohw.errors import InputError
from thermohw.metrics import mean_ci


def _cosim_report(**changes) -> CosimReport:
    rng = np.random.default_rng(0)
    xs, xi = rng.normal(size=(4, 3)), rng.normal(size=(50, 3))
    q = rng.normal(size=4)
    heat = HeatComparison(spice={**mean_ci(q), "joules": mean_ci(q * 1e-21)}, spice_stratonovich=mean_ci(q),
                          ideal_float=mean_ci(q), ideal_realised=mean_ci(q),
                          test_spice_vs_realised={"t": 0.0, "p": 1.0, "method": "Student t (pooled)"}, agree=True)
    good = dict(spice_runs=4, ideal_runs=50, energy_per_model_unit_J=1e-21, kT_model=0.1, energy_scale=None,
                heat=heat, electrical_energy_J={}, unit_moments=unit_moments_test(xs, xi))
    return CosimReport(**{**good, **changes})


def test_a_good_cosim_report_has_verdicts_and_plain_json():
    rep = _cosim_report()
    assert rep.verdicts[0].startswith("per-unit means/variances: AGREE") and rep.verdicts[1].startswith("<Q>: AGREE")
    d = rep.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON data: lists, not tuples
    assert "digits" not in d and "paired" not in d and "chip" not in d and "provenance" not in d


@pytest.mark.parametrize("changes, match", [
    ({"spice_runs": 1}, "at least 2 SPICE runs"),
    ({"ideal_runs": 1}, "at least 2 ideal runs"),
    ({"kT_model": 0.0}, "kT_model"),
    ({"heat": {"agree": True}}, "heat must be a HeatComparison"),
    ({"unit_moments": {"agree": True}}, "unit_moments must be a UnitMoments"),
    ({"paired": {"relative": 0.1}}, "paired must be a PairedComparison or None"),
    ({"chip": {"seed": 3}}, "chip must be None or a chip description"),
])
def test_cosim_report_refuses_bad_fields(changes, match):
    with pytest.raises(InputError, match=match):
        _cosim_report(**changes)


def test_cosim_parts_refuse_bad_values():
    rep = _cosim_report()
    with pytest.raises(InputError, match="agree must be a bool"):
        dataclasses.replace(rep.heat, agree="yes")
    with pytest.raises(InputError, match="tuple of 3 values"):
        dataclasses.replace(rep.unit_moments, mean_spice=(0.0, 1.0))
    with pytest.raises(InputError, match=">= 0"):
        PairedComparison(rms_state_difference=-1.0, state_spread=1.0, relative=0.0, heat_difference_kT={}, note="")
    sweep = dict(spice_seconds=1.0, runs_requested=4, resumed_runs=0, new_runs=4, missing_runs=(),
                 spice_failures=(), interrupted=False)
    with pytest.raises(InputError, match="missing_runs must be a tuple"):
        CosimSweep(**{**sweep, "missing_runs": [1]})
    with pytest.raises(InputError, match="resumed 0 and ran 3 new of 4"):
        rep.with_(sweep=CosimSweep(**{**sweep, "new_runs": 3, "missing_runs": (3,)}))
    with pytest.raises(InputError, match="sweep's chip differs"):
        rep.with_(sweep=CosimSweep(**sweep, meta={"chip": {"label": "another chip"}}))
    done = rep.with_(sweep=CosimSweep(**sweep))
    assert done.sweep.complete and done.to_dict()["complete"] is True


def _calibration_report(**changes):
    from thermohw.calibrate.report import CalibrationSetup
    from thermohw.calibrate.report_record import CalibrationReport

    row = {"iteration": 0, "estimated_errors": {}, "estimated_true_errors": {"J": 0.1}, "codes_changed": 0,
           "out_of_range": 0}
    good = dict(device="IdealVirtualChip", target="rc-8bit-dense", units=8, setup=dataclasses.asdict(CalibrationSetup()),
                discretisation="euler", correction={"converged": True}, history=(row,), fits={"before": {}},
                corrected_program="out/corrected", corrected_files=3, seconds=1.0)
    return CalibrationReport(**{**good, **changes})


def test_a_good_calibration_report_has_verdicts_and_the_schema():
    rep = _calibration_report()
    d = rep.to_dict()
    assert list(d)[:3] == ["schema", "device", "target"] and d["mobility"] == "bias"
    assert rep.verdicts[0].startswith("estimated RMS errors") and d["verdicts"] == list(rep.verdicts)


@pytest.mark.parametrize("changes, match", [
    ({"units": 0}, "at least 1 unit"),
    ({"device": ""}, "name the device"),
    ({"setup": {"runs": 2}}, "CalibrationSetup as a dict"),
    ({"discretisation": "ito"}, "use 'euler' or 'continuous'"),
    ({"history": ()}, "one row"),
    ({"history": [{"estimated_true_errors": {}}]}, "must be a tuple"),
    ({"fits": {}}, "at least one fit"),
    ({"virtual_truth": {}, "recording": {}}, "exclude each other"),
    ({"generation": {}}, "generation and generation_note together"),
    ({"corrected_files": -1}, "corrected_files"),
])
def test_calibration_report_refuses_bad_fields(changes, match):
    with pytest.raises(InputError, match=match):
        _calibration_report(**changes)


def test_compare_is_pure_and_independent_of_the_order_runs_arrive_in(tmp_path, monkeypatch):
    """cosim.compare: statistics in, record out - no file written (run_cosim writes them), and
    the runs in any arrival order (parallel workers) give the same record, bit for bit."""
    from conftest import random_computer
    from thermohw.compile import compile_computer
    from thermohw.cosim import CosimConfig, compare, ideal_models
    from thermohw.target import Target

    p = compile_computer(random_computer(4, 2, seed=1), Target.preset("rc-8bit-dense").replace(units=16))
    cfg = CosimConfig(runs=5, ideal_runs=40, t_f=0.3)
    rng = np.random.default_rng(3)
    n = p.realised.n_units
    results = [{"index": i, "x_final": rng.normal(size=n), "heat": float(rng.normal()),
                "heat_strat": float(rng.normal()), "energy": {"dissipated_J": float(rng.random()) * 1e-15}}
               for i in range(5)]
    monkeypatch.chdir(tmp_path)
    ideal = ideal_models(p, cfg)
    a = compare(p, cfg, results, None, None, ideal)
    b = compare(p, cfg, results[::-1], None, None, ideal)
    assert list(tmp_path.iterdir()) == []
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert a.spice_runs == 5 and a.sweep is None and a.digits is None and a.paired is None
