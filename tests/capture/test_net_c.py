"""The C packet parser (``capture/_net.c``) agrees with ``tcp_segment``.

The oracle is the Python :func:`tcp_segment` (checked against hand-built packets
of every link type in test_link_types.py): on real packets relinked to every
link type, and on random mutations of them, the C parser returns either None
(left to Python) or exactly the Python tuple; ``net.segment`` (C in front of
Python, picked once) always gives the Python result.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools import native
from wsproto_tools.capture import net
from wsproto_tools.capture.net import NotTcp, tcp_segment

from .test_link_types import ethernet_packets, ipv6, relink


def c_module() -> Any:
    """``capture._net``, whatever the run's WSP_PURE_PYTHON says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(native.SWITCH, raising=False)
        module = native.load("capture._net")
    assert module is not None, "the C packet parser was not built (setup.py, a C compiler)"
    return module


#: what the C parser reads itself (None: left to Python)
SEGMENT = c_module().parse
#: tcp_segment with the C parser in front
COMPILED = net._compiled_segment(c_module())
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
    python = python_segment(linktype, mutated)
    if fast is not None:
        assert fast == python
    try:
        compiled = COMPILED(linktype, mutated)
    except (NotTcp, IndexError, ValueError):
        compiled = "error"
    assert compiled == python


def test_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.SWITCH, "1")
    assert native.pick("capture._net", net._compiled_segment, tcp_segment) is tcp_segment
    monkeypatch.delenv(native.SWITCH)
    assert native.pick("capture._net", net._compiled_segment, tcp_segment) is not tcp_segment


def test_the_compiled_segment_hands_python_what_it_leaves() -> None:
    for linktype, frame in PACKETS:
        assert COMPILED(linktype, frame) == tcp_segment(linktype, frame)
    assert COMPILED(7, b"\0" * 60) is None  # a link type the C parser leaves
    with pytest.raises(NotTcp):
        COMPILED(101, bytes.fromhex("4500002a0001400040060000") + b"\0" * 8)  # TCP cut short
