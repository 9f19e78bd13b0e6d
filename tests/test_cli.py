"""The command-line interface (thermohw.cli): help, argument errors, one-line error messages,
a tiny end-to-end train -> sample -> report run, and interrupt / resume."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import thermohw.train
from thermohw import Computer, Target
from thermohw.cli import main
from thermohw.train import TrainState

TINY = ["--hidden", "8", "--t-f", "0.05", "--dt", "0.001", "-q", "--digits", "0,1"]


def train_args(out: Path, cycles: int, *extra: str) -> list[str]:
    return ["train", "-o", str(out), *TINY, "--cycles", str(cycles), *extra]


def one_line(err: str) -> str:
    """The stderr text must be exactly one non-empty line; return it."""
    assert err.endswith("\n") and err.count("\n") == 1 and err.strip(), repr(err)
    return err.strip()


# ---------------------------------------------------------------------------------------------
# help and the entry point
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", [[], ["train"], ["sample"], ["report"], ["demo"]],
                         ids=["top", "train", "sample", "report", "demo"])
def test_help_exits_zero(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: thermohw")
    if cmd:
        assert f"thermohw {cmd[0]}" in out.splitlines()[0]


def test_python_dash_m_help():
    r = subprocess.run([sys.executable, "-m", "thermohw", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: thermohw")
    for cmd in ("train", "sample", "report", "demo"):
        assert cmd in r.stdout


# ---------------------------------------------------------------------------------------------
# argument errors: exit 2, one line
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, word", [
    (["bogus"], "invalid choice"),
    ([], "required"),
    (["train", "-o", "x", "--cycles", "abc"], "--cycles"),
    (["train", "-o", "x", "--dt", "-1"], "--dt"),
    (["train", "-o", "x", "--t-f", "0"], "--t-f"),
    (["train", "-o", "x", "--digits", "1,a"], "--digits"),
    (["train", "--cycles", "3"], "--out"),
    (["sample", "m.npz", "-o", "s", "--runs", "many"], "--runs"),
    (["sample", "m.npz", "-o", "s", "--dt", "-1"], "--dt"),
])
def test_bad_arguments_exit_2_one_line(argv, word, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    cap = capsys.readouterr()
    line = one_line(cap.err)
    assert line.startswith("thermohw") and "error:" in line and word in line
    assert cap.out == ""
    assert list(tmp_path.iterdir()) == []          # nothing written


# ---------------------------------------------------------------------------------------------
# user errors: exit 1, one line
# ---------------------------------------------------------------------------------------------
def test_sample_missing_model(tmp_path, capsys):
    rc = main(["sample", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "s"), "-q"])
    assert rc == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thermohw sample: error:") and "nope.npz" in line
    assert not (tmp_path / "s").exists()


def test_sample_corrupt_model_random_bytes(tmp_path, capsys):
    p = tmp_path / "model.npz"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    rc = main(["sample", str(p), "-o", str(tmp_path / "s"), "-q"])
    assert rc == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thermohw sample: error:") and "corrupt" in line


def test_sample_wrong_record_kind(tmp_path, trained, capsys):
    # a digits record is a valid npz but not a model
    rc = main(["sample", str(trained / "digits.npz"), "-o", str(tmp_path / "s"), "-q"])
    assert rc == 1
    assert "schema" in one_line(capsys.readouterr().err)


def _damage(src: Path, dst: Path, how: str) -> Path:
    raw = bytearray(src.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "overwrite":
        raw[200:400] = b"\xff" * 200
    elif how == "xor":
        for i in range(120, 600, 7):
            raw[i] ^= 0x5A
    elif how == "zero_tail":
        raw[-300:-100] = bytes(200)
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("how", ["truncated", "overwrite", "xor", "zero_tail"])
def test_sample_damaged_model_one_line(tmp_path, trained, capsys, how):
    """A real model.npz with damaged bytes (disk error, interrupted copy) must give a one-line
    error, never a traceback."""
    p = _damage(trained / "model.npz", tmp_path / "model.npz", how)
    rc = main(["sample", str(p), "-o", str(tmp_path / "s"), "-q", "--runs", "2", "--t-f", "0.01"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert one_line(err).startswith("thermohw sample: error:")


def test_train_into_existing_run_needs_resume(tmp_path, trained, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = (run / "checkpoint.npz").read_bytes()
    rc = main(train_args(run, 3))
    assert rc == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thermohw train: error:") and "--resume" in line
    assert (run / "checkpoint.npz").read_bytes() == before     # untouched


def test_resume_without_checkpoint(tmp_path, capsys):
    rc = main(train_args(tmp_path / "empty", 3, "--resume"))
    assert rc == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("thermohw train: error:") and "checkpoint" in line


def test_report_without_samples(tmp_path, capsys):
    rc = main(["report", str(tmp_path)])
    assert rc == 1
    assert "samples.npz" in one_line(capsys.readouterr().err)


def test_train_missing_mnist_file(tmp_path, capsys):
    rc = main(["train", "-o", str(tmp_path / "r"), "--hidden", "2", "--cycles", "1", "--t-f", "0.01",
               "-q", "--mnist", str(tmp_path / "nope-images-idx3-ubyte.gz")])
    assert rc == 1
    assert "nope-images" in one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------
# end to end: train -> sample -> report (shared fixtures, a few seconds in all)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(train_args(run, 3)) == 0
    return run


@pytest.fixture(scope="module")
def straight5(tmp_path_factory) -> Path:
    """The same run trained for 5 cycles without interruption (reference for resume)."""
    run = tmp_path_factory.mktemp("cli5") / "run"
    assert main(train_args(run, 5)) == 0
    return run


@pytest.fixture(scope="module")
def sampled(trained) -> Path:
    s = trained.parent / "s"
    assert main(["sample", str(trained / "model.npz"), "-o", str(s), "--runs", "20", "--t-f", "0.05",
                 "-q"]) == 0
    return s


def test_train_outputs(trained):
    for name in ("model.npz", "digits.npz", "checkpoint.npz", "train.json"):
        assert (trained / name).is_file(), name
    c = Computer.load(trained / "model.npz")
    assert (c.n_visible, c.n_hidden, c.image_shape) == (64, 8, (8, 8))
    assert np.any(c.J != 0)                       # training changed the couplings
    assert np.all(c.J[:64, :64] == 0)             # no visible-visible couplings (paper)
    assert np.all(c.b[:64] == 0)                  # visible biases not trained
    assert c.meta["cycles_done"] == 3
    tj = json.loads((trained / "train.json").read_text())
    assert tj["cycles"] == 3 and tj["digits"]["labels"] == [0, 1]
    assert tj["units"] == {"visible": 64, "hidden": 8, "couplings": 64 * 8 + 8 * 7 // 2}
    pv = tj["provenance"]
    assert pv["seeds"]["train"] == 0 and pv["numpy"] == np.__version__ and pv["ngspice"] is None
    assert pv["command"][:4] == ["thermohw", "train", "-o", str(trained)]
    assert TrainState.load(trained / "checkpoint.npz").cycle == 3


def test_sample_outputs(sampled, capsys):
    with np.load(sampled / "samples.npz", allow_pickle=False) as z:
        x_final, heat = z["x_final"], z["heat_kT"]
    assert x_final.shape == (20, 72)
    assert heat.shape == (20,)
    assert np.all(np.isfinite(x_final)) and np.all(np.isfinite(heat))
    assert len(np.unique(x_final[:, 0])) == 20    # independent runs differ
    sm = json.loads((sampled / "summary.json").read_text())
    assert "heat" in sm and "digits" in sm
    assert sm["heat"]["n"] == 20
    assert sm["heat"]["mean_kT"] == pytest.approx(float(np.mean(heat)), rel=1e-9)
    assert sm["runs"] == 20 and sm["digits"]["n_samples"] == 20
    assert sm["provenance"]["seeds"]["generate"] == sm["seed"] and sm["provenance"]["thermohw"]
    assert [m["label"] for m in sm["digits"]["modes"]] == [0, 1]
    for png in ("generated.png", "heat.png", "denoising.png"):
        f = sampled / "plots" / png
        assert f.is_file() and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_sample_is_reproducible(trained, sampled, tmp_path):
    s2 = tmp_path / "s2"
    assert main(["sample", str(trained / "model.npz"), "-o", str(s2), "--runs", "20", "--t-f", "0.05",
                 "-q"]) == 0
    with np.load(sampled / "samples.npz") as a, np.load(s2 / "samples.npz") as b:
        np.testing.assert_array_equal(a["x_final"], b["x_final"])
        np.testing.assert_array_equal(a["heat_kT"], b["heat_kT"])


def test_report(sampled, capsys):
    (sampled / "plots" / "heat.png").unlink()
    rc = main(["report", str(sampled)])
    assert rc == 0
    assert "heat per sample" in capsys.readouterr().out
    rep = json.loads((sampled / "report.json").read_text())
    sm = json.loads((sampled / "summary.json").read_text())
    assert rep["heat"] == sm["heat"]
    assert rep["digits"]["modes"] == sm["digits"]["modes"]
    assert rep["samples"].endswith("samples.npz")
    assert rep["provenance"]["seeds"]["samples"] == sm["seed"]
    assert (sampled / "plots" / "heat.png").is_file()       # plots redrawn


# ---------------------------------------------------------------------------------------------
# interrupt and resume
# ---------------------------------------------------------------------------------------------
def _same_model(a: Path, b: Path) -> None:
    ca, cb = Computer.load(a / "model.npz"), Computer.load(b / "model.npz")
    np.testing.assert_array_equal(ca.J, cb.J)
    np.testing.assert_array_equal(ca.b, cb.b)


def test_resume_extends_cycles(tmp_path, trained, straight5, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert main(train_args(run, 5, "--resume")) == 0
    assert TrainState.load(run / "checkpoint.npz").cycle == 5
    st = TrainState.load(run / "checkpoint.npz")
    assert st.config.cycles == 5 and len(st.losses) == 5
    assert Computer.load(run / "model.npz").meta["cycles_done"] == 5
    assert json.loads((run / "train.json").read_text())["cycles"] == 5
    _same_model(run, straight5)          # 3 + 2 cycles == 5 straight (RNG state carried over)


def test_interrupt_then_resume(tmp_path, straight5, monkeypatch, capsys):
    real = thermohw.train.sgd_update
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:              # Ctrl-C during the third cycle
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(thermohw.train, "sgd_update", flaky)
    run = tmp_path / "run"
    rc = main(train_args(run, 5))
    assert rc == 130
    assert "--resume" in capsys.readouterr().err
    assert TrainState.load(run / "checkpoint.npz").cycle == 2
    assert not (run / "model.npz").exists()

    monkeypatch.setattr(thermohw.train, "sgd_update", real)
    assert main(train_args(run, 5, "--resume")) == 0
    assert TrainState.load(run / "checkpoint.npz").cycle == 5
    _same_model(run, straight5)


def test_chip_recipe_interrupted_and_resumed_equals_straight_run(tmp_path, monkeypatch, capsys):
    """The rc-mnist-crossbar recipe's options (class units, batches, tail averaging, --target)
    survive an interruption: resumed, the deployed (averaged) model is the straight run's."""
    t = tmp_path / "chip.yaml"
    t.write_text(Target.preset("rc-mnist-crossbar").replace(
        name="tiny-crossbar", units=72, topology={"type": "bipartite", "n_visible": 64, "hidden_hidden": True}).to_yaml())
    extra = ["--target", str(t), "--hidden-targets", "classes", "--hidden-amplitude", "10", "--batch", "2",
             "--average-from", "2"]
    assert main(train_args(tmp_path / "straight", 5, *extra)) == 0
    real = thermohw.train.sgd_update
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:              # Ctrl-C during the fourth cycle, inside the averaged tail
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(thermohw.train, "sgd_update", flaky)
    assert main(train_args(tmp_path / "run", 5, *extra)) == 130
    st = TrainState.load(tmp_path / "run" / "checkpoint.npz")
    assert st.cycle == 3 and st.avg_count == 1 and st.config.hidden_targets == "classes"
    monkeypatch.setattr(thermohw.train, "sgd_update", real)
    assert main(["train", "-q", "-o", str(tmp_path / "run"), "--resume", "--cycles", "5"]) == 0
    _same_model(tmp_path / "run", tmp_path / "straight")
    c = Computer.load(tmp_path / "run" / "model.npz")
    assert c.meta["averaged_iterates"] == 3 and c.n_hidden == 8
    # a resume cannot change what the run was configured with: refused by name
    capsys.readouterr()
    assert main(["train", "-q", "-o", str(tmp_path / "run"), "--resume", "--cycles", "6",
                 "--hidden-amplitude", "5"]) == 1
    assert "hidden-amplitude (10.0 in the checkpoint, 5.0 asked)" in one_line(capsys.readouterr().err)


