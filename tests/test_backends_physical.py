"""Mechanical and Josephson backends (docs/design.md#mechanical, #josephson): formulas by hand, exact round
trips, physical-limit checks, written parameter sets, and the rf-SQUID's full cosine potential
against the quartic model."""
import csv
import math

import numpy as np
import pytest
import yaml

from thermohw import Computer
from thermohw.backends import get_backend, josephson, mechanical
from thermohw.compile import CompiledProgram, compile_computer
from thermohw.target import Target

from conftest import random_computer

KB = 1.380649e-23                 # J/K (exact SI)
H_PLANCK, E_CHARGE = 6.62607015e-34, 1.602176634e-19   # exact SI
PHI0 = H_PLANCK / (2 * E_CHARGE)  # 2.067833848e-15 Wb
HBAR = H_PLANCK / (2 * math.pi)   # 1.054571817e-34 J s
PHIR = PHI0 / (2 * math.pi)
FIELDS = ("J", "b", "J2", "J4", "mu", "kT")


def program(c: Computer, t: Target) -> CompiledProgram:
    """A program whose programmed model is exactly ``c`` (no quantisation), lowered."""
    p = CompiledProgram(source=c, target=t, programmed=c, report={"source_hash": "hand", "violations": []})
    be = get_backend(t.kind)
    p = p.with_(scales=be.scales(p))
    art = be.lower(p)
    return p.with_(artefact=art, realised=be.to_computer(art, p))


def two_units(J2, J4, b, J12, mu, kT=0.1):
    return Computer(J=[[0.0, J12], [J12, 0.0]], b=b, mask=[[False, True], [True, False]], n_visible=2,
                    J2=J2, J4=J4, mu=mu, kT=kT)


def assert_same_model(a: Computer, b: Computer, rtol=1e-12):
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * max(1e-3, float(np.max(np.abs(y)))), err_msg=k)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.n_visible == b.n_visible


def mech_target(**physics):
    t = Target.preset("mechanical-cantilever")
    return t.replace(physics={**t.physics.to_dict(), **physics})


def jj_target(**physics):
    t = Target.preset("josephson-rfsquid")
    return t.replace(physics={**t.physics.to_dict(), **physics})


def test_constants_are_the_si_values():
    from scipy.constants import hbar, k, physical_constants

    assert k == KB and hbar == pytest.approx(HBAR, rel=1e-15)
    assert physical_constants["mag. flux quantum"][0] == pytest.approx(PHI0, rel=1e-15)
    assert PHI0 == pytest.approx(2.067833848e-15, rel=1e-9)


