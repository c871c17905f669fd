"""One live wsp connection driven by the fuzzer: it speaks wsp by the spec and
keeps what the oracles need.

:class:`Peer` opens a raw WebSocket (the fuzzer writes every byte itself), does
the handshake with real credentials, numbers and seals what it sends, and reads
the target's messages in a background task: it answers Heartbeat probes and
acknowledges sequenced messages as a well-behaved client must, and records
every Response, Subscribed, Deliver, Error, Acknowledge and the close. Values
from the answers (nonces, session id, resume token, offsets) are kept so that
later steps can bind them.
"""

from __future__ import annotations

__all__ = ["Closed", "Credentials", "Peer", "TopicTrack"]

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec import (
    Acknowledge,
    Cipher,
    Close,
    ContinuityLost,
    Deliver,
    Error,
    Flags,
    HandshakeResponse,
    Heartbeat,
    Message,
    Payload,
    Response,
    Subscribed,
    counter_nonces,
    decode,
    encode,
)
from wsproto_tools.codec.header import pack_v2
from wsproto_tools.codec.schema import BinaryData, Challenge, TextData
from wsproto_tools.engine.keys import derive_session_keys
from wsproto_tools.exceptions import WspError
from wsproto_tools.transports.raw import RawWebSocket, open_raw_websocket
from wsproto_tools.ws import FrameParser, encode_frame, parse_close

