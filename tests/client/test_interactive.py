"""The interactive client of ``wsp tui --connect`` against real servers on 127.0.0.1.

Oracles: what a second, independent client library session publishes; what a
plain ``websockets`` server actually received; and the server's own inspector
feed (docs/inspect.md), which decodes on the server side the bytes that really
crossed the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from wsproto_tools.client import Client
from wsproto_tools.client.interactive import (
    InteractiveClient,
    field_value,
    type_fields,
    type_names,
)
from wsproto_tools.exceptions import ConfigError, ConnectionFailed, LocalProtocolError

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)
ADMIN = "admin-s3cret"

Records = list[dict[str, Any]]


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


def wsp(records: Records, type_name: str, direction: str | None = None) -> Records:
    return [
        r for r in records
        if r["kind"] == "message" and "wsp" in r and r["wsp"]["type"] == type_name
        and (direction is None or r["direction"] == direction)
    ]


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def interactive(
    target: str, **kwargs: Any
) -> AsyncIterator[tuple[InteractiveClient, Records]]:
    records: Records = []
    client = InteractiveClient(target, on_record=records.append, **kwargs)
    await client.start()
    try:
        yield client, records
    finally:
        await client.close()


async def test_subscribe_sees_every_delivery_of_another_client(serve: Any) -> None:
    async with serve() as server, interactive(url(server), secret=SECRET.decode()) as (ic, recs):
        assert ic.active_mode == "wsp"
        await ic.subscribe("news")
        await until(lambda: len(wsp(recs, "Subscribed", "server")) == 1)
        sent = [b"tick %d" % i for i in range(7)] + [b"\x00\xff"]
        async with Client(url(server), secret=SECRET) as publisher:
            for body in sent:
                await publisher.publish("news", body)
        await until(lambda: len(wsp(recs, "Deliver")) == len(sent))
        delivers = wsp(recs, "Deliver")
        assert all(r["direction"] == "server" for r in delivers)
        assert [bytes.fromhex(r["wsp"]["payload"]["data"]) for r in delivers] == sent
        assert [r["wsp"]["payload"]["offset"] for r in delivers] == list(range(1, 9))
        assert {r["wsp"]["payload"]["topic"] for r in delivers} == {"news"}
        connected = next(r for r in recs if r["kind"] == "connected")
        assert connected["subprotocol"] == "wsp.v2" and connected["version"] == 2
        assert connected["peer"] == f"127.0.0.1:{server.port}"
        auth = next(r for r in recs if r["kind"] == "authenticated")
        assert auth["identity"] == "hmac" and "pubsub" in auth["capabilities"]
        # the HandshakeResponse names the session the later records carry
        response = wsp(recs, "HandshakeResponse", "server")[0]
        assert delivers[0]["session"] == response["wsp"]["payload"]["session_id"] != 0
    closed = [r for r in recs if r["kind"] == "closed"]
    assert len(closed) == 1 and closed[0]["code"] == 1000 and closed[0]["resumable"] is False


async def test_request_and_heartbeat_get_their_answers(serve: Any) -> None:
    async with serve() as server, interactive(url(server), secret=SECRET) as (ic, recs):
        await ic.send_wsp("Request", {"id": 1, "method": "echo", "data": b"ping!".hex()})
        await ic.send_wsp("Heartbeat", {})
        await ic.send_wsp("Request", {"id": 1, "method": "no-such-method"})
        await until(lambda: len(wsp(recs, "Response")) == 2 and len(wsp(recs, "Heartbeat")) == 2)
        requests = wsp(recs, "Request", "client")
        responses = {r["wsp"]["payload"]["id"]: r["wsp"]["payload"] for r in wsp(recs, "Response")}
        echo, unknown = (r["wsp"]["payload"] for r in requests)
        assert echo["method"] == "echo" and unknown["method"] == "no-such-method"
        assert bytes.fromhex(responses[echo["id"]]["data"]) == b"ping!"
        assert responses[unknown["id"]]["status"] == 1003  # as the client library sees it
        probe, answer = wsp(recs, "Heartbeat")
        assert probe["direction"] == "client" and answer["direction"] == "server"
        assert answer["wsp"]["payload"] == {"id": probe["wsp"]["payload"]["id"], "reply": True}
        assert [e.type_name for e in ic.history] == ["Request", "Heartbeat", "Request"]


async def test_records_match_the_servers_inspector_feed(serve: Any) -> None:
    """Every message of our session, both ways, as the server itself reports it."""
    async with serve(inspect=True, admin_secret=ADMIN.encode()) as server:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with connect(f"{url(server)}/inspect", additional_headers=headers) as feed:
            for _ in range(500):
                if server.feed.viewers:
                    break
                await asyncio.sleep(0.01)
            async with interactive(url(server), secret=SECRET) as (ic, recs):
                await ic.subscribe("prices")
                await ic.publish("prices", '{"px": 12.5}')
                await ic.send_wsp("Publish", {"topic": "prices", "data": "0102"})
                await ic.send_wsp("WindowUpdate", {"window": 100})  # as is
                await ic.send_wsp("TextData", {"text": "hi"})
                await until(lambda: len(wsp(recs, "Deliver")) == 2
                            and len(wsp(recs, "Acknowledge", "server")) >= 1)
                await asyncio.sleep(0.2)
                sid = ic.client.session.session_id if ic.client else 0
            seen: Records = []
            with contextlib.suppress(TimeoutError):
                while True:
                    text = await asyncio.wait_for(feed.recv(), 0.5)
                    seen.extend(json.loads(line) for line in str(text).splitlines())

    def ours(records: Records, direction: str) -> list[dict[str, Any]]:
        return [r["wsp"] for r in records if r["kind"] == "message" and r.get("session") == sid
                and r["direction"] == direction and r["wsp"]["type"] != "Deliver"]

    assert sid != 0
    for direction in ("client", "server"):
        mine, theirs = ours(recs, direction), ours(seen, direction)
        assert mine == theirs[: len(mine)], direction
        # the server's answering Close comes after our WebSocket close: never read
        assert [w["type"] for w in theirs[len(mine):]] in ([], ["Close"]), direction
    assert {w["type"] for w in ours(recs, "client")} >= {"Subscribe", "Publish", "WindowUpdate",
                                                          "TextData", "Close"}
    # deliveries: the server's fan-out reports each topic message once
    fanout = [r["wsp"]["payload"] for r in seen if r.get("wsp", {}).get("type") == "Deliver"]
    mine = [r["wsp"]["payload"]["data"] for r in wsp(recs, "Deliver")]
    assert [d["data"] for d in fanout] == mine
    assert bytes.fromhex(fanout[0]["data"]) == b'{"px": 12.5}'


async def test_resend_from_history(serve: Any) -> None:
    async with serve() as server, Client(url(server), secret=SECRET) as watcher:
        sub = await watcher.subscribe("t")
        async with interactive(url(server), secret=SECRET) as (ic, recs):
            await ic.publish("t", "once")
            await ic.send_wsp("Publish", {"topic": "t", "data": b"twice".hex()})
            assert [e.kind for e in ic.history] == ["publish", "wsp"]
            await ic.resend(0)
            await ic.resend(1)
            await ic.resend(-1)  # the entry resend(1) added
            got = [await asyncio.wait_for(sub.get(), 5) for _ in range(5)]
            assert [g.data for g in got] == [b"once", b"twice", b"once", b"twice", b"twice"]  # type: ignore[union-attr]
            assert len(ic.history) == 5
            assert ic.history[2].label == "publish t once"
            with pytest.raises(LocalProtocolError, match="no history entry 9"):
                await ic.resend(9)
            await until(lambda: len(wsp(recs, "Publish", "client")) == 5)


async def test_bad_input_is_a_typed_error_and_sends_nothing(serve: Any) -> None:
    async with serve() as server, interactive(url(server), secret=SECRET) as (ic, recs):
        await until(lambda: any(r["kind"] == "authenticated" for r in recs))
        before = len(recs)
        bad: list[tuple[str, dict[str, Any], list[str], str]] = [
            ("Publsh", {}, [], "unknown message type 'Publsh'"),
            ("Publish", {"topic": 5, "data": ""}, [], "Publish.topic: expected a string"),
            ("Publish", {"topic": "t"}, [], "Publish needs the field 'data'"),
            ("Publish", {"topic": "t", "data": "zz"}, [], "not valid hex"),
            ("Publish", {"topic": "t", "data": "", "colour": 1}, [], "no field 'colour'"),
            ("Request", {"id": -1, "method": "echo"}, [], "unsigned integer"),
            ("TextData", {"text": "x"}, ["SHINY"], "unknown flag 'SHINY'"),
        ]
        for type_name, fields, flags, message in bad:
            with pytest.raises(LocalProtocolError, match=message):
                await ic.send_wsp(type_name, fields, flags)
        with pytest.raises(LocalProtocolError, match="topic is empty"):
            await ic.subscribe("")
        with pytest.raises(LocalProtocolError, match="epoch is not known"):
            await ic.subscribe("never-seen", resume_from=3)
        assert len(recs) == before and ic.history == []
        # the session is still fine
        await ic.send_wsp("Request", {"id": 0, "method": "echo", "data": "6f6b"})
        await until(lambda: len(wsp(recs, "Response")) == 1)
        assert wsp(recs, "Response")[0]["wsp"]["payload"]["data"] == "6f6b"


async def test_resume_from_replays_history(serve: Any) -> None:
    async with serve() as server, interactive(url(server), secret=SECRET) as (ic, recs):
        async with Client(url(server), secret=SECRET) as publisher:
            for i in range(1, 6):
                await publisher.publish("h", b"m%d" % i)
        await ic.subscribe("h")  # learns the epoch; nothing replayed
        await until(lambda: len(wsp(recs, "Subscribed")) == 1)
        assert wsp(recs, "Deliver") == []
        await ic.subscribe("h", resume_from=3)
        await until(lambda: len(wsp(recs, "Deliver")) == 3)
        delivered = [r["wsp"]["payload"] for r in wsp(recs, "Deliver")]
        assert [(d["offset"], bytes.fromhex(d["data"])) for d in delivered] == [
            (3, b"m3"), (4, b"m4"), (5, b"m5")
        ]
        sub = wsp(recs, "Subscribe", "client")[-1]["wsp"]["payload"]
        assert sub["from_offset"] == 3 and sub["epoch"] == delivered[0]["epoch"]


@contextlib.asynccontextmanager
async def recording_echo() -> AsyncIterator[tuple[int, list[Any]]]:
    """A websockets echo server that keeps what it received."""
    from websockets.asyncio.server import ServerConnection, serve

    got: list[Any] = []

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                got.append(message)
                await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        yield int(next(iter(server.sockets)).getsockname()[1]), got


@pytest.mark.parametrize("mode", ["auto", "raw"])
async def test_raw_mode_against_a_plain_echo_server(mode: str) -> None:
    async with recording_echo() as (port, got), interactive(
        f"ws://127.0.0.1:{port}", mode=mode
    ) as (ic, recs):
        assert ic.active_mode == "raw"
        await ic.send_raw_text("héllo")
        await ic.send_raw_binary(b"\x00\x01\xfe")
        await ic.resend(0)
        await until(lambda: sum(r.get("direction") == "server" for r in recs) == 3)
        assert got == ["héllo", b"\x00\x01\xfe", "héllo"]
        messages = [r for r in recs if r["kind"] == "message"]
        shown = [(r["direction"], r["opcode"], r.get("text", r.get("hex")), r["length"])
                 for r in messages]
        assert sorted(shown) == sorted(
            [("client", "text", "héllo", 6), ("client", "binary", "0001fe", 3),
             ("client", "text", "héllo", 6), ("server", "text", "héllo", 6),
             ("server", "binary", "0001fe", 3), ("server", "text", "héllo", 6)]
        )
        connected = recs[0]
        assert connected["kind"] == "connected" and connected["subprotocol"] is None
        with pytest.raises(ConfigError, match="does not speak wsp"):
            await ic.send_wsp("TextData", {"text": "x"})
        with pytest.raises(ConfigError, match="does not speak wsp"):
            await ic.subscribe("t")
    assert recs[-1]["kind"] == "closed" and recs[-1]["code"] == 1000


async def test_wsp_mode_refuses_a_server_without_the_subprotocol() -> None:
    async with recording_echo() as (port, _):
        client = InteractiveClient(f"ws://127.0.0.1:{port}", mode="wsp", secret="s")
        with pytest.raises(ConnectionFailed, match="no wsp subprotocol"):
            await client.start()


def test_schema_helpers() -> None:
    names = type_names()
    assert names[:3] == ["Handshake", "HandshakeResponse", "Heartbeat"]
    assert {"Publish", "Subscribe", "Deliver", "Request", "Batch"} <= set(names)
    assert type_fields("Publish") == [("topic", "str", True), ("data", "bytes", True),
                                      ("id", "uint", False)]
    assert type_fields("subscribe") == [("topic", "str", True), ("from_offset", "uint", False),
                                        ("epoch", "uint", False)]
    assert type_fields("TextData") == [("text", "str", True)]
    with pytest.raises(LocalProtocolError, match="unknown message type"):
        type_fields("Nope")
    assert field_value("uint", " 42 ") == 42
    assert field_value("uint", "0x10") == 16
    assert field_value("bool", "yes") is True
    assert field_value("array of str", "a, b,,c") == ["a", "b", "c"]
    assert field_value("str", " keep spaces ") == " keep spaces "
    assert field_value("any msgpack value", '{"k": [1]}') == {"k": [1]}
    assert field_value("uint", "") is None
    with pytest.raises(LocalProtocolError, match="not an integer"):
        field_value("uint", "ten")
    with pytest.raises(LocalProtocolError, match="not true or false"):
        field_value("bool", "maybe")


async def test_a_server_that_breaks_the_protocol_is_a_violation_record() -> None:
    """A server that selects wsp.v2 and then sends a text frame (wsp is binary only)."""
    from websockets.asyncio.server import ServerConnection, serve

    async def hostile(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            await ws.send("not wsp")
            await ws.wait_closed()

    offered = [Subprotocol("wsp.v2")]
    async with serve(hostile, "127.0.0.1", 0, subprotocols=offered) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        records: Records = []
        client = InteractiveClient(f"ws://127.0.0.1:{port}", on_record=records.append,
                                   secret="s", mode="wsp")
        with pytest.raises(ConnectionFailed, match="text frame"):
            await client.start()
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "connected" and records[0]["subprotocol"] == "wsp.v2"
    text = next(r for r in records if r["kind"] == "message" and r["direction"] == "server")
    assert (text["opcode"], text["text"]) == ("text", "not wsp")
    violation = next(r for r in records if r["kind"] == "violation")
    assert violation["code"] == 1003 and "text frame" in violation["message"]
    assert kinds[-1] == "closed" and records[-1]["resumable"] is False


async def test_an_encrypted_session_is_shown_decrypted(serve: Any) -> None:
    caps = ("ack", "batch", "pubsub", "encrypt")
    async with serve() as server, interactive(url(server), secret=SECRET,
                                              capabilities=caps) as (ic, recs):
        assert ic.client is not None and ic.client.session.encrypted
        await ic.subscribe("sealed")
        await until(lambda: len(wsp(recs, "Subscribed")) == 1)
        await ic.publish("sealed", b"\x00secret\xff")
        await ic.send_wsp("WindowUpdate", {"window": 64})  # as is, sealed by the session
        await ic.send_wsp("Request", {"id": 1, "method": "echo", "data": "ab"})
        await until(lambda: len(wsp(recs, "Deliver")) == 1 and len(wsp(recs, "Response")) == 1)
        deliver = wsp(recs, "Deliver")[0]
        assert deliver["decrypted"] is True and "ENCRYPTED" in deliver["wsp"]["flags"]
        assert bytes.fromhex(deliver["wsp"]["payload"]["data"]) == b"\x00secret\xff"
        assert wsp(recs, "Response")[0]["wsp"]["payload"]["data"] == "ab"
        window = wsp(recs, "WindowUpdate", "client")[0]
        assert window["decrypted"] is True and window["wsp"]["payload"] == {"window": 64}
        # the server took the hand-sealed message: the session goes on
        await ic.send_wsp("Request", {"id": 2, "method": "echo", "data": "cd"})
        await until(lambda: len(wsp(recs, "Response")) == 2)


async def test_wss_with_a_private_ca(serve: Any, websockets_echo: Any, tls_files: Any) -> None:
    """--cafile reaches both kinds of connection (the auto probe and raw mode too)."""
    async with serve(ssl=tls_files.server_context()) as server:
        target = f"wss://127.0.0.1:{server.port}"
        async with interactive(target, secret=SECRET, cafile=tls_files.cafile) as (ic, recs):
            assert ic.active_mode == "wsp"
            await ic.send_wsp("Request", {"id": 1, "method": "echo", "data": "01"})
            await until(lambda: len(wsp(recs, "Response")) == 1)
        with pytest.raises(ConnectionFailed, match="certificate"):
            await InteractiveClient(target, secret=SECRET,
                                    cafile=tls_files.other_cafile).start()
    async with websockets_echo(ssl=tls_files.server_context()) as port:
        target = f"wss://127.0.0.1:{port}"
        async with interactive(target, cafile=tls_files.cafile) as (ic, recs):
            assert ic.active_mode == "raw"
            await ic.send_raw_text("over tls")
            await until(lambda: any(r.get("text") == "over tls" and r["direction"] == "server"
                                    for r in recs))
