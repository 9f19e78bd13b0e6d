"""Co-simulation: ngspice transient-noise runs of a compiled netlist beside the ideal
Langevin model of the float Computer and of the realised (quantised) Computer.

Protocol (the paper's generation, docs/design.md#protocol): initial states are drawn from the
coupling-free computer's equilibrium by the *ideal* simulator and handed to SPICE as initial
conditions (``.ic`` + UIC), then SPICE runs the trained dynamics for t_f (a chip under test
starts from its own coupling-free equilibrium, errors included). Why not an
equilibration phase inside the netlist: the coupling-free phase involves only J2, J4 and the
noise level, which the lone-unit tests check directly, and it would double every SPICE run.

Noise: ``trrandom`` (ngspice's seeded sample-and-hold Gaussian source; reproducible) or
``pwl`` (numpy-drawn samples fed as held piecewise-linear currents). In ``pwl`` mode the
realised-ideal run of the same index is driven by the *same* noise samples with dt = NT
(a paired comparison), so their difference measures the hardware mapping alone.

Heat of a SPICE run is reported twice: (a) the model heat V(x0) - V(x_f) and the
Stratonovich sum over the sampled trajectory, in kT and in joules via the target's energy
scale; (b) the electrical energy the circuit actually dissipates, integrated from element
voltages and currents. (b) is the housekeeping cost of an electrical emulation of a
Langevin system: the model's energy V is not stored in any capacitor (the circuit's
'potential' is a current-vs-voltage law), so (a) and (b) measure different things.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .compile import CompiledProgram
from .computer import Computer
from .cosim_report import (CosimReport, CosimSweep, DigitsComparison, HeatComparison, PairedComparison,
                           UnitMoments)
from .errors import InputError
from .io import load_record, save_record, write_json
from .langevin import equilibrium_start, generate, simulate, steps_for
from .metrics import mean_ci, digit_scores
from .resources import check_memory
from . import plots
from .backends import spice_backend
from .backends.rc import held_noise_variance_factor  # the first-order formula, not RC's elements
from .data import reference_set
from .executor import Interrupted, make_executor
from .provenance import provenance
from .spice.engines import run as run_spice

RUNS_SCHEMA = "thermohw.spiceruns/1"


@dataclass(frozen=True, eq=False)
class ChipUnderTest:
    """A circuit to co-simulate in place of the program's own netlist - e.g. the program (or a
    calibrated version of it) with a chip's component mismatch - and ``model``, the Computer
    that circuit really implements (its energy function is the one whose heat the chip
    dissipates). The comparison stays against the program's realised model: does this chip
    generate what the program promised? ``label`` names it in the report."""

    circuit: Any
    model: Computer
    label: str = "chip under test"
    meta: dict | None = None

    def __post_init__(self) -> None:
        if self.model.n_units != self.circuit.n_units:
            raise InputError(f"the chip model has {self.model.n_units} units, its circuit {self.circuit.n_units}")

    def describe(self) -> dict:
        """JSON-ready identification (for reports and the runs file)."""
        return {"label": self.label, **(self.meta or {})}


@dataclass(frozen=True)
class CosimConfig:
    """runs: SPICE runs. ideal_runs: runs of each ideal model (cheap). t_f, dt: model time.
    nt_fraction: noise interval NT as a fraction of the fastest local time constant.
    noise: 'trrandom' or 'pwl' (paired). engine: 'batch' (ngspice -b) or 'shared' (PySpice).
    workers / scheduler: local processes or a Dask scheduler address. snapshots: states kept
    per SPICE run for plots."""

    runs: int = 16
    ideal_runs: int = 1000
    t_f: float = 2.5
    dt: float = 1e-3
    nt_fraction: float = 0.02
    noise: str = "trrandom"
    engine: str = "batch"
    workers: int = 1
    scheduler: str | None = None
    seed: int = 0
    snapshots: int = 26
    spice_timeout: float | None = None  # seconds per SPICE run; None: default_spice_timeout

    def __post_init__(self) -> None:
        if self.runs < 2 or self.ideal_runs < 2:
            raise InputError("runs and ideal_runs must be >= 2 (statistics need a spread)")
        if self.spice_timeout is not None and not (isinstance(self.spice_timeout, (int, float))
                                                   and 0 < self.spice_timeout < math.inf):
            raise InputError(f"spice_timeout = {self.spice_timeout!r}; give seconds > 0 (or None for the default)")
        if self.noise not in ("trrandom", "pwl"):
            raise InputError(f"noise = {self.noise!r}; use 'trrandom' or 'pwl' (paired)")
        if self.engine not in ("batch", "shared"):
            raise InputError(f"engine = {self.engine!r}; use 'batch' or 'shared'")
        if not 0 <= self.seed <= 20000:
            raise InputError(f"seed = {self.seed}: use 0..20000 (run seeds seed*100003 + run must stay in "
                             "ngspice's 1..2^31-1)")
        if not 0 < self.nt_fraction <= 0.2:
            raise InputError("nt_fraction must be in (0, 0.2]: the noise interval as a fraction of the fastest relaxation time "
                             "(default 0.02; docs/design.md#noise-interval)")
        steps_for(self.t_f, self.dt)


# ---------------------------------------------------------------------------------------------
# one SPICE run (module level: it runs in worker processes)
# ---------------------------------------------------------------------------------------------
def spice_job(spec: dict) -> dict:
    """Run one netlist and reduce it to what the comparison needs (small to ship back). Only
    the backend contract reads the run (docs/design.md#backend-contract)."""

    t0 = time.perf_counter()
    raw = run_spice(spec["netlist"], engine=spec["engine"], timeout=spec.get("timeout"))
    be = spice_backend(spec["kind"])  # by name: specs travel to worker processes, modules do not
    circ, c = spec["circuit"], spec["realised"]
    n = c.n_units
    t = raw["time"]
    grid = spec["grid_s"]
    x = be.spice_readout(raw, circ, grid, spec["x0"])
    # (a) model heat from the measured trajectory
    heat = float(c.energy(x[0]) - c.energy(x[-1]))
    g = c.grad(x)
    strat = float(-0.5 * np.sum((g[1:] + g[:-1]) * np.diff(x, axis=0)))
    # (b) the hardware's own energy balance in joules, on ngspice's own time points
    e = be.spice_energy(raw, circ)
    if spec.get("pwl_current") is not None:
        # paired mode: the injected currents are known (into node u<i>, the contract's
        # convention), so the noise power is measured, not inferred, and the first law becomes
        # a check of the simulation (< 1 %, docs/design.md#cosim)
        v = np.stack([raw[f"v(u{i})"] for i in range(n)], axis=1)  # volts on ngspice's own time points
        cur = spec["pwl_current"]
        k = np.minimum((t / spec["nt_s"]).astype(np.int64), cur.shape[0] - 1)
        e["noise_measured_J"] = float(np.trapezoid(np.einsum("ti,ti->t", v, cur[k]), t))
        e["first_law_residual"] = (e["noise_measured_J"] - e["noise_delivered_J"]) / e["dissipated_J"]
    snap = np.linspace(0, len(grid) - 1, spec["snapshots"]).round().astype(int)
    return {"index": spec["index"], "x_final": x[-1], "x0": x[0], "snap": x[snap], "heat": heat,
            "heat_strat": strat, "energy": e, "points": int(len(t)), "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# the harness
# ---------------------------------------------------------------------------------------------
def _backend(p: CompiledProgram):
    """The program's backend, refused in one line if it lacks the co-simulation contract."""

    return spice_backend(p.target.kind)


# Default per-run SPICE timeout, from the netlist's size: ngspice's work grows with the elements
# (the netlist's element lines) times the noise intervals it steps through. Measured: the
# shipped 784 + 24 chip (808 units, 34,401 couplings, 2812 intervals) runs in 112 s on one core
# (benchmarks/README.md), ~1.1 us per element and interval. The margin covers a machine ~5x
# slower with its cores shared ~4 ways; the floor covers process start-up and a loaded machine
# for tiny netlists. A hung run then costs at most ~20x an honest one, and a run cut off by
# mistake is rerun with a larger --spice-timeout and --resume.
SPICE_SECONDS_PER_ELEMENT_INTERVAL = 1.2e-6
SPICE_TIMEOUT_MARGIN = 20.0
SPICE_TIMEOUT_FLOOR_S = 300.0


def default_spice_timeout(netlist: str, intervals: int, steps_per_interval: float = 1.0) -> float:
    """Seconds one SPICE run of ``netlist`` (text) over ``intervals`` noise intervals may take.
    Elements are counted from the text, so every backend's netlist is sized the same way;
    ``steps_per_interval``: how many more time points than the RC netlist ngspice takes per
    interval (a backend's ``SPICE_STEPS_PER_INTERVAL``, measured; 1 for RC)."""
    elements = sum(1 for ln in netlist.splitlines() if ln[:1].isalpha())
    est = SPICE_SECONDS_PER_ELEMENT_INTERVAL * elements * int(intervals) * float(steps_per_interval)
    return float(max(SPICE_TIMEOUT_FLOOR_S, SPICE_TIMEOUT_MARGIN * est))


def run_seed(cfg: CosimConfig, run: int) -> int:
    """ngspice's ``.options seed`` of SPICE run ``run`` (fixed per run index, so a resumed or
    rerun sweep draws what an uninterrupted one would)."""
    return cfg.seed * 100003 + int(run) + 1


def prepare(p: CompiledProgram, cfg: CosimConfig, chip: ChipUnderTest | None = None
            ) -> tuple[list[dict], np.ndarray, np.ndarray | None]:
    """SPICE job specs, the initial states, and (pwl mode) the noise samples. ``chip``: run
    that circuit instead of the program's, from its own coupling-free equilibrium."""
    be = _backend(p)
    circ = p.artefact if chip is None else chip.circuit
    if circ.n_units != p.realised.n_units:
        raise InputError(f"the circuit has {circ.n_units} units, the program {p.realised.n_units}")
    model = p.realised if chip is None else chip.model
    tau = be.time_unit(circ)
    nt_s = be.noise_interval(circ, cfg.nt_fraction)
    k = max(1, math.ceil(cfg.t_f * tau / nt_s - 1e-9))  # NT <= the bound
    nt_s = cfg.t_f * tau / k                    # a whole number of noise intervals in t_f
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    # the coupling-free equilibrium of the unit that runs: a chip equilibrates with its own
    # J2, J4 and noise level (its errors included), as it would on the bench
    x0 = equilibrium_start(model, cfg.runs, t_eq=cfg.t_f, dt=cfg.dt, seed=rng)
    # the rest of the start state (underdamped hardware: Maxwell velocities), its own stream
    start = be.spice_start(p, circ, x0, np.random.SeedSequence([cfg.seed, 4]))
    noise = None
    if cfg.noise == "pwl":
        noise = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2])).standard_normal((k, cfg.runs, p.realised.n_units))
        if be.spice_pwl_current(circ, nt_s, noise[:, 0, :]) is None:
            raise InputError(f"--noise pwl: the {p.target.kind} backend has no paired-noise mode; use --noise trrandom")
    grid = np.linspace(0.0, cfg.t_f * tau, k + 1)
    timeout = cfg.spice_timeout
    specs = []
    for r in range(cfg.runs):
        net = be.spice_netlist(circ, t_stop=cfg.t_f * tau, nt=nt_s, seed=run_seed(cfg, r),
                               noise=cfg.noise, x0=x0[r],
                               pwl=None if noise is None else noise[:, r, :],
                               title=f"thermohw cosim run {r}: target {p.target.name}",
                               **{key: val[r] for key, val in start.items()})
        if timeout is None:
            timeout = default_spice_timeout(net, k, getattr(be, "SPICE_STEPS_PER_INTERVAL", 1.0))
        specs.append({"index": r, "netlist": net, "engine": cfg.engine, "kind": p.target.kind, "circuit": circ,
                      "realised": model, "x0": x0[r], "timeout": timeout,
                      "grid_s": grid, "snapshots": cfg.snapshots, "nt_s": nt_s,
                      "pwl_current": None if noise is None else be.spice_pwl_current(circ, nt_s, noise[:, r, :])})
    return specs, x0, noise


