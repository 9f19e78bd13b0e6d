"""In-process ngspice through PySpice's shared-library interface (``NgSpiceShared``).

``run_shared(netlist)`` returns the same :class:`~thermohw.spice.ngspice.RawData` as the batch
engine ``run_batch`` -- the same lower-case vector names (``time``, ``v(u0)``, ``i(v1)``, ...) in
the same order, float64 arrays -- so callers can switch engines freely. There is no file round
trip: the netlist goes in through ``ngSpice_Circ`` and the vectors are copied out of ngspice's
memory.

Facts this module relies on, measured with PySpice 1.5 and Debian's ngspice 39 (libngspice0):

* Library: PySpice looks for the unversioned ``libngspice.so``, which only ``libngspice0-dev``
  installs. We try PySpice's default first and otherwise point it at the versioned
  ``libngspice.so.0`` (``NGSPICE_LIBRARY_PATH``, ``ctypes.util.find_library``, the usual lib
  folders). A failed ``NgSpiceShared`` construction cannot be retried in the same process (its
  cffi declarations are already registered), so the library is probed with ``ctypes`` first.
* ``NgSpiceShared`` is one ngspice per process and not re-entrant: every use holds ``_LOCK``.
* Memory: each run leaves a plot (``tran1``, ``tran2``, ...) and a circuit behind. ``destroy
  all`` plus ``remcirc`` after every run keeps the process flat (200 runs: 38.9 -> 39.0 MB);
  ``destroy`` alone still grows (~0.04 MB/run, circuits), ``remcirc`` alone grows ~0.8 MB/run.
* Seeds: ``.options seed=N`` reseeds ngspice's uniform generator when the netlist is loaded, but
  its Gaussian generator (``gauss0``, used by ``TRRANDOM`` type 2) caches the second value of each
  Box-Muller pair in a static variable that no command resets. After a run that drew an odd number
  of Gaussians, the next run with the same seed starts from the stale cached value and its noise
  differs. Before every run we therefore check the cache (``sgauss`` of a real vector uses the
  cache-free ``gauss1``, of a complex vector the cached ``gauss0``: comparing them tells whether a
  value is pending) and, if one is pending, drain it with a tiny circuit that draws an odd number
  of Gaussians. With that, a seeded ``TRRANDOM`` netlist gives bit-identical waveforms in this
  engine and in ``ngspice -b``, run after run. Netlists without a seed get a fresh random seed per
  run, as a fresh batch process would.
* Errors: PySpice's own error heuristics treat every non-"Warning" stderr line (including
  "Note: ..." and gmin-stepping chatter) as a failure and never notice parse errors at load
  time; we drive ``ngSpice_Circ``/``ngSpice_Command`` directly and classify ngspice's output
  like the batch engine: "Error ..." lines, "timestep too small", "fatal", aborted runs, no data.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import threading
import time
from typing import Any

import numpy as np

from .ngspice import INSTALL_HINT, NgspiceError, RawData

__all__ = ["run_shared", "shared_available", "library_path", "SHARED_INSTALL_HINT"]

SHARED_INSTALL_HINT = ("the shared engine needs PySpice (pip install PySpice==1.5) and the ngspice shared "
                       "library (apt-get update && apt-get install -y libngspice0); or use engine='batch'")

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {"ng": None, "lib": None, "pid": None, "quiet": False, "commands": 0,
                          "gauss_sync": True}
_PYSPICE_LOGGER = "PySpice.Spice.NgSpice.Shared.NgSpiceShared"
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
             "/usr/local/lib", "/usr/local/lib64", "/opt/homebrew/lib")
# an odd number of gauss0 draws (measured: flips the pending-value state every time)
_DRAIN_CIRCUIT = ("* thermohw: drain ngspice's cached gaussian\n"
                  "Vdrain 1 0 DC 0 TRRANDOM(2 10 0 1 0)\nRdrain 1 0 1\n.tran 1 1\n.end\n")
_PROBE_SEED = 1234567


class _QuietFilter(logging.Filter):
    """Drop PySpice's "Unsupported Ngspice version" warning, and everything PySpice logs while
    this module drives ngspice (we capture ngspice's output ourselves and report it in
    NgspiceError)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _STATE["quiet"]:
            return False
        return "Unsupported Ngspice version" not in record.getMessage()


def _candidates() -> list[str]:
    out = []
    env = os.environ.get("NGSPICE_LIBRARY_PATH")
    if env:
        out.append(env)
    out.append("libngspice.so")  # PySpice's default on Linux (libngspice0-dev)
    found = ctypes.util.find_library("ngspice")
    if found:
        out.append(found)
    out.append("libngspice.so.0")
    for d in _LIB_DIRS:
        out += sorted(glob.glob(os.path.join(d, "libngspice.so*")))
        out += sorted(glob.glob(os.path.join(d, "libngspice*.dylib")))
    seen, uniq = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            uniq.append(c)
    return uniq


