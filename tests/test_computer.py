import json
import zipfile

import numpy as np
import pytest

from thermohw import Computer, InputError
from thermohw.io import HEADER_KEY

from conftest import random_computer


def test_energy_matches_definition_and_grad_is_its_derivative():
    c = random_computer(3, 4, seed=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, c.n_units))
    # V = sum J2 x^2 + J4 x^4 + b x + sum_{i<j} J_ij x_i x_j, written out with explicit loops
    for r in range(5):
        v = sum(c.J2[i] * x[r, i] ** 2 + c.J4[i] * x[r, i] ** 4 + c.b[i] * x[r, i] for i in range(c.n_units))
        v += sum(c.J[i, j] * x[r, i] * x[r, j] for i in range(c.n_units) for j in range(i + 1, c.n_units))
        assert c.energy(x[r]) == pytest.approx(v, rel=1e-12)
    h = 1e-6
    g = c.grad(x)
    for i in range(c.n_units):
        e = np.zeros(c.n_units)
        e[i] = h
        fd = (c.energy(x + e) - c.energy(x - e)) / (2 * h)
        np.testing.assert_allclose(g[:, i], fd, rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(c.force(x), -g)


def test_paper_connectivity_counts():
    c = Computer.zeros(784, 512)
    assert c.n_couplings == 784 * 512 + 512 * 511 // 2 == 532_224
    assert not c.mask[:784, :784].any()
    assert c.bias_trainable.sum() == 512 and not c.bias_trainable[:784].any()
    g = c.graph()
    assert g.number_of_edges() == 532_224 and g.number_of_nodes() == 1296


def test_record_is_immutable_and_replace_revalidates(small_computer):
    c = small_computer
    with pytest.raises(ValueError):
        c.J[0, 3] = 1.0
    with pytest.raises(Exception):
        c.kT = 1.0
    bad = c.J.copy()
    bad[0, 3] += 0.5  # breaks symmetry
    with pytest.raises(InputError, match="not symmetric"):
        c.replace(J=bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(J=np.ones((3, 3))), "nonzero entries where mask is False"),
    (dict(b=np.zeros(4)), "b has shape"),
    (dict(J2=np.ones(2)), "J2 has shape"),
    (dict(J4=-1.0), "unbounded"),
    (dict(kT=0.0), "kT"),
    (dict(mu=np.nan), "NaN"),
    (dict(n_visible=7), "n_visible"),
    (dict(image_shape=(2, 2)), "image_shape"),
])
def test_invalid_construction(kwargs, match):
    base = dict(J=np.zeros((3, 3)), b=np.zeros(3), mask=~np.eye(3, dtype=bool), n_visible=1)
    if "J" in kwargs:
        base["mask"] = np.zeros((3, 3), bool)
    with pytest.raises(InputError, match=match):
        Computer(**{**base, **kwargs})


def test_save_load_roundtrip(tmp_path, small_computer):
    c = small_computer.replace(image_shape=(3, 1), meta={"note": "x"})
    p = c.save(tmp_path / "m.npz")
    d = Computer.load(p)
    for k in ("J", "b", "mask", "J2", "J4", "mu", "kT", "bias_trainable"):
        np.testing.assert_array_equal(getattr(d, k), getattr(c, k))
    assert d.n_visible == c.n_visible and d.image_shape == (3, 1) and d.meta == {"note": "x"}
    assert not list(tmp_path.glob("*.tmp")), "atomic write left a temp file"


def _rewrite(path, out, **changes):
    """Copy a record, replacing arrays (or the header with key HEADER_KEY) - to forge bad files."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(out, **arrays)
    return out


def test_load_rejects_bad_files(tmp_path, small_computer):
    good = small_computer.save(tmp_path / "good.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(InputError, match="corrupt or truncated"):
        Computer.load(tmp_path / "junk.npz")
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        Computer.load(tmp_path / "trunc.npz")
    with pytest.raises(InputError, match="no such file"):
        Computer.load(tmp_path / "missing.npz")
    hdr = json.loads(str(np.load(good)[HEADER_KEY]))
    other = _rewrite(good, tmp_path / "other.npz", **{HEADER_KEY: np.array(json.dumps({**hdr, "schema": "x/9"}))})
    with pytest.raises(InputError, match="schema"):
        Computer.load(other)
    J = small_computer.J.copy()
    J[0, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        Computer.load(_rewrite(good, tmp_path / "nan.npz", J=J))
    J = small_computer.J.copy()
    J[0, 4] += 1.0
    with pytest.raises(InputError, match="not symmetric"):
        Computer.load(_rewrite(good, tmp_path / "asym.npz", J=J))
    with pytest.raises(InputError, match="b has shape"):
        Computer.load(_rewrite(good, tmp_path / "shape.npz", b=np.zeros(9)))
    with pytest.raises(InputError, match="missing arrays"):
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files if k != "mask"}
        np.savez(tmp_path / "nomask.npz", **arrays)
        Computer.load(tmp_path / "nomask.npz")
    # an object array would need pickle: np.load(allow_pickle=False) must refuse, as InputError
    with zipfile.ZipFile(good) as z:
        names = z.namelist()
    assert all(n.endswith(".npy") for n in names)
    obj = _rewrite(good, tmp_path / "obj.npz", b=np.array([object()] * small_computer.n_units, dtype=object))
    with pytest.raises(InputError):
        Computer.load(obj)


def test_sparse_model_stores_only_its_couplings(tmp_path):
    from thermohw.computer import connectivity_mask
    from thermohw.io import load_record, save_record

    rng = np.random.default_rng(3)
    mask = connectivity_mask(30, 4, "paper")
    J = np.where(mask, rng.normal(size=mask.shape), 0.0)
    c = Computer(J=(J + J.T) / 2, b=rng.normal(size=34), mask=mask, n_visible=30)
    c.save(tmp_path / "m.npz")
    h, a = load_record(tmp_path / "m.npz", "thermohw.computer/2")
    assert h["couplings"] == "pairs" and "J" not in a and a["pair_J"].size == c.n_couplings
    d = Computer.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(d.J, c.J)
    np.testing.assert_array_equal(d.mask, c.mask)
    # a damaged pair list is one clear error, not an index error
    a["pair_j"][0] = 99
    save_record(tmp_path / "bad.npz", "thermohw.computer/2", h, a)
    with pytest.raises(InputError, match="pairs must satisfy"):
        Computer.load(tmp_path / "bad.npz")
    h, a = load_record(tmp_path / "m.npz", "thermohw.computer/2")
    for change, match in ((dict(pair_j=np.concatenate([a["pair_j"][:1], a["pair_j"][:-1]])), "twice|must satisfy"),
                          (dict(pair_i=a["pair_i"].astype(float)), "integers"),
                          (dict(b=np.float64(1.0)), "one value per unit")):
        save_record(tmp_path / "bad.npz", "thermohw.computer/2", h, {**a, **change})
        with pytest.raises(InputError, match=match):
            Computer.load(tmp_path / "bad.npz")
    # a dense model keeps the /1 layout that earlier versions read
    dense = random_computer(3, 2, seed=1)
    dense.save(tmp_path / "d.npz")
    assert load_record(tmp_path / "d.npz", "thermohw.computer/1")[0]["schema"] == "thermohw.computer/1"
