"""The asyncio glue shared by the server and the client: engines over ``websockets``.

The engine is sans-I/O; this module is where its bytes meet a live
``websockets`` asyncio connection, where its clock comes from (``time.time``)
and where its nonces come from (``os.urandom``).

Writes are synchronous (:func:`write_now`): the engine's output is handed to the
transport at once through :func:`websockets.asyncio.server.broadcast`, and
backpressure is read from the transport's buffer (:func:`buffered`) instead of
awaited per message — a slow reader is detected and cut instead of stalling
everyone else.

What of ``websockets`` this module relies on: its public API (``broadcast``,
``Connection.state``, ``subprotocol``, ``close``, the ``create_connection``
subclass hook) and, beyond it, two things its documentation does not promise:
``Connection.process_event`` (overridden by :class:`DirectMixin` to hand messages
to the engine inside ``data_received``, without a task wake-up per message: the
speed of the server and the client rests on it) and ``Connection.transport``
(the asyncio transport, read for its write-buffer size and to pause reading).
pyproject.toml therefore pins the ``websockets`` versions tested, and
tests/transports/test_wsio.py fails loudly if either disappears or stops being
used as relied on here.
"""

from __future__ import annotations

__all__ = [
    "RESUMABLE_CODES",
    "SUBPROTOCOLS",
    "DirectClientConnection",
    "DirectMixin",
    "DirectServerConnection",
    "buffered",
    "clock",
    "close_for",
    "closing_after",
    "flush",
    "nonce",
    "peer_label",
    "version_of",
    "write_now",
]

import os
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.frames import Frame, Opcode
from websockets.protocol import Event
from websockets.protocol import State as WsState

from wsproto_tools.codec import SUBPROTOCOLS, subprotocol_version
from wsproto_tools.engine.session import Session
from wsproto_tools.exceptions import CloseCode, WspError

clock = time.time

#: Close codes that end a connection but not its session: the peer reconnects and
#: resumes (no wsp Close is sent, so the session stays resumable).
RESUMABLE_CODES = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.SERVICE_RESTART,
        CloseCode.WSP_RATE_LIMITED,
        CloseCode.WSP_SLOW_CONSUMER,
        CloseCode.WSP_HEARTBEAT_TIMEOUT,
    }
)


class DirectMixin(Connection):
    """Hands each complete data message to a handler from ``data_received``.

    The default ``websockets`` path queues messages for ``recv()``, so every
    message costs a wake-up of the task that reads. With ``on_message`` set, the
    engine runs synchronously in the protocol callback (as the sans-I/O design
    intends: ``receive_data -> events -> data_to_send``), and the only task woken
    is the one waiting for what the message resolves. Messages are never queued
    for ``recv()``: those that arrive before :meth:`attach` are kept (at most
    1,024) and handed over by it. The handler must not raise; it can call
    :meth:`pause_reading` for backpressure. Fragmented
    messages are reassembled here (``websockets`` enforces ``max_size``).
    ``on_lost`` is called once the TCP connection is gone, ``on_drain`` each time
    the transport's write buffer drained below its low-water mark after it had
    gone over the high-water mark (to pace output by what the peer reads).
    """

    on_message: Callable[[bytes | str], None] | None = None
    on_lost: Callable[[], None] | None = None
    on_drain: Callable[[], None] | None = None
    _parts: list[bytes] | None = None
    _text = False
    _early: list[bytes | str] | None = None

    def attach(self, handler: Callable[[bytes | str], None]) -> None:
        """Start handing messages to ``handler``, first those that came before."""
        self.on_message = handler
        early = self._early
        if early is None:
            return
        self._early = None
        for data in early:
            if self.on_message is handler:
                handler(data)

    def _deliver(self, data: bytes | str) -> None:
        handler = self.on_message
        if handler is not None:
            handler(data)
        elif self._early is None:
            self._early = [data]
        elif len(self._early) < 1024:
            self._early.append(data)

    def process_event(self, event: Event) -> None:
        # Not public in websockets (pinned in pyproject.toml; tests/transports/test_wsio.py)
        if type(event) is not Frame:  # the opening handshake
            super().process_event(event)
            return
        opcode = event.opcode
        if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            if event.fin:
                data = bytes(event.data)
                self._deliver(data.decode("utf-8", "replace") if opcode is Opcode.TEXT else data)
            else:
                self._parts = [bytes(event.data)]
                self._text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            parts = self._parts
            if parts is None:
                return
            parts.append(bytes(event.data))
            if event.fin:
                self._parts = None
                data = b"".join(parts)
                self._deliver(data.decode("utf-8", "replace") if self._text else data)
        else:
            super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        callback = self.on_lost
        if callback is not None:
            self.on_lost = None
            callback()

    def resume_writing(self) -> None:
        super().resume_writing()
        callback = self.on_drain
        if callback is not None:
            callback()

    def pause_reading(self) -> None:
        transport = self.transport  # set by connection_made (not public in websockets)
        if not transport.is_closing():
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if not transport.is_closing():
            transport.resume_reading()


