"""The calibration workflow behind ``thermohw calibrate``: measure, fit, correct, verify, report.

    out/report.json              design, fits (every parameter with its standard error),
                                 estimated errors per iteration, out-of-range and untrimmable
                                 elements, generation (<Q>, digit scores) before / after,
                                 and - on virtual chips - the comparison with the hidden truth
    out/plots/                   fitted_vs_programmed.png, residuals.png, error_history.png,
                                 heat_before_after.png, digits_before_after.png and
                                 paired_differences.png (image models)
    out/corrected/               the pre-distorted program (a 'thermohw compile' folder)
    out/recording_initial.npz    the first measurement (replayable; the first chunk)
    out/measurements/            every measurement's fit as it completes: rerunning the same
                                 command resumes an interrupted calibration
    out/cosim-before/, cosim-after/   (virtual chips, ``verify_runs`` > 0) ngspice generation
                                 runs of the chip's mismatched netlist as programmed and as
                                 corrected, against the intended realised model (cosim reports)

On a replay device the chip cannot be re-measured: the report holds one fit and the
*recommended* correction (out/corrected); program the chip with it, record again and replay
that to verify.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compile import CompiledProgram
from ..errors import InputError
from ..io import write_json
from ..langevin import generate
from ..metrics import mean_ci, digit_scores
from . import design
from .correct import CorrectionConfig, calibrate, correction_step, estimated_errors, parameter_errors
from .devices import Device, ReplayDevice, chip_under_test
from .fit import Fit, fit, standardized_residuals
from .recording import Recording
from .. import plots
from ..cosim import CosimConfig, run_cosim
from ..data import reference_set
from ..provenance import provenance


@dataclass(frozen=True)
class CalibrationSetup:
    """runs / duration / sample_interval / amplitude : the bias-step recording of each
    measurement (model units). iterations : correction steps. mobility : 'bias' (needs the
    bias steps) or 'nominal'. J4_trim_step / noise_trim : which extra trims the chip has.
    generate_runs / generate_dt : the before/after generation comparison (0 runs: skip).
    chunk_runs : runs recorded at a time (their statistics are pooled; bounded memory).
    verify_runs / verify_workers : virtual chips - ngspice co-simulations of the generation
    protocol on the chip's mismatched netlist before and after correction (0: skip).
    match_generation : paired generation runs with which each correction is judged and, where
    J4 or mu has no trim, compensated by the J2 trims (``CorrectionConfig``; 0: off)."""

    runs: int = 256
    duration: float = 20.0
    sample_interval: float = 0.01
    amplitude: float = 2.0
    iterations: int = 3
    seed: int = 0
    mobility: str = "bias"
    J4_trim_step: float | None = None
    noise_trim: bool = True
    generate_runs: int = 1000
    generate_dt: float = 1e-3
    discretisation: str | None = None
    chunk_runs: int | None = 256
    verify_runs: int = 0
    verify_workers: int = 1
    match_generation: int = 0

    def __post_init__(self) -> None:
        if self.runs < 2:
            raise InputError("runs must be >= 2 (bias steps need runs that differ)")
        if not (self.duration > 0 and self.sample_interval > 0 and self.amplitude > 0):
            raise InputError("duration, sample_interval and amplitude must be > 0")
        if self.generate_runs < 0:
            raise InputError("generate_runs must be >= 0")
        if self.verify_runs < 0 or self.verify_runs == 1 or self.verify_workers < 1:
            raise InputError("verify_runs must be 0 (skip) or >= 2, verify_workers >= 1")
        if self.chunk_runs is not None and self.chunk_runs < 2:
            raise InputError("chunk_runs must be >= 2 (or None: all runs at once)")


def discretisation_for(device: Device) -> str:
    """'euler' when the recordings come from Euler steps of the sample interval (the ideal chip
    with substeps = 1, or a replayed file whose metadata says so), else 'continuous' (SPICE,
    hardware, oscilloscope captures): the device says (``Device.discretisation``)."""
    return device.discretisation


def _truth_checks(f: Fit, truth) -> dict:
    z = f.zscores(truth)
    crb = f.cramer_rao(truth)
    err = f.value - f.truth_vector(truth)
    return {"z_mean": float(z.mean()), "z_sd": float(z.std()), "z_max_abs": float(np.max(np.abs(z))),
            "n_parameters": int(z.size), "se_over_crb_min": float(np.min(f.se / crb)),
            "se_over_crb_max": float(np.max(f.se / crb)), "rms_error_over_crb": float(np.sqrt(np.mean((err / crb) ** 2)))}


def run_calibration(program: CompiledProgram, device: Device, out: str | Path,
                    setup: CalibrationSetup = CalibrationSetup(), *, digits=None,
                    intended: CompiledProgram | None = None, progress: bool = False) -> dict:
    """Calibrate ``device`` running ``program``; write the report folder ``out`` (module
    docstring) and return the report dict. ``intended``: the program whose realised model the
    chip should implement (default ``program`` itself; pass the original program when
    ``program`` is an already corrected one, e.g. to verify replayed captures of round 2)."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    intended_program = intended
    intended = (intended or program).realised
    if intended.n_units != program.realised.n_units:
        raise InputError(f"the intended program has {intended.n_units} units, the programmed one "
                         f"{program.realised.n_units}")
    n = intended.n_units
    disc = setup.discretisation or discretisation_for(device)
    config = CorrectionConfig(iterations=setup.iterations, mobility=setup.mobility, discretisation=disc,
                              noise_trim=setup.noise_trim, J4_trim_step=setup.J4_trim_step,
                              match_generation=setup.match_generation, match_dt=setup.generate_dt)
    protocol = design.bias_steps(n, setup.runs, setup.amplitude, setup.seed)
    virtual = device.virtual
    truths: list = []
    first: dict[str, Any] = {}
    rep: dict[str, Any] = {"schema": "thermohw.calibration/1", "device": type(device).__name__,
                           "target": program.target.name, "units": n, "setup": asdict(setup),
                           "discretisation": disc, "mobility": setup.mobility}
    if not device.rerunnable:
        final_program, f0, fits, history = _replay_fit(device, program, intended, setup, disc, config, rep, first)
    else:
        final_program, f0, fits, history = _measure_and_correct(device, program, intended, setup, config, protocol,
                                                                out, rep, first, truths, progress)
    rep["history"] = history
    rep["fits"] = {k: {**f.summary(), "estimated_errors": estimated_errors(f, intended)} for k, f in fits.items()}
    if "rec" not in first:      # resumed: the first measurement came from the checkpoint
        first["rec"] = Recording.load(out / "recording_initial.npz")
    elif not device.rerunnable:
        first["rec"].save(out / "recording_initial.npz")

    # generation: intended vs fitted (what a lab knows) and, on virtual chips, the hidden truth
    if setup.generate_runs:
        _generation(rep, intended, fits, truths if virtual else [], setup, digits, out)
    if setup.verify_runs and virtual and device.rerunnable:
        rep["spice_verification"] = _spice_verification(program, final_program, device, out, setup, digits,
                                                        intended_program or program, progress)
    plots.fitted_vs_programmed(intended, fits, out / "plots" / "fitted_vs_programmed.png")
    plots.residual_histogram(standardized_residuals(first["rec"], f0.params), out / "plots" / "residuals.png")
    plots.error_history(history, out / "plots" / "error_history.png",
                        untrimmable=rep["correction"].get("untrimmable"))
    files = final_program.save(out / "corrected")
    rep["corrected_program"] = str(out / "corrected")
    rep["corrected_files"] = len(files)
    rep["seconds"] = time.perf_counter() - t0
    rep["verdicts"] = verdicts(rep)

    rep["provenance"] = provenance(ngspice=bool(rep.get("spice_verification")) or "spice" in type(device).__name__.lower(),
                                   seeds={"calibration": setup.seed, "chip": device.describe().get("chip_seed")})
    write_json(out / "report.json", rep)
    return rep


