"""NATS goes away and comes back; a node is stopped with SIGTERM; a session moves
to another node with what it had not acknowledged."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from scaleout.conftest import SECRET, TOKEN_KEY
from scaleout.natsd import NatsServer, wsp_node
from wsproto_tools.client import Client
from wsproto_tools.client.api import ClientOptions


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def wait_health(port: int, status: int, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if await asyncio.to_thread(health, port) == status:
            return
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(health, port) == status


async def test_a_broker_outage_holds_acks_and_the_node_recovers(
    tmp_path: Path, cluster_node: Any
) -> None:
    servers = [NatsServer(tmp_path / "nats").start()]
    events: list[str] = []
    try:
        async with (
            cluster_node(servers[0].url) as a,
            Client(url(a), secret=SECRET) as subscriber,
            Client(url(a), secret=SECRET) as publisher,
        ):
            publisher.on_event = lambda name, fields: events.append(name)
            sub = await subscriber.subscribe("t")
            await publisher.publish("t", b"before")
            servers[0].stop()  # the same port and store come back below
            await wait_health(a.port, 503)
            # a new connection is told at once to go elsewhere (1013), not left waiting
            async with ws_connect(url(a), subprotocols=[Subprotocol("wsp.v2")]) as raw:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(raw.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            pending = asyncio.ensure_future(publisher.publish("t", b"during", timeout=60))
            await asyncio.sleep(1.0)
            assert not pending.done()  # not acknowledged: not stored
            servers.append(NatsServer(tmp_path / "nats", port=servers[0].port).start())
            await asyncio.wait_for(pending, 30)
            await wait_health(a.port, 200)
            got = [await asyncio.wait_for(sub.get(), 15) for _ in range(2)]
            assert [d.data for d in got] == [b"before", b"during"]
            assert [d.offset for d in got] == [1, 2]
            assert "disconnected" not in events  # the session stayed open throughout
    finally:
        for server in servers:
            server.stop()


async def test_sigterm_drains_a_node_and_its_sessions_resume_on_another(nats: Any) -> None:
    first, port_a = wsp_node(nats.url, SECRET.decode(), TOKEN_KEY.decode())
    second, port_b = wsp_node(nats.url, SECRET.decode(), TOKEN_KEY.decode())
    ports = [port_a]
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        options = ClientOptions(secret=SECRET, backoff_base=0.02, backoff_cap=0.1)
        client = Client(f"ws://127.0.0.1:{port_a}", options=options)
        client.on_event = lambda name, fields: events.append((name, fields))
        async with client:
            sub = await client.subscribe("d")
            await client.publish("d", b"one")
            # the load balancer sends the reconnect elsewhere: here, the client's URL
            client.url = f"ws://127.0.0.1:{port_b}"
            ports.append(port_b)
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 15) == 0
            await client.publish("d", b"two")
            got = [await asyncio.wait_for(sub.get(), 15) for _ in range(2)]
            assert [d.data for d in got] == [b"one", b"two"]
        names = [name for name, _ in events]
        assert "resumed" in names  # the same session, on the other node
        assert first.stderr is not None
        assert b"shutting down" in first.stderr.read()
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_a_node_stops_on_sigterm_while_nats_is_down(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats").start()
    node, port = wsp_node(nats.url, SECRET.decode(), TOKEN_KEY.decode())
    try:
        nats.stop()
        assert health_wait(port, 503)
        node.send_signal(signal.SIGTERM)
        assert node.wait(20) == 0  # not held by a NATS that does not answer
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(5)
        nats.stop()


def health_wait(port: int, status: int, timeout: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(port) == status:
            return True
        time.sleep(0.1)
    return False
