"""``wsp tap`` on the loopback interface against real websockets peers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.capture.reader import open_capture

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("tcpdump") is None,
    reason="the tap needs root and libpcap/tcpdump for BPF filters",
)

MESSAGES = 3000


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def traffic(port: int, count: int) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "last":
                await ws.send("done")

    async with (
        serve(handler, "127.0.0.1", port, ping_interval=None, compression=None),
        connect(f"ws://127.0.0.1:{port}/tap", ping_interval=None, compression=None) as ws,
    ):
        for i in range(count):
            await ws.send(f"tap message {i}")
            if i % 16 == 0:
                await asyncio.sleep(0)
        await ws.send("last")
        await asyncio.wait_for(ws.recv(), 10)


def start_tap(port: int, *extra: str) -> subprocess.Popen[str]:
    entry = "from wsproto_tools.cli.main import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", entry, "tap", "-i", "lo", "--port", str(port), "--ndjson",
         "--duration", "20", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "tapping lo" in line, line
    time.sleep(0.2)
    return proc


def test_tap_decodes_live_traffic_without_drops(tmp_path: Path) -> None:
    port = free_port()
    saved = tmp_path / "tap.pcapng"
    proc = start_tap(port, "--count", str(MESSAGES + 2), "-w", str(saved))
    try:
        asyncio.run(traffic(port, MESSAGES))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    texts = [r["text"] for r in records if r.get("opcode") == "text"]
    assert texts[:MESSAGES] == [f"tap message {i}" for i in range(MESSAGES)]
    assert texts[MESSAGES:] == ["last", "done"]
    summary = records[-1]
    assert summary["record"] == "summary"
    assert summary["dropped"] == 0
    # loopback shows each packet twice; the tap kept one copy of each
    assert summary["loopback_duplicates"] >= summary["packets"] - 5
    # the saved file holds the same packets and decodes the same way
    reader, close = open_capture(str(saved))
    try:
        assert sum(1 for _ in reader) >= summary["packets"]
        assert reader.info.format == "pcapng"
        assert reader.info.dropped == 0  # the kernel's counter, saved in the file
    finally:
        close()


def test_tap_refuses_an_unknown_interface() -> None:
    entry = "from wsproto_tools.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", entry, "tap", "-i", "nosuchif0", "--duration", "1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 3
    assert "nosuchif0" in result.stderr
    assert "Traceback" not in result.stderr
