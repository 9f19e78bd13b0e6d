"""Maximum-likelihood fit of the Langevin model a chip implements, from recorded trajectories.

The likelihood is training's (``train.reverse_action``, docs/design.md#model): the Euler
transition density of each recorded step x_k -> x_{k+1} over the sample interval dt,

    x_{k+1,i} = x_{k,i} - mu_i dt [dV/dx_i(x_k) + h_i] + sqrt(2 mu_i kT_i dt) xi,

evaluated at the step's start (the forward path; training evaluates the reversed path the
same way). The drift is linear in the parameters, so for each unit i the ML estimate is the
least-squares regression of y = (x_{k+1,i} - x_{k,i}) / dt on the features

    -2 x_i, -4 x_i^3, -1, -x_j (every coupled j), [-h_i]

with coefficients beta_i = mu_i (J2_i, J4_i, b_i, K_ij, ...) [, mu_i], and the residual variance
estimates 2 mu_i kT_i / dt. Each unit's noise is independent, so the joint likelihood
factorises into these N regressions (ordinary least squares is then the exact ML solution;
weighting only enters when the two rows' estimates of one coupling are combined, below).

What is identifiable (``mobility``):

* The drift coefficients mu_i theta_i and the diffusion D_i = mu_i kT_i are; mu_i alone is
  not - scaling mu_i by c and (theta_i, kT_i) by 1/c leaves the motion unchanged.
* ``mobility="nominal"``: mu_i is fixed to a given value (the program's), and the fit reports
  the dynamically equivalent theta_i = beta_i / mu_i, kT_i = D_i / mu_i. Capacitor mismatch
  then appears as a common scale of unit i's row (and as coupling asymmetry K_ij != K_ji).
* ``mobility="bias"``: runs under different, exactly known imposed biases h (a calibrated
  reference current) make the coefficient of -h_i equal to mu_i itself, so mu_i is fitted and
  theta_i = beta_i / mu_i is in the program's energy gauge (standard errors by the delta
  method). Needs bias steps that differ between runs (``design.bias_steps``).

Couplings: each unit's row is fitted on its own, so K_ij (unit i's regression) and K_ji
(unit j's) are separate estimates - as they should be, because a chip's G_ij and G_ji are
separate elements. :attr:`Fit.J` combines them by inverse-variance weighting (the ML
estimate of a common value, since the two rows' noises are independent) and
:attr:`Fit.asymmetry_z` tests K_ij = K_ji.

Standard errors come from the Fisher information of the Euler likelihood at the estimate,
s^2 (F^T F)^-1 (observed information); :meth:`Fit.cramer_rao` evaluates the same information
at the *true* parameters and noise level (the Cramer-Rao bound, for virtual chips whose truth
is known). The fit attains the bound: over repeated recordings the RMS of (fit - truth) / CRB
is 1.0 +- 0.1 (calibration/error_vs_trajectories.py; tests/test_calibrate.py).

Discretisation: for a continuous-time chip the Euler likelihood is biased by O(lambda dt)
(lambda the local relaxation rate): the drift coefficients by ~ -lambda dt / 2 relative, the
noise level by ~ -lambda dt (measured: -3.6 % on kT for the SPICE chip at dt = 0.01). With
``discretisation="continuous"`` the least-squares solution is followed by the first-order
Ito-Taylor correction (E[dx | x] / dt = a + (dt/2) L a, Var = 2 D dt (1 + dt d_i a_i)), which
leaves O(dt^2); ``"euler"`` (default) keeps the training likelihood as it is, exact for
recordings made by Euler steps of the sample interval. :attr:`Fit.notes` warns when
lambda dt is large. Finite samples: a regression on a dynamic (autoregressive) design has an
O(1/n) bias - about 0.25 standard errors on mu at 3e4 recorded steps, 0.1 at 3e5.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from ..computer import Computer
from ..errors import InputError
from ..io import load_record, save_record
from .params import ChipParameters
from .recording import Recording

FIT_SCHEMA = "thermohw.fit/1"

MOBILITIES = ("nominal", "bias")
DISCRETISATIONS = ("euler", "continuous")
_CHUNK = 2_000_000          # elements per Gram-accumulation chunk
_MAX_COND = 1e12            # condition number of the normalised information beyond which we refuse
_EULER_WARN = 0.05


# ---------------------------------------------------------------------------------------------
# design
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Statistics:
    """Sufficient statistics of recordings for the Euler likelihood: everything :func:`fit`
    needs, additive over runs (``a + b``), so arbitrarily many runs can be fitted in bounded
    memory - record a chunk, add its statistics, drop it (``calibrate(chunk_runs=...)``).

    ZZ : (3N+1, 3N+1) Z^T Z with Z = [x (N), x^3 (N), 1, h (N)]; ZY : (3N+1, N) Z^T y with
    y = dx / dt; YY : (N,) sum y^2; n : transitions; x2 : (N,) sum x^2; h_min / h_max /
    h_first : per-unit range of the imposed biases and the first run's (which biases vary
    between runs, which are constant and nonzero)."""

    sample_interval: float
    ZZ: np.ndarray
    ZY: np.ndarray
    YY: np.ndarray
    n: int
    x2: np.ndarray
    h_min: np.ndarray
    h_max: np.ndarray
    h_first: np.ndarray

    @property
    def n_units(self) -> int:
        return self.YY.size

    @classmethod
    def of(cls, rec: Recording) -> "Statistics":
        """The statistics of one recording."""
        X = rec.x
        T, R, N = X.shape
        dt = rec.sample_interval
        F0 = 2 * N + 1
        ZZ = np.zeros((3 * N + 1, 3 * N + 1))
        ZY = np.zeros((3 * N + 1, N))
        YY = np.zeros(N)
        x2 = np.zeros(N)
        Sx = np.zeros((R, 2 * N))     # per-run sums of [x, x^3]: h is constant within a run, so the
        Sy = np.zeros((R, N))         # h blocks are h^T (per-run sums) - no h columns in the big product
        step = max(1, _CHUNK // (R * F0))
        blocks = [(t0, min(T - 1, t0 + step)) for t0 in range(0, T - 1, step)]
        # blocks run on threads with single-threaded BLAS (OpenBLAS's threaded syrk is
        # pathologically slow, 100x, on tall-thin Z); partial sums are added in block order, so
        # the result does not depend on the number of threads
        with threadpool_limits(limits=1, user_api="blas"), \
                ThreadPoolExecutor(max(1, min(len(blocks), os.cpu_count() or 1))) as ex:
            for zz, zy, yy, xx, sx, sy in ex.map(lambda b: _block_sums(X, dt, *b), blocks):
                ZZ[:F0, :F0] += zz
                ZY[:F0] += zy
                YY += yy
                x2 += xx
                Sx += sx
                Sy += sy
        h = np.asarray(rec.bias, dtype=np.float64)
        m = T - 1
        hZ = np.hstack([h.T @ Sx, m * h.sum(axis=0)[:, None]])       # (N, 2N+1)
        ZZ[F0:, :F0] = hZ
        ZZ[:F0, F0:] = hZ.T
        ZZ[F0:, F0:] = m * (h.T @ h)
        ZY[F0:] = h.T @ Sy
        return cls(float(dt), ZZ, ZY, YY, m * R, x2, h.min(axis=0), h.max(axis=0), h[0].copy())

    def __add__(self, other: "Statistics") -> "Statistics":
        if not isinstance(other, Statistics):
            return NotImplemented
        if other.n_units != self.n_units:
            raise InputError(f"cannot pool recordings of {self.n_units} and {other.n_units} units")
        if not math.isclose(other.sample_interval, self.sample_interval, rel_tol=1e-9):
            raise InputError(f"cannot pool recordings with sample intervals {self.sample_interval:g} and "
                             f"{other.sample_interval:g}; resample them to one interval first")
        return Statistics(self.sample_interval, self.ZZ + other.ZZ, self.ZY + other.ZY, self.YY + other.YY,
                          self.n + other.n, self.x2 + other.x2, np.minimum(self.h_min, other.h_min),
                          np.maximum(self.h_max, other.h_max), self.h_first)

    @property
    def varies(self) -> np.ndarray:
        """Units whose imposed bias differs between runs."""
        return self.h_max > self.h_min

    @property
    def constant_bias(self) -> np.ndarray:
        """Units whose imposed bias is the same nonzero value in every run."""
        return ~self.varies & (self.h_first != 0)


def _block_sums(X: np.ndarray, dt: float, t0: int, t1: int) -> tuple:
    """Gram sums of the recorded steps t0..t1-1 (all runs): Z^T Z, Z^T y, y.y, x.x and the
    per-run sums of [x, x^3] and y."""
    N = X.shape[2]
    xb = X[t0:t1]
    yb = (X[t0 + 1:t1 + 1] - xb) / dt
    x3 = xb * xb * xb
    sx = np.concatenate([xb.sum(axis=0), x3.sum(axis=0)], axis=1)
    x, y = xb.reshape(-1, N), yb.reshape(-1, N)
    Z = np.hstack([x, x3.reshape(-1, N), np.ones((x.shape[0], 1))])
    return (Z.T @ Z, Z.T @ y, np.einsum("ij,ij->j", y, y), np.einsum("ij,ij->j", x, x), sx, yb.sum(axis=0))


def _statistics(data) -> tuple[Statistics, list[Recording]]:
    """Statistics of ``data`` (a Recording, a sequence of them, or Statistics) and the
    recordings themselves (for the continuous-time second pass)."""
    if isinstance(data, Statistics):
        return data, []
    if isinstance(data, Recording):
        return Statistics.of(data), [data]
    recs = list(data)
    if not recs or not all(isinstance(r, Recording) for r in recs):
        raise InputError("fit takes a Recording, a non-empty list of Recordings or Statistics")
    total = Statistics.of(recs[0])
    for r in recs[1:]:
        total = total + Statistics.of(r)
    return total, recs


def _unit_design(i: int, N: int, mask: np.ndarray, with_h: bool) -> tuple[list[int], np.ndarray, list[str]]:
    """Gram columns, feature signs/scales and coefficient names of unit i's regression.
    With ``with_h`` the last coefficient (named mu[i]) multiplies -h_i: it is unit i's true
    mobility in the program's gauge."""
    nbrs = np.nonzero(mask[i])[0].tolist()
    cols = [i, N + i, 2 * N] + nbrs
    scales = [-2.0, -4.0, -1.0] + [-1.0] * len(nbrs)
    names = [f"J2[{i}]", f"J4[{i}]", f"b[{i}]"] + [f"K[{i},{j}]" for j in nbrs]
    if with_h:
        cols.append(2 * N + 1 + i)
        scales.append(-1.0)
        names.append(f"mu[{i}]")
    return cols, np.asarray(scales), names


