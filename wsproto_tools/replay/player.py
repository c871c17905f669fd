"""Playing the client side of a cassette against a server: ``wsp replay INPUT URL``.

Each recorded connection gets a fresh WebSocket handshake (its path, the
subprotocols it offered, permessage-deflate negotiated again when it was
offered, its request headers without the handshake's own, plus ``-H``).
A wsp session (:func:`~wsproto_tools.replay.plan.is_wsp_connection`) is played
through the engine: a :class:`~wsproto_tools.engine.client_session.ClientSession`
authenticates with the credentials given, and each recorded client message is
rewritten into the engine call that makes the same request
(:mod:`~wsproto_tools.replay.rewrite`); session ids, sequence numbers, acks,
heartbeats, nonces and encryption are the engine's. Any other connection is
played as the messages recorded. Every server message is kept, in the
recording's numbering, in a :class:`~wsproto_tools.replay.outcome.ConnOutcome`
(for users: docs/replay.md).

Timing (:class:`PlayOptions`):

- ``causal`` (default): before step ``i`` wait until the server messages
  recorded before it have come (counted by :func:`~.rewrite.answer_keys`: a
  Response by its request id, a Deliver or Subscribed by its topic, other
  traffic by position), at most ``wait`` seconds; across connections, a
  connection opens and a step is sent only once every step recorded before it
  on the other connections has been sent and their answers recorded before it
  have come (a subscriber subscribes before the publisher publishes);
- ``original``: step ``i`` at the connection's start + ``t / speed``, each
  connection opened at its recorded start / ``speed``;
- ``fast``: as fast as flow control allows (the engine's window, the socket's
  write buffer); connections are played side by side, in no order.

After the last step the player waits (at most ``wait``) for the answers recorded
after it (as many of each kind as recorded; causal: the very keys), then closes
as recorded: with the client's close code and reason (1000 when none was
recorded), or, when the server closed first in the recording, by waiting (at
most ``wait``) for the server's close. A wait that gives up is counted in
:attr:`ConnPlayer.timeouts` and the play goes on.

Resume: a connection whose recorded Handshake presents the resume token that an
earlier connection's HandshakeResponse issued is played by resuming the replayed
session of that earlier connection (it starts once that one has ended, and that
one ends its connection with 1001, or its recorded resumable close code,
without a wsp Close, so that its session stays resumable).
"""

from __future__ import annotations

__all__ = ["ConnPlayer", "PlayOptions", "RateLimiter", "play", "players_of"]

import asyncio
import contextlib
import logging
import ssl
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.typing import Subprotocol

from wsproto_tools.codec import SUBPROTOCOLS, constructor, decode
from wsproto_tools.codec.limits import Limits
from wsproto_tools.codec.schema import Close as WspClose
from wsproto_tools.codec.schema import Handshake, HandshakeResponse
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import DEFAULT_CAPABILITIES, Credentials, SessionConfig
from wsproto_tools.engine.states import State
from wsproto_tools.exceptions import (
    AuthenticationError,
    CloseCode,
    ConfigError,
    WspError,
)
from wsproto_tools.replay.cassette import Cassette, CassetteMessage
from wsproto_tools.replay.outcome import ConnOutcome, Latency
from wsproto_tools.replay.plan import Script, script_of
from wsproto_tools.replay.rewrite import AnswerKey, Rewriter, TopicOffsets, answer_keys
from wsproto_tools.transports.session_io import connect_failure
from wsproto_tools.transports.tls import client_context, parse_ws_url
from wsproto_tools.transports.wsio import (
    RESUMABLE_CODES,
    DirectClientConnection,
    clock,
    close_for,
    closing_after,
    nonce,
    version_of,
    write_now,
)

log = logging.getLogger("wsproto_tools.replay")

TIMINGS = ("causal", "original", "fast")
#: Close codes that refuse the credentials (a "refused" handshake).
REFUSING_CODES = frozenset({int(CloseCode.WSP_AUTH_FAILED), int(CloseCode.WSP_FORBIDDEN_TOPIC),
                            int(CloseCode.WSP_ORIGIN_REFUSED)})
