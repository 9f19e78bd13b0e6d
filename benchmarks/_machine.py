"""The machine's own limit, measured in the same run as each benchmark."""
from __future__ import annotations

import os
import time

import numpy as np


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def matmul_rate(rows: int, n: int, dtype=np.float64, repeats: int = 7) -> float:
    """Best FLOP/s of (rows x n) @ (n x n) with numpy's BLAS on all cores: 2 rows n^2 FLOPs.
    The best of ``repeats`` products: a roofline is the fastest the machine goes (on a shared
    machine call it again later in the run and take the maximum)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((rows, n), dtype)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2.0 * rows * n * n / best


def paper_computer(seed: int = 0, scale: float = 0.03):
    """784 + 512 units with the paper's connectivity and random couplings of a trained model's
    size (rms ~0.015-0.03 after a few hundred cycles), or a trained model if a path is given."""
    from thermohw import Computer

    c = Computer.zeros(784, 512, image_shape=(28, 28))
    rng = np.random.default_rng(seed)
    J = rng.normal(0, scale, c.J.shape)
    J = np.where(c.mask, (J + J.T) / 2, 0.0)
    return c.replace(J=J, b=np.where(c.bias_trainable, rng.normal(0, scale, c.n_units), 0.0))
