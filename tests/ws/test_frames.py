"""ws/ against the examples printed in RFC 6455 section 5.7 and RFC 7692 section 7.2.3."""

from __future__ import annotations

import pytest

from wsproto_tools.exceptions import FrameError
from wsproto_tools.ws import (
    DeflateParams,
    FrameParser,
    MessageAssembler,
    Opcode,
    UpgradeRequest,
    UpgradeResponse,
    accept_key,
    encode_frame,
    parse_http_head,
)

MASK = bytes.fromhex("37fa213d")
HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
HELLO_FRAGMENTS = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
PING_HELLO = bytes.fromhex("890548656c6c6f")
PONG_HELLO_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")


def test_rfc6455_single_frames_parse() -> None:
    parser = FrameParser()
    (frame,) = parser.feed(HELLO_UNMASKED)
    assert (frame.opcode, frame.payload, frame.fin, frame.masked) == (1, b"Hello", True, False)
    (frame,) = parser.feed(HELLO_MASKED)
    assert (frame.payload, frame.mask, frame.wire_length) == (b"Hello", MASK, 11)


def test_rfc6455_frames_encode_byte_exact() -> None:
    assert encode_frame(Opcode.TEXT, b"Hello") == HELLO_UNMASKED
    assert encode_frame(Opcode.TEXT, b"Hello", mask=MASK) == HELLO_MASKED
    assert encode_frame(Opcode.PING, b"Hello") == PING_HELLO
    assert encode_frame(Opcode.PONG, b"Hello", mask=MASK) == PONG_HELLO_MASKED
    assert (
        encode_frame(Opcode.TEXT, b"Hel", fin=False) + encode_frame(Opcode.CONT, b"lo")
        == HELLO_FRAGMENTS
    )


def test_extended_lengths_and_byte_by_byte_feeding() -> None:
    big16 = bytes(256)
    big64 = bytes(65536)
    wire = bytes.fromhex("827e0100") + big16 + bytes.fromhex("827f0000000000010000") + big64
    parser = FrameParser()
    frames = []
    for i in range(0, len(wire), 7):
        frames.extend(parser.feed(wire[i : i + 7]))
    assert [len(f.payload) for f in frames] == [256, 65536]
    assert all(f.minimal_length for f in frames)
    assert parser.buffered == 0


def test_non_minimal_length_is_recorded_not_rejected() -> None:
    (frame,) = FrameParser().feed(bytes.fromhex("817e0005") + b"Hello")
    assert frame.payload == b"Hello" and not frame.minimal_length
    assert (
        encode_frame(Opcode.TEXT, b"Hello", length_width=16) == bytes.fromhex("817e0005") + b"Hello"
    )


def test_declared_length_over_limit_raises_1009() -> None:
    with pytest.raises(FrameError) as info:
        FrameParser(max_payload=1000).feed(bytes.fromhex("827f0000000000100000"))
    assert info.value.close_code == 1009


def test_fragmented_message_with_interleaved_ping() -> None:
    wire = bytes.fromhex("010348656c") + PING_HELLO + bytes.fromhex("80026c6f")
    assembler = MessageAssembler("server")
    out = [m for f in FrameParser().feed(wire) for m in assembler.receive(f)]
    assert [(m.opcode, m.payload) for m in out] == [
        (Opcode.PING, b"Hello"),
        (Opcode.TEXT, b"Hello"),
    ]
    assert out[1].text == "Hello" and out[1].frames == 2 and out[1].violations == ()


