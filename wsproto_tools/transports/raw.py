"""Raw access to the WebSocket wire: the one place a tool may send arbitrary bytes.

:class:`RawWebSocket` is a TCP connection that has completed the RFC 6455
section 4 opening handshake and then does nothing on its own: no framing, no
masking, no automatic pongs, no close handshake. The caller writes whatever
bytes it wants (well-formed frames, broken frames, half a frame) with
:meth:`RawWebSocket.send` and reads what the peer sent with
:meth:`RawWebSocket.read`, which never blocks longer than its timeout.

Two ways to get one:

- :func:`open_raw_websocket` connects to a server and sends the upgrade
  request (the client side, used by ``wsp fuzz URL``);
- :func:`accept_raw_websocket` takes an accepted TCP stream, reads the client's
  upgrade request and lets a callback choose the answer (the server side, used
  by ``wsp fuzz --serve``).

Bytes that arrived together with the handshake are kept and returned by the
first :meth:`RawWebSocket.read`.
"""

from __future__ import annotations

__all__ = [
    "RawWebSocket",
    "accept_raw_websocket",
    "open_raw_websocket",
]

import asyncio
import base64
import contextlib
import os
import socket
import ssl as _ssl
from collections.abc import Callable

from wsproto_tools.exceptions import ConnectionFailed, HandshakeError
from wsproto_tools.transports.tls import describe_ssl_error
from wsproto_tools.ws import (
    UpgradeRequest,
    UpgradeResponse,
    accept_key,
    build_request,
    build_response,
    parse_http_head,
)

_READ_CHUNK = 256 * 1024


class RawWebSocket:
    """An upgraded connection that sends and receives raw bytes only.

    ``role`` is ``"client"`` or ``"server"`` (this side's role). ``request``
    and ``response`` are the two halves of the opening handshake.
    """

    __slots__ = ("_pending", "_reader", "_writer", "eof", "request", "response", "role")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        role: str,
        request: UpgradeRequest,
        response: UpgradeResponse | None,
        pending: bytes = b"",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.role = role
        self.request = request
        self.response = response
        self._pending = pending
        self.eof = False

    @property
    def peer(self) -> tuple[str, int] | None:
        """The peer's address, when the socket still knows it."""
        name = self._writer.get_extra_info("peername")
        return (str(name[0]), int(name[1])) if name else None

    async def send(self, data: bytes) -> None:
        """Write ``data`` exactly as given and wait until the socket accepts it.

        Raises :class:`ConnectionFailed` when the peer has gone away.
        """
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise ConnectionFailed(f"sending failed: {error}") from None

    async def read(self, timeout: float) -> bytes | None:
        """The next bytes from the peer: ``b""`` at end of stream, None on timeout.

        Waits at most ``timeout`` seconds; a reset connection counts as the end
        of the stream.
        """
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self.eof:
            return b""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                data = await self._reader.read(_READ_CHUNK)
        except TimeoutError:
            return None
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
        return data

    def close(self) -> None:
        """Close the TCP connection now (no close frame is sent)."""
        with contextlib.suppress(Exception):
            self._writer.close()

    async def wait_closed(self, timeout: float = 1.0) -> None:
        """Close and wait (bounded) until the transport is gone."""
        self.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await self._writer.wait_closed()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _read_head(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, int, bytes]:
    """Read until a complete HTTP head; returns (head bytes, head length, rest)."""
    buf = b""
    async with asyncio.timeout(timeout):
        while True:
            head = parse_http_head(buf)
            if head is not None:
                return buf, head.length, buf[head.length :]
            chunk = await reader.read(16 * 1024)
            if not chunk:
                raise HandshakeError("the peer closed the connection during the handshake")
            buf += chunk


