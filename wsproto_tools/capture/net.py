"""Link layer, IP and TCP headers: from a captured packet to a TCP segment.

One function, :func:`tcp_segment`, does the whole walk with ``struct`` and
slicing (no per-layer objects): Ethernet (with any number of 802.1Q/802.1ad
VLAN tags), Linux cooked capture v1 and v2, BSD null/loopback, raw IP; IPv4
(fragments are skipped) and IPv6 (extension headers are walked).
"""

from __future__ import annotations

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "LINKTYPE_SLL",
    "LINKTYPE_SLL2",
    "SUPPORTED_LINKTYPES",
    "NotTcp",
    "Segment",
    "format_addr",
    "segment",
    "tcp_segment",
]

import ipaddress
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any

from wsproto_tools import native

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_SLL = 113
LINKTYPE_SLL2 = 276
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
SUPPORTED_LINKTYPES = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, 12, 14, LINKTYPE_LOOP,
     LINKTYPE_SLL, LINKTYPE_SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6}
)

_TCP = struct.Struct("!HHIIBB")
#: Ethernet + IPv4 without options + TCP: addresses, ports, seq, ack, offset, flags.
_ETH_IP4_TCP = struct.Struct("!4s4sHHIIBB")
_VLAN = (0x8100, 0x88A8, 0x9100)
_V6_EXT = frozenset({0, 43, 60, 51})
SYN = 0x02
FIN = 0x01
RST = 0x04
ACK = 0x10


#: A TCP segment: ``(src, sport, dst, dport, seq, ack, flags, payload)``, the
#: addresses as raw bytes, ``flags`` as the TCP flag byte (a plain tuple: one per
#: packet, built in C when it can be).
Segment = tuple[bytes, int, bytes, int, int, int, int, bytes]


class NotTcp(Exception):
    """Raised with a reason when a packet of a supported link type is damaged."""


def _ip_offset(linktype: int, data: bytes) -> int:
    """Offset of the IP header, or -1 when the packet carries no IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return -1
        etype = (data[12] << 8) | data[13]
        off = 14
        while etype in _VLAN and len(data) >= off + 4:
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        return off if etype in (0x0800, 0x86DD) else -1
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, 12, 14):
        return 0
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return 4 if len(data) > 4 else -1
    if linktype == LINKTYPE_SLL:
        if len(data) < 16:
            return -1
        etype = (data[14] << 8) | data[15]
        return 16 if etype in (0x0800, 0x86DD) else -1
    if linktype == LINKTYPE_SLL2:
        if len(data) < 20:
            return -1
        etype = (data[0] << 8) | data[1]
        return 20 if etype in (0x0800, 0x86DD) else -1
    return -1


def tcp_segment(linktype: int, data: bytes) -> Segment | None:
    """The TCP segment in a packet, or None for anything else (ARP, UDP, ...).

    Raises :class:`NotTcp` when a TCP/IP packet is damaged (truncated headers,
    a fragment that cannot be decoded alone).
    """
    if (
        linktype == LINKTYPE_ETHERNET
        and data[12:15] == b"\x08\x00\x45"
        and data[23] == 6
        and not (data[20] & 0x3F or data[21])
        and len(data) >= 54
    ):
        # the common case in one unpack: Ethernet, IPv4 without options, TCP
        src, dst, sport, dport, seq, ack, doff, flags = _ETH_IP4_TCP.unpack_from(data, 26)
        hlen = (doff >> 4) * 4
        if hlen >= 20:
            end = 14 + ((data[16] << 8) | data[17])
            return (src, sport, dst, dport, seq, ack, flags,
                    data[34 + hlen : end if end <= len(data) else len(data)])
    off = _ip_offset(linktype, data)
    if off < 0 or len(data) <= off:
        return None
    version = data[off] >> 4
    if version == 4:
        ihl = (data[off] & 0x0F) * 4
        if ihl < 20 or len(data) < off + ihl:
            raise NotTcp("truncated IPv4 header")
        if data[off + 9] != 6:
            return None
        total = (data[off + 2] << 8) | data[off + 3]
        frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
        if frag:
            raise NotTcp("IPv4 fragment (not reassembled)")
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        end = off + total if total >= ihl else len(data)
        t = off + ihl
    elif version == 6:
        if len(data) < off + 40:
            raise NotTcp("truncated IPv6 header")
        nxt = data[off + 6]
        plen = (data[off + 4] << 8) | data[off + 5]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        t = off + 40
        end = t + plen if plen else len(data)
        while nxt in _V6_EXT:
            if len(data) < t + 8:
                raise NotTcp("truncated IPv6 extension header")
            ext_len = (data[t + 1] + 2) * 4 if nxt == 51 else (data[t + 1] + 1) * 8
            nxt = data[t]
            t += ext_len
        if nxt == 44:
            raise NotTcp("IPv6 fragment (not reassembled)")
        if nxt != 6:
            return None
    else:
        return None
    if len(data) < t + 20:
        raise NotTcp("truncated TCP header")
    sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, t)
    hlen = (doff >> 4) * 4
    if hlen < 20:
        raise NotTcp("bad TCP header length")
    if end > len(data):
        end = len(data)  # snapped capture: keep what is there
    return (src, sport, dst, dport, seq, ack, flags, data[t + hlen : end])


def _compiled_segment(module: ModuleType) -> Any:
    """:func:`tcp_segment` with the common packets parsed in C (``capture/_net.c``),
    which hands the others to :func:`tcp_segment` itself."""
    module.configure(tcp_segment)
    return module.segment


#: :func:`tcp_segment`, in C for the common packets when it was built (see :mod:`..native`)
segment: Callable[[int, bytes], Segment | None] = native.pick(
    "capture._net", _compiled_segment, tcp_segment
)


def format_addr(addr: bytes, port: int) -> str:
    """``1.2.3.4:80`` or ``[::1]:80``."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}:{port}"
    return f"[{ipaddress.IPv6Address(addr)}]:{port}"