def _save_runs(path: Path, results: list[dict], meta: dict) -> None:
    results = sorted(results, key=lambda r: r["index"])
    arrays = {"index": np.array([r["index"] for r in results], dtype=np.int64)}
    if results:
        for k in ("x_final", "x0", "snap"):
            arrays[k] = np.stack([r[k] for r in results])
        for k in ("heat", "heat_strat", "seconds"):
            arrays[k] = np.array([r[k] for r in results])
        arrays["points"] = np.array([r.get("points", 0) for r in results], dtype=np.int64)
        # the keys every run has (a resumed sweep may mix runs saved by an older version)
        for k in [k for k in results[0]["energy"] if all(k in r["energy"] for r in results)]:
            arrays["energy_" + k] = np.array([r["energy"][k] for r in results])
    save_record(path, RUNS_SCHEMA, meta, arrays)


def load_runs(path: str | Path) -> tuple[dict, dict]:
    return load_record(path, RUNS_SCHEMA)


# ---------------------------------------------------------------------------------------------
# resuming a sweep
# ---------------------------------------------------------------------------------------------
RUNS_FILE = "spice_runs.npz"
# what a resume may change: where and how the runs execute, and the ideal side of the comparison;
# never what a SPICE run computes (a resumed sweep must equal an uninterrupted one)
RESUMABLE = frozenset({"workers", "scheduler", "engine", "spice_timeout", "ideal_runs"})
OPTION_NAMES = {"runs": "--runs", "ideal_runs": "--ideal-runs", "t_f": "--t-f", "dt": "dt",
                "nt_fraction": "--nt-fraction", "noise": "--noise", "engine": "--engine", "workers": "--workers",
                "scheduler": "--scheduler", "seed": "--seed", "snapshots": "snapshots",
                "spice_timeout": "--spice-timeout", "chip_seed": "--chip-seed",
                "mismatch_scale": "--mismatch-scale", "directed": "--directed", "programmed": "--programmed"}


