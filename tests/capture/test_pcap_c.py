"""The C record splitter (``capture/_pcap.c``) reads what the Python reader reads.

The oracle is the pure-Python loop of :class:`PacketReader` (checked against
hand-built files in test_link_types.py): every sample, both byte orders and
time units, and damaged files (cut anywhere, a corrupt length) must give the
same packets and the same warnings both ways.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools import native
from wsproto_tools.capture import PacketReader, reader

from .samples import CAPTURES
from .test_link_types import ethernet_packets

PACKETS = ethernet_packets()


def pcap(order: str, nano: bool) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    scale = 1e9 if nano else 1e6
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    return head + b"".join(
        struct.pack(order + "IIII", int(ts), round((ts - int(ts)) * scale), len(d), len(d)) + d
        for ts, d in PACKETS
    )


def read(data: bytes, use_c: bool) -> tuple[list[Any], list[tuple[int, str]], Any]:
    with pytest.MonkeyPatch.context() as patch:
        if use_c:
            patch.delenv(native.SWITCH, raising=False)
            module = native.load("capture._pcap")
            assert module is not None, "the C splitter was not built (setup.py, a C compiler)"
            patch.setattr(reader, "_split", module.split)
        else:
            patch.setattr(reader, "_split", reader._python_split)
        warnings: list[tuple[int, str]] = []
        packets_reader = PacketReader(io.BytesIO(data), lambda n, m: warnings.append((n, m)))
        packets = list(packets_reader)
        info = packets_reader.info
        return packets, warnings, (info.packets, info.bytes_read)


FILES = [pcap(order, nano) for order in "<>" for nano in (False, True)] + [
    path.read_bytes() for path in sorted(CAPTURES.glob("*.pcap"))
]


@pytest.mark.parametrize("index", range(len(FILES)))
def test_whole_files(index: int) -> None:
    fast = read(FILES[index], True)
    assert fast == read(FILES[index], False)
    assert fast[0] and not fast[1]


def test_hand_written_record() -> None:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    record = struct.pack("<IIII", 1_700_000_000, 250_000, 3, 3) + b"abc"
    packets, warnings, info = read(head + record, True)
    assert packets == [(1, 1_700_000_000.25, 101, b"abc")]
    assert warnings == [] and info == (1, 24 + 19)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FILES[:4]), st.data())
def test_damaged_files(data_file: bytes, data: st.DataObject) -> None:
    buf = bytearray(data_file[: data.draw(st.integers(24, len(data_file)))])
    if data.draw(st.booleans()) and len(buf) > 40:
        at = data.draw(st.integers(24, len(buf) - 4))
        buf[at : at + 4] = data.draw(st.binary(min_size=4, max_size=4))
    damaged = bytes(buf)
    assert read(damaged, True) == read(damaged, False)
