"""Lab capture formats for replay beyond the CSV/NPZ layouts of ``recording.py``: HDF5 traces,
and CSV files as an oscilloscope or ADC writes them, read through a column map.

HDF5 layout (needs the optional ``h5py``: ``pip install 'thermohw[lab]'``)::

    /x       float (T, runs, N), or (T, N) for one run   unit states, in x_unit
    /time    float (T,)                                  sample times, in time_unit
    /bias    float (runs, N) or (N,), optional            imposed bias per run, model units (absent: 0)
    root attributes:
      sample_interval   number, in time_unit (required)
      time_unit         's' or 'model' (default 'model')
      x_unit            'V' or 'model' (default 'model')
      V_s_V, tau_s      volts per unit of x / seconds per model time unit (as in the CSV header)

:func:`write_hdf5` writes this layout (model units, or SI with ``si=True``).

Column map (a lab's own CSV, unchanged): a YAML (or JSON) file beside the capture names the
columns, so a scope export needs no editing. ``capture.csv`` uses ``capture.columns.yaml`` if
present, else ``columns.yaml`` in the same folder (one map for a folder of captures)::

    time: "Time (s)"          # column of sample times, in time_unit (or omit and give sample_interval)
    x: [CH1, CH2, CH3, CH4]   # one column per unit, unit 0 first (required)
    run: Segment              # optional: column of run ids (absent: the file is one run)
    h: [B1, B2, B3, B4]       # optional: bias columns (model units, constant within a run), or
    bias: [0.5, -1.0, 0, 2]   # optional: one constant bias per unit for every run in the file
    time_unit: s              # s | model (default model)
    x_unit: V                 # V | model (default model)
    V_s_V: 0.1                # volts per unit of x (with x_unit V)
    tau_s: 1.0e-6             # seconds per model time unit (with time_unit s)
    sample_interval: 1.0e-8   # optional, in time_unit (default: the time column's step)
    delimiter: ","            # optional (default ',')
    skip_rows: 0              # optional: lines before the column-name line (instrument preamble)
    skip_after_header: 0      # optional: lines after it (e.g. a units row 'second,Volt,Volt')
    header: true              # optional: false = no column-name line; name columns by 0-based index

Columns may be named by their header text or by 0-based index. Anything malformed raises
:class:`~thermohw.InputError` naming the file, the place and the fix.
"""
from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .trajectories import SCHEMA, Recording, _to_model, check_time_base, si_scales

HDF5_SUFFIXES = (".h5", ".hdf5")
MAP_KEYS = {"time", "x", "run", "h", "bias", "time_unit", "x_unit", "V_s_V", "tau_s", "sample_interval",
            "delimiter", "skip_rows", "skip_after_header", "header"}


def _h5py(src: str):
    try:
        import h5py
    except ImportError:
        raise InputError(f"{src}: reading or writing HDF5 recordings needs h5py; install it with "
                         "pip install 'thermohw[lab]' (or pip install h5py)") from None
    return h5py


# ---------------------------------------------------------------------------------------------
# HDF5
# ---------------------------------------------------------------------------------------------
def _attr(src: str, attrs, key: str, kind: type, default=None):
    if key not in attrs:
        return default
    v = attrs[key]
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise InputError(f"{src}: attribute {key} must be a single value, got shape {v.shape}")
        v = v.reshape(()).item()
    try:
        return kind(v.decode() if isinstance(v, bytes) else v)
    except (TypeError, ValueError):
        raise InputError(f"{src}: attribute {key} = {v!r} is not a {kind.__name__}") from None


