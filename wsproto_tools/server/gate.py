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
from functools import partial


class _Entry:
    """Chunks and the count of their barriers not done yet."""

    __slots__ = ("chunks", "left")

    def __init__(self, chunks: list[bytes], left: int) -> None:
        self.chunks = chunks
        self.left = left


class Gate:
    """Chunks in order, each released when its barriers (and all before) are done."""

    __slots__ = ("_below", "_entries", "_fail", "_write", "failed")

    def __init__(
        self, write: Callable[[list[bytes]], None], fail: Callable[[BaseException], None]
    ) -> None:
        self._write = write
        self._fail = fail
        self._entries: deque[_Entry] = deque()
        self._below: tuple[int, asyncio.Future[None]] | None = None
        self.failed = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def holding(self) -> bool:
        return bool(self._entries)

    def pass_(self, barriers: Iterable[asyncio.Future[object]], chunks: list[bytes]) -> None:
        """Write ``chunks`` once ``barriers`` and everything held before are done."""
        if self.failed:
            return
        waiting = [b for b in barriers if not b.done() or b.cancelled() or b.exception()]
        if not waiting and not self._entries:
            if chunks:
                self._write(chunks)
            return
        entry = _Entry(chunks, len(waiting))
        self._entries.append(entry)
        for barrier in waiting:
            barrier.add_done_callback(partial(self._done, entry=entry))
        if not waiting:
            self._drain()

    def below(self, count: int) -> asyncio.Future[None] | None:
        """A future done once fewer than ``count`` entries are held (None: already)."""
        if len(self._entries) < count or self.failed:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._below = (count, future)
        return future

    def _wake(self) -> None:
        below = self._below
        if below is not None and (len(self._entries) < below[0] or self.failed):
            self._below = None
            if not below[1].done():
                below[1].set_result(None)

    def _done(self, barrier: asyncio.Future[object], *, entry: _Entry) -> None:
        if self.failed:
            return
        error = asyncio.CancelledError() if barrier.cancelled() else barrier.exception()
        if error is not None:
            self.failed = True
            self._entries.clear()
            self._wake()
            self._fail(error)
            return
        entry.left -= 1
        if entry.left == 0 and self._entries and self._entries[0] is entry:
            self._drain()

    def _drain(self) -> None:
        entries = self._entries
        while entries and entries[0].left == 0 and not self.failed:
            chunks = entries.popleft().chunks
            if chunks:
                self._write(chunks)
        if self._below is not None:
            self._wake()

    def clear(self) -> None:
        """The connection is gone: nothing more is written."""
        self.failed = True
        self._entries.clear()
        self._wake()
