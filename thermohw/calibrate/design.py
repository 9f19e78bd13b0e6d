"""Experiment design: which recordings identify the chip's parameters well.

Each unit's fit is a linear regression on x_i, x_i^3, 1, the neighbours' x_j and (with known
imposed biases) h_i, so the quality of a design is the conditioning of those regressors:

* ``free_runs``      - no imposed bias: x stays near the model's own mean. Couplings and the
                       on-site terms are identified by the thermal fluctuations alone; b and the
                       mobility are not separable from a constant bias.
* ``bias_steps``     - every run under its own random, exactly known bias on every unit: spreads
                       each x_i over the quartic well (J2 and J4 separate), decorrelates the
                       neighbours (couplings), and identifies mu (``fit(mobility='bias')``).
* ``pairwise``       - two runs per coupled pair, biasing i and j together and oppositely:
                       excites exactly the pair's regressors; most informative per run for a
                       sparse chip, quadratic in the number of pairs for a dense one.

A zero-coupling program (``zero_couplings``) isolates the on-site parameters (J2, J4, b, mu,
kT: 4-5 per unit, very well conditioned) before the couplings are measured.
:func:`predicted_errors` simulates a candidate design on the *intended* model and returns
its Cramer-Rao bounds, so designs can be compared before touching the chip.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..quantise import coupling_headroom  # noqa: F401  (the rule lives with the quantiser)
from ..compile import CompiledProgram, lower
from ..errors import InputError
from ..langevin import Protocol
from .params import ChipParameters
from .devices import HiddenErrors, IdealVirtualChip
from .fit import fit


def bias_steps(n_units: int, runs: int, amplitude: float = 1.0, seed: int = 0) -> Protocol:
    """``runs`` runs, each with an independent bias U(-amplitude, amplitude) on every unit
    (model units; a bias A shifts a unit by about A / (2 J2))."""
    if runs < 2:
        raise InputError("bias steps need at least 2 runs (the bias must differ between runs)")
    if not amplitude > 0:
        raise InputError("amplitude must be > 0")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xB1A5]))
    return Protocol(rng.uniform(-amplitude, amplitude, (int(runs), int(n_units))))


def free_runs(n_units: int, runs: int) -> Protocol:
    """``runs`` runs without imposed bias."""
    return Protocol(np.zeros((int(runs), int(n_units))))


def pairwise(mask: np.ndarray, amplitude: float = 1.0, repeats: int = 1) -> Protocol:
    """Two runs per coupled pair i < j: h_i = h_j = +A, and h_i = +A, h_j = -A."""
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[0]
    ii, jj = np.nonzero(np.triu(mask, 1))
    if ii.size == 0:
        raise InputError("the mask has no couplings to excite")
    h = np.zeros((2 * ii.size, n))
    k = np.arange(ii.size)
    h[2 * k, ii] = h[2 * k, jj] = amplitude
    h[2 * k + 1, ii] = amplitude
    h[2 * k + 1, jj] = -amplitude
    return Protocol(np.tile(h, (int(repeats), 1)))


def zero_couplings(p: CompiledProgram) -> CompiledProgram:
    """The same program with every coupling code zero (on-site calibration)."""

    prog = p.programmed.replace(J=np.zeros_like(p.programmed.J))
    codes = {**p.codes, "J": np.zeros_like(np.asarray(p.codes["J"]))}
    return lower(p.with_(programmed=prog, codes=codes))


def predicted_errors(p: CompiledProgram, protocol: Protocol | None, duration: float, sample_interval: float, *,
                     runs: int | None = None, mobility: str = "nominal", seed: int = 0,
                     mask: np.ndarray | None = None) -> dict[str, Any]:
    """Cramer-Rao bounds of a design, predicted on the program's realised (intended) model:
    simulate it under ``protocol`` (an error-free virtual chip) and evaluate the Fisher
    information at the truth, for the couplings in ``mask`` (default: the program's; pass an
    all-False mask for an on-site design on a ``zero_couplings`` program). Returns {"names",
    "crb", "rms_by_kind", "condition"}."""

    chip = IdealVirtualChip(HiddenErrors.none(p.realised.n_units))
    chip.program(p)
    rec = chip.run(protocol, duration, sample_interval, seed, runs=runs)
    f = fit(rec, mask=p.realised.mask if mask is None else mask, mobility=mobility, mu=p.realised.mu if mobility == "nominal" else None)
    truth = ChipParameters.from_computer(p.realised)
    crb = f.cramer_rao(truth)
    kinds = np.array([n.split("[")[0] for n in f.names])
    return {"names": f.names, "crb": crb, "condition": f.condition,
            "rms_by_kind": {k: float(np.sqrt(np.mean(crb[kinds == k] ** 2))) for k in dict.fromkeys(kinds)}}


