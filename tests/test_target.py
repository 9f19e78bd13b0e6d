"""Target: presets, YAML validation (safe loading, named fields), topologies, quantisers, E series."""
import math

import networkx as nx
import numpy as np
import pytest

from thermohw import Computer, InputError
from thermohw.target import (E_SERIES, Couplings, Quant, RelativeTrim, Target, Topology, Trim, list_presets,
                             resolve, snap_to_series)

PRESETS = ["rc-8bit-dense", "rc-kings", "rc-degree16", "lc-spu", "lc-overdamped-96", "mechanical-cantilever", "mechanical-overdamped",
           "josephson-rfsquid", "josephson-rfsquid-96", "rc-paper-kings", "rc-paper-local16", "rc-mnist-crossbar"]

GOOD = """
name: tiny
kind: rc
units: 6
topology: {type: all-to-all}
couplings: {min: -1.0, max: 1.0, bits: 8}
biases: {min: -2.0, max: 2.0, bits: 8}
physics:
  C_F: 1.0e-12
  V_s_V: 0.1
  tau_s: 1.0e-6
  noise: {source: injected}
"""


def tiny(**replace):
    """GOOD with some top-level lines replaced (key -> new YAML text for that line)."""
    lines = GOOD.strip("\n").split("\n")
    for key, text in replace.items():
        lines = [text if ln.startswith(f"{key}:") else ln for ln in lines]
    return "\n".join(lines) + "\n"


def error(text):
    with pytest.raises(InputError) as e:
        Target.from_yaml(text)
    return str(e.value)


# ---- presets ---------------------------------------------------------------------------------
def test_presets_listed():
    assert sorted(PRESETS) == list_presets()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_round_trips(name, tmp_path):
    t = Target.preset(name)
    assert t.name == name
    assert Target.from_yaml(t.to_yaml()) == t
    path = t.save(tmp_path / f"{name}.yaml")
    assert Target.from_yaml(path) == t
    assert resolve(name) == t and resolve(str(path)) == t
    assert t.source and t.description
    m = t.mask()
    assert m.shape == (t.units, t.units) and np.array_equal(m, m.T) and not m.diagonal().any()


def test_preset_values():
    dense = Target.preset("rc-8bit-dense")
    assert dense.physics.V_s_V == 0.1 and dense.physics.C_F == 1e-12 and dense.physics.tau_s == 1e-6
    assert dense.components.resistor_series == "E96" and dense.couplings.code_range == (-127, 127)
    assert Target.preset("rc-kings").couplings.bits == 6
    assert Target.preset("rc-degree16").topology.max_degree == 16
    assert Target.preset("lc-spu").physics.q_factor == pytest.approx(1.0)
    assert Target.preset("josephson-rfsquid").physics.phase_scale == 1.0


def test_unknown_preset_lists_available():
    with pytest.raises(InputError) as e:
        Target.preset("rc-kingz")
    msg = str(e.value)
    assert "'rc-kings'" in msg and all(p in msg for p in PRESETS)
    with pytest.raises(InputError, match="neither a preset nor an existing YAML file.*rc-8bit-dense"):
        resolve("no-such-target")


# ---- topology ------------------------------------------------------------------------------------
def test_kings_3x3_has_20_edges():
    t = Topology(type="kings", rows=3, cols=3)
    g = t.graph(9)
    assert g.number_of_edges() == 20
    assert g.degree(4) == 8 and g.degree(0) == 3     # centre and corner
    assert g.has_edge(0, 4) and g.has_edge(2, 4) and not g.has_edge(0, 2)
    assert t.mask(9).sum() == 40


