"""Training digits: scikit-learn's bundled 8x8 digits (offline default) and an MNIST IDX
reader for user-supplied files. Nothing is ever downloaded."""
from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import InputError
from .io import load_record, numeric_array, save_record
from .metrics import Reference

DIGITS_SCHEMA = "thermohw.digits/1"

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True, eq=False)
class Digits:
    """Training patterns: ``patterns`` (k, Nv) normalised per digit as ``pixels`` says
    (:data:`PIXEL_SCALINGS`: zero mean and unit variance, the paper's, or mapped to [-1, 1]),
    ``labels`` (k,), ``image_shape`` and where they came from: ``source`` (a
    description), ``origin`` (the images file, or ``"sklearn"`` for the bundled digits) and
    ``indices`` (their places in it), so held-out images of the same labels can be found
    again (:func:`reference_set`)."""

    patterns: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, ...]
    source: str = ""
    origin: str | None = None
    indices: tuple[int, ...] | None = None
    pixels: str = "standard"

    def __post_init__(self) -> None:
        if self.pixels not in PIXEL_SCALINGS:
            raise InputError(f"pixels = {self.pixels!r}; use one of {', '.join(PIXEL_SCALINGS)}")
        p = np.array(numeric_array("digits", "patterns", self.patterns), dtype=np.float64, ndmin=2)
        if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
            raise InputError(f"patterns must be (k, pixels) with k >= 1, got shape {p.shape}")
        if not np.all(np.isfinite(p)):
            raise InputError("patterns contain NaN or inf")
        if isinstance(self.image_shape, (str, bytes, dict)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) and s >= 1
                for s in self.image_shape):
            raise InputError(f"image_shape {self.image_shape!r} must be whole numbers >= 1, e.g. [28, 28]")
        shape = tuple(int(s) for s in self.image_shape)
        if math.prod(shape) != p.shape[1]:
            raise InputError(f"image_shape {shape} does not match {p.shape[1]} pixels")
        lab = numeric_array("digits", "labels", self.labels, integer=True).astype(np.int64).reshape(-1)
        if lab.shape[0] != p.shape[0]:
            raise InputError(f"{lab.shape[0]} labels for {p.shape[0]} patterns")
        if not isinstance(self.source, str) or not (self.origin is None or isinstance(self.origin, str)):
            raise InputError(f"source and origin must be text, got {type(self.source).__name__} and "
                             f"{type(self.origin).__name__}")
        p.setflags(write=False)
        object.__setattr__(self, "patterns", p)
        object.__setattr__(self, "labels", lab)
        object.__setattr__(self, "image_shape", shape)
        if self.indices is not None:
            if isinstance(self.indices, (str, bytes, dict)) or not all(
                    isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)) and i >= 0
                    for i in self.indices):
                raise InputError(f"indices must be image numbers >= 0, got {str(self.indices)[:60]}")
            idx = tuple(int(i) for i in self.indices)
            if len(idx) != p.shape[0]:
                raise InputError(f"{len(idx)} indices for {p.shape[0]} patterns")
            object.__setattr__(self, "indices", idx)

    @property
    def n_pixels(self) -> int:
        return self.patterns.shape[1]

    def save(self, path: str | Path) -> Path:
        return save_record(path, DIGITS_SCHEMA, {"image_shape": self.image_shape, "source": self.source,
                                                 "origin": self.origin, "indices": self.indices,
                                                 "pixels": self.pixels},
                           {"patterns": self.patterns, "labels": self.labels})

    @classmethod
    def load(cls, path: str | Path) -> "Digits":
        h, a = load_record(path, DIGITS_SCHEMA)
        try:
            return cls(a["patterns"], a["labels"], h["image_shape"], h.get("source", ""),
                       h.get("origin"), h.get("indices"), h.get("pixels", "standard"))
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: malformed digits record ({str(e)[:120]}); regenerate it") from None
        except KeyError as e:
            raise InputError(f"{path}: digits record lacks {e}") from None


