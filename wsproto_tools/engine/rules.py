"""The rule book: every protocol rule of docs/protocol.md's conformance checklist.

One numbered :class:`Rule` per line of the checklist (its number is the rule id)
and the pure checks that judge a message against it. A check returns None when
the rule holds and a :class:`Verdict` (rule, close code, message) when it is
broken. The live session raises the verdict (:meth:`Verdict.error`); the passive
observer records it as a finding; the fuzzer reads which close code a broken
rule must get. No rule is written anywhere else.

The checks know nothing about sessions: they take the few values they judge.
Hot paths test the ordinary case inline (``seq == last + 1``) and call the
check only for the rest.
"""

from __future__ import annotations

__all__ = [
    "CHECKLIST",
    "Level",
    "Rule",
    "RuleBroken",
    "Verdict",
    "broken",
    "checklist_table",
]

from dataclasses import dataclass
from enum import Enum, IntEnum

from wsproto_tools.codec.schema import (
    Authenticate,
    Challenge,
    ContinuityLost,
    Deliver,
    Flags,
    Handshake,
    HandshakeResponse,
    Payload,
    Publish,
    Request,
    Response,
    Resume,
    Subscribe,
    Subscribed,
    Unsubscribe,
)
from wsproto_tools.exceptions import CloseCode, RemoteProtocolError

_C = CloseCode


