"""A catalogue of bad (and borderline valid) inputs to the command line, run in-process
through :func:`thermohw.cli.main` (issue 12).

Every case is a command line plus the files to create first. A bad input must give a non-zero
exit, exactly one error line starting with ``thermohw`` (argparse's usage error included), no
traceback, no output file left behind, no earlier file changed or removed, and nothing
injected in a written netlist (outside comment lines). A VALID case must instead do the right
thing, checked by its ``check``.

    python tests/bad_inputs.py          # run every case, print the table by category
    python tests/bad_inputs.py -v       # ... and one line per case that is not clear

tests/test_bad_inputs.py runs the same cases under pytest.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

MARK = "INJECTED_7f3a"  # text of injection attempts; must never reach a non-comment netlist line


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    """argv: words with {placeholders} (see Fixtures.names). files: {relative path: content}
    created in the case folder first (bytes, str, or a callable (fixtures, path) -> None).
    expect: 'usage' (argparse, exit 2), 'error' (exit 1, one line) or 'ok' (exit 0, then
    ``check(fixtures, case_dir, stdout)`` must pass). words: must appear in the error line.
    owner: who hardens the code behind it (for the lead's bookkeeping)."""

    id: str
    category: str
    argv: list[str]
    expect: str = "error"
    files: dict[str, Any] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    check: Callable | None = None
    owner: str = "cli"
    needs: str | None = None  # 'ro' (a read-only mount), 'nonroot' (permission bits bind)


CASES: list[Case] = []


def case(*a, **k) -> Case:
    c = Case(*a, **k)
    assert c.id not in {x.id for x in CASES}, c.id
    CASES.append(c)
    return c


# ---- file makers ------------------------------------------------------------------------
def idx_bytes(dims: list[int], dtype_code: int = 0x08, payload: bytes | None = None, magic0: bytes = b"\0\0") -> bytes:
    head = magic0 + bytes([dtype_code, len(dims)]) + b"".join(struct.pack(">I", d & 0xFFFFFFFF) for d in dims)
    if payload is None:
        n = math.prod(dims) if dims else 0
        payload = bytes((i * 37) % 256 for i in range(n))
    return head + payload


def good_images(n=6, r=4, c=4) -> bytes:
    return idx_bytes([n, r, c])


def good_labels(n=6) -> bytes:
    return idx_bytes([n], payload=bytes(i % 3 for i in range(n)))


def copy_of(name: str, damage: str | None = None) -> Callable:
    """A copy of fixture ``name`` (a file or folder), optionally damaged."""
    def make(fx: "Fixtures", dst: Path) -> None:
        src = Path(fx.names[name])
        if src.is_dir():
            shutil.copytree(src, dst)
            return
        raw = bytearray(src.read_bytes())
        if damage == "truncated":
            raw = raw[: len(raw) // 2]
        elif damage == "flipped":
            for i in range(60, len(raw) - 30, max(1, len(raw) // 40)):
                raw[i] ^= 0xA5
        elif damage == "zeroed":
            raw[len(raw) // 3: 2 * len(raw) // 3] = bytes(len(raw) // 3 + (len(raw) % 3 > 1))
        elif damage == "tail":
            raw = raw[:-25]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(bytes(raw))
    return make


def npz_of(**arrays) -> Callable:
    def make(fx, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "wb") as fh:
            np.savez(fh, **arrays)
    return make


def record_of(schema: str, header: dict, arrays: dict) -> Callable:
    """A thermohw-style record (JSON header) with chosen, possibly wrong, contents."""
    def make(fx, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        payload["__header__"] = np.array(json.dumps({"schema": schema, **header}))
        with open(dst, "wb") as fh:
            np.savez(fh, **payload)
    return make


def program_without(member: str, kind: str = "prog") -> Callable:
    def make(fx, dst: Path) -> None:
        shutil.copytree(fx.names[kind], dst)
        (dst / member).unlink()
    return make


def program_with(member: str, content: bytes | str | Callable, kind: str = "prog") -> Callable:
    def make(fx, dst: Path) -> None:
        shutil.copytree(fx.names[kind], dst)
        p = dst / member
        if callable(content):
            content(fx, p)
        else:
            p.write_bytes(content.encode() if isinstance(content, str) else content)
    return make


def model_with_meta(meta: dict, n_visible: int = 4, n_hidden: int = 4) -> Callable:
    def make(fx, dst: Path) -> None:
        from thermohw import Computer

        rng = np.random.default_rng(0)
        c = Computer.zeros(n_visible, n_hidden, image_shape=(2, 2) if n_visible == 4 else None)
        J = rng.normal(0, 0.2, c.J.shape)
        c = c.replace(J=np.where(c.mask, (J + J.T) / 2, 0.0), b=rng.normal(0, 0.2, c.n_units), meta=meta)
        dst.parent.mkdir(parents=True, exist_ok=True)
        c.save(dst)
    return make


def target_yaml(preset: str = "rc-8bit-dense", **changes) -> Callable:
    """A preset's YAML with top-level keys changed (values written as YAML, any type)."""
    def make(fx, dst: Path) -> None:
        import yaml

        from thermohw import Target

        d = yaml.safe_load(Target.preset(preset).to_yaml())
        for k, v in changes.items():
            if v is None:
                d.pop(k, None)
            elif isinstance(v, dict) and isinstance(d.get(k), dict):
                d[k] = {**d[k], **v}
            else:
                d[k] = v
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(yaml.safe_dump(d, sort_keys=False))
    return make


def summary_with(**changes) -> Callable:
    def make(fx, dst: Path) -> None:
        shutil.copytree(fx.names["samples"], dst)
        sm = json.loads((dst / "summary.json").read_text())
        sm.update(changes)
        (dst / "summary.json").write_text(json.dumps(sm))
    return make


def samples_with(member: str, content) -> Callable:
    def make(fx, dst: Path) -> None:
        shutil.copytree(fx.names["samples"], dst)
        p = dst / member
        if callable(content):
            content(fx, p)
        else:
            p.write_bytes(content.encode() if isinstance(content, str) else content)
    return make


def csv_recording(n_units: int, rows: list[str], header: str = "# thermohw.recording/1\n# sample_interval: 0.01\n") -> str:
    cols = "run,time," + ",".join(f"x{i}" for i in range(n_units))
    return header + cols + "\n" + "\n".join(rows) + "\n"


def csv_rows(n_units: int, runs: int = 2, T: int = 6, dt: float = 0.01, bad: Callable | None = None) -> list[str]:
    rng = np.random.default_rng(1)
    out = []
    for r in range(runs):
        for t in range(T):
            vals = [f"{v:.4f}" for v in rng.normal(0, 0.3, n_units)]
            row = [str(r), f"{t * dt:.6g}", *vals]
            out.append(",".join(bad(r, t, row) if bad else row))
    return out


# ---- checks for valid cases -------------------------------------------------------------
def _runs_in(path: Path) -> int:
    with np.load(path, allow_pickle=False) as z:
        return int(z["x_final"].shape[0])


def check_sample_runs(n: int) -> Callable:
    def check(fx, d: Path, out: str) -> None:
        assert _runs_in(d / "s" / "samples.npz") == n
        assert json.loads((d / "s" / "summary.json").read_text())["runs"] == n
    return check


def check_recompiled(fx, d: Path, out: str) -> None:
    names = {p.name for p in (d / "p").iterdir()}
    assert "oscillators.yaml" in names, names
    assert "units.csv" not in names, f"stale files of the earlier backend: {names}"
    assert "mechanical oscillators" in (d / "p" / "chip.cir").read_text().splitlines()[0], "stale RC chip.cir"
    listed = set(json.loads((d / "p" / "manifest.json").read_text())["files"])
    assert listed == names - {"manifest.json"}, (listed, names)


def check_compiled(fx, d: Path, out: str) -> None:
    assert (d / "p" / "manifest.json").is_file() and (d / "p" / "report.json").is_file()


# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------
SUB_OUT = {  # a command line of each subcommand that writes into OUT, otherwise valid
    "train": ["train", "-q", "--hidden", "2", "--cycles", "1", "--t-f", "0.01", "--digits", "0,1", "-o", "OUT"],
    "sample": ["sample", "{model}", "--runs", "2", "--t-f", "0.01", "-q", "-o", "OUT"],
    "report": ["report", "{samples}", "-o", "OUT"],
    "compile": ["compile", "{model}", "--target", "rc-8bit-dense", "-o", "OUT"],
    "cosim": ["cosim", "{prog}", "--runs", "2", "--ideal-runs", "2", "--t-f", "0.01", "-q", "-o", "OUT"],
    "calibrate": ["calibrate", "{prog}", "--device", "virtual-ideal", "--runs", "2", "--duration", "0.05",
                  "--iterations", "1", "--generate-runs", "0", "-q", "-o", "OUT"],
    "readout": ["readout", "{prog}", "{d}/chip.raw", "-o", "OUT"],
    "demo": ["demo", "--cycles", "1", "--runs", "2", "-q", "-o", "OUT"],
}


def with_out(cmd: str, out: str) -> list[str]:
    return [out if w == "OUT" else w for w in SUB_OUT[cmd]]


def _build() -> None:
    # ---- the issue's own cases ----------------------------------------------------------
    for cmd in ("train", "sample", "compile"):
        argv = with_out(cmd, "{d}/out") + ["--seed", "-1"]
        case(f"issue/{cmd}-seed-minus-1", "issue: tracebacks", argv, "usage", words=("--seed",))
    case("issue/cosim-chip-seed-minus-1", "issue: tracebacks", with_out("cosim", "{d}/out") + ["--chip-seed", "-1"],
         "usage", words=("--chip-seed",))
    for cmd in ("compile", "train", "sample", "cosim", "calibrate", "report", "demo", "readout"):
        case(f"issue/{cmd}-out-is-file", "issue: tracebacks", with_out(cmd, "{d}/afile"), "error",
             files={"afile": "keep me\n", "chip.raw": b"x"}, words=("afile", "folder"))
        case(f"issue/{cmd}-out-read-only-fs", "issue: tracebacks", with_out(cmd, "{ro}/out"), "error",
             files={"chip.raw": b"x"}, words=("cannot write",), needs="ro")
        case(f"issue/{cmd}-out-under-file", "output places", with_out(cmd, "{d}/afile/sub"), "error",
             files={"afile": "keep me\n", "chip.raw": b"x"}, words=("afile",))
        case(f"issue/{cmd}-out-in-sysfs", "output places", with_out(cmd, "/sys/thermohw-out"), "error",
             files={"chip.raw": b"x"}, words=("cannot write",))
        case(f"issue/{cmd}-out-no-permission", "output places", with_out(cmd, "{d}/locked/out"), "error",
             files={"locked/": 0o555, "chip.raw": b"x"}, words=("cannot write",), needs="nonroot")
    case("issue/cosim-scheduler-not-url", "issue: tracebacks",
         with_out("cosim", "{d}/out") + ["--scheduler", "not a url"], "error", words=("scheduler",), owner="cosim")
    case("issue/replay-npz-object-array", "issue: tracebacks",
         ["calibrate", "{prog}", "--device", "replay:{d}/rec.npz", "-q", "-o", "{d}/out"], "error",
         files={"rec.npz": npz_of(x=np.array([None, 1], dtype=object), time=np.arange(2.0),
                                  sample_interval=np.array(1.0))}, owner="loaders")
    case("issue/replay-npz-corrupt-member", "issue: tracebacks",
         ["calibrate", "{prog}", "--device", "replay:{d}/rec.npz", "-q", "-o", "{d}/out"], "error",
         files={"rec.npz": lambda fx, p: (npz_of(x=np.zeros((8, 2, 8)), time=np.arange(8) * 0.01,
                                                  sample_interval=np.array(0.01))(fx, p),
                                          _corrupt_zip_member(p))}, owner="loaders")
    case("issue/sample-runs-1e8", "issue: tracebacks", ["sample", "{model}", "--runs", "100000000", "-q", "-o",
                                                         "{d}/out"], "error", words=("memory", "--runs"))
    case("issue/sample-runs-1e8-float-notation", "issue: tracebacks",
         ["sample", "{model}", "--runs", "1e8", "-q", "-o", "{d}/out"], "error", words=("memory",))
    case("issue/cosim-ideal-runs-1e8", "issue: tracebacks",
         with_out("cosim", "{d}/out")[:-2] + ["--ideal-runs", "100000000", "-o", "{d}/out"], "error",
         words=("memory",), owner="cosim")
    case("issue/report-summary-model-not-string", "issue: tracebacks", ["report", "{d}/s"], "error",
         files={"s": summary_with(model=12)}, owner="loaders")
    case("issue/report-summary-model-list", "files: summary/samples", ["report", "{d}/s"], "error",
         files={"s": summary_with(model=["a", "b"])}, owner="loaders")
    case("issue/idx-header-overflow", "issue: tracebacks",
         ["train", "-q", "--hidden", "2", "--cycles", "1", "--mnist", "{d}/x-images-idx3-ubyte", "-o", "{d}/out"],
         "error", files={"x-images-idx3-ubyte": idx_bytes([2 ** 32 - 1, 2 ** 32 - 1, 2 ** 31], payload=b"\0" * 64),
                         "x-labels-idx1-ubyte": good_labels()}, owner="loaders")
    case("issue/complex-coupling-matrix", "issue: silent",
         ["sample", "{d}/m.npz", "--runs", "2", "--t-f", "0.01", "-q", "-o", "{d}/out"], "error",
         files={"m.npz": _complex_model}, owner="loaders")
    case("issue/threads-0", "issue: accepted", with_out("sample", "{d}/out") + ["--threads", "0"], "usage",
         words=("--threads",))
    case("issue/threads-minus-1", "issue: accepted", with_out("sample", "{d}/out") + ["--threads", "-1"], "usage",
         words=("--threads",))
    case("issue/cosim-mismatch-scale-minus-2", "issue: accepted",
         with_out("cosim", "{d}/out") + ["--chip-seed", "1", "--mismatch-scale", "-2"], "usage",
         words=("--mismatch-scale",))
    case("issue/calibrate-mismatch-scale-minus-2", "issue: accepted",
         with_out("calibrate", "{d}/out") + ["--mismatch-scale", "-2"], "usage", words=("--mismatch-scale",))
    case("issue/replay-empty-path", "issue: accepted",
         ["calibrate", "{prog}", "--device", "replay:", "-q", "-o", "{d}/out"], "error", words=("replay",),
         owner="loaders")
    case("issue/replay-sample-interval-0", "issue: accepted",
         ["calibrate", "{prog}", "--device", "replay:{d}/rec.csv", "-q", "-o", "{d}/out"], "error",
         files={"rec.csv": csv_recording(72, csv_rows(72), "# thermohw.recording/1\n# sample_interval: 0\n")},
         words=("sample_interval",), owner="loaders")
    # resume (silent wrong results in the issue): valid uses checked for the right behaviour
    case("issue/resume-bare-continues-configured-cycles", "issue: silent",
         ["train", "-q", "--resume", "-o", "{d}/run"], "ok", files={"run": _interrupted_run},
         check=_check_bare_resume)
    case("issue/resume-seed-refused", "issue: silent", ["train", "-q", "--resume", "--seed", "5", "-o", "{d}/run"],
         "error", files={"run": copy_of("run")}, words=("seed",))
    case("issue/resume-hidden-refused", "issue: silent", ["train", "-q", "--resume", "--hidden", "9", "-o",
                                                          "{d}/run"], "error", files={"run": copy_of("run")},
         words=("hidden",))
    case("issue/recompile-other-backend", "issue: silent",
         ["compile", "{small}", "--target", "mechanical-cantilever", "-o", "{d}/p"], "ok",
         files={"p": copy_of("prog_small")}, check=check_recompiled)
    case("issue/cosim-interrupted-rerun-refused", "issue: silent",
         with_out("cosim", "{d}/c"), "error", files={"c": _fake_saved_sweep}, words=("--resume",), owner="cosim")

    # ---- numeric options: negative / zero / huge / nan / inf / non-numeric / empty ---------
    specs = {  # option: (kind, lo, hi, lo_strict)
        "train": {"--hidden": ("i", 0, 100_000), "--cycles": ("i", 1, None), "--batch": ("i", 1, 1_000_000),
                  "--t-f": ("f", 0, None, True), "--dt": ("f", 0, None, True), "--lr": ("f", 0, None, True),
                  "--decay-fraction": ("f", 0, 1, True), "--kT": ("f", 0, None, True), "--J2": ("f", None, None),
                  "--J4": ("f", 0, None), "--hidden-amplitude": ("f", 0, None, True),
                  "--average-from": ("i", 0, None), "--seed": ("i", 0, 2 ** 32 - 1),
                  "--checkpoint-every": ("i", 1, None), "--bits": ("i", 2, 16)},
        "sample": {"--runs": ("i", 1, None), "--t-f": ("f", 0, None, True), "--dt": ("f", 0, None, True),
                   "--seed": ("i", 0, 2 ** 32 - 1), "--threads": ("i", 1, 1024)},
        "compile": {"--bits": ("i", 2, 16), "--bias-bits": ("i", 2, 16), "--seed": ("i", 0, 2 ** 32 - 1),
                    "--coupling-headroom": ("f", 1, 1e6), "--bias-margin": ("f", 0, 1e6),
                    "--netlist-seed": ("i", 1, 2147483647), "--t-f": ("f", 0, None, True)},
        "cosim": {"--runs": ("i", 2, 1_000_000), "--ideal-runs": ("i", 2, None), "--workers": ("i", 1, 1024),
                  "--nt-fraction": ("f", 0, 0.2, True), "--t-f": ("f", 0, None, True), "--seed": ("i", 0, 20000),
                  "--chip-seed": ("i", 0, 2 ** 32 - 1), "--mismatch-scale": ("f", 0, 1e3)},
        "calibrate": {"--runs": ("i", 2, None), "--duration": ("f", 0, None, True),
                      "--sample-interval": ("f", 0, None, True), "--amplitude": ("f", 0, None, True),
                      "--iterations": ("i", 1, 1000), "--J4-trim": ("f", 0, None, True),
                      "--chip-seed": ("i", 0, 2 ** 32 - 1), "--mismatch-scale": ("f", 0, 1e3),
                      "--substeps": ("i", 1, 1_000_000), "--workers": ("i", 1, 1024), "--generate-runs": ("i", 0, None),
                      "--verify-spice": ("i", 0, 1_000_000), "--chunk-runs": ("i", 2, None), "--seed": ("i", 0, 2 ** 32 - 1)},
        "demo": {"--cycles": ("i", 1, None), "--runs": ("i", 1, None)},
    }
    values = {"neg": "-1", "zero": "0", "huge": "1e400", "nan": "nan", "word": "abc", "half": "0.5"}
    for cmd, opts in specs.items():
        for opt, spec in opts.items():
            for vname, v in values.items():
                if _valid_number(v, spec):
                    continue  # a valid value runs the command: covered by the valid cases
                case(f"num/{cmd}{opt}={vname}", f"numbers: {cmd}", with_out(cmd, "{d}/out") + [f"{opt}={v}"],
                     "usage", files={"chip.raw": b"x"}, words=(opt,))
    case("num/train-digits-negative", "numbers: train", with_out("train", "{d}/out")[:-2] + ["--digits=-1", "-o",
                                                                                             "{d}/out"], "usage")
    case("num/train-digits-empty", "numbers: train", ["train", "-q", "--digits", ",", "-o", "{d}/out"], "usage")
    case("num/train-indices-word", "numbers: train", ["train", "-q", "--indices", "1,x", "-o", "{d}/out"], "usage")
    case("num/train-indices-out-of-range", "numbers: train",
         ["train", "-q", "--hidden", "2", "--cycles", "1", "--indices", "5000", "-o", "{d}/out"], "error",
         words=("5000",))
    case("num/train-digit-label-absent", "numbers: train",
         ["train", "-q", "--hidden", "2", "--cycles", "1", "--digits", "11", "-o", "{d}/out"], "error", words=("11",))
    case("mem/train-hidden-100000", "memory", ["train", "-q", "--hidden", "100000", "-o", "{d}/out"], "error",
         words=("memory", "--hidden"))
    case("mem/train-batch-1e6", "memory", ["train", "-q", "--batch", "1000000", "-o", "{d}/out"], "error",
         words=("memory", "--batch"))
    case("mem/sample-runs-2e9", "memory", ["sample", "{model}", "--runs", "2000000000", "-q", "-o", "{d}/out"],
         "error", words=("memory",))
    case("mem/sample-runs-1e8-threads", "memory", ["sample", "{model}", "--runs", "100000000", "--threads", "2",
                                                    "-q", "-o", "{d}/out"], "error", words=("memory",))
    case("num/sample-runs-1e1-valid", "valid", ["sample", "{model}", "--runs", "1e1", "--t-f", "0.01", "-q", "-o",
                                                "{d}/s"], "ok", check=check_sample_runs(10))
    case("num/sample-threads-2-valid", "valid", ["sample", "{model}", "--runs", "3", "--threads", "2", "--t-f",
                                                 "0.01", "-q", "-o", "{d}/s"], "ok", check=check_sample_runs(3))
    case("num/compile-seed-max-valid", "valid", ["compile", "{small}", "--target", "rc-8bit-dense", "--seed",
                                                 str(2 ** 32 - 1), "-o", "{d}/p"], "ok", check=check_compiled)

    # ---- conflicting options ---------------------------------------------------------------
    case("conflict/digits-and-indices", "conflicts", ["train", "-q", "--digits", "0,1", "--indices", "1,2", "-o",
                                                      "{d}/out"], "error", words=("--digits", "--indices"))
    case("conflict/init-and-hidden", "conflicts", ["train", "-q", "--init", "{model}", "--hidden", "4", "-o",
                                                   "{d}/out"], "error", words=("--hidden", "--init"))
    case("conflict/target-and-connectivity", "conflicts", ["train", "-q", "--target", "rc-8bit-dense",
                                                           "--connectivity", "dense", "-o", "{d}/out"], "error",
         words=("--connectivity",))
    case("conflict/qat-without-target", "conflicts", ["train", "-q", "--qat", "-o", "{d}/out"], "error",
         words=("--target",))
    case("conflict/bits-without-qat", "conflicts", ["train", "-q", "--target", "rc-8bit-dense", "--bits", "4", "-o",
                                                    "{d}/out"], "error", words=("--qat",))
    case("conflict/prune-and-refuse", "conflicts", ["compile", "{model}", "--target", "rc-8bit-dense", "--prune",
                                                    "--refuse", "-o", "{d}/out"], "usage")
    case("conflict/programmed-without-chip-seed", "conflicts",
         with_out("cosim", "{d}/out") + ["--programmed", "{prog}"], "error", words=("--chip-seed",))
    case("conflict/resume-with-target", "conflicts", ["train", "-q", "--resume", "--target", "rc-8bit-dense", "-o",
                                                      "{d}/run"], "error", files={"run": copy_of("run")},
         words=("target",))
    case("conflict/resume-with-init", "conflicts", ["train", "-q", "--resume", "--init", "{model}", "-o", "{d}/run"],
         "error", files={"run": copy_of("run")}, words=("init",))
    case("conflict/resume-cycles-below-done", "conflicts", ["train", "-q", "--resume", "--cycles", "2", "-o",
                                                            "{d}/run"], "error", files={"run": copy_of("run")},
         words=("--cycles", "3"))
    case("conflict/resume-batch-changed", "conflicts", ["train", "-q", "--resume", "--batch", "4", "-o", "{d}/run"],
         "error", files={"run": copy_of("run")}, words=("batch",))
    case("conflict/resume-dt-changed", "conflicts", ["train", "-q", "--resume", "--dt", "0.002", "-o", "{d}/run"],
         "error", files={"run": copy_of("run")}, words=("dt",))
    case("conflict/resume-digits-changed", "conflicts", ["train", "-q", "--resume", "--digits", "3,4", "-o",
                                                         "{d}/run"], "error", files={"run": copy_of("run")},
         words=("digits",))
    case("conflict/resume-kT-changed", "conflicts", ["train", "-q", "--resume", "--kT", "0.5", "-o", "{d}/run"],
         "error", files={"run": copy_of("run")}, words=("kT",))
    case("conflict/resume-connectivity-changed", "conflicts", ["train", "-q", "--resume", "--connectivity", "dense",
                                                               "-o", "{d}/run"], "error", files={"run": copy_of("run")},
         words=("connectivity",))
    case("conflict/resume-same-settings-extends", "valid",
         ["train", "-q", "--resume", "--hidden", "8", "--seed", "0", "--cycles", "4", "-o", "{d}/run"], "ok",
         files={"run": copy_of("run")}, check=_check_resumed_to(4))
    case("conflict/train-into-finished-run", "conflicts", ["train", "-q", "--hidden", "2", "--cycles", "1", "-o",
                                                           "{d}/run"], "error", files={"run": copy_of("run")},
         words=("--resume",))
    case("conflict/resume-no-checkpoint", "conflicts", ["train", "-q", "--resume", "-o", "{d}/empty"], "error",
         files={"empty/": 0o755}, words=("checkpoint",))
    case("conflict/device-unknown", "conflicts", ["calibrate", "{prog}", "--device", "oscilloscope", "-q", "-o",
                                                  "{d}/out"], "error", words=("device",))
    case("conflict/calibrate-verify-spice-1", "conflicts", with_out("calibrate", "{d}/out") + ["--verify-spice", "1"],
         "error", words=("verify",))
    case("conflict/compile-unknown-target", "conflicts", ["compile", "{model}", "--target", "no-such-chip", "-o",
                                                          "{d}/out"], "error", words=("no-such-chip",))
    case("conflict/compile-model-too-big-for-target", "conflicts", ["compile", "{model}", "--target", "lc-spu", "-o",
                                                                    "{d}/out"], "error")
    case("conflict/targets-show-unknown", "conflicts", ["targets", "--show", "nope"], "error", words=("nope",))
    case("conflict/no-subcommand", "conflicts", [], "usage")
    case("conflict/unknown-subcommand", "conflicts", ["frobnicate"], "usage")
    case("conflict/unknown-option", "conflicts", ["sample", "{model}", "-o", "{d}/out", "--frob"], "usage")
    case("conflict/missing-out", "conflicts", ["sample", "{model}"], "usage", words=("--out",))

    # ---- output folders ----------------------------------------------------------------------
    case("out/compile-into-foreign-folder", "output folders", ["compile", "{small}", "--target", "rc-8bit-dense",
                                                               "-o", "{d}/p"], "error",
         files={"p/notes.txt": "my notes\n", "p/data.csv": "1,2\n"}, words=("notes.txt",))
    case("out/compile-into-program-plus-foreign", "output folders",
         ["compile", "{small}", "--target", "lc-spu", "-o", "{d}/p"], "error",
         files={"p": program_with("thesis.tex", "x", "prog_small")}, words=("thesis.tex",))
    case("out/compile-damaged-manifest", "output folders", ["compile", "{small}", "--target", "lc-spu", "-o", "{d}/p"],
         "error", files={"p": program_with("manifest.json", "{not json", "prog_small")}, words=("manifest",))
    case("out/compile-manifest-escape-attempt", "output folders",
         ["compile", "{small}", "--target", "lc-spu", "-o", "{d}/p"], "ok",
         files={"victim.txt": "precious\n", "p": program_with(
             "manifest.json", json.dumps({"schema": "thermohw.manifest/1",
                                          "files": ["../victim.txt", "/etc/hostname", "chip.cir", "units.csv",
                                                    "couplings.csv", "source.npz", "realised.npz", "programmed.npz",
                                                    "target.yaml", "codes.npz", "report.json", "summary.txt"]}),
             "prog_small")}, check=lambda fx, d, out: _assert((d / "victim.txt").read_text() == "precious\n"))
    case("out/recompile-same-backend", "valid", ["compile", "{small}", "--target", "rc-8bit-dense", "--bits", "4",
                                                 "-o", "{d}/p"], "ok", files={"p": copy_of("prog_small")},
         check=check_compiled)
    case("out/recompile-lc-over-rc", "valid", ["compile", "{small}", "--target", "lc-spu", "-o", "{d}/p"], "ok",
         files={"p": copy_of("prog_small")}, check=check_compiled)
    case("out/sample-into-run-folder-keeps-model", "valid", ["sample", "{d}/run/model.npz", "--runs", "2", "--t-f",
                                                             "0.01", "-q", "-o", "{d}/run"], "ok",
         files={"run": copy_of("run")}, check=lambda fx, d, out: _assert((d / "run" / "samples.npz").is_file()))

    # ---- damaged and missing files of every kind ------------------------------------------------
    _file_cases()
    _injection_cases()


def _assert(cond: bool, msg: str = "") -> None:
    if not cond:
        raise AssertionError(msg)


def _valid_number(v: str, spec: tuple) -> bool:
    kind, lo, hi, *strict = spec
    strict = bool(strict and strict[0])
    from decimal import Decimal, InvalidOperation

    try:
        d = Decimal(v)
    except InvalidOperation:
        return False
    if not d.is_finite():
        return False
    if kind == "i" and d != d.to_integral_value():
        return False
    x = float(d)
    if not math.isfinite(x):
        return False
    if lo is not None and (x <= lo if strict else x < lo):
        return False
    return hi is None or x <= hi


def _corrupt_zip_member(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    for i in range(80, min(len(raw) - 200, 400)):  # inside the first member's data
        raw[i] ^= 0x55
    p.write_bytes(bytes(raw))


def _complex_model(fx, dst: Path) -> None:
    from thermohw.computer import Computer

    c = Computer.load(fx.names["model"])
    with np.load(fx.names["model"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["J"] = arrays["J"].astype(np.complex128) + 1j * 0.1 if "J" in arrays else c.J + 0.1j
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)


def _interrupted_run(fx, dst: Path) -> None:
    """A run configured for 5 cycles whose checkpoint stopped at 2 (as after Ctrl-C)."""
    from thermohw.train import TrainState

    shutil.copytree(fx.names["run"], dst)
    for name in ("model.npz", "train.json"):
        (dst / name).unlink()
    st = TrainState.load(fx.names["run5_at2"])
    st.save(dst / "checkpoint.npz")


def _check_bare_resume(fx, d: Path, out: str) -> None:
    from thermohw.train import TrainState

    st = TrainState.load(d / "run" / "checkpoint.npz")
    assert st.cycle == 5 and st.config.cycles == 5, (st.cycle, st.config.cycles)
    tj = json.loads((d / "run" / "train.json").read_text())
    assert tj["cycles"] == 5 and tj["config"]["cycles"] == 5, tj["cycles"]


def _check_resumed_to(n: int) -> Callable:
    def check(fx, d: Path, out: str) -> None:
        tj = json.loads((d / "run" / "train.json").read_text())
        assert tj["cycles"] == n and tj["config"]["cycles"] == n
    return check


def _fake_saved_sweep(fx, dst: Path) -> None:
    dst.mkdir(parents=True)
    record_of("thermohw.spiceruns/1", {"runs": [0]}, {"x_final": np.zeros((1, 8))})(fx, dst / "spice_runs.npz")


def _file_cases() -> None:
    train_mnist = ["train", "-q", "--hidden", "2", "--cycles", "1", "--t-f", "0.01", "--digits", "0,1",
                   "--mnist", "{d}/x-images-idx3-ubyte", "-o", "{d}/out"]
    lab = good_labels()
    idx_cases = {
        "missing": {},
        "empty": {"x-images-idx3-ubyte": b""},
        "short-header": {"x-images-idx3-ubyte": b"\0\0\x08"},
        "bad-magic": {"x-images-idx3-ubyte": idx_bytes([6, 4, 4], magic0=b"PK")},
        "bad-dtype": {"x-images-idx3-ubyte": idx_bytes([6, 4, 4], dtype_code=0x42)},
        "zero-dims": {"x-images-idx3-ubyte": idx_bytes([])},
        "one-dim": {"x-images-idx3-ubyte": idx_bytes([6])},
        "truncated-payload": {"x-images-idx3-ubyte": idx_bytes([6, 4, 4], payload=b"\1" * 20)},
        "extra-payload": {"x-images-idx3-ubyte": idx_bytes([6, 4, 4], payload=b"\1" * 200)},
        "size-2pow32": {"x-images-idx3-ubyte": idx_bytes([2 ** 32 - 1, 2 ** 16, 2 ** 16], payload=b"")},
        "zero-images": {"x-images-idx3-ubyte": idx_bytes([0, 4, 4])},
        "random-bytes": {"x-images-idx3-ubyte": bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8))},
        "bad-gzip": {"x-images-idx3-ubyte": b"\x1f\x8b\x08\0garbage"},
        "gzip-truncated": {"x-images-idx3-ubyte": gzip.compress(good_images())[:30]},
        "labels-missing-for-digits": {"x-images-idx3-ubyte": good_images()},
        "labels-count-mismatch": {"x-images-idx3-ubyte": good_images(), "x-labels-idx1-ubyte": good_labels(4)},
        "labels-2d": {"x-images-idx3-ubyte": good_images(), "x-labels-idx1-ubyte": idx_bytes([6, 2])},
        "labels-garbage": {"x-images-idx3-ubyte": good_images(), "x-labels-idx1-ubyte": b"hello"},
        "labels-are-images": {"x-images-idx3-ubyte": good_images(), "x-labels-idx1-ubyte": good_images()},
        "float-dtype-nan": {"x-images-idx3-ubyte": idx_bytes([2, 2, 2], dtype_code=0x0D,
                                                             payload=struct.pack(">8f", *([float("nan")] * 8))),
                            "x-labels-idx1-ubyte": good_labels(2)},
        "is-a-folder": {"x-images-idx3-ubyte/": 0o755},
    }
    for name, files in idx_cases.items():
        if name not in ("labels-missing-for-digits",) and "x-labels-idx1-ubyte" not in files and files:
            files = {**files, "x-labels-idx1-ubyte": lab}
        case(f"file/idx-{name}", "files: IDX", train_mnist, "error", files=files, owner="loaders")
    case("file/idx-valid-tiny", "valid", train_mnist, "ok", files={"x-images-idx3-ubyte": good_images(),
                                                                   "x-labels-idx1-ubyte": lab},
         check=lambda fx, d, out: _assert((d / "out" / "model.npz").is_file()))

    # target YAML
    comp = ["compile", "{small}", "--target", "{d}/t.yaml", "-o", "{d}/out"]
    yaml_cases = {
        "empty": "", "not-yaml": "{{{: [", "a-list": "- 1\n- 2\n", "a-string": "just text\n",
        "python-tag": "!!python/object/apply:os.system ['echo " + MARK + "']\n",
        "binary": b"\xff\xfe\x00\x01garbage", "anchor-bomb": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
    }
    for name, text in yaml_cases.items():
        case(f"file/target-yaml-{name}", "files: target YAML", comp, "error", files={"t.yaml": text}, owner="loaders")
    case("file/target-yaml-missing", "files: target YAML", comp, "error", owner="loaders")
    for name, ch in {"units-negative": {"units": -8}, "units-string": {"units": "many"}, "units-zero": {"units": 0},
                     "kind-unknown": {"kind": "quantum-foam"}, "schema-wrong": {"schema": "thermohw.target/99"},
                     "bits-zero": {"couplings": {"bits": 0}}, "bits-huge": {"couplings": {"bits": 64}},
                     "min-above-max": {"couplings": {"min": 2.0, "max": -2.0}},
                     "range-nan": {"couplings": {"min": float("nan")}}, "physics-missing": {"physics": None},
                     "C-negative": {"physics": {"C_F": -1e-9}}, "C-string": {"physics": {"C_F": "1n"}},
                     "tau-zero": {"physics": {"tau_s": 0}}, "topology-unknown": {"topology": {"type": "moebius"}},
                     "name-missing": {"name": None}, "unknown-key": {"flux_capacitor": 1.21}}.items():
        case(f"file/target-yaml-{name}", "files: target YAML", comp, "error", files={"t.yaml": target_yaml(**ch)},
             owner="loaders")

    # model NPZ
    samp = ["sample", "{d}/m.npz", "--runs", "2", "--t-f", "0.01", "-q", "-o", "{d}/out"]
    for dmg in ("truncated", "flipped", "zeroed", "tail"):
        case(f"file/model-{dmg}", "files: model NPZ", samp, "error", files={"m.npz": copy_of("model", dmg)},
             owner="loaders")
    for name, maker in {
        "empty": b"", "text": "not a model\n", "plain-npz": npz_of(J=np.zeros((2, 2))),
        "digits-record": copy_of("digits"), "checkpoint-record": copy_of("ckpt"), "samples-record": copy_of("samples_npz"),
        "object-array": npz_of(J=np.array([{"a": 1}], dtype=object)),
        "header-not-json": npz_of(__header__=np.array("{oops")),
        "header-list": npz_of(__header__=np.array("[1, 2]")),
        "nan-couplings": _model_with(J=np.nan), "asymmetric": _model_with(asym=True),
        "wrong-shape": _model_with(shape=True), "negative-kT": _model_with(kT=-1.0), "is-folder": None,
    }.items():
        files = {"m.npz/": 0o755} if maker is None else {"m.npz": maker}
        case(f"file/model-{name}", "files: model NPZ", samp, "error", files=files, owner="loaders")
    case("file/model-missing", "files: model NPZ", samp, "error", words=("m.npz",))

    # digits NPZ (sample --digits, report --digits)
    for name, maker in {"truncated": copy_of("digits", "truncated"), "flipped": copy_of("digits", "flipped"),
                        "model-record": copy_of("model"), "text": "hello", "empty": b"",
                        "wrong-pixels": _digits_with_pixels(5)}.items():
        case(f"file/digits-{name}", "files: digits NPZ",
             ["sample", "{model}", "--digits", "{d}/dg.npz", "--runs", "2", "--t-f", "0.01", "-q", "-o", "{d}/out"],
             "error", files={"dg.npz": maker}, owner="loaders")
    case("file/digits-missing", "files: digits NPZ",
         ["sample", "{model}", "--digits", "{d}/dg.npz", "--runs", "2", "--t-f", "0.01", "-q", "-o", "{d}/out"],
         "error", owner="loaders")
    case("file/reference-missing", "files: IDX",
         ["sample", "{model}", "--reference", "{d}/nope-images", "--runs", "2", "--t-f", "0.01", "-q", "-o",
          "{d}/out"], "error", words=("nope-images",))

    # checkpoint (resume)
    for dmg in ("truncated", "flipped"):
        case(f"file/checkpoint-{dmg}", "files: checkpoint", ["train", "-q", "--resume", "-o", "{d}/run"], "error",
             files={"run": lambda fx, p, dmg=dmg: (copy_of("run")(fx, p), copy_of("ckpt", dmg)(fx, p / "checkpoint.npz"))},
             owner="loaders")
    case("file/checkpoint-is-model", "files: checkpoint", ["train", "-q", "--resume", "-o", "{d}/run"], "error",
         files={"run": lambda fx, p: (copy_of("run")(fx, p), shutil.copyfile(fx.names["model"], p / "checkpoint.npz"))},
         words=("schema",))

    # program folders
    cos = ["cosim", "{d}/p", "--runs", "2", "--ideal-runs", "2", "--t-f", "0.01", "-q", "-o", "{d}/out"]
    for member in ("report.json", "target.yaml", "codes.npz", "source.npz", "realised.npz", "programmed.npz"):
        case(f"file/program-missing-{member}", "files: program folder", cos, "error",
             files={"p": program_without(member)}, owner="loaders")
    for member, content in {"report.json": "{broken", "target.yaml": "::: nope", "codes.npz": b"PK\3\4junk",
                            "realised.npz": b"", "report.json#list": "[]", "report.json#schema": '{"schema": "x"}',
                            "report.json#options": None}.items():
        fname = member.split("#")[0]
        if content is None:
            content = _report_with_bad_options
        case(f"file/program-damaged-{member.replace('#', '-')}", "files: program folder", cos, "error",
             files={"p": program_with(fname, content)}, owner="loaders")
    case("file/program-is-file", "files: program folder", cos, "error", files={"p": "x"}, owner="loaders")
    case("file/program-missing", "files: program folder", cos, "error", words=("p",))
    case("file/program-empty-folder", "files: program folder", cos, "error", files={"p/": 0o755})
    case("file/program-is-training-run", "files: program folder",
         ["cosim", "{run}", "--runs", "2", "--ideal-runs", "2", "-q", "-o", "{d}/out"], "error",
         words=("compiled program",))
    case("file/readout-program-missing", "files: program folder", ["readout", "{d}/p", "{d}/chip.raw"], "error",
         files={"chip.raw": b"x"})
    case("file/calibrate-program-missing", "files: program folder",
         ["calibrate", "{d}/p", "--device", "virtual-ideal", "-q", "-o", "{d}/out"], "error")
    case("file/calibrate-intended-damaged", "files: program folder",
         with_out("calibrate", "{d}/out") + ["--intended", "{d}/p"], "error",
         files={"p": program_with("report.json", "{broken")}, owner="loaders")
    case("file/cosim-programmed-damaged", "files: program folder",
         with_out("cosim", "{d}/out") + ["--chip-seed", "1", "--programmed", "{d}/p"], "error",
         files={"p": program_with("codes.npz", b"junk")}, owner="loaders")

    # raw files (readout)
    ro = ["readout", "{prog}", "{d}/chip.raw"]
    for name, content in {"empty": b"", "text": "hello\n", "random": bytes(range(256)) * 4,
                          "header-only": "Title: x\nDate: y\nPlotname: Transient Analysis\nFlags: real\n"
                                         "No. Variables: 2\nNo. Points: 10\nVariables:\n\t0\ttime\ttime\n"
                                         "\t1\tv(x0)\tvoltage\nBinary:\n",
                          "points-huge": "Title: x\nDate: y\nPlotname: Transient Analysis\nFlags: real\n"
                                         "No. Variables: 2\nNo. Points: 99999999999999\nVariables:\n\t0\ttime\ttime\n"
                                         "\t1\tv(x0)\tvoltage\nBinary:\n",
                          "variables-negative": "Title: x\nFlags: real\nNo. Variables: -3\nNo. Points: 1\nVariables:\n"
                                                "Binary:\n"}.items():
        case(f"file/raw-{name}", "files: raw", ro, "error", files={"chip.raw": content}, owner="loaders")
    case("file/raw-missing", "files: raw", ro, "error", words=("chip.raw",))
    case("file/raw-is-folder", "files: raw", ro, "error", files={"chip.raw/": 0o755})

    # replay CSV / NPZ
    cal = ["calibrate", "{prog}", "--device", "replay:{d}/rec.csv", "-q", "-o", "{d}/out"]
    caln = ["calibrate", "{prog}", "--device", "replay:{d}/rec.npz", "-q", "-o", "{d}/out"]
    N = 72
    for name, text in {
        "empty": "", "no-header": "run,time,x0\n0,0,1\n",
        "missing-unit-column": csv_recording(N - 1, csv_rows(N - 1)),
        "nan-value": csv_recording(N, csv_rows(N, bad=lambda r, t, row: row[:2] + ["nan"] + row[3:] if t == 2 else row)),
        "inf-value": csv_recording(N, csv_rows(N, bad=lambda r, t, row: row[:2] + ["inf"] + row[3:] if t == 2 else row)),
        "word-value": csv_recording(N, csv_rows(N, bad=lambda r, t, row: row[:2] + ["abc"] + row[3:] if t == 1 else row)),
        "ragged-runs": csv_recording(N, csv_rows(N)[:-1]),
        "time-backwards": csv_recording(N, csv_rows(N, bad=lambda r, t, row: [row[0], "0"] + row[2:] if t == 3 else row)),
        "interval-negative": csv_recording(N, csv_rows(N), "# thermohw.recording/1\n# sample_interval: -0.01\n"),
        "interval-nan": csv_recording(N, csv_rows(N), "# thermohw.recording/1\n# sample_interval: nan\n"),
        "interval-missing": csv_recording(N, csv_rows(N), "# thermohw.recording/1\n"),
        "unknown-time-unit": csv_recording(N, csv_rows(N), "# thermohw.recording/1\n# sample_interval: 0.01\n"
                                                           "# time_unit: fortnight\n"),
        "volts-without-scale": csv_recording(N, csv_rows(N), "# thermohw.recording/1\n# sample_interval: 0.01\n"
                                                             "# x_unit: V\n"),
        "short-row": csv_recording(N, csv_rows(N, bad=lambda r, t, row: row[:10] if t == 2 else row)),
        "run-id-float": csv_recording(N, csv_rows(N, bad=lambda r, t, row: ["0.5"] + row[1:] if t == 0 else row)),
        "binary": "\x00\x01\x02",
    }.items():
        case(f"file/replay-csv-{name}", "files: replay", cal, "error", files={"rec.csv": text}, owner="loaders")
    for name, maker in {
        "empty": b"", "no-x": npz_of(time=np.arange(4.0), sample_interval=np.array(1.0)),
        "x-1d": npz_of(x=np.zeros(8), time=np.arange(8.0), sample_interval=np.array(1.0)),
        "x-nan": npz_of(x=np.full((8, 2, N), np.nan), time=np.arange(8) * 0.01, sample_interval=np.array(0.01)),
        "time-mismatch": npz_of(x=np.zeros((8, 2, N)), time=np.arange(5) * 0.01, sample_interval=np.array(0.01)),
        "interval-0": npz_of(x=np.zeros((8, 2, N)), time=np.zeros(8), sample_interval=np.array(0.0)),
        "interval-array": npz_of(x=np.zeros((8, 2, N)), time=np.arange(8) * 0.01, sample_interval=np.ones(3)),
        "wrong-units": npz_of(x=np.zeros((8, 2, N - 3)), time=np.arange(8) * 0.01, sample_interval=np.array(0.01)),
        "complex-x": npz_of(x=np.zeros((8, 2, N), complex), time=np.arange(8) * 0.01, sample_interval=np.array(0.01)),
        "string-x": npz_of(x=np.array(["a", "b"]), time=np.arange(2.0), sample_interval=np.array(1.0)),
        "truncated": lambda fx, p: (npz_of(x=np.zeros((8, 2, N)), time=np.arange(8) * 0.01,
                                           sample_interval=np.array(0.01))(fx, p),
                                    p.write_bytes(p.read_bytes()[:300])),
        "model-record": copy_of("model"),
    }.items():
        case(f"file/replay-npz-{name}", "files: replay", caln, "error", files={"rec.npz": maker}, owner="loaders")
    case("file/replay-missing", "files: replay", cal, "error", words=("rec.csv",), owner="loaders")
    case("file/replay-empty-folder", "files: replay", ["calibrate", "{prog}", "--device", "replay:{d}/recs", "-q",
                                                       "-o", "{d}/out"], "error", files={"recs/": 0o755},
         owner="loaders")
    case("file/replay-wrong-suffix", "files: replay", ["calibrate", "{prog}", "--device", "replay:{d}/rec.txt", "-q",
                                                       "-o", "{d}/out"], "error", files={"rec.txt": "x"},
         owner="loaders")

    # summary JSON and samples.npz (report)
    rep = ["report", "{d}/s"]
    for name, maker in {
        "summary-not-json": samples_with("summary.json", "{oops"),
        "summary-a-list": samples_with("summary.json", "[1, 2]"),
        "summary-binary": samples_with("summary.json", b"\xff\xfe\xfa"),
        "summary-model-missing-file": summary_with(model="no/such/model.npz"),
        "summary-model-null": lambda fx, p: (summary_with()(fx, p), _drop_model(p)),
        "summary-model-empty": summary_with(model=""),
        "summary-model-dict": summary_with(model={"path": "x"}),
        "samples-truncated": samples_with("samples.npz", copy_of("samples_npz", "truncated")),
        "samples-flipped": samples_with("samples.npz", copy_of("samples_npz", "flipped")),
        "samples-model-record": samples_with("samples.npz", copy_of("model")),
        "samples-missing": lambda fx, p: (shutil.copytree(fx.names["samples"], p), (p / "samples.npz").unlink()),
        "samples-wrong-units": samples_with("samples.npz", _samples_with_units(5)),
        "samples-nan": samples_with("samples.npz", _samples_nan),
    }.items():
        case(f"file/report-{name}", "files: summary/samples", rep, "error", files={"s": maker}, owner="loaders")
    case("file/report-model-option-missing", "files: summary/samples", ["report", "{samples}", "--model",
                                                                          "{d}/none.npz", "-o", "{d}/out"], "error",
         words=("none.npz",))
    case("file/report-folder-missing", "files: summary/samples", ["report", "{d}/nothing"], "error")
    case("file/report-valid", "valid", ["report", "{samples}", "-o", "{d}/out"], "ok",
         check=lambda fx, d, out: _assert((d / "out" / "report.json").is_file()))
    case("file/init-model-damaged", "files: model NPZ", ["train", "-q", "--init", "{d}/m.npz", "--cycles", "1", "-o",
                                                         "{d}/out"], "error",
         files={"m.npz": copy_of("model", "truncated")}, owner="loaders")
    case("file/init-model-wrong-pixels", "files: model NPZ", ["train", "-q", "--init", "{small}", "--cycles", "1",
                                                              "-o", "{d}/out"], "error", words=("visible",))


def _drop_model(p: Path) -> None:
    sm = json.loads((p / "summary.json").read_text())
    sm.pop("model", None)
    (p / "summary.json").write_text(json.dumps(sm))


def _report_with_bad_options(fx, p: Path) -> None:
    rep = json.loads(p.read_text())
    rep["options"] = {"bits": "eight", "nonsense": True}
    p.write_text(json.dumps(rep))


def _model_with(J=None, asym=False, shape=False, kT=None) -> Callable:
    def make(fx, dst: Path) -> None:
        with np.load(fx.names["model"], allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        key = "J" if "J" in a else next(k for k in a if k.endswith("J"))
        if J is not None:
            a[key] = np.full_like(a[key], J)
        if asym:
            a[key] = a[key] + np.triu(np.ones_like(a[key]), 1)
        if shape:
            a[key] = a[key][:-1]
        if kT is not None:
            k2 = "kT" if "kT" in a else next((k for k in a if k.endswith("kT")), None)
            if k2:
                a[k2] = np.full_like(a[k2], kT)
        with open(dst, "wb") as fh:
            np.savez(fh, **a)
    return make


def _digits_with_pixels(n: int) -> Callable:
    def make(fx, dst: Path) -> None:
        from thermohw.data import Digits

        Digits(np.random.default_rng(0).normal(size=(2, n)), np.array([0, 1]), (n,)).save(dst)
    return make


def _samples_with_units(n: int) -> Callable:
    def make(fx, dst: Path) -> None:
        from thermohw.langevin import Trajectory

        t = Trajectory.load(fx.names["samples_npz"])
        k = t.x_final.shape[0]
        Trajectory(times=t.times, x=None, x0=np.zeros((k, n)), x_final=np.zeros((k, n)), heat=t.heat,
                   heat_strat=t.heat_strat, work=t.work, dt=t.dt, n_steps=t.n_steps, kT=t.kT).save(dst)
    return make


def _samples_nan(fx, dst: Path) -> None:
    from thermohw.langevin import Trajectory

    t = Trajectory.load(fx.names["samples_npz"])
    Trajectory(times=t.times, x=None, x0=t.x0, x_final=np.full_like(t.x_final, np.nan), heat=t.heat,
               heat_strat=t.heat_strat, work=t.work, dt=t.dt, n_steps=t.n_steps, kT=t.kT).save(dst)


def _injection_cases() -> None:
    evil = [f"x\n.control\nshell echo {MARK}\n.endc\n", f'x" ; shell echo {MARK} "', f"x\r\n.include /etc/{MARK}",
            f"x\\\n+ {MARK}", f"{MARK}\u2028.control"]
    for i, e in enumerate(evil):
        for field_ in ("name", "description", "source"):
            case(f"inject/target-{field_}-{i}", "netlist injection",
                 ["compile", "{small}", "--target", "{d}/t.yaml", "-o", "{d}/out"], "either",
                 files={"t.yaml": target_yaml(**{field_: e})})
        case(f"inject/model-meta-{i}", "netlist injection",
             ["compile", "{d}/m.npz", "--target", "rc-8bit-dense", "-o", "{d}/out"], "either",
             files={"m.npz": model_with_meta({"digits": e, "labels": [0]})})
    case("inject/lc-model-meta", "netlist injection", ["compile", "{d}/m.npz", "--target", "lc-spu", "--netlist",
                                                       "free", "-o", "{d}/out"], "either",
         files={"m.npz": model_with_meta({"digits": evil[0]})})
    case("inject/target-noise-source", "netlist injection",
         ["compile", "{small}", "--target", "{d}/t.yaml", "-o", "{d}/out"], "either",
         files={"t.yaml": target_yaml(physics={"noise": {"source": f"injected\n.control\nshell {MARK}\n.endc"}})})
    case("inject/target-resistor-series", "netlist injection",
         ["compile", "{small}", "--target", "{d}/t.yaml", "-o", "{d}/out"], "either",
         files={"t.yaml": target_yaml(components={"resistor_series": f"E96\n.control\nshell {MARK}\n.endc"})})
    case("inject/out-path-newline", "netlist injection",
         ["compile", "{small}", "--target", "rc-8bit-dense", "-o", "{d}/o\n.control " + MARK], "either")


# ---------------------------------------------------------------------------------------------
# fixtures and the runner
# ---------------------------------------------------------------------------------------------
class Fixtures:
    """Small real inputs, made once: a trained run (72 units), its samples, programs."""

    def __init__(self, root: Path) -> None:
        from thermohw.cli import main
        from thermohw.train import TrainState

        self.root = root
        fx = root / "fixtures"
        fx.mkdir(parents=True, exist_ok=True)
        tiny = ["--hidden", "8", "--t-f", "0.05", "--dt", "0.001", "-q", "--digits", "0,1"]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["train", "-o", str(fx / "run"), *tiny, "--cycles", "3"]) == 0
        # the 5-cycle run's checkpoint as it was at cycle 2 (rebuilt: same RNG path, config cycles 5)
        st = TrainState.load(fx / "run" / "checkpoint.npz")
        import thermohw.train as T

        st2 = T.train(T.TrainState(st.computer.replace(J=np.zeros_like(st.computer.J), b=np.zeros_like(st.computer.b)),
                                   st.digits, T.TrainConfig(**{**st.config.__dict__, "cycles": 2})), progress=False)
        T.TrainState(st2.computer, st2.digits, T.TrainConfig(**{**st.config.__dict__, "cycles": 5}), st2.cycle,
                     st2.rng_state, st2.losses, st2.seconds).save(fx / "run5_at2.npz")
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["sample", str(fx / "run" / "model.npz"), "-o", str(fx / "s"), "--runs", "8", "--t-f",
                         "0.05", "-q"]) == 0
            model_with_meta({"digits": "tiny", "labels": [0]})(self, fx / "small.npz")
            assert main(["compile", str(fx / "run" / "model.npz"), "--target", "rc-8bit-dense", "-o",
                         str(fx / "prog")]) == 0
            assert main(["compile", str(fx / "small.npz"), "--target", "rc-8bit-dense", "-o",
                         str(fx / "prog_small")]) == 0
        self.names = {"model": str(fx / "run" / "model.npz"), "digits": str(fx / "run" / "digits.npz"),
                      "run": str(fx / "run"), "ckpt": str(fx / "run" / "checkpoint.npz"), "samples": str(fx / "s"),
                      "samples_npz": str(fx / "s" / "samples.npz"), "prog": str(fx / "prog"),
                      "prog_small": str(fx / "prog_small"), "small": str(fx / "small.npz"),
                      "run5_at2": str(fx / "run5_at2.npz"), "ro": str(self._read_only(root))}

    @staticmethod
    def _read_only(root: Path) -> Path | None:
        """A read-only tmpfs mount (needs root); None where it cannot be made."""
        ro = root / "ro"
        ro.mkdir(exist_ok=True)
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True,
                               timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return ro if r.returncode == 0 else None

    def close(self) -> None:
        if self.names.get("ro") not in (None, "None"):
            subprocess.run(["umount", self.names["ro"]], capture_output=True, timeout=20)


def _snapshot(root: Path) -> dict[str, str]:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dp = Path(dirpath)
        if dp == root / "ro":
            dirnames[:] = []
        for n in dirnames:
            snap[str(dp / n)] = "dir"
        for n in filenames:
            p = dp / n
            try:
                st = p.stat()
                snap[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest() if st.st_size < 4_000_000 else \
                    f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                snap[str(p)] = "?"
    return snap


@dataclass
class Outcome:
    case: Case
    verdict: str            # clear | valid | traceback | silent | data-lost | partial-output | not-one-line | skipped
    detail: str = ""
    code: int | None = None
    err: str = ""
    seconds: float = 0.0


def _netlist_injected(root: Path) -> str | None:
    for p in root.rglob("*.cir"):
        for line in p.read_text(errors="replace").splitlines():
            if MARK in line and not line.lstrip().startswith("*"):
                return f"{p}: {line!r}"
    return None


def run_case(c: Case, fx: Fixtures, workdir: Path) -> Outcome:
    from thermohw.cli import main

    if c.needs == "ro" and fx.names["ro"] in (None, "None"):
        return Outcome(c, "skipped", "no read-only mount (needs root)")
    if c.needs == "nonroot" and hasattr(os, "geteuid") and os.geteuid() == 0:
        return Outcome(c, "skipped", "root ignores permission bits")
    d = workdir / c.id.replace("/", "_")
    d.mkdir(parents=True)
    for rel, content in c.files.items():
        p = d / rel.rstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            p.mkdir(exist_ok=True)
            os.chmod(p, content)
        elif callable(content):
            content(fx, p)
        else:
            p.write_bytes(content.encode() if isinstance(content, str) else content)
    names = {**fx.names, "d": str(d)}
    argv = [w.format(**names) for w in c.argv]
    watch = (fx.root / "fixtures", d)
    before = {k: v for w in watch for k, v in _snapshot(w).items()}
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    code, tb = None, None
    cwd = os.getcwd()
    os.chdir(d)  # relative default outputs (demo) land in the case folder
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - anything escaping main is the finding
        tb = traceback.format_exc()
    finally:
        os.chdir(cwd)
        for rel, content in c.files.items():  # let the clean-up remove locked folders
            if rel.endswith("/"):
                os.chmod(d / rel.rstrip("/"), 0o755)
    secs = time.perf_counter() - t0
    after = {k: v for w in watch for k, v in _snapshot(w).items()}
    e = err.getvalue()
    o = Outcome(c, "", code=code, err=e, seconds=secs)
    inj = _netlist_injected(d)
    lost = sorted(p for p, h in before.items() if after.get(p) != h)
    new = sorted(p for p in after if p not in before)
    if tb is not None or "Traceback" in e:
        o.verdict, o.detail = "traceback", (tb or e).strip().splitlines()[-1]
    elif inj:
        o.verdict, o.detail = "silent", f"injected text in a netlist: {inj}"
    elif c.expect == "ok" or (c.expect == "either" and code == 0):
        o.verdict = "valid"
        if code != 0:
            o.verdict, o.detail = "silent", f"valid input refused (exit {code}): {e.strip()[:200]}"
        elif c.check is not None:
            try:
                c.check(fx, d, out.getvalue())
            except Exception as ex:  # noqa: BLE001 - a failed check (or a file the check expected is absent)
                o.verdict, o.detail = "silent", f"wrong result: {type(ex).__name__}: {ex}"
        if o.verdict == "valid" and c.expect == "ok" and lost and not all(p.startswith(str(d)) for p in lost):
            o.verdict, o.detail = "data-lost", f"changed outside the case folder: {lost[:3]}"
    elif code == 0:
        o.verdict, o.detail = "silent", "bad input accepted (exit 0)"
    elif lost:
        o.verdict, o.detail = "data-lost", f"changed or removed: {lost[:3]}"
    elif not (e.endswith("\n") and e.count("\n") == 1 and e.startswith("thermohw")):
        o.verdict, o.detail = "not-one-line", repr(e[:300])
    elif c.expect == "usage" and code != 2:
        o.verdict, o.detail = "not-one-line", f"expected an argument error (exit 2), got exit {code}: {e.strip()}"
    elif new:
        o.verdict, o.detail = "partial-output", f"left behind: {[os.path.relpath(p, d) for p in new[:3]]}"
    elif c.words and not all(w in e for w in c.words):
        o.verdict, o.detail = "not-one-line", f"message lacks {c.words}: {e.strip()}"
    else:
        o.verdict = "clear"
    return o


def run_all(cases: list[Case] | None = None, workdir: Path | None = None) -> list[Outcome]:
    cases = CASES if cases is None else cases
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="thermohw-bad-")) if own else workdir
    fx = Fixtures(root)
    try:
        res = []
        for c in cases:
            res.append(run_case(c, fx, root / "cases"))
            shutil.rmtree(root / "cases", ignore_errors=True)  # keep the watched tree small
        return res
    finally:
        fx.close()
        if own:
            shutil.rmtree(root, ignore_errors=True)


def table(outcomes: list[Outcome]) -> str:
    cols = ["tried", "clear", "valid ok", "tracebacks", "silent wrong", "data lost", "other faults", "skipped"]
    keys = {"clear": "clear", "valid": "valid ok", "traceback": "tracebacks", "silent": "silent wrong",
            "data-lost": "data lost", "partial-output": "other faults", "not-one-line": "other faults",
            "skipped": "skipped"}
    rows: dict[str, dict[str, int]] = {}
    for o in outcomes:
        r = rows.setdefault(o.case.category, dict.fromkeys(cols, 0))
        r["tried"] += o.verdict != "skipped"
        r[keys[o.verdict]] += 1
    total = {k: sum(r[k] for r in rows.values()) for k in cols}
    w = max(len(k) for k in rows) + 2
    lines = ["| category".ljust(w + 2) + " | " + " | ".join(cols) + " |",
             "|" + "-" * (w + 1) + "|" + "|".join("-" * (len(c) + 2) for c in cols) + "|"]
    for k in sorted(rows):
        lines.append(f"| {k:<{w}}| " + " | ".join(f"{rows[k][c]:>{len(c)}}" for c in cols) + " |")
    lines.append(f"| {'TOTAL':<{w}}| " + " | ".join(f"{total[c]:>{len(c)}}" for c in cols) + " |")
    return "\n".join(lines)


_build()

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    t0 = time.perf_counter()
    res = run_all()
    print(table(res))
    print(f"\n{len(res)} cases in {time.perf_counter() - t0:.1f} s")
    if "-t" in sys.argv:
        for o in sorted(res, key=lambda o: -o.seconds)[:25]:
            print(f"{o.seconds:6.2f} s  {o.case.id}")
    for o in res:
        if o.verdict not in ("clear", "valid") and ("-v" in sys.argv or o.verdict != "skipped"):
            print(f"{o.verdict:15s} {o.case.id} [{o.case.owner}]: {o.detail}")