def _replay_fit(device: ReplayDevice, program: CompiledProgram, intended, setup: CalibrationSetup, disc: str,
                config: CorrectionConfig, rep: dict, first: dict) -> tuple:
    """Replayed traces: one fit and the recommended correction (they cannot be re-measured).
    Returns (corrected program, the fit, {"measured": fit}, history); fills rep and first["rec"]."""
    device.program(program)
    rec = device.run(None)
    first["rec"] = rec
    f0 = fit(rec, mask=intended.mask, mobility=setup.mobility, discretisation=disc,
             mu=intended.mu if setup.mobility == "nominal" else None)
    corr = correction_step([(program, f0)], intended, config)
    rep["correction"] = {"recommended": True, "out_of_range": corr.out_of_range, "untrimmable": corr.untrimmable,
                         "estimated_errors": corr.estimated_errors,
                         "note": "replayed traces cannot be re-measured: program the chip with out/corrected, "
                                 "record again and replay to verify"}
    history = [{"iteration": 0, "estimated_errors": corr.estimated_errors,
                "estimated_true_errors": corr.estimated_true_errors, "codes_changed": corr.codes_changed,
                "out_of_range": len(corr.out_of_range)}]
    rep["recording"] = {"runs": rec.n_runs, "samples": rec.n_samples, "sample_interval": rec.sample_interval,
                        "source": rec.meta.get("source", "")}
    return corr.program, f0, {"measured": f0}, history


