"""The C line writer (``render/_lines.c``) writes exactly what ``MessageLines`` writes.

The oracle for both is :func:`message_record` (the generic JSON encoder): the C
bytes must equal the Python writer's text byte for byte, and parse to the record.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools.capture import CapturedMessage
from wsproto_tools.codec import encode
from wsproto_tools.exceptions import WspError
from wsproto_tools.render.capture import LineBuffer, MessageLines, message_record
from wsproto_tools.ws import WsMessage

from .samples import sample_messages, samples

_spec = importlib.util.spec_from_file_location(
    "wsp_codec_strategies", Path(__file__).parent.parent / "codec" / "strategies.py"
)
assert _spec is not None and _spec.loader is not None
_strategies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_strategies)
wsp_messages = _strategies.messages
ENTRY = "from wsproto_tools.cli.main import main; main()"

def c_writer(with_hex: bool, limit: int = 1 << 30) -> Any:
    saved = os.environ.pop("WSP_PURE_PYTHON", None)  # the C writer, whatever the run asks
    try:
        writer = MessageLines(with_hex=with_hex).c_writer(limit)
    finally:
        if saved is not None:
            os.environ["WSP_PURE_PYTHON"] = saved
    assert writer is not None, "the C line writer was not built (setup.py, a C compiler)"
    return writer


def check(item: CapturedMessage, with_hex: bool) -> bool:
    """Compare the two writers on ``item``; whether the C writer took it."""
    python = MessageLines(with_hex=with_hex)(item) + "\n"
    buffer = LineBuffer(with_hex=with_hex)
    buffer.write(item)
    assert buffer.take().decode("utf-8", "surrogateescape") == python
    assert json.loads(python) == json.loads(
        json.dumps(message_record(item, with_hex=with_hex), ensure_ascii=False)
    )
    writer = c_writer(with_hex)
    taken = bool(writer.write(item))
    assert writer.take() == (python.encode() if taken else b"")
    return taken


def test_built_and_used() -> None:
    assert c_writer(False) is not None
    if not os.environ.get("WSP_PURE_PYTHON"):
        assert LineBuffer().accelerated


def test_pure_python_switch_gives_the_same_output() -> None:
    path = str(Path(__file__).parent.parent.parent / "captures" / "wsp-session-v2.pcap")
    runs = [
        subprocess.run([sys.executable, "-c", ENTRY, "decode", "--ndjson", path],
                       capture_output=True, timeout=60, env={**os.environ, **extra})
        for extra in ({"WSP_PURE_PYTHON": "1"}, {})
    ]
    assert runs[0].returncode == runs[1].returncode == 0
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.count(b"\n") > 40


def test_every_sample_message() -> None:
    taken = checked = 0
    for _, path, _ in samples():
        for event in sample_messages(path):
            for with_hex in (False, True):
                taken += check(event, with_hex)
                checked += 1
    assert taken > 0.8 * checked  # all but session findings (rare, left to Python)


texts = st.text(max_size=30) | st.sampled_from(['"\\\n\r\t\b\f\x00\x1f\x7f', "żółw 🐢"])
opcodes = st.sampled_from([0, 1, 2, 8, 9, 10, 3, 0xB])


@st.composite
def captured(draw: Any) -> CapturedMessage:
    opcode = draw(opcodes)
    payload = draw(st.binary(max_size=40) | st.binary(min_size=16, max_size=600))
    text = draw(st.none() | texts) if opcode == 1 else None
    msg = WsMessage(
        opcode,
        payload,
        compressed=draw(st.booleans()),
        frames=draw(st.integers(0, 5)),
        wire_length=len(payload) + 2,
        violations=tuple(draw(st.lists(st.sampled_from(["bad-opcode", "invalid-utf8"]),
                                       max_size=2))),
        close_code=draw(st.none() | st.integers(0, 5000)) if opcode == 8 else None,
        close_reason=draw(st.none() | texts) if opcode == 8 else None,
        text=text,
    )
    wsp: Any = None
    choice = draw(st.integers(0, 2))
    if choice == 1:
        wsp = (draw(st.sampled_from([1, 2])), draw(wsp_messages))
        if draw(st.booleans()):  # the payload is the message (its BinaryData ends it)
            try:
                payload = encode(wsp[1], version=wsp[0])
            except WspError:
                pass
            else:
                msg = dataclasses.replace(msg, opcode=2, payload=payload, text=None)
    elif choice == 2:
        wsp = "wsp decode failed: " + draw(texts)
    return CapturedMessage(
        draw(st.integers(1, 1 << 40)),
        draw(st.floats(0, 2e9, allow_nan=False)),
        draw(st.integers(1, 10**6)),
        draw(st.sampled_from(["client", "server"])),
        msg,
        msg.violations,
        note=draw(st.none() | texts),
        wsp=wsp,
    )


@settings(max_examples=400, deadline=None)
@given(captured(), st.booleans())
def test_any_message(item: CapturedMessage, with_hex: bool) -> None:
    check(item, with_hex)


def test_reserved_opcode_falls_back() -> None:
    item = CapturedMessage(1, 1.5, 1, "client", WsMessage(3, b"x"), ("bad-opcode",))
    assert not check(item, False)


def test_buffer_limit_is_an_error() -> None:
    writer = c_writer(False, limit=1024)
    item = CapturedMessage(1, 1.5, 1, "client", WsMessage(2, b"\0" * 2000), ())
    with pytest.raises(MemoryError):
        writer.write(item)
    assert writer.take() == b""
