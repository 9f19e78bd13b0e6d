"""The subcommands, one function each over the library (cli.py holds the parser and calls them
through COMMANDS). Each takes the parsed arguments and returns the exit status (None: 0)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import workflow
from .backends import pwl
from .compile import (CompiledProgram, CompileOptions, check_program_folder, compile_computer, resolve_target,
                      summary_text)
from .computer import Computer
from .cosim import CosimConfig, resume_config, run_cosim
from .cosim_report import CosimReport
from .data import Digits
from .doctor import doctor
from .download import fetch_mnist
from .errors import InputError
from .estimate import estimate, estimate_text
from .executor import check_scheduler_address
from .readout import read_run
from .target import Target, list_presets, preset_text
from .train import TrainConfig


def _train(args) -> int | None:
    # only what was given on the command line (None = not given): a resume takes the rest
    # from the checkpoint, a new run from TrainConfig's defaults
    asked = {k: v for k, v in dict(
        cycles=args.cycles, batch=args.batch, t_f=args.t_f, dt=args.dt, decay_fraction=args.decay_fraction,
        learning_rate=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every,
        hidden_targets=args.hidden_targets, hidden_amplitude=args.hidden_amplitude,
        average_from=args.average_from, score_every=args.score_every,
        score_runs=args.score_runs).items() if v is not None}
    if args.init and args.hidden is not None:
        raise InputError("--hidden conflicts with --init (the hidden units come from the model)")
    if args.target and args.connectivity not in (None, "paper"):
        raise InputError("--connectivity conflicts with --target (the target's graph sets it)")
    if args.digits is not None and args.indices is not None:
        raise InputError("--digits conflicts with --indices (give one of them)")
    if args.resume:
        sm = workflow.resume_training(args.out, asked, progress=not args.quiet, **{k: v for k, v in dict(
            mnist=args.mnist, digits=args.digits, indices=args.indices, n_hidden=args.hidden,
            connectivity=args.connectivity, J2=args.J2, J4=args.J4, kT=args.kT, target=args.target,
            qat=args.qat or None, bits=args.bits, mismatch=args.mismatch or None, init=args.init,
            pixels=args.pixels).items() if v is not None})
    else:
        sm = workflow.run_training(args.out, mnist=args.mnist, digits=args.digits, indices=args.indices,
                                   n_hidden=512 if args.hidden is None else args.hidden,
                                   connectivity=args.connectivity or "paper", config=TrainConfig(**asked),
                                   J2=1.0 if args.J2 is None else args.J2,
                                   J4=1.0 if args.J4 is None else args.J4,
                                   kT=0.1 if args.kT is None else args.kT,
                                   progress=not args.quiet, target=args.target, qat=args.qat,
                                   bits=args.bits, mismatch=args.mismatch, init=args.init,
                                   pixels=args.pixels or "standard")
    print(f"trained {sm['cycles']} cycles in {sm['seconds']:.1f} s -> {sm['model']}")


def _sample(args) -> int | None:
    sm = workflow.run_sampling(args.model, args.out, runs=args.runs, t_f=args.t_f, dt=args.dt,
                               seed=args.seed, digits=args.digits, threads=args.threads,
                               progress=not args.quiet, reference=args.reference, dtype=args.dtype)
    _print_sample_summary(sm)
    print(f"samples, summary.json and plots -> {args.out}")


def _report(args) -> int | None:
    sm = workflow.make_report(args.samples, model=args.model, digits=args.digits, out=args.out,
                              reference=args.reference)
    if not args.quiet:
        _print_sample_summary(sm)
        print(f"report.json and plots -> {args.out or args.samples}")


def _compile(args) -> int | None:
    check_program_folder(args.out)

    opts = CompileOptions(bits=args.bits, bias_bits=args.bias_bits, rounding=args.rounding,
                          prune=args.prune, range=args.range, seed=args.seed,
                          coupling_headroom=args.coupling_headroom, bias_margin=args.bias_margin,
                          netlist=args.netlist, netlist_seed=args.netlist_seed, t_f=args.t_f,
                          noise=args.noise)
    prog = compile_computer(Computer.load(args.model), resolve_target(args.target), opts)
    beside = workflow.digits_file_beside(args.model)
    # keep the training digits with the program, for cosim's digit scores
    files = prog.save(args.out, copies={"digits.npz": beside} if beside is not None else None)
    if not args.quiet:
        print(summary_text(prog), end="")
        print(f"wrote {len(files)} files -> {args.out}")


def _cosim_settings(args) -> tuple[CosimConfig, dict]:
    """The sweep's settings and the chip options: for --resume the saved ones, unless given."""
    if args.scheduler is not None:  # its form, before any work
        check_scheduler_address(args.scheduler)
    given = {k: getattr(args, k) for k in ("runs", "ideal_runs", "t_f", "nt_fraction", "noise", "engine",
                                            "workers", "scheduler", "seed", "spice_timeout")
             if getattr(args, k) is not None}
    chip_opts = {"chip_seed": args.chip_seed, "mismatch_scale": args.mismatch_scale,
                 "directed": args.directed or None, "programmed": args.programmed}
    if args.resume:  # the saved sweep's settings, unless given (and then only those a resume may change)
        cfg, saved_chip = resume_config(args.out, given, chip_opts)
        chip_opts = {**(saved_chip or {}), **{k: v for k, v in chip_opts.items() if v is not None}}
    else:
        cfg = CosimConfig(**given)
    return cfg, chip_opts


