"""What every backend's mismatch model shares (docs/design.md#backend-contract).

A backend that virtual chips can be built from owns a ``Mismatch`` record: the relative errors
of *its* elements (a capacitor, an inductor, a transconductor's gain, an offset voltage), drawn
from the target's ``components`` figures and applied to its circuit element by element. This
module holds the validation and the draws they have in common, so that every backend's
record checks shapes, finiteness and signs the same way and draws the coupling gains alike.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError


def frozen_array(name: str, v: Any, shape: tuple) -> np.ndarray:
    """``v`` as a read-only float64 array of ``shape``; InputError for a wrong shape or NaN/inf."""
    a = np.array(v, dtype=np.float64)
    if a.shape != shape:
        raise InputError(f"{name} has shape {a.shape}; expected {shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or inf")
    a.setflags(write=False)
    return a


def gain_errors(rng: np.random.Generator, n: int, scale: float, sigma: float, reciprocal: bool) -> np.ndarray:
    """(n, n) relative gain errors scale * N(0, sigma) of the coupling elements; one element per
    pair (symmetric) when ``reciprocal``, else one per direction."""
    g = scale * rng.normal(0, 1, (n, n)) * sigma
    if reciprocal:
        g = np.triu(g, 1)
        g = g + g.T
    return g


def active_element_errors(rng: np.random.Generator, n: int, scale: float, comp, reciprocal: bool,
                          noise_common: float, noise_unit: float) -> tuple[np.ndarray, ...]:
    """The errors of a chip's active elements, drawn after its passives' (same order on every
    backend): the nonlinear element's gain N(0, gain_mismatch), every coupling's gain
    (:func:`gain_errors`), the offsets N(0, offset_V) and the noise amplitude (a common
    N(0, noise_common) plus a per-unit N(0, noise_unit); the target does not describe the noise
    generator's accuracy). Returns (k3_rel, gain, offset_V, noise_rel)."""
    k3_rel = scale * rng.normal(0, 1, n) * comp.gain_mismatch
    gain = gain_errors(rng, n, scale, comp.gain_mismatch, reciprocal)
    offset = scale * rng.normal(0, 1, n) * comp.offset_V
    noise = scale * (rng.normal(0, noise_common) + rng.normal(0, noise_unit, n))
    return k3_rel, gain, offset, noise


class MismatchRecord:
    """Base of the backends' frozen ``Mismatch`` dataclasses. A subclass lists its per-unit
    relative errors in ``RELATIVE`` (each must stay > -1: an element cannot vanish or change
    sign), its other per-unit fields in ``PER_UNIT``, and has an (N, N) field ``gain`` (zero
    diagonal) and ``seed``."""

    RELATIVE: tuple[str, ...] = ()
    PER_UNIT: tuple[str, ...] = ()

    def __post_init__(self) -> None:   # dataclass subclasses inherit it: validated on construction
        first = getattr(self, self.RELATIVE[0])
        n = np.asarray(first).shape[0] if np.ndim(first) == 1 else -1
        if n < 1:
            raise InputError(f"{self.RELATIVE[0]} must be a (N,) array")
        fz = object.__setattr__
        for name in self.RELATIVE + self.PER_UNIT:
            fz(self, name, frozen_array(name, getattr(self, name), (n,)))
        g = np.array(self.gain, dtype=np.float64)
        if g.shape != (n, n):
            raise InputError(f"gain has shape {g.shape}; expected {(n, n)}")
        g = g.copy()
        np.fill_diagonal(g, 0.0)
        fz(self, "gain", frozen_array("gain", g, (n, n)))
        for name in self.RELATIVE:
            if np.any(getattr(self, name) <= -1):
                raise InputError(f"{name} <= -1 would make an element value zero or negative")
        if np.any(self.gain <= -1):
            raise InputError("gain <= -1 would reverse a coupling's sign")

    @property
    def n_units(self) -> int:
        return getattr(self, self.RELATIVE[0]).shape[0]

    @property
    def reciprocal(self) -> bool:
        """One coupling element per pair (gain symmetric)."""
        return bool(np.array_equal(self.gain, self.gain.T))

    @classmethod
    def none(cls, n_units: int):
        """A perfect chip."""
        z = np.zeros(n_units)
        return cls(**{f.name: (np.zeros((n_units, n_units)) if f.name == "gain" else None if f.name == "seed" else z)
                      for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name).tolist() if isinstance(getattr(self, f.name), np.ndarray)
                else getattr(self, f.name) for f in dataclasses.fields(self)}

    def _check_units(self, circ) -> None:
        if circ.n_units != self.n_units:
            raise InputError(f"the errors describe {self.n_units} units; the circuit has {circ.n_units}")
