"""The wsp client library: an async API over one auto-reconnecting session.

    async with Client("ws://127.0.0.1:8765", secret=b"...") as client:
        await client.publish("news", b"hello")          # returns when acknowledged
        async for item in client.subscribe("news"):      # Delivery or ContinuityLostNotice
            ...
        reply = await client.request("echo", b"ping")

Reconnection: exponential back-off with full jitter (base 100 ms, cap 30 s by
default), then the session is resumed with its token: unacknowledged messages
are sent again, topics are re-subscribed from the last offset delivered, so the
application sees every topic message exactly once and in order — or a
:class:`~wsproto_tools.engine.events.ContinuityLostNotice` saying what is gone.
Authentication refusals (4001), forbidden topics (4003) and refused origins
(4010) are not retried and raise :class:`AuthenticationError`; a session the
server ended (a wsp Close, or a refusal such as 1008 or 1009) raises
:class:`ServerRefused` with the server's reason; a ``wss://`` certificate that
fails verification raises :class:`ConnectionFailed` at once (it cannot heal).

Timeouts: ``open_timeout`` (10 s) bounds each connection attempt from the TCP
connect to the wsp HandshakeResponse (upgrade included): a server that accepts
the upgrade and then stays silent is a failed attempt ("no wsp handshake answer
within 10 s"), retried like a refused connection. When the client fails a
connection itself (the server broke the WebSocket or wsp protocol: a message over
``max_message_size``, a reserved bit, a Batch over its limits...) it sends its close
and waits at most :data:`CLOSE_TIMEOUT` for the server's, then aborts the TCP
connection, and raises :class:`ServerMisbehaved` saying what was wrong.
"""

from __future__ import annotations

__all__ = [
    "Client",
    "ClientClosed",
    "ClientOptions",
    "ServerMisbehaved",
    "ServerRefused",
    "Subscription",
]

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidURI,
    PayloadTooBig,
    ProtocolError,
)
from websockets.protocol import State as WsState
from websockets.typing import Origin, Subprotocol

from wsproto_tools.codec import SUBPROTOCOLS, BinaryData, DeltaUpdate, Payload, TextData
from wsproto_tools.codec.limits import Limits
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import DEFAULT_CAPABILITIES, Credentials, SessionConfig
from wsproto_tools.engine.states import State
from wsproto_tools.engine.timing import Backoff
from wsproto_tools.exceptions import (
    AuthenticationError,
    CloseCode,
    ConfigError,
    ConnectionFailed,
    RemoteProtocolError,
    WspError,
)
from wsproto_tools.transports.session_io import connect_failure
from wsproto_tools.transports.tls import client_context, parse_ws_url
from wsproto_tools.transports.wsio import (
    RESUMABLE_CODES,
    DirectClientConnection,
    DirectMixin,
    clock,
    close_for,
    closing_after,
    nonce,
    version_of,
    write_now,
)

log = logging.getLogger("wsproto_tools.client")

#: Close codes after which reconnecting cannot help.
FATAL_CODES = {
    int(CloseCode.WSP_AUTH_FAILED): AuthenticationError,
    int(CloseCode.WSP_FORBIDDEN_TOPIC): AuthenticationError,
    int(CloseCode.WSP_ORIGIN_REFUSED): AuthenticationError,
}

#: Close codes that refuse what the client sent: reconnecting would only repeat it.
REFUSED_CODES = frozenset(
    {
        int(CloseCode.PROTOCOL_ERROR),
        int(CloseCode.UNSUPPORTED_DATA),
        int(CloseCode.INVALID_DATA),
        int(CloseCode.POLICY_VIOLATION),
        int(CloseCode.MESSAGE_TOO_BIG),
        int(CloseCode.MANDATORY_EXTENSION),
        int(CloseCode.WSP_UNNEGOTIATED),
    }
)

Item = ev.Delivery | ev.ContinuityLostNotice
#: Queued messages that are written at once, without waiting for the loop to turn.
FLUSH_AT = 64
#: Seconds to wait for the server's close (WebSocket closing handshake) before the
#: TCP connection is aborted.
CLOSE_TIMEOUT = 2.0
_DELIVERY = ev.Delivery


class ClientClosed(ConnectionFailed):
    """The client was closed, or gave up reconnecting."""


class _NoHandshake(Exception):
    """The server did not finish the wsp handshake in time (a failed attempt)."""


