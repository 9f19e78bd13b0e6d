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

import dataclasses
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
from .report_record import CalibrationReport, verdicts  # noqa: F401 (verdicts: importable from here as before)
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


@dataclass(frozen=True)
class _Measured:
    """What measuring (and, where the chip can be re-measured, correcting) found: the corrected
    program, the first fit and its recording, every fit by name, one history row per
    measurement, the correction's summary, and the hidden truths after each round (virtual
    chips) with their comparison (``virtual_truth``) or the replayed recording's size."""

    program: CompiledProgram
    first_fit: Fit
    first_rec: Recording | None
    fits: dict
    history: list
    correction: dict
    truths: list
    virtual_truth: dict | None = None
    recording: dict | None = None


def run_calibration(program: CompiledProgram, device: Device, out: str | Path,
                    setup: CalibrationSetup = CalibrationSetup(), *, digits=None,
                    intended: CompiledProgram | None = None, progress: bool = False) -> CalibrationReport:
    """Calibrate ``device`` running ``program``; write the report folder ``out`` (module
    docstring) and return the report record. ``intended``: the program whose realised model the
    chip should implement (default ``program`` itself; pass the original program when
    ``program`` is an already corrected one, e.g. to verify replayed captures of round 2).

    This is the edge that owns ``out``: measuring writes the recordings and checkpoints, the
    statistics (:func:`generation`) are computed apart, and the figures, the corrected program
    and report.json are written here."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reference = intended or program
    intended = reference.realised
    if intended.n_units != program.realised.n_units:
        raise InputError(f"the intended program has {intended.n_units} units, the programmed one "
                         f"{program.realised.n_units}")
    disc = setup.discretisation or discretisation_for(device)
    m = _measure(device, program, intended, setup, disc, out, progress)
    fits = {k: {**f.summary(), "estimated_errors": estimated_errors(f, intended)} for k, f in m.fits.items()}
    # generation: intended vs fitted (what a lab knows) and, on virtual chips, the hidden truth
    gen = generation(intended, m.fits, m.truths if device.virtual else [], setup, digits) \
        if setup.generate_runs else None
    spice = None
    if setup.verify_runs and device.virtual and device.rerunnable:
        spice = _spice_verification(program, m.program, device, out, setup, digits, reference, progress)
    if gen is not None:
        _generation_plots(gen, intended, out / "plots")
    plots.fitted_vs_programmed(intended, m.fits, out / "plots" / "fitted_vs_programmed.png")
    plots.residual_histogram(standardized_residuals(m.first_rec, m.first_fit.params), out / "plots" / "residuals.png")
    plots.error_history(m.history, out / "plots" / "error_history.png", untrimmable=m.correction.get("untrimmable"))
    files = m.program.save(out / "corrected")
    rep = CalibrationReport(
        device=type(device).__name__, target=program.target.name, units=intended.n_units, setup=asdict(setup),
        discretisation=disc, correction=m.correction, history=tuple(m.history), fits=fits,
        corrected_program=str(out / "corrected"), corrected_files=len(files), seconds=time.perf_counter() - t0,
        virtual_truth=m.virtual_truth, recording=m.recording, generation=gen.rows if gen else None,
        generation_note=gen.note if gen else None, spice_verification=spice)
    rep = rep.with_(provenance=provenance(ngspice=bool(spice) or "spice" in type(device).__name__.lower(),
                                          seeds={"calibration": setup.seed, "chip": device.describe().get("chip_seed")}))
    write_json(out / "report.json", rep.to_dict())
    return rep


def _measure(device: Device, program: CompiledProgram, intended, setup: CalibrationSetup, disc: str, out: Path,
             progress: bool) -> _Measured:
    """Measure (replay: fit once; otherwise the correction loop). Writes out/recording_initial.npz
    (the first measurement) and the loop's checkpoints in out/measurements."""
    config = CorrectionConfig(iterations=setup.iterations, mobility=setup.mobility, discretisation=disc,
                              noise_trim=setup.noise_trim, J4_trim_step=setup.J4_trim_step,
                              match_generation=setup.match_generation, match_dt=setup.generate_dt)
    if not device.rerunnable:
        m = _replay_fit(device, program, intended, setup, disc, config)
        m.first_rec.save(out / "recording_initial.npz")
        return m
    m = _measure_and_correct(device, program, intended, setup, config, out, progress)
    if m.first_rec is None:     # resumed: the first measurement came from the checkpoint
        m = dataclasses.replace(m, first_rec=Recording.load(out / "recording_initial.npz"))
    return m


def _replay_fit(device: ReplayDevice, program: CompiledProgram, intended, setup: CalibrationSetup, disc: str,
                config: CorrectionConfig) -> _Measured:
    """Replayed traces: one fit and the recommended correction (they cannot be re-measured)."""
    device.program(program)
    rec = device.run(None)
    f0 = fit(rec, mask=intended.mask, mobility=setup.mobility, discretisation=disc,
             mu=intended.mu if setup.mobility == "nominal" else None)
    corr = correction_step([(program, f0)], intended, config)
    correction = {"recommended": True, "out_of_range": corr.out_of_range, "untrimmable": corr.untrimmable,
                  "estimated_errors": corr.estimated_errors,
                  "note": "replayed traces cannot be re-measured: program the chip with out/corrected, "
                          "record again and replay to verify"}
    history = [{"iteration": 0, "estimated_errors": corr.estimated_errors,
                "estimated_true_errors": corr.estimated_true_errors, "codes_changed": corr.codes_changed,
                "out_of_range": len(corr.out_of_range)}]
    recording = {"runs": rec.n_runs, "samples": rec.n_samples, "sample_interval": rec.sample_interval,
                 "source": rec.meta.get("source", "")}
    return _Measured(corr.program, f0, rec, {"measured": f0}, history, correction, [], recording=recording)


