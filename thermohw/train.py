"""Digital training (Whitelam 2025, Eqs. 8-11): maximise the probability that the computer
generates the time-reverse of noising trajectories.

For a recorded step x -> x' of a noising trajectory, the reverse step x' -> x under the
computer has  -ln P = sum_i (Delta_i)^2 / (4 mu_i kT_i dt)  with
Delta_i = -(x'_i - x_i) + mu_i dt dV/dx_i(x'),  so with r_i = Delta_i / (2 kT_i):
    d(-ln P)/dJ_ij = r_i x'_j + r_j x'_i,     d(-ln P)/db_i = r_i
(evaluated at the step's END point x'). Summed over all steps and trajectories of a batch,
these are two matrix products. Update: theta <- theta - alpha * gradient, alpha = (dt/t_f)/sqrt(batch).

Speed (benchmarks/README.md): the noising trajectories do not depend on the couplings, so the
trainer draws those of a group of cycles side by side, one (cycles x batch, N) array per step,
each cycle from its own stream seeded by (seed, cycle): results do not depend on the group size
and a resumed run repeats a straight one bit for bit. The gradient skips the
visible-visible block when the model has none, and its step chunks run on all cores.
"""
from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .computer import Computer
from .data import Digits
from .errors import DivergenceError, InputError
from .io import load_record, save_record
from .langevin import euler_limits, noising, noising_field, steps_for, generate
from .resources import available_bytes, check_memory
from .chipaware import hooks
from .chipspec import ChipSpec
from .metrics import digit_scores

STATE_SCHEMA = "thermohw.trainstate/1"
_CHUNK_ELEMS = 4_000_000  # step-chunk size for the gradient (bounds memory at ~100 MB)
# Noising trajectories of several cycles are drawn side by side (one (cycles x N) array per
# step); a group's recorded steps are held at once, so its size comes from a memory budget.
_GROUP_BYTES = 512 * 10 ** 6   # at most this much (and a quarter of the free memory)
_GROUP_MAX = 32                # beyond this the per-step Python overhead is already negligible
_NOISE_STEPS = 16             # steps of noise drawn per generator call (fewer calls; same stream)
_BLOCK_PRODUCTS = True         # skip the product blocks the mask leaves empty (False: dense, for benchmarks)
NOISE_SEED_TAG = 0x4E4F4953    # "NOIS": cycle k's noising draws from SeedSequence([seed, tag, k])
NOISE_STREAM = "per-cycle/1"   # the random-stream layout, recorded in checkpoints


HIDDEN_TARGETS = ("pixels", "classes")


