"""One SPICE job: run a netlist and read the units' positions back through the backend
contract. Shared by co-simulation (``cosim.spice_job``, which then reduces the run to heat and
energies) and the virtual SPICE chip (``calibrate.devices.spice``, which keeps the positions).

A job is a plain dict (it travels to worker processes and Dask workers, modules do not):
netlist, engine, timeout, kind (the backend, by name), circuit (its artefact), grid_s (the
read-out times, s) and x0 (the positions at t = 0, which ngspice 39 does not store for UIC runs).
"""
from __future__ import annotations

import numpy as np

from ..backends import spice_backend
from .engines import RawData, run


def run_and_read(spec: dict) -> tuple[RawData, np.ndarray]:
    """(the raw run, x (len(grid_s), N) in model units on the read-out grid)."""
    raw = run(spec["netlist"], engine=spec["engine"], timeout=spec.get("timeout"))
    be = spice_backend(spec["kind"])
    return raw, be.spice_readout(raw, spec["circuit"], spec["grid_s"], spec["x0"])