def _measure_and_correct(device: Device, program: CompiledProgram, intended, setup: CalibrationSetup,
                         config: CorrectionConfig, protocol, out: Path, rep: dict, first: dict, truths: list,
                         progress: bool) -> tuple:
    """A chip that can be re-measured: the correction loop (correct.calibrate). Returns (corrected
    program, first fit, {"before", "after"} fits, history); fills rep, first["rec"] and, on
    virtual chips, truths (the hidden parameters after each round)."""
    virtual = device.virtual

    def on_iteration(k, q, f, rec) -> None:
        if k == 0 and rec is not None:
            first["rec"] = rec
            rec.save(out / "recording_initial.npz")
        if virtual:
            truths.append(device.truth())

    res = calibrate(device, program, protocol=protocol, duration=setup.duration,
                    sample_interval=setup.sample_interval, seed=setup.seed, config=config,
                    on_iteration=on_iteration, intended=intended, chunk_runs=setup.chunk_runs,
                    progress=progress, checkpoint=out / "measurements")
    f0 = res.initial_fit
    history = res.history + [{"iteration": len(res.history), "estimated_errors":
                              parameter_errors(res.final_fit.params, intended),
                              "estimated_true_errors": {k: v["excess"] for k, v in
                                                        estimated_errors(res.final_fit, intended).items()},
                              "codes_changed": 0, "out_of_range": len(res.out_of_range)}]
    rep["correction"] = {"converged": res.converged, "out_of_range": res.out_of_range,
                         "untrimmable": res.untrimmable, "notes": res.notes}
    if virtual:
        rep["virtual_truth"] = {"errors_before": parameter_errors(truths[0], intended),
                                "errors_after": parameter_errors(truths[-1], intended),
                                "initial_fit_vs_truth": _truth_checks(f0, truths[0]),
                                "final_fit_vs_truth": _truth_checks(res.final_fit, truths[-1])}
        eb, ea = rep["virtual_truth"]["errors_before"]["J"], rep["virtual_truth"]["errors_after"]["J"]
        rep["virtual_truth"]["coupling_error_reduction"] = eb / ea if ea > 0 else math.inf
    return res.program, f0, {"before": f0, "after": res.final_fit}, history