def test_degree_limited_never_exceeds_d():
    for d in (1, 3, 4, 5, 16):
        t = Topology(type="degree-limited", max_degree=d)
        for n in (1, 2, d, d + 1, d + 2, 17, 40, 41):
            deg = t.mask(n).sum(axis=1)
            assert deg.max(initial=0) <= d
            if n > d + 1 and (d % 2 == 0 or n % 2 == 0):
                assert deg.min() == d                   # the reference ring uses the full degree
    t = Topology(type="degree-limited", max_degree=2)
    assert t.admits(np.eye(4, k=1, dtype=bool)) and not t.admits(np.ones((4, 4), bool))


def test_bipartite_has_no_visible_visible_edges():
    t = Topology(type="bipartite", n_visible=4)
    m = t.mask(10)
    assert not m[:4, :4].any() and m[:4, 4:].all() and not m[4:, 4:].any()
    paper = Topology(type="bipartite", n_visible=4, hidden_hidden=True).mask(10)
    assert not paper[:4, :4].any() and paper[4:, 4:].sum() == 6 * 5
    # the paper layout is exactly Computer's "paper" connectivity
    assert np.array_equal(paper, Computer.zeros(4, 6).mask)
    assert nx.get_node_attributes(t.graph(10), "visible")[3] is True


def test_edge_list_respected_and_range_checked():
    text = tiny(topology="topology: {type: edges, edges: [[0, 1], [2, 1], [1, 0], [4, 5]]}")
    t = Target.from_yaml(text)
    assert t.topology.edges == ((0, 1), (1, 2), (4, 5))
    assert set(t.graph().edges) == {(0, 1), (1, 2), (4, 5)}
    assert t.mask(3).sum() == 4                          # induced on units 0..2
    c = Computer.zeros(2, 4, mask=t.mask())
    assert t.admits(c.mask) and not t.admits(Computer.zeros(2, 4).mask)
    msg = error(tiny(topology="topology: {type: edges, edges: [[0, 1], [3, 6]]}"))
    assert "topology.edges[1] = [3, 6]" in msg and "units = 6" in msg and "0..5" in msg
    assert "topology.edges[0]" in error(tiny(topology="topology: {type: edges, edges: [[2, 2]]}"))


def test_topology_cross_checks():
    assert "topology.rows x cols" in error(tiny(topology="topology: {type: kings, rows: 2, cols: 2}"))
    assert "topology.max_degree: does not apply to type 'kings'" in error(
        tiny(topology="topology: {type: kings, rows: 2, cols: 3, max_degree: 4}"))
    assert "topology.n_visible" in error(tiny(topology="topology: {type: bipartite, n_visible: 6}"))
    assert "topology.max_degree: missing" in error(tiny(topology="topology: {type: degree-limited}"))
    t = Target.from_yaml(GOOD)
    assert t.mask(4).shape == (4, 4)
    with pytest.raises(InputError, match="n_units = 7 exceeds the unit budget"):
        t.mask(7)
    assert not t.admits(np.zeros((7, 7), bool))


# ---- bad YAML: one clear error naming the field --------------------------------------------------
def test_malformed_yaml_syntax():
    msg = error("name: x\nkind: rc\n  units: [1, 2\n")
    assert "invalid YAML" in msg and "line" in msg


def test_not_a_mapping():
    assert "must be a mapping" in error("- name: x\n- kind: rc\n")
    assert "got nothing (empty)" in error("# only a comment\n")


def test_unknown_key_suggests_fix():
    msg = error(tiny(couplings="couplings: {min: -1.0, max: 1.0, bitz: 8}"))
    assert "couplings.bitz: unknown key" in msg and "did you mean 'bits'" in msg
    assert "min, max, bits, rounding, prune" in msg
    assert "did you mean 'units'" in error(GOOD + "unit: 4\n")


def test_duplicate_key_rejected():
    msg = error(GOOD + "units: 8\n")
    assert "units: duplicate key" in msg


