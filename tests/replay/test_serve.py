"""``wsp replay --serve``: the recorded server played to the project's client and to a
``websockets`` client, on real sockets (127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsproto_tools.client import Client, ClientOptions
from wsproto_tools.codec import decode
from wsproto_tools.codec.schema import (
    Challenge,
    Close,
    Deliver,
    Handshake,
    HandshakeResponse,
    Message,
    Publish,
    Request,
    Response,
    Sealed,
    Subscribe,
    Subscribed,
    TextData,
)
from wsproto_tools.replay.cassette import Cassette, CassetteConnection, CassetteMessage
from wsproto_tools.replay.plan import script_of
from wsproto_tools.replay.responder import Responder
from wsproto_tools.replay.serve import ReplayServer, ServeOptions, serve_recording

SECRET = b"replay-secret"


def text(conn: int, direction: str, t: float, body: str) -> CassetteMessage:
    return CassetteMessage(conn, direction, t, "text", text=body)


def close(conn: int, direction: str, t: float, code: int, reason: str = "") -> CassetteMessage:
    return CassetteMessage(conn, direction, t, "close", close_code=code, close_reason=reason)


def wsp(conn: int, direction: str, t: float, payload: Any, sequence: int = 0) -> CassetteMessage:
    return CassetteMessage(conn, direction, t, "binary", wsp=Message(payload, sequence))


def chat_cassette() -> Cassette:
    """A plain text conversation that the server ends with 4000 "bye"."""
    cassette = Cassette({1: CassetteConnection(1, path="/chat")})
    cassette.messages += [
        text(1, "server", 0.0, "welcome"),
        text(1, "client", 0.1, "hello"),
        text(1, "server", 0.11, "hi there"),
        text(1, "server", 0.12, '{"n": 1}'),
        text(1, "client", 0.2, '{"a": 1, "b": 2}'),
        text(1, "server", 0.21, "json ok"),
        close(1, "server", 0.3, 4000, "bye"),
        close(1, "client", 0.31, 4000, "bye"),
    ]
    return cassette


@contextlib.asynccontextmanager
async def replaying(cassette: Cassette, **options: Any) -> AsyncIterator[ReplayServer]:
    settings: dict[str, Any] = {"port": 0, "secret": SECRET}
    settings.update(options)
    server = ReplayServer(cassette, ServeOptions(**settings))
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


async def recv(ws: ClientConnection, timeout: float = 2.0) -> str | bytes:
    async with asyncio.timeout(timeout):
        return await ws.recv()


async def silent(ws: ClientConnection, seconds: float = 0.3) -> bool:
    """True when nothing arrives for ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await ws.recv()
    except TimeoutError:
        return True
    return False


async def settled(server: ReplayServer, clients: int) -> None:
    """Wait (bounded) until ``clients`` connections have ended and been logged."""
    for _ in range(100):
        if len([c for c in server.clients if c.closed_by or c.error]) >= clients:
            return
        await asyncio.sleep(0.02)


# --------------------------------------------------------------- plain WebSocket


