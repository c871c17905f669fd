"""``wsp fuzz --serve --suite wsp``: a malicious wsp server that fuzzes wsp *clients*.

Every incoming connection is one case. Case ``i`` plays the scenario
:func:`scenario_for` picks from the seed (a seeded permutation of
:data:`SCENARIOS` per block of ``len(SCENARIOS)`` cases, so a run of that many
cases plays each one once); its parameters (nonce sizes, offsets, flood sizes…)
come from ``random.Random(f"{seed}:{i}")``. The same seed always gives the same
sequence of scenarios and parameters.

A scenario breaks one line of the conformance checklist (docs/protocol.md, S.9)
from the server's side — a garbage Challenge, a forged ``server_proof``, a
Deliver with a hole… — and judges the client's reaction against what the line
demands: a close with the rule's code (a wsp Close, if any, with the same code,
then the WebSocket close), or, for the lines answered by no close, that the
client stays open and answers a Heartbeat probe within ``timeout``. What does
not match becomes a :class:`~wsproto_tools.fuzz.wsp.findings.Finding` (case =
connection index, step = the scenario's step, rule = the checklist line).

Between the attacks the server is an ordinary, honest one: it acknowledges
sequenced messages, answers probes, Subscribes (Subscribed), Requests (echo) and
Close (rule 42). A case whose client stays open ends with a WebSocket close 1001
(going away, resumable), so a reconnecting client comes back with its resume
token for the next case; a resume is answered with a new session (rule 19: an
unknown token is not an error), except in the ``forged-resume`` scenario.

A case is *skipped* (judged by nothing) when the client does not do what its
scenario needs: a Subscribe for the Deliver scenarios, a resume token of this
server's for ``forged-resume``, hmac authentication, or when it ends its own
session (Close 1000 or 1001) before the attack. What reaches the client's
application (each offset once, rule 38) cannot be seen from here: a harness
that reads the application's output checks it (tests/fuzz/test_wsp_serve.py).
"""

from __future__ import annotations

__all__ = [
    "SCENARIOS",
    "Phase",
    "Scenario",
    "ServeCaseResult",
    "plan",
    "scenario_for",
    "serve_wsp",
]

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any

import msgpack

from wsproto_tools.codec import (
    Acknowledge,
    Authenticate,
    Batch,
    BinaryData,
    Challenge,
    Cipher,
    Close,
    ContinuityLost,
    Deliver,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Limits,
    Message,
    Payload,
    Publish,
    Request,
    Response,
    Resume,
    Subscribe,
    Subscribed,
    TextData,
    Unknown,
    counter_nonces,
    decode,
    encode,
)
from wsproto_tools.codec.compression import compress
from wsproto_tools.codec.header import pack_v2, type_bytes
from wsproto_tools.codec.schema import V1_MAGIC, V1_STRUCT
from wsproto_tools.codec.varint import write_varint
from wsproto_tools.engine.auth import client_proof, server_proof
from wsproto_tools.engine.keys import derive_session_keys
from wsproto_tools.engine.rules import Rule
from wsproto_tools.exceptions import CloseCode, WspError
from wsproto_tools.fuzz.wsp.findings import Finding, Oracle
from wsproto_tools.transports.raw import RawWebSocket
from wsproto_tools.ws import (
    FrameParser,
    Opcode,
    UpgradeRequest,
    UpgradeResponse,
    build_response,
    encode_close,
    encode_frame,
    is_valid_close_code,
    parse_close,
    parse_http_head,
)

_C = CloseCode
#: what the server grants (a subset of the offer): never encrypt or compress, which
#: this server does not speak; those flags only appear as attacks
_GRANTABLE = ("ack", "batch", "pubsub", "delta")
#: client->server messages numbered in the sequenced stream (S.4)
_SEQUENCED = (Publish, TextData, BinaryData, DeltaUpdate, Error)
#: close codes a client may use when it sheds a flood (S.7) instead of keeping up
_FLOOD_CLOSES = frozenset(
    {
        _C.GOING_AWAY,
        _C.MESSAGE_TOO_BIG,
        _C.TRY_AGAIN_LATER,
        _C.WSP_RATE_LIMITED,
        _C.WSP_SLOW_CONSUMER,
    }
)
_TOKEN_PREFIX = b"wsp-fuzz:"
#: the checklist rule a decoding error of the client's breaks, by its close code
_DECODE_RULES = {
    int(_C.PROTOCOL_ERROR): Rule.HEADER,
    int(_C.INVALID_DATA): Rule.PAYLOAD,
    int(_C.MESSAGE_TOO_BIG): Rule.LIMITS,
}
_UNKNOWN_TYPE = 0x0350  # in no category's table: an unknown type (section 6)


class Phase(Enum):
    """Where a scenario strikes."""

    CHALLENGE = "challenge"  # instead of (or around) the Challenge
    RESPONSE = "response"  # in the HandshakeResponse
    ACTIVE = "active"  # after a good handshake


@dataclass(frozen=True, slots=True)
class Scenario:
    """One attack and the client reaction the spec demands.

    ``close_code`` is the code the client must close with (None: it must stay open
    and answer a Heartbeat probe); ``needs`` names what the client must do first
    for the scenario to apply (``subscribe``: a Subscribe; ``resume``: a Handshake
    with a resume token); otherwise the case is skipped.
    """

    name: str
    description: str
    rule: int | None
    expect: str
    phase: Phase = Phase.ACTIVE
    close_code: int | None = None
    needs: str = ""
    accept: tuple[int, ...] = ()  # other close codes that also meet the spec


def _closes(rule: Rule, code: int | None = None) -> tuple[int, int, str]:
    value = int(rule.code if code is None else code)
    return int(rule), value, f"closes with {value} (a wsp Close, if any, with the same code)"


def _scenario(
    name: str,
    description: str,
    rule: Rule,
    phase: Phase,
    *,
    code: int | None = None,
    needs: str = "",
    accept: tuple[int, ...] = (),
) -> Scenario:
    number, value, expect = _closes(rule, code)
    if accept:
        expect += " or " + ", ".join(str(c) for c in accept)
    return Scenario(name, description, number, expect, phase, value, needs, accept)


