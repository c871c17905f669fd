"""What a node of a cluster (a networked broker) does beside serving: publish
ids for the broker's deduplication, and coalesced session snapshot writes.

Nothing here imports the NATS client: the server loads it only for
``--broker nats://`` (server/nats_broker.py).
"""

from __future__ import annotations

__all__ = ["GATE_HIGH", "Saver", "SessionTaken", "publish_id"]

import asyncio
from collections.abc import Callable
from typing import Any

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
    """One session's snapshot writes: at most one in flight, the next one covering
    every change asked for meanwhile."""

    __slots__ = ("_next", "_running", "_task", "metrics", "session_id", "store")

    def __init__(self, store: Any, session_id: int, metrics: Any) -> None:
        self.store = store
        self.session_id = session_id
        self.metrics = metrics
        self._next: tuple[asyncio.Future[Any], Callable[[], bytes]] | None = None
        self._running = False
        self._task: asyncio.Future[None] | None = None

    def request(self, take: Callable[[], bytes]) -> asyncio.Future[Any]:
        """A future done once a snapshot taken after this call is stored; ``take``
        makes the snapshot (called when the write starts)."""
        if self._next is None:
            self._next = (asyncio.get_running_loop().create_future(), take)
        else:
            self._next = (self._next[0], take)
        future = self._next[0]
        if not self._running:
            self._running = True
            self._task = asyncio.ensure_future(self._run())
        return future

    async def _run(self) -> None:
        try:
            while self._next is not None:
                future, take = self._next
                self._next = None
                try:
                    await self.store.save(self.session_id, take())
                except BaseException as error:  # the gate ends the connection
                    if not future.done():
                        future.set_exception(error)
                    if isinstance(error, asyncio.CancelledError):
                        raise
                    continue
                self.metrics.sessions_saved += 1
                if not future.done():
                    future.set_result(None)
        finally:
            self._running = False
