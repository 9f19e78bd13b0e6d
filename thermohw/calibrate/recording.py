"""Recorded trajectories of a chip, and the two file layouts a lab can write them in.

A :class:`Recording` holds x[t, run, unit] in model units (x_i = v_i / V_s) sampled every
``sample_interval`` model time units (t_model = t_seconds / tau_s), plus the imposed bias
h[run, unit] (model units, constant within a run) that the run was recorded under. To record a
bias *step*, split the trace at the step: each constant-bias segment is a run.

CSV layout (text, comma separated; lines starting with ``#`` before the column line are the
header, one ``key: value`` each)::

    # thermohw.recording/1
    # sample_interval: 1e-08        sampling interval, in time_unit (required)
    # time_unit: s                  's' (seconds) or 'model' (default 'model')
    # x_unit: V                     'V' (node volts) or 'model' (default 'model')
    # V_s_V: 0.1                    volts per unit of x (required when x_unit is V)
    # tau_s: 1e-06                  seconds per model time unit (required when time_unit is s)
    run,time,x0,x1,...,x{N-1}[,h0,...,h{N-1}]
    0,0,0.0123,...

``run`` is an integer run id; ``time`` is in ``time_unit``; ``x0..x{N-1}`` are all units
(every index present); the optional ``h0..h{N-1}`` give the imposed bias in model units and
must be constant within a run (absent = 0: free runs). Rows of one run must have increasing,
uniformly spaced times (spacing within 0.1 % of sample_interval); every run must have the same
number of samples. Other columns are ignored (and listed in ``meta['ignored_columns']``).

NPZ layout (``numpy.savez``; loaded with ``allow_pickle=False``): either a file written by
:meth:`Recording.save` (a thermohw record with a JSON header), or plain arrays: ``x``
(T, runs, N) or (T, N) for one run, ``time`` (T,), ``sample_interval`` (scalar), and optionally
``bias`` (runs, N), ``time_unit``/``x_unit`` (strings as above), ``V_s_V``, ``tau_s`` (scalars).

Every malformed file (missing column or array, non-uniform time base, NaN/inf, ragged runs,
unknown units) raises :class:`~thermohw.InputError` naming the file, the place and the fix.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import HEADER_KEY, load_record, numeric_array, read_npz_arrays
from .lab_formats import column_map_for, read_hdf5, read_mapped_csv
# the record and the helpers every reader shares (lab_formats builds Recordings too, so they sit below
# both); imported from here by callers, as before the split
from .trajectories import SCHEMA, TIME_RTOL, Recording, _to_model, check_time_base, si_scales  # noqa: F401

_X_COL = re.compile(r"^x(\d+)$")
_H_COL = re.compile(r"^h(\d+)$")


# ---------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------
def read_recording(path: str | Path) -> Recording:
    """Read ``path`` (``.csv``, ``.npz``, ``.h5``/``.hdf5``; layouts in the module docstring and in
    ``lab_formats``; a CSV with a column map beside it is read through the map) into a
    :class:`Recording` in model units. Also ``Recording.load``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suf = path.suffix.lower()
    if suf == ".csv":
        # a lab's own CSV, read through the column map beside it (thermohw.calibrate.lab_formats)
        return read_mapped_csv(path) if column_map_for(path) is not None else _read_csv(path)
    if suf == ".npz":
        return _read_npz(path)
    if suf in (".h5", ".hdf5"):
        return read_hdf5(path)
    raise InputError(f"{path}: unknown recording format {suf!r}; use .csv, .npz or .h5 (layouts in "
                     "thermohw.calibrate.recording and thermohw.calibrate.lab_formats)")


# Recording lives in .trajectories, below the readers that build it; its load is this module's reader
Recording.load = staticmethod(read_recording)


def _header_float(src: str, head: dict, key: str, required: bool = False) -> float | None:
    if key not in head:
        if required:
            raise InputError(f"{src}: header line '# {key}: ...' is missing")
        return None
    try:
        v = float(head[key])
    except ValueError:
        raise InputError(f"{src}: header {key} = {_short(head[key])} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{src}: header {key} = {_short(head[key])} must be a positive, finite number")
    return v


def _short(v: Any, n: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n - 3] + "..."


