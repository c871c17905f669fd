"""The compiled paths agree with the general path: the compiled msgpack forms
(codec/fastpath.py), the C decoder (codec/_fast.c) and the one v2 header
(codec/header.py)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_tools import native
from wsproto_tools.codec import (
    DEFAULT_LIMITS,
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
    constructor,
    decode,
    encode,
    encode_batch,
    fastpath,
    header,
    message_encoder,
    payloads,
    wire,
)
from wsproto_tools.codec.schema import payload_fields
from wsproto_tools.exceptions import DecodeError, LimitExceeded, LocalProtocolError

from .strategies import messages, simple_messages

FAST = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@contextmanager
def general_only() -> Iterator[None]:
    """The codec with its compiled msgpack forms switched off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire, "encode_body", lambda payload: None)
        patch.setattr(payloads, "encode_body", lambda payload: None)
        patch.setattr(payloads, "decode_body", lambda cls, data, limits: None)
        yield


def general_encode(msg: Message, version: int = 2) -> bytes | type[Exception]:
    with general_only():
        try:
            return encode(msg, version=version)
        except LocalProtocolError as error:
            return type(error)


def general_decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message | None:
    """The Python decode without its compiled parts; None for a DecodeError."""
    with general_only():
        try:
            return wire._decode(data, limits=limits)
        except DecodeError:
            return None


_C_DECODE: list[Any] = []


def c_decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message | None:
    """What the C decoder (codec/_fast.c) reads itself, whatever WSP_PURE_PYTHON
    says; None for what it leaves to Python."""
    if not _C_DECODE:
        module = importlib.import_module("wsproto_tools.codec._fast")
        _C_DECODE.append(fastpath.compiled_decoder(module, lambda *a, **k: None,
                                                   DEFAULT_LIMITS))
    found: Message | None = _C_DECODE[0](data, limits=limits)
    return found


def same(a: Message | None, b: Message | None) -> None:
    """Equal, and equal in the types of what they hold (flags, payload classes)."""
    assert a == b
    if a is not None and b is not None:
        assert type(a.flags) is type(b.flags)
        assert type(a.payload) is type(b.payload)
        assert type(a.sequence) is type(b.sequence) is int


def read_alike(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message | None:
    """The C reading of ``data`` (when it reads it) is the Python one, and so is
    the public decode's; the Python reading (None: refused)."""
    general = general_decode(data, limits)
    fast = c_decode(data, limits)
    if fast is not None:
        same(fast, general)
    try:
        public: Message | None = decode(data, limits=limits)
    except DecodeError:
        public = None
    same(public, general)
    return general


@FAST
@given(simple_messages)
def test_encode_gives_the_general_bytes(msg: Message) -> None:
    try:
        fast: bytes | type[Exception] = encode(msg)
    except LocalProtocolError as error:
        fast = type(error)
    assert fast == general_encode(msg)


@FAST
@given(simple_messages)
def test_encode_body_gives_the_general_bytes(msg: Message) -> None:
    body = fastpath.encode_body(msg.payload)
    if body is not None:
        with general_only():
            assert body == payloads.encode_fields(msg.payload)


@FAST
@given(messages)
def test_decode_gives_the_general_message(msg: Message) -> None:
    data = general_encode(msg)
    if not isinstance(data, bytes):
        return
    assert read_alike(data) == msg
    assert type(decode(data).flags) is Flags


@FAST
@given(messages, st.data())
def test_mutated_messages_decode_alike_or_fail_alike(msg: Message, data: st.DataObject) -> None:
    wire_bytes = general_encode(msg)
    if not isinstance(wire_bytes, bytes) or len(wire_bytes) < 2:
        return
    buf = bytearray(wire_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    read_alike(bytes(buf), Limits(max_batch_items=data.draw(st.sampled_from([2, 1000]))))


def test_a_batch_of_plain_messages_takes_the_fast_path_and_a_nested_batch_does_not() -> None:
    items = tuple(Message(Deliver("news", 1, offset, b"x")) for offset in range(1, 40))
    data = encode(Message(Batch(items), 0, 77))
    assert c_decode(data) == Message(Batch(items), 0, 77)
    assert c_decode(data, Limits(max_batch_items=10)) is None
    with pytest.raises(DecodeError):
        decode(data, limits=Limits(max_batch_items=10))
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
    data = encode(msg)
    assert data == general_encode(msg)
    same(c_decode(data), msg)
    same(decode(data), msg)


def test_what_the_compiled_forms_leave_to_the_general_path() -> None:
    assert fastpath.encode_body(Publish("nachrichtën", b"x")) is None  # not ASCII
    assert fastpath.encode_body(Publish("t", bytearray(b"x"))) is None  # type: ignore[arg-type]  # a wrong type on purpose
    for msg in (Message(Publish("nachrichtën", b"x")), Message(Publish("t", b"x"), timestamp=5),
                Message(Publish("t", b"x"), flags=Flags.COMPRESSED)):
        assert encode(msg) == general_encode(msg)
        assert decode(encode(msg)) == msg
        if msg.timestamp or msg.flags:
            assert c_decode(encode(msg)) is None
    body = msgpack.packb({"id": 1, "data": b"", "status": 0, "later": 1})
    assert fastpath.decode_body(Response, body, Limits()) is None  # a key it does not know
    body = msgpack.packb({"id": 1, "data": None})
    assert fastpath.decode_body(Response, body, Limits()) is None  # nil for an optional field
    body = msgpack.packb({"id": 1, "data": b"x" * 100})
    assert fastpath.decode_body(Response, body, Limits(max_bin_len=10)) is None
    assert fastpath.decode_body(Response, b"\x81\xa2id", Limits()) is None  # truncated


def test_constructor_builds_what_the_dataclass_init_builds() -> None:
    make_message = constructor(Message)
    make_publish = constructor(Publish)
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
    st.sampled_from([1, 2]),
)
def test_fan_out_encoders_give_the_general_bytes(
    items: list[tuple[int, int, bytes]], topic: str, version: int
) -> None:
    encode_deliver = message_encoder(Deliver, version)
    wires = [encode_deliver(topic, epoch, offset, data) for epoch, offset, data in items]
    messages = [Message(Deliver(topic, epoch, offset, data)) for epoch, offset, data in items]
    assert wires == [general_encode(m, version) for m in messages]
    batch = Message(Batch(tuple(messages)))
    assert encode_batch(wires, version=version) == general_encode(batch, version)
    with_session = Message(Batch(tuple(messages)), 0, 1 << 40)
    assert encode_batch(wires, 1 << 40, version) == general_encode(with_session, version)


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
    assert c_decode(data) is None
    assert general_decode(data) is None
    with pytest.raises(DecodeError):
        decode(data)


def test_decode_is_the_c_form_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.SWITCH, raising=False)
    assert type(wire._compiled_decode(importlib.import_module("wsproto_tools.codec._fast"))) \
        is not type(wire._decode)
    monkeypatch.setenv(native.SWITCH, "1")
    assert native.pick("codec._fast", wire._compiled_decode, wire._decode) is wire._decode