def test_bare_resume_continues_the_run_as_configured(tmp_path, straight5, monkeypatch, capsys):
    """A bare --resume (no --cycles) takes the run's own 5 cycles, not a default, and train.json
    says what was done."""
    real = thermohw.train.sgd_update
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(thermohw.train, "sgd_update", flaky)
    run = tmp_path / "run"
    assert main(train_args(run, 5)) == 130
    monkeypatch.setattr(thermohw.train, "sgd_update", real)
    assert main(["train", "-q", "--resume", "-o", str(run)]) == 0
    tj = json.loads((run / "train.json").read_text())
    assert tj["cycles"] == 5 and tj["config"]["cycles"] == 5
    _same_model(run, straight5)
    capsys.readouterr()
    # settings a resume cannot change are refused by name; --cycles below the cycles done too
    assert main(["train", "-q", "--resume", "--seed", "3", "--hidden", "9", "-o", str(run)]) == 1
    line = one_line(capsys.readouterr().err)
    assert "seed (0 in the checkpoint, 3 asked)" in line and "hidden (8 in the checkpoint, 9 asked)" in line
    assert main(["train", "-q", "--resume", "--pixels", "range", "-o", str(run)]) == 1
    assert "pixels ('standard' in the checkpoint, 'range' asked)" in one_line(capsys.readouterr().err)
    assert main(["train", "-q", "--resume", "--cycles", "4", "-o", str(run)]) == 1
    assert "below the 5 cycles" in one_line(capsys.readouterr().err)


