"""Where a result came from: the ``provenance`` object of every report JSON and the one
provenance comment line of every netlist header.

Recorded: the thermohw version and, when the package runs from a git checkout, the commit
(and whether the work tree had uncommitted changes); Python, numpy and scipy versions; the
ngspice version where ngspice ran; the command line; the seeds. Nothing here may fail a run:
a missing git or ngspice gives ``None``.
"""
from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._version import __version__

_PACKAGE_DIR = Path(__file__).resolve().parent


def thermohw_version() -> str:
    return str(__version__)


@functools.lru_cache(maxsize=1)
def git_commit() -> dict | None:
    """{"commit", "dirty"} of the checkout the package was imported from, or None when it is
    not a checkout (an installed wheel) or git is unavailable."""
    root = _PACKAGE_DIR.parent
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        return None
    try:
        head = subprocess.run([git, "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        st = subprocess.run([git, "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None}


@functools.lru_cache(maxsize=1)
def ngspice_version() -> str | None:
    """ngspice's version string (``ngspice -v``: e.g. "ngspice-39.3"), None if not installed."""
    exe = shutil.which("ngspice")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"ngspice-\S+", r.stdout + r.stderr)
    return m.group(0) if m else None


_COMMAND: list[str] | None = None


def set_command(argv: Sequence[str]) -> None:
    """The command line to record (the CLI sets it: ``main(argv)`` may be called in-process)."""
    global _COMMAND
    _COMMAND = [str(a) for a in argv]


def command_line(argv: Sequence[str] | None = None) -> list[str]:
    """The recorded command (:func:`set_command`), else sys.argv, with the program reduced to
    its name (the venv path says nothing portable)."""
    argv = list((_COMMAND or sys.argv) if argv is None else argv)
    if argv:
        name = Path(argv[0]).name
        argv[0] = "thermohw" if name in ("__main__.py", "thermohw") else name
    return [str(a) for a in argv]


def provenance(*, seeds: Mapping[str, Any] | None = None, ngspice: bool = False) -> dict:
    """The ``provenance`` object of a report. ``ngspice``: whether ngspice ran for it."""
    import numpy
    import scipy

    g = git_commit()
    return {"thermohw": thermohw_version(),
            "git_commit": g["commit"] if g else None,
            "git_dirty": g["dirty"] if g else None,
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "ngspice": ngspice_version() if ngspice else None,
            "command": command_line(),
            "seeds": {k: v for k, v in (seeds or {}).items()}}


def _clean(text: str, limit: int) -> str:
    """One printable line: control characters (newlines included, which would end the comment
    and inject SPICE cards) become spaces; cut to ``limit`` characters."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return s if len(s) <= limit else s[:limit - 3] + "..."


NETLIST_PREFIX = "* provenance: "


def netlist_line(argv: Sequence[str] | None = None) -> str:
    """The provenance comment line of a netlist or parameter-set header (without the comment
    character when used by YAML writers: see :func:`header_text`)."""
    return NETLIST_PREFIX + header_text(argv)


def header_text(argv: Sequence[str] | None = None) -> str:
    g = git_commit()
    commit = f"git {g['commit'][:12]}{' (modified)' if g['dirty'] else ''}" if g else "git: not a checkout"
    import shlex

    cmd = " ".join(shlex.quote(a) for a in command_line(argv))
    return _clean(f"thermohw {thermohw_version()}, {commit}, command: {cmd}", 400)


def is_provenance_line(line: str) -> bool:
    """Whether a header line is the provenance line (golden-file comparisons skip it)."""
    return line.lstrip("*# ").startswith("provenance: ")


def strip_provenance(text: str) -> str:
    """``text`` without its provenance comment line(s): for comparing generated files."""
    return "".join(ln for ln in text.splitlines(keepends=True) if not is_provenance_line(ln))


def env_summary() -> dict:
    """Versions only (no command, no seeds): for tools such as ``thermohw doctor``."""
    p = provenance()
    return {k: p[k] for k in ("thermohw", "git_commit", "python", "numpy", "scipy")} | {
        "platform": platform.platform(), "cpus": os.cpu_count()}
