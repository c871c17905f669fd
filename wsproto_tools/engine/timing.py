"""Timing helpers that take the clock and randomness as arguments.

* :class:`RttEstimator` — smoothed RTT and retransmission timeout, RFC 6298
  section 2 (alpha 1/8, beta 1/4, K 4, back-off doubling in section 5.5).
* :class:`Backoff` — exponential back-off with *full jitter* for reconnects:
  ``sleep = random() * min(cap, base * 2**attempt)``.
* :class:`TokenBucket` — a rate limit of ``rate`` tokens/s with ``burst`` depth.
* :class:`AdaptiveWindow` — the in-flight window: slow start, then additive
  increase per acknowledged window, multiplicative decrease on a timeout.
"""

from __future__ import annotations

__all__ = ["AdaptiveWindow", "Backoff", "RttEstimator", "TokenBucket"]

from collections.abc import Callable

from wsproto_tools.exceptions import ConfigError


class RttEstimator:
    """RFC 6298: SRTT, RTTVAR and RTO (seconds)."""

    __slots__ = ("granularity", "latest", "max_rto", "min_rto", "rto", "rttvar", "srtt")

    ALPHA = 0.125
    BETA = 0.25
    K = 4

    def __init__(
        self,
        *,
        initial_rto: float = 1.0,
        min_rto: float = 0.2,
        max_rto: float = 60.0,
        granularity: float = 0.001,
    ) -> None:
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.granularity = granularity
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.rto = initial_rto
        self.latest: float | None = None

    def sample(self, rtt: float) -> None:
        """Take one measurement (RFC 6298 section 2.2/2.3); negative samples are ignored."""
        if rtt < 0:
            return
        self.latest = rtt
        if self.srtt is None or self.rttvar is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - self.BETA) * self.rttvar + self.BETA * abs(self.srtt - rtt)
            self.srtt = (1 - self.ALPHA) * self.srtt + self.ALPHA * rtt
        rto = self.srtt + max(self.granularity, self.K * self.rttvar)
        self.rto = min(self.max_rto, max(self.min_rto, rto))

    def backoff(self) -> None:
        """Double the RTO after a timeout (RFC 6298 section 5.5)."""
        self.rto = min(self.max_rto, self.rto * 2)


class Backoff:
    """Exponential back-off with full jitter; ``rand()`` returns a float in [0, 1)."""

    def __init__(
        self,
        rand: Callable[[], float],
        *,
        base: float = 0.1,
        cap: float = 30.0,
        max_attempts: int | None = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ConfigError("backoff needs 0 < base <= cap")
        self.rand = rand
        self.base = base
        self.cap = cap
        self.max_attempts = max_attempts
        self.attempt = 0

    @property
    def exhausted(self) -> bool:
        return self.max_attempts is not None and self.attempt >= self.max_attempts

    def next_delay(self) -> float:
        """The delay before the next attempt; raise when attempts are exhausted."""
        if self.exhausted:
            raise ConfigError(f"gave up after {self.attempt} attempts")
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 64)))
        self.attempt += 1
        return self.rand() * ceiling

    def reset(self) -> None:
        self.attempt = 0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; time is passed in."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, count: float = 1.0) -> bool:
        """Spend ``count`` tokens if there are enough; False means rate-limited."""
        elapsed = now - self.stamp
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.stamp = now
        if self.tokens >= count:
            self.tokens -= count
            return True
        return False


class AdaptiveWindow:
    """How many messages may be unacknowledged at once, like TCP's congestion window.

    Slow start (RFC 5681 section 3.1): the window grows by the number of newly
    acknowledged messages (doubling per round trip) until ``threshold``; then by
    one eighth per acknowledged window (additive increase). A retransmission
    timeout halves it and sets the threshold there (multiplicative decrease).
    """

    __slots__ = ("_acked", "maximum", "minimum", "size", "threshold")

    def __init__(self, *, initial: int = 64, minimum: int = 4, maximum: int = 4096) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ConfigError("window needs 1 <= minimum <= initial <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.size = initial
        self.threshold = maximum
        self._acked = 0

    def on_ack(self, count: int) -> None:
        if self.size < self.threshold:
            self.size = min(self.maximum, self.threshold, self.size + count)
            return
        self._acked += count
        while self._acked >= self.size and self.size < self.maximum:
            self._acked -= self.size
            self.size += max(1, self.size // 8)
        self.size = min(self.size, self.maximum)

    def on_timeout(self) -> None:
        """Halve on a retransmission timeout (multiplicative decrease)."""
        self.size = max(self.minimum, self.size // 2)
        self.threshold = self.size
        self._acked = 0