def _refuse_change(key: str, given, saved) -> InputError:
    name = OPTION_NAMES.get(key, key)
    return InputError(f"--resume: {name} = {given!r} differs from the saved sweep's {saved!r}; a resume cannot "
                      f"change it (drop {name} to continue the sweep as it was, or start a new sweep in another -o)")


def _saved_config(path: Path, header: dict) -> dict:
    """The CosimConfig fields stored in a runs file (missing ones: today's defaults)."""
    fields = CosimConfig.__dataclass_fields__
    conf = header.get("config")
    if not isinstance(conf, dict):
        raise InputError(f"{path}: has no sweep configuration; it cannot be resumed - start a new sweep in another -o")
    try:
        return asdict(CosimConfig(**{k: v for k, v in conf.items() if k in fields}))
    except (TypeError, InputError) as e:
        raise InputError(f"{path}: its sweep configuration is unusable ({e}); start a new sweep in another -o"
                         ) from None


def saved_sweep(out: str | Path) -> dict | None:
    """The header of the SPICE runs saved in folder ``out``, or None if it holds none."""
    f = Path(out) / RUNS_FILE
    return load_runs(f)[0] if f.exists() else None


def resume_config(out: str | Path, given: dict, chip_options: dict | None = None
                  ) -> tuple[CosimConfig, dict | None]:
    """For ``--resume``: the configuration of the sweep saved in ``out`` with the settings the
    user ``given`` explicitly (CosimConfig fields) applied. A given setting that a resume cannot
    change (not in RESUMABLE) and that differs from the saved one is refused by name; so is a
    chip option (``chip_options``: chip_seed, mismatch_scale, directed, programmed; None = not
    given) that differs from the saved chip's. Returns the config and the saved chip options
    (None when the saved sweep ran the program's own netlist)."""
    path = Path(out) / RUNS_FILE
    hdr = saved_sweep(out)
    if hdr is None:
        raise InputError(f"--resume: {out} holds no saved SPICE runs ({RUNS_FILE}); start without --resume")
    saved = _saved_config(path, hdr)
    for k, v in given.items():
        if k not in CosimConfig.__dataclass_fields__:
            raise InputError(f"unknown co-simulation setting {k!r}")
        if k not in RESUMABLE and v != saved[k]:
            raise _refuse_change(k, v, saved[k])
    cfg = CosimConfig(**{**saved, **given})
    chip = hdr.get("chip")
    saved_opts = chip.get("options") if isinstance(chip, dict) else None
    given_opts = {k: v for k, v in (chip_options or {}).items() if v is not None and v is not False}
    if given_opts and chip is None:
        k = next(iter(given_opts))
        raise InputError(f"--resume: the saved sweep ran PROGRAM's own netlist, not a fabricated chip; a resume "
                         f"cannot add {OPTION_NAMES.get(k, k)} (drop it, or start a new sweep in another -o)")
    if isinstance(saved_opts, dict):
        for k, v in given_opts.items():
            if saved_opts.get(k) != v:
                raise _refuse_change(k, v, saved_opts.get(k))
    return cfg, (dict(saved_opts) if isinstance(saved_opts, dict) else None)


