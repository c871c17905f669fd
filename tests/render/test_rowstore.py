"""The row store: rows of every sample capture agree with what wsp decode --ndjson prints."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools.capture.source import FileProgress, read_file
from wsproto_tools.exceptions import NotACapture
from wsproto_tools.render.rowstore import CaptureSink, RowStore

ROOT = Path(__file__).resolve().parents[2]
WSP = str(Path(sys.executable).parent / "wsp")
SAMPLES = sorted(p for p in (ROOT / "captures").iterdir()
                 if p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))


def decoded(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([WSP, "decode", str(path), "--ndjson"], capture_output=True, text=True,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def store_of(path: Path) -> RowStore:
    store = RowStore()
    read_file(str(path), CaptureSink(store))
    return store


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_rows_match_the_decoder_output(path: Path) -> None:
    store = store_of(path)
    want = [r for r in decoded(path) if "record" not in r]
    rows = [store.row(i) for i in range(store.count)]
    messages = [r for r in rows if r.kind == "message"]
    assert [r.record() for r in messages] == want
    for row, rec in zip(messages, want, strict=True):
        wsp = rec.get("wsp") or {}
        payload = wsp.get("payload") if isinstance(wsp.get("payload"), dict) else {}
        assert (row.conn, row.direction, row.opcode, row.size) == (
            rec["conn"], rec["direction"], rec["opcode"], rec["length"])
        assert row.wsp_type == wsp.get("type")
        assert row.seq == wsp.get("sequence")
        assert row.topic == payload.get("topic")
        assert row.offset == payload.get("offset")
        codes = list(rec["violations"]) + [f"wsp-{f['rule']}" for f in rec.get("session", [])
                                           if f["verdict"] == "violation"]
        assert list(row.violations) == codes
    # one connected event per WebSocket connection, before its first message
    connections = [r for r in decoded(path) if r.get("record") == "connection"
                   and r.get("kind") == "websocket"]
    events = [r for r in rows if r.kind == "connected"]
    assert sorted(e.conn for e in events) == sorted(c["conn"] for c in connections)
    for event in events:
        first = next(i for i, r in enumerate(rows) if r.conn == event.conn)
        assert rows[first] is event or rows[first].kind == "connected"


def test_ndjson_files_plain_and_gzipped(tmp_path: Path) -> None:
    path = ROOT / "captures" / "wsp-session-v2.pcap"
    text = subprocess.run([WSP, "decode", str(path), "--ndjson"], capture_output=True,
                          check=True).stdout
    (tmp_path / "a.ndjson").write_bytes(text + b"not json\n\n[1,2]\n")
    (tmp_path / "a.ndjson.gz").write_bytes(gzip.compress(text))
    for name in ("a.ndjson", "a.ndjson.gz"):
        store = RowStore()
        progress = FileProgress(0)
        read_file(str(tmp_path / name), CaptureSink(store), progress=progress)
        assert progress.kind == "ndjson" and progress.finished
        records = [store.record(i) for i in range(store.count)]
        # every line that is a JSON object, in order (the bad lines are skipped)
        assert records == [json.loads(line) for line in text.splitlines()]


def test_not_a_capture_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(NotACapture):
        read_file(str(bad), CaptureSink(RowStore()))


def test_stop_ends_the_reading_early() -> None:
    store = RowStore()
    path = ROOT / "captures" / "wsp-session-v2.pcap"
    read_file(str(path), CaptureSink(store), stop=lambda: True)
    # stop is looked at every 1,024 packets: a small file is read to its end anyway,
    # and nothing read is lost
    assert store.count == len(decoded(path)) - 1


def test_records_spill_to_disk_and_read_back() -> None:
    store = RowStore()
    big = "x" * 5000
    for n in range(2000):  # 10 MB: more than the in-memory tail
        store.add_record({"kind": "message", "ts": float(n), "session": 3,
                          "direction": "server", "length": 5000, "text": big + str(n)})
    assert store.spilled() > 8 << 20
    assert store.memory() < 200_000
    for n in (0, 999, 1999):
        assert store.record(n)["text"] == big + str(n)
        assert store.row(n).text() == big + str(n)


def test_chunks_carry_rows_to_a_store_reading_the_same_spill(tmp_path: Path) -> None:
    """A writer thread appends while chunks are taken (as tui/ingest.py's child
    does); the reading store ends with the same rows and records."""
    import threading

    path = str(tmp_path / "spill")
    writer = RowStore(spill_path=path)
    reader = RowStore()
    reader.share_spill(path)
    records = [{"kind": "message", "ts": float(n), "session": n % 7, "direction": "client",
                "length": n, "text": "x" * (n % 300), "violations": ["v"] if n % 11 == 0 else [],
                "wsp": {"type": "Publish", "type_code": 0x104, "sequence": n,
                        "payload": {"topic": f"t{n % 5}"}}} for n in range(20_000)]

    def fill() -> None:
        for record in records:
            writer.add_record(record)

    thread = threading.Thread(target=fill)
    thread.start()
    while thread.is_alive() or writer.count > reader.count:
        chunk = writer.chunk()
        if chunk is not None:
            reader.take_chunk(chunk)
    thread.join()
    assert reader.count == len(records)
    assert [reader.record(i) for i in range(0, 20_000, 997)] == records[::997]
    assert reader.row(5500).topic == "t0" and reader.row(5500).seq == 5500
    assert sorted(reader.violations) == [n for n in range(20_000) if n % 11 == 0]