def hidden_targets(kind: str, amplitude: float, digits: Digits, pick: np.ndarray, n_hidden: int) -> np.ndarray:
    """What the hidden units are noised towards, (len(pick), n_hidden), for training images
    ``digits.patterns[pick]``; the imposed bias is -bias_scale times it.

    ``pixels`` (the paper): hidden unit j copies pixel j mod Nv, times ``amplitude`` (1 in the
    paper). ``classes``: hidden unit j is a class unit of the (j mod k)-th distinct label; it is
    pushed to +amplitude when the image has that label and to -amplitude/(k-1) otherwise (a
    zero-sum one-hot code). Class units give every digit the same number of hidden units at the
    same amplitude, so no digit's basin dominates; pixel copies favour the digit whose bright
    pixels they happen to copy (docs/mnist-chip.md)."""
    pick = np.asarray(pick, dtype=np.int64)
    if kind == "pixels":
        idx = np.arange(n_hidden) % digits.n_pixels
        return amplitude * digits.patterns[pick][:, idx]
    if kind == "classes":
        classes = np.unique(digits.labels)
        k = classes.size
        if k < 2:
            raise InputError("class units need training digits with at least two different labels")
        if n_hidden < k or n_hidden % k:
            raise InputError(f"class units: {n_hidden} hidden units cannot be shared equally by {k} labels; "
                             f"use a multiple of {k} (--hidden {max(k, n_hidden - n_hidden % k)})")
        own = np.searchsorted(classes, digits.labels[pick])           # class of each picked image
        unit = np.arange(n_hidden) % k                                  # class of each hidden unit
        return np.where(own[:, None] == unit[None, :], amplitude, -amplitude / (k - 1))
    raise InputError(f"hidden targets {kind!r}; use one of {', '.join(HIDDEN_TARGETS)}")


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule. Defaults are the paper's protocol (docs/design.md#protocol).
    ``hidden_targets`` / ``hidden_amplitude``: what the hidden units are noised towards
    (:func:`hidden_targets`; the paper: ``pixels``, 1). ``average_from``: the trained model is
    the mean of the iterates after this cycle (Polyak-Ruppert tail averaging; None: the last
    iterate, as in the paper). Plain SGD at the paper's step size leaves the parameters
    wandering; on the crossbar chip the generated mode shares of successive checkpoints
    differ by tens of per cent, far beyond sampling error, and the tail average removes that.
    ``score_every`` / ``score_runs``: every this many cycles (None: max(50, cycles // 10), which keeps
    scoring under ~10 % of training time on small models; 0: never) generate ``score_runs`` samples with the current model and record their mean best
    |corr| and margin (:func:`quick_score`; own seed, so training is unchanged by it)."""

    cycles: int = 100
    batch: int = 1
    t_f: float = 2.5
    dt: float = 1e-3
    decay_fraction: float = 0.75
    bias_scale: float = 2.0
    t_eq: float | None = None
    learning_rate: float | None = None
    seed: int = 0
    checkpoint_every: int = 10
    hidden_targets: str = "pixels"
    hidden_amplitude: float = 1.0
    average_from: int | None = None
    score_every: int | None = None
    score_runs: int = 16

    def __post_init__(self) -> None:
        if self.cycles < 0:
            raise InputError("cycles must be >= 0")
        if self.batch < 1:
            raise InputError("batch must be >= 1")
        if not (self.dt > 0 and self.t_f > 0):
            raise InputError("dt and t_f must be > 0")
        steps_for(self.t_f, self.dt)
        if not 0 < self.decay_fraction <= 1:
            raise InputError("decay_fraction must be in (0, 1]")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise InputError("learning_rate must be > 0")
        if self.checkpoint_every < 1:
            raise InputError("checkpoint_every must be >= 1")
        if self.hidden_targets not in HIDDEN_TARGETS:
            raise InputError(f"hidden_targets = {self.hidden_targets!r}; use one of {', '.join(HIDDEN_TARGETS)}")
        if not (math.isfinite(self.hidden_amplitude) and self.hidden_amplitude > 0):
            raise InputError(f"hidden_amplitude = {self.hidden_amplitude!r}; it must be a number > 0")
        if self.average_from is not None and (isinstance(self.average_from, bool) or
                                              int(self.average_from) != self.average_from or self.average_from < 0):
            raise InputError(f"average_from = {self.average_from!r}; use a cycle number >= 0 (or None: no averaging)")
        if self.average_from is not None and self.cycles and self.average_from >= self.cycles:
            raise InputError(f"average_from = {self.average_from} leaves nothing to average in {self.cycles} cycles; "
                             "use a cycle number below --cycles")
        if self.score_every is not None and (isinstance(self.score_every, bool) or self.score_every < 0):
            raise InputError(f"score_every = {self.score_every!r}; use a cycle count >= 0 (0: no scoring)")
        if isinstance(self.score_runs, bool) or int(self.score_runs) != self.score_runs or self.score_runs < 2:
            raise InputError(f"score_runs = {self.score_runs!r}; use 2 or more samples per score")

    @property
    def score_interval(self) -> int:
        """Cycles between quick generation scores (0: none)."""
        return max(50, self.cycles // 10) if self.score_every is None else int(self.score_every)

    @property
    def lr(self) -> float:
        """alpha = (dt / t_f) / sqrt(batch) unless set explicitly."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return (self.dt / self.t_f) / math.sqrt(self.batch)


# ---------------------------------------------------------------------------------------------
# the reverse-path likelihood
# ---------------------------------------------------------------------------------------------
def _check_path(c: Computer, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3 or X.shape[2] != c.n_units or X.shape[0] < 2:
        raise InputError(f"path must be (steps+1, runs, {c.n_units}), got {X.shape}")
    return X


def reverse_action(c: Computer, X: np.ndarray, dt: float) -> float:
    """-ln P~ (without its constant) of the time-reversed path ``X`` (steps+1, runs, N)."""
    X = _check_path(c, X)
    d = -(X[1:] - X[:-1]) + c.mu * dt * c.grad(X[1:])
    return float(np.sum(d * d / (4.0 * c.mu * c.kT * dt)))


def path_gradient(c: Computer, X: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Gradient of :func:`reverse_action` w.r.t. J (symmetric: entry ij is the derivative with
    respect to the single parameter J_ij = J_ji) and b, and the action itself.
    Not masked: the caller applies the connectivity and trainability masks."""
    X = _check_path(c, X)
    K, R, N = X.shape[0] - 1, X.shape[1], X.shape[2]
    G = np.zeros((N, N))
    gb = np.zeros(N)
    action = 0.0
    chunk = max(1, _CHUNK_ELEMS // (R * N))
    for k0 in range(0, K, chunk):
        k1 = min(K, k0 + chunk)
        xe = X[k0 + 1:k1 + 1].reshape(-1, N)          # end points x'
        d = c.mu * dt * c.grad(xe)
        d -= (X[k0 + 1:k1 + 1] - X[k0:k1]).reshape(-1, N)
        action += float(np.sum(d * d / (4.0 * c.mu * c.kT * dt)))
        r = d / (2.0 * c.kT)
        G += r.T @ xe
        gb += r.sum(axis=0)
    return G + G.T, gb, action


def _blocks_apply(at: Computer, mask: np.ndarray) -> bool:
    """Whether the visible-visible block is empty both in the couplings the forces use and in
    the couplings being trained (the paper's and every bipartite topology)."""
    nv = at.n_visible
    return (_BLOCK_PRODUCTS and 0 < nv < at.n_units and not mask[:nv, :nv].any()
            and not at.J[:nv, :nv].any())


_LANES = 4  # fixed partial sums of the gradient: the result does not depend on the thread count


def fast_path_gradient(c: Computer, X: np.ndarray, dt: float, *, skip_visible: bool = False,
                       threads: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`path_gradient`, equal up to rounding, computed for training speed.

    ``skip_visible``: the computer has no visible-visible couplings (checked) and that block of
    the gradient is left at zero, so the products run over the visible-hidden and hidden-hidden
    blocks only (on the paper's 784 + 512 computer, 63 % of the dense FLOPs). The steps are
    split into chunks dealt to ``_LANES`` fixed partial sums, added in lane order; the lanes run
    on ``threads`` threads (default: the cores) with single-threaded BLAS each, so the
    elementwise work uses every core too. With r = Delta / (2 kT) and a = mu dt / (2 kT):
    r = x' (J a) + a (b + 2 J2 x' + 4 J4 x'^3) - (x' - x) / (2 kT), and the action is
    sum kT r^2 / (mu dt)."""
    X = _check_path(c, X)
    K, R, N = X.shape[0] - 1, X.shape[1], X.shape[2]
    nv = c.n_visible if skip_visible else 0
    if nv and c.J[:nv, :nv].any():
        raise InputError("skip_visible needs a computer without visible-visible couplings")
    V, H = slice(0, nv), slice(nv, N)
    kT, mu = np.broadcast_to(c.kT, (N,)), np.broadcast_to(c.mu, (N,))
    a, s, w = mu * dt / (2.0 * kT), 1.0 / (2.0 * kT), kT / (mu * dt)
    JHa = c.J[:, H] * a[H]            # forces on the hidden units (scaled): x' @ J[:, H]
    JVa = c.J[H, V] * a[V]            # forces on the visible units: x'_H @ J[H, V]
    c2, c4, ab = a * 2.0 * c.J2, a * 4.0 * c.J4, a * c.b
    lanes = min(_LANES, K)
    chunk = max(1, min(-(-K // lanes), _CHUNK_ELEMS // 4 // (R * N)))  # ~4 arrays per lane in flight
    starts = list(range(0, K, chunk))

    def lane(first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        M = np.zeros((N - nv, N))     # r_H^T x'   : rows H of G = r^T x'
        Q = np.zeros((nv, N - nv))    # r_V^T x'_H : block (V, H) of G
        gb, act = np.zeros(N), 0.0
        for k0 in starts[first::lanes]:
            k1 = min(K, k0 + chunk)
            xe = X[k0 + 1:k1 + 1].reshape(-1, N)
            u = np.multiply(xe, xe)   # on-site, bias and step terms, in place
            u *= c4
            u += c2
            u *= xe
            u += ab
            dx = np.subtract(xe, X[k0:k1].reshape(-1, N))
            dx *= s
            u -= dx
            rH = xe @ JHa
            rH += u[:, H]
            rV = xe[:, H] @ JVa
            rV += u[:, V]
            act += float(np.einsum("ki,ki->i", rH, rH) @ w[H] + np.einsum("ki,ki->i", rV, rV) @ w[V])
            gb[H] += rH.sum(axis=0)
            gb[V] += rV.sum(axis=0)
            M += rH.T @ xe
            Q += rV.T @ xe[:, H]
        return M, Q, gb, act

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, min(int(threads), lanes))
    if threads == 1:
        parts = [lane(i) for i in range(lanes)]
    else:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(lane, range(lanes)))
    M, Q, gb, act = parts[0]
    for Mi, Qi, gbi, acti in parts[1:]:
        M += Mi
        Q += Qi
        gb += gbi
        act += acti
    G = np.zeros((N, N))
    G[V, H] = Q + M[:, V].T
    G[H, V] = G[V, H].T
    G[H, H] = M[:, H] + M[:, H].T
    return G, gb, act


# ---------------------------------------------------------------------------------------------
# training state (checkpoint) and loop
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TrainState:
    """Everything needed to continue training exactly where it stopped."""

    computer: Computer
    digits: Digits
    config: TrainConfig
    cycle: int = 0
    # the noising streams' layout ({"stream": NOISE_STREAM}); cycle k draws from cycle_rng(seed, k),
    # so nothing else is needed to resume. Older checkpoints hold one generator's state here.
    rng_state: dict | None = None
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    # chip-aware training settings: None = plain float training. Stored in the checkpoint so a
    # resumed run rebuilds the same forward/project hooks.
    chip: ChipSpec | None = None
    # tail average (config.average_from): sums of J and b over the iterates averaged so far
    avg_J: np.ndarray | None = None
    avg_b: np.ndarray | None = None
    avg_count: int = 0
    # quick generation scores (config.score_every): rows (cycle, mean best |corr|, mean margin, n)
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def averaged(self) -> Computer:
        """The tail-averaged model (the last iterate when nothing was averaged)."""
        if not self.avg_count:
            return self.computer
        return self.computer.replace(J=self.avg_J / self.avg_count, b=self.avg_b / self.avg_count)

    def save(self, path: str | Path) -> Path:
        c = self.computer
        header = {"cycle": self.cycle, "rng_state": self.rng_state, "config": asdict(self.config),
                  "seconds": self.seconds, "chip": None if self.chip is None else self.chip.to_dict(),
                  "avg_count": self.avg_count,
                  "computer": {"n_visible": c.n_visible, "image_shape": c.image_shape, "meta": c.meta},
                  "digits": {"image_shape": self.digits.image_shape, "source": self.digits.source,
                             "origin": self.digits.origin, "indices": self.digits.indices,
                             "pixels": self.digits.pixels}}
        arrays = {f"c_{k}": getattr(c, k) for k in ("J", "b", "mask", "J2", "J4", "mu", "kT",
                                                     "bias_trainable")}
        if c.placement is not None:
            arrays["c_placement"] = c.placement
        arrays.update(d_patterns=self.digits.patterns, d_labels=self.digits.labels, losses=self.losses)
        if self.avg_count:
            arrays.update(avg_J=self.avg_J, avg_b=self.avg_b)
        arrays["scores"] = np.asarray(self.scores, dtype=np.float64).reshape(-1, 4)
        return save_record(path, STATE_SCHEMA, header, arrays)

    @classmethod
    def load(cls, path: str | Path) -> "TrainState":
        h, a = load_record(path, STATE_SCHEMA)
        try:
            comp = Computer.from_parts(h["computer"], {k[2:]: v for k, v in a.items() if k.startswith("c_")},
                                       source=path)
            digits = Digits(a["d_patterns"], a["d_labels"], tuple(h["digits"]["image_shape"]),
                            h["digits"].get("source", ""), h["digits"].get("origin"), h["digits"].get("indices"),
                            h["digits"].get("pixels", "standard"))
            cfg = TrainConfig(**h["config"])
            n_avg = int(h.get("avg_count", 0))
            return cls(comp, digits, cfg, int(h["cycle"]), h.get("rng_state"), a["losses"],
                       float(h.get("seconds", 0.0)),
                       ChipSpec.from_dict(h["chip"], f"{path}: chip") if h.get("chip") is not None else None,
                       a["avg_J"] if n_avg else None, a["avg_b"] if n_avg else None, n_avg,
                       a["scores"].reshape(-1, 4) if "scores" in a else np.zeros((0, 4)))
        except (KeyError, TypeError) as e:
            raise InputError(f"{path}: incomplete training checkpoint ({e})") from None


def new_state(digits: Digits, config: TrainConfig, *, n_hidden: int, connectivity: str = "paper",
              mask: np.ndarray | None = None, J2: float = 1.0, J4: float = 1.0, mu: float = 1.0,
              kT: float = 0.1) -> TrainState:
    """A fresh training run: all couplings and biases zero (as in the paper)."""
    c = Computer.zeros(digits.n_pixels, n_hidden, connectivity=connectivity, mask=mask, J2=J2, J4=J4,
                       mu=mu, kT=kT, image_shape=digits.image_shape,
                       meta={"digits": digits.source, "labels": digits.labels.tolist(),
                             "connectivity": connectivity if mask is None else "custom"})
    hidden_targets(config.hidden_targets, config.hidden_amplitude, digits, np.zeros(1, np.int64), n_hidden)  # validate
    return TrainState(c, digits, config)


def noising_batch(c: Computer, digits: Digits, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """A batch of noising trajectories (steps+1, batch, N) drawn from ``rng`` with
    :func:`thermohw.langevin.noising` (for evaluation; the trainer draws its own with
    :func:`noising_cycles`)."""
    pick = rng.integers(0, digits.patterns.shape[0], size=cfg.batch)
    return noising(c, digits.patterns[pick], t_f=cfg.t_f, dt=cfg.dt, seed=rng,
                   decay_fraction=cfg.decay_fraction, scale=cfg.bias_scale, t_eq=cfg.t_eq,
                   field=imposed_field(c, digits, pick, cfg)).x


def imposed_field(c: Computer, digits: Digits, pick: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """The noising protocol's imposed field for training images ``pick``, (len(pick), N):
    -bias_scale * P on the visible units, -bias_scale * (the hidden targets) on the hidden."""
    if cfg.hidden_targets == "pixels" and cfg.hidden_amplitude == 1.0:  # the paper, bit for bit
        return noising_field(digits.patterns[pick], c.n_units, c.n_visible, cfg.bias_scale)
    h = hidden_targets(cfg.hidden_targets, cfg.hidden_amplitude, digits, pick, c.n_hidden)
    return -cfg.bias_scale * np.concatenate([digits.patterns[pick], h], axis=1)


# ---------------------------------------------------------------------------------------------
# noising trajectories of many cycles side by side
# ---------------------------------------------------------------------------------------------
def cycle_rng(cfg: TrainConfig, cycle: int) -> np.random.Generator:
    """Cycle ``cycle``'s own random stream: it picks the cycle's training images, then draws its
    noise. A cycle's trajectories depend on (seed, cycle) only, so they are the same whichever
    cycles are drawn beside them and wherever a run was interrupted and resumed."""
    return np.random.default_rng(np.random.SeedSequence([int(cfg.seed), NOISE_SEED_TAG, int(cycle)]))


def cycle_bytes(n_units: int, cfg: TrainConfig) -> int:
    """Memory of one cycle's recorded noising trajectories."""
    return 8 * (steps_for(cfg.t_f, cfg.dt) + 1) * cfg.batch * n_units


def cycles_per_group(n_units: int, cfg: TrainConfig, remaining: int) -> int:
    """How many cycles' noising trajectories to draw side by side: as many as fit in
    ``_GROUP_BYTES`` and a quarter of the memory free now, at most ``_GROUP_MAX`` (results do
    not depend on it)."""
    budget = min(_GROUP_BYTES, available_bytes() // 4)
    return int(max(1, min(_GROUP_MAX, remaining, budget // cycle_bytes(n_units, cfg))))


def noising_cycles(units: Computer, digits: Digits, cfg: TrainConfig, first: int, n: int, *,
                   out: np.ndarray | None = None, threads: int | None = None,
                   stop: "threading.Event | None" = None) -> np.ndarray:
    """The noising trajectories of cycles ``first .. first+n-1``, (n, steps+1, batch, N): each
    cycle's ``batch`` images picked and its noise drawn from :func:`cycle_rng`, all cycles
    advanced together, one (n * batch, N) array per step, by ``threads`` threads (default: the
    cores) that each own whole cycles. The protocol is :func:`thermohw.langevin.noising`'s
    (coupling-free computer, ``t_eq`` under the fixed field, then ``t_f`` with the field
    decaying to 0 at decay_fraction * t_f; the second phase recorded), integrated with the
    on-site drift fused into one multiply: equal to ``noising`` driven by the same noise up to
    rounding. ``out``: an array of that shape to fill (reused between groups: no page faults).
    ``stop``: an Event that abandons the work (Ctrl-C in the caller)."""
    N, B = units.n_units, cfg.batch
    n_eq = steps_for(cfg.t_eq if cfg.t_eq is not None else cfg.t_f, cfg.dt)
    n_steps = steps_for(cfg.t_f, cfg.dt)
    out = _trajectory_buffer(out, (n, n_steps + 1, B, N))
    free = units.coupling_free()
    margin, xmax = euler_limits(free, cfg.dt)
    if margin >= 2.0:
        raise DivergenceError(f"dt = {cfg.dt:g} is beyond the Euler stability limit of the on-site terms "
                              f"(mu*dt*2*J2 = {margin:.3g} >= 2); use dt < {2.0 * cfg.dt / margin:.3g}")
    rngs = [cycle_rng(cfg, first + i) for i in range(n)]
    fields = np.concatenate([imposed_field(units, digits, g.integers(0, digits.patterns.shape[0], size=B), cfg)
                             for g in rngs]) if n else np.zeros((0, N))
    # x' = x - mu dt (2 J2 x + 4 J4 x^3 + e(t) h) + sqrt(2 mu kT dt) xi
    #    = x (c1 + c3 x^2) + e(t) mh + sigma xi
    mudt = free.mu * cfg.dt
    c1 = np.broadcast_to(1.0 - mudt * 2.0 * free.J2, (N,)).copy()
    c3 = np.broadcast_to(-mudt * 4.0 * free.J4, (N,)).copy()
    sigma = np.broadcast_to(np.sqrt(2.0 * free.mu * free.kT * cfg.dt), (N,)).copy()
    t_off = cfg.decay_fraction * cfg.t_f
    stop = stop if stop is not None else threading.Event()

    def run(i0: int, i1: int) -> None:
        nc, total = i1 - i0, n_eq + n_steps
        mh = -mudt * fields[i0 * B:i1 * B].reshape(nc, B, N)
        x = np.zeros((nc, B, N))
        tmp = np.empty_like(x)
        xi = np.empty((nc, _NOISE_STEPS, B, N))  # each cycle's noise, _NOISE_STEPS steps per draw
        rec = out[i0:i1]
        for k in range(total):
            j = k % _NOISE_STEPS
            if j == 0:  # one call per cycle per block of steps: the stream order is the step order
                s = min(_NOISE_STEPS, total - k)
                for i in range(nc):
                    rngs[i0 + i].standard_normal(out=xi[i, :s])
                xi[:, :s] *= sigma
            if k >= n_eq:
                rec[:, k - n_eq] = x
            e = 1.0 if k < n_eq else max(0.0, 1.0 - (k - n_eq) * cfg.dt / t_off)
            np.multiply(x, x, out=tmp)
            tmp *= c3
            tmp += c1
            x *= tmp
            if e == 1.0:
                x += mh
            elif e != 0.0:
                np.multiply(mh, e, out=tmp)
                x += tmp
            x += xi[:, j]
            if (k + 1) % 25 == 0:
                if stop.is_set():
                    return
                m = float(np.max(np.abs(x))) if x.size else 0.0
                if not m < xmax:  # also NaN
                    raise DivergenceError(f"a noising trajectory ran away (max |x| = {m:.3g} > {xmax:.3g}); "
                                          f"reduce dt (e.g. to {cfg.dt / 4:g})")
        rec[:, n_steps] = x

    if threads is None:  # small groups are bound by Python overhead, which threads do not share
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = cpus if n * B * N >= 4096 else 1
    _run_cycle_groups(run, n, max(1, min(int(threads), n)), stop)
    return out


def _trajectory_buffer(out: np.ndarray | None, shape: tuple) -> np.ndarray:
    """noising_cycles' output array: ``out`` when it has ``shape`` (float64), else a new one
    (after the memory check)."""
    if out is None:
        check_memory(8 * math.prod(shape), f"noising trajectories of {shape[0]} training cycles",
                     "use fewer --hidden units, a smaller --batch or a larger --dt")
        return np.empty(shape)
    if out.shape != shape or out.dtype != np.float64:
        raise InputError(f"noising_cycles: out has shape {out.shape}; expected {shape}")
    return out


def _run_cycle_groups(run: Callable[[int, int], None], n: int, threads: int, stop: threading.Event) -> None:
    """run(i0, i1) over cycles 0..n split evenly between ``threads`` threads; an error or Ctrl-C
    in one sets ``stop`` for the others."""
    edges = np.linspace(0, n, threads + 1).round().astype(int)
    with np.errstate(over="ignore", invalid="ignore"):
        if threads == 1:
            run(0, n)
        else:
            with ThreadPoolExecutor(threads) as ex:
                futs = [ex.submit(run, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
                try:
                    for f in futs:
                        f.result()
                except BaseException:
                    stop.set()  # Ctrl-C or an error: the other threads stop within 25 steps
                    raise


def sgd_update(c: Computer, X: np.ndarray, cfg: TrainConfig) -> tuple[Computer, float]:
    """One SGD step on the reverse-path action of the recorded batch ``X``; returns the new
    computer and the action per unit and step (0.5 for a perfect model, see docs)."""
    return sgd_update_at(c, c, X, cfg)


def sgd_update_at(c: Computer, at: Computer, X: np.ndarray, cfg: TrainConfig) -> tuple[Computer, float]:
    """One SGD step whose gradient is evaluated at the model ``at`` (a quantised or
    mismatch-perturbed view of ``c``, same mask) and applied to ``c`` (the float "shadow" or
    nominal parameters): the straight-through estimator. ``at is c`` is :func:`sgd_update`."""
    gJ, gb, action = fast_path_gradient(at, X, cfg.dt, skip_visible=_blocks_apply(at, c.mask))
    lr = cfg.lr
    J = c.J - lr * np.where(c.mask, gJ, 0.0)  # exactly symmetric and zero off the mask, as c.J
    b = c.b - lr * np.where(c.bias_trainable, gb, 0.0)
    if not (np.all(np.isfinite(J)) and np.all(np.isfinite(b))):
        raise InputError("training diverged (non-finite couplings); lower the learning rate")
    return c._trained_step(J, b), action / (X.shape[0] - 1) / X.shape[1] / c.n_units


def train_cycle(c: Computer, digits: Digits, cfg: TrainConfig, cycle: int) -> tuple[Computer, float]:
    """Cycle ``cycle`` of :func:`train` on its own: one SGD update from that cycle's noising
    trajectories."""
    return sgd_update(c, noising_cycles(c, digits, cfg, int(cycle), 1)[0], cfg)


SCORE_SEED_TAG = 0x53434F52  # "SCOR": quick scores draw from their own stream, never training's


def quick_score(c: Computer, digits: Digits, cfg: TrainConfig, cycle: int) -> tuple[float, float]:
    """Mean best |corr| with a training digit and mean margin to the second best of
    ``cfg.score_runs`` samples generated by ``c`` (the paper's protocol at the training t_f,
    dt); seeded by (seed, tag, cycle) so a resumed run scores the same samples."""

    tr = generate(c, int(cfg.score_runs), t_f=cfg.t_f, dt=cfg.dt, stratonovich=False, threads=1,
                  seed=np.random.SeedSequence([cfg.seed, SCORE_SEED_TAG, int(cycle)]))
    sc = digit_scores(tr.x_final[:, :c.n_visible], digits.patterns, digits.labels)
    return float(sc["mean_best_abs_corr"]), float(sc["mean_margin"])


def train(state: TrainState, *, checkpoint: str | Path | None = None, progress: bool = True,
          on_cycle: Callable[[TrainState], None] | None = None,
          forward: Callable[[Computer, int], Computer] | None = None,
          project: Callable[[Computer], Computer] | None = None) -> TrainState:
    """Run the remaining cycles of ``state``; write a checkpoint atomically every
    ``checkpoint_every`` cycles, at the end and on interruption (Ctrl-C).

    ``forward(c, cycle)`` gives the model at which each cycle's path gradient is evaluated
    (default: ``c`` itself); the update is applied to ``c``. ``project(c)`` is applied after
    each update. Both must be deterministic functions of their arguments (resume stays exact).
    When ``state.chip`` is set and no hooks are given, they are rebuilt from it
    (:func:`thermohw.chipaware.hooks`).

    Each cycle's noising trajectories come from its own stream (:func:`cycle_rng`); groups of
    cycles (:func:`cycles_per_group`) are drawn side by side before their updates run. A
    checkpoint written by an older version (one stream for the whole run, ``rng_state`` a
    generator state) resumes on the per-cycle streams from its cycle on."""
    cfg = state.config
    if state.chip is not None and forward is None and project is None:
        forward, project = hooks(state.chip)
    c, losses, cycle = state.computer, list(state.losses.tolist()), state.cycle
    t_start, sec0 = time.perf_counter(), state.seconds

    avg_J = None if state.avg_J is None else np.array(state.avg_J, dtype=np.float64)
    avg_b = None if state.avg_b is None else np.array(state.avg_b, dtype=np.float64)
    avg_count = state.avg_count
    scores = [tuple(r) for r in np.asarray(state.scores, dtype=np.float64).reshape(-1, 4)]
    every = cfg.score_interval if state.digits.patterns.shape[0] and c.n_visible == state.digits.n_pixels else 0

    def snapshot() -> TrainState:
        return TrainState(c, state.digits, cfg, cycle, {"stream": NOISE_STREAM}, np.asarray(losses, float),
                          sec0 + time.perf_counter() - t_start, state.chip,
                          None if avg_J is None else avg_J.copy(), None if avg_b is None else avg_b.copy(), avg_count,
                          np.array(scores, dtype=np.float64).reshape(-1, 4))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.cycles, initial=cycle, desc="train", unit="cycle", dynamic_ncols=True)
    units = c  # noising uses only the untrained on-site parameters (J2, J4, mu, kT)
    group = cycles_per_group(c.n_units, cfg, cfg.cycles - cycle) if cycle < cfg.cycles else 1
    buf = None  # one group's trajectories, reused by the next group
    todo: list[np.ndarray] = []
    try:
        while cycle < cfg.cycles:
            if not todo:
                buf, todo = _next_group(units, state.digits, cfg, cycle, group, buf)
            new_c, loss = _updated(c, todo.pop(0), cfg, cycle, forward, project)
            new_avg = (avg_J, avg_b, avg_count)
            if cfg.average_from is not None and cycle + 1 > cfg.average_from:
                new_avg = (new_c.J if avg_J is None else avg_J + new_c.J,
                           new_c.b if avg_b is None else avg_b + new_c.b, avg_count + 1)
            # one statement commits the cycle: a Ctrl-C lands before or after it, never halfway,
            # so the checkpoint written on interruption is a consistent state (resume stays exact)
            c, cycle, losses, (avg_J, avg_b, avg_count) = new_c, cycle + 1, losses + [loss], new_avg
            if every and (cycle % every == 0 or cycle == cfg.cycles) and (not scores or scores[-1][0] < cycle):
                # the model as it would be saved now (tail average once averaging has begun)
                now = c if not avg_count else c.replace(J=avg_J / avg_count, b=avg_b / avg_count)
                scores.append((cycle, *quick_score(now, state.digits, cfg, cycle), cfg.score_runs))
            if bar is not None:
                _show_cycle(bar, loss, scores)
            if checkpoint is not None and (cycle % cfg.checkpoint_every == 0 or cycle == cfg.cycles):
                snapshot().save(checkpoint)
            if on_cycle is not None:
                on_cycle(snapshot())
    except KeyboardInterrupt:
        if checkpoint is not None:
            snapshot().save(checkpoint)
        raise
    finally:
        if bar is not None:
            bar.close()
    return snapshot()


def _next_group(units: Computer, digits: Digits, cfg: TrainConfig, cycle: int, group: int,
                buf: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The noising trajectories of the next group of cycles from ``cycle`` on, one array per
    cycle, in ``buf`` (allocated on first use, after the memory check)."""
    left = cfg.cycles - cycle
    n = -(-left // -(-left // group))  # groups of equal size: no short, slow last group
    if buf is None:
        check_memory(group * cycle_bytes(units.n_units, cfg) + 10 ** 8,
                     f"training on noising trajectories of {group} cycles at a time",
                     "use fewer --hidden units, a smaller --batch or a larger --dt")
        buf = np.empty((group, steps_for(cfg.t_f, cfg.dt) + 1, cfg.batch, units.n_units))
    return buf, list(noising_cycles(units, digits, cfg, cycle, n, out=buf[:n]))


def _updated(c: Computer, X: np.ndarray, cfg: TrainConfig, cycle: int, forward, project) -> tuple[Computer, float]:
    """One cycle's update of ``c`` on its trajectories X (gradient at forward(c, cycle) when
    given, then project), and the loss; non-finite couplings are refused."""
    if forward is None:
        new_c, loss = sgd_update(c, X, cfg)
    else:
        new_c, loss = sgd_update_at(c, forward(c, cycle), X, cfg)
    if project is not None:
        new_c = project(new_c)
    if not np.all(np.isfinite(new_c.J)):
        raise InputError("training diverged (non-finite couplings); lower the learning rate")
    return new_c, loss


def _show_cycle(bar, loss: float, scores: list) -> None:
    bar.update(1)
    post = {"excess": f"{loss - 0.5:.2e}"}
    if scores:
        post.update(corr=f"{scores[-1][1]:.3f}", margin=f"{scores[-1][2]:.3f}")
    bar.set_postfix(post)