@pytest.mark.parametrize("line, field, words", [
    ("couplings: {min: -1.0, max: 1.0, bits: 1}", "couplings.bits = 1", "2..16"),
    ("couplings: {min: -1.0, max: 1.0, bits: 17}", "couplings.bits = 17", "2..16"),
    ("couplings: {min: -1.0, max: 1.0, bits: 7.5}", "couplings.bits", "whole number"),
    ("couplings: {min: 1.0, max: 1.0, bits: 8}", "couplings.max = 1 must be greater than min = 1", ""),
    ("couplings: {min: 0.5, max: 1.0, bits: 8}", "couplings.min = 0.5", "include 0"),
    ("couplings: {min: -1.0, max: 1.0, bits: 8, rounding: floor}", "couplings.rounding", "'nearest'"),
    ("couplings: {min: -1.0, max: .nan, bits: 8}", "couplings.max = nan", "not finite"),
    ("couplings: {min: -1.0, max: .inf, bits: 8}", "couplings.max = inf", "not finite"),
    ("couplings: {min: -1.0, max: one, bits: 8}", "couplings.max = 'one'", "not a number"),
    ("couplings: {min: -1.0, max: true, bits: 8}", "couplings.max = True", "not a number"),
    ("couplings: [1, 2]", "couplings must be a mapping", "a list"),
    ("kind: optical", "kind = 'optical'", "'rc', 'lc', 'mechanical', 'josephson'"),
    ("units: 0", "units = 0", "1.."),
    ("name: 'bad name!'", "name = 'bad name!'", "identifier"),
])
def test_bad_values_name_the_field(line, field, words):
    msg = error(tiny(**{line.split(":")[0]: line}))
    assert field in msg and words in msg
    assert msg.count("\n") == 0


def test_bad_physics_values():
    bad_c = GOOD.replace("C_F: 1.0e-12", "C_F: -1.0e-12")
    assert "physics.C_F = -1e-12 F must be positive" in error(bad_c)
    assert "physics.C_F = 1 F is outside the plausible range" in error(GOOD.replace("1.0e-12", "1.0"))
    assert "physics.C_F = nan" in error(GOOD.replace("1.0e-12", ".nan"))
    assert "physics.C_F = '1 pF' is not a number" in error(GOOD.replace("1.0e-12", "1 pF"))
    msg = error(GOOD.replace("{source: injected}", "{source: injected, temperature_K: 1.0e4}"))
    assert "physics.noise.temperature_K = 10000 K" in msg and "0.001 .. 1000 K" in msg
    assert "physics.V_s_V: missing" in error(GOOD.replace("  V_s_V: 0.1\n", ""))
    assert "physics.L_H: unknown key" in error(GOOD.replace("V_s_V: 0.1", "V_s_V: 0.1\n  L_H: 1.0e-3"))
    # kind decides the physics block
    msg = error(tiny(kind="kind: mechanical"))
    assert "physics.C_F: unknown key" in msg and "for kind 'mechanical': length_scale_m" in msg
    mech = tiny(kind="kind: mechanical").split("physics:")[0] + "physics: {mass_kg: 1.0e-10}\n"
    assert "physics.length_scale_m: missing" in error(mech)
    lc = tiny(kind="kind: lc").replace("V_s_V: 0.1", "V_s_V: 0.1\n  L_H: 1.0e-3")
    assert "physics.R_ohm: give exactly one of R_ohm or quality_factor" in error(lc)
    q = Target.from_yaml(lc.replace("L_H: 1.0e-3", "L_H: 1.0e-3\n  quality_factor: 0.1"))
    assert q.physics.resistance_ohm == pytest.approx(0.1 * math.sqrt(1e-3 / 1e-12))


def test_yaml_1_1_exponent_strings_are_numbers():
    # PyYAML reads 1e-12 (no dot) as a string; the target accepts it as the number it means
    t = Target.from_yaml(GOOD.replace("1.0e-12", "1e-12").replace("1.0e-6", "1e-6"))
    assert t.physics.C_F == 1e-12 and t.physics.tau_s == 1e-6


