"""Batched underdamped Langevin dynamics, for chips with inertia (LC cells, oscillators).

Model (per unit i, model units, time s):

    m_i x_i'' = -gamma_i x_i' - dV/dx_i + sqrt(2 gamma_i kT_i) eta_i(s)

with V, kT from a :class:`~thermohw.computer.Computer` and, by default, gamma_i = 1/mu_i, so
that as m -> 0 the position obeys the computer's own overdamped equation
dx/ds = -mu dV/dx + sqrt(2 mu kT) eta (the model ``langevin.simulate`` integrates).

Integrator: "exponential Euler" (Ermak & Buckholz 1980; also the Langevin-impulse idea).
Over one step h the force F = -dV/dx is frozen at the start of the step and the remaining
linear SDE (free flight with friction and noise) is solved *exactly*. With a = gamma/m, u = a h:

    v' = e^{-u} v + (1 - e^{-u}) F/gamma                      + dv
    x' = x + (1 - e^{-u}) v/a + (h - (1 - e^{-u})/a) F/gamma   + dx

and (dx, dv) Gaussian with Var dv = (kT/m)(1 - e^{-2u}), Cov = (kT/m)(1 - e^{-u})^2/a,
Var dx = (kT/m)(2u - 3 + 4e^{-u} - e^{-2u})/a^2; conditionally on dv the x-noise has variance
(kT/m)(2u - 4 tanh(u/2))/a^2 (series for small u avoid cancellation).

Why this scheme and not BAOAB: it is first order in h exactly like the Euler-Maruyama scheme
of ``langevin.simulate`` and, for m -> 0 at fixed h, tends to that very scheme (the inertial
terms vanish like sqrt(m)); so at equal h, differences between this simulator and the
overdamped one are due to inertia, not to the integrator. It is stable for any friction;
like Euler-Maruyama it needs mu h lambda_max < 2, and resolving oscillations needs
h sqrt(k/m) << 1. (BAOAB samples configurations better at large h but, for h >> m/gamma, its
position dynamics are those of a step h^2/(2m), not h/gamma: useless for comparing dynamics.)
For a free particle the scheme is exact; for a harmonic unit its stationary variances carry
a relative bias O(mu h k), as Euler-Maruyama's does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .computer import Computer, _per_unit
from .errors import DivergenceError, InputError
from .langevin import euler_limits

_CHECK_EVERY = 25


@dataclass(frozen=True, eq=False)
class UnderdampedTrajectory:
    """Result of :func:`simulate_underdamped`: snapshots of positions and velocities."""

    times: np.ndarray          # (T,) snapshot times (empty if nothing recorded)
    x: np.ndarray | None       # (T, runs, N) positions or None
    v: np.ndarray | None       # (T, runs, N) velocities dx/ds or None
    x0: np.ndarray             # (runs, N)
    v0: np.ndarray             # (runs, N)
    x_final: np.ndarray        # (runs, N)
    v_final: np.ndarray        # (runs, N)
    dt: float
    n_steps: int
    mass: np.ndarray           # (N,)
    gamma: np.ndarray          # (N,)
    seed: Any = None

    @property
    def n_runs(self) -> int:
        return self.x_final.shape[0]


def _positive(name: str, value: Any, n: int) -> np.ndarray:
    """A per-unit array (as in Computer) that must also be > 0 (masses, frictions)."""
    a = _per_unit(name, value, n)
    if np.any(a <= 0):
        raise InputError(f"{name} must be finite and > 0 for every unit")
    return a


def thermal_velocities(mass: Any, kT: Any, n_runs: int, seed: Any = None) -> np.ndarray:
    """Maxwell velocities, (n_runs, N): Gaussian with variance kT/m per unit."""
    m = np.atleast_1d(np.asarray(mass, dtype=np.float64))
    kT = np.broadcast_to(np.asarray(kT, dtype=np.float64), m.shape)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((int(n_runs), m.size)) * np.sqrt(kT / m)


def step_coefficients(mass: np.ndarray, gamma: np.ndarray, kT: np.ndarray, dt: float) -> dict:
    """Per-unit coefficients of one exponential-Euler step (see the module docstring)."""
    m, g, kT = (np.asarray(a, dtype=np.float64) for a in (mass, gamma, kT))
    a = g / m
    u = a * dt
    e1 = np.exp(-u)
    one_m_e = -np.expm1(-u)                       # 1 - e^{-u}
    # h(u) = u - (1 - e^{-u}), g(u) = 2u - 4 tanh(u/2): series where they cancel
    hu = np.where(u < 1e-2, u * u * (0.5 - u / 6 + u * u / 24 - u ** 3 / 120), u + np.expm1(-u))
    gu = np.where(u < 0.1, u ** 3 * (1 / 6 - u * u / 60 + 17 * u ** 4 / 10080),
                  2 * u - 4 * np.tanh(u / 2))
    s2 = kT / m                                    # stationary velocity variance
    var_v = s2 * -np.expm1(-2 * u)
    sv = np.sqrt(var_v)
    cov = s2 * one_m_e ** 2 / a
    lxv = np.where(sv > 0, cov / np.where(sv > 0, sv, 1.0), 0.0)
    sx = np.sqrt(np.maximum(s2 * gu / (a * a), 0.0))
    return {"vv": e1, "vF": one_m_e / g, "xv": one_m_e / a, "xF": hu / (a * g),
            "sv": sv, "lxv": lxv, "sx": sx, "u": u}


def simulate_underdamped(computer: Computer, mass: Any, x0: np.ndarray, v0: np.ndarray | None = None, *,
                         n_steps: int, dt: float, seed: Any = None, gamma: Any = None,
                         record_every: int | None = None) -> UnderdampedTrajectory:
    """Advance (x0, v0) (runs, N) by ``n_steps`` exponential-Euler steps of size ``dt``.

    mass : per-unit mass m (model units: energy * time^2 / x^2); scalar or (N,).
    gamma : per-unit friction; default 1/computer.mu (the overdamped limit is then the
        computer's own dynamics). The bath temperature is computer.kT per unit.
    v0 : initial velocities; default thermal (drawn from the same seeded generator).
    seed : int, SeedSequence or Generator; the same seed gives identical results.
    record_every : store a snapshot every this many steps (plus the initial and final states).
    """
    c = computer
    x = np.array(x0, dtype=np.float64, ndmin=2)
    R, N = x.shape
    if N != c.n_units:
        raise InputError(f"x0 has {N} units but the computer has {c.n_units}")
    if not (dt > 0 and math.isfinite(dt)):
        raise InputError(f"dt must be a positive number, got {dt}")
    n_steps = int(n_steps)
    if n_steps < 0:
        raise InputError("n_steps must be >= 0")
    m = _positive("mass", mass, N)
    g = _positive("gamma", 1.0 / c.mu if gamma is None else gamma, N)
    rng = np.random.default_rng(seed)
    if v0 is None:
        v = rng.standard_normal((R, N)) * np.sqrt(c.kT / m)
    else:
        v = np.array(np.broadcast_to(np.asarray(v0, dtype=np.float64), (R, N)))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(v))):
        raise InputError("x0/v0 contain NaN or inf")
    # stability: the frozen-force step needs (h/gamma) lambda_max < 2, as Euler-Maruyama does
    margin, xmax = euler_limits(c.replace(mu=1.0 / g), dt)
    if margin >= 2.0:
        raise DivergenceError(f"dt = {dt:g} is beyond the stability limit: (dt/gamma)*lambda_max = "
                              f"{margin:.3g} >= 2; use dt < {2.0 * dt / margin:.3g}")
    k = step_coefficients(m, g, c.kT, dt)
    x0_, v0_ = x.copy(), v.copy()
    rec = sorted(set(range(0, n_steps + 1, int(record_every))) | {n_steps}) if record_every else []
    rec_at = {s: i for i, s in enumerate(rec)}
    xs = np.empty((len(rec), R, N)) if rec else None
    vs = np.empty((len(rec), R, N)) if rec else None
    xi = np.empty((2, R, N))
    G, tmp = np.empty((R, N)), np.empty((R, N))
    xv, xF, vv, vF, sv, lxv, sx = (k[n_] for n_ in ("xv", "xF", "vv", "vF", "sv", "lxv", "sx"))
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(n_steps + 1):
            if s in rec_at:
                xs[rec_at[s]] = x
                vs[rec_at[s]] = v
            if s == n_steps:
                break
            G[...] = c.grad(x)                      # dV/dx: the force is -G
            rng.standard_normal(out=xi)
            # x' = x + xv v - xF G + lxv xi0 + sx xi1 ;  v' = vv v - vF G + sv xi0
            np.multiply(xv, v, out=tmp)
            x += tmp
            np.multiply(xF, G, out=tmp)
            x -= tmp
            np.multiply(lxv, xi[0], out=tmp)
            x += tmp
            np.multiply(sx, xi[1], out=tmp)
            x += tmp
            v *= vv
            np.multiply(vF, G, out=tmp)
            v -= tmp
            np.multiply(sv, xi[0], out=tmp)
            v += tmp
            if (s + 1) % _CHECK_EVERY == 0 or s + 1 == n_steps:
                mx = float(np.max(np.abs(x))) if x.size else 0.0
                if not mx < xmax:
                    raise DivergenceError(f"the simulation ran away at step {s + 1}: max |x| = {mx:.3g} "
                                          f"exceeds {xmax:.3g}; reduce dt (e.g. to {dt / 4:g})")
    times = np.asarray(rec, dtype=np.float64) * dt if rec else np.empty(0)
    return UnderdampedTrajectory(times=times, x=xs, v=vs, x0=x0_, v0=v0_, x_final=x, v_final=v, dt=float(dt),
                                 n_steps=n_steps, mass=m, gamma=g,
                                 seed=seed if isinstance(seed, (int, type(None))) else repr(seed))


def linear_stationary(mass: float, gamma: float, stiffness: float, kT: float, dt: float) -> tuple[float, float]:
    """Exact stationary (var x, var v) of *this scheme* for a lone linear unit V = k x^2/2
    (a discrete Lyapunov equation). The continuum values are kT/k and kT/m; the scheme's are
    larger by ~k dt/(2 gamma), as for Euler-Maruyama."""
    from scipy.linalg import solve_discrete_lyapunov

    c = {n: float(np.ravel(v)[0]) for n, v in step_coefficients(
        np.array([mass]), np.array([gamma]), np.array([kT]), dt).items()}
    A = np.array([[1 - c["xF"] * stiffness, c["xv"]], [-c["vF"] * stiffness, c["vv"]]])
    Lc = np.array([[c["lxv"], c["sx"]], [c["sv"], 0.0]])
    P = solve_discrete_lyapunov(A, Lc @ Lc.T)
    return float(P[0, 0]), float(P[1, 1])


def damping_ratio(mass: Any, gamma: Any, stiffness: Any) -> np.ndarray:
    """zeta = gamma / (2 sqrt(m k)) of a linear unit (zeta = 1/(2Q)); overdamped needs zeta >> 1."""
    return np.asarray(gamma, float) / (2 * np.sqrt(np.asarray(mass, float) * np.asarray(stiffness, float)))


def slow_rate_error(q: Any) -> np.ndarray:
    """Relative error of the overdamped relaxation rate k/gamma of a linear unit with quality
    factor Q = sqrt(m k)/gamma: the true slow rate is (k/gamma) (1 - sqrt(1 - 4Q^2))/(2Q^2)
    = (k/gamma)(1 + Q^2 + 2Q^4 + ...). For Q >= 1/2 the unit rings (returns inf)."""
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 1 - 4 * q * q
        r = np.where(d > 0, (1 - np.sqrt(np.clip(d, 0, None))) / (2 * q * q) - 1, np.inf)
    return np.where(q < 1e-4, q * q, r)


__all__ = ["UnderdampedTrajectory", "simulate_underdamped", "thermal_velocities", "step_coefficients",
           "linear_stationary", "damping_ratio", "slow_rate_error"]
