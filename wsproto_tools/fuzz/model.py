"""The fuzzer's vocabulary: what a case sends, what it expects, what it saw.

A :class:`Case` is data: a tuple of steps (:class:`Send`, :class:`Partial`,
:class:`Pause`, :class:`EchoRounds`) and an :class:`Expect`. The runner
(:mod:`wsproto_tools.fuzz.runner`) executes the steps over a raw connection and
records what the peer did as a list of :class:`Event`; the verdict logic
(:mod:`wsproto_tools.fuzz.verdict`) compares the two with the meanings
Autobahn|Testsuite gives its verdicts, so reports compare line by line.
"""

from __future__ import annotations

__all__ = [
    "Behavior",
    "Case",
    "CaseResult",
    "Chop",
    "CloseVerdict",
    "EchoRounds",
    "Event",
    "Expect",
    "Frame",
    "Partial",
    "Pause",
    "Send",
    "Step",
]

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Behavior(StrEnum):
    """The behaviour verdict of a case (Autobahn's meanings)."""

    OK = "OK"  # the peer did exactly what the RFC requires
    NON_STRICT = "NON-STRICT"  # acceptable, but not as strict as it could be
    INFORMATIONAL = "INFORMATIONAL"  # the RFC leaves it open; recorded for comparison
    UNIMPLEMENTED = "UNIMPLEMENTED"  # an optional feature (e.g. compression) is absent
    FAILED = "FAILED"  # the peer broke the RFC


class CloseVerdict(StrEnum):
    """The closing-behaviour verdict of a case (Autobahn's meanings)."""

    OK = "OK"
    WRONG_CODE = "WRONG CODE"  # closed by the right side, with a code not allowed here
    UNCLEAN = "UNCLEAN"  # the RFC requires a close handshake and there was none
    FAILED = "FAILED"  # the wrong side ended the connection (or nobody did)
    INFORMATIONAL = "INFORMATIONAL"


#: Behaviour verdicts that make the run fail (exit status 1).
FAILING_BEHAVIORS = frozenset({Behavior.FAILED})
#: Close verdicts that make the run fail (exit status 1).
FAILING_CLOSES = frozenset({CloseVerdict.FAILED, CloseVerdict.WRONG_CODE, CloseVerdict.UNCLEAN})


class Chop(StrEnum):
    """How a :class:`Send` step cuts its bytes into socket writes."""

    NONE = "none"  # everything in one write
    OCTETS = "octets"  # one write per byte
    FRAMES = "frames"  # one write per frame, with a short pause between them


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to send; the runner masks it when this side is the client.

    ``rsv`` is the three reserved bits as a number (RSV1 = 4). ``length`` writes
    a payload length that differs from the payload's (never used to lie past
    the payload's end). ``compress`` deflates the payload with the negotiated
    permessage-deflate context and sets RSV1.
    """

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    compress: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    """Send frames, in one write or chopped (RFC 6455 does not care how)."""

    frames: tuple[Frame, ...]
    chop: Chop = Chop.NONE
    # Keep sending even after the peer closed (cases that test frames after close).
    force: bool = False
    # With Chop.NONE: write in pieces of this many bytes (0: all at once).
    chunk: int = 0


@dataclass(frozen=True, slots=True)
class Partial:
    """Write only part of a frame: its bytes that carry payload[start:stop].

    The header goes with the part that starts at 0. The frame is encoded once
    per case, so all parts share one masking key.
    """

    frame: Frame
    start: int
    stop: int | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` while reading; if the peer is still open afterwards and
    ``marker`` is set, record a ``timeout`` event with it (so a case can tell a
    peer that failed fast from one that failed late)."""

    seconds: float
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class EchoRounds:
    """Send ``count`` messages one at a time and check each echo.

    Payloads are ``size`` bytes taken in turn from the case's data set (or ``*``
    when there is none); ``fragment`` > 0 splits each message into frames of
    that many bytes; ``compress`` uses the negotiated permessage-deflate. A
    successful run records one ``echoed`` event with the count.
    """

    count: int
    size: int
    binary: bool
    fragment: int = 0
    compress: bool = False
    dataset: str | None = None


