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
from wsproto_tools.engine.rules import (
    Rule,
    broken,
    check_ack,
    check_ack_forward,
    check_answer_time,
    check_batch,
    check_capabilities_known,
    check_deliver,
    check_direction,
    check_flags,
    check_granted,
    check_sequence,
    check_session_id,
    check_silence,
    unknown_probe,
)
from wsproto_tools.engine.rules import Verdict as RuleVerdict
from wsproto_tools.engine.states import Event, IllegalTransition, State, Stateful
from wsproto_tools.engine.vocabulary import KNOWN_CAPABILITIES, SEQUENCED
from wsproto_tools.exceptions import CloseCode

#: rule family -> what it checks (docs/protocol.md S.8); each finding also carries
#: the checklist number of the rule it broke (``rule_id``, S.9).
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
    "session-id": "A non-zero header session id other than the session's after the handshake.",
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
    rule_id: int = 0  # the checklist line (docs/protocol.md S.9)

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


class SessionObserver(Stateful):
    """Follows one connection of a wsp session; :meth:`feed` returns findings."""

    def __init__(self, *, heartbeat_timeout: float | None = None) -> None:
        self._start()
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
        batch = message.payload
        if type(batch) is Batch:
            found = check_batch(self.capabilities)
            if found is not None:
                self._broke(found, direction, ts, message, out)
            self._silence(direction, ts, message, out, side)
            for item in batch.messages:
                self._one(direction, item, ts, out, side)
        else:
            last = side.last_ts
            timeout = self.heartbeat_timeout
            if (timeout is None or last is None or self.state is not _ACTIVE
                    or ts - last < timeout):
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
                            rule_id=int(Rule.HEARTBEAT_ANSWER),
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
        rule_id: int = 0,
    ) -> Violation:
        return Violation(
            rule, text, direction, ts, msg.type_name, msg.sequence, verdict, int(code), rule_id
        )

    def _broke(
        self, found: RuleVerdict, d: Direction, ts: float, msg: Message, out: list[Violation]
    ) -> None:
        """Record a verdict of the rule book as a violation."""
        rule = found.rule
        out.append(self._v(rule.slug, found.message, d, ts, msg, found.close_code,
                           Verdict.VIOLATION, int(rule)))

    def _unchecked(
        self,
        rule: Rule,
        text: str,
        direction: Direction,
        ts: float,
        msg: Message,
        out: list[Violation],
        *,
        once: bool = True,
        family: str = "",
    ) -> None:
        family = family or rule.slug
        key = f"{family}:{direction.value}"
        if once and key in self._unchecked_once:
            return
        self._unchecked_once.add(key)
        out.append(
            self._v(family, text, direction, ts, msg, CloseCode.NORMAL, Verdict.UNCHECKED,
                    int(rule))
        )

    def _step(
        self, event: Event, direction: Direction, ts: float, msg: Message, out: list[Violation]
    ) -> bool:
        try:
            self._go(event)
        except IllegalTransition as error:
            rule = Rule.NOT_YET_ACTIVE if error.close_code == CloseCode.POLICY_VIOLATION else (
                Rule.STATE
            )
            self._broke(
                broken(rule, f"{msg.type_name} from the {direction.sender}: {error}",
                       error.close_code),
                direction, ts, msg, out,
            )
            return False
        return True

    def _opened(self) -> None:
        """The connection was up before its first message."""
        if self.state is State.CONNECTING:
            self._go(Event.OPEN)

    def _silence(
        self, direction: Direction, ts: float, msg: Message, out: list[Violation], side: _Side
    ) -> None:
        if side.last_ts is not None and self.state is State.ACTIVE:
            found = check_silence(ts - side.last_ts, self.heartbeat_timeout, direction.sender)
            if found is not None:
                self._broke(found, direction, ts, msg, out)
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
            if type(payload) is Acknowledge:
                seq = payload.sequence
                other = self._s2c if d is C2S else self._c2s
                if seq > other.sent_seq or seq < side.ack_sent:
                    self._ack(d, msg, payload, ts, out)
                elif seq > side.ack_sent:
                    side.ack_sent = seq
                return
        self._opened()
        if side.closed and type(payload) is not Close:
            out.append(
                self._v(
                    "after-close", f"{msg.type_name} after the {d.sender} sent Close", d, ts, msg,
                    rule_id=int(Rule.AFTER_CLOSE),
                )
            )
            return
        if flags:
            found = check_flags(flags, self.capabilities)
            if found is not None:
                self._broke(found, d, ts, msg, out)
        if self.state is State.ACTIVE and msg.session_id:
            found = check_session_id(msg.session_id, self.session_id)
            if found is not None:
                self._broke(found, d, ts, msg, out)
        wrong_side = check_direction(ptype, d is S2C)
        if wrong_side is not None and ptype not in _ORDER_CHECKED:
            self._broke(wrong_side, d, ts, msg, out)
            return
        handler = _HANDLERS.get(ptype)
        if handler is not None:
            handler(self, d, msg, payload, ts, out)
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
                    int(Rule.UNKNOWN_TYPE),
                )
            )
            return
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        if type(payload) is Sealed:
            self._unchecked(
                Rule.DECRYPTION,
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

    def _sequence(self, d: Direction, msg: Message, ts: float, out: list[Violation]) -> None:
        side = self.sides[d]
        seq = msg.sequence
        if seq == side.sent_seq + 1:
            side.sent_seq = seq
            return
        found = check_sequence(seq, side.sent_seq)
        if found is None:
            return  # a retransmission, which is allowed
        self._broke(found, d, ts, msg, out)
        if seq > side.sent_seq:
            side.sent_seq = seq

    # ------------------------------------------------------------------ handlers
    def _challenge(self, d: Direction, msg: Message, payload: Challenge, ts: float,
                   out: list[Violation]) -> None:
        if d is not S2C:
            self._broke(broken(Rule.DIRECTION, "Challenge from the client"), d, ts, msg, out)
            return
        if self.challenged:
            self._broke(broken(Rule.HANDSHAKE_ONCE, "a second Challenge"), d, ts, msg, out)
            return
        if self._step(Event.CHALLENGE, d, ts, msg, out):
            self.challenged = True

    def _handshake(self, d: Direction, msg: Message, hello: Handshake, ts: float,
                   out: list[Violation]) -> None:
        if d is not C2S:
            self._broke(broken(Rule.DIRECTION, "Handshake from the server"), d, ts, msg, out)
            return
        if self.hello is not None and self.state is State.HANDSHAKING:
            self._broke(broken(Rule.HANDSHAKE_ONCE, "a second Handshake"), d, ts, msg, out)
            return
        if not self._step(Event.HANDSHAKE, d, ts, msg, out):
            return
        if not self.challenged:
            self._broke(
                broken(Rule.CHALLENGE_FIRST, "Handshake before the server's Challenge"),
                d, ts, msg, out,
            )
        self.hello = hello
        self.offered = tuple(hello.capabilities)
        self.auth = hello.auth or "none"
        found = check_capabilities_known(self.offered, KNOWN_CAPABILITIES)
        if found is not None:
            self._broke(found, d, ts, msg, out)
        if hello.resume_token:
            self._unchecked(
                Rule.RESUME_TOKEN,
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
                Rule.JWT, "JWT signature needs the verification key", d, ts, msg, out,
                family="auth-proof",
            )
            self._token_time(hello.token, d, ts, msg, out)

    def _token_time(
        self, token: str, d: Direction, ts: float, msg: Message, out: list[Violation]
    ) -> None:
        import jwt

        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            self._broke(broken(Rule.JWT, f"malformed JWT: {error}"), d, ts, msg, out)
            return
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, int | float) and ts >= exp:
            self._broke(
                broken(Rule.JWT, f"JWT expired {ts - exp:.0f} s before it was presented"),
                d, ts, msg, out,
            )
        if isinstance(nbf, int | float) and ts < nbf:
            self._broke(broken(Rule.JWT, "JWT presented before its nbf"), d, ts, msg, out)
        self._expired_token = isinstance(exp, int | float) and ts >= exp

    def _authenticate(self, d: Direction, msg: Message, payload: Authenticate, ts: float,
                      out: list[Violation]) -> None:
        if d is not C2S:
            self._broke(broken(Rule.DIRECTION, "Authenticate from the server"), d, ts, msg, out)
            return
        if self.state is not State.HANDSHAKING:
            self._step(Event.AUTH_OK, d, ts, msg, out)
            return
        if self.hello is None or self.auth != "hmac" or self.authenticated_msg:
            self._broke(
                broken(Rule.AUTHENTICATE,
                       "Authenticate without a Handshake announcing hmac, or twice",
                       CloseCode.PROTOCOL_ERROR),
                d, ts, msg, out,
            )
            return
        self.authenticated_msg = True
        self._unchecked(Rule.HMAC_PROOF, "HMAC proof needs the shared secret", d, ts, msg, out)

    def _handshake_response(self, d: Direction, msg: Message, answer: HandshakeResponse,
                            ts: float, out: list[Violation]) -> None:
        if d is not S2C:
            self._broke(
                broken(Rule.DIRECTION, "HandshakeResponse from the client"), d, ts, msg, out
            )
            return
        if self.state is State.HANDSHAKING:
            if self.hello is None:
                self._broke(
                    broken(Rule.CHALLENGE_FIRST, "HandshakeResponse before the Handshake"),
                    d, ts, msg, out,
                )
            elif self.auth == "hmac" and not self.authenticated_msg:
                self._broke(
                    broken(Rule.AUTHENTICATE, "HandshakeResponse before the hmac Authenticate",
                           CloseCode.WSP_AUTH_FAILED),
                    d, ts, msg, out,
                )
            if self._expired_token:
                self._broke(broken(Rule.JWT, "the server accepted an expired JWT"), d, ts, msg,
                            out)
            self._go(Event.AUTH_OK)  # the server checked the credentials
        if not self._step(Event.ACCEPT, d, ts, msg, out):
            return
        if msg.flags & Flags.ENCRYPTED:
            self._broke(
                broken(Rule.RESPONSE_IN_CLEAR, "an ENCRYPTED HandshakeResponse"), d, ts, msg, out
            )
        if self.auth == "hmac":
            self._unchecked(
                Rule.SERVER_PROOF, "server HMAC proof needs the shared secret", d, ts, msg, out
            )
        found = check_granted(tuple(answer.capabilities), self.offered)
        if found is not None:
            self._broke(found, d, ts, msg, out)
        self.capabilities = tuple(answer.capabilities)
        self.session_id = answer.session_id
        if answer.heartbeat_ms and self.heartbeat_timeout is None:
            self.heartbeat_timeout = 3 * answer.heartbeat_ms / 1000
        if answer.resumed:
            self.sides[C2S].sent_seq = answer.last_received or 0
            self.sides[C2S].acked = answer.last_received or 0

    def _ack(self, d: Direction, msg: Message, payload: Acknowledge, ts: float,
             out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        seq = payload.sequence
        sender = C2S if d is S2C else S2C
        other = self.sides[sender]
        side = self.sides[d]
        found = check_ack(seq, other.sent_seq, sender.sender) or check_ack_forward(
            seq, side.ack_sent
        )
        if found is not None:
            self._broke(found, d, ts, msg, out)
        side.ack_sent = max(side.ack_sent, seq)

    def _heartbeat(self, d: Direction, msg: Message, hb: Heartbeat, ts: float,
                   out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
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
            found: RuleVerdict | None = unknown_probe(hb.id, other.sender)
        else:
            found = check_answer_time(hb.id, ts - sent, self.heartbeat_timeout)
        if found is not None:
            self._broke(found, d, ts, msg, out)

    def _close(self, d: Direction, msg: Message, payload: Close, ts: float,
               out: list[Violation]) -> None:
        self._opened()
        if self.state not in (State.CLOSING, State.CLOSED):
            self._step(Event.CLOSE, d, ts, msg, out)
        self.sides[d].closed = True

    def _subscribe(self, d: Direction, msg: Message, sub: Subscribe, ts: float,
                   out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        self.subscribed.add(sub.topic)
        if sub.from_offset is not None and sub.epoch is not None:
            self.cursors[sub.topic] = (sub.epoch, max(0, sub.from_offset - 1))

    def _subscribed(self, d: Direction, msg: Message, p: Subscribed, ts: float,
                    out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        if p.topic not in self.subscribed:
            self._broke(
                broken(Rule.SUBSCRIBED_FIRST, f"Subscribed for {p.topic!r}, never requested"),
                d, ts, msg, out,
            )
        cursor = self.cursors.get(p.topic)
        if cursor is None or cursor[0] != p.epoch:
            self.cursors[p.topic] = (p.epoch, max(0, p.next_offset - 1))

    def _continuity_lost(self, d: Direction, msg: Message, p: ContinuityLost, ts: float,
                         out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        self.cursors[p.topic] = (p.epoch, max(0, p.first_available - 1))

    def _deliver(self, d: Direction, msg: Message, p: Deliver, ts: float,
                 out: list[Violation]) -> None:
        if self.state is not State.ACTIVE:
            self._step(Event.MESSAGE, d, ts, msg, out)
            return
        cursor = self.cursors.get(p.topic)
        if cursor is not None and cursor[0] == p.epoch and p.offset == cursor[1] + 1:
            self.cursors[p.topic] = (p.epoch, p.offset)
            return
        found = check_deliver(p.topic, p.epoch, p.offset, cursor, p.topic in self.subscribed)
        if found is not None:
            self._broke(found, d, ts, msg, out)
            if found.rule is Rule.DELIVER_DUPLICATE:
                return
        self.cursors[p.topic] = (p.epoch, p.offset)


_ACTIVE = State.ACTIVE
_NO_FLAGS = Flags.NONE
_ACK = Flags.ACK_REQUESTED
_Handler = Callable[..., None]
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
#: types whose handler checks the sender itself (with its own wording)
_ORDER_CHECKED = frozenset({Challenge, Handshake, Authenticate, HandshakeResponse})
#: Sequenced payload types with no handler of their own: only their numbering is followed.
_PLAIN_SEQUENCED = frozenset(SEQUENCED) - set(_HANDLERS) - {Sealed, Unknown}