SCENARIOS: tuple[Scenario, ...] = (
    # ------------------------------------------------------------ the Challenge
    _scenario(
        "challenge-nonce-empty",
        "a Challenge whose nonce has 0 bytes",
        Rule.NONCE_SIZE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-nonce-15",
        "a Challenge whose nonce has 15 bytes",
        Rule.NONCE_SIZE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-nonce-257",
        "a Challenge whose nonce has 257 bytes",
        Rule.NONCE_SIZE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-wrong-kinds",
        "a Challenge whose fields have the wrong msgpack kinds",
        Rule.PAYLOAD,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-garbage",
        "random bytes that are no wsp header instead of a Challenge",
        Rule.HEADER,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-twice",
        "a second Challenge after the client's Handshake",
        Rule.HANDSHAKE_ONCE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "response-first",
        "a HandshakeResponse before any Challenge",
        Rule.CHALLENGE_FIRST,
        Phase.CHALLENGE,
    ),
    _scenario(
        "early-data",
        "a BinaryData between the Handshake and the HandshakeResponse",
        Rule.NOT_YET_ACTIVE,
        Phase.CHALLENGE,
    ),
    # ------------------------------------------------------------ the HandshakeResponse
    _scenario(
        "server-proof-wrong",
        "a HandshakeResponse with a wrong server_proof",
        Rule.SERVER_PROOF,
        Phase.RESPONSE,
    ),
    _scenario(
        "server-proof-missing",
        "a HandshakeResponse without server_proof",
        Rule.SERVER_PROOF,
        Phase.RESPONSE,
    ),
    _scenario(
        "grant-unoffered",
        "a HandshakeResponse granting a known capability never offered",
        Rule.CAPABILITY_GRANTED,
        Phase.RESPONSE,
    ),
    _scenario(
        "grant-unknown",
        "a HandshakeResponse granting an unknown capability",
        Rule.CAPABILITY_GRANTED,
        Phase.RESPONSE,
    ),
    _scenario(
        "response-encrypted",
        "an ENCRYPTED HandshakeResponse",
        Rule.RESPONSE_IN_CLEAR,
        Phase.RESPONSE,
    ),
    _scenario(
        "forged-resume",
        "resumed: true with a last_received above what the client sent",
        Rule.RESUME_LAST_RECEIVED,
        Phase.RESPONSE,
        needs="resume",
    ),
    # ------------------------------------------------------------ an active session
    _scenario(
        "response-twice",
        "a second HandshakeResponse in an active session",
        Rule.STATE,
        Phase.ACTIVE,
    ),
    _scenario("text-frame", "a text WebSocket message", Rule.BINARY_ONLY, Phase.ACTIVE),
    _scenario(
        "deliver-unsubscribed",
        "a Deliver for a topic never subscribed",
        Rule.SUBSCRIBED_FIRST,
        Phase.ACTIVE,
    ),
    _scenario(
        "deliver-hole",
        "Delivers that skip an offset without a ContinuityLost",
        Rule.DELIVER_ORDER,
        Phase.ACTIVE,
        needs="subscribe",
    ),
    _scenario(
        "deliver-epoch-change",
        "a Deliver of a new epoch without a ContinuityLost",
        Rule.DELIVER_ORDER,
        Phase.ACTIVE,
        needs="subscribe",
    ),
    Scenario(
        "deliver-repeat",
        "Delivers, then some of them again (a replay overlap)",
        int(Rule.DELIVER_DUPLICATE),
        "drops the repeats, stays open and answers a Heartbeat probe",
        Phase.ACTIVE,
        None,
        "subscribe",
    ),
    _scenario(
        "ack-above-sent", "an Acknowledge above what the client sent", Rule.ACK_RANGE, Phase.ACTIVE
    ),
    _scenario(
        "heartbeat-reply-unprobed",
        "a Heartbeat reply to a probe never sent",
        Rule.HEARTBEAT_REPLY,
        Phase.ACTIVE,
    ),
    Scenario(
        "unknown-type",
        "a message of an unknown type (0x0350)",
        int(Rule.UNKNOWN_TYPE),
        "answers an Error 1003 and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
    ),
    _scenario(
        "sequence-gap",
        "a sequenced BinaryData that skips a sequence number",
        Rule.SEQUENCE_GAP,
        Phase.ACTIVE,
    ),
    Scenario(
        "sequence-duplicate",
        "a sequenced BinaryData sent twice",
        int(Rule.SEQUENCE_DUPLICATE),
        "drops the repeat, acknowledges it again and stays open",
        Phase.ACTIVE,
    ),
    Scenario(
        "flood",
        "hundreds of valid sequenced messages in one write",
        None,
        "acknowledges them all and answers a Heartbeat probe (or closes with a "
        "documented code: 1001, 1009, 1013, 4004, 4005)",
        Phase.ACTIVE,
    ),
    Scenario(
        "flood-long",
        "over 10,000 valid sequenced data messages, never more than 1,024 unacknowledged",
        None,
        "keeps acknowledging and answers a Heartbeat probe: data the application does not "
        "read must not stall the session",
        Phase.ACTIVE,
    ),
    _scenario(
        "compressed-ungranted",
        "a small COMPRESSED message without the compress capability",
        Rule.FLAG_NEGOTIATED,
        Phase.ACTIVE,
    ),
    _scenario(
        "compression-bomb",
        "a COMPRESSED message (a DEFLATE bomb of 4-16 MiB) without the compress capability",
        Rule.FLAG_NEGOTIATED,
        Phase.ACTIVE,
        # not 1009: the flag is in the header, and a payload under a flag that was
        # never granted is refused, not inflated (section 1, rule 22)
    ),
    _scenario(
        "batch-ungranted", "a Batch when batch was not granted", Rule.BATCH_NEGOTIATED, Phase.ACTIVE
    ),
    _scenario(
        "session-id-foreign",
        "a header session id other than the session's",
        Rule.SESSION_ID,
        Phase.ACTIVE,
    ),
    _scenario(
        "wrong-direction",
        "a Publish (a client-only message) from the server",
        Rule.DIRECTION,
        Phase.ACTIVE,
    ),
    _scenario("resume-retired", "a Resume message (retired)", Rule.RESUME_RETIRED, Phase.ACTIVE),
    _scenario(
        "header-noncanonical",
        "a header that does not decode in canonical form (an over-long sequence varint)",
        Rule.HEADER,
        Phase.ACTIVE,
    ),
    _scenario(
        "text-invalid-utf8",
        "a sequenced TextData whose payload is not UTF-8",
        Rule.PAYLOAD,
        Phase.ACTIVE,
    ),
    Scenario(
        "deliver-continuity-lost",
        "Delivers, a ContinuityLost, then a Deliver after the announced gap",
        int(Rule.CONTINUITY),
        "accepts the gap ContinuityLost announced and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
        None,
        "subscribe",
    ),
    Scenario(
        "continuity-lost-backwards",
        "a ContinuityLost whose first_available the subscriber already has, then the "
        "Delivers from there on again",
        int(Rule.DELIVER_DUPLICATE),
        "drops the offsets it already has (delivers each offset once) and stays open, "
        "or closes with 1002 (a ContinuityLost that loses nothing)",
        Phase.ACTIVE,
        None,
        "subscribe",
        (int(_C.PROTOCOL_ERROR),),
    ),
    Scenario(
        "ack-backwards",
        "an Acknowledge below an earlier one",
        int(Rule.ACK_BACKWARDS),
        "ignores it and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
    ),
    Scenario(
        "server-error",
        "a sequenced Error (a problem that does not end the session, section 7.1)",
        None,
        "acknowledges it and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
    ),
    Scenario(
        "wsp-close",
        "a wsp Close from the server",
        int(Rule.CLOSE_ANSWER),
        "answers a Close of the same code, then closes the WebSocket with it",
        Phase.ACTIVE,
    ),
    Scenario(
        "baseline",
        "a valid session: nothing wrong",
        None,
        "stays open and answers a Heartbeat probe",
        Phase.ACTIVE,
    ),
)

_BY_NAME = {s.name: s for s in SCENARIOS}


def _pool(names: Sequence[str] | None) -> tuple[Scenario, ...]:
    if names is None:
        return SCENARIOS
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}")
    return tuple(_BY_NAME[n] for n in names)


def scenario_for(seed: int, index: int, names: Sequence[str] | None = None) -> Scenario:
    """The scenario case ``index`` plays: a seeded permutation of the pool per block."""
    pool = _pool(names)
    block, position = divmod(index, len(pool))
    order = list(range(len(pool)))
    random.Random(f"{seed}:block:{block}").shuffle(order)
    return pool[order[position]]


def plan(seed: int, cases: int, names: Sequence[str] | None = None) -> list[str]:
    """The names of the scenarios of cases 0 .. cases-1."""
    return [scenario_for(seed, i, names).name for i in range(cases)]


@dataclass
class ServeCaseResult:
    """What one connection (one case) showed."""

    index: int
    scenario: str
    findings: list[Finding]
    duration: float
    observed: str
    rule: int | None = None
    expected: str = ""
    peer: str = ""
    subprotocol: str = ""
    skipped: bool = False  # the client did not do what the scenario needs
    close_code: int | None = None  # the client's WebSocket close code (None: none seen)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "scenario": self.scenario,
            "rule": self.rule,
            "expected": self.expected,
            "observed": self.observed,
            "duration": round(self.duration, 4),
            "peer": self.peer,
            "subprotocol": self.subprotocol,
            "skipped": self.skipped,
            "close_code": self.close_code,
            "findings": [f.to_json() for f in self.findings],
        }


