"""ws/deflate.py: permessage-deflate parameters and contexts (RFC 7692).

Oracles: the examples of RFC 7692 section 7.2.3 (payloads of the frames printed
there), the ``websockets`` library's own ``PerMessageDeflate`` (which must inflate
what :meth:`DeflateContext.compress` writes and whose output
:meth:`DeflateContext.decompress` must inflate) and its header parser.
"""

from __future__ import annotations

import random

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.headers import parse_extension

from wsproto_tools.exceptions import DecodeError, FrameError, HandshakeError
from wsproto_tools.ws import DeflateContext, DeflateParams

# RFC 7692 section 7.2.3: the payloads of the example frames, all "Hello"
HELLO_1 = bytes.fromhex("f248cdc9c90700")  # 7.2.3.1
HELLO_2_TAKEOVER = bytes.fromhex("f200110000")  # 7.2.3.2: refers to the message before
STORED = bytes.fromhex("000500faff48656c6c6f00")  # 7.2.3.4: no compression
TWO_BLOCKS = bytes.fromhex("f24805000000ffffcac9c90700")  # 7.2.3.5
BFINAL = bytes.fromhex("f348cdc9c90700" + "00")  # 7.2.3.6: BFINAL set, and a padding byte


# ------------------------------------------------------------------ parameters


def test_the_default_offer_answer() -> None:
    assert DeflateParams.from_header("permessage-deflate") == DeflateParams(False, False, 15, 15)
    assert DeflateParams().header_value() == "permessage-deflate"


def test_every_parameter() -> None:
    value = (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=8"
    )
    params = DeflateParams.from_header(value)
    assert params == DeflateParams(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=8,
    )
    assert params is not None
    # written back in a form websockets' header parser reads to the same parameters
    (name, written), = parse_extension(params.header_value())
    assert name == "permessage-deflate"
    assert sorted(written) == sorted([
        ("server_no_context_takeover", None),
        ("client_no_context_takeover", None),
        ("server_max_window_bits", "10"),
        ("client_max_window_bits", "8"),
    ])


def test_a_bare_client_max_window_bits_means_15() -> None:
    params = DeflateParams.from_header("permessage-deflate; client_max_window_bits")
    assert params == DeflateParams()


def test_other_extensions_are_skipped() -> None:
    assert DeflateParams.from_header("x-webkit-deflate-frame") is None
    assert DeflateParams.from_header(
        "x-custom; a=1, permessage-deflate; server_max_window_bits=12"
    ) == DeflateParams(server_max_window_bits=12)


@pytest.mark.parametrize("bits", ["7", "16", "0", "abc", "-9", "15.0"])
def test_window_bits_out_of_range(bits: str) -> None:
    with pytest.raises(HandshakeError, match=r"max_window_bits must be 8\.\.15") as info:
        DeflateParams.from_header(f"permessage-deflate; server_max_window_bits={bits}")
    assert info.value.close_code == 1002


@pytest.mark.parametrize("bits", range(8, 16))
def test_window_bits_in_range(bits: int) -> None:
    params = DeflateParams.from_header(f"permessage-deflate; client_max_window_bits={bits}")
    assert params is not None and params.client_max_window_bits == bits


@pytest.mark.parametrize("value", ["permessage-deflate; =1", "permessage-deflate;;", ", ,x y"])
def test_malformed_headers(value: str) -> None:
    with pytest.raises(HandshakeError, match="bad Sec-WebSocket-Extensions"):
        DeflateParams.from_header(value)


def test_each_direction_gets_its_own_parameters() -> None:
    params = DeflateParams(
        server_no_context_takeover=True, client_no_context_takeover=False,
        server_max_window_bits=9, client_max_window_bits=12,
    )
    server, client = params.context("server"), params.context("client", max_size=100)
    assert (server.no_context_takeover, server.max_window_bits, server.max_size) == (True, 9, None)
    assert (client.no_context_takeover, client.max_window_bits, client.max_size) == (False, 12, 100)


# ------------------------------------------------------------------ the RFC 7692 examples


@pytest.mark.parametrize("payload", [HELLO_1, STORED, TWO_BLOCKS, BFINAL])
def test_rfc7692_single_messages(payload: bytes) -> None:
    assert DeflateContext(False, 15).decompress(payload) == b"Hello"
    assert DeflateContext(True, 15).decompress(payload) == b"Hello"


def test_rfc7692_context_takeover() -> None:
    context = DeflateContext(False, 15)
    assert context.decompress(HELLO_1) == b"Hello"
    assert context.decompress(HELLO_2_TAKEOVER) == b"Hello"  # uses the first one's window


def test_without_context_takeover_a_back_reference_is_corrupt() -> None:
    context = DeflateContext(True, 15)
    assert context.decompress(HELLO_1) == b"Hello"
    with pytest.raises(FrameError) as info:
        context.decompress(HELLO_2_TAKEOVER)
    assert info.value.close_code == 1007 and isinstance(info.value, DecodeError)


