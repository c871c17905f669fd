"""The sans-I/O session engine: one object per session, for either role.

Contract (as in h11/wsproto): the driver feeds decoded messages or whole
WebSocket messages in (:meth:`Session.receive`, :meth:`Session.receive_data`)
and gets :mod:`~wsproto_tools.engine.events` back; whatever the engine wants
sent waits in an outbox (:meth:`Session.messages_to_send`,
:meth:`Session.data_to_send`). Time is an argument (``now``, seconds), nonces
and ids are arguments: the engine never reads a clock or draws randomness.
Timers are the driver's: :meth:`Session.next_deadline` says when the engine next
needs :meth:`Session.on_timer`.

Handshake (docs/protocol.md, "Session protocol")::

    server: Challenge{nonce, methods}
    client: Handshake{capabilities, auth, client_nonce, token?, resume_token?,
                      last_received?}  [+ Authenticate{hmac, proof} for hmac]
    server: HandshakeResponse{session_id, capabilities, resume_token, heartbeat_ms,
                              window, resumed, last_received, server_proof?}

Delivery: application messages (Publish, TextData, BinaryData, DeltaUpdate,
Error) carry per-direction sequence numbers 1, 2, 3...; the receiver acknowledges
cumulatively (one Acknowledge per flushed burst), suppresses duplicates and
treats a gap as a protocol error; the sender keeps what is unacknowledged,
retransmits it (go-back-N) after an RFC 6298 RTO, and after a resume from the
peer's ``last_received``. Topic traffic (Subscribe, Subscribed, Deliver,
ContinuityLost) is ordered by topic offsets instead, so one encoding of a
Deliver serves every subscriber; it is re-established by re-subscribing with
offsets after every reconnect. Requests are not sequenced: they are idempotent
and re-issued by the client after a reconnect.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CAPABILITIES",
    "ClientSession",
    "Credentials",
    "ServerAuth",
    "ServerSession",
    "Session",
    "SessionConfig",
    "encode_delivery",
    "encode_delivery_batch",
]

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from wsproto_tools.codec import decode, encode
from wsproto_tools.codec.crypto import Cipher
from wsproto_tools.codec.fastpath import (
    batch_v2,
    constructor,
    decode_v2,
    encode_v2,
    message_encoder,
)
from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import (
    Acknowledge,
    Authenticate,
    Batch,
    BinaryData,
    Challenge,
    Close,
    ContinuityLost,
    Deliver,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Payload,
    Publish,
    Request,
    Response,
    Sealed,
    Subscribe,
    Subscribed,
    TextData,
    Unknown,
    Unsubscribe,
    WindowUpdate,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import (
    Grant,
    JwtVerifier,
    check_server_nonce,
    client_proof,
    server_proof,
    verify_client_proof,
    verify_server_proof,
)
from wsproto_tools.engine.history import Entry
from wsproto_tools.engine.keys import (
    ResumeClaims,
    SessionKeys,
    derive_session_keys,
    issue_resume_token,
    verify_resume_token,
)
from wsproto_tools.engine.states import Event, Origin, State, transition
from wsproto_tools.engine.timing import AdaptiveWindow, RttEstimator
from wsproto_tools.engine.vocabulary import DEFAULT_CAPABILITIES, KNOWN_CAPABILITIES
from wsproto_tools.exceptions import (
    AuthenticationError,
    CloseCode,
    LocalProtocolError,
    RemoteProtocolError,
    WspError,
)

#: Messages allowed before the session is accepted (the handshake itself).
HANDSHAKE_TYPES = (Challenge, Handshake, Authenticate, HandshakeResponse, Close)
#: Publish ids a session remembers (the largest in-flight window: a client retries
#: only what is unacknowledged).
PUBLISH_ID_MEMORY = 1024
_TRANSFORMS = int(Flags.COMPRESSED | Flags.ENCRYPTED)
BATCH_ITEMS = 512
#: Sequenced payloads from this size on are COMPRESSED when "compress" was negotiated.
COMPRESS_MIN = 128
BATCH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Tunables shared by both roles (seconds, messages)."""

    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 45.0
    window: int = 1024
    resume_lifetime: float = 300.0
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    limits: Limits = field(default_factory=Limits)
    initial_rto: float = 1.0
    min_rto: float = 0.2


@dataclass(frozen=True, slots=True)
class ServerAuth:
    """How a server authenticates: a shared secret, a JWT verifier, or neither."""

    secret: bytes | None = None
    jwt: JwtVerifier | None = None
    token_key: bytes = b""  # signs resume tokens; any node with it can verify them

    @property
    def methods(self) -> tuple[str, ...]:
        methods = []
        if self.secret is not None:
            methods.append("hmac")
        if self.jwt is not None:
            methods.append("jwt")
        return tuple(methods) or ("none",)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client authenticates with: a shared secret, a JWT, or nothing."""

    secret: bytes | None = None
    token: str | None = None

    @property
    def method(self) -> str:
        if self.secret is not None:
            return "hmac"
        if self.token is not None:
            return "jwt"
        return "none"


def _us(now: float) -> int:
    return int(now * 1_000_000)


def _held_size(payload: Payload) -> int:
    """What a kept sequenced payload is charged: its body's length plus 64 bytes."""
    body = getattr(payload, "data", None)
    if body is None:
        body = getattr(payload, "text", None) or getattr(payload, "message", None) or b""
    return len(body) + 64


