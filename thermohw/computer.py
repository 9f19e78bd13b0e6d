"""The Langevin computer: parameters, energy and force (Whitelam 2025, Eqs. 1-3).

    V(x) = sum_i (J2_i x_i^2 + J4_i x_i^4 + b_i x_i) + sum_{i<j} J_ij x_i x_j
    dx_i/dt = -mu_i dV/dx_i + sqrt(2 mu_i kT_i) eta_i

J2, J4, mu and kT are stored per unit (scalars broadcast) because a realised chip has
per-unit mismatch; the published model has them uniform.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io import load_record, save_record
from .resources import check_memory

SCHEMA = "thermohw.computer/1"          # J and mask as N x N matrices
SCHEMA_PAIRS = "thermohw.computer/2"    # couplings as index pairs (sparse models); reads /1 too
_SYM_RTOL = 1e-12


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64 if a.dtype.kind in "fiu" else a.dtype, copy=True)
    a.setflags(write=False)
    return a


def _real(name: str, value: Any) -> np.ndarray:
    """``value`` as float64, refusing complex, text and object arrays (a complex cast would
    silently drop the imaginary part)."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        what = "complex" if a.dtype.kind == "c" else f"non-numeric ({a.dtype})"
        raise InputError(f"{name} holds {what} values; it must hold real numbers")
    return a.astype(np.float64)


def _flags(name: str, value: Any, shape: tuple) -> np.ndarray:
    """A bool array of ``shape`` from bools or 0/1 integers (anything else is an error)."""
    a = np.asarray(value)
    if a.shape != shape:
        raise InputError(f"{name} has shape {a.shape}; expected {shape}")
    if a.dtype.kind in "iu" and a.size and not np.all((a == 0) | (a == 1)):
        raise InputError(f"{name} must hold true/false (or 0/1) values")
    if a.dtype.kind not in "biu":
        raise InputError(f"{name} holds {a.dtype} values; it must hold true/false")
    return a.astype(bool)


def _per_unit(name: str, value: Any, n: int) -> np.ndarray:
    a = _real(name, value)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise InputError(f"{name} has shape {a.shape}; expected a scalar or ({n},), one per unit")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or inf")
    return _frozen(a)


