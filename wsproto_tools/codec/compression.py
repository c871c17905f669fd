"""The COMPRESSED flag's transform: raw DEFLATE with the wsp preset dictionary.

Compressed payload = raw DEFLATE stream (RFC 1951, no zlib/gzip wrapper) of the
payload, with :data:`~wsproto_tools.codec.dictionary.DICTIONARY` preset as the
sliding-window history (zlib ``zdict``). One message, one complete stream. The
choice over a zstd dictionary is measured in ``docs/protocol.md``.
"""

from __future__ import annotations

__all__ = ["compress", "decompress"]

import zlib

from wsproto_tools.codec.dictionary import DICTIONARY
from wsproto_tools.exceptions import CloseCode, DecodeError, LimitExceeded

#: Encoder settings. They do not bind decoders (any raw DEFLATE stream whose
#: distances stay within 32 KiB of history, dictionary included, is valid), but
#: they make our output deterministic: level 6, an 8 KiB window, memLevel 4.
LEVEL = 6
ENCODE_WBITS = -13
MEM_LEVEL = 4
_DECODE_WBITS = -15
_BASE = zlib.compressobj(
    LEVEL, zlib.DEFLATED, ENCODE_WBITS, MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
)


def compress(data: bytes) -> bytes:
    """One complete raw DEFLATE stream of ``data`` against the preset dictionary."""
    stream = _BASE.copy()
    return stream.compress(data) + stream.flush()


def decompress(data: bytes, offset: int, limit: int) -> bytes:
    """Inflate a compressed payload; at most ``limit`` bytes of output."""
    stream = zlib.decompressobj(_DECODE_WBITS, zdict=DICTIONARY)
    try:
        out = stream.decompress(data, limit + 1)
    except zlib.error as error:
        raise DecodeError(
            f"compressed payload is not valid DEFLATE ({error})",
            offset=offset, close_code=CloseCode.INVALID_DATA,
        ) from None
    if len(out) > limit:
        raise LimitExceeded(
            f"compressed payload inflates to more than {limit} bytes", offset=offset
        )
    if not stream.eof:
        raise DecodeError(
            "compressed payload is truncated (DEFLATE stream has no final block)",
            offset=offset + len(data), close_code=CloseCode.INVALID_DATA,
        )
    if stream.unused_data:
        raise DecodeError(
            f"{len(stream.unused_data)} bytes follow the end of the DEFLATE stream",
            offset=offset + len(data) - len(stream.unused_data),
            close_code=CloseCode.INVALID_DATA,
        )
    return out
