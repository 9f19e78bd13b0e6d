"""What every backend's writer shares: the realised model's connectivity from the program, and
the start state and header notes of a generation-protocol netlist."""
from __future__ import annotations

from ..langevin import equilibrium_start


def adopt_program(c, p):
    """Give a realised Computer the programmed model's connectivity, trainability, placement and
    metadata (a coupling quantised to zero is still a programmable element of the chip)."""
    if p is None or p.programmed is None:
        return c
    return c.replace(mask=p.programmed.mask | c.mask, bias_trainable=p.programmed.bias_trainable,
                     meta={**p.programmed.meta, **c.meta}, placement=p.programmed.placement)


def generation_start(p, dt: float = 1e-3):
    """(t_f, x0) of a compiled program's generation-protocol netlist: the generation time and
    one start state (N,), the realised model's coupling-free equilibrium (the chip's own J2,
    J4 and noise level) drawn with the netlist seed, in model units."""
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
