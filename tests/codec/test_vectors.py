"""Golden vectors written by hand (tests/vectors/messages.json): decode, re-encode exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools import exceptions
from wsproto_tools.codec import Cipher, decode, detect_version, encode
from wsproto_tools.codec.jsonform import message_from_json, message_to_json

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "messages.json").read_text("utf-8")
)


def _bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex("".join(vector["hex"]))


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_decodes_and_reencodes_exactly(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    assert detect_version(wire) == vector["version"]
    msg = decode(wire)
    assert message_to_json(msg) == vector["message"]
    assert msg == message_from_json(vector["message"])
    assert encode(msg, version=vector["version"]) == wire
    assert decode(wire, version=vector["version"]) == msg


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_raises_the_documented_error(vector: dict[str, Any]) -> None:
    wire = _bytes(vector)
    cipher = Cipher(bytes.fromhex(vector["key"])) if "key" in vector else None
    expected = getattr(exceptions, vector["error"])
    with pytest.raises(expected) as info:
        decode(wire, version=vector.get("version"), cipher=cipher)
    error = info.value
    assert isinstance(error, exceptions.DecodeError)
    assert error.offset == vector["offset"], str(error)
    assert f"offset {vector['offset']}" in str(error)
    if "close_code" in vector:
        assert error.close_code == vector["close_code"]
    if "says" in vector:
        assert vector["says"].lower() in str(error).lower()


def test_v2_first_byte_is_never_v1_magic() -> None:
    for vector in VECTORS["valid"]:
        if vector["version"] == 2:
            assert _bytes(vector)[0] != 0xD1
            assert 0x40 <= _bytes(vector)[0] <= 0x7F


def test_v2_binary_header_is_at_most_4_bytes_up_to_sequence_16383() -> None:
    from wsproto_tools.codec import BinaryData, Message

    for sequence in (0, 1, 127, 128, 16383):
        assert len(encode(Message(BinaryData(b""), sequence=sequence))) <= 4
    assert len(encode(Message(BinaryData(b""), sequence=16384))) == 5