def _inverse(A: np.ndarray, names: list[str], unit: int) -> tuple[np.ndarray, float]:
    """(A^-1, condition number of the scale-free information); clear errors when singular."""
    d = np.sqrt(np.diag(A))
    zero = [names[k] for k in np.nonzero(d == 0)[0]]
    if zero:
        if any(z.startswith("mu[") for z in zero):
            raise InputError(f"mobility='bias' cannot fit mu[{unit}]: the imposed bias on unit {unit} is zero in "
                             "every run; record runs under different known biases (calibrate.design.bias_steps) "
                             "or use mobility='nominal'")
        raise InputError(f"unit {unit}: the regressor of {', '.join(zero)} is zero in every sample; "
                         "that parameter cannot be fitted from this recording")
    M = A / np.outer(d, d)
    w, V = np.linalg.eigh(M)
    cond = float(w[-1] / w[0]) if w[0] > 0 else math.inf
    if not cond < _MAX_COND:
        v = V[:, 0]
        top = np.argsort(-np.abs(v))[:3]
        combo = " + ".join(f"{v[k]:+.2f} {names[k]}" for k in top if abs(v[k]) > 0.05)
        hint = ""
        if f"mu[{unit}]" in names and f"b[{unit}]" in [names[k] for k in top]:
            hint = ("; the imposed bias on this unit is the same in every run, so its mobility and its bias "
                    "cannot be told apart - vary the bias between runs (calibrate.design.bias_steps)")
        raise InputError(f"unit {unit}: the recording does not identify the parameters (information "
                         f"condition number {cond:.3g}; unresolved combination {combo}){hint}")
    Minv = V @ np.diag(1.0 / w) @ V.T
    return Minv / np.outer(d, d), cond


