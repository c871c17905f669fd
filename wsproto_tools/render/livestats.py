"""Live statistics for ``wsp tui``'s Stats screen: fed one :class:`~.records.Row` at a time.

:class:`LiveStats` keeps, overall and per session (``conn``): per-second buckets of
the last :data:`WINDOW` seconds (by the rows' own ``ts``, never the wall clock)
of messages and payload bytes in each direction; counts by wsp type (or opcode
when a message is not wsp); ack latency, wsp Heartbeat round trips and
WebSocket ping round trips as percentiles over bounded memory; the compression
ratio and the framing overhead when the records tell them. ``add`` is cheap: it
reads the row's columns, and the record only for the few rows whose latency
needs a payload field (Acknowledge, Heartbeat, ping, pong) unless the caller
hands it over.

The rules are not written again here. Ack latency is the capture's
:class:`~wsproto_tools.capture.acks.AckTracker` (sequenced types from the engine's
vocabulary, cumulative acknowledgments); a Heartbeat reply answers the probe
with the same id that the *other* side sent (docs/protocol.md S.5, checklist
rule 31: each side numbers its own probes); a pong answers the ping with the
same payload from the other side, as in :class:`~wsproto_tools.capture.stats.CaptureStats`;
percentiles are :func:`~wsproto_tools.capture.stats.percentiles`.

:func:`stats_renderables` draws a snapshot with rich, and :func:`spark` makes a
unicode-block sparkline string. The TUI feeds :meth:`LiveStats.series` to a
Textual ``Sparkline`` (render/ does not import Textual).
"""

from __future__ import annotations

__all__ = [
    "MAX_SESSIONS",
    "WINDOW",
    "LiveStats",
    "Quantiles",
    "spark",
    "stats_renderables",
]

import math
from collections import Counter
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wsproto_tools.capture.acks import new_tracker
from wsproto_tools.capture.stats import percentiles
from wsproto_tools.codec.schema import Acknowledge, Batch
from wsproto_tools.engine.vocabulary import SEQUENCED
from wsproto_tools.render.records import AUX_MIXED, Row, batch_run

#: seconds of per-second buckets kept for the sparklines
WINDOW = 120
#: sessions followed one by one (the oldest is forgotten past this; overall keeps counting)
MAX_SESSIONS = 4096
#: samples kept exactly per latency metric before the log-bucket histogram takes over
EXACT_SAMPLES = 1024
#: pending probes, pings and sequenced messages remembered per session
_MAX_PENDING = 4096
#: histogram buckets per doubling (relative error under 2.2 %)
_SUB = 32
_HIST_BASE = 1e-7  # seconds: bucket 0 holds everything below 0.1 µs

_BLOCKS = " ▁▂▃▄▅▆▇█"
_SEQUENCED_NAMES = {cls.__name__: cls for cls in SEQUENCED}
_NEEDS_RECORD = frozenset({"Acknowledge", "Heartbeat", "Batch"})


