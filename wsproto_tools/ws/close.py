"""Close frame payloads (RFC 6455 sections 5.5.1 and 7.4)."""

from __future__ import annotations

__all__ = ["encode_close", "is_valid_close_code", "parse_close"]

import struct

_CODE = struct.Struct("!H")


def is_valid_close_code(code: int) -> bool:
    """Whether an endpoint may send ``code`` in a close frame (RFC 6455 section 7.4).

    1004-1006 and 1015 are reserved and never sent; 1012-1014 are registered with
    IANA; 3000-4999 belong to libraries, frameworks and applications.
    """
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int | None, bytes, list[str]]:
    """Split a close payload into (code, raw reason, violation codes).

    An empty payload has no code (1005 is reported by the receiver, never sent).
    """
    if not payload:
        return None, b"", []
    if len(payload) == 1:
        return None, b"", ["bad-close-payload"]
    (code,) = _CODE.unpack_from(payload)
    reason = payload[2:]
    violations: list[str] = []
    if not is_valid_close_code(code):
        violations.append("bad-close-code")
    try:
        reason.decode("utf-8")
    except UnicodeDecodeError:
        violations.append("invalid-utf8")
    return code, reason, violations


def encode_close(code: int | None = None, reason: bytes | str = b"") -> bytes:
    """A close payload for ``code`` and ``reason``, unchecked (fuzzers need bad ones)."""
    if code is None:
        return b""
    raw = reason.encode() if isinstance(reason, str) else reason
    return _CODE.pack(code) + raw