# ================================================================ the wire
@dataclass(frozen=True, slots=True)
class _Closed:
    """The client's end: its close frame code (None: no code), or a drop."""

    code: int | None
    reason: str
    dropped: bool


class _Link:
    """One upgraded connection, server side: frames in and out, wsp decoded."""

    def __init__(self, conn: RawWebSocket, version: int, limits: Limits) -> None:
        self.conn = conn
        self.version = version
        self.limits = limits
        self.parser = FrameParser(max_payload=limits.max_message + 64)
        self.pending: list[Any] = []  # frames parsed, not yet handled
        self.parts: list[bytes] = []
        self.closed: _Closed | None = None
        self.sent_close = False
        #: what the client sent that is no wsp message: (checklist rule or None, what)
        self.bad: list[tuple[int | None, str]] = []

    async def send(self, data: bytes) -> None:
        if self.closed is not None:
            return
        try:
            await self.conn.send(data)
        except (WspError, OSError):
            self.closed = _Closed(None, "", True)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        await self.send(encode_frame(opcode, payload))

    async def close(self, code: int, reason: str = "") -> None:
        if not self.sent_close:
            self.sent_close = True
            await self.send_frame(Opcode.CLOSE, encode_close(code, reason))

    async def next(self, timeout: float) -> Message | _Closed | None:
        """The client's next wsp message or its end; None when nothing came in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.closed is not None:
                return self.closed
            while self.pending:
                got = await self._frame(self.pending.pop(0))
                if got is not None:
                    return got
            left = deadline - loop.time()
            if left <= 0:
                return None
            data = await self.conn.read(left)
            if data is None:
                return None
            if not data:
                self.closed = _Closed(None, "", True)
                continue
            try:
                self.pending.extend(self.parser.feed(data))
            except WspError as error:
                self.bad.append((None, f"a bad WebSocket frame: {error}"))
                self.closed = _Closed(None, "", True)

    async def _frame(self, frame: Any) -> Message | _Closed | None:
        opcode = frame.opcode
        if opcode == Opcode.PING:
            await self.send_frame(Opcode.PONG, frame.payload)
            return None
        if opcode == Opcode.PONG:
            return None
        if opcode == Opcode.CLOSE:
            code, reason, _ = parse_close(frame.payload)
            if not self.sent_close:  # answer the closing handshake (RFC 6455 5.5.1)
                self.sent_close = True
                await self.send_frame(Opcode.CLOSE, frame.payload[:2])
            self.closed = _Closed(code, reason.decode("utf-8", "replace"), False)
            return self.closed
        if opcode == Opcode.TEXT:
            self.bad.append((int(Rule.BINARY_ONLY), "a text message"))
            return None
        self.parts.append(frame.payload)
        if not frame.fin:
            return None
        data, self.parts = b"".join(self.parts), []
        try:
            return decode(data, version=self.version, limits=self.limits)
        except WspError as error:
            rule = _DECODE_RULES.get(int(error.close_code), Rule.HEADER)
            self.bad.append((int(rule), f"an undecodable message: {error}"))
            return None

    def wire(self, msg: Message, cipher: Cipher | None = None) -> bytes:
        return encode_frame(Opcode.BINARY, encode(msg, version=self.version, cipher=cipher))


def _raw_message(
    version: int, code: int, body: bytes, flags: int = 0, seq: int = 0, session_id: int = 0
) -> bytes:
    """A header written around ``body`` as it is (for payloads the codec refuses)."""
    if version == 2:
        return pack_v2(code, flags, seq) + body
    return struct.pack(V1_STRUCT, V1_MAGIC, 1, flags, code, session_id, seq, 0, len(body)) + body


@lru_cache(maxsize=4)
def _bomb(size: int) -> bytes:
    """``size`` zero bytes as one raw DEFLATE stream with the wsp dictionary."""
    return compress(bytes(size))


async def _accept(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
) -> tuple[RawWebSocket | None, str]:
    """Answer the upgrade choosing wsp.v2 (else wsp.v1); (None, why) when refused."""
    buf = b""
    try:
        async with asyncio.timeout(timeout):
            while (head := parse_http_head(buf)) is None:
                chunk = await reader.read(65536)
                if not chunk:
                    return None, "hung up during the upgrade"
                buf += chunk
                if len(buf) > 65536:
                    return None, "an upgrade request over 64 KiB"
        request = UpgradeRequest.from_head(head)
    except (TimeoutError, WspError, OSError) as error:
        return None, f"no upgrade request: {error or type(error).__name__}"
    chosen = next((p for p in ("wsp.v2", "wsp.v1") if p in request.subprotocols), None)
    if not request.is_websocket or request.key is None or chosen is None:
        with contextlib.suppress(Exception):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        return None, f"no wsp subprotocol offered ({', '.join(request.subprotocols) or 'none'})"
    response = build_response(request.key, subprotocol=chosen)
    try:
        writer.write(response)
        await writer.drain()
    except OSError as error:
        return None, f"connection lost during the upgrade: {error}"
    response_head = parse_http_head(response)
    assert response_head is not None
    conn = RawWebSocket(
        reader,
        writer,
        role="server",
        request=request,
        response=UpgradeResponse.from_head(response_head),
        pending=buf[head.length :],
    )
    return conn, chosen


# ================================================================ one case
@dataclass
class _Case:
    """One connection playing one scenario: an honest server around one attack."""

    index: int
    scenario: Scenario
    link: _Link
    rng: random.Random
    secret: bytes
    timeout: float
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: bool = False
    session_id: int = 0
    nonce: bytes = b""
    client_nonce: bytes = b""
    offered: tuple[str, ...] = ()
    granted: tuple[str, ...] = ()
    resume_token: bytes | None = None
    send_seq: int = 0  # our sequenced messages
    recv_seq: int = 0  # the client's, received in order
    acked: int = 0  # the highest Acknowledge from the client
    probes: int = 0
    replies: set[int] = field(default_factory=set)
    errors: list[Error] = field(default_factory=list)
    wsp_closes: list[int] = field(default_factory=list)
    subscribed: dict[str, tuple[int, int]] = field(default_factory=dict)  # topic -> epoch, next
    held: list[Subscribe] = field(default_factory=list)  # Subscribes not answered yet
    hold_subscribe: bool = False  # hold Subscribes instead of answering them
    active: bool = False  # the HandshakeResponse went out
    sent_wsp_close: bool = False
    seen: list[str] = field(default_factory=list)  # type names of the client's messages

    # ------------------------------------------------------------ reporting
    def finding(
        self,
        oracle: Oracle,
        step: int,
        message: str,
        expected: str,
        observed: str,
        rule: int | None = None,
    ) -> None:
        self.findings.append(
            Finding(
                oracle,
                self.index,
                step,
                message,
                expected,
                observed,
                self.scenario.rule if rule is None else rule,
            )
        )

    # ------------------------------------------------------------ sending
    def message(
        self,
        payload: Payload,
        *,
        seq: int | None = None,
        flags: int = 0,
        session_id: int | None = None,
        timestamp: int = 0,
    ) -> Message:
        if seq is None:
            if isinstance(payload, _SEQUENCED):
                self.send_seq += 1
                seq = self.send_seq
                flags |= Flags.ACK_REQUESTED
            else:
                seq = 0
        if session_id is None:  # v1 headers carry the session's id after the handshake
            session_id = (
                self.session_id
                if self.link.version == 1 and self.active and not isinstance(payload, Deliver)
                else 0
            )
        return Message(payload, seq, session_id, timestamp, Flags(flags))

    async def send(self, payload: Payload, **kw: Any) -> None:
        await self.link.send(self.link.wire(self.message(payload, **kw)))

    async def send_raw(self, code: int, body: bytes, flags: int) -> None:
        """A sequenced message whose payload is written as it is (after the header)."""
        self.send_seq += 1
        session_id = self.session_id if self.link.version == 1 else 0
        data = _raw_message(self.link.version, code, body, int(flags), self.send_seq, session_id)
        await self.link.send_frame(Opcode.BINARY, data)

    async def send_many(self, payloads: Sequence[Payload]) -> None:
        await self.link.send(b"".join(self.link.wire(self.message(p)) for p in payloads))

    async def probe(self) -> int:
        self.probes += 1
        await self.send(Heartbeat(self.probes, False), timestamp=int(time.time() * 1e6))
        return self.probes

    # ------------------------------------------------------------ receiving
    async def pump(self, until: Callable[[], bool], timeout: float | None = None) -> bool:
        """Answer the client as an honest server until ``until()`` holds (True), the
        client is gone or ``timeout`` passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        while not until():
            left = deadline - loop.time()
            if left <= 0:
                return False
            got = await self.link.next(left)
            if got is None:
                continue
            if isinstance(got, _Closed):
                return until()
            await self.on_message(got)
        return True

    async def on_message(self, msg: Message) -> None:
        payload = msg.payload
        if isinstance(payload, Batch):  # granted when offered: each item on its own
            for item in payload.messages:
                await self.on_message(item)
            return
        name = type(payload).__name__
        self.seen.append(name)
        if msg.flags & (Flags.COMPRESSED | Flags.ENCRYPTED):
            self.finding(
                Oracle.UNDOCUMENTED,
                -2,
                f"client sent {name}",
                "no COMPRESSED or ENCRYPTED flag (never granted)",
                f"flags {int(msg.flags)}",
                int(Rule.FLAG_NEGOTIATED),
            )
            return
        if isinstance(payload, Close):
            self.wsp_closes.append(payload.code)
            if not self.sent_wsp_close and not self.link.sent_close:
                # rule 42: the same code back, then the WebSocket close with it
                await self.send(Close(payload.code, "closing"))
                sendable = is_valid_close_code(payload.code)
                await self.link.close(payload.code if sendable else int(_C.PROTOCOL_ERROR))
            return
        if isinstance(payload, Heartbeat):
            if payload.reply:
                if not 1 <= payload.id <= self.probes:
                    self.finding(
                        Oracle.UNDOCUMENTED,
                        -2,
                        "client sent a Heartbeat reply",
                        "replies to this server's probes only",
                        f"a reply to probe {payload.id} (probes sent: {self.probes})",
                        int(Rule.HEARTBEAT_REPLY),
                    )
                self.replies.add(payload.id)
            else:
                await self.send(Heartbeat(payload.id, True), timestamp=int(time.time() * 1e6))
            return
        if isinstance(payload, _SEQUENCED):
            if msg.sequence == self.recv_seq + 1:
                self.recv_seq = msg.sequence
            elif msg.sequence > self.recv_seq + 1:
                self.finding(
                    Oracle.UNDOCUMENTED,
                    -2,
                    f"client sent {name} seq {msg.sequence}",
                    f"sequence {self.recv_seq + 1}",
                    f"sequence {msg.sequence}",
                    int(Rule.SEQUENCE_GAP),
                )
            if isinstance(payload, Error):
                self.errors.append(payload)
            if self.active:
                await self.send(Acknowledge(self.recv_seq))
            return
        if isinstance(payload, Acknowledge):
            self.acked = max(self.acked, payload.sequence)
            return
        if isinstance(payload, Subscribe):
            if self.hold_subscribe or not self.active:
                self.held.append(payload)
                return
            await self.answer_subscribe(payload)
            return
        if isinstance(payload, Request):
            known = payload.method == "echo"
            await self.send(
                Response(
                    payload.id,
                    payload.data if known else b"",
                    0 if known else int(_C.UNSUPPORTED_DATA),
                )
            )
            return
        if isinstance(payload, Handshake | Authenticate) and self.active:
            self.finding(
                Oracle.UNDOCUMENTED,
                -2,
                f"client sent {name}",
                "one Handshake per connection",
                f"a {name} after the handshake",
                int(Rule.HANDSHAKE_ONCE),
            )

    async def answer_subscribe(self, subscribe: Subscribe) -> tuple[int, int]:
        """Subscribed at a new epoch's live end; for a Subscribe from an offset a
        ContinuityLost first (rule 39: this server keeps no history, every session
        is new, so the epoch the client names is gone)."""
        topic = subscribe.topic
        epoch = self.rng.randrange(1, 1 << 16)
        next_offset = self.rng.randrange(1, 1 << 20)
        self.subscribed[topic] = (epoch, next_offset)
        if subscribe.from_offset is not None:
            await self.send(ContinuityLost(topic, epoch, subscribe.from_offset, next_offset))
        await self.send(Subscribed(topic, epoch, next_offset))
        return epoch, next_offset

    # ------------------------------------------------------------ judging
    async def expect_close(self, step: int, what: str, code: int) -> None:
        """The client must close with ``code`` (rule of the scenario)."""
        if self.ended_itself():
            self.skip("the client ended the session itself before the attack")
            return
        await self.pump(lambda: False)
        closed = self.link.closed
        expected = f"close {code}"
        if closed is None:
            self.finding(
                Oracle.CLOSE_CODE, step, what, expected, f"still open after {self.timeout:g} s"
            )
            return
        if closed.dropped:
            self.finding(Oracle.CLOSE_CODE, step, what, expected, "dropped without close")
            return
        got = closed.code
        for wsp in self.wsp_closes:
            if wsp != got:
                self.finding(
                    Oracle.UNDOCUMENTED,
                    step,
                    what,
                    "a wsp Close with the WebSocket close's code",
                    f"wsp Close {wsp}, then close {got}",
                    int(Rule.CLOSE_ANSWER),
                )
        if got != code and got not in self.scenario.accept:
            oracle = Oracle.CLOSE_CODE if _documented(got) else Oracle.UNDOCUMENTED
            self.finding(
                oracle,
                step,
                what,
                expected,
                f"close {got}" + (f" ({closed.reason})" if closed.reason else ""),
            )

    async def expect_open(
        self, step: int, what: str, allowed: frozenset[int] = frozenset()
    ) -> bool:
        """The client must stay open and answer a Heartbeat probe in time."""
        if self.link.closed is None and not self.wsp_closes:
            pid = await self.probe()
            await self.pump(lambda: pid in self.replies or bool(self.wsp_closes))
            if pid in self.replies:
                return True
        if self.ended_itself():  # a client may end its session whenever it likes
            self.skip("the client ended the session itself")
            return False
        closed = self.link.closed
        if closed is None:
            self.finding(
                Oracle.LIVENESS,
                step,
                what,
                f"a Heartbeat reply within {self.timeout:g} s",
                "no reply",
            )
            return False
        if closed.dropped:
            observed = "dropped without close"
        else:
            observed = f"close {closed.code}" + (f" ({closed.reason})" if closed.reason else "")
            if closed.code in allowed:
                self.notes.append(f"closed with the documented {closed.code}")
                return False
        self.finding(Oracle.UNDOCUMENTED, step, what, "stays open", observed)
        return False

    def ended_itself(self) -> bool:
        """Whether the client closed in order (1000 or 1001) on its own."""
        if self.wsp_closes:
            return self.wsp_closes[0] in (_C.NORMAL, _C.GOING_AWAY)
        closed = self.link.closed
        return closed is not None and closed.code in (_C.NORMAL, _C.GOING_AWAY)

    def security_after_response(self, step: int, what: str, before: int) -> None:
        """The client must not go on with a server that did not authenticate."""
        went_on = [n for n in self.seen[before:] if n not in ("Close",)]
        if went_on:
            self.finding(
                Oracle.SECURITY, step, what, "nothing but a Close", f"sent {', '.join(went_on[:5])}"
            )

    # ------------------------------------------------------------ the handshake
    async def challenge(self, nonce: bytes | None = None) -> Handshake | None:
        """Send a Challenge and read the client's Handshake (+ Authenticate)."""
        self.nonce = self.rng.randbytes(self.rng.randrange(16, 65)) if nonce is None else nonce
        await self.send(Challenge(self.nonce, ("hmac",)))
        return await self.read_hello()

    async def hello_item(
        self, msg: Message, hello: list[Handshake], proofs: list[Authenticate]
    ) -> None:
        if isinstance(msg.payload, Handshake):
            self.seen.append("Handshake")
            hello.append(msg.payload)
        elif isinstance(msg.payload, Authenticate):
            self.seen.append("Authenticate")
            proofs.append(msg.payload)
        else:
            await self.on_message(msg)

    async def read_hello(self) -> Handshake | None:
        hello: list[Handshake] = []
        proofs: list[Authenticate] = []

        def arrived() -> bool:
            return bool(hello) and (hello[0].auth != "hmac" or bool(proofs))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not arrived():
            got = await self.link.next(max(0.0, deadline - loop.time()))
            if got is None or isinstance(got, _Closed):
                break
            items = got.payload.messages if isinstance(got.payload, Batch) else (got,)
            for item in items:
                await self.hello_item(item, hello, proofs)
        if not arrived():
            closed = self.link.closed
            if closed is not None and closed.code == _C.WSP_AUTH_FAILED:
                # a client without the shared secret cannot answer an hmac Challenge
                self.skip("the client refused the Challenge with 4001 (it cannot use hmac)")
                return None
            observed = (
                "no Handshake"
                if closed is None
                else "dropped without close"
                if closed.dropped
                else f"close {closed.code}" + (f" ({closed.reason})" if closed.reason else "")
            )
            oracle = Oracle.LIVENESS if closed is None else Oracle.UNDOCUMENTED
            self.finding(
                oracle,
                -1,
                "a valid Challenge",
                "a Handshake (and Authenticate)",
                observed,
                int(Rule.CHALLENGE_FIRST),
            )
            return None
        hs = hello[0]
        self.client_nonce = hs.client_nonce or b""
        self.offered = tuple(hs.capabilities)
        self.resume_token = hs.resume_token
        if hs.auth == "hmac":
            if proofs[0].proof != client_proof(self.secret, self.nonce, self.client_nonce):
                self.finding(
                    Oracle.SECURITY,
                    -1,
                    "Authenticate",
                    "an HMAC proof under the shared secret",
                    "a proof that does not verify",
                    int(Rule.HMAC_PROOF),
                )
                return None
        elif hs.auth != "hmac":
            self.finding(
                Oracle.SECURITY,
                -1,
                "Handshake",
                "auth hmac (the only method offered)",
                f"auth {hs.auth!r}",
                int(Rule.AUTH_METHOD),
            )
            return None
        return hs

    def response(self, withhold: tuple[str, ...] = (), **fields: Any) -> HandshakeResponse:
        """A valid HandshakeResponse for a new session (``fields`` replace its values;
        ``withhold``: offered capabilities not granted)."""
        self.session_id = self.rng.randrange(1, 1 << 63)
        values: dict[str, Any] = {
            "session_id": self.session_id,
            "capabilities": tuple(c for c in self.offered if c in _GRANTABLE and c not in withhold),
            "resume_token": _TOKEN_PREFIX
            + self.session_id.to_bytes(8, "big")
            + self.rng.randbytes(16),
            "server_nonce": self.nonce,
            "heartbeat_ms": 15000,
            "window": 1024,
            "resumed": False,
            "last_received": 0,
            "server_proof": server_proof(self.secret, self.nonce, self.client_nonce),
        }
        values.update(fields)
        self.granted = tuple(values["capabilities"])
        return HandshakeResponse(**values)

    async def handshake(self, withhold: tuple[str, ...] = ()) -> bool:
        """A complete, valid handshake (``withhold``: capabilities not granted)."""
        if await self.challenge() is None:
            return False
        await self.send(self.response(withhold))
        self.active = True
        return True

    async def wait_subscribe(self) -> tuple[str, int, int] | None:
        """The client's first subscription: (topic, epoch, next offset), answered."""
        self.hold_subscribe = True
        await self.pump(lambda: bool(self.held))
        self.hold_subscribe = False
        if not self.held:
            return None
        held, self.held = self.held, []
        answers = [await self.answer_subscribe(subscribe) for subscribe in held]
        return held[0].topic, *answers[0]

    def going_on(self) -> bool:
        """Whether the client is still in the session (no close of any kind)."""
        return self.link.closed is None and not self.wsp_closes

    def skip(self, why: str) -> None:
        self.skipped = True
        self.notes.append(why)

    async def finish(self) -> None:
        """End a case whose client stays open: WebSocket close 1001 (resumable)."""
        if self.link.closed is None:
            await self.link.close(int(_C.GOING_AWAY), "fuzz case over")
            await self.pump(lambda: False, min(self.timeout, 1.0))


