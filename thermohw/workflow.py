"""The stages as functions over run folders: train, sample, report, demo. The CLI is a thin
layer over these; they are usable from Python as well."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from . import plots
from .computer import Computer
from .data import Digits, load_training_digits, reference_set
from .errors import InputError
from .io import write_json
from .langevin import BLOCK, GENERATION_DTYPE, Trajectory, generate, noising, steps_for
from .metrics import digit_scores, heat_stats, mlp_denoiser_advantage, thermodynamic_advantage
from .resources import check_memory
from .provenance import provenance
from .train import TrainConfig, TrainState, imposed_field, new_state, train
from .chipaware import layout_stats, restrict, target_mask
from .chipspec import ChipSpec
from .target import resolve

PAPER_HEAT_KT = (2.9e3, 3.5e2)  # Whitelam 2025: <Q> and s.d. over 1000 generated trajectories


def run_training(out: str | Path, *, mnist: str | Path | None = None, digits: Sequence[int] | None = None,
                 indices: Sequence[int] | None = None, n_hidden: int = 512, connectivity: str = "paper",
                 config: TrainConfig | None = None, J2: float = 1.0, J4: float = 1.0, mu: float = 1.0,
                 kT: float = 0.1, resume: bool = False, progress: bool = True,
                 target=None, qat: bool = False, bits: int | None = None, mismatch: bool = False,
                 mismatch_scale: float = 1.0, init: str | Path | None = None, pixels: str = "standard") -> dict:
    """Train into folder ``out``: model.npz, digits.npz, checkpoint.npz, train.json, plots/.

    Chip-aware training (thermohw.chipaware): ``target`` (a Target, preset name or YAML path)
    restricts the couplings to those the target offers after placement; ``qat`` trains through
    the target's quantisation (straight-through; ``bits`` overrides the coupling width) and
    saves the quantised model as model.npz and the float shadow as shadow.npz; ``mismatch``
    evaluates each cycle's gradient on a chip drawn from the target's tolerances. ``init``
    starts from an existing model (fine-tuning) instead of zeros. ``pixels``: how images become
    patterns (:data:`thermohw.data.PIXEL_SCALINGS`)."""
    if (qat or mismatch or bits is not None) and target is None:
        raise InputError("--qat, --mismatch and --bits need --target (the chip to train for)")
    if bits is not None and not qat:
        raise InputError("--bits sets the quantisation grid; it needs --qat")
    if resume and (target is not None or init is not None):
        raise InputError("--resume continues with the settings stored in the checkpoint; "
                         "drop --target/--qat/--mismatch/--init")
    out = Path(out)
    ck = out / "checkpoint.npz"
    if resume:  # settings left at their defaults are taken from the checkpoint, not imposed
        default = TrainConfig()
        asked = {k: v for k, v in asdict(config).items() if v != getattr(default, k)} if config else {}
        return resume_training(out, asked, progress=progress)
    config = config or TrainConfig()
    if ck.exists():
        raise InputError(f"{out} already holds a training run; pass --resume to continue it "
                         "or choose another output folder")
    d = load_training_digits(mnist, digits=digits, indices=indices, pixels=pixels)
    n_units = d.n_pixels + (n_hidden if init is None else 0)
    steps = steps_for(config.t_f, config.dt) + 1
    # at least two cycles' noising trajectories (the trainer draws as many cycles side by side
    # as a quarter of the free memory holds, train.cycles_per_group), the gradient's step
    # chunks (~100 MB) and about ten N x N matrices (J, mask, gradient, average)
    check_memory(16 * steps * config.batch * n_units + 10 ** 8 + 80 * n_units ** 2,
                 f"training {n_units} units with batches of {config.batch} trajectories of {steps} steps",
                 "use fewer --hidden units, a smaller --batch or a larger --dt")
    st = _initial_state(d, config, n_hidden=n_hidden, connectivity=connectivity, J2=J2, J4=J4, mu=mu,
                        kT=kT, target=target, qat=qat, bits=bits, mismatch=mismatch,
                        mismatch_scale=mismatch_scale, init=init, progress=progress)
    return _train_and_finish(out, st, progress)


def resume_training(out: str | Path, asked: dict | None = None, *, progress: bool = True, **given) -> dict:
    """Continue the interrupted (or finished) training run in ``out`` as it was configured.

    ``asked``: TrainConfig fields given anew (only those; the rest come from the checkpoint).
    ``cycles`` may be raised to extend the run (not below the cycles done) and
    ``checkpoint_every`` changed; any other field, and any of ``given`` (mnist, digits, indices,
    n_hidden, connectivity, J2, J4, kT, target, qat, bits, mismatch, init), must equal the
    run's or is refused by name."""
    out = Path(out)
    ck = out / "checkpoint.npz"
    if not ck.is_file():
        raise InputError(f"--resume: no checkpoint at {ck}; start without --resume")
    st = TrainState.load(ck)
    asked = dict(asked or {})
    unknown = sorted(set(asked) - set(asdict(st.config)))
    if unknown:
        raise InputError(f"unknown training settings {', '.join(unknown)}")
    changed = [f"{k.replace('_', '-')} ({getattr(st.config, k)!r} in the checkpoint, {v!r} asked)"
               for k, v in asked.items() if k not in _RESUMABLE and v != getattr(st.config, k)]
    changed += _changed_run_settings(st, given)
    if changed:
        raise InputError("--resume continues the run as it was configured; it cannot change "
                         + ", ".join(changed) + ". Drop those options, or start a new run in another folder")
    cycles = int(asked.get("cycles", st.config.cycles))
    if cycles < st.cycle:
        raise InputError(f"--cycles {cycles} is below the {st.cycle} cycles this run has done; "
                         f"give --cycles {st.cycle} or more (or none: the run's own {st.config.cycles})")
    cfg = TrainConfig(**{**asdict(st.config), **{k: asked[k] for k in _RESUMABLE if k in asked}})
    if cfg != st.config:
        st = dataclasses.replace(st, config=cfg)  # every other field (averages, scores) kept
    if progress:
        print(f"resuming {ck} at cycle {st.cycle} of {st.config.cycles}")
    return _train_and_finish(out, st, progress)