def _sweep_hash(specs: list[dict]) -> str:
    """Identifies what the SPICE runs compute: every run's netlist (circuit, seeds, start state,
    noise, times) and what is kept of it. Comment lines are left out: they carry provenance
    (the command line, the version) that differs between a sweep and its resume."""
    import hashlib

    h = hashlib.sha256()
    for s in specs:
        h.update(f"{s['index']}|{s['snapshots']}|{len(s['grid_s'])}|".encode())
        h.update("\n".join(ln for ln in s["netlist"].splitlines() if not ln.startswith("*")).encode())
    return h.hexdigest()


def _check_same_sweep(path: Path, header: dict, cfg: CosimConfig, sweep: str, chip: ChipUnderTest | None) -> None:
    saved = _saved_config(path, header)
    for k, v in asdict(cfg).items():
        if k not in RESUMABLE and v != saved[k]:
            raise _refuse_change(k, v, saved[k])
    if (header.get("chip") is None) != (chip is None):
        raise InputError("--resume: the saved sweep ran " + ("a fabricated chip" if chip is None else
                         "PROGRAM's own netlist") + "; give the same chip options as the saved sweep, or start "
                         "a new sweep in another -o")
    if header.get("netlists_sha256", sweep) != sweep:
        raise InputError("--resume: the SPICE netlists differ from the saved sweep's (another PROGRAM, or another "
                         "chip); resume with the program and chip the sweep started with, or use another -o")


