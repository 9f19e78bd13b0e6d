"""Property-based tests of every loader (hypothesis).

For each kind of file a user hands thermohw - MNIST IDX images and labels, a target YAML, a
model NPZ (dense and sparse schema), the training-digits NPZ, a compiled program folder, a
replay recording (CSV, thermohw NPZ, plain NPZ) and a sample folder (samples.npz +
summary.json) - a valid file is built, damaged at random (byte flips, truncation, header field
edits, type swaps, dtype changes, huge sizes, random YAML/JSON values) and loaded.

The property: the load gives a valid record, or raises ``ThermohwError`` with ONE line that
names the file. Never another exception type, and never a numpy warning: a warning is how
numpy reports a value it altered on the way (a complex array cast to float loses its imaginary
part with only a ComplexWarning), so warnings are errors here.

Reproducible: every test has a fixed ``max_examples`` and ``derandomize=True`` (the same
examples on every run and in CI; no example database). ``THERMOHW_PROPERTY_SCALE=k``
multiplies every count for a deeper local search (used while hardening the loaders).

Example counts (scale 1): IDX 200, target YAML edits 120, random YAML documents 80,
model NPZ dense 150 + sparse 120, digits NPZ 100, compiled program 60, replay CSV 150,
replay NPZ record 100 + plain 120, samples.npz 100, summary.json 80: 1380 in all, about
13 s on 2 cores (the YAML tests are the slow part: PyYAML parses in pure Python).
``--hypothesis-show-statistics`` shows, per test, how many examples loaded and how many
were refused.
"""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import random_computer
from thermohw.calibrate.devices import open_device
from thermohw.calibrate.recording import Recording, read_recording
from thermohw.compile import CompiledProgram, compile_computer
from thermohw.computer import Computer
from thermohw.data import Digits, load_training_digits, normalise
from thermohw.errors import InputError, ThermohwError
from thermohw.langevin import Trajectory, generate
from thermohw.target import Target, list_presets
from thermohw.workflow import read_sample_folder

SCALE = max(1, int(os.environ.get("THERMOHW_PROPERTY_SCALE", "1")))


