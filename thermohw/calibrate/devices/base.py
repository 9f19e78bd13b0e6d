"""The device interface a calibration talks to, and what every device shares.

    dev.program(program)                                       # a CompiledProgram
    rec = dev.run(protocol, duration, sample_interval, seed)   # -> Recording (model units)

A run starts from x = 0 (a chip at rest after programming; the transient is part of the
record and of the fit) under a constant imposed bias h per run: ``protocol`` is a
``langevin.Protocol`` of kind ``constant`` with h of shape (N,) (every run) or (runs, N), or
None for free runs. The imposed bias is an *external, exactly known* current (a calibrated
source), so it acts with the unit's true mobility: drift_i = -mu_i (dV/dx_i + h_i).

What a caller needs to know about a device it asks the device, instead of testing its type:
``describe()`` (what a measurement depends on, for checkpoints and reports), ``discretisation``
(the likelihood that fits its recordings), ``truth()`` / ``chip_errors()`` (virtual chips only;
None for a real chip).
"""
from __future__ import annotations

import abc
import math
import numpy as np

from ...compile import CompiledProgram
from ...errors import InputError
from ...langevin import Protocol, steps_for
from ..recording import Recording

__all__ = ["Device", "protocol_bias"]


def protocol_bias(protocol: Protocol | None, n_units: int, runs: int | None = None) -> np.ndarray:
    """The (runs, N) imposed bias of a constant protocol (zeros for ``None``)."""
    if protocol is None:
        return np.zeros((int(runs or 1), n_units))
    if not isinstance(protocol, Protocol):
        raise InputError(f"protocol must be a thermohw Protocol or None, got {type(protocol).__name__}")
    if protocol.kind != "constant":
        raise InputError(f"calibration runs use constant imposed biases (one per run); got a "
                         f"{protocol.kind!r} protocol - split it into constant-bias runs")
    h = protocol.h
    if h.shape[-1] != n_units:
        raise InputError(f"protocol bias has {h.shape[-1]} units; the chip has {n_units}")
    if h.ndim == 1:
        return np.tile(h, (int(runs or 1), 1))
    if runs is not None and runs != h.shape[0]:
        raise InputError(f"protocol has {h.shape[0]} runs of biases but runs = {runs}")
    return h.copy()


def samples(duration: float, sample_interval: float) -> int:
    if not (sample_interval > 0 and math.isfinite(sample_interval)):
        raise InputError(f"sample_interval must be a positive number, got {sample_interval}")
    return steps_for(duration, sample_interval)


class Device(abc.ABC):
    """A chip that can be programmed and recorded (real or virtual)."""

    program_: CompiledProgram | None = None
    #: the likelihood that fits this device's recordings: 'euler' (recorded exactly as the
    #: Euler model, an ideal chip stepped once per sample) or 'continuous' (a chip in
    #: continuous time: SPICE, a lab; Ito-Taylor corrected)
    discretisation: str = "continuous"
    #: a virtual chip knows its truth (``truth()``, ``chip_errors()``); a real one does not
    virtual: bool = False
    #: whether ``run`` records a new experiment (False: replayed files, which cannot be re-measured)
    rerunnable: bool = True

    def describe(self) -> dict:
        """What a measurement on this device depends on besides program, protocol and settings
        (JSON-able; checkpoints are keyed by it and reports quote it)."""
        return {"device": type(self).__name__}

    def truth(self):
        """The model the chip really implements (``ChipParameters``), known only for virtual
        chips; None for a real one."""
        return None

    def chip_errors(self):
        """The virtual chip's hidden element errors (its backend's ``Mismatch``); None for a real one."""
        return None

    @abc.abstractmethod
    def program(self, program: CompiledProgram) -> None:
        """Load a compiled program (its codes / element values) into the chip."""

    @abc.abstractmethod
    def run(self, protocol: Protocol | None, duration: float, sample_interval: float, seed: int, *,
            runs: int | None = None) -> Recording:
        """Record all units: ``runs`` runs (or one per row of the protocol's h) of ``duration``
        model time units from x = 0, sampled every ``sample_interval``; ``seed`` seeds the noise."""

    def _need_program(self) -> CompiledProgram:
        if self.program_ is None:
            raise InputError(f"{type(self).__name__}: program() it with a compiled program before run()")
        return self.program_


