"""TCP reassembly for one direction of one connection, sans-I/O.

:class:`Flow` takes segments in capture order and hands out the byte stream in
sequence order: out-of-order segments wait (bounded), retransmissions and
overlaps are trimmed, and a hole that will never be filled becomes a gap. A
hole is known to be permanent as soon as the peer acknowledges bytes past it
(the receiver got them; the capture did not), when the bytes waiting behind
it exceed :data:`MAX_PENDING`, or when the capture ends. (The decoder also
bounds the out-of-order data of all connections together, and gives up the
oldest holes first when that is exceeded: :meth:`Flow.flush`.)

Waiting segments are charged :data:`SEGMENT_COST` bytes each on top of their
data (the bookkeeping of a segment), so that a hole followed by many tiny
segments is bounded too; they are released in sequence order through a heap
(each segment once, however the holes are filled).
"""

from __future__ import annotations

__all__ = ["MAX_PENDING", "SEGMENT_COST", "Flow", "FlowStats"]

import heapq
from dataclasses import dataclass

#: Bytes of out-of-order data held per direction before a hole is given up.
MAX_PENDING = 4 * 1024 * 1024
#: What each waiting segment is charged on top of its data (its bookkeeping).
SEGMENT_COST = 128
_MOD = 1 << 32
_HALF = 1 << 31


@dataclass
class FlowStats:
    """Counters for one direction."""

    segments: int = 0
    bytes: int = 0
    retransmitted: int = 0
    out_of_order: int = 0
    gaps: int = 0
    lost_bytes: int = 0
    #: holes given up because the data waiting behind them reached a limit
    given_up: int = 0


class Flow:
    """One direction's reassembly state.

    :meth:`segment` returns a list of ``int | bytes`` items in stream order: a
    ``bytes`` item is data, an ``int`` item is the size of a gap (bytes that
    were not captured) that precedes the next data.
    """

    __slots__ = ("_heap", "_pending", "acked", "fin", "forced", "next_seq", "pending_bytes",
                 "stats")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self._pending: dict[int, bytes] = {}
        #: (offset from the first waiting segment's base, seq) of every waiting segment
        self._heap: list[tuple[int, int]] = []
        #: bytes of out-of-order data waiting for a hole to be filled (with
        #: SEGMENT_COST for each segment)
        self.pending_bytes = 0
        #: the next gap was made by a limit, not by the capture (read by the decoder)
        self.forced = False
        self.acked: int | None = None
        self.fin = False
        self.stats = FlowStats()

    def syn(self, seq: int) -> None:
        """A SYN with initial sequence number ``seq`` was seen."""
        if self.next_seq is None or not self.stats.bytes:
            self.next_seq = (seq + 1) % _MOD
            self._pending.clear()
            self._heap.clear()
            self.pending_bytes = 0

    def segment(self, seq: int, payload: bytes) -> list[int | bytes]:
        """Take one segment's payload starting at sequence number ``seq``."""
        stats = self.stats
        stats.segments += 1
        nxt = self.next_seq
        if nxt is None:
            nxt = self.next_seq = seq
        rel = (seq - nxt) % _MOD
        if rel == 0:
            out: list[int | bytes] = [payload]
            self.next_seq = (nxt + len(payload)) % _MOD
            stats.bytes += len(payload)
            if self._pending:
                self._drain(out)
            return out
        if rel >= _HALF:  # starts before next_seq: retransmission or overlap
            behind = _MOD - rel
            if behind >= len(payload):
                stats.retransmitted += 1
                return []
            stats.retransmitted += 1
            rest = payload[behind:]
            out = [rest]
            self.next_seq = (nxt + len(rest)) % _MOD
            stats.bytes += len(rest)
            if self._pending:
                self._drain(out)
            return out
        # a hole before this segment
        stats.out_of_order += 1
        pending = self._pending
        old = pending.get(seq)
        if old is None:
            if not pending:
                self._heap.clear()
            pending[seq] = payload
            self.pending_bytes += len(payload) + SEGMENT_COST
            heap = self._heap
            # offsets from the first waiting segment's base keep sequence order
            # across wrap-around (everything waiting is within 2 GiB of it)
            base = heap[0][1] - heap[0][0] if heap else nxt
            heapq.heappush(heap, ((seq - base) % _MOD, seq))
        elif len(old) < len(payload):
            pending[seq] = payload
            self.pending_bytes += len(payload) - len(old)
        out = []
        if self.pending_bytes > MAX_PENDING:
            self.forced = True
            self.stats.given_up += 1
            self._skip_hole(out)
        elif self._hole_acked():
            self._skip_hole(out)
        return out

    def in_order(self, seq: int, payload: bytes) -> bool:
        """Take a segment that starts exactly at the next expected byte while
        nothing waits out of order (the common case); False, untouched, else.

        When True the segment is the stream's next data, as :meth:`segment`
        would have returned it (``[payload]``).
        """
        if seq != self.next_seq or self._pending:
            return False
        stats = self.stats
        stats.segments += 1
        stats.bytes += len(payload)
        self.next_seq = (seq + len(payload)) % _MOD
        return True

    def ack_seen(self, ack: int) -> list[int | bytes]:
        """The peer acknowledged up to ``ack``; a hole it covers is permanent."""
        if self.acked is None or (ack - self.acked) % _MOD < _HALF:
            self.acked = ack
        out: list[int | bytes] = []
        if self._pending and self._hole_acked():
            self._skip_hole(out)
        return out

    def flush(self, *, forced: bool = False) -> list[int | bytes]:
        """The capture ended (or, ``forced``, a limit was reached): give up every
        hole and return what was waiting."""
        out: list[int | bytes] = []
        if forced and self._pending:
            self.forced = True
            self.stats.given_up += 1
        while self._pending:
            self._skip_hole(out)
        return out

    def _hole_acked(self) -> bool:
        nxt = self.next_seq
        if self.acked is None or nxt is None:
            return False
        return 0 < (self.acked - nxt) % _MOD < _HALF

    def _first(self) -> int:
        """The sequence number of the earliest waiting segment (pending not empty)."""
        heap = self._heap
        pending = self._pending
        while heap[0][1] not in pending:  # already released
            heapq.heappop(heap)
        return heap[0][1]

    def _skip_hole(self, out: list[int | bytes]) -> None:
        nxt = self.next_seq
        assert nxt is not None
        first = self._first()
        missing = (first - nxt) % _MOD
        if missing >= _HALF:
            missing = 0
        if missing:
            out.append(missing)
            self.stats.gaps += 1
            self.stats.lost_bytes += missing
        self.next_seq = first
        self._drain(out)

    def _drain(self, out: list[int | bytes]) -> None:
        """Release the waiting segments that start at or before the next byte."""
        pending = self._pending
        heap = self._heap
        pop = heapq.heappop
        nxt = self.next_seq
        assert nxt is not None
        while heap:
            seq = heap[0][1]
            data = pending.get(seq)
            if data is None:  # released already (a duplicate entry)
                pop(heap)
                continue
            rel = (seq - nxt) % _MOD
            if rel and rel < _HALF:
                break  # a hole before it
            pop(heap)
            del pending[seq]
            self.pending_bytes -= len(data) + SEGMENT_COST
            behind = 0 if rel == 0 else _MOD - rel
            if behind < len(data):
                piece = data[behind:] if behind else data
                out.append(piece)
                nxt = (nxt + len(piece)) % _MOD
                self.stats.bytes += len(piece)
        self.next_seq = nxt
        if not pending:
            heap.clear()
