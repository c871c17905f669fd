"""The session state machine: everything that affects the state lives here.

docs/architecture.md, "The session". A *session* can outlive one connection::

    Connecting -> Handshaking -> Authenticated -> Active -> (Reconnecting)
               -> Closing -> Closed

The table below is the single source of truth. :func:`transition` answers the
next state for an event, or raises the typed protocol error that says whose
fault it was (the peer's for received messages, the caller's otherwise) and
carries the close code to answer with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "TRANSITIONS",
    "Event",
    "IllegalTransition",
    "LocalIllegalTransition",
    "Origin",
    "RemoteIllegalTransition",
    "Role",
    "State",
    "Stateful",
    "states_table",
    "transition",
]

from enum import Enum

from wsproto_tools.exceptions import CloseCode, LocalProtocolError, RemoteProtocolError, WspError


class State(Enum):
    """Where a session is in its life."""

    CONNECTING = "connecting"  # no transport yet (or the first one is opening)
    HANDSHAKING = "handshaking"  # transport open; challenge / Handshake in flight
    AUTHENTICATED = "authenticated"  # credentials checked; session not yet attached
    ACTIVE = "active"  # session attached: data, pub/sub, heartbeats flow
    RECONNECTING = "reconnecting"  # transport lost; the session can be resumed
    CLOSING = "closing"  # a Close was sent or received
    ERROR = "error"  # the peer broke a rule: nothing is processed; only a Close goes out
    CLOSED = "closed"  # final


class Event(Enum):
    """What can happen to a session. Message events are named after the message."""

    OPEN = "open"  # the transport is up
    CHALLENGE = "challenge"  # Challenge message (server -> client)
    HANDSHAKE = "handshake"  # Handshake message (client -> server)
    AUTH_OK = "auth_ok"  # credentials verified
    ACCEPT = "accept"  # HandshakeResponse (server -> client): session attached
    MESSAGE = "message"  # any data / system / heartbeat message
    FAIL = "fail"  # the peer broke a protocol rule
    LOST = "lost"  # the transport died without a Close
    RESUME_LOST = "resume_lost"  # the transport died while an existing session re-handshakes
    CLOSE = "close"  # Close message sent or received
    CLOSED = "closed"  # the transport is gone after Close / session expired or handed over


class Origin(Enum):
    """Who caused an event: decides whose fault an illegal one is."""

    LOCAL = "local"
    REMOTE = "remote"


class Role(Enum):
    """Whose table: a live client, a live server, or an observer of both sides."""

    CLIENT = "client"
    SERVER = "server"
    OBSERVER = "observer"


S, E = State, Event

#: (state, event) -> next state for both roles. A pair that is missing is illegal.
_COMMON: dict[tuple[State, Event], State] = {
    (S.CONNECTING, E.OPEN): S.HANDSHAKING,
    (S.CONNECTING, E.LOST): S.CLOSED,
    (S.CONNECTING, E.CLOSED): S.CLOSED,
    (S.HANDSHAKING, E.AUTH_OK): S.AUTHENTICATED,
    (S.HANDSHAKING, E.CLOSE): S.CLOSING,
    (S.HANDSHAKING, E.FAIL): S.ERROR,
    (S.HANDSHAKING, E.LOST): S.CLOSED,
    (S.HANDSHAKING, E.RESUME_LOST): S.RECONNECTING,
    (S.AUTHENTICATED, E.ACCEPT): S.ACTIVE,
    (S.AUTHENTICATED, E.FAIL): S.ERROR,
    (S.AUTHENTICATED, E.RESUME_LOST): S.RECONNECTING,
    (S.AUTHENTICATED, E.CLOSE): S.CLOSING,
    (S.AUTHENTICATED, E.LOST): S.CLOSED,
    (S.ACTIVE, E.MESSAGE): S.ACTIVE,
    (S.ACTIVE, E.FAIL): S.ERROR,
    (S.ACTIVE, E.LOST): S.RECONNECTING,
    (S.ACTIVE, E.CLOSE): S.CLOSING,
    (S.RECONNECTING, E.OPEN): S.HANDSHAKING,
    (S.RECONNECTING, E.CLOSED): S.CLOSED,
    (S.CLOSING, E.CLOSE): S.CLOSING,
    (S.CLOSING, E.MESSAGE): S.CLOSING,  # in-flight messages after our Close are drained
    (S.CLOSING, E.FAIL): S.CLOSING,  # already ending
    (S.CLOSING, E.LOST): S.CLOSED,
    (S.CLOSING, E.CLOSED): S.CLOSED,
    (S.ERROR, E.CLOSE): S.CLOSING,  # the Close that says why
    (S.ERROR, E.LOST): S.CLOSED,
    (S.ERROR, E.RESUME_LOST): S.RECONNECTING,  # an established session stays resumable
    (S.ERROR, E.CLOSED): S.CLOSED,
}
_CLIENT: dict[tuple[State, Event], State] = {
    (S.HANDSHAKING, E.CHALLENGE): S.HANDSHAKING,
}
_SERVER: dict[tuple[State, Event], State] = {
    (S.HANDSHAKING, E.HANDSHAKE): S.HANDSHAKING,
    (S.AUTHENTICATED, E.CLOSED): S.CLOSED,  # its connection was handed to a resumed session
}

#: role -> (state, event) -> next state: the only table of session states.
TRANSITIONS: dict[Role, dict[tuple[State, Event], State]] = {
    Role.CLIENT: {**_COMMON, **_CLIENT},
    Role.SERVER: {**_COMMON, **_SERVER},
    Role.OBSERVER: {**_COMMON, **_CLIENT, **_SERVER},
}


class IllegalTransition(WspError):
    """Mixin marker: an event arrived in a state that does not allow it."""


class RemoteIllegalTransition(RemoteProtocolError, IllegalTransition):
    """The peer sent a message the current state does not allow."""


class LocalIllegalTransition(LocalProtocolError, IllegalTransition):
    """The caller asked for something the current state does not allow."""


def transition(
    state: State, event: Event, origin: Origin = Origin.REMOTE, role: Role = Role.OBSERVER
) -> State:
    """The state after ``event`` in ``state`` for ``role``; raise when the table forbids it.

    A remote illegal event is the peer's fault (close code 1002, or 1008 for a
    message before the handshake finished); a local one is the caller's.
    """
    try:
        return TRANSITIONS[role][(state, event)]
    except KeyError:
        pass
    text = f"{event.value} is not allowed in state {state.value}"
    if origin is Origin.LOCAL or state is S.ERROR:
        raise LocalIllegalTransition(text)
    code = CloseCode.PROTOCOL_ERROR
    if event is Event.MESSAGE and state in (S.HANDSHAKING, S.AUTHENTICATED):
        code = CloseCode.POLICY_VIOLATION
    raise RemoteIllegalTransition(text, close_code=code)


class Stateful:
    """A session's state, written only here: :meth:`_go` follows the table of
    :attr:`role`, :meth:`_allowed` checks an event without taking it."""

    if not TYPE_CHECKING:  # mypy: the slots are the concrete session's
        __slots__ = ()
    state: State
    role: Role = Role.OBSERVER

    def _go(self, event: Event, origin: Origin = Origin.REMOTE) -> State:
        self.state = state = transition(self.state, event, origin, self.role)
        return state

    def _allowed(self, event: Event, origin: Origin = Origin.REMOTE) -> None:
        transition(self.state, event, origin, self.role)

    def _start(self) -> None:
        """The state of a new session (or observer): connecting."""
        self.state = State.CONNECTING


def table_rows() -> list[tuple[State, Event, State, str]]:
    """Every transition with the roles it belongs to (docs/protocol.md, S.3)."""
    rows = []
    for (state, event), after in TRANSITIONS[Role.OBSERVER].items():
        roles = [r.value for r in (Role.CLIENT, Role.SERVER) if (state, event) in TRANSITIONS[r]]
        rows.append((state, event, after, "both" if len(roles) == 2 else roles[0]))
    return rows


def states_table() -> str:
    """docs/protocol.md's state table (a generated block, checked by a test)."""
    lines = ["| state | event | next state | role |", "| --- | --- | --- | --- |"]
    for state, event, after, role in table_rows():
        lines.append(f"| {state.value} | `{event.value}` | {after.value} | {role} |")
    return "\n".join(lines) + "\n"