def library_path() -> str:
    """The ngspice shared library PySpice will load (probed with ctypes); NgspiceError if none."""
    tried = []
    for cand in _candidates():
        try:
            ctypes.CDLL(cand)
        except OSError as e:
            tried.append(f"{cand} ({str(e).split(':')[-1].strip()})")
            continue
        return cand
    raise NgspiceError("the ngspice shared library was not found (tried " + ", ".join(tried[:4])
                       + f"); {INSTALL_HINT}, or set NGSPICE_LIBRARY_PATH to libngspice.so.0")


def shared_available() -> bool:
    """True if PySpice imports and the ngspice shared library loads (cheap; does not start ngspice)."""
    try:
        import PySpice.Spice.NgSpice.Shared  # noqa: F401
        library_path()
    except Exception:
        return False
    return True


def _engine():
    """The process's NgSpiceShared instance (created on first use). Caller holds _LOCK."""
    if _STATE["ng"] is not None:
        if _STATE["pid"] != os.getpid():
            raise NgspiceError("the shared ngspice engine was started before this process forked; "
                               "use the 'spawn' start method for worker pools (thermohw.executor does)")
        return _STATE["ng"]
    try:
        from PySpice.Spice.NgSpice import Shared as _shared
    except ImportError as e:
        raise NgspiceError(f"PySpice is not importable ({e}); {SHARED_INSTALL_HINT}") from None
    logger = logging.getLogger(_PYSPICE_LOGGER)
    if not any(isinstance(f, _QuietFilter) for f in logger.filters):
        logger.addFilter(_QuietFilter())
    lib = library_path()
    os.environ.setdefault("NGSPICE_LIBRARY_PATH", lib)  # child processes find it too
    _shared.NgSpiceShared.LIBRARY_PATH = lib  # PySpice read the environment at import time
    cls = _engine_class(_shared)
    existing = _shared.NgSpiceShared._instances.get(0)
    if existing is not None:
        ng = existing  # someone in this process already made one (then timeouts fall back to a plain run)
    else:
        try:
            ng = cls.new_instance()
        except Exception as e:
            raise NgspiceError(f"could not start ngspice from {lib}: {e}; {SHARED_INSTALL_HINT}") from None
    _STATE.update(ng=ng, lib=lib, pid=os.getpid())
    _command(ng, "set nomoremode")
    _command(ng, "destroy all")
    return ng


def _engine_class(_shared):
    """NgSpiceShared with a working background-thread callback: PySpice 1.5's returns None
    (cffi then prints "an integer is required" on every bg_run) and stores ngspice's
    "not running" flag as "running". Ours returns 0 and signals the end of a background run."""
    if "cls" in _STATE:
        return _STATE["cls"]
    ffi = _shared.ffi

    class ThermohwNgSpiceShared(_shared.NgSpiceShared):
        @staticmethod
        def _background_thread_running(no_run, ngspice_id, user_data):
            self = ffi.from_handle(user_data)
            self._is_running = not no_run
            if no_run:
                done = getattr(self, "_thermohw_done", None)
                if done is not None:
                    done.set()
            return 0

    _STATE["cls"] = ThermohwNgSpiceShared
    return ThermohwNgSpiceShared


def _ffi():
    from PySpice.Spice.NgSpice.Shared import ffi

    return ffi


def _command(ng, command: str) -> tuple[int, list[str], list[str]]:
    """Run one ngspice command; return (rc, stdout lines, stderr lines). No PySpice heuristics."""
    ffi = _ffi()
    _STATE["commands"] += 1
    if _STATE["commands"] > 5000:  # ngspice keeps every command in its history: free it now and then
        ng._ngspice_shared.ngSpice_Command(ffi.NULL)
        _STATE["commands"] = 0
    ng.clear_output()
    rc = ng._ngspice_shared.ngSpice_Command(command.encode("ascii"))
    return int(rc), list(ng._stdout), list(ng._stderr)


def _load(ng, netlist: str) -> list[str]:
    """ngSpice_Circ the netlist; return ngspice's output lines (stdout + stderr)."""
    ffi = _ffi()
    lines = [ln for ln in str(netlist).replace("\r\n", "\n").split("\n") if ln.strip()]
    lines.append("")  # ngspice wants an empty last line
    keep = [ffi.new("char[]", ln.encode("utf-8")) for ln in lines] + [ffi.NULL]
    arr = ffi.new("char *[]", keep)
    ng.clear_output()
    rc = ng._ngspice_shared.ngSpice_Circ(arr)
    out = list(ng._stdout) + list(ng._stderr)
    if rc:
        out.append(f"Error: ngSpice_Circ returned {rc}")
    return out


