"""The field checks every target section is built from: numbers in a plausible range, whole
numbers, choices, text and flags, each failure an InputError naming the field path
(``_Section``, ``_prefixed``), and the E series of preferred component values. Used by
:mod:`thermohw.target_sections` and :mod:`thermohw.target`."""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Any, Mapping

import numpy as np

from .errors import InputError

TOPOLOGIES = ("all-to-all", "bipartite", "degree-limited", "kings", "edges")
ROUNDING = ("nearest", "stochastic")
PRUNE = ("prune", "refuse")
NOISE_SOURCES = ("injected", "thermal")

# ---- E series (IEC 60063) -------------------------------------------------------------------
# E24 is hard-coded: its published values depart from round(10**(i/24), 1) at 2.7, 3.0, 3.3,
# 3.6, 3.9, 4.3, 4.7 (formula one lower) and 8.2 (formula 8.3), for historical reasons.
E24 = (1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0,
       3.3, 3.6, 3.9, 4.3, 4.7, 5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1)


def _e_series(n: int) -> tuple[float, ...]:
    # E48/E96/E192 follow the 3-significant-figure rule round(10**(i/n), 2) with a single
    # documented exception: E192 lists 9.20 where the rule gives 9.19 (i = 185).
    values = [round(10.0 ** (i / n), 2) for i in range(n)]
    if n == 192:
        values[185] = 9.20
    return tuple(values)


E_SERIES: dict[str, tuple[float, ...]] = {
    "E24": E24, "E48": _e_series(48), "E96": _e_series(96), "E192": _e_series(192),
}


def snap_to_series(value: Any, series: str | None) -> Any:
    """The standard value of ``series`` nearest to ``value`` in log space (i.e. the smallest
    relative error), searching across decades: ``snap_to_series(1234.0, "E24") == 1200.0``.

    ``value`` is a positive component value in SI units (ohms, farads, ...), a scalar or an
    array; a scalar gives a float. ``series=None`` means ideal parts: the value comes back
    unchanged.
    """
    scalar = np.ndim(value) == 0
    v = np.asarray(value, dtype=np.float64)
    if series is None:
        return float(v) if scalar else v.copy()
    if series not in E_SERIES:
        raise InputError(f"unknown resistor series {series!r}; use one of {', '.join(E_SERIES)} "
                         "or None for ideal values")
    if not np.all(np.isfinite(v) & (v > 0)):
        raise InputError("snap_to_series needs positive, finite component values (SI units)")
    table = np.asarray(E_SERIES[series])
    # neighbours across the decade boundaries: the last value of the decade below and 10.0
    cand = np.concatenate([[table[-1] / 10.0], table, [10.0]])
    exp = np.floor(np.log10(v))
    mant = v / 10.0 ** exp
    k = np.argmin(np.abs(np.log(mant)[..., None] - np.log(cand)), axis=-1)
    out = cand[k] * 10.0 ** exp
    # clear the float fuzz of mantissa * 10**exp (0.004750000000000001 -> 0.00475)
    out = np.vectorize(lambda x: float(f"{x:.12g}"), otypes=[np.float64])(out)
    return float(out) if scalar else out


# ---- field validation helpers -----------------------------------------------------------------
# PyYAML follows YAML 1.1, which reads 1e-12 (no dot) as a *string*; accept such strings when
# they are plain decimal numbers, so that "C_F: 1e-12" means what it says.
_NUMBER_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise InputError(f"{name} = {_show(value)} is not a number; give a plain number in SI units")
    if isinstance(value, (int, np.integer)) and abs(int(value)) > 10 ** 300:
        raise InputError(f"{name} = {str(value)[:12]}... ({len(str(value))} digits) is far too large; "
                         "give a plain number in SI units")
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
    elif isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
        x = float(value)
    else:
        raise InputError(f"{name} = {_show(value)} is not a number; give a plain number in SI units "
                         "without a unit suffix, e.g. 1.0e-12")
    if not math.isfinite(x):
        raise InputError(f"{name} = {x} is not finite; NaN and inf are not allowed")
    return x


