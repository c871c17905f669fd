"""The reference server: wsp sessions over ``websockets`` asyncio (``wsp serve``).

One handler task per connection (the connection's own); no other per-session
task or timer. One sweeper task for the whole server runs heartbeats,
retransmissions, dead-peer checks and the expiry of detached sessions. Topic
fan-out encodes each new topic message once per (wire version, batching) and
writes the same bytes to every subscriber. The limits and the close codes they
answer with are listed in docs/protocol.md ("Session protocol").
"""

from __future__ import annotations

__all__ = ["ServerConfig", "WspServer"]

import asyncio
import contextlib
import http
import json
import logging
import os
import ssl
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State as WsState
from websockets.typing import Subprotocol

from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import BinaryData, TextData
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import Grant, JwtVerifier
from wsproto_tools.engine.history import ContinuityLost as HistoryGap
from wsproto_tools.engine.history import Entry
from wsproto_tools.engine.hub import SubscribeAnswer
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import DEFAULT_CAPABILITIES, ServerAuth, SessionConfig
from wsproto_tools.engine.snapshot import SnapshotError, restore
from wsproto_tools.engine.states import State
from wsproto_tools.engine.timing import TokenBucket
from wsproto_tools.exceptions import (
    AuthenticationError,
    CloseCode,
    ConfigError,
    RemoteProtocolError,
    WspError,
)
from wsproto_tools.server.broker import Broker, MemoryBroker
from wsproto_tools.server.cluster import GATE_HIGH, Saver, SessionTaken, publish_id
from wsproto_tools.server.fanout import encode_delivery, encode_delivery_batch
from wsproto_tools.server.gate import Gate
from wsproto_tools.server.inspect import (
    DEFAULT_BUDGET,
    DEFAULT_QUEUE,
    Feed,
    Filters,
    Viewer,
    admission,
)
from wsproto_tools.server.metrics import Metrics
from wsproto_tools.server.record import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    Recorder,
    recording_class,
)
from wsproto_tools.transports.wsio import (
    SUBPROTOCOLS,
    DirectMixin,
    DirectServerConnection,
    buffered,
    clock,
    close_for,
    closing_after,
    nonce,
    peer_label,
    version_of,
    write_now,
)

log = logging.getLogger("wsproto_tools.server")
#: Deliveries per fan-out Batch (the decoder's default limit is 1024 items).
BATCH_ITEMS = 256
#: A replay goes on while the connection's transport holds less than this unsent.
REPLAY_HIGH = 64 * 1024


@dataclass
class ServerConfig:
    """Everything ``wsp serve`` can be told (seconds, bytes, messages)."""

    host: str = "127.0.0.1"
    port: int = 8765
    secret: bytes | None = None
    jwt_key: bytes | None = None
    jwt_audience: str | None = None
    jwt_allow_no_exp: bool = False  # accept JWTs without 'exp' (they never expire)
    no_auth: bool = False
    token_key: bytes | None = None  # signs resume tokens; share it between nodes
    history: int = 1000
    history_age: float | None = None
    history_bytes: int = 64 << 20  # per topic
    history_total: int = 256 << 20  # over all topics (the oldest messages go first)
    max_topics: int = 100_000
    max_topics_per_session: int = 1000  # topics one session makes, and its subscriptions
    max_detached: int = 10_000  # detached (resumable) sessions; the oldest go first
    max_detached_bytes: int = 64 << 20  # what detached sessions hold, all together
    max_connections: int = 10_000
    max_message_size: int = 1 << 20
    rate: float = 50_000.0  # WebSocket messages per second per connection (0: no limit)
    burst: float = 100_000.0
    handshake_timeout: float = 10.0
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 45.0
    resume_lifetime: float = 300.0
    #: the output budget of a session: unsent bytes in its transport plus the sequenced
    #: messages it keeps (unacknowledged or waiting for window room); over it: 4005
    max_buffer: int = 4 << 20
    origins: tuple[str, ...] | None = None
    compression: bool = False
    ssl: ssl.SSLContext | None = None  # serve wss:// (and https:// for /healthz, /metrics)
    window: int = 1024
    capabilities: tuple[str, ...] = (*DEFAULT_CAPABILITIES, "compress", "encrypt")
    sweep_interval: float = 0.5
    close_timeout: float = 2.0
    inspect: bool = False  # the inspector feed at /inspect (docs/inspect.md)
    #: its credential: Authorization: Bearer <secret>, or Bearer <JWT> verified with
    #: jwt_key and carrying "wsp": {"admin": true}
    admin_secret: bytes | None = None
    inspect_queue: int = DEFAULT_QUEUE  # records per viewer before the oldest are dropped
    inspect_budget: float = DEFAULT_BUDGET  # share of the server's time the feed may take
    #: ``--record DIR``: every WebSocket session written to a pcapng file there
    #: (server/record.py); files rotate past ``record_max_bytes``, the directory keeps
    #: at most ``record_max_files`` (0: no limit); TLS sessions only with
    #: ``record_plaintext`` (their decrypted stream)
    record_dir: str | None = None
    record_max_bytes: int = DEFAULT_MAX_BYTES
    record_max_files: int = DEFAULT_MAX_FILES
    record_plaintext: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def auth(self) -> ServerAuth:
        if self.no_auth and (self.secret or self.jwt_key):
            raise ConfigError("--no-auth cannot be combined with a secret or a JWT key")
        if not self.no_auth and not (self.secret or self.jwt_key):
            raise ConfigError(
                "authentication is on: give a secret or a JWT key, or ask for --no-auth"
            )
        verifier = (
            JwtVerifier(
                self.jwt_key, audience=self.jwt_audience, require_exp=not self.jwt_allow_no_exp
            )
            if self.jwt_key
            else None
        )
        return ServerAuth(
            secret=self.secret or None, jwt=verifier, token_key=self.token_key or os.urandom(32)
        )