def read_hdf5(path: str | Path) -> Recording:
    """Read an HDF5 recording (layout in the module docstring) into model units."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise InputError(f"{src}: no such file")
    h5py = _h5py(src)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{src}: not a readable HDF5 file ({e})") from None
    with f:
        missing = [k for k in ("x", "time") if k not in f]
        if missing:
            raise InputError(f"{src}: missing dataset(s) {', '.join('/' + k for k in missing)}; an HDF5 recording "
                             "needs /x (T, runs, N) and /time (T,) and the root attribute sample_interval")
        arrays = {}
        for k in ("x", "time", "bias"):
            if k not in f:
                continue
            d = f[k]
            if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "fiu":
                raise InputError(f"{src}: /{k} must be a numeric dataset")
            arrays[k] = np.asarray(d[()], dtype=np.float64)
        if "sample_interval" not in f.attrs:
            raise InputError(f"{src}: root attribute sample_interval is missing; set it to the sampling "
                             "interval in time_unit")
        dt = _attr(src, f.attrs, "sample_interval", float)
        time_unit = _attr(src, f.attrs, "time_unit", str, "model")
        x_unit = _attr(src, f.attrs, "x_unit", str, "model")
        V_s = _attr(src, f.attrs, "V_s_V", float)
        tau = _attr(src, f.attrs, "tau_s", float)
    x = arrays["x"]
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise InputError(f"{src}: /x has shape {x.shape}; expected (T, runs, N) or (T, N)")
    t = arrays["time"]
    if t.shape != (x.shape[0],):
        raise InputError(f"{src}: /time has shape {t.shape} but /x has {x.shape[0]} samples")
    if not np.all(np.isfinite(x)):
        k = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"{src}: /x contains NaN or inf (first at sample {k[0]}, run {k[1]}, unit {k[2]}); "
                         "drop or repair those samples before calibrating")
    if not np.all(np.isfinite(t)):
        raise InputError(f"{src}: /time contains NaN or inf")
    if not (dt is not None and math.isfinite(dt) and dt > 0):
        raise InputError(f"{src}: sample_interval = {dt} must be a positive number")
    check_time_base(t, dt, src)
    return _to_model(src, x, t, dt, arrays.get("bias"), time_unit, x_unit, V_s, tau, {"format": "hdf5"})


def write_hdf5(rec: Recording, path: str | Path, *, si: bool = False) -> Path:
    """Write ``rec`` in the HDF5 layout: model units, or with ``si`` time in seconds and x in
    volts (needs ``rec.units['tau_s']`` and ``['V_s_V']``). Written to a temporary file and
    renamed, so an interruption leaves no half-written file."""
    path = Path(path)
    h5py = _h5py(str(path))
    tau, V_s = si_scales(rec.units, si, "write_hdf5")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=rec.x * V_s)
            f.create_dataset("time", data=rec.times * tau)
            f.create_dataset("bias", data=rec.bias)
            f.attrs["schema"] = SCHEMA
            f.attrs["sample_interval"] = rec.sample_interval * tau
            f.attrs["time_unit"] = "s" if si else "model"
            f.attrs["x_unit"] = "V" if si else "model"
            for k in ("V_s_V", "tau_s"):
                if k in rec.units:
                    f.attrs[k] = float(rec.units[k])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------
# CSV with a column map
# ---------------------------------------------------------------------------------------------
def column_map_for(csv_path: str | Path) -> Path | None:
    """The column map that applies to ``csv_path``: ``NAME.columns.yaml`` beside ``NAME.csv``,
    else ``columns.yaml`` in its folder; None if neither exists."""
    p = Path(csv_path)
    for cand in (p.with_name(p.stem + ".columns.yaml"), p.with_name("columns.yaml")):
        if cand.is_file():
            return cand
    return None


def load_column_map(path: str | Path) -> dict:
    """Read and check a column map file (YAML or JSON, loaded safely)."""
    import yaml

    path = Path(path)
    try:
        m = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"{path}: not a readable column map ({type(e).__name__}); it is a small YAML file, "
                         "see thermohw.calibrate.lab_formats") from None
    return check_column_map(m, str(path))


def check_column_map(m: Any, src: str = "column map") -> dict:
    """Validate a column map (a dict as in the module docstring); returns a normalised copy."""
    if not isinstance(m, dict):
        raise InputError(f"{src}: a column map is a mapping (time: ..., x: [...]), got {type(m).__name__}")
    unknown = sorted(set(map(str, m)) - MAP_KEYS)
    if unknown:
        raise InputError(f"{src}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(MAP_KEYS))}")
    out = dict(m)
    col = (str, int)
    x = m.get("x")
    if not isinstance(x, list) or not x or not all(isinstance(c, col) and not isinstance(c, bool) for c in x):
        raise InputError(f"{src}: x must list one column (name or 0-based index) per unit, unit 0 first, "
                         "e.g. x: [CH1, CH2]")
    for k in ("time", "run"):
        if k in m and (not isinstance(m[k], col) or isinstance(m[k], bool)):
            raise InputError(f"{src}: {k} must name one column (its header text or 0-based index)")
    if "time" not in m and "sample_interval" not in m:
        raise InputError(f"{src}: give time (the time column) or sample_interval (uniform sampling from 0)")
    if "h" in m and "bias" in m:
        raise InputError(f"{src}: give h (bias columns) or bias (constant values), not both")
    if "h" in m and (not isinstance(m["h"], list) or len(m["h"]) != len(x)):
        raise InputError(f"{src}: h must list one bias column per unit ({len(x)}), like x")
    if "bias" in m:
        b = m["bias"]
        if not isinstance(b, list) or len(b) != len(x) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in b):
            raise InputError(f"{src}: bias must list {len(x)} numbers (one per unit, model units)")
    for k in ("sample_interval", "V_s_V", "tau_s"):
        if k in m:
            try:
                v = float(m[k])
            except (TypeError, ValueError):
                raise InputError(f"{src}: {k} = {m[k]!r} is not a number") from None
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{src}: {k} = {m[k]!r} must be a positive number")
            out[k] = v
    for k in ("skip_rows", "skip_after_header"):
        if k in m and (not isinstance(m[k], int) or isinstance(m[k], bool) or m[k] < 0):
            raise InputError(f"{src}: {k} must be a whole number >= 0")
    if "delimiter" in m and (not isinstance(m["delimiter"], str) or len(m["delimiter"]) != 1):
        raise InputError(f"{src}: delimiter must be one character, e.g. ',' or ';'")
    if "header" in m and not isinstance(m["header"], bool):
        raise InputError(f"{src}: header must be true or false")
    return out


def read_mapped_csv(path: str | Path, columns: dict | str | Path | None = None) -> Recording:
    """Read a lab CSV through a column map (a dict, a map file, or None: the map beside the
    file, :func:`column_map_for`) into model units."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise InputError(f"{src}: no such file")
    m, where = _the_column_map(path, columns)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{src}: not a text file; a CSV capture is plain delimited text") from None
    delim = m.get("delimiter", ",")
    names, body = _mapped_rows(src, lines, m)
    xi, ti, ri, hi, data, col = _mapped_table(src, m, where, names, body, delim)
    n_rows = data.shape[0]
    run = data[:, col[ri]] if ri is not None else np.zeros(n_rows)
    if np.any(run != np.round(run)):
        raise InputError(f"{src}: the run column must hold integer run ids")
    dt = m.get("sample_interval")
    ids = np.unique(run)
    per = [np.nonzero(run == r)[0] for r in ids]
    if len({len(s) for s in per}) > 1:
        raise InputError(f"{src}: runs have different numbers of samples; trim them to a common length")
    if ti is not None:
        times, dt = _mapped_times(src, data[:, col[ti]], ids, per, dt)
    else:
        times = np.arange(len(per[0])) * dt
    x = np.stack([data[s][:, [col[c] for c in xi]] for s in per], axis=1)
    bias = None
    if hi:
        bias = np.empty((len(per), len(xi)))
        for j, s in enumerate(per):
            hr = data[s][:, [col[c] for c in hi]]
            if np.any(hr != hr[0]):
                raise InputError(f"{src}: the bias columns change within run {int(ids[j])}; split the trace at "
                                 "each bias step into separate runs")
            bias[j] = hr[0]
    elif "bias" in m:
        bias = np.tile(np.asarray(m["bias"], dtype=np.float64), (len(per), 1))
    meta = {"format": "csv+column-map", "column_map": where, "runs": [int(r) for r in ids]}
    return _to_model(src, x, times, float(dt), bias, str(m.get("time_unit", "model")), str(m.get("x_unit", "model")),
                     m.get("V_s_V"), m.get("tau_s"), meta)