def _documented(code: int | None) -> bool:
    return (
        code is not None
        and code in {int(c) for c in CloseCode}
        and code not in (_C.NO_STATUS, _C.ABNORMAL, _C.INTERNAL_ERROR)
        and is_valid_close_code(code)
    )


# ================================================================ the scenarios, played
#: a scenario's whole run over one connection
Player = Callable[[_Case], Awaitable[None]]
#: sends a scenario's attack; False when there is nothing to judge (the handshake failed)
Attack = Callable[[_Case], Awaitable[bool]]


async def _play(case: _Case) -> None:
    await _PLAYERS[case.scenario.name](case)


async def _expect_scenario_close(case: _Case) -> None:
    code = case.scenario.close_code
    assert code is not None, case.scenario
    await case.expect_close(0, case.scenario.description, code)


def _closing(attack: Attack) -> Player:
    """A scenario the client must answer with the scenario's close code."""

    async def play(case: _Case) -> None:
        if await attack(case):
            await _expect_scenario_close(case)

    return play


def _active(player: Player, withhold: tuple[str, ...] = ()) -> Player:
    """``player`` after a complete, valid handshake (``withhold``: never granted)."""

    async def play(case: _Case) -> None:
        if await case.handshake(withhold=withhold):
            await player(case)

    return play


