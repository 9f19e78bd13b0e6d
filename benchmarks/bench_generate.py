"""Generation speed: 1000 trajectories x 2500 steps of the 784 + 512 paper computer.

Limit: the machine's matrix-multiply rate for the dtype the sampler uses (float32), measured
in this run on the same shapes, (runs x N) @ (N x N) on all cores, the best of many
repetitions taken at the start, middle and end of the run (a roofline is the best rate the
machine reaches). Counted work: the coupling products that exist, 2 runs (2 Nv Nh + Nh^2)
FLOPs per step (no visible-visible couplings). ratio = achieved FLOP/s / matmul FLOP/s; the
dense-equivalent ratio counts 2 runs N^2 instead (what a dense x @ J loop must do).

Peer, in the same run: the loop a researcher would write in JAX, dense ``x @ J``,
``jax.random.normal``, ``jit`` over a ``lax.scan``, float32, compiled ahead of timing, best of
the repetitions, XLA on all cores, with the default (threefry) and the faster ``unsafe_rbg``
random bits (the better one counts). It computes no heat; thermohw's timed run does.
``pip install -e .[bench]`` installs JAX; without it the peer is skipped with a note.

Prints speedup_vs_jax=<thermohw speed / JAX speed>; last line: ratio=<number>.

usage: python benchmarks/bench_generate.py [--runs 1000] [--steps 2500] [--repeats 2]
       [--model model.npz] [--float64] [--no-jax]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cores, matmul_rate, paper_computer  # noqa: E402

from thermohw import Computer, simulate  # noqa: E402
from thermohw.langevin import _coupling_plan, generate  # noqa: E402


def jax_seconds(c: Computer, x0: np.ndarray, steps: int, dt: float, repeats: int, impl: str) -> float | None:
    """Best wall time of the JAX Euler-Maruyama loop (compile excluded), or None without JAX."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_default_prng_impl", impl)
    f32 = jnp.float32
    J = jnp.asarray(c.J, f32)
    a2, a4, b = (jnp.asarray(v, f32) for v in (2 * c.J2, 4 * c.J4, c.b))
    mudt, sigma = jnp.asarray(c.mu * dt, f32), jnp.asarray(np.sqrt(2 * c.mu * c.kT * dt), f32)

    @jax.jit
    def run(x, key):
        def step(x, k):
            g = x @ J + x * (a2 + a4 * x * x) + b
            return x - mudt * g + sigma * jax.random.normal(k, x.shape, f32), None
        x, _ = jax.lax.scan(step, x, jax.random.split(key, steps))
        return x

    x = jnp.asarray(x0, f32)
    key = jax.random.key(0)
    compiled = run.lower(x, key).compile()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        compiled(x, key).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each implementation (best counts)")
    ap.add_argument("--model", help="trained model.npz (default: random couplings, paper connectivity)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--float64", action="store_true", help="also time the float64 sampler")
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX peer")
    a = ap.parse_args()
    c = Computer.load(a.model) if a.model else paper_computer()
    R, N, K, dt = a.runs, c.n_units, a.steps, 1e-3
    peaks = {np.float32: [matmul_rate(R, N, np.float32, repeats=15)]}
    x0 = generate(c, R, t_f=0.1, dt=dt, seed=1, stratonovich=False).x0  # coupling-free equilibrium
    simulate(c, x0[:64], n_steps=2, dt=dt, seed=2, dtype=np.float32)  # numba compile (cached on disk)
    simulate(c, x0[:64], n_steps=2, dt=dt, seed=2, dtype=np.float64)

    def timed(dtype, strat: bool) -> float:
        best = float("inf")
        for _ in range(a.repeats):
            t = time.perf_counter()
            simulate(c, x0, n_steps=K, dt=dt, seed=2, stratonovich=strat, threads=a.threads, dtype=dtype)
            best = min(best, time.perf_counter() - t)
        return best

    ours = {"float32 + Stratonovich heat": timed(np.float32, True)}
    peaks[np.float32].append(matmul_rate(R, N, np.float32, repeats=15))
    if a.float64:
        peaks[np.float64] = [matmul_rate(R, N, np.float64, repeats=15)]
        ours["float64 + Stratonovich heat"] = timed(np.float64, True)
        peaks[np.float64].append(matmul_rate(R, N, np.float64, repeats=15))
    peer = {}
    if not a.no_jax:
        for impl in ("threefry2x32", "unsafe_rbg"):
            s = jax_seconds(c, x0, K, dt, a.repeats, impl)
            if s is not None:
                peer[impl] = s
    peaks[np.float32].append(matmul_rate(R, N, np.float32, repeats=15))
    peak = {d: max(v) for d, v in peaks.items()}
    plan = _coupling_plan(c, np.float32)
    struct = 2.0 * R * sum((i1 - i0) * (o1 - o0) for i0, i1, o0, o1, _ in plan) * K
    dense = 2.0 * R * N * N * K

    print(f"computer: N = {N} ({c.n_visible} + {c.n_hidden}), {c.n_couplings} couplings; runs = {R}, steps = {K}, "
          f"dt = {dt:g}; {cores()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"coupling products: {struct / K / 1e9:.2f} GFLOP per step ({dense / struct:.2f}x fewer than dense "
          f"{dense / K / 1e9:.2f})")
    for d, v in peaks.items():
        print(f"machine matmul rate ({np.dtype(d).name}, {R}x{N} @ {N}x{N}, all cores): best {peak[d] / 1e9:.1f} "
              f"GFLOP/s (start/middle/end: {', '.join(f'{p / 1e9:.1f}' for p in v)})")
    for name, sec in ours.items():
        pk = peak[np.float64 if name.startswith("float64") else np.float32]
        print(f"thermohw {name}: {sec:.1f} s, {R * N * K / sec:.3g} unit-steps/s, ratio {struct / sec / pk:.3f}, "
              f"dense-equivalent ratio {dense / sec / pk:.3f}")
    t32 = ours["float32 + Stratonovich heat"]
    if peer:
        for impl, sec in peer.items():
            print(f"JAX jit(lax.scan) float32, dense x @ J, {impl} normals, no heat: {sec:.1f} s, "
                  f"dense-equivalent ratio {dense / sec / peak[np.float32]:.3f}")
        print(f"speedup_vs_jax={min(peer.values()) / t32:.2f}")
    else:
        print("note: JAX is not installed (pip install -e .[bench]); speedup_vs_jax skipped")
    print(f"dense_equivalent_ratio={dense / t32 / peak[np.float32]:.3f}")
    print(f"ratio={struct / t32 / peak[np.float32]:.3f}")


if __name__ == "__main__":
    main()