def _read_csv(path: Path) -> Recording:
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{src}: not a text file; a CSV recording is plain comma-separated text") from None
    except OSError as e:
        raise InputError(f"{src}: cannot be read ({e.strerror or e})") from None
    lines = text.splitlines()
    head, k = _csv_header(src, lines)
    cols = [c.strip() for c in lines[k].split(",")]
    first_data = k + 1
    xs, hs, n = _csv_columns(src, cols, k)
    if "sample_interval" not in head:
        raise InputError(f"{src}: header line '# sample_interval: ...' is missing; add the sampling "
                         "interval (in time_unit) above the column line")
    dt = _header_float(src, head, "sample_interval", True)
    data = _csv_table(src, lines, first_data, cols)
    ids, per, times = _csv_runs(src, data, cols, dt, first_data)
    x = np.stack([data[s][:, [xs[i] for i in range(n)]] for s in per], axis=1)  # (T, R, N)
    bias = None
    if hs:
        bias = np.empty((len(per), n))
        for r, s in enumerate(per):
            hr = data[s][:, [hs[i] for i in range(n)]]
            if np.any(hr != hr[0]):
                raise InputError(f"{src}: the bias columns change within run {int(ids[r])}; a run has one "
                                 "constant imposed bias - split the trace at each bias step into separate runs")
            bias[r] = hr[0]
    known = {"run", "time"} | {cols[j] for j in xs.values()} | {cols[j] for j in hs.values()}
    meta = {"runs": [int(r) for r in ids], "ignored_columns": [c for c in cols if c not in known]}
    return _to_model(src, x, times, dt, bias, head.get("time_unit", "model"), head.get("x_unit", "model"),
                     _header_float(src, head, "V_s_V"), _header_float(src, head, "tau_s"), meta)


def _csv_header(src: str, lines: list[str]) -> tuple[dict[str, str], int]:
    """The '# key: value' header lines: (header, index of the column line)."""
    head: dict[str, str] = {}
    k = 0
    while k < len(lines) and (lines[k].startswith("#") or not lines[k].strip()):
        body = lines[k].lstrip("#").strip()
        if ":" in body:
            key, val = body.split(":", 1)
            key, val = key.strip(), (val.strip().split()[0] if val.strip() else "")
            if key in head and head[key] != val:
                raise InputError(f"{src}: header line '# {key}: ...' is given twice with different values "
                                 f"(line {k + 1}); keep one")
            head[key] = val
        k += 1
    if k >= len(lines):
        raise InputError(f"{src}: no column line; expected 'run,time,x0,...,x{{N-1}}' after the header")
    return head, k


def _csv_columns(src: str, cols: list[str], k: int) -> tuple[dict[int, int], dict[int, int], int]:
    """Where x<i> and h<i> are (unit -> column), and the number of units; every naming fault refused."""
    missing = [c for c in ("run", "time") if c not in cols]
    xs = {int(m.group(1)): j for j, c in enumerate(cols) if (m := _X_COL.match(c))}
    hs = {int(m.group(1)): j for j, c in enumerate(cols) if (m := _H_COL.match(c))}
    named = [c for c in cols if c in ("run", "time") or _X_COL.match(c) or _H_COL.match(c)]
    if len(named) != len(set(named)) or len(xs) + len(hs) + 2 < len(named):
        raise InputError(f"{src}: a column is named twice on line {k + 1} (e.g. two x1, or x1 and x01); "
                         "each of run, time, x<i>, h<i> must appear once")
    if not xs:
        missing.append("x0..x{N-1}")
    if missing:
        found = ",".join(cols)
        raise InputError(f"{src}: missing column(s) {', '.join(missing)}; the layout is "
                         "run,time,x0,...,x{N-1}[,h0,...,h{N-1}] (found: "
                         + (found if len(found) <= 80 else found[:77] + "...") + ")")
    n = max(xs) + 1
    if n != len(xs):  # a column name like x99999999999 must not make us walk to its number
        gaps = [f"x{i}" for i in range(min(n, len(xs) + 5)) if i not in xs][:5]
        raise InputError(f"{src}: missing column(s) {', '.join(gaps)}{' ...' if n - len(xs) > len(gaps) else ''}; "
                         f"every unit x0..x{n - 1} needs a column")
    if hs and sorted(hs) != list(range(n)):
        lack = [f"h{i}" for i in range(n) if i not in hs][:5]
        extra = [f"h{i}" for i in sorted(hs) if i >= n][:5]
        raise InputError(f"{src}: bias columns are incomplete (missing {', '.join(lack) or 'none'}; "
                         f"extra {', '.join(extra) or 'none'}); give h0..h{n - 1} or none")
    return xs, hs, n


def _csv_table(src: str, lines: list[str], first_data: int, cols: list[str]) -> np.ndarray:
    """The numeric rows (rows x columns), finite; a bad line is named."""
    body = "\n".join(lines[first_data:])
    if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines[first_data:]):
        raise InputError(f"{src}: no data rows after the column line")
    try:
        data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        for j, ln in enumerate(lines[first_data:], first_data + 1):
            if not ln.strip():
                continue
            parts = ln.split(",")
            if len(parts) != len(cols):
                raise InputError(f"{src}: line {j} has {len(parts)} fields, the column line has {len(cols)}") from None
            try:
                [float(p) for p in parts]
            except ValueError:
                raise InputError(f"{src}: line {j} has a non-numeric field: {ln[:80]!r}") from None
        raise InputError(f"{src}: could not parse the numeric table") from None
    if data.shape[0] == 0:
        raise InputError(f"{src}: no data rows")
    if data.shape[1] != len(cols):
        raise InputError(f"{src}: rows have {data.shape[1]} fields, the column line has {len(cols)}")
    bad = ~np.isfinite(data)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"{src}: NaN or inf in column {cols[c]} at line {first_data + r + 1} "
                         f"({int(bad.sum())} such values); drop or repair those samples before calibrating")
    return data