def fixed(n: int):
    """Reproducible settings: ``n`` examples (times SCALE), derandomised, no deadline."""
    return settings(max_examples=n * SCALE, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def loads_or_refuses(load, *names: str):
    """Run ``load()``: return its record, or None when it raised a ThermohwError whose message
    is one line naming one of ``names`` (the file). Any other exception, or any warning,
    fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            got = load()
        except ThermohwError as e:
            msg = str(e)
            assert msg.strip() and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
            assert any(n in msg for n in names), f"message does not name the file {names}: {msg}"
            event("refused with a clear error")  # (--hypothesis-show-statistics shows the split)
            return None
    event("loaded a valid record")
    return got


# ---------------------------------------------------------------------------------------------
# damage strategies
# ---------------------------------------------------------------------------------------------
BYTE_EDITS = st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "drop", "insert"]),
                                st.integers(0, 2 ** 31), st.integers(0, 255)), min_size=1, max_size=4)


def apply_edits(data: bytes, edits) -> bytes:
    """Flip a bit, overwrite, truncate, drop or insert a byte at each (position mod length)."""
    b = bytearray(data)
    for op, pos, val in edits:
        if not b:
            break
        i = pos % len(b)
        if op == "flip":
            b[i] ^= 1 << (val % 8)
        elif op == "set":
            b[i] = val
        elif op == "cut":
            del b[i:]
        elif op == "drop":
            del b[i]
        else:
            b.insert(i, val)
    return bytes(b)


HUGE_INTS = st.sampled_from([2 ** 31, 2 ** 32 - 1, 2 ** 53 + 1, 2 ** 63, 2 ** 64 + 7, 10 ** 30, 10 ** 400, -10 ** 400])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 40), 2 ** 40), HUGE_INTS,
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                    st.sampled_from(["1e-12", "1e999", "nan", "-1", "0", "", "x0", "3.0", "0x10"]))
JSON_VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=6)


def npy(a) -> bytes:
    """One .npy member, written as numpy writes it (object arrays pickled, as a foreign
    ``np.savez`` would). allow_pickle=True here only WRITES such a hostile member, so the tests
    can check that the loaders (np.load with allow_pickle=False) refuse it with one line."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=True)
    return buf.getvalue()


def npz_bytes(members: dict, compress: bool = True) -> bytes:
    """An .npz file from arrays or raw .npy bytes, with correct zip CRCs (so a damaged member
    reaches numpy's parser rather than failing the zip check)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, v in members.items():
            z.writestr(name + ".npy", v if isinstance(v, bytes) else npy(v))
    return buf.getvalue()


def read_members(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


ARRAY_EDITS = ["complex", "object", "string", "numeric_string", "bytes", "bool", "int8", "uint64", "float16",
               "nan", "inf", "huge", "negative", "zero", "transpose", "ravel", "empty", "scalar", "extra_axis",
               "truncate", "grow", "fraction", "drop", "struct"]


def edit_array(a: np.ndarray, how: str, rng: np.random.Generator):
    """``a`` changed in kind, shape or value (None: remove the member)."""
    with np.errstate(all="ignore"):  # the edits themselves may overflow (inf -> int8, 1e308 -> float16)
        return _edit_array(np.asarray(a), how, rng)


def _edit_array(a: np.ndarray, how: str, rng: np.random.Generator):
    flat = a.reshape(-1)
    if how == "complex":
        return (a.astype(np.complex128) if a.dtype.kind in "biufc" else np.zeros(a.shape)) + 1j
    if how == "object":
        return np.array([None, "x", 1.5], dtype=object) if a.ndim == 0 or a.size == 0 else a.astype(object)
    if how == "string":
        return np.array(["abc"] * max(1, a.size)).reshape(a.shape if a.size else (1,))
    if how == "numeric_string":
        return a.astype(str)
    if how == "bytes":
        return a.astype(str).astype("S")
    if how == "bool":
        return a.astype(bool)
    if how == "int8":
        return a.astype(np.float64).astype(np.int8) if a.dtype.kind in "fiub" else a
    if how == "uint64":
        return np.full(a.shape, 2 ** 64 - 1, dtype=np.uint64)
    if how == "float16":
        return a.astype(np.float16) if a.dtype.kind in "fiub" else a
    if how in ("nan", "inf", "huge", "negative", "zero", "fraction"):
        b = np.array(a, dtype=np.float64) if a.dtype.kind in "fiub" else np.zeros(a.shape)
        if b.size == 0:
            return b
        i = rng.integers(b.size)
        f = b.reshape(-1)
        f[i] = {"nan": np.nan, "inf": -np.inf, "huge": 1e308, "negative": -abs(f[i]) - 1.0, "zero": 0.0,
                "fraction": f[i] + 0.5}[how]
        return b
    if how == "transpose":
        return a.T.copy() if a.ndim >= 2 else a.reshape(-1, 1)
    if how == "ravel":
        return flat.copy()
    if how == "empty":
        return flat[:0].copy()
    if how == "scalar":
        return np.asarray(flat[0]) if flat.size else np.float64(1.0)
    if how == "extra_axis":
        return a[None, ...].copy()
    if how == "truncate":
        return a[: max(0, a.shape[0] - 1)].copy() if a.ndim else a
    if how == "grow":
        return np.concatenate([a, a[:1]]) if a.ndim and a.shape[0] else a
    if how == "struct":
        return np.zeros(max(1, a.size), dtype=[("a", "f8"), ("b", "i4")])
    return None  # drop


def json_paths(obj, prefix=()):
    """Every key path into nested dicts (lists are indexed too)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out += json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append(prefix + (i,))
            out += json_paths(v, prefix + (i,))
    return out


@st.composite
def tree_edit(draw, doc, values=JSON_VALUES, extra_keys=("bogus",)):
    """``doc`` (nested dicts/lists) with one random change: a value replaced, a key deleted, an
    unknown key added, or the whole document replaced."""
    doc = json.loads(json.dumps(doc))
    paths = json_paths(doc)
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "add", "replace"]))
    if kind == "replace" or not paths:
        return draw(values)
    path = draw(st.sampled_from(paths))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if kind == "set":
        parent[path[-1]] = draw(values)
    elif kind == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(list(extra_keys)))] = draw(values)
    else:
        parent.append(draw(values))
    return doc