class Level(Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"


@dataclass(frozen=True, slots=True)
class _Line:
    slug: str  # the family a finding is filed under (wsp decode's `wsp-<slug>`)
    level: Level
    code: int  # close code (0: none; an HTTP status for the upgrade)
    text: str


class Rule(IntEnum):
    """Rule ids: the line numbers of the conformance checklist."""

    SUBPROTOCOL = 1
    BINARY_ONLY = 2
    HEADER = 3
    PAYLOAD = 4
    LIMITS = 5
    CHALLENGE_FIRST = 6
    NONCE_SIZE = 7
    HANDSHAKE_ONCE = 8
    AUTH_METHOD = 9
    CAPABILITY_KNOWN = 10
    AUTHENTICATE = 11
    HMAC_PROOF = 12
    JWT = 13
    SERVER_PROOF = 14
    CAPABILITY_GRANTED = 15
    NOT_YET_ACTIVE = 16
    HANDSHAKE_TIMEOUT = 17
    RESPONSE_IN_CLEAR = 18
    RESUME_TOKEN = 19
    RESUME_LAST_RECEIVED = 20
    SESSION_ID = 21
    FLAG_NEGOTIATED = 22
    BATCH_NEGOTIATED = 23
    DECRYPTION = 24
    DIRECTION = 25
    RESUME_RETIRED = 26
    SEQUENCE_GAP = 27
    SEQUENCE_DUPLICATE = 28
    ACK_RANGE = 29
    ACK_BACKWARDS = 30
    HEARTBEAT_REPLY = 31
    HEARTBEAT_ANSWER = 32
    SILENCE = 33
    TOPIC_ALLOWED = 34
    PUBLISH_ID = 35
    SUBSCRIBED_FIRST = 36
    DELIVER_ORDER = 37
    DELIVER_DUPLICATE = 38
    CONTINUITY = 39
    UNKNOWN_TYPE = 40
    AFTER_CLOSE = 41
    CLOSE_ANSWER = 42
    REQUEST_ANSWER = 43
    STATE = 44

    @property
    def line(self) -> _Line:
        return CHECKLIST[self]

    @property
    def slug(self) -> str:
        return CHECKLIST[self].slug

    @property
    def code(self) -> int:
        return CHECKLIST[self].code


M, S = Level.MUST, Level.SHOULD

#: rule -> (family, level, close code, requirement): docs/protocol.md section 11.
CHECKLIST: dict[Rule, _Line] = {
    Rule.SUBPROTOCOL: _Line("upgrade", M, 400, "A client offers `wsp.v2` and/or `wsp.v1` in `Sec-WebSocket-Protocol`; a server that shares none refuses the upgrade with HTTP 400."),  # noqa: E501
    Rule.BINARY_ONLY: _Line("upgrade", M, _C.UNSUPPORTED_DATA, "Every wsp message is one binary WebSocket message; a text message is closed with 1003."),  # noqa: E501
    Rule.HEADER: _Line("decode", M, _C.PROTOCOL_ERROR, "A message whose header does not decode in the negotiated version (sections 3, 4; v2 in canonical form only) is closed with 1002."),  # noqa: E501
    Rule.PAYLOAD: _Line("decode", M, _C.INVALID_DATA, "Invalid payload content (UTF-8, msgpack, a missing or ill-typed field, DEFLATE) is closed with 1007."),  # noqa: E501
    Rule.LIMITS: _Line("decode", M, _C.MESSAGE_TOO_BIG, "A message beyond a decoding limit (section 8) is closed with 1009."),  # noqa: E501
    Rule.CHALLENGE_FIRST: _Line("handshake-order", M, _C.PROTOCOL_ERROR, "The server speaks first: a Challenge, unsolicited, whatever the method; the client sends its Handshake only after it, and the HandshakeResponse comes only after the Handshake (and the hmac Authenticate). Out of order is a violation, 1002."),  # noqa: E501
    Rule.NONCE_SIZE: _Line("handshake-order", M, _C.PROTOCOL_ERROR, "Nonces are 16 to 256 random bytes; a client closes a Challenge with another nonce size with 1002 before computing a proof."),  # noqa: E501
    Rule.HANDSHAKE_ONCE: _Line("handshake-order", M, _C.PROTOCOL_ERROR, "One Challenge and one Handshake per connection; a second is closed with 1002."),  # noqa: E501
    Rule.AUTH_METHOD: _Line("auth-proof", M, _C.WSP_AUTH_FAILED, "`Handshake.auth` is one of `Challenge.methods` (absent means `none`); another method is closed with 4001."),  # noqa: E501
    Rule.CAPABILITY_KNOWN: _Line("capability", M, _C.WSP_UNNEGOTIATED, "A Handshake offering a capability that is not in S.2's list is closed with 4007."),  # noqa: E501
    Rule.AUTHENTICATE: _Line("handshake-order", M, _C.PROTOCOL_ERROR, "Authenticate comes after the Handshake (the client MAY send both at once) and only when `auth` is `hmac`: one naming another method is closed with 4001; one before the Handshake, or once the session is accepted (a `jwt` or `none` Handshake is accepted at once), with 1002."),  # noqa: E501
    Rule.HMAC_PROOF: _Line("auth-proof", M, _C.WSP_AUTH_FAILED, "A wrong HMAC proof, or a client nonce shorter than 16 bytes, is closed with 4001."),  # noqa: E501
    Rule.JWT: _Line("token-time", M, _C.WSP_AUTH_FAILED, "A JWT that does not verify, has no `exp`, or is expired or not yet valid is closed with 4001; so is a session whose JWT passes its `exp`."),  # noqa: E501
    Rule.SERVER_PROOF: _Line("auth-proof", M, _C.WSP_AUTH_FAILED, "With `hmac` the client checks `server_proof`; a wrong or missing one is closed with 4001."),  # noqa: E501
    Rule.CAPABILITY_GRANTED: _Line("capability", M, _C.WSP_UNNEGOTIATED, "The server grants a subset of what was offered; a client closes a grant it never offered with 4007."),  # noqa: E501
    Rule.NOT_YET_ACTIVE: _Line("state", M, _C.POLICY_VIOLATION, "Nothing but the handshake messages and Close before the HandshakeResponse: anything else is closed with 1008."),  # noqa: E501
    Rule.HANDSHAKE_TIMEOUT: _Line("state", M, _C.WSP_HANDSHAKE_TIMEOUT, "A connection that has not finished the handshake in time is closed with 4002 (by the server; the client closes its own attempt with 4002 too)."),  # noqa: E501
    Rule.RESPONSE_IN_CLEAR: _Line("encrypted", M, _C.WSP_UNNEGOTIATED, "The HandshakeResponse is never ENCRYPTED, also on a resume; with `encrypt` granted every later message in both directions is ENCRYPTED under the new connection's keys, and one that is not is closed with 4007."),  # noqa: E501
    Rule.RESUME_TOKEN: _Line("resume-token", M, 0, "A resume token is opaque bytes (msgpack bin), sent back exactly as received. An unknown, expired, forged or another identity's token starts a new session (`resumed: false`); it is not an error."),  # noqa: E501
    Rule.RESUME_LAST_RECEIVED: _Line("sequence", M, _C.PROTOCOL_ERROR, "A `last_received` above the highest sequence the other side sent is closed with 1002 (both sides, on a resume)."),  # noqa: E501
    Rule.SESSION_ID: _Line("session-id", M, _C.PROTOCOL_ERROR, "After the handshake a header's session id is 0 (absent) or the session's id; any other is closed with 1002. v2 senders leave it out (S = 0)."),  # noqa: E501
    Rule.FLAG_NEGOTIATED: _Line("flag", M, _C.WSP_UNNEGOTIATED, "COMPRESSED needs the `compress` capability and ENCRYPTED `encrypt`; an ungranted flag is closed with 4007. ACK_REQUESTED needs no capability."),  # noqa: E501
    Rule.BATCH_NEGOTIATED: _Line("flag", M, _C.WSP_UNNEGOTIATED, "A Batch needs the `batch` capability; without it it is closed with 4007."),  # noqa: E501
    Rule.DECRYPTION: _Line("encrypted", M, _C.INVALID_DATA, "An ENCRYPTED payload that fails authentication under the receiver's key for that direction is closed with 1007."),  # noqa: E501
    Rule.DIRECTION: _Line("state", M, _C.PROTOCOL_ERROR, "Challenge, HandshakeResponse, Deliver, Subscribed, ContinuityLost and Response come only from the server; Handshake, Authenticate, Publish, Subscribe, Unsubscribe and Request only from the client; the wrong side's message is closed with 1002."),  # noqa: E501
    Rule.RESUME_RETIRED: _Line("state", M, _C.PROTOCOL_ERROR, "Resume (0x0204) is retired: resuming is part of the Handshake. A Resume message is closed with 1002."),  # noqa: E501
    Rule.SEQUENCE_GAP: _Line("sequence", M, _C.PROTOCOL_ERROR, "Sequenced messages (Publish, TextData, BinaryData, DeltaUpdate, Error) are numbered 1, 2, 3... per direction and session; a gap is closed with 1002."),  # noqa: E501
    Rule.SEQUENCE_DUPLICATE: _Line("sequence", M, 0, "A sequenced message whose number was already received is a retransmission: dropped, and acknowledged again."),  # noqa: E501
    Rule.ACK_RANGE: _Line("ack", M, _C.PROTOCOL_ERROR, "An Acknowledge covers only sequence numbers that were sent; one above is closed with 1002."),  # noqa: E501
    Rule.ACK_BACKWARDS: _Line("ack", S, 0, "Acknowledgments are cumulative and never go back; a receiver ignores one that does."),  # noqa: E501
    Rule.HEARTBEAT_REPLY: _Line("heartbeat", M, _C.PROTOCOL_ERROR, "A Heartbeat reply echoes the id of a probe the other side sent; a reply to a probe never sent is closed with 1002. Each side numbers its own probes."),  # noqa: E501
    Rule.HEARTBEAT_ANSWER: _Line("heartbeat", M, _C.WSP_HEARTBEAT_TIMEOUT, "A probe is answered at once with `reply: true` and the same id; a probe left unanswered for the heartbeat timeout ends the connection with 4006."),  # noqa: E501
    Rule.SILENCE: _Line("silence", M, _C.WSP_HEARTBEAT_TIMEOUT, "A side that hears nothing for the heartbeat timeout closes with 4006; the session stays resumable."),  # noqa: E501
    Rule.TOPIC_ALLOWED: _Line("state", M, _C.WSP_FORBIDDEN_TOPIC, "Publish and Subscribe stay within the credential's topics; outside them they are closed with 4003 before anything is acknowledged."),  # noqa: E501
    Rule.PUBLISH_ID: _Line("sequence", M, 0, "A Publish whose `id` the session already applied is acknowledged and applied only once (the server remembers the last 1,024 ids)."),  # noqa: E501
    Rule.SUBSCRIBED_FIRST: _Line("deliver", M, _C.PROTOCOL_ERROR, "A Deliver comes only for a topic whose Subscribed came first; otherwise it is closed with 1002."),  # noqa: E501
    Rule.DELIVER_ORDER: _Line("deliver", M, _C.PROTOCOL_ERROR, "Delivers of a topic have consecutive offsets in one epoch; a skipped offset or a new epoch without a ContinuityLost first is closed with 1002."),  # noqa: E501
    Rule.DELIVER_DUPLICATE: _Line("deliver", M, 0, "A Deliver whose offset the subscriber already has (a replay overlap) is dropped."),  # noqa: E501
    Rule.CONTINUITY: _Line("deliver", M, 0, "When history no longer covers a Subscribe's `from_offset` (or its epoch is gone) the server sends ContinuityLost before Subscribed; `Subscribed.next_offset` is the live end, and the replay covers `from_offset` (or `first_available`) up to `next_offset - 1`."),  # noqa: E501
    Rule.UNKNOWN_TYPE: _Line("unknown-type", M, 0, "An unknown message type is not a decoding error: the receiver answers an Error (code 1003) and goes on."),  # noqa: E501
    Rule.AFTER_CLOSE: _Line("after-close", M, 0, "After sending Close a side sends nothing but the WebSocket close; what it receives meanwhile is drained, not processed."),  # noqa: E501
    Rule.CLOSE_ANSWER: _Line("after-close", M, 0, "A side that receives Close answers with a Close of the same code (unless it sent one), then closes the WebSocket with that code."),  # noqa: E501
    Rule.REQUEST_ANSWER: _Line("state", M, 0, "Every Request gets one Response with the same id: `echo` returns its data; an unknown method has `status` 1003."),  # noqa: E501
    Rule.STATE: _Line("state", M, _C.PROTOCOL_ERROR, "A message the session state does not allow (table S.3) is closed with 1002; after a protocol error the session is failed and sends nothing but its Close."),  # noqa: E501
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A broken rule: its id, the close code it gets, and what happened."""

    rule: Rule
    message: str
    close_code: int

    def error(self) -> RemoteProtocolError:
        """The exception a live session raises for this verdict."""
        return RuleBroken(self)


class RuleBroken(RemoteProtocolError):
    """A peer broke a rule of the rule book (``rule``: the checklist line)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message, close_code=verdict.close_code)
        self.rule = verdict.rule


def broken(rule: Rule, message: str, code: int | None = None) -> Verdict:
    return Verdict(rule, message, rule.code if code is None else int(code))


# ---------------------------------------------------------------- direction
_SERVER_ONLY = frozenset({Challenge, HandshakeResponse, Deliver, Subscribed, ContinuityLost,
                          Response})
_CLIENT_ONLY = frozenset({Handshake, Authenticate, Publish, Subscribe, Unsubscribe, Request})


def check_direction(ptype: type[Payload], from_server: bool) -> Verdict | None:
    """Rules 25 and 26: each message type comes from its own side; Resume from none."""
    if ptype is Resume:
        return broken(Rule.RESUME_RETIRED, "Resume (0x0204) is retired: resume in the Handshake")
    if from_server and ptype in _CLIENT_ONLY:
        return broken(Rule.DIRECTION, f"{ptype.__name__} is not allowed from the server")
    if not from_server and ptype in _SERVER_ONLY:
        return broken(Rule.DIRECTION, f"{ptype.__name__} is not allowed from the client")
    return None


# ---------------------------------------------------------------- header and flags
def check_flags(flags: int, capabilities: tuple[str, ...] | frozenset[str]) -> Verdict | None:
    """Rule 22: COMPRESSED and ENCRYPTED only when negotiated."""
    if flags & Flags.COMPRESSED and "compress" not in capabilities:
        return broken(Rule.FLAG_NEGOTIATED, "COMPRESSED flag without the compress capability")
    if flags & Flags.ENCRYPTED and "encrypt" not in capabilities:
        return broken(Rule.FLAG_NEGOTIATED, "ENCRYPTED flag without the encrypt capability")
    return None


def check_sealed(flags: int) -> Verdict | None:
    """Rule 18: with encryption in use, every message after the HandshakeResponse is sealed."""
    if not flags & Flags.ENCRYPTED:
        return broken(Rule.RESPONSE_IN_CLEAR, "a message in clear after encryption began")
    return None


def check_batch(capabilities: tuple[str, ...] | frozenset[str]) -> Verdict | None:
    """Rule 23."""
    if "batch" not in capabilities:
        return broken(Rule.BATCH_NEGOTIATED, "Batch without the batch capability")
    return None


def check_session_id(header_id: int, session_id: int) -> Verdict | None:
    """Rule 21: a header session id is absent (0) or the session's."""
    if header_id and header_id != session_id:
        return broken(
            Rule.SESSION_ID, f"header session id {header_id}, the session is {session_id}"
        )
    return None


# ---------------------------------------------------------------- handshake
def check_capabilities_known(offered: tuple[str, ...], known: frozenset[str]) -> Verdict | None:
    """Rule 10."""
    unknown = sorted(set(offered) - known)
    if unknown:
        return broken(Rule.CAPABILITY_KNOWN, f"unknown capabilities offered: {unknown}")
    return None


def check_granted(granted: tuple[str, ...], offered: tuple[str, ...]) -> Verdict | None:
    """Rule 15."""
    stray = sorted(set(granted) - set(offered))
    if stray:
        return broken(Rule.CAPABILITY_GRANTED, f"granted capabilities never offered: {stray}")
    return None


def check_resume_claim(last_received: int, sent: int) -> Verdict | None:
    """Rule 20."""
    if last_received > sent:
        return broken(
            Rule.RESUME_LAST_RECEIVED,
            f"resume claims {last_received} received, only {sent} were sent",
        )
    return None


# ---------------------------------------------------------------- sequencing
def check_sequence(seq: int, last: int) -> Verdict | None:
    """Rules 27 and 28 for a sequenced message that is not ``last + 1``: None for a
    duplicate (drop it, acknowledge again), a verdict for a gap or a missing number."""
    if seq == 0:
        return broken(Rule.SEQUENCE_GAP, "a sequenced message without a sequence number")
    if seq <= last:
        return None
    return broken(Rule.SEQUENCE_GAP, f"sequence gap: expected {last + 1}, got {seq}")


def check_ack(seq: int, sent: int, sender: str = "peer") -> Verdict | None:
    """Rule 29: an Acknowledge covers only what was sent (``sender``: who sent them)."""
    if seq > sent:
        return broken(
            Rule.ACK_RANGE, f"Acknowledge of sequence {seq}, but the {sender} sent only {sent}"
        )
    return None


def check_ack_forward(seq: int, previous: int) -> Verdict | None:
    """Rule 30 (SHOULD: a live receiver ignores such an ack, an observer reports it)."""
    if seq < previous:
        return broken(
            Rule.ACK_BACKWARDS,
            f"acknowledgment went back from {previous} to {seq}",
            CloseCode.PROTOCOL_ERROR,
        )
    return None


# ---------------------------------------------------------------- heartbeats, silence
def unknown_probe(probe_id: int, prober: str) -> Verdict:
    """Rule 31: a Heartbeat reply to a probe the ``prober`` never sent (or that was
    already answered)."""
    return broken(
        Rule.HEARTBEAT_REPLY, f"Heartbeat reply to probe {probe_id}, which the {prober} "
        "never sent"
    )


def check_answer_time(
    probe_id: int, waited: float, timeout: float | None, *, inclusive: bool = False
) -> Verdict | None:
    """Rule 32: a probe answered (or still unanswered, ``inclusive``) after the
    heartbeat timeout."""
    if timeout is None or waited < timeout or (waited == timeout and not inclusive):
        return None
    return broken(
        Rule.HEARTBEAT_ANSWER,
        f"probe {probe_id} {'unanswered' if inclusive else 'answered'} after {waited:.1f} s",
    )


def check_silence(silent: float, timeout: float | None, who: str = "peer") -> Verdict | None:
    """Rule 33."""
    if timeout is not None and silent >= timeout:
        return broken(
            Rule.SILENCE, f"no message from the {who} for {silent:.1f} s (timeout {timeout:g} s)"
        )
    return None


# ---------------------------------------------------------------- topics
def check_deliver(
    topic: str, epoch: int, offset: int, cursor: tuple[int, int] | None, subscribed: bool
) -> Verdict | None:
    """Rules 36-38 for a Deliver that is not the cursor's next offset.

    ``cursor`` is (epoch, last offset) from Subscribed/ContinuityLost, None
    before them. A duplicate gets rule 38, whose close code is 0: drop it.
    """
    if cursor is None:
        if not subscribed:
            return broken(Rule.SUBSCRIBED_FIRST, f"Deliver for topic {topic!r} never subscribed")
        return broken(Rule.SUBSCRIBED_FIRST, f"Deliver for {topic!r} before Subscribed")
    known_epoch, last = cursor
    if epoch != known_epoch:
        return broken(
            Rule.DELIVER_ORDER,
            f"{topic!r} moved from epoch {known_epoch} to {epoch} without ContinuityLost",
        )
    if offset <= last:
        return broken(
            Rule.DELIVER_DUPLICATE, f"{topic!r} offset {offset} delivered again (already at {last})"
        )
    return broken(
        Rule.DELIVER_ORDER,
        f"{topic!r} jumped from offset {last} to {offset} without ContinuityLost",
    )


# ---------------------------------------------------------------- the table for the spec
def checklist_table() -> str:
    """docs/protocol.md's checklist table (a generated block, checked by a test)."""
    lines = [
        "| # | family | level | requirement | close code |",
        "| ---: | --- | --- | --- | ---: |",
    ]
    for rule, line in CHECKLIST.items():
        code = "HTTP 400" if line.code == 400 else (str(line.code) if line.code else "—")
        lines.append(
            f"| {int(rule)} | `{line.slug}` | {line.level.value} | {line.text} | {code} |"
        )
    return "\n".join(lines) + "\n"
