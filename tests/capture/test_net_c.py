"""The C packet parser (``capture/_net.c``) agrees with ``tcp_segment``.

The oracle is the Python :func:`tcp_segment` (checked against hand-built packets
of every link type in test_link_types.py): on real packets relinked to every
link type, and on random mutations of them, the C parser returns either None
(left to Python) or exactly the Python tuple.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools.capture import net
from wsproto_tools.capture.net import NotTcp, tcp_segment

from .test_link_types import ethernet_packets, ipv6, relink


def c_segment() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WSP_PURE_PYTHON", raising=False)
        segment = net._load_fast()
    assert segment is not None, "the C packet parser was not built (setup.py, a C compiler)"
    return segment


SEGMENT = c_segment()
KINDS = ["vlan", "sll", "sll2", "null", "raw", "ipv6"]
PACKETS = [(1, frame) for _, frame in ethernet_packets()] + [
    (linktype, frame) for kind in KINDS for linktype, frames in [relink(kind)]
    for _, frame in frames
] + [
    # IPv6 without extension headers, on null/loopback (BSD AF_INET6 = 24)
    (0, struct.pack("<I", 24) + ipv6(frame[14:])[:40 - 8] + ipv6(frame[14:])[48:])
    for _, frame in ethernet_packets()[:5]
]


def python_segment(linktype: int, data: bytes) -> Any:
    try:
        return tcp_segment(linktype, data)
    except (NotTcp, IndexError, ValueError):
        return "error"


def test_real_packets_of_every_link_type() -> None:
    taken = 0
    for linktype, frame in PACKETS:
        fast = SEGMENT(linktype, frame)
        if fast is not None:
            taken += 1
            assert fast == python_segment(linktype, frame)
    assert taken >= len(PACKETS) // 2  # all but VLAN-tagged and IPv6 extension headers


def test_hand_written_packet() -> None:
    # null/loopback, IPv4 127.0.0.1:40000 -> 127.0.0.1:80, seq 1, ack 2, PSH|ACK, "hi"
    ip = bytes.fromhex("4500002a0001400040060000" "7f000001" "7f000001")
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 2, 5 << 4, 0x18, 65535, 0, 0)
    data = struct.pack("<I", 2) + ip + tcp + b"hi" + b"\0" * 4  # trailing padding
    assert SEGMENT(0, data) == (b"\x7f\0\0\x01", 40000, b"\x7f\0\0\x01", 80, 1, 2, 0x18, b"hi")


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PACKETS), st.data())
def test_mutated_packets(packet: tuple[int, bytes], data: st.DataObject) -> None:
    linktype, frame = packet
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    mutated = bytes(buf[:cut] if data.draw(st.booleans()) else buf)
    linktype = data.draw(st.sampled_from([linktype, linktype, 0, 1, 12, 101, 108, 113, 276, 7]))
    fast = SEGMENT(linktype, mutated)
    if fast is not None:
        assert fast == python_segment(linktype, mutated)


def test_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSP_PURE_PYTHON", "1")
    assert net._load_fast() is None
    assert os.environ["WSP_PURE_PYTHON"] == "1"
