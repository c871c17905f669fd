"""transports/wsio.py over real ``websockets`` peers on 127.0.0.1, and what it relies on.

wsio.py uses two things of ``websockets`` that its documentation does not make
public: ``Connection.process_event`` (overridden to hand each message to the
engine inside ``data_received``) and ``Connection.transport`` (its write buffer,
pausing reads); the client and the server read a few attributes of the
connection's sans-I/O ``protocol`` too. pyproject.toml pins the versions
tested; the first two tests here fail loudly, naming what is gone, when a
``websockets`` release drops any of them, and the others check the behaviour
built on them against the library's own client and server as the peer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.transports.wsio import (
    DirectClientConnection,
    DirectServerConnection,
    buffered,
    write_now,
)


def test_the_websockets_internals_wsio_relies_on_are_there() -> None:
    """If this fails, a websockets release changed what wsio.py overrides or reads:
    adapt wsio.py (DirectMixin, buffered) and the pin in pyproject.toml together."""
    version = websockets.version.version
    for cls in (Connection, ServerConnection, ClientConnection):
        method = cls.__dict__.get("process_event")
        assert method is not None, f"websockets {version}: {cls.__name__}.process_event is gone"
        assert list(inspect.signature(method).parameters) == ["self", "event"], (
            f"websockets {version}: {cls.__name__}.process_event(event) changed its signature"
        )
    source = inspect.getsource(Connection.data_received)
    assert "self.process_event(event)" in source, (
        f"websockets {version}: data_received no longer calls process_event per event"
    )
    assert "self.transport = transport" in inspect.getsource(Connection.connection_made), (
        f"websockets {version}: connection_made no longer keeps the transport"
    )


#: Attributes of a live connection's ``protocol`` (and of the connection) that the
#: package reads outside wsio.py: client/plain.py (who closed first, the extensions),
#: client/api.py (the server's protocol error, sending a close without waiting)
#: and server/app.py (the state).
PROTOCOL_ATTRIBUTES = (
    "state", "close_rcvd", "close_sent", "close_rcvd_then_sent", "extensions", "parser_exc",
    "send_close",
)
CONNECTION_ATTRIBUTES = ("protocol", "transport", "send_data")


async def test_the_attributes_read_on_live_connections_are_there() -> None:
    version = websockets.version.version

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            missing = [name for name in CONNECTION_ATTRIBUTES if not hasattr(client, name)]
            missing += [
                f"protocol.{name}" for name in PROTOCOL_ATTRIBUTES
                if not hasattr(client.protocol, name)
            ]
            assert missing == [], f"websockets {version} no longer has {missing}"
            assert [ext.name for ext in client.protocol.extensions] == ["permessage-deflate"]
            assert client.protocol.close_rcvd is None and client.protocol.parser_exc is None
        assert client.protocol.close_sent is not None and client.protocol.close_sent.code == 1000


@contextlib.asynccontextmanager
async def direct_server() -> AsyncIterator[tuple[int, asyncio.Queue[Any]]]:
    """A websockets server whose connections are DirectServerConnection; the queue
    gets ``(connection, message list)`` for each, the list filled by ``on_message``."""
    accepted: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, DirectServerConnection)
        got: list[bytes | str] = []
        ws.attach(got.append)
        await accepted.put((ws, got))
        await ws.wait_closed()

    async with serve(
        handler, "127.0.0.1", 0, create_connection=DirectServerConnection, compression=None
    ) as server:
        yield int(next(iter(server.sockets)).getsockname()[1]), accepted


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_messages_reach_the_handler_whole_and_in_order() -> None:
    async with direct_server() as (port, accepted), connect(
        f"ws://127.0.0.1:{port}", compression=None
    ) as client:
        ws, got = await asyncio.wait_for(accepted.get(), 5)
        await client.send("héllo")
        await client.send(b"\x00\xff")
        await client.send(["frag", "mented"])  # websockets sends it as three frames
        latency = await asyncio.wait_for(await client.ping(b"p"), 5)  # control frames pass
        await client.send(b"last")
        await until(lambda: len(got) == 4)
        assert got == ["héllo", b"\x00\xff", "fragmented", b"last"]
        assert latency >= 0
        # nothing was queued for recv(): the handler had every message
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.05)


async def test_write_now_frames_a_binary_message_the_peer_reads() -> None:
    async with direct_server() as (port, accepted), connect(
        f"ws://127.0.0.1:{port}", compression=None
    ) as client:
        ws, _ = await asyncio.wait_for(accepted.get(), 5)
        assert write_now(ws, b"one") and write_now(ws, b"two")
        assert [await client.recv(), await client.recv()] == [b"one", b"two"]
        await client.close()
        await ws.wait_closed()
        assert write_now(ws, b"late") is False  # not open: nothing written, no error


async def test_write_now_refuses_while_a_fragmented_message_is_being_sent() -> None:
    async with direct_server() as (port, accepted), connect(
        f"ws://127.0.0.1:{port}", compression=None
    ) as client:
        ws, _ = await asyncio.wait_for(accepted.get(), 5)
        started, release = asyncio.Event(), asyncio.Event()

        async def parts() -> AsyncIterator[bytes]:
            yield b"first "
            started.set()  # the first fragment is out: the message is open
            await release.wait()
            yield b"second"

        sending = asyncio.create_task(ws.send(parts()))
        await asyncio.wait_for(started.wait(), 5)
        assert write_now(ws, b"between") is False  # would break the fragmented message
        release.set()
        await sending
        assert write_now(ws, b"after")
        assert [await client.recv(), await client.recv()] == [b"first second", b"after"]


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def test_buffered_counts_what_a_peer_does_not_read_and_on_drain_fires() -> None:
    async with direct_server() as (port, accepted):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request(port))
        await reader.readuntil(b"\r\n\r\n")
        ws, _ = await asyncio.wait_for(accepted.get(), 5)
        drained: list[int] = []
        ws.on_drain = lambda: drained.append(buffered(ws))
        assert buffered(ws) == 0
        chunk = bytes(64 * 1024)
        written = 0
        while buffered(ws) < 1024 * 1024:  # the kernel takes some, the rest waits here
            assert write_now(ws, chunk)
            written += len(chunk)
            assert written < 256 * 1024 * 1024, "the write buffer never filled"
        assert not drained
        read = 0
        async with asyncio.timeout(10):
            while not drained:
                read += len(await reader.read(1 << 20))
        # asyncio resumes writing below the low-water mark: a quarter of websockets'
        # default write_limit of 32 KiB
        assert drained[0] <= 8 * 1024
        writer.close()


async def test_on_lost_is_called_once_when_tcp_goes() -> None:
    async with direct_server() as (port, accepted):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request(port))
        await reader.readuntil(b"\r\n\r\n")
        ws, _ = await asyncio.wait_for(accepted.get(), 5)
        lost: list[bool] = []
        ws.on_lost = lambda: lost.append(True)
        writer.transport.abort()
        await until(lambda: bool(lost))
        await asyncio.sleep(0.05)
        assert lost == [True]


async def test_client_side_keeps_early_messages_for_attach() -> None:
    sent = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.send("early")
        await ws.send([b"\x01\x02", b"\x03"])  # one message in two frames
        sent.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", create_connection=DirectClientConnection,
            compression=None,
        ) as client:
            assert isinstance(client, DirectClientConnection)
            await asyncio.wait_for(sent.wait(), 5)
            await asyncio.sleep(0.05)  # both messages arrived before anyone attached
            got: list[bytes | str] = []
            client.attach(got.append)
            assert got == ["early", b"\x01\x02\x03"]
