"""Calibration beyond RC: the LC backend's mismatch model (its own elements: C, L, R, the
quartic and coupling CCCS gains, series offsets, the noise amplitude), virtual chips built from
it (ideal and ngspice), and the correction loop on an LC chip. Fixed seeds."""
import math
import shutil

import numpy as np
import pytest

from thermohw import InputError
from thermohw.backends import lc
from thermohw.calibrate import IdealVirtualChip, design, fit
from thermohw.calibrate.correct import CorrectionConfig, calibrate, correction_step, measure, parameter_errors
from thermohw.calibrate.devices import SpiceVirtualChip, chip_truth, draw_errors
from thermohw.compile import CompileOptions, compile_computer

from conftest import random_computer


def lc_program(max_abs_J: float = 0.9):
    c = random_computer(4, 4, seed=1, connectivity="dense", scale=0.5)
    c = c.replace(J=c.J * max_abs_J / np.abs(c.J).max())
    return compile_computer(c, "lc-overdamped-96", CompileOptions(range="full", bits=8))


@pytest.fixture(scope="module")
def program():
    return lc_program()


def test_lc_mismatch_moves_the_model_as_its_physics_says(program):
    """Each element error moves the overdamped model as the LC mapping says: J2 ~ 1/L,
    mu ~ R, kT = s^2 R/(2E) ~ (1 + n)^2 R, J4 ~ k3, K ~ CCCS gain, and a series offset V_os
    adds V_os Phi_s/(R E) to b; C (the mass) does not enter. A perfect chip is the realised model."""
    circ, real = program.artefact, program.realised
    perfect = chip_truth(lc, lc.Mismatch.none(8), circ, mask=real.mask)
    for k in ("J2", "J4", "b", "mu", "kT"):
        np.testing.assert_array_equal(getattr(perfect, k), getattr(real, k))
    np.testing.assert_array_equal(perfect.K, real.J)
    e = draw_errors(program.target, 8, seed=4, reciprocal=False, scale=3.0)
    assert isinstance(e, lc.Mismatch) and not e.reciprocal
    assert np.all(e.l_rel != 0) and np.all(e.c_rel != 0) and np.all(e.offset_V != 0)
    t = chip_truth(lc, e, circ, mask=real.mask)
    R_bad = circ.R * (1 + e.r_rel)
    np.testing.assert_allclose(t.J2, real.J2 / (1 + e.l_rel), rtol=1e-12)
    np.testing.assert_allclose(t.mu, real.mu * (1 + e.r_rel), rtol=1e-12)
    np.testing.assert_allclose(t.kT, real.kT * (1 + e.noise_rel) ** 2 * (1 + e.r_rel), rtol=1e-12)
    np.testing.assert_allclose(t.J4, real.J4 * (1 + e.k3_rel), rtol=1e-12)
    np.testing.assert_allclose(t.K, real.J * (1 + e.gain), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.b, real.b + e.offset_V * circ.phi_s / (R_bad * circ.E), rtol=1e-12, atol=1e-12)
    # the capacitors are wrong too, but only the mass (Q) sees them
    e_c = lc.Mismatch(**{**{k: getattr(lc.Mismatch.none(8), k) for k in ("l_rel", "r_rel", "k3_rel", "gain",
                                                                         "offset_V", "noise_rel")},
                         "c_rel": np.full(8, 0.2)})
    t_c = chip_truth(lc, e_c, circ, mask=real.mask)
    np.testing.assert_array_equal(t_c.J2, real.J2)
    np.testing.assert_allclose(e_c.apply_to_circuit(circ).mass, circ.mass * 1.2, rtol=1e-12)


def test_mismatch_records_refuse_bad_values_and_kinds(program):
    with pytest.raises(InputError, match="l_rel <= -1"):
        lc.Mismatch(np.zeros(2), -np.ones(2), np.zeros(2), np.zeros(2), np.zeros((2, 2)), np.zeros(2), np.zeros(2))
    with pytest.raises(InputError, match="gain has shape"):
        lc.Mismatch.none(3).__class__(*([np.zeros(3)] * 4), np.zeros((2, 2)), np.zeros(3), np.zeros(3))
    mech = compile_computer(random_computer(2, 2, seed=0), "mechanical-overdamped")
    with pytest.raises(InputError, match="no mismatch model for 'mechanical'.*rc, lc.*replay"):
        IdealVirtualChip(chip_seed=0).program(mech)
    # an RC chip's errors cannot be built into an LC program
    from thermohw.calibrate import HiddenErrors
    with pytest.raises(InputError, match="backends.lc.Mismatch"):
        IdealVirtualChip(HiddenErrors.none(8)).program(program)


