"""Per-topic ordered streams: offsets, an epoch, and bounded history.

A topic's stream numbers its messages with offsets 1, 2, 3, ... within an
*epoch* (a number that changes when the stream is recreated, e.g. after a
broker restart, so offsets of an older epoch are never confused with new ones).
History is bounded by count, by bytes and by age. :meth:`TopicLog.since` answers what a
resuming subscriber missed, or :class:`ContinuityLost` when the retained
history no longer covers the gap: nothing is dropped silently.
"""

from __future__ import annotations

__all__ = ["ContinuityLost", "Entry", "TopicLog"]

from collections import deque
from dataclasses import dataclass

from wsproto_tools.exceptions import ConfigError


class Entry:
    """One message of a topic. ``wire`` caches its encoding per wire version
    (made on first use: a batched fan-out does not need it)."""

    __slots__ = ("binary", "data", "offset", "timestamp", "wire")

    def __init__(self, offset: int, timestamp: float, data: bytes, binary: bool) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.data = data
        self.binary = binary
        self.wire: dict[int, bytes] | None = None

    def __repr__(self) -> str:
        return f"Entry(offset={self.offset}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class ContinuityLost:
    """The gap after ``requested`` cannot be replayed; next available is ``available``."""

    topic: str
    epoch: int
    requested: int  # the last offset the subscriber had
    available: int  # the first offset the stream can still deliver
    reason: str


class TopicLog:
    """One topic's bounded, ordered history."""

    __slots__ = (
        "bytes",
        "entries",
        "epoch",
        "last_offset",
        "max_age",
        "max_bytes",
        "max_count",
        "owner",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        epoch: int,
        *,
        max_count: int = 1000,
        max_age: float | None = None,
        max_bytes: int | None = None,
        owner: int = 0,
    ) -> None:
        if max_count < 0:
            raise ConfigError("history count must be >= 0")
        if max_bytes is not None and max_bytes < 0:
            raise ConfigError("history bytes must be >= 0")
        self.topic = topic
        self.epoch = epoch
        self.max_count = max_count
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.owner = owner  # the session that made the topic (per-session topic limits)
        self.last_offset = 0
        self.bytes = 0  # sum of the retained messages' lengths
        self.entries: deque[Entry] = deque()

    def append(self, data: bytes, binary: bool, now: float) -> Entry:
        """Add a message; returns its entry (with its new offset)."""
        self.last_offset += 1
        entry = Entry(self.last_offset, now, data, binary)
        entries = self.entries
        entries.append(entry)
        size = self.bytes = self.bytes + len(data)
        max_bytes = self.max_bytes
        if (
            len(entries) > self.max_count
            or (max_bytes is not None and size > max_bytes)
            or self.max_age is not None
        ):
            self.trim(now)
        return entry

    def trim(self, now: float) -> None:
        """Drop what exceeds the count, the byte or the age bound (oldest first)."""
        entries = self.entries
        while len(entries) > self.max_count:
            self.bytes -= len(entries.popleft().data)
        max_bytes = self.max_bytes
        if max_bytes is not None:
            while self.bytes > max_bytes and entries:
                self.bytes -= len(entries.popleft().data)
        if self.max_age is not None:
            horizon = now - self.max_age
            while entries and entries[0].timestamp < horizon:
                self.bytes -= len(entries.popleft().data)

    def drop_first(self) -> None:
        """Drop the oldest retained message (a global history bound)."""
        self.bytes -= len(self.entries.popleft().data)

    @property
    def first_available(self) -> int:
        """The lowest offset the stream can still deliver."""
        return self.entries[0].offset if self.entries else self.last_offset + 1

    def since(
        self, epoch: int, after: int, now: float, limit: int | None = None
    ) -> list[Entry] | ContinuityLost:
        """Entries with offset > ``after`` in order (at most ``limit``), or why they
        cannot be given."""
        self.trim(now)
        if epoch != self.epoch:
            if after == 0:
                # a fresh subscriber asking for history
                return list(self.entries)[:limit] if limit is not None else list(self.entries)
            return ContinuityLost(
                self.topic,
                self.epoch,
                after,
                self.first_available,
                f"epoch changed from {epoch} to {self.epoch}",
            )
        if after > self.last_offset:
            return ContinuityLost(
                self.topic,
                self.epoch,
                after,
                self.first_available,
                f"offset {after} is ahead of the stream ({self.last_offset})",
            )
        if after >= self.last_offset:
            return []
        if after + 1 < self.first_available:
            return ContinuityLost(
                self.topic,
                self.epoch,
                after,
                self.first_available,
                f"history starts at offset {self.first_available}, "
                f"{self.first_available - after - 1} messages are gone",
            )
        start = after + 1 - self.entries[0].offset
        entries = self.entries
        end = len(entries) if limit is None else min(len(entries), start + limit)
        return [entries[i] for i in range(start, end)]
