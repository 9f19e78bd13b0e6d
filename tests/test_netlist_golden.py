"""Golden-file style (hls4ml): the netlist compile writes, read back element by element into
a model, equals realised.npz - the ideal model the program promises - parameter by parameter.

The readers below know only the netlist text and the SI scales in report.json; they invert the
element formulas of docs/design.md#rc and #lc independently of the backends' own inverses
(rc.circuit_parameters, lc.circuit_to_computer). Values are written with 12 significant digits
(spice.netlist.eng), so the comparison is to 1e-9 relative.
"""
import json
import re

import numpy as np
import pytest

from conftest import random_computer
from thermohw import Computer, Target, compile_computer

_SUFFIX = {"T": 1e12, "G": 1e9, "Meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
           "a": 1e-18}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:Meg|[TGkmunpfa])?"
RTOL = 1e-9


def _v(tok: str) -> float:
    m = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(Meg|[TGkmunpfa])?", tok)
    assert m, f"not a SPICE number: {tok!r}"
    return float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1.0)


def _program(tmp_path, target):
    """A 6-unit model with per-unit J2 (exercising the trims), compiled and saved."""
    c = random_computer(4, 2, seed=5, scale=0.3)
    c = c.replace(J2=np.array([0.8, 1.0, 1.2, 0.9, 1.1, 1.0]))
    p = compile_computer(c, target)
    p.save(tmp_path)
    rep = json.loads((tmp_path / "report.json").read_text())
    return (tmp_path / "chip.cir").read_text(), rep["scales"], Computer.load(tmp_path / "realised.npz")


def _compare(read: dict, realised: Computer) -> None:
    for k in ("J2", "J4", "b", "mu", "kT", "J"):
        want = getattr(realised, k)
        np.testing.assert_allclose(read[k], want, rtol=RTOL, atol=RTOL * np.max(np.abs(want)), err_msg=k)
    assert np.array_equal(read["J"] != 0, realised.J != 0)  # the same couplings exist


def test_rc_netlist_reads_back_to_the_realised_model(tmp_path):
    text, s, realised = _program(tmp_path, Target.preset("rc-8bit-dense").replace(units=6))
    n = realised.n_units
    V_s, tau = s["V_s_V"], s["tau_s"]
    a = s["mu_per_s"] * s["C_F"]                      # the gauge mu_i C_i every unit shares
    unit = {}
    for m in re.finditer(rf"^X(\d+) u\d+ sunit params: c=({_NUM}) r=({_NUM}) gt=({_NUM}) k3=({_NUM}) "
                         rf"ib=({_NUM})$", text, re.M):
        unit[int(m.group(1))] = [_v(g) for g in m.groups()[1:]]
    C, R, gt, k3, ib = np.array([unit[i] for i in range(n)]).T
    G = np.zeros((n, n))
    for m in re.finditer(rf"^G(\d+)_(\d+) u\d+ 0 u\d+ 0 ({_NUM})$", text, re.M):
        G[int(m.group(1)), int(m.group(2))] = _v(m.group(3))
    s2 = np.zeros(n)
    for m in re.finditer(rf"^In(\d+) 0 u\d+ DC 0 TRRANDOM\(2 ({_NUM}) 0 ({_NUM}) 0\)$", text, re.M):
        s2[int(m.group(1))] = _v(m.group(3)) ** 2 * _v(m.group(2))   # white level NA^2 NT
    assert len(unit) == n and np.all(s2 > 0)
    # C dv/dt = -(1/R + gt) v - k3 v^3 + I_b - G v + noise, v = V_s x, time t = tau s
    _compare({"J2": (1 / R + gt) / (2 * a), "J4": k3 * V_s ** 2 / (4 * a), "b": -ib / (V_s * a),
              "mu": a * tau / C, "kT": s2 / (2 * a * C * V_s ** 2), "J": G / a}, realised)


def test_lc_netlist_reads_back_to_the_realised_model(tmp_path):
    text, s, realised = _program(tmp_path, Target.preset("lc-overdamped-96").replace(units=6))
    n = realised.n_units
    phi, tau, E = s["phi_s_Wb"], s["tau_s"], s["energy_per_model_unit_J"]
    el = {k: np.zeros(n) for k in ("C", "R", "L", "FT", "BQ", "IB", "s2")}
    for kind in ("C", "R", "L"):
        for m in re.finditer(rf"^{kind}(\d+) u\d+ (?:0|m\d+) ({_NUM})(?: IC=\S+)?$", text, re.M):
            el[kind][int(m.group(1))] = _v(m.group(2))
    for m in re.finditer(rf"^FT(\d+) u\d+ 0 VL\d+ ({_NUM})$", text, re.M):
        el["FT"][int(m.group(1))] = _v(m.group(2))
    for m in re.finditer(rf"^BQ(\d+) u\d+ 0 I=({_NUM})\*i\(VL(\d+)\)\*i\(VL\3\)\*i\(VL\3\)$", text, re.M):
        assert m.group(1) == m.group(3)
        el["BQ"][int(m.group(1))] = _v(m.group(2))
    for m in re.finditer(rf"^IB(\d+) 0 u\d+ DC ({_NUM})$", text, re.M):
        el["IB"][int(m.group(1))] = _v(m.group(2))
    for m in re.finditer(rf"^IN(\d+) 0 u\d+ DC 0 TRRANDOM\(2 ({_NUM}) 0 ({_NUM}) 0\)$", text, re.M):
        el["s2"][int(m.group(1))] = _v(m.group(3)) ** 2 * _v(m.group(2))
    F = np.zeros((n, n))
    for m in re.finditer(rf"^FC(\d+)_(\d+) u\d+ 0 VL(\d+) ({_NUM})$", text, re.M):
        assert m.group(2) == m.group(3)
        F[int(m.group(1)), int(m.group(2))] = _v(m.group(4))
    assert np.all(el["C"] > 0) and np.all(el["L"] > 0) and np.all(el["s2"] > 0)
    assert np.count_nonzero(el["FT"]) > 0                   # the J2 trims are in the netlist
    L, R = el["L"], el["R"]
    # KCL at u<i>: C dv/dt = -v/R - (1 + a) Phi/L - k3 Phi^3 + I_b - sum_j K_ij Phi_j + noise, Phi = L i(VL)
    k3 = el["BQ"] / L ** 3                                  # B-source written in i(VL) = Phi / L
    K = F / L[None, :]                                      # CCCS gain K_ij L_j on i(VL<j>)
    _compare({"J2": (1 + el["FT"]) / L * phi ** 2 / (2 * E), "J4": k3 * phi ** 4 / (4 * E),
              "b": -el["IB"] * phi / E, "mu": tau * R * E / phi ** 2, "kT": el["s2"] * R / (2 * E),
              "J": K * phi ** 2 / E}, realised)
    # and the cells are overdamped at the local stiffness, as the preset promises
    assert np.max(R * np.sqrt(el["C"] * (1 + el["FT"]) / L)) < 0.03
