"""Calibration with the cubic (J4) and time-constant (mu) trims, judged by what the chip
computes: paired generation (same noise) against the intended model. A 12-unit chip 5x worse
than the preset's figures; when a class has no trim, the J2 trims compensate in generation.
Fixed seeds, real numerics; about 20 s."""
import numpy as np
import pytest

from thermohw import InputError, generate
from thermohw.calibrate import IdealVirtualChip, design
from thermohw.calibrate.correct import CorrectionConfig, _match_generation, calibrate, parameter_errors
from thermohw.compile import CompileOptions, compile_computer

from conftest import random_computer

GEN = dict(dt=5e-3, stratonovich=False)


@pytest.fixture(scope="module")
def program():
    """12 dense units (6 visible + 6 hidden), compiled as the 96-unit experiment is: auto
    ranges with room for trims (coupling headroom 1.3, bias margin 0.4)."""
    c = random_computer(6, 6, seed=1, connectivity="dense", scale=0.5)
    return compile_computer(c, "rc-8bit-dense", CompileOptions(bits=8, coupling_headroom=1.3, bias_margin=0.4))


def paired_heat(model, ref_heat, kT0, runs=4000, seed=5):
    d = generate(model, runs, seed=seed, **GEN).heat / kT0 - ref_heat
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def test_trims_bring_paired_heat_within_its_sampling_error(program):
    """Chip 2 (10 % cubic-gain sd, +-5 % C, 5 mV offsets, 15 % noise error), 3 corrections
    from 1024 bias-step runs (amplitude 3, 20 time units) per measurement. The preset's cubic
    and mobility trims remove >= 5x of the J4 and mu errors (measured 18x and 9.5x), and the
    chip's heat, paired with the intended model's (same noise, 4000 runs), moves from
    +1.41 kT (~100 paired se, 20x the sampling error of <Q> itself) to within that sampling
    error (measured -0.010 kT against a sem of 0.071 kT). Over chips 0-3 and 7 the corrected
    chips gave -0.016..+0.087 kT; the largest (chip 7) is the bias measurement error
    (se 0.003), which more runs remove."""
    p = program
    chip = IdealVirtualChip(chip_seed=2, scale=5.0)
    chip.program(p)
    before = chip.reveal()
    res = calibrate(chip, p, protocol=design.bias_steps(12, 1024, amplitude=3.0, seed=3), duration=20.0,
                    sample_interval=0.05, seed=11, config=CorrectionConfig(iterations=3), chunk_runs=256)
    after = chip.reveal()
    e0, e1 = parameter_errors(before, p.realised), parameter_errors(after, p.realised)
    for k in ("J4", "mu"):
        assert e0[k] > 0.02 and e0[k] / e1[k] >= 5, (k, e0[k], e1[k])
    assert set(res.untrimmable) == {"J_antisymmetric"} and res.out_of_range == []
    codes = res.program.codes
    assert np.any(codes["J4_trim"] != 0) and np.any(codes["mu_trim"] != 0)
    # the trims are coded on the target's grid, relative to the compiled value
    np.testing.assert_allclose(res.program.programmed.J4, p.realised.J4 * p.target.cubic.factor(codes["J4_trim"]))
    np.testing.assert_allclose(res.program.programmed.mu, p.realised.mu * p.target.mobility.factor(codes["mu_trim"]))
    kT0 = p.realised.kT_ref
    ref = generate(p.realised, 4000, seed=5, **GEN).heat / kT0
    sem_Q = ref.std(ddof=1) / np.sqrt(ref.size)
    pre, _ = paired_heat(before.to_computer(), ref, kT0)
    post, _ = paired_heat(after.to_computer(), ref, kT0)
    assert abs(pre) > 10 * sem_Q and abs(post) < sem_Q, (pre, post, sem_Q)


def test_missing_J4_trim_is_compensated_in_generation(program):
    """A chip whose cubic elements are off by 10 % sd and cannot be trimmed (everything else
    exact, so the element laws are known and the prediction is the chip): the J2 trims chosen
    by :func:`_match_generation` (J4 error projected onto J2 over the visited states, then one
    common J2 scale from a secant step on the predicted paired heat, 1000 runs) take the
    chip's paired heat difference, on noise the matching never saw, from +0.022 kT (30 se) to
    +0.003 (measured); required: below a quarter of the uncompensated one."""
    I = program.realised
    n = I.n_units
    rng = np.random.default_rng(0)
    laws = {"J": np.ones((n, n)), "b": np.zeros(n), "J2": np.ones(n), "kT": np.ones(n), "mu": np.ones(n),
            "J4": 1 + 0.1 * rng.standard_normal(n)}
    aim, rec = _match_generation(laws, I, dict(J=I.J, b=I.b, J4=I.J4, kT=I.kT, mu=I.mu), {"J4": 0.1},
                                 CorrectionConfig(match_generation=1000, match_dt=5e-3))
    assert rec["applied"] and rec["chosen"] in ("J4_projected", "heat_matched")
    assert np.all(np.abs(aim / I.J2 - 1) < 0.1)
    kT0 = I.kT_ref
    ref = generate(I, 4000, seed=5, **GEN).heat / kT0
    plain, se = paired_heat(I.replace(J4=laws["J4"] * I.J4), ref, kT0)
    comp, _ = paired_heat(I.replace(J4=laws["J4"] * I.J4, J2=aim), ref, kT0)
    assert abs(plain) > 10 * se and abs(comp) < abs(plain) / 4, (plain, comp, se)
    with pytest.raises(InputError, match="match_generation must be 0"):
        CorrectionConfig(match_generation=1)


def test_coupling_headroom_rule(program):
    """Headroom from the gain mismatch: the smallest h with at most 0.1 couplings expected
    beyond the full scale; none needed without mismatch; larger spreads need more; and at the
    chosen h the expected count (the rule's sum) is 0.1."""
    from scipy.stats import norm

    J, m = program.source.J, program.source.mask
    assert design.coupling_headroom(J, m, 0.0) == 1.0
    h2, h10 = design.coupling_headroom(J, m, 0.02), design.coupling_headroom(J, m, 0.10)
    assert 1.0 < h2 < h10 < 1.6
    a = np.abs(J[np.triu(m, 1)])
    a = a[a > 0] / np.abs(J).max()
    assert np.sum(norm.cdf((a / h10 - 1) / 0.10)) == pytest.approx(0.1, rel=1e-6)
    # a Monte-Carlo draw of gain errors at h10 rarely puts any coupling out of range
    g = np.random.default_rng(1).normal(0, 0.10, (2000, a.size))
    frac = np.mean(np.any(a / (1 + g) > h10, axis=1))
    assert frac < 0.15, frac       # expected 1 - exp(-0.1) = 0.095; sd of the fraction 0.007
