"""Streaming pcap and pcapng reader: raw packet bytes, no dissection.

:func:`read_packets` yields :class:`Packet` tuples ``(number, ts, linktype,
data)`` from a classic pcap file (microsecond or nanosecond, either byte order)
or a pcapng file (any number of sections and interfaces, ``if_tsresol`` and
``if_tsoffset``), plain or gzip-compressed, from a path or a binary stream such
as stdin. Memory stays bounded by the largest single record: nothing is kept
between packets.

Damage is reported, not raised: a truncated last record or a corrupt block
header becomes a warning naming the packet number and ends the reading. Only an
input that is not a capture at all raises :class:`~wsproto_tools.exceptions.NotACapture`.
"""

from __future__ import annotations

__all__ = [
    "MAX_RECORD",
    "CaptureInfo",
    "Packet",
    "PacketReader",
    "RawPacket",
    "open_capture",
]

import gzip
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, NamedTuple, Protocol

from wsproto_tools import native
from wsproto_tools.exceptions import CaptureError, NotACapture

#: The largest packet record accepted (bigger ones mean a corrupt file).
MAX_RECORD = 16 * 1024 * 1024
#: Bytes read at a time from a classic pcap stream.
_BLOCK = 1 << 20

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_GZIP = b"\x1f\x8b"


class Packet(NamedTuple):
    """One captured packet: 1-based ``number``, ``ts`` in seconds, link type, bytes."""

    number: int
    ts: float
    linktype: int
    data: bytes


@dataclass
class CaptureInfo:
    """What the reader learned about the file while reading it."""

    format: str = ""
    compressed: bool = False
    linktypes: set[int] = field(default_factory=set)
    packets: int = 0
    bytes_read: int = 0
    #: packets the capturing tool said it dropped (pcapng interface statistics).
    dropped: int | None = None