#: Request headers of a recording that belong to its own handshake: never copied.
HANDSHAKE_HEADERS = frozenset({
    "host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-protocol", "sec-websocket-extensions", "sec-websocket-accept",
    "content-length", "transfer-encoding", "keep-alive", "te", "trailer",
    "proxy-connection", "user-agent",
})
#: Queued engine messages written at once instead of at the next turn of the loop.
FLUSH_AT = 64
CLOSE_TIMEOUT = 2.0
_POSITION: list[AnswerKey] = [("message",)]
#: the positional constructor (conn, direction, t, opcode, text, data, wsp, version,
#: close_code, close_reason, raw): a received message costs half as much to keep
_STORED = constructor(CassetteMessage)


@dataclass
class PlayOptions:
    """How to play: timing, credentials, the handshake's extras, limits.

    ``wait`` bounds each causal wait and the wait for the last answers and for a
    server's close; ``headers`` (``-H``) override recorded headers of the same
    name; ``path``: when the URL's path is not ``/`` it replaces the recorded
    path, else the recorded one is requested.
    """

    timing: str = "causal"
    speed: float = 1.0
    wait: float = 5.0
    open_timeout: float = 10.0
    headers: Sequence[tuple[str, str]] = ()
    secret: bytes | None = None
    token: str | None = None
    ssl_context: ssl.SSLContext | None = None
    max_size: int | None = 64 << 20
    window: int = 1024
    #: after the last answers came, how long the connection must stay quiet before
    #: it is closed (what the target sends beyond the recording is seen as extra)
    linger: float = 0.2

    def check(self) -> None:
        """Raise :class:`ConfigError` naming a bad option."""
        if self.timing not in TIMINGS:
            raise ConfigError(f"--timing must be one of {', '.join(TIMINGS)}, got {self.timing!r}")
        if not self.speed > 0:
            raise ConfigError(f"--speed must be more than 0, got {self.speed}")
        if not self.wait >= 0:
            raise ConfigError(f"--wait must not be negative, got {self.wait}")
        if not self.open_timeout > 0:
            raise ConfigError(f"--open-timeout must be more than 0, got {self.open_timeout}")
        if self.secret is not None and self.token is not None:
            raise ConfigError("give a secret or a token, not both")


class RateLimiter:
    """A token bucket: ``rate`` sends a second overall, bursts of at most ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0:
            raise ConfigError(f"--rate must be more than 0, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 20)
        self.tokens = self.burst
        self.stamp = clock()

    async def take(self) -> None:
        while True:
            now = clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class _Order:
    """The recording's order across connections (``--timing causal``).

    A step of one connection, recorded at absolute time T, waits until every
    step of the other connections recorded before T has been sent and the server
    messages they received before T have come (as many of each kind: Subscribed,
    Response, Deliver...); a connection that ended (or failed) no longer holds
    anyone back. Each check is a few bisections, whatever the recording's length.
    """

    def __init__(self, scripts: Sequence[Script]) -> None:
        self.times: dict[int, list[float]] = {}
        #: per connection, per kind of answer: the (absolute) times it was recorded at
        self.answers: dict[int, dict[str, list[float]]] = {}
        for script in scripts:
            ts = script.connection.ts
            self.times[script.conn] = [ts + step.t for step in script.steps]
            kinds: dict[str, list[float]] = {}
            for message in _answers(script):
                for key in _keys_of(message):
                    kinds.setdefault(key[0], []).append(ts + message.t)
            self.answers[script.conn] = kinds
        self.players: dict[int, ConnPlayer] = {}
        self.done: set[int] = set()
        self.sent: Counter[int] = Counter()
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    def ready(self, conn: int, t: float) -> bool:
        for other, times in self.times.items():
            if other == conn or other in self.done:
                continue
            if bisect_left(times, t) > self.sent[other]:
                return False
            player = self.players.get(other)
            have = player.kinds if player is not None else Counter()
            for kind, at in self.answers[other].items():
                if have[kind] < bisect_left(at, t):
                    return False
        return True

    async def wait(self, conn: int, t: float, timeout: float) -> bool:
        """Wait until ``ready(conn, t)``, at most ``timeout`` seconds; True if it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready(conn, t):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return True


def _covered(have: Counter[Any], need: dict[Any, int]) -> Callable[[], bool]:
    return lambda: all(have[k] >= n for k, n in need.items())


def _answers(script: Script) -> list[CassetteMessage]:
    out = list(script.opening)
    for step in script.steps:
        out.extend(step.after)
    return out


def _keys_of(message: CassetteMessage) -> list[AnswerKey]:
    return answer_keys(message.wsp) if message.wsp is not None else _POSITION


