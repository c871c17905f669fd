"""permessage-deflate (RFC 7692): negotiated parameters and per-direction contexts.

The contexts wrap the ``websockets`` library's sans-I/O
:class:`~websockets.extensions.permessage_deflate.PerMessageDeflate`, one per
direction of a connection, so context takeover and window sizes behave exactly
as a live ``websockets`` peer's would.
"""

from __future__ import annotations

__all__ = ["DeflateContext", "DeflateParams"]

import zlib
from dataclasses import dataclass

from websockets.exceptions import InvalidHeader
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame
from websockets.frames import Opcode as WsOpcode
from websockets.headers import parse_extension

from wsproto_tools.exceptions import CloseCode, FrameError, HandshakeError

_EXTENSION = "permessage-deflate"
#: The four bytes RFC 7692 section 7.2.2 has the receiver append to a message.
_EMPTY_BLOCK = b"\x00\x00\xff\xff"


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The parameters a server accepted for permessage-deflate (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    @classmethod
    def from_header(cls, value: str) -> DeflateParams | None:
        """Parameters from a response's ``Sec-WebSocket-Extensions`` value, or None.

        Raises :class:`HandshakeError` when the header is malformed.
        """
        try:
            extensions = parse_extension(value)
        except InvalidHeader as error:
            raise HandshakeError(f"bad Sec-WebSocket-Extensions header: {error}") from None
        for name, params in extensions:
            if name != _EXTENSION:
                continue
            found = dict(params)
            return cls(
                server_no_context_takeover="server_no_context_takeover" in found,
                client_no_context_takeover="client_no_context_takeover" in found,
                server_max_window_bits=_bits(found.get("server_max_window_bits")),
                client_max_window_bits=_bits(found.get("client_max_window_bits")),
            )
        return None

    def header_value(self) -> str:
        """This parameter set as a ``Sec-WebSocket-Extensions`` value."""
        parts = [_EXTENSION]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits != 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)

    def context(self, sender: str, *, max_size: int | None = None) -> DeflateContext:
        """The context for messages sent by ``sender`` (``"client"`` or ``"server"``)."""
        if sender == "client":
            return DeflateContext(
                self.client_no_context_takeover, self.client_max_window_bits, max_size
            )
        return DeflateContext(
            self.server_no_context_takeover, self.server_max_window_bits, max_size
        )


def _bits(value: str | None) -> int:
    if value is None:
        return 15
    if not value.isdigit() or not 8 <= int(value) <= 15:
        raise HandshakeError(f"max_window_bits must be 8..15, got {value!r}")
    return int(value)


class DeflateContext:
    """Compression state for the messages of one direction of one connection."""

    __slots__ = ("_ext", "max_size", "max_window_bits", "no_context_takeover")

    def __init__(
        self, no_context_takeover: bool, max_window_bits: int, max_size: int | None = None
    ) -> None:
        self.no_context_takeover = no_context_takeover
        self.max_window_bits = max_window_bits
        self.max_size = max_size
        # Inflating with the largest window decodes any smaller window (and a
        # raw-deflate window of 8 bits is not accepted by zlib's inflater).
        self._ext = PerMessageDeflate(
            remote_no_context_takeover=no_context_takeover,
            local_no_context_takeover=no_context_takeover,
            remote_max_window_bits=15,
            local_max_window_bits=max(max_window_bits, 9),
        )

    def decompress(self, payload: bytes) -> bytes:
        """Inflate one whole message's payload (all fragments joined).

        Raises :class:`FrameError` (close code 1007, or 1009 over ``max_size``).
        This is what ``PerMessageDeflate.decode`` does for a whole compressed
        message (the same zlib calls on the same decompressor), without building
        two ``Frame`` objects per message.
        """
        ext = self._ext
        if ext.remote_no_context_takeover:
            decoder = ext.decoder = zlib.decompressobj(wbits=-ext.remote_max_window_bits)
        else:
            decoder = ext.decoder
        max_length = self.max_size or 0
        try:
            if len(payload) < 2044:
                data = decoder.decompress(payload + _EMPTY_BLOCK, max_length)
                if decoder.unconsumed_tail:
                    raise self._too_big()
            else:
                data = decoder.decompress(payload, max_length)
                if decoder.unconsumed_tail or decoder.decompress(_EMPTY_BLOCK, 1):
                    raise self._too_big()
        except zlib.error:
            ext.decode_cont_data = False
            raise FrameError(
                "permessage-deflate data is corrupt: decompression failed",
                close_code=CloseCode.INVALID_DATA,
            ) from None
        if ext.remote_no_context_takeover:
            del ext.decoder
        return data

    def _too_big(self) -> FrameError:
        return FrameError(
            f"decompressed message exceeds {self.max_size} bytes",
            close_code=CloseCode.MESSAGE_TOO_BIG,
        )

    def compress(self, payload: bytes) -> bytes:
        """Deflate one whole message's payload as a sender with these parameters would."""
        frame = Frame(WsOpcode.BINARY, payload, fin=True)
        return bytes(self._ext.encode(frame).data)
