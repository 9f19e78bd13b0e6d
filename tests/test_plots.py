"""Plots and report statistics: the chosen file format (png/svg/pdf) for every plot, Student-t
intervals for small n, heat histograms as densities, the loss above its noise floor and the
untrimmable classes marked in the calibration history. Real numerics; the figures' data are
read back from the matplotlib objects. Seconds."""
import math

import numpy as np
import pytest

from thermohw import InputError, plots
from thermohw.metrics import mean_ci, t_quantile

MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}


@pytest.fixture
def figures(monkeypatch):
    """Keep every figure a plot function saves (then save it as usual)."""
    kept = []
    save = plots._save

    def keep(fig, path):
        kept.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def test_t_quantile_small_n_and_the_interval_it_gives():
    # tables: t(0.975, 15) = 2.131450, t(0.975, 4) = 2.776445; the normal 1.96 is 8 % short at n = 16
    assert t_quantile(16) == pytest.approx(2.131450, rel=1e-6)
    assert t_quantile(5) == pytest.approx(2.776445, rel=1e-6)
    assert t_quantile(16) / 1.959964 == pytest.approx(1.0875, abs=1e-4)
    assert plots.t95(16) == t_quantile(16) and math.isnan(t_quantile(1))
    q = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    s = mean_ci(q)
    assert s["ci95"][1] - s["mean"] == pytest.approx(2.776445 * math.sqrt(12.5 / 5), rel=1e-6)
    assert "Student t" in s["ci95_method"]


def test_t_intervals_cover_95_percent_at_n_16():
    """4000 normal samples of n = 16: the t interval covers the true mean 95 % of the time
    (binomial s.e. 0.0034, so +-0.014 is 4 s.e.); the z = 1.96 interval covers only ~93.7 %."""
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(4000, 16))
    m, sem = x.mean(1), x.std(1, ddof=1) / 4.0
    cover_t = np.mean(np.abs(m - 3.0) <= t_quantile(16) * sem)
    cover_z = np.mean(np.abs(m - 3.0) <= 1.96 * sem)
    assert abs(cover_t - 0.95) < 0.014
    assert cover_z < 0.95 - 0.005 and cover_t - cover_z > 0.005
    lo, hi = mean_ci(x[0])["ci95"]
    assert hi - lo == pytest.approx(2 * t_quantile(16) * sem[0], rel=1e-12)


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_every_plot_is_written_in_the_chosen_format(tmp_path, fmt):
    rng = np.random.default_rng(0)
    with plots.output_format(fmt):
        paths = [
            plots.image_grid(rng.normal(size=(4, 4)), (2, 2), tmp_path / "grid.png"),
            plots.heat_histogram({"a": rng.normal(size=50), "b": rng.normal(size=8)}, tmp_path / "heat.png"),
            plots.loss_curve(0.5 + rng.random(30) * 0.01, tmp_path / "loss.png",
                             scores=np.array([[10, 0.4, 0.1, 16], [20, 0.6, 0.2, 16]])),
            plots.paired_differences({"m": {"x": rng.normal(size=16)}}, tmp_path / "paired.png"),
            plots.unit_moments(np.zeros(3), np.ones(3) * 0.1, np.ones(3), np.ones(3), 16, tmp_path / "um.png"),
            plots.error_history([{"iteration": i, "estimated_errors": {k: 0.1 for k in "J b J2 J4 kT mu".split()}}
                                 for i in range(3)], tmp_path / "hist.png", untrimmable={"mu": 0.1}),
        ]
    assert plots.current_format() == "png"                 # the context is restored
    for p in paths:
        assert p.suffix == "." + fmt and p.is_file()
        assert p.read_bytes()[:5].startswith(MAGIC[fmt])
    assert sorted(q.suffix for q in tmp_path.iterdir()) == ["." + fmt] * len(paths)   # no stray PNG / temp files


def test_vector_plots_are_reproducible_and_bad_formats_refused(tmp_path):
    q = np.random.default_rng(1).normal(size=100)
    with plots.output_format("svg"):
        a = plots.heat_histogram(q, tmp_path / "a.png").read_bytes()
        b = plots.heat_histogram(q, tmp_path / "b.png").read_bytes()
    assert a == b                                         # no creation date in the file
    with pytest.raises(InputError, match="plot format 'jpg' is not supported; use one of png, svg, pdf"):
        plots.set_format("jpg")


