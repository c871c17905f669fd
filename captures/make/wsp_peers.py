"""Samples made with the project's own wsp server and client library.

Run as root: ``python captures/make/wsp_peers.py``. Every connection goes
through a small TCP relay on the captured port, so the subscriber's connection
can be cut with a TCP reset: the client library reconnects and resumes its
session. The publisher logs each Publish it sent and the subscriber each
Deliver it received (the server sent it); those logs are the expected files
(``match: subsequence``: heartbeats, acks and the handshake are there too, in
between, and are checked by the session observer, which must find nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAPTURES, Log, free_port, recording

from wsproto_tools.client import Client
from wsproto_tools.server import ServerConfig, WspServer

SECRET = b"sample-secret"


class Relay:
    """Forwards TCP connections to the server; ``reset(i)`` cuts the i-th with an RST."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.pairs.append((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def reset(self, index: int) -> None:
        for writer in self.pairs[index]:
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def session(version: int, *, resume: bool, log: Log, port: int) -> None:
    server = WspServer(ServerConfig(port=0, secret=SECRET, heartbeat_interval=0.5))
    await server.start()
    relay = Relay(port, server.port)
    await relay.start()
    url = f"ws://127.0.0.1:{port}/"
    sub = Client(url, secret=SECRET, version=version, backoff_base=0.05, seed=1,
                 heartbeat_interval=0.5)
    pub = Client(url, secret=SECRET, version=version, seed=2, heartbeat_interval=0.5)
    try:
        await sub.connect()
        subscription = await sub.subscribe("prices")
        await pub.connect()
        sub_conn = 1
        for i in range(1, 4):
            data = f"tick {i}".encode()
            await pub.publish("prices", data)
            log.sent(2, "client", "binary", None, wsp={"type": "Publish",
                                               "payload": {"topic": "prices", "data": data.hex()}})
        for _ in range(3):
            item = await asyncio.wait_for(subscription.get(), 5)
            log.sent(sub_conn, "server", "binary", None, wsp={
                "type": "Deliver",
                "payload": {"topic": "prices", "data": item.data.hex(), "offset": item.offset}})
        await asyncio.sleep(1.2)  # heartbeats both ways
        if resume:
            relay.reset(0)
            sub_conn = 3
            # the client reconnects and resumes by itself; wait until it is back
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(relay.pairs) >= 3:
                    break
            await asyncio.sleep(0.3)
        for i in range(4, 6):
            data = f"tick {i}".encode()
            await pub.publish("prices", data)
            log.sent(2, "client", "binary", None, wsp={"type": "Publish",
                                               "payload": {"topic": "prices", "data": data.hex()}})
        for _ in range(2):
            item = await asyncio.wait_for(subscription.get(), 10)
            log.sent(sub_conn, "server", "binary", None, wsp={
                "type": "Deliver",
                "payload": {"topic": "prices", "data": item.data.hex(), "offset": item.offset}})
    finally:
        await pub.close()
        await sub.close()
        await relay.stop()
        await server.shutdown()
    sub_protocol = f"wsp.v{version}"
    for conn in (1, 2, 3) if resume else (1, 2):
        log.connection(conn, subprotocol=sub_protocol, handshake=True)


async def main() -> None:
    for version, resume in ((2, True), (1, False)):
        name = f"wsp-session-v{version}"
        port = free_port()
        log = Log()
        log.extra["match"] = "subsequence"
        log.extra["violations"] = {}
        loop = asyncio.get_running_loop()
        cm = recording(CAPTURES / f"{name}.pcap", port)
        await loop.run_in_executor(None, cm.__enter__)
        try:
            await session(version, resume=resume, log=log, port=port)
        finally:
            await loop.run_in_executor(None, cm.__exit__, None, None, None)
        how = (f"wsp server and client library (wsp.v{version}, HMAC auth, heartbeats every "
               "0.5 s), a subscriber and a publisher through a TCP relay")
        if resume:
            how += "; the subscriber's connection is reset and the client resumes (conn 3)"
        log.write(name, how)


if __name__ == "__main__":
    asyncio.run(main())
