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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import HEADER_KEY, atomic_write, load_record, numeric_array, read_npz_arrays, save_record

SCHEMA = "thermohw.recording/1"
TIME_RTOL = 1e-3   # allowed deviation of a time step from sample_interval, relative
_X_COL = re.compile(r"^x(\d+)$")
_H_COL = re.compile(r"^h(\d+)$")


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def check_time_base(t: np.ndarray, dt: float, where: str) -> None:
    """Raise InputError unless ``t`` increases in steps of ``dt`` (within TIME_RTOL)."""
    if not (math.isfinite(dt) and dt > 0):  # say so, rather than call every step 'non-uniform'
        raise InputError(f"{where}: sample_interval = {dt:g}; it must be a positive, finite time between "
                         "samples - fix the sample_interval value")
    d = np.diff(t)
    bad = np.nonzero(np.abs(d - dt) > TIME_RTOL * dt)[0]
    if bad.size:
        k = int(bad[0])
        raise InputError(f"{where}: non-uniform time base: step {k} -> {k + 1} is {d[k]:.9g}, the sample "
                         f"interval is {dt:.9g} ({bad.size} of {d.size} steps differ by more than "
                         f"{100 * TIME_RTOL:g} %); resample the trace onto a uniform grid or split it at the gap")


def si_scales(units: dict, si: bool, writer: str) -> tuple[float, float]:
    """(seconds per model time unit, volts per model unit) for a writer's ``si`` option; (1, 1)
    without it."""
    if not si:
        return 1.0, 1.0
    try:
        return float(units["tau_s"]), float(units["V_s_V"])
    except KeyError:
        raise InputError(f"{writer}(si=True) needs units['tau_s'] and units['V_s_V']; write model units "
                         "instead (si=False)") from None


