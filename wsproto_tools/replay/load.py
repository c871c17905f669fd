"""A load test made of real traffic: ``wsp replay INPUT URL --connections N --loop --rate R``.

:func:`run_load` plays ``copies`` copies of every chosen connection at once, each
its own WebSocket connection, its own wsp session and its own rewriting (request
and publish ids, topic offsets: :class:`~wsproto_tools.replay.rewrite.Rewriter`),
with the timing of :class:`~wsproto_tools.replay.player.PlayOptions`. ``loop``
plays each copy's script again and again until ``duration`` seconds have
passed (a round that has started is finished); ``rate`` paces the steps of all
copies together to R messages a second (a token bucket). Nothing received is
kept, only counted: the :class:`LoadResult` gives messages sent and received,
throughput, the latency percentiles of step -> first answer (the latency of
:func:`~wsproto_tools.replay.outcome.recorded_outcome`) and the failures by kind.
"""

from __future__ import annotations

__all__ = ["LoadResult", "percentile", "run_load"]

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.exceptions import ConfigError
from wsproto_tools.replay.cassette import Cassette
from wsproto_tools.replay.player import ConnPlayer, PlayOptions, RateLimiter, players_of
from wsproto_tools.transports.wsio import clock

#: Rounds a looping copy plays at most (``duration`` is what ends a loop).
MAX_ROUNDS = 1 << 31


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass(slots=True)
class LoadResult:
    """What a load test did. ``connections`` is copies x chosen connections;
    ``failures`` counts the connections whose handshake failed, by kind
    (``unreachable``, ``refused``, ``failed``); ``latencies`` (seconds, sorted) are
    every step's time to its first answer; ``timeouts`` counts causal waits that
    gave up."""

    copies: int
    connections: int
    sent: int = 0
    received: int = 0
    elapsed: float = 0.0
    rounds: int = 0
    timeouts: int = 0
    skipped: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Messages sent a second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def received_rate(self) -> float:
        """Messages received a second."""
        return self.received / self.elapsed if self.elapsed > 0 else 0.0

    def latency(self) -> dict[str, float | None]:
        """p50, p90, p99 and max of the step -> first answer latency, in seconds."""
        values = self.latencies
        return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9),
                "p99": percentile(values, 0.99), "max": values[-1] if values else None}

    def to_json(self) -> dict[str, Any]:
        return {
            "copies": self.copies, "connections": self.connections, "sent": self.sent,
            "received": self.received, "elapsed": round(self.elapsed, 6),
            "throughput": round(self.throughput, 1),
            "received_rate": round(self.received_rate, 1), "rounds": self.rounds,
            "latency": {k: None if v is None else round(v, 6)
                        for k, v in self.latency().items()},
            "latency_count": len(self.latencies), "timeouts": self.timeouts,
            "skipped": self.skipped, "failures": dict(self.failures),
            "errors": list(self.errors),
        }


async def run_load(cassette: Cassette, url: str, options: PlayOptions, *, copies: int = 1,
                   loop: bool = False, rate: float | None = None,
                   duration: float | None = None, rounds: int | None = None,
                   conns: Sequence[int] | None = None) -> LoadResult:
    """Play ``copies`` copies of the chosen connections at once; see the module.

    ``loop`` needs ``duration`` (seconds) or ``rounds`` (rounds per copy) so that
    the test ends by itself; without ``loop`` each copy plays once. Bad arguments:
    :class:`ConfigError`.
    """
    if copies < 1:
        raise ConfigError(f"--connections must be at least 1, got {copies}")
    if loop and duration is None and rounds is None:
        raise ConfigError("--loop needs --duration (a load test that ends by itself)")
    if duration is not None and not duration > 0:
        raise ConfigError(f"--duration must be more than 0, got {duration}")
    if rounds is not None and rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    limiter = RateLimiter(rate) if rate is not None else None
    players: list[ConnPlayer] = []
    for _ in range(copies):
        players.extend(players_of(cassette, url, options, conns, record=False))
    iterations = (rounds or MAX_ROUNDS) if loop else 1
    start = clock()
    until = start + duration if loop and duration is not None else None
    await asyncio.gather(*(p.run(iterations=iterations, until=until, limiter=limiter,
                                 play_start=start) for p in players))
    result = LoadResult(copies, len(players), elapsed=clock() - start)
    errors: Counter[str] = Counter()
    for player in players:
        outcome = player.outcome
        result.sent += outcome.sent
        result.received += player.received
        result.timeouts += player.timeouts
        result.rounds += player.rounds
        result.skipped += len(outcome.skipped)
        result.latencies.extend(player.latency)
        if outcome.failure is not None:
            result.failures[outcome.failure] += 1
            errors[outcome.handshake_error or outcome.failure] += 1
    result.latencies.sort()
    result.errors = [f"{why} (x{n})" if n > 1 else why for why, n in errors.most_common(5)]
    return result
