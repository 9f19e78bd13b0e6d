"""The subcommand parts that need the calibration stack (thermohw.calibrate: tqdm, threadpoolctl,
the virtual chips): ``thermohw calibrate`` and cosim's --chip-seed. commands.py loads this module
only for them."""
from __future__ import annotations

from pathlib import Path

from .calibrate.devices import chip_under_test, draw_errors, open_device
from .calibrate.report import CalibrationSetup, run_calibration
from .compile import CompiledProgram
from .data import Digits
from .errors import InputError


def fabricated_chip(args, prog: CompiledProgram, chip_opts: dict):
    """cosim --chip-seed: the mismatched chip (programmed with --programmed or PROGRAM) to
    co-simulate. Completes ``chip_opts`` with the values used."""
    scale = 1.0 if chip_opts.get("mismatch_scale") is None else float(chip_opts["mismatch_scale"])
    chip_opts.update(mismatch_scale=scale, directed=bool(chip_opts.get("directed")),
                     programmed=chip_opts.get("programmed"))
    onchip = CompiledProgram.load(chip_opts["programmed"]) if chip_opts["programmed"] else prog
    if onchip.realised.n_units != prog.realised.n_units:
        raise InputError(f"--programmed has {onchip.realised.n_units} units, PROGRAM "
                         f"{prog.realised.n_units}")
    errs = draw_errors(onchip.target, onchip.realised.n_units, chip_opts["chip_seed"],
                       reciprocal=not chip_opts["directed"], scale=scale)
    return chip_under_test(onchip, errs, label=f"chip {chip_opts['chip_seed']} (mismatch x{scale:g}) "
                           f"programmed with {chip_opts['programmed'] or args.program}", options=chip_opts)


def calibrate(args) -> int | None:
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
                             verify_workers=args.workers, match_generation=args.match_generation,
                             discretisation=None if args.discretisation == "auto" else args.discretisation)
    dfile = Path(args.program) / "digits.npz"
    rep = run_calibration(prog, open_device(args.device, **kw), args.out, setup,
                          digits=Digits.load(dfile) if dfile.is_file() else None,
                          intended=CompiledProgram.load(args.intended) if args.intended else None,
                          progress=not args.quiet)
    print("\n".join(rep.verdicts))
    print(f"calibrated in {rep.seconds:.0f} s; report -> {args.out}, corrected program -> {rep.corrected_program}")