def _vector(ng, name: str) -> np.ndarray | None:
    ffi = _ffi()
    vi = ng._ngspice_shared.ngGet_Vec_Info(name.encode("utf-8"))
    if vi == ffi.NULL:
        return None
    n = int(vi.v_length)
    if vi.v_realdata != ffi.NULL:
        return np.frombuffer(ffi.buffer(vi.v_realdata, n * 8), dtype=np.float64).copy()
    if vi.v_compdata != ffi.NULL:
        a = np.frombuffer(ffi.buffer(vi.v_compdata, n * 16), dtype=np.float64).copy()
        return a[0::2] + 1j * a[1::2]
    return np.zeros(0)


def _gauss_pending(ng) -> bool | None:
    """Is a Gaussian value cached in ngspice's gauss0? None if the probe does not behave as
    ngspice 39's does (then we cannot tell)."""
    _command(ng, f"setseed {_PROBE_SEED}")
    _command(ng, "let thermohw_gr = sgauss(1)")  # real: gauss1, no cache
    r = _vector(ng, "thermohw_gr")
    _command(ng, f"setseed {_PROBE_SEED}")
    _command(ng, "let thermohw_gc = sgauss(j(1))")  # complex: two gauss0 draws (cache parity kept)
    c = _vector(ng, "thermohw_gc")
    _command(ng, "unlet thermohw_gr thermohw_gc")
    if r is None or c is None or len(r) != 1 or len(c) != 1:
        return None
    r, c = float(r[0]), complex(c[0])
    if c.imag == r:
        return True
    if c.real == r:
        return False
    return None


def _sync_gauss(ng) -> None:
    """Leave no cached Gaussian in ngspice, so a seeded run draws exactly what a fresh
    ``ngspice -b`` process draws; then seed randomly for netlists that bring no seed."""
    if _STATE["gauss_sync"]:
        pending = _gauss_pending(ng)
        if pending:
            _load(ng, _DRAIN_CIRCUIT)
            _command(ng, "run")
            _command(ng, "destroy all")
            _command(ng, "remcirc")
            pending = _gauss_pending(ng)
        if pending is None or pending:
            _STATE["gauss_sync"] = False  # not ngspice 39's generator: stop trying, say so once
            logging.getLogger(__name__).warning(
                "could not synchronise ngspice's Gaussian generator; seeded TRRANDOM runs in the shared "
                "engine may differ from batch runs")
    _command(ng, f"setseed {int.from_bytes(os.urandom(4), 'little') % 2147483646 + 1}")


def _is_error(line: str) -> bool:
    low = line.strip().lower()
    return (low.startswith("error") or "timestep too small" in low or "fatal" in low
            or "simulation(s) aborted" in low or "circuit not parsed" in low
            or "simulation not started" in low or low.startswith("no such command"))


def _raw_name(name: str) -> str:
    """The name the batch raw writer gives a plot vector (ngspice outitf.c: guess_type and
    fileInit_pass2), lower-cased like read_raw."""
    low = name.lower()
    if "#branch" in low:
        return f"i({low[:low.index('#branch')]})"
    if low in ("time", "frequency", "temp-sweep", "res-sweep", "i-sweep", "speedcheck"):
        return low
    if low.startswith(("inoise", "onoise")) or ":power" in low:
        return low
    if low.startswith("@"):
        if "@i" in low and any(k in low for k in ("[c]", "[dc]", "[current]")):
            return f"i({low})"
        if "[i" in low:
            return f"i({low})"
        if any(k in low for k in ("[g", "[c", "[q", "[p]")):
            return low
        return f"v({low})"
    if low.startswith("v(") and low.endswith(")"):  # digit node names appear as V(1) in a plot
        return low
    return f"v({low})"


def _collect(ng, plot: str, title: str, plotname: str) -> RawData:
    ffi = _ffi()
    arr = ng._ngspice_shared.ngSpice_AllVecs(plot.encode("utf-8"))
    names = []
    i = 0
    while arr[i] != ffi.NULL:
        names.append(ffi.string(arr[i]).decode("utf-8", "replace"))
        i += 1
    names.reverse()  # ngspice prepends each new vector: the plot lists them newest first
    data: dict[str, np.ndarray] = {}
    order: list[str] = []
    for n in names:
        v = _vector(ng, f"{plot}.{n}")
        if v is None:
            continue
        if np.iscomplexobj(v):
            raise NgspiceError("complex data (AC analysis) is not supported by the shared engine reader")
        key = _raw_name(n)
        data[key] = v
        order.append(key)
    if "time" in order and order[0] != "time":
        order.remove("time")
        order.insert(0, "time")
    return RawData(title, plotname, tuple(order), data)


