"""Hostile captures (issue 10, §3): ``wsp decode`` in a real process stays small.

The captures are generated here, small, by ``benchmarks/hostile_decode.py`` (the
benchmark that runs the same attacks at full size); each run's peak RSS comes
from ``wait4`` on the decoding process.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools.capture import CaptureDecoder, CapturedMessage, CaptureWarning, PacketReader
from wsproto_tools.capture import decoder as decoder_module
from wsproto_tools.capture.tcp import Flow
from wsproto_tools.render.capture import LineBuffer

from .samples import CAPTURES, ROOT

_spec = importlib.util.spec_from_file_location("hostile_decode",
                                               ROOT / "benchmarks" / "hostile_decode.py")
assert _spec is not None and _spec.loader is not None
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)

ENTRY = "from wsproto_tools.cli.main import main; main()"
MB = 1024 * 1024


def decode(path: Path, *args: str, pure: bool = False) -> dict[str, Any]:
    got: dict[str, Any] = hostile.run_decode(path, list(args), pure=pure, cap_mb=3072,
                                             timeout=120)
    assert not got["timed_out"]
    return got


def records(path: Path, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-c", ENTRY, "decode", "-q", "--ndjson", *args,
                          str(path)], capture_output=True, check=True, cwd=path.parent)
    return [json.loads(line) for line in out.stdout.splitlines()]


def summary_of(path: Path, *args: str) -> dict[str, Any]:
    found = records(path, *args)[-1]
    assert found["record"] == "summary"
    return found


def assert_clean(got: dict[str, Any]) -> list[str]:
    """No traceback, status 0, every stderr line a one-line ``wsp:`` message."""
    assert not got["traceback"], got["stderr"][-2000:]
    assert got["status"] == 0, got["stderr"][-2000:]
    lines = got["stderr"].splitlines()
    assert all(line.startswith("wsp: ") for line in lines), lines[:5]
    return lines


# ------------------------------------------------------------------ item 10


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 30 compressed frames of ~4 KB, each inflating to 4 MiB: 240 MB of hex
    path: Path = tmp_path_factory.mktemp("bomb") / "bomb.pcap"
    hostile.write_bomb(path, frames=30, inflated=4 * MB)
    return path


@pytest.mark.parametrize("mode", ["--ndjson", "--json"])
@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
def test_deflate_bomb_output_is_written_as_it_goes(bomb: Path, mode: str, pure: bool) -> None:
    # item 10: lines were written only every 1,024 of them: 30 lines of 8 MiB piled up
    got = decode(bomb, mode, pure=pure)
    assert_clean(got)
    assert got["rss_mb"] < 150, got["rss_mb"]
    assert got["lines"] >= 30


def test_max_payload_cuts_with_the_count_left_out(bomb: Path) -> None:
    found = records(bomb, "--max-payload", "100")
    messages = [r for r in found if "record" not in r]
    assert len(messages) == 30
    for record in messages:
        assert record["length"] == 4 * MB  # the whole length, as before
        assert record["hex"] == "00" * 100
        assert record["cut"] == 4 * MB - 100
    assert all("cut" not in r for r in records(CAPTURES / "ws-basic.pcap")
               if "record" not in r)


def test_max_payload_text_and_wsp_payloads_cut_at_characters() -> None:
    from wsproto_tools.codec import BinaryData, Message, TextData
    from wsproto_tools.ws import WsMessage

    def item(opcode: int, payload: bytes, wsp: Any = None) -> CapturedMessage:
        text = payload.decode() if opcode == 1 else None
        msg = WsMessage(opcode, payload, text=text)  # type: ignore[call-arg]
        return CapturedMessage(1, 1.5, 1, "server", msg, (), wsp=wsp)

    for pure in (False, True):
        buffer = LineBuffer(max_payload=5)
        if pure:
            buffer = _pure(buffer)
        buffer.write(item(1, "żółw🐢".encode()))  # ż ó ł w: 7 bytes, then 4
        buffer.write(item(2, b"0123456789"))
        buffer.write(item(2, b"abc"))
        wire = Message(BinaryData(b"x" * 50), sequence=1)
        buffer.write(item(2, b"\0" * 60, (2, wire)))
        text = Message(TextData("ab€cd"), sequence=2)  # 7 bytes
        buffer.write(item(2, b"\0" * 60, (2, text)))
        lines = [json.loads(line) for line in buffer.take().splitlines()]
        assert (lines[0]["text"], lines[0]["cut"]) == ("żó", len("żółw🐢".encode()) - 4)
        assert (lines[1]["hex"], lines[1]["cut"]) == (b"01234".hex(), 5)
        assert "cut" not in lines[2] and lines[2]["hex"] == b"abc".hex()
        assert lines[3]["wsp"]["payload"] == {"hex": (b"x" * 5).hex(), "cut": 45}
        assert lines[4]["wsp"]["payload"] == {"text": "ab€", "cut": 2}


def _pure(buffer: LineBuffer) -> LineBuffer:
    """``buffer`` on its Python path (as with WSP_PURE_PYTHON=1)."""
    buffer._c = None
    buffer.write = buffer._write_py  # type: ignore[method-assign]
    buffer.fast = None
    return buffer


# ------------------------------------------------------------------ item 11


def test_hole_releases_its_data_in_pieces(tmp_path: Path) -> None:
    # item 11: 2 MB of 4-byte messages behind a hole came out as one list of
    # 350,000 messages when the capture ended
    path = tmp_path / "hole.pcap"
    hostile.write_holes(path, behind=2_000_000)
    got = decode(path, "--ndjson")
    lines = assert_clean(got)
    assert got["rss_mb"] < 100, got["rss_mb"]
    assert got["lines"] > 300_000
    assert any("were not captured (TCP gap)" in line for line in lines)


def test_out_of_order_data_is_bounded_in_all(tmp_path: Path) -> None:
    # 40 connections, each with 3 MB behind a hole (under the 4 MB a direction):
    # 120 MB waited; at most 32 MB do now, the oldest holes given up first
    path = tmp_path / "holes.pcap"
    hostile.write_holes(path, conns=40, behind=3_000_000, size=1000)
    got = decode(path, "--ndjson")
    lines = assert_clean(got)
    assert got["rss_mb"] < 120, got["rss_mb"]
    given_up = [line for line in lines if "out-of-order data over its limit" in line]
    assert given_up and "connection 1:" in given_up[0]
    summary = summary_of(path)
    assert summary["tcp_holes_given_up"] == 30
    assert summary["messages"] == 40 * (3_000_000 // 1004)


def test_syn_flood_is_bounded(tmp_path: Path) -> None:
    # item 11: each connection that only sent a SYN was kept to the end
    path = tmp_path / "syn.pcap"
    hostile.write_syns(path, conns=60_000)
    got = decode(path, "--ndjson")
    assert_clean(got)
    assert got["rss_mb"] < 90, got["rss_mb"]
    summary = summary_of(path)
    assert summary["connections"] == 60_000
    assert summary["connections_by_kind"] == {"other": 60_000}
    assert summary["connections_evicted"] == 50_000


def _ws_conn(out: Any, n: int, ts: float, text: bytes) -> Any:
    conn = hostile.Conn(out, n)
    conn.open(ts)
    conn.send(False, hostile.server_frame(text, opcode=1), ts)
    return conn


def test_idle_connections_expire_by_capture_time() -> None:
    data = io.BytesIO()
    out = hostile.PcapOut(data)
    t0 = hostile.T0
    first = _ws_conn(out, 1, t0, b"one")
    for n in range(2, 1002):  # SYN-only, spread over 20 minutes
        hostile.Conn(out, n).syn(t0 + n * 1.2)
    # connection 1 speaks again after 30 minutes of silence: a new connection
    first.send(False, hostile.server_frame(b"two", opcode=1), t0 + 1800)
    decoder = CaptureDecoder()
    events = [e for p in PacketReader(io.BytesIO(data.getvalue())) for e in decoder.packet(p)]
    events += decoder.finish()
    texts = [(e.conn, e.msg.text) for e in events if isinstance(e, CapturedMessage)]
    assert texts == [(1, "one"), (1002, "two")]
    warnings = [e.message for e in events if isinstance(e, CaptureWarning)]
    assert warnings == ["connection 1: no packet for 300 s of capture time; ended "
                        "(a later packet starts a new one)"]
    assert decoder.connections_expired >= 1000
    assert len(decoder._live) < 300
    # the records of connections that were not WebSocket are counted, not kept
    assert [c.id for c in decoder.connections if c.kind == "websocket"] == [1, 1002]
    assert len(decoder.connections) < 300
    assert sum(decoder.forgotten.values()) + len(decoder.connections) == 1002


def test_shards_agree_on_connection_ids_past_the_limits(monkeypatch: Any) -> None:
    # which connection a packet belongs to must not depend on what a shard decodes
    monkeypatch.setattr(decoder_module, "MAX_CONNECTIONS", 40)
    data = io.BytesIO()
    out = hostile.PcapOut(data)
    t0 = hostile.T0
    conns = []
    for n in range(1, 301):
        if n % 10 == 0:
            conns.append(_ws_conn(out, n, t0 + n, f"hello {n}".encode()))
        else:
            hostile.Conn(out, n).syn(t0 + n)
        if n % 7 == 0 and conns:  # old ones speak again
            conns[0].send(False, hostile.server_frame(b"again", opcode=1), t0 + n)
    pcap = data.getvalue()

    def run(shard: tuple[int, int]) -> list[tuple[int, str | None]]:
        decoder = CaptureDecoder(shard=shard)
        events = [e for p in PacketReader(io.BytesIO(pcap)) for e in decoder.packet(p)]
        events += decoder.finish()
        return [(e.conn, e.msg.text) for e in events if isinstance(e, CapturedMessage)]

    whole = run((0, 1))
    assert len(whole) > 30
    shared = sorted(run((0, 3)) + run((1, 3)) + run((2, 3)))
    assert shared == sorted(whole)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(0, (1 << 32) - 1),
)
def test_reassembly_in_any_order(sizes: list[int], rnd: Any, isn: int) -> None:
    # the heap-ordered release gives the stream back whatever the order and overlaps
    stream = bytes(rnd.getrandbits(8) for _ in range(sum(sizes)))
    segments = []
    pos = 0
    for size in sizes:
        segments.append((pos, stream[pos : pos + size]))
        pos += size
    extra = [segments[i] for i in rnd.sample(range(len(segments)), len(segments) // 3)]
    overlaps = []
    for start, data in extra:  # retransmissions that overlap their neighbours
        begin = max(0, start - rnd.randint(0, 50))
        overlaps.append((begin, stream[begin : start + len(data) + rnd.randint(0, 50)]))
    order = segments[:1] + rnd.sample(segments[1:] + overlaps, len(segments) - 1 + len(overlaps))
    flow = Flow()
    flow.syn((isn - 1) % (1 << 32))
    got = []
    for start, data in order:
        for item in flow.segment((isn + start) % (1 << 32), data):
            assert isinstance(item, bytes)
            got.append(item)
    for item in flow.flush():
        assert isinstance(item, bytes)
        got.append(item)
    assert b"".join(got) == stream
    assert flow.pending_bytes == 0


# ------------------------------------------------------------------ item 12


def test_stdin_lines_come_when_the_input_pauses_and_survive_ctrl_c() -> None:
    # item 12: nothing was written before EOF or 1,024 lines, and Ctrl-C lost it
    capture = (CAPTURES / "ws-basic.pcap").read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, "decode", "--ndjson", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT / "captures")
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(capture)
    proc.stdin.flush()  # and the writer pauses, the pipe still open
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    deadline = time.monotonic() + 20
    while seen.count(b"\n") < 14 and time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            seen += chunk
        time.sleep(0.05)
    assert seen.count(b"\n") == 14, seen
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.decode().strip() == "wsp: interrupted"
    assert [json.loads(line)["packet"] for line in seen.splitlines()]
