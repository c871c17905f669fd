"""The summary of a decoded capture: counts, bytes, latencies, violations."""

from __future__ import annotations

__all__ = ["OPCODE_NAMES", "CaptureStats", "opcode_name", "percentiles"]

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from wsproto_tools import native
from wsproto_tools.capture.decoder import CapturedMessage, Connection

OPCODE_NAMES = {
    0: "continuation",
    1: "text",
    2: "binary",
    8: "close",
    9: "ping",
    10: "pong",
}
#: Bounded samples kept for percentiles (reservoir of the first N is enough here).
_MAX_SAMPLES = 100_000


def opcode_name(opcode: int) -> str:
    """``text``, ``binary``... or ``reserved-0x3`` for reserved opcodes."""
    return OPCODE_NAMES.get(opcode) or f"reserved-0x{opcode:X}"


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50, p90, p99 and max of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1], "n": n}


@dataclass
class CaptureStats:
    """Accumulates what the summary shows; fed every message as it is decoded."""

    messages: int = 0
    opcodes: list[int] = field(default_factory=lambda: [0] * 16)
    from_client: int = 0
    types: Counter[type] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    undecoded: int = 0
    wire_bytes: int = 0
    payload_bytes: int = 0
    compressed_wire: int = 0
    compressed_plain: int = 0
    plain_wire: int = 0
    plain_payload: int = 0
    wsp_messages: int = 0
    wsp_errors: int = 0
    warnings: int = 0
    _pings: dict[tuple[int, str, bytes], float] = field(default_factory=dict)
    ping_rtt: list[float] = field(default_factory=list)
    #: the C counter of :meth:`counter`, whose counts :meth:`settle` folds in
    _tally: Any = field(default=None, repr=False, compare=False)

    def add(self, item: CapturedMessage) -> None:
        msg = item.msg
        self.messages += 1
        opcode = msg.opcode
        self.opcodes[opcode] += 1
        if item.direction == "client":
            self.from_client += 1
        self.wire_bytes += msg.wire_length
        self.payload_bytes += len(msg.payload)
        if msg.compressed:
            if item.note is None:
                self.compressed_wire += msg.wire_length
                self.compressed_plain += len(msg.payload)
        else:
            self.plain_wire += msg.wire_length
            self.plain_payload += len(msg.payload)
        if item.note is not None:
            self.undecoded += 1
        if item.violations:
            self.violations.update(item.violations)
        wsp = item.wsp
        if wsp is not None:
            if type(wsp) is tuple:
                self.wsp_messages += 1
                self.types[type(wsp[1].payload)] += 1
            else:
                self.wsp_errors += 1
        if opcode == 9 or opcode == 10:
            self._control(item)

    def _control(self, item: CapturedMessage) -> None:
        """Match pongs to pings (round-trip times)."""
        payload = item.msg.payload
        if item.msg.opcode == 9:
            if len(self._pings) < _MAX_SAMPLES:
                self._pings[(item.conn, item.direction, payload)] = item.ts
        else:
            other = "server" if item.direction == "client" else "client"
            sent = self._pings.pop((item.conn, other, payload), None)
            if sent is not None and len(self.ping_rtt) < _MAX_SAMPLES:
                self.ping_rtt.append(item.ts - sent)

    def counter(self) -> Callable[[CapturedMessage], None]:
        """:meth:`add`, in C when it was built (``capture/_tally.c``): its integer
        counts wait there until :meth:`settle` (which summary, merge and pickling
        call) folds them into these fields."""
        if self._tally is None:
            self._tally = _new_tally(self)
        return self._tally.add

    def settle(self) -> None:
        """Fold the counts waiting in the C counter into the fields."""
        if self._tally is None:
            return
        counts = self._tally.take()
        for name, value in zip(_COUNTED, counts, strict=False):
            setattr(self, name, getattr(self, name) + value)
        opcodes = counts[len(_COUNTED) :]
        self.opcodes = [a + b for a, b in zip(self.opcodes, opcodes, strict=True)]

    def __getstate__(self) -> dict[str, Any]:
        self.settle()
        return {**self.__dict__, "_tally": None}

    def merge(self, other: CaptureStats) -> None:
        """Add the counts of ``other`` (a worker's share of the same capture)."""
        self.settle()
        other.settle()
        self.messages += other.messages
        self.opcodes = [a + b for a, b in zip(self.opcodes, other.opcodes, strict=True)]
        self.from_client += other.from_client
        self.types.update(other.types)
        self.violations.update(other.violations)
        for name in ("undecoded", "wire_bytes", "payload_bytes", "compressed_wire",
                     "compressed_plain", "plain_wire", "plain_payload", "wsp_messages",
                     "wsp_errors", "warnings"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ping_rtt.extend(other.ping_rtt)

    @property
    def by_opcode(self) -> dict[str, int]:
        self.settle()
        return {opcode_name(op): n for op, n in enumerate(self.opcodes) if n}

    @property
    def by_type(self) -> dict[str, int]:
        return {cls.__name__: n for cls, n in self.types.items()}

    def summary(
        self,
        connections: list[Connection],
        *,
        packets: int,
        tcp_packets: int,
        capture_format: str,
        first_ts: float | None,
        last_ts: float,
        dropped: int | None = None,
        limits: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON-ready summary (the ``summary`` record of ``--ndjson``).

        ``limits`` is what the decoder's limits did (``CaptureDecoder.limits()``):
        the kinds of the connection records it let go (counted here with the
        others), and its counters, which become keys of their own.
        """
        self.settle()
        limits = dict(limits or {})
        kinds = Counter(c.kind for c in connections)
        forgotten = limits.pop("forgotten", {})
        kinds.update(forgotten)
        ws = [c for c in connections if c.kind == "websocket"]
        handshake = [c.handshake_latency for c in ws if c.handshake_latency is not None]
        acks = [lat for c in ws for lat in c.ack_latencies]
        findings: Counter[str] = Counter()
        for c in ws:
            findings.update(c.session_findings)
        tcp_gaps = sum(c.tcp_gaps for c in ws)
        overhead = None
        if self.plain_wire:
            # framing bytes (headers, masks) of the uncompressed messages
            overhead = round(1 - self.plain_payload / self.plain_wire, 4)
        ratio = None
        if self.compressed_wire:
            ratio = round(self.compressed_plain / self.compressed_wire, 3)
        return {
            "record": "summary",
            "format": capture_format,
            "packets": packets,
            "tcp_packets": tcp_packets,
            "dropped": dropped,
            "duration": round(last_ts - first_ts, 6) if first_ts is not None else 0.0,
            "connections": len(connections) + sum(forgotten.values()),
            "websocket_connections": len(ws),
            "connections_by_kind": dict(sorted(kinds.items())),
            "messages": self.messages,
            "messages_by_opcode": dict(sorted(self.by_opcode.items())),
            "messages_by_direction": {
                "client": self.from_client,
                "server": self.messages - self.from_client,
            },
            "messages_by_type": dict(sorted(self.by_type.items())),
            "wsp_messages": self.wsp_messages,
            "wsp_decode_errors": self.wsp_errors,
            "undecoded_messages": self.undecoded,
            "wire_bytes": self.wire_bytes,
            "payload_bytes": self.payload_bytes,
            "compression_ratio": ratio,
            "protocol_overhead": overhead,
            "latency": {
                "ping_rtt": percentiles(self.ping_rtt),
                "handshake": percentiles(handshake),
                "ack": percentiles(acks),
            },
            "unacked": sum(c.unacked for c in ws),
            "wsp_retransmissions": sum(c.wsp_retransmissions for c in ws),
            "session_findings": dict(sorted(findings.items())),
            "violations": dict(sorted(self.violations.items())),
            "tcp_gaps": tcp_gaps,
            "tcp_lost_bytes": sum(c.tcp_lost_bytes for c in ws),
            "retransmissions": sum(c.retransmissions for c in ws),
            "warnings": self.warnings,
            "tcp_holes_given_up": limits.get("tcp_holes_given_up", 0),
            "connections_expired": limits.get("connections_expired", 0),
            "connections_evicted": limits.get("connections_evicted", 0),
        }


#: the integer fields the C counter keeps, in its order (then the 16 opcodes)
_COUNTED = (
    "messages", "from_client", "wire_bytes", "payload_bytes", "compressed_wire",
    "compressed_plain", "plain_wire", "plain_payload", "undecoded", "wsp_messages",
    "wsp_errors",
)


class _PythonTally:
    """The Python form of the C counter: :meth:`CaptureStats.add` itself, so no
    counts wait in it."""

    __slots__ = ("add",)

    def __init__(self, stats: CaptureStats) -> None:
        self.add = stats.add

    def take(self) -> tuple[int, ...]:
        return (0,) * (len(_COUNTED) + 16)


def _compiled_tally(module: ModuleType) -> Callable[[CaptureStats], Any]:
    """``_new_tally`` giving the C counter (``capture/_tally.c``)."""

    def new(stats: CaptureStats) -> Any:
        return module.Tally(stats.types, stats.violations, stats._control)

    return new


#: ``_new_tally(stats)``: the counter feeding ``stats``, in C when it was built
#: (see :mod:`..native`)
_python_tally: Callable[[CaptureStats], Any] = _PythonTally
_new_tally = native.pick("capture._tally", _compiled_tally, _python_tally)