@st.composite
def damaged_record(draw, members: dict):
    """Bytes of a damaged .npz record built from ``members`` (arrays, incl. the JSON header):
    whole-file byte damage, one member's .npy bytes damaged, array edits, or header edits."""
    members = dict(members)
    compress = draw(st.booleans())
    kind = draw(st.sampled_from(["file", "member", "arrays", "arrays", "header", "header", "header_text",
                                 "header_kind"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    names = sorted(k for k in members if k != "__header__")
    if kind == "file":
        return apply_edits(npz_bytes(members, compress), draw(BYTE_EDITS))
    if kind == "member":
        name = draw(st.sampled_from(sorted(members)))
        members[name] = apply_edits(npy(members[name]), draw(BYTE_EDITS))
    elif kind == "arrays":
        for name, how in draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(ARRAY_EDITS)),
                                       min_size=1, max_size=3)):
            if name not in members:
                continue
            try:
                new = edit_array(members[name], how, rng)
            except (TypeError, ValueError):  # an edit that does not apply to what an earlier one made
                continue
            if new is None:
                del members[name]
            else:
                members[name] = new
    elif kind == "header" and "__header__" in members:
        head = json.loads(str(members["__header__"]))
        members["__header__"] = np.array(json.dumps(draw(tree_edit(head, extra_keys=("bogus", "couplings",
                                                                                        "schema")))))
    elif kind == "header_text" and "__header__" in members:
        text = str(members["__header__"]).encode()
        members["__header__"] = np.array(apply_edits(text, draw(BYTE_EDITS)).decode("latin-1"))
    elif "__header__" in members:
        members["__header__"] = draw(st.sampled_from([np.array([1, 2]), np.array(b"{}"), np.array(["{}", "{}"]),
                                                      np.array(3.0), np.array("[" * 5000 + "]" * 5000),
                                                      np.array('{"schema": "' + "x" * 10 + '"}'),
                                                      np.array("9" * 5000)]))
    return npz_bytes(members, compress)


# ---------------------------------------------------------------------------------------------
# IDX images and labels
# ---------------------------------------------------------------------------------------------
def idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


IDX_IMAGES = idx_bytes(np.random.default_rng(0).integers(0, 256, (6, 4, 4)).astype(np.uint8))
IDX_LABELS = idx_bytes(np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8))


@st.composite
def damaged_idx(draw, data: bytes) -> bytes:
    b = bytearray(data)
    for field, value in draw(st.lists(st.tuples(st.sampled_from(["magic", "code", "ndim", "dim"]),
                                                st.integers(0, 2 ** 32 - 1)), max_size=3)):
        if field == "magic":
            b[value % 2] = value % 256
        elif field == "code":
            b[2] = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, value % 256]))
        elif field == "ndim":
            b[3] = value % 256
        else:  # a dimension: small, off by one, or huge (products that overflow int64)
            k = draw(st.integers(0, 3))
            v = draw(st.sampled_from([value, 0, 1, 2 ** 32 - 1, 2 ** 31, 2 ** 16, 6, 7, 5]))
            if 4 + 4 * k + 4 <= len(b):
                b[4 + 4 * k: 8 + 4 * k] = struct.pack(">I", v)
    if draw(st.booleans()):
        b = bytearray(apply_edits(bytes(b), draw(BYTE_EDITS)))
    if draw(st.booleans()):
        g = gzip.compress(bytes(b))
        b = bytearray(apply_edits(g, draw(BYTE_EDITS)) if draw(st.booleans()) else g)
    return bytes(b)


