"""msgpack payloads, driven by the field declarations in :mod:`.schema`.

A structured payload is a msgpack map from field name (str) to value, written in
declaration order; optional fields whose value is ``None`` are left out. Keys a
decoder does not know are ignored (that is how payloads grow).
"""

from __future__ import annotations

__all__ = ["decode_fields", "encode_fields"]

import dataclasses
from typing import Any

import msgpack

from wsproto_tools.codec.fastpath import decode_body, encode_body
from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import (
    DeltaCopy,
    FieldSpec,
    Kind,
    Payload,
    dataclass_fields,
    payload_fields,
)
from wsproto_tools.exceptions import CloseCode, DecodeError, LimitExceeded, LocalProtocolError

_U64 = (1 << 64) - 1
_I64_MIN = -(1 << 63)

_UINT = Kind.UINT
_STR = Kind.STR
_BYTES = Kind.BYTES

_FIELDS: dict[type[Payload], tuple[tuple[str, FieldSpec], ...]] = {}


def _fields(cls: type[Payload]) -> tuple[tuple[str, FieldSpec], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = payload_fields(cls)
    return found


# ------------------------------------------------------------------------ encode


def _wire_value(kind: Kind, value: Any, where: str) -> Any:
    """Check one field value for encoding and return what msgpack should pack."""
    vtype = type(value)
    if vtype is int and kind is Kind.UINT and 0 <= value <= _U64:
        return value
    if (vtype is bytes and kind is Kind.BYTES) or (vtype is bool and kind is Kind.BOOL):
        return value
    if kind is Kind.UINT:
        if type(value) is not int or not 0 <= value <= _U64:
            raise LocalProtocolError(f"{where}: expected an int in 0..2^64-1, got {value!r}")
        return value
    if kind is Kind.INT:
        if type(value) is not int or not _I64_MIN <= value <= _U64:
            raise LocalProtocolError(f"{where}: expected a 64-bit int, got {value!r}")
        return value
    if kind is Kind.BOOL:
        if type(value) is not bool:
            raise LocalProtocolError(f"{where}: expected a bool, got {value!r}")
        return value
    if kind is Kind.STR:
        if type(value) is not str:
            raise LocalProtocolError(f"{where}: expected a str, got {value!r}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise LocalProtocolError(f"{where}: not encodable as UTF-8 ({error.reason})") from None
        return value
    if kind is Kind.BYTES:
        if type(value) is not bytes:
            raise LocalProtocolError(f"{where}: expected bytes, got {type(value).__name__}")
        return value
    if kind is Kind.STR_LIST:
        if type(value) is not tuple:
            raise LocalProtocolError(f"{where}: expected a tuple of str")
        return [_wire_value(Kind.STR, item, where) for item in value]
    if kind is Kind.STR_UINT_MAP:
        if type(value) is not tuple:
            raise LocalProtocolError(f"{where}: expected a tuple of (str, int) pairs")
        out: dict[str, int] = {}
        for pair in value:
            if type(pair) is not tuple or len(pair) != 2:
                raise LocalProtocolError(f"{where}: expected (str, int) pairs")
            key = _wire_value(Kind.STR, pair[0], where)
            if key in out:
                raise LocalProtocolError(f"{where}: duplicate key {key!r}")
            out[key] = _wire_value(Kind.UINT, pair[1], where)
        return out
    if kind is Kind.DELTA_OPS:
        if type(value) is not tuple:
            raise LocalProtocolError(f"{where}: expected a tuple of delta ops")
        ops: list[Any] = []
        for op in value:
            if type(op) is bytes:
                ops.append(op)
            elif isinstance(op, DeltaCopy):
                ops.append([_wire_value(Kind.UINT, op.offset, where),
                            _wire_value(Kind.UINT, op.length, where)])
            else:
                raise LocalProtocolError(f"{where}: a delta op is DeltaCopy or bytes")
        return ops
    # Kind.VALUE
    _check_value(value, where, 1)
    return value


def _check_value(value: Any, where: str, depth: int) -> None:
    kind = type(value)
    if value is None or kind in (bool, float, bytes):
        return
    if kind is int:
        if not _I64_MIN <= value <= _U64:
            raise LocalProtocolError(f"{where}: int out of the 64-bit range")
        return
    if kind is str:
        _wire_value(Kind.STR, value, where)
        return
    if kind is tuple:
        for item in value:
            _check_value(item, where, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise LocalProtocolError(f"{where}: map keys must be str")
            _check_value(item, where, depth + 1)
        return
    raise LocalProtocolError(
        f"{where}: {kind.__name__} is not a msgpack value (use None, bool, int, float, "
        "str, bytes, tuple or dict)"
    )


def encode_fields(payload: Payload) -> bytes:
    """The msgpack map for a structured payload."""
    fast = encode_body(payload)  # plain fields, compiled (codec/fastpath.py)
    if fast is not None:
        return fast
    cls = type(payload)
    out: dict[str, Any] = {}
    for name, fspec in _fields(cls):
        value = getattr(payload, name)
        if value is None:
            if fspec.optional:
                continue
            raise LocalProtocolError(f"{cls.__name__}.{name} is required")
        kind = fspec.kind
        vtype = type(value)
        if ((vtype is int and kind is _UINT and 0 <= value <= _U64)
                or (vtype is str and kind is _STR and value.isascii())
                or (vtype is bytes and kind is _BYTES)):
            out[name] = value  # the common kinds, already valid
        else:
            out[name] = _wire_value(kind, value, f"{cls.__name__}.{name}")
    packed: bytes = msgpack.packb(out, use_bin_type=True)
    return packed


# ------------------------------------------------------------------------ decode


def _ext_hook(code: int, data: bytes) -> msgpack.ExtType:
    return msgpack.ExtType(code, data)


def _bad(message: str, offset: int) -> DecodeError:
    return DecodeError(message, offset=offset, close_code=CloseCode.INVALID_DATA)


def _field_value(kind: Kind, value: Any, where: str, offset: int, limits: Limits) -> Any:
    """Check one decoded field value against its kind and return the Python value."""
    vtype = type(value)
    if kind is Kind.UINT:
        if vtype is not int or value < 0:
            raise _bad(f"{where}: expected an unsigned int, got {_name(value)}", offset)
        return value
    if kind is Kind.INT:
        if vtype is not int:
            raise _bad(f"{where}: expected an int, got {_name(value)}", offset)
        return value
    if kind is Kind.BOOL:
        if vtype is not bool:
            raise _bad(f"{where}: expected a bool, got {_name(value)}", offset)
        return value
    if kind is Kind.STR:
        if vtype is not str:
            raise _bad(f"{where}: expected a str, got {_name(value)}", offset)
        return value
    if kind is Kind.BYTES:
        if vtype is not bytes:
            raise _bad(f"{where}: expected bin, got {_name(value)}", offset)
        return value
    if kind is Kind.STR_LIST:
        if vtype is not tuple:
            raise _bad(f"{where}: expected an array of str, got {_name(value)}", offset)
        for item in value:
            if type(item) is not str:
                raise _bad(f"{where}: expected an array of str, found {_name(item)}", offset)
        return value
    if kind is Kind.STR_UINT_MAP:
        if vtype is not dict:
            raise _bad(f"{where}: expected a map, got {_name(value)}", offset)
        for key, item in value.items():
            if type(key) is not str or type(item) is not int or item < 0:
                raise _bad(f"{where}: expected a map of str -> unsigned int", offset)
        return tuple(value.items())
    if kind is Kind.DELTA_OPS:
        if vtype is not tuple:
            raise _bad(f"{where}: expected an array of delta ops, got {_name(value)}", offset)
        ops: list[DeltaCopy | bytes] = []
        for op in value:
            if type(op) is bytes:
                ops.append(op)
            elif (type(op) is tuple and len(op) == 2 and type(op[0]) is int
                  and type(op[1]) is int and op[0] >= 0 and op[1] >= 0):
                ops.append(DeltaCopy(op[0], op[1]))
            else:
                raise _bad(f"{where}: a delta op is [offset, length] or bin", offset)
        return tuple(ops)
    # Kind.VALUE
    _check_decoded(value, where, offset, limits, 2)
    return value


def _check_decoded(value: Any, where: str, offset: int, limits: Limits, depth: int) -> None:
    vtype = type(value)
    if vtype is tuple or vtype is dict:
        if depth > limits.max_depth:
            raise LimitExceeded(
                f"{where}: nesting deeper than {limits.max_depth} levels", offset=offset
            )
        items = value if vtype is tuple else value.values()
        for item in items:
            _check_decoded(item, where, offset, limits, depth + 1)
    elif vtype is msgpack.ExtType or vtype is msgpack.Timestamp:
        raise _bad(f"{where}: msgpack extension types are not allowed", offset)


def _name(value: Any) -> str:
    return {
        type(None): "nil", bool: "bool", int: "int", float: "float", str: "str",
        bytes: "bin", tuple: "array", dict: "map",
    }.get(type(value), "extension")


#: msgpack uint markers (0xCC u8, 0xCD u16, 0xCE u32, 0xCF u64) -> value size in bytes.
_UINT_SIZES = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_new = object.__new__


class _OneUint:
    """The fast form of a payload whose only required field is a uint and whose
    other fields have plain defaults: ``{name: uint}`` is decoded without msgpack
    (Acknowledge ``{"sequence": n}``, WindowUpdate, Close and Error with a code)."""

    __slots__ = ("defaults", "prefix", "setter")

    def __init__(self, cls: type[Payload]) -> None:
        fields = dataclass_fields(cls)
        name = fields[0].name
        self.prefix = b"\x81" + msgpack.packb(name)
        self.setter = vars(cls)[name].__set__
        self.defaults = tuple((vars(cls)[f.name].__set__, f.default) for f in fields[1:])


def _one_uint(cls: type[Payload]) -> _OneUint | None:
    fields = _fields(cls)
    if (not fields or fields[0][1].kind is not _UINT or fields[0][1].optional
            or any(not f.optional for _, f in fields[1:])
            or len(fields) != len(dataclass_fields(cls))
            or any(f.default is dataclasses.MISSING for f in dataclass_fields(cls)[1:])):
        return None
    return _OneUint(cls)


_ONE_UINT: dict[type[Payload], _OneUint | None] = {}


def decode_fields(
    cls: type[Payload], data: bytes, offset: int, limits: Limits
) -> Payload:
    """Decode a structured payload of type ``cls``; ``offset`` is its place in the message."""
    try:
        form = _ONE_UINT[cls]
    except KeyError:
        form = _ONE_UINT[cls] = _one_uint(cls)
    if form is not None and data.startswith(form.prefix):
        # {name: uint}, read without msgpack when the limits allow what msgpack would
        pos = len(form.prefix)
        size = len(data) - pos
        if size == 1:
            number = data[pos] if data[pos] < 0x80 else -1
        elif size > 1 and _UINT_SIZES.get(data[pos]) == size - 1:
            number = int.from_bytes(data[pos + 1 :], "big")
        else:
            number = -1
        if number >= 0 and limits.max_map_len >= 1 and pos - 2 <= limits.max_str_len:
            payload = _new(cls)
            form.setter(payload, number)
            for setter, default in form.defaults:
                setter(payload, default)
            return payload
    fast = decode_body(cls, data, limits)  # plain fields, compiled (codec/fastpath.py)
    if fast is not None:
        return fast
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            ext_hook=_ext_hook,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_bin_len,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=limits.max_bin_len,
        )
    except UnicodeDecodeError as error:
        raise _bad(f"{cls.__name__}: invalid UTF-8 in a msgpack str ({error.reason})",
                   offset) from None
    except msgpack.StackError:
        raise LimitExceeded(
            f"{cls.__name__}: msgpack nesting deeper than the unpacker's stack (and than "
            f"max_depth {limits.max_depth})", offset=offset
        ) from None
    except ValueError as error:
        # msgpack's documented failure class: malformed, truncated, trailing data,
        # a length over max_*_len, or a non-str map key.
        text = str(error)
        if "exceeds max_" in text:
            raise LimitExceeded(f"{cls.__name__}: msgpack {text}", offset=offset) from None
        raise _bad(f"{cls.__name__}: bad msgpack payload ({text or type(error).__name__})",
                   offset) from None
    if type(obj) is not dict:
        raise _bad(f"{cls.__name__}: payload must be a msgpack map, got {_name(obj)}", offset)
    kwargs: dict[str, Any] = {}
    for name, fspec in _fields(cls):
        value = obj.get(name)
        if value is not None:
            kind = fspec.kind
            vtype = type(value)
            if ((vtype is int and kind is _UINT and value >= 0)
                    or (vtype is str and kind is _STR) or (vtype is bytes and kind is _BYTES)):
                kwargs[name] = value
            else:
                kwargs[name] = _field_value(kind, value, f"{cls.__name__}.{name}", offset,
                                            limits)
        elif not fspec.optional:
            raise _bad(f"{cls.__name__}: required field '{name}' is missing", offset)
    if len(obj) > len(kwargs):
        # Keys this version does not know are ignored, but still bounded.
        fields = dict(_fields(cls))
        for key, value in obj.items():
            if key not in fields:
                _check_decoded(value, f"{cls.__name__}.{key}", offset, limits, 2)
    return cls(**kwargs)
