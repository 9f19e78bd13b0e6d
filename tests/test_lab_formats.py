"""Lab capture formats for replay (thermohw.calibrate.lab_formats): HDF5 traces and lab CSVs
read through a column map give the same recording - and the same fit - as the thermohw
layouts; malformed files and maps give one clear line. Real fits, fixed seeds, seconds."""
import sys

import numpy as np
import pytest

from thermohw import InputError
from thermohw.calibrate import IdealVirtualChip, Recording, design, fit, open_device
from thermohw.calibrate.lab_formats import check_column_map, read_hdf5, read_mapped_csv, write_hdf5
from thermohw.compile import CompileOptions, compile_computer

from conftest import random_computer

DT = 0.01
N = 8


@pytest.fixture(scope="module")
def program():
    c = random_computer(4, 4, seed=1, connectivity="dense")
    return compile_computer(c, "rc-8bit-dense", CompileOptions(range="full"))


@pytest.fixture(scope="module")
def recording(program):
    ch = IdealVirtualChip(chip_seed=7, scale=3.0)
    ch.program(program)
    rec = ch.run(design.bias_steps(N, 6, seed=9), 5.0, DT, seed=11)
    # the scales a lab recording in volts and seconds would carry (the rc preset's)
    return Recording(rec.times, rec.x, rec.sample_interval, rec.bias, {"V_s_V": 0.1, "tau_s": 1e-6}, rec.meta)


def _replay(path, program):
    dev = open_device(f"replay:{path}")
    dev.program(program)
    return dev.run(None)


# ---------------------------------------------------------------------------------------------
# HDF5
# ---------------------------------------------------------------------------------------------
def test_hdf5_round_trip_gives_the_identical_fit(recording, program, tmp_path):
    pytest.importorskip("h5py", reason="HDF5 replay needs the optional h5py (pip install 'thermohw[lab]')")
    import h5py

    ref = fit(recording, mask=program.realised.mask, mobility="bias")
    write_hdf5(recording, tmp_path / "model" / "rec.h5")
    rec = _replay(tmp_path / "model", program)           # a folder of .h5 files
    np.testing.assert_array_equal(rec.x, recording.x)    # model units: bit-identical
    np.testing.assert_array_equal(rec.bias, recording.bias)
    f = fit(rec, mask=program.realised.mask, mobility="bias")
    np.testing.assert_allclose(f.value, ref.value, rtol=1e-12, atol=1e-15)
    # SI: volts and seconds, converted back with V_s and tau (last-digit rounding only)
    si = write_hdf5(recording, tmp_path / "si.hdf5", si=True)
    with h5py.File(si, "r") as h:
        assert h.attrs["time_unit"] == "s" and h.attrs["x_unit"] == "V"
        assert h["x"].shape == (recording.n_samples, recording.n_runs, N)
        np.testing.assert_allclose(h["x"][()], 0.1 * recording.x, rtol=1e-15)
    rec = read_hdf5(si)
    np.testing.assert_allclose(rec.x, recording.x, rtol=1e-12, atol=1e-15)
    assert rec.sample_interval == pytest.approx(DT, rel=1e-12)
    f = fit(rec, mask=program.realised.mask, mobility="bias")
    np.testing.assert_allclose(f.value, ref.value, rtol=1e-9, atol=1e-12)


def test_a_lab_hdf5_file_one_run_and_its_errors(tmp_path):
    pytest.importorskip("h5py", reason="HDF5 replay needs the optional h5py (pip install 'thermohw[lab]')")
    import h5py

    def make(name, x=np.zeros((5, 2)), t=np.arange(5) * 1e-8, **attrs):
        p = tmp_path / name
        with h5py.File(p, "w") as h:
            if x is not None:
                h["x"] = x
            if t is not None:
                h["time"] = t
            for k, v in attrs.items():
                h.attrs[k] = v
        return p

    ok = make("ok.h5", x=np.arange(10.0).reshape(5, 2) * 0.01, sample_interval=1e-8, time_unit="s", x_unit="V",
              V_s_V=0.1, tau_s=1e-6)
    rec = read_hdf5(ok)
    assert rec.x.shape == (5, 1, 2) and rec.sample_interval == pytest.approx(0.01)
    np.testing.assert_allclose(rec.x[:, 0, 1], (np.arange(5) * 2 + 1) * 0.1)
    for path, msg in ((make("nox.h5", x=None, sample_interval=1.0), "missing dataset(s) /x"),
                      (make("nodt.h5"), "root attribute sample_interval is missing"),
                      (make("nan.h5", x=np.array([[0, 0], [0, np.nan], [0, 0], [0, 0], [0, 0]]), sample_interval=1e-8),
                       "NaN or inf (first at sample 1, run 0, unit 1)"),
                      (make("gap.h5", t=np.array([0, 1, 2, 4, 5]) * 1e-8, sample_interval=1e-8),
                       "non-uniform time base"),
                      (make("volts.h5", sample_interval=1e-8, time_unit="model", x_unit="V"), "V_s_V")):
        with pytest.raises(InputError, match=msg.replace("(", r"\(").replace(")", r"\)")) as e:
            read_hdf5(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        read_hdf5(tmp_path / "junk.h5")


def test_hdf5_without_h5py_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "h5py", None)        # import h5py now fails
    with pytest.raises(InputError, match=r"needs h5py; install it with pip install 'thermohw\[lab\]'"):
        Recording.load(tmp_path / "a.h5")


