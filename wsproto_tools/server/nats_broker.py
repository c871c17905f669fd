"""The NATS JetStream broker: ``wsp serve --broker nats://HOST:PORT[,…]``.

Each topic is one JetStream stream (``<prefix>_t_<hash>``, subject
``<prefix>.t.<hash>``): the stream sequence is the topic offset, so offsets are
contiguous per topic (1, 2, 3 …), and the epoch is a random number kept in the
stream's metadata when the stream is made, so it changes only when the stream
(the history) is really gone. History is bounded by the stream's limits
(``--history``, ``--history-age``, ``--history-bytes``), its duplicate window
covers the resume lifetime: a publish carries ``Nats-Msg-Id`` = session id and
publish id (or sequence), so a client that sends it again after a resume on
another node is stored once.

A node reads a topic live through one ordered push consumer while it has local
subscribers (:meth:`NatsBroker.subscribe` starts it, :meth:`NatsBroker.release`
stops it); every message it reads goes to the server's listener with its
offset. The node's live end of a topic is the last offset that consumer handed
over, and a Subscribe is answered against it, so nothing is delivered twice or
skipped between replay and live fan-out.

Session snapshots (engine/snapshot.py) and presence live in two key-value
buckets (server/nats_state.py). All I/O here is nats-py's; the server sees the
four broker methods of server/broker.py plus ``release`` and ``healthy``.
"""

from __future__ import annotations

__all__ = ["BrokerUnavailable", "NatsBroker", "NatsOptions", "replay_range"]

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from wsproto_tools.engine.history import ContinuityLost, Entry
from wsproto_tools.engine.hub import MAX_TOPIC_LENGTH, SubscribeAnswer
from wsproto_tools.exceptions import CloseCode, RemoteProtocolError, WspError
from wsproto_tools.server.broker import Listener
from wsproto_tools.server.nats_options import NatsOptions
from wsproto_tools.server.nats_state import Presence, SessionStore

log = logging.getLogger("wsproto_tools.server.nats")

#: The stream metadata key that holds a topic's epoch, and the one with its name.
EPOCH_KEY = "wsp_epoch"
TOPIC_KEY = "wsp_topic"
#: Seconds a node waits for NATS while it shuts down.
CLOSE_TIMEOUT = 3.0
#: Messages asked for per direct get of a replay.
READ_BATCH = 512
#: Recent entries a node keeps per topic it reads live (a replay ends with them).
TAIL_ENTRIES = 4096
TAIL_BYTES = 8 << 20


class BrokerUnavailable(WspError):
    """NATS cannot be reached (at start-up: ``wsp serve`` exits 4)."""


def replay_range(
    epoch: int, first: int, last: int, from_offset: int | None, asked_epoch: int | None
) -> tuple[int, int, ContinuityLost | None]:
    """Offsets ``start..end`` to replay (``start > end``: none) and the gap, if
    any, for a Subscribe ``from_offset``/``asked_epoch`` against a stream of
    ``epoch`` holding ``first..last`` (the rules of engine/history.py)."""
    if from_offset is None:
        return last + 1, last, None
    after = max(0, from_offset - 1)
    available = max(first, 1) if first <= last else last + 1

    def lost(reason: str) -> ContinuityLost:
        return ContinuityLost("", epoch, after, available, reason)

    if asked_epoch is not None and asked_epoch != epoch:
        if after == 0:
            return available, last, None
        return available, last, lost(f"epoch changed from {asked_epoch} to {epoch}")
    if after > last:
        return last + 1, last, lost(f"offset {after} is ahead of the stream ({last})")
    if after + 1 < available:
        gone = available - after - 1
        return available, last, lost(
            f"history starts at offset {available}, {gone} messages are gone"
        )
    return after + 1, last, None


def stream_sequence(msg: Msg) -> int:
    """The stream sequence of a message a push consumer delivered, read off its
    reply subject (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>…``, or the
    form with a domain and an account hash) without nats-py's full metadata."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5])
    if len(tokens) >= 11:
        return int(tokens[7])
    return int(msg.metadata.sequence.stream)


class _Topic:
    """A topic's stream as this node knows it, and its live reader."""

    __slots__ = (
        "epoch", "last", "local", "lock", "name", "reader", "ready", "subject", "tail",
        "tail_bytes",
    )

    def __init__(self, name: str, subject: str) -> None:
        self.name = name
        self.subject = subject
        self.epoch = 0
        self.ready: asyncio.Future[None] | None = None
        #: the last offset handed to the listener (the node's live end)
        self.last = 0
        self.local = 0  # local subscribers
        self.reader: Any = None
        self.lock = asyncio.Lock()
        #: the entries the reader handed over last, oldest first (bounded)
        self.tail: deque[Entry] = deque()
        self.tail_bytes = 0

    def keep(self, entry: Entry) -> None:
        tail = self.tail
        tail.append(entry)
        self.tail_bytes += len(entry.data)
        while len(tail) > TAIL_ENTRIES or self.tail_bytes > TAIL_BYTES:
            self.tail_bytes -= len(tail.popleft().data)

    def forget_tail(self) -> None:
        self.tail.clear()
        self.tail_bytes = 0


