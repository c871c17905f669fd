"""The JSON form of messages, driven by the schema (used by ``wsp msg`` and the tools).

A message is ``{"type", "type_code", "flags", "sequence", "session_id",
"timestamp", "payload"}``. Payload fields keep their schema names; bytes are hex
strings; TextData is ``{"text"}``, BinaryData, Unknown and Sealed ``{"hex"}``
(Sealed adds ``"encrypted": true``); DeltaUpdate ops are ``[offset, length]`` or
a hex string; a Batch is ``{"messages": [message, ...]}``.
"""

from __future__ import annotations

__all__ = ["message_from_json", "message_to_json", "payload_from_json", "payload_to_json"]

import math
from typing import Any

from wsproto_tools.codec.schema import (
    TYPES,
    Batch,
    BinaryData,
    DeltaCopy,
    Flags,
    Kind,
    Message,
    Payload,
    PayloadKind,
    Sealed,
    TextData,
    Unknown,
    payload_fields,
)
from wsproto_tools.exceptions import LocalProtocolError

# ------------------------------------------------------------------------ to JSON


def _value_to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_value_to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _value_to_json(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _field_to_json(kind: Kind, value: Any) -> Any:
    if kind is Kind.STR_UINT_MAP:
        return dict(value)
    if kind is Kind.DELTA_OPS:
        return [op.hex() if isinstance(op, bytes) else [op.offset, op.length] for op in value]
    return _value_to_json(value)


def payload_to_json(payload: Payload) -> dict[str, Any]:
    """A JSON-ready dict of a payload's fields."""
    ptype = type(payload)
    if type(payload) is TextData:
        return {"text": payload.text}
    if type(payload) is BinaryData or type(payload) is Unknown:
        return {"hex": payload.data.hex()}
    if type(payload) is Sealed:
        return {"encrypted": True, "hex": payload.data.hex()}
    if type(payload) is Batch:
        return {"messages": [message_to_json(m) for m in payload.messages]}
    return {
        name: _field_to_json(fspec.kind, getattr(payload, name))
        for name, fspec in payload_fields(ptype)
        if getattr(payload, name) is not None
    }


def message_to_json(msg: Message, version: int | None = None) -> dict[str, Any]:
    """A JSON-ready dict of a message (``version`` included when given)."""
    out: dict[str, Any] = {}
    if version is not None:
        out["version"] = version
    code = msg.type_code
    spec = TYPES.get(code)
    out["type"] = spec.name if spec is not None else "Unknown"
    out["type_code"] = code
    out["flags"] = [flag.name for flag in Flags if flag and flag in msg.flags]
    out["sequence"] = msg.sequence
    out["session_id"] = msg.session_id
    out["timestamp"] = msg.timestamp
    out["payload"] = payload_to_json(msg.payload)
    return out


# ---------------------------------------------------------------------- from JSON


def _hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{where}: expected a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise LocalProtocolError(f"{where}: {value!r} is not valid hex") from None


def _uint(value: Any, where: str) -> int:
    if type(value) is not int or value < 0:
        raise LocalProtocolError(f"{where}: expected an unsigned integer, got {value!r}")
    return value


def _field_from_json(kind: Kind, value: Any, where: str) -> Any:
    if kind is Kind.BYTES:
        return _hex(value, where)
    if kind is Kind.UINT:
        return _uint(value, where)
    if kind is Kind.INT:
        if type(value) is not int:
            raise LocalProtocolError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is Kind.BOOL:
        if type(value) is not bool:
            raise LocalProtocolError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is Kind.STR:
        if type(value) is not str:
            raise LocalProtocolError(f"{where}: expected a string, got {value!r}")
        return value
    if kind is Kind.STR_LIST:
        if not isinstance(value, list) or not all(type(v) is str for v in value):
            raise LocalProtocolError(f"{where}: expected a list of strings")
        return tuple(value)
    if kind is Kind.STR_UINT_MAP:
        if not isinstance(value, dict):
            raise LocalProtocolError(f"{where}: expected an object of string -> integer")
        return tuple((str(k), _uint(v, where)) for k, v in value.items())
    if kind is Kind.DELTA_OPS:
        if not isinstance(value, list):
            raise LocalProtocolError(f"{where}: expected a list of ops")
        ops: list[DeltaCopy | bytes] = []
        for op in value:
            if isinstance(op, list) and len(op) == 2:
                ops.append(DeltaCopy(_uint(op[0], where), _uint(op[1], where)))
            else:
                ops.append(_hex(op, where))
        return tuple(ops)
    return _json_value(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_json_value(item) for item in value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def payload_from_json(cls: type[Payload], obj: Any) -> Payload:
    """Build a payload of class ``cls`` from its JSON form."""
    name = cls.__name__
    if not isinstance(obj, dict):
        raise LocalProtocolError(f"{name} payload must be a JSON object")
    if cls.KIND is PayloadKind.TEXT:
        return TextData(_field_from_json(Kind.STR, obj.get("text"), f"{name}.text"))
    if cls.KIND is PayloadKind.BINARY:
        return BinaryData(_hex(obj.get("hex", obj.get("data")), f"{name}.hex"))
    if cls.KIND is PayloadKind.BATCH:
        items = obj.get("messages")
        if not isinstance(items, list):
            raise LocalProtocolError("Batch payload needs \"messages\": [message, ...]")
        return Batch(tuple(message_from_json(item) for item in items))
    fields = dict(payload_fields(cls))
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise LocalProtocolError(f"{name} has no field {unknown[0]!r} (fields: "
                                 f"{', '.join(fields) or 'none'})")
    kwargs: dict[str, Any] = {}
    for key, fspec in fields.items():
        if key in obj and obj[key] is not None:
            kwargs[key] = _field_from_json(fspec.kind, obj[key], f"{name}.{key}")
        elif not fspec.optional:
            raise LocalProtocolError(f"{name} needs the field {key!r}")
    return cls(**kwargs)


def message_from_json(obj: Any) -> Message:
    """Build a message from its JSON form (``version`` and ``type_code`` are optional)."""
    if not isinstance(obj, dict):
        raise LocalProtocolError("a message must be a JSON object")
    type_name = obj.get("type")
    code = obj.get("type_code")
    spec = None
    if isinstance(type_name, str):
        spec = next((s for s in TYPES.values() if s.name.lower() == type_name.lower()), None)
    if spec is None and type(code) is int:
        spec = TYPES.get(code)
    flags = Flags.NONE
    for flag_name in obj.get("flags", []):
        try:
            flags |= Flags[str(flag_name).upper()]
        except KeyError:
            raise LocalProtocolError(f"unknown flag {flag_name!r}") from None
    payload_obj = obj.get("payload", {})
    payload: Payload
    if spec is not None:
        payload = payload_from_json(spec.cls, payload_obj)
    elif type(code) is int:
        data = _hex(payload_obj.get("hex", "") if isinstance(payload_obj, dict) else None,
                    "payload.hex")
        sealed = isinstance(payload_obj, dict) and payload_obj.get("encrypted") is True
        payload = Sealed(code, data) if sealed else Unknown(code, data)
    else:
        raise LocalProtocolError(f"unknown message type {type_name!r}")
    if (isinstance(payload_obj, dict) and payload_obj.get("encrypted") is True
            and spec is not None):
        payload = Sealed(spec.code, _hex(payload_obj.get("hex"), "payload.hex"))
    return Message(
        payload,
        sequence=_uint(obj.get("sequence", 0), "sequence"),
        session_id=_uint(obj.get("session_id", 0), "session_id"),
        timestamp=_uint(obj.get("timestamp", 0), "timestamp"),
        flags=flags,
    )
