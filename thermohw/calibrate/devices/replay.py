"""Replay: recorded traces from files (a lab's oscilloscope or ADC captures; CSV/NPZ/HDF5
layouts in ``calibrate/recording.py``) presented as a device."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...compile import CompiledProgram
from ...errors import InputError
from ...langevin import Protocol
from ..recording import Recording, read_recording
from .base import Device, protocol_bias

__all__ = ["ReplayDevice"]


def _expand(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in (".csv", ".npz", ".h5", ".hdf5"))
            if not found:
                raise InputError(f"{p}: folder holds no .csv, .npz or .h5 recordings")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


class ReplayDevice(Device):
    """Recorded traces from files (CSV/NPZ, layouts in ``recording.py``); several files or a
    folder of them are joined run by run. ``program`` only checks the unit count; ``run``
    returns the recording (decimated to ``sample_interval`` and truncated to ``duration``
    when given), and checks a given protocol against the recorded biases."""

    rerunnable = False

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        self.paths = _expand(paths)
        recs = [read_recording(p) for p in self.paths]
        self.recording = recs[0] if len(recs) == 1 else Recording.concat(recs)
        self.program_ = None

    @property
    def n_units(self) -> int:
        return self.recording.n_units

    @property
    def discretisation(self) -> str:
        # captures of the ideal chip stepped once per sample are the Euler model; anything
        # else (a lab, SPICE) ran in continuous time
        m = self.recording.meta
        return "euler" if m.get("device") == "virtual-ideal" and m.get("substeps") == 1 else "continuous"

    def describe(self) -> dict:
        return {"device": type(self).__name__, "files": [str(q) for q in self.paths]}

    def program(self, program: CompiledProgram) -> None:
        n = program.realised.n_units
        if n != self.recording.n_units:
            raise InputError(f"the recorded traces have {self.recording.n_units} units but the program has {n}; "
                             "replay files recorded with this program")
        self.program_ = program

    def run(self, protocol: Protocol | None = None, duration: float | None = None,
            sample_interval: float | None = None, seed: int | None = None, *,
            runs: int | None = None) -> Recording:
        rec = self.recording
        if sample_interval is not None:
            m = int(round(sample_interval / rec.sample_interval))
            if m < 1 or abs(m * rec.sample_interval - sample_interval) > 1e-6 * sample_interval:
                raise InputError(f"sample_interval {sample_interval:g} is not a whole multiple of the recorded "
                                 f"interval {rec.sample_interval:g}")
            rec = rec.decimate(m)
        if duration is not None:
            k = int(round(duration / rec.sample_interval)) + 1
            if k > rec.n_samples:
                raise InputError(f"duration {duration:g} exceeds the recorded {rec.duration:g} model time units")
            rec = rec.truncate(k)
        if protocol is not None:
            h = protocol_bias(protocol, rec.n_units, runs or rec.n_runs)
            if h.shape != rec.bias.shape or not np.allclose(h, rec.bias, rtol=1e-9, atol=1e-12):
                raise InputError("the requested protocol differs from the biases the files were recorded "
                                 "with; replay cannot re-run an experiment (pass protocol=None)")
        if runs is not None and runs != rec.n_runs:
            raise InputError(f"the files hold {rec.n_runs} runs, not {runs}")
        return rec