class _Pending:
    """A publish on its way to JetStream."""

    __slots__ = ("data", "future", "headers", "sent", "state", "tries")

    def __init__(
        self, state: _Topic, data: bytes, headers: dict[str, str] | None, now: float
    ) -> None:
        self.state = state
        self.data = data
        self.headers = headers
        self.future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self.sent = now
        self.tries = 1


class _Publisher:
    """Publishes pipelined on one reply subscription: each gets a token in its reply
    subject, the PubAck resolves its future. A publish not answered within the
    timeout, or answered "no responders" (NATS between leaders), is sent again, the
    oldest first, with the same message id: JetStream stores it once."""

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker
        self.prefix = ""
        self.pending: dict[str, _Pending] = {}
        self.counter = 0
        self._watch: asyncio.Task[None] | None = None
        self._sub: Any = None

    async def start(self) -> None:
        nc = self.broker.nc
        assert nc is not None
        self.prefix = nc.new_inbox() + "."
        self._sub = await nc.subscribe(self.prefix + "*", cb=self._answer)
        self._watch = asyncio.create_task(self._watchdog())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def send(self, item: _Pending) -> None:
        nc = self.broker.nc
        assert nc is not None
        self.counter += 1
        token = str(self.counter)
        self.pending[token] = item
        await nc.publish(item.state.subject, item.data, reply=self.prefix + token,
                         headers=item.headers)

    async def _answer(self, msg: Msg) -> None:
        item = self.pending.pop(msg.subject[len(self.prefix):], None)
        if item is None or item.future.done():
            return
        headers = msg.headers
        if headers and headers.get("Status") == "503":  # no responders: again, later
            item.sent = 0.0
            self.pending["r" + str(id(item))] = item
            return
        try:
            answer = json.loads(msg.data)
        except ValueError:
            answer = {"error": {"description": "unreadable PubAck"}}
        error = answer.get("error")
        if error is not None:
            item.future.set_exception(
                BrokerUnavailable(f"JetStream refused a publish: {error.get('description')}")
            )
            return
        broker = self.broker
        if answer.get("duplicate"):
            broker.duplicates += 1
        else:
            broker.stored += 1
        item.future.set_result(Entry(int(answer["seq"]), 0.0, item.data, True))

    async def _watchdog(self) -> None:
        """Send again what waited too long for its PubAck, oldest first."""
        broker = self.broker
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.1)
            nc = broker.nc
            if nc is None or not nc.is_connected or not self.pending:
                continue
            limit = loop.time() - broker.options.timeout
            late = [(k, v) for k, v in self.pending.items() if v.sent < limit]
            for key, item in late:
                del self.pending[key]
                if item.future.done():
                    continue
                item.tries += 1
                broker.retries += 1
                item.sent = loop.time()
                if item.tries > 5 and nc.is_connected and item.state is not None:
                    gone = broker._topics.get(item.state.name) is not item.state
                    if not gone and await broker._stream_missing(item.state):
                        await broker._reopen(item.state)
                    item.state = await broker._topic(item.state.name)
                try:
                    await self.send(item)
                except Exception as exc:
                    log.debug("publish not sent again: %s", exc)
                    item.sent = 0.0
                    self.pending["r" + str(id(item))] = item


