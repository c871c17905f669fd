"""A finding in the decoder's JSON names its checklist line (docs/protocol.md S.9)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from wsproto_tools.codec import (
    BinaryData,
    Challenge,
    Handshake,
    HandshakeResponse,
    Message,
)
from wsproto_tools.engine.observer import Direction, SessionObserver
from wsproto_tools.render.capture import session_findings

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def test_a_sequence_gap_is_rule_27_in_the_json() -> None:
    observer = SessionObserver()
    conversation = [
        (S2C, Message(Challenge(bytes(16), ("none",)))),
        (C2S, Message(Handshake(auth="none"))),
        (S2C, Message(HandshakeResponse(9))),
        (C2S, Message(BinaryData(b"a"), sequence=1)),
        (C2S, Message(BinaryData(b"c"), sequence=3)),  # 2 never came
    ]
    found = [f for d, m in conversation for f in observer.feed(d, m, 0.0)]
    item: Any = SimpleNamespace(session=found)
    # rule 27 of the checklist: "a gap is closed with 1002"
    assert session_findings(item) == [
        {
            "rule": "sequence",
            "rule_id": 27,
            "verdict": "violation",
            "culprit": "client",
            "message": "sequence gap: expected 2, got 3",
        }
    ]
