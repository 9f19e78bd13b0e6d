"""Calibration stage 3: per-element corrections in the target's trim resolution, iterated on an
8-unit ideal virtual chip with hidden mismatch; the corrected chip generates like the ideal
realised model. Seconds; fixed seeds."""
import math

import numpy as np
import pytest
from scipy import stats

from thermohw import InputError, generate
from thermohw.calibrate import IdealVirtualChip, design
from thermohw.calibrate.correct import CorrectionConfig, calibrate, correction_step, parameter_errors
from thermohw.compile import CompileOptions, compile_computer
from thermohw.cosim import unit_moments_test

from conftest import random_computer

# Recording design for the loop: 2048 bias-step runs (amplitude 3: each unit is pushed up to
# ~0.8 into its quartic well) of 20 model time units at a sample interval of 0.05. The chip
# integrates with the same step, so the Euler likelihood is exact; the information about the
# drift grows with the recorded *time* (not the number of samples), so the coarse interval
# costs nothing in precision and 5x less in run time.
RUNS, AMP, DURATION, DT = 2048, 3.0, 20.0, 0.05


def program_for(max_abs_J: float, bits: int = 8):
    """8 dense units; couplings scaled so that max |J| = max_abs_J (values beyond the +-1 full
    scale are clipped by compile, i.e. programmed at the end of the range)."""
    c = random_computer(4, 4, seed=1, connectivity="dense", scale=0.5)
    c = c.replace(J=c.J * max_abs_J / np.abs(c.J).max())
    return compile_computer(c, "rc-8bit-dense", CompileOptions(range="full", bits=bits))


@pytest.fixture(scope="module")
def loop():
    """A poorly matched chip (5x the preset's spreads: 10 % OTA and cubic gain sd, 5 % C and
    R, 5 mV offsets, a 15 % noise-level error) calibrated in 4 iterations, with a cubic trim.
    Each measurement is recorded in 4 chunks of 256 runs whose statistics are pooled."""
    p = program_for(0.9)
    chip = IdealVirtualChip(chip_seed=7, scale=5.0)
    chip.program(p)
    before = chip.reveal()
    truths = []
    res = calibrate(chip, p, protocol=design.bias_steps(8, RUNS, amplitude=AMP, seed=3), duration=DURATION,
                    sample_interval=DT, seed=11, config=CorrectionConfig(iterations=4, J4_trim_step=1 / 256),
                    on_iteration=lambda *a: truths.append((chip.reveal(), a[3].n_runs)), chunk_runs=256)
    assert all(n == 256 for _, n in truths)                      # the callback sees the first chunk
    truths = [t for t, _ in truths]
    return p, chip, before, chip.reveal(), res, truths


def test_correction_reduces_every_trimmable_error(loop):
    """The true RMS coupling error (hidden truth vs intended) falls >= 5x, to the floor set by
    the 8-bit coupling LSB (uniform rounding: LSB/sqrt(12)) and the pooled measurement error
    (se of one fit / sqrt(4 fits)); biases fall to their 8-bit LSB, J2, J4 and kT >= 5x. The
    mobility (capacitor mismatch) has no trim: unchanged and reported.
    Margins: the initial error is 7.1x the floor; the final one scatters about 1.1x the floor
    (James-Stein shrinkage leaves a little), so the 5x ratio is met with a margin of ~2.5 sd:
    measured over 16 measurement seeds 5.6-7.3x (mean 6.4x). 1.5x floor is 3.7 sd of an RMS
    over 28 couplings (sd ~ floor / sqrt(56)). The preset's cubic and mobility trims (the
    cubic element's gain DAC and the capacitor bank) take J4 and mu down >= 5x too."""
    p, chip, before, after, res, truths = loop
    e0, e1 = parameter_errors(before, p.realised), parameter_errors(after, p.realised)
    assert e0["J"] / e1["J"] >= 5, (e0["J"], e1["J"])
    iu = np.triu_indices(8, 1)
    se_J = math.sqrt(np.mean(res.fits[-1].J_se[iu] ** 2))
    lsb = p.coupling_quant.step
    floor = math.sqrt(lsb ** 2 / 12 + se_J ** 2 / 4)
    assert e1["J"] < 1.5 * floor, (e1["J"], floor)
    assert e1["b"] < 1.5 * p.bias_quant.step / math.sqrt(12) + 2 * np.max(res.fits[-1].stderr["b"]), e1["b"]
    for k in ("J2", "J4", "kT", "mu"):
        assert e0[k] / e1[k] >= 5, (k, e0[k], e1[k])
    assert set(res.untrimmable) == {"J_antisymmetric"}
    assert set(res.program.codes) >= {"J4_trim", "mu_trim"}
    assert res.out_of_range == [] and len(res.history) == 4
    # the estimate of the remaining error made from the fits tracks the truth
    est = parameter_errors(res.final_fit.params, p.realised)
    assert est["J"] < 3 * floor + se_J
    # the first correction does most of the work; pooling keeps improving it
    errs = [parameter_errors(t, p.realised)["J"] for t in truths]
    assert errs[1] < errs[0] / 2.5 and errs[-1] <= errs[1]


