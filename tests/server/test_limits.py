"""Every refusal gets its documented close code and reason, and the server keeps
serving everybody else (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsproto_tools.client import Client
from wsproto_tools.codec import Message, Publish, encode
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import Credentials
from wsproto_tools.exceptions import AuthenticationError, CloseCode

SECRET = b"test-secret"
JWT_KEY = b"j" * 32


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def handshake(ws: ClientConnection, creds: Credentials) -> ClientSession:
    """Finish the wsp handshake by hand with the engine (no Client machinery)."""
    session = ClientSession(creds)
    session.connection_made(0.0, nonce=os.urandom(16))
    while not session.active:
        for event in session.receive_data(await ws.recv(), 0.0):  # type: ignore[arg-type]
            del event
        for chunk in session.data_to_send():
            await ws.send(chunk)
    return session


async def still_serving(server: Any, bystander: Client, *, fresh: bool = True) -> None:
    assert await bystander.echo(b"still there") == b"still there"
    if fresh:
        async with Client(url(server), secret=SECRET) as newcomer:
            assert await newcomer.echo(b"new") == b"new"


async def test_wrong_secret(serve: Any) -> None:
    async with serve() as server, Client(url(server), secret=SECRET) as bystander:
        with pytest.raises(AuthenticationError, match="wrong secret") as info:
            async with Client(url(server), secret=b"nope"):
                pass
        assert info.value.close_code == CloseCode.WSP_AUTH_FAILED == 4001
        async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            with pytest.raises(ConnectionClosed):
                await handshake(ws, Credentials(secret=b"nope"))
            assert ws.close_code == 4001 and "wrong secret" in (ws.close_reason or "")
        assert server.metrics.auth_rejected == 2
        await still_serving(server, bystander)


@pytest.mark.parametrize(
    ("claims", "key", "reason"),
    [
        ({"exp": 1}, JWT_KEY, "token expired"),
        ({"nbf": 4_000_000_000, "exp": 4_100_000_000}, JWT_KEY, "not valid yet"),
        ({}, b"f" * 32, "forged or wrong key"),
    ],
)
async def test_bad_jwt(serve: Any, claims: dict[str, Any], key: bytes, reason: str) -> None:
    async with serve(secret=None, jwt_key=JWT_KEY) as server:
        good = jwt.encode({"exp": time.time() + 300}, JWT_KEY, "HS256")
        async with Client(url(server), token=good) as bystander:
            token = jwt.encode(claims, key, "HS256")
            with pytest.raises(AuthenticationError, match=reason) as info:
                async with Client(url(server), token=token):
                    pass
            assert info.value.close_code == 4001
            assert await bystander.echo(b"ok") == b"ok"


async def test_topic_not_allowed_by_claims(serve: Any) -> None:
    async with serve(secret=None, jwt_key=JWT_KEY) as server:
        token = jwt.encode(
            {"exp": time.time() + 300, "wsp": {"pub": ["public.*"], "sub": ["public.*"]}},
            JWT_KEY,
            "HS256",
        )
        async with Client(url(server), token=token) as bystander:
            await bystander.publish("public.news", b"fine")
            async with Client(url(server), token=token) as bad:
                with pytest.raises(AuthenticationError, match="'private'") as info:
                    await bad.publish("private", b"no", timeout=5)
                assert info.value.close_code == CloseCode.WSP_FORBIDDEN_TOPIC == 4003
            async with Client(url(server), token=token) as bad:
                with pytest.raises(AuthenticationError, match="subscribing"):
                    await bad.subscribe("private")
                await asyncio.sleep(0.05)
                assert isinstance(bad.error, AuthenticationError)
                assert bad.error.close_code == 4003
            assert await bystander.echo(b"ok") == b"ok"


async def test_oversized_message(serve: Any) -> None:
    async with (
        serve(max_message_size=4096) as server,
        Client(url(server), secret=SECRET) as bystander,
    ):
        async with connect(
            url(server),
            subprotocols=["wsp.v2"],  # type: ignore[list-item]
            max_size=None,
        ) as ws:
            session = await handshake(ws, Credentials(secret=SECRET))
            await ws.send(encode(Message(Publish("t", b"x" * 10_000), 1, session.session_id)))
            code, reason = await closed_with(ws)
        assert code == CloseCode.MESSAGE_TOO_BIG == 1009
        assert "too big" in reason or "exceeds" in reason
        await still_serving(server, bystander)


async def test_rate_limit(serve: Any) -> None:
    async with serve(rate=50, burst=20) as server, Client(url(server), secret=SECRET) as bystander:
        async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            session = await handshake(ws, Credentials(secret=SECRET))
            for _ in range(200):  # Unsubscribe: a message the server does not answer
                session.unsubscribe("nothing", 0.0)
                for chunk in session.data_to_send():
                    try:
                        await ws.send(chunk)
                    except ConnectionClosed:
                        break
            code, reason = await closed_with(ws)
        assert code == CloseCode.WSP_RATE_LIMITED == 4004
        assert "rate limit" in reason
        assert server.metrics.rate_limited == 1
        await still_serving(server, bystander)


async def test_handshake_timeout(serve: Any) -> None:
    async with (
        serve(handshake_timeout=0.3) as server,
        Client(url(server), secret=SECRET) as bystander,
    ):
        async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            await ws.recv()  # the Challenge; then silence
            code, reason = await closed_with(ws)
        assert code == CloseCode.WSP_HANDSHAKE_TIMEOUT == 4002
        assert "handshake not finished within 0.3 s" in reason
        await still_serving(server, bystander, fresh=False)  # a newcomer has 0.3 s too


async def test_garbage_after_the_upgrade(serve: Any) -> None:
    rng = random.Random(1)
    async with serve() as server, Client(url(server), secret=SECRET) as bystander:
        for _ in range(5):
            async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
                await ws.recv()
                await ws.send(b"\xd1\xc0" + rng.randbytes(rng.randrange(1, 64)))
                code, reason = await closed_with(ws)
            assert code in (
                CloseCode.PROTOCOL_ERROR,
                CloseCode.INVALID_DATA,
                CloseCode.MESSAGE_TOO_BIG,
            ), (code, reason)
            assert reason  # names the problem
        async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            await ws.recv()
            await ws.send("text is not wsp")
            code, reason = await closed_with(ws)
        assert code == CloseCode.UNSUPPORTED_DATA and "binary" in reason
        await still_serving(server, bystander)


async def test_garbage_instead_of_http(serve: Any) -> None:
    rng = random.Random(2)
    async with serve() as server, Client(url(server), secret=SECRET) as bystander:
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(rng.randbytes(300) + b"\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await reader.read()
            writer.close()
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
        await still_serving(server, bystander)


async def test_no_subprotocol_and_origin_and_max_connections(serve: Any) -> None:
    async with serve() as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server)):
                pass
        response = refused.value.response
        assert response.status_code == 400 and b"wsp.v2" in response.body
        with pytest.raises(InvalidStatus):
            async with connect(url(server), subprotocols=["chat"]):  # type: ignore[list-item]
                pass
    async with serve(origins=("https://ok.example",), max_connections=2) as server:
        async with connect(
            url(server),
            subprotocols=["wsp.v2"],  # type: ignore[list-item]
            origin="https://evil.example",
        ) as ws:  # type: ignore[arg-type]
            code, reason = await closed_with(ws)
        assert code == CloseCode.WSP_ORIGIN_REFUSED == 4010 and "evil" in reason
        ok: dict[str, Any] = {"origin": "https://ok.example"}
        async with (
            connect(url(server), subprotocols=["wsp.v2"], **ok) as a,
            connect(url(server), subprotocols=["wsp.v2"], **ok) as b,
        ):  # type: ignore[list-item]
            await a.recv()
            await b.recv()
            async with connect(url(server), subprotocols=["wsp.v2"], **ok) as c:  # type: ignore[list-item]
                code, reason = await closed_with(c)
        assert code == CloseCode.WSP_TOO_MANY_CONNECTIONS == 4008 and "too many" in reason


async def test_slow_consumer_is_cut_with_4005_and_can_resume(serve: Any) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        serve(max_buffer=64 * 1024, close_timeout=10.0, history=5000) as server,
        Client(url(server), secret=SECRET) as publisher,
    ):
        slow = Client(
            url(server),
            secret=SECRET,
            queue_size=1,
            backoff_base=0.01,
            backoff_cap=0.05,
            on_event=lambda n, f: events.append((n, f)),
        )
        await slow.connect()
        subscription = await slow.subscribe("firehose")
        payload = b"z" * 32 * 1024
        total = 0
        for _ in range(200):  # bounded: at most 2,000 x 32 KiB
            for _ in range(10):
                await publisher.publish_nowait("firehose", payload)
                total += 1
            await asyncio.sleep(0.01)
            if server.metrics.closes[4005]:
                break
        assert server.metrics.closes[CloseCode.WSP_SLOW_CONSUMER] == 1
        for _ in range(20):  # published after the cut: only a resume brings them
            await publisher.publish("firehose", b"after")
            total += 1
        offsets = []
        async with asyncio.timeout(30):
            while len(offsets) < total:
                item = await subscription.get()
                offsets.append(item.offset)  # type: ignore[union-attr]
        assert offsets == list(range(1, total + 1))  # resumed: nothing lost or doubled
        closes = [f for n, f in events if n == "closed"]
        assert closes and closes[0]["code"] == 4005 and "slow consumer" in closes[0]["reason"]
        assert any(n == "resumed" for n, _ in events), events
        await slow.close()
        assert await publisher.echo(b"ok") == b"ok"


async def test_too_many_topics_is_refused_and_not_acknowledged(serve: Any) -> None:
    async with serve(max_topics=2) as server, Client(url(server), secret=SECRET) as bystander:
        await bystander.publish("one", b"1")
        async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            session = await handshake(ws, Credentials(secret=SECRET))
            session.publish("two", b"2", 0.0)
            session.publish("three", b"3", 0.0)  # one topic too many
            session.publish("one", b"4", 0.0)
            for chunk in session.data_to_send():  # one Batch
                await ws.send(chunk)
            acks = []
            with contextlib.suppress(ConnectionClosed):
                async with asyncio.timeout(5):
                    async for data in ws:
                        acks.extend(
                            e.sequence
                            for e in session.receive_data(data, 0.0)
                            if type(e).__name__ == "Acked"
                        )
            assert ws.close_code == 1008 and "too many topics" in (ws.close_reason or "")
        assert acks == [1]  # "two" was applied; "three" and what followed were not
        assert await bystander.echo(b"ok") == b"ok"
