"""One entry point over the two ngspice engines.

``run(netlist, engine="batch")``  -- ``ngspice -b -r`` in a subprocess + the binary raw reader
                                     (portable; one process per run, clean to parallelise)
``run(netlist, engine="shared")`` -- PySpice's ``NgSpiceShared`` in this process (no file
                                     round trip; runs are serialised within one process)

Both return the same ``RawData`` (same lower-case vector names in the same order, float64),
and a seeded ``TRRANDOM`` netlist gives bit-identical waveforms in both. Both raise
``NgspiceError`` on parse errors, "timestep too small" and missing installs.

For sweeps, hand ``functools.partial(run, engine=...)`` to ``thermohw.executor`` (it is
picklable, so it runs in worker processes or on a Dask cluster).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InputError
from .ngspice import NgspiceError, RawData, find_ngspice, run_batch
from .shared import run_shared, shared_available

__all__ = ["ENGINES", "run", "engine_available", "node_voltages", "NgspiceError", "RawData"]


def _batch(netlist: str, *, timeout: float | None = None) -> RawData:
    return run_batch(netlist, timeout=timeout)


ENGINES: dict[str, Callable[..., RawData]] = {"batch": _batch, "shared": run_shared}


def node_voltages(raw: RawData, n_nodes: int, grid_s: np.ndarray, v0: np.ndarray | None = None) -> np.ndarray:
    """v(u0) .. v(u{n-1}) resampled on ``grid_s`` (seconds), shape (len(grid_s), n), volts.
    ngspice's time points are adaptive; a run that ended before the grid does is refused.
    ngspice 39 does not store t = 0 of a run started with UIC (its first point is after the
    first step): ``v0``, the initial node voltages written into the netlist, supplies it."""
    t = raw["time"]
    if t[-1] < grid_s[-1] * (1 - 1e-9):
        raise NgspiceError(f"ngspice stopped at t = {t[-1]:.6g} s before the end {grid_s[-1]:.6g} s "
                           "without an error message")
    cols = [raw[f"v(u{i})"] for i in range(n_nodes)]
    if v0 is not None and t[0] > 0:
        t = np.concatenate([[0.0], t])
        cols = [np.concatenate([[float(v0[i])], c]) for i, c in enumerate(cols)]
    return np.stack([np.interp(grid_s, t, c) for c in cols], axis=1)


def run(netlist: str, engine: str = "batch", *, timeout: float | None = None) -> RawData:
    """Run ``netlist`` (SPICE text) with the chosen engine and return its first analysis."""
    try:
        fn = ENGINES[engine]
    except (KeyError, TypeError):
        raise InputError(f"unknown SPICE engine {engine!r}; choose one of {sorted(ENGINES)}") from None
    return fn(netlist, timeout=timeout)


def engine_available(engine: str) -> bool:
    """Whether ``engine`` can run here (ngspice on PATH / PySpice + libngspice loadable)."""
    if engine == "batch":
        try:
            find_ngspice()
        except NgspiceError:
            return False
        return True
    if engine == "shared":
        return shared_available()
    raise InputError(f"unknown SPICE engine {engine!r}; choose one of {sorted(ENGINES)}")
