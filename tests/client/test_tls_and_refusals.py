"""The Client over wss:// (a real WspServer with a trustme certificate), and refusals.

A certificate that fails verification ends the client at once with one reason (it
cannot heal, so it is never retried); a server's refusal (1008 for an invalid
topic) ends it with the server's reason instead of a bare "client is closed".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from wsproto_tools.client import Client, ServerRefused
from wsproto_tools.client.api import connect_failure
from wsproto_tools.exceptions import ConfigError, ConnectionFailed

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)


async def test_publish_and_subscribe_over_wss(serve: Any, tls_files: Any) -> None:
    async with serve(ssl=tls_files.server_context()) as server:
        assert server.url == f"wss://127.0.0.1:{server.port}"
        async with Client(server.url, secret=SECRET, cafile=tls_files.cafile) as client:
            news = await client.subscribe("news")
            await client.publish("news", b"over tls")
            item = await asyncio.wait_for(news.get(), 5)
            assert item.data == b"over tls"  # type: ignore[union-attr]
            assert await client.echo(b"ping", timeout=5) == b"ping"
        async with Client(server.url, secret=SECRET, insecure=True) as client:
            assert await client.echo(b"unverified", timeout=5) == b"unverified"
        context = tls_files.client_context()
        async with Client(
            server.url.replace("127.0.0.1", "localhost"), secret=SECRET, ssl_context=context
        ) as client:
            assert await client.echo(b"by name", timeout=5) == b"by name"


@pytest.mark.parametrize("trust", ["system", "other"])
async def test_certificate_failure_is_reported_once_and_not_retried(
    serve: Any, tls_files: Any, trust: str
) -> None:
    events: list[str] = []
    cafile = tls_files.other_cafile if trust == "other" else None
    async with serve(ssl=tls_files.server_context()) as server:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            async with Client(
                server.url,
                secret=SECRET,
                cafile=cafile,
                connect_attempts=50,  # would retry a network error 50 times
                backoff_base=0.2,
                on_event=lambda name, fields: events.append(name),
            ):
                pass
        assert time.monotonic() - started < 8  # retries would take far longer
    message = str(info.value)
    assert message.startswith(f"cannot connect to {server.url}: TLS certificate verification")
    assert "unable to get local issuer certificate" in message
    assert "reconnecting" not in events


async def test_plain_client_to_tls_server_and_back_say_what_is_wrong(
    serve: Any, tls_files: Any
) -> None:
    async with serve(ssl=tls_files.server_context()) as server:
        plain = f"ws://127.0.0.1:{server.port}"
        with pytest.raises(ConnectionFailed, match=r"is it a wss:// server\?"):
            async with Client(plain, secret=SECRET, open_timeout=3):
                pass
    async with serve() as server:
        secure = f"wss://127.0.0.1:{server.port}"
        with pytest.raises(ConnectionFailed) as info:
            async with Client(secure, secret=SECRET, insecure=True, open_timeout=3):
                pass
        assert str(info.value).startswith(f"cannot connect to {secure}: ")
        assert str(info.value).split(": ", 1)[1]  # a reason, never empty


def test_connection_failures_always_have_a_reason() -> None:
    for error in (TimeoutError(), ConnectionResetError(), OSError(), RuntimeError()):
        assert connect_failure(error, 10.0, secure=True)
    assert connect_failure(TimeoutError(), 2.5) == "no answer within 2.5 s"
    assert "use ws://" in connect_failure(ConnectionResetError(), 1.0, secure=True)


def test_bad_cafile_and_url_are_config_errors(tmp_path: Any) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello\n")
    with pytest.raises(ConfigError, match="cannot load CA certificates"):
        Client("wss://127.0.0.1:1/", cafile=str(bad))
    with pytest.raises(ConfigError, match="port out of range"):
        Client("wss://127.0.0.1:99999/")
    Client("ws://127.0.0.1:1/", cafile=str(bad))  # ws:// needs no CA: not loaded


async def test_subscribe_to_an_invalid_topic_raises_the_servers_reason(serve: Any) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with serve() as server:
        url = f"ws://127.0.0.1:{server.port}"
        client = Client(url, secret=SECRET, on_event=lambda n, f: events.append((n, f)))
        try:
            await client.connect()
            with pytest.raises(ServerRefused) as info:
                async with asyncio.timeout(5):
                    await client.subscribe("")
        finally:
            await client.close()
    assert info.value.close_code == 1008
    assert "topic names have 1 to 256 characters" in info.value.reason
    assert str(info.value) == (
        "server closed the session: topic names have 1 to 256 characters, not 0 (1008)"
    )
    assert client.error is info.value
    names = [n for n, _ in events]
    assert "reconnecting" not in names and "disconnected" not in names, names


async def test_publish_to_an_invalid_topic_fails_its_future_with_the_reason(serve: Any) -> None:
    async with serve() as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with Client(url, secret=SECRET) as client:
            good = await client.publish_nowait("fine", b"1")
            bad = await client.publish_nowait("", b"2")
            await asyncio.wait_for(good, 5)
            with pytest.raises(ServerRefused, match="topic names have 1 to 256") as info:
                await asyncio.wait_for(bad, 5)
            assert info.value.close_code == 1008
            with pytest.raises(ServerRefused):  # the session is over: later calls say why
                await client.publish("fine", b"3", timeout=5)


async def test_oversized_message_is_a_refusal_not_a_reconnect_loop(serve: Any) -> None:
    events: list[str] = []
    async with serve(max_message_size=4096) as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with Client(
            url, secret=SECRET, on_event=lambda n, f: events.append(n), backoff_base=0.01
        ) as client:
            with pytest.raises(ServerRefused) as info:
                await client.publish("big", b"x" * 10_000, timeout=5)
    assert info.value.close_code == 1009
    assert events.count("reconnecting") == 0, events
