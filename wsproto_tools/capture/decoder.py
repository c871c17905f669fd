"""From captured packets to WebSocket (and wsp) messages.

:class:`CaptureDecoder` is fed :class:`~wsproto_tools.capture.reader.Packet`
objects in capture order and returns events: :class:`ConnectionSeen` when a
connection is recognized as WebSocket, :class:`CapturedMessage` for every
message or control frame, and :class:`CaptureWarning` for whatever could not
be decoded, with the packet number and the reason. It never raises on bad
input.

A connection is recognized by its HTTP/1.1 upgrade on any port, or -- when the
capture starts after the handshake -- by frames: a segment whose bytes are a
run of well-formed frames (known opcodes, sane reserved bits and lengths,
masking consistent with one direction). ``ws_ports`` forces a port to be
treated as a WebSocket server port. After a gap in the TCP stream, decoding
resumes at the next segment that starts with a plausible frame header.

Memory is bounded whatever the capture holds: out-of-order data per direction
(:data:`~.tcp.MAX_PENDING`) and in all (:data:`MAX_PENDING_TOTAL`, the oldest
holes given up first), the connections followed at once
(:data:`MAX_CONNECTIONS`, the oldest that never carried data dropped first), and a
connection that sees no packet for :data:`IDLE_TIMEOUT` seconds of capture time
is ended and its state freed. Records of connections that were not WebSocket
are only counted (:attr:`CaptureDecoder.forgotten`) once they end. With
:attr:`CaptureDecoder.spill` set, the events of one packet are handed out in
pieces as they are made, so a packet that releases much data (a hole filled,
compressed frames) never holds more than about :data:`SPILL_BYTES` of messages.
"""

from __future__ import annotations

__all__ = [
    "CaptureDecoder",
    "CaptureWarning",
    "CapturedMessage",
    "Connection",
    "ConnectionSeen",
    "DirectionStats",
    "plausible_frames",
]

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.capture.acks import new_tracker
from wsproto_tools.capture.net import (
    ACK,
    FIN,
    RST,
    SYN,
    NotTcp,
    format_addr,
    segment,
)
from wsproto_tools.capture.reader import RawPacket
from wsproto_tools.capture.tcp import MAX_PENDING, Flow
from wsproto_tools.codec import decode as codec_decode
from wsproto_tools.engine.observer import Direction, SessionObserver
from wsproto_tools.exceptions import FrameError, HandshakeError, WspError
from wsproto_tools.ws import (
    DeflateContext,
    DeflateParams,
    FrameParser,
    MessageAssembler,
    UpgradeRequest,
    UpgradeResponse,
    WsMessage,
    looks_like_http,
    parse_http_head,
)
from wsproto_tools.ws.handshake import MAX_HEAD

DIRECTIONS = ("client", "server")
_C2S, _S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
_KNOWN_OPCODES = frozenset({0, 1, 2, 8, 9, 10})
_UNKNOWN, _HTTP, _FRAMES, _SYNC, _IGNORE = range(5)
#: Segments of unrecognized data per direction before a connection is given up.
_DISCOVERY_SEGMENTS = 4
#: Out-of-order data (see :mod:`.tcp`) held for all connections together.
MAX_PENDING_TOTAL = 32 * 1024 * 1024
#: Connections followed at once; past this the oldest one that never carried data
#: is ended (or, when all did, the oldest of all).
MAX_CONNECTIONS = 10_000
#: Seconds of capture time without a packet after which a connection is ended.
IDLE_TIMEOUT = 300.0
#: How often (seconds of capture time) connections are checked for idleness.
_SWEEP_EVERY = 10.0
#: With a spill function: payload bytes of big messages, and events, held before
#: the events of a packet are handed out.
SPILL_BYTES = 4 * 1024 * 1024
SPILL_EVENTS = 1024
_V1_MAGIC = b"\xd1\xc0"


@dataclass(slots=True)
class CaptureWarning:
    """Something that could not be decoded; ``number`` is the packet number."""

    number: int
    message: str
    conn: int | None = None


@dataclass(slots=True)
class CapturedMessage:
    """One decoded WebSocket message (or control frame) and where it came from.

    ``violations`` are the peer's protocol violations; ``note`` says why the
    payload could not be decoded when that was the capture's fault (a gap, a
    compression context that began before the capture). ``wsp`` is the decoded
    wsp message as ``(wire version, Message)``, or a string naming why a wsp
    payload did not decode.
    """

    number: int
    ts: float
    conn: int
    direction: str
    msg: WsMessage
    violations: tuple[str, ...]
    note: str | None = None
    wsp: Any = None
    #: findings of the session observer about this message (engine Violation objects)
    session: tuple[Any, ...] = ()