def _polygon_area(xy):
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def test_heat_histograms_are_densities_on_common_bins(tmp_path, figures):
    """16 SPICE-like values beside 1000 ideal ones: each histogram's area is 1 (a density),
    whatever its n, so the small sample is as tall as the large one; its values are also drawn
    as ticks; the legend states n, mean and s.d.; the reference is attributed."""
    rng = np.random.default_rng(2)
    big, small = rng.normal(1400, 200, 1000), rng.normal(1400, 200, 16)
    plots.heat_histogram({"realised ideal": big, "SPICE": small}, tmp_path / "h.png", reference=(2900, 350),
                         reference_label="Whitelam 2025 (PRL), n = 1000")
    ax = figures[-1].axes[0]
    from matplotlib.patches import Polygon

    areas = [_polygon_area(p.get_xy()) for p in ax.patches if isinstance(p, Polygon)]
    assert len(areas) >= 2
    np.testing.assert_allclose(areas[:2], 1.0, rtol=1e-9)
    ticks = [ln for ln in ax.lines if ln.get_marker() == "|"]
    assert len(ticks) == 1 and np.array_equal(np.sort(ticks[0].get_xdata()), np.sort(small))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(l.startswith("SPICE (n = 16)") and f"s.d. {small.std(ddof=1):.3g}" in l for l in labels)
    assert any("Whitelam 2025" in l and "s.d. 3.5e+02" in l for l in labels)
    assert "density" in ax.get_ylabel()


def test_paired_difference_bars_are_student_t_intervals(tmp_path, figures):
    d = np.random.default_rng(3).normal(0.3, 1.0, 12)
    plots.paired_differences({"heat": {"chip": d}}, tmp_path / "p.png")
    fig = figures[-1]
    seg = fig.axes[0].collections[0].get_segments()[0]     # the horizontal error bar
    half = (seg[1][0] - seg[0][0]) / 2
    assert half == pytest.approx(t_quantile(12) * d.std(ddof=1) / math.sqrt(12), rel=1e-12)
    assert "Student t, n = 12" in fig._suptitle.get_text()


def test_loss_plot_shows_the_excess_over_the_floor_and_the_scores(tmp_path, figures):
    losses = 0.5 + np.linspace(0.02, 0.001, 40)
    scores = np.array([[20, 0.41, 0.12, 16], [40, 0.63, 0.25, 16]])
    plots.loss_curve(losses, tmp_path / "loss.png", scores=scores)
    top, bottom = figures[-1].axes
    np.testing.assert_allclose(top.lines[0].get_ydata(), losses - 0.5, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(bottom.lines[0].get_xdata(), [20, 40])
    np.testing.assert_array_equal(bottom.lines[0].get_ydata(), [0.41, 0.63])
    np.testing.assert_array_equal(bottom.lines[1].get_ydata(), [0.12, 0.25])
    assert "16 samples" in bottom.get_title()


def test_error_history_marks_untrimmable_classes(tmp_path, figures):
    rows = [{"iteration": i, "estimated_errors": {k: 0.1 / (1 + i) for k in "J b J2 J4 kT mu".split()},
             "estimated_true_errors": {k: 0.05 / (1 + i) for k in "J b J2 J4 kT mu".split()}} for i in range(3)]
    plots.error_history(rows, tmp_path / "e.png", untrimmable={"J4": 0.1, "mu": 0.02, "J_antisymmetric": 0.01})
    ax = figures[-1].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "J4 (no trim: stays)" in labels and "mu (no trim: stays)" in labels
    assert "J" in labels and "b" in labels                 # trimmable classes unmarked (J_antisymmetric is not J)
    assert any("no trim" in t.get_text() for t in ax.texts)


def test_bitwidth_figure_labels_do_not_overlap(tmp_path, figures):
    rows = [{"config": "float", "mean_best_abs_corr": 0.717, "sem_best_abs_corr": 0.005, "heat_mean_kT": 1388,
             "heat_sem_kT": 11}] + [{"config": f"{b} bits", "mean_best_abs_corr": 0.7, "sem_best_abs_corr": 0.005,
                                     "heat_mean_kT": 1390, "heat_sem_kT": 11} for b in range(2, 9)]
    plots.bitwidth_sweep(rows, tmp_path / "s.png", n=300)
    fig = figures[-1]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    a1, a2 = fig.axes
    left_ticks = max(t.get_window_extent(r).x1 for t in a1.get_yticklabels() + a1.get_xticklabels()
                     if t.get_text())
    right_label = a2.yaxis.label.get_window_extent(r)
    assert right_label.x0 > a1.get_tightbbox(r).x1 - 1 and right_label.x0 > left_ticks


def test_cli_format_option_reaches_every_plot(tmp_path):
    """train --format svg and sample --format pdf write only that format; a later command
    without --format is back to PNG."""
    from thermohw.cli import main

    run = tmp_path / "run"
    assert main(["train", "-o", str(run), "--digits", "0,1", "--hidden", "4", "--cycles", "4", "--t-f", "0.05",
                 "--score-runs", "2", "--format", "svg", "-q"]) == 0
    names = sorted(p.name for p in (run / "plots").iterdir())
    assert names and all(n.endswith(".svg") for n in names) and "loss.svg" in names
    smp = tmp_path / "smp"
    assert main(["sample", str(run / "model.npz"), "-o", str(smp), "--runs", "4", "--t-f", "0.05",
                 "--format", "pdf", "-q"]) == 0
    names = sorted(p.name for p in (smp / "plots").iterdir())
    assert "heat.pdf" in names and all(n.endswith(".pdf") for n in names)
    assert main(["report", str(smp), "-o", str(tmp_path / "rep")]) == 0
    assert all(p.suffix == ".png" for p in (tmp_path / "rep" / "plots").iterdir())
