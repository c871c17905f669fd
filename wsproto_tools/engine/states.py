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

__all__ = [
    "TRANSITIONS",
    "Event",
    "IllegalTransition",
    "LocalIllegalTransition",
    "Origin",
    "RemoteIllegalTransition",
    "State",
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
    CLOSED = "closed"  # final


class Event(Enum):
    """What can happen to a session. Message events are named after the message."""

    OPEN = "open"  # the transport is up
    CHALLENGE = "challenge"  # Challenge message (server -> client)
    HANDSHAKE = "handshake"  # Handshake message (client -> server)
    AUTH_OK = "auth_ok"  # credentials verified
    ACCEPT = "accept"  # HandshakeResponse (server -> client): session attached
    MESSAGE = "message"  # any data / system / heartbeat message
    LOST = "lost"  # the transport died without a Close
    RESUME_LOST = "resume_lost"  # the transport died while an existing session re-handshakes
    CLOSE = "close"  # Close message sent or received
    CLOSED = "closed"  # the transport is gone after Close / session expired


class Origin(Enum):
    """Who caused an event: decides whose fault an illegal one is."""

    LOCAL = "local"
    REMOTE = "remote"


S, E = State, Event

#: (state, event) -> next state. A pair that is missing is illegal.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.CONNECTING, E.OPEN): S.HANDSHAKING,
    (S.CONNECTING, E.LOST): S.CLOSED,
    (S.CONNECTING, E.CLOSED): S.CLOSED,
    (S.HANDSHAKING, E.CHALLENGE): S.HANDSHAKING,
    (S.HANDSHAKING, E.HANDSHAKE): S.HANDSHAKING,
    (S.HANDSHAKING, E.AUTH_OK): S.AUTHENTICATED,
    (S.HANDSHAKING, E.CLOSE): S.CLOSING,
    (S.HANDSHAKING, E.LOST): S.CLOSED,
    (S.HANDSHAKING, E.RESUME_LOST): S.RECONNECTING,
    (S.AUTHENTICATED, E.ACCEPT): S.ACTIVE,
    (S.AUTHENTICATED, E.RESUME_LOST): S.RECONNECTING,
    (S.AUTHENTICATED, E.CLOSE): S.CLOSING,
    (S.AUTHENTICATED, E.LOST): S.CLOSED,
    (S.ACTIVE, E.MESSAGE): S.ACTIVE,
    (S.ACTIVE, E.LOST): S.RECONNECTING,
    (S.ACTIVE, E.CLOSE): S.CLOSING,
    (S.RECONNECTING, E.OPEN): S.HANDSHAKING,
    (S.RECONNECTING, E.CLOSED): S.CLOSED,
    (S.CLOSING, E.CLOSE): S.CLOSING,
    (S.CLOSING, E.MESSAGE): S.CLOSING,  # in-flight messages after our Close are drained
    (S.CLOSING, E.LOST): S.CLOSED,
    (S.CLOSING, E.CLOSED): S.CLOSED,
}

#: A resumed session goes back through the handshake but keeps its state;
#: the engine marks that, the table does not need to.


class IllegalTransition(WspError):
    """Mixin marker: an event arrived in a state that does not allow it."""


class RemoteIllegalTransition(RemoteProtocolError, IllegalTransition):
    """The peer sent a message the current state does not allow."""


class LocalIllegalTransition(LocalProtocolError, IllegalTransition):
    """The caller asked for something the current state does not allow."""


def transition(state: State, event: Event, origin: Origin = Origin.REMOTE) -> State:
    """The state after ``event`` in ``state``; raise when the table forbids it.

    A remote illegal event is the peer's fault (close code 1002, or 4007 for a
    message before the handshake finished); a local one is the caller's.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        pass
    text = f"{event.value} is not allowed in state {state.value}"
    if origin is Origin.LOCAL:
        raise LocalIllegalTransition(text)
    code = CloseCode.PROTOCOL_ERROR
    if event is Event.MESSAGE and state in (S.HANDSHAKING, S.AUTHENTICATED):
        code = CloseCode.POLICY_VIOLATION
    raise RemoteIllegalTransition(text, close_code=code)
