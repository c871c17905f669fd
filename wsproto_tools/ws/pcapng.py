"""pcapng blocks as bytes (the pcapng draft, IETF opsawg-pcapng), sans-I/O.

The pure block builders behind :class:`wsproto_tools.capture.writer.PcapngWriter`
and the synthetic captures of :mod:`wsproto_tools.ws.synth`: one section header,
one interface, enhanced packet blocks with microsecond timestamps, interface
statistics. All little-endian. Nothing here writes to a file.
"""

from __future__ import annotations

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "block",
    "enhanced_packet_block",
    "interface_description_block",
    "interface_statistics_block",
    "option",
    "pcapng_header",
    "section_header_block",
]

import struct

#: Link types (tcpdump.org linktypes): Ethernet II and raw IPv4/IPv6.
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

_SHB = 0x0A0D0D0A
_IDB = 1
_ISB = 5
_EPB = 6
_OPT_END = b"\0" * 4


def block(btype: int, body: bytes) -> bytes:
    """A block of type ``btype``: body padded to 32 bits, total length on both ends."""
    pad = (-len(body)) % 4
    total = 12 + len(body) + pad
    return struct.pack("<II", btype, total) + body + b"\0" * pad + struct.pack("<I", total)


def option(code: int, value: bytes) -> bytes:
    """One option (code, length, value padded to 32 bits)."""
    return struct.pack("<HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def section_header_block(application: str = "wsp") -> bytes:
    """A section header block (unknown section length) naming the writing application."""
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + option(4, application.encode())
    return block(_SHB, body + _OPT_END)


def interface_description_block(linktype: int, *, snaplen: int = 262144, name: str = "") -> bytes:
    """An interface description block; timestamps in microseconds (``if_tsresol`` 6)."""
    options = option(2, name.encode()) if name else b""
    options += option(9, b"\x06")
    return block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + options + _OPT_END)


def pcapng_header(linktype: int, *, application: str = "wsp", name: str = "",
                  snaplen: int = 262144) -> bytes:
    """The start of a pcapng file: a section header and interface 0."""
    return section_header_block(application) + interface_description_block(
        linktype, snaplen=snaplen, name=name)


def _micros(ts: float) -> tuple[int, int]:
    micros = round(ts * 1_000_000)
    return micros >> 32, micros & 0xFFFFFFFF


def enhanced_packet_block(ts: float, data: bytes, orig_len: int | None = None) -> bytes:
    """An enhanced packet block on interface 0 at ``ts`` (seconds since the epoch)."""
    high, low = _micros(ts)
    body = struct.pack("<IIIII", 0, high, low, len(data), orig_len or len(data))
    return block(_EPB, body + data)


def interface_statistics_block(ts: float, received: int, dropped: int) -> bytes:
    """Interface statistics for interface 0 (``isb_ifrecv``, ``isb_ifdrop``)."""
    high, low = _micros(ts)
    options = (option(4, struct.pack("<Q", received)) + option(5, struct.pack("<Q", dropped))
               + _OPT_END)
    return block(_ISB, struct.pack("<III", 0, high, low) + options)
