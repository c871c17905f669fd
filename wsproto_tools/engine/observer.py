"""Observer mode: follow a recorded wsp conversation passively and judge it.

The capture analyzer and the replayer feed every decoded message of one
connection, in capture order, with its direction and capture timestamp::

    from wsproto_tools.engine.observer import Direction, SessionObserver

    observer = SessionObserver()
    for direction, message, ts in conversation:          # codec Messages
        for finding in observer.feed(direction, message, ts):
            report(finding)                              # Violation
    for finding in observer.finish(last_ts):             # end of the capture
        report(finding)

The observer follows the same state table as the live engine
(:mod:`~wsproto_tools.engine.states`) and the same rules: handshake order,
capabilities and flags, per-direction sequence numbers and cumulative acks,
heartbeat probes and replies, topic offsets and continuity. It holds no keys,
so it never claims that an HMAC proof, a JWT signature, a resume token or an
encrypted payload is fine: those are reported once each with
``verdict=Verdict.UNCHECKED``. Nothing here raises for a peer's mistake; a
finding is returned instead and following continues.
"""

from __future__ import annotations

__all__ = ["RULES", "Direction", "SessionObserver", "Verdict", "Violation"]

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from wsproto_tools.codec.schema import (
    Acknowledge,
    Authenticate,
    Batch,
    Challenge,
    Close,
    ContinuityLost,
    Deliver,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Payload,
    Sealed,
    Subscribe,
    Subscribed,
    Unknown,
)
from wsproto_tools.engine.states import Event, IllegalTransition, State, transition
from wsproto_tools.engine.vocabulary import KNOWN_CAPABILITIES, SEQUENCED
from wsproto_tools.exceptions import CloseCode

#: rule id -> what it checks (docs/protocol.md, "Session protocol", lists them).
RULES: dict[str, str] = {
    "state": "A message the session state does not allow (engine/states.py table).",
    "handshake-order": "Challenge, then Handshake (+ Authenticate for hmac), then "
    "HandshakeResponse, each from the right side.",
    "auth-proof": "HMAC proofs and JWT signatures (unchecked without keys).",
    "token-time": "A JWT whose exp/nbf make it invalid at the time it was accepted.",
    "resume-token": "Resume tokens (signature unchecked without the server key).",
    "capability": "Capabilities granted that were never offered, or unknown ones.",
    "flag": "COMPRESSED/ENCRYPTED flags or Batch without the negotiated capability.",
    "encrypted": "Encrypted payloads (unchecked without the session keys).",
    "session-id": "A header session id other than the session's after the handshake.",
    "sequence": "Sequenced messages numbered 1, 2, 3... per direction, no gaps.",
    "ack": "Acknowledge never covers a sequence that was not sent, never goes back.",
    "heartbeat": "Every reply answers a probe; every probe is answered in time.",
    "silence": "No direction is silent longer than the heartbeat timeout.",
    "deliver": "Deliveries per topic: subscribed first, offsets consecutive within an "
    "epoch, unless ContinuityLost announced the gap.",
    "after-close": "Nothing but Close after a side sent Close.",
    "unknown-type": "A message type this implementation does not know (unchecked).",
}


class Direction(Enum):
    """Which way a message went."""

    CLIENT_TO_SERVER = "c2s"
    SERVER_TO_CLIENT = "s2c"

    @property
    def sender(self) -> str:
        return "client" if self is Direction.CLIENT_TO_SERVER else "server"


class Verdict(Enum):
    VIOLATION = "violation"  # the peer broke this rule
    UNCHECKED = "unchecked"  # could not be checked (no keys); never means "fine"


@dataclass(frozen=True, slots=True)
class Violation:
    """One finding about one message."""

    rule: str
    message: str
    direction: Direction
    timestamp: float
    type_name: str
    sequence: int
    verdict: Verdict = Verdict.VIOLATION
    close_code: int = CloseCode.PROTOCOL_ERROR

    @property
    def culprit(self) -> str:
        """``client`` or ``server``: who sent the offending message."""
        return self.direction.sender


