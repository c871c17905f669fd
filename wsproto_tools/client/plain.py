"""A plain WebSocket client session: any server, text and binary messages, no wsp.

    session = PlainSession("wss://echo.example/", PlainOptions(headers=(("X-Key", "k"),)))
    await session.open()                    # ConnectionFailed with one line on failure
    await session.send("hello")             # str: a text message, bytes: a binary one
    message = await session.recv()          # a Message, or None once the connection closed
    print(session.close_info)               # who closed, with which code and reason

It wraps the websockets library's asyncio client (RFC 6455, permessage-deflate
from RFC 7692 when negotiated) and turns its errors into the package's
:class:`~wsproto_tools.exceptions.ConnectionFailed`, each said in one line: a
refused handshake names the HTTP status, a TLS failure says it was the
certificate and why (in the wsp client's words:
:func:`~wsproto_tools.client.api.connect_failure`).
``wsp connect`` uses it when the server selects no wsp subprotocol, or with ``--raw``.
"""

from __future__ import annotations

__all__ = [
    "CloseInfo",
    "Direction",
    "Kind",
    "Message",
    "PlainOptions",
    "PlainSession",
    "parse_header",
]

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from websockets.protocol import State as WsState
from websockets.typing import Origin, Subprotocol

from wsproto_tools import __version__
from wsproto_tools.client.api import connect_failure
from wsproto_tools.exceptions import CloseCode, ConfigError, ConnectionFailed

#: The User-Agent header sent unless the caller gives one (``-H "User-Agent: …"``).
USER_AGENT = f"wsp/{__version__}"


class Direction(StrEnum):
    """Which way a message went."""

    IN = "in"
    OUT = "out"


class Kind(StrEnum):
    """A WebSocket message's opcode, as shown to people and in NDJSON (RFC 6455 §5.2)."""

    TEXT = "text"
    BINARY = "binary"


@dataclass(frozen=True)
class PlainOptions:
    """How to open the connection (all optional)."""

    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    ping_interval: float | None = 20.0  # keepalive pings; None: none
    ping_timeout: float | None = 20.0
    max_size: int | None = 1 << 20  # largest incoming message; None: no limit
    deflate: bool = True  # offer permessage-deflate
    ssl: ssl.SSLContext | None = None  # wss:// only; None: the system's defaults
    open_timeout: float = 10.0
    close_timeout: float = 2.0


@dataclass(frozen=True)
class Message:
    """One WebSocket message, sent or received, with the wall-clock time it happened."""

    direction: Direction
    data: str | bytes
    time: float

    @property
    def kind(self) -> Kind:
        return Kind.TEXT if isinstance(self.data, str) else Kind.BINARY


