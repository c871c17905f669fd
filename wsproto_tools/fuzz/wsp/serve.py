"""``wsp fuzz --serve --suite wsp``: a malicious wsp server that fuzzes wsp *clients*.

Every incoming connection is one case. Case ``i`` plays the scenario
:func:`scenario_for` picks from the seed (a seeded permutation of
:data:`SCENARIOS` per block of ``len(SCENARIOS)`` cases, so a run of that many
cases plays each one once); its parameters (nonce sizes, offsets, flood sizes…)
come from ``random.Random(f"{seed}:{i}")``. The same seed always gives the same
sequence of scenarios and parameters.

A scenario breaks one line of the conformance checklist (docs/protocol.md, S.9)
from the server's side — a garbage Challenge, a forged ``server_proof``, a
Deliver with a hole… — and judges the client's reaction against what the line
demands: a close with the rule's code (a wsp Close, if any, with the same code,
then the WebSocket close), or, for the lines answered by no close, that the
client stays open and answers a Heartbeat probe within ``timeout``. What does
not match becomes a :class:`~wsproto_tools.fuzz.wsp.findings.Finding` (case =
connection index, step = the scenario's step, rule = the checklist line).

Between the attacks the server is an ordinary, honest one: it acknowledges
sequenced messages, answers probes, Subscribes (Subscribed), Requests (echo) and
Close (rule 42). A case whose client stays open ends with a WebSocket close 1001
(going away, resumable), so a reconnecting client comes back with its resume
token for the next case; a resume is answered with a new session (rule 19: an
unknown token is not an error), except in the ``forged-resume`` scenario.

A case is *skipped* (judged by nothing) when the client does not do what its
scenario needs: a Subscribe for the Deliver scenarios, a resume token of this
server's for ``forged-resume``, hmac authentication, or when it ends its own
session (Close 1000 or 1001) before the attack. What reaches the client's
application (each offset once, rule 38) cannot be seen from here: a harness
that reads the application's output checks it (tests/fuzz/test_wsp_serve.py).

The parts: :mod:`.serve_scenarios` (the table), :mod:`.serve_link` (the wire),
:mod:`.serve_case` (the honest server), :mod:`.serve_judging` (the verdicts),
:mod:`.serve_attacks_handshake`, :mod:`.serve_attacks_session`,
:mod:`.serve_attacks_topics` (the attacks) and :mod:`.serve_players` (how each
scenario is played); this module listens and runs one case per connection.
"""

from __future__ import annotations

__all__ = [
    "SCENARIOS",
    "Phase",
    "Scenario",
    "ServeCaseResult",
    "plan",
    "scenario_for",
    "serve_wsp",
]

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wsproto_tools.codec import Limits
from wsproto_tools.engine.rules import Rule
from wsproto_tools.fuzz.wsp.findings import Finding, Oracle
from wsproto_tools.fuzz.wsp.serve_case import Case
from wsproto_tools.fuzz.wsp.serve_link import Link, accept
from wsproto_tools.fuzz.wsp.serve_players import PLAYERS as _PLAYERS
from wsproto_tools.fuzz.wsp.serve_scenarios import (
    SCENARIOS,
    Phase,
    Scenario,
    plan,
    scenario_for,
    scenario_pool,
)


@dataclass
class ServeCaseResult:
    """What one connection (one case) showed."""

    index: int
    scenario: str
    findings: list[Finding]
    duration: float
    observed: str
    rule: int | None = None
    expected: str = ""
    peer: str = ""
    subprotocol: str = ""
    skipped: bool = False  # the client did not do what the scenario needs
    close_code: int | None = None  # the client's WebSocket close code (None: none seen)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "scenario": self.scenario,
            "rule": self.rule,
            "expected": self.expected,
            "observed": self.observed,
            "duration": round(self.duration, 4),
            "peer": self.peer,
            "subprotocol": self.subprotocol,
            "skipped": self.skipped,
            "close_code": self.close_code,
            "findings": [f.to_json() for f in self.findings],
        }


async def _play(case: Case) -> None:
    await _PLAYERS[case.scenario.name](case)


def _summary(case: Case) -> str:
    closed = case.link.closed
    parts = list(case.notes)
    if case.wsp_closes:
        parts.append("wsp Close " + ", ".join(str(c) for c in case.wsp_closes))
    if closed is None:
        parts.append("left open by the server" if case.link.sent_close else "still open")
    elif closed.dropped:
        parts.append("dropped without close")
    else:
        parts.append(f"close {closed.code}" + (f" ({closed.reason})" if closed.reason else ""))
    if case.link.bad:
        parts.append("; ".join(what for _, what in case.link.bad[:3]))
    return "; ".join(parts)