# =============================================================================================
# mechanical
# =============================================================================================
def test_mechanical_formulas_by_hand():
    """kT = 0.1, J2 = (1, 0.8), J4 = (1, 0.5), b = (0.2, -0.1), J12 = 0.3, mu = (1, 2);
    l = 1 nm, m = 1e-10 kg, T = 300 K, tau = 10 us. In units of kT: J2' = (10, 8),
    J4' = (10, 5), b' = (2, -1), J12' = 3, and DESIGN's physical mobility mu kT / tau = (1e4, 2e4) /s.
    k_BT = 1.380649e-23 * 300 = 4.141947e-21 J."""
    c = two_units(J2=[1.0, 0.8], J4=[1.0, 0.5], b=[0.2, -0.1], J12=0.3, mu=[1.0, 2.0])
    t = mech_target(length_scale_m=1e-9, mass_kg=1e-10, temperature_K=300.0, tau_s=1e-5)
    p = program(c, t)
    a = p.artefact
    kBT = 1.380649e-23 * 300.0
    assert kBT == pytest.approx(4.141947e-21, rel=1e-15)
    l = 1e-9
    # k = 2 J2' k_BT / l^2
    assert a.k[0] == pytest.approx(2 * 10 * kBT / l ** 2, rel=1e-12)
    assert a.k[0] == pytest.approx(0.08283894, rel=1e-12)
    assert a.k[1] == pytest.approx(2 * 8 * kBT / l ** 2, rel=1e-12)          # 0.066271152
    # alpha = 4 J4' k_BT / l^4
    assert a.alpha[0] == pytest.approx(4 * 10 * kBT / l ** 4, rel=1e-12)      # 1.6567788e17 N/m^3
    assert a.alpha[1] == pytest.approx(8.283894e16, rel=1e-12)
    # F = -b' k_BT / l (energy -F X: a positive b pushes towards -X)
    assert a.F[0] == pytest.approx(-2 * kBT / l, rel=1e-12)                   # -8.283894e-12 N
    assert a.F[1] == pytest.approx(+4.141947e-12, rel=1e-12)
    # kappa = J12' k_BT / l^2, symmetric; J12 > 0 is not a spring: needs feedback
    assert a.kappa[0, 1] == a.kappa[1, 0] == pytest.approx(3 * kBT / l ** 2, rel=1e-12)  # 0.012425841
    assert a.kappa[0, 0] == 0 and a.needs_feedback[0, 1] and not a.needs_feedback[0, 0]
    # gamma = k_BT / (mu_phys l^2), mu_phys = mu kT / tau
    assert a.gamma[0] == pytest.approx(kBT / (1e4 * l ** 2), rel=1e-12)       # 4.141947e-7 kg/s
    assert a.gamma[1] == pytest.approx(2.0709735e-7, rel=1e-12)
    np.testing.assert_array_equal(a.mass, [1e-10, 1e-10])
    np.testing.assert_array_equal(a.temperature, [300.0, 300.0])
    np.testing.assert_array_equal(a.l, [l, l])
    # f0 = sqrt(k/m) / 2 pi: sqrt(8.283894e8) = 28781.75 rad/s -> 4580.7 Hz
    w0 = math.sqrt(0.08283894 / 1e-10)
    assert a.f0[0] == pytest.approx(w0 / (2 * math.pi), rel=1e-12)
    assert a.f0[0] == pytest.approx(4580.7, rel=1e-4)
    # Q = sqrt(k m) / gamma = 2.87817e-6 / 4.141947e-7 = 6.9488 = 2 J2' mu_phys / omega0 (DESIGN)
    assert a.Q[0] == pytest.approx(math.sqrt(0.08283894 * 1e-10) / 4.141947e-7, rel=1e-12)
    assert a.Q[0] == pytest.approx(2 * 10 * 1e4 / w0, rel=1e-12)
    assert a.Q[0] == pytest.approx(6.9488, rel=1e-4)
    assert a.verdict == "underdamped"
    # energy scale: one model energy unit = k_BT / kT = 4.141947e-20 J
    assert p.scales["energy_per_model_unit_J"] == pytest.approx(4.141947e-20, rel=1e-15)
    assert p.scales["kT_mu_per_s"] == pytest.approx(1.5e4)      # mean of (1e4, 2e4)
    assert_same_model(p.realised, c)


def test_mechanical_spring_sign_convention():
    """A spring k_c (X_i - X_j)^2 / 2 contributes -k_c X_i X_j: kappa = -k_c <= 0, i.e. J_ij <= 0,
    and adds k_c to both on-site stiffnesses. So J_ij < 0 needs no feedback, and the anchor
    springs must be softer by |kappa|."""
    c = two_units(J2=[1.0, 1.0], J4=[1.0, 1.0], b=[0.0, 0.0], J12=-0.3, mu=[1.0, 1.0])
    a = program(c, mech_target()).artefact
    assert a.kappa[0, 1] < 0 and not a.needs_feedback.any()
    np.testing.assert_allclose(a.anchor_stiffness_if_springs, a.k + a.kappa[0, 1], rtol=1e-14)
    # energy check: a spring of stiffness -kappa plus anchors gives the same quadratic form
    X = np.array([0.7, -0.4]) * a.l
    kc = -a.kappa[0, 1]
    anchors = a.anchor_stiffness_if_springs
    U_springs = 0.5 * anchors @ X ** 2 + 0.5 * kc * (X[0] - X[1]) ** 2
    U_model = 0.5 * a.k @ X ** 2 + a.kappa[0, 1] * X[0] * X[1]
    assert U_springs == pytest.approx(U_model, rel=1e-13)