def _saved_results(path: Path, arrays: dict, runs: int) -> list[dict]:
    """The per-run results stored in a runs file, as spice_job returned them."""
    idx = arrays.get("index")
    if idx is None or idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise InputError(f"{path}: no run index; the file is damaged - start a new sweep in another -o")
    n = idx.size
    if n == 0:
        return []
    need = ("x_final", "x0", "snap", "heat", "heat_strat", "seconds")
    bad = [k for k in need if k not in arrays or arrays[k].shape[:1] != (n,)]
    bad += [k for k in arrays if k.startswith("energy_") and arrays[k].shape != (n,)]
    if bad or len(set(idx.tolist())) != n or idx.min() < 0 or idx.max() >= runs:
        raise InputError(f"{path}: inconsistent saved runs ({', '.join(bad) or 'run indices'}); the file is "
                         "damaged - start a new sweep in another -o")
    energy = [k for k in arrays if k.startswith("energy_")]
    return [{"index": int(i), "x_final": arrays["x_final"][j], "x0": arrays["x0"][j], "snap": arrays["snap"][j],
             "heat": float(arrays["heat"][j]), "heat_strat": float(arrays["heat_strat"][j]),
             "seconds": float(arrays["seconds"][j]),
             "points": int(arrays["points"][j]) if "points" in arrays else 0,
             "energy": {k.removeprefix("energy_"): float(arrays[k][j]) for k in energy}}
            for j, i in enumerate(idx.tolist())]


def run_cosim(p: CompiledProgram, cfg: CosimConfig, out: str | Path, *, digits=None,
              progress: bool = True, chip: ChipUnderTest | None = None, resume: bool = False,
              replace: bool = False) -> CosimReport:
    """Run SPICE and both ideal models, compare, write the report folder ``out`` (cosim.json,
    the ideal runs, plots/) and return the report record.
    ``chip``: co-simulate that circuit (e.g. a mismatched chip) against ``p``'s models.

    Finished SPICE runs are saved to ``out/spice_runs.npz`` as they arrive; on Ctrl-C the
    report is written from the finished runs and KeyboardInterrupt is re-raised. A run that
    fails (ngspice error, killed, or past ``cfg.spice_timeout``) is reported in cosim.json
    (``spice_failures``: run index, seed, error) and the others go on.

    ``resume``: continue the sweep saved in ``out``: its runs are kept and only the missing
    ones (never run, failed, interrupted) run, with the seeds they always had, so the result
    equals an uninterrupted sweep; settings that would change a run are refused by name.
    Without it a folder that holds saved runs is refused; ``replace=True`` discards them
    instead (for callers that own the folder)."""

    out = Path(out)
    runs_file = out / RUNS_FILE
    # the ideal runs come after the sweep: refuse what cannot fit before any SPICE run starts
    # (the same estimate generate() makes: start states, state, scratch)
    check_memory(8 * int(cfg.ideal_runs) * p.realised.n_units * 9,
                 f"the ideal models' {cfg.ideal_runs} runs of {p.realised.n_units} units", "use fewer --ideal-runs")
    specs, x0, noise = prepare(p, cfg, chip)
    sweep = _sweep_hash(specs)
    saved = _saved_runs(out, cfg, sweep, chip, resume, replace)
    meta = _sweep_meta(p, cfg, specs, sweep, chip)
    results: list[dict] = list(saved)
    failures: list[dict] = []
    done = {r["index"] for r in saved}
    todo = [s for s in specs if s["index"] not in done]
    if saved and progress:
        print(f"resuming {runs_file}: {len(saved)} of {cfg.runs} SPICE runs saved, {len(todo)} to run")
    spice_seconds, interrupted = _run_spice(todo, cfg, results, failures, runs_file, meta, progress)
    if interrupted and len(results) < 2:
        raise KeyboardInterrupt
    if len(results) < 2:
        why = f"; first failure (run {failures[0]['run']}): {failures[0]['error']}" if failures else ""
        raise InputError(f"only {len(results)} of {len(specs)} SPICE runs finished{why}; fix the cause and "
                         "rerun with --resume (finished runs are kept)")
    missing = sorted(set(range(cfg.runs)) - {r["index"] for r in results})
    ideal = ideal_models(p, cfg)
    sweep_done = CosimSweep(spice_seconds=spice_seconds, runs_requested=cfg.runs, resumed_runs=len(saved),
                            new_runs=len(results) - len(saved), missing_runs=tuple(missing),
                            spice_failures=tuple(failures), interrupted=interrupted, meta=meta)
    report = compare(p, cfg, results, x0, noise, ideal, digits=digits, chip=chip).with_(
        sweep=sweep_done, provenance=provenance(ngspice=True, seeds={
            "cosim": cfg.seed, "spice_run_seeds": "seed * 100003 + run + 1",
            "chip": (chip.meta or {}).get("errors_seed") if chip is not None else None}))
    # the edge: this function owns the folder, so the files and figures are written here
    for k, tr in ideal.items():
        tr.save(out / f"ideal_{k}.npz")
    _cosim_plots(p, report, ideal, results, out / "plots")
    write_json(out / "cosim.json", report.to_dict())
    if interrupted:
        raise KeyboardInterrupt
    return report


