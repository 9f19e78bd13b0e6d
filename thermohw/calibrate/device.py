"""Devices a calibration talks to: program a compiled program, record trajectories.

    dev.program(program)                                   # a CompiledProgram
    rec = dev.run(protocol, duration, sample_interval, seed)   # -> Recording (model units)

Implementations:

* :class:`IdealVirtualChip` - the ideal Langevin model of the compiled RC circuit *with hidden,
  seeded component mismatch* (:class:`HiddenErrors`), integrated by ``langevin.simulate``.
  Fast: for sweeps and for tests of the statistics.
* :class:`SpiceVirtualChip` (``spice_chip.py``) - the compiled RC netlist with the same hidden
  mismatch applied to its elements, run in ngspice.
* :class:`ReplayDevice` - recorded traces from CSV/NPZ files (a lab's oscilloscope or ADC
  captures; layouts in ``recording.py``).

A run starts from x = 0 (a chip at rest after programming; the transient is part of the
record and of the fit) under a constant imposed bias h per run: ``protocol`` is a
``langevin.Protocol`` of kind ``constant`` with h of shape (N,) (every run) or (runs, N), or
None for free runs. The imposed bias is an *external, exactly known* current (a calibrated
source), so it acts with the unit's true mobility: drift_i = -mu_i (dV/dx_i + h_i).

The virtual chips keep their errors private; :meth:`reveal` returns the truth for tests and
for reports on *virtual* chips only - a real chip has no such method.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..compile import CompiledProgram
from ..errors import DivergenceError, InputError
from ..langevin import Protocol, simulate, steps_for
from ..target import Target
from .params import ChipParameters
from .recording import Recording, read_recording

__all__ = ["Device", "HiddenErrors", "IdealVirtualChip", "ReplayDevice", "protocol_bias", "open_device"]


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


def _samples(duration: float, sample_interval: float) -> int:
    if not (sample_interval > 0 and math.isfinite(sample_interval)):
        raise InputError(f"sample_interval must be a positive number, got {sample_interval}")
    return steps_for(duration, sample_interval)


class Device(abc.ABC):
    """A chip that can be programmed and recorded (real or virtual)."""

    program_: CompiledProgram | None = None

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


# ---------------------------------------------------------------------------------------------
# hidden errors
# ---------------------------------------------------------------------------------------------
def _arr(name: str, v: Any, shape: tuple) -> np.ndarray:
    a = np.array(v, dtype=np.float64)
    if a.shape != shape:
        raise InputError(f"{name} has shape {a.shape}; expected {shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or inf")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class HiddenErrors:
    """Component mismatch of one physical chip (relative errors are fractions).

    c_rel (N,)    capacitor error, C_i -> C (1 + c_rel_i): changes mu_i and kT_i.
    g_rel (N,)    ground-conductance error (resistor tolerance), g_i -> g_i (1 + g_rel_i): J2.
    k3_rel (N,)   gain error of the cubic element, k3_i -> k3_i (1 + k3_rel_i): J4.
    gain (N, N)   gain error of each coupling transconductor, G_ij -> G_ij (1 + gain_ij). A
                  reciprocal chip (one element per pair) has gain symmetric.
    offset_V (N,) input-referred offset of unit i's on-site transconductance, volts: an extra
                  current g_i V_os drawn out of the node, i.e. b_i -> b_i + 2 J2_i V_os / V_s.
    noise_rel (N,) error of the injected noise amplitude, s_i -> s_i (1 + noise_rel_i): kT_i.

    In model units (gauge of the nominal program): mu_i -> mu_i / (1 + c), kT_i -> kT_i
    (1 + n)^2 / (1 + c), J2 -> J2 (1 + g), J4 -> J4 (1 + k3), K_ij -> J_ij (1 + gain_ij).
    """

    c_rel: Any
    g_rel: Any
    k3_rel: Any
    gain: Any
    offset_V: Any
    noise_rel: Any
    seed: Any = None

    def __post_init__(self) -> None:
        n = np.asarray(self.c_rel).shape[0] if np.ndim(self.c_rel) == 1 else -1
        if n < 1:
            raise InputError("c_rel must be a (N,) array")
        fz = object.__setattr__
        for name in ("c_rel", "g_rel", "k3_rel", "offset_V", "noise_rel"):
            fz(self, name, _arr(name, getattr(self, name), (n,)))
        g = np.array(self.gain, dtype=np.float64)
        if g.shape != (n, n):
            raise InputError(f"gain has shape {g.shape}; expected {(n, n)}")
        g = g.copy()
        np.fill_diagonal(g, 0.0)
        fz(self, "gain", _arr("gain", g, (n, n)))
        for name in ("c_rel", "g_rel", "k3_rel", "noise_rel"):
            if np.any(getattr(self, name) <= -1):
                raise InputError(f"{name} <= -1 would make an element value zero or negative")
        if np.any(self.gain <= -1):
            raise InputError("gain <= -1 would reverse a coupling's sign")

    @property
    def n_units(self) -> int:
        return self.c_rel.shape[0]

    @property
    def reciprocal(self) -> bool:
        return bool(np.array_equal(self.gain, self.gain.T))

    @classmethod
    def none(cls, n_units: int) -> "HiddenErrors":
        """A perfect chip."""
        z = np.zeros(n_units)
        return cls(z, z, z, np.zeros((n_units, n_units)), z, z, seed=None)

    @classmethod
    def draw(cls, target: Target, n_units: int, seed: int, *, reciprocal: bool = True,
             noise_common: float = 0.03, noise_unit: float = 0.01, scale: float = 1.0) -> "HiddenErrors":
        """Seeded draws from the target's component figures (``target.components``):
        c_rel ~ U(+-cap_tolerance), g_rel ~ U(+-resistor_tolerance) (catalogue tolerances are
        bounds), k3_rel and gain ~ N(0, gain_mismatch), offset_V ~ N(0, offset_V), noise_rel =
        a common N(0, noise_common) plus a per-unit N(0, noise_unit) (the target does not
        describe the noise generator's accuracy). ``reciprocal``: one coupling element per pair
        (gain symmetric) - else each direction has its own. ``scale`` multiplies every error."""
        comp = target.components
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6361]))
        n = int(n_units)
        s = float(scale)
        c_rel = s * rng.uniform(-1, 1, n) * comp.cap_tolerance
        g_rel = s * rng.uniform(-1, 1, n) * comp.resistor_tolerance
        k3_rel = s * rng.normal(0, 1, n) * comp.gain_mismatch
        gain = s * rng.normal(0, 1, (n, n)) * comp.gain_mismatch
        if reciprocal:
            gain = np.triu(gain, 1)
            gain = gain + gain.T
        offset = s * rng.normal(0, 1, n) * comp.offset_V
        noise = s * (rng.normal(0, noise_common) + rng.normal(0, noise_unit, n))
        return cls(c_rel, g_rel, k3_rel, gain, offset, noise, seed=int(seed))

    def apply_to_circuit(self, circ):
        """The mismatched ``rc.RCCircuit`` (element values as built)."""
        if circ.n_units != self.n_units:
            raise InputError(f"the errors describe {self.n_units} units; the circuit has {circ.n_units}")
        g_fac = 1.0 + self.g_rel
        R = np.asarray(circ.R, dtype=np.float64) / g_fac
        g_trim = circ.g_trim * g_fac
        g_new = circ.g * g_fac
        return dataclasses.replace(
            circ, C=circ.C * (1.0 + self.c_rel), R=R, g_trim=g_trim, k3=circ.k3 * (1.0 + self.k3_rel),
            I_b=circ.I_b - g_new * self.offset_V, G=circ.G * (1.0 + self.gain),
            s2=circ.s2 * (1.0 + self.noise_rel) ** 2, meta={**circ.meta, "mismatched": True})

    def chip_parameters(self, circ, mask: np.ndarray | None = None) -> ChipParameters:
        """The model the mismatched chip implements, in the gauge of the nominal circuit's
        program (the nominal circuit's gauge mu_i C_i, as ``rc.to_computer``)."""
        bad = self.apply_to_circuit(circ)
        if mask is None:
            mask = (circ.G != 0) | (circ.G.T != 0)
            np.fill_diagonal(mask, False)
        return ChipParameters.from_circuit(bad, gauge=circ.gauge, mask=mask)

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() if isinstance(getattr(self, k), np.ndarray) else getattr(self, k)
                for k in ("c_rel", "g_rel", "k3_rel", "gain", "offset_V", "noise_rel", "seed")}


# ---------------------------------------------------------------------------------------------
# the fast virtual chip
# ---------------------------------------------------------------------------------------------
def simulate_chip(chip: ChipParameters, x0: np.ndarray, h: np.ndarray, *, n_steps: int, dt: float,
                  seed: Any, record_every: int = 1) -> np.ndarray:
    """Euler-Maruyama for a possibly non-reciprocal chip; returns (n_steps/record_every + 1,
    runs, N) snapshots. (Reciprocal chips use ``langevin.simulate``.)"""
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=np.float64)
    sig = np.sqrt(2.0 * chip.mu * chip.kT * dt)
    out = np.empty((n_steps // record_every + 1,) + x.shape)
    out[0] = x
    for k in range(1, n_steps + 1):
        x = x + dt * chip.drift(x, h) + sig * rng.standard_normal(x.shape)
        if k % record_every == 0:
            out[k // record_every] = x
            if not np.all(np.isfinite(x)) or np.max(np.abs(x)) > 1e6:
                raise DivergenceError(f"the virtual chip ran away at step {k}; use a shorter sample interval")
    return out


class VirtualChip(Device):
    """Shared part of the virtual chips: the hidden errors (drawn at the first ``program``
    from the target's component figures with ``chip_seed``: same seed, same chip) and the
    truth they imply, revealed only to tests and reports."""

    def __init__(self, errors: HiddenErrors | None, chip_seed: int, draw: dict) -> None:
        self._errors = errors
        self._draw = draw
        self._chip_seed = int(chip_seed)
        self._truth: ChipParameters | None = None
        self.program_ = None

    def _program_errors(self, program: CompiledProgram, what: str):
        """Check the program is an RC one and return (circuit, the chip's errors)."""
        if program.target.kind != "rc" or program.artefact is None:
            raise InputError(f"{what} models RC targets; {program.target.name!r} is "
                             f"{program.target.kind!r} (calibrate it from recorded files with replay:PATH)")
        circ = program.artefact
        if self._errors is None:
            self._errors = HiddenErrors.draw(program.target, circ.n_units, self._chip_seed, **self._draw)
        if self._errors.n_units != circ.n_units:
            raise InputError(f"this chip has {self._errors.n_units} units; the program needs {circ.n_units}")
        return circ, self._errors

    @property
    def n_units(self) -> int:
        return self._need_program().realised.n_units

    def reveal(self) -> ChipParameters:
        """The hidden truth (virtual chips only; for tests and reports)."""
        self._need_program()
        return self._truth

    def reveal_errors(self) -> HiddenErrors:
        self._need_program()
        return self._errors


class IdealVirtualChip(VirtualChip):
    """The ideal Langevin model of the compiled RC circuit with hidden component mismatch.

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

    def program(self, program: CompiledProgram) -> None:
        circ, errors = self._program_errors(program, "virtual chips")
        self._truth = errors.chip_parameters(circ, mask=program.realised.mask)
        self.program_ = program

    def run(self, protocol: Protocol | None, duration: float, sample_interval: float, seed: int, *,
            runs: int | None = None) -> Recording:
        p = self._need_program()
        chip = self._truth
        n = chip.n_units
        h = protocol_bias(protocol, n, runs)
        k = _samples(duration, sample_interval)
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


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------
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

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        self.paths = _expand(paths)
        recs = [read_recording(p) for p in self.paths]
        self.recording = recs[0] if len(recs) == 1 else Recording.concat(recs)
        self.program_ = None

    @property
    def n_units(self) -> int:
        return self.recording.n_units

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


def open_device(spec: str, **kw: Any) -> Device:
    """``virtual-ideal``, ``virtual-spice`` or ``replay:PATH`` (the CLI's --device)."""
    if spec == "virtual-ideal":
        return IdealVirtualChip(**kw)
    if spec == "virtual-spice":
        from .spice_chip import SpiceVirtualChip

        return SpiceVirtualChip(**kw)
    if spec.startswith("replay:"):
        path = spec.split(":", 1)[1]
        if not path.strip(" ,"):  # an empty path would silently read the current folder
            raise InputError(f"--device {spec!r} names no recordings; use replay:PATH with a .csv/.npz "
                             "file or a folder of them (replay:. for the current folder)")
        return ReplayDevice(path)
    raise InputError(f"unknown device {spec!r}; use virtual-ideal, virtual-spice or replay:PATH")
