"""An interactive client for ``wsp tui --connect URL``: send anything, see everything.

    client = InteractiveClient("ws://127.0.0.1:8765", on_record=records.append,
                               secret="s3cret")
    await client.start()                        # wsp, or raw WebSocket (mode="auto")
    await client.subscribe("news")
    await client.publish("news", "hello")
    await client.send_wsp("Request", {"id": 1, "method": "echo", "data": "6869"})
    await client.resend(0)                      # the first entry of client.history
    await client.close()

Every WebSocket message sent and received becomes a *record*, a JSON-ready dict
in the shape of the inspector feed's (docs/inspect.md, "Records"): ``kind:
"message"`` with ``ts``, ``session``, ``peer`` (the server's ``host:port``),
``identity``, ``direction`` (``client``: sent by us, ``server``: received),
``length`` and ``wsp`` (:func:`~wsproto_tools.codec.jsonform.message_to_json`);
the items of a Batch each get a record with ``batch: N``. Traffic that is not
wsp (raw mode, or a text frame) has ``opcode`` (``text``/``binary``) and
``text`` or ``hex`` instead, as ``wsp decode --ndjson`` writes them. Events are
records too: ``connected`` (``subprotocol``, ``version``), ``authenticated``
(``identity``, ``capabilities``), ``resumed``, ``state`` (``reconnecting``, a
send that failed), ``closed`` (``code``, ``reason``, ``resumable``) and
``violation`` (``code``, ``message``: the server broke the protocol).

Sending wsp messages. :meth:`InteractiveClient.send_wsp` takes a type name, the
payload fields in their JSON form (as ``wsp msg`` and jsonform read them: bytes
as hex) and flag names. Without flags, the types the client library speaks go
through it, so sequence numbers, acknowledgments, request ids and
subscriptions stay right (:data:`MANAGED_TYPES`; the library fills in ids and
sequence numbers itself). Any other type, or any message with flags, is sent
*as is*: encoded in the session's wire version (and sealed when the session is
encrypted), written at once, with no bookkeeping: the server may well find it
wrong, and say so. Bad input raises :class:`~wsproto_tools.exceptions.LocalProtocolError`
(unknown type, field or flag, a value of the wrong kind) before anything is sent.
"""

from __future__ import annotations

__all__ = [
    "MANAGED_TYPES",
    "HistoryEntry",
    "InteractiveClient",
    "field_value",
    "type_fields",
    "type_names",
]

import asyncio
import base64
import contextlib
import json
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed

from wsproto_tools.client.api import Client, ClientOptions, ServerMisbehaved
from wsproto_tools.client.plain import PlainOptions, PlainSession
from wsproto_tools.codec import SUBPROTOCOLS, subprotocol_version
from wsproto_tools.codec.crypto import Cipher
from wsproto_tools.codec.jsonform import message_to_json, payload_from_json
from wsproto_tools.codec.schema import (
    TYPES,
    Batch,
    Flags,
    HandshakeResponse,
    Kind,
    Message,
    Payload,
    Sealed,
    Subscribe,
    TypeSpec,
    payload_fields,
)
from wsproto_tools.codec.wire import decode
from wsproto_tools.engine.client_session import TopicCursor
from wsproto_tools.exceptions import (
    ConfigError,
    ConnectionFailed,
    DecodeError,
    LocalProtocolError,
    WspError,
)
from wsproto_tools.transports.tls import client_context, parse_ws_url
from wsproto_tools.transports.wsio import write_now

Mode = Literal["wsp", "raw", "auto"]
RecordSink = Callable[[dict[str, Any]], None]

#: Types sent through the client library when no flags are given (the rest: as is).
MANAGED_TYPES = frozenset(
    {
        "TextData",
        "BinaryData",
        "Publish",
        "Subscribe",
        "Unsubscribe",
        "Request",
        "Heartbeat",
        "Close",
    }
)
#: Seconds a background send (text/binary data, request, heartbeat) may wait.
SEND_TIMEOUT = 30.0


# --------------------------------------------------------------------- the schema


