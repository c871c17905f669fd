"""Damaged input gives warnings, never exceptions (hypothesis)."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_tools.capture import CaptureDecoder, CapturedMessage, CaptureWarning, PacketReader
from wsproto_tools.capture.writer import pcap_bytes
from wsproto_tools.cli.main import cli
from wsproto_tools.exceptions import NotACapture

from .samples import samples

SAMPLE_BYTES = [path.read_bytes() for name, path, _ in samples() if path.suffix != ".gz"]


def decode_all(data: bytes) -> tuple[list[Any], list[tuple[int, str]]]:
    warnings: list[tuple[int, str]] = []
    reader = PacketReader(io.BytesIO(data), lambda n, m: warnings.append((n, m)))
    decoder = CaptureDecoder()
    events: list[Any] = []
    for packet in reader:
        events.extend(decoder.packet(packet))
    events.extend(decoder.finish())
    return events, warnings


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 64)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in mutations:
        if not buf:
            break
        pos = where % len(buf)
        if kind == "flip":
            buf[pos] ^= value
        elif kind == "cut":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = bytes([value]) * (1 + value % 7)
        else:
            del buf[pos : pos + value]
    return bytes(buf)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(SAMPLE_BYTES) - 1), st.lists(mutation, min_size=1, max_size=6))
def test_mutated_samples_only_warn(which: int, mutations: list[tuple[str, int, int]]) -> None:
    data = mutate(SAMPLE_BYTES[which], mutations)
    try:
        events, warnings = decode_all(data)
    except NotACapture:
        # only a damaged file header may make the input "not a capture"
        assert data[:28] != SAMPLE_BYTES[which][:28] or len(data) < 40
        return
    for event in events:
        assert isinstance(event, CapturedMessage | CaptureWarning) or event is not None
    for number, message in warnings:
        assert number >= 1 and message


REQUEST = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
            b"Sec-WebSocket-Protocol: wsp.v2\r\n\r\n")


def conversation(parts: list[tuple[bool, bytes]], *, segment: int = 97) -> bytes:
    """A pcap of one TCP connection (SYN, SYN-ACK, then ``parts``: (from client, bytes))."""
    packets = conversation_packets(parts, segment=segment)
    return pcap_bytes([(1_700_000_000 + i / 1000, p) for i, p in enumerate(packets)])


def conversation_packets(parts: list[tuple[bool, bytes]], *, segment: int = 97,
                         close: bool = False) -> list[bytes]:
    """The packets of :func:`conversation` (``close``: FINs from both sides at the end)."""
    client, server = bytes([127, 0, 0, 2]), bytes([127, 0, 0, 1])

    def packet(from_client: bool, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
        sport, dport = (5000, 80) if from_client else (80, 5000)
        src, dst = (client, server) if from_client else (server, client)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst)
        return b"\0" * 12 + b"\x08\x00" + ip + tcp + payload

    cseq, sseq = 1000, 9000
    packets = [packet(True, cseq, 0, 0x02, b""), packet(False, sseq, cseq + 1, 0x12, b"")]
    cseq += 1
    sseq += 1
    for from_client, data in parts:
        for off in range(0, len(data), segment):
            chunk = data[off : off + segment]
            if from_client:
                packets.append(packet(True, cseq, sseq, 0x18, chunk))
                cseq += len(chunk)
            else:
                packets.append(packet(False, sseq, cseq, 0x18, chunk))
                sseq += len(chunk)
    if close:
        packets.append(packet(True, cseq, sseq, 0x11, b""))
        packets.append(packet(False, sseq, cseq + 1, 0x11, b""))
    return packets


def _ws_connection(client_bytes: bytes, server_bytes: bytes) -> bytes:
    return conversation([(True, REQUEST), (False, RESPONSE), (True, client_bytes),
                         (False, server_bytes)])


def test_many_connections_on_one_address_pair() -> None:
    # 200 connections one after the other on the same ports, each closed with FINs:
    # each is a new connection, and each one's decoders are freed when it ends
    frame = bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])
    packets: list[bytes] = []
    for _ in range(200):
        packets += conversation_packets([(True, REQUEST), (False, RESPONSE), (True, frame)],
                                        close=True)
    reader = PacketReader(io.BytesIO(pcap_bytes([(1.0 + i / 1e4, p)
                                                 for i, p in enumerate(packets)])))
    decoder = CaptureDecoder()
    events = [e for p in reader for e in decoder.packet(p)]
    texts = [(e.conn, e.msg.text) for e in events if isinstance(e, CapturedMessage)]
    assert texts == [(n, "hi") for n in range(1, 201)]
    assert len(decoder.connections) == 200
    # an ended connection's state goes as soon as its ports are used again
    assert len(decoder._live) == 1
    assert all(state.ended and state.sides[0].assembler is None
               for state, _ in decoder._live.values())


def test_client_frames_before_the_response_are_held() -> None:
    frame = bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])
    data = conversation([(True, REQUEST), (True, frame), (False, RESPONSE)], segment=4096)
    events, warnings = decode_all(data)
    texts = [(e.direction, e.msg.text) for e in events if isinstance(e, CapturedMessage)]
    assert texts == [("client", "hi")]
    assert warnings == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.binary(max_size=600))
def test_garbage_websocket_streams_only_warn(client: bytes, server: bytes) -> None:
    events, warnings = decode_all(_ws_connection(client, server))
    assert all(n >= 1 for n, _ in warnings)
    for event in events:
        if isinstance(event, CapturedMessage):
            assert event.direction in ("client", "server")
            assert isinstance(event.violations, tuple)


def test_synthetic_connection_decodes() -> None:
    # a masked text frame "hi" from the client and an unmasked one from the server
    client = bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])
    server = bytes([0x81, 0x02]) + b"yo"
    events, warnings = decode_all(_ws_connection(client, server))
    texts = [(e.direction, e.msg.text) for e in events if isinstance(e, CapturedMessage)]
    assert texts == [("client", "hi"), ("server", "yo")]
    assert warnings == []


@pytest.mark.parametrize("data", [b"", b"hello world, not a capture", b"\x1f\x8bgarbage"])
def test_not_a_capture_exits_3(tmp_path: Any, data: bytes) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(data)
    result = CliRunner().invoke(cli, ["decode", str(path)])
    assert result.exit_code == 3
    assert "Traceback" not in result.output
    assert "error" in result.stderr


def test_truncated_capture_warns_with_packet_number(tmp_path: Any) -> None:
    data = SAMPLE_BYTES[0]
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[: len(data) - 7])
    result = CliRunner().invoke(cli, ["decode", "--ndjson", str(path)])
    assert result.exit_code == 0
    assert "warning: packet" in result.stderr


@pytest.mark.parametrize("name", ["ws-deflate-nocontext.pcap.gz", "ws-deflate.pcapng"])
def test_truncated_gzip_and_pcapng_warn(tmp_path: Any, name: str) -> None:
    from .samples import CAPTURES

    data = (CAPTURES / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 2 // 3])
    result = CliRunner().invoke(cli, ["decode", "--ndjson", str(path)])
    assert result.exit_code == 0
    assert "warning: packet" in result.stderr
    assert "Traceback" not in result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["record"] == "summary"
    assert records[-1]["messages"] > 0


def test_wsp_retransmission_counted() -> None:
    from wsproto_tools import codec
    from wsproto_tools.ws import encode_frame

    def frame(seq: int) -> bytes:
        wire = codec.encode(codec.Message(codec.TextData(f"m{seq}"), sequence=seq), version=2)
        return encode_frame(2, wire, mask=b"\x01\x02\x03\x04")

    client = frame(1) + frame(2) + frame(2) + frame(3)
    data = conversation([(True, REQUEST), (False, RESPONSE), (True, client)], segment=4096)
    reader = PacketReader(io.BytesIO(data))
    decoder = CaptureDecoder()
    for packet in reader:
        decoder.packet(packet)
    decoder.finish()
    assert decoder.connections[0].wsp_retransmissions == 1
    assert decoder.connections[0].unacked == 3  # nobody acknowledged anything


def test_midstream_compressed_is_right_or_says_why() -> None:
    from wsproto_tools.ws import DeflateParams, encode_frame

    context = DeflateParams().context("server")
    texts = [f"price update {i}: ACME 12.{i:02d} " * 6 for i in range(10)]
    frames = [encode_frame(1, context.compress(t.encode()), rsv1=True) for t in texts]
    # the capture starts after the handshake and the first three messages
    stream = b"".join(frames[3:])
    data = conversation([(False, stream)], segment=65536)
    events, warnings = decode_all(data)
    assert warnings == []
    got = [e for e in events if isinstance(e, CapturedMessage)]
    assert len(got) == 7
    for event, text in zip(got, texts[3:], strict=True):
        assert event.direction == "server"
        assert event.violations == ()
        if event.note is None:
            assert event.msg.text == text  # inflated: then it is right
        else:
            assert "cannot inflate" in event.note
    assert any(e.note for e in got)  # the first one refers to bytes before the capture