def test_corrected_chip_generates_like_the_ideal_realised_model(loop):
    """Generation (the paper's protocol, at dt = 5e-3 for speed - the same for all three) on
    the chip's true model, 4000 runs each: before correction <Q> differs from the ideal
    realised model's by many standard errors (the noise-level, J4 and offset errors); after,
    Welch |t| < 3 and the per-unit final moments agree (scipy tests, binomial allowance for 8
    units). Heat in one energy unit, the intended kT (not each chip's own kT, which is one of
    its errors)."""
    p, chip, before, after, res, _ = loop
    kw = dict(dt=5e-3, stratonovich=False)
    kT0 = p.realised.kT_ref
    ideal = generate(p.realised, 4000, seed=6, **kw)
    pre = generate(before.to_computer(), 4000, seed=5, **kw)
    post = generate(after.to_computer(), 4000, seed=5, **kw)
    t_pre = stats.ttest_ind(pre.heat / kT0, ideal.heat / kT0, equal_var=False).statistic
    t_post = stats.ttest_ind(post.heat / kT0, ideal.heat / kT0, equal_var=False).statistic
    assert abs(t_pre) > 8 and abs(t_post) < 3, (t_pre, t_post)
    assert unit_moments_test(post.x_final, ideal.x_final).agree
    assert not unit_moments_test(pre.x_final, ideal.x_final).agree


def test_out_of_range_elements_are_reported():
    """Couplings programmed at the end of the range (|J| = full scale) whose transconductor is
    weak need codes beyond it: each is clipped and named with the value it needed. Which ones
    is fixed by the hidden gains: every element that needs |J|/gamma > 1 by more than 3 standard
    errors is reported, and none that needs less than 1 by 3 standard errors."""
    p = program_for(3.0)                                   # 7 of 28 couplings clipped to +-1
    assert np.sum(np.abs(p.realised.J[np.triu_indices(8, 1)]) == 1.0) >= 5
    chip = IdealVirtualChip(chip_seed=3, scale=5.0)
    res = calibrate(chip, p, protocol=design.bias_steps(8, 256, amplitude=AMP, seed=4), duration=DURATION,
                    sample_interval=DT, seed=2, config=CorrectionConfig(iterations=1))
    named = {o["element"] for o in res.out_of_range}
    assert named and all(abs(o["limit"]) == 1.0 and abs(o["requested"]) > 1.0 for o in res.out_of_range)
    gain = chip.reveal_errors().gain
    iu = np.triu_indices(8, 1)
    need = np.abs(p.realised.J[iu]) / (1 + gain[iu])
    se = res.initial_fit.J_se[iu] / np.abs(p.realised.J[iu]).clip(1e-9) * need   # se of the needed value
    names = [f"J[{i},{j}]" for i, j in zip(*iu)]
    for nm, nd, s in zip(names, need, se):
        if nd > 1 + 3 * s:
            assert nm in named, (nm, nd)
        if nd < 1 - 3 * s:
            assert nm not in named, (nm, nd)
    assert any("outside their programmable range" in n for n in res.notes)


def test_correction_step_without_trims_reports_what_it_cannot_fix():
    p = program_for(0.5)
    chip = IdealVirtualChip(chip_seed=1, scale=3.0)
    res = calibrate(chip, p, protocol=design.bias_steps(8, 64, amplitude=AMP, seed=1), duration=DURATION,
                    sample_interval=DT, seed=1,
                    config=CorrectionConfig(iterations=1, noise_trim=False, trim_J2=False, trim_J4=False,
                                            trim_mu=False))
    assert {"J4", "kT", "mu", "J2", "J_antisymmetric"} <= set(res.untrimmable)
    np.testing.assert_array_equal(res.program.programmed.kT, p.programmed.kT)
    np.testing.assert_array_equal(res.program.codes["J2_trim"], p.codes["J2_trim"])
    assert res.summary()["iterations"] == 1
    with pytest.raises(InputError, match="needs at least one measurement"):
        correction_step([], p.realised)
    with pytest.raises(InputError, match="relative step"):
        CorrectionConfig(noise_trim_step=0.7)
