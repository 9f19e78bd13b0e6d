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
only those (:func:`spice_backend`).
"""
from __future__ import annotations

from types import ModuleType

from ..errors import InputError

# the co-simulation contract (signatures in docs/design.md#backend-contract)
SPICE_CONTRACT = ("time_unit", "noise_interval", "spice_start", "spice_netlist", "spice_readout",
                  "spice_energy", "spice_pwl_current")


def adopt_program(c, p):
    """Give a realised Computer the programmed model's connectivity, trainability and
    metadata (a coupling quantised to zero is still a programmable element of the chip)."""
    if p is None or p.programmed is None:
        return c
    return c.replace(mask=p.programmed.mask | c.mask, bias_trainable=p.programmed.bias_trainable,
                     meta={**p.programmed.meta, **c.meta})


def generation_start(p, dt: float = 1e-3):
    """(t_f, x0) of a compiled program's generation-protocol netlist: the generation time and
    one start state (N,), the realised model's coupling-free equilibrium (the chip's own J2,
    J4 and noise level) drawn with the netlist seed, in model units."""
    from ..langevin import equilibrium_start

    t_f = p.options.generation_time(p.source)
    x0 = equilibrium_start(p.realised, 1, t_eq=t_f, dt=dt, seed=int(p.options.netlist_seed))[0]
    return t_f, x0


def generation_notes(p, t_f: float, tau: float, readout: str) -> list[str]:
    """Header lines of a generation-protocol netlist: what it runs and how to get another sample."""
    c = p.source
    img = (f"image {c.image_shape[0]}x{c.image_shape[1]}, row-major" if c.image_shape and len(c.image_shape) == 2
           else "the visible units")
    seed = int(p.options.netlist_seed)
    return [
        "generation protocol (Whitelam 2025): the units start in their coupling-free equilibrium, drawn by",
        f"  thermohw with seed {seed} and written below as initial conditions; then the trained couplings",
        f"  act for t_f = {t_f:g} model time units = {t_f * tau:.6g} s",
        f"generated sample: {readout} at the final time for units 0..{c.n_visible - 1} ({img})",
        {"trrandom": "another sample: edit .options seed (new noise, same start state); for a new start state too:",
         "pwl": "noise: held PWL currents in noise.inc (drawn with the seed; noise.npz has the same samples, so "
                "thermohw readout compares the run with the ideal model driven by them); another sample:",
         "none": "noiseless: the deterministic drift from the start state; another start state:"}[p.options.noise],
        f"  thermohw compile MODEL --target {p.target.name} --netlist-seed N -o DIR"
        + (f" --noise {p.options.noise}" if p.options.noise != "trrandom" else ""),
        "read the result back (image, best |corr| with the training digits): thermohw readout DIR out.raw",
    ]


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


# plain imports, last: the backend modules import the helpers above from this package
from . import josephson, lc, mechanical, rc  # noqa: E402

BACKENDS: dict[str, ModuleType] = {"rc": rc, "lc": lc, "mechanical": mechanical, "josephson": josephson}