class Conn:
    """One live WebSocket connection and the session it drives."""

    __slots__ = (
        "batch",
        "bucket",
        "closing",
        "gate",
        "ready",
        "replays",
        "saver",
        "session",
        "topics",
        "version",
        "ws",
    )

    def __init__(
        self, ws: ServerConnection, session: ServerSession, version: int, bucket: TokenBucket | None
    ) -> None:
        self.ws = ws
        self.session = session
        self.version = version
        self.bucket = bucket
        self.topics: set[str] | None = None  # made on the first Subscribe
        self.batch = False
        self.closing = False
        self.ready: asyncio.Future[None] | None = None
        #: topics being replayed, paced by what the peer drains (memory broker)
        self.replays: dict[str, Replay] | None = None
        #: a networked broker: output held until what it acknowledges is stored,
        #: and the session's snapshot writer
        self.gate: Gate | None = None
        self.saver: Saver | None = None


class Replay:
    """Where a paced replay of one topic stands: the next offset to send."""

    __slots__ = ("epoch", "next")

    def __init__(self, epoch: int, next_offset: int) -> None:
        self.epoch = epoch
        self.next = next_offset


class WspServer:
    """``await server.start()``, then ``await server.shutdown()``."""

    def __init__(self, config: ServerConfig, broker: Broker | None = None) -> None:
        self.config = config
        self.auth = config.auth()
        if config.inspect and not (config.admin_secret or self.auth.jwt):
            raise ConfigError(
                "--inspect needs --admin-secret (or WSP_ADMIN_SECRET), or --jwt-key "
                'for tokens with the admin claim "wsp": {"admin": true}'
            )
        #: the inspector feed; its ``viewers`` is empty unless one is attached
        self.feed = Feed(config.inspect_queue, config.inspect_budget)
        self.session_config = SessionConfig(
            heartbeat_interval=config.heartbeat_interval,
            heartbeat_timeout=config.heartbeat_timeout,
            window=config.window,
            resume_lifetime=config.resume_lifetime,
            capabilities=config.capabilities,
            limits=Limits(
                max_message=config.max_message_size,
                max_decompressed=config.max_message_size,
                max_bin_len=config.max_message_size,
            ),
        )
        self.epoch = int.from_bytes(os.urandom(4), "big") | 1
        self.broker: Broker = broker or MemoryBroker(
            epoch=self.epoch,
            history=config.history,
            max_age=config.history_age,
            max_topics=config.max_topics,
            history_bytes=config.history_bytes,
            history_total=config.history_total,
            max_per_owner=config.max_topics_per_session,
        )
        self.broker.set_listener(self._on_topic_message)
        self._memory = self.broker if isinstance(self.broker, MemoryBroker) else None
        #: a networked broker's session store and presence (after start()), and the
        #: snapshot writer of each session
        self.store: Any = None
        self.savers: dict[int, Saver] = {}
        self.presence: Any = None
        self.metrics = Metrics()
        self.conns: set[Conn] = set()
        self.inspectors: set[ServerConnection] = set()
        self.sessions: dict[int, ServerSession] = {}
        self.attached: dict[int, Conn] = {}
        #: detached (resumable) sessions, oldest first, with what each is charged
        self.detached: dict[int, int] = {}
        self.detached_bytes = 0
        self.replaying: set[Conn] = set()
        self._topic_sweep = 0.0
        self._store_refresh = 0.0
        self.subscribers: dict[str, dict[Conn, None]] = {}
        self.pending: dict[str, list[tuple[int, Entry]]] = {}
        self._fanout_scheduled = False
        self._server: Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.port = config.port
        #: the recordings (``--record``), or None
        self.recorder: Recorder | None = None
        self.stats_in: Counter[str] = self.metrics.messages_in
        self.stats_out: Counter[str] = self.metrics.messages_out

    @property
    def url(self) -> str:
        """The address clients connect to: ``ws://`` or, with a TLS context, ``wss://``."""
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.config.ssl is not None else "ws"
        return f"{scheme}://{host}:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._memory is None:
            starting = getattr(self.broker, "start", None)
            if starting is not None:
                await starting()
            self.store = getattr(self.broker, "sessions", None)
            self.presence = getattr(self.broker, "presence", None)
            self.metrics.broker = (getattr(self.broker, "options", None) and "nats") or "broker"
        connection: type[ServerConnection] | None = (
            DirectServerConnection if self._memory is not None else None
        )
        cfg = self.config
        if cfg.record_dir is not None:
            recorder = Recorder(
                cfg.record_dir,
                self.metrics,
                max_bytes=cfg.record_max_bytes,
                max_files=cfg.record_max_files,
                plaintext=cfg.record_plaintext,
                tls=cfg.ssl is not None,
            )
            recorder.check()  # before listening: ConfigError when it cannot be written
            self.metrics.recording = True
            self.recorder = recorder
            connection = recording_class(connection or ServerConnection, recorder)
        self._server = await serve(
            self._handler,
            self.config.host,
            self.config.port,
            select_subprotocol=self._select_subprotocol,
            max_size=self.config.max_message_size,
            ping_interval=None,
            compression="deflate" if self.config.compression else None,
            process_request=self._http,
            close_timeout=self.config.close_timeout,
            create_connection=connection,
            max_queue=64,
            ssl=self.config.ssl,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())
        if self.recorder is not None:
            self.recorder.start()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.wait_closed()

    async def shutdown(self) -> None:
        """Stop accepting, tell every client to reconnect (1001), stop the sweeper."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close(close_connections=False)
            await asyncio.gather(
                *(
                    c.ws.close(CloseCode.GOING_AWAY, "server shutting down; reconnect and resume")
                    for c in list(self.conns)
                ),
                *(ws.close(CloseCode.GOING_AWAY, "server shutting down") for ws in self.inspectors),
                return_exceptions=True,
            )
            await self._server.wait_closed()
        if self.recorder is not None:
            self.recorder.close()
        await self.broker.close()

    @staticmethod
    def _select_subprotocol(
        connection: ServerConnection, offered: Sequence[str]
    ) -> Subprotocol | None:
        """The client's first wsp version we speak; None lets the handler explain."""
        for name in offered:
            if name in SUBPROTOCOLS:
                return Subprotocol(name)
        return None

    # ------------------------------------------------------------------ HTTP
    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/inspect":
            return self._inspect_request(connection, request)
        if path == "/healthz":
            healthy = getattr(self.broker, "healthy", None)
            if healthy is not None and not healthy():
                return connection.respond(
                    http.HTTPStatus.SERVICE_UNAVAILABLE, "broker unreachable\n"
                )
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if path == "/metrics":
            self.metrics.connections = len(self.conns)
            self.metrics.sessions = len(self.sessions)
            if self._memory is None:
                self._broker_metrics()
            body = self.metrics.render().encode()
            headers = Headers(
                [
                    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                ]
            )
            return Response(200, "OK", headers, body)
        if "upgrade" not in request.headers.get("Connection", "").lower():
            return connection.respond(
                http.HTTPStatus.NOT_FOUND, "wsp: WebSocket endpoint; GET /healthz, /metrics\n"
            )
        offered = {
            name.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for name in value.split(",")
        }
        if not offered & set(SUBPROTOCOLS):  # checklist rule 1: refused before the upgrade
            return connection.respond(
                http.HTTPStatus.BAD_REQUEST,
                "no wsp subprotocol: offer Sec-WebSocket-Protocol wsp.v2 or wsp.v1\n",
            )
        return None

    def _inspect_admission(self, request: Request) -> Grant | None:
        """The viewer's credential (docs/inspect.md, "The endpoint"); None: refused."""
        return admission(
            request.headers.get("Authorization"),
            secret=self.config.admin_secret,
            verifier=self.auth.jwt,
            now=clock(),
        )

    def _inspect_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.config.inspect:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "the inspector feed is off\n")
        if self._inspect_admission(request) is None:
            return connection.respond(
                http.HTTPStatus.FORBIDDEN,
                "inspector feed: Authorization: Bearer <admin secret>, "
                'or Bearer <JWT> with "wsp": {"admin": true}\n',
            )
        try:
            Filters.from_query(request.path.partition("?")[2])
        except ValueError:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "session=ID: a number\n")
        return None

    async def _inspector(self, ws: ServerConnection) -> None:
        """One authorized viewer of the feed: its records until it goes away, or
        until its admin token expires (closed with 4001, as a session would be)."""
        assert ws.request is not None
        grant = self._inspect_admission(ws.request)
        expires_at = grant.expires_at if grant is not None else clock()
        viewer = Viewer(Filters.from_query(ws.request.path.partition("?")[2]), self.feed.queue)
        sender = asyncio.create_task(self.feed.run(viewer, ws.send))
        closed = asyncio.ensure_future(ws.wait_closed())
        self.inspectors.add(ws)
        try:
            done, _ = await asyncio.wait(
                [sender, closed],
                timeout=None if expires_at is None else max(0.0, expires_at - clock()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            self.inspectors.discard(ws)
            sender.cancel()
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
        if not done:
            await ws.close(CloseCode.WSP_AUTH_FAILED, "admin token expired; attach with a new one")

    # ------------------------------------------------------------------ connections
    async def _handler(self, ws: ServerConnection) -> None:
        cfg = self.config
        if ws.request is not None and ws.request.path.split("?", 1)[0] == "/inspect":
            await self._inspector(ws)
            return
        self.metrics.connections_total += 1
        if len(self.conns) >= cfg.max_connections:
            await self._close(
                None,
                ws,
                WspError(
                    f"too many connections (limit {cfg.max_connections})",
                    close_code=CloseCode.WSP_TOO_MANY_CONNECTIONS,
                ),
            )
            return
        if cfg.origins is not None:
            origin = ws.request.headers.get("Origin") if ws.request else None
            if origin not in cfg.origins:
                await self._close(
                    None,
                    ws,
                    WspError(
                        f"origin {origin!r} is not allowed", close_code=CloseCode.WSP_ORIGIN_REFUSED
                    ),
                )
                return
        healthy = getattr(self.broker, "healthy", None)
        if healthy is not None and not healthy():  # no answer would come: go elsewhere
            await self._close(
                None,
                ws,
                WspError(
                    "broker unreachable: try again, or another node",
                    close_code=CloseCode.TRY_AGAIN_LATER,
                ),
            )
            return
        version = version_of(ws)
        if version is None:
            await self._close(
                None,
                ws,
                RemoteProtocolError(
                    "no wsp subprotocol: offer Sec-WebSocket-Protocol wsp.v2 or wsp.v1"
                ),
            )
            return
        now = clock()
        session = ServerSession(self.auth, self.session_config)
        session.stats_in, session.stats_out = self.stats_in, self.stats_out
        bucket = TokenBucket(cfg.rate, cfg.burst, now) if cfg.rate > 0 else None
        conn = Conn(ws, session, version, bucket)
        if self._memory is None:
            conn.gate = Gate(partial(self._emit, conn), partial(self._gate_failed, conn))
        self.conns.add(conn)
        if self.feed.viewers:
            self.feed.event(
                "connected", None, peer_label(ws), subprotocol=ws.subprotocol, version=version
            )
        direct = self._memory is not None and isinstance(ws, DirectMixin)
        try:
            session.connection_made(now, version=version, nonce=nonce())
            self._write(conn)
            if direct:
                await self._run_direct(conn)
                return
            # the timeout counts the client's part: waiting for the broker (a session
            # snapshot to load or write) is not the client's delay
            deadline = asyncio.get_running_loop().time() + cfg.handshake_timeout
            while conn.session.state is not State.ACTIVE:
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await ws.recv()
                except TimeoutError:
                    raise WspError(
                        f"handshake not finished within {cfg.handshake_timeout:g} s",
                        close_code=CloseCode.WSP_HANDSHAKE_TIMEOUT,
                    ) from None
                started = asyncio.get_running_loop().time()
                await self._process(conn, data)
                deadline += asyncio.get_running_loop().time() - started
            while not conn.closing:
                await self._process(conn, await ws.recv())
            await ws.close(*closing_after(conn.session))
        except ConnectionClosed:
            pass
        except WspError as error:
            if isinstance(error, AuthenticationError):
                self.metrics.auth_rejected += 1
            await self._close(conn.session, ws, error)
        finally:
            self._detach(conn)

    async def _run_direct(self, conn: Conn) -> None:
        """Run the engine inside ``data_received``; this task only waits for the end."""
        ws = conn.ws
        assert isinstance(ws, DirectMixin)
        conn.ready = asyncio.get_running_loop().create_future()
        ws.on_lost = partial(self._on_lost, conn)
        ws.attach(partial(self._on_message, conn))
        if ws.protocol.state is not WsState.OPEN:
            return
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                await conn.ready
            conn.ready = None
            ws.on_lost = None
        except TimeoutError:
            conn.closing = True
            await self._close(
                conn.session,
                ws,
                WspError(
                    f"handshake not finished within {self.config.handshake_timeout:g} s",
                    close_code=CloseCode.WSP_HANDSHAKE_TIMEOUT,
                ),
            )
            return
        await ws.wait_closed()

    def _on_lost(self, conn: Conn) -> None:
        ready = conn.ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    def _on_message(self, conn: Conn, data: bytes | str) -> None:
        """One WebSocket message, processed synchronously (memory broker)."""
        if conn.closing:
            return
        try:
            self._process_now(conn, data)
        except WspError as error:
            conn.closing = True
            if isinstance(error, AuthenticationError):
                self.metrics.auth_rejected += 1
            self._spawn(self._close(conn.session, conn.ws, error))
        else:
            if conn.closing and conn.session.state is not State.ACTIVE:  # the peer sent Close
                self._spawn(conn.ws.close(*closing_after(conn.session)))
        ready = conn.ready
        if (
            ready is not None
            and not ready.done()
            and (conn.session.state is State.ACTIVE or conn.closing)
        ):
            ready.set_result(None)

    async def _close(
        self, session: ServerSession | None, ws: ServerConnection, error: WspError
    ) -> None:
        self.metrics.closes[int(error.close_code)] += 1
        if self.feed.viewers and session is not None and isinstance(error, RemoteProtocolError):
            self.feed.event(
                "violation",
                session,
                peer_label(ws),
                rule=getattr(error, "rule", None),
                code=int(error.close_code),
                message=str(error),
            )
        log.info("closing %s: %s (%s)", ws.remote_address, error, int(error.close_code))
        with contextlib.suppress(ConnectionClosed):
            await close_for(session, ws, error)

    def _detach(self, conn: Conn) -> None:
        self.conns.discard(conn)
        if self.feed.viewers:
            ws = conn.ws
            self.feed.event(
                "closed",
                conn.session,
                peer_label(ws),
                code=ws.close_code,
                reason=ws.close_reason,
                resumable=conn.session.state is not State.CLOSING
                and conn.session.state is not State.CLOSED,
            )
        now = clock()
        for topic in conn.topics or ():
            self._leave(conn, topic, now)
        conn.topics = None
        conn.replays = None
        self.replaying.discard(conn)
        session = conn.session
        if self.attached.get(session.session_id) is conn:
            del self.attached[session.session_id]
            if session.state is State.CLOSING or session.state is State.CLOSED:
                session.closed()
                self.sessions.pop(session.session_id, None)
                if self.store is not None and session.session_id:
                    self.savers.pop(session.session_id, None)
                    self._spawn(self.store.delete(session.session_id))
            else:
                session.connection_lost(now)
                if session.state is State.RECONNECTING:
                    self._keep_detached(session)

    def _leave(self, conn: Conn, topic: str, now: float) -> None:
        """``conn`` no longer subscribes to ``topic``; an idle topic is freed."""
        subs = self.subscribers.get(topic)
        if subs is None:
            return
        if subs.pop(conn, 0) is None and self._memory is None:
            self.broker.release(topic)  # type: ignore[attr-defined]
        if self.presence is not None:
            self.presence.changed(topic, len(subs))
        if not subs:
            del self.subscribers[topic]
            if self._memory is not None:
                self._memory.hub.release(topic, now)

    def _keep_detached(self, session: ServerSession) -> None:
        """Hold a detached session for resume, within --max-detached(-bytes):
        the oldest detached sessions are dropped first."""
        cost = 2048 + session.held + 128 * len(session.applied_ids or ())
        sid = session.session_id
        self.detached_bytes += cost - self.detached.pop(sid, 0)
        self.detached[sid] = cost
        cfg = self.config
        detached = self.detached
        while detached and (
            len(detached) > cfg.max_detached or self.detached_bytes > cfg.max_detached_bytes
        ):
            oldest = next(iter(detached))
            self.detached_bytes -= detached.pop(oldest)
            dropped = self.sessions.pop(oldest, None)
            if dropped is not None:
                dropped.expire()
            if self.store is not None:
                self.store.forget(oldest)
                self.savers.pop(oldest, None)

    def _undetach(self, session_id: int) -> None:
        cost = self.detached.pop(session_id, None)
        if cost is not None:
            self.detached_bytes -= cost

    def _write(self, conn: Conn, check: bool = True) -> None:
        """Write what the engine queued, within the session's output budget
        (``check=False``: the caller checks the budget itself); behind what the
        connection's gate holds, if anything."""
        session = conn.session
        ws = conn.ws
        gate = conn.gate
        if gate is not None and gate.holding:
            gate.pass_((), session.data_to_send())
        else:
            feed = self.feed
            for chunk in session.data_to_send():
                if write_now(ws, chunk):
                    self.metrics.bytes_out += len(chunk)
                if feed.viewers:
                    feed.message(session, peer_label(ws), "server", chunk, conn.version)
        if check and buffered(ws) + session.held > self.config.max_buffer:
            self._slow_consumer(conn)

    def _emit(self, conn: Conn, chunks: list[bytes]) -> None:
        """Write chunks the gate let through."""
        if conn.closing and conn.ws.state is not WsState.OPEN:
            return
        ws = conn.ws
        feed = self.feed
        for chunk in chunks:
            if write_now(ws, chunk):
                self.metrics.bytes_out += len(chunk)
            if feed.viewers:
                feed.message(conn.session, peer_label(ws), "server", chunk, conn.version)

    def _process_now(
        self, conn: Conn, data: bytes | str, deferred: list[ev.Event] | None = None
    ) -> None:
        """Feed one WebSocket message to the engine and act on its events.

        Broker calls that must be awaited (a networked broker) go to ``deferred``.
        """
        now = clock()
        if isinstance(data, str):
            raise RemoteProtocolError(
                "text frame: wsp messages travel in binary frames",
                close_code=CloseCode.UNSUPPORTED_DATA,
            )
        bucket = conn.bucket
        if bucket is not None and not bucket.take(now):
            self.metrics.rate_limited += 1
            raise WspError(
                f"rate limit exceeded ({self.config.rate:g} messages/s)",
                close_code=CloseCode.WSP_RATE_LIMITED,
            )
        self.metrics.bytes_in += len(data)
        session = conn.session
        if self.feed.viewers:
            self.feed.message(session, peer_label(conn.ws), "client", data, conn.version)
        events = session.receive_data(data, now)
        memory = self._memory
        for event in events:
            kind = type(event)
            if memory is None and (
                kind is ev.PublishReceived
                or kind is ev.SubscribeRequested
                or kind is ev.AuthSucceeded
            ):
                assert deferred is not None
                deferred.append(event)
                continue
            try:
                self._on_event(conn, event, now)
            except WspError:
                if isinstance(event, ev.PublishReceived):  # refused: it must not be acknowledged
                    session.not_applied(event.sequence)
                raise
        if memory is not None:
            self._finish(conn)

    def _finish(self, conn: Conn) -> None:
        self._write(conn)
        if self.pending:
            self._fanout()
        if conn.session.state is State.CLOSING and not conn.closing:
            conn.closing = True

    async def _process(self, conn: Conn, data: bytes | str) -> None:
        """The awaiting form, for brokers whose calls are coroutines: publishes go on
        while the next messages are read; what acknowledges them waits in the gate."""
        deferred: list[ev.Event] = []
        session = conn.session
        before = (session.recv_seq, session.send_seq)
        self._process_now(conn, data, deferred)
        now = clock()
        barriers: list[asyncio.Future[Any]] = []
        saved = False
        for event in deferred:
            if isinstance(event, ev.PublishReceived):
                barriers.append(await self._publish(conn, event))
            elif isinstance(event, ev.SubscribeRequested):
                request = event
                self._check_subscriptions(conn, request.topic)
                again = conn.topics is not None and request.topic in conn.topics
                answer = await self.broker.subscribe(
                    request.topic, request.from_offset, request.epoch, now
                )
                if again or conn.closing:  # the node counts each subscriber once
                    self.broker.release(request.topic)  # type: ignore[attr-defined]
                    if conn.closing:
                        continue
                if self.pending:
                    self._fanout()  # what the node had before the answer: not this one's
                self._subscribed(conn, request, answer, now)
            elif isinstance(event, ev.AuthSucceeded):
                await self._attach_remote(conn, event, clock())
                saved = True
        session = conn.session
        gate = conn.gate
        assert gate is not None
        if self.store is not None and session.session_id and (
            saved or (session.recv_seq, session.send_seq) != before
        ):
            barriers.append(self._saver(conn).until(session.recv_seq))
        gate.pass_(barriers, session.data_to_send())
        if self.pending:
            self._fanout()
        if session.state is State.CLOSING and not conn.closing:
            conn.closing = True
        if len(gate) > GATE_HIGH:  # the broker is behind: stop reading for a while
            lower = gate.below(GATE_HIGH // 2)
            if lower is not None:
                await lower

    async def _publish(self, conn: Conn, event: ev.PublishReceived) -> asyncio.Future[Any]:
        """Send one publish to the broker; the future is done when it is stored."""
        msg_id = publish_id(conn.session.session_id, event.id, event.sequence)
        publish: Any = self.broker.publish_nowait  # type: ignore[attr-defined]
        task = await publish(event.topic, event.data, msg_id)
        if self.store is not None:
            saver = self._saver(conn)
            saver.inflight[event.sequence] = event.id
            task.add_done_callback(lambda _: saver.landed(event.sequence))
        return task

    def _saver(self, conn: Conn) -> Saver:
        """The session's snapshot writer (one per session, across its connections)."""
        saver = conn.saver
        if saver is None or saver.session is not conn.session:
            sid = conn.session.session_id
            saver = self.savers.get(sid)
            if saver is None or saver.session is not conn.session:
                saver = self.savers[sid] = Saver(self.store, conn.session, self.metrics)
            conn.saver = saver
        return saver

    def _gate_failed(self, conn: Conn, error: BaseException) -> None:
        """A publish or a snapshot could not be stored: the connection ends (the
        client resumes and sends again what was not acknowledged)."""
        if conn.closing:
            return
        conn.closing = True
        if isinstance(error, asyncio.CancelledError):
            return
        if isinstance(error, SessionTaken):
            self.metrics.sessions_taken += 1
            self.savers.pop(conn.session.session_id, None)
            self.sessions.pop(conn.session.session_id, None)
            self.attached.pop(conn.session.session_id, None)
            self._spawn(conn.ws.close(CloseCode.NORMAL, "session resumed on another node"))
            return
        if not isinstance(error, WspError):
            log.warning("broker error: %s", error)
            error = WspError(
                f"broker error ({type(error).__name__}); resume to continue",
                close_code=CloseCode.TRY_AGAIN_LATER,
            )
        self._spawn(self._close(conn.session, conn.ws, error))

    async def _attach_remote(self, conn: Conn, event: ev.AuthSucceeded, now: float) -> None:
        """``_attach`` with a networked broker: a resumed session comes from the
        store when this node does not hold its newest state (another node had it)."""
        store = self.store
        claims = event.resume
        if store is not None and claims is not None:
            sid = claims.session_id
            found = await store.load(sid)
            local = self.sessions.get(sid)
            if found is None:
                if local is not None:  # ended, or expired in the store: not resumable
                    self._forget(sid)
            elif local is None or store.revisions.get(sid) != found[1]:
                if local is not None:
                    self._forget(sid)
                try:
                    remote = restore(found[0], self.auth, self.session_config)
                except SnapshotError as error:
                    log.warning("session %d: %s", sid, error)
                else:
                    remote.stats_in, remote.stats_out = self.stats_in, self.stats_out
                    self.sessions[sid] = remote
                    store.adopt(sid, found[1])
                    self.metrics.sessions_resumed_remote += 1
        self._attach(conn, event, now)

    def _refresh_snapshots(self, now: float) -> None:
        """Write every attached session's snapshot again within a third of the resume
        lifetime, so that the store keeps sessions that receive nothing."""
        self._store_refresh = now + max(1.0, self.config.resume_lifetime / 3)
        for conn in list(self.attached.values()):
            session = conn.session
            if conn.closing or not session.session_id or session.state is not State.ACTIVE:
                continue
            saved = self._saver(conn).until(-1)
            saved.add_done_callback(partial(self._refreshed, conn))

    def _refreshed(self, conn: Conn, saved: asyncio.Future[Any]) -> None:
        error = saved.exception() if not saved.cancelled() else None
        if error is not None:
            self._gate_failed(conn, error)

    def _forget(self, session_id: int) -> None:
        """Drop this node's copy of a session that another node has moved on with."""
        holder = self.attached.pop(session_id, None)
        if holder is not None:
            holder.closing = True
            self._spawn(holder.ws.close(CloseCode.NORMAL, "session resumed on another node"))
        self.sessions.pop(session_id, None)
        self._undetach(session_id)
        self.savers.pop(session_id, None)
        if self.store is not None:
            self.store.forget(session_id)

    def _presence(self, data: bytes) -> bytes:
        """The answer to a ``presence`` request (docs/protocol.md S.4): how many
        sessions subscribe to the topic named by ``data``, on every node."""
        topic = data.decode("utf-8", "replace")
        if self.presence is not None:
            count = self.presence.count(topic)
        else:
            count = len(self.subscribers.get(topic) or ())
        return json.dumps({"topic": topic, "subscribers": count}).encode()

    def _broker_metrics(self) -> None:
        broker: Any = self.broker
        metrics = self.metrics
        metrics.broker_up = bool(broker.healthy()) if hasattr(broker, "healthy") else True
        metrics.broker_stored = getattr(broker, "stored", 0)
        metrics.broker_duplicates = getattr(broker, "duplicates", 0)
        metrics.broker_retries = getattr(broker, "retries", 0)
        if self.presence is not None:
            metrics.presence = self.presence.topics()

    def _on_event(self, conn: Conn, event: ev.Event, now: float) -> None:
        """Act on one engine event (the memory broker's calls are synchronous)."""
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is not None:
            handler(self, conn, event, now)

    def _on_publish(self, conn: Conn, event: ev.PublishReceived, now: float) -> None:
        assert self._memory is not None
        self._memory.publish_now(event.topic, event.data, now, conn.session.session_id)

    def _on_request(self, conn: Conn, req: ev.RequestReceived, now: float) -> None:
        if req.method == "echo":
            conn.session.respond(req.id, req.data, now)
        elif req.method == "presence":
            conn.session.respond(req.id, self._presence(req.data), now)
        else:
            conn.session.respond(req.id, b"", now, status=CloseCode.UNSUPPORTED_DATA)

    def _on_subscribe(self, conn: Conn, request: ev.SubscribeRequested, now: float) -> None:
        assert self._memory is not None
        self._check_subscriptions(conn, request.topic)
        answer = self._memory.subscribe_now(
            request.topic, request.from_offset, request.epoch, now, conn.session.session_id, 1
        )
        self._subscribed(conn, request, answer, now)

    def _on_unsubscribe(self, conn: Conn, event: ev.UnsubscribeRequested, now: float) -> None:
        topic = event.topic
        if conn.topics is not None:
            conn.topics.discard(topic)
        if conn.replays is not None:
            conn.replays.pop(topic, None)
        self._leave(conn, topic, now)

    def _on_data(self, conn: Conn, event: ev.DataReceived, now: float) -> None:
        payload = event.payload  # echoed to the sender (docs/protocol.md S.4)
        if type(payload) is TextData:
            conn.session.send_text(payload.text, now)
        elif type(payload) is BinaryData:
            conn.session.send_binary(payload.data, now)

    def _on_heartbeat_answered(
        self, conn: Conn, event: ev.HeartbeatAnswered, now: float
    ) -> None:
        self.metrics.observe_rtt(event.rtt)

    def _on_retransmitted(self, conn: Conn, event: ev.Retransmitted, now: float) -> None:
        self.metrics.retransmits += event.count

    def _on_peer_closed(self, conn: Conn, event: ev.PeerClosed, now: float) -> None:
        conn.closing = True

    def _attach(self, conn: Conn, event: ev.AuthSucceeded, now: float) -> None:
        fresh = conn.session
        old = self.sessions.get(event.resume.session_id) if event.resume else None
        if (
            old is not None
            and old.state in (State.ACTIVE, State.RECONNECTING)
            and old.grant.identity == fresh.grant.identity  # resume is bound to who opened it
            and not old.grant.expired(now)
        ):
            holder = self.attached.pop(old.session_id, None)
            if holder is not None and holder is not conn:
                self._detach(holder)
                holder.closing = True
                self._spawn(
                    holder.ws.close(CloseCode.NORMAL, "session resumed on another connection")
                )
            old.adopt(fresh, event.last_received, now)
            conn.session = old
            self._undetach(old.session_id)
            if self.feed.viewers:
                self.feed.event("resumed", old, peer_label(conn.ws), identity=old.grant.identity)
        else:
            session_id = int.from_bytes(os.urandom(8), "big") >> 1 or 1
            fresh.accept(session_id, now)
            self.sessions[session_id] = fresh
        session = conn.session
        session.next_heartbeat = now + self.config.heartbeat_interval
        conn.batch = "batch" in session.capabilities
        self.attached[session.session_id] = conn
        if self.feed.viewers and old is not session:
            self.feed.event(
                "authenticated",
                session,
                peer_label(conn.ws),
                identity=session.grant.identity,
                capabilities=list(session.capabilities),
            )

    def _subscribed(
        self, conn: Conn, event: ev.SubscribeRequested, answer: SubscribeAnswer, now: float
    ) -> None:
        session = conn.session
        if answer.lost is not None:
            self.metrics.continuity_lost += 1
            lost = answer.lost
            session.continuity_lost(
                event.topic, lost.epoch, lost.requested + 1, lost.available, now
            )
        session.subscribed(event.topic, answer.epoch, answer.next_offset, now)
        if conn.topics is None:
            conn.topics = set()
        conn.topics.add(event.topic)
        subs = self.subscribers.setdefault(event.topic, {})
        subs[conn] = None
        if self.presence is not None:
            self.presence.changed(event.topic, len(subs))
        if conn.replays is not None:
            conn.replays.pop(event.topic, None)
        if answer.replay:
            self.metrics.replays += 1
            if self._memory is None:  # a networked broker's answer: delivered as it is
                self.metrics.replayed_messages += len(answer.replay)
                for entry in answer.replay:
                    session.deliver(event.topic, answer.epoch, entry.offset, entry.data, now)
                return
            # paced: read from the history as the peer drains; live messages of the
            # topic wait in the history until the replay reaches them
            if conn.replays is None:
                conn.replays = {}
            conn.replays[event.topic] = Replay(answer.epoch, answer.replay[0].offset)
            self.replaying.add(conn)
            ws = conn.ws
            if isinstance(ws, DirectMixin) and ws.on_drain is None:
                ws.on_drain = partial(self._pump, conn)
            self._pump(conn)

    def _check_subscriptions(self, conn: Conn, topic: str) -> None:
        limit = self.config.max_topics_per_session
        topics = conn.topics
        if topics is not None and len(topics) >= limit and topic not in topics:
            raise RemoteProtocolError(
                f"too many subscriptions (limit {limit})", close_code=CloseCode.POLICY_VIOLATION
            )

    def _pump(self, conn: Conn) -> None:
        """Go on with ``conn``'s replays while its transport buffer is nearly empty."""
        replays = conn.replays
        memory = self._memory
        if not replays or conn.closing or memory is None:
            if not replays:
                self.replaying.discard(conn)
            return
        ws = conn.ws
        session = conn.session
        topics = memory.hub.topics
        now = clock()
        for topic in list(replays):
            replay = replays[topic]
            while buffered(ws) < REPLAY_HIGH:
                log = topics.get(topic)
                got = (
                    log.since(replay.epoch, replay.next - 1, now, BATCH_ITEMS)
                    if log is not None
                    else []
                )
                if isinstance(got, HistoryGap):
                    assert log is not None
                    self.metrics.continuity_lost += 1
                    session.continuity_lost(topic, log.epoch, got.requested + 1, got.available, now)
                    replay.epoch, replay.next = log.epoch, got.available
                    continue
                if not got:
                    del replays[topic]  # caught up: live fan-out takes over
                    break
                size = 0
                for entry in got:
                    session.deliver(topic, replay.epoch, entry.offset, entry.data, now)
                    replay.next = entry.offset + 1
                    self.metrics.replayed_messages += 1
                    size += len(entry.data)
                    if size >= REPLAY_HIGH:
                        break
                self._write(conn)
                if conn.closing:
                    return
        if not replays:
            self.replaying.discard(conn)

    # ------------------------------------------------------------------ fan-out
    def _on_topic_message(self, topic: str, epoch: int, entry: Entry) -> None:
        self.pending.setdefault(topic, []).append((epoch, entry))
        if not self._fanout_scheduled:
            self._fanout_scheduled = True
            asyncio.get_running_loop().call_soon(self._fanout)

    def _fanout(self) -> None:
        """Encode each pending topic message once per wire form; write it to every subscriber."""
        self._fanout_scheduled = False
        pending, self.pending = self.pending, {}
        slow: list[Conn] = []
        limit = self.config.max_buffer
        feed = self.feed
        metrics = self.metrics
        for topic, items in pending.items():
            subs = self.subscribers.get(topic)
            if not subs:
                continue
            forms: dict[tuple[int, bool], list[bytes]] = {}
            for conn in subs:
                if conn.closing:
                    continue
                replays = conn.replays
                if replays is not None and topic in replays:
                    continue  # the replay reaches these messages in the history
                session = conn.session
                if session.encrypted:  # encrypted: per-session keys, per-session encoding
                    for epoch, entry in items:
                        session.deliver(topic, epoch, entry.offset, entry.data, 0.0)
                    self._write(conn, check=False)
                else:
                    key = (conn.version, conn.batch and len(items) > 1)
                    wire = forms.get(key)
                    if wire is None:
                        wire = forms[key] = self._encode_items(topic, items, *key)
                    ws = conn.ws
                    for chunk in wire:
                        write_now(ws, chunk)
                        metrics.bytes_out += len(chunk)
                metrics.messages_out["Deliver"] += len(items)
                if buffered(conn.ws) + session.held > limit:
                    slow.append(conn)
            if feed.viewers and forms:  # once per topic message, with the subscriber count
                shared = [c for c in subs if not c.closing and not c.session.encrypted]
                feed.fanout(topic, items, len(shared), {c.session.session_id for c in shared})
        for conn in slow:
            self._slow_consumer(conn)

    @staticmethod
    def _encode_items(
        topic: str, items: list[tuple[int, Entry]], version: int, batch: bool
    ) -> list[bytes]:
        if batch:
            return [
                encode_delivery_batch(topic, items[start : start + BATCH_ITEMS], version)
                for start in range(0, len(items), BATCH_ITEMS)
            ]
        out = []
        for epoch, entry in items:
            cache = entry.wire
            if cache is None:
                cache = entry.wire = {}
            wire = cache.get(version)
            if wire is None:
                wire = cache[version] = encode_delivery(
                    topic, epoch, entry.offset, entry.data, version
                )
            out.append(wire)
        return out

    def _slow_consumer(self, conn: Conn) -> None:
        if conn.closing:
            return
        conn.closing = True
        now = clock()
        for topic in conn.topics or ():
            self._leave(conn, topic, now)
        error = WspError(
            f"slow consumer: more than {self.config.max_buffer} bytes unsent or unacknowledged; "
            "resume to continue",
            close_code=CloseCode.WSP_SLOW_CONSUMER,
        )
        self._spawn(self._close(conn.session, conn.ws, error))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ timers
    def _credential_expired(self, conn: Conn) -> None:
        """The session's JWT passed its ``exp``: the session ends (4001, not resumable)."""
        conn.closing = True
        error = AuthenticationError("token expired during the session; connect with a fresh one")
        self._spawn(self._close(conn.session, conn.ws, error))

    async def _sweep(self) -> None:
        """The one timer of the server: heartbeats, RTOs, dead peers, session expiry."""
        interval = self.config.sweep_interval
        while True:
            await asyncio.sleep(interval)
            now = clock()
            for conn in list(self.conns):
                session = conn.session
                if session.grant.expired(now) and not conn.closing and session.active:
                    self._credential_expired(conn)
                    continue
                deadline = session.next_deadline()
                if deadline is None or deadline > now or conn.closing:
                    continue
                try:
                    for event in session.on_timer(now):
                        if type(event) is ev.Retransmitted:
                            self.metrics.retransmits += event.count
                except WspError as error:
                    conn.closing = True
                    self._spawn(self._close(session, conn.ws, error))
                    continue
                self._write(conn)
            for conn in list(self.replaying):  # drains the on_drain callback missed
                self._pump(conn)
            lifetime = self.config.resume_lifetime
            for sid, session in list(self.sessions.items()):
                if session.state is State.RECONNECTING and (
                    now - session.last_rx > lifetime or session.grant.expired(now)
                ):
                    session.expire()
                    del self.sessions[sid]
                    self._undetach(sid)
                    if self.store is not None:
                        self.store.forget(sid)
                        self.savers.pop(sid, None)
                elif session.state is State.CLOSED:
                    del self.sessions[sid]
                    self._undetach(sid)
            if self.store is not None and now >= self._store_refresh:
                self._refresh_snapshots(now)
            memory = self._memory
            aging = self.config.history_age or self.config.history == 0
            if memory is not None and aging and now > self._topic_sweep:
                self._topic_sweep = now + max(5.0, interval)  # aged-out idle topics are freed
                subscribers = self.subscribers
                for topic in [t for t in memory.hub.topics if t not in subscribers]:
                    memory.hub.release(topic, now)


#: engine event -> what the server does with it
_EVENT_HANDLERS: dict[type[ev.Event], Callable[..., None]] = {
    ev.PublishReceived: WspServer._on_publish,
    ev.RequestReceived: WspServer._on_request,
    ev.SubscribeRequested: WspServer._on_subscribe,
    ev.UnsubscribeRequested: WspServer._on_unsubscribe,
    ev.DataReceived: WspServer._on_data,
    ev.AuthSucceeded: WspServer._attach,
    ev.HeartbeatAnswered: WspServer._on_heartbeat_answered,
    ev.Retransmitted: WspServer._on_retransmitted,
    ev.PeerClosed: WspServer._on_peer_closed,
}
