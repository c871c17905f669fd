"""``wsp decode --filter EXPR`` on the committed samples, run as a real process
(and, for the sample-by-filter matrix, through click's runner in this process).

The oracle is each sample's expected file (what the sending programs logged,
captures/README.md), filtered here by hand-written Python conditions, or a hand
count of what the sample's programs sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsproto_tools.cli.main import cli

from .samples import CAPTURES, samples

ENTRY = "from wsproto_tools.cli.main import main; main()"
BASIC = CAPTURES / "ws-basic.pcap"
VIOLATIONS = CAPTURES / "violations.pcap"
SESSIONS = [CAPTURES / "wsp-session-v1.pcap", CAPTURES / "wsp-session-v2.pcap"]


def wsp_decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, "decode", *args],
                          capture_output=True, text=True, timeout=120)


def decoded(path: Path, *args: str, in_process: bool = False
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The message objects and the summary record of ``wsp decode --ndjson``."""
    if in_process:
        result = CliRunner().invoke(cli, ["decode", str(path), "--ndjson", *args])
        assert result.exit_code == 0, result.output
        out = result.stdout
    else:
        done = wsp_decode(str(path), "--ndjson", *args)
        assert done.returncode == 0, done.stderr
        out = done.stdout
    records = [json.loads(line) for line in out.splitlines()]
    summary = next(r for r in records if r.get("record") == "summary")
    return [r for r in records if "record" not in r], summary


def key(message: dict[str, Any]) -> tuple[Any, ...]:
    return (message["conn"], message["direction"], message["opcode"],
            (message.get("wsp") or {}).get("type"))


#: the samples whose expected file lists every message (no "match": "subsequence")
WHOLE = [(name, path, doc) for name, path, doc in samples() if doc.get("match") is None]

#: filter -> the same condition written by hand over an expected message
CONDITIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "!dir:client": lambda m: m["direction"] != "client",
    "dir:c": lambda m: m["direction"] == "client",
    "violation": lambda m: bool(m.get("violations")),
    "!violation": lambda m: not m.get("violations"),
    "opcode:close | opcode:ping": lambda m: m["opcode"] in ("close", "ping"),
    "text dir:server | binary conn:1": lambda m: (
        (m["opcode"] == "text" and m["direction"] == "server")
        or (m["opcode"] == "binary" and m["conn"] == 1)),
    "wsp !type:Acknowledge": lambda m: (m.get("wsp") or {}).get("type") not in (
        None, "Acknowledge"),
    "violation:wsp-state": lambda m: "wsp-state" in (m.get("violations") or ()),
}


@pytest.mark.parametrize("expr", list(CONDITIONS))
@pytest.mark.parametrize(("name", "path", "doc"), WHOLE, ids=[w[0] for w in WHOLE])
def test_filter_keeps_what_the_expected_file_says(name: str, path: Path, doc: dict[str, Any],
                                                  expr: str) -> None:
    want = Counter(key(m) for m in doc["messages"] if CONDITIONS[expr](m))
    found, summary = decoded(path, "--filter", expr, in_process=True)
    assert Counter(key(m) for m in found) == want
    assert summary["messages"] == sum(want.values())  # the summary counts what passed