@dataclass(slots=True)
class DirectionStats:
    """Per-direction WebSocket counters."""

    messages: int = 0
    frames_bytes: int = 0
    payload_bytes: int = 0
    compressed_messages: int = 0
    compressed_wire: int = 0
    compressed_plain: int = 0
    skipped_bytes: int = 0


@dataclass
class Connection:
    """A TCP connection and what the decoder learned about it."""

    id: int
    client: str
    server: str
    first_ts: float
    first_number: int
    kind: str = "unknown"  # websocket, http, other, refused, unknown
    handshake: bool = False
    path: str | None = None
    subprotocol: str | None = None
    extensions: str | None = None
    deflate: DeflateParams | None = None
    status: int | None = None
    handshake_latency: float | None = None
    notes: list[str] = field(default_factory=list)
    wsp_version: int | None = None
    stats: tuple[DirectionStats, DirectionStats] = field(
        default_factory=lambda: (DirectionStats(), DirectionStats())
    )
    tcp_gaps: int = 0
    tcp_lost_bytes: int = 0
    retransmissions: int = 0
    closed: bool = False
    last_ts: float = 0.0
    #: seconds from a sequenced wsp message to the Acknowledge that covered it
    ack_latencies: list[float] = field(default_factory=list)
    unacked: int = 0
    wsp_retransmissions: int = 0
    session_findings: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ConnectionSeen:
    """A connection was recognized as WebSocket (emitted once per connection)."""

    connection: Connection


class _LostContext(DeflateContext):
    """A stand-in that refuses to inflate (the real context is unknowable)."""

    def decompress(self, payload: bytes) -> bytes:
        raise FrameError("compression context lost", close_code=1007)


class _Side:
    """Decoding state of one direction (one sender)."""

    __slots__ = (
        "assembler",
        "context_reliable",
        "held",
        "http",
        "mode",
        "note",
        "parser",
        "sender",
        "tries",
    )

    def __init__(self) -> None:
        self.mode = _UNKNOWN
        self.http = bytearray()
        self.parser: FrameParser | None = None
        self.assembler: MessageAssembler | None = None
        self.sender: str | None = None
        self.held: list[bytes] = []
        self.tries = 0
        self.context_reliable = True
        self.note: str | None = None


class _Conn:
    __slots__ = (
        "a_is_client",
        "a_name",
        "acks",
        "b_name",
        "busy",
        "conn",
        "ended",
        "flows",
        "observer",
        "request_ts",
        "sides",
        "skip",
        "syn_from",
        "ws_port",
    )

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.a_name = conn.client
        self.b_name = conn.server
        self.flows = (Flow(), Flow())
        self.sides = (_Side(), _Side())
        self.a_is_client: bool | None = None
        self.syn_from: int | None = None
        self.request_ts: float | None = None
        self.ws_port = False
        self.skip = False
        self.ended = False
        #: data was seen (set for another shard's connections; see _busy)
        self.busy = False
        self.observer: Any = None
        #: ack latency and retransmissions (capture/acks.py), from the first wsp message
        self.acks: Any = None


def plausible_frames(data: bytes, masked: bool | None, *, strong: bool) -> bool | None:
    """Whether ``data`` starts with well-formed frames; returns their mask bit.

    Returns None when not plausible, else whether the frames are masked. With
    ``strong`` (discovering an unknown connection), the bytes must be a run of
    complete frames ending exactly at the end of ``data``, or hold at least two
    complete frames; otherwise one plausible header is enough.
    """
    pos = 0
    end = len(data)
    complete = 0
    mask_bit: bool | None = masked
    while end - pos >= 2:
        b0 = data[pos]
        b1 = data[pos + 1]
        opcode = b0 & 0x0F
        if opcode not in _KNOWN_OPCODES or b0 & 0x30:
            return None
        is_masked = bool(b1 & 0x80)
        if mask_bit is None:
            mask_bit = is_masked
        elif is_masked != mask_bit:
            return None
        length = b1 & 0x7F
        head = 2
        if opcode >= 8 and (not b0 & 0x80 or b0 & 0x40 or length > 125):
            return None
        if length == 126:
            if end - pos < 4:
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 126:
                return None
            head = 4
        elif length == 127:
            if end - pos < 10:
                break
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if length < 65536 or length > 1 << 40:
                return None
            head = 10
        if is_masked:
            head += 4
        total = head + length
        if end - pos < total:
            break
        pos += total
        complete += 1
    if pos == 0 and end - pos < 2:
        return None
    if strong:
        if (complete >= 1 and pos == end) or complete >= 2:
            return mask_bit
        return None
    return mask_bit


