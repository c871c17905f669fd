"""One record model for every source: what the TUI, the filter language and exports read.

A *record* is a JSON-ready dict: a message object of ``wsp decode --ndjson``
(docs/decode.md) or of the inspector feed (docs/inspect.md), or a session event
(``connected``, ``handshake``, ``authenticated``, ``state``, ``resumed``,
``closed``, ``violation``, ``dropped``). A :class:`Row` is the compact view of
one record that lists and filters need: every key a filter can name, without
the payload. ``Row.text()`` and ``Row.record()`` fetch the rest on demand.

:func:`row_of_captured` makes a row of a capture decoder's message,
:func:`row_of_record` of a record dict (NDJSON file, inspector feed,
``--connect``).
"""

from __future__ import annotations

__all__ = [
    "AUX_MIXED",
    "EVENT_KINDS",
    "SEQUENCED",
    "Row",
    "aux_of",
    "batch_run",
    "row_of_captured",
    "row_of_record",
    "violation_codes",
]

from collections.abc import Callable
from typing import Any

from wsproto_tools.capture.stats import OPCODE_NAMES
from wsproto_tools.codec.schema import TYPES
from wsproto_tools.render.capture import message_record

#: The kinds of session events; every other record is a ``message``.
EVENT_KINDS = (
    "connected",
    "handshake",
    "authenticated",
    "state",
    "resumed",
    "closed",
    "violation",
    "dropped",
)


class Row:
    """The compact view of one record (a message or a session event).

    ``conn`` is the capture's connection number or the server's session id;
    ``direction`` is ``client`` (sent by the client) or ``server``, ``""`` for
    events; ``opcode`` the WebSocket opcode name (``""`` for events and for
    inspector records, which carry wsp messages only); ``wsp_type`` the wsp type
    name or ``None``; ``size`` the payload length in bytes; ``violations`` the
    short codes (``wsp-<rule>`` for the session observer's findings, the close
    code's rule for a ``violation`` event). ``aux`` is the number a type carries
    in its payload that viewers need without decoding it (:func:`aux_of`).
    A row of a store reads its text and record from ``source.record(index)``.
    """

    __slots__ = (
        "_index",
        "_record",
        "_source",
        "_text",
        "aux",
        "conn",
        "direction",
        "kind",
        "offset",
        "opcode",
        "seq",
        "size",
        "topic",
        "ts",
        "type_code",
        "violations",
        "wsp_type",
    )

    def __init__(
        self,
        kind: str,
        ts: float,
        conn: int,
        direction: str = "",
        opcode: str = "",
        wsp_type: str | None = None,
        type_code: int | None = None,
        seq: int | None = None,
        topic: str | None = None,
        offset: int | None = None,
        size: int = 0,
        violations: tuple[str, ...] = (),
        text: Callable[[], str] | str = "",
        record: Callable[[], dict[str, Any]] | dict[str, Any] | None = None,
        aux: int | None = None,
        source: Any = None,
        index: int = -1,
    ) -> None:
        self.kind = kind
        self.ts = ts
        self.conn = conn
        self.direction = direction
        self.opcode = opcode
        self.wsp_type = wsp_type
        self.type_code = type_code
        self.seq = seq
        self.topic = topic
        self.offset = offset
        self.size = size
        self.violations = violations
        self.aux = aux
        self._text = text
        self._record = record
        self._source = source
        self._index = index

    def text(self) -> str:
        """The payload as text (text messages; the JSON of a wsp message)."""
        if self._source is not None:
            return _record_text(self._source.record(self._index))
        text = self._text
        return text if isinstance(text, str) else text()

    def record(self) -> dict[str, Any]:
        """The whole record (decoded now when it was not kept)."""
        if self._source is not None:
            value: dict[str, Any] = self._source.record(self._index)
            return value
        rec = self._record
        if rec is None:
            return {"kind": self.kind, "ts": self.ts, "conn": self.conn}
        return rec if isinstance(rec, dict) else rec()

    def __repr__(self) -> str:
        return (
            f"Row({self.kind} conn={self.conn} {self.direction} {self.opcode}"
            f" {self.wsp_type} seq={self.seq} topic={self.topic} size={self.size})"
        )


def violation_codes(record: dict[str, Any]) -> tuple[str, ...]:
    """The short violation codes of a record: its own plus ``wsp-<rule>`` findings."""
    codes = list(record.get("violations") or ())
    findings = record.get("session")
    for finding in findings if isinstance(findings, list) else ():
        if isinstance(finding, dict) and finding.get("verdict") == "violation":
            codes.append(f"wsp-{finding.get('rule')}")
    if record.get("kind") == "violation":
        rule = record.get("rule")
        codes.append(f"rule-{rule}" if rule is not None else "violation")
    return tuple(codes)


#: wsp types numbered by the header sequence (docs/protocol.md S.4)
SEQUENCED = frozenset({"Publish", "TextData", "BinaryData", "DeltaUpdate", "Error"})
#: ``aux`` of a Batch that is not one run of sequenced messages: read its record
AUX_MIXED = -2


