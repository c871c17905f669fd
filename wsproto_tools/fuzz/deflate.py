"""The fuzzer's own permessage-deflate (RFC 7692 section 7.2).

:class:`Compressor` deflates this side's messages at level 1 with zlib-ng
when it is installed (a dependency; about three times faster than zlib's
level 1), with the standard zlib otherwise: still real LZ77 + Huffman output
within the negotiated window (back references across messages when the
context is taken over), but cheap, so that in the compression cases the
peer's deflate dominates the CPU time and the fuzzer's own share stays small.
A negotiated window of 8 bits cannot be produced by zlib; stored blocks (no
back references at all) are used then, which every window accepts.

:class:`Inflater` is a :class:`~wsproto_tools.ws.deflate.DeflateContext`
whose inflate runs on zlib-ng (twice as fast; same limits and errors).
"""

from __future__ import annotations

__all__ = ["Compressor", "Inflater"]

import zlib
from typing import Any

from wsproto_tools.exceptions import CloseCode, FrameError
from wsproto_tools.ws import DeflateContext

_deflater: Any  # zlib_ng.zlib_ng or zlib: the same functions, two module types
try:
    from zlib_ng import zlib_ng as _deflater
except ImportError:  # pragma: no cover - zlib-ng is a dependency
    _deflater = zlib

_TAIL = b"\x00\x00\xff\xff"
_ERRORS: tuple[type[Exception], ...] = (zlib.error, getattr(_deflater, "error", zlib.error))


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


class Inflater(DeflateContext):
    """Inflates whole messages of one direction (RFC 7692 section 7.2.2).

    Always with a 15-bit window, which decodes any smaller one; a fresh
    context per message when the sender does not take its context over.
    ``max_size`` bounds the inflated size (1009 beyond it).
    """

    __slots__ = ("_inflater",)

    def __init__(
        self, no_context_takeover: bool, max_window_bits: int, max_size: int | None = None
    ) -> None:
        super().__init__(no_context_takeover, max_window_bits, max_size)
        self._inflater: Any = _deflater.decompressobj(-15)

    def decompress(self, payload: bytes) -> bytes:
        if self.no_context_takeover:
            self._inflater = _deflater.decompressobj(-15)
        limit = 0 if self.max_size is None else self.max_size + 1
        try:
            data: bytes = self._inflater.decompress(payload + _TAIL, limit)
        except _ERRORS as error:
            self._inflater = _deflater.decompressobj(-15)
            raise FrameError(
                f"permessage-deflate data is corrupt: {error}", close_code=CloseCode.INVALID_DATA
            ) from None
        if self.max_size is not None and (
            len(data) > self.max_size or self._inflater.unconsumed_tail
        ):
            self._inflater = _deflater.decompressobj(-15)
            raise FrameError(
                f"decompressed message exceeds {self.max_size} bytes",
                close_code=CloseCode.MESSAGE_TOO_BIG,
            )
        return data
