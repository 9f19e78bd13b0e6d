"""Many independent jobs (SPICE runs over seeds, mismatch samples, ...) behind one interface.

    with make_executor(workers=4) as ex:                      # local process pool
        results = ex.map(job, items, desc="spice")
    with make_executor(scheduler="tcp://host:8786") as ex:    # a Dask distributed cluster
        results = ex.map(job, items)

``map`` returns one :class:`JobResult` per item, in item order. A job that raises (for example
a "timestep too small" ``NgspiceError``) becomes ``JobResult(ok=False, error="NgspiceError:
...")``; the other jobs go on, so one bad run never kills a sweep.

Rules for ``fn``: a module-level function (or a ``functools.partial`` of one) and picklable
items and results: jobs run in separate processes (started with ``spawn``, so nothing from the
parent's in-process state -- an ngspice shared engine, open files, threads -- leaks into a
worker) or on other machines. ``workers=1`` without a scheduler runs in this process, without
a pool. On a Dask cluster the workers need thermohw (and ngspice) installed.

Interrupts (Ctrl-C) never lose finished runs:

* ``on_result(result)`` is called in this process as each job finishes (completion order):
  save results there incrementally (e.g. one file per run, written atomically).
* On KeyboardInterrupt -- Ctrl-C, or ``on_result`` raising it -- pending jobs are cancelled,
  running local workers are stopped, and :class:`Interrupted` is raised. It is a
  ``KeyboardInterrupt`` (so an unhandled one still stops the program) carrying ``.results``:
  every job that had finished, in item order, including any that finished after the last
  ``on_result`` call. Catch it to save or report partial results.

Any other exception from ``on_result`` cancels the pending jobs and propagates unchanged.

Lost workers: a local worker process that dies (killed, out of memory) breaks its pool; the jobs
it took down are resubmitted to a fresh pool, up to ``LOCAL_POOL_RESTARTS`` times per map; after
that, jobs lost with a broken pool fail (so a job that kills its worker every time cannot loop
forever; what it took down with it is reported, and can be rerun, e.g. by cosim --resume). On Dask the scheduler
does the same (a task whose worker died is rerun elsewhere, up to ``distributed.scheduler.
allowed-failures`` times, then it fails as ``KilledWorker``).
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .errors import InputError, ThermohwError

__all__ = ["JobResult", "Interrupted", "Executor", "LocalExecutor", "DaskExecutor", "make_executor",
           "check_scheduler_address"]

LOCAL_POOL_RESTARTS = 3
# connecting to a scheduler that answers takes well under a second on a LAN; waiting longer only
# delays the error when the address is wrong or the scheduler is down
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job: ``value`` if ``ok``, else ``error`` (exception type and message).
    ``seconds`` is the job's own run time, measured where it ran."""

    index: int
    ok: bool
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


class Interrupted(KeyboardInterrupt):
    """A ``map`` stopped by KeyboardInterrupt. ``results``: the finished jobs (item order);
    ``total``: how many jobs were asked for."""

    def __init__(self, results: Sequence[JobResult], total: int):
        self.results = sorted(results, key=lambda r: r.index)
        self.total = total
        super().__init__(f"interrupted after {len(self.results)} of {total} jobs finished "
                         "(their results are kept in .results)")

    @property
    def pending(self) -> list[int]:
        """Indices of the jobs that did not finish."""
        done = {r.index for r in self.results}
        return [i for i in range(self.total) if i not in done]


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any, str | None, float]:
    """Run one job where it is scheduled: (ok, value, error, seconds). Module-level so that it
    pickles by reference for process pools and Dask."""
    t0 = time.perf_counter()
    try:
        value = fn(item)
    except Exception as e:  # a failed job is a result, not a crash of the sweep
        return False, None, _describe(e), time.perf_counter() - t0
    return True, value, None, time.perf_counter() - t0


def _describe(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    if not isinstance(e, ThermohwError):  # an unexpected error: keep where it happened
        tb = traceback.extract_tb(e.__traceback__)
        if tb:
            last = tb[-1]
            text += f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return text


def _result(index: int, out: tuple[bool, Any, str | None, float]) -> JobResult:
    ok, value, error, seconds = out
    return JobResult(index=index, ok=ok, value=value, error=error, seconds=seconds)


def _progress(total: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc or None, unit="job", disable=not progress, leave=False,
                dynamic_ncols=True)


class Executor:
    """The interface: ``map(fn, items, *, progress=True, desc="", on_result=None)`` and
    ``close()`` (also a context manager)."""

    workers: int = 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, progress: bool = True, desc: str = "",
            on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Collector:
    """Shared bookkeeping of one map: finished results, progress, the callback."""

    def __init__(self, total: int, on_result, bar):
        self.total = total
        self.results: dict[int, JobResult] = {}
        self.on_result = on_result
        self.bar = bar
        self.failed = 0

    def add(self, r: JobResult, *, notify: bool = True) -> None:
        self.results[r.index] = r
        if not r.ok:
            self.failed += 1
        self.bar.update(1)
        if self.failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)
        if notify and self.on_result is not None:
            self.on_result(r)

    def ordered(self) -> list[JobResult]:
        return [self.results[i] for i in sorted(self.results)]


