"""Digit scores, heat statistics and the thermodynamic-advantage estimate (thermohw.metrics)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from thermohw import Computer
from thermohw.errors import InputError
from thermohw.metrics import (correlations, digit_scores, heat_stats, mlp_denoiser_advantage,
                              thermodynamic_advantage)


# ---------------------------------------------------------------------------------------------
# correlations
# ---------------------------------------------------------------------------------------------
def test_correlation_hand_value():
    # x - mean = [-1.5, -0.5, 0.5, 1.5], p - mean = [-0.5, -1.5, -0.5, 2.5]
    # dot = 5, |x|^2 = 5, |p|^2 = 9  ->  r = 5 / sqrt(45)
    c = correlations(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[1.0, 0.0, 1.0, 4.0]]))
    assert c.shape == (1, 1)
    assert c[0, 0] == pytest.approx(5.0 / math.sqrt(45.0), rel=1e-12)


def test_correlations_match_np_corrcoef():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(5, 16)) + 3.0
    p = rng.normal(size=(3, 16))
    p[1] = 0.7 * x[2] - 2.0 + 0.1 * rng.normal(size=16)    # one strongly correlated pair
    c = correlations(x, p)
    assert c.shape == (5, 3)
    want = np.array([[np.corrcoef(x[i], p[j])[0, 1] for j in range(3)] for i in range(5)])
    np.testing.assert_allclose(c, want, rtol=1e-12, atol=1e-14)
    assert c[2, 1] > 0.9


def test_correlations_constant_sample_is_zero_and_shape_check():
    c = correlations(np.ones((1, 4)), np.array([[1.0, 0.0, 1.0, 4.0]]))
    assert c[0, 0] == 0.0
    with pytest.raises(InputError, match="pixel"):
        correlations(np.zeros((2, 4)), np.zeros((3, 5)))


# ---------------------------------------------------------------------------------------------
# digit_scores
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def patterns():
    rng = np.random.default_rng(11)
    p = rng.normal(size=(3, 64))
    return (p - p.mean(axis=1, keepdims=True)) / p.std(axis=1, keepdims=True)


def test_scores_on_patterns_themselves(patterns):
    sc = digit_scores(patterns, patterns, labels=np.array([0, 1, 7]))
    assert sc["n_samples"] == 3
    assert sc["per_sample"]["best"] == [0, 1, 2]
    np.testing.assert_allclose(sc["per_sample"]["best_abs_corr"], 1.0, rtol=1e-12)
    assert sc["per_sample"]["sign"] == [1.0, 1.0, 1.0]
    assert sc["mean_best_abs_corr"] == pytest.approx(1.0, rel=1e-12)
    assert sc["fraction_recognised"] == 1.0
    assert sc["fraction_inverted"] == 0.0
    assert sc["all_modes_present"] is True
    assert [(m["pattern"], m["label"], m["upright"], m["inverted"]) for m in sc["modes"]] == \
        [(0, 0, 1, 0), (1, 1, 1, 0), (2, 7, 1, 0)]


def test_scores_on_negated_patterns_are_inverted(patterns):
    # a scaled, shifted, negated copy: still |corr| = 1
    x = -2.5 * patterns[[2, 0, 2]] + 4.0
    sc = digit_scores(x, patterns)
    assert sc["per_sample"]["best"] == [2, 0, 2]
    np.testing.assert_allclose(sc["per_sample"]["best_abs_corr"], 1.0, rtol=1e-12)
    assert sc["per_sample"]["sign"] == [-1.0, -1.0, -1.0]
    assert sc["fraction_inverted"] == 1.0
    assert [(m["upright"], m["inverted"]) for m in sc["modes"]] == [(0, 1), (0, 0), (0, 2)]
    assert sc["modes"][0]["label"] is None
    assert sc["all_modes_present"] is False      # pattern 1 never generated


def test_noise_below_threshold_not_counted(patterns):
    rng = np.random.default_rng(12)
    noise = rng.normal(size=(6, 64))
    # sanity of the construction: all noise correlations are well below the threshold
    assert np.max(np.abs(correlations(noise, patterns))) < 0.5
    x = np.vstack([noise, patterns[1:2], -patterns[0:1]])
    sc = digit_scores(x, patterns, threshold=0.5)
    assert sc["n_samples"] == 8
    assert sc["fraction_recognised"] == pytest.approx(2 / 8)
    assert sc["fraction_inverted"] == pytest.approx(1 / 8)
    assert [(m["upright"], m["inverted"]) for m in sc["modes"]] == [(0, 1), (1, 0), (0, 0)]
    assert sc["all_modes_present"] is False
    # with a threshold of 0 every sample counts towards some mode
    sc0 = digit_scores(x, patterns, threshold=0.0)
    assert sum(m["upright"] + m["inverted"] for m in sc0["modes"]) == 8


def test_score_mean_and_sem_by_hand(patterns):
    rng = np.random.default_rng(13)
    x = np.vstack([patterns, rng.normal(size=(4, 64))])
    best = np.max(np.abs(correlations(x, patterns)), axis=1)
    sc = digit_scores(x, patterns)
    n = len(best)
    assert sc["mean_best_abs_corr"] == pytest.approx(best.sum() / n, rel=1e-12)
    sd = math.sqrt(np.sum((best - best.mean()) ** 2) / (n - 1))
    assert sc["sem_best_abs_corr"] == pytest.approx(sd / math.sqrt(n), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# heat_stats
# ---------------------------------------------------------------------------------------------
def test_heat_stats_hand_values():
    # q = 1, 2, 3, 4, 10: mean 4, squared deviations 9+4+1+0+36 = 50, var (ddof 1) = 12.5
    h = heat_stats(np.array([1.0, 2.0, 3.0, 4.0, 10.0]))
    sd = math.sqrt(12.5)
    sem = sd / math.sqrt(5)
    assert h["n"] == 5
    assert h["mean_kT"] == pytest.approx(4.0, rel=1e-14)
    assert h["sd_kT"] == pytest.approx(sd, rel=1e-12)
    assert h["sem_kT"] == pytest.approx(sem, rel=1e-12)
    # Student t with 4 dof: t(0.975, 4) = 2.776445 (tables), not the normal 1.96
    assert h["ci95_kT"] == pytest.approx([4.0 - 2.776445 * sem, 4.0 + 2.776445 * sem], rel=1e-6)
    assert h["ci95_kT"][0] == pytest.approx(-0.38994, abs=1e-4)
    assert h["median_kT"] == 3.0 and h["min_kT"] == 1.0 and h["max_kT"] == 10.0


def test_heat_stats_ignores_non_finite():
    h = heat_stats(np.array([1.0, np.nan, 2.0, 3.0, np.inf, 4.0, 10.0, -np.inf]))
    assert h["n"] == 5
    assert h["mean_kT"] == pytest.approx(4.0)
    assert h["sd_kT"] == pytest.approx(math.sqrt(12.5))


def test_heat_stats_edge_cases():
    one = heat_stats([7.5])
    assert one["n"] == 1 and one["mean_kT"] == 7.5 and math.isnan(one["sd_kT"])
    with pytest.raises(InputError, match="finite"):
        heat_stats(np.array([np.nan, np.inf]))
    with pytest.raises(InputError):
        heat_stats(np.array([]))


# ---------------------------------------------------------------------------------------------
# thermodynamic_advantage
# ---------------------------------------------------------------------------------------------
KB = 1.380649e-23


def test_advantage_hand_formula():
    c = Computer.zeros(4, 2)            # paper connectivity: 4*2 visible-hidden + 1 hidden-hidden
    n_units, n_couplings = 6, 4 * 2 + 1
    assert c.n_units == n_units and c.n_couplings == n_couplings
    n_steps, heat, e_mac, T = 100, 50.0, 4.6e-12, 300.0
    macs = n_steps * (2 * n_couplings + 4 * n_units)                    # = 4200
    assert macs == 4200
    want = macs * e_mac / (abs(heat) * KB * T)
    a = thermodynamic_advantage(c, n_steps, heat, temperature_K=T, mac="fp32")
    assert a["macs_per_sample"] == pytest.approx(4200.0)
    assert a["digital_energy_J"] == pytest.approx(4200 * 4.6e-12, rel=1e-12)
    assert a["thermodynamic_heat_J"] == pytest.approx(50.0 * KB * 300.0, rel=1e-12)
    assert a["advantage"] == pytest.approx(want, rel=1e-12)
    assert a["advantage"] == pytest.approx(9.3287e10, rel=1e-4)
    assert a["log10_advantage"] == pytest.approx(math.log10(want), rel=1e-12)
    assert a["digital_energy_kT"] == pytest.approx(macs * e_mac / (KB * T), rel=1e-12)


def test_mlp_denoiser_advantage_is_the_papers_figure():
    # Whitelam 2025: 784-128-128-784 MLP, 10 uses, 1 pJ/MAC -> >= 5e14 kT and > 1e11 x the paper's <Q>
    macs = 10 * (784 * 128 + 128 * 128 + 128 * 784)                   # = 2,170,880
    assert macs == 2_170_880
    a = mlp_denoiser_advantage(2.9e3)
    assert a["macs_per_sample"] == macs
    assert a["digital_energy_kT"] == pytest.approx(macs * 1e-12 / (KB * 300.0), rel=1e-12)
    assert 5e14 <= a["digital_energy_kT"] < 5.3e14
    assert a["advantage"] == pytest.approx(a["digital_energy_kT"] / 2.9e3, rel=1e-12) and a["advantage"] > 1e11
    small = mlp_denoiser_advantage(10.0, layers=(2, 3), uses=1, energy_per_mac_J=1e-15, temperature_K=4.0)
    assert small["advantage"] == pytest.approx(6 * 1e-15 / (10.0 * KB * 4.0), rel=1e-12)
    with pytest.raises(InputError):
        mlp_denoiser_advantage(1.0, layers=(784,))


def test_advantage_sign_temperature_and_custom_mac():
    c = Computer.zeros(4, 2)
    macs = 10 * (2 * 9 + 4 * 6)
    a = thermodynamic_advantage(c, 10, -20.0, temperature_K=4.0, mac=1e-15)
    assert a["mac_kind"] == "custom"
    assert a["advantage"] == pytest.approx(macs * 1e-15 / (20.0 * KB * 4.0), rel=1e-12)
    i8 = thermodynamic_advantage(c, 10, 20.0, mac="int8")
    f32 = thermodynamic_advantage(c, 10, 20.0, mac="fp32")
    assert f32["advantage"] / i8["advantage"] == pytest.approx(4.6 / 0.23, rel=1e-12)
    assert thermodynamic_advantage(c, 10, 0.0)["advantage"] == math.inf


def test_advantage_counts_only_existing_couplings():
    dense = Computer.zeros(4, 2, connectivity="dense")         # 6*5/2 = 15 couplings
    bip = Computer.zeros(4, 2, connectivity="bipartite")       # 4*2 = 8 couplings
    assert thermodynamic_advantage(dense, 1, 1.0)["macs_per_sample"] == 2 * 15 + 4 * 6
    assert thermodynamic_advantage(bip, 1, 1.0)["macs_per_sample"] == 2 * 8 + 4 * 6


# ---------------------------------------------------------------------------------------------
# margin and the k-NN check (bundled 8x8 digits: offline)
# ---------------------------------------------------------------------------------------------
def _bundled(labels=(0, 3, 7)):
    from thermohw.data import load_training_digits, reference_set

    d = load_training_digits(digits=labels)
    return d, reference_set(d)


def test_reference_set_holds_out_the_training_images():
    d, ref = _bundled()
    assert set(np.unique(ref.labels)) == {0, 3, 7}
    # every training image is excluded by content, every other image of those labels kept
    assert np.max(ref.images @ d.patterns.T / d.n_pixels) < 1 - 1e-9
    from thermohw.data import bundled_digits

    _, y = bundled_digits()
    assert ref.labels.size == int(np.isin(y, [0, 3, 7]).sum()) - 3


def test_margin_separates_a_digit_from_a_blur_of_all_digits():
    d, _ = _bundled()
    s = digit_scores(d.patterns, d.patterns, d.labels)
    c = np.abs(correlations(d.patterns, d.patterns))
    want = [1.0 - np.sort(row)[-2] for row in c]
    np.testing.assert_allclose(s["per_sample"]["margin"], want, rtol=1e-12)
    blur = digit_scores(d.patterns.mean(axis=0, keepdims=True), d.patterns, d.labels)
    # the mean of the training digits correlates with each of them: high best |corr|, low margin
    assert blur["mean_best_abs_corr"] > 0.5 and blur["mean_margin"] < 0.2
    assert s["mean_margin"] > 3 * blur["mean_margin"]


def test_knn_names_noisy_and_inverted_held_out_digits():
    """Held-out images of the three labels plus noise (SNR 1 per pixel), a third of them
    sign-inverted: the sign-aligned k-NN check must name their label. 150 samples, fixed seed;
    measured 0.99, and a classifier that guessed would agree a third of the time
    (binomial sd 0.04), so 0.9 separates working from broken by > 10 sd."""
    from thermohw.data import normalise

    d, ref = _bundled()
    rng = np.random.default_rng(5)
    pick = rng.choice(ref.labels.size, size=150, replace=False)
    x = normalise(ref.images[pick] + rng.standard_normal((150, d.n_pixels)))
    x[::3] *= -1
    s = digit_scores(x, d.patterns, d.labels, reference=ref)
    # against the training digits a held-out image need not correlate best with its own label;
    # the check is whether the classifier agrees with the best-correlated training digit
    best_label = d.labels[np.array(s["per_sample"]["best"])]
    agree = np.mean(np.array(s["per_sample"]["classifier_label"]) == best_label)
    assert s["classifier"]["agreement"] == pytest.approx(agree)
    own = np.mean(np.array(s["per_sample"]["classifier_label"]) == ref.labels[pick])
    assert own > 0.9, own
    assert s["classifier"]["sign_aligned"] and s["fraction_inverted"] > 0.2

