"""What a server session needs to be resumed on another node, as bytes (sans-I/O).

A networked broker keeps this snapshot where every node can read it
(docs/scaling.md): the session id and the identity that opened it, the highest
sequence received from the client (what was acknowledged), the highest sent, the
unacknowledged and backlogged outbound messages, and the publish ids already
applied. :func:`restore` gives back a Reconnecting :class:`ServerSession` that
:meth:`ServerSession.adopt` resumes like one this node had kept itself.

Outbound messages are stored unsealed, in the v2 encoding: a resume renegotiates
keys, and :meth:`Session._again` seals them for the new connection.
"""

from __future__ import annotations

__all__ = ["SNAPSHOT_VERSION", "SnapshotError", "restore", "snapshot"]

from collections import OrderedDict, deque
from typing import Any

import msgpack

from wsproto_tools.codec import DEFAULT_LIMITS, Flags, Message, constructor, decode, encode
from wsproto_tools.engine.auth import Grant
from wsproto_tools.engine.sequencing import held_size
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import ServerAuth, SessionConfig
from wsproto_tools.engine.states import State
from wsproto_tools.exceptions import WspError

#: The layout of :func:`snapshot`'s list; a reader refuses others.
SNAPSHOT_VERSION = 1

_MESSAGE = constructor(Message)
_UNSEALED = ~(Flags.ENCRYPTED | Flags.COMPRESSED)


class SnapshotError(WspError):
    """A stored session snapshot that cannot be read (another layout, or damaged)."""


def _plain(msg: Message) -> bytes:
    return encode(_MESSAGE(msg.payload, msg.sequence, 0, 0, msg.flags & _UNSEALED), version=2)


def snapshot(
    session: ServerSession,
    limit: int | None = None,
    received: int | None = None,
    pending: set[int] | frozenset[int] = frozenset(),
) -> bytes:
    """The resumable state of ``session`` (an established one).

    ``received``: the sequence to record as received, when less than the
    session's (its later publishes are not stored yet); ``pending``: publish ids
    left out of the applied ones for the same reason. Over ``limit`` bytes (what
    the store takes), a *partial* snapshot without the outbound messages:
    :func:`restore` refuses it, so another node starts a new session instead of
    one that lost messages."""
    recv_seq = session.recv_seq if received is None else min(received, session.recv_seq)
    unacked = [_plain(entry[0]) for entry in session.unacked.values()]
    backlog = [_plain(msg) for msg in session.backlog or ()]
    if limit is not None and sum(map(len, unacked)) + sum(map(len, backlog)) > limit - 16384:
        return msgpack.packb(
            [SNAPSHOT_VERSION, session.session_id, session.grant.identity, recv_seq,
             session.send_seq, None, None, []],
            use_bin_type=True,
        )
    return msgpack.packb(
        [
            SNAPSHOT_VERSION,
            session.session_id,
            session.grant.identity,
            recv_seq,
            session.send_seq,
            unacked,
            backlog,
            [pid for pid in session.applied_ids or () if pid not in pending],
        ],
        use_bin_type=True,
    )


def _grant(identity: str) -> Grant:
    """A grant that names ``identity`` (the resuming connection brings the real one)."""
    if identity.startswith("jwt:"):
        return Grant(subject=identity[4:], method="jwt")
    return Grant(method=identity)


def restore(data: bytes, auth: ServerAuth, config: SessionConfig | None = None) -> ServerSession:
    """A Reconnecting session from :func:`snapshot`'s bytes; :class:`SnapshotError`
    when they cannot be read."""
    try:
        fields: Any = msgpack.unpackb(data, raw=False, strict_map_key=True)
        if not isinstance(fields, list) or not fields or fields[0] != SNAPSHOT_VERSION:
            raise ValueError("not a version-1 snapshot")
        _, session_id, identity, recv_seq, send_seq, unacked, backlog, applied = fields
        if not (isinstance(session_id, int) and session_id > 0 and isinstance(identity, str)):
            raise ValueError("no session id or identity")
        if not (isinstance(recv_seq, int) and isinstance(send_seq, int)):
            raise ValueError("sequence numbers are not integers")
        if unacked is None:
            raise ValueError("a partial snapshot (its messages did not fit in the store)")
        sent = [decode(item, limits=DEFAULT_LIMITS) for item in unacked]
        held = [decode(item, limits=DEFAULT_LIMITS) for item in backlog]
        ids = [int(i) for i in applied]
    except (ValueError, TypeError, WspError, msgpack.UnpackException) as error:
        raise SnapshotError(f"unreadable session snapshot: {error}") from None
    session = ServerSession(auth, config)
    session.session_id = session_id
    session.grant = _grant(identity)
    session.recv_seq = recv_seq
    session.send_seq = send_seq
    for msg in sent:
        session.unacked[msg.sequence] = (msg, 0.0, True)
        session.held += held_size(msg.payload)
    if held:
        session.backlog = deque(held)
        session.held += sum(held_size(m.payload) for m in held)
    if ids:
        session.applied_ids = OrderedDict.fromkeys(ids)
    session.state = State.RECONNECTING
    return session