class _Connection(DirectClientConnection):
    """The client's connection: its close is bounded even when nobody awaits it.

    ``websockets`` enforces the close timeout only inside its own calls (``recv``,
    ``close``); when it fails a connection from ``data_received`` (an oversized
    frame, a reserved bit...) the client is not in one, so the deadline is kept
    here: the TCP connection is aborted if the server has not closed it by then.
    """

    _overdue: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.close_deadline is not None and self._overdue is None:
            self._overdue = self.loop.call_at(self.close_deadline, self.abort)

    def abort(self) -> None:
        """End the TCP connection now (RST), unless it is already gone."""
        transport = self.transport
        if transport is not None and not self.connection_lost_waiter.done():
            transport.abort()

    def hang_up(self, code: int, reason: str) -> None:
        """Send a close frame (when still open) and abort at once."""
        if self.protocol.state is WsState.OPEN:
            with contextlib.suppress(Exception):
                self.protocol.send_close(code, reason)
                self.send_data()
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        super().connection_lost(exc)


class ServerRefused(ConnectionFailed):
    """The server ended the session (a wsp Close) or refused what was sent (1008,
    1009...): reconnecting cannot help. ``close_code`` and ``reason`` are the server's."""

    def __init__(self, message: str, *, close_code: int | None = None, reason: str = "") -> None:
        super().__init__(message, close_code=close_code)
        self.reason = reason


class ServerMisbehaved(ConnectionFailed, RemoteProtocolError):
    """The server broke the WebSocket or wsp protocol and the client closed the
    connection (``close_code`` is the code the client sent): not retried."""

    def __init__(self, message: str, *, close_code: int) -> None:
        super().__init__(message, close_code=close_code)


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n:,} bytes"


def misbehaved(error: BaseException, max_size: int) -> ServerMisbehaved | None:
    """What the server did wrong, when ``error`` says it broke a protocol (else None)."""
    if isinstance(error, AuthenticationError):
        return None
    if isinstance(error, PayloadTooBig):
        code = int(CloseCode.MESSAGE_TOO_BIG)
        return ServerMisbehaved(
            f"the server sent a message larger than {_size(max_size)} ({code})", close_code=code
        )
    if isinstance(error, ProtocolError | UnicodeDecodeError):
        code = int(
            CloseCode.INVALID_DATA
            if isinstance(error, UnicodeDecodeError)
            else CloseCode.PROTOCOL_ERROR
        )
        return ServerMisbehaved(
            f"the server broke the WebSocket protocol: {error} ({code})", close_code=code
        )
    if isinstance(error, WspError) and not isinstance(error, ConnectionFailed):
        code = int(error.close_code)
        return ServerMisbehaved(
            f"the server broke the wsp protocol: {error} ({code})", close_code=code
        )
    return None


def refusal(code: int, reason: str, what: str = "server closed the connection") -> WspError:
    """The error for a server's refusal with ``code`` (auth/forbidden: AuthenticationError)."""
    text = f"{what}: {reason or 'no reason given'} ({code})"
    kind = FATAL_CODES.get(code)
    if kind is not None:
        return kind(text, close_code=code)
    return ServerRefused(text, close_code=code, reason=reason)


@dataclass
class ClientOptions:
    secret: bytes | None = None
    token: str | None = None
    version: int = 2  # preferred wire version (the server may pick the other)
    backoff_base: float = 0.1
    backoff_cap: float = 30.0
    max_attempts: int | None = None  # reconnect attempts in a row; None: forever
    connect_attempts: int = 1  # attempts for the very first connection
    open_timeout: float = 10.0
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 45.0
    window: int = 1024
    queue_size: int = 10_000  # per subscription; a full queue stops reading (backpressure)
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    max_message_size: int = 1 << 20
    seed: int | None = None
    client_id: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # extra HTTP headers of every handshake
    origin: str | None = None  # the Origin header of every handshake
    cafile: str | None = None  # wss://: trust these CAs besides the system's
    insecure: bool = False  # wss://: do not verify the certificate
    ssl_context: ssl.SSLContext | None = None  # wss://: use this context (cafile/insecure unused)
    extra: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")


