"""The compiled fast paths (codec/fastpath.py) agree with the general path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_tools.codec import (
    Acknowledge,
    Batch,
    BinaryData,
    Deliver,
    Flags,
    Limits,
    Message,
    Publish,
    Request,
    Response,
    TextData,
    decode,
    encode,
    fastpath,
    payloads,
    wire,
)
from wsproto_tools.exceptions import DecodeError, LocalProtocolError

from .strategies import messages, simple_messages

FAST = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@contextmanager
def general_only() -> Iterator[None]:
    """The codec with its fast paths switched off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire, "encode_v2", lambda msg: None)
        patch.setattr(wire, "decode_v2", lambda *args: None)
        patch.setattr(wire, "_c_decode_v2", None)
        patch.setattr(payloads, "encode_body", lambda payload: None)
        patch.setattr(payloads, "decode_body", lambda cls, data, limits: None)
        yield


def general_encode(msg: Message, version: int = 2) -> bytes | type[Exception]:
    with general_only():
        try:
            return encode(msg, version=version)
        except LocalProtocolError as error:
            return type(error)


@FAST
@given(simple_messages)
def test_encode_v2_gives_the_general_bytes(msg: Message) -> None:
    fast = fastpath.encode_v2(msg)
    if fast is not None:
        assert fast == general_encode(msg)
        assert encode(msg) == fast


@FAST
@given(simple_messages)
def test_encode_body_gives_the_general_bytes(msg: Message) -> None:
    body = fastpath.encode_body(msg.payload)
    if body is not None:
        with general_only():
            assert body == payloads.encode_fields(msg.payload)


@FAST
@given(messages)
def test_decode_v2_gives_the_general_message(msg: Message) -> None:
    data = general_encode(msg)
    if not isinstance(data, bytes):
        return
    fast = fastpath.decode_v2(data, Limits())
    if fast is not None:
        with general_only():
            assert fast == decode(data) == msg
        assert type(fast.flags) is Flags


@FAST
@given(messages, st.data())
def test_mutated_messages_decode_alike_or_fail_alike(msg: Message, data: st.DataObject) -> None:
    wire_bytes = general_encode(msg)
    if not isinstance(wire_bytes, bytes) or len(wire_bytes) < 2:
        return
    buf = bytearray(wire_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    mutated = bytes(buf)
    fast = fastpath.decode_v2(mutated, Limits())  # never raises
    with general_only():
        try:
            general: Message | None = decode(mutated)
        except DecodeError:
            general = None
    if fast is not None:
        assert fast == general
    try:
        assert decode(mutated) == general
    except DecodeError:
        assert general is None


def test_a_batch_of_plain_messages_takes_the_fast_path_and_a_nested_batch_does_not() -> None:
    items = tuple(Message(Deliver("news", 1, offset, b"x")) for offset in range(1, 40))
    data = encode(Message(Batch(items), 0, 77))
    assert fastpath.decode_v2(data, Limits()) == Message(Batch(items), 0, 77)
    assert fastpath.decode_v2(data, Limits(max_batch_items=10)) is None
    with pytest.raises(DecodeError):
        decode(bytes.fromhex("4087000340870000"[:14]))  # a Batch in a Batch


PLAIN = [
    Message(Request(7, "echo", b"x" * 64), 0, 123456789012345),
    Message(Response(7, b"x" * 1024), 0, 123456789012345),
    Message(Publish("news", b"hi", 3), 200, 5, flags=Flags.ACK_REQUESTED),
    Message(Deliver("news", 3791813717, 12, b"hi")),
    Message(Acknowledge(70000), 0, 1 << 62),
    Message(Publish("news", b"hi", 3), 20000, 5, flags=Flags.ACK_REQUESTED),
    Message(Publish("news", b"hi", 3), 3_000_000, 5, flags=Flags.ACK_REQUESTED),
]


@pytest.mark.parametrize("msg", PLAIN, ids=lambda m: m.type_name)
def test_the_hot_messages_take_the_fast_paths(msg: Message) -> None:
    data = fastpath.encode_v2(msg)
    assert data is not None and data == general_encode(msg)
    assert fastpath.decode_v2(data, Limits()) == msg


def test_what_the_fast_paths_leave_to_the_general_path() -> None:
    assert fastpath.encode_v2(Message(Publish("nachrichtën", b"x"))) is None  # not ASCII
    assert fastpath.encode_v2(Message(Publish("t", b"x"), timestamp=5)) is None
    assert fastpath.encode_v2(Message(Publish("t", b"x"), flags=Flags.COMPRESSED)) is None
    assert fastpath.encode_v2(Message(Publish("t", bytearray(b"x")))) is None  # type: ignore[arg-type]
    body = msgpack.packb({"id": 1, "data": b"", "status": 0, "later": 1})
    assert fastpath.decode_body(Response, body, Limits()) is None  # a key it does not know
    body = msgpack.packb({"id": 1, "data": None})
    assert fastpath.decode_body(Response, body, Limits()) is None  # nil for an optional field
    body = msgpack.packb({"id": 1, "data": b"x" * 100})
    assert fastpath.decode_body(Response, body, Limits(max_bin_len=10)) is None
    assert fastpath.decode_body(Response, b"\x81\xa2id", Limits()) is None  # truncated


def test_constructor_builds_what_the_dataclass_init_builds() -> None:
    make_message = fastpath.constructor(Message)
    make_publish = fastpath.constructor(Publish)
    built = make_message(make_publish("t", b"x", 3), 9, 5, 0, Flags.ACK_REQUESTED)
    assert built == Message(Publish("t", b"x", 3), 9, 5, 0, Flags.ACK_REQUESTED)
    assert hash(built.payload) == hash(Publish("t", b"x", 3))
    with pytest.raises(TypeError):
        make_publish("t", b"x")  # every field is given


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 1 << 64 - 1), st.integers(0, 1 << 40), st.binary(max_size=300)),
        min_size=1,
        max_size=20,
    ),
    st.text(max_size=20),
)
def test_fan_out_encoders_give_the_general_bytes(
    items: list[tuple[int, int, bytes]], topic: str
) -> None:
    encode_deliver = fastpath.message_encoder(Deliver)
    assert encode_deliver is not None
    wires = [encode_deliver(topic, epoch, offset, data) for epoch, offset, data in items]
    messages = [Message(Deliver(topic, epoch, offset, data)) for epoch, offset, data in items]
    if not topic.isascii():
        assert wires == [None] * len(wires)  # left to the general path
        return
    assert wires == [general_encode(m) for m in messages]
    assert fastpath.batch_v2(wires) == general_encode(Message(Batch(tuple(messages))))  # type: ignore[arg-type]
    with_session = Message(Batch(tuple(messages)), 0, 1 << 40)
    assert fastpath.batch_v2(wires, 1 << 40) == general_encode(with_session)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b"\x40\x44\x80",  # a sequence cut short
        b"\x40\x44\x80\x80",  # three bytes cut short
        b"\x40\x44\x80\x80\x00\x80",  # three bytes, not minimal
        b"\x40\x44\x80\x00\x80",  # a sequence that is not minimal
        b"\x40\x87\x00\x80\x00",  # a batch item length that is not minimal
        b"\x40\x87\x00\x85\x01\x40",  # a batch item longer than the rest
    ],
)
def test_malformed_varints_are_left_to_the_general_path(data: bytes) -> None:
    assert fastpath.decode_v2(data, Limits()) is None
    assert c_decode(data, Limits()) is None
    with pytest.raises(DecodeError):
        decode(data)