def _changed_run_settings(st: TrainState, given: dict) -> list[str]:
    """The run settings outside TrainConfig that ``given`` would change, as 'name (stored,
    asked)' texts."""
    c, chip, out = st.computer, st.chip, []
    unknown = sorted(set(given) - {"mnist", "digits", "indices", "n_hidden", "connectivity", "J2", "J4", "kT",
                                   "target", "qat", "bits", "mismatch", "init", "pixels"})
    if unknown:
        raise InputError(f"unknown run settings {', '.join(unknown)}")

    def differs(name: str, stored, asked) -> None:
        if stored != asked:
            out.append(f"{name} ({stored!r} in the checkpoint, {asked!r} asked)")

    if "pixels" in given:
        differs("pixels", st.digits.pixels, given["pixels"])
    if "n_hidden" in given:
        differs("hidden", c.n_hidden, int(given["n_hidden"]))
    if "connectivity" in given:
        differs("connectivity", c.meta.get("connectivity"), given["connectivity"])
    for name in ("J2", "J4", "kT"):
        if name in given:
            arr = np.asarray(getattr(c, name), dtype=np.float64)
            v = float(given[name])
            if not np.all(arr == v):
                stored = float(arr.flat[0]) if arr.size and np.all(arr == arr.flat[0]) else "per unit"
                out.append(f"{name} ({stored!r} in the checkpoint, {v!r} asked)")
    d = st.digits
    if "digits" in given:
        differs("digits", d.labels.tolist() if d.indices is not None else None, [int(v) for v in given["digits"]])
    if "indices" in given:
        differs("indices", list(d.indices) if d.indices is not None else None, [int(v) for v in given["indices"]])
    if "mnist" in given:
        stored = d.origin
        same = stored not in (None, "sklearn") and Path(stored).resolve() == Path(given["mnist"]).resolve()
        if not same:
            out.append(f"mnist ({stored!r} in the checkpoint, {str(given['mnist'])!r} asked)")
    if "target" in given:
        differs("target", chip.target.name if chip else None, resolve(given["target"]).name)
    for name in ("qat", "bits", "mismatch"):
        if name in given:
            differs(name, getattr(chip, name) if chip else None, given[name])
    if "init" in given:
        differs("init", c.meta.get("init"), str(given["init"]))
    return out


