"""Scripts: a recorded connection cut at its client messages (replay/plan.py)."""

from __future__ import annotations

from typing import Any

import pytest

from wsproto_tools.codec.schema import (
    ContinuityLost,
    Deliver,
    Error,
    Message,
    Response,
    Subscribed,
    TextData,
)
from wsproto_tools.replay.cassette import CassetteConnection, CassetteMessage
from wsproto_tools.replay.plan import (
    engine_traffic,
    is_wsp_connection,
    key_of,
    script_of,
)

from .recording import lines, wsp

NONCE = "00" * 16


def session_lines() -> list[dict[str, Any]]:
    return [
        {"conn": 1, "subprotocols": ["wsp.v2"]},
        {"conn": 1, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 1, "direction": "client", "t": 0.01,
         "wsp": wsp("Handshake", capabilities=["ack"], auth="hmac", client_nonce=NONCE)},
        {"conn": 1, "direction": "server", "t": 0.02,
         "wsp": wsp("HandshakeResponse", session_id=5)},
        {"conn": 1, "direction": "server", "t": 0.03, "wsp": wsp("TextData", text="hi")},
        {"conn": 1, "direction": "client", "t": 0.1, "wsp": wsp("Request", id=1, method="echo")},
        {"conn": 1, "direction": "client", "t": 0.11, "wsp": wsp("Acknowledge", sequence=1)},
        {"conn": 1, "direction": "server", "t": 0.12, "wsp": wsp("Response", id=1)},
        {"conn": 1, "direction": "client", "t": 0.2, "opcode": "ping", "text": "p"},
        {"conn": 1, "direction": "client", "t": 0.3, "wsp": wsp("Subscribe", topic="t")},
        {"conn": 1, "direction": "server", "t": 0.31, "wsp": wsp("Heartbeat", id=1)},
        {"conn": 1, "direction": "server", "t": 0.4, "opcode": "close", "close_code": 1001},
        {"conn": 1, "direction": "client", "t": 0.41, "opcode": "close", "close_code": 1001},
    ]


def test_a_wsp_session_is_cut_at_its_client_messages_without_engine_traffic() -> None:
    script = script_of(lines(*session_lines()), 1)
    assert script.wsp and script.conn == 1
    assert [m.wsp.type_name for m in script.opening if m.wsp] == ["TextData"]
    assert [s.message.wsp.type_name for s in script.steps if s.message.wsp] == [
        "Request", "Subscribe"]
    assert [s.index for s in script.steps] == [0, 1]
    assert [m.wsp.type_name for m in script.steps[0].after if m.wsp] == ["Response"]
    assert script.steps[1].after == []
    # Challenge, Handshake, HandshakeResponse, Acknowledge, the ping, Heartbeat
    assert script.engine_skipped == 6
    assert script.answers_before(0) is script.opening
    assert script.answers_before(1) is script.steps[0].after
    assert script.answers_before(2) == []
    assert script.server_close is not None and script.server_close.close_code == 1001
    assert script.client_close is not None and script.client_close.t == 0.41
    assert script.duration == 0.41
    assert script.steps[1].t == 0.3


def test_plain_traffic_keeps_every_message_but_pings() -> None:
    script = script_of(lines(
        {"conn": 3},
        {"conn": 3, "direction": "client", "t": 0.0, "opcode": "text", "text": "a"},
        {"conn": 3, "direction": "server", "t": 0.1, "opcode": "pong", "text": ""},
        {"conn": 3, "direction": "server", "t": 0.2, "opcode": "text", "text": "b"},
        {"conn": 3, "direction": "server", "t": 0.3, "opcode": "binary", "base64": "AA=="},
    ), 3)
    assert not script.wsp and script.opening == []
    assert [m.opcode for m in script.steps[0].after] == ["text", "binary"]
    assert script.engine_skipped == 1
    assert script.client_close is None and script.server_close is None
    assert script.duration == 0.0
    with pytest.raises(KeyError):
        script_of(lines({"conn": 3}), 4)


def test_what_makes_a_wsp_session() -> None:
    hello = CassetteMessage(1, "server", 0.0, "binary",
                            wsp=Message(TextData("x")))
    assert not is_wsp_connection(CassetteConnection(1, subprotocols=("chat",)), [hello])
    assert not is_wsp_connection(CassetteConnection(1), [])
    assert not is_wsp_connection(CassetteConnection(1, subprotocols=("wsp.v2",)), [hello])
    whole = lines(*session_lines())
    assert is_wsp_connection(whole.connections[1], whole.messages_of(1))
    # no subprotocol recorded: every binary message must be wsp
    raw = CassetteMessage(1, "client", 0.0, "binary", data=b"\x00")
    assert not is_wsp_connection(CassetteConnection(1), [*whole.messages_of(1), raw])


def test_keys_and_engine_traffic() -> None:
    def server(payload: Any) -> CassetteMessage:
        return CassetteMessage(1, "server", 0.0, "binary", wsp=Message(payload))

    assert key_of(server(Response(4, b""))) == ("Response", 4)
    assert key_of(server(Deliver("t", 1, 3, b""))) == ("Deliver", "t", 3)
    assert key_of(server(Subscribed("t", 1, 3))) == ("Subscribed", "t")
    assert key_of(server(ContinuityLost("t", 1, 2, 3))) == ("ContinuityLost", "t")
    assert key_of(server(Error(4003, "x", 9))) == ("Error", 4003, 9)
    assert key_of(server(TextData("x"))) is None
    assert key_of(CassetteMessage(1, "server", 0.0, "text", text="x")) is None
    whole = lines(*session_lines())
    kinds = [(m.wsp.type_name if m.wsp else m.opcode, engine_traffic(m)) for m in whole.messages]
    assert ("Challenge", True) in kinds and ("Handshake", True) in kinds
    assert ("Request", False) in kinds and ("ping", True) in kinds
    assert ("Heartbeat", True) in kinds and ("close", False) in kinds