def test_python_tags_are_rejected():
    msg = error('name: !!python/object/apply:os.system ["echo hi"]\nkind: rc\n')
    assert "python/object/apply:os.system" in msg and "safe_load" in msg
    assert "python/name" in error(tiny(units="units: !!python/name:os.getcwd ''"))


def test_missing_file_and_wrong_schema(tmp_path):
    assert "no such target file" in error(str(tmp_path / "absent.yaml"))
    assert "schema = 'thermohw.target/9'" in error(GOOD + "schema: thermohw.target/9\n")


def test_direct_construction_validates():
    t = Target.from_yaml(GOOD)
    with pytest.raises(InputError, match="couplings.bits = 20"):
        t.replace(couplings={"min": -1, "max": 1, "bits": 20})
    with pytest.raises(InputError, match="physics is a RCPhysics, but kind is 'mechanical'"):
        t.replace(kind="mechanical")
    with pytest.raises(InputError, match="biases is a Trim; expected a Quant"):
        t.replace(biases=Trim(min=0, max=1, bits=8))
    assert t.replace(units=8).units == 8
    assert hash(t) == hash(Target.from_yaml(GOOD))


# ---- quantisers -------------------------------------------------------------------------------------
def test_signed_quantiser():
    q = Quant(min=-1.0, max=1.0, bits=8)
    assert q.step == pytest.approx(1 / 127) and q.code_range == (-127, 127)
    x = np.array([-2.0, -1.0, -0.004, 0.0, 0.0041, 0.5, 1.0, 3.0])
    k = q.encode(x)
    assert k.tolist() == [-127, -127, -1, 0, 1, 64, 127, 127]
    assert np.all(np.abs(q.quantize(x[1:-1]) - x[1:-1]) <= q.step / 2 + 1e-15)
    asym = Quant(min=-0.5, max=1.0, bits=8)
    assert asym.code_range == (-63, 127) and asym.quantize(-0.5) >= -0.5
    c = Couplings(min=-1, max=1, bits=4, rounding="stochastic")
    with pytest.raises(InputError, match="rng"):
        c.encode([0.1])
    vals = c.quantize(np.full(20000, 0.05), rng=np.random.default_rng(0))
    assert set(np.unique(vals)) == {0.0, c.step} and vals.mean() == pytest.approx(0.05, abs=3e-3)


def test_trim_quantiser():
    t = Trim(min=0.5, max=1.5, bits=10)
    assert t.code_range == (0, 1023) and t.step == pytest.approx(1 / 1023)
    assert t.decode([0, 1023]).tolist() == pytest.approx([0.5, 1.5])
    assert abs(t.quantize(1.0) - 1.0) <= t.step / 2


def test_relative_trims_of_the_cubic_gain_and_time_constant(tmp_path):
    """cubic (J4) and mobility (mu) trims: signed relative gain codes, code 0 = the compiled
    value exactly; they round-trip through YAML and bad ranges are one-line errors."""
    t = Target.from_yaml(GOOD + "cubic: {min: -0.3, max: 0.3, bits: 8}\nmobility: {min: -0.2, max: 0.2, bits: 6}\n")
    assert isinstance(t.cubic, RelativeTrim) and t.mobility.bits == 6
    assert t.cubic.step == pytest.approx(0.3 / 127) and t.cubic.factor(0) == 1.0
    assert t.cubic.factor(t.cubic.encode([0.05, 0.9])).tolist() == pytest.approx([1.05, 1.3], abs=t.cubic.step / 2)
    back = Target.from_yaml(t.save(tmp_path / "t.yaml"))
    assert back == t and back.cubic == t.cubic and back.mobility == t.mobility
    assert Target.from_yaml(GOOD).cubic is None
    p = Target.preset("rc-8bit-dense")
    assert p.cubic is not None and p.mobility is not None
    for line, words in (("cubic: {min: 0.0, max: 0.3, bits: 8}", "cubic.min = 0 .. max = 0.3 must be relative"),
                        ("mobility: {min: -0.2, max: 1.5, bits: 8}", "mobility.min = -0.2 .. max = 1.5"),
                        ("cubic: {min: -0.3, max: 0.3, bits: 1}", "cubic.bits = 1"),
                        ("cubic: {min: -0.3, max: 0.3, bit: 8}", "did you mean 'bits'")):
        msg = error(GOOD + line + "\n")
        assert words in msg and msg.count("\n") == 0, msg
    with pytest.raises(InputError, match="cubic is a Trim; expected a RelativeTrim"):
        t.replace(cubic=Trim(min=0.5, max=1.5, bits=8))


