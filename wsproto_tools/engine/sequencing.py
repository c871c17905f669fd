"""Sequencing and retransmission: the numbered, acknowledged stream of a session.

Sequenced messages (docs/protocol.md S.4: Publish, TextData, BinaryData,
DeltaUpdate, Error) are numbered 1, 2, 3... per direction. The receiver
acknowledges cumulatively and drops duplicates; the sender keeps what is
unacknowledged, within ``min(adaptive window, peer's window)``, retransmits it
(go-back-N) after an RFC 6298 RTO and after a resume, and keeps what does not fit
the window in a backlog. The rules come from :mod:`.rules` (27-30).
"""

from __future__ import annotations

__all__ = ["Sequencing", "held_size"]

from collections import deque
from typing import TYPE_CHECKING

from wsproto_tools.codec import constructor
from wsproto_tools.codec.schema import (
    Acknowledge,
    BinaryData,
    DeltaUpdate,
    Error,
    Flags,
    Message,
    Payload,
    TextData,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.rules import check_ack, check_sequence
from wsproto_tools.engine.states import Event, Origin, State
from wsproto_tools.engine.timing import AdaptiveWindow, RttEstimator

#: Sequenced payloads from this size on are COMPRESSED when "compress" was negotiated.
COMPRESS_MIN = 128


#: the positional constructor (the dataclass __init__ costs twice as much)
_MESSAGE = constructor(Message)


def held_size(payload: Payload) -> int:
    """What a kept sequenced payload is charged: its body's length plus 64 bytes."""
    body = getattr(payload, "data", None)
    if body is None:
        body = getattr(payload, "text", None) or getattr(payload, "message", None) or b""
    return len(body) + 64


class Sequencing:
    """The sequenced stream of a :class:`~.session.Session` (a mixin: the slots are
    the session's)."""

    if not TYPE_CHECKING:  # mypy: the slots are the concrete session's
        __slots__ = ()
    # declared by Session
    state: State
    is_client: bool
    send_seq: int
    recv_seq: int
    ack_pending: int
    unacked: dict[int, tuple[Message, float, bool]]
    backlog: deque[Message] | None
    held: int
    window: AdaptiveWindow
    peer_window: int
    rtt: RttEstimator
    outbox: list[Message]
    _seal: Flags
    _compress: bool
    _hdr_sid: int

    if TYPE_CHECKING:

        def _allowed(self, event: Event, origin: Origin = Origin.REMOTE) -> None: ...

    # ------------------------------------------------------------------ sending
    def _send_sequenced(self, payload: Payload, now: float, flags: Flags = Flags.NONE) -> int:
        if self.state is not State.ACTIVE:
            self._allowed(Event.MESSAGE, Origin.LOCAL)
        self.send_seq += 1
        seq = self.send_seq
        if self._compress:
            body = getattr(payload, "data", None) or getattr(payload, "text", "")
            if isinstance(body, bytes | str) and len(body) >= COMPRESS_MIN:
                flags = flags | Flags.COMPRESSED
        if self._seal:
            flags = flags | self._seal
        msg = _MESSAGE(payload, seq, self._hdr_sid, 0, flags)
        if self.is_client:  # the client's API waits for window room; nothing to charge
            self.unacked[seq] = (msg, now, False)
            self.outbox.append(msg)
            return seq
        self.held += held_size(payload)
        backlog = self.backlog
        if backlog or len(self.unacked) >= min(self.window.size, self.peer_window):
            if backlog is None:
                backlog = self.backlog = deque()
            backlog.append(msg)  # the window is full: sent when acknowledgments make room
            return seq
        self.unacked[seq] = (msg, now, False)
        self.outbox.append(msg)
        return seq

    def _release(self, now: float) -> None:
        """Send backlogged sequenced messages while the window has room."""
        backlog = self.backlog
        unacked = self.unacked
        limit = min(self.window.size, self.peer_window)
        while backlog and len(unacked) < limit:
            msg = backlog.popleft()
            fresh = self._again(msg, msg.sequence)
            unacked[msg.sequence] = (fresh, now, False)
            self.outbox.append(fresh)

    def _again(self, msg: Message, seq: int) -> Message:
        """``msg`` as it is sent now: this connection's seal and header session id."""
        flags = (msg.flags & ~Flags.ENCRYPTED) | self._seal
        return _MESSAGE(msg.payload, seq, self._hdr_sid, 0, flags)

    @property
    def sent_seq(self) -> int:
        """The highest sequence number actually sent (backlogged ones are not)."""
        return self.send_seq - len(self.backlog) if self.backlog else self.send_seq

    def can_send(self) -> bool:
        """Whether the in-flight window has room for another sequenced message."""
        return len(self.unacked) < min(self.window.size, self.peer_window)

    @property
    def in_flight(self) -> int:
        return len(self.unacked)

    # ------------------------------------------------------------------ receiving
    def _accept_sequence(self, msg: Message) -> bool:
        """True for a new in-order message; False for a duplicate (re-acked)."""
        seq = msg.sequence
        self.ack_pending += 1  # a duplicate is answered with the cumulative ack again
        if seq == self.recv_seq + 1:
            self.recv_seq = seq
            return True
        verdict = check_sequence(seq, self.recv_seq)
        if verdict is not None:
            raise verdict.error()
        return False

    def not_applied(self, sequence: int) -> None:
        """The driver could not apply message ``sequence`` (and what followed it):
        acknowledge only what came before. The session is expected to close."""
        if 0 < sequence <= self.recv_seq:
            self.recv_seq = sequence - 1
            self.ack_pending = 1 if self.recv_seq else 0

    def _on_data(
        self, msg: Message, payload: TextData | BinaryData | DeltaUpdate, now: float
    ) -> list[ev.Event]:
        if not self._accept_sequence(msg):
            return []
        return [ev.DataReceived(payload, msg.sequence)]

    def _on_error(self, msg: Message, payload: Error, now: float) -> list[ev.Event]:
        if not self._accept_sequence(msg):
            return []
        return [ev.PeerError(payload.code, payload.message, payload.ref_sequence)]

    def _on_ack(self, msg: Message, payload: Acknowledge, now: float) -> list[ev.Event]:
        seq = payload.sequence
        verdict = check_ack(seq, self.sent_seq, "client" if self.is_client else "server")
        if verdict is not None:
            raise verdict.error()
        unacked = self.unacked
        if not unacked:
            return []
        first = next(iter(unacked))
        if first > seq:
            return []  # an old ack (rule 30): nothing new
        acked: list[Payload] = []
        sample: float | None = None
        pop = unacked.pop
        charged = not self.is_client  # see _send_sequenced
        # keys are consecutive sequence numbers in order (sent in order, dropped
        # from the front), so the acknowledged ones are first..seq
        for number in range(first, seq + 1):
            entry = pop(number, None)
            if entry is not None:
                kept = entry[0].payload
                acked.append(kept)
                if charged:
                    self.held -= held_size(kept)
                if not entry[2]:
                    sample = entry[1]
        if not acked:
            return []
        if sample is not None:
            self.rtt.sample(now - sample)  # Karn: only never-retransmitted messages
        self.window.on_ack(len(acked))
        if self.backlog and self.state is State.ACTIVE:
            self._release(now)
        return [ev.Acked(seq, len(acked), tuple(acked))]

    # ------------------------------------------------------------------ retransmission
    def _retransmit(self, now: float, after: int = 0) -> ev.Retransmitted:
        """Queue every unacked message with sequence > ``after`` again (go-back-N)."""
        count = 0
        for seq, (msg, _, _) in list(self.unacked.items()):
            if seq <= after:
                continue
            fresh = self._again(msg, seq)
            self.unacked[seq] = (fresh, now, True)
            self.outbox.append(fresh)
            count += 1
        if after == 0:
            self.rtt.backoff()
            self.window.on_timeout()
        return ev.Retransmitted(count, self.rtt.rto)

    def _drop_acked(self, upto: int) -> list[Payload]:
        """Forget what the peer says it has (a resume's ``last_received``); the
        payloads, in order."""
        unacked = self.unacked
        dropped: list[Payload] = []
        while unacked:
            first = next(iter(unacked))
            if first > upto:
                break
            payload = unacked.pop(first)[0].payload
            dropped.append(payload)
            if not self.is_client:
                self.held -= held_size(payload)
        return dropped