# Positional constructors for the hot path (the dataclass __init__ costs twice as much).
_MESSAGE = constructor(Message)
_PUBLISH = constructor(Publish)
_REQUEST = constructor(Request)
_RESPONSE = constructor(Response)
_DELIVERY = constructor(ev.Delivery)
_PUBLISH_RECEIVED = constructor(ev.PublishReceived)
_REQUEST_RECEIVED = constructor(ev.RequestReceived)
_REPLY = constructor(ev.Reply)


class Session:
    """State, sequencing, acknowledgment, retransmission and heartbeats (both roles)."""

    __slots__ = (
        "_batch",
        "_ciphers",
        "_close_sent",
        "_compress",
        "_seal",
        "ack_pending",
        "backlog",
        "capabilities",
        "close_code",
        "close_reason",
        "config",
        "grant",
        "heartbeat_id",
        "heartbeats",
        "held",
        "keys",
        "last_rx",
        "next_heartbeat",
        "outbox",
        "peer_window",
        "recv_seq",
        "resume_token",
        "rtt",
        "send_seq",
        "session_id",
        "state",
        "stats_in",
        "stats_out",
        "unacked",
        "version",
        "window",
    )
    is_client = False
    #: payload class -> handler; each role's table is built below its class
    HANDLERS: ClassVar[dict[type[Payload], Callable[..., list[ev.Event]]]] = {}

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig()
        self.state = State.CONNECTING
        self.version = 2
        self.session_id = 0
        self.capabilities: tuple[str, ...] = ()
        self.keys: SessionKeys | None = None
        self.grant = Grant()
        self.resume_token = b""
        # outgoing sequenced stream
        self.send_seq = 0
        self.unacked: dict[int, tuple[Message, float, bool]] = {}  # insertion = seq order
        #: sequenced messages beyond the window, sent as acknowledgments make room
        self.backlog: deque[Message] | None = None
        #: what a server session keeps for its peer: unacknowledged and backlogged
        #: messages, each charged its payload length + 64 (clients: not counted)
        self.held = 0
        self.window = AdaptiveWindow(
            initial=min(64, self.config.window), minimum=4, maximum=max(64, self.config.window)
        )
        self.peer_window = self.config.window
        self.rtt = RttEstimator(initial_rto=self.config.initial_rto, min_rto=self.config.min_rto)
        # incoming sequenced stream
        self.recv_seq = 0
        self.ack_pending = 0
        # heartbeats and liveness
        self.last_rx = 0.0
        self.heartbeat_id = 0
        self.heartbeats: dict[int, float] = {}
        self.next_heartbeat: float | None = None
        # close
        self.close_code: int | None = None
        self.close_reason = ""
        self._close_sent = False
        self.outbox: list[Message] = []
        self._ciphers: tuple[Cipher, Cipher] | None = None
        self._seal = Flags.NONE  # ENCRYPTED once the session keys are in use
        self._compress = False  # COMPRESSED for large sequenced payloads when negotiated
        #: optional per-type message counters (the server's metrics)
        self.stats_in: Counter[str] | None = None
        self.stats_out: Counter[str] | None = None
        self._batch = False

    # ------------------------------------------------------------------ state
    def _go(self, event: Event, origin: Origin = Origin.REMOTE) -> None:
        self.state = transition(self.state, event, origin)

    @property
    def active(self) -> bool:
        return self.state is State.ACTIVE

    @property
    def encrypted(self) -> bool:
        """Whether messages are sealed under the session keys (per-session encoding)."""
        return bool(self._seal)

    def connection_made(self, now: float, *, version: int = 2) -> None:
        """A (new) transport is up; ``version`` is the negotiated wire version."""
        self._go(Event.OPEN, Origin.LOCAL)
        self.version = version
        self.last_rx = now
        self.heartbeats.clear()
        self._close_sent = False
        self.outbox.clear()
        self.ack_pending = 0
        self._batch = False  # capabilities and keys are renegotiated per connection
        self._ciphers = None
        self._seal = Flags.NONE
        self._compress = False

    def connection_lost(self, now: float) -> None:
        """The transport died. An established session stays resumable (Reconnecting),
        also when the connection dies again during its resume handshake."""
        if self.state in (State.CLOSED, State.RECONNECTING):
            return
        resuming = self.session_id and self.state in (State.HANDSHAKING, State.AUTHENTICATED)
        self._go(Event.RESUME_LOST if resuming else Event.LOST, Origin.LOCAL)
        self.outbox.clear()
        self.next_heartbeat = None

    def expire(self) -> None:
        """Give up on a Reconnecting session (resume window over, or retries exhausted)."""
        if self.state is State.CLOSING or self.state is State.RECONNECTING:
            self._go(Event.CLOSED, Origin.LOCAL)

    def closed(self) -> None:
        """The transport finished closing after a Close."""
        if self.state is State.CLOSING:
            self._go(Event.CLOSED, Origin.LOCAL)
        elif self.state is not State.CLOSED:
            self.connection_lost(0.0)

    # ------------------------------------------------------------------ sending
    def _send(
        self, payload: Payload, now: float, flags: Flags = Flags.NONE, *, stamp: bool = False
    ) -> Message:
        """Queue an unsequenced message (``stamp``: with the header timestamp)."""
        msg = _MESSAGE(
            payload,
            0,
            self.session_id,
            _us(now) if stamp else 0,
            flags | self._seal if self._seal else flags,
        )
        self.outbox.append(msg)
        return msg

    def _send_sequenced(self, payload: Payload, now: float, flags: Flags = Flags.NONE) -> int:
        if self.state is not State.ACTIVE:
            transition(self.state, Event.MESSAGE, Origin.LOCAL)
        self.send_seq += 1
        seq = self.send_seq
        if self._compress:
            body = getattr(payload, "data", None) or getattr(payload, "text", "")
            if isinstance(body, bytes | str) and len(body) >= COMPRESS_MIN:
                flags = flags | Flags.COMPRESSED
        if self._seal:
            flags = flags | self._seal
        msg = _MESSAGE(payload, seq, self.session_id, 0, flags)
        if self.is_client:  # the client's API waits for window room; nothing to charge
            self.unacked[seq] = (msg, now, False)
            self.outbox.append(msg)
            return seq
        self.held += _held_size(payload)
        backlog = self.backlog
        if backlog or len(self.unacked) >= min(self.window.size, self.peer_window):
            if backlog is None:
                backlog = self.backlog = deque()
            backlog.append(msg)  # the window is full: sent when acknowledgments make room
            return seq
        self.unacked[seq] = (msg, now, False)
        self.outbox.append(msg)
        return seq

    def _release(self, now: float) -> None:
        """Send backlogged sequenced messages while the window has room."""
        backlog = self.backlog
        unacked = self.unacked
        limit = min(self.window.size, self.peer_window)
        while backlog and len(unacked) < limit:
            msg = backlog.popleft()
            flags = (msg.flags & ~Flags.ENCRYPTED) | self._seal
            fresh = Message(msg.payload, msg.sequence, self.session_id, 0, flags)
            unacked[msg.sequence] = (fresh, now, False)
            self.outbox.append(fresh)

    @property
    def sent_seq(self) -> int:
        """The highest sequence number actually sent (backlogged ones are not)."""
        return self.send_seq - len(self.backlog) if self.backlog else self.send_seq

    def can_send(self) -> bool:
        """Whether the in-flight window has room for another sequenced message."""
        return len(self.unacked) < min(self.window.size, self.peer_window)

    @property
    def in_flight(self) -> int:
        return len(self.unacked)

    def send_text(self, text: str, now: float) -> int:
        return self._send_sequenced(TextData(text), now, Flags.ACK_REQUESTED)

    def send_binary(self, data: bytes, now: float) -> int:
        return self._send_sequenced(BinaryData(data), now, Flags.ACK_REQUESTED)

    def send_error(
        self, code: int, message: str, now: float, ref_sequence: int | None = None
    ) -> int:
        return self._send_sequenced(Error(int(code), message, ref_sequence), now)

    def heartbeat(self, now: float) -> int:
        """Send a probe now; its answer measures the RTT."""
        if self.state is not State.ACTIVE:
            transition(self.state, Event.MESSAGE, Origin.LOCAL)
        self.heartbeat_id += 1
        self.heartbeats[self.heartbeat_id] = now
        if len(self.heartbeats) > 16:
            del self.heartbeats[next(iter(self.heartbeats))]
        self._send(Heartbeat(self.heartbeat_id, False), now, stamp=True)
        return self.heartbeat_id

    def close(self, code: int, reason: str, now: float) -> None:
        """Start an orderly close: a Close message, then the transport's close."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        if self.state is State.RECONNECTING or self.state is State.CONNECTING:
            self.close_code, self.close_reason = code, reason
            self.state = State.CLOSED
            return
        self._go(Event.CLOSE, Origin.LOCAL)
        self.close_code, self.close_reason = int(code), reason
        self._close_sent = True
        self._send(Close(int(code), reason), now)

    def fail(self, error: WspError, now: float) -> None:
        """Close because of ``error`` with the close code it carries."""
        self.close(int(error.close_code), str(error)[:120], now)

    def messages_to_send(self) -> list[Message]:
        """Take everything queued, with one coalesced Acknowledge first if due."""
        out = self.outbox
        if self.ack_pending and self.state in (State.ACTIVE, State.CLOSING):
            self.ack_pending = 0
            out.insert(0, Message(Acknowledge(self.recv_seq), 0, self.session_id, 0, self._seal))
        self.outbox = []
        return out

    def encode(self, msg: Message) -> bytes:
        """One message in the negotiated version (and the session's cipher, if any)."""
        cipher = self._ciphers[0] if self._ciphers is not None else None
        return encode(msg, version=self.version, cipher=cipher)

    def data_to_send(self) -> list[bytes]:
        """Everything queued, encoded: one Batch when batching was negotiated."""
        messages = self.messages_to_send()
        if not messages:
            return []
        stats = self.stats_out
        if stats is not None:
            for m in messages:
                stats[type(m.payload).__name__] += 1
        if len(messages) > 1 and self._batch:
            return self._batches(messages)
        if self.version == 2 and self._ciphers is None:
            # the compiled path first (the same bytes as encode(), which takes the rest)
            return [encode_v2(m) or self.encode(m) for m in messages]
        return [self.encode(m) for m in messages]

    def _batches(self, messages: list[Message]) -> list[bytes]:
        """Batches within the peer's limits (item count, and bytes well under 1 MiB)."""
        out: list[bytes] = []
        limit = min(BATCH_ITEMS, self.config.limits.max_batch_items)
        start = 0
        while start < len(messages):
            group: list[Message] = []
            size = 0
            for msg in messages[start : start + limit]:
                payload = msg.payload
                size += len(getattr(payload, "data", b"")) + 64
                group.append(msg)
                if size > BATCH_BYTES:
                    break
            start += len(group)
            if len(group) == 1:
                out.append(self.encode(group[0]))
            else:
                out.append(self._encode_batch(group))
        return out

    def _encode_batch(self, group: list[Message]) -> bytes:
        if self.version == 2 and self._ciphers is None:
            wires: list[bytes] = []
            for msg in group:
                wire = encode_v2(msg)
                if wire is None:
                    break
                wires.append(wire)
            else:
                return batch_v2(wires, self.session_id)  # the same bytes as below
        return self.encode(_MESSAGE(Batch(tuple(group)), 0, self.session_id, 0, Flags.NONE))

    # ------------------------------------------------------------------ receiving
    def receive_data(self, data: bytes, now: float) -> list[ev.Event]:
        """Decode one whole WebSocket message and process it."""
        limits = self.config.limits
        if self._ciphers is None:
            fast = None
            if self.version == 2 and type(data) is bytes and len(data) <= limits.max_message:
                fast = decode_v2(data, limits)  # what decode() would do first, fewer layers
            msg = fast or decode(data, limits=limits)
        else:
            msg = decode(data, limits=limits, cipher=self._ciphers[1])
        return self.receive(msg, now)

    def receive(self, msg: Message, now: float) -> list[ev.Event]:
        """Process one decoded message; raise a protocol error for a broken rule."""
        self.last_rx = now
        payload = msg.payload
        if self.stats_in is not None:
            self.stats_in[type(payload).__name__] += 1
        if type(payload) is Batch:
            if not self._batch:
                raise RemoteProtocolError(
                    "Batch without the batch capability", close_code=CloseCode.WSP_UNNEGOTIATED
                )
            out: list[ev.Event] = []
            for item in payload.messages:
                out.extend(self.receive(item, now))
            return out
        if msg.flags and int(msg.flags) & _TRANSFORMS:
            self._check_flags(msg)
        if self.state is not State.ACTIVE and type(payload) not in HANDSHAKE_TYPES:
            if self.state is State.CLOSING:
                return []
            transition(self.state, Event.MESSAGE)
        handler = self.HANDLERS.get(type(payload))
        if handler is None:
            raise RemoteProtocolError(
                f"{msg.type_name} is not allowed from the "
                f"{'server' if self.is_client else 'client'}",
                close_code=CloseCode.PROTOCOL_ERROR,
            )
        return handler(self, msg, now)

    def _check_flags(self, msg: Message) -> None:
        if msg.flags & Flags.COMPRESSED and "compress" not in self.capabilities:
            raise RemoteProtocolError(
                "compressed flag without the compress capability",
                close_code=CloseCode.WSP_UNNEGOTIATED,
            )
        if msg.flags & Flags.ENCRYPTED and "encrypt" not in self.capabilities:
            raise RemoteProtocolError(
                "encrypted flag without the encrypt capability",
                close_code=CloseCode.WSP_UNNEGOTIATED,
            )

    def _accept_sequence(self, msg: Message) -> bool:
        """True for a new in-order message; False for a duplicate (re-acked)."""
        seq = msg.sequence
        expected = self.recv_seq + 1
        if seq == expected:
            self.recv_seq = seq
            self.ack_pending += 1
            return True
        self.ack_pending += 1  # answer a duplicate with the cumulative ack again
        if seq < expected:
            return False
        raise RemoteProtocolError(
            f"sequence gap: expected {expected}, got {seq}", close_code=CloseCode.PROTOCOL_ERROR
        )

    def not_applied(self, sequence: int) -> None:
        """The driver could not apply message ``sequence`` (and what followed it):
        acknowledge only what came before. The session is expected to close."""
        if 0 < sequence <= self.recv_seq:
            self.recv_seq = sequence - 1
            self.ack_pending = 1 if self.recv_seq else 0

    def _on_data(self, msg: Message, now: float) -> list[ev.Event]:
        if not self._accept_sequence(msg):
            return []
        payload = msg.payload
        if type(payload) is Error:
            return [ev.PeerError(payload.code, payload.message, payload.ref_sequence)]
        return [ev.DataReceived(payload, msg.sequence)]  # type: ignore[arg-type]

    def _on_ack(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Acknowledge = msg.payload  # type: ignore[assignment]
        seq = payload.sequence
        if seq > self.sent_seq:
            raise RemoteProtocolError(
                f"Acknowledge of sequence {seq}, but only {self.sent_seq} were sent",
                close_code=CloseCode.PROTOCOL_ERROR,
            )
        unacked = self.unacked
        if not unacked:
            return []
        first = next(iter(unacked))
        if first > seq:
            return []
        acked: list[Payload] = []
        sample: float | None = None
        pop = unacked.pop
        charged = not self.is_client  # see _send_sequenced
        # keys are consecutive sequence numbers in order (sent in order, dropped
        # from the front), so the acknowledged ones are first..seq
        for number in range(first, seq + 1):
            entry = pop(number, None)
            if entry is not None:
                kept = entry[0].payload
                acked.append(kept)
                if charged:
                    self.held -= _held_size(kept)
                if not entry[2]:
                    sample = entry[1]
        if not acked:
            return []
        if sample is not None:
            self.rtt.sample(now - sample)  # Karn: only never-retransmitted messages
        self.window.on_ack(len(acked))
        if self.backlog and self.state is State.ACTIVE:
            self._release(now)
        return [ev.Acked(seq, len(acked), tuple(acked))]

    def _on_heartbeat(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Heartbeat = msg.payload  # type: ignore[assignment]
        if not payload.reply:
            self._send(Heartbeat(payload.id, True), now, stamp=True)
            return []
        sent = self.heartbeats.pop(payload.id, None)
        if sent is None:
            raise RemoteProtocolError(
                f"Heartbeat reply to probe {payload.id} never sent",
                close_code=CloseCode.PROTOCOL_ERROR,
            )
        self.rtt.sample(now - sent)
        return [ev.HeartbeatAnswered(payload.id, now - sent)]

    def _on_close(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Close = msg.payload  # type: ignore[assignment]
        self._go(Event.CLOSE)
        if self.close_code is None:
            self.close_code, self.close_reason = payload.code, payload.reason
        if not self._close_sent:
            self._close_sent = True
            self._send(Close(int(payload.code), ""), now)
        return [ev.PeerClosed(payload.code, payload.reason)]

    def _on_window(self, msg: Message, now: float) -> list[ev.Event]:
        payload: WindowUpdate = msg.payload  # type: ignore[assignment]
        self.peer_window = max(1, payload.window)
        if self.backlog:
            self._release(now)
        return []

    def _on_unknown(self, msg: Message, now: float) -> list[ev.Event]:
        self._send(
            Error(
                int(CloseCode.UNSUPPORTED_DATA),
                f"unknown message type 0x{msg.type_code:04x} ignored",
            ),
            now,
        )
        return []

    def _on_sealed(self, msg: Message, now: float) -> list[ev.Event]:
        raise RemoteProtocolError(
            "encrypted message but no session key", close_code=CloseCode.WSP_UNNEGOTIATED
        )

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is next needed (None: no timer)."""
        if self.state is not State.ACTIVE:
            return None
        deadline = self.last_rx + self.config.heartbeat_timeout
        if self.unacked:
            _, sent_at, _ = next(iter(self.unacked.values()))
            deadline = min(deadline, sent_at + self.rtt.rto)
        if self.next_heartbeat is not None:
            deadline = min(deadline, self.next_heartbeat)
        return deadline

    def on_timer(self, now: float) -> list[ev.Event]:
        """Heartbeats, retransmissions and the dead-peer check that are due at ``now``."""
        if self.state is not State.ACTIVE:
            return []
        silent = now - self.last_rx
        if silent >= self.config.heartbeat_timeout:
            raise RemoteProtocolError(
                f"no message from the peer for {silent:.1f} s",
                close_code=CloseCode.WSP_HEARTBEAT_TIMEOUT,
            )
        out: list[ev.Event] = []
        if self.next_heartbeat is not None and now >= self.next_heartbeat:
            self.heartbeat(now)
            self.next_heartbeat = now + self.config.heartbeat_interval
        if self.unacked:
            _, sent_at, _ = next(iter(self.unacked.values()))
            if now - sent_at >= self.rtt.rto:
                out.append(self._retransmit(now))
        return out

    def _retransmit(self, now: float, after: int = 0) -> ev.Retransmitted:
        """Queue every unacked message with sequence > ``after`` again (go-back-N)."""
        count = 0
        for seq, (msg, _, _) in list(self.unacked.items()):
            if seq <= after:
                continue
            flags = (msg.flags & ~Flags.ENCRYPTED) | self._seal
            fresh = Message(msg.payload, seq, self.session_id, 0, flags)
            self.unacked[seq] = (fresh, now, True)
            self.outbox.append(fresh)
            count += 1
        if after == 0:
            self.rtt.backoff()
            self.window.on_timeout()
        return ev.Retransmitted(count, self.rtt.rto)

    def _drop_acked(self, upto: int) -> None:
        unacked = self.unacked
        while unacked:
            first = next(iter(unacked))
            if first > upto:
                break
            payload = unacked.pop(first)[0].payload
            if not self.is_client:
                self.held -= _held_size(payload)

    def _set_session(self, capabilities: tuple[str, ...], keys: SessionKeys | None) -> None:
        self.capabilities = capabilities
        self._batch = "batch" in capabilities
        self._compress = "compress" in capabilities
        self.keys = keys if "encrypt" in capabilities else None
        self._ciphers = None


# ====================================================================== server


class ServerSession(Session):
    """The server's side of one session (it can outlive its first connection)."""

    __slots__ = (
        "_hello",
        "_hello_resume",
        "_offered",
        "_pending_keys",
        "applied_ids",
        "auth",
        "server_nonce",
    )

    def __init__(self, auth: ServerAuth, config: SessionConfig | None = None) -> None:
        super().__init__(config)
        self.auth = auth
        self.server_nonce = b""
        self._hello: Handshake | None = None
        self._hello_resume: ResumeClaims | None = None
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

    def _on_handshake(self, msg: Message, now: float) -> list[ev.Event]:
        if self._hello is not None and self.state is State.HANDSHAKING:
            raise RemoteProtocolError(
                "a second Handshake on the same connection", close_code=CloseCode.PROTOCOL_ERROR
            )
        self._go(Event.HANDSHAKE)
        hello: Handshake = msg.payload  # type: ignore[assignment]
        self._hello = hello
        unknown = [c for c in hello.capabilities if c not in KNOWN_CAPABILITIES]
        if unknown:
            raise RemoteProtocolError(
                f"unknown capabilities {unknown}", close_code=CloseCode.WSP_UNNEGOTIATED
            )
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

    def _on_authenticate(self, msg: Message, now: float) -> list[ev.Event]:
        hello = self._hello
        if self.state is not State.HANDSHAKING:
            transition(self.state, Event.AUTH_OK)
        if hello is None:
            raise RemoteProtocolError(
                "Authenticate before Handshake", close_code=CloseCode.PROTOCOL_ERROR
            )
        answer: Authenticate = msg.payload  # type: ignore[assignment]
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
                resume = None  # unknown or expired: a new session is started instead
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

        The new connection's handshake result (grant, capabilities, version) replaces
        ours; unacknowledged messages after the client's ``last_received`` are sent
        again, in order.
        """
        if other.state is not State.AUTHENTICATED:
            raise LocalProtocolError("adopt() needs an authenticated connection")
        if other.grant.identity != self.grant.identity:
            raise LocalProtocolError("adopt() by a connection of another identity")
        if self.state is State.ACTIVE:
            self.connection_lost(now)
        self._go(Event.OPEN, Origin.LOCAL)
        self.version = other.version
        self.server_nonce = other.server_nonce
        self._hello = other._hello
        self._go(Event.AUTH_OK, Origin.LOCAL)
        renewed = other.grant.expires_at != self.grant.expires_at
        self.grant = other.grant
        self.last_rx = now
        self.heartbeats.clear()
        self._close_sent = False
        self.outbox = []
        self._set_session(other._offered, other._pending_keys)
        if last_received > self.sent_seq:
            raise RemoteProtocolError(
                f"resume claims {last_received} received, only {self.sent_seq} were sent",
                close_code=CloseCode.PROTOCOL_ERROR,
            )
        self._drop_acked(last_received)
        other.state = State.CLOSED
        if renewed:  # a fresh JWT: the token follows its expiry
            self._issue_resume_token(now)
        self._respond_handshake(now, resumed=True)
        self._retransmit(now, after=last_received)
        if self.backlog:
            self._release(now)

    def _respond_handshake(self, now: float, *, resumed: bool) -> None:
        hello = self._hello
        assert hello is not None
        proof = None
        if (hello.auth or "none") == "hmac" and self.auth.secret is not None:
            assert hello.client_nonce is not None
            proof = server_proof(self.auth.secret, self.server_nonce, hello.client_nonce)
        self._go(Event.ACCEPT, Origin.LOCAL)
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
        self._install_ciphers(client=False)
        self._hello = None  # not needed once answered (about 1 KiB per idle session)

    def _install_ciphers(self, *, client: bool) -> None:
        if self.keys is None:
            return
        from wsproto_tools.codec.crypto import counter_nonces

        send_key = self.keys.client_to_server if client else self.keys.server_to_client
        recv_key = self.keys.server_to_client if client else self.keys.client_to_server
        prefix = b"wspc" if client else b"wsps"
        # Nonces restart per connection; the prefix plus a per-connection epoch keeps
        # them unique: the epoch is the sequence counter at the connection's start.
        self._ciphers = (
            Cipher(send_key, counter_nonces(prefix, self.send_seq << 24)),
            Cipher(recv_key),
        )
        self._seal = Flags.ENCRYPTED

    # -------------------------------------------------------------- server messages
    def _on_publish(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Publish = msg.payload  # type: ignore[assignment]
        if not self.grant.may_publish(payload.topic):  # refused before it can be acked
            raise RemoteProtocolError(
                f"publishing to topic {payload.topic!r} is not allowed",
                close_code=CloseCode.WSP_FORBIDDEN_TOPIC,
            )
        if not self._accept_sequence(msg):
            return []
        pid = payload.id
        if pid is not None:
            ids = self.applied_ids
            if ids is None:
                ids = self.applied_ids = OrderedDict()
            if pid in ids:
                return []  # a retried publish: applied once already
            ids[pid] = None
            if len(ids) > PUBLISH_ID_MEMORY:
                ids.popitem(last=False)
        return [_PUBLISH_RECEIVED(payload.topic, payload.data, pid, msg.sequence)]

    def _on_subscribe(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Subscribe = msg.payload  # type: ignore[assignment]
        if not self.grant.may_subscribe(payload.topic):
            raise RemoteProtocolError(
                f"subscribing to topic {payload.topic!r} is not allowed",
                close_code=CloseCode.WSP_FORBIDDEN_TOPIC,
            )
        return [ev.SubscribeRequested(payload.topic, payload.from_offset, payload.epoch)]

    def _on_unsubscribe(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Unsubscribe = msg.payload  # type: ignore[assignment]
        return [ev.UnsubscribeRequested(payload.topic)]

    def _on_request(self, msg: Message, now: float) -> list[ev.Event]:
        payload: Request = msg.payload  # type: ignore[assignment]
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
        """Queue one Deliver through this session (replays; live fan-out uses
        :func:`encode_delivery` once for all subscribers)."""
        self.outbox.append(Message(Deliver(topic, epoch, offset, data), 0, 0, 0, self._seal))


Session.HANDLERS = {
    Acknowledge: Session._on_ack,
    Heartbeat: Session._on_heartbeat,
    Close: Session._on_close,
    Error: Session._on_data,
    TextData: Session._on_data,
    BinaryData: Session._on_data,
    DeltaUpdate: Session._on_data,
    WindowUpdate: Session._on_window,
    Unknown: Session._on_unknown,
    Sealed: Session._on_sealed,
}
ServerSession.HANDLERS = {
    **Session.HANDLERS,
    Handshake: ServerSession._on_handshake,
    Authenticate: ServerSession._on_authenticate,
    Publish: ServerSession._on_publish,
    Subscribe: ServerSession._on_subscribe,
    Unsubscribe: ServerSession._on_unsubscribe,
    Request: ServerSession._on_request,
}


#: Deliver's compiled v2 encoder (one that always defers to encode() if it had none)
_DELIVER_V2: Callable[..., bytes | None] = message_encoder(Deliver) or (lambda *values: None)


def encode_delivery(topic: str, epoch: int, offset: int, data: bytes, version: int) -> bytes:
    """A Deliver encoded once for every subscriber of that version (sequence 0, no session)."""
    if version == 2:
        wire = _DELIVER_V2(topic, epoch, offset, data)
        if wire is not None:
            return wire
    return encode(Message(Deliver(topic, epoch, offset, data)), version=version)


def encode_delivery_batch(topic: str, items: Sequence[tuple[int, Entry]], version: int) -> bytes:
    """Several (epoch, entry) of one topic as one Batch of Deliver, encoded once for
    every subscriber of that version that negotiated batching."""
    if version == 2:
        wires: list[bytes] = []
        for epoch, entry in items:
            wire = _DELIVER_V2(topic, epoch, entry.offset, entry.data)
            if wire is None:
                break
            wires.append(wire)
        else:
            return batch_v2(wires)
    messages = tuple(Message(Deliver(topic, epoch, e.offset, e.data)) for epoch, e in items)
    return encode(Message(Batch(messages)), version=version)


# ====================================================================== client


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

    def _on_challenge(self, msg: Message, now: float) -> list[ev.Event]:
        if self.state is not State.HANDSHAKING:
            transition(self.state, Event.CHALLENGE)
        if self._sent_hello:
            raise RemoteProtocolError(
                "Challenge after the Handshake was sent", close_code=CloseCode.PROTOCOL_ERROR
            )
        challenge: Challenge = msg.payload  # type: ignore[assignment]
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
        if method == "hmac":
            assert creds.secret is not None
            self._send(
                Authenticate(
                    "hmac", client_proof(creds.secret, challenge.nonce, self.client_nonce)
                ),
                now,
            )
        self._sent_hello = True
        return []

    def _on_handshake_response(self, msg: Message, now: float) -> list[ev.Event]:
        if self.state is not State.HANDSHAKING:
            transition(self.state, Event.ACCEPT)
        if not self._sent_hello:
            raise RemoteProtocolError(
                "HandshakeResponse before the Handshake", close_code=CloseCode.PROTOCOL_ERROR
            )
        answer: HandshakeResponse = msg.payload  # type: ignore[assignment]
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
        stray = set(granted) - set(self.config.capabilities)
        if stray:
            raise RemoteProtocolError(
                f"server granted capabilities never offered: {sorted(stray)}",
                close_code=CloseCode.WSP_UNNEGOTIATED,
            )
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
        if resumed:
            last = answer.last_received or 0
            if last > self.sent_seq:
                raise RemoteProtocolError(
                    f"resume claims {last} received, only {self.sent_seq} were sent",
                    close_code=CloseCode.PROTOCOL_ERROR,
                )
            self._drop_acked(last)
            self.resume_token = answer.resume_token or self.resume_token
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
            self._install_ciphers()
            for old in pending:
                self._send_sequenced(old.payload, now, old.flags)
        for topic in self.subscriptions:
            self._send_subscribe(topic, now)
        return [ev.Accepted(self.session_id, resumed, granted)]

    def _install_ciphers(self) -> None:
        if self.keys is None:
            return
        from wsproto_tools.codec.crypto import counter_nonces

        self._ciphers = (
            Cipher(self.keys.client_to_server, counter_nonces(b"wspc", self.send_seq << 24)),
            Cipher(self.keys.server_to_client),
        )
        self._seal = Flags.ENCRYPTED

    # -------------------------------------------------------------- client API
    def publish(self, topic: str, data: bytes, now: float, publish_id: int | None = None) -> int:
        """Queue a Publish; returns its sequence number (acknowledged by ``Acked``)."""
        return self._send_sequenced(_PUBLISH(topic, data, publish_id), now, Flags.ACK_REQUESTED)

    def subscribe(self, topic: str, now: float) -> None:
        """Subscribe (again) to ``topic``; a known cursor asks for what was missed."""
        self.subscriptions[topic] = None
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
            transition(self.state, Event.MESSAGE, Origin.LOCAL)
        self.outbox.append(
            _MESSAGE(_REQUEST(request_id, method, data), 0, self.session_id, 0, self._seal)
        )

    # -------------------------------------------------------------- client messages
    def _on_deliver(self, msg: Message, now: float) -> list[ev.Event]:
        p: Deliver = msg.payload  # type: ignore[assignment]
        cursor = self.cursors.get(p.topic)
        if cursor is None:
            if p.topic not in self.subscriptions:
                raise RemoteProtocolError(
                    f"Deliver for topic {p.topic!r} never subscribed",
                    close_code=CloseCode.PROTOCOL_ERROR,
                )
            raise RemoteProtocolError(
                f"Deliver for {p.topic!r} before Subscribed", close_code=CloseCode.PROTOCOL_ERROR
            )
        if p.epoch != cursor.epoch:
            raise RemoteProtocolError(
                f"Deliver of {p.topic!r} in epoch {p.epoch}, expected {cursor.epoch} "
                "(an epoch change needs ContinuityLost)",
                close_code=CloseCode.PROTOCOL_ERROR,
            )
        if p.offset <= cursor.last:
            return []  # a replayed duplicate
        if p.offset != cursor.last + 1:
            raise RemoteProtocolError(
                f"gap in {p.topic!r}: offset {p.offset} after {cursor.last} without ContinuityLost",
                close_code=CloseCode.PROTOCOL_ERROR,
            )
        cursor.last = p.offset
        return [_DELIVERY(p.topic, p.epoch, p.offset, p.data)]

    def _on_subscribed(self, msg: Message, now: float) -> list[ev.Event]:
        p: Subscribed = msg.payload  # type: ignore[assignment]
        cursor = self.cursors.get(p.topic)
        if cursor is None or cursor.epoch != p.epoch:
            self.cursors[p.topic] = TopicCursor(p.epoch, max(0, p.next_offset - 1))
        return [ev.SubscriptionConfirmed(p.topic, p.epoch, p.next_offset)]

    def _on_continuity_lost(self, msg: Message, now: float) -> list[ev.Event]:
        p: ContinuityLost = msg.payload  # type: ignore[assignment]
        self.cursors[p.topic] = TopicCursor(p.epoch, max(0, p.first_available - 1))
        return [ev.ContinuityLostNotice(p.topic, p.epoch, p.requested_offset, p.first_available)]

    def _on_response(self, msg: Message, now: float) -> list[ev.Event]:
        p: Response = msg.payload  # type: ignore[assignment]
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
