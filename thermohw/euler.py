"""The sampler's fused Euler-Maruyama update, compiled with numba (float32 or float64 state).

One pass over each run's row after the coupling product ``g = x J``: the on-site and bias
force, the Gaussian noise (:mod:`thermohw.gaussian`, drawn into a row buffer that stays in L1),
the increment, the Stratonovich heat and protocol work (accumulated in float64 whatever the
state's dtype), and the divergence check. numpy would make ~12 passes with temporaries over
the whole (runs x N) state for the same work.

Heat bookkeeping: the trapezoidal Stratonovich sum -sum_k (f_k + f_(k+1))/2 . dx_k is split so
each step needs only its own force f_k: step k adds f_k . (dx_(k-1) + dx_k), and
:func:`heat_tail` adds the last force's half, f_K . dx_(K-1).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .gaussian import FASTMATH, _U, fill_row


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def em_step(x, g, dxp, noise, keys, rin, step, rows_per_block, a2, a4, b, mudt, sigma, h, e, de,
            qs, work, strat, xmax):
    """Advance the rows of ``x`` (runs, N) in place by one step; returns how many states are not
    finite or beyond ``xmax``.

    g: (runs, N) coupling force x J at the current state. dxp: (runs, N) the previous
    increment (zeros before the first step), overwritten with this one. noise: (runs, N)
    standard normals to use, or an array with no rows to draw them from stream ``keys[r]``
    (uint64) at row ``rin[r]`` of its block. a2 = 2 J2, a4 = 4 J4, b, mudt = mu dt,
    sigma = sqrt(2 mu kT dt): (N,). h: imposed field, (1, N) or (runs, N), times ``e``;
    ``de`` = the envelope's change over this step (its work is added to ``work``, float64).
    qs: (runs,) float64 Stratonovich heat, updated when ``strat``."""
    R, N = x.shape
    P = (N + 1) // 2
    nz = np.empty(N, x.dtype)
    given = noise.shape[0] > 0
    one_h = h.shape[0] == 1
    use_h = e != 0.0 or de != 0.0
    bad = 0
    for r in range(R):
        if given:
            nr = noise[r]
            for i in range(N):
                nz[i] = nr[i]
        else:
            fill_row(nz, keys[r], _U((step * rows_per_block + rin[r]) * P))
        xr, gr, dr = x[r], g[r], dxp[r]
        hr = h[0] if one_h else h[r]
        q = 0.0
        w = 0.0
        if use_h:
            for i in range(N):
                xi = xr[i]
                f = gr[i] + xi * (a2[i] + a4[i] * xi * xi) + b[i] + e * hr[i]
                d = sigma[i] * nz[i] - mudt[i] * f
                q += np.float64(f) * np.float64(dr[i] + d)
                xn = xi + d
                xr[i] = xn
                dr[i] = d
                w += np.float64(xn) * np.float64(hr[i])
                bad += not (abs(xn) < xmax)
        elif strat:
            for i in range(N):
                xi = xr[i]
                f = gr[i] + xi * (a2[i] + a4[i] * xi * xi) + b[i]
                d = sigma[i] * nz[i] - mudt[i] * f
                q += np.float64(f) * np.float64(dr[i] + d)
                xn = xi + d
                xr[i] = xn
                dr[i] = d
                bad += not (abs(xn) < xmax)
        else:
            for i in range(N):
                xi = xr[i]
                f = gr[i] + xi * (a2[i] + a4[i] * xi * xi) + b[i]
                xn = xi + (sigma[i] * nz[i] - mudt[i] * f)
                xr[i] = xn
                bad += not (abs(xn) < xmax)
        if strat:
            qs[r] -= 0.5 * q
        if de != 0.0:
            work[r] += de * w
    return bad


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def heat_tail(x, g, dxp, a2, a4, b, h, e, qs):
    """qs -= f_K . dx_(K-1) / 2: the final force's half of the last trapezoid."""
    R, N = x.shape
    one_h = h.shape[0] == 1
    for r in range(R):
        xr, gr, dr = x[r], g[r], dxp[r]
        hr = h[0] if one_h else h[r]
        q = 0.0
        for i in range(N):
            xi = xr[i]
            f = gr[i] + xi * (a2[i] + a4[i] * xi * xi) + b[i] + e * hr[i]
            q += np.float64(f) * np.float64(dr[i])
        qs[r] -= 0.5 * q
