"""Limits, transforms, delta updates and caller errors of the codec."""

from __future__ import annotations

import zlib

import pytest

from wsproto_tools.codec import (
    DEFAULT_LIMITS,
    Batch,
    BinaryData,
    ChannelStates,
    Cipher,
    Close,
    DeltaCopy,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    Limits,
    Message,
    MessageType,
    Resume,
    Sealed,
    Subscribe,
    TextData,
    Unknown,
    apply_delta,
    category_of,
    counter_nonces,
    decode,
    encode,
    make_delta,
    payload_type,
    subprotocol_version,
)
from wsproto_tools.codec.compression import compress
from wsproto_tools.codec.dictionary import DICTIONARY
from wsproto_tools.exceptions import (
    CloseCode,
    ConfigError,
    DecodeError,
    DecryptionFailed,
    DeltaBaseMissing,
    LimitExceeded,
    LocalProtocolError,
)

KEY = bytes(range(32))


# ------------------------------------------------------------------ limits


def test_message_size_limit() -> None:
    wire = encode(Message(BinaryData(bytes(100))))
    with pytest.raises(LimitExceeded) as info:
        decode(wire, limits=Limits(max_message=50))
    assert info.value.close_code == CloseCode.MESSAGE_TOO_BIG
    assert decode(wire, limits=Limits(max_message=len(wire))).payload == BinaryData(bytes(100))


def test_msgpack_string_limit() -> None:
    wire = encode(Message(Subscribe("x" * 100)))
    with pytest.raises(LimitExceeded, match="max_str_len"):
        decode(wire, limits=Limits(max_str_len=99))
    assert decode(wire, limits=Limits(max_str_len=100)) == Message(Subscribe("x" * 100))


def test_msgpack_array_and_map_limits() -> None:
    wire = encode(Message(Handshake(capabilities=("a", "b", "c"))))
    with pytest.raises(LimitExceeded):
        decode(wire, limits=Limits(max_array_len=2))
    resume = encode(Message(Resume(1, b"t", 0, (("a", 1), ("b", 2)))))
    with pytest.raises(LimitExceeded):
        decode(resume, limits=Limits(max_map_len=3))  # the payload map itself has 4 keys


def test_nesting_depth_limit() -> None:
    deep: object = 1
    for _ in range(6):
        deep = (deep,)
    wire = encode(Message(Error(1002, details=deep)))
    with pytest.raises(LimitExceeded, match="nesting"):
        decode(wire, limits=Limits(max_depth=6))
    assert decode(wire, limits=Limits(max_depth=7)).payload == Error(1002, details=deep)


def test_nesting_beyond_the_unpacker_stack_is_a_limit() -> None:
    wire = b"\x40\x04\x00" + b"\x91" * 3000 + b"\x00"
    with pytest.raises(LimitExceeded, match="nesting") as info:
        decode(wire)
    assert info.value.offset == 3


def test_decompression_bomb_is_bounded() -> None:
    wire = encode(Message(BinaryData(bytes(100_000)), flags=Flags.COMPRESSED))
    assert len(wire) < 1000
    with pytest.raises(LimitExceeded, match="inflates"):
        decode(wire, limits=Limits(max_decompressed=99_999))
    assert decode(wire).payload == BinaryData(bytes(100_000))


def test_batch_item_limit() -> None:
    batch = Message(Batch(tuple(Message(BinaryData(b"")) for _ in range(5))))
    wire = encode(batch)
    with pytest.raises(LimitExceeded, match="more than 4"):
        decode(wire, limits=Limits(max_batch_items=4))
    assert decode(wire, limits=Limits(max_batch_items=5)) == batch


def test_default_limits_are_explicit() -> None:
    assert DEFAULT_LIMITS.max_message == 1 << 20
    assert DEFAULT_LIMITS.max_depth == 8


# ------------------------------------------------------------------ compression


def test_compression_uses_the_preset_dictionary() -> None:
    text = '{"type":"event","data":{"id":"user","name":"message"}}'
    with_dict = compress(text.encode())
    plain = zlib.compressobj(6, zlib.DEFLATED, -15)
    without = plain.compress(text.encode()) + plain.flush()
    assert len(with_dict) < len(without)
    inflate = zlib.decompressobj(-15, zdict=DICTIONARY)
    assert inflate.decompress(with_dict) == text.encode()