# ---- E series ---------------------------------------------------------------------------------------
E96_PUBLISHED = [100, 102, 105, 107, 110, 113, 115, 118, 121, 124, 127, 130, 133, 137, 140, 143, 147,
                 150, 154, 158, 162, 165, 169, 174, 178, 182, 187, 191, 196, 200, 205, 210, 215, 221,
                 226, 232, 237, 243, 249, 255, 261, 267, 274, 280, 287, 294, 301, 309, 316, 324, 332,
                 340, 348, 357, 365, 374, 383, 392, 402, 412, 422, 432, 442, 453, 464, 475, 487, 499,
                 511, 523, 536, 549, 562, 576, 590, 604, 619, 634, 649, 665, 681, 698, 715, 732, 750,
                 768, 787, 806, 825, 845, 866, 887, 909, 931, 953, 976]


def test_e_series_tables():
    assert {k: len(v) for k, v in E_SERIES.items()} == {"E24": 24, "E48": 48, "E96": 96, "E192": 192}
    assert 4.7 in E_SERIES["E24"] and 6.8 in E_SERIES["E24"] and 2.7 in E_SERIES["E24"]
    assert 1.02 in E_SERIES["E96"] and 9.76 in E_SERIES["E96"]
    assert [round(v * 100) for v in E_SERIES["E96"]] == E96_PUBLISHED
    assert E_SERIES["E48"] == E_SERIES["E96"][::2]
    assert E_SERIES["E192"][185] == 9.20                   # the one exception to the rule
    for s in E_SERIES.values():
        assert all(a < b for a, b in zip(s, s[1:])) and s[0] == 1.0 and s[-1] < 10


def test_snap_to_series():
    assert snap_to_series(1234.0, "E24") == 1200.0
    # 4.7 lies between E96's 4.64 and 4.75; ln(4.75/4.7) = 0.0106 < ln(4.7/4.64) = 0.0128
    assert snap_to_series(0.0047, "E96") == pytest.approx(0.00475, rel=1e-12)
    assert snap_to_series(0.0047, "E24") == pytest.approx(0.0047, rel=1e-12)
    assert snap_to_series(9.9e3, "E24") == 10000.0        # rounds up into the next decade
    assert snap_to_series(1.04e-12, "E24") == pytest.approx(1.0e-12, rel=1e-12)
    assert snap_to_series(500e3, "E96") == pytest.approx(499e3)
    assert snap_to_series(123.0, None) == 123.0
    out = snap_to_series(np.array([1234.0, 0.0047]), "E24")
    assert out.tolist() == pytest.approx([1200.0, 0.0047])
    with pytest.raises(InputError, match="E12"):
        snap_to_series(1.0, "E12")
    with pytest.raises(InputError, match="positive"):
        snap_to_series(-1.0, "E24")


def test_yaml_aliases_are_refused_quickly():
    """A 'billion laughs' document or a self-referencing alias is one clear error, not hours
    of work or a RecursionError."""
    bomb = "a: &a [1,1,1,1,1,1,1,1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 8) + "]\n" for i in range(8))
    with pytest.raises(InputError, match="alias"):  # refused at the first shared node, not expanded
        Target.from_yaml(bomb)
    with pytest.raises(InputError):
        Target.from_yaml("a: &r [*r]\n")
