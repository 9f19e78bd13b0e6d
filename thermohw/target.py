"""Hardware descriptions for the compile stage: one validated ``Target`` per chip or board.

A ``Target`` says what a piece of hardware can realise (modelled on Qiskit's transpiler
``Target``: one object that holds every limit of the device), grouped into small nested
sections in the manner of aihwkit's configs:

    name, kind, description, source      what it is and where its numbers come from
    units, topology                      unit budget and which pairs can be coupled
    couplings, biases, diagonal          programmable ranges and fixed-point codes (model units)
    cubic, mobility                      optional relative trims of J4 and mu (calibration)
    components                           resistor series, tolerances, mismatch, offsets
    physics                              SI constants of the chosen kind (rc, lc, mechanical,
                                         josephson) - names carry their units: C_F, tau_s, ...

Targets are read from YAML with ``yaml.safe_load`` only (plain mappings, lists, numbers and
strings; no tags, no objects). Unknown keys, duplicate keys, non-numbers, NaN/inf and values
outside a plausible physical range are errors that name the field path (``couplings.bits``)
and say what is accepted. Presets live in ``thermohw/presets/*.yaml``.

The formulas that turn these numbers into element values are in docs/design.md (#units to #josephson); this
module only describes the hardware, it does not map anything onto it.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from .errors import InputError
from .io import atomic_write

SCHEMA = "thermohw.target/1"
KINDS = ("rc", "lc", "mechanical", "josephson")
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


# ---- quantisation -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Quant(_Section):
    """A programmable value range with a signed, zero-centred fixed-point code (model units).

    Codes are integers ``k`` with value ``k * step``, ``step = max(|min|, |max|) / (2**(bits-1) - 1)``
    (8 bits: codes -127..127 on a symmetric range), limited to ``[min, max]``. Zero is always
    exactly representable, so a pruned coupling or bias is exactly 0. ``rounding`` is
    ``nearest`` or ``stochastic`` (unbiased: rounds up with probability equal to the fraction).
    """

    min: float
    max: float
    bits: int
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        lo = _ranged("min", self.min, -1e6, 1e6)
        hi = _ranged("max", self.max, -1e6, 1e6)
        if lo >= hi:
            raise InputError(f"max = {hi:g} must be greater than min = {lo:g}; "
                             "the range is [min, max] in model units")
        self._set("min", lo)
        self._set("max", hi)
        self._set("bits", _integer("bits", self.bits, 2, 16))
        self._set("rounding", _choice("rounding", self.rounding, ROUNDING))
        self._check_zero()

    def _check_zero(self) -> None:
        if not self.min <= 0.0 <= self.max:
            raise InputError(f"min = {self.min:g} .. max = {self.max:g} must include 0: a signed "
                             "code needs an exact zero for absent couplings and biases")

    @property
    def step(self) -> float:
        """Value of one least-significant bit, in model units."""
        return max(abs(self.min), abs(self.max)) / (2 ** (self.bits - 1) - 1)

    @property
    def code_range(self) -> tuple[int, int]:
        """Smallest and largest code that stays inside ``[min, max]``."""
        s = self.step
        return math.ceil(self.min / s - 1e-9), math.floor(self.max / s + 1e-9)

    def _to_steps(self, x: np.ndarray) -> np.ndarray:
        return x / self.step

    def decode(self, codes: Any) -> np.ndarray:
        """Values (model units) of integer codes."""
        return np.asarray(codes, dtype=np.float64) * self.step

    def encode(self, values: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Integer codes for ``values`` (model units), clipped to the range first."""
        x = np.clip(np.asarray(values, dtype=np.float64), self.min, self.max)
        q = self._to_steps(x)
        if self.rounding == "stochastic":
            if rng is None:
                raise InputError("stochastic rounding needs a random generator: pass "
                                 "rng=np.random.default_rng(seed)")
            k = np.floor(q + rng.random(q.shape))
        else:
            k = np.rint(q)
        lo, hi = self.code_range
        return np.clip(k, lo, hi).astype(np.int64)

    def quantize(self, values: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """``decode(encode(values))``: the nearest (or stochastically rounded) realisable values."""
        return self.decode(self.encode(values, rng))


@dataclass(frozen=True)
class Couplings(Quant):
    """Coupling range and code, plus what compile does with a coupling the topology cannot
    host: ``prune`` drops it (and reports the count), ``refuse`` raises."""

    prune: str = "prune"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("prune", _choice("prune", self.prune, PRUNE))


@dataclass(frozen=True)
class Trim(Quant):
    """An unsigned trim of the on-site J2 (model units): ``2**bits`` levels from ``min`` to
    ``max``, value ``min + k * step``. docs/design.md#quantisation asks for 10-bit diagonal trims
    because a 1 % error in the ground conductance is 0.1 kT, larger than a typical coupling."""

    def _check_zero(self) -> None:  # a trim is an offset code: zero need not be in range
        pass

    @property
    def step(self) -> float:
        return (self.max - self.min) / (2 ** self.bits - 1)

    @property
    def code_range(self) -> tuple[int, int]:
        return 0, 2 ** self.bits - 1

    def _to_steps(self, x: np.ndarray) -> np.ndarray:
        return (x - self.min) / self.step

    def decode(self, codes: Any) -> np.ndarray:
        return self.min + np.asarray(codes, dtype=np.float64) * self.step


@dataclass(frozen=True)
class RelativeTrim(Quant):
    """A signed, zero-centred trim of an element's gain relative to its compiled value:
    ``value = compiled * (1 + k * step)``, ``k * step`` in ``[min, max]`` (fractions, e.g.
    -0.3 .. 0.3 with 8 bits: steps of 0.24 %). Code 0 is the compiled value exactly, so a
    program compiled for a target with this trim is unchanged until a calibration moves it.
    Used for the cubic element's gain (``cubic``: J4) and the time constant (``mobility``: mu,
    a capacitor-bank or transconductance-scale trim)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (-0.9 <= self.min < 0.0 < self.max <= 0.9):
            raise InputError(f"min = {self.min:g} .. max = {self.max:g} must be relative gain changes "
                             "with min < 0 < max, within -0.9 .. 0.9 (e.g. -0.3 .. 0.3 for +-30 %)")

    def factor(self, codes: Any) -> np.ndarray:
        """The gain factor ``1 + k * step`` of integer codes."""
        return 1.0 + self.decode(codes)


# ---- topology -------------------------------------------------------------------------------
_TOPOLOGY_KEYS = {
    "all-to-all": (),
    "bipartite": ("n_visible", "hidden_hidden"),
    "degree-limited": ("max_degree",),
    "kings": ("rows", "cols"),
    "edges": ("edges",),
}
_TOPOLOGY_REQUIRED = {"bipartite": ("n_visible",), "degree-limited": ("max_degree",),
                      "kings": ("rows", "cols"), "edges": ("edges",)}


@dataclass(frozen=True)
class Topology(_Section):
    """Which physical units can be coupled. ``type`` is one of

    - ``all-to-all``: every pair;
    - ``bipartite``: units ``0..n_visible-1`` are visible, the rest hidden; visible-hidden pairs,
      plus hidden-hidden pairs when ``hidden_hidden`` is true (the paper's layout); never
      visible-visible;
    - ``degree-limited``: any graph in which no unit has more than ``max_degree`` couplings
      (routing is programmable). :meth:`mask` returns a reference graph - a circulant ring
      with exactly ``max_degree`` neighbours - and :meth:`admits` accepts any such graph;
    - ``kings``: a ``rows x cols`` lattice, unit ``r*cols + c``, coupled to its 8 neighbours
      (king moves);
    - ``edges``: exactly the listed pairs ``[[i, j], ...]``.
    """

    type: str
    n_visible: int | None = None
    hidden_hidden: bool | None = None
    max_degree: int | None = None
    rows: int | None = None
    cols: int | None = None
    edges: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        t = _choice("type", self.type, TOPOLOGIES)
        allowed = _TOPOLOGY_KEYS[t]
        for key in ("n_visible", "hidden_hidden", "max_degree", "rows", "cols", "edges"):
            if getattr(self, key) is not None and key not in allowed:
                takes = ", ".join(allowed) if allowed else "no other keys"
                raise InputError(f"{key}: does not apply to type {t!r} (it takes {takes})")
        for key in _TOPOLOGY_REQUIRED.get(t, ()):
            if getattr(self, key) is None:
                raise InputError(f"{key}: missing; type {t!r} needs {', '.join(_TOPOLOGY_REQUIRED[t])}")
        big = 10 ** 7
        if t == "bipartite":
            self._set("n_visible", _integer("n_visible", self.n_visible, 1, big))
            hh = False if self.hidden_hidden is None else _bool("hidden_hidden", self.hidden_hidden)
            self._set("hidden_hidden", hh)
        if t == "degree-limited":
            self._set("max_degree", _integer("max_degree", self.max_degree, 1, big))
        if t == "kings":
            self._set("rows", _integer("rows", self.rows, 1, big))
            self._set("cols", _integer("cols", self.cols, 1, big))
        if t == "edges":
            self._set("edges", _edge_tuple(self.edges))

    def check_units(self, units: int) -> None:
        """Cross-check against the unit budget (messages start with the field name)."""
        if self.type == "bipartite" and self.n_visible >= units:
            raise InputError(f"n_visible = {self.n_visible} must be less than units = {units} "
                             "(at least one hidden unit)")
        if self.type == "kings" and self.rows * self.cols != units:
            raise InputError(f"rows x cols = {self.rows} x {self.cols} = {self.rows * self.cols} "
                             f"but units = {units}; a lattice target uses every site, make them match")
        if self.type == "edges":
            for n, (i, j) in enumerate(self.edges):
                if j >= units:
                    raise InputError(f"edges[{n}] = [{i}, {j}] names unit {j}, but units = {units} "
                                     f"(valid unit numbers are 0..{units - 1})")

    @property
    def fixed(self) -> bool:
        """False for ``degree-limited``, where :meth:`mask` is only one admissible choice."""
        return self.type != "degree-limited"

    def mask(self, n: int) -> np.ndarray:
        """(n, n) bool coupling mask on physical units ``0..n-1``: symmetric, False diagonal,
        usable against :attr:`Computer.mask`. For lattices and edge lists it is the subgraph
        induced by the first ``n`` units."""
        n = int(n)
        m = np.zeros((n, n), dtype=bool)
        t = self.type
        if t == "all-to-all":
            m[:] = True
        elif t == "bipartite":
            vis = np.arange(n) < self.n_visible
            m = vis[:, None] ^ vis[None, :]
            if self.hidden_hidden:
                m |= ~vis[:, None] & ~vis[None, :]
        elif t == "degree-limited":
            d = self.max_degree
            if n <= d + 1:
                m[:] = True
            else:  # circulant ring: offsets 1..d//2 each way, plus the antipode when d is odd
                idx = np.arange(n)
                offsets = list(range(1, d // 2 + 1))
                if d % 2 and n % 2 == 0:
                    offsets.append(n // 2)
                for k in offsets:
                    m[idx, (idx + k) % n] = True
        elif t == "kings":
            if n > self.rows * self.cols:
                raise InputError(f"the {self.rows} x {self.cols} lattice has only "
                                 f"{self.rows * self.cols} sites; asked for {n}")
            idx = np.arange(n)
            r, c = idx // self.cols, idx % self.cols
            for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each undirected pair once
                rr, cc = r + dr, c + dc
                ok = (rr < self.rows) & (cc >= 0) & (cc < self.cols)
                j = rr * self.cols + cc
                ok &= j < n
                m[idx[ok], j[ok]] = True
        else:  # edges
            if self.edges:
                e = np.asarray(self.edges)
                e = e[(e < n).all(axis=1)]
                m[e[:, 0], e[:, 1]] = True
        m = m | m.T
        np.fill_diagonal(m, False)
        return m

    def graph(self, n: int):
        """The coupling graph on physical units ``0..n-1`` as a networkx Graph."""
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(int(n)))
        ii, jj = np.nonzero(np.triu(self.mask(n), 1))
        g.add_edges_from(zip(ii.tolist(), jj.tolist()))
        if self.type == "bipartite":
            nx.set_node_attributes(g, {i: i < self.n_visible for i in range(int(n))}, "visible")
        if self.type == "kings":
            nx.set_node_attributes(g, {i: divmod(i, self.cols) for i in range(int(n))}, "site")
        return g

    def admits(self, mask: Any) -> bool:
        """Whether a coupling mask on physical units ``0..n-1`` can be realised."""
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise InputError(f"mask must be square, got shape {m.shape}")
        m = (m | m.T) & ~np.eye(m.shape[0], dtype=bool)
        if self.type == "degree-limited":
            return int(m.sum(axis=1).max(initial=0)) <= self.max_degree
        return not np.any(m & ~self.mask(m.shape[0]))


def _edge_tuple(edges: Any) -> tuple[tuple[int, int], ...]:
    if isinstance(edges, (str, bytes)) or not hasattr(edges, "__iter__"):
        raise InputError(f"edges must be a list of [i, j] pairs, got {_kind_of(edges)}")
    out = set()
    for n, e in enumerate(edges):
        if not isinstance(e, (list, tuple, np.ndarray)) or len(e) != 2:
            raise InputError(f"edges[{n}] = {e!r} must be a pair [i, j] of unit numbers")
        i = _integer(f"edges[{n}][0]", e[0], 0, 10 ** 7)
        j = _integer(f"edges[{n}][1]", e[1], 0, 10 ** 7)
        if i == j:
            raise InputError(f"edges[{n}] = [{i}, {j}] is a self-coupling; on-site terms are J2 "
                             "and J4, not edges")
        out.add((min(i, j), max(i, j)))  # [i, j] and [j, i] are the same coupling
    return tuple(sorted(out))


# ---- components -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Components(_Section):
    """Component choices and non-idealities (all default to ideal).

    resistor_series : "E24" | "E48" | "E96" | "E192" | None (ideal, any value).
    resistor_tolerance, cap_tolerance, inductor_tolerance : catalogue tolerance, a +- bound as
        a fraction (0.01 = 1 %; C0G capacitors are 1-5 %, chip inductors 2-5 %).
    gain_mismatch : 1-sigma relative gain error of each transconductor/OTA (fraction).
    offset_V : 1-sigma input offset voltage of each active element, volts.
    """

    resistor_series: str | None = None
    resistor_tolerance: float = 0.0
    cap_tolerance: float = 0.0
    inductor_tolerance: float = 0.0
    gain_mismatch: float = 0.0
    offset_V: float = 0.0

    def __post_init__(self) -> None:
        self._set("resistor_series", _choice("resistor_series", self.resistor_series,
                                             (None, *E_SERIES)))
        for name in ("resistor_tolerance", "cap_tolerance", "inductor_tolerance", "gain_mismatch"):
            self._set(name, _ranged(name, getattr(self, name), 0.0, 0.5))
        self._set("offset_V", _ranged("offset_V", self.offset_V, 0.0, 1.0, "V"))


# ---- physics per kind -----------------------------------------------------------------------
# Plausible ranges: wide enough for on-chip to bench-top parts, narrow enough to catch a unit
# slip (pF written as F, ms as s, mK as K).
_T = (1e-3, 1e3, "K")           # physical temperature: 1 mK .. 1000 K
_C = (1e-18, 1e-3, "F")
_L = (1e-15, 10.0, "H")
_TAU = (1e-15, 1e3, "s")
_V = (1e-6, 10.0, "V")


@dataclass(frozen=True)
class Noise(_Section):
    """Where the bath noise comes from in an electrical s-unit.

    source : ``injected`` (a generator drives each node; the effective temperature is set
        by the mapping, typically millions of kelvin - docs/design.md#rc) or ``thermal``
        (the circuit's own Johnson noise at ``temperature_K``).
    temperature_K : physical temperature of the circuit (for ``injected``: the ambient, which
        sets the parasitic thermal-noise floor).
    density_A2_per_Hz : injected only, optional: the largest two-sided white current-noise
        level s**2 the generator can deliver per node, A**2/Hz; None = unlimited.
    """

    source: str
    temperature_K: float = 300.0
    density_A2_per_Hz: float | None = None

    def __post_init__(self) -> None:
        self._set("source", _choice("source", self.source, NOISE_SOURCES))
        self._set("temperature_K", _ranged("temperature_K", self.temperature_K, *_T))
        if self.density_A2_per_Hz is not None:
            if self.source != "injected":
                raise InputError("density_A2_per_Hz: applies only to source 'injected'")
            self._set("density_A2_per_Hz",
                      _ranged("density_A2_per_Hz", self.density_A2_per_Hz, 1e-40, 1e-6, "A^2/Hz"))


@dataclass(frozen=True)
class RCPhysics(_Section):
    """RC s-unit (docs/design.md#rc): node voltage v = V_s x on a grounded capacitor.

    C_F : node capacitance, F.
    V_s_V : volts per unit of x. Required for injected noise; for thermal noise it may be
        left out, because C V_s**2 is then fixed by the temperature (compile derives it).
    tau_s : seconds per model time unit (1/mu of the model); sets every conductance.
    noise : a :class:`Noise` section.
    """

    _keys_context = "for kind 'rc'"  # physics keys depend on kind: say so when one is unknown

    C_F: float
    tau_s: float
    noise: Noise
    V_s_V: float | None = None

    def __post_init__(self) -> None:
        self._set("C_F", _ranged("C_F", self.C_F, *_C))
        self._set("tau_s", _ranged("tau_s", self.tau_s, *_TAU))
        self._nested("noise", Noise)
        if self.V_s_V is None:
            if self.noise.source == "injected":
                raise InputError("V_s_V: missing; injected noise needs the voltage scale "
                                 "(volts per unit of x), e.g. 0.1")
        else:
            self._set("V_s_V", _ranged("V_s_V", self.V_s_V, *_V))


@dataclass(frozen=True)
class LCPhysics(RCPhysics):
    """LC s-unit (Normal Computing's stochastic processing unit: RLC cells with injected
    current noise). Underdamped: the overdamped model needs Q = R sqrt(C/L) << 1/2, which
    compile must report.

    L_H : cell inductance, H.
    R_ohm | quality_factor : the cell's parallel damping resistance, or its quality factor
        Q = R sqrt(C/L); give exactly one.
    (plus C_F, V_s_V, tau_s, noise as for RC)
    """

    _keys_context = "for kind 'lc'"

    L_H: float | None = None
    R_ohm: float | None = None
    quality_factor: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.L_H is None:
            raise InputError("L_H: missing; an LC cell needs its inductance in henries")
        self._set("L_H", _ranged("L_H", self.L_H, *_L))
        if (self.R_ohm is None) == (self.quality_factor is None):
            raise InputError("R_ohm: give exactly one of R_ohm or quality_factor "
                             "(they are tied by Q = R sqrt(C/L))")
        if self.R_ohm is not None:
            self._set("R_ohm", _ranged("R_ohm", self.R_ohm, 1e-6, 1e12, "ohm"))
        else:
            self._set("quality_factor", _ranged("quality_factor", self.quality_factor, 1e-6, 1e9))

    @property
    def resistance_ohm(self) -> float:
        """Parallel damping resistance, from R_ohm or from Q = R sqrt(C/L)."""
        if self.R_ohm is not None:
            return self.R_ohm
        return self.quality_factor * math.sqrt(self.L_H / self.C_F)

    @property
    def q_factor(self) -> float:
        """Quality factor Q = R sqrt(C/L) (overdamped needs Q << 1/2)."""
        return self.resistance_ohm * math.sqrt(self.C_F / self.L_H)


@dataclass(frozen=True)
class MechanicalPhysics(_Section):
    """Mechanical oscillator (a micro-cantilever, as in Dago et al. 2021): X = l x.

    length_scale_m : l, metres of displacement per unit of x.
    mass_kg : effective modal mass, kg.
    temperature_K : bath temperature (thermal noise), K.
    tau_s : seconds per model time unit; with l and T it fixes the friction gamma.
    """

    _keys_context = "for kind 'mechanical'"

    length_scale_m: float
    mass_kg: float
    temperature_K: float
    tau_s: float

    def __post_init__(self) -> None:
        self._set("length_scale_m", _ranged("length_scale_m", self.length_scale_m, 1e-15, 1e-2, "m"))
        self._set("mass_kg", _ranged("mass_kg", self.mass_kg, 1e-27, 1.0, "kg"))
        self._set("temperature_K", _ranged("temperature_K", self.temperature_K, *_T))
        self._set("tau_s", _ranged("tau_s", self.tau_s, *_TAU))


@dataclass(frozen=True)
class JosephsonPhysics(_Section):
    """rf-SQUID biased at phi_x = pi, phi = pi + s x (docs/design.md#josephson).

    phase_scale : s, radians of junction phase per unit of x.
    temperature_K : bath temperature, K (a classical Langevin model needs k_B T >> hbar omega_p).
    C_F : junction (plus shunt) capacitance, F; enters beta_C = 2 pi Ic R**2 C / Phi0 << 1.
    tau_s : seconds per model time unit; sets the shunt R (RCSJ).
    Ic_A, L_H : optional fabricated critical current (A) and loop inductance (H). None means
        compile is free to choose them from the mapping; if given, compile must check them.
    inductance : the realised model's inductance network: "first-order" in M/L (default),
        "exact" (the inverse of diag(L) + M, as the RCSJ netlist has it), or "exact-design"
        (L and M chosen as Phi_r^2 K^-1, so the exact network is the programmed one; every
        pair then needs a coupler).
    """

    _keys_context = "for kind 'josephson'"

    phase_scale: float
    temperature_K: float
    C_F: float
    tau_s: float
    Ic_A: float | None = None
    L_H: float | None = None
    inductance: str = "first-order"

    def __post_init__(self) -> None:
        self._set("phase_scale", _ranged("phase_scale", self.phase_scale, 1e-3, 2 * math.pi, "rad"))
        self._set("temperature_K", _ranged("temperature_K", self.temperature_K, *_T))
        self._set("C_F", _ranged("C_F", self.C_F, *_C))
        self._set("tau_s", _ranged("tau_s", self.tau_s, *_TAU))
        if self.Ic_A is not None:
            self._set("Ic_A", _ranged("Ic_A", self.Ic_A, 1e-9, 1e-1, "A"))
        if self.L_H is not None:
            self._set("L_H", _ranged("L_H", self.L_H, *_L))
        if self.inductance not in ("first-order", "exact", "exact-design"):
            raise InputError(f"physics.inductance = {self.inductance!r}; use 'first-order', 'exact' or "
                             "'exact-design'")


PHYSICS: dict[str, type] = {"rc": RCPhysics, "lc": LCPhysics, "mechanical": MechanicalPhysics,
                            "josephson": JosephsonPhysics}

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ---- the target -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target(_Section):
    """An immutable, validated hardware description (see the module docstring).

    Nested sections may be given as dataclass instances or as plain mappings (as read from
    YAML); either way they are validated, and errors name the field path.
    """

    name: str
    kind: str
    units: int
    topology: Topology
    couplings: Couplings
    biases: Quant
    physics: Any
    description: str = ""
    source: str = ""
    diagonal: Trim | None = None
    cubic: RelativeTrim | None = None
    mobility: RelativeTrim | None = None
    components: Components | None = None

    def __post_init__(self) -> None:
        name = _text("name", self.name)
        if not _NAME_RE.fullmatch(name):
            raise InputError(f"name = {name!r} must be a short identifier (letters, digits, '.', "
                             "'_', '-'), e.g. rc-8bit-dense")
        self._set("kind", _choice("kind", self.kind, KINDS))
        self._set("description", _text("description", self.description))
        self._set("source", _text("source", self.source))
        self._set("units", _integer("units", self.units, 1, 10 ** 7))
        self._nested("topology", Topology)
        _prefixed("topology", lambda: self.topology.check_units(self.units))
        self._nested("couplings", Couplings)
        self._nested("biases", Quant)
        self._nested("diagonal", Trim, optional=True)
        self._nested("cubic", RelativeTrim, optional=True)
        self._nested("mobility", RelativeTrim, optional=True)
        if self.components is None:
            self._set("components", Components())
        self._nested("components", Components)
        cls = PHYSICS[self.kind]
        # exact type: LCPhysics subclasses RCPhysics, but an LC block on an rc target is an error
        if isinstance(self.physics, _Section) and type(self.physics) is not cls:
            raise InputError(f"physics is a {type(self.physics).__name__}, but kind is "
                             f"{self.kind!r}; it needs a {cls.__name__}")
        self._nested("physics", cls)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, label: str = "target") -> "Target":
        """Build from a plain mapping (as ``yaml.safe_load`` returns). ``label`` names the
        origin in error messages."""
        try:
            if not isinstance(data, Mapping):
                raise InputError(f"must be a mapping with keys {', '.join(cls.keys())}; "
                                 f"got {_kind_of(data)}")
            data = dict(data)
            schema = data.pop("schema", SCHEMA)
            if schema != SCHEMA:
                raise InputError(f"schema = {schema!r}, expected {SCHEMA!r}; the file is for "
                                 "another version of thermohw")
            return super().from_dict(data)
        except InputError as e:
            raise InputError(f"{label}: {e}") from None

    @classmethod
    def from_yaml(cls, source: str | os.PathLike) -> "Target":
        """Read a target from a YAML file path or from YAML text.

        A ``Path``, or a one-line string ending in ``.yaml``/``.yml`` or naming an existing
        file, is read as a file; any other string is parsed as YAML text.
        """
        text, label = _read_source(source)
        return cls.from_dict(_load_yaml(text, label), label=label)

    @classmethod
    def preset(cls, name: str) -> "Target":
        """A bundled preset by name (see :func:`list_presets`)."""
        names = list_presets()
        if name not in names:
            hint = difflib.get_close_matches(str(name), names, n=1)
            did = f"did you mean {hint[0]!r}? " if hint else ""
            raise InputError(f"unknown target preset {name!r}; {did}available presets: "
                             f"{', '.join(names)}")
        text = (_preset_dir() / f"{name}.yaml").read_text(encoding="utf-8")
        return cls.from_dict(_load_yaml(text, f"preset {name!r}"), label=f"preset {name!r}")

    def replace(self, **changes: Any) -> "Target":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- output -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = super().to_dict()
        order = ["name", "kind", "description", "source", "units", "topology", "couplings",
                 "biases", "diagonal", "cubic", "mobility", "components", "physics"]
        return {"schema": SCHEMA, **{k: d[k] for k in order if k in d}}

    def to_yaml(self) -> str:
        """YAML text that :meth:`from_yaml` reads back to an equal Target."""
        head = f"# thermohw hardware target {self.name!r} ({SCHEMA})\n"
        return head + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None,
                                     allow_unicode=True, width=100)

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_yaml` to ``path`` atomically."""
        text = self.to_yaml()
        return atomic_write(path, lambda fh: fh.write(text), mode="w")

    # ---- topology -----------------------------------------------------------------------
    def _n(self, n_units: int | None) -> int:
        if n_units is None:
            return self.units
        n = _integer("n_units", n_units, 1, 10 ** 7)
        if n > self.units:
            raise InputError(f"n_units = {n} exceeds the unit budget of target {self.name!r} "
                             f"({self.units}); use a larger target or a smaller computer")
        return n

    def mask(self, n_units: int | None = None) -> np.ndarray:
        """(n, n) bool mask of couplings the hardware offers among physical units 0..n-1
        (default: the whole budget). Symmetric, False on the diagonal, like ``Computer.mask``."""
        return self.topology.mask(self._n(n_units))

    def graph(self, n_units: int | None = None):
        """networkx Graph of physical units 0..n-1 and the couplings between them."""
        return self.topology.graph(self._n(n_units))

    def admits(self, mask: Any) -> bool:
        """Whether a coupling mask over physical units can be realised on this target."""
        n = np.shape(mask)[0] if np.ndim(mask) == 2 else -1
        if n > self.units:
            return False
        return self.topology.admits(mask)

    def __repr__(self) -> str:
        return (f"Target({self.name!r}: {self.kind}, {self.units} units, {self.topology.type}, "
                f"{self.couplings.bits}-bit couplings in [{self.couplings.min:g}, {self.couplings.max:g}])")


# ---- YAML reading -----------------------------------------------------------------------------
def _read_source(source: Any) -> tuple[str, str]:
    if isinstance(source, os.PathLike) or (
            isinstance(source, str) and "\n" not in source
            and (source.strip().endswith((".yaml", ".yml")) or os.path.isfile(source))):
        path = Path(source)
        if not os.path.isfile(path):  # not Path.is_file: it raises on a name too long
            raise InputError(f"{path}: no such target file; give an existing YAML file or a "
                             f"preset name ({', '.join(list_presets())})")
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot be read as UTF-8 text ({e})") from None
    if isinstance(source, str):
        return source, "target YAML"
    raise InputError(f"expected a path or YAML text, got {type(source).__name__}")


def _load_yaml(text: str, label: str) -> Any:
    """Parse with ``yaml.safe_load`` (no tags, no objects), after rejecting duplicate keys,
    which plain PyYAML silently resolves to the last value."""
    try:
        _reject_duplicates(yaml.compose(text, Loader=yaml.SafeLoader), label)
        return yaml.safe_load(text)
    except RecursionError:
        raise InputError(f"{label}: the YAML nests too deeply (or refers to itself); targets are "
                         "shallow mappings") from None
    except yaml.constructor.ConstructorError as e:
        raise InputError(f"{label}: {_where(e)}{_one_line(e.problem)}; targets are plain YAML (mappings, "
                         "lists, numbers, strings) read with yaml.safe_load - remove the tag") from None
    except yaml.YAMLError as e:
        problem = _one_line(getattr(e, "problem", None) or str(e))
        raise InputError(f"{label}: invalid YAML {_where(e)}{problem}; check indentation, "
                         "colons and quotes") from None
    except InputError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError) as e:
        # PyYAML's own constructors fail this way on some explicit tags (a malformed
        # !!timestamp, !!int or !!float value)
        raise InputError(f"{label}: a YAML value cannot be read ({type(e).__name__}); targets are plain "
                         "mappings, lists, numbers and strings - remove any !!tag") from None


def _one_line(text: Any) -> str:
    """PyYAML's problem texts can span lines (with a caret diagram); errors are one line."""
    return " ".join(str(text).split())


def _where(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    return f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def _reject_duplicates(node: Any, label: str, path: str = "", _seen: set | None = None) -> None:
    # an alias makes the composed graph share a node: refusing them bounds the walk (no
    # exponential "billion laughs" expansion, no recursion on self-referencing aliases)
    _seen = set() if _seen is None else _seen
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if id(node) in _seen:
            raise InputError(f"{label}: {path or 'document'}: YAML aliases (*name) are not allowed in a "
                             "target; write the values out")
        _seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else None
            where = f"{path}.{k}" if path else str(k)
            if k is not None and k in seen:
                raise InputError(f"{label}: {where}: duplicate key at line {key.start_mark.line + 1}; "
                                 "YAML would silently keep only the last one - remove one of them")
            seen.add(k)
            _reject_duplicates(value, label, where, _seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicates(item, label, f"{path}[{i}]", _seen)


# ---- presets ----------------------------------------------------------------------------------
def _preset_dir():
    return resources.files("thermohw") / "presets"


def list_presets() -> list[str]:
    """Names of the bundled target presets (``thermohw/presets/*.yaml``)."""
    d = _preset_dir()
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """A bundled preset's YAML exactly as written, comments included (``targets --show``);
    the name is checked, and the preset validated, by :meth:`Target.preset`."""
    Target.preset(name)
    return (_preset_dir() / f"{name}.yaml").read_text(encoding="utf-8")


def resolve(spec: Any) -> Target:
    """A Target from a Target, a mapping, a preset name or a path to a YAML file.

    A string with a ``.yaml``/``.yml`` suffix or a directory separator is always a path;
    otherwise a preset name is tried first.
    """
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, Mapping):
        return Target.from_dict(spec)
    if isinstance(spec, os.PathLike):
        return Target.from_yaml(spec)
    if isinstance(spec, str):
        looks_like_path = spec.endswith((".yaml", ".yml")) or os.sep in spec or "/" in spec
        if not looks_like_path and spec in list_presets():
            return Target.preset(spec)
        if os.path.isfile(spec):  # False (not OSError) for a name too long or with a NUL byte
            return Target.from_yaml(Path(spec))
        names = list_presets()
        hint = difflib.get_close_matches(spec, names, n=1)
        did = f"did you mean {hint[0]!r}? " if hint else ""
        raise InputError(f"target {spec!r} is neither a preset nor an existing YAML file; "
                         f"{did}available presets: {', '.join(names)}")
    raise InputError(f"cannot make a target from {type(spec).__name__}; give a preset name, "
                     "a YAML path, a mapping or a Target")


__all__ = [
    "Target", "Topology", "Quant", "Couplings", "Trim", "Components", "Noise", "RCPhysics",
    "LCPhysics", "MechanicalPhysics", "JosephsonPhysics", "PHYSICS", "E_SERIES", "E24",
    "snap_to_series", "list_presets", "resolve", "SCHEMA", "KINDS", "TOPOLOGIES",
]
