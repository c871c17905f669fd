"""A TCP proxy for the scale-out tests: each new connection goes to a random live
node, and :meth:`Proxy.cut` drops connections at random (both sides at once)."""

from __future__ import annotations

import asyncio
import contextlib
import random


class Proxy:
    """Listens on 127.0.0.1; ``ports`` are the nodes it may pick from."""

    def __init__(self, ports: list[int], rng: random.Random) -> None:
        self.ports = list(ports)
        self.rng = rng
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0
        self.cuts = 0
        self.routed: dict[int, int] = {}

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        port = self.rng.choice(self.ports)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # a dead node: the client tries again
            writer.transport.abort()
            return
        self.routed[port] = self.routed.get(port, 0) + 1
        link = (writer, up_writer)
        self.links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def cut(self, count: int = 1) -> int:
        """Drop up to ``count`` live connections picked at random; how many were cut."""
        links = list(self.links)
        self.rng.shuffle(links)
        for client, upstream in links[:count]:
            client.transport.abort()
            upstream.transport.abort()
            self.cuts += 1
        return min(count, len(links))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for client, upstream in list(self.links):
            client.transport.abort()
            upstream.transport.abort()