def _saved_runs(out: Path, cfg: CosimConfig, sweep: str, chip: ChipUnderTest | None, resume: bool,
                replace: bool) -> list[dict]:
    """The finished runs of the sweep saved in ``out`` (resume), [] for a new sweep; creates
    ``out``. A saved sweep without resume, or resume without one, is refused."""
    runs_file = out / RUNS_FILE
    saved: list[dict] = []
    if runs_file.exists() and not replace:
        hdr, arrays = load_runs(runs_file)
        if not resume:
            n_saved = int(np.size(arrays.get("index", [])))
            raise InputError(f"{out} already holds {n_saved} saved SPICE runs of a sweep; pass --resume to "
                             "continue it, or choose another output folder (-o)")
        _check_same_sweep(runs_file, hdr, cfg, sweep, chip)
        saved = _saved_results(runs_file, arrays, cfg.runs)
    elif resume and not runs_file.exists():
        raise InputError(f"--resume: {out} holds no saved SPICE runs ({RUNS_FILE}); start without --resume")
    out.mkdir(parents=True, exist_ok=True)
    if replace and runs_file.exists():
        runs_file.unlink()  # a new sweep: runs of the old one must not mix in
    return saved


def _sweep_meta(p: CompiledProgram, cfg: CosimConfig, specs: list[dict], sweep: str, chip: ChipUnderTest | None) -> dict:
    """What the report and the saved runs record about the sweep (noise interval, netlist hashes, chip)."""
    nt_model = cfg.t_f / (len(specs[0]["grid_s"]) - 1)
    meta = {"config": asdict(cfg), "target": p.target.name, "nt_model": nt_model,
            "nt_s": nt_model * _backend(p).time_unit(p.artefact),
            # sample-and-hold noise: stationary variance factor tanh(x/2)/(x/2) at x = NT/tau; the
            # fastest unit (tau_min, cubic curvature at |x| = 1 included) bounds the loss for all
            "held_noise_variance_factor_worst": held_noise_variance_factor(cfg.nt_fraction)}
    meta["netlists_sha256"] = sweep
    meta["spice_timeout_s"] = specs[0]["timeout"]
    if chip is not None:
        meta["chip"] = chip.describe()
    return meta


def _run_spice(todo: list[dict], cfg: CosimConfig, results: list[dict], failures: list[dict], runs_file: Path,
               meta: dict, progress: bool) -> tuple[float, bool]:
    """Run the SPICE jobs ``todo``, appending to ``results`` (each saved as it arrives) and
    ``failures``: (seconds, whether Ctrl-C interrupted the sweep)."""
    def on_result(res) -> None:
        run = todo[res.index]["index"]  # the executor counts items of todo; runs keep their own index
        if res.ok:
            results.append(res.value)
            _save_runs(runs_file, results, meta)
        else:
            failures.append({"run": run, "seed": run_seed(cfg, run), "error": res.error})

    t0 = time.perf_counter()
    interrupted = False
    if todo:
        try:
            with make_executor(workers=cfg.workers, scheduler=cfg.scheduler) as ex:
                ex.map(spice_job, todo, progress=progress, desc="SPICE runs", on_result=on_result)
        except (Interrupted, KeyboardInterrupt):
            interrupted = True
    return time.perf_counter() - t0, interrupted


