"""The verdicts of the malicious server: whether the client closed with the code a
scenario's rule demands, or stayed open and answered a Heartbeat probe.
"""

from __future__ import annotations

__all__ = [
    "expect_close",
    "expect_open",
    "expect_scenario_close",
    "security_after_response",
    "stays_open",
]

from wsproto_tools.engine.rules import Rule
from wsproto_tools.exceptions import CloseCode
from wsproto_tools.fuzz.wsp.findings import Oracle
from wsproto_tools.fuzz.wsp.serve_case import Case
from wsproto_tools.ws import is_valid_close_code

_C = CloseCode


async def expect_close(case: Case, step: int, what: str, code: int) -> None:
    """The client must close with ``code`` (rule of the scenario)."""
    if _ended_itself(case):
        case.skip("the client ended the session itself before the attack")
        return
    await case.pump(lambda: False)
    closed = case.link.closed
    expected = f"close {code}"
    if closed is None:
        case.finding(
            Oracle.CLOSE_CODE, step, what, expected, f"still open after {case.timeout:g} s"
        )
        return
    if closed.dropped:
        case.finding(Oracle.CLOSE_CODE, step, what, expected, "dropped without close")
        return
    got = closed.code
    for wsp in case.wsp_closes:
        if wsp != got:
            case.finding(
                Oracle.UNDOCUMENTED,
                step,
                what,
                "a wsp Close with the WebSocket close's code",
                f"wsp Close {wsp}, then close {got}",
                int(Rule.CLOSE_ANSWER),
            )
    if got != code and got not in case.scenario.accept:
        oracle = Oracle.CLOSE_CODE if _documented(got) else Oracle.UNDOCUMENTED
        case.finding(
            oracle,
            step,
            what,
            expected,
            f"close {got}" + (f" ({closed.reason})" if closed.reason else ""),
        )


async def expect_open(
    case: Case, step: int, what: str, allowed: frozenset[int] = frozenset()
) -> bool:
    """The client must stay open and answer a Heartbeat probe in time."""
    if case.link.closed is None and not case.wsp_closes:
        pid = await case.probe()
        await case.pump(lambda: pid in case.replies or bool(case.wsp_closes))
        if pid in case.replies:
            return True
    if _ended_itself(case):  # a client may end its session whenever it likes
        case.skip("the client ended the session itself")
        return False
    closed = case.link.closed
    if closed is None:
        case.finding(
            Oracle.LIVENESS,
            step,
            what,
            f"a Heartbeat reply within {case.timeout:g} s",
            "no reply",
        )
        return False
    if closed.dropped:
        observed = "dropped without close"
    else:
        observed = f"close {closed.code}" + (f" ({closed.reason})" if closed.reason else "")
        if closed.code in allowed:
            case.notes.append(f"closed with the documented {closed.code}")
            return False
    case.finding(Oracle.UNDOCUMENTED, step, what, "stays open", observed)
    return False


def _ended_itself(case: Case) -> bool:
    """Whether the client closed in order (1000 or 1001) on its own."""
    if case.wsp_closes:
        return case.wsp_closes[0] in (_C.NORMAL, _C.GOING_AWAY)
    closed = case.link.closed
    return closed is not None and closed.code in (_C.NORMAL, _C.GOING_AWAY)


def security_after_response(case: Case, step: int, what: str, before: int) -> None:
    """The client must not go on with a server that did not authenticate."""
    went_on = [n for n in case.seen[before:] if n not in ("Close",)]
    if went_on:
        case.finding(
            Oracle.SECURITY, step, what, "nothing but a Close", f"sent {', '.join(went_on[:5])}"
        )


async def expect_scenario_close(case: Case) -> None:
    code = case.scenario.close_code
    assert code is not None, case.scenario
    await expect_close(case, 0, case.scenario.description, code)


async def stays_open(
    case: Case, what: str = "", allowed: frozenset[int] = frozenset(), step: int = 1
) -> None:
    """The client must stay open (or close with one of ``allowed``); then the case ends."""
    if await expect_open(case, step, what or case.scenario.description, allowed):
        await case.finish()


def _documented(code: int | None) -> bool:
    return (
        code is not None
        and code in {int(c) for c in CloseCode}
        and code not in (_C.NO_STATUS, _C.ABNORMAL, _C.INTERNAL_ERROR)
        and is_valid_close_code(code)
    )
