"""Batched overdamped Langevin dynamics (Euler-Maruyama, Eq. 3), protocols and heat.

One step for all runs at once:  x' = x - mu dt dV/dx(x, t) + sqrt(2 mu kT dt) xi.

Speed: the coupling force is BLAS products of only the blocks of J that exist (the paper's
model has no visible-visible couplings); everything else, the counter-based Gaussian noise
included, is one compiled pass per step (:mod:`thermohw.euler`, :mod:`thermohw.gaussian`).
The runs are split into contiguous slices advanced by separate threads with single-threaded
BLAS each (products and kernels release the GIL), so all of it uses every core
(benchmarks/README.md has the figures). ``dtype=float32`` halves the memory traffic and
doubles the BLAS rate; heat and work are accumulated in float64 either way. Each fixed block
of ``BLOCK`` runs owns its own noise stream, so results do not depend on the thread count.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .computer import Computer
from .errors import DivergenceError, InputError
from .io import load_record, save_record, numeric_array
from .resources import check_memory

TRAJECTORY_SCHEMA = "thermohw.trajectory/1"
BLOCK = 64  # runs per random stream
# `thermohw sample`'s precision: paired float32/float64 runs of a trained 784 + 512 model agree
# in digits and heat within sampling error (benchmarks/README.md, tests/test_langevin.py)
GENERATION_DTYPE = "float32"
_CHECK_EVERY = 25  # steps between progress reports


# ---------------------------------------------------------------------------------------------
# protocols
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Protocol:
    """An imposed bias field ``h * envelope(t)`` added to the computer's own biases.

    ``h`` is (N,) or (runs, N). ``kind``: ``"constant"`` (envelope 1) or ``"linear_decay"``
    (envelope ``max(0, 1 - t / t_off)``, the paper's noising schedule with t_off = 0.75 t_f).
    """

    h: np.ndarray
    kind: str = "constant"
    t_off: float | None = None

    def __post_init__(self) -> None:
        h = np.array(self.h, dtype=np.float64)
        if h.ndim not in (1, 2):
            raise InputError(f"protocol bias h must be (N,) or (runs, N), got shape {h.shape}")
        if not np.all(np.isfinite(h)):
            raise InputError("protocol bias h contains NaN or inf")
        h.setflags(write=False)
        object.__setattr__(self, "h", h)
        if self.kind not in ("constant", "linear_decay"):
            raise InputError(f"unknown protocol kind {self.kind!r}; use 'constant' or 'linear_decay'")
        if self.kind == "linear_decay" and not (self.t_off and self.t_off > 0):
            raise InputError("a linear_decay protocol needs t_off > 0")

    def envelope(self, t: float) -> float:
        if self.kind == "constant":
            return 1.0
        return max(0.0, 1.0 - t / self.t_off)

    @property
    def time_dependent(self) -> bool:
        return self.kind != "constant"

    def describe(self) -> dict:
        return {"kind": self.kind, "t_off": self.t_off, "h_shape": list(self.h.shape),
                "h_rms": float(np.sqrt(np.mean(self.h ** 2)))}


def noising_field(patterns: np.ndarray, n_units: int, n_visible: int, scale: float = 2.0) -> np.ndarray:
    """The paper's imposed noising bias: -scale*P_i on visible unit i and -scale*P_(j mod Nv)
    on hidden unit j. ``patterns`` is (Nv,) or (runs, Nv); returns (N,) or (runs, N)."""
    p = np.asarray(patterns, dtype=np.float64)
    if p.shape[-1] != n_visible:
        raise InputError(f"pattern has {p.shape[-1]} pixels but the computer has {n_visible} visible units")
    idx = np.arange(n_units) % n_visible
    return -scale * p[..., idx]


# ---------------------------------------------------------------------------------------------
# trajectory record
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Trajectory:
    """Result of a simulation. Energies are in model units; ``*_kT`` properties divide by kT.

    ``heat``: energy given to the bath from the first law, W - [V(x_f, t_f) - V(x_0, 0)]
    (equal to V(x0) - V(x_f) when the parameters are fixed). ``heat_strat``: the
    Stratonovich sum -sum dV(midpoint).dx (trapezoidal midpoint). ``work``: work done by
    the protocol, sum over steps of V(x, t+dt) - V(x, t).
    """

    times: np.ndarray            # (T,) snapshot times, empty if nothing recorded
    x: np.ndarray | None         # (T, runs, N) snapshots or None
    x0: np.ndarray               # (runs, N)
    x_final: np.ndarray          # (runs, N)
    heat: np.ndarray             # (runs,)
    heat_strat: np.ndarray       # (runs,) NaN if not computed
    work: np.ndarray             # (runs,)
    dt: float
    n_steps: int
    kT: float
    seed: Any = None
    protocol: dict = field(default_factory=dict)
    dtype: str = "float64"       # precision of the simulated state (heat is float64 either way)

    @property
    def heat_kT(self) -> np.ndarray:
        return self.heat / self.kT

    @property
    def heat_strat_kT(self) -> np.ndarray:
        return self.heat_strat / self.kT

    @property
    def n_runs(self) -> int:
        return self.x_final.shape[0]

    def save(self, path: str | Path) -> Path:
        arrays = dict(times=self.times, x0=self.x0, x_final=self.x_final, heat=self.heat,
                      heat_strat=self.heat_strat, work=self.work,
                      heat_kT=self.heat_kT, heat_strat_kT=self.heat_strat_kT)
        if self.x is not None:
            arrays["x"] = self.x
        header = dict(dt=self.dt, n_steps=self.n_steps, kT=self.kT, seed=_jsonable_seed(self.seed),
                      protocol=self.protocol, dtype=self.dtype)
        return save_record(path, TRAJECTORY_SCHEMA, header, arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Trajectory":
        h, a = load_record(path, TRAJECTORY_SCHEMA)
        try:
            return cls(times=a["times"], x=a.get("x"), x0=a["x0"], x_final=a["x_final"], heat=a["heat"],
                       heat_strat=a["heat_strat"], work=a["work"], dt=float(h["dt"]),
                       n_steps=int(h["n_steps"]), kT=float(h["kT"]), seed=h.get("seed"),
                       protocol=h.get("protocol") or {}, dtype=str(h.get("dtype", "float64")))._checked(path)
        except KeyError as e:
            raise InputError(f"{path}: trajectory record lacks {e}") from None
        except (TypeError, ValueError, OverflowError) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"{path}: malformed trajectory header ({type(e).__name__}: {str(e)[:80]}); "
                             "the file is damaged - regenerate it") from None

    def _checked(self, src: Any) -> "Trajectory":
        """Self, after checking what a file could get wrong: real arrays of matching shapes,
        finite states and heats, dt and kT positive."""

        x0, xf = numeric_array(src, "x0", self.x0), numeric_array(src, "x_final", self.x_final)
        if xf.ndim != 2 or 0 in xf.shape or x0.shape != xf.shape:
            raise InputError(f"{src}: x0 and x_final must both be (runs, units); got {x0.shape} and {xf.shape}")
        runs = xf.shape[0]
        for name in ("heat", "heat_strat", "work"):
            if numeric_array(src, name, getattr(self, name)).shape != (runs,):
                raise InputError(f"{src}: {name} has shape {np.shape(getattr(self, name))}; expected ({runs},)")
        t = numeric_array(src, "times", self.times)
        if t.ndim != 1:
            raise InputError(f"{src}: times has shape {t.shape}; expected one time per snapshot")
        if self.x is not None and numeric_array(src, "x", self.x).shape != (t.shape[0], *xf.shape):
            raise InputError(f"{src}: x has shape {np.shape(self.x)}; expected {(t.shape[0], *xf.shape)}")
        for name in ("x0", "x_final", "heat", "work"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise InputError(f"{src}: {name} contains NaN or inf; the file is damaged - regenerate it")
        if np.any(np.isinf(self.heat_strat)):  # NaN means 'not computed'
            raise InputError(f"{src}: heat_strat contains inf; the file is damaged - regenerate it")
        if not (math.isfinite(self.dt) and self.dt > 0 and math.isfinite(self.kT) and self.kT > 0
                and self.n_steps >= 0):
            raise InputError(f"{src}: dt = {self.dt}, kT = {self.kT}, n_steps = {self.n_steps}; dt and kT "
                             "must be positive numbers and n_steps >= 0 - the file is damaged")
        if not isinstance(self.protocol, dict):
            raise InputError(f"{src}: protocol must be a JSON object; the file is damaged")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"{src}: dtype {self.dtype[:20]!r} is neither float32 nor float64; the file is damaged")
        return self


def _jsonable_seed(seed: Any) -> Any:
    return seed if isinstance(seed, (int, type(None))) else repr(seed)


# ---------------------------------------------------------------------------------------------
# the integrator
# ---------------------------------------------------------------------------------------------
def _block_keys(seed: Any, n_runs: int, first_block: int = 0) -> np.ndarray:
    """One noise-stream key (uint64) per block of BLOCK runs (:mod:`thermohw.gaussian`)."""
    n_blocks = max(1, math.ceil(n_runs / BLOCK))
    if isinstance(seed, np.random.Generator):
        if first_block:
            raise InputError("first_block needs an int or SeedSequence seed (a Generator's streams depend on order)")
        # draw child seeds (advances the parent's serialisable state; Generator.spawn would not)
        children = [np.random.SeedSequence(int(s)) for s in seed.integers(0, 2 ** 63, size=n_blocks)]
    else:
        children = _children(seed, n_blocks, start=first_block)
    return np.array([c.generate_state(1, np.uint64)[0] for c in children], dtype=np.uint64)


def _children(seed: Any, n: int, start: int = 0) -> list[np.random.SeedSequence]:
    """Children start..start+n-1 of a seed, without spawning from (mutating) a SeedSequence the
    caller passed: the same seed object gives the same streams every time. For an int seed
    and start 0 these are exactly SeedSequence(seed).spawn(n)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (k,), pool_size=ss.pool_size)
            for k in range(start, start + n)]


