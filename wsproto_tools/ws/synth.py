"""Synthetic captures: a WebSocket conversation as loopback TCP/IP packets, sans-I/O.

:class:`SyntheticConnection` turns "the client sent this message at time t" into
the packets a capture of it would hold: the TCP three-way handshake (RFC 9293
section 3.5), the HTTP Upgrade request and its ``101`` answer (RFC 6455 section
4, with a correct ``Sec-WebSocket-Accept``), each message as one WebSocket frame
(section 5.2; client frames masked, section 5.3), segmented at the MSS and
acknowledged segment by segment, and the FIN/ACK teardown. IPv4 (RFC 791) and
TCP checksums, sequence and acknowledgment numbers are right, so Wireshark
opens the result with no malformed packets or checksum errors. IPv6 (RFC 8200)
works the same way when both addresses are IPv6.

Everything is deterministic: the initial sequence numbers, the
``Sec-WebSocket-Key`` and the masking keys derive from the connection number and
a frame counter (no randomness here), and packet times come from the caller
(never the clock). Timestamps are kept strictly increasing per connection, a
microsecond apart where the caller's times collide.

:func:`pcapng_bytes` wraps packets in pcapng blocks (:mod:`.pcapng`); writing a
file is the caller's business. Used by ``render/export.py`` (the TUI's Export)
and meant for ``wsp serve --record``.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_SERVER_PORT",
    "ETHERNET_MSS",
    "LOOPBACK_MSS",
    "SynthPacket",
    "SyntheticConnection",
    "client_port_of",
    "masking_key",
    "pcapng_bytes",
]

import base64
import hashlib
import ipaddress
import struct
from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple

from wsproto_tools.exceptions import ConfigError, LocalProtocolError
from wsproto_tools.ws.close import encode_close
from wsproto_tools.ws.frames import Opcode, encode_frame
from wsproto_tools.ws.handshake import build_request, build_response
from wsproto_tools.ws.pcapng import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    enhanced_packet_block,
    pcapng_header,
)

#: The MSS of Linux loopback (MTU 65536 less IPv4 and TCP headers, as Linux advertises it).
LOOPBACK_MSS = 65495
#: The MSS of an Ethernet path (MTU 1500).
ETHERNET_MSS = 1460
#: The server port when none is given: one Wireshark dissects as HTTP by default,
#: so the Upgrade and the WebSocket frames are recognized with no "Decode As".
DEFAULT_SERVER_PORT = 8080

Direction = Literal["client", "server"]

_FIN, _SYN, _PSH, _ACK = 0x01, 0x02, 0x08, 0x10
_WINDOW = 65535
_TTL = 64
_ETHERTYPE = {4: b"\x08\x00", 16: b"\x86\xdd"}  # by address length: IPv4, IPv6
_LOOPBACK_MACS = b"\0" * 12  # what Linux puts on lo


class SynthPacket(NamedTuple):
    """One packet: its time (seconds since the epoch) and its bytes at the link type."""

    ts: float
    data: bytes


def client_port_of(conn: int) -> int:
    """The client port of connection ``conn`` (1, 2, ...): the IANA dynamic range, in order."""
    return 49152 + (conn - 1) % 16384


def _mix32(x: int) -> int:
    # MurmurHash3's 32-bit finalizer: a counter in, well-spread bits out.
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def masking_key(conn: int, counter: int) -> bytes:
    """The masking key of client frame ``counter`` of connection ``conn`` (deterministic)."""
    return _mix32(_mix32(conn) + counter * 0x9E3779B9 + 1).to_bytes(4, "big")


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address(address: str, what: str) -> bytes:
    """The packed address: 4 bytes for IPv4, 16 for IPv6."""
    try:
        return ipaddress.ip_address(address).packed
    except ValueError:
        raise ConfigError(f"{what} {address!r} is not an IP address") from None


def _port(port: int, what: str) -> int:
    if not 0 < port < 65536:
        raise ConfigError(f"{what} {port} is not a TCP port (1-65535)")
    return port


class SyntheticConnection:
    """The packets of one WebSocket connection over TCP/IP, built call by call.

    Call :meth:`open` first, then :meth:`message` / :meth:`close` in the order
    things happened (or :meth:`connect` and :meth:`send` for raw stream bytes), then
    :meth:`teardown`. Each returns the packets it adds.
    ``mss`` bounds the TCP payload of a segment; ``linktype`` is
    ``LINKTYPE_ETHERNET`` (loopback MACs, all zeros) or ``LINKTYPE_RAW``.
    """

    def __init__(
        self,
        conn: int = 1,
        *,
        client_addr: str = "127.0.0.1",
        client_port: int | None = None,
        server_addr: str = "127.0.0.1",
        server_port: int = DEFAULT_SERVER_PORT,
        linktype: int = LINKTYPE_ETHERNET,
        mss: int = LOOPBACK_MSS,
    ) -> None:
        if linktype not in (LINKTYPE_ETHERNET, LINKTYPE_RAW):
            raise ConfigError(f"link type {linktype}: Ethernet (1) or raw IP (101) only")
        if not 1 <= mss <= 65495:
            raise ConfigError(f"MSS {mss} is not in 1-65495")
        self.conn = conn
        self.linktype = linktype
        self.mss = mss
        self.client = (_address(client_addr, "client address"),
                       _port(client_port_of(conn) if client_port is None else client_port,
                             "client port"))
        self.server = (_address(server_addr, "server address"), _port(server_port, "server port"))
        if len(self.client[0]) != len(self.server[0]):
            raise ConfigError(f"{client_addr} and {server_addr}: one is IPv4, the other IPv6")
        if self.client == self.server:
            raise ConfigError("the client and the server have the same address and port")
        host = f"[{server_addr}]" if len(self.server[0]) == 16 else server_addr
        self.host = f"{host}:{self.server[1]}"
        # Deterministic initial sequence numbers and IP ids, one pair per connection.
        self._seq = {"client": _mix32(conn * 2), "server": _mix32(conn * 2 + 1)}
        self._ip_id = {"client": _mix32(conn) & 0xFFFF, "server": _mix32(~conn) & 0xFFFF}
        self._last_us = -1
        self._frames = 0
        self.state: Literal["new", "open", "closed"] = "new"
        self.key = base64.b64encode(
            hashlib.sha1(b"wsp synthetic key %d" % conn).digest()[:16]).decode()

    # ------------------------------------------------------------------ time

    def _tick(self, ts: float) -> float:
        micros = max(round(ts * 1_000_000), self._last_us + 1)
        self._last_us = micros
        return micros / 1_000_000

    # --------------------------------------------------------------- packets

    def _segment(self, sender: Direction, flags: int, payload: bytes = b"",
                 options: bytes = b"") -> bytes:
        receiver: Direction = "server" if sender == "client" else "client"
        (src, sport), (dst, dport) = (
            (self.client, self.server) if sender == "client" else (self.server, self.client))
        ack = self._seq[receiver] if flags & _ACK else 0
        offset = (20 + len(options)) // 4
        header = struct.pack("!HHIIBBHHH", sport, dport, self._seq[sender], ack, offset << 4,
                             flags, _WINDOW, 0, 0) + options
        segment = header + payload
        if len(src) == 4:  # RFC 9293 3.1: the IPv4 pseudo-header
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
        else:  # RFC 8200 8.1: the IPv6 pseudo-header
            pseudo = src + dst + struct.pack("!IxxxB", len(segment), 6)
        csum = _checksum(pseudo + segment)
        segment = segment[:16] + struct.pack("!H", csum) + segment[18:]
        self._seq[sender] = (self._seq[sender] + len(payload)
                             + bool(flags & (_SYN | _FIN))) & 0xFFFFFFFF
        if len(src) == 4:
            ip_id = self._ip_id[sender]
            self._ip_id[sender] = (ip_id + 1) & 0xFFFF
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ip_id, 0x4000, _TTL,
                             6, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        else:
            ip = struct.pack("!IHBB16s16s", 6 << 28, len(segment), 6, _TTL, src, dst)
        packet = ip + segment
        if self.linktype == LINKTYPE_ETHERNET:
            return _LOOPBACK_MACS + _ETHERTYPE[len(src)] + packet
        return packet

    def _packet(self, ts: float, sender: Direction, flags: int, payload: bytes = b"",
                options: bytes = b"") -> SynthPacket:
        return SynthPacket(self._tick(ts), self._segment(sender, flags, payload, options))

    def send(self, ts: float, sender: Direction, data: bytes) -> list[SynthPacket]:
        """``data`` on the TCP stream from ``sender``: MSS-sized segments, each ACKed."""
        if self.state != "open":
            raise LocalProtocolError(f"connection {self.conn} is {self.state}: open() it first")
        receiver: Direction = "server" if sender == "client" else "client"
        out = []
        for start in range(0, len(data), self.mss):
            chunk = data[start:start + self.mss]
            last = start + self.mss >= len(data)
            out.append(self._packet(ts, sender, _ACK | (_PSH if last else 0), chunk))
            out.append(self._packet(ts, receiver, _ACK))
        return out

    def connect(self, ts: float) -> list[SynthPacket]:
        """The TCP three-way handshake (SYN with the MSS option, SYN-ACK, ACK).

        :meth:`open` calls it; call it alone to :meth:`send` the stream's own bytes
        (an upgrade request and answer as they really were, say).
        """
        if self.state != "new":
            raise LocalProtocolError(f"connection {self.conn} is already {self.state}")
        mss_option = struct.pack("!BBH", 2, 4, self.mss)
        out = [self._packet(ts, "client", _SYN, options=mss_option),
               self._packet(ts, "server", _SYN | _ACK, options=mss_option),
               self._packet(ts, "client", _ACK)]
        self.state = "open"
        return out

    # ------------------------------------------------------------ WebSocket

    def open(
        self,
        ts: float,
        *,
        path: str = "/",
        subprotocols: tuple[str, ...] = (),
        subprotocol: str | None = None,
        extensions: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> list[SynthPacket]:
        """The TCP handshake, the Upgrade request and the ``101`` answer, from ``ts`` on.

        The server selects ``subprotocol`` (default: the first of ``subprotocols``)
        and accepts ``extensions`` as offered.
        """
        out = self.connect(ts)
        request = build_request(self.host, path, self.key, subprotocols=subprotocols,
                                extensions=extensions, extra_headers=headers)
        chosen = subprotocol if subprotocol is not None else (
            subprotocols[0] if subprotocols else None)
        response = build_response(self.key, subprotocol=chosen, extensions=extensions)
        return out + self.send(ts, "client", request) + self.send(ts, "server", response)

    def frame(self, sender: Direction, opcode: int, payload: bytes, *, rsv1: bool = False,
              fin: bool = True) -> bytes:
        """One frame as ``sender`` writes it: masked with the next key when it is the client."""
        mask = None
        if sender == "client":
            mask = masking_key(self.conn, self._frames)
            self._frames += 1
        return encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=mask)

    def message(self, ts: float, sender: Direction, opcode: int, payload: bytes, *,
                rsv1: bool = False) -> list[SynthPacket]:
        """One message from ``sender`` at ``ts``, as a single frame."""
        return self.send(ts, sender, self.frame(sender, opcode, payload, rsv1=rsv1))

    def close(self, ts: float, sender: Direction, code: int | None = None,
              reason: str | bytes = b"") -> list[SynthPacket]:
        """A close frame from ``sender`` (no code: an empty close payload)."""
        return self.message(ts, sender, Opcode.CLOSE, encode_close(code, reason))

    def teardown(self, ts: float, first: Direction = "server") -> list[SynthPacket]:
        """The FIN/ACK exchange, ``first`` closing first (RFC 6455 7.1.1: the server)."""
        if self.state != "open":
            raise LocalProtocolError(f"connection {self.conn} is {self.state}, not open")
        other: Direction = "client" if first == "server" else "server"
        out = [self._packet(ts, first, _FIN | _ACK), self._packet(ts, other, _ACK),
               self._packet(ts, other, _FIN | _ACK), self._packet(ts, first, _ACK)]
        self.state = "closed"
        return out


def pcapng_bytes(packets: Iterable[SynthPacket], *, linktype: int = LINKTYPE_ETHERNET,
                 application: str = "wsp") -> Iterator[bytes]:
    """A pcapng file of ``packets``, block by block: the header, then one block a packet."""
    yield pcapng_header(linktype, application=application, name="lo")
    for ts, data in packets:
        yield enhanced_packet_block(ts, data)