def test_chunked_sampling_equals_one_run(trained, tmp_path, monkeypatch):
    """Long sampling runs go in chunks of whole random-stream blocks; the samples are exactly
    those of one unchunked run (same seed)."""
    import thermohw.workflow as wf

    args = ["sample", str(trained / "model.npz"), "--runs", "150", "--t-f", "0.02", "-q"]
    assert main([*args, "-o", str(tmp_path / "one")]) == 0
    monkeypatch.setattr(wf, "_CHUNK_BYTES", 1)          # one block (64 runs) per chunk: 3 chunks
    assert wf.sampling_chunk(72) == 64
    assert main([*args, "-o", str(tmp_path / "chunked")]) == 0
    with np.load(tmp_path / "one" / "samples.npz") as a, np.load(tmp_path / "chunked" / "samples.npz") as b:
        for k in ("x0", "x_final", "heat_kT", "heat_strat_kT"):
            np.testing.assert_array_equal(a[k], b[k])


def test_sample_too_many_runs_refused_with_the_figure(trained, tmp_path, capsys):
    rc = main(["sample", str(trained / "model.npz"), "--runs", "1e8", "-q", "-o", str(tmp_path / "s")])
    assert rc == 1
    line = one_line(capsys.readouterr().err)
    assert "100000000 samples of 72 units needs about 179 GB" in line and "--runs" in line
    assert not (tmp_path / "s").exists()