def euler_limits(c: Computer, dt: float) -> tuple[float, float]:
    """(stability margin of the quadratic part, largest stable |x| for the quartic part).

    Explicit Euler is stable while mu*dt*(curvature) < 2. For the on-site drift the Euler map
    is x' = x (1 - mu dt (2 J2 + 4 J4 x^2)); once |1 - ...| > 1 each step overshoots further, so
    beyond the returned |x| a state escapes to infinity within a few steps."""
    mu_max = float(np.max(c.mu))
    lam = c.hessian_bound() if np.any(c.J) else float(np.max(2 * c.J2))
    margin = mu_max * dt * lam
    j4 = float(np.max(c.J4))
    j2 = float(np.max(c.J2))  # the escape radius is smallest where J2 is largest
    if j4 > 0:
        xmax = math.sqrt(max(2.0 / (mu_max * dt) - 2.0 * j2, 1e-300) / (4.0 * j4))
    else:
        xmax = 1e8
    return margin, xmax


def _default_threads(n_runs: int, n_units: int, coupled: bool) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_blocks = max(1, math.ceil(n_runs / BLOCK))
    # below ~a few Mflop per step the GIL-held Python overhead dominates: stay single-threaded
    work = n_runs * n_units * (n_units if coupled else 30)
    return 1 if work < 4e6 else max(1, min(cpus, n_blocks))


