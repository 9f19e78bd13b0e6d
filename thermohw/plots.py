"""All matplotlib lives here. Every function writes one figure and returns its path.

The file format (png, svg or pdf) is chosen once, for every plot a command writes, with
:func:`output_format` (a context manager) or :func:`set_format`; callers name files ``*.png``
and :func:`_save` swaps the suffix. Error bars and bands say what they are (s.d., s.e. or a
95 % confidence interval from Student's t with n - 1 degrees of freedom, see :func:`t95`) and
the n they come from."""
from __future__ import annotations

import contextlib
import contextvars
import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import InputError
from .io import atomic_write
from .metrics import t_quantile

FORMATS = ("png", "svg", "pdf")
_FORMAT: contextvars.ContextVar[str] = contextvars.ContextVar("thermohw_plot_format", default="png")
# the paper's heat figure, quoted wherever it is drawn
PAPER_HEAT_SOURCE = ("Whitelam, Phys. Rev. Lett. 2025 (arXiv:2506.15121): <Q> = 2.9e3 kT, s.d. 3.5e2 kT "
                     "over 1000 generated trajectories")


def _check_format(fmt: str) -> str:
    f = str(fmt).lower().lstrip(".")
    if f not in FORMATS:
        raise InputError(f"plot format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    return f


def set_format(fmt: str) -> None:
    """Write every following plot (in this thread/context) as ``fmt``: png, svg or pdf."""
    _FORMAT.set(_check_format(fmt))


def current_format() -> str:
    return _FORMAT.get()


@contextlib.contextmanager
def output_format(fmt: str) -> Iterator[str]:
    """``with output_format("svg"): ...`` - plots written inside are SVG files."""
    token = _FORMAT.set(_check_format(fmt))
    try:
        yield token.var.get()
    finally:
        _FORMAT.reset(token)


def t95(n: int) -> float:
    """Half-width factor of a two-sided 95 % confidence interval of a mean of ``n`` values:
    Student's t quantile with n - 1 degrees of freedom (2.13 for n = 16, where the normal 1.96
    would make the interval 8 % too narrow); NaN for n < 2."""

    return t_quantile(n)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "thermohw"  # fixed SVG element ids: same data, same file

    return plt


def _save(fig, path: str | Path) -> Path:
    fmt = _FORMAT.get()
    path = Path(path).with_suffix("." + fmt)
    # no creation dates in vector files: the same data give the same bytes
    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=110, bbox_inches="tight", metadata=meta))
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
                   reference: tuple[float, float] | None = None, reference_label: str = "",
                   title: str = "") -> Path:
    """Histogram(s) of heat per generated sample in kT, as densities on common bins, so a
    small sample (16 SPICE runs) shows beside 1000 ideal runs; samples of fewer than 50 values
    are also drawn as ticks along the axis. The legend gives each series' n, mean and s.d.
    ``reference`` = (mean, s.d.) to mark, attributed by ``reference_label``."""
    plt = _plt()
    series = heat_kT if isinstance(heat_kT, dict) else {"heat": heat_kT}
    clean = {k: np.asarray(q, dtype=float)[np.isfinite(np.asarray(q, dtype=float))] for k, q in series.items()}
    allq = np.concatenate([q for q in clean.values() if q.size] or [np.zeros(1)])
    lo, hi = float(allq.min()), float(allq.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    for k, (name, q) in enumerate(clean.items()):
        if not q.size:
            continue
        sd = f"{q.std(ddof=1):.3g}" if q.size > 1 else "n/a"
        (patch,) = ax.hist(q, bins=edges, density=True, histtype="stepfilled", alpha=0.35,
                           label=f"{name} (n = {q.size}): mean {q.mean():.4g}, s.d. {sd} kT")[2][:1]
        if q.size < 50:
            ax.plot(q, np.zeros_like(q), "|", ms=14, mew=1.2, color=patch.get_facecolor()[:3],
                    transform=ax.get_xaxis_transform(), clip_on=False)
    if reference is not None:
        lab = reference_label or "reference"
        ax.axvline(reference[0], color="k", ls="--",
                   label=f"{lab}: {reference[0]:.3g} kT (band: ± s.d. {reference[1]:.2g})")
        ax.axvspan(reference[0] - reference[1], reference[0] + reference[1], color="k", alpha=0.08)
    ax.set_xlabel("heat emitted per sample Q [kT]")
    ax.set_ylabel("probability density [1/kT]")
    ax.legend(fontsize=6.5)
    ax.set_title(title or "heat per generated sample", fontsize=10)
    return _save(fig, path)


def paired_differences(diffs: dict[str, dict[str, np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """Per-model mean paired difference from a reference (samples driven by the same noise)
    with its 95 % confidence interval (Student's t, n - 1 dof), one panel per metric:
    ``diffs[metric][model] = per-sample differences``. Where histograms of the metric overlap
    completely, this shows what differs."""
    plt = _plt()
    metrics = list(diffs)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.7 + 0.45 * len(diffs[metrics[0]])),
                             squeeze=False)
    ns = set()
    for ax, m in zip(axes[0], metrics):
        names = list(diffs[m])
        for y, k in enumerate(names):
            d = np.asarray(diffs[m][k], dtype=float)
            ns.add(d.size)
            half = t95(d.size) * d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else 0.0
            ax.errorbar(d.mean(), y, xerr=half, fmt="o", capsize=3)
        ax.axvline(0.0, color="k", lw=0.8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.tick_params(axis="x", labelsize=7)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0][0] else [""] * len(names), fontsize=7)
        ax.set_xlabel(f"paired difference in {m}", fontsize=8)
        ax.invert_yaxis()
    n_txt = ", ".join(str(n) for n in sorted(ns))
    fig.suptitle((title or "paired differences from the reference")
                 + f"\nbars: 95 % CI of the mean (Student t, n = {n_txt} pairs)", fontsize=9)
    return _save(fig, path)


NOISE_FLOOR = 0.5  # reverse-path action per unit and step of a perfect model (train.sgd_update)


def loss_curve(losses: np.ndarray, path: str | Path, *, scores: np.ndarray | None = None) -> Path:
    """Training progress. Top: the reverse-path action per unit-step minus its noise floor 0.5
    (the floor is what a perfect model scores, so only the excess can show learning). Bottom,
    given ``scores`` (rows: cycle, mean best |corr|, mean margin, [n samples]; see
    ``train.TrainState.scores``): the quick generation score during training."""
    plt = _plt()
    ex = np.asarray(losses, dtype=float) - NOISE_FLOOR
    sc = None if scores is None or np.size(scores) == 0 else np.atleast_2d(np.asarray(scores, dtype=float))
    two = sc is not None
    fig, axes = plt.subplots(2 if two else 1, 1, figsize=(5.4, 5.4 if two else 3.2), sharex=True, squeeze=False)
    ax = axes[0, 0]
    cyc = np.arange(1, ex.size + 1)
    ax.plot(cyc, ex, lw=0.6, alpha=0.5, label="per cycle")
    if ex.size >= 20:
        w = max(5, ex.size // 50)
        ax.plot(np.arange(w, ex.size + 1), np.convolve(ex, np.ones(w) / w, mode="valid"), lw=1.5,
                label=f"running mean ({w} cycles)")
    ax.axhline(0.0, color="k", ls=":", lw=0.8, label="perfect model (floor 0.5)")
    ax.set_ylabel("excess action per unit-step\n(-ln P / unit step) - 0.5", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("training loss above its noise floor", fontsize=10)
    if two:
        b = axes[1, 0]
        n = int(sc[0, 3]) if sc.shape[1] > 3 else None
        b.plot(sc[:, 0], sc[:, 1], "o-", ms=3, label="mean best |corr| with a training digit")
        b.plot(sc[:, 0], sc[:, 2], "s-", ms=3, label="mean margin to the second best")
        b.set_ylabel("generation score", fontsize=8)
        b.set_ylim(min(0.0, float(np.min(sc[:, 1:3]))), 1.0)
        b.legend(fontsize=7)
        b.set_title(f"quick generation score ({n} samples each)" if n else "quick generation score", fontsize=9)
        b.set_xlabel("training cycle")
    else:
        ax.set_xlabel("training cycle")
    return _save(fig, path)


def bitwidth_sweep(rows: list[dict], path: str | Path, *, n: int | None = None) -> Path:
    """Digit quality and heat against coupling bit width (the 'float' row as a reference band).
    Bars and band are 95 % confidence intervals of the mean (Student t) from the rows' standard
    errors; ``n``: samples per row (for the t quantile and the caption; default 1.96, large n)."""
    plt = _plt()
    ref = next((r for r in rows if r["config"] == "float"), None)
    q = [r for r in rows if r["config"] != "float"]
    bits = [int(r["config"].split()[0]) for r in q]
    k = t95(n) if n else 1.959964
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    a1.errorbar(bits, [r["mean_best_abs_corr"] for r in q], [k * r["sem_best_abs_corr"] for r in q], marker="o",
                capsize=3, label="realised model")
    a2.errorbar(bits, [r["heat_mean_kT"] for r in q], [k * r["heat_sem_kT"] for r in q], marker="o", capsize=3,
                label="realised model")
    if ref is not None:
        for ax, key, e in ((a1, "mean_best_abs_corr", "sem_best_abs_corr"), (a2, "heat_mean_kT", "heat_sem_kT")):
            ax.axhspan(ref[key] - k * ref[e], ref[key] + k * ref[e], color="k", alpha=0.1, label="float model")
    for ax in (a1, a2):
        ax.set_xlabel("coupling bits")
        ax.set_xticks(bits)
        ax.legend(fontsize=7, loc="lower right")
    a1.set_ylabel("mean best |corr| with a training digit", fontsize=9)
    a2.set_ylabel("<Q> per sample [kT]", fontsize=9)
    fig.suptitle("post-training quantisation (realised ideal model); bars: 95 % CI of the mean"
                 + (f", n = {n} samples per row" if n else ""), fontsize=10)
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
    """Per-unit means and variances, SPICE against the ideal model. Bars: 95 % interval of a
    SPICE mean (Student t, n_spice - 1 dof, s.e. from the ideal variance) and of a SPICE
    variance (chi-square, n_spice - 1 dof) if SPICE matched the ideal model."""
    from scipy import stats

    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.6))
    se_m = np.sqrt(var_ideal / n_spice)
    a1.errorbar(mean_ideal, mean_spice, yerr=t95(n_spice) * se_m, fmt="o", ms=3, alpha=0.6)
    lim = [min(mean_ideal.min(), mean_spice.min()), max(mean_ideal.max(), mean_spice.max())]
    a1.plot(lim, lim, "k--", lw=0.8)
    a1.set_xlabel("ideal (realised) mean x_i")
    a1.set_ylabel("SPICE mean x_i")
    dof = max(n_spice - 1, 1)
    lo_v, hi_v = (var_ideal * stats.chi2.ppf(p, dof) / dof for p in (0.025, 0.975))
    a2.errorbar(var_ideal, var_spice, yerr=[np.maximum(var_ideal - lo_v, 0), hi_v - var_ideal], fmt="o", ms=3,
                alpha=0.6)
    lim = [0, max(var_ideal.max(), var_spice.max())]
    a2.plot(lim, lim, "k--", lw=0.8)
    a2.set_xlabel("ideal (realised) var x_i")
    a2.set_ylabel("SPICE var x_i")
    fig.suptitle(f"per-unit moments at t_f (n = {n_spice} SPICE runs; bars: 95 % range of the SPICE value "
                 "if it matched the ideal model, Student t / chi-square)", fontsize=9)
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
    axes[0].legend(fontsize=7, title="bars: ± 2 s.e. of the fit", title_fontsize=7)
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


def error_history(rows: list[dict], path: str | Path, *, untrimmable: dict | Sequence[str] | None = None) -> Path:
    """Estimated RMS error per parameter class against the measurement: solid, with the
    measurement noise removed (what the chip still gets wrong); dashed, the raw fit - intended
    (which cannot fall below the fit's own standard error). Classes in ``untrimmable`` (the
    correction's list: no trim exists for them) are marked 'no trim' - their lines stay flat
    because the correction cannot move them, not because they are right."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    keys = ["J", "b", "J2", "J4", "kT", "mu"]
    fixed = {str(k) for k in (untrimmable or ())}  # keys of correct.Correction.untrimmable
    it = [r["iteration"] for r in rows]
    floor = 1e-6
    for k in keys:
        lab = f"{k} (no trim: stays)" if k in fixed else k
        (line,) = ax.semilogy(it, [max(r["estimated_errors"][k], floor) for r in rows], "--", alpha=0.5, lw=1)
        if all(k in r.get("estimated_true_errors", {}) for r in rows):
            ax.semilogy(it, [max(r["estimated_true_errors"][k], floor) for r in rows],
                        "x:" if k in fixed else "o-", color=line.get_color(), label=lab)
        else:
            line.set_label(lab)
    ax.set_xlabel("measurement (0: as programmed)")
    ax.set_ylabel("RMS error vs intended (model units)")
    ax.set_title("solid: noise removed; dashed: raw fit - intended", fontsize=8)
    if fixed:
        ax.text(0.01, 0.01, "flat lines marked 'no trim': the chip has no trim for that class,\n"
                "so the correction cannot change it (report.json: untrimmable)", transform=ax.transAxes,
                fontsize=6.5, va="bottom")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def waveforms(t_s: np.ndarray, volts: dict[str, np.ndarray], path: str | Path, *, title: str = "",
              note: str = "") -> Path:
    """Node voltages (V) against time (µs) from a SPICE run, one line per node, on the
    simulator's own time points (adaptive steps: no resampling, what the designer's viewer shows)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    t_us = np.asarray(t_s, dtype=np.float64) * 1e6
    for name, v in volts.items():
        ax.plot(t_us, v, lw=0.8, label=name)
    ax.set_xlabel("time (µs)")
    ax.set_ylabel("node voltage (V)")
    if title:
        ax.set_title(title, fontsize=9)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=6.5, va="bottom")
    if len(volts) <= 12:
        ax.legend(fontsize=7, ncol=min(4, len(volts)), loc="upper right")
    ax.grid(alpha=0.3)
    return _save(fig, path)
