"""A connection of a cassette as a script: client steps and the server messages between.

Both directions of replay read a connection the same way (docs/replay.md,
"Timing"): the recording is cut at each client message. :class:`Step` ``i`` is
the ``i``-th client message the replayer sends; ``Script.opening`` holds what the
server sent before the first step, ``Step.after`` what it sent after step ``i``
and before step ``i + 1``. The client side waits (``--timing causal``) for the
answers to step ``i - 1`` before it sends step ``i``; the server side
(``--serve``) sends ``opening`` to a client that connects and ``after`` of the
step each client message stands for.

On a wsp connection the engine does its own handshake, acknowledgements,
heartbeats and window updates, so those messages are not steps and are never
waited for (:func:`engine_traffic`). :func:`key_of` gives the key a server
message is matched by — the wsp keys, or ``None`` for "by position".
"""

from __future__ import annotations

__all__ = [
    "ENGINE_CLIENT_TYPES",
    "ENGINE_SERVER_TYPES",
    "Script",
    "Step",
    "engine_traffic",
    "is_wsp_connection",
    "key_of",
    "script_of",
]

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec.schema import (
    Acknowledge,
    Authenticate,
    Challenge,
    Close,
    ContinuityLost,
    Deliver,
    Error,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Response,
    Resume,
    Subscribed,
    WindowUpdate,
)
from wsproto_tools.replay.cassette import Cassette, CassetteConnection, CassetteMessage

_SESSION_OPENING = (Challenge, Handshake, HandshakeResponse)

#: Client messages the engine writes itself: never copied from a recording.
ENGINE_CLIENT_TYPES: tuple[type, ...] = (
    Handshake, Authenticate, Acknowledge, Heartbeat, WindowUpdate, Resume,
)
#: Server messages the engine answers or that only its bookkeeping concerns.
ENGINE_SERVER_TYPES: tuple[type, ...] = (
    Challenge, HandshakeResponse, Acknowledge, Heartbeat, WindowUpdate,
)


def engine_traffic(message: CassetteMessage) -> bool:
    """True for a wsp message the engine writes or consumes itself (handshake, acks,
    heartbeats, window updates) and for WebSocket pings and pongs."""
    if message.opcode in ("ping", "pong"):
        return True
    wsp = message.wsp
    if wsp is None:
        return False
    kinds = ENGINE_CLIENT_TYPES if message.direction == "client" else ENGINE_SERVER_TYPES
    return isinstance(wsp.payload, kinds)


def key_of(message: CassetteMessage) -> tuple[Any, ...] | None:
    """The key a server message is matched by, or None (matched by position).

    A Response by its request id, a Deliver by topic and offset, a Subscribed or
    ContinuityLost by topic, an Error by code and the sequence it refers to.
    Offsets are absolute here; whoever compares two runs makes them relative.
    """
    wsp = message.wsp
    if wsp is None:
        return None
    p = wsp.payload
    if isinstance(p, Response):
        return ("Response", p.id)
    if isinstance(p, Deliver):
        return ("Deliver", p.topic, p.offset)
    if isinstance(p, Subscribed):
        return ("Subscribed", p.topic)
    if isinstance(p, ContinuityLost):
        return ("ContinuityLost", p.topic)
    if isinstance(p, Error):
        return ("Error", p.code, p.ref_sequence)
    return None


@dataclass(slots=True)
class Step:
    """One client message to send, ``t`` seconds after the connection started (as
    recorded), and the server messages that came after it, before the next step."""

    index: int
    message: CassetteMessage
    after: list[CassetteMessage] = field(default_factory=list)

    @property
    def t(self) -> float:
        return self.message.t


@dataclass(slots=True)
class Script:
    """One recorded connection cut at its client messages.

    ``client_close`` is the client's close frame when the client closed (its
    code and reason are sent again); ``server_close`` the server's when it did.
    Engine traffic and pings/pongs are left out of ``opening``/``after``/steps
    when ``wsp`` is true (pings and pongs always).
    """

    connection: CassetteConnection
    wsp: bool
    opening: list[CassetteMessage] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    client_close: CassetteMessage | None = None
    server_close: CassetteMessage | None = None
    engine_skipped: int = 0

    @property
    def conn(self) -> int:
        return self.connection.conn

    def answers_before(self, index: int) -> list[CassetteMessage]:
        """The server messages recorded before step ``index`` was sent (since the step
        before it): what ``--timing causal`` waits for."""
        if index == 0:
            return self.opening
        return self.steps[index - 1].after

    @property
    def duration(self) -> float:
        """Seconds from the connection's start to its last recorded message."""
        last = [self.steps[-1].t] if self.steps else []
        last += [m.t for m in (self.client_close, self.server_close) if m is not None]
        return max(last, default=0.0)


def is_wsp_connection(connection: CassetteConnection, messages: Sequence[CassetteMessage]) -> bool:
    """A wsp *session*, replayed through the engine: the recording holds its session
    handshake (a Challenge, Handshake or HandshakeResponse) and its subprotocol is
    ``wsp.vN`` (or none was recorded and every binary message decoded as wsp).

    wsp messages without the session handshake — peers that skip it, or a capture
    that started mid-session — are played as the bytes recorded, like any other
    WebSocket traffic.
    """
    if connection.subprotocols and connection.wsp_version is None:
        return False
    binary = [m for m in messages if m.opcode == "binary"]
    if not binary or (connection.wsp_version is None and any(m.wsp is None for m in binary)):
        return False
    return any(m.wsp is not None and isinstance(m.wsp.payload, _SESSION_OPENING)
               for m in binary)


def script_of(cassette: Cassette, conn: int) -> Script:
    """The script of connection ``conn`` (a KeyError when the cassette has none)."""
    connection = cassette.connections[conn]
    messages = cassette.messages_of(conn)
    wsp = is_wsp_connection(connection, messages)
    script = Script(connection, wsp)
    for message in messages:
        if message.opcode == "close":
            if message.direction == "client":
                script.client_close = script.client_close or message
            else:
                script.server_close = script.server_close or message
            continue
        if wsp and message.direction == "client" and message.wsp is not None and isinstance(
                message.wsp.payload, Close):
            # the client's wsp Close goes with its WebSocket close: the player's close
            # sends both at once, as the recorded client did
            script.engine_skipped += 1
            continue
        if message.opcode in ("ping", "pong") or (wsp and engine_traffic(message)):
            script.engine_skipped += 1
            continue
        if message.direction == "client":
            script.steps.append(Step(len(script.steps), message))
        elif script.steps:
            script.steps[-1].after.append(message)
        else:
            script.opening.append(message)
    return script
