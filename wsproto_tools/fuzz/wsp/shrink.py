"""Shrink a failing case to a minimal sequence of steps (delta debugging).

:func:`shrink` keeps the ``hello`` step and removes the others in chunks, then
one by one (Zeller's ddmin), keeping a smaller case whenever ``attempt`` says
it still fails the same way; at most ``budget`` attempts. The finding must be
seen again on the original case first (a finding that does not reproduce is
kept as it is).
"""

from __future__ import annotations

__all__ = ["shrink"]

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from wsproto_tools.fuzz.wsp.steps import Case, Step


async def shrink(
    case: Case,
    attempt: Callable[[Case], Awaitable[Any | None]],
    *,
    budget: int = 40,
) -> tuple[Case, Any | None]:
    """The smallest case found that still fails, and the result of its last failing
    run (``attempt`` returns a result, or None when the case passes)."""
    runs = 0

    async def fails(steps: list[Step]) -> Any | None:
        nonlocal runs
        runs += 1
        return await attempt(replace(case, steps=(case.steps[0], *steps)))

    body = list(case.steps[1:])
    last = await fails(body)
    if last is None:
        return case, None
    trace = last
    chunks = 2
    while body and runs < budget:
        size = max(1, len(body) // chunks)
        reduced = False
        for start in range(0, len(body), size):
            if runs >= budget:
                break
            candidate = body[:start] + body[start + size :]
            got = await fails(candidate)
            if got is not None:
                body, trace = candidate, got
                chunks = max(chunks - 1, 2)
                reduced = True
                break
        if not reduced:
            if size == 1:
                break
            chunks = min(chunks * 2, len(body))
    return replace(case, steps=(case.steps[0], *body)), trace
