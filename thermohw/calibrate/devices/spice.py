"""A virtual chip in ngspice: the compiled netlist with hidden component mismatch.

``program`` applies the chip's errors - its backend's ``Mismatch`` (RC: C_i, R_i and the trim,
the cubic k3_i, every directed coupling transconductor G_ij, offset currents, the noise
amplitude; LC: C, L, R, the quartic and coupling CCCS gains, series offsets, the noise) - to
the *elements* of the compiled circuit, what a lab's chip does. Everything kind-specific goes
through the backend contracts (``Mismatch``, ``copies_circuit``, ``imposed_current``,
``spice_netlist``, ``time_unit``, ``spice_readout``; docs/design.md#backend-contract).
``run`` writes netlists (seeded ``TRRANDOM`` noise, started at x = 0 with UIC) in which several runs sit side by side as uncoupled copies of the chip
(``runs_per_netlist``; ngspice's sparse solver makes that cheaper than separate processes),
each copy with its own imposed-bias current (``imposed_current``: RC I_h = -mu0 C0 V_s h, LC
-E h/Phi_s; an exact external source),
runs them through ``thermohw.executor`` (local processes or Dask), and resamples the node
voltages at the sample interval: x = v / V_s, t_model = t / tau.

Non-reciprocity: by default each direction of a coupling is its own transconductor with its
own gain error, so G_ij != G_ji and the chip is *not* a gradient system. Its truth
(:meth:`reveal`) is a :class:`~thermohw.calibrate.params.ChipParameters` with directed K; the
fit estimates the rows separately and reports the asymmetry (``Fit.asymmetry_z``).

Noise: TRRANDOM holds a Gaussian value for NT = sample_interval / ``nt_per_sample``; the
increments over a sample interval then carry exactly the white level s^2 per unit time, so
the Euler likelihood's noise model holds. The remaining differences from the Euler model
(continuous drift within a step, held rather than white noise) are O(lambda dt).
"""
from __future__ import annotations


import numpy as np

from ...backends import rc, spice_backend
from ...compile import CompiledProgram
from ...cosim import ChipUnderTest, default_spice_timeout
from ...errors import InputError
from ...executor import make_executor
from ...langevin import Protocol
from ...spice.job import run_and_read
from ..recording import Recording
from .base import protocol_bias, samples
from .virtual import VirtualChip, calibration_backend, chip_truth

__all__ = ["SpiceVirtualChip", "copies_circuit", "chip_under_test"]


def chip_under_test(program: CompiledProgram, errors, label: str = "mismatched chip",
                    options: dict | None = None):
    """``program``'s circuit on a chip with ``errors`` (its backend's ``Mismatch``), for
    ``cosim.run_cosim(chip=...)``: the mismatched elements and the (symmetrised) model they
    implement, in the program's units (so its heat and digits are those of
    ``IdealVirtualChip.reveal()``). ``options``: how the chip was asked for (the CLI's chip
    options), kept in the runs file so that ``cosim --resume`` rebuilds the same chip."""
    be = calibration_backend(program.target.kind)
    circ = program.artefact
    if circ is None or not isinstance(errors, be.Mismatch):
        raise InputError(f"a mismatched {program.target.kind} chip needs the program's circuit and "
                         f"thermohw.backends.{program.target.kind}.Mismatch errors")
    real = program.realised
    truth = chip_truth(be, errors, circ, mask=real.mask)
    model = truth.to_computer(symmetrise=True, n_visible=real.n_visible, image_shape=real.image_shape)
    return ChipUnderTest(errors.apply_to_circuit(circ), model, label,
                         {"errors_seed": errors.seed, "reciprocal": errors.reciprocal,
                          "asymmetry_rms": truth.asymmetry_rms(),
                          "program_hash": program.report.get("source_hash", ""),
                          **({"options": dict(options)} if options else {})})


# the RC backend's copies, importable beside the chip (the SPICE chip itself uses its program's backend)
copies_circuit = rc.copies_circuit


def _spice_job(spec: dict) -> np.ndarray:
    """Run one netlist; return x (samples, copies, N) on the sample grid (module level: it
    runs in worker processes)."""
    _, x = run_and_read(spec)
    return x.reshape(spec["grid_s"].size, spec["copies"], spec["n_units"])


def _netlist_seed(seed: int, group: int) -> int:
    """A seed in ngspice's accepted range 1..2**31-1 for netlist ``group`` of run ``seed``."""
    s = np.random.SeedSequence([int(seed), int(group), 0x5EED]).generate_state(1, np.uint32)[0]
    return int(s % (2 ** 31 - 2)) + 1


