"""The wsp codec: bytes <-> typed wsp messages (sans-I/O).

No I/O, no clock, no randomness: timestamps and nonces are passed in. The wire
format is described once, in :mod:`wsproto_tools.codec.schema` (the v2 header is
written and read in :mod:`.header`); the specification is ``docs/protocol.md``.
:func:`decode` and :func:`encode` take the compiled paths (C, or code compiled
from the schema) by themselves; :func:`encode_batch` and :func:`message_encoder`
encode a topic's fan-out once, and :func:`constructor` builds frozen messages
and events without their dataclass ``__init__``.

    >>> from wsproto_tools.codec import BinaryData, Message, decode, encode
    >>> wire = encode(Message(BinaryData(b"hi"), sequence=1))
    >>> wire.hex()
    '4042016869'
    >>> decode(wire) == Message(BinaryData(b"hi"), sequence=1)
    True
"""

from __future__ import annotations

from wsproto_tools.codec.construct import constructor
from wsproto_tools.codec.crypto import Cipher, counter_nonces
from wsproto_tools.codec.delta import ChannelStates, apply_delta, make_delta
from wsproto_tools.codec.limits import DEFAULT_LIMITS, Limits
from wsproto_tools.codec.schema import (
    PAYLOAD_CLASSES,
    TYPES,
    Acknowledge,
    Authenticate,
    Batch,
    BinaryData,
    Category,
    Challenge,
    Close,
    ContinuityLost,
    Deliver,
    DeltaCopy,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    MessageType,
    Payload,
    Publish,
    Request,
    Response,
    Resume,
    Sealed,
    Subscribe,
    Subscribed,
    TextData,
    Unknown,
    Unsubscribe,
    WindowUpdate,
    category_of,
)
from wsproto_tools.codec.wire import (
    decode,
    detect_version,
    encode,
    encode_batch,
    message_encoder,
)

__all__ = [
    "DEFAULT_LIMITS",
    "PAYLOAD_CLASSES",
    "SUBPROTOCOLS",
    "TYPES",
    "Acknowledge",
    "Authenticate",
    "Batch",
    "BinaryData",
    "Category",
    "Challenge",
    "ChannelStates",
    "Cipher",
    "Close",
    "ContinuityLost",
    "Deliver",
    "DeltaCopy",
    "DeltaUpdate",
    "Error",
    "Flags",
    "Handshake",
    "HandshakeResponse",
    "Heartbeat",
    "Limits",
    "Message",
    "MessageType",
    "Payload",
    "Publish",
    "Request",
    "Response",
    "Resume",
    "Sealed",
    "Subscribe",
    "Subscribed",
    "TextData",
    "Unknown",
    "Unsubscribe",
    "WindowUpdate",
    "apply_delta",
    "category_of",
    "constructor",
    "counter_nonces",
    "decode",
    "detect_version",
    "encode",
    "encode_batch",
    "make_delta",
    "message_encoder",
    "payload_type",
    "subprotocol_version",
]

#: WebSocket subprotocol names, most preferred first (Sec-WebSocket-Protocol).
SUBPROTOCOLS: tuple[str, ...] = ("wsp.v2", "wsp.v1")


def subprotocol_version(name: str) -> int | None:
    """The wire version a negotiated subprotocol selects (``wsp.v2`` -> 2), or None."""
    return {"wsp.v2": 2, "wsp.v1": 1}.get(name)


def payload_type(name: str) -> type[Payload] | None:
    """The payload class for a type name (``textdata``, ``TextData``...), or None."""
    wanted = name.replace("_", "").replace("-", "").lower()
    for spec in TYPES.values():
        if spec.name.lower() == wanted:
            return spec.cls
    return None