def test_the_c_form_hands_python_every_call_it_does_not_read() -> None:
    data = encode(Message(BinaryData(b"hi"), 1))
    assert decode(bytearray(data)) == decode(memoryview(data)) == decode(data)
    assert decode(data, version=None, cipher=None) == decode(data, version=2)
    with pytest.raises(DecodeError):
        decode(data, version=1)
    with pytest.raises(LimitExceeded):
        decode(data, limits=Limits(max_message=2))
    with pytest.raises(LocalProtocolError):
        decode(data, version=3)
    with pytest.raises(TypeError):
        decode(data, colour=1)  # type: ignore[call-arg]  # a wrong keyword on purpose
    with pytest.raises(TypeError):
        decode(data, None)  # type: ignore[misc]  # keywords only


def test_c_fast_path_on_hand_written_bytes() -> None:
    # TextData "hi", ACK_REQUESTED, sequence 300 (AC 02), session 5
    assert c_decode(bytes.fromhex("6441ac02056869")) == Message(
        TextData("hi"), 300, 5, flags=Flags.ACK_REQUESTED
    )
    # BinaryData 00ff, sequence 1, no session
    assert c_decode(bytes.fromhex("40420100ff")) == Message(BinaryData(b"\x00\xff"), 1)
    assert c_decode(bytes.fromhex("404101ff")) is None  # text that is not UTF-8
    # a session id of 2^64-1 (ten bytes) and one more (refused)
    top = bytes.fromhex("6042" + "00" + "ff" * 9 + "01")
    assert c_decode(top) == Message(BinaryData(b""), 0, (1 << 64) - 1)
    assert c_decode(bytes.fromhex("6042" + "00" + "ff" * 9 + "02")) is None


@pytest.mark.parametrize(
    "limits",
    [Limits(max_bin_len=10), Limits(max_str_len=3), Limits(max_map_len=2), Limits(max_array_len=4)],
    ids=["bin", "str", "map", "array"],
)
def test_tight_limits_are_kept_by_the_fast_path(limits: Limits) -> None:
    read_alike(encode(Message(Response(7, b"x" * 50), 0, 5)), limits)
    read_alike(encode(Message(Publish("news", b"x"), 3, 5)), limits)