def test_mechanical_friction_reproduces_the_model_langevin_equation():
    """gamma dX/dt = -dU/dX + noise with U = eps V(X/l), t = tau t_m: the drift coefficient is
    tau eps / (gamma l^2) = mu and the noise 2 tau k_BT / (gamma l^2) = 2 mu kT."""
    c = two_units(J2=[1.0, 0.8], J4=[1.0, 0.5], b=[0.2, -0.1], J12=0.3, mu=[1.0, 2.0])
    t = mech_target(length_scale_m=1e-9, mass_kg=1e-10, temperature_K=300.0, tau_s=1e-5)
    a = program(c, t).artefact
    x = np.array([0.3, -0.6])
    X = a.l * x
    dU_dX = a.k * X + a.alpha * X ** 3 - a.F + a.kappa @ X          # SI force gradient, N
    drift_model_time = 1e-5 * (-dU_dX / a.gamma) / a.l              # dx/dt_m = tau (dX/dt) / l
    np.testing.assert_allclose(drift_model_time, -c.mu * c.grad(x), rtol=1e-12)
    noise_model_time = 1e-5 * 2 * KB * a.temperature / a.gamma / a.l ** 2   # tau * 2 k_BT / (gamma l^2)
    np.testing.assert_allclose(noise_model_time, 2 * c.mu * c.kT, rtol=1e-12)
    # inertia in model units: m X'' = m l x_tt / tau^2 in N, divided by eps / l (newtons per model
    # force unit) -> m l^2 / (tau^2 eps); the model-unit quality factor sqrt(2 J2 m_model) mu is Q
    eps = KB * 300 / 0.1
    np.testing.assert_allclose(a.model_mass, 1e-10 * 1e-18 / (1e-10 * eps), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(2 * c.J2 * a.model_mass) * c.mu, a.Q, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_mechanical_round_trip_is_exact(seed):
    c = random_computer(3, 3, seed=seed, J2=1.1, J4=0.9)
    p = compile_computer(c, "mechanical-cantilever")
    back = mechanical.to_computer(p.artefact, p)
    assert_same_model(back, p.programmed)
    assert_same_model(p.realised, p.programmed)
    assert back.bias_trainable.tolist() == p.programmed.bias_trainable.tolist()
    # without the program the artefact still knows its couplers
    assert_same_model(mechanical.to_computer(p.artefact), p.programmed)


def test_mechanical_per_unit_temperature_and_mobility_round_trip():
    c = random_computer(2, 2, seed=4).replace(kT=[0.1, 0.1, 0.2, 0.1], mu=[1.0, 0.5, 2.0, 1.0])
    p = program(c, mech_target())
    np.testing.assert_allclose(p.artefact.temperature, [300 * 0.1 / 0.125, 300 * 0.1 / 0.125,
                                                        300 * 0.2 / 0.125, 300 * 0.1 / 0.125], rtol=1e-14)
    assert_same_model(p.realised, c)
    assert any(v["check"] == "temperature" for v in mechanical.check(p))


def test_mechanical_check_reports_the_cantilever_as_underdamped():
    """The preset (header: f0 = 1.27 kHz, Q = 10, k = 0.01 N/m) with the reference model
    J2 = J4 = 10 kT, mu = 1 is underdamped and compile must say so."""
    c = Computer.zeros(2, 2, connectivity="dense")
    p = compile_computer(c, "mechanical-cantilever")
    a = p.artefact
    assert a.k == pytest.approx(0.01, rel=2e-3)
    assert a.f0 == pytest.approx(1270, rel=2e-3)
    assert a.Q == pytest.approx(10, rel=2e-3)
    v = [x for x in p.report["violations"] if x["check"] == "overdamped"]
    assert len(v) == 1 and v[0]["verdict"] == "underdamped" and "UNDERDAMPED" in v[0]["message"]
    assert v[0]["quality_factor"] == pytest.approx(10, rel=2e-3)
    # Q = sqrt(k m)/gamma scales as sqrt(m): m / 1e4 gives Q = 0.1 (overdamped, no report),
    # m * 9e-4 gives Q = 0.3 (weakly overdamped: reported with the rate error)
    m = Target.preset("mechanical-cantilever").physics.mass_kg
    for factor, verdict in ((1e-4, "overdamped"), (9e-4, "weakly overdamped")):
        q = compile_computer(c, mech_target(mass_kg=m * factor))
        assert q.artefact.verdict == verdict
        over = [x for x in q.report["violations"] if x["check"] == "overdamped"]
        assert (verdict == "overdamped") == (not over)
    assert "%" in over[0]["message"]


def test_mechanical_write_reads_back(tmp_path):
    c = random_computer(3, 3, seed=2)
    p = compile_computer(c, "mechanical-cantilever")
    files = mechanical.write(p, tmp_path)
    assert {f.name for f in files} == {"chip.cir", "oscillators.yaml", "couplings.csv"}
    text = (tmp_path / "oscillators.yaml").read_text()
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("energy scale" in ln and "k_B T" in ln for ln in head)
    assert any("Q = " in ln and "underdamped" in ln for ln in head)
    assert any("mechanical-cantilever" in ln for ln in head)
    d = yaml.safe_load(text)
    a = p.artefact
    assert d["energy_per_model_unit_J"] == a.energy_unit_J and d["tau_s"] == a.tau_s
    keys = {"stiffness_N_per_m": a.k, "duffing_N_per_m3": a.alpha, "mass_kg": a.mass,
            "damping_kg_per_s": a.gamma, "bias_force_N": a.F, "temperature_K": a.temperature,
            "length_scale_m": a.l, "f0_Hz": a.f0, "quality_factor": a.Q}
    for row in d["oscillators"]:
        for k, arr in keys.items():
            assert row[k] == arr[row["unit"]], k                 # identical floats
    assert len(d["oscillators"]) == a.n_units
    with open(tmp_path / "couplings.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == int(np.count_nonzero(np.triu(a.coupled, 1)))
    for r in rows:
        i, j = int(r["i"]), int(r["j"])
        assert float(r["kappa_N_per_m"]) == a.kappa[i, j]
        assert bool(int(r["needs_feedback"])) == bool(a.kappa[i, j] > 0)


@pytest.mark.parametrize("target,name,field", [("mechanical-cantilever", "oscillators.yaml", "kappa"),
                                                ("josephson-rfsquid", "rfsquids.yaml", "M")])
def test_program_save_and_load_rebuild_the_artefact(tmp_path, target, name, field):
    p = compile_computer(random_computer(2, 2, seed=1), target)
    p.save(tmp_path)
    assert (tmp_path / name).is_file() and (tmp_path / "couplings.csv").is_file()
    q = CompiledProgram.load(tmp_path)
    np.testing.assert_array_equal(getattr(q.artefact, field), getattr(p.artefact, field))
    assert_same_model(q.backend.to_computer(q.artefact, q), p.realised)


# =============================================================================================
# josephson
# =============================================================================================
def test_rfsquid_expansion_coefficients():
    """-cos(pi + a) = cos(a) = 1 - a^2/2 + a^4/24 - a^6/720 + ...: the x^6 term is negative."""
    a = np.linspace(-0.3, 0.3, 7)
    series = 1 - a ** 2 / 2 + a ** 4 / 24 - a ** 6 / 720
    np.testing.assert_allclose(-np.cos(np.pi + a), series, atol=np.max(a) ** 8 / 40320 * 1.01)
    assert -np.cos(np.pi + 0.3) < 1 - 0.3 ** 2 / 2 + 0.3 ** 4 / 24      # so the x^6 term is < 0


def test_josephson_formulas_by_hand():
    """kT = 0.1, J2 = (1, 0.5), J4 = (1, 2), b = (0.3, -0.2), J12 = 0.2, mu = (1, 0.5); s = 0.8,
    T = 4.2 K, C = 1 pF, tau = 1 ns. In kT: J2' = (10, 5), J4' = (10, 20), b' = (3, -2), J12' = 2;
    mu_phys = mu kT / tau = (1e8, 5e7) /s; k_BT = 1.380649e-23 * 4.2 = 5.7987258e-23 J."""
    c = two_units(J2=[1.0, 0.5], J4=[1.0, 2.0], b=[0.3, -0.2], J12=0.2, mu=[1.0, 0.5])
    t = jj_target(phase_scale=0.8, temperature_K=4.2, C_F=1e-12, tau_s=1e-9)
    p = program(c, t)
    a = p.artefact
    kBT, s = 1.380649e-23 * 4.2, 0.8
    assert kBT == pytest.approx(5.7987258e-23, rel=1e-15)
    J2, J4, b, J12 = np.array([10.0, 5.0]), np.array([10.0, 20.0]), np.array([3.0, -2.0]), 2.0
    # beta_L = 12 J4' / (J2' s^2 + 12 J4') = 120/126.4 = 0.9493671, 240/243.2 = 0.9868421
    beta_L = 12 * J4 / (J2 * s ** 2 + 12 * J4)
    assert beta_L == pytest.approx([120 / 126.4, 240 / 243.2], rel=1e-14)
    np.testing.assert_allclose(a.beta_L, beta_L, rtol=1e-12)
    # E_L = 2 J2' k_BT / ((1 - beta_L) s^2), E_J = beta_L E_L
    E_L = 2 * J2 * kBT / ((1 - beta_L) * s ** 2)
    E_J = beta_L * E_L
    assert E_L[0] == pytest.approx(2 * 10 * 5.7987258e-23 / ((6.4 / 126.4) * 0.64), rel=1e-12)   # 3.579e-20 J
    np.testing.assert_allclose(a.E_L, E_L, rtol=1e-12)
    np.testing.assert_allclose(a.E_J, E_J, rtol=1e-12)
    # E_J s^4 / 24 = J4' k_BT (the quartic coefficient)
    np.testing.assert_allclose(a.E_J * s ** 4 / 24, J4 * kBT, rtol=1e-12)
    # I_c = 2 pi E_J / Phi0; L = (Phi0 / 2 pi)^2 / E_L
    np.testing.assert_allclose(a.I_c, 2 * math.pi * E_J / PHI0, rtol=1e-12)
    np.testing.assert_allclose(a.L, (PHI0 / (2 * math.pi)) ** 2 / E_L, rtol=1e-12)
    # E_J = 24 J4' k_BT / s^4 = 240 * 5.7987e-23 / 0.4096 = 3.3977e-20 J; I_c = 2 pi E_J / Phi0
    assert a.I_c[0] == pytest.approx(1.0324e-4, rel=1e-4)
    # mutual inductance: M_12 / L_2 = -J12' k_BT / (E_L1 s^2) and M_12 / L_1 = -J12' k_BT / (E_L2 s^2)
    assert a.M[0, 1] == a.M[1, 0]
    assert a.M[0, 1] / a.L[1] == pytest.approx(-J12 * kBT / (E_L[0] * s ** 2), rel=1e-12)
    assert a.M[0, 1] / a.L[0] == pytest.approx(-J12 * kBT / (E_L[1] * s ** 2), rel=1e-12)
    assert a.M[0, 1] < 0                                       # J > 0 (antiferro) needs M < 0
    # flux biases: K delta = -b' k_BT / s with K = [[E_L1, K12], [K12, E_L2]], K12 = J12' k_BT / s^2
    K12 = J12 * kBT / s ** 2
    r = -b * kBT / s
    det = E_L[0] * E_L[1] - K12 ** 2
    delta = np.array([(r[0] * E_L[1] - K12 * r[1]) / det, (E_L[0] * r[1] - K12 * r[0]) / det])
    np.testing.assert_allclose(a.delta_phi_x, delta, rtol=1e-12)
    np.testing.assert_allclose(a.flux_bias_Phi0, 0.5 + delta / (2 * math.pi), rtol=1e-14)
    # DESIGN's lone-SQUID delta = -b' k_BT / (E_L s) is the zeroth order of the same solve
    np.testing.assert_allclose(josephson.lone_squid_flux_shift(p), r / E_L, rtol=1e-12)
    # R = Phi_r^2 s^2 mu_phys / k_BT (RCSJ, gamma = Phi_r^2 / R)
    mu_phys = np.array([1e8, 5e7])
    np.testing.assert_allclose(a.R, PHIR ** 2 * s ** 2 * mu_phys / kBT, rtol=1e-12)
    assert a.R[0] == pytest.approx(0.119542, rel=1e-5)         # 1.08311e-31 * 0.64 * 1e8 / 5.79873e-23
    # beta_C = 2 pi I_c R^2 C / Phi0; omega_p = sqrt(2 pi I_c / (Phi0 C)); hbar omega_p / k_BT
    np.testing.assert_allclose(a.beta_C, 2 * math.pi * a.I_c * a.R ** 2 * 1e-12 / PHI0, rtol=1e-12)
    wp = np.sqrt(2 * math.pi * a.I_c / (PHI0 * 1e-12))
    np.testing.assert_allclose(a.omega_p, wp, rtol=1e-12)
    np.testing.assert_allclose(a.hbar_omega_p_over_kT, HBAR * wp / kBT, rtol=1e-8)
    # truncation: -J4' s^2 x^6 / 30 = -10*0.64/30 = -0.21333 and -0.42667 kT at |x| = 1; / 64 at 0.5
    np.testing.assert_allclose(a.truncation_error_kT(1.0), -J4 * s ** 2 / 30, rtol=1e-12)
    np.testing.assert_allclose(a.truncation_error_kT(1.0), [-0.2133333333333, -0.4266666666667], rtol=1e-12)
    np.testing.assert_allclose(a.truncation_error_kT(0.5), -J4 * s ** 2 / 30 / 64, rtol=1e-12)
    assert_same_model(p.realised, c)


def test_josephson_preset_numbers_match_its_header():
    """Header of josephson-rfsquid.yaml for J2 = J4 = 10 kT, s = 1, tau = 1 ns, 4.2 K, 10 pF:
    beta_L = 0.923, L = 7.2 pH, Ic = 42 uA, R = 0.19 ohm, beta_C = 0.045, hbar omega_p/k_BT = 0.2."""
    p = compile_computer(Computer.zeros(2, 2, connectivity="dense"), "josephson-rfsquid")
    a = p.artefact
    J2 = p.programmed.J2 / 0.1          # the 10-bit trim puts J2 = 1 half an LSB off: 1.000489
    assert a.beta_L == pytest.approx(120 / (J2 + 120), rel=1e-12)
    assert a.beta_L == pytest.approx(0.923, rel=1e-3)
    assert a.L == pytest.approx(7.2e-12, rel=0.01)
    assert a.I_c == pytest.approx(42e-6, rel=0.01)
    assert a.R == pytest.approx(0.19, rel=0.02)
    assert a.beta_C == pytest.approx(0.045, rel=0.01)
    assert a.hbar_omega_p_over_kT == pytest.approx(0.2, rel=0.04)
    assert a.truncation_error_kT(1.0) == pytest.approx(-1 / 3, rel=1e-12)      # "0.3 kT at |x| = 1"
    assert p.scales["truncation_error_kT_at_x1"] == pytest.approx(-1 / 3, rel=1e-12)
    checks = {v["check"] for v in p.report["violations"]}
    assert not checks & {"beta_C", "classical", "temperature", "inductance"}


def test_josephson_mutual_inductance_sign_from_the_inductance_matrix():
    """Two loops with M > 0: the exact inductive energy 1/2 psi^T Lmat^{-1} psi has the cross
    term -M psi_1 psi_2 / (L1 L2 - M^2) < 0 for parallel branch fluxes, i.e. ferromagnetic
    (J < 0); the backend's K_12 = -Phi_r^2 M / (L1 L2) is its first order."""
    c = two_units(J2=[1.0, 1.0], J4=[1.0, 1.0], b=[0.0, 0.0], J12=-0.2, mu=[1.0, 1.0])
    a = program(c, jj_target()).artefact
    assert a.M[0, 1] > 0
    Lmat = np.diag(a.L) + a.M
    K_exact = PHIR ** 2 * np.linalg.inv(Lmat)
    assert K_exact[0, 1] < 0 and a.K[0, 1] < 0
    m = a.M[0, 1] / math.sqrt(a.L[0] * a.L[1])
    assert abs(K_exact[0, 1] / a.K[0, 1] - 1) < 2 * m ** 2           # agree to first order in M/L


@pytest.mark.parametrize("seed", [0, 3])
def test_josephson_round_trip_to_fourth_order(seed):
    """to_computer maps back to fourth order in x and first order in M: it reproduces the
    programmed quadratic, quartic, bias and coupling terms to float rounding (the flux biases
    fold in the neighbours' offsets exactly)."""
    c = random_computer(3, 3, seed=seed)
    p = compile_computer(c, "josephson-rfsquid")
    back = josephson.to_computer(p.artefact, p)
    assert_same_model(back, p.programmed)
    assert_same_model(p.realised, p.programmed)
    assert_same_model(josephson.to_computer(p.artefact), p.programmed)


def test_josephson_offset_folding_matters():
    """With DESIGN's lone-SQUID shift delta = -b' k_BT/(E_L s) the realised bias is off by
    -s sum_j K_ij delta_j / eps (the neighbours' bias shifts through the coupling); the solved
    shifts remove it."""
    import dataclasses

    c = random_computer(3, 3, seed=5, scale=0.5)
    p = program(c, jj_target())
    a = p.artefact
    lone = josephson.lone_squid_flux_shift(p)
    naive = josephson.to_computer(dataclasses.replace(a, delta_phi_x=lone))
    Koff = a.K - np.diag(a.E_L)
    expected_error = -a.s * (Koff @ lone) / a.energy_unit_J
    np.testing.assert_allclose(naive.b - c.b, expected_error, rtol=1e-9, atol=1e-15)
    assert np.max(np.abs(naive.b - c.b)) > 1e-3                      # visible: ~1 % of b
    np.testing.assert_allclose(p.realised.b, c.b, rtol=1e-12, atol=1e-15)


def test_josephson_second_order_mutual_inductance_error():
    """The first-order hardware model drops K2 = K1 diag(1/E_L) K1; the reported error (from
    the exact inverse) matches it to leading order: J2 shift s^2 sum_j K_ij^2/E_L,j / (2 k_BT)."""
    c = random_computer(3, 3, seed=1, connectivity="dense")
    p = program(c, jj_target())
    a = p.artefact
    err = josephson.mutual_inductance_error(a)
    K1 = a.K - np.diag(a.E_L)
    K2 = K1 @ np.diag(1 / a.E_L) @ K1
    lead = a.s ** 2 * np.diag(K2) / 2 / a.kT_J
    np.testing.assert_allclose(err["J2_kT"], lead, rtol=0.05)
    assert np.all(err["J2_kT"] > 0)                                   # E_L is renormalised upwards


def test_josephson_checks_beta_C_and_classical_regime():
    c = Computer.zeros(2, 2, connectivity="dense")
    # 1 nF instead of 10 pF: beta_C = 0.045 * 100 = 4.5 -> underdamped junction mode
    p = compile_computer(c, jj_target(C_F=1e-9))
    v = [x for x in p.report["violations"] if x["check"] == "beta_C"]
    assert len(v) == 1 and v[0]["beta_C"] == pytest.approx(4.48, rel=0.01) and v[0]["verdict"] == "underdamped"
    assert not any(x["check"] == "classical" for x in p.report["violations"])
    # 20 mK: hbar omega_p / k_BT ~ 9 (the preset header's warning) -> not classical
    p = compile_computer(c, jj_target(temperature_K=0.02, C_F=1e-12))
    v = [x for x in p.report["violations"] if x["check"] == "classical"]
    assert len(v) == 1 and v[0]["hbar_omega_p_over_kT"] > 1
    # fabricated critical current that the mapping cannot use
    p = compile_computer(c, jj_target(Ic_A=1e-6))
    assert any(x["check"] == "fabricated" and x["parameter"] == "Ic_A" for x in p.report["violations"])


def test_full_cosine_potential_differs_from_the_model_by_the_x6_term():
    """One SQUID, J2 = J4 = 1, b = 0.3, kT = 0.1, s = 1.2: U(phi) = E_L (phi - phi_x)^2/2 - E_J cos(phi)
    at phi = pi + s x, phi_x = pi + delta, in units of k_BT, minus its value at x = 0, against
    V(x)/kT - V(0)/kT. The difference is -J4' s^2 x^6 / 30 (the reported truncation error) up to
    the next term, a fraction -(s x)^2/56 of it."""
    s = 1.2
    c = Computer(J=np.zeros((1, 1)), b=[0.3], mask=np.zeros((1, 1), bool), n_visible=1, J2=1.0, J4=1.0, kT=0.1)
    p = program(c, jj_target(phase_scale=s))
    a = p.artefact
    E_L, E_J, phix, kBT = a.E_L[0], a.E_J[0], math.pi + a.delta_phi_x[0], KB * 4.2
    x = np.linspace(-0.5, 0.5, 41)
    phi = math.pi + s * x
    U = (E_L * (phi - phix) ** 2 / 2 - E_J * np.cos(phi)) / kBT
    U0 = (E_L * (math.pi - phix) ** 2 / 2 - E_J * math.cos(math.pi)) / kBT
    V = (c.energy(x[:, None]) - c.energy(np.zeros(1))) / 0.1
    diff = (U - U0) - V
    x6 = -10.0 * s ** 2 * x ** 6 / 30                                  # J4' = 10
    bound = np.abs(x6) * (s * x) ** 2 / 56 * 1.01 + 1e-11
    assert np.all(np.abs(diff - x6) <= bound)
    assert np.max(np.abs(diff)) == pytest.approx(10 * s ** 2 / 30 / 64, rel=0.01)   # 0.0075 kT at |x| = 0.5
    np.testing.assert_allclose(a.truncation_error_kT(0.5)[0], -10 * s ** 2 / 30 / 64, rtol=1e-12)
    np.testing.assert_allclose(a.truncation_error_kT(1.0)[0], -10 * s ** 2 / 30, rtol=1e-12)
    # the backend's own potential agrees with the formula written out here
    np.testing.assert_allclose(josephson.energy_J(a, x[:, None]) / kBT, U - U0, rtol=1e-10, atol=1e-11)


def test_coupled_squids_full_potential_matches_the_model_with_folded_offsets():
    """Two coupled, biased SQUIDs, full physical formula in the loop phases (the pi's included):
    U = sum_i [E_L,i (phi_i - phi_xi)^2/2 - E_J,i cos phi_i] - Phi_r^2 M/(L1 L2) (phi_1 - phi_x1)(phi_2 - phi_x2).
    Its difference from the model is only the two x^6 terms (to leading order): the couplings,
    quartics and, through the folded flux biases, the linear terms all match."""
    c = two_units(J2=[1.0, 0.7], J4=[1.0, 1.3], b=[0.4, -0.5], J12=0.3, mu=[1.0, 1.0])
    a = program(c, jj_target()).artefact
    kBT = KB * 4.2
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 0.3, (200, 2))

    def U(xx):
        phi = math.pi + a.s * xx
        psi = phi - (math.pi + a.delta_phi_x)
        u = np.sum(a.E_L * psi ** 2 / 2 - a.E_J * np.cos(phi), axis=-1)
        return u - PHIR ** 2 * a.M[0, 1] / (a.L[0] * a.L[1]) * psi[..., 0] * psi[..., 1]

    diff = (U(x) - U(np.zeros(2))) / kBT - (c.energy(x) - c.energy(np.zeros(2))) / 0.1
    x6 = np.sum(-np.array([10.0, 13.0]) * x ** 6 / 30, axis=-1)
    np.testing.assert_allclose(diff, x6, rtol=0.3 ** 2 / 56 * 1.01, atol=1e-11)


def test_josephson_write_reads_back(tmp_path):
    c = random_computer(3, 3, seed=2)
    p = compile_computer(c, "josephson-rfsquid")
    files = josephson.write(p, tmp_path)
    assert {f.name for f in files} == {"chip.cir", "rfsquids.yaml", "couplings.csv"}
    text = (tmp_path / "rfsquids.yaml").read_text()
    assert text.startswith("# thermohw rf-SQUID array")
    d = yaml.safe_load(text)
    a = p.artefact
    assert d["temperature_K"] == 4.2
    keys = {"E_J_J": a.E_J, "I_c_A": a.I_c, "L_H": a.L, "C_F": a.C, "R_shunt_ohm": a.R,
            "flux_bias_Phi0": a.flux_bias_Phi0, "flux_bias_shift_rad": a.delta_phi_x, "phase_scale_rad": a.s,
            "beta_L": a.beta_L, "beta_C": a.beta_C, "truncation_error_kT_at_x1": a.truncation_error_kT(1.0),
            "truncation_error_kT_at_x0.5": a.truncation_error_kT(0.5)}
    assert len(d["squids"]) == a.n_units
    for row in d["squids"]:
        for k, arr in keys.items():
            assert row[k] == arr[row["unit"]], k
    for cp in d["couplings"]:
        assert cp["M_H"] == a.M[cp["i"], cp["j"]]
    assert len(d["couplings"]) == int(np.count_nonzero(np.triu(a.coupled, 1)))
    assert set(d["mutual_inductance_second_order"]) >= {"J2_error_kT_max", "J_error_kT_max"}
    with open(tmp_path / "couplings.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["M_H"]) for r in rows] == [cp["M_H"] for cp in d["couplings"]]


def test_josephson_rejects_a_negative_inductance():
    """J2 s^2 + 12 J4 <= 0 would need E_L <= 0."""
    from thermohw import InputError

    c = Computer(J=np.zeros((1, 1)), b=[0.0], mask=np.zeros((1, 1), bool), n_visible=1, J2=-2.0, J4=0.1)
    with pytest.raises(InputError, match="E_L <= 0"):
        program(c, jj_target(phase_scale=3.0))
