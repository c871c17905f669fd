"""Views of client-side session traffic for ``wsp sub``/``wsp pub``/``wsp connect``.

JSON-ready dicts for ``--json`` (one object per line) and short lines for
people. No I/O here: the commands print what these functions return.
"""

from __future__ import annotations

__all__ = [
    "data_fields",
    "delivery_json",
    "delivery_line",
    "event_json",
    "event_line",
    "lost_fields",
]

import base64
from typing import Any

from wsproto_tools.engine.events import ContinuityLostNotice, Delivery


def data_fields(data: bytes) -> dict[str, str]:
    """``{"data": text}`` when the bytes are UTF-8, else ``{"data_b64": ...}``."""
    try:
        return {"data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_b64": base64.b64encode(data).decode("ascii")}


def delivery_json(item: Delivery) -> dict[str, Any]:
    """A delivery as ``{"topic", "offset", "epoch", "data" | "data_b64"}``."""
    out: dict[str, Any] = {"topic": item.topic, "offset": item.offset, "epoch": item.epoch}
    out.update(data_fields(item.data))
    return out


def delivery_line(item: Delivery) -> str:
    """``topic #offset  text`` (binary shown as hex)."""
    try:
        text = item.data.decode("utf-8")
    except UnicodeDecodeError:
        text = "0x" + item.data.hex()
    return f"{item.topic} #{item.offset}  {text}"


def event_json(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A lifecycle event (connected, reconnected, resumed, continuity_lost...)."""
    return {"event": name, **fields}


def event_line(name: str, fields: dict[str, Any]) -> str:
    details = " ".join(f"{k}={v}" for k, v in fields.items())
    return f"-- {name} {details}".rstrip()


def lost_fields(item: ContinuityLostNotice) -> dict[str, Any]:
    return {
        "topic": item.topic,
        "epoch": item.epoch,
        "requested": item.requested,
        "available": item.available,
    }
