"""All matplotlib lives here. Every function writes one PNG and returns its path."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from .io import atomic_write

    path = Path(path)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path


def _image(v: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return np.asarray(v, dtype=float).reshape(shape)


def image_grid(states: np.ndarray, shape: Sequence[int], path: str | Path, *, title: str = "",
               n: int = 25, captions: Sequence[str] | None = None) -> Path:
    """Grid of up to ``n`` visible states (gray: white = high)."""
    plt = _plt()
    states = np.asarray(states)[:n]
    k = states.shape[0]
    cols = int(math.ceil(math.sqrt(max(k, 1))))
    rows = int(math.ceil(k / cols)) if k else 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            ax.imshow(_image(states[i], shape), cmap="gray", interpolation="nearest")
            if captions is not None:
                ax.set_title(captions[i], fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def trajectory_strip(times: np.ndarray, x: np.ndarray, shape: Sequence[int], path: str | Path, *,
                     title: str = "", n_frames: int = 8, runs: int = 1) -> Path:
    """Snapshots of the visible units along a trajectory: rows = runs, columns = time."""
    plt = _plt()
    x = np.asarray(x)
    nv = int(np.prod(shape))
    # frames nearest to evenly spaced times (snapshots need not be evenly spaced)
    times = np.asarray(times, dtype=float)
    idx = np.unique([int(np.argmin(np.abs(times - t))) for t in np.linspace(times[0], times[-1], n_frames)])
    runs = min(runs, x.shape[1])
    fig, axes = plt.subplots(runs, len(idx), figsize=(1.3 * len(idx), 1.45 * runs), squeeze=False)
    for r in range(runs):
        for j, t in enumerate(idx):
            ax = axes[r, j]
            ax.imshow(_image(x[t, r, :nv], shape), cmap="gray", interpolation="nearest")
            ax.axis("off")
            if r == 0:
                ax.set_title(f"t={times[t]:.2f}", fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def receptive_fields(J: np.ndarray, n_visible: int, shape: Sequence[int], path: str | Path, *,
                     n: int = 16) -> Path:
    """Couplings from the first ``n`` hidden units to the visible image (blue +, red -)."""
    plt = _plt()
    W = np.asarray(J)[:n_visible, n_visible:n_visible + n]
    k = W.shape[1]
    cols = int(math.ceil(math.sqrt(max(k, 1))))
    rows = int(math.ceil(k / cols)) if k else 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.5 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            w = W[:, i]
            m = float(np.max(np.abs(w))) or 1.0
            ax.imshow(_image(w, shape), cmap="RdBu", vmin=-m, vmax=m, interpolation="nearest")
            ax.set_title(f"h{i}", fontsize=7)
    fig.suptitle("hidden-unit receptive fields J[visible, h] (blue +, red -)")
    return _save(fig, path)


def heat_histogram(heat_kT: dict[str, np.ndarray] | np.ndarray, path: str | Path, *,
                   reference: tuple[float, float] | None = None, title: str = "") -> Path:
    """Histogram(s) of heat per generated sample in kT; ``reference`` = (mean, sd) to mark."""
    plt = _plt()
    series = heat_kT if isinstance(heat_kT, dict) else {"heat": heat_kT}
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, q in series.items():
        q = np.asarray(q)
        q = q[np.isfinite(q)]
        ax.hist(q, bins=40, alpha=0.55, label=f"{name}: {q.mean():.4g} ± {q.std(ddof=1) if q.size > 1 else 0:.3g} kT")
    if reference is not None:
        ax.axvline(reference[0], color="k", ls="--", label=f"reference {reference[0]:.3g} kT")
        ax.axvspan(reference[0] - reference[1], reference[0] + reference[1], color="k", alpha=0.08)
    ax.set_xlabel("heat emitted per sample Q [kT]")
    ax.set_ylabel("samples")
    ax.legend(fontsize=7)
    ax.set_title(title or "heat per generated sample")
    return _save(fig, path)


def paired_differences(diffs: dict[str, dict[str, np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """Per-model mean paired difference from a reference (samples driven by the same noise),
    +- 2 sem, one panel per metric: ``diffs[metric][model] = per-sample differences``. Where
    histograms of the metric overlap completely, this shows what differs."""
    plt = _plt()
    metrics = list(diffs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.5 + 0.45 * len(diffs[metrics[0]])),
                             squeeze=False)
    for ax, m in zip(axes[0], metrics):
        names = list(diffs[m])
        for y, k in enumerate(names):
            d = np.asarray(diffs[m][k], dtype=float)
            sem = d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
            ax.errorbar(d.mean(), y, xerr=2 * sem, fmt="o", capsize=3)
        ax.axvline(0.0, color="k", lw=0.8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.tick_params(axis="x", labelsize=7)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0][0] else [""] * len(names), fontsize=7)
        ax.set_xlabel(f"paired difference in {m} (± 2 sem)", fontsize=8)
        ax.invert_yaxis()
    fig.suptitle(title or "paired differences from the reference", fontsize=9)
    return _save(fig, path)


def loss_curve(losses: np.ndarray, path: str | Path) -> Path:
    """Reverse-path action per unit-step over training (0.5 is the noise floor)."""
    plt = _plt()
    l = np.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, l.size + 1), l, lw=0.6, alpha=0.5, label="per cycle")
    if l.size >= 20:
        w = max(5, l.size // 50)
        ax.plot(np.arange(w, l.size + 1), np.convolve(l, np.ones(w) / w, mode="valid"), lw=1.5,
                label=f"running mean ({w})")
    ax.axhline(0.5, color="k", ls=":", lw=0.8, label="noise floor 0.5")
    ax.set_xlabel("training cycle")
    ax.set_ylabel("-ln P / (unit step)")
    ax.legend(fontsize=7)
    ax.set_title("training loss (reverse-path action)")
    return _save(fig, path)


def bitwidth_sweep(rows: list[dict], path: str | Path) -> Path:
    """Digit quality and heat against coupling bit width (the 'float' row as a reference band)."""
    plt = _plt()
    ref = next((r for r in rows if r["config"] == "float"), None)
    q = [r for r in rows if r["config"] != "float"]
    bits = [int(r["config"].split()[0]) for r in q]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    a1.errorbar(bits, [r["mean_best_abs_corr"] for r in q], [r["sem_best_abs_corr"] for r in q], marker="o")
    a2.errorbar(bits, [r["heat_mean_kT"] for r in q], [r["heat_sem_kT"] for r in q], marker="o")
    if ref is not None:
        for ax, k, e in ((a1, "mean_best_abs_corr", "sem_best_abs_corr"), (a2, "heat_mean_kT", "heat_sem_kT")):
            ax.axhspan(ref[k] - 2 * ref[e], ref[k] + 2 * ref[e], color="k", alpha=0.1, label="float ± 2 s.e.")
            ax.legend(fontsize=7)
    a1.set_xlabel("coupling bits")
    a1.set_ylabel("mean best |corr| with a training digit")
    a2.set_xlabel("coupling bits")
    a2.set_ylabel("<Q> per sample [kT]")
    fig.suptitle("post-training quantisation (realised ideal model)")
    return _save(fig, path)


def side_by_side(groups: dict[str, np.ndarray], shape: Sequence[int], path: str | Path, *, n: int = 8) -> Path:
    """Rows of generated images, one row per source (e.g. float ideal / realised ideal / SPICE)."""
    plt = _plt()
    rows = len(groups)
    fig, axes = plt.subplots(rows, n, figsize=(1.2 * n, 1.35 * rows), squeeze=False)
    for r, (name, states) in enumerate(groups.items()):
        for j in range(n):
            ax = axes[r, j]
            ax.axis("off")
            if j < len(states):
                ax.imshow(_image(states[j], shape), cmap="gray", interpolation="nearest")
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    return _save(fig, path)


def unit_moments(mean_ideal: np.ndarray, mean_spice: np.ndarray, var_ideal: np.ndarray, var_spice: np.ndarray,
                 n_spice: int, path: str | Path) -> Path:
    """Per-unit means and variances, SPICE against the ideal model, with +-2 s.e. of SPICE."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.6))
    se_m = np.sqrt(var_ideal / n_spice)
    a1.errorbar(mean_ideal, mean_spice, yerr=2 * se_m, fmt="o", ms=3, alpha=0.6)
    lim = [min(mean_ideal.min(), mean_spice.min()), max(mean_ideal.max(), mean_spice.max())]
    a1.plot(lim, lim, "k--", lw=0.8)
    a1.set_xlabel("ideal (realised) mean x_i")
    a1.set_ylabel("SPICE mean x_i")
    se_v = var_ideal * np.sqrt(2.0 / max(n_spice - 1, 1))
    a2.errorbar(var_ideal, var_spice, yerr=2 * se_v, fmt="o", ms=3, alpha=0.6)
    lim = [0, max(var_ideal.max(), var_spice.max())]
    a2.plot(lim, lim, "k--", lw=0.8)
    a2.set_xlabel("ideal (realised) var x_i")
    a2.set_ylabel("SPICE var x_i")
    fig.suptitle(f"per-unit moments at t_f ({n_spice} SPICE runs, bars: ±2 s.e.)")
    return _save(fig, path)


