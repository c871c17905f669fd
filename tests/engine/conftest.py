"""Two engines back to back, no sockets (as wsproto's and h11's tests do).

``Pair`` carries whole encoded WebSocket messages between a ClientSession and a
ServerSession and plays a tiny server application (a Hub with history) so that
pub/sub, replay and resume can be exercised end to end without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from wsproto_tools.codec import Message, decode
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.hub import Hub
from wsproto_tools.engine.observer import Direction
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import Credentials, ServerAuth, SessionConfig

TOKEN_KEY = b"t" * 32


def nonce(n: int) -> bytes:
    return n.to_bytes(16, "big")


@dataclass
class Pair:
    auth: ServerAuth = field(
        default_factory=lambda: ServerAuth(secret=b"s3cret", token_key=TOKEN_KEY)
    )
    credentials: Credentials = field(default_factory=lambda: Credentials(secret=b"s3cret"))
    config: SessionConfig = field(default_factory=SessionConfig)
    client_config: SessionConfig | None = None
    history: int = 100
    now: float = 1000.0
    version: int = 2

    def __post_init__(self) -> None:
        self.hub = Hub(epoch=7, history=self.history)
        self.client = ClientSession(self.credentials, self.client_config or self.config)
        self.server = ServerSession(self.auth, self.config)
        self.sessions: dict[int, ServerSession] = {}
        self.subscribers: dict[str, list[ServerSession]] = {}
        self.client_events: list[ev.Event] = []
        self.server_events: list[ev.Event] = []
        self.next_id = 100
        self.nonces = 0
        self.dropped_to_server: list[bytes] = []
        #: when a list: every delivered WebSocket message, decoded without keys
        self.log: list[tuple[Direction, Message, float]] | None = None

    def _nonce(self) -> bytes:
        self.nonces += 1
        return nonce(self.nonces)

    # ------------------------------------------------------------- wiring
    def open(self) -> None:
        """A new connection: server sends its Challenge, client is connecting."""
        self.server = ServerSession(self.auth, self.config)
        self.server.connection_made(self.now, version=self.version, nonce=self._nonce())
        self.client.connection_made(self.now, version=self.version, nonce=self._nonce())

    def connect(self) -> None:
        self.open()
        self.pump()

    def lose(self) -> None:
        """The TCP connection dies: whatever is queued on both sides is lost."""
        self.client.data_to_send()
        self.server.data_to_send()
        self.client.connection_lost(self.now)
        self.server.connection_lost(self.now)
        for subs in self.subscribers.values():
            if self.server in subs:
                subs.remove(self.server)

    def to_server(self, *, drop: bool = False) -> int:
        data = self.client.data_to_send()
        if drop:
            self.dropped_to_server.extend(data)
            return 0
        for chunk in data:
            if self.log is not None:
                self.log.append((Direction.CLIENT_TO_SERVER, decode(chunk), self.now))
            self.server_events.extend(self.serve(self.server.receive_data(chunk, self.now)))
        return len(data)

    def to_client(self) -> int:
        data = self.server.data_to_send()
        for chunk in data:
            if self.log is not None:
                self.log.append((Direction.SERVER_TO_CLIENT, decode(chunk), self.now))
            self.client_events.extend(self.client.receive_data(chunk, self.now))
        return len(data)

    def pump(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            if not (self.to_server() + self.to_client()):
                return

    def tick(self, dt: float) -> list[ev.Event]:
        self.now += dt
        out = self.client.on_timer(self.now)
        self.server_events.extend(self.server.on_timer(self.now))
        self.client_events.extend(out)
        return out

    # ------------------------------------------------------------- the server app
    def serve(self, events: list[ev.Event]) -> list[ev.Event]:
        for event in events:
            if isinstance(event, ev.AuthSucceeded):
                old = self.sessions.get(event.resume.session_id) if event.resume else None
                if old is not None:
                    old.adopt(self.server, event.last_received, self.now)
                    self.server = old
                else:
                    self.next_id += 1
                    self.server.accept(self.next_id, self.now)
                    self.sessions[self.next_id] = self.server
            elif isinstance(event, ev.PublishReceived):
                entry = self.hub.publish(event.topic, event.data, self.now)
                for sub in self.subscribers.get(event.topic, []):
                    sub.deliver(event.topic, self.hub.epoch, entry.offset, entry.data, self.now)
            elif isinstance(event, ev.SubscribeRequested):
                answer = self.hub.subscribe(event.topic, event.from_offset, event.epoch, self.now)
                if answer.lost is not None:
                    lost = answer.lost
                    self.server.continuity_lost(
                        event.topic, lost.epoch, lost.requested + 1, lost.available, self.now
                    )
                self.server.subscribed(event.topic, answer.epoch, answer.next_offset, self.now)
                for entry in answer.replay:
                    self.server.deliver(
                        event.topic, answer.epoch, entry.offset, entry.data, self.now
                    )
                subs = self.subscribers.setdefault(event.topic, [])
                if self.server not in subs:
                    subs.append(self.server)
            elif isinstance(event, ev.RequestReceived):
                self.server.respond(event.id, event.data, self.now)
            elif isinstance(event, ev.DataReceived):
                pass
        return events

    def deliveries(self) -> list[tuple[str, int, bytes]]:
        return [
            (e.topic, e.offset, e.data) for e in self.client_events if isinstance(e, ev.Delivery)
        ]


@pytest.fixture
def make_pair() -> type[Pair]:
    """The Pair class (tests build pairs with the options they need)."""
    return Pair
