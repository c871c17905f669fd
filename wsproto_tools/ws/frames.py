"""RFC 6455 section 5.2 base framing, sans-I/O, lenient on purpose.

:class:`FrameParser` turns a byte stream into :class:`RawFrame` objects without
judging them: reserved bits, reserved opcodes, masking in the wrong direction
and non-minimal lengths are recorded on the frame, so the capture decoder can
flag them and the fuzzer can see exactly what a peer sent. Only the size limit
is enforced (a declared length over ``max_payload`` raises :class:`FrameError`
with close code 1009), so buffers stay bounded on hostile input.

:func:`encode_frame` builds any frame, including broken ones (wrong RSV bits,
reserved opcodes, non-minimal length encodings), for the fuzzer and for tests.
"""

from __future__ import annotations

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "FrameParser",
    "Opcode",
    "RawFrame",
    "RawTuple",
    "apply_mask",
    "encode_frame",
]

import struct
from dataclasses import dataclass
from enum import IntEnum

try:  # websockets' C implementation; utils.apply_mask is its slow pure-Python fallback
    from websockets.speedups import apply_mask as _ws_apply_mask
except ImportError:  # pragma: no cover - the wheel ships the extension
    from websockets.utils import apply_mask as _ws_apply_mask

from wsproto_tools.exceptions import CloseCode, FrameError

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class Opcode(IntEnum):
    """Frame opcodes defined by RFC 6455 section 5.2 (others are reserved)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        return self >= 0x8


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` (RFC 6455 section 5.3)."""
    return _ws_apply_mask(data, mask)


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One frame as it was on the wire; ``payload`` is already unmasked.

    ``opcode`` is an int, not an :class:`Opcode`, because reserved opcodes must
    survive parsing. ``wire_length`` is the frame's size on the wire and
    ``minimal_length`` tells whether the payload length used the shortest form.
    """

    opcode: int
    payload: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    mask: bytes | None = None
    wire_length: int = 0
    minimal_length: bool = True

    @property
    def masked(self) -> bool:
        return self.mask is not None

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8

    @property
    def known_opcode(self) -> bool:
        return self.opcode in _KNOWN

    @property
    def rsv(self) -> int:
        """The three reserved bits as a number 0-7 (RSV1 is 4)."""
        return self.rsv1 << 2 | self.rsv2 << 1 | self.rsv3


_KNOWN = frozenset(int(op) for op in Opcode)

#: A frame as :meth:`FrameParser.feed_raw` returns it:
#: ``(first byte, unmasked payload, mask or None, wire length, minimal length)``.
RawTuple = tuple[int, bytes, "bytes | None", int, bool]


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bytes | None = None,
    length_width: int | None = None,
    declared_length: int | None = None,
) -> bytes:
    """Encode one frame; masks ``payload`` with ``mask`` when given.

    ``length_width`` forces the length field form (7, 16 or 64 bits) so that
    non-minimal encodings can be produced; ``declared_length`` writes a length
    that differs from the payload's (for fuzzing truncation).
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode {opcode} does not fit in 4 bits")
    if mask is not None and len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    length = len(payload) if declared_length is None else declared_length
    first = (fin << 7) | (rsv1 << 6) | (rsv2 << 5) | (rsv3 << 4) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length_width is None:
        length_width = 7 if length < 126 else 16 if length < 65536 else 64
    if length_width == 7:
        if length > 125:
            raise ValueError("a 7-bit length holds at most 125")
        header = bytes((first, mask_bit | length))
    elif length_width == 16:
        if length > 0xFFFF:
            raise ValueError("a 16-bit length holds at most 65535")
        header = bytes((first, mask_bit | 126)) + _U16.pack(length)
    elif length_width == 64:
        header = bytes((first, mask_bit | 127)) + _U64.pack(length)
    else:
        raise ValueError("length_width is 7, 16 or 64")
    if mask is None:
        return header + payload
    return header + mask + apply_mask(payload, mask)


class FrameParser:
    """Incremental frame parser: ``feed(bytes)`` returns the frames completed.

    Bytes of an incomplete frame stay buffered (at most one frame's worth, and a
    frame's declared payload is capped by ``max_payload``). ``buffered`` tells
    how many bytes wait for the rest of a frame.
    """

    __slots__ = ("_buf", "_pos", "max_payload")

    def __init__(self, max_payload: int = 64 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_payload = max_payload

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def reset(self) -> bytes:
        """Drop and return the buffered bytes (to resynchronize after a gap)."""
        rest = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return rest

    def feed(self, data: bytes) -> list[RawFrame]:
        """Add ``data`` and return every frame it completes, in order."""
        return [
            RawFrame(b0 & 0x0F, payload, bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20),
                     bool(b0 & 0x10), mask, total, minimal)
            for b0, payload, mask, total, minimal in self.feed_raw(data)
        ]

    def feed_raw(self, data: bytes) -> list[RawTuple]:
        """Like :meth:`feed`, but each frame is a plain tuple (cheaper to build):
        ``(first byte, payload already unmasked, mask or None, wire length, minimal)``.

        The first byte holds FIN, RSV1-3 and the opcode as on the wire.
        """
        buf = self._buf
        pos = self._pos
        if pos == len(buf):
            # nothing buffered: parse ``data`` itself, keep only an incomplete tail
            if pos:
                buf.clear()
                self._pos = pos = 0
            src: bytes | bytearray = data
        else:
            buf += data
            src = buf
        start = pos
        frames: list[RawTuple] = []
        append = frames.append
        end = len(src)
        max_payload = self.max_payload
        while end - pos >= 2:
            b1 = src[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                head = 2
                minimal = True
            elif length == 126:
                if end - pos < 4:
                    break
                length = (src[pos + 2] << 8) | src[pos + 3]
                head = 4
                minimal = length >= 126
            else:
                if end - pos < 10:
                    break
                (length,) = _U64.unpack_from(src, pos + 2)
                head = 10
                minimal = length >= 65536
                if length >> 63:
                    self._keep(src, start)
                    raise FrameError(
                        "64-bit frame length has its most significant bit set",
                        offset=pos + 2,
                        close_code=CloseCode.PROTOCOL_ERROR,
                    )
            if length > max_payload:
                self._keep(src, start)
                raise FrameError(
                    f"frame payload of {length} bytes exceeds the limit of {max_payload}",
                    offset=pos,
                    close_code=CloseCode.MESSAGE_TOO_BIG,
                )
            if b1 & 0x80:
                total = head + 4 + length
                if end - pos < total:
                    break
                key = bytes(src[pos + head : pos + head + 4])
                mask: bytes | None = key
                payload = _ws_apply_mask(src[pos + head + 4 : pos + total], key)
            else:
                total = head + length
                if end - pos < total:
                    break
                mask = None
                payload = bytes(src[pos + head : pos + total])
            append((src[pos], payload, mask, total, minimal))
            pos += total
        self._keep(src, pos)
        return frames

    def _keep(self, src: bytes | bytearray, pos: int) -> None:
        """Keep the bytes of ``src`` from ``pos`` on as the buffered tail."""
        buf = self._buf
        if src is not buf:
            if pos < len(src):
                buf += memoryview(src)[pos:]
            self._pos = 0
            return
        if pos == len(buf):
            buf.clear()
            pos = 0
        elif pos > 65536:
            del buf[:pos]
            pos = 0
        self._pos = pos
