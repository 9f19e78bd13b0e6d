"""Co-simulation: ngspice transient-noise runs of a compiled netlist beside the ideal
Langevin model of the float Computer and of the realised (quantised) Computer.

Protocol (the paper's generation, DESIGN.md section 3): initial states are drawn from the
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
from .errors import InputError
from .io import load_record, save_record, write_json
from .langevin import Trajectory, equilibrium_start, generate, simulate, steps_for
from .metrics import mean_ci

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

    def __post_init__(self) -> None:
        if self.runs < 2 or self.ideal_runs < 2:
            raise InputError("runs and ideal_runs must be >= 2 (statistics need a spread)")
        if self.noise not in ("trrandom", "pwl"):
            raise InputError(f"noise = {self.noise!r}; use 'trrandom' or 'pwl' (paired)")
        if self.engine not in ("batch", "shared"):
            raise InputError(f"engine = {self.engine!r}; use 'batch' or 'shared'")
        if not 0 <= self.seed <= 20000:
            raise InputError(f"seed = {self.seed}: use 0..20000 (run seeds seed*100003 + run must stay in "
                             "ngspice's 1..2^31-1)")
        if not 0 < self.nt_fraction <= 0.2:
            raise InputError("nt_fraction must be in (0, 0.2] (DESIGN.md 4a: NT <= tau_min/100 ideally)")
        steps_for(self.t_f, self.dt)


# ---------------------------------------------------------------------------------------------
# one SPICE run (module level: it runs in worker processes)
# ---------------------------------------------------------------------------------------------
def spice_job(spec: dict) -> dict:
    """Run one netlist and reduce it to what the comparison needs (small to ship back)."""
    from .spice.engines import node_voltages, run as run_spice

    t0 = time.perf_counter()
    raw = run_spice(spec["netlist"], engine=spec["engine"])
    circ, c = spec["circuit"], spec["realised"]
    n = c.n_units
    t = raw["time"]
    grid = spec["grid_s"]
    x = node_voltages(raw, n, grid, v0=spec.get("v0")) / circ.V_s
    v = np.stack([raw[f"v(u{i})"] for i in range(n)], axis=1)  # volts on ngspice's own time points
    # (a) model heat from the measured trajectory
    heat = float(c.energy(x[0]) - c.energy(x[-1]))
    g = c.grad(x)
    strat = float(-0.5 * np.sum((g[1:] + g[:-1]) * np.diff(x, axis=0)))
    # (b) electrical energy, integrated on ngspice's own time points (trapezoid)
    p_res = (v * v) @ circ.g + (v ** 4) @ circ.k3          # resistors, trims, cubic elements >= 0
    p_cpl = np.einsum("ti,ij,tj->t", v, circ.G, v)          # coupling transconductors (signed)
    p_bias = -(v @ circ.I_b)                                # bias current sources absorb -v I_b
    e = {k: float(np.trapezoid(p, t)) for k, p in (("resistive_J", p_res), ("couplings_J", p_cpl),
                                                    ("bias_J", p_bias))}
    e["capacitor_delta_J"] = float(0.5 * np.sum(circ.C * (v[-1] ** 2 - v[0] ** 2)))
    # first law: the noise sources deliver what the elements dissipate plus what the capacitors store
    e["noise_delivered_J"] = e["resistive_J"] + e["couplings_J"] + e["bias_J"] + e["capacitor_delta_J"]
    if spec.get("pwl_current") is not None:
        # paired mode: the injected currents are known, so the noise power is measured, not
        # inferred, and the first law becomes a check of the simulation (DESIGN.md 4a: < 1 %)
        cur = spec["pwl_current"]
        k = np.minimum((t / spec["nt_s"]).astype(np.int64), cur.shape[0] - 1)
        e["noise_measured_J"] = float(np.trapezoid(np.einsum("ti,ti->t", v, cur[k]), t))
        e["first_law_residual"] = (e["noise_measured_J"] - e["noise_delivered_J"]) / e["resistive_J"]
    snap = np.linspace(0, len(grid) - 1, spec["snapshots"]).round().astype(int)
    return {"index": spec["index"], "x_final": x[-1], "x0": x[0], "snap": x[snap], "heat": heat,
            "heat_strat": strat, "energy": e, "points": int(len(t)), "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# the harness
# ---------------------------------------------------------------------------------------------
def _backend_netlist(p: CompiledProgram):
    if p.target.kind != "rc":
        raise InputError(f"co-simulation supports rc targets so far; {p.target.name!r} is {p.target.kind!r}")
    from .backends import rc

    return rc


def prepare(p: CompiledProgram, cfg: CosimConfig, chip: ChipUnderTest | None = None
            ) -> tuple[list[dict], np.ndarray, np.ndarray | None]:
    """SPICE job specs, the initial states, and (pwl mode) the noise samples. ``chip``: run
    that circuit instead of the program's, from its own coupling-free equilibrium."""
    be = _backend_netlist(p)
    circ = p.artefact if chip is None else chip.circuit
    if circ.n_units != p.realised.n_units:
        raise InputError(f"the circuit has {circ.n_units} units, the program {p.realised.n_units}")
    model = p.realised if chip is None else chip.model
    tau = circ.tau
    nt_s = be.noise_interval(circ, cfg.nt_fraction)
    k = max(1, math.ceil(cfg.t_f * tau / nt_s - 1e-9))  # NT <= the bound
    nt_s = cfg.t_f * tau / k                    # a whole number of noise intervals in t_f
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    # the coupling-free equilibrium of the unit that runs: a chip equilibrates with its own
    # J2, J4 and noise level (its errors included), as it would on the bench
    x0 = equilibrium_start(model, cfg.runs, t_eq=cfg.t_f, dt=cfg.dt, seed=rng)
    noise = None
    if cfg.noise == "pwl":
        noise = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2])).standard_normal((k, cfg.runs, p.realised.n_units))
    grid = np.linspace(0.0, cfg.t_f * tau, k + 1)
    specs = []
    for r in range(cfg.runs):
        net = be.netlist(circ, t_stop=cfg.t_f * tau, nt=nt_s, seed=cfg.seed * 100003 + r + 1,
                         noise=cfg.noise, x0=x0[r],
                         pwl=None if noise is None else noise[:, r, :],
                         title=f"thermohw cosim run {r}: target {p.target.name}")
        specs.append({"index": r, "netlist": net, "engine": cfg.engine, "circuit": circ, "realised": model,
                      "v0": circ.V_s * x0[r],
                      "grid_s": grid, "snapshots": cfg.snapshots, "nt_s": nt_s,
                      "pwl_current": None if noise is None else np.sqrt(circ.s2 / nt_s) * noise[:, r, :]})
    return specs, x0, noise