def test_idx_overflowing_header_is_a_clear_error(tmp_path):
    # 4 dims of 2**16 * ... : the element count (2**64 * 2**... ) wraps to 0 in int64 arithmetic
    head = struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">4I", 2 ** 16, 2 ** 16, 2 ** 16, 2 ** 16)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(head)
    with pytest.raises(InputError, match="truncated") as e:
        load_training_digits(p, indices=[0])
    assert str(p) in str(e.value) and "2**64" not in str(e.value)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    _CACHE.clear()
    return tmp_path_factory.mktemp("loaders")


_CACHE: dict = {}


def cached(key: str, build):
    """Valid files' contents, built once per module run (kept out of fixtures so hypothesis
    does not print them with a failing example)."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


@fixed(200)
@given(images=damaged_idx(IDX_IMAGES), labels=st.one_of(st.just(IDX_LABELS), damaged_idx(IDX_LABELS),
                                                          st.just(idx_bytes(np.zeros(5, np.uint8))),
                                                          st.just(idx_bytes(np.zeros((6, 1), np.uint8)))))
def test_idx_loader_property(work, images, labels):
    d = work / "idx"
    d.mkdir(exist_ok=True)
    p, q = d / "train-images-idx3-ubyte", d / "train-labels-idx1-ubyte"
    p.write_bytes(images)
    q.write_bytes(labels)
    got = loads_or_refuses(lambda: load_training_digits(p, digits=(0, 1)), p.name, q.name)
    if got is not None:
        assert isinstance(got, Digits) and np.all(np.isfinite(got.patterns))
        assert sorted(got.labels.tolist()) == [0, 1]


def test_normalise_is_scale_free_for_extreme_values():
    x = np.array([[1e300, -1e300, 3e300, 0.0], [1e-310, 0.0, -2e-310, 5e-311]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = normalise(x)
    np.testing.assert_allclose(z, normalise(np.array([[1.0, -1.0, 3.0, 0.0], [10, 0, -20, 5]])), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# target YAML
# ---------------------------------------------------------------------------------------------
PRESET_DOCS = {name: yaml.safe_load(Target.preset(name).to_yaml()) for name in list_presets()}
EDGES_DOC = {**PRESET_DOCS["rc-8bit-dense"], "name": "edges-4", "units": 4,
             "topology": {"type": "edges", "edges": [[0, 1], [1, 2], [2, 3]]}}
YAML_VALUES = st.one_of(JSON_VALUES, st.sampled_from([{"type": "kings", "rows": 2, "cols": 2}, [[0, 1], [1, 1]],
                                                      [{"a": 1, "b": 2}], [[0, 10 ** 400]], "E24", "rc",
                                                      "injected", "all-to-all", {"source": "thermal"}]))
YAML_SNIPPETS = ["!!python/object/apply:os.system ['true']", "&a [1, *a]", "{<<: {a: 1}}", "!!binary aGVsbG8=",
                 "!!set {a, b}", "2001-12-14", "!!timestamp 2001-12-14t21:59:43.10-05:00", "? [1, 2]\n  : 3",
                 "[" * 3000, "*undefined", "!!omap [a: 1]", "1e-12", "0o17", "0x1F", ".inf", "-.nan", "~",
                 "'\\x00'", "\"\\ud800\"", "|\n  text", "yes", "1_000"]


def _check_target(t: Target) -> None:
    assert isinstance(t, Target)
    assert Target.from_yaml(t.to_yaml()) == t   # what loaded is a record that round-trips


@fixed(120)
@given(doc=st.sampled_from(sorted(PRESET_DOCS) + ["edges"]).flatmap(
    lambda n: tree_edit(EDGES_DOC if n == "edges" else PRESET_DOCS[n], values=YAML_VALUES,
                        extra_keys=("bogus", "units", "diagonal", "V_s_V", "hidden_hidden", "edges"))),
       text_damage=st.one_of(st.none(), BYTE_EDITS, st.sampled_from(YAML_SNIPPETS)))
def test_target_yaml_loader_property(work, doc, text_damage):
    p = work / "target.yaml"
    text = yaml.safe_dump(doc, sort_keys=False).encode()
    if isinstance(text_damage, list):
        text = apply_edits(text, text_damage)
    elif isinstance(text_damage, str):  # a tag, alias, date, ... in place of one value
        lines = text.decode().splitlines()
        k = len(text_damage) % max(1, len(lines))
        key = lines[k].split(":", 1)[0] if ":" in lines[k] else "bogus"
        lines[k] = f"{key}: {text_damage}"
        text = "\n".join(lines).encode()
    p.write_bytes(text)
    t = loads_or_refuses(lambda: Target.from_yaml(p), str(p))
    if t is not None:
        _check_target(t)


@fixed(80)
@given(doc=st.one_of(YAML_VALUES, st.text(max_size=40), st.binary(max_size=40)))
def test_random_yaml_document_property(work, doc):
    p = work / "random.yaml"
    p.write_bytes(doc if isinstance(doc, bytes) else
                  (doc if isinstance(doc, str) else yaml.safe_dump(doc)).encode("utf-8", "surrogatepass"))
    t = loads_or_refuses(lambda: Target.from_yaml(p), str(p))
    if t is not None:
        _check_target(t)


def test_target_huge_integer_is_a_clear_error():
    text = Target.preset("rc-8bit-dense").to_yaml().replace("units: 128", "units: " + "9" * 400)
    with pytest.raises(InputError, match="units"):
        Target.from_yaml(text)


# ---------------------------------------------------------------------------------------------
# model NPZ
# ---------------------------------------------------------------------------------------------
def _valid_computer(c: Computer) -> None:
    assert isinstance(c, Computer)
    for a in (c.J, c.b, c.J2, c.J4, c.mu, c.kT):
        assert a.dtype == np.float64 and np.all(np.isfinite(a))
    assert np.array_equal(c.J, c.J.T) and c.mask.dtype == bool and c.bias_trainable.dtype == bool
    if c.image_shape is not None:
        assert math.prod(c.image_shape) == c.n_visible and min(c.image_shape) >= 1


def _record_members(c: Computer, path: Path) -> dict:
    c.save(path)
    return read_members(path)


DENSE = random_computer(3, 3, seed=0).replace(image_shape=(1, 3), meta={"train": {"t_f": 2.5}})
_ring = np.zeros((8, 8), dtype=bool)
_ring[np.arange(8), (np.arange(8) + 1) % 8] = True
SPARSE = random_computer(4, 4, seed=1).replace(mask=_ring | _ring.T, J=np.zeros((8, 8)))


def model_members(work, kind: str) -> dict:
    return cached(f"model_{kind}", lambda: _record_members(DENSE if kind == "dense" else SPARSE,
                                                           work / f"{kind}0.npz"))


def test_model_fixtures_are_what_they_claim(work):
    assert json.loads(str(model_members(work, "dense")["__header__"]))["schema"] == "thermohw.computer/1"
    assert json.loads(str(model_members(work, "sparse")["__header__"]))["schema"] == "thermohw.computer/2"


def _model_property(work, members, data, name):
    p = work / name
    p.write_bytes(data.draw(damaged_record(members)))
    c = loads_or_refuses(lambda: Computer.load(p), str(p))
    if c is not None:
        _valid_computer(c)


@fixed(150)
@given(data=st.data())
def test_model_npz_dense_property(work, data):
    _model_property(work, model_members(work, "dense"), data, "dense.npz")


@fixed(120)
@given(data=st.data())
def test_model_npz_sparse_property(work, data):
    _model_property(work, model_members(work, "sparse"), data, "sparse.npz")


@pytest.mark.parametrize("case", ["dense J", "sparse pair_J", "sparse plus a J"])
def test_complex_coupling_matrix_is_refused(tmp_path, case):
    """Issue 12: a complex coupling matrix was accepted with its imaginary part dropped."""
    members = _record_members(DENSE if case == "dense J" else SPARSE, tmp_path / "m.npz")
    if case == "dense J":
        members["J"] = members["J"] + 1e-3j * members["mask"]
    elif case == "sparse pair_J":
        members["pair_J"] = members["pair_J"] + 1e-3j
    else:  # a dense complex J beside the pairs would be ignored: refused as contradictory
        members["J"] = np.zeros((8, 8)) + 1e-3j
    p = tmp_path / "complex.npz"
    p.write_bytes(npz_bytes(members))
    with pytest.raises(InputError, match="complex" if case != "sparse plus a J" else "pairs and also J") as e:
        Computer.load(p)
    assert str(p) in str(e.value)


# ---------------------------------------------------------------------------------------------
# training digits NPZ
# ---------------------------------------------------------------------------------------------
@fixed(100)
@given(data=st.data())
def test_digits_npz_property(work, data):
    def build():
        pat = normalise(np.random.default_rng(3).normal(size=(3, 4)))
        Digits(pat, [0, 1, 7], (2, 2), "test", "sklearn", (0, 5, 9)).save(work / "digits0.npz")
        return read_members(work / "digits0.npz")

    members = cached("digits", build)
    p = work / "digits.npz"
    p.write_bytes(data.draw(damaged_record(members)))
    d = loads_or_refuses(lambda: Digits.load(p), str(p))
    if d is not None:
        assert d.patterns.dtype == np.float64 and np.all(np.isfinite(d.patterns))
        assert d.labels.dtype == np.int64 and math.prod(d.image_shape) == d.n_pixels
        assert isinstance(d.source, str) and (d.origin is None or isinstance(d.origin, str))


# ---------------------------------------------------------------------------------------------
# compiled program folder
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def program_dir(work):
    folder = work / "prog0"
    compile_computer(random_computer(3, 3, seed=2), "rc-8bit-dense").save(folder)
    return folder


@fixed(60)
@given(data=st.data())
def test_compiled_program_property(work, program_dir, data):
    folder = work / "prog"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(program_dir, folder)
    which = data.draw(st.sampled_from(["report", "report", "codes", "codes", "bytes"]))
    if which == "report":
        rep = json.loads((program_dir / "report.json").read_text())
        (folder / "report.json").write_text(json.dumps(data.draw(tree_edit(rep, extra_keys=("bogus", "options")))))
    elif which == "codes":
        (folder / "codes.npz").write_bytes(data.draw(damaged_record(read_members(program_dir / "codes.npz"))))
    else:
        f = folder / data.draw(st.sampled_from(["report.json", "target.yaml", "codes.npz", "realised.npz"]))
        f.write_bytes(apply_edits(f.read_bytes(), data.draw(BYTE_EDITS)))
    p = loads_or_refuses(lambda: CompiledProgram.load(folder), str(folder))
    if p is not None:
        _valid_computer(p.realised)
        assert sorted(p.placement.tolist()) == sorted(set(p.placement.tolist()))


# ---------------------------------------------------------------------------------------------
# replay recordings (CSV, thermohw NPZ, plain NPZ)
# ---------------------------------------------------------------------------------------------
def _recording() -> Recording:
    rng = np.random.default_rng(4)
    T, R, N = 6, 2, 3
    return Recording(np.arange(T) * 0.01, rng.normal(size=(T, R, N)), 0.01, rng.normal(size=(R, N)),
                     {"V_s_V": 0.1, "tau_s": 1e-6}, {"device": "test"})


def _valid_recording(r: Recording) -> None:
    assert isinstance(r, Recording) and r.sample_interval > 0 and math.isfinite(r.sample_interval)
    assert np.all(np.isfinite(r.x)) and np.all(np.isfinite(r.bias)) and r.x.dtype == np.float64
    assert r.bias.shape == (r.n_runs, r.n_units) and r.times.shape == (r.n_samples,)


CSV_TOKENS = ["nan", "inf", "-inf", "", "1e999", "-1e999", "0", "-1", "abc", "1e-320", "99999999999999999999",
              "x99999999999", "h7", "x1", "run", "time", " ", "0x10", "1_000", "\u0661", "\x00", "1e-08", "2.5"]


@st.composite
def damaged_csv(draw, text: str) -> bytes:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        k = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["field", "field", "header", "delete", "duplicate", "swap", "append"]))
        if op == "field":
            parts = lines[k].split(",")
            parts[draw(st.integers(0, len(parts) - 1))] = draw(st.sampled_from(CSV_TOKENS))
            lines[k] = ",".join(parts)
        elif op == "header":
            key = draw(st.sampled_from(["sample_interval", "time_unit", "x_unit", "V_s_V", "tau_s", "bogus"]))
            lines = [ln for ln in lines if not ln.startswith(f"# {key}:")]
            lines.insert(1, f"# {key}: {draw(st.sampled_from(CSV_TOKENS + ['s', 'model', 'V', 'ms']))}")
        elif op == "delete":
            del lines[k]
        elif op == "duplicate":
            lines.insert(k, lines[k])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[k], lines[j] = lines[j], lines[k]
        else:
            lines.append(",".join(draw(st.lists(st.sampled_from(CSV_TOKENS), max_size=10))))
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    return apply_edits(data, draw(BYTE_EDITS)) if draw(st.booleans()) else data


def replay_files(work) -> dict:
    return cached("replay", lambda: _replay_files(work))


def _replay_files(work) -> dict:
    rec = _recording()
    rec.save_csv(work / "rec0.csv", si=True)
    rec.save(work / "rec0.npz")
    plain = {"x": rec.x * 0.1, "time": rec.times * 1e-6, "sample_interval": np.float64(0.01e-6), "bias": rec.bias,
             "time_unit": np.array("s"), "x_unit": np.array("V"), "V_s_V": np.float64(0.1), "tau_s": np.float64(1e-6)}
    np.savez(work / "plain0.npz", **plain)
    return {"csv": (work / "rec0.csv").read_text(), "record": read_members(work / "rec0.npz"),
            "plain": read_members(work / "plain0.npz")}


def _replay_loads_or_refuses(p: Path):
    r = loads_or_refuses(lambda: read_recording(p), str(p))
    if r is not None:
        _valid_recording(r)
        dev = loads_or_refuses(lambda: open_device(f"replay:{p}"), str(p))
        assert dev is not None and dev.recording.n_runs == r.n_runs


@fixed(150)
@given(data=st.data())
def test_replay_csv_property(work, data):
    files = replay_files(work)
    p = work / "rec.csv"
    p.write_bytes(data.draw(damaged_csv(files["csv"])))
    _replay_loads_or_refuses(p)


@fixed(100)
@given(data=st.data())
def test_replay_npz_record_property(work, data):
    files = replay_files(work)
    p = work / "rec.npz"
    p.write_bytes(data.draw(damaged_record(files["record"])))
    _replay_loads_or_refuses(p)


@fixed(120)
@given(data=st.data())
def test_replay_plain_npz_property(work, data):
    files = replay_files(work)
    p = work / "plain.npz"
    p.write_bytes(data.draw(damaged_record(files["plain"])))
    _replay_loads_or_refuses(p)


@pytest.mark.parametrize("layout", ["csv", "plain"])
def test_replay_zero_sample_interval_says_what_is_wrong(work, layout):
    files = replay_files(work)
    p = work / f"dt0.{'csv' if layout == 'csv' else 'npz'}"
    if layout == "csv":
        p.write_text(files["csv"].replace("# sample_interval: 1e-08", "# sample_interval: 0"))
    else:
        p.write_bytes(npz_bytes({**files["plain"], "sample_interval": np.float64(0.0)}))
    with pytest.raises(InputError, match="sample_interval") as e:
        read_recording(p)
    assert "non-uniform" not in str(e.value) and str(p) in str(e.value)


def test_replay_object_array_and_corrupt_member_are_clear_errors(work):
    files = replay_files(work)
    p = work / "obj.npz"
    p.write_bytes(npz_bytes({**files["plain"], "x": files["plain"]["x"].astype(object)}))
    with pytest.raises(InputError, match="x") as e:
        read_recording(p)
    assert str(p) in str(e.value)
    members = dict(files["plain"])
    members["time"] = npy(members["time"])[:-5]
    p.write_bytes(npz_bytes(members))
    with pytest.raises(InputError, match=str(p)):
        read_recording(p)


@pytest.mark.parametrize("spec", ["replay:", "replay:  ", "replay:,"])
def test_replay_device_needs_a_path(spec):
    with pytest.raises(InputError, match="replay:PATH"):
        open_device(spec)


# ---------------------------------------------------------------------------------------------
# sample folder: samples.npz and summary.json
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_folder(work):
    folder = work / "samples0"
    folder.mkdir()
    c = random_computer(3, 3, seed=5).replace(image_shape=(1, 3))
    c.save(folder / "model.npz")
    generate(c, 4, t_f=0.05, dt=0.01, seed=0, record_every=2).save(folder / "samples.npz")
    (folder / "summary.json").write_text(json.dumps({"model": str(folder / "model.npz"), "runs": 4}))
    return folder


def _valid_samples(got) -> None:
    tr, c, model = got
    assert isinstance(tr, Trajectory) and isinstance(c, Computer) and model.is_file()
    assert tr.x_final.shape == (tr.n_runs, c.n_units) and tr.heat.shape == (tr.n_runs,)
    assert np.all(np.isfinite(tr.x_final)) and np.all(np.isfinite(tr.heat)) and tr.kT > 0


def _fresh_sample_folder(work, src) -> Path:
    folder = work / "samples"
    folder.mkdir(exist_ok=True)
    for f in ("samples.npz", "summary.json"):
        shutil.copyfile(src / f, folder / f)
    return folder


@fixed(100)
@given(data=st.data())
def test_samples_npz_property(work, sample_folder, data):
    folder = _fresh_sample_folder(work, sample_folder)
    members = cached("samples", lambda: read_members(sample_folder / "samples.npz"))
    (folder / "samples.npz").write_bytes(data.draw(damaged_record(members)))
    got = loads_or_refuses(lambda: read_sample_folder(folder), "samples.npz")
    if got is not None:
        _valid_samples(got)


@fixed(80)
@given(doc=st.one_of(JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                     JSON_VALUES.map(lambda v: json.dumps({"model": v, "runs": 4}).encode()),
                     st.binary(max_size=30), st.sampled_from([b"[" * 100000, b'{"model": "' + b"x" * 5000 + b'"}',
                                                               b'{"model": ""}', b'{"model": "."}'])))
def test_summary_json_property(work, sample_folder, doc):
    folder = _fresh_sample_folder(work, sample_folder)
    (folder / "summary.json").write_bytes(doc)
    got = loads_or_refuses(lambda: read_sample_folder(folder), "summary.json")
    if got is not None:
        _valid_samples(got)


def test_summary_naming_a_model_by_a_number_is_a_clear_error(work, sample_folder):
    folder = _fresh_sample_folder(work, sample_folder)
    (folder / "summary.json").write_text('{"model": 5}')
    with pytest.raises(InputError, match="summary.json.*model.*--model"):
        read_sample_folder(folder)