async def _run_case(
    index: int,
    seed: int,
    names: Sequence[str] | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    secret: bytes,
    timeout: float,
) -> ServeCaseResult:
    scenario = scenario_for(seed, index, names)
    started = time.monotonic()
    name = writer.get_extra_info("peername")
    peer = f"{name[0]}:{name[1]}" if name else ""
    result = ServeCaseResult(
        index, scenario.name, [], 0.0, "", scenario.rule, scenario.expect, peer
    )
    conn, chosen = await accept(reader, writer, timeout)
    if conn is None:
        if chosen.startswith("no wsp subprotocol"):
            result.findings.append(
                Finding(
                    Oracle.UNDOCUMENTED,
                    index,
                    -1,
                    "the WebSocket upgrade",
                    "Sec-WebSocket-Protocol offering wsp.v2 and/or wsp.v1",
                    chosen,
                    int(Rule.SUBPROTOCOL),
                )
            )
        result.observed = chosen
        result.skipped = not result.findings
        writer.close()
        result.duration = time.monotonic() - started
        return result
    version = 2 if chosen == "wsp.v2" else 1
    link = Link(conn, version, Limits())
    case = Case(index, scenario, link, random.Random(f"{seed}:{index}"), secret, timeout)
    try:
        async with asyncio.timeout(timeout * 8 + 5):
            await _play(case)
            if link.closed is None and link.sent_close:  # the client's close frame
                await case.pump(lambda: False, min(timeout, 1.0))
    except TimeoutError:
        case.finding(
            Oracle.LIVENESS,
            -2,
            scenario.description,
            "a case bounded in time",
            "the case ran past its bound",
        )
    finally:
        await conn.wait_closed(0.5)
    reported: set[int | None] = set()
    for rule, what in link.bad:  # the client's own bytes must be wsp too
        if rule not in reported:
            reported.add(rule)
            message = f"the client sent {what}"
            case.findings.append(
                Finding(Oracle.UNDOCUMENTED, index, -2, message, "binary wsp messages", what, rule)
            )
    result.findings = case.findings
    result.skipped = case.skipped
    result.subprotocol = chosen
    result.observed = _summary(case)
    result.close_code = None if link.closed is None else link.closed.code
    result.duration = time.monotonic() - started
    return result


# ================================================================ the server
async def serve_wsp(
    host: str,
    port: int,
    *,
    secret: bytes,
    seed: int = 1,
    cases: int | None = None,
    duration: float | None = None,
    on_listening: Callable[[str], None] | None = None,
    on_result: Callable[[ServeCaseResult], None] | None = None,
    timeout: float = 3.0,
    scenarios: Sequence[str] | None = None,
) -> list[ServeCaseResult]:
    """Serve one scenario per incoming connection until ``cases`` connections were
    judged or ``duration`` seconds passed (whichever first; neither: until
    cancelled); the results in case order.

    ``on_listening`` gets the URL (``ws://host:port/``) once the socket listens;
    ``on_result`` each case's result as it is judged. ``timeout`` bounds every
    wait for the client; a case takes at most ``8 * timeout + 5`` seconds, and the
    cases in flight when ``duration`` ends are finished (a cancellation ends them
    at once, unjudged). Connections beyond ``cases`` are closed unanswered.
    ``scenarios`` restricts the pool to these names (default: all of
    :data:`SCENARIOS`).
    """
    scenario_pool(scenarios)  # unknown names fail here, before listening
    results: list[ServeCaseResult] = []
    done = asyncio.Event()
    handlers: set[asyncio.Task[Any]] = set()
    counter = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = counter[0]
        if done.is_set() or (cases is not None and index >= cases):
            writer.close()
            return
        counter[0] += 1
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        try:
            result = await _run_case(index, seed, scenarios, reader, writer, secret, timeout)
        finally:
            if task is not None:
                handlers.discard(task)
            writer.close()
        results.append(result)
        if on_result is not None:
            on_result(result)
        if cases is not None and len(results) >= cases:
            done.set()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()
    shown = bound[0] if host in ("", "0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"ws://{shown}:{bound[1]}/"
    if on_listening is not None:
        on_listening(url)
    cancelled = False
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await done.wait()
    except asyncio.CancelledError:  # stopped (Ctrl-C): the cases in flight end now
        cancelled = True
        raise
    finally:
        done.set()
        server.close()
        late = set(handlers)
        if late and not cancelled:  # cases in flight are bounded: let them finish
            _, late = await asyncio.wait(late, timeout=timeout * 8 + 6)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await server.wait_closed()
    return sorted(results, key=lambda r: r.index)
