"""The v2 header: the one place where its bytes are written and read.

The layout is :data:`.schema.V2_HEADER` (``docs/protocol.md``): a head byte
``01 S T 0 fff`` (S: a session id follows, T: a timestamp follows, fff: the
flags), the type (one byte ``cc nnnnnn`` for code ``cc << 8 | nnnnnn`` when
cc < 3 and nnnnnn < 64, else 0xC0 and the code as u16le), then the sequence,
the session id and the timestamp as minimal LEB128 varints; a zero session id
or timestamp is left out. :func:`pack_v2` writes it and :func:`unpack_v2` reads
it back with every canonical-form check. ``codec/_fast.c`` writes and reads the
same layout in C; ``tests/codec/test_fastpath.py`` checks that both agree.
"""

from __future__ import annotations

__all__ = ["pack_v2", "type_bytes", "unpack_v2"]

import re
import struct

from wsproto_tools import native
from wsproto_tools.codec.schema import (
    TYPES,
    V2_HAS_SESSION,
    V2_HAS_TIMESTAMP,
    V2_MARKER,
    V2_MARKER_MASK,
    V2_RESERVED,
    v2_type_byte,
)
from wsproto_tools.codec.varint import read_varint, write_varint
from wsproto_tools.exceptions import DecodeError

_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_FLAG_MASK = 0x07
#: the one-byte varints
_ONE_BYTE = tuple(bytes((i,)) for i in range(128))


def type_bytes(code: int) -> bytes:
    """The v2 type field of type code ``code`` (0..0xFFFF): one byte, or 0xC0 + u16le."""
    one = v2_type_byte(code)
    return bytes((one,)) if one is not None else b"\xc0" + code.to_bytes(2, "little")


#: type code -> its one-byte type field, for the codes of the schema
_TYPE_BYTES: dict[int, int] = {
    code: one for code in TYPES if (one := v2_type_byte(code)) is not None
}
_MARKER = V2_MARKER
#: head, type byte and a one-byte sequence; the same with a two-byte sequence
#: (its two varint bytes as one u16le)
_PACK3 = struct.Struct("3B").pack
_PACK_SEQ2 = struct.Struct("<BBH").pack
_SESSION = V2_HAS_SESSION
#: session id -> its varint (a session's id is in most of the headers it writes)
_SESSION_VARINTS: dict[int, bytes] = {}


def _pack_v2(code: int, flags: int, sequence: int, session_id: int = 0,
             timestamp: int = 0) -> bytes:
    """The v2 header of a message; the caller has checked the ranges (type code
    0..0xFFFF, flags 0..7, sequence 0..2^32-1, session id and timestamp 0..2^64-1)."""
    tbyte = _TYPE_BYTES.get(code)
    if tbyte is not None and sequence < 0x4000 and not timestamp:
        # the common headers, in one go (the general form below gives the same bytes)
        if not session_id:
            if sequence < 0x80:
                return _PACK3(_MARKER | flags, tbyte, sequence)
            return _PACK_SEQ2(_MARKER | flags, tbyte,
                              (sequence & 0x7F) | 0x80 | (sequence & 0x3F80) << 1)
        sid = _SESSION_VARINTS.get(session_id)
        if sid is not None:
            if sequence < 0x80:
                return _PACK3(_MARKER | _SESSION | flags, tbyte, sequence) + sid
            return _PACK_SEQ2(_MARKER | _SESSION | flags, tbyte,
                              (sequence & 0x7F) | 0x80 | (sequence & 0x3F80) << 1) + sid
    head = V2_MARKER | flags
    if session_id:
        head |= V2_HAS_SESSION
    if timestamp:
        head |= V2_HAS_TIMESTAMP
    parts = [bytes((head,)) + type_bytes(code), write_varint(sequence)]
    if session_id:
        sid = _SESSION_VARINTS.get(session_id)
        if sid is None:
            if len(_SESSION_VARINTS) >= 1024:
                _SESSION_VARINTS.clear()
            sid = _SESSION_VARINTS[session_id] = write_varint(session_id)
        parts.append(sid)
    if timestamp:
        parts.append(write_varint(timestamp))
    return b"".join(parts)


#: :func:`_pack_v2`, in C (``codec/_fast.c``) when it was built (see :mod:`..native`)
pack_v2 = native.pick("codec._fast", "pack_v2", _pack_v2)