def c_decode(data: bytes, limits: Limits) -> Message | None:
    """The C fast path (codec/_fast.c), built whatever WSP_PURE_PYTHON says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WSP_PURE_PYTHON", raising=False)
        decoder = fastpath._c_decoder()
    assert decoder is not None, "the C decoder was not built (setup.py, a C compiler)"
    return decoder(data, limits, limits.max_batch_items, fastpath.small_body(limits))


def same(a: Message | None, b: Message | None) -> None:
    """Equal, and equal in the types of what they hold (flags, payload classes)."""
    assert a == b
    if a is not None and b is not None:
        assert type(a.flags) is type(b.flags)
        assert type(a.payload) is type(b.payload)
        assert type(a.sequence) is type(b.sequence) is int


@FAST
@given(messages, st.data())
def test_c_fast_path_decodes_as_the_python_one(msg: Message, data: st.DataObject) -> None:
    wire_bytes = general_encode(msg)
    if not isinstance(wire_bytes, bytes) or len(wire_bytes) < 2:
        return
    limits = Limits(max_batch_items=data.draw(st.sampled_from([2, 1000])))
    same(c_decode(wire_bytes, limits), fastpath.decode_v2(wire_bytes, limits))
    buf = bytearray(wire_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    mutated = bytes(buf)
    same(c_decode(mutated, limits), fastpath.decode_v2(mutated, limits))


@pytest.mark.parametrize("msg", PLAIN, ids=lambda m: m.type_name)
def test_c_fast_path_reads_the_hot_messages(msg: Message) -> None:
    data = fastpath.encode_v2(msg)
    assert data is not None
    same(c_decode(data, Limits()), msg)


def test_c_fast_path_on_hand_written_bytes() -> None:
    # TextData "hi", ACK_REQUESTED, sequence 300 (AC 02), session 5
    assert c_decode(bytes.fromhex("6441ac02056869"), Limits()) == Message(
        TextData("hi"), 300, 5, flags=Flags.ACK_REQUESTED
    )
    # BinaryData 00ff, sequence 1, no session
    assert c_decode(bytes.fromhex("40420100ff"), Limits()) == Message(BinaryData(b"\x00\xff"), 1)
    assert c_decode(bytes.fromhex("404101ff"), Limits()) is None  # text that is not UTF-8
    # a session id of 2^64-1 (ten bytes) and one more (refused)
    top = bytes.fromhex("6042" + "00" + "ff" * 9 + "01")
    assert c_decode(top, Limits()) == Message(BinaryData(b""), 0, (1 << 64) - 1)
    assert c_decode(bytes.fromhex("6042" + "00" + "ff" * 9 + "02"), Limits()) is None


@pytest.mark.parametrize(
    "limits",
    [Limits(max_bin_len=10), Limits(max_str_len=3), Limits(max_map_len=2), Limits(max_array_len=4)],
    ids=["bin", "str", "map", "array"],
)
def test_tight_limits_are_kept_by_the_fast_path(limits: Limits) -> None:
    data = encode(Message(Response(7, b"x" * 50), 0, 5))
    fast = fastpath.decode_v2(data, limits)
    with general_only():
        try:
            general: Message | None = decode(data, limits=limits)
        except DecodeError:
            general = None
    assert fast == general
    data = encode(Message(Publish("news", b"x"), 3, 5))
    fast = fastpath.decode_v2(data, limits)
    with general_only():
        try:
            general = decode(data, limits=limits)
        except DecodeError:
            general = None
    assert fast == general


def test_a_batch_mixing_raw_and_msgpack_messages_stays_on_the_fast_path() -> None:
    items = (
        Message(Acknowledge(5), 0, 77),
        Message(BinaryData(b"x" * 64), 1, 77, 0, Flags.ACK_REQUESTED),
        Message(TextData("héllo"), 2, 77),
        Message(Publish("news", b"hi", 3), 3, 77, 0, Flags.ACK_REQUESTED),
    )
    data = encode(Message(Batch(items), 0, 77))
    assert fastpath.decode_v2(data, Limits()) == Message(Batch(items), 0, 77)
    bad_text = encode(Message(Batch((Message(BinaryData(b"\xff"), 1, 77),)), 0, 77))
    assert bad_text[6] == 0x42  # the item's type byte: BinaryData ...
    bad_text = bad_text[:6] + b"\x41" + bad_text[7:]  # ... becomes TextData, not UTF-8
    assert fastpath.decode_v2(bad_text, Limits()) is None
    with pytest.raises(DecodeError):
        decode(bad_text)


map_values = st.one_of(
    st.integers(0, 127), st.integers(128, (1 << 64) - 1), st.integers(-(1 << 63), -1),
    st.text(max_size=40), st.binary(max_size=300), st.booleans(), st.none(),
    st.floats(allow_nan=False), st.lists(st.integers(0, 3), max_size=2),
)
#: values of each compiled field kind, short and long (str8/16, bin8/16, uint8-64)
KIND_VALUES = {
    "UINT": st.integers(0, 127) | st.integers(0, (1 << 64) - 1),
    "STR": st.text(max_size=5) | st.text(min_size=32, max_size=300),
    "BYTES": st.binary(max_size=5) | st.binary(min_size=256, max_size=300),
    "BOOL": st.booleans(),
}


@FAST
@given(st.sampled_from(sorted(fastpath._DECODERS, key=lambda c: c.__name__)), st.data())
def test_c_reads_plain_msgpack_bodies_as_python(cls: type, data: st.DataObject) -> None:
    """Maps of the class's fields, mostly right, sometimes not (absent, nil, a wrong
    kind, a repeated or unknown key, bytes after the map), read by the C reader and
    by the compiled Python decoders."""
    entries: list[tuple[str, Any]] = []
    for name, fspec in fastpath.payload_fields(cls):
        choice = data.draw(st.integers(0, 9))
        if choice <= 6:
            entries.append((name, data.draw(KIND_VALUES[fspec.kind.name])))
        elif choice == 7:
            entries.append((name, data.draw(map_values)))
        elif choice == 8:
            entries.append((name, None))
    if data.draw(st.integers(0, 9)) == 0:
        entries.append((data.draw(st.sampled_from(["x", entries[0][0] if entries else "y"])),
                        data.draw(map_values)))
    entries = data.draw(st.permutations(entries))
    packer = msgpack.Packer(use_bin_type=True)
    body = packer.pack_map_header(len(entries)) + b"".join(
        packer.pack(key) + packer.pack(value) for key, value in entries
    )
    if data.draw(st.integers(0, 19)) == 0:
        body += b"\x00"  # extra data after the map
    message = bytes((0x40,)) + fastpath._V2_TYPES[cls] + b"\x05" + body
    for limits in (Limits(), Limits(max_str_len=8, max_bin_len=8)):
        same(c_decode(message, limits), fastpath.decode_v2(message, limits))