def _spec(type_name: str) -> TypeSpec:
    wanted = type_name.strip().lower()
    for spec in TYPES.values():
        if spec.name.lower() == wanted:
            return spec
    raise LocalProtocolError(
        f"unknown message type {type_name!r} (types: {', '.join(type_names())})"
    )


def type_names() -> list[str]:
    """The wsp message type names, in type-code order (the composer's picker)."""
    return [spec.name for _, spec in sorted(TYPES.items())]


def type_fields(type_name: str) -> list[tuple[str, str, bool]]:
    """``(field name, kind, required)`` for each payload field of a type, in order.

    ``kind`` is the wire kind's name (:class:`~wsproto_tools.codec.schema.Kind`:
    ``uint``, ``str``, ``bytes``...); a bytes field is given as hex. Raises
    LocalProtocolError for a type that does not exist.
    """
    spec = _spec(type_name)
    return [(name, f.kind.value, not f.optional) for name, f in payload_fields(spec.cls)]


def field_value(kind: str, text: str) -> Any:
    """The JSON form of a form field typed as ``text`` (None: left empty).

    ``uint``/``int``: a decimal number; ``bool``: true/false/yes/no/1/0;
    ``str`` and ``bytes`` (hex): as typed; ``array of str``: comma-separated;
    anything else: JSON. Raises LocalProtocolError naming the problem.
    """
    text = text.strip() if kind != Kind.STR.value else text
    if text == "":
        return None
    if kind in (Kind.UINT.value, Kind.INT.value):
        try:
            return int(text, 0)
        except ValueError:
            raise LocalProtocolError(f"{text!r} is not an integer") from None
    if kind == Kind.BOOL.value:
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise LocalProtocolError(f"{text!r} is not true or false")
    if kind in (Kind.STR.value, Kind.BYTES.value):
        return text
    if kind == Kind.STR_LIST.value:
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        return json.loads(text)
    except ValueError as error:
        raise LocalProtocolError(f"not JSON: {error}") from None


def _flags(names: list[str] | tuple[str, ...]) -> Flags:
    flags = Flags.NONE
    for name in names:
        try:
            flags |= Flags[str(name).strip().upper()]
        except KeyError:
            known = ", ".join(f.name for f in Flags if f and f.name)
            raise LocalProtocolError(f"unknown flag {name!r} (flags: {known})") from None
    return flags


def _jwt_subject(token: str) -> str:
    """The ``sub`` of a JWT, read without checking it (only to label records)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        sub = claims.get("sub") if isinstance(claims, dict) else None
    except (IndexError, ValueError):
        return "jwt"
    return sub if isinstance(sub, str) and sub else "jwt"


# --------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that was sent, enough to send it again.

    ``kind`` is ``wsp`` (``type_name``, ``fields``, ``flags``), ``text`` or
    ``binary`` (``data``: a raw WebSocket message), ``subscribe`` (``topic``,
    ``resume_from``) or ``publish`` (``topic``, ``data``).
    """

    kind: str
    type_name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    data: str | bytes = b""
    topic: str = ""
    resume_from: int | None = None

    @property
    def label(self) -> str:
        """One line for the history list."""
        if self.kind == "wsp":
            flags = f" [{','.join(self.flags)}]" if self.flags else ""
            body = json.dumps(self.fields, separators=(",", ":"))
            return f"{self.type_name}{flags} {body}"
        if self.kind == "subscribe":
            since = f" from {self.resume_from}" if self.resume_from is not None else ""
            return f"subscribe {self.topic}{since}"
        data = self.data
        shown = data if isinstance(data, str) else data.hex()
        if self.kind == "publish":
            return f"publish {self.topic} {shown}"
        return f"{self.kind} {shown}"


# --------------------------------------------------------------------- the client