def test_the_rfc_compression_of_two_hellos() -> None:
    # RFC 7692 7.2.3.1 and 7.2.3.2: what a sender that keeps its context writes
    sender = DeflateContext(False, 15)
    assert sender.compress(b"Hello") == HELLO_1
    assert sender.compress(b"Hello") == HELLO_2_TAKEOVER
    # and one that does not: the same bytes every time
    fresh = DeflateContext(True, 15)
    assert [fresh.compress(b"Hello") for _ in range(3)] == [HELLO_1] * 3


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x07"])  # BTYPE 11 is reserved
def test_corrupt_data(payload: bytes) -> None:
    with pytest.raises(FrameError, match="corrupt") as info:
        DeflateContext(True, 15).decompress(payload)
    assert info.value.close_code == 1007


# ------------------------------------------------------------------ against websockets


def ws_extension(no_context_takeover: bool, bits: int) -> PerMessageDeflate:
    return PerMessageDeflate(no_context_takeover, no_context_takeover, bits, bits)


def ws_compress(ext: PerMessageDeflate, data: bytes) -> bytes:
    return bytes(ext.encode(Frame(Opcode.BINARY, data)).data)


def ws_decompress(ext: PerMessageDeflate, data: bytes) -> bytes:
    return bytes(ext.decode(Frame(Opcode.BINARY, data, rsv1=True)).data)


MESSAGES = [
    b"The quick brown fox jumps over the lazy dog. " * 20,
    b"",
    bytes(range(256)) * 4,
    b"The quick brown fox jumps over the lazy dog. " * 20,  # takeover makes this tiny
    random.Random(7).randbytes(3000),  # does not compress: a compressed payload > 2 KiB
    "ünïcödé ✓".encode() * 100,
]


@pytest.mark.parametrize("no_context_takeover", [False, True])
@pytest.mark.parametrize("bits", [8, 9, 10, 12, 15])
def test_websockets_reads_what_we_compress(no_context_takeover: bool, bits: int) -> None:
    ours = DeflateContext(no_context_takeover, bits)
    theirs = ws_extension(no_context_takeover, max(bits, 9))
    sizes = []
    for data in MESSAGES:
        compressed = ours.compress(data)
        sizes.append(len(compressed))
        assert ws_decompress(theirs, compressed) == data
    if not no_context_takeover and bits >= 12:  # 2,000 bytes back: inside a 4 KiB window
        assert sizes[3] < 20 < sizes[0]  # the repeat is a back-reference into the window


@pytest.mark.parametrize("no_context_takeover", [False, True])
@pytest.mark.parametrize("bits", [9, 10, 12, 15])
def test_we_read_what_websockets_compresses(no_context_takeover: bool, bits: int) -> None:
    theirs = ws_extension(no_context_takeover, bits)
    ours = DeflateContext(no_context_takeover, bits)
    for data in MESSAGES:
        assert ours.decompress(ws_compress(theirs, data)) == data


def test_a_small_window_does_not_reach_far_back() -> None:
    # with 9 window bits (512 bytes) a repeat 1,000 bytes back cannot be referenced
    block = random.Random(3).randbytes(1000)
    small = DeflateContext(True, 9).compress(block + block)
    large = DeflateContext(True, 15).compress(block + block)
    assert len(small) > 1900 > 1100 > len(large)
    assert ws_decompress(ws_extension(True, 9), small) == block + block


# ------------------------------------------------------------------ decompression bombs


def zeros(n: int) -> bytes:
    return ws_compress(ws_extension(True, 15), bytes(n))


@pytest.mark.parametrize("prefix", [b"", random.Random(1).randbytes(3000)])
def test_a_bomb_stops_at_max_size(prefix: bytes) -> None:
    # a short payload and one over 2 KiB take different paths in decompress()
    bomb = ws_compress(ws_extension(True, 15), prefix + bytes(8 << 20))
    assert len(bomb) < len(prefix) + 10_000
    context = DeflateContext(True, 15, max_size=1 << 20)
    with pytest.raises(FrameError, match="exceeds 1048576 bytes") as info:
        context.decompress(bomb)
    assert info.value.close_code == 1009
    # the context is still usable for the next message (no context takeover)
    assert context.decompress(HELLO_1) == b"Hello"


@pytest.mark.parametrize("prefix", [b"", random.Random(2).randbytes(3000)])
def test_max_size_is_inclusive(prefix: bytes) -> None:
    size = len(prefix) + 100_000
    payload = ws_compress(ws_extension(True, 15), prefix + bytes(100_000))
    assert DeflateContext(True, 15, max_size=size).decompress(payload) == prefix + bytes(100_000)
    with pytest.raises(FrameError) as info:
        DeflateContext(True, 15, max_size=size - 1).decompress(payload)
    assert info.value.close_code == 1009


def test_no_max_size_means_no_limit() -> None:
    assert DeflateContext(True, 15).decompress(zeros(16 << 20)) == bytes(16 << 20)
