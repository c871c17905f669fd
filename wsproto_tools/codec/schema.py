"""The one declarative description of the wsp wire format.

Everything the codec encodes and decodes, and every table in ``docs/protocol.md``,
comes from this module (``python -m wsproto_tools.codec.doctables`` prints the
tables; ``tests/codec/test_docs.py`` fails when the document drifts from it):

* :data:`V1_HEADER` and :data:`V2_HEADER` -- the two header layouts;
* :class:`Flags` and :data:`FLAG_DOCS` -- the flag bits shared by both versions;
* :class:`MessageType` and the payload dataclasses below, one per message type.
  A payload field is declared with :func:`spec`, which records its wire kind,
  whether it may be absent, and its documentation.

To extend a msgpack payload, add a field with ``spec(...)`` and a default at the
end of its dataclass (old peers ignore keys they do not know; new peers treat an
absent optional key as ``None``). To add a message type, add its code to
:class:`MessageType`, write its dataclass and append it to :data:`PAYLOAD_CLASSES`.
"""

from __future__ import annotations

__all__ = [
    "FLAG_DOCS",
    "PAYLOAD_CLASSES",
    "TYPES",
    "V1_HEADER",
    "V2_HEADER",
    "Acknowledge",
    "Authenticate",
    "Batch",
    "BinaryData",
    "Category",
    "Challenge",
    "Close",
    "ContinuityLost",
    "Deliver",
    "DeltaCopy",
    "DeltaUpdate",
    "Error",
    "FieldSpec",
    "Flags",
    "Handshake",
    "HandshakeResponse",
    "HeaderField",
    "Heartbeat",
    "Kind",
    "Message",
    "MessageType",
    "Payload",
    "PayloadKind",
    "Publish",
    "Request",
    "Response",
    "Resume",
    "Sealed",
    "Subscribe",
    "Subscribed",
    "TextData",
    "TypeSpec",
    "Unknown",
    "Unsubscribe",
    "WindowUpdate",
    "category_of",
    "dataclass_fields",
    "payload_fields",
    "spec",
    "v2_type_byte",
]

import dataclasses
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag
from typing import Any, ClassVar, cast

# --------------------------------------------------------------------------- flags


class Flags(IntFlag):
    """Flag bits. The same values are the v1 ``flags`` byte and the low bits of
    the v2 first byte."""

    NONE = 0
    COMPRESSED = 0x01
    ENCRYPTED = 0x02
    ACK_REQUESTED = 0x04


#: name -> documentation, in bit order (docs table "Flags").
FLAG_DOCS: dict[Flags, str] = {
    Flags.COMPRESSED: (
        "The payload is a raw DEFLATE stream (RFC 1951) compressed with the wsp "
        "preset dictionary (see Compression). Applied before encryption."
    ),
    Flags.ENCRYPTED: (
        "The payload is `nonce(12) || ChaCha20-Poly1305 ciphertext || tag(16)` "
        "under the session key; the associated data is the header bytes."
    ),
    Flags.ACK_REQUESTED: (
        "The sender wants an Acknowledge covering this message's sequence number."
    ),
}

