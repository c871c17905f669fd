"""Checklist rules 1-5 (upgrade and decode) against the reference server, on raw frames."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import zlib
from typing import Any

import pytest

from .wire import (
    BINARY,
    HEARTBEAT,
    OP_BINARY,
    OP_TEXT,
    PUBLISH,
    SUBSCRIBE,
    SUBSCRIBED,
    TEXT,
    TIMEOUT,
    Closed,
    Peer,
    against_client,
    assert_closed,
    authenticate,
    challenged,
    connect,
    frame,
    header,
    hello,
    pack,
    session,
)


async def upgrade(port: int, protocol_header: str | None) -> tuple[int, bytes, bytes]:
    """A hand-written upgrade request; (status, head, body) of the answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if protocol_header is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocol_header}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        data = b""
        async with asyncio.timeout(TIMEOUT):
            while b"\r\n\r\n" not in data:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                body += chunk
    finally:
        writer.close()
    status = int(head.split(b" ", 2)[1])
    return status, head, body


async def client_gets(data: bytes, opcode: int = OP_BINARY, **options: Any) -> Closed:
    """The real client's close after a raw server sent it ``data`` (one frame)."""

    async def action(peer: Peer) -> Closed:
        await peer.send_bytes(frame(opcode, data, mask=None))
        closed, _ = await peer.closed()
        return closed

    closed: Closed = await against_client(action, **options)
    return closed


# ---------------------------------------------------------------- rule 1
async def test_rule_01_subprotocol(wsp_server: Any) -> None:
    async with wsp_server() as port:
        # the server selects the first offered version it speaks (S.1)
        for offered, selected in (("wsp.v2, wsp.v1", "wsp.v2"), ("chat, wsp.v1", "wsp.v1")):
            peer = await connect(port, tuple(p.strip() for p in offered.split(",")))
            assert peer.conn.response is not None
            assert peer.conn.response.subprotocol == selected
            await peer.drop()
        # none shared: HTTP 400 before any WebSocket exists, the body names the header
        for protocol_header in (None, "chat, superchat"):
            status, head, body = await upgrade(port, protocol_header)
            assert status == 400, f"offered {protocol_header!r}: {head.decode(errors='replace')}"
            assert b"Sec-WebSocket-Protocol" in body, body


# ---------------------------------------------------------------- rule 2
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_02_binary_only(wsp_server: Any, side: str) -> None:
    if side == "client":
        closed = await client_gets(b"hello", OP_TEXT)
        assert closed.code == 1003, closed
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send_frame(OP_TEXT, b"hello")
        await assert_closed(peer, 1003)


# ---------------------------------------------------------------- rule 3
V1_TEXT = (
    struct.pack("<HBBHQIQI", 0xC0D1, 1, 0, TEXT, 0, 1, 0, 2) + b"hi"
)  # a valid v1 TextData: not v2

BAD_HEADERS = {
    "reserved-bit-3": bytes((0x48, 0x41, 0x01)) + b"hi",
    "type-byte-0xc1": bytes((0x40, 0xC1, 0x01)) + b"hi",
    "escape-for-a-one-byte-code": bytes((0x40, 0xC0, 0x01, 0x01, 0x01)) + b"hi",
    "non-minimal-varint": bytes((0x40, 0x41, 0x81, 0x00)) + b"hi",
    "session-id-zero": bytes((0x60, 0x41, 0x01, 0x00)) + b"hi",
    "truncated-varint": bytes((0x40, 0x41, 0x81)),
    "empty": b"",
    "v1-header-on-v2": V1_TEXT,
}


@pytest.mark.parametrize(
    "case", [*sorted(BAD_HEADERS), "to-the-client:reserved-bit-3", "to-the-client:v1-header-on-v2"]
)
async def test_rule_03_header(wsp_server: Any, case: str) -> None:
    if case.startswith("to-the-client:"):
        closed = await client_gets(BAD_HEADERS[case.split(":", 1)[1]])
        assert closed.code == 1002, closed
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send_frame(OP_BINARY, BAD_HEADERS[case])
        # also a v1 message on a v2 connection: rule 3 says 1002 (section 9's table
        # lists 1003 for "a wire version not negotiated"; the checklist decides)
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 4
def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


