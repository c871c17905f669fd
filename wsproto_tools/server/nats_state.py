"""What every node of a NATS-backed cluster can read: sessions and presence.

Two JetStream key-value buckets (docs/scaling.md):

- ``<prefix>_sessions``: a session's snapshot (engine/snapshot.py) under its id,
  kept for the resume lifetime after its last write. Writes are compare-and-set
  on the revision this node last saw, so a node whose session was resumed
  elsewhere learns it (:class:`SessionTaken`) instead of writing over it.
- ``<prefix>_presence``: per topic and node, how many sessions of that node
  subscribe to it, rewritten while it holds and read by every node through a
  watcher; an entry not refreshed within its time to live (a dead node's) no
  longer counts.
"""

from __future__ import annotations

__all__ = ["TRANSIENT", "Presence", "SessionStore", "bucket", "patiently"]

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from wsproto_tools.server.cluster import SessionTaken

log = logging.getLogger("wsproto_tools.server.nats")
T = TypeVar("T")

#: Seconds a presence entry counts after its last refresh (refreshed at a third).
PRESENCE_TTL = 15.0

#: What NATS raises while it cannot answer now (an outage, a leader election).
TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
)


async def patiently(call: Callable[[], Awaitable[T]], closed: Callable[[], bool]) -> T:
    """``await call()`` again through transient failures (until ``closed()``)."""
    delay = 0.05
    while True:
        try:
            return await call()
        except TRANSIENT as exc:
            if closed():
                raise
            log.debug("nats: %s; trying again in %.2f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


async def bucket(js: JetStreamContext, name: str, ttl: float, replicas: int) -> KeyValue:
    """The key-value bucket ``name``, made if missing. One made by a node with other
    settings (another --resume-lifetime) is used as it is, with a warning."""
    try:
        return await js.create_key_value(bucket=name, ttl=ttl, history=1, replicas=replicas)
    except nats.js.errors.BadRequestError as exc:
        log.warning("bucket %s exists with other settings (%s): used as it is", name, exc)
        return await js.key_value(name)


class SessionStore:
    """Session snapshots in the ``<prefix>_sessions`` bucket."""

    def __init__(self, kv: KeyValue, limit: int = 1 << 20) -> None:
        self.kv = kv
        self._nc = kv._js._nc
        #: the largest snapshot the store takes (NATS's max_payload)
        self.limit = limit
        #: session id -> the revision this node last wrote or read
        self.revisions: dict[int, int] = {}
        self.saves = 0

    @classmethod
    async def open(
        cls, js: JetStreamContext, prefix: str, lifetime: float, replicas: int
    ) -> SessionStore:
        kv = await bucket(js, f"{prefix}_sessions", max(1.0, lifetime), replicas)
        return cls(kv, js._nc.max_payload)

    async def save(self, session_id: int, data: bytes) -> None:
        """Write ``data`` if nobody else wrote the session since; :class:`SessionTaken`
        if another node did (it resumed the session there)."""
        last = self.revisions.get(session_id, 0)
        kv = self.kv
        try:
            revision = await patiently(
                lambda: kv.update(str(session_id), data, last=last), self._closed
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            # ours, if an earlier try was stored and only its answer was lost
            current = await self.load(session_id)
            if current is None or current[0] != data:
                self.revisions.pop(session_id, None)
                raise SessionTaken(f"session {session_id} was resumed on another node") from None
            revision = current[1]
        self.revisions[session_id] = revision
        self.saves += 1

    async def load(self, session_id: int) -> tuple[bytes, int] | None:
        """The session's snapshot and its revision, or None (never saved, or expired)."""
        kv = self.kv
        try:
            entry = await patiently(lambda: kv.get(str(session_id)), self._closed)
        except nats.js.errors.KeyNotFoundError:  # also a deleted key
            return None
        if entry.value is None or entry.revision is None:
            return None
        return entry.value, entry.revision

    def _closed(self) -> bool:
        return bool(self._nc.is_closed)

    def adopt(self, session_id: int, revision: int) -> None:
        """This node now holds the session as of ``revision``."""
        self.revisions[session_id] = revision

    def forget(self, session_id: int) -> None:
        self.revisions.pop(session_id, None)

    async def delete(self, session_id: int) -> None:
        """The session ended for good: nobody resumes it."""
        if self.revisions.pop(session_id, None) is None:
            return
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await self.kv.delete(str(session_id))


class Presence:
    """Subscriber counts per topic over all nodes."""

    def __init__(self, kv: KeyValue, node: str) -> None:
        self.kv = kv
        self.node = node
        #: topic -> node -> (count, written at, wall clock)
        self.seen: dict[str, dict[str, tuple[int, float]]] = {}
        self.local: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self._wake = asyncio.Event()
        self._closing = False

    @classmethod
    async def open(cls, js: JetStreamContext, prefix: str, node: str, replicas: int) -> Presence:
        kv = await bucket(js, f"{prefix}_presence", PRESENCE_TTL * 4, replicas)
        presence = cls(kv, node)
        presence._watcher = await kv.watchall()
        presence._task = asyncio.create_task(presence._run())
        return presence

    @staticmethod
    def _key(topic: str, node: str) -> str:
        return f"{topic.encode('utf-8', 'surrogatepass').hex()}.{node}"

    def changed(self, topic: str, count: int) -> None:
        """This node's count of subscribers to ``topic`` is now ``count``."""
        if count:
            self.local[topic] = count
        else:
            self.local.pop(topic, None)
        self._note(topic, self.node, count, time.time())
        self._dirty.add(topic)
        self._wake.set()

    def _note(self, topic: str, node: str, count: int, at: float) -> None:
        nodes = self.seen.setdefault(topic, {})
        if count:
            nodes[node] = (count, at)
        else:
            nodes.pop(node, None)
            if not nodes:
                del self.seen[topic]

    def count(self, topic: str) -> int:
        """Sessions subscribed to ``topic`` on every node (as far as heard)."""
        fresh = time.time() - PRESENCE_TTL
        nodes = self.seen.get(topic) or {}
        return sum(n for node, (n, at) in nodes.items() if node == self.node or at >= fresh)

    def topics(self) -> dict[str, int]:
        return {topic: self.count(topic) for topic in list(self.seen)}

    async def _run(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            refresh = 0.0
            while not self._closing:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PRESENCE_TTL / 3):
                        await self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                now = time.time()
                due = set(self._dirty)
                if now >= refresh:
                    due |= set(self.local)
                    refresh = now + PRESENCE_TTL / 3
                self._dirty.clear()
                for topic in due:
                    await self._write(topic, self.local.get(topic, 0), now)
        finally:
            reader.cancel()

    async def _write(self, topic: str, count: int, now: float) -> None:
        key = self._key(topic, self.node)
        try:
            if count:
                value = json.dumps({"topic": topic, "node": self.node, "count": count, "at": now})
                await self.kv.put(key, value.encode())
            else:
                await self.kv.delete(key)
        except (TimeoutError, nats.errors.Error) as exc:
            log.debug("presence of %r not written: %s", topic, exc)
            self._dirty.add(topic)  # again at the next round

    async def _read(self) -> None:
        watcher = self._watcher
        while True:
            try:
                entry = await watcher.updates(timeout=PRESENCE_TTL)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            if entry is None or not getattr(entry, "key", None):  # the end of the initial values
                continue
            topic_hex, _, node = entry.key.partition(".")
            if node == self.node:
                continue
            try:
                topic = bytes.fromhex(topic_hex).decode("utf-8", "surrogatepass")
            except ValueError:
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._note(topic, node, 0, 0.0)
                continue
            try:
                record = json.loads(entry.value)
                self._note(topic, node, int(record["count"]), float(record["at"]))
            except (ValueError, KeyError, TypeError):
                continue

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        kv = self.kv
        deletes = [kv.delete(self._key(topic, self.node)) for topic in list(self.local)]
        if deletes:  # this node's counts go now, not when their time to live ends
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*deletes, return_exceptions=True)
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
