"""Compiled encoders and decoders for the plain msgpack payloads.

A session's hot messages (Request, Response, Publish, Deliver, Acknowledge,
Subscribed...) are msgpack maps of plain fields (uint, str, bin, bool). For each
payload class whose fields are all plain, this module compiles, from the field
declarations in :mod:`.schema` (the one description of the wire format; nothing
here names a field by hand), an encoder and a decoder that skip the general
per-field machinery of :mod:`.payloads`:

* :func:`encode_body` -- the msgpack map of a payload, the same bytes as
  ``payloads.encode_fields``;
* :func:`values_encoder` -- the same map from the field values;
* :func:`decode_body` -- a payload from its msgpack map, the same object as
  ``payloads.decode_fields``, built without the dataclass ``__init__``;
* :func:`compiled_decoder` -- ``codec.decode`` in C (``codec/_fast.c``), which
  reads these classes' maps itself.

Each returns ``None`` for anything out of the ordinary (a value of another type,
a non-ASCII string, a key the class does not know, malformed msgpack...): the
general path then gives the same result or reports the problem.
``tests/codec/test_fastpath.py`` checks that both paths agree. Headers are
:mod:`.header`'s. The public API is :mod:`wsproto_tools.codec`'s.
"""

from __future__ import annotations

__all__ = [
    "compiled_decoder",
    "decode_body",
    "encode_body",
    "small_body",
    "values_encoder",
]

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgpack

from wsproto_tools.codec.header import type_bytes
from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import (
    PAYLOAD_CLASSES,
    Batch,
    BinaryData,
    Flags,
    Kind,
    Message,
    Payload,
    PayloadKind,
    TextData,
    dataclass_fields,
    payload_fields,
)

_U64 = (1 << 64) - 1

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
    declared = dataclass_fields(cls)
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


_ENCODERS: dict[type[Payload], Callable[[Any], bytes | None]] = {}
_VALUES: dict[type[Payload], Callable[..., bytes | None]] = {}
_DECODERS: dict[type[Payload], Callable[[dict[str, Any]], Payload | None]] = {}
for _cls in PAYLOAD_CLASSES:
    if _cls.KIND is not PayloadKind.MSGPACK:
        continue
    _forms = _compile(_cls)
    if _forms is None:
        continue
    _ENCODERS[_cls], _VALUES[_cls], _DECODERS[_cls] = _forms
del _cls, _forms


def values_encoder(cls: type[Payload]) -> Callable[..., bytes | None] | None:
    """``values(*field_values)``: the msgpack map of ``cls(*field_values)`` (every
    field given, in order) or None from it for the general path; None when ``cls``
    has no compiled form."""
    return _VALUES.get(cls)


def encode_body(payload: Payload) -> bytes | None:
    """The msgpack map of ``payload`` by its compiled form, or None (general path)."""
    encoder = _ENCODERS.get(type(payload))
    return None if encoder is None else encoder(payload)


#: id(Limits) -> (the Limits, the keyword arguments of ``msgpack.unpackb`` that
#: enforce them, the small-body size); by identity, as hashing a Limits costs
#: more than the lookup saves.
_UNPACK_ARGS: dict[int, tuple[Limits, dict[str, Any], int]] = {}
#: the entry used last (a session decodes with one Limits)
_last_args: tuple[Limits | None, dict[str, Any], int] = (None, {}, -1)


def _cached_args(limits: Limits) -> tuple[Limits | None, dict[str, Any], int]:
    """``(limits, msgpack's arguments that enforce them, the small-body size)``."""
    global _last_args
    cached = _last_args
    if cached[0] is limits:
        return cached
    found = _UNPACK_ARGS.get(id(limits))
    if found is None or found[0] is not limits:
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
        small = min(limits.max_str_len, limits.max_bin_len, limits.max_array_len,
                    2 * limits.max_map_len)
        if len(_UNPACK_ARGS) >= 64:
            _UNPACK_ARGS.clear()
        found = _UNPACK_ARGS[id(limits)] = (limits, args, small)
    _last_args = found
    return found


def small_body(limits: Limits) -> int:
    """The size up to which a msgpack body cannot break ``limits``: no string, bin
    or array is longer than the input, no map has more entries than half of it."""
    return _cached_args(limits)[2]


def decode_body(cls: type[Payload], data: bytes, limits: Limits) -> Payload | None:
    """``cls`` from its msgpack map by the compiled form, or None (general path).

    A body of at most :func:`small_body` bytes is unpacked without explicit
    bounds (msgpack's other defaults, str and strict keys, are ours; lists
    instead of tuples only matter to values the decoders refuse anyway).
    """
    decoder = _DECODERS.get(cls)
    if decoder is None:
        return None
    cached = _cached_args(limits)
    try:
        obj = _unpackb(data) if len(data) <= cached[2] else _unpackb(data, **cached[1])
    except ValueError:  # msgpack's errors (and bad UTF-8): the general path reports
        return None
    if type(obj) is not dict:
        return None
    return decoder(obj)


#: the compiled field kinds, as the C decoder numbers them
_C_KINDS = {Kind.UINT: 0, Kind.STR: 1, Kind.BYTES: 2, Kind.BOOL: 3}


def _c_specs() -> dict[type, tuple[tuple[bytes, int, bool, Any, Any], ...]]:
    """Per compiled class, each field as ``(name, kind, optional, default, slot)``."""
    specs = {}
    for cls in _DECODERS:
        declared = {f.name: f for f in dataclass_fields(cls)}
        specs[cls] = tuple(
            (name.encode(), _C_KINDS[fspec.kind], fspec.optional,
             None if declared[name].default is dataclasses.MISSING else declared[name].default,
             vars(cls)[name])
            for name, fspec in payload_fields(cls)
        )
    return specs


def compiled_decoder(module: ModuleType, fallback: Callable[..., Message],
                     default_limits: Limits) -> Callable[..., Message]:
    """``decode(data, *, version=None, limits=default_limits, cipher=None)`` in C
    (``module`` is ``codec._fast``): the common v2 messages are read there, every
    other call goes to ``fallback`` (the Python decode) as it was made."""
    classes: dict[int, type[Payload]] = {}
    read: tuple[type[Payload], ...] = (*_DECODERS, BinaryData, TextData)
    for cls in read:
        one = type_bytes(cls.TYPE)
        if len(one) == 1:
            classes[one[0]] = cls
    slots = vars(Message)
    fast = module.FastDecoder(
        classes,
        type_bytes(Batch.TYPE)[0],
        Message,
        tuple(slots[name] for name in ("payload", "sequence", "session_id", "timestamp",
                                       "flags")),
        (Flags.NONE, Flags.ACK_REQUESTED),
        BinaryData,
        TextData,
        Batch,
        (vars(BinaryData)["data"], vars(TextData)["text"], vars(Batch)["messages"]),
        decode_body,
        _c_specs(),
        fallback,
        default_limits,
        small_body,
    )
    decode: Callable[..., Message] = fast.decode
    return decode