# ------------------------------------------------------------------------ headers


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One field of a header layout."""

    name: str
    wire: str  # "u8", "u16le", "u32le", "u64le", "varint", "type"
    size: str  # bytes, as text ("2", "1-5", "0 or 1-10")
    doc: str
    attribute: str | None = None  # Message attribute it maps to, if any


#: v1: 30 bytes, little-endian, packed (struct format ``<HBBHQIQI``).
V1_HEADER: tuple[HeaderField, ...] = (
    HeaderField("magic", "u16le", "2", "Always 0xC0D1 (bytes `D1 C0`)."),
    HeaderField("version", "u8", "1", "Always 1."),
    HeaderField("flags", "u8", "1", "Flag bits (table Flags); other bits must be 0.", "flags"),
    HeaderField("msg_type", "u16le", "2", "Message type code.", "type_code"),
    HeaderField("session_id", "u64le", "8", "Session id, 0 before the handshake.", "session_id"),
    HeaderField("sequence", "u32le", "4", "Per-session sequence number.", "sequence"),
    HeaderField("timestamp", "u64le", "8", "Microseconds since the Unix epoch, 0 if unset.",
                "timestamp"),
    HeaderField("payload_len", "u32le", "4", "Number of payload bytes that follow; must "
                "equal the rest of the WebSocket message."),
)
V1_STRUCT = "<HBBHQIQI"
V1_MAGIC = 0xC0D1
V1_HEADER_SIZE = 30

#: v2 first byte: bits 7-6 are ``01`` (so it is 0x40-0x7F and never v1's 0xD1).
V2_MARKER = 0x40
V2_MARKER_MASK = 0xC0
V2_RESERVED = 0x08
V2_HAS_TIMESTAMP = 0x10
V2_HAS_SESSION = 0x20

V2_HEADER: tuple[HeaderField, ...] = (
    HeaderField(
        "head", "u8", "1",
        "Bits 7-6 `01` (version 2); bit 5 S: session_id present; bit 4 T: timestamp "
        "present; bit 3 reserved, must be 0; bits 2-0: flags ACK_REQUESTED, ENCRYPTED, "
        "COMPRESSED (table Flags).",
        "flags",
    ),
    HeaderField(
        "type", "type", "1 or 3",
        "Message type. One byte `cc nnnnnn` stands for code `cc << 8 | nnnnnn` when "
        "cc < 3 and nnnnnn < 64; otherwise the byte 0xC0 followed by the code as u16le. "
        "Bytes 0xC1-0xFF are reserved; 0xC0 must not introduce a code that has a "
        "one-byte form.",
        "type_code",
    ),
    HeaderField("sequence", "varint", "1-5",
                "Sequence number, unsigned LEB128, at most 2^32-1.", "sequence"),
    HeaderField("session_id", "varint", "0 or 1-10",
                "Only when S is set: session id, LEB128, non-zero, at most 2^64-1.",
                "session_id"),
    HeaderField("timestamp", "varint", "0 or 1-10",
                "Only when T is set: µs since the Unix epoch, LEB128, non-zero, "
                "at most 2^64-1.", "timestamp"),
)

# ---------------------------------------------------------------- message types


class Category(IntEnum):
    """The high byte of a message type code."""

    CONTROL = 0x00
    DATA = 0x01
    SYSTEM = 0x02


class MessageType(IntEnum):
    """Every message type this implementation knows (others decode as Unknown)."""

    HANDSHAKE = 0x0001
    HANDSHAKE_RESPONSE = 0x0002
    HEARTBEAT = 0x0003
    CLOSE = 0x0004
    ERROR = 0x0005
    CHALLENGE = 0x0006
    AUTHENTICATE = 0x0007
    TEXT_DATA = 0x0101
    BINARY_DATA = 0x0102
    DELTA_UPDATE = 0x0103
    PUBLISH = 0x0104
    DELIVER = 0x0105
    REQUEST = 0x0106
    RESPONSE = 0x0107
    SUBSCRIBE = 0x0201
    UNSUBSCRIBE = 0x0202
    ACKNOWLEDGE = 0x0203
    RESUME = 0x0204
    CONTINUITY_LOST = 0x0205
    WINDOW_UPDATE = 0x0206
    BATCH = 0x0207
    SUBSCRIBED = 0x0208


def category_of(type_code: int) -> Category | None:
    """The category of a type code, or None outside the three ranges."""
    high = type_code >> 8
    return Category(high) if high <= 2 else None


def v2_type_byte(type_code: int) -> int | None:
    """The one-byte v2 form of a type code, or None when it needs the 0xC0 escape."""
    high, low = type_code >> 8, type_code & 0xFF
    if high <= 2 and low < 64:
        return (high << 6) | low
    return None


class Kind(Enum):
    """Wire kinds of msgpack payload fields."""

    UINT = "uint"  # msgpack int, 0 .. 2^64-1
    INT = "int"  # msgpack int, -2^63 .. 2^64-1
    BOOL = "bool"
    STR = "str"  # msgpack str (UTF-8)
    BYTES = "bytes"  # msgpack bin
    STR_LIST = "array of str"
    STR_UINT_MAP = "map str -> uint"  # held as a tuple of (key, value) pairs
    VALUE = "any msgpack value"  # nil, bool, int, float, str, bin, array, map
    DELTA_OPS = "array of delta ops"  # see DeltaUpdate


class PayloadKind(Enum):
    """How a message type's payload is laid out."""

    MSGPACK = "msgpack map"
    TEXT = "UTF-8 text"
    BINARY = "raw bytes"
    BATCH = "batch items"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Wire description of one payload field."""

    kind: Kind
    doc: str
    optional: bool = False


def spec(kind: Kind, doc: str, *, optional: bool = False) -> dict[str, FieldSpec]:
    """Field metadata: ``x: int = field(metadata=spec(Kind.UINT, "..."))``."""
    return {"wsp": FieldSpec(kind, doc, optional)}


class Payload:
    """Base of payload dataclasses. ``TYPE`` is the message type it travels as."""

    __slots__ = ()
    TYPE: ClassVar[int]
    KIND: ClassVar[PayloadKind] = PayloadKind.MSGPACK
    DOC: ClassVar[str] = ""

    @property
    def type_code(self) -> int:
        return self.TYPE


def _f(kind: Kind, doc: str) -> Any:
    return field(metadata=spec(kind, doc))


def _opt(kind: Kind, doc: str, default: Any = None) -> Any:
    return field(default=default, metadata=spec(kind, doc, optional=True))


# ------------------------------------------------------------------ control 0x00xx


@dataclass(frozen=True, slots=True)
class Handshake(Payload):
    TYPE = MessageType.HANDSHAKE
    DOC = "Client -> server, first message. Offers capabilities and credentials."
    capabilities: tuple[str, ...] = _opt(
        Kind.STR_LIST, "Capabilities offered: `compress`, `encrypt`, `batch`, `delta`, "
        "`pubsub`, and `ack` (accepted, changes nothing: acks are always on).", ())
    client_id: str | None = _opt(Kind.STR, "Free-form client name.")
    auth: str | None = _opt(Kind.STR, "Authentication method: `hmac` (challenge-response) "
                            "or `jwt`.")
    token: str | None = _opt(Kind.STR, "The JWT when auth is `jwt`.")
    client_nonce: bytes | None = _opt(Kind.BYTES, "Client nonce for key derivation.")
    resume_token: bytes | None = _opt(
        Kind.BYTES, "Resume this earlier session: the token exactly as received (bin; opaque)."
    )
    last_received: int | None = _opt(Kind.UINT, "With resume_token: highest sequence "
                                     "received in order.")


@dataclass(frozen=True, slots=True)
class HandshakeResponse(Payload):
    TYPE = MessageType.HANDSHAKE_RESPONSE
    DOC = "Server -> client. Accepts the session and fixes the capabilities."
    session_id: int = _f(Kind.UINT, "The session id (later v1 headers carry it; v2 "
                         "headers leave it out).")
    capabilities: tuple[str, ...] = _opt(Kind.STR_LIST, "Capabilities granted.", ())
    resume_token: bytes | None = _opt(
        Kind.BYTES, "Token for resuming this session (bin, opaque to the client; reissued on "
        "every HandshakeResponse)."
    )
    server_nonce: bytes | None = _opt(Kind.BYTES, "Server nonce for key derivation.")
    heartbeat_ms: int | None = _opt(Kind.UINT, "Heartbeat interval in milliseconds.")
    window: int | None = _opt(Kind.UINT, "Initial in-flight window (messages).")
    resumed: bool | None = _opt(Kind.BOOL, "True when an earlier session was resumed.")
    last_received: int | None = _opt(Kind.UINT, "On resume: highest sequence the server "
                                     "received in order.")
    server_proof: bytes | None = _opt(Kind.BYTES, "With hmac auth: HMAC-SHA256 proving the "
                                      "server holds the secret (docs: Session protocol).")


@dataclass(frozen=True, slots=True)
class Heartbeat(Payload):
    TYPE = MessageType.HEARTBEAT
    DOC = "Liveness probe; a reply echoes `id` with `reply` true."
    id: int = _opt(Kind.UINT, "Probe number.", 0)
    reply: bool = _opt(Kind.BOOL, "True in the answer to a probe.", False)


@dataclass(frozen=True, slots=True)
class Close(Payload):
    TYPE = MessageType.CLOSE
    DOC = "Orderly end of the session (the WebSocket close follows)."
    code: int = _f(Kind.UINT, "Close code (table Close codes).")
    reason: str = _opt(Kind.STR, "Human-readable reason.", "")


@dataclass(frozen=True, slots=True)
class Error(Payload):
    TYPE = MessageType.ERROR
    DOC = "A problem with an earlier message that does not end the session."
    code: int = _f(Kind.UINT, "Close code naming the problem (table Close codes).")
    message: str = _opt(Kind.STR, "Human-readable description.", "")
    ref_sequence: int | None = _opt(Kind.UINT, "Sequence number of the offending message.")
    details: Any = field(default=None, metadata=spec(Kind.VALUE, "Extra machine-readable data.",
                                                     optional=True))


@dataclass(frozen=True, slots=True)
class Challenge(Payload):
    TYPE = MessageType.CHALLENGE
    DOC = "Server -> client: prove knowledge of the shared secret."
    nonce: bytes = _f(Kind.BYTES, "Server nonce to be MACed.")
    methods: tuple[str, ...] = _opt(Kind.STR_LIST, "Accepted methods.", ())


@dataclass(frozen=True, slots=True)
class Authenticate(Payload):
    TYPE = MessageType.AUTHENTICATE
    DOC = "Client -> server: answer to a Challenge."
    method: str = _f(Kind.STR, "Method used (`hmac`, `jwt`).")
    proof: bytes = _f(Kind.BYTES, "HMAC over the challenge, or the JWT as UTF-8.")


# --------------------------------------------------------------------- data 0x01xx


@dataclass(frozen=True, slots=True)
class TextData(Payload):
    TYPE = MessageType.TEXT_DATA
    KIND = PayloadKind.TEXT
    DOC = "Application text; the payload is the UTF-8 text itself (validated)."
    text: str = _f(Kind.STR, "The text.")


@dataclass(frozen=True, slots=True)
class BinaryData(Payload):
    TYPE = MessageType.BINARY_DATA
    KIND = PayloadKind.BINARY
    DOC = "Application bytes; the payload is the bytes themselves."
    data: bytes = _f(Kind.BYTES, "The bytes.")


@dataclass(frozen=True, slots=True)
class DeltaCopy:
    """Delta op: copy ``length`` bytes of the base state starting at ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class DeltaUpdate(Payload):
    TYPE = MessageType.DELTA_UPDATE
    DOC = (
        "A new state of a channel as a patch of an earlier state. `ops` is an array "
        "whose items are either `[offset, length]` (copy that slice of the base) or a "
        "bin (insert these bytes); the new state is their concatenation."
    )
    channel: str = _f(Kind.STR, "Channel whose state this updates.")
    base_version: int = _f(Kind.UINT, "Version of the state the patch applies to.")
    version: int = _f(Kind.UINT, "Version of the resulting state.")
    ops: tuple[DeltaCopy | bytes, ...] = _f(Kind.DELTA_OPS, "The patch.")
    checksum: int = _f(Kind.UINT, "CRC-32 (ISO-HDLC, as zlib.crc32) of the resulting state.")


