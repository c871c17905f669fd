"""The replay report on a terminal: the counts, each difference, nothing over 80 columns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from wsproto_tools.codec.schema import Deliver, Message, Payload, Response, Subscribed
from wsproto_tools.render.replayreport import (
    differences_view,
    format_seconds,
    replay_report,
    summary_table,
    verdict,
)
from wsproto_tools.replay.cassette import CassetteMessage
from wsproto_tools.replay.diff import ReplayReport, build_report
from wsproto_tools.replay.outcome import ConnOutcome, Latency


def wsp(conn: int, payload: Payload, t: float = 0.0) -> CassetteMessage:
    return CassetteMessage(conn, "server", t, "binary", wsp=Message(payload))


def text(conn: int, value: str, t: float = 0.0) -> CassetteMessage:
    return CassetteMessage(conn, "server", t, "text", text=value)


def resp(conn: int, rid: int, data: dict[str, Any]) -> CassetteMessage:
    return wsp(conn, Response(rid, json.dumps(data).encode()), 0.01 * rid)


def outcome(conn: int, *messages: CassetteMessage, **fields: Any) -> ConnOutcome:
    return ConnOutcome(conn, received=list(messages), **fields)


def sample() -> ReplayReport:
    long = "word " * 40
    rec1 = outcome(
        1,
        resp(1, 1, {"price": 10, "note": long}),
        resp(1, 2, {}),
        resp(1, 3, {}),
        text(1, "a"),
        CassetteMessage(1, "server", 0.5, "binary", data=bytes(range(64))),
        close_code=1000,
        close_reason="bye",
        latencies=[Latency(0, 0, 0.012), Latency(1, 1, 0.25)],
    )
    rep1 = outcome(
        1,
        resp(1, 2, {}),
        resp(1, 1, {"price": 11, "note": long.upper()}),
        text(1, "a"),
        CassetteMessage(1, "server", 0.5, "binary", data=bytes(range(63)) + b"!"),
        text(1, "extra"),
        close_code=1011,
        close_reason="crash",
        latencies=[Latency(0, 0, 0.0004)],
    )
    rec2 = outcome(2, resp(2, 1, {}))
    rep2 = outcome(
        2, handshake_error="refused: authentication failed", failure="refused", status=101
    )
    subs = [wsp(3, Subscribed("t", 1, 0))] + [wsp(3, Deliver("t", 1, n, b"x")) for n in range(3)]
    rec3 = outcome(3, *subs)
    return build_report([(rec1, rep1), (rec2, rep2), (rec3, rec3)], ignore=["payload.ts"])


def render(renderable: Any, color_system: str | None) -> str:
    console = Console(
        width=80,
        record=True,
        color_system=color_system,  # type: ignore[arg-type]
        force_terminal=color_system is not None,
    )
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("color_system", ["256", "truecolor", None])
def test_the_report_fits_80_columns(color_system: str | None) -> None:
    out = render(replay_report(sample()), color_system)
    widths = [cell_len(line) for line in out.splitlines()]
    assert max(widths) <= 80, out


def test_the_summary_shows_the_counts() -> None:
    out = render(summary_table(sample()), None)
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:] if line.strip()}
    # conn, msgs rec→rep, missing, extra, changed, reordered, close, p50, p99
    assert rows["1"] == ["1", "5→5", "1", "1", "2", "1", "1000→1011", "12.0ms→400µs", "250ms→400µs"]
    assert rows["2"] == ["2", "1→0", "·", "·", "·", "·", "hs", "failed", "–", "–"]
    assert rows["3"] == ["3", "4→4", "·", "·", "·", "·", "·", "–", "–"]
    assert rows["all"] == ["all", "10→9", "1", "1", "2", "1", "2"]


def test_each_difference_is_listed() -> None:
    out = render(differences_view(sample()), None)
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[:3] == [
        "connection 1: 6 differences",
        "  close: 1000 'bye' → 1011 'crash'",
        "  ~ changed #0 Response id=1 (t=0.010s): payload.data.note, payload.data.price",
    ]
    assert '  -      "price": 10' in lines and '  +      "price": 11' in lines
    assert "  ↕ reordered #0 Response id=1 (t=0.010s), now #1" in lines
    assert "  - missing #2 Response id=3 (t=0.030s)" in lines
    assert "  ~ changed #4 binary (t=0.500s): payload" in lines
    assert (
        "  -00000030 30 31 32 33 34 35 36 37  38 39 3a 3b 3c 3d 3e 3f |0123456789:;<=>?|" in lines
    )
    assert (
        "  +00000030 30 31 32 33 34 35 36 37  38 39 3a 3b 3c 3d 3e 21 |0123456789:;<=>!|" in lines
    )
    assert "  + extra #4 text (t=0.000s)" in lines
    assert lines[-3:] == [
        "",
        "connection 2: 1 difference",
        "  handshake failed: refused: authentication failed (refused)",
    ]
    assert "connection 3" not in out


def test_a_long_run_is_cut_per_connection() -> None:
    rec = outcome(1, *[resp(1, n, {"v": n}) for n in range(50)])
    rep = outcome(1, *[resp(1, n, {"v": -n}) for n in range(1, 50)])
    out = render(differences_view(build_report([(rec, rep)]), limit=5, diff_lines=4), None)
    assert out.count("~ changed") + out.count("- missing") == 5
    assert "… 45 more differences (--json FILE lists them all)" in out
    assert "… 7 more diff lines" in out


def test_the_verdict_and_no_differences() -> None:
    same = outcome(1, resp(1, 1, {}))
    clean = build_report([(same, same)])
    assert differences_view(clean) is None
    assert str(verdict(clean)) == "no difference beyond noise"
    out = render(replay_report(clean), None)
    assert out.rstrip().endswith("no difference beyond noise")
    assert str(verdict(sample())) == "the target refused the credentials"
    assert str(verdict(sample().to_json())) == "the target refused the credentials"
    down = outcome(1, handshake_error="timed out", failure="unreachable")
    assert str(verdict(build_report([(same, down)]))) == "the target could not be reached"
    changed = build_report([(same, outcome(1, resp(1, 1, {"a": 1})))])
    assert str(verdict(changed)) == "1 difference in 1 connection"


def test_format_seconds() -> None:
    assert [format_seconds(v) for v in (None, 0.00085, 0.0125, 0.34, 2.1)] == [
        "–",
        "850µs",
        "12.5ms",
        "340ms",
        "2.10s",
    ]
