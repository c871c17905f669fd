"""The inspector feed of ``wsp serve --inspect`` (docs/inspect.md).

The server's hot path only appends a small tuple to each attached viewer's
bounded queue (and only when a viewer is attached: ``feed.viewers`` is empty
otherwise). Decoding, decryption, filtering and JSON happen in the viewer's own
sender task, which sends up to SEND_BATCH records per WebSocket text message
(one JSON object a line: NDJSON), so a slow viewer loses its oldest records (counted, then reported
with one ``{"kind": "dropped", "count": N}`` record) and never slows the server.

Who may attach is decided by :func:`admission`: the admin secret, or a JWT that
the server's session verifier accepts and that carries ``"wsp": {"admin": true}``.
"""

from __future__ import annotations

__all__ = [
    "ADMIN_SECRET_METHOD",
    "DEFAULT_BUDGET",
    "DEFAULT_QUEUE",
    "Feed",
    "Filters",
    "Viewer",
    "admission",
    "has_admin_claim",
]

import asyncio
import contextlib
import hmac
import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from wsproto_tools.codec import decode
from wsproto_tools.codec.crypto import Cipher
from wsproto_tools.codec.jsonform import message_to_json
from wsproto_tools.codec.schema import Batch, Deliver, Message, Sealed
from wsproto_tools.engine.auth import Grant, JwtVerifier
from wsproto_tools.exceptions import AuthenticationError, WspError
from wsproto_tools.server.fanout import encode_delivery

#: records each viewer's queue holds before the oldest are dropped (--inspect-queue)
DEFAULT_QUEUE = 10_000
#: records sent to a viewer before its task lets the server run again
SEND_BATCH = 256
#: the share of the server's time the feed may take (decoding, JSON, sending); over
#: it the sender pauses, its queue fills and the oldest records are dropped
DEFAULT_BUDGET = 0.02

# queue entries: (what, ts, session id, peer, identity, direction, data, keys/extra)
MESSAGE, EVENT, FANOUT = 0, 1, 2


#: the identity of a viewer that gave the admin secret
ADMIN_SECRET_METHOD = "admin-secret"


def admission(
    header: str | None, *, secret: bytes | None, verifier: JwtVerifier | None, now: float
) -> Grant | None:
    """Who may read the feed, from the upgrade request's ``Authorization`` header;
    None: refused (403).

    ``Bearer <secret>``, the admin secret, compared in constant time; or
    ``Bearer <JWT>``, a token that the server's JWT verifier accepts at ``now``
    (signature, ``exp``, ``nbf``, ``aud``: the rules of a session's token) and that
    carries the admin claim (:func:`has_admin_claim`). The grant's ``expires_at``
    is the token's expiry (None for the secret).
    """
    if not header or not header.startswith("Bearer "):
        return None
    credential = header[7:].strip()
    if not credential:
        return None
    if secret and hmac.compare_digest(credential.encode(), secret):
        return Grant(method=ADMIN_SECRET_METHOD)
    if verifier is None or credential.count(".") != 2:
        return None
    try:
        grant = verifier.verify(credential, now)
    except AuthenticationError:
        return None
    return grant if has_admin_claim(credential) else None


def has_admin_claim(token: str) -> bool:
    """Whether a JWT's claims hold ``"wsp": {"admin": true}`` (the JSON ``true``,
    nothing else). Reads the claims only: call it on a token that has been verified."""
    import jwt  # pyjwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    scope = claims.get("wsp")
    return isinstance(scope, dict) and scope.get("admin") is True


@dataclass(frozen=True)
class Filters:
    """What a viewer asked for (``?session=ID&topic=NAME&type=NAME``, each repeatable)."""

    sessions: frozenset[int] = frozenset()
    topics: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: str) -> Filters:
        """Raises ValueError for a session id that is not a number."""
        args = parse_qs(query)
        return cls(
            sessions=frozenset(int(v) for v in args.get("session", ())),
            topics=frozenset(args.get("topic", ())),
            types=frozenset(args.get("type", ())),
        )

    def wants(self, record: dict[str, Any]) -> bool:
        if self.types:
            wsp = record.get("wsp")
            name = wsp["type"] if wsp is not None else record["kind"]
            if name not in self.types:
                return False
        if self.topics:
            wsp = record.get("wsp")
            topic = wsp["payload"].get("topic") if wsp is not None else None
            if topic not in self.topics:
                return False
        return True


class Viewer:
    """One attached inspector: its filters, bounded queue and drop count."""

    __slots__ = ("dropped", "dropped_total", "filters", "limit", "queue", "sent", "wake")

    def __init__(self, filters: Filters, limit: int = DEFAULT_QUEUE) -> None:
        self.filters = filters
        self.limit = limit
        self.queue: deque[tuple[Any, ...]] = deque()
        self.dropped = 0  # not yet reported
        self.dropped_total = 0
        self.sent = 0
        self.wake = asyncio.Event()

    def put(self, entry: tuple[Any, ...]) -> None:
        queue = self.queue
        if len(queue) >= self.limit:
            queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        queue.append(entry)
        if not self.wake.is_set():
            self.wake.set()


