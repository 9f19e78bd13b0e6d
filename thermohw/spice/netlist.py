"""Netlist text helpers: engineering notation and sanitising of anything user-supplied.

SPICE reads a line starting with '.' as a control card and '*' as a comment; ngspice also
executes '.control' blocks and 'shell' commands and opens '.include' paths. Every string a
user can influence (model names, metadata, titles) therefore goes into the netlist only as a
single comment line with control characters and newlines removed, or as a node/element name
restricted to [A-Za-z0-9_].
"""
from __future__ import annotations

import math
import re

_PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "Meg"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"),
             (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a")]
_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def eng(value: float, digits: int = 12) -> str:
    """A number in SPICE engineering notation, exact to ``digits`` significant digits
    (e.g. 4.7e-12 -> '4.7p', 2e6 -> '2Meg'). SPICE reads 'M' as milli, hence 'Meg'."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"cannot write a non-finite value ({v}) into a netlist")
    if v == 0.0:
        return "0"
    a = abs(v)
    for scale, p in _PREFIXES:
        if a >= scale * (1 - 1e-15):
            m = f"{v / scale:.{digits}g}"
            return f"{m}{p}"
    return f"{v:.{digits}g}"


def eng_unit(value: float, unit: str, digits: int = 4) -> str:
    """Human-readable engineering notation with a unit, for reports: 4.7 pF, 2 MOhm."""
    v = float(value)
    if v == 0 or not math.isfinite(v):
        return f"{v:g} {unit}"
    pre = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"),
           (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a"), (1e-21, "z"), (1e-24, "y")]
    a = abs(v)
    for scale, p in pre:
        if a >= scale * (1 - 1e-12):
            return f"{v / scale:.{digits}g} {p}{unit}"
    return f"{v:.{digits}g} {unit}"


def sanitize_name(text: str, fallback: str = "x") -> str:
    """An identifier safe as a SPICE node/element/subcircuit name: [A-Za-z0-9_] only."""
    s = _NAME_RE.sub("_", str(text))[:64]
    return s if s and s.strip("_") else fallback


def sanitize_comment(text: str, max_len: int = 200) -> str:
    """One line of text safe to place after '* ' in a netlist: newlines and control
    characters removed, so nothing can start a new card (.control, shell, .include)."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    s = s.replace("\\", "/")  # no line continuations
    return s[:max_len]


def comment_lines(meta: dict | None, notes: list[str] | None) -> list[str]:
    """Header comment lines from user-supplied metadata and notes, sanitised: text that reaches a
    netlist only ever does so inside ``*`` comments (every backend's writer uses this)."""
    return ([f"* {sanitize_comment(k, 40)}: {sanitize_comment(v)}" for k, v in (meta or {}).items()]
            + [f"* {sanitize_comment(t)}" for t in (notes or [])])