def _measure_and_correct(device: Device, program: CompiledProgram, intended, setup: CalibrationSetup,
                         config: CorrectionConfig, out: Path, progress: bool) -> _Measured:
    """A chip that can be re-measured: the correction loop (correct.calibrate), with the
    {"before", "after"} fits and, on virtual chips, the hidden parameters after each round.
    ``first_rec`` is None when the first measurement came from a checkpoint (resumed)."""
    virtual = device.virtual
    first: dict[str, Any] = {}
    truths: list = []

    def on_iteration(k, q, f, rec) -> None:
        if k == 0 and rec is not None:
            first["rec"] = rec
            rec.save(out / "recording_initial.npz")
        if virtual:
            truths.append(device.truth())

    res = calibrate(device, program, protocol=design.bias_steps(intended.n_units, setup.runs, setup.amplitude,
                                                                setup.seed),
                    duration=setup.duration, sample_interval=setup.sample_interval, seed=setup.seed, config=config,
                    on_iteration=on_iteration, intended=intended, chunk_runs=setup.chunk_runs,
                    progress=progress, checkpoint=out / "measurements")
    f0 = res.initial_fit
    history = res.history + [{"iteration": len(res.history), "estimated_errors":
                              parameter_errors(res.final_fit.params, intended),
                              "estimated_true_errors": {k: v["excess"] for k, v in
                                                        estimated_errors(res.final_fit, intended).items()},
                              "codes_changed": 0, "out_of_range": len(res.out_of_range)}]
    correction = {"converged": res.converged, "out_of_range": res.out_of_range,
                  "untrimmable": res.untrimmable, "notes": res.notes}
    vt = None
    if virtual:
        vt = {"errors_before": parameter_errors(truths[0], intended),
              "errors_after": parameter_errors(truths[-1], intended),
              "initial_fit_vs_truth": _truth_checks(f0, truths[0]),
              "final_fit_vs_truth": _truth_checks(res.final_fit, truths[-1])}
        eb, ea = vt["errors_before"]["J"], vt["errors_after"]["J"]
        vt["coupling_error_reduction"] = eb / ea if ea > 0 else math.inf
    return _Measured(res.program, f0, first.get("rec"), {"before": f0, "after": res.final_fit}, history,
                     correction, truths, virtual_truth=vt)


@dataclass(frozen=True)
class Generation:
    """The before/after generation comparison: ``rows`` (report.json's "generation", one row per
    model), ``note``, and what its figures show - per-run heat in the intended kT, the first
    samples' visible states (image models) and the paired differences (with digits)."""

    rows: dict
    note: str
    heat: dict
    images: dict | None = None
    paired: dict | None = None


def generation(intended, fits: dict, truths: list, setup: CalibrationSetup, digits) -> Generation:
    """Generate with the intended model, each fitted model and (virtual chips: ``truths``) the
    hidden chip before and after: their heat (and digit scores), paired against the intended
    model. Draws nothing (:func:`_generation_plots` does)."""
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
    rows = {}
    for k, g in gens.items():
        row = {"heat_kT": mean_ci(heat[k]), "heat_own_kT": mean_ci(g.heat_kT), "welch_t_vs_intended": 0.0}
        if k != "intended (realised)":
            row["welch_t_vs_intended"] = float(stats.ttest_ind(heat[k], ref, equal_var=False).statistic)
            d = mean_ci(heat[k] - ref)
            row["paired_heat_difference_kT"] = {**d, "t": d["mean"] / d["sem"] if d["sem"] > 0 else 0.0}
        rows[k] = row
    note = ("heat in units of the intended model's kT (a fixed energy: "
            f"{kT0:g} model units); heat_own_kT divides by each model's own mean kT; "
            "all models share the noise seed, so paired differences are given")
    nv = intended.n_visible
    images = paired = None
    if intended.image_shape and nv:
        images = {k: g.x_final[:8, :nv] for k, g in gens.items()}
        if digits is not None and digits.n_pixels == nv:
            paired = _generation_digits(rows, gens, heat, digits, nv)
    return Generation(rows, note, heat, images, paired)


def _generation_digits(rows: dict, gens: dict, heat: dict, digits, nv: int) -> dict:
    """Digit scores of each model's samples (into ``rows``), paired against the intended model's;
    returns the paired differences (heat and best |corr|) for the figure."""
    ref = heat["intended (realised)"]
    per = {}
    held_out = reference_set(digits)
    for k, g in gens.items():
        sc = digit_scores(g.x_final[:, :nv], digits.patterns, digits.labels, reference=held_out)
        per[k] = np.asarray(sc.pop("per_sample")["best_abs_corr"])
        if k != "intended (realised)":
            d = mean_ci(per[k] - per["intended (realised)"])
            sc["paired_difference"] = {**d, "t": d["mean"] / d["sem"] if d["sem"] > 0 else 0.0}
        rows[k]["digits"] = sc
    return {"heat [intended kT]": {k: heat[k] - ref for k in heat if k != "intended (realised)"},
            "mean best |corr|": {k: per[k] - per["intended (realised)"] for k in per
                                 if k != "intended (realised)"}}


def _generation_plots(g: Generation, intended, pdir: Path) -> None:
    plots.heat_histogram(g.heat, pdir / "heat_before_after.png",
                         title="heat per generated sample (intended kT): intended vs chip")
    if g.images is not None:
        plots.side_by_side(g.images, intended.image_shape, pdir / "digits_before_after.png")
    if g.paired is not None:
        plots.paired_differences(g.paired, pdir / "paired_differences.png",
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
