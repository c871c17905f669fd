"""encode/decode: :class:`Message` <-> bytes of one WebSocket binary message.

The layouts are those of :mod:`.schema` (``V1_HEADER``, ``V2_HEADER``); the
specification is ``docs/protocol.md``. Decoding works on whole messages and raises
only :class:`~wsproto_tools.exceptions.DecodeError` and its subclasses
(``LimitExceeded``, ``DecryptionFailed``), each with the byte offset of the
problem and the close code to answer with. Encoding a message the protocol cannot
carry raises :class:`~wsproto_tools.exceptions.LocalProtocolError`.
"""

from __future__ import annotations

__all__ = ["decode", "detect_version", "encode", "encode_batch", "message_encoder"]

import struct
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Protocol

from wsproto_tools import native
from wsproto_tools.codec.compression import compress, decompress
from wsproto_tools.codec.construct import new as _new
from wsproto_tools.codec.construct import set_data as _set_data
from wsproto_tools.codec.construct import set_flags as _set_flags
from wsproto_tools.codec.construct import set_messages as _set_messages
from wsproto_tools.codec.construct import set_payload as _set_payload
from wsproto_tools.codec.construct import set_sequence as _set_sequence
from wsproto_tools.codec.construct import set_session as _set_session
from wsproto_tools.codec.construct import set_text as _set_text
from wsproto_tools.codec.construct import set_timestamp as _set_timestamp
from wsproto_tools.codec.crypto import OVERHEAD, Cipher
from wsproto_tools.codec.fastpath import compiled_decoder, encode_body, values_encoder
from wsproto_tools.codec.header import pack_v2, unpack_v2
from wsproto_tools.codec.limits import DEFAULT_LIMITS, Limits
from wsproto_tools.codec.payloads import decode_fields, encode_fields
from wsproto_tools.codec.schema import (
    TYPES,
    V1_HEADER_SIZE,
    V1_MAGIC,
    V1_STRUCT,
    V2_MARKER,
    V2_MARKER_MASK,
    Batch,
    BinaryData,
    Flags,
    Message,
    Payload,
    PayloadKind,
    Sealed,
    TextData,
    Unknown,
)
from wsproto_tools.codec.varint import read_varint, write_varint
from wsproto_tools.exceptions import (
    CloseCode,
    DecodeError,
    LimitExceeded,
    LocalProtocolError,
)

_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_FLAG_MASK = 0x07
_COMPRESSED = int(Flags.COMPRESSED)
_ENCRYPTED = int(Flags.ENCRYPTED)
_V1 = struct.Struct(V1_STRUCT)
_V1_PACK = _V1.pack
_V1_UNPACK = _V1.unpack_from
_FLAGS = tuple(Flags(i) for i in range(8))
_ONE_BYTE = tuple(bytes((i,)) for i in range(128))

_ACK = Flags.ACK_REQUESTED
_NONE = Flags.NONE
_BINARY_CODE = int(BinaryData.TYPE)
_TEXT_CODE = int(TextData.TYPE)
_BATCH_CODE = Batch.TYPE
_MSGPACK = PayloadKind.MSGPACK
_BINARY = PayloadKind.BINARY
_BATCH = PayloadKind.BATCH
_TEXT = PayloadKind.TEXT


class _Decode(Protocol):
    def __call__(self, data: bytes, *, version: int | None = ..., limits: Limits = ...,
                 cipher: Cipher | None = ...) -> Message: ...


def _message(payload: Payload, sequence: int, session_id: int, timestamp: int,
             flags: Flags) -> Message:
    """Message(...) without the frozen-dataclass __init__ cost (hot path)."""
    msg: Message = _new(Message)
    _set_payload(msg, payload)
    _set_sequence(msg, sequence)
    _set_session(msg, session_id)
    _set_timestamp(msg, timestamp)
    _set_flags(msg, flags)
    return msg


def _binary(data: bytes) -> BinaryData:
    payload: BinaryData = _new(BinaryData)
    _set_data(payload, data)
    return payload