def _dtype(dtype: Any) -> np.dtype:
    try:
        d = np.dtype(dtype)
    except TypeError:
        d = None
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputError(f"dtype {dtype!r} is not supported; use float32 or float64")
    return d


def _coupling_plan(c: Computer, dtype: np.dtype) -> list[tuple[int, int, int, int, np.ndarray]]:
    """The coupling force x J as products of the blocks that exist: (i0, i1, o0, o1, J[i0:i1, o0:o1])
    with out[:, o0:o1] = x[:, i0:i1] @ block. Units split into visible and hidden; a block is
    skipped when the mask leaves it empty (the paper's model has no visible-visible couplings:
    2 Nv Nh + Nh^2 of the dense product's N^2 multiply-adds, 1.58x fewer at 784 + 512)."""
    N, nv = c.n_units, c.n_visible
    parts = [(0, nv), (nv, N)] if 0 < nv < N else [(0, N)]
    plan = []
    for o0, o1 in parts:
        rows = [(i0, i1) for i0, i1 in parts if c.mask[i0:i1, o0:o1].any()]
        if rows:  # the non-empty input blocks are adjacent (at most two parts)
            i0, i1 = rows[0][0], rows[-1][1]
            plan.append((i0, i1, o0, o1, np.ascontiguousarray(c.J[i0:i1, o0:o1], dtype=dtype)))
    return plan