#: What the reader yields: ``(number, ts, linktype, data)`` -- a :class:`Packet`'s
#: fields as a plain tuple (cheaper to build, one per packet).
RawPacket = tuple[int, float, int, bytes]
Warn = Callable[[int, str], None]


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Prefixed:
    """A read-only stream that first serves ``prefix`` bytes, then ``raw``."""

    def __init__(self, prefix: bytes, raw: _Readable) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n < 0:
                data = self._prefix + self._raw.read()
                self._prefix = b""
                return data
            head = self._prefix[:n]
            self._prefix = self._prefix[n:]
            if len(head) < n:
                head += self._raw.read(n - len(head))
            return head
        return self._raw.read(n)

    def seek(self, n: int, /) -> int:
        """Not seekable (``GzipFile`` seeks only to rewind, which the reader never does)."""
        raise io.UnsupportedOperation("seek")

    def read1(self, n: int) -> bytes:
        """At most ``n`` bytes, from one read of the underlying stream when it can."""
        if self._prefix:
            return self.read(min(n, len(self._prefix)))
        read1 = getattr(self._raw, "read1", None)
        return read1(n) if read1 is not None else self._raw.read(n)

    def readable(self) -> bool:
        return True


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    data = read(n)
    if len(data) == n or not data:
        return data
    chunks = [data]
    got = len(data)
    while got < n:
        more = read(n - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


class PacketReader:
    """Iterates the packets of one capture stream; see the module docstring.

    ``warn(number, message)`` receives each problem; ``info`` fills in as the
    reading goes on. Construction reads the file header and raises
    :class:`NotACapture` when there is none.
    """

    def __init__(self, stream: IO[bytes], warn: Warn | None = None) -> None:
        self.info = CaptureInfo()
        self._warn: Warn = warn or (lambda number, message: None)
        head = _read_exact(stream.read, 4)
        source = _Prefixed(head, stream)
        if head[:2] == _GZIP:
            self.info.compressed = True
            # GzipFile buffers by itself; a BufferedReader on top would lose the
            # last good bytes of a truncated file while trying to fill itself
            gz = gzip.GzipFile(fileobj=source, mode="rb")
            try:
                head = _read_exact(gz.read, 4)
            except (OSError, EOFError, zlib.error) as error:
                raise NotACapture(f"gzip data is corrupt: {error}") from None
            source = _Prefixed(head, gz)
        self._read = source.read
        self._read1 = source.read1
        source.read(4)  # the magic, already looked at
        if head in _PCAP_MAGICS:
            self.info.format = "pcap"
            self._iter = self._pcap(head)
        elif head == _PCAPNG_SHB:
            self.info.format = "pcapng"
            self._iter = self._pcapng()
        elif not head:
            raise NotACapture("the input is empty")
        else:
            raise NotACapture(
                f"not a pcap or pcapng capture (starts with {head.hex(' ')})"
            )

    def __iter__(self) -> Iterator[RawPacket]:
        return self._iter

    def _stopped(self, error: Exception) -> None:
        self._warn(self.info.packets + 1, f"stopped reading: {error}")

    def _pcap(self, magic: bytes) -> Iterator[RawPacket]:
        try:
            read = self._read
            order, unit = _PCAP_MAGICS[magic]
            rest = _read_exact(read, 20)
            if len(rest) < 20:
                raise NotACapture("pcap file header is truncated")
            _vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack(order + "HHiIII", rest)
            linktype = network & 0x0FFFFFFF
            self.info.linktypes.add(linktype)
            rec = struct.Struct(order + "IIII")
            unpack_from = rec.unpack_from
            limit = max(snaplen, 262144) if snaplen else MAX_RECORD
            limit = min(limit, MAX_RECORD)
            info = self.info
            number = 0
            nbytes = 24
            # Records are cut out of blocks of up to 1 MiB (one read call per block,
            # not two per packet); ``read1`` returns what a pipe has, so a live
            # stream (``tcpdump -w - | wsp decode -``) is not held back.
            read1 = self._read1

            def refill(block: bytes, pos: int, need: int) -> bytes:
                """``block[pos:]`` and at least ``need`` bytes in all, or less at the end."""
                chunks = [block[pos:]]
                have = len(chunks[0])
                while have < need:
                    got = read1(max(_BLOCK, need - have))
                    if not got:
                        break
                    chunks.append(got)
                    have += len(got)
                return b"".join(chunks)

            block = b""
            pos = 0
            split = _split
            big = order == ">"
            while True:
                # the whole records of the block, in C when it was built; the rest as below
                packets, end = split(block, pos, big, unit, linktype, limit, number)
                if packets:
                    number += len(packets)
                    nbytes += end - pos
                    pos = end
                    info.packets = number
                    info.bytes_read = nbytes
                    yield from packets
                if len(block) - pos < 16:
                    block = refill(block, pos, 16)
                    pos = 0
                    if len(block) < 16:
                        if block:
                            self._warn(number + 1, "capture is truncated inside a record header")
                        break
                sec, frac, incl, _orig = unpack_from(block, pos)
                if incl > limit:
                    self._warn(
                        number + 1,
                        f"corrupt record header (captured length {incl} > {limit}); "
                        "stopped reading",
                    )
                    break
                end = pos + 16 + incl
                if end > len(block):
                    block = refill(block, pos, 16 + incl)
                    pos = 0
                    end = 16 + incl
                    if end > len(block):
                        self._warn(
                            number + 1,
                            f"capture is truncated: record has {len(block) - 16} of {incl} bytes",
                        )
                        break
                data = block[pos + 16 : end]
                pos = end
                number += 1
                nbytes += 16 + incl
                info.packets = number
                info.bytes_read = nbytes
                yield (number, sec + frac * unit, linktype, data)
        except (EOFError, OSError, zlib.error) as error:
            self._stopped(error)

    def _pcapng(self) -> Iterator[RawPacket]:
        try:
            read = self._read
            info = self.info
            number = 0
            order = "<"
            interfaces: list[tuple[int, float, float]] = []  # (linktype, unit, offset)
            first = True
            nbytes = 0
            btype_n = 0
            epb = struct.Struct("<IIIII")
            while True:
                if first:
                    head = _PCAPNG_SHB + _read_exact(read, 8)
                    if len(head) < 12:
                        raise NotACapture("pcapng section header is truncated")
                else:
                    head = _read_exact(read, 8)
                    if not head:
                        break
                    if len(head) < 8:
                        self._warn(number + 1, "capture is truncated inside a block header")
                        break
                    if head[:4] == _PCAPNG_SHB:
                        head += _read_exact(read, 4)
                is_shb = head[:4] == _PCAPNG_SHB
                if is_shb:
                    bom = head[8:12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        order = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        order = ">"
                    elif first:
                        raise NotACapture("pcapng byte-order magic is wrong")
                    else:
                        self._warn(number + 1, "corrupt pcapng section header; stopped reading")
                        break
                    epb = struct.Struct(order + "IIIII")
                    interfaces = []
                    btype_n = 0x0A0D0D0A
                else:
                    btype_n = struct.unpack(order + "I", head[:4])[0]
                (total,) = struct.unpack(order + "I", head[4:8])
                if total < 12 or total % 4 or total > MAX_RECORD + 64 or (is_shb and total < 28):
                    if first:
                        raise NotACapture("pcapng section header has a bad length")
                    self._warn(
                        number + 1, f"corrupt pcapng block header (length {total}); stopped reading"
                    )
                    break
                first = False
                remaining = total - len(head)
                rest = _read_exact(read, remaining)
                if len(rest) < remaining:
                    self._warn(number + 1, "capture is truncated inside a block")
                    break
                nbytes += total
                info.bytes_read = nbytes
                if is_shb:
                    continue
                body = rest[:-4]
                if btype_n == 6:  # enhanced packet block
                    if len(body) < 20:
                        self._warn(number + 1, "enhanced packet block is too short")
                        continue
                    iface, high, low, caplen, _orig = epb.unpack_from(body)
                    if iface >= len(interfaces):
                        self._warn(number + 1, f"packet names unknown interface {iface}")
                        continue
                    linktype, unit, offset = interfaces[iface]
                    data = body[20 : 20 + caplen]
                    number += 1
                    info.packets = number
                    yield Packet(number, ((high << 32) | low) * unit + offset, linktype, data)
                elif btype_n == 3:  # simple packet block
                    if not interfaces or len(body) < 4:
                        continue
                    (orig,) = struct.unpack_from(order + "I", body)
                    number += 1
                    info.packets = number
                    yield Packet(number, 0.0, interfaces[0][0], body[4 : 4 + orig])
                elif btype_n == 2:  # obsolete packet block
                    if len(body) < 20:
                        continue
                    iface, _drops, high, low, caplen, _orig = struct.unpack_from(
                        order + "HHIIII", body
                    )
                    if iface >= len(interfaces):
                        continue
                    linktype, unit, offset = interfaces[iface]
                    number += 1
                    info.packets = number
                    yield Packet(
                        number,
                        ((high << 32) | low) * unit + offset,
                        linktype,
                        body[20 : 20 + caplen],
                    )
                elif btype_n == 1:  # interface description block
                    if len(body) < 8:
                        self._warn(number + 1, "interface description block is too short")
                        continue
                    (linktype,) = struct.unpack_from(order + "H", body)
                    unit, offset = _idb_options(body[8:], order)
                    interfaces.append((linktype, unit, offset))
                    info.linktypes.add(linktype)
                elif btype_n == 5:  # interface statistics block
                    dropped = _isb_dropped(body, order)
                    if dropped is not None:
                        info.dropped = (info.dropped or 0) + dropped
        except (EOFError, OSError, zlib.error) as error:
            self._stopped(error)


def _options(data: bytes, order: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    fmt = struct.Struct(order + "HH")
    while pos + 4 <= len(data):
        code, length = fmt.unpack_from(data, pos)
        if code == 0:
            return
        yield code, data[pos + 4 : pos + 4 + length]
        pos += 4 + ((length + 3) & ~3)


def _idb_options(data: bytes, order: str) -> tuple[float, float]:
    unit = 1e-6
    offset = 0.0
    for code, value in _options(data, order):
        if code == 9 and value:  # if_tsresol
            v = value[0]
            unit = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        elif code == 14 and len(value) == 8:  # if_tsoffset
            (offset_i,) = struct.unpack(order + "q", value)
            offset = float(offset_i)
    return unit, offset


def _isb_dropped(body: bytes, order: str) -> int | None:
    for code, value in _options(body[12:], order):
        if code == 5 and len(value) == 8:  # isb_ifdrop
            (n,) = struct.unpack(order + "Q", value)
            return int(n)
    return None


def open_capture(
    source: str | IO[bytes], warn: Warn | None = None
) -> tuple[PacketReader, Callable[[], None]]:
    """A reader for a path (``"-"`` is stdin) or an open binary stream, and a closer.

    Raises :class:`NotACapture` for input that is not a capture and
    :class:`CaptureError` when the file cannot be opened.
    """
    import sys

    if isinstance(source, str):
        if source == "-":
            stream: IO[bytes] = sys.stdin.buffer
            owned = False
        else:
            try:
                stream = open(source, "rb", buffering=1 << 20)  # noqa: SIM115
            except OSError as error:
                raise CaptureError(f"cannot open {source}: {error.strerror}") from None
            owned = True
    else:
        stream = source
        owned = False
    try:
        reader = PacketReader(stream, warn)
    except BaseException:
        if owned:
            stream.close()
        raise

    def close() -> None:
        if owned:
            stream.close()

    return reader, close


def _python_split(block: bytes, pos: int, big_endian: bool, unit: float, linktype: int,
                  limit: int, number: int) -> tuple[list[RawPacket], int]:
    """The Python form of the C record splitter: it splits nothing, the reader's
    loop reads every record itself."""
    return [], pos


#: ``split(block, pos, big_endian, unit, linktype, limit, number)``: the whole
#: records of ``block`` from ``pos`` on, and where they end; in C
#: (``capture/_pcap.c``) when it was built (see :mod:`..native`)
_split: Callable[[bytes, int, bool, float, int, int, int], tuple[list[RawPacket], int]] = (
    native.pick("capture._pcap", "split", _python_split)
)
