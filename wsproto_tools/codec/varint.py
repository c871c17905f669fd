"""Unsigned LEB128 varints, minimal form only (the v2 header's integers)."""

from __future__ import annotations

__all__ = ["read_varint", "write_varint"]

from wsproto_tools.exceptions import DecodeError


def write_varint(value: int) -> bytes:
    """The minimal unsigned LEB128 encoding of ``value`` (>= 0)."""
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = []
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, offset: int, max_value: int, what: str) -> tuple[int, int]:
    """Read a minimal LEB128 varint at ``offset``; return (value, next offset).

    Raises DecodeError when the varint is truncated, longer than ``max_value``
    allows, or not minimal (a trailing 0x00 continuation byte).
    """
    start = offset
    end = len(data)
    if offset >= end:
        raise DecodeError(f"truncated header: {what} missing", offset=offset)
    byte = data[offset]
    if byte < 0x80:
        return byte, offset + 1
    value = byte & 0x7F
    shift = 7
    offset += 1
    max_shift = max_value.bit_length()
    while True:
        if offset >= end:
            raise DecodeError(f"truncated header: {what} varint is cut short", offset=offset)
        byte = data[offset]
        offset += 1
        if byte < 0x80:
            value |= byte << shift
            break
        value |= (byte & 0x7F) << shift
        shift += 7
        if shift >= max_shift:
            raise DecodeError(f"{what} varint too long", offset=start)
    if byte == 0:
        raise DecodeError(f"{what} varint is not minimal", offset=offset - 1)
    if value > max_value:
        raise DecodeError(f"{what} {value} exceeds the maximum {max_value}", offset=start)
    return value, offset
