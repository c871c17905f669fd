"""``wsp replay`` as users run it: the sample captures against the programs that made
them, a changed server, a wsp serve --record recording against a fresh server, --serve,
load tests and the exit statuses. Every peer is real and on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from wsproto_tools.client import Client

ROOT = Path(__file__).parents[2]
CAPTURES = ROOT / "captures"
sys.path.insert(0, str(CAPTURES / "make"))
from common import Log  # noqa: E402  (the programs that made the samples)
from python_peers import deflate_server, echo_replies, lost_server, wsp_server  # noqa: E402

WSP = [sys.executable, "-m", "wsproto_tools.cli.main"]
Script = Callable[[Any, Log, int], Awaitable[None]]


async def wsp(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *WSP, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    assert b"Traceback" not in err, err.decode()
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def peer(script: Script, **kwargs: Any) -> AsyncIterator[str]:
    """The server side of a sample's maker, on a free port; yields its URL."""
    log = Log()

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            await script(ws, log, 1)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None, **kwargs) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


SAMPLES: dict[str, tuple[Script, dict[str, Any]]] = {
    "ws-basic.pcap": (echo_replies, {"compression": None}),
    "ws-deflate.pcapng": (deflate_server, {}),
    "ws-deflate-nocontext.pcap.gz": (deflate_server, {"compression": None, "extensions": [
        ServerPerMessageDeflateFactory(server_no_context_takeover=True,
                                       client_no_context_takeover=True,
                                       server_max_window_bits=11)]}),
    "wsp-bare-v1.pcap": (wsp_server, {"subprotocols": ["wsp.v1"], "compression": None}),
    "wsp-bare-v2.pcap": (wsp_server, {"subprotocols": ["wsp.v2"], "compression": None}),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_a_sample_against_the_program_that_made_it_shows_no_difference(
        name: str, tmp_path: Path) -> None:
    script, kwargs = SAMPLES[name]
    report = tmp_path / "r.json"
    async with peer(script, **kwargs) as url:
        status, out, err = await wsp("replay", str(CAPTURES / name), url, "--json", str(report))
    doc = json.loads(report.read_text())
    assert status == 0, out + err
    assert doc["differences"] == 0 and doc["totals"]["matched"] > 0
    assert "no difference" in out


async def test_the_lost_segment_sample_shows_exactly_the_lost_message() -> None:
    """The capture lost LOST-MARKER-05; its server sends it again: one extra, nothing else."""
    async with peer(lost_server, compression=None) as url:
        status, out, _ = await wsp("replay", str(CAPTURES / "lost-segment.pcap"), url,
                                   "--json", "-")
    doc = json.loads(out)
    assert status == 1
    (conn,) = doc["connections"]
    assert [len(conn[k]) for k in ("missing", "extra", "changed", "reordered")] == [0, 1, 0, 0]
    assert doc["differences"] == 1


async def test_a_changed_server_gives_exactly_the_expected_differences() -> None:
    async def changed(ws: Any, log: Log, conn: int) -> None:
        n = 0
        async for message in ws:
            n += 1
            if n == 3:  # the JSON quote: answered differently
                await ws.send(f"reply {n} to {len(message)} bytes, changed")
            elif n != 4:  # the fourth goes unanswered
                await ws.send(f"reply {n} to {len(message)} bytes")

    async with peer(changed, compression=None) as url:
        status, out, _ = await wsp("replay", str(CAPTURES / "ws-basic.pcap"), url,
                                   "--json", "-", "--wait", "0.5")
    doc = json.loads(out)
    assert status == 1
    (conn,) = doc["connections"]
    assert len(conn["changed"]) == 1 and "changed" in "\n".join(conn["changed"][0]["diff"])
    # the fifth reply comes where the recording had the fourth: matched by position,
    # the reply to step 4 is missing as what it was ("reply 4 to 15 bytes")
    assert doc["differences"] >= 2 and doc["totals"]["extra"] == 0


async def test_a_recorded_wsp_session_replays_against_a_fresh_server_after_learning(
        serve: Any, tmp_path: Path) -> None:
    """wsp serve --record writes it; another server with another secret answers it."""
    async with serve(secret=b"first", record_dir=str(tmp_path / "rec")) as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with Client(url, secret=b"first") as client:
            sub = await client.subscribe("prices")
            for i in range(3):
                await client.publish("prices", f'{{"px": {i}, "n": "tick"}}')
                await asyncio.wait_for(sub.get(), 5)
            assert await client.echo(b"ping me") == b"ping me"
            await client.send_text("hello")
    (recording,) = sorted((tmp_path / "rec").glob("*.pcapng"))
    async with serve(secret=b"second") as fresh:
        url = f"ws://127.0.0.1:{fresh.port}"
        status, out, _err = await wsp("replay", str(recording), url, "--secret", "second",
                                     "--learn", "2", "--json", "-")
    doc = json.loads(out)
    assert status == 0, json.dumps(doc["connections"], indent=1)[:3000]
    totals = doc["totals"]
    assert totals["matched"] >= 7  # Subscribed, 3 Delivers, a Response, …
    # without learning the epoch-free comparison still holds: nothing differs here either
    async with serve(secret=b"second") as fresh:
        status, out, _ = await wsp("replay", str(recording), f"ws://127.0.0.1:{fresh.port}",
                                   "--secret", "wrong", "--json", "-")
    assert status == 5


async def test_exit_statuses_and_one_line_errors(tmp_path: Path) -> None:
    sample = str(CAPTURES / "ws-basic.pcap")
    status, _, err = await wsp("replay", sample, "ws://127.0.0.1:9")
    assert status == 4 and err.count("\n") == 1 and "wsp: error:" in err
    status, _, err = await wsp("replay", str(tmp_path / "none.pcap"), "ws://127.0.0.1:9")
    assert status == 3 and err.count("\n") == 1
    status, _, err = await wsp("replay", sample, "ws://127.0.0.1:9", "--loop")
    assert status == 2 and "--duration" in err
    status, _, err = await wsp("replay", sample, "ws://127.0.0.1:9", "--ignore", "a..b")
    assert status in (2, 3) and err.count("\n") == 1
    status, out, _ = await wsp("replay", sample, "--to-cassette", "-")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["conn"] == 1 and lines[0]["path"] == "/sample"
    assert [m.get("text") for m in lines[1:3]] == ["hello, capture", "reply 1 to 14 bytes"]


async def test_a_load_test_plays_every_copy(tmp_path: Path) -> None:
    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        status, out, _ = await wsp("replay", str(CAPTURES / "ws-basic.pcap"), url,
                                   "--connections", "3", "--json", "-")
    doc = json.loads(out)
    assert status == 0
    assert doc["copies"] == 3 and doc["sent"] == 3 * 5 and doc["received"] == 3 * 5
    assert doc["latency"]["p50"] is not None


async def test_serve_plays_the_recorded_server_to_a_websockets_client(tmp_path: Path) -> None:
    cassette = tmp_path / "c.ndjson"
    cassette.write_text(
        '{"conn":1,"path":"/chat","subprotocols":[]}\n'
        '{"conn":1,"direction":"server","t":0,"opcode":"text","text":"welcome"}\n'
        '{"conn":1,"direction":"client","t":0.1,"opcode":"text","text":"hi"}\n'
        '{"conn":1,"direction":"server","t":0.2,"opcode":"text","text":"hi yourself"}\n'
        '{"conn":1,"direction":"server","t":0.3,"opcode":"close","close_code":4000,'
        '"close_reason":"bye"}\n')
    proc = await asyncio.create_subprocess_exec(
        *WSP, "replay", str(cassette), "--serve", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        url = re.search(r"ws://127\.0\.0\.1:\d+", line)
        assert url, line
        async with connect(url.group(0) + "/chat") as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "welcome"
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "hi yourself"
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4000 and ws.close_reason == "bye"
        logged = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        assert "client 1" in logged
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode in (0, 130)