class Inbox(Generic[T]):
    """A bounded buffer filled synchronously by the connection, drained by the app.

    When it holds ``size`` items the connection stops reading from the socket
    (``pause_reading``) until the application catches up, so backpressure reaches
    the server, which treats a subscriber that stays behind as a slow consumer.
    ``None`` marks the end (the client closed).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: deque[T | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused: DirectMixin | None = None

    def _push(self, item: T | None, ws: DirectMixin | None = None) -> None:
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if ws is not None and len(self.items) >= self.size and self._paused is None:
            self._paused = ws
            ws.pause_reading()

    async def _next(self) -> T | None:
        items = self.items
        while not items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        item = items.popleft()
        paused = self._paused
        if paused is not None and len(items) < self.size // 2 + 1:
            self._paused = None
            paused.resume_reading()
        return item

    async def get(self) -> T:
        """The next item; raise :class:`ClientClosed` when the client closed."""
        items = self.items
        if items and self._paused is None:
            first = items[0]
            if first is not None:
                items.popleft()
                return first
        item = await self._next()
        if item is None:
            self.items.appendleft(None)
            raise ClientClosed("the client is closed")
        return item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            item = await self._next()
            if item is None:
                return
            yield item


class Subscription(Inbox[Item]):
    """Deliveries of one topic, in order (and ContinuityLostNotice for gaps)."""

    def __init__(self, topic: str, size: int) -> None:
        super().__init__(size)
        self.topic = topic
        self.confirmed = asyncio.Event()


class Client:
    """One wsp session that survives reconnections."""

    def __init__(
        self,
        url: str,
        options: ClientOptions | None = None,
        *,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_wire: Callable[[str, bytes | str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """``on_event(name, fields)`` hears the session's events (connected,
        reconnecting...); ``on_wire(direction, data)`` sees every WebSocket message
        of the session as it is written (``"client"``) or received (``"server"``),
        for tools that show the traffic (it must not raise, and must be quick)."""
        self.url = url
        self.options = options or ClientOptions(**kwargs)
        o = self.options
        if o.version not in (1, 2):
            raise ConfigError("wire version must be 1 or 2")
        self.secure = parse_ws_url(url).secure
        self.ssl: ssl.SSLContext | None = None
        if self.secure:
            self.ssl = o.ssl_context or client_context(o.cafile, o.insecure)
        self.on_event = on_event
        self.on_wire = on_wire
        self.session = self._new_session()
        self._rng = random.Random(o.seed)
        self.backoff = Backoff(
            self._rng.random, base=o.backoff_base, cap=o.backoff_cap, max_attempts=o.max_attempts
        )
        self.ws: _Connection | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self.data: Inbox[TextData | BinaryData] = Inbox(o.queue_size)
        self._waiting: dict[int, tuple[Payload, asyncio.Future[None]]] = {}
        self._requests: dict[int, tuple[str, bytes, asyncio.Future[ev.Reply]]] = {}
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._next_request = 0
        self._next_publish = 0
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._closing = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._conn_error: WspError | None = None
        self._accepted_here = False  # the current connection got its HandshakeResponse
        self._timer_wake = asyncio.Event()
        self.error: WspError | None = None
        self.connections = 0
        self.resumes = 0

    def _new_session(self) -> ClientSession:
        o = self.options
        return ClientSession(
            Credentials(secret=o.secret, token=o.token),
            SessionConfig(
                heartbeat_interval=o.heartbeat_interval,
                heartbeat_timeout=o.heartbeat_timeout,
                window=o.window,
                capabilities=o.capabilities,
                limits=Limits(
                    max_message=o.max_message_size,
                    max_decompressed=o.max_message_size,
                    max_bin_len=o.max_message_size,
                ),
            ),
            client_id=o.client_id,
        )

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect and finish the handshake; raise if the first connection fails."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
            self._timer = asyncio.create_task(self._timers())
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait({ready, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            await self._raise_failure()

    async def _raise_failure(self) -> None:
        if self._runner is not None and self._runner.done():
            with contextlib.suppress(asyncio.CancelledError):
                self._runner.result()
        raise self.error or ClientClosed("the client is closed")

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the session (a wsp Close, then the WebSocket close)."""
        if self._closing:
            return
        self._closing = True
        ws = self.ws
        if ws is not None and self.session.state is State.ACTIVE:
            self.session.close(code, reason, clock())
            self._flush()
            with contextlib.suppress(ConnectionClosed):
                await ws.close(code, reason)
        elif ws is not None:
            await ws.close(code, reason)
        for task in (self._runner, self._timer):
            if task is None:
                continue
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WspError):
                await task  # also collects an error already reported through self.error
        self._fail_all(ClientClosed("the client is closed"))

    def _fail_all(self, error: WspError) -> None:
        if self.error is None:
            self.error = error
        error = self.error  # the first cause is the one worth reporting
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(error)
        for _, _, rfut in self._requests.values():
            if not rfut.done():
                rfut.set_exception(error)
        for pfut in self._pings.values():
            if not pfut.done():
                pfut.set_exception(error)
        self._waiting.clear()
        self._requests.clear()
        self._pings.clear()
        for sub in self.subscriptions.values():
            sub.confirmed.set()  # wake subscribe(); it re-raises self.error
            if not sub.items or sub.items[-1] is not None:
                sub._push(None)
        if not self.data.items or self.data.items[-1] is not None:
            self.data._push(None)
        self._window_open.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, name: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, fields)

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        o = self.options
        first = True
        attempts_left = o.connect_attempts
        names = SUBPROTOCOLS if o.version == 2 else tuple(reversed(SUBPROTOCOLS))
        offered = [Subprotocol(name) for name in names]
        tls: dict[str, Any] = {"ssl": self.ssl} if self.secure else {}
        loop = asyncio.get_running_loop()
        try:
            while not self._closing:
                started = loop.time()
                try:
                    ws = await connect(
                        self.url,
                        subprotocols=offered,
                        max_size=o.max_message_size,
                        ping_interval=None,
                        compression=None,
                        open_timeout=o.open_timeout,
                        close_timeout=CLOSE_TIMEOUT,
                        max_queue=64,
                        proxy=None,
                        create_connection=_Connection,
                        additional_headers=list(o.headers) or None,
                        origin=Origin(o.origin) if o.origin else None,
                        **tls,
                    )
                except (OSError, InvalidHandshake, TimeoutError, InvalidURI) as error:
                    if isinstance(error, InvalidURI):
                        raise ConfigError(f"not a WebSocket URL: {self.url}") from None
                    why = connect_failure(error, o.open_timeout, self.secure)
                    if isinstance(error, ssl.SSLCertVerificationError):  # it cannot heal
                        raise ConnectionFailed(f"cannot connect to {self.url}: {why}") from None
                    if first:
                        attempts_left -= 1
                        if attempts_left <= 0:
                            raise ConnectionFailed(f"cannot connect to {self.url}: {why}") from None
                    await self._pause(f"connect failed: {why}")
                    continue
                self.connections += 1
                try:
                    assert isinstance(ws, _Connection)
                    await self._connection(ws, started + o.open_timeout)
                except _NoHandshake:
                    why = f"no wsp handshake answer within {o.open_timeout:g} s"
                    if self.session.state is State.CLOSED and not self.session.session_id:
                        self.session = self._new_session()  # no session yet: start afresh
                    if first:
                        attempts_left -= 1
                        if attempts_left <= 0:
                            raise ConnectionFailed(f"cannot connect to {self.url}: {why}") from None
                    await self._pause(f"connect failed: {why}")
                    continue
                finally:
                    self.ws = None
                first = first and not self._ready.is_set()
                if self._closing or self.session.state is State.CLOSED:
                    return
                await self._pause("connection lost")
        except WspError as error:
            self._fail_all(error)
            raise
        finally:
            self._fail_all(ClientClosed("the client is closed"))

    async def _pause(self, why: str) -> None:
        try:
            delay = self.backoff.next_delay()
        except ConfigError:
            raise ClientClosed(
                f"gave up after {self.backoff.attempt} reconnect attempts ({why})"
            ) from None
        self._emit("reconnecting", delay=round(delay, 3), reason=why, attempt=self.backoff.attempt)
        await asyncio.sleep(delay)

    async def _connection(self, ws: _Connection, deadline: float) -> None:
        """Drive the session over one connection until it ends.

        Incoming messages are processed synchronously in the protocol callback
        (:meth:`_on_message`); this task waits for the connection to close and
        decides what its end means. Unless the HandshakeResponse came by
        ``deadline`` (loop time), the connection is ended and :class:`_NoHandshake`
        raised.
        """
        session = self.session
        self.ws = ws
        self._conn_error = None
        self._accepted_here = False
        now = clock()
        version = version_of(ws)
        if version is None:
            await ws.close(CloseCode.PROTOCOL_ERROR, "no wsp subprotocol selected")
            raise ConnectionFailed("the server selected no wsp subprotocol")
        session.connection_made(now, version=version, nonce=nonce())
        late: list[bool] = []

        def expire() -> None:
            if not self._accepted_here and self._conn_error is None:
                late.append(True)
                ws.hang_up(
                    int(CloseCode.WSP_HANDSHAKE_TIMEOUT),
                    f"no wsp handshake answer within {self.options.open_timeout:g} s",
                )

        timer = asyncio.get_running_loop().call_at(deadline, expire)
        ws.attach(self._on_message)
        try:
            await ws.wait_closed()
            timer.cancel()
            error = self._conn_error
            if error is not None:
                if not isinstance(error, AuthenticationError):
                    log.debug("protocol error from the server: %s", error)
                failure = misbehaved(error, self.options.max_message_size)
                if failure is None:
                    raise error
                raise failure from error
            parser_exc = ws.protocol.parser_exc  # websockets failed it: the server's fault
            failed = parser_exc and misbehaved(parser_exc, self.options.max_message_size)
            if failed and not self._closing:
                log.debug("protocol error from the server: %s", parser_exc)
                raise failed from parser_exc
            if late and not self._closing and self.error is None:
                raise _NoHandshake
            self._closed_by_server(ws.close_code, ws.close_reason or "")
        finally:
            timer.cancel()
            ws.on_message = None
            inboxes: list[Inbox[Any]] = [*self.subscriptions.values(), self.data]
            for inbox in inboxes:
                if inbox._paused is ws:
                    inbox._paused = None
            if session.state is not State.CLOSED:
                if session.state is State.CLOSING:
                    session.closed()
                else:
                    session.connection_lost(clock())
            if not self._closing and self._ready.is_set() and self.error is None:
                self._emit("disconnected")

    def _on_message(self, data: bytes | str) -> None:
        """One WebSocket message from the server (called from data_received)."""
        if self.on_wire is not None:
            self.on_wire("server", data)
        if self._conn_error is not None:
            return
        ws = self.ws
        try:
            if isinstance(data, str):
                raise WspError("text frame from the server", close_code=CloseCode.UNSUPPORTED_DATA)
            subscriptions = self.subscriptions
            session = self.session
            for event in session.receive_data(data, clock()):
                if type(event) is _DELIVERY:  # the hot case, as in _on_event
                    sub = subscriptions.get(event.topic)
                    if sub is not None:
                        sub._push(event, ws)
                else:
                    self._on_event(event)
            if session.outbox or session.ack_pending:  # anything to answer (acks...)
                self._flush()
        except WspError as error:
            self._conn_error = error
            if ws is not None:
                self._spawn(close_for(self.session, ws, error))

    def _closed_by_server(self, code: int | None, reason: str) -> None:
        if self.error is not None and not self._closing:
            raise self.error  # the server's wsp Close said why; that is the report
        if (
            code is not None
            and not self._closing
            and (code in FATAL_CODES or code in REFUSED_CODES)
        ):
            raise refusal(code, reason)
        if code is not None and code not in (1000, 1001, 1006):
            self._emit("closed", code=code, reason=reason)
        if code == 1000 and self.session.state is State.CLOSING and self._closing:
            return

    async def _timers(self) -> None:
        """Heartbeats, retransmissions and the dead-server check (one task per client)."""
        wake = self._timer_wake
        while True:
            deadline = self.session.next_deadline()
            if deadline is None:  # no session yet: wait for one (or a second)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await wake.wait()
                wake.clear()
                continue
            await asyncio.sleep(max(0.0, min(1.0, deadline - clock())))
            if clock() < deadline:
                continue
            ws = self.ws
            try:
                for event in self.session.on_timer(clock()):
                    self._on_event(event)
            except WspError as error:
                if ws is not None:
                    await close_for(self.session, ws, error)
                continue
            self._flush()

    # ------------------------------------------------------------------ events
    def _on_event(self, event: ev.Event) -> None:
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_delivery(self, event: ev.Delivery) -> None:
        sub = self.subscriptions.get(event.topic)
        if sub is not None:
            sub._push(event, self.ws)

    def _on_acked(self, event: ev.Acked) -> None:
        for payload in event.payloads:
            entry = self._waiting.pop(id(payload), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)
        if self.session.can_send():
            self._window_open.set()

    def _on_reply(self, reply: ev.Reply) -> None:
        pending = self._requests.pop(reply.id, None)
        if pending is not None and not pending[2].done():
            pending[2].set_result(reply)

    def _on_continuity_lost(self, lost: ev.ContinuityLostNotice) -> None:
        self._emit(
            "continuity_lost",
            topic=lost.topic,
            epoch=lost.epoch,
            requested=lost.requested,
            available=lost.available,
        )
        sub = self.subscriptions.get(lost.topic)
        if sub is not None:
            sub._push(lost, self.ws)

    def _on_subscription_confirmed(self, event: ev.SubscriptionConfirmed) -> None:
        sub = self.subscriptions.get(event.topic)
        if sub is not None:
            sub.confirmed.set()

    def _on_accepted(self, accepted: ev.Accepted) -> None:
        self._accepted_here = True
        self._timer_wake.set()  # the session's timers start now
        self.backoff.reset()
        self._window_open.set()
        if self._ready.is_set():
            if accepted.resumed:
                self.resumes += 1
            self._emit(
                "resumed" if accepted.resumed else "reconnected", session=accepted.session_id
            )
        else:
            self._ready.set()
            self._emit(
                "connected",
                session=accepted.session_id,
                capabilities=list(accepted.capabilities),
            )
        now = clock()
        for rid, (method, data, _) in self._requests.items():
            self.session.request(rid, method, data, now)

    def _on_heartbeat_answered(self, event: ev.HeartbeatAnswered) -> None:
        fut = self._pings.pop(event.id, None)
        if fut is not None and not fut.done():
            fut.set_result(event.rtt)

    def _on_data(self, event: ev.DataReceived) -> None:
        payload = event.payload
        if not isinstance(payload, DeltaUpdate):  # deltas are the application's (none arrive today)
            self.data._push(payload, self.ws)

    def _on_peer_error(self, err: ev.PeerError) -> None:
        self._emit("error", code=err.code, message=err.message)
        self._refused_message(err)

    def _on_peer_closed(self, closed: ev.PeerClosed) -> None:
        if not self._closing and self.error is None and closed.code not in RESUMABLE_CODES:
            # the server ended the session: nothing is resumed after this
            self.error = refusal(closed.code, closed.reason, "server closed the session")
        ws = self.ws
        if ws is not None and not self._closing:  # after our answering Close (rule 42)
            self._spawn(ws.close(*closing_after(self.session)))

    def _refused_message(self, err: ev.PeerError) -> None:
        """An Error that names one of our publishes (``ref_sequence``) fails its future."""
        if err.ref_sequence is None:
            return
        entry = self.session.unacked.get(err.ref_sequence)
        if entry is None:
            return
        waiting = self._waiting.pop(id(entry[0].payload), None)
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(refusal(err.code, err.message, "server refused the message"))

    # ------------------------------------------------------------------ writing
    def _flush(self) -> None:
        self._flush_scheduled = False
        ws = self.ws
        if ws is None:
            return
        on_wire = self.on_wire
        for chunk in self.session.data_to_send():
            if write_now(ws, chunk) and on_wire is not None:
                on_wire("client", chunk)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _ready_to_send(self) -> None:
        if self.error is not None:
            raise self.error
        if self._closing:
            raise ClientClosed("the client is closed")
        if not self._ready.is_set():
            await self.connect()
        session = self.session
        while session.state is not State.ACTIVE or not session.can_send():
            if self.error is not None:
                raise self.error
            if self._closing or session.state is State.CLOSED:
                raise ClientClosed("the client is closed")
            self._window_open.clear()
            await self._wait_window()
        ws = self.ws
        if ws is not None and ws.paused:  # the transport is above its high-water mark
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.drain()

    async def _wait_window(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                await self._window_open.wait()

    def _track(self, payload: Payload) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[id(payload)] = (payload, fut)
        self._schedule_flush()
        return fut

    # ------------------------------------------------------------------ API
    async def publish_nowait(self, topic: str, data: bytes | str) -> asyncio.Future[None]:
        """Queue a publish (waits only for window space); the future resolves on its ack."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        session = self.session
        if (
            self.error is not None
            or self._closing
            or session.state is not State.ACTIVE
            or not session.can_send()
        ):
            await self._ready_to_send()  # the slow path: wait for a session or window room
        self._next_publish += 1
        session.publish(topic, data, clock(), self._next_publish)
        outbox = session.outbox
        payload = outbox[-1].payload
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[id(payload)] = (payload, future)  # as _track does
        if len(outbox) >= FLUSH_AT:
            self._flush()  # keep the server busy while we go on publishing
        elif not self._flush_scheduled:
            self._schedule_flush()
        return future

    async def publish(self, topic: str, data: bytes | str, *, timeout: float | None = 30.0) -> None:
        """Publish and return when the server acknowledged (applied) it."""
        fut = await self.publish_nowait(topic, data)
        async with asyncio.timeout(timeout):
            await fut

    async def send_text(self, text: str, *, timeout: float | None = 30.0) -> None:
        await self._ready_to_send()
        self.session.send_text(text, clock())
        fut = self._track(self.session.unacked[self.session.send_seq][0].payload)
        async with asyncio.timeout(timeout):
            await fut

    async def send_binary(self, data: bytes, *, timeout: float | None = 30.0) -> None:
        await self._ready_to_send()
        self.session.send_binary(data, clock())
        fut = self._track(self.session.unacked[self.session.send_seq][0].payload)
        async with asyncio.timeout(timeout):
            await fut

    async def subscribe(
        self, topic: str, *, wait: bool = True, from_offset: int | None = None,
        epoch: int | None = None,
    ) -> Subscription:
        """Subscribe to ``topic``; deliveries start after the server confirms.

        ``from_offset`` asks for the topic's history from that offset (of ``epoch``,
        when known; otherwise of the topic's current epoch)."""
        if not self._ready.is_set():
            await self.connect()
        sub = self.subscriptions.get(topic)
        if sub is None:
            sub = self.subscriptions[topic] = Subscription(topic, self.options.queue_size)
            self.session.subscribe(topic, clock(), from_offset=from_offset, epoch=epoch)
            self._schedule_flush()
        if wait:
            async with asyncio.timeout(self.options.open_timeout):
                await sub.confirmed.wait()
            if self.error is not None:
                raise self.error
        return sub

    async def unsubscribe(self, topic: str) -> None:
        sub = self.subscriptions.pop(topic, None)
        self.session.unsubscribe(topic, clock())
        self._schedule_flush()
        if sub is not None:
            sub._push(None)

    async def request(
        self, method: str, data: bytes = b"", *, timeout: float | None = None
    ) -> ev.Reply:
        """Send a request and wait for its Response (re-issued after a reconnect)."""
        if self.error is not None:
            raise self.error
        if not self._ready.is_set():
            await self.connect()
        self._next_request += 1
        rid = self._next_request
        fut: asyncio.Future[ev.Reply] = asyncio.get_running_loop().create_future()
        self._requests[rid] = (method, data, fut)
        if self.session.state is State.ACTIVE:
            self.session.request(rid, method, data, clock())
            if not self._flush_scheduled:
                self._flush()  # a lone request goes out now; bursts are batched
        try:
            if timeout is None:
                return await fut
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._requests.pop(rid, None)

    async def echo(self, data: bytes, *, timeout: float | None = None) -> bytes:
        """The server's built-in echo request."""
        return (await self.request("echo", data, timeout=timeout)).data

    async def ping(self, *, timeout: float | None = 10.0) -> float:
        """A Heartbeat probe; returns the round-trip time in seconds."""
        if not self._ready.is_set():
            await self.connect()
        pid = self.session.heartbeat(clock())
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[pid] = fut
        self._schedule_flush()
        async with asyncio.timeout(timeout):
            return await fut


#: engine event -> what the client does with it
_EVENT_HANDLERS: dict[type[ev.Event], Callable[[Client, Any], None]] = {
    ev.Delivery: Client._on_delivery,
    ev.Acked: Client._on_acked,
    ev.Reply: Client._on_reply,
    ev.ContinuityLostNotice: Client._on_continuity_lost,
    ev.SubscriptionConfirmed: Client._on_subscription_confirmed,
    ev.Accepted: Client._on_accepted,
    ev.HeartbeatAnswered: Client._on_heartbeat_answered,
    ev.DataReceived: Client._on_data,
    ev.PeerError: Client._on_peer_error,
    ev.PeerClosed: Client._on_peer_closed,
}
