import json

import numpy as np
import pytest

from thermohw import Computer, InputError
from thermohw.backends import rc
from thermohw.cli import main
from thermohw.compile import CompiledProgram, CompileOptions, compile_computer
from thermohw.target import Target

from conftest import random_computer


def test_quantisation_error_is_within_half_an_lsb_and_realised_is_what_the_circuit_implements():
    c = random_computer(4, 4, seed=3)
    p = compile_computer(c, "rc-8bit-dense")
    lsb = p.report["quantise"]["coupling_lsb"]
    # the default full scale leaves trim room for the preset's 2 % coupling gain mismatch
    # (test_default_headroom_follows_the_gain_mismatch); max |J| sits exactly on a code
    assert lsb == pytest.approx(np.abs(c.J).max() * p.report["scale"]["coupling_headroom"] / 127)
    assert np.max(np.abs(p.realised.J - c.J)) <= lsb / 2 * (1 + 1e-9)
    assert np.max(np.abs(p.realised.b - c.b)) <= p.report["quantise"]["bias_lsb"] / 2 * (1 + 1e-9)
    # the trim grid of the preset: 1024 levels over [0.5, 1.5]; J2 = 1 sits between two codes
    assert abs(p.realised.J2[0] - 1.0) == pytest.approx(0.5 / 1023, rel=1e-6)
    # round trip: hardware -> model equals the programmed (quantised) model
    back = rc.to_computer(p.artefact, p)
    for k in ("J", "b", "J2", "J4", "mu", "kT"):
        np.testing.assert_allclose(getattr(back, k), getattr(p.programmed, k), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(getattr(p.realised, k), getattr(p.programmed, k), rtol=1e-12, atol=1e-15)


def test_rc_formulas_against_hand_computation():
    """One unit, J2 = 1, J4 = 1, b = 0.5, kT = 0.1, mu = 1; C = 1 pF, V_s = 0.1 V, tau = 1 us,
    ideal resistors, no trim: g = 2 mu C J2 = 2 uS, k3 = 4 mu C J4 / V_s^2 = 4e-4 A/V^3,
    I_b = -mu C V_s b = -0.05 uA, s^2 = 2 mu kT C^2 V_s^2 = 2e-21 A^2/Hz, E = C V_s^2/2 = 5 fJ."""
    c = Computer(J=np.zeros((1, 1)), b=[0.5], mask=np.zeros((1, 1), bool), n_visible=0, bias_trainable=[True])
    t = Target.preset("rc-8bit-dense").replace(components={"resistor_series": None}, diagonal=None,
                                                 biases={"min": -0.5, "max": 0.5, "bits": 8})
    p = compile_computer(c, t)
    a = p.artefact
    assert a.g[0] == pytest.approx(2e-6, rel=1e-12)
    assert a.R[0] == pytest.approx(5e5, rel=1e-12)
    assert a.k3[0] == pytest.approx(4e-4, rel=1e-12)
    assert a.I_b[0] == pytest.approx(-5e-8, rel=1e-12)
    assert a.s2[0] == pytest.approx(2e-21, rel=1e-12)
    assert p.scales["energy_per_model_unit_J"] == pytest.approx(5e-15, rel=1e-12)
    assert p.scales["T_eff_K"] == pytest.approx(0.1 * 5e-15 / 1.380649e-23, rel=1e-12)


def test_e_series_resistor_plus_trim_and_without_trim():
    c = random_computer(2, 2, seed=1)
    p = compile_computer(c, "rc-8bit-dense")  # E96 + 10-bit trim
    a = p.artefact
    from thermohw.target import E_SERIES

    mant = a.R / 10 ** np.floor(np.log10(a.R))
    assert all(np.min(np.abs(np.array(E_SERIES["E96"]) - m)) < 1e-9 for m in mant)
    assert np.all(a.g_trim >= 0)  # the trim only adds conductance
    np.testing.assert_allclose(a.g, 2 * a.mu * a.C * p.programmed.J2, rtol=1e-12)
    # without a trim the E-series step shows up in the realised J2 (E96: steps of ~2.4 %)
    t = Target.preset("rc-8bit-dense").replace(diagonal=None)
    q = compile_computer(c, t)
    err = abs(q.realised.J2[0] - 1.0)
    assert 0 < err < 0.025
    assert q.report["errors"]["J2"]["max_abs"] == pytest.approx(err)


def test_degree_limited_target_prunes_to_the_degree_bound_or_refuses():
    c = random_computer(10, 10, seed=2, connectivity="dense")
    t = Target.preset("rc-degree16").replace(topology={"type": "degree-limited", "max_degree": 4})
    p = compile_computer(c, t)
    deg = (p.realised.J != 0).sum(axis=1)
    assert deg.max() <= 4
    assert p.report["placement"]["couplings_pruned"] == c.n_couplings - p.programmed.n_couplings
    assert any(v["check"] == "topology" for v in p.report["violations"])
    # the greedy keeps the strongest couplings: every kept |J| beats the median of all
    kept = np.abs(c.J[np.triu(p.programmed.mask, 1)])
    assert np.median(kept) > np.median(np.abs(c.J[np.triu(c.mask, 1)]))
    with pytest.raises(InputError, match="cannot host"):
        compile_computer(c, t, CompileOptions(prune="refuse"))


def test_lattice_placement_retains_more_weight_than_identity():
    c = random_computer(8, 8, seed=5, connectivity="dense")
    t = Target.preset("rc-kings").replace(units=16, topology={"type": "kings", "rows": 4, "cols": 4})
    p = compile_computer(c, t)
    q = compile_computer(c, t, CompileOptions(placement_effort=0))
    assert p.report["placement"]["pruned_abs_J_fraction"] < q.report["placement"]["pruned_abs_J_fraction"]
    A = t.mask(16)
    perm = p.placement
    assert np.all(A[np.ix_(perm, perm)][p.programmed.mask])  # every kept coupling is a lattice edge


def test_stochastic_rounding_is_unbiased():
    """Mean over 400 seeds of a stochastically rounded coupling is the coupling (s.e. < LSB/40)."""
    c = random_computer(2, 2, seed=7)
    vals = []
    for s in range(400):
        vals.append(compile_computer(c, "rc-8bit-dense", CompileOptions(rounding="stochastic", bits=3, seed=s)).programmed.J)
    vals = np.array(vals)
    lsb = np.abs(c.J).max() / 3
    m = c.mask
    z = (vals.mean(0)[m] - c.J[m]) / (vals.std(0, ddof=1)[m] / np.sqrt(400) + 1e-12)
    assert np.max(np.abs(z)) < 4.5
    assert np.any(vals.std(0)[m] > 0.1 * lsb)  # it did round randomly


def test_model_larger_than_target_is_a_clear_error():
    c = random_computer(100, 40, seed=0)
    with pytest.raises(InputError, match="has 128"):
        compile_computer(c, "rc-8bit-dense")


def test_compiled_program_save_load_roundtrip(tmp_path):
    c = random_computer(3, 3, seed=2)
    p = compile_computer(c, "rc-8bit-dense")
    p.save(tmp_path / "prog")
    q = CompiledProgram.load(tmp_path / "prog")
    np.testing.assert_array_equal(q.realised.J, p.realised.J)
    np.testing.assert_array_equal(q.codes["J"], p.codes["J"])
    np.testing.assert_allclose(q.artefact.G, p.artefact.G)
    assert q.target == p.target
    assert json.loads((tmp_path / "prog" / "report.json").read_text())["errors"]["J"]["max_abs"] > 0


def test_user_text_cannot_inject_spice_control_statements():
    evil = "digits\n.control\nshell touch /tmp/pwned\n.endc\n.include /etc/passwd"
    c = random_computer(2, 2, seed=1).replace(meta={"digits": evil})
    p = compile_computer(c, "rc-8bit-dense")
    text = rc.netlist(p.artefact, t_stop=1e-7, title=evil, meta={evil: evil})
    for line in text.splitlines():
        s = line.strip().lower()
        assert not s.startswith((".control", "shell", ".include", ".endc")), line
    lines = text.splitlines()
    assert [ln for ln in lines if ln.strip().lower() == ".end"] == [".end"] and lines[-1] == ".end"
    # and the written chip file (which carries the model's metadata) is clean too
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p.save(d)
        chip = (Path(d) / "chip.cir").read_text()
    assert not any(ln.strip().lower().startswith((".control", "shell", ".include")) for ln in chip.splitlines())


# ---- CLI ------------------------------------------------------------------------------------
def _model(tmp_path, n_vis=3, n_hid=3):
    path = tmp_path / "m.npz"
    random_computer(n_vis, n_hid, seed=1).save(path)
    return path


def test_cli_compile_writes_netlist_and_report(tmp_path, capsys):
    m = _model(tmp_path)
    assert main(["compile", str(m), "--target", "rc-8bit-dense", "--bits", "6", "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "6 bits" in out and "energy scale" in out
    for f in ("chip.cir", "realised.npz", "report.json", "summary.txt", "target.yaml"):
        assert (tmp_path / "o" / f).is_file()


@pytest.mark.parametrize("yaml_text, match", [
    ("kind: rc\nunits: [1, 2\n", "YAML"),
    ("- just\n- a list\n", "mapping"),
    ("name: x\nkind: rc\nunits: -5\n", "units"),
])
def test_cli_compile_bad_target_yaml(tmp_path, capsys, yaml_text, match):
    m = _model(tmp_path)
    y = tmp_path / "t.yaml"
    y.write_text(yaml_text)
    assert main(["compile", str(m), "--target", str(y), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0] and match.lower() in err[0].lower(), err
    assert not (tmp_path / "o").exists()


def test_cli_compile_nan_model_and_too_large(tmp_path, capsys):
    bad = tmp_path / "nan.npz"
    c = random_computer(2, 2, seed=1)
    arrays = {k: getattr(c, k) for k in ("J", "b", "mask", "J2", "J4", "mu", "kT", "bias_trainable")}
    arrays["b"] = np.array([0, 0, np.nan, 0])
    from thermohw.computer import SCHEMA
    from thermohw.io import save_record

    save_record(bad, SCHEMA, {"n_visible": 2, "image_shape": None, "meta": {}}, arrays)
    assert main(["compile", str(bad), "--target", "rc-8bit-dense", "-o", str(tmp_path / "o")]) == 1
    assert "NaN" in capsys.readouterr().err
    big = tmp_path / "big.npz"
    Computer.zeros(100, 100).save(big)
    assert main(["compile", str(big), "--target", "rc-8bit-dense", "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "200 units" in err[0]


def test_placement_swap_delta_matches_brute_force():
    """The O(N) swap gain used by the placement search equals the recomputed retained weight."""
    from thermohw.compile import _improve_placement, _retained, _swap_gain

    rng = np.random.default_rng(0)
    n = 12
    W = np.abs(rng.normal(size=(n, n)))
    W = np.triu(W, 1)
    W = W + W.T
    A = Target.preset("rc-kings").replace(units=12, topology={"type": "kings", "rows": 3, "cols": 4}).mask(12)
    perm = np.arange(n)
    base = _retained(W, A, perm)
    for a, b in rng.integers(0, n, size=(30, 2)):
        if a == b:
            continue
        q = perm.copy()
        q[[a, b]] = q[[b, a]]
        assert _swap_gain(W, A[np.ix_(perm, perm)].astype(float), a, b) == pytest.approx(_retained(W, A, q) - base)
    better = _improve_placement(W, A, perm, effort=50, rng=rng)
    assert sorted(better.tolist()) == list(range(n))          # still a permutation
    assert _retained(W, A, better) > base                      # and strictly better here
    # every accepted swap was an improvement: a greedy search never loses weight
    for seed in range(5):
        p2 = _improve_placement(W, A, perm, effort=5, rng=np.random.default_rng(seed))
        assert _retained(W, A, p2) >= base - 1e-12


# ---- regressions found in review --------------------------------------------------------------
def test_per_unit_mobility_lowers_to_per_unit_capacitance_exactly():
    c = random_computer(2, 2, seed=3).replace(mu=[1.0, 1.05, 0.98, 1.0])
    t = Target.preset("rc-8bit-dense").replace(components={"resistor_series": None}, diagonal=None)
    p = compile_computer(c, t)
    a = p.artefact
    np.testing.assert_allclose(a.mu * a.C, a.mu[0] * a.C[0], rtol=1e-12)   # one common scale
    np.testing.assert_allclose(a.G, a.G.T, rtol=1e-12)
    for k in ("J", "b", "J2", "mu", "kT"):
        np.testing.assert_allclose(getattr(p.realised, k), getattr(p.programmed, k), rtol=1e-12, atol=1e-15)
    assert p.report["errors"]["mu"]["max_abs"] < 1e-12


def test_one_signed_coupling_range_and_stochastic_trim():
    """A resistor-only chip offers J <= 0: positive couplings clip to 0, negative ones keep
    their own range; a stochastic J2 trim rounds with the compile seed."""
    c = random_computer(3, 3, seed=4)
    t = Target.preset("rc-8bit-dense").replace(couplings={"min": -1.0, "max": 0.0, "bits": 8},
                                               diagonal={"min": 0.5, "max": 1.5, "bits": 10, "rounding": "stochastic"})
    p = compile_computer(c, t)
    assert p.realised.J.max() <= 0.0
    neg = c.mask & (c.J < 0)
    lsb = p.report["quantise"]["coupling_lsb"]
    assert np.max(np.abs(p.realised.J[neg] - c.J[neg])) <= lsb / 2 * (1 + 1e-9)
    assert p.report["scale"]["coupling_range"][1] == 0.0
    assert any(v["check"] == "range" for v in p.report["violations"])


def test_default_headroom_follows_the_gain_mismatch():
    """Without --coupling-headroom the coupling full scale is K/k x max |J| with K = 127 and
    k = round(127 / (1 + 2.5 x 0.02)) = 121 on rc-8bit-dense (2 % OTA gain sd): a full-scale
    coupling is out of trim range only for a 2.5 sd weak element. max |J| lands on code 121,
    so compiling the realised model again gives the same codes. A target without gain
    mismatch, range='full' and an explicit 1.0 keep the bare max |J|."""
    c = random_computer(4, 4, seed=3)
    p = compile_computer(c, "rc-8bit-dense")
    sc = p.report["scale"]
    assert sc["coupling_headroom"] == 127 / 121
    assert sc["coupling_full_scale"] == pytest.approx(np.abs(c.J).max() * 127 / 121, rel=1e-12)
    assert np.max(np.abs(p.codes["J"])) == 121
    again = compile_computer(p.realised, "rc-8bit-dense")
    np.testing.assert_array_equal(again.codes["J"], p.codes["J"])
    np.testing.assert_allclose(again.realised.J, p.realised.J, rtol=1e-12, atol=0)
    for opts in (CompileOptions(coupling_headroom=1.0), CompileOptions(range="full")):
        assert compile_computer(c, "rc-8bit-dense", opts).report["scale"]["coupling_headroom"] == 1.0
    ideal = Target.preset("rc-8bit-dense").replace(name="ideal-otas", components={"resistor_series": "E96"})
    assert compile_computer(c, ideal).report["scale"]["coupling_headroom"] == 1.0   # no gain figure


def test_trim_headroom_widens_the_auto_ranges_within_the_target():
    """coupling_headroom multiplies and bias_margin adds to the auto full scales (room for
    calibration trims), never beyond the target's range; bad values are refused."""
    c = random_computer(3, 3, seed=4)
    base = compile_computer(c, "rc-8bit-dense").report["scale"]
    wide = compile_computer(c, "rc-8bit-dense", CompileOptions(coupling_headroom=1.5, bias_margin=0.3)).report["scale"]
    assert wide["coupling_full_scale"] == pytest.approx(min(1.0, 1.5 * base["model_max_abs_J"]), rel=1e-12)
    assert wide["bias_full_scale"] == pytest.approx(min(4.0, base["model_max_abs_b"] + 0.3), rel=1e-12)
    huge = compile_computer(c, "rc-8bit-dense", CompileOptions(coupling_headroom=1e3, bias_margin=1e3)).report["scale"]
    assert huge["coupling_full_scale"] == 1.0 and huge["bias_full_scale"] == 4.0
    for bad in (dict(coupling_headroom=0.5), dict(bias_margin=-1.0), dict(coupling_headroom=float("nan"))):
        with pytest.raises(InputError, match="headroom|margin"):
            CompileOptions(**bad)


def test_thermal_noise_with_an_inconsistent_voltage_scale_is_reported():
    t = Target.preset("rc-8bit-dense").replace(physics={"C_F": 1e-12, "tau_s": 1e-6, "V_s_V": 0.1,
                                                        "noise": {"source": "thermal", "temperature_K": 300}})
    p = compile_computer(random_computer(2, 2, seed=1), t)
    assert any(v["check"] == "temperature" for v in p.report["violations"])
    # without V_s_V the scale is derived from the temperature: consistent by construction
    t2 = t.replace(physics={"C_F": 1e-12, "tau_s": 1e-6, "noise": {"source": "thermal", "temperature_K": 300}})
    q = compile_computer(random_computer(2, 2, seed=1), t2)
    assert q.scales["T_eff_K"] == pytest.approx(300.0, rel=1e-12)
    assert not any(v["check"] == "temperature" for v in q.report["violations"])


def test_compiled_program_is_validated_on_construction():
    """A record with a field of the wrong kind fails where it is built, naming the field."""
    c = random_computer(2, 2, seed=0)
    p = compile_computer(c, "rc-8bit-dense")
    with pytest.raises(InputError, match="CompiledProgram.target must be a Target"):
        p.with_(target="rc-8bit-dense")
    with pytest.raises(InputError, match="programmed has 4 units, realised 3"):
        p.with_(realised=random_computer(2, 1, seed=0))
    with pytest.raises(InputError, match=r"codes\['J'\] must hold integer codes"):
        p.with_(codes={**p.codes, "J": p.codes["J"] * 0.5})
    with pytest.raises(InputError, match="energy_scale must be an EnergyScale"):
        p.with_(energy_scale={"kT_ref_J": 1.0})
