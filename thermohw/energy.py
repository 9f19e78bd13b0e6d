"""The energy scale of a compiled program: Boltzmann's constant (defined here, once, for the
whole package) and the record that turns model energies (units of the model's kT) into joules.

A model's kT is a number (0.1 in the paper); the hardware fixes what it is worth:
k_B T = kT_ref_J, with T the temperature of the bath the model's noise stands for (the
physical temperature for thermal noise, the effective one for injected noise; docs/design.md#units).
``lower`` computes the record once per program (:func:`from_scales`); reports that give heat
in joules use it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InputError

K_B = 1.380649e-23  # J/K, exact since the 2019 SI


@dataclass(frozen=True)
class EnergyScale:
    """kT_ref_J: joules of the model's reference kT. temperature_K: the bath temperature that
    kT stands for (kT_ref_J = K_B temperature_K). kT_model: the model's reference kT in model
    energy units (so one model energy unit is kT_ref_J / kT_model joules)."""

    kT_ref_J: float
    temperature_K: float
    kT_model: float

    def __post_init__(self) -> None:
        for k in ("kT_ref_J", "temperature_K", "kT_model"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise InputError(f"energy scale: {k} = {v!r} must be a finite number > 0")
            object.__setattr__(self, k, float(v))
        if abs(self.kT_ref_J / (K_B * self.temperature_K) - 1) > 1e-9:
            raise InputError(f"energy scale: kT_ref_J = {self.kT_ref_J:.6g} J is not k_B x temperature_K = "
                             f"{K_B * self.temperature_K:.6g} J; the program's scales are inconsistent - compile again")

    @property
    def joules_per_model_unit(self) -> float:
        return self.kT_ref_J / self.kT_model

    def joules(self, q_kT):
        """An energy (or array of them) in units of kT, in joules."""
        return q_kT * self.kT_ref_J

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EnergyScale":
        if not isinstance(d, dict) or set(d) != {"kT_ref_J", "temperature_K", "kT_model"}:
            raise InputError("energy scale: expected an object with kT_ref_J, temperature_K and kT_model; "
                             "the file is damaged - compile it again")
        return cls(**d)


def from_scales(scales: dict, kT_model: float) -> EnergyScale:
    """The record from a backend's ``scales`` (``energy_per_model_unit_J`` or ``kT_J``), for a
    model whose reference kT is ``kT_model``."""
    kT_J = scales.get("kT_J")
    if kT_J is None and scales.get("energy_per_model_unit_J") is not None:
        kT_J = scales["energy_per_model_unit_J"] * kT_model
    if kT_J is None:
        raise InputError("the backend's scales give no energy scale (energy_per_model_unit_J or kT_J); "
                         "compile it again with this version")
    return EnergyScale(kT_ref_J=float(kT_J), temperature_K=float(kT_J) / K_B, kT_model=float(kT_model))