def simulate(computer: Computer, x0: np.ndarray, *, n_steps: int, dt: float, seed: Any = None,
             protocol: Protocol | None = None, record_every: int | None = None,
             stratonovich: bool = True, threads: int | None = None,
             progress: Callable[[int], None] | None = None, noise: np.ndarray | None = None,
             sparse: bool | None = None, first_block: int = 0, dtype: Any = np.float64) -> Trajectory:
    """Advance ``x0`` (runs, N) by ``n_steps`` Euler-Maruyama steps of size ``dt``.

    seed: int, SeedSequence or Generator; the same seed gives identical results.
    record_every: store a snapshot every this many steps (and the initial and final state).
    stratonovich: also accumulate the Stratonovich heat sum (costs ~5 % more).
    threads: worker threads (default: all cores for large problems; results do not depend on it).
    sparse: use a sparse (CSR) coupling product; default: when under 2 % of J is nonzero.
    noise: optional (n_steps, runs, N) standard normals to use instead of the seeded streams,
        so another simulator (ngspice, in paired co-simulation) can be driven by the same noise.
    first_block: use the seed's random streams from this block of BLOCK runs on, so a long run
        done in chunks of whole blocks reproduces the single run exactly.
    dtype: float64 or float32, the state's and coupling products' precision (heat, work and
        the returned states are float64 either way). Both draw the same noise for a seed.
    Raises DivergenceError, with the fix, if dt is beyond the Euler stability limit or a state
    runs away.
    """
    # lazy (start-up): numba; at top it adds 0.2-0.4 s to `import thermohw` and `thermohw --help`
    from .euler import em_step, heat_tail

    c = computer
    dtype = _dtype(dtype)
    x0, n_steps, h, xmax, noise = _checked_run(c, x0, n_steps, dt, record_every, protocol, noise)
    R, N = x0.shape
    couple, coupled = _coupling_product(c, dtype, sparse)
    if threads is None:
        threads = _default_threads(R, N, coupled)
    keys = _block_keys(seed, R, first_block)
    rec_idx = None
    if record_every:
        rec_idx = sorted(set(range(0, n_steps + 1, int(record_every))) | {n_steps})
    run = _Run(c, x0, h, noise, n_steps, dt, float(xmax), dtype, protocol, rec_idx, keys, couple, stratonovich,
               progress, (em_step, heat_tail))
    threads = max(1, min(int(threads), len(keys)))
    if threads == 1:
        run.run_slice(0, R, True)
    else:
        from threadpoolctl import threadpool_limits

        # the noise is a function of (block key, row in block, step, unit), so the threads may
        # split the runs evenly, not at block boundaries (512 + 488 runs cost 2.4 % at 1000)
        edges = np.linspace(0, R, threads + 1).round().astype(int)
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as ex:
            futs = [ex.submit(run.run_slice, edges[i], edges[i + 1], i == 0) for i in range(threads)]
            for f in futs:
                f.result()

    env, xf, work = run.env, run.xf, run.work
    e_end = env(n_steps * dt)
    v0 = c.energy(x0, None if h is None else env(0.0) * h)
    vf = c.energy(xf, None if h is None else e_end * h)
    heat = work - (vf - v0)
    times = np.asarray(rec_idx, dtype=np.float64) * dt if rec_idx else np.empty(0)
    return Trajectory(times=times, x=run.xs, x0=x0, x_final=xf, heat=heat,
                      heat_strat=run.qs if stratonovich else np.full(R, np.nan), work=work, dt=float(dt),
                      n_steps=n_steps, kT=c.kT_ref, seed=_jsonable_seed(seed),
                      protocol=protocol.describe() if protocol is not None else {}, dtype=dtype.name)


