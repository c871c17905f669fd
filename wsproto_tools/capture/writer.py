"""A minimal streaming pcapng writer (one section, one interface)."""

from __future__ import annotations

__all__ = ["PcapngWriter", "pcap_bytes"]

import struct
from typing import IO

_SHB = 0x0A0D0D0A
_IDB = 1
_EPB = 6
_ISB = 5


def _block(btype: int, body: bytes) -> bytes:
    pad = (-len(body)) % 4
    total = 12 + len(body) + pad
    return struct.pack("<II", btype, total) + body + b"\0" * pad + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


class PcapngWriter:
    """Writes packets as pcapng enhanced packet blocks (microsecond timestamps)."""

    def __init__(
        self, stream: IO[bytes], linktype: int, *, snaplen: int = 262144, name: str = ""
    ) -> None:
        self.stream = stream
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(4, b"wsp tap") + b"\0" * 4
        idb_options = b""
        if name:
            idb_options += _option(2, name.encode())
        idb_options += _option(9, b"\x06")
        idb = struct.pack("<HHI", linktype, 0, snaplen) + idb_options + b"\0" * 4
        stream.write(_block(_SHB, shb) + _block(_IDB, idb))
        self.packets = 0

    def write(self, ts: float, data: bytes, orig_len: int | None = None) -> None:
        micros = round(ts * 1_000_000)
        body = struct.pack(
            "<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), orig_len or len(data)
        )
        self.stream.write(_block(_EPB, body + data))
        self.packets += 1

    def statistics(self, ts: float, received: int, dropped: int) -> None:
        """An interface statistics block with the kernel's counters."""
        micros = round(ts * 1_000_000)
        options = (
            _option(4, struct.pack("<Q", received)) + _option(5, struct.pack("<Q", dropped))
            + b"\0" * 4
        )
        body = struct.pack("<III", 0, micros >> 32, micros & 0xFFFFFFFF) + options
        self.stream.write(_block(_ISB, body))


def pcap_bytes(packets: list[tuple[float, bytes]], linktype: int = 1) -> bytes:
    """A classic little-endian microsecond pcap file holding ``packets``."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for ts, data in packets:
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
    return b"".join(out)
