"""The server seen by a real Client: graceful shutdown, /healthz and /metrics.

(Moved from tests/client/test_client.py: their subject is the server.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsproto_tools.client import Client
from wsproto_tools.exceptions import AuthenticationError

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(5):
        raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


async def test_graceful_shutdown_tells_clients_to_reconnect(serve: Any) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    server_cm = serve()
    server = await server_cm.__aenter__()
    client = Client(
        url(server),
        secret=SECRET,
        backoff_base=0.01,
        backoff_cap=0.02,
        max_attempts=2,
        on_event=lambda n, f: events.append((n, f)),
    )
    await client.connect()
    await server_cm.__aexit__(None, None, None)
    async with asyncio.timeout(5):
        while not any(n == "reconnecting" for n, _ in events):
            await asyncio.sleep(0.01)
    assert client.ws is None or client.ws.close_code == 1001
    await client.close()


async def test_healthz_and_metrics(serve: Any) -> None:
    async with serve() as server, Client(url(server), secret=SECRET) as c:
        await c.publish("m", b"x")
        await c.ping()
        with pytest.raises(AuthenticationError):
            await Client(url(server), secret=b"bad").connect()
        status, body = await http_get(server.port, "/healthz")
        assert (status, body) == (200, "ok\n")
        status, body = await http_get(server.port, "/metrics")
        assert status == 200
        assert "wsp_connections 1" in body
        assert 'wsp_messages_in_total{type="Publish"} 1' in body
        assert "wsp_auth_rejected_total 1" in body
        assert 'wsp_closes_total{code="4001"} 1' in body
        assert "# TYPE wsp_rtt_seconds histogram" in body
        # the process's resident memory, as /proc/self/status says (wsp fuzz reads it)
        line = next(x for x in body.splitlines() if x.startswith("process_resident_memory_bytes "))
        reported = int(line.split()[1])
        with open("/proc/self/status") as status_file:
            vmrss = next(int(x.split()[1]) * 1024 for x in status_file if x.startswith("VmRSS:"))
        assert abs(reported - vmrss) < 32 << 20, (reported, vmrss)
        status, _ = await http_get(server.port, "/nothing")
        assert status == 404