BAD_PAYLOADS: dict[str, tuple[tuple[str, ...], bytes]] = {
    # case: (capabilities offered, the whole wsp message)
    "bad-utf8": ((), header(TEXT, 1) + b"h\xffi"),
    "utf8-surrogate": ((), header(TEXT, 1) + b"\xed\xa0\x80"),
    "bad-msgpack": ((), header(SUBSCRIBE) + b"\xc1"),
    "not-a-map": ((), header(SUBSCRIBE) + pack(["topic", "t"])),
    "missing-field": ((), header(PUBLISH, 1) + pack({"topic": "t"})),
    "ill-typed-field": ((), header(SUBSCRIBE) + pack({"topic": 5})),
    "str-for-bytes": ((), header(PUBLISH, 1) + pack({"topic": "t", "data": "text"})),
    "trailing-bytes": ((), header(SUBSCRIBE) + pack({"topic": "t"}) + b"\x00"),
    "non-str-key": ((), header(SUBSCRIBE) + pack({"topic": "t", 1: 2})),
    "extension-type": ((), header(SUBSCRIBE) + b"\x82" + pack("topic") + pack("t") + pack("x")
                       + b"\xd4\x01\x00"),  # fixext 1: extension types are not allowed
    "bad-deflate": (("compress",), header(TEXT, 1, flags=0x01) + b"\xff\xff\xff\xff"),
    "deflate-trailing-bytes": (("compress",), header(BINARY, 1, flags=0x01)
                               + raw_deflate(b"hi") + b"junk"),
}


TO_THE_CLIENT_4 = {
    "to-the-client:bad-utf8": header(TEXT, 1) + b"h\xffi",
    "to-the-client:missing-field": header(SUBSCRIBED) + pack({"topic": "t", "epoch": 1}),
}


@pytest.mark.parametrize(
    "case", [*sorted(BAD_PAYLOADS), "str-resume-token", *sorted(TO_THE_CLIENT_4)]
)
async def test_rule_04_payload(wsp_server: Any, case: str) -> None:
    if case in TO_THE_CLIENT_4:
        closed = await client_gets(TO_THE_CLIENT_4[case])
        assert closed.code == 1007, closed
        return
    async with wsp_server() as port:
        if case == "str-resume-token":
            # S.2: resume tokens are msgpack bin; a str there is a wrongly typed field
            peer = await challenged(port)
            await peer.send_many([hello(peer, resume_token="abc", last_received=0),
                                  authenticate(peer)])
            await assert_closed(peer, 1007)
            return
        capabilities, message = BAD_PAYLOADS[case]
        peer, granted = await session(port, capabilities=("ack", "pubsub", *capabilities))
        assert set(capabilities) <= set(granted["capabilities"])
        await peer.send_frame(OP_BINARY, message)
        await assert_closed(peer, 1007)


# ---------------------------------------------------------------- rule 5
def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


LIMITS: dict[str, bytes] = {
    # section 8 defaults: 256 map entries, 1024 array items, depth 8
    "map-entries": header(SUBSCRIBE)
    + pack({"topic": "t", **{f"k{i}": i for i in range(300)}}),
    "array-items": header(SUBSCRIBE) + pack({"topic": "t", "x": list(range(1100))}),
    "depth": header(SUBSCRIBE) + pack({"topic": "t", "x": nested(10)}),
}


@pytest.mark.parametrize(
    "case",
    [*sorted(LIMITS), "message-size", "to-the-client:map-entries", "to-the-client:message-size"],
)
async def test_rule_05_limits(wsp_server: Any, case: str) -> None:
    if case == "to-the-client:map-entries":
        big = header(HEARTBEAT) + pack({"id": 1, **{f"k{i}": i for i in range(300)}})
        closed = await client_gets(big)
        assert closed.code == 1009, closed
        return
    if case == "to-the-client:message-size":
        closed = await client_gets(header(BINARY, 1) + b"x" * 5000, max_message_size=4096)
        assert closed.code == 1009, closed
        return
    if case == "message-size":
        # --max-message-size: 1009, and S.7 calls it resumable (no wsp Close)
        async with wsp_server(max_message_size=4096) as port:
            peer, _ = await session(port)
            await peer.send(BINARY, b"x" * 5000, seq=1)
            await assert_closed(peer, 1009, wsp_close=False)
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send_frame(OP_BINARY, LIMITS[case])
        await assert_closed(peer, 1009)