Step = Send | Partial | Pause | EchoRounds


@dataclass(frozen=True, slots=True)
class Event:
    """Something the peer did, as the verdict logic compares it.

    ``kind`` is ``message``, ``ping``, ``pong``, ``timeout`` (a :class:`Pause`
    marker, in ``note``), ``echoed`` (``note`` holds the count) or
    ``violation`` (a frame the peer should never have sent; ``note`` is the
    code from :data:`wsproto_tools.ws.VIOLATIONS`).
    """

    kind: str
    data: bytes = b""
    binary: bool = False
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view; long payloads are shown by length, digest and head."""
        out: dict[str, Any] = {"type": self.kind}
        if self.kind in ("message", "ping", "pong"):
            out["binary"] = self.binary
            out["length"] = len(self.data)
            out.update(describe_payload(self.data, self.binary))
        if self.note:
            out["note"] = self.note
        return out


def describe_payload(data: bytes, binary: bool, limit: int = 64) -> dict[str, Any]:
    """A short, JSON-ready description of a payload."""
    import hashlib

    out: dict[str, Any] = {}
    head = data[:limit]
    if not binary:
        try:
            out["text"] = head.decode("utf-8")
        except UnicodeDecodeError:
            out["hex"] = head.hex()
    else:
        out["hex"] = head.hex()
    if len(data) > limit:
        out["truncated"] = True
        out["sha1"] = hashlib.sha1(data).hexdigest()
    return out


@dataclass(frozen=True, slots=True)
class Expect:
    """What the peer should do: the event lists per verdict and how to close.

    ``ok`` is the one event list that earns OK; ``non_strict`` and
    ``informational`` are alternative lists that earn those verdicts. The
    close expectation follows Autobahn: who closes, which codes are allowed
    (an empty close payload is always allowed) and whether the close handshake
    must be clean.
    """

    ok: tuple[Event, ...] = ()
    non_strict: tuple[tuple[Event, ...], ...] = ()
    informational: tuple[tuple[Event, ...], ...] = ()
    closed_by_me: bool = True
    close_codes: tuple[int, ...] = (1000,)
    require_clean: bool = True
    # The close frame this side sends when it closes (None: an empty payload).
    close_code: int | None = 1000
    # A close with a wrong code also fails the behaviour (Autobahn's 7.1.x).
    wrong_code_fails: bool = False
    # Verdicts are INFORMATIONAL whatever happens (the RFC leaves it open).
    informational_only: bool = False


@dataclass(frozen=True, slots=True)
class Case:
    """One conformance case: an Autobahn-compatible id, steps and expectations."""

    id: str
    area: str
    description: str
    expectation: str
    rfc: str
    steps: tuple[Step, ...]
    expect: Expect
    # permessage-deflate offer (client mode) and the parameters to accept
    # (serve mode), as Sec-WebSocket-Extensions values.
    offer: str | None = None
    accept: tuple[str, ...] = ()
    perf: bool = False
    timeout: float | None = None

    @property
    def key(self) -> tuple[int, ...]:
        """The id as numbers, for sorting (``6.10.2`` after ``6.9.4``)."""
        return tuple(int(part) for part in self.id.split("."))

    @property
    def top(self) -> int:
        return int(self.id.split(".")[0])


@dataclass(slots=True)
class CaseResult:
    """The outcome of one case."""

    case: Case
    behavior: Behavior
    close: CloseVerdict
    observed: list[Event] = field(default_factory=list)
    result: str = ""
    close_result: str = ""
    closed_by_me: bool | None = None
    clean: bool = False
    remote_close_code: int | None = None
    remote_close_reason: str = ""
    local_close_code: int | None = None
    duration: float = 0.0
    wire: list[dict[str, Any]] = field(default_factory=list)
    extensions: str | None = None

    @property
    def failed(self) -> bool:
        return self.behavior in FAILING_BEHAVIORS or self.close in FAILING_CLOSES
