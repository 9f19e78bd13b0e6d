"""A virtual chip in ngspice: the compiled RC netlist with hidden component mismatch.

``program`` applies the chip's :class:`~thermohw.calibrate.device.HiddenErrors` to the
*elements* of the compiled circuit (``rc.RCCircuit``: C_i, R_i and the trim, the cubic k3_i,
every directed coupling transconductor G_ij, offset currents, the noise amplitude) - what a
lab's chip does. The mismatch model is RC's; netlists, time unit and read-out go through the
backend contract (``spice_netlist``, ``time_unit``, ``spice_readout``; docs/design.md#backend-contract).
``run`` writes netlists (seeded ``TRRANDOM`` noise, started at x = 0 with UIC) in which several runs sit side by side as uncoupled copies of the chip
(``runs_per_netlist``; ngspice's sparse solver makes that cheaper than separate processes),
each copy with its own imposed-bias current I_h = -mu0 C0 V_s h (an exact external source),
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

import dataclasses

import numpy as np

from ..backends import spice_backend
from ..compile import CompiledProgram
from ..errors import InputError
from ..langevin import Protocol
from .device import HiddenErrors, VirtualChip, _samples, protocol_bias
from .params import ChipParameters
from .recording import Recording

__all__ = ["SpiceVirtualChip", "copies_circuit", "chip_under_test"]


def chip_under_test(program: CompiledProgram, errors: HiddenErrors, label: str = "mismatched chip",
                    options: dict | None = None):
    """``program``'s circuit on a chip with ``errors``, for ``cosim.run_cosim(chip=...)``: the
    mismatched elements and the (symmetrised) model they implement, in the gauge of the
    ideal virtual chip (so its heat and digits are those of ``IdealVirtualChip.reveal()``).
    ``options``: how the chip was asked for (the CLI's chip options), kept in the runs file so
    that ``cosim --resume`` rebuilds the same chip."""
    from ..cosim import ChipUnderTest

    circ = program.artefact
    if program.target.kind != "rc" or circ is None:
        raise InputError(f"mismatched co-simulation models RC targets; {program.target.name!r} is "
                         f"{program.target.kind!r}")
    real = program.realised
    truth = errors.chip_parameters(circ, mask=real.mask)
    model = truth.to_computer(symmetrise=True, n_visible=real.n_visible, image_shape=real.image_shape)
    return ChipUnderTest(errors.apply_to_circuit(circ), model, label,
                         {"errors_seed": errors.seed, "reciprocal": errors.reciprocal,
                          "asymmetry_rms": truth.asymmetry_rms(),
                          "program_hash": program.report.get("source_hash", ""),
                          **({"options": dict(options)} if options else {})})


def copies_circuit(circ, I_extra: np.ndarray):
    """``len(I_extra)`` uncoupled copies of ``circ`` in one circuit; copy r gets the extra
    bias currents I_extra[r] (A, into each node). Node r*N + i is unit i of copy r."""
    k, n = I_extra.shape
    if n != circ.n_units:
        raise InputError(f"I_extra has {n} units, the circuit {circ.n_units}")
    tile = lambda a: np.tile(np.asarray(a, dtype=np.float64), k)  # noqa: E731
    return dataclasses.replace(
        circ, C=tile(circ.C), R=tile(circ.R), g_trim=tile(circ.g_trim), k3=tile(circ.k3),
        I_b=(np.asarray(circ.I_b)[None, :] + I_extra).reshape(-1), G=np.kron(np.eye(k), circ.G),
        s2=tile(circ.s2), mu=tile(circ.mu), kT_model=tile(circ.kT_model), n_visible=0, image_shape=None)


def _spice_job(spec: dict) -> np.ndarray:
    """Run one netlist; return x (samples, copies, N) on the sample grid (module level: it
    runs in worker processes)."""
    from ..backends import spice_backend
    from ..spice.engines import run as run_spice

    raw = run_spice(spec["netlist"], engine=spec["engine"], timeout=spec["timeout"])
    grid = spec["grid_s"]
    k, n = spec["copies"], spec["n_units"]
    circ = spec["circuit"]
    x = spice_backend(spec["kind"]).spice_readout(raw, circ, grid, np.zeros(circ.n_units))
    return x.reshape(grid.size, k, n)


def _netlist_seed(seed: int, group: int) -> int:
    """A seed in ngspice's accepted range 1..2**31-1 for netlist ``group`` of run ``seed``."""
    s = np.random.SeedSequence([int(seed), int(group), 0x5EED]).generate_state(1, np.uint32)[0]
    return int(s % (2 ** 31 - 2)) + 1


class SpiceVirtualChip(VirtualChip):
    """The compiled RC netlist with hidden, seeded component mismatch, run in ngspice.

    errors / chip_seed / reciprocal / noise_common / noise_unit / scale : the chip's hidden
        errors (as :class:`~thermohw.calibrate.device.IdealVirtualChip`; here ``reciprocal``
        defaults to False: every G_ij is its own element).
    nt_per_sample : TRRANDOM noise samples per sample interval (NT = sample_interval / this).
    runs_per_netlist : runs simulated side by side in one netlist.
    workers / scheduler : ``thermohw.executor`` (local processes, or a Dask scheduler address).
    engine : 'batch' (ngspice -b) or 'shared' (PySpice). timeout : seconds per netlist
        (default: derived from the netlist's size, ``cosim.default_spice_timeout``).
    """

    def __init__(self, errors: HiddenErrors | None = None, *, chip_seed: int = 0, reciprocal: bool = False,
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
        circ, errors = self._program_errors(program, "the SPICE virtual chip")
        self._bad = errors.apply_to_circuit(circ)
        self._a = circ.gauge          # the nominal program's mu_i C_i (the mismatch changes C_i)
        self._truth = ChipParameters.from_circuit(self._bad, gauge=self._a, mask=program.realised.mask)
        self.program_ = program

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
        k = _samples(duration, sample_interval)
        tau = be.time_unit(bad)
        nt_s = sample_interval * tau / self.nt_per_sample
        grid = np.arange(k + 1) * (sample_interval * tau)
        specs = []
        for g, r0 in enumerate(range(0, h.shape[0], self.runs_per_netlist)):
            hh = h[r0:r0 + self.runs_per_netlist]
            sup = copies_circuit(bad, -self._a * bad.V_s * hh)
            x0 = np.zeros(sup.n_units)
            net = be.spice_netlist(sup, t_stop=grid[-1], nt=nt_s, seed=_netlist_seed(seed, g), noise="trrandom",
                                   x0=x0, pwl=None,
                                   title=f"thermohw virtual chip {self._chip_seed}: runs {r0}..{r0 + len(hh) - 1}; "
                                         f"program {p.report.get('source_hash', '')}, seed {int(seed)}",
                                   **be.spice_start(p, sup, x0[None], np.random.SeedSequence([int(seed), g, 4])))
            # no timeout given: one derived from the netlist's size (cosim.default_spice_timeout)
            timeout = self.timeout if self.timeout is not None else _default_timeout(net, k * self.nt_per_sample)
            specs.append({"netlist": net, "engine": self.engine, "timeout": timeout, "grid_s": grid,
                          "copies": len(hh), "n_units": n, "kind": p.target.kind, "circuit": sup})
        return specs, h

    def run(self, protocol: Protocol | None, duration: float, sample_interval: float, seed: int, *,
            runs: int | None = None, progress: bool = False) -> Recording:
        from ..executor import make_executor

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


def _default_timeout(netlist: str, intervals: int) -> float:
    from ..cosim import default_spice_timeout

    return default_spice_timeout(netlist, intervals)