def _checked_run(c: Computer, x0: Any, n_steps: Any, dt: Any, record_every: Any, protocol: Protocol | None,
                 noise: Any) -> tuple[np.ndarray, int, np.ndarray | None, float, np.ndarray | None]:
    """simulate's inputs checked, each failure one InputError (DivergenceError for dt beyond the
    Euler limit): (x0 as float64 (runs, N), n_steps, the protocol's bias or None, the runaway
    bound xmax, the noise as contiguous float64 or None)."""
    x0 = np.array(x0, dtype=np.float64, ndmin=2)
    R, N = x0.shape
    if N != c.n_units:
        raise InputError(f"x0 has {N} units but the computer has {c.n_units}")
    if not np.all(np.isfinite(x0)):
        raise InputError("x0 contains NaN or inf")
    if not (np.ndim(dt) == 0 and dt > 0 and math.isfinite(dt)):
        raise InputError(f"dt must be a positive number, got {dt!r}")
    if int(n_steps) != n_steps or n_steps < 0:
        raise InputError(f"n_steps must be a whole number >= 0, got {n_steps!r}")
    n_steps = int(n_steps)
    if record_every is not None and (int(record_every) != record_every or record_every < 1):
        raise InputError(f"record_every must be a whole number >= 1, got {record_every!r}")
    n_rec_est = 0 if not record_every else n_steps // int(record_every) + 2
    check_memory(8 * R * N * (7 + n_rec_est), f"simulating {R} runs of {N} units"
                 + (f" recording {n_rec_est} snapshots" if n_rec_est else ""),
                 "use fewer runs" + (" or record fewer snapshots" if n_rec_est else ""))
    h = None
    if protocol is not None:
        h = protocol.h
        if h.shape[-1] != N or (h.ndim == 2 and h.shape[0] != R):
            raise InputError(f"protocol bias has shape {h.shape}; expected ({N},) or ({R}, {N})")
    margin, xmax = euler_limits(c, dt)
    if margin >= 2.0:
        raise DivergenceError(
            f"dt = {dt:g} is beyond the Euler stability limit: mu*dt*lambda_max = {margin:.3g} >= 2 "
            f"(lambda_max of 2*J2 + J = {margin / (dt * np.max(c.mu)):.4g}); "
            f"use dt < {2.0 * dt / margin:.3g} or smaller couplings")
    if noise is not None:
        noise = np.ascontiguousarray(noise, dtype=np.float64)
        if noise.shape != (n_steps, R, N):
            raise InputError(f"noise has shape {noise.shape}; expected (n_steps, runs, N) = {(n_steps, R, N)}")
    return x0, n_steps, h, xmax, noise


