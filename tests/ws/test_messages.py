"""ws/messages.py: frames to messages for one direction, every rule checked.

Each case is read three ways, which must all give the expected messages: frame by
frame through ``MessageAssembler.receive``; as the capture decoder reads a
stream in pure Python (``FrameParser.feed_raw`` + ``receive_raw``, as under
``WSP_PURE_PYTHON=1``); and with the C frame reader (``ws/_scan.c``) in front.

The bytes are the examples of RFC 6455 section 5.7 and RFC 7692 section 7.2.3,
hand-written frames (hex, with the RFC rule each one breaks), or frames
serialized by the ``websockets`` library's own sans-I/O ``Frame`` class.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Frame
from websockets.frames import Opcode as WsOpcode

from wsproto_tools import native
from wsproto_tools.exceptions import DecodeError, FrameError, RemoteProtocolError
from wsproto_tools.ws import (
    VIOLATIONS,
    DeflateContext,
    DeflateParams,
    FrameParser,
    MessageAssembler,
    Opcode,
    WsMessage,
    messages,
)

MASK = bytes.fromhex("37fa213d")
# RFC 6455 section 5.7
HELLO = bytes.fromhex("810548656c6c6f")  # a single-frame unmasked text message
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")  # a single-frame masked text message
HEL_LO = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")  # fragmented, unmasked
PING = bytes.fromhex("890548656c6c6f")  # unmasked Ping, body "Hello"
PONG_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")  # masked Pong, body "Hello"
BINARY_256 = bytes.fromhex("827e0100")  # 256 bytes binary, 16-bit length (+ payload)
BINARY_64K = bytes.fromhex("827f0000000000010000")  # 64 KiB binary, 64-bit length
# RFC 7692 section 7.2.3.1: "Hello" compressed, one frame (unmasked)
HELLO_DEFLATED = bytes.fromhex("c107f248cdc9c90700")

PATHS = ["receive", "python", "c"]


def c_scan() -> Any:
    """The C reader, whatever the run's WSP_PURE_PYTHON says (test_native.py checks
    that the switch turns it off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(native.SWITCH, raising=False)
        scan = messages._load_scan()
    assert scan is not messages._python_scan, "the C frame reader was not built (setup.py)"
    return scan


