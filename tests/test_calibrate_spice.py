"""Calibration stage 2: the SPICE virtual chip (compiled RC netlist + hidden element mismatch,
real ngspice) and the fit of what it implements, including non-reciprocal couplings."""
import math

import numpy as np
import pytest

from thermohw.calibrate import ChipParameters, HiddenErrors, fit
from thermohw.calibrate import design
from thermohw.calibrate.devices import SpiceVirtualChip, copies_circuit
from thermohw.compile import CompileOptions, compile_computer

from conftest import random_computer

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("ngspice") is None,
    reason="ngspice not installed (apt-get install -y ngspice libngspice0)")

DT = 0.01     # sample interval, model time (tau = 1 us: 10 ns)


@pytest.fixture(scope="module")
def program():
    c = random_computer(4, 4, seed=1, connectivity="dense")
    return compile_computer(c, "rc-8bit-dense", CompileOptions(range="full"))


def _errors(program):
    """Directed mismatch at 3x the preset's spreads, plus a +-50 % antisymmetric gain pattern
    (G_ij up, G_ji down: a grossly non-reciprocal chip) so that the asymmetry is ~2.5 standard
    errors per pair (chi^2 of the 28 pair z's ~ 150: robust across seeds)."""
    e = HiddenErrors.draw(program.target, 8, seed=7, reciprocal=False, scale=3.0)
    g = np.triu(np.full((8, 8), 0.5), 1)
    return HiddenErrors(e.c_rel, e.g_rel, e.k3_rel, e.gain + g - g.T, e.offset_V, e.noise_rel)


def test_spice_chip_applies_the_mismatch_to_the_elements(program):
    """No ngspice needed: the truth is the model of the mismatched element values, a perfect
    chip reproduces the realised model, and the netlist carries the mismatched elements and
    the imposed-bias currents."""
    e = _errors(program)
    ch = SpiceVirtualChip(e)
    ch.program(program)
    bad, circ = ch.reveal_circuit(), program.artefact
    np.testing.assert_allclose(bad.C, circ.C * (1 + e.c_rel), rtol=1e-15)
    np.testing.assert_allclose(bad.G, circ.G * (1 + e.gain), rtol=1e-15)
    t = ch.reveal()
    ref = ChipParameters.from_circuit(bad, gauge=circ.gauge, mask=program.realised.mask)
    np.testing.assert_array_equal(t.K, ref.K)
    assert not t.reciprocal and t.asymmetry_rms() > 0.02
    perfect = SpiceVirtualChip(HiddenErrors.none(8))
    perfect.program(program)
    p = perfect.reveal()
    np.testing.assert_allclose(p.K, program.realised.J, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.kT, program.realised.kT, rtol=1e-12)
    # two runs per netlist: copy r of unit i is node u{8r+i}; its bias current is I_b - mu0 C0 V_s h
    specs, h = ch.netlists(design.bias_steps(8, 3, seed=0), 0.1, DT, seed=1, runs=None)
    assert len(specs) == 1 and specs[0]["copies"] == 3
    sup = copies_circuit(bad, -float(np.mean(circ.mu)) * circ.C[0] * bad.V_s * h)
    assert sup.n_units == 24 and np.allclose(sup.G[8:16, 8:16], bad.G)
    net = specs[0]["netlist"]
    assert "TRRANDOM" in net and ".ic " in net and "G9_10 u9 0 u10 0" in net


@pytest.fixture(scope="module")
def spice_recording(program):
    ch = SpiceVirtualChip(_errors(program), runs_per_netlist=8, workers=2)
    ch.program(program)
    rec = ch.run(design.bias_steps(8, 16, seed=10), 40.0, DT, seed=30)
    return ch, rec


@pytest.mark.parametrize("mobility", ["bias", "nominal"])
def test_fit_recovers_the_mismatched_spice_chip(spice_recording, program, mobility):
    """16 runs x 40 model time units of the 8-unit chip in ngspice (TRRANDOM, 2 holds per
    sample): the continuous-time fit recovers the *mismatched* (true) directed parameters -
    z-scores against the hidden truth have mean ~0 and sd ~1 (4-sigma bands for n ~ 90
    correlated z's: |mean| < 0.45, |mean z^2 - 1| < 0.6; calibrated over 4 recordings at
    mean -0.05..0.00, sd 1.02..1.04), and no |z| > 4.5."""
    ch, rec = spice_recording
    truth = ch.reveal()
    f = fit(rec, mask=program.realised.mask, mobility=mobility, discretisation="continuous",
            mu=program.realised.mu if mobility == "nominal" else None)
    z = f.zscores(truth)
    assert abs(z.mean()) < 0.45 and abs(np.mean(z * z) - 1) < 0.6, (z.mean(), np.mean(z * z))
    assert np.max(np.abs(z)) < 4.5
    # rows are fitted separately: the +-50 % antisymmetric gain pattern stands out (chi^2 of
    # the 28 asymmetry z's far above 28 + 5 sd) and follows the true asymmetry pair by pair
    # (true asymmetry ~2 se per pair plus unit noise: correlation ~0.9 expected)
    iu = np.triu_indices(8, 1)
    az = f.asymmetry_z[iu]
    assert np.sum(az ** 2) > 28 + 5 * math.sqrt(56), np.sum(az ** 2)
    s = f.stderr["K"]
    true_z = ((truth.K - truth.K.T) / np.sqrt(s ** 2 + s.T ** 2 + 1e-300))[iu]
    assert np.corrcoef(az, true_z)[0, 1] > 0.6


def test_euler_likelihood_is_biased_on_a_continuous_chip(spice_recording, program):
    """Why the 'continuous' option exists: the plain Euler likelihood under-estimates the
    noise level of a continuous-time chip by ~lambda dt (here ~3 %, > 5 standard errors in the
    nominal gauge); the first-order Ito-Taylor correction removes it."""
    ch, rec = spice_recording
    truth = ch.reveal()
    kw = dict(mask=program.realised.mask, mobility="nominal", mu=program.realised.mu)
    ze = fit(rec, **kw).zscores(truth)
    zc = fit(rec, discretisation="continuous", **kw).zscores(truth)
    f = fit(rec, **kw)
    kt = np.array([n.startswith("kT") for n in f.names])
    assert np.mean(ze[kt]) < -4, ze[kt]
    assert abs(np.mean(zc[kt])) < 4 / math.sqrt(8), zc[kt]     # 8 independent kT z's: 4 sigma
