"""The malicious server's wire: the WebSocket upgrade it answers and one upgraded
connection, server side (frames in and out, the client's wsp decoded, its bad bytes noted).
"""

from __future__ import annotations

__all__ = ["Closed", "Link", "accept", "raw_message"]

import asyncio
import contextlib
import struct
from dataclasses import dataclass
from typing import Any

from wsproto_tools.codec import Cipher, Limits, Message, decode, encode
from wsproto_tools.codec.header import pack_v2
from wsproto_tools.codec.schema import V1_MAGIC, V1_STRUCT
from wsproto_tools.engine.rules import Rule
from wsproto_tools.exceptions import CloseCode, WspError
from wsproto_tools.transports.raw import RawWebSocket
from wsproto_tools.ws import (
    FrameParser,
    Opcode,
    UpgradeRequest,
    UpgradeResponse,
    build_response,
    encode_close,
    encode_frame,
    parse_close,
    parse_http_head,
)

_C = CloseCode
#: the checklist rule a decoding error of the client's breaks, by its close code
_DECODE_RULES = {
    int(_C.PROTOCOL_ERROR): Rule.HEADER,
    int(_C.INVALID_DATA): Rule.PAYLOAD,
    int(_C.MESSAGE_TOO_BIG): Rule.LIMITS,
}


@dataclass(frozen=True, slots=True)
class Closed:
    """The client's end: its close frame code (None: no code), or a drop."""

    code: int | None
    reason: str
    dropped: bool


class Link:
    """One upgraded connection, server side: frames in and out, wsp decoded."""

    def __init__(self, conn: RawWebSocket, version: int, limits: Limits) -> None:
        self.conn = conn
        self.version = version
        self.limits = limits
        self.parser = FrameParser(max_payload=limits.max_message + 64)
        self.pending: list[Any] = []  # frames parsed, not yet handled
        self.parts: list[bytes] = []
        self.closed: Closed | None = None
        self.sent_close = False
        #: what the client sent that is no wsp message: (checklist rule or None, what)
        self.bad: list[tuple[int | None, str]] = []

    async def send(self, data: bytes) -> None:
        if self.closed is not None:
            return
        try:
            await self.conn.send(data)
        except (WspError, OSError):
            self.closed = Closed(None, "", True)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        await self.send(encode_frame(opcode, payload))

    async def close(self, code: int, reason: str = "") -> None:
        if not self.sent_close:
            self.sent_close = True
            await self.send_frame(Opcode.CLOSE, encode_close(code, reason))

    async def next(self, timeout: float) -> Message | Closed | None:
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
                self.closed = Closed(None, "", True)
                continue
            try:
                self.pending.extend(self.parser.feed(data))
            except WspError as error:
                self.bad.append((None, f"a bad WebSocket frame: {error}"))
                self.closed = Closed(None, "", True)

    async def _frame(self, frame: Any) -> Message | Closed | None:
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
            self.closed = Closed(code, reason.decode("utf-8", "replace"), False)
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


def raw_message(
    version: int, code: int, body: bytes, flags: int = 0, seq: int = 0, session_id: int = 0
) -> bytes:
    """A header written around ``body`` as it is (for payloads the codec refuses)."""
    if version == 2:
        return pack_v2(code, flags, seq) + body
    return struct.pack(V1_STRUCT, V1_MAGIC, 1, flags, code, session_id, seq, 0, len(body)) + body


async def accept(
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
