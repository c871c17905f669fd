"""Property tests: every type and flag combination round-trips; bad bytes raise only
documented errors."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_tools.codec import TYPES, Cipher, Limits, Message, Sealed, decode, encode
from wsproto_tools.codec.schema import Flags
from wsproto_tools.exceptions import DecodeError

from .strategies import messages, payloads_of, simple_messages

KEY = bytes(range(32))
FAST = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def cipher() -> Cipher:
    counter = iter(range(1 << 62))
    return Cipher(KEY, lambda: next(counter).to_bytes(12, "little"))


@FAST
@given(messages, st.sampled_from([1, 2]))
def test_roundtrip_every_type_and_flag(msg: Message, version: int) -> None:
    c = cipher()
    wire = encode(msg, version=version, cipher=c)
    assert decode(wire, cipher=c) == msg
    assert decode(wire, version=version, cipher=c) == msg


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_every_known_type_roundtrips_in_both_versions(data: st.DataObject) -> None:
    for spec in TYPES.values():
        if spec.name == "Batch":
            continue
        payload = data.draw(payloads_of(spec.cls), label=spec.name)
        for bits in range(8):
            msg = Message(payload, sequence=bits, flags=Flags(bits))
            for version in (1, 2):
                c = cipher()
                assert decode(encode(msg, version=version, cipher=c), cipher=c) == msg


@FAST
@given(simple_messages)
def test_without_the_key_an_encrypted_message_is_sealed_and_resent_byte_exact(
    msg: Message,
) -> None:
    for version in (1, 2):
        wire = encode(msg, version=version, cipher=cipher())
        seen = decode(wire)
        if Flags.ENCRYPTED in msg.flags:
            assert isinstance(seen.payload, Sealed)
            assert seen.payload.code == msg.type_code
            assert encode(seen, version=version) == wire
        else:
            assert seen == msg


@FAST
@given(st.binary(max_size=200), st.sampled_from([None, 1, 2]), st.booleans())
def test_random_bytes_raise_only_decode_errors(
    data: bytes, version: int | None, with_key: bool
) -> None:
    try:
        decode(data, version=version, cipher=cipher() if with_key else None)
    except DecodeError as error:
        assert error.offset is not None and 0 <= error.offset <= len(data)
        assert error.close_code >= 1000


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, int]:
    msg = draw(messages)
    version = draw(st.sampled_from([1, 2]))
    wire = bytearray(encode(msg, version=version, cipher=cipher()))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(0, len(wire) - 1)))
        if action == "flip" and wire:
            wire[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            wire.insert(position, draw(st.integers(0, 255)))
        elif action == "delete" and wire:
            del wire[position]
        elif wire:
            del wire[position:]
    return bytes(wire), version


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated(), st.booleans())
def test_mutated_messages_raise_only_decode_errors(case: tuple[bytes, int], key: bool) -> None:
    wire, version = case
    tight = Limits(max_str_len=16, max_bin_len=16, max_array_len=3, max_map_len=4,
                   max_depth=2, max_batch_items=2, max_decompressed=64)
    for limits in (Limits(), tight):
        try:
            decode(wire, version=version, limits=limits, cipher=cipher() if key else None)
        except DecodeError as error:
            assert error.offset is not None and 0 <= error.offset <= len(wire)


@FAST
@given(messages)
def test_json_form_is_json_and_roundtrips(msg: Message) -> None:
    import json

    from wsproto_tools.codec import Error
    from wsproto_tools.codec.jsonform import message_from_json, message_to_json

    text = json.dumps(message_to_json(msg, 2), allow_nan=False)
    if "Error" in text or isinstance(msg.payload, Error):
        return  # Error.details may hold bin/non-finite floats, which JSON shows lossily
    assert message_from_json(json.loads(text)) == msg
