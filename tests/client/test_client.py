"""The client library against a real server: API, back-off.

The server's side (graceful shutdown, /healthz, /metrics) is in
tests/server/test_shutdown_and_http.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsproto_tools.client import Client, ClientClosed
from wsproto_tools.codec import BinaryData, TextData
from wsproto_tools.exceptions import AuthenticationError, ConfigError, ConnectionFailed

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


@pytest.mark.parametrize("version", [1, 2])
async def test_publish_subscribe_request_ping(serve: Any, version: int) -> None:
    async with serve() as server, Client(url(server), secret=SECRET, version=version) as c:
        assert c.session.version == version
        sub = await c.subscribe("news")
        await c.publish("news", "hello")
        await c.publish("news", b"\x00\xff")
        got = [await sub.get(), await sub.get()]
        assert [(d.offset, d.data) for d in got] == [(1, b"hello"), (2, b"\x00\xff")]  # type: ignore[union-attr]
        assert await c.echo(b"ping") == b"ping"
        reply = await c.request("no-such-method", b"")
        assert reply.status == 1003
        assert 0 < await c.ping() < 1
        await c.send_text("hi")
        await c.send_binary(b"\x01")
        assert await c.data.get() == TextData("hi")
        assert await c.data.get() == BinaryData(b"\x01")


@pytest.mark.parametrize("extra", [("encrypt",), ("compress",), ("compress", "encrypt")])
async def test_encryption_and_compression_end_to_end(serve: Any, extra: tuple[str, ...]) -> None:
    caps = ("ack", "batch", "pubsub", *extra)
    async with serve() as server, Client(url(server), secret=SECRET, capabilities=caps) as c:
        assert c.session.encrypted is ("encrypt" in extra)
        assert set(c.session.capabilities) == set(caps)
        sub = await c.subscribe("secret")
        big = b"repeat after me " * 64
        await c.publish("secret", b"sealed")
        await c.publish("secret", big)
        items = [await sub.get(), await sub.get()]
        assert [i.data for i in items] == [b"sealed", big]  # type: ignore[union-attr]
        assert await c.echo(b"x") == b"x"
        if "compress" in extra:
            assert server.metrics.bytes_in < len(big)


async def test_pipelined_publishes_are_all_acknowledged(serve: Any) -> None:
    async with serve() as server, Client(url(server), secret=SECRET, window=64) as c:
        futures = [await c.publish_nowait("bulk", b"%d" % i) for i in range(1000)]
        await asyncio.wait_for(asyncio.gather(*futures), 10)
        assert c.session.in_flight == 0
        sub = await c.subscribe("bulk", wait=True)
        assert sub.topic == "bulk"


async def test_first_connection_refused_is_a_connection_error(serve: Any) -> None:
    async with serve() as server:
        port = server.port
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        async with Client(
            f"ws://127.0.0.1:{port}",
            secret=SECRET,
            connect_attempts=2,
            backoff_base=0.001,
            backoff_cap=0.002,
        ):
            pass
    with pytest.raises(ConfigError, match="not a WebSocket URL"):
        async with Client("ftp://127.0.0.1:1/", secret=SECRET):
            pass
    with pytest.raises(ConfigError, match=r"HTTP URL; did you mean ws://127\.0\.0\.1:1/\?"):
        Client("http://127.0.0.1:1/", secret=SECRET)
    with pytest.raises(ConfigError, match="port out of range"):
        Client("ws://127.0.0.1:70000/", secret=SECRET)


async def test_auth_refusal_is_not_retried(serve: Any) -> None:
    events: list[str] = []
    async with serve() as server:
        client = Client(url(server), secret=b"bad", on_event=lambda n, f: events.append(n))
        with pytest.raises(AuthenticationError):
            await client.connect()
        assert "reconnecting" not in events and client.connections == 1
        await client.close()


async def test_backoff_gives_up_after_max_attempts(serve: Any) -> None:
    delays: list[float] = []
    server_cm = serve()
    server = await server_cm.__aenter__()
    client = Client(
        url(server),
        secret=SECRET,
        max_attempts=3,
        backoff_base=0.01,
        backoff_cap=0.04,
        seed=5,
        on_event=lambda n, f: delays.append(f["delay"]) if n == "reconnecting" else None,
    )
    await client.connect()
    await server_cm.__aexit__(None, None, None)  # the server is gone for good
    with pytest.raises(ClientClosed, match="gave up after 3"):
        async with asyncio.timeout(5):
            await client._runner  # type: ignore[misc]
    assert len(delays) == 3
    assert all(0 <= d <= c for d, c in zip(delays, (0.01, 0.02, 0.04), strict=True))
    with pytest.raises(ClientClosed):
        await client.publish("t", b"x")
    await client.close()
