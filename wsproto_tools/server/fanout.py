"""Fan-out encoding: a topic message encoded once for every subscriber.

A Deliver has sequence 0, no session id and no timestamp (docs/protocol.md S.6),
so the same bytes serve every subscriber of a wire version that reads it in
clear; several messages of a topic become one Batch of Delivers, also encoded
once. Encrypted sessions get their own encoding through their session.
"""

from __future__ import annotations

__all__ = ["encode_delivery", "encode_delivery_batch"]

from collections.abc import Callable, Sequence

from wsproto_tools.codec import encode
from wsproto_tools.codec.fastpath import batch_v2, message_encoder
from wsproto_tools.codec.schema import Batch, Deliver, Message
from wsproto_tools.engine.history import Entry

#: Deliver's compiled v2 encoder (one that always defers to encode() if it had none)
_DELIVER_V2: Callable[..., bytes | None] = message_encoder(Deliver) or (lambda *values: None)


def encode_delivery(topic: str, epoch: int, offset: int, data: bytes, version: int) -> bytes:
    """A Deliver encoded once for every subscriber of that version (sequence 0, no session)."""
    if version == 2:
        wire = _DELIVER_V2(topic, epoch, offset, data)
        if wire is not None:
            return wire
    return encode(Message(Deliver(topic, epoch, offset, data)), version=version)


def encode_delivery_batch(topic: str, items: Sequence[tuple[int, Entry]], version: int) -> bytes:
    """Several (epoch, entry) of one topic as one Batch of Deliver, encoded once for
    every subscriber of that version that negotiated batching."""
    if version == 2:
        wires: list[bytes] = []
        for epoch, entry in items:
            wire = _DELIVER_V2(topic, epoch, entry.offset, entry.data)
            if wire is None:
                break
            wires.append(wire)
        else:
            return batch_v2(wires)
    messages = tuple(Message(Deliver(topic, epoch, e.offset, e.data)) for epoch, e in items)
    return encode(Message(Batch(messages)), version=version)