def _the_column_map(path: Path, columns: dict | str | Path | None) -> tuple[dict, str]:
    """(the checked map, where it came from): ``columns`` as given, or the map file beside ``path``."""
    if columns is None:
        mp = column_map_for(path)
        if mp is None:
            raise InputError(f"{path}: no column map; write {path.stem}.columns.yaml (or columns.yaml) beside it")
        return load_column_map(mp), str(mp)
    if isinstance(columns, (str, Path)):
        return load_column_map(columns), str(columns)
    return check_column_map(columns), "column map"


def _mapped_rows(src: str, lines: list[str], m: dict) -> tuple[list[str], list[str]]:
    """(the column names, or [] without a header line; the non-blank data lines)."""
    delim = m.get("delimiter", ",")
    k = int(m.get("skip_rows", 0))
    while k < len(lines) and not lines[k].strip():
        k += 1
    names: list[str] = []
    if m.get("header", True):
        if k >= len(lines):
            raise InputError(f"{src}: no column-name line after {m.get('skip_rows', 0)} skipped line(s)")
        names = [c.strip() for c in next(csv.reader([lines[k]], delimiter=delim))]
        k += 1 + int(m.get("skip_after_header", 0))
    body = [ln for ln in lines[k:] if ln.strip()]
    if not body:
        raise InputError(f"{src}: no data rows")
    return names, body


