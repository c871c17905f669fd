"""The fuzzer's own permessage-deflate compressor (RFC 7692 section 7.2.1).

Decompressing the peer's messages uses the shared contexts of
:mod:`wsproto_tools.ws.deflate`. Compressing is done here at level 1 with
zlib-ng when it is installed (a dependency; about three times faster than
zlib's level 1) and with the standard zlib otherwise: still real LZ77 +
Huffman output within the negotiated window (back references across messages
when the context is taken over), but cheap, so that in the compression cases
the peer's deflate dominates the CPU time and the fuzzer's own share stays
small. A negotiated window of 8 bits cannot be produced by zlib; stored
blocks (no back references at all) are used then, which every window accepts.
"""

from __future__ import annotations

__all__ = ["Compressor"]

import zlib
from typing import Any

try:
    from zlib_ng import zlib_ng as _deflater
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    _deflater = zlib  # type: ignore[misc]

_TAIL = b"\x00\x00\xff\xff"


class Compressor:
    """Compresses whole messages for one sending direction."""

    __slots__ = ("_level", "_obj", "_wbits", "no_context_takeover")

    def __init__(self, no_context_takeover: bool, max_window_bits: int, level: int = 1) -> None:
        self.no_context_takeover = no_context_takeover
        self._level = level if max_window_bits >= 9 else 0
        self._wbits = -max(max_window_bits, 9)
        self._obj = self._new()

    def _new(self) -> Any:
        return _deflater.compressobj(self._level, zlib.DEFLATED, self._wbits, 8)

    def compress(self, payload: bytes) -> bytes:
        """The message payload as sent with RSV1 set (the 00 00 FF FF tail removed)."""
        if self.no_context_takeover:
            self._obj = self._new()
        data = self._obj.compress(payload) + self._obj.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(_TAIL):
            data = data[:-4]
        return data or b"\x00"
