"""``wsp tap`` on the loopback interface, as a real subprocess, against real traffic.

The traffic generator, the tcpdump oracle and the tap runner are
``benchmarks/tap.py``'s (:class:`Traffic`: a WebSocket client sending N small
messages at a set rate, one TCP segment each, bounded in count and time). tcpdump
captures the same traffic at the same time: its packets are the oracle for the
tap's, and the sender's count for its messages (N text messages and the two close
frames). The tap must report every message, or exactly how many packets it did
not decode.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.capture import CapturedMessage
from wsproto_tools.capture.reader import open_capture
from wsproto_tools.cli.decode import make_filter
from wsproto_tools.cli.env import Environment
from wsproto_tools.render.rows import Printer
from wsproto_tools.ws.messages import WsMessage


def _missing() -> str:
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("tcpdump") is None:
        missing.append("tcpdump")
    if ctypes.util.find_library("pcap") is None:
        missing.append("libpcap (Debian: libpcap0.8)")
    return ", ".join(missing)


needs_tap = pytest.mark.skipif(
    bool(_missing()), reason=f"the tap needs root, libpcap and tcpdump; missing: {_missing()}"
)

ENTRY = "from wsproto_tools.cli.main import main; main()"
MESSAGES = 3000
#: The rate asked of the generator: with the server's ACKs, about 14,000 packets/s.
RATE = 10_000


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "tap.py"
    spec = importlib.util.spec_from_file_location("benchmarks_tap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _bench()
free_port = bench.free_port


def decoded(path: Path) -> dict[str, Any]:
    """The summary of ``wsp decode --ndjson`` of a capture file (which must be whole)."""
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "decode", "--ndjson", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return summary


def tcpdump_reads(path: Path) -> int:
    """Packets ``tcpdump -r`` reads from ``path`` (it must read the whole file)."""
    result = subprocess.run(["tcpdump", "-r", str(path), "-n", "-q"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return len(result.stdout.splitlines())


def table_counts(text: str) -> dict[str, int]:
    """The message rows of the table and the counts of its summary."""
    counts = {"rows": 0}
    for line in text.splitlines():
        if " C→S " in line or " S→C " in line:
            counts["rows"] += 1
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) == 2 and cells[0] in ("packets", "messages", "dropped by capture"):
            counts[cells[0]] = int(cells[1].split()[0])
    return counts


def not_decoded(err: str) -> int:
    for line in err.splitlines():
        if line.endswith("packets captured but not decoded"):
            return int(line.split()[1])
    return 0


def tap_report(tap: Any, mode: str, err: str) -> dict[str, int]:
    """messages, packets, not_decoded and dropped, as the tap reported them."""
    text = tap.output()
    if mode == "ndjson":
        lines = text.splitlines()
        summary = json.loads(lines[-1])
        assert summary["record"] == "summary"
        assert summary["not_decoded"] == not_decoded(err)
        messages = sum(1 for line in lines[:-1] if '"opcode"' in line
                       and '"record":"connection"' not in line)
        assert messages == summary["messages"]
        return {"messages": summary["messages"], "packets": summary["packets"],
                "not_decoded": summary["not_decoded"], "dropped": summary["dropped"]}
    counts = table_counts(text)
    assert counts["rows"] == counts["messages"], "a message counted but not shown"
    return {"messages": counts["messages"], "packets": counts["packets"],
            "not_decoded": not_decoded(err), "dropped": counts["dropped by capture"]}


@needs_tap
@pytest.mark.parametrize("mode", ["table", "ndjson"])
def test_tap_keeps_up_at_10k_packets_per_second(mode: str, tmp_path: Path) -> None:
    """20,000 messages at 10,000 a second (about 14,000 packets/s with the ACKs); the
    table in a terminal, NDJSON to a file; tcpdump on the same traffic."""
    port = free_port()
    traffic = bench.Traffic(port, 2 * RATE, RATE, limit=10)
    tcpdump = bench.Tcpdump(tmp_path / "oracle.pcap", port)
    tap = bench.Tap(port, tmp_path / "tap.out", *(["--ndjson"] if mode == "ndjson" else []),
                    terminal=mode == "table")
    try:
        sent = traffic.run()
        time.sleep(0.2)
        tap.stop(signal.SIGTERM)
        status, err = tap.wait(timeout=60)
    finally:
        if tap.proc.poll() is None:
            tap.proc.kill()
        dumped = tcpdump.stop()
    assert status == 0, err
    oracle = decoded(tmp_path / "oracle.pcap")
    assert dumped["dropped"] == 0, "tcpdump itself dropped packets: no oracle"
    assert dumped["captured"] == oracle["packets"]
    rate = oracle["packets"] / sent.seconds
    assert rate >= 10_000, f"the generator reached only {rate:.0f} packets/s"
    assert oracle["messages"] == sent.messages + 2 == 2 * RATE + 2
    got = tap_report(tap, mode, err)
    assert got["dropped"] == 0
    # every message, or an exact count of the packets that were not decoded
    assert got["packets"] + got["not_decoded"] == oracle["packets"], (got, rate)
    if got["not_decoded"] == 0:
        assert got["messages"] == oracle["messages"], (got, rate)


@needs_tap
def test_tap_decodes_the_backlog_when_its_duration_ends(tmp_path: Path) -> None:
    """A tap that fell behind (here: stopped while the traffic ran, past its
    --duration) still decodes everything it had captured."""
    port = free_port()
    traffic = bench.Traffic(port, RATE, RATE, limit=10)
    tap = bench.Tap(port, tmp_path / "tap.out", "--duration", "1", "--ndjson")
    tap.proc.send_signal(signal.SIGSTOP)
    try:
        sent = traffic.run()
        time.sleep(0.5)  # past the deadline: the whole capture waits in the socket
        tap.proc.send_signal(signal.SIGCONT)
        status, err = tap.wait(timeout=60)
    finally:
        if tap.proc.poll() is None:
            tap.proc.kill()
    assert status == 0, err
    got = tap_report(tap, "ndjson", err)
    assert got["not_decoded"] == 0
    assert got["messages"] == sent.messages + 2 == RATE + 2
    # (whether the backlog is announced, "decoding the N packets already captured",
    # depends on how much the first read after SIGCONT takes: not asserted)


@needs_tap
def test_sigterm_stops_the_tap_as_ctrl_c_does(tmp_path: Path) -> None:
    """Summary printed, the -w file complete (read whole by wsp decode and tcpdump),
    status 0."""
    port = free_port()
    saved = tmp_path / "tap.pcapng"
    traffic = bench.Traffic(port, 5000, RATE, limit=10)
    tap = bench.Tap(port, tmp_path / "tap.out", "-w", str(saved), terminal=True)
    try:
        sent = traffic.run()
        tap.stop(signal.SIGTERM)
        status, err = tap.wait(timeout=60)
    finally:
        if tap.proc.poll() is None:
            tap.proc.kill()
    assert status == 0, err
    assert "Traceback" not in err and "interrupted" not in err
    got = tap_report(tap, "table", err)
    assert got["messages"] == sent.messages + 2
    summary = decoded(saved)
    assert summary["format"] == "pcapng"
    assert summary["packets"] == got["packets"] == tcpdump_reads(saved)
    assert summary["messages"] == got["messages"]
    assert summary["dropped"] == 0  # the kernel's counters, saved in the file


@needs_tap
def test_sigterm_loses_no_row_while_a_slow_terminal_reads(tmp_path: Path) -> None:
    """SIGTERM while the table waits on a slow terminal: every row arrives, in order.
    Unbuffered (PYTHONUNBUFFERED=1, as in many containers), stdout is the file itself,
    and a write the signal interrupts is partial: its rest must be written again."""
    port = free_port()
    count = 20_000
    traffic = bench.Traffic(port, count, 0, limit=10)
    tap = bench.Tap(port, tmp_path / "tap.out", terminal=True, read_delay=0.0005,
                    env={"PYTHONUNBUFFERED": "1"})
    try:
        traffic.run()
        time.sleep(0.1)
        tap.stop(signal.SIGTERM)
        status, err = tap.wait(timeout=60)
    finally:
        if tap.proc.poll() is None:
            tap.proc.kill()
    assert status == 0, err
    text = tap.output()
    shown = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if " C→S " in line and "tap message" in line]
    assert shown == list(range(count))
    assert table_counts(text)["messages"] == count + 2


@needs_tap
def test_a_second_signal_counts_what_was_not_decoded(tmp_path: Path) -> None:
    """SIGINT then SIGTERM while a backlog waits: it is not decoded but counted
    exactly (tcpdump's count), and still saved with -w."""
    port = free_port()
    saved = tmp_path / "tap.pcapng"
    traffic = bench.Traffic(port, 5000, RATE, limit=10)
    tcpdump = bench.Tcpdump(tmp_path / "oracle.pcap", port)
    tap = bench.Tap(port, tmp_path / "tap.out", "--ndjson", "-w", str(saved))
    tap.proc.send_signal(signal.SIGSTOP)
    try:
        traffic.run()
        time.sleep(0.2)
        tap.proc.send_signal(signal.SIGINT)
        tap.proc.send_signal(signal.SIGTERM)
        tap.proc.send_signal(signal.SIGCONT)
        status, err = tap.wait(timeout=60)
    finally:
        if tap.proc.poll() is None:
            tap.proc.kill()
        dumped = tcpdump.stop()
    assert status == 0, err
    got = tap_report(tap, "ndjson", err)
    assert dumped["dropped"] == 0
    assert got["not_decoded"] > 0
    assert f"wsp: {got['not_decoded']} packets captured but not decoded" in err
    assert got["packets"] + got["not_decoded"] == dumped["captured"]
    assert tcpdump_reads(saved) == dumped["captured"]  # saved all the same


@needs_tap
def test_table_rows_show_as_they_come(tmp_path: Path) -> None:
    """A few messages show within a fraction of a second (rows are written once a read
    batch, or every 50 ms), not when a buffer fills up or the tap ends."""
    port = free_port()
    traffic = bench.Traffic(port, 5, 100, limit=10)
    tap = bench.Tap(port, tmp_path / "tap.out", terminal=True)
    try:
        traffic.run()
        deadline = time.monotonic() + 2
        while "tap message 4" not in tap.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = tap.output()
        tap.stop(signal.SIGTERM)
        status, err = tap.wait(timeout=30)
    finally:
        if tap.proc.poll() is None:
            tap.proc.kill()
    assert "tap message 4" in shown
    assert status == 0, err


async def websockets_traffic(port: int, count: int) -> None:
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
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "tap", "-i", "lo", "--port", str(port), "--ndjson",
         "--duration", "20", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "tapping lo" in line, line
    time.sleep(0.2)
    return proc


@needs_tap
def test_tap_decodes_websockets_traffic_until_count(tmp_path: Path) -> None:
    port = free_port()
    saved = tmp_path / "tap.pcapng"
    proc = start_tap(port, "--count", str(MESSAGES + 2), "-w", str(saved))
    try:
        asyncio.run(websockets_traffic(port, MESSAGES))
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
    assert summary["not_decoded"] == 0
    # the saved file holds the same packets and decodes the same way
    reader, close = open_capture(str(saved))
    try:
        assert sum(1 for _ in reader) >= summary["packets"]
        assert reader.info.format == "pcapng"
        assert reader.info.dropped == 0  # the kernel's counter, saved in the file
    finally:
        close()


@needs_tap
def test_tap_refuses_an_unknown_interface() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "tap", "-i", "nosuchif0", "--duration", "1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 3
    assert "nosuchif0" in result.stderr
    assert "Traceback" not in result.stderr


@needs_tap
def test_tap_refuses_a_bad_filter_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "tap", "-i", "lo", "--bpf", "tcp porrt 1",
         "--duration", "1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "filter" in result.stderr
    assert "Traceback" not in result.stderr


class PartialFile(io.RawIOBase):
    """An unbuffered stdout that takes at most 997 bytes a write, as a terminal or a
    pipe does when a signal interrupts a large write."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = min(len(b), 997)
        self.data += bytes(b[:n])
        return n


@pytest.mark.parametrize("mode", ["table", "ndjson"])
def test_partial_writes_to_an_unbuffered_stdout_lose_nothing(mode: str) -> None:
    """PYTHONUNBUFFERED=1 (or python -u): stdout's text layer writes straight to the
    file and drops what a partial write left; the rows and lines are written whole."""
    raw = PartialFile()
    env = Environment(stdout=io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    printer = Printer(env, mode=mode, show_hex=False,
                      accept=make_filter((), None, (), (), None, None))
    printer.events([
        CapturedMessage(i, 1e9 + i, 1, "client",
                        WsMessage(1, b"m %d" % i, text=f"m {i}", wire_length=10), ())
        for i in range(5000)
    ])
    printer.flush()
    lines = raw.data.decode().splitlines()
    if mode == "table":
        assert [line.rsplit(" ", 1)[1] for line in lines[1:]] == [str(i) for i in range(5000)]
    else:
        assert [json.loads(line)["text"] for line in lines] == [f"m {i}" for i in range(5000)]
