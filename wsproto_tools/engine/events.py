"""What the engine tells its driver: frozen dataclasses, one per kind of event.

The driver (``transports/``, or a test) calls ``Session.receive*`` and acts on
the returned events; the engine never calls back into the application.
"""

from __future__ import annotations

__all__ = [
    "Accepted",
    "Acked",
    "AuthSucceeded",
    "ContinuityLostNotice",
    "DataReceived",
    "Delivery",
    "Event",
    "HeartbeatAnswered",
    "PeerClosed",
    "PeerError",
    "PublishReceived",
    "Reply",
    "RequestReceived",
    "Retransmitted",
    "SubscribeRequested",
    "SubscriptionConfirmed",
    "UnsubscribeRequested",
]

from dataclasses import dataclass

from wsproto_tools.codec.schema import BinaryData, DeltaUpdate, Payload, TextData
from wsproto_tools.engine.auth import Grant
from wsproto_tools.engine.keys import ResumeClaims


class Event:
    """Base class of engine events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AuthSucceeded(Event):
    """Server: the client proved who it is. The driver now accepts or resumes."""

    grant: Grant
    resume: ResumeClaims | None  # a verified resume token, if one was presented
    last_received: int  # what the client says it received in order (resume)
    capabilities: tuple[str, ...]
    client_id: str


@dataclass(frozen=True, slots=True)
class Accepted(Event):
    """Client: the session is established (``resumed`` when it continued an old one)."""

    session_id: int
    resumed: bool
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishReceived(Event):
    """Server: apply this publish (duplicates were suppressed already)."""

    topic: str
    data: bytes
    id: int | None
    sequence: int


@dataclass(frozen=True, slots=True)
class SubscribeRequested(Event):
    """Server: the client wants ``topic`` (from ``from_offset`` of ``epoch`` if given)."""

    topic: str
    from_offset: int | None
    epoch: int | None


@dataclass(frozen=True, slots=True)
class UnsubscribeRequested(Event):
    topic: str


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """Server: answer with :meth:`ServerSession.respond`."""

    id: int
    method: str
    data: bytes


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """A sequenced application message (text, binary or delta), exactly once."""

    payload: TextData | BinaryData | DeltaUpdate
    sequence: int


@dataclass(frozen=True, slots=True)
class Acked(Event):
    """The peer acknowledged every sequenced message up to ``sequence``.

    ``payloads`` are the acknowledged payload objects themselves (the same objects
    that were sent, also after a renumbering resend), so a driver can map them to
    whatever waits for them.
    """

    sequence: int
    count: int
    payloads: tuple[Payload, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery(Event):
    """Client: a topic message, exactly once and in offset order."""

    topic: str
    epoch: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmed(Event):
    topic: str
    epoch: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class ContinuityLostNotice(Event):
    """Client: messages ``requested .. available-1`` of ``topic`` are gone for good."""

    topic: str
    epoch: int
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class Reply(Event):
    """Client: the Response to request ``id``."""

    id: int
    data: bytes
    status: int


@dataclass(frozen=True, slots=True)
class HeartbeatAnswered(Event):
    id: int
    rtt: float


@dataclass(frozen=True, slots=True)
class PeerError(Event):
    code: int
    message: str
    ref_sequence: int | None


@dataclass(frozen=True, slots=True)
class PeerClosed(Event):
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Retransmitted(Event):
    """Unacknowledged messages were sent again after a retransmission timeout."""

    count: int
    rto: float
