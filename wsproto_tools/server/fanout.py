"""Fan-out encoding: a topic message encoded once for every subscriber.

A Deliver has sequence 0, no session id and no timestamp (docs/protocol.md S.6),
so the same bytes serve every subscriber of a wire version that reads it in
clear; several messages of a topic become one Batch of Delivers, also encoded
once. Encrypted sessions get their own encoding through their session.
"""

from __future__ import annotations

__all__ = ["encode_delivery", "encode_delivery_batch"]

from collections.abc import Sequence

from wsproto_tools.codec import encode_batch, message_encoder
from wsproto_tools.codec.schema import Deliver
from wsproto_tools.engine.history import Entry

#: Deliver's encoders per wire version (compiled for v2)
_DELIVER = {2: message_encoder(Deliver, 2), 1: message_encoder(Deliver, 1)}


def encode_delivery(topic: str, epoch: int, offset: int, data: bytes, version: int) -> bytes:
    """A Deliver encoded once for every subscriber of that version (sequence 0, no session)."""
    return _DELIVER[version](topic, epoch, offset, data)


def encode_delivery_batch(topic: str, items: Sequence[tuple[int, Entry]], version: int) -> bytes:
    """Several (epoch, entry) of one topic as one Batch of Deliver, encoded once for
    every subscriber of that version that negotiated batching."""
    deliver = _DELIVER[version]
    return encode_batch(
        [deliver(topic, epoch, entry.offset, entry.data) for epoch, entry in items], 0, version
    )
