"""Where the TUI's records come from: a file, an interface, a server's inspector feed.

Each source runs in a thread of its own and appends to the app's
:class:`~wsproto_tools.render.rowstore.RowStore`; the screen reads the store at
its own pace (ingest never waits for drawing). ``--connect`` is not here: its
client lives in the app's event loop, next to the composer that drives it.
"""

from __future__ import annotations

__all__ = ["SourceRunner", "SourceSpec"]

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.capture.source import FileProgress, read_file, tap
from wsproto_tools.render.rowstore import CaptureSink, RowStore


@dataclass
class SourceSpec:
    """What ``wsp tui`` reads: ``kind`` is ``file``, ``tap``, ``server`` or ``connect``."""

    kind: str
    target: str
    port: int | None = None
    bpf: str | None = None
    admin_secret: str | None = None
    admin_token: str | None = None
    sessions: tuple[int, ...] = ()
    topics: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    ssl_context: Any = None
    #: for ``connect``: keyword arguments of the interactive client
    client_options: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        names = {"file": "file", "tap": "tap", "server": "inspector", "connect": "connect"}
        return f"{names.get(self.kind, self.kind)}: {self.target}"


class SourceRunner:
    """Runs one source into a store in a daemon thread."""

    def __init__(self, spec: SourceSpec, store: RowStore) -> None:
        self.spec = spec
        self.store = store
        self.progress = FileProgress(0)
        self.error: BaseException | None = None
        self.done = False
        self.dropped = 0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread = threading.Thread(target=self._run, name=f"wsp-source-{spec.kind}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        spec = self.spec
        sink = CaptureSink(self.store)
        try:
            if spec.kind == "file":
                read_file(spec.target, sink, stop=self._stop.is_set, progress=self.progress)
            elif spec.kind == "tap":
                tap(spec.target, sink, port=spec.port, bpf=spec.bpf, stop=self._stop.is_set)
            elif spec.kind == "server":
                asyncio.run(self._feed())
        except asyncio.CancelledError:
            pass
        except BaseException as error:
            self.error = error
        finally:
            self.done = True
            self.progress.finished = True

    async def _feed(self) -> None:
        from wsproto_tools.client.inspect import feed_url, inspector_batches

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        spec = self.spec
        url = feed_url(spec.target, session=spec.sessions[0] if spec.sessions else None,
                       topics=spec.topics, types=spec.types)
        store = self.store
        credential: dict[str, Any] = (
            {"token": spec.admin_token} if spec.admin_token and not spec.admin_secret
            else {"secret": spec.admin_secret or ""})
        async for lines in inspector_batches(url, ssl_context=spec.ssl_context, **credential):
            first = store.count
            store.add_lines([line.encode("utf-8", "surrogateescape") for line in lines])
            for i in range(first, store.count):  # a record of what the server dropped
                if store.kind[i] == self._dropped_kind:
                    self.dropped += int(store.record(i).get("count") or 0)
            self.progress.records += len(lines)
            if self._stop.is_set():
                break

    @property
    def _dropped_kind(self) -> int:
        return self.store.kinds.id("dropped")
