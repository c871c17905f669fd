"""The suite against real echo servers on 127.0.0.1: websockets and flawed ones."""

from __future__ import annotations

import time

import pytest

from wsproto_tools.fuzz.catalog import select_cases
from wsproto_tools.fuzz.model import Behavior, CaseResult, CloseVerdict
from wsproto_tools.fuzz.runner import RunOptions, run_against_server

from .expected import (
    CORE,
    FLAW_BREAKS,
    HAND_ROLLED_NON_STRICT,
    INFORMATIONAL,
    WEBSOCKETS_FAILED,
    WEBSOCKETS_MAYBE_NON_STRICT,
    WEBSOCKETS_NON_STRICT,
)
from .servers import Flaw, HandRolledEcho, websockets_echo


async def _run(
    port: int, patterns: str, *, timeout: float = 2.0, jobs: int = 16
) -> dict[str, CaseResult]:
    cases = select_cases(patterns)
    results = await run_against_server(
        cases, "127.0.0.1", port, "/", RunOptions(timeout=timeout, jobs=jobs, seed=7)
    )
    assert [r.case.id for r in results] == [c.id for c in cases]
    return {r.case.id: r for r in results}


def _failed(results: dict[str, CaseResult]) -> set[str]:
    return {case_id for case_id, r in results.items() if r.failed}


def _by_verdict(results: dict[str, CaseResult], verdict: Behavior) -> set[str]:
    return {case_id for case_id, r in results.items() if r.behavior is verdict}


async def test_all_247_core_cases_against_websockets() -> None:
    async with websockets_echo() as port:
        began = time.monotonic()
        results = await _run(port, CORE)
        elapsed = time.monotonic() - began
    assert len(results) == 247
    assert all(r.behavior in Behavior and r.close in CloseVerdict for r in results.values())
    assert _failed(results) == WEBSOCKETS_FAILED
    failed = results["7.1.5"]
    assert failed.close is CloseVerdict.WRONG_CODE and failed.remote_close_code == 1002
    non_strict = _by_verdict(results, Behavior.NON_STRICT)
    assert (
        WEBSOCKETS_NON_STRICT <= non_strict <= WEBSOCKETS_NON_STRICT | WEBSOCKETS_MAYBE_NON_STRICT
    )
    assert _by_verdict(results, Behavior.INFORMATIONAL) == INFORMATIONAL
    ok = set(results) - WEBSOCKETS_FAILED - non_strict - INFORMATIONAL
    for case_id in ok:
        assert results[case_id].behavior is Behavior.OK, case_id
        assert results[case_id].close is CloseVerdict.OK, case_id
    assert elapsed < 60


async def test_the_strict_hand_rolled_server_passes() -> None:
    async with HandRolledEcho() as port:
        results = await _run(port, CORE)
    assert _failed(results) == set()
    assert _by_verdict(results, Behavior.NON_STRICT) == HAND_ROLLED_NON_STRICT
    assert _by_verdict(results, Behavior.INFORMATIONAL) == INFORMATIONAL
    # 7.9.x: it answered the invalid close codes with 1002, as required.
    assert {results[f"7.9.{n}"].remote_close_code for n in range(1, 10)} == {1002}


async def test_pings_from_the_peer_are_answered_not_judged() -> None:
    async with HandRolledEcho(ping_first=True) as port:
        results = await _run(port, "1.1.*,2.*,5.19,7.1.1,7.9.1")
    assert _failed(results) == set()
    first = results["2.9"]
    assert first.behavior is Behavior.OK
    assert {"dir": "in", "opcode": 9} in [
        {k: e.get(k) for k in ("dir", "opcode")} for e in first.wire
    ]
    assert any(e.get("dir") == "out" and e.get("opcode") == 10 for e in first.wire)


@pytest.mark.parametrize(
    "flaw", [flaw for flaw in Flaw if flaw is not Flaw.NONE], ids=lambda flaw: flaw.value
)
async def test_each_flaw_is_flagged_exactly_where_it_breaks(flaw: Flaw) -> None:
    async with HandRolledEcho(flaw) as port:
        results = await _run(port, CORE, timeout=1.0, jobs=24)
    assert _failed(results) == FLAW_BREAKS[flaw.value]


async def test_a_hanging_server_costs_one_timeout_per_case() -> None:
    async with HandRolledEcho(Flaw.HANGS_ON_FRAGMENTED_CONTROL) as port:
        began = time.monotonic()
        results = await _run(port, "5.1", timeout=0.5, jobs=1)
        elapsed = time.monotonic() - began
    result = results["5.1"]
    assert result.behavior is Behavior.OK  # nothing came back, as expected...
    assert result.close is CloseVerdict.FAILED  # ...but the server never failed the connection
    assert result.closed_by_me is True
    assert elapsed < 3.0


async def test_refused_connection_is_a_failed_case_with_a_reason() -> None:
    async with websockets_echo() as port:
        pass  # the port is free again
    results = await _run(port, "1.1.1", timeout=1.0)
    result = results["1.1.1"]
    assert result.behavior is Behavior.FAILED and result.close is CloseVerdict.FAILED
    assert result.observed[0].kind == "no-connection"


async def test_compression_cases_against_websockets() -> None:
    async with websockets_echo() as port:
        results = await _run(
            port, "12.1.1,12.2.11,12.4.3,13.1.2,13.2.1,13.3.4,13.5.1,13.6.1,13.7.1", timeout=20
        )
    for case_id, result in results.items():
        assert (result.behavior, result.close) == (Behavior.OK, CloseVerdict.OK), (
            case_id,
            result.observed,
        )
        assert result.extensions is not None and "permessage-deflate" in result.extensions
    assert "server_no_context_takeover" in (results["13.2.1"].extensions or "")


async def test_compression_is_unimplemented_without_the_extension() -> None:
    async with websockets_echo(compression=None) as port:
        results = await _run(port, "12.1.1,13.7.18", timeout=5)
    for result in results.values():
        assert result.behavior is Behavior.UNIMPLEMENTED
        assert result.close is CloseVerdict.OK
        assert not result.failed