@dataclass(frozen=True, slots=True)
class Publish(Payload):
    TYPE = MessageType.PUBLISH
    DOC = "Client -> server: append `data` to a topic."
    topic: str = _f(Kind.STR, "Topic name.")
    data: bytes = _f(Kind.BYTES, "Message body.")
    id: int | None = _opt(Kind.UINT, "Publisher's id for the publish: a retry with the same id is "
                              "applied once (not echoed; the sequence is acknowledged).")


@dataclass(frozen=True, slots=True)
class Deliver(Payload):
    TYPE = MessageType.DELIVER
    DOC = (
        "Server -> subscriber: one topic message. Ordered by (epoch, offset), so the "
        "same bytes serve every subscriber; its header sequence is 0."
    )
    topic: str = _f(Kind.STR, "Topic name.")
    epoch: int = _f(Kind.UINT, "Topic epoch; offsets restart when it changes.")
    offset: int = _f(Kind.UINT, "Offset of this message in the topic.")
    data: bytes = _f(Kind.BYTES, "Message body.")


@dataclass(frozen=True, slots=True)
class Request(Payload):
    TYPE = MessageType.REQUEST
    DOC = "A request expecting one Response with the same id (used by echo)."
    id: int = _f(Kind.UINT, "Request id.")
    method: str = _f(Kind.STR, "Operation, e.g. `echo`.")
    data: bytes = _opt(Kind.BYTES, "Argument.", b"")


