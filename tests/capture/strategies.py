"""Hypothesis strategies for the capture tests: random CapturedMessage records.

Used by test_tally_c.py here and by tests/render/test_c_lines.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from wsproto_tools.capture import CapturedMessage
from wsproto_tools.codec import encode
from wsproto_tools.exceptions import WspError
from wsproto_tools.ws import WsMessage

_spec = importlib.util.spec_from_file_location(
    "wsp_codec_strategies", Path(__file__).parent.parent / "codec" / "strategies.py"
)
assert _spec is not None and _spec.loader is not None
_strategies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_strategies)
wsp_messages = _strategies.messages


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
