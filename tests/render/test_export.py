"""Exports of records: every sample capture round-trips through the synthetic pcapng.

Oracles: ``wsp decode --ndjson`` of the committed sample captures (whose messages
tests/capture/test_samples.py checks against what the sending programs logged),
decoded again from the export in a separate ``wsp decode`` process; tshark
(Wireshark) with checksum validation; records written by hand.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools.capture import PacketReader
from wsproto_tools.codec import Heartbeat, Message, Publish, TextData
from wsproto_tools.codec.jsonform import message_to_json
from wsproto_tools.render.export import export_cassette, export_ndjson, export_pcapng
from wsproto_tools.replay.cassette import read_cassette
from wsproto_tools.ws.pcapng import LINKTYPE_RAW
from wsproto_tools.ws.synth import ETHERNET_MSS

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(p for p in (ROOT / "captures").iterdir()
                  if p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))
WSP = str(Path(sys.executable).with_name("wsp"))
#: the keys a message keeps through the export (not its time, packet, compression,
#: fragmentation, or the violations of frames the export writes correctly)
KEPT = ("conn", "direction", "opcode", "length", "text", "hex", "close_code", "close_reason",
        "wsp")


def wsp_decode(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run([WSP, "decode", "--ndjson", "-q", str(path)], capture_output=True,
                            text=True, timeout=120, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def messages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: r[k] for k in KEPT if k in r} for r in records if "direction" in r]


def connections(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["conn"]: r for r in records if r.get("record") == "connection"}


@pytest.fixture(scope="module", params=CAPTURES, ids=[p.name for p in CAPTURES])
def sample(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> tuple[list[dict[str, Any]], Path]:
    records = wsp_decode(request.param)
    out = tmp_path_factory.mktemp("export") / "export.pcapng"
    with out.open("wb") as stream:
        for chunk in export_pcapng(iter(records)):
            stream.write(chunk)
    return records, out


def test_there_are_samples() -> None:
    assert len(CAPTURES) >= 10


def test_the_export_decodes_to_the_same_messages(
        sample: tuple[list[dict[str, Any]], Path]) -> None:
    original, path = sample
    again = wsp_decode(path)
    want, got = messages(original), messages(again)
    assert want, "the sample has messages"
    assert len(got) == len(want)
    for index, (w, g) in enumerate(zip(want, got, strict=True)):
        assert g == w, f"message {index}"
    for conn, record in connections(original).items():
        exported = connections(again)[conn]
        assert exported["handshake"] is True and exported["status"] == 101
        assert exported["path"] == (record["path"] or "/")
        wsp_versions = {m["wsp"]["version"] for m in want
                        if m["conn"] == conn and "version" in m.get("wsp", {})}
        expected = record["subprotocol"] or (
            f"wsp.v{wsp_versions.pop()}" if len(wsp_versions) == 1 else None)
        assert exported["subprotocol"] == expected
        assert exported["extensions"] is None  # payloads go uncompressed
        assert exported["tcp_gaps"] == 0 and exported["retransmissions"] == 0
    summary = again[-1]
    assert summary["record"] == "summary" and summary["warnings"] == 0


def tshark(path: Path, *args: str) -> list[str]:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install tshark; .ci/run installs it)")
    result = subprocess.run(
        [exe, "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", *args],
        capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.splitlines()


def test_wireshark_opens_the_export_cleanly(sample: tuple[list[dict[str, Any]], Path]) -> None:
    original, path = sample
    rows = tshark(path, "-T", "fields", "-E", "separator=|", "-e", "ip.checksum.status",
                  "-e", "tcp.checksum.status", "-e", "_ws.malformed", "-e", "_ws.expert.severity")
    assert rows
    # 1: Good checksums; no malformed packet; expert info at most notes (a connection
    # opening and closing), no warnings (0x600000) or errors.
    bad = [(n, row) for n, row in enumerate(rows, 1)
           if row.split("|")[:3] != ["1", "1", ""]
           or any(int(s) >= 0x600000 for s in row.split("|")[3].split(",") if s)]
    assert not bad, bad[:5]
    frames = tshark(path, "-Y", "websocket", "-T", "fields", "-e", "websocket.opcode")
    assert [int(op) for op in frames] == [
        {"text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}[m["opcode"]]
        for m in messages(original)]


def feed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inspector-feed records of two connections (and the wsp JSON they carry)."""
    sent = [
        message_to_json(Message(Heartbeat(), sequence=0), 2),
        message_to_json(Message(Publish(topic="prices", data=b"\x01\x02"), sequence=1,
                                session_id=5), 2),
        message_to_json(Message(TextData("x" * 100_000), sequence=2, session_id=5), 2),
        message_to_json(Message(TextData("v1 here"), sequence=1, session_id=6), 1),
    ]
    def rec(kind: str, ts: float, peer: str, **keys: Any) -> dict[str, Any]:
        return {"kind": kind, "ts": ts, "session": keys.pop("session", 5), "peer": peer,
                "identity": None, **keys}
    records = [
        rec("connected", 1.0, "127.0.0.1:4001", subprotocol="wsp.v2", version=2, session=0),
        rec("message", 1.1, "127.0.0.1:4001", direction="client", length=3, wsp=sent[0],
            session=0),
        rec("connected", 1.15, "127.0.0.1:4002", subprotocol="wsp.v1", version=1, session=0),
        rec("message", 1.2, "127.0.0.1:4001", direction="client", length=20, wsp=sent[1]),
        rec("message", 1.25, "127.0.0.1:4002", direction="server", length=44, wsp=sent[3],
            session=6),
        rec("violation", 1.27, "127.0.0.1:4002", rule=3, code=1002, message="x", session=6),
        rec("message", 1.3, "127.0.0.1:4001", direction="server", length=100_006,
            wsp=sent[2]),
        rec("message", 1.35, None, direction="server", length=20, wsp=sent[1], session=None,
            subscribers=4),
        rec("closed", 1.4, "127.0.0.1:4001", code=1000, reason="", resumable=False),
    ]
    return records, sent


