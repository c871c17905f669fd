"""TCP reassembly for one direction of one connection, sans-I/O.

:class:`Flow` takes segments in capture order and hands out the byte stream in
sequence order: out-of-order segments wait (bounded), retransmissions and
overlaps are trimmed, and a hole that will never be filled becomes a gap. A
hole is known to be permanent as soon as the peer acknowledges bytes past it
(the receiver got them; the capture did not), when the bytes waiting behind
it exceed :data:`MAX_PENDING`, or when the capture ends.
"""

from __future__ import annotations

__all__ = ["MAX_PENDING", "Flow", "FlowStats"]

from dataclasses import dataclass

#: Bytes of out-of-order data held per direction before a hole is given up.
MAX_PENDING = 4 * 1024 * 1024
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


class Flow:
    """One direction's reassembly state.

    :meth:`segment` returns a list of ``int | bytes`` items in stream order: a
    ``bytes`` item is data, an ``int`` item is the size of a gap (bytes that
    were not captured) that precedes the next data.
    """

    __slots__ = ("_pending", "acked", "fin", "next_seq", "pending_bytes", "stats")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self._pending: dict[int, bytes] = {}
        #: bytes of out-of-order data waiting for a hole to be filled
        self.pending_bytes = 0
        self.acked: int | None = None
        self.fin = False
        self.stats = FlowStats()

    def syn(self, seq: int) -> None:
        """A SYN with initial sequence number ``seq`` was seen."""
        if self.next_seq is None or not self.stats.bytes:
            self.next_seq = (seq + 1) % _MOD
            self._pending.clear()
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
            out = [payload[behind:]]
            self.next_seq = (nxt + len(out[0])) % _MOD  # type: ignore[arg-type]
            stats.bytes += len(out[0])  # type: ignore[arg-type]
            if self._pending:
                self._drain(out)
            return out
        # a hole before this segment
        stats.out_of_order += 1
        old = self._pending.get(seq)
        if old is None or len(old) < len(payload):
            self._pending[seq] = payload
            self.pending_bytes += len(payload) - (len(old) if old else 0)
        out = []
        if self.pending_bytes > MAX_PENDING or self._hole_acked():
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

    def flush(self) -> list[int | bytes]:
        """The capture ended: give up every hole and return what was waiting."""
        out: list[int | bytes] = []
        while self._pending:
            self._skip_hole(out)
        return out

    def _hole_acked(self) -> bool:
        nxt = self.next_seq
        if self.acked is None or nxt is None:
            return False
        return 0 < (self.acked - nxt) % _MOD < _HALF

    def _skip_hole(self, out: list[int | bytes]) -> None:
        nxt = self.next_seq
        assert nxt is not None
        first = min(self._pending, key=lambda s: (s - nxt) % _MOD)
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
        pending = self._pending
        while pending:
            nxt = self.next_seq
            assert nxt is not None
            progressed = False
            for seq in list(pending):
                rel = (seq - nxt) % _MOD
                data = pending[seq]
                if rel == 0 or rel >= _HALF:
                    del pending[seq]
                    self.pending_bytes -= len(data)
                    behind = 0 if rel == 0 else _MOD - rel
                    if behind < len(data):
                        piece = data[behind:]
                        out.append(piece)
                        self.next_seq = (nxt + len(piece)) % _MOD
                        self.stats.bytes += len(piece)
                        progressed = True
                        break
            if not progressed:
                return