def _checked_couplings(J: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """J (square, finite, symmetric within _SYM_RTOL, zero outside the mask; returned exactly
    symmetrised) and the mask (bool, symmetric, no self-couplings)."""
    J = _real("J", J)
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise InputError(f"J must be a square matrix, got shape {J.shape}")
    n = J.shape[0]
    if n == 0:
        raise InputError("a computer needs at least one unit")
    if not np.all(np.isfinite(J)):
        raise InputError("J contains NaN or inf")
    if np.shape(mask) != (n, n):
        raise InputError(f"mask has shape {np.shape(mask)}, J has {J.shape}; they must match")
    mask = _flags("mask", mask, (n, n))
    if np.any(np.diag(mask)):
        raise InputError("mask has self-couplings on its diagonal; the on-site terms are J2 and J4")
    if not np.array_equal(mask, mask.T):
        raise InputError("mask is not symmetric; a coupling i-j is the same element as j-i")
    scale = max(1.0, float(np.max(np.abs(J))))
    with np.errstate(over="ignore"):  # J_ij = -J_ji = 1e308 overflows to inf: refused below
        asym = float(np.max(np.abs(J - J.T)))
    if asym > _SYM_RTOL * scale:
        raise InputError(f"J is not symmetric (max |J - J^T| = {asym:.3g}); "
                         "the model needs J_ij = J_ji - symmetrise it with (J + J.T)/2")
    J = 0.5 * J + 0.5 * J.T  # = (J + J.T)/2 exactly, without overflow near the float limit
    if np.any(J[~mask] != 0):
        k = int(np.count_nonzero(J[~mask]))
        raise InputError(f"J has {k} nonzero entries where mask is False (including the diagonal); "
                         "zero them or add them to the mask")
    return J, mask


def _checked_n_visible(nv: Any, n: int) -> int:
    if isinstance(nv, (bool, np.bool_)) or not isinstance(nv, (int, np.integer)):
        raise InputError(f"n_visible = {nv!r} must be a whole number of units")
    if not 0 <= int(nv) <= n:
        raise InputError(f"n_visible = {nv} is outside 0..{n}")
    return int(nv)


def _checked_onsite(J2: Any, J4: Any, mu: Any, kT: Any, n: int) -> tuple[np.ndarray, ...]:
    """The per-unit J2, J4, mu, kT: a confining potential, positive mobility and temperature."""
    J2 = _per_unit("J2", J2, n)
    J4 = _per_unit("J4", J4, n)
    mu = _per_unit("mu", mu, n)
    kT = _per_unit("kT", kT, n)
    if np.any(J4 < 0):
        raise InputError("J4 < 0 makes the potential unbounded below; J4 must be >= 0")
    if np.any((J4 == 0) & (J2 <= 0)):
        raise InputError("a unit with J4 = 0 needs J2 > 0 to be confined")
    if np.any(mu <= 0):
        raise InputError("mu (mobility) must be > 0")
    if np.any(kT <= 0):
        raise InputError("kT must be > 0")
    return J2, J4, mu, kT


def _checked_image_shape(shape: Any, nv: int) -> tuple[int, ...] | None:
    """The visible units' image shape as a tuple of ints with nv pixels (None stays None)."""
    if shape is None:
        return None
    if isinstance(shape, (str, bytes, dict)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) and s >= 1
            for s in shape):
        raise InputError(f"image_shape {shape!r} must be a list of whole numbers >= 1, e.g. [28, 28]")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != nv:  # Python ints: no overflow
        raise InputError(f"image_shape {shape} has {math.prod(shape)} pixels "
                         f"but there are {nv} visible units")
    return shape


