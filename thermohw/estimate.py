"""What a compiled program costs (``thermohw estimate PROGRAM``): physical time and energy
per generated sample, the netlist's element counts, and the ngspice time the benchmarked cost
laws predict (:mod:`thermohw.spice.cost`).

Energy per sample = the model heat <Q> (kT, from a quick run of the realised ideal model with
the generation protocol) x k_B T_eff (J) + housekeeping: the power figures the backend derives
(``*_power_per_unit_W`` in the program's scales, e.g. the RC chip's resistors and
transconductors, mu C V_s^2 per unit) x units x time. Bias DACs, amplifiers and clocking have
no figures in any target, so they are reported as not modelled rather than guessed.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .compile import CompiledProgram
from .errors import InputError
from .langevin import generate
from .spice.cost import predict
from .spice.netlist import eng_unit

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
           "a": 1e-18}
_NOISE = re.compile(r"\b(TRRANDOM|TRNOISE|PWL)\s*\(", re.I)
_COUPLING = re.compile(r"(G|FC)\d+_\d+$", re.I)
# what each backend power figure (scales key <name>_power_per_unit_W) stands for
_POWER_NAMES = {"housekeeping": "resistors and transconductors, mu C V_s^2", "noise": "injected noise, kT/(R C)"}


def spice_number(tok: str) -> float:
    """A SPICE number with an engineering suffix (1.5u, 2Meg, 3e-9)."""
    m = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(meg|[tgkmunpfa])?[a-z]*", tok.strip(), re.I)
    if not m:
        raise InputError(f"{tok!r} is not a SPICE number")
    return float(m.group(1)) * _SUFFIX.get((m.group(2) or "").lower(), 1.0)


def _logical_lines(path: Path) -> list[str]:
    """The netlist's lines with '+' continuations merged and comments dropped."""
    out: list[str] = []
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        s = ln.strip()
        if not s or s.startswith("*"):
            continue
        if s.startswith("+") and out:
            out[-1] += " " + s[1:]
        else:
            out.append(s)
    return out


def element_counts(netlist: str | Path) -> dict:
    """Elements of a netlist as the simulator instantiates them (subcircuits expanded,
    ``.include`` files read): counts per element letter (R, C, L, B, G, F, I, V, ...), plus
    ``noise_sources`` (TRRANDOM, TRNOISE or PWL sources), ``coupling_elements`` (G<i>_<j> /
    FC<i>_<j>), ``subcircuit_instances`` and ``lines`` (logical lines, includes too)."""
    path = Path(netlist)
    lines = _logical_lines(path)
    expanded: list[str] = []
    for ln in lines:
        if ln.lower().startswith(".include"):
            inc = (path.parent / ln.split(None, 1)[1].strip().strip("'\"")).resolve()
            if not inc.is_file():
                raise InputError(f"{path}: includes {inc.name}, which is missing; compile the program again")
            expanded += _logical_lines(inc)
        else:
            expanded.append(ln)
    subckts: dict[str, list[str]] = {}
    top: list[str] = []
    cur: list[str] | None = None
    for ln in expanded:
        low = ln.lower()
        if low.startswith(".subckt"):
            cur = subckts.setdefault(ln.split()[1].lower(), [])
        elif low.startswith(".ends"):
            cur = None
        elif cur is not None:
            cur.append(ln)
        else:
            top.append(ln)
    counts: dict[str, int] = {}
    extra = {"noise_sources": 0, "coupling_elements": 0, "subcircuit_instances": 0}

    def add(body: list[str], times: int = 1, depth: int = 0) -> None:
        for ln in body:
            if ln.startswith("."):
                continue
            name = ln.split()[0]
            kind = name[0].upper()
            if kind == "X":
                toks = [t for t in ln.split()[1:] if "=" not in t and t.lower() != "params:"]
                sub = next((t.lower() for t in reversed(toks) if t.lower() in subckts), None)
                if sub is None or depth > 20:
                    counts["X"] = counts.get("X", 0) + times
                    continue
                extra["subcircuit_instances"] += times
                add(subckts[sub], times, depth + 1)
                continue
            counts[kind] = counts.get(kind, 0) + times
            if kind in "IV" and _NOISE.search(ln):
                extra["noise_sources"] += times
            if _COUPLING.fullmatch(name):
                extra["coupling_elements"] += times

    add(top)
    return {"by_letter": dict(sorted(counts.items())), **extra, "lines": len(expanded)}


def _tran(netlist: Path) -> tuple[float, float] | None:
    """(step, stop) of the netlist's .tran card, seconds."""
    for ln in _logical_lines(netlist):
        if ln.lower().startswith(".tran"):
            t = ln.split()
            return spice_number(t[1]), spice_number(t[2])
    return None