async def _new_session_instead(case: _Case, why: str) -> None:
    """The scenario does not apply to this client: an honest session, not judged."""
    case.skip(why)
    await case.send(case.response())
    case.active = True
    await case.expect_open(0, "a new session instead")
    await case.finish()


async def _stays_open(
    case: _Case, what: str = "", allowed: frozenset[int] = frozenset(), step: int = 1
) -> None:
    """The client must stay open (or close with one of ``allowed``); then the case ends."""
    if await case.expect_open(step, what or case.scenario.description, allowed):
        await case.finish()


# ------------------------------------------------------------ the Challenge
def _bad_nonce(size: int) -> Player:
    async def play(case: _Case) -> None:
        await case.send(Challenge(case.rng.randbytes(size), ("hmac",)))
        await _expect_scenario_close(case)
        if "Authenticate" in case.seen:  # rule 7: before computing a proof
            what = case.scenario.description
            case.finding(Oracle.SECURITY, 0, what, "no proof over a bad nonce", "an Authenticate")

    return play


async def _challenge_wrong_kinds(case: _Case) -> bool:
    rng = case.rng
    bodies: list[dict[str, Any]] = [
        {"nonce": rng.randbytes(16).hex(), "methods": ["hmac"]},  # str for bytes
        {"nonce": rng.randrange(1 << 30), "methods": ["hmac"]},  # int for bytes
        {"nonce": rng.randbytes(16), "methods": "hmac"},  # str for an array
        {"nonce": rng.randbytes(16), "methods": [1, 2]},  # ints in a str array
        {"methods": ["hmac"]},  # the required nonce missing
    ]
    body = msgpack.packb(rng.choice(bodies), use_bin_type=True)
    await case.link.send_frame(Opcode.BINARY, _raw_message(case.link.version, Challenge.TYPE, body))
    return True


