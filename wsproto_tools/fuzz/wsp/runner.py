"""Run one case of the wsp suite against a server and judge it.

The runner executes the steps in order on a :class:`~.session.Peer` and applies
the per-case oracles of docs/fuzz.md:

* **close-code** — an invalid step is answered with a close code its
  :class:`~.model.Outcome` allows (from the rule book), within the timeout;
  a valid step is never answered with a close;
* **processing** — before a mutation that ends the session, and at the end,
  every valid step was answered (Responses, Subscribed, echoes, Heartbeat
  replies, Acknowledges up to the last sequence sent);
* **undocumented** — nothing the spec does not allow: undecodable messages,
  a wsp Close whose code differs from the WebSocket close, 1011, a drop
  without a close frame;
* **security** — no Subscribed or Deliver of a topic the credential forbids,
  no session resumed with a forged, expired or another identity's token, the
  server's HMAC proof right, nothing accepted with a wrong proof or key;
* **delivery** — what the case published to a topic it subscribed arrives
  exactly once and in order.

The result also names the abstract *states* the session went through (the
answers seen, AFLNet-style), which guide the corpus.
"""

from __future__ import annotations

__all__ = ["CaseResult", "Target", "run_case"]

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec import Close, Request
from wsproto_tools.exceptions import WspError
from wsproto_tools.fuzz.wsp import handshake
from wsproto_tools.fuzz.wsp.actions import ACTIONS, Context
from wsproto_tools.fuzz.wsp.findings import Finding, Oracle
from wsproto_tools.fuzz.wsp.model import Outcome
from wsproto_tools.fuzz.wsp.session import RESUMABLE, Credentials, Peer
from wsproto_tools.fuzz.wsp.steps import Case


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server under test listens."""

    host: str
    port: int
    path: str = "/"
    ssl: Any = None  # an ssl.SSLContext for wss://


@dataclass
class CaseResult:
    """What running a case found."""

    case: Case
    findings: list[Finding] = field(default_factory=list)
    steps_run: int = 0
    messages: int = 0  # wsp messages the fuzzer sent
    states: list[str] = field(default_factory=list)
    close_code: int | None = None
    duration: float = 0.0
    unreachable: str | None = None  # the target could not be reached at all
    trace: list[Any] = field(default_factory=list)  # Peer.trace of the case
    connections: list[Any] = field(default_factory=list)  # Peer.connections

    @property
    def transitions(self) -> list[tuple[str, str, str]]:
        """(state, action, next state) for each step."""
        out = []
        actions = [s.action for s in self.case.steps]
        for i in range(1, len(self.states)):
            action = actions[i - 1] if i - 1 < len(actions) else "end"
            out.append((self.states[i - 1], action, self.states[i]))
        return out


class _Judge:
    def __init__(self, case: Case, result: CaseResult) -> None:
        self.case = case
        self.result = result

    def add(
        self, oracle: Oracle, step: int, expected: str, observed: str, rule: int | None = None
    ) -> None:
        message = self.case.steps[step].describe() if 0 <= step < len(self.case.steps) else "end"
        self.result.findings.append(
            Finding(oracle, self.case.index, step, message, expected, observed, rule)
        )


def _state(peer: Peer) -> str:
    if peer.closed is not None:
        return f"closed:{peer.closed.code}"
    if not peer.answered:
        return "challenged" if peer.server_nonce else "connected"
    parts = ["resumed" if peer.resumed else "active"]
    if peer.send_cipher is not None:
        parts.append("sealed")
    if any(t.confirmed for t in peer.topics.values()):
        parts.append("subscribed")
    if peer.errors:
        parts.append(f"error:{peer.errors[-1].code}")
    return "+".join(parts)


async def run_case(
    target: Target,
    creds: Credentials,
    case: Case,
    *,
    timeout: float = 2.0,
    tag: str = "fuzz",
    slot: int | None = None,
    forbidden: str = "",
) -> CaseResult:
    """Run ``case`` on a new connection to ``target`` and judge it."""
    result = CaseResult(case)
    judge = _Judge(case, result)
    started = time.perf_counter()
    peer = Peer(target.host, target.port, target.path, timeout=timeout, ssl=target.ssl)
    ctx = Context(
        target.host,
        target.port,
        target.path,
        creds,
        tag,
        case.index if slot is None else slot,
        timeout,
        peer,
        forbidden=forbidden,
    )
    ctx.settle = lambda: _settle(ctx, judge, result.steps_run)
    try:
        await _run(ctx, case, judge, result)
    except (WspError, OSError) as error:
        if result.steps_run == 0:
            result.unreachable = str(error)
        else:
            judge.add(
                Oracle.CRASH,
                max(result.steps_run - 1, 0),
                "the target keeps serving",
                f"connection failed: {error}",
            )
    finally:
        with contextlib.suppress(Exception):
            await ctx.peer.close()
    result.close_code = ctx.peer.closed.code if ctx.peer.closed else None
    result.messages = ctx.sent_before + ctx.peer.sent_messages
    result.trace = ctx.peer.trace
    result.connections = ctx.peer.connections
    result.duration = time.perf_counter() - started
    return result


async def _run(ctx: Context, case: Case, judge: _Judge, result: CaseResult) -> None:
    hello_step = case.steps[0]
    outcome = await handshake.hello(ctx, hello_step.args)
    peer = ctx.peer
    result.steps_run = 1
    if not peer.server_nonce:
        if peer.closed is None:
            judge.add(
                Oracle.UNDOCUMENTED, 0, "a Challenge first (S.2)", f"nothing within {ctx.timeout} s"
            )
        else:
            judge.add(
                Oracle.UNDOCUMENTED,
                0,
                "a Challenge first (S.2)",
                f"closed with {peer.closed.code} before any Challenge",
            )
        result.states.append(_state(peer))
        return
    result.states.append("challenged")
    if not outcome.may_continue:
        await _judge_close(ctx, judge, 0, outcome)
        security = "a HandshakeResponse to a handshake the spec refuses" if peer.answered else None
        if security and outcome.rule in (9, 12, 13):
            judge.add(Oracle.SECURITY, 0, outcome.describe(), security, outcome.rule)
        result.states.append(_state(peer))
        _collect(ctx, judge, len(case.steps) - 1)
        return
    if not await peer.wait_for(lambda: peer.answered):
        observed = (
            f"closed with {peer.closed.code} ({peer.closed.reason})"
            if peer.closed
            else f"no HandshakeResponse within {ctx.timeout} s"
        )
        if outcome.closes and peer.closed and peer.closed.code in outcome.closes:
            result.states.append(_state(peer))
            return
        judge.add(Oracle.PROCESSING, 0, "a HandshakeResponse", observed)
        result.states.append(_state(peer))
        return
    for problem in handshake.check_response(ctx):
        judge.add(
            Oracle.SECURITY, 0, "the server proves the secret, grants what was offered", problem, 14
        )
    if ctx.auth == "hmac" and "encrypt" in peer.granted and ctx.creds.secret:
        peer.start_encryption(ctx.creds.secret)
    result.states.append(_state(peer))
    for index in range(1, len(case.steps)):
        step = case.steps[index]
        action = ACTIONS[step.action]
        if ctx.peer.closed is not None:
            break
        if action.terminal:
            await _settle(ctx, judge, index)
            if ctx.peer.closed is not None:
                break
        outcome = await action.run(ctx, step.args)
        result.steps_run = index + 1
        peer = ctx.peer
        if not outcome.may_continue:
            await _judge_close(ctx, judge, index, outcome)
            result.states.append(_state(peer))
            _collect(ctx, judge, index)
            return
        if outcome.closes:
            ctx.may_close = ctx.may_close | outcome.closes
            ctx.may_close_step = index
        if outcome.answer:
            ctx.answers_due = [*ctx.answers_due, (index, outcome.answer)]
        if peer.closed is not None:
            _judge_unexpected(ctx, judge, index)
        result.states.append(_state(peer))
        _collect(ctx, judge, index)
        for note in peer.notes:
            judge.add(Oracle.PROCESSING, index, "the session resumed with its token", note, 19)
        peer.notes.clear()
    last = len(case.steps) - 1
    if ctx.peer.closed is None:
        await _settle(ctx, judge, last)
    if ctx.peer.closed is None:
        await _deliveries(ctx, judge, last)
    if ctx.peer.closed is None:
        await _goodbye(ctx, judge, last)
    elif ctx.judged_close is False:
        _judge_unexpected(ctx, judge, last)
    result.states.append(_state(ctx.peer))
    _collect(ctx, judge, last)


def _collect(ctx: Context, judge: _Judge, step: int) -> None:
    peer = ctx.peer
    for problem in peer.problems:
        judge.add(Oracle.UNDOCUMENTED, step, "only what the spec allows", problem)
    for problem in peer.security:
        judge.add(Oracle.SECURITY, step, "nothing the credential does not allow", problem)
    for problem in peer.delivery:
        judge.add(Oracle.DELIVERY, step, "each published message once, in order", problem)
    peer.problems, peer.security, peer.delivery = [], [], []


def _judge_unexpected(ctx: Context, judge: _Judge, step: int) -> None:
    """The target closed during valid traffic: fine only with a code a recent
    step allowed (a flood's 4004, a slow reader's 4005…)."""
    peer = ctx.peer
    assert peer.closed is not None
    ctx.judged_close = True
    allowed: frozenset[int] = ctx.may_close
    if peer.closed.code in allowed:
        return
    at = ctx.may_close_step if allowed else step
    judge.add(
        Oracle.CLOSE_CODE,
        at,
        "the session goes on"
        + (f" (or closes with {'/'.join(map(str, sorted(allowed)))})" if allowed else ""),
        f"closed with {peer.closed.code} ({peer.closed.reason})",
    )


async def _judge_close(ctx: Context, judge: _Judge, step: int, outcome: Outcome) -> None:
    peer = ctx.peer
    ctx.judged_close = True
    await peer.wait_for(lambda: peer.closed is not None, ctx.timeout)
    closed = peer.closed
    if closed is None:
        judge.add(
            Oracle.CLOSE_CODE,
            step,
            outcome.describe(),
            f"still open after {ctx.timeout} s",
            outcome.rule,
        )
        return
    if closed.code not in outcome.closes:
        judge.add(
            Oracle.CLOSE_CODE,
            step,
            outcome.describe(),
            f"closed with {closed.code} ({closed.reason})",
            outcome.rule,
        )
        return
    if closed.wsp_close is not None and closed.wsp_close != closed.code:
        judge.add(
            Oracle.UNDOCUMENTED,
            step,
            f"a wsp Close with the same code as the WebSocket close ({closed.code})",
            f"wsp Close {closed.wsp_close}",
            42,
        )
    if closed.code not in RESUMABLE and closed.wsp_close is None and closed.code != 1006:
        judge.add(
            Oracle.UNDOCUMENTED,
            step,
            f"a wsp Close before the WebSocket close {closed.code} (S.7: the session is closed)",
            "no wsp Close",
        )


def _missing(ctx: Context) -> list[str]:
    peer = ctx.peer
    out: list[str] = []
    waiting = [rid for rid in peer.requests if rid not in peer.answers]
    if waiting:
        out.append(f"no Response to request(s) {waiting[:5]}")
    if peer.subscribing:
        out.append(f"no Subscribed for {sorted(peer.subscribing)[:3]}")
    if peer.probes:
        out.append(f"no reply to Heartbeat probe(s) {sorted(peer.probes)[:5]}")
    if len(peer.echoes) < len(peer.expect_echo):
        out.append(f"{len(peer.expect_echo) - len(peer.echoes)} data message(s) not echoed")
    target = peer.sent_seq - (1 if peer.maybe_refused == peer.sent_seq else 0)
    if peer.acked < target:
        out.append(f"acknowledged up to {peer.acked} of {target} sequenced messages")
    for index, answer in ctx.answers_due:
        code = int(answer.split(":")[1])
        if not any(e.code == code for e in peer.errors):
            out.append(f"no Error {code} for step {index}")
    return out


async def _settle(ctx: Context, judge: _Judge, step: int) -> None:
    """Wait until every valid step so far was answered; judge what is missing."""
    peer = ctx.peer
    if peer.closed is not None or not peer.answered:
        return
    # a Request answered after everything before it: the target read it all
    rid = ctx.next_request()
    peer.requests[rid] = b"sync"
    with contextlib.suppress(WspError, OSError):
        await peer.send_wire(peer.encode(Request(rid, "echo", b"sync")))
    await peer.wait_for(lambda: not _missing(ctx))
    if peer.closed is not None:
        _judge_unexpected(ctx, judge, step)
        return
    missing = _missing(ctx)
    if missing:
        judge.add(Oracle.PROCESSING, step, "every valid step answered", "; ".join(missing))
    for rid, want in list(peer.requests.items()):
        answer = peer.answers.get(rid)
        if answer is None:
            continue
        if want == b"\x00status:1003":
            if answer.status != 1003:
                judge.add(
                    Oracle.UNDOCUMENTED,
                    step,
                    "status 1003 for an unknown method (rule 43)",
                    f"status {answer.status}",
                    43,
                )
        elif answer.status != 0 or bytes(answer.data) != want:
            judge.add(
                Oracle.UNDOCUMENTED,
                step,
                f"echo of {want[:16]!r} (rule 43)",
                f"status {answer.status}, data {bytes(answer.data)[:16]!r}",
                43,
            )
        del peer.requests[rid]
    if peer.echoes and peer.expect_echo:
        n = min(len(peer.echoes), len(peer.expect_echo))
        if peer.echoes[:n] != peer.expect_echo[:n]:
            judge.add(
                Oracle.DELIVERY,
                step,
                "data messages echoed in order",
                "echoes differ from what was sent",
            )
        del peer.echoes[:n], peer.expect_echo[:n]
    ctx.answers_due = []
    ctx.may_close = frozenset()


async def _deliveries(ctx: Context, judge: _Judge, step: int) -> None:
    peer = ctx.peer
    await peer.wait_for(lambda: all(not t.expected for t in peer.topics.values()))
    for track in peer.topics.values():
        if track.expected and not track.lost:
            judge.add(
                Oracle.DELIVERY,
                step,
                f"every publish to {track.topic!r} delivered",
                f"{len(track.expected)} not delivered",
            )


async def _goodbye(ctx: Context, judge: _Judge, step: int) -> None:
    """A wsp Close 1000: the target answers with a Close 1000 (rule 42)."""
    peer = ctx.peer
    with contextlib.suppress(Exception):
        await peer.send_wire(peer.encode(Close(1000, "done")))
    await peer.wait_for(lambda: peer.closed is not None, ctx.timeout)
    closed = peer.closed
    if closed is None:
        judge.add(
            Oracle.CLOSE_CODE,
            step,
            "a Close 1000 answered (rule 42)",
            f"still open after {ctx.timeout} s",
            42,
        )
    elif closed.code != 1000 or closed.wsp_close not in (1000, None):
        judge.add(
            Oracle.CLOSE_CODE,
            step,
            "a Close 1000 answered (rule 42)",
            f"closed with {closed.code}, wsp Close {closed.wsp_close}",
            42,
        )