# ---------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------
# The null hypothesis of a co-simulation is that SPICE and the ideal model give one distribution,
# so the pooled-variance (Student) t test is the exact test of means, and the ideal model's many
# runs dominate its variance. Welch's t leans on the few SPICE runs' own variance: with 2 runs it
# has ~1 degree of freedom and false-alarms at 6.6 % instead of 1 % (tests/test_cosim.py), and a
# difference in spread is the Brown-Forsythe test's to find, not the mean test's.
MEAN_TEST = "Student t (pooled)"


def _mean_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sample pooled t test of the means of SPICE sample ``a`` and ideal sample ``b``."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    t, pval = stats.ttest_ind(a, b, equal_var=True)
    return {"t": float(t), "p": float(pval), "method": MEAN_TEST}


def unit_moments_test(xs: np.ndarray, xi: np.ndarray, alpha: float = 0.01) -> UnitMoments:
    """Per-unit mean (pooled Student t, see MEAN_TEST) and variance (Brown-Forsythe) tests of SPICE states ``xs`` (runs, N) against ideal states ``xi``; with N
    units, about alpha*N rejections are expected by chance, so the verdict compares the count
    with the binomial 99.9 % point."""
    from scipy import stats

    n = xs.shape[1]
    pm = stats.ttest_ind(xs, xi, axis=0, equal_var=True).pvalue
    pv = np.array([stats.levene(xs[:, i], xi[:, i], center="median").pvalue for i in range(n)])
    limit = int(stats.binom.ppf(0.999, n, alpha))
    fm, fv = int(np.sum(pm < alpha)), int(np.sum(pv < alpha))
    return UnitMoments(units=n, alpha=alpha, mean_rejections=fm, variance_rejections=fv, allowed_by_chance=limit,
                       agree=bool(fm <= limit and fv <= limit), mean_test=MEAN_TEST,
                       mean_spice=tuple(xs.mean(0).tolist()), mean_ideal=tuple(xi.mean(0).tolist()),
                       var_spice=tuple(xs.var(0, ddof=1).tolist()), var_ideal=tuple(xi.var(0, ddof=1).tolist()))


def ideal_models(p: CompiledProgram, cfg: CosimConfig) -> dict:
    """The ideal side of the comparison: ``cfg.ideal_runs`` generation runs of the float and of
    the realised model (one seed for both), as Trajectories keyed 'float' and 'realised'."""
    seed = np.random.SeedSequence([cfg.seed, 3])
    return {"float": generate(p.source, cfg.ideal_runs, t_f=cfg.t_f, dt=cfg.dt, seed=seed),
            "realised": generate(p.realised, cfg.ideal_runs, t_f=cfg.t_f, dt=cfg.dt, seed=seed)}


