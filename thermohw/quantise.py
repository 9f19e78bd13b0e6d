"""Quantisation: how a model's couplings, biases and J2 become a chip's codes - one home for
the arithmetic that the compiler's ``scale`` and ``quantise`` passes, chip-aware training
(``chipspec.QuantSpec``) and calibration's trims must share exactly (a model trained on the
grid compiles to the same codes).

    with_settings(q, bits, rounding, value_range)   a target ``Quant`` with overrides
    value_range(q, vmax, mode)                      the programmable range for max |v| = vmax
    ranges(couplings, biases, c, mode, ...)         (coupling range, bias range, max|J|, max|b|)
    codes(c, qj, qb, rng)                           symmetric coupling codes and bias codes
    coupling_headroom(J, mask, gain_sd)             the trim headroom the gain mismatch needs
    headroom_for(c, gain_sd, mode, headroom)        the headroom compile and chip-aware training use
    check_bits(bits, what)                          a code width the hardware can have
    check_range(mode)                               a full-scale rule: 'auto' or 'full'
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .computer import Computer
from .errors import InputError

RANGES = ("auto", "full")   # full-scale rules: smallest range holding the model / the target's
HEADROOM_SD = 2.5   # default coupling headroom: 1 + 2.5 gain-mismatch sd (headroom_for)

__all__ = ["with_settings", "value_range", "ranges", "codes", "coupling_headroom", "headroom_for", "check_bits",
           "check_range", "RANGES"]


def check_bits(bits: Any, what: str) -> None:
    """InputError unless ``bits`` is None (the target's) or a width in 2..16."""
    if bits is not None and not 2 <= int(bits) <= 16:
        raise InputError(f"{what} = {bits} is outside 2..16")


def check_range(mode: Any) -> None:
    """InputError unless ``mode`` is a full-scale rule of :data:`RANGES`."""
    if mode not in RANGES:
        raise InputError(f"range = {mode!r}; use 'auto' (the smallest range holding the model) or 'full' "
                         "(the target's)")


def with_settings(q, bits, rounding, value_range):
    """The target's ``Quant`` ``q`` with the given code width, rounding and [min, max] (None:
    keep the target's)."""
    changes = {}
    if bits is not None:
        changes["bits"] = int(bits)
    if rounding is not None:
        changes["rounding"] = rounding
    if value_range is not None:
        changes["min"], changes["max"] = float(value_range[0]), float(value_range[1])
    return dataclasses.replace(q, **changes) if changes else q


def value_range(q, vmax: float, mode: str) -> tuple[float, float]:
    """The programmable range for values with max |v| = vmax: 'full' = the target's [min, max];
    'auto' = the target's range shrunk to [-vmax, vmax] on each side it has (a one-signed
    range, e.g. plain resistors giving J <= 0, stays one-signed)."""
    if mode == "full" or vmax <= 0:
        return q.min, q.max
    lo, hi = max(q.min, -vmax), min(q.max, vmax)
    if hi <= lo:  # all values on the side the hardware lacks: keep its range, clip them all
        return q.min, q.max
    return lo, hi


def ranges(couplings, biases, c: Computer, mode: str, coupling_headroom: float = 1.0,
           bias_margin: float = 0.0) -> tuple[tuple[float, float], tuple[float, float], float, float]:
    """(coupling range, bias range, max |J|, max |b|) for ``c``: the coupling full scale is
    ``coupling_headroom`` x max |J|, the bias full scale max |b| + ``bias_margin`` (room for
    calibration trims), within the target's ranges."""
    jmax = float(np.max(np.abs(c.J[c.mask]))) if c.n_couplings else 0.0
    bmax = float(np.max(np.abs(c.b))) if c.n_units else 0.0
    return (value_range(couplings, jmax * coupling_headroom, mode), value_range(biases, bmax + bias_margin, mode),
            jmax, bmax)


def codes(c: Computer, qj, qb, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric coupling codes (one per pair, zero where there is no coupling) and bias codes
    (zero for fixed zero biases) of ``c``."""
    iu = np.triu_indices(c.n_units, 1)
    codes_j = np.zeros(c.J.shape, dtype=np.int64)
    codes_j[iu] = np.where(c.mask[iu], qj.encode(c.J[iu], rng), 0)
    codes_b = np.where(c.bias_trainable | (c.b != 0), qb.encode(c.b, rng), 0)
    return codes_j + codes_j.T, codes_b


def coupling_headroom(J: Any, mask: Any, gain_sd: float, expected: float = 0.1) -> float:
    """The coupling headroom (``thermohw compile --coupling-headroom``) that leaves room to
    trim the couplings of a chip whose coupling elements have relative gain errors
    g ~ N(0, gain_sd): the smallest factor h >= 1 for which the expected number of couplings
    needing a code beyond the full scale h max|J|, i.e. with |J_ij| / (1 + g_ij) > h max|J|,
    is at most ``expected``:

        sum_ij Phi((|J_ij| / (h max|J|) - 1) / gain_sd) <= expected

    (0.1: nine chips in ten have no coupling out of range). Only the few largest couplings
    count, so h depends on the top of the |J| distribution and on gain_sd, not on N. Every LSB
    grows by h: headroom trades resolution for range."""
    J = np.asarray(J, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if J.ndim != 2 or J.shape != m.shape:
        raise InputError(f"J {J.shape} and mask {m.shape} must be the same square shape")
    if not (gain_sd >= 0 and np.isfinite(gain_sd)) or not expected > 0:
        raise InputError(f"gain_sd = {gain_sd} must be >= 0 and expected = {expected} > 0")
    a = np.abs(J[np.triu(m, 1)])
    a = a[a > 0]
    if a.size == 0 or gain_sd == 0:
        return 1.0
    r = a / a.max()

    def count(h: float) -> float:
        # the normal CDF by erfc: scipy.stats would add a second to every `thermohw` start
        return float(sum(0.5 * math.erfc(-v / math.sqrt(2.0)) for v in (r / h - 1.0) / gain_sd))

    lo, hi = 1.0, 1.0 + 10.0 * gain_sd
    if count(lo) <= expected:
        return 1.0
    while count(hi) > expected:
        hi *= 1.5
    for _ in range(40):   # bisection to ~1e-12
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if count(mid) <= expected else (mid, hi)
    return hi


def headroom_for(c: Computer, couplings, gain_sd: float, mode: str, headroom: float | None = None) -> float:
    """The coupling headroom compile and chip-aware training use for ``c`` on the coupling code
    ``couplings``: ``headroom`` if given; else about 1 + HEADROOM_SD x ``gain_sd`` (the target's
    ``components.gain_mismatch``), so that a coupling programmed at full scale is out of trim
    range only if its element is 2.5 sd weak (0.6 %). The default is K/k with K the largest
    code and k = round(K / (1 + 2.5 gain_sd)): the model's largest |J| then lands exactly on
    code k, so a model already on the grid (compiled, or trained chip-aware) compiles to the
    same grid again. It does not read the values of J for the same reason (quantising moves
    the top of the |J| distribution that :func:`coupling_headroom` reads; its model-specific
    value for the 64 + 32 digits model: 1.03 at 2 %, 1.24 at 10 %; this default at 8 bits:
    1.050, 1.245). 1 without a gain mismatch, without couplings, or for ``mode='full'``."""
    if headroom is not None:
        return float(headroom)
    if mode == "full" or not gain_sd or not c.n_couplings:
        return 1.0
    K = 2 ** (couplings.bits - 1) - 1
    return K / max(1, round(K / (1.0 + HEADROOM_SD * float(gain_sd))))
