"""Coverage feedback for a fuzzer: an asyncio server in its own thread, traced by coverage.py.

:class:`InProcessTarget` runs a server (given as ``start``/``stop`` coroutine
functions) on a dedicated thread with its own event loop. Only that thread is
traced: coverage.py's C tracer is installed there alone with ``sys.settrace``
(per-thread), and ``threading.settrace`` is never called, so the fuzzer's own calls
into the same modules (codec, engine) from other threads do not count, nor do
threads the server starts (executors). The target stays off coverage.py's global
stack of collectors: a ``coverage run`` of the whole process goes on undisturbed,
except that it no longer sees the server thread, and targets may overlap.

Points are branch **arcs** (pairs of line numbers, coverage.py's entry and exit
arcs included): on the reference server they cost no more than lines within the
noise of the measurement. What the server does after a case has ended (closing
handshakes, its timers) lands in a later ``take()``, so a case's count is not
exactly reproducible.

Measured (CPython 3.11, coverage.py 7.18) on the reference server
(``wsproto_tools/server``, ``engine``, ``codec``, ``transports``, ``ws``) over 400
cases, each a connection with a full handshake or garbage after the Challenge:
``take()`` costs ~0.1 ms (under 0.4 ms at worst) after a case, draining ~600 raw
arcs from 17 files, with ~860 points in total; its cost follows the arcs run since
the last call (each call empties the tracer's sets), not the length of the run.
``open()`` ~25-55 ms, ``close()`` ~2-5 ms, ``summary()`` ~0.4-0.6 s (it parses
every file reached). A short case end to end, client in the same process: ~2.4 ms
traced against ~1.5 ms untraced on a quiet machine.

coverage.py is used with no data file, no configuration file, no atexit handler
and no SIGTERM handler. It has no public API for tracing one thread or for
draining what was recorded, so :class:`_Tracing` reaches into its ``Collector``
(written against coverage.py 7.18); a coverage.py that no longer fits raises
:class:`TargetError` from :meth:`InProcessTarget.open`.
"""

from __future__ import annotations

__all__ = ["InProcessTarget", "TargetError"]

import asyncio
import atexit
import contextlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import coverage
from coverage.exceptions import CoverageException
from coverage.python import PythonFileReporter

from wsproto_tools.exceptions import WspError

#: A point as the tracer records it: a line, a packed arc (C tracer) or an arc tuple.
_Point = int | tuple[int, int]

_PACKED = 0xFFFFFFF  # 28 bits per line number in a packed arc (coverage's tracer.c)


class TargetError(WspError):
    """The in-process target could not start, stop, or be measured."""


