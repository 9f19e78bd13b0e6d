"""Command-line interface: a thin argparse layer over thermohw.workflow."""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

from . import plots
from ._version import __version__
from .errors import ThermohwError
from .io import check_output_folder
from .provenance import set_command


SEED_MAX = 2 ** 32 - 1  # numpy's legacy seed range; every seed the CLI takes fits it
COUNT_MAX = 2 ** 31 - 1  # counts beyond this overflow int32 indices long before memory runs out


def _parse_int(s: str) -> int:
    """A whole number; '1e6' is accepted when it is one exactly (Decimal: no float rounding)."""
    try:
        return int(s)
    except ValueError:
        pass
    try:
        d = Decimal(s.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if not d.is_finite() or d != d.to_integral_value() or abs(d) > 10 ** 30:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}")
    return int(d)


def _int(lo: int = 0, hi: int = COUNT_MAX, what: str = ""):
    """argparse type: a whole number in lo..hi (Python ints, so no overflow)."""
    def conv(s: str) -> int:
        v = _parse_int(s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{s} is outside {lo}..{hi}{what}")
        return v
    conv.__name__ = "int"
    return conv


_seed = _int(0, SEED_MAX)


def _float(lo: float | None = None, *, strict: bool = False, hi: float | None = None):
    """argparse type: a finite number, >= lo (> lo when strict), <= hi."""
    def conv(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {s}")
        if lo is not None and (v <= lo if strict else v < lo):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {lo:g}, got {s}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi:g}, got {s}")
        return v
    conv.__name__ = "float"
    return conv


def _int_list(s: str) -> list[int]:
    try:
        v = [int(v) for v in s.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not v:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if min(v) < 0:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {s!r}")
    return v


def _positive(kind):
    return _float(0.0, strict=True) if kind is float else _int(1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="thermohw", description="Generative thermodynamic computing: train Langevin computers "
                "(Whitelam 2025), generate digits and measure their heat.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_train(sub)
    _add_sample(sub)
    _add_report(sub)
    _add_compile(sub)
    _add_cosim(sub)
    _add_readout(sub)
    _add_calibrate(sub)
    _add_data(sub)
    _add_doctor(sub)
    _add_estimate(sub)
    _add_targets(sub)
    _add_demo(sub)
    return p


def _add_train(sub) -> None:
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
    t.add_argument("--hidden", type=_int(0, 100_000), default=None,
                   help="hidden units (default 512, or the --init model's)")
    t.add_argument("--connectivity", choices=["paper", "bipartite", "dense"], default=None,
                   help="paper: visible-hidden + hidden-hidden (default)")
    t.add_argument("--pixels", choices=["standard", "range"], default=None,
                   help="how images become patterns: standard = each image to zero mean and unit "
                        "variance (the paper, default); range = each image's pixels mapped to [-1, 1] "
                        "(docs/heat-gap.md)")
    t.add_argument("--cycles", type=_int(1), default=None,
                   help="training trajectories (default 100); with --resume: raise it to extend the run "
                   "(default: the run's own)")
    t.add_argument("--batch", type=_int(1, 1_000_000), default=None, help="trajectories per update (default 1)")
    t.add_argument("--t-f", type=_positive(float), default=None, help="trajectory time t_f (default 2.5)")
    t.add_argument("--dt", type=_positive(float), default=None, help="time step (default 1e-3)")
    t.add_argument("--lr", type=_positive(float), help="learning rate (default (dt/t_f)/sqrt(batch))")
    t.add_argument("--decay-fraction", type=_float(0.0, strict=True, hi=1.0), default=None,
                   help="imposed bias reaches zero at this fraction of t_f (default 0.75)")
    t.add_argument("--kT", type=_positive(float), default=None, help="temperature in model units (default 0.1)")
    t.add_argument("--J2", type=_float(), default=None, help="quadratic on-site coefficient (default 1)")
    t.add_argument("--J4", type=_float(0.0), default=None, help="quartic on-site coefficient (default 1)")
    t.add_argument("--hidden-targets", choices=["pixels", "classes"], default=None, dest="hidden_targets",
                   help="what hidden units are noised towards: pixels = pixel j mod 784 (the paper, default); "
                   "classes = class units, +A for their digit's label and -A/(k-1) otherwise (balanced modes "
                   "with few hidden units, docs/mnist-chip.md)")
    t.add_argument("--hidden-amplitude", type=_positive(float), default=None, dest="hidden_amplitude",
                   help="A, the hidden targets' amplitude (default 1)")
    t.add_argument("--average-from", type=_int(0), dest="average_from", metavar="CYCLE",
                   help="the trained model is the mean of the iterates after CYCLE (tail averaging; default: the "
                   "last iterate, as in the paper)")
    t.add_argument("--seed", type=_seed, default=None, help="random seed, 0..2**32-1 (default 0)")
    t.add_argument("--checkpoint-every", type=_int(1), default=None, help="cycles between checkpoints (default 10)")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in OUT as it was configured; --cycles (raised, to extend it), "
                   "--checkpoint-every and the scoring and output options may be given anew; options that would "
                   "change the run (--seed, --hidden, --batch, ...) must match it or are refused by name")
    ch = t.add_argument_group("chip-aware training (thermohw.chipaware)")
    ch.add_argument("--target", help="train for this hardware target (preset name, see 'thermohw targets', or a "
                    "YAML file): only the couplings its graph offers after placement are trained, so compile "
                    "prunes nothing (rc-paper-kings / rc-paper-local16 fit the 784+512 task)")
    ch.add_argument("--qat", action="store_true", help="quantisation-aware: evaluate each gradient at the "
                    "target's quantised model (couplings, biases, J2 trim), update float shadow parameters "
                    "(straight-through); model.npz is the quantised model, shadow.npz the float one")
    ch.add_argument("--bits", type=_int(2, 16), help="with --qat: coupling bits (default: the target's)")
    ch.add_argument("--mismatch", action="store_true", help="mismatch-aware: evaluate each gradient on a chip "
                    "drawn from the target's component tolerances (seeded by --seed and the cycle)")
    ch.add_argument("--init", metavar="MODEL.npz", help="start from this model (fine-tuning; with --qat: "
                    "quantisation-aware fine-tuning of a float model) instead of zeros")
    t.add_argument("--score-every", type=_int(0), default=None, dest="score_every", metavar="CYCLES",
                   help="every CYCLES cycles generate --score-runs samples and record their mean best |corr| and "
                   "margin (plots/loss.png, train.json, progress bar; own seed, training unchanged); default "
                   "max(50, cycles/10), a few per cent of training time; 0: off")
    t.add_argument("--score-runs", type=_int(2, 100_000), default=None, dest="score_runs",
                   help="samples per quick score (default 16; ~5 s each on the 784 + 512 model)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_plot_format(t)


def _add_sample(sub) -> None:
    s = sub.add_parser("sample", help="generate samples with the paper's protocol and measure heat",
                       description="Equilibrate the coupling-free computer for t_f, run the trained one for "
                       "t_f; writes samples.npz (x_final: runs x units, heat_kT: per run), summary.json "
                       "and plots/ into OUT.")
    s.add_argument("model", help="model.npz written by 'thermohw train'")
    s.add_argument("-o", "--out", required=True, help="output folder")
    s.add_argument("--runs", type=_int(1), default=1000, help="generated trajectories (default 1000)")
    s.add_argument("--t-f", type=_positive(float), default=2.5)
    s.add_argument("--dt", type=_positive(float), default=1e-3)
    s.add_argument("--seed", type=_seed, default=0, help="random seed, 0..2**32-1 (default 0)")
    s.add_argument("--threads", type=_int(1, 1024), help="worker threads (default: all cores for large problems)")
    s.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="precision of the simulated state (default float32; heat is summed in float64 either "
                   "way; summary.json records it)")
    s.add_argument("--digits", help="training digits .npz for scoring (default: NAME.digits.npz or digits.npz beside the model)")
    s.add_argument("--reference", metavar="IMAGES", help="MNIST images file whose held-out images of the training "
                   "labels fit the k-NN check (default: the file the training digits came from)")
    s.add_argument("-q", "--quiet", action="store_true")
    _add_plot_format(s)


def _add_report(sub) -> None:
    r = sub.add_parser("report", help="re-score a sample folder and redraw its plots",
                       description="Reads SAMPLES/samples.npz and writes report.json and plots/.")
    r.add_argument("samples", help="folder written by 'thermohw sample'")
    r.add_argument("--model", help="model.npz (default: the one named in summary.json)")
    r.add_argument("--digits", help="training digits .npz (default: beside the model)")
    r.add_argument("-o", "--out", help="output folder (default: the samples folder)")
    r.add_argument("--reference", metavar="IMAGES", help="MNIST images file for the k-NN check (default: the file "
                   "the training digits came from)")
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    _add_plot_format(r)


def _add_compile(sub) -> None:
    cp = sub.add_parser("compile", help="quantise a model and map it onto a hardware target",
                        description="Compile MODEL onto a target (a preset name or a YAML file): placement, "
                        "scaling, quantisation, lowering to a netlist or parameter set, limit checks. "
                        "Writes the netlist/parameter set, realised.npz (the exact ideal model the hardware "
                        "implements), report.json and summary.txt into OUT.")
    cp.add_argument("model", help="model.npz written by 'thermohw train'")
    cp.add_argument("--target", required=True, help="preset name (list them with 'thermohw targets') or path to a target YAML")
    cp.add_argument("-o", "--out", required=True, help="output folder")
    cp.add_argument("--bits", type=_int(2, 16), help="coupling bits, 2..16 (default: the target's)")
    cp.add_argument("--bias-bits", type=_int(2, 16), help="bias bits, 2..16 (default: the target's)")
    cp.add_argument("--rounding", choices=["nearest", "stochastic"], help="default: the target's")
    cp.add_argument("--seed", type=_seed, default=0,
                    help="seed for stochastic rounding and placement search, 0..2**32-1 (default 0)")
    g = cp.add_mutually_exclusive_group()
    g.add_argument("--prune", dest="prune", action="store_const", const="prune",
                   help="drop couplings the topology cannot host (and report them)")
    g.add_argument("--refuse", dest="prune", action="store_const", const="refuse",
                   help="fail if any coupling cannot be hosted")
    cp.add_argument("--range", choices=["auto", "full"], default="auto",
                    help="auto: smallest full-scale holding the model (default); full: the target's whole range")
    cp.add_argument("--coupling-headroom", type=_float(1.0, hi=1e6), default=None, dest="coupling_headroom",
                    help="auto range: coupling full scale = FACTOR x max|J| (room for gain trims; default: "
                         "~1 + 2.5 x the target's coupling gain mismatch, so a full-scale coupling is out of "
                         "trim range only for a 2.5 sd weak element; 1: none)")
    cp.add_argument("--bias-margin", type=_float(0.0, hi=1e6), default=0.0, dest="bias_margin",
                    help="auto range: bias full scale = max|b| + MARGIN, model units (room for offset trims; "
                    "default 0)")
    cp.add_argument("--netlist", choices=["generate", "free"], default="generate",
                    help="RC/LC netlist: generate = the paper's generation protocol (start in the coupling-free "
                    "equilibrium, written as initial conditions, then the trained dynamics for t_f; default); "
                    "free = a short free run from x = 0")
    cp.add_argument("--netlist-seed", type=_int(1, 2147483647), default=1, dest="netlist_seed",
                    help="seed of the netlist's start state and noise, 1..2147483647 (default 1)")
    cp.add_argument("--t-f", type=_positive(float), dest="t_f",
                    help="generation time, model units (default: the model's training t_f, else 2.5)")
    cp.add_argument("--noise", choices=["trrandom", "pwl", "none"], default="trrandom",
                    help="RC/LC netlist noise: trrandom = ngspice's seeded TRRANDOM source (default); pwl = drawn "
                    "here and written to noise.inc (held PWL current sources the netlist includes: for LTspice, "
                    "Xyce, HSPICE) and noise.npz (the same samples: readout compares the run with the ideal model "
                    "driven by them); none = noiseless, the deterministic drift")
    cp.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _add_cosim(sub) -> None:
    cs = sub.add_parser("cosim", help="run a compiled netlist in ngspice beside the ideal models and compare",
                        description="Runs PROGRAM's netlist in ngspice (transient noise) with the paper's generation "
                        "protocol, runs the float and the realised ideal models, and writes a comparison report "
                        "(cosim.json, plots/, spice_runs.npz) into OUT. Finished SPICE runs are saved as they finish; a run that "
                        "fails or passes --spice-timeout is reported and the others go on; --resume runs the missing ones.")
    cs.add_argument("program", help="folder written by 'thermohw compile'")
    cs.add_argument("-o", "--out", required=True, help="output folder")
    # defaults None: with --resume, an option not given keeps the saved sweep's value (CosimConfig
    # holds the defaults for a new sweep)
    cs.add_argument("--runs", type=_int(2, 1_000_000), help="SPICE runs (default 16)")
    cs.add_argument("--ideal-runs", type=_int(2), help="runs of each ideal model (default 1000)")
    cs.add_argument("--workers", type=_int(1, 1024), help="parallel SPICE processes (default 1)")
    cs.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (instead of local processes)")
    cs.add_argument("--engine", choices=["batch", "shared"],
                    help="batch: ngspice -b -r (default); shared: PySpice's in-process libngspice")
    cs.add_argument("--noise", choices=["trrandom", "pwl"],
                    help="trrandom: ngspice's seeded Gaussian source; pwl: numpy noise shared with the ideal "
                    "run of the same index (paired comparison)")
    cs.add_argument("--nt-fraction", type=_float(0.0, strict=True, hi=0.2),
                    help="noise interval as a fraction of the fastest local time constant (default 0.02)")
    cs.add_argument("--t-f", type=_positive(float), help="generation time, model units (default 2.5)")
    cs.add_argument("--seed", type=_int(0, 20000), help="run seeds, 0..20000 (default 0)")
    cs.add_argument("--spice-timeout", type=_float(0.0, strict=True, hi=1e7), dest="spice_timeout",
                    metavar="SECONDS", help="stop a SPICE run after this long and report it as failed (default: "
                    "20x the run time expected from the netlist's size, at least 300 s)")
    cs.add_argument("--resume", action="store_true",
                    help="continue the sweep saved in OUT: keep its runs, run the missing or failed ones with "
                    "their own seeds; options not given keep their saved values")
    cs.add_argument("--chip-seed", type=_seed, dest="chip_seed",
                    help="co-simulate a fabricated chip: component mismatch drawn from the target's figures with "
                    "this seed (the virtual chips' draw; same seed, same chip)")
    cs.add_argument("--mismatch-scale", type=_float(0.0, hi=1e3), dest="mismatch_scale",
                    help="with --chip-seed: multiply the target's component spreads (default 1)")
    cs.add_argument("--directed", action="store_true",
                    help="with --chip-seed: each direction of a coupling is its own element (non-reciprocal chip)")
    cs.add_argument("--programmed", help="with --chip-seed: program the chip with this folder (e.g. a calibrated "
                    "'corrected/' program) and compare it with PROGRAM's realised model")
    cs.add_argument("-q", "--quiet", action="store_true")
    _add_plot_format(cs)


def _add_readout(sub) -> None:
    ro = sub.add_parser("readout", help="score a plain ngspice run of a compiled netlist (the generated image)",
                        description="Reads RAW, the raw file of 'ngspice -b -r RAW chip.cir' for PROGRAM's generation "
                        "netlist, converts node voltages to model units, scores the final visible state against the "
                        "training digits (best |corr|, margin, k-NN) and, with -o, writes readout.json and plots/.")
    ro.add_argument("program", help="folder written by 'thermohw compile' (rc or lc)")
    ro.add_argument("raw", help="raw file written by ngspice -b -r RAW chip.cir")
    ro.add_argument("-o", "--out", help="folder for readout.json and plots/ (default: print only)")
    ro.add_argument("--reference", metavar="IMAGES", help="MNIST images file for the k-NN check (default: the file "
                    "the training digits came from)")
    ro.add_argument("--nodes", type=_int_list, metavar="I,J,...",
                    help="also draw these units' node voltages v(u<i>) in V against time in us "
                    "(plots/waveforms.png; needs -o)")
    _add_plot_format(ro)


def _add_calibrate(sub) -> None:
    ca = sub.add_parser("calibrate", help="measure a chip, fit what it implements, pre-distort the program, verify",
                        description="Records bias-step trajectories of all units from DEVICE running PROGRAM, fits the "
                        "Langevin computer the chip really implements (J2, J4, b, couplings, kT, mu with standard "
                        "errors), pre-distorts the codes and trims, re-measures, and writes report.json, plots/, "
                        "corrected/ (the corrected program) and recording_initial.npz into OUT. A replay device "
                        "(files: CSV/NPZ/HDF5, layouts in thermohw.calibrate.recording; a lab CSV with a "
                        "columns.yaml map beside it, calibration/README.md) gives one fit and the "
                        "recommended correction.")
    ca.add_argument("program", help="folder written by 'thermohw compile' (an rc or lc target for the virtual chips)")
    ca.add_argument("--device", required=True,
                    help="virtual-ideal | virtual-spice | replay:PATH (a .csv/.npz/.h5 file or a folder of them)")
    ca.add_argument("-o", "--out", required=True, help="output folder")
    ca.add_argument("--runs", type=_int(2), default=256, help="bias-step runs per measurement (default 256)")
    ca.add_argument("--duration", type=_positive(float), default=20.0, help="model time units per run (default 20)")
    ca.add_argument("--sample-interval", type=_positive(float), default=0.01, help="model time units (default 0.01)")
    ca.add_argument("--amplitude", type=_positive(float), default=2.0, help="bias-step amplitude, model units (default 2)")
    ca.add_argument("--iterations", type=_int(1, 1000), default=3, help="correction steps (default 3)")
    ca.add_argument("--mobility", choices=["bias", "nominal"], default="bias",
                    help="bias: fit mu from the known imposed biases (default); nominal: fix mu to the program's")
    ca.add_argument("--discretisation", choices=["auto", "euler", "continuous"], default="auto",
                    help="likelihood: euler (Euler-stepped recordings) or continuous (chips; Ito-Taylor corrected); "
                    "auto picks by device")
    ca.add_argument("--intended", help="replay: the original program the chip should implement (when PROGRAM is "
                    "an already corrected one)")
    ca.add_argument("--J4-trim", type=_positive(float), dest="J4_trim", help="relative step of a cubic-gain trim the "
                    "target YAML does not describe (a target's 'cubic' trim is used when present; neither: J4 is "
                    "reported as untrimmable)")
    ca.add_argument("--match-generation", type=_int(0, 1_000_000), default=0, dest="match_generation", metavar="RUNS",
                    help="judge each correction by RUNS paired generation runs of the predicted chip against the "
                    "intended model; where J4 or mu has no trim, the J2 trims compensate for them (default 0: off)")
    ca.add_argument("--no-noise-trim", action="store_true", help="the noise amplitude cannot be set per unit")
    ca.add_argument("--chip-seed", type=_seed, default=0, help="virtual chips: which chip (its hidden mismatch)")
    ca.add_argument("--mismatch-scale", type=_float(0.0, hi=1e3), default=1.0,
                    help="virtual chips: multiply the target's component spreads (default 1)")
    ca.add_argument("--substeps", type=_int(1, 1_000_000), default=1, help="virtual-ideal: Euler steps per sample (default 1)")
    ca.add_argument("--workers", type=_int(1, 1024), default=1, help="parallel ngspice processes (virtual-spice, --verify-spice)")
    ca.add_argument("--generate-runs", type=_int(0), default=1000,
                    help="generated samples per model for the before/after comparison (0: skip)")
    ca.add_argument("--verify-spice", type=_int(0, 1_000_000), default=0, dest="verify_runs", metavar="RUNS",
                    help="virtual chips: co-simulate the generation on the chip's mismatched netlist in ngspice, "
                    "RUNS runs before and after correction (default 0: skip); uses --workers")
    ca.add_argument("--chunk-runs", type=_int(2), default=256, dest="chunk_runs",
                    help="record at most this many runs at a time and pool their statistics (bounded memory; "
                    "default 256)")
    ca.add_argument("--seed", type=_seed, default=0)
    ca.add_argument("-q", "--quiet", action="store_true")
    _add_plot_format(ca)


def _add_data(sub) -> None:
    da = sub.add_parser("data", help="download a data set (MNIST IDX files from public mirrors, checksummed)",
                        description="Downloads the MNIST IDX .gz files into DIR, trying the mirrors in turn, "
                        "resuming partial downloads (DIR/NAME.part) and verifying every file against the "
                        "checksums in thermohw/download.py before it gets its final name.")
    da.add_argument("dataset", choices=["mnist"])
    da.add_argument("dir", help="folder for the files (e.g. data/mnist)")
    da.add_argument("--split", choices=["test", "train", "all"], default="test",
                    help="test: t10k-* (10,000 digits; what the docs use), train: train-* (60,000), all: both")
    da.add_argument("--mirror", action="append", metavar="URL",
                    help="base URL holding the .gz files; repeat to try several in turn (replaces the default "
                    "mirrors)")
    da.add_argument("-q", "--quiet", action="store_true")


def _add_doctor(sub) -> None:
    sub.add_parser("doctor", help="check ngspice, the shared library, BLAS, optional extras and MNIST",
                   description="Reports what this installation has; exits 1 naming the fix when a required "
                   "part (ngspice) is missing.")


def _add_estimate(sub) -> None:
    es = sub.add_parser("estimate", help="time, energy, element counts and ngspice time of a compiled program",
                        description="For PROGRAM (a 'thermohw compile' folder): physical time per sample (t_f x tau), "
                        "energy per sample (model heat from a quick ideal-model run, plus the modelled housekeeping "
                        "power), the netlist's element counts, and the ngspice time predicted from the benchmarked "
                        "cost laws (benchmarks/README.md).")
    es.add_argument("program", help="folder written by 'thermohw compile'")
    es.add_argument("--runs", type=_int(2, 100_000), default=8,
                    help="ideal-model generation runs for the heat estimate (default 8; s.e. ~1 %% of <Q>)")
    es.add_argument("--seed", type=_seed, default=0, help="seed of those runs (default 0)")
    es.add_argument("--json", action="store_true", help="print the estimate as JSON")


def _add_targets(sub) -> None:
    lt = sub.add_parser("targets", help="list the bundled hardware target presets")
    lt.add_argument("--show", metavar="NAME", help="print one preset's YAML file as written, with its comments")


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", help="train, sample and report on the bundled digits (offline, minutes)",
                       description="Trains a 64 + 64-unit computer on three of scikit-learn's bundled "
                       "8x8 digits, generates samples and writes a report folder.")
    d.add_argument("-o", "--out", default="thermohw-demo", help="output folder (default ./thermohw-demo)")
    d.add_argument("--cycles", type=_int(1), default=300, help="training cycles (default 300)")
    d.add_argument("--runs", type=_int(1), default=200, help="generated samples (default 200)")
    d.add_argument("-q", "--quiet", action="store_true")
    _add_plot_format(d)


def _add_plot_format(sp) -> None:
    """--format, for every subcommand that writes plots."""
    sp.add_argument("--format", choices=["png", "svg", "pdf"], default="png",
                    help="file format of the plots (default png; svg/pdf are vector, for papers)")


_RESUMABLE_FILES = ("checkpoint.npz", "spice_runs.npz")  # finished work a rerun continues from


def _remove_partial(created: Path | None) -> None:
    """After a failed command: remove the output folder it created, unless it holds finished
    work that a rerun with --resume continues from."""
    if created is None or not created.is_dir():
        return
    if any(p.name in _RESUMABLE_FILES for p in created.rglob("*")):
        return
    shutil.rmtree(created, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_command(["thermohw", *(sys.argv[1:] if argv is None else argv)])  # what provenance records
    plots.set_format(getattr(args, "format", "png"))  # for every plot this command writes
    # lazy (start-up): the subcommands' modules (scipy, calibration, cosim) make `thermohw --help` 0.5 s, not 0.25 s
    from .commands import COMMANDS

    created = None
    try:
        created = _check_output(args)
        status = COMMANDS[args.command](args)
    except ThermohwError as e:
        _remove_partial(created)
        print(f"thermohw {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        hint = " - continue with --resume" if args.command == "train" else ""
        print(f"\nthermohw {args.command}: interrupted; finished work was saved{hint}", file=sys.stderr)
        return 130
    return 0 if status is None else status


def _check_output(args) -> Path | None:
    """Every output place is checked before any work starts (a long run must not fail at its end).
    Returns the output folder when this command creates it (removed again if the command fails)."""
    out = getattr(args, "out", None) or (args.samples if args.command == "report" else None)
    if out is None:
        return None
    check_output_folder(out, "-o" if getattr(args, "out", None) else "SAMPLES")
    return None if Path(out).exists() else Path(out)


if __name__ == "__main__":
    sys.exit(main())
