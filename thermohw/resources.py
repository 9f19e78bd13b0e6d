"""Memory estimates before large allocations: refuse with the figure and the fix instead of
failing halfway with numpy's ``_ArrayMemoryError`` (sizes in Python ints: no overflow)."""
from __future__ import annotations

import os

from .errors import InputError

# leave room for the interpreter, BLAS buffers and the rest of the machine
_USABLE_FRACTION = 0.8


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable (Linux), capped by a cgroup limit; else
    the free physical pages; else (no way to tell) effectively unlimited."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 1 << 62
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fh:
                text = fh.read().strip()
            if text == "max":
                continue
            with open(usage_file) as fh:
                used = int(fh.read().strip())
            avail = min(avail, max(0, int(text) - used))
        except (OSError, ValueError):
            continue
    return avail


def human(n: int) -> str:
    for unit, size in (("TB", 10 ** 12), ("GB", 10 ** 9), ("MB", 10 ** 6), ("kB", 10 ** 3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def check_memory(nbytes: int, what: str, fix: str) -> None:
    """Raise InputError when ``nbytes`` (an estimate of what ``what`` will allocate) does not fit
    in the memory available now; the message gives both figures and ``fix``."""
    nbytes = int(nbytes)
    avail = available_bytes()
    if nbytes > _USABLE_FRACTION * avail:
        raise InputError(f"{what} needs about {human(nbytes)} of memory, but only {human(avail)} is "
                         f"available; {fix}")
