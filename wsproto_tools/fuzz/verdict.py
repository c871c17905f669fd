"""Verdicts with Autobahn|Testsuite's meanings (pure functions, no I/O).

Behaviour: the events the peer produced are compared with the case's lists —
exactly the OK list earns OK, a NON-STRICT list NON-STRICT, an INFORMATIONAL
list INFORMATIONAL; anything else is FAILED.

Closing, checked in this order: the wrong side ended the connection → FAILED;
a clean close handshake was required and did not happen → UNCLEAN; the peer's
close code is not one of the allowed ones → WRONG CODE (a close frame without a
code is always accepted); otherwise OK.
"""

from __future__ import annotations

__all__ = ["Observation", "judge"]

from dataclasses import dataclass

from wsproto_tools.fuzz.model import Behavior, CloseVerdict, Event, Expect


@dataclass(frozen=True, slots=True)
class Observation:
    """What happened on one connection, as the verdicts need it."""

    events: tuple[Event, ...]
    closed_by_me: bool
    clean: bool
    remote_close_code: int | None
    unimplemented: bool = False


def judge(expect: Expect, seen: Observation) -> tuple[Behavior, str, CloseVerdict, str]:
    """(behaviour, why, close verdict, why) for one case."""
    events = tuple(seen.events)
    if seen.unimplemented:
        behavior, why = Behavior.UNIMPLEMENTED, "The peer did not negotiate the extension."
    elif events == expect.ok:
        behavior, why = Behavior.OK, "Actual events match the OK expectation."
    elif events in expect.non_strict:
        behavior, why = Behavior.NON_STRICT, "Actual events match a NON-STRICT expectation."
    elif events in expect.informational:
        behavior, why = Behavior.INFORMATIONAL, "Actual events match an INFORMATIONAL one."
    else:
        behavior, why = Behavior.FAILED, "Actual events differ from any expected."

    if seen.closed_by_me != expect.closed_by_me:
        close = CloseVerdict.FAILED
        close_why = (
            "The connection was ended by the peer, but this side should have closed it."
            if expect.closed_by_me
            else "The peer did not fail the connection; this side had to end it."
        )
    elif expect.require_clean and not seen.clean:
        close = CloseVerdict.UNCLEAN
        close_why = "The RFC requires a clean close handshake here."
    elif seen.remote_close_code is not None and seen.remote_close_code not in expect.close_codes:
        close = CloseVerdict.WRONG_CODE
        allowed = " or ".join(str(code) for code in expect.close_codes)
        close_why = f"The close code was {seen.remote_close_code}; it should be {allowed} or empty."
    else:
        close = CloseVerdict.OK
        close_why = "The connection was closed properly."

    if close is CloseVerdict.WRONG_CODE and expect.wrong_code_fails:
        behavior, why = Behavior.FAILED, close_why
    if expect.informational_only:
        behavior, close = Behavior.INFORMATIONAL, CloseVerdict.INFORMATIONAL
    return behavior, why, close, close_why