def _generation(rep: dict, intended, fits: dict, truths: list, setup: CalibrationSetup, digits, out: Path) -> None:
    """Generate with the intended model, each fitted model and (virtual chips: ``truths``) the
    hidden chip before and after; rep["generation"] gets their heat (and digit scores), paired
    against the intended model, and the plots are drawn."""
    from scipy import stats

    models = {"intended (realised)": intended}
    for k, f in fits.items():
        models[f"fitted {k}"] = f.to_computer(like=intended)
    if truths:
        models["chip before (hidden truth)"] = truths[0].to_computer(symmetrise=True, n_visible=intended.n_visible,
                                                                     image_shape=intended.image_shape)
        models["chip after (hidden truth)"] = truths[-1].to_computer(symmetrise=True, n_visible=intended.n_visible,
                                                                    image_shape=intended.image_shape)
    gens = {k: generate(c, setup.generate_runs, dt=setup.generate_dt, seed=setup.seed + 17, stratonovich=False)
            for k, c in models.items()}
    # heat in one fixed energy unit, the intended kT (the program's kT x its energy scale, in
    # joules): a chip's own noise level is one of its errors, so "units of its own kT" would
    # move with the error being measured. Every model is driven by the same seed (common
    # random numbers), so the per-run differences from the intended model are paired.
    kT0 = intended.kT_ref
    heat = {k: g.heat / kT0 for k, g in gens.items()}
    ref = heat["intended (realised)"]
    rep["generation"] = {}
    for k, g in gens.items():
        row = {"heat_kT": mean_ci(heat[k]), "heat_own_kT": mean_ci(g.heat_kT), "welch_t_vs_intended": 0.0}
        if k != "intended (realised)":
            row["welch_t_vs_intended"] = float(stats.ttest_ind(heat[k], ref, equal_var=False).statistic)
            d = mean_ci(heat[k] - ref)
            row["paired_heat_difference_kT"] = {**d, "t": d["mean"] / d["sem"] if d["sem"] > 0 else 0.0}
        rep["generation"][k] = row
    rep["generation_note"] = ("heat in units of the intended model's kT (a fixed energy: "
                              f"{kT0:g} model units); heat_own_kT divides by each model's own mean kT; "
                              "all models share the noise seed, so paired differences are given")
    plots.heat_histogram(heat, out / "plots" / "heat_before_after.png",
                         title="heat per generated sample (intended kT): intended vs chip")
    nv = intended.n_visible
    if intended.image_shape and nv:
        plots.side_by_side({k: g.x_final[:8, :nv] for k, g in gens.items()}, intended.image_shape,
                           out / "plots" / "digits_before_after.png")
        if digits is not None and digits.n_pixels == nv:
            _generation_digits(rep, gens, heat, digits, nv, out)


def _generation_digits(rep: dict, gens: dict, heat: dict, digits, nv: int, out: Path) -> None:
    """Digit scores of each model's samples, paired against the intended model's."""
    ref = heat["intended (realised)"]
    per = {}
    held_out = reference_set(digits)
    for k, g in gens.items():
        sc = digit_scores(g.x_final[:, :nv], digits.patterns, digits.labels, reference=held_out)
        per[k] = np.asarray(sc.pop("per_sample")["best_abs_corr"])
        if k != "intended (realised)":
            d = mean_ci(per[k] - per["intended (realised)"])
            sc["paired_difference"] = {**d, "t": d["mean"] / d["sem"] if d["sem"] > 0 else 0.0}
        rep["generation"][k]["digits"] = sc
    paired = {"heat [intended kT]": {k: heat[k] - ref for k in heat if k != "intended (realised)"},
              "mean best |corr|": {k: per[k] - per["intended (realised)"] for k in per
                                   if k != "intended (realised)"}}
    plots.paired_differences(paired, out / "plots" / "paired_differences.png",
                             title="generation vs the intended model (same noise)")