def _save_runs(path: Path, results: list[dict], meta: dict) -> None:
    results = sorted(results, key=lambda r: r["index"])
    arrays = {"index": np.array([r["index"] for r in results], dtype=np.int64)}
    if results:
        for k in ("x_final", "x0", "snap"):
            arrays[k] = np.stack([r[k] for r in results])
        for k in ("heat", "heat_strat", "seconds"):
            arrays[k] = np.array([r[k] for r in results])
        for k in results[0]["energy"]:
            arrays["energy_" + k] = np.array([r["energy"][k] for r in results])
    save_record(path, RUNS_SCHEMA, meta, arrays)


def load_runs(path: str | Path) -> tuple[dict, dict]:
    return load_record(path, RUNS_SCHEMA)


def run_cosim(p: CompiledProgram, cfg: CosimConfig, out: str | Path, *, digits=None,
              progress: bool = True, chip: ChipUnderTest | None = None) -> dict:
    """Run SPICE and both ideal models, compare, and write the report folder ``out``.
    ``chip``: co-simulate that circuit (e.g. a mismatched chip) against ``p``'s models.

    Finished SPICE runs are saved to ``out/spice_runs.npz`` as they arrive; on Ctrl-C the
    report is written from the finished runs and KeyboardInterrupt is re-raised."""
    from .executor import Interrupted, make_executor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs, x0, noise = prepare(p, cfg, chip)
    nt_model = cfg.t_f / (len(specs[0]["grid_s"]) - 1)
    from .backends.rc import held_noise_variance_factor

    meta = {"config": asdict(cfg), "target": p.target.name, "nt_model": nt_model,
            "nt_s": nt_model * p.artefact.tau,
            # sample-and-hold noise: stationary variance factor tanh(x/2)/(x/2) at x = NT/tau; the
            # fastest unit (tau_min, cubic curvature at |x| = 1 included) bounds the loss for all
            "held_noise_variance_factor_worst": held_noise_variance_factor(cfg.nt_fraction)}
    if chip is not None:
        meta["chip"] = chip.describe()
    results: list[dict] = []
    failures: list[dict] = []

    def on_result(res) -> None:
        if res.ok:
            results.append(res.value)
            _save_runs(out / "spice_runs.npz", results, meta)
        else:
            failures.append({"run": res.index, "error": res.error, "seed": cfg.seed * 100003 + res.index + 1})

    t0 = time.perf_counter()
    interrupted = False
    try:
        with make_executor(workers=cfg.workers, scheduler=cfg.scheduler) as ex:
            ex.map(spice_job, specs, progress=progress, desc="SPICE runs", on_result=on_result)
    except (Interrupted, KeyboardInterrupt):
        interrupted = True
    spice_seconds = time.perf_counter() - t0
    if interrupted and len(results) < 2:
        raise KeyboardInterrupt
    if len(results) < 2:
        why = f"; first failure (run {failures[0]['run']}): {failures[0]['error']}" if failures else ""
        raise InputError(f"only {len(results)} of {len(specs)} SPICE runs finished{why}")
    report = compare(p, cfg, results, x0, noise, out, digits=digits, chip=chip)
    report.update(spice_seconds=spice_seconds, spice_failures=failures, interrupted=interrupted, **meta)
    write_json(out / "cosim.json", report)
    if interrupted:
        raise KeyboardInterrupt
    return report


