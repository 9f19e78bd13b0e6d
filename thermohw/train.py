"""Digital training (Whitelam 2025, Eqs. 8-11): maximise the probability that the computer
generates the time-reverse of noising trajectories.

For a recorded step x -> x' of a noising trajectory, the reverse step x' -> x under the
computer has  -ln P = sum_i (Delta_i)^2 / (4 mu_i kT_i dt)  with
Delta_i = -(x'_i - x_i) + mu_i dt dV/dx_i(x'),  so with r_i = Delta_i / (2 kT_i):
    d(-ln P)/dJ_ij = r_i x'_j + r_j x'_i,     d(-ln P)/db_i = r_i
(evaluated at the step's END point x'). Summed over all steps and trajectories of a batch,
these are two matrix products. Update: theta <- theta - alpha * gradient, alpha = (dt/t_f)/sqrt(batch).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .computer import Computer
from .data import Digits
from .errors import InputError
from .io import load_record, save_record
from .langevin import noising, noising_field, steps_for

STATE_SCHEMA = "thermohw.trainstate/1"
_CHUNK_ELEMS = 4_000_000  # step-chunk size for the gradient (bounds memory at ~100 MB)


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
    rng_state: dict | None = None
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    # chip-aware training settings (thermohw.chipaware.chip_spec): None = plain float training.
    # Stored in the checkpoint so a resumed run rebuilds the same forward/project hooks.
    chip: dict | None = None
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
                  "seconds": self.seconds, "chip": self.chip, "avg_count": self.avg_count,
                  "computer": {"n_visible": c.n_visible, "image_shape": c.image_shape, "meta": c.meta},
                  "digits": {"image_shape": self.digits.image_shape, "source": self.digits.source,
                             "origin": self.digits.origin, "indices": self.digits.indices}}
        arrays = {f"c_{k}": getattr(c, k) for k in ("J", "b", "mask", "J2", "J4", "mu", "kT",
                                                     "bias_trainable")}
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
                            h["digits"].get("source", ""), h["digits"].get("origin"), h["digits"].get("indices"))
            cfg = TrainConfig(**h["config"])
            n_avg = int(h.get("avg_count", 0))
            return cls(comp, digits, cfg, int(h["cycle"]), h.get("rng_state"), a["losses"],
                       float(h.get("seconds", 0.0)), h.get("chip"),
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
    """A batch of noising trajectories (steps+1, batch, N). They do not depend on the
    couplings being trained, so the trainer draws the next batch while it updates."""
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


def sgd_update(c: Computer, X: np.ndarray, cfg: TrainConfig) -> tuple[Computer, float]:
    """One SGD step on the reverse-path action of the recorded batch ``X``; returns the new
    computer and the action per unit and step (0.5 for a perfect model, see docs)."""
    return sgd_update_at(c, c, X, cfg)


def sgd_update_at(c: Computer, at: Computer, X: np.ndarray, cfg: TrainConfig) -> tuple[Computer, float]:
    """One SGD step whose gradient is evaluated at the model ``at`` (a quantised or
    mismatch-perturbed view of ``c``, same mask) and applied to ``c`` (the float "shadow" or
    nominal parameters): the straight-through estimator. ``at is c`` is :func:`sgd_update`."""
    gJ, gb, action = path_gradient(at, X, cfg.dt)
    lr = cfg.lr
    new = c.replace(J=c.J - lr * np.where(c.mask, gJ, 0.0), b=c.b - lr * np.where(c.bias_trainable, gb, 0.0))
    return new, action / (X.shape[0] - 1) / X.shape[1] / c.n_units


def train_cycle(c: Computer, digits: Digits, cfg: TrainConfig,
                rng: np.random.Generator) -> tuple[Computer, float]:
    """One SGD update from a fresh batch of noising trajectories."""
    return sgd_update(c, noising_batch(c, digits, cfg, rng), cfg)


SCORE_SEED_TAG = 0x53434F52  # "SCOR": quick scores draw from their own stream, never training's


def quick_score(c: Computer, digits: Digits, cfg: TrainConfig, cycle: int) -> tuple[float, float]:
    """Mean best |corr| with a training digit and mean margin to the second best of
    ``cfg.score_runs`` samples generated by ``c`` (the paper's protocol at the training t_f,
    dt); seeded by (seed, tag, cycle) so a resumed run scores the same samples."""
    from .langevin import generate
    from .metrics import digit_scores

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
    (:func:`thermohw.chipaware.hooks`)."""
    cfg = state.config
    if state.chip is not None and forward is None and project is None:
        from .chipaware import hooks

        forward, project = hooks(state.chip)
    rng = np.random.default_rng(cfg.seed)
    if state.rng_state is not None:
        rng.bit_generator.state = state.rng_state
    c, losses, cycle = state.computer, list(state.losses.tolist()), state.cycle
    t_start, sec0 = time.perf_counter(), state.seconds

    avg_J = None if state.avg_J is None else np.array(state.avg_J, dtype=np.float64)
    avg_b = None if state.avg_b is None else np.array(state.avg_b, dtype=np.float64)
    avg_count = state.avg_count
    scores = [tuple(r) for r in np.asarray(state.scores, dtype=np.float64).reshape(-1, 4)]
    every = cfg.score_interval if state.digits.patterns.shape[0] and c.n_visible == state.digits.n_pixels else 0

    def snapshot() -> TrainState:
        return TrainState(c, state.digits, cfg, cycle, rng_after, np.asarray(losses, float),
                          sec0 + time.perf_counter() - t_start, state.chip,
                          None if avg_J is None else avg_J.copy(), None if avg_b is None else avg_b.copy(), avg_count,
                          np.array(scores, dtype=np.float64).reshape(-1, 4))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.cycles, initial=cycle, desc="train", unit="cycle", dynamic_ncols=True)
    rng_after = rng.bit_generator.state
    units = c  # noising uses only the untrained on-site parameters (J2, J4, mu, kT)

    def produce():
        # runs in a helper thread: the Python-bound noising loop overlaps the BLAS-bound update;
        # the random stream is consumed in exactly the serial order, and its state after each
        # batch is what a checkpoint stores, so resumed runs stay bit-identical
        X = noising_batch(units, state.digits, cfg, rng)
        return X, rng.bit_generator.state

    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    fut = pool.submit(produce) if cycle < cfg.cycles else None
    try:
        while cycle < cfg.cycles:
            X, state_next = fut.result()
            fut = pool.submit(produce) if cycle + 1 < cfg.cycles else None
            if forward is None:
                new_c, loss = sgd_update(c, X, cfg)
            else:
                new_c, loss = sgd_update_at(c, forward(c, cycle), X, cfg)
            if project is not None:
                new_c = project(new_c)
            if not np.all(np.isfinite(new_c.J)):
                raise InputError("training diverged (non-finite couplings); lower the learning rate")
            new_avg = (avg_J, avg_b, avg_count)
            if cfg.average_from is not None and cycle + 1 > cfg.average_from:
                new_avg = (new_c.J if avg_J is None else avg_J + new_c.J,
                           new_c.b if avg_b is None else avg_b + new_c.b, avg_count + 1)
            # one statement commits the cycle: a Ctrl-C lands before or after it, never halfway,
            # so the checkpoint written on interruption is a consistent state (resume stays exact);
            # rng_after: only a finished cycle moves the checkpointed stream
            c, cycle, losses, rng_after, (avg_J, avg_b, avg_count) = (new_c, cycle + 1, losses + [loss],
                                                                      state_next, new_avg)
            if every and (cycle % every == 0 or cycle == cfg.cycles) and (not scores or scores[-1][0] < cycle):
                # the model as it would be saved now (tail average once averaging has begun)
                now = c if not avg_count else c.replace(J=avg_J / avg_count, b=avg_b / avg_count)
                scores.append((cycle, *quick_score(now, state.digits, cfg, cycle), cfg.score_runs))
            if bar is not None:
                bar.update(1)
                post = {"excess": f"{loss - 0.5:.2e}"}
                if scores:
                    post.update(corr=f"{scores[-1][1]:.3f}", margin=f"{scores[-1][2]:.3f}")
                bar.set_postfix(post)
            if checkpoint is not None and (cycle % cfg.checkpoint_every == 0 or cycle == cfg.cycles):
                snapshot().save(checkpoint)
            if on_cycle is not None:
                on_cycle(snapshot())
    except KeyboardInterrupt:
        if checkpoint is not None:
            snapshot().save(checkpoint)
        raise
    finally:
        if fut is not None:
            fut.cancel()
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
    return snapshot()