def _request_headers(recorded: Sequence[tuple[str, str]],
                     extra: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], str | None]:
    """The headers to send (recorded ones overridden by ``-H``) and the User-Agent."""
    overridden = {name.lower() for name, _ in extra}
    headers = [(n, v) for n, v in recorded
               if n.lower() not in HANDSHAKE_HEADERS and n.lower() not in overridden]
    agent = next((v for n, v in recorded if n.lower() == "user-agent"), None)
    for name, value in extra:
        if name.lower() == "user-agent":
            agent = value
        elif name.lower() not in HANDSHAKE_HEADERS or name.lower() == "host":
            headers.append((name, value))
    return headers, agent


def _recorded_capabilities(cassette: Cassette, conn: int) -> tuple[str, ...]:
    """The capabilities the recorded client asked for (its Handshake), else the defaults."""
    for message in cassette.messages:
        if (message.conn == conn and message.direction == "client" and message.wsp is not None
                and isinstance(message.wsp.payload, Handshake)):
            return tuple(message.wsp.payload.capabilities)
    return DEFAULT_CAPABILITIES


class _HandshakeFailed(Exception):
    def __init__(self, failure: str, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason
        self.status = status


class ConnPlayer:
    """One recorded connection played once (or looped, for a load test).

    ``record`` false keeps only counts and latencies (a load test's copies);
    ``order`` is the cross-connection order of a causal run, ``offsets`` the topic
    offsets shared by the connections of one run.
    """

    def __init__(self, script: Script, url: str, options: PlayOptions, *,
                 capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES,
                 order: _Order | None = None, offsets: TopicOffsets | None = None,
                 record: bool = True, origin_ts: float = 0.0,
                 server_closes_first: bool | None = None) -> None:
        self.script = script
        if server_closes_first is None:
            server_closes_first = script.server_close is not None and (
                script.client_close is None or script.server_close.t < script.client_close.t)
        self.server_closes_first = server_closes_first
        self.url = url
        self.options = options
        self.capabilities = capabilities
        self.order = order
        self.record = record
        self.origin_ts = origin_ts
        self.rewriter = Rewriter(offsets)
        self.outcome = ConnOutcome(script.conn, engine=script.wsp)
        self.have: Counter[AnswerKey] = Counter()
        #: answers received by kind (a key's first part: "Response", "Deliver", "message")
        self.kinds: Counter[str] = Counter()
        self._wanted: dict[str, int] | None = None  # the recorded answers by kind
        self.received = 0
        self.timeouts = 0
        self.rounds = 0  # rounds of the script played
        self.latency: list[float] = []
        self.session: ClientSession | None = None
        self.ws: DirectClientConnection | None = None
        self._t0 = 0.0
        self._step = -1
        self._step_at = 0.0
        self._answered = True
        self._progress = asyncio.Event()
        self._window = asyncio.Event()
        self._accepted: asyncio.Future[bool] | None = None
        self._error: WspError | None = None
        self._server_closed: tuple[int, str] | None = None
        self._flush_scheduled = False
        self._tasks: set[asyncio.Future[Any]] = set()
        #: answers are counted by key (causal timing); someone waits for ``_progress``
        self._by_key = options.timing == "causal"
        self._watched = False
        #: the player of the earlier connection whose session this one resumes
        self.resumes: ConnPlayer | None = None
        #: a later connection resumes this session: end the connection, not the session
        self.keep_session = False
        self.finished = asyncio.Event()

    # ------------------------------------------------------------------ receiving
    def _stored(self, message: CassetteMessage | None, keys: list[AnswerKey], now: float) -> None:
        self.received += 1
        index = self.received - 1
        if message is not None:
            self.outcome.received.append(message)
            index = len(self.outcome.received) - 1
        if not self._answered:
            self._answered = True
            seconds = max(0.0, now - self._step_at)
            self.latency.append(seconds)
            if self.record:
                self.outcome.latencies.append(Latency(self._step, index, seconds))
        if keys:
            kinds = self.kinds
            for key in keys:
                kinds[key[0]] += 1
            if self._by_key:
                have = self.have
                for key in keys:
                    have[key] += 1
        if self._watched:
            self._progress.set()
        if self.order is not None:
            self.order.notify()

    def _on_plain(self, data: bytes | str) -> None:
        now = clock()
        stored = None
        if self.record:
            t = now - self._t0
            if isinstance(data, str):
                stored = _STORED(self.script.conn, "server", t, "text", data, None, None, 2,
                                 None, "", None)
            else:
                stored = self._bare(t, data)
        self._stored(stored, _POSITION, now)

    def _bare(self, t: float, data: bytes) -> CassetteMessage:
        """A binary answer on a connection that is not an engine session: a wsp message
        when the connection speaks wsp (peers without the session handshake), so that
        it is compared as the recording's decoded one is; else its bytes."""
        version = self.script.connection.wsp_version
        if version is not None:
            try:
                msg = decode(data, version=version)
            except WspError:
                pass
            else:
                return _STORED(self.script.conn, "server", t, "binary", None, None, msg,
                               version, None, "", data)
        return _STORED(self.script.conn, "server", t, "binary", None, data, None, 2,
                       None, "", None)

    def _on_wsp(self, data: bytes | str) -> None:
        now = clock()
        session = self.session
        assert session is not None
        if isinstance(data, str):
            self._on_plain(data)
            self._fail(WspError("text frame from the server",
                                close_code=CloseCode.UNSUPPORTED_DATA))
            return
        try:
            msg = session.decode_data(data)
        except WspError as error:
            self._on_plain(data)
            self._fail(error)
            return
        shown = self.rewriter.restore(msg)
        self.rewriter.offsets.observe(msg)
        stored = None
        if self.record and not (session.state is State.CLOSING
                                and isinstance(msg.payload, WspClose)):
            # (the server's Close answering ours is the closing handshake: not an answer)
            stored = _STORED(self.script.conn, "server", now - self._t0, "binary", None, None,
                             shown, session.version, None, "", None)
        self._stored(stored, answer_keys(shown), now)
        if self._error is not None:
            return
        answering = session.state is State.CLOSING  # a Close now answers ours
        try:
            events = session.receive(msg, now)
        except WspError as error:
            self._fail(error)
            return
        for event in events:
            kind = type(event)
            if kind is ev.Acked:
                self._window.set()
            elif kind is ev.Accepted:
                self._settle(True)
                self._window.set()
            elif kind is ev.PeerClosed and not answering:
                assert isinstance(event, ev.PeerClosed)
                self._server_closed = (event.code, event.reason)
        if session.outbox or session.ack_pending:
            self._flush()
        if self._server_closed is not None and session.state is State.CLOSING:
            ws = self.ws
            if ws is not None:
                self._spawn(ws.close(*closing_after(session)))
            self._settle(False)

    def _settle(self, accepted: bool) -> None:
        fut = self._accepted
        if fut is not None and not fut.done():
            fut.set_result(accepted)

    def _fail(self, error: WspError) -> None:
        if self._error is None:
            self._error = error
        self._settle(False)
        ws = self.ws
        if ws is not None:
            self._spawn(close_for(self.session, ws, error))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ writing
    def _flush(self) -> None:
        self._flush_scheduled = False
        ws, session = self.ws, self.session
        if ws is None or session is None:
            return
        for chunk in session.data_to_send():
            write_now(ws, chunk)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _timers(self) -> None:
        """Heartbeats, retransmissions and the dead-server check of the session."""
        session = self.session
        assert session is not None
        while True:
            deadline = session.next_deadline()
            if deadline is None:
                await asyncio.sleep(0.5)
                continue
            await asyncio.sleep(max(0.0, min(1.0, deadline - clock())))
            if clock() < deadline:
                continue
            try:
                session.on_timer(clock())
            except WspError as error:
                self._fail(error)
                return
            self._flush()

    # ------------------------------------------------------------------ waiting
    @property
    def closed(self) -> bool:
        ws = self.ws
        return ws is None or ws.protocol.close_rcvd is not None or ws.state.value >= 2

    async def _until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` (re-checked on each message), at most ``timeout``."""
        if ready():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._watched = True
        try:
            while not ready():
                remaining = deadline - loop.time()
                if remaining <= 0 or self.closed:
                    return ready()
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 0.25)):
                        await self._progress.wait()
            return True
        finally:
            self._watched = False

    async def _sleep_until(self, when: float) -> None:
        delay = when - clock()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _room(self) -> None:
        """Wait for flow control: the engine's window, outstanding requests, the socket.

        A server that makes no progress for ``wait`` seconds (no acknowledgement, no
        answer, no reading) is given up on: a timeout is counted; when it stopped
        reading, the connection is aborted (what is left is not sent)."""
        session, ws = self.session, self.ws
        loop = asyncio.get_running_loop()
        if session is not None:
            deadline = loop.time() + self.options.wait
            while (not session.can_send() or len(self.rewriter.requests) >= self.options.window) \
                    and not self.closed:
                if loop.time() >= deadline:
                    self.timeouts += 1
                    break
                if self._flush_scheduled:
                    self._flush()
                self._window.clear()
                self._progress.clear()
                self._watched = True
                waiters = [asyncio.ensure_future(self._window.wait()),
                           asyncio.ensure_future(self._progress.wait())]
                await asyncio.wait(waiters, timeout=0.05, return_when=asyncio.FIRST_COMPLETED)
                self._watched = False
                for waiter in waiters:
                    waiter.cancel()
                if self._window.is_set() or self._progress.is_set():
                    deadline = loop.time() + self.options.wait
        if ws is not None and ws.paused:
            await self._drain(ws)

    async def _drain(self, ws: DirectClientConnection) -> None:
        """Wait until the transport's buffer drained, at most ``wait`` seconds (then
        the server is not reading: the connection is aborted)."""
        try:
            async with asyncio.timeout(max(self.options.wait, 0.1)):
                await ws.drain()
        except TimeoutError:  # before OSError, of which it is a subclass
            self.timeouts += 1
            ws.transport.abort()
        except (ConnectionClosed, OSError):
            pass

    # ------------------------------------------------------------------ playing
    async def run(self, *, iterations: int = 1, until: float | None = None,
                  limiter: RateLimiter | None = None,
                  play_start: float | None = None) -> ConnOutcome:
        """Play the connection; ``iterations`` times over (``until``: a clock time
        after which no new round starts), each send paced by ``limiter``."""
        script, o = self.script, self.options
        start = play_start if play_start is not None else clock()
        if o.timing == "original":
            late = max(0.0, script.connection.ts - self.origin_ts)
            await self._sleep_until(start + late / o.speed)
        elif (o.timing == "causal" and self.order is not None
              and not await self.order.wait(script.conn, script.connection.ts, o.wait)):
            self.timeouts += 1
        if self.resumes is not None:
            await self.resumes.finished.wait()
        try:
            await self._open()
        except _HandshakeFailed as failed:
            self.outcome.handshake_error = failed.reason
            self.outcome.failure = failed.failure
            self.outcome.status = failed.status
            self.outcome.duration = clock() - self._t0 if self._t0 else 0.0
            await self._abandon()
            return self.outcome
        timer = asyncio.ensure_future(self._timers()) if self.session is not None else None
        try:
            while True:
                await self._play_steps(first=self.rounds == 0, limiter=limiter)
                self.rounds += 1
                if self.closed or self.rounds >= iterations or (
                        until is not None and clock() >= until):
                    break
                self.have.clear()
                self.kinds.clear()
            if self.order is not None:
                self.order.done.add(script.conn)
                self.order.notify()
            await self._close()
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            await self._abandon()
        self.outcome.duration = clock() - self._t0
        return self.outcome

    async def _abandon(self) -> None:
        self.finished.set()
        if self.order is not None:
            self.order.done.add(self.script.conn)
            self.order.notify()
        ws = self.ws
        if ws is not None:
            ws.on_message = None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                    await ws.close()
        for task in list(self._tasks):
            task.cancel()

    async def _open(self) -> None:
        script, o = self.script, self.options
        connection = script.connection
        target = parse_ws_url(self.url)
        parts = urlsplit(self.url)
        resource = target.resource if target.resource != "/" else connection.path
        path, _, query = resource.partition("?")
        url = urlunsplit((parts.scheme, parts.netloc, path, query, ""))
        protocols = list(connection.subprotocols) or (list(SUBPROTOCOLS) if script.wsp else [])
        headers, agent = _request_headers(connection.headers, o.headers)
        deflate = "permessage-deflate" in (connection.extensions or "")
        tls: dict[str, Any] = {}
        if target.secure:
            tls["ssl"] = o.ssl_context or client_context()
        self._t0 = clock()
        try:
            ws = await connect(
                url,
                subprotocols=[Subprotocol(p) for p in protocols] or None,
                additional_headers=headers or None,
                user_agent_header=agent if agent is not None else "wsp-replay",
                compression="deflate" if deflate else None,
                open_timeout=o.open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                ping_interval=None,
                max_size=o.max_size,
                max_queue=64,
                proxy=None,
                create_connection=DirectClientConnection,
                **tls,
            )
        except InvalidStatus as error:
            status = error.response.status_code
            kind = "refused" if status in (401, 403) else "unreachable"
            raise _HandshakeFailed(kind, f"HTTP {status}", status) from None
        except InvalidURI:
            raise ConfigError(f"not a WebSocket URL: {url}") from None
        except (OSError, TimeoutError) as error:
            raise _HandshakeFailed("unreachable", connect_failure(error, o.open_timeout,
                                                                  target.secure)) from None
        except InvalidHandshake as error:
            raise _HandshakeFailed("failed", str(error) or type(error).__name__) from None
        assert isinstance(ws, DirectClientConnection)
        self.ws = ws
        self.outcome.status = 101
        self.outcome.subprotocol = ws.subprotocol
        response = ws.response
        self.outcome.extensions = response.headers.get("Sec-WebSocket-Extensions") \
            if response is not None else None
        if not script.wsp:
            ws.attach(self._on_plain)
            return
        version = version_of(ws)
        if version is None:
            await ws.close(CloseCode.PROTOCOL_ERROR, "no wsp subprotocol selected")
            raise _HandshakeFailed("failed", "the server selected no wsp subprotocol", 101)
        await self._session_handshake(ws, version)

    async def _session_handshake(self, ws: DirectClientConnection, version: int) -> None:
        o = self.options
        limit = o.max_size or (1 << 30)
        previous = self.resumes
        earlier = previous.session if previous is not None else None
        if previous is not None and earlier is not None and earlier.state is State.RECONNECTING:
            session = earlier  # its resume token and session id: the engine resumes
            self.rewriter.offsets = previous.rewriter.offsets
        else:
            session = ClientSession(
                Credentials(secret=o.secret, token=o.token),
                SessionConfig(window=o.window, capabilities=self.capabilities,
                              limits=Limits(max_message=limit, max_decompressed=limit,
                                            max_bin_len=limit)),
            )
        self.session = session
        session.connection_made(clock(), version=version, nonce=nonce())
        self._accepted = asyncio.get_running_loop().create_future()
        ws.attach(self._on_wsp)
        closed: asyncio.Future[Any] = asyncio.ensure_future(ws.wait_closed())
        waiting: set[asyncio.Future[Any]] = {self._accepted, closed}
        try:
            await asyncio.wait(waiting, timeout=o.open_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if self._accepted.done() and self._accepted.result():
            return
        error = self._error
        code = ws.protocol.close_rcvd.code if ws.protocol.close_rcvd is not None else None
        reason = ws.protocol.close_rcvd.reason if ws.protocol.close_rcvd is not None else ""
        if self._server_closed is not None:
            code, reason = self._server_closed
        if isinstance(error, AuthenticationError):
            raise _HandshakeFailed("refused", f"refused: {error}", 101)
        if code is not None and code in REFUSING_CODES:
            raise _HandshakeFailed("refused", f"refused: {reason or 'no reason given'} ({code})",
                                   101)
        if error is not None:
            raise _HandshakeFailed("failed", str(error), 101)
        if code is not None:
            raise _HandshakeFailed("failed", f"the server closed the connection: "
                                             f"{reason or 'no reason given'} ({code})", 101)
        if not self._accepted.done():
            ws.on_message = None
            raise _HandshakeFailed("unreachable",
                                   f"no wsp handshake answer within {o.open_timeout:g} s", 101)
        raise _HandshakeFailed("failed", "the connection closed during the wsp handshake", 101)

    async def _play_steps(self, *, first: bool, limiter: RateLimiter | None) -> None:
        script, o = self.script, self.options
        steps = script.steps
        timing = o.timing
        order = self.order if first else None
        base = self._t0 if first else clock()
        offset = 0.0 if first or not steps else steps[0].t
        need: Counter[AnswerKey] = Counter()
        ts = script.connection.ts
        session = self.session
        causal = timing == "causal"
        burst = 0
        for step in steps:
            if causal:
                keys = [k for m in script.answers_before(step.index) for k in _keys_of(m)]
                need.update(keys)
                if not await self._until(_covered(self.have, {k: need[k] for k in keys}),
                                         o.wait):
                    self.timeouts += 1
                if order is not None and not await order.wait(script.conn, ts + step.t, o.wait):
                    self.timeouts += 1
            elif timing == "original":
                await self._sleep_until(base + (step.t - offset) / o.speed)
            if session is not None and (timing == "fast" or not session.can_send()):
                await self._room()
            if limiter is not None:
                await limiter.take()
            if self.closed:
                self._not_sent(step.index, len(steps))
                return
            now = clock()
            if not await self._send(step.message, now):
                continue
            if timing == "fast":
                burst += 1
                if burst >= FLUSH_AT:  # let the answers in
                    burst = 0
                    await asyncio.sleep(0)
            self._step, self._step_at, self._answered = step.index, now, False
            self.outcome.sent += 1
            if order is not None:
                order.sent[script.conn] += 1
                order.notify()
        if self._flush_scheduled:
            self._flush()
        # the last answers: as many of each kind as recorded (and, causal, the very keys
        # recorded after the last step)
        if self._wanted is None:
            self._wanted = dict(Counter(k[0] for m in _answers(script) for k in _keys_of(m)))
        done = _covered(self.kinds, self._wanted)
        if causal:
            last = [k for m in script.answers_before(len(steps)) for k in _keys_of(m)]
            need.update(last)
            exact = _covered(self.have, {k: need[k] for k in last})
            ready: Callable[[], bool] = lambda: done() and exact()  # noqa: E731
        else:
            ready = done
        if not await self._until(ready, o.wait):
            self.timeouts += 1
        await self._quiet(min(o.linger, o.wait))

    async def _quiet(self, linger: float) -> None:
        """Wait until nothing has come for ``linger`` seconds (at most ``20 * linger``)."""
        if linger <= 0:
            return
        for _ in range(20):
            seen = self.received
            await asyncio.sleep(linger)
            if self.received == seen:
                return

    def _not_sent(self, index: int, count: int) -> None:
        if index < count:
            last = f"-{count - 1}" if count - 1 > index else ""
            self.outcome.skipped.append(f"steps {index}{last}: not sent, the connection was "
                                        "closed")

    async def _send(self, message: CassetteMessage, now: float) -> bool:
        """Send one recorded client message; False when it was skipped."""
        session, ws = self.session, self.ws
        assert ws is not None
        if session is not None:
            if message.wsp is None:
                self.outcome.skipped.append(f"a {message.opcode} message that is not wsp, "
                                            "on a wsp session")
                return False
            try:
                reason = self.rewriter.send(session, message.wsp, now)
            except WspError as error:
                reason = f"the session could not send it: {error}"
            if reason is not None:
                self.outcome.skipped.append(f"{message.wsp.type_name}: {reason}")
                return False
            if len(session.outbox) >= FLUSH_AT:
                self._flush()
            else:
                self._schedule_flush()
            return True
        # written at once (as the engine's output is: wsio.write_now), paced by the
        # transport's buffer; a text message recorded as bytes goes through send()
        if message.opcode == "text" and message.text is None:
            try:
                await ws.send(message.payload(), text=True)
            except ConnectionClosed:
                return self._closed_before(message)
            return True
        data: bytes | str = message.payload() if message.text is None else message.text
        if not write_now(ws, data):
            return self._closed_before(message)
        if ws.paused:
            await self._drain(ws)
        return True

    def _closed_before(self, message: CassetteMessage) -> bool:
        self.outcome.skipped.append(f"a {message.opcode} message: the connection was closed")
        return False

    async def _close(self) -> None:
        script, o = self.script, self.options
        ws = self.ws
        assert ws is not None
        if self.server_closes_first or self._server_closed is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(o.wait):
                    await ws.wait_closed()
        elif o.timing == "original" and script.client_close is not None:
            await self._sleep_until(self._t0 + script.client_close.t / o.speed)
        close = script.client_close
        code = close.close_code if close is not None and close.close_code is not None else 1000
        reason = close.close_reason if close is not None and close.close_code is not None else ""
        session = self.session
        if self.keep_session and (close is None or code in RESUMABLE_CODES):
            # a later connection resumes the session: only the connection ends
            code, reason = (code, reason) if close is not None else (1001, "")
        elif not self.closed and session is not None and session.state is State.ACTIVE:
            with contextlib.suppress(WspError):
                session.close(code, reason, clock())
                self._flush()
        if not self.closed:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                await ws.wait_closed()
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if session is not None:
            if session.state is State.CLOSING:
                session.closed()
            else:  # an established session stays resumable (Reconnecting)
                session.connection_lost(clock())
        proto = ws.protocol
        rcvd = proto.close_rcvd
        outcome = self.outcome
        if rcvd is not None and rcvd.code != 1005:
            outcome.close_code, outcome.close_reason = rcvd.code, rcvd.reason
        if self._server_closed is not None or proto.close_rcvd_then_sent:
            outcome.closed_by = "server"
            if outcome.close_code is None and self._server_closed is not None:
                outcome.close_code, outcome.close_reason = self._server_closed
        elif proto.close_sent is not None:
            outcome.closed_by = "client"
        else:
            outcome.closed_by = "cut"


def _server_closes_first(cassette: Cassette, script: Script) -> bool:
    """Whether the recording shows the server's close frame before the client's (at
    the same ``t``, the one first in the cassette)."""
    server, client = script.server_close, script.client_close
    if server is None or client is None:
        return server is not None
    if server.t != client.t:
        return server.t < client.t
    for message in cassette.messages:
        if message is server or message is client:
            return message is server
    return False


def _scripts(cassette: Cassette, conns: Sequence[int] | None) -> list[Script]:
    chosen = list(cassette.connections) if conns is None else list(conns)
    missing = [c for c in chosen if c not in cassette.connections]
    if missing:
        raise ConfigError(f"the recording has no connection {missing[0]} "
                          f"(it has {', '.join(map(str, cassette.connections)) or 'none'})")
    return [script_of(cassette, c) for c in chosen]


def players_of(cassette: Cassette, url: str, options: PlayOptions,
               conns: Sequence[int] | None = None, *, record: bool = True) -> list[ConnPlayer]:
    """One :class:`ConnPlayer` per chosen connection, sharing one run's order and
    topic offsets (a load test makes a set per copy)."""
    options.check()
    parse_ws_url(url)
    scripts = _scripts(cassette, conns)
    order = _Order(scripts) if options.timing == "causal" and len(scripts) > 1 else None
    offsets = TopicOffsets.of(cassette)
    origin = min((s.connection.ts for s in scripts), default=0.0)
    players = [ConnPlayer(s, url, options, order=order, offsets=offsets, record=record,
                          origin_ts=origin,
                          capabilities=_recorded_capabilities(cassette, s.conn)
                          if s.wsp else DEFAULT_CAPABILITIES,
                          server_closes_first=_server_closes_first(cassette, s))
               for s in scripts]
    if order is not None:
        order.players = {p.script.conn: p for p in players}
    _link_resumes(cassette, players)
    return players


def _link_resumes(cassette: Cassette, players: Sequence[ConnPlayer]) -> None:
    """A connection whose recorded Handshake presents the resume token an earlier
    connection's HandshakeResponse issued resumes that connection's replayed session."""
    issued: dict[bytes, int] = {}
    presented: dict[int, bytes] = {}
    for message in cassette.messages:
        p = message.wsp.payload if message.wsp is not None else None
        if isinstance(p, HandshakeResponse) and p.resume_token and message.direction == "server":
            issued.setdefault(p.resume_token, message.conn)
        elif isinstance(p, Handshake) and p.resume_token and message.direction == "client":
            presented.setdefault(message.conn, p.resume_token)
    by_conn = {player.script.conn: player for player in players if player.script.wsp}
    for conn, token in presented.items():
        earlier = by_conn.get(issued.get(token, conn))
        later = by_conn.get(conn)
        if earlier is not None and later is not None and earlier is not later \
                and earlier.script.connection.ts <= later.script.connection.ts:
            later.resumes = earlier
            earlier.keep_session = True


async def play(cassette: Cassette, url: str, options: PlayOptions | None = None,
               conns: Sequence[int] | None = None) -> list[ConnOutcome]:
    """Play the chosen connections (all by default) against ``url``; one outcome
    each, in the order asked. Bad options or URL: :class:`ConfigError`; what the
    target did (refused, unreachable, closed) is in the outcomes."""
    options = options or PlayOptions()
    players = players_of(cassette, url, options, conns)
    start = clock()
    return list(await asyncio.gather(*(p.run(play_start=start) for p in players)))