class _Tracing:
    """One coverage.py collector whose tracer runs on exactly one thread.

    Everything here that is not public coverage.py API is in this class.
    """

    def __init__(self, source: Sequence[str], *, branch: bool) -> None:
        cov = coverage.Coverage(
            data_file=None, config_file=False, auto_data=False, branch=branch, source=list(source)
        )
        try:
            # The C tracer: per-thread sys.settrace (sys.monitoring, 3.12+, sees every thread).
            cov.set_option("run:core", "ctrace")
            cov.set_option("run:sigterm", False)
            # What Coverage.start() does, up to (not including) Collector.start(),
            # which would call threading.settrace() and join coverage.py's global
            # stack of collectors (pausing any other measurement in the process).
            cov._init()
            cov._inited_for_start = True
            cov._init_for_start()
            atexit.unregister(cov._atexit)  # it would only stop and close; nothing to save
            cov._post_init()
            collector = cov._collector
            if collector is None or not isinstance(collector.data, dict):
                raise TypeError("no Collector with a data dict")
            name = collector.tracer_name()
            if not callable(getattr(collector, "_start_tracer", None)):
                raise TypeError("no Collector._start_tracer")
        except (AttributeError, TypeError, CoverageException) as exc:
            raise TargetError(
                f"coverage.py {coverage.__version__} does not work the way this module needs: {exc}"
            ) from exc
        if name not in ("CTracer", "PyTracer"):
            raise TargetError(f"coverage.py chose its {name}, which is not per-thread")
        self.branch = branch
        #: file -> points recorded and not yet drained; the tracer adds to these sets
        self.data: dict[str, set[_Point]] = collector.data  # type: ignore[assignment]
        self._cov = cov  # the collector's callbacks need it alive
        self._collector = collector
        self._tracer: Any = None
        self._reporters: dict[str, PythonFileReporter] = {}

    def start(self) -> None:
        """Trace the calling thread (and only it) from now on."""
        self._collector._start_tracer()
        self._tracer = self._collector.tracers[-1]

    def stop(self, *, here: bool) -> None:
        """Stop tracing. ``here``: called on the traced thread, which unhooks at once;
        otherwise the traced thread unhooks at its next event."""
        tracer, self._tracer = self._tracer, None
        if tracer is not None:
            tracer.stop()
            if here:
                sys.settrace(None)

    def reached(self, path: str, points: set[_Point]) -> int:
        """How many statements of ``path`` ``points`` reached, counted as ``coverage
        report`` does (a statement over several lines is one); the distinct lines
        when the file cannot be parsed."""
        lines = self._lines(points)
        try:
            reporter = self._reporters.get(path)
            if reporter is None:
                reporter = self._reporters[path] = PythonFileReporter(path, coverage=self._cov)
            return len(reporter.translate_lines(lines) & reporter.lines())
        except (OSError, SyntaxError, CoverageException):
            return len(lines)

    def _lines(self, points: set[_Point]) -> set[int]:
        """The source lines of ``points`` (a line, or either end of an arc)."""
        if not self.branch:
            return {p for p in points if isinstance(p, int)}
        out: set[int] = set()
        for p in points:
            if isinstance(p, int):
                a, b = p & _PACKED, (p >> 28) & _PACKED
                # bits 56 and 57 mark negative (entry/exit) ends
                pair = (-a if p & (1 << 56) else a, -b if p & (1 << 57) else b)
            else:
                pair = p
            out.update(n for n in pair if n > 0)
        return out