class Quantiles:
    """p50/p90/p99/max of a stream of durations in bounded memory: the first
    :data:`EXACT_SAMPLES` values are kept (exact percentiles, the rule of
    :func:`~wsproto_tools.capture.stats.percentiles`); past them a log-bucket
    histogram (32 buckets per doubling, like HdrHistogram) answers within 2.2 %."""

    __slots__ = ("count", "exact", "hist", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.exact: list[float] = []
        self.hist: Counter[int] | None = None
        self.count = 0
        self.total = 0.0
        self.maximum = 0.0
        self.minimum = math.inf

    @staticmethod
    def _bucket(value: float) -> int:
        if value <= _HIST_BASE:
            return 0
        return 1 + int(math.log2(value / _HIST_BASE) * _SUB)

    @staticmethod
    def _value(bucket: int) -> float:
        """The middle of a bucket (geometric)."""
        if bucket == 0:
            return _HIST_BASE
        return float(_HIST_BASE * 2 ** ((bucket - 0.5) / _SUB))

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value > self.maximum:
            self.maximum = value
        if value < self.minimum:
            self.minimum = value
        hist = self.hist
        if hist is None:
            self.exact.append(value)
            if len(self.exact) > EXACT_SAMPLES:
                hist = self.hist = Counter(self._bucket(v) for v in self.exact)
                self.exact = []
        else:
            hist[self._bucket(value)] += 1

    def summary(self) -> dict[str, float] | None:
        """``{"p50", "p90", "p99", "max", "n"}`` in seconds, None before any value."""
        if not self.count:
            return None
        if self.hist is None:
            return percentiles(self.exact)
        ordered = sorted(self.hist.items())
        n = self.count

        def at(q: float) -> float:
            rank = min(n - 1, int(q * n))
            seen = 0
            for bucket, k in ordered:
                seen += k
                if seen > rank:
                    return min(self._value(bucket), self.maximum)
            return self.maximum

        return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": self.maximum, "n": n}


class _AckMessage:
    """What :class:`~wsproto_tools.capture.acks.AckTracker` reads of a message."""

    __slots__ = ("payload", "sequence", "session_id")

    def __init__(self, payload: Any, sequence: int, session_id: int) -> None:
        self.payload = payload
        self.sequence = sequence
        self.session_id = session_id


#: an instance of each sequenced payload class without fields: the tracker reads only its type
_SEQUENCED_SHAPES = {name: object.__new__(cls) for name, cls in _SEQUENCED_NAMES.items()}


def _frame_header(length: int, masked: bool) -> int:
    """Bytes of a single RFC 6455 frame header (section 5.2, shortest length form)."""
    size = 2 if length < 126 else 4 if length < 65536 else 10
    return size + 4 if masked else size


class _Tally:
    """The statistics of one scope (one session, or all)."""

    __slots__ = (
        "ack",
        "bytes",
        "compressed",
        "compressed_plain",
        "compressed_wire",
        "direction_bytes",
        "direction_messages",
        "events",
        "first_ts",
        "heartbeat",
        "last_ts",
        "latest",
        "messages",
        "ping",
        "plain_payload",
        "plain_wire",
        "ring_bytes",
        "ring_messages",
        "start",
        "types",
        "violations",
        "with_record",
    )

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.direction_messages = [0, 0]  # sent by the client, by the server
        self.direction_bytes = [0, 0]
        self.types: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.first_ts: float | None = None
        self.last_ts = 0.0
        # per-second ring: [client, server] x WINDOW; ``latest`` the newest second
        self.ring_messages = ([0] * WINDOW, [0] * WINDOW)
        self.ring_bytes = ([0] * WINDOW, [0] * WINDOW)
        self.latest: int | None = None
        self.start = 0  # the first second seen (series start no earlier)
        self.ack = Quantiles()
        self.heartbeat = Quantiles()
        self.ping = Quantiles()
        self.compressed = 0
        self.with_record = 0
        self.compressed_wire = 0
        self.compressed_plain = 0
        self.plain_wire = 0
        self.plain_payload = 0

    def add(self, row: Row, side: int) -> None:
        ts = row.ts
        size = row.size
        self.messages += 1
        self.bytes += size
        self.direction_messages[side] += 1
        self.direction_bytes[side] += size
        self.types[row.wsp_type or row.opcode or "?"] += 1
        if row.violations:
            self.violations.update(row.violations)
        if self.first_ts is None:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts
        second = int(ts)
        latest = self.latest
        if latest is None:
            self.latest = latest = self.start = second
        elif second > latest:
            msgs, nbytes = self.ring_messages, self.ring_bytes
            for s in range(max(latest + 1, second - WINDOW + 1), second + 1):
                i = s % WINDOW
                msgs[0][i] = msgs[1][i] = nbytes[0][i] = nbytes[1][i] = 0
            self.latest = latest = second
        elif second < self.start:
            self.start = max(second, latest - WINDOW + 1)
        if second > latest - WINDOW:
            i = second % WINDOW
            self.ring_messages[side][i] += 1
            self.ring_bytes[side][i] += size

    def sizes(self, record: dict[str, Any], side: int) -> None:
        """Compression and framing from a message record (``wire_length`` when known;
        otherwise an uncompressed single-frame message's header from its length)."""
        self.with_record += 1
        length = record.get("length")
        if not isinstance(length, int):
            return
        compressed = bool(record.get("compressed"))
        if compressed:
            self.compressed += 1
        wire = record.get("wire_length")
        if not isinstance(wire, int):
            if compressed or record.get("frames", 1) != 1 or "opcode" not in record:
                return
            codes = record.get("violations") or ()
            masked = ("unmasked-client-frame" not in codes) if side == 0 else (
                "masked-server-frame" in codes)
            wire = length + _frame_header(length, masked)
        if compressed:
            if record.get("note") is None:
                self.compressed_wire += wire
                self.compressed_plain += length
        else:
            self.plain_wire += wire
            self.plain_payload += length

    def series(self, side: int | None = None) -> tuple[list[int], list[int]]:
        latest = self.latest
        if latest is None:
            return [], []
        first = max(self.start, latest - WINDOW + 1)
        idx = [s % WINDOW for s in range(first, latest + 1)]
        m, b = self.ring_messages, self.ring_bytes
        if side is None:
            return [m[0][i] + m[1][i] for i in idx], [b[0][i] + b[1][i] for i in idx]
        return [m[side][i] for i in idx], [b[side][i] for i in idx]

    def snapshot(self) -> dict[str, Any]:
        messages, nbytes = self.series()
        recent = messages[-10:]
        ratio = (round(self.compressed_plain / self.compressed_wire, 3)
                 if self.compressed_wire else None)
        overhead = round(1 - self.plain_payload / self.plain_wire, 4) if self.plain_wire else None
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "events": dict(self.events),
            "messages_by_direction": {"client": self.direction_messages[0],
                                      "server": self.direction_messages[1]},
            "bytes_by_direction": {"client": self.direction_bytes[0],
                                   "server": self.direction_bytes[1]},
            "types": dict(self.types.most_common()),
            "violations": dict(self.violations.most_common()),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts if self.first_ts is not None else None,
            "rate": round(sum(recent) / len(recent), 3) if recent else 0.0,
            "series": {"messages": messages, "bytes": nbytes},
            "latency": {"ack": self.ack.summary(), "heartbeat": self.heartbeat.summary(),
                        "ping": self.ping.summary()},
            "compressed_messages": self.compressed,
            "compression_ratio": ratio,
            "protocol_overhead": overhead,
            "sized_messages": self.with_record,
        }


