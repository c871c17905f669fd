"""Compiled fast paths for the msgpack payloads of a live session.

A session's hot messages (Request, Response, Publish, Deliver, Acknowledge,
Subscribed...) are msgpack maps of plain fields (uint, str, bin, bool). For each
payload class whose fields are all plain, this module compiles, from the field
declarations in :mod:`.schema` (the one description of the wire format; nothing
here names a field by hand), an encoder and a decoder that skip the general
per-field machinery of :mod:`.payloads`:

* :func:`encode_body` -- the msgpack map of a payload, the same bytes as
  ``payloads.encode_fields``;
* :func:`decode_body` -- a payload from its msgpack map, the same object as
  ``payloads.decode_fields``, built without the dataclass ``__init__``;
* :func:`constructor` -- a positional constructor for a frozen slots dataclass
  (payloads, :class:`~.schema.Message`, engine events) that sets the slots
  directly, without the dataclass ``__init__`` and its ``object.__setattr__``
  per field;
* :func:`message_encoder` and :func:`batch_v2` -- a topic fan-out's messages
  and their Batch, encoded from field values without building messages;
* :func:`encode_v2` and :func:`decode_v2` -- a whole v2 message (header and
  body) without a timestamp, COMPRESSED or ENCRYPTED, as ``wire.encode`` writes
  it and ``wire.decode`` reads it.

Each returns ``None`` for anything out of the ordinary (a value of another type,
a non-ASCII string, a key the class does not know, malformed msgpack...): the
general path then gives the same result or reports the problem.
``tests/codec/test_fastpath.py`` checks that both paths agree.
"""

from __future__ import annotations

__all__ = [
    "batch_v2",
    "constructor",
    "decode_body",
    "decode_v2",
    "encode_body",
    "encode_v2",
    "message_encoder",
]

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgpack

from wsproto_tools import native
from wsproto_tools.codec.construct import new as _new
from wsproto_tools.codec.construct import set_data as _set_data
from wsproto_tools.codec.construct import set_flags as _set_flags
from wsproto_tools.codec.construct import set_messages as _set_messages
from wsproto_tools.codec.construct import set_payload as _set_payload
from wsproto_tools.codec.construct import set_sequence as _set_sequence
from wsproto_tools.codec.construct import set_session as _set_session
from wsproto_tools.codec.construct import set_text as _set_text
from wsproto_tools.codec.construct import set_timestamp as _set_timestamp
from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import (
    PAYLOAD_CLASSES,
    V2_HAS_SESSION,
    V2_MARKER,
    Batch,
    BinaryData,
    Flags,
    Kind,
    Message,
    Payload,
    PayloadKind,
    TextData,
    payload_fields,
    v2_type_byte,
)
from wsproto_tools.codec.varint import read_varint, write_varint
from wsproto_tools.exceptions import DecodeError

T = TypeVar("T")

_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_ACK = Flags.ACK_REQUESTED
#: the one-byte varints
_SEQUENCES = tuple(bytes((i,)) for i in range(128))

#: One packer for every body: ``pack`` runs in C without calling back into
#: Python for the exact types the encoders let through, so it is never re-entered.
_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_unpackb = msgpack.unpackb

#: Field kinds the compiled forms handle, and the check each value must pass to be
#: written as it is (``v`` is the value). Anything else takes the general path.
_ENCODE_CHECKS = {
    Kind.UINT: "type({v}) is int and 0 <= {v} <= U64",
    Kind.STR: "type({v}) is str and {v}.isascii()",
    Kind.BYTES: "type({v}) is bytes",
    Kind.BOOL: "type({v}) is bool",
}
#: What a decoded value must be to be taken as it is.
_DECODE_CHECKS = {
    Kind.UINT: "type({v}) is int and {v} >= 0",
    Kind.STR: "type({v}) is str",
    Kind.BYTES: "type({v}) is bytes",
    Kind.BOOL: "type({v}) is bool",
}