class NatsBroker:
    """Topics in JetStream; connect with :meth:`start` before serving."""

    def __init__(self, options: NatsOptions) -> None:
        self.options = options
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self._listener: Listener | None = None
        self._topics: dict[str, _Topic] = {}
        self.connected = False
        #: called with True/False when the link to NATS comes back or goes
        self.on_link: Callable[[bool], None] | None = None
        self.stored = 0
        self.duplicates = 0
        self.retries = 0
        #: session snapshots and presence (made by :meth:`start`)
        self.sessions: SessionStore | None = None
        self.presence: Presence | None = None
        self._restarts: set[asyncio.Future[None]] = set()
        self._publisher = _Publisher(self)
        self.node = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        opts = self.options

        async def disconnected() -> None:
            self._forget_unsent()
            self._link(False)

        async def reconnected() -> None:
            self._link(True)

        async def error(exc: Exception) -> None:
            log.debug("nats: %s", exc)

        try:
            self.nc = await asyncio.wait_for(self._connect(disconnected, reconnected, error),
                                             opts.connect_timeout)
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            raise BrokerUnavailable(
                f"cannot reach NATS at {', '.join(opts.servers)}: "
                f"{str(exc) or f'no connection within {opts.connect_timeout:g} s'}"
            ) from None
        self.js = self.nc.jetstream(timeout=opts.timeout)
        # a NATS cluster that has just started elects its JetStream leader first
        deadline = asyncio.get_running_loop().time() + max(opts.connect_timeout, 15.0)
        while True:
            try:
                await self.js.account_info()
                self.sessions = await SessionStore.open(
                    self.js, opts.prefix, opts.dedup_window, opts.replicas
                )
                self.presence = await Presence.open(
                    self.js, opts.prefix, self.node, opts.replicas
                )
                await self._publisher.start()
                break
            except (nats.errors.Error, TimeoutError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    await self.nc.close()
                    raise BrokerUnavailable(
                        f"NATS at {', '.join(opts.servers)} gives no JetStream "
                        f"(run nats-server -js): {exc or type(exc).__name__}"
                    ) from None
                await asyncio.sleep(0.25)
        self.connected = True

    async def _connect(self, disconnected: Any, reconnected: Any, error: Any) -> NatsClient:
        opts = self.options
        return await nats.connect(
            servers=opts.servers,
            user_credentials=opts.creds,
            name=f"wsp-serve-{os.getpid()}",
            connect_timeout=int(max(1, opts.connect_timeout)),
            reconnect_time_wait=0.25,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            pending_size=64 << 20,
        )

    def _forget_unsent(self) -> None:
        """Drop what the NATS client buffered but had not written when the link
        went: what reached NATS is then a prefix of what was sent, and the publishes
        that did not are tried again in order (the client would otherwise send its
        buffer first after reconnecting, ahead of the lost ones)."""
        nc = self.nc
        if nc is not None and getattr(nc, "_pending", None):
            nc._pending = []
            nc._pending_data_size = 0

    def _link(self, up: bool) -> None:
        if self.nc is None or self.nc.is_closed or self.nc.is_draining:
            return
        self.connected = up
        log.warning("NATS %s", "reachable again" if up else "unreachable")
        if up:  # consumers may be gone with the server that held them: read on anew
            task = asyncio.ensure_future(self._restart_readers())
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)
        if self.on_link is not None:
            self.on_link(up)

    async def _restart_readers(self) -> None:
        for state in list(self._topics.values()):
            async with state.lock:
                old = state.reader
                if old is None:
                    continue
                with contextlib.suppress(Exception):
                    await old.unsubscribe()
                state.reader = None
                if state.local > 0:
                    try:
                        await self._start_reader(state, again=True)
                    except Exception as exc:
                        log.warning("topic %r: no live reader: %s", state.name, exc)

    def healthy(self) -> bool:
        return self.connected and self.nc is not None and self.nc.is_connected

    async def close(self) -> None:
        """Let go of NATS: tidily within ``CLOSE_TIMEOUT`` when it answers, at once
        when it does not (a node stopped during an outage must still stop)."""
        await self._publisher.close()
        nc = self.nc
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self.presence is not None:
                    await self.presence.close()
                for topic in self._topics.values():
                    if topic.reader is not None:
                        with contextlib.suppress(Exception):
                            await topic.reader.unsubscribe()
                        topic.reader = None
                if nc is not None and nc.is_connected:
                    await nc.drain()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await nc.close()

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    # ------------------------------------------------------------------ streams
    def _names(self, topic: str) -> tuple[str, str]:
        digest = hashlib.blake2b(topic.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        prefix = self.options.prefix
        return f"{prefix}_t_{digest}", f"{prefix}.t.{digest}"

    def stream_name(self, topic: str) -> str:
        return self._names(topic)[0]

    async def _topic(self, name: str) -> _Topic:
        """The topic's stream, made on first use; its epoch read from its metadata."""
        topic = self._topics.get(name)
        if topic is not None and topic.ready is None:
            return topic
        if topic is not None:
            assert topic.ready is not None
            await asyncio.shield(topic.ready)
            return topic
        if not name or len(name) > MAX_TOPIC_LENGTH:
            raise RemoteProtocolError(
                f"topic names have 1 to {MAX_TOPIC_LENGTH} characters, not {len(name)}",
                close_code=CloseCode.POLICY_VIOLATION,
            )
        stream, subject = self._names(name)
        topic = self._topics[name] = _Topic(name, subject)
        topic.ready = asyncio.get_running_loop().create_future()
        try:
            info = await self._retry(lambda: self._ensure_stream(stream, subject, name))
            topic.epoch = int((info.config.metadata or {}).get(EPOCH_KEY, "0")) or 1
            topic.last = info.state.last_seq
        except BaseException as exc:
            del self._topics[name]
            topic.ready.set_exception(exc)
            topic.ready.exception()  # retrieved: the waiters raise it themselves
            raise
        topic.ready.set_result(None)
        topic.ready = None
        return topic

    async def _ensure_stream(self, stream: str, subject: str, name: str) -> api.StreamInfo:
        assert self.js is not None
        opts = self.options
        try:
            return await self.js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            pass
        epoch = int.from_bytes(os.urandom(4), "big") | 1
        config = api.StreamConfig(
            name=stream,
            subjects=[subject],
            description=f"wsp topic {name[:200]}",
            metadata={EPOCH_KEY: str(epoch), TOPIC_KEY: name},
            max_msgs=max(1, opts.history),
            max_age=opts.history_age,
            max_bytes=opts.history_bytes or -1,
            duplicate_window=opts.dedup_window,
            num_replicas=opts.replicas,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            allow_direct=True,
        )
        try:
            return await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # another node made it first (with its own epoch): that one stands
            return await self.js.stream_info(stream)

    async def _retry(self, call: Callable[[], Any]) -> Any:
        """``call()`` again until NATS answers (a JetStream request that timed out or
        found no responder during an outage); API errors are raised."""
        delay = 0.05
        while True:
            try:
                return await call()
            except (
                nats.errors.NoRespondersError,
                nats.js.errors.NoStreamResponseError,
                TimeoutError,
                nats.errors.TimeoutError,
                nats.js.errors.ServiceUnavailableError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.StaleConnectionError,
            ) as exc:
                if self.nc is None or self.nc.is_closed:
                    raise BrokerUnavailable("the NATS connection is closed") from None
                self.retries += 1
                log.debug("nats: %s; trying again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    # ------------------------------------------------------------------ the broker
    async def publish_nowait(
        self, topic: str, data: bytes, msg_id: str | None = None
    ) -> asyncio.Future[Entry]:
        """Send one message to its topic's stream; the future is done when JetStream
        has stored it (sent again through an outage with the same ``msg_id``, so it
        is stored once). Publishes sent one after another are pipelined."""
        state = self._topics.get(topic)
        if state is None or state.ready is not None:
            state = await self._topic(topic)
        item = _Pending(
            state,
            data,
            {"Nats-Msg-Id": msg_id} if msg_id else None,
            asyncio.get_running_loop().time(),
        )
        await self._publisher.send(item)
        return item.future

    async def _stream_missing(self, state: _Topic) -> bool:
        assert self.js is not None
        try:
            await self.js.stream_info(self.stream_name(state.name))
        except nats.js.errors.NotFoundError:
            return True
        except (nats.errors.Error, TimeoutError):
            return False
        return False

    async def publish(
        self, topic: str, data: bytes, now: float, msg_id: str | None = None
    ) -> Entry:
        """Store one message; returns when JetStream has it (tried again through an
        outage with the same ``msg_id``, so it is stored once)."""
        return await (await self.publish_nowait(topic, data, msg_id))

    async def subscribe(
        self, topic: str, from_offset: int | None, epoch: int | None, now: float
    ) -> SubscribeAnswer:
        """Where a local subscriber starts: the node's live end of the topic, and
        what it missed since ``from_offset`` (or the gap)."""
        state = await self._topic(topic)
        async with state.lock:  # one reader per topic, however many subscribe at once
            state.local += 1
            try:
                if state.reader is None:
                    await self._start_reader(state)
                first, last = await self._bounds(state)
                start, _, lost = replay_range(state.epoch, first, last, from_offset, epoch)
                replay = await self._replay(state, start) if start <= state.last else []
            except BaseException:
                self.release(topic)
                raise
        if start <= state.last:
            # trimmed between the bounds and the read: the gap is wider than announced
            got = replay[0].offset if replay else state.last + 1
            if got > start:
                requested = lost.requested if lost is not None else start - 1
                lost = ContinuityLost(topic, state.epoch, requested, got,
                                      f"history starts at offset {got}")
        if lost is not None:
            lost = ContinuityLost(topic, lost.epoch, lost.requested, lost.available, lost.reason)
        return SubscribeAnswer(state.epoch, state.last + 1, replay, lost)

    async def _replay(self, state: _Topic, start: int) -> list[Entry]:
        """Offsets ``start`` up to this node's live end: read from the stream up to
        where the reader's recent entries begin, the rest from those (no await after
        the last look, so replay and live fan-out meet)."""
        out: list[Entry] = []
        nxt = start
        while True:
            tail = state.tail
            if tail and tail[0].offset <= nxt:
                out.extend(e for e in tail if e.offset >= nxt)
                return out
            end = tail[0].offset - 1 if tail else state.last
            if nxt > end:
                return out
            got = await self._read(state, nxt, end)
            out.extend(got)
            if not got:  # trimmed away meanwhile: from what the stream still holds
                first, _ = await self._bounds(state)
                if first <= nxt:
                    return out  # nothing where the stream says there is: give up here
                nxt = first
                continue
            nxt = got[-1].offset + 1

    async def _reopen(self, state: _Topic) -> None:
        """The topic's stream was deleted: make it again (a new epoch) and carry this
        node's subscribers over to a reader of the new stream."""
        async with state.lock:
            if self._topics.get(state.name) is not state:
                return  # another publish did it
            log.warning("topic %r: its stream is gone; a new one, a new epoch", state.name)
            del self._topics[state.name]
            if state.reader is not None:
                with contextlib.suppress(Exception):
                    await state.reader.unsubscribe()
                state.reader = None
        fresh = await self._topic(state.name)
        async with fresh.lock:
            fresh.local += state.local
            if fresh.local and fresh.reader is None:
                await self._start_reader(fresh)

    def release(self, topic: str) -> None:
        """A local subscriber left; the live reader stops with the last one."""
        state = self._topics.get(topic)
        if state is None or state.local == 0:
            return
        state.local -= 1
        if state.local == 0 and state.reader is not None:
            reader, state.reader = state.reader, None
            task = asyncio.ensure_future(reader.unsubscribe())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _bounds(self, state: _Topic) -> tuple[int, int]:
        """The first and last offsets the topic's stream holds now."""
        assert self.js is not None
        js = self.js
        stream = self.stream_name(state.name)
        info: api.StreamInfo = await self._retry(lambda: js.stream_info(stream))
        return info.state.first_seq, info.state.last_seq

    async def _start_reader(self, state: _Topic, again: bool = False) -> None:
        """One ordered consumer from the stream's end (``again``: from where the
        previous reader stopped): every later message, in order."""
        assert self.js is not None
        js = self.js
        stream = self.stream_name(state.name)
        if not again:
            info: api.StreamInfo = await self._retry(lambda: js.stream_info(stream))
            state.last = info.state.last_seq
            state.forget_tail()  # not contiguous with what comes now
        listener = self._listener
        epoch = state.epoch

        async def on_message(msg: Msg) -> None:
            offset = stream_sequence(msg)
            if offset <= state.last:
                return  # already handed over (a reader restarted by nats-py)
            state.last = offset
            entry = Entry(offset, 0.0, msg.data, True)
            state.keep(entry)
            if listener is not None:
                listener(state.name, epoch, entry)

        state.reader = await self._retry(
            lambda: js.subscribe(
                state.subject,
                stream=stream,
                cb=on_message,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                config=api.ConsumerConfig(opt_start_seq=state.last + 1),
                pending_msgs_limit=-1,
                pending_bytes_limit=-1,
            )
        )

    async def _read(self, state: _Topic, start: int, end: int) -> list[Entry]:
        """Messages ``start..end`` of a topic's stream, in order (JetStream's batched
        direct get: no consumer is made)."""
        out: list[Entry] = []
        nxt = start
        while nxt <= end:
            batch = await self._retry(partial(self._direct_get, state, nxt, end))
            out.extend(batch)
            if not batch or batch[-1].offset >= end:
                break
            nxt = batch[-1].offset + 1
        return [e for e in out if e.offset <= end]

    async def _direct_get(self, state: _Topic, start: int, end: int) -> list[Entry]:
        """One batched direct get: up to ``READ_BATCH`` messages from ``start``."""
        nc = self.nc
        assert nc is not None
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        out: list[Entry] = []
        try:
            request = {"seq": start, "batch": min(READ_BATCH, end - start + 1)}
            await nc.publish(
                f"$JS.API.DIRECT.GET.{self.stream_name(state.name)}",
                json.dumps(request).encode(),
                reply=inbox,
            )
            while True:
                msg = await sub.next_msg(timeout=self.options.timeout)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status:  # 204 end of batch, 404 nothing (any more) from there
                    break
                out.append(Entry(int(headers["Nats-Sequence"]), 0.0, msg.data, True))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return out
