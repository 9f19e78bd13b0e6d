"""The :class:`Recording` record (measured trajectories in model units) and what every file
reader shares: the time-base check, the SI scales of a writer, and the conversion of a file's
units to model units. The readers build Recordings, so they sit above this module:
:mod:`thermohw.calibrate.recording` (the thermohw CSV/NPZ layouts, ``read_recording``) and
:mod:`thermohw.calibrate.lab_formats` (HDF5, a lab's CSV through a column map)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_write, numeric_array, save_record

SCHEMA = "thermohw.recording/1"
TIME_RTOL = 1e-3   # allowed deviation of a time step from sample_interval, relative


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

    # Recording.load(path), any layout, is attached in thermohw.calibrate.recording: it is
    # read_recording, which needs every reader, and the readers build Recordings


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
        with np.errstate(over="ignore"):  # a value beyond float64 becomes inf, refused below in one line
            times, dt = times / tau, dt / tau
    if x_unit == "V":
        if V_s is None:
            raise InputError(f"{src}: x_unit is V but V_s_V (volts per unit of x) is missing; add it to the header")
        with np.errstate(over="ignore"):  # as above: Recording refuses the inf ("x contains NaN or inf")
            x = x / V_s
    try:
        return Recording(times, x, dt, bias, units, {"source": src, **meta})
    except InputError as e:
        raise InputError(f"{src}: {e}") from None
