"""Observer mode: a recorded conversation is followed passively and judged."""

from __future__ import annotations

from typing import Any

import jwt

from wsproto_tools.codec import (
    Acknowledge,
    Authenticate,
    BinaryData,
    Challenge,
    Close,
    ContinuityLost,
    Deliver,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Publish,
    Sealed,
    Subscribe,
    Subscribed,
    TextData,
    Unknown,
)
from wsproto_tools.engine.auth import JwtVerifier
from wsproto_tools.engine.observer import Direction, SessionObserver, Verdict, Violation
from wsproto_tools.engine.session import Credentials, ServerAuth, SessionConfig
from wsproto_tools.engine.states import State

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def record(pair: Any) -> list[tuple[Direction, Message, float]]:
    """Record every WebSocket message the pair carries, decoded without keys (as a
    capture would see it)."""
    pair.log = []
    log: list[tuple[Direction, Message, float]] = pair.log
    return log


def observe(log: list[tuple[Direction, Message, float]], **kw: Any) -> list[Violation]:
    obs = SessionObserver(**kw)
    out: list[Violation] = []
    for direction, message, ts in log:
        out.extend(obs.feed(direction, message, ts))
    return out


def violations(found: list[Violation]) -> list[Violation]:
    return [v for v in found if v.verdict is Verdict.VIOLATION]


def m(payload: Any, seq: int = 0, flags: Flags = Flags.NONE, sid: int = 0) -> Message:
    return Message(payload, seq, sid, 0, flags)


def handshake(auth: str = "none") -> list[tuple[Direction, Message, float]]:
    return [
        (S2C, m(Challenge(b"n" * 16, (auth,))), 0.0),
        (C2S, m(Handshake(("ack", "batch", "pubsub"), auth=auth, client_nonce=b"c" * 16)), 0.1),
        *([(C2S, m(Authenticate("hmac", b"p" * 32)), 0.1)] if auth == "hmac" else []),
        (S2C, m(HandshakeResponse(9, ("ack", "batch", "pubsub"), heartbeat_ms=1000)), 0.2),
    ]


def test_a_clean_recorded_conversation_has_only_unchecked_findings(make_pair: Any) -> None:
    p = make_pair()
    log = record(p)
    p.connect()
    p.client.subscribe("news", p.now)
    p.pump()
    for i in range(5):
        p.client.publish("news", b"%d" % i, p.now)
        p.pump()
    p.client.heartbeat(p.now)
    p.pump()
    p.client.close(1000, "done", p.now)
    p.pump()
    obs = SessionObserver()
    found: list[Violation] = []
    for direction, message, ts in log:
        found.extend(obs.feed(direction, message, ts))
    assert violations(found) == []
    unchecked = sorted({v.rule for v in found if v.verdict is Verdict.UNCHECKED})
    assert unchecked == ["auth-proof"]  # the client's proof and the server's, never "fine"
    assert obs.state is State.CLOSING
    assert len(log) > 10