def checked_placement(value: Any, n: int | None) -> np.ndarray:
    """A placement (``placement[i]`` = physical unit of logical unit i) as a frozen int64
    array: one whole number >= 0 per unit (``n`` of them unless None), no unit twice."""
    a = np.asarray(value)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise InputError(f"placement must be a list of whole numbers, one per unit (got {a.dtype} {a.shape})")
    if n is not None and a.shape != (n,):
        raise InputError(f"placement has {a.size} entries; the model has {n} units")
    if a.dtype == np.uint64 and a.size and a.max() >= 2 ** 63:
        raise InputError("placement holds a physical unit beyond 2**63")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise InputError("placement holds a negative physical unit")
    if np.unique(a).size != a.size:
        raise InputError("placement puts two logical units on one physical unit")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Computer:
    """An immutable, validated Langevin computer.

    Parameters
    ----------
    J : (N, N) symmetric coupling matrix, zero diagonal, zero wherever ``mask`` is False.
    b : (N,) biases.
    mask : (N, N) bool, symmetric, False on the diagonal: which couplings exist.
    n_visible : the first ``n_visible`` units are visible (the image); the rest are hidden.
    J2, J4, mu, kT : per-unit scalars or (N,) arrays, in model units.
    bias_trainable : (N,) bool, which biases training may change (default: the hidden ones).
    image_shape : shape of the visible units as an image, e.g. (28, 28).
    meta : small JSON-serialisable dict (provenance: data, training config, ...).
    placement : (N,) physical unit of each logical unit on the chip this model was trained for
        (chip-aware training, ``thermohw train --target``), or None; compile starts from it.
    """

    J: np.ndarray
    b: np.ndarray
    mask: np.ndarray
    n_visible: int
    J2: Any = 1.0
    J4: Any = 1.0
    mu: Any = 1.0
    kT: Any = 0.1
    bias_trainable: Any = None
    image_shape: tuple[int, ...] | None = None
    meta: dict = field(default_factory=dict)
    placement: Any = None

    def __post_init__(self) -> None:
        # each field checked in turn (the first fault is the one reported), then frozen
        J, mask = _checked_couplings(self.J, self.mask)
        n = J.shape[0]
        b = _real("b", self.b)
        if b.shape != (n,):
            raise InputError(f"b has shape {b.shape}; expected ({n},) to match J")
        if not np.all(np.isfinite(b)):
            raise InputError("b contains NaN or inf")
        nv = _checked_n_visible(self.n_visible, n)
        J2, J4, mu, kT = _checked_onsite(self.J2, self.J4, self.mu, self.kT, n)
        bt = self.bias_trainable
        if bt is None:
            bt = np.arange(n) >= nv
        bt = _flags("bias_trainable", bt, (n,))
        shape = _checked_image_shape(self.image_shape, nv)
        if not isinstance(self.meta, dict):
            raise InputError("meta must be a dict")
        fz = object.__setattr__
        fz(self, "J", _frozen(J))
        fz(self, "b", _frozen(b))
        m = mask.copy()
        m.setflags(write=False)
        fz(self, "mask", m)
        fz(self, "n_visible", nv)
        fz(self, "J2", J2)
        fz(self, "J4", J4)
        fz(self, "mu", mu)
        fz(self, "kT", kT)
        bt = bt.astype(bool).copy()
        bt.setflags(write=False)
        fz(self, "bias_trainable", bt)
        fz(self, "image_shape", shape)
        fz(self, "meta", dict(self.meta))
        if self.placement is not None:
            fz(self, "placement", checked_placement(self.placement, n))

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def zeros(cls, n_visible: int, n_hidden: int, *, connectivity: str = "paper",
              mask: np.ndarray | None = None, J2: float = 1.0, J4: float = 1.0, mu: float = 1.0,
              kT: float = 0.1, image_shape: tuple[int, ...] | None = None,
              meta: dict | None = None) -> "Computer":
        """A computer with all couplings and biases zero (the paper's starting point).

        ``connectivity``: ``"paper"`` (visible-hidden and hidden-hidden, no visible-visible),
        ``"bipartite"`` (visible-hidden only), ``"dense"`` (all pairs). Or pass ``mask``.
        """
        n = n_visible + n_hidden
        if mask is None:
            mask = connectivity_mask(n_visible, n_hidden, connectivity)
        return cls(J=np.zeros((n, n)), b=np.zeros(n), mask=mask, n_visible=n_visible, J2=J2, J4=J4,
                   mu=mu, kT=kT, image_shape=image_shape, meta=meta or {})

    def replace(self, **changes: Any) -> "Computer":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _trained_step(self, J: np.ndarray, b: np.ndarray) -> "Computer":
        """A copy with new J and b that the caller (the trainer's SGD step,
        thermohw.train.sgd_update_at) builds valid by construction: J exactly symmetric, zero
        off the mask, and J and b finite (it checks that). Skips replace()'s validation, whose
        transposed passes over N x N matrices cost ~50 ms a cycle on the paper's computer."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "J", _frozen(J))
        object.__setattr__(new, "b", _frozen(b))
        object.__setattr__(new, "meta", dict(self.meta))
        return new

    def coupling_free(self) -> "Computer":
        """The same units with no couplings and no biases (the generation start state)."""
        return self.replace(J=np.zeros_like(self.J), b=np.zeros_like(self.b))

    # ---- shape ---------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.J.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.n_units - self.n_visible

    @property
    def n_couplings(self) -> int:
        return int(np.count_nonzero(np.triu(self.mask, 1)))

    @property
    def kT_ref(self) -> float:
        """The reference temperature for 'units of kT' (the bath temperature when uniform)."""
        return float(np.mean(self.kT))

    def graph(self):
        """A networkx view of the connectivity; edge attribute ``J`` holds the coupling."""
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from((i, {"visible": i < self.n_visible, "b": float(self.b[i])})
                         for i in range(self.n_units))
        ii, jj = np.nonzero(np.triu(self.mask, 1))
        g.add_edges_from((int(i), int(j), {"J": float(self.J[i, j])}) for i, j in zip(ii, jj))
        return g

    # ---- physics -------------------------------------------------------------------------
    def energy(self, x: np.ndarray, extra_bias: np.ndarray | None = None) -> np.ndarray:
        """V(x) for a state (N,) or a batch (..., N); ``extra_bias`` adds an imposed h.x term."""
        x = np.asarray(x, dtype=np.float64)
        x2 = x * x
        bias = self.b if extra_bias is None else self.b + extra_bias
        v = x2 @ self.J2 + (x2 * x2) @ self.J4 + np.sum(bias * x, axis=-1)
        return v + 0.5 * np.einsum("...i,...i->...", x @ self.J, x)

    def grad(self, x: np.ndarray, extra_bias: np.ndarray | None = None) -> np.ndarray:
        """dV/dx for a state or batch; the force is ``-grad``."""
        x = np.asarray(x, dtype=np.float64)
        g = x @ self.J + self.b + x * (2.0 * self.J2 + 4.0 * self.J4 * x * x)
        if extra_bias is not None:
            g = g + extra_bias
        return g

    def force(self, x: np.ndarray, extra_bias: np.ndarray | None = None) -> np.ndarray:
        return -self.grad(x, extra_bias)

    def hessian_bound(self) -> float:
        """Largest eigenvalue of the quadratic part's Hessian (2 diag(J2) + J): sets the
        Euler stability limit mu*dt*lambda < 2 near x = 0."""
        h = self.J + np.diag(2.0 * self.J2)
        if self.n_units <= 3000:
            return float(np.linalg.eigvalsh(h)[-1])
        from scipy.sparse.linalg import eigsh

        return float(eigsh(h, k=1, which="LA", return_eigenvectors=False)[0])

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the record (compressed). A sparse model (under half of the pairs coupled)
        stores only its couplings, as index pairs i < j and values, not the N x N matrices."""
        header = {"n_visible": self.n_visible, "image_shape": self.image_shape, "meta": self.meta}
        arrays = dict(b=self.b, J2=self.J2, J4=self.J4, mu=self.mu, kT=self.kT, bias_trainable=self.bias_trainable)
        if self.placement is not None:
            arrays["placement"] = self.placement
        n = self.n_units
        if self.n_couplings < n * (n - 1) // 4:
            ii, jj = np.nonzero(np.triu(self.mask, 1))
            dtype = np.uint16 if n <= 65535 else np.uint32
            arrays.update(pair_i=ii.astype(dtype), pair_j=jj.astype(dtype), pair_J=self.J[ii, jj])
            header["couplings"] = "pairs"
            return save_record(path, SCHEMA_PAIRS, header, arrays)
        arrays.update(J=self.J, mask=self.mask)
        return save_record(path, SCHEMA, header, arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Computer":
        header, arrays = load_record(path, (SCHEMA, SCHEMA_PAIRS))
        return cls.from_parts(header, arrays, source=path)

    @classmethod
    def from_parts(cls, header: dict, arrays: dict, source: Any = "record") -> "Computer":
        if header.get("couplings") == "pairs":
            arrays = dict(arrays)
            both = [k for k in ("J", "mask") if k in arrays]
            if both:  # which couplings would be meant? refuse rather than silently pick the pairs
                raise InputError(f"{source}: holds coupling pairs and also {' and '.join(both)}; a sparse "
                                 "model stores only pairs - the file is damaged or was edited, regenerate it")
            try:
                b = np.asarray(arrays["b"])
                if b.ndim != 1:
                    raise InputError(f"{source}: b has shape {b.shape}; expected one value per unit")
                n = int(b.shape[0])
                pi, pj = np.asarray(arrays["pair_i"]), np.asarray(arrays["pair_j"])
                if pi.dtype.kind not in "iu" or pj.dtype.kind not in "iu":
                    raise InputError(f"{source}: coupling pair indices must be integers, got {pi.dtype} and {pj.dtype}")
                if (pi.dtype == np.uint64 and pi.size and pi.max() >= 2 ** 63) or \
                        (pj.dtype == np.uint64 and pj.size and pj.max() >= 2 ** 63):
                    raise InputError(f"{source}: coupling pairs must satisfy 0 <= i < j < {n}")
                ii, jj = pi.astype(np.int64), pj.astype(np.int64)
                v = _real(f"{source}: pair_J", arrays["pair_J"])
                if not (ii.shape == jj.shape == v.shape and ii.ndim == 1):
                    raise InputError(f"{source}: coupling pairs have shapes {ii.shape}, {jj.shape}, {v.shape}")
                if ii.size and (ii.min() < 0 or jj.max() >= n or np.any(ii >= jj)):
                    raise InputError(f"{source}: coupling pairs must satisfy 0 <= i < j < {n}")
                if np.unique(ii * n + jj).size != ii.size:
                    raise InputError(f"{source}: a coupling pair is listed twice; the file is damaged")

                # the pairs expand to two N x N matrices (J and mask): refuse before allocating
                check_memory(9 * n * n, f"{source}: expanding {n} units' couplings",
                             "the file is damaged, or load it on a machine with more memory")
            except InputError:
                raise
            except KeyError as e:
                raise InputError(f"{source}: missing array {e}; the file is incomplete") from None
            except (TypeError, ValueError) as e:
                raise InputError(f"{source}: malformed coupling pairs ({e})") from None
            J = np.zeros((n, n))
            mask = np.zeros((n, n), dtype=bool)
            J[ii, jj] = J[jj, ii] = v
            mask[ii, jj] = mask[jj, ii] = True
            arrays.update(J=J, mask=mask)
        need = ["J", "b", "mask", "J2", "J4", "mu", "kT", "bias_trainable"]
        missing = [k for k in need if k not in arrays]
        if missing:
            raise InputError(f"{source}: missing arrays {missing}; the file is incomplete")
        try:
            meta = header.get("meta") or {}
            placement = arrays.get("placement")
            if placement is None and isinstance(meta, dict) and "placement" in meta:
                meta = dict(meta)   # files from before the field kept the placement in meta
                placement = meta.pop("placement")
            return cls(J=arrays["J"], b=arrays["b"], mask=arrays["mask"],
                       n_visible=header["n_visible"], J2=arrays["J2"], J4=arrays["J4"],
                       mu=arrays["mu"], kT=arrays["kT"], bias_trainable=arrays["bias_trainable"],
                       image_shape=header.get("image_shape"), meta=meta, placement=placement)
        except InputError as e:
            raise InputError(f"{source}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{source}: malformed header ({type(e).__name__}: {e})") from None

    def __repr__(self) -> str:
        return (f"Computer(N={self.n_units}: {self.n_visible} visible + {self.n_hidden} hidden, "
                f"{self.n_couplings} couplings, kT={self.kT_ref:g})")


def connectivity_mask(n_visible: int, n_hidden: int, kind: str = "paper") -> np.ndarray:
    """Coupling mask for a named connectivity (see :meth:`Computer.zeros`)."""
    n = n_visible + n_hidden
    vis = np.arange(n) < n_visible
    if kind == "paper":
        m = ~(vis[:, None] & vis[None, :])
    elif kind == "bipartite":
        m = vis[:, None] ^ vis[None, :]
    elif kind == "dense":
        m = np.ones((n, n), dtype=bool)
    else:
        raise InputError(f"unknown connectivity {kind!r}; use 'paper', 'bipartite' or 'dense'")
    np.fill_diagonal(m, False)
    return m
