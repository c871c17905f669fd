"""The C frame reader (``ws/_scan.c``) gives the messages the Python path gives.

The oracle is the pure-Python ``FrameParser.feed_raw`` + ``receive_raw`` (whose
own vectors are in test_frames.py): random frame streams, cut into random
segments, are read both ways and must give equal message lists.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsproto_tools.exceptions import FrameError
from wsproto_tools.ws import DeflateParams, FrameParser, MessageAssembler, messages
from wsproto_tools.ws.frames import encode_frame

MASK = b"\x37\xfa\x21\x3d"


def c_scan() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WSP_PURE_PYTHON", raising=False)
        scan = messages._load_scan()
    assert scan is not messages._python_scan, "the C frame reader was not built (setup.py)"
    return scan


def read(segments: list[bytes], sender: str, params: DeflateParams | None, use_c: bool,
         max_message: int) -> list[Any]:
    """Decode ``segments`` as the capture decoder does (C first when ``use_c``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(messages, "_scan", c_scan() if use_c else messages._python_scan)
        parser = FrameParser(4096)
        assembler = MessageAssembler(
            sender, None if params is None else params.context(sender, max_size=max_message),
            max_message_size=max_message,
        )
        out: list[Any] = []

        def emit(msg: Any) -> None:
            out.append(msg)
            if "deflate-error" in msg.violations and params is not None:
                assembler.deflate = params.context(sender, max_size=max_message)

        for data in segments:
            start = 0
            while True:
                found = assembler.scan(parser, data, start)
                if found is None:
                    break
                found_messages, start, failed = found
                for msg in found_messages:
                    emit(msg)
                if not failed or start >= len(data):
                    break
            data = data[start:]
            if not data:
                continue
            try:
                frames = parser.feed_raw(data)
            except FrameError as error:
                out.append(("error", str(error)))
                parser.reset()
                out.extend(assembler.lost())
                continue
            for msg in assembler.receive_raw(frames):
                emit(msg)
        out.extend(assembler.finish())
        return out


texts = st.text(max_size=300).map(lambda t: t.encode())
payloads = texts | st.binary(max_size=300) | st.just(b"\xff\xfe invalid") | st.binary(
    min_size=126, max_size=200)


@st.composite
def streams(draw: Any) -> tuple[list[bytes], str, DeflateParams | None, int]:
    sender = draw(st.sampled_from(["client", "server"]))
    params = draw(st.none() | st.builds(
        DeflateParams, st.booleans(), st.booleans(), st.integers(9, 15), st.integers(9, 15)))
    compressor = None if params is None else params.context(sender)
    wire = bytearray()
    for _ in range(draw(st.integers(1, 12))):
        opcode = draw(st.sampled_from([1, 1, 2, 2, 2, 0, 8, 9, 10, 3]))
        payload = draw(payloads)
        rsv1 = params is not None and draw(st.booleans())
        if rsv1 and compressor is not None:
            payload = compressor.compress(payload)
            if draw(st.integers(0, 9)) == 0:
                payload = payload[:-1] + b"\x00"  # corrupt
        masked = (sender == "client") != (draw(st.integers(0, 15)) == 0)
        width = draw(st.sampled_from([None, None, None, 16, 64]))
        if width == 16 and len(payload) > 0xFFFF:
            width = None
        wire += encode_frame(
            opcode, payload, fin=draw(st.integers(0, 7)) > 0, rsv1=rsv1,
            rsv2=draw(st.integers(0, 30)) == 0, mask=MASK if masked else None,
            length_width=width,
        )
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    segments = [bytes(wire[a:b]) for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    return segments, sender, params, draw(st.sampled_from([64, 1 << 20]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_c_reader_gives_the_python_messages(stream: Any) -> None:
    segments, sender, params, max_message = stream
    assert read(segments, sender, params, True, max_message) == read(
        segments, sender, params, False, max_message
    )


def test_hand_written_frames() -> None:
    scan = c_scan()
    # RFC 6455 5.7: a masked "Hello" from a client, then an unmasked one (stops there)
    data = bytes.fromhex("818537fa213d7f9f4d5158") + bytes.fromhex("810548656c6c6f")
    msgs, pos, failed = scan(data, 0, True, None, 1 << 20, 1 << 20, None)
    assert (pos, failed, len(msgs)) == (11, False, 1)
    assert (msgs[0].opcode, msgs[0].payload, msgs[0].text, msgs[0].wire_length) == (
        1, b"Hello", "Hello", 11)
    # a 256-byte binary server frame (16-bit length), then a ping (left to Python)
    data = bytes.fromhex("827e0100") + bytes(range(256)) + bytes.fromhex("8900")
    msgs, pos, failed = scan(data, 0, False, None, 1 << 20, 1 << 20, None)
    assert (pos, len(msgs), msgs[0].payload) == (260, 1, bytes(range(256)))
    # RFC 7692 7.2.3.1: "Hello" compressed, one frame
    params = DeflateParams()
    msgs, pos, failed = scan(bytes.fromhex("c107f248cdc9c90700"), 0, False,
                             params.context("server").decompress, 1 << 20, 1 << 20, None)
    assert (msgs[0].payload, msgs[0].compressed, pos) == (b"Hello", True, 9)


def test_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSP_PURE_PYTHON", "1")
    assert messages._load_scan() is messages._python_scan
