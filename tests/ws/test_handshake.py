"""ws/handshake.py: the HTTP/1.1 opening handshake (RFC 6455 section 4), sans-I/O.

Oracles: the example of RFC 6455 sections 1.2/1.3 (key ``dGhlIHNhbXBsZSBub25jZQ==``,
accept ``s3pPLMBiTxaQ9kYGzzhZRbK+xOo=``), hand-written heads, and the
``websockets`` library's own sans-I/O ``ServerProtocol``/``ClientProtocol``, which
must accept what :func:`build_request` and :func:`build_response` write, and whose
requests and responses :func:`parse_http_head` must read.
"""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from wsproto_tools.exceptions import HandshakeError, RemoteProtocolError
from wsproto_tools.ws import (
    DeflateParams,
    UpgradeRequest,
    UpgradeResponse,
    accept_key,
    build_request,
    build_response,
    looks_like_http,
    parse_http_head,
)
from wsproto_tools.ws.handshake import MAX_HEAD

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# RFC 6455 section 1.2, the client's handshake (plus a version header)
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
# ... and the server's
RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)


def test_accept_key_of_the_rfc_example() -> None:
    assert accept_key(KEY) == ACCEPT


def test_the_rfc_request() -> None:
    head = parse_http_head(RFC_REQUEST + b"\x81\x05Hello")
    assert head is not None and head.is_request
    assert head.length == len(RFC_REQUEST)  # what follows is the first frame
    assert head.start_line == "GET /chat HTTP/1.1"
    assert head.get("HOST") == "server.example.com" and head.get("sec-websocket-key") == KEY
    assert head.get("x-missing") is None and head.get("x-missing", "d") == "d"
    request = UpgradeRequest.from_head(head)
    assert (request.path, request.host, request.key) == ("/chat", "server.example.com", KEY)
    assert request.subprotocols == ("chat", "superchat")
    assert request.extensions is None and request.is_websocket


def test_the_rfc_response() -> None:
    head = parse_http_head(RFC_RESPONSE)
    assert head is not None and not head.is_request
    response = UpgradeResponse.from_head(head)
    assert (response.status, response.reason, response.is_upgrade) == (
        101, "Switching Protocols", True
    )
    assert response.accept == ACCEPT == accept_key(KEY)
    assert (response.subprotocol, response.deflate, response.extensions) == ("chat", None, None)


def test_header_names_are_lower_cased_values_stripped_repeats_kept() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost:  h  \r\nSec-WebSocket-Protocol: a\r\n"
        b"sec-websocket-protocol: b, c\r\nSEC-WEBSOCKET-EXTENSIONS: x\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    head = parse_http_head(raw)
    assert head is not None
    assert head.headers[0] == ("host", "h")
    assert head.get_all("Sec-WebSocket-Protocol") == ["a", "b, c"]
    request = UpgradeRequest.from_head(head)
    assert request.subprotocols == ("a", "b", "c")
    assert request.extensions == "x, permessage-deflate"
    assert not request.is_websocket  # no Upgrade header, no key


@pytest.mark.parametrize(
    ("missing", "websocket"),
    [("Upgrade", False), ("Sec-WebSocket-Key", False), ("Connection", True), ("Host", True)],
)
def test_requests_missing_a_header(missing: str, websocket: bool) -> None:
    lines = [line for line in RFC_REQUEST.split(b"\r\n") if not line.startswith(missing.encode())]
    head = parse_http_head(b"\r\n".join(lines))
    assert head is not None
    request = UpgradeRequest.from_head(head)
    assert request.is_websocket is websocket
    if missing == "Host":
        assert request.host is None
    if missing == "Sec-WebSocket-Key":
        assert request.key is None


