"""The case catalog, the verdict logic and the compressor, without sockets."""

from __future__ import annotations

import os
import re
import zlib
from collections import Counter

import pytest

from wsproto_tools.exceptions import FrameError
from wsproto_tools.fuzz.catalog import AREAS, CORE_AREAS, build_cases, select_cases
from wsproto_tools.fuzz.deflate import Compressor, Inflater
from wsproto_tools.fuzz.model import Behavior, CloseVerdict, Event, Expect, Frame, Partial, Send
from wsproto_tools.fuzz.runner import encode_message
from wsproto_tools.fuzz.utf8 import UTF8_GROUPS
from wsproto_tools.fuzz.verdict import Observation, judge
from wsproto_tools.ws import DeflateParams, FrameParser, encode_frame

from .expected import CORE, INVALID_UTF8_VECTORS, VALID_UTF8_VECTORS


def test_case_counts_match_autobahns_numbering() -> None:
    cases = build_cases()
    per_area = Counter(case.top for case in cases)
    assert sum(per_area[a] for a in CORE_AREAS) == 247
    assert per_area == {
        1: 16,
        2: 11,
        3: 7,
        4: 10,
        5: 20,
        6: 145,
        7: 37,
        9: 54,
        10: 1,
        12: 90,
        13: 126,
    }
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("."))))
    # A few ids as Autobahn numbers them.
    for case_id in ("1.1.8", "2.11", "5.20", "6.4.4", "6.22.34", "6.23.7", "7.7.13", "7.9.9",
                    "7.13.2", "9.8.6", "10.1.1", "12.5.18", "13.7.18"):  # fmt: skip
        assert case_id in ids


def test_every_case_cites_the_rfc_and_states_its_expectation() -> None:
    for case in build_cases():
        assert re.search(r"RFC (6455|7692) \d", case.rfc), case.id
        assert case.description and case.expectation, case.id
        assert case.area == AREAS[case.top]
        assert case.steps, case.id


def test_utf8_vectors_are_classified_as_written_by_hand() -> None:
    invalid = set()
    valid = set()
    for group, _title, sequences in UTF8_GROUPS:
        for n, (payload, ok) in enumerate(sequences, 1):
            (valid if ok else invalid).add(f"6.{group}.{n}")
            assert ok == _strict_utf8(payload)
    assert invalid == INVALID_UTF8_VECTORS
    assert valid == VALID_UTF8_VECTORS


def _strict_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    return True


def test_invalid_utf8_cases_expect_1007_and_valid_ones_an_echo() -> None:
    by_id = {case.id: case for case in build_cases()}
    for case_id in INVALID_UTF8_VECTORS:
        expect = by_id[case_id].expect
        assert (expect.ok, expect.closed_by_me, expect.close_codes) == ((), False, (1007,))
    for case_id in VALID_UTF8_VECTORS:
        expect = by_id[case_id].expect
        assert expect.closed_by_me and expect.ok[0].kind == "message"


def test_selection_patterns() -> None:
    assert len(select_cases(CORE)) == 247
    assert [c.id for c in select_cases("6.4")] == ["6.4.1", "6.4.2", "6.4.3", "6.4.4"]
    assert [c.id for c in select_cases("1.1.*", "1.1.8")] == [f"1.1.{n}" for n in range(1, 8)]
    assert all(c.top != 9 for c in select_cases())
    assert select_cases("9.*") == []
    assert len(select_cases("9.*", perf=True)) == 54
    assert len(select_cases()) == 247 + 90 + 126
    assert select_cases("2.1") == [c for c in build_cases() if c.id == "2.1"]


def test_frames_and_partials_are_bounded() -> None:
    for case in build_cases():
        for step in case.steps:
            if isinstance(step, Send):
                assert 0 < len(step.frames) <= 100, case.id
            if isinstance(step, Partial):
                assert step.frame.opcode == 1


# ------------------------------------------------------------------ verdicts

MSG = Event("message", b"x")


def _judge(
    expect: Expect,
    events: tuple[Event, ...] = (),
    *,
    by_me: bool = True,
    clean: bool = True,
    code: int | None = 1000,
) -> tuple[Behavior, CloseVerdict]:
    behavior, _, close, _ = judge(expect, Observation(events, by_me, clean, code))
    return behavior, close


def test_behavior_verdicts() -> None:
    expect = Expect(ok=(MSG,), non_strict=((),), informational=((MSG, MSG),))
    assert _judge(expect, (MSG,))[0] is Behavior.OK
    assert _judge(expect, ())[0] is Behavior.NON_STRICT
    assert _judge(expect, (MSG, MSG))[0] is Behavior.INFORMATIONAL
    assert _judge(expect, (Event("pong"),))[0] is Behavior.FAILED


