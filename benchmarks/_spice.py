"""Shared helpers for the SPICE benchmarks: build a compiled program, time one run."""
from __future__ import annotations

import time

import numpy as np

from thermohw import Computer, CompileOptions, Target, compile_computer
from thermohw.cosim import CosimConfig, prepare, spice_job


def random_program(n: int, degree: int | None, seed: int = 0, scale: float = 0.05, graph: str = "ring"):
    """N units with random couplings: dense, or a graph of the given degree: ``ring`` (a
    circulant, banded: little LU fill-in) or ``random`` (random regular graph: an expander)."""
    rng = np.random.default_rng(seed)
    if degree is None or degree >= n - 1:
        mask = ~np.eye(n, dtype=bool)
        topo = {"type": "all-to-all"}
    else:
        mask = np.zeros((n, n), bool)
        if graph == "random":
            import networkx as nx

            g = nx.random_regular_graph(degree, n, seed=seed)
            for i, j in g.edges():
                mask[i, j] = True
        else:
            idx = np.arange(n)
            for k in range(1, degree // 2 + 1):  # circulant ring: exactly `degree` neighbours
                mask[idx, (idx + k) % n] = True
        mask |= mask.T
        np.fill_diagonal(mask, False)
        topo = {"type": "degree-limited", "max_degree": int(mask.sum(1).max())}
    J = rng.normal(0, scale, (n, n))
    J = np.where(mask, (J + J.T) / 2, 0.0)
    c = Computer(J=J, b=np.zeros(n), mask=mask, n_visible=0)
    t = Target.preset("rc-8bit-dense").replace(units=n, topology=topo)
    return compile_computer(c, t, CompileOptions())


def time_run(p, t_f: float, nt_fraction: float = 0.02, seed: int = 0) -> tuple[float, int]:
    """Wall time of one SPICE run of t_f model time units, and its number of noise samples."""
    specs, _, _ = prepare(p, CosimConfig(runs=2, ideal_runs=2, t_f=t_f, nt_fraction=nt_fraction, seed=seed))
    t = time.perf_counter()
    spice_job(specs[0])
    return time.perf_counter() - t, len(specs[0]["grid_s"]) - 1