#: A varint's bytes: continuation bytes, then the last byte (at most 10 in all).
_VARINT = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]")
#: The session ids read lately: varint bytes -> value (reading 9 varint bytes one
#: by one costs more than a lookup).
_SESSION_IDS: dict[bytes, int] = {}


def _session_varint(data: bytes, pos: int) -> tuple[int, int]:
    """``read_varint(data, pos, 2^64-1, "session_id")``, memoized."""
    match = _VARINT.match(data, pos)
    if match is not None:
        value = _SESSION_IDS.get(match[0])
        if value is not None:
            return value, match.end()
    value, end = read_varint(data, pos, _U64, "session_id")
    if match is not None and end == match.end():
        if len(_SESSION_IDS) >= 1024:
            _SESSION_IDS.clear()
        _SESSION_IDS[match[0]] = value
    return value, end


#: the session id read last, as (its varint, its value): a connection's messages
#: carry one session id
_last_session: tuple[bytes, int] = (b"\x01", 1)


def unpack_v2(data: bytes) -> tuple[int, int, int, int, int, int]:
    """``(type code, flags, sequence, session id, timestamp, header size)`` of the v2
    message ``data``; DecodeError (with its offset) for a header that is cut short,
    has a reserved bit or type byte set, or is not in its one canonical form."""
    global _last_session
    size = len(data)
    if size > 3:
        # the common headers first (the general reading below gives the same)
        head = data[0]
        tbyte = data[1]
        sequence = data[2]
        if head & 0xD8 == 0x40 and tbyte < 0xC0:  # v2, no T, no reserved bit, a type byte
            if sequence < 0x80:
                pos = 3
            elif 0 < data[3] < 0x80:
                sequence = (sequence & 0x7F) | (data[3] << 7)
                pos = 4
            else:
                pos = 0
            if pos:
                code = ((tbyte >> 6) << 8) | (tbyte & 0x3F)
                if not head & 0x20:
                    return code, head & 0x07, sequence, 0, 0, pos
                if pos < size and 0 < data[pos] < 0x80:
                    return code, head & 0x07, sequence, data[pos], 0, pos + 1
                varint, value = _last_session
                if data.startswith(varint, pos):  # varints are prefix-free
                    return code, head & 0x07, sequence, value, 0, pos + len(varint)
    if not size:
        raise DecodeError("empty message", offset=0)
    head = data[0]
    if head & V2_MARKER_MASK != V2_MARKER:
        raise DecodeError(
            f"not a v2 message: first byte 0x{head:02X} is outside 0x40-0x7F", offset=0
        )
    if head & V2_RESERVED:
        raise DecodeError("reserved bit 3 of the v2 first byte is set", offset=0)
    if size < 2:
        raise DecodeError("truncated header: type missing", offset=1)
    tbyte = data[1]
    if tbyte < 0xC0:
        code = ((tbyte >> 6) << 8) | (tbyte & 0x3F)
        pos = 2
    elif tbyte == 0xC0:
        if size < 4:
            raise DecodeError("truncated header: escaped type code is cut short", offset=size)
        code = data[2] | (data[3] << 8)
        if v2_type_byte(code) is not None:
            raise DecodeError(
                f"type 0x{code:04X} has a one-byte form and must not be escaped", offset=1
            )
        pos = 4
    else:
        raise DecodeError(f"reserved type byte 0x{tbyte:02X}", offset=1)
    if pos < size and data[pos] < 0x80:
        sequence = data[pos]
        pos += 1
    else:
        sequence, pos = read_varint(data, pos, _U32, "sequence")
    session_id = timestamp = 0
    if head & V2_HAS_SESSION:
        start = pos
        if pos < size and 0 < data[pos] < 0x80:
            session_id = data[pos]
            pos += 1
        else:
            session_id, pos = _session_varint(data, pos)
            if not session_id:
                raise DecodeError("session_id 0 must be left out (S bit clear)", offset=start)
            _last_session = (data[start:pos], session_id)
    if head & V2_HAS_TIMESTAMP:
        start = pos
        timestamp, pos = read_varint(data, pos, _U64, "timestamp")
        if not timestamp:
            raise DecodeError("timestamp 0 must be left out (T bit clear)", offset=start)
    return code, head & _FLAG_MASK, sequence, session_id, timestamp, pos
