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

A backend that can be co-simulated in ngspice also has the functions named in
``SPICE_CONTRACT`` (docs/design.md#backend-contract); ``cosim`` and the virtual SPICE chip call
only those (:func:`spice_backend`). A backend that virtual chips can be built from (for
calibration) also has the names in ``CALIBRATION_CONTRACT``: its ``Mismatch`` record (relative
errors of its own elements, drawn from the target's ``components``), ``mismatched_parameters``
(the model a mismatched circuit implements, in its program's units), ``mismatched_model`` (the
same in model units without a circuit: chip-aware training), ``copies_circuit`` and
``imposed_current`` (``calibrate.devices.calibration_backend``).
"""
from __future__ import annotations

from types import ModuleType

from ..errors import InputError
from . import josephson, lc, mechanical, rc
from .common import adopt_program, generation_notes, generation_start  # noqa: F401  (public helpers)

# the co-simulation contract (signatures in docs/design.md#backend-contract)
SPICE_CONTRACT = ("time_unit", "noise_interval", "spice_start", "spice_netlist", "spice_readout",
                  "spice_energy", "spice_pwl_current")
# the calibration contract: what a virtual chip of the kind is built from
CALIBRATION_CONTRACT = ("Mismatch", "mismatched_parameters", "mismatched_model", "copies_circuit",
                        "imposed_current")


def get_backend(kind: str) -> ModuleType:
    if kind not in BACKENDS:
        raise InputError(f"no backend for kind {kind!r}; available: {', '.join(BACKENDS)}")
    return BACKENDS[kind]


def spice_backend(kind: str) -> ModuleType:
    """The backend of ``kind`` if it implements the co-simulation contract, else InputError
    naming what it lacks."""
    be = get_backend(kind)
    missing = [f for f in SPICE_CONTRACT if not callable(getattr(be, f, None))]
    if missing:
        raise InputError(f"the {kind} backend cannot be co-simulated in ngspice yet: it lacks "
                         f"{', '.join(missing)} (docs/design.md#backend-contract)")
    return be


def calibratable_kinds() -> tuple[str, ...]:
    """The kinds whose backends have the calibration contract (a mismatch model of their own
    elements: virtual chips, and trims the correction loop can set)."""
    return tuple(k for k, m in BACKENDS.items() if all(hasattr(m, f) for f in CALIBRATION_CONTRACT))


BACKENDS: dict[str, ModuleType] = {"rc": rc, "lc": lc, "mechanical": mechanical, "josephson": josephson}
