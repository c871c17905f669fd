"""``wsp decode`` options: filters, output forms, stdin, parallel decoding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsproto_tools.cli.main import cli
from wsproto_tools.render.capture import MessageLines, message_record

from .samples import CAPTURES, sample_messages, samples

BASIC = CAPTURES / "ws-basic.pcap"
SESSION = CAPTURES / "wsp-session-v2.pcap"
ENTRY = "from wsproto_tools.cli.main import main; main()"


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["decode", *args])


def messages(output: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, output.splitlines()) if "record" not in r]


def test_filters() -> None:
    out = run("--ndjson", "--direction", "server", str(BASIC))
    assert {r["direction"] for r in messages(out.stdout)} == {"server"}
    out = run("--ndjson", "--opcode", "ping", "--opcode", "pong", str(BASIC))
    assert [r["opcode"] for r in messages(out.stdout)] == ["ping", "pong"]
    out = run("--ndjson", "--grep", "uni.ode", str(BASIC))
    assert [r["text"] for r in messages(out.stdout)] == ["unicode: żółw 🐢"]
    out = run("--ndjson", "--type", "deliver", str(SESSION))
    found = messages(out.stdout)
    assert found and {r["wsp"]["type"] for r in found} == {"Deliver"}
    out = run("--ndjson", "--topic", "prices", "--conn", "2", str(SESSION))
    assert {r["wsp"]["type"] for r in messages(out.stdout)} == {"Publish"}


def test_json_document_and_stats() -> None:
    doc = json.loads(run("--json", str(BASIC)).stdout)
    assert set(doc) == {"connections", "messages", "warnings", "summary"}
    assert doc["summary"]["messages"] == len(doc["messages"]) == 14
    stats = run("--stats", str(BASIC))
    assert stats.exit_code == 0
    assert "Summary" in stats.stdout and "hello, capture" not in stats.stdout


def test_table_and_hex() -> None:
    out = run("--hex", str(BASIC))
    assert out.exit_code == 0
    assert "hello, capture" in out.stdout
    assert '  "symbol": "ACME",' in out.stdout  # the JSON text message, pretty-printed
    assert "00000000  00 01 02 03" in out.stdout  # the binary message's dump


def test_bad_regex_is_a_usage_error() -> None:
    assert run("--grep", "(", str(BASIC)).exit_code == 2


def test_stdin(tmp_path: Path) -> None:
    data = BASIC.read_bytes()
    result = subprocess.run([sys.executable, "-c", ENTRY, "decode", "--ndjson", "-"],
                            input=data, capture_output=True, timeout=60)
    assert result.returncode == 0
    assert len(messages(result.stdout.decode())) == 14


def test_parallel_output_equals_sequential(tmp_path: Path) -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    one = run("--ndjson", "-j", "1", str(path)).stdout
    two = run("--ndjson", "-j", "2", str(path)).stdout
    assert one == two
    assert len(messages(one)) > 40


def test_fast_lines_equal_records() -> None:
    for with_hex in (False, True):
        lines = MessageLines(with_hex=with_hex)
        for _, path, _ in samples():
            for event in sample_messages(path):
                assert json.loads(lines(event)) == json.loads(
                    json.dumps(message_record(event, with_hex=with_hex))
                )


def test_session_summary_has_ack_latency_and_nothing_unacked() -> None:
    records = [json.loads(line) for line in run("--ndjson", str(SESSION)).stdout.splitlines()]
    summary = records[-1]
    assert summary["record"] == "summary"
    assert summary["unacked"] == 0
    assert summary["latency"]["ack"]["n"] >= 5
    assert summary["violations"] == {}
    # without keys, the HMAC proofs are reported unchecked, never as fine
    assert summary["session_findings"].get("auth-proof:unchecked", 0) >= 1
    conns = [r for r in records if r.get("record") == "connection"]
    assert [c["subprotocol"] for c in conns] == ["wsp.v2"] * 3


def test_parallel_output_to_a_file_and_a_pipe(tmp_path: Path) -> None:
    """-j 2 writes gathered slices straight to the descriptor (a file, a pipe)."""
    path = str(CAPTURES / "wsp-session-v2.pcap")
    command = [sys.executable, "-c", ENTRY, "decode", "--ndjson"]
    piped = [subprocess.run([*command, "-j", str(jobs), path], capture_output=True,
                            timeout=60) for jobs in (1, 2)]
    assert piped[0].returncode == piped[1].returncode == 0
    assert piped[0].stdout == piped[1].stdout
    target = tmp_path / "out.ndjson"
    with target.open("wb") as out:
        subprocess.run([*command, "-j", "2", path], stdout=out, timeout=60, check=True)
    assert target.read_bytes() == piped[0].stdout
    assert len(messages(piped[0].stdout.decode())) > 40


def test_json_document_holds_what_ndjson_streams(tmp_path: Path) -> None:
    """--json streams its messages into the document: the same objects as --ndjson."""
    for path in (BASIC, SESSION):
        doc = json.loads(run("--json", str(path)).stdout)
        records = [json.loads(line) for line in run("--ndjson", str(path)).stdout.splitlines()]
        assert doc["messages"] == [r for r in records if "record" not in r]
        assert doc["connections"] == [r for r in records if r.get("record") == "connection"]
        assert doc["summary"] == records[-1]
        assert doc["warnings"] == []
    empty = tmp_capture([], tmp_path)
    doc = json.loads(run("--json", str(empty)).stdout)
    assert doc["messages"] == [] and doc["summary"]["messages"] == 0


def tmp_capture(frames: list[bytes], folder: Path) -> Path:
    """A raw-IP pcap of one TCP connection 10.0.0.1:80 -> 10.0.0.2:5000 carrying ``frames``
    (server frames, so ``--ws-port 80`` decodes it without a handshake)."""
    import struct

    from wsproto_tools.capture.writer import pcap_bytes

    packets = []
    seq = 1000
    for i, frame in enumerate(frames):
        tcp = struct.pack("!HHIIBBHHH", 80, 5000, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
        total = 20 + len(tcp) + len(frame)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, i & 0xFFFF, 0, 64, 6, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        packets.append((1_700_000_000 + i / 1000, ip + tcp + frame))
        seq += len(frame)
    path = folder / "frames.pcap"
    path.write_bytes(pcap_bytes(packets, linktype=101))
    return path


def test_a_reader_that_goes_away_stops_wsp_quietly(tmp_path: Path) -> None:
    """``wsp decode ... | head -1``: status 0, nothing on stderr (no traceback)."""
    frame = b"\x81\x7e\x04\x00" + b"x" * 1024  # 1 KB text frames from the server
    path = tmp_capture([frame] * 4000, tmp_path)
    for mode in ("--ndjson", "--json", "--hex"):
        proc = subprocess.Popen(
            [sys.executable, "-c", ENTRY, "decode", mode, "--ws-port", "80", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0, mode
        assert proc.stderr.read() == b"", mode
        proc.stderr.close()


@pytest.mark.parametrize("color", ["", "1"])
def test_table_rows_written_as_text_match_rich(color: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's rows, written as text, are what rich printed (cropping, styles)."""
    from wsproto_tools.render.rows import Printer

    monkeypatch.setenv("COLUMNS", "100")
    if color:
        monkeypatch.setenv("FORCE_COLOR", color)
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    for _, path, _ in samples():
        outputs = []
        for fast in (True, False):
            monkeypatch.setattr(Printer, "fast_table", fast)
            outputs.append([run(*extra, str(path)).stdout for extra in ([], ["--hex"])])
        assert outputs[0] == outputs[1], path.name
    assert ("\x1b[" in outputs[0][0]) == bool(color)