def _spice_verification(program: CompiledProgram, final: CompiledProgram, device, out: Path,
                        setup: CalibrationSetup, digits, reference: CompiledProgram, progress: bool) -> dict:
    """Co-simulate the chip's mismatched netlist in ngspice as programmed and as corrected
    (the generation protocol), each against the intended realised model."""

    errors = device.chip_errors()
    cfg = CosimConfig(runs=setup.verify_runs, workers=setup.verify_workers, seed=setup.seed % 20001)
    res = {}
    for name, prog in (("before", program), ("after", final)):
        chip = chip_under_test(prog, errors, label=f"the virtual chip programmed {name} correction")
        # replace: a new calibration verifies a new chip state; runs of an earlier one must not be kept
        r = run_cosim(reference, cfg, out / f"cosim-{name}", digits=digits, progress=progress, chip=chip,
                      replace=True)
        h, um = r.heat, r.unit_moments
        res[name] = {"heat_kT": h.spice, "ideal_realised_heat_kT": h.ideal_realised,
                     "heat_welch_p": h.p, "heat_agree": h.agree, "unit_moments_agree": um.agree,
                     "mean_rejections": um.mean_rejections, "variance_rejections": um.variance_rejections}
        if r.digits is not None:
            d = r.digits
            res[name]["digits"] = {"spice": d.spice["mean_best_abs_corr"],
                                   "ideal_realised": d.ideal_realised["mean_best_abs_corr"],
                                   "welch_p": d.p, "agree": d.agree}
    return res


def verdicts(rep: dict) -> list[str]:
    """One line per headline result."""
    v = []
    hist = rep.get("history", [])
    if hist:
        e0, e1 = hist[0]["estimated_true_errors"], hist[-1]["estimated_true_errors"]
        what = "first -> last measurement" if len(hist) > 1 else "this measurement"
        v.append(f"estimated RMS errors (fit - intended, measurement noise removed), {what}: " +
                 ", ".join(f"{k} {e0[k]:.3g}" + (f" -> {e1[k]:.3g}" if len(hist) > 1 else "")
                           for k in ("J", "b", "J2", "J4", "kT") if k in e0))
    vt = rep.get("virtual_truth")
    if vt:
        v.append(f"hidden truth: RMS coupling error {vt['errors_before']['J']:.3g} -> {vt['errors_after']['J']:.3g} "
                 f"({vt['coupling_error_reduction']:.1f}x)")
        c = vt["initial_fit_vs_truth"]
        v.append(f"initial fit vs truth: z mean {c['z_mean']:.3f}, sd {c['z_sd']:.3f} over {c['n_parameters']} "
                 f"parameters; se/CRB {c['se_over_crb_min']:.2f}..{c['se_over_crb_max']:.2f}; "
                 f"RMS error/CRB {c['rms_error_over_crb']:.2f}")
    corr = rep.get("correction", {})
    if corr.get("out_of_range"):
        v.append(f"{len(corr['out_of_range'])} element(s) out of their trim range: " +
                 ", ".join(o["element"] for o in corr["out_of_range"][:8]))
    if corr.get("untrimmable"):
        v.append("no trim for: " + ", ".join(f"{k} (RMS {x:.3g})" for k, x in corr["untrimmable"].items()))
    g = rep.get("generation")
    if g:
        v.append("<Q> [intended kT], ± s.e.: " + "; ".join(
            f"{k} {x['heat_kT']['mean']:.4g} ± {x['heat_kT']['sem']:.2g}"
            + (f" (paired difference {x['paired_heat_difference_kT']['mean']:+.3g} ± "
               f"{x['paired_heat_difference_kT']['sem']:.2g})" if "paired_heat_difference_kT" in x else "")
            for k, x in g.items()))
    for k, x in rep.get("spice_verification", {}).items():
        v.append(f"ngspice, chip {k} correction: <Q> {x['heat_kT']['mean']:.4g} ± {x['heat_kT']['sem']:.2g} kT "
                 f"(± s.e., n = {x['heat_kT']['n']} runs) vs "
                 f"intended {x['ideal_realised_heat_kT']['mean']:.4g} ± {x['ideal_realised_heat_kT']['sem']:.2g} "
                 f"(Welch p = {x['heat_welch_p']:.3g}); per-unit moments "
                 f"{'agree' if x['unit_moments_agree'] else 'differ'}"
                 + (f"; digits {x['digits']['spice']:.3f} vs {x['digits']['ideal_realised']:.3f}" if "digits" in x
                    else ""))
    return v