@pytest.mark.parametrize("linktype", [1, LINKTYPE_RAW])
def test_inspector_records_export_to_pcapng(tmp_path: Path, linktype: int) -> None:
    records, sent = feed()
    path = tmp_path / "feed.pcapng"
    path.write_bytes(b"".join(export_pcapng(records, linktype=linktype, mss=ETHERNET_MSS)))
    again = wsp_decode(path)
    got = [(r["conn"], r["direction"], r["opcode"], r["wsp"]) for r in again if "direction" in r]
    assert got == [(1, "client", "binary", sent[0]), (1, "client", "binary", sent[1]),
                   (2, "server", "binary", sent[3]), (1, "server", "binary", sent[2])]
    conns = connections(again)
    assert (conns[1]["subprotocol"], conns[2]["subprotocol"]) == ("wsp.v2", "wsp.v1")
    # Connections interleave in time order in one file.
    times = [p.ts for p in PacketReader(io.BytesIO(path.read_bytes()))]
    assert times == sorted(times)


def test_ndjson_carries_every_record_verbatim() -> None:
    records, _ = feed()
    records.append({"record": "summary", "packets": 3, "text": "a\nb", "ü": "ß"})
    lines = list(export_ndjson(iter(records)))
    assert len(lines) == len(records)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert [json.loads(line) for line in lines] == records


def test_cassette_export_reads_back_as_the_same_messages() -> None:
    records, sent = feed()
    cassette = read_cassette(list(export_cassette(iter(records))))
    assert [(c.conn, c.subprotocols) for c in cassette.connections.values()] == [
        (1, ("wsp.v2",)), (2, ("wsp.v1",))]
    got = [(m.conn, m.direction, message_to_json(m.wsp, m.version) if m.wsp else None)
           for m in cassette.messages]
    assert got == [(1, "client", sent[0]), (1, "client", sent[1]), (2, "server", sent[3]),
                   (1, "server", sent[2])]


def test_nothing_to_export_is_an_empty_capture_that_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcapng"
    events = [
        {"kind": "dropped", "ts": 1.0, "count": 3, "session": None, "peer": None},
        {"kind": "violation", "ts": 1.0, "session": 0, "peer": "127.0.0.1:1", "rule": 2},
        {"record": "connection", "conn": 4, "kind": "http", "first_ts": 1.0, "path": "/"},
        {"record": "summary", "packets": 9},
    ]
    path.write_bytes(b"".join(export_pcapng(events)))
    assert list(PacketReader(io.BytesIO(path.read_bytes()))) == []
    assert messages(wsp_decode(path)) == []
