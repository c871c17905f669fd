"""A minimal streaming pcapng writer (one section, one interface).

The blocks themselves are built by :mod:`wsproto_tools.ws.pcapng` (sans-I/O, so
that synthetic captures can be made below the tools); this module writes them.
"""

from __future__ import annotations

__all__ = ["PcapngWriter", "pcap_bytes"]

import struct
from typing import IO

from wsproto_tools.ws.pcapng import (
    enhanced_packet_block,
    interface_statistics_block,
    pcapng_header,
)


class PcapngWriter:
    """Writes packets as pcapng enhanced packet blocks (microsecond timestamps)."""

    def __init__(
        self, stream: IO[bytes], linktype: int, *, snaplen: int = 262144, name: str = ""
    ) -> None:
        self.stream = stream
        stream.write(pcapng_header(linktype, application="wsp tap", name=name, snaplen=snaplen))
        self.packets = 0

    def write(self, ts: float, data: bytes, orig_len: int | None = None) -> None:
        self.stream.write(enhanced_packet_block(ts, data, orig_len))
        self.packets += 1

    def statistics(self, ts: float, received: int, dropped: int) -> None:
        """An interface statistics block with the kernel's counters."""
        self.stream.write(interface_statistics_block(ts, received, dropped))


def pcap_bytes(packets: list[tuple[float, bytes]], linktype: int = 1) -> bytes:
    """A classic little-endian microsecond pcap file holding ``packets``."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for ts, data in packets:
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
    return b"".join(out)