@dataclass(frozen=True)
class CloseInfo:
    """How the connection ended (RFC 6455 §7.1.5: the code in the first Close frame)."""

    code: int | None  # None: closed without a Close frame (1006)
    reason: str
    by_server: bool  # the server's Close frame came first (or the TCP connection dropped)
    requested: bool = False  # the user asked to close (end of input, /close, Ctrl-C)

    @property
    def clean(self) -> bool:
        """Closed as asked, or by the server with 1000 (normal closure)."""
        return self.requested or (self.by_server and self.code == CloseCode.NORMAL)

    def describe(self) -> str:
        """``4000 bye`` / ``1006 (no close frame)``."""
        if self.code is None:
            return f"{int(CloseCode.ABNORMAL)} (the connection was lost without a close frame)"
        return f"{self.code} {self.reason}".rstrip() if self.reason else f"{self.code} (no reason)"


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` -> ``("Name", "value")``; raise ConfigError otherwise."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in ' \t()<>@,;\\"/[]?={}') or not name.isascii():
        raise ConfigError(f"header {text!r}: expected 'Name: value'")
    return name, value.strip()


def _first_line(body: bytes | bytearray | None, limit: int = 160) -> str:
    """The first line of an HTTP error body, shortened: often the server's reason."""
    text = (body or b"")[:4096].decode("utf-8", "replace").strip()
    line = text.splitlines()[0].strip() if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class PlainSession:
    """One WebSocket connection, messages in both directions, nothing on top."""

    def __init__(self, url: str, options: PlainOptions | None = None) -> None:
        self.url = url
        self.options = options or PlainOptions()
        self.ws: ClientConnection | None = None
        self._close_info: CloseInfo | None = None
        self._closing_by_us = False

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Connect and finish the opening handshake (RFC 6455 §4.1)."""
        o = self.options
        secure = self.url.lower().startswith("wss:")
        extra: dict[str, Any] = {}  # only ssl, and only for wss:// (websockets refuses it for ws://)
        if secure and o.ssl is not None:
            extra["ssl"] = o.ssl
        try:
            self.ws = await connect(
                self.url,
                origin=Origin(o.origin) if o.origin else None,
                subprotocols=[Subprotocol(name) for name in o.subprotocols] or None,
                compression="deflate" if o.deflate else None,
                additional_headers=list(o.headers) or None,
                user_agent_header=USER_AGENT,
                proxy=None,
                open_timeout=o.open_timeout,
                ping_interval=o.ping_interval,
                ping_timeout=o.ping_timeout,
                close_timeout=o.close_timeout,
                max_size=o.max_size,
                **extra,
            )
        except InvalidURI:
            raise ConfigError(f"not a WebSocket URL: {self.url}") from None
        except InvalidStatus as error:
            response = error.response
            said = _first_line(response.body)
            raise ConnectionFailed(
                f"{self.url}: the server refused the WebSocket handshake: "
                f"HTTP {response.status_code} {response.reason_phrase}"
                + (f" ({said})" if said else "")
            ) from None
        except (OSError, TimeoutError, InvalidMessage) as error:
            why = connect_failure(error, o.open_timeout, secure)
            raise ConnectionFailed(f"cannot connect to {self.url}: {why}") from None
        except InvalidHandshake as error:
            raise ConnectionFailed(f"{self.url}: WebSocket handshake failed: {error}") from None

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected, if any."""
        return None if self.ws is None else self.ws.subprotocol

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        if self.ws is None or self.ws.response is None:
            return []
        return list(self.ws.response.headers.raw_items())

    @property
    def extensions(self) -> list[str]:
        if self.ws is None:
            return []
        return [ext.name for ext in self.ws.protocol.extensions]

    @property
    def close_info(self) -> CloseInfo | None:
        """How the connection ended; None while it is open."""
        return self._close_info

    def _ended(self, error: ConnectionClosed | None = None) -> CloseInfo:
        if self._close_info is None:
            protocol = self._require().protocol
            rcvd, sent = protocol.close_rcvd, protocol.close_sent
            if rcvd is not None and (sent is None or protocol.close_rcvd_then_sent):
                frame, by_server = rcvd, True
            elif sent is not None:
                frame, by_server = sent, False  # closed on our side (a limit, a ping timeout)
            else:
                frame, by_server = None, True  # the TCP connection dropped
            self._close_info = CloseInfo(
                code=frame.code if frame is not None else None,
                reason=frame.reason if frame is not None else "",
                by_server=by_server,
                requested=self._closing_by_us,
            )
        return self._close_info

    def _require(self) -> ClientConnection:
        if self.ws is None:
            raise ConnectionFailed("the connection is not open")
        return self.ws

    # ------------------------------------------------------------------ messages
    async def send(self, data: str | bytes) -> Message:
        """Send a text (``str``) or binary (``bytes``) message."""
        ws = self._require()
        try:
            await ws.send(data)
        except ConnectionClosed as error:
            info = self._ended(error)
            raise ConnectionFailed(f"the connection is closed: {info.describe()}") from None
        return Message(Direction.OUT, data, time.time())

    async def recv(self) -> Message | None:
        """The next message from the server; None once the connection closed."""
        ws = self._require()
        try:
            data = await ws.recv()
        except ConnectionClosed as error:
            self._ended(error)
            return None
        return Message(Direction.IN, data, time.time())

    async def ping(self, data: bytes = b"", *, timeout: float = 10.0) -> float:
        """A Ping frame (RFC 6455 §5.5.2); the round-trip time in seconds."""
        ws = self._require()
        try:
            waiter = await ws.ping(data or None)
            async with asyncio.timeout(timeout):
                return float(await waiter)
        except ConnectionClosed as error:
            info = self._ended(error)
            raise ConnectionFailed(f"the connection is closed: {info.describe()}") from None
        except TimeoutError:
            raise ConnectionFailed(f"no pong within {timeout:g} s") from None

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> CloseInfo:
        """Close (RFC 6455 §7.1.2) and wait for the server's answer (bounded)."""
        ws = self.ws
        if ws is None:
            return CloseInfo(None, "", by_server=False, requested=True)
        if self._close_info is None and ws.state is WsState.OPEN:
            self._closing_by_us = True
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.close(code, reason)
        return self._ended()
