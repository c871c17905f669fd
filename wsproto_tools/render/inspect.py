"""One line of ``wsp inspect``'s table for a record of the inspector feed."""

from __future__ import annotations

__all__ = ["record_line"]

import time
from typing import Any

_ARROWS = {"client": "->", "server": "<-"}


def _summary(wsp: dict[str, Any]) -> str:
    payload = wsp.get("payload") or {}
    parts = []
    for key in ("topic", "offset", "id", "method", "code", "reason", "sequence"):
        if key in payload and payload[key] not in ("", None):
            parts.append(f"{key}={payload[key]}")
    if "text" in payload:
        parts.append(repr(payload["text"][:60]))
    elif "data" in payload and isinstance(payload["data"], str):
        data = payload["data"]
        try:
            text = bytes.fromhex(data).decode()
            parts.append(repr(text[:60]) if text.isprintable() else f"{len(data) // 2} B")
        except (ValueError, UnicodeDecodeError):
            parts.append(f"{len(data) // 2} B")
    elif "hex" in payload:
        parts.append(f"{len(payload['hex']) // 2} B")
    return " ".join(parts)


def record_line(record: dict[str, Any]) -> str:
    """``time  session  direction  type  summary``, plain text."""
    ts = record.get("ts")
    clock = (
        time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
        if ts
        else "-"
    )
    kind = record.get("kind", "?")
    session = record.get("session")
    sid = f"{session:x}"[-8:] if isinstance(session, int) and session else "-"
    wsp = record.get("wsp")
    if kind == "message" and wsp is not None:
        arrow = _ARROWS.get(record.get("direction", ""), "  ")
        what = wsp["type"]
        summary = _summary(wsp)
        if record.get("subscribers") is not None:
            summary += f" (to {record['subscribers']} subscribers)"
        if record.get("decrypted"):
            summary += " [decrypted]"
        if record.get("batch") is not None:
            summary += f" [batch item {record['batch']}]"
    elif kind == "message":
        arrow = _ARROWS.get(record.get("direction", ""), "  ")
        what, summary = "?", str(record.get("error", ""))
    elif kind == "dropped":
        arrow, what, summary = (
            "!!",
            "dropped",
            f"{record.get('count')} records lost (viewer too slow)",
        )
    else:
        arrow, what = "**", kind
        skip = {"kind", "ts", "session", "identity"}
        summary = " ".join(f"{k}={v}" for k, v in record.items() if k not in skip and v is not None)
        if record.get("identity"):
            summary = f"identity={record['identity']} " + summary
    return f"{clock}  {sid:>8}  {arrow}  {what:<18} {summary}".rstrip()