def test_a_corrected_lc_program_keeps_its_units(program):
    """Re-lowering a corrected program (other J2 trims, so another mean J2) keeps the flux,
    time and energy scales the chip was compiled in: the inductor, resistor and flux per unit
    of x do not move because a trim did."""
    chip = IdealVirtualChip(chip_seed=2, scale=5.0)
    f, _ = measure(chip, program, design.bias_steps(8, 256, amplitude=3.0, seed=0), 20.0, 0.05, 0,
        mask=program.realised.mask, config=CorrectionConfig())
    q = correction_step([(program, f)], program.realised).program
    assert not np.allclose(np.mean(q.programmed.J2), np.mean(program.programmed.J2), rtol=1e-4, atol=0)
    for k in ("tau_s", "phi_s_Wb", "energy_per_model_unit_J", "J2_unit"):
        assert q.scales[k] == program.scales[k], k
    np.testing.assert_array_equal(q.artefact.L, program.artefact.L)
    np.testing.assert_allclose(lc.circuit_to_computer(q.artefact).J2, q.programmed.J2, rtol=1e-12)


def test_lc_correction_reduces_the_trimmable_errors(program):
    """An LC chip with 5x the preset's spreads (10 % CCCS gain sd, 5 % C, 10 % L, 5 % R, 5 mV
    series offsets), measured on the ideal virtual chip (2048 bias-step runs of 20 model time
    units at amplitude 3, as the RC loop of test_calibrate_correct.py) and corrected 4 times.
    The coupling error falls >= 5x (measured over measurement seeds 11..14: 8.9-10.0x, the
    floor is the 8-bit LSB/sqrt(12) = 0.0023 plus pooled measurement noise), the biases to
    their 8-bit LSB/sqrt(12) = 0.009 (from 0.74: series offsets are large on a 25 ohm cell),
    J2 (10-bit trims) >= 10x (22-26x), kT >= 10x (57-74x). No trim for J4 and mu: unchanged."""
    chip = IdealVirtualChip(chip_seed=7, scale=5.0)
    truths = []
    calibrate(chip, program, protocol=design.bias_steps(8, 2048, amplitude=3.0, seed=3), duration=20.0,
              sample_interval=0.05, seed=11, config=CorrectionConfig(iterations=4),
              on_iteration=lambda *a: truths.append(chip.reveal()), chunk_runs=256)
    e0, e1 = parameter_errors(truths[0], program.realised), parameter_errors(truths[-1], program.realised)
    lsb_b = 8.0 / 255
    assert e0["J"] / e1["J"] >= 5, (e0["J"], e1["J"])
    assert e1["b"] < 1.5 * lsb_b / math.sqrt(12) and e0["b"] > 20 * e1["b"], (e0["b"], e1["b"])
    assert e0["J2"] / e1["J2"] >= 10 and e0["kT"] / e1["kT"] >= 10, (e0, e1)
    assert e1["J4"] == e0["J4"] and e1["mu"] == e0["mu"]


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed (apt-get install -y ngspice libngspice0)")
def test_fit_recovers_the_mismatched_lc_spice_chip(program):
    """16 runs x 40 model time units of the 8-unit LC chip (directed CCCS errors, 3x spreads) in
    ngspice at amplitude 2, sampled every 0.005 with one noise hold per sample: the fit's
    z-scores against the hidden truth have mean ~0 and sd ~1 for every class but the mobility
    (4-sigma bands for ~100 correlated z's: |mean| < 0.45, |mean z^2 - 1| < 0.6). The mobility is
    where the chip's inertia shows (docs/calibration.md): the fit's mu sits a few se below the
    overdamped truth, so it is held to |z| < 10 and excluded from the others."""
    chip = SpiceVirtualChip(draw_errors(program.target, 8, seed=3, reciprocal=False, scale=3.0),
                            runs_per_netlist=8, workers=2, nt_per_sample=1)
    chip.program(program)
    rec = chip.run(design.bias_steps(8, 16, amplitude=2.0, seed=0), 40.0, 0.005, seed=1)
    f = fit(rec, mask=program.realised.mask, mobility="bias", discretisation="continuous")
    z = f.zscores(chip.reveal())
    kinds = np.array([n.split("[")[0] for n in f.names])
    rest = z[kinds != "mu"]
    assert abs(rest.mean()) < 0.45 and abs(np.mean(rest * rest) - 1) < 0.6, (rest.mean(), np.mean(rest * rest))
    assert np.max(np.abs(z[kinds == "mu"])) < 10


@pytest.mark.parametrize("target", ["rc-8bit-dense", "lc-overdamped-96"])
def test_one_mismatch_model_two_views(target):
    """Chip-aware training's view of a chip (``mismatched_model``: model units, no circuit) and
    the virtual chips' (the mismatched circuit's ``mismatched_parameters``, symmetrised) are the
    same model, to rounding."""
    from thermohw.backends import get_backend

    be = get_backend(target.split("-")[0])
    p = compile_computer(random_computer(4, 4, seed=1, connectivity="dense"), target, CompileOptions(range="full"))
    e = draw_errors(p.target, 8, seed=5, reciprocal=True, scale=3.0)
    circuit_view = chip_truth(be, e, p.artefact, mask=p.realised.mask).to_computer(symmetrise=True)
    model_view = be.mismatched_model(p.realised, e, p.target)
    for k in ("J", "b", "J2", "J4", "mu", "kT"):
        np.testing.assert_allclose(getattr(model_view, k), getattr(circuit_view, k), rtol=1e-12, atol=1e-14, err_msg=k)
    assert not np.allclose(model_view.J2, p.realised.J2)   # the errors are not a no-op