def _coupling_product(c: Computer, dtype: np.dtype, sparse: bool | None) -> tuple[Callable, bool]:
    """(couple, coupled): couple(out, x) sets out <- x J in place; coupled: J has a nonzero."""
    coupled = bool(np.any(c.J))
    # sparse chips (lattices, local graphs): a CSR product costs O(nnz runs) instead of O(N^2 runs)
    density = np.count_nonzero(c.J) / c.J.size if coupled else 0.0
    J_csr, plan = None, []
    if coupled and (sparse if sparse is not None else density < 0.02):
        from scipy.sparse import csr_matrix

        J_csr = csr_matrix(c.J.astype(dtype))
    elif coupled:
        plan = _coupling_plan(c, dtype)
    N = c.n_units
    covered = sorted((o0, o1) for _, _, o0, o1, _ in plan)
    gaps = [(a, b_) for a, b_ in zip([0] + [o1 for _, o1 in covered], [o0 for o0, _ in covered] + [N]) if b_ > a]

    def couple(out: np.ndarray, x: np.ndarray) -> None:
        """out <- x J, in place: only the blocks that exist, each one BLAS product."""
        if J_csr is not None:
            out[...] = (J_csr @ x.T).T  # J is symmetric: x J = (J x^T)^T
            return
        for i0, i1, o0, o1, Jb in plan:
            np.matmul(x[:, i0:i1], Jb, out=out[:, o0:o1])
        for a, b_ in gaps:
            out[:, a:b_] = 0.0

    return couple, coupled


