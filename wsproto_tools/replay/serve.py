"""``wsp replay INPUT --serve``: play the recorded server side to live clients.

A :class:`ReplayServer` listens and gives each client that connects one recorded
connection of the cassette: one whose request path is the client's and whose
offered subprotocols overlap the client's (several: in recorded order, one per
client, round robin when more clients come than there are recordings). It
answers with the recorded subprotocol (the first recorded one the client also
offers) and negotiates permessage-deflate when the recording had it and the
client offers it. A client no recording fits is refused before the upgrade (404
for an unknown path, 400 for subprotocols that do not overlap).

Then the recorded server plays (replay/responder.py matches each client message
to the step it stands for): the server's opening messages at once, the answers
of each step, the recorded close after the step it followed. ``timing="fast"``
(or ``"causal"``: answers always wait for the client message they follow) sends
the answers at once; ``"original"`` keeps their recorded gaps (divided by
``speed``), in order. Plain WebSocket recordings are played as the messages recorded; wsp
sessions through the engine (:class:`~wsproto_tools.engine.server_session.ServerSession`):
the handshake with the credentials given (a secret, a JWT key), acks,
heartbeats, sequencing and encryption are the engine's, and the recorded
application messages are sent through the session with the live client's
request ids and topics bound in. A client's protocol violation closes its
session with the documented close code, as ``wsp serve`` does.

Each client's connection is logged (:class:`ClientLog`): the recording it
played, what it sent and what each message stood for, what was answered, and
how it closed.
"""

from __future__ import annotations

__all__ = ["ClientLog", "Received", "ReplayServer", "ServeOptions", "serve_recording"]

import asyncio
import contextlib
import dataclasses
import http
import os
import secrets
import ssl
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse
from websockets.typing import Subprotocol

