"""Chip-aware training: learn within a target's topology, precision and mismatch, so that the
model the chip runs is the model that was trained.

Three pieces, combinable:

- **topology** - :func:`target_mask` gives the coupling mask a target offers to a model of a
  given size (in logical order: visible units first) together with the placement of logical
  onto physical units. Training on that mask leaves compile nothing to prune; the placement is
  the model's ``placement`` field and compile's ``place`` pass starts from it.
- **precision** - :class:`thermohw.chipspec.QuantSpec` quantises couplings, biases and the J2
  trim exactly as compile's ``scale`` + ``quantise`` passes do. Quantisation-aware training uses the
  straight-through estimator: float "shadow" parameters are kept; each cycle's path gradient
  is evaluated at the quantised model and applied to the shadow.
- **mismatch** - :func:`perturb` draws one chip's component errors from the target's
  tolerances (seeded by training seed and cycle) with the backend's own mismatch model (the one
  the virtual chips are built from) and returns the model that chip implements; the gradient
  is evaluated there and applied to the nominal parameters.

The hooks plug into :func:`thermohw.train.train` (``forward`` / ``project``); the settings are
one :class:`thermohw.chipspec.ChipSpec`, kept as JSON in the training checkpoint, so resume is
exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .backends import calibratable_kinds, get_backend, josephson
from .chipspec import ChipSpec, QuantSpec
from .computer import Computer, connectivity_mask
from .errors import InputError
from .target import Target

LAYOUTS = ("auto", "identity", "dither", "lines", "local")
_MISMATCH_KEY = 0x6D69736D  # "mism": separates mismatch draws from every other seeded stream


# ---------------------------------------------------------------------------------------------
# topology
# ---------------------------------------------------------------------------------------------
def _spread(n_total: int, k: int) -> np.ndarray:
    """``k`` indices evenly spread over 0..n_total-1, away from the ends (line i sits at
    round((i + 1/2) n_total / k)): the hidden rows/columns of the lattice layout."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.rint((np.arange(k) + 0.5) * n_total / k).astype(np.int64)
    pos = np.minimum(pos, n_total - 1)
    # rint can collide only when k > n_total / 2; resolve by pushing forward
    for i in range(1, k):
        pos[i] = max(pos[i], pos[i - 1] + 1)
    if pos[-1] >= n_total:
        raise InputError(f"cannot place {k} lines in {n_total}")
    return pos


def _bayer(k: int) -> np.ndarray:
    """The 2**k x 2**k ordered-dither (Bayer) index matrix: thresholding it at any level
    gives an evenly dispersed set of sites."""
    m = np.zeros((1, 1), dtype=np.int64)
    for _ in range(k):
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


def _kings_dither(target: Target, n_visible: int, n_hidden: int,
                  image_shape: tuple[int, ...] | None) -> np.ndarray:
    """Placement on a king's lattice with hidden units dispersed among the pixels.

    The hidden units take the ``n_hidden`` sites (among the first n = n_visible + n_hidden)
    with the lowest 16 x 16 Bayer dither index, so they form an even sub-grid at any density
    (the paper's 512 of 1296 = 40 %: every pixel has hidden lattice neighbours). Pixels are
    then assigned to the remaining sites by a minimum-squared-displacement matching of their
    image coordinates scaled onto the lattice, so each pixel keeps its image neighbourhood
    (neighbouring pixels land one or two sites apart) and every hidden unit sees a local patch.
    """
    from scipy.optimize import linear_sum_assignment

    cols = target.topology.cols
    n = n_visible + n_hidden
    idx = np.arange(n)
    r, c = np.divmod(idx, cols)
    key = _bayer(4)[r % 16, c % 16]
    hidden = np.sort(np.lexsort((idx, key))[:n_hidden])
    is_h = np.zeros(n, dtype=bool)
    is_h[hidden] = True
    vis = np.nonzero(~is_h)[0]
    h, w = (image_shape if image_shape is not None and len(image_shape) == 2 and
            image_shape[0] * image_shape[1] == n_visible else (1, n_visible))
    rows_used = n / cols
    if h == 1:  # no image geometry: keep the raster order
        sites = vis
    else:
        a, b = np.divmod(np.arange(n_visible), w)
        pr = (a + 0.5) * rows_used / h - 0.5
        pc = (b + 0.5) * cols / w - 0.5
        cost = (pr[:, None] - r[vis][None, :]) ** 2 + (pc[:, None] - c[vis][None, :]) ** 2
        _, col = linear_sum_assignment(cost)
        sites = vis[col]
    return np.concatenate([sites, hidden]).astype(np.int64)