async def test_websockets_client_gets_the_recorded_answers_and_close() -> None:
    async with replaying(chat_cassette()) as server:
        async with connect(f"{server.url}/chat") as ws:
            assert await recv(ws) == "welcome"
            await ws.send("hello")
            assert await recv(ws) == "hi there"
            assert await recv(ws) == '{"n": 1}'
            await ws.send('{"b": 2, "a": 1}')  # JSON-equal to the recorded message
            assert await recv(ws) == "json ok"
            with pytest.raises(ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 4000
            assert ws.close_reason == "bye"
        await settled(server, 1)
    (log,) = server.clients
    assert log.conn == 1 and not log.wsp
    assert [(r.step, r.how) for r in log.received] == [(0, "exact"), (1, "json")]
    assert [m.text for m in log.sent] == ["welcome", "hi there", '{"n": 1}', "json ok"]
    assert (log.close_code, log.close_reason, log.closed_by) == (4000, "bye", "server")
    assert log.unmatched == []


async def test_unmatched_messages_get_no_answer_and_are_logged() -> None:
    async with replaying(chat_cassette(), strict=True) as server, \
            connect(f"{server.url}/chat") as ws:
        assert await recv(ws) == "welcome"
        await ws.send("what is this")
        assert await silent(ws)
        await ws.send("hello")
        assert await recv(ws) == "hi there"
        assert await recv(ws) == '{"n": 1}'
    await settled(server, 1)
    (log,) = server.clients
    assert [r.how for r in log.unmatched] == ["unmatched"]
    assert "what is this" in log.unmatched[0].summary
    assert log.closed_by == "client"


async def test_by_position_then_nothing_left() -> None:
    cassette = Cassette({1: CassetteConnection(1)})
    cassette.messages += [text(1, "client", 0.0, "question 1"), text(1, "server", 0.1, "answer 1")]
    async with replaying(cassette) as server, connect(server.url) as ws:
        await ws.send("a question never recorded")  # by position: the next step
        assert await recv(ws) == "answer 1"
        await ws.send("one more")  # no step left
        assert await silent(ws)
    await settled(server, 1)
    assert [(r.step, r.how) for r in server.clients[0].received] == [
        (0, "position"), (None, "unmatched")]


async def test_two_clients_at_once_get_their_own_recordings() -> None:
    cassette = Cassette({1: CassetteConnection(1, path="/room"),
                         2: CassetteConnection(2, ts=1.0, path="/room")})
    cassette.messages += [
        text(1, "client", 0.0, "hi"), text(1, "server", 0.01, "I am one"),
        text(2, "client", 0.0, "hi"), text(2, "server", 0.01, "I am two"),
    ]
    async with replaying(cassette) as server:
        async with connect(f"{server.url}/room") as a, connect(f"{server.url}/room") as b:
            await asyncio.gather(a.send("hi"), b.send("hi"))
            assert (await recv(a), await recv(b)) == ("I am one", "I am two")
            async with connect(f"{server.url}/room") as c:  # round robin
                await c.send("hi")
                assert await recv(c) == "I am one"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.url}/elsewhere"):
                pass
        assert refused.value.response.status_code == 404
    assert [log.conn for log in server.clients] == [1, 2, 1, None]
    assert "no recording of the path /elsewhere" in (server.clients[3].error or "")


