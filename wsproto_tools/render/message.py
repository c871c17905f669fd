"""Views of one wsp message: a JSON-ready dict and a rich renderable."""

from __future__ import annotations

__all__ = ["message_table", "message_to_json"]

import json
from typing import Any

from wsproto_tools.codec import Message
from wsproto_tools.codec.jsonform import message_to_json


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


def message_table(msg: Message, version: int | None = None, size: int | None = None) -> Any:
    """A rich Table listing every header field and the payload's fields."""
    from rich.table import Table
    from rich.text import Text

    data = message_to_json(msg, version)
    title = f"wsp message ({size} bytes)" if size is not None else "wsp message"
    table = Table(title=title, show_header=False, title_justify="left", box=None)
    table.add_column("field", style="bold cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in _header_rows(data):
        table.add_row(name, Text(value))
    payload = data["payload"]
    if not payload:
        table.add_row("payload", Text("(empty)"))
    if data["type"] == "Batch":
        for index, item in enumerate(payload["messages"]):
            flags = f" [{', '.join(item['flags'])}]" if item["flags"] else ""
            summary = json.dumps(item["payload"], ensure_ascii=False)
            table.add_row(f"item {index}", Text(
                f"{item['type']} (0x{item['type_code']:04X}) seq {item['sequence']}"
                f"{flags} {summary}"))
        return table
    for key, value in payload.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        table.add_row(f"payload.{key}", Text(shown))
    return table
