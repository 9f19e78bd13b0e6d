"""``thermohw data mnist DIR``: fetch the MNIST IDX files from the public mirrors, verified.

Each file is tried on the mirrors in turn, downloaded into ``DIR/NAME.part`` (resumed with an
HTTP Range request when a previous attempt left one), checked against the checksum written
below, and only then renamed to ``DIR/NAME``: a file under its final name is always complete
and verified. A mirror that serves a file with the wrong checksum is not trusted: the bad
part file is removed and the next mirror is tried; when none serves a good copy the command
fails with one line.

Checksums. Test set: SHA-256 and MD5 of the files the project's tests and measurements used
(the MD5s agree with torchvision's list). Training set: the MD5s published in torchvision's
``torchvision/datasets/mnist.py`` (``MNIST.resources``); no SHA-256 is published there, and an
unpublished one is not invented here.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .errors import InputError, ThermohwError

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str
    sha256: str | None = None      # None where no trustworthy published value exists
    size: int | None = None

    def verify(self, path: Path) -> tuple[bool, str]:
        """(ok, the digest that failed as "algo got X, expected Y" or "")."""
        md5, sha = hashlib.md5(), hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                md5.update(block)
                sha.update(block)
        if self.sha256 is not None and sha.hexdigest() != self.sha256:
            return False, f"sha256 {sha.hexdigest()[:16]}..., expected {self.sha256[:16]}..."
        if md5.hexdigest() != self.md5:
            return False, f"md5 {md5.hexdigest()}, expected {self.md5}"
        return True, ""


MNIST_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "test": (
        RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    ),
    "train": (
        RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    ),
}
SPLITS = ("test", "train", "all")


class DownloadError(ThermohwError):
    """No mirror delivered a file that matches its checksum."""


def _mirror(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise InputError(f"--mirror {url!r}: use an http:// or https:// URL of a folder holding the .gz files")
    return url if url.endswith("/") else url + "/"


def files_for(split: str) -> tuple[RemoteFile, ...]:
    if split not in SPLITS:
        raise InputError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    return MNIST_FILES["test"] + MNIST_FILES["train"] if split == "all" else MNIST_FILES[split]


def _fetch(url: str, part: Path, *, timeout: float, progress: bool, desc: str) -> None:
    """Append the rest of ``url`` to ``part`` (Range from its current size). Raises
    urllib errors / OSError on failure; what arrived before the failure stays in ``part``."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "thermohw-data/1"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part file is already whole
            return
        raise
    with resp:
        status = resp.status
        if have and status != 206:  # the server ignored the Range header: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                       dynamic_ncols=True, leave=False)
        try:
            with open(part, "ab" if have else "wb") as fh:
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    fh.write(block)
                    if bar is not None:
                        bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            if bar is not None:
                bar.close()
        if total is not None and part.stat().st_size < total:
            raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def download_file(f: RemoteFile, folder: Path, mirrors: Sequence[str], *, timeout: float = 60.0,
                  progress: bool = True, log: Callable[[str], None] = lambda s: None) -> Path:
    """One verified file in ``folder`` (kept if already there and valid)."""
    final, part = folder / f.name, folder / (f.name + ".part")
    if final.exists():
        ok, why = f.verify(final)
        if ok:
            log(f"{f.name}: present, checksum ok")
            return final
        raise DownloadError(f"{final} exists but its checksum is wrong ({why}); delete it and run again")
    failures = []
    for base in mirrors:
        url = base + f.name
        try:
            _fetch(url, part, timeout=timeout, progress=progress, desc=f.name)
        except urllib.error.HTTPError as e:
            failures.append(f"{url}: HTTP {e.code}")
            continue
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', e)}")  # the part file keeps what arrived
            continue
        ok, why = f.verify(part)
        if not ok:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: corrupt ({why})")
            continue
        os.replace(part, final)
        log(f"{f.name}: downloaded from {base}, checksum ok")
        return final
    left = " (the partial download is kept and resumes next time)" if part.exists() else ""
    raise DownloadError(f"{f.name}: no mirror delivered a verified copy - " + "; ".join(failures)
                        + left + "; try again or pass --mirror URL")


def fetch_mnist(folder: str | os.PathLike, *, split: str = "test", mirrors: Sequence[str] | None = None,
                timeout: float = 60.0, progress: bool = True,
                log: Callable[[str], None] = lambda s: None) -> list[Path]:
    """Download (or verify) the MNIST IDX files of ``split`` into ``folder``; returns their paths."""
    files = files_for(split)
    bases = [_mirror(m) for m in (mirrors or MIRRORS)]
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {folder}: {e.strerror}") from None
    return [download_file(f, folder, bases, timeout=timeout, progress=progress, log=log) for f in files]
