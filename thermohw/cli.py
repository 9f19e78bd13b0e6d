"""Command-line interface: a thin argparse layer over thermohw.workflow."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .errors import ThermohwError


def _int_list(s: str) -> list[int]:
    try:
        return [int(v) for v in s.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _positive(kind):
    def conv(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
        return v
    return conv


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="thermohw", description="Generative thermodynamic computing: train Langevin computers "
                "(Whitelam 2025), generate digits and measure their heat.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__import__('thermohw').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", help="train couplings and biases on reversed noising trajectories",
                       description="Train a Langevin computer with the paper's protocol (defaults = the "
                       "published 784 + 512 MNIST experiment when --mnist is given). Writes model.npz, "
                       "digits.npz, checkpoint.npz, train.json and plots/ into OUT.")
    t.add_argument("-o", "--out", required=True, help="output folder")
    t.add_argument("--mnist", help="MNIST images IDX file (.gz or raw); labels file found beside it. "
                   "Default: scikit-learn's bundled 8x8 digits")
    t.add_argument("--digits", type=_int_list, help="labels of the training digits (first image of each), "
                   "default 0,1,2")
    t.add_argument("--indices", type=_int_list, help="or: indices of the training images")
    t.add_argument("--hidden", type=int, default=None, help="hidden units (default 512, or the --init model's)")
    t.add_argument("--connectivity", choices=["paper", "bipartite", "dense"], default="paper",
                   help="paper: visible-hidden + hidden-hidden (default)")
    t.add_argument("--cycles", type=int, default=100, help="training trajectories (default 100)")
    t.add_argument("--batch", type=int, default=1, help="trajectories per update (default 1)")
    t.add_argument("--t-f", type=_positive(float), default=2.5, help="trajectory time t_f (default 2.5)")
    t.add_argument("--dt", type=_positive(float), default=1e-3, help="time step (default 1e-3)")
    t.add_argument("--lr", type=_positive(float), help="learning rate (default (dt/t_f)/sqrt(batch))")
    t.add_argument("--decay-fraction", type=_positive(float), default=0.75,
                   help="imposed bias reaches zero at this fraction of t_f (default 0.75)")
    t.add_argument("--kT", type=_positive(float), default=0.1, help="temperature in model units (default 0.1)")
    t.add_argument("--J2", type=float, default=1.0, help="quadratic on-site coefficient (default 1)")
    t.add_argument("--J4", type=float, default=1.0, help="quartic on-site coefficient (default 1)")
    t.add_argument("--hidden-targets", choices=["pixels", "classes"], default="pixels", dest="hidden_targets",
                   help="what hidden units are noised towards: pixels = pixel j mod 784 (the paper, default); "
                   "classes = class units, +A for their digit's label and -A/(k-1) otherwise (balanced modes "
                   "with few hidden units, docs/mnist-chip.md)")
    t.add_argument("--hidden-amplitude", type=_positive(float), default=1.0, dest="hidden_amplitude",
                   help="A, the hidden targets' amplitude (default 1)")
    t.add_argument("--average-from", type=int, dest="average_from", metavar="CYCLE",
                   help="the trained model is the mean of the iterates after CYCLE (tail averaging; default: the "
                   "last iterate, as in the paper)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=10, help="cycles between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue the interrupted run in OUT")
    ch = t.add_argument_group("chip-aware training (thermohw.chipaware)")
    ch.add_argument("--target", help="train for this hardware target (preset name, see 'thermohw targets', or a "
                    "YAML file): only the couplings its graph offers after placement are trained, so compile "
                    "prunes nothing (rc-paper-kings / rc-paper-local16 fit the 784+512 task)")
    ch.add_argument("--qat", action="store_true", help="quantisation-aware: evaluate each gradient at the "
                    "target's quantised model (couplings, biases, J2 trim), update float shadow parameters "
                    "(straight-through); model.npz is the quantised model, shadow.npz the float one")
    ch.add_argument("--bits", type=int, help="with --qat: coupling bits (default: the target's)")
    ch.add_argument("--mismatch", action="store_true", help="mismatch-aware: evaluate each gradient on a chip "
                    "drawn from the target's component tolerances (seeded by --seed and the cycle)")
    ch.add_argument("--init", metavar="MODEL.npz", help="start from this model (fine-tuning; with --qat: "
                    "quantisation-aware fine-tuning of a float model) instead of zeros")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="generate samples with the paper's protocol and measure heat",
                       description="Equilibrate the coupling-free computer for t_f, run the trained one for "
                       "t_f; writes samples.npz (x_final: runs x units, heat_kT: per run), summary.json "
                       "and plots/ into OUT.")
    s.add_argument("model", help="model.npz written by 'thermohw train'")
    s.add_argument("-o", "--out", required=True, help="output folder")
    s.add_argument("--runs", type=int, default=1000, help="generated trajectories (default 1000)")
    s.add_argument("--t-f", type=_positive(float), default=2.5)
    s.add_argument("--dt", type=_positive(float), default=1e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, help="worker threads (default: all cores for large problems)")
    s.add_argument("--digits", help="training digits .npz for scoring (default: NAME.digits.npz or digits.npz beside the model)")
    s.add_argument("--reference", metavar="IMAGES", help="MNIST images file whose held-out images of the training "
                   "labels fit the k-NN check (default: the file the training digits came from)")
    s.add_argument("-q", "--quiet", action="store_true")

    r = sub.add_parser("report", help="re-score a sample folder and redraw its plots",
                       description="Reads SAMPLES/samples.npz and writes report.json and plots/.")
    r.add_argument("samples", help="folder written by 'thermohw sample'")
    r.add_argument("--model", help="model.npz (default: the one named in summary.json)")
    r.add_argument("--digits", help="training digits .npz (default: beside the model)")
    r.add_argument("-o", "--out", help="output folder (default: the samples folder)")
    r.add_argument("--reference", metavar="IMAGES", help="MNIST images file for the k-NN check (default: the file "
                   "the training digits came from)")

    cp = sub.add_parser("compile", help="quantise a model and map it onto a hardware target",
                        description="Compile MODEL onto a target (a preset name or a YAML file): placement, "
                        "scaling, quantisation, lowering to a netlist or parameter set, limit checks. "
                        "Writes the netlist/parameter set, realised.npz (the exact ideal model the hardware "
                        "implements), report.json and summary.txt into OUT.")
    cp.add_argument("model", help="model.npz written by 'thermohw train'")
    cp.add_argument("--target", required=True, help="preset name (see --list-targets) or path to a target YAML")
    cp.add_argument("-o", "--out", required=True, help="output folder")
    cp.add_argument("--bits", type=int, help="coupling bits (default: the target's)")
    cp.add_argument("--bias-bits", type=int, help="bias bits (default: the target's)")
    cp.add_argument("--rounding", choices=["nearest", "stochastic"], help="default: the target's")
    cp.add_argument("--seed", type=int, default=0, help="seed for stochastic rounding and placement search")
    g = cp.add_mutually_exclusive_group()
    g.add_argument("--prune", dest="prune", action="store_const", const="prune",
                   help="drop couplings the topology cannot host (and report them)")
    g.add_argument("--refuse", dest="prune", action="store_const", const="refuse",
                   help="fail if any coupling cannot be hosted")
    cp.add_argument("--range", choices=["auto", "full"], default="auto",
                    help="auto: smallest full-scale holding the model (default); full: the target's whole range")
    cp.add_argument("--coupling-headroom", type=float, default=1.0, dest="coupling_headroom",
                    help="auto range: coupling full scale = FACTOR x max|J| (room for gain trims; default 1)")
    cp.add_argument("--bias-margin", type=float, default=0.0, dest="bias_margin",
                    help="auto range: bias full scale = max|b| + MARGIN, model units (room for offset trims; "
                    "default 0)")
    cp.add_argument("--netlist", choices=["generate", "free"], default="generate",
                    help="RC/LC netlist: generate = the paper's generation protocol (start in the coupling-free "
                    "equilibrium, written as initial conditions, then the trained dynamics for t_f; default); "
                    "free = a short free run from x = 0")
    cp.add_argument("--netlist-seed", type=int, default=1, dest="netlist_seed",
                    help="seed of the netlist's start state and noise, 1..2147483647 (default 1)")
    cp.add_argument("--t-f", type=_positive(float), dest="t_f",
                    help="generation time, model units (default: the model's training t_f, else 2.5)")

    cs = sub.add_parser("cosim", help="run a compiled netlist in ngspice beside the ideal models and compare",
                        description="Runs PROGRAM's netlist in ngspice (transient noise) with the paper's generation "
                        "protocol, runs the float and the realised ideal models, and writes a comparison report "
                        "(cosim.json, plots/, spice_runs.npz) into OUT. Finished SPICE runs are kept if interrupted.")
    cs.add_argument("program", help="folder written by 'thermohw compile'")
    cs.add_argument("-o", "--out", required=True, help="output folder")
    cs.add_argument("--runs", type=int, default=16, help="SPICE runs (default 16)")
    cs.add_argument("--ideal-runs", type=int, default=1000, help="runs of each ideal model (default 1000)")
    cs.add_argument("--workers", type=int, default=1, help="parallel SPICE processes (default 1)")
    cs.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (instead of local processes)")
    cs.add_argument("--engine", choices=["batch", "shared"], default="batch",
                    help="batch: ngspice -b -r (default); shared: PySpice's in-process libngspice")
    cs.add_argument("--noise", choices=["trrandom", "pwl"], default="trrandom",
                    help="trrandom: ngspice's seeded Gaussian source; pwl: numpy noise shared with the ideal "
                    "run of the same index (paired comparison)")
    cs.add_argument("--nt-fraction", type=_positive(float), default=0.02,
                    help="noise interval as a fraction of the fastest local time constant (default 0.02)")
    cs.add_argument("--t-f", type=_positive(float), default=2.5)
    cs.add_argument("--seed", type=int, default=0)
    cs.add_argument("--chip-seed", type=int, dest="chip_seed",
                    help="co-simulate a fabricated chip: component mismatch drawn from the target's figures with "
                    "this seed (the virtual chips' draw; same seed, same chip)")
    cs.add_argument("--mismatch-scale", type=float, default=1.0, dest="mismatch_scale",
                    help="with --chip-seed: multiply the target's component spreads (default 1)")
    cs.add_argument("--directed", action="store_true",
                    help="with --chip-seed: each direction of a coupling is its own element (non-reciprocal chip)")
    cs.add_argument("--programmed", help="with --chip-seed: program the chip with this folder (e.g. a calibrated "
                    "'corrected/' program) and compare it with PROGRAM's realised model")
    cs.add_argument("-q", "--quiet", action="store_true")

    ro = sub.add_parser("readout", help="score a plain ngspice run of a compiled netlist (the generated image)",
                        description="Reads RAW, the raw file of 'ngspice -b -r RAW chip.cir' for PROGRAM's generation "
                        "netlist, converts node voltages to model units, scores the final visible state against the "
                        "training digits (best |corr|, margin, k-NN) and, with -o, writes readout.json and plots/.")
    ro.add_argument("program", help="folder written by 'thermohw compile' (rc or lc)")
    ro.add_argument("raw", help="raw file written by ngspice -b -r RAW chip.cir")
    ro.add_argument("-o", "--out", help="folder for readout.json and plots/ (default: print only)")
    ro.add_argument("--reference", metavar="IMAGES", help="MNIST images file for the k-NN check (default: the file "
                    "the training digits came from)")

    ca = sub.add_parser("calibrate", help="measure a chip, fit what it implements, pre-distort the program, verify",
                        description="Records bias-step trajectories of all units from DEVICE running PROGRAM, fits the "
                        "Langevin computer the chip really implements (J2, J4, b, couplings, kT, mu with standard "
                        "errors), pre-distorts the codes and trims, re-measures, and writes report.json, plots/, "
                        "corrected/ (the corrected program) and recording_initial.npz into OUT. A replay device "
                        "(files: CSV/NPZ, layouts in thermohw.calibrate.recording) gives one fit and the "
                        "recommended correction.")
    ca.add_argument("program", help="folder written by 'thermohw compile' (rc target for the virtual chips)")
    ca.add_argument("--device", required=True,
                    help="virtual-ideal | virtual-spice | replay:PATH (a .csv/.npz file or a folder of them)")
    ca.add_argument("-o", "--out", required=True, help="output folder")
    ca.add_argument("--runs", type=int, default=256, help="bias-step runs per measurement (default 256)")
    ca.add_argument("--duration", type=_positive(float), default=20.0, help="model time units per run (default 20)")
    ca.add_argument("--sample-interval", type=_positive(float), default=0.01, help="model time units (default 0.01)")
    ca.add_argument("--amplitude", type=_positive(float), default=2.0, help="bias-step amplitude, model units (default 2)")
    ca.add_argument("--iterations", type=int, default=3, help="correction steps (default 3)")
    ca.add_argument("--mobility", choices=["bias", "nominal"], default="bias",
                    help="bias: fit mu from the known imposed biases (default); nominal: fix mu to the program's")
    ca.add_argument("--discretisation", choices=["auto", "euler", "continuous"], default="auto",
                    help="likelihood: euler (Euler-stepped recordings) or continuous (chips; Ito-Taylor corrected); "
                    "auto picks by device")
    ca.add_argument("--intended", help="replay: the original program the chip should implement (when PROGRAM is "
                    "an already corrected one)")
    ca.add_argument("--J4-trim", type=_positive(float), dest="J4_trim", help="relative step of a cubic-gain trim, if "
                    "the chip has one (default: none, J4 is reported as untrimmable)")
    ca.add_argument("--no-noise-trim", action="store_true", help="the noise amplitude cannot be set per unit")
    ca.add_argument("--chip-seed", type=int, default=0, help="virtual chips: which chip (its hidden mismatch)")
    ca.add_argument("--mismatch-scale", type=float, default=1.0,
                    help="virtual chips: multiply the target's component spreads (default 1)")
    ca.add_argument("--substeps", type=int, default=1, help="virtual-ideal: Euler steps per sample (default 1)")
    ca.add_argument("--workers", type=int, default=1, help="parallel ngspice processes (virtual-spice, --verify-spice)")
    ca.add_argument("--generate-runs", type=int, default=1000,
                    help="generated samples per model for the before/after comparison (0: skip)")
    ca.add_argument("--verify-spice", type=int, default=0, dest="verify_runs", metavar="RUNS",
                    help="virtual chips: co-simulate the generation on the chip's mismatched netlist in ngspice, "
                    "RUNS runs before and after correction (default 0: skip); uses --workers")
    ca.add_argument("--chunk-runs", type=int, default=256, dest="chunk_runs",
                    help="record at most this many runs at a time and pool their statistics (bounded memory; "
                    "default 256)")
    ca.add_argument("--seed", type=int, default=0)
    ca.add_argument("-q", "--quiet", action="store_true")

    lt = sub.add_parser("targets", help="list the bundled hardware target presets")
    lt.add_argument("--show", help="print one preset's YAML")

    d = sub.add_parser("demo", help="train, sample and report on the bundled digits (offline, minutes)",
                       description="Trains a 64 + 64-unit computer on three of scikit-learn's bundled "
                       "8x8 digits, generates samples and writes a report folder.")
    d.add_argument("-o", "--out", default="thermohw-demo", help="output folder (default ./thermohw-demo)")
    d.add_argument("--cycles", type=int, default=300)
    d.add_argument("--runs", type=int, default=200)
    d.add_argument("-q", "--quiet", action="store_true")
    return p


def _print_sample_summary(sm: dict) -> None:
    h = sm["heat"]
    print(f"heat per sample: {h['mean_kT']:.4g} ± {h['sd_kT']:.3g} kT (s.d.; n = {h['n']})")
    if "digits" in sm:
        dg = sm["digits"]
        modes = ", ".join(f"{m['label']}: {m['upright']}+{m['inverted']}inv" for m in dg["modes"])
        print(f"mean best |corr| with a training digit: {dg['mean_best_abs_corr']:.3f} "
              f"± {dg['sem_best_abs_corr']:.3f}; margin to the second best {dg['mean_margin']:.3f} "
              f"± {dg['sem_margin']:.3f}; modes {modes}")
        cl = dg.get("classifier") or {}
        if cl.get("agreement") is not None:
            print(f"k-NN on held-out images names the best-correlated digit for {100 * cl['agreement']:.1f} % "
                  f"of samples ({cl['reference_images']} reference images)")
        elif cl:
            print(f"k-NN check skipped: {cl['note']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import workflow
    from .train import TrainConfig

    try:
        if args.command == "train":
            cfg = TrainConfig(cycles=args.cycles, batch=args.batch, t_f=args.t_f, dt=args.dt,
                              decay_fraction=args.decay_fraction, learning_rate=args.lr, seed=args.seed,
                              checkpoint_every=args.checkpoint_every, hidden_targets=args.hidden_targets,
                              hidden_amplitude=args.hidden_amplitude, average_from=args.average_from)
            from .errors import InputError

            if args.init and args.hidden is not None:
                raise InputError("--hidden conflicts with --init (the hidden units come from the model)")
            if args.target and args.connectivity != "paper":
                raise InputError("--connectivity conflicts with --target (the target's graph sets it)")
            sm = workflow.run_training(args.out, mnist=args.mnist, digits=args.digits, indices=args.indices,
                                       n_hidden=512 if args.hidden is None else args.hidden,
                                       connectivity=args.connectivity, config=cfg,
                                       J2=args.J2, J4=args.J4, kT=args.kT, resume=args.resume,
                                       progress=not args.quiet, target=args.target, qat=args.qat,
                                       bits=args.bits, mismatch=args.mismatch, init=args.init)
            print(f"trained {sm['cycles']} cycles in {sm['seconds']:.1f} s -> {sm['model']}")
        elif args.command == "sample":
            sm = workflow.run_sampling(args.model, args.out, runs=args.runs, t_f=args.t_f, dt=args.dt,
                                       seed=args.seed, digits=args.digits, threads=args.threads,
                                       progress=not args.quiet, reference=args.reference)
            _print_sample_summary(sm)
            print(f"samples, summary.json and plots -> {args.out}")
        elif args.command == "report":
            sm = workflow.make_report(args.samples, model=args.model, digits=args.digits, out=args.out,
                                      reference=args.reference)
            _print_sample_summary(sm)
            print(f"report.json and plots -> {args.out or args.samples}")
        elif args.command == "compile":
            from .compile import CompileOptions, compile_computer, resolve_target, summary_text
            from .computer import Computer

            opts = CompileOptions(bits=args.bits, bias_bits=args.bias_bits, rounding=args.rounding,
                                  prune=args.prune, range=args.range, seed=args.seed,
                                  coupling_headroom=args.coupling_headroom, bias_margin=args.bias_margin,
                                  netlist=args.netlist, netlist_seed=args.netlist_seed, t_f=args.t_f)
            prog = compile_computer(Computer.load(args.model), resolve_target(args.target), opts)
            files = prog.save(args.out)
            beside = workflow.digits_file_beside(args.model)
            if beside is not None:  # keep the training digits with the program, for cosim's digit scores
                import shutil

                shutil.copyfile(beside, Path(args.out) / "digits.npz")
            print(summary_text(prog), end="")
            print(f"wrote {len(files)} files -> {args.out}")
        elif args.command == "cosim":
            from .compile import CompiledProgram
            from .cosim import CosimConfig, run_cosim
            from .data import Digits

            prog = CompiledProgram.load(args.program)
            dfile = Path(args.program) / "digits.npz"
            cfg = CosimConfig(runs=args.runs, ideal_runs=args.ideal_runs, t_f=args.t_f, nt_fraction=args.nt_fraction,
                              noise=args.noise, engine=args.engine, workers=args.workers, scheduler=args.scheduler,
                              seed=args.seed)
            from .errors import InputError

            chip = None
            if args.programmed and args.chip_seed is None:
                raise InputError("--programmed needs --chip-seed (it sets what a fabricated chip is programmed with)")
            if args.chip_seed is not None:
                from .calibrate.device import HiddenErrors
                from .calibrate.spice_chip import chip_under_test

                onchip = CompiledProgram.load(args.programmed) if args.programmed else prog
                if onchip.realised.n_units != prog.realised.n_units:
                    raise InputError(f"--programmed has {onchip.realised.n_units} units, PROGRAM "
                                     f"{prog.realised.n_units}")
                errs = HiddenErrors.draw(onchip.target, onchip.realised.n_units, args.chip_seed,
                                         reciprocal=not args.directed, scale=args.mismatch_scale)
                chip = chip_under_test(onchip, errs, label=f"chip {args.chip_seed} (mismatch x{args.mismatch_scale:g}) "
                                       f"programmed with {args.programmed or args.program}")
            rep = run_cosim(prog, cfg, args.out, digits=Digits.load(dfile) if dfile.is_file() else None,
                            progress=not args.quiet, chip=chip)
            print("\n".join(rep["verdicts"]))
            print(f"{rep['spice_runs']} SPICE runs in {rep['spice_seconds']:.0f} s; report -> {args.out}")
        elif args.command == "readout":
            from .compile import CompiledProgram
            from .data import Digits
            from .readout import read_run

            prog = CompiledProgram.load(args.program)
            dfile = Path(args.program) / "digits.npz"
            rep = read_run(prog, args.raw, digits=Digits.load(dfile) if dfile.is_file() else None,
                           reference=args.reference, out=args.out)
            print(f"{rep['time_points']} time points to t = {rep['end_time_model_units']:.4g} model time units; "
                  f"heat {rep['heat_kT_from_first_stored_point']:.4g} kT")
            if "digit" in rep:
                d = rep["digit"]
                print(f"generated: digit {d['label']}{' (inverted)' if d['inverted'] else ''}, best |corr| "
                      f"{d['best_abs_corr']:.3f}, margin {d['margin']:.3f}"
                      + (f", k-NN says {d['classifier_label']}" if d["classifier_label"] is not None else ""))
                if d.get("classifier_note"):
                    print(d["classifier_note"])
            if args.out:
                print(f"readout.json and plots -> {args.out}")
        elif args.command == "calibrate":
            from .calibrate.device import open_device
            from .calibrate.report import CalibrationSetup, run_calibration
            from .compile import CompiledProgram
            from .data import Digits

            prog = CompiledProgram.load(args.program)
            kw = {}
            if args.device == "virtual-ideal":
                kw = dict(chip_seed=args.chip_seed, scale=args.mismatch_scale, substeps=args.substeps)
            elif args.device == "virtual-spice":
                kw = dict(chip_seed=args.chip_seed, scale=args.mismatch_scale, workers=args.workers)
            setup = CalibrationSetup(runs=args.runs, duration=args.duration, sample_interval=args.sample_interval,
                                     amplitude=args.amplitude, iterations=args.iterations, seed=args.seed,
                                     mobility=args.mobility, J4_trim_step=args.J4_trim,
                                     noise_trim=not args.no_noise_trim, generate_runs=args.generate_runs,
                                     chunk_runs=args.chunk_runs, verify_runs=args.verify_runs,
                                     verify_workers=args.workers,
                                     discretisation=None if args.discretisation == "auto" else args.discretisation)
            dfile = Path(args.program) / "digits.npz"
            rep = run_calibration(prog, open_device(args.device, **kw), args.out, setup,
                                  digits=Digits.load(dfile) if dfile.is_file() else None,
                                  intended=CompiledProgram.load(args.intended) if args.intended else None,
                                  progress=not args.quiet)
            print("\n".join(rep["verdicts"]))
            print(f"calibrated in {rep['seconds']:.0f} s; report -> {args.out}, corrected program -> {rep['corrected_program']}")
        elif args.command == "targets":
            from .target import Target, list_presets

            if args.show:
                print(Target.preset(args.show).to_yaml(), end="")
            else:
                for name in list_presets():
                    t = Target.preset(name)
                    print(f"{name:24s} {t.kind:10s} {t.units:6d} units  {t.topology.type:14s} {t.description}")
        elif args.command == "demo":
            rep = workflow.demo(args.out, cycles=args.cycles, runs=args.runs, progress=not args.quiet)
            _print_sample_summary(rep["samples"])
            print(f"demo report (plots + report.json) -> {args.out}")
    except ThermohwError as e:
        print(f"thermohw {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        hint = " - continue with --resume" if args.command == "train" else ""
        print(f"\nthermohw {args.command}: interrupted; finished work was saved{hint}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