class Feed:
    """The server's viewers, and the hooks the server calls while one is attached."""

    def __init__(self, queue: int = DEFAULT_QUEUE, budget: float = DEFAULT_BUDGET) -> None:
        self.queue = queue
        self.budget = budget
        self.viewers: list[Viewer] = []

    # ------------------------------------------------------------------ hooks (hot)
    def _put(self, sid: int, entry: tuple[Any, ...]) -> None:
        for viewer in self.viewers:
            sessions = viewer.filters.sessions
            if sessions and sid not in sessions:
                continue
            viewer.put(entry)

    def message(
        self, session: Any, peer: str | None, direction: str, data: bytes, version: int
    ) -> None:
        """One wsp message received from or sent to a session's peer."""
        sid = session.session_id
        keys = session.keys
        self._put(
            sid,
            (
                MESSAGE,
                time.time(),
                sid,
                peer,
                session.grant.identity if sid else None,
                direction,
                data,
                (keys, version),
            ),
        )

    def event(self, kind: str, session: Any, peer: str | None, **fields: Any) -> None:
        """A session event: connected, authenticated, resumed, closed, violation."""
        sid = session.session_id if session is not None else 0
        identity = session.grant.identity if sid else None
        self._put(sid, (EVENT, time.time(), sid, peer, identity, kind, None, fields))

    def fanout(
        self, topic: str, items: Iterable[tuple[int, Any]], subscribers: int, sids: set[int]
    ) -> None:
        """Topic messages written to ``subscribers`` sessions, encoded once: one record
        per topic message (``session`` null, ``subscribers`` N)."""
        now = time.time()
        for viewer in self.viewers:
            sessions = viewer.filters.sessions
            if sessions and not (sessions & sids):
                continue
            for epoch, entry in items:
                viewer.put(
                    (
                        FANOUT,
                        now,
                        None,
                        None,
                        None,
                        "server",
                        None,
                        (topic, epoch, entry, subscribers),
                    )
                )

    # ------------------------------------------------------------------ viewer side
    async def run(self, viewer: Viewer, send: Any) -> None:
        """Send ``viewer``'s records with ``send(text)`` until cancelled or it fails:
        each text message holds up to SEND_BATCH records, one JSON object a line."""
        self.viewers.append(viewer)
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        wants = viewer.filters.wants
        clock = time.perf_counter
        pause = 1 / self.budget - 1 if 0 < self.budget < 1 else 0.0
        owed = 0.0
        try:
            while True:
                await viewer.wake.wait()
                viewer.wake.clear()
                while viewer.queue or viewer.dropped:
                    started = clock()
                    lines = []
                    if viewer.dropped:
                        count, viewer.dropped = viewer.dropped, 0
                        lines.append(dumps({"kind": "dropped", "ts": time.time(), "count": count}))
                    queue = viewer.queue
                    for _ in range(min(len(queue), SEND_BATCH)):
                        for record in records(queue.popleft()):
                            if wants(record):
                                lines.append(dumps(record))
                    text = "\n".join(lines)
                    owed += (clock() - started) * pause
                    if lines:
                        viewer.sent += len(lines)
                        await send(text)
                    if owed > 0.002:  # keep within the budget: let the server run
                        await asyncio.sleep(owed)
                        owed = 0.0
                    else:
                        await asyncio.sleep(0)
        finally:
            with contextlib.suppress(ValueError):
                self.viewers.remove(viewer)


# ---------------------------------------------------------------------- records
def _base(entry: tuple[Any, ...], kind: str) -> dict[str, Any]:
    _, ts, sid, peer, identity, *_ = entry
    return {"kind": kind, "ts": round(ts, 6), "session": sid, "peer": peer, "identity": identity}


def records(entry: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The JSON records of one queue entry (a Batch gives one record per message)."""
    what = entry[0]
    if what == EVENT:
        record = _base(entry, entry[5])
        record.update(entry[7])
        return [record]
    if what == FANOUT:
        topic, epoch, item, subscribers = entry[7]
        record = _base(entry, "message")
        record["direction"] = "server"
        record["length"] = len(encode_delivery(topic, epoch, item.offset, item.data, 2))
        record["subscribers"] = subscribers
        record["wsp"] = message_to_json(Message(Deliver(topic, epoch, item.offset, item.data)), 2)
        return [record]
    data: bytes = entry[6]
    keys, version = entry[7]
    direction = entry[5]
    base = _base(entry, "message")
    base["direction"] = direction
    base["length"] = len(data)
    decrypted = False
    try:
        msg = decode(data, version=version)
        if type(msg.payload) is Sealed and keys is not None:
            key = keys.client_to_server if direction == "client" else keys.server_to_client
            msg = decode(data, version=version, cipher=Cipher(key))
            decrypted = True
    except WspError as error:
        base["error"] = str(error)
        base["hex"] = data.hex()
        return [base]
    if decrypted:
        base["decrypted"] = True
    if type(msg.payload) is Batch:
        out = []
        for index, item in enumerate(msg.payload.messages):
            record = dict(base)
            record["batch"] = index
            record["wsp"] = message_to_json(item, version)
            out.append(record)
        return out
    base["wsp"] = message_to_json(msg, version)
    return [base]
