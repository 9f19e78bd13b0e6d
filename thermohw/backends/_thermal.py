"""Shared pieces of the thermally driven backends (mechanical, josephson).

Units (docs/design.md#units). The model's kT is a number (0.1 in the paper),
so the hardware fixes the size of one *model energy unit*

    eps = k_B T / kT_ref      joules per model energy unit

with T the bath temperature of the target and kT_ref the model's reference kT. A unit whose
model kT_i differs from kT_ref needs its own bath at T_i = T kT_i / kT_ref (one cannot get
that from a single thermal bath: the backends report it). Everything else is then plain
rescaling: U [J] = eps V(x), and "J2 in units of kT" (J2') is J2/kT_ref, so
eps J2 = (J2/kT) k_B T, the form the design notes use.

One model time unit is tau_s seconds (t = tau_s t_model).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import yaml
from ..energy import K_B
from ..io import atomic_write
from ..errors import InputError
from ..provenance import header_text


def kT_reference(kT: np.ndarray) -> float:
    """The model's reference kT: the common value when uniform (exactly, so that the bath
    temperatures come out exactly equal to the target's), else the mean."""
    kT = np.asarray(kT, dtype=np.float64)
    return float(kT[0]) if np.all(kT == kT[0]) else float(np.mean(kT))


def energy_unit(kT: np.ndarray, temperature_K: float) -> float:
    """eps = k_B T / kT_ref: joules per model energy unit."""
    return K_B * float(temperature_K) / kT_reference(kT)


def bath_temperatures(kT: np.ndarray, temperature_K: float) -> np.ndarray:
    """Per-unit bath temperature T_i = T kT_i / kT_ref (all equal to T for a uniform model)."""
    kT = np.asarray(kT, dtype=np.float64)
    return float(temperature_K) * (kT / kT_reference(kT))


def frozen(a: Any, dtype=np.float64) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def freeze_fields(obj: Any, lead: str, vectors: tuple, matrices: tuple, positive: tuple, what: str) -> int:
    """Validate and freeze an artefact's per-unit arrays in place: ``lead`` and ``vectors`` are
    (n,), ``matrices`` and the boolean ``coupled`` are (n, n), all finite, ``positive`` > 0;
    its scales ``energy_unit_J`` and ``tau_s`` > 0; its ``meta`` a dict of its own. Returns n. ``what`` names one element of ``lead`` for the error message."""

    n = np.shape(getattr(obj, lead))[0] if np.ndim(getattr(obj, lead)) == 1 else -1
    if n < 1:
        raise InputError(f"{lead} must be a 1-d array with one {what}")
    for name in vectors:
        if np.shape(getattr(obj, name)) != (n,):
            raise InputError(f"{name} has shape {np.shape(getattr(obj, name))}; expected ({n},)")
    for name in (*matrices, "coupled"):
        if np.shape(getattr(obj, name)) != (n, n):
            raise InputError(f"{name} has shape {np.shape(getattr(obj, name))}; expected ({n}, {n})")
    for name in (lead, *vectors, *matrices):
        a = frozen(getattr(obj, name))
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name} contains NaN or inf")
        object.__setattr__(obj, name, a)
    object.__setattr__(obj, "coupled", frozen(obj.coupled, bool))
    for name in positive:
        if np.any(getattr(obj, name) <= 0):
            raise InputError(f"{name} must be > 0")
    if not (obj.energy_unit_J > 0 and obj.tau_s > 0):
        raise InputError("energy_unit_J and tau_s must be > 0")
    object.__setattr__(obj, "meta", dict(obj.meta or {}))
    return n


def fl(x: Any) -> float:
    """A plain Python float (yaml.safe_dump cannot represent numpy scalars)."""
    return float(x)


def yaml_text(header_lines: list[str], data: dict) -> str:
    """A '# '-commented header followed by ``yaml.safe_dump(data)``. PyYAML writes floats
    with repr(), so ``yaml.safe_load`` reads back the identical numbers. The libyaml emitter
    (CSafeDumper: same safe representer, same text, ~4x faster) is used when available."""

    head = "".join("# " + "".join(ch if ch.isprintable() else " " for ch in line) + "\n"
                   for line in [*header_lines, "provenance: " + header_text()])
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return head + yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, width=100)


def write_text(path, text: str):
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def csv_float(x: float) -> str:
    """repr(): the shortest text that reads back to the same float."""
    return repr(float(x))


def uniform(a: np.ndarray) -> bool:
    a = np.asarray(a)
    return bool(a.size == 0 or np.all(a == a.flat[0]))


def rel_spread(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    m = float(np.max(np.abs(a))) if a.size else 0.0
    return 0.0 if m == 0 else float((np.max(a) - np.min(a)) / m)
