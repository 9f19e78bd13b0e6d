"""Correction: pre-distort the compiled codes so that the chip implements the intended model.

Loop (:func:`calibrate`): program -> record -> fit -> correct -> program -> ... -> verify.

Element models. Every trimmable element is described by a per-element law, fitted from
*all* measurements so far (pooled, inverse-variance weighted, so the estimate sharpens with
every iteration instead of chasing the last fit's noise), and the estimated deviations of a
class (gamma - 1 or delta for all its elements) are shrunk together by the positive-part
James-Stein factor max(0, 1 - (p - 2) / sum z^2) (z = deviation / standard error): a mismatch
resolved by many standard errors is corrected fully, one lost in the measurement noise hardly
at all - a short, noisy measurement cannot make a well-matched chip worse:

    coupling pair (i, j)   implemented J_ij = gamma_ij * programmed J_ij   (transconductor gain)
    on-site J2_i           implemented J2_i = gamma_i  * programmed J2_i   (R tolerance, trim gain)
    bias b_i               implemented b_i  = programmed b_i + delta_i     (offset currents)
    noise level kT_i       implemented kT_i = gamma_i  * programmed kT_i   (generator amplitude)
    cubic J4_i             implemented J4_i = gamma_i  * programmed J4_i   (cubic element's gain)
    mobility mu_i          implemented mu_i = gamma_i  * programmed mu_i   (capacitor: time constant)

and the next program is (intended - delta) / gamma, quantised on the target's grids: coupling
and bias codes (``Quant`` of the compiled full scale), the J2 trim (``target.diagonal``), and -
if the noise amplitude is adjustable (``noise_trim``) - kT per unit (continuous, or on a
relative grid ``noise_trim_step``). Requests outside a range are clipped and reported element
by element (``out_of_range``). What cannot be trimmed is reported, not hidden: J4 (no cubic
trim), the mobility mu (capacitor mismatch sets each unit's speed; it does not change the
stationary distribution), and, on non-reciprocal chips, the antisymmetric part of the
couplings (one code per pair sets only the symmetric part). Targets with ``cubic`` and
``mobility`` trims (``target.RelativeTrim``: a gain DAC of the cubic element, a capacitor
bank) have J4 and mu corrected like the others, on their relative grids.

Parameters are corrected one by one, but what matters is what the chip computes. With
``match_generation`` the loop predicts the chip each correction produces (the pooled element
laws, untrimmable classes included) and judges it by paired generation against the intended
model (same noise: heat differences far more precise than either heat); when J4 or mu has
no trim, the J2 trims compensate for them (:func:`_match_generation`) instead of being set
parameter by parameter, which would undo the cancellation between errors.

The comparison is made in the gauge of the fit: ``mobility='bias'`` (default; needs bias-step
recordings) measures the parameters in the program's energy units. The intended model is the
uncorrected program's realised model (what the compiler promised).
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from ..backends import calibratable_kinds
from ..compile import CompiledProgram, lower
from ..computer import Computer
from ..errors import InputError
from ..langevin import Protocol, generate
from .devices.base import Device, protocol_bias
from .fit import DISCRETISATIONS, MOBILITIES, Fit, Statistics, fit
from .params import ChipParameters


@dataclass(frozen=True)
class CorrectionConfig:
    """iterations : correction steps (each followed by a re-measurement); the loop stops earlier
        when no code changes. mobility / discretisation : passed to :func:`fit`.
    noise_trim : whether the injected-noise amplitude can be set per unit. noise_trim_step :
        its relative resolution (None: continuous). J4_trim_step : relative resolution of a
        continuous cubic-gain trim on a target whose YAML does not describe one (a target's
        ``cubic`` trim takes precedence; neither: J4 is reported as untrimmable). trim_couplings
        / trim_biases / trim_J2 / trim_J4 / trim_mu : which element classes may be changed (J4
        and mu only where the target has ``cubic`` / ``mobility`` trims; mu needs
        ``mobility='bias'``, the gauge in which it is measured)."""

    iterations: int = 3
    mobility: str = "bias"
    discretisation: str = "euler"
    noise_trim: bool = True
    noise_trim_step: float | None = None
    J4_trim_step: float | None = None
    trim_couplings: bool = True
    trim_biases: bool = True
    trim_J2: bool = True
    trim_J4: bool = True
    trim_mu: bool = True
    match_generation: int = 0
    match_dt: float = 1e-3

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InputError("iterations must be >= 1")
        if self.mobility not in MOBILITIES:
            raise InputError(f"mobility = {self.mobility!r}; use one of {MOBILITIES}")
        if self.discretisation not in DISCRETISATIONS:
            raise InputError(f"discretisation = {self.discretisation!r}; use one of {DISCRETISATIONS}")
        if self.match_generation < 0 or self.match_generation == 1:
            raise InputError("match_generation must be 0 (off) or >= 2 paired generation runs")
        if not 0 < self.match_dt <= 0.05:
            raise InputError(f"match_dt = {self.match_dt}; use a generation step in (0, 0.05] model time units")
        for name in ("noise_trim_step", "J4_trim_step"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 0.5:
                raise InputError(f"{name} must be in (0, 0.5) (a relative step)")


# ---------------------------------------------------------------------------------------------
# errors against the intended model
# ---------------------------------------------------------------------------------------------
def _pairs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.nonzero(np.triu(mask, 1))


def parameter_errors(chip: ChipParameters, intended: Computer) -> dict[str, float]:
    """RMS differences chip - intended per class (model units): J (symmetric part, over the
    intended couplings), J_antisymmetric, b, J2, J4, kT, mu."""
    ii, jj = _pairs(intended.mask)
    Js = chip.J
    rms = lambda d: float(np.sqrt(np.mean(np.square(d)))) if np.size(d) else 0.0  # noqa: E731
    return {"J": rms(Js[ii, jj] - intended.J[ii, jj]),
            "J_antisymmetric": rms(0.5 * (chip.K - chip.K.T)[ii, jj]),
            "b": rms(chip.b - intended.b), "J2": rms(chip.J2 - intended.J2), "J4": rms(chip.J4 - intended.J4),
            "kT": rms(chip.kT - intended.kT), "mu": rms(chip.mu - intended.mu)}


def estimated_errors(f: Fit, intended: Computer) -> dict[str, dict[str, float]]:
    """From a fit alone: per class (J, b, J2, J4, kT, mu, J_antisymmetric) the RMS of
    (fit - intended) ('raw', which includes the measurement noise), the RMS standard error, and
    the noise-debiased estimate of the true RMS error, sqrt(max(0, raw^2 - mean se^2))
    ('excess')."""
    a = _fit_arrays(f)
    ii, jj = _pairs(intended.mask)
    out = {}
    for k in ("J", "b", "J2", "J4", "kT", "mu"):
        v, se = a[k]
        ref = getattr(intended, k)
        if k == "J":
            v, se, ref = v[ii, jj], se[ii, jj], ref[ii, jj]
        if np.size(v) == 0:
            continue
        raw2 = float(np.mean((v - ref) ** 2))
        out[k] = {"raw": raw2 ** 0.5, "excess": max(0.0, raw2 - float(np.mean(se ** 2))) ** 0.5,
                  "se_rms": float(np.mean(se ** 2)) ** 0.5}
    if ii.size:   # antisymmetric part of the directed rows: (K_ij - K_ji) / 2, se sqrt(se_ij^2 + se_ji^2) / 2
        K, sK = f.estimate["K"], f.stderr["K"]
        d = 0.5 * (K - K.T)[ii, jj]
        s2 = 0.25 * (sK ** 2 + sK.T ** 2)[ii, jj]
        raw2 = float(np.mean(d * d))
        out["J_antisymmetric"] = {"raw": raw2 ** 0.5, "excess": max(0.0, raw2 - float(np.mean(s2))) ** 0.5,
                                  "se_rms": float(np.mean(s2)) ** 0.5}
    return out


def _fit_arrays(f: Fit) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    e, s = f.estimate, f.stderr
    return {"J": (f.J, f.J_se), "b": (e["b"], s["b"]), "J2": (e["J2"], s["J2"]), "kT": (e["kT"], s["kT"]),
            "J4": (e["J4"], s["J4"]), "mu": (e["mu"], s["mu"])}


# ---------------------------------------------------------------------------------------------
# one correction step
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Correction:
    """A pre-distorted program and what it could not do.

    program : the corrected CompiledProgram (codes, programmed, realised, artefact).
    requested : the unquantised values asked for (J (N, N), b, J2, kT).
    out_of_range : one dict per clipped element: element, requested, limit.
    estimated_errors : RMS (fit - intended) per class before this correction (includes the
        measurement noise). estimated_true_errors : the same, noise-debiased (``estimated_errors``
        function: sqrt(max(0, RMS^2 - mean se^2))).
    untrimmable : estimated RMS errors of classes with no trim (J4, mu, [kT], antisymmetric J).
    generation_match : with ``CorrectionConfig.match_generation``, the predicted paired heat
        difference from the intended model of each candidate J2 setting and which was chosen
        (:func:`_match_generation`); empty otherwise.
    codes_changed : codes that differ from the previous program, plus continuous trims (kT,
        J4) that moved by more than the relative standard error of their estimate.
    """

    program: CompiledProgram
    requested: dict
    out_of_range: list
    estimated_errors: dict
    untrimmable: dict
    codes_changed: int
    estimated_true_errors: dict = field(default_factory=dict)
    generation_match: dict = field(default_factory=dict)


def _shrink(dev: np.ndarray, se: np.ndarray) -> np.ndarray:
    """James-Stein factor for a class of p estimated deviations with standard errors se:
    max(0, 1 - (p - 2) / sum (dev/se)^2) for p >= 3 (per element max(0, 1 - (se/dev)^2) for
    fewer). Near 1 when the class's mismatch is many standard errors, near 0 when it is not
    resolved - so an under-powered measurement leaves the chip (almost) alone instead of
    programming its own noise into it. Returns the factor broadcast to dev's shape."""
    dev = np.asarray(dev, dtype=np.float64)
    se = np.broadcast_to(np.asarray(se, dtype=np.float64), dev.shape)
    ok = np.isfinite(se) & (se > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = np.where(ok, (dev / se) ** 2, 0.0)
    p = int(np.count_nonzero(ok))
    if p >= 3:
        tot = float(np.sum(z2))
        return np.full(dev.shape, max(0.0, 1.0 - (p - 2) / tot) if tot > 0 else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z2 > 0, np.clip(1.0 - 1.0 / z2, 0.0, 1.0), 0.0)


def _pooled_gain(P: np.ndarray, M: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Per element, weighted least squares through the origin over the measurements so far,
    M_k = gamma P_k (+ noise S_k); the deviation gamma - 1 is shrunk by :func:`_shrink`."""
    w = 1.0 / np.maximum(S, 1e-300) ** 2
    num = np.sum(w * P * M, axis=0)
    den = np.sum(w * P * P, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(den > 0, num / den, 1.0)
        se = np.where(den > 0, 1.0 / np.sqrt(den), np.inf)
    return 1.0 + (g - 1.0) * _shrink(g - 1.0, se)


def _pooled_offset(P: np.ndarray, M: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Per element, the weighted mean of M_k - P_k (an additive offset), shrunk."""
    w = 1.0 / np.maximum(S, 1e-300) ** 2
    d = np.sum(w * (M - P), axis=0) / np.sum(w, axis=0)
    return d * _shrink(d, 1.0 / np.sqrt(np.sum(w, axis=0)))


def _stacked(hist: list, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(programmed P, measured M, standard errors S) of class ``key`` over the measurements so
    far, stacked along the first axis: what the pooled element laws are fitted to."""
    return (np.stack([getattr(q, key) for q, _ in hist]), np.stack([a[key][0] for _, a in hist]),
            np.stack([a[key][1] for _, a in hist]))


class _Step:
    """The state one correction step builds up, class by class: the pooled measurements, the
    new codes, what was requested, clipped and left untrimmed, and the new element values."""

    def __init__(self, history: list[tuple[CompiledProgram, Fit]], intended: Computer,
                 config: CorrectionConfig) -> None:
        self.p = history[-1][0]
        self.prog = self.p.programmed
        self.intended, self.config = intended, config
        self.ii, self.jj = _pairs(intended.mask)
        self.hist = [(q.programmed, _fit_arrays(f)) for q, f in history]
        self.last = self.hist[-1][1]
        self.errors = parameter_errors(history[-1][1].params, intended)
        self.excess = {k: v["excess"] for k, v in estimated_errors(history[-1][1], intended).items()}
        self.out: list[dict] = []
        self.requested: dict[str, Any] = {}
        self.codes = {k: np.array(v, copy=True) for k, v in self.p.codes.items()}
        self.untrim: dict[str, float] = {"J_antisymmetric": self.excess.get("J_antisymmetric", 0.0)}
        self.new = {k: getattr(self.prog, k).copy() for k in ("J", "b", "J2", "J4", "kT", "mu")}
        self.J4_continuous = False

    def stack(self, key: str):
        return _stacked(self.hist, key)

    def clip_report(self, name: str, req: np.ndarray, lo: float, hi: float, idx) -> None:
        for k in np.nonzero((req < lo) | (req > hi))[0]:
            self.out.append({"element": name.format(*idx(k)), "requested": float(req[k]),
                             "limit": float(lo if req[k] < lo else hi)})


def _correct_couplings(st: _Step) -> None:
    """One code per pair: the symmetric part, through the pooled gain of each pair."""
    ii, jj, n = st.ii, st.jj, st.prog.n_units
    P, M, S = st.stack("J")
    gam = _pooled_gain(P[:, ii, jj], M[:, ii, jj], S[:, ii, jj])
    prog_ok = np.abs(P[-1, ii, jj]) > 0
    gam = np.where(prog_ok & (gam > 0.2), gam, 1.0)   # a zero or sign-flipped element: do not invert
    req = st.intended.J[ii, jj] / gam
    st.requested["J"] = req
    qj = dataclasses.replace(st.p.coupling_quant, rounding="nearest")
    st.clip_report("J[{},{}]", req, qj.min, qj.max, lambda k: (ii[k], jj[k]))
    cj = qj.encode(req)
    cmat = np.zeros((n, n), dtype=np.int64)
    cmat[ii, jj] = cj
    cmat = cmat + cmat.T
    st.codes["J"] = cmat
    st.new["J"] = np.where(st.intended.mask, qj.decode(cmat), 0.0)


def _correct_biases(st: _Step) -> None:
    """Offsets: the pooled additive error of each bias."""
    P, M, S = st.stack("b")
    req = st.intended.b - _pooled_offset(P, M, S)
    st.requested["b"] = req
    qb = dataclasses.replace(st.p.bias_quant, rounding="nearest")
    st.clip_report("b[{}]", req, qb.min, qb.max, lambda k: (k,))
    st.codes["b"] = qb.encode(req)
    st.new["b"] = qb.decode(st.codes["b"])


def _correct_J2(st: _Step) -> None:
    """The diagonal trims: gains."""
    P, M, S = st.stack("J2")
    req = st.intended.J2 / _pooled_gain(P, M, S)
    st.requested["J2"] = req
    tr = st.p.target.diagonal
    st.clip_report("J2[{}]", req, tr.min, tr.max, lambda k: (k,))
    st.codes["J2_trim"] = tr.encode(req)
    st.new["J2"] = tr.decode(st.codes["J2_trim"])


def _correct_relative_trims(st: _Step) -> None:
    """Cubic gain and time constant: relative trims of the target (``cubic``, ``mobility``),
    coded against the intended (compiled) value, so code 0 is the uncorrected element."""
    t, cfg = st.p.target, st.config
    rel_trims = (("J4", t.cubic, "J4_trim", cfg.trim_J4),
                 ("mu", t.mobility, "mu_trim", cfg.trim_mu and cfg.mobility == "bias"))
    for key, tr, code_key, usable in rel_trims:
        if tr is None or not usable:
            if key == "mu":     # no trim: the speed of each unit stays as built
                st.untrim["mu"] = st.excess.get("mu", 0.0)
            continue
        P, M, S = st.stack(key)
        ref = getattr(st.intended, key)
        req = ref / _pooled_gain(P, M, S)
        st.requested[key] = req
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(ref != 0, req / ref - 1.0, 0.0)
        st.clip_report(key + "[{}]", rel, tr.min, tr.max, lambda k: (k,))
        st.codes[code_key] = np.where(ref != 0, tr.encode(rel), 0)
        st.new[key] = ref * tr.factor(st.codes[code_key])


def _correct_J4_continuous(st: _Step) -> None:
    """A cubic trim the target does not describe (``CorrectionConfig.J4_trim_step``)."""
    P, M, S = st.stack("J4")
    req = st.intended.J4 / _pooled_gain(P, M, S)
    st.requested["J4"] = req
    step = st.config.J4_trim_step
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(st.intended.J4 > 0, req / st.intended.J4, 1.0)
    st.new["J4"] = np.where(st.intended.J4 > 0, (np.round((rel - 1) / step) * step + 1) * st.intended.J4,
                            st.prog.J4)


def _correct_noise(st: _Step) -> None:
    """The injected noise amplitude per unit (continuous, or on a relative grid)."""
    P, M, S = st.stack("kT")
    req = st.intended.kT / _pooled_gain(P, M, S)
    st.requested["kT"] = req
    if st.config.noise_trim_step is not None:   # the amplitude s ~ sqrt(kT) is set on a relative grid
        step = st.config.noise_trim_step
        req = (np.round((np.sqrt(req / st.intended.kT) - 1) / step) * step + 1) ** 2 * st.intended.kT
    st.new["kT"] = req


def _compensate_in_generation(st: _Step) -> dict:
    """``match_generation``: the J2 trims aim at the chip whose generation matches the intended
    model's, given the elements that cannot be trimmed (:func:`_match_generation`)."""
    laws = _element_laws(st.hist, st.intended)
    clipped = any(not o["element"].startswith("J2[") for o in st.out)   # a clipped element has no trim left
    vals = {k: st.new[k] for k in ("J", "b", "J4", "kT", "mu")}
    J2_aim, match = _match_generation(laws, st.intended, vals, st.untrim, st.config, clipped=clipped)
    if match.get("applied"):
        tr = st.p.target.diagonal
        req = J2_aim / laws["J2"]
        st.requested["J2"] = req
        st.out[:] = [o for o in st.out if not o["element"].startswith("J2[")]
        st.clip_report("J2[{}]", req, tr.min, tr.max, lambda k: (k,))
        st.codes["J2_trim"] = tr.encode(req)
        st.new["J2"] = tr.decode(st.codes["J2_trim"])
    return match


def _codes_changed(st: _Step) -> int:
    """Codes that differ from the previous program (a trim code the previous program lacks was
    at 0, the compiled value), plus continuous (or finely stepped) trims that moved by more than
    the relative standard error of the estimate they were computed from."""
    changed = sum(int(np.count_nonzero(np.asarray(st.codes[k]) != np.asarray(st.p.codes.get(k, 0))))
                  for k in st.codes)
    moving = (("kT", st.new["kT"], st.prog.kT),) + ((("J4", st.new["J4"], st.prog.J4),) if st.J4_continuous else ())
    for key, new_v, old_v in moving:
        val, se = st.last[key]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_se = np.where(val != 0, np.abs(se / val), np.inf)
            moved = np.abs(new_v / np.where(old_v != 0, old_v, 1.0) - 1) > rel_se
        changed += int(np.count_nonzero(moved & (new_v != old_v)))
    return changed


def correction_step(history: list[tuple[CompiledProgram, Fit]], intended: Computer,
                    config: CorrectionConfig = CorrectionConfig()) -> Correction:
    """The next program from all (program, fit) measurements so far (the last one is current)."""
    if not history:
        raise InputError("correction needs at least one measurement")
    p = history[-1][0]
    n = p.programmed.n_units
    if intended.n_units != n:
        raise InputError(f"the intended model has {intended.n_units} units, the program {n}")
    if p.target.kind not in calibratable_kinds():
        raise InputError(f"correction maps onto the element trims of backends with a mismatch model "
                         f"({', '.join(calibratable_kinds())}); target {p.target.name!r} is {p.target.kind!r}")
    st = _Step(history, intended, config)
    if config.trim_couplings and st.ii.size:
        _correct_couplings(st)
    if config.trim_biases:
        _correct_biases(st)
    J2_trimmed = config.trim_J2 and p.target.diagonal is not None
    if J2_trimmed:
        _correct_J2(st)
    else:
        st.untrim["J2"] = st.excess["J2"]
    _correct_relative_trims(st)
    st.J4_continuous = config.trim_J4 and p.target.cubic is None and config.J4_trim_step is not None
    if st.J4_continuous:
        _correct_J4_continuous(st)
    elif p.target.cubic is None or not config.trim_J4:
        st.untrim["J4"] = st.excess["J4"]
    if config.noise_trim:
        _correct_noise(st)
    else:
        st.untrim["kT"] = st.excess["kT"]
    match = _compensate_in_generation(st) if config.match_generation and J2_trimmed else {}
    changed = _codes_changed(st)
    new_prog = st.prog.replace(**st.new)
    q = lower(p.with_(programmed=new_prog, codes=st.codes))
    q = q.note("calibration", {"out_of_range": st.out, "estimated_errors_before": st.errors,
                               "untrimmable": st.untrim, "generation_match": match})
    return Correction(program=q, requested=st.requested, out_of_range=st.out, estimated_errors=st.errors,
                      untrimmable=st.untrim, codes_changed=changed, estimated_true_errors=st.excess,
                      generation_match=match)


# ---------------------------------------------------------------------------------------------
# judging a correction by what the chip computes
# ---------------------------------------------------------------------------------------------
_MATCH_SEED = 0x6D61   # one noise seed for every candidate: their heat differences are paired
_MATCH_MAX_SCALE = 0.05


def _element_laws(hist: list, intended: Computer) -> dict[str, np.ndarray]:
    """The pooled per-element laws of every class (gains; the bias offset), including the
    classes that have no trim: what the chip will implement for any programmed values."""
    n = intended.n_units
    ii, jj = _pairs(intended.mask)
    laws: dict[str, np.ndarray] = {"J": np.ones((n, n))}
    if ii.size:
        P, M, S = _stacked(hist, "J")
        g = _pooled_gain(P[:, ii, jj], M[:, ii, jj], S[:, ii, jj])
        g = np.where((np.abs(P[-1, ii, jj]) > 0) & (g > 0.2), g, 1.0)
        laws["J"][ii, jj] = g
        laws["J"][jj, ii] = g
    P, M, S = _stacked(hist, "b")
    laws["b"] = _pooled_offset(P, M, S)
    for key in ("J2", "J4", "kT", "mu"):
        P, M, S = _stacked(hist, key)
        g = _pooled_gain(P, M, S)
        laws[key] = np.where(np.isfinite(g) & (g > 0), g, 1.0)
    return laws


def _match_generation(laws: dict, intended: Computer, vals: dict, untrim: dict,
                      config: CorrectionConfig, clipped: bool = False) -> tuple[np.ndarray, dict]:
    """Choose the J2 the chip should implement so that its generation matches the intended
    model's, given the elements that cannot be trimmed.

    The chip a program produces is predicted from the pooled element laws (``laws``); the
    predicted chip and the intended model generate ``config.match_generation`` runs with the
    same noise, and the paired heat difference (intended kT) judges a candidate. With every
    on-site class trimmed and nothing clipped (``clipped``: an element asked for a value beyond
    its range) the per-parameter correction is kept and only judged. Otherwise the J2 trims
    compensate:

    1. per unit, the J2 change that best cancels the J4 error over the states the intended
       model visits in generation (start and final states): least squares of
       dJ2 x^2 + dJ4 x^4 + const, i.e. dJ2 = -dJ4 cov(x^2, x^4) / var(x^2);
    2. one common relative J2 change (|s| <= 5 %) from a secant step that zeroes the predicted
       paired heat difference (what mu, the remaining J4 error and everything else leave).

    The candidate with the smallest predicted |paired dQ| is returned (the per-parameter one
    included, so matching cannot make the prediction worse)."""
    G, dt = int(config.match_generation), float(config.match_dt)
    kT0 = intended.kT_ref
    ref = generate(intended, G, dt=dt, seed=_MATCH_SEED, stratonovich=False)

    def chip(J2_aim: np.ndarray) -> Computer:
        return intended.replace(J=laws["J"] * vals["J"], b=vals["b"] + laws["b"], J2=J2_aim,
                                J4=laws["J4"] * vals["J4"], kT=laws["kT"] * vals["kT"], mu=laws["mu"] * vals["mu"])

    def dQ(J2_aim: np.ndarray) -> tuple[float, float]:
        d = (generate(chip(J2_aim), G, dt=dt, seed=_MATCH_SEED, stratonovich=False).heat - ref.heat) / kT0
        return float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(d.size))

    plain = np.asarray(intended.J2, dtype=np.float64)
    q0 = dQ(plain)
    rec: dict[str, Any] = {"runs": G, "predicted_dQ_kT": {"per_parameter": list(q0)}, "applied": False,
                           "chosen": "per_parameter"}
    if "J4" not in untrim and "mu" not in untrim and not clipped:
        return plain, rec
    cands = [("per_parameter", plain, q0)]
    aim = plain
    if "J4" in untrim:
        x = np.concatenate([ref.x0, ref.x_final])
        x2, x4 = x ** 2, x ** 4
        c = np.mean((x2 - x2.mean(0)) * (x4 - x4.mean(0)), axis=0) / np.maximum(np.var(x2, axis=0), 1e-12)
        aim = plain - (laws["J4"] * vals["J4"] - intended.J4) * c
        cands.append(("J4_projected", aim, dQ(aim)))
    qa = cands[-1][2]
    ds = 0.01
    qb = dQ(aim * (1 + ds))
    slope = (qb[0] - qa[0]) / ds
    if slope != 0 and np.isfinite(slope):
        sc = float(np.clip(-qa[0] / slope, -_MATCH_MAX_SCALE, _MATCH_MAX_SCALE))
        cands.append(("heat_matched", aim * (1 + sc), dQ(aim * (1 + sc))))
        rec["common_J2_scale"] = sc
    name, best, q = min(cands, key=lambda t: abs(t[2][0]))
    rec["predicted_dQ_kT"] = {k: list(v) for k, _, v in cands}
    rec.update(chosen=name, applied=name != "per_parameter")
    return best, rec


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """program : the final (corrected) program. initial_fit / final_fit : the first and the
    verifying measurement. history : one dict per iteration (estimated errors, codes changed,
    out-of-range elements). converged : True when the last correction changed no code.
    untrimmable : noise-debiased estimates (from the verifying fit) of the RMS errors that no
    trim can remove."""

    program: CompiledProgram
    intended: Computer
    initial_fit: Fit
    final_fit: Fit
    fits: list
    history: list
    out_of_range: list
    untrimmable: dict
    converged: bool
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"converged": self.converged, "iterations": len(self.history),
                "estimated_errors_initial": parameter_errors(self.initial_fit.params, self.intended),
                "estimated_errors_final": parameter_errors(self.final_fit.params, self.intended),
                "out_of_range": self.out_of_range, "untrimmable": self.untrimmable, "history": self.history,
                "notes": self.notes}


def _chunk_seed(seed: int, chunk: int) -> int:
    """Independent seed of chunk ``chunk`` of a measurement seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed) % 2 ** 63, int(chunk), 0xC4])
               .generate_state(1, np.uint64)[0] % 2 ** 62)


def measure(device: Device, program: CompiledProgram, protocol: Protocol | None, duration: float,
            sample_interval: float, seed: int, *, mask: np.ndarray, config: CorrectionConfig = CorrectionConfig(),
            runs: int | None = None, chunk_runs: int | None = None, progress: bool = False) -> tuple[Fit, Any]:
    """Program ``program``, record ``protocol`` and fit: (fit, the first recorded chunk).

    ``chunk_runs``: record at most this many runs at a time and pool their sufficient
    statistics (:class:`~thermohw.calibrate.fit.Statistics`), so memory stays bounded however
    many runs are asked for (the continuous-time likelihood keeps the chunks: its correction
    needs a second pass). Chunk c is seeded from (seed, c), so the result depends on the chunk
    size; ``None`` records all runs at once with ``seed``."""
    device.program(program)
    mu = program.realised.mu if config.mobility == "nominal" else None
    kw = dict(mask=mask, mobility=config.mobility, discretisation=config.discretisation, mu=mu)
    h = protocol_bias(protocol, program.realised.n_units, runs)
    R = h.shape[0]
    if chunk_runs is None or R <= chunk_runs:
        rec = device.run(protocol, duration, sample_interval, seed, runs=runs)
        return fit(rec, **kw), rec
    if chunk_runs < 2:
        raise InputError("chunk_runs must be >= 2")
    keep = config.discretisation == "continuous"
    stats, recs, first = None, [], None
    starts = range(0, R, int(chunk_runs))
    for c, r0 in enumerate(tqdm(starts, desc=f"recording (seed {seed})", unit="chunk", disable=not progress,
                                leave=False)):
        rec = device.run(Protocol(h[r0:r0 + chunk_runs]), duration, sample_interval, _chunk_seed(seed, c))
        st = Statistics.of(rec)
        stats = st if stats is None else stats + st
        first = rec if first is None else first
        if keep:
            recs.append(rec)
    return fit(recs if keep else stats, **kw), first


def _measurement_key(device: Device, q: CompiledProgram, protocol: Protocol | None, parts: tuple) -> str:
    """What a measurement depends on: the device, the programmed codes and realised model,
    the protocol and the settings - a checkpointed fit is reused only if all match."""
    h = hashlib.sha256()
    h.update(repr((sorted(device.describe().items()), parts)).encode())
    for k in sorted(q.codes):
        h.update(k.encode())
        h.update(np.ascontiguousarray(np.asarray(q.codes[k], dtype=np.float64)).tobytes())
    r = q.realised
    for a in (r.J, r.b, r.J2, r.J4, r.kT, r.mu):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    if protocol is not None:
        h.update(np.ascontiguousarray(protocol.h, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def calibrate(device: Device, program: CompiledProgram, *, protocol: Protocol | None, duration: float,
              sample_interval: float, seed: int = 0, config: CorrectionConfig = CorrectionConfig(),
              runs: int | None = None, intended: Computer | None = None,
              on_iteration: Callable[[int, CompiledProgram, Fit, Any], None] | None = None,
              chunk_runs: int | None = None, progress: bool = False,
              checkpoint: str | Path | None = None) -> CalibrationResult:
    """Program ``program``, measure, fit, correct, re-program, ... ``config.iterations`` times,
    then a verifying measurement of the final program. Each measurement is :func:`measure`
    with seed ``seed + k`` (``chunk_runs``: bounded-memory recording in chunks).
    ``on_iteration(k, program, fit, recording)`` is called after each measurement (k = 0 is
    the uncorrected chip; the recording is the first chunk, or None for a fit reused from the
    checkpoint). ``intended``: the model to reach (default ``program.realised``).
    ``checkpoint``: a folder; every measurement's fit is saved there as it completes, and a
    rerun with the same device, program, protocol and settings reuses them (an interrupted
    calibration resumes at the measurement it was in; the corrections are recomputed, they
    are deterministic)."""
    intended = program.realised if intended is None else intended
    history: list[tuple[CompiledProgram, Fit]] = []
    rows: list[dict] = []
    p = program
    converged = False
    corr = None

    def measure_k(k: int, q: CompiledProgram) -> Fit:
        path = key = None
        if checkpoint is not None:
            path = Path(checkpoint) / f"measurement{k}.npz"
            key = _measurement_key(device, q, protocol, (duration, sample_interval, seed + k, runs, chunk_runs,
                                                          config.mobility, config.discretisation))
            if path.is_file():
                f, meta = Fit.load(path)
                if meta.get("key") == key:
                    if on_iteration is not None:
                        device.program(q)          # the device's state as if it had just measured
                        on_iteration(k, q, f, None)
                    return f
        f, rec = measure(device, q, protocol, duration, sample_interval, seed + k, mask=intended.mask,
                         config=config, runs=runs, chunk_runs=chunk_runs, progress=progress)
        if path is not None:
            f.save(path, meta={"key": key, "measurement": k})
        if on_iteration is not None:
            on_iteration(k, q, f, rec)
        return f

    for k in range(config.iterations):
        f = measure_k(k, p)
        history.append((p, f))
        corr = correction_step(history, intended, config)
        rows.append({"iteration": k, "estimated_errors": corr.estimated_errors,
                     "estimated_true_errors": corr.estimated_true_errors, "codes_changed": corr.codes_changed,
                     "out_of_range": len(corr.out_of_range), "generation_match": corr.generation_match})
        p = corr.program
        if corr.codes_changed == 0:
            converged = True
            break
    final = measure_k(len(history), p)
    history.append((p, final))
    notes = []
    if corr is not None and corr.out_of_range:
        notes.append(f"{len(corr.out_of_range)} element(s) need values outside their programmable range and were "
                     "clipped (see out_of_range); their error stays - compile with a larger full scale "
                     "(--range full, or a target with a wider range) or retrain with smaller couplings")
    final_err = {k: v["excess"] for k, v in estimated_errors(final, intended).items()}
    keys = corr.untrimmable.keys() if corr is not None else ("J4", "mu", "J_antisymmetric")
    return CalibrationResult(program=p, intended=intended, initial_fit=history[0][1], final_fit=final,
                             fits=[f for _, f in history], history=rows,
                             out_of_range=corr.out_of_range if corr is not None else [],
                             untrimmable={k: final_err[k] for k in keys}, converged=converged, notes=notes)
