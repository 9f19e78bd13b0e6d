"""Scores for generated digits, heat statistics and the thermodynamic-advantage estimate."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .computer import Computer
from .energy import K_B  # J/K, defined once for the package
from .errors import InputError

# Energy per multiply-accumulate of a digital processor, Horowitz, "Computing's energy
# problem", ISSCC 2014 (45 nm, 0.9 V): fp32 mult 3.7 pJ + add 0.9 pJ; int8 mult 0.2 + add 0.03.
MAC_ENERGY_J = {"fp32": 4.6e-12, "int8": 0.23e-12}


def correlations(x_visible: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """Pearson correlation of each generated state (runs, Nv) with each pattern (k, Nv)."""
    x = np.asarray(x_visible, dtype=np.float64)
    p = np.asarray(patterns, dtype=np.float64)
    if x.ndim != 2 or p.ndim != 2 or x.shape[1] != p.shape[1]:
        raise InputError(f"cannot correlate states {x.shape} with patterns {p.shape}: pixel counts differ")
    xc = x - x.mean(axis=1, keepdims=True)
    pc = p - p.mean(axis=1, keepdims=True)
    xn = np.linalg.norm(xc, axis=1, keepdims=True)
    pn = np.linalg.norm(pc, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (xc @ pc.T) / (xn * pn.T)
    return np.nan_to_num(c)


@dataclass(frozen=True, eq=False)
class Reference:
    """Held-out images (M, Nv), normalised like the training digits, and their labels (M,):
    what the k-NN check of generated samples is fitted on (``thermohw.data.reference_set``)."""

    images: np.ndarray
    labels: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        x = np.asarray(self.images, dtype=np.float64)
        y = np.asarray(self.labels).reshape(-1)
        if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise InputError(f"reference images {x.shape} and labels {y.shape} do not match")
        object.__setattr__(self, "images", x)
        object.__setattr__(self, "labels", y.astype(np.int64))


def knn_predict(x: np.ndarray, ref: Reference, k: int = 5) -> np.ndarray:
    """Label of each row of ``x`` by majority of its ``k`` nearest reference images, by
    correlation (Euclidean distance between per-image standardised images); ties go to
    the label of the nearest."""
    xs = np.asarray(x, dtype=np.float64)
    xs = xs - xs.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        xs = np.nan_to_num(xs / np.linalg.norm(xs, axis=1, keepdims=True))
    r = ref.images - ref.images.mean(axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    k = int(min(k, r.shape[0]))
    out = np.empty(xs.shape[0], dtype=np.int64)
    for a in range(0, xs.shape[0], 1024):  # bounded memory for large sample sets
        sim = xs[a:a + 1024] @ r.T
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, nn, axis=1), axis=1)
        nn = np.take_along_axis(nn, order, axis=1)
        votes = ref.labels[nn]
        for i, v in enumerate(votes):
            vals, counts = np.unique(v, return_counts=True)
            top = vals[counts == counts.max()]
            out[a + i] = v[0] if v[0] in top else top[0]
    return out


def digit_scores(x_visible: np.ndarray, patterns: np.ndarray, labels: np.ndarray | None = None,
                 threshold: float = 0.5, reference: Reference | None = None, knn_k: int = 5) -> dict:
    """Per-sample best |correlation| with a training digit, its sign and mode counts.

    A sample 'is' training digit k when digit k has its largest |correlation| and that value
    is >= ``threshold``; negative correlation means a sign-inverted digit. A mode is present
    when at least one sample is that digit (either sign).

    Correlation alone cannot tell a digit from a blur of all training digits (their mean
    correlates well with each), so two more checks: the *margin*, best minus second-best
    |correlation| per sample, and, given ``reference`` images of the same labels, the
    fraction of samples that a k-NN classifier fitted on them assigns to the label of their
    best-correlated training digit. The classifier sees each sample with the sign of its
    best correlation applied: the model is sign-symmetric (inverted digits are its own
    outputs, counted by ``fraction_inverted``), the classifier is not.
    """
    c = correlations(x_visible, patterns)
    best = np.argmax(np.abs(c), axis=1)
    best_abs = np.abs(c[np.arange(c.shape[0]), best])
    sign = np.sign(c[np.arange(c.shape[0]), best])
    srt = np.sort(np.abs(c), axis=1)
    margin = srt[:, -1] - srt[:, -2] if c.shape[1] > 1 else srt[:, -1]
    ok = best_abs >= threshold
    k = patterns.shape[0]
    upright = [int(np.sum(ok & (best == j) & (sign > 0))) for j in range(k)]
    inverted = [int(np.sum(ok & (best == j) & (sign < 0))) for j in range(k)]
    n = c.shape[0]
    sd = float(best_abs.std(ddof=1)) if n > 1 else float("nan")
    sdm = float(margin.std(ddof=1)) if n > 1 else float("nan")
    share = np.bincount(best, minlength=c.shape[1]) / n
    out = {
        "n_samples": n,
        "mean_best_abs_corr": float(best_abs.mean()),
        "sem_best_abs_corr": sd / math.sqrt(n) if n > 1 else float("nan"),
        "mean_margin": float(margin.mean()),
        "sem_margin": sdm / math.sqrt(n) if n > 1 else float("nan"),
        "mode_share": share.tolist(),
        "threshold": threshold,
        "fraction_recognised": float(ok.mean()),
        "fraction_inverted": float(np.mean(ok & (sign < 0))),
        "modes": [{"pattern": j, "label": int(labels[j]) if labels is not None else None,
                   "upright": upright[j], "inverted": inverted[j]} for j in range(k)],
        "all_modes_present": bool(all(upright[j] + inverted[j] > 0 for j in range(k))),
        "per_sample": {"best": best.tolist(), "best_abs_corr": best_abs.tolist(), "sign": sign.tolist(),
                       "margin": margin.tolist()},
    }
    if reference is not None and labels is not None:
        pred = knn_predict(np.asarray(x_visible, dtype=np.float64) * np.where(sign < 0, -1.0, 1.0)[:, None],
                           reference, knn_k)
        agree = pred == np.asarray(labels)[best]
        out["classifier"] = {"kind": f"{knn_k}-NN by correlation", "reference_images": int(reference.labels.size),
                             "reference_source": reference.source, "agreement": float(agree.mean()),
                             "sem_agreement": float(math.sqrt(max(agree.mean() * (1 - agree.mean()), 0) / n)),
                             "sign_aligned": True}
        out["per_sample"]["classifier_label"] = pred.tolist()
    return out


CI95_METHOD = "95 % CI of the mean: mean ± t(0.975, n-1) × sem (Student t)"


def t_quantile(n: int, level: float = 0.95) -> float:
    """Two-sided Student-t quantile for a mean of ``n`` values (n - 1 dof): 2.131 for n = 16
    where the normal 1.960 would give an interval 8 % too narrow; NaN for n < 2."""
    if n < 2:
        return float("nan")
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, n - 1))


def mean_ci(q: np.ndarray) -> dict:
    """Mean, standard error (sem = s.d./sqrt(n)), 95 % confidence interval of the mean from
    Student's t with n - 1 dof (exact for normal data at any n, the normal interval for large
    n), s.d. (ddof 1) and count n (sem, sd and the interval NaN for a single value)."""
    q = np.asarray(q, dtype=np.float64)
    n = q.size
    if n == 0:
        raise InputError("no values to summarise")
    m = float(q.mean())
    sd = float(q.std(ddof=1)) if n > 1 else float("nan")
    sem = sd / math.sqrt(n) if n > 1 else float("nan")
    h = t_quantile(n) * sem
    return {"mean": m, "sem": sem, "ci95": [m - h, m + h], "sd": sd, "n": int(n), "ci95_method": CI95_METHOD}


def heat_stats(heat_kT: np.ndarray) -> dict:
    """Mean, s.d., standard error and 95 % confidence interval of the mean (Student t) in kT."""
    q = np.asarray(heat_kT, dtype=np.float64)
    q = q[np.isfinite(q)]
    if q.size == 0:
        raise InputError("no finite heat values")
    s = mean_ci(q)
    return {"n": s["n"], "mean_kT": s["mean"], "sd_kT": s["sd"], "sem_kT": s["sem"], "ci95_kT": s["ci95"],
            "ci95_method": s["ci95_method"],
            "median_kT": float(np.median(q)), "min_kT": float(q.min()), "max_kT": float(q.max())}


def digital_macs_per_sample(c: Computer, n_steps: int) -> float:
    """Multiply-accumulates a digital processor needs to integrate the same Langevin
    trajectory: per step, two per coupling (it enters two forces) plus four per unit
    (J2 term, cubic J4 term, bias, noise scaling)."""
    return float(n_steps) * (2.0 * c.n_couplings + 4.0 * c.n_units)


def thermodynamic_advantage(c: Computer, n_steps: int, mean_heat_kT: float, *, temperature_K: float = 300.0,
                            mac: str | float = "fp32") -> dict:
    """The paper's comparison: energy of a digital simulation of one generated sample
    (MACs x energy per MAC) against the heat the thermodynamic computer emits, <Q> k_B T.
    Random-number generation, memory traffic and the physical computer's housekeeping power
    are left out of both sides (stated in the result)."""
    e_mac = MAC_ENERGY_J[mac] if isinstance(mac, str) else float(mac)
    macs = digital_macs_per_sample(c, n_steps)
    return {"macs_per_sample": macs, "energy_per_mac_J": e_mac, "mac_kind": mac if isinstance(mac, str) else "custom",
            **_against_heat(macs * e_mac, mean_heat_kT, temperature_K),
            "notes": "MAC energies from Horowitz, ISSCC 2014 (45 nm); excludes random-number "
                     "generation, memory traffic and analog housekeeping power"}


def _against_heat(e_dig: float, mean_heat_kT: float, temperature_K: float) -> dict:
    """A digital energy per sample (J) set against the heat <Q> k_B T the computer emits."""
    e_thermo = abs(mean_heat_kT) * K_B * temperature_K
    return {"digital_energy_J": e_dig, "digital_energy_kT": e_dig / (K_B * temperature_K),
            "thermodynamic_heat_J": e_thermo, "temperature_K": temperature_K,
            "advantage": e_dig / e_thermo if e_thermo > 0 else float("inf"),
            "log10_advantage": math.log10(e_dig / e_thermo) if e_thermo > 0 else float("inf")}


# The paper's digital comparison (Whitelam 2025): an MLP denoiser 784 -> 128 -> 128 -> 784,
# applied 10 times per generated sample, at 1 pJ per multiply-accumulate.
PAPER_MLP_LAYERS = (784, 128, 128, 784)
PAPER_MLP_USES = 10
PAPER_MLP_ENERGY_PER_MAC_J = 1e-12


def mlp_denoiser_advantage(mean_heat_kT: float, *, layers: tuple[int, ...] = PAPER_MLP_LAYERS,
                           uses: int = PAPER_MLP_USES, energy_per_mac_J: float = PAPER_MLP_ENERGY_PER_MAC_J,
                           temperature_K: float = 300.0) -> dict:
    """The paper's comparison: a digital MLP denoiser doing the same job (``layers`` widths,
    ``uses`` passes per sample, ``energy_per_mac_J`` each) against the heat the thermodynamic
    computer emits, <Q> k_B T. Unlike :func:`thermodynamic_advantage` this does not depend on
    the computer's size: it prices a different digital algorithm, not a simulation of this one."""
    if len(layers) < 2 or min(layers) < 1 or uses < 1 or not energy_per_mac_J > 0:
        raise InputError("an MLP needs >= 2 layer widths >= 1, uses >= 1 and a positive energy per MAC")
    macs = float(uses * sum(a * b for a, b in zip(layers[:-1], layers[1:])))
    return {"layers": list(layers), "uses": int(uses), "macs_per_sample": macs, "energy_per_mac_J": energy_per_mac_J,
            **_against_heat(macs * energy_per_mac_J, mean_heat_kT, temperature_K),
            "notes": f"the paper's comparison (Whitelam 2025: an MLP denoiser 784-128-128-784 used 10 times per "
                     f"sample at 1 pJ per MAC), here with layers {'-'.join(map(str, layers))}; 'fp32'/'int8' "
                     "price a digital simulation of this computer"}