async def test_subprotocol_and_deflate_as_recorded() -> None:
    cassette = Cassette({1: CassetteConnection(1, subprotocols=("chat.v2", "chat.v1"),
                                               extensions="permessage-deflate"),
                         2: CassetteConnection(2, path="/plain", subprotocols=("chat.v1",))})
    async with replaying(cassette) as server:
        async with connect(server.url, subprotocols=["chat.v1", "chat.v2"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat.v2"
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions")
                                            or "")
        async with connect(f"{server.url}/plain", subprotocols=["chat.v1"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat.v1"
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url, subprotocols=["other"]):  # type: ignore[list-item]
                pass
        assert refused.value.response.status_code == 400


async def test_original_timing_keeps_the_recorded_gaps() -> None:
    cassette = Cassette({1: CassetteConnection(1)})
    cassette.messages += [text(1, "client", 1.0, "go"), text(1, "server", 1.0, "first"),
                          text(1, "server", 1.4, "second")]
    async with replaying(cassette, timing="original", speed=2.0) as server, \
            connect(server.url) as ws:
        await ws.send("go")
        assert await recv(ws) == "first"
        started = time.monotonic()
        assert await recv(ws) == "second"
        assert 0.12 <= time.monotonic() - started < 1.0  # 0.4 s recorded, twice as fast


def test_responder_pipelined_responses_move_to_their_request() -> None:
    cassette = Cassette({1: CassetteConnection(1, subprotocols=("wsp.v2",))})
    cassette.messages += [
        wsp(1, "server", 0.0, Challenge(b"n" * 16, ("hmac",))),
        wsp(1, "client", 0.1, Request(1, "echo", b"a")),
        wsp(1, "client", 0.1, Request(2, "echo", b"b")),
        wsp(1, "server", 0.2, Response(1, b"A")),
        wsp(1, "server", 0.2, Response(2, b"B")),
    ]
    messages = cassette.messages_of(1)
    responder = Responder(script_of(cassette, 1), messages)
    match = responder.match_wsp(Request(7, "echo", b"a"))
    assert match.how == "key"
    assert [m.wsp.payload for m in match.answers if m.wsp] == [Response(1, b"A")]
    assert responder.bindings.rewrite(Response(1, b"A")) == Response(7, b"A")


# --------------------------------------------------------------- wsp sessions


def wsp_cassette(close_code: int = 1008) -> Cassette:
    """A recorded wsp session: an echo request the server answered otherwise, a
    subscription with two deliveries, then the server's close."""
    caps = ("ack", "batch", "pubsub")
    cassette = Cassette({1: CassetteConnection(1, subprotocols=("wsp.v2", "wsp.v1"))})
    cassette.messages += [
        wsp(1, "server", 0.0, Challenge(b"n" * 16, ("hmac",))),
        wsp(1, "client", 0.01, Handshake(capabilities=caps, auth="hmac",
                                         client_nonce=b"c" * 16)),
        wsp(1, "server", 0.02, HandshakeResponse(session_id=99, capabilities=caps)),
        wsp(1, "client", 0.1, Request(41, "echo", b"what I sent")),
        wsp(1, "server", 0.11, Response(41, b"what the recorded server said")),
        wsp(1, "client", 0.2, Subscribe("recorded-topic")),
        wsp(1, "server", 0.21, Subscribed("recorded-topic", 7, 1)),
        wsp(1, "server", 0.22, Deliver("recorded-topic", 7, 1, b"first")),
        wsp(1, "server", 0.23, Deliver("recorded-topic", 7, 2, b"second")),
        wsp(1, "client", 0.3, Publish("recorded-topic", b"mine", 1), sequence=1),
        wsp(1, "server", 0.31, TextData("thanks for publishing"), sequence=1),
        wsp(1, "server", 0.4, Close(close_code, "recorded goodbye")),
        close(1, "server", 0.41, close_code, "recorded goodbye"),
    ]
    return cassette


async def until(predicate: Any, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)


async def test_project_client_gets_the_recorded_session() -> None:
    async with replaying(wsp_cassette()) as server:
        wire: list[tuple[str, bytes | str]] = []
        client = Client(f"{server.url}/", ClientOptions(secret=SECRET, open_timeout=3),
                        on_wire=lambda d, data: wire.append((d, data)))
        await client.connect()
        try:
            # the recorded answer, not an echo, and under the client's own request id
            assert await client.echo(b"what I sent", timeout=3) == b"what the recorded server said"
            sub = await client.subscribe("live-topic")  # by position: the recorded topic's
            got = [await asyncio.wait_for(sub.get(), 3) for _ in range(2)]
            assert [(d.topic, d.epoch, d.offset, d.data) for d in got] == [  # type: ignore[union-attr]
                ("live-topic", 7, 1, b"first"), ("live-topic", 7, 2, b"second")]
            await client.publish("live-topic", b"mine", timeout=3)  # acked by the engine
            data = await asyncio.wait_for(client.data.get(), 3)
            assert data == TextData("thanks for publishing")
            await until(lambda: client.error is not None)
            assert getattr(client.error, "close_code", None) == 1008
            assert "recorded goodbye" in str(client.error)
        finally:
            await client.close()
        await settled(server, 1)
    (log,) = server.clients
    assert log.wsp and log.conn == 1 and log.subprotocol == "wsp.v2"
    assert [(r.step, r.how) for r in log.received] == [(0, "key"), (1, "position"), (2, "key")]
    sent = [m.wsp.payload for m in log.sent if m.wsp]
    assert sent[0] == Response(1, b"what the recorded server said")  # the client's id
    assert sent[1] == Subscribed("live-topic", 7, 1)
    assert isinstance(sent[-1], Close)
    assert (log.close_code, log.closed_by) == (1008, "server")
    requests = [decode(data) for d, data in wire if d == "client" and isinstance(data, bytes)]
    assert any(isinstance(m.payload, Request) and m.payload.id == 1 for m in requests)


async def test_wrong_secret_is_refused_with_4001() -> None:
    async with replaying(wsp_cassette()) as server:
        client = Client(server.url, ClientOptions(secret=b"not it", open_timeout=3))
        with pytest.raises(Exception) as refused:
            await client.connect()
        await client.close()
        assert getattr(refused.value, "close_code", None) == 4001
        await settled(server, 1)
    assert server.clients[0].close_code == 4001


async def test_garbage_closes_that_client_and_the_server_goes_on() -> None:
    async with replaying(wsp_cassette()) as server:
        async with connect(server.url, subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            await recv(ws)  # the Challenge
            await ws.send(b"\xff\xfe garbage that is no wsp message")
            with pytest.raises(ConnectionClosed):
                for _ in range(5):
                    await recv(ws)
            assert ws.close_code is not None and ws.close_code >= 1002
        client = Client(server.url, ClientOptions(secret=SECRET, open_timeout=3))
        await client.connect()
        assert await client.echo(b"what I sent", timeout=3) == b"what the recorded server said"
        await client.close()
    assert server.clients[0].error is not None


def test_a_generated_secret_when_none_is_given() -> None:
    server = ReplayServer(wsp_cassette(), ServeOptions(port=0))
    assert server.generated_secret and server.secret
    assert not ReplayServer(chat_cassette(), ServeOptions(port=0)).generated_secret


def recorded(wire: list[tuple[float, str, bytes | str]], started: float) -> Cassette:
    """A cassette of what the client's ``on_wire`` saw (one wsp.v2 connection)."""
    cassette = Cassette({1: CassetteConnection(1, subprotocols=("wsp.v2", "wsp.v1"))})
    for at, direction, data in wire:
        assert isinstance(data, bytes)
        cassette.messages.append(wsp(1, direction, max(0.0, at - started), None))
        cassette.messages[-1] = dataclasses.replace(cassette.messages[-1],
                                                    wsp=decode(data, version=2))
    return cassette


async def test_a_recorded_wsp_serve_session_played_to_a_new_client(
        serve: Callable[..., Any]) -> None:
    wire: list[tuple[float, str, bytes | str]] = []
    started = time.time()
    async with serve() as real:
        client = Client(real.url, ClientOptions(secret=b"test-secret", open_timeout=3),
                        on_wire=lambda d, data: wire.append((time.time(), d, data)))
        await client.connect()
        assert await client.echo(b"x", timeout=3) == b"x"
        sub = await client.subscribe("t")
        await client.publish("t", b"p1", timeout=3)
        first = await asyncio.wait_for(sub.get(), 3)
        await client.close()
    cassette = recorded(wire, started)
    # the recording is edited: its server answered the echo otherwise
    cassette.messages = [
        dataclasses.replace(m, wsp=dataclasses.replace(m.wsp, payload=Response(
            m.wsp.payload.id, b"recorded:x"))) if m.wsp and isinstance(m.wsp.payload, Response)
        else m for m in cassette.messages]
    async with replaying(cassette) as server:
        client = Client(server.url, ClientOptions(secret=SECRET, open_timeout=3))
        await client.connect()
        try:
            assert await client.echo(b"x", timeout=3) == b"recorded:x"
            sub = await client.subscribe("t")
            await client.publish("t", b"p1", timeout=3)
            again = await asyncio.wait_for(sub.get(), 3)
            assert again == first  # the recorded epoch and offset
        finally:
            await client.close()
        await settled(server, 1)
    (log,) = server.clients
    assert [r.how for r in log.received] == ["key", "key", "key"]
    assert log.closed_by == "client" and log.close_code == 1000


async def test_encrypted_when_the_recording_granted_it() -> None:
    caps = ("ack", "batch", "encrypt", "pubsub")
    cassette = Cassette({1: CassetteConnection(1, subprotocols=("wsp.v2",))})
    cassette.messages += [
        wsp(1, "server", 0.0, Challenge(b"n" * 16, ("hmac",))),
        wsp(1, "server", 0.02, HandshakeResponse(session_id=5, capabilities=caps)),
        wsp(1, "client", 0.1, Request(3, "time", b"")),
        wsp(1, "server", 0.11, Response(3, b"12:00")),
    ]
    wire: list[tuple[str, bytes | str]] = []
    async with replaying(cassette) as server:
        client = Client(server.url, ClientOptions(secret=SECRET, open_timeout=3,
                                                  capabilities=caps),
                        on_wire=lambda d, data: wire.append((d, data)))
        await client.connect()
        try:
            assert "encrypt" in client.session.capabilities
            assert (await client.request("time", timeout=3)).data == b"12:00"
        finally:
            await client.close()
    answers = [decode(data) for d, data in wire if d == "server" and isinstance(data, bytes)]
    assert isinstance(answers[-1].payload, Sealed)  # no keys here: sealed on the wire


async def test_a_silent_wsp_client_is_closed_after_the_handshake_timeout() -> None:
    async with replaying(wsp_cassette(), handshake_timeout=0.3) as server:
        async with connect(server.url, subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            assert isinstance(decode(await recv(ws), version=2).payload, Challenge)  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed):
                for _ in range(5):
                    await recv(ws)
            assert ws.close_code == 4002
        await settled(server, 1)
    assert "handshake not finished" in (server.clients[0].error or "")


async def test_serve_recording_runs_until_cancelled_and_logs_each_client() -> None:
    started: asyncio.Future[ReplayServer] = asyncio.get_running_loop().create_future()
    ended: list[str] = []
    options = ServeOptions(port=0, on_client=lambda log: ended.append(log.line()))
    task = asyncio.create_task(serve_recording(chat_cassette(), options,
                                               ready=started.set_result))
    server = await asyncio.wait_for(started, 3)
    async with connect(f"{server.url}/chat") as ws:
        assert await recv(ws) == "welcome"
        await ws.send("hello")
        assert await recv(ws) == "hi there"
    with pytest.raises(InvalidStatus) as refused:  # a plain HTTP request
        async with connect(f"{server.url}/nowhere"):
            pass
    assert refused.value.response.status_code == 404
    await until(lambda: len(ended) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended[0].startswith("client 1 (127.0.0.1:")
    assert "/chat played recording 1: 1 received, 3 sent, closed by client 1000" in ended[0]
    assert "refused: no recording of the path /nowhere" in ended[1]


async def test_a_jwt_key_authenticates_instead_of_a_secret() -> None:
    import jwt

    key = b"k" * 32
    token = jwt.encode({"sub": "tester", "exp": int(time.time()) + 300}, key, "HS256")
    async with replaying(wsp_cassette(), secret=None, jwt_key=key) as server:
        assert server.secret is None and not server.generated_secret
        client = Client(server.url, ClientOptions(token=token, open_timeout=3))
        await client.connect()
        try:
            assert await client.echo(b"what I sent", timeout=3) == b"what the recorded server said"
        finally:
            await client.close()


async def test_the_log_is_bounded() -> None:
    async with replaying(chat_cassette(), strict=True, max_log=2, max_clients=1) as server:
        for _ in range(2):
            async with connect(f"{server.url}/chat") as ws:
                for n in range(4):
                    await ws.send(f"noise {n}")
                await recv(ws)  # the opening
        await settled(server, 1)
    (log,) = server.clients  # only the last connection's log is kept
    assert log.client == 2
    assert (len(log.received), log.unlogged, log.misses) == (2, 2, 4)
    assert "4 received (4 unmatched)" in log.line()


async def test_no_auth_accepts_a_client_without_credentials() -> None:
    async with replaying(wsp_cassette(), secret=None, no_auth=True) as server:
        assert server.secret is None
        client = Client(server.url, ClientOptions(open_timeout=3))
        await client.connect()
        try:
            assert await client.echo(b"what I sent", timeout=3) == b"what the recorded server said"
        finally:
            await client.close()


async def test_wss_with_a_certificate(tls_files: Any) -> None:
    async with replaying(chat_cassette(), ssl=tls_files.server_context()) as server:
        assert server.url.startswith("wss://")
        async with connect(f"{server.url}/chat", ssl=tls_files.client_context()) as ws:
            assert await recv(ws) == "welcome"


def test_responder_plays_the_server_close_only_when_the_server_closed_first() -> None:
    cassette = chat_cassette()
    messages = cassette.messages_of(1)
    responder = Responder(script_of(cassette, 1), messages)
    assert (responder.close_after, responder.opening_close()) == (1, None)
    assert responder.match_plain("text", b"hello").close is None
    assert responder.match_plain("text", b'{"a":1,"b":2}').close == messages[6]
    assert responder.finished
    # the client closed first: the server's close only answered it
    swapped = Cassette(cassette.connections, [*messages[:6], messages[7], messages[6]])
    assert Responder(script_of(swapped, 1), swapped.messages_of(1)).close is None
