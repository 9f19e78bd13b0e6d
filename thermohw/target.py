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
# the field checks and the sections have their own modules (target_fields, target_sections);
# every name stays importable from here
from .target_fields import (  # noqa: F401
    E24, E_SERIES, NOISE_SOURCES, PRUNE, ROUNDING, TOPOLOGIES, _NUMBER_RE, _Section, _bool, _choice, _e_series,
    _integer, _kind_of, _number, _prefixed, _ranged, _show, _text, _unknown_key, snap_to_series)
from .target_sections import (  # noqa: F401
    _C, _L, _T, _TAU, _TOPOLOGY_KEYS, _TOPOLOGY_REQUIRED, _V, PHYSICS, Components, Couplings, JosephsonPhysics,
    LCPhysics, MechanicalPhysics, Noise, Quant, RCPhysics, RelativeTrim, Topology, Trim, _edge_tuple)

SCHEMA = "thermohw.target/1"
KINDS = tuple(PHYSICS)   # one physics section per kind (target_sections.PHYSICS)


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
