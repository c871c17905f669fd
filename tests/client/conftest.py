"""A TCP proxy on 127.0.0.1 that can reset connections mid-frame."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP RST (SO_LINGER 0), not a clean close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ResetProxy:
    """Forwards one client at a time to the server; can reset it at a byte offset.

    ``arm(n)`` makes the proxy reset both TCP connections after forwarding ``n``
    more server->client bytes, cutting whatever frame is in flight at that point.
    ``refuse = True`` resets new connections at once (a server that is gone).
    """

    def __init__(self, target_port: int, rng: random.Random) -> None:
        self.target_port = target_port
        self.rng = rng
        self.port = 0
        self.resets = 0
        self.mid_frame = 0
        self.refuse = False
        self.budget: int | None = None
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in list(self._live):
            _reset(writer)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def arm(self, budget: int) -> None:
        self.budget = budget

    def reset_now(self) -> None:
        for writer in list(self._live):
            _reset(writer)
        self.resets += 1

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            _reset(c_writer)
            return
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(c_writer)
            return
        self._live.update((c_writer, s_writer))
        pair = (c_writer, s_writer)
        up = asyncio.create_task(self._pump(c_reader, s_writer, pair, downstream=False))
        down = asyncio.create_task(self._pump(s_reader, c_writer, pair, downstream=True))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for writer in pair:
            _reset(writer)
            self._live.discard(writer)
        up.cancel()
        down.cancel()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, ...],
        *,
        downstream: bool,
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                budget = self.budget
                if downstream and budget is not None and len(chunk) > budget:
                    writer.write(chunk[:budget])  # then reset: the frame is cut
                    self.budget = None
                    self.resets += 1
                    if budget > 0:
                        self.mid_frame += 1
                    for w in pair:
                        _reset(w)
                    return
                if downstream and budget is not None:
                    self.budget = budget - len(chunk)
                writer.write(chunk)
                await writer.drain()


@pytest.fixture
async def proxy_to() -> AsyncIterator[Callable[..., Any]]:
    made: list[ResetProxy] = []

    async def make(port: int, seed: int = 0) -> ResetProxy:
        proxy = ResetProxy(port, random.Random(seed))
        await proxy.start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        await proxy.stop()