def test_a_batch_mixing_raw_and_msgpack_messages_stays_on_the_fast_path() -> None:
    items = (
        Message(Acknowledge(5), 0, 77),
        Message(BinaryData(b"x" * 64), 1, 77, 0, Flags.ACK_REQUESTED),
        Message(TextData("héllo"), 2, 77),
        Message(Publish("news", b"hi", 3), 3, 77, 0, Flags.ACK_REQUESTED),
    )
    data = encode(Message(Batch(items), 0, 77))
    same(c_decode(data), Message(Batch(items), 0, 77))
    bad_text = encode(Message(Batch((Message(BinaryData(b"\xff"), 1, 77),)), 0, 77))
    assert bad_text[6] == 0x42  # the item's type byte: BinaryData ...
    bad_text = bad_text[:6] + b"\x41" + bad_text[7:]  # ... becomes TextData, not UTF-8
    assert c_decode(bad_text) is None
    with pytest.raises(DecodeError):
        decode(bad_text)


# ------------------------------------------------------------------ the v2 header

U64 = (1 << 64) - 1


@FAST
@given(st.integers(0, 0xFFFF), st.integers(0, 7), st.integers(0, 0xFFFFFFFF),
       st.integers(0, 127) | st.integers(0, U64), st.just(0) | st.integers(0, U64),
       st.binary(max_size=4))
def test_the_v2_header_reads_back_what_it_writes(
    code: int, flags: int, sequence: int, session_id: int, timestamp: int, body: bytes
) -> None:
    data = header._pack_v2(code, flags, sequence, session_id, timestamp)
    assert header.unpack_v2(data + body) == (code, flags, sequence, session_id, timestamp,
                                              len(data))
    assert c_pack_v2(code, flags, sequence, session_id, timestamp) == data
    assert header.pack_v2(code, flags, sequence, session_id, timestamp) == data


@FAST
@given(st.binary(min_size=1, max_size=24))
def test_a_v2_header_has_one_form(data: bytes) -> None:
    """Whatever unpack_v2 accepts is exactly what pack_v2 writes for its fields,
    and the C decoder reads the same fields (or leaves the message to Python)."""
    try:
        code, flags, sequence, session_id, timestamp, end = header.unpack_v2(data)
    except DecodeError:
        assert c_decode(data) is None
        return
    assert header.pack_v2(code, flags, sequence, session_id, timestamp) == data[:end]
    fast = c_decode(data)
    if fast is not None:
        assert (fast.payload.type_code, int(fast.flags), fast.sequence, fast.session_id,
                fast.timestamp) == (code, flags, sequence, session_id, timestamp)


def c_pack_v2(*fields: int) -> bytes:
    """The C form of pack_v2 (codec/_fast.c), whatever WSP_PURE_PYTHON says."""
    module: Any = importlib.import_module("wsproto_tools.codec._fast")
    packed: bytes = module.pack_v2(*fields)
    return packed


def test_the_c_header_writer_refuses_what_does_not_fit() -> None:
    for fields in [(0x10000, 0, 0), (1, 8, 0), (1, 0, 1 << 32), (1, 0, 0, 1 << 64),
                   (1, 0, 0, 0, -1)]:
        with pytest.raises(OverflowError):
            c_pack_v2(*fields)
    with pytest.raises(TypeError):
        c_pack_v2(1, 0)
    assert c_pack_v2(0x0102, 4, 300, 5) == bytes.fromhex("6442ac0205")


def test_the_v2_type_field() -> None:
    assert header.type_bytes(0x0102) == b"\x42"
    assert header.type_bytes(0x0207) == b"\x87"
    assert header.type_bytes(0x0140) == b"\xc0\x40\x01"  # low byte >= 64: escaped
    assert header.type_bytes(0x0301) == b"\xc0\x01\x03"  # category 3: escaped
    with pytest.raises(DecodeError, match="must not be escaped"):
        header.unpack_v2(b"\x40\xc0\x02\x01\x00")
    with pytest.raises(DecodeError, match="reserved type byte"):
        header.unpack_v2(b"\x40\xc1\x00")


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
    for name, fspec in payload_fields(cls):
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
    message = header.pack_v2(cls.TYPE, 0, 5) + body
    for limits in (Limits(), Limits(max_str_len=8, max_bin_len=8)):
        read_alike(message, limits)


def test_the_session_id_read_last_is_remembered_rightly() -> None:
    big, other = (1 << 40) + 7, (1 << 40) + 8
    first = header.pack_v2(0x0102, 0, 1000, big) + b"x"
    assert header.unpack_v2(first)[3] == big
    assert header.unpack_v2(first)[3] == big  # from what was read last
    assert header.unpack_v2(header.pack_v2(0x0102, 0, 1, other))[3] == other
    cut = header.pack_v2(0x0102, 0, 1, other)[:-2]  # the session id cut short
    with pytest.raises(DecodeError):
        header.unpack_v2(cut)
    assert header.unpack_v2(first)[3] == big
