"""The client's side of a session: handshake, resume, topic cursors, exactly-once delivery.

docs/protocol.md, "Session protocol": the client answers the server's Challenge
with its Handshake (and, for hmac, its Authenticate at once), checks the
server's proof and grant, and after every reconnect resumes (or renumbers what
was never acknowledged) and subscribes again from its cursors.
"""

from __future__ import annotations

__all__ = ["ClientSession", "TopicCursor"]

from dataclasses import dataclass

from wsproto_tools.codec import constructor
from wsproto_tools.codec.schema import (
    Authenticate,
    Challenge,
    ContinuityLost,
    Deliver,
    Flags,
    Handshake,
    HandshakeResponse,
    Message,
    Payload,
    Publish,
    Request,
    Response,
    Subscribe,
    Subscribed,
    Unsubscribe,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import check_server_nonce, client_proof, verify_server_proof
from wsproto_tools.engine.keys import derive_session_keys
from wsproto_tools.engine.rules import (
    Rule,
    broken,
    check_deliver,
    check_granted,
    check_resume_claim,
)
from wsproto_tools.engine.session import Credentials, Session, SessionConfig
from wsproto_tools.engine.states import Event, Origin, Role, State
from wsproto_tools.exceptions import AuthenticationError, LocalProtocolError

_PUBLISH = constructor(Publish)
_REQUEST = constructor(Request)
_DELIVERY = constructor(ev.Delivery)
_REPLY = constructor(ev.Reply)
_MESSAGE = constructor(Message)


@dataclass(slots=True)
class TopicCursor:
    epoch: int
    last: int  # last offset delivered to the application (0: none yet)


class ClientSession(Session):
    """The client's side: handshake, resume, topic cursors and exactly-once delivery."""

    __slots__ = (
        "_hb_interval",
        "_sent_hello",
        "client_id",
        "client_nonce",
        "credentials",
        "cursors",
        "server_nonce",
        "subscriptions",
    )

    is_client = True
    role = Role.CLIENT

    def __init__(
        self,
        credentials: Credentials | None = None,
        config: SessionConfig | None = None,
        *,
        client_id: str = "",
    ) -> None:
        super().__init__(config)
        self.credentials = credentials or Credentials()
        self.client_id = client_id
        self.client_nonce = b""
        self.server_nonce = b""
        self.cursors: dict[str, TopicCursor] = {}
        self.subscriptions: dict[str, None] = {}
        self._sent_hello = False
        self._hb_interval = self.config.heartbeat_interval

    def connection_made(self, now: float, *, version: int = 2, nonce: bytes = b"") -> None:
        """A transport is up; ``nonce`` is the client nonce (16+ random bytes)."""
        super().connection_made(now, version=version)
        if len(nonce) < 16:
            raise LocalProtocolError("the client nonce must be at least 16 bytes")
        self.client_nonce = nonce
        self._sent_hello = False

    # -------------------------------------------------------------- the handshake
    def _on_challenge(self, msg: Message, challenge: Challenge, now: float) -> list[ev.Event]:
        if self.state is not State.HANDSHAKING:
            self._allowed(Event.CHALLENGE)
        if self._sent_hello:
            raise broken(Rule.HANDSHAKE_ONCE, "Challenge after the Handshake was sent").error()
        check_server_nonce(challenge.nonce)  # HandshakeError (1002): 16 to 256 bytes
        self._go(Event.CHALLENGE)
        self.server_nonce = challenge.nonce
        creds = self.credentials
        method = creds.method
        if method not in challenge.methods:
            raise AuthenticationError(
                f"the server does not accept {method!r} authentication "
                f"(it accepts {', '.join(challenge.methods) or 'nothing'})"
            )
        resuming = bool(self.resume_token) and self.session_id != 0
        self._send(
            Handshake(
                capabilities=self.config.capabilities,
                client_id=self.client_id or None,
                auth=method,
                token=creds.token if method == "jwt" else None,
                client_nonce=self.client_nonce,
                resume_token=self.resume_token if resuming else None,
                last_received=self.recv_seq if resuming else None,
            ),
            now,
        )
        if method == "hmac":  # at once, without waiting (S.2)
            assert creds.secret is not None
            self._send(
                Authenticate(
                    "hmac", client_proof(creds.secret, challenge.nonce, self.client_nonce)
                ),
                now,
            )
        self._sent_hello = True
        return []

    def _on_handshake_response(
        self, msg: Message, answer: HandshakeResponse, now: float
    ) -> list[ev.Event]:
        if self.state is not State.HANDSHAKING:
            self._allowed(Event.ACCEPT)
        if not self._sent_hello:
            raise broken(Rule.CHALLENGE_FIRST, "HandshakeResponse before the Handshake").error()
        keys = None
        if self.credentials.method == "hmac":
            assert self.credentials.secret is not None
            verify_server_proof(
                self.credentials.secret,
                self.server_nonce,
                self.client_nonce,
                answer.server_proof or b"",
            )
            keys = derive_session_keys(
                self.credentials.secret, self.server_nonce, self.client_nonce
            )
        self._go(Event.AUTH_OK)
        self._go(Event.ACCEPT)
        granted = tuple(answer.capabilities)
        verdict = check_granted(granted, tuple(self.config.capabilities))
        if verdict is not None:
            raise verdict.error()
        resumed = bool(answer.resumed) and answer.session_id == self.session_id
        self._set_session(granted, keys)
        if answer.window:
            self.peer_window = answer.window
        if answer.heartbeat_ms:
            interval = min(answer.heartbeat_ms / 1000, self.config.heartbeat_interval)
            self._hb_interval = interval
        else:
            self._hb_interval = self.config.heartbeat_interval
        self.next_heartbeat = now + self._hb_interval
        acked: list[Payload] = []
        last = 0
        if resumed:
            last = answer.last_received or 0
            verdict = check_resume_claim(last, self.sent_seq)
            if verdict is not None:
                raise verdict.error()
            acked = self._drop_acked(last)  # received before the connection was lost
            self.resume_token = answer.resume_token or self.resume_token
            self._established()
            self._install_ciphers()
            self._retransmit(now, after=last)
            if self.backlog:
                self._release(now)
        else:
            # A new session: renumber what was never acknowledged and send it again.
            pending = [m for m, _, _ in self.unacked.values()]
            pending.extend(self.backlog or ())
            self.backlog = None
            self.held = 0
            self.session_id = answer.session_id
            self.resume_token = answer.resume_token or b""
            self.send_seq = 0
            self.recv_seq = 0
            self.unacked.clear()
            self._established()
            self._install_ciphers()
            for old in pending:
                self._send_sequenced(old.payload, now, old.flags & ~Flags.ENCRYPTED)
        for topic in self.subscriptions:
            self._send_subscribe(topic, now)
        accepted = ev.Accepted(self.session_id, resumed, granted)
        if resumed and acked:  # their acknowledgment is this answer's last_received
            return [accepted, ev.Acked(last, len(acked), tuple(acked))]
        return [accepted]

    # -------------------------------------------------------------- client API
    def publish(self, topic: str, data: bytes, now: float, publish_id: int | None = None) -> int:
        """Queue a Publish; returns its sequence number (acknowledged by ``Acked``)."""
        return self._send_sequenced(_PUBLISH(topic, data, publish_id), now, Flags.ACK_REQUESTED)

    def subscribe(
        self, topic: str, now: float, *, from_offset: int | None = None,
        epoch: int | None = None,
    ) -> None:
        """Subscribe (again) to ``topic``; a known cursor asks for what was missed.

        ``from_offset`` (of ``epoch``, when known) asks for the topic's history from
        that offset instead; the cursor starts there."""
        self.subscriptions[topic] = None
        if from_offset is not None:
            # epoch 0 (never a topic's): "the epoch the Subscribed answer names"
            self.cursors[topic] = TopicCursor(epoch or 0, max(0, from_offset - 1))
            if self.state is State.ACTIVE:
                self._send(Subscribe(topic, from_offset, epoch), now)
            return
        if self.state is State.ACTIVE:
            self._send_subscribe(topic, now)

    def _send_subscribe(self, topic: str, now: float) -> None:
        cursor = self.cursors.get(topic)
        if cursor is None:
            self._send(Subscribe(topic), now)
        else:
            self._send(Subscribe(topic, cursor.last + 1, cursor.epoch), now)

    def unsubscribe(self, topic: str, now: float) -> None:
        self.subscriptions.pop(topic, None)
        self.cursors.pop(topic, None)
        if self.state is State.ACTIVE:
            self._send(Unsubscribe(topic), now)

    def request(self, request_id: int, method: str, data: bytes, now: float) -> None:
        """Queue a Request (not sequenced: the caller re-issues it after a reconnect)."""
        if self.state is not State.ACTIVE:
            self._allowed(Event.MESSAGE, Origin.LOCAL)
        self.outbox.append(
            _MESSAGE(_REQUEST(request_id, method, data), 0, self._hdr_sid, 0, self._seal)
        )

    # -------------------------------------------------------------- client messages
    def _on_deliver(self, msg: Message, p: Deliver, now: float) -> list[ev.Event]:
        cursor = self.cursors.get(p.topic)
        if cursor is None or p.epoch != cursor.epoch or p.offset != cursor.last + 1:
            verdict = check_deliver(
                p.topic,
                p.epoch,
                p.offset,
                None if cursor is None else (cursor.epoch, cursor.last),
                p.topic in self.subscriptions,
            )
            if verdict is not None and verdict.close_code:
                raise verdict.error()
            return []  # a replayed duplicate (rule 38)
        cursor.last = p.offset
        return [_DELIVERY(p.topic, p.epoch, p.offset, p.data)]

    def _on_subscribed(self, msg: Message, p: Subscribed, now: float) -> list[ev.Event]:
        cursor = self.cursors.get(p.topic)
        if cursor is not None and cursor.epoch == 0:  # asked from an offset, epoch unknown
            self.cursors[p.topic] = TopicCursor(p.epoch, cursor.last)
        elif cursor is None or cursor.epoch != p.epoch:
            self.cursors[p.topic] = TopicCursor(p.epoch, max(0, p.next_offset - 1))
        return [ev.SubscriptionConfirmed(p.topic, p.epoch, p.next_offset)]

    def _on_continuity_lost(self, msg: Message, p: ContinuityLost, now: float) -> list[ev.Event]:
        cursor = self.cursors.get(p.topic)
        last = max(0, p.first_available - 1)
        if cursor is not None and cursor.epoch == p.epoch and cursor.last > last:
            last = cursor.last  # never backwards: offsets it has are duplicates (rule 38)
        self.cursors[p.topic] = TopicCursor(p.epoch, last)
        return [ev.ContinuityLostNotice(p.topic, p.epoch, p.requested_offset, p.first_available)]

    def _on_response(self, msg: Message, p: Response, now: float) -> list[ev.Event]:
        return [_REPLY(p.id, p.data, p.status)]


ClientSession.HANDLERS = {
    **Session.HANDLERS,
    Challenge: ClientSession._on_challenge,
    HandshakeResponse: ClientSession._on_handshake_response,
    Deliver: ClientSession._on_deliver,
    Subscribed: ClientSession._on_subscribed,
    ContinuityLost: ClientSession._on_continuity_lost,
    Response: ClientSession._on_response,
}
