"""The IDX reader, normalisation, digit selection and the Digits record (thermohw.data)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from thermohw.computer import Computer
from thermohw.data import (Digits, find_mnist_labels, load_mnist, load_training_digits, normalise,
                           read_idx, select)
from thermohw.errors import InputError

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

# IDX type codes written independently of the package (LeCun's "THE IDX FILE FORMAT")
CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
         np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(a: np.ndarray, code: int | None = None) -> bytes:
    a = np.asarray(a)
    code = CODES[a.dtype] if code is None else code
    head = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# ---------------------------------------------------------------------------------------------
# read_idx round trips
# ---------------------------------------------------------------------------------------------
def _arrays():
    rng = np.random.default_rng(1)
    return {
        "labels_1d_u1": rng.integers(0, 10, size=17).astype(np.uint8),
        "images_3d_u1": rng.integers(0, 256, size=(5, 7, 6)).astype(np.uint8),
        "4d_i2": rng.integers(-30000, 30000, size=(2, 3, 4, 5)).astype(np.int16),
        "3d_i1": rng.integers(-128, 128, size=(3, 2, 2)).astype(np.int8),
        "2d_i4": rng.integers(-2**31, 2**31 - 1, size=(4, 3)).astype(np.int32),
        "2d_f4": rng.normal(size=(3, 5)).astype(np.float32),
        "3d_f8": rng.normal(size=(2, 2, 3)),
    }


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("name", list(_arrays()))
def test_read_idx_round_trip(tmp_path, name, gz):
    a = _arrays()[name]
    p = write(tmp_path / (name + (".gz" if gz else "")), idx_bytes(a), gz)
    r = read_idx(p)
    assert r.shape == a.shape
    assert r.dtype == a.dtype          # same kind and size ...
    assert r.dtype.isnative            # ... in native byte order (usable arithmetic)
    np.testing.assert_array_equal(r, a)


def test_read_idx_known_bytes(tmp_path):
    # hand-written big-endian int16 file: values 1, -2, 258 in a (3,) array
    raw = bytes([0, 0, 0x0B, 1, 0, 0, 0, 3, 0x00, 0x01, 0xFF, 0xFE, 0x01, 0x02])
    r = read_idx(write(tmp_path / "h.idx", raw))
    assert r.tolist() == [1, -2, 258]


def test_read_idx_accepts_str_path(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    p = write(tmp_path / "s.idx", idx_bytes(a))
    np.testing.assert_array_equal(read_idx(str(p)), a)


# ---------------------------------------------------------------------------------------------
# read_idx errors
# ---------------------------------------------------------------------------------------------
def _good() -> bytes:
    return idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("case, data, word", [
    ("truncated", _good()[:-1], "truncated"),
    ("padded", _good() + b"\x00\x00", "padded"),
    ("magic", b"\x01\x02" + _good()[2:], "magic"),
    ("type_code", _good()[:2] + b"\x0a" + _good()[3:], "type code"),
    ("header", _good()[:9], "header"),
    ("too_short", b"\x00\x00", "too short"),
    ("zero_dims", b"\x00\x00\x08\x00", "0 dimensions"),
])
def test_read_idx_malformed(tmp_path, case, data, word, gz):
    p = write(tmp_path / f"{case}.idx", data, gz)
    with pytest.raises(InputError, match=word) as e:
        read_idx(p)
    assert str(p) in str(e.value)      # the message names the file


def _gz_truncated() -> bytes:
    return gzip.compress(_good())[:-12]


def _gz_bad_crc() -> bytes:
    g = bytearray(gzip.compress(_good()))
    g[-8] ^= 0xFF                      # CRC32 trailer
    return bytes(g)


def _gz_bad_deflate() -> bytes:
    a = (np.arange(4 * 28 * 28) % 251).astype(np.uint8).reshape(4, 28, 28)
    g = bytearray(gzip.compress(idx_bytes(a)))
    g[20:40] = b"\xff" * 20            # inside the deflate stream
    return bytes(g)


def _gz_garbage() -> bytes:
    return b"\x1f\x8b" + np.random.default_rng(0).integers(0, 256, 100, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("make", [_gz_truncated, _gz_bad_crc, _gz_bad_deflate, _gz_garbage],
                         ids=["truncated", "crc", "deflate", "garbage"])
def test_read_idx_corrupt_gzip(tmp_path, make):
    p = write(tmp_path / "bad.gz", make())
    with pytest.raises(InputError, match="gzip"):
        read_idx(p)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such"):
        read_idx(tmp_path / "absent-idx3-ubyte")


# ---------------------------------------------------------------------------------------------
# load_mnist / find_mnist_labels (synthetic)
# ---------------------------------------------------------------------------------------------
def _fake_mnist(folder: Path, images: np.ndarray, labels: np.ndarray | None, gz: bool = True) -> Path:
    ext = ".gz" if gz else ""
    ip = write(folder / f"fake-images-idx3-ubyte{ext}", idx_bytes(images), gz)
    if labels is not None:
        write(folder / f"fake-labels-idx1-ubyte{ext}", idx_bytes(labels), gz)
    return ip


def test_load_mnist_images_and_labels(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(6, 4, 4)).astype(np.uint8)
    y = np.array([3, 1, 3, 0, 1, 7], dtype=np.uint8)
    ip = _fake_mnist(tmp_path, x, y)
    lp = find_mnist_labels(ip)
    assert lp == tmp_path / "fake-labels-idx1-ubyte.gz"
    xi, yi = load_mnist(ip, lp)
    np.testing.assert_array_equal(xi, x)
    np.testing.assert_array_equal(yi, y)
    assert load_mnist(ip)[1] is None


def test_find_mnist_labels_absent(tmp_path):
    ip = _fake_mnist(tmp_path, np.zeros((2, 3, 3), np.uint8), None)
    assert find_mnist_labels(ip) is None


def test_load_mnist_label_count_mismatch(tmp_path):
    ip = _fake_mnist(tmp_path, np.ones((4, 3, 3), np.uint8), np.arange(3, dtype=np.uint8))
    with pytest.raises(InputError, match="labels"):
        load_mnist(ip, find_mnist_labels(ip))


def test_load_mnist_rejects_1d_images(tmp_path):
    p = write(tmp_path / "x-images-idx3-ubyte", idx_bytes(np.arange(5, dtype=np.uint8)))
    with pytest.raises(InputError, match="dims"):
        load_mnist(p)


def test_load_training_digits_from_idx(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(6, 4, 4)).astype(np.uint8)
    y = np.array([3, 1, 3, 0, 1, 7], dtype=np.uint8)
    ip = _fake_mnist(tmp_path, x, y, gz=False)
    d = load_training_digits(ip, digits=[7, 3])
    assert d.labels.tolist() == [7, 3]
    assert d.image_shape == (4, 4)
    xf = x.reshape(6, -1).astype(float)
    for row, i in zip(d.patterns, [5, 0]):
        np.testing.assert_allclose(row, (xf[i] - xf[i].mean()) / xf[i].std())


# ---------------------------------------------------------------------------------------------
# normalise
# ---------------------------------------------------------------------------------------------
def test_normalise_hand_value():
    out = normalise(np.array([[[0, 0], [2, 2]]], dtype=np.uint8))
    np.testing.assert_allclose(out, [[-1.0, -1.0, 1.0, 1.0]])


def test_normalise_zero_mean_unit_variance():
    x = np.random.default_rng(4).integers(0, 256, size=(5, 6, 7)).astype(np.uint8)
    out = normalise(x)
    assert out.shape == (5, 42)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=1), 1.0, rtol=1e-12)
    # an affine change of an image does not change its normalised form
    np.testing.assert_allclose(normalise(3.0 * x.astype(float) + 7.0), out, atol=1e-12)


def test_normalise_range_maps_each_image_to_minus_one_one():
    x = np.array([[0, 51, 255, 102], [16, 4, 8, 12]], dtype=np.uint8)
    out = normalise(x, "range")
    np.testing.assert_allclose(out, [[-1.0, -0.6, 1.0, -0.2], [1.0, -1.0, -1 / 3, 1 / 3]], atol=1e-12)
    # the same image, either way, up to an affine map: standardising the range form gives the standard form
    np.testing.assert_allclose(normalise(out), normalise(x), atol=1e-12)
    with pytest.raises(InputError, match="pixels"):
        normalise(x, "unit")
    d = load_training_digits(digits=[0, 1], pixels="range")
    assert d.pixels == "range" and d.patterns.min() == -1.0 and d.patterns.max() == 1.0


def test_normalise_constant_image():
    x = np.random.default_rng(5).normal(size=(4, 9))
    x[2] = 5.0
    with pytest.raises(InputError, match=r"constant.*\[2\]|\[2\].*constant"):
        normalise(x)


# ---------------------------------------------------------------------------------------------
# select
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_set():
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, size=(6, 3, 4)).astype(np.uint8)
    labels = np.array([3, 1, 3, 0, 1, 7])
    return images, labels


def _norm_rows(images, idx):
    x = images[idx].reshape(len(idx), -1).astype(float)
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def test_select_by_labels_takes_first_of_each(small_set):
    images, labels = small_set
    d = select(images, labels, digits=[1, 3, 0], source="s")
    assert d.labels.tolist() == [1, 3, 0]
    np.testing.assert_allclose(d.patterns, _norm_rows(images, [1, 0, 3]))
    assert d.image_shape == (3, 4)
    assert "indices=[1, 0, 3]" in d.source


def test_select_default_labels_are_0_1_2():
    images = np.random.default_rng(7).integers(0, 256, size=(5, 2, 3))
    labels = np.array([2, 2, 0, 1, 0])
    d = select(images, labels)
    assert d.labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(d.patterns, _norm_rows(images, [2, 3, 0]))


def test_select_by_indices(small_set):
    images, labels = small_set
    d = select(images, labels, indices=[4, 2])
    assert d.labels.tolist() == [1, 3]
    np.testing.assert_allclose(d.patterns, _norm_rows(images, [4, 2]))
    d2 = select(images, None, indices=[5])
    assert d2.labels.tolist() == [-1]


@pytest.mark.parametrize("bad", [[6], [-1], [0, 10]])
def test_select_index_out_of_range(small_set, bad):
    images, labels = small_set
    with pytest.raises(InputError, match="outside 0..5"):
        select(images, labels, indices=bad)


def test_select_missing_label(small_set):
    images, labels = small_set
    with pytest.raises(InputError, match="label 5"):
        select(images, labels, digits=[1, 5])


def test_select_argument_conflicts(small_set):
    images, labels = small_set
    with pytest.raises(InputError, match="either"):
        select(images, labels, digits=[1], indices=[0])
    with pytest.raises(InputError, match="labels"):
        select(images, None, digits=[1])
    with pytest.raises(InputError, match="no training digits"):
        select(images, labels, indices=[])


# ---------------------------------------------------------------------------------------------
# bundled digits and genuine MNIST
# ---------------------------------------------------------------------------------------------
def test_load_training_digits_default_is_sklearn_8x8():
    from sklearn.datasets import load_digits

    d = load_training_digits()
    assert d.patterns.shape == (3, 64)
    assert d.image_shape == (8, 8)
    assert d.labels.tolist() == [0, 1, 2]
    assert "sklearn" in d.source
    sk = load_digits()
    first = [int(np.nonzero(sk.target == k)[0][0]) for k in (0, 1, 2)]
    np.testing.assert_allclose(d.patterns, _norm_rows(sk.images, first), atol=1e-12)


def test_load_training_digits_bundled_by_index():
    d = load_training_digits(indices=[10, 11])
    assert d.patterns.shape == (2, 64)
    from sklearn.datasets import load_digits

    assert d.labels.tolist() == load_digits().target[[10, 11]].tolist()


def test_genuine_mnist_test_set():
    images = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not images.is_file():
        pytest.skip(f"genuine MNIST test set not present at {MNIST_DIR}")
    lab = find_mnist_labels(images)
    assert lab is not None and lab.name == "t10k-labels-idx1-ubyte.gz"
    x, y = load_mnist(images, lab)
    assert x.shape == (10000, 28, 28)
    assert x.dtype == np.uint8
    assert x.min() == 0 and x.max() == 255
    assert y.shape == (10000,)
    assert set(np.unique(y).tolist()) == set(range(10))
    assert y[:3].tolist() == [7, 2, 1]    # the well-known first test labels
    d = load_training_digits(images, digits=[0, 1, 2])
    assert d.patterns.shape == (3, 784) and d.image_shape == (28, 28)
    assert d.labels.tolist() == [0, 1, 2]


# ---------------------------------------------------------------------------------------------
# the Digits record
# ---------------------------------------------------------------------------------------------
def test_digits_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    d = Digits(normalise(rng.normal(size=(3, 12))), np.array([4, 0, 9]), (3, 4), "synthetic src")
    p = d.save(tmp_path / "sub" / "digits.npz")
    e = Digits.load(p)
    np.testing.assert_array_equal(e.patterns, d.patterns)
    assert e.labels.tolist() == [4, 0, 9]
    assert e.image_shape == (3, 4)
    assert e.source == "synthetic src"
    with np.load(p, allow_pickle=False) as z:      # really a plain npz
        assert {"patterns", "labels"} <= set(z.files)


def test_digits_load_wrong_record(tmp_path):
    p = Computer.zeros(2, 1).save(tmp_path / "model.npz")
    with pytest.raises(InputError, match="schema"):
        Digits.load(p)


def test_digits_validation():
    with pytest.raises(InputError, match="image_shape"):
        Digits(np.zeros((2, 6)) + np.arange(6), [0, 1], (2, 2))
    with pytest.raises(InputError, match="labels"):
        Digits(np.arange(12.0).reshape(2, 6), [0, 1, 2], (2, 3))
    with pytest.raises(InputError, match="NaN"):
        Digits(np.array([[0.0, np.nan]]), [0], (2,))


# ---------------------------------------------------------------------------------------------
# held-out reference images for the k-NN check
# ---------------------------------------------------------------------------------------------
def test_reference_set_from_an_explicit_file_and_its_errors(tmp_path):
    from thermohw.data import reference_set, select

    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(12, 4, 4)).astype(np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 5, 5], dtype=np.uint8)
    ip = _fake_mnist(tmp_path, x, y)
    d = select(x, y, digits=(0, 2), source="fake", origin=str(ip))
    assert d.indices == (0, 2) and d.origin == str(ip)
    ref = reference_set(d)                                  # from the digits' origin
    assert sorted(ref.labels.tolist()) == [0, 0, 0, 2, 2]   # every 0 and 2 except the training images
    ref2 = reference_set(d, ip, per_label=1)                # explicit file, capped per label
    assert sorted(ref2.labels.tolist()) == [0, 2]
    assert reference_set(Digits(d.patterns, d.labels, d.image_shape, "", str(tmp_path / "gone"), (0, 2))) is None
    with pytest.raises(InputError, match="no such images file"):
        reference_set(d, tmp_path / "gone-images-idx3-ubyte.gz")
    (tmp_path / "nolabels").mkdir()
    lonely = _fake_mnist(tmp_path / "nolabels", x, None)
    with pytest.raises(InputError, match="no labels file"):
        reference_set(d, lonely)
    d.save(tmp_path / "d.npz")
    back = Digits.load(tmp_path / "d.npz")
    assert back.origin == d.origin and back.indices == d.indices


def test_reference_set_on_the_mnist_test_set(mnist_test_images):
    from thermohw.data import reference_set

    d = load_training_digits(mnist_test_images, digits=(0, 3, 7))
    ref = reference_set(d)
    # 980 zeros, 1010 threes and 1028 sevens in the MNIST test set, minus the 3 training images
    assert np.bincount(ref.labels, minlength=8)[[0, 3, 7]].tolist() == [979, 1009, 1027]