class InteractiveClient:
    """A wsp session (or a plain WebSocket) that sends what it is told and reports
    every message both ways to ``on_record``.

    ``mode``: ``wsp`` (the client library: auth, acks, reconnect and resume),
    ``raw`` (a plain WebSocket, no subprotocol offered) or ``auto`` (offer the wsp
    subprotocols; a server that selects none is talked to raw, on that same
    connection). The credentials are ``wsp sub``'s: ``secret`` or ``token``,
    ``wire_version``, ``ssl_context`` (or ``cafile``/``insecure``); other keyword
    arguments go to :class:`~wsproto_tools.client.api.ClientOptions`.
    """

    def __init__(
        self,
        url: str,
        *,
        on_record: RecordSink | None = None,
        mode: Mode = "auto",
        secret: str | bytes | None = None,
        token: str | None = None,
        wire_version: int = 2,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
        insecure: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
        **options: Any,
    ) -> None:
        if mode not in ("wsp", "raw", "auto"):
            raise ConfigError(f"mode must be wsp, raw or auto, not {mode!r}")
        if secret and token:
            raise ConfigError("give a secret or a token, not both")
        target = parse_ws_url(url)
        self.url = url
        self.mode: Mode = mode
        self.on_record = on_record
        self.peer = f"{target.host}:{target.port}"
        self.history: list[HistoryEntry] = []
        self.records = 0  # records emitted so far
        self.client: Client | None = None
        self.plain: PlainSession | None = None
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        self._identity = "hmac" if secret else (_jwt_subject(token) if token else None)
        self._options = ClientOptions(
            secret=secret or None,
            token=token or None,
            version=int(wire_version),
            ssl_context=ssl_context,
            cafile=cafile,
            insecure=insecure,
            headers=headers,
            **options,
        )
        if ssl_context is None and target.secure and (cafile or insecure):
            ssl_context = client_context(cafile, insecure)  # the raw connection's too
        self._ssl = ssl_context
        self._headers = headers
        self._authenticated: str | None = None  # identity once the server accepted us
        self._ws: Any = None  # the connection the last wire message went over
        self._ciphers: tuple[Any, Cipher, Cipher] | None = None  # (keys, to server, to client)
        self._closed_reported: Any = None  # the connection whose end was reported
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._drained: set[Any] = set()  # subscriptions whose inbox is being read
        #: the epoch of each topic, as the server last said (Subscribed, Deliver...)
        self.epochs: dict[str, int] = {}

    # ---------------------------------------------------------------- records
    def _emit(self, record: dict[str, Any]) -> None:
        self.records += 1
        if self.on_record is not None:
            self.on_record(record)

    def _base(self, kind: str) -> dict[str, Any]:
        client = self.client
        return {
            "kind": kind,
            "ts": time.time(),
            "session": client.session.session_id if client is not None else 0,
            "peer": self.peer,
            "identity": self._authenticated,
        }

    def _raw_record(self, direction: str, data: str | bytes) -> dict[str, Any]:
        record = self._base("message")
        record["direction"] = direction
        if isinstance(data, str):
            record.update(opcode="text", length=len(data.encode("utf-8")), text=data)
        else:
            record.update(opcode="binary", length=len(data), hex=data.hex())
        return record

    def _event(self, kind: str, **fields: Any) -> None:
        record = self._base(kind)
        record.update(fields)
        self._emit(record)

    # ---------------------------------------------------------------- lifecycle
    @property
    def active_mode(self) -> str | None:
        """``wsp`` or ``raw`` once started, None before."""
        if self.client is not None:
            return "wsp"
        if self.plain is not None:
            return "raw"
        return None

    async def start(self) -> None:
        """Connect (and authenticate, in wsp mode); raise ConnectionFailed,
        AuthenticationError or ConfigError when that fails."""
        if self.active_mode is not None:
            return
        if self.mode == "raw":
            await self._start_raw(PlainSession(self.url, self._plain_options(())))
            return
        if self.mode == "auto":
            probe = PlainSession(self.url, self._plain_options(SUBPROTOCOLS))
            await probe.open()
            if probe.subprotocol is None:
                await self._start_raw(probe)
                return
            await probe.close()
        await self._start_wsp()

    def _plain_options(self, subprotocols: tuple[str, ...]) -> PlainOptions:
        return PlainOptions(headers=self._headers, subprotocols=subprotocols, ssl=self._ssl,
                            open_timeout=self._options.open_timeout)

    async def _start_raw(self, plain: PlainSession) -> None:
        if plain.ws is None:
            await plain.open()
        self.plain = plain
        self._event("connected", subprotocol=plain.subprotocol, version=None)
        self._spawn(self._read_raw(plain))

    async def _start_wsp(self) -> None:
        client = Client(self.url, self._options, on_event=self._on_client_event,
                        on_wire=self._on_wire)
        self.client = client
        try:
            await client.connect()
        except BaseException:
            await client.close()
            self._report_end(client, resumable=False)  # what the server did, if it did
            self.client = None
            raise
        self._spawn(self._drain_data(client))

    async def close(self) -> None:
        """Close the session (or the plain connection); the ``closed`` record follows."""
        self._closing = True
        client, plain = self.client, self.plain
        if client is not None:
            await client.close()
            self._report_end(client, resumable=False)
        elif plain is not None:
            await plain.close()
        if self._tasks:  # the readers end by themselves now (and report the close)
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---------------------------------------------------------------- raw mode
    async def _read_raw(self, plain: PlainSession) -> None:
        while (message := await plain.recv()) is not None:
            self._emit(self._raw_record("server", message.data))
        info = plain.close_info
        self._event(
            "closed",
            code=int(info.code) if info is not None and info.code is not None else None,
            reason=info.reason if info is not None else "",
            resumable=False,
        )

    # ---------------------------------------------------------------- wsp mode
    def _on_client_event(self, name: str, fields: dict[str, Any]) -> None:
        client = self.client
        if name in ("connected", "reconnected"):
            self._authenticated = self._identity
            caps = list(client.session.capabilities) if client is not None else []
            self._event("authenticated", identity=self._identity,
                        capabilities=fields.get("capabilities", caps))
        elif name == "resumed":
            self._authenticated = self._identity
            self._event("resumed", identity=self._identity)
        elif name == "reconnecting":
            self._event("state", state="reconnecting", delay=fields.get("delay"),
                        reason=fields.get("reason"), attempt=fields.get("attempt"))
        elif name == "disconnected" and client is not None:
            self._report_end(client, resumable=True)

    def _report_end(self, client: Client, *, resumable: bool) -> None:
        """One ``closed`` record per connection (and a ``violation`` first when the
        server broke the protocol)."""
        ws = self._ws
        if ws is None or ws is self._closed_reported:
            return
        self._closed_reported = ws
        error = client.error
        if not resumable and isinstance(error, ServerMisbehaved):
            self._event("violation", rule=None, code=error.close_code, message=str(error))
        self._event("closed", code=ws.close_code, reason=ws.close_reason or "",
                    resumable=resumable)

    async def _drain_data(self, client: Client) -> None:
        """Read the data inbox (records come from the wire; this keeps reading
        going); at its end the session is over."""
        async for _ in client.data:
            pass
        self._report_end(client, resumable=False)

    async def _drain(self, subscription: Any) -> None:
        try:
            async for _ in subscription:
                pass
        finally:
            self._drained.discard(subscription)

    def _on_wire(self, direction: str, data: bytes | str) -> None:
        client = self.client
        if client is None:
            return
        ws = client.ws
        if ws is not None and ws is not self._ws:
            self._ws = ws
            self._event("connected", subprotocol=ws.subprotocol,
                        version=subprotocol_version(ws.subprotocol or ""))
        if isinstance(data, str):
            self._emit(self._raw_record(direction, data))
            return
        version = client.session.version
        try:
            msg = decode(data, version=version)
            decrypted = False
            if type(msg.payload) is Sealed or msg.flags & Flags.ENCRYPTED:
                cipher = self._cipher(client, direction)
                if cipher is not None:
                    msg = decode(data, version=version, cipher=cipher)
                    decrypted = True
        except (DecodeError, LocalProtocolError) as error:
            record = self._base("message")
            record.update(direction=direction, length=len(data), error=str(error),
                          hex=data.hex())
            self._emit(record)
            return
        batch = type(msg.payload) is Batch
        items = msg.payload.messages if batch else (msg,)  # type: ignore[attr-defined]
        for n, item in enumerate(items):
            record = self._base("message")
            record.update(direction=direction, length=len(data),
                          wsp=message_to_json(item, version))
            if decrypted:
                record["decrypted"] = True
            if batch:
                record["batch"] = n
            if type(item.payload) is HandshakeResponse:  # the session starts here
                record["session"] = item.payload.session_id
                record["identity"] = self._identity
            self._note_epoch(item.payload)
            self._emit(record)

    def _cipher(self, client: Client, direction: str) -> Cipher | None:
        keys = client.session.keys
        if keys is None:
            return None
        if self._ciphers is None or self._ciphers[0] is not keys:
            self._ciphers = (keys, Cipher(keys.client_to_server), Cipher(keys.server_to_client))
        return self._ciphers[1] if direction == "client" else self._ciphers[2]

    def _note_epoch(self, payload: Payload) -> None:
        topic = getattr(payload, "topic", None)
        epoch = getattr(payload, "epoch", None)
        if isinstance(topic, str) and type(epoch) is int:
            self.epochs[topic] = epoch

    def _require_wsp(self, what: str) -> Client:
        if self.client is not None:
            return self.client
        if self.plain is not None:
            raise ConfigError(f"{what}: the server does not speak wsp (raw mode); "
                              "send raw text or binary")
        raise ConnectionFailed(f"{what}: not connected (start() first)")

    # ---------------------------------------------------------------- sending
    async def send_wsp(
        self,
        type_name: str,
        fields: dict[str, Any] | None = None,
        flags: list[str] | tuple[str, ...] = (),
    ) -> None:
        """Send one wsp message of ``type_name`` with these payload ``fields``
        (their JSON form) and ``flags`` (names); see the module's docstring for
        what goes through the library and what is sent as is."""
        spec = _spec(type_name)
        fields = dict(fields or {})
        flag_bits = _flags(flags)
        payload = payload_from_json(spec.cls, fields)
        client = self._require_wsp(f"send {spec.name}")
        if not flag_bits and spec.name in MANAGED_TYPES and not self._as_is(payload):
            await self._send_managed(client, payload)
        else:
            self._send_as_is(client, payload, flag_bits)
        self.history.append(
            HistoryEntry("wsp", spec.name, fields, tuple(f.name or "" for f in Flags
                                                          if f and f in flag_bits))
        )

    @staticmethod
    def _as_is(payload: Payload) -> bool:
        """Payloads of managed types the library cannot send: a Heartbeat reply."""
        return bool(getattr(payload, "reply", False))

    async def _send_managed(self, client: Client, payload: Payload) -> None:
        name = type(payload).__name__
        p: Any = payload
        if name == "TextData":
            self._background(client.send_text(p.text, timeout=SEND_TIMEOUT), "TextData")
        elif name == "BinaryData":
            self._background(client.send_binary(p.data, timeout=SEND_TIMEOUT), "BinaryData")
        elif name == "Publish":
            self._acked(await client.publish_nowait(p.topic, p.data), f"Publish to {p.topic}")
        elif name == "Subscribe":
            await self._subscribe(client, p.topic, p.from_offset, p.epoch)
        elif name == "Unsubscribe":
            await client.unsubscribe(p.topic)
        elif name == "Request":
            self._background(client.request(p.method, p.data, timeout=SEND_TIMEOUT),
                             f"Request {p.method}")
        elif name == "Heartbeat":
            self._background(client.ping(timeout=SEND_TIMEOUT), "Heartbeat")
        elif name == "Close":
            await client.close(p.code, p.reason)
            self._report_end(client, resumable=False)

    def _send_as_is(self, client: Client, payload: Payload, flags: Flags) -> None:
        session = client.session
        ws = client.ws
        if ws is None:
            raise ConnectionFailed(f"send {type(payload).__name__}: not connected")
        if session.encrypted:
            flags |= Flags.ENCRYPTED
        msg = Message(payload, 0, session.session_id if session.version == 1 else 0, 0, flags)
        data = session.encode(msg)
        if not write_now(ws, data):
            raise ConnectionFailed(f"send {type(payload).__name__}: the connection is closed")
        self._on_wire("client", data)

    def _background(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run a library call that waits for its answer; a failure becomes a record."""

        async def run() -> None:
            try:
                await coro
            except (WspError, TimeoutError) as error:
                if not self._closing:  # after close() every pending call fails: no news
                    self._event("state", state="failed",
                                message=f"{what}: {error or 'timed out'}")

        self._spawn(run())

    def _acked(self, future: asyncio.Future[None], what: str) -> None:
        def done(fut: asyncio.Future[None]) -> None:
            if fut.cancelled():
                return
            error = fut.exception()
            if error is not None and not self._closing:
                self._event("state", state="failed", message=f"{what}: {error}")

        future.add_done_callback(done)

    async def send_raw_text(self, text: str) -> None:
        """A text WebSocket message, as is (to a wsp server: a protocol error)."""
        await self._send_raw(text)
        self.history.append(HistoryEntry("text", data=text))

    async def send_raw_binary(self, data: bytes) -> None:
        """A binary WebSocket message, as is (to a wsp server: hand-made wire bytes)."""
        await self._send_raw(bytes(data))
        self.history.append(HistoryEntry("binary", data=bytes(data)))

    async def _send_raw(self, data: str | bytes) -> None:
        if self.plain is not None:
            await self.plain.send(data)
            self._emit(self._raw_record("client", data))
            return
        client = self._require_wsp("send")
        ws = client.ws
        if ws is None:
            raise ConnectionFailed("send: not connected")
        try:
            await ws.send(data)
        except ConnectionClosed:
            raise ConnectionFailed("send: the connection is closed") from None
        self._on_wire("client", data)

    async def subscribe(
        self, topic: str, resume_from: int | None = None, epoch: int | None = None
    ) -> None:
        """Subscribe to ``topic``; ``resume_from``: replay history from that offset
        (of ``epoch``, by default the topic's epoch as the server last said it)."""
        if not topic:
            raise LocalProtocolError("subscribe: the topic is empty")
        client = self._require_wsp("subscribe")
        await self._subscribe(client, topic, resume_from, epoch)
        self.history.append(HistoryEntry("subscribe", topic=topic, resume_from=resume_from))

    async def _subscribe(
        self, client: Client, topic: str, resume_from: int | None, epoch: int | None
    ) -> None:
        if resume_from is not None:
            if epoch is None:
                cursor = client.session.cursors.get(topic)
                epoch = self.epochs.get(topic, cursor.epoch if cursor is not None else None)
            if epoch is None:
                raise LocalProtocolError(
                    f"subscribe {topic!r} from {resume_from}: the topic's epoch is not known "
                    "yet (subscribe once first, or give the epoch)"
                )
            if topic in client.subscriptions:
                await client.unsubscribe(topic)  # the Subscribe below asks for the replay
            client.session.cursors[topic] = TopicCursor(epoch, max(0, resume_from - 1))
        elif topic in client.subscriptions:  # the library would send nothing: say it again
            self._send_as_is(client, Subscribe(topic), Flags.NONE)
            return
        subscription = await client.subscribe(topic, wait=False)
        if subscription not in self._drained:  # deliveries are records; keep reading
            self._drained.add(subscription)
            self._spawn(self._drain(subscription))

    async def publish(self, topic: str, data: str | bytes) -> None:
        """Publish ``data`` (text is sent as UTF-8) to ``topic``; the Acknowledge
        arrives as a record."""
        if not topic:
            raise LocalProtocolError("publish: the topic is empty")
        client = self._require_wsp("publish")
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._acked(await client.publish_nowait(topic, payload), f"Publish to {topic}")
        self.history.append(HistoryEntry("publish", topic=topic, data=data))

    async def resend(self, index: int) -> None:
        """Send history entry ``index`` again (it is appended to the history again)."""
        try:
            entry = self.history[index]
        except (IndexError, TypeError):
            raise LocalProtocolError(
                f"no history entry {index!r} ({len(self.history)} entries)"
            ) from None
        if entry.kind == "wsp":
            await self.send_wsp(entry.type_name, entry.fields, entry.flags)
        elif entry.kind == "text":
            await self.send_raw_text(str(entry.data))
        elif entry.kind == "binary":
            data = entry.data
            await self.send_raw_binary(data if isinstance(data, bytes) else data.encode())
        elif entry.kind == "subscribe":
            await self.subscribe(entry.topic, entry.resume_from)
        elif entry.kind == "publish":
            await self.publish(entry.topic, entry.data)
