"""What a node of a cluster (a networked broker) does beside serving: publish
ids for the broker's deduplication, and coalesced session snapshot writes.

Nothing here imports the NATS client: the server loads it only for
``--broker nats://`` (server/nats_broker.py).
"""

from __future__ import annotations

__all__ = ["GATE_HIGH", "Saver", "SessionTaken", "publish_id"]

import asyncio
from typing import Any

from wsproto_tools.engine.snapshot import snapshot
from wsproto_tools.exceptions import WspError

#: Entries a connection's gate may hold before the server stops reading it.
GATE_HIGH = 512


class SessionTaken(WspError):
    """The session was resumed on another node since this node last wrote it."""


def publish_id(session_id: int, pid: int | None, sequence: int) -> str:
    """The broker's deduplication id of a publish: the same after a resume, on
    any node (the session id survives it, and so do publish ids and sequences)."""
    return f"{session_id}.{pid}" if pid is not None else f"{session_id}.s{sequence}"


class Saver:
    """One session's snapshot writes, and what they cover.

    The snapshot stored for a session says it received up to the *stored
    frontier*: the sequence before its oldest publish still on its way to the
    broker (or all it received, when none is). So a node that resumes the session
    from the store acknowledges only what is stored, and the client sends the
    rest again. :meth:`until` gives the future an Acknowledge waits for; every
    publish that lands asks for another write. At most one write is in flight;
    the next one covers every change asked for meanwhile.
    """

    __slots__ = (
        "_again", "_running", "_task", "_waiters", "inflight", "metrics", "saved",
        "session", "store",
    )

    def __init__(self, store: Any, session: Any, metrics: Any) -> None:
        self.store = store
        self.session = session
        self.metrics = metrics
        #: publishes on their way to the broker: sequence -> publish id
        self.inflight: dict[int, int | None] = {}
        #: the frontier of the last snapshot stored (-1: none yet)
        self.saved = -1
        self._waiters: list[tuple[int, asyncio.Future[Any]]] = []
        self._again = False
        self._running = False
        self._task: asyncio.Future[None] | None = None

    def frontier(self) -> int:
        inflight = self.inflight
        return next(iter(inflight)) - 1 if inflight else int(self.session.recv_seq)

    def until(self, sequence: int) -> asyncio.Future[Any]:
        """Done once a stored snapshot covers ``sequence`` (and with it everything
        the session sent meanwhile); a write is asked for."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((sequence, future))
        if self.frontier() >= sequence:
            self.request()
        # else a publish before it is on its way: its landing asks for the write
        return future

    def landed(self, sequence: int) -> None:
        """Publish ``sequence`` is stored (or failed: the connection ends anyway)."""
        self.inflight.pop(sequence, None)
        self.request()

    def request(self) -> None:
        self._again = True
        if not self._running:
            self._running = True
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while self._again:
                self._again = False
                frontier = self.frontier()
                pending = {pid for pid in self.inflight.values() if pid is not None}
                data = snapshot(self.session, self.store.limit, frontier, pending)
                try:
                    await self.store.save(self.session.session_id, data)
                except BaseException as error:  # the gate ends the connection
                    waiters, self._waiters = self._waiters, []
                    for _, future in waiters:
                        if not future.done():
                            future.set_exception(error)
                    if isinstance(error, asyncio.CancelledError):
                        raise
                    return
                self.metrics.sessions_saved += 1
                self.saved = frontier
                keep = []
                for needed, future in self._waiters:
                    if needed <= frontier:
                        if not future.done():
                            future.set_result(None)
                    else:
                        keep.append((needed, future))
                self._waiters = keep
        finally:
            self._running = False
