"""The sans-I/O session engine: what both roles share.

Contract (as in h11/wsproto): the driver feeds decoded messages or whole
WebSocket messages in (:meth:`Session.receive`, :meth:`Session.receive_data`)
and gets :mod:`~wsproto_tools.engine.events` back; whatever the engine wants
sent waits in an outbox (:meth:`Session.messages_to_send`,
:meth:`Session.data_to_send`). Time is an argument (``now``, seconds), nonces
and ids are arguments: the engine never reads a clock or draws randomness.
Timers are the driver's: :meth:`Session.next_deadline` says when the engine next
needs :meth:`Session.on_timer`.

The parts: :mod:`.states` (the state table, the only writer of ``state``),
:mod:`.rules` (every protocol rule), :mod:`.sequencing` (numbering, acks,
retransmission), :mod:`.outbox` (batching, ciphers, encoding), and the two roles,
:mod:`.server_session` and :mod:`.client_session`. docs/architecture.md, "The
session", shows how a message flows through them.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CAPABILITIES",
    "Credentials",
    "ServerAuth",
    "Session",
    "SessionConfig",
]

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from wsproto_tools.codec import decode
from wsproto_tools.codec.crypto import Cipher
from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import (
    Acknowledge,
    Authenticate,
    Batch,
    BinaryData,
    Challenge,
    Close,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Payload,
    Sealed,
    TextData,
    Unknown,
    WindowUpdate,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import Grant, JwtVerifier
from wsproto_tools.engine.keys import SessionKeys
from wsproto_tools.engine.outbox import Outbox
from wsproto_tools.engine.rules import (
    check_answer_time,
    check_batch,
    check_direction,
    check_flags,
    check_sealed,
    check_session_id,
    check_silence,
    unknown_probe,
)
from wsproto_tools.engine.sequencing import Sequencing
from wsproto_tools.engine.states import Event, Origin, State, Stateful
from wsproto_tools.engine.timing import AdaptiveWindow, RttEstimator
from wsproto_tools.engine.vocabulary import DEFAULT_CAPABILITIES, SEQUENCED
from wsproto_tools.exceptions import (
    CloseCode,
    DecodeError,
    LocalProtocolError,
    RemoteProtocolError,
    WspError,
)

#: Messages allowed before the session is accepted (the handshake itself).
HANDSHAKE_TYPES = (Challenge, Handshake, Authenticate, HandshakeResponse, Close)
_TRANSFORMS = int(Flags.COMPRESSED | Flags.ENCRYPTED)


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


_Handler = Callable[..., list[ev.Event]]


class Session(Sequencing, Outbox, Stateful):
    """State, heartbeats, close and dispatch (both roles); sequencing and the outbox
    come from their mixins."""

    __slots__ = (
        "_batch",
        "_ciphers",
        "_close_sent",
        "_compress",
        "_hdr_sid",
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
    HANDLERS: ClassVar[dict[type[Payload], _Handler]] = {}

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.config = config or SessionConfig()
        self._start()
        self.version = 2
        self.session_id = 0
        self._hdr_sid = 0  # the header's session id: v1 carries it, v2 leaves it out
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
    @property
    def active(self) -> bool:
        return self.state is State.ACTIVE

    def connection_made(self, now: float, *, version: int = 2) -> None:
        """A (new) transport is up; ``version`` is the negotiated wire version."""
        self._go(Event.OPEN, Origin.LOCAL)
        self.version = version
        self.last_rx = now
        self.heartbeats.clear()
        self.heartbeat_id = 0  # probe ids are per connection
        self._close_sent = False
        self.outbox.clear()
        self.ack_pending = 0
        self._batch = False  # capabilities and keys are renegotiated per connection
        self._ciphers = None
        self._seal = Flags.NONE
        self._compress = False
        self._hdr_sid = 0

    def connection_lost(self, now: float) -> None:
        """The transport died. An established session stays resumable (Reconnecting),
        also when the connection dies again during its resume handshake or after a
        protocol error on it."""
        if self.state in (State.CLOSED, State.RECONNECTING):
            return
        resuming = self.session_id and self.state in (
            State.HANDSHAKING, State.AUTHENTICATED, State.ERROR
        )
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

    def _established(self) -> None:
        """The session id is known for this connection: the header carries it in v1."""
        self._hdr_sid = self.session_id if self.version == 1 else 0

    # ------------------------------------------------------------------ sending
    def send_text(self, text: str, now: float) -> int:
        return self._send_sequenced(TextData(text), now, Flags.ACK_REQUESTED)

    def send_binary(self, data: bytes, now: float) -> int:
        return self._send_sequenced(BinaryData(data), now, Flags.ACK_REQUESTED)

    def send_payload(self, payload: Payload, now: float) -> int:
        """Send any application payload as the session sends its own: sequenced (and
        acknowledged) for the sequenced types (TextData, BinaryData, DeltaUpdate,
        Error, Publish: docs/protocol.md S.4), else unsequenced; sealed and compressed
        as negotiated. Returns the sequence number (0: unsequenced). For drivers that
        send messages they did not compose (the replayer)."""
        if isinstance(payload, SEQUENCED):
            flags = Flags.NONE if isinstance(payload, Error) else Flags.ACK_REQUESTED
            return self._send_sequenced(payload, now, flags)
        if self.state is not State.ACTIVE:
            self._allowed(Event.MESSAGE, Origin.LOCAL)
        self._send(payload, now)
        return 0

    def send_error(
        self, code: int, message: str, now: float, ref_sequence: int | None = None
    ) -> int:
        return self._send_sequenced(Error(int(code), message, ref_sequence), now)

    def heartbeat(self, now: float) -> int:
        """Send a probe now; its answer measures the RTT."""
        if self.state is not State.ACTIVE:
            self._allowed(Event.MESSAGE, Origin.LOCAL)
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
            self._go(Event.CLOSED, Origin.LOCAL)  # no transport to say it on
            return
        self._go(Event.CLOSE, Origin.LOCAL)
        self.close_code, self.close_reason = int(code), reason
        self._close_sent = True
        self._send(Close(int(code), reason), now)

    def fail(self, error: WspError, now: float) -> None:
        """Close because of ``error`` with the close code it carries."""
        self.close(int(error.close_code), str(error)[:120], now)

    # ------------------------------------------------------------------ receiving
    def receive_data(self, data: bytes, now: float) -> list[ev.Event]:
        """Decode one whole WebSocket message and process it."""
        return self.receive(self.decode_data(data), now)  # which fails the session itself

    def decode_data(self, data: bytes) -> Message:
        """Decode (and decrypt, under the session keys) one whole WebSocket message
        without processing it: :meth:`receive_data` is ``receive(decode_data(data))``,
        for a driver that also keeps what it received (the replayer)."""
        limits = self.config.limits
        try:
            if self._ciphers is None:
                msg = decode(data, limits=limits, version=self.version)
            else:
                msg = decode(data, limits=limits, cipher=self._ciphers[1], version=self.version)
                if self.state is State.ACTIVE:
                    verdict = check_sealed(msg.flags)
                    if verdict is not None:
                        raise verdict.error()
        except RemoteProtocolError as error:
            self._failed()
            if isinstance(error, DecodeError):
                verdict = check_flags(_header_flags(data, self.version), self.capabilities)
                if verdict is not None:  # rule 22 before the payload: an ungranted flag
                    raise verdict.error() from None  # is 4007, whatever its payload holds
            raise
        return msg

    def _failed(self) -> None:
        """The peer broke a rule: the session takes nothing more (ERROR)."""
        state = self.state
        if state is not State.ERROR and state is not State.CLOSING and state is not State.CLOSED:
            self._go(Event.FAIL)

    def receive(self, msg: Message, now: float) -> list[ev.Event]:
        """Process one decoded message; raise a protocol error for a broken rule."""
        state = self.state
        if state is State.ERROR:
            raise LocalProtocolError("the session failed; only its Close may be sent")
        self.last_rx = now
        payload = msg.payload
        ptype = type(payload)
        if self.stats_in is not None:
            self.stats_in[ptype.__name__] += 1
        try:
            if type(payload) is Batch:
                if not self._batch:
                    verdict = check_batch(self.capabilities)
                    if verdict is not None:
                        raise verdict.error()
                out: list[ev.Event] = []
                for item in payload.messages:
                    out.extend(self.receive(item, now))
                return out
            if msg.flags and int(msg.flags) & _TRANSFORMS:
                verdict = check_flags(msg.flags, self.capabilities)
                if verdict is not None:
                    raise verdict.error()
            if state is not State.ACTIVE:
                if ptype not in HANDSHAKE_TYPES:
                    if state is State.CLOSING:
                        return []  # drained (rule 41)
                    self._allowed(Event.MESSAGE)
            elif msg.session_id:
                verdict = check_session_id(msg.session_id, self.session_id)
                if verdict is not None:
                    raise verdict.error()
            handler = self.HANDLERS.get(ptype)
            if handler is None:
                verdict = check_direction(ptype, self.is_client)
                raise (verdict.error() if verdict is not None else RemoteProtocolError(
                    f"{msg.type_name} is not allowed here", close_code=CloseCode.PROTOCOL_ERROR
                ))
            return handler(self, msg, payload, now)
        except RemoteProtocolError:
            self._failed()
            raise

    def _on_heartbeat(self, msg: Message, payload: Heartbeat, now: float) -> list[ev.Event]:
        if not payload.reply:
            self._send(Heartbeat(payload.id, True), now, stamp=True)
            return []
        sent = self.heartbeats.pop(payload.id, None)
        if sent is None:
            raise unknown_probe(payload.id, "client" if self.is_client else "server").error()
        self.rtt.sample(now - sent)
        return [ev.HeartbeatAnswered(payload.id, now - sent)]

    def _on_close(self, msg: Message, payload: Close, now: float) -> list[ev.Event]:
        self._go(Event.CLOSE)
        if self.close_code is None:
            self.close_code, self.close_reason = payload.code, payload.reason
        if not self._close_sent:
            self._close_sent = True
            self._send(Close(int(payload.code), ""), now)
        return [ev.PeerClosed(payload.code, payload.reason)]

    def _on_window(self, msg: Message, payload: WindowUpdate, now: float) -> list[ev.Event]:
        self.peer_window = max(1, payload.window)
        if self.backlog:
            self._release(now)
        return []

    def _on_unknown(self, msg: Message, payload: Unknown, now: float) -> list[ev.Event]:
        self._send(
            Error(
                int(CloseCode.UNSUPPORTED_DATA),
                f"unknown message type 0x{msg.type_code:04x} ignored",
            ),
            now,
        )
        return []

    def _on_sealed(self, msg: Message, payload: Sealed, now: float) -> list[ev.Event]:
        raise RemoteProtocolError(
            "encrypted message but no session key", close_code=CloseCode.WSP_UNNEGOTIATED
        )

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is next needed (None: no timer)."""
        if self.state is not State.ACTIVE:
            return None
        deadline = self.last_rx + self.config.heartbeat_timeout
        if self.heartbeats:  # the oldest unanswered probe (rule 32)
            deadline = min(deadline, next(iter(self.heartbeats.values()))
                           + self.config.heartbeat_timeout)
        if self.unacked:
            _, sent_at, _ = next(iter(self.unacked.values()))
            deadline = min(deadline, sent_at + self.rtt.rto)
        if self.next_heartbeat is not None:
            deadline = min(deadline, self.next_heartbeat)
        return deadline

    def on_timer(self, now: float) -> list[ev.Event]:
        """Heartbeats, retransmissions and the dead-peer check that are due at ``now``.

        A silent peer (rule 33) or a probe unanswered for the heartbeat timeout
        (rule 32) raises, but the session stays resumable: it is not a broken rule of
        a message, so the state does not become ERROR."""
        if self.state is not State.ACTIVE:
            return []
        timeout = self.config.heartbeat_timeout
        verdict = check_silence(now - self.last_rx, timeout)
        if verdict is None and self.heartbeats:
            probe, sent = next(iter(self.heartbeats.items()))
            verdict = check_answer_time(probe, now - sent, timeout, inclusive=True)
        if verdict is not None:
            raise verdict.error()
        out: list[ev.Event] = []
        if self.next_heartbeat is not None and now >= self.next_heartbeat:
            self.heartbeat(now)
            self.next_heartbeat = now + self.config.heartbeat_interval
        if self.unacked:
            _, sent_at, _ = next(iter(self.unacked.values()))
            if now - sent_at >= self.rtt.rto:
                out.append(self._retransmit(now))
        return out

    def _set_session(self, capabilities: tuple[str, ...], keys: SessionKeys | None) -> None:
        self.capabilities = capabilities
        self._batch = "batch" in capabilities
        self._compress = "compress" in capabilities
        self.keys = keys if "encrypt" in capabilities else None
        self._ciphers = None
        self._seal = Flags.NONE  # the HandshakeResponse goes in clear (rule 18)


Session.HANDLERS = {
    Acknowledge: Session._on_ack,
    Heartbeat: Session._on_heartbeat,
    Close: Session._on_close,
    Error: Session._on_error,
    TextData: Session._on_data,
    BinaryData: Session._on_data,
    DeltaUpdate: Session._on_data,
    WindowUpdate: Session._on_window,
    Unknown: Session._on_unknown,
    Sealed: Session._on_sealed,
}


def _header_flags(data: bytes, version: int) -> int:
    """The COMPRESSED and ENCRYPTED bits of a message's header, read without
    decoding it (0 when the header is too short or not a header at all)."""
    if version == 2:
        head = data[0] if data else 0
        return head & 0x03 if 0x40 <= head <= 0x7F else 0
    return data[3] & 0x03 if len(data) >= 4 and data[:2] == b"\xd1\xc0" else 0