class CaptureDecoder:
    """Packets in, events out; see the module docstring."""

    def __init__(
        self,
        *,
        ws_ports: Iterable[int] = (),
        max_message: int = 16 * 1024 * 1024,
        decode_wsp: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.ws_ports = frozenset(ws_ports)
        #: (index, count): decode only connections whose ``(id - 1) % count == index``
        #: (every connection is still numbered, so ids agree between shards).
        self.shard = shard
        self.max_message = max_message
        self.decode_wsp = decode_wsp
        self._flows: dict[tuple[bytes, int, bytes, int], tuple[_Conn, int]] = {}
        #: connection records (only WebSocket and refused ones once they end)
        self.connections: list[Connection] = []
        #: the number of connections so far (ids)
        self._next_id = 1
        #: connections followed now, oldest first (with ended ones, until they expire)
        #: (an OrderedDict: a plain dict is slow to walk from its front after many
        #: deletions there)
        self._live: OrderedDict[int, tuple[_Conn, tuple[bytes, int, bytes, int]]] = (
            OrderedDict()
        )
        #: kinds of the records that were let go (ended, not WebSocket), counted
        self.forgotten: Counter[str] = Counter()
        #: flows with out-of-order data, oldest hole first, and their bytes
        self._holding: dict[Flow, tuple[_Conn, int]] = {}
        self.pending_total = 0
        #: the limits' work, for the summary
        self.holes_given_up = 0
        self.connections_expired = 0
        self.connections_evicted = 0
        self._next_sweep = float("-inf")
        #: ``spill(events)``: called with a packet's events so far when they grow
        #: large (then emptied); None: everything comes back from :meth:`packet`
        self.spill: Callable[[list[Any]], None] | None = None
        self._held = 0
        self._forget: set[int] = set()
        self.packets = 0
        self.tcp_packets = 0
        self.other_packets = 0
        self.damaged_packets = 0
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self._warned_linktypes: set[int] = set()
        self._codec_decode = codec_decode
        self._segment = segment
        #: (session id, sent by the client) -> highest sequence number seen
        self._highest_sent: dict[tuple[int, bool], int] = {}

    def limits(self) -> dict[str, Any]:
        """What the memory limits did, for the summary (see ``CaptureStats.summary``)."""
        return {
            "forgotten": dict(self.forgotten),
            "tcp_holes_given_up": self.holes_given_up,
            "connections_expired": self.connections_expired,
            "connections_evicted": self.connections_evicted,
        }

    def owns(self, conn_id: int) -> bool:
        """Whether this decoder's shard decodes connection ``conn_id``."""
        index, count = self.shard
        return (conn_id - 1) % count == index

    # ------------------------------------------------------------------ packets

    def packet(self, pkt: RawPacket) -> list[Any]:
        """Take one packet; return the events it produced."""
        number, ts, linktype, data = pkt
        self.packets += 1
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts
        events: list[Any] = []
        if ts >= self._next_sweep:
            self._next_sweep = ts + _SWEEP_EVERY
            self._sweep(ts, number, events)
        try:
            seg = self._segment(linktype, data)
        except NotTcp as error:
            self.damaged_packets += 1
            events.append(CaptureWarning(number, f"packet skipped: {error}"))
            return events
        except (IndexError, ValueError):
            self.damaged_packets += 1
            events.append(CaptureWarning(number, "packet skipped: malformed headers"))
            return events
        if seg is None:
            self.other_packets += 1
            if linktype not in _SUPPORTED and linktype not in self._warned_linktypes:
                self._warned_linktypes.add(linktype)
                events.append(
                    CaptureWarning(number, f"link type {linktype} is not supported; skipped")
                )
            return events
        self.tcp_packets += 1
        src, sport, dst, dport, seq, ack, flags, payload = seg
        key = (src, sport, dst, dport)
        found = self._flows.get(key)
        if found is None or (flags & SYN and not flags & ACK and found[0].conn.closed):
            found = self._new_conn(key, number, ts, events)
        state, index = found
        if state.ended:
            return events
        conn = state.conn
        conn.last_ts = ts
        if state.skip:
            # another shard's: only what decides which connection a packet belongs
            # to is followed, the same way in every shard (ids agree)
            self._skipped(state, index, flags, payload)
            return events
        flow = state.flows[index]
        if flags & SYN:
            if flow.pending_bytes:
                before = flow.pending_bytes
                flow.syn(seq)
                self._account(state, index, flow, before, number, ts, events)
            else:
                flow.syn(seq)
            if not flags & ACK:
                state.syn_from = index
                if state.a_is_client is None:
                    state.a_is_client = index == 0
            elif state.a_is_client is None:
                state.a_is_client = index == 1
        if flags & ACK:
            other = state.flows[1 - index]
            if other.pending_bytes:
                before = other.pending_bytes
                items = other.ack_seen(ack)
                if items:
                    self._deliver(state, 1 - index, items, number, ts, events)
                self._account(state, 1 - index, other, before, number, ts, events)
            else:
                other.acked = ack
        if payload:
            if state.sides[index].mode == _FRAMES and flow.in_order(seq, payload):
                self._frames(state, index, payload, number, ts, events)
            else:
                before = flow.pending_bytes
                items = flow.segment(seq, payload)
                if items:
                    self._deliver(state, index, items, number, ts, events)
                if flow.pending_bytes != before:
                    self._account(state, index, flow, before, number, ts, events)
        if flags & (FIN | RST):
            flow.fin = True
            if flags & RST or state.flows[1 - index].fin:
                conn.closed = True
                self._end(state, number, ts, events)
        return events

    @staticmethod
    def _skipped(state: _Conn, index: int, flags: int, payload: bytes) -> None:
        if payload:
            state.busy = True
        if flags & (FIN | RST):
            state.flows[index].fin = True
            if flags & RST or state.flows[1 - index].fin:
                state.conn.closed = True
                state.ended = True

    def _new_conn(
        self, key: tuple[bytes, int, bytes, int], number: int, ts: float, events: list[Any]
    ) -> tuple[_Conn, int]:
        src, sport, dst, dport = key
        if len(self._live) >= MAX_CONNECTIONS:
            self._evict(number, ts, events)
        old = self._flows.get(key)
        if old is not None:  # a new connection on the ports of one that ended
            self._drop(old[0])
        conn = Connection(
            self._next_id,
            format_addr(src, sport),
            format_addr(dst, dport),
            ts,
            number,
        )
        state = _Conn(conn)
        index, count = self.shard
        state.skip = (conn.id - 1) % count != index
        if dport in self.ws_ports:
            state.a_is_client = True
            state.ws_port = True
        elif sport in self.ws_ports:
            state.a_is_client = False
            state.ws_port = True
        self._orient(state)
        self._next_id += 1
        self.connections.append(conn)
        self._live[conn.id] = (state, key)
        self._flows[key] = (state, 0)
        self._flows[(dst, dport, src, sport)] = (state, 1)
        return state, 0

    # ---------------------------------------------------------------- the limits

    def _account(
        self, state: _Conn, index: int, flow: Flow, before: int, number: int, ts: float,
        events: list[Any],
    ) -> None:
        """``flow``'s out-of-order data went from ``before`` bytes to what it holds:
        keep the total, and give up the oldest holes while it is over its limit."""
        self.pending_total += flow.pending_bytes - before
        holding = self._holding
        if flow.pending_bytes:
            if flow not in holding:
                holding[flow] = (state, index)
        else:
            holding.pop(flow, None)
        while self.pending_total > MAX_PENDING_TOTAL and holding:
            oldest = next(iter(holding))
            owner, side = holding.pop(oldest)
            self.pending_total -= oldest.pending_bytes
            items = oldest.flush(forced=True)
            if items:
                self._deliver(owner, side, items, number, ts, events)

    def _release(self, state: _Conn) -> None:
        """Stop counting the out-of-order data of ``state`` (it is ending)."""
        for flow in state.flows:
            if self._holding.pop(flow, None) is not None:
                self.pending_total -= flow.pending_bytes

    def _sweep(self, now: float, number: int, events: list[Any]) -> None:
        """End the connections that saw no packet for IDLE_TIMEOUT seconds."""
        horizon = now - IDLE_TIMEOUT
        idle = [state for state, _ in self._live.values() if state.conn.last_ts < horizon]
        for state in idle:
            if not state.ended:
                if not state.skip:
                    self.connections_expired += 1
                    if state.conn.kind == "websocket" and not state.conn.closed:
                        events.append(CaptureWarning(
                            number,
                            f"connection {state.conn.id}: no packet for {IDLE_TIMEOUT:g} s "
                            "of capture time; ended (a later packet starts a new one)",
                            state.conn.id,
                        ))
                self._end(state, number, now, events)
            self._drop(state)

    def _evict(self, number: int, ts: float, events: list[Any]) -> None:
        """Make room for one more connection: of the oldest, drop the first that
        ended or end the first that never carried data (the busy ones looked at
        go last, so that the next look finds others); else end the oldest.

        It depends only on packets, not on what was decoded, so that every shard
        of a parallel run takes the same decision (connection ids agree).
        """
        live = self._live
        victim = None
        busy = []
        for n, (state, _) in enumerate(live.values()):
            if state.ended or not (
                state.busy or state.flows[0].stats.segments or state.flows[1].stats.segments
            ):
                victim = state
                break
            busy.append(state.conn.id)
            if n >= 64:
                break
        if victim is None:
            victim = next(iter(live.values()))[0]
        else:
            for conn_id in busy:
                live.move_to_end(conn_id)
        if not victim.ended:
            conn = victim.conn
            if not victim.skip:
                self.connections_evicted += 1
                if conn.kind == "websocket" and not conn.closed:
                    events.append(CaptureWarning(
                        number,
                        f"connection {conn.id}: ended to follow a new one (more than "
                        f"{MAX_CONNECTIONS:,} connections at once; this was the oldest)",
                        conn.id,
                    ))
            self._end(victim, number, ts, events)
        self._drop(victim)

    def _drop(self, state: _Conn) -> None:
        """Forget a connection that ended: its flows, and its record unless it is
        shown (WebSocket, refused)."""
        conn = state.conn
        found = self._live.pop(conn.id, None)
        if found is None:
            return
        src, sport, dst, dport = found[1]
        for key in ((src, sport, dst, dport), (dst, dport, src, sport)):
            if self._flows.get(key, (None,))[0] is state:
                del self._flows[key]
        if conn.kind not in ("websocket", "refused"):
            if not state.skip:
                self.forgotten[conn.kind] += 1
            self._forget.add(conn.id)
            if len(self._forget) >= 1024:
                self._compact()

    def _compact(self) -> None:
        """Take the records let go out of :attr:`connections`."""
        if self._forget:
            forget = self._forget
            self.connections = [c for c in self.connections if c.id not in forget]
            forget.clear()

    # --------------------------------------------------------------- byte stream

    def _deliver(
        self,
        state: _Conn,
        index: int,
        items: list[int | bytes],
        number: int,
        ts: float,
        events: list[Any],
    ) -> None:
        side = state.sides[index]
        spill = self.spill
        for item in items:
            if spill is not None and len(events) >= SPILL_EVENTS:
                self._spill(events)  # what a filled hole releases: in pieces
            if isinstance(item, int):
                self._gap(state, index, item, number, ts, events)
                continue
            mode = side.mode
            if mode == _FRAMES:
                self._frames(state, index, item, number, ts, events)
            elif mode == _IGNORE:
                continue
            elif mode == _HTTP:
                self._http(state, index, item, number, ts, events)
            elif mode == _SYNC:
                self._sync(state, index, item, number, ts, events)
            else:
                self._discover(state, index, item, number, ts, events)

    def _gap(
        self, state: _Conn, index: int, size: int, number: int, ts: float, events: list[Any]
    ) -> None:
        conn = state.conn
        conn.tcp_gaps += 1
        conn.tcp_lost_bytes += size
        flow = state.flows[index]
        forced = flow.forced
        if forced:
            flow.forced = False
            self.holes_given_up += 1
        side = state.sides[index]
        if side.mode == _IGNORE or conn.kind in ("other", "http", "refused"):
            return
        who = self._sender(state, index) or "one side"
        if forced:
            text = (
                f"connection {conn.id}: gave up waiting for {size} bytes from the {who} "
                f"(out-of-order data over its limit: {MAX_PENDING >> 20} MB a direction, "
                f"{MAX_PENDING_TOTAL >> 20} MB in all); resynchronizing at the next frame "
                "boundary"
            )
        else:
            text = (
                f"connection {conn.id}: {size} bytes from the {who} were not captured "
                "(TCP gap); resynchronizing at the next frame boundary"
            )
        events.append(
            CaptureWarning(
                number,
                text,
                conn.id,
            )
        )
        if side.parser is not None:
            side.parser.reset()
        if side.assembler is not None:
            for msg in side.assembler.lost():
                self._emit(state, index, msg, number, ts, events, note="cut by a TCP gap")
            params = conn.deflate
            if side.assembler.deflate is not None and (
                params is None or not self._no_takeover(params, side.sender)
            ):
                side.assembler.deflate = self._fresh_context(params, side.sender)
                side.context_reliable = False
        if side.mode in (_FRAMES, _UNKNOWN, _HTTP):
            side.mode = _SYNC

    @staticmethod
    def _no_takeover(params: DeflateParams, sender: str | None) -> bool:
        if sender == "client":
            return params.client_no_context_takeover
        return params.server_no_context_takeover

    def _fresh_context(self, params: DeflateParams | None, sender: str | None) -> DeflateContext:
        if params is None:
            params = DeflateParams()
        return params.context(sender or "server", max_size=self.max_message)

    def _sender(self, state: _Conn, index: int) -> str | None:
        if state.a_is_client is None:
            return None
        return "client" if (index == 0) == state.a_is_client else "server"

    def _discover(
        self, state: _Conn, index: int, data: bytes, number: int, ts: float, events: list[Any]
    ) -> None:
        side = state.sides[index]
        conn = state.conn
        if conn.kind != "unknown":
            # the other side already decided what this connection is
            if conn.kind == "websocket":
                side.mode = _SYNC
                self._sync(state, index, data, number, ts, events)
            else:
                side.mode = _IGNORE
            return
        if not side.http and looks_like_http(data[:8]):
            side.mode = _HTTP
            self._http(state, index, data, number, ts, events)
            return
        expect = self._expected_mask(state, index)
        mask_bit = plausible_frames(data, expect, strong=not state.ws_port)
        if mask_bit is not None:
            self._start_websocket(state, index, mask_bit, handshake=False)
            events.append(ConnectionSeen(conn))
            self._frames(state, index, data, number, ts, events)
            return
        side.tries += 1
        conn.stats[0 if self._sender(state, index) != "server" else 1].skipped_bytes += len(data)
        if state.ws_port:
            side.mode = _SYNC
            return
        if side.tries >= _DISCOVERY_SEGMENTS:
            other = state.sides[1 - index]
            if (other.mode in (_UNKNOWN, _IGNORE) and other.tries >= 1) or side.tries > 16:
                conn.kind = "other"
                side.mode = _IGNORE
                other.mode = _IGNORE

    def _expected_mask(self, state: _Conn, index: int) -> bool | None:
        sender = self._sender(state, index)
        if sender is None:
            return None
        return sender == "client"

    def _start_websocket(
        self, state: _Conn, index: int, mask_bit: bool | None, *, handshake: bool
    ) -> None:
        conn = state.conn
        if state.a_is_client is None and mask_bit is not None:
            state.a_is_client = (index == 0) == mask_bit
        if state.a_is_client is None:
            state.a_is_client = True
        self._orient(state)
        conn.kind = "websocket"
        conn.handshake = handshake
        if not handshake:
            conn.notes.append("capture starts after the handshake (recognized by its frames)")
        for i, side in enumerate(state.sides):
            sender = self._sender(state, i)
            side.sender = sender
            if side.assembler is None:
                assert sender is not None
                params = conn.deflate
                if params is not None:
                    ctx: DeflateContext | None = params.context(sender, max_size=self.max_message)
                elif handshake:
                    ctx = None
                else:
                    ctx = self._fresh_context(None, sender)
                    side.context_reliable = False
                side.parser = FrameParser(self.max_message)
                side.assembler = MessageAssembler(
                    sender, ctx, max_message_size=self.max_message
                )
            if side.mode in (_UNKNOWN, _HTTP):
                side.mode = _SYNC if not handshake else _FRAMES
        state.sides[index].mode = _FRAMES

    def _orient(self, state: _Conn) -> None:
        """Make ``conn.client`` name the client's address once it is known."""
        conn = state.conn
        if state.a_is_client is False:
            conn.client, conn.server = state.b_name, state.a_name
        else:
            conn.client, conn.server = state.a_name, state.b_name

    def _sync(
        self, state: _Conn, index: int, data: bytes, number: int, ts: float, events: list[Any]
    ) -> None:
        side = state.sides[index]
        if side.assembler is None:
            return
        mask_bit = plausible_frames(data, side.sender == "client", strong=False)
        if mask_bit is None:
            state.conn.stats[0 if side.sender == "client" else 1].skipped_bytes += len(data)
            return
        side.mode = _FRAMES
        self._frames(state, index, data, number, ts, events)

    def _http(
        self, state: _Conn, index: int, data: bytes, number: int, ts: float, events: list[Any]
    ) -> None:
        side = state.sides[index]
        conn = state.conn
        if conn.kind == "websocket" and side.assembler is not None:
            # a 101 arrived: what follows the client's request is frames
            side.mode = _FRAMES
            self._frames(state, index, data, number, ts, events)
            return
        if side.held or (state.request_ts is not None and side.sender is None
                         and self._sender(state, index) == "client"):
            # the client wrote on after its request; keep it until the response
            if sum(map(len, side.held)) + len(data) <= _MAX_HELD:
                side.held.append(data)
            return
        side.http += data
        try:
            head = parse_http_head(bytes(side.http))
        except HandshakeError as error:
            events.append(CaptureWarning(number, f"connection {conn.id}: {error}", conn.id))
            side.http.clear()
            side.mode = _IGNORE
            return
        if head is None:
            if len(side.http) > MAX_HEAD:
                side.http.clear()
                side.mode = _IGNORE
            return
        rest = bytes(side.http[head.length :])
        side.http.clear()
        try:
            if head.is_request:
                request = UpgradeRequest.from_head(head)
                if state.a_is_client is None or state.syn_from is None:
                    state.a_is_client = index == 0
                self._orient(state)
                if not request.is_websocket:
                    conn.kind = "http"
                    conn.notes.append(f"HTTP without a WebSocket upgrade: {head.start_line}")
                    side.mode = _IGNORE
                    state.sides[1 - index].mode = _IGNORE
                    return
                conn.path = request.path
                state.request_ts = ts
                side.mode = _HTTP
                if rest:
                    side.held.append(rest)
                return
            response = UpgradeResponse.from_head(head)
        except HandshakeError as error:
            events.append(CaptureWarning(number, f"connection {conn.id}: {error}", conn.id))
            side.mode = _IGNORE
            return
        if state.a_is_client is None:
            state.a_is_client = index == 1
        self._orient(state)
        conn.status = response.status
        if not response.is_upgrade:
            conn.kind = "refused"
            conn.notes.append(f"upgrade refused: {head.start_line}")
            side.mode = _IGNORE
            state.sides[1 - index].mode = _IGNORE
            return
        conn.subprotocol = response.subprotocol
        conn.extensions = response.extensions
        conn.deflate = response.deflate
        if response.subprotocol in ("wsp.v1", "wsp.v2"):
            conn.wsp_version = 1 if response.subprotocol == "wsp.v1" else 2
        if state.request_ts is not None:
            conn.handshake_latency = ts - state.request_ts
        if state.request_ts is None:
            conn.notes.append("the client's upgrade request was not captured")
        self._start_websocket(state, index, False, handshake=True)
        events.append(ConnectionSeen(conn))
        client_side = state.sides[1 - index]
        held = client_side.held
        client_side.held = []
        client_side.mode = _FRAMES
        for chunk in held:
            self._frames(state, 1 - index, chunk, number, ts, events)
        if rest:
            self._frames(state, index, rest, number, ts, events)

    # ------------------------------------------------------------------- frames

    def _frames(
        self, state: _Conn, index: int, data: bytes, number: int, ts: float, events: list[Any]
    ) -> None:
        side = state.sides[index]
        parser = side.parser
        assembler = side.assembler
        assert parser is not None and assembler is not None
        start = 0
        while True:
            found = assembler.scan(parser, data, start)  # the common frames, in C
            if found is None:
                break
            messages, start, failed = found
            for msg in messages:
                self._emit(state, index, msg, number, ts, events)
            if not failed or start >= len(data):
                break
        if start:
            if start >= len(data):
                return
            data = data[start:]
        try:
            frames = parser.feed_raw(data)
        except FrameError as error:
            events.append(
                CaptureWarning(
                    number,
                    f"connection {state.conn.id}: {error}; resynchronizing",
                    state.conn.id,
                )
            )
            parser.reset()
            side.mode = _SYNC
            for msg in assembler.lost():
                self._emit(state, index, msg, number, ts, events, note="cut by a framing error")
            return
        for msg in assembler.receive_raw(frames):
            self._emit(state, index, msg, number, ts, events)

    def _emit(
        self,
        state: _Conn,
        index: int,
        msg: WsMessage,
        number: int,
        ts: float,
        events: list[Any],
        note: str | None = None,
    ) -> None:
        side = state.sides[index]
        conn = state.conn
        sender = side.sender or "server"
        violations = msg.violations
        if violations and "deflate-error" in violations:
            if msg.compressed and not side.context_reliable:
                violations = tuple(v for v in violations if v != "deflate-error")
                note = (
                    "compressed with a context that began before the capture or before a gap; "
                    "cannot inflate"
                )
                if side.assembler is not None:
                    side.assembler.deflate = self._fresh_context(conn.deflate, sender)
            elif side.assembler is not None:
                side.assembler.deflate = self._fresh_context(conn.deflate, sender)
                side.context_reliable = False
        payload = msg.payload
        stats = conn.stats[0 if sender == "client" else 1]
        stats.messages += 1
        stats.frames_bytes += msg.wire_length
        stats.payload_bytes += len(payload)
        if msg.compressed and note is None:
            stats.compressed_messages += 1
            stats.compressed_plain += len(payload)
        captured = CapturedMessage(number, ts, conn.id, sender, msg, violations, note)
        if msg.opcode == 2 and note is None and self.decode_wsp:
            version = conn.wsp_version
            if version is not None or payload[:2] == _V1_MAGIC:
                try:
                    decoded = self._codec_decode(payload, version=version)
                except WspError as error:
                    if version is not None:  # else: not wsp after all, D1 C0 by chance
                        captured.wsp = f"wsp decode failed: {error}"
                else:
                    captured.wsp = (1 if payload[0] == 0xD1 else 2, decoded)
                    self._session(state, captured, decoded)
        events.append(captured)
        if len(payload) > 1024 and self.spill is not None:
            # big messages are handed out every SPILL_BYTES (small ones: _deliver)
            self._held += len(payload)
            if self._held > SPILL_BYTES:
                self._spill(events)

    def _spill(self, events: list[Any]) -> None:
        """Hand out the events so far (see :attr:`spill`) and empty ``events``."""
        assert self.spill is not None
        self._held = 0
        if events:
            self.spill(events[:])
            events.clear()

    def _session(self, state: _Conn, item: CapturedMessage, message: Any) -> None:
        """Follow the wsp session: the engine's observer, ack latency, unacked."""
        conn = state.conn
        client = item.direction == "client"
        acks = state.acks
        if acks is None:
            acks = state.acks = new_tracker(self._highest_sent, conn.ack_latencies)
        acks.feed(message, client, item.ts)
        if not conn.handshake:
            if not conn.notes or conn.notes[-1] != _NO_OBSERVER:
                conn.notes.append(_NO_OBSERVER)
            return
        observer = state.observer
        if observer is None:
            observer = state.observer = SessionObserver()
        findings = observer.feed(_C2S if client else _S2C, message, item.ts)
        if findings:
            item.session = tuple(findings)
            extra = []
            for finding in findings:
                key = f"{finding.rule}:{finding.verdict.value}"
                conn.session_findings[key] = conn.session_findings.get(key, 0) + 1
                if finding.verdict.value == "violation":
                    extra.append(f"wsp-{finding.rule}")
            if extra:
                item.violations = item.violations + tuple(dict.fromkeys(extra))

    # ------------------------------------------------------------------- the end

    def finish(self) -> list[Any]:
        """The capture ended: flush held segments and unfinished messages."""
        events: list[Any] = []
        number = self.packets
        ts = self.last_ts
        for state, _ in list(self._live.values()):
            if not state.skip and not state.ended:
                self._end(state, number, ts, events)
        self._compact()
        return events

    def _end(self, state: _Conn, number: int, ts: float, events: list[Any]) -> None:
        """A connection ended (or the capture did): flush it, then free its decoders.

        Only the :class:`Connection` record stays, so memory does not grow with the
        number of connections a long capture has seen come and go.
        """
        state.ended = True
        self._release(state)
        for index, flow in enumerate(state.flows):
            items = flow.flush()
            if items:
                self._deliver(state, index, items, number, ts, events)
        for index, side in enumerate(state.sides):
            if side.assembler is not None:
                for msg in side.assembler.finish():
                    self._emit(state, index, msg, number, ts, events)
        conn = state.conn
        conn.retransmissions = sum(f.stats.retransmitted for f in state.flows)
        if state.acks is not None:
            conn.unacked = state.acks.unacked
            conn.wsp_retransmissions = state.acks.retransmissions
        if state.observer is not None:
            for finding in state.observer.finish(ts):
                key = f"{finding.rule}:{finding.verdict.value}"
                conn.session_findings[key] = conn.session_findings.get(key, 0) + 1
                events.append(
                    CaptureWarning(
                        number,
                        f"connection {conn.id}: session: {finding.message} "
                        f"({finding.rule}, the {finding.culprit}'s fault)",
                        conn.id,
                    )
                )
        if conn.kind == "unknown":
            conn.kind = "other"
        state.observer = None
        state.acks = None
        state.sides = _ENDED_SIDES
        state.flows = _ENDED_FLOWS


_SUPPORTED = frozenset({0, 1, 12, 14, 101, 108, 113, 276, 228, 229})
_NO_OBSERVER = "session checks skipped: the capture starts after the wsp handshake"
#: Bytes a client may send after its upgrade request, held until the response.
_MAX_HELD = 1024 * 1024
#: what an ended connection keeps (nothing: they are never used again)
_ENDED_SIDES = (_Side(), _Side())
_ENDED_FLOWS = (Flow(), Flow())
