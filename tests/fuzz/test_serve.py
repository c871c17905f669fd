"""``--serve`` mode: the fuzzing server against a ``websockets`` client harness.

The harness is the usual Autobahn fuzzingserver client loop (getCaseCount,
runCase for each case with an echoing client, updateReports).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl as ssl_module
import subprocess
import sys
from pathlib import Path

import jsonschema
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from wsproto_tools.fuzz.catalog import select_cases
from wsproto_tools.fuzz.model import Behavior, CaseResult, CloseVerdict
from wsproto_tools.fuzz.report import load_schema
from wsproto_tools.fuzz.runner import RunOptions
from wsproto_tools.fuzz.serve import FuzzServer, choose_deflate_answer

from .expected import CORE, INFORMATIONAL


async def _harness(
    base: str,
    agent: str,
    *,
    limit: int = 1000,
    update: bool = True,
    ssl: ssl_module.SSLContext | None = None,
) -> int:
    """Autobahn's client loop: count, run each case echoing, then /updateReports."""
    extra = {"ssl": ssl} if ssl is not None else {}
    async with connect(f"{base}/getCaseCount", **extra) as ws:
        count = int(await ws.recv())
    for index in range(1, min(count, limit) + 1):
        with contextlib.suppress(WebSocketException, OSError):
            async with asyncio.timeout(30):
                async with connect(
                    f"{base}/runCase?case={index}&agent={agent}", max_size=2**25, **extra
                ) as ws:
                    async for message in ws:
                        await ws.send(message)
    if update:
        async with connect(f"{base}/updateReports?agent={agent}", **extra):
            pass
    return count


async def test_serve_mode_gives_every_case_a_verdict() -> None:
    cases = select_cases(CORE + ",12.1.1,13.2.1,13.7.1")
    assert len(cases) == 247 + 3
    reported: dict[str, list[CaseResult]] = {}
    server = FuzzServer(
        cases,
        RunOptions(timeout=2.0, seed=3),
        on_update_reports=lambda agent, results: reported.setdefault(agent, results),
    )
    port = await server.start("127.0.0.1", 0)
    try:
        count = await _harness(f"ws://127.0.0.1:{port}", "websockets")
        await asyncio.wait_for(server.reports_updated.wait(), 5)
    finally:
        await server.close()
    assert count == len(cases)
    results = reported["websockets"]
    assert [r.case.id for r in results] == [c.id for c in cases]
    verdicts = {r.case.id: (r.behavior, r.close) for r in results}
    assert all(b in Behavior and c in CloseVerdict for b, c in verdicts.values())
    # The client side of websockets behaves like its server side.
    for case_id in ("1.1.1", "1.2.8", "2.10", "5.19", "6.5.5", "7.7.13", "10.1.1"):
        assert verdicts[case_id] == (Behavior.OK, CloseVerdict.OK), case_id
    for case_id in ("2.5", "3.1", "5.9", "6.12.1", "7.9.1"):
        assert verdicts[case_id][1] is CloseVerdict.OK, case_id
    assert {r.case.id for r in results if r.behavior is Behavior.INFORMATIONAL} == INFORMATIONAL
    compressed = [r for r in results if r.case.top in (12, 13)]
    assert all(r.behavior is Behavior.OK for r in compressed), [
        (r.case.id, r.observed) for r in compressed
    ]
    assert all("permessage-deflate" in (r.extensions or "") for r in compressed)
    # In serve mode wsp's own frames are unmasked and the client's masked.
    client_frames = [e for e in results[0].wire if e.get("dir") == "in" and "opcode" in e]
    assert client_frames


def test_deflate_answers_follow_the_offer() -> None:
    offer = "permessage-deflate; server_no_context_takeover; client_max_window_bits"
    assert choose_deflate_answer(offer, ("permessage-deflate; client_no_context_takeover",)) == (
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
    )
    # An answer that limits the client's window needs the client's consent.
    plain = "permessage-deflate"
    assert choose_deflate_answer(plain, ("permessage-deflate; client_max_window_bits=9",)) is None
    assert (
        choose_deflate_answer(
            plain, ("permessage-deflate; client_max_window_bits=9", "permessage-deflate")
        )
        == "permessage-deflate"
    )
    assert choose_deflate_answer(None, ("permessage-deflate",)) is None
    assert choose_deflate_answer("x-webkit-deflate-frame", ("permessage-deflate",)) is None


_MAIN = "from wsproto_tools.cli.main import main; main()"


def test_serve_cli_end_to_end(tmp_path: Path) -> None:
    report = tmp_path / "serve.json"
    process = subprocess.Popen(
        [
            sys.executable, "-c", _MAIN, "fuzz", "--suite", "rfc6455",
            "--serve", "--port", "0", "--cases", "1.1.*,2.1,7.7.1", "--exit-after-report",
            "--json-report", str(report), "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "serving 10 cases on ws://127.0.0.1:" in line, line
        port = int(line.split("ws://127.0.0.1:")[1].split()[0])
        asyncio.run(_harness(f"ws://127.0.0.1:{port}", "cli-agent"))
        out, _err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0
    data = json.loads(report.read_text())
    jsonschema.validate(data, load_schema())
    assert data["mode"] == "serve" and data["target"] == "cli-agent"
    assert [c["id"] for c in data["cases"]] == [f"1.1.{n}" for n in range(1, 9)] + ["2.1", "7.7.1"]
    assert json.loads(out)["summary"]["failed"] == 0