def test_recompile_removes_only_the_previous_programs_files(trained, tmp_path, capsys):
    """A program folder from before manifests (no manifest.json) recompiled for another backend:
    the old backend's files go, the user's are refused, never removed."""
    small = tmp_path / "small.npz"
    rng = np.random.default_rng(0)
    c = Computer.zeros(4, 4)
    J = rng.normal(0, 0.2, c.J.shape)
    c.replace(J=np.where(c.mask, (J + J.T) / 2, 0.0)).save(small)
    p = tmp_path / "p"
    assert main(["compile", str(small), "--target", "rc-8bit-dense", "-o", str(p)]) == 0
    (p / "manifest.json").unlink()                       # as written by an older thermohw
    assert main(["compile", str(small), "--target", "mechanical-cantilever", "-o", str(p)]) == 0
    names = {f.name for f in p.iterdir()}
    assert "oscillators.yaml" in names and "units.csv" not in names
    assert "mechanical oscillators" in (p / "chip.cir").read_text().splitlines()[0]   # rewritten, not the RC one
    assert set(json.loads((p / "manifest.json").read_text())["files"]) == names - {"manifest.json"}
    (p / "notes.txt").write_text("mine\n")
    capsys.readouterr()
    assert main(["compile", str(small), "--target", "rc-8bit-dense", "-o", str(p)]) == 1
    assert "notes.txt" in one_line(capsys.readouterr().err)
    assert (p / "notes.txt").read_text() == "mine\n" and (p / "oscillators.yaml").is_file()
