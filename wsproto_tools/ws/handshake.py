"""The HTTP/1.1 opening handshake (RFC 6455 section 4), sans-I/O.

:func:`parse_http_head` reads a request or response head from the start of a
byte stream (bounded: at most ``MAX_HEAD`` bytes); :class:`UpgradeRequest` and
:class:`UpgradeResponse` give the WebSocket view of it (key, accept,
subprotocol, extensions). :func:`build_request` writes a client's request.
"""

from __future__ import annotations

__all__ = [
    "MAX_HEAD",
    "HttpHead",
    "UpgradeRequest",
    "UpgradeResponse",
    "accept_key",
    "build_request",
    "build_response",
    "looks_like_http",
    "parse_http_head",
]

from dataclasses import dataclass

from websockets.exceptions import InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.utils import accept_key as _accept_key

from wsproto_tools.exceptions import HandshakeError
from wsproto_tools.ws.deflate import DeflateParams

MAX_HEAD = 16 * 1024
_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"OPTIONS ", b"DELETE ", b"PATCH ", b"CONNECT ")


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    return _accept_key(key)


@dataclass(frozen=True, slots=True)
class HttpHead:
    """A request or response line and its headers (names lower-cased, in order)."""

    start_line: str
    headers: tuple[tuple[str, str], ...]
    length: int

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("HTTP/")

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        lname = name.lower()
        for key, value in self.headers:
            if key == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key == lname]


def looks_like_http(data: bytes) -> bool:
    """Whether ``data`` starts like an HTTP/1.x request or response."""
    return data.startswith(b"HTTP/1.") or data.startswith(_METHODS)


def parse_http_head(data: bytes) -> HttpHead | None:
    """Parse the head at the start of ``data``; None while it is incomplete.

    Raises :class:`HandshakeError` when the bytes are not an HTTP head or the
    head exceeds :data:`MAX_HEAD`.
    """
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(data) > MAX_HEAD:
            raise HandshakeError(f"HTTP head longer than {MAX_HEAD} bytes")
        if data and not looks_like_http(data[:8]) and len(data) >= 8:
            raise HandshakeError("not an HTTP request or response")
        return None
    if not looks_like_http(data[:8]):
        raise HandshakeError("not an HTTP request or response")
    try:
        text = data[:end].decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise HandshakeError("HTTP head is not text") from None
    lines = text.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HandshakeError(f"malformed HTTP header line {line[:60]!r}")
        headers.append((name.lower(), value.strip()))
    return HttpHead(lines[0], tuple(headers), end + 4)


def _subprotocols(head: HttpHead) -> tuple[str, ...]:
    found: list[str] = []
    for value in head.get_all("sec-websocket-protocol"):
        try:
            found.extend(parse_subprotocol(value))
        except InvalidHeader:
            raise HandshakeError(f"bad Sec-WebSocket-Protocol header {value!r}") from None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A client's opening handshake."""

    path: str
    host: str | None
    key: str | None
    subprotocols: tuple[str, ...]
    extensions: str | None
    head: HttpHead

    @classmethod
    def from_head(cls, head: HttpHead) -> UpgradeRequest:
        parts = head.start_line.split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            raise HandshakeError(f"not a WebSocket upgrade request: {head.start_line[:60]!r}")
        return cls(
            path=parts[1],
            host=head.get("host"),
            key=head.get("sec-websocket-key"),
            subprotocols=_subprotocols(head),
            extensions=", ".join(head.get_all("sec-websocket-extensions")) or None,
            head=head,
        )

    @property
    def is_websocket(self) -> bool:
        upgrade = (self.head.get("upgrade") or "").lower()
        return "websocket" in upgrade and self.key is not None


@dataclass(frozen=True, slots=True)
class UpgradeResponse:
    """A server's answer to the opening handshake."""

    status: int
    reason: str
    accept: str | None
    subprotocol: str | None
    deflate: DeflateParams | None
    extensions: str | None
    head: HttpHead

    @classmethod
    def from_head(cls, head: HttpHead) -> UpgradeResponse:
        parts = head.start_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HandshakeError(f"malformed HTTP status line {head.start_line[:60]!r}")
        extensions = ", ".join(head.get_all("sec-websocket-extensions")) or None
        protocols = _subprotocols(head)
        return cls(
            status=int(parts[1]),
            reason=parts[2] if len(parts) > 2 else "",
            accept=head.get("sec-websocket-accept"),
            subprotocol=protocols[0] if protocols else None,
            deflate=DeflateParams.from_header(extensions) if extensions else None,
            extensions=extensions,
            head=head,
        )

    @property
    def is_upgrade(self) -> bool:
        return self.status == 101


def build_request(
    host: str,
    path: str,
    key: str,
    *,
    subprotocols: tuple[str, ...] = (),
    extensions: str | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A client's upgrade request; ``key`` is the base64 of 16 random bytes."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    lines.extend(f"{name}: {value}" for name, value in extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def build_response(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
) -> bytes:
    """A server's ``101 Switching Protocols`` answer to a request carrying ``key``."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