@dataclass(frozen=True, eq=False)
class Recording:
    """Trajectories of all units, model units.

    times : (T,) sample times (model time units), uniform with spacing ``sample_interval``.
    x : (T, runs, N) states, model units.
    sample_interval : model time units between samples.
    bias : (runs, N) imposed bias h per run, model units (default zeros: free runs).
    units : scale metadata: ``V_s_V`` (volts per unit x) and ``tau_s`` (seconds per model time
        unit) when known, and the units the data arrived in.
    meta : provenance (device, seed, program hash, protocol description, ...).
    """

    times: Any
    x: Any
    sample_interval: float
    bias: Any = None
    units: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("x", "times", "bias"):
            if getattr(self, name) is not None:
                numeric_array("recording", name, getattr(self, name))  # complex/text/object: refused
        x = np.asarray(self.x, dtype=np.float64)
        if x.ndim != 3:
            raise InputError(f"x must be (samples, runs, units), got shape {x.shape}")
        T, R, N = x.shape
        if T < 2 or R < 1 or N < 1:
            raise InputError(f"a recording needs >= 2 samples, >= 1 run and >= 1 unit; got x {x.shape}")
        if not np.all(np.isfinite(x)):
            k = np.argwhere(~np.isfinite(x))[0]
            raise InputError(f"x contains NaN or inf (first at sample {k[0]}, run {k[1]}, unit {k[2]})")
        dt = float(self.sample_interval)
        if not (dt > 0 and math.isfinite(dt)):
            raise InputError(f"sample_interval must be a positive number, got {self.sample_interval}")
        t = np.asarray(self.times, dtype=np.float64)
        if t.shape != (T,):
            raise InputError(f"times has shape {t.shape}; x has {T} samples")
        if not np.all(np.isfinite(t)):
            raise InputError("times contains NaN or inf")
        check_time_base(t, dt, "recording")
        h = np.zeros((R, N)) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
        if h.shape == (N,):  # one bias for every run
            h = np.broadcast_to(h, (R, N))
        if h.shape != (R, N):
            raise InputError(f"bias has shape {h.shape}; expected (runs, units) = {(R, N)}")
        if not np.all(np.isfinite(h)):
            raise InputError("bias contains NaN or inf")
        if not isinstance(self.units, dict) or not isinstance(self.meta, dict):
            raise InputError("units and meta must be dicts")
        fz = object.__setattr__
        fz(self, "x", _ro(x))
        fz(self, "times", _ro(t))
        fz(self, "sample_interval", dt)
        fz(self, "bias", _ro(h))
        fz(self, "units", dict(self.units))
        fz(self, "meta", dict(self.meta))

    # ---- shape ---------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.x.shape[0]

    @property
    def n_runs(self) -> int:
        return self.x.shape[1]

    @property
    def n_units(self) -> int:
        return self.x.shape[2]

    @property
    def duration(self) -> float:
        return (self.n_samples - 1) * self.sample_interval

    @property
    def n_transitions(self) -> int:
        """Number of recorded steps x_k -> x_{k+1} (what the fit uses)."""
        return (self.n_samples - 1) * self.n_runs

    # ---- transforms ----------------------------------------------------------------------
    def decimate(self, every: int) -> "Recording":
        """Every ``every``-th sample (a longer sample interval)."""
        every = int(every)
        if every < 1:
            raise InputError("decimation factor must be >= 1")
        if every == 1:
            return self
        return Recording(self.times[::every], self.x[::every], self.sample_interval * every, self.bias,
                         self.units, {**self.meta, "decimated_by": every})

    def truncate(self, n_samples: int) -> "Recording":
        """The first ``n_samples`` samples."""
        if not 2 <= n_samples <= self.n_samples:
            raise InputError(f"cannot keep {n_samples} of {self.n_samples} samples")
        return Recording(self.times[:n_samples], self.x[:n_samples], self.sample_interval, self.bias,
                         self.units, self.meta)

    def select_runs(self, runs: Any) -> "Recording":
        idx = np.atleast_1d(np.asarray(runs))
        return Recording(self.times, self.x[:, idx], self.sample_interval, self.bias[idx], self.units, self.meta)

    @staticmethod
    def concat(recordings: Sequence["Recording"]) -> "Recording":
        """Runs of several recordings side by side (same units, sample interval and length)."""
        recs = list(recordings)
        if not recs:
            raise InputError("nothing to concatenate")
        r0 = recs[0]
        for k, r in enumerate(recs[1:], 1):
            if r.n_units != r0.n_units:
                raise InputError(f"recording {k} has {r.n_units} units, recording 0 has {r0.n_units}")
            if abs(r.sample_interval - r0.sample_interval) > 1e-9 * r0.sample_interval:
                raise InputError(f"recording {k} has sample interval {r.sample_interval:g}, recording 0 "
                                 f"{r0.sample_interval:g}; decimate one of them to match")
            if r.n_samples != r0.n_samples:
                raise InputError(f"recording {k} has {r.n_samples} samples, recording 0 {r0.n_samples}; "
                                 "truncate them to a common length")
        return Recording(r0.times, np.concatenate([r.x for r in recs], axis=1), r0.sample_interval,
                         np.concatenate([r.bias for r in recs], axis=0), r0.units,
                         {**r0.meta, "concatenated": len(recs)})

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a ``.npz`` record (arrays time, x, bias + JSON header), or a ``.csv`` file if
        the name ends in ``.csv`` (see :meth:`save_csv`)."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            return self.save_csv(path)
        header = {"sample_interval": self.sample_interval, "time_unit": "model", "x_unit": "model",
                  "units": self.units, "meta": self.meta,
                  "layout": "x[t, run, unit] model units; bias[run, unit] model units; time model units"}
        return save_record(path, SCHEMA, header, {"time": self.times, "x": self.x, "bias": self.bias})

    def save_csv(self, path: str | Path, *, si: bool = False) -> Path:
        """Write the CSV layout of the module docstring. ``si``: time in seconds and x in volts
        (needs ``units['tau_s']`` and ``units['V_s_V']``), as an oscilloscope would; otherwise
        model units. Values are written with 17 significant digits (exact float64 round trip
        in model units)."""
        T, R, N = self.x.shape
        tau, V_s = si_scales(self.units, si, "save_csv")
        head = [SCHEMA, f"sample_interval: {self.sample_interval * tau!r}",
                f"time_unit: {'s' if si else 'model'}", f"x_unit: {'V' if si else 'model'}"]
        for k in ("V_s_V", "tau_s"):
            if k in self.units:
                head.append(f"{k}: {float(self.units[k])!r}")
        cols = ["run", "time"] + [f"x{i}" for i in range(N)] + [f"h{i}" for i in range(N)]
        run = np.repeat(np.arange(R), T)[:, None].astype(np.float64)
        time = np.tile(self.times * tau, R)[:, None]
        xs = self.x.transpose(1, 0, 2).reshape(R * T, N) * V_s
        hs = np.repeat(self.bias, T, axis=0)
        table = np.hstack([run, time, xs, hs])

        def write(fh) -> None:
            fh.write("".join(f"# {h}\n" for h in head))
            fh.write(",".join(cols) + "\n")
            fmt = ",".join(["%d"] + ["%.17g"] * (table.shape[1] - 1))
            np.savetxt(fh, table, fmt=fmt)

        return atomic_write(path, write, mode="w")

    @classmethod
    def load(cls, path: str | Path) -> "Recording":
        """Read a CSV, NPZ or HDF5 recording (layouts in the module docstring and in
        ``lab_formats``; a CSV with a column map beside it is read through the map)."""
        return read_recording(path)


