"""The broker interface and the in-process memory broker (the default).

A broker owns topic streams: it appends published messages, answers what a
(re)subscriber missed since ``(epoch, offset)``, and tells the server about
every new message of a topic, whichever node published it. The server keeps
subscribers and does the fan-out (one encoding per topic message).

A NATS broker implements the same four methods: ``publish`` appends to a
JetStream stream per topic (the stream sequence is the offset, the stream's
creation time the epoch), ``subscribe`` reads the stream from an offset, and a
core NATS subscription on the topic feeds ``listener``.
"""

from __future__ import annotations

__all__ = ["Broker", "Listener", "MemoryBroker"]

from collections.abc import Callable
from typing import Protocol

from wsproto_tools.engine.history import Entry
from wsproto_tools.engine.hub import Hub, SubscribeAnswer

#: Called with (topic, epoch, entry) for every new message of every topic.
Listener = Callable[[str, int, Entry], None]


class Broker(Protocol):
    """What the server needs from a broker."""

    def set_listener(self, listener: Listener) -> None: ...

    async def publish(self, topic: str, data: bytes, now: float) -> Entry: ...

    async def subscribe(
        self, topic: str, from_offset: int | None, epoch: int | None, now: float
    ) -> SubscribeAnswer: ...

    async def close(self) -> None: ...


class MemoryBroker:
    """Topics in this process's memory (bounded history per topic)."""

    def __init__(
        self,
        *,
        epoch: int,
        history: int = 1000,
        max_age: float | None = None,
        max_topics: int = 100_000,
        history_bytes: int | None = None,
        history_total: int | None = None,
        max_per_owner: int | None = None,
    ) -> None:
        self.hub = Hub(
            epoch=epoch,
            history=history,
            max_age=max_age,
            max_topics=max_topics,
            history_bytes=history_bytes,
            history_total=history_total,
            max_per_owner=max_per_owner,
        )
        self._listener: Listener | None = None

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    def publish_now(self, topic: str, data: bytes, now: float, owner: int = 0) -> Entry:
        """The synchronous form the server uses on its hot path (``owner``: the
        publishing session, charged with the topic if this makes it)."""
        entry = self.hub.publish(topic, data, now, owner=owner)
        if self._listener is not None:
            self._listener(topic, self.hub.topics[topic].epoch, entry)
        return entry

    async def publish(self, topic: str, data: bytes, now: float) -> Entry:
        return self.publish_now(topic, data, now)

    def subscribe_now(
        self,
        topic: str,
        from_offset: int | None,
        epoch: int | None,
        now: float,
        owner: int = 0,
        limit: int | None = None,
    ) -> SubscribeAnswer:
        return self.hub.subscribe(topic, from_offset, epoch, now, owner=owner, limit=limit)

    async def subscribe(
        self, topic: str, from_offset: int | None, epoch: int | None, now: float
    ) -> SubscribeAnswer:
        return self.subscribe_now(topic, from_offset, epoch, now)

    async def close(self) -> None:
        return None