def _csv_runs(src: str, data: np.ndarray, cols: list[str], dt: float, first_data: int) -> tuple:
    """(run ids, the row indices of each run, the sample times): each run's times increasing on
    the sample_interval grid, every run as long as the first."""
    run = data[:, cols.index("run")]
    if np.any(run != np.round(run)):
        raise InputError(f"{src}: the run column must hold integer run ids")
    time = data[:, cols.index("time")]
    ids = np.unique(run)
    per = []
    for rid in ids:
        sel = np.nonzero(run == rid)[0]
        t = time[sel]
        if np.any(np.diff(t) <= 0):
            j = int(np.nonzero(np.diff(t) <= 0)[0][0])
            raise InputError(f"{src}: time is not increasing in run {int(rid)} at line {first_data + sel[j + 1] + 1}; "
                             "sort the rows of each run by time")
        check_time_base(t, dt, f"{src}: run {int(rid)}")
        per.append(sel)
    lens = {len(s) for s in per}
    if len(lens) > 1:
        counts = ", ".join(f"run {int(r)}: {len(s)}" for r, s in list(zip(ids, per))[:6])
        raise InputError(f"{src}: runs have different numbers of samples ({counts}); trim them to a common length")
    return ids, per, time[per[0]]


def _read_npz(path: Path) -> Recording:
    src = str(path)
    a = read_npz_arrays(path, "recording")  # every array read here, each failure an InputError
    if HEADER_KEY in a:
        h, a = load_record(path, SCHEMA)
        for k in ("time", "x"):
            if k not in a:
                raise InputError(f"{src}: recording lacks array {k!r}")
        sdt = h.get("sample_interval")
        if isinstance(sdt, bool) or not isinstance(sdt, (int, float)):
            raise InputError(f"{src}: header lacks a numeric sample_interval; the file is damaged")
        units, meta = h.get("units") or {}, h.get("meta") or {}
        if not isinstance(units, dict) or not isinstance(meta, dict):
            raise InputError(f"{src}: header units and meta must be JSON objects; the file is damaged")
        scales = []
        for k in ("V_s_V", "tau_s"):
            v = units.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InputError(f"{src}: header units.{k} = {_short(v)} is not a number; the file is damaged")
            scales.append(None if v is None else float(v))
        tu, xu = h.get("time_unit", "model"), h.get("x_unit", "model")
        if not isinstance(tu, str) or not isinstance(xu, str):
            raise InputError(f"{src}: header time_unit and x_unit must be text; the file is damaged")
        return _to_model(src, a["x"], a["time"], float(sdt), a.get("bias"), tu, xu, *scales, meta)
    missing = [k for k in ("x", "time", "sample_interval") if k not in a]
    if missing:
        raise InputError(f"{src}: missing array(s) {', '.join(missing)}; a plain NPZ recording needs x "
                         "(T, runs, N), time (T,) and sample_interval (scalar)")
    x = np.asarray(a["x"])
    if x.dtype.kind not in "fiu":
        raise InputError(f"{src}: x has dtype {x.dtype}; it must be numeric")
    x = x.astype(np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise InputError(f"{src}: x has shape {x.shape}; expected (T, runs, N) or (T, N)")
    if not np.all(np.isfinite(x)):
        k = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"{src}: x contains NaN or inf (first at sample {k[0]}, run {k[1]}, unit {k[2]}); "
                         "drop or repair those samples before calibrating")
    t = numeric_array(src, "time", a["time"]).astype(np.float64)
    if t.shape != (x.shape[0],):
        raise InputError(f"{src}: time has shape {t.shape} but x has {x.shape[0]} samples")

    def scalar(k: str, kind: type):
        if k not in a:
            return None
        v = a[k]
        if v.shape != ():
            raise InputError(f"{src}: {k} must be a scalar, got shape {v.shape}")
        # a number must be stored as a number and a unit as text: no silent parsing either way
        if (kind is str) != (v.dtype.kind == "U") or (kind is float and v.dtype.kind not in "iuf"):
            want = "text such as 's' or 'model'" if kind is str else "a number"
            raise InputError(f"{src}: {k} is stored as {v.dtype}; it must be {want}")
        return kind(v.item())

    dt = scalar("sample_interval", float)
    if not np.all(np.isfinite(t)):
        raise InputError(f"{src}: time contains NaN or inf")
    check_time_base(t, dt, src)
    return _to_model(src, x, t, dt, a.get("bias"), scalar("time_unit", str) or "model",
                     scalar("x_unit", str) or "model", scalar("V_s_V", float), scalar("tau_s", float), {})