async def _challenge_garbage(case: _Case) -> bool:
    rng = case.rng  # a first byte that is neither v1's 0xD1 nor a v2 head byte
    first = rng.choice([*range(0x00, 0x40), *range(0x80, 0xD1), *range(0xD2, 0x100)])
    await case.link.send_frame(Opcode.BINARY, bytes((first,)) + rng.randbytes(rng.randrange(64)))
    return True


async def _challenge_twice(case: _Case) -> bool:
    if await case.challenge() is None:
        return False
    await case.send(Challenge(case.rng.randbytes(16), ("hmac",)))
    return True


async def _response_first(case: _Case) -> bool:
    case.nonce, case.client_nonce = case.rng.randbytes(16), case.rng.randbytes(16)
    await case.send(case.response(server_proof=case.rng.randbytes(32)))
    return True


async def _early_data(case: _Case) -> bool:
    if await case.challenge() is None:
        return False
    await case.send(BinaryData(case.rng.randbytes(8)), seq=1, flags=Flags.ACK_REQUESTED)
    return True


# ------------------------------------------------------------ the HandshakeResponse
#: the forged answer to a client's Handshake, or why the scenario does not apply
Forge = Callable[[_Case, Handshake], HandshakeResponse | str]


def _answering(forge: Forge, *, encrypted: bool = False, authenticates: bool = False) -> Player:
    async def play(case: _Case) -> None:
        hello = await case.challenge()
        if hello is None:
            return
        answer = forge(case, hello)
        if isinstance(answer, str):
            await _new_session_instead(case, answer)
            return
        start = len(case.seen)
        if encrypted:
            keys = derive_session_keys(case.secret, case.nonce, case.client_nonce)
            cipher = Cipher(keys.server_to_client, counter_nonces(b"wsps"))
            await case.link.send(
                case.link.wire(case.message(answer, flags=Flags.ENCRYPTED), cipher)
            )
        else:
            await case.send(answer)
        await _expect_scenario_close(case)
        if authenticates:  # the client must not go on with a server that did not prove itself
            case.security_after_response(0, case.scenario.description, start)

    return play


def _forged_resume(case: _Case, hello: Handshake) -> HandshakeResponse | str:
    token = hello.resume_token or b""
    end = len(_TOKEN_PREFIX) + 8
    if not token.startswith(_TOKEN_PREFIX) or len(token) < end:
        return "the client offered no resume token of ours (it did not reconnect)"
    session_id = int.from_bytes(token[len(_TOKEN_PREFIX) : end], "big")
    forged = (1 << 20) + case.rng.randrange(1 << 20)  # far above anything it sent
    answer = case.response(session_id=session_id, resumed=True, last_received=forged)
    case.session_id = session_id
    return answer


def _wrong_proof(case: _Case, hello: Handshake) -> HandshakeResponse | str:
    return case.response(server_proof=case.rng.randbytes(32))


def _missing_proof(case: _Case, hello: Handshake) -> HandshakeResponse | str:
    return case.response(server_proof=None)


def _grant_unoffered(case: _Case, hello: Handshake) -> HandshakeResponse | str:
    known = ("compress", "encrypt", "delta", "batch", "pubsub")
    choices = [c for c in known if c not in case.offered]
    if not choices:
        return "the client offered every capability"
    granted = [c for c in case.offered if c in _GRANTABLE]
    return case.response(capabilities=(*granted, case.rng.choice(choices)))


def _grant_unknown(case: _Case, hello: Handshake) -> HandshakeResponse | str:
    granted = [c for c in case.offered if c in _GRANTABLE]
    unknown = case.rng.choice(("teleport", "quantum", "ACK", "pubsub2", ""))
    return case.response(capabilities=(*granted, unknown))


def _honest(case: _Case, hello: Handshake) -> HandshakeResponse | str:
    return case.response()


# ------------------------------------------------------------ an active session: closes
async def _text_frame(case: _Case) -> bool:
    await case.link.send_frame(Opcode.TEXT, b"wsp travels in binary frames")
    return True


async def _response_twice(case: _Case) -> bool:
    session_id = case.session_id
    await case.send(case.response(session_id=session_id))
    case.session_id = session_id
    return True


async def _deliver_unsubscribed(case: _Case) -> bool:
    rng = case.rng
    topic = f"never-subscribed-{rng.randrange(1 << 20)}"
    await case.send(Deliver(topic, rng.randrange(1, 100), rng.randrange(1, 100), b"x"))
    return True


async def _ack_above_sent(case: _Case) -> bool:
    # far above anything the client can have sent (some may still be in flight)
    await case.send(Acknowledge(case.recv_seq + 1000 + case.rng.randrange(1 << 16)))
    return True


async def _reply_unprobed(case: _Case) -> bool:
    probe = case.probes + 1 + case.rng.randrange(1000)
    await case.send(Heartbeat(probe, True), timestamp=int(time.time() * 1e6))
    return True


async def _sequence_gap(case: _Case) -> bool:
    seq = case.send_seq + case.rng.randrange(2, 10)
    await case.send(BinaryData(case.rng.randbytes(8)), seq=seq, flags=Flags.ACK_REQUESTED)
    return True


async def _compressed_ungranted(case: _Case) -> bool:
    text = b"wsp fuzz: " + case.rng.randbytes(case.rng.randrange(8, 64)).hex().encode()
    await case.send_raw(BinaryData.TYPE, compress(text), Flags.COMPRESSED | Flags.ACK_REQUESTED)
    return True


async def _compression_bomb(case: _Case) -> bool:
    size = case.rng.choice((4, 8, 16)) << 20
    await case.send_raw(BinaryData.TYPE, _bomb(size), Flags.COMPRESSED | Flags.ACK_REQUESTED)
    return True


async def _batch_ungranted(case: _Case) -> bool:
    items = tuple(case.message(BinaryData(case.rng.randbytes(4))) for _ in range(2))
    await case.send(Batch(items))
    return True


async def _session_id_foreign(case: _Case) -> bool:
    other = case.session_id ^ (1 + case.rng.randrange(1 << 32))
    await case.send(BinaryData(b"foreign"), session_id=other)
    return True


async def _wrong_direction(case: _Case) -> bool:
    await case.send(Publish("fuzz", b"from the server", case.rng.randrange(1, 100)))
    return True


async def _resume_retired(case: _Case) -> bool:
    await case.send(Resume(case.session_id, case.rng.randbytes(16), 0))
    return True


async def _header_noncanonical(case: _Case) -> bool:
    link = case.link
    if link.version == 2:  # the next sequence number with a needless trailing 0x00 group
        case.send_seq += 1
        varint = bytearray(write_varint(case.send_seq))
        varint[-1] |= 0x80
        head = bytes((0x40 | int(Flags.ACK_REQUESTED),)) + type_bytes(BinaryData.TYPE)
        data = head + bytes(varint) + b"\0" + case.rng.randbytes(4)
    else:  # v1: a magic that is not 0xC0D1
        data = b"\xd1\xc1" + _raw_message(1, BinaryData.TYPE, case.rng.randbytes(4))[2:]
    await link.send_frame(Opcode.BINARY, data)
    return True


async def _text_invalid_utf8(case: _Case) -> bool:
    bad = case.rng.choice((b"\xff\xfe", b"ok \xc3\x28", b"\xed\xa0\x80 surrogate", b"\xc0\xaf"))
    await case.send_raw(TextData.TYPE, bad, Flags.ACK_REQUESTED)
    return True