class InProcessTarget:
    """Runs an asyncio server in a dedicated thread with its own event loop,
    traced by coverage.py.

    ``start()`` runs in that loop and returns the port; ``stop()`` shuts the
    server down. ``source`` lists the directories or package names to measure
    (coverage.py's ``source``: not single files). ``branch=False`` counts lines
    instead of arcs. The points reached while the server starts count in
    :attr:`total` but not in the first :meth:`take`. Call :meth:`take`,
    :attr:`total` and :meth:`summary` from one thread (the fuzzer's).
    """

    def __init__(
        self,
        start: Callable[[], Awaitable[int]],
        stop: Callable[[], Awaitable[None]],
        *,
        source: Sequence[str],
        branch: bool = True,
    ) -> None:
        self._start = start
        self._stop = stop
        self._source = list(source)
        self._branch = branch
        self._tracing: _Tracing | None = None
        self._seen: dict[str, set[_Point]] = {}
        self._total = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._port: int | None = None
        self._error: BaseException | None = None
        self._stop_budget = 7.0  # seconds for stop(), then for what it left running
        self._unwind_budget = 2.0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def open(self, timeout: float = 10.0) -> int:
        """Start the thread, the tracer and the server; the server's port.

        :raises TargetError: ``start()`` failed or took longer than ``timeout``.
        """
        if self._thread is not None or self._closed:
            raise TargetError("an InProcessTarget opens once")
        self._tracing = _Tracing(self._source, branch=self._branch)
        self._thread = threading.Thread(target=self._run, name="wsp-coverage-target", daemon=True)
        began = time.monotonic()
        self._thread.start()
        if not self._ready.wait(timeout):
            self._closed = True  # seen by _run if the task does not exist yet
            self._cancel()
            self._join(1.0)
            raise TargetError(f"the target did not start within {timeout} s")
        if self._port is None:
            self._closed = True
            self._join(max(0.0, timeout - (time.monotonic() - began)))
            raise TargetError(f"the target failed to start: {self._error!r}") from self._error
        self.take()  # start-up is not the first case's news
        return self._port

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server, stop tracing and join the thread, within ``timeout``.

        A second call does nothing. The points still undrained stay for :meth:`take`.

        :raises TargetError: ``stop()`` failed or the thread did not end in time
            (it is then left behind, a daemon thread, no longer traced).
        """
        if self._closed:
            return
        self._closed = True
        thread, loop, wake = self._thread, self._loop, self._wake
        if thread is None:
            return
        self._stop_budget, self._unwind_budget = timeout * 0.7, timeout * 0.2
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)
        if not self._join(timeout):
            raise TargetError(f"the target's thread did not end within {timeout} s")
        if self._error is not None:
            raise TargetError(f"the target failed to stop: {self._error!r}") from self._error

    def __enter__(self) -> InProcessTarget:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The server's port (after :meth:`open`)."""
        if self._port is None:
            raise TargetError("the target is not open")
        return self._port

    # ------------------------------------------------------------------ feedback
    def take(self) -> int:
        """How many points, never reached before, were reached since the last call
        (cheap enough for every case: see the module's figures)."""
        tracing = self._tracing
        if tracing is None:
            return 0
        new = 0
        # dict.copy()/set.copy() are atomic under the GIL; difference_update keeps
        # each live set object (the tracer holds it) and whatever was added meanwhile.
        for path, live in tracing.data.copy().items():
            if not live:
                continue
            batch = live.copy()
            live.difference_update(batch)
            seen = self._seen.get(path)
            if seen is None:
                seen = self._seen[path] = set()
            before = len(seen)
            seen |= batch
            new += len(seen) - before
        self._total += new
        return new

    @property
    def total(self) -> int:
        """Points reached so far (as of the last :meth:`take`)."""
        return self._total

    def summary(self) -> dict[str, int]:
        """Statements reached per measured file (absolute paths, sorted), as ``coverage
        report`` counts them, including points not yet taken. It parses each file
        (once): meant for the end of a run."""
        tracing = self._tracing
        if tracing is None:
            return {}
        points: dict[str, set[_Point]] = {p: set(s) for p, s in self._seen.items()}
        for path, live in tracing.data.copy().items():
            points.setdefault(path, set()).update(live.copy())
        counts = {path: tracing.reached(path, s) for path, s in points.items()}
        return {path: n for path, n in sorted(counts.items()) if n}

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        assert self._tracing is not None
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._tracing.start()
            try:
                self._task = loop.create_task(self._serve())
                if self._closed:  # open() gave up before the task existed
                    self._task.cancel()
                loop.run_until_complete(self._task)
            finally:
                self._tracing.stop(here=True)
                _cancel_all(loop, self._unwind_budget)
                loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException as exc:  # reported by open() or close()
            self._error = exc
        finally:
            loop.close()
            self._ready.set()

    async def _serve(self) -> None:
        self._wake = asyncio.Event()
        port = await self._start()
        await asyncio.sleep(0)  # tasks start() spawned run to their first wait
        self._port = int(port)
        self._ready.set()
        await self._wake.wait()
        try:
            await asyncio.wait_for(self._stop(), self._stop_budget)
        except TimeoutError as exc:
            raise TargetError(f"stop() did not return within {self._stop_budget:.3g} s") from exc

    def _cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(task.cancel)

    def _join(self, timeout: float) -> bool:
        """Wait for the thread; if it is stuck, stop tracing it anyway. True: it ended."""
        assert self._thread is not None
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        if self._tracing is not None:
            self._tracing.stop(here=False)
        return False


def _cancel_all(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Cancel what the server left running and let it unwind for up to ``timeout``."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=timeout))