def _fabricated_chip(args, prog: CompiledProgram, chip_opts: dict):
    """--chip-seed: the mismatched chip to co-simulate (commands_chip.fabricated_chip); None without it."""
    if chip_opts.get("programmed") and chip_opts.get("chip_seed") is None:
        raise InputError("--programmed needs --chip-seed (it sets what a fabricated chip is programmed with)")
    if chip_opts.get("chip_seed") is None:
        return None
    # lazy: the calibration stack (tqdm, threadpoolctl) only when a chip is asked for; plain cosim runs without it
    from .commands_chip import fabricated_chip

    return fabricated_chip(args, prog, chip_opts)


def _cosim_summary(rep: CosimReport, out: str) -> None:
    """The verdicts and run counts; failed runs make the command fail (the report covers the rest)."""
    print("\n".join(rep.verdicts))
    sw = rep.sweep
    resumed = f", {sw.resumed_runs} of them resumed" if sw.resumed_runs else ""
    print(f"{rep.spice_runs} of {sw.runs_requested} SPICE runs{resumed} ({sw.spice_seconds:.0f} s "
          f"of SPICE this time); report -> {out}")
    if sw.missing_runs:
        failed = "; ".join(" ".join(f"run {f['run']} (seed {f['seed']}): {f['error']}".split())
                           for f in sw.spice_failures)
        raise InputError(f"{len(sw.missing_runs)} of {sw.runs_requested} SPICE runs failed ({failed}); "
                         "the report covers the others - rerun with --resume to run the failed ones")


def _cosim(args) -> int | None:
    cfg, chip_opts = _cosim_settings(args)
    prog = CompiledProgram.load(args.program)
    dfile = Path(args.program) / "digits.npz"
    chip = _fabricated_chip(args, prog, chip_opts)
    try:
        rep = run_cosim(prog, cfg, args.out, digits=Digits.load(dfile) if dfile.is_file() else None,
                        progress=not args.quiet, chip=chip, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\nthermohw cosim: interrupted; finished SPICE runs are saved in {args.out} - continue with "
              "--resume", file=sys.stderr)
        return 130
    _cosim_summary(rep, args.out)


def _readout(args) -> int | None:
    prog = CompiledProgram.load(args.program)
    dfile = Path(args.program) / "digits.npz"
    nfile = Path(args.program) / pwl.NOISE_RECORD  # compile --noise pwl: compare paired
    paired = prog.options.noise == "pwl" and prog.target.kind == "rc" and nfile.is_file() \
        and prog.options.netlist == "generate"
    rep = read_run(prog, args.raw, digits=Digits.load(dfile) if dfile.is_file() else None,
                   reference=args.reference, out=args.out, nodes=args.nodes,
                   noise=pwl.load(nfile) if paired else None)
    _readout_summary(rep)
    if args.out:
        print(f"readout.json and plots -> {args.out}")