class LocalExecutor(Executor):
    """``workers == 1``: jobs run one after another in this process. ``workers > 1``: a
    ``ProcessPoolExecutor`` (``spawn`` start method by default), kept open until ``close()``."""

    def __init__(self, workers: int = 1, *, start_method: str = "spawn"):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise InputError(f"workers = {workers!r}; give a whole number >= 1")
        self.workers = workers
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is not None and getattr(self._pool, "_broken", False):
            self._terminate()  # a worker died in an earlier map: start afresh
        if self._pool is None:
            ctx = multiprocessing.get_context(self.start_method)
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def map(self, fn, items, *, progress=True, desc="", on_result=None):
        items = list(items)
        n = len(items)
        with _progress(n, progress, desc) as bar:
            col = _Collector(n, on_result, bar)
            if self.workers == 1:
                self._map_inline(fn, items, col)
            else:
                self._map_pool(fn, items, col)
            return col.ordered()

    @staticmethod
    def _map_inline(fn, items, col: _Collector) -> None:
        try:
            for i, item in enumerate(items):
                col.add(_result(i, _call(fn, item)))
        except KeyboardInterrupt:
            raise Interrupted(col.ordered(), col.total) from None

    def _map_pool(self, fn, items, col: _Collector) -> None:
        futures: dict[Future, int] = {}
        todo, restarts = list(range(len(items))), 0
        try:
            while todo:
                pool = self._get_pool()
                futures = {pool.submit(_call, fn, items[i]): i for i in todo}
                lost: list[int] = []
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for f in sorted(done, key=futures.__getitem__):
                        if (restarts < LOCAL_POOL_RESTARTS and not f.cancelled()
                                and isinstance(f.exception(), BrokenProcessPool)):
                            lost.append(futures[f])  # its worker died: run it again in a fresh pool
                        else:
                            col.add(self._finished(futures[f], f))
                if lost:
                    restarts += 1
                    self._terminate()
                todo = sorted(lost)
        except KeyboardInterrupt:
            self._abort(futures, col)
            raise Interrupted(col.ordered(), col.total) from None
        except BaseException:
            self._abort(futures, col)
            raise

    @staticmethod
    def _finished(index: int, f: Future) -> JobResult:
        try:
            return _result(index, f.result())
        except BaseException as e:  # the worker died (BrokenProcessPool), or the job was cancelled
            return JobResult(index=index, ok=False, error=_describe(e))

    def _abort(self, futures: dict[Future, int], col: _Collector) -> None:
        """Cancel what has not started, keep what finished, stop the workers."""
        for f in futures:
            f.cancel()
        for f, i in futures.items():
            if i not in col.results and f.done() and not f.cancelled():
                try:
                    out = f.result(timeout=0)
                except BaseException:
                    continue
                col.add(_result(i, out), notify=False)
        self._terminate()

    def _terminate(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())  # running jobs are abandoned
        for p in procs:
            try:
                p.terminate()
            except Exception:
                pass
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Jobs go to a Dask distributed scheduler (``tcp://HOST:PORT``) or an existing
    ``distributed.Client``. Needs ``pip install 'thermohw[dask]'``."""

    def __init__(self, scheduler, *, timeout: float = CONNECT_TIMEOUT_S):
        try:
            import distributed
        except ImportError:
            raise InputError("--scheduler needs Dask distributed: pip install 'thermohw[dask]' "
                             "(or dask[distributed])") from None
        self._own = not isinstance(scheduler, distributed.Client)
        self.client = None
        if self._own:
            # check the form first: a malformed address makes Client raise after it has started
            # its event loop, and the half-built client then hangs the interpreter's exit
            scheduler = check_scheduler_address(scheduler)
            _probe(scheduler, timeout)
            try:
                self.client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
            except Exception as e:  # any failure to connect is the user's address or cluster
                raise InputError(f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
                                 f"({type(e).__name__}: {e}); start it (dask scheduler) or fix --scheduler"
                                 ) from None
        else:
            self.client = scheduler
        self.scheduler = self.client.scheduler.address
        try:
            self.workers = max(1, sum(w.get("nthreads", 1) for w in
                                      self.client.scheduler_info()["workers"].values()))
        except Exception:
            self.workers = 1

    def map(self, fn, items, *, progress=True, desc="", on_result=None):
        from distributed import as_completed

        items = list(items)
        n = len(items)
        tag = uuid.uuid4().hex[:12]
        keys = [f"thermohw-{tag}-{i}" for i in range(n)]
        with _progress(n, progress, desc) as bar:
            col = _Collector(n, on_result, bar)
            futures = []
            try:
                futures = self.client.map(functools.partial(_call, fn), items, key=keys, pure=False)
                index = {f.key: i for i, f in enumerate(futures)}
                for f in as_completed(futures, loop=self.client.loop):
                    col.add(self._finished(index[f.key], f))
            except KeyboardInterrupt:
                self._abort(futures, col)
                raise Interrupted(col.ordered(), col.total) from None
            except BaseException:
                self._abort(futures, col)
                raise
            return col.ordered()

    @staticmethod
    def _finished(index: int, f) -> JobResult:
        try:
            return _result(index, f.result())
        except BaseException as e:  # lost worker, cancelled, unpicklable result, ...
            return JobResult(index=index, ok=False, error=_describe(e))

    def _abort(self, futures, col: _Collector) -> None:
        index = {f.key: i for i, f in enumerate(futures)}
        finished = [f for f in futures if f.status == "finished" and index[f.key] not in col.results]
        rest = [f for f in futures if f.status not in ("finished", "error")]
        try:
            if rest:
                self.client.cancel(rest)
        except Exception:
            pass
        for f in finished:
            try:
                col.add(_result(index[f.key], f.result(timeout=5)), notify=False)
            except BaseException:
                continue

    def close(self) -> None:
        if self._own and self.client is not None:
            self.client.close()
        self.client = None


def _probe(address: str, timeout: float) -> None:
    """Before a Client is made: fail at once when nothing listens at a TCP-based address
    (refused, unknown host), which distributed's Client would retry until its timeout, and, for
    tcp://, when what answers is not a Dask scheduler (a failed Client hangs the exit)."""
    import asyncio
    import socket

    proto, _, loc = address.rpartition("://")
    proto = proto or "tcp"
    if proto not in ("tcp", "tls", "ws", "wss"):
        return
    host, _, port = loc.rpartition(":")
    fix = "start it (dask scheduler) or fix --scheduler"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(f"cannot reach the Dask scheduler at {address!r} ({e.strerror or e}); {fix}") from None
    if proto != "tcp":  # tls/ws need the cluster's security settings: the Client checks them
        return
    from distributed.comm import connect

    async def handshake() -> None:
        comm = await connect(address if "://" in address else f"tcp://{address}", timeout=timeout)
        await comm.close()

    try:  # distributed's connect waits for the handshake without a limit: a silent port would hang
        asyncio.run(asyncio.wait_for(handshake(), timeout))
    except Exception as e:  # garbage from a non-Dask service can surface as anything (even MemoryError)
        why = " ".join(str(e).split())[:120] or f"no answer within {timeout:g} s"
        raise InputError(f"no Dask scheduler answers at {address!r} ({type(e).__name__}: {why}); {fix}") from None


def check_scheduler_address(address) -> str:
    """``address`` if it has the form of a Dask scheduler address distributed can connect to:
    ``[PROTOCOL://]HOST:PORT`` with PROTOCOL tcp (the default), tls, ws, wss or ucx, or an
    ``inproc://`` address (a scheduler in this process). Otherwise one InputError naming the fix."""
    fix = "give the scheduler's address as tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786)"
    if not isinstance(address, str) or not address.strip() or address != address.strip() or any(
            c.isspace() or not c.isprintable() for c in address):
        raise InputError(f"scheduler address {address!r} is not an address; {fix}")
    proto, sep, loc = address.partition("://")
    if not sep:
        proto, loc = "tcp", address
    known = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
    if proto not in known:
        raise InputError(f"scheduler address {address!r}: unknown protocol {proto!r} (Dask knows "
                         f"{', '.join(known)}); {fix}")
    if proto == "inproc":
        if not loc:
            raise InputError(f"scheduler address {address!r} names no scheduler; {fix}")
        return address
    host, colon, port = loc.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # IPv6 literal
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError(f"scheduler address {address!r} needs a host and a port 1..65535; {fix}")
    return address


def make_executor(workers: int = 1, scheduler: str | None = None, *, start_method: str = "spawn") -> Executor:
    """A local executor (``workers`` processes; 1 = in this process) or, if ``scheduler`` is
    given (``tcp://HOST:PORT`` or a ``distributed.Client``), a Dask one -- ``workers`` is then
    the cluster's business and ignored."""
    if scheduler:
        return DaskExecutor(scheduler)
    return LocalExecutor(workers, start_method=start_method)