@dataclass(frozen=True, slots=True)
class Response(Payload):
    TYPE = MessageType.RESPONSE
    DOC = "Answer to a Request."
    id: int = _f(Kind.UINT, "The request's id.")
    data: bytes = _opt(Kind.BYTES, "Result.", b"")
    status: int = _opt(Kind.UINT, "0 ok, otherwise a close code naming the failure.", 0)


# ------------------------------------------------------------------- system 0x02xx


@dataclass(frozen=True, slots=True)
class Subscribe(Payload):
    TYPE = MessageType.SUBSCRIBE
    DOC = "Start receiving a topic, optionally replaying from an offset."
    topic: str = _f(Kind.STR, "Topic name.")
    from_offset: int | None = _opt(Kind.UINT, "Replay history from this offset.")
    epoch: int | None = _opt(Kind.UINT, "Epoch from_offset belongs to.")


@dataclass(frozen=True, slots=True)
class Unsubscribe(Payload):
    TYPE = MessageType.UNSUBSCRIBE
    DOC = "Stop receiving a topic."
    topic: str = _f(Kind.STR, "Topic name.")


@dataclass(frozen=True, slots=True)
class Acknowledge(Payload):
    TYPE = MessageType.ACKNOWLEDGE
    DOC = "Cumulative acknowledgment of sequence numbers. Deliver is not acknowledged."
    sequence: int = _f(Kind.UINT, "Every message up to and including this one arrived.")
    topic: str | None = _opt(Kind.STR, "Reserved: left out by senders, ignored by receivers.")
    offset: int | None = _opt(Kind.UINT, "Reserved: left out by senders, ignored by receivers.")
    publish_id: int | None = _opt(Kind.UINT, "Reserved: left out by senders, ignored by receivers.")


