"""Views of one wsp message: a JSON-ready dict, a human view of its payload, and a
rich renderable that lists every field."""

from __future__ import annotations

__all__ = ["human_payload", "message_table", "message_to_json", "printable_text"]

import json
from collections.abc import Iterator
from typing import Any

from wsproto_tools.codec import Message
from wsproto_tools.codec.jsonform import message_to_json
from wsproto_tools.codec.schema import (
    BinaryData,
    Kind,
    Payload,
    Sealed,
    Unknown,
    payload_fields,
)

#: Bytes shown with their hex next to their text when no longer than this.
HEX_BESIDE_TEXT = 32


def printable_text(data: bytes) -> str | None:
    """The text of ``data`` when it is UTF-8 with printable characters only, else None."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _bytes_value(data: bytes) -> str:
    text = printable_text(data)
    if text is None:
        return data.hex()
    shown = json.dumps(text, ensure_ascii=False)
    if len(data) <= HEX_BESIDE_TEXT:
        return f"{shown} (hex {data.hex()})"
    return f"{shown} ({len(data)} bytes)"


def human_payload(payload: Payload) -> dict[str, str]:
    """Each payload field as people read it: printable bytes as text, the rest as JSON
    (hex for other bytes). The JSON form (``message_to_json``) stays hex throughout."""
    ptype = type(payload)
    if isinstance(payload, BinaryData | Unknown):
        return {"data": _bytes_value(payload.data)}
    if isinstance(payload, Sealed):
        return {"encrypted": f"{len(payload.data)} bytes"}
    out: dict[str, str] = {}
    fields = payload_fields(ptype) if ptype is not Unknown else ()
    for name, fspec in fields:
        value = getattr(payload, name)
        if value is None:
            continue
        if fspec.kind is Kind.BYTES and isinstance(value, bytes):
            out[name] = _bytes_value(value)
        elif isinstance(value, str):
            out[name] = value
    return out


def _header_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    code = data["type_code"]
    rows = []
    if "version" in data:
        rows.append(("version", str(data["version"])))
    rows += [
        ("type", f"{data['type']} (0x{code:04X})"),
        ("flags", ", ".join(data["flags"]) or "-"),
        ("sequence", str(data["sequence"])),
        ("session_id", str(data["session_id"])),
        ("timestamp", f"{data['timestamp']} µs"),
    ]
    return rows


def _rows(msg: Message, data: dict[str, Any]) -> list[tuple[str, str]]:
    rows = _header_rows(data)
    payload = data["payload"]
    if not payload:
        rows.append(("payload", "(empty)"))
    if data["type"] == "Batch":
        for index, item in enumerate(payload["messages"]):
            flags = f" [{', '.join(item['flags'])}]" if item["flags"] else ""
            summary = json.dumps(item["payload"], ensure_ascii=False)
            rows.append((f"item {index}", f"{item['type']} (0x{item['type_code']:04X}) "
                                          f"seq {item['sequence']}{flags} {summary}"))
        return rows
    human = human_payload(msg.payload)
    for key, value in payload.items():
        if key == "hex" and "data" in human:
            rows.append(("payload.data", human["data"]))
        elif key in human:
            rows.append((f"payload.{key}", human[key]))
        else:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            rows.append((f"payload.{key}", shown))
    return rows


class _FieldList:
    """``name  value`` lines: long values fold under themselves at the console's
    width; no line carries trailing spaces."""

    def __init__(self, title: str, rows: list[tuple[str, str]]) -> None:
        self.title = title
        self.rows = rows

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        yield Text(self.title, style="italic")
        width = max(len(name) for name, _ in self.rows)
        room = max(16, options.max_width - width - 3)
        for name, value in self.rows:
            pieces = [value[i : i + room] for i in range(0, len(value), room)] or [""]
            if not console.is_terminal:
                pieces = [value]  # nothing is cut or folded for a pipe
            for number, piece in enumerate(pieces):
                line = Text(" ")
                line.append(f"{name if number == 0 else '':<{width}}", style="bold cyan")
                line.append("  " + piece)
                yield line


def message_table(msg: Message, version: int | None = None, size: int | None = None) -> Any:
    """A rich renderable listing every header field and the payload's fields."""
    data = message_to_json(msg, version)
    title = f"wsp message ({size} bytes)" if size is not None else "wsp message"
    return _FieldList(title, _rows(msg, data))
