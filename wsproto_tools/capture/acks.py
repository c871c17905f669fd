"""Ack latency and wsp retransmissions of one connection, seen from a capture.

:class:`AckTracker` is fed every decoded wsp message of a connection (a Batch's
items one by one). A sequenced message (Publish, TextData, BinaryData,
DeltaUpdate, Error with a sequence number) waits until the peer's Acknowledge
covers it: the time between is an ack latency. A sequence number that the same
session (on this connection or an earlier one) already sent is a
retransmission. Everything is bounded (:data:`MAX_ENTRIES`).

The C form (``capture/_acks.c``, see :mod:`..native`) does the same per message.
"""

from __future__ import annotations

__all__ = ["MAX_ENTRIES", "AckTracker", "new_tracker"]

from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

from wsproto_tools import native
from wsproto_tools.codec import Acknowledge, Batch
from wsproto_tools.engine.vocabulary import SEQUENCED

#: Bound of each table: pending messages per sender, latencies kept, sessions remembered.
MAX_ENTRIES = 100_000
_SEQUENCED = frozenset(SEQUENCED)


class AckTracker:
    """The pending messages of both senders of one connection.

    ``highest_sent`` maps ``(session id, sent by the client)`` to the highest
    sequence number seen; it is shared by all the connections of a capture.
    ``latencies`` receives each ack latency (seconds).
    """

    __slots__ = ("_order", "_sent", "highest_sent", "latencies", "max_entries", "retransmissions")

    def __init__(
        self,
        highest_sent: dict[tuple[int, bool], int],
        latencies: list[float],
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.max_entries = max_entries
        self.highest_sent = highest_sent
        self.latencies = latencies
        self.retransmissions = 0
        #: per sender (client, server): sequence -> capture time, and the order sent
        self._sent: tuple[dict[int, float], dict[int, float]] = ({}, {})
        self._order: tuple[deque[int], deque[int]] = (deque(), deque())

    @property
    def unacked(self) -> int:
        """Sequenced messages no Acknowledge has covered (yet)."""
        return len(self._sent[0]) + len(self._sent[1])

    def feed(self, message: Any, client: bool, ts: float) -> None:
        """One decoded message (a Batch: each item) sent by the client or the server."""
        if type(message.payload) is Batch:
            for item in message.payload.messages:
                self._one(item, client, ts)
        else:
            self._one(message, client, ts)

    def _one(self, message: Any, client: bool, ts: float) -> None:
        ptype = type(message.payload)
        if ptype in _SEQUENCED:
            sequence = message.sequence
            if not sequence:
                return
            key = (message.session_id, client)
            highest_sent = self.highest_sent
            if sequence <= highest_sent.get(key, 0):
                self.retransmissions += 1
            else:
                if len(highest_sent) >= self.max_entries:
                    highest_sent.clear()
                highest_sent[key] = sequence
            sent = self._sent[0 if client else 1]
            if len(sent) < self.max_entries and sequence not in sent:
                sent[sequence] = ts
                self._order[0 if client else 1].append(sequence)
        elif ptype is Acknowledge:
            # it acknowledges the peer's messages, in the order they were sent
            # (increasing, but for one sent again after its Acknowledge)
            order = self._order[1 if client else 0]
            if not order:
                return
            upto = message.payload.sequence
            sent = self._sent[1 if client else 0]
            latencies = self.latencies
            while order and order[0] <= upto:
                at = sent.pop(order.popleft())
                if len(latencies) < self.max_entries:
                    latencies.append(ts - at)


def _compiled_tracker(module: ModuleType) -> Callable[..., Any]:
    """``new_tracker`` giving the C tracker (``capture/_acks.c``)."""

    def new(highest_sent: dict[tuple[int, bool], int], latencies: list[float],
            max_entries: int = MAX_ENTRIES) -> Any:
        return module.AckTracker(highest_sent, latencies, _SEQUENCED, Acknowledge, Batch,
                                 max_entries)

    return new


#: ``new_tracker(highest_sent, latencies, max_entries=MAX_ENTRIES)``: an
#: :class:`AckTracker`, the C one when it was built (see :mod:`..native`)
_python_tracker: Callable[..., Any] = AckTracker
new_tracker = native.pick("capture._acks", _compiled_tracker, _python_tracker)