def test_masking_rules_per_direction() -> None:
    (frame,) = FrameParser().feed(HELLO_UNMASKED)
    (msg,) = MessageAssembler("client").receive(frame)
    assert msg.violations == ("unmasked-client-frame",)
    (frame,) = FrameParser().feed(HELLO_MASKED)
    (msg,) = MessageAssembler("server").receive(frame)
    assert msg.violations == ("masked-server-frame",)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (bytes.fromhex("c10548656c6c6f"), "reserved-bits"),  # RSV1 without deflate
        (bytes.fromhex("a10548656c6c6f"), "reserved-bits"),  # RSV2
        (bytes.fromhex("830548656c6c6f"), "bad-opcode"),  # opcode 3
        (bytes.fromhex("0905") + b"Hello", "fragmented-control"),
        (bytes.fromhex("897e007e") + bytes(126), "control-too-long"),
        (bytes.fromhex("800548656c6c6f"), "unexpected-continuation"),
        (bytes.fromhex("8104cebae1bd"), "invalid-utf8"),  # truncated 3-byte sequence
        (bytes.fromhex("880203e8") + bytes.fromhex("880203ed"), "data-after-close"),
        (bytes.fromhex("880203ed"), "bad-close-code"),  # 1005
        (bytes.fromhex("880103"), "bad-close-payload"),
    ],
)
def test_violations(wire: bytes, expected: str) -> None:
    assembler = MessageAssembler("server")
    messages = [m for f in FrameParser().feed(wire) for m in assembler.receive(f)]
    assert expected in messages[-1].violations


def test_close_code_and_reason() -> None:
    (frame,) = FrameParser().feed(bytes.fromhex("880703e8") + b"bye!!")
    (msg,) = MessageAssembler("server").receive(frame)
    assert (msg.close_code, msg.close_reason, msg.violations) == (1000, "bye!!", ())


def test_rfc7692_examples_with_context_takeover() -> None:
    params = DeflateParams.from_header("permessage-deflate")
    assert params is not None
    assembler = MessageAssembler("server", params.context("server"))
    wire = (
        bytes.fromhex("c107f248cdc9c90700")  # 7.2.3.1
        + bytes.fromhex("c105f200110000")  # 7.2.3.2, second message reuses the window
        + bytes.fromhex("4103f248cd")
        + bytes.fromhex("8004c9c90700")  # 7.2.3.3 fragmented
        + bytes.fromhex("c10b000500faff48656c6c6f00")  # 7.2.3.4 stored block
    )
    out = [m for f in FrameParser().feed(wire) for m in assembler.receive(f)]
    assert [(m.text, m.compressed, m.violations) for m in out] == [("Hello", True, ())] * 4


def test_deflate_without_context_takeover_rejects_back_reference() -> None:
    params = DeflateParams.from_header("permessage-deflate; server_no_context_takeover")
    assert params is not None and params.server_no_context_takeover
    assembler = MessageAssembler("server", params.context("server"))
    wire = bytes.fromhex("c107f248cdc9c90700") + bytes.fromhex("c105f200110000")
    out = [m for f in FrameParser().feed(wire) for m in assembler.receive(f)]
    assert out[0].text == "Hello"
    assert "deflate-error" in out[1].violations


def test_deflate_roundtrip_small_window() -> None:
    params = DeflateParams(client_max_window_bits=9, client_no_context_takeover=True)
    sender = params.context("client")
    receiver = params.context("client")
    for text in [b"abc" * 100, b"hello world", b""]:
        assert receiver.decompress(sender.compress(text)) == text


def test_upgrade_parsing_and_accept_key() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    request = (
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Protocol: wsp.v2, wsp.v1\r\nSec-WebSocket-Version: 13\r\n\r\nrest"
    )
    assert parse_http_head(request[:40]) is None
    head = parse_http_head(request)
    assert head is not None and request[head.length :] == b"rest"
    upgrade = UpgradeRequest.from_head(head)
    assert upgrade.is_websocket and upgrade.subprotocols == ("wsp.v2", "wsp.v1")
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: wsp.v2\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n"
    )
    head = parse_http_head(response)
    assert head is not None
    answer = UpgradeResponse.from_head(head)
    assert (answer.status, answer.subprotocol) == (101, "wsp.v2")
    assert answer.deflate == DeflateParams(client_max_window_bits=10)