def test_a_wrong_accept_key_is_visible() -> None:
    wrong = RFC_RESPONSE.replace(ACCEPT.encode(), accept_key("AQIDBAUGBwgJCgsMDQ4PEA==").encode())
    head = parse_http_head(wrong)
    assert head is not None
    response = UpgradeResponse.from_head(head)
    assert response.is_upgrade and response.accept != accept_key(KEY)
    without = RFC_RESPONSE.replace(b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n", b"")
    head = parse_http_head(without)
    assert head is not None and UpgradeResponse.from_head(head).accept is None


def test_refusals_and_other_statuses() -> None:
    head = parse_http_head(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert head is not None
    response = UpgradeResponse.from_head(head)
    assert (response.status, response.reason, response.is_upgrade) == (403, "Forbidden", False)
    head = parse_http_head(b"HTTP/1.1 426\r\n\r\n")  # a status line without a reason
    assert head is not None and UpgradeResponse.from_head(head).reason == ""


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 abc Switching\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_status_lines(raw: bytes) -> None:
    head = parse_http_head(raw)
    assert head is not None
    with pytest.raises(HandshakeError, match="status line"):
        UpgradeResponse.from_head(head)


@pytest.mark.parametrize(
    "start_line", [b"POST /chat HTTP/1.1", b"GET /chat", b"GET /a b HTTP/1.1"]
)
def test_not_an_upgrade_request(start_line: bytes) -> None:
    head = parse_http_head(start_line + b"\r\nHost: x\r\n\r\n")
    assert head is not None
    with pytest.raises(HandshakeError, match="not a WebSocket upgrade request"):
        UpgradeRequest.from_head(head)


@pytest.mark.parametrize(
    "line",
    [b"No colon here", b"Name : value", b": no name", b" Folded: value"],
)
def test_malformed_header_lines(line: bytes) -> None:
    with pytest.raises(HandshakeError, match="malformed HTTP header line") as info:
        parse_http_head(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n")
    assert isinstance(info.value, RemoteProtocolError) and info.value.close_code == 1002


def test_bad_subprotocol_and_extension_headers() -> None:
    head = parse_http_head(b"GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a,,;b\r\n\r\n")
    assert head is not None
    with pytest.raises(HandshakeError, match="Sec-WebSocket-Protocol"):
        UpgradeRequest.from_head(head)
    head = parse_http_head(
        b"HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: permessage-deflate; =x\r\n\r\n"
    )
    assert head is not None
    with pytest.raises(HandshakeError, match="Sec-WebSocket-Extensions"):
        UpgradeResponse.from_head(head)


# ------------------------------------------------------------------ partial heads, MAX_HEAD


def test_every_prefix_of_a_head_is_incomplete() -> None:
    for end in range(len(RFC_REQUEST)):
        assert parse_http_head(RFC_REQUEST[:end]) is None, end
    for end in range(len(RFC_RESPONSE)):
        assert parse_http_head(RFC_RESPONSE[:end]) is None, end


def test_bytes_that_are_not_http() -> None:
    assert parse_http_head(b"\x16\x03\x01") is None  # too short to tell yet
    with pytest.raises(HandshakeError, match="not an HTTP"):
        parse_http_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")  # a TLS ClientHello
    with pytest.raises(HandshakeError, match="not an HTTP"):
        parse_http_head(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert looks_like_http(b"HTTP/1.0 200") and looks_like_http(b"OPTIONS * HTTP/1.1")
    assert not looks_like_http(b"HTTP/2") and not looks_like_http(b"get / HTTP/1.1")


def padded_request(total: int) -> bytes:
    """A request head of exactly ``total`` bytes, its blank line included."""
    start = b"GET / HTTP/1.1\r\nX-Pad: "
    return start + b"a" * (total - len(start) - 4) + b"\r\n\r\n"


def test_max_head() -> None:
    assert MAX_HEAD == 16 * 1024
    fits = padded_request(MAX_HEAD + 4)  # MAX_HEAD bytes of head, then CRLF CRLF
    head = parse_http_head(fits)
    assert head is not None and head.length == len(fits)
    with pytest.raises(HandshakeError, match="longer than"):
        parse_http_head(padded_request(MAX_HEAD + 5))
    # an unfinished head: waited for up to MAX_HEAD bytes, refused beyond
    assert parse_http_head(fits[:MAX_HEAD]) is None
    with pytest.raises(HandshakeError, match="longer than") as info:
        parse_http_head(fits[: MAX_HEAD + 1])
    assert info.value.close_code == 1002


# ------------------------------------------------------------------ against websockets


def test_built_requests_are_accepted_by_websockets_server_protocol() -> None:
    raw = build_request(
        "example.com:8080",
        "/path?q=1",
        KEY,
        subprotocols=("wsp.v2", "wsp.v1"),
        extensions="permessage-deflate; client_max_window_bits",
        extra_headers=(("Authorization", "Bearer t"),),
    )
    server = ServerProtocol(
        subprotocols=[Subprotocol("wsp.v1")],
        extensions=[ServerPerMessageDeflateFactory()],
    )
    server.receive_data(raw)
    (request,) = server.events_received()
    assert isinstance(request, Request)
    assert request.path == "/path?q=1" and request.headers["Authorization"] == "Bearer t"
    response = server.accept(request)
    assert response.status_code == 101 and response.headers["Sec-WebSocket-Accept"] == ACCEPT
    server.send_response(response)
    assert server.state is State.OPEN
    # the websockets answer, read back by our parser
    wire = b"".join(server.data_to_send())
    head = parse_http_head(wire)
    assert head is not None and head.length == len(wire)
    answer = UpgradeResponse.from_head(head)
    assert (answer.status, answer.accept, answer.subprotocol) == (101, ACCEPT, "wsp.v1")
    (ext,) = server.extensions  # what websockets agreed to, as the server
    assert answer.deflate == DeflateParams(
        server_no_context_takeover=ext.local_no_context_takeover,
        client_no_context_takeover=ext.remote_no_context_takeover,
        server_max_window_bits=ext.local_max_window_bits or 15,
        client_max_window_bits=ext.remote_max_window_bits or 15,
    )


def test_websockets_client_requests_parse() -> None:
    client = ClientProtocol(
        parse_uri("ws://example.com/chat"),
        subprotocols=[Subprotocol("wsp.v2")],
        extensions=[ClientPerMessageDeflateFactory()],
    )
    request = client.connect()
    client.send_request(request)
    wire = b"".join(client.data_to_send())
    head = parse_http_head(wire)
    assert head is not None
    parsed = UpgradeRequest.from_head(head)
    assert parsed.is_websocket and parsed.path == "/chat" and parsed.host == "example.com"
    assert parsed.key == request.headers["Sec-WebSocket-Key"]
    assert parsed.subprotocols == ("wsp.v2",)
    assert parsed.extensions is not None and parsed.extensions.startswith("permessage-deflate")


def client_after(response: bytes) -> ClientProtocol:
    client = ClientProtocol(parse_uri("ws://example.com/"), subprotocols=[Subprotocol("wsp.v2")])
    client.send_request(client.connect())
    client.data_to_send()
    client.receive_data(response)
    client.events_received()
    return client


def test_built_responses_are_accepted_by_websockets_client_protocol() -> None:
    client = ClientProtocol(parse_uri("ws://example.com/"), subprotocols=[Subprotocol("wsp.v2")])
    request = client.connect()
    client.send_request(request)
    client.receive_data(
        build_response(request.headers["Sec-WebSocket-Key"], subprotocol="wsp.v2")
    )
    (response,) = client.events_received()
    assert isinstance(response, Response) and client.handshake_exc is None
    assert client.state is State.OPEN and client.subprotocol == "wsp.v2"


def test_websockets_refuses_a_response_built_for_another_key() -> None:
    client = client_after(build_response(KEY, subprotocol="wsp.v2"))
    assert client.state is not State.OPEN
    assert client.handshake_exc is not None and "Sec-WebSocket-Accept" in str(client.handshake_exc)


def test_build_response_headers() -> None:
    raw = build_response(KEY, subprotocol="chat", extensions="permessage-deflate")
    head = parse_http_head(raw)
    assert head is not None and head.length == len(raw)
    response = UpgradeResponse.from_head(head)
    assert (response.accept, response.subprotocol, response.deflate) == (
        ACCEPT, "chat", DeflateParams()
    )
    assert head.start_line == "HTTP/1.1 101 Switching Protocols"
    assert head.headers == (
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-accept", ACCEPT),
        ("sec-websocket-protocol", "chat"),
        ("sec-websocket-extensions", "permessage-deflate"),
    )
