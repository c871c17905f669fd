"""Views of decoded captures: JSON-ready records and rich renderables.

:func:`message_record` is the ``--ndjson`` object of one message (keys listed in
``docs/decode.md``); :func:`connection_record` and the summary dict of
:class:`~wsproto_tools.capture.stats.CaptureStats` carry a ``record`` key.
:func:`message_row` and :func:`summary_view` are what people see.
"""

from __future__ import annotations

__all__ = [
    "HEADER",
    "LineBuffer",
    "MessageLines",
    "PyLineWriter",
    "connection_record",
    "hexdump",
    "line_writer",
    "message_record",
    "message_row",
    "payload_preview",
    "pretty_json",
    "summary_view",
]

import contextlib
import json
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring as _quote
from typing import Any, cast

from wsproto_tools import native
from wsproto_tools.capture.decoder import CapturedMessage, Connection
from wsproto_tools.capture.stats import OPCODE_NAMES, opcode_name
from wsproto_tools.codec.schema import BinaryData, Kind, Unknown, payload_fields
from wsproto_tools.render.message import message_to_json, printable_text

_TEXT = 1


def wsp_json(item: CapturedMessage) -> Any:
    """The ``wsp`` value of a message record: the codec's JSON form, or an error."""
    wsp = item.wsp
    if wsp is None:
        return None
    if isinstance(wsp, str):
        return {"error": wsp}
    return message_to_json(wsp[1], wsp[0])


def session_findings(item: CapturedMessage) -> list[dict[str, Any]]:
    """The session observer's findings about one message, JSON-ready."""
    return [
        {
            "rule": f.rule,
            "rule_id": f.rule_id,
            "verdict": f.verdict.value,
            "culprit": f.culprit,
            "message": f.message,
        }
        for f in item.session
    ]


def message_record(item: CapturedMessage, *, with_hex: bool = False) -> dict[str, Any]:
    """One message as the ``--ndjson`` object (no ``record`` key)."""
    msg = item.msg
    opcode = msg.opcode
    out: dict[str, Any] = {
        "ts": item.ts,
        "conn": item.conn,
        "direction": item.direction,
        "opcode": OPCODE_NAMES.get(opcode) or f"reserved-0x{opcode:X}",
        "length": len(msg.payload),
        "compressed": msg.compressed,
    }
    text = msg.text
    if opcode == _TEXT and text is not None:
        out["text"] = text
        if with_hex:
            out["hex"] = msg.payload.hex()
    else:
        out["hex"] = msg.payload.hex()
    if opcode == 8:
        out["close_code"] = msg.close_code
        out["close_reason"] = msg.close_reason
    out["violations"] = list(item.violations)
    if item.wsp is not None:
        out["wsp"] = wsp_json(item)
    if item.session:
        out["session"] = session_findings(item)
    out["packet"] = item.number
    if msg.frames != 1:
        out["frames"] = msg.frames
    if item.note is not None:
        out["note"] = item.note
    return out


