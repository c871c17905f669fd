"""``wsp serve --record``: real sessions recorded, read back by ``wsp decode`` and tshark.

A real server on 127.0.0.1 (the ``serve`` fixture, or ``wsp serve`` as a
subprocess) and the project's Client; the oracle is what the Client itself wrote
and received (its ``on_wire`` hook). ``wsp decode`` runs as a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from wsproto_tools.client import Client
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import Credentials

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)
WSP = str(Path(sys.executable).with_name("wsp"))


def decode(path: Path) -> list[dict[str, Any]]:
    """``wsp decode --ndjson`` of one file, in its own process."""
    result = subprocess.run(
        [WSP, "decode", "--ndjson", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def messages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "direction" in r and "opcode" in r]


def files(directory: Path) -> list[Path]:
    """The recordings in ``directory``, in order: by session, then part."""

    def order(path: Path) -> tuple[str, int]:
        match = re.search(r"-part(\d+)\.pcapng$", path.name)
        return (path.name[: match.start()], int(match.group(1))) if match else (path.stem, 1)

    return sorted(directory.glob("wsp-*.pcapng"), key=order)


async def session(url: str, deflate: bool = False, **options: Any) -> list[tuple[str, bytes]]:
    """Authenticate, subscribe, publish, request (echo), text; what the client saw."""
    if deflate:
        return await deflate_session(url)
    wire: list[tuple[str, bytes]] = []

    def on_wire(direction: str, data: bytes | str) -> None:
        wire.append((direction, data if isinstance(data, bytes) else data.encode()))

    async with Client(url, secret=SECRET, on_wire=on_wire, **options) as client:
        subscription = await client.subscribe("news")
        await client.publish("news", b"hello " * 50)
        assert (await subscription.get()).data == b"hello " * 50
        assert await client.echo(b"ping" * 100) == b"ping" * 100
        await client.send_text("a text message")
        await asyncio.sleep(0.05)
    return wire


async def deflate_session(url: str) -> list[tuple[str, bytes]]:
    """The same over permessage-deflate (the Client offers no extension): the
    engine driven over a ``websockets`` connection that negotiates it."""
    wire: list[tuple[str, bytes]] = []
    async with connect(
        url,
        subprotocols=["wsp.v2"],
        compression="deflate",  # type: ignore[list-item]
    ) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        session = ClientSession(Credentials(secret=SECRET))
        session.connection_made(0.0, nonce=b"n" * 16)

        async def flush() -> None:
            for chunk in session.data_to_send():
                wire.append(("client", chunk))
                await ws.send(chunk)

        async def receive() -> None:
            data = await ws.recv()
            assert isinstance(data, bytes)
            wire.append(("server", data))
            session.receive_data(data, 0.0)

        await flush()
        while not session.active:
            await receive()
            await flush()
        session.subscribe("news", 0.0)
        await flush()
        await receive()  # Subscribed
        session.publish("news", b"hello " * 50, 0.0)
        await flush()
        session.request(1, "echo", b"ping" * 100, 0.0)
        await flush()
        for _ in range(3):  # the Acknowledge, the Deliver and the Response (or a Batch)
            await asyncio.wait_for(receive(), 0.5)
            await flush()
            if len([d for d, _ in wire if d == "server"]) >= 6:
                break
        with contextlib.suppress(TimeoutError):
            while True:
                await asyncio.wait_for(receive(), 0.2)
    return wire


def assert_recorded(path: Path, wire: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The file holds exactly the client's messages, in order each way, no violations."""
    records = decode(path)
    found = messages(records)
    assert found and all(m["violations"] == [] for m in found), found
    binary = [m for m in found if m["opcode"] == "binary"]
    for direction in ("client", "server"):
        got = [bytes.fromhex(m["hex"]) for m in binary if m["direction"] == direction]
        want = [data for d, data in wire if d == direction]
        assert got == want, direction
    connection = next(r for r in records if r.get("record") == "connection")
    assert connection["kind"] == "websocket" and connection["status"] == 101
    return records