@pytest.fixture(params=PATHS)
def read(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``read(wire, sender, deflate=None, max_message=..., max_payload=..., cuts=())``
    -> the messages of ``wire`` (cut into segments at ``cuts``), ``finish()`` included."""
    path = request.param
    if path == "c":
        monkeypatch.setattr(messages, "_scan", c_scan())
    else:
        monkeypatch.setenv(native.SWITCH, "1")
        monkeypatch.setattr(messages, "_scan", messages._load_scan())
        assert messages._scan is messages._python_scan

    def run(
        wire: bytes,
        sender: str,
        deflate: DeflateContext | None = None,
        *,
        max_message: int = 1 << 20,
        max_payload: int = 1 << 20,
        cuts: tuple[int, ...] = (),
    ) -> list[WsMessage]:
        parser = FrameParser(max_payload)
        assembler = MessageAssembler(sender, deflate, max_message_size=max_message)
        out: list[WsMessage] = []
        bounds = [0, *cuts, len(wire)]
        for a, b in itertools.pairwise(bounds):
            data = wire[a:b]
            if path == "receive":
                for frame in parser.feed(data):
                    out.extend(assembler.receive(frame))
                continue
            start = 0
            while True:
                found = assembler.scan(parser, data, start)
                if found is None:
                    break
                got, start, failed = found
                out.extend(got)
                if not failed or start >= len(data):
                    break
            out.extend(assembler.receive_raw(parser.feed_raw(data[start:])))
        out.extend(assembler.finish())
        return out

    return run


def ws_frame(opcode: WsOpcode, data: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """A frame serialized by the ``websockets`` library (a random mask when masked)."""
    return Frame(opcode, data, fin=fin).serialize(mask=masked)


def summary(msgs: list[WsMessage]) -> list[tuple[int, bytes, tuple[str, ...]]]:
    return [(m.opcode, m.payload, m.violations) for m in msgs]


# ------------------------------------------------------------------ RFC 6455 5.7


def test_rfc6455_examples_from_a_server(read: Any) -> None:
    wire = HELLO + HEL_LO + PING + BINARY_256 + bytes(range(256)) + BINARY_64K + bytes(65536)
    out = read(wire, "server")
    assert summary(out) == [
        (Opcode.TEXT, b"Hello", ()),
        (Opcode.TEXT, b"Hello", ()),
        (Opcode.PING, b"Hello", ()),
        (Opcode.BINARY, bytes(range(256)), ()),
        (Opcode.BINARY, bytes(65536), ()),
    ]
    assert [m.text for m in out[:2]] == ["Hello", "Hello"]
    assert [m.frames for m in out] == [1, 2, 1, 1, 1]
    assert [m.wire_length for m in out] == [7, 5 + 4, 7, 4 + 256, 10 + 65536]
    assert [m.is_control for m in out] == [False, False, True, False, False]


def test_rfc6455_masked_examples_from_a_client(read: Any) -> None:
    out = read(HELLO_MASKED + PONG_MASKED, "client")
    assert summary(out) == [(Opcode.TEXT, b"Hello", ()), (Opcode.PONG, b"Hello", ())]
    assert out[0].wire_length == 11


def test_every_cut_of_the_stream_gives_the_same_messages(read: Any) -> None:
    wire = HELLO_MASKED + ws_frame(WsOpcode.BINARY, bytes(300)) + PONG_MASKED
    whole = summary(read(wire, "client"))
    assert len(whole) == 3
    for cut in range(1, len(wire)):
        assert summary(read(wire, "client", cuts=(cut,))) == whole, cut
    assert summary(read(wire, "client", cuts=tuple(range(1, len(wire))))) == whole


# ------------------------------------------------------------------ reassembly


def test_fragmented_messages_from_websockets_frames(read: Any) -> None:
    text = "Grüße, 世界! ".encode()
    # split inside a multi-byte character: only the whole message must be UTF-8
    cut = text.index("ü".encode()) + 1
    wire = (
        ws_frame(WsOpcode.TEXT, text[:cut], fin=False)
        + ws_frame(WsOpcode.CONT, text[cut:-3], fin=False)
        + ws_frame(WsOpcode.CONT, text[-3:])
        + ws_frame(WsOpcode.BINARY, b"\x00", fin=False)
        + ws_frame(WsOpcode.CONT, b"", fin=False)
        + ws_frame(WsOpcode.CONT, b"\xff")
    )
    out = read(wire, "client")
    assert summary(out) == [(Opcode.TEXT, text, ()), (Opcode.BINARY, b"\x00\xff", ())]
    assert out[0].text == text.decode() and out[1].text is None
    assert [m.frames for m in out] == [3, 3]
    assert sum(m.wire_length for m in out) == len(wire)


def test_control_frames_between_fragments_come_out_first(read: Any) -> None:
    wire = (
        ws_frame(WsOpcode.TEXT, b"He", fin=False)
        + ws_frame(WsOpcode.PING, b"1")
        + ws_frame(WsOpcode.CONT, b"l", fin=False)
        + ws_frame(WsOpcode.PONG, b"2")
        + ws_frame(WsOpcode.PING, b"")
        + ws_frame(WsOpcode.CONT, b"lo")
    )
    out = read(wire, "client")
    assert summary(out) == [
        (Opcode.PING, b"1", ()),
        (Opcode.PONG, b"2", ()),
        (Opcode.PING, b"", ()),
        (Opcode.TEXT, b"Hello", ()),
    ]
    assert out[3].frames == 3


def test_a_close_between_fragments_then_the_rest_is_data_after_close(read: Any) -> None:
    wire = (
        ws_frame(WsOpcode.TEXT, b"a", fin=False, masked=False)
        + Frame(WsOpcode.CLOSE, Close(1000, "").serialize()).serialize(mask=False)
        + ws_frame(WsOpcode.CONT, b"b", masked=False)
    )
    out = read(wire, "server")
    assert [(m.opcode, m.close_code) for m in out] == [(Opcode.CLOSE, 1000), (Opcode.TEXT, None)]
    assert out[1].payload == b"ab" and out[1].violations == ("data-after-close",)


def test_a_new_message_inside_a_fragmented_one(read: Any) -> None:
    wire = bytes.fromhex("010348656c") + HELLO  # "Hel" (FIN=0), then a whole text frame
    out = read(wire, "server")
    assert summary(out) == [
        (Opcode.CONT, b"Hel", ("interleaved-message",)),
        (Opcode.TEXT, b"Hello", ()),
    ]


def test_continuation_with_nothing_to_continue(read: Any) -> None:
    out = read(bytes.fromhex("80026c6f"), "server")
    assert summary(out) == [(Opcode.CONT, b"lo", ("unexpected-continuation",))]


def test_the_stream_ends_inside_a_message(read: Any) -> None:
    out = read(bytes.fromhex("010348656c") + PING, "server")
    assert summary(out) == [
        (Opcode.PING, b"Hello", ()),
        (Opcode.CONT, b"Hel", ("incomplete-message",)),
    ]


def test_lost_gives_up_the_message_in_progress() -> None:
    assembler = MessageAssembler("server")
    (first,) = FrameParser().feed(bytes.fromhex("010348656c"))
    assert assembler.receive(first) == []
    assert summary(assembler.lost()) == [(Opcode.CONT, b"Hel", ())]
    assert assembler.lost() == [] and assembler.finish() == []
    (cont,) = FrameParser().feed(bytes.fromhex("80026c6f"))
    assert assembler.receive(cont)[0].violations == ("unexpected-continuation",)


# ------------------------------------------------------------------ masking


def test_masking_is_undone_with_the_frames_key() -> None:
    (frame,) = FrameParser().feed(HELLO_MASKED)
    assert frame.mask == MASK and frame.masked and frame.payload == b"Hello"
    # the same payload under a websockets-chosen key unmasks the same
    (frame,) = FrameParser().feed(ws_frame(WsOpcode.BINARY, b"\x00" * 9 + b"xyz"))
    assert frame.payload == b"\x00" * 9 + b"xyz" and frame.mask is not None


def test_clients_must_mask_and_servers_must_not(read: Any) -> None:
    assert [m.violations for m in read(HELLO + PING, "client")] == [
        ("unmasked-client-frame",),
        ("unmasked-client-frame",),
    ]
    assert [m.violations for m in read(HELLO_MASKED + PONG_MASKED, "server")] == [
        ("masked-server-frame",),
        ("masked-server-frame",),
    ]
    out = read(ws_frame(WsOpcode.TEXT, b"ok", masked=False), "client")
    assert out[0].text == "ok"  # still decoded: a violation never stops the reading


def test_sender_must_be_client_or_server() -> None:
    with pytest.raises(ValueError, match="client"):
        MessageAssembler("proxy")


# ------------------------------------------------------------------ reserved bits and opcodes


@pytest.mark.parametrize(
    ("wire", "opcode"),
    [
        (bytes.fromhex("830548656c6c6f"), 3),  # RFC 6455 5.2: %x3-7 reserved (data)
        (bytes.fromhex("8700"), 7),
        (bytes.fromhex("8b0148"), 0xB),  # %xB-F reserved (control)
        (bytes.fromhex("8f00"), 0xF),
    ],
)
def test_reserved_opcodes_keep_their_number(read: Any, wire: bytes, opcode: int) -> None:
    (msg,) = read(wire, "server")
    assert msg.opcode == opcode and msg.violations == ("bad-opcode",)
    assert msg.payload == wire[2:]


@pytest.mark.parametrize(
    ("wire", "with_deflate"),
    [
        (bytes.fromhex("c10548656c6c6f"), False),  # RSV1, no extension negotiated
        (bytes.fromhex("a10548656c6c6f"), False),  # RSV2
        (bytes.fromhex("910548656c6c6f"), False),  # RSV3
        (bytes.fromhex("a10548656c6c6f"), True),  # RSV2 means nothing to permessage-deflate
        (bytes.fromhex("c90548656c6c6f"), True),  # RSV1 on a control frame (RFC 7692 6)
    ],
)
def test_reserved_bits(read: Any, wire: bytes, with_deflate: bool) -> None:
    deflate = DeflateParams().context("server") if with_deflate else None
    (msg,) = read(wire, "server", deflate)
    assert "reserved-bits" in msg.violations


def test_rsv1_on_a_continuation_frame(read: Any) -> None:
    # RFC 7692 6.1: RSV1 is set on the first frame of a message only
    wire = bytes.fromhex("4103f248cd") + bytes.fromhex("c004c9c90700")
    (msg,) = read(wire, "server", DeflateParams().context("server"))
    assert msg.text == "Hello" and msg.violations == ("reserved-bits",)


def test_non_minimal_lengths(read: Any) -> None:
    wire = (
        bytes.fromhex("817e0005") + b"Hello"  # 16-bit form for 5 bytes
        + bytes.fromhex("827f00000000000000fe") + bytes(254)  # 64-bit form for 254
    )
    assert [m.violations for m in read(wire, "server")] == [
        ("non-minimal-length",),
        ("non-minimal-length",),
    ]


# ------------------------------------------------------------------ control frames


def test_control_frame_rules(read: Any) -> None:
    too_long = bytes.fromhex("897e007e") + bytes(126)  # 126 > 125 (RFC 6455 5.5)
    fragmented = bytes.fromhex("0905") + b"Hello"  # FIN=0 on a Ping
    just_fits = bytes.fromhex("8a7d") + bytes(125)
    out = read(too_long + fragmented + just_fits, "server")
    assert [(m.opcode, m.violations) for m in out] == [
        (Opcode.PING, ("control-too-long",)),
        (Opcode.PING, ("fragmented-control",)),
        (Opcode.PONG, ()),
    ]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                  1013, 1014, 3000, 4000, 4999])
def test_close_codes_that_may_be_sent(read: Any, code: int) -> None:
    payload = Close(code, "bye").serialize()  # websockets' own close payload
    (msg,) = read(ws_frame(WsOpcode.CLOSE, payload, masked=False), "server")
    assert (msg.close_code, msg.close_reason, msg.violations) == (code, "bye", ())


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_codes_that_may_not_be_sent(read: Any, code: int) -> None:
    wire = bytes((0x88, 2)) + code.to_bytes(2, "big")  # RFC 6455 7.4.1/7.4.2
    (msg,) = read(wire, "server")
    assert msg.close_code == code and msg.violations == ("bad-close-code",)


def test_close_payloads(read: Any) -> None:
    empty = bytes.fromhex("8800")  # no code: the receiver reports 1005, none was sent
    one_byte = bytes.fromhex("880103")  # RFC 6455 5.5.1: a body has 2 bytes first
    bad_reason = bytes.fromhex("880403e8c328")  # 1000, reason not UTF-8
    out = read(empty, "server") + read(one_byte, "server") + read(bad_reason, "server")
    assert [(m.close_code, m.violations) for m in out] == [
        (None, ()),
        (None, ("bad-close-payload",)),
        (1000, ("invalid-utf8",)),
    ]
    assert out[2].close_reason == "\ufffd("  # shown, replaced


def test_everything_after_a_close_is_flagged(read: Any) -> None:
    close = bytes.fromhex("880203e8")
    out = read(close + HELLO + PING + close, "server")
    assert [m.violations for m in out] == [
        (),
        ("data-after-close",),
        ("data-after-close",),
        ("data-after-close",),
    ]
    assert out[1].text == "Hello"


# ------------------------------------------------------------------ UTF-8


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("cebae1bd"),  # truncated 3-byte sequence
        bytes.fromhex("c0af"),  # overlong "/"
        bytes.fromhex("eda080"),  # a UTF-16 surrogate, U+D800
        bytes.fromhex("f4908080"),  # above U+10FFFF
        b"ok\xff",
    ],
)
def test_text_that_is_not_utf8(read: Any, payload: bytes) -> None:
    wire = bytes((0x81, len(payload))) + payload
    (msg,) = read(wire, "server")
    assert (msg.opcode, msg.payload, msg.text, msg.violations) == (
        Opcode.TEXT, payload, None, ("invalid-utf8",)
    )
    (binary,) = read(bytes((0x82, len(payload))) + payload, "server")
    assert binary.violations == ()  # binary messages are not text


def test_invalid_utf8_across_fragments(read: Any) -> None:
    wire = (
        ws_frame(WsOpcode.TEXT, "κό".encode(), fin=False, masked=False)
        + ws_frame(WsOpcode.CONT, b"\xce", masked=False)  # the message ends mid-character
    )
    (msg,) = read(wire, "server")
    assert msg.violations == ("invalid-utf8",) and msg.text is None


# ------------------------------------------------------------------ limits


def test_a_declared_length_over_the_limit_is_a_typed_error() -> None:
    parser = FrameParser(max_payload=1000)
    assert parser.feed(bytes.fromhex("827e03e8") + bytes(1000))[0].payload == bytes(1000)
    with pytest.raises(FrameError) as info:
        parser.feed(bytes.fromhex("827e03e9"))  # 1001: refused on the header alone
    assert info.value.close_code == 1009
    assert isinstance(info.value, DecodeError) and isinstance(info.value, RemoteProtocolError)
    assert "1001" in str(info.value) and info.value.offset == 0


def test_a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() -> None:
    with pytest.raises(FrameError) as info:
        FrameParser().feed(bytes.fromhex("827f8000000000000000"))  # RFC 6455 5.2
    assert info.value.close_code == 1002


def test_the_parser_holds_at_most_one_frame() -> None:
    parser = FrameParser()
    assert parser.feed(HELLO[:4]) == [] and parser.buffered == 4
    assert parser.reset() == HELLO[:4] and parser.buffered == 0
    assert parser.feed(HELLO)[0].payload == b"Hello"


def test_a_message_over_the_size_limit(read: Any) -> None:
    wire = (
        ws_frame(WsOpcode.BINARY, bytes(40), fin=False)
        + ws_frame(WsOpcode.CONT, bytes(40), fin=False)  # 80 > 64: dropped from here
        + ws_frame(WsOpcode.CONT, bytes(40))
        + ws_frame(WsOpcode.BINARY, bytes(65))  # one frame over the limit
        + ws_frame(WsOpcode.BINARY, bytes(64))  # exactly the limit
    )
    out = read(wire, "client", max_message=64)
    assert [(len(m.payload), m.violations, m.frames) for m in out] == [
        (40, ("message-too-big",), 3),
        (0, ("message-too-big",), 1),
        (64, (), 1),
    ]


def test_every_violation_code_is_reached_by_a_test_here() -> None:
    with open(__file__, encoding="utf-8") as source:
        text = source.read()
    assert [code for code in VIOLATIONS if f'"{code}"' not in text] == []
    assert all(meaning.strip() for meaning in VIOLATIONS.values())


# ------------------------------------------------------------------ permessage-deflate


def ws_deflated(
    payloads: list[bytes], *, no_context_takeover: bool = False, opcode: WsOpcode = WsOpcode.TEXT
) -> Iterator[bytes]:
    """Server frames compressed by websockets' own PerMessageDeflate."""
    ext = PerMessageDeflate(no_context_takeover, no_context_takeover, 15, 15)
    for data in payloads:
        yield Frame(opcode, data).serialize(mask=False, extensions=[ext])


def test_rfc7692_examples(read: Any) -> None:
    wire = (
        HELLO_DEFLATED  # 7.2.3.1
        + bytes.fromhex("c105f200110000")  # 7.2.3.2: the second one refers to the first
        + bytes.fromhex("4103f248cd") + bytes.fromhex("8004c9c90700")  # 7.2.3.3 fragmented
        + bytes.fromhex("c10b000500faff48656c6c6f00")  # 7.2.3.4: a stored block
    )
    out = read(wire, "server", DeflateParams().context("server"))
    assert [(m.text, m.compressed, m.violations, m.frames) for m in out] == [
        ("Hello", True, (), 1),
        ("Hello", True, (), 1),
        ("Hello", True, (), 2),
        ("Hello", True, (), 1),
    ]


def test_websockets_compressed_messages_inflate(read: Any) -> None:
    texts = [b"abc " * 50, b"", "ünïcode".encode(), b"abc " * 50]
    for takeover in (True, False):
        wire = b"".join(ws_deflated(texts, no_context_takeover=not takeover))
        params = DeflateParams(server_no_context_takeover=not takeover)
        out = read(wire, "server", params.context("server"))
        assert [m.payload for m in out] == texts
        assert all(m.compressed and m.violations == () for m in out)


def test_uncompressed_messages_on_a_deflate_connection(read: Any) -> None:
    (msg,) = read(HELLO, "server", DeflateParams().context("server"))
    assert (msg.text, msg.compressed, msg.violations) == ("Hello", False, ())


def test_corrupt_deflate_data(read: Any) -> None:
    (msg,) = read(bytes.fromhex("c103ffffff"), "server", DeflateParams().context("server"))
    assert msg.violations == ("deflate-error",) and msg.text is None
    assert msg.payload == b"\xff\xff\xff"  # what was on the wire, kept


def test_a_decompression_bomb_stops_at_the_limit(read: Any) -> None:
    bomb = next(ws_deflated([bytes(1 << 20)], opcode=WsOpcode.BINARY))  # 1 MiB of zeros, ~1 KiB
    assert len(bomb) < 2048
    deflate = DeflateParams().context("server", max_size=64 * 1024)
    (msg,) = read(bomb, "server", deflate, max_message=64 * 1024)
    assert msg.violations == ("message-too-big",) and len(msg.payload) < 2048


def test_a_text_bomb_is_too_big_not_invalid_utf8(read: Any) -> None:
    """The kept payload is the compressed bytes: they are not checked as UTF-8."""
    bomb = next(ws_deflated([b"a" * (1 << 20)], opcode=WsOpcode.TEXT))
    deflate = DeflateParams().context("server", max_size=64 * 1024)
    (msg,) = read(bomb, "server", deflate, max_message=64 * 1024)
    assert msg.violations == ("message-too-big",) and msg.text is None