#: Close codes that end the connection only; the session stays resumable (S.7).
RESUMABLE = frozenset({1001, 1009, 4004, 4005, 4006})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the fuzzer may authenticate with. ``mint(subject)`` makes a JWT for a
    subject when the fuzzer holds the JWT key (None otherwise)."""

    secret: bytes | None = None
    token: str | None = None
    mint: Callable[..., str] | None = None
    token_key: bytes | None = None  # the server's resume-token key, when known
    #: topic patterns the credential allows (None: all), from the JWT's wsp claim
    pub: tuple[str, ...] | None = None
    sub: tuple[str, ...] | None = None

    @property
    def methods(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.secret is not None:
            out.append("hmac")
        if self.token is not None or self.mint is not None:
            out.append("jwt")
        return tuple(out) or ("none",)


@dataclass(slots=True)
class Closed:
    """How the connection ended: the close frame's code (1006: no close frame) and
    the wsp Close that came before it, if any."""

    code: int
    reason: str
    wsp_close: int | None = None


@dataclass(slots=True)
class TopicTrack:
    """A subscription as the fuzzer sees it: what must come next and what came."""

    topic: str
    epoch: int | None = None
    next_offset: int | None = None  # the offset the next Deliver must have
    expected: list[bytes] = field(default_factory=list)  # published, not yet delivered
    delivered: int = 0
    confirmed: bool = False
    lost: bool = False  # a ContinuityLost came: a gap is announced
    requested: int | None = None  # the Subscribe's from_offset


class Peer:
    """One client connection to the target, speaking wsp v2 (or v1)."""

    def __init__(self, host: str, port: int, path: str, *, timeout: float, ssl: Any = None) -> None:
        self.host, self.port, self.path = host, port, path
        self.ssl = ssl  # an ssl.SSLContext for wss://
        self.timeout = timeout
        self.conn: RawWebSocket | None = None
        self.version = 2
        self.parser = FrameParser(max_payload=8 << 20)
        self._mask = os.urandom(4)
        self._parts: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        # handshake values
        self.server_nonce = b""
        self.methods: tuple[str, ...] = ()
        self.client_nonce = b""
        self.session_id = 0
        self.resume_token: bytes | None = None
        self.resumed: bool | None = None
        self.server_last_received = 0
        self.granted: tuple[str, ...] = ()
        self.answered = False  # a HandshakeResponse came
        self.send_cipher: Cipher | None = None
        self.recv_cipher: Cipher | None = None
        self.keys: tuple[bytes, bytes] | None = None
        # sequencing
        self.sent_seq = 0  # the last sequence this side sent
        self.recv_seq = 0  # the highest target sequence received in order
        self.acked = 0  # the highest Acknowledge from the target
        self.last_sealed: bytes | None = None  # the last sequenced message sent, sealed
        # answers
        self.requests: dict[int, bytes] = {}  # request id -> data still expected back
        self.answers: dict[int, Response] = {}
        self.subscribing: set[str] = set()
        self.topics: dict[str, TopicTrack] = {}
        self.probes: set[int] = set()
        self.replies: set[int] = set()
        self.echoes: list[bytes] = []  # Text/Binary data echoed back
        self.errors: list[Error] = []
        self.closed: Closed | None = None
        self.wsp_close: int | None = None
        self.messages_in = 0
        self.problems: list[str] = []  # undocumented behaviour seen by the reader
        self.security: list[str] = []  # deliveries the credential does not allow
        self.delivery: list[str] = []  # lost, duplicated or reordered deliveries
        self.allowed_sub: Callable[[str], bool] = lambda topic: True
        #: (connection number, "client"|"server", seconds, opcode, payload), shared
        #: by the connections of a case; connections: (number, start time, version)
        self.trace: list[tuple[int, str, float, int, bytes]] = []
        self.connections: list[tuple[int, float, int]] = []
        self.conn_no = 0
        self.sent_messages = 0  # wsp messages this connection sent
        self.unsubscribed: set[str] = set()
        self.ignored: set[str] = set()  # topics a mutated Subscribe made unpredictable
        self.expect_echo: list[bytes] = []  # data messages sent, to come back
        self.maybe_refused = 0  # a sequence a mutated message may have used up
        self.loose_requests: set[int] = set()
        self.after_close = 0  # messages the target sent after its wsp Close
        self.loose_probes: set[int] = set()  # probes sent by mutated Heartbeats
        self.notes: list[str] = []  # valid steps the target did not honour
        self.paused = False  # a slow reader: stop reading until resume_reading()
        self._unpaused = asyncio.Event()
        self.trace_limit = 200

    # ------------------------------------------------------------------ connection
    async def open(self, *, version: int = 2, extensions: str | None = None) -> None:
        """Upgrade and read the Challenge (or whatever comes first)."""
        self.version = version
        self.connections.append((self.conn_no, time.time(), version))
        self.conn = await open_raw_websocket(
            self.host,
            self.port,
            self.path,
            subprotocols=(f"wsp.v{version}",),
            extensions=extensions,
            timeout=self.timeout,
            ssl=self.ssl,
        )
        self._reader = asyncio.create_task(self._read_loop())

    @property
    def deflate(self) -> bool:
        """Whether the target accepted permessage-deflate."""
        response = self.conn.response if self.conn is not None else None
        if response is None:
            return False
        return "permessage-deflate" in str(getattr(response, "headers", {})).lower()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait (bounded) until ``predicate()`` holds or the connection closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        while not predicate():
            if self.closed is not None:
                return predicate()
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()
        return True

    async def close(self) -> None:
        """Drop the TCP connection and stop reading (no close handshake)."""
        if self.conn is not None:
            await self.conn.wait_closed(0.5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    def resume_reading(self) -> None:
        self.paused = False
        self._unpaused.set()

    # ------------------------------------------------------------------ sending
    def _record(self, direction: str, data: bytes, opcode: int = 2) -> None:
        if len(self.trace) < self.trace_limit:
            t = time.time() - self.connections[-1][1] if self.connections else 0.0
            self.trace.append((self.conn_no, direction, round(t, 6), opcode, data[: 1 << 16]))

    async def send_frames(self, data: bytes) -> None:
        """Raw bytes (already framed)."""
        assert self.conn is not None
        await self.conn.send(data)

    def frame(self, payload: bytes, *, opcode: int = 2, rsv1: bool = False) -> bytes:
        return encode_frame(opcode, payload, rsv1=rsv1, mask=self._mask)

    async def send_wire(self, *wires: bytes, opcode: int = 2) -> None:
        """wsp messages, one binary frame each, in one write."""
        self.sent_messages += len(wires)
        for wire in wires:
            self._record("client", wire, opcode)
        await self.send_frames(b"".join(self.frame(w, opcode=opcode) for w in wires))

    def encode(
        self,
        payload: Payload,
        *,
        sequence: int = 0,
        flags: Flags = Flags.NONE,
        session_id: int = 0,
        seal: bool | None = None,
    ) -> bytes:
        """One message as this side sends it: sealed once encryption began."""
        sealing = self.send_cipher is not None if seal is None else seal
        if sealing:
            flags |= Flags.ENCRYPTED
        cipher = self.send_cipher if sealing else None
        return encode(
            Message(payload, sequence=sequence, session_id=session_id, flags=flags),
            version=self.version,
            cipher=cipher,
        )

    def raw(
        self,
        code: int,
        body: bytes,
        *,
        sequence: int = 0,
        flags: int = 0,
        session_id: int = 0,
        seal: bool | None = None,
    ) -> bytes:
        """A message with a hand-made payload (any type code) under a real header,
        sealed once encryption began; COMPRESSED is the caller's to apply."""
        sealing = self.send_cipher is not None if seal is None else seal
        if sealing:
            flags |= Flags.ENCRYPTED
        if self.version == 2:
            header = pack_v2(code, int(flags), sequence, session_id, 0)
        else:
            size = len(body) + (28 if sealing else 0)
            header = struct.pack(
                "<HBBHQIQI", 0xC0D1, 1, int(flags), code, session_id, sequence, 0, size
            )
        if sealing:
            assert self.send_cipher is not None
            body = self.send_cipher.seal(header, body)
        return header + body

    def next_seq(self) -> int:
        self.sent_seq += 1
        return self.sent_seq

    def start_encryption(self, secret: bytes) -> None:
        keys = derive_session_keys(secret, self.server_nonce, self.client_nonce)
        self.keys = (keys.client_to_server, keys.server_to_client)
        self.send_cipher = Cipher(keys.client_to_server, counter_nonces(b"wspc", 0))
        self.recv_cipher = Cipher(keys.server_to_client)

    # ------------------------------------------------------------------ reading
    async def _read_loop(self) -> None:
        assert self.conn is not None
        try:
            while self.closed is None:
                if self.paused:
                    self._unpaused.clear()
                    async with asyncio.timeout(self.timeout * 4):
                        await self._unpaused.wait()
                data = await self.conn.read(3600.0)
                if data is None:
                    continue
                if not data:
                    self._finish(Closed(1006, "dropped without a close frame", self.wsp_close))
                    return
                for frame in self.parser.feed(data):
                    await self._on_frame(frame.opcode, frame.fin, frame.payload)
                    if self.closed is not None:
                        return
                self._changed.set()
        except WspError as error:
            self.problems.append(f"unreadable WebSocket frames from the target: {error}")
            self._finish(Closed(1006, f"bad frames: {error}", self.wsp_close))
        except (ConnectionError, OSError, TimeoutError):
            self._finish(Closed(1006, "connection reset", self.wsp_close))

    def _finish(self, closed: Closed) -> None:
        if self.closed is None:
            self.closed = closed
        self._changed.set()

    async def _on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == 0x8:
            code, reason, _ = parse_close(payload)
            with contextlib.suppress(Exception):
                await self.send_frames(encode_frame(0x8, payload[:2], mask=self._mask))
            self._finish(
                Closed(
                    1005 if code is None else code,
                    reason.decode("utf-8", "replace"),
                    self.wsp_close,
                )
            )
            return
        if opcode == 0x9:
            with contextlib.suppress(Exception):
                await self.send_frames(encode_frame(0xA, payload, mask=self._mask))
            return
        if opcode == 0xA:
            return
        if opcode == 0x1:
            self.problems.append("a text WebSocket message from the target (wsp is binary only)")
            return
        self._parts.append(payload)
        if not fin:
            return
        data, self._parts = b"".join(self._parts), []
        self._record("server", data)
        try:
            msg = decode(data, version=self.version, cipher=self.recv_cipher)
        except WspError as error:
            self.problems.append(f"an undecodable message from the target: {error}")
            return
        await self._on_message(msg)

    async def _on_message(self, msg: Message) -> None:
        from wsproto_tools.codec import Batch

        payload = msg.payload
        if type(payload) is Batch:
            for item in payload.messages:
                await self._on_message(item)
            return
        self.messages_in += 1
        if self.wsp_close is not None:
            if not self.after_close:  # rule 41: after its Close a side sends nothing more
                self.problems.append(
                    f"a {type(payload).__name__} from the target after its wsp Close (rule 41)"
                )
            self.after_close += 1
            return
        if msg.sequence:
            if msg.sequence == self.recv_seq + 1:
                self.recv_seq = msg.sequence
            elif msg.sequence > self.recv_seq + 1:
                self.problems.append(
                    f"the target skipped from sequence {self.recv_seq} to {msg.sequence}"
                )
            await self._ack()
        handler = _HANDLERS.get(type(payload))
        if handler is not None:
            await handler(self, msg, payload)

    async def _ack(self) -> None:
        if self.closed is not None or not self.answered:
            return
        with contextlib.suppress(Exception):
            await self.send_wire(self.encode(Acknowledge(self.recv_seq)))

    async def _on_challenge(self, msg: Message, payload: Challenge) -> None:
        if self.server_nonce:
            self.problems.append("a second Challenge from the target")
        self.server_nonce = bytes(payload.nonce)
        self.methods = tuple(payload.methods)

    async def _on_response(self, msg: Message, payload: HandshakeResponse) -> None:
        self.answered = True
        self.session_id = payload.session_id
        self.resume_token = payload.resume_token
        self.resumed = bool(payload.resumed)
        self.server_last_received = payload.last_received or 0
        self.granted = tuple(payload.capabilities)
        self._server_proof = payload.server_proof

    async def _on_heartbeat(self, msg: Message, payload: Heartbeat) -> None:
        if payload.reply:
            if payload.id not in self.probes and payload.id not in self.loose_probes:
                self.problems.append(f"a Heartbeat reply to probe {payload.id}, never sent")
            self.probes.discard(payload.id)
            self.replies.add(payload.id)
            return
        with contextlib.suppress(Exception):
            await self.send_wire(self.encode(Heartbeat(payload.id, True)))

    async def _on_answer(self, msg: Message, payload: Response) -> None:
        if payload.id in self.answers and payload.id not in self.loose_requests:
            self.problems.append(f"a second Response to request {payload.id}")
        self.answers[payload.id] = payload

    async def _on_subscribed(self, msg: Message, payload: Subscribed) -> None:
        topic = payload.topic
        if topic in self.ignored:
            return
        if not self.allowed_sub(topic):
            self.security.append(f"Subscribed to topic {topic!r}, which the credential forbids")
        self.subscribing.discard(topic)
        self.unsubscribed.discard(topic)
        track = self.topics.setdefault(topic, TopicTrack(topic))
        track.confirmed = True
        if track.epoch is not None and track.epoch != payload.epoch and not track.lost:
            track.next_offset = None  # a new epoch: the offsets start again
        track.epoch = payload.epoch
        if track.next_offset is None:
            start = payload.next_offset
            if track.requested is not None:
                start = max(1, min(track.requested, start))  # offsets start at 1
            track.next_offset = start

    async def _on_lost(self, msg: Message, payload: ContinuityLost) -> None:
        track = self.topics.setdefault(payload.topic, TopicTrack(payload.topic))
        track.lost = True
        track.epoch = payload.epoch
        track.next_offset = payload.first_available
        track.requested = None

    async def _on_deliver(self, msg: Message, payload: Deliver) -> None:
        topic = payload.topic
        if not self.allowed_sub(topic):
            self.security.append(f"a Deliver of topic {topic!r}, which the credential forbids")
        if topic in self.ignored:
            return
        track = self.topics.get(topic)
        if (track is None or not track.confirmed) and topic in self.unsubscribed:
            return  # sent before the Unsubscribe was read
        if track is None or not track.confirmed:
            self.delivery.append(f"a Deliver of {topic!r} before its Subscribed")
            return
        if track.next_offset is not None and payload.offset != track.next_offset:
            if payload.offset < track.next_offset:
                self.delivery.append(
                    f"{topic!r}: offset {payload.offset} delivered again "
                    f"(expected {track.next_offset})"
                )
                return
            self.delivery.append(
                f"{topic!r}: offset {payload.offset} came where {track.next_offset} was due"
            )
        track.next_offset = payload.offset + 1
        track.delivered += 1
        if track.expected:
            want = track.expected.pop(0)
            if bytes(payload.data) != want:
                self.delivery.append(
                    f"{topic!r}: offset {payload.offset} carries {bytes(payload.data)[:16]!r}, "
                    f"the publish sent {want[:16]!r}"
                )

    async def _on_error(self, msg: Message, payload: Error) -> None:
        self.errors.append(payload)

    async def _on_close(self, msg: Message, payload: Close) -> None:
        self.wsp_close = int(payload.code)
        self._changed.set()

    async def _on_data(self, msg: Message, payload: TextData | BinaryData) -> None:
        data = payload.text.encode() if isinstance(payload, TextData) else bytes(payload.data)
        self.echoes.append(data)

    async def _on_acknowledge(self, msg: Message, payload: Acknowledge) -> None:
        if payload.sequence > self.sent_seq:
            self.problems.append(
                f"an Acknowledge of sequence {payload.sequence}; only {self.sent_seq} were sent"
            )
        self.acked = max(self.acked, payload.sequence)


_HANDLERS: dict[type[Any], Callable[..., Any]] = {
    Challenge: Peer._on_challenge,
    HandshakeResponse: Peer._on_response,
    Heartbeat: Peer._on_heartbeat,
    Response: Peer._on_answer,
    Subscribed: Peer._on_subscribed,
    ContinuityLost: Peer._on_lost,
    Deliver: Peer._on_deliver,
    Error: Peer._on_error,
    Close: Peer._on_close,
    TextData: Peer._on_data,
    BinaryData: Peer._on_data,
    Acknowledge: Peer._on_acknowledge,
}
