"""Reading a chip's own run back: a raw file from plain ``ngspice -b -r out.raw chip.cir``
(the generation-protocol netlist ``compile`` writes) turned into model-unit states, the
generated image scored against the training digits, and the model heat of the run.

This is what a designer handed ``chip.cir`` uses to see the chip generate:
``thermohw readout PROGRAM out.raw -o DIR``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .compile import CompiledProgram
from .data import Digits, reference_set
from .errors import InputError
from .io import write_json
from .spice.ngspice import NgspiceError, read_raw
from . import plots
from .backends import get_backend, pwl
from .metrics import digit_scores
from .provenance import provenance


def states(p: CompiledProgram, raw) -> tuple[np.ndarray, np.ndarray]:
    """(model times (T,), states (T, N)) of a raw file of the program's RC or LC netlist, on
    ngspice's own time points (the first stored point is one small step after t = 0)."""
    n = p.realised.n_units
    circ = p.artefact
    nodes = sum(1 for name in raw.names if re.fullmatch(r"v\(u\d+\)", name))
    if nodes != n:
        raise InputError(f"the raw file has {nodes} unit nodes v(u<i>), the program {n} units: it is a run of "
                         "another netlist; run this program's chip.cir")
    be = get_backend(p.target.kind)
    if not callable(getattr(be, "states", None)):
        raise InputError(f"readout needs a backend that reads its own raw files (states); the {p.target.kind} "
                         "backend has none")
    try:
        st = be.states(raw, circ)
    except KeyError as e:
        raise InputError(f"the raw file lacks {e}: it is not a run of this program's netlist "
                         f"({n} units; compile it again or pass the matching raw file)") from None
    return st["s"], st["x"]


def read_run(p: CompiledProgram, raw_path: str | Path, *, digits: Digits | None = None,
             reference: str | Path | None = None, out: str | Path | None = None, noise: dict | None = None,
             nodes: list[int] | None = None) -> dict:
    """Score the final visible state of one ngspice run; with ``out``, write readout.json and
    plots (the generated image, snapshots of the run). ``noise``: the program's noise.npz
    (:func:`thermohw.backends.pwl.load`, ``compile --noise pwl``): the run is compared with the
    realised ideal model driven by the same noise (``paired``). ``nodes``: unit indices whose
    node voltages are drawn against time (plots/waveforms.png; needs ``out``)."""
    n_units = p.realised.n_units
    if nodes:
        bad = [i for i in nodes if not 0 <= i < n_units]
        if bad:
            raise InputError(f"--nodes {bad[0]}: the program has units 0..{n_units - 1}")
        if out is None:
            raise InputError("--nodes draws a waveform plot: give -o DIR for it")
    path = Path(raw_path)
    if not path.is_file():
        raise InputError(f"{path}: no such raw file; make one with: ngspice -b -r {path.name} chip.cir")
    try:
        raw = read_raw(path)
    except (NgspiceError, ValueError, UnicodeError) as e:
        raise InputError(f"{path}: not a readable ngspice raw file ({e})") from None
    s, x = states(p, raw)
    c = p.realised
    if s.size < 2:
        raise InputError(f"{path}: the run has {s.size} time point(s); it stopped before it started")
    rep: dict = {"raw": str(path), "program_target": p.target.name, "time_points": int(s.size),
                 "end_time_model_units": float(s[-1]),
                 "heat_kT_from_first_stored_point": float((c.energy(x[0]) - c.energy(x[-1])) / c.kT_ref),
                 "x_final": x[-1].tolist()}
    if digits is not None and digits.n_pixels == c.n_visible:
        ref = reference_set(digits, reference)
        sc = digit_scores(x[-1:, :c.n_visible], digits.patterns, digits.labels, reference=ref)
        per = sc.pop("per_sample")
        best = per["best"][0]
        rep["digit"] = {"label": int(digits.labels[best]), "best_abs_corr": per["best_abs_corr"][0],
                        "inverted": per["sign"][0] < 0, "margin": per["margin"][0],
                        "classifier_label": (per.get("classifier_label") or [None])[0]}
        if ref is None:
            rep["digit"]["classifier_note"] = ("k-NN check skipped: the images the digits came from were not found "
                                               f"({digits.origin}); pass --reference IMAGES")
    if noise is not None:
        rep["paired"] = pwl.compare(p, s, x, noise)
    if out is not None:
        out = Path(out)
        if c.image_shape:
            cap = None
            if "digit" in rep:
                d = rep["digit"]
                cap = [f"{d['label']}{'-' if d['inverted'] else ''} {d['best_abs_corr']:.2f}"]
            plots.image_grid(x[-1:, :c.n_visible], c.image_shape, out / "plots" / "generated.png", captions=cap,
                             title="ngspice run: final visible state")
            plots.trajectory_strip(s, x[:, None, :], c.image_shape, out / "plots" / "run.png", n_frames=9,
                                   title="ngspice run: visible state over model time")
        if nodes:
            plots.waveforms(raw["time"], {f"v(u{i})": raw[f"v(u{i})"] for i in nodes}, out / "plots" / "waveforms.png",
                            title=f"ngspice run of {p.target.name}: node voltages",
                            note="x_i = v(u<i>) / V_s" if p.target.kind == "rc" else
                            "LC: node voltage = velocity; position x_i = L_i i(VL<i>) / Phi_s")

        rep["provenance"] = provenance(seeds={"netlist": int(p.options.netlist_seed)})
        write_json(out / "readout.json", rep)
    return rep