# ---- calibration ---------------------------------------------------------------------------
def fitted_vs_programmed(intended: Computer, fits: dict[str, Fit], path: str | Path) -> Path:
    """Couplings: fitted against intended; b, J2, kT: fitted - intended per unit. One marker
    set per fit (e.g. before / after correction), error bars 2 standard errors."""
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    iu = np.triu_indices(intended.n_units, 1)
    m = intended.mask[iu]
    units = np.arange(intended.n_units)
    for k, (name, f) in enumerate(fits.items()):
        e, s = f.estimate, f.stderr
        axes[0].errorbar(intended.J[iu][m], f.J[iu][m], yerr=2 * f.J_se[iu][m], fmt="o", ms=3, alpha=0.6,
                         label=name)
        for ax, key in zip(axes[1:], ("b", "J2", "kT")):
            ax.errorbar(units + 0.15 * k, e[key] - getattr(intended, key), yerr=2 * s[key], fmt="o", ms=3,
                        alpha=0.7, label=name)
    lo, hi = axes[0].get_xlim()
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[0].set_xlabel("intended J_ij (realised program)")
    axes[0].set_ylabel("fitted J_ij (chip)")
    axes[0].set_title("couplings")
    for ax, key in zip(axes[1:], ("b", "J2", "kT")):
        ax.axhline(0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("unit")
        ax.set_title(f"{key}: fitted - intended")
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def residual_histogram(residuals: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """Standardised residuals of the Euler likelihood (should be N(0, 1)), all units pooled."""
    plt = _plt()
    r = np.asarray(residuals, dtype=float).ravel()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(r, bins=80, density=True, alpha=0.6, label=f"mean {r.mean():.3f}, sd {r.std():.3f}")
    g = np.linspace(-5, 5, 400)
    ax.plot(g, np.exp(-g * g / 2) / np.sqrt(2 * np.pi), "k-", lw=1, label="N(0, 1)")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1)
    ax.set_xlabel("standardised residual (dx - drift dt) / sqrt(2 mu kT dt)")
    ax.legend(fontsize=7)
    ax.set_title(title or "residuals of the fit")
    return _save(fig, path)


def error_history(rows: list[dict], path: str | Path) -> Path:
    """Estimated RMS error per parameter class against the measurement: solid, with the
    measurement noise removed (what the chip still gets wrong); dashed, the raw fit - intended
    (which cannot fall below the fit's own standard error)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    keys = ["J", "b", "J2", "J4", "kT", "mu"]
    it = [r["iteration"] for r in rows]
    floor = 1e-6
    for k in keys:
        (line,) = ax.semilogy(it, [max(r["estimated_errors"][k], floor) for r in rows], "--", alpha=0.5, lw=1)
        if all(k in r.get("estimated_true_errors", {}) for r in rows):
            ax.semilogy(it, [max(r["estimated_true_errors"][k], floor) for r in rows], "o-", color=line.get_color(),
                        label=k)
        else:
            line.set_label(k)
    ax.set_xlabel("measurement (0: as programmed)")
    ax.set_ylabel("RMS error vs intended (model units)")
    ax.set_title("solid: noise removed; dashed: raw fit - intended", fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)