class SpiceVirtualChip(VirtualChip):
    """The compiled netlist (RC or LC) with hidden, seeded component mismatch, run in ngspice.

    errors / chip_seed / reciprocal / noise_common / noise_unit / scale : the chip's hidden
        errors (as :class:`~thermohw.calibrate.devices.IdealVirtualChip`; here ``reciprocal``
        defaults to False: every G_ij is its own element).
    nt_per_sample : TRRANDOM noise samples per sample interval (NT = sample_interval / this).
    runs_per_netlist : runs simulated side by side in one netlist.
    workers / scheduler : ``thermohw.executor`` (local processes, or a Dask scheduler address).
    engine : 'batch' (ngspice -b) or 'shared' (PySpice). timeout : seconds per netlist
        (default: derived from the netlist's size, ``cosim.default_spice_timeout``).
    """

    def __init__(self, errors=None, *, chip_seed: int = 0, reciprocal: bool = False,
                 noise_common: float = 0.03, noise_unit: float = 0.01, scale: float = 1.0,
                 nt_per_sample: int = 2, runs_per_netlist: int = 8, workers: int = 1,
                 scheduler: str | None = None, engine: str = "batch", timeout: float | None = None) -> None:
        if int(nt_per_sample) < 1 or int(runs_per_netlist) < 1:
            raise InputError("nt_per_sample and runs_per_netlist must be >= 1")
        super().__init__(errors, chip_seed, dict(reciprocal=reciprocal, noise_common=noise_common,
                                                 noise_unit=noise_unit, scale=scale))
        self.nt_per_sample = int(nt_per_sample)
        self.runs_per_netlist = int(runs_per_netlist)
        self.workers, self.scheduler, self.engine, self.timeout = int(workers), scheduler, engine, timeout
        self._bad = None

    def program(self, program: CompiledProgram) -> None:
        be, circ, errors = self._program_errors(program)
        self._bad = errors.apply_to_circuit(circ)
        self._nominal = circ          # the program's units (the mismatch moves elements, not units)
        self._truth = chip_truth(be, errors, circ, mask=program.realised.mask)
        self.program_ = program

    def describe(self) -> dict:
        return {**super().describe(), "nt_per_sample": self.nt_per_sample, "runs_per_netlist": self.runs_per_netlist}

    def reveal_circuit(self):
        """The mismatched element values (virtual chips only)."""
        self._need_program()
        return self._bad

    def netlists(self, protocol: Protocol | None, duration: float, sample_interval: float, seed: int, *,
                 runs: int | None = None) -> tuple[list[dict], np.ndarray]:
        """The job specs ``run`` would execute, and the (runs, N) imposed biases."""
        p = self._need_program()
        be = spice_backend(p.target.kind)
        bad = self._bad
        n = bad.n_units
        h = protocol_bias(protocol, n, runs)
        k = samples(duration, sample_interval)
        tau = be.time_unit(bad)
        nt_s = sample_interval * tau / self.nt_per_sample
        grid = np.arange(k + 1) * (sample_interval * tau)
        specs = []
        for g, r0 in enumerate(range(0, h.shape[0], self.runs_per_netlist)):
            hh = h[r0:r0 + self.runs_per_netlist]
            sup = be.copies_circuit(bad, be.imposed_current(self._nominal, hh))
            x0 = np.zeros(sup.n_units)
            # the rest of the start state the backend needs (LC: thermal velocities), one run's row
            start = be.spice_start(p, sup, x0[None], np.random.SeedSequence([int(seed), g, 4]))
            net = be.spice_netlist(sup, t_stop=grid[-1], nt=nt_s, seed=_netlist_seed(seed, g), noise="trrandom",
                                   x0=x0, pwl=None,
                                   title=f"thermohw virtual chip {self._chip_seed}: runs {r0}..{r0 + len(hh) - 1}; "
                                         f"program {p.report.get('source_hash', '')}, seed {int(seed)}",
                                   **{k: v[0] for k, v in start.items()})
            # no timeout given: one derived from the netlist's size (cosim.default_spice_timeout)
            timeout = self.timeout if self.timeout is not None else default_spice_timeout(net, k * self.nt_per_sample)
            specs.append({"netlist": net, "engine": self.engine, "timeout": timeout, "grid_s": grid, "x0": x0,
                          "copies": len(hh), "n_units": n, "kind": p.target.kind, "circuit": sup})
        return specs, h

    def run(self, protocol: Protocol | None, duration: float, sample_interval: float, seed: int, *,
            runs: int | None = None, progress: bool = False) -> Recording:
        specs, h = self.netlists(protocol, duration, sample_interval, seed, runs=runs)
        with make_executor(workers=min(self.workers, len(specs)), scheduler=self.scheduler) as ex:
            res = ex.map(_spice_job, specs, progress=progress, desc="SPICE chip")
        bad = [r for r in res if not r.ok]
        if bad:
            raise InputError(f"{len(bad)} of {len(res)} ngspice runs failed; first: {bad[0].error}")
        x = np.concatenate([r.value for r in res], axis=1)
        k = x.shape[0] - 1
        circ = self._bad
        return Recording(np.arange(k + 1) * float(sample_interval), x, sample_interval, h,
                         {"V_s_V": circ.V_s, "tau_s": circ.tau},
                         {"device": "virtual-spice", "seed": int(seed), "nt_per_sample": self.nt_per_sample,
                          "program_hash": self.program_.report.get("source_hash", ""),
                          "protocol": protocol.describe() if protocol is not None else {"kind": "free"}})