def test_resumed_conversation_is_followed(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.subscribe("t", p.now)
    p.pump()
    p.client.publish("t", b"a", p.now)
    p.pump()
    p.client.publish("t", b"b", p.now)
    p.to_server(drop=True)
    p.lose()
    log = record(p)
    p.connect()
    found = observe(log)
    assert violations(found) == []
    assert {v.rule for v in found} == {"auth-proof", "resume-token"}


def test_encrypted_payloads_are_reported_unchecked(make_pair: Any) -> None:
    p = make_pair(config=SessionConfig(capabilities=("ack", "encrypt", "pubsub")))
    log = record(p)
    p.connect()
    p.client.send_text("secret", p.now)
    p.pump()
    found = observe(log)
    assert violations(found) == []
    enc = [v for v in found if v.rule == "encrypted"]
    assert enc and all(v.verdict is Verdict.UNCHECKED for v in enc)
    assert any(isinstance(msg.payload, Sealed) for _, msg, _ in log)


def test_data_before_handshake() -> None:
    found = observe(
        [(S2C, m(Challenge(b"n" * 16, ("none",))), 0.0), (C2S, m(Publish("t", b"x"), 1), 0.1)]
    )
    (v,) = found
    assert v.rule == "state" and v.culprit == "client" and v.close_code == 1008
    assert "handshaking" in v.message


def test_handshake_order_violations() -> None:
    found = observe(
        [
            (C2S, m(Handshake(auth="none")), 0.0),
            (S2C, m(Challenge(b"n" * 16)), 0.1),
            (S2C, m(Challenge(b"n" * 16)), 0.1),
        ]
    )
    assert [v.rule for v in found] == ["handshake-order", "handshake-order"]
    assert "before the server's Challenge" in found[0].message
    found = observe(
        [
            (S2C, m(Challenge(b"n" * 16, ("hmac",))), 0.0),
            (C2S, m(Handshake(auth="hmac", client_nonce=b"c" * 16)), 0.1),
            (S2C, m(HandshakeResponse(1)), 0.2),
        ]
    )
    assert [v.rule for v in violations(found)] == ["handshake-order"]
    assert "before the hmac Authenticate" in violations(found)[0].message
    found = observe([(S2C, m(HandshakeResponse(1)), 0.0)])
    assert [v.rule for v in found] == ["handshake-order"]


def test_capabilities_and_flags() -> None:
    log = [
        (S2C, m(Challenge(b"n" * 16, ("none",))), 0.0),
        (C2S, m(Handshake(("ack",), auth="none")), 0.1),
        (S2C, m(HandshakeResponse(9, ("ack", "encrypt"))), 0.2),
        (C2S, m(TextData("x"), 1, Flags.COMPRESSED), 0.3),
    ]
    found = observe(log)
    assert [v.rule for v in found] == ["capability", "flag"]
    assert found[1].close_code == 4007


def test_sequence_gap_retransmission_and_acks() -> None:
    log = [
        *handshake(),
        (C2S, m(Publish("t", b"a"), 1), 1.0),
        (C2S, m(Publish("t", b"a"), 1), 1.1),  # a retransmission: fine
        (C2S, m(Publish("t", b"c"), 3), 1.2),  # gap
        (S2C, m(Acknowledge(3)), 1.3),
        (S2C, m(Acknowledge(5)), 1.4),  # acks what was never sent
        (S2C, m(Acknowledge(2)), 1.5),
    ]  # goes back
    found = observe(log)
    assert [v.rule for v in found] == ["sequence", "ack", "ack"]
    assert "expected 2, got 3" in found[0].message
    assert "sent only 3" in found[1].message


def test_heartbeat_rules_and_silence() -> None:
    log = [
        *handshake(),
        (C2S, m(Heartbeat(1, False)), 1.0),
        (S2C, m(Heartbeat(1, True)), 1.01),
        (S2C, m(Heartbeat(4, True)), 1.02),  # never probed
        (C2S, m(Heartbeat(2, False)), 2.0),
        (S2C, m(Heartbeat(2, True)), 7.0),
    ]  # late, and the server was silent
    found = observe(log)
    assert [v.rule for v in found] == ["heartbeat", "silence", "heartbeat"]
    obs = SessionObserver()
    for d, msg, ts in [*handshake(), (C2S, m(Heartbeat(3, False)), 1.0)]:
        obs.feed(d, msg, ts)
    (late,) = obs.finish(10.0)
    assert late.rule == "heartbeat" and late.culprit == "server"


def test_deliveries_offsets_and_continuity() -> None:
    log = [
        *handshake(),
        (S2C, m(Deliver("x", 1, 1, b"")), 1.0),  # never subscribed
        (C2S, m(Subscribe("t")), 1.1),
        (S2C, m(Subscribed("t", 1, 5)), 1.2),
        (S2C, m(Deliver("t", 1, 5, b"")), 1.3),
        (S2C, m(Deliver("t", 1, 5, b"")), 1.4),  # again
        (S2C, m(Deliver("t", 1, 7, b"")), 1.5),  # jump
        (S2C, m(ContinuityLost("t", 1, 8, 20)), 1.6),
        (S2C, m(Deliver("t", 1, 20, b"")), 1.7),  # announced: fine
        (S2C, m(Deliver("t", 2, 21, b"")), 1.8),
    ]  # epoch change unannounced
    found = observe(log)
    assert [v.rule for v in found] == ["deliver"] * 4
    assert "never subscribed" in found[0].message
    assert "again" in found[1].message and "jumped" in found[2].message
    assert "epoch" in found[3].message


def test_after_close_session_id_and_unknown_type() -> None:
    log = [
        *handshake(),
        (C2S, m(TextData("x"), 1, sid=77), 1.0),
        (S2C, m(Unknown(0x0150, b"")), 1.1),
        (C2S, m(Close(1000)), 1.2),
        (C2S, m(BinaryData(b"late"), 2), 1.3),
    ]
    found = observe(log)
    assert [(v.rule, v.verdict) for v in found] == [
        ("session-id", Verdict.VIOLATION),
        ("unknown-type", Verdict.UNCHECKED),
        ("after-close", Verdict.VIOLATION),
    ]


def test_jwt_time_is_checked_without_the_key(make_pair: Any) -> None:
    key = b"k" * 32
    token = jwt.encode({"exp": 10}, key, "HS256")
    log = [
        (S2C, m(Challenge(b"n" * 16, ("jwt",))), 100.0),
        (C2S, m(Handshake(auth="jwt", token=token)), 100.1),
        (S2C, m(HandshakeResponse(3)), 100.2),
    ]
    found = observe(log)
    assert [(v.rule, v.verdict) for v in found] == [
        ("auth-proof", Verdict.UNCHECKED),
        ("token-time", Verdict.VIOLATION),
        ("token-time", Verdict.VIOLATION),
    ]
    assert found[2].culprit == "server"
    good = jwt.encode({"exp": 2000}, key, "HS256")
    p = make_pair(auth=ServerAuth(jwt=JwtVerifier(key)), credentials=Credentials(token=good))
    log2 = record(p)
    p.connect()
    assert violations(observe(log2)) == []
