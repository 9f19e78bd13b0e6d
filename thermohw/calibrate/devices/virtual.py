"""Virtual chips: a compiled program's circuit with hidden, seeded component mismatch.

The mismatch is the backend's own (``backends/<kind>.py`` ``Mismatch``: RC's is
:class:`HiddenErrors`, LC's ``backends.lc.Mismatch``; docs/design.md#calibration-contract),
drawn at the first ``program`` from the target's component figures with ``chip_seed`` (same
seed, same chip). :class:`IdealVirtualChip` integrates the model the mismatched elements
implement (fast: sweeps, tests of the statistics); the ngspice chip is ``devices/spice.py``.
Both keep their errors private: ``truth()`` / ``reveal()`` return them to tests and to reports
on *virtual* chips only - a real chip has no truth to reveal.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...backends import calibratable_kinds, get_backend, rc
from ...compile import CompiledProgram
from ...errors import DivergenceError, InputError
from ...euler import em_step
from ...langevin import Protocol, simulate
from ...target import Target
from ..params import ChipParameters
from ..recording import Recording
from .base import Device, protocol_bias, samples

__all__ = ["HiddenErrors", "VirtualChip", "IdealVirtualChip", "calibration_backend", "draw_errors", "chip_truth",
           "simulate_chip"]


class HiddenErrors(rc.Mismatch):
    """The RC chip's mismatch (``backends.rc.Mismatch``: relative errors of C, the ground
    conductance, the cubic gain, every coupling transconductor, offset voltages and the noise
    amplitude), with the model it implements. Other kinds: ``mismatch_model(kind)``."""

    def chip_parameters(self, circ, mask: np.ndarray | None = None) -> ChipParameters:
        """The model the mismatched chip implements, in the gauge of the nominal circuit's
        program (the nominal circuit's gauge mu_i C_i, as ``rc.to_computer``)."""
        return chip_truth(rc, self, circ, mask)


def calibration_backend(kind: str):
    """The backend module of ``kind`` if virtual chips can be built from it (it has the
    calibration contract: ``Mismatch``, ``mismatched_parameters``, ``copies_circuit``,
    ``imposed_current``), else InputError naming the kinds that can."""
    be = get_backend(kind)
    if kind not in calibratable_kinds():
        raise InputError(f"no mismatch model for {kind!r} chips, so no virtual chip can be built of one "
                         f"(available: {', '.join(calibratable_kinds())}); calibrate it from recorded files with "
                         "replay:PATH")
    return be


def draw_errors(target: Target, n_units: int, seed: int, **draw: Any):
    """Seeded mismatch of a chip of ``target``'s kind (its backend's ``Mismatch.draw``)."""
    be = calibration_backend(target.kind)
    return (HiddenErrors if be is rc else be.Mismatch).draw(target, n_units, seed, **draw)


def chip_truth(be, errors, circ, mask: np.ndarray | None = None) -> ChipParameters:
    """The (directed) model the circuit ``circ`` implements once built with ``errors``, in the
    units of its program (the backend's ``mismatched_parameters``)."""
    return ChipParameters.from_parameters(be.mismatched_parameters(errors.apply_to_circuit(circ), circ), mask)


def simulate_chip(chip: ChipParameters, x0: np.ndarray, h: np.ndarray, *, n_steps: int, dt: float,
                  seed: Any, record_every: int = 1) -> np.ndarray:
    """Euler-Maruyama for a possibly non-reciprocal chip with the sampler's own step
    (``euler.em_step``, given the directed coupling force x K^T and numpy's normals); returns
    (n_steps/record_every + 1, runs, N) snapshots. (Reciprocal chips use ``langevin.simulate``.)"""
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=np.float64)          # em_step advances it in place
    runs = x.shape[0]
    a2, a4, b = 2.0 * chip.J2, 4.0 * chip.J4, np.array(chip.b, dtype=np.float64)
    mudt, sig = chip.mu * dt, np.sqrt(2.0 * chip.mu * chip.kT * dt)
    hh = np.ascontiguousarray(np.broadcast_to(np.asarray(h, dtype=np.float64), x.shape))
    dxp, qs, work = np.zeros_like(x), np.zeros(runs), np.zeros(runs)
    keys, rin = np.zeros(runs, np.uint64), np.zeros(runs, np.int64)   # unused: the normals are given
    out = np.empty((n_steps // record_every + 1,) + x.shape)
    out[0] = x
    for k in range(1, n_steps + 1):
        # the imposed bias rides with the coupling force (h constant): em_step's plain branch,
        # without the per-step heat and work sums a sampler needs
        bad = em_step(x, x @ chip.K.T + hh, dxp, rng.standard_normal(x.shape), keys, rin, k, 1, a2, a4, b, mudt, sig,
                      hh, 0.0, 0.0, qs, work, False, 1e6)
        if bad:
            raise DivergenceError(f"the virtual chip ran away at step {k}; use a shorter sample interval")
        if k % record_every == 0:
            out[k // record_every] = x
    return out


class VirtualChip(Device):
    """Shared part of the virtual chips: the hidden errors (drawn at the first ``program``
    from the target's component figures with ``chip_seed``: same seed, same chip) and the
    truth they imply, revealed only to tests and reports."""

    virtual = True

    def __init__(self, errors: HiddenErrors | None, chip_seed: int, draw: dict) -> None:
        self._errors = errors
        self._draw = draw
        self._chip_seed = int(chip_seed)
        self._truth: ChipParameters | None = None
        self.program_ = None

    def _program_errors(self, program: CompiledProgram):
        """The program's backend (one with a mismatch model), circuit and the chip's errors."""
        be = calibration_backend(program.target.kind)
        circ = program.artefact
        if circ is None:
            raise InputError(f"program for {program.target.name!r} has no circuit to build a virtual chip from")
        if self._errors is None:
            self._errors = draw_errors(program.target, circ.n_units, self._chip_seed, **self._draw)
        if not isinstance(self._errors, be.Mismatch):
            raise InputError(f"the chip's errors are a {type(self._errors).__module__}.{type(self._errors).__name__}; "
                             f"a {program.target.kind} program needs thermohw.backends.{program.target.kind}.Mismatch")
        if self._errors.n_units != circ.n_units:
            raise InputError(f"this chip has {self._errors.n_units} units; the program needs {circ.n_units}")
        return be, circ, self._errors

    @property
    def n_units(self) -> int:
        return self._need_program().realised.n_units

    def describe(self) -> dict:
        return {"device": type(self).__name__, "chip_seed": self._chip_seed, "draw": dict(self._draw)}

    def truth(self) -> ChipParameters:
        """The hidden truth (virtual chips only; for tests and reports)."""
        self._need_program()
        return self._truth

    def chip_errors(self):
        self._need_program()
        return self._errors

    # the names tests and notebooks have used
    reveal = truth
    reveal_errors = chip_errors


class IdealVirtualChip(VirtualChip):
    """The ideal Langevin model of the compiled circuit (RC or LC) with hidden component mismatch.

    errors : the chip's :class:`HiddenErrors`; default: drawn at the first ``program`` from
        the target's component figures with ``chip_seed`` (same seed, same chip).
    substeps : Euler steps per sample interval. 1 makes the recorded process exactly the
        Euler model the fit assumes; > 1 imitates a continuous-time chip (the fit then has the
        O(sample_interval) discretisation bias of the Euler likelihood).
    reciprocal, noise_common, noise_unit, scale : passed to :meth:`HiddenErrors.draw`.
    """

    def __init__(self, errors: HiddenErrors | None = None, *, chip_seed: int = 0, substeps: int = 1,
                 reciprocal: bool = True, noise_common: float = 0.03, noise_unit: float = 0.01,
                 scale: float = 1.0) -> None:
        if int(substeps) < 1:
            raise InputError("substeps must be >= 1")
        self.substeps = int(substeps)
        super().__init__(errors, chip_seed, dict(reciprocal=reciprocal, noise_common=noise_common,
                                                 noise_unit=noise_unit, scale=scale))

    @property
    def discretisation(self) -> str:
        # stepped once per sample, the recording is exactly the Euler model the fit assumes
        return "euler" if self.substeps == 1 else "continuous"

    def describe(self) -> dict:
        return {**super().describe(), "substeps": self.substeps}

    def program(self, program: CompiledProgram) -> None:
        be, circ, errors = self._program_errors(program)
        self._truth = chip_truth(be, errors, circ, mask=program.realised.mask)
        self.program_ = program

    def run(self, protocol: Protocol | None, duration: float, sample_interval: float, seed: int, *,
            runs: int | None = None) -> Recording:
        p = self._need_program()
        chip = self._truth
        n = chip.n_units
        h = protocol_bias(protocol, n, runs)
        k = samples(duration, sample_interval)
        dt = sample_interval / self.substeps
        x0 = np.zeros_like(h)
        if chip.reciprocal:
            tr = simulate(chip.to_computer(), x0, n_steps=k * self.substeps, dt=dt, seed=seed,
                          protocol=Protocol(h), record_every=self.substeps, stratonovich=False)
            x = tr.x
        else:
            x = simulate_chip(chip, x0, h, n_steps=k * self.substeps, dt=dt, seed=seed,
                              record_every=self.substeps)
        circ = p.artefact
        return Recording(np.arange(k + 1) * float(sample_interval), x, sample_interval, h,
                         {"V_s_V": circ.V_s, "tau_s": circ.tau},
                         {"device": "virtual-ideal", "seed": int(seed), "substeps": self.substeps,
                          "program_hash": p.report.get("source_hash", ""),
                          "protocol": protocol.describe() if protocol is not None else {"kind": "free"}})


