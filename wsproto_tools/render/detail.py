"""The Detail pane of ``wsp tui``: one record as titled rich renderables.

A *record* is a JSON-ready dict (see :mod:`.records`): a message object of
``wsp decode --ndjson`` (docs/decode.md), an inspector-feed record
(docs/inspect.md) or a session event. :func:`detail_sections` turns one into
``(title, renderable)`` pairs — the wsp header, the payload as a tree, JSON and
text shown for people (unescaped, never a Python repr), a hex + ASCII dump, the
WebSocket frame, and the violations with their checklist rule (docs/protocol.md
S.9). :func:`summary_line` is the one-line summary of a record for the message
list. No I/O: the caller prints or mounts what it gets.
"""

from __future__ import annotations

__all__ = [
    "HEX_LIMIT",
    "detail_sections",
    "hexdump",
    "payload_bytes",
    "rule_text",
    "summary_line",
    "visible",
]

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from wsproto_tools.codec.schema import TYPES, Flags, Kind, payload_fields
from wsproto_tools.engine.rules import CHECKLIST, Rule

#: bytes the hex section shows before "… N more bytes"
HEX_LIMIT = 4096
#: characters of a text or JSON section before it is cut
_TEXT_LIMIT = 20_000
#: bytes fields (hex strings in the JSON form) longer than this are shown shortened in the tree
_TREE_HEX = 64
#: items of one list or map shown in the tree before "… N more"
_TREE_ITEMS = 200
#: bytes of a data field the summary line decodes for its preview
_PREVIEW_BYTES = 4096

# control characters as their Unicode "control pictures" (U+2400 block): ␊ for a newline
_PICTURES = {c: chr(0x2400 + c) for c in range(0x20)}
_PICTURES[0x7F] = "\u2421"  # ␡


def visible(text: str) -> str:
    """``text`` on one line: control characters shown as their pictures (␊, ␉, ␀…)."""
    return text.translate(_PICTURES)