# ------------------------------------------------------------ topics
#: the Delivers that follow the good ones: (case, topic, epoch, last good offset)
Tail = Callable[[_Case, str, int, int, list[Deliver]], list[Payload]]


def _delivering(tail: Tail) -> Player:
    """Subscribed, a few good Delivers, then ``tail``'s; judged by the scenario."""

    async def play(case: _Case) -> None:
        subscription = await case.wait_subscribe()
        if subscription is None:
            case.skip(f"the client did not subscribe within {case.timeout:g} s")
            await case.expect_open(0, "a session without a subscription")
            await case.finish()
            return
        topic, epoch, first = subscription
        rng = case.rng
        count = rng.randrange(1, 6)
        good = [Deliver(topic, epoch, first + i, rng.randbytes(8)) for i in range(count)]
        await case.send_many([*good, *tail(case, topic, epoch, first + count - 1, good)])
        if case.scenario.close_code is None:
            await _stays_open(case, allowed=frozenset(case.scenario.accept), step=0)
        else:
            await _expect_scenario_close(case)

    return play


def _hole(case: _Case, topic: str, epoch: int, last: int, good: list[Deliver]) -> list[Payload]:
    return [Deliver(topic, epoch, last + 1 + case.rng.randrange(1, 50), b"hole")]


def _new_epoch(
    case: _Case, topic: str, epoch: int, last: int, good: list[Deliver]
) -> list[Payload]:
    rng = case.rng
    return [Deliver(topic, epoch + rng.randrange(1, 100), rng.randrange(1, 4), b"epoch")]


def _repeats(case: _Case, topic: str, epoch: int, last: int, good: list[Deliver]) -> list[Payload]:
    repeated = case.rng.sample(good, case.rng.randrange(1, len(good) + 1))
    return [*repeated, Deliver(topic, epoch, last + 1, b"after the repeats")]


def _announced_gap(
    case: _Case, topic: str, epoch: int, last: int, good: list[Deliver]
) -> list[Payload]:
    available = last + 1 + case.rng.randrange(1, 50)
    return [
        ContinuityLost(topic, epoch, last + 1, available),
        Deliver(topic, epoch, available, b"after the gap"),
    ]


def _backwards_gap(
    case: _Case, topic: str, epoch: int, last: int, good: list[Deliver]
) -> list[Payload]:
    back = case.rng.choice(good)  # "lost" from an offset the subscriber already has
    return [
        ContinuityLost(topic, epoch, last + 1, back.offset),
        *[Deliver(topic, epoch, d.offset, d.data) for d in good if d.offset >= back.offset],
        Deliver(topic, epoch, last + 1, b"after the overlap"),
    ]


# ------------------------------------------------------------ an active session: stays open
async def _baseline(case: _Case) -> None:
    await case.pump(lambda: False, min(0.05, case.timeout))
    await _stays_open(case)


async def _ack_backwards(case: _Case) -> None:
    await case.send(Acknowledge(case.recv_seq))
    await case.send(Acknowledge(max(0, case.recv_seq - 1 - case.rng.randrange(3))))
    await _stays_open(case)


async def _server_error(case: _Case) -> None:
    code = case.rng.choice((int(_C.UNSUPPORTED_DATA), int(_C.WSP_FORBIDDEN_TOPIC)))
    sent = case.message(Error(code, "fuzz: a problem that does not end the session"))
    await case.link.send(case.link.wire(sent))
    await case.pump(lambda: case.acked >= sent.sequence or bool(case.wsp_closes))
    if case.going_on() and case.acked < sent.sequence:
        what = case.scenario.description
        expected = f"an Acknowledge of {sent.sequence}"
        case.finding(Oracle.DELIVERY, 0, what, expected, f"acknowledged up to {case.acked}")
    await _stays_open(case)


async def _unknown_type(case: _Case) -> None:
    what = case.scenario.description
    before = len(case.errors)
    await case.send(Unknown(_UNKNOWN_TYPE, case.rng.randbytes(case.rng.randrange(32))))
    await case.pump(lambda: len(case.errors) > before or bool(case.wsp_closes))
    answers = case.errors[before:]
    if case.going_on() and not answers:
        case.finding(Oracle.UNDOCUMENTED, 0, what, "an Error with code 1003", "no Error")
    for error in answers:
        if error.code != _C.UNSUPPORTED_DATA:
            observed = f"an Error with code {error.code}"
            case.finding(Oracle.UNDOCUMENTED, 0, what, "an Error with code 1003", observed)
    await _stays_open(case)


async def _sequence_duplicate(case: _Case) -> None:
    link = case.link
    original = case.message(BinaryData(case.rng.randbytes(16)))
    await link.send(link.wire(original))
    await case.pump(lambda: case.acked >= original.sequence or bool(case.wsp_closes))
    acks = case.seen.count("Acknowledge")
    await link.send(link.wire(original))  # the same bytes again: a retransmission
    await case.pump(lambda: case.seen.count("Acknowledge") > acks or bool(case.wsp_closes))
    if case.going_on() and case.seen.count("Acknowledge") <= acks:
        expected = f"an Acknowledge of {original.sequence} again"
        case.finding(Oracle.DELIVERY, 0, case.scenario.description, expected, "no Acknowledge")
    await _stays_open(case)


async def _flood(case: _Case) -> None:
    rng, link = case.rng, case.link
    n, size = rng.randrange(200, 1001), rng.randrange(1, 257)
    target = case.send_seq + n
    await link.send(
        b"".join(link.wire(case.message(BinaryData(rng.randbytes(size)))) for _ in range(n))
    )
    await case.pump(lambda: case.acked >= target or bool(case.wsp_closes), case.timeout * 2)
    what = f"{case.scenario.description} ({n} messages)"
    if case.going_on() and case.acked < target:
        expected = f"an Acknowledge of {target}"
        case.finding(Oracle.DELIVERY, 0, what, expected, f"acknowledged up to {case.acked}")
    await _stays_open(case, what, _FLOOD_CLOSES)


async def _flood_long(case: _Case) -> None:
    rng, link = case.rng, case.link
    total, size = rng.randrange(10_500, 12_001), rng.randrange(1, 33)
    start = case.send_seq
    written = 0
    while written < total and case.going_on():
        # within the client's window (1,024 by default): at most 1,024 unacknowledged
        if not await case.pump(lambda: case.send_seq - case.acked <= 512):
            break
        n = min(512, total - written)
        await link.send(
            b"".join(link.wire(case.message(BinaryData(rng.randbytes(size)))) for _ in range(n))
        )
        written += n
    target = start + total
    await case.pump(lambda: case.acked >= target or bool(case.wsp_closes))
    what = f"{case.scenario.description} ({total} messages)"
    if case.going_on() and case.acked < target:
        observed = f"acknowledgments stopped at {case.acked - start} of {total} messages"
        case.finding(Oracle.LIVENESS, 0, what, f"an Acknowledge of {target}", observed)
    await _stays_open(case, what, _FLOOD_CLOSES)


async def _wsp_close(case: _Case) -> None:
    close = case.rng.choice((int(_C.NORMAL), int(_C.POLICY_VIOLATION), int(_C.WSP_FORBIDDEN_TOPIC)))
    await case.send(Close(close, "fuzz: the server ends the session"))
    case.sent_wsp_close = True
    await case.pump(lambda: False)
    what = f"{case.scenario.description} ({close})"
    answers = case.wsp_closes
    if not answers or answers[0] != close:
        observed = f"a wsp Close {answers[0]}" if answers else "no wsp Close"
        case.finding(Oracle.CLOSE_CODE, 0, what, f"a wsp Close {close}", observed)
    closed = case.link.closed
    if closed is None:
        observed = f"still open after {case.timeout:g} s"
    elif closed.dropped:
        observed = "dropped without close"
    elif closed.code != close:
        observed = f"close {closed.code}"
    else:
        return
    case.finding(Oracle.CLOSE_CODE, 0, what, f"close {close}", observed)


