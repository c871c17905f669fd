"""The same conversation decodes the same way over every supported link type."""

from __future__ import annotations

import gzip
import io
import struct
from typing import Any

import pytest

from wsproto_tools.capture import CaptureDecoder, CapturedMessage, PacketReader
from wsproto_tools.capture.writer import PcapngWriter, pcap_bytes

from .samples import CAPTURES

SOURCE = CAPTURES / "ws-basic.pcap"


def ethernet_packets() -> list[tuple[float, bytes]]:
    reader = PacketReader(io.BytesIO(SOURCE.read_bytes()))
    return [(ts, data) for _, ts, linktype, data in reader if linktype == 1]


def ipv6(ip4: bytes) -> bytes:
    """The same TCP segment in an IPv6 packet (::ffff:... addresses, a hop-by-hop header)."""
    ihl = (ip4[0] & 0x0F) * 4
    total = struct.unpack("!H", ip4[2:4])[0]
    segment = ip4[ihl:total]
    src = b"\0" * 10 + b"\xff\xff" + ip4[12:16]
    dst = b"\0" * 10 + b"\xff\xff" + ip4[16:20]
    hop_by_hop = bytes([6, 0, 1, 4, 0, 0, 0, 0])  # next header TCP, PadN
    return (struct.pack("!IHBB", 6 << 28, len(segment) + 8, 0, 64) + src + dst
            + hop_by_hop + segment)


def relink(kind: str) -> tuple[int, list[tuple[float, bytes]]]:
    out = []
    for ts, frame in ethernet_packets():
        ip = frame[14:]
        if kind == "vlan":
            out.append((ts, frame[:12] + b"\x81\x00\x00\x07" + b"\x88\xa8\x00\x09"
                        + frame[12:]))
        elif kind == "sll":
            out.append((ts, struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ip))
        elif kind == "sll2":
            out.append((ts, struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + ip))
        elif kind == "null":
            out.append((ts, struct.pack("<I", 2) + ip))
        elif kind == "raw":
            out.append((ts, ip))
        elif kind == "ipv6":
            out.append((ts, b"\0" * 12 + b"\x86\xdd" + ipv6(ip)))
    linktype = {"vlan": 1, "sll": 113, "sll2": 276, "null": 0, "raw": 101, "ipv6": 1}[kind]
    return linktype, out


def decode(data: bytes) -> list[tuple[str, str, Any]]:
    warnings: list[str] = []
    reader = PacketReader(io.BytesIO(data), lambda n, m: warnings.append(m))
    decoder = CaptureDecoder()
    events = [e for p in reader for e in decoder.packet(p)] + decoder.finish()
    assert warnings == []
    return [(e.direction, e.msg.opcode, e.msg.payload) for e in events
            if isinstance(e, CapturedMessage)]


EXPECTED = decode(SOURCE.read_bytes())


def test_source_has_messages() -> None:
    assert len(EXPECTED) == 14


@pytest.mark.parametrize("kind", ["vlan", "sll", "sll2", "null", "raw", "ipv6"])
def test_link_type(kind: str) -> None:
    linktype, packets = relink(kind)
    assert decode(pcap_bytes(packets, linktype)) == EXPECTED


def test_pcapng_big_endian_nanoseconds_and_gzip() -> None:
    stream = io.BytesIO()
    writer = PcapngWriter(stream, 1)
    for ts, data in ethernet_packets():
        writer.write(ts, data)
    assert decode(stream.getvalue()) == EXPECTED
    assert decode(gzip.compress(stream.getvalue())) == EXPECTED
    # a big-endian nanosecond pcap of the same packets
    head = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    body = b"".join(
        struct.pack(">IIII", int(ts), round((ts - int(ts)) * 1e9), len(d), len(d)) + d
        for ts, d in ethernet_packets()
    )
    assert decode(head + body) == EXPECTED


def test_out_of_order_and_retransmitted_segments() -> None:
    packets = ethernet_packets()
    shuffled = packets[:6]
    rest = packets[6:]
    # swap neighbours pairwise and send every third packet twice
    for i in range(0, len(rest) - 1, 2):
        shuffled += [rest[i + 1], rest[i]]
    if len(rest) % 2:
        shuffled.append(rest[-1])
    doubled = []
    for i, p in enumerate(shuffled):
        doubled.append(p)
        if i % 3 == 0:
            doubled.append(p)
    got = decode(pcap_bytes(doubled))
    for sender in ("client", "server"):
        assert [m for m in got if m[0] == sender] == [m for m in EXPECTED if m[0] == sender]
