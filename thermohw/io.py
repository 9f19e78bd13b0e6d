"""Record files: ``.npz`` arrays plus a JSON header with a schema tag, written atomically.

Never pickled: arrays are loaded with ``allow_pickle=False`` and the header is a plain JSON
string stored as a 0-d unicode array.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import InputError

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
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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


def load_record(path: str | os.PathLike, schema: str | tuple[str, ...]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a record written by :func:`save_record`; check its schema tag (one tag, or a tuple
    of the tags a reader understands).

    Returns ``(header, arrays)``. Any unreadable, foreign or corrupt file raises
    :class:`InputError` naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # any failure to decode untrusted bytes (zlib.error, tokenize.TokenError, ...)
        raise InputError(f"{path}: not a readable .npz record ({type(e).__name__}: {e}); "
                         "the file is corrupt or truncated - regenerate it") from None
    if HEADER_KEY not in arrays:
        raise InputError(f"{path}: has no thermohw header; it was not written by thermohw")
    try:
        header = json.loads(str(arrays.pop(HEADER_KEY)))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: header is not a JSON object; the file was not written by thermohw")
    found = header.get("schema")
    accepted = (schema,) if isinstance(schema, str) else tuple(schema)
    if found not in accepted:
        want = accepted[0] if len(accepted) == 1 else " or ".join(repr(a) for a in accepted)
        raise InputError(f"{path}: schema is {found!r}, expected {want if len(accepted) > 1 else repr(want)}; "
                         "it is a different kind of record or from an incompatible version")
    return header, arrays
