"""One case of the malicious server: an honest wsp server (handshake, acknowledgments,
probes, Subscribed, echo, Close) around one scenario's attack, and what it saw.
"""

from __future__ import annotations

__all__ = ["GRANTABLE", "TOKEN_PREFIX", "Case", "Player"]

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec import (
    Acknowledge,
    Authenticate,
    Batch,
    BinaryData,
    Challenge,
    Close,
    ContinuityLost,
    Deliver,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Payload,
    Publish,
    Request,
    Response,
    Subscribe,
    Subscribed,
    TextData,
)
from wsproto_tools.engine.auth import client_proof, server_proof
from wsproto_tools.engine.rules import Rule
from wsproto_tools.exceptions import CloseCode
from wsproto_tools.fuzz.wsp.findings import Finding, Oracle
from wsproto_tools.fuzz.wsp.serve_link import Closed, Link, raw_message
from wsproto_tools.fuzz.wsp.serve_scenarios import Scenario
from wsproto_tools.ws import Opcode, is_valid_close_code

_C = CloseCode
#: what the server grants (a subset of the offer): never encrypt or compress, which
#: this server does not speak; those flags only appear as attacks
GRANTABLE = ("ack", "batch", "pubsub", "delta")
#: client->server messages numbered in the sequenced stream (S.4)
_SEQUENCED = (Publish, TextData, BinaryData, DeltaUpdate, Error)
#: the prefix of the resume tokens this server hands out (then the session id)
TOKEN_PREFIX = b"wsp-fuzz:"


@dataclass
class Case:
    """One connection playing one scenario: an honest server around one attack."""

    index: int
    scenario: Scenario
    link: Link
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
        data = raw_message(self.link.version, code, body, int(flags), self.send_seq, session_id)
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
            if isinstance(got, Closed):
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
            if got is None or isinstance(got, Closed):
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
            "capabilities": tuple(c for c in self.offered if c in GRANTABLE and c not in withhold),
            "resume_token": TOKEN_PREFIX
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


#: a scenario's whole run over one connection
Player = Callable[[Case], Awaitable[None]]
