"""Live statistics: series, types, latencies, compression and overhead, checked against
timestamps paired by hand (packet numbers of the committed samples), counts made
here from the records, and arithmetic written out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from wsproto_tools.capture.source import read_file
from wsproto_tools.render import livestats
from wsproto_tools.render.livestats import LiveStats, Quantiles, spark, stats_renderables
from wsproto_tools.render.records import Row, row_of_record
from wsproto_tools.render.rowstore import CaptureSink, RowStore

ROOT = Path(__file__).resolve().parents[2]
WSP = str(Path(sys.executable).parent / "wsp")


@cache
def _decoded(name: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run([WSP, "decode", str(ROOT / "captures" / name), "--ndjson"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(line) for line in out.splitlines())


def messages(name: str) -> list[dict[str, Any]]:
    return [r for r in _decoded(name) if "record" not in r]


def fed(name: str, *, with_records: bool = False) -> LiveStats:
    stats = LiveStats()
    for rec in messages(name):
        stats.add(row_of_record(rec), rec if with_records else None)
    return stats


def ts_of(name: str, packet: int) -> float:
    (rec,) = [r for r in messages(name) if r.get("packet") == packet]
    return float(rec["ts"])


def row(ts: float, size: int, direction: str = "client", conn: int = 1,
        opcode: str = "binary", wsp_type: str | None = None) -> Row:
    return Row("message", ts, conn, direction, opcode, wsp_type, size=size)


# ------------------------------------------------------------------ latencies

V2 = "wsp-session-v2.pcap"
#: (probe, reply) packets of wsp-session-v2, paired by reading the capture: each side
#: numbers its own probes and a reply (reply: true) echoes the id of the other side's
CONN1_BEATS = [(37, 43), (38, 41)]
CONN2_BEATS = [(39, 42), (44, 46), (64, 66), (67, 69)]
#: (Publish seq N, Acknowledge N) packets of conn 2
CONN2_ACKS = [(25, 26), (29, 30), (32, 33), (71, 72), (76, 77)]


def _pairs(pairs: list[tuple[int, int]]) -> list[float]:
    return sorted(ts_of(V2, b) - ts_of(V2, a) for a, b in pairs)


def test_heartbeat_rtt_from_the_record_timestamps() -> None:
    stats = fed(V2)
    one = stats.snapshot(1)["latency"]["heartbeat"]
    rtts = _pairs(CONN1_BEATS)  # 0.437 ms and 0.168 ms
    assert one["n"] == 2
    assert one["max"] == pytest.approx(rtts[-1])
    assert one["max"] == pytest.approx(0.000437, abs=1e-6)
    two = stats.snapshot(2)["latency"]["heartbeat"]
    rtts2 = _pairs(CONN2_BEATS)
    assert two["n"] == 4
    # percentiles of four: p50 is the third smallest, p90 and p99 the largest
    assert two["p50"] == pytest.approx(rtts2[2])
    assert two["p99"] == pytest.approx(rtts2[3])
    overall = stats.snapshot()["latency"]["heartbeat"]
    assert overall["n"] == 6
    assert overall["max"] == pytest.approx(max(rtts + rtts2))


def test_ack_latency_from_the_record_timestamps() -> None:
    stats = fed(V2)
    ack = stats.snapshot(2)["latency"]["ack"]
    lat = _pairs(CONN2_ACKS)
    assert ack["n"] == 5
    assert ack["p50"] == pytest.approx(lat[2])
    assert ack["max"] == pytest.approx(lat[4])
    assert ack["max"] == pytest.approx(0.000307, abs=1e-6)  # packet 71 -> 72
    assert stats.snapshot(1)["latency"]["ack"] is None  # conn 1 only subscribed


def test_rows_of_a_row_store_give_the_same_latencies() -> None:
    # as the TUI feeds it: store rows, no records (read back only where needed)
    store = RowStore()
    read_file(str(ROOT / "captures" / V2), CaptureSink(store))
    stats = LiveStats()
    for i in range(store.count):
        stats.add(store.row(i), None)
    assert stats.snapshot(2)["latency"]["ack"]["max"] == pytest.approx(_pairs(CONN2_ACKS)[-1])
    assert stats.snapshot()["latency"]["heartbeat"]["n"] == 6


def test_ping_rtt() -> None:
    # ws-basic: the client's ping (packet 22) and the server's pong (packet 23)
    stats = fed("ws-basic.pcap")
    ping = stats.snapshot()["latency"]["ping"]
    rtt = ts_of("ws-basic.pcap", 23) - ts_of("ws-basic.pcap", 22)
    assert ping["n"] == 1
    assert ping["p50"] == pytest.approx(rtt)


def _batch(seq: int) -> dict[str, Any]:
    item = {"version": 2, "type": "Publish", "type_code": 260, "flags": [], "sequence": seq,
            "session_id": 0, "timestamp": 0, "payload": {"topic": "t", "data": "", "id": seq}}
    return {"ts": 10.0, "conn": 4, "direction": "client", "opcode": "binary", "length": 40,
            "compressed": False, "hex": "00", "violations": [],
            "wsp": {"version": 2, "type": "Batch", "type_code": 519, "flags": [],
                    "sequence": 0, "session_id": 0, "timestamp": 0,
                    "payload": {"messages": [item]}}}


def test_ack_of_a_publish_inside_a_batch() -> None:
    ack = {"ts": 10.25, "conn": 4, "direction": "server", "opcode": "binary", "length": 10,
           "compressed": False, "hex": "00", "violations": [],
           "wsp": {"version": 2, "type": "Acknowledge", "type_code": 515, "flags": [],
                   "sequence": 0, "session_id": 0, "timestamp": 0, "payload": {"sequence": 1}}}
    stats = LiveStats()
    for rec in (_batch(1), ack):
        stats.add(row_of_record(rec))
    assert stats.snapshot(4)["latency"]["ack"]["p50"] == pytest.approx(0.25)


def test_a_reply_from_the_same_side_is_no_answer() -> None:
    def beat(ts: float, direction: str, reply: bool) -> dict[str, Any]:
        return {"ts": ts, "conn": 1, "direction": direction, "opcode": "binary", "length": 9,
                "compressed": False, "hex": "00", "violations": [],
                "wsp": {"version": 2, "type": "Heartbeat", "type_code": 3, "flags": [],
                        "sequence": 0, "session_id": 0, "timestamp": 0,
                        "payload": {"id": 1, "reply": reply}}}

    stats = LiveStats()
    for rec in (beat(1.0, "client", False), beat(1.5, "client", True),
                beat(2.0, "server", True)):
        stats.add(row_of_record(rec))
    beats = stats.snapshot()["latency"]["heartbeat"]
    assert beats["n"] == 1
    assert beats["p50"] == pytest.approx(1.0)  # the server's reply at 2.0 to the probe at 1.0


# ------------------------------------------------------------------ series and counts


def test_per_second_series_by_the_rows_own_time() -> None:
    stats = LiveStats()
    stats.add(row(100.1, 10))
    stats.add(row(100.5, 20))
    stats.add(row(101.2, 5, "server"))
    stats.add(row(103.9, 1))
    assert stats.series() == ([2, 1, 0, 1], [30, 5, 0, 1])
    assert stats.series_by_direction() == {"client": ([2, 0, 0, 1], [30, 0, 0, 1]),
                                           "server": ([0, 1, 0, 0], [0, 5, 0, 0])}
    stats.add(row(101.7, 7, "server"))  # late, still in the window
    assert stats.series() == ([2, 2, 0, 1], [30, 12, 0, 1])
    snap = stats.snapshot()
    assert snap["messages"] == 5
    assert snap["bytes_by_direction"] == {"client": 31, "server": 12}


def test_window_slides_and_is_bounded() -> None:
    stats = LiveStats()
    stats.add(row(100.0, 10))
    stats.add(row(230.0, 3))  # 130 s later: 100 is out of the 120 s window
    messages, nbytes = stats.series()
    assert len(messages) == 120
    assert messages == [0] * 119 + [1]
    assert nbytes[-1] == 3
    stats.add(row(105.0, 4))  # older than the window: counted, not in the series
    assert stats.series()[0] == [0] * 119 + [1]
    assert stats.snapshot()["messages"] == 3


def test_type_breakdown_matches_the_records() -> None:
    stats = fed(V2)
    expected = Counter((r.get("wsp") or {}).get("type") or r["opcode"] for r in messages(V2))
    assert stats.snapshot()["types"] == dict(expected)
    conn2 = Counter((r.get("wsp") or {}).get("type") or r["opcode"] for r in messages(V2)
                    if r["conn"] == 2)
    assert stats.snapshot(2)["types"] == dict(conn2)
    assert conn2["Publish"] == 5  # the five publishes paired above


def test_events_and_violations() -> None:
    stats = LiveStats()
    for rec in ({"kind": "connected", "ts": 1.0, "session": 0, "peer": "p", "identity": None,
                 "subprotocol": "wsp.v2", "version": 2},
                {"kind": "violation", "ts": 2.0, "session": 0, "peer": "p", "identity": None,
                 "rule": 27, "code": 1002, "message": "gap"}):
        stats.add(row_of_record(rec))
    snap = stats.snapshot()
    assert snap["messages"] == 0
    assert snap["events"] == {"connected": 1, "violation": 1}
    assert snap["violations"] == {"rule-27": 1}
    bare = fed("wsp-bare-v2.pcap").snapshot()
    assert bare["violations"]["wsp-state"] >= 1  # the observer flags each bare message


def test_sessions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livestats, "MAX_SESSIONS", 3)
    stats = LiveStats()
    for conn in range(1, 6):
        stats.add(row(1.0, 1, conn=conn))
    assert sorted(stats.sessions) == [3, 4, 5]
    assert stats.snapshot()["messages"] == 5


# ------------------------------------------------------------------ sizes


def test_compression_ratio_and_overhead_from_wire_lengths() -> None:
    stats = LiveStats()
    compressed = {"ts": 1.0, "conn": 1, "direction": "server", "opcode": "text",
                  "length": 100, "compressed": True, "wire_length": 25, "violations": []}
    plain = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "binary",
             "length": 10, "compressed": False, "wire_length": 16, "violations": []}
    for rec in (compressed, plain):
        stats.add(row_of_record(rec), rec)
    snap = stats.snapshot()
    assert snap["compression_ratio"] == 4.0  # 100 / 25
    assert snap["protocol_overhead"] == 0.375  # 1 - 10 / 16
    assert snap["compressed_messages"] == 1


def test_framing_overhead_from_lengths() -> None:
    # 200 bytes from the client: 2 + 2 (16-bit length) + 4 (mask key) header bytes
    rec = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "binary", "length": 200,
           "compressed": False, "violations": []}
    stats = LiveStats()
    stats.add(row_of_record(rec), rec)
    assert stats.snapshot()["protocol_overhead"] == round(1 - 200 / 208, 4)


def test_framing_overhead_agrees_with_the_captured_frames() -> None:
    # the connection records count the bytes of the frames as they were captured
    conns = [r for r in _decoded(V2) if r.get("record") == "connection"]
    wire = sum(sum(c["wire_bytes"].values()) for c in conns)
    payload = sum(sum(c["payload_bytes"].values()) for c in conns)
    stats = fed(V2, with_records=True)
    assert stats.snapshot()["protocol_overhead"] == round(1 - payload / wire, 4)
    # without the records only what the rows say is known
    assert fed(V2).snapshot()["protocol_overhead"] is None


# ------------------------------------------------------------------ percentiles, sparklines


def test_quantiles_exact_then_bounded() -> None:
    q = Quantiles()
    for k in range(1, 11):
        q.add(k / 1000)
    assert q.summary() == {"p50": 0.006, "p90": 0.01, "p99": 0.01, "max": 0.01, "n": 10}
    q = Quantiles()
    for k in range(1, 2001):
        q.add(k / 1000)  # 1 ms .. 2 s
    got = q.summary()
    assert got is not None
    assert got["n"] == 2000
    assert got["max"] == 2.0
    assert got["p50"] == pytest.approx(1.001, rel=0.022)  # the 1001st smallest
    assert got["p99"] == pytest.approx(1.981, rel=0.022)
    assert q.hist is not None and len(q.hist) < 400 and not q.exact


def test_spark() -> None:
    assert spark([0, 1, 2, 4, 8], 10) == " ▁▂▄█"
    assert spark([1, 0, 0, 0, 0, 8], 3) == "▁ █"  # groups of two, each its peak
    assert spark([0, 0], 5) == "  "
    assert spark([], 5) == ""


def test_stats_renderables_show_the_numbers() -> None:
    stats = fed(V2)
    console = Console(record=True, width=100, color_system=None)
    console.print(stats_renderables(stats, conn=2))
    text = console.export_text()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "messages 25 (client→server 13, server→client 12)" in lines
    assert "Publish 5 20.0" in lines  # 5 of 25
    lat = _pairs(CONN2_ACKS)
    assert f"ack 5 {lat[2] * 1000:.3f} {lat[4] * 1000:.3f} {lat[4] * 1000:.3f} " \
           f"{lat[4] * 1000:.3f}" in lines
    console = Console(record=True, width=100, color_system=None)
    console.print(stats_renderables(stats))
    overall = console.export_text()
    assert "busiest sessions" in overall
    assert "sessions 3" in " ".join(overall.split())


def test_sparkline_strings_in_the_renderable() -> None:
    stats = LiveStats()
    for ts, size in ((10.2, 100), (11.5, 50), (11.6, 50), (12.1, 25)):
        stats.add(row(ts, size))

    def rendered(**kw: Any) -> list[str]:
        console = Console(record=True, width=100, color_system=None)
        console.print(stats_renderables(stats, **kw))
        return [" ".join(line.split()) for line in console.export_text().splitlines()]

    # messages per second 1, 2, 1 (max 2: ▄█▄); bytes 100, 100, 25 (█ █ ▂, 25/100 of 8 = 2)
    assert "messages/s ▄█▄ max 2" in rendered()
    assert "bytes/s ██▂ max 100" in rendered()
    assert not any(line.startswith("messages/s") for line in rendered(sparklines=False))