def _compile(
    cls: type[Payload],
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]] | None:
    """(encoder, encoder from positional values, decoder) for ``cls``, or None when a
    field is not plain."""
    fields = payload_fields(cls)
    declared = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not fields or len(fields) != len(declared):
        return None
    for (_, fspec), dfield in zip(fields, declared, strict=True):
        if fspec.kind not in _ENCODE_CHECKS:
            return None
        if fspec.optional and dfield.default is dataclasses.MISSING:
            return None  # a default_factory: leave it to the dataclass
    names = [name for name, _ in fields]
    scope: dict[str, Any] = {
        "U64": _U64,
        "pack": _pack,
        "new": object.__new__,
        "cls": cls,
        "setters": [vars(cls)[name].__set__ for name in names],
        "defaults": [dfield.default for dfield in declared],
    }
    # encoder: required fields first in a literal, then the optional ones in order
    # (dataclass fields with defaults follow those without, so this is declaration
    # order, as the general path writes it).
    loads = [f"    v{i} = p.{name}" for i, name in enumerate(names)]
    lines: list[str] = []
    literal: list[str] = []
    tail: list[str] = []
    for i, (name, fspec) in enumerate(fields):
        check = _ENCODE_CHECKS[fspec.kind].format(v=f"v{i}")
        if fspec.optional:
            tail.append(f"    if v{i} is not None:")
            tail.append(f"        if not ({check}):")
            tail.append("            return None")
            tail.append(f"        d[{name!r}] = v{i}")
        else:
            if tail:
                return None  # a required field after an optional one: keep the general path
            lines.append(f"    if not ({check}):")
            lines.append("        return None")
            literal.append(f"{name!r}: v{i}")
    lines.append("    d = {" + ", ".join(literal) + "}")
    lines.extend(tail)
    lines.append("    return pack(d)")
    args = ", ".join(f"v{i}" for i in range(len(names)))
    enc = ["def encode(p):", *loads, *lines, "", f"def values({args}):", *lines]
    # decoder: every known key checked; absent optional fields get their default;
    # any other key (or a nil value) sends the map to the general path.
    dec = ["def decode(obj):", "    n = 0"]
    for i, (name, fspec) in enumerate(fields):
        check = _DECODE_CHECKS[fspec.kind].format(v=f"v{i}")
        dec.append(f"    v{i} = obj.get({name!r})")
        if fspec.optional:
            dec.append(f"    if v{i} is None:")
            dec.append(f"        v{i} = defaults[{i}]")
            dec.append(f"    elif {check}:")
            dec.append("        n += 1")
            dec.append("    else:")
            dec.append("        return None")
        else:
            dec.append(f"    if not ({check}):")
            dec.append("        return None")
            dec.append("    n += 1")
    dec.append("    if len(obj) != n:")
    dec.append("        return None")
    dec.append("    p = new(cls)")
    for i in range(len(fields)):
        dec.append(f"    setters[{i}](p, v{i})")
    dec.append("    return p")
    exec("\n".join(enc) + "\n\n" + "\n".join(dec), scope)  # the code built above, from the schema
    return scope["encode"], scope["values"], scope["decode"]


