"""The malicious server's attacks on a subscription: good Delivers, then a hole, a new
epoch, repeats or a ContinuityLost, judged by the scenario's checklist line.
"""

from __future__ import annotations

__all__ = [
    "Tail",
    "announced_gap",
    "backwards_gap",
    "delivering",
    "hole",
    "new_epoch",
    "repeats",
]

from collections.abc import Callable

from wsproto_tools.codec import ContinuityLost, Deliver, Payload
from wsproto_tools.fuzz.wsp.serve_case import Case, Player
from wsproto_tools.fuzz.wsp.serve_judging import expect_open, expect_scenario_close, stays_open

#: the Delivers that follow the good ones: (case, topic, epoch, last good offset)
Tail = Callable[[Case, str, int, int, list[Deliver]], list[Payload]]


def delivering(tail: Tail) -> Player:
    """Subscribed, a few good Delivers, then ``tail``'s; judged by the scenario."""

    async def play(case: Case) -> None:
        subscription = await case.wait_subscribe()
        if subscription is None:
            case.skip(f"the client did not subscribe within {case.timeout:g} s")
            await expect_open(case, 0, "a session without a subscription")
            await case.finish()
            return
        topic, epoch, first = subscription
        rng = case.rng
        count = rng.randrange(1, 6)
        good = [Deliver(topic, epoch, first + i, rng.randbytes(8)) for i in range(count)]
        await case.send_many([*good, *tail(case, topic, epoch, first + count - 1, good)])
        if case.scenario.close_code is None:
            await stays_open(case, allowed=frozenset(case.scenario.accept), step=0)
        else:
            await expect_scenario_close(case)

    return play


def hole(case: Case, topic: str, epoch: int, last: int, good: list[Deliver]) -> list[Payload]:
    return [Deliver(topic, epoch, last + 1 + case.rng.randrange(1, 50), b"hole")]


def new_epoch(case: Case, topic: str, epoch: int, last: int, good: list[Deliver]) -> list[Payload]:
    rng = case.rng
    return [Deliver(topic, epoch + rng.randrange(1, 100), rng.randrange(1, 4), b"epoch")]


def repeats(case: Case, topic: str, epoch: int, last: int, good: list[Deliver]) -> list[Payload]:
    repeated = case.rng.sample(good, case.rng.randrange(1, len(good) + 1))
    return [*repeated, Deliver(topic, epoch, last + 1, b"after the repeats")]


def announced_gap(
    case: Case, topic: str, epoch: int, last: int, good: list[Deliver]
) -> list[Payload]:
    available = last + 1 + case.rng.randrange(1, 50)
    return [
        ContinuityLost(topic, epoch, last + 1, available),
        Deliver(topic, epoch, available, b"after the gap"),
    ]


def backwards_gap(
    case: Case, topic: str, epoch: int, last: int, good: list[Deliver]
) -> list[Payload]:
    back = case.rng.choice(good)  # "lost" from an offset the subscriber already has
    return [
        ContinuityLost(topic, epoch, last + 1, back.offset),
        *[Deliver(topic, epoch, d.offset, d.data) for d in good if d.offset >= back.offset],
        Deliver(topic, epoch, last + 1, b"after the overlap"),
    ]