# How training images become patterns. "standard": each image to zero mean and unit variance
# (the paper's). "range": each image's pixels mapped linearly from [min, max] to [-1, 1] (the
# usual diffusion-model convention; an alternative tested against the heat gap, docs/heat-gap.md).
PIXEL_SCALINGS = ("standard", "range")


def normalise(images: np.ndarray, pixels: str = "standard") -> np.ndarray:
    """Scale each image (row): zero mean and unit variance, as in the paper (``pixels =
    "standard"``), or linearly from its [min, max] to [-1, 1] (``"range"``)."""
    if pixels not in PIXEL_SCALINGS:
        raise InputError(f"pixels = {pixels!r}; use one of {', '.join(PIXEL_SCALINGS)}")
    x = np.asarray(images, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    if not np.all(np.isfinite(x)):
        raise InputError("images contain NaN or inf pixel values")
    # the result is scale-free: rescale rows whose squares would overflow or underflow first
    # (only those, so ordinary images normalise bit for bit as before)
    peak = np.max(np.abs(x), axis=1, keepdims=True) if x.size else np.ones((x.shape[0], 1))
    odd = (peak > 1e150) | ((peak < 1e-150) & (peak > 0))
    if np.any(odd):
        x = np.where(odd, x / np.where(odd, peak, 1.0), x)
    sd = x.std(axis=1, keepdims=True)
    if np.any(sd == 0):
        bad = np.nonzero(sd[:, 0] == 0)[0][:5].tolist()
        raise InputError(f"image(s) {bad} are constant and cannot be normalised to unit variance")
    if pixels == "range":
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        return 2.0 * (x - lo) / (hi - lo) - 1.0
    return (x - x.mean(axis=1, keepdims=True)) / sd


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, any number of dimensions)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such IDX file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{path}: corrupt or truncated gzip data ({e})") from None
    if len(raw) < 4:
        raise InputError(f"{path}: too short ({len(raw)} bytes) to be an IDX file")
    if raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()} should start with 0000)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise InputError(f"{path}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise InputError(f"{path}: IDX header declares 0 dimensions")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise InputError(f"{path}: truncated IDX header ({len(raw)} bytes, need {head})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    need = math.prod(dims) * dtype.itemsize  # Python ints: a header's sizes cannot overflow
    have = len(raw) - head
    if have != need:
        shown = f"{need}" if need < 10 ** 15 else f"{need:.3g}"
        raise InputError(f"{path}: IDX header says dims {dims} ({shown} data bytes) but the file has "
                         f"{have}; the file is {'truncated' if have < need else 'padded or not IDX'}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


def load_mnist(images: str | Path, labels: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (n, rows, cols) and labels (n,) or None from IDX files."""
    x = read_idx(images)
    if x.ndim < 2:
        raise InputError(f"{images}: image IDX must have >= 2 dims, got {x.shape}")
    if x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        raise InputError(f"{images}: holds no pixels (dims {x.shape}); give an MNIST images IDX file")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise InputError(f"{images}: pixel values include NaN or inf; the file is damaged")
    y = None
    if labels is not None:
        y = read_idx(labels)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise InputError(f"{labels}: {y.shape} labels do not match {x.shape[0]} images; "
                             "the labels file must be the one that goes with the images")
        if y.dtype.kind not in "iu":
            raise InputError(f"{labels}: labels are {y.dtype} values; an IDX labels file holds integers "
                             "(type code 0x08)")
    return x, y


def find_mnist_labels(images: str | Path) -> Path | None:
    """The labels file that sits beside an MNIST images file, if any."""
    p = Path(images)
    for cand in (p.name.replace("images-idx3", "labels-idx1"), p.name.replace("images", "labels")):
        q = p.with_name(cand)
        if cand != p.name and q.is_file():
            return q
    return None


def bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with the package)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float64), d.target.astype(np.int64)


def select(images: np.ndarray, labels: np.ndarray | None, *, digits: Sequence[int] | None = None,
           indices: Sequence[int] | None = None, source: str = "", origin: str | None = None,
           pixels: str = "standard") -> Digits:
    """Pick training digits: by ``indices`` into the set, or the first image of each label in
    ``digits``. Returns them normalised (``pixels``: see :data:`PIXEL_SCALINGS`)."""
    images = np.asarray(images)
    n = images.shape[0]
    shape = images.shape[1:]
    if indices is not None and digits is not None:
        raise InputError("give either digit labels or image indices, not both")
    if indices is not None:
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise InputError(f"image indices {bad} are outside 0..{n - 1}")
    else:
        if labels is None:
            raise InputError("selecting by digit label needs a labels file; pass indices instead")
        idx = []
        for d in digits if digits is not None else (0, 1, 2):
            hit = np.nonzero(labels == int(d))[0]
            if hit.size == 0:
                raise InputError(f"no image with label {d} in the data")
            idx.append(int(hit[0]))
    if not idx:
        raise InputError("no training digits selected")
    lab = labels[idx] if labels is not None else np.full(len(idx), -1)
    return Digits(normalise(images[idx], pixels), lab, shape, f"{source} indices={idx}", origin, tuple(idx),
                  pixels)


def load_training_digits(mnist: str | Path | None = None, *, digits: Sequence[int] | None = None,
                         indices: Sequence[int] | None = None, pixels: str = "standard") -> Digits:
    """The training set: bundled 8x8 digits by default, or an MNIST IDX images file."""
    if mnist is None:
        x, y = bundled_digits()
        return select(x, y, digits=digits, indices=indices, source="sklearn bundled digits", origin="sklearn",
                      pixels=pixels)
    lab_path = find_mnist_labels(mnist)
    x, y = load_mnist(mnist, lab_path)
    return select(x, y, digits=digits, indices=indices, source=str(mnist), origin=str(mnist), pixels=pixels)


def reference_set(d: Digits, images: str | Path | None = None, *, per_label: int | None = None):
    """Held-out images with the training digits' labels, for the k-NN check of generated
    samples (:class:`thermohw.metrics.Reference`): every other image of those labels in the
    set the digits came from (``images``: an MNIST images file to use instead of
    ``d.origin``, a path relative to the working folder as it was given to ``train --mnist``;
    ``per_label``: keep at most this many of each). None when ``d.origin`` cannot be found
    (say, a model trained on a file that is not here); an ``images`` file that cannot be used
    is an error."""

    if images is None and d.origin == "sklearn":
        x, y = bundled_digits()
    else:
        path = Path(images) if images is not None else (Path(d.origin) if d.origin else None)
        if path is None or not path.is_file():
            if images is not None:
                raise InputError(f"{path}: no such images file for the k-NN check (pass an MNIST images IDX file)")
            return None
        lab = find_mnist_labels(path)
        if lab is None:
            if images is not None:
                raise InputError(f"{path}: no labels file beside it (expected e.g. t10k-labels-idx1-ubyte.gz); "
                                 "the k-NN check needs the labels")
            return None
        x, y = load_mnist(path, lab)
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] != d.n_pixels:
        raise InputError(f"the reference images have {x.shape[1]} pixels, the digits {d.n_pixels}")
    idx = np.nonzero(np.isin(y, d.labels))[0]
    if per_label is not None:
        idx = np.concatenate([idx[y[idx] == lab][:per_label + d.patterns.shape[0]] for lab in np.unique(d.labels)])
    ref = normalise(x[idx].astype(np.float64))
    # held out: never a training image itself (found by content, whichever file was given)
    same = np.max(ref @ normalise(d.patterns).T, axis=1) / d.n_pixels > 1 - 1e-9
    ref, lab = ref[~same], y[idx][~same]
    if per_label is not None:
        sel = np.concatenate([np.nonzero(lab == v)[0][:per_label] for v in np.unique(d.labels)])
        ref, lab = ref[sel], lab[sel]
    if lab.size == 0:
        return None
    return Reference(ref, lab, source=str(images or d.origin))
