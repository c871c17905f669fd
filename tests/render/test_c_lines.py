"""The C line writer (``render/_lines.c``) writes exactly what ``MessageLines`` writes.

The oracle for both is :func:`message_record` (the generic JSON encoder): the C
bytes must equal the Python writer's text byte for byte, and parse to the record.
"""

from __future__ import annotations

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
from wsproto_tools.render.capture import LineBuffer, MessageLines, message_record
from wsproto_tools.ws import WsMessage


def _helper(name: str, path: Path) -> Any:
    """A helper module of another test folder, loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CAPTURE_TESTS = Path(__file__).parent.parent / "capture"
_samples = _helper("wsp_capture_samples", _CAPTURE_TESTS / "samples.py")
samples, sample_messages = _samples.samples, _samples.sample_messages
captured = _helper("wsp_capture_strategies", _CAPTURE_TESTS / "strategies.py").captured
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