@dataclass(slots=True)
class _Side:
    """What one direction has done so far."""

    sent_seq: int = 0  # highest sequence sent in order
    acked: int = 0  # highest cumulative ack this side *received*
    ack_sent: int = 0  # highest cumulative ack this side sent
    closed: bool = False
    last_ts: float | None = None
    probes: dict[int, float] | None = None


C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


class SessionObserver:
    """Follows one connection of a wsp session; :meth:`feed` returns findings."""

    def __init__(self, *, heartbeat_timeout: float | None = None) -> None:
        self.state = State.CONNECTING
        self.heartbeat_timeout = heartbeat_timeout
        self.sides = {C2S: _Side(probes={}), S2C: _Side(probes={})}
        # the same two objects, reached without hashing an Enum (hot path)
        self._c2s = self.sides[C2S]
        self._s2c = self.sides[S2C]
        self.session_id = 0
        self.offered: tuple[str, ...] = ()
        self.capabilities: tuple[str, ...] = ()
        self.auth = ""
        self.hello: Handshake | None = None
        self.challenged = False
        self.authenticated_msg = False
        self.cursors: dict[str, tuple[int, int]] = {}  # topic -> (epoch, last offset)
        self.subscribed: set[str] = set()
        self._unchecked_once: set[str] = set()
        self._expired_token = False
        self.findings = 0

    # ------------------------------------------------------------------ public
    def feed(self, direction: Direction, message: Message, ts: float) -> list[Violation]:
        """Judge one message sent in ``direction`` at capture time ``ts`` (seconds)."""
        out: list[Violation] = []
        side = self._c2s if direction is C2S else self._s2c
        if type(message.payload) is Batch:
            if "batch" not in self.capabilities:
                out.append(
                    self._v(
                        "flag",
                        "Batch without the batch capability",
                        direction,
                        ts,
                        message,
                        CloseCode.WSP_UNNEGOTIATED,
                    )
                )
            self._silence(direction, ts, message, out, side)
            for item in message.payload.messages:
                self._one(direction, item, ts, out, side)
        else:
            last = side.last_ts
            timeout = self.heartbeat_timeout
            if (timeout is None or last is None or self.state is not _ACTIVE
                    or ts - last <= timeout):
                side.last_ts = ts  # _silence, with nothing to report
            else:
                self._silence(direction, ts, message, out, side)
            self._one(direction, message, ts, out, side)
        if out:
            self.findings += len(out)
        return out

    def finish(self, ts: float) -> list[Violation]:
        """The end of the recording: unanswered probes and overdue silence."""
        out: list[Violation] = []
        timeout = self.heartbeat_timeout
        for direction, side in self.sides.items():
            other = C2S if direction is S2C else S2C
            for pid, sent in (side.probes or {}).items():
                if timeout is not None and ts - sent > timeout and not self.sides[other].closed:
                    out.append(
                        Violation(
                            "heartbeat",
                            f"probe {pid} from the {direction.sender} was never "
                            f"answered ({ts - sent:.1f} s)",
                            other,
                            ts,
                            "Heartbeat",
                            0,
                            close_code=CloseCode.WSP_HEARTBEAT_TIMEOUT,
                        )
                    )
        self.findings += len(out)
        return out

    # ------------------------------------------------------------------ helpers
    def _v(
        self,
        rule: str,
        text: str,
        direction: Direction,
        ts: float,
        msg: Message,
        code: int = CloseCode.PROTOCOL_ERROR,
        verdict: Verdict = Verdict.VIOLATION,
    ) -> Violation:
        return Violation(rule, text, direction, ts, msg.type_name, msg.sequence, verdict, int(code))

    def _unchecked(
        self,
        rule: str,
        text: str,
        direction: Direction,
        ts: float,
        msg: Message,
        out: list[Violation],
        *,
        once: bool = True,
    ) -> None:
        key = f"{rule}:{direction.value}"
        if once and key in self._unchecked_once:
            return
        self._unchecked_once.add(key)
        out.append(self._v(rule, text, direction, ts, msg, CloseCode.NORMAL, Verdict.UNCHECKED))

    def _step(
        self, event: Event, direction: Direction, ts: float, msg: Message, out: list[Violation]
    ) -> bool:
        try:
            self.state = transition(self.state, event)
        except IllegalTransition as error:
            out.append(
                self._v(
                    "state",
                    f"{msg.type_name} from the {direction.sender}: {error}",
                    direction,
                    ts,
                    msg,
                    error.close_code,
                )
            )
            return False
        return True

    def _silence(
        self, direction: Direction, ts: float, msg: Message, out: list[Violation], side: _Side
    ) -> None:
        timeout = self.heartbeat_timeout
        if (
            timeout is not None
            and side.last_ts is not None
            and self.state is State.ACTIVE
            and ts - side.last_ts > timeout
        ):
            out.append(
                self._v(
                    "silence",
                    f"the {direction.sender} was silent for "
                    f"{ts - side.last_ts:.1f} s (timeout {timeout:g} s)",
                    direction,
                    ts,
                    msg,
                    CloseCode.WSP_HEARTBEAT_TIMEOUT,
                )
            )
        side.last_ts = ts

    # ------------------------------------------------------------------ one message
    def _one(
        self, d: Direction, msg: Message, ts: float, out: list[Violation], side: _Side
    ) -> None:
        payload = msg.payload
        ptype = type(payload)
        flags = msg.flags
        if (
            self.state is _ACTIVE
            and not side.closed
            and (flags is _NO_FLAGS or flags is _ACK)
            and (not msg.session_id or msg.session_id == self.session_id)
        ):
            # the common case, in order, with nothing to report: the general path
            # below decides the same, only slower
            if ptype in _PLAIN_SEQUENCED:
                seq = msg.sequence
                if seq == side.sent_seq + 1:
                    side.sent_seq = seq
                else:
                    self._sequence(d, msg, ts, out)
                return
            if ptype is Acknowledge:
                seq = payload.sequence  # type: ignore[attr-defined]
                other = self._s2c if d is C2S else self._c2s
                if seq > other.sent_seq or seq < side.ack_sent:
                    self._ack(d, msg, ts, out)
                elif seq > side.ack_sent:
                    side.ack_sent = seq
                return
        if self.state is State.CONNECTING:
            self.state = State.HANDSHAKING  # the connection was up before its first message
        if side.closed and type(payload) is not Close:
            out.append(
                self._v(
                    "after-close", f"{msg.type_name} after the {d.sender} sent Close", d, ts, msg
                )
            )
            return
        self._flags(d, msg, ts, out)
        if self.state is State.ACTIVE and msg.session_id not in (0, self.session_id):
            out.append(
                self._v(
                    "session-id",
                    f"header session id {msg.session_id}, the session is {self.session_id}",
                    d,
                    ts,
                    msg,
                )
            )
        handler = _HANDLERS.get(type(payload))
        if handler is not None:
            handler(self, d, msg, ts, out)
            return
        if type(payload) is Unknown:
            out.append(
                self._v(
                    "unknown-type",
                    f"unknown message type 0x{msg.type_code:04x}: not checked",
                    d,
                    ts,
                    msg,
                    CloseCode.UNSUPPORTED_DATA,
                    Verdict.UNCHECKED,
                )
            )
            return
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        if type(payload) is Sealed:
            self._unchecked(
                "encrypted",
                "encrypted payloads cannot be checked without the session keys",
                d,
                ts,
                msg,
                out,
            )
            if msg.sequence:
                self._sequence(d, msg, ts, out)
            return
        if isinstance(payload, SEQUENCED):
            self._sequence(d, msg, ts, out)

    def _flags(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        flags = msg.flags
        if flags & Flags.COMPRESSED and "compress" not in self.capabilities:
            out.append(
                self._v(
                    "flag",
                    "COMPRESSED without the compress capability",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_UNNEGOTIATED,
                )
            )
        if flags & Flags.ENCRYPTED and "encrypt" not in self.capabilities:
            out.append(
                self._v(
                    "flag",
                    "ENCRYPTED without the encrypt capability",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_UNNEGOTIATED,
                )
            )

    def _sequence(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        side = self.sides[d]
        seq = msg.sequence
        if seq == side.sent_seq + 1:
            side.sent_seq = seq
        elif seq == 0:
            out.append(
                self._v("sequence", f"{msg.type_name} without a sequence number", d, ts, msg)
            )
        elif seq > side.sent_seq + 1:
            out.append(
                self._v(
                    "sequence", f"sequence gap: expected {side.sent_seq + 1}, got {seq}", d, ts, msg
                )
            )
            side.sent_seq = seq
        # seq <= sent_seq: a retransmission, which is allowed

    # ------------------------------------------------------------------ handlers
    def _challenge(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if d is not S2C:
            out.append(self._v("handshake-order", "Challenge from the client", d, ts, msg))
            return
        if self.challenged:
            out.append(self._v("handshake-order", "a second Challenge", d, ts, msg))
            return
        if self._step(Event.CHALLENGE, d, ts, msg, out):
            self.challenged = True

    def _handshake(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        hello: Handshake = msg.payload  # type: ignore[assignment]
        if d is not C2S:
            out.append(self._v("handshake-order", "Handshake from the server", d, ts, msg))
            return
        if self.hello is not None and self.state is State.HANDSHAKING:
            out.append(self._v("handshake-order", "a second Handshake", d, ts, msg))
            return
        if not self._step(Event.HANDSHAKE, d, ts, msg, out):
            return
        if not self.challenged:
            out.append(
                self._v("handshake-order", "Handshake before the server's Challenge", d, ts, msg)
            )
        self.hello = hello
        self.offered = tuple(hello.capabilities)
        self.auth = hello.auth or "none"
        unknown = sorted(set(hello.capabilities) - KNOWN_CAPABILITIES)
        if unknown:
            out.append(
                self._v(
                    "capability",
                    f"unknown capabilities offered: {unknown}",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_UNNEGOTIATED,
                )
            )
        if hello.resume_token:
            self._unchecked(
                "resume-token",
                "resume token signature needs the server's token key",
                d,
                ts,
                msg,
                out,
            )
            # the server will retransmit what the client says it lacks
            self.sides[S2C].sent_seq = hello.last_received or 0
            self.sides[S2C].acked = hello.last_received or 0
        if self.auth == "jwt" and hello.token:
            self._unchecked(
                "auth-proof", "JWT signature needs the verification key", d, ts, msg, out
            )
            self._token_time(hello.token, d, ts, msg, out)

    def _token_time(
        self, token: str, d: Direction, ts: float, msg: Message, out: list[Violation]
    ) -> None:
        import jwt

        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            out.append(
                self._v(
                    "auth-proof", f"malformed JWT: {error}", d, ts, msg, CloseCode.WSP_AUTH_FAILED
                )
            )
            return
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, int | float) and ts >= exp:
            out.append(
                self._v(
                    "token-time",
                    f"JWT expired {ts - exp:.0f} s before it was presented",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_AUTH_FAILED,
                )
            )
        if isinstance(nbf, int | float) and ts < nbf:
            out.append(
                self._v(
                    "token-time",
                    "JWT presented before its nbf",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_AUTH_FAILED,
                )
            )
        self._expired_token = isinstance(exp, int | float) and ts >= exp

    def _authenticate(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if d is not C2S:
            out.append(self._v("handshake-order", "Authenticate from the server", d, ts, msg))
            return
        if self.state is not State.HANDSHAKING:
            self._step(Event.AUTH_OK, d, ts, msg, out)
            return
        if self.hello is None or self.auth != "hmac" or self.authenticated_msg:
            out.append(
                self._v(
                    "handshake-order",
                    "Authenticate without a Handshake announcing hmac, or twice",
                    d,
                    ts,
                    msg,
                )
            )
            return
        self.authenticated_msg = True
        self._unchecked("auth-proof", "HMAC proof needs the shared secret", d, ts, msg, out)

    def _handshake_response(
        self, d: Direction, msg: Message, ts: float, out: list[Violation]
    ) -> None:
        answer: HandshakeResponse = msg.payload  # type: ignore[assignment]
        if d is not S2C:
            out.append(self._v("handshake-order", "HandshakeResponse from the client", d, ts, msg))
            return
        if self.state is State.HANDSHAKING:
            if self.hello is None:
                out.append(
                    self._v("handshake-order", "HandshakeResponse before the Handshake", d, ts, msg)
                )
            elif self.auth == "hmac" and not self.authenticated_msg:
                out.append(
                    self._v(
                        "handshake-order",
                        "HandshakeResponse before the hmac Authenticate",
                        d,
                        ts,
                        msg,
                        CloseCode.WSP_AUTH_FAILED,
                    )
                )
            if self._expired_token:
                out.append(
                    self._v(
                        "token-time",
                        "the server accepted an expired JWT",
                        d,
                        ts,
                        msg,
                        CloseCode.WSP_AUTH_FAILED,
                    )
                )
            self.state = State.AUTHENTICATED
        if not self._step(Event.ACCEPT, d, ts, msg, out):
            return
        if self.auth == "hmac":
            self._unchecked(
                "auth-proof", "server HMAC proof needs the shared secret", d, ts, msg, out
            )
        stray = sorted(set(answer.capabilities) - set(self.offered))
        if stray:
            out.append(
                self._v(
                    "capability",
                    f"granted capabilities never offered: {stray}",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_UNNEGOTIATED,
                )
            )
        self.capabilities = tuple(answer.capabilities)
        self.session_id = answer.session_id
        if answer.heartbeat_ms and self.heartbeat_timeout is None:
            self.heartbeat_timeout = 3 * answer.heartbeat_ms / 1000
        if answer.resumed:
            self.sides[C2S].sent_seq = answer.last_received or 0
            self.sides[C2S].acked = answer.last_received or 0

    def _ack(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        seq = msg.payload.sequence  # type: ignore[attr-defined]
        other = self.sides[C2S if d is S2C else S2C]
        side = self.sides[d]
        if seq > other.sent_seq:
            out.append(
                self._v(
                    "ack",
                    f"acknowledges {seq}, but the "
                    f"{(C2S if d is S2C else S2C).sender} sent only "
                    f"{other.sent_seq}",
                    d,
                    ts,
                    msg,
                )
            )
        elif seq < side.ack_sent:
            out.append(
                self._v(
                    "ack", f"acknowledgment went back from {side.ack_sent} to {seq}", d, ts, msg
                )
            )
        side.ack_sent = max(side.ack_sent, seq)

    def _heartbeat(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        hb: Heartbeat = msg.payload  # type: ignore[assignment]
        other = C2S if d is S2C else S2C
        if not hb.reply:
            probes = self.sides[d].probes
            assert probes is not None
            probes[hb.id] = ts
            if len(probes) > 64:
                del probes[next(iter(probes))]
            return
        probes = self.sides[other].probes
        assert probes is not None
        sent = probes.pop(hb.id, None)
        if sent is None:
            out.append(
                self._v(
                    "heartbeat",
                    f"reply to probe {hb.id}, which the {other.sender} never sent",
                    d,
                    ts,
                    msg,
                )
            )
        elif self.heartbeat_timeout is not None and ts - sent > self.heartbeat_timeout:
            out.append(
                self._v(
                    "heartbeat",
                    f"probe {hb.id} answered after {ts - sent:.1f} s",
                    d,
                    ts,
                    msg,
                    CloseCode.WSP_HEARTBEAT_TIMEOUT,
                )
            )

    def _close(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is State.CONNECTING:
            self.state = State.HANDSHAKING
        if self.state not in (State.CLOSING, State.CLOSED):
            self._step(Event.CLOSE, d, ts, msg, out)
        self.sides[d].closed = True

    def _subscribe(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        sub: Subscribe = msg.payload  # type: ignore[assignment]
        if d is not C2S:
            out.append(self._v("state", "Subscribe from the server", d, ts, msg))
            return
        self.subscribed.add(sub.topic)
        if sub.from_offset is not None and sub.epoch is not None:
            self.cursors[sub.topic] = (sub.epoch, max(0, sub.from_offset - 1))

    def _subscribed(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        p: Subscribed = msg.payload  # type: ignore[assignment]
        if p.topic not in self.subscribed:
            out.append(
                self._v("deliver", f"Subscribed for {p.topic!r}, never requested", d, ts, msg)
            )
        cursor = self.cursors.get(p.topic)
        if cursor is None or cursor[0] != p.epoch:
            self.cursors[p.topic] = (p.epoch, max(0, p.next_offset - 1))

    def _continuity_lost(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        p: ContinuityLost = msg.payload  # type: ignore[assignment]
        self.cursors[p.topic] = (p.epoch, max(0, p.first_available - 1))

    def _deliver(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        p: Deliver = msg.payload  # type: ignore[assignment]
        if d is not S2C:
            out.append(self._v("state", "Deliver from the client", d, ts, msg))
            return
        cursor = self.cursors.get(p.topic)
        if cursor is None:
            out.append(self._v("deliver", f"Deliver for {p.topic!r} before Subscribed", d, ts, msg))
            self.cursors[p.topic] = (p.epoch, p.offset)
            return
        epoch, last = cursor
        if p.epoch != epoch:
            out.append(
                self._v(
                    "deliver",
                    f"{p.topic!r} moved from epoch {epoch} to {p.epoch} without ContinuityLost",
                    d,
                    ts,
                    msg,
                )
            )
        elif p.offset <= last:
            out.append(
                self._v(
                    "deliver",
                    f"{p.topic!r} offset {p.offset} delivered again (already at {last})",
                    d,
                    ts,
                    msg,
                )
            )
            return
        elif p.offset != last + 1:
            out.append(
                self._v(
                    "deliver",
                    f"{p.topic!r} jumped from offset {last} to {p.offset} without ContinuityLost",
                    d,
                    ts,
                    msg,
                )
            )
        self.cursors[p.topic] = (p.epoch, p.offset)


_ACTIVE = State.ACTIVE
_NO_FLAGS = Flags.NONE
_ACK = Flags.ACK_REQUESTED
_Handler = Callable[[SessionObserver, Direction, Message, float, list[Violation]], None]
_HANDLERS: dict[type[Payload], _Handler] = {
    Challenge: SessionObserver._challenge,
    Handshake: SessionObserver._handshake,
    Authenticate: SessionObserver._authenticate,
    HandshakeResponse: SessionObserver._handshake_response,
    Acknowledge: SessionObserver._ack,
    Heartbeat: SessionObserver._heartbeat,
    Close: SessionObserver._close,
    Subscribe: SessionObserver._subscribe,
    Subscribed: SessionObserver._subscribed,
    ContinuityLost: SessionObserver._continuity_lost,
    Deliver: SessionObserver._deliver,
}
#: Sequenced payload types with no handler of their own: only their numbering is followed.
_PLAIN_SEQUENCED = frozenset(SEQUENCED) - set(_HANDLERS) - {Sealed, Unknown}