def _ranged(name: str, value: Any, lo: float, hi: float, unit: str = "") -> float:
    x = _number(name, value)
    u = f" {unit}" if unit else ""
    if lo > 0 and x <= 0:
        raise InputError(f"{name} = {x:g}{u} must be positive (plausible range {lo:g} .. {hi:g}{u})")
    if not lo <= x <= hi:
        raise InputError(f"{name} = {x:g}{u} is outside the plausible range {lo:g} .. {hi:g}{u}; "
                         "check the value and its SI units")
    return x


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    x = _number(name, value)
    if not x.is_integer():
        raise InputError(f"{name} = {_show(value)} must be a whole number in {lo}..{hi}")
    if not lo <= x <= hi:
        raise InputError(f"{name} = {int(x)} is out of range; use an integer in {lo}..{hi}")
    return int(x)


def _choice(name: str, value: Any, options: tuple) -> Any:
    if value not in options:
        hint = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        shown = ", ".join("null" if o is None else repr(o) for o in options)
        raise InputError(f"{name} = {_show(value)} is not one of {shown}{did}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} = {_show(value)} must be true or false")
    return bool(value)


class _Section:
    """Shared YAML plumbing for the frozen dataclasses below.

    Each section validates its own fields in ``__post_init__`` with messages that *start with
    the field name*; a parent re-raises them prefixed with its own field name, so the user
    sees the full path (``physics.noise.temperature_K = ...``).
    """

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: Any):
        if not isinstance(data, Mapping):
            raise InputError(f"must be a mapping of keys to values, got {_kind_of(data)}")
        valid = cls.keys()
        for key in data:
            if key not in valid:
                raise InputError(_unknown_key(key, valid, getattr(cls, "_keys_context", "here")))
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise InputError(f"{missing[0]}: missing; this section needs {', '.join(required)}")
        return cls(**dict(data))

    def _nested(self, name: str, cls: type, *, optional: bool = False) -> None:
        """Turn a mapping in field ``name`` into a ``cls`` (or check it already is one)."""
        value = getattr(self, name)
        if value is None and optional:
            return
        if type(value) is cls:  # exact: a Trim (unsigned) must not pass as a signed Quant
            return
        if isinstance(value, _Section):
            raise InputError(f"{name} is a {type(value).__name__}; expected a {cls.__name__}")
        if value is None:
            raise InputError(f"{name}: missing; give a mapping with keys {', '.join(cls.keys())}")
        self._set(name, _prefixed(name, lambda: cls.from_dict(value)))

    def to_dict(self) -> dict:
        """Plain dict for YAML: scalars first, nested sections after them; ``None`` fields
        are left out (they mean 'not given')."""
        flat, nested = {}, {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, _Section):
                nested[f.name] = v.to_dict()
            elif isinstance(v, tuple):
                flat[f.name] = [list(e) if isinstance(e, tuple) else e for e in v]
            else:
                flat[f.name] = v
        return {**flat, **nested}


def _prefixed(prefix: str, build):
    try:
        return build()
    except InputError as e:
        msg = str(e)
        # "couplings.bits = 1 ..." but "couplings must be a mapping ..."
        joiner = " " if msg.startswith(("must be", "is a")) else "."
        raise InputError(f"{prefix}{joiner}{msg}") from None


def _unknown_key(key: Any, valid: list[str], context: str = "here") -> str:
    hint = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    did = f"did you mean {hint[0]!r}? " if hint else ""
    plain = isinstance(key, str) and key.isprintable() and 0 < len(key) <= 40 and key.strip() == key
    return f"{key if plain else _show(key)}: unknown key; {did}valid keys {context}: {', '.join(valid)}"


def _show(value: Any, n: int = 60) -> str:
    """A user value for a message: its repr (one line), cut to ``n`` characters."""
    r = repr(value)
    return r if len(r) <= n else r[:n - 3] + "..."


def _kind_of(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "nothing (empty)"}.get(
        type(value), type(value).__name__)
