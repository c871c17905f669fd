"""The declarative description is complete and consistent."""

from __future__ import annotations

import dataclasses

from wsproto_tools.codec import PAYLOAD_CLASSES, TYPES, Category, MessageType
from wsproto_tools.codec.schema import (
    V1_HEADER,
    V1_HEADER_SIZE,
    V1_STRUCT,
    PayloadKind,
    payload_fields,
    v2_type_byte,
)


def test_every_payload_field_is_declared() -> None:
    for cls in PAYLOAD_CLASSES:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        assert fields, cls
        declared = dict(payload_fields(cls))
        for field in fields:
            assert field.name in declared, f"{cls.__name__}.{field.name} has no spec()"
            has_default = (field.default is not dataclasses.MISSING
                           or field.default_factory is not dataclasses.MISSING)
            assert declared[field.name].optional == has_default, (cls, field.name)


def test_types_table_matches_the_enum_and_ranges() -> None:
    assert sorted(TYPES) == sorted(int(t) for t in MessageType)
    assert len({spec.name for spec in TYPES.values()}) == len(TYPES)
    for code, spec in TYPES.items():
        assert spec.category is Category(code >> 8)
        assert v2_type_byte(code) is not None, "every defined type has a one-byte v2 form"
    named = {"Handshake": 0x0001, "HandshakeResponse": 0x0002, "Heartbeat": 0x0003,
             "Close": 0x0004, "TextData": 0x0101, "BinaryData": 0x0102,
             "DeltaUpdate": 0x0103, "Subscribe": 0x0201, "Unsubscribe": 0x0202,
             "Acknowledge": 0x0203}
    for name, code in named.items():
        assert TYPES[code].name == name
    assert TYPES[0x0101].kind is PayloadKind.TEXT and TYPES[0x0102].kind is PayloadKind.BINARY


def test_v1_layout_description_matches_the_struct() -> None:
    import struct

    assert struct.calcsize(V1_STRUCT) == V1_HEADER_SIZE == 30
    assert sum(int(field.size) for field in V1_HEADER) == 30
    assert [field.name for field in V1_HEADER] == [
        "magic", "version", "flags", "msg_type", "session_id", "sequence", "timestamp",
        "payload_len",
    ]