from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import (
    Close,
    Deliver,
    Error,
    HandshakeResponse,
    Payload,
    Publish,
    Request,
    Sealed,
    Subscribe,
    Unsubscribe,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import JwtVerifier
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import DEFAULT_CAPABILITIES, ServerAuth, SessionConfig
from wsproto_tools.engine.states import State
from wsproto_tools.exceptions import CloseCode, ConfigError, RemoteProtocolError, WspError
from wsproto_tools.replay.cassette import Cassette, CassetteMessage
from wsproto_tools.replay.plan import Script, script_of
from wsproto_tools.replay.responder import Match, Responder, flatten_batches
from wsproto_tools.transports.wsio import (
    RESUMABLE_CODES,
    clock,
    close_for,
    closing_after,
    flush,
    nonce,
    peer_label,
    sendable,
    version_of,
)

#: Capabilities granted when the recording holds no HandshakeResponse to copy.
SERVER_CAPABILITIES = (*DEFAULT_CAPABILITIES, "compress", "encrypt")


@dataclass
class ServeOptions:
    """How ``wsp replay --serve`` listens and plays (seconds, bytes).

    ``secret`` / ``jwt_key`` authenticate wsp sessions as ``wsp serve`` does;
    with neither (and without ``no_auth``), a secret is generated
    (:attr:`ReplayServer.secret`) when the cassette holds a wsp session.
    ``strict``: a client message that matches no recorded message exactly (or as
    JSON, or by its wsp key) is unmatched instead of standing for the next step
    by position.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    timing: str = "fast"  # "fast" (or "causal", the same) or "original"
    speed: float = 1.0
    strict: bool = False
    secret: bytes | None = None
    jwt_key: bytes | None = None
    jwt_audience: str | None = None
    token_key: bytes | None = None
    no_auth: bool = False  # accept wsp sessions without credentials (auth method "none")
    ssl: ssl.SSLContext | None = None
    handshake_timeout: float = 10.0
    close_timeout: float = 2.0
    max_message_size: int = 1 << 20
    #: what is logged, bounded: client messages per connection (the rest are only
    #: counted), and connections (the oldest logs go first)
    max_log: int = 10_000
    max_clients: int = 1_000
    #: called with each client's log when its connection has ended
    on_client: Callable[[ClientLog], None] | None = None


@dataclass(slots=True)
class Received:
    """One client message: when (seconds from the connection's start), a short
    ``summary``, and the recorded ``step`` it stood for (None: unmatched) and ``how``."""

    t: float
    opcode: str
    summary: str
    step: int | None
    how: str

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "opcode": self.opcode, "summary": self.summary,
                "step": self.step, "how": self.how}


@dataclass(slots=True)
class ClientLog:
    """What one client connection did. ``conn`` is the recorded connection played
    (None: refused, ``error`` says why); ``sent`` holds the answers as sent (wsp
    messages with the live values bound in; ``t`` from the connection's start);
    ``skipped`` counts recorded answers that could not be sent (sealed without
    keys, or after the session ended); ``closed_by`` is ``"server"``, ``"client"``
    or ``"cut"``."""

    client: int
    peer: str | None
    path: str
    conn: int | None = None
    subprotocol: str | None = None
    wsp: bool = False
    received: list[Received] = field(default_factory=list)
    sent: list[CassetteMessage] = field(default_factory=list)
    skipped: int = 0
    #: client messages received but not kept in ``received`` (over ServeOptions.max_log)
    unlogged: int = 0
    #: client messages that stood for no recorded message, logged or not
    misses: int = 0
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str | None = None
    error: str | None = None

    def line(self) -> str:
        """One line for a person: which recording, what was matched, how it ended."""
        who = f"client {self.client}" + (f" ({self.peer})" if self.peer else "")
        if self.conn is None:
            return f"{who} {self.path}: refused: {self.error}"
        unmatched = self.misses
        ended = f"closed by {self.closed_by or 'nobody yet'}"
        if self.close_code is not None:
            ended += f" {self.close_code}"
            if self.close_reason:
                ended += f" {self.close_reason!r}"
        parts = [f"{len(self.received) + self.unlogged} received"
                 + (f" ({unmatched} unmatched)" if unmatched else ""),
                 f"{len(self.sent)} sent"]
        if self.skipped:
            parts.append(f"{self.skipped} not sent")
        tail = f"; {self.error}" if self.error else ""
        return f"{who} {self.path} played recording {self.conn}: {', '.join(parts)}, {ended}{tail}"

    @property
    def unmatched(self) -> list[Received]:
        """The client messages that stood for no recorded message."""
        return [r for r in self.received if r.step is None]

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client, "peer": self.peer, "path": self.path, "conn": self.conn,
            "subprotocol": self.subprotocol, "wsp": self.wsp,
            "received": [r.to_json() for r in self.received],
            "sent": [m.to_json() for m in self.sent], "unmatched": self.misses,
            "skipped": self.skipped, "unlogged": self.unlogged, "close_code": self.close_code,
            "close_reason": self.close_reason, "closed_by": self.closed_by, "error": self.error,
        }


def _offered(request: HttpRequest) -> list[str]:
    return [name.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for name in value.split(",") if name.strip()]


def _bare(path: str) -> str:
    return path.split("?", 1)[0]


def _summary(opcode: str, payload: bytes | str | Payload) -> str:
    if isinstance(payload, Payload | str):
        text = repr(payload)
    else:
        text = f"{len(payload)} bytes {payload[:24].hex()}"
    return text if len(text) <= 100 else text[:97] + "..."


class ReplayServer:
    """``await server.start()``, then ``await server.shutdown()`` (``.port``, ``.url``,
    ``.clients``: the logs, in the order the clients connected)."""

    def __init__(self, cassette: Cassette, options: ServeOptions | None = None) -> None:
        self.options = options = options or ServeOptions()
        if options.timing not in ("fast", "causal", "original"):
            raise ConfigError(f"--timing {options.timing}: --serve plays with fast (causal: "
                              "the same, answers follow the client's messages) or original")
        if options.speed <= 0:
            raise ConfigError("--speed must be more than 0")
        self.cassette = flatten_batches(cassette)
        self.scripts: list[Script] = [script_of(self.cassette, conn)
                                      for conn in self.cassette.connections]
        if not self.scripts:
            raise ConfigError("the recording holds no WebSocket connection to play")
        self.generated_secret = False
        self.secret = options.secret
        if options.no_auth and (options.secret or options.jwt_key):
            raise ConfigError("--no-auth cannot be combined with a secret or a JWT key")
        if any(s.wsp for s in self.scripts) and not (
                options.secret or options.jwt_key or options.no_auth):
            self.secret = secrets.token_urlsafe(24).encode()
            self.generated_secret = True
        self.auth = ServerAuth(
            secret=self.secret or None,
            jwt=JwtVerifier(options.jwt_key, audience=options.jwt_audience)
            if options.jwt_key else None,
            token_key=options.token_key or os.urandom(32),
        )
        self.uses = [0] * len(self.scripts)
        self.clients: deque[ClientLog] = deque(maxlen=options.max_clients)
        self._count = 0
        self.port = options.port
        #: the recording each upgrading connection was given (until its handler runs;
        #: weak: a handshake that fails after process_request never reaches the handler)
        self._assigned: weakref.WeakKeyDictionary[ServerConnection, tuple[Script, ClientLog]] = (
            weakref.WeakKeyDictionary())
        self._live: set[ServerConnection] = set()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        host = self.options.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'wss' if self.options.ssl is not None else 'ws'}://{host}:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen (port 0: any free port, then in ``.port``)."""
        o = self.options
        self._server = await serve(
            self._handler, o.host, o.port,
            process_request=self._http,
            select_subprotocol=self._select_subprotocol,
            compression="deflate",
            max_size=o.max_message_size,
            ping_interval=None,
            close_timeout=o.close_timeout,
            ssl=o.ssl,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.wait_closed()

    async def shutdown(self) -> None:
        """Stop listening; close the clients still connected (1001)."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        await asyncio.gather(*(ws.close(CloseCode.GOING_AWAY, "replay server shutting down")
                               for ws in list(self._live)), return_exceptions=True)
        await self._server.wait_closed()

    # ------------------------------------------------------------------ choosing
    def choose(self, path: str, offered: Sequence[str]) -> int | None:
        """The index of the recording a client of ``path`` offering ``offered`` plays
        (the least used one that fits, recorded order breaking ties), or None."""
        best: int | None = None
        for i, script in enumerate(self.scripts):
            connection = script.connection
            if _bare(connection.path) != _bare(path):
                continue
            if connection.subprotocols and not set(connection.subprotocols) & set(offered):
                continue
            if best is None or self.uses[i] < self.uses[best]:
                best = i
        return best

    def _http(self, connection: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return connection.respond(http.HTTPStatus.UPGRADE_REQUIRED,
                                      "wsp replay --serve: a WebSocket endpoint\n")
        offered = _offered(request)
        self._count += 1
        log = ClientLog(self._count, peer_label(connection), request.path)
        self.clients.append(log)
        chosen = self.choose(request.path, offered)
        if chosen is None:
            paths = sorted({s.connection.path for s in self.scripts})
            if any(_bare(p) == _bare(request.path) for p in paths):
                wanted = sorted({p for s in self.scripts for p in s.connection.subprotocols
                                 if _bare(s.connection.path) == _bare(request.path)})
                log.error = (f"no recording of {request.path} offers the subprotocols "
                             f"{', '.join(offered) or '(none)'}: offer {', '.join(wanted)}")
                status = http.HTTPStatus.BAD_REQUEST
            else:
                log.error = (f"no recording of the path {request.path} "
                             f"(recorded: {', '.join(paths)})")
                status = http.HTTPStatus.NOT_FOUND
            self._ended(log)
            return connection.respond(status, log.error + "\n")
        self.uses[chosen] += 1
        script = self.scripts[chosen]
        log.conn = script.conn
        log.wsp = script.wsp
        if "permessage-deflate" not in (script.connection.extensions or ""):
            connection.protocol.available_extensions = []
        self._assigned[connection] = (script, log)
        return None

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: Sequence[str]) -> Subprotocol | None:
        assigned = self._assigned.get(connection)
        if assigned is None:
            return None
        for name in assigned[0].connection.subprotocols:
            if name in offered:
                return Subprotocol(name)
        return None

    def _ended(self, log: ClientLog) -> None:
        if self.options.on_client is not None:
            self.options.on_client(log)

    # ------------------------------------------------------------------ playing
    async def _handler(self, ws: ServerConnection) -> None:
        assigned = self._assigned.pop(ws, None)
        if assigned is None:
            return
        script, log = assigned
        log.subprotocol = ws.subprotocol
        messages = self.cassette.messages_of(script.conn)
        responder = Responder(script, messages, strict=self.options.strict)
        self._live.add(ws)
        try:
            if script.wsp:
                await _WspPlayer(self, ws, responder, log, messages).run()
            else:
                await _Player(self, ws, responder, log).run()
        finally:
            self._live.discard(ws)
            log.close_code = ws.close_code
            log.close_reason = ws.close_reason or ""
            self._ended(log)


@dataclass(slots=True)
class _Item:
    due: float  # loop time
    message: CassetteMessage | None  # an answer, or None: the close
    close: CassetteMessage | None = None


class _Player:
    """Plays one plain recorded connection to one client."""

    def __init__(self, server: ReplayServer, ws: ServerConnection, responder: Responder,
                 log: ClientLog) -> None:
        self.server = server
        self.ws = ws
        self.responder = responder
        self.log = log
        self.options = server.options
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.closing = False

    def now(self) -> float:
        return self.loop.time() - self.start

    def note(self, received: Received) -> None:
        """Log a client message (counted only, past ``max_log``)."""
        log = self.log
        if received.step is None:
            log.misses += 1
        if len(log.received) < self.options.max_log:
            log.received.append(received)
        else:
            log.unlogged += 1

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            self.opened()
            await self._receive_loop()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
            if self.log.closed_by is None:
                self.log.closed_by = "client" if self.ws.protocol.close_rcvd is not None else "cut"

    def opened(self) -> None:
        """Schedule the recorded opening (and a close that came before any step)."""
        responder = self.responder
        self.schedule(Match(None, "opening", responder.opening, 0.0,
                            responder.opening_close()), self.start, opening=True)

    def schedule(self, match: Match, at: float, *, opening: bool = False) -> None:
        """Queue ``match``'s answers (and close) from loop time ``at``."""
        original = self.options.timing == "original"
        speed = self.options.speed
        base = 0.0 if opening else match.base_t
        start = self.start if opening else at
        for message in match.answers:
            due = start + max(0.0, message.t - base) / speed if original else at
            self.queue.put_nowait(_Item(due, message))
        if match.close is not None:
            due = start + max(0.0, match.close.t - base) / speed if original else at
            self.queue.put_nowait(_Item(due, None, match.close))

    async def _send_loop(self) -> None:
        while True:
            item = await self.queue.get()
            delay = item.due - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.closing:
                if item.message is not None:
                    self.log.skipped += 1
                continue
            if item.message is None:
                assert item.close is not None
                await self.close(item.close.close_code, item.close.close_reason)
                continue
            await self.send(item.message)

    async def close(self, code: int | None, reason: str) -> None:
        self.closing = True
        self.log.closed_by = "server"
        code = sendable(code if code is not None else CloseCode.NORMAL, CloseCode.NORMAL)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    async def send(self, message: CassetteMessage) -> None:
        payload = message.payload()
        text = message.opcode == "text"
        try:
            await self.ws.send(payload, text=text)
        except ConnectionClosed:
            self.log.skipped += 1
            return
        self.log.sent.append(dataclasses.replace(message, t=self.now()))

    async def _receive_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in self.ws:
                at = self.loop.time()
                opcode = "text" if isinstance(data, str) else "binary"
                payload = data.encode() if isinstance(data, str) else data
                match = self.responder.match_plain(opcode, payload)
                self.note(Received(at - self.start, opcode, _summary(opcode, data), match.step,
                                   match.how))
                if not self.closing:
                    self.schedule(match, at)


def _client_payload(event: ev.Event) -> tuple[Payload, int] | None:
    """The client message an engine event stands for, and its sequence number."""
    if isinstance(event, ev.RequestReceived):
        return Request(event.id, event.method, event.data), 0
    if isinstance(event, ev.PublishReceived):
        return Publish(event.topic, event.data, event.id), event.sequence
    if isinstance(event, ev.SubscribeRequested):
        return Subscribe(event.topic, event.from_offset, event.epoch), 0
    if isinstance(event, ev.UnsubscribeRequested):
        return Unsubscribe(event.topic), 0
    if isinstance(event, ev.DataReceived):
        return event.payload, event.sequence
    if isinstance(event, ev.PeerError):
        return Error(event.code, event.message, event.ref_sequence), 0
    return None


def _session_config(messages: list[CassetteMessage], limit: int) -> SessionConfig:
    """The recorded HandshakeResponse's capabilities, heartbeat and window, if any."""
    limits = Limits(max_message=limit, max_decompressed=limit, max_bin_len=limit)
    for message in messages:
        payload = message.wsp.payload if message.wsp is not None else None
        if message.direction == "server" and isinstance(payload, HandshakeResponse):
            heartbeat = payload.heartbeat_ms / 1000 if payload.heartbeat_ms else 15.0
            return SessionConfig(
                heartbeat_interval=heartbeat, heartbeat_timeout=3 * heartbeat,
                window=payload.window or 1024, capabilities=tuple(payload.capabilities),
                limits=limits)
    return SessionConfig(capabilities=SERVER_CAPABILITIES, limits=limits)


class _WspPlayer(_Player):
    """Plays one recorded wsp session through the engine."""

    def __init__(self, server: ReplayServer, ws: ServerConnection, responder: Responder,
                 log: ClientLog, messages: list[CassetteMessage]) -> None:
        super().__init__(server, ws, responder, log)
        self.config = _session_config(messages, server.options.max_message_size)
        self.session = ServerSession(server.auth, self.config)

    async def run(self) -> None:
        version = version_of(self.ws) or self.responder.script.connection.wsp_version or 2
        session = self.session
        session.connection_made(clock(), version=version, nonce=nonce())
        flush(session, self.ws)
        timers = asyncio.create_task(self._timers())
        try:
            await super().run()
        finally:
            timers.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await timers

    def opened(self) -> None:
        pass  # the opening is played once the session is accepted

    async def _receive_loop(self) -> None:
        session = self.session
        try:
            async for data in self.ws:
                if self.closing:
                    continue
                now = clock()
                if isinstance(data, str):
                    raise RemoteProtocolError("text frame: wsp messages travel in binary frames",
                                              close_code=CloseCode.UNSUPPORTED_DATA)
                for event in session.receive_data(data, now):
                    self._on_event(event, now)
                flush(session, self.ws)
                if session.state is State.CLOSING and not self.closing:  # the client's Close
                    self.closing = True
                    self.log.closed_by = "client"
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.close(*closing_after(session))
        except ConnectionClosed:
            pass
        except WspError as error:
            await self._fail(error)

    async def _fail(self, error: WspError) -> None:
        if self.closing:
            return
        self.closing = True
        self.log.closed_by = "server"
        self.log.error = f"{error} ({int(error.close_code)})"
        with contextlib.suppress(ConnectionClosed):
            await close_for(self.session, self.ws, error)

    def _on_event(self, event: ev.Event, now: float) -> None:
        if isinstance(event, ev.AuthSucceeded):
            session = self.session
            session.accept(int.from_bytes(os.urandom(8), "big") >> 1 or 1, now)
            session.next_heartbeat = now + self.config.heartbeat_interval
            self.start = self.loop.time()
            responder = self.responder
            self.schedule(Match(None, "opening", responder.opening, 0.0,
                                responder.opening_close()), self.start, opening=True)
            return
        client = _client_payload(event)
        if client is None:
            return
        payload, sequence = client
        match = self.responder.match_wsp(payload, sequence)
        self.note(Received(self.now(), "binary", _summary("binary", payload), match.step,
                           match.how))
        self.schedule(match, self.loop.time())

    async def send(self, message: CassetteMessage) -> None:
        session = self.session
        wsp = message.wsp
        if wsp is None:  # a plain message in a wsp session: as recorded
            await super().send(message)
            return
        if session.state is not State.ACTIVE:
            self.log.skipped += 1
            return
        payload = self.responder.bindings.rewrite(wsp.payload)
        if isinstance(payload, Sealed):
            self.log.skipped += 1  # recorded encrypted, without the keys: unknown content
            return
        now = clock()
        if isinstance(payload, Close):
            self.closing = True
            self.log.closed_by = "server"
            session.close(payload.code, payload.reason, now)
            flush(session, self.ws)
            self._sent(message, payload)
            recorded = self.responder.close
            code, reason = closing_after(session)
            if recorded is not None and recorded.close_code is not None:
                code = sendable(recorded.close_code, code)
                reason = recorded.close_reason
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(code, reason)
            return
        try:
            if isinstance(payload, Deliver):
                session.deliver(payload.topic, payload.epoch, payload.offset, payload.data, now)
            else:
                session.send_payload(payload, now)
        except WspError:
            self.log.skipped += 1
            return
        flush(session, self.ws)
        self._sent(message, payload)

    def _sent(self, message: CassetteMessage, payload: Payload) -> None:
        wsp = message.wsp
        assert wsp is not None
        self.log.sent.append(dataclasses.replace(
            message, t=self.now(), wsp=dataclasses.replace(wsp, payload=payload), raw=None))

    async def close(self, code: int | None, reason: str) -> None:
        session = self.session
        if session.state is State.ACTIVE and code is not None and code not in RESUMABLE_CODES:
            session.close(code, reason, clock())  # a wsp Close first, as the server does
            flush(session, self.ws)
        await super().close(code, reason)

    async def _timers(self) -> None:
        """Heartbeats, retransmissions, the dead-peer check and the handshake timeout."""
        session = self.session
        deadline = self.loop.time() + self.options.handshake_timeout
        while not self.closing:
            if session.state is not State.ACTIVE:
                if session.state in (State.CONNECTING, State.HANDSHAKING, State.AUTHENTICATED) \
                        and self.loop.time() > deadline:
                    await self._fail(WspError(
                        f"handshake not finished within {self.options.handshake_timeout:g} s",
                        close_code=CloseCode.WSP_HANDSHAKE_TIMEOUT))
                    return
                await asyncio.sleep(0.1)
                continue
            due = session.next_deadline()
            wait = 1.0 if due is None else min(1.0, max(0.0, due - clock()))
            await asyncio.sleep(wait)
            if due is None or clock() < due or self.closing:
                continue
            try:
                session.on_timer(clock())
            except WspError as error:
                await self._fail(error)
                return
            flush(session, self.ws)



async def serve_recording(cassette: Cassette, options: ServeOptions | None = None,
                          *, ready: Callable[[ReplayServer], None] | None = None
                          ) -> list[ClientLog]:
    """Serve ``cassette`` until cancelled; returns the clients' logs.

    ``ready(server)`` is called once it listens (to print its address and a
    generated secret)."""
    server = ReplayServer(cassette, options)
    await server.start()
    if ready is not None:
        ready(server)
    try:
        await server.serve_forever()
    finally:
        await server.shutdown()
    return list(server.clients)
