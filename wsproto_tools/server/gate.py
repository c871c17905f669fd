"""A connection's output held back until what it acknowledges is stored.

With a networked broker the server goes on reading while publishes travel to
the broker; the Acknowledge that covers a publish (and every later message of
the session: acks are cumulative, sequenced answers must be in the stored
snapshot before the client can see them) leaves only when the barriers before
it are done. Topic deliveries do not go through here: they are not sequenced.
"""

from __future__ import annotations

__all__ = ["Gate"]

import asyncio
from collections import deque
from collections.abc import Callable, Iterable


class Gate:
    """Chunks in order, each released when its barriers (and all before) are done."""

    __slots__ = ("_entries", "_fail", "_write", "failed")

    def __init__(
        self, write: Callable[[list[bytes]], None], fail: Callable[[BaseException], None]
    ) -> None:
        self._write = write
        self._fail = fail
        self._entries: deque[tuple[list[asyncio.Future[object]], list[bytes]]] = deque()
        self.failed = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def holding(self) -> bool:
        return bool(self._entries)

    def pass_(self, barriers: Iterable[asyncio.Future[object]], chunks: list[bytes]) -> None:
        """Write ``chunks`` once ``barriers`` and everything held before are done."""
        waiting = [b for b in barriers if not b.done() or b.cancelled() or b.exception()]
        if not waiting and not self._entries:
            if chunks:
                self._write(chunks)
            return
        if self.failed:
            return
        self._entries.append((waiting, chunks))
        for barrier in waiting:
            barrier.add_done_callback(self._done)
        if not waiting:
            self._drain()

    def head(self) -> asyncio.Future[object] | None:
        """One barrier of the oldest held entry (to wait on when too much is held)."""
        for barriers, _ in self._entries:
            for barrier in barriers:
                if not barrier.done():
                    return barrier
        return None

    def _done(self, _: asyncio.Future[object]) -> None:
        self._drain()

    def _drain(self) -> None:
        entries = self._entries
        while entries and not self.failed:
            barriers, chunks = entries[0]
            if not all(b.done() for b in barriers):
                return
            for barrier in barriers:
                error = barrier.exception() if not barrier.cancelled() else asyncio.CancelledError()
                if error is not None:
                    self.failed = True
                    entries.clear()
                    self._fail(error)
                    return
            entries.popleft()
            if chunks:
                self._write(chunks)

    def clear(self) -> None:
        """The connection is gone: nothing more is written."""
        self.failed = True
        self._entries.clear()