def _spice_finals(results: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run indices, final states, model heat and its Stratonovich sum of SPICE ``results``, by index."""
    results = sorted(results, key=lambda r: r["index"])
    return (np.array([r["index"] for r in results]), np.stack([r["x_final"] for r in results]),
            np.array([r["heat"] for r in results]), np.array([r["heat_strat"] for r in results]))


def compare(p: CompiledProgram, cfg: CosimConfig, results: list[dict], x0: np.ndarray, noise: np.ndarray | None,
            ideal: dict, *, digits=None, chip: ChipUnderTest | None = None) -> CosimReport:
    """Statistics and verdicts for finished SPICE runs against both ideal models (``ideal``:
    from :func:`ideal_models`); writes nothing (``run_cosim`` does). ``digits``: the training
    Digits, to score generated images (optional). ``chip``: the circuit SPICE ran, if not the
    program's; the paired (pwl) comparison then uses its model, so it checks the netlist, and
    the unpaired ones measure the chip against the program."""

    if len(results) < 2:
        raise InputError(f"only {len(results)} SPICE runs finished; need at least 2 for a comparison")
    results = sorted(results, key=lambda r: r["index"])  # by run index: the energy sums' order too
    idx, xs, q_sp, q_st = _spice_finals(results)
    kT = p.realised.kT_ref
    es = p.energy_scale
    E = es.joules_per_model_unit if es is not None else p.scales.get("energy_per_model_unit_J", float("nan"))
    test = _mean_test(q_sp / kT, ideal["realised"].heat_kT)
    heat = HeatComparison(spice={**mean_ci(q_sp / kT), "joules": mean_ci(q_sp * E)},
                          spice_stratonovich=mean_ci(q_st / kT), ideal_float=mean_ci(ideal["float"].heat_kT),
                          ideal_realised=mean_ci(ideal["realised"].heat_kT), test_spice_vs_realised=test,
                          agree=bool(test["p"] > 0.01))
    energies = {k.removeprefix("energy_"): mean_ci(np.array([r["energy"][k] for r in results]))
                for k in results[0]["energy"]}
    return CosimReport(
        spice_runs=int(len(results)), ideal_runs=cfg.ideal_runs, energy_per_model_unit_J=E, kT_model=kT,
        energy_scale=es.to_dict() if es is not None else None, heat=heat, electrical_energy_J=energies,
        unit_moments=unit_moments_test(xs, ideal["realised"].x_final),
        digits=_digit_comparison(p, digits, xs, ideal)
        if digits is not None and p.source.n_visible == digits.n_pixels else None,
        paired=_paired_comparison(p, cfg, chip, x0, noise, xs, idx, q_sp, kT) if noise is not None else None,
        chip=chip.describe() if chip is not None else None)


def _digit_comparison(p: CompiledProgram, digits, xs: np.ndarray, ideal: dict) -> DigitsComparison:
    """Digit scores of the SPICE and ideal samples; SPICE tested against the realised model."""
    nv = p.source.n_visible
    ref = reference_set(digits)
    sc = {"spice": digit_scores(xs[:, :nv], digits.patterns, digits.labels, reference=ref)}
    for k, tr in ideal.items():
        sc[f"ideal_{k}"] = digit_scores(tr.x_final[:, :nv], digits.patterns, digits.labels, reference=ref)
    sp, re_ = sc["spice"]["per_sample"], sc["ideal_realised"]["per_sample"]
    t = _mean_test(sp["best_abs_corr"], re_["best_abs_corr"])
    tm = _mean_test(sp["margin"], re_["margin"])
    for v in sc.values():
        v.pop("per_sample")
    return DigitsComparison(spice=sc["spice"], ideal_float=sc["ideal_float"], ideal_realised=sc["ideal_realised"],
                            test_spice_vs_realised=t, test_margin_spice_vs_realised=tm,
                            agree=bool(t["p"] > 0.01 and tm["p"] > 0.01))


def _paired_comparison(p: CompiledProgram, cfg: CosimConfig, chip: ChipUnderTest | None, x0: np.ndarray,
                       noise: np.ndarray, xs: np.ndarray, idx: np.ndarray, q_sp: np.ndarray, kT: float
                       ) -> PairedComparison:
    """Paired: the realised ideal model (or the chip's) driven by the very same noise samples, dt = NT."""
    k = noise.shape[0]
    pr = simulate(p.realised if chip is None else chip.model, x0, n_steps=k, dt=cfg.t_f / k, noise=noise,
                  stratonovich=False)
    d = xs - pr.x_final[idx]
    spread = float(np.std(pr.x_final))
    return PairedComparison(rms_state_difference=float(np.sqrt(np.mean(d * d))), state_spread=spread,
                            relative=float(np.sqrt(np.mean(d * d)) / spread),
                            heat_difference_kT=mean_ci((q_sp - pr.heat[idx]) / kT),
                            note=f"SPICE minus {'realised' if chip is None else 'the chip model'}-ideal driven by "
                                 "the same noise; the rest is the Euler discretisation (dt = NT) and SPICE's "
                                 "integration error")


def _cosim_plots(p: CompiledProgram, rep: CosimReport, ideal: dict, results: list[dict], pdir: Path) -> None:
    """The report's figures: SPICE and ideal samples side by side (image programs), heat, per-unit moments."""
    _, xs, q_sp, _ = _spice_finals(results)
    heat_spice_kT = q_sp / rep.kT_model
    if p.source.image_shape:
        nv = p.source.n_visible
        plots.side_by_side({"float ideal": ideal["float"].x_final[:8, :nv],
                            "realised ideal": ideal["realised"].x_final[:8, :nv], "SPICE": xs[:8, :nv]},
                           p.source.image_shape, pdir / "digits_side_by_side.png")
    plots.heat_histogram({"SPICE": heat_spice_kT, "realised ideal": ideal["realised"].heat_kT,
                          "float ideal": ideal["float"].heat_kT}, pdir / "heat.png",
                         title="heat per generated sample: SPICE vs ideal (densities)")
    um = rep.unit_moments
    plots.unit_moments(np.array(um.mean_ideal), np.array(um.mean_spice), np.array(um.var_ideal),
                       np.array(um.var_spice), len(xs), pdir / "unit_moments.png")
