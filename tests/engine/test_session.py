"""Written scenarios for the session engine: two engines back to back, no sockets.

Every transition of the table in ``engine/states.py`` is driven here by the
message or call that causes it, and so is every illegal event that a peer or a
caller can produce, each with the close code it must carry.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from wsproto_tools.codec import (
    Acknowledge,
    Authenticate,
    BinaryData,
    Challenge,
    Close,
    Deliver,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Publish,
    Subscribe,
    TextData,
    Unknown,
    encode,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import JwtVerifier
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.keys import verify_resume_token
from wsproto_tools.engine.rules import Rule
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import Credentials, ServerAuth, SessionConfig
from wsproto_tools.engine.states import (
    LocalIllegalTransition,
    RemoteIllegalTransition,
    State,
)
from wsproto_tools.exceptions import (
    AuthenticationError,
    CloseCode,
    LocalProtocolError,
    RemoteProtocolError,
)

N1, N2 = b"\x01" * 16, b"\x02" * 16
KEY = b"k" * 32


def server(methods: str = "hmac") -> ServerSession:
    auth = {
        "hmac": ServerAuth(secret=b"s3cret", token_key=b"t" * 32),
        "jwt": ServerAuth(jwt=JwtVerifier(KEY), token_key=b"t" * 32),
        "none": ServerAuth(token_key=b"t" * 32),
    }[methods]
    return ServerSession(auth)


def msg(payload: Any, seq: int = 0, flags: Flags = Flags.NONE) -> Message:
    return Message(payload, seq, 0, 0, flags)


# ------------------------------------------------------------- transitions


def test_connecting_to_handshaking_to_active_hmac(make_pair: Any) -> None:
    p = make_pair()
    assert p.client.state is State.CONNECTING and p.server.state is State.CONNECTING
    p.open()
    assert p.client.state is State.HANDSHAKING and p.server.state is State.HANDSHAKING
    p.to_client()  # Challenge
    assert p.client.state is State.HANDSHAKING
    sent = p.client.messages_to_send()
    assert [type(m.payload) for m in sent] == [Handshake, Authenticate]
    for m in sent:
        p.server_events.extend(p.server.receive(m, p.now))
    # Authenticated: credentials checked, session not yet attached
    assert p.server.state is State.AUTHENTICATED
    auth = [e for e in p.server_events if isinstance(e, ev.AuthSucceeded)]
    assert len(auth) == 1 and auth[0].resume is None
    p.server.accept(42, p.now)
    assert p.server.state is State.ACTIVE
    p.to_client()
    assert p.client.state is State.ACTIVE
    assert p.client.session_id == 42
    accepted = [e for e in p.client_events if isinstance(e, ev.Accepted)]
    assert accepted == [ev.Accepted(42, False, ("ack", "batch", "pubsub"))]
    assert p.client.keys == p.server.keys or p.client.keys is None


def test_active_to_closing_to_closed_both_sides(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.close(CloseCode.NORMAL, "bye", p.now)
    assert p.client.state is State.CLOSING
    p.to_server()
    assert p.server.state is State.CLOSING
    assert ev.PeerClosed(1000, "bye") in p.server_events
    p.to_client()  # the server's answering Close
    assert ev.PeerClosed(1000, "") in p.client_events
    assert p.client.state is State.CLOSING
    # late data after our Close is drained, not an error
    assert p.client.receive(msg(Deliver("t", 1, 1, b"x")), p.now) == []
    p.client.closed()
    p.server.closed()
    assert p.client.state is State.CLOSED and p.server.state is State.CLOSED


def test_active_to_reconnecting_to_handshaking_and_expiry(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.lose()
    assert p.client.state is State.RECONNECTING and p.server.state is State.RECONNECTING
    p.client.connection_made(p.now, nonce=N1)
    assert p.client.state is State.HANDSHAKING
    p.server.expire()
    assert p.server.state is State.CLOSED


def test_lost_during_a_resume_handshake_stays_resumable(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.lose()
    p.open()  # the resume attempt: Handshaking again
    assert p.client.state is State.HANDSHAKING
    p.client.connection_lost(p.now)  # and that connection dies too
    assert p.client.state is State.RECONNECTING
    p.connect()
    assert p.client.state is State.ACTIVE
    assert [e.resumed for e in p.client_events if isinstance(e, ev.Accepted)] == [False, True]


def test_lost_before_active_is_final(make_pair: Any) -> None:
    c = ClientSession(Credentials(secret=b"s3cret"))
    c.connection_lost(0.0)  # the connect itself failed
    assert c.state is State.CLOSED
    s = server()
    s.connection_made(0.0, nonce=N1)
    s.connection_lost(0.0)
    assert s.state is State.CLOSED
    p = make_pair()
    p.open()
    p.to_client()
    for m in p.client.messages_to_send():
        p.server.receive(m, p.now)
    assert p.server.state is State.AUTHENTICATED
    p.server.connection_lost(p.now)
    assert p.server.state is State.CLOSED


def test_close_during_handshake(make_pair: Any) -> None:
    p = make_pair()
    p.open()
    p.client.close(CloseCode.GOING_AWAY, "changed my mind", p.now)
    assert p.client.state is State.CLOSING
    p.to_server()
    assert p.server.state is State.CLOSING
    s = server("none")
    s.connection_made(0.0, nonce=N1)
    s.receive(msg(Handshake(auth="none")), 0.0)
    s.close(CloseCode.GOING_AWAY, "shutting down", 0.0)  # from Authenticated
    assert s.state is State.CLOSING


def test_reconnecting_session_can_be_closed_locally(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.lose()
    p.client.close(CloseCode.NORMAL, "gave up", p.now)
    assert p.client.state is State.CLOSED


# ------------------------------------------------------------- illegal events


def test_data_before_handshake_is_a_policy_violation() -> None:
    s = server()
    s.connection_made(0.0, nonce=N1)
    with pytest.raises(RemoteIllegalTransition) as info:
        s.receive(msg(Publish("t", b"x"), 1), 0.0)
    assert info.value.close_code == CloseCode.POLICY_VIOLATION
    assert "handshaking" in str(info.value)


def test_data_while_authenticated_is_a_policy_violation() -> None:
    s = server("none")
    s.connection_made(0.0, nonce=N1)
    s.receive(msg(Handshake(auth="none")), 0.0)
    assert s.state is State.AUTHENTICATED
    with pytest.raises(RemoteIllegalTransition) as info:
        s.receive(msg(TextData("early"), 1), 0.0)
    assert info.value.close_code == CloseCode.POLICY_VIOLATION


def test_message_while_connecting_is_illegal() -> None:
    c = ClientSession()
    with pytest.raises(RemoteIllegalTransition) as info:
        c.receive(msg(Challenge(N1, ("none",))), 0.0)
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def test_second_handshake_is_illegal() -> None:
    s = server()
    s.connection_made(0.0, nonce=N1)
    s.receive(msg(Handshake(auth="hmac", client_nonce=N2)), 0.0)
    with pytest.raises(RemoteProtocolError, match="second Handshake") as info:
        s.receive(msg(Handshake(auth="hmac", client_nonce=N2)), 0.0)
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def test_handshake_when_active_is_illegal(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteIllegalTransition, match="handshake is not allowed in state active"):
        p.server.receive(msg(Handshake(auth="hmac", client_nonce=N2)), p.now)


def test_authenticate_before_handshake_is_illegal() -> None:
    s = server()
    s.connection_made(0.0, nonce=N1)
    with pytest.raises(RemoteProtocolError, match="before Handshake") as info:
        s.receive(msg(Authenticate("hmac", b"x" * 32)), 0.0)
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def test_challenge_twice_and_response_before_handshake_are_illegal() -> None:
    c = ClientSession(Credentials(secret=b"s"))
    c.connection_made(0.0, nonce=N2)
    with pytest.raises(RemoteProtocolError, match="HandshakeResponse before the Handshake"):
        c.receive(msg(HandshakeResponse(1)), 0.0)
    c = ClientSession(Credentials(secret=b"s"))
    c.connection_made(0.0, nonce=N2)
    c.receive(msg(Challenge(N1, ("hmac",))), 0.0)
    with pytest.raises(RemoteProtocolError, match="Challenge after the Handshake was sent"):
        c.receive(msg(Challenge(N1, ("hmac",))), 0.0)


def test_a_protocol_error_fails_the_session_until_it_closes() -> None:
    c = ClientSession(Credentials(secret=b"s"))
    c.connection_made(0.0, nonce=N2)
    with pytest.raises(RemoteProtocolError):
        c.receive(msg(HandshakeResponse(1)), 0.0)
    assert c.state is State.ERROR
    with pytest.raises(LocalProtocolError, match="the session failed"):
        c.receive(msg(Challenge(N1, ("hmac",))), 0.0)
    with pytest.raises(LocalIllegalTransition):
        c.heartbeat(0.0)
    c.close(1002, "bad", 0.0)
    assert c.state is State.CLOSING
    assert [type(m.payload).__name__ for m in c.messages_to_send()] == ["Close"]
    c.closed()
    assert c.state is State.CLOSED


def test_a_failed_established_session_stays_resumable(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteProtocolError):
        p.server.receive(msg(Deliver("t", 1, 1, b"")), p.now)
    assert p.server.state is State.ERROR
    p.server.connection_lost(p.now)
    assert p.server.state is State.RECONNECTING


@pytest.mark.parametrize(
    ("side", "message", "error"),
    [
        ("client", HandshakeResponse(1), "accept is not allowed in state active"),
        ("server", Authenticate("hmac", b""), "auth_ok is not allowed in state active"),
        ("client", Challenge(N1, ("hmac",)), "challenge is not allowed in state active"),
    ],
)
def test_handshake_messages_when_active_are_illegal(
    make_pair: Any, side: str, message: Any, error: str
) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteIllegalTransition, match=error):
        getattr(p, side).receive(msg(message), p.now)


def test_server_only_messages_from_a_client_are_refused(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteProtocolError, match="Deliver is not allowed from the client"):
        p.server.receive(msg(Deliver("t", 1, 1, b"")), p.now)
    with pytest.raises(RemoteProtocolError, match="Publish is not allowed from the server"):
        p.client.receive(msg(Publish("t", b""), 1), p.now)


def test_messages_after_closed_are_illegal(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.close(1000, "", p.now)
    p.client.closed()
    with pytest.raises(RemoteIllegalTransition, match="state closed"):
        p.client.receive(msg(TextData("late"), 1), p.now)
    with pytest.raises(RemoteIllegalTransition, match="close is not allowed in state closed"):
        p.client.receive(msg(Close(1000)), p.now)


def test_local_misuse_is_the_callers_fault(make_pair: Any) -> None:
    c = ClientSession()
    with pytest.raises(LocalIllegalTransition):
        c.publish("t", b"x", 0.0)
    with pytest.raises(LocalIllegalTransition):
        c.heartbeat(0.0)
    with pytest.raises(LocalIllegalTransition):
        c.request(1, "echo", b"", 0.0)
    c.connection_made(0.0, nonce=N1)
    with pytest.raises(LocalIllegalTransition):
        c.connection_made(0.0, nonce=N1)  # already open
    with pytest.raises(LocalProtocolError, match="nonce"):
        ClientSession().connection_made(0.0, nonce=b"short")
    s = server()
    with pytest.raises(LocalProtocolError, match="nonce"):
        s.connection_made(0.0, nonce=b"")
    p = make_pair()
    p.connect()
    with pytest.raises(LocalProtocolError, match="positive"):
        ServerSession(ServerAuth()).accept(0, 0.0)


# ------------------------------------------------------------- authentication


def test_wrong_secret_is_refused_with_4001(make_pair: Any) -> None:
    p = make_pair(credentials=Credentials(secret=b"wrong"))
    p.open()
    p.to_client()
    with pytest.raises(AuthenticationError, match="wrong secret") as info:
        p.to_server()
    assert info.value.close_code == CloseCode.WSP_AUTH_FAILED


def test_server_must_prove_the_secret_too(make_pair: Any) -> None:
    p = make_pair()
    p.open()
    p.to_client()
    for m in p.client.messages_to_send():
        p.server.receive(m, p.now)
    p.server.accept(5, p.now)
    (response,) = [
        m for m in p.server.messages_to_send() if isinstance(m.payload, HandshakeResponse)
    ]
    forged = HandshakeResponse(5, ("ack",), server_proof=b"\0" * 32)
    with pytest.raises(AuthenticationError, match="server proof"):
        p.client.receive(msg(forged), p.now)
    assert response.payload.server_proof


def test_method_the_server_does_not_accept(make_pair: Any) -> None:
    p = make_pair(auth=ServerAuth(jwt=JwtVerifier(KEY)))
    p.open()
    with pytest.raises(AuthenticationError, match="does not accept 'hmac'"):
        p.to_client()
    s = server("hmac")
    s.connection_made(0.0, nonce=N1)
    with pytest.raises(AuthenticationError, match="'none' not accepted") as info:
        s.receive(msg(Handshake(auth="none")), 0.0)
    assert info.value.close_code == CloseCode.WSP_AUTH_FAILED


def test_authenticate_with_other_method_than_announced() -> None:
    s = server()
    s.connection_made(0.0, nonce=N1)
    s.receive(msg(Handshake(auth="hmac", client_nonce=N2)), 0.0)
    with pytest.raises(AuthenticationError, match="method 'jwt'"):
        s.receive(msg(Authenticate("jwt", b"x")), 0.0)


def test_jwt_handshake_with_topic_claims(make_pair: Any) -> None:
    token = jwt.encode(
        {"sub": "bob", "exp": 2000, "wsp": {"pub": ["ok.*"], "sub": ["ok.*"]}}, KEY, "HS256"
    )
    p = make_pair(
        auth=ServerAuth(jwt=JwtVerifier(KEY), token_key=b"t" * 32),
        credentials=Credentials(token=token),
    )
    p.connect()
    assert p.client.state is State.ACTIVE
    (auth,) = [e for e in p.server_events if isinstance(e, ev.AuthSucceeded)]
    assert auth.grant.subject == "bob"
    assert p.client.keys is None  # no shared secret, no session keys
    p.client.publish("ok.a", b"fine", p.now)
    p.pump()
    p.client.publish("secret", b"no", p.now)
    with pytest.raises(RemoteProtocolError, match="publishing to topic 'secret'") as info:
        p.to_server()
    assert info.value.close_code == CloseCode.WSP_FORBIDDEN_TOPIC
    p.server.fail(info.value, p.now)
    assert p.server.state is State.CLOSING
    assert isinstance(p.server.messages_to_send()[-1].payload, Close)


def test_jwt_forbidden_subscribe_and_expired(make_pair: Any) -> None:
    token = jwt.encode({"exp": 2000, "wsp": {"sub": []}}, KEY, "HS256")
    p = make_pair(auth=ServerAuth(jwt=JwtVerifier(KEY)), credentials=Credentials(token=token))
    p.connect()
    p.client.subscribe("any", p.now)
    with pytest.raises(RemoteProtocolError, match="subscribing") as info:
        p.to_server()
    assert info.value.close_code == CloseCode.WSP_FORBIDDEN_TOPIC
    expired = jwt.encode({"exp": 10}, KEY, "HS256")
    p = make_pair(auth=ServerAuth(jwt=JwtVerifier(KEY)), credentials=Credentials(token=expired))
    p.open()
    p.to_client()
    with pytest.raises(AuthenticationError, match="expired"):
        p.to_server()
    forged = jwt.encode({}, b"x" * 32, "HS256")
    p = make_pair(auth=ServerAuth(jwt=JwtVerifier(KEY)), credentials=Credentials(token=forged))
    p.open()
    p.to_client()
    with pytest.raises(AuthenticationError, match="forged"):
        p.to_server()


def test_no_auth(make_pair: Any) -> None:
    p = make_pair(auth=ServerAuth(), credentials=Credentials())
    p.connect()
    assert p.client.state is State.ACTIVE and p.server.grant.may_publish("x")


def test_encryption_under_hkdf_keys(make_pair: Any) -> None:
    caps = ("ack", "batch", "encrypt", "pubsub")
    p = make_pair(config=SessionConfig(capabilities=caps))
    p.connect()
    assert "encrypt" in p.client.capabilities and p.client.keys == p.server.keys
    p.client.send_text("private", p.now)
    wire = p.client.data_to_send()
    assert b"private" not in b"".join(wire)
    for chunk in wire:
        p.server_events.extend(p.server.receive_data(chunk, p.now))
    assert any(
        isinstance(e, ev.DataReceived) and e.payload == TextData("private") for e in p.server_events
    )


def test_compression_when_negotiated(make_pair: Any) -> None:
    caps = ("ack", "batch", "compress", "pubsub")
    p = make_pair(config=SessionConfig(capabilities=caps))
    p.connect()
    text = "the same words again and again, " * 20
    p.client.send_text(text, p.now)
    p.client.send_text("short", p.now)
    wire = p.client.data_to_send()
    assert sum(map(len, wire)) < len(text) // 2
    for chunk in wire:
        p.server_events.extend(p.server.receive_data(chunk, p.now))
    got = [e.payload for e in p.server_events if isinstance(e, ev.DataReceived)]
    assert got == [TextData(text), TextData("short")]
    flags = [m.flags for m, _, _ in p.client.unacked.values()]
    assert flags[0] & Flags.COMPRESSED and not flags[1] & Flags.COMPRESSED


def test_unnegotiated_flags_and_batch_are_refused(make_pair: Any) -> None:
    p = make_pair(config=SessionConfig(capabilities=("ack",)))
    p.connect()
    with pytest.raises(RemoteProtocolError, match="compress") as info:
        p.server.receive(msg(TextData("x"), 1, Flags.COMPRESSED), p.now)
    assert info.value.close_code == CloseCode.WSP_UNNEGOTIATED
    from wsproto_tools.codec import Batch

    p = make_pair(config=SessionConfig(capabilities=("ack",)))
    p.connect()
    with pytest.raises(RemoteProtocolError, match="batch"):
        p.server.receive(msg(Batch((msg(TextData("x"), 1),))), p.now)


def test_unknown_capability_and_unknown_type() -> None:
    s = server("none")
    s.connection_made(0.0, nonce=N1)
    with pytest.raises(RemoteProtocolError, match="unknown capabilities") as info:
        s.receive(msg(Handshake(capabilities=("teleport",), auth="none")), 0.0)
    assert info.value.close_code == CloseCode.WSP_UNNEGOTIATED


def test_unknown_message_type_is_answered_not_fatal(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.server.receive(msg(Unknown(0x0177, b"??")), p.now)
    (err,) = [m for m in p.server.messages_to_send() if m.type_name == "Error"]
    assert "0x0177" in err.payload.message


# ------------------------------------------------------------- delivery


def test_acks_are_coalesced_and_resolve_publishes(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    seqs = [p.client.publish("t", b"%d" % i, p.now) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5] and p.client.in_flight == 5
    assert len(p.client.outbox) == 5
    p.to_server()  # one batch
    acks = [m for m in p.server.messages_to_send() if isinstance(m.payload, Acknowledge)]
    assert [a.payload.sequence for a in acks] == [5]
    p.client.receive(acks[0], p.now + 0.05)
    assert p.client.in_flight == 0
    assert p.client.rtt.srtt == pytest.approx(0.05)


def test_lost_message_is_retransmitted_after_rto_and_applied_once(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"one", p.now)
    p.to_server(drop=True)  # lost in transit (not possible over TCP, but over a relay)
    assert p.client.next_deadline() == pytest.approx(p.now + p.client.rtt.rto)
    events = p.tick(p.client.rtt.rto)
    assert any(isinstance(e, ev.Retransmitted) and e.count == 1 for e in events)
    assert p.client.rtt.rto == pytest.approx(2.0)  # backed off
    p.pump()
    published = [e for e in p.server_events if isinstance(e, ev.PublishReceived)]
    assert [e.data for e in published] == [b"one"]
    assert p.client.in_flight == 0


def test_duplicates_are_suppressed_and_reacked(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"once", p.now)
    (wire,) = p.client.data_to_send()
    p.server.receive_data(wire, p.now)
    again = p.server.receive_data(wire, p.now)  # a duplicate
    assert again == []
    acks = [m for m in p.server.messages_to_send() if isinstance(m.payload, Acknowledge)]
    assert acks and acks[0].payload.sequence == 1


def test_sequence_gap_is_a_protocol_error(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteProtocolError, match="sequence gap: expected 1, got 3") as info:
        p.server.receive(msg(Publish("t", b"x"), 3), p.now)
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR


def test_ack_of_unsent_sequence_is_a_protocol_error(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteProtocolError, match="sent only 0"):
        p.client.receive(msg(Acknowledge(4)), p.now)


def test_publish_id_dedup(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"a", p.now, publish_id=9)
    p.client.publish("t", b"a again", p.now, publish_id=9)
    p.pump()
    published = [e for e in p.server_events if isinstance(e, ev.PublishReceived)]
    assert [e.data for e in published] == [b"a"]
    assert p.client.in_flight == 0


def test_window_limits_in_flight(make_pair: Any) -> None:
    p = make_pair(config=SessionConfig(window=4))
    p.connect()
    sent = 0
    while p.client.can_send():
        p.client.publish("t", b"x", p.now)
        sent += 1
    assert sent == 4
    p.pump()
    assert p.client.can_send()


def test_text_and_binary_data_exactly_once(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.send_text("hello", p.now)
    p.client.send_binary(b"\x00\x01", p.now)
    p.pump()
    data = [e.payload for e in p.server_events if isinstance(e, ev.DataReceived)]
    assert data == [TextData("hello"), BinaryData(b"\x00\x01")]
    p.server.send_error(CloseCode.UNSUPPORTED_DATA, "nope", p.now, ref_sequence=2)
    p.pump()
    assert ev.PeerError(1003, "nope", 2) in p.client_events


# ------------------------------------------------------------- heartbeats


def test_heartbeats_measure_rtt_and_silence_is_fatal(make_pair: Any) -> None:
    cfg = SessionConfig(heartbeat_interval=1.0, heartbeat_timeout=3.0)
    p = make_pair(config=cfg)
    p.connect()
    assert p.client.next_deadline() == pytest.approx(p.now + 1.0)
    p.tick(1.0)
    (probe,) = p.client.messages_to_send()
    assert probe.payload == Heartbeat(1, False) and probe.timestamp == int(p.now * 1e6)
    p.server.receive(probe, p.now)
    (answer,) = [m for m in p.server.messages_to_send() if isinstance(m.payload, Heartbeat)]
    assert answer.payload == Heartbeat(1, True)
    events = p.client.receive(answer, p.now + 0.01)
    assert events == [ev.HeartbeatAnswered(1, pytest.approx(0.01))]
    with pytest.raises(RemoteProtocolError, match="probe 7, which the client never sent"):
        p.client.receive(msg(Heartbeat(7, True)), p.now)
    assert p.client.state is State.ERROR
    # the server hears nothing for the timeout: dead peer, 4006
    with pytest.raises(RemoteProtocolError, match="no message from the peer") as info:
        p.server.on_timer(p.now + 3.5)
    assert info.value.close_code == CloseCode.WSP_HEARTBEAT_TIMEOUT


# ------------------------------------------------------------- pub/sub and resume


def test_subscribe_publish_deliver_in_order(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.subscribe("news", p.now)
    p.pump()
    assert ev.SubscriptionConfirmed("news", 7, 1) in p.client_events
    for i in range(3):
        p.client.publish("news", b"m%d" % i, p.now)
    p.pump()
    assert p.deliveries() == [("news", 1, b"m0"), ("news", 2, b"m1"), ("news", 3, b"m2")]


def test_resume_replays_missed_and_retransmits_unacked(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.subscribe("news", p.now)
    p.pump()
    p.client.publish("news", b"a", p.now)
    p.pump()
    token = p.client.resume_token
    # publish while the connection dies: the publish is lost in flight
    p.client.publish("news", b"b", p.now)
    p.to_server(drop=True)
    p.lose()
    # meanwhile someone else publishes on the topic
    p.hub.publish("news", b"c", p.now)
    p.now += 1
    p.connect()
    accepted = [e for e in p.client_events if isinstance(e, ev.Accepted)]
    assert accepted[-1].resumed and accepted[-1].session_id == 101
    # a resume reissues the token: the same session, a lifetime counted from now
    assert p.client.resume_token != token
    claims = verify_resume_token(b"t" * 32, p.client.resume_token.decode(), p.now)
    assert claims.session_id == 101 and claims.issued_at == p.now
    assert p.deliveries() == [("news", 1, b"a"), ("news", 2, b"c"), ("news", 3, b"b")]
    published = [e.data for e in p.server_events if isinstance(e, ev.PublishReceived)]
    assert published == [b"a", b"b"]
    assert p.client.in_flight == 0


def test_resume_when_the_ack_was_lost_applies_once(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"x", p.now)
    p.to_server()  # applied; the ack never reaches the client
    p.lose()
    assert p.client.in_flight == 1
    p.connect()
    published = [e.data for e in p.server_events if isinstance(e, ev.PublishReceived)]
    assert published == [b"x"]
    assert p.client.in_flight == 0


def test_continuity_lost_when_history_is_shorter_than_the_gap(make_pair: Any) -> None:
    p = make_pair(history=3)
    p.connect()
    p.client.subscribe("t", p.now)
    p.pump()
    p.lose()
    for i in range(10):
        p.hub.publish("t", b"%d" % i, p.now)
    p.connect()
    lost = [e for e in p.client_events if isinstance(e, ev.ContinuityLostNotice)]
    assert lost == [ev.ContinuityLostNotice("t", 7, 1, 8)]
    assert p.deliveries() == [("t", 8, b"7"), ("t", 9, b"8"), ("t", 10, b"9")]
    # the notice comes before the first delivery after the gap
    kinds = [
        type(e) for e in p.client_events if isinstance(e, ev.ContinuityLostNotice | ev.Delivery)
    ]
    assert kinds[0] is ev.ContinuityLostNotice


def test_unknown_resume_token_starts_a_new_session(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"pending", p.now)
    p.to_server(drop=True)
    p.lose()
    p.sessions.clear()  # the server forgot (restart)
    p.connect()
    accepted = [e for e in p.client_events if isinstance(e, ev.Accepted)]
    assert accepted[-1].resumed is False and accepted[-1].session_id == 102
    published = [e for e in p.server_events if isinstance(e, ev.PublishReceived)]
    assert [(e.data, e.sequence) for e in published] == [(b"pending", 1)]


def test_deliver_gap_or_unsubscribed_topic_is_a_protocol_error(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    with pytest.raises(RemoteProtocolError, match="never subscribed"):
        p.client.receive(msg(Deliver("x", 7, 1, b"")), p.now)

    def subscribed() -> Any:
        p = make_pair()
        p.connect()
        p.client.subscribe("t", p.now)
        p.pump()
        p.client.receive(msg(Deliver("t", 7, 1, b"")), p.now)
        assert p.client.receive(msg(Deliver("t", 7, 1, b"")), p.now) == []  # duplicate
        return p

    p = subscribed()
    with pytest.raises(RemoteProtocolError, match="'t' jumped from offset 1 to 3") as info:
        p.client.receive(msg(Deliver("t", 7, 3, b"")), p.now)
    assert info.value.rule == Rule.DELIVER_ORDER
    p = subscribed()
    with pytest.raises(RemoteProtocolError, match="from epoch 7 to 8"):
        p.client.receive(msg(Deliver("t", 8, 2, b"")), p.now)


def test_request_response(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.request(5, "echo", b"ping", p.now)
    p.pump()
    assert ev.Reply(5, b"ping", 0) in p.client_events


def test_v1_wire_works_end_to_end(make_pair: Any) -> None:
    p = make_pair(version=1)
    p.connect()
    p.client.subscribe("t", p.now)
    p.pump()
    p.client.publish("t", b"v1", p.now)
    wire = encode(Message(Subscribe("x")), version=1)
    assert wire[:2] == b"\xd1\xc0"
    p.pump()
    assert p.deliveries() == [("t", 1, b"v1")]