def _text(text: str) -> TextData:
    payload: TextData = _new(TextData)
    _set_text(payload, text)
    return payload


# ------------------------------------------------------------------------ encode


def _body(payload: Payload, version: int, cipher: Cipher | None) -> bytes:
    ptype = type(payload)
    if type(payload) is BinaryData:
        data = payload.data
        if type(data) is not bytes:
            raise LocalProtocolError("BinaryData.data must be bytes")
        return data
    if type(payload) is TextData:
        text = payload.text
        if type(text) is not str:
            raise LocalProtocolError("TextData.text must be a str")
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise LocalProtocolError(f"TextData.text is not encodable as UTF-8 "
                                     f"({error.reason})") from None
    if type(payload) is Batch:
        return _batch_body(payload, version, cipher)
    if type(payload) is Unknown or type(payload) is Sealed:
        data = payload.data
        if type(data) is not bytes:
            raise LocalProtocolError(f"{ptype.__name__}.data must be bytes")
        return data
    spec = TYPES.get(getattr(ptype, "TYPE", -1))
    if spec is None or spec.cls is not ptype:
        raise LocalProtocolError(f"{ptype.__name__} is not a wsp payload type")
    return encode_fields(payload)


def _batch_body(batch: Batch, version: int, cipher: Cipher | None) -> bytes:
    if type(batch.messages) is not tuple:
        raise LocalProtocolError("Batch.messages must be a tuple of Message")
    parts: list[bytes] = []
    for item in batch.messages:
        if type(item) is not Message:
            raise LocalProtocolError("Batch.messages must be a tuple of Message")
        if type(item.payload) is Batch:
            raise LocalProtocolError("a Batch may not contain a Batch")
        encoded = encode(item, version=version, cipher=cipher)
        parts.append(write_varint(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


def encode(msg: Message, *, version: int = 2, cipher: Cipher | None = None) -> bytes:
    """The wire bytes of ``msg`` in wire ``version`` (1 or 2).

    COMPRESSED and ENCRYPTED in ``msg.flags`` are applied here (compression
    first); ENCRYPTED needs ``cipher``, whose nonce source supplies the nonce. A
    :class:`Sealed` payload is written as it is (it already is ciphertext).
    """
    payload = msg.payload
    ptype = type(payload)
    flags = msg.flags
    if version == 2 and (flags is _NONE or flags is _ACK) and not msg.timestamp:
        # Hot path: no COMPRESSED/ENCRYPTED, no timestamp, a payload that is bytes,
        # text or a compiled msgpack map (the general path below gives the same
        # bytes; tests/codec check both).
        sequence = msg.sequence
        session_id = msg.session_id
        if (type(sequence) is int and 0 <= sequence <= _U32 and type(session_id) is int
                and 0 <= session_id <= _U64):
            if ptype is BinaryData:
                body: bytes | None = payload.data  # type: ignore[attr-defined]  # ptype is checked
                if type(body) is not bytes:
                    raise LocalProtocolError("BinaryData.data must be bytes")
                code = _BINARY_CODE
            elif ptype is TextData:
                body = _body(payload, version, cipher)
                code = _TEXT_CODE
            else:
                body = encode_body(payload)  # None: not compiled, or a value it leaves
                code = ptype.TYPE if body is not None else 0
            if body is not None:
                return pack_v2(code, 0 if flags is _NONE else 4, sequence, session_id) + body
    body = _body(payload, version, cipher)
    sequence = msg.sequence
    session_id = msg.session_id
    timestamp = msg.timestamp
    if type(sequence) is not int or not 0 <= sequence <= _U32:
        raise LocalProtocolError(f"sequence must be an int in 0..2^32-1, not {sequence!r}")
    if type(session_id) is not int or not 0 <= session_id <= _U64:
        raise LocalProtocolError(f"session_id must be an int in 0..2^64-1, not {session_id!r}")
    if type(timestamp) is not int or not 0 <= timestamp <= _U64:
        raise LocalProtocolError(f"timestamp must be an int in 0..2^64-1, not {timestamp!r}")
    code = payload.type_code
    seal = False
    if flags:
        if not isinstance(flags, int) or flags & ~_FLAG_MASK:
            raise LocalProtocolError(f"unknown flag bits in {flags!r}")
        if type(payload) is Sealed:
            if not flags & _ENCRYPTED:
                raise LocalProtocolError("a Sealed payload needs the ENCRYPTED flag")
        else:
            if flags & _COMPRESSED:
                body = compress(body)
            if flags & _ENCRYPTED:
                if cipher is None:
                    raise LocalProtocolError("the ENCRYPTED flag needs a cipher to encode")
                seal = True
    elif type(payload) is Sealed:
        raise LocalProtocolError("a Sealed payload needs the ENCRYPTED flag")
    if type(payload) is Unknown or type(payload) is Sealed:
        if type(code) is not int or not 0 <= code <= 0xFFFF:
            raise LocalProtocolError(f"type code must be in 0..0xFFFF, not {code!r}")
        if type(payload) is Unknown and code in TYPES:
            raise LocalProtocolError(
                f"Unknown payload with the known type code 0x{code:04X}; "
                f"use {TYPES[code].name}"
            )
    fbits = int(flags)
    if version == 2:
        header = pack_v2(code, fbits, sequence, session_id, timestamp)
        if seal:
            assert cipher is not None
            body = cipher.seal(header, body)
        return header + body
    if version == 1:
        length = len(body) + OVERHEAD if seal else len(body)
        if length > _U32:
            raise LocalProtocolError("payload too long for v1 (payload_len is a u32)")
        header = _V1_PACK(V1_MAGIC, 1, fbits, code, session_id, sequence, timestamp, length)
        if seal:
            assert cipher is not None
            body = cipher.seal(header, body)
        return header + body
    raise LocalProtocolError(f"wire version must be 1 or 2, not {version!r}")


def encode_batch(wires: Sequence[bytes], session_id: int = 0, version: int = 2) -> bytes:
    """The bytes of a Batch (sequence 0, no flags) of messages already encoded in
    wire ``version`` (none of them a Batch or empty): what :func:`encode` writes for
    ``Message(Batch(messages), session_id=session_id)``."""
    if type(session_id) is not int or not 0 <= session_id <= _U64:
        raise LocalProtocolError(f"session_id must be an int in 0..2^64-1, not {session_id!r}")
    parts = [b""]
    for item in wires:
        size = len(item)
        parts.append(_ONE_BYTE[size] if size < 0x80 else write_varint(size))
        parts.append(item)
    if version == 2:
        parts[0] = pack_v2(_BATCH_CODE, 0, 0, session_id)
        return b"".join(parts)
    if version == 1:
        body = b"".join(parts)
        if len(body) > _U32:
            raise LocalProtocolError("payload too long for v1 (payload_len is a u32)")
        return _V1_PACK(V1_MAGIC, 1, 0, _BATCH_CODE, session_id, 0, 0, len(body)) + body
    raise LocalProtocolError(f"wire version must be 1 or 2, not {version!r}")


def message_encoder(cls: type[Payload], version: int = 2) -> Callable[..., bytes]:
    """``encode(*field_values)``: the bytes :func:`encode` writes for
    ``Message(cls(*field_values))`` in wire ``version`` (sequence 0, no session id,
    no flags; every field given, in order), compiled for the plain msgpack classes
    (a topic's fan-out encodes each delivery once this way)."""

    def general(*field_values: object) -> bytes:
        return encode(Message(cls(*field_values)), version=version)

    values = values_encoder(cls)
    if version != 2 or values is None:
        return general
    head = pack_v2(cls.TYPE, 0, 0)

    def compiled(*field_values: object) -> bytes:
        body = values(*field_values)
        return general(*field_values) if body is None else head + body

    return compiled


# ------------------------------------------------------------------------ decode

def detect_version(data: bytes) -> int:
    """The wire version of a message from its first byte (``D1`` v1, 0x40-0x7F v2)."""
    if not data:
        raise DecodeError("empty message", offset=0)
    first = data[0]
    if first == 0xD1:
        return 1
    if first & V2_MARKER_MASK == V2_MARKER:
        return 2
    raise DecodeError(
        f"not a wsp message: first byte 0x{first:02X} is neither v1's 0xD1 nor v2's 0x40-0x7F",
        offset=0,
    )


def _decode(
    data: bytes,
    *,
    version: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    cipher: Cipher | None = None,
) -> Message:
    """Decode one whole message; ``version=None`` detects it from the first byte.

    An ENCRYPTED message decoded without ``cipher`` gets a :class:`Sealed` payload
    (its authenticity is unchecked). Unknown type codes give an :class:`Unknown`
    payload. Raises DecodeError (or a subclass) for anything else that is wrong.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > limits.max_message:
        raise LimitExceeded(
            f"message of {len(data)} bytes exceeds the limit of {limits.max_message}",
            offset=limits.max_message,
        )
    if version is None:
        version = 2 if data and data[0] & V2_MARKER_MASK == V2_MARKER else detect_version(data)
    if version == 2:
        return _decode_v2(data, limits, cipher, False)
    if version == 1:
        return _decode_v1(data, limits, cipher, False)
    raise LocalProtocolError(f"wire version must be 1, 2 or None, not {version!r}")


def _decode_v2(data: bytes, limits: Limits, cipher: Cipher | None, nested: bool) -> Message:
    code, flags, sequence, session_id, timestamp, pos = unpack_v2(data)
    if not flags & (_COMPRESSED | _ENCRYPTED):
        # _finish and _payload for a payload as it is on the wire (hot path)
        spec = TYPES.get(code)
        if spec is not None:
            kind = spec.kind
            if kind is _BINARY:
                payload: Payload = _binary(data[pos:])
            elif kind is _MSGPACK:
                payload = decode_fields(spec.cls, data[pos:], pos, limits)
            elif kind is _TEXT:
                try:
                    payload = _text(data[pos:].decode("utf-8"))
                except UnicodeDecodeError:  # _payload reports it
                    payload = _payload(code, data[pos:], pos, False, limits, cipher, 2, nested)
            elif kind is _BATCH and not nested:
                payload = _decode_batch(data[pos:], pos, False, limits, cipher, 2)
            else:
                payload = _payload(code, data[pos:], pos, False, limits, cipher, 2, nested)
        else:
            payload = Unknown(code, data[pos:])
        return _message(payload, sequence, session_id, timestamp, _FLAGS[flags])
    return _finish(data, pos, code, sequence, session_id, timestamp, flags,
                   limits, cipher, 2, nested)


def _compiled_decode(module: ModuleType) -> _Decode:
    """:func:`_decode` with the common v2 messages read in C (``codec/_fast.c``),
    which hands everything else to :func:`_decode` itself."""
    return compiled_decoder(module, _decode, DEFAULT_LIMITS)


#: decode: in C for the common v2 messages when it was built (see :mod:`..native`)
decode: _Decode = native.pick("codec._fast", _compiled_decode, _decode)


def _decode_v1(data: bytes, limits: Limits, cipher: Cipher | None, nested: bool) -> Message:
    size = len(data)
    if size < V1_HEADER_SIZE:
        raise DecodeError(
            f"truncated header: {size} bytes, a v1 header has {V1_HEADER_SIZE}", offset=size
        )
    magic, version, flags, code, session_id, sequence, timestamp, length = _V1_UNPACK(data)
    if magic != V1_MAGIC:
        raise DecodeError(f"wrong magic 0x{magic:04X}, expected 0xC0D1", offset=0)
    if version != 1:
        raise DecodeError(f"v1 header with version byte {version}, expected 1", offset=2)
    if flags & ~_FLAG_MASK:
        raise DecodeError(f"reserved flag bits set in 0x{flags:02X}", offset=3)
    if length != size - V1_HEADER_SIZE:
        raise DecodeError(
            f"payload_len says {length} bytes but {size - V1_HEADER_SIZE} follow", offset=26
        )
    return _finish(data, V1_HEADER_SIZE, code, sequence, session_id, timestamp, flags,
                   limits, cipher, 1, nested)


def _finish(
    data: bytes, start: int, code: int, sequence: int, session_id: int, timestamp: int,
    flags: int, limits: Limits, cipher: Cipher | None, version: int, nested: bool,
) -> Message:
    body = data[start:]
    transformed = False
    if flags & (_COMPRESSED | _ENCRYPTED):
        if flags & _ENCRYPTED:
            if cipher is None:
                return _message(Sealed(code, body), sequence, session_id, timestamp,
                                _FLAGS[flags])
            body = cipher.open(data[:start], body, start)
        if flags & _COMPRESSED:
            body = decompress(body, start, limits.max_decompressed)
        transformed = True
    return _message(
        _payload(code, body, start, transformed, limits, cipher, version, nested),
        sequence, session_id, timestamp, _FLAGS[flags],
    )


def _payload(
    code: int, body: bytes, start: int, transformed: bool, limits: Limits,
    cipher: Cipher | None, version: int, nested: bool,
) -> Payload:
    spec = TYPES.get(code)
    if spec is None:
        return Unknown(code, body)
    kind = spec.kind
    if kind is PayloadKind.BINARY:
        return _binary(body)
    if kind is PayloadKind.TEXT:
        try:
            return _text(body.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DecodeError(
                f"TextData payload is not valid UTF-8 ({error.reason})",
                offset=start if transformed else start + error.start,
                close_code=CloseCode.INVALID_DATA,
            ) from None
    if kind is PayloadKind.BATCH:
        if nested:
            raise DecodeError("a Batch may not contain a Batch", offset=start)
        return _decode_batch(body, start, transformed, limits, cipher, version)
    return decode_fields(spec.cls, body, start, limits)


def _decode_batch(
    body: bytes, start: int, transformed: bool, limits: Limits, cipher: Cipher | None,
    version: int,
) -> Batch:
    items: list[Message] = []
    pos = 0
    size = len(body)
    inner = _decode_v2 if version == 2 else _decode_v1
    while pos < size:
        if len(items) >= limits.max_batch_items:
            raise LimitExceeded(
                f"Batch has more than {limits.max_batch_items} messages",
                offset=start if transformed else start + pos,
            )
        length = body[pos]
        if length < 0x80:
            item_start = pos + 1
        else:
            try:
                length, item_start = read_varint(body, pos, size, "batch item length")
            except DecodeError as error:
                raise _shift(error, start, transformed,
                             f"batch item {len(items)}") from None
        if length == 0:
            raise DecodeError(f"batch item {len(items)} is empty",
                              offset=start if transformed else start + pos)
        end = item_start + length
        if end > size:
            raise DecodeError(
                f"batch item {len(items)} claims {length} bytes but {size - item_start} remain",
                offset=start if transformed else start + pos,
            )
        try:
            items.append(inner(body[item_start:end], limits, cipher, True))
        except DecodeError as error:
            raise _shift(error, start if transformed else start + item_start, transformed,
                         f"batch item {len(items)}") from None
        pos = end
    batch: Batch = _new(Batch)
    _set_messages(batch, tuple(items))
    return batch


def _shift(error: DecodeError, base: int, transformed: bool, where: str) -> DecodeError:
    """The same error, located in the enclosing message.

    Offsets inside a compressed or encrypted payload have no place on the wire;
    they are reported as the payload's start (``base``).
    """
    offset = error.offset
    if offset is not None and not transformed:
        offset = base + offset
    elif offset is not None:
        offset = base
    shifted = type(error)(f"{where}: {error.reason}", offset=offset,
                          close_code=error.close_code)
    return shifted
