"""What one played connection gave back: the data the player fills and the diff reads.

A :class:`ConnOutcome` holds, for one connection of a cassette, what the target
answered: the handshake's result, every message it sent (as
:class:`~wsproto_tools.replay.cassette.CassetteMessage` with ``direction
"server"`` and ``t`` seconds from the start of the connection, so that a replay
and a recording are compared in the same form), how the connection ended, and
the response latencies. The recorded side is made from the cassette with
:func:`recorded_outcome`, so the diff always compares two ``ConnOutcome``.

Values the replayer had to rewrite (a Request's id, a publish id) are mapped back
into the recording's numbering by the player before a message is stored here:
a replayed ``Response`` carries the id its recorded ``Request`` had.
"""

from __future__ import annotations

__all__ = ["ConnOutcome", "Latency", "recorded_outcome"]

from dataclasses import dataclass, field

from wsproto_tools.codec.schema import Close
from wsproto_tools.replay.cassette import Cassette, CassetteMessage
from wsproto_tools.replay.plan import engine_traffic, is_wsp_connection


@dataclass(slots=True)
class Latency:
    """One response and the client message it answered: ``seconds`` between them.

    ``step`` is the index of the client message (in the connection's client
    messages), ``response`` the index of the answer in ``ConnOutcome.received``.
    """

    step: int
    response: int
    seconds: float


@dataclass(slots=True)
class ConnOutcome:
    """One connection as played (or as recorded).

    ``handshake_error`` is None when the WebSocket (and, for wsp, the session)
    handshake succeeded, else a one-line reason (``"HTTP 403"``, ``"refused:
    authentication failed"``) and ``failure`` its kind: ``"unreachable"`` (no
    connection, a timeout, a refused upgrade that is not about credentials),
    ``"refused"`` (HTTP 401/403, or the wsp session refused the credentials),
    ``"failed"`` (anything else); ``status`` the HTTP status of the upgrade answer
    when known (101 on success). ``close_code``/``close_reason`` are the close
    the *server* sent (None: the server sent no close frame — the client closed
    first, or the connection was cut); ``closed_by`` is ``"server"``,
    ``"client"`` or ``"cut"``. ``received`` holds the server's messages in
    arrival order (close frames are not in it: they are the close fields).
    Pings and pongs are the WebSocket library's business and are in neither.
    ``engine`` is true when the connection is a wsp session played through the
    engine (:func:`~wsproto_tools.replay.plan.is_wsp_connection`): then its
    engine traffic (handshake, acks, heartbeats, window updates) is the
    engine's own and is not compared, only counted.
    ``sent`` counts the client messages sent; ``skipped`` the recorded client
    messages the replayer did not send (each with a reason, for the report).
    """

    conn: int
    handshake_error: str | None = None
    failure: str | None = None
    status: int | None = None
    subprotocol: str | None = None
    extensions: str | None = None
    received: list[CassetteMessage] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str | None = None
    latencies: list[Latency] = field(default_factory=list)
    sent: int = 0
    skipped: list[str] = field(default_factory=list)
    engine: bool = False
    duration: float = 0.0


def recorded_outcome(cassette: Cassette, conn: int) -> ConnOutcome:
    """The recorded side of connection ``conn``: its server messages, its close and the
    latency between each client message and the first server message after it."""
    connection = cassette.connections[conn]
    messages = cassette.messages_of(conn)
    outcome = ConnOutcome(conn, status=101, engine=is_wsp_connection(connection, messages),
                          subprotocol=connection.subprotocols[0] if connection.subprotocols
                          else None,
                          extensions=connection.extensions)
    step = -1
    step_t = 0.0
    answered = True
    closing = False
    for message in messages:
        if message.opcode in ("ping", "pong"):
            continue
        outcome.duration = max(outcome.duration, message.t)
        if message.direction == "client":
            if outcome.engine and message.wsp is not None and isinstance(
                    message.wsp.payload, Close):
                closing = True  # the client's wsp Close: its close, not a step
                continue
            if message.opcode == "close":
                if outcome.closed_by is None:
                    outcome.closed_by = "client"
                continue
            if outcome.engine and engine_traffic(message):
                continue  # the engine's handshake, acks, heartbeats: not steps
            step += 1
            step_t = message.t
            answered = False
            outcome.sent += 1
            continue
        if closing and message.wsp is not None and isinstance(message.wsp.payload, Close):
            continue  # the server's Close answering the client's: the closing handshake
        if message.opcode == "close":
            if outcome.closed_by is None:
                outcome.closed_by = "server"
            outcome.close_code = message.close_code
            outcome.close_reason = message.close_reason
            continue
        outcome.received.append(message)
        if not answered and step >= 0 and not (outcome.engine and engine_traffic(message)):
            outcome.latencies.append(
                Latency(step, len(outcome.received) - 1, max(0.0, message.t - step_t)))
            answered = True
    return outcome
