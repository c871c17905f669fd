"""Helpers of the replay tests: a real client's session as a cassette, hand-built lines."""

from __future__ import annotations

import json
import time
from typing import Any

from wsproto_tools.codec import decode
from wsproto_tools.replay.cassette import (
    Cassette,
    CassetteConnection,
    CassetteMessage,
    read_cassette,
)


class WireLog:
    """``Client(on_wire=log)``: what crossed, decoded, as one cassette connection."""

    def __init__(self, conn: int = 1) -> None:
        self.conn = conn
        self.start = time.time()
        self.messages: list[CassetteMessage] = []

    def __call__(self, direction: str, data: bytes | str) -> None:
        t = time.time() - self.start
        if isinstance(data, str):
            self.messages.append(CassetteMessage(self.conn, direction, t, "text", text=data))
            return
        msg = decode(data, version=2)
        self.messages.append(CassetteMessage(self.conn, direction, t, "binary", wsp=msg))

    def cassette(self, close: int | None = 1000) -> Cassette:
        cassette = Cassette()
        cassette.connections[self.conn] = CassetteConnection(
            self.conn, self.start, "/", ("wsp.v2", "wsp.v1"))
        cassette.messages.extend(self.messages)
        if close is not None:  # the client's close and the server's answer
            t = self.messages[-1].t if self.messages else 0.0
            for direction in ("client", "server"):
                cassette.messages.append(
                    CassetteMessage(self.conn, direction, t, "close", close_code=close))
        return cassette


def lines(*objs: dict[str, Any]) -> Cassette:
    """A cassette from JSON objects (connection and message lines)."""
    return read_cassette(json.dumps(obj) for obj in objs)


def wsp(type_name: str, **payload: Any) -> dict[str, Any]:
    """A wsp message in its JSON form (bytes as hex strings are the caller's)."""
    return {"version": 2, "type": type_name, "payload": payload}