# ---------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------
def _welch(a: np.ndarray, b: np.ndarray) -> dict:
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    t, pval = stats.ttest_ind(a, b, equal_var=False)
    return {"t": float(t), "p": float(pval)}


def unit_moments_test(xs: np.ndarray, xi: np.ndarray, alpha: float = 0.01) -> dict:
    """Per-unit mean (Welch t) and variance (Brown-Forsythe) tests of SPICE states ``xs``
    (runs, N) against ideal states ``xi``; with N units, about alpha*N rejections are
    expected by chance, so the verdict compares the count with the binomial 99.9 % point."""
    from scipy import stats

    n = xs.shape[1]
    pm = np.array([stats.ttest_ind(xs[:, i], xi[:, i], equal_var=False).pvalue for i in range(n)])
    pv = np.array([stats.levene(xs[:, i], xi[:, i], center="median").pvalue for i in range(n)])
    limit = int(stats.binom.ppf(0.999, n, alpha))
    fm, fv = int(np.sum(pm < alpha)), int(np.sum(pv < alpha))
    return {"units": n, "alpha": alpha, "mean_rejections": fm, "variance_rejections": fv,
            "allowed_by_chance": limit, "agree": bool(fm <= limit and fv <= limit),
            "mean_spice": xs.mean(0).tolist(), "mean_ideal": xi.mean(0).tolist(),
            "var_spice": xs.var(0, ddof=1).tolist(), "var_ideal": xi.var(0, ddof=1).tolist()}