def _kings_layout(target: Target, n_visible: int, n_hidden: int,
                  image_shape: tuple[int, ...] | None) -> np.ndarray:
    """Placement on a king's lattice: the image keeps its 2-D neighbourhoods and hidden units
    fill whole lattice rows and columns interleaved between image rows and columns.

    With an h x w image on the first n = n_visible + n_hidden sites of a rows x cols lattice
    (r = n // cols complete rows), ``r - h`` lattice rows and ``cols - w`` lattice columns are
    hidden lines, evenly spread (:func:`_spread`); pixel (a, b) sits at the a-th visible row and
    b-th visible column; the hidden units take every other site in raster order. The paper's
    task on 36 x 36 (784 + 512 = 1296): 8 hidden rows and 8 hidden columns, so the image is cut
    into blocks of at most 4 x 4 pixels, each bordered by hidden lines on every side. Hidden
    units on a line couple to the pixels either side of it (a local receptive field) and to
    their hidden neighbours along and across lines. The visible-visible lattice edges inside a
    block are unused (the paper's rule); :func:`layout_stats` counts them.
    Falls back to spreading visible units evenly over the sites when the image does not fit.
    """
    topo = target.topology
    cols = topo.cols
    n = n_visible + n_hidden
    rows_full = n // cols
    h, w = (image_shape if image_shape is not None and len(image_shape) == 2 else (1, n_visible))
    perm = np.empty(n, dtype=np.int64)
    if h <= rows_full and w <= cols and h * w == n_visible:
        hid_r = set(_spread(rows_full, rows_full - h).tolist())
        hid_c = set(_spread(cols, cols - w).tolist())
        vr = np.array([r for r in range(rows_full) if r not in hid_r])
        vc = np.array([c for c in range(cols) if c not in hid_c])
        vis_sites = (vr[:, None] * cols + vc[None, :]).ravel()
    else:  # no image geometry to keep: spread visible units evenly along the raster order
        vis_sites = np.unique(np.rint(np.linspace(0, n - 1, n_visible)).astype(np.int64))
    is_vis = np.zeros(n, dtype=bool)
    is_vis[vis_sites] = True
    perm[:n_visible] = vis_sites
    perm[n_visible:] = np.nonzero(~is_vis)[0]
    return perm


def _local_degree_limited(n_visible: int, n_hidden: int, d: int,
                          image_shape: tuple[int, ...] | None, hidden_neighbours: int) -> np.ndarray:
    """A local graph with no unit above degree ``d``: hidden units are spread over the image on
    a regular grid (raster order) and each couples to its nearest visible pixels (a local
    receptive field of ``d - hidden_neighbours`` pixels, skipping pixels already at degree d)
    and to the hidden units within ``hidden_neighbours // 2`` places in its order (a band).
    Local graphs keep ngspice fast (benchmarks/README.md: random degree-16 graphs fill in
    like dense ones)."""
    n = n_visible + n_hidden
    m = np.zeros((n, n), dtype=bool)
    hh = min(hidden_neighbours, d, max(n_hidden - 1, 0))
    half = hh // 2
    for k in range(1, half + 1):
        i = np.arange(n_visible, n - k)
        m[i, i + k] = m[i + k, i] = True
    if n_visible == 0 or n_hidden == 0:
        return m
    h, w = (image_shape if image_shape is not None and len(image_shape) == 2 else (1, n_visible))
    gh = max(1, int(round(math.sqrt(n_hidden * h / w))))
    gw = max(1, math.ceil(n_hidden / gh))
    a, b = np.divmod(np.arange(n_hidden), gw)
    centres = np.stack([(a + 0.5) * h / gh - 0.5, (b + 0.5) * w / gw - 0.5], axis=1)
    pr, pc = np.divmod(np.arange(n_visible), w)
    pix = np.stack([pr, pc], axis=1).astype(np.float64)
    deg = m.sum(axis=1)
    patch = d - int(m[n_visible:].sum(axis=1).max(initial=0))
    for j in range(n_hidden):
        dist = np.sum((pix - centres[j]) ** 2, axis=1)
        order = np.lexsort((np.arange(n_visible), dist))
        u = n_visible + j
        for p in order:
            if deg[u] >= d or deg[u] - int(m[u, n_visible:].sum()) >= patch:
                break
            if deg[p] < d:
                m[u, p] = m[p, u] = True
                deg[u] += 1
                deg[p] += 1
    return m


