"""`thermohw data mnist`: downloads from a loopback HTTP server (Range-capable, like the real
mirrors) serving copies of the genuine MNIST test-set files; the real checksums in the code
are what decides. No internet is used: --mirror replaces the public mirrors."""
from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest

from thermohw.cli import main
from thermohw.download import MNIST_FILES, MIRRORS, fetch_mnist

NAMES = [f.name for f in MNIST_FILES["test"]]


@pytest.fixture(scope="module")
def mnist_dir(request):
    """The folder holding the test-set .gz files (the shared conftest fixture finds it)."""
    return request.getfixturevalue("mnist_test_images").parent


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves self.server.files {url path: bytes}; honours 'Range: bytes=N-' with 206; counts
    requests; paths under /dead/ answer 404."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(mnist_dir):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests = {}, []
    for name in NAMES:
        srv.files[f"/good/{name}"] = (mnist_dir / name).read_bytes()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checksums_in_the_code_match_the_genuine_test_set(mnist_dir):
    for f in MNIST_FILES["test"]:
        assert f.verify(mnist_dir / f.name) == (True, "")
        assert (mnist_dir / f.name).stat().st_size == f.size
    # training set: torchvision's published MD5s (32 hex digits each), no invented SHA-256
    assert all(re.fullmatch(r"[0-9a-f]{32}", f.md5) and f.sha256 is None for f in MNIST_FILES["train"])
    assert all(m.startswith("http") and m.endswith("/") for m in MIRRORS)


def test_download_success_via_the_cli(server, mnist_dir, tmp_path, capsys):
    srv, base = server
    out = tmp_path / "data" / "mnist"
    assert main(["data", "mnist", str(out), "--split", "test", "--mirror", base + "/good/", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)  # no .part left behind
    for name in NAMES:
        assert _sha(out / name) == _sha(mnist_dir / name)
    assert "2 verified MNIST files" in capsys.readouterr().out
    # a second run verifies what is there and downloads nothing
    n = len(srv.requests)
    assert main(["data", "mnist", str(out), "--mirror", base + "/good/", "-q"]) == 0
    assert len(srv.requests) == n
    # and the downloaded images load
    from thermohw.data import find_mnist_labels, load_mnist

    images, labels = load_mnist(out / NAMES[0], find_mnist_labels(out / NAMES[0]))
    assert images.shape[0] == 10000 and labels is not None and len(labels) == 10000


def test_resume_after_a_partial_file(server, mnist_dir, tmp_path):
    srv, base = server
    name = NAMES[0]
    body = (mnist_dir / name).read_bytes()
    (tmp_path / (name + ".part")).write_bytes(body[:700_000])  # an interrupted earlier attempt
    fetch_mnist(tmp_path, mirrors=[base + "/good"], progress=False)
    assert _sha(tmp_path / name) == _sha(mnist_dir / name)
    assert (f"/good/{name}", "bytes=700000-") in srv.requests  # only the rest was requested
    assert not list(tmp_path.glob("*.part"))


def test_a_corrupted_file_is_refused_with_one_line_and_nothing_left(server, mnist_dir, tmp_path, capsys):
    srv, base = server
    name = NAMES[1]
    bad = bytearray((mnist_dir / name).read_bytes())
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte
    srv.files[f"/bad/{name}"] = bytes(bad)
    srv.files[f"/bad/{NAMES[0]}"] = srv.files[f"/good/{NAMES[0]}"]
    assert main(["data", "mnist", str(tmp_path), "--mirror", base + "/bad/", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("thermohw data: error: ") and "corrupt" in err and name in err
    assert not (tmp_path / name).exists() and not (tmp_path / (name + ".part")).exists()
    assert (tmp_path / NAMES[0]).is_file()  # the good file before it stays (verified)


def test_mirror_fallback_when_the_first_mirror_404s(server, mnist_dir, tmp_path):
    srv, base = server
    got = fetch_mnist(tmp_path, mirrors=[base + "/dead/", base + "/good/"], progress=False)
    assert [p.name for p in got] == NAMES
    assert [p for p, _ in srv.requests] == [f"/dead/{NAMES[0]}", f"/good/{NAMES[0]}",
                                            f"/dead/{NAMES[1]}", f"/good/{NAMES[1]}"]
    assert all(_sha(p) == _sha(mnist_dir / p.name) for p in got)


def test_bad_mirror_and_existing_wrong_file_are_one_line_errors(tmp_path, capsys):
    assert main(["data", "mnist", str(tmp_path), "--mirror", "ftp://example.org/mnist/"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "http:// or https://" in err
    (tmp_path / NAMES[0]).write_bytes(b"not mnist")
    assert main(["data", "mnist", str(tmp_path), "--mirror", "http://127.0.0.1:9/"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum is wrong" in err and "delete it" in err
    assert (tmp_path / NAMES[0]).read_bytes() == b"not mnist"  # a user's file is never overwritten