def test_compressed_message_roundtrips_and_is_deterministic() -> None:
    msg = Message(TextData("hello hello hello hello"), sequence=3, flags=Flags.COMPRESSED)
    assert encode(msg) == encode(msg)
    assert decode(encode(msg)) == msg
    assert decode(encode(msg, version=1)) == msg


def test_trailing_bytes_after_deflate_stream() -> None:
    wire = encode(Message(BinaryData(b"abc"), flags=Flags.COMPRESSED)) + b"\x00"
    with pytest.raises(DecodeError, match="follow the end"):
        decode(wire)


# ------------------------------------------------------------------ encryption


def test_encryption_hides_the_payload_and_authenticates_the_header() -> None:
    msg = Message(TextData("secret text"), sequence=5, flags=Flags.ENCRYPTED)
    c = Cipher(KEY, counter_nonces(b"c2s\0"))
    wire = encode(msg, cipher=c)
    assert b"secret" not in wire
    assert decode(wire, cipher=Cipher(KEY)) == msg
    tampered = bytearray(wire)
    tampered[2] ^= 1  # the sequence number, part of the associated data
    with pytest.raises(DecryptionFailed) as info:
        decode(bytes(tampered), cipher=Cipher(KEY))
    assert info.value.close_code == CloseCode.INVALID_DATA
    with pytest.raises(DecryptionFailed):
        decode(wire, cipher=Cipher(bytes(32)))


def test_counter_nonces_are_deterministic_and_distinct() -> None:
    nonces = counter_nonces(b"s2c\0")
    first, second = nonces(), nonces()
    assert first == b"s2c\0" + bytes(8)
    assert second == b"s2c\0" + (1).to_bytes(8, "little")
    a = encode(Message(BinaryData(b"x"), flags=Flags.ENCRYPTED), cipher=Cipher(KEY, nonces))
    b = encode(Message(BinaryData(b"x"), flags=Flags.ENCRYPTED), cipher=Cipher(KEY, nonces))
    assert a != b


def test_encrypted_without_key_is_sealed() -> None:
    msg = Message(BinaryData(b"x"), flags=Flags.ENCRYPTED | Flags.COMPRESSED)
    wire = encode(msg, cipher=Cipher(KEY, counter_nonces()), version=1)
    seen = decode(wire)
    assert seen.payload == Sealed(MessageType.BINARY_DATA, wire[30:])
    assert seen.flags == msg.flags


def test_cipher_errors() -> None:
    with pytest.raises(ConfigError):
        Cipher(b"short")
    with pytest.raises(LocalProtocolError, match="nonce source"):
        encode(Message(BinaryData(b""), flags=Flags.ENCRYPTED), cipher=Cipher(KEY))
    with pytest.raises(LocalProtocolError, match="needs a cipher"):
        encode(Message(BinaryData(b""), flags=Flags.ENCRYPTED))


# ------------------------------------------------------------------ delta


def test_delta_roundtrip_and_wrong_base() -> None:
    old, new = b"the quick brown fox", b"the quick red fox"
    delta = make_delta("c", old, 1, new, 2)
    assert apply_delta(old, 1, delta) == new
    assert decode(encode(Message(delta))).payload == delta
    with pytest.raises(DeltaBaseMissing, match="no base"):
        apply_delta(None, None, delta)
    with pytest.raises(DeltaBaseMissing, match="holding version 3"):
        apply_delta(old, 3, delta)
    with pytest.raises(DeltaBaseMissing, match="checksum"):
        apply_delta(b"the quick brown cat", 1, delta)
    with pytest.raises(DeltaBaseMissing, match="reaches past"):
        apply_delta(b"the", 1, delta)


def test_channel_states() -> None:
    states = ChannelStates(max_channels=1)
    delta = DeltaUpdate("a", 1, 2, (DeltaCopy(0, 2), b"!"), zlib.crc32(b"hi!"))
    with pytest.raises(DeltaBaseMissing):
        states.apply(delta)
    states.set("a", 1, b"hi")
    assert states.apply(delta) == b"hi!"
    assert states.get("a") == (2, b"hi!")
    states.set("b", 1, b"x")  # evicts "a"
    assert states.get("a") is None


