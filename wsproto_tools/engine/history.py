"""Per-topic ordered streams: offsets, an epoch, and bounded history.

A topic's stream numbers its messages with offsets 1, 2, 3, ... within an
*epoch* (a number that changes when the stream is recreated, e.g. after a
broker restart, so offsets of an older epoch are never confused with new ones).
History is bounded by count and by age. :meth:`TopicLog.since` answers what a
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

    def __init__(
        self, topic: str, epoch: int, *, max_count: int = 1000, max_age: float | None = None
    ) -> None:
        if max_count < 0:
            raise ConfigError("history count must be >= 0")
        self.topic = topic
        self.epoch = epoch
        self.max_count = max_count
        self.max_age = max_age
        self.last_offset = 0
        self.entries: deque[Entry] = deque()

    def append(self, data: bytes, binary: bool, now: float) -> Entry:
        """Add a message; returns its entry (with its new offset)."""
        self.last_offset += 1
        entry = Entry(self.last_offset, now, data, binary)
        self.entries.append(entry)
        self.trim(now)
        if self.max_count == 0:
            self.entries.clear()
        return entry

    def trim(self, now: float) -> None:
        """Drop what exceeds the count or the age bound."""
        entries = self.entries
        while len(entries) > self.max_count:
            entries.popleft()
        if self.max_age is not None:
            horizon = now - self.max_age
            while entries and entries[0].timestamp < horizon:
                entries.popleft()

    @property
    def first_available(self) -> int:
        """The lowest offset the stream can still deliver."""
        return self.entries[0].offset if self.entries else self.last_offset + 1

    def since(self, epoch: int, after: int, now: float) -> list[Entry] | ContinuityLost:
        """Entries with offset > ``after`` in order, or why they cannot be given."""
        self.trim(now)
        if epoch != self.epoch:
            if after == 0:
                return list(self.entries)  # a fresh subscriber asking for history
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
        return [entries[i] for i in range(start, len(entries))]