def test_hand_counts_on_the_violations_sample() -> None:
    # three raw clients each sent one bad message; the server closed each connection
    found, _ = decoded(VIOLATIONS, "--filter", "violation")
    assert sorted(code for m in found for code in m["violations"]) == [
        "fragmented-control", "invalid-utf8", "unmasked-client-frame"]
    found, _ = decoded(VIOLATIONS, "--filter", "violation:invalid-utf8")
    assert [(m["conn"], m["hex"]) for m in found] == [(2, "62616420ff2075746638")]
    found, _ = decoded(VIOLATIONS, "--filter", "!dir:client")
    assert [(m["conn"], m["close_code"]) for m in found] == [(1, 1002), (2, 1007), (3, 1002)]
    found, _ = decoded(VIOLATIONS, "--filter", "opcode:close size>20")
    assert [m["close_reason"] for m in found] == ["invalid start byte at position 4",
                                                   "fragmented control frame"]


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_wsp_fields_on_the_session_samples(path: Path) -> None:
    # the publisher sent five Publishes on "prices" (conn 2); the subscriber got
    # each of them as a Deliver with offsets 1..5
    publishes, summary = decoded(path, "--filter", "type:Publish")
    assert len(publishes) == 5 and summary["messages"] == 5
    assert {(m["conn"], m["direction"], m["wsp"]["payload"]["topic"]) for m in publishes} == {
        (2, "client", "prices")}
    assert [m["packet"] for m in decoded(path, "--filter", "type:0x0104")[0]] == [
        m["packet"] for m in publishes]
    delivers, _ = decoded(path, "--filter", "type:deliver topic:prices")
    assert sorted(m["wsp"]["payload"]["offset"] for m in delivers) == [1, 2, 3, 4, 5]
    later, _ = decoded(path, "--filter", "type:Deliver offset>=4")
    assert sorted(m["wsp"]["payload"]["offset"] for m in later) == [4, 5]
    both, _ = decoded(path, "--filter", "type:Publish | type:Deliver")
    assert len(both) == 10
    assert decoded(path, "--filter", "topic:pri*")[0] == decoded(path, "--topic", "prices")[0]
    # Publish payloads hold the bytes "tick N" (hex in the JSON text)
    ticks, _ = decoded(path, "--filter", 'type:Publish text:"7469636b2033"')
    assert len(ticks) == 1
    assert decoded(path, "--filter", "violation")[0] == []


def test_text_search_on_ws_basic() -> None:
    (_, _, doc), = [s for s in samples() if s[0] == "ws-basic"]
    texts = [m["text"] for m in doc["messages"] if "text" in m]
    want = [t for t in texts if re.search("acme", t, re.IGNORECASE)]
    assert want  # the sample has a JSON message about ACME
    found, _ = decoded(BASIC, "--filter", "text~acme")
    assert [m["text"] for m in found] == want
    found, _ = decoded(BASIC, "--filter", 'text:"hello, capture"')
    assert [m["text"] for m in found] == [t for t in texts if "hello, capture" in t]


def test_filter_ands_with_the_option_filters() -> None:
    found, summary = decoded(VIOLATIONS, "--conn", "1", "--filter", "!dir:client")
    assert [(m["conn"], m["opcode"]) for m in found] == [(1, "close")]
    assert summary["messages"] == 1
    found, _ = decoded(VIOLATIONS, "--direction", "client", "--filter", "opcode:close")
    assert found == []


def test_blank_filter_changes_nothing() -> None:
    plain = wsp_decode(str(BASIC), "--ndjson")
    blank = wsp_decode(str(BASIC), "--ndjson", "--filter", "  ")
    assert blank.returncode == 0
    assert blank.stdout == plain.stdout


def test_filter_in_table_stats_json_and_parallel() -> None:
    path = SESSIONS[1]
    table = wsp_decode(str(path), "--filter", "type:Publish")
    assert table.returncode == 0
    assert table.stdout.count("Publish") >= 5 and "Deliver" not in table.stdout
    doc = json.loads(wsp_decode(str(path), "--json", "--filter", "type:Publish").stdout)
    assert len(doc["messages"]) == doc["summary"]["messages"] == 5
    one = wsp_decode(str(path), "--ndjson", "--filter", "type:Deliver | violation")
    two = wsp_decode(str(path), "--ndjson", "-j", "2", "--filter", "type:Deliver | violation")
    assert two.returncode == 0
    assert two.stdout == one.stdout


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("tpye:Publish", "unknown field 'tpye' at column 1 (did you mean 'type'?)"),
        ("type:Publsh", "unknown wsp type 'Publsh' at column 6 (did you mean 'Publish'?)"),
        ("(wsp", "unclosed '(' at column 1"),
        ("text~a(", "bad regular expression 'a(': missing ), unterminated subpattern"
                    " at column 7"),
    ],
)
def test_a_bad_filter_exits_2_with_one_line(expr: str, message: str) -> None:
    done = wsp_decode(str(BASIC), "--ndjson", "--filter", expr)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"wsp: error: --filter: {message}\n"
