"""The sections of a :class:`thermohw.target.Target`: quantisation (couplings, biases, trims),
topology, components, noise and the physics of each kind (rc, lc, mechanical, josephson), each
validated on construction. Importable from :mod:`thermohw.target` as before."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .target_fields import (E_SERIES, NOISE_SOURCES, PRUNE, ROUNDING, TOPOLOGIES, _bool, _choice, _integer,
                            _kind_of, _ranged, _Section)


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