async def open_raw_websocket(
    host: str,
    port: int,
    path: str = "/",
    *,
    extensions: str | None = None,
    subprotocols: tuple[str, ...] = (),
    key: str | None = None,
    timeout: float = 5.0,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    host_header: str | None = None,
) -> RawWebSocket:
    """Connect to ``host:port``, upgrade ``path`` and return the raw connection.

    ``extensions`` is the ``Sec-WebSocket-Extensions`` offer, if any. With
    ``ssl`` the connection is TLS (``wss://``); the certificate is checked
    against ``server_hostname`` (default: ``host``). ``host_header`` is the
    ``Host`` header (default: ``host``, with the port unless it is the
    scheme's default). Raises :class:`ConnectionFailed` when the TCP
    connection or the TLS handshake fails (a certificate problem is named as
    such) and :class:`HandshakeError` when the server does not switch
    protocols properly.
    """
    try:
        async with asyncio.timeout(timeout):
            if ssl is None:
                reader, writer = await asyncio.open_connection(host, port)
            else:
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl,
                    server_hostname=server_hostname or host,
                    ssl_handshake_timeout=max(timeout, 0.1),
                )
    except _ssl.SSLError as error:
        raise ConnectionFailed(
            f"cannot connect to {host}:{port}: {describe_ssl_error(error)}"
        ) from None
    except TimeoutError:
        raise ConnectionFailed(
            f"cannot connect to {host}:{port}: no connection within {timeout:g} s"
        ) from None
    except OSError as error:
        reason = str(error) or type(error).__name__
        if ssl is not None and isinstance(error, ConnectionError) and not str(error):
            # what asyncio raises when the peer hangs up on the ClientHello
            reason = "the server closed the connection during the TLS handshake (not TLS?)"
        raise ConnectionFailed(f"cannot connect to {host}:{port}: {reason}") from None
    _nodelay(writer)
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    if host_header is None:
        name = f"[{host}]" if ":" in host else host
        host_header = name if port == (443 if ssl is not None else 80) else f"{name}:{port}"
    request_bytes = build_request(
        host_header, path, key, subprotocols=subprotocols, extensions=extensions
    )
    request_head = parse_http_head(request_bytes)
    assert request_head is not None
    request = UpgradeRequest.from_head(request_head)
    try:
        writer.write(request_bytes)
        await writer.drain()
        buf, _length, rest = await _read_head(reader, timeout)
    except TimeoutError:
        writer.close()
        raise HandshakeError(f"no handshake answer within {timeout} s") from None
    except (ConnectionError, OSError) as error:
        writer.close()
        raise ConnectionFailed(f"connection lost during the handshake: {error}") from None
    except HandshakeError:
        writer.close()
        raise
    head = parse_http_head(buf)
    assert head is not None
    response = UpgradeResponse.from_head(head)
    if not response.is_upgrade:
        writer.close()
        raise HandshakeError(f"server answered {response.status} {response.reason}, not 101")
    if response.accept != accept_key(key):
        writer.close()
        raise HandshakeError("server sent a wrong Sec-WebSocket-Accept")
    return RawWebSocket(
        reader, writer, role="client", request=request, response=response, pending=rest
    )


#: Chooses the answer to an upgrade request: None accepts it with no extension,
#: a string accepts it with that ``Sec-WebSocket-Extensions`` value.
ExtensionChooser = Callable[[UpgradeRequest], str | None]


async def accept_raw_websocket(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    choose_extensions: ExtensionChooser | None = None,
    timeout: float = 5.0,
) -> RawWebSocket:
    """Read a client's upgrade request from an accepted stream and answer 101.

    Raises :class:`HandshakeError` (after answering 400) when the request is not
    a WebSocket upgrade.
    """
    _nodelay(writer)
    try:
        buf, _length, rest = await _read_head(reader, timeout)
    except TimeoutError:
        writer.close()
        raise HandshakeError(f"no upgrade request within {timeout} s") from None
    except (ConnectionError, OSError) as error:
        writer.close()
        raise ConnectionFailed(f"connection lost during the handshake: {error}") from None
    head = parse_http_head(buf)
    assert head is not None
    request = UpgradeRequest.from_head(head)
    if not request.is_websocket or request.key is None:
        with contextlib.suppress(Exception):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()
        raise HandshakeError("not a WebSocket upgrade request")
    extensions = choose_extensions(request) if choose_extensions is not None else None
    response_bytes = build_response(request.key, extensions=extensions)
    response_head = parse_http_head(response_bytes)
    assert response_head is not None
    try:
        writer.write(response_bytes)
        await writer.drain()
    except (ConnectionError, OSError) as error:
        writer.close()
        raise ConnectionFailed(f"connection lost during the handshake: {error}") from None
    return RawWebSocket(
        reader,
        writer,
        role="server",
        request=request,
        response=UpgradeResponse.from_head(response_head),
        pending=rest,
    )