def estimate(p: CompiledProgram, folder: str | Path | None = None, *, runs: int = 8, seed: int = 0,
             dt: float = 1e-3) -> dict:
    """The estimate as a JSON-ready dict (see the module docstring). ``folder``: the program's
    folder, for its netlist (element counts, noise samples); ``runs``/``seed``/``dt``: the quick
    ideal generation that gives the model heat."""

    c = p.realised
    tau = float(p.scales.get("tau_s") or p.target.physics.tau_s)
    t_f = p.options.generation_time(p.source)
    t_sample = t_f * tau
    tr = generate(c, int(runs), t_f=t_f, dt=dt, seed=seed, stratonovich=False)
    q = tr.heat_kT
    kT_J = p.energy_scale.kT_ref_J if p.energy_scale is not None else p.scales.get("kT_J")
    est: dict = {"program": str(folder) if folder is not None else None, "target": p.target.name,
                 "kind": p.target.kind, "units": c.n_units, "visible_units": c.n_visible,
                 "couplings": c.n_couplings, "tau_s": tau, "t_f_model_units": t_f,
                 "time_per_sample_s": t_sample,
                 "time_note": "the generation phase; the coupling-free equilibration before it (t_eq = t_f) takes "
                              "as long again unless the chip keeps equilibrating between samples"}
    heat = {"mean_kT": float(np.mean(q)), "sem_kT": float(np.std(q, ddof=1) / math.sqrt(len(q))),
            "runs": int(runs), "seed": int(seed), "dt": dt,
            "source": "realised ideal model, generation protocol (thermohw.langevin.generate)"}
    energy: dict = {"model_heat": heat}
    total = None
    if kT_J:
        heat["kT_J"] = float(kT_J)
        heat["mean_J"] = heat["mean_kT"] * float(kT_J)
        total = heat["mean_J"]
    hk = {}
    for k, v in p.scales.items():
        if k.endswith("_power_per_unit_W") and isinstance(v, (int, float)):
            name = k[:-len("_power_per_unit_W")]
            hk[name] = {"power_per_unit_W": float(v), "power_W": float(v) * c.n_units,
                        "energy_per_sample_J": float(v) * c.n_units * t_sample}
            total = (total or 0.0) + hk[name]["energy_per_sample_J"]
    energy["housekeeping"] = hk or "not modelled (the backend derives no power figures)"
    energy["bias_dacs_and_amplifiers"] = "not modelled (no target has static power figures for them)"
    energy["total_per_sample_J"] = total
    est["energy"] = energy
    net = Path(folder) / "chip.cir" if folder is not None else None
    if net is not None and net.is_file():
        est["elements"] = element_counts(net)
        tran = _tran(net)
        if tran is not None:
            step, stop = tran
            samples = int(math.ceil(stop / step - 1e-6))
            topo = p.target.topology.type
            est["ngspice"] = predict(topo, c.n_units, c.n_visible, samples)
            if p.target.kind != "rc":
                est["ngspice"]["note"] += f"; the laws were measured on RC netlists, this is {p.target.kind}"
    else:
        est["elements"] = "no netlist (chip.cir) in the program folder"
    return est


def _fmt_s(v: float) -> str:
    return eng_unit(v, "s")


def estimate_text(est: dict) -> str:
    lines = [f"thermohw estimate: {est['program']} -> target {est['target']} ({est['kind']}), {est['units']} units "
             f"({est['visible_units']} visible), {est['couplings']} couplings"]
    lines.append(f"time per sample: {_fmt_s(est['time_per_sample_s'])} (t_f = {est['t_f_model_units']:g} model time "
                 f"units x tau = {_fmt_s(est['tau_s'])}); {est['time_note']}")
    e = est["energy"]
    h = e["model_heat"]
    tot = e["total_per_sample_J"]
    lines.append("energy per sample: " + (eng_unit(tot, "J") if tot is not None else "not available (no energy scale)"))
    heat = f"  model heat <Q> = {h['mean_kT']:.4g} ± {h['sem_kT']:.2g} kT (s.e., n = {h['runs']} ideal runs)"
    if "mean_J" in h:
        heat += f" x kT = {eng_unit(h['kT_J'], 'J')} -> {eng_unit(h['mean_J'], 'J')}"
    lines.append(heat)
    if isinstance(e["housekeeping"], dict):
        for k, v in e["housekeeping"].items():
            lines.append(f"  housekeeping ({_POWER_NAMES.get(k, k.replace('_', ' '))}): {eng_unit(v['power_per_unit_W'], 'W')} per unit x "
                         f"{est['units']} = {eng_unit(v['power_W'], 'W')} -> {eng_unit(v['energy_per_sample_J'], 'J')}")
    else:
        lines.append(f"  housekeeping: {e['housekeeping']}")
    lines.append(f"  bias DACs and amplifiers: {e['bias_dacs_and_amplifiers']}")
    el = est["elements"]
    if isinstance(el, dict):
        letters = ", ".join(f"{k} {v}" for k, v in el["by_letter"].items())
        lines.append(f"elements (chip.cir, subcircuits expanded): {letters}; noise sources {el['noise_sources']}, "
                     f"coupling elements {el['coupling_elements']}")
    else:
        lines.append(f"elements: {el}")
    ng = est.get("ngspice")
    if ng:
        if "seconds" in ng:
            t = f"{ng['seconds']:.3g} s"
        else:
            t = f"{ng['seconds_low']:.3g} s to {ng['seconds_high']:.3g} s"
        lines.append(f"ngspice, one run: {t} predicted for {ng['samples']} noise samples ({ng['law']}, size {ng['size']})")
        lines.append(f"  from {ng['source']}; {ng['note']}")
    return "\n".join(lines) + "\n"
