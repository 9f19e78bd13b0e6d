"""Provenance: the report object and the netlist header line, sanitised; and `thermohw doctor`
against the real ngspice and against a PATH without it."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import scipy

import thermohw
from thermohw import provenance as pv
from thermohw.backends import rc
from thermohw.cli import main
from thermohw.compile import compile_computer

from conftest import random_computer

EVIL = ["thermohw", "compile", "m.npz\n.control\nshell touch /tmp/pwned\n.endc", "--target\r\n.include /etc/passwd"]


def test_provenance_object_has_versions_command_and_seeds():
    pv.set_command(["thermohw", "sample", "m.npz", "--seed", "3"])
    p = pv.provenance(seeds={"generate": 3}, ngspice=True)
    assert p["thermohw"] == thermohw.__version__ and p["numpy"] == np.__version__ and p["scipy"] == scipy.__version__
    assert p["command"] == ["thermohw", "sample", "m.npz", "--seed", "3"] and p["seeds"] == {"generate": 3}
    assert p["ngspice"].startswith("ngspice-")  # the real one on PATH
    # a checkout gives the commit git itself reports; an installed copy gives None
    if p["git_commit"] is not None:
        head = subprocess.run(["git", "-C", str(pv._PACKAGE_DIR.parent), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        assert p["git_commit"] == head and isinstance(p["git_dirty"], bool)
    assert pv.provenance()["ngspice"] is None  # only where ngspice ran
    json.dumps(p)


def test_netlist_provenance_line_is_one_sanitised_comment():
    pv.set_command(EVIL)
    try:
        p = compile_computer(random_computer(2, 2, seed=1), "rc-8bit-dense")
        text = rc.generation_netlist(p)
    finally:
        pv.set_command(["thermohw"])
    lines = text.splitlines()
    prov = [ln for ln in lines if pv.is_provenance_line(ln)]
    assert len(prov) == 1 and prov[0].startswith("* provenance: thermohw " + thermohw.__version__)
    assert "command: thermohw compile" in prov[0] and len(prov[0]) <= 420
    for ln in lines:  # nothing from argv reached a line of its own
        assert not ln.strip().lower().startswith((".control", "shell", ".include", ".endc")), ln
    assert [ln for ln in lines if ln.strip().lower() == ".end"] == [".end"]
    assert "\r" not in text
    # golden-file comparisons drop exactly that line
    assert pv.strip_provenance(text).splitlines() == [ln for ln in lines if ln != prov[0]]


def test_compile_report_and_parameter_set_carry_provenance(tmp_path):
    c = random_computer(3, 3, seed=2)
    c.save(tmp_path / "m.npz")
    assert main(["compile", str(tmp_path / "m.npz"), "--target", "mechanical-cantilever", "--netlist-seed", "5",
                 "-o", str(tmp_path / "prog")]) == 0
    rep = json.loads((tmp_path / "prog" / "report.json").read_text())["provenance"]
    assert rep["seeds"] == {"rounding": 0, "netlist": 5} and rep["command"][:2] == ["thermohw", "compile"]
    head = [ln for ln in (tmp_path / "prog" / "oscillators.yaml").read_text().splitlines() if ln.startswith("#")]
    assert sum(pv.is_provenance_line(ln) for ln in head) == 1
    from thermohw.compile import CompiledProgram

    CompiledProgram.load(tmp_path / "prog")  # the extra key does not disturb the loader


def test_doctor_with_the_real_ngspice(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ok\s+ngspice\s+/\S*ngspice \(ngspice-", out, re.M), out
    assert "numpy " + np.__version__ in out and "BLAS" in out and "MNIST" in out
    assert out.rstrip().endswith("everything required is present")


def test_doctor_without_ngspice_on_path_fails_naming_the_fix(tmp_path):
    # a real process with a PATH that holds no ngspice (an empty folder)
    r = subprocess.run([sys.executable, "-m", "thermohw", "doctor"], capture_output=True, text=True, timeout=120,
                       env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"^MISSING\s+ngspice\s+not found on PATH", r.stdout, re.M), r.stdout
    last = r.stdout.strip().splitlines()[-1]
    assert "ngspice" in last and "apt-get install -y ngspice" in last


def test_version_matches_pyproject():
    """thermohw/_version.py is the one place the code reads the version; pyproject must agree."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1) == thermohw.__version__
