"""The co-simulation's record: what ``cosim.compare`` finds and ``cosim.run_cosim`` returns.

``CosimReport.to_dict()`` is the JSON of ``cosim.json`` (a user-facing file: its keys, their
order and values are those the dict report had). The parts callers read are small records
(heat, per-unit moments, digits, paired); the parts that are only data for the file (mean_ci
summaries, digit scores, electrical energies, the sweep's settings) stay plain dicts.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import InputError

HEAT_EXPLANATION = (
    "model heat E*Q is the heat the Langevin computer would give its bath; electrical_energy_J is the "
    "hardware's own balance (dissipated_J in its resistors or dampers, stored_delta_J, noise_delivered_J "
    "by the first law), which for an electronic emulation of the bath (RC: housekeeping power "
    "mu C V_s^2 per unit) is larger by orders of magnitude")


def _plain(obj: Any) -> Any:
    """A record's value as JSON data: tuples become lists, nested records their dicts."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _fields_dict(rec) -> dict:
    return {f.name: _plain(getattr(rec, f.name)) for f in fields(rec)}


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InputError(what)


@dataclass(frozen=True)
class HeatComparison:
    """Model heat per run: SPICE (in kT, with ``joules``), its Stratonovich sum, both ideal
    models (mean_ci dicts), and the test of SPICE against the realised ideal model."""

    spice: dict
    spice_stratonovich: dict
    ideal_float: dict
    ideal_realised: dict
    test_spice_vs_realised: dict  # t, p, method
    agree: bool

    def __post_init__(self) -> None:
        _need(isinstance(self.agree, bool), "HeatComparison.agree must be a bool")
        _need("p" in self.test_spice_vs_realised, "HeatComparison.test_spice_vs_realised needs its p value")

    @property
    def p(self) -> float:
        return self.test_spice_vs_realised["p"]

    def to_dict(self) -> dict:
        return _fields_dict(self)


@dataclass(frozen=True)
class UnitMoments:
    """Per-unit mean and variance tests of the SPICE final states against the ideal ones: the
    rejection counts, the count allowed by chance, and the moments themselves (per unit)."""

    units: int
    alpha: float
    mean_rejections: int
    variance_rejections: int
    allowed_by_chance: int
    agree: bool
    mean_test: str
    mean_spice: tuple[float, ...]
    mean_ideal: tuple[float, ...]
    var_spice: tuple[float, ...]
    var_ideal: tuple[float, ...]

    def __post_init__(self) -> None:
        _need(isinstance(self.agree, bool), "UnitMoments.agree must be a bool")
        _need(0 < self.alpha < 1, f"UnitMoments.alpha = {self.alpha!r}; give a level in (0, 1)")
        for name in ("mean_spice", "mean_ideal", "var_spice", "var_ideal"):
            v = getattr(self, name)
            _need(isinstance(v, tuple) and len(v) == self.units,
                  f"UnitMoments.{name} must be a tuple of {self.units} values (one per unit)")

    def to_dict(self) -> dict:
        return _fields_dict(self)


@dataclass(frozen=True)
class DigitsComparison:
    """Digit scores (plain dicts from ``metrics.digit_scores``) of the SPICE and ideal samples,
    and the tests of SPICE against the realised model (best |corr| and margin)."""

    spice: dict
    ideal_float: dict
    ideal_realised: dict
    test_spice_vs_realised: dict
    test_margin_spice_vs_realised: dict
    agree: bool

    def __post_init__(self) -> None:
        _need(isinstance(self.agree, bool), "DigitsComparison.agree must be a bool")

    @property
    def p(self) -> float:
        return self.test_spice_vs_realised["p"]

    def to_dict(self) -> dict:
        return _fields_dict(self)


@dataclass(frozen=True)
class PairedComparison:
    """SPICE against the ideal model driven by the very same noise (``--noise pwl``)."""

    rms_state_difference: float
    state_spread: float
    relative: float
    heat_difference_kT: dict
    note: str

    def __post_init__(self) -> None:
        _need(self.rms_state_difference >= 0 and self.state_spread >= 0,
              "PairedComparison: the rms difference and the spread must be >= 0")

    def to_dict(self) -> dict:
        return _fields_dict(self)


@dataclass(frozen=True)
class CosimSweep:
    """How the sweep of SPICE runs went (resumed, failed, interrupted) and its settings:
    ``meta`` is what the runs file records (config, target, noise interval, netlist hash,
    timeout, chip) - data for the report, read back by ``--resume`` from the runs file."""

    spice_seconds: float
    runs_requested: int
    resumed_runs: int
    new_runs: int
    missing_runs: tuple[int, ...]
    spice_failures: tuple[dict, ...]
    interrupted: bool
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _need(isinstance(self.missing_runs, tuple) and all(isinstance(i, int) for i in self.missing_runs),
              "CosimSweep.missing_runs must be a tuple of run indices")
        _need(isinstance(self.spice_failures, tuple), "CosimSweep.spice_failures must be a tuple of dicts")
        _need(min(self.resumed_runs, self.new_runs) >= 0 and self.runs_requested >= 2,
              "CosimSweep: run counts must be >= 0 (and runs_requested >= 2)")

    @property
    def complete(self) -> bool:
        return not self.missing_runs