def _transform(beta: np.ndarray, cov_beta: np.ndarray, D: float, var_D: float, mobility: str,
               mu_i: float | None, with_h: bool) -> tuple[np.ndarray, np.ndarray]:
    """Regression coefficients (and D = mu kT) -> reported parameters (theta..., [mu], kT) and
    their covariance. 'nominal': theta = beta / mu_i (a fitted coefficient of -h, if any, is
    a nuisance and dropped). 'bias': theta = beta / mu with mu the coefficient of -h (delta
    method for the ratio)."""
    if mobility == "nominal":
        if with_h:
            beta, cov_beta = beta[:-1], cov_beta[:-1, :-1]
        m = beta.size
        val = np.concatenate([beta / mu_i, [D / mu_i]])
        cov = np.zeros((m + 1, m + 1))
        cov[:m, :m] = cov_beta / mu_i ** 2
        cov[m, m] = var_D / mu_i ** 2
        return val, cov
    m = beta.size
    mu = beta[-1]
    if not mu > 0:
        raise InputError(f"the fitted mobility is {mu:.3g} <= 0: the imposed biases are too weak or wrong in "
                         "sign/units; use larger bias steps, or mobility='nominal'")
    theta = beta[:-1] / mu
    kT = D / mu
    val = np.concatenate([theta, [mu, kT]])
    Jac = np.zeros((m + 1, m + 1))      # rows: theta (m-1), mu, kT; cols: beta (m), D
    Jac[np.arange(m - 1), np.arange(m - 1)] = 1.0 / mu
    Jac[:m - 1, m - 1] = -theta / mu
    Jac[m - 1, m - 1] = 1.0
    Jac[m, m] = 1.0 / mu
    Jac[m, m - 1] = -kT / mu
    cin = np.zeros((m + 1, m + 1))
    cin[:m, :m] = cov_beta
    cin[m, m] = var_D
    return val, Jac @ cin @ Jac.T


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Fit:
    """Fitted parameters with standard errors, in a flat per-unit layout.

    names / value / se : flat vectors; unit i's block (``slices[i]``) is J2[i], J4[i], b[i],
        K[i,j] for each coupled j (ascending), [mu[i] when mobility='bias'], kT[i].
    cov : per-unit covariance matrices of the blocks (units' blocks are independent).
    mobility : 'nominal' (mu fixed to ``mu``) or 'bias' (mu fitted from the imposed biases).
    mu : (N,) the mobility of the reported parameters (given or fitted).
    condition : (N,) condition numbers of each unit's scale-free Fisher information.
    noise_sd : (N,) fitted per-step noise sd sqrt(2 mu kT dt), model units of x.
    notes : warnings (e.g. discretisation bias).
    """

    names: tuple
    value: np.ndarray
    se: np.ndarray
    cov: tuple
    slices: tuple
    mobility: str
    mu: np.ndarray
    mask: np.ndarray
    sample_interval: float
    n_transitions: int
    condition: np.ndarray
    noise_sd: np.ndarray
    notes: tuple = ()
    _info_inv: tuple = field(default=(), repr=False)   # per unit (F^T F)^-1 in beta space
    _with_h: tuple = field(default=(), repr=False)     # per unit: was -h_i a regressor

    @property
    def n_units(self) -> int:
        return self.mask.shape[0]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"no fitted parameter {name!r}") from None

    @cached_property
    def _layout(self) -> dict[str, tuple]:
        """Where each parameter sits in the flat vector, parsed from the names once:
        kind -> (positions, unit index) and 'K' -> (positions, i, j)."""
        pos: dict[str, list] = {k: [] for k in ("J2", "J4", "b", "mu", "kT", "K")}
        for k, name in enumerate(self.names):
            kind, idx = name[:-1].split("[")
            pos[kind].append((k, *(int(s) for s in idx.split(","))))
        return {kind: tuple(np.array(c, dtype=np.int64) for c in zip(*rows)) if rows else
                ((np.zeros(0, np.int64),) * (3 if kind == "K" else 2)) for kind, rows in pos.items()}

    def _arrays(self, v: np.ndarray) -> dict[str, np.ndarray]:
        N = self.n_units
        v = np.asarray(v)
        out = {}
        for kind, (k, *idx) in self._layout.items():
            a = np.zeros((N, N) if kind == "K" else N)
            a[tuple(idx)] = v[k]
            out[kind] = a
        return out

    @property
    def estimate(self) -> dict[str, np.ndarray]:
        """Estimates as arrays: J2, J4, b, mu, kT (N,) and directed couplings K (N, N)."""
        a = self._arrays(self.value)
        if self.mobility == "nominal":
            a["mu"] = np.array(self.mu)
        return a

    @property
    def stderr(self) -> dict[str, np.ndarray]:
        """Standard errors in the layout of :attr:`estimate` (mu: 0 when fixed)."""
        return self._arrays(self.se)

    @property
    def params(self) -> ChipParameters:
        """The fitted chip (directed couplings), in the fit's gauge."""
        e = self.estimate
        if np.any(e["kT"] <= 0) or np.any(e["mu"] <= 0):
            raise InputError("the fit gives a non-positive kT or mu; the recording is too short")
        return ChipParameters(J2=e["J2"], J4=e["J4"], b=e["b"], mu=e["mu"], kT=e["kT"], K=e["K"], mask=self.mask)

    @property
    def J(self) -> np.ndarray:
        """Symmetric couplings: inverse-variance weighted mean of K_ij and K_ji."""
        return self._sym()[0]

    @property
    def J_se(self) -> np.ndarray:
        return self._sym()[1]

    @property
    def asymmetry_z(self) -> np.ndarray:
        """(K_ij - K_ji) / sqrt(se_ij^2 + se_ji^2); ~N(0, 1) for a reciprocal chip (in the
        'nominal' gauge also when the units' mobilities differ from the nominal ones)."""
        return self._sym()[2]

    def _sym(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        K, s = self.estimate["K"], self.stderr["K"]
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(self.mask, 1.0 / s ** 2, 0.0)
            tot = w + w.T
            J = np.where(self.mask, (w * K + w.T * K.T) / tot, 0.0)
            se = np.where(self.mask, 1.0 / np.sqrt(tot), 0.0)
            z = np.where(self.mask, (K - K.T) / np.sqrt(s ** 2 + s.T ** 2), 0.0)
        return J, se, z

    def to_computer(self, like: Computer | None = None) -> Computer:
        """The fitted gradient system (symmetric J from :attr:`J`), with ``like``'s visible
        split, image shape, trainability and metadata when given. A fitted J4 below zero (a
        linear unit measured with noise) is clipped to 0, which a Computer requires."""
        e = self.estimate
        kw: dict[str, Any] = {}
        if like is not None:
            if like.n_units != self.n_units:
                raise InputError(f"like has {like.n_units} units, the fit {self.n_units}")
            kw = dict(n_visible=like.n_visible, image_shape=like.image_shape, bias_trainable=like.bias_trainable,
                      meta={**like.meta, "fitted": True})
        else:
            kw = dict(n_visible=0)
        return Computer(J=self.J, b=e["b"], mask=self.mask, J2=e["J2"], J4=np.maximum(e["J4"], 0.0),
                        mu=e["mu"], kT=e["kT"], **kw)

    # ---- comparison with a known truth (virtual chips) -----------------------------------
    def truth_vector(self, truth: ChipParameters) -> np.ndarray:
        """The true values in this fit's layout and gauge ('nominal': the dynamically
        equivalent parameters at the fit's mu)."""
        if truth.n_units != self.n_units:
            raise InputError(f"truth has {truth.n_units} units, the fit {self.n_units}")
        t = truth.gauge(self.mu) if self.mobility == "nominal" else truth
        arr = {"J2": t.J2, "J4": t.J4, "b": t.b, "mu": t.mu, "kT": t.kT}
        out = np.empty(len(self.names))
        for k, name in enumerate(self.names):
            kind, idx = name[:-1].split("[")
            if kind == "K":
                i, j = (int(s) for s in idx.split(","))
                out[k] = t.K[i, j]
            else:
                out[k] = arr[kind][int(idx)]
        return out

    def zscores(self, truth: ChipParameters) -> np.ndarray:
        """(estimate - truth) / se for every parameter."""
        return (self.value - self.truth_vector(truth)) / self.se

    def cramer_rao(self, truth: ChipParameters) -> np.ndarray:
        """Cramer-Rao bound (sd) of every parameter: the Fisher information of the Euler
        likelihood at the true parameters and true noise level, for the recorded regressors
        (the observed-design bound; conditional on the path, as the standard errors are)."""
        t = truth.gauge(self.mu) if self.mobility == "nominal" else truth
        tv = self.truth_vector(truth)
        out = np.empty(len(self.names))
        n = self.n_transitions
        for i, (sl, ainv, wh) in enumerate(zip(self.slices, self._info_inv, self._with_h)):
            D = float(t.mu[i] * t.kT[i])
            vals = tv[sl]
            if self.mobility == "nominal":
                beta = vals[:-1] * self.mu[i]
                if wh:   # the nuisance coefficient of -h: its value does not enter the covariance
                    beta = np.concatenate([beta, [truth.mu[i]]])
            else:
                theta, mu = vals[:-2], vals[-2]
                beta = np.concatenate([theta * mu, [mu]])
            cov_beta = (2.0 * D / self.sample_interval) * ainv
            _, cov = _transform(beta, cov_beta, D, 2.0 * D * D / n, self.mobility,
                                float(self.mu[i]) if self.mobility == "nominal" else None, wh)
            out[sl] = np.sqrt(np.diag(cov))
        return out

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write the fit (every array, no pickle) atomically to ``path`` (.npz); ``meta`` is
        kept in the header (e.g. which program was measured)."""
        flat = lambda mats: np.concatenate([np.asarray(m).ravel() for m in mats]) if mats else np.zeros(0)  # noqa: E731
        header = {"names": list(self.names), "mobility": self.mobility, "sample_interval": self.sample_interval,
                  "n_transitions": int(self.n_transitions), "notes": list(self.notes),
                  "slices": [[sl.start, sl.stop] for sl in self.slices], "with_h": [bool(v) for v in self._with_h],
                  "cov_sizes": [int(np.asarray(c).shape[0]) for c in self.cov],
                  "info_sizes": [int(np.asarray(c).shape[0]) for c in self._info_inv], "meta": meta or {}}
        return save_record(path, FIT_SCHEMA, header, {
            "value": self.value, "se": self.se, "mu": self.mu, "mask": self.mask, "condition": self.condition,
            "noise_sd": self.noise_sd, "cov": flat(self.cov), "info_inv": flat(self._info_inv)})

    @classmethod
    def load(cls, path: str | Path) -> tuple["Fit", dict]:
        """(fit, meta) from a file written by :meth:`save`."""
        head, a = load_record(path, FIT_SCHEMA)

        def unflat(v: np.ndarray, sizes: list[int]) -> tuple:
            out, k = [], 0
            for n in sizes:
                out.append(v[k:k + n * n].reshape(n, n))
                k += n * n
            if k != v.size:
                raise InputError(f"{path}: corrupt fit record (covariance sizes do not add up)")
            return tuple(out)

        try:
            f = cls(names=tuple(head["names"]), value=a["value"], se=a["se"],
                    cov=unflat(a["cov"], head["cov_sizes"]), slices=tuple(slice(*s) for s in head["slices"]),
                    mobility=head["mobility"], mu=a["mu"], mask=a["mask"].astype(bool),
                    sample_interval=float(head["sample_interval"]), n_transitions=int(head["n_transitions"]),
                    condition=a["condition"], noise_sd=a["noise_sd"], notes=tuple(head["notes"]),
                    _info_inv=unflat(a["info_inv"], head["info_sizes"]), _with_h=tuple(head["with_h"]))
        except KeyError as e:
            raise InputError(f"{path}: not a complete fit record (missing {e})") from None
        return f, head.get("meta", {})

    def summary(self) -> dict:
        """JSON-ready summary."""
        return {"mobility": self.mobility, "sample_interval": self.sample_interval,
                "n_transitions": self.n_transitions, "n_parameters": len(self.names),
                "condition_max": float(np.max(self.condition)), "notes": list(self.notes),
                "parameters": {n: {"value": float(v), "se": float(s)} for n, v, s in
                               zip(self.names, self.value, self.se)}}


# ---------------------------------------------------------------------------------------------
# discretisation correction
# ---------------------------------------------------------------------------------------------
def _ito_taylor_correct(recs: list[Recording], units: list[dict], mask: np.ndarray, mu_ref: np.ndarray | None,
                        const: np.ndarray, N: int, n: int) -> None:
    """Remove the O(dt) bias of the Euler likelihood for a continuous-time chip, in place.

    For dx = a(x) dt + sqrt(2 D) dW, Ito-Taylor gives E[dx | x] / dt = a + (dt/2) L a + O(dt^2)
    and Var[dx_i | x] = 2 D_i dt (1 + dt d_i a_i) + O(dt^3), with the generator
    L a_i = sum_j a_j d_j a_i + D_i d_i^2 a_i. The regression therefore estimates the drift
    coefficients plus the projection of (dt/2) L a onto the features, and D times
    (1 + dt <d_i a_i>). Both are evaluated with the first-pass estimates and removed."""
    dt = recs[0].sample_interval
    c2, c4, cb, ch, D = (np.zeros(N) for _ in range(5))
    KB = np.zeros((N, N))
    for i, u in enumerate(units):
        beta, names = u["beta"], u["names"]
        c2[i], c4[i], cb[i] = beta[0], beta[1], beta[2]
        nb = np.nonzero(mask[i])[0]
        KB[i, nb] = beta[3:3 + nb.size]
        if u["with_h"]:
            ch[i] = beta[-1]
        elif const[i]:
            ch[i] = mu_ref[i]
        D[i] = u["D"]
    F = 2 * N + 1 + N
    ZW = np.zeros((F, N))
    dsum = np.zeros(N)
    with threadpool_limits(limits=1, user_api="blas"):
        for rec in recs:
            _ito_taylor_sums(rec, c2, c4, cb, ch, KB, D, ZW, dsum)
    for i, u in enumerate(units):
        cols, sc = list(u["cols"]), u["sc"]
        shift = u["Ainv"] @ (sc * ZW[cols, i])
        u["beta"] = u["beta"] - shift
        factor = 1.0 + dt * dsum[i] / n
        u["D"] = u["D"] / factor
        u["s2"] = u["s2"] / factor


def _ito_taylor_sums(rec: Recording, c2, c4, cb, ch, KB, D, ZW, dsum) -> None:
    """Add one recording's Z^T (dt/2) L a and sum of d_i a_i (see :func:`_ito_taylor_correct`)."""
    dt = rec.sample_interval
    X = rec.x
    T, R, N = X.shape
    step = max(1, _CHUNK // (R * ZW.shape[0]))
    for t0 in range(0, T - 1, step):
        t1 = min(T - 1, t0 + step)
        x = X[t0:t1].reshape(-1, N)
        h = np.broadcast_to(rec.bias, (t1 - t0, R, N)).reshape(-1, N)
        x2 = x * x
        a = -(2 * c2 * x + 4 * c4 * x2 * x + cb + x @ KB.T + ch * h)
        dii = -(2 * c2 + 12 * c4 * x2)                       # d a_i / d x_i
        La = a * dii - a @ KB.T                             # sum_j a_j d_j a_i (d_j a_i = -KB_ij)
        La += D * (-24.0 * c4 * x)                          # D_i d_i^2 a_i
        w = 0.5 * dt * La
        Z = np.hstack([x, x2 * x, np.ones((x.shape[0], 1)), h])
        ZW += Z.T @ w
        dsum += dii.sum(axis=0)


# ---------------------------------------------------------------------------------------------
# the fit
# ---------------------------------------------------------------------------------------------
def fit(data: "Recording | Sequence[Recording] | Statistics", *, mask: np.ndarray | None = None,
        mobility: str = "nominal", mu: Any = None, discretisation: str = "euler") -> Fit:
    """Fit every unit's J2, J4, b, couplings K_ij (for ``mask``; default all pairs, so
    unexpected couplings show up), noise temperature kT, and - with ``mobility='bias'`` - the
    mobility mu, from a recording, a list of recordings (pooled: one fit of all their runs) or
    their :class:`Statistics` (pooled by ``+``; bounded memory for any number of runs).
    ``mu``: the mobility for ``mobility='nominal'`` (scalar or (N,); normally the program's
    ``realised.mu``; default 1). See the module docstring.

    Imposed biases: when unit i's bias differs between runs, its coefficient is fitted (it is
    the true mobility; a nuisance parameter in the 'nominal' mode). When it is the same nonzero
    value in every run it cannot be told from b_i: the 'nominal' mode then subtracts it with the
    nominal mobility (and says so in ``notes``), the 'bias' mode refuses.

    ``discretisation``: ``"euler"`` - the Euler likelihood as it is (training's; exact when the
    recording was itself made by Euler steps of the sample interval, e.g. ``IdealVirtualChip``
    with substeps=1); ``"continuous"`` - for a continuous-time chip (SPICE, hardware): the same
    least squares followed by the first-order Ito-Taylor correction of its O(dt) bias (module
    docstring), leaving an O(dt^2) bias; it makes a second pass over the recordings, so it
    needs them (not just Statistics)."""
    g, recs, mask, mu_ref = _checked_fit_inputs(data, mask, mobility, mu, discretisation)
    N = g.n_units
    varies, const = g.varies, g.constant_bias
    dt = g.sample_interval
    conds = np.zeros(N)
    notes = []
    # pass 1: per-unit least squares
    units = [_unit_least_squares(g, i, mask, mu_ref, varies, const, conds, notes) for i in range(N)]
    # pass 2 (continuous-time chips): first-order Ito-Taylor correction of the Euler bias
    if discretisation == "continuous":
        _ito_taylor_correct(recs, units, mask, mu_ref, const, N, g.n)
    f = _assemble_fit(units, g, mask, mobility, mu_ref, varies, conds)
    # discretisation: fastest local relaxation rate at the typical amplitude
    e = f.estimate
    lam = e["mu"] * (np.abs(2 * e["J2"] + 12 * e["J4"] * g.x2 / g.n) + np.sum(np.abs(e["K"]), axis=1))
    worst = float(np.max(lam * dt))
    if worst > _EULER_WARN * (1 if discretisation == "euler" else 4):
        notes.append(f"the sample interval is long against the fastest relaxation (lambda dt = {worst:.3g}): "
                     f"the Euler likelihood's bias (~{100 * worst / 2:.2g} % of the drift parameters) may exceed "
                     "the standard errors; record with a shorter sample interval")
    if notes:
        object.__setattr__(f, "notes", tuple(notes))
    return f


def _checked_fit_inputs(data, mask, mobility: str, mu: Any, discretisation: str) -> tuple:
    """fit's arguments checked, each fault one InputError: (pooled statistics, the recordings
    (empty for Statistics), the coupling mask, the nominal mobility per unit or None)."""
    if discretisation not in DISCRETISATIONS:
        raise InputError(f"discretisation = {discretisation!r}; use 'euler' (Euler-stepped recordings) or "
                         "'continuous' (continuous-time chips: SPICE, hardware)")
    if mobility not in MOBILITIES:
        raise InputError(f"mobility = {mobility!r}; use 'nominal' (mu fixed) or 'bias' (mu from imposed biases)")
    g, recs = _statistics(data)
    if discretisation == "continuous" and not recs:
        raise InputError("discretisation='continuous' needs the recordings themselves (a second pass over them); "
                         "pass the Recording(s), not their Statistics")
    N = g.n_units
    if mask is None:
        mask = ~np.eye(N, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (N, N) or np.any(np.diag(mask)) or not np.array_equal(mask, mask.T):
        raise InputError(f"mask must be a symmetric ({N}, {N}) bool matrix with a False diagonal")
    mu_ref = None
    if mobility == "nominal":
        mu_ref = np.full(N, 1.0) if mu is None else np.broadcast_to(np.asarray(mu, np.float64), (N,)).copy()
        if np.any(~np.isfinite(mu_ref)) or np.any(mu_ref <= 0):
            raise InputError("mu must be positive")
    elif mu is not None:
        raise InputError("mu is fitted when mobility='bias'; do not pass it")
    varies = g.varies
    if mobility == "bias" and not np.all(varies):
        bad = np.nonzero(~varies)[0].tolist()
        raise InputError(f"mobility='bias' needs each unit's imposed bias to differ between runs; it does not for "
                         f"unit(s) {bad[:8]} (use calibrate.design.bias_steps, or mobility='nominal')")
    return g, recs, mask, mu_ref


def _unit_least_squares(g: "Statistics", i: int, mask: np.ndarray, mu_ref, varies: np.ndarray, const: np.ndarray,
                        conds: np.ndarray, notes: list) -> dict:
    """Pass 1 for unit i: the least-squares drift coefficients and the noise variance (sets
    conds[i]; a constant imposed bias is removed with the nominal mobility, noted)."""
    N, dt = g.n_units, g.sample_interval
    with_h = bool(varies[i])
    cols, sc, nm = _unit_design(i, N, mask, with_h)
    A = sc[:, None] * g.ZZ[np.ix_(cols, cols)] * sc[None, :]
    zy, yy = g.ZY[:, i], float(g.YY[i])
    if const[i]:   # y' = y + mu_ref h: the known imposed drift removed with the nominal mobility
        m = float(mu_ref[i] * g.h_first[i])
        zy = zy + m * g.ZZ[:, 2 * N]
        yy = yy + 2 * m * float(g.ZY[2 * N, i]) + m * m * g.n
        notes.append(f"unit {i}: the imposed bias is the same in every run; it was removed assuming the "
                     "nominal mobility")
    c = sc * zy[cols]
    Ainv, conds[i] = _inverse(A, nm, i)
    beta = Ainv @ c
    p = beta.size
    dof = g.n - p
    if dof < 10 * p:
        raise InputError(f"only {g.n} recorded steps for {p} parameters per unit; record longer or more runs")
    rss = max(yy - float(beta @ c), 0.0)
    s2 = rss / dof                       # variance of y = dx/dt: 2 D / dt
    return {"cols": cols, "sc": sc, "names": nm, "with_h": with_h, "Ainv": Ainv, "beta": beta,
            "s2": s2, "D": s2 * dt / 2.0, "dof": dof}


def _assemble_fit(units: list[dict], g: "Statistics", mask: np.ndarray, mobility: str, mu_ref, varies: np.ndarray,
                  conds: np.ndarray) -> "Fit":
    """The units' coefficients transformed to the model's parameters (J2, J4, b, K, kT, mu) and
    their covariances, as one Fit."""
    N, dt = g.n_units, g.sample_interval
    names: list[str] = []
    values, ses, covs, slices, infos = [], [], [], [], []
    noise_sd, mus = np.zeros(N), np.zeros(N)
    for i, u in enumerate(units):
        D, dof, nm, with_h = u["D"], u["dof"], u["names"], u["with_h"]
        noise_sd[i] = math.sqrt(2.0 * D * dt)
        val, cov = _transform(u["beta"], u["s2"] * u["Ainv"], D, 2.0 * D * D / dof, mobility,
                              float(mu_ref[i]) if mobility == "nominal" else None, with_h)
        if mobility == "nominal":
            mus[i] = mu_ref[i]
            if with_h:
                nm = nm[:-1]
        else:
            mus[i] = val[-2]
        nm = nm + [f"kT[{i}]"]
        slices.append(slice(len(names), len(names) + len(nm)))
        names += nm
        values.append(val)
        ses.append(np.sqrt(np.diag(cov)))
        covs.append(cov)
        infos.append(u["Ainv"])
    value = np.concatenate(values)
    return Fit(names=tuple(names), value=value, se=np.concatenate(ses), cov=tuple(covs), slices=tuple(slices),
               mobility=mobility, mu=mus, mask=mask, sample_interval=dt, n_transitions=g.n,
               condition=conds, noise_sd=noise_sd, _info_inv=tuple(infos), _with_h=tuple(bool(v) for v in varies))


def negative_log_likelihood(rec: Recording, chip: ChipParameters) -> float:
    """-ln P of the recording under the Euler model of ``chip`` (without the constant): the
    quantity :func:`fit` minimises. For a reciprocal chip and free runs it equals
    ``train.reverse_action(chip.to_computer(), rec.x[::-1], dt)`` (the forward path is the
    reverse of its own reversal)."""
    dt = rec.sample_interval
    X = rec.x
    d = X[1:] - X[:-1] - dt * chip.drift(X[:-1], rec.bias)
    return float(np.sum(d * d / (4.0 * chip.mu * chip.kT * dt)))


def standardized_residuals(rec: Recording, chip: ChipParameters, max_samples: int = 200_000) -> np.ndarray:
    """(dx - dt drift(x)) / sqrt(2 mu kT dt) for (at most ``max_samples``) recorded steps, all
    units: N(0, 1) when the chip follows the fitted Euler model."""
    X = rec.x
    dt = rec.sample_interval
    take = max(1, int(max_samples // (rec.n_runs * rec.n_units)))
    idx = np.linspace(0, X.shape[0] - 2, min(X.shape[0] - 1, take)).round().astype(int)
    d = X[idx + 1] - X[idx] - dt * chip.drift(X[idx], rec.bias)
    return d / np.sqrt(2.0 * chip.mu * chip.kT * dt)