class DirectServerConnection(DirectMixin, ServerConnection):
    """A server connection that can run an engine inside ``data_received``."""


class DirectClientConnection(DirectMixin, ClientConnection):
    """A client connection that can run an engine inside ``data_received``."""


def nonce() -> bytes:
    """16 random bytes for a handshake nonce."""
    return os.urandom(16)


def peer_label(conn: Connection) -> str | None:
    """The peer's address as ``host:port`` (``[host]:port`` for IPv6), or None."""
    address = conn.remote_address
    if not address:
        return None
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def version_of(conn: Connection) -> int | None:
    """The wire version the negotiated subprotocol selects, or None."""
    name = conn.subprotocol
    return subprotocol_version(name) if name else None


def write_now(conn: Connection, data: bytes | str) -> bool:
    """Frame and hand ``data`` to the transport now (a str as a text message); False when
    the connection is not open.

    ``broadcast`` to one connection is websockets' public synchronous write; with
    ``raise_exceptions`` it reports what it skipped (a fragmented message being
    sent, a failed write) instead of logging it, and that is a False here.
    """
    if conn.state is not WsState.OPEN:
        return False
    try:
        broadcast((conn,), data, raise_exceptions=True)
    except ExceptionGroup:
        return False
    return True


def buffered(conn: Connection) -> int:
    """Bytes written but not yet accepted by the kernel."""
    # Connection.transport is not public in websockets (pinned in pyproject.toml)
    return conn.transport.get_write_buffer_size()


def flush(session: Session, conn: Connection) -> int:
    """Write everything the engine has queued; returns the number of WebSocket messages."""
    chunks = session.data_to_send()
    for chunk in chunks:
        write_now(conn, chunk)
    return len(chunks)


def sendable(code: int, instead: int) -> int:
    """``code`` if a close frame may carry it (RFC 6455 7.4), else ``instead``."""
    if not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015):
        return int(instead)
    return code


def closing_after(session: Session) -> tuple[int, str]:
    """The WebSocket close that follows a wsp Close: the same code (docs/protocol.md,
    checklist rule 42) and the reason."""
    code = sendable(session.close_code or CloseCode.NORMAL, CloseCode.NORMAL)
    return code, session.close_reason or ""


async def close_for(session: Session | None, conn: Connection, error: WspError) -> None:
    """Close because of ``error``: a wsp Close, then the WebSocket close, same code.

    For :data:`RESUMABLE_CODES` only the connection is closed: the session stays
    resumable.
    """
    code = sendable(int(error.close_code), CloseCode.PROTOCOL_ERROR)
    reason = str(error).encode("utf-8")[:120].decode("utf-8", "ignore")
    if session is not None and code not in RESUMABLE_CODES:
        try:
            session.close(code, reason, clock())
            flush(session, conn)
        except WspError:
            pass  # the session was past closing; the WebSocket close still says why
    await conn.close(code, reason)
