"""``thermohw doctor``: what this installation has, and the fix for what it lacks.

Required: ngspice on PATH that runs a transient (every SPICE stage uses it). Reported but
optional: the ngspice shared library for ``--engine shared`` (PySpice), the BLAS and its
threads, Dask (``--scheduler``), h5py, and the MNIST files.
"""
from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from .download import MNIST_FILES
from .provenance import provenance, ngspice_version
from .spice.ngspice import NgspiceError, run_batch
from .spice.shared import library_path

MNIST_ENV = "THERMOHW_MNIST_DIR"
MNIST_DEFAULT = Path("data") / "mnist"
NGSPICE_FIX = "apt-get update && apt-get install -y ngspice libngspice0 (or your system's ngspice package)"


@dataclass(frozen=True)
class Check:
    name: str
    status: str          # "ok", "missing" (required: fails the doctor), "optional" (absent, optional), "info"
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok", "missing": "MISSING", "optional": "--", "info": ".."}[self.status]
        return f"{mark:8s}{self.name:22s}{self.detail}" + (f"\n{'':30s}fix: {self.fix}" if self.fix else "")


def _versions() -> Check:
    p = provenance()
    git = f", git {p['git_commit'][:12]}{' (modified)' if p['git_dirty'] else ''}" if p["git_commit"] else ""
    return Check("thermohw", "ok", f"{p['thermohw']}{git}; Python {p['python']} ({platform.machine()}), "
                 f"numpy {p['numpy']}, scipy {p['scipy']}")


def _ngspice() -> Check:

    exe = shutil.which("ngspice")
    if exe is None:
        return Check("ngspice", "missing", "not found on PATH (required by compile's netlists, cosim, readout, "
                     "calibrate --device virtual-spice)", NGSPICE_FIX)
    try:  # a 1 ms RC transient: proves it runs and that thermohw reads its raw files
        raw = run_batch("doctor\nR1 a 0 1k\nC1 a 0 1u\nI1 0 a DC 1m\n.tran 10u 1m\n.end\n", timeout=60)
        points = len(raw["v(a)"])
    except (NgspiceError, KeyError, OSError) as e:
        return Check("ngspice", "missing", f"{exe} ({ngspice_version() or 'version unknown'}) fails to run a "
                     f"transient: {str(e).splitlines()[0] if str(e) else type(e).__name__}", NGSPICE_FIX)
    return Check("ngspice", "ok", f"{exe} ({ngspice_version() or 'version unknown'}); `ngspice -b` ran a "
                 f"transient, its raw file read back ({points} points)")


def _libngspice() -> Check:
    try:
        import PySpice
    except ImportError:
        return Check("libngspice (shared)", "optional", "PySpice not installed: --engine shared unavailable "
                     "(the default batch engine does not need it)", "pip install PySpice")

    try:
        lib = library_path()
    except NgspiceError:
        return Check("libngspice (shared)", "optional", f"PySpice {PySpice.__version__}, but no ngspice shared "
                     "library loads: --engine shared unavailable",
                     "apt-get install -y libngspice0, or set NGSPICE_LIBRARY_PATH to libngspice.so.0")
    env = " (from NGSPICE_LIBRARY_PATH)" if os.environ.get("NGSPICE_LIBRARY_PATH") == lib else ""
    return Check("libngspice (shared)", "ok", f"{lib}{env} loads with ctypes; PySpice {PySpice.__version__} "
                 "(its 'Unsupported Ngspice version' warning is harmless and silenced)")


def _blas() -> Check:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        import numpy  # noqa: F401  (loads the BLAS so threadpoolctl sees it)

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            desc = "; ".join(f"{b.get('internal_api')} {b.get('version') or ''} ({b.get('architecture') or '?'}), "
                             f"{b.get('num_threads')} threads" for b in blas)
            return Check("BLAS", "info", f"{desc}; {os.cpu_count()} CPUs")
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return Check("BLAS", "info", f"{cfg.get('name')} {cfg.get('version')} (threads: unknown without "
                     f"threadpoolctl); {os.cpu_count()} CPUs")
    except Exception:
        return Check("BLAS", "info", "unknown")


def _optional(module: str, name: str, what: str, fix: str) -> Check:
    import importlib

    try:
        m = importlib.import_module(module)
    except ImportError:
        return Check(name, "optional", f"not installed ({what})", fix)
    return Check(name, "ok", f"{getattr(m, '__version__', '?')} ({what})")


def mnist_location() -> Path:
    """Where thermohw's docs and tools look for MNIST: $THERMOHW_MNIST_DIR, else ./data/mnist."""
    return Path(os.environ.get(MNIST_ENV) or MNIST_DEFAULT)


def _mnist() -> Check:
    folder = mnist_location()
    where = f"{folder} ({'$' + MNIST_ENV if os.environ.get(MNIST_ENV) else 'default; set $' + MNIST_ENV})"
    names = [f.name for f in MNIST_FILES["test"] + MNIST_FILES["train"]]
    have = [n for n in names if (folder / n).is_file() or (folder / n.removesuffix(".gz")).is_file()]
    if "t10k-images-idx3-ubyte.gz" in have:  # (or its gunzipped copy) what the paper reproduction uses
        return Check("MNIST", "ok", f"{where}: {len(have)} of 4 IDX files")
    return Check("MNIST", "optional", f"not found at {where} (needed for the paper reproduction; the demo "
                 "uses bundled digits)", f"thermohw data mnist {folder} --split test")


def run_checks() -> list[Check]:
    return [_versions(), _ngspice(), _libngspice(), _blas(),
            _optional("distributed", "dask/distributed", "cosim/calibrate --scheduler", 'pip install "thermohw[dask]"'),
            _optional("h5py", "h5py", "HDF5 traces", "pip install h5py"),
            _optional("tqdm", "tqdm", "progress bars", "pip install tqdm"),
            _mnist()]


def doctor(print_fn=print) -> int:
    """Print every check; 0 if nothing required is missing, else 1 (the fix is printed)."""
    checks = run_checks()
    for c in checks:
        print_fn(c.line())
    missing = [c for c in checks if c.status == "missing"]
    if missing:
        print_fn(f"thermohw doctor: {len(missing)} required part(s) missing: "
                 + "; ".join(f"{c.name} - fix: {c.fix}" for c in missing))
        return 1
    print_fn("thermohw doctor: everything required is present")
    return 0
