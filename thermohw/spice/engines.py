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

from ..errors import InputError
from .ngspice import NgspiceError, RawData, find_ngspice, run_batch
from .shared import run_shared, shared_available

__all__ = ["ENGINES", "run", "engine_available", "NgspiceError", "RawData"]


def _batch(netlist: str, *, timeout: float | None = None) -> RawData:
    return run_batch(netlist, timeout=timeout)


ENGINES: dict[str, Callable[..., RawData]] = {"batch": _batch, "shared": run_shared}


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