def tshark(path: Path, port: int, *args: str) -> list[str]:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install tshark; .ci/run installs it)")
    result = subprocess.run(
        [
            exe,
            "-n",
            "-r",
            str(path),
            "-o",
            "ip.check_checksum:TRUE",
            "-d",
            f"tcp.port=={port},http",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.splitlines()


def assert_clean_in_tshark(path: Path, port: int, v6: bool = False) -> list[int]:
    """Good IPv4 checksums (IPv6 has none), no malformed packet, no expert warning
    or error; the WebSocket opcodes seen."""
    good = "" if v6 else "1"
    rows = tshark(
        path,
        port,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "ip.checksum.status",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
    )
    assert rows
    bad = [
        (n, row)
        for n, row in enumerate(rows, 1)
        if row.split("|")[:2] != [good, ""]
        or any(int(s) >= 0x600000 for s in row.split("|")[2].split(",") if s)
    ]
    assert not bad, bad[:5]
    opcodes = tshark(path, port, "-Y", "websocket", "-T", "fields", "-e", "websocket.opcode")
    return [int(op) for line in opcodes for op in line.split(",")]


async def metrics(port: int) -> str:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    return await asyncio.to_thread(get)


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_a_session_is_recorded_and_decodes(
    serve: Callable[..., Any], tmp_path: Path, deflate: bool
) -> None:
    async with serve(record_dir=str(tmp_path), compression=deflate) as server:
        wire = await session(server.url, deflate=deflate)
        text = await metrics(server.port)
        port = server.port
    assert "wsp_record_sessions_total 1" in text
    assert "wsp_record_files_total 1" in text
    [path] = files(tmp_path)
    assert path.name.endswith(".pcapng") and "-127.0.0.1-" in path.name
    records = assert_recorded(path, wire)
    found = messages(records)
    assert any(m["compressed"] for m in found) == deflate
    # the close handshake is there too, and tshark sees every frame
    assert [m["opcode"] for m in found].count("close") == 2
    opcodes = assert_clean_in_tshark(path, port)
    assert len(opcodes) == len(found)


async def test_an_ipv6_session_is_recorded_as_ipv6_loopback(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    try:
        server_cm = serve(host="::1", record_dir=str(tmp_path))
        server = await server_cm.__aenter__()
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    try:
        wire = await session(server.url)
        port = server.port
    finally:
        await server_cm.__aexit__(None, None, None)
    [path] = files(tmp_path)
    assert "-__1-" in path.name  # the client's address, ::1, with its colons as _
    records = assert_recorded(path, wire)
    connection = next(r for r in records if r.get("record") == "connection")
    assert connection["client"].startswith("[::1]:")
    assert len(assert_clean_in_tshark(path, port, v6=True)) == len(messages(records))


async def test_the_file_is_written_as_the_session_runs(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    async with (
        serve(record_dir=str(tmp_path)) as server,
        Client(server.url, secret=SECRET) as client,
    ):
        assert await client.echo(b"early") == b"early"
        await asyncio.sleep(1.3)  # the recorder flushes once a second
        [path] = files(tmp_path)
        found = messages(decode(path))
        assert any(bytes.fromhex(m["hex"]).endswith(b"early") for m in found)


async def test_http_requests_and_recording_off_make_no_files(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    async with serve(record_dir=str(tmp_path / "on")) as server:
        text = await metrics(server.port)
        assert "wsp_record_sessions_total 0" in text
    assert files(tmp_path / "on") == []
    async with serve() as server:
        assert server.recorder is None
        await session(server.url)
        assert "wsp_record" not in await metrics(server.port)
    assert list(tmp_path.iterdir()) == [tmp_path / "on"]


async def test_rotation_by_bytes(serve: Callable[..., Any], tmp_path: Path) -> None:
    limit = 8192
    async with serve(record_dir=str(tmp_path), record_max_bytes=limit) as server:
        async with Client(server.url, secret=SECRET) as client:
            for i in range(40):
                assert await client.echo(bytes([i]) * 1000) == bytes([i]) * 1000
        port = server.port
    parts = files(tmp_path)
    assert len(parts) >= 5, parts
    first = parts[0]
    assert "-part" not in first.name
    assert {p.name for p in parts[1:]} == {
        first.name.replace(".pcapng", f"-part{n}.pcapng") for n in range(2, len(parts) + 1)
    }
    for path in parts:
        # one emitted chunk (a message and its headers) past the limit at most
        assert path.stat().st_size < limit + 2048, path
        assert_clean_in_tshark(path, port)
    assert messages(decode(first))  # the first part holds the upgrade: it decodes


async def test_rotation_by_count_keeps_the_newest(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    old = tmp_path / "wsp-20000101T000000.000Z-000001-127.0.0.1-1000.pcapng"
    old.write_bytes(b"")
    other = tmp_path / "notes.txt"  # not a recording: never touched
    other.write_text("keep")
    async with serve(record_dir=str(tmp_path), record_max_files=3) as server:
        for _ in range(5):
            async with Client(server.url, secret=SECRET) as client:
                await client.echo(b"x")
            await asyncio.sleep(0.05)
    kept = files(tmp_path)
    assert len(kept) == 3 and old not in kept
    assert [p.name.split("-")[2] for p in kept] == ["000003", "000004", "000005"]
    assert other.read_text() == "keep"


async def test_tls_sessions_need_record_plaintext(
    serve: Callable[..., Any],
    tmp_path: Path,
    tls_files: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    skipped = tmp_path / "skipped"
    with caplog.at_level(logging.WARNING, "wsproto_tools.server.record"):
        async with serve(record_dir=str(skipped), ssl=tls_files.server_context()) as server:
            await session(server.url, cafile=tls_files.cafile)
            await session(server.url, cafile=tls_files.cafile)
            assert server.metrics.record_skipped == {"tls": 2}
    assert files(skipped) == []
    warnings = [r for r in caplog.records if "record-plaintext" in r.getMessage()]
    assert len(warnings) == 1

    kept = tmp_path / "plaintext"
    async with serve(
        record_dir=str(kept), ssl=tls_files.server_context(), record_plaintext=True
    ) as server:
        wire = await session(server.url, cafile=tls_files.cafile)
    [path] = files(kept)
    assert_recorded(path, wire)


async def test_a_failing_write_stops_the_recording_not_the_session(
    serve: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import errno
    import os

    from wsproto_tools.server import record

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    async with serve(record_dir=str(tmp_path)) as server:
        async with Client(server.url, secret=SECRET) as client:
            monkeypatch.setattr(record.os, "write", full)
            with caplog.at_level(logging.WARNING, "wsproto_tools.server.record"):
                for _ in range(3):
                    assert await client.echo(b"y" * 200_000) == b"y" * 200_000
            monkeypatch.undo()
            assert await client.echo(b"still here") == b"still here"
        assert server.metrics.record_errors == 1
    lines = [r.getMessage() for r in caplog.records if "no longer recorded" in r.getMessage()]
    assert len(lines) == 1 and "No space left on device" in lines[0]


def test_an_unusable_directory_is_one_line_and_status_3(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [WSP, "serve", "--port", "0", "--no-auth", "--record", str(blocker / "dir")],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        f"wsp: error: --record {blocker / 'dir'}: Not a directory"
    ]


def test_record_plaintext_needs_record() -> None:
    result = subprocess.run(
        [WSP, "serve", "--port", "0", "--no-auth", "--record-plaintext"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--record DIR" in result.stderr