# ---------------------------------------------------------------------------------------------
# CSV through a column map
# ---------------------------------------------------------------------------------------------
def _scope_csv(path, rec, *, order, with_run=True, with_bias=True, runs=None):
    """An oscilloscope-style export in volts and seconds: a preamble, quoted column names with
    units, a units row, channels in the scope's order (not the units'), an unused column."""
    runs = range(rec.n_runs) if runs is None else runs
    head = ['"Model","DSO-X 0000"', '"Date","today"', ""]
    cols = ["Time (s)"] + [f"CH{k + 1}" for k in order] + ["Trigger"]
    if with_run:
        cols.insert(0, "Segment")
    if with_bias:
        cols += [f"B{i}" for i in range(N)]
    lines = head + [",".join(f'"{c}"' for c in cols), ",".join("unit" for _ in cols)]
    for r in runs:
        for k, t in enumerate(rec.times):
            v = [repr(float(t) * 1e-6)] + [repr(0.1 * float(rec.x[k, r, u])) for u in order] + ["0"]
            if with_run:
                v.insert(0, str(r))
            if with_bias:
                v += [repr(float(b)) for b in rec.bias[r]]
            lines.append(",".join(v))
    path.write_text("\n".join(lines) + "\n")
    return path


MAP = """# scope export -> thermohw units
time: "Time (s)"
x: [CH1, CH2, CH3, CH4, CH5, CH6, CH7, CH8]
run: Segment
h: [B0, B1, B2, B3, B4, B5, B6, B7]
time_unit: s
x_unit: V
V_s_V: 0.1
tau_s: 1.0e-6
skip_rows: 3
skip_after_header: 1
"""


def test_scope_csv_through_a_column_map_gives_the_same_fit(recording, program, tmp_path):
    """A folder of scope exports with one columns.yaml: channels stored in the scope's order
    (CH3 holds unit 2 wherever it sits), preamble and units row skipped, seconds and volts
    converted - the replayed recording equals the original to the last digit and fits alike."""
    ref = fit(recording, mask=program.realised.mask, mobility="bias")
    d = tmp_path / "captures"
    d.mkdir()
    order = [3, 0, 7, 1, 6, 2, 5, 4]
    _scope_csv(d / "segments.csv", recording, order=order)
    (d / "columns.yaml").write_text(MAP)
    rec = _replay(d, program)
    np.testing.assert_allclose(rec.x, recording.x, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(rec.bias, recording.bias)
    assert rec.sample_interval == pytest.approx(DT, rel=1e-9)
    assert rec.meta["format"] == "csv+column-map" and rec.meta["column_map"].endswith("columns.yaml")
    f = fit(rec, mask=program.realised.mask, mobility="bias")
    np.testing.assert_allclose(f.value, ref.value, rtol=1e-9, atol=1e-12)


def test_per_file_maps_with_constant_bias_and_no_time_column(recording, tmp_path):
    """One capture per bias setting: NAME.columns.yaml beside each file gives its constant
    bias; without a time column the sampling interval comes from the map."""
    for r in range(2):
        p = _scope_csv(tmp_path / f"run{r}.csv", recording, order=list(range(N)), with_run=False,
                       with_bias=False, runs=[r])
        (tmp_path / f"run{r}.columns.yaml").write_text(
            f"x: [{', '.join(f'CH{i + 1}' for i in range(N))}]\nbias: {recording.bias[r].tolist()}\n"
            "sample_interval: 0.01\nx_unit: V\nV_s_V: 0.1\nskip_rows: 3\nskip_after_header: 1\n")
        rec = Recording.load(p)
        assert rec.n_runs == 1
        np.testing.assert_allclose(rec.x[:, 0], recording.x[:, r], rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(rec.bias[0], recording.bias[r])
        np.testing.assert_allclose(rec.times, np.arange(recording.n_samples) * DT, rtol=1e-12)


@pytest.mark.parametrize("edit, message", [
    (lambda m: {**m, "colour": "red"}, "unknown key(s) colour"),
    (lambda m: {k: v for k, v in m.items() if k != "x"}, "x must list one column"),
    (lambda m: {**m, "bias": [0.0] * 8}, "give h (bias columns) or bias"),
    (lambda m: {**m, "h": ["B0"]}, "h must list one bias column per unit (8)"),
    (lambda m: {**m, "V_s_V": -1}, "V_s_V = -1 must be a positive number"),
    (lambda m: {k: v for k, v in m.items() if k != "time"}, "give time (the time column) or sample_interval"),
])
def test_bad_column_maps_are_refused_in_one_line(edit, message):
    import yaml

    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        check_column_map(edit(yaml.safe_load(MAP)), "map.yaml")
    assert "\n" not in str(e.value)


def test_a_map_naming_a_missing_column_lists_the_files_columns(recording, tmp_path):
    p = _scope_csv(tmp_path / "c.csv", recording, order=list(range(N)), runs=[0])
    bad = MAP.replace("CH8]", "CH9]")
    (tmp_path / "c.columns.yaml").write_text(bad)
    with pytest.raises(InputError, match=r"no column 'CH9' for x7 .*the file's columns are: 'Segment', 'Time \(s\)'"):
        Recording.load(p)
    (tmp_path / "c.columns.yaml").write_text(MAP.replace("skip_after_header: 1", "skip_after_header: 0"))
    with pytest.raises(InputError, match="non-numeric or missing field .* skip_after_header"):
        read_mapped_csv(p)
