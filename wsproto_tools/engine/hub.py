"""The pub/sub core of a server, sans-I/O: topics, history, replay decisions.

The memory broker is this object driven directly; a networked broker (NATS
JetStream) implements the same questions — *append*, *what did a subscriber
miss since (epoch, offset)* — against its own streams.
"""

from __future__ import annotations

__all__ = ["Hub", "SubscribeAnswer"]

from collections import deque
from dataclasses import dataclass

from wsproto_tools.engine.history import ContinuityLost, Entry, TopicLog
from wsproto_tools.exceptions import CloseCode, RemoteProtocolError

#: Longest topic name, in characters.
MAX_TOPIC_LENGTH = 256


@dataclass(frozen=True, slots=True)
class SubscribeAnswer:
    """What a Subscribe gets: the stream's position, what to replay, or a gap."""

    epoch: int
    next_offset: int
    replay: list[Entry]
    lost: ContinuityLost | None


class Hub:
    """Topics with bounded history. ``epoch`` is the epoch given to new topics.

    Bounds: ``history`` messages, ``history_bytes`` bytes and ``max_age`` seconds
    per topic; ``history_total`` bytes over all topics (the oldest messages of
    any topic go first); ``max_topics`` topics, at most ``max_per_owner`` of them
    made by one session. A topic with no history is freed by :meth:`release`
    (the server calls it when the last subscriber leaves); made again later, it
    gets a new epoch if offsets had been given out, so old offsets are never
    mistaken for new ones.
    """

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
        self.epoch = epoch
        self.history = history
        self.max_age = max_age
        self.max_topics = max_topics
        self.history_bytes = history_bytes
        self.history_total = history_total
        self.max_per_owner = max_per_owner
        self.topics: dict[str, TopicLog] = {}
        self.owned: dict[int, int] = {}  # session id -> topics it made that still exist
        self.total = 0  # history bytes over all topics
        #: (log, offset) of every retained message, oldest first (for history_total);
        #: offsets, not entries, so that a message trimmed by its topic is freed at once
        self._order: deque[tuple[TopicLog, int]] = deque()
        self._compact_at = 1024
        self._freed = 0  # topics freed after giving out offsets (new epochs)

    def topic(self, name: str, owner: int = 0) -> TopicLog:
        """The topic's log, made on first use; the number of topics is bounded."""
        log = self.topics.get(name)
        if log is None:
            if not name or len(name) > MAX_TOPIC_LENGTH:
                raise RemoteProtocolError(
                    f"topic names have 1 to {MAX_TOPIC_LENGTH} characters, not {len(name)}",
                    close_code=CloseCode.POLICY_VIOLATION,
                )
            if len(self.topics) >= self.max_topics:
                raise RemoteProtocolError(
                    f"too many topics (limit {self.max_topics})",
                    close_code=CloseCode.POLICY_VIOLATION,
                )
            limit = self.max_per_owner
            if owner and limit is not None and self.owned.get(owner, 0) >= limit:
                raise RemoteProtocolError(
                    f"too many topics made by this session (limit {limit})",
                    close_code=CloseCode.POLICY_VIOLATION,
                )
            epoch = self.epoch
            if self._freed:
                epoch = (self.epoch + self._freed) & 0xFFFFFFFF or 1
            log = self.topics[name] = TopicLog(
                name,
                epoch,
                max_count=self.history,
                max_age=self.max_age,
                max_bytes=self.history_bytes,
                owner=owner,
            )
            if owner:
                self.owned[owner] = self.owned.get(owner, 0) + 1
        return log

    def release(self, name: str, now: float) -> bool:
        """Free ``name`` if it holds no history (no subscriber is the caller's check)."""
        log = self.topics.get(name)
        if log is None:
            return False
        before = log.bytes
        log.trim(now)
        self.total -= before - log.bytes
        if log.entries:
            return False
        del self.topics[name]
        if log.last_offset:
            self._freed += 1
        owner = log.owner
        if owner:
            left = self.owned.get(owner, 0) - 1
            if left > 0:
                self.owned[owner] = left
            else:
                self.owned.pop(owner, None)
        return True

    def publish(
        self, topic: str, data: bytes, now: float, *, binary: bool = True, owner: int = 0
    ) -> Entry:
        log = self.topics.get(topic) or self.topic(topic, owner)
        before = log.bytes
        entry = log.append(data, binary, now)
        total = self.total = self.total + log.bytes - before
        cap = self.history_total
        if cap is not None:
            order = self._order
            if log.bytes:  # retained (a message trimmed at once leaves nothing)
                order.append((log, entry.offset))
            # forget the pairs of messages trimmed by their own topic (mostly in front)
            while order:
                first_log, first_offset = order[0]
                kept = first_log.entries
                if kept and kept[0].offset <= first_offset:
                    break
                order.popleft()
            if total > cap:
                self._shrink(cap)
            if len(order) >= self._compact_at:
                self._compact()
        return entry

    def _shrink(self, cap: int) -> None:
        """Drop the oldest messages of any topic until the total fits ``cap``."""
        order = self._order
        topics = self.topics
        while self.total > cap and order:
            log, offset = order.popleft()
            if topics.get(log.topic) is not log:
                continue
            entries = log.entries
            while entries and entries[0].offset <= offset:
                self.total -= len(entries[0].data)
                log.drop_first()

    def _compact(self) -> None:
        """Forget the pairs of messages trimmed by their own topic's bounds
        (amortized: the next compaction waits until the deque doubles)."""
        topics = self.topics
        self._order = deque(
            (log, offset)
            for log, offset in self._order
            if log.entries and offset >= log.entries[0].offset and topics.get(log.topic) is log
        )
        self._compact_at = max(1024, 2 * len(self._order))

    def subscribe(
        self,
        topic: str,
        from_offset: int | None,
        epoch: int | None,
        now: float,
        *,
        owner: int = 0,
        limit: int | None = None,
    ) -> SubscribeAnswer:
        """Where a (re)subscriber starts: replay from ``from_offset`` (at most ``limit``
        messages) or report the gap."""
        log = self.topic(topic, owner)
        before = log.bytes
        try:
            if from_offset is None:
                return SubscribeAnswer(log.epoch, log.last_offset + 1, [], None)
            got = log.since(
                epoch if epoch is not None else log.epoch, max(0, from_offset - 1), now, limit
            )
            if isinstance(got, ContinuityLost):
                replay = log.since(log.epoch, got.available - 1, now, limit)
                assert isinstance(replay, list)
                return SubscribeAnswer(log.epoch, log.last_offset + 1, replay, got)
            return SubscribeAnswer(log.epoch, log.last_offset + 1, got, None)
        finally:
            self.total -= before - log.bytes
