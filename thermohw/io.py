"""Record files: ``.npz`` arrays plus a JSON header with a schema tag, written atomically.

Never pickled: arrays are loaded with ``allow_pickle=False`` and the header is a plain JSON
string stored as a 0-d unicode array.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import InputError, NoSpaceError

HEADER_KEY = "__header__"
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path`` and rename it into place,
    so an interrupted write never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpaceError(f"{path}: no space left on the device while writing it (the previous version, if "
                               "any, is intact); free space or choose another output folder, then rerun "
                               "(with --resume where the command has it)") from None
        raise
    return path


def _finite(o: Any) -> Any:
    """NaN/inf become null: strict JSON parsers (and other languages) reject them."""
    if isinstance(o, float):
        return o if o == o and o not in (float("inf"), float("-inf")) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.generic):
        return _finite(o.item())
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    return o


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_record(path: str | os.PathLike, schema: str, header: Mapping[str, Any],
                arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` and a JSON ``header`` (tagged with ``schema``) to ``path`` atomically."""
    if HEADER_KEY in arrays:
        raise InputError(f"array name {HEADER_KEY!r} is reserved")
    head = {"schema": schema, **header}
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in payload.items():
        if v.dtype == object:
            raise InputError(f"array {k!r} has dtype object, which cannot be saved without pickle")
    payload[HEADER_KEY] = np.array(json.dumps(head, default=_json_default))
    return atomic_write(path, lambda fh: np.savez_compressed(fh, **payload))


def numeric_array(src: Any, name: str, value: Any, *, integer: bool = False) -> np.ndarray:
    """``value`` as an array of real numbers (bool, integer or float dtype; only integer or
    bool with ``integer``), else an InputError naming ``src`` and ``name``. Casting a complex
    array to float silently drops its imaginary part, and a string array silently parses:
    both are refused instead."""
    a = np.asarray(value)
    kinds = "biu" if integer else "biuf"
    if a.dtype.kind not in kinds:
        want = "integers" if integer else "real numbers"
        what = {"c": "complex", "O": "object", "U": "text", "S": "bytes", "V": "structured"}.get(a.dtype.kind, str(a.dtype))
        raise InputError(f"{src}: {name} holds {what} values ({a.dtype}); it must hold {want} - "
                         "the file is damaged or was not written by thermohw")
    return a


def read_npz_arrays(path: Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an .npz file (never unpickled). Any failure to decode the untrusted bytes
    (zipfile.BadZipFile, zlib.error, a damaged .npy header, an object array, a member that is
    not an array, ...) is an InputError naming the file."""
    arrays, k = {}, None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # our handle: closed on error
            for k in z.files:
                arrays[k] = z[k]
    except Exception as e:
        where = "" if k is None else f" at array {k!r}"
        if k is not None and "allow_pickle" in str(e):  # (a file that is no zip at all says so too)
            raise InputError(f"{path}: array {k!r} holds Python objects, which thermohw never unpickles; "
                             "store plain numeric arrays") from None
        raise InputError(f"{path}: not a readable .npz {what}{where} ({type(e).__name__}: {_short(e)}); "
                         "the file is corrupt or truncated - regenerate it") from None
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):  # numpy hands back a member that is not .npy as raw bytes
            raise InputError(f"{path}: member {k!r} is not a numpy array; the file is damaged or not an .npz {what}")
    return arrays


def _short(e: BaseException, n: int = 100) -> str:
    """An exception's text on one line, cut to ``n`` characters (it can quote file bytes)."""
    text = " ".join(str(e).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def load_record(path: str | os.PathLike, schema: str | tuple[str, ...]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a record written by :func:`save_record`; check its schema tag (one tag, or a tuple
    of the tags a reader understands).

    Returns ``(header, arrays)``. Any unreadable, foreign or corrupt file raises
    :class:`InputError` naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    arrays = read_npz_arrays(path, "record")
    if HEADER_KEY not in arrays:
        raise InputError(f"{path}: has no thermohw header; it was not written by thermohw")
    head = arrays.pop(HEADER_KEY)
    if head.dtype.kind != "U" or head.shape != ():
        raise InputError(f"{path}: header is a {head.dtype} array of shape {head.shape}, not JSON text; "
                         "the file is damaged or was not written by thermohw - regenerate it")
    try:
        header = json.loads(str(head))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, over-long integers, deep nesting
        raise InputError(f"{path}: header is not valid JSON ({type(e).__name__}: {str(e)[:80]}); "
                         "the file is damaged - regenerate it") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: header is not a JSON object; the file was not written by thermohw")
    found = header.get("schema")
    accepted = (schema,) if isinstance(schema, str) else tuple(schema)
    if found not in accepted:
        want = accepted[0] if len(accepted) == 1 else " or ".join(repr(a) for a in accepted)
        raise InputError(f"{path}: schema is {_short(repr(found), 60)}, expected {want if len(accepted) > 1 else repr(want)}; "
                         "it is a different kind of record or from an incompatible version")
    return header, arrays


def check_output_folder(path: str | os.PathLike, option: str = "-o") -> Path:
    """Before any work starts: ``path`` must be a folder thermohw can create files in (or can
    create). Raises InputError naming the path and the fix; creates nothing that stays."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is a file, not a folder; choose a folder path (new or existing)")
    probe = path
    while not probe.exists():  # the nearest existing ancestor is where the folder would be made
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"{option} {path}: {probe} is a file, so no folder can be made there; choose another path")
    try:  # a real write test: os.access misses read-only mounts for root and ACLs
        fd, tmp = tempfile.mkstemp(prefix=".thermohw-write-test.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        where = "" if probe == path else f" (in {probe})"
        raise InputError(f"{option} {path}: cannot write there{where}: {e.strerror or e}; "
                         "choose a writable folder") from None
    return path
