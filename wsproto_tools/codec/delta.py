"""DeltaUpdate patches: build them, and apply them only to the right base.

A patch is a sequence of ops; :class:`DeltaCopy` ``(offset, length)`` copies that
slice of the base state and ``bytes`` inserts itself. The new state is the
concatenation. A DeltaUpdate names the base version it applies to and carries the
CRC-32 of the result, so applying it to any other base raises
:class:`~wsproto_tools.exceptions.DeltaBaseMissing` instead of producing a wrong state.
"""

from __future__ import annotations

__all__ = ["ChannelStates", "apply_delta", "make_delta"]

import zlib
from collections import OrderedDict

from wsproto_tools.codec.schema import DeltaCopy, DeltaUpdate
from wsproto_tools.exceptions import ConfigError, DeltaBaseMissing, LimitExceeded


def make_delta(
    channel: str, old: bytes, old_version: int, new: bytes, new_version: int
) -> DeltaUpdate:
    """A DeltaUpdate turning ``old`` into ``new`` (shared prefix and suffix are copied)."""
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    ops: list[DeltaCopy | bytes] = []
    if prefix:
        ops.append(DeltaCopy(0, prefix))
    middle = new[prefix:len(new) - suffix]
    if middle:
        ops.append(middle)
    if suffix:
        ops.append(DeltaCopy(len(old) - suffix, suffix))
    return DeltaUpdate(channel, old_version, new_version, tuple(ops), zlib.crc32(new))


def apply_delta(
    base: bytes | None, base_version: int | None, delta: DeltaUpdate, *, limit: int = 1 << 24
) -> bytes:
    """The state ``delta`` produces from ``base`` (which has ``base_version``).

    Raises DeltaBaseMissing when there is no base, it has another version, an op
    reaches outside it, or the result's CRC-32 differs from the delta's checksum.
    """
    where = f"channel {delta.channel!r}"
    if base is None or base_version is None:
        raise DeltaBaseMissing(
            f"{where}: no base state; the delta needs version {delta.base_version}"
        )
    if base_version != delta.base_version:
        raise DeltaBaseMissing(
            f"{where}: holding version {base_version}, the delta needs {delta.base_version}"
        )
    out = bytearray()
    for op in delta.ops:
        if isinstance(op, DeltaCopy):
            if op.offset + op.length > len(base):
                raise DeltaBaseMissing(
                    f"{where}: copy [{op.offset}, +{op.length}] reaches past the "
                    f"{len(base)}-byte base"
                )
            out += base[op.offset:op.offset + op.length]
        else:
            out += op
        if len(out) > limit:
            raise LimitExceeded(f"{where}: patched state exceeds {limit} bytes")
    result = bytes(out)
    if zlib.crc32(result) != delta.checksum:
        raise DeltaBaseMissing(f"{where}: checksum mismatch; the base differs from the sender's")
    return result


class ChannelStates:
    """The latest state of each channel, bounded to ``max_channels`` (LRU)."""

    def __init__(self, max_channels: int = 1024, max_state: int = 1 << 24) -> None:
        if max_channels < 1:
            raise ConfigError("max_channels must be at least 1")
        self.max_channels = max_channels
        self.max_state = max_state
        self._states: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def get(self, channel: str) -> tuple[int, bytes] | None:
        """(version, state) of a channel, or None."""
        return self._states.get(channel)

    def set(self, channel: str, version: int, state: bytes) -> None:
        """Record a full state (e.g. from a snapshot message)."""
        self._states[channel] = (version, state)
        self._states.move_to_end(channel)
        while len(self._states) > self.max_channels:
            self._states.popitem(last=False)

    def apply(self, delta: DeltaUpdate) -> bytes:
        """Apply a delta to the channel's state, record and return the new state."""
        held = self._states.get(delta.channel)
        version, base = held if held is not None else (None, None)
        state = apply_delta(base, version, delta, limit=self.max_state)
        self.set(delta.channel, delta.version, state)
        return state