# ------------------------------------------------------------------ caller errors


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (Message(BinaryData(b""), sequence=1 << 32), "sequence"),
        (Message(BinaryData(b""), sequence=-1), "sequence"),
        (Message(BinaryData(b""), session_id=1 << 64), "session_id"),
        (Message(BinaryData(b""), flags=Flags(0)), None),
        (Message(Unknown(0x0101, b"")), "known type code"),
        (Message(Unknown(0x10000, b"")), "0..0xFFFF"),
        (Message(Sealed(0x0101, b"")), "ENCRYPTED"),
        (Message(Batch((Message(Batch(())),))), "may not contain a Batch"),
        (Message(Close("x")), "Close.code"),  # type: ignore[arg-type]
        (Message(Subscribe("\ud800")), "UTF-8"),
        (Message(TextData("\ud800")), "UTF-8"),
        (Message(Error(1, details=[1])), "list"),
    ],
)
def test_encode_rejects_what_the_protocol_cannot_carry(msg: Message, match: str | None) -> None:
    if match is None:
        assert decode(encode(msg)) == msg
        return
    with pytest.raises(LocalProtocolError, match=match):
        encode(msg)


def test_unknown_version() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Message(BinaryData(b"")), version=3)


def test_message_type_facts() -> None:
    msg = Message(TextData("x"))
    assert msg.type is MessageType.TEXT_DATA and msg.type_name == "TextData"
    assert Message(Unknown(0x0150)).type is None
    assert Message(Unknown(0x0150)).type_name == "Unknown"
    assert category_of(0x0203) is not None and category_of(0x0203).name == "SYSTEM"
    assert category_of(0x0300) is None
    assert payload_type("binarydata") is BinaryData
    assert payload_type("BINARY_DATA") is BinaryData
    assert payload_type("nope") is None
    assert subprotocol_version("wsp.v2") == 2 and subprotocol_version("chat") is None


def test_unknown_payload_keys_are_ignored_but_bounded() -> None:
    import msgpack

    wire = b"\x40\x04\x00" + msgpack.packb({"code": 1000, "future": [1, 2]})
    assert decode(wire).payload == Close(1000)
    deep = b"\x40\x04\x00" + msgpack.packb({"code": 1000, "future": [[[[1]]]]})
    with pytest.raises(LimitExceeded, match=r"Close\.future"):
        decode(deep, limits=Limits(max_depth=4))
    assert decode(deep, limits=Limits(max_depth=5)).payload == Close(1000)


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def test_fast_path_and_general_path_agree() -> None:
    # The data-message fast paths against the v2 diagram, built independently here;
    # batch items are always decoded by the general path.
    for sequence in (0, 127, 128, 16383, 16384, 1 << 31):
        for session_id in (0, 1, 127, 128, 1 << 40, (1 << 64) - 1):
            for flags in (Flags.NONE, Flags.ACK_REQUESTED):
                for payload, tbyte, body in ((BinaryData(b"ab"), 0x42, b"ab"),
                                             (TextData("ab"), 0x41, b"ab")):
                    msg = Message(payload, sequence=sequence, session_id=session_id,
                                  flags=flags)
                    head = 0x40 | int(flags) | (0x20 if session_id else 0)
                    expected = bytes((head, tbyte)) + _leb128(sequence) + (
                        _leb128(session_id) if session_id else b"") + body
                    assert encode(msg) == expected
                    assert decode(expected) == msg
                    via_batch = decode(encode(Message(Batch((msg,))))).payload
                    assert isinstance(via_batch, Batch) and via_batch.messages == (msg,)


def test_decoder_accepts_any_deflate_encoder_output() -> None:
    # A stored DEFLATE block written by hand: BFINAL=1 BTYPE=00, LEN=2, NLEN=~2, "hi".
    wire = bytes.fromhex("41" "42" "01" "01" "0200" "fdff" "6869")
    assert decode(wire) == Message(BinaryData(b"hi"), sequence=1, flags=Flags.COMPRESSED)
