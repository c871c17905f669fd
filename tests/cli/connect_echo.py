"""A plain WebSocket echo server (the websockets library) in a thread, for CLI tests.

It records what reached it — the handshake's headers, the subprotocol it selected,
each message and the close code the client sent — so tests check what the client
did at the other end of a real connection. It selects ``chat`` when offered (and no
subprotocol otherwise), echoes every message, and closes with 4000 "bye" when it
receives the text ``bye``. ``refuse`` answers every handshake with that HTTP status.
"""

from __future__ import annotations

__all__ = ["EchoServer", "Seen"]

import asyncio
import http
import ssl
import threading
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


@dataclass
class Seen:
    """One connection, as the server saw it."""

    headers: Headers
    subprotocol: str | None
    extensions: list[str]
    messages: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None  # the code of the client's Close frame
    closed: threading.Event = field(default_factory=threading.Event)


class EchoServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None, refuse: int | None = None):
        self.ssl_context = ssl_context
        self.refuse = refuse
        self.connections: list[Seen] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="echo-server", daemon=True)

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/echo"

    def __enter__(self) -> EchoServer:
        self._thread.start()
        assert self._ready.wait(10), "the echo server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()

        def select(conn: ServerConnection, offered: object) -> str | None:
            return "chat" if isinstance(offered, list) and "chat" in offered else None

        def process_request(conn: ServerConnection, request: Request) -> Response | None:
            if self.refuse is not None:
                status = http.HTTPStatus(self.refuse)
                return conn.respond(status, f"refused by the test server ({status.phrase})\n")
            return None

        async with serve(
            self._handler,
            "127.0.0.1",
            0,
            ssl=self.ssl_context,
            select_subprotocol=select,  # type: ignore[arg-type]
            process_request=process_request,
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        seen = Seen(
            ws.request.headers,
            ws.subprotocol,
            [ext.name for ext in ws.protocol.extensions],
        )
        self.connections.append(seen)
        try:
            async for message in ws:
                seen.messages.append(message)
                if message == "bye":
                    await ws.close(4000, "bye")
                    break
                await ws.send(message)
        finally:
            await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            seen.close_code = rcvd.code if rcvd is not None else None
            seen.closed.set()