def constructor(cls: type[T]) -> Callable[..., T]:
    """``make(v0, v1, ...)``: ``cls(v0, v1, ...)`` for a frozen slots dataclass,
    every field given in declaration order (no defaults, no checks: the same as
    what the dataclass ``__init__`` does, at about half its cost)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    args = ", ".join(f"v{i}" for i in range(len(names)))
    lines = [f"def make({args}):", "    o = new(cls)"]
    lines += [f"    set{i}(o, v{i})" for i in range(len(names))]
    lines.append("    return o")
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        scope[f"set{i}"] = vars(cls)[name].__set__
    exec("\n".join(lines), scope)  # the code built above, from the dataclass fields
    make: Callable[..., T] = scope["make"]
    return make


_ENCODERS: dict[type[Payload], Callable[[Any], bytes | None]] = {}
_VALUES: dict[type[Payload], Callable[..., bytes | None]] = {}
_DECODERS: dict[type[Payload], Callable[[dict[str, Any]], Payload | None]] = {}
#: payload class -> its v2 type byte(s)
_V2_TYPES: dict[type[Payload], bytes] = {}
for _cls in PAYLOAD_CLASSES:
    if _cls.KIND is not PayloadKind.MSGPACK:
        continue
    _forms = _compile(_cls)
    if _forms is None:
        continue
    _ENCODERS[_cls], _VALUES[_cls], _DECODERS[_cls] = _forms
    _one = v2_type_byte(_cls.TYPE)
    _V2_TYPES[_cls] = (
        bytes((_one,)) if _one is not None else b"\xc0" + _cls.TYPE.to_bytes(2, "little")
    )
del _cls, _forms, _one


def message_encoder(cls: type[Payload]) -> Callable[..., bytes | None] | None:
    """For a compiled class, ``encode(*field_values)``: the v2 bytes of
    ``Message(cls(*field_values))`` (sequence 0, no session id, no flags; every
    field given, in order), or None from it when the general path must decide.
    None when ``cls`` has no compiled form."""
    values = _VALUES.get(cls)
    if values is None:
        return None
    head = bytes((V2_MARKER,)) + _V2_TYPES[cls] + _SEQUENCES[0]

    def encode(*field_values: Any) -> bytes | None:
        body = values(*field_values)
        return None if body is None else head + body

    return encode


_BATCH_HEAD = bytes((V2_MARKER,)) + bytes((v2_type_byte(Batch.TYPE) or 0,)) + b"\x00"


def batch_v2(items: Sequence[bytes], session_id: int = 0) -> bytes:
    """The v2 bytes of a Batch (sequence 0, no flags) of the already encoded v2
    messages ``items`` (none of them a Batch)."""
    if session_id:
        parts = [bytes((_BATCH_HEAD[0] | V2_HAS_SESSION,)) + _BATCH_HEAD[1:], _varint(session_id)]
    else:
        parts = [_BATCH_HEAD]
    for item in items:
        size = len(item)
        if size < 0x80:
            parts.append(_SEQUENCES[size])
        elif size < 0x4000:
            parts.append(bytes(((size & 0x7F) | 0x80, size >> 7)))
        else:
            parts.append(write_varint(size))
        parts.append(item)
    return b"".join(parts)


def encode_body(payload: Payload) -> bytes | None:
    """The msgpack map of ``payload`` by its compiled form, or None (general path)."""
    encoder = _ENCODERS.get(type(payload))
    return None if encoder is None else encoder(payload)


#: id(Limits) -> (the Limits, the keyword arguments of ``msgpack.unpackb`` that
#: enforce them); by identity, as hashing a Limits costs more than the lookup saves.
_UNPACK_ARGS: dict[int, tuple[Limits, dict[str, Any], int]] = {}


def _unpack_args(limits: Limits) -> dict[str, Any]:
    global _last_args
    found = _UNPACK_ARGS.get(id(limits))
    if found is not None and found[0] is limits:
        _last_args = found
        return found[1]
    args = {
        "raw": False,
        "use_list": False,
        "strict_map_key": True,
        "max_str_len": limits.max_str_len,
        "max_bin_len": limits.max_bin_len,
        "max_array_len": limits.max_array_len,
        "max_map_len": limits.max_map_len,
        "max_ext_len": limits.max_bin_len,
    }
    if len(_UNPACK_ARGS) >= 64:
        _UNPACK_ARGS.clear()
    # bodies up to this size need no explicit bounds (see decode_v2)
    small = min(
        limits.max_str_len, limits.max_bin_len, limits.max_array_len, 2 * limits.max_map_len
    )
    _UNPACK_ARGS[id(limits)] = _last_args = (limits, args, small)
    return args


#: the Limits used last, their arguments and their "small body" size (a session
#: decodes with one Limits)
_last_args: tuple[Limits | None, dict[str, Any], int] = (None, {}, -1)


def decode_body(cls: type[Payload], data: bytes, limits: Limits) -> Payload | None:
    """``cls`` from its msgpack map by the compiled form, or None (general path)."""
    decoder = _DECODERS.get(cls)
    if decoder is None:
        return None
    try:
        obj = _unpackb(data, **_unpack_args(limits))
    except ValueError:  # msgpack's errors (and bad UTF-8): the general path reports
        return None
    if type(obj) is not dict:
        return None
    return decoder(obj)


#: session id -> its varint (a session's id is in most of the headers it writes)
_SESSION_VARINTS: dict[int, bytes] = {}


def _varint(session_id: int) -> bytes:
    found = _SESSION_VARINTS.get(session_id)
    if found is None:
        if len(_SESSION_VARINTS) >= 1024:
            _SESSION_VARINTS.clear()
        found = _SESSION_VARINTS[session_id] = write_varint(session_id)
    return found


def encode_v2(msg: Message) -> bytes | None:
    """A v2 message with a compiled payload form and no timestamp or transform
    flags (only ACK_REQUESTED); None for anything else (general path)."""
    payload = msg.payload
    encoder = _ENCODERS.get(type(payload))
    if encoder is None or msg.timestamp:
        return None
    flags = msg.flags
    if flags is _ACK:
        head = V2_MARKER | 0x04
    elif not flags:
        head = V2_MARKER
    else:
        return None
    sequence = msg.sequence
    if type(sequence) is not int:
        return None
    if 0 <= sequence < 0x80:
        seq = _SEQUENCES[sequence]
    elif 0x80 <= sequence < 0x4000:
        seq = bytes(((sequence & 0x7F) | 0x80, sequence >> 7))
    elif 0x4000 <= sequence < 0x200000:
        seq = bytes(((sequence & 0x7F) | 0x80, ((sequence >> 7) & 0x7F) | 0x80, sequence >> 14))
    elif 0x200000 <= sequence <= _U32:
        seq = write_varint(sequence)
    else:
        return None
    body = encoder(payload)
    if body is None:
        return None
    session_id = msg.session_id
    if type(session_id) is not int:
        return None
    if not session_id:
        return bytes((head,)) + _V2_TYPES[type(payload)] + seq + body
    if not 0 < session_id <= _U64:
        return None
    sid = _varint(session_id)
    return bytes((head | V2_HAS_SESSION,)) + _V2_TYPES[type(payload)] + seq + sid + body


#: v2 type byte -> payload class, for the compiled classes with a one-byte type
_V2_CLASSES: dict[int, type[Payload]] = {
    code[0]: cls for cls, code in _V2_TYPES.items() if len(code) == 1
}
#: v2 first bytes that decode_v2 reads: marker 01, no timestamp, reserved bit clear,
#: no COMPRESSED/ENCRYPTED; bit 5 (session) and bit 2 (ACK_REQUESTED) are free.
_PLAIN_HEAD_MASK = 0xDB
_FLAGS_BY_HEAD = (Flags.NONE, _ACK)
_BATCH_BYTE = v2_type_byte(Batch.TYPE) or 0
#: the raw payloads (bytes, UTF-8 text) read here too, so that a Batch mixing them
#: with msgpack messages stays on this path
for _raw in (BinaryData, TextData):
    _V2_CLASSES[v2_type_byte(_raw.TYPE) or 0] = _raw
del _raw
#: the session id read last: (its varint, its value)
_last_session: tuple[bytes, int] = (b"", 0)


def decode_v2(data: bytes, limits: Limits, nested: bool = False) -> Message | None:
    """A v2 message whose payload has a compiled form or is BinaryData or TextData
    (or, unless ``nested`` in a Batch, a Batch of such messages), with no timestamp
    or transform flags; None for anything else (the general path decodes or
    reports).

    The caller has checked the message size against ``limits``.
    """
    global _last_session
    size = len(data)
    if size < 3 or data[0] & _PLAIN_HEAD_MASK != V2_MARKER:
        return None
    head = data[0]
    cls = _V2_CLASSES.get(data[1])
    if cls is None and (nested or data[1] != _BATCH_BYTE):
        return None
    sequence = data[2]
    pos = 3
    if sequence >= 0x80:
        second = data[3] if size > 3 else 0
        if 0 < second < 0x80:  # two bytes, minimal
            sequence = (sequence & 0x7F) | (second << 7)
            pos = 4
        elif second >= 0x80 and size > 4 and 0 < data[4] < 0x80:  # three bytes
            sequence = (sequence & 0x7F) | ((second & 0x7F) << 7) | (data[4] << 14)
            pos = 5
        else:
            try:
                sequence, pos = read_varint(data, 2, _U32, "sequence")
            except DecodeError:
                return None
    session_id = 0
    if head & V2_HAS_SESSION:
        last, value = _last_session
        if last and data.startswith(last, pos):
            session_id = value
            pos += len(last)
        else:
            try:
                session_id, end = read_varint(data, pos, _U64, "session_id")
            except DecodeError:
                return None
            if not session_id:
                return None
            _last_session = (data[pos:end], session_id)
            pos = end
    payload: Payload | None
    if cls is None:
        payload = _batch(data, pos, limits)
    elif cls is BinaryData:
        payload = _new(BinaryData)
        _set_data(payload, data[pos:])
    elif cls is TextData:
        try:
            text = data[pos:].decode("utf-8")
        except UnicodeDecodeError:
            return None  # the general path reports where
        payload = _new(TextData)
        _set_text(payload, text)
    else:
        payload = _msgpack_payload(cls, data[pos:], limits)
    if payload is None:
        return None
    msg: Message = _new(Message)
    _set_payload(msg, payload)
    _set_sequence(msg, sequence)
    _set_session(msg, session_id)
    _set_timestamp(msg, 0)
    _set_flags(msg, _FLAGS_BY_HEAD[(head >> 2) & 1])
    return msg


def _batch(data: bytes, pos: int, limits: Limits) -> Batch | None:
    """The items of a Batch from ``pos`` on, each decodable by :func:`decode_v2`."""
    items: list[Message] = []
    size = len(data)
    limit = limits.max_batch_items
    while pos < size:
        if len(items) >= limit:
            return None
        length = data[pos]
        if length < 0x80:
            pos += 1
        elif pos + 1 < size and 0 < data[pos + 1] < 0x80:  # two bytes, minimal
            length = (length & 0x7F) | (data[pos + 1] << 7)
            pos += 2
        else:
            try:
                length, pos = read_varint(data, pos, size, "batch item length")
            except DecodeError:
                return None
        end = pos + length
        if not length or end > size:
            return None
        item = decode_v2(data[pos:end], limits, True)
        if item is None:
            return None
        items.append(item)
        pos = end
    batch: Batch = _new(Batch)
    _set_messages(batch, tuple(items))
    return batch


def _cached_args(limits: Limits) -> tuple[Limits | None, dict[str, Any], int]:
    """``(limits, msgpack's arguments that enforce them, the small-body size)``."""
    cached = _last_args
    if cached[0] is not limits:
        _unpack_args(limits)
        cached = _last_args
    return cached


def _msgpack_payload(cls: type[Payload], body: bytes, limits: Limits) -> Payload | None:
    """``cls`` from its msgpack body (:func:`decode_v2`'s reading, also the C path's).

    A body of at most the small-body size cannot break the limits (no string, bin
    or array is longer than the input, no map has more entries than half of it)
    and msgpack's other defaults (str, strict keys) are ours, so it is unpacked
    without arguments; lists instead of tuples only matter to values the decoders
    refuse anyway.
    """
    cached = _cached_args(limits)
    try:
        obj = _unpackb(body) if len(body) <= cached[2] else _unpackb(body, **cached[1])
    except ValueError:
        return None
    if type(obj) is not dict:
        return None
    return _DECODERS[cls](obj)


def small_body(limits: Limits) -> int:
    """The size up to which a msgpack body cannot break ``limits`` (see decode_v2)."""
    return _cached_args(limits)[2]


#: the compiled field kinds, as the C decoder numbers them
_C_KINDS = {Kind.UINT: 0, Kind.STR: 1, Kind.BYTES: 2, Kind.BOOL: 3}


def _c_specs() -> dict[type, tuple[tuple[bytes, int, bool, Any, Any], ...]]:
    """Per compiled class, each field as ``(name, kind, optional, default, slot)``."""
    specs = {}
    for cls in _DECODERS:
        declared = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        specs[cls] = tuple(
            (name.encode(), _C_KINDS[fspec.kind], fspec.optional,
             None if declared[name].default is dataclasses.MISSING else declared[name].default,
             vars(cls)[name])
            for name, fspec in payload_fields(cls)
        )
    return specs


def _c_decoder() -> Callable[[bytes, Limits, int, int], Message | None] | None:
    """``decode(data, limits, max_batch_items, small_body(limits))``: :func:`decode_v2`
    (not nested) in C (``codec/_fast.c``), or None when it was not built or
    ``WSP_PURE_PYTHON`` is set (see :mod:`..native`). Plain msgpack bodies are read
    in C too."""
    module = native.load("codec._fast")
    if module is None:
        return None
    slots = vars(Message)
    fast = module.FastDecoder(
        dict(_V2_CLASSES),
        _BATCH_BYTE,
        Message,
        tuple(slots[name] for name in ("payload", "sequence", "session_id", "timestamp",
                                       "flags")),
        _FLAGS_BY_HEAD,
        BinaryData,
        TextData,
        Batch,
        (vars(BinaryData)["data"], vars(TextData)["text"], vars(Batch)["messages"]),
        _msgpack_payload,
        _c_specs(),
    )
    return fast.decode


#: the C form of :func:`decode_v2` for whole messages, or None
c_decode_v2 = _c_decoder()