def _train_and_finish(out: Path, st: TrainState, progress: bool) -> dict:
    """Run the remaining cycles (checkpointing into ``out``) and write the trained model,
    plots and train.json."""
    ck = out / "checkpoint.npz"
    out.mkdir(parents=True, exist_ok=True)
    st.digits.save(out / "digits.npz")
    st = train(st, checkpoint=ck, progress=progress)
    c = st.averaged()
    c = c.replace(meta={**c.meta, "train": asdict(st.config), "cycles_done": st.cycle,
                        **({"averaged_iterates": st.avg_count} if st.avg_count else {})})
    chip_info = None
    if st.chip is not None:
        chip_info = st.chip.summary()
        if st.chip.qat:
            c.replace(meta={**c.meta, "chip": {**chip_info, "role": "float shadow"}}).save(out / "shadow.npz")
        c = st.chip.deployed(c).replace(meta={**c.meta, "chip": chip_info})
    c.save(out / "model.npz")
    pdir = out / "plots"
    plots.loss_curve(st.losses, pdir / "loss.png", scores=st.scores)
    if c.n_hidden:
        plots.receptive_fields(c.J, c.n_visible, c.image_shape, pdir / "receptive_fields.png")
    cfg = st.config
    nz = noising(c, st.digits.patterns[:1], t_f=cfg.t_f, dt=cfg.dt, seed=cfg.seed + 1,
                 decay_fraction=cfg.decay_fraction, scale=cfg.bias_scale, t_eq=cfg.t_eq,
                 field=imposed_field(c, st.digits, np.array([0]), cfg),
                 record_every=max(1, steps_for(cfg.t_f, cfg.dt) // 8))
    plots.trajectory_strip(nz.times, nz.x, c.image_shape, pdir / "noising.png",
                           title="noising trajectory (training data)")
    summary = {"model": str(out / "model.npz"), "cycles": st.cycle, "seconds": st.seconds,
               "units": {"visible": c.n_visible, "hidden": c.n_hidden, "couplings": c.n_couplings},
               "digits": {"source": st.digits.source, "labels": st.digits.labels.tolist()},
               "config": asdict(cfg), "learning_rate": cfg.lr, "chip": chip_info,
               "final_loss_mean_last_10pct": float(np.mean(st.losses[-max(1, len(st.losses) // 10):]))
               if len(st.losses) else None,
               "final_excess_loss_last_10pct": float(np.mean(st.losses[-max(1, len(st.losses) // 10):]) - 0.5)
               if len(st.losses) else None,
               "generation_scores": {"columns": ["cycle", "mean_best_abs_corr", "mean_margin", "n_samples"],
                                     "rows": np.asarray(st.scores).tolist(),
                                     "note": "quick scores during training: n_samples generated by the model at that "
                                             "cycle (tail average once averaging began), seeded apart from training"},
               "provenance": provenance(seeds={"train": cfg.seed, "noising_figure": cfg.seed + 1})}
    write_json(out / "train.json", summary)
    return summary


_RESUMABLE = ("cycles", "checkpoint_every", "score_every", "score_runs")  # what a resume may change


def _initial_state(d: Digits, config: TrainConfig, *, n_hidden: int, connectivity: str, J2: float, J4: float,
                   mu: float, kT: float, target, qat: bool, bits: int | None, mismatch: bool,
                   mismatch_scale: float, init: str | Path | None, progress: bool) -> TrainState:
    """A fresh (or fine-tuning) training state, chip-aware when ``target`` is given."""
    if init is not None:
        c0 = Computer.load(init)
        if c0.n_visible != d.n_pixels:
            raise InputError(f"--init model has {c0.n_visible} visible units; the training digits have "
                             f"{d.n_pixels} pixels")
        c0 = c0.replace(image_shape=d.image_shape, placement=None,
                        meta={**{k: v for k, v in c0.meta.items() if k not in ("chip", "train")},
                              "digits": d.source, "labels": d.labels.tolist(), "init": str(init)})
        st = TrainState(c0, d, config)
    else:
        st = new_state(d, config, n_hidden=n_hidden, connectivity=connectivity, J2=J2, J4=J4, mu=mu, kT=kT)
    if target is None:
        return st

    t = resolve(target)
    c = st.computer
    mask, placement = target_mask(t, c.n_visible, c.n_hidden, image_shape=c.image_shape)
    c, dropped = restrict(c, mask, placement)
    c = c.replace(meta={**c.meta, "connectivity": f"target:{t.name}"})
    chip = ChipSpec(t, placement=placement, qat=qat, bits=bits, mismatch=mismatch,
                    mismatch_scale=mismatch_scale, seed=config.seed)
    if progress:
        s = layout_stats(t, mask, placement, c.n_visible)
        print(f"training for target {t.name!r}: {s['couplings']} couplings (max degree {s['max_degree']})"
              + (f"; {dropped} couplings of --init model dropped" if dropped else ""))
    return TrainState(c, d, config, chip=chip)


def digits_file_beside(model: str | Path) -> Path | None:
    """The training digits kept with a model: ``NAME.digits.npz`` beside ``NAME.npz`` (a shipped
    model), else ``digits.npz`` in its folder (a training run); None if neither exists."""
    model = Path(model)
    for cand in (model.with_name(model.stem + ".digits.npz"), model.with_name("digits.npz")):
        if cand.is_file():
            return cand
    return None


def _digits_beside(model: Path, digits: str | Path | None) -> Digits | None:
    if digits:  # asked for by name: it must be there
        return Digits.load(digits)
    p = digits_file_beside(model)
    return Digits.load(p) if p is not None and p.is_file() else None


def run_sampling(model: str | Path, out: str | Path, *, runs: int = 1000, t_f: float = 2.5, dt: float = 1e-3,
                 seed: int = 0, digits: str | Path | None = None, threads: int | None = None,
                 progress: bool = True, reference: str | Path | None = None, dtype: str | None = None) -> dict:
    """Generate ``runs`` samples with the paper's protocol into folder ``out``. ``reference``:
    an images file (MNIST IDX) for the k-NN check (default: the set the digits came from).
    ``dtype``: the simulated state's precision (default GENERATION_DTYPE); summary.json says which."""
    dtype = GENERATION_DTYPE if dtype is None else str(dtype)
    model = Path(model)
    c = Computer.load(model)
    out = Path(out)
    n_steps = steps_for(t_f, dt)
    runs = int(runs)
    if runs < 1:
        raise InputError(f"runs = {runs}; generate at least one sample")
    # what is kept (x0, x_final and per-run heats, in memory and in samples.npz) must fit; the
    # simulation's scratch is bounded by running whole blocks of runs at a time
    check_memory(8 * runs * (3 * c.n_units + 8), f"keeping {runs} samples of {c.n_units} units",
                 "use fewer --runs (samples.npz holds every run's start and final state)")
    # the inputs of the scoring are checked before the (long) generation, not after it
    d = _digits_beside(model, digits)
    if d is not None and d.n_pixels != c.n_visible:
        raise InputError(f"{digits or 'the digits beside the model'}: {d.n_pixels} pixels, but the model has "
                         f"{c.n_visible} visible units; pass the digits it was trained on (--digits)")
    if reference is not None and not Path(reference).is_file():
        raise InputError(f"{reference}: no such images file for the k-NN check (pass an MNIST images IDX file)")
    chunk = sampling_chunk(c.n_units)
    starts = list(range(0, runs, chunk))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps * len(starts), desc=f"generate {runs} runs", unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    parts = []
    try:
        for r0 in starts:
            done = len(parts) * n_steps

            def tick(k: int, done: int = done) -> None:
                bar.update(done + k - bar.n)

            parts.append(generate(c, min(chunk, runs - r0), t_f=t_f, dt=dt, seed=seed, threads=threads,
                                  progress=tick if bar else None, first_block=r0 // BLOCK, dtype=dtype))
    finally:
        if bar is not None:
            bar.close()
    tr = parts[0] if len(parts) == 1 else _concat_runs(parts)
    del parts
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    tr.save(out / "samples.npz")
    # a few recorded trajectories for the denoising figure (cheap: 4 runs)
    show = generate(c, 4, t_f=t_f, dt=dt, seed=seed + 7919, record_every=max(1, n_steps // 8), threads=1,
                    dtype=dtype)
    summary = score(c, tr, d, out, denoise=show, reference=reference)
    summary.update(model=str(model), seconds=seconds, runs=runs, t_f=t_f, dt=dt, seed=seed, dtype=tr.dtype,
                   provenance=provenance(seeds={"generate": seed, "denoising_figure": seed + 7919}))
    write_json(out / "summary.json", summary)
    return summary


_CHUNK_BYTES = 256 * 10 ** 6  # simulation scratch per chunk of runs


def sampling_chunk(n_units: int) -> int:
    """Runs per chunk of a long sampling run: whole blocks of BLOCK runs (so the chunks use the
    single run's random streams and reproduce it exactly) whose scratch fits _CHUNK_BYTES."""
    per_run = 8 * 9 * max(1, int(n_units))
    return max(BLOCK, _CHUNK_BYTES // per_run // BLOCK * BLOCK)


def _concat_runs(parts: list[Trajectory]) -> Trajectory:
    """Chunks of one generation run, joined along the runs axis (no snapshots kept)."""
    p = parts[0]
    cat = lambda k: np.concatenate([getattr(q, k) for q in parts])  # noqa: E731
    return Trajectory(times=p.times, x=None, x0=cat("x0"), x_final=cat("x_final"), heat=cat("heat"),
                      heat_strat=cat("heat_strat"), work=cat("work"), dt=p.dt, n_steps=p.n_steps, kT=p.kT,
                      seed=p.seed, protocol=p.protocol, dtype=p.dtype)


def score(c: Computer, tr: Trajectory, d: Digits | None, out: Path, denoise: Trajectory | None = None,
          reference: str | Path | None = None) -> dict:
    """Digit metrics, heat statistics, advantage estimate and plots for generated samples.
    The k-NN check uses held-out images of the training labels from ``reference`` (an images
    file) or else from the set the training digits came from, when it can be found."""
    pdir = out / "plots"
    xv = tr.x_final[:, :c.n_visible]
    summary: dict = {"heat": heat_stats(tr.heat_kT)}
    if np.all(np.isfinite(tr.heat_strat_kT)):
        summary["heat_stratonovich"] = heat_stats(tr.heat_strat_kT)
        summary["heat_formula_gap_kT"] = float(np.mean(np.abs(tr.heat_kT - tr.heat_strat_kT)))
    summary["paper_reference_heat_kT"] = {"mean": PAPER_HEAT_KT[0], "sd": PAPER_HEAT_KT[1], "n": 1000,
                                          "source": plots.PAPER_HEAT_SOURCE}
    # two digital yardsticks, labelled: simulating this computer step by step (fp32 / int8 MACs)
    # and the paper's MLP denoiser doing the same job
    summary["thermodynamic_advantage"] = {
        **{k: thermodynamic_advantage(c, tr.n_steps, summary["heat"]["mean_kT"], mac=k) for k in ("fp32", "int8")},
        # the paper's MLP shape at this image size (784-128-128-784 for MNIST)
        "mlp_denoiser_paper": mlp_denoiser_advantage(summary["heat"]["mean_kT"],
                                                     layers=(c.n_visible, 128, 128, c.n_visible))}
    captions = None
    if d is not None:
        ref = reference_set(d, reference)
        sc = digit_scores(xv, d.patterns, d.labels, reference=ref)
        if ref is None:
            sc["classifier"] = {"agreement": None, "note": "no held-out images found: pass --reference IMAGES "
                                "(the MNIST images file the digits came from)"}
        per = sc.pop("per_sample")
        summary["digits"] = sc
        captions = [f"{d.labels[b]}{'-' if s < 0 else ''} {a:.2f}"
                    for b, a, s in zip(per["best"], per["best_abs_corr"], per["sign"])]
        plots.image_grid(d.patterns, c.image_shape, pdir / "training_digits.png", title="training digits")
    if c.image_shape:
        plots.image_grid(xv, c.image_shape, pdir / "generated.png", n=25, captions=captions,
                         title="generated samples (label, - if inverted, |corr|)" if captions else "generated samples")
        if denoise is not None and denoise.x is not None:
            plots.trajectory_strip(denoise.times, denoise.x, c.image_shape, pdir / "denoising.png",
                                   runs=denoise.n_runs, title="generation (denoising) trajectories")
    plots.heat_histogram({"V(x0)-V(xf)": tr.heat_kT}, pdir / "heat.png",
                         reference=PAPER_HEAT_KT if c.n_visible == 784 else None,
                         reference_label="Whitelam 2025 (PRL), n = 1000")
    return summary


def read_sample_folder(samples_dir: str | Path, model: str | Path | None = None) -> tuple[Trajectory, Computer, Path]:
    """The samples (``samples.npz``) of a sample folder and the model that made them: ``model``,
    else the one its ``summary.json`` names. Every damaged or mismatched file is an InputError
    naming it."""
    sdir = Path(samples_dir)
    samples = sdir / "samples.npz"
    tr = Trajectory.load(samples)
    prev = sdir / "summary.json"
    if model is None and prev.is_file():
        model = _model_named_in(prev)
        try:
            found = Path(model).is_file()
        except OSError:  # e.g. a name too long for the file system
            found = False
        if not found:
            shown = model if len(model) <= 80 else model[:77] + "..."
            raise InputError(f"{prev}: names the model {shown!r}, which is not a file here; "
                             "pass --model MODEL.npz")
    if model is None:
        raise InputError(f"no model given and {prev} does not name one; pass --model")
    model = Path(model)
    c = Computer.load(model)
    if tr.x_final.shape[1] != c.n_units:
        raise InputError(f"{samples}: the samples have {tr.x_final.shape[1]} units but the model {model} has "
                         f"{c.n_units}; pass the model that generated them with --model")
    return tr, c, model


def _model_named_in(summary: Path) -> str:
    """The ``model`` path a summary.json names (a non-empty string), else an InputError."""
    import json

    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"{summary}: not readable JSON ({type(e).__name__}); pass --model, or regenerate "
                         "the folder with 'thermohw sample'") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, str) or not model.strip() or "\x00" in model:
        shown = repr(model) if len(repr(model)) <= 60 else repr(model)[:57] + "..."
        raise InputError(f"{summary}: 'model' is {shown}, not a path to a model file; pass --model MODEL.npz")
    return model


def make_report(samples_dir: str | Path, *, model: str | Path | None = None, digits: str | Path | None = None,
                out: str | Path | None = None, reference: str | Path | None = None) -> dict:
    """Re-score a sample folder (its samples.npz) and rewrite metrics JSON and plots."""
    sdir = Path(samples_dir)
    tr, c, model = read_sample_folder(sdir, model)
    out = Path(out) if out else sdir
    summary = score(c, tr, _digits_beside(model, digits), out, reference=reference)
    summary.update(model=str(model), samples=str(sdir / "samples.npz"),
                   provenance=provenance(seeds={"samples": tr.seed}))
    write_json(out / "report.json", summary)
    return summary


def demo(out: str | Path = "thermohw-demo", *, cycles: int = 300, runs: int = 200, progress: bool = True) -> dict:
    """Train a small computer on the bundled 8x8 digits, generate samples, write a report."""
    out = Path(out)
    if (out / "train" / "checkpoint.npz").exists():
        import shutil

        shutil.rmtree(out / "train")
    tr = run_training(out / "train", digits=(0, 1, 7), n_hidden=64, config=TrainConfig(cycles=cycles, seed=0),
                      progress=progress)
    sm = run_sampling(out / "train" / "model.npz", out / "samples", runs=runs, seed=1, progress=progress)
    rep = {"train": tr, "samples": sm, "provenance": provenance(seeds={"train": 0, "generate": 1})}
    write_json(out / "report.json", rep)
    return rep
