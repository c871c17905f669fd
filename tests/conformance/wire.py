"""The wire, written from docs/protocol.md alone: WebSocket frames (RFC 6455),
v2 headers, msgpack payloads, HMAC proofs, HKDF session keys and sealing.

Nothing here imports the package's codec or engine: the spec, not the code
under test, is the oracle. The transport is the package's raw socket
(:mod:`wsproto_tools.transports.raw`), which neither frames nor masks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wsproto_tools.transports.raw import RawWebSocket, open_raw_websocket
from wsproto_tools.ws import UpgradeRequest, UpgradeResponse, build_response, parse_http_head

SECRET = b"conformance-secret"
MASK = b"\x37\xfa\x21\x3d"  # the fixed masking key of every client frame sent here
TIMEOUT = 2.0  # the longest any single wait in these tests may take

# ---------------------------------------------------------------- section 6: type codes
HANDSHAKE = 0x0001
HANDSHAKE_RESPONSE = 0x0002
HEARTBEAT = 0x0003
CLOSE = 0x0004
ERROR = 0x0005
CHALLENGE = 0x0006
AUTHENTICATE = 0x0007
TEXT = 0x0101
BINARY = 0x0102
DELTA = 0x0103
PUBLISH = 0x0104
DELIVER = 0x0105
REQUEST = 0x0106
RESPONSE = 0x0107
SUBSCRIBE = 0x0201
UNSUBSCRIBE = 0x0202
ACK = 0x0203
RESUME = 0x0204
CONTINUITY_LOST = 0x0205
WINDOW_UPDATE = 0x0206
BATCH = 0x0207
SUBSCRIBED = 0x0208

#: payloads that are not a msgpack map (section 7)
NOT_MSGPACK = frozenset({TEXT, BINARY, BATCH})

# ---------------------------------------------------------------- section 5: flags
COMPRESSED = 0x01
ENCRYPTED = 0x02
ACK_REQUESTED = 0x04

# ---------------------------------------------------------------- RFC 6455 opcodes
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# ================================================================ WebSocket frames
def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = MASK) -> bytes:
    """One RFC 6455 frame: FIN + opcode, the mask bit and key when ``mask``, the
    7-bit, 16-bit or 64-bit length form."""
    head = bytes(((0x80 if fin else 0) | opcode,))
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes((bit | n,))
    elif n < 1 << 16:
        head += bytes((bit | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((bit | 127,)) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_frame(code: int, reason: str = "", *, mask: bytes | None = MASK) -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code) + reason.encode(), mask=mask)


def parse_frame(buf: bytes, masked_expected: bool) -> tuple[bool, int, bytes, int] | None:
    """(fin, opcode, unmasked payload, bytes used), or None when ``buf`` holds less
    than a whole frame. RFC 6455 5.1-5.2: client frames are masked, server frames
    are not, and no RSV bit is set (no extension is negotiated here)."""
    if len(buf) < 2:
        return None
    fin, opcode = bool(buf[0] & 0x80), buf[0] & 0x0F
    masked, n = bool(buf[1] & 0x80), buf[1] & 0x7F
    assert not buf[0] & 0x70, f"RSV bits set: {buf[0]:#x}"
    assert masked == masked_expected, "a server frame masked or a client frame unmasked"
    i = 2
    if n == 126:
        if len(buf) < 4:
            return None
        (n,) = struct.unpack("!H", buf[2:4])
        i = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        (n,) = struct.unpack("!Q", buf[2:10])
        i = 10
    key = b""
    if masked:
        if len(buf) < i + 4:
            return None
        key, i = buf[i : i + 4], i + 4
    if len(buf) < i + n:
        return None
    payload = buf[i : i + n]
    if masked:
        payload = bytes(b ^ key[j % 4] for j, b in enumerate(payload))
    return fin, opcode, payload, i + n


# ================================================================ section 2: varints
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


# ================================================================ section 4: v2 header
def type_bytes(code: int) -> bytes:
    high, low = code >> 8, code & 0xFF
    if high < 3 and low < 64:
        return bytes(((high << 6) | low,))
    return b"\xc0" + struct.pack("<H", code)


def header(
    code: int, seq: int = 0, flags: int = 0, session_id: int = 0, timestamp: int = 0
) -> bytes:
    head = 0x40 | flags
    if session_id:
        head |= 0x20
    if timestamp:
        head |= 0x10
    out = bytes((head,)) + type_bytes(code) + varint(seq)
    if session_id:
        out += varint(session_id)
    if timestamp:
        out += varint(timestamp)
    return out


def pack(body: Any) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


@dataclass
class Msg:
    """One wsp message as read from the wire (payload after decryption)."""

    code: int
    flags: int
    seq: int
    session_id: int  # 0 when the S bit is clear
    timestamp: int
    header: bytes
    payload: bytes
    nonce: bytes = b""  # the AEAD nonce of an ENCRYPTED message

    @property
    def body(self) -> Any:
        if self.code in NOT_MSGPACK:
            return self.payload
        return unpack(self.payload)

    def __repr__(self) -> str:
        try:
            shown: Any = self.body
        except Exception:
            shown = self.payload
        return f"Msg(0x{self.code:04x}, flags={self.flags}, seq={self.seq}, {shown!r})"


def parse_header(data: bytes) -> tuple[int, int, int, int, int, int]:
    """(type code, flags, sequence, session id, timestamp, header length) of a v2
    message (asserting the canonical form of section 4)."""
    head = data[0]
    assert 0x40 <= head <= 0x7F, f"not a v2 head byte: {head:#x}"
    assert not head & 0x08, "reserved bit 3 set"
    tb = data[1]
    if tb == 0xC0:
        (code,) = struct.unpack("<H", data[2:4])
        assert len(type_bytes(code)) == 3, f"0xC0 escape for 0x{code:04x}, which has one byte"
        i = 4
    else:
        assert tb < 0xC0, f"reserved type byte {tb:#x}"
        code, i = ((tb >> 6) << 8) | (tb & 0x3F), 2
    seq, i = read_varint(data, i)
    sid = ts = 0
    if head & 0x20:
        sid, i = read_varint(data, i)
        assert sid, "S set with session id 0"
    if head & 0x10:
        ts, i = read_varint(data, i)
        assert ts, "T set with timestamp 0"
    return code, head & 0x07, seq, sid, ts, i


# ================================================================ S.2: proofs and keys
def u16be(n: int) -> bytes:
    return struct.pack(">H", n)


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    msg = b"wsp-auth-v1" + u16be(len(server_nonce)) + server_nonce + client_nonce
    return hmac.new(secret, msg, hashlib.sha256).digest()


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    msg = b"wsp-server-v1" + u16be(len(server_nonce)) + server_nonce + client_nonce
    return hmac.new(secret, msg, hashlib.sha256).digest()


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869: extract, then expand."""
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def session_keys(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> tuple[bytes, bytes]:
    """(client->server key, server->client key)."""
    okm = hkdf_sha256(secret, server_nonce + client_nonce, b"wsp session keys v1", 64)
    return okm[:32], okm[32:]


@dataclass
class Sealer:
    """One direction's key and nonce counter (section 5.2)."""

    key: bytes
    prefix: bytes  # b"wspc" or b"wsps"
    counter: int = 0

    def seal(self, head: bytes, plaintext: bytes) -> bytes:
        nonce = self.prefix + struct.pack("<Q", self.counter)
        self.counter += 1
        return nonce + ChaCha20Poly1305(self.key).encrypt(nonce, plaintext, head)

    def open(self, head: bytes, payload: bytes) -> bytes:
        nonce, sealed = payload[:12], payload[12:]
        return ChaCha20Poly1305(self.key).decrypt(nonce, sealed, head)


# ================================================================ a peer on raw frames
@dataclass
class Closed:
    """The peer's close frame (``code`` None: no code; 1006: no close frame at all)."""

    code: int | None
    reason: str


@dataclass
class Peer:
    """One side of a raw WebSocket that speaks wsp v2 by hand."""

    conn: RawWebSocket
    masked: bool  # True on the client side (client frames are masked)
    buf: bytes = b""
    outgoing: Sealer | None = None  # set once encryption began
    incoming: Sealer | None = None
    session_id: int = 0
    resume_token: bytes = b""
    nonce: bytes = b""  # the server nonce of this connection's Challenge
    client_nonce: bytes = b""
    seen: list[Msg | Closed] = field(default_factory=list)  # everything read, in order
    batches: int = 0  # Batch messages received (their items are returned one by one)
    _parts: list[bytes] = field(default_factory=list)
    _queue: list[Msg] = field(default_factory=list)

    # ---------------------------------------------------------------- sending
    async def send_bytes(self, data: bytes) -> None:
        await self.conn.send(data)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        await self.conn.send(frame(opcode, payload, mask=MASK if self.masked else None))

    def wire(
        self,
        code: int,
        body: Any = None,
        *,
        seq: int = 0,
        flags: int = 0,
        session_id: int = 0,
        raw: bytes | None = None,
        seal: bool | None = None,
    ) -> bytes:
        """The bytes of one wsp message; sealed when encryption began (or ``seal``)."""
        payload = raw if raw is not None else (body if code in NOT_MSGPACK else pack(body or {}))
        sealing = self.outgoing is not None if seal is None else seal
        if sealing:
            assert self.outgoing is not None
            head = header(code, seq, flags | ENCRYPTED, session_id)
            return head + self.outgoing.seal(head, payload)
        return header(code, seq, flags, session_id) + payload

    async def send(self, code: int, body: Any = None, **kw: Any) -> None:
        await self.send_frame(OP_BINARY, self.wire(code, body, **kw))

    async def send_many(self, messages: list[bytes]) -> None:
        """Several wsp messages, one binary frame each, in one TCP write."""
        mask = MASK if self.masked else None
        await self.conn.send(b"".join(frame(OP_BINARY, m, mask=mask) for m in messages))

    # ---------------------------------------------------------------- receiving
    async def _frame(self, timeout: float) -> tuple[bool, int, bytes] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            parsed = parse_frame(self.buf, masked_expected=not self.masked)
            if parsed is not None:
                fin, opcode, payload, used = parsed
                self.buf = self.buf[used:]
                return fin, opcode, payload
            left = deadline - loop.time()
            if left <= 0:
                return None
            data = await self.conn.read(left)
            if data is None:
                return None
            if data == b"":
                raise EOFError
            self.buf += data

    def _message(self, data: bytes) -> Msg:
        code, flags, seq, sid, ts, n = parse_header(data)
        head, payload = data[:n], data[n:]
        nonce = b""
        if flags & ENCRYPTED:
            assert self.incoming is not None, f"ENCRYPTED message 0x{code:04x} without keys"
            nonce = payload[:12]
            payload = self.incoming.open(head, payload)
        return Msg(code, flags, seq, sid, ts, head, payload, nonce)

    def _items(self, batch: Msg) -> list[Msg]:
        """Section 7.2: varint length, then a complete message, to the end."""
        data, i, out = batch.payload, 0, []
        while i < len(data):
            n, i = read_varint(data, i)
            assert n, "empty Batch item"
            out.append(self._message(data[i : i + n]))
            i += n
        assert i == len(data), "Batch items overrun the payload"
        assert all(m.code != BATCH for m in out), "a Batch inside a Batch"
        return out

    async def recv(self, timeout: float = TIMEOUT) -> Msg | Closed | None:
        """The next wsp message or the close frame; None when nothing came in time.
        The items of a Batch come one by one."""
        if self._queue:
            return self._queue.pop(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                got = await self._frame(max(deadline - loop.time(), 0.0))
            except EOFError:
                closed = Closed(1006, "connection dropped without a close frame")
                self.seen.append(closed)
                return closed
            if got is None:
                return None
            fin, opcode, payload = got
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                closed = Closed(code, payload[2:].decode("utf-8", "replace"))
                self.seen.append(closed)
                return closed
            if opcode == OP_PING:
                await self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            assert opcode in (OP_BINARY, OP_CONT), f"not a binary message: opcode {opcode}"
            self._parts.append(payload)
            if not fin:
                continue
            data, self._parts = b"".join(self._parts), []
            msg = self._message(data)
            if msg.code == BATCH:
                self.batches += 1
                items = self._items(msg)
                self.seen.extend(items)
                if not items:
                    continue
                self._queue.extend(items[1:])
                return items[0]
            self.seen.append(msg)
            return msg

    async def expect(
        self, code: int, timeout: float = TIMEOUT, skip: tuple[int, ...] = (ACK, HEARTBEAT)
    ) -> Msg:
        """The next message of type ``code``, passing over ``skip`` types (heartbeat
        probes are answered); fails on anything else, a close or a timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = await self.recv(max(deadline - loop.time(), 0.0))
            assert got is not None, f"no 0x{code:04x} within {timeout} s; saw {self.seen}"
            assert isinstance(got, Msg), f"closed while waiting for 0x{code:04x}: {got}"
            if got.code == code:
                return got
            if got.code == HEARTBEAT and not got.body.get("reply"):
                await self.send(HEARTBEAT, {"id": got.body.get("id", 0), "reply": True})
            assert got.code in skip, f"expected 0x{code:04x}, got {got}"

    async def quiet(self, seconds: float) -> list[Msg]:
        """Everything that arrives within ``seconds`` (fails on a close)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        out: list[Msg] = []
        while (left := deadline - loop.time()) > 0:
            got = await self.recv(left)
            if got is None:
                break
            assert isinstance(got, Msg), f"closed: {got}; saw {self.seen}"
            out.append(got)
        return out

    async def closed(self, timeout: float = TIMEOUT) -> tuple[Closed, list[Msg]]:
        """Read up to the peer's close frame: (the close, the messages before it).
        Answers the close frame and drops the TCP connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        before: list[Msg] = []
        while True:
            got = await self.recv(max(deadline - loop.time(), 0.0))
            assert got is not None, f"not closed within {timeout} s; saw {self.seen}"
            if isinstance(got, Closed):
                with contextlib.suppress(Exception):
                    code = got.code if got.code is not None else 1000
                    await self.conn.send(close_frame(code, mask=MASK if self.masked else None))
                await self.conn.wait_closed(0.5)
                return got, before
            before.append(got)

    async def drop(self) -> None:
        await self.conn.wait_closed(0.5)


# ================================================================ the client side
async def connect(
    port: int, subprotocols: tuple[str, ...] = ("wsp.v2",), path: str = "/"
) -> Peer:
    conn = await open_raw_websocket(
        "127.0.0.1", port, path, subprotocols=subprotocols, timeout=TIMEOUT
    )
    assert conn.response is not None
    return Peer(conn, masked=True)


async def challenged(port: int) -> Peer:
    """Connected, with the server's unsolicited Challenge read."""
    peer = await connect(port)
    challenge = await peer.expect(CHALLENGE, skip=())
    peer.nonce = challenge.body["nonce"]
    return peer


def hello(
    peer: Peer,
    *,
    auth: str | None = "hmac",
    capabilities: tuple[str, ...] = ("ack", "batch", "pubsub"),
    client_nonce: bytes | None = None,
    **fields: Any,
) -> bytes:
    """A Handshake (fields in the order of 7.1; None values left out)."""
    peer.client_nonce = os.urandom(16) if client_nonce is None else client_nonce
    body: dict[str, Any] = {"capabilities": list(capabilities), "client_id": "conformance"}
    if auth is not None:
        body["auth"] = auth
    body["client_nonce"] = peer.client_nonce
    body.update({k: v for k, v in fields.items() if v is not None})
    return peer.wire(HANDSHAKE, body)


def authenticate(peer: Peer, secret: bytes = SECRET) -> bytes:
    proof = client_proof(secret, peer.nonce, peer.client_nonce)
    return peer.wire(AUTHENTICATE, {"method": "hmac", "proof": proof})


async def handshake(
    peer: Peer,
    *,
    secret: bytes = SECRET,
    auth: str = "hmac",
    capabilities: tuple[str, ...] = ("ack", "batch", "pubsub"),
    **fields: Any,
) -> dict[str, Any]:
    """Handshake (+ Authenticate for hmac, in the same flush) and the
    HandshakeResponse; encryption starts when ``encrypt`` was granted."""
    out = [hello(peer, auth=auth, capabilities=capabilities, **fields)]
    if auth == "hmac":
        out.append(authenticate(peer, secret))
    await peer.send_many(out)
    answer = await peer.expect(HANDSHAKE_RESPONSE, skip=())
    assert not answer.flags & ENCRYPTED, "HandshakeResponse sent ENCRYPTED"
    body: dict[str, Any] = answer.body
    body["_msg"] = answer
    peer.session_id = body["session_id"]
    peer.resume_token = body.get("resume_token") or b""
    if auth == "hmac":
        assert body.get("server_proof") == server_proof(secret, peer.nonce, peer.client_nonce)
    if "encrypt" in body.get("capabilities", ()):
        c2s, s2c = session_keys(secret, peer.nonce, peer.client_nonce)
        peer.outgoing, peer.incoming = Sealer(c2s, b"wspc"), Sealer(s2c, b"wsps")
    return body


async def session(port: int, **kw: Any) -> tuple[Peer, dict[str, Any]]:
    """A connection with a finished handshake."""
    peer = await challenged(port)
    return peer, await handshake(peer, **kw)


# ================================================================ the server side
async def accept_wsp(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, subprotocol: str = "wsp.v2"
) -> Peer:
    """Answer a client's upgrade with 101 selecting ``subprotocol`` (the raw
    transport's ``accept_raw_websocket`` cannot choose a subprotocol)."""
    buf = b""
    async with asyncio.timeout(TIMEOUT):
        while (head := parse_http_head(buf)) is None:
            chunk = await reader.read(65536)
            assert chunk, "the client hung up during the upgrade"
            buf += chunk
    request = UpgradeRequest.from_head(head)
    assert request.key is not None
    response_bytes = build_response(request.key, subprotocol=subprotocol)
    writer.write(response_bytes)
    await writer.drain()
    response_head = parse_http_head(response_bytes)
    assert response_head is not None
    conn = RawWebSocket(
        reader,
        writer,
        role="server",
        request=request,
        response=UpgradeResponse.from_head(response_head),
        pending=buf[head.length :],
    )
    return Peer(conn, masked=False)


Script = Callable[[Peer], Awaitable[Any]]


@contextlib.asynccontextmanager
async def raw_server(
    script: Script, *later: Script
) -> AsyncIterator[tuple[str, asyncio.Future[Any]]]:
    """A wsp server on 127.0.0.1 that runs ``script`` on its first connection (and
    ``later[i]`` on connection i + 2); yields (its URL, the last script's result).
    Connections beyond the scripts are dropped."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()
    scripts = [script, *later]
    peers: list[Peer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(peers)
        if result.done() or index >= len(scripts):
            writer.close()
            return
        try:
            peer = await accept_wsp(reader, writer)
            peers.append(peer)
            value = await scripts[index](peer)
        except BaseException as error:  # handed to the test
            if not result.done():
                result.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            if index == len(scripts) - 1 and not result.done():
                result.set_result(value)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}", result
    finally:
        for peer in peers:
            peer.conn.close()
        server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await server.wait_closed()
        if not result.done():
            result.cancel()


async def serve_handshake(
    peer: Peer,
    *,
    nonce: bytes | None = None,
    methods: tuple[str, ...] = ("hmac",),
    grant: tuple[str, ...] | None = None,
    proof: str = "good",  # "good", "wrong" or "missing"
    secret: bytes = SECRET,
    **fields: Any,
) -> dict[str, Any]:
    """The server's half of S.2 by hand; returns the client's Handshake."""
    peer.nonce = os.urandom(16) if nonce is None else nonce
    await peer.send(CHALLENGE, {"nonce": peer.nonce, "methods": list(methods)})
    hs = (await peer.expect(HANDSHAKE, skip=())).body
    peer.client_nonce = hs.get("client_nonce") or b""
    if hs.get("auth") == "hmac":
        auth = (await peer.expect(AUTHENTICATE, skip=())).body
        assert auth["proof"] == client_proof(secret, peer.nonce, peer.client_nonce)
    offered = tuple(hs.get("capabilities") or ())
    peer.session_id = 0x1234
    body: dict[str, Any] = {
        "session_id": peer.session_id,
        "capabilities": list(offered if grant is None else grant),
        "resume_token": b"opaque-token",
        "server_nonce": peer.nonce,
        "heartbeat_ms": 15000,
        "window": 1024,
        "resumed": False,
    }
    body.update(fields)
    if proof == "good":
        body["server_proof"] = server_proof(secret, peer.nonce, peer.client_nonce)
    elif proof == "wrong":
        body["server_proof"] = os.urandom(32)
    await peer.send(HANDSHAKE_RESPONSE, body)
    return hs


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ================================================================ what the tests assert
async def assert_closed(
    peer: Peer,
    code: int | tuple[int, ...],
    *,
    wsp_close: bool | None = True,
    timeout: float = TIMEOUT,
) -> list[Msg]:
    """The peer closes the WebSocket with ``code``. ``wsp_close`` True: a wsp Close
    with the same code comes first and nothing after it (S.7, "closed"); False: no
    wsp Close at all (S.7, "resumable"); None: if one comes, it has the same code.
    Returns the messages that came before the close frame."""
    closed, before = await peer.closed(timeout)
    codes = code if isinstance(code, tuple) else (code,)
    assert closed.code in codes, f"closed with {closed}, expected {code}; before it: {before}"
    closes = [m for m in before if m.code == CLOSE]
    if wsp_close is True:
        assert closes, f"no wsp Close before the WebSocket close {code}; before it: {before}"
        assert before[-1].code == CLOSE, f"something after the wsp Close: {before}"
    if wsp_close is False:
        assert not closes, f"a wsp Close on a resumable close: {before}"
    for close in closes:
        assert close.body["code"] == closed.code, f"wsp Close {close.body}, then {closed}"
    return before


async def run_client(url: str, **options: Any) -> Any:
    """A connected ``wsproto_tools.client.Client`` to ``url`` (no reconnection, short
    timeouts), or the exception its connect raised."""
    from wsproto_tools.client import Client

    settings: dict[str, Any] = {
        "secret": SECRET,
        "connect_attempts": 1,
        "max_attempts": 0,
        "open_timeout": TIMEOUT,
    }
    settings.update(options)
    client = Client(url, **settings)
    try:
        async with asyncio.timeout(TIMEOUT * 2):
            await client.connect()
    except Exception as error:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(TIMEOUT):
                await client.close()
        return error
    return client


async def stop_client(client: Any) -> None:
    if isinstance(client, BaseException):
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(TIMEOUT):
            await client.close()


async def client_closes(
    script: Script, *later: Script, subscribe: str | None = None, **options: Any
) -> Any:
    """Run the client against a raw server running ``script`` (then ``later`` on its
    reconnections); the last script's result (typically the client's close frame,
    read with :meth:`Peer.closed`)."""
    async with raw_server(script, *later) as (url, result):
        client = await run_client(url, **options)
        try:
            if subscribe is not None and not isinstance(client, BaseException):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(TIMEOUT):
                        await client.subscribe(subscribe)
            async with asyncio.timeout(TIMEOUT * 2):
                return await asyncio.shield(result)
        finally:
            await stop_client(client)


async def against_client(action: Script, **options: Any) -> Any:
    """A raw server that finishes the handshake with the real client, then runs
    ``action``; its result."""

    async def script(peer: Peer) -> Any:
        await serve_handshake(peer)
        return await action(peer)

    return await client_closes(script, **options)


async def client_closed(peer: Peer) -> tuple[Closed, list[Msg]]:
    return await peer.closed()