#: scenario name -> how it is played (one entry per line of SCENARIOS)
_PLAYERS: dict[str, Player] = {
    "challenge-nonce-empty": _bad_nonce(0),
    "challenge-nonce-15": _bad_nonce(15),
    "challenge-nonce-257": _bad_nonce(257),
    "challenge-wrong-kinds": _closing(_challenge_wrong_kinds),
    "challenge-garbage": _closing(_challenge_garbage),
    "challenge-twice": _closing(_challenge_twice),
    "response-first": _closing(_response_first),
    "early-data": _closing(_early_data),
    "server-proof-wrong": _answering(_wrong_proof, authenticates=True),
    "server-proof-missing": _answering(_missing_proof, authenticates=True),
    "grant-unoffered": _answering(_grant_unoffered),
    "grant-unknown": _answering(_grant_unknown),
    "response-encrypted": _answering(_honest, encrypted=True, authenticates=True),
    "forged-resume": _answering(_forged_resume),
    "response-twice": _active(_closing(_response_twice)),
    "text-frame": _active(_closing(_text_frame)),
    "deliver-unsubscribed": _active(_closing(_deliver_unsubscribed)),
    "deliver-hole": _active(_delivering(_hole)),
    "deliver-epoch-change": _active(_delivering(_new_epoch)),
    "deliver-repeat": _active(_delivering(_repeats)),
    "ack-above-sent": _active(_closing(_ack_above_sent)),
    "heartbeat-reply-unprobed": _active(_closing(_reply_unprobed)),
    "unknown-type": _active(_unknown_type),
    "sequence-gap": _active(_closing(_sequence_gap)),
    "sequence-duplicate": _active(_sequence_duplicate),
    "flood": _active(_flood),
    "flood-long": _active(_flood_long),
    "compressed-ungranted": _active(_closing(_compressed_ungranted)),
    "compression-bomb": _active(_closing(_compression_bomb)),
    "batch-ungranted": _active(_closing(_batch_ungranted), withhold=("batch",)),
    "session-id-foreign": _active(_closing(_session_id_foreign)),
    "wrong-direction": _active(_closing(_wrong_direction)),
    "resume-retired": _active(_closing(_resume_retired)),
    "header-noncanonical": _active(_closing(_header_noncanonical)),
    "text-invalid-utf8": _active(_closing(_text_invalid_utf8)),
    "deliver-continuity-lost": _active(_delivering(_announced_gap)),
    "continuity-lost-backwards": _active(_delivering(_backwards_gap)),
    "ack-backwards": _active(_ack_backwards),
    "server-error": _active(_server_error),
    "wsp-close": _active(_wsp_close),
    "baseline": _active(_baseline),
}


def _summary(case: _Case) -> str:
    closed = case.link.closed
    parts = list(case.notes)
    if case.wsp_closes:
        parts.append("wsp Close " + ", ".join(str(c) for c in case.wsp_closes))
    if closed is None:
        parts.append("left open by the server" if case.link.sent_close else "still open")
    elif closed.dropped:
        parts.append("dropped without close")
    else:
        parts.append(f"close {closed.code}" + (f" ({closed.reason})" if closed.reason else ""))
    if case.link.bad:
        parts.append("; ".join(what for _, what in case.link.bad[:3]))
    return "; ".join(parts)


async def _run_case(
    index: int,
    seed: int,
    names: Sequence[str] | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    secret: bytes,
    timeout: float,
) -> ServeCaseResult:
    scenario = scenario_for(seed, index, names)
    started = time.monotonic()
    name = writer.get_extra_info("peername")
    peer = f"{name[0]}:{name[1]}" if name else ""
    result = ServeCaseResult(
        index, scenario.name, [], 0.0, "", scenario.rule, scenario.expect, peer
    )
    conn, chosen = await _accept(reader, writer, timeout)
    if conn is None:
        if chosen.startswith("no wsp subprotocol"):
            result.findings.append(
                Finding(
                    Oracle.UNDOCUMENTED,
                    index,
                    -1,
                    "the WebSocket upgrade",
                    "Sec-WebSocket-Protocol offering wsp.v2 and/or wsp.v1",
                    chosen,
                    int(Rule.SUBPROTOCOL),
                )
            )
        result.observed = chosen
        result.skipped = not result.findings
        writer.close()
        result.duration = time.monotonic() - started
        return result
    version = 2 if chosen == "wsp.v2" else 1
    link = _Link(conn, version, Limits())
    case = _Case(index, scenario, link, random.Random(f"{seed}:{index}"), secret, timeout)
    try:
        async with asyncio.timeout(timeout * 8 + 5):
            await _play(case)
            if link.closed is None and link.sent_close:  # the client's close frame
                await case.pump(lambda: False, min(timeout, 1.0))
    except TimeoutError:
        case.finding(
            Oracle.LIVENESS,
            -2,
            scenario.description,
            "a case bounded in time",
            "the case ran past its bound",
        )
    finally:
        await conn.wait_closed(0.5)
    reported: set[int | None] = set()
    for rule, what in link.bad:  # the client's own bytes must be wsp too
        if rule not in reported:
            reported.add(rule)
            message = f"the client sent {what}"
            case.findings.append(
                Finding(Oracle.UNDOCUMENTED, index, -2, message, "binary wsp messages", what, rule)
            )
    result.findings = case.findings
    result.skipped = case.skipped
    result.subprotocol = chosen
    result.observed = _summary(case)
    result.close_code = None if link.closed is None else link.closed.code
    result.duration = time.monotonic() - started
    return result


# ================================================================ the server
async def serve_wsp(
    host: str,
    port: int,
    *,
    secret: bytes,
    seed: int = 1,
    cases: int | None = None,
    duration: float | None = None,
    on_listening: Callable[[str], None] | None = None,
    on_result: Callable[[ServeCaseResult], None] | None = None,
    timeout: float = 3.0,
    scenarios: Sequence[str] | None = None,
) -> list[ServeCaseResult]:
    """Serve one scenario per incoming connection until ``cases`` connections were
    judged or ``duration`` seconds passed (whichever first; neither: until
    cancelled); the results in case order.

    ``on_listening`` gets the URL (``ws://host:port/``) once the socket listens;
    ``on_result`` each case's result as it is judged. ``timeout`` bounds every
    wait for the client; a case takes at most ``8 * timeout + 5`` seconds, and the
    cases in flight when ``duration`` ends are finished (a cancellation ends them
    at once, unjudged). Connections beyond ``cases`` are closed unanswered.
    ``scenarios`` restricts the pool to these names (default: all of
    :data:`SCENARIOS`).
    """
    _pool(scenarios)  # unknown names fail here, before listening
    results: list[ServeCaseResult] = []
    done = asyncio.Event()
    handlers: set[asyncio.Task[Any]] = set()
    counter = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = counter[0]
        if done.is_set() or (cases is not None and index >= cases):
            writer.close()
            return
        counter[0] += 1
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        try:
            result = await _run_case(index, seed, scenarios, reader, writer, secret, timeout)
        finally:
            if task is not None:
                handlers.discard(task)
            writer.close()
        results.append(result)
        if on_result is not None:
            on_result(result)
        if cases is not None and len(results) >= cases:
            done.set()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()
    shown = bound[0] if host in ("", "0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"ws://{shown}:{bound[1]}/"
    if on_listening is not None:
        on_listening(url)
    cancelled = False
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await done.wait()
    except asyncio.CancelledError:  # stopped (Ctrl-C): the cases in flight end now
        cancelled = True
        raise
    finally:
        done.set()
        server.close()
        late = set(handlers)
        if late and not cancelled:  # cases in flight are bounded: let them finish
            _, late = await asyncio.wait(late, timeout=timeout * 8 + 6)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await server.wait_closed()
    return sorted(results, key=lambda r: r.index)