class _Pairs:
    """The pending requests of one session whose answers give round trips: sequenced
    messages (ack latency), Heartbeat probes and pings, each per side."""

    __slots__ = ("acks", "latencies", "pings", "probes")

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.acks = new_tracker({}, self.latencies, _MAX_PENDING)
        self.probes: dict[tuple[int, Any], float] = {}
        self.pings: dict[tuple[int, str], float] = {}


def _remember(table: dict[Any, float], key: Any, ts: float) -> None:
    if len(table) >= _MAX_PENDING:
        table.clear()  # a peer that never answers must not grow it
    table[key] = ts


class LiveStats:
    """Incremental statistics, overall and per session: feed :meth:`add`, read
    :meth:`snapshot` / :meth:`series` (any thread that owns it; not locked).

    ``fetch_records``: read a row's record (``row.record()``) for every message,
    so that the compression ratio and framing overhead cover all of them; by
    default only the rows whose latency needs a payload field are read.
    """

    def __init__(self, *, fetch_records: bool = False) -> None:
        self.fetch_records = fetch_records
        self.overall = _Tally()
        self.sessions: dict[int, _Tally] = {}
        self._pairs: dict[int, _Pairs] = {}

    # ------------------------------------------------------------ feeding

    def add(self, row: Row, record: dict[str, Any] | None = None) -> None:
        """One row (and its record when the caller has it)."""
        conn = row.conn
        tally = self.sessions.get(conn)
        if tally is None:
            if len(self.sessions) >= MAX_SESSIONS:
                oldest = next(iter(self.sessions))
                del self.sessions[oldest]
                self._pairs.pop(oldest, None)
            tally = self.sessions[conn] = _Tally()
        if row.kind != "message":
            self.overall.events[row.kind] += 1
            tally.events[row.kind] += 1
            if row.violations:
                self.overall.violations.update(row.violations)
                tally.violations.update(row.violations)
            return
        side = 1 if row.direction == "server" else 0
        self.overall.add(row, side)
        tally.add(row, side)
        wsp_type = row.wsp_type
        opcode = row.opcode
        if record is None and self.fetch_records:
            record = row.record()
        if record is not None:  # sizes only from records not picked by their type
            self.overall.sizes(record, side)
            tally.sizes(record, side)
        elif wsp_type in _NEEDS_RECORD:
            aux = row.aux
            if aux is not None and aux != AUX_MIXED:
                self._aux(row, wsp_type, aux, side, tally)
                return
            record = row.record()
        elif opcode == "ping" or opcode == "pong":
            record = row.record()
        if wsp_type is not None:
            self._wsp(row, record, side, tally)
        elif opcode == "ping" or opcode == "pong":
            self._ping(row, record, side, tally)

    def _pairs_of(self, conn: int) -> _Pairs:
        pairs = self._pairs.get(conn)
        if pairs is None:
            pairs = self._pairs[conn] = _Pairs()
        return pairs

    def _wsp(self, row: Row, record: dict[str, Any] | None, side: int, tally: _Tally) -> None:
        wsp_type = row.wsp_type
        if wsp_type in _SEQUENCED_SHAPES:
            if row.seq:
                pairs = self._pairs_of(row.conn)
                shape = _SEQUENCED_SHAPES[wsp_type]
                pairs.acks.feed(_AckMessage(shape, int(row.seq), 0), side == 0, row.ts)
            return
        if wsp_type not in _NEEDS_RECORD or record is None:
            return
        wsp = record.get("wsp")
        if not isinstance(wsp, dict):
            return
        self._one(wsp, row.conn, side, row.ts, tally)

    def _aux(self, row: Row, wsp_type: str, aux: int, side: int, tally: _Tally) -> None:
        """Acknowledge, Heartbeat and a Batch of sequenced messages from the row's
        ``aux`` number alone (:func:`~.records.aux_of`): no record is read."""
        conn = row.conn
        if wsp_type == "Batch":
            pairs = self._pairs_of(conn)
            shape = _SEQUENCED_SHAPES["Publish"]  # the tracker reads only that it is sequenced
            for seq in batch_run(aux):
                pairs.acks.feed(_AckMessage(shape, seq, 0), side == 0, row.ts)
            return
        if wsp_type == "Acknowledge":
            self._one({"type": "Acknowledge", "payload": {"sequence": aux}}, conn, side, row.ts,
                      tally)
        else:
            self._one({"type": "Heartbeat", "payload": {"id": aux >> 1, "reply": aux & 1}},
                      conn, side, row.ts, tally)

    def _one(self, wsp: dict[str, Any], conn: int, side: int, ts: float, tally: _Tally,
             depth: int = 0) -> None:
        kind = wsp.get("type")
        payload = wsp.get("payload")
        if not isinstance(payload, dict):
            return
        if kind == "Acknowledge":
            upto = payload.get("sequence")
            if not isinstance(upto, int):
                return
            pairs = self._pairs_of(conn)
            pairs.acks.feed(_AckMessage(Acknowledge(sequence=upto), 0, 0), side == 0, ts)
            if pairs.latencies:
                for latency in pairs.latencies:
                    self.overall.ack.add(latency)
                    tally.ack.add(latency)
                pairs.latencies.clear()
        elif kind == "Heartbeat":
            probe = payload.get("id", 0)
            probes = self._pairs_of(conn).probes
            if not payload.get("reply"):
                _remember(probes, (side, probe), ts)
                return
            sent = probes.pop((1 - side, probe), None)  # the other side's probe
            if sent is not None:
                self.overall.heartbeat.add(ts - sent)
                tally.heartbeat.add(ts - sent)
        elif kind == Batch.__name__ and depth == 0:
            for item in payload.get("messages") or ():
                if isinstance(item, dict):
                    name = item.get("type")
                    seq = item.get("sequence")
                    if name in _SEQUENCED_SHAPES and isinstance(seq, int) and seq:
                        self._pairs_of(conn).acks.feed(
                            _AckMessage(_SEQUENCED_SHAPES[name], seq, 0), side == 0, ts)
                    else:
                        self._one(item, conn, side, ts, tally, depth + 1)

    def _ping(self, row: Row, record: dict[str, Any] | None, side: int, tally: _Tally) -> None:
        if record is None:
            return
        data = record.get("hex")
        if not isinstance(data, str):
            return
        pings = self._pairs_of(row.conn).pings
        if row.opcode == "ping":
            _remember(pings, (side, data), row.ts)
            return
        sent = pings.pop((1 - side, data), None)
        if sent is not None:
            self.overall.ping.add(row.ts - sent)
            tally.ping.add(row.ts - sent)

    # ------------------------------------------------------------ reading

    def tally(self, conn: int | None = None) -> _Tally:
        if conn is None:
            return self.overall
        return self.sessions.get(conn) or _Tally()

    def series(self, conn: int | None = None) -> tuple[list[int], list[int]]:
        """Messages and payload bytes per second, both directions, oldest first:
        up to :data:`WINDOW` values ending at the newest row's second."""
        return self.tally(conn).series()

    def series_by_direction(
        self, conn: int | None = None
    ) -> dict[str, tuple[list[int], list[int]]]:
        """:meth:`series` per direction: ``client`` (sent by the client, in) and
        ``server`` (out)."""
        tally = self.tally(conn)
        return {"client": tally.series(0), "server": tally.series(1)}

    def snapshot(self, conn: int | None = None) -> dict[str, Any]:
        """Everything, JSON-ready (latencies in seconds)."""
        out = self.tally(conn).snapshot()
        out["conn"] = conn
        if conn is None:
            out["sessions"] = len(self.sessions)
        return out

    def top_sessions(self, n: int = 20) -> list[tuple[int, dict[str, Any]]]:
        """The ``n`` sessions with the most messages, with their snapshots."""
        busiest = sorted(self.sessions.items(), key=lambda kv: -kv[1].messages)[:n]
        return [(conn, tally.snapshot()) for conn, tally in busiest]