def test_close_verdicts_follow_autobahn_order() -> None:
    echo = Expect()
    assert _judge(echo) == (Behavior.OK, CloseVerdict.OK)
    assert _judge(echo, by_me=False)[1] is CloseVerdict.FAILED  # wrong endpoint first
    assert _judge(echo, by_me=False, clean=False, code=1002)[1] is CloseVerdict.FAILED
    assert _judge(echo, clean=False)[1] is CloseVerdict.UNCLEAN
    assert _judge(echo, code=1001)[1] is CloseVerdict.WRONG_CODE
    assert _judge(echo, code=None)[1] is CloseVerdict.OK  # an empty close is accepted
    fail = Expect(closed_by_me=False, close_codes=(1002,), require_clean=False)
    assert _judge(fail, by_me=False, clean=False, code=None) == (Behavior.OK, CloseVerdict.OK)
    assert _judge(fail, by_me=False, code=1000)[1] is CloseVerdict.WRONG_CODE
    assert _judge(fail, by_me=True, code=None)[1] is CloseVerdict.FAILED  # we had to drop
    strict = Expect(wrong_code_fails=True)
    assert _judge(strict, code=1002) == (Behavior.FAILED, CloseVerdict.WRONG_CODE)
    info = Expect(informational_only=True)
    assert _judge(info, (MSG,), code=4) == (Behavior.INFORMATIONAL, CloseVerdict.INFORMATIONAL)
    behavior, _, _, _ = judge(Expect(), Observation((), True, True, 1000, unimplemented=True))
    assert behavior is Behavior.UNIMPLEMENTED


# ---------------------------------------------------------------- compressor


@pytest.mark.parametrize(
    ("no_takeover", "bits"), [(False, 15), (True, 15), (False, 9), (True, 9), (False, 8)]
)
def test_compressor_output_inflates_with_the_shared_context(no_takeover: bool, bits: int) -> None:
    params = DeflateParams(client_no_context_takeover=no_takeover, client_max_window_bits=bits)
    compressor = Compressor(no_takeover, bits)
    inflater = params.context("client")
    # A strict inflater with exactly the negotiated window (zlib rejects
    # distances beyond it), reset per message without context takeover.
    strict = zlib.decompressobj(-max(bits, 9))
    messages = [b"", b"hello " * 50, bytes(range(256)) * 20, b"hello " * 50, os.urandom(3000)]
    sizes = []
    for message in messages:
        data = compressor.compress(message)
        sizes.append(len(data))
        assert inflater.decompress(data) == message
        if no_takeover:
            strict = zlib.decompressobj(-max(bits, 9))
        assert strict.decompress(data + b"\x00\x00\xff\xff") == message
    if not no_takeover and bits == 15:
        assert sizes[3] < sizes[1]  # the repeat refers back into the previous message


def test_frames_are_plain_data() -> None:
    frame = Frame(1, b"x", fin=False, rsv=4)
    assert (frame.opcode, frame.fin, frame.rsv) == (1, False, 4)
    with pytest.raises(AttributeError):
        frame.opcode = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("length", "size", "masked"),
    [
        (0, 0, True),
        (5, 0, False),
        (300, 256, True),
        (1024, 256, False),
        (70000, 0, True),
        (131072, 32768, True),
        (100, 7, True),
        (65536, 65536, False),
    ],
)
def test_fast_message_encoder_matches_encode_frame(length: int, size: int, masked: bool) -> None:
    payload = os.urandom(length)
    count = 1 if size <= 0 or length <= size else -(-length // size)
    masks = os.urandom(4 * count) if masked else None
    step = size if count > 1 else max(length, 1)
    expected = b"".join(
        encode_frame(
            (1 if i == 0 else 0),
            payload[i * step : (i + 1) * step],
            fin=i == count - 1,
            rsv1=i == 0,
            mask=masks[4 * i : 4 * i + 4] if masks else None,
        )
        for i in range(count)
    )
    assert encode_message(1, payload, size, 4, masks) == expected
    frames = FrameParser().feed(expected)
    assert len(frames) == count and b"".join(f.payload for f in frames) == payload


def test_inflater_limits_and_errors() -> None:
    big = Compressor(False, 15).compress(b"x" * 1000)
    with pytest.raises(FrameError) as too_big:
        Inflater(False, 15, max_size=100).decompress(big)
    assert too_big.value.close_code == 1009
    with pytest.raises(FrameError) as corrupt:
        Inflater(False, 15).decompress(b"\xff\xff\xff")
    assert corrupt.value.close_code == 1007
    inflater = Inflater(True, 15, max_size=2000)
    for message in (b"abc" * 300, os.urandom(1500), b"abc" * 300):
        assert inflater.decompress(Compressor(True, 12).compress(message)) == message