def _cut(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


# ------------------------------------------------------------------ bytes


def payload_bytes(record: dict[str, Any]) -> bytes | None:
    """The message's payload bytes: ``hex``, else ``text`` as UTF-8; None for events."""
    hexed = record.get("hex")
    if isinstance(hexed, str):
        try:
            return bytes.fromhex(hexed)
        except ValueError:
            return None
    text = record.get("text")
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    return None


def hexdump(data: bytes, limit: int = HEX_LIMIT) -> str:
    """Hex + ASCII dump: an offset column, 16 bytes a row grouped 8 + 8, ``.`` for
    bytes that are not printable ASCII, and ``… N more bytes`` past ``limit``."""
    lines = []
    shown = min(len(data), max(0, limit))
    for off in range(0, shown, 16):
        chunk = data[off : min(off + 16, shown)]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {left:<23}  {right:<23}  |{text}|")
    if len(data) > shown:
        lines.append(f"… {len(data) - shown} more bytes")
    return "\n".join(lines)


def _printable(data: bytes) -> str | None:
    """``data`` as text when it is UTF-8 without control characters (but tab and newline)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any((ord(ch) < 32 and ch not in "\t\r\n") or ord(ch) == 0x7F for ch in text):
        return None
    return text


def _printable_start(data: bytes) -> str | None:
    """:func:`_printable` of the start of longer data (a character cut at the end is
    left out)."""
    for drop in range(4):
        text = _printable(data[: len(data) - drop])
        if text is not None:
            return text
    return None


def _json_value(text: str) -> Any:
    """The JSON object or array ``text`` holds, or None."""
    stripped = text.lstrip()
    if stripped[:1] not in ("{", "["):
        return None
    try:
        return json.loads(text, parse_constant=_reject)
    except (ValueError, RecursionError):
        return None


def _reject(name: str) -> Any:
    raise ValueError(name)


# ------------------------------------------------------------------ the rule book


def rule_text(rule_id: int) -> str | None:
    """The one-line requirement of checklist rule ``rule_id`` (docs/protocol.md S.9)."""
    try:
        return CHECKLIST[Rule(rule_id)].text
    except ValueError:
        return None


# ------------------------------------------------------------------ wsp header


def _bytes_fields(type_code: Any) -> frozenset[str]:
    """The payload fields of a wsp type that are bytes (hex strings in the JSON form)."""
    spec = TYPES.get(type_code) if isinstance(type_code, int) else None
    if spec is None:
        return frozenset()
    return frozenset(name for name, f in payload_fields(spec.cls) if f.kind is Kind.BYTES)


def _flag_bits(flags: Any) -> int | None:
    if isinstance(flags, int):
        return flags
    if not isinstance(flags, list):
        return None
    bits = 0
    for name in flags:
        try:
            bits |= Flags[str(name)]
        except KeyError:
            return None
    return bits


def _flags_text(flags: Any) -> str:
    bits = _flag_bits(flags)
    if isinstance(flags, int):
        names = [f.name for f in Flags if f and flags & f and f.name]
    else:
        names = [str(n) for n in flags] if isinstance(flags, list) else []
    shown = " | ".join(names) if names else "none"
    return shown if bits is None else f"{shown}  (0x{bits:02x} = 0b{bits:03b})"


def _utc(micros: int) -> str:
    when = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _grid() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _header_section(record: dict[str, Any], wsp: dict[str, Any]) -> RenderableType:
    table = _grid()
    if "error" in wsp and "type" not in wsp:
        table.add_row("error", Text(str(wsp["error"]), style="red"))
        return table
    if "version" in wsp:
        table.add_row("version", str(wsp["version"]))
    code = wsp.get("type_code")
    code_text = f" (0x{code:04x})" if isinstance(code, int) else ""
    table.add_row("type", f"{wsp.get('type')}{code_text}")
    table.add_row("flags", _flags_text(wsp.get("flags")))
    table.add_row("sequence", str(wsp.get("sequence")))
    sid = wsp.get("session_id")
    table.add_row("session id", f"{sid} (0x{sid:x})" if isinstance(sid, int) and sid else str(sid))
    stamp = wsp.get("timestamp")
    if isinstance(stamp, int) and stamp > 0:
        try:
            table.add_row("timestamp", f"{stamp} µs = {_utc(stamp)}")
        except (OverflowError, OSError, ValueError):
            table.add_row("timestamp", f"{stamp} µs")
    else:
        table.add_row("timestamp", f"{stamp} (unset)")
    for key in ("decrypted", "batch", "subscribers"):
        if key in record:
            table.add_row(key, str(record[key]))
    return table


# ------------------------------------------------------------------ payload tree


def _leaf(key: str, value: Any, bytes_keys: frozenset[str]) -> Text:
    label = Text(f"{key}: ", style="bold")
    if key in bytes_keys and isinstance(value, str):
        try:
            data = bytes.fromhex(value)
        except ValueError:
            data = None
        if data is not None:
            shown = value if len(value) <= _TREE_HEX else value[:_TREE_HEX] + "…"
            label.append(f"{shown} ({len(data)} bytes)", style="magenta")
            text = _printable(data) if data else None
            if text is not None:
                label.append(f"  {visible(_cut(text, 80))}", style="green")
            return label
    if isinstance(value, str):
        label.append(visible(value), style="green")
    elif value is None:
        label.append("null", style="dim")
    else:
        label.append(json.dumps(value, ensure_ascii=False), style="cyan")
    return label


def _grow(tree: Tree, key: str, value: Any, bytes_keys: frozenset[str], depth: int = 0) -> None:
    if depth > 32:
        tree.add(Text(f"{key}: …", style="dim"))
        return
    if isinstance(value, dict):
        item = "type_code" in value and "payload" in value  # a Batch item: a whole message
        nested = _bytes_fields(value.get("type_code")) if item else bytes_keys
        branch = tree.add(Text(f"{key} {{{len(value)}}}", style="bold"))
        for n, (k, v) in enumerate(value.items()):
            if n == _TREE_ITEMS:
                branch.add(Text(f"… {len(value) - n} more", style="dim"))
                break
            _grow(branch, str(k), v, nested if not item or k == "payload" else frozenset(),
                  depth + 1)
    elif isinstance(value, list):
        branch = tree.add(Text(f"{key} [{len(value)}]", style="bold"))
        for i, item in enumerate(value):
            if i == _TREE_ITEMS:
                branch.add(Text(f"… {len(value) - i} more", style="dim"))
                break
            _grow(branch, f"[{i}]", item, bytes_keys if key in bytes_keys else frozenset(),
                  depth + 1)
    else:
        tree.add(_leaf(key, value, bytes_keys))


def _payload_tree(wsp: dict[str, Any]) -> Tree:
    payload = wsp.get("payload")
    tree = Tree(Text(f"{wsp.get('type')} payload", style="bold"))
    bytes_keys = _bytes_fields(wsp.get("type_code"))
    if isinstance(payload, dict):
        for key, value in payload.items():
            _grow(tree, str(key), value, bytes_keys)
    elif payload is not None:
        _grow(tree, "value", payload, bytes_keys)
    return tree


# ------------------------------------------------------------------ JSON and text


def _texts(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of every text a record carries: the text message, a wsp
    TextData, a wsp bytes field that is UTF-8, a wsp string field holding JSON."""
    found: list[tuple[str, str]] = []
    text = record.get("text")
    if isinstance(text, str):
        found.append(("text", text))
    wsp = record.get("wsp")
    if isinstance(wsp, dict) and isinstance(wsp.get("payload"), dict):
        bytes_keys = _bytes_fields(wsp.get("type_code"))
        for key, value in wsp["payload"].items():
            if not isinstance(value, str) or not value:
                continue
            if key in bytes_keys:
                try:
                    decoded = _printable(bytes.fromhex(value))
                except ValueError:
                    decoded = None
                if decoded is not None:
                    found.append((f"payload.{key}", decoded))
            elif key == "text" or _json_value(value) is not None:
                found.append((f"payload.{key}", value))
    return found


def _json_sections(record: dict[str, Any]) -> list[tuple[str, RenderableType]]:
    out: list[tuple[str, RenderableType]] = []
    plain: list[RenderableType] = []
    for label, text in _texts(record):
        value = _json_value(text) if len(text) <= 1_000_000 else None
        if value is not None:
            pretty = json.dumps(value, ensure_ascii=False, indent=2)
            if len(pretty) > _TEXT_LIMIT:
                pretty = pretty[:_TEXT_LIMIT] + f"\n… {len(pretty) - _TEXT_LIMIT} more characters"
            title = "JSON" if label == "text" else f"JSON ({label})"
            out.append((title, Syntax(pretty, "json", theme="ansi_dark", word_wrap=True)))
        else:
            shown = text if len(text) <= _TEXT_LIMIT else (
                text[:_TEXT_LIMIT] + f"\n… {len(text) - _TEXT_LIMIT} more characters")
            body = Text(shown)
            plain.append(body if label == "text" else Group(Text(label, style="bold"), body))
    if plain:
        out.insert(0, ("text", Group(*plain)))
    return out


# ------------------------------------------------------------------ frame


def _frame_section(record: dict[str, Any], frame: dict[str, Any] | None) -> RenderableType:
    frame = frame or {}
    codes = record.get("violations") or ()
    direction = record.get("direction")
    table = _grid()
    table.add_row("opcode", str(frame.get("opcode", record.get("opcode"))))
    table.add_row("FIN", str(frame.get("fin", True)))
    compressed = bool(frame.get("rsv1", record.get("compressed")))
    table.add_row("RSV1", f"{compressed} ({'compressed' if compressed else 'not compressed'})")
    if "masked" in frame:
        masked = bool(frame["masked"])
    elif direction == "client":
        masked = "unmasked-client-frame" not in codes
    else:
        masked = "masked-server-frame" in codes
    mask_key = frame.get("mask")
    table.add_row("masked", f"{masked}" + (f" (key {mask_key})" if mask_key else ""))
    table.add_row("fragments", str(frame.get("frames", record.get("frames", 1))))
    length = record.get("length")
    wire = frame.get("wire_length", record.get("wire_length"))
    size = f"{length} bytes" + (" after inflation" if compressed else "")
    if wire is not None:
        size += f", {wire} bytes on the wire"
    table.add_row("payload", size)
    if "close_code" in record:
        table.add_row("close code", str(record.get("close_code")))
        reason = record.get("close_reason")
        table.add_row("close reason", Text(visible(reason)) if isinstance(reason, str) else "—")
    if record.get("note"):
        table.add_row("note", Text(str(record["note"]), style="yellow"))
    if record.get("cut"):
        table.add_row("cut", f"{record['cut']} payload bytes left out")
    if "packet" in record:
        table.add_row("packet", str(record["packet"]))
    return table


# ------------------------------------------------------------------ violations


def _violations_section(record: dict[str, Any]) -> RenderableType | None:
    parts: list[RenderableType] = []
    raw = record.get("session")
    findings: list[Any] = raw if isinstance(raw, list) else []
    from_findings = {f"wsp-{f.get('rule')}" for f in findings if isinstance(f, dict)}
    for code in record.get("violations") or ():
        if code in from_findings:
            continue  # shown below with its finding
        parts.append(Text.assemble(("● ", "red"), (str(code), "bold red")))
    for finding in findings:
        if not isinstance(finding, dict):
            continue
        rule_id = finding.get("rule_id")
        verdict = str(finding.get("verdict"))
        style = "red" if verdict == "violation" else "yellow"
        head = Text.assemble(
            ("● ", style), (f"wsp-{finding.get('rule')}", f"bold {style}"),
            f"  rule {rule_id}  {verdict}  culprit: {finding.get('culprit')}",
        )
        lines: list[RenderableType] = [head]
        if finding.get("message"):
            lines.append(Text(f"  {finding['message']}"))
        if isinstance(rule_id, int):
            line = rule_text(rule_id)
            if line is not None:
                lines.append(Text(f"  rule {rule_id}: {line}", style="dim"))
            lines.append(Text(f"  docs/protocol.md S.9 rule {rule_id}", style="dim italic"))
        parts.append(Group(*lines))
    if record.get("kind") == "violation":
        rule_id = record.get("rule")
        lines = [Text.assemble(("● ", "red"), (f"close {record.get('code')}", "bold red"),
                               f"  {record.get('message', '')}")]
        if isinstance(rule_id, int):
            line = rule_text(rule_id)
            if line is not None:
                lines.append(Text(f"  rule {rule_id}: {line}", style="dim"))
            lines.append(Text(f"  docs/protocol.md S.9 rule {rule_id}", style="dim italic"))
        parts.append(Group(*lines))
    return Group(*parts) if parts else None


# ------------------------------------------------------------------ events


def _event_table(record: dict[str, Any]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        if key == "ts" and isinstance(value, (int, float)):
            shown = f"{value} ({datetime.fromtimestamp(value, UTC):%Y-%m-%d %H:%M:%S.%f} UTC)"
        elif isinstance(value, str):
            shown = visible(value)
        else:
            shown = json.dumps(value, ensure_ascii=False)
        table.add_row(str(key), Text(shown))
    return table


def _is_event(record: dict[str, Any]) -> bool:
    """A session event (inspector feed) or a connection/summary record of ``--ndjson``."""
    kind = record.get("kind")
    return "record" in record or (kind is not None and kind != "message")


# ------------------------------------------------------------------ the sections


def detail_sections(
    record: dict[str, Any], *, frame: dict[str, Any] | None = None
) -> list[tuple[str, RenderableType]]:
    """The Detail pane of ``record``: ``(title, renderable)`` in display order.

    Sections, each only when it applies: ``wsp header``, ``payload`` (a tree),
    ``text`` and ``JSON`` (the text shown as is, JSON pretty-printed), ``hex``,
    ``WebSocket frame`` (``frame``: what a capture decoder knows beyond the
    record — ``fin``, ``rsv1``, ``masked``, ``mask``, ``frames``,
    ``wire_length``), ``violations``; an event is its keys as a table.
    """
    sections: list[tuple[str, RenderableType]] = []
    if _is_event(record):
        title = str(record.get("kind") or record.get("record") or "event")
        sections.append((title, _event_table(record)))
        found = _violations_section(record)
        if found is not None:
            sections.append(("violations", found))
        return sections
    wsp = record.get("wsp")
    if isinstance(wsp, dict):
        sections.append(("wsp header", _header_section(record, wsp)))
        if "payload" in wsp:
            sections.append(("payload", _payload_tree(wsp)))
    sections.extend(_json_sections(record))
    data = payload_bytes(record)
    if data is not None:
        sections.append(("hex", Text(hexdump(data), no_wrap=True, overflow="crop")))
    if "opcode" in record:
        sections.append(("WebSocket frame", _frame_section(record, frame)))
    found = _violations_section(record)
    if found is not None:
        sections.append(("violations", found))
    return sections


# ------------------------------------------------------------------ the summary line


def _data_preview(value: Any) -> str:
    """A bytes field (hex in the JSON form) as text when it is text, else its size."""
    if not isinstance(value, str):
        return ""
    size = len(value) // 2
    try:
        data = bytes.fromhex(value[: 2 * _PREVIEW_BYTES])
    except ValueError:
        return value[:_PREVIEW_BYTES]
    text = _printable(data) if size == len(data) else _printable_start(data)
    if text is None:
        return f"<{size} bytes>"
    if size > len(data):
        return text
    value_json = _json_value(text)
    if value_json is not None:
        return json.dumps(value_json, ensure_ascii=False, separators=(",", ":"))
    return text


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _wsp_summary(wsp: dict[str, Any]) -> str:
    kind = str(wsp.get("type"))
    p = wsp.get("payload")
    p = p if isinstance(p, dict) else {}
    seq = wsp.get("sequence")
    if "error" in wsp and "type" not in wsp:
        return f"wsp error: {wsp['error']}"
    if kind == "Publish":
        return f"Publish {p.get('topic')}#{seq} {_data_preview(p.get('data'))}"
    if kind == "Deliver":
        return f"Deliver {p.get('topic')}@{p.get('offset')} {_data_preview(p.get('data'))}"
    if kind == "Acknowledge":
        return f"Ack {p.get('sequence')}"
    if kind == "Heartbeat":
        return f"Heartbeat {'reply' if p.get('reply') else 'probe'} {p.get('id')}"
    if kind == "Subscribe":
        start = f" from {p['from_offset']}" if "from_offset" in p else ""
        return f"Subscribe {p.get('topic')}{start}"
    if kind == "Subscribed":
        return f"Subscribed {p.get('topic')} next {p.get('next_offset')}"
    if kind == "Unsubscribe":
        return f"Unsubscribe {p.get('topic')}"
    if kind == "ContinuityLost":
        return f"ContinuityLost {_compact(p)}"
    if kind == "TextData":
        return f"TextData #{seq} {p.get('text', '')}"
    if kind == "BinaryData":
        return f"BinaryData #{seq} {_data_preview(p.get('hex'))}"
    if kind == "Close":
        return f"Close {p.get('code')} {p.get('reason', '')}".rstrip()
    if kind == "Error":
        return f"Error {p.get('code')} {p.get('message', '')}".rstrip()
    if kind == "Request":
        return f"Request {p.get('id')} {p.get('method')} {_data_preview(p.get('data'))}".rstrip()
    if kind == "Response":
        return (f"Response {p.get('id')} status {p.get('status', 0)} "
                f"{_data_preview(p.get('data'))}").rstrip()
    if kind == "Handshake":
        caps = ",".join(p.get("capabilities") or ())
        resume = " resume" if p.get("resume_token") else ""
        return f"Handshake {p.get('auth', 'none')} [{caps}]{resume}"
    if kind == "HandshakeResponse":
        resumed = " resumed" if p.get("resumed") else ""
        return f"HandshakeResponse session {p.get('session_id')}{resumed}"
    if kind == "Challenge":
        return f"Challenge [{','.join(p.get('methods') or ('none',))}]"
    if kind == "Authenticate":
        return f"Authenticate {p.get('method')}"
    if kind == "Batch":
        items = p.get("messages")
        return f"Batch of {len(items) if isinstance(items, list) else '?'}"
    return f"{kind} {_compact(p)}" if p else kind


def _event_summary(record: dict[str, Any]) -> str:
    kind = record.get("kind") or record.get("record")
    if kind == "closed":
        return f"closed {record.get('code')} {record.get('reason') or ''}".rstrip()
    if kind == "violation":
        rule = record.get("rule")
        where = f" rule {rule}" if rule is not None else ""
        return f"violation{where} close {record.get('code')} {record.get('message', '')}".rstrip()
    if kind == "dropped":
        return f"dropped {record.get('count')} records"
    skip = {"kind", "record", "ts", "session", "conn"}
    pairs = " ".join(f"{k}={v if isinstance(v, str) else _compact(v)}"
                     for k, v in record.items() if k not in skip)
    return f"{kind} {pairs}".rstrip()


def summary_line(record: dict[str, Any], width: int = 80) -> str:
    """One line for the message list: type-specific (``Publish prices#12 {"px":1.2}``,
    ``Deliver prices@7``, ``Ack 41``), a text message unescaped with its control
    characters as pictures (␊), a close's code and reason, a binary's size; cut to
    ``width`` characters (``…`` ends a cut line)."""
    if _is_event(record):
        line = _event_summary(record)
    else:
        wsp = record.get("wsp")
        opcode = record.get("opcode")
        if isinstance(wsp, dict):
            line = _wsp_summary(wsp)
        elif opcode == "close":
            reason = record.get("close_reason") or ""
            line = f"close {record.get('close_code')} {reason}".rstrip()
        elif isinstance(record.get("text"), str):
            line = str(record["text"])
        elif opcode in ("ping", "pong"):
            data = payload_bytes(record) or b""
            text = _printable(data) if data else None
            line = f"{opcode} {len(data)} bytes" + (f" {text}" if text else "")
        elif record.get("error"):
            line = f"error: {record['error']}"
        else:
            line = f"{opcode or 'binary'} {record.get('length', 0)} bytes"
        if record.get("note"):
            line += f" ({record['note']})"
    return _cut(visible(line[: max(0, width) + 1]), width)