def aux_of(wsp_type: str | None, payload: Any) -> int | None:
    """The ``aux`` number of a wsp payload, given as a dict (a record's JSON form)
    or as the codec's payload object:

    - Acknowledge: the cumulative ``sequence`` it acknowledges;
    - Heartbeat: ``2 * id + reply``;
    - Batch of sequenced messages with consecutive sequence numbers:
      ``first << 20 | count`` (:func:`batch_run`); any other Batch:
      :data:`AUX_MIXED` (read its record).

    ``None`` for every other type.
    """
    get = payload.get if isinstance(payload, dict) else (
        lambda key, default=None: getattr(payload, key, default))
    if wsp_type == "Acknowledge":
        seq = get("sequence")
        return seq if isinstance(seq, int) else None
    if wsp_type == "Heartbeat":
        probe = get("id", 0)
        return probe * 2 + (1 if get("reply") else 0) if isinstance(probe, int) else None
    if wsp_type == "Batch":
        first = last = 0
        count = 0
        for item in get("messages") or ():
            if isinstance(item, dict):
                name, seq = item.get("type"), item.get("sequence")
            else:
                spec = TYPES.get(getattr(item, "type_code", -1))
                name, seq = (spec.name if spec else None), getattr(item, "sequence", None)
            if name not in SEQUENCED or not isinstance(seq, int) or not seq or (
                    count and seq != last + 1) or count >= 0xFFFFF:
                return AUX_MIXED
            if not count:
                first = seq
            last = seq
            count += 1
        return (first << 20) | count if count else AUX_MIXED
    return None


def batch_run(aux: int) -> range:
    """The sequence numbers of a Batch's run (its ``aux``, not :data:`AUX_MIXED`)."""
    first = aux >> 20
    return range(first, first + (aux & 0xFFFFF))


def _wsp_fields(wsp: Any) -> tuple[str | None, int | None, int | None, str | None, int | None]:
    if not isinstance(wsp, dict) or "type" not in wsp:
        return None, None, None, None, None
    payload = wsp.get("payload")
    topic = offset = None
    if isinstance(payload, dict):
        t = payload.get("topic")
        topic = t if isinstance(t, str) else None
        o = payload.get("offset")
        offset = o if isinstance(o, int) else None
    return wsp.get("type"), wsp.get("type_code"), wsp.get("sequence"), topic, offset


def _record_text(record: dict[str, Any]) -> str:
    text = record.get("text")
    if isinstance(text, str):
        return text
    wsp = record.get("wsp")
    if isinstance(wsp, dict):
        import json

        return json.dumps(wsp.get("payload", wsp), separators=(",", ":"))
    for key in ("reason", "message", "close_reason"):
        if isinstance(record.get(key), str):
            return str(record[key])
    return ""


def row_of_record(record: dict[str, Any]) -> Row:
    """The row of a record dict: a ``--ndjson`` message object (no ``kind``: a
    message; ``record`` key: a connection/summary record, kept as an event) or an
    inspector-feed record (``kind``)."""
    kind = str(record["record"]) if "record" in record else (record.get("kind") or "message")
    conn = record.get("conn")
    if conn is None:
        conn = record.get("session") if isinstance(record.get("session"), int) else 0
    ts = record.get("ts") or 0.0
    if kind != "message":
        return Row(kind, float(ts), int(conn or 0), violations=violation_codes(record),
                   text=lambda: _record_text(record), record=record)
    wsp_type, type_code, seq, topic, offset = _wsp_fields(record.get("wsp"))
    return Row(
        "message",
        float(ts),
        int(conn or 0),
        str(record.get("direction") or ""),
        str(record.get("opcode") or ""),
        wsp_type,
        type_code,
        seq,
        topic,
        offset,
        int(record.get("length") or 0),
        violation_codes(record),
        text=lambda: _record_text(record),
        record=record,
        aux=aux_of(wsp_type, (record.get("wsp") or {}).get("payload")),
    )


def row_of_captured(item: Any) -> Row:
    """The row of a capture decoder's :class:`~wsproto_tools.capture.decoder.CapturedMessage`."""
    msg = item.msg
    opcode = msg.opcode
    wsp = item.wsp
    wsp_type = type_code = seq = topic = offset = None
    if wsp is not None and not isinstance(wsp, str):
        m = wsp[1]
        type_code = m.type_code
        spec = TYPES.get(type_code)
        wsp_type = spec.name if spec is not None else "Unknown"
        seq = m.sequence
        t = getattr(m.payload, "topic", None)
        topic = t if isinstance(t, str) else None
        o = getattr(m.payload, "offset", None)
        offset = o if isinstance(o, int) else None
    codes = tuple(item.violations) + tuple(
        f"wsp-{f.rule}" for f in item.session if f.verdict.value == "violation"
    )

    def text() -> str:
        if msg.text is not None:
            return str(msg.text)
        return _record_text(message_record(item))

    return Row(
        "message",
        item.ts,
        item.conn,
        item.direction,
        OPCODE_NAMES.get(opcode) or f"reserved-0x{opcode:X}",
        wsp_type,
        type_code,
        seq,
        topic,
        offset,
        len(msg.payload),
        codes,
        text=text,
        record=lambda: message_record(item),
        aux=aux_of(wsp_type, wsp[1].payload) if wsp_type else None,
    )