# ------------------------------------------------------------------ drawing


def spark(values: list[int] | list[float], width: int = 60) -> str:
    """A unicode-block sparkline of ``values`` at most ``width`` characters wide.

    Longer series are cut into ``width`` consecutive groups, each shown by its
    largest value (peaks stay visible). Heights are ``value / max`` in eighths,
    rounded, with any non-zero value at least ``▁``; zero is a space."""
    if not values or width <= 0:
        return ""
    vals = [float(v) for v in values]
    if len(vals) > width:
        n = len(vals)
        vals = [max(vals[i * n // width : max(i * n // width + 1, (i + 1) * n // width)])
                for i in range(width)]
    top = max(vals)
    if top <= 0:
        return " " * len(vals)
    out = []
    for v in vals:
        level = 0 if v <= 0 else max(1, min(8, round(v / top * 8)))
        out.append(_BLOCKS[level])
    return "".join(out)


def _ms(value: float) -> str:
    ms = value * 1000
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def _si(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


def stats_renderables(
    stats: LiveStats, conn: int | None = None, *, width: int = 60, sparklines: bool = True
) -> RenderableType:
    """The Stats screen body for ``conn`` (None: overall): totals, sparklines
    (:func:`spark` strings ``width`` wide; ``sparklines=False`` leaves them to a
    widget fed :meth:`LiveStats.series`), types, latency percentiles (ms),
    compression and overhead, busiest sessions."""
    snap = stats.snapshot(conn)
    parts: list[RenderableType] = []

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    by_dir = snap["messages_by_direction"]
    bytes_dir = snap["bytes_by_direction"]
    head.add_row("messages", f"{snap['messages']}  (client→server {by_dir['client']}, "
                             f"server→client {by_dir['server']})")
    head.add_row("payload bytes", f"{snap['bytes']}  (client→server {bytes_dir['client']}, "
                                  f"server→client {bytes_dir['server']})")
    if snap["first_ts"] is not None:
        head.add_row("span", f"{snap['last_ts'] - snap['first_ts']:.3f} s")
    head.add_row("rate", f"{snap['rate']:g} messages/s (last 10 s)")
    if conn is None:
        head.add_row("sessions", str(snap["sessions"]))
    if snap["events"]:
        head.add_row("events", ", ".join(f"{k} {v}" for k, v in sorted(snap["events"].items())))
    if snap["violations"]:
        head.add_row("violations", Text(", ".join(f"{k} {v}" for k, v in
                                                  snap["violations"].items()), style="red"))
    parts.append(head)

    series = snap["series"]
    if sparklines and series["messages"]:
        lines = Table.grid(padding=(0, 2))
        lines.add_column(style="bold")
        lines.add_column()
        lines.add_column(style="dim")
        lines.add_row("messages/s", Text(spark(series["messages"], width), style="green"),
                      f"max {max(series['messages'])}")
        lines.add_row("bytes/s", Text(spark(series["bytes"], width), style="cyan"),
                      f"max {_si(max(series['bytes']))}")
        parts.append(lines)

    if snap["types"]:
        types = Table(title="by type", title_justify="left", box=None, padding=(0, 2))
        types.add_column("type")
        types.add_column("count", justify="right")
        types.add_column("%", justify="right")
        total = sum(snap["types"].values())
        for name, count in snap["types"].items():
            types.add_row(name, str(count), f"{100 * count / total:.1f}")
        parts.append(types)

    latency = Table(title="latency (ms)", title_justify="left", box=None, padding=(0, 2))
    for column in ("", "n", "p50", "p90", "p99", "max"):
        latency.add_column(column, justify="left" if not column else "right")
    for label, key in (("ack", "ack"), ("heartbeat RTT", "heartbeat"), ("ping RTT", "ping")):
        q = snap["latency"][key]
        if q is None:
            latency.add_row(label, "0", "—", "—", "—", "—")
        else:
            latency.add_row(label, str(q["n"]), _ms(q["p50"]), _ms(q["p90"]), _ms(q["p99"]),
                            _ms(q["max"]))
    parts.append(latency)

    sizes = Table.grid(padding=(0, 2))
    sizes.add_column(style="bold")
    sizes.add_column()
    ratio = snap["compression_ratio"]
    sizes.add_row("compressed", f"{snap['compressed_messages']} of {snap['sized_messages']} "
                                "messages with a record")
    sizes.add_row("compression ratio", "unknown (no wire sizes)" if ratio is None
                  else f"{ratio:g} (inflated / on the wire)")
    overhead = snap["protocol_overhead"]
    sizes.add_row("framing overhead", "unknown" if overhead is None
                  else f"{100 * overhead:.2f} % of uncompressed wire bytes")
    parts.append(sizes)

    if conn is None and stats.sessions:
        sessions = Table(title="busiest sessions", title_justify="left", box=None,
                         padding=(0, 2))
        for column in ("session", "messages", "bytes", "ack p50", "heartbeat p50",
                       "violations"):
            sessions.add_column(column, justify="left" if column == "session" else "right")
        for sid, s in stats.top_sessions(20):
            ack = s["latency"]["ack"]
            beat = s["latency"]["heartbeat"]
            sessions.add_row(
                f"#{sid}" if sid < 100_000 else f"#{sid:x}"[-8:], str(s["messages"]),
                str(s["bytes"]), _ms(ack["p50"]) if ack else "—",
                _ms(beat["p50"]) if beat else "—", str(sum(s["violations"].values())),
            )
        parts.append(sessions)
    return Group(*parts)
