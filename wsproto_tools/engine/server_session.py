"""The server's side of a session: challenge, authentication, resume, pub/sub requests.

docs/protocol.md, "Session protocol" S.2: the server speaks first (Challenge),
checks the Handshake (and the hmac Authenticate), and answers with the
HandshakeResponse once the driver has chosen a new session id
(:meth:`ServerSession.accept`) or found the session to resume
(:meth:`ServerSession.adopt`).
"""

from __future__ import annotations

__all__ = ["PUBLISH_ID_MEMORY", "ServerSession"]

from collections import OrderedDict

from wsproto_tools.codec import constructor
from wsproto_tools.codec.schema import (
    Authenticate,
    Challenge,
    ContinuityLost,
    Deliver,
    Handshake,
    HandshakeResponse,
    Message,
    Publish,
    Request,
    Response,
    Subscribe,
    Subscribed,
    Unsubscribe,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import (
    Grant,
    server_proof,
    verify_client_proof,
)
from wsproto_tools.engine.keys import (
    ResumeClaims,
    SessionKeys,
    derive_session_keys,
    issue_resume_token,
    verify_resume_token,
)
from wsproto_tools.engine.rules import (
    Rule,
    broken,
    check_capabilities_known,
    check_resume_claim,
)
from wsproto_tools.engine.session import ServerAuth, Session, SessionConfig
from wsproto_tools.engine.states import Event, Origin, Role, State
from wsproto_tools.engine.vocabulary import KNOWN_CAPABILITIES
from wsproto_tools.exceptions import AuthenticationError, LocalProtocolError

#: Publish ids a session remembers (the largest in-flight window: a client retries
#: only what is unacknowledged).
PUBLISH_ID_MEMORY = 1024

_PUBLISH_RECEIVED = constructor(ev.PublishReceived)
_REQUEST_RECEIVED = constructor(ev.RequestReceived)
_RESPONSE = constructor(Response)
_MESSAGE = constructor(Message)


class ServerSession(Session):
    """The server's side of one session (it can outlive its first connection)."""

    __slots__ = (
        "_hello",
        "_offered",
        "_pending_keys",
        "applied_ids",
        "auth",
        "server_nonce",
    )
    role = Role.SERVER

    def __init__(self, auth: ServerAuth, config: SessionConfig | None = None) -> None:
        super().__init__(config)
        self.auth = auth
        self.server_nonce = b""
        self._hello: Handshake | None = None
        self.applied_ids: OrderedDict[int, None] | None = None  # made on first use
        self._pending_keys: SessionKeys | None = None
        self._offered: tuple[str, ...] = ()

    def connection_made(self, now: float, *, version: int = 2, nonce: bytes = b"") -> None:
        """Send the Challenge with the server ``nonce`` (16+ random bytes, drawn by the caller)."""
        super().connection_made(now, version=version)
        if len(nonce) < 16:
            raise LocalProtocolError("the server nonce must be at least 16 bytes")
        self.server_nonce = nonce
        self._hello = None
        self._send(Challenge(nonce, self.auth.methods), now)

    # -------------------------------------------------------------- the handshake
    def _on_handshake(self, msg: Message, hello: Handshake, now: float) -> list[ev.Event]:
        if self._hello is not None and self.state is State.HANDSHAKING:
            raise broken(Rule.HANDSHAKE_ONCE, "a second Handshake on the same connection").error()
        self._go(Event.HANDSHAKE)
        self._hello = hello
        verdict = check_capabilities_known(tuple(hello.capabilities), KNOWN_CAPABILITIES)
        if verdict is not None:
            raise verdict.error()
        method = hello.auth or "none"
        if method not in self.auth.methods:
            raise AuthenticationError(
                f"authentication method {method!r} not accepted "
                f"(server accepts {', '.join(self.auth.methods)})"
            )
        if method == "hmac":
            if not hello.client_nonce:
                raise AuthenticationError("hmac authentication without a client nonce")
            return []  # the Authenticate message follows
        if method == "jwt":
            if not hello.token:
                raise AuthenticationError("jwt authentication without a token")
            assert self.auth.jwt is not None
            return self._authenticated(self.auth.jwt.verify(hello.token, now), None, now)
        return self._authenticated(Grant(), None, now)

    def _on_authenticate(self, msg: Message, answer: Authenticate, now: float) -> list[ev.Event]:
        hello = self._hello
        if self.state is not State.HANDSHAKING:
            self._allowed(Event.AUTH_OK)
        if hello is None:
            raise broken(Rule.AUTHENTICATE, "Authenticate before Handshake").error()
        if answer.method != "hmac" or (hello.auth or "none") != "hmac":
            raise AuthenticationError(
                f"Authenticate with method {answer.method!r} "
                f"after a Handshake announcing {hello.auth!r}"
            )
        assert self.auth.secret is not None and hello.client_nonce is not None
        verify_client_proof(self.auth.secret, self.server_nonce, hello.client_nonce, answer.proof)
        keys = derive_session_keys(self.auth.secret, self.server_nonce, hello.client_nonce)
        return self._authenticated(Grant(method="hmac"), keys, now)

    def _authenticated(self, grant: Grant, keys: SessionKeys | None, now: float) -> list[ev.Event]:
        hello = self._hello
        assert hello is not None
        self._go(Event.AUTH_OK)
        self.grant = grant
        resume: ResumeClaims | None = None
        if hello.resume_token:
            try:
                resume = verify_resume_token(
                    self.auth.token_key, hello.resume_token.decode("ascii", "replace"), now
                )
            except AuthenticationError:
                resume = None  # unknown or expired: a new session (rule 19)
            if resume is not None and not resume.belongs_to(grant.identity):
                resume = None  # another identity's token: a new session, never theirs
        offered = set(hello.capabilities)
        allowed = set(self.config.capabilities)
        if keys is None:
            allowed.discard("encrypt")
        caps = tuple(sorted(offered & allowed))
        self._pending_keys = keys
        self._offered = caps
        return [
            ev.AuthSucceeded(grant, resume, hello.last_received or 0, caps, hello.client_id or "")
        ]

    def accept(self, session_id: int, now: float) -> None:
        """Start a new session with id ``session_id`` (drawn by the caller)."""
        if session_id <= 0:
            raise LocalProtocolError("session ids are positive")
        self.session_id = session_id
        self._set_session(self._offered, self._pending_keys)
        self._issue_resume_token(now)
        self._respond_handshake(now, resumed=False)

    def _issue_resume_token(self, now: float) -> None:
        """A resume token bound to the grant's identity, valid no longer than its credential."""
        grant = self.grant
        self.resume_token = issue_resume_token(
            self.auth.token_key,
            self.session_id,
            now,
            self.config.resume_lifetime,
            grant.identity,
            grant.expires_at,
        ).encode("ascii")

    def adopt(self, other: ServerSession, last_received: int, now: float) -> None:
        """Resume this (older) session over ``other``'s freshly authenticated connection.

        The new connection's handshake result (grant, capabilities, keys, version)
        replaces ours; the HandshakeResponse goes in clear, then unacknowledged
        messages after the client's ``last_received`` are sent again, in order,
        under the new connection's keys.
        """
        if other.state is not State.AUTHENTICATED:
            raise LocalProtocolError("adopt() needs an authenticated connection")
        if other.grant.identity != self.grant.identity:
            raise LocalProtocolError("adopt() by a connection of another identity")
        if self.state is State.ACTIVE or self.state is State.ERROR:
            self.connection_lost(now)
        verdict = check_resume_claim(last_received, self.sent_seq)
        if verdict is not None:
            raise verdict.error()
        self.connection_made_as(other, now)
        self._go(Event.AUTH_OK, Origin.LOCAL)
        self.grant = other.grant
        self._set_session(other._offered, other._pending_keys)
        self._drop_acked(last_received)
        other._go(Event.CLOSED, Origin.LOCAL)  # its connection now belongs to this session
        self._issue_resume_token(now)  # a fresh lifetime from this resume (and credential)
        self._respond_handshake(now, resumed=True)
        self._retransmit(now, after=last_received)
        if self.backlog:
            self._release(now)

    def connection_made_as(self, other: ServerSession, now: float) -> None:
        """Take over ``other``'s connection (version, nonce, Handshake) for a resume."""
        Session.connection_made(self, now, version=other.version)
        self.server_nonce = other.server_nonce
        self._hello = other._hello

    def _respond_handshake(self, now: float, *, resumed: bool) -> None:
        hello = self._hello
        assert hello is not None
        proof = None
        if (hello.auth or "none") == "hmac" and self.auth.secret is not None:
            assert hello.client_nonce is not None
            proof = server_proof(self.auth.secret, self.server_nonce, hello.client_nonce)
        self._go(Event.ACCEPT, Origin.LOCAL)
        self._established()  # a v1 header carries the id from the HandshakeResponse on
        self._send(
            HandshakeResponse(
                session_id=self.session_id,
                capabilities=self.capabilities,
                resume_token=self.resume_token,
                server_nonce=self.server_nonce,
                heartbeat_ms=int(self.config.heartbeat_interval * 1000),
                window=self.config.window,
                resumed=resumed,
                last_received=self.recv_seq,
                server_proof=proof,
            ),
            now,
        )
        self._install_ciphers()  # what follows the HandshakeResponse is sealed
        self._hello = None  # not needed once answered (about 1 KiB per idle session)

    # -------------------------------------------------------------- server messages
    def _on_publish(self, msg: Message, payload: Publish, now: float) -> list[ev.Event]:
        if not self.grant.may_publish(payload.topic):  # refused before it can be acked
            raise broken(
                Rule.TOPIC_ALLOWED, f"publishing to topic {payload.topic!r} is not allowed"
            ).error()
        if not self._accept_sequence(msg):
            return []
        pid = payload.id
        if pid is not None:
            ids = self.applied_ids
            if ids is None:
                ids = self.applied_ids = OrderedDict()
            if pid in ids:
                return []  # a retried publish: applied once already (rule 35)
            ids[pid] = None
            if len(ids) > PUBLISH_ID_MEMORY:
                ids.popitem(last=False)
        return [_PUBLISH_RECEIVED(payload.topic, payload.data, pid, msg.sequence)]

    def _on_subscribe(self, msg: Message, payload: Subscribe, now: float) -> list[ev.Event]:
        if not self.grant.may_subscribe(payload.topic):
            raise broken(
                Rule.TOPIC_ALLOWED, f"subscribing to topic {payload.topic!r} is not allowed"
            ).error()
        return [ev.SubscribeRequested(payload.topic, payload.from_offset, payload.epoch)]

    def _on_unsubscribe(self, msg: Message, payload: Unsubscribe, now: float) -> list[ev.Event]:
        return [ev.UnsubscribeRequested(payload.topic)]

    def _on_request(self, msg: Message, payload: Request, now: float) -> list[ev.Event]:
        return [_REQUEST_RECEIVED(payload.id, payload.method, payload.data)]

    def respond(self, request_id: int, data: bytes, now: float, status: int = 0) -> None:
        self._send(_RESPONSE(request_id, data, int(status)), now)

    def subscribed(self, topic: str, epoch: int, next_offset: int, now: float) -> None:
        self._send(Subscribed(topic, epoch, next_offset), now)

    def continuity_lost(
        self, topic: str, epoch: int, requested: int, available: int, now: float
    ) -> None:
        self._send(ContinuityLost(topic, epoch, requested, available), now)

    def deliver(self, topic: str, epoch: int, offset: int, data: bytes, now: float) -> None:
        """Queue one Deliver through this session (replays; live fan-out encodes
        once for all subscribers: server/fanout.py)."""
        self.outbox.append(_MESSAGE(Deliver(topic, epoch, offset, data), 0, 0, 0, self._seal))


ServerSession.HANDLERS = {
    **Session.HANDLERS,
    Handshake: ServerSession._on_handshake,
    Authenticate: ServerSession._on_authenticate,
    Publish: ServerSession._on_publish,
    Subscribe: ServerSession._on_subscribe,
    Unsubscribe: ServerSession._on_unsubscribe,
    Request: ServerSession._on_request,
}