class MessageLines:
    """Writes :func:`message_record` objects straight to JSON text, fast.

    ``json.loads(lines(item)) == message_record(item)`` always holds (the tests
    check it); the text is built with string joins and the C string encoder
    instead of the generic encoder, because ``--ndjson`` writes one per message.
    """

    def __init__(self, *, with_hex: bool = False, max_payload: int | None = None) -> None:
        from wsproto_tools.codec import (
            TYPES,
            Batch,
            BinaryData,
            Flags,
            Sealed,
            TextData,
            Unknown,
        )
        from wsproto_tools.codec.jsonform import payload_to_json

        self.with_hex = with_hex
        #: payloads longer than this (bytes) are cut, with ``cut``: the bytes left out
        self.max_payload = max_payload
        self._str = json.JSONEncoder(ensure_ascii=False).encode
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._flags = {
            bits: json.dumps([f.name for f in Flags if f and f in Flags(bits)])
            for bits in range(8)
        }
        self._names = {code: spec.name for code, spec in TYPES.items()}
        self._text_cls = TextData
        self._binary_cls = BinaryData
        self._batch_cls = Batch
        self._simple: dict[type, tuple[tuple[str, str], ...] | None] = {}
        self._heads: dict[tuple[int | None, Any, Any], str] = {}
        self._coded = (Unknown, Sealed)
        #: simple payload class -> (first field, the other fields, all of them unset)
        self._rest: dict[type, tuple[Any, Any, tuple[None, ...]]] = {}
        #: the last capture time and its repr (the messages of a packet share it)
        self._ts: Any = None
        self._ts_text = ""
        self._payload_to_json = payload_to_json
        self._opcodes = {
            op: f'"opcode":"{name}","length":' for op, name in OPCODE_NAMES.items()
        }

    def _simple_fields(self, cls: type) -> tuple[tuple[str, str], ...] | None:
        """``(name, '"name":')`` of each field of a payload class whose JSON form is
        its plain values (ints, bools, strings), or None."""
        try:
            return self._simple[cls]
        except KeyError:
            pass
        fields = payload_fields(cls)
        plain = {Kind.UINT, Kind.INT, Kind.BOOL, Kind.STR}
        found = (
            tuple((name, f'"{name}":') for name, spec in fields)
            if fields and all(spec.kind in plain for _, spec in fields)
            else None
        )
        if found is not None and len(found) > 1:
            others = [name for name, _ in found[1:]]
            self._rest[cls] = (
                operator.attrgetter(found[0][0]),
                operator.attrgetter(*others) if len(others) > 1
                else lambda payload, _get=operator.attrgetter(others[0]): (_get(payload),),
                (None,) * len(others),
            )
        self._simple[cls] = found
        return found

    def _payload(self, payload: Any, out: list[str], whole: bytes, whole_hex: str) -> None:
        """Append the JSON of ``payload``; ``whole``/``whole_hex`` are the WebSocket
        payload and its hex, reused when a BinaryData's bytes end it."""
        ptype = type(payload)
        if ptype is self._binary_cls:
            data = payload.data
            size = len(data)
            limit = self.max_payload
            if limit is not None and size > limit:
                out.append('{"hex":"' + data[:limit].hex() + f'","cut":{size - limit}}}')
                return
            if size and whole_hex and size <= len(whole) and whole.endswith(data):
                out.append('{"hex":"')
                out.append(whole_hex[len(whole_hex) - 2 * size :])
                out.append('"}')
            else:
                out.append('{"hex":"' + data.hex() + '"}')
            return
        if ptype is self._text_cls:
            text = payload.text
            limit = self.max_payload
            if limit is not None and len(text) * 4 > limit:
                short, cut = _cut_text(text, limit)
                if cut:
                    out.append('{"text":' + _quote(short) + f',"cut":{cut}}}')
                    return
            out.append('{"text":' + _quote(text) + "}")
            return
        if ptype is self._batch_cls:
            out.append('{"messages":[')
            first = True
            for item in payload.messages:
                if not first:
                    out.append(",")
                first = False
                self._wsp(None, item, out, whole, whole_hex)
            out.append("]}")
            return
        names = self._simple_fields(ptype)
        if names is not None:
            rest = self._rest.get(ptype)
            if rest is not None:
                # the common shape: the first field an int, the others unset
                # (an Acknowledge of a sequence number)
                first, others, unset = rest
                value = first(payload)
                if type(value) is int and others(payload) == unset:
                    out.append("{" + names[0][1] + int.__repr__(value) + "}")
                    return
            parts = []
            for name, key in names:
                value = getattr(payload, name)
                if value is None:
                    continue
                vtype = type(value)
                if vtype is int:
                    parts.append(key + int.__repr__(value))
                elif vtype is str:
                    parts.append(key + _quote(value))
                elif vtype is bool:
                    parts.append(key + ("true" if value else "false"))
                else:  # not what the codec decodes: let the encoder judge it
                    out.append(self._dumps({
                        name: getattr(payload, name) for name, _ in names
                        if getattr(payload, name) is not None
                    }))
                    return
            out.append("{" + ",".join(parts) + "}")
            return
        out.append(self._dumps(self._payload_to_json(payload)))

    def payload_text(self, payload: Any) -> str:
        """The JSON of a wsp payload (what the ``payload`` key holds)."""
        out: list[str] = []
        self._payload(payload, out, b"", "")
        return "".join(out)

    def c_writer(self, limit: int = 1 << 30) -> Any:
        """The C writer of these lines (``render/_lines.c``) loaded now, or None when
        it was not built or ``WSP_PURE_PYTHON`` is set (tests compare the two forms;
        :class:`LineBuffer` uses :data:`line_writer`, chosen at import)."""
        module = native.load("render._lines")
        return None if module is None else self.c_form(module, limit)

    def c_form(self, module: Any, limit: int = 1 << 30) -> Any:
        """The ``LineWriter`` of C module ``module`` for these lines."""

        def simple(cls: type) -> tuple[tuple[str, bytes], ...] | None:
            names = self._simple_fields(cls)
            return None if names is None else tuple((n, k.encode()) for n, k in names)

        import inspect

        from wsproto_tools.codec import TYPES, Payload

        plain_code = inspect.getattr_static(Payload, "type_code")
        codes = {
            spec.cls: spec.cls.TYPE for spec in TYPES.values()
            if inspect.getattr_static(spec.cls, "type_code") is plain_code
        }
        return module.LineWriter(
            {op: head.encode() for op, head in self._opcodes.items()},
            dict(self._names),
            codes,
            tuple(self._flags[bits].encode() for bits in range(8)),
            simple,
            self._binary_cls,
            self._text_cls,
            self._batch_cls,
            self.payload_text,
            self.with_hex,
            limit,
            -1 if self.max_payload is None else self.max_payload,
        )

    def wsp(self, version: int | None, msg: Any) -> str:
        """The ``wsp`` object of a message (``version`` None: a batch item, no key)."""
        out: list[str] = []
        self._wsp(version, msg, out, b"", "")
        return "".join(out)

    def _wsp(self, version: int | None, msg: Any, out: list[str], whole: bytes,
             whole_hex: str) -> None:
        payload = msg.payload
        ptype = type(payload)
        flags = msg.flags
        # a payload class stands for its type code, except Unknown and Sealed
        key = (version, ptype if ptype not in self._coded else payload.type_code, flags)
        head = self._heads.get(key)
        if head is None:
            code = payload.type_code
            bits = int(flags)
            flag_list = (
                self._flags[bits] if 0 <= bits < 8
                else self._dumps(message_to_json(msg)["flags"])
            )
            head = (
                ("{" if version is None else f'{{"version":{version},')
                + f'"type":"{self._names.get(code, "Unknown")}",'
                f'"type_code":{int(code)},"flags":{flag_list},"sequence":'
            )
            if len(self._heads) < 4096:
                self._heads[key] = head
        out.append(
            f'{head}{msg.sequence},"session_id":{msg.session_id},'
            f'"timestamp":{msg.timestamp},"payload":'
        )
        self._payload(payload, out, whole, whole_hex)
        out.append("}")

    def _cut(self, opcode: int, payload: bytes, text: str | None, limit: int,
             out: list[str]) -> None:
        """``text``/``hex`` of the first ``limit`` bytes of ``payload``, and ``cut``."""
        if opcode == _TEXT and text is not None:
            short, cut = _cut_text(text, limit)
            out.append('"text":' + _quote(short))
            if self.with_hex:
                out.append(',"hex":"' + payload[: len(payload) - cut].hex() + '"')
        else:
            cut = len(payload) - limit
            out.append('"hex":"' + payload[:limit].hex() + '"')
        out.append(f',"cut":{cut}')

    def __call__(self, item: CapturedMessage) -> str:
        out: list[str] = []
        self.write(item, out)
        out.pop()  # the newline
        return "".join(out)

    def write(self, item: CapturedMessage, out: list[str]) -> None:
        """Append the line of ``item`` to ``out`` in pieces, newline included
        (``"".join(out)`` is the text; big hex strings are copied only there)."""
        msg = item.msg
        opcode = msg.opcode
        head = self._opcodes.get(opcode)
        if head is None:
            head = f'"opcode":"reserved-0x{opcode:X}","length":'
        payload = msg.payload
        text = msg.text
        ts = item.ts
        if ts is not self._ts:
            self._ts = ts
            self._ts_text = repr(ts)
        out.append(
            f'{{"ts":{self._ts_text},"conn":{item.conn},'
            f'"direction":"{item.direction}",{head}{len(payload)},'
            f'"compressed":{"true" if msg.compressed else "false"},'
        )
        hexed = ""
        limit = self.max_payload
        if limit is not None and len(payload) > limit:
            self._cut(opcode, payload, text, limit, out)
        elif opcode == _TEXT and text is not None:
            out.append('"text":' + _quote(text))
            if self.with_hex:
                out.append(',"hex":"' + payload.hex() + '"')
        else:
            hexed = payload.hex()
            out.append('"hex":"')
            out.append(hexed)
            out.append('"')
        if opcode == 8:
            out.append(
                f',"close_code":{"null" if msg.close_code is None else msg.close_code}'
                ',"close_reason":'
                + ("null" if msg.close_reason is None else _quote(msg.close_reason))
            )
        violations = item.violations
        out.append(',"violations":["' + '","'.join(violations) + '"]' if violations
                   else ',"violations":[]')
        wsp = item.wsp
        if wsp is not None:
            if type(wsp) is tuple:
                out.append(',"wsp":')
                self._wsp(wsp[0], wsp[1], out, payload, hexed)
            else:
                out.append(',"wsp":' + self._dumps({"error": wsp}))
        if item.session:
            out.append(',"session":' + self._dumps(session_findings(item)))
        tail = f',"packet":{item.number}'
        if msg.frames != 1:
            tail += f',"frames":{msg.frames}'
        if item.note is not None:
            tail += ',"note":' + _quote(item.note)
        out.append(tail + "}")
        out.append("\n")


