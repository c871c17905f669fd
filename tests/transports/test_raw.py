"""The raw-wire transport (transports/raw.py) on real sockets (127.0.0.1, OS-assigned ports).

``websockets_echo`` is the library's echo server (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsproto_tools.exceptions import ConnectionFailed, HandshakeError
from wsproto_tools.transports.raw import accept_raw_websocket, open_raw_websocket
from wsproto_tools.ws import FrameParser, encode_frame


async def test_client_sends_arbitrary_bytes_and_reads_raw(websockets_echo: Any) -> None:
    async with websockets_echo() as port:
        conn = await open_raw_websocket("127.0.0.1", port, "/", timeout=2)
        assert conn.role == "client" and conn.response is not None and conn.response.is_upgrade
        frame = encode_frame(1, b"hi there", mask=b"\x01\x02\x03\x04")
        await conn.send(frame[:3])  # half a frame, then the rest
        assert await conn.read(0.05) is None  # nothing yet: a timeout, not an error
        await conn.send(frame[3:])
        parser = FrameParser()
        frames = []
        for _ in range(20):
            data = await conn.read(2.0)
            assert data
            frames += parser.feed(data)
            if frames:
                break
        assert frames[0].payload == b"hi there" and frames[0].mask is None
        # A reserved opcode: the server fails the connection and closes the stream.
        await conn.send(encode_frame(3, b"", mask=b"\x00\x00\x00\x00"))
        seen = b""
        for _ in range(20):
            data = await conn.read(2.0)
            if not data:
                break
            seen += data
        assert data == b"" and conn.eof
        assert parser.feed(seen)[0].opcode == 8
        await conn.wait_closed()


async def test_offer_and_negotiated_extension(websockets_echo: Any) -> None:
    async with websockets_echo() as port:
        conn = await open_raw_websocket(
            "127.0.0.1", port, "/x", extensions="permessage-deflate; client_max_window_bits"
        )
        assert conn.response is not None and conn.response.deflate is not None
        await conn.wait_closed()


async def test_refused_and_non_websocket_peers(websockets_echo: Any) -> None:
    async with websockets_echo() as port:
        pass
    with pytest.raises(ConnectionFailed):
        await open_raw_websocket("127.0.0.1", port, "/", timeout=2)

    async def http_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_only, "127.0.0.1", 0)
    async with server:
        http_port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError, match="404"):
            await open_raw_websocket("127.0.0.1", http_port, "/", timeout=2)


async def test_server_side_accept_and_bytes_after_the_head() -> None:
    accepted: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = await accept_raw_websocket(
            reader, writer, choose_extensions=lambda request: None, timeout=2
        )
        assert conn.role == "server" and conn.request.path == "/runCase?case=1"
        data = await conn.read(2.0)
        await accepted.put(data or b"")
        await conn.send(encode_frame(1, b"ok"))
        await conn.wait_closed()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /runCase?case=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\nEXTRA"
        )
        await writer.drain()
        assert await asyncio.wait_for(accepted.get(), 5) == b"EXTRA"
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        writer.close()


async def test_a_wrong_accept_key_is_refused() -> None:
    """RFC 6455 4.1: the client fails the connection when Sec-WebSocket-Accept is not
    the one of its key (here: the RFC example's accept, for a different key)."""

    async def wrong_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(wrong_accept, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeError, match="wrong Sec-WebSocket-Accept"):
            await open_raw_websocket("127.0.0.1", port, "/", key="AQIDBAUGBwgJCgsMDQ4PEA==",
                                     timeout=2)
        conn = await open_raw_websocket(  # the key the RFC example's accept belongs to
            "127.0.0.1", port, "/", key="dGhlIHNhbXBsZSBub25jZQ==", timeout=2
        )
        assert conn.response is not None and conn.response.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        conn.close()
        await conn.wait_closed()