def _plots(ng) -> list[str]:
    ffi = _ffi()
    arr = ng._ngspice_shared.ngSpice_AllPlots()
    out = []
    i = 0
    while arr[i] != ffi.NULL:
        out.append(ffi.string(arr[i]).decode("utf-8", "replace"))
        i += 1
    return out


def _run_background(ng, timeout: float) -> tuple[int, list[str], list[str]]:
    """``bg_run`` and wait at most ``timeout`` s (then ``bg_halt`` and NgspiceError). Ctrl-C
    halts the run too and re-raises KeyboardInterrupt."""
    lib = ng._ngspice_shared
    done = threading.Event()
    ng._thermohw_done = done

    def halt():
        _command(ng, "bg_halt")
        while lib.ngSpice_running():
            time.sleep(1e-3)

    try:
        rc, _, _ = _command(ng, "bg_run")
        t_end = time.monotonic() + timeout
        try:
            while not done.wait(min(0.1, max(t_end - time.monotonic(), 0.0))):
                if time.monotonic() >= t_end:
                    halt()
                    raise NgspiceError(f"ngspice did not finish within {timeout} s (halted)")
        except KeyboardInterrupt:
            halt()
            raise
        while lib.ngSpice_running():  # the callback fires just before the thread ends
            time.sleep(1e-4)
        return rc, list(ng._stdout), list(ng._stderr)  # everything since bg_run cleared them
    finally:
        ng._thermohw_done = None


def run_shared(netlist: str, *, timeout: float | None = None) -> RawData:
    """Run ``netlist`` (text) in the in-process ngspice and return its data as RawData.

    Same contract as ``run_batch``: parse errors, "timestep too small" and other failed runs
    raise NgspiceError with ngspice's own lines; ``timeout`` (s) halts the run. Thread-safe
    (one ngspice per process: calls are serialised). Ctrl-C during a run with a ``timeout``
    halts ngspice and raises KeyboardInterrupt; without one, the interrupt is delivered
    when the (uninterruptible, in-C) run returns.
    """
    with _LOCK:
        ng = _engine()
        _STATE["quiet"] = True
        try:
            _sync_gauss(ng)
            out = _load(ng, netlist)
            bad = [ln for ln in out if _is_error(ln)]
            if bad:
                raise NgspiceError("ngspice could not load the netlist: " + "; ".join(_join_error(out)[:6]))
            title = str(netlist).lstrip("\n").split("\n", 1)[0].strip()  # ngspice's title: the first line
            if timeout is None or not isinstance(ng, _STATE["cls"]):
                rc, so, se = _command(ng, "run")
            else:
                rc, so, se = _run_background(ng, float(timeout))
            text = so + se
            bad = [ln for ln in text if _is_error(ln)]
            plots = [p for p in _plots(ng) if p != "const"]
            if rc or bad or not plots:
                tail = "; ".join((bad or [ln for ln in text if ln.strip()] or ["no output"])[-4:])
                raise NgspiceError(f"ngspice failed (shared engine{', rc ' + str(rc) if rc else ''}): {tail}")
            plot = plots[-1]  # the first analysis of this run, as read_raw reads the first plot
            plotname = _plot_type(ng, plot)
            return _collect(ng, plot, title, plotname)
        finally:
            try:
                _command(ng, "destroy all")
                _command(ng, "remcirc")
            finally:
                _STATE["quiet"] = False


def _join_error(lines: list[str]) -> list[str]:
    """ngspice splits a parse error over several lines ('Error on line 2 ...', the line, the
    reason): keep from the first error line on, skipping chatter."""
    start = next((k for k, ln in enumerate(lines) if _is_error(ln)), 0)
    keep = [ln.strip() for ln in lines[start:] if ln.strip() and not ln.startswith(("Note:", "Circuit:"))]
    return keep or [ln.strip() for ln in lines if ln.strip()]


def _plot_type(ng, plot: str) -> str:
    """'Transient Analysis' etc., as in a raw file's Plotname."""
    names = {"tran": "Transient Analysis", "op": "Operating Point", "dc": "DC transfer characteristic",
             "ac": "AC Analysis", "noise": "Noise Spectral Density Curves", "tf": "Transfer Function",
             "sp": "S-Parameter Analysis", "pz": "Pole-Zero Analysis", "sens": "Sensitivity Analysis"}
    base = plot.rstrip("0123456789")
    return names.get(base, plot)