def _cut_text(text: str, limit: int) -> tuple[str, int]:
    """The longest start of ``text`` that is at most ``limit`` bytes of UTF-8 (whole
    characters), and the number of bytes left out."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, 0
    short = data[:limit].decode("utf-8", "ignore")
    return short, len(data) - len(short.encode("utf-8", "surrogatepass"))


class PyLineWriter:
    """The Python form of the C ``LineWriter`` (``render/_lines.c``): the lines of
    ``lines`` gathered as text, encoded to UTF-8 when taken. It takes every message
    (``write`` returns True); ``size`` is an estimate of the bytes waiting."""

    def __init__(self, lines: MessageLines) -> None:
        self._lines = lines
        self._parts: list[str] = []
        self.size = 0

    def write(self, item: CapturedMessage) -> bool:
        self._lines.write(item, self._parts)
        # about what the line holds (its payload as hex, the rest), for the flush
        self.size += 2 * len(item.msg.payload) + 256
        return True

    def append(self, data: bytes) -> None:
        self._parts.append(data.decode("utf-8", "surrogateescape"))
        self.size += len(data)

    def take(self) -> bytes:
        data = "".join(self._parts).encode("utf-8", "surrogateescape")
        self._parts = []
        self.size = 0
        return data

    def write_to(self, write: Callable[[memoryview], object]) -> None:
        write(memoryview(self.take()))


def _c_line_writer(module: Any) -> Callable[[MessageLines], Any]:
    def make(lines: MessageLines) -> Any:
        return lines.c_form(module)

    return make


#: ``line_writer(lines)``: the writer of a :class:`MessageLines`' lines as UTF-8
#: bytes: the C ``LineWriter`` when it was built (chosen once, at import), else
#: :class:`PyLineWriter`. Both have ``write(item) -> bool`` (False: a shape the C
#: one leaves to Python), ``append(bytes)``, ``size``, ``take()``, ``write_to(write)``.
line_writer = native.pick(
    "render._lines", _c_line_writer, cast(Callable[[MessageLines], Any], PyLineWriter)
)


class LineBuffer:
    """NDJSON lines of messages gathered as UTF-8 bytes by :data:`line_writer` (and,
    for the rare shapes the C writer leaves alone, by :class:`MessageLines`).

    ``write(item)`` adds a message's line, ``text(s)`` adds text as it is,
    ``take()`` returns what was gathered and starts again.
    """

    def __init__(self, *, with_hex: bool = False, max_payload: int | None = None) -> None:
        self.lines = MessageLines(with_hex=with_hex, max_payload=max_payload)
        #: the writer (:data:`line_writer`); its ``size`` is read without a call
        self.writer = self._writer = line_writer(self.lines)
        self.accelerated = not isinstance(self._writer, PyLineWriter)
        #: ``fast(item) -> bool``: the writer's own method, for callers that call
        #: :meth:`fallback` when it returns False (one call less per line)
        self.fast: Callable[[CapturedMessage], bool] = self._writer.write

    def write(self, item: CapturedMessage) -> None:
        if not self._writer.write(item):
            self.fallback(item)

    def fallback(self, item: CapturedMessage) -> None:
        """Add the line of ``item`` by the Python writer (a shape the C one left)."""
        self._writer.append((self.lines(item) + "\n").encode("utf-8", "surrogateescape"))

    #: the line of ``item`` written by Python, whichever writer was chosen
    _write_py = fallback

    def text(self, text: str) -> None:
        self._writer.append(text.encode("utf-8", "surrogateescape"))

    @property
    def size(self) -> int:
        """Bytes waiting (with the Python writer, an estimate)."""
        return int(self._writer.size)

    def write_to(self, write: Callable[[memoryview], object]) -> None:
        """``write`` what was gathered (without a copy when in C), and start again."""
        self._writer.write_to(write)

    def take(self) -> bytes:
        return bytes(self._writer.take())


def connection_record(conn: Connection) -> dict[str, Any]:
    """One connection as a ``{"record": "connection", ...}`` object."""
    client, server = conn.stats
    return {
        "record": "connection",
        "conn": conn.id,
        "client": conn.client,
        "server": conn.server,
        "kind": conn.kind,
        "first_ts": conn.first_ts,
        "last_ts": conn.last_ts,
        "handshake": conn.handshake,
        "path": conn.path,
        "status": conn.status,
        "subprotocol": conn.subprotocol,
        "extensions": conn.extensions,
        "permessage_deflate": None
        if conn.deflate is None
        else {
            "server_no_context_takeover": conn.deflate.server_no_context_takeover,
            "client_no_context_takeover": conn.deflate.client_no_context_takeover,
            "server_max_window_bits": conn.deflate.server_max_window_bits,
            "client_max_window_bits": conn.deflate.client_max_window_bits,
        },
        "handshake_latency": conn.handshake_latency,
        "messages": {"client": client.messages, "server": server.messages},
        "wire_bytes": {"client": client.frames_bytes, "server": server.frames_bytes},
        "payload_bytes": {"client": client.payload_bytes, "server": server.payload_bytes},
        "skipped_bytes": {"client": client.skipped_bytes, "server": server.skipped_bytes},
        "tcp_gaps": conn.tcp_gaps,
        "tcp_lost_bytes": conn.tcp_lost_bytes,
        "retransmissions": conn.retransmissions,
        "unacked": conn.unacked,
        "wsp_retransmissions": conn.wsp_retransmissions,
        "session_findings": dict(sorted(conn.session_findings.items())),
        "notes": list(conn.notes),
    }


def hexdump(data: bytes, limit: int = 4096) -> str:
    """Classic 16-bytes-a-line hex + ASCII dump (at most ``limit`` bytes)."""
    lines = []
    for off in range(0, min(len(data), limit), 16):
        chunk = data[off : off + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hexpart:<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def pretty_json(text: str, max_lines: int = 12) -> str | None:
    """A JSON object or array indented for people (at most ``max_lines``), or None."""
    stripped = text.lstrip()
    if stripped[:1] not in ("{", "["):
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    lines = json.dumps(value, ensure_ascii=False, indent=2).splitlines()
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"… {len(lines) - max_lines + 1} more lines"]
    return "\n".join(lines)


def _readable_bytes(payload: Any, fields: dict[str, Any]) -> None:
    """Show bytes fields that hold printable text as that text (the preview is for people)."""
    ptype = type(payload)
    if ptype is BinaryData or ptype is Unknown:
        text = printable_text(payload.data)
        if text is not None:
            fields.pop("hex", None)
            fields["text"] = text
        return
    if not isinstance(fields, dict) or "messages" in fields or "encrypted" in fields:
        return
    for name, fspec in payload_fields(ptype):
        value = getattr(payload, name, None)
        if fspec.kind is Kind.BYTES and isinstance(value, bytes):
            text = printable_text(value)
            if text is not None:
                fields[name] = text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def payload_preview(item: CapturedMessage, width: int = 80) -> str:
    """One line saying what a message holds: wsp fields, JSON, text or hex + ASCII;
    at most ``width`` characters, ending with "…" when it was cut."""
    msg = item.msg
    if item.note is not None:
        return f"[{item.note}]"
    wsp = item.wsp
    if wsp is not None:
        if isinstance(wsp, str):
            return _cut(wsp, width)
        as_json = message_to_json(wsp[1], wsp[0])
        payload = as_json.get("payload", {})
        _readable_bytes(wsp[1].payload, payload)
        fields = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return _cut(f"seq={as_json['sequence']} {fields}", width)
    if msg.opcode == 8:
        if msg.close_code is None:
            return "(no status)"
        return _cut(f"{msg.close_code} {msg.close_reason or ''}".strip(), width)
    if msg.text is not None:
        text = msg.text
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
        return _cut(text.replace("\n", "⏎"), width)
    data = msg.payload[: width // 3]
    hexpart = data.hex(" ")
    ascii_part = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    more = "…" if len(msg.payload) > len(data) else ""
    return f"{hexpart}  |{ascii_part}|{more}"


#: Column titles of :func:`message_row`.
HEADER = ("time", "conn", "dir", "type", "size", "summary")


def message_row(
    item: CapturedMessage, width: int = 80
) -> tuple[str, str, str, str, str, str]:
    """The table cells of one message (the summary at most ``width`` characters)."""
    msg = item.msg
    when = datetime.fromtimestamp(item.ts, UTC).strftime("%H:%M:%S.%f")
    arrow = "C→S" if item.direction == "client" else "S→C"
    kind = opcode_name(msg.opcode)
    if item.wsp is not None and not isinstance(item.wsp, str):
        kind = f"{kind}/{item.wsp[1].type_name}"
    if msg.compressed:
        kind += " (z)"
    if item.violations:
        kind += " !"
    summary = payload_preview(item, width)
    return (when, str(item.conn), arrow, kind, str(len(msg.payload)), summary)


def summary_view(summary: dict[str, Any], connections: list[Connection]) -> Any:
    """A rich renderable of the summary and the WebSocket connections."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    # Compact: addresses and ports are never cut, the other columns give way first;
    # deflate parameters go to the notes, which fold.
    conn_table = Table(title="Connections", title_justify="left", box=box.SIMPLE_HEAD,
                       pad_edge=False, collapse_padding=True)
    shown = [c for c in connections if c.kind in ("websocket", "refused")]
    widest = max([len(c.client) for c in shown] + [len(c.server) for c in shown] + [6])
    for col in ("conn", "client", "server", "kind", "proto", "deflate", "msgs"):
        if col in ("client", "server"):
            conn_table.add_column(col, no_wrap=True, min_width=widest)
        else:
            conn_table.add_column(col, no_wrap=True)
    # notes (and deflate parameters) under the table, one wrapped line per connection
    conn_notes = Text()
    for conn in shown:
        client, server = conn.stats
        notes = list(conn.notes)
        params = conn.deflate.header_value().removeprefix("permessage-deflate").strip("; ") \
            if conn.deflate else ""
        if params:
            notes.insert(0, f"deflate: {params}")
        conn_table.add_row(
            str(conn.id),
            conn.client,
            conn.server,
            conn.kind,
            conn.subprotocol or "-",
            "yes" if conn.deflate else "-",
            f"{client.messages}/{server.messages}",
        )
        if notes:
            conn_notes.append(f" {conn.id}: ", style="bold")
            conn_notes.append("; ".join(notes) + "\n")
    table = Table(title="Summary", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")

    def pct(value: dict[str, float] | None, unit: float = 1000.0) -> str:
        if not value:
            return "-"
        return (
            f"p50 {value['p50'] * unit:.3f} ms, p90 {value['p90'] * unit:.3f} ms, "
            f"p99 {value['p99'] * unit:.3f} ms, max {value['max'] * unit:.3f} ms "
            f"(n={int(value['n'])})"
        )

    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "-"

    rows = [
        ("packets", f"{summary['packets']} ({summary['tcp_packets']} TCP)"),
        (
            "connections",
            f"{summary['websocket_connections']} WebSocket of {summary['connections']} TCP",
        ),
        ("messages", str(summary["messages"])),
        ("by opcode", counts(summary["messages_by_opcode"])),
        ("by wsp type", counts(summary["messages_by_type"])),
        ("bytes", f"{summary['wire_bytes']} on the wire, {summary['payload_bytes']} payload"),
        (
            "compression ratio",
            "-" if summary["compression_ratio"] is None else f"{summary['compression_ratio']}x",
        ),
        (
            "protocol overhead",
            "-"
            if summary["protocol_overhead"] is None
            else f"{summary['protocol_overhead'] * 100:.1f}%",
        ),
        ("ping RTT", pct(summary["latency"]["ping_rtt"])),
        ("handshake", pct(summary["latency"]["handshake"])),
        ("wsp ack latency", pct(summary["latency"]["ack"])),
        ("wsp unacked", str(summary["unacked"])),
        ("wsp retransmissions", str(summary["wsp_retransmissions"])),
        ("violations", counts(summary["violations"])),
        (
            "TCP",
            f"{summary['tcp_gaps']} gaps ({summary['tcp_lost_bytes']} bytes lost), "
            f"{summary['retransmissions']} retransmissions",
        ),
        ("warnings", str(summary["warnings"])),
    ]
    if summary.get("session_findings"):
        rows.append(("session checks", counts(summary["session_findings"])))
    if summary.get("dropped") is not None:
        rows.append(("dropped by capture", str(summary["dropped"])))
    if summary.get("not_decoded"):
        rows.append(("captured, not decoded", f"{summary['not_decoded']} packets"))
    for what, value in rows:
        table.add_row(what, value)
    if conn_notes:
        conn_notes.rstrip()
        return Group(conn_table, conn_notes, Text(), table)
    return Group(conn_table, table)