@dataclass(frozen=True, slots=True)
class Resume(Payload):
    TYPE = MessageType.RESUME
    DOC = ("Retired: resuming is part of the Handshake (S.2). Kept so that old captures "
           "decode; a receiver closes it with 1002.")
    session_id: int = _f(Kind.UINT, "Session being resumed.")
    resume_token: bytes = _f(Kind.BYTES, "Token from the HandshakeResponse.")
    last_received: int = _f(Kind.UINT, "Highest sequence received in order.")
    offsets: tuple[tuple[str, int], ...] = _opt(Kind.STR_UINT_MAP,
                                                "Topic -> next offset wanted.", ())


@dataclass(frozen=True, slots=True)
class ContinuityLost(Payload):
    TYPE = MessageType.CONTINUITY_LOST
    DOC = "The history no longer covers the requested gap: messages were lost."
    topic: str = _f(Kind.STR, "Topic name.")
    epoch: int = _f(Kind.UINT, "Current epoch.")
    requested_offset: int = _f(Kind.UINT, "Offset the subscriber asked for.")
    first_available: int = _f(Kind.UINT, "Oldest offset still held.")


@dataclass(frozen=True, slots=True)
class WindowUpdate(Payload):
    TYPE = MessageType.WINDOW_UPDATE
    DOC = "The receiver's in-flight window, in messages."
    window: int = _f(Kind.UINT, "Messages the sender may have unacknowledged.")


