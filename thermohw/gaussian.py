"""Counter-based Gaussian noise for the sampler, compiled with numba.

Standard normal number ``i`` of a stream is a pure function of (stream key, counter), so any
split of the work over threads gives the same numbers and the generator vectorises (SIMD)
with no state to carry. The bits: SplitMix64 (Steele, Lea & Flood 2014; Java's
SplittableRandom; passes BigCrush), whose output k is ``mix64(key + k * golden gamma)`` with
a bijective 64-bit finaliser; each stream is SplitMix64 seeded with its key (two streams of
2^28 draws each overlap with probability ~2^-35). One 64-bit word gives a pair of normals by Box-Muller: the high
32 bits make u1 = (k + 1/2) / 2^32 (so |z| reaches 6.76, where the Gaussian tail beyond holds
1.4e-11 of the mass), the low 32 bits the angle (2 bits the quadrant, 30 the phase).

numpy's normals cost ~9 ns each in float32 as in float64 (one thread); these cost 0.8 ns in
float32, 1.3 ns in float64 (AVX-512; benchmarks/README.md). log, sin and cos are short
polynomials on reduced ranges, accurate to float32 rounding for float32 output and to ~1e-16 for float64 output; both dtypes use the same
bits, so float32 and float64 runs with one seed see the same noise (to float32 rounding).

Row layout (:func:`fill_rows`): row r of a block draws counters (step * rows_per_block + r) * P
+ j, j < P = ceil(N / 2); pair j fills units j and j + P.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

_U = np.uint64
_GAMMA = _U(0x9E3779B97F4A7C15)
_M1 = _U(0xBF58476D1CE4E5B9)
_M2 = _U(0x94D049BB133111EB)
_S27, _S30, _S31, _S32 = _U(27), _U(30), _U(31), _U(32)
_LO32, _LO30 = _U(0xFFFFFFFF), _U(0x3FFFFFFF)


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of a float as a same-width integer (LLVM bitcast; vectorises)."""
    if x not in (types.float32, types.float64):
        return None
    ity = types.int32 if x == types.float32 else types.int64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(ity.bitwidth))
    return ity(x), codegen


@intrinsic
def _float32_of(typingctx, x):
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if x.bitwidth != 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())
    return types.float32(x), codegen


@intrinsic
def _float64_of(typingctx, x):
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(x), codegen


@njit(inline="always")
def _mix64(key, ctr):
    z = key + ctr * _GAMMA
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


_f = np.float32
_F_LN2, _F_SQRT2, _F_RSQRT2 = _f(math.log(2)), _f(math.sqrt(2)), _f(math.sqrt(0.5))
_F_P32, _F_P30, _F_PI2 = _f(2.0 ** -32), _f(2.0 ** -30), _f(math.pi / 2)


@njit(inline="always")
def _pair32(z):
    """Two float32 standard normals from one 64-bit word."""
    one, half = _f(1.0), _f(0.5)
    u1 = (_f(np.int64(z >> _S32)) + half) * _F_P32
    b = _bits(u1)
    e = _f((b >> 23) - 127)
    m = _float32_of((b & 0x7FFFFF) | 0x3F800000)  # u1 = m 2^e, m in [1, 2)
    big = _f(m > _F_SQRT2)  # fold m into [sqrt(1/2), sqrt(2)): |s| <= 0.1716
    m = m * (one - half * big)
    e = e + big
    s = (m - one) / (m + one)
    s2 = s * s
    lnu = e * _F_LN2 + _f(2.0) * s * (one + s2 * (_f(1 / 3) + s2 * (_f(1 / 5) + s2 * (_f(1 / 7) + s2 * _f(1 / 9)))))
    r = np.sqrt(max(_f(-2.0) * lnu, _f(0.0)))
    lo = z & _LO32
    q = np.int64(lo >> _S30)
    p = ((_f(np.int64(lo & _LO30)) + half) * _F_P30 - half) * _F_PI2  # in (-pi/4, pi/4)
    p2 = p * p
    sp = p * (one + p2 * (_f(-1 / 6) + p2 * (_f(1 / 120) + p2 * (_f(-1 / 5040) + p2 * _f(1 / 362880)))))
    cp = one + p2 * (_f(-1 / 2) + p2 * (_f(1 / 24) + p2 * (_f(-1 / 720) + p2 * _f(1 / 40320))))
    sn = (sp + cp) * _F_RSQRT2  # angle p + pi/4, in (0, pi/2)
    cs = (cp - sp) * _F_RSQRT2
    sw = _f(q & 1)  # quadrant q: rotate by q pi/2 (branch-free, so it vectorises)
    sg = r * (one - _f(2.0) * _f(q >> 1))
    return (cs - sw * (cs + sn)) * sg, (sn + sw * (cs - sn)) * sg


