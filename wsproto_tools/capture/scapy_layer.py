"""A scapy layer for the wsp header, built from the codec's declarative description.

Nothing happens at import: :func:`register` builds the layer classes from
:data:`~wsproto_tools.codec.schema.V1_HEADER` and
:data:`~wsproto_tools.codec.schema.V2_HEADER` (one scapy field per header field,
chosen by its ``wire`` kind), registers them with scapy (creating a ``Packet``
subclass does that) and returns them. The payload after the header is a
``Raw`` layer (msgpack, text, bytes, or DEFLATE/AEAD data per the flags)::

    layers = register()
    pkt = layers.v2(wire_bytes)      # dissect
    pkt.show()
    bytes(layers.from_message(msg, version=2)) == codec.encode(msg, version=2)
"""

from __future__ import annotations

__all__ = ["WspLayers", "register"]

import functools
from dataclasses import dataclass
from typing import Any

from wsproto_tools.codec import Message, encode
from wsproto_tools.codec.schema import (
    V1_HEADER,
    V2_HAS_SESSION,
    V2_HAS_TIMESTAMP,
    V2_HEADER,
    V2_MARKER,
    HeaderField,
    v2_type_byte,
)

#: Header fields of v2 that are present only when a head bit is set.
_V2_CONDITIONAL = {"session_id": V2_HAS_SESSION, "timestamp": V2_HAS_TIMESTAMP}


@dataclass(frozen=True)
class WspLayers:
    """The scapy layer classes: ``v1``, ``v2`` and ``auto`` (picks by first byte)."""

    v1: Any
    v2: Any
    auto: Any

    def from_message(self, msg: Message, version: int = 2) -> Any:
        """The layer for a codec message: header built from its fields, Raw body.

        The body (msgpack, text, DEFLATE or AEAD data) is the codec's; the header
        bytes are the layer's own, so ``bytes(layer) == encode(msg)`` checks one
        description against the other.
        """
        from scapy.packet import Raw

        wire = encode(msg, version=version)
        flags = int(msg.flags)
        if version == 1:
            header = self.v1(
                flags=flags,
                msg_type=msg.type_code,
                session_id=msg.session_id,
                sequence=msg.sequence,
                timestamp=msg.timestamp,
                payload_len=len(wire) - 30,
            )
        else:
            head = V2_MARKER | flags
            fields: dict[str, Any] = {"type": msg.type_code, "sequence": msg.sequence}
            if msg.session_id:
                head |= V2_HAS_SESSION
                fields["session_id"] = msg.session_id
            if msg.timestamp:
                head |= V2_HAS_TIMESTAMP
                fields["timestamp"] = msg.timestamp
            header = self.v2(head=head, **fields)
        body = wire[len(bytes(header)) :]
        return header / Raw(body) if body else header


def _varint_field() -> type:
    from scapy.fields import Field

    class VarintField(Field):
        """Unsigned LEB128 (the v2 header's varints)."""

        def __init__(self, name: str, default: int | None) -> None:
            Field.__init__(self, name, default, fmt="B")

        def addfield(self, pkt: Any, s: bytes, val: int | None) -> bytes:
            value = 0 if val is None else int(val)
            out = bytearray()
            while True:
                byte = value & 0x7F
                value >>= 7
                if value:
                    out.append(byte | 0x80)
                else:
                    out.append(byte)
                    return s + bytes(out)

        def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, int]:
            value = shift = 0
            for i, byte in enumerate(s[:10]):
                value |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    return s[i + 1 :], value
            raise ValueError("unterminated varint")

        def i2len(self, pkt: Any, x: Any) -> int:
            return len(self.addfield(pkt, b"", x))

    return VarintField


def _type_field() -> type:
    from scapy.fields import Field

    class WspTypeField(Field):
        """v2 message type: one byte ``cc nnnnnn``, or 0xC0 then the code as u16le."""

        def __init__(self, name: str, default: int) -> None:
            Field.__init__(self, name, default, fmt="H")

        def addfield(self, pkt: Any, s: bytes, val: int | None) -> bytes:
            code = int(val or 0)
            one = v2_type_byte(code)
            if one is not None:
                return s + bytes((one,))
            return s + b"\xc0" + code.to_bytes(2, "little")

        def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, int]:
            first = s[0]
            if first == 0xC0:
                return s[3:], int.from_bytes(s[1:3], "little")
            return s[1:], ((first >> 6) << 8) | (first & 0x3F)

        def i2repr(self, pkt: Any, x: Any) -> str:
            return f"0x{int(x or 0):04X}"

    return WspTypeField


def _head_has(bit: int) -> Any:
    def present(pkt: Any) -> bool:
        return bool((pkt.head or 0) & bit)

    return present


def _fixed(field: HeaderField) -> Any:
    from scapy.fields import ByteField, LEIntField, LELongField, LEShortField

    defaults = {"magic": 0xC0D1, "version": 1}
    kinds = {"u8": ByteField, "u16le": LEShortField, "u32le": LEIntField, "u64le": LELongField}
    cls = kinds.get(field.wire)
    if cls is None:
        raise ValueError(f"no scapy field for wire kind {field.wire!r}")
    default = None if field.name == "payload_len" else defaults.get(field.name, 0)
    return cls(field.name, default)


@functools.cache
def register() -> WspLayers:
    """Build and register the wsp layers with scapy (once); see the module docstring."""
    from scapy.fields import ConditionalField
    from scapy.packet import Packet

    varint = _varint_field()
    wsp_type = _type_field()

    v1_fields = [_fixed(f) for f in V1_HEADER]

    def v1_post_build(self: Any, pkt: bytes, pay: bytes) -> bytes:
        if self.payload_len is None:
            pkt = pkt[:-4] + len(pay).to_bytes(4, "little")
        return pkt + pay

    v1 = type(
        "WspV1",
        (Packet,),
        {
            "name": "wsp v1 header",
            "fields_desc": v1_fields,
            "post_build": v1_post_build,
            "__doc__": "wsp v1: 30 bytes, little-endian (built from codec V1_HEADER).",
        },
    )

    v2_fields: list[Any] = []
    for field in V2_HEADER:
        if field.wire == "u8":
            from scapy.fields import ByteField

            v2_fields.append(ByteField(field.name, V2_MARKER))
        elif field.wire == "type":
            v2_fields.append(wsp_type(field.name, 0))
        elif field.wire == "varint":
            made = varint(field.name, 0)
            bit = _V2_CONDITIONAL.get(field.name)
            if bit is not None:
                made = ConditionalField(made, _head_has(bit))
            v2_fields.append(made)
        else:
            raise ValueError(f"no scapy field for wire kind {field.wire!r}")
    v2 = type(
        "WspV2",
        (Packet,),
        {
            "name": "wsp v2 header",
            "fields_desc": v2_fields,
            "__doc__": "wsp v2: compact header (built from codec V2_HEADER).",
        },
    )

    class Wsp(Packet):
        """Either version, chosen by the first byte (``D1`` is v1)."""

        name = "wsp"

        @classmethod
        def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> Any:
            if _pkt and _pkt[:1] == b"\xd1":
                return v1
            return v2

    return WspLayers(v1, v2, Wsp)