@dataclass(frozen=True, slots=True)
class Batch(Payload):
    TYPE = MessageType.BATCH
    KIND = PayloadKind.BATCH
    DOC = (
        "Several messages in one WebSocket message: each item is a varint length then a "
        "complete message of the same version. Items may not be batches."
    )
    messages: tuple[Message, ...] = _f(Kind.VALUE, "The messages, in order.")


@dataclass(frozen=True, slots=True)
class Subscribed(Payload):
    TYPE = MessageType.SUBSCRIBED
    DOC = "Server -> client: a Subscribe took effect."
    topic: str = _f(Kind.STR, "Topic name.")
    epoch: int = _f(Kind.UINT, "Current epoch.")
    next_offset: int = _f(Kind.UINT, "Offset of the next message published.")


# ------------------------------------------------------------------- not-known


@dataclass(frozen=True, slots=True)
class Unknown(Payload):
    """A type this implementation does not know; the payload is kept as bytes."""

    KIND = PayloadKind.BINARY
    code: int
    data: bytes = b""

    @property
    def type_code(self) -> int:
        return self.code


@dataclass(frozen=True, slots=True)
class Sealed(Payload):
    """An encrypted payload decoded without a key: the wire bytes, unchecked."""

    KIND = PayloadKind.BINARY
    code: int
    data: bytes = b""

    @property
    def type_code(self) -> int:
        return self.code


# ------------------------------------------------------------------- the message


@dataclass(frozen=True, slots=True)
class Message:
    """One wsp application message: header fields plus a typed payload.

    The same class is used for sending and receiving; ``decode(encode(m)) == m``.
    """

    payload: Payload
    sequence: int = 0
    session_id: int = 0
    timestamp: int = 0
    flags: Flags = Flags.NONE

    @property
    def type_code(self) -> int:
        return self.payload.type_code

    @property
    def type(self) -> MessageType | None:
        """The known message type, or None for Unknown payloads."""
        code = self.payload.type_code
        return MessageType(code) if code in _KNOWN_CODES else None

    @property
    def type_name(self) -> str:
        return TYPES[self.type_code].name if self.type_code in TYPES else "Unknown"


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """One row of the message type table."""

    code: MessageType
    name: str
    category: Category
    cls: type[Payload]
    kind: PayloadKind
    doc: str


#: Every known payload class, in code order. The type table is built from it.
PAYLOAD_CLASSES: tuple[type[Payload], ...] = (
    Handshake, HandshakeResponse, Heartbeat, Close, Error, Challenge, Authenticate,
    TextData, BinaryData, DeltaUpdate, Publish, Deliver, Request, Response,
    Subscribe, Unsubscribe, Acknowledge, Resume, ContinuityLost, WindowUpdate, Batch,
    Subscribed,
)

TYPES: dict[int, TypeSpec] = {
    int(cls.TYPE): TypeSpec(
        MessageType(cls.TYPE), cls.__name__, Category(cls.TYPE >> 8), cls, cls.KIND, cls.DOC
    )
    for cls in PAYLOAD_CLASSES
}
_KNOWN_CODES = frozenset(TYPES)


def dataclass_fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """``dataclasses.fields`` of a payload class (the type checker knows Payload,
    not its dataclass subclasses)."""
    return dataclasses.fields(cast(Any, cls))


def payload_fields(cls: type[Payload]) -> tuple[tuple[str, FieldSpec], ...]:
    """(name, FieldSpec) for each declared field of a payload class, in order."""
    return tuple(
        (f.name, f.metadata["wsp"]) for f in dataclass_fields(cls) if "wsp" in f.metadata
    )