def _readout_summary(rep: dict) -> None:
    print(f"{rep['time_points']} time points to t = {rep['end_time_model_units']:.4g} model time units; "
          f"heat {rep['heat_kT_from_first_stored_point']:.4g} kT")
    if "digit" in rep:
        d = rep["digit"]
        print(f"generated: digit {d['label']}{' (inverted)' if d['inverted'] else ''}, best |corr| "
              f"{d['best_abs_corr']:.3f}, margin {d['margin']:.3f}"
              + (f", k-NN says {d['classifier_label']}" if d["classifier_label"] is not None else ""))
        if d.get("classifier_note"):
            print(d["classifier_note"])
    if "paired" in rep:
        pr = rep["paired"]
        print(f"paired with the realised ideal model driven by the same noise ({pr['noise_samples']} samples): "
              f"rms state difference {pr['rms_difference_final']:.3g} at t_f, at most "
              f"{pr['rms_difference_max']:.3g} over the run ({100 * pr['relative_final']:.2f} % and "
              f"{100 * pr['relative_max']:.2f} % of the ideal final spread {pr['ideal_final_spread']:.3g})")


def _calibrate(args) -> int | None:
    # lazy: the calibration stack (tqdm, threadpoolctl) only for the command that calibrates (see _fabricated_chip)
    from .commands_chip import calibrate

    return calibrate(args)


def _estimate(args) -> int | None:
    est = estimate(CompiledProgram.load(args.program), args.program, runs=args.runs, seed=args.seed)
    print(json.dumps(est, indent=2) if args.json else estimate_text(est), end="\n" if args.json else "")


def _targets(args) -> int | None:
    if args.show:
        print(preset_text(args.show), end="")
    else:
        for name in list_presets():
            t = Target.preset(name)
            print(f"{name:24s} {t.kind:10s} {t.units:6d} units  {t.topology.type:14s} {t.description}")


def _data(args) -> int | None:
    files = fetch_mnist(args.dir, split=args.split, mirrors=args.mirror, progress=not args.quiet,
                        log=(lambda s: None) if args.quiet else print)
    print(f"{len(files)} verified MNIST files in {args.dir}")


def _doctor(args) -> int | None:
    return doctor()


def _demo(args) -> int | None:
    rep = workflow.demo(args.out, cycles=args.cycles, runs=args.runs, progress=not args.quiet)
    _print_sample_summary(rep["samples"])
    print(f"demo report (plots + report.json) -> {args.out}")


def _print_sample_summary(sm: dict) -> None:
    h = sm["heat"]
    print(f"heat per sample: {h['mean_kT']:.4g} ± {h['sd_kT']:.3g} kT (s.d.; n = {h['n']})")
    adv = sm.get("thermodynamic_advantage") or {}
    if "mlp_denoiser_paper" in adv and "fp32" in adv:
        m, f = adv["mlp_denoiser_paper"], adv["fp32"]
        print(f"digital energy / heat: 10^{m['log10_advantage']:.1f} against the paper's MLP denoiser "
              f"({'-'.join(map(str, m['layers']))}, {m['digital_energy_kT']:.2g} kT); 10^{f['log10_advantage']:.1f} against simulating this "
              f"computer in fp32 ({f['macs_per_sample']:.3g} MACs)")
    if "digits" in sm:
        dg = sm["digits"]
        modes = ", ".join(f"{m['label']}: {m['upright']}+{m['inverted']}inv" for m in dg["modes"])
        print(f"mean best |corr| with a training digit: {dg['mean_best_abs_corr']:.3f} "
              f"± {dg['sem_best_abs_corr']:.3f}; margin to the second best {dg['mean_margin']:.3f} "
              f"± {dg['sem_margin']:.3f} (± s.e., n = {dg['n_samples']}); modes {modes}")
        cl = dg.get("classifier") or {}
        if cl.get("agreement") is not None:
            print(f"k-NN on held-out images names the best-correlated digit for {100 * cl['agreement']:.1f} % "
                  f"of samples ({cl['reference_images']} reference images)")
        elif cl:
            print(f"k-NN check skipped: {cl['note']}")


COMMANDS = {"train": _train, "sample": _sample, "report": _report, "compile": _compile, "cosim": _cosim,
            "readout": _readout, "calibrate": _calibrate, "estimate": _estimate, "targets": _targets,
            "data": _data, "doctor": _doctor, "demo": _demo}