def _mapped_table(src: str, m: dict, where: str, names: list[str], body: list[str], delim: str) -> tuple:
    """The mapped columns: (x, time, run, h column indices in the file; the finite numeric table
    of the used columns; file column -> table column)."""
    width = len(body[0].split(delim))

    def index(c, role: str) -> int:
        if isinstance(c, int):
            if not 0 <= c < width:
                raise InputError(f"{src}: {role} column index {c} is outside 0..{width - 1} ({where})")
            return c
        if c not in names:
            raise InputError(f"{src}: no column {c!r} for {role} ({where}); the file's columns are: "
                             + ", ".join(repr(n) for n in names[:12]))
        return names.index(c)

    xi = [index(c, f"x{i}") for i, c in enumerate(m["x"])]
    ti = index(m["time"], "time") if "time" in m else None
    ri = index(m["run"], "run") if "run" in m else None
    hi = [index(c, f"h{i}") for i, c in enumerate(m["h"])] if "h" in m else []
    use = sorted({*xi, *hi, *(v for v in (ti, ri) if v is not None)})
    try:
        data = np.loadtxt(io.StringIO("\n".join(body)), delimiter=delim, usecols=use, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise InputError(f"{src}: a data row has a non-numeric or missing field in a mapped column ({e}); "
                         "skip preamble lines with skip_rows / skip_after_header in the column map") from None
    col = {c: j for j, c in enumerate(use)}
    bad = ~np.isfinite(data)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{src}: NaN or inf in column {names[use[c]] if names else use[c]!r} at data row {r + 1}; "
                         "drop or repair those samples before calibrating")
    return xi, ti, ri, hi, data, col


def _mapped_times(src: str, t_all: np.ndarray, ids: np.ndarray, per: list, dt: float | None) -> tuple:
    """(the first run's sample times, the sample interval: the map's, else the median step)."""
    t0 = t_all[per[0]]
    if dt is None:
        if t0.size < 2:
            raise InputError(f"{src}: one sample per run; a recording needs at least 2")
        dt = float(np.median(np.diff(t0)))
        if not dt > 0:
            raise InputError(f"{src}: time does not increase; sort the rows of each run by time")
    for r, s in zip(ids, per):
        check_time_base(t_all[s], dt, f"{src}: run {int(r)}")
    return t0, dt