# ---------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------
def read_recording(path: str | Path) -> Recording:
    """Read ``path`` (``.csv`` or ``.npz``) into a :class:`Recording` in model units."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suf = path.suffix.lower()
    if suf == ".csv":
        from .lab_formats import column_map_for, read_mapped_csv

        # a lab's own CSV, read through the column map beside it (thermohw.calibrate.lab_formats)
        return read_mapped_csv(path) if column_map_for(path) is not None else _read_csv(path)
    if suf == ".npz":
        return _read_npz(path)
    if suf in (".h5", ".hdf5"):
        from .lab_formats import read_hdf5

        return read_hdf5(path)
    raise InputError(f"{path}: unknown recording format {suf!r}; use .csv, .npz or .h5 (layouts in "
                     "thermohw.calibrate.recording and thermohw.calibrate.lab_formats)")


def _to_model(src: str, x: np.ndarray, times: np.ndarray, dt: float, bias: np.ndarray | None,
              time_unit: str, x_unit: str, V_s: float | None, tau: float | None, meta: dict) -> Recording:
    units: dict[str, Any] = {"source_time_unit": time_unit, "source_x_unit": x_unit}
    if time_unit not in ("s", "model"):
        raise InputError(f"{src}: time_unit {time_unit!r} is not supported; use 's' or 'model'")
    if x_unit not in ("V", "model"):
        raise InputError(f"{src}: x_unit {x_unit!r} is not supported; use 'V' or 'model'")
    for name, v in (("V_s_V", V_s), ("tau_s", tau)):
        if v is not None:
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{src}: {name} = {v} must be a positive number")
            units[name] = float(v)
    if time_unit == "s":
        if tau is None:
            raise InputError(f"{src}: time_unit is s but tau_s (seconds per model time unit) is missing; "
                             "add it to the header (the compiled program's scales list it)")
        times, dt = times / tau, dt / tau
    if x_unit == "V":
        if V_s is None:
            raise InputError(f"{src}: x_unit is V but V_s_V (volts per unit of x) is missing; add it to the header")
        x = x / V_s
    try:
        return Recording(times, x, dt, bias, units, {"source": src, **meta})
    except InputError as e:
        raise InputError(f"{src}: {e}") from None


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
    cols = [c.strip() for c in lines[k].split(",")]
    first_data = k + 1
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
    if "sample_interval" not in head:
        raise InputError(f"{src}: header line '# sample_interval: ...' is missing; add the sampling "
                         "interval (in time_unit) above the column line")
    dt = _header_float(src, head, "sample_interval", True)
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
    x = np.stack([data[s][:, [xs[i] for i in range(n)]] for s in per], axis=1)  # (T, R, N)
    times = time[per[0]]
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