_d = np.float64


@njit(inline="always")
def _pair64(z):
    """Two float64 standard normals from the same word (the float64 twin of _pair32)."""
    one, half = 1.0, 0.5
    u1 = (_d(np.int64(z >> _S32)) + half) * 2.0 ** -32
    b = _bits(u1)
    e = _d((b >> 52) - 1023)
    m = _float64_of((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = _d(m > 1.4142135623730951)
    m = m * (one - half * big)
    e = e + big
    s = (m - one) / (m + one)
    s2 = s * s
    # ln m = 2 s sum s^2k / (2k + 1): |s| <= 0.1716, so terms to s^19 reach 1e-17
    poly = 1 / 9 + s2 * (1 / 11 + s2 * (1 / 13 + s2 * (1 / 15 + s2 * (1 / 17 + s2 * (1 / 19)))))
    poly = 1.0 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * poly)))
    lnu = e * 0.6931471805599453 + 2.0 * s * poly
    r = np.sqrt(max(-2.0 * lnu, 0.0))
    lo = z & _LO32
    q = np.int64(lo >> _S30)
    p = ((_d(np.int64(lo & _LO30)) + half) * 2.0 ** -30 - half) * (math.pi / 2)
    p2 = p * p
    # Taylor series on |p| < pi/4 to p^15 (sin) and p^16 (cos): truncation below 5e-17
    sp = _S[6] + p2 * _S[7]
    cp = _C[7] + p2 * _C[8]
    for k in (5, 4, 3, 2, 1, 0):
        sp = _S[k] + p2 * sp
        cp = _C[k + 1] + p2 * cp
    cp = 1.0 + p2 * cp
    sp = p * sp
    sn = (sp + cp) * 0.7071067811865476
    cs = (cp - sp) * 0.7071067811865476
    sw = _d(q & 1)
    sg = r * (one - 2.0 * _d(q >> 1))
    return (cs - sw * (cs + sn)) * sg, (sn + sw * (cs - sn)) * sg


# Taylor coefficients: _S[k] = (-1)^k / (2k+1)!, _C[k] = (-1)^k / (2k)!
_S = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(8))
_C = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(9))


def fill_row(out, key, ctr):
    """out[:] <- standard normals of stream ``key`` from counter ``ctr`` (see module doc)."""


@overload(fill_row, inline="always")
def _fill_row(out, key, ctr):
    pair = _pair32 if out.dtype == types.float32 else _pair64

    def impl(out, key, ctr):
        n = out.shape[0]
        p = (n + 1) // 2
        lo, hi = out[:p], out[p:]  # two views: LLVM then sees no overlap and vectorises
        for j in range(n // 2):
            z0, z1 = pair(_mix64(key, ctr + _U(j)))
            lo[j] = z0
            hi[j] = z1
        if n % 2:
            out[p - 1] = pair(_mix64(key, ctr + _U(p - 1)))[0]
    return impl


# no 'nnan'/'ninf': the sampler's divergence check relies on inf and NaN surviving
FASTMATH = {"contract", "reassoc", "arcp", "nsz", "afn"}


@njit(nogil=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def _fill_rows(out, keys, rows_in_block, step, rows_per_block):
    P = (out.shape[1] + 1) // 2
    for r in range(out.shape[0]):
        ctr = _U((step * rows_per_block + rows_in_block[r]) * P)
        fill_row(out[r], keys[r], ctr)


def fill_rows(out: np.ndarray, keys: np.ndarray, rows_in_block: np.ndarray, step: int,
              rows_per_block: int) -> np.ndarray:
    """Fill ``out`` (rows, N), float32 or float64, with the normals that the sampler draws at
    ``step`` for rows whose stream keys are ``keys`` (rows,) and whose positions within their
    block are ``rows_in_block`` (rows,)."""
    _fill_rows(out, np.asarray(keys, dtype=np.uint64), np.asarray(rows_in_block, dtype=np.int64),
               int(step), int(rows_per_block))
    return out
