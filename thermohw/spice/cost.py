"""ngspice run time predicted from the measured cost laws (benchmarks/README.md).

Every constant here was measured by a script in ``benchmarks/`` on the project's 2-core AMD
EPYC machine (ngspice 39, one core per run, TRRANDOM noise); each law is the seconds per noise
sample (one NT interval: ngspice takes ~5 time points per interval) as a power of the size
that sets the sparse LU's fill-in:

    seconds per sample = a x (size / size_0) ** exponent

A run costs (noise samples) x that. Other machines scale all of them by one factor; graphs
without a fitted law get the band between the banded and the random-regular measurements.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostLaw:
    """seconds per noise sample = a_s x (size / size0) ** exponent, for size = what ``size_of`` names."""

    name: str
    size_of: str
    size0: float
    a_s: float
    exponent: float
    source: str

    def per_sample(self, size: float) -> float:
        return self.a_s * (float(size) / self.size0) ** self.exponent


# all-to-all: 3.7 s per 1000 samples at N = 64, exponent 3.39 for N >= 64 (LU refactor every step)
DENSE = CostLaw("dense", "N (units)", 64, 3.7e-3, 3.39,
                "benchmarks/bench_spice_scaling.py (2026-11-22): dense N = 64...192, fitted exponent 3.39")
# 784 x K crossbar: exponent 2.10 in K (part 1); anchored on the whole shipped-chip run (part 2):
# netlists/mnist-chip.cir, K = 24, 111.6 s for 2812 samples
CROSSBAR = CostLaw("crossbar", "K (hidden units beside 784 pixels)", 24, 111.6 / 2812, 2.10,
                   "benchmarks/bench_spice_crossbar.py (2026-12-02): exponent 2.10 in K, 111.6 s for "
                   "netlists/mnist-chip.cir (K = 24, 2812 samples)")
# king's-graph lattice: 50.2 s for 1772 samples at 36 x 36; lattices and bands scale ~N^1.2
KINGS = CostLaw("kings lattice", "N (units)", 1296, 50.2 / 1772, 1.2,
                "benchmarks/bench_spice_paper_sparse.py (2026-12-02): 50.2 s for 1772 samples, 36 x 36 lattice; "
                "exponent 1.2 from bench_spice_scaling.py (banded and lattice graphs)")
# sparse graphs of unknown locality: between a band (9.0 s per 1000 at N = 512, degree 16,
# ~N^1.02 from 128 to 512) and a random 16-regular graph (1170 s, ~N^3.33: fill-in)
BANDED = CostLaw("banded degree 16 (low end)", "N (units)", 512, 9.0e-3, 1.02,
                 "benchmarks/bench_spice_scaling.py: banded degree 16, N = 128...512")
RANDOM_REGULAR = CostLaw("random 16-regular (high end)", "N (units)", 512, 1.17, 3.33,
                         "benchmarks/bench_spice_scaling.py: random 16-regular, N = 128...512")


def predict(topology: str, n_units: int, n_visible: int, samples: int) -> dict:
    """Predicted ngspice seconds for one run of ``samples`` noise intervals of a chip whose
    graph is ``topology`` (a target's topology type): {"seconds" or "seconds_low"/"seconds_high",
    "law", "size", "source", "note"}."""
    factor = 1.0
    if topology == "all-to-all":
        laws, size = [DENSE], n_units
    elif topology == "bipartite":
        laws, size = [CROSSBAR], n_units - n_visible
        factor = n_visible / 784  # a factorisation eliminates each pixel row once: ~n_visible K^2
    elif topology == "kings":
        laws, size = [KINGS], n_units
    else:  # degree-limited, edge lists: the cost is the fill-in, which locality sets
        laws, size = [BANDED, RANDOM_REGULAR], n_units
    out: dict = {"law": " .. ".join(f"{lw.name}: {lw.a_s * 1e3:.3g} ms x ({lw.size_of} / {lw.size0:g})^{lw.exponent:g}"
                                     " per sample" for lw in laws),
                 "size": size, "samples": int(samples), "source": "; ".join(lw.source for lw in laws),
                 "note": "one core of the benchmark machine, TRRANDOM noise (the --noise pwl form ran 4.7x slower on a 96-unit dense chip, netlists/README.md)"}
    if len(laws) == 1:
        out["seconds"] = factor * laws[0].per_sample(size) * samples
    else:
        out["seconds_low"], out["seconds_high"] = (lw.per_sample(size) * samples for lw in laws)
        out["note"] += "; no fitted law for this graph: banded (local) to random-regular (expander) bounds"
    if topology == "bipartite" and n_visible != 784:
        out["note"] += f"; measured with 784 pixel rows, scaled to this chip's {n_visible}"
    return out
