"""Running the system ngspice in batch mode and reading its binary raw files.

``ngspice -b -r out.raw net.cir`` in a temporary folder: one process per run, so runs
parallelise cleanly (docs/design.md#ngspice). ngspice comes from the system package manager.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ThermohwError

INSTALL_HINT = "install it with: apt-get update && apt-get install -y ngspice libngspice0"


class NgspiceError(ThermohwError):
    """ngspice is missing, failed, or did not converge."""


def find_ngspice() -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        raise NgspiceError(f"ngspice was not found on PATH; {INSTALL_HINT}")
    return exe


@dataclass(frozen=True)
class RawData:
    """Vectors of one analysis from a raw file: ``names`` in file order, ``data[name]``."""

    title: str
    plotname: str
    names: tuple[str, ...]
    data: dict

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.data[name.lower()]
        except KeyError:
            raise KeyError(f"raw file has no vector {name!r}; it has {list(self.names)}") from None


def read_raw(path: str | Path) -> RawData:
    """Read an ngspice raw file (binary or ASCII, real data; the first plot)."""
    raw = Path(path).read_bytes()
    head: dict[str, str] = {}
    names: list[str] = []
    pos = 0
    lines_iter = iter(raw.split(b"\n"))
    offset = 0
    in_vars = False
    for line in lines_iter:
        offset += len(line) + 1
        text = line.decode("latin-1").rstrip("\r")
        if in_vars:
            if text.startswith("\t") or text.startswith(" "):
                parts = text.split()
                names.append(parts[1].lower())
                continue
            in_vars = False
        if text.startswith("Binary:") or text.startswith("Values:"):
            pos = offset
            binary = text.startswith("Binary:")
            break
        if text.startswith("Variables:"):
            in_vars = True
            continue
        if ":" in text:
            k, v = text.split(":", 1)
            head[k.strip().lower()] = v.strip()
    else:
        raise NgspiceError(f"{path}: not an ngspice raw file (no Binary:/Values: section)")
    nvar = int(head.get("no. variables", "0"))
    npts = int(head.get("no. points", "0"))
    if "complex" in head.get("flags", ""):
        raise NgspiceError(f"{path}: complex raw data is not supported")
    if len(names) != nvar:
        raise NgspiceError(f"{path}: header lists {len(names)} variables, expected {nvar}")
    if binary:
        need = nvar * npts * 8
        body = raw[pos:pos + need]
        if len(body) < need:
            npts = len(body) // (8 * nvar)  # a run that stopped early: keep the complete points
        arr = np.frombuffer(body[:npts * nvar * 8], dtype="<f8").reshape(npts, nvar)
    else:
        vals = raw[pos:].decode("latin-1").split()
        # ASCII: index, then nvar values per point
        rows = []
        i = 0
        while i < len(vals):
            i += 1
            rows.append([float(v.split(",")[0]) for v in vals[i:i + nvar]])
            i += nvar
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, nvar)
    data = {n: arr[:, k].copy() for k, n in enumerate(names)}
    return RawData(head.get("title", ""), head.get("plotname", ""), tuple(names), data)


def run_batch(netlist: str, *, workdir: str | Path | None = None, timeout: float | None = None,
              keep: bool = False) -> RawData:
    """Run ``netlist`` (text) with ``ngspice -b -r`` and return its raw data.

    Errors, including "timestep too small" convergence failures, raise NgspiceError with the
    tail of ngspice's log; ``keep`` leaves the folder (netlist, log, raw) for inspection.
    """
    exe = find_ngspice()
    tmp = Path(tempfile.mkdtemp(prefix="thermohw-spice-", dir=workdir))
    try:
        cir, raw, log = tmp / "net.cir", tmp / "out.raw", tmp / "ngspice.log"
        cir.write_text(netlist)
        env = {**os.environ, "SPICE_ASCIIRAWFILE": "0"}
        try:
            p = subprocess.run([exe, "-b", "-r", str(raw), "-o", str(log), str(cir)], cwd=tmp,
                               capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:  # subprocess.run has killed it (SIGKILL also ends a stopped one)
            raise NgspiceError(f"ngspice did not finish within {timeout:g} s and was stopped "
                               "(a hung run, or a netlist larger than the timeout allows)") from None
        if p.returncode < 0:  # killed from outside (OOM killer, an operator, a lost node)
            try:
                sig = signal.Signals(-p.returncode).name
            except ValueError:
                sig = f"signal {-p.returncode}"
            raise NgspiceError(f"ngspice was killed by {sig} before it finished")
        text = (log.read_text(errors="replace") if log.exists() else "") + p.stdout + p.stderr
        bad = [ln for ln in text.splitlines() if "timestep too small" in ln.lower()
               or ln.lower().startswith("error") or "fatal" in ln.lower()]
        if p.returncode != 0 or bad or not raw.exists():
            tail = "; ".join((bad or text.strip().splitlines())[-4:])
            raise NgspiceError(f"ngspice failed (exit {p.returncode}): {tail}")
        return read_raw(raw)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
