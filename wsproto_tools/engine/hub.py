"""The pub/sub core of a server, sans-I/O: topics, history, replay decisions.

The memory broker is this object driven directly; a networked broker (NATS
JetStream) implements the same questions — *append*, *what did a subscriber
miss since (epoch, offset)* — against its own streams.
"""

from __future__ import annotations

__all__ = ["Hub", "SubscribeAnswer"]

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
    """Topics with bounded history. ``epoch`` is the epoch given to new topics."""

    def __init__(
        self,
        *,
        epoch: int,
        history: int = 1000,
        max_age: float | None = None,
        max_topics: int = 100_000,
    ) -> None:
        self.epoch = epoch
        self.history = history
        self.max_age = max_age
        self.max_topics = max_topics
        self.topics: dict[str, TopicLog] = {}

    def topic(self, name: str) -> TopicLog:
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
            log = self.topics[name] = TopicLog(
                name, self.epoch, max_count=self.history, max_age=self.max_age
            )
        return log

    def publish(self, topic: str, data: bytes, now: float, *, binary: bool = True) -> Entry:
        return self.topic(topic).append(data, binary, now)

    def subscribe(
        self, topic: str, from_offset: int | None, epoch: int | None, now: float
    ) -> SubscribeAnswer:
        """Where a (re)subscriber starts: replay from ``from_offset`` or report the gap."""
        log = self.topic(topic)
        if from_offset is None:
            return SubscribeAnswer(log.epoch, log.last_offset + 1, [], None)
        got = log.since(epoch if epoch is not None else log.epoch, max(0, from_offset - 1), now)
        if isinstance(got, ContinuityLost):
            replay = log.since(log.epoch, got.available - 1, now)
            assert isinstance(replay, list)
            return SubscribeAnswer(log.epoch, log.last_offset + 1, replay, got)
        return SubscribeAnswer(log.epoch, log.last_offset + 1, got, None)