def compare(p: CompiledProgram, cfg: CosimConfig, results: list[dict], x0: np.ndarray, noise: np.ndarray | None,
            out: Path, *, digits=None, chip: ChipUnderTest | None = None) -> dict:
    """Statistics, verdicts and plots for finished SPICE runs against both ideal models.
    ``digits``: the training Digits, to score generated images (optional). ``chip``: the
    circuit SPICE ran, if not the program's; the paired (pwl) comparison then uses its model,
    so it checks the netlist, and the unpaired ones measure the chip against the program."""
    from . import plots
    from .metrics import digit_scores

    if len(results) < 2:
        raise InputError(f"only {len(results)} SPICE runs finished; need at least 2 for a comparison")
    results = sorted(results, key=lambda r: r["index"])
    idx = np.array([r["index"] for r in results])
    xs = np.stack([r["x_final"] for r in results])
    q_sp = np.array([r["heat"] for r in results])
    q_st = np.array([r["heat_strat"] for r in results])
    kT = p.realised.kT_ref
    E = p.scales.get("energy_per_model_unit_J", float("nan"))
    seed = np.random.SeedSequence([cfg.seed, 3])
    ideal = {"float": generate(p.source, cfg.ideal_runs, t_f=cfg.t_f, dt=cfg.dt, seed=seed),
             "realised": generate(p.realised, cfg.ideal_runs, t_f=cfg.t_f, dt=cfg.dt, seed=seed)}
    for k, tr in ideal.items():
        tr.save(out / f"ideal_{k}.npz")
    rep: dict[str, Any] = {"spice_runs": int(len(results)), "ideal_runs": cfg.ideal_runs,
                           "energy_per_model_unit_J": E, "kT_model": kT}
    heat = {"spice": {**mean_ci(q_sp / kT), "joules": mean_ci(q_sp * E)},
            "spice_stratonovich": mean_ci(q_st / kT)}
    for k, tr in ideal.items():
        heat[f"ideal_{k}"] = mean_ci(tr.heat_kT)
    heat["test_spice_vs_realised"] = _welch(q_sp / kT, ideal["realised"].heat_kT)
    heat["agree"] = bool(heat["test_spice_vs_realised"]["p"] > 0.01)
    energies = {k.removeprefix("energy_"): mean_ci(np.array([r["energy"][k] for r in results]))
                for k in results[0]["energy"]}
    rep["heat"] = heat
    rep["electrical_energy_J"] = energies
    rep["heat_explanation"] = (
        "model heat E*Q is the heat the Langevin computer would give its bath; the circuit's electrical "
        "dissipation (resistive + couplings + bias) is the cost of emulating that bath electronically "
        "and is larger by orders of magnitude (housekeeping power mu C V_s^2 per unit)")
    rep["unit_moments"] = unit_moments_test(xs, ideal["realised"].x_final)
    if digits is not None and p.source.n_visible == digits.n_pixels:
        from .data import reference_set

        nv = p.source.n_visible
        ref = reference_set(digits)
        sc = {"spice": digit_scores(xs[:, :nv], digits.patterns, digits.labels, reference=ref)}
        for k, tr in ideal.items():
            sc[f"ideal_{k}"] = digit_scores(tr.x_final[:, :nv], digits.patterns, digits.labels, reference=ref)
        sp, re_ = sc["spice"]["per_sample"], sc["ideal_realised"]["per_sample"]
        t = _welch(sp["best_abs_corr"], re_["best_abs_corr"])
        tm = _welch(sp["margin"], re_["margin"])
        for v in sc.values():
            v.pop("per_sample")
        rep["digits"] = {**sc, "test_spice_vs_realised": t, "test_margin_spice_vs_realised": tm,
                         "agree": bool(t["p"] > 0.01 and tm["p"] > 0.01)}
    if noise is not None:
        # paired: the realised ideal model (or the chip's) driven by the very same noise samples, dt = NT
        k = noise.shape[0]
        pr = simulate(p.realised if chip is None else chip.model, x0, n_steps=k, dt=cfg.t_f / k, noise=noise,
                      stratonovich=False)
        d = xs - pr.x_final[idx]
        spread = float(np.std(pr.x_final))
        rep["paired"] = {"rms_state_difference": float(np.sqrt(np.mean(d * d))), "state_spread": spread,
                         "relative": float(np.sqrt(np.mean(d * d)) / spread),
                         "heat_difference_kT": mean_ci((q_sp - pr.heat[idx]) / kT),
                         "note": f"SPICE minus {'realised' if chip is None else 'the chip model'}-ideal driven by "
                                 "the same noise; the rest is the Euler discretisation (dt = NT) and SPICE's "
                                 "integration error"}
    if chip is not None:
        rep["chip"] = chip.describe()
    rep["verdicts"] = _verdicts(rep)
    pdir = out / "plots"
    if p.source.image_shape:
        nv = p.source.n_visible
        plots.side_by_side({"float ideal": ideal["float"].x_final[:8, :nv],
                            "realised ideal": ideal["realised"].x_final[:8, :nv], "SPICE": xs[:8, :nv]},
                           p.source.image_shape, pdir / "digits_side_by_side.png")
    plots.heat_histogram({"SPICE": q_sp / kT, "realised ideal": ideal["realised"].heat_kT,
                          "float ideal": ideal["float"].heat_kT}, pdir / "heat.png",
                         title="heat per generated sample: SPICE vs ideal")
    um = rep["unit_moments"]
    plots.unit_moments(np.array(um["mean_ideal"]), np.array(um["mean_spice"]), np.array(um["var_ideal"]),
                       np.array(um["var_spice"]), len(results), pdir / "unit_moments.png")
    return rep


def _verdicts(rep: dict) -> list[str]:
    v = []
    if rep.get("chip"):
        v.append(f"SPICE ran: {rep['chip']['label']} (compared with the program's realised ideal model)")
    um = rep["unit_moments"]
    v.append(f"per-unit means/variances: {'AGREE' if um['agree'] else 'DIFFER'} "
             f"({um['mean_rejections']} mean and {um['variance_rejections']} variance rejections of {um['units']} "
             f"units at alpha = {um['alpha']}; <= {um['allowed_by_chance']} expected by chance; Welch t / Brown-Forsythe)")
    h = rep["heat"]
    v.append(f"<Q>: {'AGREE' if h['agree'] else 'DIFFER'} (SPICE {h['spice']['mean']:.4g} ± {h['spice']['sem']:.2g} kT "
             f"vs realised ideal {h['ideal_realised']['mean']:.4g} ± {h['ideal_realised']['sem']:.2g} kT; "
             f"Welch p = {h['test_spice_vs_realised']['p']:.3g})")
    if "digits" in rep:
        d = rep["digits"]
        v.append(f"digit quality: {'AGREE' if d['agree'] else 'DIFFER'} (mean best |corr| SPICE "
                 f"{d['spice']['mean_best_abs_corr']:.3f} vs realised ideal {d['ideal_realised']['mean_best_abs_corr']:.3f}, "
                 f"Welch p = {d['test_spice_vs_realised']['p']:.3g}; margin {d['spice']['mean_margin']:.3f} vs "
                 f"{d['ideal_realised']['mean_margin']:.3f}, p = {d['test_margin_spice_vs_realised']['p']:.3g})")
    if "paired" in rep:
        pr = rep["paired"]
        v.append(f"paired (same noise): rms state difference {pr['rms_state_difference']:.3g} "
                 f"({100 * pr['relative']:.1f} % of the spread)")
    return v
