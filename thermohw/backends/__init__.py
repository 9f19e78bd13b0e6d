"""Hardware backends ("lowerings"). One registry; each backend is a module with the same
functions:

    scales(program) -> dict                SI scale factors (energy per model unit, T_eff, ...)
    lower(program) -> artefact             physical parameters from program.programmed
    to_computer(artefact, program) -> Computer
                                           the ideal model the hardware implements (realised)
    check(program) -> list[dict]           physical-limit violations: {"check", "message", ...}
    write(program, folder) -> list[Path]   the files a designer uses (netlist / parameter set)

``to_computer(lower(p))`` must reproduce the programmed model exactly (rc, lc, mechanical)
or to the stated truncation order (josephson): the round-trip tests hold every backend to it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import InputError

BACKENDS: dict[str, str] = {
    "rc": "thermohw.backends.rc",
    "lc": "thermohw.backends.lc",
    "mechanical": "thermohw.backends.mechanical",
    "josephson": "thermohw.backends.josephson",
}


def adopt_program(c, p):
    """Give a realised Computer the programmed model's connectivity, trainability and
    metadata (a coupling quantised to zero is still a programmable element of the chip)."""
    if p is None or p.programmed is None:
        return c
    return c.replace(mask=p.programmed.mask | c.mask, bias_trainable=p.programmed.bias_trainable,
                     meta={**p.programmed.meta, **c.meta})


def get_backend(kind: str) -> ModuleType:
    if kind not in BACKENDS:
        raise InputError(f"no backend for kind {kind!r}; available: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[kind])
