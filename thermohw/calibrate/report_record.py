"""The calibration's record: what ``calibrate.report.run_calibration`` returns.

``CalibrationReport.to_dict()`` is the JSON of report.json (a user-facing file: its keys, their
order and values are those the dict report had). The fits, corrections and generation tables
are plain dicts - data for the file, each described in calibrate/report.py's docstring.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

SCHEMA = "thermohw.calibration/1"
DISCRETISATIONS = ("euler", "continuous")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InputError(what)


@dataclass(frozen=True)
class CalibrationReport:
    """A calibration of one chip.

    device : the Device class name. target, units : the program's. setup : the
    CalibrationSetup (as a dict). discretisation : the likelihood's ('euler' or 'continuous').
    correction : what the last correction did (replay: the recommended one). virtual_truth :
    the hidden errors before and after (virtual chips that re-measure), else None. recording :
    the replayed recording's size (replay devices), else None. history : one row per
    measurement. fits : each fit's summary and estimated errors. generation, generation_note :
    the before/after generation comparison (None when skipped). spice_verification : the
    ngspice co-simulations before and after (virtual chips with verify_runs), else None.
    corrected_program, corrected_files : where the corrected program was written. seconds :
    wall time. provenance : as every report. verdicts : one line per headline result (derived,
    so never out of step)."""

    device: str
    target: str
    units: int
    setup: dict
    discretisation: str
    correction: dict
    history: tuple[dict, ...]
    fits: dict
    corrected_program: str
    corrected_files: int
    seconds: float
    virtual_truth: dict | None = None
    recording: dict | None = None
    generation: dict | None = None
    generation_note: str | None = None
    spice_verification: dict | None = None
    provenance: dict | None = None

    def __post_init__(self) -> None:
        _need(isinstance(self.device, str) and self.device != "", "CalibrationReport.device must name the device")
        _need(isinstance(self.units, int) and self.units >= 1,
              f"CalibrationReport.units = {self.units!r}; a chip has at least 1 unit")
        _need(isinstance(self.setup, dict) and "mobility" in self.setup and "seed" in self.setup,
              "CalibrationReport.setup must be the CalibrationSetup as a dict (dataclasses.asdict)")
        _need(self.discretisation in DISCRETISATIONS,
              f"CalibrationReport.discretisation = {self.discretisation!r}; use 'euler' or 'continuous'")
        _need(isinstance(self.correction, dict), "CalibrationReport.correction must be a dict")
        _need(isinstance(self.history, tuple) and len(self.history) >= 1
              and all(isinstance(h, dict) and "estimated_true_errors" in h for h in self.history),
              "CalibrationReport.history must be a tuple of one row (dict with estimated_true_errors) per measurement")
        _need(isinstance(self.fits, dict) and len(self.fits) >= 1, "CalibrationReport.fits must hold at least one fit")
        # a replayed recording cannot be re-measured, so it has no hidden truth after a correction
        _need(self.virtual_truth is None or self.recording is None,
              "CalibrationReport: virtual_truth (a re-measured virtual chip) and recording (a replay) exclude each other")
        _need((self.generation is None) == (self.generation_note is None),
              "CalibrationReport: give generation and generation_note together (or neither)")
        _need(isinstance(self.corrected_files, int) and self.corrected_files >= 0,
              "CalibrationReport.corrected_files must be a count >= 0")
        _need(self.seconds >= 0, "CalibrationReport.seconds must be >= 0")

    @property
    def mobility(self) -> str:
        return self.setup["mobility"]

    def with_(self, **changes: Any) -> "CalibrationReport":
        return dataclasses.replace(self, **changes)

    def _body(self) -> dict:
        """report.json up to the verdicts (what they are derived from)."""
        d: dict[str, Any] = {"schema": SCHEMA, "device": self.device, "target": self.target, "units": self.units,
                             "setup": self.setup, "discretisation": self.discretisation, "mobility": self.mobility,
                             "correction": self.correction}
        for k in ("virtual_truth", "recording"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d["history"] = list(self.history)
        d["fits"] = self.fits
        if self.generation is not None:
            d.update(generation=self.generation, generation_note=self.generation_note)
        if self.spice_verification is not None:
            d["spice_verification"] = self.spice_verification
        d.update(corrected_program=self.corrected_program, corrected_files=self.corrected_files,
                 seconds=self.seconds)
        return d

    @property
    def verdicts(self) -> tuple[str, ...]:
        return tuple(verdicts(self._body()))

    def to_dict(self) -> dict:
        """The JSON of report.json (its key order included)."""
        d = self._body()
        d["verdicts"] = verdicts(d)
        if self.provenance is not None:
            d["provenance"] = self.provenance
        return d


def verdicts(rep: dict) -> list[str]:
    """One line per headline result of a report in its dict form (``CalibrationReport.to_dict()``)."""
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
