"""The scapy layer is built from the codec's description and matches its encoding."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wsproto_tools import codec
from wsproto_tools.capture.scapy_layer import register

MESSAGES = [
    codec.Message(codec.TextData("hello"), sequence=1),
    codec.Message(codec.BinaryData(b"\x00\x01" * 40), sequence=300, session_id=77,
                  timestamp=1_700_000_000_123_456, flags=codec.Flags.ACK_REQUESTED),
    codec.Message(codec.Subscribe(topic="prices"), sequence=0, session_id=2**40),
    codec.Message(codec.Acknowledge(sequence=5), sequence=0),
    codec.Message(codec.TextData("zip " * 30), sequence=9, flags=codec.Flags.COMPRESSED),
]


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.type_name)
def test_layer_bytes_equal_codec_encoding(msg: codec.Message, version: int) -> None:
    layers = register()
    wire = codec.encode(msg, version=version)
    assert bytes(layers.from_message(msg, version)) == wire
    dissected = layers.auto(wire)
    assert type(dissected) is (layers.v1 if version == 1 else layers.v2)
    assert dissected.sequence == msg.sequence
    if version == 1:
        assert dissected.msg_type == msg.type_code
        assert dissected.session_id == msg.session_id
        assert dissected.timestamp == msg.timestamp
        assert dissected.payload_len == len(wire) - 30
    else:
        assert dissected.type == msg.type_code
        assert (dissected.session_id or 0) == msg.session_id
        assert (dissected.timestamp or 0) == msg.timestamp
    assert bytes(dissected) == wire


def test_v1_layer_built_by_hand_fills_the_length() -> None:
    from scapy.packet import Raw

    layers = register()
    built = layers.v1(msg_type=0x0102, sequence=3) / Raw(b"abc")
    assert codec.decode(bytes(built)) == codec.Message(codec.BinaryData(b"abc"), sequence=3)


def test_importing_registers_nothing() -> None:
    code = (
        "import wsproto_tools.capture.scapy_layer\n"
        "from scapy.config import conf\n"
        "print(any(getattr(l, '__name__', '') == 'WspV1' for l in conf.layers))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