def target_mask(target: Target, n_visible: int, n_hidden: int, *,
                image_shape: tuple[int, ...] | None = None, layout: str = "auto",
                hidden_neighbours: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The coupling mask ``target`` offers to a model of ``n_visible + n_hidden`` units, in
    logical order, and the placement (``placement[i]`` = physical unit of logical unit i,
    compile's convention).

    Always intersected with the paper's connectivity (no visible-visible couplings).
    ``layout``: ``auto`` picks by topology - ``kings``: ``dither``, hidden units dispersed on an
    ordered-dither sub-grid among the image's pixels (:func:`_kings_dither`; ``lines``, whole
    hidden rows and columns between image rows and columns, :func:`_kings_layout`, leaves pixels
    inside the blocks without any hidden neighbour); ``degree-limited``: local receptive fields plus a hidden band
    (:func:`_local_degree_limited`, identity placement: routing is programmable);
    anything else (all-to-all, bipartite, edges): identity placement on the target's graph.
    ``identity`` forces identity placement on the target's reference mask.
    """
    if layout not in LAYOUTS:
        raise InputError(f"layout = {layout!r}; use one of {', '.join(LAYOUTS)}")
    n = int(n_visible) + int(n_hidden)
    if n > target.units:
        raise InputError(f"a {n_visible} + {n_hidden} = {n}-unit model does not fit target "
                         f"{target.name!r} ({target.units} units); use fewer hidden units or a larger target")
    paper = connectivity_mask(int(n_visible), int(n_hidden), "paper")
    topo = target.topology
    if layout == "auto":
        layout = {"kings": "dither", "degree-limited": "local"}.get(topo.type, "identity")
    if layout in ("lines", "dither") and topo.type != "kings":
        raise InputError(f"layout {layout!r} needs a kings target; {target.name!r} is {topo.type}")
    if layout == "local" and topo.type != "degree-limited":
        raise InputError(f"layout 'local' needs a degree-limited target; {target.name!r} is {topo.type}")
    perm = np.arange(n)
    if layout in ("lines", "dither"):
        build = _kings_layout if layout == "lines" else _kings_dither
        perm = build(target, n_visible, n_hidden, image_shape)
        A = target.mask(n)
        mask = A[np.ix_(perm, perm)] & paper
    elif layout == "local":
        mask = _local_degree_limited(n_visible, n_hidden, topo.max_degree, image_shape, hidden_neighbours)
    else:
        A = np.ones((n, n), bool) if topo.type == "all-to-all" else target.mask(n)
        mask = A & paper
    np.fill_diagonal(mask, False)
    return mask, perm


def layout_stats(target: Target, mask: np.ndarray, placement: np.ndarray, n_visible: int) -> dict:
    """How well a layout uses the hardware: couplings trained, lattice edges among the placed
    units, and how many of those are wasted on visible-visible pairs (paper rule)."""
    n = mask.shape[0]
    out = {"couplings": int(np.count_nonzero(np.triu(mask, 1))),
           "max_degree": int(mask.sum(axis=1).max(initial=0))}
    if target.topology.fixed:
        A = (np.ones((n, n), bool) if target.topology.type == "all-to-all" else target.mask(n))
        Al = A[np.ix_(placement, placement)]
        np.fill_diagonal(Al, False)
        vis = np.arange(n) < n_visible
        vv = Al & vis[:, None] & vis[None, :]
        out.update(hardware_edges=int(np.count_nonzero(np.triu(Al, 1))),
                   unused_visible_visible=int(np.count_nonzero(np.triu(vv, 1))))
    return out


# ---------------------------------------------------------------------------------------------
# mismatch
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Mismatch:
    """One chip's errors for chip-aware training, in the backend's own physical terms - the same
    model the virtual chips are built from (docs/design.md#calibration-contract):

    errors : rc / lc: the backend's ``Mismatch`` record (relative errors of C, R or L, the
             nonlinear element's and every coupling's gain, offsets, the noise amplitude),
             drawn reciprocal (one element per pair: training learns a gradient system);
             josephson: ``josephson.ChipErrors`` (critical-current spread, which moves J4 and,
             x12 at beta_L = 0.923, J2; coupler spread; shunt R), drawn from the same stream.
    target : the chip's target. :meth:`apply` gives the model the chip implements.
    """

    errors: Any
    target: Target

    @classmethod
    def draw(cls, target: Target, n_units: int, seed: int, cycle: int, scale: float = 1.0) -> "Mismatch":
        """Seeded by (training seed, cycle): the same cycle always sees the same chip, so a
        resumed run is bit-identical without storing any draw."""
        ss = np.random.SeedSequence([int(seed), int(cycle), _MISMATCH_KEY])
        if target.kind == "josephson":
            return cls(_josephson_errors(target, int(n_units), np.random.default_rng(ss), float(scale)), target)
        if target.kind not in calibratable_kinds():
            raise InputError(f"no mismatch model for {target.kind!r} chips (available: "
                             f"{', '.join(calibratable_kinds() + ('josephson',))})")
        chip_seed = int(ss.generate_state(1, np.uint32)[0])
        return cls(get_backend(target.kind).Mismatch.draw(target, int(n_units), chip_seed, reciprocal=True,
                                                          scale=float(scale)), target)

    def apply(self, c: Computer) -> Computer:
        """The model a chip with these errors implements when programmed with ``c``."""
        if self.target.kind == "josephson":
            return self.errors.apply(c)
        return get_backend(self.target.kind).mismatched_model(c, self.errors, self.target)


def _josephson_errors(target: Target, n: int, rng: np.random.Generator, s: float):
    """rf-SQUID errors from the target's figures: critical-current spread N(0, gain_mismatch)
    (read from the cubic's draw), coupler spread N(0, gain_mismatch), shunt R U(+-resistor
    tolerance); clipped to +-0.5 so that no element changes sign."""
    comp = target.components
    lim = lambda a: np.clip(a, -0.5, 0.5)  # noqa: E731
    lim(s * comp.cap_tolerance * rng.uniform(-1, 1, n))       # C: drawn to keep the stream; not an error of the model
    g_rel = lim(s * comp.resistor_tolerance * rng.uniform(-1, 1, n))
    k3_rel = lim(s * comp.gain_mismatch * rng.standard_normal(n))
    gain = np.triu(lim(s * comp.gain_mismatch * rng.standard_normal((n, n))), 1)
    return josephson.chip_errors(target, k3_rel, gain + gain.T, g_rel)


def perturb(c: Computer, target: Target, seed: int, cycle: int, scale: float = 1.0) -> Computer:
    """``c`` as realised by the chip drawn for (seed, cycle) (see :class:`Mismatch`)."""
    return Mismatch.draw(target, c.n_units, seed, cycle, scale).apply(c)


# ---------------------------------------------------------------------------------------------
# training hooks
# ---------------------------------------------------------------------------------------------
def hooks(chip: ChipSpec) -> tuple[Callable[[Computer, int], Computer] | None,
                                  Callable[[Computer], Computer] | None]:
    """``forward(c, cycle)`` and ``project(c)`` for :func:`thermohw.train.train` (None when
    the setting is plain topology-constrained training: the mask alone does that)."""
    q = chip.quant()
    if q is None and not chip.mismatch:
        return None, None
    target, seed, scale, mm = chip.target, chip.seed, chip.mismatch_scale, chip.mismatch

    def forward(c: Computer, cycle: int) -> Computer:
        # The gradient found at this model is applied unchanged to the float parameters: the
        # straight-through estimator for rounding, and for mismatch the first-order rule (the
        # chain factor (1 + gain_ij) of J_eff = J (1 + gain) is left out: it is zero-mean and
        # within a few per cent of 1, and leaving it out keeps quantised and mismatched
        # training one mechanism).
        at = q.quantize(c) if q is not None else c
        return perturb(at, target, seed, cycle, scale) if mm else at

    return forward, (q.clip if q is not None else None)


def restrict(c: Computer, mask: np.ndarray, placement: np.ndarray | None = None) -> tuple[Computer, int]:
    """``c`` (e.g. a float model to fine-tune) moved onto ``mask`` (and ``placement``, when
    given): couplings outside it are dropped. Returns the model and how many nonzero couplings
    were dropped."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != c.mask.shape:
        raise InputError(f"the model has {c.n_units} units; the target mask is for {mask.shape[0]}")
    dropped = int(np.count_nonzero(np.triu((c.J != 0) & ~mask, 1)))
    return c.replace(J=np.where(mask, c.J, 0.0), mask=mask,
                     placement=c.placement if placement is None else placement), dropped


__all__ = ["target_mask", "layout_stats", "QuantSpec", "ChipSpec", "Mismatch", "perturb", "hooks", "restrict",
           "LAYOUTS"]
