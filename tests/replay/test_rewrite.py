"""Rewriting recorded client messages into engine calls, and the bindings back (no sockets)."""

from __future__ import annotations

from wsproto_tools.codec import decode
from wsproto_tools.codec.schema import (
    Acknowledge,
    Batch,
    Deliver,
    Error,
    Flags,
    Heartbeat,
    Message,
    Publish,
    Request,
    Response,
    Sealed,
    Subscribe,
    Subscribed,
    TextData,
    Unsubscribe,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import Credentials, ServerAuth
from wsproto_tools.replay.cassette import CassetteMessage
from wsproto_tools.replay.rewrite import Rewriter, TopicOffsets, answer_keys, first_offsets

NOW = 1000.0


def active_client() -> tuple[ClientSession, ServerSession]:
    """A client session accepted by a server session, wired back to back."""
    client = ClientSession(Credentials(secret=b"s"))
    server = ServerSession(ServerAuth(secret=b"s"))
    server.connection_made(NOW, nonce=b"\x01" * 16)
    client.connection_made(NOW, nonce=b"\x02" * 16)
    for _ in range(5):
        for chunk in server.data_to_send():
            client.receive_data(chunk, NOW)
        for chunk in client.data_to_send():
            for event in server.receive_data(chunk, NOW):
                if isinstance(event, ev.AuthSucceeded):
                    server.accept(77, NOW)
    assert client.active
    return client, server


def sent(client: ClientSession) -> list[Message]:
    out: list[Message] = []
    for chunk in client.data_to_send():
        msg = decode(chunk)
        items = msg.payload.messages if isinstance(msg.payload, Batch) else (msg,)
        out.extend(m for m in items if not isinstance(m.payload, Acknowledge))
    return out


def test_requests_get_fresh_ids_and_their_responses_take_the_recorded_ones_back() -> None:
    client, _ = active_client()
    rewriter = Rewriter()
    assert rewriter.send(client, Message(Request(42, "echo", b"x")), NOW) is None
    assert rewriter.send(client, Message(Request(42, "echo", b"y")), NOW) is None
    [first, second] = sent(client)
    assert isinstance(first.payload, Request) and isinstance(second.payload, Request)
    assert (first.payload.id, second.payload.id) == (1, 2)
    back = rewriter.restore(Message(Response(2, b"y")))
    assert back.payload == Response(42, b"y")
    other = Message(Response(99, b"z"))
    assert rewriter.restore(other) is other  # not ours: left alone
    batch = rewriter.restore(Message(Batch((Message(Response(1, b"x")),))))
    assert batch.payload.messages[0].payload == Response(42, b"x")


def test_publishes_get_fresh_publish_ids_only_when_recorded_with_one() -> None:
    client, _ = active_client()
    rewriter = Rewriter()
    rewriter.send(client, Message(Publish("t", b"a", 900), sequence=12), NOW)
    rewriter.send(client, Message(Publish("t", b"b"), sequence=13), NOW)
    rewriter.send(client, Message(Publish("t", b"c", 901), sequence=14), NOW)
    ids = [m.payload.id for m in sent(client) if isinstance(m.payload, Publish)]
    assert ids == [1, None, 2]
    # an Error about the replayed sequence 2 names the recorded message (13)
    error = rewriter.restore(Message(Error(1008, "no", ref_sequence=2)))
    assert error.payload.ref_sequence == 13


def test_subscribe_from_an_offset_is_moved_by_the_topic_offsets() -> None:
    client, _ = active_client()
    offsets = TopicOffsets({"t": 10})
    offsets.observe(Message(Subscribed("t", 3, 1)))
    rewriter = Rewriter(offsets)
    rewriter.send(client, Message(Subscribe("t", from_offset=12, epoch=5)), NOW)
    rewriter.send(client, Message(Subscribe("u")), NOW)
    rewriter.send(client, Message(Unsubscribe("u")), NOW)
    [moved, plain, gone] = [m.payload for m in sent(client)]
    assert moved == Subscribe("t", 3, 3)  # 12 - 10 + 1, in the replay's epoch
    assert plain == Subscribe("u") and gone == Unsubscribe("u")
    assert TopicOffsets().offset("x", 5) == 5  # unknown: unchanged
    assert offsets.offset("t", 2) == 0  # never below 0


def test_what_cannot_be_sent_is_a_reason_and_engine_traffic_is_left_to_the_engine() -> None:
    client, _ = active_client()
    rewriter = Rewriter()
    sealed = Message(Sealed(0x0101, b"\x00"), sequence=1, flags=Flags.ENCRYPTED)
    assert "encrypted" in (rewriter.send(client, sealed, NOW) or "")
    assert rewriter.send(client, Message(Heartbeat(3)), NOW) is None
    assert rewriter.send(client, Message(Batch((Message(TextData("a"), sequence=1),
                                                Message(TextData("b"), sequence=2)))),
                         NOW) is None
    assert [m.payload for m in sent(client)] == [TextData("a"), TextData("b")]


def test_answer_keys() -> None:
    assert answer_keys(None) == [("message",)]
    assert answer_keys(Message(Response(7, b""))) == [("Response", 7)]
    assert answer_keys(Message(Deliver("t", 1, 9, b""))) == [("Deliver", "t")]
    assert answer_keys(Message(Acknowledge(3))) == []
    assert answer_keys(Message(Batch((Message(Acknowledge(3)), Message(Response(1)),
                                      Message(TextData("x")))))) == [
        ("Response", 1), ("message",)]
    assert answer_keys(Message(Error(4003, "no"))) == [("Error", 4003)]


def test_first_offsets_of_a_recording() -> None:
    messages = [
        CassetteMessage(1, "server", 0.1, "binary", wsp=Message(Subscribed("t", 1, 4))),
        CassetteMessage(1, "server", 0.2, "binary", wsp=Message(Deliver("t", 1, 4, b""))),
        CassetteMessage(2, "server", 0.3, "binary", wsp=Message(Deliver("u", 1, 8, b""))),
        CassetteMessage(2, "client", 0.4, "binary", wsp=Message(Deliver("v", 1, 8, b""))),
    ]
    assert first_offsets(messages) == {"t": 4, "u": 8}


def test_other_application_payloads_go_through_send_payload() -> None:
    from wsproto_tools.codec.schema import Close, DeltaCopy, DeltaUpdate, Unknown

    client, _ = active_client()
    rewriter = Rewriter()
    delta = DeltaUpdate("c", 1, 2, (DeltaCopy(0, 1), b"x"), 123)
    rewriter.send(client, Message(delta, sequence=5), NOW)
    rewriter.send(client, Message(Error(1003, "bad", 9), sequence=6), NOW)
    rewriter.send(client, Message(Unknown(0x01FE, b"?")), NOW)
    out = sent(client)
    assert [type(m.payload) for m in out] == [DeltaUpdate, Error, Unknown]
    assert [m.sequence for m in out] == [1, 2, 0]  # Unknown types are not sequenced
    assert Flags.ACK_REQUESTED in out[0].flags and Flags.ACK_REQUESTED not in out[1].flags
    assert rewriter.sequences == {1: 5, 2: 6}
    rewriter.send(client, Message(Close(1000, "bye")), NOW)
    assert [m.payload for m in sent(client)] == [Close(1000, "bye")]
