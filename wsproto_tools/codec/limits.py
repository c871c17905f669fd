"""Explicit decoding limits: every decode is bounded by one of these."""

from __future__ import annotations

__all__ = ["DEFAULT_LIMITS", "Limits"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied while decoding; exceeding one raises ``LimitExceeded``."""

    #: Whole message (header + payload) as received, in bytes.
    max_message: int = 1 << 20
    #: Payload after decompression, in bytes (also bounds batch contents).
    max_decompressed: int = 1 << 20
    #: msgpack string length (UTF-8 bytes) and text payload length.
    max_str_len: int = 1 << 16
    #: msgpack bin length.
    max_bin_len: int = 1 << 20
    #: msgpack array length.
    max_array_len: int = 1024
    #: msgpack map length (entries).
    max_map_len: int = 256
    #: Nesting depth of arrays/maps inside a msgpack payload (the top map is depth 1).
    max_depth: int = 8
    #: Messages in one Batch.
    max_batch_items: int = 1024


DEFAULT_LIMITS = Limits()