class _Run:
    """One simulate() call's state: the fixed inputs, and the outputs the threads fill, each
    thread its own slice of runs (x_final, heat sums, work, snapshots)."""

    def __init__(self, c: Computer, x0: np.ndarray, h: np.ndarray | None, noise: np.ndarray | None,
                 n_steps: int, dt: float, xmax: float, dtype: np.dtype, protocol: Protocol | None,
                 rec_idx: list[int] | None, keys: np.ndarray, couple: Callable, stratonovich: bool,
                 progress: Callable[[int], None] | None, kernels: tuple[Callable, Callable]) -> None:
        R, N = x0.shape
        self.N = N
        self.x0, self.h, self.noise, self.n_steps, self.dt, self.xmax = x0, h, noise, n_steps, dt, xmax
        self.dtype, self.couple, self.stratonovich, self.progress = dtype, couple, stratonovich, progress
        self.em_step, self.heat_tail = kernels
        n_rec = len(rec_idx) if rec_idx else 0
        self.xs = np.empty((n_rec, R, N)) if rec_idx else None
        self.xf = np.empty((R, N))
        self.qs = np.zeros(R)
        self.work = np.zeros(R)
        self.unit = {k: np.ascontiguousarray(np.broadcast_to(v, (N,)), dtype=dtype) for k, v in dict(
            a2=2.0 * c.J2, a4=4.0 * c.J4, b=c.b, mudt=c.mu * dt, sigma=np.sqrt(2.0 * c.mu * c.kT * dt)).items()}
        self.env = (lambda t: protocol.envelope(t)) if protocol is not None else (lambda t: 0.0)
        self.tdep = protocol is not None and protocol.time_dependent
        self.rec_set = {k: i for i, k in enumerate(rec_idx)} if rec_idx else {}
        self.no_noise = np.empty((0, N))
        self.rows_in_block = np.arange(R, dtype=np.int64) % BLOCK
        self.row_keys = keys[np.arange(R) // BLOCK]

    def run_slice(self, r0: int, r1: int, report: bool) -> None:
        # overflow is detected below and reported as DivergenceError, not as numpy warnings
        with np.errstate(over="ignore", invalid="ignore"):
            self.xf[r0:r1] = self.advance(r0, r1, report)

    def advance(self, r0: int, r1: int, report: bool) -> np.ndarray:
        """Runs r0..r1 through all steps; returns their final state."""
        h, dt, dtype, unit, env, rec_set, xs = self.h, self.dt, self.dtype, self.unit, self.env, self.rec_set, self.xs
        x = self.x0[r0:r1].astype(dtype)
        hs = np.zeros((1, self.N), dtype) if h is None else np.ascontiguousarray(
            h[None] if h.ndim == 1 else h[r0:r1], dtype=dtype)
        g, dxp = np.empty_like(x), np.zeros_like(x)
        ks, rin = self.row_keys[r0:r1], self.rows_in_block[r0:r1]
        q, w = self.qs[r0:r1], self.work[r0:r1]  # views: the kernel accumulates in place
        for k in range(self.n_steps):
            if k in rec_set:
                xs[rec_set[k], r0:r1] = x
            self.couple(g, x)
            e = env(k * dt)
            de = env((k + 1) * dt) - e if self.tdep else 0.0
            bad = self.em_step(x, g, dxp, self.no_noise if self.noise is None else self.noise[k, r0:r1], ks, rin,
                               k, BLOCK, unit["a2"], unit["a4"], unit["b"], unit["mudt"], unit["sigma"], hs,
                               dtype.type(e), float(de), q, w, self.stratonovich, self.xmax)
            if bad:
                self._ran_away(x, k)
            if report and self.progress is not None and ((k + 1) % _CHECK_EVERY == 0 or k + 1 == self.n_steps):
                self.progress(k + 1)
        if self.stratonovich and self.n_steps:
            self.couple(g, x)
            self.heat_tail(x, g, dxp, unit["a2"], unit["a4"], unit["b"], hs, dtype.type(env(self.n_steps * dt)), q)
        if self.n_steps in rec_set:
            xs[rec_set[self.n_steps], r0:r1] = x
        return x

    def _ran_away(self, x: np.ndarray, k: int) -> None:
        dt, xmax = self.dt, self.xmax
        m = float(np.max(np.abs(x)))
        raise DivergenceError(
            f"the simulation ran away at step {k + 1} (t = {(k + 1) * dt:g}): max |x| = {m:.3g} "
            f"exceeds {xmax:.3g}, beyond which Euler steps of dt = {dt:g} overshoot ever further "
            f"on the quartic term; reduce dt (e.g. to {dt / 4:g}) or check the couplings/biases")


# ---------------------------------------------------------------------------------------------
# the paper's protocols
# ---------------------------------------------------------------------------------------------
def steps_for(t: float, dt: float) -> int:
    n = int(round(t / dt))
    if n <= 0 or abs(n * dt - t) > 1e-9 * max(1.0, t):
        raise InputError(f"time {t:g} is not a positive whole number of steps of dt = {dt:g}")
    return n


def noising(computer: Computer, patterns: np.ndarray, *, t_f: float = 2.5, dt: float = 1e-3,
            seed: Any = None, decay_fraction: float = 0.75, scale: float = 2.0,
            t_eq: float | None = None, record_every: int = 1, threads: int | None = 1,
            field: np.ndarray | None = None) -> Trajectory:
    """The paper's noising trajectory for each row of ``patterns`` (runs, Nv): from x = 0,
    equilibrate for ``t_eq`` (default t_f) under the fixed imposed field -scale*P on the
    coupling-free computer, then run t_f with the field decaying linearly to 0 at
    decay_fraction*t_f. Returns the second phase, recorded every ``record_every`` steps.
    ``field`` (N,) or (runs, N): the imposed field to use instead of :func:`noising_field`
    (e.g. with other hidden-unit targets, :class:`thermohw.train.HiddenTargets`)."""
    free = computer.coupling_free()
    if field is None:
        hfield = noising_field(patterns, computer.n_units, computer.n_visible, scale)
    else:
        hfield = np.asarray(field, dtype=np.float64)
        if hfield.shape[-1] != computer.n_units or hfield.ndim not in (1, 2):
            raise InputError(f"noising field has shape {hfield.shape}; expected (N,) or (runs, N) with "
                             f"N = {computer.n_units}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    R = 1 if hfield.ndim == 1 else hfield.shape[0]
    x = np.zeros((R, computer.n_units))
    n_eq = steps_for(t_eq if t_eq is not None else t_f, dt)
    eq = simulate(free, x, n_steps=n_eq, dt=dt, seed=rng, protocol=Protocol(hfield),
                  stratonovich=False, threads=threads)
    return simulate(free, eq.x_final, n_steps=steps_for(t_f, dt), dt=dt, seed=rng,
                    protocol=Protocol(hfield, "linear_decay", decay_fraction * t_f),
                    record_every=record_every, stratonovich=False, threads=threads)


def equilibrium_start(computer: Computer, n_runs: int, *, t_eq: float = 2.5, dt: float = 1e-3,
                      seed: Any = None) -> np.ndarray:
    """The generation protocol's start states (runs, N): the coupling-free, bias-free
    computer equilibrated for ``t_eq`` from x = 0, drawn with the random streams
    :func:`generate` uses for its first phase (same seed, same states)."""
    return generate(computer, n_runs, t_f=dt, dt=dt, t_eq=t_eq, seed=seed, stratonovich=False,
                    threads=1).x0


def generate(computer: Computer, n_runs: int, *, t_f: float = 2.5, dt: float = 1e-3, seed: Any = None,
             t_eq: float | None = None, record_every: int | None = None, stratonovich: bool = True,
             threads: int | None = None, progress: Callable[[int], None] | None = None,
             first_block: int = 0, dtype: Any = np.float64) -> Trajectory:
    """The paper's generation protocol: equilibrate the coupling-free, bias-free computer for
    ``t_eq`` (default t_f) from x = 0, then run the trained computer for t_f. Returns the
    second phase; its heat is the heat emitted by generation. Outputs are x_final[:, :Nv].
    ``first_block``: runs start at block ``first_block`` of the seed's streams (chunked runs,
    :func:`thermohw.workflow.run_sampling`). ``dtype``: the state's precision, float64 or
    float32 (same noise for a seed; heat accumulated in float64 either way)."""
    if n_runs < 1:
        raise InputError("n_runs must be >= 1")
    n_steps_f = steps_for(t_f, dt)
    n_rec = 0 if not record_every else n_steps_f // max(1, int(record_every)) + 2
    # peak: the equilibrated start states beside the second phase's state, scratch and snapshots
    check_memory(8 * int(n_runs) * computer.n_units * (9 + n_rec),
                 f"generating {n_runs} runs of {computer.n_units} units", "use fewer runs")
    if isinstance(seed, np.random.Generator):
        s_eq, s_run = (np.random.SeedSequence(int(v)) for v in seed.integers(0, 2 ** 63, size=2))
    else:
        s_eq, s_run = _children(seed, 2)
    x = np.zeros((n_runs, computer.n_units))
    eq = simulate(computer.coupling_free(), x, n_steps=steps_for(t_eq if t_eq is not None else t_f, dt),
                  dt=dt, seed=s_eq, stratonovich=False, threads=threads, first_block=first_block, dtype=dtype)
    tr = simulate(computer, eq.x_final, n_steps=steps_for(t_f, dt), dt=dt, seed=s_run,
                  record_every=record_every, stratonovich=stratonovich, threads=threads, progress=progress,
                  first_block=first_block, dtype=dtype)
    return Trajectory(times=tr.times, x=tr.x, x0=tr.x0, x_final=tr.x_final, heat=tr.heat,
                      heat_strat=tr.heat_strat, work=tr.work, dt=tr.dt, n_steps=tr.n_steps, kT=tr.kT,
                      seed=_jsonable_seed(seed), protocol={"kind": "generation", "t_f": t_f,
                                                          "t_eq": t_eq if t_eq is not None else t_f},
                      dtype=tr.dtype)
