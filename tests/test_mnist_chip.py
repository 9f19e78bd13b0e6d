"""The shipped MNIST crossbar chip: its model file, a golden-file check of its netlist, and
its digits (docs/mnist-chip.md)."""
import re
from pathlib import Path

import numpy as np
import pytest

from thermohw import Computer, Target
from thermohw.compile import CompileOptions, compile_computer
from thermohw.data import Digits
from thermohw.langevin import generate
from thermohw.metrics import digit_scores

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "models" / "mnist-chip.npz"
NETLIST = ROOT / "netlists" / "mnist-chip.cir"
_SUFFIX = {"T": 1e12, "G": 1e9, "Meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
           "a": 1e-18}
_NUM = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(Meg|[TGkmunpfa])?$")


def _value(tok: str):
    m = _NUM.match(tok)
    return None if m is None else float(m.group(1)) * _SUFFIX.get(m.group(2) or "", 1.0)


def _tokens(line: str) -> list[str]:
    return re.split(r"[\s=()]+", line.strip())


@pytest.fixture(scope="module")
def shipped():
    return Computer.load(MODEL), Digits.load(MODEL.with_name("mnist-chip.digits.npz"))


def test_shipped_model_is_the_documented_chip_model(shipped):
    c, d = shipped
    assert (c.n_visible, c.n_hidden, c.image_shape) == (784, 24, (28, 28))
    assert c.n_couplings == 784 * 24 + 24 * 23 // 2
    assert Target.preset("rc-mnist-crossbar").admits(c.mask)
    assert c.meta["train"]["hidden_targets"] == "classes" and c.meta["averaged_iterates"] == 1000
    assert list(d.labels) == [0, 3, 7]
    assert MODEL.stat().st_size < 200_000  # only the couplings that exist, compressed


def test_compiling_the_shipped_model_reproduces_the_shipped_netlist(shipped):
    """Golden file (hls4ml-style): the committed netlist is what compile writes today. Numbers
    are compared to 1e-9 relative (the writer prints 12 significant digits)."""
    c, _ = shipped
    # netlists/make.sh compiles the measured chip with --coupling-headroom 1 (no trim room)
    p = compile_computer(c, Target.preset("rc-mnist-crossbar"), CompileOptions(coupling_headroom=1.0))
    from thermohw.backends import rc

    from thermohw.provenance import strip_provenance

    # the provenance line (version, commit, command) differs by design; everything else must not
    new = strip_provenance(rc.generation_netlist(p)).splitlines()
    old = strip_provenance(NETLIST.read_text()).splitlines()
    assert len(new) == len(old), "netlists/mnist-chip.cir is stale: run netlists/make.sh"
    for k, (a, b) in enumerate(zip(old, new)):
        if a == b:
            continue
        ta, tb = _tokens(a), _tokens(b)
        assert len(ta) == len(tb), f"line {k + 1} differs: {a!r} vs {b!r} (run netlists/make.sh)"
        for x, y in zip(ta, tb):
            vx, vy = _value(x), _value(y)
            if vx is None or vy is None:
                assert x == y, f"line {k + 1}: {x!r} vs {y!r} (run netlists/make.sh)"
            else:
                assert vy == pytest.approx(vx, rel=1e-9, abs=1e-300), f"line {k + 1}: {x} vs {y}"


def test_realised_chip_model_generates_the_three_digits(shipped):
    """200 samples of the realised 8-bit model, seed 2. Measured on 1000 samples (seed 1):
    best |corr| 0.677 (sd 0.07, so the sem at n = 200 is 0.005), margin 0.386 (sd 0.16, sem
    0.011), shares 0.40/0.14/0.46 (binomial sd at n = 200: 0.035/0.025/0.035). The bounds sit
    >= 4 sem below the measured values (docs/mnist-chip.md asks 0.6, 0.3 and 10 % of 1000)."""
    c, d = shipped
    r = compile_computer(c, Target.preset("rc-mnist-crossbar"), CompileOptions()).realised
    tr = generate(r, 200, seed=2)
    s = digit_scores(tr.x_final[:, :784], d.patterns, d.labels)
    assert s["mean_best_abs_corr"] > 0.65, s["mean_best_abs_corr"]
    assert s["mean_margin"] > 0.33, s["mean_margin"]
    assert min(s["mode_share"]) > 0.04, s["mode_share"]
    # the heat: 1051 kT, sd 63 kT per sample (sem 4.5 at n = 200)
    assert 1000 < float(tr.heat_kT.mean()) < 1100