@dataclass(frozen=True)
class CosimReport:
    """A co-simulation: SPICE runs against the float and realised ideal models.

    spice_runs / ideal_runs : runs compared. energy_per_model_unit_J, kT_model, energy_scale :
    the units of heat (``energy_scale``: EnergyScale.to_dict() or None). heat, unit_moments,
    digits (image programs with their digits, else None), paired (``--noise pwl``, else None) :
    the comparisons. electrical_energy_J : the hardware's own energy balance (mean_ci per
    quantity). chip : the circuit SPICE ran when not the program's (describe()), else None.
    sweep : how the sweep went (``run_cosim``; None from ``compare`` alone). provenance : as
    every report. verdicts : one line per headline result (derived, so never out of step)."""

    spice_runs: int
    ideal_runs: int
    energy_per_model_unit_J: float
    kT_model: float
    energy_scale: dict | None
    heat: HeatComparison
    electrical_energy_J: dict
    unit_moments: UnitMoments
    digits: DigitsComparison | None = None
    paired: PairedComparison | None = None
    chip: dict | None = None
    sweep: CosimSweep | None = None
    provenance: dict | None = None

    def __post_init__(self) -> None:
        _need(isinstance(self.spice_runs, int) and self.spice_runs >= 2,
              f"CosimReport.spice_runs = {self.spice_runs!r}; a comparison needs at least 2 SPICE runs")
        _need(isinstance(self.ideal_runs, int) and self.ideal_runs >= 2,
              f"CosimReport.ideal_runs = {self.ideal_runs!r}; give at least 2 ideal runs")
        _need(self.kT_model > 0 and not math.isinf(self.kT_model), "CosimReport.kT_model must be > 0 and finite")
        for name, kind in (("heat", HeatComparison), ("unit_moments", UnitMoments)):
            _need(isinstance(getattr(self, name), kind), f"CosimReport.{name} must be a {kind.__name__}")
        for name, kind in (("digits", DigitsComparison), ("paired", PairedComparison), ("sweep", CosimSweep)):
            v = getattr(self, name)
            _need(v is None or isinstance(v, kind), f"CosimReport.{name} must be a {kind.__name__} or None")
        _need(self.chip is None or (isinstance(self.chip, dict) and "label" in self.chip),
              "CosimReport.chip must be None or a chip description with a 'label'")
        s = self.sweep
        if s is not None:
            _need(s.resumed_runs + s.new_runs == self.spice_runs <= s.runs_requested,
                  f"CosimReport: {self.spice_runs} runs compared, but the sweep resumed {s.resumed_runs} and ran "
                  f"{s.new_runs} new of {s.runs_requested}")
            # the runs file records the chip too; one report cannot describe two chips
            _need(s.meta.get("chip") == self.chip, "CosimReport: the sweep's chip differs from the compared one")

    def with_(self, **changes: Any) -> "CosimReport":
        return dataclasses.replace(self, **changes)

    @property
    def verdicts(self) -> tuple[str, ...]:
        return verdict_lines(self)

    def to_dict(self) -> dict:
        """The JSON of cosim.json (its key order included)."""
        d: dict[str, Any] = {k: _plain(getattr(self, k)) for k in
                             ("spice_runs", "ideal_runs", "energy_per_model_unit_J", "kT_model", "energy_scale",
                              "heat", "electrical_energy_J")}
        d["heat_explanation"] = HEAT_EXPLANATION
        d["unit_moments"] = self.unit_moments.to_dict()
        for k in ("digits", "paired", "chip"):
            if getattr(self, k) is not None:
                d[k] = _plain(getattr(self, k))
        d["verdicts"] = list(self.verdicts)
        s = self.sweep
        if s is not None:
            d.update(spice_seconds=s.spice_seconds, runs_requested=s.runs_requested, resumed_runs=s.resumed_runs,
                     new_runs=s.new_runs, missing_runs=list(s.missing_runs), complete=s.complete,
                     spice_failures=_plain(s.spice_failures), interrupted=s.interrupted)
            d.update({k: v for k, v in s.meta.items() if k != "chip"})  # the chip is above already
        if self.provenance is not None:
            d["provenance"] = self.provenance
        return d


def verdict_lines(rep: CosimReport) -> tuple[str, ...]:
    """One line per headline result of ``rep``."""
    v = []
    if rep.chip:
        v.append(f"SPICE ran: {rep.chip['label']} (compared with the program's realised ideal model)")
    um = rep.unit_moments
    v.append(f"per-unit means/variances: {'AGREE' if um.agree else 'DIFFER'} "
             f"({um.mean_rejections} mean and {um.variance_rejections} variance rejections of {um.units} "
             f"units at alpha = {um.alpha}; <= {um.allowed_by_chance} expected by chance; {um.mean_test} / Brown-Forsythe)")
    h = rep.heat
    v.append(f"<Q>: {'AGREE' if h.agree else 'DIFFER'} (SPICE {h.spice['mean']:.4g} ± {h.spice['sem']:.2g} kT "
             f"vs realised ideal {h.ideal_realised['mean']:.4g} ± {h.ideal_realised['sem']:.2g} kT, ± s.e., "
             f"n = {h.spice['n']} and {h.ideal_realised['n']}; "
             f"{h.test_spice_vs_realised.get('method', 'Welch t')} p = {h.p:.3g})")
    if rep.digits is not None:
        d = rep.digits
        v.append(f"digit quality: {'AGREE' if d.agree else 'DIFFER'} (mean best |corr| SPICE "
                 f"{d.spice['mean_best_abs_corr']:.3f} vs realised ideal {d.ideal_realised['mean_best_abs_corr']:.3f}, "
                 f"{d.test_spice_vs_realised.get('method', 'Welch t')} p = {d.p:.3g}; margin {d.spice['mean_margin']:.3f} vs "
                 f"{d.ideal_realised['mean_margin']:.3f}, p = {d.test_margin_spice_vs_realised['p']:.3g})")
    if rep.paired is not None:
        pr = rep.paired
        v.append(f"paired (same noise): rms state difference {pr.rms_state_difference:.3g} "
                 f"({100 * pr.relative:.1f} % of the spread)")
    return tuple(v)
